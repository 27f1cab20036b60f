/*
 * parse.c: the rules-file language -> an immutable, refcounted ruleset, and
 * back (rules_rule_format prints the line rules_parse reads, so that
 * parse(format(rule)) gives the same rule). Also owns the ruleset lifetime.
 *
 * Language (SPEC.md "Live rules"): one rule a line; words separated by
 * spaces and tabs; '#' outside a quoted comment="..." value starts a comment,
 * and must then begin a word (a '#' glued to a word is an error, not a silent
 * cut of the word); a CR before the LF is ignored.
 *
 *   block sender PATTERN [until=YYYY-MM-DDTHH:MM:SSZ] [comment="text"]
 *   block client CIDR [until=...] [comment="..."]
 *   allow relay CIDR to DOMAIN-PATTERN [until=...] [comment="..."]
 *
 * Every bad line is reported (first error of that line) with its 1-based
 * number and parsing goes on, so one pass shows the administrator every
 * mistake; a file with any error gives no ruleset at all. A line that
 * names the same rule as an earlier one is an error too: which of the two
 * would count, and which would `unblock` remove?
 *
 * The text around the rules is kept verbatim for rules_write: the comment
 * and blank lines before each rule go with that rule, its inline "# ..."
 * with it too, and what follows the last rule is the ruleset's tail. The
 * lines before the first rule down to the last blank one among them are
 * the file's header, which stays first whatever rule goes (a file with no
 * rule is all header): the comments right above a rule are about it, a
 * block set apart by a blank line is about the file.
 *
 * rules_rule_norm holds a rule built elsewhere (rules_add) to the checks a
 * parsed line passes, so that whatever rules_write writes parses back.
 *
 * Never logs, never does I/O.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rules_int.h"

#define RULES_MAX_WORDS		12	/* the longest rule has 7 */
#define RULES_UNKNOWN_RULE	"expected block sender|block client|allow relay"

/* ---- one line ------------------------------------------------------------ */

enum rules_word_kind {
	RULES_W_WORD = 1,
	RULES_W_COMMENT,	/* comment="..." with its quotes, escapes still in */
};

struct rules_word {
	enum rules_word_kind	 kind;
	const char		*p;
	size_t			 len;
};

struct rules_line {
	struct rules_word	 w[RULES_MAX_WORDS];
	size_t			 n;
	size_t			 cmt;		/* where the inline comment starts, blanks before '#' included */
	char			 err[RULES_ERR_LEN];
};

/* A rule being parsed: d_r's strings point into d_pat and d_cmt. */
struct rules_draft {
	struct rules_rule	 d_r;
	char			 d_pat[RULES_PATTERN_MAX];
	char			 d_cmt[RULES_COMMENT_MAX];
};

static int
rules_isblank(int c)
{
	return c == ' ' || c == '\t';
}

static int
rules_word_is(const struct rules_word *w, const char *s)
{
	size_t n = strlen(s);

	return w->kind == RULES_W_WORD && w->len == n && memcmp(w->p, s, n) == 0;
}

static int
rules_has_prefix(const char *p, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && memcmp(p, prefix, n) == 0;
}

/* The end of a comment="..." word starting at i, past its closing quote; 0 if unterminated. */
static size_t
rules_quoted_end(const char *s, size_t len, size_t i)
{
	for (i += sizeof "comment=\"" - 1; i < len; i++) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == '"')
			return i + 1;
	}
	return 0;
}

static int
rules_split(const char *s, size_t len, struct rules_line *ln)
{
	size_t i = 0, j, b;

	ln->n = 0;
	ln->cmt = len;
	for (;;) {
		for (b = i; i < len && rules_isblank((unsigned char)s[i]); i++)
			;
		if (i == len)
			return 0;
		if (s[i] == '#') {
			ln->cmt = b;
			return 0;
		}
		if (ln->n == RULES_MAX_WORDS) {
			snprintf(ln->err, RULES_ERR_LEN, "too many words for a rule");
			return -1;
		}
		if (rules_has_prefix(s + i, len - i, "comment=\"")) {
			j = rules_quoted_end(s, len, i);
			if (j == 0) {
				snprintf(ln->err, RULES_ERR_LEN, "comment=: missing closing '\"'");
				return -1;
			}
			if (j < len && !rules_isblank((unsigned char)s[j])) {
				snprintf(ln->err, RULES_ERR_LEN, s[j] == '#' ?
				    "'#' right after comment=\"...\": put a space before a comment" :
				    "comment=: garbage after the closing '\"'");
				return -1;
			}
			ln->w[ln->n++] = (struct rules_word){ RULES_W_COMMENT, s + i, j - i };
		} else {
			for (j = i; j < len && !rules_isblank((unsigned char)s[j]); j++) {
				if (s[j] == '#') {
					char esc[96];

					rules_esc(esc, sizeof esc, s + i, j - i + 1);
					snprintf(ln->err, RULES_ERR_LEN, "'#' inside the word '%s': a comment "
					    "needs a space before it, and '#' is not allowed in a rule", esc);
					return -1;
				}
			}
			ln->w[ln->n++] = (struct rules_word){ RULES_W_WORD, s + i, j - i };
		}
		i = j;
	}
}

/* Check a sender glob (a word of a line, or a string from rules_add) and lowercase it into out. */
static int
rules_sender_pattern(const char *p, size_t len, char out[RULES_PATTERN_MAX], char err[RULES_ERR_LEN])
{
	char esc[96];
	size_t i;

	rules_esc(esc, sizeof esc, p, len);
	if (len == 0) {
		snprintf(err, RULES_ERR_LEN, "block sender: expected a sender pattern");
		return -1;
	}
	if (len >= RULES_PATTERN_MAX) {
		snprintf(err, RULES_ERR_LEN, "block sender: pattern longer than %d bytes",
		    RULES_PATTERN_MAX - 1);
		return -1;
	}
	/* lowercased, it would read back as a comment= option: no round trip */
	if (len >= 9 && strncasecmp(p, "comment=\"", 9) == 0) {
		snprintf(err, RULES_ERR_LEN, "block sender: a pattern may not begin with comment=\"");
		return -1;
	}
	if (!(len == 2 && memcmp(p, "<>", 2) == 0)) {
		for (i = 0; i < len; i++) {
			unsigned char c = (unsigned char)p[i];

			if (c < 0x20 || c == 0x7f) {
				snprintf(err, RULES_ERR_LEN, "block sender: control character in "
				    "pattern '%s'", esc);
				return -1;
			}
			if (c == '<' || c == '>') {
				snprintf(err, RULES_ERR_LEN, "block sender: '%s': write the address "
				    "without '<' '>' (the pattern <> alone is the null sender)", esc);
				return -1;
			}
			/* a line never holds these in a word: only a built rule can */
			if (c == ' ' || c == '#') {
				snprintf(err, RULES_ERR_LEN, "block sender: '%s': no space or '#' "
				    "in a pattern", esc);
				return -1;
			}
		}
	}
	for (i = 0; i < len; i++)
		out[i] = (char)rules_lc((unsigned char)p[i]);
	out[len] = '\0';
	return 0;
}

static int
rules_cidr_word(const char *what, const struct rules_word *w, struct rules_cidr *c,
    char err[RULES_ERR_LEN])
{
	char e[RULES_ERR_LEN];

	if (w == NULL || w->kind != RULES_W_WORD) {
		snprintf(err, RULES_ERR_LEN, "%s: expected a CIDR", what);
		return -1;
	}
	if (rules_cidr_parse(w->p, w->len, c, e) == -1) {
		snprintf(err, RULES_ERR_LEN, "%s: %.*s", what, (int)(RULES_ERR_LEN - 32), e);
		return -1;
	}
	return 0;
}

static int
rules_d2(const char *p, int *out)
{
	if (p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9')
		return -1;
	*out = (p[0] - '0') * 10 + (p[1] - '0');
	return 0;
}

static int
rules_mdays(int year, int mon)
{
	static const int d[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (mon == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
		return 29;
	return d[mon - 1];
}

/* Exactly YYYY-MM-DDTHH:MM:SSZ, UTC, after the epoch. */
static int
rules_time_parse(const char *p, size_t len, time_t *out)
{
	struct tm tm;
	int cc, yy, mon, day, h, m, s;
	time_t t;

	if (len != 20 || p[4] != '-' || p[7] != '-' || p[10] != 'T' || p[13] != ':' ||
	    p[16] != ':' || p[19] != 'Z')
		return -1;
	if (rules_d2(p, &cc) == -1 || rules_d2(p + 2, &yy) == -1 || rules_d2(p + 5, &mon) == -1 ||
	    rules_d2(p + 8, &day) == -1 || rules_d2(p + 11, &h) == -1 ||
	    rules_d2(p + 14, &m) == -1 || rules_d2(p + 17, &s) == -1)
		return -1;
	if (mon < 1 || mon > 12 || day < 1 || day > rules_mdays(cc * 100 + yy, mon) ||
	    h > 23 || m > 59 || s > 59)
		return -1;
	memset(&tm, 0, sizeof tm);
	tm.tm_year = cc * 100 + yy - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = h;
	tm.tm_min = m;
	tm.tm_sec = s;
	t = timegm(&tm);
	/* 0 means "never expires", so the epoch itself and before are refused */
	if (t <= 0)
		return -1;
	*out = t;
	return 0;
}

static int
rules_comment_parse(const struct rules_word *w, char out[RULES_COMMENT_MAX], char err[RULES_ERR_LEN])
{
	const char *p = w->p + sizeof "comment=\"" - 1;
	const char *end = w->p + w->len - 1;	/* the closing quote */
	size_t o = 0;

	for (; p < end; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '\\') {
			c = (unsigned char)*++p;
			if (c != '"' && c != '\\') {
				char esc[8];

				rules_esc(esc, sizeof esc, p, 1);
				snprintf(err, RULES_ERR_LEN, "comment=: unknown escape '\\%s' "
				    "(only \\\" and \\\\)", esc);
				return -1;
			}
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(err, RULES_ERR_LEN, "comment=: control character in the text");
			return -1;
		}
		if (o == RULES_COMMENT_MAX - 1) {
			snprintf(err, RULES_ERR_LEN, "comment=: text longer than %d bytes",
			    RULES_COMMENT_MAX - 1);
			return -1;
		}
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

static int
rules_options(const struct rules_line *ln, size_t i, struct rules_draft *d, char err[RULES_ERR_LEN])
{
	int have_until = 0, have_comment = 0;
	char esc[96];

	for (; i < ln->n; i++) {
		const struct rules_word *w = &ln->w[i];

		rules_esc(esc, sizeof esc, w->p, w->len);
		if (w->kind == RULES_W_COMMENT) {
			if (have_comment++) {
				snprintf(err, RULES_ERR_LEN, "duplicate comment=");
				return -1;
			}
			if (rules_comment_parse(w, d->d_cmt, err) == -1)
				return -1;
		} else if (rules_has_prefix(w->p, w->len, "until=")) {
			if (have_until++) {
				snprintf(err, RULES_ERR_LEN, "duplicate until=");
				return -1;
			}
			if (rules_time_parse(w->p + 6, w->len - 6, &d->d_r.until) == -1) {
				rules_esc(esc, sizeof esc, w->p + 6, w->len - 6);
				snprintf(err, RULES_ERR_LEN, "bad until= time '%s': expected "
				    "YYYY-MM-DDTHH:MM:SSZ", esc);
				return -1;
			}
		} else if (rules_has_prefix(w->p, w->len, "comment=")) {
			snprintf(err, RULES_ERR_LEN, "comment= takes a double-quoted text: "
			    "comment=\"...\"");
			return -1;
		} else {
			snprintf(err, RULES_ERR_LEN, "unexpected '%s' after the rule; expected "
			    "until= or comment=", esc);
			return -1;
		}
	}
	return 0;
}

static void
rules_draft_init(struct rules_draft *d)
{
	memset(&d->d_r, 0, sizeof d->d_r);
	d->d_pat[0] = '\0';
	d->d_cmt[0] = '\0';
	d->d_r.pattern = d->d_pat;
	d->d_r.comment = d->d_cmt;
	d->d_r.line_comment = "";
}

/* A line split into words (at least one) -> the rule in d. 0, or -1 with err set. */
static int
rules_line_parse(const struct rules_line *ln, struct rules_draft *d, char err[RULES_ERR_LEN])
{
	struct rules_rule *r = &d->d_r;
	const struct rules_word *w = ln->w;
	char esc[96];
	size_t i;

#define RULES_W(k)	((k) < ln->n ? &w[k] : NULL)
	if (rules_word_is(&w[0], "block") && RULES_W(1) != NULL && rules_word_is(&w[1], "sender")) {
		r->kind = RULES_BLOCK_SENDER;
		if (RULES_W(2) == NULL || w[2].kind != RULES_W_WORD) {
			snprintf(err, RULES_ERR_LEN, "block sender: expected a sender pattern");
			return -1;
		}
		if (rules_sender_pattern(w[2].p, w[2].len, d->d_pat, err) == -1)
			return -1;
		i = 3;
	} else if (rules_word_is(&w[0], "block") && RULES_W(1) != NULL &&
	    rules_word_is(&w[1], "client")) {
		r->kind = RULES_BLOCK_CLIENT;
		if (rules_cidr_word("block client", RULES_W(2), &r->cidr, err) == -1)
			return -1;
		i = 3;
	} else if (rules_word_is(&w[0], "allow") && RULES_W(1) != NULL &&
	    rules_word_is(&w[1], "relay")) {
		char e[RULES_ERR_LEN];

		r->kind = RULES_ALLOW_RELAY;
		if (rules_cidr_word("allow relay", RULES_W(2), &r->cidr, err) == -1)
			return -1;
		if (RULES_W(3) == NULL || !rules_word_is(&w[3], "to")) {
			snprintf(err, RULES_ERR_LEN, "allow relay: expected 'to' after the CIDR");
			return -1;
		}
		if (RULES_W(4) == NULL || w[4].kind != RULES_W_WORD) {
			snprintf(err, RULES_ERR_LEN, "allow relay: expected a domain pattern after 'to'");
			return -1;
		}
		if (w[4].len >= RULES_PATTERN_MAX) {
			snprintf(err, RULES_ERR_LEN, "allow relay: domain pattern too long");
			return -1;
		}
		if (rules_domain_pattern_norm(w[4].p, w[4].len, d->d_pat, e) == -1) {
			snprintf(err, RULES_ERR_LEN, "allow relay: %.*s", (int)(RULES_ERR_LEN - 32), e);
			return -1;
		}
		i = 5;
	} else {
		size_t len = w[0].len;

		/* name the rule as far as it was written: 'blok', 'block foo' */
		if ((rules_word_is(&w[0], "block") || rules_word_is(&w[0], "allow")) &&
		    RULES_W(1) != NULL)
			len = (size_t)(w[1].p + w[1].len - w[0].p);
		rules_esc(esc, sizeof esc, w[0].p, len);
		snprintf(err, RULES_ERR_LEN, "unknown rule '%s'; " RULES_UNKNOWN_RULE, esc);
		return -1;
	}
#undef RULES_W
	return rules_options(ln, i, d, err);
}

/* ---- one rule, for the control socket ------------------------------------------ */

int
rules_rule_parse(const char *line, size_t len, struct rules_rule *out, char err[RULES_ERR_LEN])
{
	struct rules_draft d;
	struct rules_line ln;
	size_t plen, clen, lclen;
	char *p;

	memset(out, 0, sizeof *out);
	if (len > 0 && (memchr(line, '\n', len) != NULL || memchr(line, '\r', len) != NULL ||
	    memchr(line, '\0', len) != NULL)) {
		snprintf(err, RULES_ERR_LEN, "a rule is one line, without CR, LF or NUL");
		return -1;
	}
	if (rules_split(line, len, &ln) == -1) {
		snprintf(err, RULES_ERR_LEN, "%s", ln.err);
		return -1;
	}
	if (ln.n == 0) {
		snprintf(err, RULES_ERR_LEN, "expected a rule: " RULES_UNKNOWN_RULE);
		return -1;
	}
	rules_draft_init(&d);
	if (rules_line_parse(&ln, &d, err) == -1)
		return -1;
	/* one allocation for the three strings; rules_rule_clear frees it */
	plen = strlen(d.d_pat);
	clen = strlen(d.d_cmt);
	lclen = len - ln.cmt;
	if ((p = malloc(plen + clen + lclen + 3)) == NULL) {
		snprintf(err, RULES_ERR_LEN, "out of memory");
		return -1;
	}
	*out = d.d_r;
	memcpy(p, d.d_pat, plen + 1);
	out->pattern = p;
	p += plen + 1;
	memcpy(p, d.d_cmt, clen + 1);
	out->comment = p;
	p += clen + 1;
	memcpy(p, line + ln.cmt, lclen);
	p[lclen] = '\0';
	out->line_comment = p;
	return 0;
}

void
rules_rule_clear(struct rules_rule *r)
{
	if (r == NULL)
		return;
	free((void *)(uintptr_t)r->pattern);
	memset(r, 0, sizeof *r);
}

static int
rules_streq_ci(const char *a, const char *b)
{
	if (a == NULL)
		a = "";
	if (b == NULL)
		b = "";
	for (; *a != '\0' && rules_lc((unsigned char)*a) == rules_lc((unsigned char)*b); a++, b++)
		;
	return rules_lc((unsigned char)*a) == rules_lc((unsigned char)*b);
}

static int
rules_cidr_same(const struct rules_cidr *a, const struct rules_cidr *b)
{
	return a->family == b->family && a->prefix == b->prefix &&
	    memcmp(a->addr, b->addr, sizeof a->addr) == 0;
}

int
rules_rule_same(const struct rules_rule *a, const struct rules_rule *b)
{
	if (a->kind != b->kind)
		return 0;
	switch (a->kind) {
	case RULES_BLOCK_SENDER:
		return rules_streq_ci(a->pattern, b->pattern);
	case RULES_BLOCK_CLIENT:
		return rules_cidr_same(&a->cidr, &b->cidr);
	case RULES_ALLOW_RELAY:
		return rules_cidr_same(&a->cidr, &b->cidr) && rules_streq_ci(a->pattern, b->pattern);
	}
	return 0;
}

/* A built rule's CIDR must be what rules_cidr_parse would give: host bits zero. */
static int
rules_cidr_check(const struct rules_cidr *c, char err[RULES_ERR_LEN])
{
	struct rules_cidr m;
	unsigned max = c->family == AF_INET ? 32 : 128, i;

	if ((c->family != AF_INET && c->family != AF_INET6) || c->prefix > max) {
		snprintf(err, RULES_ERR_LEN, "invalid CIDR");
		return -1;
	}
	memset(&m, 0, sizeof m);
	m.family = c->family;
	m.prefix = c->prefix;
	for (i = 0; i < c->prefix; i++)
		m.addr[i / 8] |= (uint8_t)(c->addr[i / 8] & (0x80 >> (i % 8)));
	if (memcmp(&m, c, sizeof m) != 0) {
		snprintf(err, RULES_ERR_LEN, "CIDR with host bits set");
		return -1;
	}
	return 0;
}

/* A built rule's comment= text: what rules_comment_parse can give. */
static int
rules_comment_check(const char *c, char err[RULES_ERR_LEN])
{
	size_t i;

	for (i = 0; c[i] != '\0'; i++) {
		if ((unsigned char)c[i] < 0x20 || c[i] == 0x7f) {
			snprintf(err, RULES_ERR_LEN, "comment=: control character in the text");
			return -1;
		}
	}
	if (i >= RULES_COMMENT_MAX) {
		snprintf(err, RULES_ERR_LEN, "comment=: text longer than %d bytes", RULES_COMMENT_MAX - 1);
		return -1;
	}
	return 0;
}

/* Blanks, '#', then anything but a line end: what follows a rule on its line. */
static int
rules_line_comment_check(const char *lc, char err[RULES_ERR_LEN])
{
	size_t i = 0;

	if (lc[0] == '\0')
		return 0;
	while (rules_isblank((unsigned char)lc[i]))
		i++;
	if (i == 0 || lc[i] != '#' || strpbrk(lc, "\r\n") != NULL) {
		snprintf(err, RULES_ERR_LEN, "an inline comment is blanks, '#' and text, on one line");
		return -1;
	}
	return 0;
}

int
rules_rule_norm(const struct rules_rule *r, struct rules_rule *out, char pat[RULES_PATTERN_MAX],
    char err[RULES_ERR_LEN])
{
	const char *p = r->pattern != NULL ? r->pattern : "";
	char e[RULES_ERR_LEN];

	*out = *r;
	out->pattern = pat;
	out->comment = r->comment != NULL ? r->comment : "";
	out->line_comment = r->line_comment != NULL ? r->line_comment : "";
	pat[0] = '\0';
	switch (r->kind) {
	case RULES_BLOCK_SENDER:
		memset(&out->cidr, 0, sizeof out->cidr);
		if (rules_sender_pattern(p, strlen(p), pat, err) == -1)
			return -1;
		break;
	case RULES_BLOCK_CLIENT:
		if (rules_cidr_check(&r->cidr, err) == -1)
			return -1;
		break;
	case RULES_ALLOW_RELAY:
		if (rules_cidr_check(&r->cidr, err) == -1)
			return -1;
		if (strlen(p) >= RULES_PATTERN_MAX) {
			snprintf(err, RULES_ERR_LEN, "allow relay: domain pattern too long");
			return -1;
		}
		if (rules_domain_pattern_norm(p, strlen(p), pat, e) == -1) {
			snprintf(err, RULES_ERR_LEN, "allow relay: %.*s", (int)(RULES_ERR_LEN - 32), e);
			return -1;
		}
		break;
	default:
		snprintf(err, RULES_ERR_LEN, "unknown rule kind");
		return -1;
	}
	/* what rules_time_parse takes: after the epoch, up to 9999-12-31T23:59:59Z */
	if (r->until < 0 || r->until > (time_t)253402300799LL) {
		snprintf(err, RULES_ERR_LEN, "until= out of range");
		return -1;
	}
	if (rules_comment_check(out->comment, err) == -1 ||
	    rules_line_comment_check(out->line_comment, err) == -1)
		return -1;
	return 0;
}

/* ---- the whole text ------------------------------------------------------ */

/* Where the text before the first rule stops being the file's header: past its last blank line. */
static size_t
rules_header_end(const char *s, size_t len)
{
	size_t i = 0, end = 0, j;

	while (i < len) {
		const char *nl = memchr(s + i, '\n', len - i);
		size_t e = nl != NULL ? (size_t)(nl - s) + 1 : len;

		for (j = i; j < e && (rules_isblank((unsigned char)s[j]) || s[j] == '\r' ||
		    s[j] == '\n'); j++)
			;
		if (j == e)
			end = e;
		i = e;
	}
	return end;
}

static void
rules_report(rules_err_fn *err, void *arg, unsigned line, const char *msg)
{
	if (err != NULL)
		err(arg, line, msg);
}

struct ruleset *
rules_parse(const char *text, size_t len, rules_err_fn *err, void *arg)
{
	struct rules_draft d;
	struct rules_line ln;
	struct ruleset *rs;
	size_t pos = 0, pre = 0;	/* pre: where the text before the next rule starts */
	unsigned line = 0, nerr = 0;

	if ((rs = rules_set_new()) == NULL)
		goto nomem;
	while (pos < len) {
		const char *s = text + pos, *nl = memchr(s, '\n', len - pos), *nul;
		size_t llen = nl != NULL ? (size_t)(nl - s) : len - pos, start = pos;
		const struct rules_node *dup;
		struct rules_node *n;

		pos += llen + (nl != NULL);
		line++;
		if (llen > 0 && s[llen - 1] == '\r')
			llen--;
		if (rules_split(s, llen, &ln) == -1) {
			rules_report(err, arg, line, ln.err);
			nerr++;
			continue;
		}
		if (ln.n == 0)
			continue;
		rules_draft_init(&d);
		d.d_r.line = line;
		if (rules_line_parse(&ln, &d, ln.err) == -1) {
			rules_report(err, arg, line, ln.err);
			nerr++;
			continue;
		}
		/* rules after an error still go in, to find the duplicates among them */
		if ((dup = rules_set_find(rs, &d.d_r)) != NULL) {
			snprintf(ln.err, RULES_ERR_LEN, "the same rule as line %u", dup->rn_rule.line);
			rules_report(err, arg, line, ln.err);
			nerr++;
			continue;
		}
		/*
		 * The comment as a string (up to a NUL), without the CRs at its
		 * end, which the next read would take for the line's end.
		 */
		if ((nul = memchr(s + ln.cmt, '\0', llen - ln.cmt)) != NULL)
			llen = (size_t)(nul - s);
		while (llen > ln.cmt && s[llen - 1] == '\r')
			llen--;
		if (rules_count(rs) == 0 && nerr == 0) {
			pre = rules_header_end(text, start);
			if (pre > 0 && rules_set_text(rs, 0, text, pre) == -1)
				goto nomem;
		}
		n = rules_node_new(&d.d_r, s + ln.cmt, llen - ln.cmt, text + pre, start - pre,
		    rs->rs_seq, 0);
		if (n == NULL || rules_set_push(rs, n) == -1) {
			rules_node_unref(n);
			goto nomem;
		}
		rules_node_unref(n);
		pre = pos;
	}
	if (nerr > 0) {
		rules_unref(rs);
		errno = EINVAL;
		return NULL;
	}
	/* after the last rule: the tail; with no rule at all: the header */
	if (len > pre && rules_set_text(rs, rules_count(rs) > 0, text + pre, len - pre) == -1)
		goto nomem;
	return rs;

nomem:
	rules_report(err, arg, line, "out of memory");
	rules_unref(rs);
	errno = ENOMEM;
	return NULL;
}

/* ---- back to text -------------------------------------------------------- */

struct rules_out {
	char	*o_buf;
	size_t	 o_size, o_len;		/* o_len counts what did not fit too */
};

static void
rules_out_mem(struct rules_out *o, const char *p, size_t n)
{
	if (o->o_len < o->o_size) {
		size_t room = o->o_size - o->o_len - 1;

		memcpy(o->o_buf + o->o_len, p, n < room ? n : room);
		o->o_buf[o->o_len + (n < room ? n : room)] = '\0';
	}
	o->o_len += n;
}

static void
rules_out_str(struct rules_out *o, const char *s)
{
	rules_out_mem(o, s, strlen(s));
}

int
rules_rule_format(const struct rules_rule *r, char *buf, size_t len)
{
	struct rules_out o = { buf, len, 0 };
	char tmp[64];
	const char *p;

	if (len > 0)
		buf[0] = '\0';
	switch (r->kind) {
	case RULES_BLOCK_SENDER:
		rules_out_str(&o, "block sender ");
		rules_out_str(&o, r->pattern != NULL ? r->pattern : "");
		break;
	case RULES_BLOCK_CLIENT:
		rules_out_str(&o, "block client ");
		rules_cidr_format(&r->cidr, tmp, sizeof tmp);
		rules_out_str(&o, tmp);
		break;
	case RULES_ALLOW_RELAY:
		rules_out_str(&o, "allow relay ");
		rules_cidr_format(&r->cidr, tmp, sizeof tmp);
		rules_out_str(&o, tmp);
		rules_out_str(&o, " to ");
		rules_out_str(&o, r->pattern != NULL ? r->pattern : "");
		break;
	default:
		rules_out_str(&o, "(invalid rule)");
		break;
	}
	if (r->until != 0) {
		struct tm tm;

		if (gmtime_r(&r->until, &tm) != NULL &&
		    strftime(tmp, sizeof tmp, " until=%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
			rules_out_str(&o, tmp);
	}
	if (r->comment != NULL && r->comment[0] != '\0') {
		rules_out_str(&o, " comment=\"");
		for (p = r->comment; *p != '\0'; p++) {
			if (*p == '"' || *p == '\\')
				rules_out_mem(&o, "\\", 1);
			rules_out_mem(&o, p, 1);
		}
		rules_out_str(&o, "\"");
	}
	return o.o_len > INT32_MAX ? -1 : (int)o.o_len;
}
