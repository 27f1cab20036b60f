/*
 * set.c: the matchers under every rule. CIDR blocks and CIDR sets
 * (trusted_networks), domain patterns and domain sets (local_domains,
 * "allow relay ... to PATTERN"), sender globs ("block sender PATTERN").
 *
 * Parsers are strict: an address with host bits set, a domain pattern that
 * is not a host name, a literal that is not an address are errors with a
 * message for the administrator, never silently "fixed".
 *
 * Matchers are pure, never allocate and run in time linear in their input
 * (the sender glob is O(pattern * address) at worst, never exponential):
 * they see hostile input from clients on every RCPT and MAIL.
 *
 * Never logs, never does I/O.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rules_int.h"

#define RULES_ADDR_TEXT_MAX	64	/* longer than any address inet_pton takes */

/* ---- error text -------------------------------------------------------- */

void
rules_esc(char *dst, size_t dsize, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		size_t need = (c >= 0x20 && c < 0x7f) ? 1 : 4;

		/* keep room for "..." and the NUL */
		if (o + need + 4 > dsize) {
			memcpy(dst + o, "...", 3);
			o += 3;
			break;
		}
		if (need == 1) {
			dst[o++] = (char)c;
		} else {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 0xf];
		}
	}
	dst[o] = '\0';
}

/* ---- addresses and CIDR blocks ----------------------------------------- */

static int
rules_isdigit(int c)
{
	return c >= '0' && c <= '9';
}

/* inet_pton on a counted string; 0, or -1 if it is not exactly an address of that family. */
static int
rules_pton(int family, const char *s, size_t len, uint8_t out[16])
{
	char buf[RULES_ADDR_TEXT_MAX];

	if (len == 0 || len >= sizeof buf || memchr(s, '\0', len) != NULL)
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	memset(out, 0, 16);
	return inet_pton(family, buf, out) == 1 ? 0 : -1;
}

/* 1 if the first `prefix` bits of a and b are equal. */
int
rules_prefix_eq(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
	unsigned full = prefix / 8, rest = prefix % 8;

	if (memcmp(a, b, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a[full] ^ b[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

static void
rules_mask(uint8_t *a, unsigned prefix, unsigned bytes)
{
	unsigned i;

	for (i = 0; i < bytes; i++) {
		if (prefix >= 8)
			prefix -= 8;
		else {
			a[i] &= (uint8_t)(0xff << (8 - prefix));
			prefix = 0;
		}
	}
}

int
rules_cidr_parse(const char *s, size_t len, struct rules_cidr *out, char err[RULES_ERR_LEN])
{
	char esc[96];
	const char *slash, *p, *end = s + len;
	size_t alen;
	unsigned max, prefix = 0, ndig = 0;
	struct rules_cidr c;

	if (len == 0) {
		snprintf(err, RULES_ERR_LEN, "empty address");
		return -1;
	}
	rules_esc(esc, sizeof esc, s, len);
	slash = memchr(s, '/', len);
	alen = slash != NULL ? (size_t)(slash - s) : len;

	memset(&c, 0, sizeof c);
	c.family = memchr(s, ':', alen) != NULL ? AF_INET6 : AF_INET;
	if (rules_pton(c.family, s, alen, c.addr) == -1) {
		snprintf(err, RULES_ERR_LEN, "'%s' is not an IPv4 or IPv6 address", esc);
		return -1;
	}
	max = c.family == AF_INET ? 32 : 128;
	if (slash == NULL) {
		c.prefix = (uint8_t)max;
		*out = c;
		return 0;
	}

	p = slash + 1;
	if (p == end) {
		snprintf(err, RULES_ERR_LEN, "'%s': missing prefix length after '/'", esc);
		return -1;
	}
	if (!rules_isdigit((unsigned char)*p) || (*p == '0' && p + 1 < end &&
	    rules_isdigit((unsigned char)p[1]))) {
		snprintf(err, RULES_ERR_LEN, "'%s': bad prefix length", esc);
		return -1;
	}
	for (; p < end && rules_isdigit((unsigned char)*p); p++) {
		if (++ndig <= 4)
			prefix = prefix * 10 + (unsigned)(*p - '0');
	}
	if (p != end) {
		snprintf(err, RULES_ERR_LEN, "'%s': garbage after the prefix length", esc);
		return -1;
	}
	if (ndig > 3 || prefix > max) {
		snprintf(err, RULES_ERR_LEN, "'%s': prefix length out of range for %s (0..%u)",
		    esc, c.family == AF_INET ? "IPv4" : "IPv6", max);
		return -1;
	}
	c.prefix = (uint8_t)prefix;

	{
		struct rules_cidr m = c;
		char hint[RULES_ADDR_TEXT_MAX + 8];

		rules_mask(m.addr, prefix, max / 8);
		if (memcmp(m.addr, c.addr, sizeof c.addr) != 0) {
			rules_cidr_format(&m, hint, sizeof hint);
			snprintf(err, RULES_ERR_LEN, "'%s': host bits set; did you mean %s?", esc, hint);
			return -1;
		}
	}
	*out = c;
	return 0;
}

int
rules_addr_from_sa(const struct sockaddr *sa, struct rules_addr *out)
{
	memset(out, 0, sizeof *out);
	if (sa == NULL)
		return -1;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;

		out->ra_family = AF_INET;
		memcpy(out->ra_addr, &sin->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;

		/* a dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d */
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			out->ra_family = AF_INET;
			memcpy(out->ra_addr, &sin6->sin6_addr.s6_addr[12], 4);
		} else {
			out->ra_family = AF_INET6;
			memcpy(out->ra_addr, &sin6->sin6_addr, 16);
		}
		return 0;
	}
	return -1;
}

int
rules_cidr_match_addr(const struct rules_cidr *c, const struct rules_addr *a)
{
	static const uint8_t mapped[12] = { 0,0,0,0, 0,0,0,0, 0,0,0xff,0xff };

	if (c->family == a->ra_family)
		return rules_prefix_eq(c->addr, a->ra_addr, c->prefix);
	/*
	 * An IPv6 block inside ::ffff:0:0/96 names IPv4 clients: the client
	 * was folded to IPv4, so compare the block in that form too. A wider
	 * IPv6 block (::/0) does not match IPv4 clients.
	 */
	if (c->family == AF_INET6 && a->ra_family == AF_INET && c->prefix >= 96 &&
	    memcmp(c->addr, mapped, sizeof mapped) == 0)
		return rules_prefix_eq(c->addr + 12, a->ra_addr, c->prefix - 96u);
	return 0;
}

int
rules_cidr_match(const struct rules_cidr *c, const struct sockaddr *sa)
{
	struct rules_addr a;

	if (rules_addr_from_sa(sa, &a) == -1)
		return 0;
	return rules_cidr_match_addr(c, &a);
}

int
rules_cidr_format(const struct rules_cidr *c, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if ((c->family != AF_INET && c->family != AF_INET6) ||
	    inet_ntop(c->family, c->addr, a, sizeof a) == NULL)
		return snprintf(buf, len, "(invalid)");
	return snprintf(buf, len, "%s/%u", a, (unsigned)c->prefix);
}

/* ---- CIDR sets --------------------------------------------------------- */

struct rules_cidrset {
	size_t			 cs_n, cs_cap;
	struct rules_cidr	*cs_v;
};

struct rules_cidrset *
rules_cidrset_new(void)
{
	return calloc(1, sizeof(struct rules_cidrset));
}

void
rules_cidrset_free(struct rules_cidrset *cs)
{
	if (cs == NULL)
		return;
	free(cs->cs_v);
	free(cs);
}

int
rules_cidrset_add(struct rules_cidrset *cs, const struct rules_cidr *c)
{
	if (cs->cs_n == cs->cs_cap) {
		size_t ncap = cs->cs_cap ? cs->cs_cap * 2 : 8;
		struct rules_cidr *v = reallocarray(cs->cs_v, ncap, sizeof *v);

		if (v == NULL) {
			errno = ENOMEM;
			return -1;
		}
		cs->cs_v = v;
		cs->cs_cap = ncap;
	}
	cs->cs_v[cs->cs_n++] = *c;
	return 0;
}

int
rules_cidrset_match(const struct rules_cidrset *cs, const struct sockaddr *sa)
{
	struct rules_addr a;
	size_t i;

	if (cs == NULL || rules_addr_from_sa(sa, &a) == -1)
		return 0;
	for (i = 0; i < cs->cs_n; i++)
		if (rules_cidr_match_addr(&cs->cs_v[i], &a))
			return 1;
	return 0;
}

size_t
rules_cidrset_count(const struct rules_cidrset *cs)
{
	return cs != NULL ? cs->cs_n : 0;
}

const struct rules_cidr *
rules_cidrset_get(const struct rules_cidrset *cs, size_t i)
{
	return cs != NULL && i < cs->cs_n ? &cs->cs_v[i] : NULL;
}

/* ---- domain patterns ---------------------------------------------------- */

/*
 * "[198.51.100.2]" or "[IPv6:2001:db8::1]" (tag in any case, RFC 5234
 * strings being case-insensitive) -> family and binary address.
 */
static int
rules_literal_parse(const char *s, size_t len, uint8_t *family, uint8_t addr[16])
{
	if (len < 3 || s[0] != '[' || s[len - 1] != ']')
		return -1;
	s++;
	len -= 2;
	if (len > 5 && strncasecmp(s, "IPv6:", 5) == 0) {
		*family = AF_INET6;
		return rules_pton(AF_INET6, s + 5, len - 5, addr);
	}
	*family = AF_INET;
	return rules_pton(AF_INET, s, len, addr);
}

static int
rules_literal_norm(const char *s, size_t len, char out[RULES_PATTERN_MAX], char err[RULES_ERR_LEN])
{
	char esc[96], a[INET6_ADDRSTRLEN];
	uint8_t family, addr[16];

	rules_esc(esc, sizeof esc, s, len);
	if (s[len - 1] != ']') {
		snprintf(err, RULES_ERR_LEN, "address literal '%s' lacks its closing ']'", esc);
		return -1;
	}
	if (rules_literal_parse(s, len, &family, addr) == -1) {
		if (memchr(s, ':', len) != NULL && (len < 6 || strncasecmp(s + 1, "IPv6:", 5) != 0))
			snprintf(err, RULES_ERR_LEN, "bad address literal '%s': an IPv6 literal is "
			    "written [IPv6:2001:db8::1]", esc);
		else
			snprintf(err, RULES_ERR_LEN, "bad address literal '%s': expected [192.0.2.1] "
			    "or [IPv6:2001:db8::1]", esc);
		return -1;
	}
	inet_ntop(family, addr, a, sizeof a);
	snprintf(out, RULES_PATTERN_MAX, "[%s%s]", family == AF_INET6 ? "IPv6:" : "", a);
	return 0;
}

static int
rules_hostchar(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || rules_isdigit(c) || c == '-';
}

int
rules_domain_pattern_norm(const char *s, size_t len, char out[RULES_PATTERN_MAX],
    char err[RULES_ERR_LEN])
{
	char esc[96];
	const char *name = s;
	size_t nlen = len, i, label = 0;
	uint8_t dummy[16];

	if (len == 0) {
		snprintf(err, RULES_ERR_LEN, "empty domain pattern");
		return -1;
	}
	if (s[0] == '[')
		return rules_literal_norm(s, len, out, err);

	rules_esc(esc, sizeof esc, s, len);
	if (name[0] == '.') {
		name++;
		nlen--;
	}
	if (nlen == 0) {
		snprintf(err, RULES_ERR_LEN, "'%s' is not a domain pattern", esc);
		return -1;
	}
	if (memchr(s, '*', len) != NULL) {
		snprintf(err, RULES_ERR_LEN, "'%s': '*' is not allowed; write .example.com for "
		    "every subdomain of example.com", esc);
		return -1;
	}
	if (name[nlen - 1] == '.') {
		snprintf(err, RULES_ERR_LEN, "'%s': no trailing dot in a domain pattern", esc);
		return -1;
	}
	if (nlen > 253) {
		snprintf(err, RULES_ERR_LEN, "'%s': longer than 253 bytes", esc);
		return -1;
	}
	for (i = 0; i <= nlen; i++) {
		if (i == nlen || name[i] == '.') {
			if (label == 0) {
				snprintf(err, RULES_ERR_LEN, "'%s': empty label", esc);
				return -1;
			}
			if (label > 63) {
				snprintf(err, RULES_ERR_LEN, "'%s': label longer than 63 bytes", esc);
				return -1;
			}
			if (name[i - 1] == '-' || name[i - label] == '-') {
				snprintf(err, RULES_ERR_LEN, "'%s': a label may not begin or end with '-'", esc);
				return -1;
			}
			label = 0;
			continue;
		}
		if (!rules_hostchar((unsigned char)name[i])) {
			char c[8];

			rules_esc(c, sizeof c, name + i, 1);
			snprintf(err, RULES_ERR_LEN, "'%s': invalid character '%s' in a domain "
			    "(letters, digits, '-' and '.' only)", esc, c);
			return -1;
		}
		label++;
	}
	if (name == s && rules_pton(AF_INET, s, len, dummy) == 0) {
		snprintf(err, RULES_ERR_LEN, "'%s' is an address; write the address literal [%s]",
		    esc, esc);
		return -1;
	}
	for (i = 0; i < len; i++)
		out[i] = (char)rules_lc((unsigned char)s[i]);
	out[len] = '\0';
	return 0;
}

int
rules_domain_pattern_check(const char *s, size_t len, char err[RULES_ERR_LEN])
{
	char out[RULES_PATTERN_MAX];

	return rules_domain_pattern_norm(s, len, out, err);
}

static int
rules_caseeq(const char *a, const char *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (rules_lc((unsigned char)a[i]) != rules_lc((unsigned char)b[i]))
			return 0;
	return 1;
}

/* The part of a client's domain left of a ".suffix" match: a plausible host name, or no match. */
static int
rules_hostname_plausible(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || s[0] == '.' || s[len - 1] == '.')
		return 0;
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (s[i - 1] == '.')
				return 0;
		} else if (!rules_hostchar((unsigned char)s[i]))
			return 0;
	}
	return 1;
}

int
rules_domain_match(const char *pattern, size_t plen, const char *domain, size_t dlen)
{
	if (plen == 0 || dlen == 0)
		return 0;
	if (pattern[0] == '[') {
		uint8_t pf, df, pa[16], da[16];

		if (rules_literal_parse(pattern, plen, &pf, pa) == -1 ||
		    rules_literal_parse(domain, dlen, &df, da) == -1)
			return 0;
		return pf == df && memcmp(pa, da, 16) == 0;
	}
	if (domain[dlen - 1] == '.') {
		dlen--;
		if (dlen == 0 || domain[dlen - 1] == '.')
			return 0;
	}
	if (pattern[0] == '.') {
		if (dlen <= plen)
			return 0;
		return rules_caseeq(domain + dlen - plen, pattern, plen) &&
		    rules_hostname_plausible(domain, dlen - plen);
	}
	return dlen == plen && rules_caseeq(domain, pattern, plen);
}

/* ---- domain sets -------------------------------------------------------- */

struct rules_domain_ent {
	size_t	de_len;
	char	de_pat[RULES_PATTERN_MAX];
};

struct rules_domainset {
	size_t			 ds_n, ds_cap;
	struct rules_domain_ent	*ds_v;
};

struct rules_domainset *
rules_domainset_new(void)
{
	return calloc(1, sizeof(struct rules_domainset));
}

void
rules_domainset_free(struct rules_domainset *ds)
{
	if (ds == NULL)
		return;
	free(ds->ds_v);
	free(ds);
}

int
rules_domainset_add(struct rules_domainset *ds, const char *pat, size_t len, char err[RULES_ERR_LEN])
{
	struct rules_domain_ent e;

	if (rules_domain_pattern_norm(pat, len, e.de_pat, err) == -1)
		return -1;
	e.de_len = strlen(e.de_pat);
	if (ds->ds_n == ds->ds_cap) {
		size_t ncap = ds->ds_cap ? ds->ds_cap * 2 : 8;
		struct rules_domain_ent *v = reallocarray(ds->ds_v, ncap, sizeof *v);

		if (v == NULL) {
			snprintf(err, RULES_ERR_LEN, "out of memory");
			errno = ENOMEM;
			return -1;
		}
		ds->ds_v = v;
		ds->ds_cap = ncap;
	}
	ds->ds_v[ds->ds_n++] = e;
	return 0;
}

int
rules_domainset_match(const struct rules_domainset *ds, const char *domain, size_t len)
{
	size_t i;

	if (ds == NULL)
		return 0;
	for (i = 0; i < ds->ds_n; i++)
		if (rules_domain_match(ds->ds_v[i].de_pat, ds->ds_v[i].de_len, domain, len))
			return 1;
	return 0;
}

size_t
rules_domainset_count(const struct rules_domainset *ds)
{
	return ds != NULL ? ds->ds_n : 0;
}

const char *
rules_domainset_get(const struct rules_domainset *ds, size_t i)
{
	return ds != NULL && i < ds->ds_n ? ds->ds_v[i].de_pat : NULL;
}

/* ---- sender globs -------------------------------------------------------- */

/*
 * Iterative glob with one remembered star: on a mismatch, retry from the
 * last '*' one byte further. Earlier stars never need revisiting (a later
 * star can absorb anything they would), so the cost is bounded by
 * plen * alen, whatever the pattern.
 */
int
rules_sender_match(const char *pattern, size_t plen, const char *addr, size_t alen)
{
	size_t p = 0, a = 0, star_p = SIZE_MAX, star_a = 0;

	if (plen == 2 && pattern[0] == '<' && pattern[1] == '>')
		return alen == 0;
	if (alen == 0)
		return 0;
	while (a < alen) {
		if (p < plen && pattern[p] == '*') {
			star_p = p++;
			star_a = a;
		} else if (p < plen && (pattern[p] == '?' ||
		    rules_lc((unsigned char)pattern[p]) == rules_lc((unsigned char)addr[a]))) {
			p++;
			a++;
		} else if (star_p != SIZE_MAX) {
			p = star_p + 1;
			a = ++star_a;
		} else
			return 0;
	}
	while (p < plen && pattern[p] == '*')
		p++;
	return p == plen;
}
