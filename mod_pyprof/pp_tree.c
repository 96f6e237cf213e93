/* pp_tree.c: the views computed from a resolved profile (see
 * pp_profile.h): the call tree merged per function (pp_tree_build, or
 * pp_profile_resolve_tree, which copies from the store as it builds) and
 * hot functions read off the tree.  A tree holds at most
 * PP_TREE_MAX_NODES nodes and its build walks at most PP_TREE_MAX_WALK
 * profile nodes; hot functions are one pass over the tree, so no view
 * costs stacks times depth.  Reads the profile's own copy only; the store
 * only through pp_resolve_int.h (pp_profile_resolve_tree).  Page loaders,
 * exports and tests call it through pp_profile.h.
 */
#include <stdlib.h>
#include <string.h>

#include "pp_grow.h"
#include "pp_profile.h"
#include "pp_resolve_int.h"

/* ---- function identity: same name and file, any line ---- */

typedef struct fkeys {
    uint32_t *by_frame; /* profile frame id -> fkey (0: not yet) */
    uint32_t nframes;   /* ids up to it have an entry */
    uint32_t cap;
    pp_u64map_t by_name; /* hash(function, file) -> fkey */
} fkeys_t;

/* An entry (0 until set) for every id up to `n` in *v, which has one up
 * to *have.  These follow the profile's frames and nodes, which may grow
 * between stacks when pp_profile_resolve_tree copies as it builds, and
 * which double already: sized exactly (bound = need), as doubling here
 * too cost the worst-case pages 2 to 3 MB more at their peak.  -1 on
 * ENOMEM. */
static int ids_fit(uint32_t **v, uint32_t *cap, uint32_t *have, uint32_t n)
{
    uint32_t had = *v ? *have + 1 : 0;
    uint32_t *nv = pp_grow32(*v, cap, (size_t)n + 1, sizeof(uint32_t),
                             (size_t)n + 1, (size_t)n + 1, 0);

    if (!nv) {
        return -1;
    }
    if (n + 1 > had) {
        memset(nv + had, 0, sizeof(uint32_t) * (n + 1 - had));
        *have = n;
    }
    *v = nv;
    return 0;
}

/* Room for every frame id of p. */
static int fkeys_fit(fkeys_t *k, const pp_profile_t *p)
{
    return ids_fit(&k->by_frame, &k->cap, &k->nframes, p->nframes);
}

static int fkeys_init(fkeys_t *k, const pp_profile_t *p, uint32_t want)
{
    memset(k, 0, sizeof(*k));
    return fkeys_fit(k, p) || pp_u64map_init(&k->by_name, want) ? -1 : 0;
}

static void fkeys_free(fkeys_t *k)
{
    free(k->by_frame);
    k->by_frame = NULL;
    k->cap = k->nframes = 0;
    pp_u64map_free(&k->by_name);
}

/* A frame's function key: the key of the first frame seen with its name
 * and file (an unresolved frame is a function of its own). */
static uint32_t function_key(fkeys_t *k, const pp_profile_t *p, uint32_t frame)
{
    const pp_pframe_t *f = pp_profile_pframe(p, frame);
    uint32_t *named;

    if (!frame || frame > k->nframes) {
        return f->key;
    }
    if (k->by_frame[frame] != 0) {
        return k->by_frame[frame];
    }
    if (!f->known) {
        k->by_frame[frame] = f->key;
        return f->key;
    }
    named = pp_u64map_get(&k->by_name, f->fid, f->key);
    k->by_frame[frame] = named ? *named : f->key;
    return k->by_frame[frame];
}

/* ---- call tree ---- */

typedef struct tree_priv {
    pp_u64map_t index; /* (parent, fkey) -> index + 1 */
    uint32_t *by_node; /* profile node id -> index + 1, so stacks that
                        * share a prefix walk only down to it */
    uint32_t nnodes;   /* ids up to it have an entry */
    uint32_t by_node_cap;
    fkeys_t fk;
} tree_priv_t;

/* Room for every node id of p, and every frame id. */
static int tree_fit(tree_priv_t *pv, const pp_profile_t *p)
{
    return ids_fit(&pv->by_node, &pv->by_node_cap, &pv->nnodes, p->nnodes) ||
                   fkeys_fit(&pv->fk, p)
               ? -1
               : 0;
}

/* Leave a stack out of the views: its samples are counted, not drawn. */
static void tree_leave_out(pp_tree_t *t, const pp_prof_stack_t *e)
{
    t->truncated = 1;
    t->left_out += e->count;
    t->stacks_left_out++;
}

/* Add one stack.  What it may cost is bounded before anything is written:
 * the store is walked only while the walk budget lasts, and nodes are made
 * only if the whole missing part fits under the node cap, so a stack is
 * either in the tree with all its samples or left out whole. */
static void tree_add_stack(pp_tree_t *t, const pp_profile_t *p,
                           const pp_prof_stack_t *e)
{
    tree_priv_t *pv = t->priv;
    uint32_t chain[PP_DEPTH_LIMIT + 2], frames[PP_DEPTH_LIMIT + 2];
    uint32_t n = 0, node = e->leaf, parent = 0, j, leaf;

    if (!e->leaf) {
        /* not in the snapshot: the store did not resolve its leaf, or
         * pp_profile_resolve_tree did not copy it (the tree was full);
         * counted as the walk of its leaf would have been */
        if (t->full || t->walked >= PP_TREE_MAX_WALK) {
            t->full = 1;
        }
        else {
            t->walked++;
        }
        tree_leave_out(t, e);
        return;
    }
    if (tree_fit(pv, p)) {
        t->full = 1; /* out of memory */
        tree_leave_out(t, e);
        return;
    }
    /* walk up the profile's trie until a node this tree already has */
    while (node && n < PP_DEPTH_LIMIT + 2) {
        if (node > pv->nnodes) {
            break;
        }
        if (pv->by_node[node]) {
            parent = pv->by_node[node];
            break;
        }
        if (t->full || t->walked >= PP_TREE_MAX_WALK) {
            /* once the budget is spent, only stacks whose every node is
             * already drawn get in (found above at the first step) */
            t->full = 1;
            tree_leave_out(t, e);
            return;
        }
        t->walked++;
        if (node > p->nnodes) {
            break;
        }
        frames[n] = p->nodes[node - 1].frame;
        chain[n++] = node;
        node = p->nodes[node - 1].parent;
    }
    if (n == 0 && !parent) {
        tree_leave_out(t, e); /* unresolvable: counted, never lost */
        return;
    }
    if (t->n + n > PP_TREE_MAX_NODES) {
        t->full = 1;
        tree_leave_out(t, e);
        return;
    }
    /* create the missing part top-down */
    for (j = n; j-- > 0;) {
        uint32_t fkey = function_key(&pv->fk, p, frames[j]);
        uint32_t *slot =
            pp_u64map_get(&pv->index, ((uint64_t)parent << 32) | fkey, 0);
        pp_tnode_t *x;

        if (!slot) {
            t->full = 1; /* out of memory: the nodes made stay empty */
            tree_leave_out(t, e);
            return;
        }
        if (*slot == 0) {
            pp_tnode_t *nv = pp_grow32(t->v, &t->cap, (size_t)t->n + 1,
                                       sizeof(*nv), 1024, PP_TREE_MAX_NODES, 1);
            if (!nv) {
                *slot = 0;
                t->full = 1;
                tree_leave_out(t, e);
                return;
            }
            t->v = nv;
            x = &t->v[t->n];
            memset(x, 0, sizeof(*x));
            x->parent = parent;
            x->fkey = fkey;
            x->frame = frames[j];
            x->depth = parent ? t->v[parent - 1].depth + 1 : 0;
            *slot = ++t->n;
            if (x->depth + 1 > t->max_depth) {
                t->max_depth = x->depth + 1;
            }
        }
        pv->by_node[chain[j]] = *slot;
        x = &t->v[*slot - 1];
        /* the line most samples were on, judged per stack as it comes */
        if (x->frame == frames[j]) {
            x->frame_hits += e->count;
        }
        else if (e->count > x->frame_hits) {
            x->frame = frames[j];
            x->frame_hits = e->count;
        }
        parent = *slot;
    }
    leaf = parent;
    /* counts along the whole path, leaf to root */
    t->v[leaf - 1].self += e->count;
    t->v[leaf - 1].self_weight_us += e->weight_us;
    t->v[leaf - 1].self_cpu_us += e->cpu_us;
    for (j = leaf; j; j = t->v[j - 1].parent) {
        pp_tnode_t *x = &t->v[j - 1];
        x->count += e->count;
        x->weight_us += e->weight_us;
        x->cpu_us += e->cpu_us;
    }
}

/* qsort takes no context: the tree being sorted, per thread (threaded
 * MPMs render several pages at once in one process). */
static __thread const pp_tree_t *sort_tree;

static int cmp_children(const void *a, const void *b)
{
    const pp_tnode_t *x = &sort_tree->v[*(const uint32_t *)a - 1];
    const pp_tnode_t *y = &sort_tree->v[*(const uint32_t *)b - 1];
    if (x->count != y->count) {
        return x->count < y->count ? 1 : -1;
    }
    return x->fkey > y->fkey ? 1 : (x->fkey < y->fkey ? -1 : 0);
}

static void tree_link(pp_tree_t *t)
{
    uint32_t *order = malloc(sizeof(uint32_t) * (t->n ? t->n : 1));
    uint32_t i;

    if (!order) {
        return;
    }
    for (i = 0; i < t->n; i++) {
        order[i] = i + 1;
    }
    sort_tree = t;
    qsort(order, t->n, sizeof(uint32_t), cmp_children);
    sort_tree = NULL;
    /* prepend in reverse order so the biggest child comes first */
    for (i = t->n; i-- > 0;) {
        pp_tnode_t *x = &t->v[order[i] - 1];
        if (x->parent) {
            x->next_sibling = t->v[x->parent - 1].first_child;
            t->v[x->parent - 1].first_child = order[i];
        }
        else {
            x->next_sibling = t->roots;
            t->roots = order[i];
            t->total += x->count;
        }
    }
    free(order);
    /* x offsets for the flame graph: children laid out left to right
     * from their parent's offset, biggest first.  Parents come before
     * children in v (a node is created after its parent), so one pass
     * in index order sees every parent's x first. */
    {
        uint64_t x = 0;
        uint32_t c;
        for (c = t->roots; c; c = t->v[c - 1].next_sibling) {
            t->v[c - 1].x = x;
            x += t->v[c - 1].count;
        }
        for (i = 0; i < t->n; i++) {
            uint64_t cx = t->v[i].x;
            for (c = t->v[i].first_child; c; c = t->v[c - 1].next_sibling) {
                t->v[c - 1].x = cx;
                cx += t->v[c - 1].count;
            }
        }
    }
}

/* Give back what only the build uses: the maps (the nodes stay). */
static void tree_priv_clear(tree_priv_t *pv)
{
    pp_u64map_free(&pv->index);
    free(pv->by_node);
    pv->by_node = NULL;
    pv->by_node_cap = pv->nnodes = 0;
    fkeys_free(&pv->fk);
}

static int tree_begin(pp_tree_t *t, const pp_profile_t *p)
{
    tree_priv_t *pv;

    memset(t, 0, sizeof(*t));
    t->prof = p;
    t->cap = 1024;
    /* zeroed (and the grown part below): every node is written when first
     * mapped, but the analyzer cannot see that invariant */
    t->v = calloc(t->cap, sizeof(pp_tnode_t));
    pv = calloc(1, sizeof(*pv));
    t->priv = pv;
    if (!t->v || !pv || pp_u64map_init(&pv->index, t->cap) ||
        fkeys_init(&pv->fk, p, 1024) || tree_fit(pv, p)) {
        return -1;
    }
    return 0;
}

static void tree_end(pp_tree_t *t, const pp_profile_t *p, size_t i)
{
    tree_priv_t *pv = t->priv;

    for (; i < p->n; i++) {
        tree_leave_out(t, &p->v[i]);
    }
    tree_link(t);
    /* the maps only served the build: give their memory back before the
     * page is written */
    tree_priv_clear(pv);
}

int pp_tree_build(pp_tree_t *t, const pp_profile_t *p)
{
    size_t i;

    if (tree_begin(t, p)) {
        return -1;
    }
    /* stacks come most samples first: past the caps only rare ones are
     * left out of the views (the exports keep them all) */
    for (i = 0; i < p->n && i < PP_TREE_MAX_STACKS; i++) {
        tree_add_stack(t, p, &p->v[i]);
    }
    tree_end(t, p, i);
    return 0;
}

int pp_profile_resolve_tree(pp_profile_t *p, const pp_store_t *st, pp_tree_t *t)
{
    size_t i;
    int rc = 0;

    if (tree_begin(t, p)) {
        return -1;
    }
    /* the views merge nothing: the merge index goes back first */
    pp_u64map_free(&p->index);
    if (pp_resolve_init(p)) {
        return -1;
    }
    for (i = 0; i < p->n && i < PP_TREE_MAX_STACKS; i++) {
        pp_prof_stack_t *s = &p->v[i];
        if (!s->leaf && !rc) {
            if (!t->full) {
                rc = pp_resolve_stack(p, st, s);
            }
            else {
                /* a full tree takes only stacks it has every node of:
                 * copy nothing more, but find the leaves already copied */
                uint32_t *slot = pp_u64map_find(&p->node_of, s->node);
                s->leaf = slot ? *slot : 0;
            }
        }
        tree_add_stack(t, p, s);
    }
    tree_end(t, p, i);
    /* the tree holds what the views draw, and reads only the frames: the
     * copied nodes and both maps go back before the page is written */
    pp_resolve_drop_nodes(p);
    pp_u64map_free(&p->frame_of);
    return rc;
}

const pp_pframe_t *pp_tree_frame(const pp_tree_t *t, uint32_t frame)
{
    return pp_profile_pframe(t->prof, frame);
}

void pp_tree_free(pp_tree_t *t)
{
    tree_priv_t *pv = t->priv;
    if (pv) {
        tree_priv_clear(pv);
        free(pv);
    }
    free(t->v);
    memset(t, 0, sizeof(*t));
}

/* ---- hot functions ---- */

static int cmp_hot(const void *a, const void *b)
{
    const pp_hot_t *x = a, *y = b;
    if (x->self != y->self) {
        return x->self < y->self ? 1 : -1;
    }
    if (x->total != y->total) {
        return x->total < y->total ? 1 : -1;
    }
    return x->key > y->key ? 1 : (x->key < y->key ? -1 : 0);
}

/* From the call tree, which merged every stack by function already: a
 * function's self is the self of its nodes, and its total the count of
 * its outermost nodes only (a node under another node of the same
 * function is recursion, its samples already counted).  One pass over the
 * nodes, whatever the stacks' depth: the cost is bounded by the tree's
 * node cap. */
pp_hot_t *pp_hot_functions(const pp_tree_t *t, size_t *n)
{
    pp_u64map_t idx = {0};
    pp_hot_t *v = NULL;
    uint32_t *hot_of = NULL, *active = NULL;
    uint64_t *best = NULL;
    uint32_t i, c;

    *n = 0;
    if (!t->n) {
        return NULL;
    }
    v = calloc(t->n, sizeof(*v));
    hot_of = calloc(t->n, sizeof(*hot_of));
    active = calloc(t->n, sizeof(*active));
    best = calloc(t->n, sizeof(*best));
    if (!v || !hot_of || !active || !best || pp_u64map_init(&idx, t->n)) {
        goto fail;
    }
    for (i = 0; i < t->n; i++) {
        const pp_tnode_t *x = &t->v[i];
        uint32_t *slot = pp_u64map_get(&idx, x->fkey, (uint32_t)*n + 1);
        pp_hot_t *h;

        if (!slot) {
            goto fail;
        }
        if (*slot == *n + 1) {
            v[*n].frame = x->frame;
            v[(*n)++].key = pp_tree_frame(t, x->frame)->key;
        }
        hot_of[i] = *slot - 1;
        h = &v[hot_of[i]];
        h->self += x->self;
        h->self_weight_us += x->self_weight_us;
        h->self_cpu_us += x->self_cpu_us;
        /* the line of the node with the most self samples is the telling
         * one; a function never a leaf shows its busiest line */
        if ((x->self ? x->self + (1ULL << 63) : x->count) > best[hot_of[i]]) {
            best[hot_of[i]] = x->self ? x->self + (1ULL << 63) : x->count;
            h->frame = x->frame;
            h->key = pp_tree_frame(t, x->frame)->key;
        }
    }
    /* depth-first over the linked tree, counting a function's total only
     * where it is not already on the path (active) */
    c = t->roots;
    while (c) {
        const pp_tnode_t *x = &t->v[c - 1];
        if (active[hot_of[c - 1]]++ == 0) {
            v[hot_of[c - 1]].total += x->count;
            v[hot_of[c - 1]].total_weight_us += x->weight_us;
        }
        if (x->first_child) {
            c = x->first_child;
            continue;
        }
        while (c) {
            active[hot_of[c - 1]]--;
            if (t->v[c - 1].next_sibling) {
                c = t->v[c - 1].next_sibling;
                break;
            }
            c = t->v[c - 1].parent;
        }
    }
    if (*n > 1) {
        qsort(v, *n, sizeof(*v), cmp_hot);
    }
    pp_u64map_free(&idx);
    free(hot_of);
    free(active);
    free(best);
    return v;
fail:
    pp_u64map_free(&idx);
    free(hot_of);
    free(active);
    free(best);
    free(v);
    *n = 0;
    return NULL;
}
