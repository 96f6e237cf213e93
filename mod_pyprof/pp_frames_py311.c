/* pp_frames_py311.c: reads CPython 3.11 stacks for the sampler.
 *
 * Two readers, one per PyProfSampler mode, both on the sampler thread only:
 *
 * gil:   with the GIL held, follows tstate->cframe->current_frame through
 *        _PyInterpreterFrame.previous the way Python/traceback.c's
 *        _Py_DumpTraceback does: no Python object is created, no reference
 *        taken or kept, no Python code run.  The GIL is asked for in the
 *        interpreter of its holder (3.11's drop request is per interpreter).
 * nogil: without the GIL, every byte that can change or be freed under us
 *        (frames, code objects, strings, location tables) is copied with
 *        process_vm_readv() on our own pid, and the copied chain is checked
 *        (real code objects, instructions inside their code, callers below
 *        callees) before it is trusted; otherwise the sample is dropped.
 *
 * In both, thread lists are walked under the runtime's HEAD_LOCK (thread
 * states are created and deleted by threads that do not hold the GIL), and
 * names are copied into C buffers and interned in the shared store; a small
 * cache maps (code object, instruction) to the interned frame id.
 */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <internal/pycore_frame.h>
#include <internal/pycore_pystate.h>
#include <internal/pycore_runtime.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "pp_frames.h"
#include "pp_linetable.h"

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

/* (code object, instruction) -> interned frame.  A freed code object's
 * address can be reused: an entry counts only if the names, the location
 * table and the first line are the same objects too. */
typedef struct frame_cache_entry {
    const void *code;
    const void *qualname;
    const void *filename;
    const void *linetable;
    int firstlineno;
    int lasti;
    uint32_t frame;
    uint64_t gen; /* GIL-free reader: the code_info load it came from */
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
 * sampler never waits for while it holds the mutex. */
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

static void head_lock(void)
{
    pthread_once(&fork_guard_once, fork_guard_register);
    fork_guard_lock();
    PyThread_acquire_lock(_PyRuntime.interpreters.mutex, WAIT_LOCK);
}

static void head_unlock(void)
{
    PyThread_release_lock(_PyRuntime.interpreters.mutex);
    fork_guard_unlock();
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

    head_lock();
    for (i = _PyRuntime.interpreters.head; i; i = i->next) {
        if (i == interp) {
            ok = !interp->finalizing;
            break;
        }
    }
    head_unlock();
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
    head_lock();
    for (i = _PyRuntime.interpreters.head; i && !found; i = i->next) {
        PyThreadState *ts;
        for (ts = i->threads.head; ts; ts = ts->next) {
            if (ts == cur) {
                found = ts->interp;
                break;
            }
        }
    }
    head_unlock();
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

static int is_sampler(PyThreadState *ts)
{
    return ts->thread_id == sampler_ident;
}

/* UTF-8 of n code points of a PEP 393 buffer (kind 1, 2 or 4), cut at
 * cap - 1 bytes on a character boundary; lone surrogates become U+FFFD. */
static size_t ucs_to_utf8(int kind, const void *data, Py_ssize_t n, char *buf,
                          size_t cap)
{
    Py_ssize_t i;
    size_t w = 0;

    for (i = 0; i < n; i++) {
        Py_UCS4 c = kind == 1 ? ((const Py_UCS1 *)data)[i]
                    : kind == 2 ? ((const Py_UCS2 *)data)[i]
                                : ((const Py_UCS4 *)data)[i];
        if (c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
            c = 0xfffd;
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

/* Copy a str as UTF-8 into buf without creating objects (PyUnicode_AsUTF8
 * would cache an encoded copy on the object). */
static size_t str_to_utf8(PyObject *o, char *buf, size_t cap)
{
    Py_ssize_t n;
    int kind;
    const void *data;

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
    return ucs_to_utf8(kind, data, n, buf, cap);
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
        e->filename == co->co_filename && e->linetable == co->co_linetable &&
        e->firstlineno == co->co_firstlineno && e->frame) {
        return e->frame;
    }
    fl = str_to_utf8(co->co_qualname, func, sizeof(func));
    fil = str_to_utf8(co->co_filename, file, sizeof(file));
    line = PyCode_Addr2Line(co, lasti * (int)sizeof(_Py_CODEUNIT));
    /* an instruction without a location (-1) is charged to the
     * function's first line rather than to a line 0 that never ran */
    if (line <= 0) {
        line = co->co_firstlineno;
    }
    id = pp_store_intern_frame(st, func, fl, file, fil,
                               line < 0 ? 0u : (uint32_t)line);
    if (!id) {
        return st->frame_unknown;
    }
    e->code = co;
    e->qualname = co->co_qualname;
    e->filename = co->co_filename;
    e->linetable = co->co_linetable;
    e->firstlineno = co->co_firstlineno;
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
        targets[i].torn = 0;
        targets[i].depth = 0;
        if (targets[i].max_depth == 0 ||
            targets[i].max_depth > PP_DEPTH_LIMIT) {
            targets[i].max_depth = PP_DEPTH_LIMIT;
        }
    }
    head_lock();
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
    head_unlock();
}

/* ======================================================================
 * GIL-free reading.
 *
 * The sampler does not take the GIL: the threads it samples keep running
 * while it reads them, so every byte that can change or be freed under it
 * (frames, code objects, strings) is copied with process_vm_readv() on
 * our own pid, which fails cleanly on an unmapped page instead of
 * faulting.  Thread states are found under HEAD_LOCK, which every
 * thread-state deletion takes, so the tstate structs themselves stay
 * valid while we look.  A copied chain that does not check out (a code
 * object that is not one, an instruction outside its code, a caller above
 * its callee) is read once more, then dropped (counted as torn).
 * ====================================================================== */

#include <sys/uio.h>

/* A live object's reference count is a small positive number.  A freed
 * pymalloc block keeps its type pointer but its first word becomes the
 * free list's next pointer (or NULL): a count outside this range is how a
 * copy of a dead object gives itself away. */
#define LIVE_REFCNT(o) (Py_REFCNT(o) > 0 && Py_REFCNT(o) < ((Py_ssize_t)1 << 32))

#define CODE_CACHE_SIZE 4096      /* power of two */
#define NOGIL_CHUNK_MAX ((size_t)512 * 1024)
#define NOGIL_NAME_MAX 1024       /* characters read of a name */
#define NOGIL_LINETABLE_MAX 32768 /* bytes of location table kept */
#define NOGIL_IOV_MAX 512
/* Copies of a chain before a sample is dropped as torn.  A thread calling
 * small functions changes its chain while it is copied; only failed
 * copies are retried, so more tries cost nothing when the first works.
 * tests/bench (p1ms, /app/render: ~15k calls in 2 ms): torn 5.3% of
 * samples with 2 tries, 2.2% with 3, 0.3-0.4% with 5, the sampler's CPU
 * the same within noise. */
#ifndef NOGIL_TRIES
#define NOGIL_TRIES 5
#endif

/* The last bytes of a str's characters as read, and where they are.  A
 * code object freed and replaced by one of the same shape (the same
 * template exec'd or imported again) can get the same address, and so can
 * its name and file strs (pymalloc and malloc hand out the last freed
 * block first): all the pointers a cache entry is checked against match,
 * yet the names differ.  They differ in their characters, most often at
 * the end (a nonce, a module name): a cache hit counts only if these bytes
 * are still there (re-read in one batch per sample). */
#define STR_TAIL 24
typedef struct str_tail {
    const void *at; /* remote address of the bytes; NULL: not checked */
    uint8_t bytes[STR_TAIL];
    uint8_t len;
} str_tail_t;

typedef struct code_info {
    const void *code; /* remote address; NULL = empty entry */
    const void *qualname, *filename, *linetable_obj;
    int firstlineno;
    int firsttraceable;
    Py_ssize_t ncodeunits;
    uint8_t *linetable;
    size_t linetable_len;
    char func[PP_FRAME_TEXT_MAX + 1];
    char file[PP_FRAME_TEXT_MAX + 1];
    size_t func_len, file_len;
    str_tail_t func_tail, file_tail; /* see str_tail_t */
    uint64_t gen;                    /* which load this is (never 0) */
} code_info_t;

static uint64_t code_loads; /* sampler thread only */

static code_info_t *code_cache; /* sampler thread only */
static char *chunk_copy;        /* sampler thread only */
static pid_t own_pid;
static uint64_t nogil_torn;

uint64_t pp_py_nogil_torn(void)
{
    return nogil_torn;
}

static int remote_read(void *dst, const void *src, size_t n)
{
    struct iovec l, r;

    if (!src || !n) {
        return -1;
    }
    l.iov_base = dst;
    l.iov_len = n;
    r.iov_base = (void *)src;
    r.iov_len = n;
    return process_vm_readv(own_pid, &l, 1, &r, 1, 0) == (ssize_t)n ? 0 : -1;
}

int pp_py_nogil_init(void)
{
    own_pid = getpid();
    if (!code_cache) {
        code_cache = calloc(CODE_CACHE_SIZE, sizeof(code_info_t));
    }
    if (!chunk_copy) {
        chunk_copy = malloc(NOGIL_CHUNK_MAX);
    }
    if (!code_cache || !chunk_copy) {
        return -1;
    }
    /* can we read ourselves at all (a seccomp filter or a hardened
     * kernel may say no)? */
    {
        int probe = 42, got = 0;
        if (remote_read(&got, &probe, sizeof(got)) != 0 || got != 42) {
            return -1;
        }
    }
    return 0;
}

/* A str, copied out as UTF-8 (at most NOGIL_NAME_MAX characters). */
static size_t remote_str(const void *obj, char *out, size_t cap,
                         str_tail_t *tail)
{
    PyCompactUnicodeObject head;
    const uint8_t *data_at;
    unsigned kind;
    Py_ssize_t n;
    static uint8_t buf[NOGIL_NAME_MAX * 4];

    out[0] = '\0';
    if (remote_read(&head, obj, sizeof(head)) != 0 ||
        Py_TYPE((PyObject *)&head) != &PyUnicode_Type ||
        !LIVE_REFCNT((PyObject *)&head) ||
        !head._base.state.compact || !head._base.state.ready) {
        return 0;
    }
    kind = head._base.state.kind;
    if (kind != 1 && kind != 2 && kind != 4) {
        return 0;
    }
    n = head._base.length;
    if (n < 0) {
        return 0;
    }
    if (n > NOGIL_NAME_MAX) {
        n = NOGIL_NAME_MAX;
    }
    data_at = head._base.state.ascii
                  ? (const uint8_t *)obj + sizeof(PyASCIIObject)
                  : (const uint8_t *)obj + sizeof(PyCompactUnicodeObject);
    if (n && remote_read(buf, data_at, (size_t)n * kind) != 0) {
        return 0;
    }
    /* the str may have been freed and its block handed to a new object
     * between the two reads (pymalloc reuses the last freed block first):
     * the characters count only if the header is still the one they were
     * read under (type, length, hash, state; the count may move) */
    {
        PyCompactUnicodeObject again;
        const size_t skip = offsetof(PyObject, ob_type);
        if (remote_read(&again, obj, sizeof(again)) != 0 ||
            !LIVE_REFCNT((PyObject *)&again) ||
            memcmp((const char *)&again + skip, (const char *)&head + skip,
                   (head._base.state.ascii ? sizeof(PyASCIIObject)
                                           : sizeof(again)) -
                       skip) != 0) {
            return 0;
        }
    }
    if (tail) {
        size_t bytes = (size_t)n * kind, t = bytes < STR_TAIL ? bytes : STR_TAIL;
        tail->at = t ? data_at + bytes - t : NULL;
        tail->len = (uint8_t)t;
        if (t) {
            memcpy(tail->bytes, buf + bytes - t, t);
        }
    }
    return ucs_to_utf8((int)kind, buf, n, out, cap);
}

/* Fill a cache entry from the code object's header; 0 on success. */
static int load_code(code_info_t *ci, const void *code,
                     const PyCodeObject *head)
{
    PyBytesObject bhead;
    Py_ssize_t blen;

    free(ci->linetable);
    memset(ci, 0, sizeof(*ci));
    ci->func_len = remote_str(head->co_qualname, ci->func, sizeof(ci->func),
                              &ci->func_tail);
    ci->file_len = remote_str(head->co_filename, ci->file, sizeof(ci->file),
                              &ci->file_tail);
    if (!ci->func_len || !ci->file_len) {
        return -1;
    }
    if (remote_read(&bhead, head->co_linetable,
                    offsetof(PyBytesObject, ob_sval)) == 0 &&
        Py_TYPE((PyObject *)&bhead) == &PyBytes_Type &&
        LIVE_REFCNT((PyObject *)&bhead) &&
        (blen = Py_SIZE((PyObject *)&bhead)) > 0 &&
        blen <= NOGIL_LINETABLE_MAX) {
        ci->linetable = malloc((size_t)blen);
        if (ci->linetable &&
            remote_read(ci->linetable,
                        (const char *)head->co_linetable +
                            offsetof(PyBytesObject, ob_sval),
                        (size_t)blen) == 0) {
            ci->linetable_len = (size_t)blen;
        }
        else {
            free(ci->linetable);
            ci->linetable = NULL;
        }
    }
    /* the code object may have been freed (and its memory reused) while
     * we read its parts: they count only if its header is still the one
     * they were read from */
    {
        PyCodeObject again;
        const size_t hsize = offsetof(PyCodeObject, co_code_adaptive);
        if (remote_read(&again, code, hsize) != 0 ||
            Py_TYPE((PyObject *)&again) != &PyCode_Type ||
            !LIVE_REFCNT((PyObject *)&again) ||
            again.co_qualname != head->co_qualname ||
            again.co_filename != head->co_filename ||
            again.co_linetable != head->co_linetable ||
            again.co_firstlineno != head->co_firstlineno) {
            free(ci->linetable);
            ci->linetable = NULL;
            return -1;
        }
    }
    ci->code = code;
    ci->gen = ++code_loads;
    ci->qualname = head->co_qualname;
    ci->filename = head->co_filename;
    ci->linetable_obj = head->co_linetable;
    ci->firstlineno = head->co_firstlineno;
    ci->firsttraceable = head->_co_firsttraceable;
    ci->ncodeunits = Py_SIZE((PyObject *)head);
    return 0;
}

typedef struct nogil_frame {
    const void *code;
    const void *prev_instr;
    char owner;
} nogil_frame_t;

/* Copy the frame chain of one thread state.  -1 if it changed under us or
 * does not decode. */
/* Copied data-stack chunks of one thread: frames live in them, so a walk
 * costs one read per chunk instead of one per frame. */
#define NOGIL_REGIONS 16

typedef struct region {
    const char *base; /* remote address of the chunk's data */
    size_t used;
    size_t at;        /* offset of the copy in chunk_copy */
} region_t;

typedef struct regions {
    region_t r[NOGIL_REGIONS];
    int n;
    size_t fill;              /* bytes of chunk_copy in use */
    _PyStackChunk *next;      /* the next older chunk not copied yet */
} regions_t;

static int copy_region(regions_t *rs, const char *base, size_t used)
{
    region_t *r;

    if (rs->n >= NOGIL_REGIONS || used == 0 ||
        used > NOGIL_CHUNK_MAX - rs->fill ||
        remote_read(chunk_copy + rs->fill, base, used) != 0) {
        return -1;
    }
    r = &rs->r[rs->n++];
    r->base = base;
    r->used = used;
    r->at = rs->fill;
    rs->fill += used;
    return 0;
}

/* The region holding a whole frame at fp, copying older chunks as the
 * walk reaches them; NULL if fp is in none (e.g. a generator's frame). */
static const region_t *region_of(regions_t *rs, const char *fp, size_t size)
{
    int i;

    for (;;) {
        for (i = 0; i < rs->n; i++) {
            const region_t *r = &rs->r[i];
            if (r->used >= size && fp >= r->base &&
                (size_t)(fp - r->base) <= r->used - size) {
                return r;
            }
        }
        if (!rs->next) {
            return NULL;
        }
        {
            _PyStackChunk head;
            if (remote_read(&head, rs->next, offsetof(_PyStackChunk, data)) !=
                    0 ||
                head.top > head.size / sizeof(PyObject *) ||
                copy_region(rs, (const char *)&rs->next->data[0],
                            head.top * sizeof(PyObject *)) != 0) {
                rs->next = NULL;
                return NULL;
            }
            rs->next = head.previous;
        }
    }
}

static int copy_chain(PyThreadState *ts, nogil_frame_t *out, uint32_t cap,
                      uint32_t *n, int *truncated, const void **top)
{
    _PyCFrame *cf = ts->cframe;
    _PyInterpreterFrame *f = NULL;
    _PyStackChunk *chunk = ts->datastack_chunk;
    PyObject **dtop = ts->datastack_top;
    regions_t rs;
    uint32_t guard = 0;

    *n = 0;
    *truncated = 0;
    rs.n = 0;
    rs.fill = 0;
    rs.next = NULL;
    /* copies the pointer itself (sizeof a pointer, as meant) */
    if (!cf || remote_read(&f, &cf->current_frame, sizeof(void *)) != 0) {
        return -1;
    }
    *top = f;
    /* the current chunk now; older ones when the walk gets there */
    if (chunk && dtop) {
        const char *base = (const char *)&chunk->data[0];
        if ((const char *)dtop > base &&
            (size_t)((const char *)dtop - base) <= NOGIL_CHUNK_MAX) {
            copy_region(&rs, base, (size_t)((const char *)dtop - base));
        }
        if (remote_read(&rs.next, &chunk->previous, sizeof(void *)) != 0) {
            rs.next = NULL;
        }
    }
    while (f && guard++ < 4 * PP_DEPTH_LIMIT) {
        _PyInterpreterFrame fr;
        const char *fp = (const char *)f;
        const region_t *r;

        /* a torn pointer can be anything: no arithmetic on it that can
         * wrap, and nothing outside user space */
        if ((uintptr_t)fp < 4096 || (uintptr_t)fp > 0x00007fffffffffffULL) {
            return -1;
        }
        if ((r = region_of(&rs, fp, sizeof(fr)))) {
            memcpy(&fr, chunk_copy + r->at + (size_t)(fp - r->base),
                   sizeof(fr));
        }
        else if (remote_read(&fr, f, sizeof(fr)) != 0) {
            return -1;
        }
        if (*n >= cap) {
            *truncated = 1;
            break;
        }
        out[*n].code = fr.f_code;
        out[*n].prev_instr = fr.prev_instr;
        out[*n].owner = fr.owner;
        (*n)++;
        /* within one data-stack chunk callers lie below callees; anything
         * else there is a torn copy (or a cycle) */
        if (fr.previous == f ||
            (r && (const char *)fr.previous >= fp &&
             (size_t)((const char *)fr.previous - r->base) < r->used)) {
            return -1;
        }
        f = fr.previous;
    }
    return 0;
}

/* Code objects of the chain, validated in one batched read; then names
 * and lines from the cache.  Fills t->frames. */
/* The cache entry of a code object, and whether it was loaded from this
 * very header (same address and the same name, file and line-table
 * pointers; check_cached_names then checks the names' last bytes). */
static code_info_t *cache_entry(const void *code)
{
    return &code_cache[((uintptr_t)code >> 4) & (CODE_CACHE_SIZE - 1)];
}

static int cache_matches(const code_info_t *ci, const void *code,
                         const PyCodeObject *head)
{
    return ci->code == code && ci->qualname == head->co_qualname &&
           ci->filename == head->co_filename &&
           ci->linetable_obj == head->co_linetable &&
           ci->firstlineno == head->co_firstlineno;
}

/* Cache entries that still match their code object's pointers keep
 * their names only if the last bytes of those names are still the ones
 * read (see str_tail_t); the others are dropped, to be loaded again.  One
 * batched read for every code object of the sample. */
static void check_cached_names(unsigned char (*heads)[offsetof(PyCodeObject,
                                                              co_code_adaptive)],
                               const void *const *addrs, uint32_t nuniq)
{
    static struct iovec liov[2 * NOGIL_IOV_MAX], riov[2 * NOGIL_IOV_MAX];
    static uint8_t now[2 * NOGIL_IOV_MAX][STR_TAIL];
    static code_info_t *owner[2 * NOGIL_IOV_MAX];
    static const str_tail_t *tails[2 * NOGIL_IOV_MAX];
    uint32_t k, m = 0, j;
    ssize_t want = 0, got;

    for (k = 0; k < nuniq; k++) {
        const PyCodeObject *head = (const PyCodeObject *)heads[k];
        code_info_t *ci = cache_entry(addrs[k]);
        const str_tail_t *pair[2];
        int t;

        if (!cache_matches(ci, addrs[k], head)) {
            continue; /* not a hit: loaded anew anyway */
        }
        pair[0] = &ci->func_tail;
        pair[1] = &ci->file_tail;
        for (t = 0; t < 2; t++) {
            if (!pair[t]->at || !pair[t]->len) {
                continue;
            }
            liov[m].iov_base = now[m];
            liov[m].iov_len = pair[t]->len;
            riov[m].iov_base = (void *)pair[t]->at;
            riov[m].iov_len = pair[t]->len;
            owner[m] = ci;
            tails[m] = pair[t];
            want += pair[t]->len;
            m++;
        }
    }
    if (!m) {
        return;
    }
    got = process_vm_readv(own_pid, liov, m, riov, m, 0);
    for (j = 0; j < m; j++) {
        if (got != want ||
            memcmp(now[j], tails[j]->bytes, tails[j]->len) != 0) {
            owner[j]->code = NULL; /* reload: its names changed */
        }
    }
}

static int decode_chain(pp_store_t *st, const nogil_frame_t *fr, uint32_t n,
                        pp_walk_target_t *t)
{
    static struct iovec liov[NOGIL_IOV_MAX], riov[NOGIL_IOV_MAX];
    static unsigned char heads[NOGIL_IOV_MAX][offsetof(PyCodeObject,
                                                       co_code_adaptive)];
    static const void *addrs[NOGIL_IOV_MAX];
    const size_t hsize = offsetof(PyCodeObject, co_code_adaptive);
    uint32_t i, k, nuniq = 0;
    ssize_t got;

    /* distinct code objects (stacks repeat functions) */
    for (i = 0; i < n; i++) {
        for (k = 0; k < nuniq; k++) {
            if (addrs[k] == fr[i].code) {
                break;
            }
        }
        if (k == nuniq && nuniq < NOGIL_IOV_MAX) {
            addrs[nuniq] = fr[i].code;
            liov[nuniq].iov_base = heads[nuniq];
            liov[nuniq].iov_len = hsize;
            riov[nuniq].iov_base = (void *)fr[i].code;
            riov[nuniq].iov_len = hsize;
            nuniq++;
        }
    }
    if (!nuniq) {
        return -1;
    }
    got = process_vm_readv(own_pid, liov, nuniq, riov, nuniq, 0);
    if (got != (ssize_t)(hsize * nuniq)) {
        return -1; /* some frame pointed at freed memory: torn */
    }
    check_cached_names(heads, addrs, nuniq);
    t->depth = 0;
    for (i = 0; i < n && t->depth < t->max_depth; i++) {
        const PyCodeObject *head = NULL;
        code_info_t *ci;
        uintptr_t h;
        Py_ssize_t unit;
        const char *code_start;
        int line, lasti;
        frame_cache_entry_t *fe;
        uint32_t id;

        for (k = 0; k < nuniq; k++) {
            if (addrs[k] == fr[i].code) {
                head = (const PyCodeObject *)heads[k];
                break;
            }
        }
        /* a code object being deallocated (refcount 0) may already have
         * released its names: not one to read */
        if (!head || Py_TYPE((PyObject *)head) != &PyCode_Type ||
            !LIVE_REFCNT((PyObject *)head)) {
            return -1;
        }
        ci = cache_entry(fr[i].code);
        if (!cache_matches(ci, fr[i].code, head)) {
            if (load_code(ci, fr[i].code, head) != 0) {
                return -1;
            }
        }
        code_start = (const char *)fr[i].code +
                     offsetof(PyCodeObject, co_code_adaptive);
        unit = ((const char *)fr[i].prev_instr - code_start) /
               (Py_ssize_t)sizeof(_Py_CODEUNIT);
        /* _PyFrame_IsIncomplete: not started yet */
        if (fr[i].owner != FRAME_OWNED_BY_GENERATOR &&
            unit < ci->firsttraceable) {
            continue;
        }
        if (unit < -1 || unit > ci->ncodeunits) {
            return -1; /* prev_instr outside its code: torn */
        }
        lasti = (int)unit;
        /* shared with the GIL path: (code, instruction) -> frame id */
        h = ((uintptr_t)fr[i].code >> 4) ^ ((uintptr_t)lasti * 0x9e3779b1u);
        fe = &frame_cache[h & (FRAME_CACHE_SIZE - 1)];
        if (fe->code == fr[i].code && fe->lasti == lasti &&
            fe->gen == ci->gen && fe->frame) {
            t->frames[t->depth++] = fe->frame;
            continue;
        }
        line = pp_linetable_line(ci->linetable, ci->linetable_len,
                                 ci->firstlineno, lasti);
        /* as the GIL path: no location is the function's first line */
        if (line <= 0) {
            line = ci->firstlineno;
        }
        id = pp_store_intern_frame(st, ci->func, ci->func_len, ci->file,
                                   ci->file_len,
                                   line < 0 ? 0u : (uint32_t)line);
        if (!id) {
            id = st->frame_unknown;
        }
        else {
            fe->code = fr[i].code;
            fe->qualname = ci->qualname;
            fe->filename = ci->filename;
            fe->linetable = ci->linetable_obj;
            fe->firstlineno = ci->firstlineno;
            fe->lasti = lasti;
            fe->gen = ci->gen;
            fe->frame = id;
        }
        t->frames[t->depth++] = id;
    }
    if (i < n) {
        t->truncated = 1;
    }
    return 0;
}

/* Is ts the target's thread?  The ids are read through volatile: a
 * thread just started may be rewriting them (see pp_py_walk_nogil). */
static int is_thread_of(const PyThreadState *ts, const pp_walk_target_t *t)
{
    unsigned long id = *(const volatile unsigned long *)&ts->thread_id;
    unsigned long nid =
        *(const volatile unsigned long *)&ts->native_thread_id;

    return id == t->thread_ident ||
           (t->native_tid > 0 && nid == (unsigned long)t->native_tid);
}

static int chain_top(PyThreadState *ts, const void **top)
{
    _PyCFrame *cf = ts->cframe;
    _PyInterpreterFrame *f = NULL;
    /* copies the pointer itself (sizeof a pointer, as meant) */
    if (!cf || remote_read(&f, &cf->current_frame, sizeof(void *)) != 0) {
        return -1;
    }
    *top = f;
    return 0;
}

void pp_py_walk_nogil(pp_store_t *st, pp_walk_target_t *targets, int n)
{
    static nogil_frame_t chain[PP_DEPTH_LIMIT];
    PyInterpreterState *interp;
    int i, left = n;

    for (i = 0; i < n; i++) {
        targets[i].found = 0;
        targets[i].torn = 0;
        targets[i].depth = 0;
        targets[i].truncated = 0;
        if (targets[i].max_depth == 0 ||
            targets[i].max_depth > PP_DEPTH_LIMIT) {
            targets[i].max_depth = PP_DEPTH_LIMIT;
        }
    }
    /* HEAD_LOCK: no thread state is freed while we look at it */
    head_lock();
    for (interp = _PyRuntime.interpreters.head; interp && left > 0;
         interp = interp->next) {
        PyThreadState *ts;
        for (ts = interp->threads.head; ts && left > 0; ts = ts->next) {
            const void *top = NULL;
            for (i = 0; i < n; i++) {
                pp_walk_target_t *t = &targets[i];
                uint32_t depth = 0;
                int tries, truncated = 0;

                if (t->found || !is_thread_of(ts, t)) {
                    continue;
                }
                /* several interpreters may know this thread: the one with
                 * a frame is where it runs */
                if (chain_top(ts, &top) != 0 || !top) {
                    break;
                }
                /* The thread runs on while we copy: the chain is checked
                 * (every code object really is one, every instruction
                 * lies inside its code, callers below callees) rather
                 * than required to stand still, which a thread calling
                 * small functions never does for a microsecond. */
                for (tries = 0; tries < NOGIL_TRIES; tries++) {
                    if (copy_chain(ts, chain, t->max_depth, &depth,
                                   &truncated, &top) != 0) {
                        continue;
                    }
                    if (!top) {
                        break; /* it left Python meanwhile */
                    }
                    if (decode_chain(st, chain, depth, t) == 0) {
                        /* every frame still starting up: not in Python
                         * code yet, as far as a sample can tell */
                        t->found = t->depth > 0 || t->truncated;
                        t->truncated |= truncated;
                        t->interp = interp;
                        break;
                    }
                }
                /* A thread state that threading.Thread.start() has just
                 * made carries its creator's ids until the new thread sets
                 * its own (3.11 init_threadstate), and it comes first in
                 * the list: had the new thread started meanwhile, the
                 * chain copied would be its stack, not the request's.  It
                 * sets its ids before it runs any Python, so ids that
                 * still match after the copy mean the copy was the
                 * target's. */
                atomic_thread_fence(memory_order_acquire);
                if (!is_thread_of(ts, t)) {
                    t->found = 0;
                    t->depth = 0;
                    t->truncated = 0;
                    break; /* not this thread state: look on */
                }
                if (tries == NOGIL_TRIES && top) {
                    nogil_torn++;
                    t->torn = 1;
                }
                left--;
                break;
            }
        }
    }
    head_unlock();
}
