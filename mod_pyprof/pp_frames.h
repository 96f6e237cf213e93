/* pp_frames.h: the only interface to CPython's internals.
 *
 * Everything version-specific about reading Python stacks lives behind this
 * header, in the Python layer (pp_py.h: pp_py_walk.c and the reader files
 * beside it, pp_py_layout.c, and the runtime file of the version built
 * for, pp_py_rt311.c or pp_py_rt.c).  The sampler calls pp_py_* from its
 * own thread only; nothing here is ever called from an Apache hook but
 * pp_py_initialized (child_init).
 */
#ifndef PP_FRAMES_H
#define PP_FRAMES_H

#include <stdint.h>
#include <sys/types.h>

#include "pp_store.h"

typedef struct pp_walk_target {
    unsigned long thread_ident; /* pthread_self() of the request thread */
    pid_t native_tid;
    uint32_t max_depth;
    void *interp;  /* out: the interpreter the thread was found in */
    int found;     /* a thread state with a current frame was found */
    int torn;      /* GIL-free: it kept changing while read; dropped */
    int truncated; /* deeper than max_depth: the root side was cut */
    uint32_t depth;
    uint32_t frames[PP_DEPTH_LIMIT]; /* interned frame ids, leaf first */
    /* GIL blame (pp_py_gil_blame_init succeeded), out: */
    int gil;           /* index in the tick's GILs of the one it would
                        * wait for; -1: unknown */
    int gil_requested; /* 3.15: a thread state of it waits for the GIL */
} pp_walk_target_t;

/* One GIL as the last GIL-free walk read it (pp_py_walk_nogil), under the
 * runtime's HEAD_LOCK, between the thread lists it walked. */
#define PP_GILS_MAX 4
typedef struct pp_gil_state {
    const void *gil;       /* its address */
    int locked;            /* 1: held */
    const void *holder_ts; /* the holding thread state when locked */
    uint64_t switch_number;
    int waiters; /* threads asleep on its condition variable, -1 unknown */
    /* the holder's thread, found in a thread list: 0 when it was in none */
    unsigned long holder_ident;
    pid_t holder_tid;
    void *holder_interp;
} pp_gil_state_t;

typedef struct pp_gil_tick {
    int n;
    pp_gil_state_t gils[PP_GILS_MAX];
} pp_gil_tick_t;

/* Is there a running interpreter a sampler could attach to? */
int pp_py_initialized(void);

/* Create (once, on the calling thread) the sampler's own thread state in
 * the main interpreter.  0 on success. */
int pp_py_attach(void);
/* Take the GIL with the sampler's thread state in `interp` (NULL or an
 * interpreter that no longer exists: the main one).  In 3.11 a waiting
 * thread asks for the GIL through its own interpreter's eval breaker, and
 * a CPU-bound thread in a sub-interpreter never sees a request made from
 * another interpreter, so the sampler waits in the interpreter where the
 * thread it wants to sample was last seen.  Returns 0 and takes nothing if
 * Python is finalising. */
int pp_py_acquire(void *interp);
void pp_py_release(void);
/* Delete the sampler's thread states (takes and drops the GIL for each). */
void pp_py_detach(void);

/* With the GIL held: find each target's thread in every interpreter and
 * intern its current stack into the store. */
void pp_py_walk(pp_store_t *st, pp_walk_target_t *targets, int n);

/* GIL-free mode: set up (sampler thread, once); 0 if this process can
 * read its own memory with process_vm_readv.  `copy` says how memory is
 * copied: PP_PY_COPY_GUARDED, memcpy() under a SIGSEGV/SIGBUS guard
 * (pp_py_guard.c), where a guard can be had (else, and once another
 * handler replaces ours, process_vm_readv), or PP_PY_COPY_SYSCALL,
 * process_vm_readv always.  Then pp_py_walk_nogil() does what
 * pp_py_walk() does, without the GIL, and marks the samples it had to
 * drop (t->torn; the sampler counts them); it also checks, once a call,
 * that the guard is still installed, and counts the faults it recovered
 * from (copy_faults) and a guard lost (guard_replaced) in st.
 * pp_py_nogil_copy() says which copies now; pp_py_nogil_fini() (the
 * sampler thread, when it stops) removes the guard if it is still ours. */
enum { PP_PY_COPY_GUARDED = 0, PP_PY_COPY_SYSCALL = 1 };
int pp_py_nogil_init(int copy);
int pp_py_nogil_copy(void);
void pp_py_nogil_fini(void);
void pp_py_walk_nogil(pp_store_t *st, pp_walk_target_t *targets, int n);

/* GIL blame, GIL-free mode only (after pp_py_nogil_init): 0 if the GIL's
 * layout checks out against the running interpreter; from then on each
 * pp_py_walk_nogil also reads the GILs of the interpreters it walks, who
 * holds each, and per target which GIL it would wait for (t->gil) and
 * (3.15) whether it waits (t->gil_requested).  -1 and *why: no blame. */
int pp_py_gil_blame_init(const char **why);
/* The GILs the last walk read (n == 0: blame is off). */
const pp_gil_tick_t *pp_py_gil_tick(void);
/* Whether the running Python marks GIL waiters (3.15): then the rule
 * needs no wait channel. */
int pp_py_gil_marks_waiters(void);
/* Read the innermost frames of the thread holding g into t (its ids are
 * set from g): 1 if its thread state was still in a thread list, held by
 * the same thread, and had a frame. */
int pp_py_walk_gil_holder(pp_store_t *st, const pp_gil_state_t *g,
                          pp_walk_target_t *t);

#endif
