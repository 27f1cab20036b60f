/*
 * rules_int.h: private to rules/. Shared by set.c, parse.c, tree.c,
 * ruleset.c and eval.c. Nothing outside rules/ includes it.
 *
 * Memory at 10^6 rules (tests/bench): a sender rule's node is one 128-byte
 * malloc chunk with its pattern; the order B+tree adds ~9 bytes a rule, the
 * sender map ~20 bytes a key, the CIDR tries up to two 48-byte nodes a
 * prefix: ~177 bytes a rule for the mix of `make bench`.
 *
 * Owns the in-memory layout of a ruleset: rule nodes and the persistent
 * (immutable, structure-sharing, reference-counted) trees that order and
 * index them. ruleset.c explains why these trees; tree.c implements them.
 *
 * Ownership, everywhere: a pointer stored in a tree slot owns one reference
 * to what it points at. The tree functions below take a slot by address,
 * and replace what it holds: a node whose count is 1 is reachable only
 * through that slot, so it is changed in place; a shared one is copied
 * first (path copying). A function that fails (ENOMEM, -1) leaves the slot
 * holding a valid tree with the same contents.
 */
#ifndef SMTPWALL_RULES_INT_H
#define SMTPWALL_RULES_INT_H

#include "rules.h"

/* ---- reference counts (atomic: rulesets are dropped by any worker thread) - */

static inline void
rules_ref_up(uint32_t *r)
{
	__atomic_fetch_add(r, 1, __ATOMIC_RELAXED);
}

/* 1 when that was the last reference. */
static inline int
rules_ref_down(uint32_t *r)
{
	return __atomic_sub_fetch(r, 1, __ATOMIC_ACQ_REL) == 0;
}

/*
 * 1 if the caller's reference is the only one, so the object may be changed
 * in place: nobody else can reach it, nor take a new reference to it.
 */
static inline int
rules_ref_unique(uint32_t *r)
{
	return __atomic_load_n(r, __ATOMIC_ACQUIRE) == 1;
}

/* ---- rule nodes ---------------------------------------------------------- */

#define RULES_NOKEY	255	/* rn_koff of a sender glob with no literal domain */

/*
 * One rule, shared by every ruleset (and every index) that holds it; only
 * rn_rule.hits ever changes. One allocation: the struct, then rn_str with
 * the text that stood before the rule in its file (rn_prelen bytes, not
 * terminated), then its strings. Empty strings point to a shared "".
 */
struct rules_node {
	struct rules_rule	 rn_rule;
	uint64_t		 rn_seq;	/* insertion order: file order, and which rule decides */
	uint32_t		 rn_prelen;
	uint32_t		 rn_refs;	/* atomic */
	uint16_t		 rn_plen;	/* strlen(rn_rule.pattern), so eval never calls strlen */
	uint8_t			 rn_koff;	/* sender: index key = pattern + rn_koff; or RULES_NOKEY */
	char			 rn_str[];
};

/*
 * A node for r (already checked and normalized: see rules_rule_norm), whose
 * inline comment is lc (lclen bytes; r->line_comment is ignored) and which
 * had pre (prelen bytes) before it in its file. Refcount 1. NULL on ENOMEM.
 */
struct rules_node *rules_node_new(const struct rules_rule *r, const char *lc, size_t lclen,
	    const char *pre, size_t prelen, uint64_t seq, uint64_t hits);
void	rules_node_ref(struct rules_node *);
void	rules_node_unref(struct rules_node *);

static inline int
rules_node_live(const struct rules_node *n, time_t now)
{
	return n->rn_rule.until == 0 || n->rn_rule.until > now;
}

/* ---- sets of rules sharing one index key ----------------------------------- */

/*
 * A set of rules in rn_seq order. Nearly always one rule, held directly;
 * more are held in a refcounted bucket, the pointer then tagged with bit 0.
 */
struct rules_rset {
	struct rules_node	*rr_p;		/* NULL: empty */
};

struct rules_bucket {
	uint32_t		 bk_refs;	/* atomic */
	uint32_t		 bk_n;
	struct rules_node	*bk_v[];	/* by rn_seq */
};

/* The rules of s as an array of n entries (*v valid while s is unchanged). */
static inline size_t
rules_rset_view(const struct rules_rset *s, struct rules_node *const **v)
{
	uintptr_t p = (uintptr_t)s->rr_p;

	*v = NULL;
	if (p == 0)
		return 0;
	if (p & 1) {
		const struct rules_bucket *b = (const struct rules_bucket *)(p & ~(uintptr_t)1);

		*v = b->bk_v;
		return b->bk_n;
	}
	*v = &s->rr_p;
	return 1;
}

int	rules_rset_add(struct rules_rset *, struct rules_node *);	/* takes a reference on n */
int	rules_rset_del(struct rules_rset *, const struct rules_node *);	/* n must be in it */
int	rules_rset_swap(struct rules_rset *, const struct rules_node *old, struct rules_node *n);
void	rules_rset_ref(const struct rules_rset *);
void	rules_rset_drop(struct rules_rset *);

/* ---- the order: a persistent counted B+tree keyed by rn_seq ------------- */

struct rules_bt;

int	rules_bt_append(struct rules_bt **, struct rules_node *);	/* n's seq above all */
int	rules_bt_del(struct rules_bt **, uint64_t seq);			/* must be there */
int	rules_bt_swap(struct rules_bt **, uint64_t seq, struct rules_node *);
void	rules_bt_ref(struct rules_bt *);
void	rules_bt_drop(struct rules_bt **);
struct rules_node *rules_bt_get(const struct rules_bt *, size_t i);
time_t	rules_bt_next_expiry(const struct rules_bt *);			/* 0: none */
struct rules_node *rules_bt_expired(const struct rules_bt *, time_t now);	/* one with until <= now */
int	rules_bt_walk(const struct rules_bt *, int (*fn)(void *, const struct rules_node *), void *arg);

/* ---- sender keys: a persistent hash array mapped trie (CHAMP) ------------ */

struct rules_hamt;

/* Hash of a key, computed from its end so that every suffix comes in one pass. */
#define RULES_HASH_INIT		0xcbf29ce484222325ULL

static inline uint64_t
rules_hash_step(uint64_t h, unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		c = (unsigned char)(c + ('a' - 'A'));
	return (h ^ c) * 0x100000001b3ULL;
}

static inline uint64_t
rules_hash_final(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	return h ^ (h >> 33);
}

/* Offset of a sender glob's index key in its pattern (see ruleset.c), or RULES_NOKEY. */
unsigned rules_sender_key(const char *pattern, size_t plen);
uint64_t rules_sender_key_hash(const struct rules_node *);
int	rules_hamt_put(struct rules_hamt **, uint64_t hash, struct rules_node *);
int	rules_hamt_del(struct rules_hamt **, uint64_t hash, const struct rules_node *);
int	rules_hamt_swap(struct rules_hamt **, uint64_t hash, const struct rules_node *old,
	    struct rules_node *n);
void	rules_hamt_ref(struct rules_hamt *);
void	rules_hamt_drop(struct rules_hamt **);
const struct rules_rset *rules_hamt_get(const struct rules_hamt *, uint64_t hash);

/* ---- client addresses: a persistent path-compressed binary trie --------- */

struct rules_trie {
	uint32_t		 tr_refs;	/* atomic */
	uint8_t			 tr_plen;	/* prefix length in bits */
	uint8_t			 tr_alen;	/* 4 or 16 */
	struct rules_rset	 tr_rules;	/* rules for exactly this prefix */
	struct rules_trie	*tr_kid[2];	/* by the bit after the prefix */
	uint8_t			 tr_addr[];	/* tr_alen bytes, zero past tr_plen */
};

static inline unsigned
rules_bit(const uint8_t *a, unsigned i)
{
	return (a[i / 8] >> (7 - i % 8)) & 1;
}

int	rules_trie_put(struct rules_trie **, const uint8_t *addr, unsigned plen, unsigned alen,
	    struct rules_node *);
int	rules_trie_del(struct rules_trie **, const uint8_t *addr, unsigned plen,
	    const struct rules_node *);
int	rules_trie_swap(struct rules_trie **, const uint8_t *addr, unsigned plen,
	    const struct rules_node *old, struct rules_node *n);
void	rules_trie_ref(struct rules_trie *);
void	rules_trie_drop(struct rules_trie **);
const struct rules_rset *rules_trie_find(const struct rules_trie *, const uint8_t *addr,
	    unsigned plen);
int	rules_prefix_eq(const uint8_t *a, const uint8_t *b, unsigned prefix);

/* ---- the ruleset ---------------------------------------------------------- */

enum rules_trie_kind { RULES_T_CLIENT = 0, RULES_T_RELAY, RULES_T_N };
enum rules_trie_fam { RULES_T_V4 = 0, RULES_T_V6, RULES_T_FAMS };

struct rules_text {
	uint32_t		 tx_refs;	/* atomic */
	uint32_t		 tx_len;
	char			 tx_s[];
};

struct ruleset {
	uint32_t		 rs_refs;	/* atomic */
	size_t			 rs_n;
	uint64_t		 rs_seq;	/* the next rule's rn_seq */
	struct rules_bt		*rs_order;	/* every rule, by rn_seq */
	struct rules_hamt	*rs_sender;	/* block sender, by literal domain key */
	struct rules_rset	 rs_sender_scan;	/* block sender globs with no key */
	struct rules_trie	*rs_trie[RULES_T_N][RULES_T_FAMS];
	struct rules_text	*rs_head;	/* the file's header: see rules_parse */
	struct rules_text	*rs_tail;	/* text after the last rule */
};

/* Where a CIDR lives in the tries: v4-mapped IPv6 blocks of /96 and longer are IPv4. */
void	rules_trie_key(const struct rules_cidr *c, enum rules_trie_fam *fam, const uint8_t **addr,
	    unsigned *plen);

/* For building (rules_parse): rs has refcount 1 and is not yet shared. */
struct ruleset *rules_set_new(void);
const struct rules_node *rules_set_find(const struct ruleset *, const struct rules_rule *);
int	rules_set_push(struct ruleset *, struct rules_node *);		/* takes a reference */
int	rules_set_text(struct ruleset *, int tail, const char *text, size_t len);	/* head or tail */

/* ---- the language (parse.c) ------------------------------------------------ */

/*
 * Check r as rules_parse would have checked its line, and write its
 * canonical pattern (lowercased glob, normalized domain pattern) into pat:
 * *out is r with pattern = pat and no NULL strings. 0, or -1 with err set.
 */
int	rules_rule_norm(const struct rules_rule *r, struct rules_rule *out,
	    char pat[RULES_PATTERN_MAX], char err[RULES_ERR_LEN]);

/* ---- helpers (set.c) -------------------------------------------------------- */

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
