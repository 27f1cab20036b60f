/*
 * rules_int.h: private to rules/. Shared by set.c, parse.c and eval.c.
 *
 * Owns the in-memory layout of a ruleset. Nothing outside rules/ includes it.
 *
 * Layout: a ruleset is a flat array, in file order, of pointers to rule
 * nodes. Each node is allocated on its own and carries its own reference
 * count, so a later "this ruleset plus/minus one rule" is: allocate n±1
 * pointers, copy them, take a reference on each shared node. No rule text
 * is copied or re-parsed, and a rule's hit counter lives in its node, so
 * the counts carry over from one generation to the next.
 */
#ifndef SMTPWALL_RULES_INT_H
#define SMTPWALL_RULES_INT_H

#include "rules.h"

struct rules_node {
	unsigned		 rn_refs;	/* atomic */
	size_t			 rn_plen;	/* strlen(rn_rule.pattern), so eval never calls strlen */
	struct rules_rule	 rn_rule;
};

struct ruleset {
	unsigned		 rs_refs;	/* atomic */
	size_t			 rs_n;
	struct rules_node	*rs_nodes[];	/* rs_n entries, file order */
};

/* Allocation helpers for the ruleset layout (parse.c). */
struct rules_node *rules_node_new(void);
void	rules_node_unref(struct rules_node *);
struct ruleset *rules_set_alloc(size_t n);	/* refcount 1, n NULL slots */

/*
 * Copy len bytes of s into dst (NUL-terminated, at most dsize) for an error
 * message: bytes outside printable ASCII become \xHH, and a long text is cut
 * with "...". Never fails; dsize >= 8.
 */
void	rules_esc(char *dst, size_t dsize, const char *s, size_t len);

/* Binary form of a client address, v4-mapped IPv6 folded to IPv4. 0, or -1 if not AF_INET/AF_INET6. */
struct rules_addr {
	uint8_t	ra_family;
	uint8_t	ra_addr[16];
};
int	rules_addr_from_sa(const struct sockaddr *sa, struct rules_addr *out);
int	rules_cidr_match_addr(const struct rules_cidr *c, const struct rules_addr *a);

/*
 * Validate a domain pattern and write its canonical form (lowercased name, or
 * "[a.b.c.d]" / "[IPv6:...]" as inet_ntop prints the address) into out.
 * 0, or -1 with err set.
 */
int	rules_domain_pattern_norm(const char *s, size_t len, char out[RULES_PATTERN_MAX],
	    char err[RULES_ERR_LEN]);

/* ASCII-only lowercase: bytes >= 0x80 are left alone. */
static inline int
rules_lc(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

#endif
