/*
 * eval.c: the decisions. rules_eval_rcpt is SPEC.md "The relay decision",
 * five steps in order, first decision wins; rules_eval_sender and
 * rules_eval_client are "first unexpired matching block rule refuses".
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

static int
rules_live(const struct rules_node *n, enum rules_kind kind, time_t now)
{
	return n->rn_rule.kind == kind && (n->rn_rule.until == 0 || n->rn_rule.until > now);
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
	size_t i;

	if (rs == NULL)
		return NULL;
	for (i = 0; i < rs->rs_n; i++) {
		struct rules_node *n = rs->rs_nodes[i];

		if (rules_live(n, RULES_ALLOW_RELAY, now) &&
		    rules_cidr_match_addr(&n->rn_rule.cidr, client) &&
		    rules_domain_match(n->rn_rule.pattern, n->rn_plen, rcpt->domain, rcpt->domain_len))
			return n;
	}
	return NULL;
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

void
rules_eval_sender(const struct ruleset *rs, const char *addr, size_t alen, time_t now,
    struct rules_verdict *out)
{
	size_t i;

	for (i = 0; rs != NULL && i < rs->rs_n; i++) {
		struct rules_node *n = rs->rs_nodes[i];

		if (rules_live(n, RULES_BLOCK_SENDER, now) &&
		    rules_sender_match(n->rn_rule.pattern, n->rn_plen, addr, alen)) {
			rules_verdict_set(out, 0, RULES_R_SENDER_RULE, n);
			return;
		}
	}
	rules_verdict_set(out, 1, RULES_R_NONE, NULL);
}

void
rules_eval_client(const struct ruleset *rs, const struct sockaddr *client, time_t now,
    struct rules_verdict *out)
{
	struct rules_addr ca;
	size_t i;

	if (rules_addr_from_sa(client, &ca) == 0) {
		for (i = 0; rs != NULL && i < rs->rs_n; i++) {
			struct rules_node *n = rs->rs_nodes[i];

			if (rules_live(n, RULES_BLOCK_CLIENT, now) &&
			    rules_cidr_match_addr(&n->rn_rule.cidr, &ca)) {
				rules_verdict_set(out, 0, RULES_R_CLIENT_RULE, n);
				return;
			}
		}
	}
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
