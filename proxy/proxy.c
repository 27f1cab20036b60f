/*
 * proxy.c: the part of struct proxy that every worker thread shares (see
 * proxy.h): the configuration and rules pointers, the session slots.
 *
 * One mutex, held for a few instructions: a reference taken, a count
 * checked and bumped. Nothing here waits for anything else while holding
 * it, and the old generation is freed outside it.
 */
#include "climap.h"
#include "proxy.h"

struct pxconf *
px_conf(struct proxy *px)
{
	struct pxconf *c;

	pthread_mutex_lock(&px->mu);
	c = pxconf_ref(px->conf);
	pthread_mutex_unlock(&px->mu);
	return c;
}

struct ruleset *
px_rules(struct proxy *px)
{
	struct ruleset *rs;

	pthread_mutex_lock(&px->mu);
	rs = rules_ref(px->rules);
	pthread_mutex_unlock(&px->mu);
	return rs;
}

void
px_swap(struct proxy *px, struct pxconf *nc, struct ruleset *rs)
{
	struct pxconf *old_conf = NULL;
	struct ruleset *old_rules = NULL;

	pthread_mutex_lock(&px->mu);
	if (nc != NULL) {
		old_conf = px->conf;
		px->conf = nc;
	}
	if (rs != NULL) {
		old_rules = px->rules;
		px->rules = rs;
	}
	pthread_mutex_unlock(&px->mu);
	/* Outside the lock: a large ruleset's free must not stall the workers. */
	pxconf_unref(old_conf);
	rules_unref(old_rules);
}

int
px_slot_take(struct proxy *px, const struct pxconf *conf, const struct sockaddr *peer,
    const char **limit)
{
	int rc = -1;

	pthread_mutex_lock(&px->mu);
	if (__atomic_load_n(&px->nsessions, __ATOMIC_RELAXED) >= conf->cf.max_sessions)
		*limit = "max_sessions";
	else if (climap_get(px->clients, peer) >= conf->cf.max_sessions_per_client)
		*limit = "max_sessions_per_client";
	else {
		/* A failed count (ENOMEM) lets the session in: the limit is a guard, not the service. */
		(void)climap_inc(px->clients, peer);
		__atomic_fetch_add(&px->nsessions, 1, __ATOMIC_RELAXED);
		rc = 0;
	}
	pthread_mutex_unlock(&px->mu);
	return rc;
}

void
px_slot_release(struct proxy *px, const struct sockaddr *peer)
{
	pthread_mutex_lock(&px->mu);
	climap_dec(px->clients, peer);
	__atomic_fetch_sub(&px->nsessions, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&px->mu);
}

unsigned
px_nsessions(const struct proxy *px)
{
	return __atomic_load_n(&px->nsessions, __ATOMIC_RELAXED);
}

uint64_t
px_next_id(struct proxy *px)
{
	return px->id_base + __atomic_fetch_add(&px->id_next, 1, __ATOMIC_RELAXED);
}
