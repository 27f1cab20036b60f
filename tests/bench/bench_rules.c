/*
 * bench_rules: the live ruleset at 10^3, 10^5 and 10^6 rules, the way the
 * daemon uses it, next to the linear scan it replaced. `make bench`.
 *
 * The rules are a realistic mix: 70% `block sender *@dNNNNNNN.example`,
 * 20% `block client` (half /32, half /24), 10% `allow relay A.B.C.D/32 to
 * relayN.example`. For each size it measures:
 *   - load: rules_parse of the whole text; write: rules_write of it;
 *   - memory: heap bytes in use (mallinfo2) and RSS growth, per rule;
 *   - one change to the current version (as smtpwallctl does): 1000
 *     rules_add, then 1000 rules_remove of random existing rules, each
 *     timed alone; median, p99 and max;
 *   - lookups: 10^5 rules_eval_sender (MAIL) and rules_eval_rcpt (RCPT),
 *     half hits and half misses, timed in batches of 100; median, min and
 *     p99 of the per-call mean of each batch;
 *   - BASELINE: the same lookups by a first-match scan over an array of
 *     the same rules (the old design), as many as fit in a few seconds;
 *     every baseline verdict is checked against the indexed one.
 *
 * Plain C, no test framework; prints tables; exits 1 if a check fails.
 */
#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/bench/benchclock.h"
#include "rules/rules.h"

#define BR_NOW		((time_t)1767225600)	/* 2026-01-01T00:00:00Z */
#define BR_LOOKUPS	100000
#define BR_BATCH	100
#define BR_CHANGES	1000
#define BR_BASE_SECS	3.0			/* per baseline measurement */

struct br_stats {
	double	 med, min, p99, max;
	size_t	 n;
};

struct br_row {
	size_t		 n;
	double		 load, write, heap, rss;
	struct br_stats	 add, del, mail, rcpt, bmail, brcpt;
};

static struct br_stats
br_stats(double *v, size_t n)
{
	struct br_stats s = { 0, 0, 0, 0, n };

	if (n == 0)
		return s;
	qsort(v, n, sizeof v[0], bench_cmp_double);
	s.med = v[n / 2];
	s.min = v[0];
	s.p99 = v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
	s.max = v[n - 1];
	return s;
}

static uint64_t
br_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static size_t
br_rss(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long size = 0, res = 0;

	if (f == NULL)
		return 0;
	if (fscanf(f, "%lu %lu", &size, &res) != 2)
		res = 0;
	fclose(f);
	return res * (size_t)sysconf(_SC_PAGESIZE);
}

static size_t
br_heap(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

/* The i-th rule of the mix: unique by construction (odd multipliers are bijections). */
static int
br_rule(size_t i, char *buf, size_t len)
{
	uint32_t a;

	switch (i % 10) {
	case 7:
		a = (uint32_t)i * 2654435761u;
		return snprintf(buf, len, "block client %u.%u.%u.%u", a >> 24, (a >> 16) & 255,
		    (a >> 8) & 255, a & 255);
	case 8:
		a = ((uint32_t)i * 40503u) & 0xffffff;
		return snprintf(buf, len, "block client %u.%u.%u.0/24", a >> 16, (a >> 8) & 255,
		    a & 255);
	case 9:
		a = (uint32_t)i * 2246822519u ^ 0x5bd1e995u;
		return snprintf(buf, len, "allow relay %u.%u.%u.%u to relay%zu.example", a >> 24,
		    (a >> 16) & 255, (a >> 8) & 255, a & 255, i);
	default:
		return snprintf(buf, len, "block sender *@d%07zu.example", i);
	}
}

static char *
br_text(size_t n, size_t *len)
{
	size_t cap = n * 64 + 1, o = 0, i;
	char *t = malloc(cap);

	if (t == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		o += (size_t)br_rule(i, t + o, cap - o);
		t[o++] = '\n';
	}
	*len = o;
	return t;
}

/* ---- the old design: an array scanned in order ----------------------------------- */

struct br_linear {
	const struct rules_rule	**r;
	size_t			  n;
};

static int
br_live(const struct rules_rule *r)
{
	return r->until == 0 || r->until > BR_NOW;
}

static const struct rules_rule *
br_linear_sender(const struct br_linear *l, const char *addr, size_t alen)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (l->r[i]->kind == RULES_BLOCK_SENDER && br_live(l->r[i]) &&
		    rules_sender_match(l->r[i]->pattern, strlen(l->r[i]->pattern), addr, alen))
			return l->r[i];
	return NULL;
}

/* rules_eval_rcpt's steps 3 and 4 for a plain address, with the allow rules scanned. */
static const struct rules_rule *
br_linear_rcpt(const struct br_linear *l, const struct rules_policy *pol, const struct sockaddr *sa,
    const struct rules_rcpt *rcpt, int *accept)
{
	size_t i;

	*accept = 1;
	if (rules_cidrset_match(pol->trusted, sa))
		return NULL;
	for (i = 0; i < l->n; i++)
		if (l->r[i]->kind == RULES_ALLOW_RELAY && br_live(l->r[i]) &&
		    rules_cidr_match(&l->r[i]->cidr, sa) &&
		    rules_domain_match(l->r[i]->pattern, strlen(l->r[i]->pattern), rcpt->domain,
		    rcpt->domain_len))
			return l->r[i];
	*accept = rules_domainset_match(pol->local_domains, rcpt->domain, rcpt->domain_len);
	return NULL;
}

/* ---- lookups ------------------------------------------------------------------- */

struct br_query {
	char			 addr[48];	/* MAIL FROM, or the RCPT domain */
	size_t			 alen;
	struct sockaddr_in	 client;
};

static void
br_queries(struct br_query *q, size_t nq, size_t n, uint64_t *seed)
{
	size_t i, k;

	for (k = 0; k < nq; k++) {
		int hit = br_rand(seed) & 1;
		uint32_t a;

		/* MAIL: a blocked domain, or one that is not */
		i = (size_t)(br_rand(seed) % n);
		i -= i % 10;
		q[k].alen = (size_t)snprintf(q[k].addr, sizeof q[k].addr, hit ? "u%zu@d%07zu.example" :
		    "u%zu@x%07zu.example", k, i);
		/* RCPT: an allow relay client and its domain, or a client that has none */
		memset(&q[k].client, 0, sizeof q[k].client);
		q[k].client.sin_family = AF_INET;
		i = (size_t)(br_rand(seed) % n);
		i = i - i % 10 + 9;
		a = hit && i < n ? (uint32_t)i * 2246822519u ^ 0x5bd1e995u : (uint32_t)br_rand(seed);
		q[k].client.sin_addr.s_addr = htonl(a);
	}
}

static void
br_rcpt_of(const struct br_query *q, size_t k, size_t n, char *dom, size_t len, struct rules_rcpt *r)
{
	uint32_t a = ntohl(q->client.sin_addr.s_addr) ^ 0x5bd1e995u;
	size_t i = (size_t)(a * 3066638151u);	/* 2246822519^-1 mod 2^32: the rule it came from */

	if (i >= n || i % 10 != 9 || (k & 2))
		snprintf(dom, len, "other%zu.example", k);
	else
		snprintf(dom, len, "relay%zu.example", i);
	r->local = "u";
	r->local_len = 1;
	r->domain = dom;
	r->domain_len = strlen(dom);
	r->flags = 0;
}

static int
br_fail(const char *what, size_t k)
{
	fprintf(stderr, "bench_rules: %s: indexed and linear verdicts differ at query %zu\n", what, k);
	exit(1);
}

static struct br_stats
br_mail(const struct ruleset *rs, const struct br_query *q, size_t nq, size_t *hits)
{
	static double v[BR_LOOKUPS / BR_BATCH];
	struct rules_verdict vd;
	size_t b, k;

	*hits = 0;
	for (b = 0; b < nq / BR_BATCH; b++) {
		double t0 = bench_now();

		for (k = b * BR_BATCH; k < (b + 1) * BR_BATCH; k++) {
			rules_eval_sender(rs, q[k].addr, q[k].alen, BR_NOW, &vd);
			*hits += !vd.accept;
		}
		v[b] = (bench_now() - t0) * 1e9 / BR_BATCH;
	}
	return br_stats(v, nq / BR_BATCH);
}

static struct br_stats
br_rcpt(const struct ruleset *rs, const struct rules_policy *pol, const struct br_query *q, size_t nq,
    size_t n, size_t *hits)
{
	static double v[BR_LOOKUPS / BR_BATCH];
	static struct rules_rcpt r[BR_LOOKUPS];
	static char dom[BR_LOOKUPS][32];
	struct rules_verdict vd;
	size_t b, k;

	for (k = 0; k < nq; k++)
		br_rcpt_of(&q[k], k, n, dom[k], sizeof dom[k], &r[k]);
	*hits = 0;
	for (b = 0; b < nq / BR_BATCH; b++) {
		double t0 = bench_now();

		for (k = b * BR_BATCH; k < (b + 1) * BR_BATCH; k++) {
			rules_eval_rcpt(pol, rs, (const struct sockaddr *)&q[k].client, 0, &r[k], BR_NOW,
			    &vd);
			*hits += vd.reason == RULES_R_ALLOW_RULE;
		}
		v[b] = (bench_now() - t0) * 1e9 / BR_BATCH;
	}
	return br_stats(v, nq / BR_BATCH);
}

/* The linear scan, one call at a time, for BR_BASE_SECS at most; each verdict checked. */
static struct br_stats
br_base(const struct ruleset *rs, const struct br_linear *l, const struct rules_policy *pol,
    const struct br_query *q, size_t nq, size_t n, int rcpt)
{
	static double v[BR_LOOKUPS];
	double start = bench_now(), t0;
	struct rules_verdict vd;
	struct rules_rcpt r;
	char dom[32];
	size_t k;

	for (k = 0; k < nq && bench_now() - start < BR_BASE_SECS; k++) {
		const struct rules_rule *got;
		int accept;

		if (rcpt) {
			br_rcpt_of(&q[k], k, n, dom, sizeof dom, &r);
			t0 = bench_now();
			got = br_linear_rcpt(l, pol, (const struct sockaddr *)&q[k].client, &r, &accept);
			v[k] = (bench_now() - t0) * 1e9;
			rules_eval_rcpt(pol, rs, (const struct sockaddr *)&q[k].client, 0, &r, BR_NOW, &vd);
			if (vd.rule != got || vd.accept != accept)
				br_fail("RCPT", k);
		} else {
			t0 = bench_now();
			got = br_linear_sender(l, q[k].addr, q[k].alen);
			v[k] = (bench_now() - t0) * 1e9;
			rules_eval_sender(rs, q[k].addr, q[k].alen, BR_NOW, &vd);
			if (vd.rule != got)
				br_fail("MAIL", k);
		}
	}
	return br_stats(v, k);
}

/* ---- changes ------------------------------------------------------------------- */

static struct br_stats
br_changes(struct ruleset **cur, size_t n, uint64_t *seed, int add)
{
	static double v[BR_CHANGES];
	static struct rules_rule r[BR_CHANGES];
	char line[128], err[RULES_ERR_LEN];
	size_t k;

	for (k = 0; k < BR_CHANGES; k++) {
		if (add)
			snprintf(line, sizeof line, "block sender *@new%zu.example comment=\"live\"", k);
		else	/* distinct rules of the loaded file: k-th block of n/1000, random inside */
			br_rule(k * (n / BR_CHANGES) + (size_t)(br_rand(seed) % (n / BR_CHANGES)),
			    line, sizeof line);
		if (rules_rule_parse(line, strlen(line), &r[k], err) == -1) {
			fprintf(stderr, "bench_rules: %s: %s\n", line, err);
			exit(1);
		}
	}
	for (k = 0; k < BR_CHANGES; k++) {
		struct ruleset *next;
		double t0 = bench_now();
		int replaced;

		next = add ? rules_add(*cur, &r[k], &replaced) : rules_remove(*cur, &r[k]);
		v[k] = (bench_now() - t0) * 1e6;
		if (next == NULL) {
			fprintf(stderr, "bench_rules: rules_%s failed\n", add ? "add" : "remove");
			exit(1);
		}
		rules_unref(*cur);
		*cur = next;
		rules_rule_clear(&r[k]);
	}
	return br_stats(v, BR_CHANGES);
}

static int
br_sink(void *arg, const char *p, size_t n)
{
	(void)p;
	*(size_t *)arg += n;
	return 0;
}

static void
br_err(void *arg, unsigned line, const char *msg)
{
	(void)arg;
	fprintf(stderr, "bench_rules: line %u: %s\n", line, msg);
}

static void
br_run(size_t n, struct br_row *row, const struct rules_policy *pol)
{
	static struct br_query q[BR_LOOKUPS];
	uint64_t seed = 0x9e3779b97f4a7c15ULL ^ n;
	size_t len, heap0, rss0, i, hits, written = 0;
	struct br_linear l;
	struct ruleset *rs;
	char *text;
	double t0;

	memset(row, 0, sizeof *row);
	row->n = n;
	if ((text = br_text(n, &len)) == NULL) {
		fprintf(stderr, "bench_rules: out of memory\n");
		exit(1);
	}
	malloc_trim(0);
	heap0 = br_heap();
	rss0 = br_rss();
	t0 = bench_now();
	rs = rules_parse(text, len, br_err, NULL);
	row->load = bench_now() - t0;
	if (rs == NULL || rules_count(rs) != n) {
		fprintf(stderr, "bench_rules: rules_parse failed\n");
		exit(1);
	}
	row->heap = (double)(br_heap() - heap0) / (double)n;
	row->rss = (double)(br_rss() - rss0) / (double)n;
	free(text);

	t0 = bench_now();
	rules_write(rs, br_sink, &written);
	row->write = bench_now() - t0;

	br_queries(q, BR_LOOKUPS, n, &seed);
	row->mail = br_mail(rs, q, BR_LOOKUPS, &hits);
	if (hits < BR_LOOKUPS / 3 || hits > 2 * BR_LOOKUPS / 3) {
		fprintf(stderr, "bench_rules: MAIL hits %zu of %d: not a mix\n", hits, BR_LOOKUPS);
		exit(1);
	}
	row->rcpt = br_rcpt(rs, pol, q, BR_LOOKUPS, n, &hits);
	if (hits < BR_LOOKUPS / 10) {
		fprintf(stderr, "bench_rules: RCPT hits %zu of %d: not a mix\n", hits, BR_LOOKUPS);
		exit(1);
	}

	l.n = rules_count(rs);
	if ((l.r = malloc(l.n * sizeof l.r[0])) == NULL)
		exit(1);
	for (i = 0; i < l.n; i++)
		l.r[i] = rules_get(rs, i);
	row->bmail = br_base(rs, &l, pol, q, BR_LOOKUPS, n, 0);
	row->brcpt = br_base(rs, &l, pol, q, BR_LOOKUPS, n, 1);
	free(l.r);

	row->add = br_changes(&rs, n, &seed, 1);
	row->del = br_changes(&rs, n, &seed, 0);
	if (rules_count(rs) != n) {
		fprintf(stderr, "bench_rules: %zu rules after the changes, want %zu\n", rules_count(rs), n);
		exit(1);
	}
	rules_unref(rs);
}

int
main(void)
{
	static const size_t sizes[] = { 1000, 100000, 1000000 };
	struct br_row row[3];
	struct rules_cidrset *trusted = rules_cidrset_new();
	struct rules_domainset *local = rules_domainset_new();
	struct rules_policy pol = { trusted, local, 1 };
	struct rules_cidr c;
	char err[RULES_ERR_LEN];
	size_t i;

	if (trusted == NULL || local == NULL ||
	    rules_cidr_parse("127.0.0.0/8", 11, &c, err) == -1 || rules_cidrset_add(trusted, &c) == -1 ||
	    rules_domainset_add(local, "example.com", 11, err) == -1)
		return 1;
	printf("bench_rules: rules mix 70%% block sender *@domain, 20%% block client /32 and /24, "
	    "10%% allow relay /32\n");
	fflush(stdout);
	for (i = 0; i < 3; i++)
		br_run(sizes[i], &row[i], &pol);

	printf("\nload and memory\n");
	printf("%9s %10s %10s %14s %14s\n", "rules", "load s", "write s", "heap B/rule", "RSS B/rule");
	for (i = 0; i < 3; i++)
		printf("%9zu %10.3f %10.3f %14.0f %14.0f\n", row[i].n, row[i].load, row[i].write,
		    row[i].heap, row[i].rss);

	printf("\none change to the current version, us (%d each: median / p99 / max)\n", BR_CHANGES);
	printf("%9s %26s %26s\n", "rules", "rules_add", "rules_remove");
	for (i = 0; i < 3; i++)
		printf("%9zu %8.2f / %6.2f / %6.1f %8.2f / %6.2f / %6.1f\n", row[i].n,
		    row[i].add.med, row[i].add.p99, row[i].add.max,
		    row[i].del.med, row[i].del.p99, row[i].del.max);

	printf("\nlookups, ns per call: indexed (%d calls in batches of %d: median [min, p99]) "
	    "vs BASELINE linear scan (median [min, max], calls)\n", BR_LOOKUPS, BR_BATCH);
	printf("%9s %24s %34s %9s\n", "rules", "MAIL indexed", "MAIL linear", "ratio");
	for (i = 0; i < 3; i++)
		printf("%9zu %8.0f [%5.0f, %6.0f] %10.0f [%8.0f, %8.0f] %6zu %8.0fx\n", row[i].n,
		    row[i].mail.med, row[i].mail.min, row[i].mail.p99,
		    row[i].bmail.med, row[i].bmail.min, row[i].bmail.max, row[i].bmail.n,
		    row[i].bmail.med / row[i].mail.med);
	printf("%9s %24s %34s %9s\n", "rules", "RCPT indexed", "RCPT linear", "ratio");
	for (i = 0; i < 3; i++)
		printf("%9zu %8.0f [%5.0f, %6.0f] %10.0f [%8.0f, %8.0f] %6zu %8.0fx\n", row[i].n,
		    row[i].rcpt.med, row[i].rcpt.min, row[i].rcpt.p99,
		    row[i].brcpt.med, row[i].brcpt.min, row[i].brcpt.max, row[i].brcpt.n,
		    row[i].brcpt.med / row[i].rcpt.med);
	rules_cidrset_free(trusted);
	rules_domainset_free(local);
	return 0;
}
