/* test_pywalk.c: the Python stack reader (pp_py_walk.c and the files
 * beside it, pp_py_int.h) on synthetic memory, without Python.
 *
 * The reader knows CPython only through a pp_py_layout_t, so this test
 * supplies its own: fake pp_py_layout(), pp_py_layout_check() and
 * pp_py_rt_*(), and hand-built "interpreters", "thread states", data-stack
 * chunks, frames, code objects, strs and bytes laid out at the offsets of
 * three made-up layouts shaped like CPython's versions:
 *
 *   3.11-like  the current frame behind a _PyCFrame (ts_frame_indirect),
 *              no frames that run no Python (owner_not_python 3 >
 *              owner_max 2);
 *   3.13-like  tstate->current_frame, C-stack entry frames (owner 3 =
 *              owner_not_python = owner_max);
 *   3.14-like  f_executable tagged in its low bit (code_tag 1), interpreter
 *              frames (3) and C-stack entry frames (4), and immortal
 *              objects whose reference count carries flags in its top 16
 *              bits.
 *
 * The fields are at different offsets in each (the reader must use the
 * layout's, not one it assumed), and every scenario runs on each layout
 * with every reader: GIL-free with guarded copies (pp_py_nogil_init
 * (PP_PY_COPY_GUARDED): memcpy, a fault caught), GIL-free with
 * process_vm_readv on our own pid (PP_PY_COPY_SYSCALL), and GIL
 * (pp_py_walker_init(0): plain copies).  Interned frames are read back
 * from a store (pp_store_frame_view).  Pointers into pages that are
 * really unmapped make torn samples with both GIL-free readers; a
 * SIGSEGV handler installed over the guard's sends the walk back to
 * process_vm_readv.
 *
 * Each test builds its memory in a static arena that is never reused, so
 * the reader's caches (keyed by code object address) never see an old
 * test's objects at a new test's addresses.
 */
#include "unit.h"

#include <signal.h>
#include <sys/mman.h>
#include <pthread.h>
#include <sys/uio.h>

#include "pp_frames.h"
#include "pp_linetable.h"
#include "pp_py.h"
#include "pp_store.h"

#define STORE_SIZE (4ULL << 20)
#define TID 0x7f0012345600UL /* pthread_self() of the sampled thread */
#define NTID 4242            /* its kernel tid */
#define NCODE 16             /* code units of every code object */
#define CHUNK_BYTES 2048
#define GEN 1 /* FRAME_OWNED_BY_GENERATOR, all versions */

/* ---- the fake Python: types, runtime, layouts ---- */

/* 3.11's one GIL (the layouts after it find theirs through the
 * interpreter); laid out per the layout's gil_* fields */
#define GIL_BYTES 208
static uint8_t runtime_gil[GIL_BYTES] __attribute__((aligned(64)));

/* what the code/str/bytes type pointers point at: only compared */
static const char code_type[16] = "code", str_type[16] = "str",
                  bytes_type[16] = "bytes", none_type[16] = "NoneType";

/* str header (all layouts): refcount, type, then our own fields */
#define STR_LENGTH 16  /* int64: code points */
#define STR_KIND 24    /* uint32: 1, 2 or 4 */
#define STR_COMPACT 28 /* uint32: 1 if the characters follow */
#define STR_HEADER 32

static int str_decode(const void *hdr, pp_py_str_t *out)
{
    int64_t len;
    uint32_t kind, compact;

    memcpy(&len, (const char *)hdr + STR_LENGTH, sizeof(len));
    memcpy(&kind, (const char *)hdr + STR_KIND, sizeof(kind));
    memcpy(&compact, (const char *)hdr + STR_COMPACT, sizeof(compact));
    if (!compact || len < 0 || (kind != 1 && kind != 2 && kind != 4)) {
        return -1;
    }
    out->length = (size_t)len;
    out->kind = kind;
    out->data_off = STR_HEADER;
    out->hdr_len = STR_HEADER;
    return 0;
}

/* 3.11 and 3.13: a live object's count is small and positive; a freed
 * block's first word is a free-list pointer or NULL. */
static int live_small(const void *hdr)
{
    uint64_t r;

    memcpy(&r, hdr, sizeof(r));
    return r > 0 && r < ((uint64_t)1 << 32);
}

/* 3.14: a copy of the rule in pp_py_layout.c's live(), which cannot be
 * tested here (it needs the Python headers): immortal objects keep flags
 * in the top 16 bits, which no user-space address has.  Keep the two in
 * step. */
static int live_314(const void *hdr)
{
    uint64_t r;

    memcpy(&r, hdr, sizeof(r));
    if ((r >> 48) != 0 && (r >> 63) == 0 && (uint32_t)r != 0) {
        return 1;
    }
    return r > 0 && r < ((uint64_t)1 << 32);
}

/* a 3.14 immortal count: static-immortal flag bits over 3 << 30 */
#define IMMORTAL_314 (((uint64_t)0x4 << 48) | ((uint64_t)3 << 30))
/* a pymalloc free-list pointer where the count was (a freed block) */
#define FREED_LINK ((uint64_t)0x00007f3a12345670ULL)

static void layout_common(pp_py_layout_t *l)
{
    memset(l, 0, sizeof(*l));
    l->interp_next = 0;
    l->interp_threads_head = 24;
    l->chunk_previous = 0;
    l->chunk_size = 8;
    l->chunk_top = 16;
    l->chunk_data = 24;
    l->owner_generator = GEN;
    l->obj_type = 8;
    l->var_size = 16;
    l->code_type = code_type;
    l->str_type = str_type;
    l->bytes_type = bytes_type;
    l->code_unit = 2;
    l->bytes_data = 32; /* a hash word, then the bytes */
    l->str_header = STR_HEADER;
    l->str_decode = str_decode;
    /* the GIL struct, as in every supported version */
    l->gil_last_holder = 8;
    l->gil_locked = 16;
    l->gil_switch_number = 24;
    l->gil_cond = 32;
}

static void layout_311(pp_py_layout_t *l)
{
    layout_common(l);
    l->version = "3.11";
    l->ts_next = 8;
    l->ts_thread_id = 40;
    l->ts_native_thread_id = 48;
    l->ts_frame = 56; /* tstate->cframe */
    l->ts_frame_indirect = 1;
    l->cframe_frame = 8;
    l->ts_datastack_chunk = 96;
    l->ts_datastack_top = 104;
    l->frame_size = 72;
    l->frame_code = 32;
    l->frame_previous = 48;
    l->frame_instr = 56;
    l->frame_owner = 69;
    l->owner_not_python = 3;
    l->owner_max = 2;
    l->code_linetable = 24;
    l->code_filename = 32;
    l->code_qualname = 40;
    l->code_firstlineno = 48;
    l->code_firsttraceable = 52;
    l->code_header = 64;
    l->live = live_small;
    l->runtime_gil = runtime_gil; /* one GIL, in the runtime */
}

static void layout_313(pp_py_layout_t *l)
{
    layout_common(l);
    l->version = "3.13";
    l->ts_next = 8;
    l->ts_frame = 56; /* tstate->current_frame */
    l->ts_thread_id = 64;
    l->ts_native_thread_id = 72;
    l->ts_datastack_chunk = 88;
    l->ts_datastack_top = 96;
    l->frame_size = 72;
    l->frame_code = 0;
    l->frame_previous = 8;
    l->frame_instr = 56;
    l->frame_owner = 70;
    l->owner_not_python = 3;
    l->owner_max = 3;
    l->code_qualname = 24;
    l->code_filename = 32;
    l->code_linetable = 40;
    l->code_firstlineno = 48;
    l->code_firsttraceable = 56;
    l->code_header = 72;
    l->live = live_small;
    l->interp_gil = 40; /* each interpreter points to its GIL */
}

static void layout_314(pp_py_layout_t *l)
{
    layout_313(l);
    l->version = "3.14";
    l->frame_size = 80;
    l->frame_owner = 74;
    l->code_tag = 1;
    l->owner_not_python = 3; /* FRAME_OWNED_BY_INTERPRETER */
    l->owner_max = 4;        /* FRAME_OWNED_BY_CSTACK */
    l->code_firstlineno = 60;
    l->code_firsttraceable = 64;
    l->code_header = 80;
    l->live = live_314;
}

typedef void (*layout_fn)(pp_py_layout_t *);
static const layout_fn versions[] = {layout_311, layout_313, layout_314};
#define NVERSIONS ((int)(sizeof(versions) / sizeof(versions[0])))

static pp_py_layout_t cur_layout; /* what pp_py_layout() hands out */
static int layout_check_fails;
static int head_locks, head_unlocks;
static const void *first_interp;
static const void *unshared_interp; /* has its own GIL */

const pp_py_layout_t *pp_py_layout(void)
{
    return &cur_layout;
}

int pp_py_layout_check(const char **why)
{
    if (layout_check_fails) {
        *why = "test: the interpreter describes itself otherwise";
        return -1;
    }
    return 0;
}

int pp_py_layout_gil_check(const char **why)
{
    (void)why;
    return 0;
}

void pp_py_rt_head_lock(void)
{
    head_locks++;
}

void pp_py_rt_head_unlock(void)
{
    head_unlocks++;
}

const void *pp_py_rt_interpreters(void)
{
    /* called under the lock only */
    assert_int_equal(head_locks, head_unlocks + 1);
    return first_interp;
}

unsigned long pp_py_rt_sampler_ident(void)
{
    return 0;
}

int pp_py_rt_shares_gil(const void *interp)
{
    return interp != unshared_interp;
}

/* ---- synthetic memory ---- */

static uint8_t arena[16 << 20] __attribute__((aligned(64)));
static size_t arena_used;

static void *arena_alloc(size_t n)
{
    void *p;

    n = (n + 63) & ~(size_t)63;
    if (arena_used + n > sizeof(arena)) {
        fail_msg("test arena full");
    }
    p = arena + arena_used;
    arena_used += n;
    return p;
}

static void put_ptr(void *base, size_t off, const void *p)
{
    memcpy((char *)base + off, &p, sizeof(p));
}

static void put_u64(void *base, size_t off, uint64_t v)
{
    memcpy((char *)base + off, &v, sizeof(v));
}

static void put_int(void *base, size_t off, int v)
{
    memcpy((char *)base + off, &v, sizeof(v));
}

static void *get_ptr(const void *base, size_t off)
{
    void *p;
    memcpy(&p, (const char *)base + off, sizeof(p));
    return p;
}

enum where { IN_CHUNK, IN_OLD_CHUNK, ON_HEAP };

/* One interpreter with one thread state, its current data-stack chunk
 * and an older one, laid out per cur_layout. */
typedef struct world {
    const pp_py_layout_t *L;
    uint8_t *interp, *ts, *cframe;
    uint8_t *chunk, *old_chunk;
    size_t fill, old_fill; /* bytes of each chunk's data in use */
    uint8_t *top;          /* the innermost frame */
    uint64_t refcnt;       /* of the objects made from now on */
    uintptr_t tag;         /* or'ed into f_code / f_executable */
} world_t;

static void set_top(world_t *w, uint8_t *f)
{
    w->top = f;
    if (w->L->ts_frame_indirect) {
        put_ptr(w->cframe, w->L->cframe_frame, f);
    }
    else {
        put_ptr(w->ts, w->L->ts_frame, f);
    }
}

static uint8_t *thread_state(world_t *w, unsigned long tid, unsigned long ntid)
{
    const pp_py_layout_t *L = w->L;
    uint8_t *ts = arena_alloc(128), *chunk = arena_alloc(CHUNK_BYTES);

    put_u64(ts, L->ts_thread_id, tid);
    put_u64(ts, L->ts_native_thread_id, ntid);
    put_ptr(ts, L->ts_datastack_chunk, chunk);
    put_ptr(ts, L->ts_datastack_top, chunk + L->chunk_data);
    put_u64(chunk, L->chunk_size, CHUNK_BYTES);
    if (L->ts_frame_indirect) {
        uint8_t *cf = arena_alloc(32);
        put_ptr(ts, L->ts_frame, cf);
    }
    return ts;
}

static void world_new(world_t *w, layout_fn version)
{
    const pp_py_layout_t *L = &cur_layout;

    version(&cur_layout);
    memset(w, 0, sizeof(*w));
    w->L = L;
    w->refcnt = L->code_tag ? IMMORTAL_314 : 1;
    w->tag = L->code_tag;
    w->interp = arena_alloc(64);
    w->ts = thread_state(w, TID, NTID);
    w->cframe = L->ts_frame_indirect ? get_ptr(w->ts, L->ts_frame) : NULL;
    w->chunk = get_ptr(w->ts, L->ts_datastack_chunk);
    w->old_chunk = arena_alloc(CHUNK_BYTES);
    put_u64(w->old_chunk, L->chunk_size, CHUNK_BYTES);
    put_ptr(w->chunk, L->chunk_previous, w->old_chunk);
    put_ptr(w->interp, L->interp_threads_head, w->ts);
    first_interp = w->interp;
    unshared_interp = NULL;
}

static uint8_t *object(world_t *w, size_t size, const void *type)
{
    uint8_t *o = arena_alloc(size);

    put_u64(o, 0, w->refcnt);
    put_ptr(o, w->L->obj_type, type);
    return o;
}

/* a str of n code points of `kind` bytes each */
static uint8_t *str_kind(world_t *w, const void *chars, size_t n, unsigned kind)
{
    uint8_t *s = object(w, STR_HEADER + n * kind + 4, str_type);

    put_u64(s, STR_LENGTH, n);
    memcpy(s + STR_KIND, &kind, 4);
    put_int(s, STR_COMPACT, 1);
    memcpy(s + STR_HEADER, chars, n * kind);
    return s;
}

static uint8_t *str(world_t *w, const char *ascii)
{
    return str_kind(w, ascii, strlen(ascii), 1);
}

/* The location table of every code object (CPython 3.11+ format,
 * Objects/locations.md): two entries of code 13 (no column), 8 code units
 * each; line deltas +1 and +2 (signed varints 2 and 4).  Units 0-7 are on
 * firstlineno + 1, units 8-15 on firstlineno + 3. */
static const uint8_t linetable[] = {0x80 | (13 << 3) | 7, 0x02,
                                    0x80 | (13 << 3) | 7, 0x04};

static int line_of(int firstlineno, int unit)
{
    return unit < 8 ? firstlineno + 1 : firstlineno + 3;
}

static uint8_t *bytes(world_t *w, const uint8_t *data, size_t n)
{
    uint8_t *b = object(w, w->L->bytes_data + n + 1, bytes_type);

    put_u64(b, w->L->var_size, n);
    memcpy(b + w->L->bytes_data, data, n);
    return b;
}

static uint8_t *code_named(world_t *w, uint8_t *qualname, uint8_t *filename,
                           int firstlineno)
{
    const pp_py_layout_t *L = w->L;
    uint8_t *c = object(w, L->code_header + NCODE * L->code_unit, code_type);
    int i;

    put_u64(c, L->var_size, NCODE);
    put_ptr(c, L->code_qualname, qualname);
    put_ptr(c, L->code_filename, filename);
    put_ptr(c, L->code_linetable, bytes(w, linetable, sizeof(linetable)));
    put_int(c, L->code_firstlineno, firstlineno);
    put_int(c, L->code_firsttraceable, 1);
    for (i = 0; i < NCODE * (int)L->code_unit; i++) {
        c[L->code_header + i] = (uint8_t)(0x97 + i); /* "bytecode" */
    }
    return c;
}

static uint8_t *code(world_t *w, const char *func, const char *file,
                     int firstlineno)
{
    return code_named(w, str(w, func), str(w, file), firstlineno);
}

static const void *unit_ptr(world_t *w, const uint8_t *c, int unit)
{
    return c + w->L->code_header + (ptrdiff_t)unit * (ptrdiff_t)w->L->code_unit;
}

/* Push a frame running code object c at code unit `unit` (callers first,
 * as the interpreter does); it becomes the thread's current frame. */
static uint8_t *push(world_t *w, enum where where, const void *c, int unit,
                     int owner)
{
    const pp_py_layout_t *L = w->L;
    size_t stride = L->frame_size + 2 * sizeof(void *); /* + two locals */
    uint8_t *f;

    if (where == IN_CHUNK) {
        f = w->chunk + L->chunk_data + w->fill;
        w->fill += stride;
        assert_true(L->chunk_data + w->fill <= CHUNK_BYTES);
        put_ptr(w->ts, L->ts_datastack_top, w->chunk + L->chunk_data + w->fill);
    }
    else if (where == IN_OLD_CHUNK) {
        f = w->old_chunk + L->chunk_data + w->old_fill;
        w->old_fill += stride;
        assert_true(L->chunk_data + w->old_fill <= CHUNK_BYTES);
        put_u64(w->old_chunk, L->chunk_top, w->old_fill / sizeof(void *));
    }
    else {
        f = arena_alloc(stride); /* a generator's frame */
    }
    put_ptr(f, L->frame_code, (const void *)((uintptr_t)c | w->tag));
    put_ptr(f, L->frame_previous, w->top);
    put_ptr(f, L->frame_instr, unit_ptr(w, c, unit));
    f[L->frame_owner] = (uint8_t)owner;
    set_top(w, f);
    return f;
}

/* The usual 3-frame chain: main (line 11) -> handler (line 23) -> leaf
 * (line 31), all in the current chunk. */
typedef struct chain3 {
    uint8_t *code[3];  /* root first */
    uint8_t *frame[3]; /* root first */
} chain3_t;

static void chain3(world_t *w, chain3_t *c)
{
    c->code[0] = code(w, "main", "/srv/app.py", 10);
    c->code[1] = code(w, "Handler.get", "/srv/views.py", 20);
    c->code[2] = code(w, "leaf", "/srv/util.py", 30);
    c->frame[0] = push(w, IN_CHUNK, c->code[0], 3, 0);  /* line 11 */
    c->frame[1] = push(w, IN_CHUNK, c->code[1], 12, 0); /* line 23 */
    c->frame[2] = push(w, IN_CHUNK, c->code[2], 5, 0);  /* line 31 */
}

/* ---- sampling and checks ---- */

typedef struct fix {
    pp_store_t *st;
    pp_walk_target_t t;
} fix_t;

static int setup(void **state)
{
    const char *err = NULL;
    fix_t *f = calloc(1, sizeof(*f));

    if (!f || !(f->st = pp_store_create(STORE_SIZE, 8, 16, &err))) {
        free(f);
        return -1;
    }
    layout_check_fails = 0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fix_t *f = *state;
    pp_store_destroy(f->st);
    free(f);
    return 0;
}

static const char *cur_mode = "";

/* Walk once for thread (tid, ntid) with the reader of the mode; the
 * result is f->t. */
/* The readers, by the `g` the tests loop over: 0 GIL, 1 GIL-free with
 * process_vm_readv, 2 GIL-free with guarded copies. */
enum { MODE_GIL = 0, MODE_SYSCALL = 1, MODE_GUARDED = 2 };

static pp_walk_target_t *sample_as(fix_t *f, int gil_free, unsigned long tid,
                                   pid_t ntid, uint32_t max_depth)
{
    pp_walk_target_t *t = &f->t;

    cur_mode = gil_free == MODE_GUARDED ? "GIL-free, guarded"
               : gil_free               ? "GIL-free, process_vm_readv"
                                        : "GIL";
    if (gil_free) {
        if (pp_py_nogil_init(gil_free == MODE_GUARDED
                                 ? PP_PY_COPY_GUARDED
                                 : PP_PY_COPY_SYSCALL) != 0) {
            fail_msg("pp_py_nogil_init: this process cannot read itself "
                     "with process_vm_readv (seccomp?)");
        }
        assert_int_equal(pp_py_nogil_copy(), gil_free == MODE_GUARDED
                                                 ? PP_PY_COPY_GUARDED
                                                 : PP_PY_COPY_SYSCALL);
    }
    else {
        assert_int_equal(pp_py_walker_init(0), 0);
    }
    memset(t, 0, sizeof(*t));
    t->thread_ident = tid;
    t->native_tid = ntid;
    t->max_depth = max_depth;
    t->found = t->torn = t->truncated = 7; /* must be reset */
    t->depth = 99;
    head_locks = head_unlocks = 0;
    if (gil_free) {
        pp_py_walk_nogil(f->st, t, 1);
    }
    else {
        pp_py_walk(f->st, t, 1);
    }
    assert_int_equal(head_locks, 1);
    assert_int_equal(head_unlocks, 1);
    return t;
}

static pp_walk_target_t *sample(fix_t *f, int gil_free)
{
    return sample_as(f, gil_free, TID, 0, 0);
}

#define check_frame(f, t, i, func_, file_, line_) \
    check_frame_at(f, t, i, func_, file_, line_, __FILE__, __LINE__)

static void check_frame_at(fix_t *f, const pp_walk_target_t *t, uint32_t i,
                           const char *func, const char *file, uint32_t line,
                           const char *src, int srcline)
{
    pp_frame_view_t fv;

    if (i >= t->depth) {
        fail_msg("%s:%d: (%s, %s) frame %u of a stack %u deep", src, srcline,
                 cur_layout.version, cur_mode, i, t->depth);
    }
    if (!pp_store_frame_view(f->st, t->frames[i], &fv)) {
        fail_msg("%s:%d: (%s, %s) frame %u: id %u not in the store", src,
                 srcline, cur_layout.version, cur_mode, i, t->frames[i]);
    }
    if (strcmp(fv.function, func) != 0 || strcmp(fv.file, file) != 0 ||
        fv.line != line) {
        fail_msg("%s:%d: (%s, %s) frame %u is %s (%s:%u), want %s (%s:%u)", src,
                 srcline, cur_layout.version, cur_mode, i, fv.function, fv.file,
                 fv.line, func, file, line);
    }
}

#define check_found(t, depth_)                                               \
    do {                                                                     \
        if (!(t)->found || (t)->torn || (t)->depth != (depth_)) {            \
            fail_msg(                                                        \
                "(%s, %s) found %d torn %d depth %u, want found, not torn, " \
                "depth %u",                                                  \
                cur_layout.version, cur_mode, (t)->found, (t)->torn,         \
                (t)->depth, (unsigned)(depth_));                             \
        }                                                                    \
    } while (0)

/* A torn sample: marked torn (the sampler counts and drops it), nothing
 * found.  (t->depth is not checked: a chain that fails half-way through
 * decoding leaves the frames it got to in t->frames; the sampler looks at
 * torn first and drops them.) */
#define check_torn(t_)                                                     \
    do {                                                                   \
        const pp_walk_target_t *tt_ = (t_);                                \
        if (tt_->found || !tt_->torn) {                                    \
            fail_msg("(%s, %s) found %d torn %d; want one torn sample",    \
                     cur_layout.version, cur_mode, tt_->found, tt_->torn); \
        }                                                                  \
    } while (0)

static void check_chain3(fix_t *f, const pp_walk_target_t *t, uint32_t depth)
{
    check_frame(f, t, 0, "leaf", "/srv/util.py", 31);
    check_frame(f, t, 1, "Handler.get", "/srv/views.py", 23);
    if (depth > 2) {
        check_frame(f, t, 2, "main", "/srv/app.py", 11);
    }
}

/* every layout, every reader */
#define FOR_EACH(v, g)              \
    for (v = 0; v < NVERSIONS; v++) \
        for (g = MODE_GUARDED; g >= MODE_GIL; g--)

/* Neither found nor torn: no Python frame to read, not a failed copy. */
#define check_not_found(t_)                                                \
    do {                                                                   \
        const pp_walk_target_t *tn_ = (t_);                                \
        if (tn_->found || tn_->torn) {                                     \
            fail_msg("(%s, %s) found %d torn %d; want neither",            \
                     cur_layout.version, cur_mode, tn_->found, tn_->torn); \
        }                                                                  \
    } while (0)

/* The chain's leaf and main, its middle frame left out. */
static void check_leaf_main(fix_t *f, const pp_walk_target_t *t)
{
    check_frame(f, t, 0, "leaf", "/srv/util.py", 31);
    check_frame(f, t, 1, "main", "/srv/app.py", 11);
}

/* The layout of the world for_each_world made last (for a check that
 * makes a world of its own as well). */
static void (*cur_version)(pp_py_layout_t *);

/* check(f, w, g) on a fresh world of every layout, read by every
 * reader. */
typedef void world_check_fn(fix_t *f, world_t *w, int g);

static void for_each_world(fix_t *f, world_check_fn *check)
{
    int v, g;

    FOR_EACH(v, g)
    {
        world_t w;

        cur_version = versions[v];
        world_new(&w, versions[v]);
        check(f, &w, g);
    }
}

/* The same with a 3-frame chain (chain3) in each world. */
typedef void chain3_check_fn(fix_t *f, world_t *w, chain3_t *c, int g);

static chain3_check_fn *cur_chain3_check;

static void with_chain3(fix_t *f, world_t *w, int g)
{
    chain3_t c;

    chain3(w, &c);
    cur_chain3_check(f, w, &c, g);
}

static void for_each_chain3(fix_t *f, chain3_check_fn *check)
{
    cur_chain3_check = check;
    for_each_world(f, with_chain3);
}

/* ---- tests ---- */

/* The line table really says what the tests expect of it. */
static void test_linetable_fixture(void **state)
{
    int u;
    (void)state;

    for (u = 0; u < NCODE; u++) {
        assert_int_equal(pp_linetable_line(linetable, sizeof(linetable), 30, u),
                         line_of(30, u));
    }
    assert_int_equal(pp_linetable_line(linetable, sizeof(linetable), 30, u),
                     -1);
}

/* 1. A 3-frame chain decodes leaf first with names, files and lines; the
 * second walk (from the caches) gives the same frame ids. */
static void three_frames(fix_t *f, world_t *w, chain3_t *c, int g)
{
    pp_walk_target_t *t = sample(f, g);
    uint32_t ids[3];

    (void)c;
    check_found(t, 3);
    assert_int_equal(t->truncated, 0);
    assert_ptr_equal(t->interp, w->interp);
    check_chain3(f, t, 3);
    memcpy(ids, t->frames, sizeof(ids));
    t = sample(f, g);
    check_found(t, 3);
    assert_memory_equal(t->frames, ids, sizeof(ids));
    assert_int_equal(t->torn, 0);
}

static void test_three_frames_leaf_first(void **state)
{
    for_each_chain3(*state, three_frames);
}

/* 2. Frames that run no Python (C-stack entry frames, the interpreter's
 * own: owner >= owner_not_python) are left out, not read (their code
 * pointer is None there) and do not make the sample torn.  3.11 has none:
 * owner 3 is beyond owner_max there, so torn. */
static void test_entry_frame_skipped(void **state)
{
    fix_t *f = *state;
    int v, g;

    FOR_EACH(v, g)
    {
        world_t w;
        chain3_t c;
        pp_walk_target_t *t;
        uint8_t *none;
        int owner;

        for (owner = 3; owner <= 4; owner++) {
            world_new(&w, versions[v]);
            if (owner > w.L->owner_max && owner != 3) {
                continue;
            }
            none = object(&w, 64, none_type);
            c.code[0] = code(&w, "main", "/srv/app.py", 10);
            c.code[2] = code(&w, "leaf", "/srv/util.py", 30);
            push(&w, IN_CHUNK, c.code[0], 3, 0);
            push(&w, IN_CHUNK, none, 0, owner);
            push(&w, IN_CHUNK, c.code[2], 5, 0);
            t = sample(f, g);
            if (owner > w.L->owner_max) { /* 3.11 */
                check_torn(t);
                continue;
            }
            check_found(t, 2);
            check_leaf_main(f, t);
            assert_int_equal(t->torn, 0);
        }
    }
}

/* 3. 3.14's f_executable is a tagged stack reference: with the layout's
 * code_tag the frames decode; the same memory read with code_tag 0 (the
 * mask not applied) is a torn sample, every time. */
/* check(f, w, c, g) on a fresh 3.14 world with a 3-frame chain, read by
 * every reader. */
static void for_each_reader_314(fix_t *f, chain3_check_fn *check)
{
    int g;

    for (g = MODE_GUARDED; g >= MODE_GIL; g--) {
        world_t w;
        chain3_t c;

        world_new(&w, layout_314);
        chain3(&w, &c);
        check(f, &w, &c, g);
    }
}

static void tagged_code(fix_t *f, world_t *w, chain3_t *c, int g)
{
    pp_walk_target_t *t;

    assert_true((uintptr_t)get_ptr(c->frame[1], w->L->frame_code) & 1);
    t = sample(f, g);
    check_found(t, 3);
    check_chain3(f, t, 3);
    assert_int_equal(t->torn, 0);

    cur_layout.code_tag = 0;
    check_torn(sample(f, g));
}

static void test_tagged_code_pointer(void **state)
{
    for_each_reader_314(*state, tagged_code);
}

/* 3.14's immortal objects: a count with flags in its top 16 bits is live
 * under the 3.14 rule (every object of the 3.14 world has one), and the
 * same memory read with the 3.13 rule is torn: the reader asks the
 * layout, it has no rule of its own. */
static void immortal_314(fix_t *f, world_t *w, chain3_t *c, int g)
{
    uint64_t r;

    (void)w;
    memcpy(&r, c->code[0], sizeof(r));
    assert_true(r == IMMORTAL_314 && r >= ((uint64_t)1 << 32));
    check_found(sample(f, g), 3);

    cur_layout.live = live_small;
    check_torn(sample(f, g));
}

static void test_immortal_refcount_314(void **state)
{
    for_each_reader_314(*state, immortal_314);
}

/* Breaks a fresh 3-frame chain the k-th way a test knows. */
typedef void break_fn(world_t *w, chain3_t *c, int k);

/* For every layout and reader, each of the n ways: a fresh 3-frame chain
 * broken that way (after one good walk, with `cached`: its frames are in
 * the caches then) is one torn sample, nothing found. */
static void check_torn_ways(fix_t *f, int n, int cached, break_fn *breaks,
                            const char *what)
{
    int v, g, k;

    FOR_EACH(v, g)
    {
        for (k = 0; k < n; k++) {
            world_t w;
            chain3_t c;
            const pp_walk_target_t *t;

            world_new(&w, versions[v]);
            chain3(&w, &c);
            if (cached) {
                check_found(sample(f, g), 3);
            }
            breaks(&w, &c, k);
            t = sample(f, g);
            if (t->found || !t->torn) {
                fail_msg("(%s, %s) %s, way %d: found %d depth %u torn %d; "
                         "want torn",
                         cur_layout.version, cur_mode, what, k, t->found,
                         t->depth, t->torn);
            }
        }
    }
}

/* 4. An owner beyond owner_max (or negative: a signed char) is garbage: a
 * torn copy. */
static void break_owner(world_t *w, chain3_t *c, int k)
{
    c->frame[1][w->L->frame_owner] =
        (uint8_t)(k == 0 ? w->L->owner_max + 1 : 0x80);
}

static void test_bad_owner_torn(void **state)
{
    check_torn_ways(*state, 2, 0, break_owner, "owner out of range");
}

/* 5. A code object that is not a live one: a freed block (count 0, or a
 * free-list pointer where the count was), a block reused by an object of
 * another type, a name that is not a live str.  Also when the code object
 * was read fine before (it is in the caches). */
static void break_code(world_t *w, chain3_t *c, int k)
{
    switch (k) {
    case 0:
        put_u64(c->code[1], 0, 0);
        break;
    case 1:
        put_u64(c->code[1], 0, FREED_LINK);
        break;
    case 2:
        put_ptr(c->code[1], w->L->obj_type, str_type);
        break;
    case 3: /* a name freed; a fresh code object: not cached */
        c->code[1] = code(w, "Handler.post", "/srv/views.py", 40);
        put_ptr(c->frame[1], w->L->frame_code,
                (const void *)((uintptr_t)c->code[1] | w->tag));
        put_ptr(c->frame[1], w->L->frame_instr, unit_ptr(w, c->code[1], 12));
        put_u64(get_ptr(c->code[1], w->L->code_qualname), 0, 0);
        break;
    case 4: /* a name that is no str */
        c->code[1] = code(w, "Handler.put", "/srv/views.py", 50);
        put_ptr(c->frame[1], w->L->frame_code,
                (const void *)((uintptr_t)c->code[1] | w->tag));
        put_ptr(c->frame[1], w->L->frame_instr, unit_ptr(w, c->code[1], 12));
        put_ptr(c->code[1], w->L->code_filename, object(w, 64, none_type));
        break;
    }
}

static void test_freed_code_torn(void **state)
{
    check_torn_ways(*state, 5, 1, break_code, "code object not live");
}

/* 6. An instruction pointer outside its code object's code (past its end,
 * or far before its start) is a torn copy, not a frame to charge.  Before
 * its start used to pass for a frame not started yet (unit <
 * firsttraceable) and the frame was silently left out of a sample counted
 * as good. */
static const int outside_units[] = {NCODE + 1, NCODE + 1000, -2, -1000};

static void break_instr(world_t *w, chain3_t *c, int k)
{
    put_ptr(c->frame[1], w->L->frame_instr,
            unit_ptr(w, c->code[1], outside_units[k]));
}

static void test_instr_outside_code_torn(void **state)
{
    check_torn_ways(*state,
                    (int)(sizeof(outside_units) / sizeof(outside_units[0])), 0,
                    break_instr, "instruction outside its code");
}

/* 6b. _co_firsttraceable comes from the same copy as the rest of the code
 * object's header: a garbage one (larger than the code) must not turn an
 * instruction outside the code into "a frame not started yet", which left
 * the frame out of a sample counted as good.  The instruction's range is
 * checked first, and a code object whose firsttraceable lies outside its
 * code is no code object to trust.  (firsttraceable, unit): past the
 * code; inside it. */
static const int garbage_first[][2] = {
    {1 << 20, NCODE + 5}, {1 << 20, NCODE + 1000}, {NCODE + 1, 3}, {-5, 3}};

static void break_first(world_t *w, chain3_t *c, int k)
{
    put_int(c->code[1], w->L->code_firsttraceable, garbage_first[k][0]);
    put_ptr(c->frame[1], w->L->frame_instr,
            unit_ptr(w, c->code[1], garbage_first[k][1]));
}

static void test_garbage_firsttraceable_torn(void **state)
{
    check_torn_ways(*state,
                    (int)(sizeof(garbage_first) / sizeof(garbage_first[0])), 0,
                    break_first, "garbage firsttraceable");
}

/* 7. A frame not started yet (_PyFrame_IsIncomplete: owned by the thread,
 * instruction before _co_firsttraceable) is left out; a generator's frame
 * at the same instruction is not (generators are never incomplete), and
 * it lies outside every data-stack chunk: read on its own.  A thread whose
 * every frame is incomplete is not in Python code yet: not found, not
 * torn. */
static void incomplete_frame(fix_t *f, world_t *w, chain3_t *c, int g)
{
    pp_walk_target_t *t;

    put_int(c->code[1], w->L->code_firsttraceable, 2);
    put_ptr(c->frame[1], w->L->frame_instr, unit_ptr(w, c->code[1], 1));
    t = sample(f, g);
    check_found(t, 2);
    check_leaf_main(f, t);

    /* the same code in a generator's frame, on the heap */
    world_new(w, cur_version);
    c->code[0] = code(w, "main", "/srv/app.py", 10);
    c->code[1] = code(w, "gen", "/srv/gen.py", 60);
    c->code[2] = code(w, "leaf", "/srv/util.py", 30);
    put_int(c->code[1], w->L->code_firsttraceable, 2);
    push(w, IN_CHUNK, c->code[0], 3, 0);
    push(w, ON_HEAP, c->code[1], 1, GEN);
    push(w, IN_CHUNK, c->code[2], 5, 0);
    t = sample(f, g);
    check_found(t, 3);
    check_frame(f, t, 0, "leaf", "/srv/util.py", 31);
    check_frame(f, t, 1, "gen", "/srv/gen.py", 61);
    check_frame(f, t, 2, "main", "/srv/app.py", 11);

    /* nothing started: unit -1 is 3.11's prev_instr before the first
     * instruction */
    world_new(w, cur_version);
    c->code[0] = code(w, "main", "/srv/app.py", 10);
    push(w, IN_CHUNK, c->code[0], -1, 0);
    t = sample(f, g);
    check_not_found(t);
    assert_int_equal(t->depth, 0);
}

static void test_incomplete_frame_skipped(void **state)
{
    for_each_chain3(*state, incomplete_frame);
}

/* 8. A target whose ids match no thread state is not found and not torn;
 * the kernel tid alone finds it; a thread state without a frame (it left
 * Python) is not found either. */
static void thread_matching(fix_t *f, world_t *w, chain3_t *c, int g)
{
    pp_walk_target_t *t = sample_as(f, g, TID + 1, NTID + 1, 0);

    (void)c;
    check_not_found(t);
    assert_int_equal(t->depth, 0);
    assert_int_equal(t->truncated, 0);

    t = sample_as(f, g, TID + 1, NTID, 0);
    check_found(t, 3);
    check_chain3(f, t, 3);

    set_top(w, NULL);
    check_not_found(sample(f, g));
}

static void test_thread_matching(void **state)
{
    for_each_chain3(*state, thread_matching);
}

/* 9. max_depth 2 on a 3-frame chain: the two innermost frames, truncated. */
static void truncated(fix_t *f, world_t *w, chain3_t *c, int g)
{
    pp_walk_target_t *t = sample_as(f, g, TID, 0, 2);

    (void)w;
    (void)c;
    check_found(t, 2);
    assert_int_equal(t->truncated, 1);
    check_chain3(f, t, 2);

    t = sample_as(f, g, TID, 0, 3);
    check_found(t, 3);
    assert_int_equal(t->truncated, 0);
}

static void test_truncated(void **state)
{
    for_each_chain3(*state, truncated);
}

/* A chain of `n` frames, each running a code object of its own ("g0" at
 * the root, line 1001 .. "g<n-1>" at the leaf), on the heap as a
 * generator's frames are: deep recursion through generated functions. */
static void distinct_chain(world_t *w, int n)
{
    uint8_t *file = str(w, "/srv/generated.py");
    char name[16];
    int k;

    for (k = 0; k < n; k++) {
        snprintf(name, sizeof(name), "g%d", k);
        push(w, ON_HEAP, code_named(w, str(w, name), file, 1000 + k), 3, 0);
    }
}

static void check_distinct_frames(fix_t *f, const pp_walk_target_t *t, int n)
{
    char name[16];
    uint32_t i;

    for (i = 0; i < t->depth; i++) {
        snprintf(name, sizeof(name), "g%d", n - 1 - (int)i);
        check_frame(f, t, i, name, "/srv/generated.py",
                    (uint32_t)(1000 + n - 1 - (int)i + 1));
    }
}

/* More distinct code objects than one batched read used to hold (512):
 * such a stack was dropped as torn on every sample, however it was read.
 * It is read whole; deeper than PP_DEPTH_LIMIT it is cut at the limit
 * like any other deep stack, keeping the leaf side. */
/* A walk of a fresh world with distinct_chain(n): depth frames found,
 * cut or not. */
static void distinct_walk(fix_t *f, world_t *w, int g, int n, uint32_t depth,
                          int truncated)
{
    pp_walk_target_t *t;

    world_new(w, cur_version);
    distinct_chain(w, n);
    t = sample(f, g);
    check_found(t, depth);
    assert_int_equal(t->truncated, truncated);
    check_distinct_frames(f, t, n);
    assert_int_equal(t->torn, 0);
}

static void distinct_codes(fix_t *f, world_t *w, int g)
{
    distinct_walk(f, w, g, 700, 700, 0);
    distinct_walk(f, w, g, PP_DEPTH_LIMIT + 100, PP_DEPTH_LIMIT, 1);
}

static void test_many_distinct_code_objects(void **state)
{
    for_each_world(*state, distinct_codes);
}

/* Frames spread over two data-stack chunks (the older one copied when the
 * walk reaches it) and a generator's frame on the heap in between. */
static void across_chunks(fix_t *f, world_t *w, int g)
{
    uint8_t *c0 = code(w, "main", "/srv/app.py", 10);
    uint8_t *c1 = code(w, "run", "/srv/app.py", 100);
    uint8_t *c2 = code(w, "agen", "/srv/gen.py", 200);
    uint8_t *c3 = code(w, "leaf", "/srv/util.py", 30);
    pp_walk_target_t *t;

    push(w, IN_OLD_CHUNK, c0, 3, 0);
    push(w, IN_OLD_CHUNK, c1, 8, 0);
    push(w, ON_HEAP, c2, 5, GEN);
    push(w, IN_CHUNK, c3, 5, 0);
    t = sample(f, g);
    check_found(t, 4);
    check_frame(f, t, 0, "leaf", "/srv/util.py", 31);
    check_frame(f, t, 1, "agen", "/srv/gen.py", 201);
    check_frame(f, t, 2, "run", "/srv/app.py", 103);
    check_frame(f, t, 3, "main", "/srv/app.py", 11);
}

static void test_frames_across_chunks_and_heap(void **state)
{
    for_each_world(*state, across_chunks);
}

/* Within a chunk callers lie below callees: a chain that points to itself
 * or upward (a torn copy, or a cycle) is torn, not walked forever. */
static void break_chain(world_t *w, chain3_t *c, int k)
{
    put_ptr(c->frame[1], w->L->frame_previous,
            k == 0 ? c->frame[1] : c->frame[2]);
}

static void test_chain_cycle_torn(void **state)
{
    check_torn_ways(*state, 2, 0, break_chain, "chain cycle");
}

/* Names of every PEP 393 kind come out as UTF-8; a name longer than
 * PP_FRAME_TEXT_MAX is cut. */
static void names_utf8(fix_t *f, world_t *w, int g)
{
    static const uint16_t ucs2[] = {'f', 'a', 0xe7, 'a', 'd', 'e', '_', 0x3bb};
    static const uint32_t ucs4[] = {'/', 0x1f40d, '.', 'p', 'y'};
    char *longname = malloc(3000);
    pp_walk_target_t *t;
    pp_frame_view_t fv;

    assert_non_null(longname);
    memset(longname, 'n', 2999);
    longname[2999] = '\0';
    push(w, IN_CHUNK,
         code_named(w, str_kind(w, ucs2, 8, 2), str_kind(w, ucs4, 5, 4), 70), 1,
         0);
    push(w, IN_CHUNK, code(w, longname, "/srv/long.py", 80), 1, 0);
    free(longname);
    t = sample(f, g);
    check_found(t, 2);
    check_frame(f, t, 1,
                "fa\xc3\xa7"
                "ade_\xce\xbb",
                "/\xf0\x9f\x90\x8d.py", 71);
    assert_true(pp_store_frame_view(f->st, t->frames[0], &fv));
    assert_int_equal(strlen(fv.function), PP_FRAME_TEXT_MAX);
    assert_int_equal(fv.line, 81);
}

static void test_names_utf8(void **state)
{
    for_each_world(*state, names_utf8);
}

/* Several interpreters: the GIL reader copies only those that share the
 * GIL it holds; the GIL-free one reads them all. */
static void interpreters(fix_t *f, world_t *w, chain3_t *c, int g)
{
    uint8_t *sub = w->interp, *main_interp = arena_alloc(64);
    uint8_t *main_ts = thread_state(w, TID + 5, NTID + 5);
    pp_walk_target_t *t;

    (void)c;
    /* a main interpreter first, with another thread (no frame) */
    put_ptr(main_interp, w->L->interp_threads_head, main_ts);
    put_ptr(main_interp, w->L->interp_next, sub);
    first_interp = main_interp;
    t = sample(f, g);
    check_found(t, 3);
    assert_ptr_equal(t->interp, sub);

    unshared_interp = sub;
    t = sample(f, g);
    if (g) {
        check_found(t, 3);
        check_chain3(f, t, 3);
    }
    else {
        check_not_found(t);
    }
}

static void test_interpreters(void **state)
{
    for_each_chain3(*state, interpreters);
}

/* A thread that has run in two interpreters has a thread state in each.
 * From 3.14 the idle one is not empty: its current frame is the thread
 * state's base frame, owned by the interpreter, with nothing above it.
 * That one (found first: the newer interpreter comes first) holds no
 * Python frame, so the walk must look on and find the stack where the
 * thread runs now; stopping at the first thread state gave requests in a
 * preloaded mod_wsgi application group no samples at all (3.15). */
static void idle_elsewhere(fix_t *f, world_t *w, chain3_t *c, int g)
{
    uint8_t *idle_interp, *idle_ts, *base, *none;
    pp_walk_target_t *t;

    (void)c;
    if (w->L->owner_not_python > w->L->owner_max) {
        return; /* 3.11: no frame that runs no Python */
    }
    none = object(w, 64, none_type);
    idle_interp = arena_alloc(64);
    idle_ts = thread_state(w, TID, NTID);
    base = arena_alloc(w->L->frame_size + 16);
    put_ptr(base, w->L->frame_code, none);
    put_ptr(base, w->L->frame_previous, NULL);
    put_ptr(base, w->L->frame_instr, NULL);
    base[w->L->frame_owner] = (uint8_t)w->L->owner_not_python;
    put_ptr(idle_ts, w->L->ts_frame, base);
    put_ptr(idle_interp, w->L->interp_threads_head, idle_ts);
    put_ptr(idle_interp, w->L->interp_next, w->interp);
    first_interp = idle_interp;
    t = sample(f, g);
    check_found(t, 3);
    check_chain3(f, t, 3);
    assert_ptr_equal(t->interp, w->interp);
    /* and where it runs no Python anywhere: not found, not torn */
    put_ptr(w->ts, w->L->ts_frame, base);
    check_not_found(sample(f, g));
}

static void test_idle_thread_state_in_another_interpreter(void **state)
{
    for_each_chain3(*state, idle_elsewhere);
}

/* An address whose page is really unmapped (a freed chunk, a code object
 * whose arena went back to the system). */
static const void *unmapped(size_t off)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uint8_t *p = mmap(NULL, page, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    assert_true(p != MAP_FAILED);
    assert_int_equal(munmap(p, page), 0);
    return p + off;
}

/* 15. GIL-free, pointers into unmapped pages: a code object, a name of a
 * code object not cached yet, the caller of a generator's frame (read on
 * its own, not from a chunk).  Each sample is torn, nothing crashes, and
 * with guarded copies the faults are counted.  (Not the GIL reader: with
 * the GIL held nothing is freed under it.  Not guarded copies under
 * valgrind: memcheck reports each deliberate read.) */
static void test_unmapped_memory_torn(void **state)
{
    fix_t *f = *state;
    int v, g, k;

    for (v = 0; v < NVERSIONS; v++) {
        for (g = MODE_GUARDED; g >= MODE_SYSCALL; g--) {
            if (g == MODE_GUARDED && getenv("PP_UNIT_UNDER_VALGRIND")) {
                continue;
            }
            for (k = 0; k < 3; k++) {
                uint64_t faults = f->st->c.copy_faults;
                world_t w;
                chain3_t c;
                uint8_t *gen;

                world_new(&w, versions[v]);
                chain3(&w, &c);
                switch (k) {
                case 0:
                    put_ptr(c.frame[1], w.L->frame_code,
                            (const void *)((uintptr_t)unmapped(64) | w.tag));
                    break;
                case 1:
                    c.code[1] = code(&w, "Handler.head", "/srv/views.py", 60);
                    put_ptr(c.code[1], w.L->code_qualname, unmapped(32));
                    put_ptr(c.frame[1], w.L->frame_code,
                            (const void *)((uintptr_t)c.code[1] | w.tag));
                    put_ptr(c.frame[1], w.L->frame_instr,
                            unit_ptr(&w, c.code[1], 12));
                    break;
                case 2:
                    gen = push(&w, ON_HEAP, c.code[2], 5, GEN);
                    put_ptr(gen, w.L->frame_previous, unmapped(128));
                    break;
                }
                check_torn(sample(f, g));
                if (g == MODE_GUARDED) {
                    assert_true(f->st->c.copy_faults > faults);
                }
                else {
                    assert_int_equal(f->st->c.copy_faults, faults);
                }
            }
        }
    }
}

static void other_segv_handler(int sig)
{
    (void)sig;
    abort();
}

/* 16. A SIGSEGV handler installed over the guard's (an application's
 * faulthandler.enable()): within two walks the walker copies with
 * process_vm_readv, counts it once, and samples on. */
static void test_guard_replaced_falls_back(void **state)
{
    fix_t *f = *state;
    struct sigaction other, before;
    world_t w;
    chain3_t c;
    pp_walk_target_t *t = &f->t;
    int i;

    world_new(&w, layout_313);
    chain3(&w, &c);
    check_found(sample(f, MODE_GUARDED), 3);
    memset(&other, 0, sizeof(other));
    sigemptyset(&other.sa_mask);
    other.sa_handler = other_segv_handler;
    sigaction(SIGSEGV, &other, &before);
    for (i = 0; i < 2; i++) {
        memset(t, 0, sizeof(*t));
        t->thread_ident = TID;
        pp_py_walk_nogil(f->st, t, 1);
        check_found(t, 3);
    }
    assert_int_equal(pp_py_nogil_copy(), PP_PY_COPY_SYSCALL);
    assert_int_equal(f->st->c.guard_replaced, 1);
    memset(t, 0, sizeof(*t));
    t->thread_ident = TID;
    pp_py_walk_nogil(f->st, t, 1);
    check_found(t, 3);
    check_chain3(f, t, 3);
    assert_int_equal(f->st->c.guard_replaced, 1);
    /* the guard's removal leaves the other handler alone */
    pp_py_nogil_fini();
    sigaction(SIGSEGV, NULL, &other);
    assert_true(other.sa_handler == other_segv_handler);
    sigaction(SIGSEGV, &before, NULL);
}

/* ---- GIL blame ---- */

/* A GIL (3.11: the runtime's; later: one of the arena, which interp
 * points to) held by `holder` (NULL: free) with `sleepers` threads on its
 * condition variable. */
static uint8_t *gil_set(world_t *w, uint8_t *interp, const void *holder,
                        int sleepers, uint64_t switches)
{
    uint8_t *gil = w->L->runtime_gil ? runtime_gil : arena_alloc(GIL_BYTES);
    uint32_t wrefs = (uint32_t)sleepers << 3;

    memset(gil, 0, GIL_BYTES);
    put_ptr(gil, w->L->gil_last_holder, holder ? holder : w->ts);
    put_int(gil, w->L->gil_locked, holder ? 1 : 0);
    put_u64(gil, w->L->gil_switch_number, switches);
    memcpy(gil + w->L->gil_cond + offsetof(pthread_cond_t, __data.__wrefs),
           &wrefs, sizeof(wrefs));
    if (!w->L->runtime_gil) {
        put_ptr(interp, w->L->interp_gil, gil);
    }
    return gil;
}

/* One GIL-free walk with GIL blame on, for the n targets (thread ids
 * tids[i], native ids tids[i] & 0xffff). */
static const pp_gil_tick_t *gil_walk(fix_t *f, pp_walk_target_t *t,
                                     const unsigned long *tids, int n)
{
    const char *why = NULL;
    int i;

    cur_mode = "GIL-free";
    assert_int_equal(pp_py_nogil_init(PP_PY_COPY_SYSCALL), 0);
    if (pp_py_gil_blame_init(&why) != 0) {
        fail_msg("pp_py_gil_blame_init: %s", why ? why : "?");
    }
    for (i = 0; i < n; i++) {
        memset(&t[i], 0, sizeof(t[i]));
        t[i].thread_ident = tids[i];
        t[i].native_tid = (pid_t)(tids[i] & 0xffff);
        t[i].gil = 5; /* must be reset */
        t[i].gil_requested = 5;
    }
    head_locks = head_unlocks = 0;
    pp_py_walk_nogil(f->st, t, n);
    assert_int_equal(head_locks, 1);
    assert_int_equal(head_unlocks, 1);
    return pp_py_gil_tick();
}

/* A thread with no frame waits while another runs Python holding the
 * GIL: the walk reads the GIL (held, by whom, how many sleep on it), finds
 * the holder's thread among the thread states, and tells the waiter which
 * GIL it would wait for; the holder's innermost frame is read on demand. */
static void test_gil_holder_found(void **state)
{
    fix_t *f = *state;
    int v;

    for (v = 0; v < NVERSIONS; v++) {
        world_t w;
        chain3_t c;
        pp_walk_target_t t[3], h;
        const pp_gil_tick_t *gt;
        uint8_t *waiter;
        const unsigned long tids[3] = {TID + 1, TID, TID + 9};

        world_new(&w, versions[v]);
        chain3(&w, &c); /* the holder: w.ts, thread TID, runs leaf() */
        put_u64(w.ts, w.L->ts_native_thread_id, TID & 0xffff);
        waiter = thread_state(&w, TID + 1, (TID + 1) & 0xffff);
        put_ptr(w.ts, w.L->ts_next, waiter);
        gil_set(&w, w.interp, w.ts, 2, 77);

        gt = gil_walk(f, t, tids, 3);
        assert_int_equal(gt->n, 1);
        assert_int_equal(gt->gils[0].locked, 1);
        assert_ptr_equal(gt->gils[0].holder_ts, w.ts);
        assert_int_equal(gt->gils[0].holder_ident, TID);
        assert_int_equal(gt->gils[0].holder_tid, (pid_t)(TID & 0xffff));
        assert_ptr_equal(gt->gils[0].holder_interp, w.interp);
        assert_int_equal(gt->gils[0].switch_number, 77);
        assert_int_equal(gt->gils[0].waiters, 2);
        /* the waiter: no frame, this GIL; the holder: found as usual */
        assert_int_equal(t[0].found, 0);
        assert_int_equal(t[0].gil, 0);
        assert_int_equal(t[0].gil_requested, 0);
        check_found(&t[1], 3);
        assert_int_equal(t[1].gil, 0);
        /* no thread state at all yet: the main interpreter's GIL */
        assert_int_equal(t[2].found, 0);
        assert_int_equal(t[2].gil, 0);

        /* the holder's innermost frame, walked on its own */
        memset(&h, 0, sizeof(h));
        h.max_depth = 1;
        assert_int_equal(pp_py_walk_gil_holder(f->st, &gt->gils[0], &h), 1);
        check_frame(f, &h, 0, "leaf", "/srv/util.py", 31);

        /* held by a thread state in no list (deleted since): no holder
         * thread, and nothing dereferenced */
        gil_set(&w, w.interp, (const void *)0x7f0000001000ULL, 1, 78);
        gt = gil_walk(f, t, tids, 3);
        assert_int_equal(gt->gils[0].locked, 1);
        assert_int_equal(gt->gils[0].holder_ident, 0);
        assert_int_equal(pp_py_walk_gil_holder(f->st, &gt->gils[0], &h), 0);

        /* free: no holder */
        gil_set(&w, w.interp, NULL, 0, 79);
        gt = gil_walk(f, t, tids, 3);
        assert_int_equal(gt->gils[0].locked, 0);
        assert_null(gt->gils[0].holder_ts);
        assert_int_equal(gt->gils[0].waiters, 0);
    }
}

/* 3.15 marks a thread state that waits for the GIL (gil_requested). */
static void test_gil_requested(void **state)
{
    fix_t *f = *state;
    world_t w;
    chain3_t c;
    pp_walk_target_t t[1];
    uint8_t *waiter;
    const unsigned long tids[1] = {TID + 1};

    world_new(&w, layout_314);
    cur_layout.version = "3.15";
    cur_layout.ts_gil_requested = 116;
    chain3(&w, &c);
    waiter = thread_state(&w, TID + 1, (TID + 1) & 0xffff);
    put_ptr(w.ts, w.L->ts_next, waiter);
    gil_set(&w, w.interp, w.ts, 1, 1);
    put_int(waiter, 116, 1);
    (void)gil_walk(f, t, tids, 1);
    assert_int_equal(t[0].gil_requested, 1);
    assert_int_equal(t[0].gil, 0);
    put_int(waiter, 116, 0);
    (void)gil_walk(f, t, tids, 1);
    assert_int_equal(t[0].gil_requested, 0);
}

/* From 3.12 each interpreter points to the GIL it uses: a legacy
 * sub-interpreter to the main one's (read once), one with its own GIL to
 * that; a thread waits for the GIL of the interpreter it runs in. */
static void test_gil_per_interpreter(void **state)
{
    fix_t *f = *state;
    world_t w;
    chain3_t c;
    pp_walk_target_t t[2];
    const pp_gil_tick_t *gt;
    uint8_t *main_interp, *main_ts, *gil;
    const unsigned long tids[2] = {TID, TID + 5};

    world_new(&w, layout_313);
    chain3(&w, &c); /* TID runs in the sub-interpreter w.interp */
    main_interp = arena_alloc(64);
    main_ts = thread_state(&w, TID + 5, (TID + 5) & 0xffff);
    put_ptr(main_interp, w.L->interp_threads_head, main_ts);
    put_ptr(w.interp, w.L->interp_next, main_interp); /* main comes last */
    gil = gil_set(&w, main_interp, main_ts, 1, 3);
    put_ptr(w.interp, w.L->interp_gil, gil); /* shared */
    gt = gil_walk(f, t, tids, 2);
    assert_int_equal(gt->n, 1);
    assert_int_equal(t[0].gil, 0);
    assert_int_equal(t[1].gil, 0);
    assert_int_equal(gt->gils[0].holder_ident, TID + 5);

    gil_set(&w, w.interp, w.ts, 0, 4); /* its own, and held by TID */
    gt = gil_walk(f, t, tids, 2);
    assert_int_equal(gt->n, 2);
    assert_int_equal(t[0].gil, 0); /* the sub-interpreter's, read first */
    assert_int_equal(t[1].gil, 1);
    assert_int_equal(gt->gils[0].holder_ident, TID);
    assert_int_equal(gt->gils[1].holder_ident, TID + 5);
}

/* The walker refuses a layout its buffers cannot hold, or one the running
 * interpreter contradicts; a walk without a walker finds nothing. */
static void test_init_refuses(void **state)
{
    fix_t *f = *state;
    world_t w;
    chain3_t c;
    pp_walk_target_t *t = &f->t;

    world_new(&w, layout_313);
    chain3(&w, &c);
    layout_check_fails = 1;
    assert_int_equal(pp_py_walker_init(0), -1);
    assert_int_equal(pp_py_nogil_init(PP_PY_COPY_GUARDED), -1);
    assert_int_equal(pp_py_nogil_init(PP_PY_COPY_SYSCALL), -1);
    layout_check_fails = 0;
    cur_layout.code_header = 4096;
    assert_int_equal(pp_py_walker_init(0), -1);
    memset(t, 0, sizeof(*t));
    t->thread_ident = TID;
    pp_py_walk(f->st, t, 1);
    assert_int_equal(t->found, 0);
    assert_int_equal(t->torn, 0);
    layout_313(&cur_layout);
    assert_int_equal(pp_py_walker_init(0), 0);
}

int main(void)
{
/* a test with a fresh store (setup, teardown) */
#define W(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linetable_fixture),
        W(test_three_frames_leaf_first),
        W(test_entry_frame_skipped),
        W(test_tagged_code_pointer),
        W(test_immortal_refcount_314),
        W(test_bad_owner_torn),
        W(test_freed_code_torn),
        W(test_instr_outside_code_torn),
        W(test_garbage_firsttraceable_torn),
        W(test_incomplete_frame_skipped),
        W(test_thread_matching),
        W(test_truncated),
        W(test_many_distinct_code_objects),
        W(test_frames_across_chunks_and_heap),
        W(test_chain_cycle_torn),
        W(test_names_utf8),
        W(test_idle_thread_state_in_another_interpreter),
        W(test_interpreters),
        W(test_unmapped_memory_torn),
        W(test_guard_replaced_falls_back),
        W(test_init_refuses),
        W(test_gil_holder_found),
        W(test_gil_requested),
        W(test_gil_per_interpreter),
    };

    return cmocka_run_group_tests_name("pp_py_walk", tests, NULL, NULL);
}
