/* test_sampler.c: the sampler thread and its registry (pp_sampler.c, with
 * pp_sampler_classify.c and pp_sampler_gil.c), with a fake Python layer.
 *
 * The sampler reaches Python only through pp_frames.h; this test supplies
 * that interface itself (pp_py_*), so each call can block where the test
 * wants it to (a walk that takes long, a GIL that a long C call holds) and
 * can check when it is called.  The thread, the registry, the store writes
 * and the stop are the module's own code.
 *
 * pread() is interposed too: every wait-channel read the sampler makes is
 * checked to be of a /proc/self/task/TID/wchan file, the only thing it may
 * read.
 */
#include "unit.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>

#include "pp_frames.h"
#include "pp_log.h"
#include "pp_sampler.h"
#include "pp_store.h"

#define STORE_SIZE (4ULL << 20)

/* ---- a controllable fake of the Python layer ---- */

static pthread_mutex_t fk_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fk_cv = PTHREAD_COND_INITIALIZER;
static struct {
    int walk_blocks; /* the next walk waits for walk_go */
    int in_walk;     /* a walk is waiting */
    int walk_go;
    int gil_held;       /* pp_py_acquire waits while this is set */
    int in_acquire;     /* pp_py_acquire is waiting */
    int finalized;      /* "Py_Finalize has run": no pp_py_* call allowed */
    int after_finalize; /* pp_py_* calls made after it */
    int walks;
    int detached;
} fk;
static pp_store_t *fk_store;

static void fk_set(int *field, int v)
{
    pthread_mutex_lock(&fk_mu);
    *field = v;
    pthread_cond_broadcast(&fk_cv);
    pthread_mutex_unlock(&fk_mu);
}

/* wait until *field == v, at most ms; 1 if it came */
static int fk_wait(const int *field, int v, int ms)
{
    struct timespec ts;
    int ok;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&fk_mu);
    while (*field != v && pthread_cond_timedwait(&fk_cv, &fk_mu, &ts) == 0) {
    }
    ok = *field == v;
    pthread_mutex_unlock(&fk_mu);
    return ok;
}

/* every call into the fake Python checks that Python still exists */
static void fk_python_call(void)
{
    pthread_mutex_lock(&fk_mu);
    if (fk.finalized) {
        fk.after_finalize++;
    }
    pthread_mutex_unlock(&fk_mu);
}

int pp_py_initialized(void)
{
    return 1;
}

int pp_py_attach(void)
{
    fk_python_call();
    return 0;
}

int pp_py_acquire(void *interp)
{
    (void)interp;
    fk_python_call();
    pthread_mutex_lock(&fk_mu);
    fk.in_acquire = 1;
    pthread_cond_broadcast(&fk_cv);
    while (fk.gil_held) {
        pthread_cond_wait(&fk_cv, &fk_mu);
    }
    fk.in_acquire = 0;
    pthread_mutex_unlock(&fk_mu);
    fk_python_call(); /* it now "holds the GIL" of a live interpreter */
    return 1;
}

void pp_py_release(void)
{
    fk_python_call();
}

void pp_py_detach(void)
{
    fk_python_call();
    fk_set(&fk.detached, 1);
}

static void fake_walk(pp_store_t *st, pp_walk_target_t *targets, int n)
{
    int i;

    fk_python_call();
    pthread_mutex_lock(&fk_mu);
    fk.walks++;
    if (fk.walk_blocks) {
        fk.walk_blocks = 0;
        fk.in_walk = 1;
        pthread_cond_broadcast(&fk_cv);
        while (!fk.walk_go) {
            pthread_cond_wait(&fk_cv, &fk_mu);
        }
        fk.in_walk = 0;
        fk.walk_go = 0;
    }
    pthread_cond_broadcast(&fk_cv);
    pthread_mutex_unlock(&fk_mu);
    /* every thread is in Python, one frame deep */
    for (i = 0; i < n; i++) {
        targets[i].found = 1;
        targets[i].torn = 0;
        targets[i].truncated = 0;
        targets[i].depth = 1;
        targets[i].frames[0] = st->frame_unknown;
    }
}

void pp_py_walk(pp_store_t *st, pp_walk_target_t *targets, int n)
{
    fake_walk(st, targets, n);
}

int pp_py_nogil_init(int copy)
{
    (void)copy;
    fk_python_call();
    return 0;
}

int pp_py_nogil_copy(void)
{
    return PP_PY_COPY_SYSCALL;
}

void pp_py_nogil_fini(void)
{}

void pp_py_walk_nogil(pp_store_t *st, pp_walk_target_t *targets, int n)
{
    fake_walk(st, targets, n);
}

/* GIL blame: on, with no GIL ever read (the fake walk leaves every
 * target's gil at 0 and the tick empty, so nothing is blamed) */
static pp_gil_tick_t fk_gil_tick;

int pp_py_gil_blame_init(const char **why)
{
    (void)why;
    return 0;
}

const pp_gil_tick_t *pp_py_gil_tick(void)
{
    return &fk_gil_tick;
}

int pp_py_gil_marks_waiters(void)
{
    return 0;
}

int pp_py_walk_gil_holder(pp_store_t *st, const pp_gil_state_t *g,
                          pp_walk_target_t *t)
{
    (void)st;
    (void)g;
    (void)t;
    return 0;
}

/* ---- pread, watched ---- */

static atomic_int wchan_reads, other_reads, schedstat_reads, stat_reads;

/* The sampler reads a thread's wait channel with pread(), and its stat
 * when the wait channel says "not blocked"; a read of any other
 * descriptor (one closed and reused for another file) is counted.  The
 * one other file read with pread() is a request thread's own schedstat,
 * when it registers and unregisters. */
ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    char link[64], target[256];
    ssize_t len;

    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    len = readlink(link, target, sizeof(target) - 1);
    if (len > 6 &&
        (target[len] = '\0', strcmp(target + len - 6, "/wchan") == 0)) {
        atomic_fetch_add(&wchan_reads, 1);
    }
    else if (len > 10 && strcmp(target + len - 10, "/schedstat") == 0 &&
             strstr(target, "/task/")) {
        atomic_fetch_add(&schedstat_reads, 1);
    }
    else if (len > 5 && strcmp(target + len - 5, "/stat") == 0 &&
             strstr(target, "/task/")) {
        atomic_fetch_add(&stat_reads, 1);
    }
    else {
        atomic_fetch_add(&other_reads, 1);
    }
    return syscall(SYS_pread64, fd, buf, n, off);
}

/* the descriptor the registry opened for a thread's wait channel, or -1 */
static int find_wchan_fd(void)
{
    char link[64], target[256];
    int fd;

    for (fd = 0; fd < 1024; fd++) {
        ssize_t len;
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        len = readlink(link, target, sizeof(target) - 1);
        if (len > 6) {
            target[len] = '\0';
            if (strcmp(target + len - 6, "/wchan") == 0) {
                return fd;
            }
        }
    }
    return -1;
}

/* ---- log capture ---- */

static char last_warning[512];

static void capture_log(pp_log_level_t level, const char *msg)
{
    if (level <= PP_LOG_WARN) {
        snprintf(last_warning, sizeof(last_warning), "%s", msg);
    }
}

/* ---- a request thread ---- */

typedef struct request {
    pthread_t thread;
    int slot;
    uint64_t serial;
    int registered;
    int done; /* set by the test: return */
} request_t;

/* Registers, then waits off CPU (as a request waiting on I/O does) until
 * told to return; the test unregisters it from its own thread. */
static void *request_main(void *arg)
{
    request_t *r = arg;
    int rc = pp_sampler_register(r->slot, r->serial, 1000, 64);

    fk_set(&r->registered, rc == 0 ? 1 : -1);
    fk_wait(&r->done, 1, 10000);
    return NULL;
}

static void request_start(request_t *r, int slot, uint64_t serial)
{
    memset(r, 0, sizeof(*r));
    r->slot = slot;
    r->serial = serial;
    assert_int_equal(pthread_create(&r->thread, NULL, request_main, r), 0);
    assert_true(fk_wait(&r->registered, 1, 5000));
}

static void request_end(request_t *r)
{
    fk_set(&r->done, 1);
    pthread_join(r->thread, NULL);
}

static int setup(void **state)
{
    const char *err = NULL;

    memset(&fk, 0, sizeof(fk));
    atomic_store(&wchan_reads, 0);
    atomic_store(&other_reads, 0);
    atomic_store(&schedstat_reads, 0);
    last_warning[0] = '\0';
    pp_log_set_callback(capture_log);
    fk_store = pp_store_create(STORE_SIZE, 8, 16, &err);
    *state = fk_store;
    return fk_store ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    pp_sampler_stop(5000);
    pp_log_set_callback(NULL);
    pp_store_destroy(fk_store);
    fk_store = NULL;
    return 0;
}

/* ---- tests ---- */

/* A request that ends while the sampler walks its stack (the walk runs
 * without the registry lock) has its wait-channel descriptor closed by
 * pp_sampler_unregister; the number is free for the next open() of the
 * process, here /dev/null.  The sampler used to read the thread's wait
 * channel through the number it had copied before the walk: a read of
 * whatever file now had it.  It reads only entries still registered. */
static void test_wchan_not_read_after_unregister(void **state)
{
    pp_store_t *st = *state;
    request_t r;
    int fd, reused;

    st->sampler_mode = PP_SAMPLER_NOGIL;
    fk.walk_blocks = 1;
    assert_int_equal(pp_sampler_start(st), 0);
    request_start(&r, 0, 1);
    assert_true(fk_wait(&fk.in_walk, 1, 5000));
    fd = find_wchan_fd();
    assert_true(fd >= 0);

    pp_sampler_unregister(0); /* the request ends meanwhile */
    reused = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_int_equal(reused, fd); /* the lowest free number */
    fk_set(&fk.walk_go, 1);
    /* the tick ends: the sampler records its round */
    while (atomic_load(&st->c.ticks) < 1) {
        usleep(1000);
    }
    close(reused);
    assert_int_equal(atomic_load(&other_reads), 0);

    /* a request still registered when the walk ends is read, through its
     * own wait channel (the sampler does read it: the check above is not
     * vacuous) */
    request_end(&r);
    request_start(&r, 1, 2);
    while (atomic_load(&wchan_reads) < 1 && atomic_load(&st->c.ticks) < 500) {
        usleep(1000);
    }
    assert_true(atomic_load(&wchan_reads) >= 1);
    assert_int_equal(atomic_load(&other_reads), 0);
    /* the request threads read their own run-queue count as they
     * registered (where the kernel has one) */
    if (access("/proc/thread-self/schedstat", R_OK) == 0) {
        assert_true(atomic_load(&schedstat_reads) >= 2);
    }
    pp_sampler_unregister(1);
    request_end(&r);
    assert_int_equal(pp_sampler_stop(5000), 0);
}

/* The same with register and unregister racing a sampler that walks all
 * the time: many short requests on four threads, none of their
 * descriptors read after it was closed. */
static void *churn_main(void *arg)
{
    int slot = (int)(intptr_t)arg, k;

    for (k = 0; k < 400; k++) {
        uint64_t serial = (uint64_t)slot * 100000 + (uint64_t)k + 1;
        if (pp_sampler_register(slot, serial, 100, 64) == 0) {
            usleep(200 + (unsigned)(k % 7) * 50);
            pp_sampler_unregister(slot);
        }
        /* a file opened right after: the closed number's next owner */
        close(open("/dev/null", O_RDONLY | O_CLOEXEC));
    }
    return NULL;
}

static void test_register_unregister_race_sampler(void **state)
{
    pp_store_t *st = *state;
    pthread_t th[4];
    int i;

    st->sampler_mode = PP_SAMPLER_NOGIL;
    assert_int_equal(pp_sampler_start(st), 0);
    for (i = 0; i < 4; i++) {
        assert_int_equal(
            pthread_create(&th[i], NULL, churn_main, (void *)(intptr_t)i), 0);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
    }
    assert_int_equal(pp_sampler_stop(5000), 0);
    assert_true(fk.walks > 0);
    assert_int_equal(atomic_load(&other_reads), 0);
}

/* Stopping while the sampler waits for the GIL (GIL mode; a C call holds
 * the GIL longer than the stop's timeout).  The caller finalises Python
 * as soon as pp_sampler_stop returns: it used to return after the timeout
 * with the thread detached, still waiting, and the thread then walked,
 * released and detached in a finalised interpreter.  It returns only when
 * the thread is done with Python: late (-1, logged), never early. */
typedef struct stopper {
    pthread_t thread;
    int rc;
    int returned;
    int gil_was_held; /* at the moment it returned */
} stopper_t;

static void *stopper_main(void *arg)
{
    stopper_t *s = arg;

    s->rc = pp_sampler_stop(50);
    pthread_mutex_lock(&fk_mu);
    s->gil_was_held = fk.gil_held;
    fk.finalized = 1; /* what the caller does next: Py_Finalize */
    s->returned = 1;
    pthread_cond_broadcast(&fk_cv);
    pthread_mutex_unlock(&fk_mu);
    return NULL;
}

static void test_stop_waits_until_sampler_left_python(void **state)
{
    pp_store_t *st = *state;
    request_t r;
    stopper_t s;

    st->sampler_mode = PP_SAMPLER_GIL;
    fk.gil_held = 1;
    assert_int_equal(pp_sampler_start(st), 0);
    request_start(&r, 0, 1);
    assert_true(fk_wait(&fk.in_acquire, 1, 5000));

    memset(&s, 0, sizeof(s));
    assert_int_equal(pthread_create(&s.thread, NULL, stopper_main, &s), 0);
    /* well past the stop's timeout, the GIL still held */
    usleep(300 * 1000);
    fk_set(&fk.gil_held, 0);
    assert_true(fk_wait(&s.returned, 1, 5000));
    pthread_join(s.thread, NULL);
    /* a thread left running would have detached by now */
    fk_wait(&fk.detached, 1, 500);
    assert_int_equal(s.gil_was_held, 0);
    assert_int_equal(s.rc, -1);
    assert_int_equal(fk.after_finalize, 0);
    assert_int_equal(fk.detached, 1);
    assert_non_null(strstr(last_warning, "has not stopped after 50 ms"));
    assert_int_equal(pp_sampler_running(), 0);
    pp_sampler_unregister(0);
    request_end(&r);
}

/* A sampler that stops in time: 0, joined, nothing logged. */
/* GIL blame's rule: a thread may be waiting for the GIL only while another
 * thread holds it and someone sleeps on it (or the sleepers cannot be
 * counted); from 3.15 a thread in Python waits exactly when its thread
 * state says so. */
static void test_gil_may_wait(void **state)
{
    pp_gil_state_t g;
    pp_walk_target_t t;
    (void)state;

    memset(&g, 0, sizeof(g));
    memset(&t, 0, sizeof(t));
    t.thread_ident = 100;
    t.native_tid = 10;
    assert_int_equal(pp_gil_may_wait(NULL, &t, 0), 0); /* no GIL read */
    g.locked = 1;
    g.holder_ident = 200;
    g.holder_tid = 20;
    g.waiters = 1;
    assert_int_equal(pp_gil_may_wait(&g, &t, 0), 1);
    g.waiters = -1; /* not counted: no veto */
    assert_int_equal(pp_gil_may_wait(&g, &t, 0), 1);
    g.waiters = 0; /* nobody sleeps on it: a futex is some lock... */
    t.found = 1;
    assert_int_equal(pp_gil_may_wait(&g, &t, 0), 0);
    t.found = 0; /* ...but no Python lock without a frame */
    assert_int_equal(pp_gil_may_wait(&g, &t, 0), 1);
    g.waiters = 2;
    g.locked = 0; /* free */
    assert_int_equal(pp_gil_may_wait(&g, &t, 0), 0);
    g.locked = 1;
    g.holder_ident = 100; /* the thread itself holds it */
    assert_int_equal(pp_gil_may_wait(&g, &t, 0), 0);
    g.holder_ident = 999;
    g.holder_tid = 10; /* the same thread by its kernel id */
    assert_int_equal(pp_gil_may_wait(&g, &t, 0), 0);
    g.holder_ident = 0; /* held by a thread state in no list: unknown */
    g.holder_tid = 0;
    assert_int_equal(pp_gil_may_wait(&g, &t, 0), 1);
    /* 3.15, a thread in Python: its own mark, whatever else */
    t.found = 1;
    g.holder_ident = 200;
    assert_int_equal(pp_gil_may_wait(&g, &t, 1), 0);
    t.gil_requested = 1;
    assert_int_equal(pp_gil_may_wait(&g, &t, 1), 1);
    /* ...but marked while the GIL is already its own (3.15 clears the
     * mark a moment after taking it): not waiting, never behind itself */
    g.holder_ident = 100;
    assert_int_equal(pp_gil_may_wait(&g, &t, 1), 0);
    t.found = 0;
    assert_int_equal(pp_gil_may_wait(&g, &t, 1), 0);
    t.found = 1;
    g.holder_ident = 200;
    /* 3.15, no frame and no mark (queued on mod_wsgi's interpreter lock
     * behind a thread that waits for the GIL): the rule before 3.15 */
    t.found = 0;
    t.gil_requested = 0;
    assert_int_equal(pp_gil_may_wait(&g, &t, 1), 1);
    g.locked = 0;
    assert_int_equal(pp_gil_may_wait(&g, &t, 1), 0);
}

static void test_stop_in_time(void **state)
{
    pp_store_t *st = *state;

    st->sampler_mode = PP_SAMPLER_GIL;
    assert_int_equal(pp_sampler_start(st), 0);
    assert_int_equal(pp_sampler_stop(5000), 0);
    assert_int_equal(fk.detached, 1);
    assert_int_equal(pp_sampler_running(), 0);
    assert_string_equal(last_warning, "");
    /* a second stop (the other stopper) is a no-op */
    assert_int_equal(pp_sampler_stop(5000), 0);
}

/* On CPU for at least half the interval; an unknown clock never is. */
static void test_on_cpu_is_half_the_interval_or_more(void **state)
{
    (void)state;
    assert_true(pp_sample_on_cpu(5000000, 10000000));
    assert_true(pp_sample_on_cpu(10000000, 10000000));
    assert_true(pp_sample_on_cpu(12000000, 10000000));
    assert_false(pp_sample_on_cpu(4999999, 10000000));
    assert_false(pp_sample_on_cpu(0, 10000000));
    assert_false(pp_sample_on_cpu(-1, 10000000));
}

/* A thread's state from its stat: the field after the last ')', whatever
 * the thread's name holds; anything cut short is unknown. */
static void test_stat_says_whether_a_thread_is_runnable(void **state)
{
    static const char r[] = "4242 (httpd) R 1 4242 4242 0 -1 4194560";
    static const char s_[] = "4242 (httpd) S 1 4242 4242 0 -1 4194560";
    static const char odd[] = "4242 (a) R (b)) S 1 4242";
    static const char cut[] = "4242 (httpd)";

    (void)state;
    assert_int_equal(pp_sample_stat_runnable(r, sizeof(r) - 1), 1);
    assert_int_equal(pp_sample_stat_runnable(s_, sizeof(s_) - 1), 0);
    assert_int_equal(pp_sample_stat_runnable(odd, sizeof(odd) - 1), 0);
    assert_int_equal(pp_sample_stat_runnable(cut, sizeof(cut) - 1), -1);
    assert_int_equal(pp_sample_stat_runnable("", 0), -1);
}

/* Blocked on a futex is the GIL (or a lock); "0", not blocked, is a thread
 * that can run, but only where the kernel names wait channels (without
 * kallsyms every one reads "0"); anything else, or nothing read, is sleep
 * or I/O. */
static void test_wait_channel_tells_gil_core_and_sleep_apart(void **state)
{
    (void)state;
    assert_int_equal(pp_sample_how_wchan("futex_wait_queue", 16, 1),
                     PP_SAMPLE_GIL_WAIT);
    assert_int_equal(pp_sample_how_wchan("futex_wait_queue_me", 19, 0),
                     PP_SAMPLE_GIL_WAIT);
    assert_int_equal(pp_sample_how_wchan("0", 1, 1), PP_SAMPLE_WAIT_CORE);
    assert_int_equal(pp_sample_how_wchan("0", 1, 0), PP_SAMPLE_OFF_CPU);
    assert_int_equal(pp_sample_how_wchan("do_nanosleep", 12, 1),
                     PP_SAMPLE_OFF_CPU);
    assert_int_equal(pp_sample_how_wchan("do_epoll_wait", 13, 1),
                     PP_SAMPLE_OFF_CPU);
    assert_int_equal(pp_sample_how_wchan("futex_wait_queue", 3, 1),
                     PP_SAMPLE_OFF_CPU); /* "fut": a short read says nothing */
    assert_int_equal(pp_sample_how_wchan("", 0, 1), PP_SAMPLE_OFF_CPU);
    assert_int_equal(pp_sample_how_wchan("", -1, 1), PP_SAMPLE_OFF_CPU);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_on_cpu_is_half_the_interval_or_more),
        cmocka_unit_test(test_wait_channel_tells_gil_core_and_sleep_apart),
        cmocka_unit_test(test_stat_says_whether_a_thread_is_runnable),
        cmocka_unit_test(test_gil_may_wait),
        cmocka_unit_test_setup_teardown(test_wchan_not_read_after_unregister,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_register_unregister_race_sampler,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_in_time, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_stop_waits_until_sampler_left_python, setup, teardown),
    };

    return cmocka_run_group_tests_name("pp_sampler", tests, NULL, NULL);
}
