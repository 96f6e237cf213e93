/* pp_store_token.c: the slot write token, the one wait in the store.
 *
 * Writers of one slot may be several threads of two processes (the
 * request thread and the sampler thread of the Apache child that claimed
 * it, and those of the mod_wsgi daemon that runs the app and samples it).
 * Before writing a slot's record each takes the slot's token: a
 * compare-and-swap of its thread id into the slot, held for a record's
 * worth of stores.  A writer that finds the token taken spins briefly,
 * then yields in a bounded wait; a token left by a thread that no longer
 * exists is taken over, so nothing can wedge on it.  Called by every
 * writer of a slot: request threads (claim, notes, segments, finish) and
 * sampler threads (samples), in the Apache children and the daemons; never
 * by readers, which only follow the record's sequence counter.  Never
 * allocates, never touches Python or httpd.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pp_store_int.h"
#include "pp_time.h"

/* A holder keeps the token for a record's worth of stores (well under a
 * microsecond for a sample, a few for a claim's memset): spin that long,
 * then queue (one place) and yield: until TOKEN_WAIT_US have passed with
 * no write to the record while the holder is stopped (a debugger), or
 * TOKEN_WAIT_MAX_US in all (a holder preempted on a busy machine is
 * waited for), and only then give the write up (counted by the caller).
 * A newcomer lets the queued writer go first for TOKEN_DEFER rounds, not
 * for ever: a queued writer that was stopped must not stop the others. */
#define TOKEN_SPINS 512
#define TOKEN_DEFER (TOKEN_SPINS + 256)
#define TOKEN_WAIT_US 10000      /* on a stopped holder that wrote nothing */
#define TOKEN_WAIT_MAX_US 200000 /* in any case */

/* This thread's ids, cached: getpid() and gettid() are system calls, and
 * a token's value must differ between the threads of one process (the
 * request thread and the sampler share a pid).  A fork forgets them: the
 * child's one thread has new ids. */
static __thread int32_t tls_tid, tls_pid;
static pthread_once_t ids_once = PTHREAD_ONCE_INIT;

static void ids_forget(void)
{
    tls_tid = 0;
    tls_pid = 0;
}

static void ids_register(void)
{
    pthread_atfork(NULL, NULL, ids_forget);
}

static int32_t self_tid(void)
{
    if (!tls_tid) {
        pthread_once(&ids_once, ids_register);
        tls_pid = (int32_t)getpid();
        tls_tid = (int32_t)syscall(SYS_gettid);
    }
    return tls_tid;
}

static int32_t self_pid(void)
{
    self_tid();
    return tls_pid;
}

static int thread_gone(int32_t tid)
{
    return tid > 0 && kill(tid, 0) == -1 && errno == ESRCH;
}

/* Is thread tid stopped (SIGSTOP, a tracer)?  From /proc/TID/stat; a
 * thread this process may not look at counts as running. */
static int thread_stopped(int32_t tid)
{
    char path[48], buf[256];
    const char *p;
    ssize_t n;
    int fd;

    if (tid <= 0) {
        return 0;
    }
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)tid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    p = strrchr(buf, ')');
    return p && p[1] == ' ' && (p[2] == 'T' || p[2] == 't');
}

static void leave_line(pp_slot_t *slot, int32_t me)
{
    atomic_compare_exchange_strong(&slot->waiter, &me, 0);
}

/* Take the slot's token, waiting (bounded) for a live holder and taking it
 * over from a thread that no longer exists.  0 only after the wait, or on
 * a nested take by the holder itself (a bug: never wait on ourselves). */
int pp_slot_token_take(pp_slot_t *slot)
{
    int32_t me = self_tid(), cur, w;
    uint32_t spins, seen = 0;
    int64_t deadline = 0, give_up = 0;
    int queued = 0;

    for (spins = 0;; spins++) {
        w = atomic_load_explicit(&slot->waiter, memory_order_relaxed);
        /* a writer that has waited longer goes first, for a while */
        if (w == 0 || w == me || spins >= TOKEN_DEFER) {
            cur = 0;
            if (atomic_compare_exchange_weak_explicit(&slot->token, &cur, me,
                                                      memory_order_acquire,
                                                      memory_order_relaxed)) {
                if (queued) {
                    leave_line(slot, me);
                }
                return 1;
            }
        }
        else {
            cur = atomic_load_explicit(&slot->token, memory_order_relaxed);
        }
        if (cur == me) {
            return 0;
        }
        if (spins < TOKEN_SPINS) {
            continue;
        }
        if (!queued) {
            int32_t none = 0;
            queued = atomic_compare_exchange_strong(&slot->waiter, &none, me);
        }
        if ((spins - TOKEN_SPINS) % 64 == 0) {
            int64_t now = pp_mono_us();
            /* the holder died mid-write: take the token over */
            if (thread_gone(cur) &&
                atomic_compare_exchange_strong(&slot->token, &cur, me)) {
                if (queued) {
                    leave_line(slot, me);
                }
                return 1;
            }
            if (w != me && thread_gone(w)) {
                atomic_compare_exchange_strong(&slot->waiter, &w, 0);
            }
            if (!deadline) {
                deadline = now + TOKEN_WAIT_US;
                give_up = now + TOKEN_WAIT_MAX_US;
                seen = atomic_load(&slot->rec.seq);
            }
            else if (now > deadline) {
                /* Given up early only for a holder that is stopped (a
                 * debugger, SIGSTOP) and has not written since: one that
                 * was merely preempted on a busy machine, or a record in
                 * use, is waited for up to the hard limit. */
                uint32_t seq = atomic_load(&slot->rec.seq);
                if ((seq == seen && thread_stopped(cur)) || now > give_up) {
                    if (queued) {
                        leave_line(slot, me);
                    }
                    return 0;
                }
                seen = seq;
                deadline = now + TOKEN_WAIT_US;
            }
        }
        sched_yield();
    }
}

/* pp_slot_token_take for a write that is lost if the token cannot be had. */
int pp_slot_token_take_counted(pp_store_t *st, pp_slot_t *slot)
{
    if (pp_slot_token_take(slot)) {
        return 1;
    }
    atomic_fetch_add_explicit(&st->c.writes_dropped, 1, memory_order_relaxed);
    return 0;
}


/* The token of slot idx for a write on behalf of request `serial` by this
 * process; NULL (and not taken) if the slot moved on or belongs to another
 * sampler. */
pp_slot_t *pp_slot_token_take_for(pp_store_t *st, int idx, uint64_t serial,
                                  int sampling)
{
    pp_slot_t *slot = pp_store_slot_at(st, idx);
    int32_t owner;

    if (!slot || PP_SLOT_PHASE(atomic_load(&slot->state)) != PP_SLOT_ACTIVE ||
        !pp_slot_token_take_counted(st, slot)) {
        return NULL;
    }
    owner = atomic_load(&slot->sampler_pid);
    if (slot->rec.req.serial != serial ||
        PP_SLOT_PHASE(atomic_load(&slot->state)) != PP_SLOT_ACTIVE ||
        owner < 0 || (sampling && owner > 0 && owner != self_pid())) {
        pp_slot_token_release(slot);
        return NULL;
    }
    return slot;
}
