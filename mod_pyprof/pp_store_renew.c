/* pp_store_renew.c: renewal at a graceful restart: whether the intern
 * tables or the location rows are too full to carry on, and the copy of
 * what is worth keeping into a new store (see pp_store.h).
 *
 * Called by the parent process, single-threaded, at post_config of a
 * graceful restart; the old store is still read by the old generation's
 * children meanwhile, so nothing here writes to it.  Never touches Python
 * or httpd.
 */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "pp_store_int.h"
#include "pp_time.h"

/* Renew at half full.  The intern tables are probed linearly for at most
 * PROBE_LIMIT entries, and clusters make them refuse inserts from about
 * 70% (1,024 frames: the first refusal at 73%): the next generation's
 * code needs the rest.  What a renewal carries over takes at most a
 * quarter. */
#define RENEW_AT(used, cap) ((uint64_t)(used)*2 >= (uint64_t)(cap))
#define CARRY_MAX(used, cap) ((uint64_t)(used)*4 >= (uint64_t)(cap))

static uint32_t table_used(const _Atomic uint64_t *tab, uint32_t n)
{
    uint32_t i, used = 0;

    for (i = 0; i < n; i++) {
        used += atomic_load_explicit(&tab[i], memory_order_relaxed) != 0;
    }
    return used;
}

static int prefix_listed(const char *path, const char *const *prefixes, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        if (prefixes[i] && strncmp(path, prefixes[i], PP_PREFIX_MAX) == 0) {
            return 1;
        }
    }
    return 0;
}

int pp_store_wants_renewal(const pp_store_t *st, const char *const *prefixes,
                           int n, const char **why)
{
    int i, used = 0, have = 0, want = 0;

    if (RENEW_AT(table_used(pp_store_frame_table(st), st->nframes),
                 st->nframes)) {
        *why = "the frame table is half full";
        return 1;
    }
    if (RENEW_AT(table_used(pp_store_node_table(st), st->nnodes), st->nnodes)) {
        *why = "the stack table is half full";
        return 1;
    }
    if (RENEW_AT(atomic_load(&st->arena_used) * ARENA_UNIT, st->arena_size)) {
        *why = "the frame text is half full";
        return 1;
    }
    for (i = 0; i < PP_MAX_LOCATIONS; i++) {
        const pp_location_t *loc =
            (const pp_location_t *)((const char *)st + st->off_locations) + i;
        if (atomic_load(&loc->used)) {
            used++;
            have += prefix_listed(loc->path, prefixes, n);
        }
    }
    /* distinct prefixes configured now that have no row yet */
    for (i = 0; i < n; i++) {
        int j, dup = 0;
        for (j = 0; j < i && !dup; j++) {
            dup = prefixes[j] && prefixes[i] &&
                  strncmp(prefixes[i], prefixes[j], PP_PREFIX_MAX) == 0;
        }
        want += !dup && prefixes[i];
    }
    if (want - have > PP_MAX_LOCATIONS - used && used > have) {
        *why = "the location rows are taken by prefixes no longer "
               "configured";
        return 1;
    }
    return 0;
}

/* What a renewal has moved so far: src id -> dst id for nodes and
 * frames, and how many of each (the budget). */
typedef struct renew_map {
    uint32_t *node, *frame;
    uint32_t nodes, frames;
} renew_map_t;

/* The frame in dst for frame `frame` of src; 0 if it does not resolve or
 * dst is full. */
static uint32_t renew_frame(pp_store_t *dst, const pp_store_t *src,
                            renew_map_t *m, uint32_t frame)
{
    pp_frame_view_t fv;
    uint32_t f;

    if (!frame || frame > src->nframes) {
        return 0;
    }
    if (!(f = m->frame[frame])) {
        if (!pp_store_frame_view(src, frame, &fv) ||
            !(f = pp_store_intern_frame(dst, fv.function, strlen(fv.function),
                                        fv.file, strlen(fv.file), fv.line))) {
            return 0;
        }
        m->frame[frame] = f;
        m->frames++;
    }
    return f;
}

/* The node in dst for node `node` of src, interning its chain from the
 * nearest ancestor already mapped.  0 if the chain does not resolve or
 * dst is full. */
static uint32_t renew_node(pp_store_t *dst, const pp_store_t *src,
                           renew_map_t *m, uint32_t node)
{
    uint32_t *memo = m->node;
    uint32_t chain[PP_DEPTH_LIMIT + 2], parent, frame, cur = node, to = 0;
    uint32_t n = 0;

    while (cur) {
        if (cur > src->nnodes) {
            return 0;
        }
        if (memo[cur]) {
            break;
        }
        if (n == PP_DEPTH_LIMIT + 2 ||
            !pp_store_node_get(src, cur, &parent, &frame)) {
            return 0;
        }
        chain[n++] = cur;
        cur = parent;
    }
    if (cur) {
        to = memo[cur];
    }
    while (n > 0) {
        uint32_t f;

        cur = chain[--n];
        if (!pp_store_node_get(src, cur, &parent, &frame) ||
            !(f = renew_frame(dst, src, m, frame))) {
            return 0;
        }
        if (!(to = pp_store_intern_node(dst, to, f))) {
            return 0;
        }
        memo[cur] = to;
        m->nodes++;
    }
    return to;
}

/* Move one kept trace (src's record i) to the same place in dst. */
static void renew_trace(pp_store_t *dst, const pp_store_t *src, renew_map_t *m,
                        uint32_t i, const int *carried)
{
    static pp_record_t rec; /* parent only, one at a time */
    pp_record_t *to = (pp_record_t *)((char *)dst + dst->off_traces) + i;
    uint32_t j, other = pp_store_intern_node(dst, 0, dst->frame_other);

    if (!pp_store_read_trace(src, i, &rec)) {
        return;
    }
    memcpy(&to->req, &rec.req, sizeof(to->req));
    memcpy(to->segments, rec.segments, sizeof(to->segments));
    memcpy(to->gil_holders, rec.gil_holders, sizeof(to->gil_holders));
    for (j = 0; j < PP_GIL_HOLDERS; j++) {
        pp_gil_holder_t *h = &to->gil_holders[j];

        h->frame = h->frame ? renew_frame(dst, src, m, h->frame) : 0;
        if (h->location >= 0 &&
            (h->location >= PP_MAX_LOCATIONS || !carried[h->location])) {
            h->location = PP_GIL_NO_LOCATION;
        }
    }
    to->req.nstacks = 0;
    if (to->req.location < 0 || to->req.location >= PP_MAX_LOCATIONS ||
        !carried[to->req.location]) {
        to->req.location = -1;
    }
    for (j = 0; j < PP_STACKS_MAX; j++) {
        const pp_stack_count_t *e = &rec.stacks[j];
        pp_stack_count_t *ne;
        uint32_t node;

        if (!e->node) {
            continue;
        }
        node = renew_node(dst, src, m, e->node);
        if (!(ne = pp_record_stack_entry(to, node ? node : other, 1))) {
            continue;
        }
        ne->count += e->count;
        ne->weight_us += e->weight_us;
        ne->cpu_us += e->cpu_us;
    }
    to->req.last_node =
        rec.req.last_node ? renew_node(dst, src, m, rec.req.last_node) : 0;
    atomic_store(&to->seq, 2);
}

int pp_store_renew(pp_store_t *dst, const pp_store_t *src,
                   const char *const *prefixes, int n)
{
    /* the rings, each newest first: main, triggered/captured, fast */
    struct {
        uint32_t base, size;
        uint64_t next;
    } rings[3];
    int carried[PP_MAX_LOCATIONS];
    renew_map_t m;
    uint64_t left_behind = 0;
    uint32_t r, k;
    int loc, dropped = 0;
    size_t node_bytes, frame_bytes;

    if (!dst || !src || dst->nslots != src->nslots || dst->keep != src->keep ||
        dst->nspecial != src->nspecial || dst->nfast != src->nfast ||
        dst->nframes < src->nframes || dst->nnodes < src->nnodes) {
        return -1;
    }
    rings[0].base = 0;
    rings[0].size = src->keep;
    rings[0].next = atomic_load(&src->trace_next);
    rings[1].base = src->keep;
    rings[1].size = src->nspecial;
    rings[1].next = atomic_load(&src->special_next);
    rings[2].base = src->keep + src->nspecial;
    rings[2].size = src->nfast;
    rings[2].next = atomic_load(&src->fast_next);
    memset(&m, 0, sizeof(m));
    node_bytes = ((size_t)src->nnodes + 1) * sizeof(uint32_t);
    frame_bytes = ((size_t)src->nframes + 1) * sizeof(uint32_t);
    /* each suppression on the line cppcheck reports (the one with -1) */
    // clang-format off
    m.node = mmap(NULL, node_bytes, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); // cppcheck-suppress invalidFunctionArg
    m.frame = mmap(NULL, frame_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); // cppcheck-suppress invalidFunctionArg
    // clang-format on
    if (m.node == MAP_FAILED || m.frame == MAP_FAILED) {
        if (m.node != MAP_FAILED) {
            munmap(m.node, node_bytes);
        }
        if (m.frame != MAP_FAILED) {
            munmap(m.frame, frame_bytes);
        }
        return -1;
    }
    for (loc = 0; loc < PP_MAX_LOCATIONS; loc++) {
        const pp_location_t *from =
            (const pp_location_t *)((const char *)src + src->off_locations) +
            loc;
        pp_location_t *to = pp_store_location(dst, loc);

        carried[loc] = 0;
        if (!atomic_load(&from->used)) {
            continue;
        }
        if (!prefix_listed(from->path, prefixes, n)) {
            dropped++;
            continue;
        }
        memcpy(to, from, sizeof(*to));
        to->path[PP_PREFIX_MAX - 1] = '\0';
        to->app_root[PP_PREFIX_MAX - 1] = '\0';
        carried[loc] = 1;
        /* GIL blame rows are keyed by frame ids of src: again, by dst's */
        memset(to->gil_blame, 0, sizeof(to->gil_blame));
        for (k = 0; k < PP_GIL_BLAME_ROWS; k++) {
            const pp_agg_entry_t *e = &from->gil_blame[k];
            uint64_t key = atomic_load(&e->key);
            uint32_t f = (uint32_t)key;

            if (key && (!f || (f = renew_frame(dst, src, &m, f)) != 0)) {
                (void)pp_agg_add(
                    to->gil_blame, PP_GIL_BLAME_ROWS,
                    (key & ~(uint64_t)0xffffffffu) | f, atomic_load(&e->count),
                    atomic_load(&e->weight_us), atomic_load(&e->cpu_us));
            }
        }
    }
    /* Kept traces, newest first, while they take at most a quarter of
     * each table: the new code needs the room.  The older ones left
     * behind count as evicted. */
    for (r = 0; r < 3; r++) {
        for (k = 0; k < rings[r].size; k++) {
            uint32_t i = rings[r].base +
                         (uint32_t)((rings[r].next + rings[r].size - 1 - k) %
                                    rings[r].size);
            const pp_record_t *rec = pp_store_trace_at(src, i);

            if (!rec || !rec->req.serial) {
                continue;
            }
            if (CARRY_MAX(m.frames, dst->nframes) ||
                CARRY_MAX(m.nodes, dst->nnodes) ||
                CARRY_MAX(atomic_load(&dst->arena_used) * ARENA_UNIT,
                          dst->arena_size)) {
                left_behind++;
                continue;
            }
            renew_trace(dst, src, &m, i, carried);
        }
    }
    munmap(m.node, node_bytes);
    munmap(m.frame, frame_bytes);

    memcpy(&dst->c, &src->c, sizeof(dst->c));
    atomic_fetch_add(&dst->c.renewals, 1);
    atomic_store(&dst->c.renewed_us, (uint64_t)pp_wall_us());
    atomic_fetch_add(&dst->c.locations_reclaimed, (uint64_t)dropped);
    atomic_fetch_add(&dst->c.traces_evicted, left_behind);
    atomic_store(&dst->generation, atomic_load(&src->generation));
    dst->created_us = src->created_us;
    atomic_store(&dst->serial_next, atomic_load(&src->serial_next));
    atomic_store(&dst->trace_next, rings[0].next);
    atomic_store(&dst->special_next, rings[1].next);
    atomic_store(&dst->fast_next, rings[2].next);
    atomic_store(&dst->capture_seq, atomic_load(&src->capture_seq));
    return dropped;
}
