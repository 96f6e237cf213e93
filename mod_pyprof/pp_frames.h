/* pp_frames.h: the only interface to CPython's internals.
 *
 * Everything version-specific about reading Python stacks lives behind this
 * header, in the Python layer (pp_py.h: pp_py_walk.c, pp_py_layout.c and
 * the runtime file of the version built for, pp_py_rt311.c or pp_py_rt.c).
 * The sampler calls pp_py_* from its own thread only; nothing here is ever
 * called from an Apache hook but pp_py_initialized (child_init).
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
} pp_walk_target_t;

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

#endif
