/* pp_py_rt.c: the CPython 3.13-3.15 runtime as the sampler meets it: the
 * runtime's HEAD_LOCK, the GIL for GIL mode, and start-up and shutdown.
 * Sampler thread only (pp_py_initialized also from child_init).  The
 * stack reading itself is version-free: pp_py_walk.c and the files
 * beside it (pp_py_int.h).
 *
 * What changed since 3.11 (pp_py_rt311.c), and why this file is simpler:
 * - HEAD_LOCK is a PyMutex (PyMutex_Lock is exported; it parks a thread
 *   without a thread state, as the sampler is, without touching the GIL).
 * - CPython holds HEAD_LOCK itself across fork() (PyOS_BeforeFork) and
 *   re-initialises it in the child, which fixed the 3.11 child deadlock
 *   the fork guard works around.  A fork guard here would deadlock
 *   instead: the forking thread takes HEAD_LOCK before fork() runs the
 *   atfork handlers, so a prepare handler waiting for a sampler that
 *   waits for HEAD_LOCK never returns.  So none is installed.
 * - The GIL's drop request goes to the holding thread's own eval breaker
 *   (per thread since 3.13), whatever interpreter it runs: the sampler
 *   waits with its one thread state in the main interpreter.
 */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <internal/pycore_interp.h>
#include <internal/pycore_pystate.h>
#include <internal/pycore_runtime.h>

#include "pp_frames.h"
#include "pp_py.h"
#include "pp_py_rt_common.h"

#if PY_VERSION_HEX < 0x030D0000 || PY_VERSION_HEX >= 0x03100000
#error "pp_py_rt.c is the runtime of CPython 3.13 to 3.15"
#endif

static PyThreadState *sampler_tstate; /* main interpreter's */
static unsigned long sampler_ident;

int pp_py_initialized(void)
{
    return Py_IsInitialized() && !Py_IsFinalizing();
}

unsigned long pp_py_rt_sampler_ident(void)
{
    return sampler_ident;
}

void pp_py_rt_head_lock(void)
{
    PyMutex_Lock(&_PyRuntime.interpreters.mutex);
}

void pp_py_rt_head_unlock(void)
{
    PyMutex_Unlock(&_PyRuntime.interpreters.mutex);
}

const void *pp_py_rt_interpreters(void)
{
    return _PyRuntime.interpreters.head;
}

/* With the main GIL held, only interpreters that share it stand still;
 * one with a GIL of its own (concurrent.interpreters, 3.14) runs on and
 * is read only GIL-free.  Under HEAD_LOCK. */
int pp_py_rt_shares_gil(const void *interp)
{
    const PyInterpreterState *i = interp;
    const PyInterpreterState *m = _PyRuntime.interpreters.main;

    return i && m && i->ceval.gil == m->ceval.gil;
}

int pp_py_attach(void)
{
    if (!sampler_tstate) {
        sampler_tstate = new_sampler_tstate(&sampler_ident);
    }
    return sampler_tstate ? 0 : -1;
}

int pp_py_acquire(void *interp)
{
    (void)interp; /* the drop request reaches the holder anywhere */
    if (!sampler_tstate || Py_IsFinalizing()) {
        return 0;
    }
    PyEval_RestoreThread(sampler_tstate);
    return 1;
}

void pp_py_release(void)
{
    PyEval_SaveThread();
}

void pp_py_detach(void)
{
    if (!sampler_tstate) {
        return;
    }
    if (!Py_IsFinalizing()) {
        PyEval_RestoreThread(sampler_tstate);
        PyThreadState_Clear(sampler_tstate);
        PyThreadState_DeleteCurrent();
    }
    sampler_tstate = NULL;
}
