/*
 * nq_rate.c: a token bucket per client address, for client_rate.
 *
 * Owns one preallocated table: max_entries buckets in an array, a chained
 * hash index over them and an LRU list through them, both intrusive and by
 * array index, so a lookup, an insertion and an eviction are O(1) and the
 * memory never grows after nq_rate_new(). Never logs, never reads a clock
 * (the caller passes now_ms) and does no I/O but getrandom() for the seed.
 *
 * Arithmetic. A token is `unit` = per_s * 1000 units, the bucket holds
 * cap = rate * unit units, and each millisecond adds `rate` units: exactly
 * rate tokens per per_s seconds, without division or rounding. Since
 * per_s <= NQ_RATE_MAX_PER_S and rate < 2^32, cap < 2^62; an idle time of
 * `unit` ms or more fills the bucket outright, so the refill product stays
 * below cap too, and nothing can overflow whatever now_ms does. A clock
 * that goes backwards refills nothing and moves nothing back, so it cannot
 * mint tokens when it comes forward again.
 *
 * The hash is SipHash-1-3 keyed by 128 random bits per table: without the
 * key a remote client cannot choose addresses that fall into one chain.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <netinet/in.h>

#include "nfq/nfq.h"

#define NQ_RATE_NIL	UINT32_MAX

struct nq_rate_ent {
	uint8_t		re_addr[16];	/* IPv4 whole, IPv6 its /64; the rest zero */
	sa_family_t	re_family;
	uint32_t	re_hnext;	/* next in the hash chain */
	uint32_t	re_newer;	/* LRU neighbours */
	uint32_t	re_older;
	uint64_t	re_tokens;	/* in units: see above */
	uint64_t	re_last_ms;	/* latest now_ms seen */
};

struct nq_rate {
	uint64_t	 rt_key[2];	/* SipHash key */
	uint64_t	 rt_unit;	/* units per token: per_s * 1000 */
	uint64_t	 rt_cap;	/* units in a full bucket: rate * rt_unit */
	uint64_t	 rt_fill;	/* units per millisecond: rate */
	struct nq_rate_ent *rt_ent;	/* rt_max entries, rt_used of them live */
	uint32_t	*rt_bucket;	/* heads of the hash chains */
	uint32_t	 rt_mask;	/* buckets - 1 */
	uint32_t	 rt_max;
	uint32_t	 rt_used;
	uint32_t	 rt_newest;	/* LRU ends */
	uint32_t	 rt_oldest;
	uint64_t	 rt_evictions;
};

/* ---- SipHash-1-3 over a 17-byte message: 16 address bytes, the family ---- */

#define NQ_ROTL(x, b)	(uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void
nq_sipround(uint64_t v[4])
{
	v[0] += v[1]; v[1] = NQ_ROTL(v[1], 13); v[1] ^= v[0]; v[0] = NQ_ROTL(v[0], 32);
	v[2] += v[3]; v[3] = NQ_ROTL(v[3], 16); v[3] ^= v[2];
	v[0] += v[3]; v[3] = NQ_ROTL(v[3], 21); v[3] ^= v[0];
	v[2] += v[1]; v[1] = NQ_ROTL(v[1], 17); v[1] ^= v[2]; v[2] = NQ_ROTL(v[2], 32);
}

static uint64_t
nq_le64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void
nq_sip_word(uint64_t v[4], uint64_t m)
{
	v[3] ^= m;
	nq_sipround(v);
	v[0] ^= m;
}

static uint64_t
nq_rate_hash(const struct nq_rate *rt, sa_family_t family, const uint8_t addr[16])
{
	uint64_t v[4];
	int i;

	v[0] = rt->rt_key[0] ^ 0x736f6d6570736575ULL;
	v[1] = rt->rt_key[1] ^ 0x646f72616e646f6dULL;
	v[2] = rt->rt_key[0] ^ 0x6c7967656e657261ULL;
	v[3] = rt->rt_key[1] ^ 0x7465646279746573ULL;
	nq_sip_word(v, nq_le64(addr));
	nq_sip_word(v, nq_le64(addr + 8));
	nq_sip_word(v, (uint64_t)17 << 56 | (uint8_t)family);
	v[2] ^= 0xff;
	for (i = 0; i < 3; i++)
		nq_sipround(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* ---- the table ----------------------------------------------------------- */

struct nq_rate *
nq_rate_new(unsigned rate, unsigned per_s, size_t max_entries)
{
	struct nq_rate *rt;
	size_t nb, i;
	ssize_t n;

	if (rate == 0 || per_s == 0 || per_s > NQ_RATE_MAX_PER_S ||
	    max_entries == 0 || max_entries > NQ_RATE_MAX_ENTRIES) {
		errno = EINVAL;
		return NULL;
	}
	if ((rt = calloc(1, sizeof(*rt))) == NULL)
		return NULL;
	for (nb = 1; nb < max_entries; nb <<= 1)
		;
	rt->rt_ent = calloc(max_entries, sizeof(*rt->rt_ent));
	rt->rt_bucket = calloc(nb, sizeof(*rt->rt_bucket));
	if (rt->rt_ent == NULL || rt->rt_bucket == NULL) {
		nq_rate_free(rt);
		return NULL;
	}
	while ((n = getrandom(rt->rt_key, sizeof(rt->rt_key), 0)) != (ssize_t)sizeof(rt->rt_key)) {
		if (n == -1 && errno != EINTR) {
			nq_rate_free(rt);
			return NULL;
		}
	}
	for (i = 0; i < nb; i++)
		rt->rt_bucket[i] = NQ_RATE_NIL;
	rt->rt_mask = (uint32_t)(nb - 1);
	rt->rt_max = (uint32_t)max_entries;
	rt->rt_unit = (uint64_t)per_s * 1000;
	rt->rt_fill = rate;
	rt->rt_cap = (uint64_t)rate * rt->rt_unit;
	rt->rt_newest = rt->rt_oldest = NQ_RATE_NIL;
	return rt;
}

void
nq_rate_free(struct nq_rate *rt)
{
	if (rt == NULL)
		return;
	free(rt->rt_ent);
	free(rt->rt_bucket);
	free(rt);
}

size_t
nq_rate_count(const struct nq_rate *rt)
{
	return rt->rt_used;
}

uint64_t
nq_rate_evictions(const struct nq_rate *rt)
{
	return rt->rt_evictions;
}

/* The key of a client: 0, or -1 for a family that has none. */
static int
nq_rate_key(sa_family_t family, const uint8_t *addr, uint8_t key[16])
{
	memset(key, 0, 16);
	if (family == AF_INET)
		memcpy(key, addr, 4);
	else if (family == AF_INET6)
		memcpy(key, addr, 8);
	else
		return -1;
	return 0;
}

static uint32_t *
nq_rate_chain(struct nq_rate *rt, sa_family_t family, const uint8_t key[16])
{
	return &rt->rt_bucket[nq_rate_hash(rt, family, key) & rt->rt_mask];
}

static uint32_t
nq_rate_find(struct nq_rate *rt, sa_family_t family, const uint8_t key[16])
{
	uint32_t i = *nq_rate_chain(rt, family, key);

	while (i != NQ_RATE_NIL &&
	    (rt->rt_ent[i].re_family != family || memcmp(rt->rt_ent[i].re_addr, key, 16) != 0))
		i = rt->rt_ent[i].re_hnext;
	return i;
}

static void
nq_rate_lru_unlink(struct nq_rate *rt, uint32_t i)
{
	struct nq_rate_ent *e = &rt->rt_ent[i];

	if (e->re_newer != NQ_RATE_NIL)
		rt->rt_ent[e->re_newer].re_older = e->re_older;
	else
		rt->rt_newest = e->re_older;
	if (e->re_older != NQ_RATE_NIL)
		rt->rt_ent[e->re_older].re_newer = e->re_newer;
	else
		rt->rt_oldest = e->re_newer;
}

static void
nq_rate_lru_push(struct nq_rate *rt, uint32_t i)
{
	struct nq_rate_ent *e = &rt->rt_ent[i];

	e->re_newer = NQ_RATE_NIL;
	e->re_older = rt->rt_newest;
	if (rt->rt_newest != NQ_RATE_NIL)
		rt->rt_ent[rt->rt_newest].re_newer = i;
	else
		rt->rt_oldest = i;
	rt->rt_newest = i;
}

/* Take entry i out of its hash chain. */
static void
nq_rate_unhash(struct nq_rate *rt, uint32_t i)
{
	struct nq_rate_ent *e = &rt->rt_ent[i];
	uint32_t *p = nq_rate_chain(rt, e->re_family, e->re_addr);

	while (*p != i)
		p = &rt->rt_ent[*p].re_hnext;
	*p = e->re_hnext;
}

/* A free entry: a never-used one, or the least recently seen client's. */
static uint32_t
nq_rate_alloc(struct nq_rate *rt)
{
	uint32_t i;

	if (rt->rt_used < rt->rt_max)
		return rt->rt_used++;
	i = rt->rt_oldest;
	nq_rate_lru_unlink(rt, i);
	nq_rate_unhash(rt, i);
	rt->rt_evictions++;
	return i;
}

static void
nq_rate_refill(const struct nq_rate *rt, struct nq_rate_ent *e, uint64_t now_ms)
{
	uint64_t idle;

	if (now_ms <= e->re_last_ms)
		return;
	idle = now_ms - e->re_last_ms;
	e->re_last_ms = now_ms;
	if (idle >= rt->rt_unit)
		e->re_tokens = rt->rt_cap;
	else if ((e->re_tokens += idle * rt->rt_fill) > rt->rt_cap)
		e->re_tokens = rt->rt_cap;
}

int
nq_rate_take(struct nq_rate *rt, sa_family_t family, const uint8_t *addr, uint64_t now_ms)
{
	struct nq_rate_ent *e;
	uint8_t key[16];
	uint32_t i, *chain;

	if (nq_rate_key(family, addr, key) == -1)
		return 1;
	if ((i = nq_rate_find(rt, family, key)) != NQ_RATE_NIL) {
		e = &rt->rt_ent[i];
		nq_rate_lru_unlink(rt, i);
		nq_rate_refill(rt, e, now_ms);
	} else {
		i = nq_rate_alloc(rt);
		e = &rt->rt_ent[i];
		memcpy(e->re_addr, key, 16);
		e->re_family = family;
		e->re_tokens = rt->rt_cap;
		e->re_last_ms = now_ms;
		chain = nq_rate_chain(rt, family, key);
		e->re_hnext = *chain;
		*chain = i;
	}
	nq_rate_lru_push(rt, i);
	if (e->re_tokens < rt->rt_unit)
		return 0;
	e->re_tokens -= rt->rt_unit;
	return 1;
}
