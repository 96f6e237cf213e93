/* pp_py_guard.c: guarded copies, the GIL-free reader's plain memcpy() from
 * our own address space, made safe against a page that went away meanwhile
 * by a SIGSEGV/SIGBUS handler.  The copies are the sampler thread's; the
 * handler is process-wide.
 *
 * The threads the sampler reads run on while it copies: a data-stack
 * chunk, a code object or a str it follows may be freed, and its page
 * unmapped, between the moment the pointer was read and the copy.
 * process_vm_readv() on our own pid fails cleanly there, but it is a
 * system call (and a pinning of pages) per copy, most of what a sample
 * costs.  A guarded copy is a memcpy() after a sigsetjmp(): a fault inside
 * it reaches our handler, which sees that the faulting thread is the one
 * whose copy is under way and siglongjmp()s back, and the copy returns -1
 * as a failed process_vm_readv() did (the walk takes it for a torn chain).
 * The signal stays blocked after a jump out of its handler; it is
 * unblocked then, on that rare path only (a blocked SIGSEGV that recurs
 * is fatal whatever the handler).
 *
 * Every other fault (another thread's, or the sampler's outside a copy)
 * goes where it would have gone without us: to the handler installed
 * before ours (httpd's sig_coredump in a child), called the way it asked
 * to be (SA_SIGINFO or not, its mask, SA_RESETHAND, SA_NODEFER); with no
 * handler before ours, the default action is put back and the handler
 * returns, so the faulting instruction runs again and the process dies,
 * or dumps core, as it would have.
 *
 * The guard's state is plain globals: only the sampler copies, and a
 * thread-local in a dlopen()ed module may go through __tls_get_addr(),
 * which is not async-signal-safe on first touch.  The handler tells the
 * copying thread from the others by kernel thread id (a system call, but
 * only on a fault).
 *
 * Whoever installs a handler after ours (faulthandler.enable(), another
 * module, a C extension) takes the faults from then on; the walk asks
 * pp_py_guard_intact() once a tick and copies with process_vm_readv()
 * from then on (pp_py_read.c).  Builds with AddressSanitizer or
 * ThreadSanitizer have no guard: the sanitizer owns SIGSEGV, and ASan
 * would report the reads of freed memory a guarded copy may make.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pp_py.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PP_GUARD_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define PP_GUARD_SANITIZED 1
#endif
#endif

static const int guarded_signals[2] = {SIGSEGV, SIGBUS};
static struct sigaction prev_action[2]; /* before ours, by guarded_signals */
static int have_prev[2];                /* prev_action[i] is filled */
static sigjmp_buf guard_jb;
static volatile sig_atomic_t guard_on;  /* a guarded copy is under way */
static volatile sig_atomic_t guard_sig; /* the signal of the last recovery */
static volatile pid_t guard_tid;        /* the copying thread */
static volatile uint64_t guard_faults;  /* written by the handler only */

static int signal_index(int sig)
{
    return sig == SIGBUS ? 1 : 0;
}

/* A fault that is not ours, where it would have gone without us. */
static void chain(int sig, siginfo_t *info, void *ctx)
{
    const struct sigaction *prev = &prev_action[signal_index(sig)];
    struct sigaction dfl;
    sigset_t mask, old;

    if (!(prev->sa_flags & SA_SIGINFO) &&
        (prev->sa_handler == SIG_DFL || prev->sa_handler == SIG_IGN)) {
        /* sent with kill() and ignored: ignored still */
        if (prev->sa_handler == SIG_IGN && info && info->si_code <= 0) {
            return;
        }
        memset(&dfl, 0, sizeof(dfl));
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        sigaction(sig, &dfl, NULL);
        /* a fault repeats when we return; a signal sent by kill() does
         * not, so it is sent again (blocked here, it arrives on return) */
        if (!info || info->si_code <= 0) {
            raise(sig);
        }
        return;
    }
    if (prev->sa_flags & SA_RESETHAND) {
        memset(&dfl, 0, sizeof(dfl));
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        sigaction(sig, &dfl, NULL);
    }
    /* the mask it would have run with; the kernel restores ours when the
     * handler returns */
    mask = prev->sa_mask;
    if (prev->sa_flags & SA_NODEFER) {
        sigdelset(&mask, sig);
    }
    else {
        sigaddset(&mask, sig);
    }
    pthread_sigmask(SIG_SETMASK, &mask, &old);
    if (prev->sa_flags & SA_SIGINFO) {
        prev->sa_sigaction(sig, info, ctx);
    }
    else {
        prev->sa_handler(sig);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void on_fault(int sig, siginfo_t *info, void *ctx)
{
    int saved = errno;

    /* ours: raised by the kernel (a fault), or by this process for this
     * thread (a handler installed over ours that passes the fault on with
     * raise(), as faulthandler does), while this thread copies */
    if (guard_on && info &&
        (info->si_code > 0 ||
         (info->si_code == SI_TKILL && info->si_pid == getpid())) &&
        (pid_t)syscall(SYS_gettid) == guard_tid) {
        guard_on = 0;
        guard_sig = sig;
        guard_faults = guard_faults + 1;
        siglongjmp(guard_jb, 1);
    }
    chain(sig, info, ctx);
    errno = saved;
}

static int is_ours(const struct sigaction *sa)
{
    return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == on_fault;
}

/* After a jump out of the handler: its signal is still blocked. */
static void recovered(void)
{
    sigset_t s;

    sigemptyset(&s);
    sigaddset(&s, guard_sig);
    pthread_sigmask(SIG_UNBLOCK, &s, NULL);
}

int pp_py_guard_install(const char **why)
{
#ifdef PP_GUARD_SANITIZED
    *why = "built with a sanitizer, which owns SIGSEGV";
    return -1;
#else
    struct sigaction sa, cur;
    sigset_t faults;
    int i;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_fault;
    /* SA_ONSTACK: a thread that overflowed its stack into an alternate
     * one (as a previous handler may have arranged) still reaches it */
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    guard_tid = (pid_t)syscall(SYS_gettid);
    guard_on = 0;
    for (i = 0; i < 2; i++) {
        const int sig = guarded_signals[i];

        if (sigaction(sig, NULL, &cur) != 0) {
            *why = "sigaction failed";
            return -1;
        }
        if (is_ours(&cur)) {
            continue; /* still installed from an earlier start */
        }
        /* the previous action is known before ours can run */
        prev_action[i] = cur;
        have_prev[i] = 1;
        if (sigaction(sig, &sa, &cur) != 0) {
            *why = "sigaction failed";
            return -1;
        }
        if (!is_ours(&cur)) {
            prev_action[i] = cur; /* replaced meanwhile */
        }
    }
    /* the sampler thread starts with every signal blocked, and the kernel
     * kills the process outright for a fault whose signal is blocked */
    sigemptyset(&faults);
    sigaddset(&faults, SIGSEGV);
    sigaddset(&faults, SIGBUS);
    pthread_sigmask(SIG_UNBLOCK, &faults, NULL);
    *why = NULL;
    return 0;
#endif
}

int pp_py_guard_intact(int which)
{
    struct sigaction cur;

    return sigaction(guarded_signals[which & 1], NULL, &cur) == 0 &&
           is_ours(&cur);
}

void pp_py_guard_remove(void)
{
    struct sigaction cur;
    int i;

    for (i = 0; i < 2; i++) {
        if (have_prev[i] && sigaction(guarded_signals[i], NULL, &cur) == 0 &&
            is_ours(&cur)) {
            sigaction(guarded_signals[i], &prev_action[i], NULL);
            have_prev[i] = 0;
        }
    }
}

uint64_t pp_py_guard_faults(void)
{
    return guard_faults;
}

/* sigsetjmp() without the mask (no system call); the guard flag is set
 * only once the jump buffer is, and cleared before anything else runs.
 * The fences keep the compiler from moving the copy out from between
 * them. */
int pp_py_guard_copy(void *dst, const void *src, size_t n)
{
    if (sigsetjmp(guard_jb, 0) != 0) {
        recovered();
        return -1;
    }
    guard_on = 1;
    atomic_signal_fence(memory_order_seq_cst);
    memcpy(dst, src, n);
    atomic_signal_fence(memory_order_seq_cst);
    guard_on = 0;
    return 0;
}

int pp_py_guard_copyv(void *const *dst, const void *const *src,
                      const size_t *len, size_t n)
{
    size_t i;

    if (sigsetjmp(guard_jb, 0) != 0) {
        recovered();
        return -1;
    }
    guard_on = 1;
    atomic_signal_fence(memory_order_seq_cst);
    for (i = 0; i < n; i++) {
        memcpy(dst[i], src[i], len[i]);
    }
    atomic_signal_fence(memory_order_seq_cst);
    guard_on = 0;
    return 0;
}
