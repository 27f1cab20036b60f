/*
 * eval.c: the decisions. rules_eval_rcpt is SPEC.md "The relay decision",
 * five steps in order, first decision wins; rules_eval_sender and
 * rules_eval_client are "first unexpired matching block rule refuses".
 *
 * The rules come from the ruleset's indexes (ruleset.c): the client's
 * path in a CIDR trie, the address's "@domain" and ".suffix" keys in the
 * sender map, plus the few sender globs with no key. Among the live rules
 * that match, the one with the smallest rn_seq decides, the first in file
 * order, as a linear scan would find it.
 *
 * Pure: no allocation, no I/O, no logging, no clock (the caller passes
 * `now`). The only write is the deciding rule's hit counter, a relaxed
 * atomic, since many worker threads evaluate one shared ruleset.
 */
#include <string.h>
#include <strings.h>

#include "rules_int.h"

static void
rules_verdict_set(struct rules_verdict *out, int accept, enum rules_reason reason,
    struct rules_node *n)
{
	out->accept = accept;
	out->reason = reason;
	out->rule = n != NULL ? &n->rn_rule : NULL;
	if (n != NULL)
		__atomic_fetch_add(&n->rn_rule.hits, 1, __ATOMIC_RELAXED);
}

/* Would n come before best (NULL: nothing yet)? */
static int
rules_before(const struct rules_node *n, const struct rules_node *best)
{
	return best == NULL || n->rn_seq < best->rn_seq;
}

/*
 * Walk a CIDR trie along the client's bits: the earliest live rule on the
 * way, whose domain pattern matches rcpt's domain if rcpt is given.
 */
static struct rules_node *
rules_trie_best(const struct rules_trie *t, const struct rules_addr *a, const struct rules_rcpt *rcpt,
    time_t now)
{
	unsigned bits = a->ra_family == AF_INET ? 32 : 128;
	struct rules_node *best = NULL;
	struct rules_node *const *v;
	size_t i, n;

	while (t != NULL && rules_prefix_eq(t->tr_addr, a->ra_addr, t->tr_plen)) {
		n = rules_rset_view(&t->tr_rules, &v);
		for (i = 0; i < n && rules_before(v[i], best); i++) {
			if (rules_node_live(v[i], now) && (rcpt == NULL ||
			    rules_domain_match(v[i]->rn_rule.pattern, v[i]->rn_plen, rcpt->domain,
			    rcpt->domain_len))) {
				best = v[i];
				break;
			}
		}
		if (t->tr_plen >= bits)
			break;
		t = t->tr_kid[rules_bit(a->ra_addr, t->tr_plen)];
	}
	return best;
}

static const struct rules_trie *
rules_trie_for(const struct ruleset *rs, enum rules_trie_kind k, const struct rules_addr *a)
{
	return rs->rs_trie[k][a->ra_family == AF_INET ? RULES_T_V4 : RULES_T_V6];
}

/* The bare, unquoted local part "postmaster", in any case (RFC 5321 4.5.1). */
static int
rules_is_postmaster(const struct rules_rcpt *rcpt)
{
	return rcpt->local_len == 10 && strncasecmp(rcpt->local, "postmaster", 10) == 0;
}

#define RULES_RCPT_TRICKS (RULES_RCPT_ROUTED | RULES_RCPT_PERCENT | RULES_RCPT_BANG | RULES_RCPT_AT)

/* Step 3's middle part: the first live allow relay rule for this client and domain. */
static struct rules_node *
rules_find_allow(const struct ruleset *rs, const struct rules_addr *client,
    const struct rules_rcpt *rcpt, time_t now)
{
	if (rs == NULL || rcpt->domain_len == 0)
		return NULL;
	return rules_trie_best(rules_trie_for(rs, RULES_T_RELAY, client), client, rcpt, now);
}

void
rules_eval_rcpt(const struct rules_policy *pol, const struct ruleset *rs,
    const struct sockaddr *client, int authenticated, const struct rules_rcpt *rcpt,
    time_t now, struct rules_verdict *out)
{
	struct rules_addr ca;
	int have_client, trusted;
	struct rules_node *n;
	const struct rules_domainset *local = pol != NULL ? pol->local_domains : NULL;

	have_client = rules_addr_from_sa(client, &ca) == 0;
	trusted = have_client && pol != NULL && rules_cidrset_match(pol->trusted, client);

	/*
	 * 1. postmaster. A source route in front of it is still a route: it
	 * goes on to step 2 like any routed address.
	 */
	if (rules_is_postmaster(rcpt) && !(rcpt->flags & RULES_RCPT_ROUTED) &&
	    (rcpt->domain_len == 0 || rules_domainset_match(local, rcpt->domain, rcpt->domain_len))) {
		rules_verdict_set(out, 1, RULES_R_POSTMASTER, NULL);
		return;
	}
	/* 2. routing tricks: an allow relay rule does not lift this */
	if ((rcpt->flags & RULES_RCPT_TRICKS) && !trusted && !authenticated) {
		rules_verdict_set(out, 0, RULES_R_ROUTING, NULL);
		return;
	}
	/* 3. who the client is */
	if (trusted) {
		rules_verdict_set(out, 1, RULES_R_TRUSTED, NULL);
		return;
	}
	if (have_client && (n = rules_find_allow(rs, &ca, rcpt, now)) != NULL) {
		rules_verdict_set(out, 1, RULES_R_ALLOW_RULE, n);
		return;
	}
	if (authenticated && pol != NULL && pol->auth_relay) {
		rules_verdict_set(out, 1, RULES_R_AUTH, NULL);
		return;
	}
	/* 4. where it goes */
	if (rules_domainset_match(local, rcpt->domain, rcpt->domain_len)) {
		rules_verdict_set(out, 1, RULES_R_LOCAL_DOMAIN, NULL);
		return;
	}
	/* 5. */
	rules_verdict_set(out, 0, RULES_R_RELAY, NULL);
}

/* The key of s (len bytes) equals the text at a, ASCII case aside (keys are lowercased). */
static int
rules_key_eq(const char *key, const char *a, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)key[i] != rules_lc((unsigned char)a[i]))
			return 0;
	return 1;
}

/* The earliest live rule of s whose key is addr[koff..] and whose glob matches addr. */
static struct rules_node *
rules_sender_probe(const struct rules_rset *s, const char *addr, size_t alen, size_t koff,
    time_t now, struct rules_node *best)
{
	struct rules_node *const *v;
	size_t i, n = s != NULL ? rules_rset_view(s, &v) : 0;

	for (i = 0; i < n && rules_before(v[i], best); i++) {
		const struct rules_node *r = v[i];

		if ((size_t)(r->rn_plen - r->rn_koff) == alen - koff &&
		    rules_key_eq(r->rn_rule.pattern + r->rn_koff, addr + koff, alen - koff) &&
		    rules_node_live(r, now) &&
		    rules_sender_match(r->rn_rule.pattern, r->rn_plen, addr, alen))
			return v[i];
	}
	return best;
}

void
rules_eval_sender(const struct ruleset *rs, const char *addr, size_t alen, time_t now,
    struct rules_verdict *out)
{
	struct rules_node *best = NULL;
	struct rules_node *const *v;
	uint64_t h = RULES_HASH_INIT;
	size_t i, n;

	if (rs == NULL) {
		rules_verdict_set(out, 1, RULES_R_NONE, NULL);
		return;
	}
	/*
	 * From the end: every ".suffix" of the domain, then "@domain" at the
	 * last '@', each hash one step further than the one before.
	 */
	for (i = alen; rs->rs_sender != NULL && i > 0; i--) {
		unsigned char c = (unsigned char)addr[i - 1];

		h = rules_hash_step(h, c);
		if (c == '.' || c == '@')
			best = rules_sender_probe(rules_hamt_get(rs->rs_sender, rules_hash_final(h)),
			    addr, alen, i - 1, now, best);
		if (c == '@')
			break;
	}
	n = rules_rset_view(&rs->rs_sender_scan, &v);
	for (i = 0; i < n && rules_before(v[i], best); i++) {
		if (rules_node_live(v[i], now) &&
		    rules_sender_match(v[i]->rn_rule.pattern, v[i]->rn_plen, addr, alen)) {
			best = v[i];
			break;
		}
	}
	if (best != NULL)
		rules_verdict_set(out, 0, RULES_R_SENDER_RULE, best);
	else
		rules_verdict_set(out, 1, RULES_R_NONE, NULL);
}

void
rules_eval_client(const struct ruleset *rs, const struct sockaddr *client, time_t now,
    struct rules_verdict *out)
{
	struct rules_node *best = NULL;
	struct rules_addr ca;

	if (rs != NULL && rules_addr_from_sa(client, &ca) == 0)
		best = rules_trie_best(rules_trie_for(rs, RULES_T_CLIENT, &ca), &ca, NULL, now);
	if (best != NULL)
		rules_verdict_set(out, 0, RULES_R_CLIENT_RULE, best);
	else
		rules_verdict_set(out, 1, RULES_R_NONE, NULL);
}

const char *
rules_reason_str(enum rules_reason r)
{
	switch (r) {
	case RULES_R_NONE:		return "none";
	case RULES_R_POSTMASTER:	return "postmaster";
	case RULES_R_TRUSTED:		return "trusted";
	case RULES_R_ALLOW_RULE:	return "allow_rule";
	case RULES_R_AUTH:		return "auth";
	case RULES_R_LOCAL_DOMAIN:	return "local_domain";
	case RULES_R_ROUTING:		return "routing";
	case RULES_R_RELAY:		return "relay";
	case RULES_R_SENDER_RULE:	return "sender";
	case RULES_R_CLIENT_RULE:	return "client";
	}
	return "unknown";
}
