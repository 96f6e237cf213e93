/* pp_store.c: the store's layout and life: sizing, create, destroy,
 * whether a store can be kept across a graceful restart, and the location
 * rows (see pp_store.h; pp_store_int.h for what the pp_store*.c files
 * share).
 *
 * Called by the parent process, single-threaded, at config time
 * (post_config: min_size, create, compatible, location_register,
 * destroy), except the accessors pp_store_location, pp_store_slot and
 * pp_status_class, which any thread of any process may call.  The layout
 * (offsets, counts, divisors) is written here once, into the header's
 * process-private part, and read only from there.  Never touches Python
 * or httpd.
 */
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pp_hash.h"
#include "pp_store_int.h"
#include "pp_time.h"

/* ---- layout ---- */

static uint32_t pow2_floor(uint64_t x)
{
    uint32_t p = 1;
    while ((uint64_t)p * 2 <= x && p < (1u << 30)) {
        p *= 2;
    }
    return p;
}

static uint64_t layout_signature(void)
{
    const uint64_t parts[] = {
        sizeof(pp_store_t),    sizeof(pp_slot_t),     sizeof(pp_record_t),
        sizeof(pp_req_t),      sizeof(pp_location_t), sizeof(pp_agg_entry_t),
        sizeof(pp_counters_t), PP_STACKS_MAX,         PP_HIST_BUCKETS,
        PP_MAX_LOCATIONS,      PP_FRAME_TEXT_MAX,     PP_STORE_VERSION};

    return pp_fnv1a64(PP_FNV64_BASIS, parts, sizeof(parts));
}

typedef struct layout {
    uint64_t off_locations, off_slots, off_traces, off_frames, off_nodes,
        off_agg, off_arena, end;
    uint64_t off_agg_slow, off_epochs, off_epoch_stamps;
    uint32_t nframes, nnodes, nagg, nagg_slow, nepoch;
    uint64_t arena_size;
} layout_t;

static uint32_t special_for(uint32_t keep)
{
    return keep / 4 > 4 ? keep / 4 : 4;
}

static uint32_t ring_records(uint32_t keep)
{
    return keep + special_for(keep) + PP_FAST_KEEP;
}

static uint64_t fixed_part(uint32_t nslots, uint32_t keep)
{
    uint64_t off = ALIGN64(sizeof(pp_store_t));
    off = ALIGN64(off + (uint64_t)PP_MAX_LOCATIONS * sizeof(pp_location_t));
    off = ALIGN64(off + (uint64_t)nslots * sizeof(pp_slot_t));
    off = ALIGN64(off + (uint64_t)ring_records(keep) * sizeof(pp_record_t));
    return off;
}

static uint64_t tables_size(uint32_t nframes, uint32_t nnodes, uint32_t nagg,
                            uint64_t arena)
{
    return ALIGN64((uint64_t)nframes * 8) + ALIGN64((uint64_t)nnodes * 8) +
           ALIGN64((uint64_t)nagg * sizeof(pp_agg_entry_t)) * 2 +
           ALIGN64((uint64_t)PP_EPOCHS * MIN_EPOCH * sizeof(pp_agg_entry_t)) +
           ALIGN64((uint64_t)PP_EPOCHS * 8) + ALIGN64(arena);
}

uint64_t pp_store_min_size(uint32_t nslots, uint32_t keep)
{
    return fixed_part(nslots, keep) +
           tables_size(MIN_FRAMES, MIN_NODES, MIN_AGG, MIN_ARENA);
}

static uint64_t place_tables(layout_t *l, uint64_t off)
{
    l->off_frames = off;
    off = ALIGN64(off + (uint64_t)l->nframes * 8);
    l->off_nodes = off;
    off = ALIGN64(off + (uint64_t)l->nnodes * 8);
    l->off_agg = off;
    off = ALIGN64(off + (uint64_t)l->nagg * sizeof(pp_agg_entry_t));
    l->off_agg_slow = off;
    off = ALIGN64(off + (uint64_t)l->nagg_slow * sizeof(pp_agg_entry_t));
    l->off_epochs = off;
    off =
        ALIGN64(off + (uint64_t)PP_EPOCHS * l->nepoch * sizeof(pp_agg_entry_t));
    l->off_epoch_stamps = off;
    off = ALIGN64(off + (uint64_t)PP_EPOCHS * 8);
    l->off_arena = off;
    return off;
}

static int make_layout(uint64_t size, uint32_t nslots, uint32_t keep,
                       layout_t *l)
{
    uint64_t off = ALIGN64(sizeof(pp_store_t)), rest, tables_at;

    if (size < pp_store_min_size(nslots, keep)) {
        return -1;
    }
    l->off_locations = off;
    off = ALIGN64(off + (uint64_t)PP_MAX_LOCATIONS * sizeof(pp_location_t));
    l->off_slots = off;
    off = ALIGN64(off + (uint64_t)nslots * sizeof(pp_slot_t));
    l->off_traces = off;
    off = ALIGN64(off + (uint64_t)ring_records(keep) * sizeof(pp_record_t));
    rest = size - off;
    tables_at = off;
    /* Split what is left: a frame costs 8 bytes of table plus ~96 bytes of
     * text; nodes and aggregate entries are many more than frames. */
    l->nframes = pow2_floor(rest / 8 / 104);
    l->nnodes = pow2_floor(rest / 4 / 8);
    l->nagg = pow2_floor(rest / 5 / sizeof(pp_agg_entry_t));
    l->nagg_slow = l->nagg / 2;
    l->nepoch = pow2_floor(rest / 5 / PP_EPOCHS / sizeof(pp_agg_entry_t));
    if (l->nframes < MIN_FRAMES) {
        l->nframes = MIN_FRAMES;
    }
    if (l->nnodes < MIN_NODES) {
        l->nnodes = MIN_NODES;
    }
    if (l->nagg < MIN_AGG) {
        l->nagg = MIN_AGG;
    }
    if (l->nagg_slow < MIN_AGG) {
        l->nagg_slow = MIN_AGG;
    }
    if (l->nepoch < MIN_EPOCH) {
        l->nepoch = MIN_EPOCH;
    }
    /* rounding to powers of two can overshoot near the minimum: halve the
     * biggest table until the arena's minimum fits too */
    while ((off = place_tables(l, tables_at)) + MIN_ARENA > size) {
        /* the biggest table still above its minimum gives way */
        struct {
            uint32_t *n;
            uint32_t min;
            uint64_t bytes;
        } t[5] = {
            {&l->nepoch, MIN_EPOCH,
             (uint64_t)PP_EPOCHS * l->nepoch * sizeof(pp_agg_entry_t)},
            {&l->nagg, MIN_AGG, (uint64_t)l->nagg * sizeof(pp_agg_entry_t)},
            {&l->nnodes, MIN_NODES, (uint64_t)l->nnodes * 8},
            {&l->nagg_slow, MIN_AGG,
             (uint64_t)l->nagg_slow * sizeof(pp_agg_entry_t)},
            {&l->nframes, MIN_FRAMES, (uint64_t)l->nframes * 8}};
        int i, pick = -1;

        for (i = 0; i < 5; i++) {
            if (*t[i].n > t[i].min &&
                (pick < 0 || t[i].bytes > t[pick].bytes)) {
                pick = i;
            }
        }
        if (pick < 0) {
            return -1;
        }
        *t[pick].n /= 2;
    }
    l->arena_size = (size - off) & ~(uint64_t)(ARENA_UNIT - 1);
    l->end = off + l->arena_size;
    return 0;
}

/* The nonce key from the kernel's random pool (time and pid as a last
 * resort: the nonce guards a form against cross-site posts together with
 * the Origin check, it protects no secret) */
static void make_nonce_key(unsigned char *out, size_t n)
{
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? read(fd, out, n) : -1;

    if (fd >= 0) {
        close(fd);
    }
    if (got != (ssize_t)n) {
        uint64_t a = pp_store_mix64((uint64_t)pp_wall_us());
        uint64_t b = pp_store_mix64(a ^ (uint64_t)getpid());
        size_t i;
        for (i = 0; i < n; i++) {
            out[i] = (unsigned char)((i & 8 ? b : a) >> (8 * (i & 7)));
        }
    }
}

pp_store_t *pp_store_create(uint64_t size, uint32_t nslots, uint32_t keep,
                            const char **err)
{
    layout_t l;
    pp_store_t *st;
    void *p;

    if (nslots == 0 || keep == 0 || make_layout(size, nslots, keep, &l)) {
        *err = "the memory budget is too small for the slots and kept "
               "traces";
        return NULL;
    }
    if (sysconf(_SC_PAGESIZE) <= 0 ||
        PP_STORE_PRIVATE_BYTES % sysconf(_SC_PAGESIZE) != 0) {
        *err = "the page size does not divide the store's 64 KiB private "
               "header";
        return NULL;
    }
    /* MAP_ANONYMOUS takes fd -1 (cppcheck's posix.cfg wants fd >= 0) */
    // clang-format off
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0); // cppcheck-suppress invalidFunctionArg
    // clang-format on
    if (p == MAP_FAILED) {
        *err = "mmap of the shared store failed";
        return NULL;
    }
    /* the layout part of the header: private to each process from its
     * fork on (see pp_store.h), so no other process can change the
     * offsets and counts this one computes with */
    /* MAP_FIXED over part of p: the result is p itself, nothing to free */
    // clang-format off
    // cppcheck-suppress leakReturnValNotUsed
    if (mmap(p, PP_STORE_PRIVATE_BYTES, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != p) { // cppcheck-suppress invalidFunctionArg
        // clang-format on
        munmap(p, size);
        *err = "mmap of the store's private header failed";
        return NULL;
    }
    /* anonymous mappings are zero-filled: every table starts empty */
    st = p;
    st->version = PP_STORE_VERSION;
    st->header_size = sizeof(pp_store_t);
    st->layout = layout_signature();
    st->total_size = size;
    st->created_us = pp_wall_us();
    st->nslots = nslots;
    st->keep = keep;
    st->nspecial = special_for(keep);
    st->nfast = PP_FAST_KEEP;
    make_nonce_key(st->nonce_key, sizeof(st->nonce_key));
    st->nframes = l.nframes;
    st->nnodes = l.nnodes;
    st->nagg = l.nagg;
    st->nagg_slow = l.nagg_slow;
    st->nepoch = l.nepoch;
    st->off_agg_slow = l.off_agg_slow;
    st->off_epochs = l.off_epochs;
    st->off_epoch_stamps = l.off_epoch_stamps;
    st->arena_size = l.arena_size;
    st->off_locations = l.off_locations;
    st->off_slots = l.off_slots;
    st->off_traces = l.off_traces;
    st->off_frames = l.off_frames;
    st->off_nodes = l.off_nodes;
    st->off_agg = l.off_agg;
    st->off_arena = l.off_arena;
    st->frame_truncated = pp_store_intern_frame(
        st, PP_FRAME_TRUNCATED_TEXT, strlen(PP_FRAME_TRUNCATED_TEXT), "", 0, 0);
    st->frame_unknown = pp_store_intern_frame(
        st, PP_FRAME_UNKNOWN_TEXT, strlen(PP_FRAME_UNKNOWN_TEXT), "", 0, 0);
    st->frame_other = pp_store_intern_frame(
        st, PP_FRAME_OTHER_TEXT, strlen(PP_FRAME_OTHER_TEXT), "", 0, 0);
    atomic_store(&st->serial_next, 1);
    /* published last: a reader that sees the magic sees a laid-out store */
    atomic_thread_fence(memory_order_release);
    st->magic = PP_STORE_MAGIC;
    return st;
}

void pp_store_destroy(pp_store_t *st)
{
    if (st) {
        munmap(st, st->total_size);
    }
}

int pp_store_compatible(const pp_store_t *st, uint64_t size, uint32_t nslots,
                        uint32_t keep)
{
    return st && st->magic == PP_STORE_MAGIC &&
           st->version == PP_STORE_VERSION &&
           st->header_size == sizeof(pp_store_t) &&
           st->layout == layout_signature() && st->total_size == size &&
           st->nslots == nslots && st->keep == keep;
}

/* ---- locations ---- */

pp_location_t *pp_store_location(pp_store_t *st, int idx)
{
    if (!st || idx < 0 || idx >= PP_MAX_LOCATIONS) {
        return NULL;
    }
    return (pp_location_t *)((char *)st + st->off_locations) + idx;
}

int pp_store_location_register(pp_store_t *st, const char *path,
                               uint32_t interval_us)
{
    int i, free_idx = -1;

    if (!st || !path) {
        return -1;
    }
    for (i = 0; i < PP_MAX_LOCATIONS; i++) {
        pp_location_t *loc = pp_store_location(st, i);
        if (atomic_load(&loc->used)) {
            if (strncmp(loc->path, path, PP_PREFIX_MAX) == 0) {
                loc->interval_us = interval_us;
                loc->config_gen = atomic_load(&st->generation);
                return i;
            }
        }
        else if (free_idx < 0) {
            free_idx = i;
        }
    }
    if (free_idx < 0) {
        return -1;
    }
    {
        pp_location_t *loc = pp_store_location(st, free_idx);
        size_t n = strnlen(path, PP_PREFIX_MAX - 1);
        memset(loc, 0, sizeof(*loc));
        memcpy(loc->path, path, n);
        loc->interval_us = interval_us;
        loc->config_gen = atomic_load(&st->generation);
        loc->created_us = pp_wall_us();
        atomic_store(&loc->used, 1);
    }
    return free_idx;
}

int pp_status_class(int status)
{
    return status >= 100 && status < 600 ? status / 100 - 1
                                         : PP_STATUS_CLASSES - 1;
}

/* ---- slots ---- */

pp_slot_t *pp_store_slot(pp_store_t *st, int idx)
{
    return pp_store_slot_at(st, idx);
}
