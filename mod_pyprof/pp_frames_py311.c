/* pp_frames_py311.c: reads CPython 3.11 stacks for the sampler.
 *
 * Runs on the sampler thread with the GIL held.  It follows
 * tstate->cframe->current_frame through _PyInterpreterFrame.previous the way
 * Python/traceback.c's _Py_DumpTraceback does: no Python object is created,
 * no reference is taken or kept, no Python code runs.  Names are copied
 * into C buffers and interned in the shared store; a small per-process
 * cache maps (code object, instruction) to the interned frame id so a warm
 * stack costs a few loads per frame.  The interpreters' thread lists are
 * walked under the runtime's HEAD_LOCK because thread states are created
 * and deleted by threads that do not hold the GIL.
 */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <internal/pycore_frame.h>
#include <internal/pycore_pystate.h>
#include <internal/pycore_runtime.h>

#include <string.h>

#include "pp_frames.h"

#if PY_VERSION_HEX < 0x030B0000 || PY_VERSION_HEX >= 0x030C0000
#error "pp_frames_py311.c reads CPython 3.11 frames only"
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

typedef struct frame_cache_entry {
    const void *code;
    const void *qualname;
    const void *filename;
    int lasti;
    uint32_t frame;
} frame_cache_entry_t;

#define FRAME_CACHE_SIZE 8192 /* power of two */
static frame_cache_entry_t frame_cache[FRAME_CACHE_SIZE];

const char *pp_py_version(void)
{
    return "3.11";
}

int pp_py_initialized(void)
{
    return Py_IsInitialized() && !_Py_IsFinalizing();
}

int pp_py_attach(void)
{
    PyInterpreterState *main_interp;

    if (sampler_tstate) {
        return 0;
    }
    if (!pp_py_initialized()) {
        return -1;
    }
    main_interp = PyInterpreterState_Main();
    if (!main_interp) {
        return -1;
    }
    /* needs no GIL: new_threadstate() links it in under HEAD_LOCK */
    sampler_tstate = PyThreadState_New(main_interp);
    if (!sampler_tstate) {
        return -1;
    }
    sampler_ident = PyThread_get_thread_ident();
    tstates[0].interp = main_interp;
    tstates[0].tstate = sampler_tstate;
    ntstates = 1;
    return 0;
}

static int interp_alive(PyInterpreterState *interp)
{
    PyInterpreterState *i;
    int alive = 0;

    PyThread_acquire_lock(_PyRuntime.interpreters.mutex, WAIT_LOCK);
    for (i = _PyRuntime.interpreters.head; i; i = i->next) {
        if (i == interp) {
            alive = 1;
            break;
        }
    }
    PyThread_release_lock(_PyRuntime.interpreters.mutex);
    return alive;
}

static PyThreadState *tstate_for(PyInterpreterState *interp)
{
    PyThreadState *ts;
    int k;

    if (!interp) {
        return sampler_tstate;
    }
    for (k = 0; k < ntstates; k++) {
        if (tstates[k].interp == interp) {
            return tstates[k].tstate;
        }
    }
    /* first wait in this interpreter: make sure it still exists (the
     * hint comes from an earlier tick) before giving it a thread state */
    if (ntstates >= MAX_TSTATES || !interp_alive(interp)) {
        return sampler_tstate;
    }
    ts = PyThreadState_New(interp);
    if (!ts) {
        return sampler_tstate;
    }
    tstates[ntstates].interp = interp;
    tstates[ntstates].tstate = ts;
    ntstates++;
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
    PyThread_acquire_lock(_PyRuntime.interpreters.mutex, WAIT_LOCK);
    for (i = _PyRuntime.interpreters.head; i && !found; i = i->next) {
        PyThreadState *ts;
        for (ts = i->threads.head; ts; ts = ts->next) {
            if (ts == cur) {
                found = ts->interp;
                break;
            }
        }
    }
    PyThread_release_lock(_PyRuntime.interpreters.mutex);
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
    PyEval_SaveThread();
}

void pp_py_detach(void)
{
    int k;

    if (!sampler_tstate) {
        return;
    }
    if (!_Py_IsFinalizing()) {
        for (k = ntstates - 1; k >= 0; k--) {
            PyEval_RestoreThread(tstates[k].tstate);
            PyThreadState_Clear(tstates[k].tstate);
            PyThreadState_DeleteCurrent();
        }
    }
    ntstates = 0;
    sampler_tstate = NULL;
}

static int is_sampler(PyThreadState *ts)
{
    return ts->thread_id == sampler_ident;
}

/* Copy a str as UTF-8 into buf without creating objects (PyUnicode_AsUTF8
 * would cache an encoded copy on the object). */
static size_t str_to_utf8(PyObject *o, char *buf, size_t cap)
{
    Py_ssize_t i, n;
    int kind;
    const void *data;
    size_t w = 0;

    if (!o || !PyUnicode_Check(o) || !PyUnicode_IS_READY(o)) {
        buf[0] = '?';
        buf[1] = '\0';
        return 1;
    }
    n = PyUnicode_GET_LENGTH(o);
    kind = PyUnicode_KIND(o);
    data = PyUnicode_DATA(o);
    if (PyUnicode_IS_ASCII(o)) {
        size_t len = (size_t)n < cap - 1 ? (size_t)n : cap - 1;
        memcpy(buf, data, len);
        buf[len] = '\0';
        return len;
    }
    for (i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c >= 0xd800 && c <= 0xdfff) {
            c = 0xfffd; /* lone surrogate */
        }
        if (c < 0x80) {
            if (w + 1 >= cap) break;
            buf[w++] = (char)c;
        }
        else if (c < 0x800) {
            if (w + 2 >= cap) break;
            buf[w++] = (char)(0xc0 | (c >> 6));
            buf[w++] = (char)(0x80 | (c & 0x3f));
        }
        else if (c < 0x10000) {
            if (w + 3 >= cap) break;
            buf[w++] = (char)(0xe0 | (c >> 12));
            buf[w++] = (char)(0x80 | ((c >> 6) & 0x3f));
            buf[w++] = (char)(0x80 | (c & 0x3f));
        }
        else {
            if (w + 4 >= cap) break;
            buf[w++] = (char)(0xf0 | (c >> 18));
            buf[w++] = (char)(0x80 | ((c >> 12) & 0x3f));
            buf[w++] = (char)(0x80 | ((c >> 6) & 0x3f));
            buf[w++] = (char)(0x80 | (c & 0x3f));
        }
    }
    buf[w] = '\0';
    return w;
}

static uint32_t frame_id(pp_store_t *st, _PyInterpreterFrame *f)
{
    PyCodeObject *co = f->f_code;
    int lasti = _PyInterpreterFrame_LASTI(f);
    uintptr_t h = ((uintptr_t)co >> 4) ^ ((uintptr_t)lasti * 0x9e3779b1u);
    frame_cache_entry_t *e = &frame_cache[h & (FRAME_CACHE_SIZE - 1)];
    char func[PP_FRAME_TEXT_MAX + 1], file[PP_FRAME_TEXT_MAX + 1];
    size_t fl, fil;
    int line;
    uint32_t id;

    /* a freed code object's address can be reused: the names' identities
     * must match too */
    if (e->code == co && e->lasti == lasti && e->qualname == co->co_qualname &&
        e->filename == co->co_filename && e->frame) {
        return e->frame;
    }
    fl = str_to_utf8(co->co_qualname, func, sizeof(func));
    fil = str_to_utf8(co->co_filename, file, sizeof(file));
    line = PyCode_Addr2Line(co, lasti * (int)sizeof(_Py_CODEUNIT));
    id = pp_store_intern_frame(st, func, fl, file, fil,
                               line < 0 ? 0u : (uint32_t)line);
    if (!id) {
        return st->frame_unknown;
    }
    e->code = co;
    e->qualname = co->co_qualname;
    e->filename = co->co_filename;
    e->lasti = lasti;
    e->frame = id;
    return id;
}

static void walk_frames(pp_store_t *st, PyThreadState *ts,
                        pp_walk_target_t *t)
{
    _PyInterpreterFrame *f = ts->cframe ? ts->cframe->current_frame : NULL;
    uint32_t guard = 0;

    t->depth = 0;
    t->truncated = 0;
    for (; f && guard < 100000; f = f->previous, guard++) {
        if (_PyFrame_IsIncomplete(f) || !f->f_code) {
            continue;
        }
        if (t->depth >= t->max_depth) {
            t->truncated = 1;
            break;
        }
        t->frames[t->depth++] = frame_id(st, f);
    }
}

static int has_frame(PyThreadState *ts)
{
    return ts->cframe && ts->cframe->current_frame;
}

void pp_py_walk(pp_store_t *st, pp_walk_target_t *targets, int n)
{
    PyInterpreterState *interp;
    int i, left = n;

    for (i = 0; i < n; i++) {
        targets[i].found = 0;
        targets[i].depth = 0;
        if (targets[i].max_depth == 0 ||
            targets[i].max_depth > PP_DEPTH_LIMIT) {
            targets[i].max_depth = PP_DEPTH_LIMIT;
        }
    }
    PyThread_acquire_lock(_PyRuntime.interpreters.mutex, WAIT_LOCK);
    for (interp = _PyRuntime.interpreters.head; interp && left > 0;
         interp = interp->next) {
        PyThreadState *ts;
        for (ts = interp->threads.head; ts && left > 0; ts = ts->next) {
            if (is_sampler(ts) || !has_frame(ts)) {
                continue;
            }
            for (i = 0; i < n; i++) {
                pp_walk_target_t *t = &targets[i];
                if (t->found) {
                    continue;
                }
                if (ts->thread_id == t->thread_ident ||
                    (t->native_tid > 0 &&
                     ts->native_thread_id == (unsigned long)t->native_tid)) {
                    walk_frames(st, ts, t);
                    t->interp = interp;
                    t->found = 1;
                    left--;
                    break;
                }
            }
        }
    }
    PyThread_release_lock(_PyRuntime.interpreters.mutex);
}
