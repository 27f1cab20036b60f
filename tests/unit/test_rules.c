/*
 * test_rules: the rules/ module as an administrator sees it. Addresses and
 * CIDR blocks, domain patterns, sender globs, the rules-file language (every
 * error with its line), format/parse round trip, expiry, and SPEC.md's relay
 * decision as a table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
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
		cmocka_unit_test(test_rules_refcount_frees_at_zero),
		cmocka_unit_test(test_rules_reason_str_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
