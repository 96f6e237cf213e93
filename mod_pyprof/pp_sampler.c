/* pp_sampler.c: the sampler thread (see pp_sampler.h).
 *
 * Owns the process-local registry of in-flight requests and the thread
 * that samples them: registration (request threads, under the registry
 * mutex), the sampler thread's loop and one tick's walk and store, start,
 * stop and the fork handler (the glue).  The registry mutex is private to
 * the process (never in shared memory), is never held while waiting for
 * the GIL, and is the only thing request threads ever wait on.  All Python
 * access goes through pp_frames.h.
 *
 * A tick's samples are classified by pp_sampler_classify.c (how each
 * interval was spent) and, GIL-free, those that wait for a GIL charged to
 * its holder by pp_sampler_gil.c (GIL blame); both run on the sampler
 * thread with the registry mutex held (pp_sampler_int.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "pp_frames.h"
#include "pp_log.h"
#include "pp_sampler.h"
#include "pp_sampler_int.h"

static pp_sampler_state_t S = {PTHREAD_MUTEX_INITIALIZER};

int64_t pp_thread_cpu_ns(pthread_t thread)
{
    clockid_t c;
    if (pthread_equal(thread, pthread_self())) {
        return pp_sampler_clock_ns(CLOCK_THREAD_CPUTIME_ID);
    }
    if (pthread_getcpuclockid(thread, &c) != 0) {
        return -1;
    }
    return pp_sampler_clock_ns(c);
}

/* Each request thread keeps its own schedstat open (one descriptor per
 * thread that ever registered, closed when the thread exits): an open per
 * request would cost more than the sampling of a short one. */
static pthread_key_t schedstat_key;
static pthread_once_t schedstat_once = PTHREAD_ONCE_INIT;
static int schedstat_key_ok;

static void schedstat_close(void *v)
{
    close((int)(intptr_t)v - 1);
}

static void schedstat_key_create(void)
{
    schedstat_key_ok = pthread_key_create(&schedstat_key, schedstat_close) == 0;
}

/* The calling thread's time spent runnable but waiting for a core (the
 * second field of its schedstat, CONFIG_SCHED_INFO), -1 if unknown.  The
 * kernel adds a wait when the thread gets a core, so the running thread's
 * own count is complete. */
static int64_t own_run_delay_ns(void)
{
    char buf[96], *end;
    unsigned long long run, wait;
    ssize_t got;
    int fd;

    pthread_once(&schedstat_once, schedstat_key_create);
    if (!schedstat_key_ok) {
        return -1;
    }
    fd = (int)(intptr_t)pthread_getspecific(schedstat_key) - 1;
    if (fd < 0) {
        fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            return -1;
        }
        if (pthread_setspecific(schedstat_key, (void *)(intptr_t)(fd + 1))) {
            close(fd);
            return -1;
        }
    }
    got = pread(fd, buf, sizeof(buf) - 1, 0);
    if (got <= 0) {
        return -1;
    }
    buf[got] = '\0';
    errno = 0;
    run = strtoull(buf, &end, 10);
    if (end == buf || *end != ' ' || errno) {
        return -1;
    }
    wait = strtoull(end + 1, &end, 10);
    if (*end != ' ' || errno || run == 0) {
        return -1; /* "0 0 0": the kernel keeps no such count */
    }
    return wait <= INT64_MAX ? (int64_t)wait : -1;
}

/* xorshift, seeded per thread: only for the first sample's phase */
static uint64_t phase_random(void)
{
    static __thread uint64_t x;
    if (!x) {
        x = (uint64_t)pp_mono_ns() ^ ((uint64_t)syscall(SYS_gettid) << 32) ^
            0x9e3779b97f4a7c15ULL;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

static void ns_to_timespec(int64_t ns, struct timespec *ts)
{
    ts->tv_sec = ns / 1000000000;
    ts->tv_nsec = ns % 1000000000;
}

static int cost_bucket(int64_t ns)
{
    int b = 0;
    while (ns > 1 && b < PP_COST_BUCKETS - 1) {
        ns >>= 1;
        b++;
    }
    return b;
}

int pp_sampler_register(int slot, uint64_t serial, uint32_t interval_us,
                        uint32_t max_depth)
{
    pp_sampler_entry_t *e;
    int64_t now = pp_mono_ns();
    int rc = 0;

    pthread_mutex_lock(&S.mu);
    if (!S.running || S.n >= PP_SAMPLER_LOCAL_MAX) {
        rc = -1;
        goto out;
    }
    e = &S.entries[S.n++];
    memset(e, 0, sizeof(*e));
    e->slot = slot;
    e->serial = serial;
    e->thread = pthread_self();
    e->tid = (pid_t)syscall(SYS_gettid);
    e->has_cpu_clock = pthread_getcpuclockid(e->thread, &e->cpu_clock) == 0;
    e->last_cpu_ns = pp_sampler_clock_ns(CLOCK_THREAD_CPUTIME_ID);
    e->start_cpu_ns = e->last_cpu_ns;
    e->start_run_delay_ns = own_run_delay_ns();
    e->max_depth = max_depth;
    e->interval_ns = (int64_t)interval_us * 1000;
    e->last_ns = now;
    e->wchan_fd = -1;
    e->stat_fd = -1;
    e->known_how = -1;
    /* first sample at a random phase inside the interval, so periodic
     * work in the app cannot alias with the sampling clock */
    e->next_due_ns = now + (int64_t)(phase_random() % (uint64_t)e->interval_ns);
    /* Wake the sampler only when it would otherwise miss this request's
     * whole first interval: when it sleeps with nothing to do, or until
     * later than that.  Under steady traffic it is already waking for
     * other requests, and a futex wake per request would cost more than
     * the sampling (a context switch on a busy core). */
    if (S.waiting && (S.sleep_until_ns == INT64_MAX ||
                      e->next_due_ns + e->interval_ns < S.sleep_until_ns)) {
        pthread_cond_signal(&S.cv);
    }
out:
    pthread_mutex_unlock(&S.mu);
    return rc;
}

int pp_sampler_current(int *slot, uint64_t *serial)
{
    pthread_t self = pthread_self();
    int i, found = 0;

    pthread_mutex_lock(&S.mu);
    for (i = 0; i < S.n; i++) {
        if (pthread_equal(S.entries[i].thread, self)) {
            *slot = S.entries[i].slot;
            *serial = S.entries[i].serial;
            found = 1;
            break;
        }
    }
    pthread_mutex_unlock(&S.mu);
    return found;
}

int64_t pp_sampler_unregister_cpu(int slot)
{
    int i;
    int fd = -1, stat_fd = -1;
    int64_t start = -1, waited = -1, now;
    uint64_t serial = 0;

    pthread_mutex_lock(&S.mu);
    for (i = 0; i < S.n; i++) {
        if (S.entries[i].slot == slot) {
            fd = S.entries[i].wchan_fd;
            stat_fd = S.entries[i].stat_fd;
            if (pthread_equal(S.entries[i].thread, pthread_self())) {
                start = S.entries[i].start_cpu_ns;
                waited = S.entries[i].start_run_delay_ns;
                serial = S.entries[i].serial;
            }
            S.entries[i] = S.entries[--S.n];
            break;
        }
    }
    pthread_mutex_unlock(&S.mu);
    if (fd >= 0) {
        close(fd);
    }
    if (stat_fd >= 0) {
        close(stat_fd);
    }
    /* only where the request's Python ran: a thread that proxies to a
     * mod_wsgi daemon would overwrite the daemon thread's count */
    if (waited >= 0 && pp_store_samples_here(S.st, slot, S.pid)) {
        int64_t until = own_run_delay_ns();
        if (until >= waited) {
            pp_store_note_run_delay(S.st, slot, serial,
                                    (until - waited) / 1000);
        }
    }
    now = start >= 0 ? pp_sampler_clock_ns(CLOCK_THREAD_CPUTIME_ID) : -1;
    return start >= 0 && now >= start ? now - start : -1;
}

void pp_sampler_unregister(int slot)
{
    (void)pp_sampler_unregister_cpu(slot);
}


/* Snapshot the due entries into S.targets / S.refs; with S.mu held. */
static int collect_due(pp_store_t *st, int64_t now)
{
    int i, n = 0;

    for (i = 0; i < S.n && n < PP_SAMPLER_LOCAL_MAX; i++) {
        pp_sampler_entry_t *e = &S.entries[i];
        if (e->next_due_ns <= now &&
            !pp_store_samples_here(st, e->slot, S.pid)) {
            /* a mod_wsgi daemon runs this request's Python and samples it;
             * here the thread only proxies */
            e->next_due_ns = now + e->interval_ns;
            continue;
        }
        if (e->next_due_ns <= now) {
            pp_walk_target_t *t = &S.targets[n];
            t->thread_ident = (unsigned long)e->thread;
            t->native_tid = e->tid;
            t->max_depth = e->max_depth;
            t->interp = e->interp ? e->interp : S.last_interp;
            S.refs[n].slot = e->slot;
            S.refs[n].serial = e->serial;
            S.refs[n].interval_ns = e->interval_ns;
            if (e->wchan_fd < 0) {
                char path[64];
                snprintf(path, sizeof(path), "/proc/self/task/%d/wchan",
                         (int)e->tid);
                e->wchan_fd = open(path, O_RDONLY | O_CLOEXEC);
            }
            n++;
        }
    }
    return n;
}


/* One tick: sample every due entry.  Called and returns with S.mu held. */
static void sample_due(int64_t now)
{
    pp_store_t *st = S.st;
    int i, n = 0, best = 0;
    int64_t t_ask, t_got, t_walked, t_done, t_stored, classify, cpu0, cpu1;
    void *interp = NULL;

    n = collect_due(st, now);
    if (n == 0) {
        return;
    }
    /* wait for the GIL in the interpreter most due requests run in */
    for (i = 0; i < n; i++) {
        int j, votes = 0;
        for (j = 0; j < n; j++) {
            votes += S.targets[j].interp == S.targets[i].interp;
        }
        if (votes > best) {
            best = votes;
            interp = S.targets[i].interp;
        }
    }
    pthread_mutex_unlock(&S.mu);

    cpu0 = pp_sampler_clock_ns(CLOCK_THREAD_CPUTIME_ID);
    t_ask = pp_mono_ns();
    if (S.nogil) {
        /* nothing to wait for: the threads run on while we read them */
        (void)interp;
        t_got = t_ask;
        pp_py_walk_nogil(st, S.targets, n);
        t_walked = pp_mono_ns();
        pthread_mutex_lock(&S.mu);
        classify = pp_sampler_classify_locked(&S, st, n);
        if (S.gil_blame) {
            pp_sampler_gil_blame_prepare_locked(&S, st, n);
        }
        t_done = t_walked;
        goto record;
    }
    if (!pp_py_acquire(interp)) {
        pthread_mutex_lock(&S.mu);
        S.stop = 1; /* the interpreter is going away */
        return;
    }
    t_got = pp_mono_ns();
    /* Waiting for the GIL can take a switch interval (5 ms): requests that
     * were due have often finished, and others have come due meanwhile.
     * Sample what is due now, while nothing can run Python; short busy
     * requests would otherwise never be seen. */
    pthread_mutex_lock(&S.mu);
    n = collect_due(st, t_got);
    pthread_mutex_unlock(&S.mu);
    if (n == 0) {
        pp_py_release();
        pthread_mutex_lock(&S.mu);
        return;
    }
    pp_py_walk(st, S.targets, n);
    t_walked = pp_mono_ns();
    /* with the GIL still held (the threads parked where they were read);
     * S.mu only excludes register/unregister, which never wait for the
     * GIL while they hold it */
    pthread_mutex_lock(&S.mu);
    classify = pp_sampler_classify_locked(&S, st, n);
    pthread_mutex_unlock(&S.mu);
    /* may wait until the thread we preempted has the GIL back (3.11's
     * forced switching); that is wall time, not the sampler's cost */
    pp_py_release();
    t_done = pp_mono_ns();
    pthread_mutex_lock(&S.mu);

record: /* S.mu held */
    now = pp_mono_ns();
    for (i = 0; i < n; i++) {
        pp_sampler_entry_t *e =
            pp_sampler_find_entry(&S, S.refs[i].slot, S.refs[i].serial);
        pp_walk_target_t *t = &S.targets[i];
        pp_slot_t *slot;
        uint32_t node;
        int64_t cpu = S.refs[i].cpu_ns, weight;
        uint64_t weight_us, cpu_us;
        pp_sampler_blame_t *b =
            S.gil_blame && S.refs[i].how == PP_SAMPLE_GIL_WAIT && t->gil >= 0 &&
                    t->gil < PP_GILS_MAX && S.blame[t->gil].ready
                ? &S.blame[t->gil]
                : NULL;

        if (!e) {
            continue; /* finished while we held the GIL */
        }
        slot = pp_store_slot(st, e->slot);
        weight = S.refs[i].at_ns - e->last_ns;
        weight_us = (uint64_t)(weight > 0 ? weight / 1000 : 0);
        cpu_us = (uint64_t)(cpu >= 0 && cpu > e->last_cpu_ns
                                ? (cpu - e->last_cpu_ns) / 1000
                                : 0);
        if (t->torn) {
            /* dropped, not outside Python: its time goes to the next
             * sample's weight */
            atomic_fetch_add(&st->c.torn, 1);
            continue;
        }
        if (!t->found && b && b->enter_frame &&
            (node = pp_store_intern_node(st, 0, b->enter_frame)) != 0) {
            /* waiting for the GIL to enter Python (mod_wsgi takes it
             * before the app's first frame): its own kind of sample */
            atomic_fetch_add_explicit(&st->c.gil_enter_samples, 1,
                                      memory_order_relaxed);
            if (slot) {
                pp_store_sample_gil(st, e->slot, e->serial, node, pp_wall_us(),
                                    weight_us, cpu_us, PP_SAMPLE_GIL_ENTER,
                                    &b->holder);
            }
            e->last_ns = S.refs[i].at_ns;
            if (cpu >= 0) {
                e->last_cpu_ns = cpu;
            }
        }
        else if (!t->found) {
            /* in Apache before or after the app, or in C code that runs
             * no Python frame: time of the request outside Python */
            atomic_fetch_add(&st->c.threads_missing, 1);
            if (slot) {
                pp_store_sample_outside(st, e->slot, e->serial, pp_wall_us(),
                                        weight_us);
            }
            e->last_ns = S.refs[i].at_ns;
            if (cpu >= 0) {
                e->last_cpu_ns = cpu;
            }
        }
        else {
            e->interp = t->interp;
            S.last_interp = t->interp;
            node = pp_store_intern_stack_memo(
                st,
                S.memos ? &S.memos[(unsigned)e->slot % PP_SAMPLER_MEMO_SLOTS]
                        : NULL,
                t->frames, t->depth, t->truncated);
            if (!node) {
                node = pp_store_intern_node(st, 0, st->frame_unknown);
            }
            if (b && node && b->wait_frame) {
                /* the wait, and whom it was behind, at the leaf */
                uint32_t leaf = pp_store_intern_node(st, node, b->wait_frame);
                node = leaf ? leaf : node;
                atomic_fetch_add_explicit(&st->c.gil_wait_samples, 1,
                                          memory_order_relaxed);
            }
            if (slot && node) {
                pp_store_sample_gil(
                    st, e->slot, e->serial, node, pp_wall_us(), weight_us,
                    cpu_us,
                    S.refs[i].how | (t->truncated ? PP_SAMPLE_TRUNCATED : 0),
                    b ? &b->holder : NULL);
            }
            e->last_ns = S.refs[i].at_ns;
            if (cpu >= 0) {
                e->last_cpu_ns = cpu;
            }
        }
        /* fixed rate from the first phase; skip missed ticks rather than
         * bursting to catch up */
        e->next_due_ns += e->interval_ns;
        if (e->next_due_ns <= now) {
            e->next_due_ns =
                now + e->interval_ns - (now - e->next_due_ns) % e->interval_ns;
        }
    }
    t_stored = pp_mono_ns();
    cpu1 = pp_sampler_clock_ns(CLOCK_THREAD_CPUTIME_ID);
    atomic_fetch_add(&st->c.ticks, 1);
    atomic_fetch_add(&st->c.gil_wait_ns, (uint64_t)(t_got - t_ask));
    atomic_fetch_add(&st->c.walk_ns, (uint64_t)(t_walked - t_got));
    atomic_fetch_add(&st->c.classify_ns, (uint64_t)classify);
    atomic_fetch_add(&st->c.store_ns, (uint64_t)(t_stored - now));
    (void)t_done;
    if (cpu0 >= 0 && cpu1 >= cpu0) {
        atomic_fetch_add(&st->c.sampler_cpu_ns, (uint64_t)(cpu1 - cpu0));
    }
    atomic_fetch_add(&st->c.sample_cost[cost_bucket((t_walked - t_got) / n)],
                     (uint64_t)n);
}

/* The sampler's last word, however it ends: from its own return, or from
 * pthread_exit() inside CPython (3.11 and 3.13 end a thread that waits for
 * the GIL while Python finalises, PyThread_exit_thread).  After this the
 * thread touches nothing of Python. */
static void sampler_left_python(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&S.mu);
    S.running = 0;
    S.py_done = 1;
    pthread_cond_broadcast(&S.done_cv);
    pthread_mutex_unlock(&S.mu);
}

static void sampler_loop(void);

static void *sampler_main(void *arg)
{
    (void)arg;
    pthread_cleanup_push(sampler_left_python, NULL);
    sampler_loop();
    pthread_cleanup_pop(1);
    return NULL;
}

static void sampler_loop(void)
{
    int64_t last_wake = 0;

    if (S.nogil &&
        pp_py_nogil_init(S.st->sampler_mode == PP_SAMPLER_NOGIL_SYSCALL
                             ? PP_PY_COPY_SYSCALL
                             : PP_PY_COPY_GUARDED) != 0) {
        pp_log(PP_LOG_WARN,
               "GIL-free sampling is not available in pid %d "
               "(process_vm_readv on ourselves failed); "
               "sampling with the GIL",
               (int)getpid());
        S.nogil = 0;
    }
    S.gil_blame = 0;
    if (S.nogil && S.holder_walk) {
        const char *why = NULL;

        S.gil_blame = pp_py_gil_blame_init(&why) == 0;
        S.gil_marks = pp_py_gil_marks_waiters();
        memset(S.blame, 0, sizeof(S.blame));
        if (!S.gil_blame) {
            pp_log(PP_LOG_WARN,
                   "no GIL blame in pid %d: the running Python's GIL does "
                   "not match the headers mod_pyprof was built with (%s)",
                   (int)getpid(), why ? why : "unknown");
        }
    }
    atomic_fetch_add(
        S.nogil ? &S.st->c.nogil_processes : &S.st->c.gil_processes, 1);
    if (S.nogil && pp_py_nogil_copy() == PP_PY_COPY_GUARDED) {
        atomic_fetch_add(&S.st->c.guarded_processes, 1);
    }
    if (!S.nogil && pp_py_attach() != 0) {
        pp_log(PP_LOG_WARN,
               "sampler could not create its Python thread "
               "state; not sampling in pid %d",
               (int)getpid());
        return;
    }
    pthread_mutex_lock(&S.mu);
    while (!S.stop) {
        int64_t now = pp_mono_ns(), due = INT64_MAX, tick = INT64_MAX;
        int i;

        for (i = 0; i < S.n; i++) {
            if (S.entries[i].next_due_ns < due) {
                due = S.entries[i].next_due_ns;
            }
            if (S.entries[i].interval_ns < tick) {
                tick = S.entries[i].interval_ns;
            }
        }
        /* Many short requests each bring a due time of their own, and most
         * end before it: wake at most twice per interval, and sample
         * whatever is due by then (a little late, never early; the weights
         * are measured, not assumed). */
        if (due != INT64_MAX && due < last_wake + tick / 2) {
            due = last_wake + tick / 2;
        }
        if (due > now) {
            S.waiting = 1;
            S.sleep_until_ns = due;
            if (due == INT64_MAX) {
                pthread_cond_wait(&S.cv, &S.mu);
            }
            else {
                struct timespec ts;
                ns_to_timespec(due, &ts);
                /* absolute CLOCK_MONOTONIC deadline: no drift, and a new
                 * request that is due sooner can wake us */
                pthread_cond_timedwait(&S.cv, &S.mu, &ts);
            }
            S.waiting = 0;
            continue;
        }
        last_wake = now;
        sample_due(now);
    }
    S.running = 0;
    pthread_mutex_unlock(&S.mu);
    if (!S.nogil) {
        pp_py_detach();
    }
    else {
        pp_py_nogil_fini(); /* our SIGSEGV handler, if still installed */
    }
}

/* An app may fork inside a request (os.fork, subprocess with preexec).
 * The child has no sampler thread, and the registry's mutex may have been
 * held by it at the fork: start the child with an empty, unlocked
 * registry, so pyprof calls in the child neither hang nor write. */
static void sampler_atfork_child(void)
{
    /* the forking thread's schedstat is the parent thread's file */
    if (schedstat_key_ok && pthread_getspecific(schedstat_key)) {
        close((int)(intptr_t)pthread_getspecific(schedstat_key) - 1);
        pthread_setspecific(schedstat_key, NULL);
    }
    pthread_mutex_init(&S.mu, NULL);
    S.running = 0;
    S.py_done = 1;
    S.n = 0;
    S.waiting = 0;
    S.thread = 0;
}

int pp_sampler_start(pp_store_t *st)
{
    static int atfork_done;
    pthread_condattr_t ca;
    pthread_attr_t attr;
    sigset_t all, old;
    int rc;

    pthread_mutex_lock(&S.mu);
    if (S.running) {
        pthread_mutex_unlock(&S.mu);
        return 0;
    }
    if (!atfork_done) {
        pthread_atfork(NULL, NULL, sampler_atfork_child);
        atfork_done = 1;
    }
    if (!S.cv_ready) {
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&S.cv, &ca);
        pthread_cond_init(&S.done_cv, &ca);
        pthread_condattr_destroy(&ca);
        S.cv_ready = 1;
    }
    if (!S.targets) {
        S.targets = calloc(PP_SAMPLER_LOCAL_MAX, sizeof(*S.targets));
        if (!S.targets) {
            pthread_mutex_unlock(&S.mu);
            return -1;
        }
    }
    if (!S.holder_walk) {
        /* without, no GIL blame */
        S.holder_walk = calloc(1, sizeof(*S.holder_walk));
    }
    if (!S.memos) {
        /* without, every stack is interned frame by frame */
        S.memos = calloc(PP_SAMPLER_MEMO_SLOTS, sizeof(*S.memos));
    }
    S.st = st;
    S.nogil = st->sampler_mode != PP_SAMPLER_GIL;
    /* without kallsyms every wait channel reads "0"; until a name is
     * seen, "0" says nothing */
    S.wchan_names = access("/proc/kallsyms", F_OK) == 0;
    S.stop = 0;
    S.n = 0;
    S.pid = getpid();
    S.running = 1;
    S.py_done = 0;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, (size_t)256 * 1024);
    /* the sampler must never receive the signals Apache uses to stop and
     * restart children */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&S.thread, &attr, sampler_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        S.running = 0;
        S.py_done = 1;
        S.thread = 0;
    }
    pthread_mutex_unlock(&S.mu);
    return rc == 0 ? 0 : -1;
}

int pp_sampler_running(void)
{
    int r;
    pthread_mutex_lock(&S.mu);
    r = S.running && S.pid == getpid();
    pthread_mutex_unlock(&S.mu);
    return r;
}

int pp_sampler_stop(int timeout_ms)
{
    struct timespec ts;
    pthread_t thread;
    int late = 0;

    pthread_mutex_lock(&S.mu);
    if (S.pid != getpid() || !S.thread) {
        pthread_mutex_unlock(&S.mu);
        return 0;
    }
    /* claimed under the lock: two stoppers (the child's pre-cleanup and
     * pyext's stop from mod_wsgi's shutdown event) never join one thread
     * twice */
    thread = S.thread;
    S.thread = 0;
    S.stop = 1;
    pthread_cond_signal(&S.cv);

    /* The caller finalises Python next, so the sampler must be out of it
     * for good before this returns; it used to be detached after the
     * timeout and could wake in an interpreter already torn down.  Where
     * it can be slow is the GIL (GIL mode: a C call that holds the GIL
     * for seconds).  Py_Finalize needs that same GIL, so waiting for it
     * here delays nothing that would not wait anyway; the timeout only
     * says when to tell the log. */
    ns_to_timespec(pp_mono_ns() + (int64_t)timeout_ms * 1000000, &ts);
    while (!S.py_done) {
        if (!late) {
            if (pthread_cond_timedwait(&S.done_cv, &S.mu, &ts) == ETIMEDOUT &&
                !S.py_done) {
                late = 1;
                pthread_mutex_unlock(&S.mu);
                pp_log(PP_LOG_WARN,
                       "sampler in pid %d has not stopped after %d ms (it "
                       "waits for the GIL, held by another thread); "
                       "waiting for it before Python is finalised",
                       (int)getpid(), timeout_ms);
                pthread_mutex_lock(&S.mu);
            }
        }
        else {
            pthread_cond_wait(&S.done_cv, &S.mu);
        }
    }
    pthread_mutex_unlock(&S.mu);
    /* nothing of Python is left to it: it is returning */
    pthread_join(thread, NULL);
    return late ? -1 : 0;
}

int pp_sampler_can_start(void)
{
    return pp_py_initialized();
}
