/*
 * config: the smtpwall.conf parser (config.h, SPEC.md "Configuration").
 *
 * Owns: struct config's defaults, the key table (one row per key of
 * SPEC.md, with its validator) and the error messages an administrator
 * reads from `smtpwalld -t`: "FILE:LINE: message", each saying what was
 * expected. Parsing goes on after an error, so one run reports them all.
 *
 * Rules of the file: `key = value`; '#' to the end of the line is a
 * comment; CRLF line endings and a UTF-8 byte order mark are tolerated;
 * keys are lower case; word values (yes, tproxy, off...) any case. A scalar
 * key given twice is an error. A list key may repeat: its first line in the
 * file replaces the default, later lines append.
 *
 * Never: resolves names (listen and upstream are numeric), looks up groups
 * or interfaces (the file may be checked on another host), logs, or exits.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"

#define CONFIG_FILE_MAX	(1024 * 1024)
#define CONFIG_ESC_MAX	80	/* a quoted value in a message */
#define CONFIG_MSG_MAX	512
#define CONFIG_NUM_MAX	32	/* longer digit strings are out of range anyway */

#define CONFIG_KIB		1024ULL
#define CONFIG_MIB		(1024ULL * CONFIG_KIB)
#define CONFIG_GIB		(1024ULL * CONFIG_MIB)

#define CONFIG_LISTEN_EXPECT	"IP:PORT, e.g. 0.0.0.0:10025 or [::]:10025"
#define CONFIG_DEFAULT_COMMANDS	"HELO EHLO MAIL RCPT DATA RSET NOOP QUIT HELP VRFY STARTTLS AUTH"

struct config_parser;
struct config_key;

/* A scalar key's whole value, or one element of a list key. 0, or -1 once reported. */
typedef int config_value_fn(struct config_parser *, const char *v, size_t len);
/* A list key's first line drops the default. 0, or -1 on ENOMEM. */
typedef int config_reset_fn(struct config *);

struct config_key {
	const char	*k_name;
	config_value_fn	*k_set;		/* scalar keys */
	config_value_fn	*k_item;	/* list keys */
	config_reset_fn	*k_reset;	/* list keys */
	int		 k_empty_ok;	/* list keys: an empty value is an empty list */
	int		 k_none_ok;	/* list keys: so is the value "none" */
	const char	*k_expect;	/* list keys: what an element looks like */
};

struct config_parser {
	struct config		*p_cf;
	const char		*p_path;
	FILE			*p_errf;
	unsigned		 p_line;
	int			 p_nerr;
	const struct config_key	*p_key;		/* the key of the current line */
	unsigned		*p_first;	/* per key: line of its first occurrence, 0 = none */
	unsigned char		*p_bad;		/* per scalar key: its value was refused */
};

/* ---- messages ------------------------------------------------------------ */

static void config_err(struct config_parser *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static void
config_err(struct config_parser *p, const char *fmt, ...)
{
	char msg[CONFIG_MSG_MAX];
	va_list ap;

	p->p_nerr++;
	if (p->p_errf == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(p->p_errf, "%s:%u: %s\n", p->p_path, p->p_line, msg);
}

/* Text from the file, quoted in a message: control and non-ASCII bytes as \xHH, cut with "...". */
static const char *
config_esc(char dst[CONFIG_ESC_MAX], const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		size_t need = (c >= 0x20 && c < 0x7f) ? 1 : 4;

		if (o + need + 4 > CONFIG_ESC_MAX) {
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
	return dst;
}

/* "bad value 'V' for KEY: expected WHAT" ("missing value ..." when empty). Returns -1. */
static int
config_bad(struct config_parser *p, const char *v, size_t len, const char *expect)
{
	char esc[CONFIG_ESC_MAX];

	if (len == 0)
		config_err(p, "missing value for %s: expected %s", p->p_key->k_name, expect);
	else
		config_err(p, "bad value '%s' for %s: expected %s", config_esc(esc, v, len),
		    p->p_key->k_name, expect);
	return -1;
}

static int
config_out_of_range(struct config_parser *p, const char *v, size_t len, const char *range)
{
	char esc[CONFIG_ESC_MAX];

	config_err(p, "bad value '%s' for %s: out of range, expected %s", config_esc(esc, v, len),
	    p->p_key->k_name, range);
	return -1;
}

/* ---- lexical helpers -------------------------------------------------------- */

static int
config_isdigit(int c)
{
	return c >= '0' && c <= '9';
}

static int
config_isalpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
config_isspace(int c)
{
	return c == ' ' || c == '\t';
}

static int
config_word_eq(const char *v, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(v, word, len) == 0;
}

/*
 * Index of v in words (NULL-terminated, any case), or -1 after reporting
 * "expected a, b or c".
 */
static int
config_choice(struct config_parser *p, const char *v, size_t len, const char *const *words)
{
	char expect[128];
	size_t o = 0, n;
	int i;

	for (i = 0; words[i] != NULL; i++)
		if (config_word_eq(v, len, words[i]))
			return i;
	for (n = 0; words[n] != NULL; n++)
		;
	expect[0] = '\0';
	for (i = 0; words[i] != NULL; i++)
		o += (size_t)snprintf(expect + o, sizeof(expect) - o, "%s%s",
		    i == 0 ? "" : (size_t)i == n - 1 ? " or " : ", ", words[i]);
	return config_bad(p, v, len, expect);
}

enum config_num { CONFIG_NUM_OK = 0, CONFIG_NUM_SYNTAX, CONFIG_NUM_RANGE };

/*
 * Leading decimal digits of v (at least one; no sign, no space) into *out;
 * *used is how many bytes they took. strtoull on a bounded NUL-terminated copy.
 */
static enum config_num
config_digits(const char *v, size_t len, uint64_t *out, size_t *used)
{
	char buf[CONFIG_NUM_MAX + 1];
	unsigned long long x;
	size_t n = 0;
	char *end;

	while (n < len && config_isdigit((unsigned char)v[n]))
		n++;
	*used = n;
	if (n == 0)
		return CONFIG_NUM_SYNTAX;
	if (n > CONFIG_NUM_MAX)
		return CONFIG_NUM_RANGE;
	memcpy(buf, v, n);
	buf[n] = '\0';
	errno = 0;
	x = strtoull(buf, &end, 10);
	if (errno == ERANGE)
		return CONFIG_NUM_RANGE;
	if (*end != '\0' || errno != 0)
		return CONFIG_NUM_SYNTAX;
	*out = x;
	return CONFIG_NUM_OK;
}

/* A whole number in lo..hi, nothing else. */
static int
config_uint(struct config_parser *p, const char *v, size_t len, uint64_t lo, uint64_t hi,
    uint64_t *out)
{
	char range[64];
	uint64_t x = 0;
	size_t used;
	enum config_num r = config_digits(v, len, &x, &used);

	snprintf(range, sizeof(range), "%llu..%llu", (unsigned long long)lo,
	    (unsigned long long)hi);
	if (r == CONFIG_NUM_SYNTAX || used != len) {
		char expect[96];

		snprintf(expect, sizeof(expect), "a whole number from %llu to %llu",
		    (unsigned long long)lo, (unsigned long long)hi);
		return config_bad(p, v, len, expect);
	}
	if (r == CONFIG_NUM_RANGE || x < lo || x > hi)
		return config_out_of_range(p, v, len, range);
	*out = x;
	return 0;
}

/* "4M" rather than "4194304" in a range message. */
static void
config_fmt_size(char *dst, size_t dlen, uint64_t n)
{
	if (n >= CONFIG_GIB && n % CONFIG_GIB == 0)
		snprintf(dst, dlen, "%lluG", (unsigned long long)(n / CONFIG_GIB));
	else if (n >= CONFIG_MIB && n % CONFIG_MIB == 0)
		snprintf(dst, dlen, "%lluM", (unsigned long long)(n / CONFIG_MIB));
	else if (n >= CONFIG_KIB && n % CONFIG_KIB == 0)
		snprintf(dst, dlen, "%lluK", (unsigned long long)(n / CONFIG_KIB));
	else
		snprintf(dst, dlen, "%llu", (unsigned long long)n);
}

/* Digits and one optional unit letter from units (any case), each with its multiplier. */
static int
config_scaled(struct config_parser *p, const char *v, size_t len, const char *units,
    const uint64_t *mult, uint64_t lo, uint64_t hi, const char *expect,
    const char *range, uint64_t *out)
{
	uint64_t x = 0, m = 1;
	size_t used;
	enum config_num r = config_digits(v, len, &x, &used);
	const char *u;

	if (r == CONFIG_NUM_SYNTAX)
		return config_bad(p, v, len, expect);
	if (used + 1 == len) {
		char c = v[used];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		u = strchr(units, c);
		if (c == '\0' || u == NULL)
			return config_bad(p, v, len, expect);
		m = mult[u - units];
	} else if (used != len) {
		return config_bad(p, v, len, expect);
	}
	if (r == CONFIG_NUM_RANGE || x > UINT64_MAX / m || x * m < lo || x * m > hi)
		return config_out_of_range(p, v, len, range);
	*out = x * m;
	return 0;
}

static int
config_size(struct config_parser *p, const char *v, size_t len, uint64_t lo, uint64_t hi,
    uint64_t *out)
{
	static const uint64_t mult[] = { CONFIG_KIB, CONFIG_MIB, CONFIG_GIB };
	char range[64], a[24], b[24];

	config_fmt_size(a, sizeof(a), lo);
	config_fmt_size(b, sizeof(b), hi);
	snprintf(range, sizeof(range), "%s..%s", a, b);
	return config_scaled(p, v, len, "kmg", mult, lo, hi,
	    "a size in bytes with an optional K, M or G suffix, e.g. 4M", range, out);
}

static int
config_seconds(struct config_parser *p, const char *v, size_t len, unsigned *out)
{
	static const uint64_t mult[] = { 1, 60, 3600 };
	uint64_t x;

	if (config_scaled(p, v, len, "smh", mult, 1, 86400,
	    "seconds with an optional s, m or h suffix, e.g. 30, 5m or 1h",
	    "1..86400 seconds (24h)", &x) == -1)
		return -1;
	*out = (unsigned)x;
	return 0;
}

/* ---- addresses -------------------------------------------------------------- */

/*
 * "192.0.2.1:25" or "[2001:db8::1]:25", numeric only, port 1..65535.
 * 0, or -1 (syntax) / -2 (port out of range) without reporting.
 */
static int
config_sockaddr(const char *v, size_t len, struct sockaddr_storage *ss, socklen_t *sslen)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *h, *port;
	size_t hlen, plen, used;
	uint64_t pn = 0;
	enum config_num r;

	if (len > 0 && v[0] == '[') {
		const char *rb = memchr(v, ']', len);

		if (rb == NULL || rb + 1 >= v + len || rb[1] != ':')
			return -1;
		h = v + 1;
		hlen = (size_t)(rb - h);
		port = rb + 2;
	} else {
		const char *colon = memchr(v, ':', len);

		if (colon == NULL || memchr(colon + 1, ':', len - (size_t)(colon + 1 - v)) != NULL)
			return -1;
		h = v;
		hlen = (size_t)(colon - v);
		port = colon + 1;
	}
	plen = len - (size_t)(port - v);
	if (hlen == 0 || hlen >= sizeof(host))
		return -1;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	r = config_digits(port, plen, &pn, &used);
	if (r == CONFIG_NUM_SYNTAX || used != plen)
		return -1;
	if (r == CONFIG_NUM_RANGE || pn < 1 || pn > 65535)
		return -2;

	memset(ss, 0, sizeof(*ss));
	if (v[0] == '[') {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)ss;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)pn);
		*sslen = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)(void *)ss;

		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)pn);
		*sslen = sizeof(*sin);
	}
	return 0;
}

static int
config_sockaddr_eq(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const struct sockaddr_in *)(const void *)a;
		const struct sockaddr_in *y = (const struct sockaddr_in *)(const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	} else {
		const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)(const void *)a;
		const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)(const void *)b;

		return x->sin6_port == y->sin6_port &&
		    memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
}

/* ---- scalar keys -------------------------------------------------------------- */

static int
config_yesno(struct config_parser *p, const char *v, size_t len, int *out)
{
	static const char *const words[] = { "yes", "no", NULL };
	int i = config_choice(p, v, len, words);

	if (i == -1)
		return -1;
	*out = i == 0;
	return 0;
}

static int
config_set_mode(struct config_parser *p, const char *v, size_t len)
{
	static const char *const words[] = { "redirect", "tproxy", NULL };
	int i = config_choice(p, v, len, words);

	if (i == -1)
		return -1;
	p->p_cf->mode = i == 0 ? CONFIG_MODE_REDIRECT : CONFIG_MODE_TPROXY;
	return 0;
}

static int
config_set_upstream(struct config_parser *p, const char *v, size_t len)
{
	struct config *cf = p->p_cf;
	int r;

	if (config_word_eq(v, len, "original")) {
		cf->upstream_fixed = 0;
		return 0;
	}
	r = config_sockaddr(v, len, &cf->upstream, &cf->upstream_len);
	if (r == -2) {
		char esc[CONFIG_ESC_MAX];

		config_err(p, "upstream: port out of range in '%s': expected 1..65535",
		    config_esc(esc, v, len));
		return -1;
	}
	if (r == -1)
		return config_bad(p, v, len, "original or IP:PORT, e.g. 192.0.2.25:25 or "
		    "[2001:db8::25]:25 (no host names)");
	cf->upstream_fixed = 1;
	return 0;
}

static int
config_set_auth_relay(struct config_parser *p, const char *v, size_t len)
{
	return config_yesno(p, v, len, &p->p_cf->auth_relay);
}

static int
config_set_capture_redact(struct config_parser *p, const char *v, size_t len)
{
	return config_yesno(p, v, len, &p->p_cf->capture_redact);
}

/* An absolute path without whitespace, shorter than size. */
static int
config_path(struct config_parser *p, const char *v, size_t len, char *dst, size_t size)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (config_isspace((unsigned char)v[i]))
			return config_bad(p, v, len, "an absolute path without spaces");
	if (len == 0 || v[0] != '/')
		return config_bad(p, v, len, "an absolute path, e.g. /var/lib/smtpwall/rules");
	if (len >= size) {
		config_err(p, "%s: path too long (%zu bytes; at most %zu)", p->p_key->k_name,
		    len, size - 1);
		return -1;
	}
	memcpy(dst, v, len);
	dst[len] = '\0';
	return 0;
}

static int
config_set_rules_file(struct config_parser *p, const char *v, size_t len)
{
	return config_path(p, v, len, p->p_cf->rules_file, sizeof(p->p_cf->rules_file));
}

static int
config_set_control_socket(struct config_parser *p, const char *v, size_t len)
{
	/* sizeof(control_socket) is sun_path's: the NUL must fit too */
	return config_path(p, v, len, p->p_cf->control_socket, sizeof(p->p_cf->control_socket));
}

static int
config_set_capture_dir(struct config_parser *p, const char *v, size_t len)
{
	return config_path(p, v, len, p->p_cf->capture_dir, sizeof(p->p_cf->capture_dir));
}

/* POSIX portable names: letters, digits, '.', '_', '-', not starting with '-'. */
static int
config_set_control_group(struct config_parser *p, const char *v, size_t len)
{
	struct config *cf = p->p_cf;
	size_t i;

	if (config_word_eq(v, len, "none")) {
		cf->control_group[0] = '\0';
		return 0;
	}
	if (len == 0 || len > 32 || v[0] == '-')
		goto bad;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];

		if (!config_isalpha(c) && !config_isdigit(c) && c != '.' && c != '_' && c != '-')
			goto bad;
	}
	memcpy(cf->control_group, v, len);
	cf->control_group[len] = '\0';
	return 0;
bad:
	return config_bad(p, v, len, "none or a group name (letters, digits, '.', '_', '-'; "
	    "at most 32)");
}

static int
config_set_nfqueue(struct config_parser *p, const char *v, size_t len)
{
	static const char expect[] = "off, a queue number or a range N-M (0..65535)";
	struct config *cf = p->p_cf;
	uint64_t a = 0, b = 0;
	size_t ua, ub = 0;
	enum config_num ra, rb = CONFIG_NUM_OK;
	char esc[CONFIG_ESC_MAX];

	if (config_word_eq(v, len, "off")) {
		cf->nfqueue_on = 0;
		cf->nfqueue_first = cf->nfqueue_last = 0;
		return 0;
	}
	ra = config_digits(v, len, &a, &ua);
	if (ra == CONFIG_NUM_SYNTAX)
		return config_bad(p, v, len, expect);
	if (ua == len) {
		b = a;
	} else {
		if (v[ua] != '-')
			return config_bad(p, v, len, expect);
		rb = config_digits(v + ua + 1, len - ua - 1, &b, &ub);
		if (rb == CONFIG_NUM_SYNTAX || ua + 1 + ub != len)
			return config_bad(p, v, len, expect);
	}
	if (ra == CONFIG_NUM_RANGE || rb == CONFIG_NUM_RANGE || a > 65535 || b > 65535)
		return config_out_of_range(p, v, len, "queue numbers 0..65535");
	if (a > b) {
		config_err(p, "nfqueue: range '%s' is reversed: expected N-M with N <= M",
		    config_esc(esc, v, len));
		return -1;
	}
	cf->nfqueue_on = 1;
	cf->nfqueue_first = (unsigned)a;
	cf->nfqueue_last = (unsigned)b;
	return 0;
}

static int
config_set_nfqueue_fail(struct config_parser *p, const char *v, size_t len)
{
	static const char *const words[] = { "open", "closed", NULL };
	int i = config_choice(p, v, len, words);

	if (i == -1)
		return -1;
	p->p_cf->nfqueue_fail = i == 0 ? CONFIG_NFQ_FAIL_OPEN : CONFIG_NFQ_FAIL_CLOSED;
	return 0;
}

static int
config_set_client_rate(struct config_parser *p, const char *v, size_t len)
{
	static const char expect[] = "off or N/s, N/min or N/h, e.g. 30/min";
	struct config *cf = p->p_cf;
	const char *slash, *unit;
	size_t nlen, ulen, used;
	uint64_t n = 0;
	unsigned window;
	enum config_num r;

	if (config_word_eq(v, len, "off")) {
		cf->client_rate = 0;
		cf->client_rate_per_s = 0;
		return 0;
	}
	slash = memchr(v, '/', len);
	if (slash == NULL)
		return config_bad(p, v, len, expect);
	nlen = (size_t)(slash - v);
	unit = slash + 1;
	ulen = len - nlen - 1;
	if (config_word_eq(unit, ulen, "s"))
		window = 1;
	else if (config_word_eq(unit, ulen, "min"))
		window = 60;
	else if (config_word_eq(unit, ulen, "h"))
		window = 3600;
	else
		return config_bad(p, v, len, expect);
	r = config_digits(v, nlen, &n, &used);
	if (r == CONFIG_NUM_SYNTAX || used != nlen)
		return config_bad(p, v, len, expect);
	if (r == CONFIG_NUM_RANGE || n < 1 || n > 1000000)
		return config_out_of_range(p, v, len, "1..1000000 connections per s, min or h");
	cf->client_rate = (unsigned)n;
	cf->client_rate_per_s = window;
	return 0;
}

/* Linux interface names: 1..15 bytes; kept to what nft and ip print unquoted. */
static int
config_ifname_ok(const char *v, size_t len)
{
	size_t i;

	if (len == 0 || len > 15)
		return 0;
	if (config_word_eq(v, len, ".") || config_word_eq(v, len, ".."))
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];

		if (!config_isalpha(c) && !config_isdigit(c) && c != '.' && c != '_' && c != '-')
			return 0;
	}
	return 1;
}

static int
config_set_capture_interface(struct config_parser *p, const char *v, size_t len)
{
	if (!config_ifname_ok(v, len))
		return config_bad(p, v, len, "any or an interface name (at most 15 letters, "
		    "digits, '.', '_' or '-')");
	memcpy(p->p_cf->capture_interface, v, len);
	p->p_cf->capture_interface[len] = '\0';
	return 0;
}

static int
config_set_capture_buffer(struct config_parser *p, const char *v, size_t len)
{
	return config_size(p, v, len, 64 * CONFIG_KIB, CONFIG_GIB, &p->p_cf->capture_buffer);
}

static int
config_set_capture_max_bytes(struct config_parser *p, const char *v, size_t len)
{
	return config_size(p, v, len, CONFIG_MIB, 65536 * CONFIG_GIB, &p->p_cf->capture_max_bytes);
}

static int
config_set_capture_max_files(struct config_parser *p, const char *v, size_t len)
{
	uint64_t x;

	if (config_uint(p, v, len, 1, 1000000, &x) == -1)
		return -1;
	p->p_cf->capture_max_files = (unsigned)x;
	return 0;
}

static int
config_set_starttls(struct config_parser *p, const char *v, size_t len)
{
	static const char *const words[] = { "strip", "allow", NULL };
	int i = config_choice(p, v, len, words);

	if (i == -1)
		return -1;
	p->p_cf->starttls = i == 0 ? CONFIG_STARTTLS_STRIP : CONFIG_STARTTLS_ALLOW;
	return 0;
}

static int
config_set_xclient(struct config_parser *p, const char *v, size_t len)
{
	static const char *const words[] = { "on", "off", NULL };
	int i = config_choice(p, v, len, words);

	if (i == -1)
		return -1;
	p->p_cf->xclient = i == 0;
	return 0;
}

static int
config_set_count(struct config_parser *p, const char *v, size_t len, uint64_t lo, uint64_t hi,
    unsigned *out)
{
	uint64_t x;

	if (config_uint(p, v, len, lo, hi, &x) == -1)
		return -1;
	*out = (unsigned)x;
	return 0;
}

static int
config_set_max_sessions(struct config_parser *p, const char *v, size_t len)
{
	return config_set_count(p, v, len, 1, 1000000, &p->p_cf->max_sessions);
}

static int
config_set_max_sessions_per_client(struct config_parser *p, const char *v, size_t len)
{
	return config_set_count(p, v, len, 1, 1000000, &p->p_cf->max_sessions_per_client);
}

static int
config_set_max_recipients(struct config_parser *p, const char *v, size_t len)
{
	return config_set_count(p, v, len, 1, 100000, &p->p_cf->max_recipients);
}

/* RFC 5321 4.5.3.1.7: a server must take messages of at least 64K. */
static int
config_set_max_message_size(struct config_parser *p, const char *v, size_t len)
{
	return config_size(p, v, len, 64 * CONFIG_KIB, 4 * CONFIG_GIB, &p->p_cf->max_message_size);
}

/* RFC 5321 4.5.3.1.4: command lines of 512 octets must pass. */
static int
config_set_max_line_length(struct config_parser *p, const char *v, size_t len)
{
	return config_set_count(p, v, len, 512, 65536, &p->p_cf->max_line_length);
}

static int
config_set_bare_lf(struct config_parser *p, const char *v, size_t len)
{
	static const char *const words[] = { "reject", "normalize", NULL };
	int i = config_choice(p, v, len, words);

	if (i == -1)
		return -1;
	p->p_cf->bare_lf = i == 0 ? CONFIG_BARE_LF_REJECT : CONFIG_BARE_LF_NORMALIZE;
	return 0;
}

static int
config_set_timeout_connect(struct config_parser *p, const char *v, size_t len)
{
	return config_seconds(p, v, len, &p->p_cf->timeout_connect);
}

static int
config_set_timeout_idle(struct config_parser *p, const char *v, size_t len)
{
	return config_seconds(p, v, len, &p->p_cf->timeout_idle);
}

static int
config_set_timeout_server(struct config_parser *p, const char *v, size_t len)
{
	return config_seconds(p, v, len, &p->p_cf->timeout_server);
}

static int
config_set_shutdown_timeout(struct config_parser *p, const char *v, size_t len)
{
	return config_seconds(p, v, len, &p->p_cf->shutdown_timeout);
}

static int
config_set_workers(struct config_parser *p, const char *v, size_t len)
{
	uint64_t x = 0;
	size_t used;
	enum config_num r;

	if (config_word_eq(v, len, "auto")) {
		p->p_cf->workers = 0;
		return 0;
	}
	r = config_digits(v, len, &x, &used);
	if (r == CONFIG_NUM_SYNTAX || used != len)
		return config_bad(p, v, len, "auto or a number of threads from 1 to " CONFIG_WORKERS_MAX_STR);
	if (r == CONFIG_NUM_RANGE || x < 1 || x > CONFIG_WORKERS_MAX)
		return config_out_of_range(p, v, len, "auto or 1.." CONFIG_WORKERS_MAX_STR);
	p->p_cf->workers = (unsigned)x;
	return 0;
}

static int
config_set_log_level(struct config_parser *p, const char *v, size_t len)
{
	static const char *const words[] = { "error", "warning", "info", "debug", NULL };
	int i = config_choice(p, v, len, words);

	if (i == -1)
		return -1;
	p->p_cf->log_level = i;
	return 0;
}

/* ---- list keys -------------------------------------------------------------- */

static int
config_reset_listen(struct config *cf)
{
	cf->nlisten = 0;
	return 0;
}

static int
config_item_listen(struct config_parser *p, const char *v, size_t len)
{
	struct config *cf = p->p_cf;
	struct sockaddr_storage ss;
	socklen_t sslen = 0;
	char esc[CONFIG_ESC_MAX];
	unsigned i;
	int r = config_sockaddr(v, len, &ss, &sslen);

	if (r == -2) {
		config_err(p, "listen: port out of range in '%s': expected 1..65535",
		    config_esc(esc, v, len));
		return -1;
	}
	if (r == -1) {
		config_err(p, "listen: bad address '%s': expected " CONFIG_LISTEN_EXPECT,
		    config_esc(esc, v, len));
		return -1;
	}
	for (i = 0; i < cf->nlisten; i++) {
		if (config_sockaddr_eq(&cf->listen[i], &ss)) {
			config_err(p, "listen: '%s' given twice", config_esc(esc, v, len));
			return -1;
		}
	}
	if (cf->nlisten == CONFIG_MAX_LISTEN) {
		config_err(p, "listen: more than %d addresses", CONFIG_MAX_LISTEN);
		return -1;
	}
	cf->listen[cf->nlisten] = ss;
	cf->listen_len[cf->nlisten] = sslen;
	cf->nlisten++;
	return 0;
}

static int
config_reset_interfaces(struct config *cf)
{
	cf->ninterfaces = 0;
	return 0;
}

static int
config_item_interfaces(struct config_parser *p, const char *v, size_t len)
{
	struct config *cf = p->p_cf;
	const unsigned max = sizeof(cf->interfaces) / sizeof(cf->interfaces[0]);
	char esc[CONFIG_ESC_MAX];
	unsigned i;

	if (!config_ifname_ok(v, len)) {
		config_err(p, "interfaces: bad interface name '%s': expected at most 15 letters, "
		    "digits, '.', '_' or '-'", config_esc(esc, v, len));
		return -1;
	}
	for (i = 0; i < cf->ninterfaces; i++)
		if (strlen(cf->interfaces[i]) == len && memcmp(cf->interfaces[i], v, len) == 0)
			return 0;
	if (cf->ninterfaces == max) {
		config_err(p, "interfaces: more than %u names", max);
		return -1;
	}
	memcpy(cf->interfaces[cf->ninterfaces], v, len);
	cf->interfaces[cf->ninterfaces][len] = '\0';
	cf->ninterfaces++;
	return 0;
}

static int
config_item_local_domains(struct config_parser *p, const char *v, size_t len)
{
	char err[RULES_ERR_LEN];

	if (rules_domainset_add(p->p_cf->local_domains, v, len, err) == -1) {
		config_err(p, "local_domains: %s", err);
		return -1;
	}
	return 0;
}

static int
config_reset_trusted(struct config *cf)
{
	struct rules_cidrset *s = rules_cidrset_new();

	if (s == NULL)
		return -1;
	rules_cidrset_free(cf->trusted_networks);
	cf->trusted_networks = s;
	return 0;
}

static int
config_item_trusted(struct config_parser *p, const char *v, size_t len)
{
	struct rules_cidr c;
	char err[RULES_ERR_LEN];

	if (rules_cidr_parse(v, len, &c, err) == -1) {
		config_err(p, "trusted_networks: %s", err);
		return -1;
	}
	if (rules_cidrset_add(p->p_cf->trusted_networks, &c) == -1) {
		config_err(p, "trusted_networks: out of memory");
		return -1;
	}
	return 0;
}

static int
config_reset_commands(struct config *cf)
{
	cf->ncommands = 0;
	return 0;
}

static int
config_item_commands(struct config_parser *p, const char *v, size_t len)
{
	struct config *cf = p->p_cf;
	char verb[CONFIG_VERB_MAX], esc[CONFIG_ESC_MAX];
	unsigned i;

	if (len == 0 || len >= CONFIG_VERB_MAX)
		goto bad;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];

		if (!config_isalpha(c) && !config_isdigit(c) && c != '-')
			goto bad;
		verb[i] = (char)(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
	}
	verb[len] = '\0';
	if (strcmp(verb, "XCLIENT") == 0 || strcmp(verb, "XFORWARD") == 0) {
		config_err(p, "commands: %s is never forwarded from clients; smtpwall speaks it to "
		    "the server itself (see xclient)", verb);
		return -1;
	}
	if (strcmp(verb, "BDAT") == 0) {
		config_err(p, "commands: BDAT is not supported yet: CHUNKING is removed from the "
		    "EHLO reply");
		return -1;
	}
	for (i = 0; i < cf->ncommands; i++)
		if (strcmp(cf->commands[i], verb) == 0)
			return 0;
	if (cf->ncommands == CONFIG_MAX_COMMANDS) {
		config_err(p, "commands: more than %d verbs", CONFIG_MAX_COMMANDS);
		return -1;
	}
	memcpy(cf->commands[cf->ncommands++], verb, len + 1);
	return 0;
bad:
	config_err(p, "commands: bad verb '%s': expected letters, digits or '-', at most %d",
	    config_esc(esc, v, len), CONFIG_VERB_MAX - 1);
	return -1;
}

/* ---- the key table (SPEC.md order) ----------------------------------------------- */

#define CONFIG_SCALAR(name, fn)	{ name, fn, NULL, NULL, 0, 0, NULL }
#define CONFIG_LIST(name, item, reset, empty_ok, none_ok, expect) \
	{ name, NULL, item, reset, empty_ok, none_ok, expect }

static const struct config_key config_keys[] = {
	CONFIG_LIST("listen", config_item_listen, config_reset_listen, 0, 0, CONFIG_LISTEN_EXPECT),
	CONFIG_LIST("interfaces", config_item_interfaces, config_reset_interfaces, 1, 0,
	    "interface names, e.g. eth0, eth1"),
	CONFIG_SCALAR("mode", config_set_mode),
	CONFIG_SCALAR("upstream", config_set_upstream),
	CONFIG_LIST("local_domains", config_item_local_domains, NULL, 1, 1,
	    "domains, e.g. example.com, .example.com"),
	CONFIG_LIST("trusted_networks", config_item_trusted, config_reset_trusted, 1, 1,
	    "CIDR blocks, e.g. 192.0.2.0/24, 2001:db8::/32, or none"),
	CONFIG_SCALAR("auth_relay", config_set_auth_relay),
	CONFIG_SCALAR("rules_file", config_set_rules_file),
	CONFIG_SCALAR("control_socket", config_set_control_socket),
	CONFIG_SCALAR("control_group", config_set_control_group),
	CONFIG_SCALAR("nfqueue", config_set_nfqueue),
	CONFIG_SCALAR("nfqueue_fail", config_set_nfqueue_fail),
	CONFIG_SCALAR("client_rate", config_set_client_rate),
	CONFIG_SCALAR("capture_dir", config_set_capture_dir),
	CONFIG_SCALAR("capture_interface", config_set_capture_interface),
	CONFIG_SCALAR("capture_buffer", config_set_capture_buffer),
	CONFIG_SCALAR("capture_max_files", config_set_capture_max_files),
	CONFIG_SCALAR("capture_max_bytes", config_set_capture_max_bytes),
	CONFIG_SCALAR("capture_redact", config_set_capture_redact),
	CONFIG_SCALAR("starttls", config_set_starttls),
	CONFIG_SCALAR("xclient", config_set_xclient),
	CONFIG_SCALAR("max_sessions", config_set_max_sessions),
	CONFIG_SCALAR("max_sessions_per_client", config_set_max_sessions_per_client),
	CONFIG_SCALAR("max_recipients", config_set_max_recipients),
	CONFIG_SCALAR("max_message_size", config_set_max_message_size),
	CONFIG_SCALAR("max_line_length", config_set_max_line_length),
	CONFIG_LIST("commands", config_item_commands, config_reset_commands, 0, 0,
	    "SMTP verbs, e.g. " CONFIG_DEFAULT_COMMANDS),
	CONFIG_SCALAR("bare_lf", config_set_bare_lf),
	CONFIG_SCALAR("timeout_connect", config_set_timeout_connect),
	CONFIG_SCALAR("timeout_idle", config_set_timeout_idle),
	CONFIG_SCALAR("timeout_server", config_set_timeout_server),
	CONFIG_SCALAR("workers", config_set_workers),
	CONFIG_SCALAR("shutdown_timeout", config_set_shutdown_timeout),
	CONFIG_SCALAR("log_level", config_set_log_level),
};
#define CONFIG_NKEYS	(sizeof(config_keys) / sizeof(config_keys[0]))

static const struct config_key *
config_key_find(const char *k, size_t len)
{
	size_t i;

	for (i = 0; i < CONFIG_NKEYS; i++)
		if (strlen(config_keys[i].k_name) == len && memcmp(config_keys[i].k_name, k, len) == 0)
			return &config_keys[i];
	return NULL;
}

/* ---- lines ------------------------------------------------------------------ */

static int
config_issep(int c)
{
	return c == ',' || config_isspace(c);
}

/* Every element of a comma- and/or space-separated list. */
static void
config_list(struct config_parser *p, const char *v, size_t len)
{
	const struct config_key *k = p->p_key;
	size_t i = 0, start;

	if (len == 0) {
		if (!k->k_empty_ok)
			config_bad(p, v, len, k->k_expect);
		return;
	}
	if (k->k_none_ok && config_word_eq(v, len, "none"))
		return;
	while (i < len) {
		while (i < len && config_issep((unsigned char)v[i]))
			i++;
		if (i == len)
			break;
		start = i;
		while (i < len && !config_issep((unsigned char)v[i]))
			i++;
		(void)k->k_item(p, v + start, i - start);
	}
}

static void
config_keyval(struct config_parser *p, const struct config_key *k, const char *v, size_t len)
{
	unsigned *first = &p->p_first[k - config_keys];

	p->p_key = k;
	if (k->k_set != NULL) {
		if (*first != 0) {
			config_err(p, "'%s' given twice (first on line %u)", k->k_name, *first);
			return;
		}
		*first = p->p_line;
		if (k->k_set(p, v, len) == -1)
			p->p_bad[k - config_keys] = 1;
		return;
	}
	if (*first == 0) {
		*first = p->p_line;
		/* never append to a default that should have been dropped */
		if (k->k_reset != NULL && k->k_reset(p->p_cf) == -1) {
			config_err(p, "%s: out of memory", k->k_name);
			return;
		}
	}
	config_list(p, v, len);
}

static void
config_line(struct config_parser *p, const char *s, size_t len)
{
	const char *hash = memchr(s, '#', len), *eq, *k, *v;
	char esc[CONFIG_ESC_MAX];
	const struct config_key *key;
	size_t klen, vlen, i;

	if (len > 0 && s[len - 1] == '\r')
		len--;
	if (hash != NULL && (size_t)(hash - s) < len)
		len = (size_t)(hash - s);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			config_err(p, "control character \\x%02x in the line", c);
			return;
		}
	}
	while (len > 0 && config_isspace((unsigned char)*s)) {
		s++;
		len--;
	}
	while (len > 0 && config_isspace((unsigned char)s[len - 1]))
		len--;
	if (len == 0)
		return;

	eq = memchr(s, '=', len);
	if (eq == NULL) {
		for (klen = 0; klen < len && !config_isspace((unsigned char)s[klen]); klen++)
			;
		config_err(p, "missing '=' after key '%s'", config_esc(esc, s, klen));
		return;
	}
	k = s;
	klen = (size_t)(eq - s);
	while (klen > 0 && config_isspace((unsigned char)k[klen - 1]))
		klen--;
	if (klen == 0) {
		config_err(p, "missing key before '='");
		return;
	}
	key = config_key_find(k, klen);
	if (key == NULL) {
		config_err(p, "unknown key '%s'", config_esc(esc, k, klen));
		return;
	}
	v = eq + 1;
	vlen = len - (size_t)(v - s);
	while (vlen > 0 && config_isspace((unsigned char)*v)) {
		v++;
		vlen--;
	}
	config_keyval(p, key, v, vlen);
}

/* Settings that are each valid alone but not together. */
static void
config_check(struct config_parser *p)
{
	const struct config *cf = p->p_cf;
	unsigned rate_line = p->p_first[config_key_find("client_rate", 11) - config_keys];
	unsigned char nfq_bad = p->p_bad[config_key_find("nfqueue", 7) - config_keys];

	/* a bad nfqueue line has had its own message */
	if (cf->client_rate != 0 && !cf->nfqueue_on && rate_line != 0 && !nfq_bad) {
		p->p_line = rate_line;
		config_err(p, "client_rate needs nfqueue: connections are counted and dropped "
		    "at their first packet in the queue");
	}
}

int
config_parse(struct config *cf, const char *path, const char *text, size_t len, FILE *errf)
{
	unsigned first[CONFIG_NKEYS];
	unsigned char bad[CONFIG_NKEYS];
	struct config_parser p;
	const char *s = text, *end = text + len, *nl;

	memset(first, 0, sizeof(first));
	memset(bad, 0, sizeof(bad));
	memset(&p, 0, sizeof(p));
	p.p_cf = cf;
	p.p_path = path;
	p.p_errf = errf;
	p.p_first = first;
	p.p_bad = bad;
	if (cf->path != path)
		snprintf(cf->path, sizeof(cf->path), "%s", path);

	if (len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
		s += 3;
	while (s < end) {
		nl = memchr(s, '\n', (size_t)(end - s));
		if (nl == NULL)
			nl = end;
		p.p_line++;
		config_line(&p, s, (size_t)(nl - s));
		s = nl + 1;
	}
	config_check(&p);
	return p.p_nerr;
}

/* ---- defaults, loading ----------------------------------------------------- */

static int
config_default_trusted(struct rules_cidrset *set)
{
	static const char *const nets[] = { "127.0.0.0/8", "::1/128" };
	char err[RULES_ERR_LEN];
	struct rules_cidr c;
	size_t i;

	for (i = 0; i < sizeof(nets) / sizeof(nets[0]); i++) {
		if (rules_cidr_parse(nets[i], strlen(nets[i]), &c, err) == -1 ||
		    rules_cidrset_add(set, &c) == -1)
			return -1;
	}
	return 0;
}

static void
config_default_commands(struct config *cf)
{
	const char *s = CONFIG_DEFAULT_COMMANDS;

	cf->ncommands = 0;
	while (*s != '\0') {
		size_t n = strcspn(s, " ");

		memcpy(cf->commands[cf->ncommands], s, n);
		cf->commands[cf->ncommands++][n] = '\0';
		s += n;
		s += strspn(s, " ");
	}
}

int
config_init(struct config *cf)
{
	struct sockaddr_in *sin;

	memset(cf, 0, sizeof(*cf));
	cf->local_domains = rules_domainset_new();
	cf->trusted_networks = rules_cidrset_new();
	if (cf->local_domains == NULL || cf->trusted_networks == NULL ||
	    config_default_trusted(cf->trusted_networks) == -1) {
		config_free(cf);
		errno = ENOMEM;
		return -1;
	}
	snprintf(cf->path, sizeof(cf->path), "%s", CONFIG_DEFAULT_PATH);

	sin = (struct sockaddr_in *)(void *)&cf->listen[0];
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_ANY);
	sin->sin_port = htons(10025);
	cf->listen_len[0] = sizeof(*sin);
	cf->nlisten = 1;

	cf->mode = CONFIG_MODE_REDIRECT;
	cf->upstream_fixed = 0;
	cf->auth_relay = 1;
	snprintf(cf->rules_file, sizeof(cf->rules_file), "/var/lib/smtpwall/rules");
	snprintf(cf->control_socket, sizeof(cf->control_socket), "/run/smtpwall/control.sock");
	cf->nfqueue_on = 0;
	cf->nfqueue_fail = CONFIG_NFQ_FAIL_OPEN;
	cf->client_rate = 0;
	snprintf(cf->capture_dir, sizeof(cf->capture_dir), "/var/lib/smtpwall/captures");
	snprintf(cf->capture_interface, sizeof(cf->capture_interface), "any");
	cf->capture_buffer = 4 * CONFIG_MIB;
	cf->capture_max_files = 1000;
	cf->capture_max_bytes = CONFIG_GIB;
	cf->capture_redact = 1;
	cf->starttls = CONFIG_STARTTLS_STRIP;
	cf->xclient = 0;
	cf->max_sessions = 10000;
	cf->max_sessions_per_client = 50;
	cf->max_recipients = 100;
	cf->max_message_size = 52428800;
	cf->max_line_length = 2048;
	config_default_commands(cf);
	cf->bare_lf = CONFIG_BARE_LF_REJECT;
	cf->timeout_connect = 30;
	cf->timeout_idle = 300;
	cf->timeout_server = 600;
	cf->workers = 0;
	cf->shutdown_timeout = 30;
	cf->log_level = 2;	/* LOG_LVL_INFO */
	return 0;
}

void
config_free(struct config *cf)
{
	rules_domainset_free(cf->local_domains);
	cf->local_domains = NULL;
	rules_cidrset_free(cf->trusted_networks);
	cf->trusted_networks = NULL;
}

/* The whole file, at most CONFIG_FILE_MAX bytes: 0, or -1 with errno (EFBIG: too large). */
static int
config_read_file(const char *path, char **text, size_t *len)
{
	size_t cap = 8192, n = 0;
	char *buf = NULL, *nb;
	ssize_t r;
	int fd, saved;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return -1;
	for (;;) {
		if (buf == NULL || n == cap) {
			if (buf != NULL)
				cap *= 2;
			nb = realloc(buf, cap);
			if (nb == NULL)
				goto fail;
			buf = nb;
		}
		r = read(fd, buf + n, cap - n);
		if (r == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > CONFIG_FILE_MAX) {
			errno = EFBIG;
			goto fail;
		}
	}
	close(fd);
	*text = buf;
	*len = n;
	return 0;
fail:
	saved = errno;
	free(buf);
	close(fd);
	errno = saved;
	return -1;
}

int
config_load(struct config *cf, const char *path, FILE *errf)
{
	char *text = NULL;
	size_t len = 0;
	int n;

	if (config_init(cf) == -1) {
		if (errf != NULL)
			fprintf(errf, "%s: %s\n", path, strerror(errno));
		return 1;
	}
	snprintf(cf->path, sizeof(cf->path), "%s", path);
	if (config_read_file(path, &text, &len) == -1) {
		if (errf != NULL) {
			if (errno == EFBIG)
				fprintf(errf, "%s: larger than 1 MiB: not a configuration file?\n",
				    path);
			else
				fprintf(errf, "%s: %s\n", path, strerror(errno));
		}
		return 1;
	}
	n = config_parse(cf, path, text, len, errf);
	free(text);
	return n;
}

int
config_command_allowed(const struct config *cf, const char *verb, size_t len)
{
	unsigned i;

	if (len == 0 || len >= CONFIG_VERB_MAX)
		return 0;
	for (i = 0; i < cf->ncommands; i++)
		if (strlen(cf->commands[i]) == len && strncasecmp(cf->commands[i], verb, len) == 0)
			return 1;
	return 0;
}
