/*
 * ruleset.c: the live ruleset as a persistent data structure. Owns its
 * lifetime (ref/unref), the changes (rules_add, rules_remove, rules_expire:
 * each returns a new ruleset sharing all but O(log n) of the old one, which
 * stays valid and unchanged), the reads (rules_count, rules_get,
 * rules_next_expiry) and rules_write. rules_parse (parse.c) builds through
 * rules_set_new/rules_set_push; the decisions (eval.c) read the indexes.
 *
 * Design. Every rule is a node allocated once with its strings and a
 * sequence number (rn_seq: file order for a parsed file, then one more for
 * each rule added), reference-counted and shared by every ruleset and index
 * that holds it, so its hit counter outlives any change that keeps it. When
 * several rules match, the smallest rn_seq decides: the first in the file,
 * as in a linear scan. Four trees hold the nodes (tree.c), each persistent
 * by path copying, each node refcounted so that dropping an old ruleset
 * frees only what no newer one shares:
 *
 * - order: a B+tree of 32-way nodes keyed by rn_seq, each inner node
 *   knowing its children's rule counts, first seq and earliest until=.
 *   rules_get(i) and a change are O(log n) (4 levels at 10^6 rules);
 *   rules_count is O(1); the earliest expiry is read at the root and the
 *   expired rules are found without a scan. Chosen over a binary balanced
 *   tree for memory: ~9 bytes a rule instead of a 48-byte node per rule,
 *   and appends (the only way rules arrive) keep leaves full.
 *
 * - block sender: a sender glob's literal tail (what follows its last '*'
 *   or '?') pins where a matching address ends. If that tail holds an '@',
 *   the address's domain is the text after it: the key is "@domain"
 *   ("*@spam.example", "joe@example.com"). Otherwise the address's domain
 *   ends with the tail, so with the tail's part from its first '.': the
 *   key is ".suffix" ("*@*.spam.example" -> ".spam.example"). The keys go
 *   into a hash array mapped trie (CHAMP layout, persistent, ~20 bytes a
 *   key, no rebalancing). A lookup hashes the address from its end, so the
 *   hashes of "@domain" and of every ".suffix" of the domain come out of one
 *   pass: at most labels + 1 probes, whatever the number of rules; each
 *   candidate is then matched as a glob. Globs with no key ("*", "spam*@*",
 *   "<>") are in one list, scanned.
 *
 * - block client and allow relay: path-compressed binary tries over the
 *   address bits, one per family (v4-mapped IPv6 blocks of /96 or longer
 *   are stored as the IPv4 blocks they name, since IPv4 clients are folded
 *   to IPv4). A lookup walks the client's bits, at most 32 or 128 steps,
 *   collecting the rules on the way; for allow relay each one's domain
 *   pattern is then checked. n prefixes cost at most 2n nodes.
 *
 * Measured by tests/bench/bench_rules.c (`make bench`) at 10^6 rules of
 * its mix: load 1.1-1.6 s, 177 bytes a rule, rules_add ~5 us (p99 under
 * 20 us), a MAIL lookup 0.5-0.7 us and a RCPT 0.9-1.2 us, where the linear
 * scan this replaced took 40-60 ms and 6-12 ms.
 *
 * Never logs, never does I/O except through rules_write's callback.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "rules_int.h"

static const char rules_nostr[] = "";

/* ---- rule nodes ------------------------------------------------------------ */

struct rules_node *
rules_node_new(const struct rules_rule *r, const char *lc, size_t lclen, const char *pre,
    size_t prelen, uint64_t seq, uint64_t hits)
{
	size_t plen = strlen(r->pattern), clen = strlen(r->comment), size;
	struct rules_node *n;
	char *p;

	if (prelen > UINT32_MAX || plen > UINT16_MAX) {
		errno = ENOMEM;
		return NULL;
	}
	size = offsetof(struct rules_node, rn_str) + prelen + plen + 1 +
	    (clen > 0 ? clen + 1 : 0) + (lclen > 0 ? lclen + 1 : 0);
	if (size < sizeof *n)
		size = sizeof *n;
	if ((n = malloc(size)) == NULL)
		return NULL;
	n->rn_rule = *r;
	p = n->rn_str;
	if (prelen > 0)
		memcpy(p, pre, prelen);
	p += prelen;
	memcpy(p, r->pattern, plen + 1);
	n->rn_rule.pattern = p;
	p += plen + 1;
	n->rn_rule.comment = rules_nostr;
	if (clen > 0) {
		memcpy(p, r->comment, clen + 1);
		n->rn_rule.comment = p;
		p += clen + 1;
	}
	n->rn_rule.line_comment = rules_nostr;
	if (lclen > 0) {
		memcpy(p, lc, lclen);
		p[lclen] = '\0';
		n->rn_rule.line_comment = p;
	}
	n->rn_rule.hits = hits;
	n->rn_seq = seq;
	n->rn_prelen = (uint32_t)prelen;
	n->rn_refs = 1;
	n->rn_plen = (uint16_t)plen;
	n->rn_koff = (uint8_t)(r->kind == RULES_BLOCK_SENDER ? rules_sender_key(n->rn_rule.pattern, plen) :
	    RULES_NOKEY);
	return n;
}

void
rules_node_ref(struct rules_node *n)
{
	rules_ref_up(&n->rn_refs);
}

void
rules_node_unref(struct rules_node *n)
{
	if (n != NULL && rules_ref_down(&n->rn_refs))
		free(n);
}

/* ---- index keys ------------------------------------------------------------ */

unsigned
rules_sender_key(const char *p, size_t plen)
{
	size_t t = plen, i;

	if (plen == 2 && p[0] == '<' && p[1] == '>')
		return RULES_NOKEY;
	while (t > 0 && p[t - 1] != '*' && p[t - 1] != '?')
		t--;
	for (i = plen; i > t; i--)
		if (p[i - 1] == '@')
			return (unsigned)(i - 1);
	for (i = t; i < plen; i++)
		if (p[i] == '.')
			return (unsigned)i;
	return RULES_NOKEY;
}

static uint64_t
rules_key_hash(const char *k, size_t len)
{
	uint64_t h = RULES_HASH_INIT;

	while (len > 0)
		h = rules_hash_step(h, (unsigned char)k[--len]);
	return rules_hash_final(h);
}

uint64_t
rules_sender_key_hash(const struct rules_node *n)
{
	return rules_key_hash(n->rn_rule.pattern + n->rn_koff, (size_t)(n->rn_plen - n->rn_koff));
}

void
rules_trie_key(const struct rules_cidr *c, enum rules_trie_fam *fam, const uint8_t **addr,
    unsigned *plen)
{
	static const uint8_t mapped[12] = { 0,0,0,0, 0,0,0,0, 0,0,0xff,0xff };

	if (c->family == AF_INET) {
		*fam = RULES_T_V4;
		*addr = c->addr;
		*plen = c->prefix;
	} else if (c->prefix >= 96 && memcmp(c->addr, mapped, sizeof mapped) == 0) {
		*fam = RULES_T_V4;
		*addr = c->addr + 12;
		*plen = c->prefix - 96u;
	} else {
		*fam = RULES_T_V6;
		*addr = c->addr;
		*plen = c->prefix;
	}
}

enum rules_op { RULES_OP_ADD, RULES_OP_DEL, RULES_OP_SWAP };

/* Add n, delete old, or put n in old's place (same rule, same key), in the index of its kind. */
static int
rules_index(struct ruleset *rs, enum rules_op op, const struct rules_node *old, struct rules_node *n)
{
	const struct rules_node *key = op == RULES_OP_ADD ? n : old;
	enum rules_trie_fam fam;
	struct rules_trie **tp;
	const uint8_t *a;
	unsigned plen;
	uint64_t h;

	if (key->rn_rule.kind == RULES_BLOCK_SENDER && key->rn_koff == RULES_NOKEY) {
		switch (op) {
		case RULES_OP_ADD:	return rules_rset_add(&rs->rs_sender_scan, n);
		case RULES_OP_DEL:	return rules_rset_del(&rs->rs_sender_scan, old);
		case RULES_OP_SWAP:	return rules_rset_swap(&rs->rs_sender_scan, old, n);
		}
		return -1;
	}
	if (key->rn_rule.kind == RULES_BLOCK_SENDER) {
		h = rules_sender_key_hash(key);
		switch (op) {
		case RULES_OP_ADD:	return rules_hamt_put(&rs->rs_sender, h, n);
		case RULES_OP_DEL:	return rules_hamt_del(&rs->rs_sender, h, old);
		case RULES_OP_SWAP:	return rules_hamt_swap(&rs->rs_sender, h, old, n);
		}
		return -1;
	}
	rules_trie_key(&key->rn_rule.cidr, &fam, &a, &plen);
	tp = &rs->rs_trie[key->rn_rule.kind == RULES_BLOCK_CLIENT ? RULES_T_CLIENT : RULES_T_RELAY][fam];
	switch (op) {
	case RULES_OP_ADD:	return rules_trie_put(tp, a, plen, fam == RULES_T_V4 ? 4 : 16, n);
	case RULES_OP_DEL:	return rules_trie_del(tp, a, plen, old);
	case RULES_OP_SWAP:	return rules_trie_swap(tp, a, plen, old, n);
	}
	return -1;
}

/* ---- lifetime ------------------------------------------------------------------ */

static void
rules_text_unref(struct rules_text *t)
{
	if (t != NULL && rules_ref_down(&t->tx_refs))
		free(t);
}

struct ruleset *
rules_set_new(void)
{
	struct ruleset *rs = calloc(1, sizeof *rs);

	if (rs == NULL)
		return NULL;
	rs->rs_refs = 1;
	rs->rs_seq = 1;
	return rs;
}

/* A new ruleset (refcount 1) sharing everything with rs (NULL: empty). */
static struct ruleset *
rules_set_clone(const struct ruleset *rs)
{
	struct ruleset *c;
	size_t k, f;

	if (rs == NULL)
		return rules_set_new();
	if ((c = malloc(sizeof *c)) == NULL)
		return NULL;
	/* field by field: rs_refs is changing under other threads' feet */
	c->rs_refs = 1;
	c->rs_n = rs->rs_n;
	c->rs_seq = rs->rs_seq;
	c->rs_order = rs->rs_order;
	c->rs_sender = rs->rs_sender;
	c->rs_sender_scan = rs->rs_sender_scan;
	memcpy(c->rs_trie, rs->rs_trie, sizeof c->rs_trie);
	c->rs_head = rs->rs_head;
	c->rs_tail = rs->rs_tail;
	rules_bt_ref(c->rs_order);
	rules_hamt_ref(c->rs_sender);
	rules_rset_ref(&c->rs_sender_scan);
	for (k = 0; k < RULES_T_N; k++)
		for (f = 0; f < RULES_T_FAMS; f++)
			rules_trie_ref(c->rs_trie[k][f]);
	if (c->rs_head != NULL)
		rules_ref_up(&c->rs_head->tx_refs);
	if (c->rs_tail != NULL)
		rules_ref_up(&c->rs_tail->tx_refs);
	return c;
}

struct ruleset *
rules_empty(void)
{
	return rules_set_new();
}

struct ruleset *
rules_ref(struct ruleset *rs)
{
	if (rs != NULL)
		rules_ref_up(&rs->rs_refs);
	return rs;
}

void
rules_unref(struct ruleset *rs)
{
	size_t k, f;

	if (rs == NULL || !rules_ref_down(&rs->rs_refs))
		return;
	rules_bt_drop(&rs->rs_order);
	rules_hamt_drop(&rs->rs_sender);
	rules_rset_drop(&rs->rs_sender_scan);
	for (k = 0; k < RULES_T_N; k++)
		for (f = 0; f < RULES_T_FAMS; f++)
			rules_trie_drop(&rs->rs_trie[k][f]);
	rules_text_unref(rs->rs_head);
	rules_text_unref(rs->rs_tail);
	free(rs);
}

size_t
rules_count(const struct ruleset *rs)
{
	return rs != NULL ? rs->rs_n : 0;
}

const struct rules_rule *
rules_get(const struct ruleset *rs, size_t i)
{
	const struct rules_node *n = rs != NULL ? rules_bt_get(rs->rs_order, i) : NULL;

	return n != NULL ? &n->rn_rule : NULL;
}

time_t
rules_next_expiry(const struct ruleset *rs)
{
	return rs != NULL ? rules_bt_next_expiry(rs->rs_order) : 0;
}

/* ---- building and changing ---------------------------------------------------- */

const struct rules_node *
rules_set_find(const struct ruleset *rs, const struct rules_rule *r)
{
	const struct rules_rset *s;
	struct rules_node *const *v;
	size_t n, i;

	if (rs == NULL)
		return NULL;
	if (r->kind == RULES_BLOCK_SENDER) {
		size_t plen = strlen(r->pattern);
		unsigned k = rules_sender_key(r->pattern, plen);

		s = k == RULES_NOKEY ? &rs->rs_sender_scan :
		    rules_hamt_get(rs->rs_sender, rules_key_hash(r->pattern + k, plen - k));
	} else {
		enum rules_trie_fam fam;
		const uint8_t *a;
		unsigned plen;

		rules_trie_key(&r->cidr, &fam, &a, &plen);
		s = rules_trie_find(rs->rs_trie[r->kind == RULES_BLOCK_CLIENT ? RULES_T_CLIENT :
		    RULES_T_RELAY][fam], a, plen);
	}
	if (s == NULL)
		return NULL;
	n = rules_rset_view(s, &v);
	for (i = 0; i < n; i++)
		if (rules_rule_same(&v[i]->rn_rule, r))
			return v[i];
	return NULL;
}

/* n (whose rn_seq is rs_seq) after every rule. On -1 rs is half-changed: drop it. */
int
rules_set_push(struct ruleset *rs, struct rules_node *n)
{
	if (rules_bt_append(&rs->rs_order, n) == -1 || rules_index(rs, RULES_OP_ADD, NULL, n) == -1)
		return -1;
	rs->rs_n++;
	rs->rs_seq = n->rn_seq + 1;
	return 0;
}

int
rules_set_text(struct ruleset *rs, int tail, const char *text, size_t len)
{
	struct rules_text **tp = tail ? &rs->rs_tail : &rs->rs_head;
	struct rules_text *t = NULL;

	if (len > UINT32_MAX) {
		errno = ENOMEM;
		return -1;
	}
	if (len > 0) {
		if ((t = malloc(sizeof *t + len)) == NULL)
			return -1;
		t->tx_refs = 1;
		t->tx_len = (uint32_t)len;
		memcpy(t->tx_s, text, len);
	}
	rules_text_unref(*tp);
	*tp = t;
	return 0;
}

struct ruleset *
rules_add(const struct ruleset *rs, const struct rules_rule *r, int *replaced)
{
	char pat[RULES_PATTERN_MAX], err[RULES_ERR_LEN];
	struct rules_rule v;
	const struct rules_node *old;
	struct rules_node *n;
	struct ruleset *nrs;
	int rc;

	if (replaced != NULL)
		*replaced = 0;
	if (r == NULL || rules_rule_norm(r, &v, pat, err) == -1) {
		errno = EINVAL;
		return NULL;
	}
	old = rules_set_find(rs, &v);
	if ((nrs = rules_set_clone(rs)) == NULL)
		return NULL;
	if (old != NULL) {
		/* same place, same hits, same text around it unless r brings its own comment */
		const char *lc = v.line_comment[0] != '\0' ? v.line_comment : old->rn_rule.line_comment;

		v.line = old->rn_rule.line;
		n = rules_node_new(&v, lc, strlen(lc), old->rn_str, old->rn_prelen, old->rn_seq,
		    __atomic_load_n(&old->rn_rule.hits, __ATOMIC_RELAXED));
		rc = n == NULL || rules_bt_swap(&nrs->rs_order, old->rn_seq, n) == -1 ||
		    rules_index(nrs, RULES_OP_SWAP, old, n) == -1 ? -1 : 0;
	} else {
		n = rules_node_new(&v, v.line_comment, strlen(v.line_comment), NULL, 0, nrs->rs_seq, 0);
		rc = n == NULL ? -1 : rules_set_push(nrs, n);
	}
	rules_node_unref(n);
	if (rc == -1) {
		rules_unref(nrs);
		errno = ENOMEM;
		return NULL;
	}
	if (replaced != NULL)
		*replaced = old != NULL;
	return nrs;
}

/* Without n, which nrs (unshared) holds. */
static int
rules_set_del(struct ruleset *nrs, struct rules_node *n)
{
	int rc;

	/* n may live only in nrs: keep it alive until both trees let go */
	rules_node_ref(n);
	rc = rules_bt_del(&nrs->rs_order, n->rn_seq) == -1 ||
	    rules_index(nrs, RULES_OP_DEL, n, NULL) == -1 ? -1 : 0;
	rules_node_unref(n);
	if (rc == 0)
		nrs->rs_n--;
	return rc;
}

struct ruleset *
rules_remove(const struct ruleset *rs, const struct rules_rule *r)
{
	char pat[RULES_PATTERN_MAX], err[RULES_ERR_LEN];
	struct rules_rule k, v;
	const struct rules_node *old;
	struct ruleset *nrs;

	if (r == NULL) {
		errno = ENOENT;
		return NULL;
	}
	/* only what names the rule counts */
	k = *r;
	k.until = 0;
	k.comment = "";
	k.line_comment = "";
	if (rules_rule_norm(&k, &v, pat, err) == -1 || (old = rules_set_find(rs, &v)) == NULL) {
		errno = ENOENT;
		return NULL;
	}
	if ((nrs = rules_set_clone(rs)) == NULL)
		return NULL;
	if (rules_set_del(nrs, (struct rules_node *)(uintptr_t)old) == -1) {
		rules_unref(nrs);
		errno = ENOMEM;
		return NULL;
	}
	return nrs;
}

struct ruleset *
rules_expire(const struct ruleset *rs, time_t now, size_t *n)
{
	struct rules_node *x;
	struct ruleset *nrs;
	size_t k = 0;

	if (n != NULL)
		*n = 0;
	if (rs == NULL)
		return rules_empty();
	if (rules_bt_expired(rs->rs_order, now) == NULL)
		return rules_ref((struct ruleset *)(uintptr_t)rs);
	if ((nrs = rules_set_clone(rs)) == NULL)
		return NULL;
	/* the first removal copies the paths; the next ones change the copies in place */
	while ((x = rules_bt_expired(nrs->rs_order, now)) != NULL) {
		if (rules_set_del(nrs, x) == -1) {
			rules_unref(nrs);
			errno = ENOMEM;
			return NULL;
		}
		k++;
	}
	if (n != NULL)
		*n = k;
	return nrs;
}

/* ---- back to a file ----------------------------------------------------------- */

struct rules_wr {
	int	(*w_fn)(void *, const char *, size_t);
	void	 *w_arg;
	size_t	  w_len;
	char	  w_buf[8192];
};

static int
rules_wr_flush(struct rules_wr *w)
{
	if (w->w_len > 0 && w->w_fn(w->w_arg, w->w_buf, w->w_len) == -1)
		return -1;
	w->w_len = 0;
	return 0;
}

static int
rules_wr_put(struct rules_wr *w, const char *p, size_t n)
{
	if (n > sizeof w->w_buf - w->w_len) {
		if (rules_wr_flush(w) == -1)
			return -1;
		if (n >= sizeof w->w_buf)
			return w->w_fn(w->w_arg, p, n);
	}
	memcpy(w->w_buf + w->w_len, p, n);
	w->w_len += n;
	return 0;
}

static int
rules_wr_node(void *arg, const struct rules_node *n)
{
	struct rules_wr *w = arg;
	char line[2048];
	int len = rules_rule_format(&n->rn_rule, line, sizeof line);

	/* a checked rule is far shorter: never write half a rule */
	if (len < 0 || (size_t)len >= sizeof line) {
		errno = EOVERFLOW;
		return -1;
	}
	if (rules_wr_put(w, n->rn_str, n->rn_prelen) == -1 ||
	    rules_wr_put(w, line, (size_t)len) == -1 ||
	    rules_wr_put(w, n->rn_rule.line_comment, strlen(n->rn_rule.line_comment)) == -1)
		return -1;
	return rules_wr_put(w, "\n", 1);
}

int
rules_write(const struct ruleset *rs, int (*write)(void *arg, const char *p, size_t n), void *arg)
{
	struct rules_wr w;

	w.w_fn = write;
	w.w_arg = arg;
	w.w_len = 0;
	if (rs == NULL)
		return 0;
	if (rs->rs_head != NULL && rules_wr_put(&w, rs->rs_head->tx_s, rs->rs_head->tx_len) == -1)
		return -1;
	if (rules_bt_walk(rs->rs_order, rules_wr_node, &w) == -1)
		return -1;
	if (rs->rs_tail != NULL && rules_wr_put(&w, rs->rs_tail->tx_s, rs->rs_tail->tx_len) == -1)
		return -1;
	return rules_wr_flush(&w);
}
