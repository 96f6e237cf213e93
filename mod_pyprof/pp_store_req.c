/* pp_store_req.c: a request's writes to its slot, from claim to the
 * notes and segments made while it runs, and the reaping of slots whose
 * owner died.
 *
 * Called by request threads: the Apache child's thread that serves the
 * request (claim, notes, capture_take, set_root) and, through the pyprof
 * API, the application's thread in the process that runs it, embedded or
 * a mod_wsgi daemon (adopt, segments, daemon CPU).  Exceptions, named in
 * pp_store.h: pp_store_capture_arm is the capture form's handler, and
 * pp_store_reap_dead also runs from child_init and the overview page.
 * Every write to a slot's record takes the slot's token
 * (pp_store_token.c); nothing else here waits.  Finishing a request is
 * pp_store_agg.c's.  Never allocates, never touches Python or httpd.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>

#include "pp_store_int.h"
#include "pp_time.h"

/* ---- locations ---- */

void pp_store_location_set_root(pp_store_t *st, int idx, const char *root)
{
    pp_location_t *loc = pp_store_location(st, idx);
    uint32_t expect = 0;
    size_t n;

    if (!loc || !root || !*root || atomic_load(&loc->root_state) ||
        !atomic_compare_exchange_strong(&loc->root_state, &expect, 1)) {
        return;
    }
    n = strnlen(root, PP_PREFIX_MAX - 1);
    memcpy(loc->app_root, root, n);
    loc->app_root[n] = '\0';
    atomic_store_explicit(&loc->root_state, 2, memory_order_release);
}

/* ---- claim ---- */

/* One pass over the slots from `start`: the index claimed, or -1. */
static int claim_pass(pp_store_t *st, const pp_req_info_t *info, uint32_t start)
{
    uint32_t i, n = st->nslots;

    for (i = 0; i < n; i++) {
        uint32_t idx = (start + i) % n;
        pp_slot_t *slot = pp_store_slot_at(st, (int)idx);
        uint32_t expect = PP_SLOT_FREE;
        pp_req_t *q;

        if (atomic_load_explicit(&slot->state, memory_order_relaxed) !=
                PP_SLOT_FREE ||
            !atomic_compare_exchange_strong(
                &slot->state, &expect,
                PP_SLOT_STATE(info->pid, PP_SLOT_CLAIMED))) {
            continue;
        }
        /* A daemon that sampled the slot's previous request may still be
         * writing to it under the token (its claimer was reaped): wait for
         * it like any writer, never wipe a token someone holds. */
        if (!pp_slot_token_take(slot)) {
            atomic_store(&slot->state, PP_SLOT_FREE);
            continue;
        }
        pp_rec_write_begin(&slot->rec);
        memset(&slot->rec.req, 0, sizeof(slot->rec.req));
        memset(slot->rec.stacks, 0, sizeof(slot->rec.stacks));
        memset(slot->rec.segments, 0, sizeof(slot->rec.segments));
        memset(slot->rec.gil_holders, 0, sizeof(slot->rec.gil_holders));
        memset(slot->rec.alloc_stacks, 0, sizeof(slot->rec.alloc_stacks));
        q = &slot->rec.req;
        q->serial = atomic_fetch_add(&st->serial_next, 1);
        pp_copy_str(q->id, sizeof(q->id), info->id);
        pp_copy_str(q->method, sizeof(q->method), info->method);
        pp_copy_str(q->uri, sizeof(q->uri), info->uri);
        pp_copy_str(q->vhost, sizeof(q->vhost), info->vhost);
        q->pid = info->pid;
        q->tid = info->tid;
        q->location = info->location;
        q->interval_us = info->interval_us;
        q->max_depth = info->max_depth;
        q->start_us = info->start_us;
        q->last_sample_us = info->start_us;
        q->flags = info->flags & (PP_REQ_TRIGGERED | PP_REQ_CAPTURED);
        q->capture = info->capture;
        pp_copy_str(q->trace_id, sizeof(q->trace_id), info->trace_id);
        pp_copy_str(q->parent_id, sizeof(q->parent_id), info->parent_id);
        pp_rec_write_end(&slot->rec);
        atomic_store(&slot->sampler_pid, 0);
        pp_slot_token_release(slot);
        atomic_store(&slot->state, PP_SLOT_STATE(info->pid, PP_SLOT_ACTIVE));
        return (int)idx;
    }
    return -1;
}

/* Is it this caller's turn to reap?  At most one reap per
 * PP_REAP_INTERVAL_US in the whole store: a store full of live requests
 * costs a failed claim no more than a scan now and then. */
static int reap_due(pp_store_t *st)
{
    int64_t now = pp_mono_us();
    int64_t last =
        atomic_load_explicit(&st->reap_last_us, memory_order_relaxed);

    return (last == 0 || now - last >= PP_REAP_INTERVAL_US || now < last) &&
           atomic_compare_exchange_strong(&st->reap_last_us, &last, now);
}

int pp_store_claim(pp_store_t *st, const pp_req_info_t *info, int hint)
{
    uint32_t start = (uint32_t)hint % st->nslots;
    int idx = claim_pass(st, info, start);

    /* no free slot: the slots of processes that died (SIGKILL, the OOM
     * killer) would otherwise stay taken until someone opens the
     * overview, and every request until then go unprofiled */
    if (idx < 0 && reap_due(st) && pp_store_reap_dead(st) > 0) {
        idx = claim_pass(st, info, start);
    }
    if (idx < 0) {
        atomic_fetch_add(&st->c.slots_full, 1);
    }
    return idx;
}

/* ---- notes ---- */

/* The claimer's own notes; the token keeps them apart from a daemon's
 * samples. */
static pp_record_t *note_begin(pp_store_t *st, int idx, pp_slot_t **slotp)
{
    pp_slot_t *slot = pp_store_slot_at(st, idx);
    if (!slot || PP_SLOT_PHASE(atomic_load(&slot->state)) != PP_SLOT_ACTIVE ||
        !pp_slot_token_take_counted(st, slot)) {
        return NULL;
    }
    *slotp = slot;
    pp_rec_write_begin(&slot->rec);
    return &slot->rec;
}

static void note_end(pp_slot_t *slot)
{
    pp_rec_write_end(&slot->rec);
    pp_slot_token_release(slot);
}

void pp_store_note_handler_start(pp_store_t *st, int idx, int64_t us)
{
    pp_slot_t *slot;
    pp_record_t *rec = note_begin(st, idx, &slot);
    if (rec) {
        if (!rec->req.handler_start_us) {
            rec->req.handler_start_us = us;
        }
        note_end(slot);
    }
}

void pp_store_note_app_end(pp_store_t *st, int idx, int64_t us)
{
    pp_slot_t *slot;
    pp_record_t *rec = note_begin(st, idx, &slot);
    if (rec) {
        rec->req.app_end_us = us;
        note_end(slot);
    }
}

void pp_store_note_unique_id(pp_store_t *st, int idx, const char *id)
{
    pp_slot_t *slot;
    pp_record_t *rec = id ? note_begin(st, idx, &slot) : NULL;
    if (rec) {
        pp_copy_str(rec->req.unique_id, sizeof(rec->req.unique_id), id);
        note_end(slot);
    }
}

/* ---- captures ---- */

uint32_t pp_store_capture_arm(pp_store_t *st, int location, uint32_t n)
{
    pp_location_t *loc = pp_store_location(st, location);
    uint32_t id;

    if (!loc || n == 0) {
        return 0;
    }
    id = atomic_fetch_add(&st->capture_seq, 1) + 1;
    /* the id first: a request that takes a slot of this capture must not
     * be labelled with the previous one */
    atomic_store(&loc->capture_left, 0);
    loc->capture_n = n;
    loc->capture_armed_us = pp_wall_us();
    atomic_store(&loc->capture_id, id);
    atomic_store(&loc->capture_left, (int32_t)n);
    return id;
}

uint32_t pp_store_capture_take(pp_store_t *st, int location)
{
    pp_location_t *loc = pp_store_location(st, location);
    int32_t left;

    if (!loc) {
        return 0;
    }
    left = atomic_load_explicit(&loc->capture_left, memory_order_relaxed);
    while (left > 0) {
        if (atomic_compare_exchange_weak(&loc->capture_left, &left, left - 1)) {
            return atomic_load(&loc->capture_id);
        }
    }
    return 0;
}


/* ---- daemon mode ---- */

static uint32_t clamp_u32(uint32_t v, uint32_t lo, uint32_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

int pp_store_adopt(pp_store_t *st, const char *id, int32_t pid,
                   const char *process_group, const char *app_group,
                   uint64_t *serial, uint32_t *interval_us, uint32_t *max_depth)
{
    uint32_t i;

    if (!id || !*id) {
        return -1;
    }
    for (i = 0; i < st->nslots; i++) {
        pp_slot_t *slot = pp_store_slot_at(st, (int)i);
        int32_t none = 0;

        if (PP_SLOT_PHASE(atomic_load(&slot->state)) != PP_SLOT_ACTIVE ||
            strncmp(slot->rec.req.id, id, PP_ID_MAX) != 0) {
            continue;
        }
        if (!atomic_compare_exchange_strong(&slot->sampler_pid, &none, pid)) {
            return -1; /* finished, or another daemon has it */
        }
        /* The slot may have gone to another request between the scan and
         * the compare-and-swap: then the adoption is handed back, or that
         * request would be sampled by nobody (its claimer leaves it to
         * us, we never register it). */
        if (!pp_slot_token_take_counted(st, slot)) {
            int32_t mine = pid;
            atomic_compare_exchange_strong(&slot->sampler_pid, &mine, 0);
            return -1;
        }
        if (strncmp(slot->rec.req.id, id, PP_ID_MAX) != 0 ||
            PP_SLOT_PHASE(atomic_load(&slot->state)) != PP_SLOT_ACTIVE) {
            int32_t mine = pid;
            atomic_compare_exchange_strong(&slot->sampler_pid, &mine, 0);
            pp_slot_token_release(slot);
            return -1;
        }
        pp_rec_write_begin(&slot->rec);
        slot->rec.req.flags |= PP_REQ_DAEMON;
        slot->rec.req.daemon_pid = pid;
        pp_copy_str(slot->rec.req.process_group,
                    sizeof(slot->rec.req.process_group), process_group);
        pp_copy_str(slot->rec.req.app_group, sizeof(slot->rec.req.app_group),
                    app_group);
        pp_rec_write_end(&slot->rec);
        *serial = slot->rec.req.serial;
        /* the record is shared memory: what steers this process' sampler
         * is kept to the range the configuration accepts */
        *interval_us = clamp_u32(slot->rec.req.interval_us, PP_INTERVAL_MIN_US,
                                 PP_INTERVAL_MAX_US);
        *max_depth = clamp_u32(slot->rec.req.max_depth, 1, PP_DEPTH_LIMIT);
        pp_slot_token_release(slot);
        return (int)i;
    }
    return -1;
}

void pp_store_note_daemon_cpu(pp_store_t *st, int idx, uint64_t serial,
                              int64_t cpu_us)
{
    pp_slot_t *slot = pp_slot_token_take_for(st, idx, serial, 1);

    if (!slot) {
        return;
    }
    pp_rec_write_begin(&slot->rec);
    slot->rec.req.daemon_cpu_us = cpu_us;
    pp_rec_write_end(&slot->rec);
    pp_slot_token_release(slot);
}

void pp_store_note_run_delay(pp_store_t *st, int idx, uint64_t serial,
                             int64_t us)
{
    pp_slot_t *slot = pp_slot_token_take_for(st, idx, serial, 1);

    if (!slot) {
        return;
    }
    pp_rec_write_begin(&slot->rec);
    slot->rec.req.run_delay_us = us;
    slot->rec.req.flags |= PP_REQ_RUN_DELAY;
    pp_rec_write_end(&slot->rec);
    pp_slot_token_release(slot);
}

int pp_store_note_alloc(pp_store_t *st, int idx, uint64_t serial,
                        const pp_req_t *a, const pp_alloc_stack_t *stacks,
                        uint32_t n)
{
    pp_slot_t *slot = pp_slot_token_take_for(st, idx, serial, 1);
    pp_location_t *loc;

    if (!slot) {
        return -1;
    }
    if (n > PP_ALLOC_STACKS) {
        n = PP_ALLOC_STACKS;
    }
    pp_rec_write_begin(&slot->rec);
    slot->rec.req.flags |= PP_REQ_ALLOC;
    slot->rec.req.alloc_bytes = a->alloc_bytes;
    slot->rec.req.alloc_count = a->alloc_count;
    slot->rec.req.alloc_live_bytes = a->alloc_live_bytes;
    slot->rec.req.alloc_samples = a->alloc_samples;
    slot->rec.req.alloc_mean = a->alloc_mean;
    slot->rec.req.alloc_flags = a->alloc_flags;
    slot->rec.req.alloc_nstacks = n;
    memset(slot->rec.alloc_stacks, 0, sizeof(slot->rec.alloc_stacks));
    memcpy(slot->rec.alloc_stacks, stacks, n * sizeof(*stacks));
    pp_rec_write_end(&slot->rec);
    loc = pp_store_location(st, slot->rec.req.location);
    pp_slot_token_release(slot);
    if (loc) {
        atomic_fetch_add(&loc->alloc_bytes, a->alloc_bytes);
        atomic_fetch_add(&loc->alloc_retained, a->alloc_live_bytes);
    }
    return 0;
}

/* ---- segments ---- */

uint32_t pp_store_segment_begin(pp_store_t *st, int idx, uint64_t serial,
                                const char *name, const char *detail,
                                int64_t now_us)
{
    pp_slot_t *slot = pp_slot_token_take_for(st, idx, serial, 0);
    pp_record_t *rec;
    pp_segment_t *g;
    uint32_t n, parent;

    if (!slot) {
        return 0;
    }
    rec = &slot->rec;
    n = rec->req.nsegments;
    if (n >= PP_SEGMENTS_MAX) {
        pp_rec_write_begin(rec);
        rec->req.segments_dropped++;
        pp_rec_write_end(rec);
        pp_slot_token_release(slot);
        return 0;
    }
    parent =
        rec->req.open_segment <= PP_SEGMENTS_MAX ? rec->req.open_segment : 0;
    pp_rec_write_begin(rec);
    g = &rec->segments[n];
    memset(g, 0, sizeof(*g));
    pp_copy_str(g->name, sizeof(g->name), name);
    pp_copy_str(g->detail, sizeof(g->detail), detail);
    g->start_us = now_us - rec->req.start_us;
    g->dur_us = -1;
    g->parent = (uint16_t)parent;
    g->depth = parent ? (uint16_t)(rec->segments[parent - 1].depth + 1) : 0;
    rec->req.nsegments = n + 1;
    rec->req.open_segment = n + 1;
    pp_rec_write_end(rec);
    pp_slot_token_release(slot);
    return n + 1;
}

void pp_store_segment_end(pp_store_t *st, int idx, uint64_t serial,
                          uint32_t seg, int64_t now_us)
{
    pp_slot_t *slot;
    pp_record_t *rec;
    pp_segment_t *g;

    if (seg == 0 || seg > PP_SEGMENTS_MAX ||
        !(slot = pp_slot_token_take_for(st, idx, serial, 0))) {
        return;
    }
    rec = &slot->rec;
    if (seg <= rec->req.nsegments) {
        pp_rec_write_begin(rec);
        g = &rec->segments[seg - 1];
        g->dur_us = now_us - rec->req.start_us - g->start_us;
        if (g->dur_us < 0) {
            g->dur_us = 0;
        }
        /* close it, and any inner one left open by an exception path */
        rec->req.open_segment = g->parent;
        pp_rec_write_end(rec);
    }
    pp_slot_token_release(slot);
}

/* ---- reaping dead owners ---- */

/* Is pid gone?  Remembered for the scan: the slots of one process are
 * many, a kill() each is not needed. */
typedef struct pid_memo {
    int32_t pid[16];
    unsigned char dead[16];
    uint32_t n;
} pid_memo_t;

static int pid_dead(pid_memo_t *m, int32_t pid)
{
    uint32_t i;
    int dead;

    for (i = 0; i < m->n && i < 16; i++) {
        if (m->pid[i] == pid) {
            return m->dead[i];
        }
    }
    dead = kill(pid, 0) == -1 && errno == ESRCH;
    m->pid[m->n % 16] = pid;
    m->dead[m->n % 16] = (unsigned char)dead;
    m->n++;
    return dead;
}

uint32_t pp_store_reap_dead(pp_store_t *st)
{
    pid_memo_t memo;
    uint32_t i, reaped = 0;

    memo.n = 0;
    atomic_store(&st->reap_last_us, pp_mono_us());
    for (i = 0; i < st->nslots; i++) {
        pp_slot_t *slot = pp_store_slot_at(st, (int)i);
        uint32_t s = atomic_load(&slot->state);
        int32_t pid = PP_SLOT_PID(s);

        if (s == PP_SLOT_FREE || pid <= 0) {
            continue;
        }
        if (pid_dead(&memo, pid) &&
            atomic_compare_exchange_strong(&slot->state, &s, PP_SLOT_FREE)) {
            atomic_fetch_add(&st->c.slots_lost, 1);
            atomic_fetch_add(&st->c.slots_reaped, 1);
            reaped++;
        }
    }
    return reaped;
}
