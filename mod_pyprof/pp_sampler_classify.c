/* pp_sampler_classify.c: how each sample's interval was spent, read right
 * after its stack: on CPU (the thread's CPU clock), or off it and where
 * (its /proc wait channel, and its state when that is ambiguous), with the
 * GIL blame rule (pp_sampler_gil.c) deciding which futex waits are the
 * GIL's.  Also the pure rules behind it (pp_sample_on_cpu,
 * pp_sample_how_wchan, pp_sample_stat_runnable), which tests call directly.
 *
 * Sampler thread only, with the registry mutex held
 * (pp_sampler_classify_locked): only requests still registered are read,
 * so a descriptor used is open and the thread behind it is still the
 * request's.  Never waits for the GIL or for anything but the /proc reads
 * it makes (pread, no blocking file); never touches Python.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pp_sampler_int.h"

/* On CPU for at least half of the interval. */
int pp_sample_on_cpu(int64_t cpu_delta_ns, int64_t wall_ns)
{
    return cpu_delta_ns >= 0 && cpu_delta_ns * 2 >= wall_ns;
}

/* What a thread's wait channel says (/proc/self/task/TID/wchan, `n` bytes,
 * no newline): the kernel function it is blocked in, or "0" when it is
 * not blocked (running or on a run queue) -- or when the kernel cannot
 * name functions, hence `names`. */
int pp_sample_how_wchan(const char *w, ssize_t n, int names)
{
    if (n >= 5 && strncmp(w, "futex", 5) == 0) {
        return PP_SAMPLE_GIL_WAIT;
    }
    if (n == 1 && w[0] == '0' && names) {
        return PP_SAMPLE_WAIT_CORE;
    }
    return PP_SAMPLE_OFF_CPU;
}

int pp_sample_stat_runnable(const char *stat, ssize_t n)
{
    ssize_t i;

    /* "pid (comm) S ...": comm may hold anything, the state follows the
     * last ')' */
    for (i = n - 1; i >= 0 && stat[i] != ')'; i--) {
    }
    if (i < 0 || i + 2 >= n || stat[i + 1] != ' ') {
        return -1;
    }
    return stat[i + 2] == 'R';
}

/* Whether e's thread is runnable now, from its stat (-1: unknown). */
static int entry_runnable(pp_sampler_entry_t *e)
{
    char buf[512];
    ssize_t got;

    if (e->stat_fd < 0) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)e->tid);
        e->stat_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (e->stat_fd < 0) {
            return -1;
        }
    }
    got = pread(e->stat_fd, buf, sizeof(buf), 0);
    return got > 0 ? pp_sample_stat_runnable(buf, got) : -1;
}

/* How each request's interval was spent, read right after its stack.
 * With the GIL held every other Python thread is parked where it was; GIL-
 * free, the reading is a few microseconds after the stack.  On CPU for at
 * least half the interval counts as on CPU.  Otherwise the thread's kernel
 * wait channel says where it is now: blocked on a futex is waiting for the
 * GIL (or a lock); blocked anywhere else (nanosleep, poll, read) is sleep
 * or I/O; not blocked is runnable, and a runnable thread whose CPU clock
 * moves while we look is on CPU (it has just woken), one whose clock
 * stands still is waiting for a core (state R, on a run queue: a busy
 * machine, not the app's doing).
 *
 * A thread whose CPU clock has not moved since its wait channel was last
 * read has not run since: it is still blocked where it was, or still
 * queued (only a woken thread still in the queue is miscounted, as
 * blocked), so that verdict stands and the read is saved -- a thread
 * asleep for a second costs one wait-channel read, not a thousand.
 *
 * Called with s->mu held, and reads only requests still registered: the
 * walk ran unlocked, and a request that ended meanwhile has had its
 * wait-channel descriptor closed by pp_sampler_unregister (the number may
 * already name another file of the process) and its thread may have gone
 * on to other work.  Under the lock an entry's descriptor is open and its
 * thread is the one serving the request.  Returns its own wall time. */
int64_t pp_sampler_classify_locked(pp_sampler_state_t *s, pp_store_t *st, int n)
{
    int64_t at = pp_mono_ns();
    uint64_t clocks = 0, wchans = 0, saved = 0, stats = 0;
    const pp_gil_tick_t *gt = s->gil_blame ? pp_py_gil_tick() : NULL;
    int waiting[PP_GILS_MAX] = {0};
    int i;

    for (i = 0; i < n; i++) {
        pp_sampler_ref_t *ref = &s->refs[i];
        pp_sampler_entry_t *e =
            pp_sampler_find_entry(s, ref->slot, ref->serial);
        const pp_walk_target_t *t = &s->targets[i];
        const pp_gil_state_t *g =
            gt && t->gil >= 0 && t->gil < gt->n ? &gt->gils[t->gil] : NULL;
        int may_wait = pp_gil_may_wait(g, t, s->gil_marks);
        char w[32];
        ssize_t got;

        ref->at_ns = at;
        ref->cpu_ns = -1;
        ref->how = PP_SAMPLE_OFF_CPU;
        if (!e) {
            continue; /* ended during the walk: not recorded */
        }
        if (e->has_cpu_clock) {
            ref->cpu_ns = pp_sampler_clock_ns(e->cpu_clock);
            clocks++;
        }
        if (ref->cpu_ns >= 0 && e->last_cpu_ns >= 0 &&
            pp_sample_on_cpu(ref->cpu_ns - e->last_cpu_ns, at - e->last_ns)) {
            ref->how = PP_SAMPLE_ON_CPU;
            e->known_how = -1;
            continue;
        }
        if (gt && s->gil_marks && may_wait && t->gil_requested) {
            /* 3.15 marks the waiter itself: no wait channel needed */
            ref->how = PP_SAMPLE_GIL_WAIT;
            waiting[t->gil]++;
            e->known_how = -1;
            continue;
        }
        if (!t->found && !(gt && may_wait)) {
            continue; /* outside Python: recorded without a kind */
        }
        if (e->known_how >= 0 && ref->cpu_ns >= 0 &&
            ref->cpu_ns == e->known_cpu_ns) {
            ref->how = e->known_how; /* has not run since */
            if (gt && ref->how == PP_SAMPLE_GIL_WAIT && g) {
                waiting[t->gil]++;
            }
            saved++;
            continue;
        }
        e->known_how = -1;
        if (e->wchan_fd < 0) {
            continue;
        }
        got = pread(e->wchan_fd, w, sizeof(w) - 1, 0);
        wchans++;
        if (got <= 0) {
            continue;
        }
        if (got > 1 || w[0] != '0') {
            s->wchan_names = 1;
        }
        ref->how = pp_sample_how_wchan(w, got, s->wchan_names);
        if (gt && ref->how == PP_SAMPLE_GIL_WAIT) {
            /* a futex: the GIL's only when the rule says it may be */
            if (may_wait) {
                waiting[t->gil]++;
            }
            else {
                ref->how = PP_SAMPLE_OFF_CPU;
            }
        }
        if (!t->found && ref->how != PP_SAMPLE_GIL_WAIT) {
            continue; /* outside Python after all; nothing to remember */
        }
        if (ref->how == PP_SAMPLE_WAIT_CORE && ref->cpu_ns >= 0) {
            int64_t again = pp_sampler_clock_ns(e->cpu_clock);
            clocks++;
            if (again > ref->cpu_ns) {
                ref->how = PP_SAMPLE_ON_CPU; /* running now */
                continue;
            }
            /* queued, or asleep and not dequeued yet: the state says */
            if (entry_runnable(e) == 0) {
                ref->how = PP_SAMPLE_OFF_CPU;
            }
            stats++;
        }
        if (ref->cpu_ns >= 0) {
            e->known_how = ref->how;
            e->known_cpu_ns = ref->cpu_ns;
        }
    }
    /* more futex sleepers taken for GIL waiters than the GIL has: some
     * wait for a lock instead (counted, still charged to the GIL) */
    for (i = 0; gt && !s->gil_marks && i < gt->n; i++) {
        if (gt->gils[i].waiters >= 0 && waiting[i] > gt->gils[i].waiters) {
            atomic_fetch_add_explicit(
                &st->c.gil_wait_ambiguous,
                (uint64_t)(waiting[i] - gt->gils[i].waiters),
                memory_order_relaxed);
        }
    }
    atomic_fetch_add_explicit(&st->c.cpu_clock_reads, clocks,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&st->c.wchan_reads, wchans + stats,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&st->c.wchan_reads_saved, saved,
                              memory_order_relaxed);
    return pp_mono_ns() - at;
}
