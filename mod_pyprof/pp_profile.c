/* pp_profile.c: stack sets and the views computed from them (see
 * pp_profile.h).  Heap memory only: a stack set holds one entry per
 * distinct stack (bounded by the store's aggregate tables), a tree at most
 * PP_TREE_MAX_NODES nodes, and hot functions are read off the tree, so no
 * view costs stacks times depth.  The store is read in one place, the
 * resolve step, which copies frames and nodes into the profile; every
 * node chain is walked with a depth bound there and in the profile's own
 * trie, so a corrupt store cannot loop.  Never writes to the store.
 */
#include <stdlib.h>
#include <string.h>

#include "pp_grow.h"
#include "pp_hash.h"
#include "pp_profile.h"

/* ---- profiles ---- */

void pp_profile_init(pp_profile_t *p)
{
    memset(p, 0, sizeof(*p));
}

void pp_profile_free(pp_profile_t *p)
{
    uint32_t i;

    for (i = 0; i < p->nframes; i++) {
        free((char *)p->frames[i].function); /* function and file, one block */
    }
    free(p->frames);
    free(p->nodes);
    free(p->v);
    pp_u64map_free(&p->index);
    pp_u64map_free(&p->frame_of);
    pp_u64map_free(&p->node_of);
    memset(p, 0, sizeof(*p));
}

/* The merge index (node -> index + 1), built anew from the stacks: it is
 * only needed while stacks are added, taken away or looked up, so the
 * resolve for the views drops it, and the next
 * pp_profile_add or pp_profile_subtract builds it again. */
static int index_build(pp_profile_t *p)
{
    pp_u64map_t m;
    size_t i;

    if (pp_u64map_init(&m, (uint32_t)(p->cap ? p->cap : 256))) {
        pp_u64map_free(&m);
        return -1;
    }
    for (i = 0; i < p->n; i++) {
        /* cannot fail: room for cap keys (p->n < cap) before any growth */
        pp_u64map_get(&m, p->v[i].node, (uint32_t)i + 1);
    }
    pp_u64map_free(&p->index);
    p->index = m;
    return 0;
}

/* Stack positions are kept in 32 bits (index + 1 in the merge index). */
static int profile_grow(pp_profile_t *p)
{
    pp_prof_stack_t *v =
        pp_grow(p->v, &p->cap, p->n + 2, sizeof(*v), 256, UINT32_MAX - 1, 0);

    if (!v) {
        return -1;
    }
    p->v = v;
    return index_build(p);
}

int pp_profile_add(pp_profile_t *p, uint32_t node, uint64_t count,
                   uint64_t weight_us, uint64_t cpu_us)
{
    uint32_t *slot;

    if (!node || !count) {
        return 0;
    }
    if (p->n + 1 >= p->cap && profile_grow(p)) {
        return -1;
    }
    if (!p->index.keys && index_build(p)) {
        return -1;
    }
    slot = pp_u64map_get(&p->index, node, (uint32_t)p->n + 1);
    if (!slot) {
        return -1;
    }
    if (*slot == p->n + 1) {
        pp_prof_stack_t *s = &p->v[p->n++];
        memset(s, 0, sizeof(*s));
        s->node = node;
    }
    p->v[*slot - 1].count += count;
    p->v[*slot - 1].weight_us += weight_us;
    p->v[*slot - 1].cpu_us += cpu_us;
    p->samples += count;
    p->weight_us += weight_us;
    p->cpu_us += cpu_us;
    return 0;
}

int pp_profile_add_record(pp_profile_t *p, const pp_record_t *rec)
{
    uint32_t i;

    for (i = 0; i < PP_STACKS_MAX; i++) {
        const pp_stack_count_t *e = &rec->stacks[i];
        if (e->node && e->count &&
            pp_profile_add(p, e->node, e->count, e->weight_us, e->cpu_us)) {
            return -1;
        }
    }
    return 0;
}

int pp_profile_add_table(pp_profile_t *p, const pp_agg_entry_t *tab, uint32_t n,
                         int location)
{
    uint32_t i;

    for (i = 0; i < n; i++) {
        uint64_t key = atomic_load_explicit(&tab[i].key, memory_order_acquire);
        uint64_t count =
            atomic_load_explicit(&tab[i].count, memory_order_relaxed);
        if (!key || (key >> 32) != (uint64_t)location + 1 || !count) {
            continue;
        }
        if (pp_profile_add(
                p, (uint32_t)key, count,
                atomic_load_explicit(&tab[i].weight_us, memory_order_relaxed),
                atomic_load_explicit(&tab[i].cpu_us, memory_order_relaxed))) {
            return -1;
        }
    }
    return 0;
}

int pp_profile_add_window(pp_profile_t *p, const pp_store_t *st, int location,
                          int64_t now_us, int64_t window_us)
{
    int64_t last = now_us / PP_EPOCH_US, first, m;

    if (window_us < PP_EPOCH_US) {
        window_us = PP_EPOCH_US;
    }
    if (window_us > (PP_EPOCHS - 1) * PP_EPOCH_US) {
        window_us = (PP_EPOCHS - 1) * PP_EPOCH_US;
    }
    /* whole minutes: from the one that holds now - window, so a window
     * never misses what finished just before a minute boundary */
    first = (now_us - window_us) / PP_EPOCH_US;
    for (m = first; m <= last; m++) {
        uint32_t n;
        const pp_agg_entry_t *tab = pp_store_epoch(st, m, &n);
        if (tab && pp_profile_add_table(p, tab, n, location)) {
            return -1;
        }
    }
    return 0;
}

int pp_profile_subtract(pp_profile_t *p, uint32_t node, uint64_t count,
                        uint64_t weight_us, uint64_t cpu_us)
{
    uint32_t *slot;
    pp_prof_stack_t *s;

    if (!p->n) {
        return 0;
    }
    if (!p->index.keys && index_build(p)) {
        return -1;
    }
    slot = pp_u64map_find(&p->index, node);
    if (!slot || !*slot) {
        return 0;
    }
    s = &p->v[*slot - 1];
    count = count > s->count ? s->count : count;
    weight_us = weight_us > s->weight_us ? s->weight_us : weight_us;
    cpu_us = cpu_us > s->cpu_us ? s->cpu_us : cpu_us;
    s->count -= count;
    s->weight_us -= weight_us;
    s->cpu_us -= cpu_us;
    p->samples -= count;
    p->weight_us -= weight_us;
    p->cpu_us -= cpu_us > p->cpu_us ? p->cpu_us : cpu_us;
    return 0;
}

static int cmp_stack(const void *a, const void *b)
{
    const pp_prof_stack_t *x = a, *y = b;
    if (x->count != y->count) {
        return x->count < y->count ? 1 : -1;
    }
    return x->node > y->node ? 1 : (x->node < y->node ? -1 : 0);
}

void pp_profile_sort(pp_profile_t *p)
{
    size_t i;

    if (p->n > 1) {
        qsort(p->v, p->n, sizeof(*p->v), cmp_stack);
    }
    while (p->n && p->v[p->n - 1].count == 0) {
        p->n--; /* emptied by pp_profile_subtract */
    }
    /* the merge index points at old positions: rebuild it */
    if (p->index.keys) {
        pp_u64map_clear(&p->index);
        for (i = 0; i < p->n; i++) {
            /* cannot fail: the same table held these keys already */
            pp_u64map_get(&p->index, p->v[i].node, (uint32_t)i + 1);
        }
    }
}

int pp_profile_of_location(pp_profile_t *p, const pp_store_t *st, int location,
                           int64_t now_us, int64_t since_us, int side)
{
    uint32_t n;
    const pp_agg_entry_t *tab;

    if (side == PP_SIDE_SLOW || side == PP_SIDE_REST) {
        pp_profile_t slow;
        size_t i;

        pp_profile_init(&slow);
        tab = pp_store_agg_slow(st, &n);
        if (pp_profile_add_table(&slow, tab, n, location)) {
            pp_profile_free(&slow);
            return -1;
        }
        if (side == PP_SIDE_SLOW) {
            *p = slow;
            pp_profile_sort(p);
            return 0;
        }
        tab = pp_store_agg(st, &n);
        if (pp_profile_add_table(p, tab, n, location)) {
            pp_profile_free(&slow);
            return -1;
        }
        /* rest = all - slow, stack by stack */
        for (i = 0; i < slow.n; i++) {
            if (pp_profile_subtract(p, slow.v[i].node, slow.v[i].count,
                                    slow.v[i].weight_us, slow.v[i].cpu_us)) {
                pp_profile_free(&slow);
                return -1;
            }
        }
        pp_profile_free(&slow);
        pp_profile_sort(p);
        return 0;
    }
    if (since_us > 0) {
        if (pp_profile_add_window(p, st, location, now_us, since_us)) {
            return -1;
        }
    }
    else {
        tab = pp_store_agg(st, &n);
        if (pp_profile_add_table(p, tab, n, location)) {
            return -1;
        }
    }
    pp_profile_sort(p);
    return 0;
}

/* ---- the resolved snapshot ---- */

static const pp_pframe_t unknown_frame = {"[unknown]", "", 0, 0, 0, 0};

uint64_t pp_profile_function_id(const pp_frame_view_t *fv)
{
    return pp_fnv1a64_str(
        pp_fnv1a64(pp_fnv1a64_str(PP_FNV64_BASIS, fv->function), "\xff", 1),
        fv->file);
}

/* A frame of the profile's own: function and file copied into one block. */
static uint32_t frame_put(pp_profile_t *p, const char *function,
                          const char *file, uint32_t line, int known,
                          uint32_t key)
{
    size_t fl = strlen(function), sl = strlen(file);
    pp_frame_view_t fv;
    pp_pframe_t *f;
    char *mem;

    if (!(f = pp_grow32(p->frames, &p->frames_cap, (size_t)p->nframes + 1,
                        sizeof(*f), 256, UINT32_MAX - 1, 0))) {
        return 0;
    }
    p->frames = f;
    if (!(mem = malloc(fl + sl + 2))) {
        return 0;
    }
    memcpy(mem, function, fl + 1);
    memcpy(mem + fl + 1, file, sl + 1);
    f = &p->frames[p->nframes++];
    f->function = mem;
    f->file = mem + fl + 1;
    f->line = line;
    f->known = known;
    f->key = key ? key : p->nframes;
    fv.function = f->function;
    fv.file = f->file;
    fv.line = line;
    f->fid = pp_profile_function_id(&fv);
    return p->nframes;
}

uint32_t pp_profile_new_frame(pp_profile_t *p, const char *function,
                              const char *file, uint32_t line)
{
    return frame_put(p, function, file, line, 1, 0);
}

uint32_t pp_profile_new_node(pp_profile_t *p, uint32_t parent, uint32_t frame)
{
    pp_pnode_t *nv;

    if (parent > p->nnodes || !frame || frame > p->nframes) {
        return 0;
    }
    nv = pp_grow32(p->nodes, &p->nodes_cap, (size_t)p->nnodes + 1, sizeof(*nv),
                   1024, UINT32_MAX - 1, 0);
    if (!nv) {
        return 0;
    }
    p->nodes = nv;
    p->nodes[p->nnodes].parent = parent;
    p->nodes[p->nnodes].frame = frame;
    return ++p->nnodes;
}

int pp_profile_add_resolved(pp_profile_t *p, uint32_t leaf, uint64_t count,
                            uint64_t weight_us, uint64_t cpu_us)
{
    uint32_t *slot;

    if (!leaf || leaf > p->nnodes || !count) {
        return 0;
    }
    if (pp_profile_add(p, leaf, count, weight_us, cpu_us)) {
        return -1;
    }
    slot = pp_u64map_find(&p->index, leaf);
    if (slot && *slot) {
        p->v[*slot - 1].leaf = leaf;
    }
    return 0;
}

/* The profile's id of a store frame, copied on first use. */
static uint32_t resolve_frame(pp_profile_t *p, const pp_store_t *st,
                              uint32_t sframe)
{
    uint32_t *slot = pp_u64map_get(&p->frame_of, sframe, 0);
    pp_frame_view_t fv;
    uint32_t id;

    if (!slot) {
        return 0;
    }
    if (*slot != 0) {
        /* cppcheck takes the value for the pointer tested above */
        return *slot; /* cppcheck-suppress identicalInnerCondition */
    }
    if (pp_store_frame_view(st, sframe, &fv)) {
        id = frame_put(p, fv.function, fv.file, fv.line, 1, sframe);
    }
    else {
        id = frame_put(p, unknown_frame.function, unknown_frame.file, 0, 0,
                       sframe);
    }
    /* the map may have grown meanwhile: look the slot up again */
    slot = pp_u64map_get(&p->frame_of, sframe, 0);
    if (slot) {
        *slot = id;
    }
    return id;
}

/* Walk the store up from a stack's leaf until a node already copied (or
 * the root, or a node that does not resolve), then copy the missing part
 * top-down.  Bounded by the depth limit, so a corrupt store cannot loop.
 * -1 on ENOMEM. */
static int resolve_stack(pp_profile_t *p, const pp_store_t *st,
                         pp_prof_stack_t *s)
{
    uint32_t chain[PP_DEPTH_LIMIT + 2], frames[PP_DEPTH_LIMIT + 2];
    uint32_t *slots[PP_DEPTH_LIMIT + 2];
    uint32_t n = 0, node = s->node, parent = 0, pnode, j, cap;
    uint32_t *slot;

    /* one lookup per node: a node not copied yet gets a 0 slot, filled
     * once its part of the stack is copied (a slot left 0 reads as not
     * copied, so a stack cut short leaves nothing half-made) */
    cap = p->node_of.cap;
    while (node && n < PP_DEPTH_LIMIT + 2) {
        if (!(slot = pp_u64map_get(&p->node_of, node, 0))) {
            return -1;
        }
        if (*slot) {
            parent = *slot;
            break;
        }
        if (!pp_store_node_get(st, node, &pnode, &frames[n])) {
            break;
        }
        slots[n] = slot;
        chain[n++] = node;
        node = pnode;
    }
    for (j = n; j-- > 0;) {
        uint32_t f = resolve_frame(p, st, frames[j]), id;
        if (!f || !(id = pp_profile_new_node(p, parent, f))) {
            return -1;
        }
        /* the map may have grown since the slot was found */
        if (p->node_of.cap != cap) {
            slots[j] = pp_u64map_get(&p->node_of, chain[j], 0);
            if (!slots[j]) {
                return -1;
            }
        }
        *slots[j] = id;
        parent = id;
    }
    s->leaf = parent;
    return 0;
}

static int resolve_init(pp_profile_t *p)
{
    return (!p->frame_of.keys && pp_u64map_init(&p->frame_of, 1024)) ||
                   (!p->node_of.keys && pp_u64map_init(&p->node_of, 1024))
               ? -1
               : 0;
}

/* Drop the copied nodes and what maps store nodes to them: every stack
 * reads as unresolved again.  Frames stay, with their ids. */
static void resolve_drop_nodes(pp_profile_t *p)
{
    size_t i;

    for (i = 0; i < p->n; i++) {
        p->v[i].leaf = 0;
    }
    free(p->nodes);
    p->nodes = NULL;
    p->nnodes = p->nodes_cap = 0;
    pp_u64map_free(&p->node_of);
}

int pp_profile_resolve(pp_profile_t *p, const pp_store_t *st)
{
    size_t i;
    int rc = 0;

    if (resolve_init(p)) {
        return -1;
    }
    for (i = 0; i < p->n && rc == 0; i++) {
        if (!p->v[i].leaf) {
            rc = resolve_stack(p, st, &p->v[i]);
        }
    }
    /* store node -> copy served the copying only (a later call copies
     * again the nodes new stacks share with these: same frames, same
     * output) */
    pp_u64map_free(&p->node_of);
    return rc;
}

const pp_pframe_t *pp_profile_pframe(const pp_profile_t *p, uint32_t frame)
{
    if (!frame || frame > p->nframes) {
        return &unknown_frame;
    }
    return &p->frames[frame - 1];
}

uint32_t pp_profile_stack_frames(const pp_profile_t *p, size_t i, uint32_t *out,
                                 uint32_t cap)
{
    uint32_t tmp[PP_DEPTH_LIMIT + 2];
    uint32_t n = 0, k, node = i < p->n ? p->v[i].leaf : 0;

    while (node && node <= p->nnodes && n < PP_DEPTH_LIMIT + 2) {
        tmp[n++] = p->nodes[node - 1].frame;
        node = p->nodes[node - 1].parent;
    }
    for (k = 0; k < n && k < cap; k++) {
        /* tmp[0..n) was written by the loop above */
        // cppcheck-suppress uninitvar
        out[k] = tmp[n - 1 - k];
    }
    return k;
}

/* ---- store readers for one stack ---- */

uint32_t pp_profile_frames(const pp_store_t *st, uint32_t node, uint32_t *out,
                           uint32_t cap)
{
    uint32_t tmp[PP_DEPTH_LIMIT + 2];
    uint32_t n = 0, i, parent, frame;

    while (node && n < PP_DEPTH_LIMIT + 2 &&
           pp_store_node_get(st, node, &parent, &frame)) {
        tmp[n++] = frame;
        node = parent;
    }
    /* root first; if cap is smaller, the root-most cap frames */
    for (i = 0; i < n && i < cap; i++) {
        /* tmp[0..n) was written by the loop above */
        // cppcheck-suppress uninitvar
        out[i] = tmp[n - 1 - i];
    }
    return i;
}

void pp_profile_frame(const pp_store_t *st, uint32_t frame, pp_frame_view_t *fv)
{
    if (!pp_store_frame_view(st, frame, fv)) {
        fv->function = "[unknown]";
        fv->file = "";
        fv->line = 0;
    }
}

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
    pp_u64map_free(&pv->index);
    free(pv->by_node);
    pv->by_node = NULL;
    pv->by_node_cap = pv->nnodes = 0;
    fkeys_free(&pv->fk);
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
    if (resolve_init(p)) {
        return -1;
    }
    for (i = 0; i < p->n && i < PP_TREE_MAX_STACKS; i++) {
        pp_prof_stack_t *s = &p->v[i];
        if (!s->leaf && !rc) {
            if (!t->full) {
                rc = resolve_stack(p, st, s);
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
    resolve_drop_nodes(p);
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
        pp_u64map_free(&pv->index);
        free(pv->by_node);
        fkeys_free(&pv->fk);
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
