/*
 * climap.c: per-client-address session counts (see climap.h).
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "climap.h"

#define CLIMAP_BUCKETS	4096	/* power of two */

struct climap_ent {
	struct climap_ent	*next;
	uint8_t			 key[16];	/* IPv6, or IPv4 as v4-mapped */
	unsigned long		 count;
};

struct climap {
	struct climap_ent	*b[CLIMAP_BUCKETS];
};

static void
climap_key(const struct sockaddr *sa, uint8_t key[16])
{
	memset(key, 0, 16);
	if (sa->sa_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		return;
	}
	key[10] = key[11] = 0xff;
	memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
}

static unsigned
climap_hash(const uint8_t key[16])
{
	uint32_t h = 2166136261u;	/* FNV-1a */
	int i;

	for (i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	return h & (CLIMAP_BUCKETS - 1);
}

static struct climap_ent **
climap_find(struct climap *m, const uint8_t key[16])
{
	struct climap_ent **pp = &m->b[climap_hash(key)];

	while (*pp != NULL && memcmp((*pp)->key, key, 16) != 0)
		pp = &(*pp)->next;
	return pp;
}

struct climap *
climap_new(void)
{
	return calloc(1, sizeof(struct climap));
}

void
climap_free(struct climap *m)
{
	struct climap_ent *e, *next;
	unsigned i;

	if (m == NULL)
		return;
	for (i = 0; i < CLIMAP_BUCKETS; i++)
		for (e = m->b[i]; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	free(m);
}

long
climap_inc(struct climap *m, const struct sockaddr *sa)
{
	uint8_t key[16];
	struct climap_ent **pp, *e;

	climap_key(sa, key);
	pp = climap_find(m, key);
	if ((e = *pp) == NULL) {
		if ((e = calloc(1, sizeof(*e))) == NULL)
			return -1;
		memcpy(e->key, key, 16);
		*pp = e;
	}
	return (long)++e->count;
}

void
climap_dec(struct climap *m, const struct sockaddr *sa)
{
	uint8_t key[16];
	struct climap_ent **pp, *e;

	climap_key(sa, key);
	pp = climap_find(m, key);
	if ((e = *pp) == NULL)
		return;
	if (--e->count == 0) {
		*pp = e->next;
		free(e);
	}
}

unsigned long
climap_get(const struct climap *m, const struct sockaddr *sa)
{
	uint8_t key[16];
	struct climap_ent **pp;

	climap_key(sa, key);
	pp = climap_find((struct climap *)(uintptr_t)m, key);
	return *pp ? (*pp)->count : 0;
}
