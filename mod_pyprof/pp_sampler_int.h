/* pp_sampler_int.h: what the sampler's files share and nothing else may
 * use: the registry's entries, the sampler's state (one per process,
 * pp_sampler.c's), and the calls of one tick that live apart:
 *
 *   pp_sampler.c           the registry (request threads) and the sampler
 *                          thread: its loop, one tick's walk and store,
 *                          start, stop, fork;
 *   pp_sampler_classify.c  how each sample's interval was spent (CPU
 *                          clock, wait channel, state);
 *   pp_sampler_gil.c       GIL blame: who may wait for a GIL, who holds
 *                          it, and the frames a wait shows as.
 *
 * The state's mutex (mu) is private to the process, never held while
 * waiting for the GIL, and the only thing request threads ever wait on.
 * Functions named *_locked run on the sampler thread with mu held; the
 * rest of a tick's state (targets, refs, blame) is the sampler thread's
 * alone.  No Python header: all Python access goes through pp_frames.h.
 */
#ifndef PP_SAMPLER_INT_H
#define PP_SAMPLER_INT_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "pp_frames.h"
#include "pp_sampler.h"
#include "pp_store.h"

#define PP_SAMPLER_LOCAL_MAX 512 /* requests one process can serve at once */
/* Stack memos (pp_stack_memo_t), one per request slot modulo this: the
 * requests of one process at once rarely share one. */
#define PP_SAMPLER_MEMO_SLOTS 256

typedef struct pp_sampler_entry {
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
     * not moved (see pp_sampler_classify_locked). */
    int known_how;
    int64_t known_cpu_ns;
} pp_sampler_entry_t;

/* What the sampler learns about one due request during a tick.  Only the
 * request's identity is kept across the unlocked walk: the thread's CPU
 * clock and wait-channel descriptor are read from its registry entry,
 * under the registry lock, once the walk is done (see
 * pp_sampler_classify_locked). */
typedef struct pp_sampler_ref {
    int slot;
    uint64_t serial;
    int64_t cpu_ns; /* thread CPU clock at the sample, -1 unknown */
    int64_t at_ns;  /* monotonic time of the sample */
    int64_t interval_ns;
    int how; /* PP_SAMPLE_* */
} pp_sampler_ref_t;

/* Who holds one GIL in this tick, as the samples that wait for it are
 * charged (pp_sampler_gil_blame_prepare_locked), with the frames the
 * waits show as: one at the leaf of a stack in Python, one alone for a
 * thread not in Python yet.  Kept across ticks while the GIL has not changed
 * hands (switch_number), so that a holder that runs on is walked at most once
 * an interval. */
typedef struct pp_sampler_blame {
    int ready; /* prepared in this tick */
    const void *gil, *holder_ts;
    uint64_t switch_number;
    int64_t walked_ns; /* when the holder's frame was read; 0 never */
    uint32_t holder_frame;
    pp_gil_holder_t holder;
    uint32_t wait_frame, enter_frame;
} pp_sampler_blame_t;

typedef struct pp_sampler_state {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int cv_ready;
    pp_sampler_entry_t entries[PP_SAMPLER_LOCAL_MAX];
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
    pp_sampler_blame_t blame[PP_GILS_MAX];
    pp_walk_target_t *holder_walk; /* scratch target for a holder */
    /* sampler-thread private */
    pp_walk_target_t *targets;
    pp_sampler_ref_t refs[PP_SAMPLER_LOCAL_MAX];
    pp_stack_memo_t *memos; /* PP_SAMPLER_MEMO_SLOTS; NULL: interned without */
} pp_sampler_state_t;

/* A clock's time in ns, -1 if it cannot be read. */
static inline int64_t pp_sampler_clock_ns(clockid_t c)
{
    struct timespec ts;
    if (clock_gettime(c, &ts) != 0) {
        return -1;
    }
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The registry entry of a request still registered, or NULL (mu held). */
static inline pp_sampler_entry_t *
pp_sampler_find_entry(pp_sampler_state_t *s, int slot, uint64_t serial)
{
    int i;
    for (i = 0; i < s->n; i++) {
        if (s->entries[i].slot == slot && s->entries[i].serial == serial) {
            return &s->entries[i];
        }
    }
    return NULL;
}

/* pp_sampler_classify.c: how each of the tick's n samples was spent,
 * into s->refs[i].how; returns its own wall time (ns). */
int64_t pp_sampler_classify_locked(pp_sampler_state_t *s, pp_store_t *st,
                                   int n);

/* pp_sampler_gil.c: who holds each GIL a sample of this tick waits for,
 * into s->blame; drops mu while it walks a holder. */
void pp_sampler_gil_blame_prepare_locked(pp_sampler_state_t *s, pp_store_t *st,
                                         int n);

#endif
