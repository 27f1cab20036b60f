/*
 * test_smtp_xclient: the pure XCLIENT helpers of proxy/smtp/xclient.h,
 * called directly: which attributes an EHLO reply offers, RFC 3461 xtext,
 * the client's address as XCLIENT writes it, and the XCLIENT line with its
 * 512-octet limit. How the session uses them (probe, send, relay) is
 * test_smtp_fsm's and the xclient_*.dlg dialogs'.
 *
 * Output buffers whose size is under test are malloc'd to that exact size,
 * so under ASan a write one byte past the end is caught, not just wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "proxy/smtp/xclient.h"

/* ------------------------------------------------------------------ */
/* helpers                                                             */

static char *
txc_xmalloc(size_t n)
{
	char *p = malloc(n ? n : 1);

	assert_non_null(p);
	return p;
}

static unsigned
txc_offered(const char *reply)
{
	return smtp_xclient_offered(reply, strlen(reply));
}

static struct sockaddr_storage
txc_v4(const char *ip, unsigned port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

	memset(&ss, 0, sizeof(ss));
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	return ss;
}

static struct sockaddr_storage
txc_v6(const char *ip, unsigned port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons((uint16_t)port);
	assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	return ss;
}

/* ------------------------------------------------------------------ */
/* xtext                                                               */

/* Every byte value alone: "+XX" for the controls, space, '+', '=', DEL and 0x80-0xff. */
static void
test_smtp_xclient_xtext_every_byte(void **state)
{
	char out[8], want[8];
	unsigned c;
	int n;

	(void)state;
	for (c = 0; c < 256; c++) {
		char in = (char)c;

		if (c <= 0x20 || c == '+' || c == '=' || c >= 0x7f)
			snprintf(want, sizeof(want), "+%02X", c);
		else
			snprintf(want, sizeof(want), "%c", (int)c);
		n = smtp_xclient_xtext(out, sizeof(out), &in, 1);
		assert_int_equal(n, (int)strlen(want));
		assert_string_equal(out, want);
	}
}

static void
test_smtp_xclient_xtext_classes(void **state)
{
	static const struct {
		const char	*in;
		size_t		 len;
		const char	*out;
	} v[] = {
		{ "\x00\x01\x1f\x20", 4,	"+00+01+1F+20" },	/* controls, space */
		{ "a+b=c", 5,			"a+2Bb+3Dc" },
		{ "\x7f", 1,			"+7F" },
		{ "\x80\xc3\xa9\xff", 4,	"+80+C3+A9+FF" },	/* upper case hex */
		{ "!~", 2,			"!~" },			/* the bounds of plain */
		{ "mx.example.org", 14,		"mx.example.org" },
		{ "[192.0.2.1]", 11,		"[192.0.2.1]" },
		{ "two words", 9,		"two+20words" },
		{ "", 0,			"" },
	};
	char out[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		assert_int_equal(smtp_xclient_xtext(out, sizeof(out), v[i].in, v[i].len),
		    (int)strlen(v[i].out));
		assert_string_equal(out, v[i].out);
	}
}

/* The exact size (output + NUL) fits; one byte less does not, wherever the last byte falls. */
static void
test_smtp_xclient_xtext_buffer_sizes(void **state)
{
	static const char *in[] = { "abc", "a+b", "ab=", "+", "x", "" };
	size_t i, need;
	char *out;

	(void)state;
	for (i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		char ref[32];
		int n = smtp_xclient_xtext(ref, sizeof(ref), in[i], strlen(in[i]));

		assert_true(n >= 0);
		need = (size_t)n + 1;
		out = txc_xmalloc(need);
		assert_int_equal(smtp_xclient_xtext(out, need, in[i], strlen(in[i])), n);
		assert_string_equal(out, ref);
		free(out);
		out = txc_xmalloc(need - 1);
		assert_int_equal(smtp_xclient_xtext(out, need - 1, in[i], strlen(in[i])), -1);
		free(out);
	}
	/* no room at all, not even for the NUL */
	assert_int_equal(smtp_xclient_xtext(NULL, 0, "", 0), -1);
}

/* ------------------------------------------------------------------ */
/* the offer in an EHLO reply                                          */

static void
test_smtp_xclient_offered_all(void **state)
{
	(void)state;
	assert_int_equal(txc_offered("mx.example.net\nPIPELINING\n"
	    "XCLIENT ADDR PORT NAME HELO PROTO\n8BITMIME\n"),
	    SMTP_XA_OFFERED | SMTP_XA_ATTRS);
}

/* Postfix's own order, with names smtpwall never sends (ignored). */
static void
test_smtp_xclient_offered_any_order_unknown_names(void **state)
{
	(void)state;
	assert_int_equal(txc_offered("mx.example.net\nPIPELINING\n"
	    "XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN DESTADDR DESTPORT\n8BITMIME\n"),
	    SMTP_XA_OFFERED | SMTP_XA_ATTRS);
	assert_int_equal(txc_offered("mx\nXCLIENT LOGIN PROTO DESTPORT ADDR\n"),
	    SMTP_XA_OFFERED | SMTP_XA_PROTO | SMTP_XA_ADDR);
	/* names are whole words: ADDRX, XADDR, ADDR=1 are not ADDR */
	assert_int_equal(txc_offered("mx\nXCLIENT ADDRX XADDR ADDR=1 HEL PORT\n"),
	    SMTP_XA_OFFERED | SMTP_XA_PORT);
}

static void
test_smtp_xclient_offered_case_insensitive(void **state)
{
	(void)state;
	assert_int_equal(txc_offered("mx\nxclient addr Port nAmE helo ProTo\n"),
	    SMTP_XA_OFFERED | SMTP_XA_ATTRS);
	assert_int_equal(txc_offered("mx\nXClient HELO\n"), SMTP_XA_OFFERED | SMTP_XA_HELO);
}

/* Several spaces, a leading space before the keyword, the last line without '\n'. */
static void
test_smtp_xclient_offered_spacing_and_last_line(void **state)
{
	(void)state;
	assert_int_equal(txc_offered("mx\nXCLIENT   ADDR  PORT \n"),
	    SMTP_XA_OFFERED | SMTP_XA_ADDR | SMTP_XA_PORT);
	assert_int_equal(txc_offered("mx\n XCLIENT NAME\n"), SMTP_XA_OFFERED | SMTP_XA_NAME);
	assert_int_equal(txc_offered("mx\nSIZE 1000\nXCLIENT HELO"), SMTP_XA_OFFERED | SMTP_XA_HELO);
}

/* The keyword alone: offered, but no attribute smtpwall could send. */
static void
test_smtp_xclient_offered_keyword_only(void **state)
{
	(void)state;
	assert_int_equal(txc_offered("mx\nXCLIENT\n"), SMTP_XA_OFFERED);
	assert_int_equal(txc_offered("mx\nXCLIENT LOGIN DESTADDR\n"), SMTP_XA_OFFERED);
}

/* The first line is the server's greeting text, whatever it says. */
static void
test_smtp_xclient_offered_first_line_is_greeting(void **state)
{
	(void)state;
	assert_int_equal(txc_offered("XCLIENT ADDR PORT\nPIPELINING\n"), 0);
	assert_int_equal(txc_offered("XCLIENT ADDR PORT"), 0);
	assert_int_equal(txc_offered("XCLIENT ADDR\nXCLIENT PORT\n"), SMTP_XA_OFFERED | SMTP_XA_PORT);
}

static void
test_smtp_xclient_offered_absent(void **state)
{
	(void)state;
	assert_int_equal(txc_offered("mx.example.net\nPIPELINING\nSIZE 10240000\n8BITMIME\n"), 0);
	assert_int_equal(txc_offered("mx.example.net\n"), 0);
	assert_int_equal(txc_offered(""), 0);
	assert_int_equal(smtp_xclient_offered(NULL, 0), 0);
	/* only a prefix or a longer word */
	assert_int_equal(txc_offered("mx\nXCLIENTX ADDR PORT\n"), 0);
	assert_int_equal(txc_offered("mx\nXCLIEN ADDR\n"), 0);
	assert_int_equal(txc_offered("mx\nX-XCLIENT ADDR\n"), 0);
	/* the attribute names elsewhere mean nothing */
	assert_int_equal(txc_offered("mx\nAUTH ADDR PORT\nADDR\n"), 0);
}

/* Only `len` bytes are read: the rest of the buffer is not part of the reply. */
static void
test_smtp_xclient_offered_reads_only_len(void **state)
{
	static const char r[] = "mx\nXCLIENT ADDR\nXCLIENT PORT\n";
	char *copy;
	size_t len = strlen("mx\nXCLIENT ADDR\n");

	(void)state;
	copy = txc_xmalloc(len);
	memcpy(copy, r, len);
	assert_int_equal(smtp_xclient_offered(copy, len), SMTP_XA_OFFERED | SMTP_XA_ADDR);
	assert_int_equal(smtp_xclient_offered(copy, len - 1), SMTP_XA_OFFERED | SMTP_XA_ADDR);
	assert_int_equal(smtp_xclient_offered(copy, len - 2), SMTP_XA_OFFERED);	/* "ADD" */
	free(copy);
}

/* ------------------------------------------------------------------ */
/* the client's address                                                */

static void
test_smtp_xclient_addr_ipv4(void **state)
{
	struct sockaddr_storage ss = txc_v4("203.0.113.10", 40000);
	char out[SMTP_XCLIENT_ADDR_SIZE];
	unsigned port = 1;

	(void)state;
	smtp_xclient_addr(&ss, out, sizeof(out), &port);
	assert_string_equal(out, "203.0.113.10");
	assert_int_equal(port, 40000);
	ss = txc_v4("255.255.255.255", 65535);
	smtp_xclient_addr(&ss, out, sizeof(out), &port);
	assert_string_equal(out, "255.255.255.255");
	assert_int_equal(port, 65535);
}

static void
test_smtp_xclient_addr_ipv6(void **state)
{
	struct sockaddr_storage ss = txc_v6("2001:db8::1", 25);
	char out[SMTP_XCLIENT_ADDR_SIZE];
	unsigned port = 0;

	(void)state;
	smtp_xclient_addr(&ss, out, sizeof(out), &port);
	assert_string_equal(out, "IPV6:2001:db8::1");
	assert_int_equal(port, 25);
	/* the longest form fits SMTP_XCLIENT_ADDR_SIZE */
	ss = txc_v6("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 1);
	smtp_xclient_addr(&ss, out, sizeof(out), &port);
	assert_string_equal(out, "IPV6:2001:db8:ffff:ffff:ffff:ffff:ffff:ffff");
	ss = txc_v6("::1", 2525);
	smtp_xclient_addr(&ss, out, sizeof(out), &port);
	assert_string_equal(out, "IPV6:::1");
	assert_int_equal(port, 2525);
}

/* An IPv4 client seen through a dual-stack socket is written as IPv4. */
static void
test_smtp_xclient_addr_v4mapped(void **state)
{
	struct sockaddr_storage ss = txc_v6("::ffff:198.51.100.7", 51000);
	char out[SMTP_XCLIENT_ADDR_SIZE];
	unsigned port = 0;

	(void)state;
	smtp_xclient_addr(&ss, out, sizeof(out), &port);
	assert_string_equal(out, "198.51.100.7");
	assert_int_equal(port, 51000);
	/* v4-compatible (deprecated) is not v4-mapped */
	ss = txc_v6("::198.51.100.7", 51000);
	smtp_xclient_addr(&ss, out, sizeof(out), &port);
	assert_string_equal(out, "IPV6:::198.51.100.7");
}

static void
test_smtp_xclient_addr_unknown_family(void **state)
{
	struct sockaddr_storage ss;
	char out[SMTP_XCLIENT_ADDR_SIZE];
	unsigned port = 99;

	(void)state;
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	smtp_xclient_addr(&ss, out, sizeof(out), &port);
	assert_string_equal(out, "[UNAVAILABLE]");
	assert_int_equal(port, 0);
	ss.ss_family = AF_UNSPEC;
	port = 99;
	smtp_xclient_addr(&ss, out, sizeof(out), &port);
	assert_string_equal(out, "[UNAVAILABLE]");
	assert_int_equal(port, 0);
}

/* ------------------------------------------------------------------ */
/* the XCLIENT line                                                    */

static void
test_smtp_xclient_line_all_attrs(void **state)
{
	struct sockaddr_storage ss = txc_v4("203.0.113.10", 40000);
	static const char want[] = "XCLIENT ADDR=203.0.113.10 PORT=40000 NAME=[UNAVAILABLE] "
	    "HELO=client.example PROTO=ESMTP\r\n";
	char line[SMTP_XCLIENT_MAX + 64];

	(void)state;
	assert_int_equal(smtp_xclient_line(SMTP_XA_OFFERED | SMTP_XA_ATTRS, &ss, "client.example", 1,
	    line, sizeof(line)), (int)strlen(want));
	assert_string_equal(line, want);
	/* the client said HELO: PROTO=SMTP */
	assert_int_equal(smtp_xclient_line(SMTP_XA_ATTRS, &ss, "client.example", 0,
	    line, sizeof(line)), (int)strlen(want) - 1);
	assert_string_equal(line, "XCLIENT ADDR=203.0.113.10 PORT=40000 NAME=[UNAVAILABLE] "
	    "HELO=client.example PROTO=SMTP\r\n");
}

/* Only the listed attributes, always in smtpwall's order, whatever else the bits hold. */
static void
test_smtp_xclient_line_subsets(void **state)
{
	static const struct {
		unsigned	 bits;
		int		 ehlo;
		const char	*want;
	} v[] = {
		{ SMTP_XA_ADDR,				1, "XCLIENT ADDR=192.0.2.1\r\n" },
		{ SMTP_XA_PORT,				1, "XCLIENT PORT=2525\r\n" },
		{ SMTP_XA_NAME,				1, "XCLIENT NAME=[UNAVAILABLE]\r\n" },
		{ SMTP_XA_HELO,				1, "XCLIENT HELO=h+20x\r\n" },
		{ SMTP_XA_PROTO,			0, "XCLIENT PROTO=SMTP\r\n" },
		{ SMTP_XA_PROTO | SMTP_XA_ADDR,		1, "XCLIENT ADDR=192.0.2.1 PROTO=ESMTP\r\n" },
		{ SMTP_XA_HELO | SMTP_XA_PORT,		0, "XCLIENT PORT=2525 HELO=h+20x\r\n" },
		{ SMTP_XA_NAME | SMTP_XA_ADDR | SMTP_XA_OFFERED | 0x20 | 0x40, 0,
							   "XCLIENT ADDR=192.0.2.1 NAME=[UNAVAILABLE]\r\n" },
		{ 0,					1, "XCLIENT\r\n" },
	};
	struct sockaddr_storage ss = txc_v4("192.0.2.1", 2525);
	char line[SMTP_XCLIENT_MAX + 64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		assert_int_equal(smtp_xclient_line(v[i].bits, &ss, "h+20x", v[i].ehlo,
		    line, sizeof(line)), (int)strlen(v[i].want));
		assert_string_equal(line, v[i].want);
	}
}

static void
test_smtp_xclient_line_addresses(void **state)
{
	struct sockaddr_storage ss;
	char line[SMTP_XCLIENT_MAX + 64];
	unsigned bits = SMTP_XA_ADDR | SMTP_XA_PORT;

	(void)state;
	ss = txc_v6("2001:db8::25", 587);
	assert_true(smtp_xclient_line(bits, &ss, "x", 1, line, sizeof(line)) > 0);
	assert_string_equal(line, "XCLIENT ADDR=IPV6:2001:db8::25 PORT=587\r\n");
	ss = txc_v6("::ffff:203.0.113.10", 40000);
	assert_true(smtp_xclient_line(bits, &ss, "x", 1, line, sizeof(line)) > 0);
	assert_string_equal(line, "XCLIENT ADDR=203.0.113.10 PORT=40000\r\n");
	/* port 0 and an unknown family: [UNAVAILABLE] */
	ss = txc_v4("203.0.113.10", 0);
	assert_true(smtp_xclient_line(bits, &ss, "x", 1, line, sizeof(line)) > 0);
	assert_string_equal(line, "XCLIENT ADDR=203.0.113.10 PORT=[UNAVAILABLE]\r\n");
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	assert_true(smtp_xclient_line(bits, &ss, "x", 1, line, sizeof(line)) > 0);
	assert_string_equal(line, "XCLIENT ADDR=[UNAVAILABLE] PORT=[UNAVAILABLE]\r\n");
}

/* A line of exactly 512 octets, CRLF included, is sent; 513 is not. */
static void
test_smtp_xclient_line_512_limit(void **state)
{
	struct sockaddr_storage ss = txc_v4("192.0.2.1", 25);
	const size_t fixed = strlen("XCLIENT HELO=") + 2;
	char helo[SMTP_XCLIENT_MAX + 8], line[SMTP_XCLIENT_MAX + 64];
	int n;

	(void)state;
	memset(helo, 'h', SMTP_XCLIENT_MAX - fixed);
	helo[SMTP_XCLIENT_MAX - fixed] = '\0';
	n = smtp_xclient_line(SMTP_XA_HELO, &ss, helo, 1, line, sizeof(line));
	assert_int_equal(n, SMTP_XCLIENT_MAX);
	assert_memory_equal(line, "XCLIENT HELO=hhh", 16);
	assert_memory_equal(line + SMTP_XCLIENT_MAX - 3, "h\r\n", 4);	/* NUL included */

	helo[SMTP_XCLIENT_MAX - fixed] = 'h';
	helo[SMTP_XCLIENT_MAX - fixed + 1] = '\0';
	assert_int_equal(smtp_xclient_line(SMTP_XA_HELO, &ss, helo, 1, line, sizeof(line)), -1);
	/* over the limit because of another attribute */
	helo[SMTP_XCLIENT_MAX - fixed] = '\0';
	assert_int_equal(smtp_xclient_line(SMTP_XA_HELO | SMTP_XA_PROTO, &ss, helo, 1,
	    line, sizeof(line)), -1);
	/* far over: longer than the buffer itself */
	{
		char big[2 * SMTP_XCLIENT_MAX];

		memset(big, 'b', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		assert_int_equal(smtp_xclient_line(SMTP_XA_HELO, &ss, big, 1, line, sizeof(line)), -1);
	}
}

/* The line, CRLF and NUL must fit the buffer given: exact size works, one byte less does not. */
static void
test_smtp_xclient_line_buffer_sizes(void **state)
{
	struct sockaddr_storage ss = txc_v4("192.0.2.1", 25);
	static const char want[] = "XCLIENT ADDR=192.0.2.1 PORT=25\r\n";
	unsigned bits = SMTP_XA_ADDR | SMTP_XA_PORT;
	size_t size;
	char *line;

	(void)state;
	line = txc_xmalloc(sizeof(want));
	assert_int_equal(smtp_xclient_line(bits, &ss, "x", 1, line, sizeof(want)),
	    (int)strlen(want));
	assert_string_equal(line, want);
	free(line);
	for (size = 0; size < sizeof(want); size++) {
		line = txc_xmalloc(size);
		assert_int_equal(smtp_xclient_line(bits, &ss, "x", 1, line, size), -1);
		free(line);
	}
}

int
main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_smtp_xclient_xtext_every_byte),
		cmocka_unit_test(test_smtp_xclient_xtext_classes),
		cmocka_unit_test(test_smtp_xclient_xtext_buffer_sizes),
		cmocka_unit_test(test_smtp_xclient_offered_all),
		cmocka_unit_test(test_smtp_xclient_offered_any_order_unknown_names),
		cmocka_unit_test(test_smtp_xclient_offered_case_insensitive),
		cmocka_unit_test(test_smtp_xclient_offered_spacing_and_last_line),
		cmocka_unit_test(test_smtp_xclient_offered_keyword_only),
		cmocka_unit_test(test_smtp_xclient_offered_first_line_is_greeting),
		cmocka_unit_test(test_smtp_xclient_offered_absent),
		cmocka_unit_test(test_smtp_xclient_offered_reads_only_len),
		cmocka_unit_test(test_smtp_xclient_addr_ipv4),
		cmocka_unit_test(test_smtp_xclient_addr_ipv6),
		cmocka_unit_test(test_smtp_xclient_addr_v4mapped),
		cmocka_unit_test(test_smtp_xclient_addr_unknown_family),
		cmocka_unit_test(test_smtp_xclient_line_all_attrs),
		cmocka_unit_test(test_smtp_xclient_line_subsets),
		cmocka_unit_test(test_smtp_xclient_line_addresses),
		cmocka_unit_test(test_smtp_xclient_line_512_limit),
		cmocka_unit_test(test_smtp_xclient_line_buffer_sizes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
