/* pp_profile.c: stack sets (see pp_profile.h): a profile's stacks added
 * from a request's record, the store's aggregate tables or a time window,
 * merged by the store's leaf node, taken away (the rest of a slow/rest
 * split, a pull's "before") and sorted.  Heap memory only: one entry per
 * distinct stack, bounded by the store's aggregate tables.  Reads the
 * store's tables only, never a frame or a node (pp_resolve.c copies
 * those), and never writes to the store.  Page handlers, exports and
 * tests call it through pp_profile.h; the resolve and tree files
 * (pp_resolve.c, pp_tree.c) add to a profile through the same calls.
 */
#include <stdlib.h>
#include <string.h>

#include "pp_grow.h"
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
