/*
 * test_smtp_parse: the SMTP line parser, as the relay decision sees it.
 *
 * Every line is copied into a heap buffer of exactly its length before it is
 * parsed, so ASan reports any read past the end (the parser is handed lines
 * that are not NUL-terminated). Tables name the line; a failing row prints it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/smtp/parse.h"

#define TP_NITEMS(a)	(sizeof(a) / sizeof((a)[0]))
/* A string literal with its exact length, so rows may hold NUL bytes. */
#define TP_L(s)		s, sizeof(s) - 1

struct tp_run {
	char		*buf;
	size_t		 len;
	struct smtp_cmd	 cmd;
	int		 res;
};

static void
tp_parse(struct tp_run *r, const char *s, size_t len)
{
	r->buf = malloc(len ? len : 1);
	assert_non_null(r->buf);
	memcpy(r->buf, s, len);
	r->len = len;
	r->res = smtp_parse_cmd(r->buf, len, &r->cmd);
}

static void
tp_done(struct tp_run *r)
{
	free(r->buf);
	r->buf = NULL;
}

/* Printable form of a test line for failure messages. */
static const char *
tp_show(const char *s, size_t len)
{
	static char	out[1200];
	size_t		i, o = 0;

	for (i = 0; i < len && o + 5 < sizeof(out); i++) {
		unsigned char	c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, sizeof(out) - o, "\\x%02x", c);
	}
	out[o] = '\0';
	return out;
}

static int
tp_slice_is(struct slice s, const char *want)
{
	size_t	n = strlen(want);

	return s.len == n && (n == 0 || memcmp(s.p, want, n) == 0);
}

/* A non-empty slice must point inside the parsed line. */
static int
tp_slice_inside(const struct tp_run *r, struct slice s)
{
	return s.len == 0 || (s.p >= r->buf && s.p + s.len <= r->buf + r->len);
}

static const char *
tp_res_str(int res)
{
	switch (res) {
	case SMTP_PARSE_OK:		return "OK";
	case SMTP_PARSE_EMPTY:		return "EMPTY";
	case SMTP_PARSE_NOT_SMTP:	return "NOT_SMTP";
	case SMTP_PARSE_SYNTAX:		return "SYNTAX";
	}
	return "?";
}

static void
tp_expect_res(const struct tp_run *r, int want)
{
	if (r->res != want)
		fail_msg("\"%s\": got %s, want %s", tp_show(r->buf, r->len),
		    tp_res_str(r->res), tp_res_str(want));
}

static void
tp_expect_slice(const struct tp_run *r, const char *what, struct slice s,
    const char *want)
{
	char	got[600];

	if (!tp_slice_inside(r, s))
		fail_msg("\"%s\": %s points outside the line",
		    tp_show(r->buf, r->len), what);
	if (!tp_slice_is(s, want)) {
		snprintf(got, sizeof(got), "%s", tp_show(s.p, s.len));
		fail_msg("\"%s\": %s is \"%s\", want \"%s\"",
		    tp_show(r->buf, r->len), what, got, want);
	}
}

/* ------------------------------------------------------------------ verbs */

static const struct {
	const char	*name;
	enum smtp_verb	 verb;
	const char	*args;	/* what makes the line valid */
} tp_verbs[] = {
	{ "HELO", SMTP_V_HELO, " client.example" },
	{ "EHLO", SMTP_V_EHLO, " client.example" },
	{ "MAIL", SMTP_V_MAIL, " FROM:<a@example.com>" },
	{ "RCPT", SMTP_V_RCPT, " TO:<b@example.com>" },
	{ "DATA", SMTP_V_DATA, "" },
	{ "RSET", SMTP_V_RSET, "" },
	{ "NOOP", SMTP_V_NOOP, "" },
	{ "QUIT", SMTP_V_QUIT, "" },
	{ "HELP", SMTP_V_HELP, "" },
	{ "VRFY", SMTP_V_VRFY, " postmaster" },
	{ "EXPN", SMTP_V_EXPN, " staff" },
	{ "STARTTLS", SMTP_V_STARTTLS, "" },
	{ "AUTH", SMTP_V_AUTH, " PLAIN AGFsaWNlAHNlY3JldA==" },
	{ "BDAT", SMTP_V_BDAT, " 1024 LAST" },
	{ "XCLIENT", SMTP_V_XCLIENT, " ADDR=192.0.2.1" },
	{ "XFORWARD", SMTP_V_XFORWARD, " HELO=client.example" },
};

/* Every verb of the table is recognised in upper, lower and mixed case; verb_text keeps case. */
static void
test_smtp_parse_every_verb_any_case(void **state)
{
	size_t	i, k, j;

	(void)state;
	for (i = 0; i < TP_NITEMS(tp_verbs); i++) {
		for (k = 0; k < 3; k++) {
			char		line[128], word[16];
			struct tp_run	r;
			size_t		n = strlen(tp_verbs[i].name);

			for (j = 0; j < n; j++) {
				char	c = tp_verbs[i].name[j];

				if (k == 1 || (k == 2 && j % 2 == 1))
					c = (char)(c - 'A' + 'a');
				word[j] = c;
			}
			word[n] = '\0';
			snprintf(line, sizeof(line), "%s%s", word, tp_verbs[i].args);
			tp_parse(&r, line, strlen(line));
			tp_expect_res(&r, SMTP_PARSE_OK);
			if (r.cmd.verb != tp_verbs[i].verb)
				fail_msg("\"%s\": verb %s", line, smtp_verb_str(r.cmd.verb));
			tp_expect_slice(&r, "verb_text", r.cmd.verb_text, word);
			tp_done(&r);
		}
	}
}

/* smtp_verb_str names every verb the way the logs show it. */
static void
test_smtp_parse_verb_str_names(void **state)
{
	size_t	i;

	(void)state;
	for (i = 0; i < TP_NITEMS(tp_verbs); i++)
		assert_string_equal(smtp_verb_str(tp_verbs[i].verb), tp_verbs[i].name);
	assert_string_equal(smtp_verb_str(SMTP_V_NONE), "NONE");
	assert_string_equal(smtp_verb_str(SMTP_V_OTHER), "OTHER");
}

/* Verbs smtpwall has no row for are OTHER (answered 502 by the FSM), with their word kept. */
static void
test_smtp_parse_unknown_verbs_are_other(void **state)
{
	static const struct {
		const char	*line;
		const char	*word;
	} rows[] = {
		{ "ETRN example.com", "ETRN" },
		{ "TURN", "TURN" },
		{ "ATRN example.com", "ATRN" },
		{ "SEND FROM:<a@example.com>", "SEND" },
		{ "SOML FROM:<a@example.com>", "SOML" },
		{ "SAML FROM:<a@example.com>", "SAML" },
		{ "XEXCH50 2048 2", "XEXCH50" },
		{ "X-LINK2STATE LAST CHUNK=xyz", "X-LINK2STATE" },
		{ "x-anonymoustls", "x-anonymoustls" },
		{ "HELOX client.example", "HELOX" },	/* a prefix match would make this HELO */
		{ "HEL", "HEL" },
		{ "STARTTLSX", "STARTTLSX" },
		{ "GET", "GET" },		/* no SP after it: not an HTTP request line */
		{ "PROXY", "PROXY" },
		{ "PROXY TCP5 x", "PROXY" },
		{ "PROXY TCP4X", "PROXY" },
		{ "123", "123" },
	};
	size_t	i;

	(void)state;
	for (i = 0; i < TP_NITEMS(rows); i++) {
		struct tp_run	r;

		tp_parse(&r, rows[i].line, strlen(rows[i].line));
		tp_expect_res(&r, SMTP_PARSE_OK);
		if (r.cmd.verb != SMTP_V_OTHER)
			fail_msg("\"%s\": verb %s", rows[i].line, smtp_verb_str(r.cmd.verb));
		tp_expect_slice(&r, "verb_text", r.cmd.verb_text, rows[i].word);
		tp_done(&r);
	}
}

/* HTTP, PROXY v1/v2 headers, TLS records and binary are NOT_SMTP (500 5.5.1), never OTHER. */
static void
test_smtp_parse_foreign_protocols_are_not_smtp(void **state)
{
	static const struct {
		const char	*s;
		size_t		 len;
	} rows[] = {
		{ TP_L("GET / HTTP/1.1") },
		{ TP_L("get /index.html HTTP/1.0") },
		{ TP_L("POST /cgi-bin/x HTTP/1.1") },
		{ TP_L("HEAD / HTTP/1.1") },
		{ TP_L("PUT /x HTTP/1.1") },
		{ TP_L("DELETE /x HTTP/1.1") },
		{ TP_L("OPTIONS * HTTP/1.1") },
		{ TP_L("CONNECT mail.example.com:25 HTTP/1.1") },
		{ TP_L("PATCH /x HTTP/1.1") },
		{ TP_L("TRACE / HTTP/1.1") },
		{ TP_L("GET ") },
		{ TP_L("PROXY TCP4 192.0.2.1 198.51.100.2 40000 25") },
		{ TP_L("PROXY TCP6 2001:db8::1 2001:db8::2 40000 25") },
		{ TP_L("PROXY UNKNOWN") },
		{ TP_L("PROXY UNKNOWN ffff::1 ffff::2 1 2") },
		/* PROXY v2 signature, then version/command, family, length */
		{ TP_L("\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c") },
		{ TP_L("\r\n\r\n\0\r\nQUIT\n") },
		{ TP_L("\x16\x03\x01\x02\x31\x01") },	/* TLS ClientHello */
		{ TP_L("\xc3\xa9HLO client.example") },	/* UTF-8 in the verb */
		{ TP_L("HEL\x80 x") },
		{ TP_L("HELO\tclient.example") },	/* the verb ends at SP only */
		{ TP_L(" HELO client.example") },	/* leading blank */
		{ TP_L("\tQUIT") },
		{ TP_L("MAIL:FROM:<a@example.com>") },
		{ TP_L("MAIL_FROM:<a@example.com>") },
		{ TP_L("QUIT\r") },
		{ TP_L("\x7f") },
		{ TP_L("\x1b[A") },
		{ TP_L("HE\x01LO x") },
		{ TP_L("\xff\xfb\x01") },		/* telnet negotiation */
	};
	size_t	i;

	(void)state;
	for (i = 0; i < TP_NITEMS(rows); i++) {
		struct tp_run	r;

		tp_parse(&r, rows[i].s, rows[i].len);
		tp_expect_res(&r, SMTP_PARSE_NOT_SMTP);
		if (r.cmd.verb != SMTP_V_NONE)
			fail_msg("\"%s\": verb %s", tp_show(rows[i].s, rows[i].len),
			    smtp_verb_str(r.cmd.verb));
		tp_done(&r);
	}
}

/* An empty or blank line is EMPTY (500 5.5.2). */
static void
test_smtp_parse_blank_lines_are_empty(void **state)
{
	static const char *const rows[] = { "", " ", "\t", "  \t  " };
	size_t	i;

	(void)state;
	for (i = 0; i < TP_NITEMS(rows); i++) {
		struct tp_run	r;

		tp_parse(&r, rows[i], strlen(rows[i]));
		tp_expect_res(&r, SMTP_PARSE_EMPTY);
		assert_int_equal(r.cmd.verb, SMTP_V_NONE);
		tp_done(&r);
	}
	assert_int_equal(smtp_parse_cmd(NULL, 0, &(struct smtp_cmd){ 0 }), SMTP_PARSE_EMPTY);
}

/* A NUL anywhere in the line is a syntax error, whatever the verb. */
static void
test_smtp_parse_nul_byte_is_syntax(void **state)
{
	static const struct {
		const char	*s;
		size_t		 len;
	} rows[] = {
		{ TP_L("\0") },
		{ TP_L("HELO client\0.example") },
		{ TP_L("RCPT TO:<user@local.example\0>") },
		{ TP_L("RCPT TO:<user@local.example>\0") },
		{ TP_L("QU\0IT") },
		{ TP_L(" \0") },
	};
	size_t	i;

	(void)state;
	for (i = 0; i < TP_NITEMS(rows); i++) {
		struct tp_run	r;

		tp_parse(&r, rows[i].s, rows[i].len);
		tp_expect_res(&r, SMTP_PARSE_SYNTAX);
		tp_done(&r);
	}
}

/* Other verbs' arguments are sliced after the verb and one SP, not interpreted. */
static void
test_smtp_parse_args_sliced_not_interpreted(void **state)
{
	static const struct {
		const char	*line;
		enum smtp_verb	 verb;
		const char	*args;
	} rows[] = {
		{ "HELO client.example", SMTP_V_HELO, "client.example" },
		{ "EHLO [192.0.2.1]", SMTP_V_EHLO, "[192.0.2.1]" },
		{ "EHLO", SMTP_V_EHLO, "" },
		{ "EHLO  two-spaces", SMTP_V_EHLO, " two-spaces" },
		{ "AUTH PLAIN AGFsaWNlAHNlY3JldA==", SMTP_V_AUTH, "PLAIN AGFsaWNlAHNlY3JldA==" },
		{ "QUIT ", SMTP_V_QUIT, "" },
		{ "DATA junk after data", SMTP_V_DATA, "junk after data" },
		{ "VRFY <\"odd path\">>", SMTP_V_VRFY, "<\"odd path\">>" },
		{ "NOOP \xc3\xa9t\xc3\xa9", SMTP_V_NOOP, "\xc3\xa9t\xc3\xa9" },
		{ "ETRN @example.com", SMTP_V_OTHER, "@example.com" },
		/* MAIL/RCPT: args start right after the colon */
		{ "MAIL FROM: <a@example.com> SIZE=1", SMTP_V_MAIL, " <a@example.com> SIZE=1" },
		{ "RCPT TO:<b@example.com>", SMTP_V_RCPT, "<b@example.com>" },
	};
	size_t	i;

	(void)state;
	for (i = 0; i < TP_NITEMS(rows); i++) {
		struct tp_run	r;

		tp_parse(&r, rows[i].line, strlen(rows[i].line));
		tp_expect_res(&r, SMTP_PARSE_OK);
		assert_int_equal(r.cmd.verb, rows[i].verb);
		tp_expect_slice(&r, "args", r.cmd.args, rows[i].args);
		if (rows[i].verb != SMTP_V_MAIL && rows[i].verb != SMTP_V_RCPT) {
			assert_int_equal(r.cmd.nparams, 0);
			assert_int_equal(r.cmd.path.raw.len, 0);
		}
		tp_done(&r);
	}
}

/* ------------------------------------------------------------------ paths */

struct tp_path_row {
	const char	*s;
	size_t		 len;
	unsigned	 flags;
	const char	*mailbox;
	const char	*local;
	const char	*domain;
	const char	*route;
	const char	*raw;
};

static void
tp_check_path_rows(const struct tp_path_row *rows, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		struct tp_run		 r;
		const struct smtp_path	*p = &r.cmd.path;

		tp_parse(&r, rows[i].s, rows[i].len);
		tp_expect_res(&r, SMTP_PARSE_OK);
		if (p->flags != rows[i].flags)
			fail_msg("\"%s\": flags 0x%04x, want 0x%04x",
			    tp_show(r.buf, r.len), p->flags, rows[i].flags);
		tp_expect_slice(&r, "mailbox", p->mailbox, rows[i].mailbox);
		tp_expect_slice(&r, "local", p->local, rows[i].local);
		tp_expect_slice(&r, "domain", p->domain, rows[i].domain);
		tp_expect_slice(&r, "route", p->route, rows[i].route);
		tp_expect_slice(&r, "raw", p->raw, rows[i].raw);
		tp_done(&r);
	}
}

#define Q	SMTP_PATH_QUOTED
#define AL	SMTP_PATH_ADDRLIT
#define NB	SMTP_PATH_NOBRACKETS

/*
 * Plain, null, postmaster, quoted, routed, literal, trailing-dot and UTF-8
 * paths give the addresses a rule would match.
 */
static void
test_smtp_parse_paths_accepted(void **state)
{
	static const struct tp_path_row rows[] = {
		{ TP_L("MAIL FROM:<user@example.com>"), 0,
		  "user@example.com", "user", "example.com", "", "user@example.com" },
		{ TP_L("RCPT TO:<First.Last+tag@Sub.Example.COM>"), 0,
		  "First.Last+tag@Sub.Example.COM", "First.Last+tag", "Sub.Example.COM", "",
		  "First.Last+tag@Sub.Example.COM" },
		{ TP_L("MAIL FROM:<>"), SMTP_PATH_NULL, "", "", "", "", "" },
		{ TP_L("MAIL FROM: <>"), SMTP_PATH_NULL, "", "", "", "", "" },
		{ TP_L("RCPT TO:<postmaster>"), SMTP_PATH_POSTMASTER,
		  "postmaster", "postmaster", "", "", "postmaster" },
		{ TP_L("RCPT TO:<PostMaster>"), SMTP_PATH_POSTMASTER,
		  "PostMaster", "PostMaster", "", "", "PostMaster" },
		{ TP_L("RCPT TO:<postmaster@local.example>"), 0,
		  "postmaster@local.example", "postmaster", "local.example", "",
		  "postmaster@local.example" },
		{ TP_L("RCPT TO:postmaster"), SMTP_PATH_POSTMASTER | NB,
		  "postmaster", "postmaster", "", "", "postmaster" },
		/* quoted local parts */
		{ TP_L("RCPT TO:<\"john smith\"@example.com>"), Q,
		  "\"john smith\"@example.com", "\"john smith\"", "example.com", "",
		  "\"john smith\"@example.com" },
		{ TP_L("RCPT TO:<\"say \\\"hi\\\"\"@example.com>"), Q,
		  "\"say \\\"hi\\\"\"@example.com", "\"say \\\"hi\\\"\"", "example.com", "",
		  "\"say \\\"hi\\\"\"@example.com" },
		{ TP_L("RCPT TO:<\"back\\\\slash\"@example.com>"), Q,
		  "\"back\\\\slash\"@example.com", "\"back\\\\slash\"", "example.com", "",
		  "\"back\\\\slash\"@example.com" },
		{ TP_L("RCPT TO:<\"user@evil.example\"@local.example>"), Q,
		  "\"user@evil.example\"@local.example", "\"user@evil.example\"",
		  "local.example", "", "\"user@evil.example\"@local.example" },
		{ TP_L("RCPT TO:<first.\"middle name\".last@example.com>"), Q,
		  "first.\"middle name\".last@example.com", "first.\"middle name\".last",
		  "example.com", "", "first.\"middle name\".last@example.com" },
		{ TP_L("RCPT TO:<\"\"@example.com>"), Q,
		  "\"\"@example.com", "\"\"", "example.com", "", "\"\"@example.com" },
		/* source routes */
		{ TP_L("RCPT TO:<@hop1.example:user@example.com>"), SMTP_PATH_ROUTED,
		  "user@example.com", "user", "example.com", "@hop1.example",
		  "@hop1.example:user@example.com" },
		{ TP_L("RCPT TO:<@hop1.example,@hop2.example:user@example.com>"), SMTP_PATH_ROUTED,
		  "user@example.com", "user", "example.com", "@hop1.example,@hop2.example",
		  "@hop1.example,@hop2.example:user@example.com" },
		{ TP_L("MAIL FROM:<@relay.example:sender@example.org>"), SMTP_PATH_ROUTED,
		  "sender@example.org", "sender", "example.org", "@relay.example",
		  "@relay.example:sender@example.org" },
		/* address literals */
		{ TP_L("RCPT TO:<user@[192.0.2.1]>"), AL,
		  "user@[192.0.2.1]", "user", "[192.0.2.1]", "", "user@[192.0.2.1]" },
		{ TP_L("RCPT TO:<user@[0.0.0.0]>"), AL,
		  "user@[0.0.0.0]", "user", "[0.0.0.0]", "", "user@[0.0.0.0]" },
		{ TP_L("RCPT TO:<user@[IPv6:2001:db8::1]>"), AL,
		  "user@[IPv6:2001:db8::1]", "user", "[IPv6:2001:db8::1]", "",
		  "user@[IPv6:2001:db8::1]" },
		{ TP_L("RCPT TO:<user@[ipv6:2001:DB8:0:0:0:0:0:1]>"), AL,
		  "user@[ipv6:2001:DB8:0:0:0:0:0:1]", "user", "[ipv6:2001:DB8:0:0:0:0:0:1]", "",
		  "user@[ipv6:2001:DB8:0:0:0:0:0:1]" },
		{ TP_L("RCPT TO:<user@[IPv6:::ffff:192.0.2.1]>"), AL,
		  "user@[IPv6:::ffff:192.0.2.1]", "user", "[IPv6:::ffff:192.0.2.1]", "",
		  "user@[IPv6:::ffff:192.0.2.1]" },
		{ TP_L("RCPT TO:<user@[x-tag:some.content]>"), AL,
		  "user@[x-tag:some.content]", "user", "[x-tag:some.content]", "",
		  "user@[x-tag:some.content]" },
		/* host names */
		{ TP_L("RCPT TO:<user@local.example.>"), 0,
		  "user@local.example.", "user", "local.example.", "", "user@local.example." },
		{ TP_L("RCPT TO:<user@mail-1.xn--bcher-kva.example>"), 0,
		  "user@mail-1.xn--bcher-kva.example", "user", "mail-1.xn--bcher-kva.example", "",
		  "user@mail-1.xn--bcher-kva.example" },
		{ TP_L("RCPT TO:<user@localhost>"), 0,
		  "user@localhost", "user", "localhost", "", "user@localhost" },
		/* SMTPUTF8 */
		{ TP_L("MAIL FROM:<j\xc3\xb6rg@b\xc3\xbc" "cher.example> SMTPUTF8"), 0,
		  "j\xc3\xb6rg@b\xc3\xbc" "cher.example", "j\xc3\xb6rg", "b\xc3\xbc" "cher.example", "",
		  "j\xc3\xb6rg@b\xc3\xbc" "cher.example" },
		{ TP_L("RCPT TO:<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\x85\xac\xe5\x8f\xb8>"), 0,
		  "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\x85\xac\xe5\x8f\xb8",
		  "\xe7\x94\xa8\xe6\x88\xb7", "\xe4\xbe\x8b\xe5\xad\x90.\xe5\x85\xac\xe5\x8f\xb8", "",
		  "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\x85\xac\xe5\x8f\xb8" },
		{ TP_L("RCPT TO:<\"gr\xc3\xbc\xc3\x9f dich\"@example.com>"), Q,
		  "\"gr\xc3\xbc\xc3\x9f dich\"@example.com", "\"gr\xc3\xbc\xc3\x9f dich\"",
		  "example.com", "", "\"gr\xc3\xbc\xc3\x9f dich\"@example.com" },
		{ TP_L("RCPT TO:<emoji\xf0\x9f\x93\xa7@example.com>"), 0,
		  "emoji\xf0\x9f\x93\xa7@example.com", "emoji\xf0\x9f\x93\xa7", "example.com", "",
		  "emoji\xf0\x9f\x93\xa7@example.com" },
		/* lenient atext: every printable that cannot change framing */
		{ TP_L("RCPT TO:<a/b=c{d}|e~f^g'h*i&j$k#l?m`n@example.com>"), 0,
		  "a/b=c{d}|e~f^g'h*i&j$k#l?m`n@example.com", "a/b=c{d}|e~f^g'h*i&j$k#l?m`n",
		  "example.com", "", "a/b=c{d}|e~f^g'h*i&j$k#l?m`n@example.com" },
		{ TP_L("RCPT TO:<first..last.@example.com>"), 0,
		  "first..last.@example.com", "first..last.", "example.com", "",
		  "first..last.@example.com" },
	};

	(void)state;
	tp_check_path_rows(rows, TP_NITEMS(rows));
}

/* The leniencies real MTAs accept: keyword case, spaces after the colon, a bare path word. */
static void
test_smtp_parse_leniencies(void **state)
{
	static const struct tp_path_row rows[] = {
		{ TP_L("mail from:<a@example.com>"), 0,
		  "a@example.com", "a", "example.com", "", "a@example.com" },
		{ TP_L("Rcpt To:<b@example.com>"), 0,
		  "b@example.com", "b", "example.com", "", "b@example.com" },
		{ TP_L("MAIL FROM: <a@example.com>"), 0,
		  "a@example.com", "a", "example.com", "", "a@example.com" },
		{ TP_L("RCPT TO:    <b@example.com>"), 0,
		  "b@example.com", "b", "example.com", "", "b@example.com" },
		{ TP_L("MAIL FROM:a@example.com"), NB,
		  "a@example.com", "a", "example.com", "", "a@example.com" },
		{ TP_L("RCPT TO: b@example.com"), NB,
		  "b@example.com", "b", "example.com", "", "b@example.com" },
		{ TP_L("mail FROM:a@example.com SIZE=10"), NB,
		  "a@example.com", "a", "example.com", "", "a@example.com" },
	};

	(void)state;
	tp_check_path_rows(rows, TP_NITEMS(rows));
}

/*
 * Every relay trick of SPEC.md "The relay decision" sets its flag, and the
 * domain is the one the server routes on.
 */
static void
test_smtp_parse_relay_tricks_flagged(void **state)
{
	static const struct tp_path_row rows[] = {
		{ TP_L("RCPT TO:<user%evil.example@local.example>"), SMTP_PATH_PERCENT,
		  "user%evil.example@local.example", "user%evil.example", "local.example", "",
		  "user%evil.example@local.example" },
		{ TP_L("RCPT TO:<evil.example!user@local.example>"), SMTP_PATH_BANG,
		  "evil.example!user@local.example", "evil.example!user", "local.example", "",
		  "evil.example!user@local.example" },
		{ TP_L("RCPT TO:<user@evil.example@local.example>"), SMTP_PATH_AT,
		  "user@evil.example@local.example", "user@evil.example", "local.example", "",
		  "user@evil.example@local.example" },
		{ TP_L("RCPT TO:<@evil.example:user@local.example>"), SMTP_PATH_ROUTED,
		  "user@local.example", "user", "local.example", "@evil.example",
		  "@evil.example:user@local.example" },
		{ TP_L("RCPT TO:<\"user%evil.example\"@local.example>"), SMTP_PATH_PERCENT | Q,
		  "\"user%evil.example\"@local.example", "\"user%evil.example\"", "local.example", "",
		  "\"user%evil.example\"@local.example" },
		{ TP_L("RCPT TO:<\"evil.example!user\"@local.example>"), SMTP_PATH_BANG | Q,
		  "\"evil.example!user\"@local.example", "\"evil.example!user\"", "local.example", "",
		  "\"evil.example!user\"@local.example" },
		{ TP_L("RCPT TO:<\"user\"@evil.example@local.example>"), SMTP_PATH_AT | Q,
		  "\"user\"@evil.example@local.example", "\"user\"@evil.example", "local.example", "",
		  "\"user\"@evil.example@local.example" },
		{ TP_L("RCPT TO:user%evil.example@local.example"), SMTP_PATH_PERCENT | NB,
		  "user%evil.example@local.example", "user%evil.example", "local.example", "",
		  "user%evil.example@local.example" },
		{ TP_L("RCPT TO:<@a.example,@b.example:u%evil.example@local.example>"),
		  SMTP_PATH_ROUTED | SMTP_PATH_PERCENT,
		  "u%evil.example@local.example", "u%evil.example", "local.example",
		  "@a.example,@b.example", "@a.example,@b.example:u%evil.example@local.example" },
		{ TP_L("RCPT TO:<a!b%c@d@local.example>"),
		  SMTP_PATH_BANG | SMTP_PATH_PERCENT | SMTP_PATH_AT,
		  "a!b%c@d@local.example", "a!b%c@d", "local.example", "", "a!b%c@d@local.example" },
		{ TP_L("RCPT TO:<user@evil.example@[198.51.100.2]>"), SMTP_PATH_AT | AL,
		  "user@evil.example@[198.51.100.2]", "user@evil.example", "[198.51.100.2]", "",
		  "user@evil.example@[198.51.100.2]" },
		{ TP_L("MAIL FROM:<a%b@example.com>"), SMTP_PATH_PERCENT,
		  "a%b@example.com", "a%b", "example.com", "", "a%b@example.com" },
	};

	(void)state;
	tp_check_path_rows(rows, TP_NITEMS(rows));
}

/* ------------------------------------------------------------- parameters */

/* ESMTP parameters are split into key and value; a valueless key has value.p == NULL. */
static void
test_smtp_parse_esmtp_params(void **state)
{
	static const struct {
		const char	*line;
		unsigned	 n;
		const char	*kv[4][2];	/* value NULL: no '=' */
	} rows[] = {
		{ "MAIL FROM:<a@example.com> SIZE=12345", 1, { { "SIZE", "12345" } } },
		{ "MAIL FROM:<a@example.com> BODY=8BITMIME", 1, { { "BODY", "8BITMIME" } } },
		{ "MAIL FROM:<a@example.com> SIZE=100 BODY=8BITMIME SMTPUTF8", 3,
		  { { "SIZE", "100" }, { "BODY", "8BITMIME" }, { "SMTPUTF8", NULL } } },
		{ "MAIL FROM:<> size=0  body=7BIT ", 2, { { "size", "0" }, { "body", "7BIT" } } },
		{ "MAIL FROM:<a@example.com> RET=HDRS ENVID=QQ314159 AUTH=<>", 3,
		  { { "RET", "HDRS" }, { "ENVID", "QQ314159" }, { "AUTH", "<>" } } },
		{ "RCPT TO:<b@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bx@example.com", 2,
		  { { "NOTIFY", "SUCCESS,FAILURE" }, { "ORCPT", "rfc822;b+2Bx@example.com" } } },
		{ "RCPT TO:<postmaster> NOTIFY=NEVER", 1, { { "NOTIFY", "NEVER" } } },
		{ "MAIL FROM:a@example.com X-VENDOR-1=v", 1, { { "X-VENDOR-1", "v" } } },
		{ "MAIL FROM:<a@example.com> ORCPT=utf-8;\xc3\xa9@example.com", 1,
		  { { "ORCPT", "utf-8;\xc3\xa9@example.com" } } },
		{ "MAIL FROM:<a@example.com>", 0, { { NULL, NULL } } },
		{ "MAIL FROM:<a@example.com> ", 0, { { NULL, NULL } } },
	};
	size_t		i;
	unsigned	k;

	(void)state;
	for (i = 0; i < TP_NITEMS(rows); i++) {
		struct tp_run	r;

		tp_parse(&r, rows[i].line, strlen(rows[i].line));
		tp_expect_res(&r, SMTP_PARSE_OK);
		if (r.cmd.nparams != rows[i].n)
			fail_msg("\"%s\": %u params, want %u", rows[i].line,
			    r.cmd.nparams, rows[i].n);
		for (k = 0; k < rows[i].n; k++) {
			tp_expect_slice(&r, "key", r.cmd.params[k].key, rows[i].kv[k][0]);
			if (rows[i].kv[k][1] == NULL) {
				if (r.cmd.params[k].value.p != NULL)
					fail_msg("\"%s\": %s has a value", rows[i].line,
					    rows[i].kv[k][0]);
			} else
				tp_expect_slice(&r, "value", r.cmd.params[k].value,
				    rows[i].kv[k][1]);
		}
		tp_done(&r);
	}
}

/* SIZE is found whatever its case and read as a number; an absent key gives NULL. */
static void
test_smtp_parse_cmd_param_lookup(void **state)
{
	struct tp_run			 r;
	const struct smtp_param		*p;
	unsigned long long		 size = 0;

	(void)state;
	tp_parse(&r, TP_L("MAIL FROM:<a@example.com> Body=8BITMIME size=52428800 SMTPUTF8"));
	tp_expect_res(&r, SMTP_PARSE_OK);
	p = smtp_cmd_param(&r.cmd, "SIZE");
	assert_non_null(p);
	assert_int_equal(smtp_param_ulong(p->value, &size), 0);
	assert_true(size == 52428800ULL);
	p = smtp_cmd_param(&r.cmd, "body");
	assert_non_null(p);
	tp_expect_slice(&r, "BODY", p->value, "8BITMIME");
	p = smtp_cmd_param(&r.cmd, "smtputf8");
	assert_non_null(p);
	assert_null(p->value.p);
	assert_int_equal(smtp_param_ulong(p->value, &size), -1);
	assert_null(smtp_cmd_param(&r.cmd, "RET"));
	assert_null(smtp_cmd_param(&r.cmd, "SIZ"));
	tp_done(&r);
}

/* SMTP_MAX_PARAMS parameters pass; one more is a syntax error. */
static void
test_smtp_parse_too_many_params(void **state)
{
	char		line[512];
	unsigned	n, k;

	(void)state;
	for (n = SMTP_MAX_PARAMS; n <= SMTP_MAX_PARAMS + 1; n++) {
		struct tp_run	r;
		size_t		o;

		o = (size_t)snprintf(line, sizeof(line), "RCPT TO:<b@example.com>");
		for (k = 0; k < n; k++)
			o += (size_t)snprintf(line + o, sizeof(line) - o, " X%u=%u", k, k);
		tp_parse(&r, line, o);
		if (n == SMTP_MAX_PARAMS) {
			tp_expect_res(&r, SMTP_PARSE_OK);
			assert_int_equal(r.cmd.nparams, SMTP_MAX_PARAMS);
			tp_expect_slice(&r, "last key", r.cmd.params[n - 1].key, "X15");
		} else
			tp_expect_res(&r, SMTP_PARSE_SYNTAX);
		tp_done(&r);
	}
}

/* --------------------------------------------------------- syntax errors */

/* Anything a server could read differently from us is SYNTAX (501), and the verb is still known. */
static void
test_smtp_parse_malformed_paths_are_syntax(void **state)
{
	static const struct {
		const char	*s;
		size_t		 len;
	} rows[] = {
		/* keyword */
		{ TP_L("MAIL") }, { TP_L("MAIL ") }, { TP_L("MAIL FROM") }, { TP_L("MAIL FROM:") },
		{ TP_L("MAIL FROM:   ") }, { TP_L("MAIL TO:<a@example.com>") },
		{ TP_L("MAIL FROM :<a@example.com>") }, { TP_L("MAIL  FROM:<a@example.com>") },
		{ TP_L("MAIL FROM<a@example.com>") }, { TP_L("MAIL FROMX:<a@example.com>") },
		{ TP_L("MAIL FROM:\t<a@example.com>") },
		{ TP_L("RCPT") }, { TP_L("RCPT TO") }, { TP_L("RCPT FROM:<a@example.com>") },
		{ TP_L("RCPT TO <a@example.com>") }, { TP_L("RCPT T0:<a@example.com>") },
		/* brackets */
		{ TP_L("RCPT TO:<>") }, { TP_L("RCPT TO:<a@example.com") },
		{ TP_L("RCPT TO:a@example.com>") }, { TP_L("RCPT TO:<<a@example.com>>") },
		{ TP_L("RCPT TO:<a@example.com>>") }, { TP_L("RCPT TO:<a<b@example.com>") },
		{ TP_L("RCPT TO:<") }, { TP_L("RCPT TO:>") }, { TP_L("MAIL FROM:<<>>") },
		/* what follows the path */
		{ TP_L("RCPT TO:<a@example.com> <b@example.com>") },
		{ TP_L("RCPT TO:<a@b.example><c@d.example>") },
		{ TP_L("RCPT TO:<a@b.example>x") }, { TP_L("RCPT TO:<a@b.example>\tSIZE=1") },
		{ TP_L("RCPT TO:<a@b.example> b@c.example") },
		{ TP_L("RCPT TO:<a@example.com> (comment)") },
		{ TP_L("RCPT TO:<a@evil.example>@local.example") },
		/* mailbox shape */
		{ TP_L("RCPT TO:<a>") }, { TP_L("RCPT TO:<a@>") }, { TP_L("RCPT TO:<@>") },
		{ TP_L("RCPT TO:<@example.com>") }, { TP_L("MAIL FROM:<postmaster>") },
		{ TP_L("RCPT TO:<postmaster@>") }, { TP_L("RCPT TO:<a@b c>") },
		{ TP_L("RCPT TO:<a b@example.com>") }, { TP_L("RCPT TO:< a@example.com>") },
		{ TP_L("RCPT TO:<a@example.com >") },
		/* domain */
		{ TP_L("RCPT TO:<a@evil.example%local.example>") },
		{ TP_L("RCPT TO:<a@\"local.example\">") }, { TP_L("RCPT TO:<a@evil!local.example>") },
		{ TP_L("RCPT TO:<a@b..example>") }, { TP_L("RCPT TO:<a@.example>") },
		{ TP_L("RCPT TO:<a@example.com..>") }, { TP_L("RCPT TO:<a@.>") },
		{ TP_L("RCPT TO:<a@-example.com>") }, { TP_L("RCPT TO:<a@example-.com>") },
		{ TP_L("RCPT TO:<a@example.com->") }, { TP_L("RCPT TO:<a@example.-com>") },
		{ TP_L("RCPT TO:<a@exa_mple.com>") }, { TP_L("RCPT TO:<a@exa/mple.com>") },
		{ TP_L("RCPT TO:<a@example.com,b@example.com>") },
		{ TP_L("RCPT TO:<a@example.com;b@example.com>") },
		{ TP_L("RCPT TO:<a@exa\tmple.com>") }, { TP_L("RCPT TO:<a@example.com\x7f>") },
		/* address literals */
		{ TP_L("RCPT TO:<a@[1.2.3.4>") }, { TP_L("RCPT TO:<a@1.2.3.4]>") },
		{ TP_L("RCPT TO:<a@[192.0.2]>") }, { TP_L("RCPT TO:<a@[192.0.2.256]>") },
		{ TP_L("RCPT TO:<a@[192.0.2.01]>") }, { TP_L("RCPT TO:<a@[0300.0.2.1]>") },
		{ TP_L("RCPT TO:<a@[192.0.2.1.5]>") }, { TP_L("RCPT TO:<a@[192.0.2.1.]>") },
		{ TP_L("RCPT TO:<a@[ 192.0.2.1]>") }, { TP_L("RCPT TO:<a@[0x7f.0.0.1]>") },
		{ TP_L("RCPT TO:<a@[IPv6:2001:db8::g]>") },
		{ TP_L("RCPT TO:<a@[IPv6:2001:db8::1%eth0]>") }, { TP_L("RCPT TO:<a@[IPv6:]>") },
		{ TP_L("RCPT TO:<a@[IPv6:192.0.2.1]>") }, { TP_L("RCPT TO:<a@[2001:db8::1]>") },
		{ TP_L("RCPT TO:<a@[]>") }, { TP_L("RCPT TO:<a@[:x]>") },
		{ TP_L("RCPT TO:<a@[tag-:x]>") }, { TP_L("RCPT TO:<a@[tag:]>") },
		{ TP_L("RCPT TO:<a@[tag:a@b]>") }, { TP_L("RCPT TO:<a@[tag:a%b]>") },
		{ TP_L("RCPT TO:<a@[tag:evil!x]>") }, { TP_L("RCPT TO:<a@[tag:a\"b]>") },
		{ TP_L("RCPT TO:<a@[[192.0.2.1]]>") }, { TP_L("RCPT TO:<a@[192.0.2.1]x>") },
		{ TP_L("RCPT TO:<a@[192.0.2.1].example>") },
		/* quoted strings */
		{ TP_L("RCPT TO:<\"unterminated@example.com>") },
		{ TP_L("RCPT TO:<\"a\"b@example.com>") }, { TP_L("RCPT TO:<a\"b\"@example.com>") },
		{ TP_L("RCPT TO:<\"a>b\"@example.com>") }, { TP_L("RCPT TO:<\"a<b\"@example.com>") },
		{ TP_L("RCPT TO:<\"a\\>b\"@example.com>") },
		{ TP_L("RCPT TO:<\"a\\\"@example.com>") }, { TP_L("RCPT TO:<\"a\x01" "b\"@example.com>") },
		{ TP_L("RCPT TO:<\"a\tb\"@example.com>") }, { TP_L("RCPT TO:<\"a\\\x01\"@example.com>") },
		{ TP_L("RCPT TO:<\"a,b:c;d<e\"@example.com>") },
		/* unquoted specials in the local part */
		{ TP_L("RCPT TO:<a\\@b@example.com>") }, { TP_L("RCPT TO:<a(comment)@example.com>") },
		{ TP_L("RCPT TO:<a,b@example.com>") }, { TP_L("RCPT TO:<a;b@example.com>") },
		{ TP_L("RCPT TO:<a:b@example.com>") }, { TP_L("RCPT TO:<a[b]@example.com>") },
		{ TP_L("RCPT TO:<a\x01@example.com>") },
		/* source routes */
		{ TP_L("RCPT TO:<@:user@example.com>") }, { TP_L("RCPT TO:<@hop.example user@example.com>") },
		{ TP_L("RCPT TO:<@hop.example,user@example.com>") },
		{ TP_L("RCPT TO:<@hop1.example:@hop2.example:user@example.com>") },
		{ TP_L("RCPT TO:<@[192.0.2.1]:user@example.com>") },
		{ TP_L("RCPT TO:<@[IPv6:2001:db8::1]:user@example.com>") },
		{ TP_L("RCPT TO:<@hop.example:>") }, { TP_L("RCPT TO:<@hop.example,:u@example.com>") },
		{ TP_L("RCPT TO:<@hop.example:@example.com>") }, { TP_L("RCPT TO:<@hop.example:postmaster>") },
		{ TP_L("RCPT TO:<@hop%evil.example:u@example.com>") }, { TP_L("RCPT TO:<@hop.example>") },
		{ TP_L("RCPT TO:<@@hop.example:u@example.com>") }, { TP_L("MAIL FROM:<@hop.example:>") },
		/* malformed UTF-8 (a lax decoder could read an overlong C1 80 as '@') */
		{ TP_L("RCPT TO:<\xc0\x80@example.com>") },
		{ TP_L("RCPT TO:<user\xc1\x80" "evil@local.example>") },
		{ TP_L("RCPT TO:<\xed\xa0\x80@example.com>") }, { TP_L("RCPT TO:<\xff@example.com>") },
		{ TP_L("RCPT TO:<a\xc3@example.com>") }, { TP_L("RCPT TO:<a@b\xc3.example>") },
		{ TP_L("RCPT TO:<a@b\xe0\x80\xaf.example>") }, { TP_L("RCPT TO:<a@b\xf4\x90\x80\x80.example>") },
		{ TP_L("RCPT TO:<\"\xc3\"@example.com>") }, { TP_L("RCPT TO:<a\x80@example.com>") },
		/* parameters */
		{ TP_L("MAIL FROM:<a@example.com> SIZE=") }, { TP_L("MAIL FROM:<a@example.com> =1") },
		{ TP_L("MAIL FROM:<a@example.com> -SIZE=1") }, { TP_L("MAIL FROM:<a@example.com> SIZE==1") },
		{ TP_L("MAIL FROM:<a@example.com> SIZE=1=2") }, { TP_L("MAIL FROM:<a@example.com> SI_ZE=1") },
		{ TP_L("MAIL FROM:<a@example.com> SIZE=\x01") },
		{ TP_L("MAIL FROM:<a@example.com> BODY=8BIT\x7f") },
		{ TP_L("MAIL FROM:<a@example.com> SIZE=1\tBODY=7BIT") },
		{ TP_L("MAIL FROM:<a@example.com> ENVID=\xc3") },
		/* bare path word */
		{ TP_L("MAIL FROM:\"a b\"@example.com") }, { TP_L("MAIL FROM:\"a\"@example.com") },
		{ TP_L("MAIL FROM:a@example.com>") }, { TP_L("MAIL FROM:a<b@example.com") },
		{ TP_L("MAIL FROM:a@example.com <b@example.com>") },
		{ TP_L("RCPT TO:a@example.com,b@example.com") },
	};
	size_t	i;

	(void)state;
	for (i = 0; i < TP_NITEMS(rows); i++) {
		struct tp_run	r;

		tp_parse(&r, rows[i].s, rows[i].len);
		tp_expect_res(&r, SMTP_PARSE_SYNTAX);
		if (r.cmd.verb != SMTP_V_MAIL && r.cmd.verb != SMTP_V_RCPT)
			fail_msg("\"%s\": verb %s", tp_show(r.buf, r.len),
			    smtp_verb_str(r.cmd.verb));
		tp_done(&r);
	}
}

/*
 * A path of SMTP_PATH_MAX octets (brackets included) passes; one octet more
 * is SYNTAX, with or without brackets.
 */
static void
test_smtp_parse_path_length_limit(void **state)
{
	static const char	 dom[] = "@example.com";
	char			 line[600];
	size_t			 pathlen, o, k;
	int			 nb;

	(void)state;
	for (nb = 0; nb <= 1; nb++) {
		for (pathlen = SMTP_PATH_MAX; pathlen <= SMTP_PATH_MAX + 1; pathlen++) {
			struct tp_run	r;
			size_t		local = pathlen - 2 - (sizeof(dom) - 1);

			o = (size_t)snprintf(line, sizeof(line), "RCPT TO:%s", nb ? "" : "<");
			for (k = 0; k < local; k++)
				line[o++] = 'a';
			memcpy(line + o, dom, sizeof(dom) - 1);
			o += sizeof(dom) - 1;
			if (!nb)
				line[o++] = '>';
			tp_parse(&r, line, o);
			if (pathlen == SMTP_PATH_MAX) {
				tp_expect_res(&r, SMTP_PARSE_OK);
				assert_int_equal(r.cmd.path.raw.len, SMTP_PATH_MAX - 2);
			} else
				tp_expect_res(&r, SMTP_PARSE_SYNTAX);
			tp_done(&r);
		}
	}
}

/* Only len bytes are read: the same text cut before its '>' is SYNTAX, cut after it is OK. */
static void
test_smtp_parse_reads_only_len_bytes(void **state)
{
	static const char	 text[] = "RCPT TO:<user@local.example> NOTIFY=NEVER";
	struct tp_run		 r;
	size_t			 gt = (size_t)(strchr(text, '>') - text);

	(void)state;
	tp_parse(&r, text, gt);
	tp_expect_res(&r, SMTP_PARSE_SYNTAX);
	tp_done(&r);
	tp_parse(&r, text, gt + 1);
	tp_expect_res(&r, SMTP_PARSE_OK);
	assert_int_equal(r.cmd.nparams, 0);
	tp_expect_slice(&r, "domain", r.cmd.path.domain, "local.example");
	tp_done(&r);
	/* a 9-byte prefix of "NOTIFY=NEVER" cuts the value, and still parses */
	tp_parse(&r, text, sizeof(text) - 1 - 3);
	tp_expect_res(&r, SMTP_PARSE_OK);
	tp_expect_slice(&r, "value", r.cmd.params[0].value, "NE");
	tp_done(&r);
}

/* ----------------------------------------------------------------- replies */

/* Reply lines: code, last-line flag and text; code alone is a final line. */
static void
test_smtp_parse_reply_lines(void **state)
{
	static const struct {
		const char	*line;
		int		 code;
		int		 last;
		const char	*text;
	} rows[] = {
		{ "250-PIPELINING", 250, 0, "PIPELINING" },
		{ "250-mail.example.com Hello client [192.0.2.1]", 250, 0,
		  "mail.example.com Hello client [192.0.2.1]" },
		{ "250 OK", 250, 1, "OK" },
		{ "250 2.1.5 Ok", 250, 1, "2.1.5 Ok" },
		{ "354 End data with <CR><LF>.<CR><LF>", 354, 1, "End data with <CR><LF>.<CR><LF>" },
		{ "220", 220, 1, "" },
		{ "250-", 250, 0, "" },
		{ "250 ", 250, 1, "" },
		{ "334 VXNlcm5hbWU6", 334, 1, "VXNlcm5hbWU6" },
		{ "421 4.3.2 Service shutting down", 421, 1, "4.3.2 Service shutting down" },
		{ "554 5.7.1 <b@example.com>: Relay access denied", 554, 1,
		  "5.7.1 <b@example.com>: Relay access denied" },
		{ "200 ok", 200, 1, "ok" },
		{ "559 x", 559, 1, "x" },
		{ "250  two spaces", 250, 1, " two spaces" },
	};
	size_t	i;

	(void)state;
	for (i = 0; i < TP_NITEMS(rows); i++) {
		struct smtp_reply_line	rl;
		size_t			len = strlen(rows[i].line);
		char			*buf = malloc(len);

		assert_non_null(buf);
		memcpy(buf, rows[i].line, len);
		if (smtp_parse_reply_line(buf, len, &rl) != 0)
			fail_msg("\"%s\": refused", rows[i].line);
		assert_int_equal(rl.code, rows[i].code);
		assert_int_equal(rl.last, rows[i].last);
		if (!tp_slice_is(rl.text, rows[i].text))
			fail_msg("\"%s\": text \"%s\"", rows[i].line,
			    tp_show(rl.text.p, rl.text.len));
		free(buf);
	}
}

/* A multi-line reply is read as continuation lines then one final line. */
static void
test_smtp_parse_reply_multiline_ends_on_last(void **state)
{
	static const char *const ehlo[] = {
		"250-mail.example.com", "250-PIPELINING", "250-SIZE 52428800",
		"250-STARTTLS", "250 8BITMIME",
	};
	size_t	i;

	(void)state;
	for (i = 0; i < TP_NITEMS(ehlo); i++) {
		struct smtp_reply_line	rl;

		assert_int_equal(smtp_parse_reply_line(ehlo[i], strlen(ehlo[i]), &rl), 0);
		assert_int_equal(rl.code, 250);
		assert_int_equal(rl.last, i == TP_NITEMS(ehlo) - 1);
	}
}

/* Anything but three digits (2-5, 0-5, 0-9) then SP, '-' or end of line is refused. */
static void
test_smtp_parse_reply_bad_codes(void **state)
{
	static const struct {
		const char	*s;
		size_t		 len;
	} rows[] = {
		{ TP_L("") }, { TP_L("2") }, { TP_L("25") }, { TP_L("2500 x") }, { TP_L("250x") },
		{ TP_L("199 x") }, { TP_L("100 x") }, { TP_L("600 x") }, { TP_L("099 x") },
		{ TP_L("260 x") }, { TP_L("290 x") }, { TP_L("25a x") }, { TP_L("2a0 x") },
		{ TP_L(" 250 x") }, { TP_L("250\tOK") }, { TP_L("250\r") }, { TP_L("abc") },
		{ TP_L("-250 x") }, { TP_L("+OK") }, { TP_L("HTTP/1.1 200 OK") },
		{ TP_L("250_x") }, { TP_L("25\0 x") },
	};
	size_t	i;

	(void)state;
	for (i = 0; i < TP_NITEMS(rows); i++) {
		struct smtp_reply_line	rl;

		if (smtp_parse_reply_line(rows[i].s, rows[i].len, &rl) != -1)
			fail_msg("\"%s\": accepted", tp_show(rows[i].s, rows[i].len));
	}
}

/* The EHLO keyword is the first word of the reply text. */
static void
test_smtp_parse_ehlo_keyword(void **state)
{
	static const struct {
		const char	*text;
		const char	*kw;
	} rows[] = {
		{ "PIPELINING", "PIPELINING" },
		{ "SIZE 52428800", "SIZE" },
		{ "AUTH PLAIN LOGIN", "AUTH" },
		{ "AUTH=LOGIN PLAIN", "AUTH=LOGIN" },
		{ "STARTTLS", "STARTTLS" },
		{ " STARTTLS", "STARTTLS" },
		{ "", "" },
		{ "   ", "" },
	};
	size_t	i;

	(void)state;
	for (i = 0; i < TP_NITEMS(rows); i++) {
		struct slice	t = { rows[i].text, strlen(rows[i].text) };
		struct slice	kw = smtp_ehlo_keyword(t);

		if (!tp_slice_is(kw, rows[i].kw))
			fail_msg("\"%s\": keyword \"%s\"", rows[i].text, tp_show(kw.p, kw.len));
	}
	assert_int_equal(smtp_ehlo_keyword(SLICE_NULL).len, 0);
}

/* ----------------------------------------------------------------- helpers */

/* smtp_slice_ieq folds ASCII case only, and lengths must match. */
static void
test_smtp_parse_slice_ieq(void **state)
{
	static const struct {
		const char	*s;
		const char	*lit;
		int		 eq;
	} rows[] = {
		{ "starttls", "STARTTLS", 1 }, { "StartTLS", "starttls", 1 },
		{ "abc", "abcd", 0 }, { "abcd", "abc", 0 }, { "", "", 1 }, { "a", "", 0 },
		{ "\xc3\xa9", "\xc3\x89", 0 }, { "[", "{", 0 }, { "@", "`", 0 },
	};
	size_t	i;

	(void)state;
	for (i = 0; i < TP_NITEMS(rows); i++) {
		struct slice	s = { rows[i].s, strlen(rows[i].s) };

		if (smtp_slice_ieq(s, rows[i].lit) != rows[i].eq)
			fail_msg("\"%s\" vs \"%s\"", rows[i].s, rows[i].lit);
	}
	assert_int_equal(smtp_slice_ieq(SLICE_NULL, ""), 1);
}

/* SIZE values: decimal up to ULLONG_MAX; signs, blanks, hex, overflow, emptiness refused. */
static void
test_smtp_parse_param_ulong(void **state)
{
	static const struct {
		const char		*s;
		int			 res;
		unsigned long long	 v;
	} rows[] = {
		{ "0", 0, 0 }, { "12345", 0, 12345 }, { "52428800", 0, 52428800ULL },
		{ "18446744073709551615", 0, 18446744073709551615ULL },
		{ "00000000000000000001", 0, 1 },
		{ "18446744073709551616", -1, 0 }, { "99999999999999999999", -1, 0 },
		{ "000000000000000000001", -1, 0 }, { "", -1, 0 }, { "+1", -1, 0 },
		{ "-1", -1, 0 }, { " 1", -1, 0 }, { "1 ", -1, 0 }, { "0x10", -1, 0 },
		{ "1e3", -1, 0 }, { "12a", -1, 0 },
	};
	size_t	i;

	(void)state;
	for (i = 0; i < TP_NITEMS(rows); i++) {
		struct slice		s = { rows[i].s, strlen(rows[i].s) };
		unsigned long long	v = 7;
		int			res = smtp_param_ulong(s, &v);

		if (res != rows[i].res || (res == 0 && v != rows[i].v))
			fail_msg("\"%s\": res %d value %llu", rows[i].s, res, v);
	}
	{
		unsigned long long	v = 7;

		assert_int_equal(smtp_param_ulong(SLICE_NULL, &v), -1);
	}
}

/* NUL, CR and LF anywhere make a line bad; everything else, even binary, does not. */
static void
test_smtp_parse_line_bad_bytes(void **state)
{
	static const struct {
		const char	*s;
		size_t		 len;
		int		 bad;
	} rows[] = {
		{ TP_L("HELO client.example"), 0 }, { TP_L(""), 0 }, { TP_L("\x01\x7f\xff"), 0 },
		{ TP_L("HELO\0x"), 1 }, { TP_L("HELO x\r"), 1 }, { TP_L("HE\nLO"), 1 },
		{ TP_L("\r"), 1 }, { TP_L("DATA\r\n"), 1 },
	};
	size_t	i;

	(void)state;
	for (i = 0; i < TP_NITEMS(rows); i++)
		if (smtp_line_has_bad_bytes(rows[i].s, rows[i].len) != rows[i].bad)
			fail_msg("\"%s\"", tp_show(rows[i].s, rows[i].len));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_smtp_parse_every_verb_any_case),
		cmocka_unit_test(test_smtp_parse_verb_str_names),
		cmocka_unit_test(test_smtp_parse_unknown_verbs_are_other),
		cmocka_unit_test(test_smtp_parse_foreign_protocols_are_not_smtp),
		cmocka_unit_test(test_smtp_parse_blank_lines_are_empty),
		cmocka_unit_test(test_smtp_parse_nul_byte_is_syntax),
		cmocka_unit_test(test_smtp_parse_args_sliced_not_interpreted),
		cmocka_unit_test(test_smtp_parse_paths_accepted),
		cmocka_unit_test(test_smtp_parse_leniencies),
		cmocka_unit_test(test_smtp_parse_relay_tricks_flagged),
		cmocka_unit_test(test_smtp_parse_esmtp_params),
		cmocka_unit_test(test_smtp_parse_cmd_param_lookup),
		cmocka_unit_test(test_smtp_parse_too_many_params),
		cmocka_unit_test(test_smtp_parse_malformed_paths_are_syntax),
		cmocka_unit_test(test_smtp_parse_path_length_limit),
		cmocka_unit_test(test_smtp_parse_reads_only_len_bytes),
		cmocka_unit_test(test_smtp_parse_reply_lines),
		cmocka_unit_test(test_smtp_parse_reply_multiline_ends_on_last),
		cmocka_unit_test(test_smtp_parse_reply_bad_codes),
		cmocka_unit_test(test_smtp_parse_ehlo_keyword),
		cmocka_unit_test(test_smtp_parse_slice_ieq),
		cmocka_unit_test(test_smtp_parse_param_ulong),
		cmocka_unit_test(test_smtp_parse_line_bad_bytes),
	};

	return cmocka_run_group_tests_name("smtp_parse", tests, NULL, NULL);
}
