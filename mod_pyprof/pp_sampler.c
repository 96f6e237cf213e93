/* pp_sampler.c: the sampler thread (see pp_sampler.h).
 *
 * Owns the process-local registry of in-flight requests and the thread
 * that samples them.  The registry mutex is private to the process (never
 * in shared memory), is never held while waiting for the GIL, and is the
 * only thing request threads ever wait on.  All Python access goes through
 * pp_frames.h.
 *
 * GIL blame (GIL-free mode): a request thread that waits for the GIL is
 * told apart from one that sleeps or waits for a lock (classify_targets),
 * with or without a Python frame, and each such sample is charged to the
 * GIL's holder: its request (from this registry) or its thread, and its
 * innermost frame (gil_blame_prepare).
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

#define LOCAL_MAX 512 /* requests one process can serve at once */
/* Stack memos (pp_stack_memo_t), one per request slot modulo this: the
 * requests of one process at once rarely share one. */
#define MEMO_SLOTS 256

typedef struct entry {
    int slot;
    uint64_t serial;
    pthread_t thread;
    pid_t tid;
    clockid_t cpu_clock;
    int has_cpu_clock;
    uint32_t max_depth;
    int64_t interval_ns;
    int64_t next_due_ns;
    int64_t last_ns;
    int64_t last_cpu_ns;
    void *interp;         /* where its thread was last found */
    int wchan_fd;         /* /proc/self/task/TID/wchan, opened on first need */
    int stat_fd;          /* /proc/self/task/TID/stat, likewise */
    int64_t start_cpu_ns; /* the thread's CPU clock at registration */
    int64_t start_run_delay_ns; /* its time waiting for a core then, -1 */
    /* The last verdict read from the wait channel (PP_SAMPLE_*, -1 none)
     * and the thread's CPU clock then: it stays true while the clock has
     * not moved (see classify_targets). */
    int known_how;
    int64_t known_cpu_ns;
} entry_t;

/* What the sampler learns about one due request during a tick.  Only the
 * request's identity is kept across the unlocked walk: the thread's CPU
 * clock and wait-channel descriptor are read from its registry entry,
 * under the registry lock, once the walk is done (see classify_targets). */
typedef struct target_ref {
    int slot;
    uint64_t serial;
    int64_t cpu_ns; /* thread CPU clock at the sample, -1 unknown */
    int64_t at_ns;  /* monotonic time of the sample */
    int64_t interval_ns;
    int how; /* PP_SAMPLE_* */
} target_ref_t;

/* Who holds one GIL in this tick, as the samples that wait for it are
 * charged (gil_blame_prepare), with the frames the waits show as: one at
 * the leaf of a stack in Python, one alone for a thread not in Python
 * yet.  Kept across ticks while the GIL has not changed hands
 * (switch_number), so that a holder that runs on is walked at most once
 * an interval. */
typedef struct gil_blame {
    int ready; /* prepared in this tick */
    const void *gil, *holder_ts;
    uint64_t switch_number;
    int64_t walked_ns; /* when the holder's frame was read; 0 never */
    uint32_t holder_frame;
    pp_gil_holder_t holder;
    uint32_t wait_frame, enter_frame;
} gil_blame_t;

static struct sampler {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int cv_ready;
    entry_t entries[LOCAL_MAX];
    int n;
    int stop;
    int running;
    int waiting;
    /* The sampler thread has made its last call into Python (or never
     * will): set by it, waited for by pp_sampler_stop, so that stop never
     * returns while the thread can still touch an interpreter that the
     * caller is about to finalise. */
    int py_done;
    pthread_cond_t done_cv;
    int64_t sleep_until_ns;
    pthread_t thread;
    pp_store_t *st;
    pid_t pid;
    void *last_interp; /* default for requests not found yet */
    int nogil;         /* read stacks without the GIL */
    /* a wait channel reads as a kernel function's name here (kallsyms),
     * so "0" means runnable rather than "no name" */
    int wchan_names;
    int gil_blame; /* GIL-free and pp_py_gil_blame_init said yes */
    int gil_marks; /* the Python marks GIL waiters (3.15) */
    gil_blame_t blame[PP_GILS_MAX];
    pp_walk_target_t *holder_walk; /* scratch target for a holder */
    /* sampler-thread private */
    pp_walk_target_t *targets;
    target_ref_t refs[LOCAL_MAX];
    pp_stack_memo_t *memos; /* MEMO_SLOTS; NULL: interned without */
} S = {PTHREAD_MUTEX_INITIALIZER};

static int64_t clock_ns(clockid_t c)
{
    struct timespec ts;
    if (clock_gettime(c, &ts) != 0) {
        return -1;
    }
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t pp_thread_cpu_ns(pthread_t thread)
{
    clockid_t c;
    if (pthread_equal(thread, pthread_self())) {
        return clock_ns(CLOCK_THREAD_CPUTIME_ID);
    }
    if (pthread_getcpuclockid(thread, &c) != 0) {
        return -1;
    }
    return clock_ns(c);
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
    entry_t *e;
    int64_t now = pp_mono_ns();
    int rc = 0;

    pthread_mutex_lock(&S.mu);
    if (!S.running || S.n >= LOCAL_MAX) {
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
    e->last_cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID);
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
    now = start >= 0 ? clock_ns(CLOCK_THREAD_CPUTIME_ID) : -1;
    return start >= 0 && now >= start ? now - start : -1;
}

void pp_sampler_unregister(int slot)
{
    (void)pp_sampler_unregister_cpu(slot);
}

static entry_t *find_entry(int slot, uint64_t serial)
{
    int i;
    for (i = 0; i < S.n; i++) {
        if (S.entries[i].slot == slot && S.entries[i].serial == serial) {
            return &S.entries[i];
        }
    }
    return NULL;
}

/* One tick: sample every due entry.  Called and returns with S.mu held. */
/* Snapshot the due entries into S.targets / S.refs; with S.mu held. */
static int collect_due(pp_store_t *st, int64_t now)
{
    int i, n = 0;

    for (i = 0; i < S.n && n < LOCAL_MAX; i++) {
        entry_t *e = &S.entries[i];
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
static int entry_runnable(entry_t *e)
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
 * Called with S.mu held, and reads only requests still registered: the
 * walk ran unlocked, and a request that ended meanwhile has had its
 * wait-channel descriptor closed by pp_sampler_unregister (the number may
 * already name another file of the process) and its thread may have gone
 * on to other work.  Under the lock an entry's descriptor is open and its
 * thread is the one serving the request.  Returns its own wall time. */
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

static int64_t classify_targets(pp_store_t *st, int n)
{
    int64_t at = pp_mono_ns();
    uint64_t clocks = 0, wchans = 0, saved = 0, stats = 0;
    const pp_gil_tick_t *gt = S.gil_blame ? pp_py_gil_tick() : NULL;
    int waiting[PP_GILS_MAX] = {0};
    int i;

    for (i = 0; i < n; i++) {
        target_ref_t *ref = &S.refs[i];
        entry_t *e = find_entry(ref->slot, ref->serial);
        const pp_walk_target_t *t = &S.targets[i];
        const pp_gil_state_t *g =
            gt && t->gil >= 0 && t->gil < gt->n ? &gt->gils[t->gil] : NULL;
        int may_wait = pp_gil_may_wait(g, t, S.gil_marks);
        char w[32];
        ssize_t got;

        ref->at_ns = at;
        ref->cpu_ns = -1;
        ref->how = PP_SAMPLE_OFF_CPU;
        if (!e) {
            continue; /* ended during the walk: not recorded */
        }
        if (e->has_cpu_clock) {
            ref->cpu_ns = clock_ns(e->cpu_clock);
            clocks++;
        }
        if (ref->cpu_ns >= 0 && e->last_cpu_ns >= 0 &&
            pp_sample_on_cpu(ref->cpu_ns - e->last_cpu_ns, at - e->last_ns)) {
            ref->how = PP_SAMPLE_ON_CPU;
            e->known_how = -1;
            continue;
        }
        if (gt && S.gil_marks && may_wait && t->gil_requested) {
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
            S.wchan_names = 1;
        }
        ref->how = pp_sample_how_wchan(w, got, S.wchan_names);
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
            int64_t again = clock_ns(e->cpu_clock);
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
    for (i = 0; gt && !S.gil_marks && i < gt->n; i++) {
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
static void blame_frames(pp_store_t *st, gil_blame_t *b, int known)
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
 * Called after classify_targets with S.mu held; drops it while a holder
 * that is not one of this tick's targets is walked (that takes the
 * runtime's HEAD_LOCK, which nothing takes S.mu under, but the walk is
 * tens of microseconds that request threads need not wait for). */
static void gil_blame_prepare(pp_store_t *st, int n)
{
    const pp_gil_tick_t *gt = pp_py_gil_tick();
    int i, j, g, walk[PP_GILS_MAX] = {0}, any = 0;
    int64_t now = pp_mono_ns();

    for (g = 0; g < PP_GILS_MAX; g++) {
        S.blame[g].ready = 0;
    }
    for (i = 0; i < n; i++) {
        const pp_walk_target_t *t = &S.targets[i];
        const pp_gil_state_t *gs;
        gil_blame_t *b;

        if (S.refs[i].how != PP_SAMPLE_GIL_WAIT || t->gil < 0 ||
            t->gil >= gt->n || S.blame[t->gil].ready) {
            continue;
        }
        g = t->gil;
        gs = &gt->gils[g];
        b = &S.blame[g];
        b->ready = 1;
        any = 1;
        /* the holder is a request of this tick: its stack was just read */
        for (j = 0; j < n; j++) {
            if (gs->holder_ident && holds_gil(gs, &S.targets[j])) {
                break;
            }
        }
        if (j < n) {
            b->holder_frame = S.targets[j].found && S.targets[j].depth > 0
                                  ? S.targets[j].frames[0]
                                  : 0;
            b->walked_ns = now;
        }
        else if (!(b->gil == gs->gil && b->holder_ts == gs->holder_ts &&
                   b->switch_number == gs->switch_number && b->walked_ns &&
                   now - b->walked_ns < S.refs[i].interval_ns)) {
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
    pthread_mutex_unlock(&S.mu);
    for (g = 0; g < gt->n && g < PP_GILS_MAX; g++) {
        if (walk[g]) {
            S.holder_walk->max_depth = 1;
            if (pp_py_walk_gil_holder(st, &gt->gils[g], S.holder_walk)) {
                S.blame[g].holder_frame = S.holder_walk->frames[0];
            }
            atomic_fetch_add_explicit(&st->c.gil_holder_walks, 1,
                                      memory_order_relaxed);
        }
    }
    pthread_mutex_lock(&S.mu);
    /* the holder's request, from the registry (under S.mu) */
    for (g = 0; g < gt->n && g < PP_GILS_MAX; g++) {
        const pp_gil_state_t *gs = &gt->gils[g];
        gil_blame_t *b = &S.blame[g];
        pp_gil_holder_t h;

        if (!b->ready) {
            continue;
        }
        memset(&h, 0, sizeof(h));
        h.location = PP_GIL_NO_LOCATION;
        h.tid = gs->holder_tid;
        h.frame = b->holder_frame;
        for (i = 0; gs->holder_ident && i < S.n; i++) {
            entry_t *e = &S.entries[i];
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

    cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    t_ask = pp_mono_ns();
    if (S.nogil) {
        /* nothing to wait for: the threads run on while we read them */
        (void)interp;
        t_got = t_ask;
        pp_py_walk_nogil(st, S.targets, n);
        t_walked = pp_mono_ns();
        pthread_mutex_lock(&S.mu);
        classify = classify_targets(st, n);
        if (S.gil_blame) {
            gil_blame_prepare(st, n);
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
    classify = classify_targets(st, n);
    pthread_mutex_unlock(&S.mu);
    /* may wait until the thread we preempted has the GIL back (3.11's
     * forced switching); that is wall time, not the sampler's cost */
    pp_py_release();
    t_done = pp_mono_ns();
    pthread_mutex_lock(&S.mu);

record: /* S.mu held */
    now = pp_mono_ns();
    for (i = 0; i < n; i++) {
        entry_t *e = find_entry(S.refs[i].slot, S.refs[i].serial);
        pp_walk_target_t *t = &S.targets[i];
        pp_slot_t *slot;
        uint32_t node;
        int64_t cpu = S.refs[i].cpu_ns, weight;
        uint64_t weight_us, cpu_us;
        gil_blame_t *b = S.gil_blame && S.refs[i].how == PP_SAMPLE_GIL_WAIT &&
                                 t->gil >= 0 && t->gil < PP_GILS_MAX &&
                                 S.blame[t->gil].ready
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
                st, S.memos ? &S.memos[(unsigned)e->slot % MEMO_SLOTS] : NULL,
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
    cpu1 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
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
        S.targets = calloc(LOCAL_MAX, sizeof(*S.targets));
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
        S.memos = calloc(MEMO_SLOTS, sizeof(*S.memos));
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
