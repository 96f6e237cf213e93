/* pp_py_alloc.c: the allocator hooks of PyProfAllocations.  Wraps the MEM
 * and OBJ domains (PyMem_SetAllocator) of the process once, calling the
 * allocator found there for every request; RAW is left alone (pymalloc
 * hands allocations above 512 bytes to RAW, so MEM and OBJ see each
 * allocation once, and RAW callers need not hold the GIL, which the
 * countdown below relies on).
 *
 * Fast path (nearly every call): a byte countdown for allocations, one
 * filter byte for frees (pp_alloc.h), then a tail call to the previous
 * allocator.  Slow path: an allocation that takes the countdown to zero
 * (or is at least the mean) reads the allocating thread's own Python
 * frames (it holds the GIL, so its chain is consistent and read with
 * plain loads, through the offsets of pp_py_layout.c), interns them with
 * pp_store_intern_* and hands the sample to pp_alloc.c, which charges it
 * to the request the thread serves.  The hooks never call into Python,
 * never take HEAD_LOCK, the GIL or the sampler's registry; pp_alloc.c's
 * leaf mutex is the one lock, and a static guard keeps a sample from
 * sampling itself.
 *
 * Stopping (child exit, before Python is finalised) only turns sampling
 * off: the hooks stay in the chain, as another hook (tracemalloc) may
 * wrap them, and the module stays mapped until the process exits.
 */
#include <Python.h>

#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pp_alloc.h"
#include "pp_linetable.h"
#include "pp_py.h"
#include "pp_py_alloc.h"
#include "pp_py_int.h"

#define STACK_MAX PP_STACK_MEMO_DEPTH /* frames read of a stack */
#define FRAME_CACHE 4096              /* (code, instruction) -> frame id */
#define NAME_MAX_BYTES 512            /* UTF-8 bytes kept of a name */

/* everything below but `installed` is written with the GIL held */
static PyMemAllocatorEx prev_mem, prev_obj;
static intptr_t left;    /* bytes until the next sample */
static size_t mean_size; /* allocations of at least this are sampled */
static pp_alloc_rng_t rng;
static const uint8_t *filter; /* pp_alloc_live's */
static int in_sample;
static int installed;
static pp_store_t *store;
static const pp_py_layout_t *L;
static pp_stack_memo_t memo;

typedef struct frame_cache_entry {
    const void *code;
    intptr_t unit;
    const void *qualname, *filename, *linetable; /* what it was read from */
    uint32_t frame;
} frame_cache_entry_t;
static frame_cache_entry_t frame_cache[FRAME_CACHE];

/* ---- own-thread stack ---- */

/* A str object as UTF-8 into buf (cut at cap - 1 bytes): its length. */
static size_t str_utf8(PyObject *s, char *buf, size_t cap)
{
    if (!s || !PyUnicode_Check(s) || !PyUnicode_IS_COMPACT(s)) {
        memcpy(buf, "?", 2);
        return 1;
    }
    return pp_py_ucs_to_utf8((unsigned)PyUnicode_KIND(s),
                             (const uint8_t *)PyUnicode_DATA(s),
                             (size_t)PyUnicode_GET_LENGTH(s), buf, cap);
}

/* The interned frame of a code object at instruction `unit`; 0 if the
 * frame tables are full. */
static uint32_t frame_id(const void *code, intptr_t unit)
{
    const void *qualname = pp_py_ptr_at(code, L->code_qualname);
    const void *filename = pp_py_ptr_at(code, L->code_filename);
    const void *linetable = pp_py_ptr_at(code, L->code_linetable);
    uintptr_t h = ((uintptr_t)code >> 4) ^ ((uintptr_t)unit * 0x9e3779b1u);
    frame_cache_entry_t *e = &frame_cache[h & (FRAME_CACHE - 1)];
    char func[NAME_MAX_BYTES], file[NAME_MAX_BYTES];
    size_t funclen, filelen;
    int line, first = pp_py_int_at(code, L->code_firstlineno);
    uint32_t id;

    /* a code object freed and another made at its address: the names or
     * the table it reads tell them apart */
    if (e->frame && e->code == code && e->unit == unit &&
        e->qualname == qualname && e->filename == filename &&
        e->linetable == linetable) {
        return e->frame;
    }
    funclen = str_utf8((PyObject *)qualname, func, sizeof(func));
    filelen = str_utf8((PyObject *)filename, file, sizeof(file));
    line = -1;
    if (linetable && PyBytes_Check((PyObject *)linetable)) {
        line = pp_linetable_line(
            (const uint8_t *)PyBytes_AS_STRING((PyObject *)linetable),
            (size_t)PyBytes_GET_SIZE((PyObject *)linetable), first,
            (int64_t)unit);
    }
    /* as the sampler does: no location, the function's first line */
    if (line <= 0) {
        line = first;
    }
    id = pp_store_intern_frame(store, func, funclen, file, filelen,
                               line < 0 ? 0u : (uint32_t)line);
    if (id) {
        e->code = code;
        e->unit = unit;
        e->qualname = qualname;
        e->filename = filename;
        e->linetable = linetable;
        e->frame = id;
    }
    return id ? id : store->frame_unknown;
}

/* The node of the calling thread's Python stack; 0 if it has none. */
static uint32_t own_stack(void)
{
    uint32_t frames[STACK_MAX], depth = 0, guard = 0;
    const void *ts, *f, *at;

#if PY_VERSION_HEX >= 0x030D0000
    ts = PyThreadState_GetUnchecked();
#else
    ts = _PyThreadState_UncheckedGet();
#endif
    if (!ts) {
        return 0;
    }
    if (L->ts_frame_indirect) {
        const void *cf = pp_py_ptr_at(ts, L->ts_frame);
        if (!cf) {
            return 0;
        }
        at = (const char *)cf + L->cframe_frame;
    }
    else {
        at = (const char *)ts + L->ts_frame;
    }
    f = pp_py_ptr_at(at, 0);
    while (f && depth < STACK_MAX && guard++ < 4 * PP_DEPTH_LIMIT) {
        int owner = ((const unsigned char *)f)[L->frame_owner];

        if (owner < L->owner_not_python) {
            const char *code =
                (const char *)((uintptr_t)pp_py_ptr_at(f, L->frame_code) &
                               ~L->code_tag);
            if (code && pp_py_ptr_at(code, L->obj_type) == L->code_type) {
                const char *instr = pp_py_ptr_at(f, L->frame_instr);
                intptr_t unit =
                    ((intptr_t)instr - (intptr_t)(code + L->code_header)) /
                    (intptr_t)L->code_unit;
                intptr_t size;

                memcpy(&size, code + L->var_size, sizeof(size));
                /* a frame being set up or not started yet is not read */
                if (unit >= -1 && unit <= size &&
                    (owner == L->owner_generator ||
                     unit >= pp_py_int_at(code, L->code_firsttraceable))) {
                    frames[depth++] = frame_id(code, unit);
                }
            }
        }
        f = pp_py_ptr_at(f, L->frame_previous);
    }
    if (!depth) {
        return 0;
    }
    return pp_store_intern_stack_memo(store, &memo, frames, depth, f != NULL);
}

/* ---- the hooks ---- */

/* An allocation took the countdown to zero or was at least the mean: p
 * (NULL if it failed) of n bytes. */
static void sample(void *p, size_t n)
{
    int slot;
    uint64_t serial;

    if (!pp_alloc_enabled) {
        left = INTPTR_MAX; /* stopped: the fast path from now on */
        return;
    }
    if (n < mean_size) {
        left = (intptr_t)pp_alloc_gap(&rng, mean_size);
    }
    if (!p || in_sample) {
        return;
    }
    in_sample = 1;
    pp_alloc_sampled((uintptr_t)p, n,
                     pp_alloc_current(&slot, &serial) ? own_stack() : 0);
    in_sample = 0;
}

static __attribute__((noinline)) void *malloc_slow(PyMemAllocatorEx *a,
                                                   size_t n)
{
    void *p = a->malloc(a->ctx, n);
    sample(p, n);
    return p;
}

static void *hook_malloc(void *ctx, size_t n)
{
    PyMemAllocatorEx *a = ctx;

    if (n < mean_size && (left -= (intptr_t)n) > 0) {
        return a->malloc(a->ctx, n);
    }
    return malloc_slow(a, n);
}

static __attribute__((noinline)) void *
calloc_slow(PyMemAllocatorEx *a, size_t nelem, size_t elsize, size_t n)
{
    void *p = a->calloc(a->ctx, nelem, elsize);
    sample(p, n);
    return p;
}

static void *hook_calloc(void *ctx, size_t nelem, size_t elsize)
{
    PyMemAllocatorEx *a = ctx;
    size_t n;

    /* an overflowing size is the allocator's to refuse */
    if (__builtin_mul_overflow(nelem, elsize, &n)) {
        return a->calloc(a->ctx, nelem, elsize);
    }
    if (n < mean_size && (left -= (intptr_t)n) > 0) {
        return a->calloc(a->ctx, nelem, elsize);
    }
    return calloc_slow(a, nelem, elsize, n);
}

/* A realloc is a free of the old block and an allocation of the new size
 * (as tracemalloc counts it): here the old block may be a sampled one. */
static __attribute__((noinline)) void *realloc_slow(PyMemAllocatorEx *a,
                                                    void *ptr, size_t n)
{
    void *p = a->realloc(a->ctx, ptr, n);

    /* the old block is gone unless the realloc failed */
    if (p) {
        pp_alloc_freed((uintptr_t)ptr);
    }
    if (n < mean_size && (left -= (intptr_t)n) > 0) {
        return p;
    }
    sample(p, n);
    return p;
}

static __attribute__((noinline)) void *realloc_sampled(PyMemAllocatorEx *a,
                                                       void *ptr, size_t n)
{
    void *p = a->realloc(a->ctx, ptr, n);
    sample(p, n);
    return p;
}

static void *hook_realloc(void *ctx, void *ptr, size_t n)
{
    PyMemAllocatorEx *a = ctx;

    if (ptr && filter[pp_alloc_filter_hash((uintptr_t)ptr)]) {
        return realloc_slow(a, ptr, n);
    }
    if (n < mean_size && (left -= (intptr_t)n) > 0) {
        return a->realloc(a->ctx, ptr, n);
    }
    return realloc_sampled(a, ptr, n);
}

static __attribute__((noinline)) void free_slow(PyMemAllocatorEx *a, void *p)
{
    pp_alloc_freed((uintptr_t)p);
    a->free(a->ctx, p);
}

static void hook_free(void *ctx, void *p)
{
    PyMemAllocatorEx *a = ctx;

    if (!p || !filter[pp_alloc_filter_hash((uintptr_t)p)]) {
        a->free(a->ctx, p);
        return;
    }
    free_slow(a, p);
}

/* ---- installation ---- */

int pp_py_alloc_install(pp_store_t *st, uint64_t mean, const char **why)
{
    PyMemAllocatorEx mem, obj;

    *why = NULL;
    if (installed || !mean) {
        return 0;
    }
    if (!st) {
        *why = "no store";
        return -1;
    }
    if (mean > PP_ALLOC_MEAN_MAX) {
        *why = "sampling mean out of range";
        return -1;
    }
    L = pp_py_layout();
    if (!L || !L->version) {
        *why = "no layout for this Python";
        return -1;
    }
    if (pp_alloc_setup(st, mean) != 0) {
        *why = "out of memory";
        return -1;
    }
    store = st;
    filter = pp_alloc_live->filter;
    mean_size = (size_t)mean;
    pp_alloc_rng_seed(&rng, (uint64_t)getpid() ^ (uint64_t)time(NULL) ^
                                ((uint64_t)(uintptr_t)&rng << 16));
    left = (intptr_t)pp_alloc_gap(&rng, mean);
    memset(&memo, 0, sizeof(memo));
    PyMem_GetAllocator(PYMEM_DOMAIN_MEM, &prev_mem);
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &prev_obj);
    mem.ctx = &prev_mem;
    obj.ctx = &prev_obj;
    mem.malloc = obj.malloc = hook_malloc;
    mem.calloc = obj.calloc = hook_calloc;
    mem.realloc = obj.realloc = hook_realloc;
    mem.free = obj.free = hook_free;
    PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &mem);
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &obj);
    installed = 1;
    return 0;
}

int pp_py_alloc_install_ensure(pp_store_t *st, uint64_t mean, const char **why)
{
    PyGILState_STATE g;
    int rc;

    *why = NULL;
    if (installed || !mean) {
        return 0;
    }
    if (!Py_IsInitialized()) {
        *why = "Python is not initialised";
        return -1;
    }
    g = PyGILState_Ensure();
    rc = pp_py_alloc_install(st, mean, why);
    PyGILState_Release(g);
    return rc;
}

int pp_py_alloc_installed(void)
{
    return installed;
}

void pp_py_alloc_disable(void)
{
    if (installed) {
        pp_alloc_stop();
    }
}
