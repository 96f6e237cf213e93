/* test_pyguard.c: guarded copies (pp_py_guard.c), the GIL-free reader's
 * memcpy() whose faults on a page that went away are caught.
 *
 * A copy from a PROT_NONE page, from an unmapped one, from a file mapping
 * past the file's end (SIGBUS), and one that runs off the end of a mapping
 * returns -1 instead of killing the test, and counts the fault; a second
 * fault after a recovered one is recovered too (the signal is unblocked
 * again); good copies copy.  Faults that are not a guarded copy's go where
 * they went before the guard was installed, checked in forked children: a
 * previous SA_SIGINFO handler gets the fault (and its address), a previous
 * plain handler too, a previous SIG_DFL still kills with SIGSEGV, and so
 * does a fault in another thread.  A handler installed over ours that
 * passes the fault on with raise() (faulthandler does) leaves the guard
 * working; pp_py_guard_intact() tells when ours is no longer installed,
 * and pp_py_guard_remove() puts the previous handler back only if ours is.
 *
 * Under valgrind (make check-valgrind) memcheck reports every deliberate
 * read of an unmapped page as an error, so the tests that fault on purpose
 * are skipped there; the module is never run under memcheck (callgrind,
 * which the benchmarks use, does not check reads).
 */
#include "unit.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "pp_py.h"

static size_t page;

static int under_valgrind(void)
{
    return getenv("PP_UNIT_UNDER_VALGRIND") != NULL;
}

#define SKIP_UNDER_VALGRIND()                                             \
    do {                                                                  \
        if (under_valgrind()) {                                           \
            print_message("skipped under valgrind: faults on purpose\n"); \
            return;                                                       \
        }                                                                 \
    } while (0)

static void install(void)
{
    const char *why = "unset";

    assert_int_equal(pp_py_guard_install(&why), 0);
    assert_null(why);
}

static int segv_blocked(void)
{
    sigset_t now;

    pthread_sigmask(SIG_BLOCK, NULL, &now);
    return sigismember(&now, SIGSEGV) || sigismember(&now, SIGBUS);
}

/* Two pages: the first readable, filled with a pattern; the second as
 * `second` says (PROT_NONE, or unmapped). */
static char *two_pages(int unmap_second)
{
    char *p = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    size_t i;

    assert_true(p != MAP_FAILED);
    for (i = 0; i < page; i++) {
        p[i] = (char)(i * 7 + 1);
    }
    if (unmap_second) {
        assert_int_equal(munmap(p + page, page), 0);
    }
    else {
        assert_int_equal(mprotect(p + page, page, PROT_NONE), 0);
    }
    return p;
}

static void release(char *p)
{
    munmap(p, 2 * page);
}

/* ---- copies ---- */

static void test_good_copies_copy(void **state)
{
    char src[300], dst[300], a[16], b[40];
    void *dsts[2] = {a, b};
    const void *srcs[2];
    size_t lens[2] = {sizeof(a), sizeof(b)};
    uint64_t faults = pp_py_guard_faults();
    size_t i;

    (void)state;
    install();
    for (i = 0; i < sizeof(src); i++) {
        src[i] = (char)(i ^ 0x5a);
    }
    memset(dst, 0, sizeof(dst));
    assert_int_equal(pp_py_guard_copy(dst, src, sizeof(src)), 0);
    assert_memory_equal(dst, src, sizeof(src));
    srcs[0] = src + 3;
    srcs[1] = src + 100;
    assert_int_equal(pp_py_guard_copyv(dsts, srcs, lens, 2), 0);
    assert_memory_equal(a, src + 3, sizeof(a));
    assert_memory_equal(b, src + 100, sizeof(b));
    assert_int_equal(pp_py_guard_copyv(dsts, srcs, lens, 0), 0);
    assert_int_equal(pp_py_guard_faults(), faults);
    pp_py_guard_remove();
}

static void test_protnone_and_unmapped_pages_fail_cleanly(void **state)
{
    int unmap;

    (void)state;
    SKIP_UNDER_VALGRIND();
    install();
    for (unmap = 0; unmap < 2; unmap++) {
        char *p = two_pages(unmap);
        char dst[64];
        uint64_t faults = pp_py_guard_faults();

        /* wholly in the bad page */
        assert_int_equal(pp_py_guard_copy(dst, p + page + 8, 16), -1);
        assert_int_equal(pp_py_guard_faults(), faults + 1);
        assert_false(segv_blocked());
        /* and again: the signal was unblocked after the first */
        assert_int_equal(pp_py_guard_copy(dst, p + page, 1), -1);
        assert_int_equal(pp_py_guard_faults(), faults + 2);
        assert_false(segv_blocked());
        /* the good page still reads */
        assert_int_equal(
            pp_py_guard_copy(dst, p + page - sizeof(dst), sizeof(dst)), 0);
        assert_memory_equal(dst, p + page - sizeof(dst), sizeof(dst));
        release(p);
    }
    pp_py_guard_remove();
}

static void test_copy_running_off_a_mapping_fails(void **state)
{
    char *p;
    static char dst[8192];
    void *dsts[3];
    const void *srcs[3];
    size_t lens[3];
    uint64_t faults;
    int i;

    (void)state;
    SKIP_UNDER_VALGRIND();
    install();
    p = two_pages(1);
    faults = pp_py_guard_faults();
    /* starts 16 bytes before the end of the mapping */
    assert_int_equal(pp_py_guard_copy(dst, p + page - 16, 64), -1);
    /* a batch whose last piece runs off: the whole batch fails */
    dsts[0] = dst;
    srcs[0] = p;
    lens[0] = 32;
    dsts[1] = dst + 32;
    srcs[1] = p + 64;
    lens[1] = 32;
    dsts[2] = dst + 64;
    srcs[2] = p + page - 8;
    lens[2] = 4096;
    assert_int_equal(pp_py_guard_copyv(dsts, srcs, lens, 3), -1);
    assert_int_equal(pp_py_guard_faults(), faults + 2);
    /* many in a row: each one recovered */
    for (i = 0; i < 100; i++) {
        assert_int_equal(pp_py_guard_copy(dst, p + page - 1, 2), -1);
    }
    assert_int_equal(pp_py_guard_faults(), faults + 102);
    lens[2] = 8;
    assert_int_equal(pp_py_guard_copyv(dsts, srcs, lens, 3), 0);
    assert_memory_equal(dst + 64, p + page - 8, 8);
    munmap(p, page);
    pp_py_guard_remove();
}

/* A file mapping past the end of its file: SIGBUS, not SIGSEGV. */
static void test_sigbus_fails_cleanly(void **state)
{
    char path[] = "/tmp/pp_guard_XXXXXX";
    char dst[16];
    int fd;
    char *p;
    uint64_t faults;

    (void)state;
    SKIP_UNDER_VALGRIND();
    install();
    fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(ftruncate(fd, (off_t)page), 0);
    p = mmap(NULL, page, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(p != MAP_FAILED);
    assert_int_equal(ftruncate(fd, 0), 0); /* the page is gone */
    faults = pp_py_guard_faults();
    assert_int_equal(pp_py_guard_copy(dst, p, sizeof(dst)), -1);
    assert_int_equal(pp_py_guard_copy(dst, p + 100, sizeof(dst)), -1);
    assert_int_equal(pp_py_guard_faults(), faults + 2);
    assert_false(segv_blocked());
    munmap(p, page);
    close(fd);
    pp_py_guard_remove();
}

/* ---- faults that are not ours, in forked children ---- */

static char *bad_page;

static void fault_now(void)
{
    /* a read the compiler must make */
    (void)*(volatile char *)bad_page;
}

static void on_segv_info(int sig, siginfo_t *info, void *ctx)
{
    (void)ctx;
    _exit(sig == SIGSEGV && info && info->si_addr == bad_page ? 42 : 43);
}

static void on_segv_plain(int sig)
{
    _exit(sig == SIGSEGV ? 44 : 45);
}

static void *fault_thread(void *arg)
{
    (void)arg;
    fault_now();
    return NULL;
}

enum { PREV_SIGINFO, PREV_PLAIN, PREV_DFL, PREV_SIGINFO_THREAD };

/* The child's status after a fault outside any guarded copy, with `prev`
 * installed before the guard. bad_page, what the guarded copy and the fault
 * read, is the PROT_NONE second of two fresh pages. */
static int fault_in_child(int prev)
{
    char *p = two_pages(0);
    pid_t pid;
    int status = 0;

    bad_page = p + page;
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        struct sigaction sa;
        const char *why;
        char ok[8], dst[8];
        pthread_t th;

        setrlimit(RLIMIT_CORE, &no_core);
        memset(&sa, 0, sizeof(sa));
        sigemptyset(&sa.sa_mask);
        if (prev == PREV_SIGINFO || prev == PREV_SIGINFO_THREAD) {
            sa.sa_sigaction = on_segv_info;
            sa.sa_flags = SA_SIGINFO;
        }
        else if (prev == PREV_PLAIN) {
            sa.sa_handler = on_segv_plain;
        }
        else {
            sa.sa_handler = SIG_DFL;
        }
        sigaction(SIGSEGV, &sa, NULL);
        if (pp_py_guard_install(&why) != 0) {
            _exit(50);
        }
        /* a guarded copy, good and bad, first: the guard is live */
        memset(ok, 1, sizeof(ok));
        if (pp_py_guard_copy(dst, ok, sizeof(ok)) != 0 ||
            pp_py_guard_copy(dst, bad_page, sizeof(dst)) != -1) {
            _exit(51);
        }
        if (prev == PREV_SIGINFO_THREAD) {
            pthread_create(&th, NULL, fault_thread, NULL);
            pthread_join(th, NULL);
        }
        else {
            fault_now();
        }
        _exit(52); /* survived a fault outside the guard */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    release(p);
    return status;
}

static void test_fault_outside_reaches_previous_handler(void **state)
{
    int status;

    (void)state;
    SKIP_UNDER_VALGRIND();
    status = fault_in_child(PREV_SIGINFO);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 42);
    status = fault_in_child(PREV_PLAIN);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 44);
    /* another thread's fault, even with the guard's thread alive */
    status = fault_in_child(PREV_SIGINFO_THREAD);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 42);
}

static void test_fault_outside_with_default_still_kills(void **state)
{
    int status;

    (void)state;
    SKIP_UNDER_VALGRIND();
    status = fault_in_child(PREV_DFL);
    if (!WIFSIGNALED(status)) {
        fail_msg("child was not killed by a signal: %s %d",
                 WIFEXITED(status) ? "exit" : "status",
                 WIFEXITED(status) ? WEXITSTATUS(status) : status);
    }
    assert_int_equal(WTERMSIG(status), SIGSEGV);
}

/* ---- somebody else's handler over ours ---- */

static struct sigaction under_ours;
static volatile int passed_on;

/* what faulthandler does: report, put back the handler it replaced,
 * raise() the signal again (SA_NODEFER: it arrives at once) */
static void passing_handler(int sig, siginfo_t *info, void *ctx)
{
    (void)info;
    (void)ctx;
    passed_on++;
    sigaction(sig, &under_ours, NULL);
    raise(sig);
}

/* the same disposition (cmocka installs handlers of its own in tests) */
static int same_action(const struct sigaction *a, const struct sigaction *b)
{
    if ((a->sa_flags & SA_SIGINFO) != (b->sa_flags & SA_SIGINFO)) {
        return 0;
    }
    return (a->sa_flags & SA_SIGINFO) ? a->sa_sigaction == b->sa_sigaction
                                      : a->sa_handler == b->sa_handler;
}

static void test_handler_over_ours_is_noticed(void **state)
{
    struct sigaction sa, cur, before_segv, before_bus;
    char *p, dst[8];

    (void)state;
    sigaction(SIGSEGV, NULL, &before_segv);
    sigaction(SIGBUS, NULL, &before_bus);
    install();
    assert_true(pp_py_guard_intact(0));
    assert_true(pp_py_guard_intact(1));
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_sigaction = passing_handler;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, &under_ours);
    assert_false(pp_py_guard_intact(0));
    assert_true(pp_py_guard_intact(1));
    if (!under_valgrind()) {
        /* a fault in a guarded copy meanwhile is still recovered */
        p = two_pages(0);
        passed_on = 0;
        assert_int_equal(pp_py_guard_copy(dst, p + page, sizeof(dst)), -1);
        assert_int_equal(passed_on, 1);
        assert_false(segv_blocked());
        assert_true(pp_py_guard_intact(0)); /* it put ours back */
        release(p);
        sigaction(SIGSEGV, &sa, NULL);
    }
    /* not ours installed: remove leaves it */
    pp_py_guard_remove();
    sigaction(SIGSEGV, NULL, &cur);
    assert_true(cur.sa_sigaction == passing_handler);
    /* SIGBUS was ours: back to what it was */
    sigaction(SIGBUS, NULL, &cur);
    assert_false(pp_py_guard_intact(1));
    assert_true(same_action(&cur, &before_bus));
    sigaction(SIGSEGV, &under_ours, NULL); /* ours again, then removed */
    pp_py_guard_remove();
    sigaction(SIGSEGV, NULL, &cur);
    assert_false(pp_py_guard_intact(0));
    assert_true(same_action(&cur, &before_segv));
}

/* Installed twice (a sampler started again): the handler before ours is
 * still the one a removal puts back, never ours. */
static void test_install_twice_keeps_the_first_previous(void **state)
{
    struct sigaction cur, before;

    (void)state;
    sigaction(SIGSEGV, NULL, &before);
    install();
    install();
    pp_py_guard_remove();
    sigaction(SIGSEGV, NULL, &cur);
    assert_false(pp_py_guard_intact(0));
    assert_true(same_action(&cur, &before));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_copies_copy),
        cmocka_unit_test(test_protnone_and_unmapped_pages_fail_cleanly),
        cmocka_unit_test(test_copy_running_off_a_mapping_fails),
        cmocka_unit_test(test_sigbus_fails_cleanly),
        cmocka_unit_test(test_fault_outside_reaches_previous_handler),
        cmocka_unit_test(test_fault_outside_with_default_still_kills),
        cmocka_unit_test(test_handler_over_ours_is_noticed),
        cmocka_unit_test(test_install_twice_keeps_the_first_previous),
    };

    page = (size_t)sysconf(_SC_PAGESIZE);
    return cmocka_run_group_tests_name("pp_py_guard", tests, NULL, NULL);
}
