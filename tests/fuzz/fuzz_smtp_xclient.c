/*
 * fuzz_smtp_xclient: the pure XCLIENT pieces (proxy/smtp/xclient.h) on
 * arbitrary input: the offer in a server's EHLO reply, xtext, the client's
 * address and the XCLIENT line smtpwall sends.
 *
 * Input: byte 0: bits 0-4 the attributes (SMTP_XA_*), bit 5 the client said
 * EHLO, bits 6-7 the client's family (AF_INET, AF_INET6, AF_UNIX, AF_INET6
 * IPv4-mapped); bytes 1-18: 16 address bytes and a 2-byte port; the rest is
 * both the EHLO reply text and the client's HELO argument.
 *
 * Invariants (abort() on violation):
 *  - smtp_xclient_offered equals a reference: XCLIENT as the first word
 *    (after spaces) of a line other than the first, its attribute names the
 *    space-separated words after it, case-insensitive;
 *  - xtext: only "!".."~" without "=", "+" always followed by two upper-case
 *    hex digits, decoding gives the input back; it needs exactly its length
 *    + 1 bytes and fails (-1) with one byte less;
 *  - the XCLIENT line: -1 exactly when it would exceed SMTP_XCLIENT_MAX;
 *    else "XCLIENT" and " NAME=VALUE" for the chosen attributes in the order
 *    ADDR PORT NAME HELO PROTO, CRLF at the end only, printable, with ADDR the
 *    client's address (IPV6: prefix for IPv6, a.b.c.d for IPv4 and mapped)
 *    and PORT its port ([UNAVAILABLE] for 0 or a non-IP client).
 * An empty reply is passed as a 1-byte block and length 0; with
 * FUZZ_SMTP_XCLIENT_NULL=1 as (NULL, 0), which xclient.h allows but which
 * smtp_xclient_offered turns into NULL + 0 (UBSan: "applying zero offset to
 * null pointer") before its NULL check: any input of 19 bytes shows it.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/smtp/xclient.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(x)	do { if (!(x)) abort(); } while (0)

static const char *const fz_names[] = { "ADDR", "PORT", "NAME", "HELO", "PROTO" };

static unsigned
fz_ref_offered(const char *r, size_t len)
{
	size_t pos = 0, line = 0;
	unsigned bits = 0;

	while (pos < len) {
		const char *nl = memchr(r + pos, '\n', len - pos);
		size_t end = nl != NULL ? (size_t)(nl - r) : len, i = pos, ws;
		int first = 1, xc = 0;

		for (;;) {
			while (i < end && r[i] == ' ')
				i++;
			if (i >= end)
				break;
			for (ws = i; i < end && r[i] != ' '; i++)
				;
			if (first && line > 0 && i - ws == 7 && strncasecmp(r + ws, "XCLIENT", 7) == 0) {
				xc = 1;
				bits |= SMTP_XA_OFFERED;
			} else if (xc) {
				for (unsigned k = 0; k < 5; k++)
					if (strlen(fz_names[k]) == i - ws &&
					    strncasecmp(r + ws, fz_names[k], i - ws) == 0)
						bits |= 1u << k;
			}
			first = 0;
		}
		line++;
		pos = end + 1;
	}
	return bits;
}

static int
fz_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* xtext of s[0..n) into a fresh malloc'd string, checked; NULL never. */
static char *
fz_xtext(const char *s, size_t n)
{
	size_t need = 0, o = 0;
	char *x;
	int len;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		need += (c < 0x21 || c > 0x7e || c == '+' || c == '=') ? 3 : 1;
	}
	FZ_CHECK((x = malloc(need + 1)) != NULL);
	if (need > 0)
		FZ_CHECK(smtp_xclient_xtext(x, need, s, n) == -1);
	FZ_CHECK(smtp_xclient_xtext(x, 0, s, n) == -1);
	len = smtp_xclient_xtext(x, need + 1, s, n);
	FZ_CHECK(len >= 0 && (size_t)len == need && strlen(x) == need);
	for (size_t i = 0; i < need; i++) {
		char c = x[i];

		FZ_CHECK(c >= 0x21 && c <= 0x7e && c != '=');
		if (c == '+') {
			int h = fz_hex(x[i + 1]), l = h < 0 ? -1 : fz_hex(x[i + 2]);

			FZ_CHECK(h >= 0 && l >= 0 && o < n && (unsigned char)s[o] == (h << 4 | l));
			i += 2;
		} else
			FZ_CHECK(o < n && s[o] == c);
		o++;
	}
	FZ_CHECK(o == n);
	return x;
}

static void
fz_line(unsigned bits, int ehlo, const struct sockaddr_storage *ss, const char *helo)
{
	static char line[4 * 4096];
	char addr[SMTP_XCLIENT_ADDR_SIZE], want[sizeof line], val[64];
	unsigned port;
	size_t n;
	int len;

	smtp_xclient_addr(ss, addr, sizeof addr, &port);
	/* the expected line */
	n = (size_t)snprintf(want, sizeof want, "XCLIENT");
	for (unsigned k = 0; k < 5; k++) {
		if (!(bits & (1u << k)))
			continue;
		switch (k) {
		case 0: snprintf(val, sizeof val, "%s", addr); break;
		case 1:
			if (port != 0)
				snprintf(val, sizeof val, "%u", port);
			else
				snprintf(val, sizeof val, "[UNAVAILABLE]");
			break;
		case 2: snprintf(val, sizeof val, "[UNAVAILABLE]"); break;
		case 3: break;
		default: snprintf(val, sizeof val, "%s", ehlo ? "ESMTP" : "SMTP"); break;
		}
		n += (size_t)snprintf(want + n, sizeof want - n, " %s=%s", fz_names[k],
		    k == 3 ? helo : val);
		FZ_CHECK(n < sizeof want);
	}
	len = smtp_xclient_line(bits, ss, helo, ehlo, line, sizeof line);
	if (n + 2 > SMTP_XCLIENT_MAX) {
		FZ_CHECK(len == -1);
		return;
	}
	FZ_CHECK(len >= 0 && (size_t)len == n + 2 && strlen(line) == n + 2);
	FZ_CHECK(memcmp(line, want, n) == 0 && memcmp(line + n, "\r\n", 2) == 0);
	for (size_t i = 0; i < n; i++)
		FZ_CHECK(line[i] >= 0x20 && line[i] <= 0x7e);
}

static void
fz_addr(const uint8_t *d, unsigned fam, struct sockaddr_storage *ss)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	char addr[SMTP_XCLIENT_ADDR_SIZE], ip[INET6_ADDRSTRLEN];
	uint16_t port = (uint16_t)(d[16] << 8 | d[17]);
	unsigned p;

	memset(ss, 0, sizeof *ss);
	switch (fam) {
	case 0:
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, d, 4);
		s4->sin_port = htons(port);
		break;
	case 1:
	case 3:
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, d, 16);
		if (fam == 3) {
			memset(&s6->sin6_addr, 0, 10);
			memset(s6->sin6_addr.s6_addr + 10, 0xff, 2);
		}
		s6->sin6_port = htons(port);
		break;
	default:
		ss->ss_family = AF_UNIX;
		break;
	}
	smtp_xclient_addr(ss, addr, sizeof addr, &p);
	if (fam == 2) {
		FZ_CHECK(strcmp(addr, "[UNAVAILABLE]") == 0 && p == 0);
		return;
	}
	FZ_CHECK(p == port);
	if (fam == 1 && !IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		FZ_CHECK(inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip) != NULL);
		FZ_CHECK(strncmp(addr, "IPV6:", 5) == 0 && strcmp(addr + 5, ip) == 0);
	} else {
		FZ_CHECK(inet_ntop(AF_INET, fam == 0 ? (const void *)&s4->sin_addr :
		    (const void *)(s6->sin6_addr.s6_addr + 12), ip, sizeof ip) != NULL);
		FZ_CHECK(strcmp(addr, ip) == 0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_storage ss;
	char *rest, *x;
	size_t n;
	unsigned got;

	if (size < 19)
		return 0;
	n = size - 19;
	FZ_CHECK((rest = malloc(n ? n : 1)) != NULL);	/* exact size: ASan sees overreads */
	memcpy(rest, data + 19, n);

	got = smtp_xclient_offered(n || getenv("FUZZ_SMTP_XCLIENT_NULL") == NULL ? rest : NULL, n);
	FZ_CHECK(got == fz_ref_offered(rest, n));
	FZ_CHECK((got & ~(unsigned)(SMTP_XA_ATTRS | SMTP_XA_OFFERED)) == 0);

	x = fz_xtext(rest, n);
	fz_addr(data + 1, data[0] >> 6, &ss);
	fz_line(data[0] & SMTP_XA_ATTRS, (data[0] >> 5) & 1, &ss, x);
	free(x);
	free(rest);
	return 0;
}
