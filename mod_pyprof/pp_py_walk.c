/* pp_py_walk.c: reads Python stacks for the sampler, for every supported
 * CPython, from a pp_py_layout_t (see pp_py.h): walks the interpreters'
 * thread lists, finds each target's thread state, and has pp_py_frames.c
 * copy and decode its frame chain; samples a GIL's holder on demand
 * (pp_py_walk_gil_holder); sets the reader up (pp_py_walker_init,
 * pp_py_nogil_init).  Sampler thread only: all of it, and every function
 * of the files it calls (pp_py_int.h), runs on the sampler thread.
 *
 * No Python header is included here: what a thread state, a frame, a code
 * object or a str looks like comes from the layout, filled from the
 * headers of the Python being sampled.  Memory is copied through a reader
 * (pp_py_read.c):
 *
 * GIL-free: the threads read run on meanwhile, so every byte that can
 *        change or be freed under us (frames, code objects, strings,
 *        location tables) is copied by a reader that fails cleanly on an
 *        unmapped page instead of faulting: a guarded memcpy()
 *        (pp_py_guard.c; the default), or process_vm_readv() on our own
 *        pid (PyProfSampler nogil syscall, sanitizer builds, and from the
 *        tick another SIGSEGV handler replaced the guard's on), and the
 *        copied chain is checked (real code objects, instructions
 *        inside their code, callers below callees) before it is trusted; a
 *        chain that does not check out is copied again, up to NOGIL_TRIES
 *        times, then the sample is dropped (counted as torn).
 * GIL:   the sampler holds the GIL, so nothing runs Python meanwhile and
 *        plain copies are enough (and no process_vm_readv is needed, which
 *        is why this mode remains when a seccomp filter refuses it).
 *
 * In both, thread lists are walked under the runtime's HEAD_LOCK (thread
 * states are created and deleted by threads that do not hold the GIL), no
 * Python object is created, no reference taken, no Python code run; names
 * are copied into C buffers and interned in the shared store, and a cache
 * maps (code object, instruction) to the interned frame id (pp_py_code.c).
 *
 * GIL blame (GIL-free mode): the same walk reads, through the reader, the
 * GIL of every interpreter it visits (pp_py_gil.c: whether it is held, by
 * which thread state, how many threads sleep on it), finds the holder's
 * thread among the thread states it compares anyway, and tells each target
 * which GIL it would wait for; the sampler decides from that who waits
 * (see pp_sampler_gil.c).  pp_py_walk_gil_holder samples the holder.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pp_frames.h"
#include "pp_log.h"
#include "pp_py_int.h"

/* Copies of a chain before a sample is dropped as torn.  A thread calling
 * small functions changes its chain while it is copied; only failed
 * copies are retried, so more tries cost nothing when the first works.
 * tests/bench (p1ms, /app/render: ~15k calls in 2 ms, 3.11): torn 5.3% of
 * samples with 2 tries, 2.2% with 3, 0.3-0.4% with 5, the sampler's CPU
 * the same within noise. */
#ifndef NOGIL_TRIES
#define NOGIL_TRIES 5
#endif

const pp_py_layout_t *pp_py_L;

/* -------------------------------------------------------------- threads */

/* Is ts the target's thread?  The ids are read once each: a thread just
 * started may be rewriting them (see walk()). */
static int is_thread_of(const void *ts, const pp_walk_target_t *t)
{
    unsigned long id =
        (unsigned long)pp_py_word_in_place(ts, pp_py_L->ts_thread_id);
    unsigned long nid =
        (unsigned long)pp_py_word_in_place(ts, pp_py_L->ts_native_thread_id);

    return id == t->thread_ident ||
           (t->native_tid > 0 && nid == (unsigned long)t->native_tid);
}

static void walk(pp_store_t *st, pp_walk_target_t *targets, int n)
{
    const void *interp;
    int i, left = n, last_gil = -1;

    pp_py_gils.n = 0;
    for (i = 0; i < n; i++) {
        targets[i].found = 0;
        targets[i].torn = 0;
        targets[i].depth = 0;
        targets[i].truncated = 0;
        targets[i].gil = -1;
        targets[i].gil_requested = 0;
        if (targets[i].max_depth == 0 ||
            targets[i].max_depth > PP_DEPTH_LIMIT) {
            targets[i].max_depth = PP_DEPTH_LIMIT;
        }
    }
    if (!pp_py_L || !pp_py_code_ready()) {
        return;
    }
    /* HEAD_LOCK: no thread state is freed while we look at it */
    pp_py_rt_head_lock();
    /* With GIL blame every thread state is looked at, found targets or
     * not: the GIL's holder is one of them, and its thread is known only
     * once it is seen. */
    for (interp = pp_py_rt_interpreters();
         interp && (left > 0 || pp_py_gil_blame);
         interp =
             (const void *)pp_py_word_in_place(interp, pp_py_L->interp_next)) {
        const void *ts;
        int g = -1;

        if (pp_py_read_plain() && !pp_py_rt_shares_gil(interp)) {
            continue; /* runs on under its own GIL: not ours to copy */
        }
        if (pp_py_gil_blame) {
            g = pp_py_gil_of_interp(interp);
            last_gil = g;
        }
        for (ts = (const void *)pp_py_word_in_place(
                 interp, pp_py_L->interp_threads_head);
             ts && (left > 0 || pp_py_gil_blame);
             ts = (const void *)pp_py_word_in_place(ts, pp_py_L->ts_next)) {
            if (g >= 0 && ts == pp_py_gils.gils[g].holder_ts) {
                pp_gil_state_t *gs = &pp_py_gils.gils[g];

                gs->holder_ident = (unsigned long)pp_py_word_in_place(
                    ts, pp_py_L->ts_thread_id);
                gs->holder_tid = (pid_t)pp_py_word_in_place(
                    ts, pp_py_L->ts_native_thread_id);
                gs->holder_interp = (void *)interp;
            }
            for (i = 0; i < n; i++) {
                pp_walk_target_t *t = &targets[i];

                if (t->found || !is_thread_of(ts, t)) {
                    continue;
                }
                /* the GIL it would wait for: of the interpreter where it
                 * waits (3.15 says), else where it runs, else any it has
                 * a thread state in */
                if (g >= 0 && !t->gil_requested) {
                    if (pp_py_ts_gil_requested(ts)) {
                        t->gil_requested = 1;
                        t->gil = g;
                    }
                    else if (t->gil < 0) {
                        t->gil = g;
                    }
                }
                /* several interpreters may know this thread: the one with
                 * a frame is where it runs */
                if (!pp_py_frames_sample_thread(st, ts, (void *)interp, t)) {
                    break;
                }
                /* A thread state that threading.Thread.start() has just
                 * made carries its creator's ids until the new thread sets
                 * its own (init_threadstate), and it comes first in the
                 * list: had the new thread started meanwhile, the chain
                 * copied would be its stack, not the request's.  It sets
                 * its ids before it runs any Python, so ids that still
                 * match after the copy mean the copy was the target's. */
                atomic_thread_fence(memory_order_acquire);
                if (!is_thread_of(ts, t)) {
                    t->found = 0;
                    t->torn = 0;
                    t->depth = 0;
                    t->truncated = 0;
                    break; /* not this thread state: look on */
                }
                /* No Python frame here: not where the thread runs now.  A
                 * thread that has run in several interpreters (mod_wsgi's
                 * application groups) has a thread state in each, and
                 * from 3.14 an idle one is not empty but holds its base
                 * frame (owned by the interpreter, skipped): look on in
                 * the other interpreters. */
                if (!t->found && !t->torn) {
                    t->depth = 0;
                    t->truncated = 0;
                    break;
                }
                if (g >= 0 && !t->gil_requested) {
                    t->gil = g;
                }
                left--;
                break;
            }
        }
    }
    pp_py_rt_head_unlock();
    /* A thread with no thread state yet (or none left) enters Python in
     * the main interpreter, the last of the list: mod_wsgi's
     * PyGILState_Ensure makes one there, and a thread queued behind
     * another on mod_wsgi's interpreter lock has not got that far. */
    for (i = 0; i < n && last_gil >= 0; i++) {
        if (targets[i].gil < 0) {
            targets[i].gil = last_gil;
        }
    }
}

int pp_py_walk_gil_holder(pp_store_t *st, const pp_gil_state_t *g,
                          pp_walk_target_t *t)
{
    const void *interp;
    int seen = 0;

    t->found = 0;
    t->torn = 0;
    t->depth = 0;
    t->truncated = 0;
    if (t->max_depth == 0 || t->max_depth > PP_DEPTH_LIMIT) {
        t->max_depth = PP_DEPTH_LIMIT;
    }
    if (!pp_py_gil_blame || !g->holder_ts || !g->holder_ident) {
        return 0;
    }
    t->thread_ident = g->holder_ident;
    t->native_tid = g->holder_tid;
    /* the holder's thread state is dereferenced only once it is found in
     * a list under HEAD_LOCK: it may have been deleted since the walk */
    pp_py_rt_head_lock();
    for (interp = pp_py_rt_interpreters(); interp && !seen;
         interp =
             (const void *)pp_py_word_in_place(interp, pp_py_L->interp_next)) {
        const void *ts;

        for (ts = (const void *)pp_py_word_in_place(
                 interp, pp_py_L->interp_threads_head);
             ts; ts = (const void *)pp_py_word_in_place(ts, pp_py_L->ts_next)) {
            if (ts != g->holder_ts) {
                continue;
            }
            seen = 1;
            if (is_thread_of(ts, t) &&
                pp_py_frames_sample_thread(st, ts, (void *)interp, t)) {
                atomic_thread_fence(memory_order_acquire);
                if (!is_thread_of(ts, t)) {
                    t->found = 0;
                    t->depth = 0;
                }
            }
            break;
        }
    }
    pp_py_rt_head_unlock();
    return t->found && !t->torn && t->depth > 0;
}
/* ------------------------------------------------------------ interface */

static int walker_init(int gil_free, int copy)
{
    const char *why = NULL;

    pp_py_L = pp_py_layout();
    if (!pp_py_L || pp_py_L->code_header > PP_PY_CODE_HDR_MAX ||
        pp_py_L->frame_size > PP_PY_FRAME_HDR_MAX ||
        pp_py_L->str_header > PP_PY_STR_HDR_MAX ||
        pp_py_L->bytes_data > PP_PY_BYTES_HDR_MAX ||
        pp_py_L->chunk_data > PP_PY_CHUNK_HDR_MAX) {
        why = "a structure is larger than the reader's buffers";
    }
    else if (pp_py_layout_check(&why) != 0 && !why) {
        why = "unknown";
    }
    if (why) {
        /* the interpreter running is not the one the module was built
         * for: reading its memory with these offsets could only mislead */
        pp_log(PP_LOG_ERR,
               "not sampling in pid %d: the running Python does not match "
               "the CPython %s headers mod_pyprof was built with (%s); "
               "rebuild mod_pyprof against the Python mod_wsgi links",
               (int)getpid(), pp_py_L ? pp_py_L->version : "?", why);
        pp_py_L = NULL;
        return -1;
    }
    if (pp_py_code_init() != 0 || pp_py_frames_init() != 0) {
        return -1;
    }
    if (pp_py_read_select(gil_free, copy) != 0) {
        return -1;
    }
    pp_py_frames_set_tries(gil_free ? NOGIL_TRIES : 1);
    return 0;
}

int pp_py_walker_init(int gil_free)
{
    return walker_init(gil_free, PP_PY_COPY_SYSCALL);
}

int pp_py_nogil_init(int copy)
{
    return walker_init(1, copy);
}

void pp_py_walk_nogil(pp_store_t *st, pp_walk_target_t *targets, int n)
{
    pp_py_read_check_guard(st);
    walk(st, targets, n);
    pp_py_read_count_faults(st);
}

void pp_py_walk(pp_store_t *st, pp_walk_target_t *targets, int n)
{
    walk(st, targets, n);
}
