/*
 * test_nq_rate: the per-client token buckets of nfq/nfq.h: the burst, the
 * continuous refill, independent clients, IPv6 keyed by /64, eviction of the
 * least recently seen client at max_entries, the counters, a clock that goes
 * backwards, and rates and idle times at the limits of the arithmetic.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "nfq/nfq.h"

#define T_MIN		60	/* per_s of a N/min rate */
#define T_T0		1000000	/* an arbitrary start of the clock, in ms */

/* 192.0.2.n (n < 256), as 4 bytes and 12 zeros. */
static void
t_v4(uint8_t a[16], unsigned n)
{
	memset(a, 0, 16);
	a[0] = 192;
	a[1] = 0;
	a[2] = 2;
	a[3] = (uint8_t)n;
}

/* 2001:db8:<net>::<host> */
static void
t_v6(uint8_t a[16], uint16_t net, uint16_t host)
{
	memset(a, 0, 16);
	a[0] = 0x20;
	a[1] = 0x01;
	a[2] = 0x0d;
	a[3] = 0xb8;
	a[6] = (uint8_t)(net >> 8);
	a[7] = (uint8_t)net;
	a[14] = (uint8_t)(host >> 8);
	a[15] = (uint8_t)host;
}

/* A distinct IPv6 /64 for client i: 2001:db8:<hi>:<lo>::1. */
static void
t_net(uint8_t a[16], uint32_t i)
{
	t_v6(a, 0, 1);
	a[4] = (uint8_t)(i >> 24);
	a[5] = (uint8_t)(i >> 16);
	a[6] = (uint8_t)(i >> 8);
	a[7] = (uint8_t)i;
}

/* Take n tokens from one client at now; how many were granted. */
static unsigned
t_take_n(struct nq_rate *rt, sa_family_t f, const uint8_t *a, uint64_t now, unsigned n)
{
	unsigned i, ok = 0;

	for (i = 0; i < n; i++)
		ok += (unsigned)nq_rate_take(rt, f, a, now);
	return ok;
}

static void
test_nq_rate_burst_is_exactly_rate(void **state)
{
	struct nq_rate *rt = nq_rate_new(5, T_MIN, 16);
	uint8_t a[16];

	(void)state;
	assert_non_null(rt);
	t_v4(a, 10);
	assert_int_equal(t_take_n(rt, AF_INET, a, T_T0, 5), 5);
	assert_int_equal(nq_rate_take(rt, AF_INET, a, T_T0), 0);
	assert_int_equal(nq_rate_take(rt, AF_INET, a, T_T0), 0);
	assert_int_equal(nq_rate_count(rt), 1);
	nq_rate_free(rt);
}

static void
test_nq_rate_refill_is_continuous(void **state)
{
	struct nq_rate *rt = nq_rate_new(30, T_MIN, 16);	/* 30/min: a token every 2 s */
	uint8_t a[16];

	(void)state;
	assert_non_null(rt);
	t_v4(a, 10);
	assert_int_equal(t_take_n(rt, AF_INET, a, T_T0, 31), 30);
	assert_int_equal(nq_rate_take(rt, AF_INET, a, T_T0 + 1999), 0);
	assert_int_equal(nq_rate_take(rt, AF_INET, a, T_T0 + 2000), 1);
	assert_int_equal(nq_rate_take(rt, AF_INET, a, T_T0 + 2000), 0);
	/* Partial refills add up: 1 s + 1 s is one token. */
	assert_int_equal(nq_rate_take(rt, AF_INET, a, T_T0 + 3000), 0);
	assert_int_equal(nq_rate_take(rt, AF_INET, a, T_T0 + 4000), 1);
	/* 10 s idle: 5 tokens, not 6. */
	assert_int_equal(t_take_n(rt, AF_INET, a, T_T0 + 14000, 6), 5);
	/* A long idle fills the bucket to the burst and no further. */
	assert_int_equal(t_take_n(rt, AF_INET, a, T_T0 + 3600000, 40), 30);
	nq_rate_free(rt);
}

static void
test_nq_rate_clients_are_independent(void **state)
{
	struct nq_rate *rt = nq_rate_new(3, 1, 16);
	uint8_t a[16], b[16];

	(void)state;
	assert_non_null(rt);
	t_v4(a, 10);
	t_v4(b, 11);
	assert_int_equal(t_take_n(rt, AF_INET, a, T_T0, 4), 3);
	assert_int_equal(t_take_n(rt, AF_INET, b, T_T0, 4), 3);
	assert_int_equal(nq_rate_count(rt), 2);
	nq_rate_free(rt);
}

static void
test_nq_rate_ipv6_keyed_by_slash_64(void **state)
{
	struct nq_rate *rt = nq_rate_new(4, T_MIN, 16);
	uint8_t a1[16], a2[16], b[16], v4[16];

	(void)state;
	assert_non_null(rt);
	t_v6(a1, 1, 1);
	t_v6(a2, 1, 0xffff);
	t_v6(b, 2, 1);
	assert_int_equal(t_take_n(rt, AF_INET6, a1, T_T0, 2), 2);
	assert_int_equal(t_take_n(rt, AF_INET6, a2, T_T0, 3), 2);	/* same /64: shared */
	assert_int_equal(t_take_n(rt, AF_INET6, b, T_T0, 5), 4);	/* other /64 */
	assert_int_equal(nq_rate_count(rt), 2);
	/* An IPv4 address equal to the IPv6 one's first bytes is another client. */
	memcpy(v4, a1, 4);
	memset(v4 + 4, 0, 12);
	assert_int_equal(t_take_n(rt, AF_INET, v4, T_T0, 5), 4);
	assert_int_equal(nq_rate_count(rt), 3);
	nq_rate_free(rt);
}

static void
test_nq_rate_eviction_takes_least_recently_seen(void **state)
{
	struct nq_rate *rt = nq_rate_new(2, T_MIN, 4);
	uint8_t a[16];
	unsigned i;

	(void)state;
	assert_non_null(rt);
	for (i = 0; i < 4; i++) {			/* clients 0..3, each emptied */
		t_v4(a, i);
		assert_int_equal(t_take_n(rt, AF_INET, a, T_T0 + i, 3), 2);
	}
	assert_int_equal(nq_rate_count(rt), 4);
	t_v4(a, 0);					/* 0 is seen again: now 1 is the oldest */
	assert_int_equal(nq_rate_take(rt, AF_INET, a, T_T0 + 10), 0);
	t_v4(a, 4);					/* a new client evicts 1 */
	assert_int_equal(nq_rate_take(rt, AF_INET, a, T_T0 + 11), 1);
	assert_int_equal(nq_rate_count(rt), 4);
	assert_int_equal(nq_rate_evictions(rt), 1);
	t_v4(a, 0);					/* 0 kept its empty bucket */
	assert_int_equal(nq_rate_take(rt, AF_INET, a, T_T0 + 12), 0);
	t_v4(a, 2);					/* 2 and 3 too */
	assert_int_equal(nq_rate_take(rt, AF_INET, a, T_T0 + 13), 0);
	t_v4(a, 3);
	assert_int_equal(nq_rate_take(rt, AF_INET, a, T_T0 + 14), 0);
	assert_int_equal(nq_rate_evictions(rt), 1);
	t_v4(a, 1);					/* 1 starts afresh, evicting 4 */
	assert_int_equal(t_take_n(rt, AF_INET, a, T_T0 + 15, 3), 2);
	assert_int_equal(nq_rate_evictions(rt), 2);
	assert_int_equal(nq_rate_count(rt), 4);
	nq_rate_free(rt);
}

/* Many more clients than entries: the most recent max_entries keep their state. */
static void
test_nq_rate_memory_stays_bounded(void **state)
{
	const uint32_t max = 1000, n = 20000;
	struct nq_rate *rt = nq_rate_new(1, T_MIN, max);
	uint8_t a[16];
	uint32_t i;

	(void)state;
	assert_non_null(rt);
	for (i = 0; i < n; i++) {
		t_net(a, i);
		assert_int_equal(nq_rate_take(rt, AF_INET6, a, T_T0), 1);
		assert_true(nq_rate_count(rt) <= max);
	}
	assert_int_equal(nq_rate_count(rt), max);
	assert_int_equal(nq_rate_evictions(rt), n - max);
	for (i = n - max; i < n; i++) {			/* still tracked, still empty */
		t_net(a, i);
		assert_int_equal(nq_rate_take(rt, AF_INET6, a, T_T0), 0);
	}
	assert_int_equal(nq_rate_evictions(rt), n - max);
	for (i = 0; i < max; i++) {			/* long gone: fresh buckets */
		t_net(a, i);
		assert_int_equal(nq_rate_take(rt, AF_INET6, a, T_T0), 1);
	}
	assert_int_equal(nq_rate_evictions(rt), n);
	assert_int_equal(nq_rate_count(rt), max);
	nq_rate_free(rt);
}

static void
test_nq_rate_counts(void **state)
{
	struct nq_rate *rt = nq_rate_new(10, 1, 8);
	uint8_t a[16];
	unsigned i;

	(void)state;
	assert_non_null(rt);
	assert_int_equal(nq_rate_count(rt), 0);
	assert_int_equal(nq_rate_evictions(rt), 0);
	for (i = 0; i < 5; i++) {
		t_v4(a, i);
		nq_rate_take(rt, AF_INET, a, T_T0);
		nq_rate_take(rt, AF_INET, a, T_T0);
		assert_int_equal(nq_rate_count(rt), i + 1);
	}
	/* A family without a key is neither limited nor tracked. */
	assert_int_equal(nq_rate_take(rt, AF_UNIX, a, T_T0), 1);
	assert_int_equal(nq_rate_count(rt), 5);
	assert_int_equal(nq_rate_evictions(rt), 0);
	nq_rate_free(rt);
}

static void
test_nq_rate_clock_backwards_mints_nothing(void **state)
{
	struct nq_rate *rt = nq_rate_new(30, T_MIN, 16);
	uint8_t a[16], b[16];

	(void)state;
	assert_non_null(rt);
	t_v4(a, 10);
	t_v4(b, 11);
	assert_int_equal(t_take_n(rt, AF_INET, a, T_T0, 30), 30);
	assert_int_equal(nq_rate_take(rt, AF_INET, a, 0), 0);		/* back to 0 */
	assert_int_equal(nq_rate_take(rt, AF_INET, a, T_T0 - 500000), 0);
	assert_int_equal(nq_rate_take(rt, AF_INET, a, T_T0), 0);	/* and forward: nothing */
	assert_int_equal(nq_rate_take(rt, AF_INET, a, T_T0 + 1999), 0);
	assert_int_equal(nq_rate_take(rt, AF_INET, a, T_T0 + 2000), 1);
	/* A new client seen at an earlier time than the others is fine. */
	assert_int_equal(t_take_n(rt, AF_INET, b, 5, 31), 30);
	nq_rate_free(rt);
}

static void
test_nq_rate_extremes_do_not_overflow(void **state)
{
	const uint64_t unit = (uint64_t)NQ_RATE_MAX_PER_S * 1000;	/* ms per period */
	struct nq_rate *rt;
	uint8_t a[16];

	(void)state;
	t_v4(a, 10);
	/* The largest rate over the longest period: the refill product is largest. */
	rt = nq_rate_new(UINT_MAX, NQ_RATE_MAX_PER_S, 4);
	assert_non_null(rt);
	assert_int_equal(t_take_n(rt, AF_INET, a, 0, 1000), 1000);
	assert_int_equal(t_take_n(rt, AF_INET, a, unit - 1, 1000), 1000);
	assert_int_equal(t_take_n(rt, AF_INET, a, UINT64_MAX, 1000), 1000);
	assert_int_equal(t_take_n(rt, AF_INET, a, 0, 1000), 1000);
	nq_rate_free(rt);

	/* One connection a week: exactly one period to the next token. */
	rt = nq_rate_new(1, NQ_RATE_MAX_PER_S, 4);
	assert_non_null(rt);
	assert_int_equal(t_take_n(rt, AF_INET, a, T_T0, 2), 1);
	assert_int_equal(nq_rate_take(rt, AF_INET, a, T_T0 + unit - 1), 0);
	assert_int_equal(nq_rate_take(rt, AF_INET, a, T_T0 + unit), 1);
	assert_int_equal(nq_rate_take(rt, AF_INET, a, UINT64_MAX), 1);	/* an idle of ~2^64 ms */
	assert_int_equal(nq_rate_take(rt, AF_INET, a, UINT64_MAX), 0);
	nq_rate_free(rt);

	/* An idle of 2^63 ms at 2 units a ms is 2^64 units: a full bucket, not 0. */
	rt = nq_rate_new(2, NQ_RATE_MAX_PER_S, 4);
	assert_non_null(rt);
	assert_int_equal(t_take_n(rt, AF_INET, a, T_T0, 3), 2);
	assert_int_equal(t_take_n(rt, AF_INET, a, T_T0 + ((uint64_t)1 << 63), 3), 2);
	nq_rate_free(rt);

	/* The largest rate per second, and many refills of odd lengths. */
	rt = nq_rate_new(UINT_MAX, 1, 4);
	assert_non_null(rt);
	assert_int_equal(t_take_n(rt, AF_INET, a, UINT64_MAX - 5000, 100), 100);
	assert_int_equal(t_take_n(rt, AF_INET, a, UINT64_MAX - 3, 100), 100);
	assert_int_equal(t_take_n(rt, AF_INET, a, UINT64_MAX, 100), 100);
	nq_rate_free(rt);

	/* 3 a week: a third of the period to each token, no rounding. */
	rt = nq_rate_new(3, NQ_RATE_MAX_PER_S, 4);
	assert_non_null(rt);
	assert_int_equal(t_take_n(rt, AF_INET, a, T_T0, 4), 3);
	assert_int_equal(nq_rate_take(rt, AF_INET, a, T_T0 + unit / 3 - 1), 0);
	assert_int_equal(nq_rate_take(rt, AF_INET, a, T_T0 + unit / 3), 1);
	nq_rate_free(rt);
}

static void
test_nq_rate_new_refuses_bad_arguments(void **state)
{
	(void)state;
	errno = 0;
	assert_null(nq_rate_new(0, 60, 16));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(nq_rate_new(30, 0, 16));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(nq_rate_new(30, NQ_RATE_MAX_PER_S + 1, 16));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(nq_rate_new(30, 60, 0));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(nq_rate_new(30, 60, (size_t)NQ_RATE_MAX_ENTRIES + 1));
	assert_int_equal(errno, EINVAL);
	nq_rate_free(NULL);
}

/* Two tables hash differently (random seeds), yet behave the same. */
static void
test_nq_rate_tables_are_independent(void **state)
{
	struct nq_rate *r1 = nq_rate_new(2, 1, 64), *r2 = nq_rate_new(2, 1, 64);
	uint8_t a[16];
	unsigned i;

	(void)state;
	assert_non_null(r1);
	assert_non_null(r2);
	for (i = 0; i < 200; i++) {
		t_net(a, i);
		assert_int_equal(t_take_n(r1, AF_INET6, a, T_T0 + i, 3), 2);
	}
	assert_int_equal(nq_rate_count(r1), 64);
	assert_int_equal(nq_rate_count(r2), 0);
	t_net(a, 199);
	assert_int_equal(t_take_n(r2, AF_INET6, a, T_T0, 3), 2);
	nq_rate_free(r1);
	nq_rate_free(r2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nq_rate_burst_is_exactly_rate),
		cmocka_unit_test(test_nq_rate_refill_is_continuous),
		cmocka_unit_test(test_nq_rate_clients_are_independent),
		cmocka_unit_test(test_nq_rate_ipv6_keyed_by_slash_64),
		cmocka_unit_test(test_nq_rate_eviction_takes_least_recently_seen),
		cmocka_unit_test(test_nq_rate_memory_stays_bounded),
		cmocka_unit_test(test_nq_rate_counts),
		cmocka_unit_test(test_nq_rate_clock_backwards_mints_nothing),
		cmocka_unit_test(test_nq_rate_extremes_do_not_overflow),
		cmocka_unit_test(test_nq_rate_new_refuses_bad_arguments),
		cmocka_unit_test(test_nq_rate_tables_are_independent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
