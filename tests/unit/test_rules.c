/*
 * test_rules: the rules/ module as an administrator sees it. Addresses and
 * CIDR blocks, domain patterns, sender globs, the rules-file language (every
 * error with its line), format/parse round trip, expiry, SPEC.md's relay
 * decision as a table, and the live ruleset: add/remove/replace/expire,
 * old versions unchanged, hits shared, hand-written comments kept by
 * rules_write, and 20000 random changes checked against a linear model.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>

#include "rules/rules.h"

#define TR_T_2026_12_04	((time_t)1796403600)	/* 2026-12-04T17:00:00Z */
#define TR_T_2030	((time_t)1893456000)	/* 2030-01-01T00:00:00Z */
#define TR_T_2020	((time_t)1577836800)	/* 2020-01-01T00:00:00Z */
#define TR_NOW		((time_t)1767225600)	/* 2026-01-01T00:00:00Z */

/* ---- helpers --------------------------------------------------------------- */

static const struct sockaddr *
tr_sa(const char *ip, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	if (strchr(ip, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(25);
		assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(25);
		assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	}
	return (const struct sockaddr *)ss;
}

static struct rules_cidr
tr_cidr(const char *s)
{
	struct rules_cidr c;
	char err[RULES_ERR_LEN] = "";

	if (rules_cidr_parse(s, strlen(s), &c, err) != 0)
		fail_msg("cidr '%s': %s", s, err);
	return c;
}

static int
tr_cidr_match(const char *cidr, const char *ip)
{
	struct rules_cidr c = tr_cidr(cidr);
	struct sockaddr_storage ss;

	return rules_cidr_match(&c, tr_sa(ip, &ss));
}

#define TR_MAX_ERRS	64

struct tr_errs {
	unsigned	n;
	unsigned	line[TR_MAX_ERRS];
	char		msg[TR_MAX_ERRS][RULES_ERR_LEN];
};

static void
tr_collect(void *arg, unsigned line, const char *msg)
{
	struct tr_errs *e = arg;

	assert_true(e->n < TR_MAX_ERRS);
	e->line[e->n] = line;
	snprintf(e->msg[e->n], RULES_ERR_LEN, "%s", msg);
	e->n++;
}

static void
tr_fail_on_error(void *arg, unsigned line, const char *msg)
{
	(void)arg;
	fail_msg("unexpected error at line %u: %s", line, msg);
}

static struct ruleset *
tr_parse_ok(const char *text)
{
	struct ruleset *rs = rules_parse(text, strlen(text), tr_fail_on_error, NULL);

	assert_non_null(rs);
	return rs;
}

/* ---- CIDR ------------------------------------------------------------------- */

static void
test_rules_cidr_parse_good(void **state)
{
	static const struct {
		const char	*in;
		const char	*canon;
		int		 family;
		unsigned	 prefix;
	} t[] = {
		{ "203.0.113.0/24",	"203.0.113.0/24",	AF_INET,  24 },
		{ "192.0.2.15",		"192.0.2.15/32",	AF_INET,  32 },
		{ "192.0.2.15/32",	"192.0.2.15/32",	AF_INET,  32 },
		{ "0.0.0.0/0",		"0.0.0.0/0",		AF_INET,  0 },
		{ "198.51.100.128/25",	"198.51.100.128/25",	AF_INET,  25 },
		{ "2001:db8::/32",	"2001:db8::/32",	AF_INET6, 32 },
		{ "2001:DB8:0::/32",	"2001:db8::/32",	AF_INET6, 32 },
		{ "2001:db8::1",	"2001:db8::1/128",	AF_INET6, 128 },
		{ "::/0",		"::/0",			AF_INET6, 0 },
		{ "::1/128",		"::1/128",		AF_INET6, 128 },
		{ "::ffff:192.0.2.0/120", "::ffff:192.0.2.0/120", AF_INET6, 120 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct rules_cidr c = tr_cidr(t[i].in);
		char buf[64];

		assert_int_equal(c.family, t[i].family);
		assert_int_equal(c.prefix, t[i].prefix);
		assert_int_equal(rules_cidr_format(&c, buf, sizeof buf), (int)strlen(t[i].canon));
		assert_string_equal(buf, t[i].canon);
	}
	{
		struct rules_cidr c = tr_cidr("203.0.113.0/24");
		const uint8_t want[4] = { 203, 0, 113, 0 };

		assert_memory_equal(c.addr, want, 4);
	}
	/* a counted string: bytes after len are not part of it */
	{
		struct rules_cidr c;
		char err[RULES_ERR_LEN];

		assert_int_equal(rules_cidr_parse("192.0.2.0/24garbage", 12, &c, err), 0);
		assert_int_equal(c.prefix, 24);
	}
}

static void
test_rules_cidr_parse_errors(void **state)
{
	static const struct {
		const char	*in;
		size_t		 len;	/* 0: strlen */
		const char	*msg;
	} t[] = {
		{ "",			0, "empty address" },
		{ "192.0.2.1/24",	0, "'192.0.2.1/24': host bits set; did you mean 192.0.2.0/24?" },
		{ "198.51.100.129/25",	0, "'198.51.100.129/25': host bits set; did you mean 198.51.100.128/25?" },
		{ "2001:db8::1/32",	0, "'2001:db8::1/32': host bits set; did you mean 2001:db8::/32?" },
		{ "192.0.2.0/33",	0, "'192.0.2.0/33': prefix length out of range for IPv4 (0..32)" },
		{ "2001:db8::/129",	0, "'2001:db8::/129': prefix length out of range for IPv6 (0..128)" },
		{ "192.0.2.0/99999",	0, "'192.0.2.0/99999': prefix length out of range for IPv4 (0..32)" },
		{ "192.0.2.0/24x",	0, "'192.0.2.0/24x': garbage after the prefix length" },
		{ "192.0.2.0/24/8",	0, "'192.0.2.0/24/8': garbage after the prefix length" },
		{ "192.0.2.0/",		0, "'192.0.2.0/': missing prefix length after '/'" },
		{ "192.0.2.0/-1",	0, "'192.0.2.0/-1': bad prefix length" },
		{ "192.0.2.0/+24",	0, "'192.0.2.0/+24': bad prefix length" },
		{ "192.0.2.0/024",	0, "'192.0.2.0/024': bad prefix length" },
		{ "192.0.2",		0, "'192.0.2' is not an IPv4 or IPv6 address" },
		{ "192.0.2.256",	0, "'192.0.2.256' is not an IPv4 or IPv6 address" },
		{ "01.2.3.4",		0, "'01.2.3.4' is not an IPv4 or IPv6 address" },
		{ " 192.0.2.1",		0, "' 192.0.2.1' is not an IPv4 or IPv6 address" },
		{ "fe80::1%eth0",	0, "'fe80::1%eth0' is not an IPv4 or IPv6 address" },
		{ "/24",		0, "'/24' is not an IPv4 or IPv6 address" },
		{ "example.com",	0, "'example.com' is not an IPv4 or IPv6 address" },
		{ "192.0.2.1\0/32",	13, "'192.0.2.1\\x00/32' is not an IPv4 or IPv6 address" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct rules_cidr c;
		char err[RULES_ERR_LEN] = "";
		size_t len = t[i].len ? t[i].len : strlen(t[i].in);

		assert_int_equal(rules_cidr_parse(t[i].in, len, &c, err), -1);
		assert_string_equal(err, t[i].msg);
	}
}

static void
test_rules_cidr_match_families(void **state)
{
	struct sockaddr_un sun;
	struct rules_cidr c = tr_cidr("0.0.0.0/0");

	(void)state;
	assert_true(tr_cidr_match("203.0.113.0/24", "203.0.113.0"));
	assert_true(tr_cidr_match("203.0.113.0/24", "203.0.113.255"));
	assert_false(tr_cidr_match("203.0.113.0/24", "203.0.114.0"));
	assert_false(tr_cidr_match("203.0.113.0/24", "203.0.112.255"));
	assert_true(tr_cidr_match("198.51.100.128/25", "198.51.100.200"));
	assert_false(tr_cidr_match("198.51.100.128/25", "198.51.100.127"));
	assert_true(tr_cidr_match("192.0.2.14/31", "192.0.2.15"));
	assert_false(tr_cidr_match("192.0.2.14/31", "192.0.2.16"));
	assert_true(tr_cidr_match("192.0.2.15", "192.0.2.15"));
	assert_false(tr_cidr_match("192.0.2.15", "192.0.2.14"));
	assert_true(tr_cidr_match("0.0.0.0/0", "198.51.100.7"));

	assert_true(tr_cidr_match("2001:db8::/32", "2001:db8:ffff::1"));
	assert_false(tr_cidr_match("2001:db8::/32", "2001:db9::1"));
	assert_true(tr_cidr_match("2001:db8:1::/49", "2001:db8:1:7fff::1"));
	assert_false(tr_cidr_match("2001:db8:1::/49", "2001:db8:1:8000::1"));
	assert_true(tr_cidr_match("::1", "::1"));

	/* a dual-stack listener sees IPv4 clients as v4-mapped IPv6 */
	assert_true(tr_cidr_match("192.0.2.0/24", "::ffff:192.0.2.1"));
	assert_false(tr_cidr_match("192.0.2.0/24", "::ffff:198.51.100.1"));
	assert_true(tr_cidr_match("192.0.2.1", "::ffff:192.0.2.1"));
	/* an IPv6 block written in the mapped range names IPv4 clients too */
	assert_true(tr_cidr_match("::ffff:192.0.2.0/120", "192.0.2.77"));
	assert_false(tr_cidr_match("::ffff:192.0.2.0/120", "198.51.100.77"));
	/* but families do not otherwise mix */
	assert_false(tr_cidr_match("::/0", "192.0.2.1"));
	assert_false(tr_cidr_match("::/0", "::ffff:192.0.2.1"));
	assert_false(tr_cidr_match("0.0.0.0/0", "2001:db8::1"));
	assert_false(tr_cidr_match("192.0.2.0/24", "::192.0.2.1"));	/* v4-compatible is not v4-mapped */

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	assert_false(rules_cidr_match(&c, (const struct sockaddr *)&sun));
	assert_false(rules_cidr_match(&c, NULL));
}

static void
test_rules_cidr_format_truncates_like_snprintf(void **state)
{
	struct rules_cidr c = tr_cidr("203.0.113.0/24");
	char buf[8];

	(void)state;
	assert_int_equal(rules_cidr_format(&c, buf, sizeof buf), 14);
	assert_string_equal(buf, "203.0.1");
}

static void
test_rules_cidrset_add_match_get(void **state)
{
	struct rules_cidrset *cs = rules_cidrset_new();
	struct rules_cidr c;
	struct sockaddr_storage ss;
	char buf[64];
	int i;

	(void)state;
	assert_non_null(cs);
	assert_int_equal(rules_cidrset_count(cs), 0);
	assert_false(rules_cidrset_match(cs, tr_sa("127.0.0.1", &ss)));
	c = tr_cidr("127.0.0.0/8");
	assert_int_equal(rules_cidrset_add(cs, &c), 0);
	c = tr_cidr("::1/128");
	assert_int_equal(rules_cidrset_add(cs, &c), 0);
	/* grow past the first allocation */
	for (i = 0; i < 40; i++) {
		char s[32];

		snprintf(s, sizeof s, "10.%d.0.0/16", i);
		c = tr_cidr(s);
		assert_int_equal(rules_cidrset_add(cs, &c), 0);
	}
	assert_int_equal(rules_cidrset_count(cs), 42);
	rules_cidr_format(rules_cidrset_get(cs, 1), buf, sizeof buf);
	assert_string_equal(buf, "::1/128");
	rules_cidr_format(rules_cidrset_get(cs, 41), buf, sizeof buf);
	assert_string_equal(buf, "10.39.0.0/16");
	assert_null(rules_cidrset_get(cs, 42));

	assert_true(rules_cidrset_match(cs, tr_sa("127.1.2.3", &ss)));
	assert_true(rules_cidrset_match(cs, tr_sa("::ffff:127.0.0.1", &ss)));
	assert_true(rules_cidrset_match(cs, tr_sa("::1", &ss)));
	assert_true(rules_cidrset_match(cs, tr_sa("10.39.255.255", &ss)));
	assert_false(rules_cidrset_match(cs, tr_sa("10.40.0.0", &ss)));
	assert_false(rules_cidrset_match(cs, tr_sa("::2", &ss)));
	assert_false(rules_cidrset_match(NULL, tr_sa("127.0.0.1", &ss)));
	assert_int_equal(rules_cidrset_count(NULL), 0);
	rules_cidrset_free(cs);
	rules_cidrset_free(NULL);
}

/* ---- domain patterns --------------------------------------------------------- */

static void
test_rules_domain_pattern_check(void **state)
{
	static const char *good[] = {
		"example.com", "Example.COM", ".example.com", "localhost", "a-b.c-d.example",
		"xn--bcher-kva.example", "0.example", "1e100.net", "[198.51.100.2]",
		"[IPv6:2001:db8::1]", "[ipv6:2001:DB8::1]", "[IPv6:::ffff:192.0.2.1]",
	};
	static const struct {
		const char *in;
		const char *msg;
	} bad[] = {
		{ "",			"empty domain pattern" },
		{ ".",			"'.' is not a domain pattern" },
		{ "example.com.",	"'example.com.': no trailing dot in a domain pattern" },
		{ "*.example.com",	"'*.example.com': '*' is not allowed; write .example.com for every subdomain of example.com" },
		{ "a..example.com",	"'a..example.com': empty label" },
		{ "..example.com",	"'..example.com': empty label" },
		{ "-a.example.com",	"'-a.example.com': a label may not begin or end with '-'" },
		{ "a-.example.com",	"'a-.example.com': a label may not begin or end with '-'" },
		{ "ex_ample.com",	"'ex_ample.com': invalid character '_' in a domain (letters, digits, '-' and '.' only)" },
		{ "ex ample.com",	"'ex ample.com': invalid character ' ' in a domain (letters, digits, '-' and '.' only)" },
		{ "b\xc3\xbc" "cher.example", "'b\\xc3\\xbccher.example': invalid character '\\xc3' in a domain (letters, digits, '-' and '.' only)" },
		{ "192.0.2.1",		"'192.0.2.1' is an address; write the address literal [192.0.2.1]" },
		{ "[198.51.100.2",	"address literal '[198.51.100.2' lacks its closing ']'" },
		{ "[198.51.100.256]",	"bad address literal '[198.51.100.256]': expected [192.0.2.1] or [IPv6:2001:db8::1]" },
		{ "[2001:db8::1]",	"bad address literal '[2001:db8::1]': an IPv6 literal is written [IPv6:2001:db8::1]" },
		{ "[IPv6:192.0.2.1]",	"bad address literal '[IPv6:192.0.2.1]': expected [192.0.2.1] or [IPv6:2001:db8::1]" },
		{ "[]",			"bad address literal '[]': expected [192.0.2.1] or [IPv6:2001:db8::1]" },
	};
	char err[RULES_ERR_LEN];
	char longlabel[80], longname[300];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof good / sizeof good[0]; i++) {
		if (rules_domain_pattern_check(good[i], strlen(good[i]), err) != 0)
			fail_msg("'%s' refused: %s", good[i], err);
	}
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		assert_int_equal(rules_domain_pattern_check(bad[i].in, strlen(bad[i].in), err), -1);
		assert_string_equal(err, bad[i].msg);
	}

	/* a 63-byte label is fine, 64 is not */
	memset(longlabel, 'a', 63);
	strcpy(longlabel + 63, ".example");
	assert_int_equal(rules_domain_pattern_check(longlabel, strlen(longlabel), err), 0);
	memset(longlabel, 'a', 64);
	strcpy(longlabel + 64, ".example");
	assert_int_equal(rules_domain_pattern_check(longlabel, strlen(longlabel), err), -1);
	assert_non_null(strstr(err, "label longer than 63 bytes"));

	/* 253 bytes in all is fine (and .253 too), 254 is not */
	for (i = 0; i < 253; i++)
		longname[i] = (i % 50 == 49) ? '.' : 'a';
	longname[253] = '\0';
	assert_int_equal(rules_domain_pattern_check(longname, 253, err), 0);
	memmove(longname + 1, longname, 254);
	longname[0] = '.';
	assert_int_equal(rules_domain_pattern_check(longname, 254, err), 0);
	longname[0] = 'a';
	assert_int_equal(rules_domain_pattern_check(longname, 254, err), -1);
	assert_non_null(strstr(err, "longer than 253 bytes"));
}

static void
test_rules_domain_match_names(void **state)
{
	static const struct {
		const char	*pattern;
		const char	*domain;
		int		 match;
	} t[] = {
		{ "example.com",	"example.com",		1 },
		{ "example.com",	"EXAMPLE.Com",		1 },
		{ "example.com",	"example.com.",		1 },
		{ "example.com",	"example.com..",	0 },
		{ "example.com",	".",			0 },
		{ "example.com",	"",			0 },
		{ "example.com",	"mail.example.com",	0 },
		{ "example.com",	"example.co",		0 },
		{ "example.com",	"example.comm",		0 },
		{ "example.com",	"xexample.com",		0 },
		{ ".example.com",	"mail.example.com",	1 },
		{ ".example.com",	"a.b.Mail.EXAMPLE.com.", 1 },
		{ ".example.com",	"example.com",		0 },	/* not the apex */
		{ ".example.com",	".example.com",		0 },
		{ ".example.com",	"badexample.com",	0 },
		{ ".example.com",	"a..example.com",	0 },
		{ ".example.com",	"x.example.com..",	0 },
		{ ".example.com",	"a%b.example.com",	0 },
		{ ".example.com",	"a@b.example.com",	0 },
		{ "example.com",	"examp\xc3\xa9.com",	0 },	/* UTF-8 never matches ASCII */
		{ ".example.com",	"\xc3\xa9.example.com",	0 },
		{ "[198.51.100.2]",	"[198.51.100.2]",	1 },
		{ "[198.51.100.2]",	"[198.51.100.3]",	0 },
		{ "[198.51.100.2]",	"198.51.100.2",		0 },
		{ "[198.51.100.2]",	"[198.51.100.2].",	0 },
		{ "[198.51.100.2]",	"[IPv6:::ffff:198.51.100.2]", 0 },
		{ "[IPv6:2001:db8::1]",	"[IPv6:2001:DB8:0::1]",	1 },
		{ "[IPv6:2001:db8::1]",	"[ipv6:2001:db8:0:0:0:0:0:1]", 1 },
		{ "[IPv6:2001:db8::1]",	"[IPv6:2001:db8::2]",	0 },
		{ "[IPv6:2001:db8::1]",	"[2001:db8::1]",	0 },
		{ "example.com",	"[198.51.100.2]",	0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof t / sizeof t[0]; i++) {
		int m = rules_domain_match(t[i].pattern, strlen(t[i].pattern), t[i].domain,
		    strlen(t[i].domain));

		if (m != t[i].match)
			fail_msg("pattern '%s' domain '%s': got %d, want %d", t[i].pattern,
			    t[i].domain, m, t[i].match);
	}
}

static void
test_rules_domainset_normalizes(void **state)
{
	struct rules_domainset *ds = rules_domainset_new();
	char err[RULES_ERR_LEN];

	(void)state;
	assert_non_null(ds);
	assert_int_equal(rules_domainset_add(ds, "Example.COM", 11, err), 0);
	assert_int_equal(rules_domainset_add(ds, ".Example.NET", 12, err), 0);
	assert_int_equal(rules_domainset_add(ds, "[198.51.100.2]", 14, err), 0);
	assert_int_equal(rules_domainset_add(ds, "[ipv6:2001:DB8:0::25]", 21, err), 0);
	assert_int_equal(rules_domainset_add(ds, "bad..example", 12, err), -1);
	assert_string_equal(err, "'bad..example': empty label");

	assert_int_equal(rules_domainset_count(ds), 4);
	assert_string_equal(rules_domainset_get(ds, 0), "example.com");
	assert_string_equal(rules_domainset_get(ds, 1), ".example.net");
	assert_string_equal(rules_domainset_get(ds, 2), "[198.51.100.2]");
	assert_string_equal(rules_domainset_get(ds, 3), "[IPv6:2001:db8::25]");
	assert_null(rules_domainset_get(ds, 4));

	assert_true(rules_domainset_match(ds, "EXAMPLE.com.", 12));
	assert_true(rules_domainset_match(ds, "mx.example.net", 14));
	assert_false(rules_domainset_match(ds, "example.net", 11));
	assert_true(rules_domainset_match(ds, "[IPv6:2001:db8::0:25]", 21));
	assert_false(rules_domainset_match(ds, "other.example", 13));
	assert_false(rules_domainset_match(NULL, "example.com", 11));
	assert_int_equal(rules_domainset_count(NULL), 0);
	rules_domainset_free(ds);
	rules_domainset_free(NULL);
}

/* ---- sender globs ------------------------------------------------------------ */

static void
test_rules_sender_match_globs(void **state)
{
	static const struct {
		const char	*pattern;
		const char	*addr;
		int		 match;
	} t[] = {
		{ "*@spam.example",	"joe@spam.example",	1 },
		{ "*@spam.example",	"Joe@SPAM.Example",	1 },
		{ "*@spam.example",	"@spam.example",	1 },	/* '*' takes the empty run */
		{ "*@spam.example",	"joe@spam.example.org",	0 },
		{ "*@spam.example",	"joe@notspam.example",	0 },
		{ "*@*spam.example",	"joe@notspam.example",	1 },
		{ "*@spam.example*",	"joe@spam.example.org",	1 },
		{ "joe@spam.example",	"JOE@spam.example",	1 },
		{ "joe@spam.example",	"joe2@spam.example",	0 },
		{ "jo?@spam.example",	"jon@spam.example",	1 },
		{ "jo?@spam.example",	"jo@spam.example",	0 },
		{ "jo?@spam.example",	"jonn@spam.example",	0 },
		{ "???",		"a\xc3\xa9",		1 },	/* '?' is one byte */
		{ "*",			"anything@at.all",	1 },
		{ "**",			"x",			1 },
		{ "a*b*c",		"aXXbYYc",		1 },
		{ "a*b*c",		"aXXbYYcd",		0 },
		{ "a*b*c",		"acb",			0 },
		{ "*ab",		"aab",			1 },
		{ "<>",			"",			1 },
		{ "<>",			"<>",			0 },
		{ "<>",			"a@b",			0 },
		{ "*",			"",			0 },	/* only <> matches the null sender */
		{ "",			"",			0 },
		{ "",			"a",			0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof t / sizeof t[0]; i++) {
		int m = rules_sender_match(t[i].pattern, strlen(t[i].pattern), t[i].addr,
		    strlen(t[i].addr));

		if (m != t[i].match)
			fail_msg("pattern '%s' addr '%s': got %d, want %d", t[i].pattern,
			    t[i].addr, m, t[i].match);
	}
}

static void
test_rules_sender_match_pathological_is_fast(void **state)
{
	char addr[4096], pat[512];
	struct timespec t0, t1;
	size_t i, plen = 0;
	double secs;

	(void)state;
	memset(addr, 'a', sizeof addr);
	for (i = 0; i < 100; i++) {
		pat[plen++] = '*';
		pat[plen++] = 'a';
	}
	pat[plen++] = '*';
	pat[plen++] = 'b';

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < 1000; i++)
		assert_false(rules_sender_match("*a*a*a*a*a*b", 12, addr, 256));
	/* a backtracking matcher needs about 4096^100 steps here */
	assert_false(rules_sender_match(pat, plen, addr, sizeof addr));
	assert_true(rules_sender_match(pat, plen - 1, addr, sizeof addr));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(secs < 2.0);
}

/* ---- the rules-file language ---------------------------------------------------- */

static void
test_rules_parse_realistic_file(void **state)
{
	static const char text[] =
	    "# smtpwall live rules\n"						/* 1 */
	    "\n"								/* 2 */
	    "block sender *@Spam.Example\t# glob, case-insensitive\n"		/* 3 */
	    "block sender <>   until=2026-12-04T17:00:00Z comment=\"bounce \\\"flood\\\" #42 \\\\ ok\"\n" /* 4 */
	    "block client 203.0.113.0/24 comment=\"botnet\"\r\n"		/* 5 */
	    "\tblock client 2001:db8:bad::/48 until=2030-01-01T00:00:00Z\n"	/* 6 */
	    "allow relay 192.0.2.15/32 to sms.carrier.example comment=\"SMS gateway\"  # ok\n" /* 7 */
	    "   \t   # indented comment\n"					/* 8 */
	    "allow relay 2001:db8::15 to .Partner.Example comment=\"\" until=2030-01-01T00:00:00Z\n" /* 9 */
	    "allow relay 192.0.2.16 to [ipv6:2001:DB8::25]\n"			/* 10 */
	    "block sender \"Quoted.Local\"@X.example";			/* 11, no final LF */
	struct ruleset *rs = tr_parse_ok(text);
	const struct rules_rule *r;
	char buf[64];

	(void)state;
	assert_int_equal(rules_count(rs), 8);

	r = rules_get(rs, 0);
	assert_int_equal(r->kind, RULES_BLOCK_SENDER);
	assert_string_equal(r->pattern, "*@spam.example");
	assert_int_equal(r->until, 0);
	assert_string_equal(r->comment, "");
	assert_int_equal(r->line, 3);
	assert_int_equal(r->hits, 0);

	r = rules_get(rs, 1);
	assert_int_equal(r->kind, RULES_BLOCK_SENDER);
	assert_string_equal(r->pattern, "<>");
	assert_int_equal(r->until, TR_T_2026_12_04);
	assert_string_equal(r->comment, "bounce \"flood\" #42 \\ ok");
	assert_int_equal(r->line, 4);

	r = rules_get(rs, 2);
	assert_int_equal(r->kind, RULES_BLOCK_CLIENT);
	rules_cidr_format(&r->cidr, buf, sizeof buf);
	assert_string_equal(buf, "203.0.113.0/24");
	assert_string_equal(r->comment, "botnet");
	assert_int_equal(r->line, 5);

	r = rules_get(rs, 3);
	assert_int_equal(r->kind, RULES_BLOCK_CLIENT);
	rules_cidr_format(&r->cidr, buf, sizeof buf);
	assert_string_equal(buf, "2001:db8:bad::/48");
	assert_int_equal(r->until, TR_T_2030);
	assert_int_equal(r->line, 6);

	r = rules_get(rs, 4);
	assert_int_equal(r->kind, RULES_ALLOW_RELAY);
	rules_cidr_format(&r->cidr, buf, sizeof buf);
	assert_string_equal(buf, "192.0.2.15/32");
	assert_string_equal(r->pattern, "sms.carrier.example");
	assert_string_equal(r->comment, "SMS gateway");
	assert_int_equal(r->line, 7);

	r = rules_get(rs, 5);
	assert_int_equal(r->kind, RULES_ALLOW_RELAY);
	rules_cidr_format(&r->cidr, buf, sizeof buf);
	assert_string_equal(buf, "2001:db8::15/128");
	assert_string_equal(r->pattern, ".partner.example");
	assert_string_equal(r->comment, "");
	assert_int_equal(r->until, TR_T_2030);
	assert_int_equal(r->line, 9);

	r = rules_get(rs, 6);
	assert_string_equal(r->pattern, "[IPv6:2001:db8::25]");
	assert_int_equal(r->line, 10);

	r = rules_get(rs, 7);
	assert_string_equal(r->pattern, "\"quoted.local\"@x.example");
	assert_int_equal(r->line, 11);
	assert_null(rules_get(rs, 8));
	rules_unref(rs);
}

static void
test_rules_parse_empty_and_comment_only(void **state)
{
	static const char *texts[] = { "", "\n\n", "# nothing\n   # here\n\t\n", "\r\n" };
	struct ruleset *rs;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof texts / sizeof texts[0]; i++) {
		rs = tr_parse_ok(texts[i]);
		assert_int_equal(rules_count(rs), 0);
		assert_null(rules_get(rs, 0));
		rules_unref(rs);
	}
	rs = rules_parse(NULL, 0, tr_fail_on_error, NULL);
	assert_non_null(rs);
	assert_int_equal(rules_count(rs), 0);
	rules_unref(rs);
	rs = rules_empty();
	assert_non_null(rs);
	assert_int_equal(rules_count(rs), 0);
	rules_unref(rs);
	assert_int_equal(rules_count(NULL), 0);
}

static void
test_rules_parse_reports_every_error_with_its_line(void **state)
{
	static const char text[] =
	    "# errors below\n"								/* 1 */
	    "blok sender *@x.example\n"							/* 2 */
	    "block sender *@ok.example\n"						/* 3 good */
	    "block foo bar\n"								/* 4 */
	    "allow relay 192.0.2.15/32 sms.example\n"					/* 5 */
	    "allow relay 192.0.2.1/24 to a.example\n"					/* 6 */
	    "block client 203.0.113.0/33\n"						/* 7 */
	    "block sender *@x.example until=2026-13-01T00:00:00Z\n"			/* 8 */
	    "block sender *@x.example until=2026-12-04T17:00:00Z until=2026-12-05T17:00:00Z\n" /* 9 */
	    "block sender *@x.example comment=\"a\" comment=\"b\"\n"			/* 10 */
	    "block sender *@x.example comment=\"unterminated # \\\"\n"			/* 11 */
	    "block sender *@x.example comment=bare\n"					/* 12 */
	    "block sender *@x.example foo\n"						/* 13 */
	    "block sender <user@x.example>\n"						/* 14 */
	    "block sender\n"								/* 15 */
	    "block client   # no CIDR\n"						/* 16 */
	    "allow relay 192.0.2.15 to\n"						/* 17 */
	    "allow relay 192.0.2.15 to *.example.com\n"					/* 18 */
	    "allow relay 192.0.2.15 to example.com.\n"					/* 19 */
	    "block sender foo#bar@x.example\n"						/* 20 */
	    "block sender *@x.example comment=\"bad \\n escape\"\n"			/* 21 */
	    "block sender *@x.example until=2026-02-29T00:00:00Z\n"			/* 22 */
	    "block client 2001:db8::1/32\n"						/* 23 */
	    "allow relay 192.0.2.15 to a.example until=1970-01-01T00:00:00Z\n"		/* 24 */
	    "block sender *@x.example comment=\"x\"y\n"					/* 25 */
	    "block sender a\x01" "b@x.example\n"					/* 26 */
	    "allow relay to a.example\n"						/* 27 */
	    "Block sender *@x.example\n"						/* 28 */
	    "block\n"									/* 29 */
	    "block sender *@x.example until=2026-12-04 17:00:00Z\n"			/* 30 */
	    "allow relay 192.0.2.15 to a.example b.example\n"				/* 31 */
	    "block sender *@x.example comment=\"tab\there\"\n"				/* 32 */
	    "block sender *@x.example comment=\"x\"# glued\n"				/* 33 */
	    "allow relay 192.0.2.15 from a.example\n"					/* 34 */
	    "block sender Comment=\"x\"@y.example\n"					/* 35 */
	    "block client 198.51.100.0/24\n";						/* 36 good */
	static const struct {
		unsigned	 line;
		const char	*msg;
	} want[] = {
		{ 2,  "unknown rule 'blok'; expected block sender|block client|allow relay" },
		{ 4,  "unknown rule 'block foo'; expected block sender|block client|allow relay" },
		{ 5,  "allow relay: expected 'to' after the CIDR" },
		{ 6,  "allow relay: '192.0.2.1/24': host bits set; did you mean 192.0.2.0/24?" },
		{ 7,  "block client: '203.0.113.0/33': prefix length out of range for IPv4 (0..32)" },
		{ 8,  "bad until= time '2026-13-01T00:00:00Z': expected YYYY-MM-DDTHH:MM:SSZ" },
		{ 9,  "duplicate until=" },
		{ 10, "duplicate comment=" },
		{ 11, "comment=: missing closing '\"'" },
		{ 12, "comment= takes a double-quoted text: comment=\"...\"" },
		{ 13, "unexpected 'foo' after the rule; expected until= or comment=" },
		{ 14, "block sender: '<user@x.example>': write the address without '<' '>' (the pattern <> alone is the null sender)" },
		{ 15, "block sender: expected a sender pattern" },
		{ 16, "block client: expected a CIDR" },
		{ 17, "allow relay: expected a domain pattern after 'to'" },
		{ 18, "allow relay: '*.example.com': '*' is not allowed; write .example.com for every subdomain of example.com" },
		{ 19, "allow relay: 'example.com.': no trailing dot in a domain pattern" },
		{ 20, "'#' inside the word 'foo#': a comment needs a space before it, and '#' is not allowed in a rule" },
		{ 21, "comment=: unknown escape '\\n' (only \\\" and \\\\)" },
		{ 22, "bad until= time '2026-02-29T00:00:00Z': expected YYYY-MM-DDTHH:MM:SSZ" },
		{ 23, "block client: '2001:db8::1/32': host bits set; did you mean 2001:db8::/32?" },
		{ 24, "bad until= time '1970-01-01T00:00:00Z': expected YYYY-MM-DDTHH:MM:SSZ" },
		{ 25, "comment=: garbage after the closing '\"'" },
		{ 26, "block sender: control character in pattern 'a\\x01b@x.example'" },
		{ 27, "allow relay: 'to' is not an IPv4 or IPv6 address" },
		{ 28, "unknown rule 'Block'; expected block sender|block client|allow relay" },
		{ 29, "unknown rule 'block'; expected block sender|block client|allow relay" },
		{ 30, "bad until= time '2026-12-04': expected YYYY-MM-DDTHH:MM:SSZ" },
		{ 31, "unexpected 'b.example' after the rule; expected until= or comment=" },
		{ 32, "comment=: control character in the text" },
		{ 33, "'#' right after comment=\"...\": put a space before a comment" },
		{ 34, "allow relay: expected 'to' after the CIDR" },
		/* lowercased it would read back as an option (found by fuzzing) */
		{ 35, "block sender: a pattern may not begin with comment=\"" },
	};
	struct tr_errs e;
	size_t i;

	(void)state;
	memset(&e, 0, sizeof e);
	assert_null(rules_parse(text, strlen(text), tr_collect, &e));
	for (i = 0; i < e.n && i < sizeof want / sizeof want[0]; i++) {
		if (e.line[i] != want[i].line || strcmp(e.msg[i], want[i].msg) != 0)
			fail_msg("error %zu: got line %u '%s', want line %u '%s'", i, e.line[i],
			    e.msg[i], want[i].line, want[i].msg);
	}
	assert_int_equal(e.n, sizeof want / sizeof want[0]);
}

static void
test_rules_parse_limits(void **state)
{
	char text[1024];
	struct tr_errs e;
	struct ruleset *rs;
	int n;

	(void)state;
	/* 255-byte pattern and comment fit; 256 do not */
	n = snprintf(text, sizeof text, "block sender %0255d comment=\"%0255d\"\n", 0, 0);
	rs = rules_parse(text, (size_t)n, tr_fail_on_error, NULL);
	assert_non_null(rs);
	assert_int_equal(strlen(rules_get(rs, 0)->pattern), 255);
	assert_int_equal(strlen(rules_get(rs, 0)->comment), 255);
	rules_unref(rs);

	memset(&e, 0, sizeof e);
	n = snprintf(text, sizeof text, "block sender %0256d\nblock sender x comment=\"%0256d\"\n", 0, 0);
	assert_null(rules_parse(text, (size_t)n, tr_collect, &e));
	assert_int_equal(e.n, 2);
	assert_int_equal(e.line[0], 1);
	assert_string_equal(e.msg[0], "block sender: pattern longer than 255 bytes");
	assert_int_equal(e.line[1], 2);
	assert_string_equal(e.msg[1], "comment=: text longer than 255 bytes");

	/* a leap day that exists, and the end of the format's range */
	rs = tr_parse_ok("block client 192.0.2.1 until=2028-02-29T23:59:59Z\n"
	    "block client 192.0.2.2 until=9999-12-31T23:59:59Z\n");
	assert_int_equal(rules_count(rs), 2);
	rules_unref(rs);
}

/* ---- format ------------------------------------------------------------------ */

static void
test_rules_format_round_trip(void **state)
{
	static const struct {
		const char *in;
		const char *canon;
	} t[] = {
		{ "block sender *@Spam.Example",	"block sender *@spam.example" },
		{ "block sender <>",			"block sender <>" },
		{ "block client 203.0.113.0/24",	"block client 203.0.113.0/24" },
		{ "block client 2001:DB8:0::/32",	"block client 2001:db8::/32" },
		{ "allow relay 192.0.2.15 to sms.carrier.example",
		    "allow relay 192.0.2.15/32 to sms.carrier.example" },
		{ "allow relay 192.0.2.0/28 to [ipv6:2001:DB8::1]",
		    "allow relay 192.0.2.0/28 to [IPv6:2001:db8::1]" },
		{ "allow relay 192.0.2.0/28 to [198.51.100.2]",
		    "allow relay 192.0.2.0/28 to [198.51.100.2]" },
		{ "block sender x@y comment=\"say \\\"hi\\\" # \\\\o/\"   until=2026-12-04T17:00:00Z",
		    "block sender x@y until=2026-12-04T17:00:00Z comment=\"say \\\"hi\\\" # \\\\o/\"" },
		{ "allow relay ::1 to .Partner.Example until=2030-01-01T00:00:00Z comment=\"p\"",
		    "allow relay ::1/128 to .partner.example until=2030-01-01T00:00:00Z comment=\"p\"" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct ruleset *a = tr_parse_ok(t[i].in), *b;
		const struct rules_rule *ra, *rb;
		char buf[1024];
		int n;

		assert_int_equal(rules_count(a), 1);
		ra = rules_get(a, 0);
		n = rules_rule_format(ra, buf, sizeof buf);
		assert_int_equal(n, (int)strlen(t[i].canon));
		assert_string_equal(buf, t[i].canon);

		b = tr_parse_ok(buf);
		rb = rules_get(b, 0);
		assert_int_equal(rb->kind, ra->kind);
		assert_string_equal(rb->pattern, ra->pattern);
		assert_memory_equal(&rb->cidr, &ra->cidr, sizeof ra->cidr);
		assert_int_equal(rb->until, ra->until);
		assert_string_equal(rb->comment, ra->comment);
		n = rules_rule_format(rb, buf, sizeof buf);
		assert_string_equal(buf, t[i].canon);
		rules_unref(a);
		rules_unref(b);
	}
}

static void
test_rules_format_truncates_like_snprintf(void **state)
{
	struct ruleset *rs = tr_parse_ok("block sender *@spam.example comment=\"x\"");
	char buf[10];

	(void)state;
	assert_int_equal(rules_rule_format(rules_get(rs, 0), buf, sizeof buf), 39);
	assert_string_equal(buf, "block sen");
	assert_int_equal(rules_rule_format(rules_get(rs, 0), NULL, 0), 39);
	rules_unref(rs);
}

/* ---- sender and client decisions, expiry -------------------------------------- */

static void
test_rules_eval_sender_first_match(void **state)
{
	struct ruleset *rs = tr_parse_ok(
	    "block client 192.0.2.0/24\n"
	    "block sender *@spam.example comment=\"first\"\n"
	    "block sender joe@*\n"
	    "block sender <>\n");
	struct rules_verdict v;

	(void)state;
	rules_eval_sender(rs, "joe@SPAM.example", 16, TR_NOW, &v);
	assert_int_equal(v.accept, 0);
	assert_int_equal(v.reason, RULES_R_SENDER_RULE);
	assert_ptr_equal(v.rule, rules_get(rs, 1));
	assert_int_equal(rules_get(rs, 1)->hits, 1);
	assert_int_equal(rules_get(rs, 2)->hits, 0);

	rules_eval_sender(rs, "joe@ham.example", 15, TR_NOW, &v);
	assert_int_equal(v.accept, 0);
	assert_ptr_equal(v.rule, rules_get(rs, 2));

	rules_eval_sender(rs, "", 0, TR_NOW, &v);
	assert_int_equal(v.accept, 0);
	assert_ptr_equal(v.rule, rules_get(rs, 3));

	rules_eval_sender(rs, "ann@ham.example", 15, TR_NOW, &v);
	assert_int_equal(v.accept, 1);
	assert_int_equal(v.reason, RULES_R_NONE);
	assert_null(v.rule);

	rules_eval_sender(NULL, "joe@spam.example", 16, TR_NOW, &v);
	assert_int_equal(v.accept, 1);
	assert_int_equal(rules_get(rs, 1)->hits, 1);
	rules_unref(rs);
}

static void
test_rules_eval_client_first_match(void **state)
{
	struct ruleset *rs = tr_parse_ok(
	    "block sender *\n"
	    "allow relay 203.0.113.0/24 to example.org\n"
	    "block client 203.0.113.0/24\n"
	    "block client 203.0.113.7\n"
	    "block client 2001:db8:bad::/48\n");
	struct sockaddr_storage ss;
	struct rules_verdict v;

	(void)state;
	rules_eval_client(rs, tr_sa("203.0.113.7", &ss), TR_NOW, &v);
	assert_int_equal(v.accept, 0);
	assert_int_equal(v.reason, RULES_R_CLIENT_RULE);
	assert_ptr_equal(v.rule, rules_get(rs, 2));
	rules_eval_client(rs, tr_sa("::ffff:203.0.113.9", &ss), TR_NOW, &v);
	assert_int_equal(v.accept, 0);
	assert_ptr_equal(v.rule, rules_get(rs, 2));
	assert_int_equal(rules_get(rs, 2)->hits, 2);
	assert_int_equal(rules_get(rs, 3)->hits, 0);
	assert_int_equal(rules_get(rs, 1)->hits, 0);

	rules_eval_client(rs, tr_sa("2001:db8:bad:1::1", &ss), TR_NOW, &v);
	assert_int_equal(v.accept, 0);
	assert_ptr_equal(v.rule, rules_get(rs, 4));

	rules_eval_client(rs, tr_sa("198.51.100.1", &ss), TR_NOW, &v);
	assert_int_equal(v.accept, 1);
	assert_int_equal(v.reason, RULES_R_NONE);
	assert_null(v.rule);
	rules_eval_client(rs, NULL, TR_NOW, &v);
	assert_int_equal(v.accept, 1);
	rules_eval_client(NULL, tr_sa("203.0.113.7", &ss), TR_NOW, &v);
	assert_int_equal(v.accept, 1);
	rules_unref(rs);
}

static void
test_rules_expiry_in_all_three_evals(void **state)
{
	struct ruleset *rs = tr_parse_ok(
	    "block sender *@spam.example until=2026-12-04T17:00:00Z\n"
	    "block client 203.0.113.0/24 until=2026-12-04T17:00:00Z\n"
	    "allow relay 203.0.113.7 to sms.carrier.example until=2026-12-04T17:00:00Z\n"
	    "block sender *@old.example until=2020-01-01T00:00:00Z\n");
	struct rules_rcpt rcpt = { "u", 1, "sms.carrier.example", 19, 0 };
	struct rules_policy pol = { NULL, NULL, 1 };
	struct sockaddr_storage ss;
	const struct sockaddr *c = tr_sa("203.0.113.7", &ss);
	struct rules_verdict v;

	(void)state;
	/* one second before: every rule is live */
	rules_eval_sender(rs, "a@spam.example", 14, TR_T_2026_12_04 - 1, &v);
	assert_int_equal(v.accept, 0);
	rules_eval_client(rs, c, TR_T_2026_12_04 - 1, &v);
	assert_int_equal(v.accept, 0);
	rules_eval_rcpt(&pol, rs, c, 0, &rcpt, TR_T_2026_12_04 - 1, &v);
	assert_int_equal(v.accept, 1);
	assert_int_equal(v.reason, RULES_R_ALLOW_RULE);

	/* at until= and after: expired, ignored */
	rules_eval_sender(rs, "a@spam.example", 14, TR_T_2026_12_04, &v);
	assert_int_equal(v.accept, 1);
	rules_eval_client(rs, c, TR_T_2026_12_04, &v);
	assert_int_equal(v.accept, 1);
	rules_eval_rcpt(&pol, rs, c, 0, &rcpt, TR_T_2026_12_04, &v);
	assert_int_equal(v.accept, 0);
	assert_int_equal(v.reason, RULES_R_RELAY);
	rules_eval_sender(rs, "a@spam.example", 14, TR_T_2030, &v);
	assert_int_equal(v.accept, 1);

	/* parsed although already past; never matches now */
	assert_int_equal(rules_get(rs, 3)->until, TR_T_2020);
	rules_eval_sender(rs, "a@old.example", 13, TR_NOW, &v);
	assert_int_equal(v.accept, 1);

	assert_int_equal(rules_get(rs, 0)->hits, 1);
	assert_int_equal(rules_get(rs, 1)->hits, 1);
	assert_int_equal(rules_get(rs, 2)->hits, 1);
	assert_int_equal(rules_get(rs, 3)->hits, 0);
	rules_unref(rs);
}

/* ---- the relay decision ---------------------------------------------------- */

/*
 * Policy for the table: trusted_networks 192.0.2.0/28 and 2001:db8:1::/48;
 * local_domains example.com, .example.net, [198.51.100.2], [IPv6:2001:db8::25].
 */
static const char tr_relay_rules[] =
    "block sender *@example.com\n"					/* never used by rcpt */
    "allow relay 203.0.113.8 to old.example until=2020-01-01T00:00:00Z\n"	/* expired */
    "allow relay 203.0.113.7 to sms.carrier.example\n"
    "allow relay 203.0.113.0/24 to .partner.example comment=\"all of them\"\n";

#define TR_UNTRUSTED	"203.0.113.99"
#define TR_TRUSTED	"192.0.2.5"

struct tr_relay_row {
	const char	*client;
	int		 auth;
	int		 auth_relay;
	const char	*local;
	const char	*domain;
	unsigned	 flags;
	int		 accept;
	enum rules_reason reason;
	int		 rule;		/* index of the deciding rule, or -1 */
};

static const struct tr_relay_row tr_relay_table[] = {
	/* 1. postmaster */
	{ TR_UNTRUSTED, 0, 1, "postmaster", "", 0,			1, RULES_R_POSTMASTER, -1 },
	{ TR_UNTRUSTED, 0, 1, "PostMaster", "", 0,			1, RULES_R_POSTMASTER, -1 },
	{ TR_UNTRUSTED, 0, 1, "\"postmaster\"", "", 0,			0, RULES_R_RELAY, -1 },
	{ TR_UNTRUSTED, 0, 1, "postmaster", "EXAMPLE.com.", 0,		1, RULES_R_POSTMASTER, -1 },
	{ TR_UNTRUSTED, 0, 1, "postmaster", "mx.example.net", 0,	1, RULES_R_POSTMASTER, -1 },
	{ TR_UNTRUSTED, 0, 1, "postmaster", "other.example", 0,		0, RULES_R_RELAY, -1 },
	{ TR_UNTRUSTED, 1, 0, "postmaster", "other.example", 0,		0, RULES_R_RELAY, -1 },
	{ TR_TRUSTED,   0, 1, "postmaster", "example.com", 0,		1, RULES_R_POSTMASTER, -1 },
	{ TR_TRUSTED,   0, 1, "postmaster", "other.example", 0,		1, RULES_R_TRUSTED, -1 },
	{ TR_TRUSTED,   0, 1, "postmaster", "", 0,			1, RULES_R_POSTMASTER, -1 },
	/* a source route in front of postmaster is still a route */
	{ TR_UNTRUSTED, 0, 1, "postmaster", "example.com", RULES_RCPT_ROUTED, 0, RULES_R_ROUTING, -1 },
	/* 2. routing tricks, even to a local domain, even with an allow rule */
	{ TR_UNTRUSTED, 0, 1, "u%other.example", "example.com", RULES_RCPT_PERCENT, 0, RULES_R_ROUTING, -1 },
	{ TR_UNTRUSTED, 0, 1, "other.example!u", "example.com", RULES_RCPT_BANG, 0, RULES_R_ROUTING, -1 },
	{ TR_UNTRUSTED, 0, 1, "u@other.example", "example.com", RULES_RCPT_AT, 0, RULES_R_ROUTING, -1 },
	{ TR_UNTRUSTED, 0, 1, "u", "example.com", RULES_RCPT_ROUTED,	0, RULES_R_ROUTING, -1 },
	{ "203.0.113.7", 0, 1, "u%x", "sms.carrier.example", RULES_RCPT_PERCENT, 0, RULES_R_ROUTING, -1 },
	{ TR_UNTRUSTED, 0, 1, "u%x", "a.partner.example", RULES_RCPT_PERCENT, 0, RULES_R_ROUTING, -1 },
	{ TR_UNTRUSTED, 0, 0, "u%x", "other.example", RULES_RCPT_PERCENT | RULES_RCPT_BANG, 0, RULES_R_ROUTING, -1 },
	/* ... but trusted or authenticated clients may route */
	{ TR_TRUSTED,   0, 1, "u%x", "other.example", RULES_RCPT_PERCENT, 1, RULES_R_TRUSTED, -1 },
	{ TR_TRUSTED,   0, 1, "u", "other.example", RULES_RCPT_ROUTED,	1, RULES_R_TRUSTED, -1 },
	{ TR_UNTRUSTED, 1, 1, "u!x", "other.example", RULES_RCPT_BANG,	1, RULES_R_AUTH, -1 },
	{ TR_UNTRUSTED, 1, 0, "u%x", "example.com", RULES_RCPT_PERCENT,	1, RULES_R_LOCAL_DOMAIN, -1 },
	{ TR_UNTRUSTED, 1, 0, "u%x", "other.example", RULES_RCPT_PERCENT, 0, RULES_R_RELAY, -1 },
	/* 3. trusted, allow rule, auth, in that order */
	{ TR_TRUSTED,   0, 1, "u", "other.example", 0,			1, RULES_R_TRUSTED, -1 },
	{ "::ffff:192.0.2.9", 0, 1, "u", "other.example", 0,		1, RULES_R_TRUSTED, -1 },
	{ "2001:db8:1::25", 0, 1, "u", "other.example", 0,		1, RULES_R_TRUSTED, -1 },
	{ "192.0.2.16", 0, 1, "u", "other.example", 0,			0, RULES_R_RELAY, -1 },
	{ TR_TRUSTED,   1, 1, "u", "other.example", 0,			1, RULES_R_TRUSTED, -1 },
	{ TR_TRUSTED,   0, 1, "u", "example.com", 0,			1, RULES_R_TRUSTED, -1 },
	{ "203.0.113.7", 0, 1, "u", "sms.carrier.example", 0,		1, RULES_R_ALLOW_RULE, 2 },
	{ "203.0.113.7", 0, 1, "u", "SMS.Carrier.Example.", 0,		1, RULES_R_ALLOW_RULE, 2 },
	{ "::ffff:203.0.113.7", 0, 1, "u", "sms.carrier.example", 0,	1, RULES_R_ALLOW_RULE, 2 },
	{ "203.0.113.7", 1, 1, "u", "sms.carrier.example", 0,		1, RULES_R_ALLOW_RULE, 2 },
	{ "203.0.113.7", 0, 1, "u", "a.partner.example", 0,		1, RULES_R_ALLOW_RULE, 3 },
	{ "203.0.113.7", 0, 1, "u", "partner.example", 0,		0, RULES_R_RELAY, -1 },
	{ "203.0.113.7", 0, 1, "u", "other.example", 0,			0, RULES_R_RELAY, -1 },
	{ "203.0.113.6", 0, 1, "u", "sms.carrier.example", 0,		0, RULES_R_RELAY, -1 },
	{ "198.51.100.7", 0, 1, "u", "a.partner.example", 0,		0, RULES_R_RELAY, -1 },
	{ "203.0.113.8", 0, 1, "u", "old.example", 0,			0, RULES_R_RELAY, -1 },
	{ "203.0.113.7", 0, 1, "u", "example.com", 0,			1, RULES_R_LOCAL_DOMAIN, -1 },
	{ TR_UNTRUSTED, 1, 1, "u", "other.example", 0,			1, RULES_R_AUTH, -1 },
	{ TR_UNTRUSTED, 1, 0, "u", "other.example", 0,			0, RULES_R_RELAY, -1 },
	{ TR_UNTRUSTED, 0, 1, "u", "other.example", 0,			0, RULES_R_RELAY, -1 },
	/* 4. local domains */
	{ TR_UNTRUSTED, 0, 1, "u", "example.com", 0,			1, RULES_R_LOCAL_DOMAIN, -1 },
	{ TR_UNTRUSTED, 0, 1, "U", "Example.COM.", 0,			1, RULES_R_LOCAL_DOMAIN, -1 },
	{ TR_UNTRUSTED, 0, 1, "u", "example.com..", 0,			0, RULES_R_RELAY, -1 },
	{ TR_UNTRUSTED, 0, 1, "u", "mail.example.com", 0,		0, RULES_R_RELAY, -1 },
	{ TR_UNTRUSTED, 0, 1, "u", "mx.example.net", 0,			1, RULES_R_LOCAL_DOMAIN, -1 },
	{ TR_UNTRUSTED, 0, 1, "u", "example.net", 0,			0, RULES_R_RELAY, -1 },
	{ TR_UNTRUSTED, 0, 1, "u", "[198.51.100.2]", 0,			1, RULES_R_LOCAL_DOMAIN, -1 },
	{ TR_UNTRUSTED, 0, 1, "u", "[198.51.100.3]", 0,			0, RULES_R_RELAY, -1 },
	{ TR_UNTRUSTED, 0, 1, "u", "[IPv6:2001:DB8:0::25]", 0,		1, RULES_R_LOCAL_DOMAIN, -1 },
	{ "2001:db8:2::1", 0, 1, "u", "example.com", 0,			1, RULES_R_LOCAL_DOMAIN, -1 },
	/* 5. everything else, including a bare non-postmaster */
	{ TR_UNTRUSTED, 0, 1, "abuse", "", 0,				0, RULES_R_RELAY, -1 },
	{ "2001:db8:2::1", 0, 1, "u", "other.example", 0,		0, RULES_R_RELAY, -1 },
};

static void
test_rules_relay_decision_table(void **state)
{
	struct ruleset *rs = tr_parse_ok(tr_relay_rules);
	struct rules_cidrset *trusted = rules_cidrset_new();
	struct rules_domainset *local = rules_domainset_new();
	static const char *dom[] = { "example.com", ".example.net", "[198.51.100.2]", "[IPv6:2001:db8::25]" };
	struct rules_cidr c;
	char err[RULES_ERR_LEN];
	uint64_t allow_hits[4] = { 0, 0, 0, 0 };
	size_t i;

	(void)state;
	c = tr_cidr("192.0.2.0/28");
	assert_int_equal(rules_cidrset_add(trusted, &c), 0);
	c = tr_cidr("2001:db8:1::/48");
	assert_int_equal(rules_cidrset_add(trusted, &c), 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(rules_domainset_add(local, dom[i], strlen(dom[i]), err), 0);

	for (i = 0; i < sizeof tr_relay_table / sizeof tr_relay_table[0]; i++) {
		const struct tr_relay_row *t = &tr_relay_table[i];
		struct rules_policy pol = { trusted, local, t->auth_relay };
		struct rules_rcpt rcpt = { t->local, strlen(t->local), t->domain, strlen(t->domain), t->flags };
		struct sockaddr_storage ss;
		struct rules_verdict v;

		memset(&v, 0x55, sizeof v);
		rules_eval_rcpt(&pol, rs, tr_sa(t->client, &ss), t->auth, &rcpt, TR_NOW, &v);
		if (v.accept != t->accept || v.reason != t->reason ||
		    v.rule != (t->rule >= 0 ? rules_get(rs, (size_t)t->rule) : NULL))
			fail_msg("row %zu (client %s auth %d auth_relay %d <%s@%s> flags %#x): "
			    "got accept %d reason %s rule %p, want accept %d reason %s rule %d",
			    i, t->client, t->auth, t->auth_relay, t->local, t->domain, t->flags,
			    v.accept, rules_reason_str(v.reason), (const void *)v.rule, t->accept,
			    rules_reason_str(t->reason), t->rule);
		if (t->rule >= 0)
			allow_hits[t->rule]++;
	}
	for (i = 0; i < 4; i++)
		assert_int_equal(rules_get(rs, i)->hits, allow_hits[i]);
	assert_true(allow_hits[2] > 0 && allow_hits[3] > 0);

	rules_cidrset_free(trusted);
	rules_domainset_free(local);
	rules_unref(rs);
}

static void
test_rules_relay_empty_policy_refuses(void **state)
{
	struct rules_rcpt rcpt = { "u", 1, "example.com", 11, 0 };
	struct rules_rcpt pm = { "postmaster", 10, NULL, 0, 0 };
	struct rules_policy empty = { NULL, NULL, 1 };
	struct sockaddr_storage ss;
	const struct sockaddr *c = tr_sa("127.0.0.1", &ss);
	struct rules_verdict v;

	(void)state;
	rules_eval_rcpt(NULL, NULL, c, 0, &rcpt, TR_NOW, &v);
	assert_int_equal(v.accept, 0);
	assert_int_equal(v.reason, RULES_R_RELAY);
	assert_null(v.rule);
	/* no policy means no auth_relay either */
	rules_eval_rcpt(NULL, NULL, c, 1, &rcpt, TR_NOW, &v);
	assert_int_equal(v.reason, RULES_R_RELAY);
	rules_eval_rcpt(&empty, NULL, c, 1, &rcpt, TR_NOW, &v);
	assert_int_equal(v.reason, RULES_R_AUTH);
	rules_eval_rcpt(NULL, NULL, NULL, 0, &pm, TR_NOW, &v);
	assert_int_equal(v.accept, 1);
	assert_int_equal(v.reason, RULES_R_POSTMASTER);
}

/* ---- one rule, and changing a ruleset ------------------------------------------ */

static void
tr_rule(const char *line, struct rules_rule *r)
{
	char err[RULES_ERR_LEN] = "";

	if (rules_rule_parse(line, strlen(line), r, err) != 0)
		fail_msg("rule '%s': %s", line, err);
}

/* rs plus the rule written as `line`; rs is dropped. */
static struct ruleset *
tr_add(struct ruleset *rs, const char *line, int want_replaced)
{
	struct rules_rule r;
	struct ruleset *n;
	int replaced = -1;

	tr_rule(line, &r);
	n = rules_add(rs, &r, &replaced);
	rules_rule_clear(&r);
	assert_non_null(n);
	assert_int_equal(replaced, want_replaced);
	rules_unref(rs);
	return n;
}

static struct ruleset *
tr_remove(struct ruleset *rs, const char *line)
{
	struct rules_rule r;
	struct ruleset *n;

	tr_rule(line, &r);
	n = rules_remove(rs, &r);
	rules_rule_clear(&r);
	assert_non_null(n);
	rules_unref(rs);
	return n;
}

/* Every rule of rs, formatted, one a line. */
static void
tr_dump(const struct ruleset *rs, char *buf, size_t size)
{
	size_t i, o = 0;

	buf[0] = '\0';
	for (i = 0; i < rules_count(rs); i++) {
		int n = rules_rule_format(rules_get(rs, i), buf + o, size - o);

		assert_true(n >= 0 && (size_t)n + 1 < size - o);
		o += (size_t)n;
		buf[o++] = '\n';
		buf[o] = '\0';
	}
	assert_null(rules_get(rs, rules_count(rs)));
}

struct tr_out {
	char	*buf;
	size_t	 len, size;
	int	 fail_after;	/* fail the call after this many; -1 never */
	int	 calls;
};

static int
tr_out_write(void *arg, const char *p, size_t n)
{
	struct tr_out *o = arg;

	if (o->fail_after >= 0 && o->calls++ >= o->fail_after)
		return -1;
	assert_true(o->len + n < o->size);
	memcpy(o->buf + o->len, p, n);
	o->len += n;
	o->buf[o->len] = '\0';
	return 0;
}

/* rules_write into buf (NUL-terminated). */
static void
tr_write(const struct ruleset *rs, char *buf, size_t size)
{
	struct tr_out o = { buf, 0, size, -1, 0 };

	buf[0] = '\0';
	assert_int_equal(rules_write(rs, tr_out_write, &o), 0);
}

static void
test_rules_rule_parse_one_line(void **state)
{
	struct rules_rule r;
	char err[RULES_ERR_LEN], buf[256];
	static const struct {
		const char *line;
		const char *msg;
	} bad[] = {
		{ "",					"expected a rule: expected block sender|block client|allow relay" },
		{ "   # only a comment",		"expected a rule: expected block sender|block client|allow relay" },
		{ "block sender a@b\nblock sender c@d",	"a rule is one line, without CR, LF or NUL" },
		{ "block sender a@b\r",			"a rule is one line, without CR, LF or NUL" },
		{ "block client 192.0.2.1/24",		"block client: '192.0.2.1/24': host bits set; did you mean 192.0.2.0/24?" },
		{ "blok sender a@b",			"unknown rule 'blok'; expected block sender|block client|allow relay" },
	};
	size_t i;

	(void)state;
	tr_rule("block sender *@Spam.Example until=2026-12-04T17:00:00Z comment=\"wave\"   # ticket 42", &r);
	assert_int_equal(r.kind, RULES_BLOCK_SENDER);
	assert_string_equal(r.pattern, "*@spam.example");
	assert_string_equal(r.comment, "wave");
	assert_string_equal(r.line_comment, "   # ticket 42");
	assert_int_equal(r.until, TR_T_2026_12_04);
	assert_int_equal(r.line, 0);
	assert_int_equal(r.hits, 0);
	rules_rule_format(&r, buf, sizeof buf);
	assert_string_equal(buf, "block sender *@spam.example until=2026-12-04T17:00:00Z comment=\"wave\"");
	rules_rule_clear(&r);
	assert_null(r.pattern);
	rules_rule_clear(&r);	/* twice is harmless */

	tr_rule("allow relay 192.0.2.15 to SMS.Carrier.Example", &r);
	assert_int_equal(r.kind, RULES_ALLOW_RELAY);
	assert_string_equal(r.pattern, "sms.carrier.example");
	assert_string_equal(r.comment, "");
	assert_string_equal(r.line_comment, "");
	rules_rule_clear(&r);

	tr_rule("block client 2001:db8::/32", &r);
	assert_string_equal(r.pattern, "");
	rules_rule_clear(&r);

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		assert_int_equal(rules_rule_parse(bad[i].line, strlen(bad[i].line), &r, err), -1);
		assert_string_equal(err, bad[i].msg);
		rules_rule_clear(&r);
	}
	/* a counted string: what lies past len is not part of the rule */
	assert_int_equal(rules_rule_parse("block client 192.0.2.1 garbage", 22, &r, err), 0);
	rules_rule_clear(&r);
}

static void
test_rules_rule_same_names_the_rule(void **state)
{
	static const struct {
		const char	*a;
		const char	*b;
		int		 same;
	} t[] = {
		{ "block sender *@spam.example", "block sender *@SPAM.example until=2030-01-01T00:00:00Z comment=\"x\"", 1 },
		{ "block sender *@spam.example", "block sender *@spam.example.org", 0 },
		{ "block sender <>", "block sender <>  # bounces", 1 },
		{ "block client 192.0.2.0/24", "block client 192.0.2.0/24 comment=\"y\"", 1 },
		{ "block client 192.0.2.0/24", "block client 192.0.2.0/25", 0 },
		{ "block client 192.0.2.0/24", "block client ::ffff:192.0.2.0/120", 0 },
		{ "block client 192.0.2.0/24", "allow relay 192.0.2.0/24 to a.example", 0 },
		{ "allow relay 192.0.2.0/24 to a.example", "allow relay 192.0.2.0/24 to A.Example", 1 },
		{ "allow relay 192.0.2.0/24 to a.example", "allow relay 192.0.2.0/24 to .a.example", 0 },
		{ "allow relay 192.0.2.0/24 to a.example", "allow relay 192.0.2.0/23 to a.example", 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct rules_rule a, b;

		tr_rule(t[i].a, &a);
		tr_rule(t[i].b, &b);
		if (rules_rule_same(&a, &b) != t[i].same || rules_rule_same(&b, &a) != t[i].same)
			fail_msg("'%s' vs '%s': want %d", t[i].a, t[i].b, t[i].same);
		rules_rule_clear(&a);
		rules_rule_clear(&b);
	}
}

static void
test_rules_add_appends_or_replaces_in_place(void **state)
{
	struct ruleset *v1 = tr_parse_ok(
	    "block sender *@spam.example\n"
	    "block client 203.0.113.0/24 comment=\"botnet\"\n"
	    "allow relay 192.0.2.15 to sms.carrier.example\n");
	struct ruleset *v2, *v3;
	char a[1024], b[1024];
	struct rules_verdict v;
	const struct rules_rule *r;

	(void)state;
	tr_dump(v1, a, sizeof a);
	v2 = tr_add(rules_ref(v1), "block sender *@new.example comment=\"live\"", 0);
	assert_int_equal(rules_count(v2), 4);
	r = rules_get(v2, 3);
	assert_string_equal(r->pattern, "*@new.example");
	assert_string_equal(r->comment, "live");
	/* the earlier rules are the very same objects */
	assert_ptr_equal(rules_get(v2, 0), rules_get(v1, 0));
	assert_ptr_equal(rules_get(v2, 2), rules_get(v1, 2));

	rules_eval_sender(v2, "x@SPAM.example", 14, TR_NOW, &v);
	assert_ptr_equal(v.rule, rules_get(v1, 0));
	rules_eval_sender(v2, "x@spam.example", 14, TR_NOW, &v);

	/* the same rule again: it keeps its place and its hits, takes until and comment */
	v3 = tr_add(rules_ref(v2),
	    "block sender *@Spam.Example until=2026-12-04T17:00:00Z comment=\"wave 2\"", 1);
	assert_int_equal(rules_count(v3), 4);
	r = rules_get(v3, 0);
	assert_string_equal(r->pattern, "*@spam.example");
	assert_int_equal(r->until, TR_T_2026_12_04);
	assert_string_equal(r->comment, "wave 2");
	assert_int_equal(r->hits, 2);
	assert_int_equal(r->line, 1);
	assert_ptr_equal(rules_get(v3, 1), rules_get(v1, 1));
	rules_eval_sender(v3, "x@spam.example", 14, TR_NOW, &v);
	assert_ptr_equal(v.rule, r);
	rules_eval_sender(v3, "x@spam.example", 14, TR_T_2026_12_04, &v);
	assert_int_equal(v.accept, 1);

	/* snapshots: v1 and v2 are as they were */
	tr_dump(v1, b, sizeof b);
	assert_string_equal(a, b);
	assert_int_equal(rules_count(v2), 4);
	assert_int_equal(rules_get(v2, 0)->until, 0);
	assert_string_equal(rules_get(v2, 0)->comment, "");
	rules_eval_sender(v1, "x@new.example", 13, TR_NOW, &v);
	assert_int_equal(v.accept, 1);
	rules_eval_sender(v2, "x@new.example", 13, TR_NOW, &v);
	assert_int_equal(v.accept, 0);

	/* rules_add on no ruleset at all starts one */
	{
		struct rules_rule x;
		struct ruleset *e;

		tr_rule("block client 192.0.2.1", &x);
		e = rules_add(NULL, &x, NULL);
		rules_rule_clear(&x);
		assert_non_null(e);
		assert_int_equal(rules_count(e), 1);
		rules_unref(e);
	}
	rules_unref(v1);
	rules_unref(v2);
	rules_unref(v3);
}

static void
test_rules_remove_and_enoent(void **state)
{
	struct ruleset *v1 = tr_parse_ok(
	    "block sender *@spam.example\n"
	    "block client 203.0.113.0/24\n"
	    "block client ::ffff:203.0.113.0/120\n"
	    "allow relay 192.0.2.15 to a.example\n"
	    "allow relay 192.0.2.15 to b.example\n");
	struct ruleset *v2;
	struct rules_rule r;
	struct sockaddr_storage ss;
	struct rules_verdict v;
	char buf[1024];

	(void)state;
	/* until and comment do not name a rule */
	v2 = tr_remove(rules_ref(v1), "block client 203.0.113.0/24 comment=\"whatever\"");
	v2 = tr_remove(v2, "allow relay 192.0.2.15 to A.Example");
	tr_dump(v2, buf, sizeof buf);
	assert_string_equal(buf,
	    "block sender *@spam.example\n"
	    "block client ::ffff:203.0.113.0/120\n"
	    "allow relay 192.0.2.15/32 to b.example\n");
	/* the v4-mapped twin still blocks the client */
	rules_eval_client(v2, tr_sa("203.0.113.9", &ss), TR_NOW, &v);
	assert_ptr_equal(v.rule, rules_get(v2, 1));
	rules_eval_client(v1, tr_sa("203.0.113.9", &ss), TR_NOW, &v);
	assert_ptr_equal(v.rule, rules_get(v1, 1));

	tr_rule("block sender *@other.example", &r);
	errno = 0;
	assert_null(rules_remove(v2, &r));
	assert_int_equal(errno, ENOENT);
	rules_rule_clear(&r);
	tr_rule("allow relay 192.0.2.15 to c.example", &r);
	assert_null(rules_remove(v2, &r));
	assert_int_equal(errno, ENOENT);
	assert_null(rules_remove(NULL, &r));
	assert_int_equal(errno, ENOENT);
	rules_rule_clear(&r);

	v2 = tr_remove(v2, "block sender *@spam.example");
	v2 = tr_remove(v2, "block client ::ffff:203.0.113.0/120");
	v2 = tr_remove(v2, "allow relay 192.0.2.15/32 to b.example");
	assert_int_equal(rules_count(v2), 0);
	assert_null(rules_get(v2, 0));
	rules_eval_client(v2, tr_sa("203.0.113.9", &ss), TR_NOW, &v);
	assert_int_equal(v.accept, 1);
	assert_int_equal(rules_count(v1), 5);
	rules_unref(v1);
	rules_unref(v2);
}

static void
test_rules_add_checks_built_rules(void **state)
{
	struct rules_rule r;
	struct ruleset *rs = rules_empty(), *n;
	char buf[256];
	int replaced;

	(void)state;
	/* a rule built by hand, not parsed: checked and normalized like a line */
	memset(&r, 0, sizeof r);
	r.kind = RULES_BLOCK_SENDER;
	r.pattern = "*@Spam.Example";
	n = rules_add(rs, &r, &replaced);
	assert_non_null(n);
	assert_string_equal(rules_get(n, 0)->pattern, "*@spam.example");
	assert_string_equal(rules_get(n, 0)->comment, "");
	assert_string_equal(rules_get(n, 0)->line_comment, "");
	rules_unref(n);

	r.kind = RULES_ALLOW_RELAY;
	r.cidr = tr_cidr("192.0.2.0/24");
	r.pattern = "[ipv6:2001:DB8::1]";
	n = rules_add(rs, &r, &replaced);
	assert_non_null(n);
	rules_rule_format(rules_get(n, 0), buf, sizeof buf);
	assert_string_equal(buf, "allow relay 192.0.2.0/24 to [IPv6:2001:db8::1]");
	rules_unref(n);

	/* what would not parse back never reaches the file */
	{
		static const char *bad_sender[] = { "a b@c", "a#b@c", "", "<x@y>", "comment=\"x" };
		size_t i;

		for (i = 0; i < sizeof bad_sender / sizeof bad_sender[0]; i++) {
			memset(&r, 0, sizeof r);
			r.kind = RULES_BLOCK_SENDER;
			r.pattern = bad_sender[i];
			errno = 0;
			assert_null(rules_add(rs, &r, &replaced));
			assert_int_equal(errno, EINVAL);
		}
	}
	memset(&r, 0, sizeof r);
	r.kind = RULES_BLOCK_CLIENT;
	r.cidr = tr_cidr("192.0.2.0/24");
	r.cidr.prefix = 16;			/* host bits set now */
	assert_null(rules_add(rs, &r, &replaced));
	r.cidr = tr_cidr("192.0.2.0/24");
	r.comment = "tab\there";
	assert_null(rules_add(rs, &r, &replaced));
	r.comment = NULL;
	r.line_comment = "no hash";
	assert_null(rules_add(rs, &r, &replaced));
	r.line_comment = "#glued";
	assert_null(rules_add(rs, &r, &replaced));
	r.line_comment = " # two\n# lines";
	assert_null(rules_add(rs, &r, &replaced));
	r.line_comment = NULL;
	r.until = -5;
	assert_null(rules_add(rs, &r, &replaced));
	r.until = 0;
	r.kind = (enum rules_kind)0;
	assert_null(rules_add(rs, &r, &replaced));
	r.kind = RULES_ALLOW_RELAY;
	r.pattern = "*.example.com";
	assert_null(rules_add(rs, &r, &replaced));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(rules_count(rs), 0);
	rules_unref(rs);
}

static void
test_rules_expire_and_next_expiry(void **state)
{
	struct ruleset *v1 = tr_parse_ok(
	    "block sender *@a.example until=2030-01-01T00:00:00Z\n"
	    "block sender *@b.example\n"
	    "block client 192.0.2.0/24 until=2026-12-04T17:00:00Z\n"
	    "allow relay 192.0.2.15 to c.example until=2020-01-01T00:00:00Z\n"
	    "block sender *@d.example until=2026-12-04T17:00:00Z\n");
	struct ruleset *v2, *v3, *v4;
	char buf[1024];
	size_t n = 99;

	(void)state;
	assert_int_equal(rules_next_expiry(v1), TR_T_2020);
	assert_int_equal(rules_next_expiry(NULL), 0);

	/* nothing due: the same rules back, as a new reference */
	v2 = rules_expire(v1, TR_T_2020 - 1, &n);
	assert_non_null(v2);
	assert_int_equal(n, 0);
	assert_int_equal(rules_count(v2), 5);
	rules_unref(v2);

	v2 = rules_expire(v1, TR_NOW, &n);
	assert_int_equal(n, 1);
	assert_int_equal(rules_next_expiry(v2), TR_T_2026_12_04);
	/* until == now is expired, as for the evaluations */
	v3 = rules_expire(v2, TR_T_2026_12_04, &n);
	assert_int_equal(n, 2);
	tr_dump(v3, buf, sizeof buf);
	assert_string_equal(buf,
	    "block sender *@a.example until=2030-01-01T00:00:00Z\n"
	    "block sender *@b.example\n");
	assert_int_equal(rules_next_expiry(v3), TR_T_2030);
	v4 = rules_expire(v3, TR_T_2030 + 1, NULL);
	assert_int_equal(rules_count(v4), 1);
	assert_int_equal(rules_next_expiry(v4), 0);
	assert_int_equal(rules_count(v1), 5);
	assert_int_equal(rules_count(v2), 4);
	rules_unref(v4);
	v4 = rules_expire(NULL, TR_NOW, &n);
	assert_int_equal(rules_count(v4), 0);
	rules_unref(v4);
	rules_unref(v1);
	rules_unref(v2);
	rules_unref(v3);
}

static void
test_rules_hits_shared_across_versions(void **state)
{
	struct ruleset *v1 = tr_parse_ok("block client 203.0.113.0/24\nblock sender *@spam.example\n");
	struct ruleset *v2, *v3;
	struct sockaddr_storage ss;
	struct rules_verdict v;

	(void)state;
	rules_eval_client(v1, tr_sa("203.0.113.1", &ss), TR_NOW, &v);
	v2 = tr_add(rules_ref(v1), "block sender *@other.example", 0);
	rules_eval_client(v2, tr_sa("203.0.113.2", &ss), TR_NOW, &v);
	v3 = tr_remove(rules_ref(v2), "block sender *@spam.example");
	rules_eval_client(v3, tr_sa("203.0.113.3", &ss), TR_NOW, &v);
	rules_eval_client(v1, tr_sa("203.0.113.4", &ss), TR_NOW, &v);
	/* one counter, whichever version counted */
	assert_int_equal(__atomic_load_n(&rules_get(v1, 0)->hits, __ATOMIC_RELAXED), 4);
	assert_int_equal(rules_get(v3, 0)->hits, 4);
	assert_ptr_equal(rules_get(v3, 0), rules_get(v1, 0));
	/* a replaced rule carries the count over */
	v3 = tr_add(v3, "block client 203.0.113.0/24 comment=\"still\"", 1);
	assert_int_equal(rules_get(v3, 0)->hits, 4);
	rules_unref(v1);
	rules_unref(v2);
	rules_unref(v3);
}

static void
test_rules_parse_duplicate_rule_is_an_error(void **state)
{
	static const char text[] =
	    "block sender *@spam.example\n"
	    "block client 192.0.2.0/24\n"
	    "block sender *@SPAM.example comment=\"again\"\n"
	    "allow relay 192.0.2.0/24 to a.example\n"
	    "allow relay 192.0.2.0/24 to b.example\n"
	    "block client 192.0.2.0/24 until=2030-01-01T00:00:00Z\n";
	struct tr_errs e;

	(void)state;
	memset(&e, 0, sizeof e);
	assert_null(rules_parse(text, strlen(text), tr_collect, &e));
	assert_int_equal(e.n, 2);
	assert_int_equal(e.line[0], 3);
	assert_string_equal(e.msg[0], "the same rule as line 1");
	assert_int_equal(e.line[1], 6);
	assert_string_equal(e.msg[1], "the same rule as line 2");
}

static void
test_rules_write_keeps_hand_written_comments(void **state)
{
	static const char text[] =
	    "# smtpwall live rules\n"
	    "# kept by hand and by smtpwallctl\n"
	    "\n"
	    "# spam wave of March\n"
	    "block sender *@Spam.Example   # ticket 42\n"
	    "block client 203.0.113.0/24 comment=\"botnet\"\n"
	    "\n"
	    "  # the SMS gateway\r\n"
	    "allow relay 192.0.2.15 to sms.carrier.example\t# ops@example.com\n"
	    "# going away\n"
	    "block sender <>\n"
	    "\n"
	    "# end of file: new rules go above this";
	static const char want[] =
	    "# smtpwall live rules\n"
	    "# kept by hand and by smtpwallctl\n"
	    "\n"
	    "# spam wave of March\n"
	    "block sender *@spam.example until=2026-12-04T17:00:00Z   # ticket 42\n"
	    "\n"
	    "  # the SMS gateway\r\n"
	    "allow relay 192.0.2.15/32 to sms.carrier.example\t# ops@example.com\n"
	    "block sender *@new.example # added live\n"
	    "block client 198.51.100.0/24\n"
	    "\n"
	    "# end of file: new rules go above this";
	struct ruleset *v1 = tr_parse_ok(text), *v2, *again;
	char out[2048], out2[2048];

	(void)state;
	tr_write(v1, out, sizeof out);
	/* as read, but in canonical form */
	assert_non_null(strstr(out, "block sender *@spam.example   # ticket 42\n"
	    "block client 203.0.113.0/24 comment=\"botnet\"\n"));

	v2 = tr_remove(rules_ref(v1), "block client 203.0.113.0/24");
	v2 = tr_add(v2, "block sender *@new.example # added live", 0);
	v2 = tr_remove(v2, "block sender <>");		/* its comment goes with it */
	v2 = tr_add(v2, "block client 198.51.100.0/24", 0);
	v2 = tr_add(v2, "block sender *@spam.example until=2026-12-04T17:00:00Z", 1);
	tr_write(v2, out, sizeof out);
	assert_string_equal(out, want);

	/* and once more through the parser: nothing moves */
	again = tr_parse_ok(out);
	tr_write(again, out2, sizeof out2);
	assert_string_equal(out2, want);
	rules_unref(again);

	/* the file's header (down to its last blank line) outlives the first rule */
	v2 = tr_remove(v2, "block sender *@spam.example");
	tr_write(v2, out, sizeof out);
	assert_string_equal(out,
	    "# smtpwall live rules\n"
	    "# kept by hand and by smtpwallctl\n"
	    "\n"
	    "\n"
	    "  # the SMS gateway\r\n"
	    "allow relay 192.0.2.15/32 to sms.carrier.example\t# ops@example.com\n"
	    "block sender *@new.example # added live\n"
	    "block client 198.51.100.0/24\n"
	    "\n"
	    "# end of file: new rules go above this");

	/* a comment-only file is all header: the first rule goes below it */
	again = tr_parse_ok("# nothing yet\n\n");
	tr_write(again, out, sizeof out);
	assert_string_equal(out, "# nothing yet\n\n");
	again = tr_add(again, "block client 192.0.2.1", 0);
	tr_write(again, out, sizeof out);
	assert_string_equal(out, "# nothing yet\n\nblock client 192.0.2.1/32\n");
	again = tr_remove(again, "block client 192.0.2.1");
	tr_write(again, out, sizeof out);
	assert_string_equal(out, "# nothing yet\n\n");
	rules_unref(again);
	/* an empty ruleset writes nothing */
	again = rules_empty();
	tr_write(again, out, sizeof out);
	assert_string_equal(out, "");
	rules_unref(again);
	assert_int_equal(rules_write(NULL, tr_out_write, NULL), 0);
	rules_unref(v1);
	rules_unref(v2);
}

static void
test_rules_write_stops_at_the_first_error(void **state)
{
	static char big[40000];
	char out[64];
	struct ruleset *rs;
	struct tr_out o = { out, 0, sizeof out, 0, 0 };
	size_t i;

	(void)state;
	/* enough text for more than one buffer's worth */
	big[0] = '\0';
	for (i = 0; i < 1000; i++)
		snprintf(big + strlen(big), sizeof big - strlen(big), "block client 10.0.%zu.%zu\n",
		    i / 250, i % 250);
	rs = tr_parse_ok(big);
	assert_int_equal(rules_write(rs, tr_out_write, &o), -1);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.len, 0);
	o.fail_after = 1;
	o.calls = 0;
	o.buf = big;
	o.size = sizeof big;
	assert_int_equal(rules_write(rs, tr_out_write, &o), -1);
	assert_int_equal(o.calls, 2);
	rules_unref(rs);
}

/*
 * Random changes against a plain array of rules (the old, linear design):
 * after every change the same rules in the same order, and every lookup
 * decided by the same rule as a first-match linear scan.
 */
struct tr_model {
	char		 line[8192][160];	/* canonical text of each rule, in order */
	struct rules_rule rule[8192];		/* parsed, strings owned */
	size_t		 n;
};

static uint64_t
tr_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static size_t
tr_pick(uint64_t *s, size_t n)
{
	return (size_t)(tr_rand(s) % n);
}

/* tmpl with its first '#' replaced by a, the next by b, in decimal; the length written. */
static size_t
tr_fill(char *buf, size_t size, const char *tmpl, unsigned a, unsigned b)
{
	size_t o = 0;
	int nth = 0;

	for (; *tmpl != '\0' && o + 12 < size; tmpl++) {
		if (*tmpl == '#')
			o += (size_t)snprintf(buf + o, size - o, "%u", nth++ == 0 ? a : b);
		else
			buf[o++] = *tmpl;
	}
	buf[o] = '\0';
	return o;
}

static void
tr_random_rule(uint64_t *s, char *buf, size_t size)
{
	static const char *sfmt[] = {
		"*@d#.example", "*@*.s#.example", "u#@d3.example", "*x@d#.example",
		"?@d#.example", "*@*#.example", "joe#@*", "spam*#", "*@d#.example*",
	};
	static const char *fixed[] = { "<>", "*", "*@*", "\"q@x\"@d1.example" };
	static const char *dom[] = { "a.example", ".example", ".b.example", "[192.0.2.1]", "d1.example" };
	static const char *until[] = { "", "", "", " until=2020-01-01T00:00:00Z",
		" until=2030-01-01T00:00:00Z", " until=2026-12-04T17:00:00Z" };
	static const char *lc[] = { "", "", "", " # note", "\t# other note" };
	unsigned k = (unsigned)tr_pick(s, 10);
	size_t o;

	if (k < 5) {
		if (tr_pick(s, 12) == 0)
			o = (size_t)snprintf(buf, size, "block sender %s",
			    fixed[tr_pick(s, sizeof fixed / sizeof fixed[0])]);
		else {
			o = (size_t)snprintf(buf, size, "block sender ");
			o += tr_fill(buf + o, size - o, sfmt[tr_pick(s, sizeof sfmt / sizeof sfmt[0])],
			    (unsigned)tr_pick(s, 600), 0);
		}
	} else if (k < 8) {
		switch (tr_pick(s, 6)) {
		case 0:
			o = (size_t)snprintf(buf, size, "block client 192.0.%u.0/24", (unsigned)tr_pick(s, 8));
			break;
		case 1:
			o = (size_t)snprintf(buf, size, "block client ::ffff:192.0.%u.0/120",
			    (unsigned)tr_pick(s, 8));
			break;
		case 2:
			o = (size_t)snprintf(buf, size, "block client 2001:db8:%x::/48",
			    (unsigned)tr_pick(s, 16));
			break;
		case 3:
			o = (size_t)snprintf(buf, size, "block client %s",
			    tr_pick(s, 2) ? "0.0.0.0/0" : "::/0");
			break;
		default:
			o = (size_t)snprintf(buf, size, "block client 192.0.%u.%u",
			    (unsigned)tr_pick(s, 8), (unsigned)tr_pick(s, 256));
			break;
		}
	} else {
		const char *d = dom[tr_pick(s, sizeof dom / sizeof dom[0])];

		switch (tr_pick(s, 3)) {
		case 0:
			o = (size_t)snprintf(buf, size, "allow relay 192.0.%u.0/24 to %s",
			    (unsigned)tr_pick(s, 8), d);
			break;
		case 1:
			o = (size_t)snprintf(buf, size, "allow relay 192.0.%u.0/23 to %s",
			    2 * (unsigned)tr_pick(s, 4), d);
			break;
		default:
			o = (size_t)snprintf(buf, size, "allow relay 192.0.2.%u to %s",
			    (unsigned)tr_pick(s, 64), d);
			break;
		}
	}
	o += (size_t)snprintf(buf + o, size - o, "%s", until[tr_pick(s, sizeof until / sizeof until[0])]);
	if (tr_pick(s, 3) == 0)
		o += (size_t)snprintf(buf + o, size - o, " comment=\"c%u\"", (unsigned)tr_pick(s, 9));
	snprintf(buf + o, size - o, "%s", lc[tr_pick(s, sizeof lc / sizeof lc[0])]);
}

static void
tr_model_set(struct tr_model *m, size_t i, const char *line)
{
	char err[RULES_ERR_LEN];

	assert_int_equal(rules_rule_parse(line, strlen(line), &m->rule[i], err), 0);
	rules_rule_format(&m->rule[i], m->line[i], sizeof m->line[i]);
}

static void
tr_model_apply_add(struct tr_model *m, const char *line, int *replaced)
{
	struct rules_rule r;
	size_t i;

	char keep[256];

	tr_rule(line, &r);
	*replaced = 0;
	for (i = 0; i < m->n && !rules_rule_same(&m->rule[i], &r); i++)
		;
	if (i < m->n) {
		/* a replaced rule keeps its inline comment unless the new one has its own */
		if (r.line_comment[0] == '\0') {
			snprintf(keep, sizeof keep, "%s%s", line, m->rule[i].line_comment);
			line = keep;
		}
		rules_rule_clear(&m->rule[i]);
		*replaced = 1;
	} else {
		assert_true(m->n < sizeof m->rule / sizeof m->rule[0]);
		m->n++;
	}
	rules_rule_clear(&r);
	tr_model_set(m, i, line);
}

static void
tr_model_del(struct tr_model *m, size_t i)
{
	rules_rule_clear(&m->rule[i]);
	memmove(&m->rule[i], &m->rule[i + 1], (m->n - i - 1) * sizeof m->rule[0]);
	memmove(&m->line[i], &m->line[i + 1], (m->n - i - 1) * sizeof m->line[0]);
	m->n--;
}

static void
tr_model_check_order(const struct tr_model *m, const struct ruleset *rs)
{
	char buf[160];
	size_t i;

	assert_int_equal(rules_count(rs), m->n);
	for (i = 0; i < m->n; i++) {
		rules_rule_format(rules_get(rs, i), buf, sizeof buf);
		if (strcmp(buf, m->line[i]) != 0)
			fail_msg("rule %zu: got '%s', want '%s'", i, buf, m->line[i]);
	}
	assert_null(rules_get(rs, m->n));
}

static int
tr_live(const struct rules_rule *r, time_t now)
{
	return r->until == 0 || r->until > now;
}

static void
tr_model_check_lookups(const struct tr_model *m, const struct ruleset *rs, uint64_t *s, time_t now)
{
	static const char *addrs[] = {
		"x@d#.example", "U#@D3.EXAMPLE", "a@mx.s#.example", "a@s#.example", "joe#@d1.example",
		"spamfoo#", "x@d#.example.org", "q#@x.b#.example", "\"q@x\"@d1.example", "@d#.example",
		"x@d#.example.", "#",
	};
	/* numbers go in as decimal, which reads as hex in an IPv6 group too */
	static const char *clients[] = {
		"192.0.#.#", "::ffff:192.0.#.#", "2001:db8:#::#", "198.51.100.#",
	};
	static const char *rdom[] = {
		"a.example", "x.example", "y.b.example", "[192.0.2.1]", "d1.example", "example", "A.Example.",
	};
	char addr[128], ip[64];
	struct sockaddr_storage ss;
	const struct sockaddr *sa;
	struct rules_verdict v;
	size_t i, want;
	int k;

	for (k = 0; k < 2; k++) {
		unsigned a = (unsigned)tr_pick(s, 600), b = (unsigned)tr_pick(s, 9);

		if (tr_pick(s, 20) == 0)
			addr[0] = '\0';
		else
			tr_fill(addr, sizeof addr, addrs[tr_pick(s, sizeof addrs / sizeof addrs[0])], a, b);
		for (want = 0; want < m->n; want++)
			if (m->rule[want].kind == RULES_BLOCK_SENDER && tr_live(&m->rule[want], now) &&
			    rules_sender_match(m->rule[want].pattern, strlen(m->rule[want].pattern),
			    addr, strlen(addr)))
				break;
		rules_eval_sender(rs, addr, strlen(addr), now, &v);
		if (v.rule != rules_get(rs, want) || v.accept != (want == m->n))
			fail_msg("sender '%s': want rule %zu of %zu", addr, want, m->n);
	}
	for (k = 0; k < 2; k++) {
		i = tr_pick(s, sizeof clients / sizeof clients[0]);
		tr_fill(ip, sizeof ip, clients[i], (unsigned)tr_pick(s, i == 2 ? 17 : 9),
		    (unsigned)tr_pick(s, 256));
		sa = tr_sa(ip, &ss);
		for (want = 0; want < m->n; want++)
			if (m->rule[want].kind == RULES_BLOCK_CLIENT && tr_live(&m->rule[want], now) &&
			    rules_cidr_match(&m->rule[want].cidr, sa))
				break;
		rules_eval_client(rs, sa, now, &v);
		if (v.rule != rules_get(rs, want) || v.accept != (want == m->n))
			fail_msg("client %s: want rule %zu of %zu", ip, want, m->n);

		{
			const char *d = rdom[tr_pick(s, sizeof rdom / sizeof rdom[0])];
			struct rules_rcpt rcpt = { "u", 1, d, strlen(d), 0 };

			for (want = 0; want < m->n; want++)
				if (m->rule[want].kind == RULES_ALLOW_RELAY && tr_live(&m->rule[want], now) &&
				    rules_cidr_match(&m->rule[want].cidr, sa) &&
				    rules_domain_match(m->rule[want].pattern, strlen(m->rule[want].pattern),
				    d, strlen(d)))
					break;
			rules_eval_rcpt(NULL, rs, sa, 0, &rcpt, now, &v);
			if (v.rule != rules_get(rs, want) ||
			    v.reason != (want == m->n ? RULES_R_RELAY : RULES_R_ALLOW_RULE))
				fail_msg("rcpt %s -> %s: want rule %zu of %zu", ip, d, want, m->n);
		}
	}
}

static void
test_rules_random_changes_match_a_linear_model(void **state)
{
	struct tr_model *m = calloc(1, sizeof *m), *snap_m = calloc(1, sizeof *snap_m);
	struct ruleset *rs = rules_empty(), *snap = NULL;
	uint64_t seed = 0x5eed5eed12345ULL;
	char line[200];
	size_t op, i, adds = 0, replaces = 0, removes = 0, expired = 0;

	(void)state;
	assert_non_null(m);
	assert_non_null(snap_m);
	for (op = 0; op < 20000; op++) {
		size_t r = tr_pick(&seed, 100);
		struct ruleset *n;

		/* grow to ~1500 rules (3 levels of B+tree), then churn around that */
		if (r < (m->n < 1500 ? 75u : 45u) || m->n == 0) {
			int replaced = -1, want;
			struct rules_rule x;

			tr_random_rule(&seed, line, sizeof line);
			tr_model_apply_add(m, line, &want);
			tr_rule(line, &x);
			n = rules_add(rs, &x, &replaced);
			rules_rule_clear(&x);
			assert_non_null(n);
			assert_int_equal(replaced, want);
			adds += !want;
			replaces += want;
		} else if (r < 98) {
			struct rules_rule x;

			/* mostly a rule that is there, sometimes one that is not */
			if (tr_pick(&seed, 10) != 0) {
				i = tr_pick(&seed, m->n);
				tr_rule(m->line[i], &x);
				n = rules_remove(rs, &x);
				assert_non_null(n);
				tr_model_del(m, i);
				removes++;
			} else {
				tr_random_rule(&seed, line, sizeof line);
				tr_rule(line, &x);
				for (i = 0; i < m->n && !rules_rule_same(&m->rule[i], &x); i++)
					;
				n = rules_remove(rs, &x);
				if (i < m->n) {
					assert_non_null(n);
					tr_model_del(m, i);
					removes++;
				} else {
					assert_null(n);
					assert_int_equal(errno, ENOENT);
					n = rules_ref(rs);
				}
			}
			rules_rule_clear(&x);
		} else {
			size_t k, want = 0;

			for (i = m->n; i-- > 0;)
				if (!tr_live(&m->rule[i], TR_NOW)) {
					tr_model_del(m, i);
					want++;
				}
			n = rules_expire(rs, TR_NOW, &k);
			assert_non_null(n);
			assert_int_equal(k, want);
			expired += k;
		}
		rules_unref(rs);
		rs = n;
		assert_int_equal(rules_count(rs), m->n);
		if (m->n > 0) {
			char buf[160];

			i = tr_pick(&seed, m->n);
			rules_rule_format(rules_get(rs, i), buf, sizeof buf);
			assert_string_equal(buf, m->line[i]);
		}
		tr_model_check_lookups(m, rs, &seed, TR_NOW);
		if (op % 1000 == 999) {
			tr_model_check_order(m, rs);
			/* the snapshot taken 1000 changes ago has not moved */
			if (snap != NULL)
				tr_model_check_order(snap_m, snap);
			rules_unref(snap);
			snap = rules_ref(rs);
			memcpy(snap_m->line, m->line, sizeof m->line[0] * m->n);
			snap_m->n = m->n;
		}
	}
	print_message("%zu adds, %zu replaces, %zu removes, %zu expired, %zu left\n", adds, replaces,
	    removes, expired, m->n);
	/* enough of each to mean something, and a ruleset deep enough to have inner nodes */
	assert_true(adds > 3000 && replaces > 1000 && removes > 3000 && expired > 100);
	assert_true(m->n > 1100);
	tr_model_check_order(m, rs);
	{
		char *out = malloc(1 << 20), *want = malloc(1 << 20);
		size_t o = 0;

		assert_non_null(out);
		assert_non_null(want);
		tr_write(rs, out, 1 << 20);
		for (i = 0; i < m->n; i++)
			o += (size_t)snprintf(want + o, (1 << 20) - o, "%s%s\n", m->line[i],
			    m->rule[i].line_comment);
		assert_string_equal(out, want);
		free(out);
		free(want);
	}
	for (i = 0; i < m->n; i++)
		rules_rule_clear(&m->rule[i]);
	rules_unref(snap);
	rules_unref(rs);
	free(m);
	free(snap_m);
}

/* A big file, most of it removed one rule at a time, then grown again: the B+tree shrinks and regrows. */
static void
test_rules_big_ruleset_shrinks_and_grows(void **state)
{
	enum { N = 5000 };
	char *text = malloc(N * 40), line[64];
	size_t o = 0, i, k, *idx = malloc(N * sizeof *idx);
	uint64_t seed = 42;
	struct ruleset *rs;
	int *alive = calloc(N, sizeof *alive);

	(void)state;
	assert_non_null(text);
	assert_non_null(idx);
	assert_non_null(alive);
	for (i = 0; i < N; i++) {
		o += (size_t)snprintf(text + o, N * 40 - o, "block sender *@d%zu.example\n", i);
		idx[i] = i;
		alive[i] = 1;
	}
	rs = rules_parse(text, o, tr_fail_on_error, NULL);
	assert_non_null(rs);
	assert_int_equal(rules_count(rs), N);
	for (i = N; i > 1; i--) {
		size_t j = tr_pick(&seed, i), t = idx[i - 1];

		idx[i - 1] = idx[j];
		idx[j] = t;
	}
	for (k = 0; k < N - 10; k++) {
		snprintf(line, sizeof line, "block sender *@d%zu.example", idx[k]);
		rs = tr_remove(rs, line);
		alive[idx[k]] = 0;
		if (k % 500 == 0 || k > N - 40) {
			size_t at = 0;

			assert_int_equal(rules_count(rs), N - k - 1);
			for (i = 0; i < N; i++) {
				if (!alive[i])
					continue;
				snprintf(line, sizeof line, "*@d%zu.example", i);
				assert_string_equal(rules_get(rs, at)->pattern, line);
				at++;
			}
		}
	}
	for (k = 0; k < 2000; k++) {
		snprintf(line, sizeof line, "block client 10.%zu.%zu.0/24", k / 256, k % 256);
		rs = tr_add(rs, line, 0);
	}
	assert_int_equal(rules_count(rs), 2010);
	assert_string_equal(rules_get(rs, 10)->pattern, "");
	assert_int_equal(rules_get(rs, 2009)->cidr.addr[2], 1999 % 256);
	rules_unref(rs);
	free(text);
	free(idx);
	free(alive);
}

/*
 * Thousands of versions made from one another, held and dropped in random
 * order: AddressSanitizer catches a node freed while a version still uses
 * it, LeakSanitizer one that nothing frees.
 */
static void
test_rules_thousands_of_versions_free_cleanly(void **state)
{
	enum { KEEP = 64 };
	struct ruleset *held[KEEP] = { NULL }, *cur = rules_empty();
	uint64_t seed = 7;
	char line[200];
	size_t i, total = 0;

	(void)state;
	for (i = 0; i < 5000; i++) {
		struct rules_rule x;
		struct ruleset *n;
		size_t slot = tr_pick(&seed, KEEP);

		tr_random_rule(&seed, line, sizeof line);
		tr_rule(line, &x);
		n = tr_pick(&seed, 3) == 0 ? rules_remove(cur, &x) : rules_add(cur, &x, NULL);
		rules_rule_clear(&x);
		if (n == NULL)
			continue;
		rules_unref(held[slot]);
		held[slot] = cur;	/* keep the old one alive for a while */
		cur = n;
		total += rules_count(cur);
	}
	assert_true(total > 0);
	for (i = 0; i < KEEP; i++) {
		struct rules_verdict v;

		/* every held version still answers */
		if (held[i] != NULL) {
			rules_eval_sender(held[i], "x@d1.example", 12, TR_NOW, &v);
			if (rules_count(held[i]) > 0)
				assert_non_null(rules_get(held[i], rules_count(held[i]) - 1));
		}
		rules_unref(held[i]);
	}
	rules_unref(cur);
}

/*
 * Readers on other threads hold snapshots and evaluate while this thread
 * keeps changing the ruleset and dropping old versions, as the daemon's
 * workers and control thread do: the last reference to a version, and to
 * the nodes only it held, goes away on whichever thread lets go last.
 */
struct tr_live_set {
	pthread_mutex_t	 mu;
	struct ruleset	*cur;
	int		 stop;
	uint64_t	 lookups;
};

static void *
tr_reader(void *arg)
{
	struct tr_live_set *ls = arg;
	uint64_t seed = (uint64_t)(uintptr_t)&seed | 1, n = 0;
	struct sockaddr_storage ss;
	struct rules_verdict v;
	char addr[64];

	for (;;) {
		struct ruleset *rs;
		int k;

		pthread_mutex_lock(&ls->mu);
		if (ls->stop) {
			ls->lookups += n;
			pthread_mutex_unlock(&ls->mu);
			return NULL;
		}
		rs = rules_ref(ls->cur);
		pthread_mutex_unlock(&ls->mu);
		for (k = 0; k < 20; k++) {
			snprintf(addr, sizeof addr, "x@d%u.example", (unsigned)tr_pick(&seed, 600));
			rules_eval_sender(rs, addr, strlen(addr), TR_NOW, &v);
			snprintf(addr, sizeof addr, "192.0.%u.%u", (unsigned)tr_pick(&seed, 8),
			    (unsigned)tr_pick(&seed, 256));
			rules_eval_client(rs, tr_sa(addr, &ss), TR_NOW, &v);
			if (rules_count(rs) > 0)
				(void)rules_get(rs, tr_pick(&seed, rules_count(rs)))->pattern[0];
			n++;
		}
		rules_unref(rs);
	}
}

static void
test_rules_versions_shared_across_threads(void **state)
{
	struct tr_live_set ls;
	pthread_t th[3];
	uint64_t seed = 99;
	char line[200];
	size_t i;

	(void)state;
	pthread_mutex_init(&ls.mu, NULL);
	ls.cur = rules_empty();
	ls.stop = 0;
	ls.lookups = 0;
	for (i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&th[i], NULL, tr_reader, &ls), 0);
	for (i = 0; i < 4000; i++) {
		struct rules_rule x;
		struct ruleset *n, *old;

		tr_random_rule(&seed, line, sizeof line);
		tr_rule(line, &x);
		n = tr_pick(&seed, 3) == 0 ? rules_remove(ls.cur, &x) : rules_add(ls.cur, &x, NULL);
		rules_rule_clear(&x);
		if (n == NULL)
			continue;
		pthread_mutex_lock(&ls.mu);
		old = ls.cur;
		ls.cur = n;
		pthread_mutex_unlock(&ls.mu);
		rules_unref(old);
	}
	pthread_mutex_lock(&ls.mu);
	ls.stop = 1;
	pthread_mutex_unlock(&ls.mu);
	for (i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	assert_true(ls.lookups > 0);
	rules_unref(ls.cur);
	pthread_mutex_destroy(&ls.mu);
}

/* ---- lifetime and names ----------------------------------------------------- */

static void
test_rules_refcount_frees_at_zero(void **state)
{
	struct ruleset *rs = tr_parse_ok("block sender *@spam.example\nblock client 192.0.2.0/24\n");
	const struct rules_rule *r = rules_get(rs, 0);

	(void)state;
	assert_ptr_equal(rules_ref(rs), rs);
	assert_ptr_equal(rules_ref(rs), rs);
	rules_unref(rs);
	rules_unref(rs);
	/* still alive: one reference left (ASan would flag a use after free) */
	assert_string_equal(r->pattern, "*@spam.example");
	rules_unref(rs);	/* frees; LeakSanitizer checks nothing is left */
	rules_unref(NULL);
	assert_null(rules_ref(NULL));
}

static void
test_rules_reason_str_names(void **state)
{
	(void)state;
	assert_string_equal(rules_reason_str(RULES_R_NONE), "none");
	assert_string_equal(rules_reason_str(RULES_R_POSTMASTER), "postmaster");
	assert_string_equal(rules_reason_str(RULES_R_TRUSTED), "trusted");
	assert_string_equal(rules_reason_str(RULES_R_ALLOW_RULE), "allow_rule");
	assert_string_equal(rules_reason_str(RULES_R_AUTH), "auth");
	assert_string_equal(rules_reason_str(RULES_R_LOCAL_DOMAIN), "local_domain");
	assert_string_equal(rules_reason_str(RULES_R_ROUTING), "routing");
	assert_string_equal(rules_reason_str(RULES_R_RELAY), "relay");
	assert_string_equal(rules_reason_str(RULES_R_SENDER_RULE), "sender");
	assert_string_equal(rules_reason_str(RULES_R_CLIENT_RULE), "client");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rules_cidr_parse_good),
		cmocka_unit_test(test_rules_cidr_parse_errors),
		cmocka_unit_test(test_rules_cidr_match_families),
		cmocka_unit_test(test_rules_cidr_format_truncates_like_snprintf),
		cmocka_unit_test(test_rules_cidrset_add_match_get),
		cmocka_unit_test(test_rules_domain_pattern_check),
		cmocka_unit_test(test_rules_domain_match_names),
		cmocka_unit_test(test_rules_domainset_normalizes),
		cmocka_unit_test(test_rules_sender_match_globs),
		cmocka_unit_test(test_rules_sender_match_pathological_is_fast),
		cmocka_unit_test(test_rules_parse_realistic_file),
		cmocka_unit_test(test_rules_parse_empty_and_comment_only),
		cmocka_unit_test(test_rules_parse_reports_every_error_with_its_line),
		cmocka_unit_test(test_rules_parse_limits),
		cmocka_unit_test(test_rules_format_round_trip),
		cmocka_unit_test(test_rules_format_truncates_like_snprintf),
		cmocka_unit_test(test_rules_eval_sender_first_match),
		cmocka_unit_test(test_rules_eval_client_first_match),
		cmocka_unit_test(test_rules_expiry_in_all_three_evals),
		cmocka_unit_test(test_rules_relay_decision_table),
		cmocka_unit_test(test_rules_relay_empty_policy_refuses),
		cmocka_unit_test(test_rules_rule_parse_one_line),
		cmocka_unit_test(test_rules_rule_same_names_the_rule),
		cmocka_unit_test(test_rules_add_appends_or_replaces_in_place),
		cmocka_unit_test(test_rules_remove_and_enoent),
		cmocka_unit_test(test_rules_add_checks_built_rules),
		cmocka_unit_test(test_rules_expire_and_next_expiry),
		cmocka_unit_test(test_rules_hits_shared_across_versions),
		cmocka_unit_test(test_rules_parse_duplicate_rule_is_an_error),
		cmocka_unit_test(test_rules_write_keeps_hand_written_comments),
		cmocka_unit_test(test_rules_write_stops_at_the_first_error),
		cmocka_unit_test(test_rules_random_changes_match_a_linear_model),
		cmocka_unit_test(test_rules_big_ruleset_shrinks_and_grows),
		cmocka_unit_test(test_rules_thousands_of_versions_free_cleanly),
		cmocka_unit_test(test_rules_versions_shared_across_threads),
		cmocka_unit_test(test_rules_refcount_frees_at_zero),
		cmocka_unit_test(test_rules_reason_str_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
