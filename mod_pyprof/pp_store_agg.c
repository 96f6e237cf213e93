/* pp_store_agg.c: the end of a request: its location's histograms, the
 * per-location aggregates (since start, slow side, per minute) and its
 * kept trace, then the slot freed.
 *
 * Called by the request thread that claimed the slot, once per request
 * (pp_store_finish, or pp_store_abandon when it never finished), after
 * unregistering it from its sampler.  The slot's token is taken
 * (pp_store_token.c); the aggregates are shared by every process and
 * written with atomics only: an insert is one compare-and-swap of its key.
 * Never allocates, never touches Python or httpd.
 */
#include <stdint.h>
#include <string.h>

#include "pp_store_int.h"

/* ---- aggregates ---- */

int pp_agg_add(pp_agg_entry_t *tab, uint32_t cap, uint64_t key, uint64_t count,
               uint64_t weight_us, uint64_t cpu_us)
{
    uint32_t mask = cap - 1, i;
    uint32_t h = (uint32_t)pp_store_mix64(key);

    for (i = 0; i < PROBE_LIMIT; i++) {
        pp_agg_entry_t *e = &tab[(h + i) & mask];
        uint64_t k = atomic_load_explicit(&e->key, memory_order_acquire);
        if (k == 0) {
            uint64_t expect = 0;
            if (atomic_compare_exchange_strong(&e->key, &expect, key)) {
                k = key;
            }
            else {
                k = expect;
            }
        }
        if (k == key) {
            atomic_fetch_add_explicit(&e->count, count, memory_order_relaxed);
            atomic_fetch_add_explicit(&e->weight_us, weight_us,
                                      memory_order_relaxed);
            atomic_fetch_add_explicit(&e->cpu_us, cpu_us, memory_order_relaxed);
            return 0;
        }
    }
    return -1;
}

static int table_add(pp_agg_entry_t *tab, uint32_t cap, int loc, uint32_t node,
                     uint64_t count, uint64_t weight_us, uint64_t cpu_us)
{
    return pp_agg_add(tab, cap, ((uint64_t)(uint32_t)(loc + 1) << 32) | node,
                      count, weight_us, cpu_us);
}

/* Each holder (location, frame) its record waited behind delayed one more
 * request of its location: the waiter's. */
static void note_gil_delays(pp_store_t *st, const pp_record_t *rec)
{
    uint32_t i, j, n = rec->req.ngil_holders;

    if (n > PP_GIL_HOLDERS) {
        n = PP_GIL_HOLDERS;
    }
    for (i = 0; i < n; i++) {
        const pp_gil_holder_t *h = &rec->gil_holders[i];
        pp_location_t *hl;

        if (!h->serial || h->location < 0 || !h->samples ||
            !(hl = pp_store_location(st, h->location))) {
            continue;
        }
        for (j = 0; j < i; j++) { /* once per (location, frame) */
            const pp_gil_holder_t *o = &rec->gil_holders[j];
            if (o->serial && o->location == h->location &&
                o->frame == h->frame) {
                break;
            }
        }
        if (j == i) {
            (void)pp_agg_add(
                hl->gil_blame, PP_GIL_BLAME_ROWS,
                ((uint64_t)(uint32_t)(rec->req.location + 1) << 32) | h->frame,
                0, 0, 1);
        }
    }
}

/* The table for `minute`, taking it over (and emptying it) if it still
 * holds a minute PP_EPOCHS ago.  NULL while another writer empties it:
 * those few samples miss the window views, never the all-time ones. */
static pp_agg_entry_t *epoch_for_write(pp_store_t *st, int64_t minute)
{
    uint32_t i;
    _Atomic uint64_t *stamp;
    uint64_t cur, want;

    /* a start time from the record (shared memory) may be anything: a
     * negative minute would index before the table */
    if (minute < 0) {
        return NULL;
    }
    i = (uint32_t)(minute % PP_EPOCHS);
    stamp = &pp_store_epoch_stamps(st)[i];
    cur = atomic_load(stamp);
    want = (uint64_t)minute + 1;

    if (cur == want) {
        return pp_store_epoch_table(st, i);
    }
    /* A RESETTING stamp for the same minute is another writer emptying
     * the table right now.  One for an older minute (64 minutes ago) was
     * left by a process killed mid-reset: take it over, or the table
     * would stay disabled for good. */
    if ((cur & ~PP_EPOCH_RESETTING) >= want ||
        !atomic_compare_exchange_strong(stamp, &cur,
                                        want | PP_EPOCH_RESETTING)) {
        return NULL;
    }
    memset(pp_store_epoch_table(st, i), 0,
           (size_t)st->nepoch * sizeof(pp_agg_entry_t));
    atomic_store(stamp, want);
    return pp_store_epoch_table(st, i);
}

static void atomic_max_u64(_Atomic uint64_t *p, uint64_t v)
{
    uint64_t cur = atomic_load_explicit(p, memory_order_relaxed);
    while (cur < v && !atomic_compare_exchange_weak(p, &cur, v)) {
    }
}

/* ---- finish ---- */

static void keep_trace(pp_store_t *st, const pp_record_t *src, int keep)
{
    uint32_t tries, base, size;
    _Atomic uint64_t *next;

    if (keep == PP_KEEP_FAST) {
        base = st->keep + st->nspecial;
        size = st->nfast;
        next = &st->fast_next;
    }
    else if (src->req.flags & (PP_REQ_TRIGGERED | PP_REQ_CAPTURED)) {
        base = st->keep;
        size = st->nspecial;
        next = &st->special_next;
    }
    else {
        base = 0;
        size = st->keep;
        next = &st->trace_next;
    }
    for (tries = 0; tries < 4; tries++) {
        uint64_t n = atomic_fetch_add(next, 1);
        pp_record_t *dst =
            (pp_record_t *)((char *)st + st->off_traces) + base + (n % size);
        uint32_t s = atomic_load(&dst->seq);

        /* odd: another writer is filling this entry right now (or died
         * doing so); take the next one instead of waiting */
        if ((s & 1u) || !atomic_compare_exchange_strong(&dst->seq, &s, s + 1)) {
            continue;
        }
        atomic_thread_fence(memory_order_release);
        if (dst->req.serial && keep != PP_KEEP_FAST) {
            atomic_fetch_add(&st->c.traces_evicted, 1);
        }
        memcpy(&dst->req, &src->req, sizeof(dst->req));
        memcpy(dst->stacks, src->stacks, sizeof(dst->stacks));
        memcpy(dst->segments, src->segments, sizeof(dst->segments));
        memcpy(dst->gil_holders, src->gil_holders, sizeof(dst->gil_holders));
        memcpy(dst->alloc_stacks, src->alloc_stacks, sizeof(dst->alloc_stacks));
        if (keep == PP_KEEP_FAST) {
            dst->req.flags |= PP_REQ_FAST;
        }
        atomic_store_explicit(&dst->seq, s + 2, memory_order_release);
        if (keep != PP_KEEP_FAST) {
            atomic_fetch_add(&st->c.traces_kept, 1);
        }
        return;
    }
    atomic_fetch_add(&st->c.traces_torn, 1);
}

/* The minute a request ended in, or -1 if its start time (shared memory)
 * is not a time: no signed overflow, no negative index. */
static int64_t end_minute(const pp_req_t *q)
{
    int64_t start = q->start_us, dur = q->duration_us;

    if (start < 0 || dur < 0 || start > INT64_MAX - dur) {
        return -1;
    }
    return (start + dur) / PP_EPOCH_US;
}

void pp_store_finish(pp_store_t *st, int idx, int status, int64_t duration_us,
                     int64_t cpu_us, int keep)
{
    pp_slot_t *slot = pp_store_slot_at(st, idx);
    pp_location_t *loc;
    pp_record_t *rec;
    pp_agg_entry_t *all, *slow = NULL, *window;
    uint32_t i;
    int locked;

    if (!slot || PP_SLOT_PHASE(atomic_load(&slot->state)) != PP_SLOT_ACTIVE) {
        return;
    }
    rec = &slot->rec;
    /* from here on no daemon writes: it sees sampler_pid -1 */
    locked = pp_slot_token_take(slot);
    if (!locked) {
        /* cannot happen short of a stuck live writer; finish anyway */
        atomic_fetch_add(&st->c.traces_torn, 1);
    }
    atomic_store(&slot->sampler_pid, -1);
    pp_rec_write_begin(rec);
    rec->req.status = status;
    rec->req.duration_us = duration_us < 0 ? 0 : duration_us;
    /* in daemon mode the CPU that matters is the daemon thread's; the
     * Apache child only proxied */
    if ((rec->req.flags & PP_REQ_DAEMON) && rec->req.daemon_cpu_us > 0) {
        cpu_us = rec->req.daemon_cpu_us;
    }
    rec->req.cpu_us = cpu_us < 0 ? 0 : cpu_us;
    pp_rec_write_end(rec);

    loc = pp_store_location(st, rec->req.location);
    if (loc) {
        int cls = pp_status_class(status);
        int bucket = pp_hist_bucket(rec->req.duration_us);
        atomic_fetch_add(&loc->class_hist[cls][bucket], 1);
        atomic_fetch_add(&loc->class_sum_us[cls],
                         (uint64_t)rec->req.duration_us);
        atomic_fetch_add(&loc->hist[bucket], 1);
        atomic_fetch_add(&loc->sum_us, (uint64_t)rec->req.duration_us);
        atomic_max_u64(&loc->max_us, (uint64_t)rec->req.duration_us);
        atomic_fetch_add(&loc->samples, rec->req.samples);
        if (keep == PP_KEEP_SLOW) {
            atomic_fetch_add(&loc->kept, 1);
        }
        if (rec->req.samples) {
            uint64_t hist[PP_HIST_BUCKETS];
            int b;
            /* "slow" = at or over the location's p95 so far; needs enough
             * requests for a p95 to mean something */
            if (atomic_load(&loc->requests) >= 20) {
                for (b = 0; b < PP_HIST_BUCKETS; b++) {
                    hist[b] = atomic_load_explicit(&loc->hist[b],
                                                   memory_order_relaxed);
                }
                if (rec->req.duration_us >=
                    pp_hist_quantile_us(hist, 0.95,
                                        (int64_t)atomic_load(&loc->max_us))) {
                    slow = (pp_agg_entry_t *)((char *)st + st->off_agg_slow);
                }
            }
        }
        note_gil_delays(st, rec);
        /* requests last: a reader that sees N requests sees their buckets */
        atomic_fetch_add(&loc->requests, 1);
        all = (pp_agg_entry_t *)((char *)st + st->off_agg);
        window = rec->req.samples ? epoch_for_write(st, end_minute(&rec->req))
                                  : NULL;
        if (rec->req.samples && !window) {
            atomic_fetch_add(&st->c.epoch_busy, 1);
        }
        for (i = 0; i < PP_STACKS_MAX; i++) {
            const pp_stack_count_t *e = &rec->stacks[i];
            int loc_idx = rec->req.location;
            if (!e->node || !e->count) {
                continue;
            }
            if (table_add(all, st->nagg, loc_idx, e->node, e->count,
                          e->weight_us, e->cpu_us)) {
                atomic_fetch_add(&st->c.agg_full, 1);
            }
            if (slow && table_add(slow, st->nagg_slow, loc_idx, e->node,
                                  e->count, e->weight_us, e->cpu_us)) {
                atomic_fetch_add(&st->c.agg_full, 1);
            }
            if (window && table_add(window, st->nepoch, loc_idx, e->node,
                                    e->count, e->weight_us, e->cpu_us)) {
                atomic_fetch_add(&st->c.agg_full, 1);
            }
        }
    }
    if (keep == PP_KEEP_SLOW || keep == PP_KEEP_FAST) {
        keep_trace(st, rec, keep);
    }
    if (locked) {
        pp_slot_token_release(slot);
    }
    atomic_store_explicit(&slot->state, PP_SLOT_FREE, memory_order_release);
}

void pp_store_abandon(pp_store_t *st, int idx)
{
    pp_slot_t *slot = pp_store_slot_at(st, idx);
    int locked;

    if (!slot || PP_SLOT_PHASE(atomic_load(&slot->state)) != PP_SLOT_ACTIVE) {
        return;
    }
    locked = pp_slot_token_take(slot);
    atomic_store(&slot->sampler_pid, -1);
    if (locked) {
        pp_slot_token_release(slot);
    }
    atomic_fetch_add(&st->c.slots_lost, 1);
    atomic_store_explicit(&slot->state, PP_SLOT_FREE, memory_order_release);
}
