/* pp_store_sample.c: samples into a request's record.
 *
 * Called by sampler threads: the one of the Apache child that claimed the
 * slot, or, once a mod_wsgi daemon adopted the request, the daemon's
 * (pp_store_sample checks which).  Tests and benchmarks write to a slot
 * without that check through tests/support/pp_store_testing.c, which is
 * never linked into the module.  Every write takes the slot's token
 * (pp_store_token.c) and brackets the change with the record's sequence
 * counter.  Never allocates, never touches Python or httpd.
 */
#include <stdint.h>
#include <string.h>

#include "pp_store_int.h"

/* Charge a GIL wait of weight_us to its holder in rec's holder table:
 * the entry of the same holder (request, or thread when it served none)
 * and frame, else a new one, else the last, which then stands for every
 * holder that did not fit. */
static void note_gil_holder(pp_record_t *rec, const pp_gil_holder_t *h,
                            uint64_t weight_us)
{
    pp_gil_holder_t *e = NULL;
    uint32_t i, n = rec->req.ngil_holders;

    if (n > PP_GIL_HOLDERS) {
        n = PP_GIL_HOLDERS;
    }
    for (i = 0; i < n; i++) {
        pp_gil_holder_t *c = &rec->gil_holders[i];
        if (c->location != PP_GIL_OTHER && c->serial == h->serial &&
            c->frame == h->frame && (h->serial || c->tid == h->tid)) {
            e = c;
            break;
        }
    }
    if (!e && n < PP_GIL_HOLDERS - 1) {
        e = &rec->gil_holders[n];
        *e = *h;
        e->id[PP_ID_MAX - 1] = '\0';
        e->method[PP_METHOD_MAX - 1] = '\0';
        e->uri[PP_GIL_URI_MAX - 1] = '\0';
        e->samples = 0;
        e->wait_us = 0;
        rec->req.ngil_holders = n + 1;
    }
    else if (!e) {
        e = &rec->gil_holders[PP_GIL_HOLDERS - 1];
        if (n < PP_GIL_HOLDERS) {
            memset(e, 0, sizeof(*e));
            e->location = PP_GIL_OTHER;
            rec->req.ngil_holders = PP_GIL_HOLDERS;
        }
    }
    e->samples++;
    e->wait_us += weight_us;
}

/* The wait suffered by the waiter's location and caused by the holder's,
 * by (waiter's location, holder's frame): shared rows, atomics only. */
static void note_gil_locations(pp_store_t *st, int32_t waiter,
                               const pp_gil_holder_t *h, uint64_t weight_us)
{
    pp_location_t *wl = pp_store_location(st, waiter);
    pp_location_t *hl = h->serial && h->location >= 0
                            ? pp_store_location(st, h->location)
                            : NULL;

    if (wl) {
        atomic_fetch_add_explicit(&wl->gil_wait_us, weight_us,
                                  memory_order_relaxed);
    }
    if (!hl) {
        atomic_fetch_add_explicit(&st->c.gil_blocking_no_request_us, weight_us,
                                  memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&hl->gil_blocking_us, weight_us,
                              memory_order_relaxed);
    if (pp_agg_add(hl->gil_blame, PP_GIL_BLAME_ROWS,
                   ((uint64_t)(uint32_t)(waiter + 1) << 32) | h->frame, 1,
                   weight_us, 0) != 0) {
        atomic_fetch_add_explicit(&st->c.gil_blame_full, 1,
                                  memory_order_relaxed);
    }
}

void pp_store_record_sample(pp_store_t *st, pp_record_t *rec, uint32_t node,
                            int64_t now_us, uint64_t weight_us, uint64_t cpu_us,
                            int how)
{
    pp_store_record_sample_gil(st, rec, node, now_us, weight_us, cpu_us, how,
                               NULL);
}

void pp_store_record_sample_gil(pp_store_t *st, pp_record_t *rec, uint32_t node,
                                int64_t now_us, uint64_t weight_us,
                                uint64_t cpu_us, int how,
                                const pp_gil_holder_t *holder)
{
    pp_stack_count_t *e;
    uint32_t seg;

    pp_rec_write_begin(rec);
    /* keep one entry free for [other stacks] */
    e = pp_record_stack_entry(rec, node, rec->req.nstacks < PP_STACKS_MAX - 1);
    if (!e) {
        uint32_t other = pp_store_intern_node(st, 0, st->frame_other);
        e = other ? pp_record_stack_entry(rec, other, 1) : NULL;
        rec->req.samples_overflow++;
        atomic_fetch_add(&st->c.stacks_overflow, 1);
    }
    if (e) {
        e->count++;
        e->weight_us += weight_us;
        e->cpu_us += cpu_us;
    }
    rec->req.samples++;
    if (how & PP_SAMPLE_TRUNCATED) {
        rec->req.flags |= PP_REQ_TRUNCATED;
        how &= ~PP_SAMPLE_TRUNCATED;
    }
    if (how == PP_SAMPLE_GIL_ENTER) {
        /* off CPU, but not in Python yet: its time is cut apart from the
         * time off CPU in Python (pp_req_time_split) */
        rec->req.samples_off_cpu++;
        rec->req.samples_gil_enter++;
        rec->req.gil_enter_us += (int64_t)weight_us;
    }
    else if (how == PP_SAMPLE_ON_CPU) {
        rec->req.samples_on_cpu++;
    }
    else {
        int64_t off_us = weight_us > cpu_us ? (int64_t)(weight_us - cpu_us) : 0;
        rec->req.samples_off_cpu++;
        if (how == PP_SAMPLE_GIL_WAIT) {
            rec->req.samples_gil_wait++;
            rec->req.off_gil_us += off_us;
            rec->req.gil_wait_us += (int64_t)weight_us;
        }
        else if (how == PP_SAMPLE_WAIT_CORE) {
            rec->req.samples_wait_core++;
            rec->req.off_core_us += off_us;
        }
        else {
            rec->req.off_other_us += off_us;
        }
    }
    if (holder && (how == PP_SAMPLE_GIL_WAIT || how == PP_SAMPLE_GIL_ENTER)) {
        note_gil_holder(rec, holder, weight_us);
        note_gil_locations(st, rec->req.location, holder, weight_us);
    }
    seg = rec->req.open_segment;
    if (seg >= 1 && seg <= PP_SEGMENTS_MAX) {
        rec->segments[seg - 1].samples++;
        rec->segments[seg - 1].weight_us += weight_us;
    }
    rec->req.sampled_cpu_us += (int64_t)cpu_us;
    rec->req.last_node = node;
    rec->req.last_sample_us = now_us;
    pp_rec_write_end(rec);
    atomic_fetch_add_explicit(&st->c.samples, 1, memory_order_relaxed);
}

void pp_store_sample(pp_store_t *st, int idx, uint64_t serial, uint32_t node,
                     int64_t now_us, uint64_t weight_us, uint64_t cpu_us,
                     int how)
{
    pp_slot_t *slot;

    if (node == 0 || !(slot = pp_slot_token_take_for(st, idx, serial, 1))) {
        return;
    }
    pp_store_record_sample(st, &slot->rec, node, now_us, weight_us, cpu_us,
                           how);
    pp_slot_token_release(slot);
}

void pp_store_sample_gil(pp_store_t *st, int idx, uint64_t serial,
                         uint32_t node, int64_t now_us, uint64_t weight_us,
                         uint64_t cpu_us, int how,
                         const pp_gil_holder_t *holder)
{
    pp_slot_t *slot;

    if (node == 0 || !(slot = pp_slot_token_take_for(st, idx, serial, 1))) {
        return;
    }
    pp_store_record_sample_gil(st, &slot->rec, node, now_us, weight_us, cpu_us,
                               how, holder);
    pp_slot_token_release(slot);
}

void pp_store_sample_outside(pp_store_t *st, int idx, uint64_t serial,
                             int64_t now_us, uint64_t weight_us)
{
    pp_slot_t *slot = pp_slot_token_take_for(st, idx, serial, 1);
    pp_record_t *rec;

    if (!slot) {
        return;
    }
    rec = &slot->rec;
    pp_rec_write_begin(rec);
    rec->req.samples_outside++;
    rec->req.outside_us += (int64_t)weight_us;
    rec->req.last_sample_us = now_us;
    pp_rec_write_end(rec);
    pp_slot_token_release(slot);
}

int pp_store_samples_here(pp_store_t *st, int idx, int32_t pid)
{
    pp_slot_t *slot = pp_store_slot_at(st, idx);
    int32_t owner = slot ? atomic_load(&slot->sampler_pid) : -1;
    return owner == 0 || owner == pid;
}
