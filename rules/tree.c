/*
 * tree.c: the persistent trees under a ruleset (ruleset.c says why these):
 *
 *   rset   the rules sharing one index key, in rn_seq order;
 *   bt     a counted B+tree of every rule by rn_seq: file order, the i-th
 *          rule, and the earliest expiry of each subtree;
 *   hamt   a hash array mapped trie (CHAMP layout: leaves before sub-nodes)
 *          from a 64-bit key hash to an rset;
 *   trie   a path-compressed binary trie of CIDR prefixes.
 *
 * Every node is reference-counted, and a slot owns one reference (see
 * rules_int.h). A change copies the nodes on its path that are shared and
 * changes in place those that are not, so a new ruleset costs O(log n) new
 * nodes and a ruleset being built (rules_parse) is changed in place. A
 * failing allocation leaves every tree valid and as it was.
 *
 * Never logs, never does I/O; nothing here reads a clock or a rule's text
 * except the sender key hash (ruleset.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rules_int.h"

/* ---- rsets ----------------------------------------------------------------- */

static int
rules_rset_is_bucket(const struct rules_rset *s)
{
	return ((uintptr_t)s->rr_p & 1) != 0;
}

static struct rules_bucket *
rules_rset_bucket(const struct rules_rset *s)
{
	return (struct rules_bucket *)((uintptr_t)s->rr_p & ~(uintptr_t)1);
}

static void
rules_rset_set_bucket(struct rules_rset *s, struct rules_bucket *b)
{
	s->rr_p = (struct rules_node *)((uintptr_t)b | 1);
}

static struct rules_bucket *
rules_bucket_alloc(size_t n)
{
	struct rules_bucket *b = malloc(sizeof *b + n * sizeof b->bk_v[0]);

	if (b == NULL)
		return NULL;
	b->bk_refs = 1;
	b->bk_n = (uint32_t)n;
	return b;
}

static void
rules_bucket_unref(struct rules_bucket *b)
{
	uint32_t i;

	if (!rules_ref_down(&b->bk_refs))
		return;
	for (i = 0; i < b->bk_n; i++)
		rules_node_unref(b->bk_v[i]);
	free(b);
}

void
rules_rset_ref(const struct rules_rset *s)
{
	if (s->rr_p == NULL)
		return;
	if (rules_rset_is_bucket(s))
		rules_ref_up(&rules_rset_bucket(s)->bk_refs);
	else
		rules_node_ref(s->rr_p);
}

void
rules_rset_drop(struct rules_rset *s)
{
	if (s->rr_p == NULL)
		return;
	if (rules_rset_is_bucket(s))
		rules_bucket_unref(rules_rset_bucket(s));
	else
		rules_node_unref(s->rr_p);
	s->rr_p = NULL;
}

/* A new bucket with s's rules, leaving a hole at index `hole` (none if hole > count). */
static struct rules_bucket *
rules_rset_copy(const struct rules_rset *s, size_t extra, size_t hole, size_t skip)
{
	struct rules_node *const *v;
	size_t n = rules_rset_view(s, &v), i, o = 0;
	struct rules_bucket *b = rules_bucket_alloc(n + extra - (skip < n));

	if (b == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if (i == skip)
			continue;
		if (o == hole)
			o++;
		rules_node_ref(v[i]);
		b->bk_v[o++] = v[i];
	}
	return b;
}

int
rules_rset_add(struct rules_rset *s, struct rules_node *n)
{
	struct rules_node *const *v;
	size_t cnt = rules_rset_view(s, &v), pos;
	struct rules_bucket *b;

	if (cnt == 0) {
		rules_node_ref(n);
		s->rr_p = n;
		return 0;
	}
	for (pos = cnt; pos > 0 && v[pos - 1]->rn_seq > n->rn_seq; pos--)
		;
	b = rules_rset_bucket(s);
	if (rules_rset_is_bucket(s) && rules_ref_unique(&b->bk_refs)) {
		b = realloc(b, sizeof *b + (cnt + 1) * sizeof b->bk_v[0]);
		if (b == NULL)
			return -1;
		memmove(&b->bk_v[pos + 1], &b->bk_v[pos], (cnt - pos) * sizeof b->bk_v[0]);
		b->bk_n++;
	} else {
		if ((b = rules_rset_copy(s, 1, pos, SIZE_MAX)) == NULL)
			return -1;
		rules_rset_drop(s);
	}
	rules_node_ref(n);
	b->bk_v[pos] = n;
	rules_rset_set_bucket(s, b);
	return 0;
}

static size_t
rules_rset_index(const struct rules_rset *s, const struct rules_node *n)
{
	struct rules_node *const *v;
	size_t cnt = rules_rset_view(s, &v), i;

	for (i = 0; i < cnt && v[i] != n; i++)
		;
	return i;
}

int
rules_rset_del(struct rules_rset *s, const struct rules_node *n)
{
	struct rules_node *const *v;
	size_t cnt = rules_rset_view(s, &v), i = rules_rset_index(s, n);
	struct rules_bucket *b;

	if (i == cnt)
		return 0;
	if (cnt == 1) {
		rules_rset_drop(s);
		return 0;
	}
	if (cnt == 2) {
		struct rules_node *keep = v[1 - i];

		rules_node_ref(keep);
		rules_rset_drop(s);
		s->rr_p = keep;
		return 0;
	}
	b = rules_rset_bucket(s);
	if (rules_ref_unique(&b->bk_refs)) {
		rules_node_unref(b->bk_v[i]);
		memmove(&b->bk_v[i], &b->bk_v[i + 1], (cnt - i - 1) * sizeof b->bk_v[0]);
		b->bk_n--;
		return 0;
	}
	if ((b = rules_rset_copy(s, 0, SIZE_MAX, i)) == NULL)
		return -1;
	rules_rset_drop(s);
	rules_rset_set_bucket(s, b);
	return 0;
}

/* n takes old's place (same rn_seq, so the order holds). */
int
rules_rset_swap(struct rules_rset *s, const struct rules_node *old, struct rules_node *n)
{
	struct rules_node *const *v;
	size_t cnt = rules_rset_view(s, &v), i = rules_rset_index(s, old);
	struct rules_bucket *b;

	if (i == cnt)
		return 0;
	if (!rules_rset_is_bucket(s)) {
		rules_node_ref(n);
		rules_node_unref(s->rr_p);
		s->rr_p = n;
		return 0;
	}
	b = rules_rset_bucket(s);
	if (!rules_ref_unique(&b->bk_refs)) {
		if ((b = rules_rset_copy(s, 0, SIZE_MAX, SIZE_MAX)) == NULL)
			return -1;
		rules_rset_drop(s);
		rules_rset_set_bucket(s, b);
	}
	rules_node_ref(n);
	rules_node_unref(b->bk_v[i]);
	b->bk_v[i] = n;
	return 0;
}

/* ---- the order: counted B+tree ------------------------------------------------ */

/*
 * 32 entries a node: a leaf costs about 8 bytes a rule, 10^6 rules are 4
 * levels deep, and a change copies 4 nodes (~3 KB).
 */
#define RULES_BT_MAX	32
#define RULES_BT_MIN	(RULES_BT_MAX / 4)

struct rules_bt {
	uint32_t		 bt_refs;	/* atomic */
	uint16_t		 bt_n;		/* entries in use */
	uint16_t		 bt_leaf;
};

struct rules_bt_leaf {
	struct rules_bt		 lf_h;
	struct rules_node	*lf_rule[RULES_BT_MAX];
};

/* What an inner node knows of each child, to route and to count without descending. */
struct rules_bt_kid {
	struct rules_bt		*k_node;
	size_t			 k_count;	/* rules under it */
	uint64_t		 k_first;	/* rn_seq of its first rule */
	time_t			 k_until;	/* earliest until under it; 0 if none expires */
};

struct rules_bt_inner {
	struct rules_bt		 in_h;
	struct rules_bt_kid	 in_kid[RULES_BT_MAX];
};

static struct rules_bt_leaf *
rules_leaf(struct rules_bt *t)
{
	return (struct rules_bt_leaf *)(void *)t;
}

static const struct rules_bt_leaf *
rules_cleaf(const struct rules_bt *t)
{
	return (const struct rules_bt_leaf *)(const void *)t;
}

static struct rules_bt_inner *
rules_inner(struct rules_bt *t)
{
	return (struct rules_bt_inner *)(void *)t;
}

static const struct rules_bt_inner *
rules_cinner(const struct rules_bt *t)
{
	return (const struct rules_bt_inner *)(const void *)t;
}

static time_t
rules_until_min(time_t a, time_t b)
{
	if (a == 0)
		return b;
	if (b == 0)
		return a;
	return a < b ? a : b;
}

static struct rules_bt *
rules_bt_alloc(int leaf)
{
	struct rules_bt *t = malloc(leaf ? sizeof(struct rules_bt_leaf) :
	    sizeof(struct rules_bt_inner));

	if (t == NULL)
		return NULL;
	t->bt_refs = 1;
	t->bt_n = 0;
	t->bt_leaf = (uint16_t)leaf;
	return t;
}

void
rules_bt_ref(struct rules_bt *t)
{
	if (t != NULL)
		rules_ref_up(&t->bt_refs);
}

static void
rules_bt_unref(struct rules_bt *t)
{
	size_t i;

	if (t == NULL || !rules_ref_down(&t->bt_refs))
		return;
	for (i = 0; i < t->bt_n; i++) {
		if (t->bt_leaf)
			rules_node_unref(rules_leaf(t)->lf_rule[i]);
		else
			rules_bt_unref(rules_inner(t)->in_kid[i].k_node);
	}
	free(t);
}

void
rules_bt_drop(struct rules_bt **tp)
{
	rules_bt_unref(*tp);
	*tp = NULL;
}

/* Take a reference on entries [from, from + n) of t, which a new node now holds too. */
static void
rules_bt_hold(struct rules_bt *t, size_t from, size_t n)
{
	size_t i;

	for (i = from; i < from + n; i++) {
		if (t->bt_leaf)
			rules_node_ref(rules_leaf(t)->lf_rule[i]);
		else
			rules_bt_ref(rules_inner(t)->in_kid[i].k_node);
	}
}

static void *
rules_bt_entry(struct rules_bt *t, size_t i)
{
	return t->bt_leaf ? (void *)&rules_leaf(t)->lf_rule[i] : (void *)&rules_inner(t)->in_kid[i];
}

static size_t
rules_bt_esize(const struct rules_bt *t)
{
	return t->bt_leaf ? sizeof(struct rules_node *) : sizeof(struct rules_bt_kid);
}

/* Make *tp unshared: itself if its count is 1, else a copy that takes the slot's reference. */
static int
rules_bt_mut(struct rules_bt **tp)
{
	struct rules_bt *t = *tp, *c;

	if (rules_ref_unique(&t->bt_refs))
		return 0;
	if ((c = rules_bt_alloc(t->bt_leaf)) == NULL)
		return -1;
	memcpy(rules_bt_entry(c, 0), rules_bt_entry(t, 0), t->bt_n * rules_bt_esize(t));
	c->bt_n = t->bt_n;
	rules_bt_hold(c, 0, c->bt_n);
	rules_bt_unref(t);
	*tp = c;
	return 0;
}

static void
rules_bt_sum(struct rules_bt *t, struct rules_bt_kid *k)
{
	size_t i;

	k->k_node = t;
	k->k_count = 0;
	k->k_until = 0;
	if (t->bt_leaf) {
		const struct rules_bt_leaf *lf = rules_leaf(t);

		k->k_count = t->bt_n;
		k->k_first = lf->lf_rule[0]->rn_seq;
		for (i = 0; i < t->bt_n; i++)
			k->k_until = rules_until_min(k->k_until, lf->lf_rule[i]->rn_rule.until);
		return;
	}
	k->k_first = rules_inner(t)->in_kid[0].k_first;
	for (i = 0; i < t->bt_n; i++) {
		k->k_count += rules_inner(t)->in_kid[i].k_count;
		k->k_until = rules_until_min(k->k_until, rules_inner(t)->in_kid[i].k_until);
	}
}

/*
 * Append n after everything under *tp. A full node stays full and the new
 * entry starts a right sibling (*split), which holds it alone: rules are
 * only ever appended, and a half split would leave a loaded file's leaves
 * half empty. When *split is set, *tp has not changed.
 */
static int
rules_bt_append_in(struct rules_bt **tp, struct rules_node *n, struct rules_bt **split)
{
	struct rules_bt *t = *tp, *s, *p;
	struct rules_bt_kid *k;

	*split = NULL;
	if (t->bt_leaf) {
		if (t->bt_n == RULES_BT_MAX) {
			if ((s = rules_bt_alloc(1)) == NULL)
				return -1;
			rules_node_ref(n);
			rules_leaf(s)->lf_rule[s->bt_n++] = n;
			*split = s;
			return 0;
		}
		if (rules_bt_mut(tp) == -1)
			return -1;
		t = *tp;
		rules_node_ref(n);
		rules_leaf(t)->lf_rule[t->bt_n++] = n;
		return 0;
	}
	if (rules_bt_mut(tp) == -1)
		return -1;
	t = *tp;
	k = &rules_inner(t)->in_kid[t->bt_n - 1];
	if (rules_bt_append_in(&k->k_node, n, &s) == -1)
		return -1;
	if (s == NULL) {
		rules_bt_sum(k->k_node, k);
		return 0;
	}
	if (t->bt_n < RULES_BT_MAX) {
		rules_bt_sum(s, &rules_inner(t)->in_kid[t->bt_n++]);
		return 0;
	}
	if ((p = rules_bt_alloc(0)) == NULL) {
		rules_bt_unref(s);
		return -1;
	}
	rules_bt_sum(s, &rules_inner(p)->in_kid[p->bt_n++]);
	*split = p;
	return 0;
}

int
rules_bt_append(struct rules_bt **root, struct rules_node *n)
{
	struct rules_bt *s, *r;

	if (*root == NULL) {
		if ((r = rules_bt_alloc(1)) == NULL)
			return -1;
		rules_node_ref(n);
		rules_leaf(r)->lf_rule[r->bt_n++] = n;
		*root = r;
		return 0;
	}
	if (rules_bt_append_in(root, n, &s) == -1)
		return -1;
	if (s == NULL)
		return 0;
	if ((r = rules_bt_alloc(0)) == NULL) {
		rules_bt_unref(s);
		return -1;
	}
	rules_bt_sum(*root, &rules_inner(r)->in_kid[0]);
	rules_bt_sum(s, &rules_inner(r)->in_kid[1]);
	r->bt_n = 2;
	*root = r;
	return 0;
}

/* The child of an inner node under which seq lies: the last whose first rule is <= seq. */
static size_t
rules_bt_route(const struct rules_bt *t, uint64_t seq)
{
	const struct rules_bt_inner *in = rules_cinner(t);
	size_t lo = 0, hi = t->bt_n;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (in->in_kid[mid].k_first <= seq)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* Index of seq in a leaf, or bt_n. */
static size_t
rules_bt_find(const struct rules_bt *t, uint64_t seq)
{
	const struct rules_bt_leaf *lf = rules_cleaf(t);
	size_t lo = 0, hi = t->bt_n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (lf->lf_rule[mid]->rn_seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < t->bt_n && lf->lf_rule[lo]->rn_seq == seq ? lo : t->bt_n;
}

/*
 * Children a and a+1 of t, one of them under-full, become one node, or two
 * even ones if that would be too many. Best effort: without memory the
 * tree stays as it is, valid, with one thin node.
 */
static void
rules_bt_merge(struct rules_bt *t, size_t a)
{
	struct rules_bt_inner *in = rules_inner(t);
	struct rules_bt *x = in->in_kid[a].k_node, *y = in->in_kid[a + 1].k_node, *m1, *m2 = NULL;
	size_t total = (size_t)x->bt_n + y->bt_n, h = total, es = rules_bt_esize(x);

	if (total > RULES_BT_MAX)
		h = total / 2;
	if ((m1 = rules_bt_alloc(x->bt_leaf)) == NULL)
		return;
	if (h < total && (m2 = rules_bt_alloc(x->bt_leaf)) == NULL) {
		free(m1);
		return;
	}
	/* the concatenation x ++ y, cut at h */
	if (h <= x->bt_n) {
		memcpy(rules_bt_entry(m1, 0), rules_bt_entry(x, 0), h * es);
		if (m2 != NULL) {
			memcpy(rules_bt_entry(m2, 0), rules_bt_entry(x, h), (x->bt_n - h) * es);
			memcpy(rules_bt_entry(m2, x->bt_n - h), rules_bt_entry(y, 0), y->bt_n * es);
		}
	} else {
		memcpy(rules_bt_entry(m1, 0), rules_bt_entry(x, 0), x->bt_n * es);
		memcpy(rules_bt_entry(m1, x->bt_n), rules_bt_entry(y, 0), (h - x->bt_n) * es);
		if (m2 != NULL)
			memcpy(rules_bt_entry(m2, 0), rules_bt_entry(y, h - x->bt_n), (total - h) * es);
	}
	m1->bt_n = (uint16_t)h;
	rules_bt_hold(m1, 0, h);
	if (m2 != NULL) {
		m2->bt_n = (uint16_t)(total - h);
		rules_bt_hold(m2, 0, total - h);
	}
	rules_bt_unref(x);
	rules_bt_unref(y);
	rules_bt_sum(m1, &in->in_kid[a]);
	if (m2 != NULL) {
		rules_bt_sum(m2, &in->in_kid[a + 1]);
		return;
	}
	memmove(&in->in_kid[a + 1], &in->in_kid[a + 2], (t->bt_n - a - 2) * sizeof in->in_kid[0]);
	t->bt_n--;
}

/* Child i of t (unshared) has changed: drop it if empty, refresh what t knows of it, keep it full enough. */
static void
rules_bt_fix(struct rules_bt *t, size_t i)
{
	struct rules_bt_inner *in = rules_inner(t);
	struct rules_bt *k = in->in_kid[i].k_node;

	if (k->bt_n == 0) {
		rules_bt_unref(k);
		memmove(&in->in_kid[i], &in->in_kid[i + 1], (t->bt_n - i - 1) * sizeof in->in_kid[0]);
		t->bt_n--;
		return;
	}
	rules_bt_sum(k, &in->in_kid[i]);
	if (k->bt_n < RULES_BT_MIN && t->bt_n > 1)
		rules_bt_merge(t, i + 1 < t->bt_n ? i : i - 1);
}

static int
rules_bt_del_in(struct rules_bt **tp, uint64_t seq)
{
	struct rules_bt *t;
	size_t i;

	if (rules_bt_mut(tp) == -1)
		return -1;
	t = *tp;
	if (t->bt_leaf) {
		struct rules_bt_leaf *lf = rules_leaf(t);

		if ((i = rules_bt_find(t, seq)) == t->bt_n)
			return 0;
		rules_node_unref(lf->lf_rule[i]);
		memmove(&lf->lf_rule[i], &lf->lf_rule[i + 1], (t->bt_n - i - 1) * sizeof lf->lf_rule[0]);
		t->bt_n--;
		return 0;
	}
	i = rules_bt_route(t, seq);
	if (rules_bt_del_in(&rules_inner(t)->in_kid[i].k_node, seq) == -1)
		return -1;
	rules_bt_fix(t, i);
	return 0;
}

int
rules_bt_del(struct rules_bt **root, uint64_t seq)
{
	struct rules_bt *t, *k;

	if (*root == NULL)
		return 0;
	if (rules_bt_del_in(root, seq) == -1)
		return -1;
	t = *root;
	if (t->bt_n == 0) {
		rules_bt_drop(root);
	} else if (!t->bt_leaf && t->bt_n == 1) {
		/* the root's only child becomes the root: one level less */
		k = rules_inner(t)->in_kid[0].k_node;
		rules_bt_ref(k);
		rules_bt_unref(t);
		*root = k;
	}
	return 0;
}

int
rules_bt_swap(struct rules_bt **tp, uint64_t seq, struct rules_node *n)
{
	struct rules_bt *t;
	size_t i;

	if (*tp == NULL || rules_bt_mut(tp) == -1)
		return -1;
	t = *tp;
	if (t->bt_leaf) {
		if ((i = rules_bt_find(t, seq)) == t->bt_n)
			return 0;
		rules_node_ref(n);
		rules_node_unref(rules_leaf(t)->lf_rule[i]);
		rules_leaf(t)->lf_rule[i] = n;
		return 0;
	}
	i = rules_bt_route(t, seq);
	if (rules_bt_swap(&rules_inner(t)->in_kid[i].k_node, seq, n) == -1)
		return -1;
	rules_bt_sum(rules_inner(t)->in_kid[i].k_node, &rules_inner(t)->in_kid[i]);
	return 0;
}

struct rules_node *
rules_bt_get(const struct rules_bt *t, size_t i)
{
	while (t != NULL && !t->bt_leaf) {
		const struct rules_bt_inner *in = rules_cinner(t);
		size_t k;

		for (k = 0; k < t->bt_n && i >= in->in_kid[k].k_count; k++)
			i -= in->in_kid[k].k_count;
		if (k == t->bt_n)
			return NULL;
		t = in->in_kid[k].k_node;
	}
	return t != NULL && i < t->bt_n ? rules_cleaf(t)->lf_rule[i] : NULL;
}

time_t
rules_bt_next_expiry(const struct rules_bt *t)
{
	time_t u = 0;
	size_t i;

	for (i = 0; t != NULL && i < t->bt_n; i++)
		u = rules_until_min(u, t->bt_leaf ? rules_cleaf(t)->lf_rule[i]->rn_rule.until :
		    rules_cinner(t)->in_kid[i].k_until);
	return u;
}

struct rules_node *
rules_bt_expired(const struct rules_bt *t, time_t now)
{
	size_t i;

	while (t != NULL) {
		for (i = 0; i < t->bt_n; i++) {
			time_t u = t->bt_leaf ? rules_cleaf(t)->lf_rule[i]->rn_rule.until :
			    rules_cinner(t)->in_kid[i].k_until;

			if (u != 0 && u <= now)
				break;
		}
		if (i == t->bt_n)
			return NULL;
		if (t->bt_leaf)
			return rules_cleaf(t)->lf_rule[i];
		t = rules_cinner(t)->in_kid[i].k_node;
	}
	return NULL;
}

int
rules_bt_walk(const struct rules_bt *t, int (*fn)(void *, const struct rules_node *), void *arg)
{
	size_t i;

	for (i = 0; t != NULL && i < t->bt_n; i++) {
		if (t->bt_leaf ? fn(arg, rules_cleaf(t)->lf_rule[i]) == -1 :
		    rules_bt_walk(rules_cinner(t)->in_kid[i].k_node, fn, arg) == -1)
			return -1;
	}
	return 0;
}

/* ---- sender keys: hash array mapped trie ------------------------------------- */

/*
 * 32 slots a level, 5 bits of the hash each; 13 levels use all 64 bits, so
 * two different hashes always part. Leaves are rsets of the rules whose key
 * has that hash; a lookup compares the keys themselves.
 */
union rules_hslot {
	struct rules_rset	 s_leaf;
	struct rules_hamt	*s_sub;
};

struct rules_hamt {
	uint32_t		 hm_refs;	/* atomic */
	uint32_t		 hm_data;	/* bitmap of the slots holding a leaf */
	uint32_t		 hm_sub;	/* bitmap of the slots holding a sub-node */
	uint32_t		 hm_pad;
	union rules_hslot	 hm_slot[];	/* the leaves by bit, then the sub-nodes by bit */
};

static unsigned
rules_pop(uint32_t x)
{
	return (unsigned)__builtin_popcount(x);
}

static uint32_t
rules_hbit(uint64_t h, unsigned shift)
{
	return 1u << ((h >> shift) & 31);
}

static size_t
rules_hamt_size(const struct rules_hamt *m)
{
	return rules_pop(m->hm_data) + rules_pop(m->hm_sub);
}

static struct rules_hamt *
rules_hamt_alloc(size_t nslots)
{
	struct rules_hamt *m = malloc(sizeof *m + nslots * sizeof m->hm_slot[0]);

	if (m == NULL)
		return NULL;
	m->hm_refs = 1;
	m->hm_data = m->hm_sub = m->hm_pad = 0;
	return m;
}

void
rules_hamt_ref(struct rules_hamt *m)
{
	if (m != NULL)
		rules_ref_up(&m->hm_refs);
}

static void
rules_hamt_unref(struct rules_hamt *m)
{
	size_t i, nd;

	if (m == NULL || !rules_ref_down(&m->hm_refs))
		return;
	nd = rules_pop(m->hm_data);
	for (i = 0; i < rules_hamt_size(m); i++) {
		if (i < nd)
			rules_rset_drop(&m->hm_slot[i].s_leaf);
		else
			rules_hamt_unref(m->hm_slot[i].s_sub);
	}
	free(m);
}

void
rules_hamt_drop(struct rules_hamt **mp)
{
	rules_hamt_unref(*mp);
	*mp = NULL;
}

static int
rules_hamt_mut(struct rules_hamt **mp)
{
	struct rules_hamt *m = *mp, *c;
	size_t i, n = rules_hamt_size(m), nd = rules_pop(m->hm_data);

	if (rules_ref_unique(&m->hm_refs))
		return 0;
	if ((c = rules_hamt_alloc(n)) == NULL)
		return -1;
	c->hm_data = m->hm_data;
	c->hm_sub = m->hm_sub;
	memcpy(c->hm_slot, m->hm_slot, n * sizeof m->hm_slot[0]);
	for (i = 0; i < n; i++) {
		if (i < nd)
			rules_rset_ref(&c->hm_slot[i].s_leaf);
		else
			rules_hamt_ref(c->hm_slot[i].s_sub);
	}
	rules_hamt_unref(m);
	*mp = c;
	return 0;
}

/* Room for one more slot at index at, in an unshared node. */
static int
rules_hamt_grow(struct rules_hamt **mp, size_t at)
{
	size_t n = rules_hamt_size(*mp);
	struct rules_hamt *m = realloc(*mp, sizeof *m + (n + 1) * sizeof m->hm_slot[0]);

	if (m == NULL)
		return -1;
	memmove(&m->hm_slot[at + 1], &m->hm_slot[at], (n - at) * sizeof m->hm_slot[0]);
	*mp = m;
	return 0;
}

/* Close the slot at index at of an unshared node (its bitmaps already updated). */
static void
rules_hamt_shrink(struct rules_hamt **mp, size_t at)
{
	struct rules_hamt *m = *mp;
	size_t n = rules_hamt_size(m);	/* after the bitmap change */

	memmove(&m->hm_slot[at], &m->hm_slot[at + 1], (n - at) * sizeof m->hm_slot[0]);
	if ((m = realloc(m, sizeof *m + n * sizeof m->hm_slot[0])) != NULL)
		*mp = m;
}

/*
 * A sub-tree at `shift` holding leaves a (hash ha) and b (hb != ha), which
 * it takes over; NULL on ENOMEM, then it took nothing.
 */
static struct rules_hamt *
rules_hamt_pair(struct rules_rset a, uint64_t ha, struct rules_rset b, uint64_t hb, unsigned shift)
{
	struct rules_hamt *chain[14];
	unsigned s, k = 0, i;
	uint32_t ba, bb;

	for (s = shift; rules_hbit(ha, s) == rules_hbit(hb, s); s += 5)
		k++;
	for (i = 0; i <= k; i++) {
		if ((chain[i] = rules_hamt_alloc(i < k ? 1 : 2)) == NULL) {
			while (i-- > 0)
				free(chain[i]);
			return NULL;
		}
	}
	ba = rules_hbit(ha, s);
	bb = rules_hbit(hb, s);
	chain[k]->hm_data = ba | bb;
	chain[k]->hm_slot[ba < bb ? 0 : 1].s_leaf = a;
	chain[k]->hm_slot[ba < bb ? 1 : 0].s_leaf = b;
	for (i = k; i-- > 0;) {
		chain[i]->hm_sub = rules_hbit(ha, shift + 5 * i);
		chain[i]->hm_slot[0].s_sub = chain[i + 1];
	}
	return chain[0];
}

static int
rules_hamt_put_in(struct rules_hamt **mp, uint64_t h, unsigned shift, struct rules_node *n)
{
	struct rules_hamt *m, *sub;
	struct rules_rset leaf = { NULL };
	uint32_t bit = rules_hbit(h, shift);
	size_t nd, i, j;
	uint64_t lh;

	if (rules_hamt_mut(mp) == -1)
		return -1;
	m = *mp;
	nd = rules_pop(m->hm_data);
	if (m->hm_sub & bit) {
		i = nd + rules_pop(m->hm_sub & (bit - 1));
		return rules_hamt_put_in(&m->hm_slot[i].s_sub, h, shift + 5, n);
	}
	i = rules_pop(m->hm_data & (bit - 1));
	if (m->hm_data & bit) {
		struct rules_node *const *v;

		rules_rset_view(&m->hm_slot[i].s_leaf, &v);
		lh = rules_sender_key_hash(v[0]);
		if (lh == h)
			return rules_rset_add(&m->hm_slot[i].s_leaf, n);
		/* another key in this slot: both move one level down */
		if (rules_rset_add(&leaf, n) == -1)
			return -1;
		sub = rules_hamt_pair(m->hm_slot[i].s_leaf, lh, leaf, h, shift + 5);
		if (sub == NULL) {
			rules_rset_drop(&leaf);
			return -1;
		}
		/* same number of slots: the leaf's slot closes, the sub-node's opens */
		j = nd - 1 + rules_pop(m->hm_sub & (bit - 1));
		memmove(&m->hm_slot[i], &m->hm_slot[i + 1], (j - i) * sizeof m->hm_slot[0]);
		m->hm_slot[j].s_sub = sub;
		m->hm_data &= ~bit;
		m->hm_sub |= bit;
		return 0;
	}
	if (rules_rset_add(&leaf, n) == -1)
		return -1;
	if (rules_hamt_grow(mp, i) == -1) {
		rules_rset_drop(&leaf);
		return -1;
	}
	m = *mp;
	m->hm_slot[i].s_leaf = leaf;
	m->hm_data |= bit;
	return 0;
}

int
rules_hamt_put(struct rules_hamt **mp, uint64_t h, struct rules_node *n)
{
	if (*mp == NULL && (*mp = rules_hamt_alloc(0)) == NULL)
		return -1;
	return rules_hamt_put_in(mp, h, 0, n);
}

static int
rules_hamt_del_in(struct rules_hamt **mp, uint64_t h, unsigned shift, const struct rules_node *n)
{
	struct rules_hamt *m, *sub;
	uint32_t bit = rules_hbit(h, shift);
	size_t nd, i, d;

	if (rules_hamt_mut(mp) == -1)
		return -1;
	m = *mp;
	nd = rules_pop(m->hm_data);
	if (m->hm_sub & bit) {
		i = nd + rules_pop(m->hm_sub & (bit - 1));
		if (rules_hamt_del_in(&m->hm_slot[i].s_sub, h, shift + 5, n) == -1)
			return -1;
		sub = m->hm_slot[i].s_sub;
		if (sub == NULL) {
			m->hm_sub &= ~bit;
			rules_hamt_shrink(mp, i);
		} else if (sub->hm_sub == 0 && rules_pop(sub->hm_data) == 1) {
			/* a lone leaf moves back up, where a lookup finds it sooner */
			struct rules_rset leaf = sub->hm_slot[0].s_leaf;

			sub->hm_data = 0;
			rules_hamt_unref(sub);
			d = rules_pop(m->hm_data & (bit - 1));
			memmove(&m->hm_slot[d + 1], &m->hm_slot[d], (i - d) * sizeof m->hm_slot[0]);
			m->hm_slot[d].s_leaf = leaf;
			m->hm_sub &= ~bit;
			m->hm_data |= bit;
		}
	} else if (m->hm_data & bit) {
		i = rules_pop(m->hm_data & (bit - 1));
		if (rules_rset_del(&m->hm_slot[i].s_leaf, n) == -1)
			return -1;
		if (m->hm_slot[i].s_leaf.rr_p == NULL) {
			m->hm_data &= ~bit;
			rules_hamt_shrink(mp, i);
		}
	}
	if (rules_hamt_size(*mp) == 0)
		rules_hamt_drop(mp);
	return 0;
}

int
rules_hamt_del(struct rules_hamt **mp, uint64_t h, const struct rules_node *n)
{
	return *mp == NULL ? 0 : rules_hamt_del_in(mp, h, 0, n);
}

int
rules_hamt_swap(struct rules_hamt **mp, uint64_t h, const struct rules_node *old, struct rules_node *n)
{
	unsigned shift = 0;
	struct rules_hamt *m;
	uint32_t bit;

	while (*mp != NULL) {
		if (rules_hamt_mut(mp) == -1)
			return -1;
		m = *mp;
		bit = rules_hbit(h, shift);
		if (m->hm_data & bit)
			return rules_rset_swap(&m->hm_slot[rules_pop(m->hm_data & (bit - 1))].s_leaf, old, n);
		if (!(m->hm_sub & bit))
			return 0;
		mp = &m->hm_slot[rules_pop(m->hm_data) + rules_pop(m->hm_sub & (bit - 1))].s_sub;
		shift += 5;
	}
	return 0;
}

const struct rules_rset *
rules_hamt_get(const struct rules_hamt *m, uint64_t h)
{
	unsigned shift = 0;
	uint32_t bit;

	while (m != NULL) {
		bit = rules_hbit(h, shift);
		if (m->hm_data & bit)
			return &m->hm_slot[rules_pop(m->hm_data & (bit - 1))].s_leaf;
		if (!(m->hm_sub & bit))
			return NULL;
		m = m->hm_slot[rules_pop(m->hm_data) + rules_pop(m->hm_sub & (bit - 1))].s_sub;
		shift += 5;
	}
	return NULL;
}

/* ---- CIDR prefixes: path-compressed binary trie ---------------------------------- */

static struct rules_trie *
rules_trie_alloc(const uint8_t *a, unsigned plen, unsigned alen)
{
	struct rules_trie *t = malloc(sizeof *t + alen);
	unsigned full = plen / 8;

	if (t == NULL)
		return NULL;
	t->tr_refs = 1;
	t->tr_plen = (uint8_t)plen;
	t->tr_alen = (uint8_t)alen;
	t->tr_rules.rr_p = NULL;
	t->tr_kid[0] = t->tr_kid[1] = NULL;
	memset(t->tr_addr, 0, alen);
	memcpy(t->tr_addr, a, full);
	if (plen % 8 != 0)
		t->tr_addr[full] = (uint8_t)(a[full] & (0xff << (8 - plen % 8)));
	return t;
}

void
rules_trie_ref(struct rules_trie *t)
{
	if (t != NULL)
		rules_ref_up(&t->tr_refs);
}

static void
rules_trie_unref(struct rules_trie *t)
{
	if (t == NULL || !rules_ref_down(&t->tr_refs))
		return;
	rules_rset_drop(&t->tr_rules);
	rules_trie_unref(t->tr_kid[0]);
	rules_trie_unref(t->tr_kid[1]);
	free(t);
}

void
rules_trie_drop(struct rules_trie **tp)
{
	rules_trie_unref(*tp);
	*tp = NULL;
}

static int
rules_trie_mut(struct rules_trie **tp)
{
	struct rules_trie *t = *tp, *c;

	if (rules_ref_unique(&t->tr_refs))
		return 0;
	if ((c = malloc(sizeof *c + t->tr_alen)) == NULL)
		return -1;
	/* not the count: other threads may be changing it */
	c->tr_refs = 1;
	c->tr_plen = t->tr_plen;
	c->tr_alen = t->tr_alen;
	c->tr_rules = t->tr_rules;
	c->tr_kid[0] = t->tr_kid[0];
	c->tr_kid[1] = t->tr_kid[1];
	memcpy(c->tr_addr, t->tr_addr, t->tr_alen);
	rules_rset_ref(&c->tr_rules);
	rules_trie_ref(c->tr_kid[0]);
	rules_trie_ref(c->tr_kid[1]);
	rules_trie_unref(t);
	*tp = c;
	return 0;
}

/* How many leading bits a and b share, at most max. */
static unsigned
rules_common_bits(const uint8_t *a, const uint8_t *b, unsigned max)
{
	unsigned i = 0;

	while (i + 8 <= max && a[i / 8] == b[i / 8])
		i += 8;
	while (i < max && rules_bit(a, i) == rules_bit(b, i))
		i++;
	return i;
}

int
rules_trie_put(struct rules_trie **tp, const uint8_t *a, unsigned plen, unsigned alen,
    struct rules_node *n)
{
	struct rules_trie *t = *tp, *leaf, *fork;
	unsigned c = 0;

	if (t != NULL) {
		c = rules_common_bits(t->tr_addr, a, t->tr_plen < plen ? t->tr_plen : plen);
		if (c == t->tr_plen) {
			if (rules_trie_mut(tp) == -1)
				return -1;
			t = *tp;
			if (c == plen)
				return rules_rset_add(&t->tr_rules, n);
			return rules_trie_put(&t->tr_kid[rules_bit(a, c)], a, plen, alen, n);
		}
	}
	if ((leaf = rules_trie_alloc(a, plen, alen)) == NULL)
		return -1;
	if (rules_rset_add(&leaf->tr_rules, n) == -1) {
		free(leaf);
		return -1;
	}
	if (t == NULL) {
		*tp = leaf;
		return 0;
	}
	/* the new prefix is above t, or parts from it at bit c */
	if (c == plen) {
		leaf->tr_kid[rules_bit(t->tr_addr, c)] = t;
		*tp = leaf;
		return 0;
	}
	if ((fork = rules_trie_alloc(a, c, alen)) == NULL) {
		rules_trie_unref(leaf);
		return -1;
	}
	fork->tr_kid[rules_bit(a, c)] = leaf;
	fork->tr_kid[rules_bit(t->tr_addr, c)] = t;
	*tp = fork;
	return 0;
}

int
rules_trie_del(struct rules_trie **tp, const uint8_t *a, unsigned plen, const struct rules_node *n)
{
	struct rules_trie *t;

	if (*tp == NULL || (*tp)->tr_plen > plen)
		return 0;
	if (rules_trie_mut(tp) == -1)
		return -1;
	t = *tp;
	if (t->tr_plen == plen) {
		if (rules_rset_del(&t->tr_rules, n) == -1)
			return -1;
	} else if (rules_trie_del(&t->tr_kid[rules_bit(a, t->tr_plen)], a, plen, n) == -1)
		return -1;
	if (t->tr_rules.rr_p == NULL && (t->tr_kid[0] == NULL || t->tr_kid[1] == NULL)) {
		/* a node without rules is only worth keeping as a fork */
		*tp = t->tr_kid[0] != NULL ? t->tr_kid[0] : t->tr_kid[1];
		t->tr_kid[0] = t->tr_kid[1] = NULL;
		rules_trie_unref(t);
	}
	return 0;
}

int
rules_trie_swap(struct rules_trie **tp, const uint8_t *a, unsigned plen, const struct rules_node *old,
    struct rules_node *n)
{
	while (*tp != NULL && (*tp)->tr_plen <= plen) {
		if (rules_trie_mut(tp) == -1)
			return -1;
		if ((*tp)->tr_plen == plen)
			return rules_rset_swap(&(*tp)->tr_rules, old, n);
		tp = &(*tp)->tr_kid[rules_bit(a, (*tp)->tr_plen)];
	}
	return 0;
}

const struct rules_rset *
rules_trie_find(const struct rules_trie *t, const uint8_t *a, unsigned plen)
{
	while (t != NULL && t->tr_plen <= plen && rules_prefix_eq(t->tr_addr, a, t->tr_plen)) {
		if (t->tr_plen == plen)
			return &t->tr_rules;
		t = t->tr_kid[rules_bit(a, t->tr_plen)];
	}
	return NULL;
}
