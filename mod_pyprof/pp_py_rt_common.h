/* pp_py_rt_common.h: what the two runtime files (pp_py_rt311.c, pp_py_rt.c)
 * do alike; included by them only, after <Python.h> with Py_BUILD_CORE. */
#ifndef PP_PY_RT_COMMON_H
#define PP_PY_RT_COMMON_H

/* The sampler's own thread state in the main interpreter, made on the
 * calling (sampler) thread, and that thread's ident; NULL if Python is not
 * (or no longer) running or the reader cannot start.  Needs no GIL:
 * new_threadstate() links it in under HEAD_LOCK (and, from 3.12, binds it
 * to this thread). */
static PyThreadState *new_sampler_tstate(unsigned long *ident)
{
    PyInterpreterState *main_interp;
    PyThreadState *ts;

    if (!pp_py_initialized() || pp_py_walker_init(0) != 0) {
        return NULL;
    }
    main_interp = PyInterpreterState_Main();
    if (!main_interp || !(ts = PyThreadState_New(main_interp))) {
        return NULL;
    }
    *ident = PyThread_get_thread_ident();
    return ts;
}

#endif
