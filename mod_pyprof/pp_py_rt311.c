/* pp_py_rt311.c: the CPython 3.11 runtime as the sampler meets it: the
 * runtime's HEAD_LOCK, the GIL for GIL mode, and start-up and shutdown.
 * Sampler thread only (pp_py_initialized also from child_init).  The
 * stack reading itself is version-free: pp_py_walk.c and the files
 * beside it (pp_py_int.h).
 */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <internal/pycore_pystate.h>
#include <internal/pycore_runtime.h>

#include <pthread.h>

#include "pp_frames.h"
#include "pp_py.h"
#include "pp_py_rt_common.h"

#if PY_VERSION_HEX < 0x030B0000 || PY_VERSION_HEX >= 0x030C0000
#error "pp_py_rt311.c is the runtime of CPython 3.11 only"
#endif

/* The sampler's thread states, one per interpreter it has waited in
 * (mod_wsgi: the main one plus one per application group). */
#define MAX_TSTATES 64
static struct {
    PyInterpreterState *interp;
    PyThreadState *tstate;
} tstates[MAX_TSTATES];
static int ntstates;
static PyThreadState *sampler_tstate; /* main interpreter's */
static unsigned long sampler_ident;

int pp_py_initialized(void)
{
    return Py_IsInitialized() && !_Py_IsFinalizing();
}

unsigned long pp_py_rt_sampler_ident(void)
{
    return sampler_ident;
}

/* The runtime's HEAD_LOCK, taken only through these two.  CPython 3.11
 * deadlocks a child forked while another thread holds it: os.fork() in
 * the child runs PyOS_AfterFork_Child -> _PyEval_ReInitThreads ->
 * _PyThreadState_DeleteExcept, which takes HEAD_LOCK before
 * _PyRuntimeState_ReInitThreads re-creates it (python/cpython#112275).
 * An app that forks in a request (found by the fork torture test) would
 * hang in the child whenever the fork fell inside a GIL-free sample.  So
 * the sampler holds a process-local mutex around HEAD_LOCK, and fork()
 * waits for that mutex (pthread_atfork): no fork happens while the
 * sampler holds HEAD_LOCK.  The forking thread holds the GIL, which the
 * sampler never waits for while it holds the mutex.  (3.13 fixed this by
 * holding HEAD_LOCK across fork() itself; see pp_py_rt.c.) */
static pthread_mutex_t fork_guard = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t fork_guard_once = PTHREAD_ONCE_INIT;

static void fork_guard_lock(void)
{
    pthread_mutex_lock(&fork_guard);
}

static void fork_guard_unlock(void)
{
    pthread_mutex_unlock(&fork_guard);
}

static void fork_guard_register(void)
{
    /* prepare, parent, child: the child's copy is locked by its only
     * thread, the one that forked */
    pthread_atfork(fork_guard_lock, fork_guard_unlock, fork_guard_unlock);
}

void pp_py_rt_head_lock(void)
{
    pthread_once(&fork_guard_once, fork_guard_register);
    fork_guard_lock();
    PyThread_acquire_lock(_PyRuntime.interpreters.mutex, WAIT_LOCK);
}

void pp_py_rt_head_unlock(void)
{
    PyThread_release_lock(_PyRuntime.interpreters.mutex);
    fork_guard_unlock();
}

const void *pp_py_rt_interpreters(void)
{
    return _PyRuntime.interpreters.head;
}

int pp_py_attach(void)
{
    if (sampler_tstate) {
        return 0;
    }
    sampler_tstate = new_sampler_tstate(&sampler_ident);
    if (!sampler_tstate) {
        return -1;
    }
    tstates[0].interp = sampler_tstate->interp;
    tstates[0].tstate = sampler_tstate;
    ntstates = 1;
    return 0;
}

/* Still listed, and not being torn down (Py_EndInterpreter sets
 * finalizing before it insists on being the last thread)?  Known gap of
 * GIL mode: an interpreter the app made itself with _xxsubinterpreters
 * refuses run_string()/destroy() while our borrowed thread state is in it
 * (see README, limits); GIL-free mode never creates thread states. */
static int interp_usable(PyInterpreterState *interp)
{
    PyInterpreterState *i;
    int ok = 0;

    pp_py_rt_head_lock();
    for (i = _PyRuntime.interpreters.head; i; i = i->next) {
        if (i == interp) {
            ok = !interp->finalizing;
            break;
        }
    }
    pp_py_rt_head_unlock();
    return ok;
}

/* The thread state to wait for the GIL with.  In the main interpreter the
 * sampler keeps one; in a sub-interpreter it borrows one for this tick
 * only (see pp_py_release): the app may create and destroy interpreters
 * of its own, and Py_EndInterpreter insists on being their last thread. */
static PyThreadState *tick_tstate;

static PyThreadState *tstate_for(PyInterpreterState *interp)
{
    PyThreadState *ts;

    tick_tstate = NULL;
    if (!interp || interp == tstates[0].interp || !interp_usable(interp)) {
        return sampler_tstate;
    }
    ts = PyThreadState_New(interp);
    if (!ts) {
        return sampler_tstate;
    }
    tick_tstate = ts;
    return ts;
}

/* The interpreter of the thread holding the GIL right now, or NULL.
 * tstate_current is only a pointer to compare: it is dereferenced after
 * it is found in an interpreter's thread list, under HEAD_LOCK, which
 * every thread-state deletion takes, so it cannot be freed meanwhile. */
static PyInterpreterState *gil_holder_interp(void)
{
    PyThreadState *cur = (PyThreadState *)_Py_atomic_load_relaxed(
        &_PyRuntime.gilstate.tstate_current);
    PyInterpreterState *i, *found = NULL;

    if (!cur) {
        return NULL;
    }
    pp_py_rt_head_lock();
    for (i = _PyRuntime.interpreters.head; i && !found; i = i->next) {
        PyThreadState *ts;
        for (ts = i->threads.head; ts; ts = ts->next) {
            if (ts == cur) {
                found = ts->interp;
                break;
            }
        }
    }
    pp_py_rt_head_unlock();
    return found;
}

int pp_py_acquire(void *interp)
{
    PyInterpreterState *holder;

    if (!sampler_tstate || _Py_IsFinalizing()) {
        return 0;
    }
    /* Ask through the interpreter of whoever holds the GIL: in 3.11 only
     * a thread running in that interpreter notices the drop request that
     * take_gil() makes after a switch interval.  Without a holder (the
     * GIL is free) any interpreter will do; the hint keeps thread states
     * few. */
    holder = gil_holder_interp();
    PyEval_RestoreThread(
        tstate_for(holder ? holder : (PyInterpreterState *)interp));
    return 1;
}

void pp_py_release(void)
{
    if (tick_tstate) {
        /* give the borrowed thread state back, GIL and all */
        PyThreadState_Clear(tick_tstate);
        PyThreadState_DeleteCurrent();
        tick_tstate = NULL;
        return;
    }
    PyEval_SaveThread();
}

void pp_py_detach(void)
{
    int k;

    if (!sampler_tstate) {
        return;
    }
    if (!_Py_IsFinalizing()) {
        /* only the main interpreter's is kept between ticks */
        for (k = ntstates - 1; k >= 0; k--) {
            PyEval_RestoreThread(tstates[k].tstate);
            PyThreadState_Clear(tstates[k].tstate);
            PyThreadState_DeleteCurrent();
        }
    }
    ntstates = 0;
    sampler_tstate = NULL;
}

/* One GIL for every interpreter in 3.11. */
int pp_py_rt_shares_gil(const void *interp)
{
    (void)interp;
    return 1;
}
