/* pp_sampler_gil.c: GIL blame, GIL-free mode.  Decides from the walk's
 * reading of the GILs (pp_py_gil_tick) whether a request thread may be
 * waiting for one (pp_gil_may_wait, the rule classification applies), and
 * for each GIL a sample of the tick waits for, who holds it: its request
 * (from the registry) or its thread, and its innermost frame (the tick's
 * own stack of it, or a walk of the holder alone); then the frames such a
 * wait shows as, interned in the store.
 *
 * Sampler thread only, with the registry mutex held
 * (pp_sampler_gil_blame_prepare_locked), which it drops while a holder is
 * walked (that takes the runtime's HEAD_LOCK, never the GIL) and takes
 * back.  Never waits for the GIL; never touches Python but through
 * pp_frames.h.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "pp_sampler_int.h"

/* Whether the walk found thread t holding GIL g. */
static int holds_gil(const pp_gil_state_t *g, const pp_walk_target_t *t)
{
    return g->locked && g->holder_ident &&
           (g->holder_ident == t->thread_ident ||
            (g->holder_tid > 0 && g->holder_tid == t->native_tid));
}

int pp_gil_may_wait(const pp_gil_state_t *g, const pp_walk_target_t *t,
                    int marks)
{
    if (!g || holds_gil(g, t)) {
        /* (3.15 clears the waiter's mark just after it took the GIL: a
         * thread marked while the GIL is its own has it already) */
        return 0;
    }
    if (marks && t->found) {
        return t->gil_requested; /* exact: set from request to grant */
    }
    if (marks && t->gil_requested) {
        return 1;
    }
    /* someone else holds it and someone sleeps on it (or we cannot count
     * its sleepers); a thread with no Python frame holds no Python lock,
     * and its futex is mod_wsgi's way into Python: the GIL, or mod_wsgi's
     * interpreter lock, held by a thread on its way to the GIL (then
     * perhaps nobody sleeps on the GIL itself yet) */
    return g->locked && !holds_gil(g, t) && (g->waiters != 0 || !t->found);
}

/* ------------------------------------------------------------ GIL blame */

/* src (at most srclen bytes) into dst, cut to fit, NUL-terminated */
static void copy_cut(char *dst, size_t cap, const char *src, size_t srclen)
{
    size_t n = strnlen(src, srclen);

    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* The frames a wait behind b's holder shows as: function
 * "<GIL wait: held by LOCATION FUNCTION>" (LOCATION: the holder request's
 * location, or "no request"), at the holder's file and line, at the leaf
 * of a stack in Python; "<waiting to enter Python: ...>" alone for a
 * thread not in Python yet. */
static void blame_frames(pp_store_t *st, pp_sampler_blame_t *b, int known)
{
    char who[PP_PREFIX_MAX + 32], text[PP_PREFIX_MAX + PP_FRAME_TEXT_MAX + 64];
    pp_frame_view_t v = {"", "", 0};
    const pp_location_t *loc = pp_store_location(st, b->holder.location);
    int len;

    if (!b->holder_frame || !pp_store_frame_view(st, b->holder_frame, &v)) {
        v.function = "[no Python frame]";
        v.file = "";
        v.line = 0;
    }
    if (!known) {
        snprintf(who, sizeof(who), "holder unknown");
    }
    else if (b->holder.serial && loc && atomic_load(&loc->used)) {
        snprintf(who, sizeof(who), "held by %s %s", loc->path, v.function);
    }
    else {
        snprintf(who, sizeof(who), "held by no request %s", v.function);
    }
    len = snprintf(text, sizeof(text), "<GIL wait: %s>", who);
    b->wait_frame = pp_store_intern_frame(
        st, text, len > 0 ? strnlen(text, sizeof(text)) : 0, v.file,
        strlen(v.file), v.line);
    len = snprintf(text, sizeof(text), "<waiting to enter Python: %s>", who);
    b->enter_frame = pp_store_intern_frame(
        st, text, len > 0 ? strnlen(text, sizeof(text)) : 0, v.file,
        strlen(v.file), v.line);
}

/* Who holds each GIL that a sample of this tick waits for, and where.
 * Called after pp_sampler_classify_locked with s->mu held; drops it while a
 * holder that is not one of this tick's targets is walked (that takes the
 * runtime's HEAD_LOCK, which nothing takes s->mu under, but the walk is
 * tens of microseconds that request threads need not wait for). */
void pp_sampler_gil_blame_prepare_locked(pp_sampler_state_t *s, pp_store_t *st,
                                         int n)
{
    const pp_gil_tick_t *gt = pp_py_gil_tick();
    int i, j, g, walk[PP_GILS_MAX] = {0}, any = 0;
    int64_t now = pp_mono_ns();

    for (g = 0; g < PP_GILS_MAX; g++) {
        s->blame[g].ready = 0;
    }
    for (i = 0; i < n; i++) {
        const pp_walk_target_t *t = &s->targets[i];
        const pp_gil_state_t *gs;
        pp_sampler_blame_t *b;

        if (s->refs[i].how != PP_SAMPLE_GIL_WAIT || t->gil < 0 ||
            t->gil >= gt->n || s->blame[t->gil].ready) {
            continue;
        }
        g = t->gil;
        gs = &gt->gils[g];
        b = &s->blame[g];
        b->ready = 1;
        any = 1;
        /* the holder is a request of this tick: its stack was just read */
        for (j = 0; j < n; j++) {
            if (gs->holder_ident && holds_gil(gs, &s->targets[j])) {
                break;
            }
        }
        if (j < n) {
            b->holder_frame = s->targets[j].found && s->targets[j].depth > 0
                                  ? s->targets[j].frames[0]
                                  : 0;
            b->walked_ns = now;
        }
        else if (!(b->gil == gs->gil && b->holder_ts == gs->holder_ts &&
                   b->switch_number == gs->switch_number && b->walked_ns &&
                   now - b->walked_ns < s->refs[i].interval_ns)) {
            /* not handed over since it was last read: the same holder,
             * most likely still in the same place */
            walk[g] = gs->holder_ident != 0;
            b->holder_frame = 0;
            b->walked_ns = now;
        }
        b->gil = gs->gil;
        b->holder_ts = gs->holder_ts;
        b->switch_number = gs->switch_number;
    }
    if (!any) {
        return;
    }
    pthread_mutex_unlock(&s->mu);
    for (g = 0; g < gt->n && g < PP_GILS_MAX; g++) {
        if (walk[g]) {
            s->holder_walk->max_depth = 1;
            if (pp_py_walk_gil_holder(st, &gt->gils[g], s->holder_walk)) {
                s->blame[g].holder_frame = s->holder_walk->frames[0];
            }
            atomic_fetch_add_explicit(&st->c.gil_holder_walks, 1,
                                      memory_order_relaxed);
        }
    }
    pthread_mutex_lock(&s->mu);
    /* the holder's request, from the registry (under s->mu) */
    for (g = 0; g < gt->n && g < PP_GILS_MAX; g++) {
        const pp_gil_state_t *gs = &gt->gils[g];
        pp_sampler_blame_t *b = &s->blame[g];
        pp_gil_holder_t h;

        if (!b->ready) {
            continue;
        }
        memset(&h, 0, sizeof(h));
        h.location = PP_GIL_NO_LOCATION;
        h.tid = gs->holder_tid;
        h.frame = b->holder_frame;
        for (i = 0; gs->holder_ident && i < s->n; i++) {
            pp_sampler_entry_t *e = &s->entries[i];
            pp_slot_t *slot;

            if ((unsigned long)e->thread != gs->holder_ident &&
                !(gs->holder_tid > 0 && e->tid == gs->holder_tid)) {
                continue;
            }
            slot = pp_store_slot(st, e->slot);
            if (slot && b->holder.serial == e->serial && b->holder.id[0]) {
                h = b->holder; /* read before: ids do not change */
                h.frame = b->holder_frame;
            }
            else if (slot) {
                static pp_req_t q;
                if (pp_store_read_req(&slot->rec, &q) &&
                    q.serial == e->serial) {
                    h.serial = e->serial;
                    copy_cut(h.id, sizeof(h.id), q.id, sizeof(q.id));
                    copy_cut(h.method, sizeof(h.method), q.method,
                             sizeof(q.method));
                    copy_cut(h.uri, sizeof(h.uri), q.uri, sizeof(q.uri));
                    h.location = q.location;
                }
            }
            break;
        }
        if (h.serial != b->holder.serial || h.tid != b->holder.tid ||
            h.frame != b->holder.frame || !b->wait_frame) {
            b->holder = h;
            blame_frames(st, b, gs->holder_ident != 0);
        }
    }
}
