/*
 * zindex.c - the ordered index of a geo set: an order-statistic B+tree of
 * (score, member) entries in Redis' sorted-set order.
 *
 * Why this shape. A geo query is a handful of score-range scans, so the
 * leaves hold the entries themselves, 16 bytes each (score inline, member
 * pointer beside it), contiguous and linked both ways: a scan reads
 * consecutive memory and dereferences a member only when the caller asks
 * for it. Inner nodes hold separator keys and, per child, the number of
 * entries below it, which makes rank and seek-by-rank O(log n).
 *
 * Node layout (64-bit):
 *
 *   leaf   [n|level=0|cap][prev][next][e0 score,m][e1]...[e63]  1048 bytes
 *   inner  [n|level|-][ks 63][km 63][cnt 64][child 64]          2040 bytes
 *
 * Both round to a whole malloc size class (1056, 2048). A node holds at
 * most 63 items (LEAF_MAX, INNER_MAX); the 64th slot is an overflow slot,
 * so an insert always lands in its node first and the node is then brought
 * back to size by one of the two balancing steps below. That keeps a single
 * code path for leaves and inner nodes.
 *
 * A new set's root leaf starts with 4 slots and doubles up to 64 by
 * realloc, so a small set costs about a hundred bytes, not a kilobyte.
 *
 * Keys. In an inner node, ks[j]/km[j] is exactly the smallest entry of
 * child j+1 (never a stale copy: the index borrows members and the geo set
 * frees a member right after deleting it, so a stale separator would point
 * at freed memory). Descending for an entry x takes the child after the
 * last key <= x. Scores sit in their own array so that a seek by score
 * binary-searches 8-byte keys and dereferences nothing; members are read
 * only when scores tie.
 *
 * Invariants (checked by fl_zindex_check):
 *   1. Entries are in strictly increasing (score, name) order along the
 *      leaf chain; the chain's prev/next links match the in-order leaves.
 *   2. All leaves are at the same depth; node levels count down to 0.
 *   3. Each inner node's cnt[i] is the number of entries under child i, and
 *      ks/km[i] equal the first entry under child i+1.
 *   4. Every node other than the root holds 31..63 items (NODE_MIN, at
 *      least half full); a root leaf holds 0..cap, a root inner node at
 *      least 2 children.
 * Invariant 4 is deliberately a property of each node alone: a rule about
 * pairs of siblings would be broken whenever two parents merge and their
 * children meet at the seam.
 *
 * Insertion. When a node overflows, a neighbour under the same parent
 * with room takes half the difference (a B*-tree style spill); only when
 * both neighbours are full does the node split in halves, and then the
 * parent gains a child and may overflow in turn. Spilling is what keeps
 * nodes full: random inserts leave them about 80% full instead of the 69%
 * of plain splitting, and an ascending or descending load, which always
 * overflows the same edge node, keeps spilling into its neighbour until
 * that is full, so all nodes but the last two end up full. Before
 * anything is touched, the insert works out how many nodes the cascade
 * needs and allocates them, so running out of memory leaves the tree
 * unchanged.
 *
 * Deletion. A node that falls below NODE_MIN borrows from a neighbour
 * that has more than NODE_MIN (the two end up even), or else merges with
 * it (the two then fit in one node). A merge removes a child from the
 * parent, which is looked at in turn; a root with one child is replaced
 * by that child. Deletion never allocates.
 */
#include "zindex.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define LEAF_SLOTS 64
#define LEAF_MAX (LEAF_SLOTS - 1)
#define LEAF_FIRST_CAP 4
#define INNER_SLOTS 64
#define INNER_MAX (INNER_SLOTS - 1)
/* Half of a node: a split of an overflowing node (64 items) gives two
 * nodes of 32, and an underfull node (30) with a neighbour at the minimum
 * merges into one node of 61. */
#define NODE_MIN 31
/* Far above any reachable height (each level multiplies the entries by at
 * least 31), but it bounds the descent path arrays; an insert that would
 * exceed it fails with -ENOMEM. */
#define MAX_DEPTH 32

typedef fl_zentry zentry;

/* Common head of both node kinds, so a child pointer can be inspected
 * without knowing its kind. */
typedef struct znode {
    uint32_t n;      /* entries (leaf) or children (inner) */
    uint16_t level;  /* 0 for a leaf, else the height above the leaves */
    uint16_t cap;    /* leaf: slots in e[]; unused in inner nodes */
} znode;

typedef struct zleaf {
    znode h;
    struct zleaf *prev, *next;
    zentry e[];
} zleaf;

typedef struct zinner {
    znode h;
    uint64_t ks[INNER_SLOTS - 1];     /* separator scores */
    fl_zmember *km[INNER_SLOTS - 1];  /* separator members */
    size_t cnt[INNER_SLOTS];          /* entries under each child */
    znode *child[INNER_SLOTS];
} zinner;

struct fl_zindex {
    znode *root;
    size_t count;
    size_t bytes;   /* fl_zindex_bytes: this header plus every node */
    int height;     /* levels; 1 when the root is a leaf */
};

/* A root-to-leaf descent: in[d] is the inner node at depth d and idx[d]
 * the child taken there; the leaf is at depth `depth`. */
typedef struct zpath {
    zinner *in[MAX_DEPTH];
    int idx[MAX_DEPTH];
    int depth;
    zleaf *leaf;
    int pos;
} zpath;

/* Nodes allocated up front for one insert, consumed bottom-up. */
typedef struct zpool {
    znode *node[MAX_DEPTH + 1];
    int n, used;
} zpool;

/* ---- allocation ---- */

#ifdef FL_ZINDEX_FAULTS
/* Test builds only (-DFL_ZINDEX_FAULTS): when set to k > 0, the k-th
 * allocation from now fails, so tests can reach every -ENOMEM path. */
long fl_zindex_fault_countdown;

static int fault_now(void)
{
    return fl_zindex_fault_countdown > 0 && --fl_zindex_fault_countdown == 0;
}

static void *z_malloc(size_t n) { return fault_now() ? NULL : malloc(n); }

static void *z_realloc(void *p, size_t n)
{
    return fault_now() ? NULL : realloc(p, n);
}
#else
#define z_malloc malloc
#define z_realloc realloc
#endif

/* ---- small helpers ---- */

static zleaf *as_leaf(znode *nd)
{
    assert(nd->level == 0);
    return (zleaf *)nd;
}

static zinner *as_inner(znode *nd)
{
    assert(nd->level > 0);
    return (zinner *)nd;
}

/* Heap bytes malloc really uses for a request of n bytes (glibc: 8 bytes
 * of header, 16-byte granules, 32 at least); same estimate as geoset.c. */
static size_t alloc_bytes(size_t n)
{
    size_t c = (n + 8 + 15) & ~(size_t)15;
    return c < 32 ? 32 : c;
}

static size_t leaf_size(uint32_t cap)
{
    return sizeof(zleaf) + (size_t)cap * sizeof(zentry);
}

static size_t node_bytes(const znode *nd)
{
    return alloc_bytes(nd->level ? sizeof(zinner) : leaf_size(nd->cap));
}

static uint32_t node_max(const znode *nd)
{
    return nd->level ? INNER_MAX : LEAF_MAX;
}

static zleaf *leaf_new(fl_zindex *z, uint32_t cap)
{
    zleaf *lf = z_malloc(leaf_size(cap));
    if (!lf) return NULL;
    lf->h.n = 0;
    lf->h.level = 0;
    lf->h.cap = (uint16_t)cap;
    lf->prev = lf->next = NULL;
    z->bytes += node_bytes(&lf->h);
    return lf;
}

static zinner *inner_new(fl_zindex *z, int level)
{
    zinner *in = z_malloc(sizeof(*in));
    if (!in) return NULL;
    in->h.n = 0;
    in->h.level = (uint16_t)level;
    in->h.cap = 0;
    z->bytes += node_bytes(&in->h);
    return in;
}

/* Frees one node; a leaf is unlinked from the chain first. */
static void node_free(fl_zindex *z, znode *nd)
{
    if (nd->level == 0) {
        zleaf *lf = as_leaf(nd);
        if (lf->prev) lf->prev->next = lf->next;
        if (lf->next) lf->next->prev = lf->prev;
    }
    z->bytes -= node_bytes(nd);
    free(nd);
}

/* ---- order ---- */

int fl_zmember_cmp(uint64_t score_a, const char *a, size_t alen,
                   uint64_t score_b, const char *b, size_t blen)
{
    if (score_a != score_b) return score_a < score_b ? -1 : 1;
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0; /* memcmp(NULL, .., 0) is undefined */
    if (c) return c < 0 ? -1 : 1;
    if (alen == blen) return 0;
    return alen < blen ? -1 : 1;
}

/* Compares entries; the member is read only when the scores tie, and not
 * at all when both sides are the same record. */
static int entry_cmp(uint64_t sa, const fl_zmember *a, uint64_t sb,
                     const fl_zmember *b)
{
    if (sa != sb) return sa < sb ? -1 : 1;
    if (a == b) return 0;
    return fl_zmember_cmp(sa, a->name, a->len, sb, b->name, b->len);
}

/* The child of `in` that holds (or would hold) the entry: the number of
 * separator keys <= it. */
static int inner_find(const zinner *in, uint64_t score, const fl_zmember *m)
{
    int lo = 0, hi = (int)in->h.n - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (entry_cmp(in->ks[mid], in->km[mid], score, m) <= 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* The number of entries of the leaf that are < the given entry. */
static int leaf_find(const zleaf *lf, uint64_t score, const fl_zmember *m)
{
    int lo = 0, hi = (int)lf->h.n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (entry_cmp(lf->e[mid].score, lf->e[mid].m, score, m) < 0)
            lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static void descend(const fl_zindex *z, uint64_t score, const fl_zmember *m,
                    zpath *p)
{
    znode *nd = z->root;
    int d = 0;
    while (nd->level) {
        zinner *in = as_inner(nd);
        int i = inner_find(in, score, m);
        assert(d < MAX_DEPTH);
        p->in[d] = in;
        p->idx[d] = i;
        d++;
        nd = in->child[i];
    }
    p->depth = d;
    p->leaf = as_leaf(nd);
    p->pos = leaf_find(p->leaf, score, m);
}

/* ---- keys and children of inner nodes ---- */

static void key_set(zinner *in, int j, zentry e)
{
    in->ks[j] = e.score;
    in->km[j] = e.m;
}

/* Moves keys [from, from + n) of `src` to position `to` of `dst`. */
static void keys_move(zinner *dst, int to, const zinner *src, int from, int n)
{
    if (n <= 0) return;
    memmove(dst->ks + to, src->ks + from, (size_t)n * sizeof(dst->ks[0]));
    memmove(dst->km + to, src->km + from, (size_t)n * sizeof(dst->km[0]));
}

/* Moves children (with their counts) [from, from + n) likewise. */
static void kids_move(zinner *dst, int to, const zinner *src, int from, int n)
{
    if (n <= 0) return;
    memmove(dst->child + to, src->child + from,
            (size_t)n * sizeof(dst->child[0]));
    memmove(dst->cnt + to, src->cnt + from, (size_t)n * sizeof(dst->cnt[0]));
}

static size_t cnt_sum(const zinner *in, int from, int n)
{
    size_t s = 0;
    for (int i = from; i < from + n; i++) s += in->cnt[i];
    return s;
}

/* Inserts child c (with `count` entries, first entry `first`) at position
 * j >= 1 of `in`; the key before it is its first entry. */
static void inner_insert(zinner *in, int j, znode *c, zentry first,
                         size_t count)
{
    int n = (int)in->h.n;
    assert(j >= 1 && j <= n && n < INNER_SLOTS);
    keys_move(in, j, in, j - 1, n - j);
    kids_move(in, j + 1, in, j, n - j);
    key_set(in, j - 1, first);
    in->child[j] = c;
    in->cnt[j] = count;
    in->h.n++;
}

/* Removes child j and the key that separates it from its neighbours. */
static void inner_remove(zinner *in, int j)
{
    int n = (int)in->h.n;
    int k = j > 0 ? j - 1 : 0;
    assert(j >= 0 && j < n);
    keys_move(in, k, in, k + 1, n - 2 - k);
    kids_move(in, j, in, j + 1, n - 1 - j);
    in->h.n--;
}

/* Updates the one separator that equals the first entry of the descent's
 * leaf: it sits at the deepest ancestor entered through a child other than
 * its first. None exists when the leaf is the leftmost. */
static void fix_min(const zpath *p, zentry first)
{
    for (int d = p->depth - 1; d >= 0; d--) {
        if (p->idx[d] > 0) {
            key_set(p->in[d], p->idx[d] - 1, first);
            return;
        }
    }
}

/* ---- moving items between neighbours under one parent ---- */

/* Moves the first k items of child i+1 to the end of child i. With k equal
 * to all of child i+1 this is the first half of a merge, and the separator
 * is left for the caller to remove. */
static void leaf_shift_left(zinner *par, int i, uint32_t k)
{
    zleaf *a = as_leaf(par->child[i]), *b = as_leaf(par->child[i + 1]);
    memcpy(a->e + a->h.n, b->e, k * sizeof(zentry));
    memmove(b->e, b->e + k, (b->h.n - k) * sizeof(zentry));
    a->h.n += k;
    b->h.n -= k;
    par->cnt[i] += k;
    par->cnt[i + 1] -= k;
    if (b->h.n) key_set(par, i, b->e[0]);
}

/* Moves the last k items of child i to the front of child i+1. */
static void leaf_shift_right(zinner *par, int i, uint32_t k)
{
    zleaf *a = as_leaf(par->child[i]), *b = as_leaf(par->child[i + 1]);
    memmove(b->e + k, b->e, b->h.n * sizeof(zentry));
    memcpy(b->e, a->e + a->h.n - k, k * sizeof(zentry));
    a->h.n -= k;
    b->h.n += k;
    par->cnt[i] -= k;
    par->cnt[i + 1] += k;
    key_set(par, i, b->e[0]);
}

/* Inner version: the parent's separator rotates down into a and the key
 * after the moved children rotates up into the parent. */
static void inner_shift_left(zinner *par, int i, uint32_t k)
{
    zinner *a = as_inner(par->child[i]), *b = as_inner(par->child[i + 1]);
    int an = (int)a->h.n, bn = (int)b->h.n, kk = (int)k;
    size_t moved = cnt_sum(b, 0, kk);
    a->ks[an - 1] = par->ks[i];
    a->km[an - 1] = par->km[i];
    keys_move(a, an, b, 0, kk - 1);
    kids_move(a, an, b, 0, kk);
    if (kk < bn) {
        par->ks[i] = b->ks[kk - 1];
        par->km[i] = b->km[kk - 1];
        keys_move(b, 0, b, kk, bn - 1 - kk);
        kids_move(b, 0, b, kk, bn - kk);
    }
    a->h.n += k;
    b->h.n -= k;
    par->cnt[i] += moved;
    par->cnt[i + 1] -= moved;
}

static void inner_shift_right(zinner *par, int i, uint32_t k)
{
    zinner *a = as_inner(par->child[i]), *b = as_inner(par->child[i + 1]);
    int an = (int)a->h.n, bn = (int)b->h.n, kk = (int)k;
    size_t moved = cnt_sum(a, an - kk, kk);
    keys_move(b, kk, b, 0, bn - 1);
    b->ks[kk - 1] = par->ks[i];
    b->km[kk - 1] = par->km[i];
    keys_move(b, 0, a, an - kk, kk - 1);
    kids_move(b, kk, b, 0, bn);
    kids_move(b, 0, a, an - kk, kk);
    par->ks[i] = a->ks[an - kk - 1];
    par->km[i] = a->km[an - kk - 1];
    a->h.n -= k;
    b->h.n += k;
    par->cnt[i] -= moved;
    par->cnt[i + 1] += moved;
}

static void shift_left(zinner *par, int i, uint32_t k)
{
    assert(k >= 1 && k <= par->child[i + 1]->n);
    if (par->h.level == 1) leaf_shift_left(par, i, k);
    else inner_shift_left(par, i, k);
}

static void shift_right(zinner *par, int i, uint32_t k)
{
    assert(k >= 1 && k < par->child[i]->n);
    if (par->h.level == 1) leaf_shift_right(par, i, k);
    else inner_shift_right(par, i, k);
}

/* Merges child i+1 into child i and frees it. */
static void merge(fl_zindex *z, zinner *par, int i)
{
    znode *b = par->child[i + 1];
    assert(par->child[i]->n + b->n <= node_max(b));
    shift_left(par, i, b->n);
    inner_remove(par, i + 1);
    node_free(z, b);
}

/* ---- insertion ---- */

/* Room in child j of `par` (0 when there is no such child). */
static uint32_t room(const zinner *par, int j)
{
    if (j < 0 || j >= (int)par->h.n) return 0;
    const znode *c = par->child[j];
    return node_max(c) - c->n;
}

/* Relieves the overflowing child i by moving half the difference to the
 * neighbour with more room; 0 when both are full. */
static int spill(zinner *par, int i)
{
    znode *x = par->child[i];
    uint32_t rl = room(par, i - 1), rr = room(par, i + 1);
    if (!rl && !rr) return 0;
    int left = rl >= rr;
    znode *to = par->child[left ? i - 1 : i + 1];
    uint32_t k = (x->n - to->n) / 2;
    assert(k >= 1 && to->n + k <= node_max(x) && x->n - k >= NODE_MIN);
    if (left) shift_left(par, i - 1, k);
    else shift_right(par, i, k);
    return 1;
}

/* Splits child i of `par` in halves; the second half goes to `fresh`,
 * which becomes child i+1. */
static void split(zinner *par, int i, znode *fresh)
{
    znode *x = par->child[i];
    uint32_t n = x->n, s = n / 2;
    assert(s >= NODE_MIN && n - s >= NODE_MIN && fresh->level == x->level);
    if (x->level == 0) {
        zleaf *a = as_leaf(x), *b = as_leaf(fresh);
        memcpy(b->e, a->e + s, (n - s) * sizeof(zentry));
        b->h.n = n - s;
        a->h.n = s;
        b->prev = a;
        b->next = a->next;
        if (a->next) a->next->prev = b;
        a->next = b;
        inner_insert(par, i + 1, fresh, b->e[0], n - s);
        par->cnt[i] -= n - s;
        return;
    }
    zinner *a = as_inner(x), *b = as_inner(fresh);
    int si = (int)s, ni = (int)n;
    zentry sep = {a->ks[si - 1], a->km[si - 1]};
    kids_move(b, 0, a, si, ni - si);
    keys_move(b, 0, a, si, ni - si - 1);
    b->h.n = n - s;
    a->h.n = s;
    size_t moved = cnt_sum(b, 0, ni - si);
    inner_insert(par, i + 1, fresh, sep, moved);
    par->cnt[i] -= moved;
}

static znode *pool_take(zpool *pool)
{
    assert(pool->used < pool->n);
    return pool->node[pool->used++];
}

static void pool_release(fl_zindex *z, zpool *pool)
{
    for (int i = pool->used; i < pool->n; i++) node_free(z, pool->node[i]);
    pool->n = pool->used = 0;
}

static int pool_add(fl_zindex *z, zpool *pool, int level)
{
    znode *nd = level ? (znode *)inner_new(z, level)
                      : (znode *)leaf_new(z, LEAF_SLOTS);
    if (!nd) return -ENOMEM;
    pool->node[pool->n++] = nd;
    return 0;
}

/* Allocates every node the insert at p will need: walking up, a node that
 * overflows needs a sibling unless a neighbour can take the spill, and an
 * overflowing root also needs a new root above it. */
static int pool_fill(fl_zindex *z, const zpath *p, zpool *pool)
{
    uint32_t n = p->leaf->h.n + 1, max = LEAF_MAX;
    int rc = 0;
    pool->n = pool->used = 0;
    for (int d = p->depth; n > max && rc == 0; d--) {
        int level = p->depth - d;
        if (d == 0) {
            if (z->height >= MAX_DEPTH) rc = -ENOMEM;
            else rc = pool_add(z, pool, level);
            if (rc == 0) rc = pool_add(z, pool, level + 1);
            break;
        }
        const zinner *par = p->in[d - 1];
        int i = p->idx[d - 1];
        if (room(par, i - 1) || room(par, i + 1)) break;
        rc = pool_add(z, pool, level);
        n = par->h.n + 1;
        max = INNER_MAX;
    }
    if (rc) pool_release(z, pool);
    return rc;
}

/* Doubles the slots of a small root leaf that is full. */
static int root_grow(fl_zindex *z, zpath *p)
{
    zleaf *lf = p->leaf;
    uint32_t cap = (uint32_t)lf->h.cap * 2;
    if (cap > LEAF_SLOTS) cap = LEAF_SLOTS;
    size_t old = node_bytes(&lf->h);
    zleaf *nl = z_realloc(lf, leaf_size(cap));
    if (!nl) return -ENOMEM;
    nl->h.cap = (uint16_t)cap;
    z->bytes += node_bytes(&nl->h) - old;
    z->root = &nl->h;
    p->leaf = nl;
    return 0;
}

/* Makes the root the only child of a new root, so that it can be split
 * like any other node. */
static zinner *root_raise(fl_zindex *z, znode *fresh_root)
{
    zinner *r = as_inner(fresh_root);
    r->h.n = 1;
    r->child[0] = z->root;
    r->cnt[0] = z->count;
    z->root = &r->h;
    z->height++;
    return r;
}

/* Brings the nodes on the path back to at most their maximum, bottom-up. */
static void rebalance_up(fl_zindex *z, const zpath *p, zpool *pool)
{
    znode *x = &p->leaf->h;
    for (int d = p->depth; x->n > node_max(x); d--) {
        if (d == 0) {
            znode *fresh = pool_take(pool);
            split(root_raise(z, pool_take(pool)), 0, fresh);
            return;
        }
        zinner *par = p->in[d - 1];
        int i = p->idx[d - 1];
        if (spill(par, i)) return;
        split(par, i, pool_take(pool));
        x = &par->h;
    }
}

int fl_zindex_insert(fl_zindex *z, fl_zmember *m)
{
    zpath p;
    zpool pool;
    descend(z, m->score, m, &p);
    zleaf *lf = p.leaf;
    assert(p.pos == (int)lf->h.n ||
           entry_cmp(lf->e[p.pos].score, lf->e[p.pos].m, m->score, m) != 0);
    if (p.depth == 0 && lf->h.n == lf->h.cap && lf->h.cap < LEAF_SLOTS) {
        int rc = root_grow(z, &p);
        if (rc) return rc;
        lf = p.leaf;
    }
    int rc = pool_fill(z, &p, &pool);
    if (rc) return rc;
    /* From here on nothing can fail. */
    memmove(lf->e + p.pos + 1, lf->e + p.pos,
            (lf->h.n - (uint32_t)p.pos) * sizeof(zentry));
    lf->e[p.pos].score = m->score;
    lf->e[p.pos].m = m;
    lf->h.n++;
    for (int d = 0; d < p.depth; d++) p.in[d]->cnt[p.idx[d]]++;
    z->count++;
    if (p.pos == 0) fix_min(&p, lf->e[0]);
    rebalance_up(z, &p, &pool);
    assert(pool.used == pool.n);
    return 0;
}

/* ---- deletion ---- */

/* Replaces a root that has a single child by that child. */
static void root_collapse(fl_zindex *z)
{
    while (z->height > 1 && z->root->n == 1) {
        znode *old = z->root;
        z->root = as_inner(old)->child[0];
        z->height--;
        node_free(z, old);
    }
}

/* Refills the underfull child i of `par` from a neighbour that can spare
 * items (the two end up even); 0 when neither can. */
static int borrow(zinner *par, int i)
{
    uint32_t xn = par->child[i]->n;
    uint32_t ln = i > 0 ? par->child[i - 1]->n : 0;
    uint32_t rn = i + 1 < (int)par->h.n ? par->child[i + 1]->n : 0;
    if (ln <= NODE_MIN && rn <= NODE_MIN) return 0;
    if (ln >= rn) shift_right(par, i - 1, (ln - xn) / 2);
    else shift_left(par, i, (rn - xn) / 2);
    return 1;
}

/* After an item left the node at the bottom of the path: while a node is
 * below NODE_MIN, it borrows or merges, and a merge takes a child from
 * the parent, which is looked at next. */
static void rebalance_down(fl_zindex *z, const zpath *p)
{
    znode *x = &p->leaf->h;
    for (int d = p->depth; d > 0 && x->n < NODE_MIN; d--) {
        zinner *par = p->in[d - 1];
        int i = p->idx[d - 1];
        assert(x->n == NODE_MIN - 1 && par->h.n >= 2);
        if (borrow(par, i)) return;
        merge(z, par, i > 0 ? i - 1 : i);
        x = &par->h;
    }
    root_collapse(z);
}

int fl_zindex_delete(fl_zindex *z, const fl_zmember *m)
{
    zpath p;
    descend(z, m->score, m, &p);
    zleaf *lf = p.leaf;
    if (p.pos == (int)lf->h.n ||
        entry_cmp(lf->e[p.pos].score, lf->e[p.pos].m, m->score, m) != 0)
        return -ENOENT;
    lf->h.n--;
    memmove(lf->e + p.pos, lf->e + p.pos + 1,
            (lf->h.n - (uint32_t)p.pos) * sizeof(zentry));
    for (int d = 0; d < p.depth; d++) p.in[d]->cnt[p.idx[d]]--;
    z->count--;
    /* The separator that named the deleted entry must not outlive it.
     * Only a root leaf can become empty, and it has no separator. */
    if (p.pos == 0 && lf->h.n) fix_min(&p, lf->e[0]);
    rebalance_down(z, &p);
    return 0;
}

/* ---- the rest of the API ---- */

fl_zindex *fl_zindex_new(void)
{
    fl_zindex *z = z_malloc(sizeof(*z));
    if (!z) return NULL;
    z->count = 0;
    z->height = 1;
    z->bytes = alloc_bytes(sizeof(*z));
    zleaf *lf = leaf_new(z, LEAF_FIRST_CAP);
    if (!lf) {
        free(z);
        return NULL;
    }
    z->root = &lf->h;
    return z;
}

static void subtree_free(znode *nd)
{
    if (nd->level) {
        zinner *in = as_inner(nd);
        for (uint32_t i = 0; i < in->h.n; i++) subtree_free(in->child[i]);
    }
    free(nd);
}

void fl_zindex_free(fl_zindex *z)
{
    if (!z) return;
    subtree_free(z->root);
    free(z);
}

size_t fl_zindex_count(const fl_zindex *z) { return z->count; }

size_t fl_zindex_bytes(const fl_zindex *z) { return z->bytes; }

size_t fl_zindex_rank(const fl_zindex *z, const fl_zmember *m)
{
    const znode *nd = z->root;
    size_t r = 0;
    while (nd->level) {
        const zinner *in = (const zinner *)nd;
        int i = inner_find(in, m->score, m);
        r += cnt_sum(in, 0, i);
        nd = in->child[i];
    }
    const zleaf *lf = (const zleaf *)nd;
    int pos = leaf_find(lf, m->score, m);
    if (pos == (int)lf->h.n ||
        entry_cmp(lf->e[pos].score, lf->e[pos].m, m->score, m) != 0)
        return (size_t)-1;
    return r + (size_t)pos;
}

void fl_zindex_seek_rank(const fl_zindex *z, size_t rank, fl_zit *it)
{
    const znode *nd = z->root;
    if (rank > z->count) rank = z->count;
    while (nd->level) {
        const zinner *in = (const zinner *)nd;
        int i = 0, last = (int)in->h.n - 1;
        /* rank == count walks down the right edge to the end position. */
        while (i < last && rank >= in->cnt[i]) rank -= in->cnt[i++];
        nd = in->child[i];
    }
    assert(rank <= nd->n);
    it->leaf = nd;
    it->pos = (int)rank;
}

void fl_zindex_seek_score(const fl_zindex *z, uint64_t min_score, fl_zit *it)
{
    const znode *nd = z->root;
    /* Every entry of a child before the first key >= min_score is below
     * min_score, because that child ends before its right separator. */
    while (nd->level) {
        const zinner *in = (const zinner *)nd;
        int lo = 0, hi = (int)in->h.n - 1;
        while (lo < hi) {
            int mid = lo + (hi - lo) / 2;
            if (in->ks[mid] < min_score) lo = mid + 1;
            else hi = mid;
        }
        nd = in->child[lo];
    }
    const zleaf *lf = (const zleaf *)nd;
    int lo = 0, hi = (int)lf->h.n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (lf->e[mid].score < min_score) lo = mid + 1;
        else hi = mid;
    }
    /* lo may be the leaf's end; fl_zit_next then steps to the next leaf,
     * whose first entry is a separator >= min_score. */
    it->leaf = lf;
    it->pos = lo;
}

int fl_zit_next(fl_zit *it, uint64_t *score, fl_zmember **m)
{
    const zleaf *lf = it->leaf;
    int pos = it->pos;
    if (!lf) return 0;
    while (pos >= (int)lf->h.n) {
        if (!lf->next) return 0; /* stays at the end, so prev still works */
        lf = lf->next;
        pos = 0;
    }
    if (score) *score = lf->e[pos].score;
    if (m) *m = lf->e[pos].m;
    it->leaf = lf;
    it->pos = pos + 1;
    return 1;
}

size_t fl_zit_span(fl_zit *it, const fl_zentry **e)
{
    const zleaf *lf = it->leaf;
    int pos = it->pos;
    if (!lf) return 0;
    while (pos >= (int)lf->h.n) {
        if (!lf->next) return 0; /* stays at the end, like fl_zit_next */
        lf = lf->next;
        pos = 0;
    }
    *e = &lf->e[pos];
    it->leaf = lf;
    it->pos = (int)lf->h.n;
    return lf->h.n - (size_t)pos;
}

int fl_zit_prev(fl_zit *it, uint64_t *score, fl_zmember **m)
{
    const zleaf *lf = it->leaf;
    int pos = it->pos;
    if (!lf) return 0;
    while (pos == 0) {
        if (!lf->prev) return 0;
        lf = lf->prev;
        pos = (int)lf->h.n;
    }
    pos--;
    if (score) *score = lf->e[pos].score;
    if (m) *m = lf->e[pos].m;
    it->leaf = lf;
    it->pos = pos;
    return 1;
}

/* ---- invariant check ---- */

typedef struct zcheck {
    const fl_zindex *z;
    const zleaf *last;   /* previous leaf in order */
    size_t bytes;
} zcheck;

#define CHECK(cond)                  \
    do {                             \
        if (!(cond)) return -EINVAL; \
    } while (0)

static int check_leaf(zcheck *c, const zleaf *lf, int is_root)
{
    CHECK(lf->h.n <= (is_root ? lf->h.cap : LEAF_MAX));
    CHECK(lf->h.cap <= LEAF_SLOTS);
    CHECK(is_root || (lf->h.n >= NODE_MIN && lf->h.cap == LEAF_SLOTS));
    for (uint32_t i = 0; i < lf->h.n; i++) {
        const zentry *e = &lf->e[i];
        CHECK(e->m && e->score == e->m->score);
        if (i) CHECK(entry_cmp(e[-1].score, e[-1].m, e->score, e->m) < 0);
    }
    CHECK(lf->prev == c->last);
    if (c->last) {
        const zentry *a = &c->last->e[c->last->h.n - 1];
        CHECK(c->last->next == lf);
        CHECK(entry_cmp(a->score, a->m, lf->e[0].score, lf->e[0].m) < 0);
    }
    c->last = lf;
    return 0;
}

/* Checks the subtree at nd (at `level`), storing its entry count and its
 * first entry. */
static int check_node(zcheck *c, const znode *nd, int level, int is_root,
                      size_t *count, zentry *first)
{
    CHECK(nd->level == level);
    c->bytes += node_bytes(nd);
    if (level == 0) {
        const zleaf *lf = (const zleaf *)nd;
        int rc = check_leaf(c, lf, is_root);
        if (rc) return rc;
        *count = lf->h.n;
        if (lf->h.n) *first = lf->e[0];
        return 0;
    }
    const zinner *in = (const zinner *)nd;
    uint32_t n = in->h.n;
    CHECK(n <= INNER_MAX && n >= (is_root ? 2u : NODE_MIN));
    *count = 0;
    for (uint32_t i = 0; i < n; i++) {
        size_t sub;
        zentry f;
        int rc = check_node(c, in->child[i], level - 1, 0, &sub, &f);
        if (rc) return rc;
        CHECK(sub == in->cnt[i]);
        if (i == 0) *first = f;
        else CHECK(in->ks[i - 1] == f.score && in->km[i - 1] == f.m);
        *count += sub;
    }
    return 0;
}

int fl_zindex_check(const fl_zindex *z)
{
    zcheck c = {z, NULL, alloc_bytes(sizeof(*z))};
    size_t count;
    zentry first;
    CHECK(z->root && z->height >= 1 && z->height <= MAX_DEPTH);
    int rc = check_node(&c, z->root, z->height - 1, 1, &count, &first);
    if (rc) return rc;
    CHECK(count == z->count);
    CHECK(c.last && c.last->next == NULL);
    CHECK(c.bytes == z->bytes);
    return 0;
}
