/*
 * fuzz_rules: the rules-file language and the live ruleset. Invariants:
 * - parse either succeeds or reports at least one error, never both;
 * - every parsed rule formats to a line that parses back to a rule that
 *   formats identically (round trip);
 * - after rules_add/rules_remove driven by the input's own lines (the lines
 *   after a "%%" line, or else all of them: each line that parses as one
 *   rule is added, or removed when it starts with a blank), rules_write
 *   gives a file that parses without error to the same rules in the same
 *   order, and writes back byte for byte the same;
 * - the indexed rules_eval_sender/rules_eval_client decide by the same rule
 *   as a first-match linear scan, for addresses taken from the input.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_NOW	((time_t)1767225600)	/* 2026-01-01T00:00:00Z */

static void
fz_count(void *arg, unsigned line, const char *msg)
{
	(void)line;
	if (msg == NULL || *msg == '\0')
		abort();
	(*(int *)arg)++;
}

struct fz_buf {
	char	*p;
	size_t	 len, cap;
};

static int
fz_put(void *arg, const char *p, size_t n)
{
	struct fz_buf *b = arg;

	if (b->len + n > b->cap) {
		size_t cap = (b->len + n) * 2;
		char *q = realloc(b->p, cap);

		if (q == NULL)
			return -1;
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

static void
fz_round_trip_rules(const struct ruleset *rs)
{
	char a[1024], b[1024];
	struct ruleset *again;
	int e2 = 0;
	size_t i;

	for (i = 0; i < rules_count(rs); i++) {
		rules_rule_format(rules_get(rs, i), a, sizeof(a));
		if ((again = rules_parse(a, strlen(a), fz_count, &e2)) == NULL ||
		    rules_count(again) != 1)
			abort();
		rules_rule_format(rules_get(again, 0), b, sizeof(b));
		if (strcmp(a, b) != 0)
			abort();
		rules_unref(again);
	}
}

/* rs after a few changes from the input's lines; rs is dropped. */
static struct ruleset *
fz_changes(struct ruleset *rs, const char *text, size_t size)
{
	size_t pos = 0, nops = 0;
	char err[RULES_ERR_LEN];

	while (pos < size && nops < 16) {
		const char *s = text + pos, *nl = memchr(s, '\n', size - pos);
		size_t len = nl != NULL ? (size_t)(nl - s) : size - pos;
		struct rules_rule r;
		struct ruleset *n;
		int replaced;

		pos += len + 1;
		if (rules_rule_parse(s, len, &r, err) == -1)
			continue;
		nops++;
		n = s[0] == ' ' ? rules_remove(rs, &r) : rules_add(rs, &r, &replaced);
		rules_rule_clear(&r);
		if (n != NULL) {
			rules_unref(rs);
			rs = n;
		}
	}
	return rs;
}

static void
fz_write_round_trip(const struct ruleset *rs)
{
	struct fz_buf w1 = { NULL, 0, 0 }, w2 = { NULL, 0, 0 };
	struct ruleset *again;
	char a[1024], b[1024];
	int errors = 0;
	size_t i;

	if (rules_write(rs, fz_put, &w1) == -1)
		abort();
	again = rules_parse(w1.p != NULL ? w1.p : "", w1.len, fz_count, &errors);
	if (again == NULL || errors != 0 || rules_count(again) != rules_count(rs))
		abort();
	for (i = 0; i < rules_count(rs); i++) {
		rules_rule_format(rules_get(rs, i), a, sizeof(a));
		rules_rule_format(rules_get(again, i), b, sizeof(b));
		if (strcmp(a, b) != 0)
			abort();
	}
	if (rules_write(again, fz_put, &w2) == -1 || w1.len != w2.len ||
	    (w1.len > 0 && memcmp(w1.p, w2.p, w1.len) != 0))
		abort();
	rules_unref(again);
	free(w1.p);
	free(w2.p);
}

static int
fz_live(const struct rules_rule *r)
{
	return r->until == 0 || r->until > FZ_NOW;
}

/* The indexes against a linear scan, for each input line as a sender, and addresses from the bytes. */
static void
fz_lookups(const struct ruleset *rs, const uint8_t *data, size_t size)
{
	size_t pos = 0, i, n = rules_count(rs), k;
	struct rules_verdict v;

	while (pos <= size) {
		const char *s = (const char *)data + pos;
		const char *nl = memchr(s, '\n', size - pos);
		size_t len = nl != NULL ? (size_t)(nl - s) : size - pos;

		for (i = 0; i < n; i++) {
			const struct rules_rule *r = rules_get(rs, i);

			if (r->kind == RULES_BLOCK_SENDER && fz_live(r) &&
			    rules_sender_match(r->pattern, strlen(r->pattern), s, len))
				break;
		}
		rules_eval_sender(rs, s, len, FZ_NOW, &v);
		if (v.rule != rules_get(rs, i))
			abort();
		pos += len + 1;
	}
	for (k = 0; k + 16 <= size && k < 64; k += 4) {
		struct sockaddr_in sin;
		struct sockaddr_in6 sin6;
		const struct sockaddr *sa[2] = { (const struct sockaddr *)&sin,
		    (const struct sockaddr *)&sin6 };
		int f;

		memset(&sin, 0, sizeof sin);
		memset(&sin6, 0, sizeof sin6);
		sin.sin_family = AF_INET;
		memcpy(&sin.sin_addr, data + k, 4);
		sin6.sin6_family = AF_INET6;
		memcpy(&sin6.sin6_addr, data + k, 16);
		for (f = 0; f < 2; f++) {
			for (i = 0; i < n; i++) {
				const struct rules_rule *r = rules_get(rs, i);

				if (r->kind == RULES_BLOCK_CLIENT && fz_live(r) &&
				    rules_cidr_match(&r->cidr, sa[f]))
					break;
			}
			rules_eval_client(rs, sa[f], FZ_NOW, &v);
			if (v.rule != rules_get(rs, i))
				abort();
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size ? size : 1), *ops;
	struct ruleset *rs;
	size_t flen;
	int errors = 0;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	ops = size >= 4 ? memmem(text, size, "\n%%\n", 4) : NULL;
	flen = ops != NULL ? (size_t)(ops - text) + 1 : size;
	if (ops != NULL)
		ops += 4;
	else
		ops = text;
	rs = rules_parse(text, flen, fz_count, &errors);
	if (rs == NULL && errors == 0)
		abort();
	if (rs != NULL && errors != 0)
		abort();
	if (rs != NULL) {
		fz_round_trip_rules(rs);
		fz_write_round_trip(rs);
	} else if ((rs = rules_empty()) == NULL)
		abort();
	rs = fz_changes(rs, ops, size - (size_t)(ops - text));
	fz_write_round_trip(rs);
	fz_lookups(rs, data, size);
	rules_unref(rs);
	free(text);
	return 0;
}
