/* pp_py_walk.c: reads Python stacks for the sampler, for every supported
 * CPython, from a pp_py_layout_t (see pp_py.h).  Sampler thread only.
 *
 * No Python header is included here: what a thread state, a frame, a code
 * object or a str looks like comes from the layout, filled from the
 * headers of the Python being sampled.  Memory is copied through a reader:
 *
 * GIL-free: the threads read run on meanwhile, so every byte that can
 *        change or be freed under us (frames, code objects, strings,
 *        location tables) is copied by a reader that fails cleanly on an
 *        unmapped page instead of faulting: a guarded memcpy()
 *        (pp_py_guard.c; the default), or process_vm_readv() on our own
 *        pid (PyProfSampler nogil syscall, sanitizer builds, and from the
 *        tick another SIGSEGV handler replaced the guard's on), and the
 *        copied chain is checked (real code objects, instructions
 *        inside their code, callers below callees) before it is trusted; a
 *        chain that does not check out is copied again, up to NOGIL_TRIES
 *        times, then the sample is dropped (counted as torn).
 * GIL:   the sampler holds the GIL, so nothing runs Python meanwhile and
 *        plain copies are enough (and no process_vm_readv is needed, which
 *        is why this mode remains when a seccomp filter refuses it).
 *
 * In both, thread lists are walked under the runtime's HEAD_LOCK (thread
 * states are created and deleted by threads that do not hold the GIL), no
 * Python object is created, no reference taken, no Python code run; names
 * are copied into C buffers and interned in the shared store, and a cache
 * maps (code object, instruction) to the interned frame id.
 *
 * GIL blame (GIL-free mode): the same walk reads, through the reader, the
 * GIL of every interpreter it visits (whether it is held, by which thread
 * state, how many threads sleep on it), finds the holder's thread among
 * the thread states it compares anyway, and tells each target which GIL
 * it would wait for; the sampler decides from that who waits (see
 * classify_targets in pp_sampler.c).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "pp_frames.h"
#include "pp_linetable.h"
#include "pp_log.h"
#include "pp_py.h"

#define CODE_CACHE_SIZE 4096  /* power of two */
#define FRAME_CACHE_SIZE 8192 /* power of two */
#define CHUNK_COPY_MAX ((size_t)512 * 1024)
#define NAME_MAX_CHARS 1024 /* characters read of a name */
#define LINETABLE_MAX 32768 /* bytes of location table kept */
/* Distinct code objects of one chain: as many as frames, so a stack of
 * PyProfMaxDepth frames that are all different functions (deep recursion
 * through generated code) is read whole, not dropped.  The kernel reads
 * at most IOV_BATCH pieces a call (UIO_MAXIOV). */
#define UNIQ_MAX PP_DEPTH_LIMIT
#define UNIQ_HASH (2 * UNIQ_MAX) /* power of two */
#define IOV_BATCH 1024
#define REGIONS_MAX 16 /* data-stack chunks copied per chain */
/* Headers copied whole: bigger than any supported version's (checked at
 * init against the layout). */
#define CODE_HDR_MAX 512
#define FRAME_HDR_MAX 128
#define STR_HDR_MAX 128
#define BYTES_HDR_MAX 64
/* Copies of a chain before a sample is dropped as torn.  A thread calling
 * small functions changes its chain while it is copied; only failed
 * copies are retried, so more tries cost nothing when the first works.
 * tests/bench (p1ms, /app/render: ~15k calls in 2 ms, 3.11): torn 5.3% of
 * samples with 2 tries, 2.2% with 3, 0.3-0.4% with 5, the sampler's CPU
 * the same within noise. */
#ifndef NOGIL_TRIES
#define NOGIL_TRIES 5
#endif

static const pp_py_layout_t *L;
static const pp_py_reader_t *R;
static int tries_per_chain = 1;
static pid_t own_pid;
/* guarded copies: faults already added to the store's count, the signal
 * whose handler the next walk checks, and whether the guard's loss was
 * logged (once a process) */
static uint64_t faults_counted;
static int check_signal;
static int loss_logged;

/* ---------------------------------------------------------------- reads */

static int vm_read(void *dst, const void *src, size_t n)
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

static int vm_readv(void *const *dst, const void *const *src, const size_t *len,
                    size_t n)
{
    static struct iovec l[IOV_BATCH], r[IOV_BATCH];
    size_t i, at, k;

    for (at = 0; at < n; at += k) {
        size_t want = 0;

        for (k = 0; k < IOV_BATCH && at + k < n; k++) {
            i = at + k;
            if (!src[i]) {
                return -1;
            }
            l[k].iov_base = dst[i];
            l[k].iov_len = len[i];
            r[k].iov_base = (void *)src[i];
            r[k].iov_len = len[i];
            want += len[i];
        }
        if (process_vm_readv(own_pid, l, k, r, k, 0) != (ssize_t)want) {
            return -1;
        }
    }
    return 0;
}

static const pp_py_reader_t vm_reader = {vm_read, vm_readv};

/* With the GIL held nothing the chain points to can change or be freed;
 * NULL is the only bad pointer a consistent chain holds. */
static int local_read(void *dst, const void *src, size_t n)
{
    if (!src || !n) {
        return -1;
    }
    memcpy(dst, src, n);
    return 0;
}

static int local_readv(void *const *dst, const void *const *src,
                       const size_t *len, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (local_read(dst[i], src[i], len[i]) != 0) {
            return -1;
        }
    }
    return 0;
}

static const pp_py_reader_t local_reader = {local_read, local_readv};

/* Plain copies, a fault on a page freed meanwhile turned into -1 (see
 * pp_py_guard.c). */
static int guarded_read(void *dst, const void *src, size_t n)
{
    if (!src || !n) {
        return -1;
    }
    return pp_py_guard_copy(dst, src, n);
}

static int guarded_readv(void *const *dst, const void *const *src,
                         const size_t *len, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (!src[i]) {
            return -1;
        }
    }
    return pp_py_guard_copyv(dst, src, len, n);
}

static const pp_py_reader_t guarded_reader = {guarded_read, guarded_readv};

/* Fields of a copied struct (copies are byte buffers: no alignment). */
static const void *ptr_at(const void *base, size_t off)
{
    const void *p;
    memcpy(&p, (const char *)base + off, sizeof(p));
    return p;
}

static int int_at(const void *base, size_t off)
{
    int v;
    memcpy(&v, (const char *)base + off, sizeof(v));
    return v;
}

static ssize_t ssize_at(const void *base, size_t off)
{
    ssize_t v;
    memcpy(&v, (const char *)base + off, sizeof(v));
    return v;
}

/* A field of a live struct another thread may be writing (a thread
 * state's ids and pointers), read once. */
static uintptr_t word_in_place(const void *base, size_t off)
{
    return *(const volatile uintptr_t *)((const char *)base + off);
}

/* A torn pointer can be anything: nothing below the first page and
 * nothing outside x86-64/aarch64 user space. */
static int plausible(const void *p)
{
    return (uintptr_t)p >= 4096 && (uintptr_t)p <= 0x00007fffffffffffULL;
}

/* ---------------------------------------------------------------- names */

/* UTF-8 of n code points of a PEP 393 buffer (kind 1, 2 or 4), cut at
 * cap - 1 bytes on a character boundary; lone surrogates become U+FFFD. */
static size_t ucs_to_utf8(unsigned kind, const uint8_t *data, size_t n,
                          char *buf, size_t cap)
{
    size_t i, w = 0;

    for (i = 0; i < n; i++) {
        uint32_t c;
        if (kind == 1) {
            c = data[i];
        }
        else if (kind == 2) {
            uint16_t u;
            memcpy(&u, data + 2 * i, 2);
            c = u;
        }
        else {
            memcpy(&c, data + 4 * i, 4);
        }
        if (c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
            c = 0xfffd;
        }
        if (c < 0x80) {
            if (w + 1 >= cap)
                break;
            buf[w++] = (char)c;
        }
        else if (c < 0x800) {
            if (w + 2 >= cap)
                break;
            buf[w++] = (char)(0xc0 | (c >> 6));
            buf[w++] = (char)(0x80 | (c & 0x3f));
        }
        else if (c < 0x10000) {
            if (w + 3 >= cap)
                break;
            buf[w++] = (char)(0xe0 | (c >> 12));
            buf[w++] = (char)(0x80 | ((c >> 6) & 0x3f));
            buf[w++] = (char)(0x80 | (c & 0x3f));
        }
        else {
            if (w + 4 >= cap)
                break;
            buf[w++] = (char)(0xf0 | (c >> 18));
            buf[w++] = (char)(0x80 | ((c >> 12) & 0x3f));
            buf[w++] = (char)(0x80 | ((c >> 6) & 0x3f));
            buf[w++] = (char)(0x80 | (c & 0x3f));
        }
    }
    buf[w] = '\0';
    return w;
}

/* The last bytes of a str's characters as read, and where they are.  A
 * code object freed and replaced by one of the same shape (the same
 * template exec'd or imported again) can get the same address, and so can
 * its name and file strs (pymalloc and malloc hand out the last freed
 * block first): all the pointers a cache entry is checked against match,
 * yet the names differ.  They differ in their characters, most often at
 * the end (a nonce, a module name): a cache hit counts only if these bytes
 * are still there (re-read in one batch per sample). */
#define STR_TAIL 24
/* Distinct name tails of one sample looked for among those already to be
 * read, at most (past it, read again: the search is quadratic). */
#define TAIL_DEDUP_MAX 64
typedef struct str_tail {
    const void *at; /* address of the bytes; NULL: not checked */
    uint8_t bytes[STR_TAIL];
    uint8_t len;
} str_tail_t;

/* A str, copied out as UTF-8 (at most NAME_MAX_CHARS characters); 0 if
 * it is not a live str. */
static size_t read_str(const void *obj, char *out, size_t cap, str_tail_t *tail)
{
    static uint8_t buf[NAME_MAX_CHARS * 4];
    uint8_t head[STR_HDR_MAX], again[STR_HDR_MAX];
    const size_t skip = L->obj_type; /* the count may move */
    pp_py_str_t s;
    size_t n, bytes;

    out[0] = '\0';
    if (R->read(head, obj, L->str_header) != 0 ||
        ptr_at(head, L->obj_type) != L->str_type || !L->live(head) ||
        L->str_decode(head, &s) != 0 || s.hdr_len > L->str_header ||
        s.hdr_len < skip) {
        return 0;
    }
    n = s.length < NAME_MAX_CHARS ? s.length : NAME_MAX_CHARS;
    bytes = n * s.kind;
    if (bytes && R->read(buf, (const uint8_t *)obj + s.data_off, bytes) != 0) {
        return 0;
    }
    /* the str may have been freed and its block handed to a new object
     * between the two reads (pymalloc reuses the last freed block first):
     * the characters count only if the header is still the one they were
     * read under */
    if (R->read(again, obj, L->str_header) != 0 || !L->live(again) ||
        memcmp(again + skip, head + skip, s.hdr_len - skip) != 0) {
        return 0;
    }
    if (tail) {
        size_t t = bytes < STR_TAIL ? bytes : STR_TAIL;
        tail->at = t ? (const uint8_t *)obj + s.data_off + bytes - t : NULL;
        tail->len = (uint8_t)t;
        if (t) {
            memcpy(tail->bytes, buf + bytes - t, t);
        }
    }
    return ucs_to_utf8(s.kind, buf, n, out, cap);
}

/* ---------------------------------------------------------- code cache */

typedef struct code_info {
    const void *code; /* address; NULL = empty entry */
    const void *qualname, *filename, *linetable_obj;
    int firstlineno;
    int firsttraceable;
    ssize_t ncodeunits;
    uint8_t *linetable;
    size_t linetable_len;
    char func[PP_FRAME_TEXT_MAX + 1];
    char file[PP_FRAME_TEXT_MAX + 1];
    size_t func_len, file_len;
    str_tail_t func_tail, file_tail; /* see str_tail_t */
    uint64_t gen;                    /* which load this is (never 0) */
} code_info_t;

/* (code object, instruction) -> interned frame, valid for one load of
 * the code object (gen). */
typedef struct frame_cache_entry {
    const void *code;
    int lasti;
    uint32_t frame;
    uint64_t gen;
} frame_cache_entry_t;

static code_info_t *code_cache;
static frame_cache_entry_t *frame_cache;
static uint8_t *code_heads; /* UNIQ_MAX copied code object headers */
static size_t code_head_stride;
static uint64_t code_loads;
static char *chunk_copy;

static code_info_t *cache_entry(const void *code)
{
    return &code_cache[((uintptr_t)code >> 4) & (CODE_CACHE_SIZE - 1)];
}

static int cache_matches(const code_info_t *ci, const void *code,
                         const uint8_t *head)
{
    return ci->code == code && ci->qualname == ptr_at(head, L->code_qualname) &&
           ci->filename == ptr_at(head, L->code_filename) &&
           ci->linetable_obj == ptr_at(head, L->code_linetable) &&
           ci->firstlineno == int_at(head, L->code_firstlineno);
}

static int is_live_code(const uint8_t *head)
{
    return ptr_at(head, L->obj_type) == L->code_type && L->live(head);
}

/* Fill a cache entry from a copied code object header; 0 on success. */
static int load_code(code_info_t *ci, const void *code, const uint8_t *head)
{
    uint8_t bhead[BYTES_HDR_MAX], again[CODE_HDR_MAX];
    const void *lt = ptr_at(head, L->code_linetable);
    ssize_t blen;

    free(ci->linetable);
    memset(ci, 0, sizeof(*ci));
    ci->func_len = read_str(ptr_at(head, L->code_qualname), ci->func,
                            sizeof(ci->func), &ci->func_tail);
    ci->file_len = read_str(ptr_at(head, L->code_filename), ci->file,
                            sizeof(ci->file), &ci->file_tail);
    if (!ci->func_len || !ci->file_len) {
        return -1;
    }
    if (R->read(bhead, lt, L->bytes_data) == 0 &&
        ptr_at(bhead, L->obj_type) == L->bytes_type && L->live(bhead) &&
        (blen = ssize_at(bhead, L->var_size)) > 0 && blen <= LINETABLE_MAX) {
        ci->linetable = malloc((size_t)blen);
        if (ci->linetable &&
            R->read(ci->linetable, (const char *)lt + L->bytes_data,
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
    if (R->read(again, code, L->code_header) != 0 || !is_live_code(again) ||
        ptr_at(again, L->code_qualname) != ptr_at(head, L->code_qualname) ||
        ptr_at(again, L->code_filename) != ptr_at(head, L->code_filename) ||
        ptr_at(again, L->code_linetable) != lt ||
        int_at(again, L->code_firstlineno) !=
            int_at(head, L->code_firstlineno)) {
        free(ci->linetable);
        ci->linetable = NULL;
        return -1;
    }
    ci->code = code;
    ci->gen = ++code_loads;
    ci->qualname = ptr_at(head, L->code_qualname);
    ci->filename = ptr_at(head, L->code_filename);
    ci->linetable_obj = lt;
    ci->firstlineno = int_at(head, L->code_firstlineno);
    ci->firsttraceable = int_at(head, L->code_firsttraceable);
    ci->ncodeunits = ssize_at(head, L->var_size);
    /* a real code object starts tracing inside its code */
    if (ci->ncodeunits <= 0 || ci->firsttraceable < 0 ||
        ci->firsttraceable > ci->ncodeunits) {
        ci->code = NULL;
        free(ci->linetable);
        ci->linetable = NULL;
        return -1;
    }
    return 0;
}

/* Cache entries that still match their code object's pointers keep
 * their names only if the last bytes of those names are still the ones
 * read (see str_tail_t); the others are dropped, to be loaded again.  One
 * batched read for every code object of the sample. */
static void check_cached_names(const uint8_t *heads, size_t stride,
                               const void *const *addrs, uint32_t nuniq)
{
    static void *dst[2 * UNIQ_MAX];
    static const void *src[2 * UNIQ_MAX];
    static size_t len[2 * UNIQ_MAX];
    static uint8_t now[2 * UNIQ_MAX][STR_TAIL];
    static code_info_t *owner[2 * UNIQ_MAX];
    static const str_tail_t *tails[2 * UNIQ_MAX];
    uint32_t k, m = 0, j;
    int ok;

    for (k = 0; k < nuniq; k++) {
        code_info_t *ci = cache_entry(addrs[k]);
        const str_tail_t *pair[2];
        int t;

        if (!cache_matches(ci, addrs[k], heads + k * stride)) {
            continue; /* not a hit: loaded anew anyway */
        }
        pair[0] = &ci->func_tail;
        pair[1] = &ci->file_tail;
        for (t = 0; t < 2; t++) {
            if (!pair[t]->at || !pair[t]->len) {
                continue;
            }
            dst[m] = now[m];
            src[m] = pair[t]->at;
            len[m] = pair[t]->len;
            owner[m] = ci;
            tails[m] = pair[t];
            m++;
        }
    }
    if (!m) {
        return;
    }
    ok = R->readv(dst, src, len, m) == 0;
    for (j = 0; j < m; j++) {
        if (!ok || memcmp(now[j], tails[j]->bytes, tails[j]->len) != 0) {
            owner[j]->code = NULL; /* reload: its names changed */
        }
    }
}

/* --------------------------------------------------------------- chains */

typedef struct chain_frame {
    const void *code;
    const void *instr;
    int owner;
} chain_frame_t;

/* Copied data-stack chunks of one thread: frames live in them, so a walk
 * costs one read per chunk instead of one per frame. */
typedef struct region {
    const char *base; /* address of the chunk's data */
    size_t used;
    size_t at; /* offset of the copy in chunk_copy */
} region_t;

typedef struct regions {
    region_t r[REGIONS_MAX];
    int n;
    size_t fill;      /* bytes of chunk_copy in use */
    const void *next; /* the next older chunk not copied yet */
} regions_t;

static int copy_region(regions_t *rs, const char *base, size_t used)
{
    region_t *r;

    if (rs->n >= REGIONS_MAX || used == 0 || used > CHUNK_COPY_MAX - rs->fill ||
        R->read(chunk_copy + rs->fill, base, used) != 0) {
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
        uint8_t head[64];
        size_t csize, ctop;

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
        if (!plausible(rs->next) ||
            R->read(head, rs->next, L->chunk_data) != 0) {
            rs->next = NULL;
            return NULL;
        }
        csize = (size_t)ssize_at(head, L->chunk_size);
        ctop = (size_t)ssize_at(head, L->chunk_top);
        if (ctop > csize / sizeof(void *) ||
            copy_region(rs, (const char *)rs->next + L->chunk_data,
                        ctop * sizeof(void *)) != 0) {
            rs->next = NULL;
            return NULL;
        }
        rs->next = ptr_at(head, L->chunk_previous);
    }
}

/* Where the thread's innermost frame pointer is; NULL if that cannot be
 * told. */
static const void *top_frame_at(const void *ts)
{
    if (L->ts_frame_indirect) {
        const void *cf = (const void *)word_in_place(ts, L->ts_frame);
        if (!plausible(cf)) {
            return NULL;
        }
        return (const char *)cf + L->cframe_frame;
    }
    return (const char *)ts + L->ts_frame;
}

/* The thread's innermost frame, or NULL; -1 if it cannot be read. */
static int top_frame(const void *ts, const void **top)
{
    const void *at = top_frame_at(ts);

    return at ? R->read(top, at, sizeof(*top)) : -1;
}

/* The innermost frame pointer and the current data-stack chunk (its
 * header, for the older chunk's address, and its frames up to the top)
 * in one read, the pointer first as when read apart (3.13 and later: the
 * pointer is the thread state's, read in place just before).  0: *top is
 * read and, when the chunk had frames, rs holds them; -1: nothing was
 * (the caller reads them one at a time). */
static int copy_top_and_chunk(const void *ts, const void **top, regions_t *rs)
{
    const char *chunk = (const char *)word_in_place(ts, L->ts_datastack_chunk);
    const char *dtop = (const char *)word_in_place(ts, L->ts_datastack_top);
    const void *at = top_frame_at(ts);
    void *dst[2];
    const void *src[2];
    size_t len[2], used = 0, k = 0;

    if (!at || !plausible(chunk) || !plausible(dtop)) {
        return -1;
    }
    if (dtop > chunk + L->chunk_data &&
        (size_t)(dtop - chunk) <= CHUNK_COPY_MAX) {
        used = (size_t)(dtop - chunk) - L->chunk_data;
    }
    if (L->ts_frame_indirect) {
        /* 3.11: in the _PyCFrame on the thread's C stack */
        dst[k] = (void *)top;
        src[k] = at;
        len[k++] = sizeof(*top);
    }
    else {
        /* a field of the thread state, which HEAD_LOCK keeps, read in
         * place like its data-stack fields (one piece less to read) */
        *top = (const void *)word_in_place(ts, L->ts_frame);
    }
    dst[k] = chunk_copy;
    src[k] = chunk;
    len[k++] = L->chunk_data + used;
    if (R->readv(dst, src, len, k) != 0) {
        return -1;
    }
    rs->next = ptr_at(chunk_copy, L->chunk_previous);
    rs->fill = L->chunk_data + used;
    if (used) {
        rs->r[0].base = chunk + L->chunk_data;
        rs->r[0].used = used;
        rs->r[0].at = L->chunk_data;
        rs->n = 1;
    }
    return 0;
}

/* Copy the frame chain of one thread state: -1 if it changed under us or
 * does not decode, -2 if its frame pointer cannot be read.  Frames that
 * run no Python code (C-stack entry frames, the interpreter's own) are
 * left out here. */
static int copy_chain(const void *ts, chain_frame_t *out, uint32_t cap,
                      uint32_t *n, int *truncated, const void **top)
{
    const void *f;
    regions_t rs;
    uint32_t guard = 0;

    *n = 0;
    *truncated = 0;
    rs.n = 0;
    rs.fill = 0;
    rs.next = NULL;
    if (copy_top_and_chunk(ts, &f, &rs) != 0) {
        /* one at a time: the frame pointer alone tells a thread with no
         * frame from one whose chunk cannot be read */
        const void *chunk =
            (const void *)word_in_place(ts, L->ts_datastack_chunk);
        const char *dtop = (const char *)word_in_place(ts, L->ts_datastack_top);

        rs.n = 0;
        rs.fill = 0;
        rs.next = NULL;
        if (top_frame(ts, &f) != 0) {
            return -2; /* *top: what an earlier try read, if any */
        }
        /* the current chunk now; older ones when the walk gets there */
        if (plausible(chunk) && plausible(dtop)) {
            const char *base = (const char *)chunk + L->chunk_data;
            if (dtop > base && (size_t)(dtop - base) <= CHUNK_COPY_MAX) {
                copy_region(&rs, base, (size_t)(dtop - base));
            }
            if (R->read(&rs.next, (const char *)chunk + L->chunk_previous,
                        sizeof(void *)) != 0) {
                rs.next = NULL;
            }
        }
    }
    *top = f;
    while (f && guard++ < 4 * PP_DEPTH_LIMIT) {
        uint8_t buf[FRAME_HDR_MAX];
        const uint8_t *fr;
        const char *fp = (const char *)f;
        const void *prev;
        const region_t *r;
        int owner;

        if (!plausible(fp)) {
            return -1;
        }
        /* a frame inside a copied chunk is read where it was copied */
        if ((r = region_of(&rs, fp, L->frame_size))) {
            fr = (const uint8_t *)chunk_copy + r->at + (size_t)(fp - r->base);
        }
        else if (R->read(buf, f, L->frame_size) != 0) {
            return -1;
        }
        else {
            fr = buf;
        }
        /* a char in CPython; any value above the largest owner (a byte
         * of a torn copy, read unsigned) is garbage */
        owner = fr[L->frame_owner];
        prev = ptr_at(fr, L->frame_previous);
        if (owner > L->owner_max) {
            return -1;
        }
        if (owner < L->owner_not_python) {
            if (*n >= cap) {
                *truncated = 1;
                break;
            }
            out[*n].code = (const void *)((uintptr_t)ptr_at(fr, L->frame_code) &
                                          ~L->code_tag);
            out[*n].instr = ptr_at(fr, L->frame_instr);
            out[*n].owner = owner;
            (*n)++;
        }
        /* within one data-stack chunk callers lie below callees; anything
         * else there is a torn copy (or a cycle) */
        if (prev == f || (r && (const char *)prev >= fp &&
                          (size_t)((const char *)prev - r->base) < r->used)) {
            return -1;
        }
        f = prev;
    }
    return 0;
}

/* The headers of a chain's distinct code objects into code_heads, and
 * with them, in the same read, the last bytes of the names of those whose
 * cache entry is theirs (see str_tail_t): an entry whose bytes changed is
 * dropped, to be loaded again.  If that one read fails (a name freed
 * meanwhile, say), the headers are read alone and the names apart, as
 * check_cached_names does.  -1: a header could not be read. */
static int read_heads_and_names(const void *const *addrs, uint32_t nuniq)
{
    static void *dst[3 * UNIQ_MAX];
    static const void *src[3 * UNIQ_MAX];
    static size_t len[3 * UNIQ_MAX];
    static uint8_t now[2 * UNIQ_MAX][STR_TAIL];
    static code_info_t *owner[2 * UNIQ_MAX];
    static const str_tail_t *tails[2 * UNIQ_MAX];
    static uint32_t bytes_of[2 * UNIQ_MAX]; /* tail -> its bytes in now[] */
    const size_t stride = code_head_stride;
    uint32_t k, m = 0, nb = 0, j;

    for (k = 0; k < nuniq; k++) {
        dst[k] = code_heads + k * stride;
        src[k] = addrs[k];
        len[k] = L->code_header;
    }
    for (k = 0; k < nuniq; k++) {
        code_info_t *ci = cache_entry(addrs[k]);
        const str_tail_t *pair[2];
        int t;

        if (ci->code != addrs[k]) {
            continue; /* not cached: loaded anew anyway */
        }
        pair[0] = &ci->func_tail;
        pair[1] = &ci->file_tail;
        for (t = 0; t < 2; t++) {
            uint32_t d = nb;

            if (!pair[t]->at || !pair[t]->len) {
                continue;
            }
            /* code objects of one file share its name: those bytes are
             * read once (the kernel pins pages for every piece it reads,
             * and that, more than the copy, is what a read costs) */
            if (nb < TAIL_DEDUP_MAX) {
                for (d = 0; d < nb; d++) {
                    if (src[nuniq + d] == pair[t]->at &&
                        len[nuniq + d] == pair[t]->len) {
                        break;
                    }
                }
            }
            if (d == nb) {
                dst[nuniq + nb] = now[nb];
                src[nuniq + nb] = pair[t]->at;
                len[nuniq + nb] = pair[t]->len;
                nb++;
            }
            bytes_of[m] = d;
            owner[m] = ci;
            tails[m] = pair[t];
            m++;
        }
    }
    if (R->readv(dst, src, len, nuniq + nb) != 0) {
        if (R->readv(dst, src, len, nuniq) != 0) {
            return -1;
        }
        check_cached_names(code_heads, stride, addrs, nuniq);
        return 0;
    }
    for (j = 0; j < m; j++) {
        if (memcmp(now[bytes_of[j]], tails[j]->bytes, tails[j]->len) != 0) {
            owner[j]->code = NULL; /* reload: its names changed */
        }
    }
    return 0;
}

/* Code objects of the chain, validated in one batched read; then names
 * and lines from the cache.  Fills t->frames; -1: torn. */
static int decode_chain(pp_store_t *st, const chain_frame_t *fr, uint32_t n,
                        pp_walk_target_t *t)
{
    static const void *addrs[UNIQ_MAX];
    static uint16_t uniq_of[PP_DEPTH_LIMIT]; /* frame -> index in addrs */
    /* code object -> index + 1 in addrs, valid where stamp is this call's */
    static struct {
        const void *code;
        uint32_t stamp;
        uint16_t at;
    } seen[UNIQ_HASH];
    static uint32_t stamp;
    static code_info_t *uniq_ci[UNIQ_MAX];
    const size_t stride = code_head_stride;
    uint32_t i, k, nuniq = 0;

    /* distinct code objects (stacks repeat functions): at most one a
     * frame, and a chain holds at most PP_DEPTH_LIMIT frames */
    if (n > PP_DEPTH_LIMIT) {
        return -1;
    }
    if (++stamp == 0) {
        memset(seen, 0, sizeof(seen));
        stamp = 1;
    }
    for (i = 0; i < n; i++) {
        uint32_t h = (uint32_t)(((uintptr_t)fr[i].code >> 4) * 0x9e3779b1u);

        for (;; h++) {
            h &= UNIQ_HASH - 1;
            if (seen[h].stamp != stamp) {
                if (!plausible(fr[i].code)) {
                    return -1;
                }
                seen[h].stamp = stamp;
                seen[h].code = fr[i].code;
                seen[h].at = (uint16_t)nuniq;
                addrs[nuniq] = fr[i].code;
                nuniq++;
            }
            if (seen[h].code == fr[i].code) {
                uniq_of[i] = seen[h].at;
                break;
            }
        }
    }
    t->depth = 0;
    if (!nuniq) {
        return 0;
    }
    if (read_heads_and_names(addrs, nuniq) != 0) {
        return -1; /* some frame pointed at freed memory: torn */
    }
    /* each code object checked and looked up once, however many of the
     * chain's frames run it */
    for (k = 0; k < nuniq; k++) {
        const uint8_t *head = code_heads + k * stride;

        /* a code object being deallocated (refcount 0) may already have
         * released its names: not one to read */
        if (!is_live_code(head)) {
            return -1;
        }
        uniq_ci[k] = cache_entry(addrs[k]);
        if (!cache_matches(uniq_ci[k], addrs[k], head) &&
            load_code(uniq_ci[k], addrs[k], head) != 0) {
            return -1;
        }
    }
    for (i = 0; i < n && t->depth < t->max_depth; i++) {
        code_info_t *ci = uniq_ci[uniq_of[i]];
        frame_cache_entry_t *fe;
        uintptr_t h;
        intptr_t unit;
        int line, lasti;
        uint32_t id;

        /* two code objects of this chain that share a cache entry: the
         * later one's load evicted this one, load it again (its header,
         * checked above, is the copy of this sample) */
        if (ci->code != fr[i].code &&
            load_code(ci, fr[i].code, code_heads + uniq_of[i] * stride) != 0) {
            return -1;
        }
        unit = ((intptr_t)fr[i].instr -
                (intptr_t)((const char *)fr[i].code + L->code_header)) /
               (intptr_t)L->code_unit;
        /* An instruction outside its code is a torn copy.  Checked first:
         * _co_firsttraceable is read from the same copy, and a garbage one
         * larger than the code would otherwise pass the frame off as not
         * started yet, and the sample as good with a frame left out. */
        if (unit < -1 || unit > ci->ncodeunits) {
            return -1;
        }
        /* _PyFrame_IsIncomplete: not started yet */
        if (fr[i].owner != L->owner_generator && unit < ci->firsttraceable) {
            continue;
        }
        lasti = (int)unit;
        h = ((uintptr_t)fr[i].code >> 4) ^ ((uintptr_t)lasti * 0x9e3779b1u);
        fe = &frame_cache[h & (FRAME_CACHE_SIZE - 1)];
        if (fe->code == fr[i].code && fe->lasti == lasti &&
            fe->gen == ci->gen && fe->frame) {
            t->frames[t->depth++] = fe->frame;
            continue;
        }
        line = pp_linetable_line(ci->linetable, ci->linetable_len,
                                 ci->firstlineno, lasti);
        /* an instruction without a location is charged to the function's
         * first line rather than to a line 0 that never ran */
        if (line <= 0) {
            line = ci->firstlineno;
        }
        id =
            pp_store_intern_frame(st, ci->func, ci->func_len, ci->file,
                                  ci->file_len, line < 0 ? 0u : (uint32_t)line);
        if (!id) {
            id = st->frame_unknown;
        }
        else {
            fe->code = fr[i].code;
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

/* ------------------------------------------------------------------ GIL */

#define GIL_READ_MAX 256 /* bytes of the GIL struct copied, at most */

static int gil_blame;   /* pp_py_gil_blame_init succeeded */
static size_t wrefs_at; /* glibc's waiter count in a pthread_cond_t */
static int wrefs_ok;    /* ... and the probe says it counts waiters */
static pp_gil_tick_t gil_tick;

/* glibc's condition variable (2.25 and later) counts the threads inside
 * pthread_cond_wait in __wrefs, 8 a waiter (the low 3 bits are flags).
 * The count is not an interface: it is used only if a probe at start
 * reads it as one waiter while a thread waits, and none after. */
static pthread_mutex_t probe_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t probe_cv = PTHREAD_COND_INITIALIZER;
static int probe_go;

static int cond_waiters(const void *cond)
{
    uint32_t w;

    memcpy(&w, (const char *)cond + wrefs_at, sizeof(w));
    return (int)(w >> 3);
}

static void *probe_waiter(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&probe_mu);
    while (!probe_go) {
        pthread_cond_wait(&probe_cv, &probe_mu);
    }
    pthread_mutex_unlock(&probe_mu);
    return NULL;
}

static int cond_probe(void)
{
#ifdef __GLIBC__
    pthread_t th;
    int i, seen = 0, after;

    wrefs_at = offsetof(pthread_cond_t, __data.__wrefs);
    probe_go = 0;
    if (pthread_create(&th, NULL, probe_waiter, NULL) != 0) {
        return -1;
    }
    for (i = 0; i < 1000 && !seen; i++) {
        pthread_mutex_lock(&probe_mu);
        seen = cond_waiters(&probe_cv) == 1;
        pthread_mutex_unlock(&probe_mu);
        if (!seen) {
            usleep(1000);
        }
    }
    pthread_mutex_lock(&probe_mu);
    probe_go = 1;
    pthread_cond_signal(&probe_cv);
    pthread_mutex_unlock(&probe_mu);
    pthread_join(th, NULL);
    after = cond_waiters(&probe_cv);
    return seen && after == 0 ? 0 : -1;
#else
    return -1;
#endif
}

/* The index in gil_tick of the GIL at g, copied on first sight in this
 * walk; -1 if it cannot be read (or too many). */
static int gil_index(const void *g)
{
    uint8_t buf[GIL_READ_MAX];
    pp_gil_state_t *s;
    size_t n;
    int i;

    if (!plausible(g)) {
        return -1;
    }
    for (i = 0; i < gil_tick.n; i++) {
        if (gil_tick.gils[i].gil == g) {
            return i;
        }
    }
    if (gil_tick.n == PP_GILS_MAX) {
        return -1;
    }
    n = wrefs_ok ? L->gil_cond + wrefs_at + sizeof(uint32_t)
                 : L->gil_switch_number + sizeof(uint64_t);
    if (R->read(buf, g, n) != 0) {
        return -1;
    }
    s = &gil_tick.gils[gil_tick.n];
    memset(s, 0, sizeof(*s));
    s->gil = g;
    s->locked = int_at(buf, L->gil_locked) == 1;
    s->holder_ts = s->locked ? ptr_at(buf, L->gil_last_holder) : NULL;
    memcpy(&s->switch_number, buf + L->gil_switch_number,
           sizeof(s->switch_number));
    s->waiters = wrefs_ok ? cond_waiters(buf + L->gil_cond) : -1;
    return gil_tick.n++;
}

/* The GIL threads of interp wait for (read under HEAD_LOCK). */
static int interp_gil(const void *interp)
{
    if (L->runtime_gil) {
        return gil_index(L->runtime_gil);
    }
    return gil_index((const void *)word_in_place(interp, L->interp_gil));
}

/* 3.15: does thread state ts wait for the GIL? */
static int ts_gil_requested(const void *ts)
{
    return L->ts_gil_requested &&
           *(const volatile int *)((const char *)ts + L->ts_gil_requested) == 1;
}

/* -------------------------------------------------------------- threads */

/* Is ts the target's thread?  The ids are read once each: a thread just
 * started may be rewriting them (see walk()). */
static int is_thread_of(const void *ts, const pp_walk_target_t *t)
{
    unsigned long id = (unsigned long)word_in_place(ts, L->ts_thread_id);
    unsigned long nid =
        (unsigned long)word_in_place(ts, L->ts_native_thread_id);

    return id == t->thread_ident ||
           (t->native_tid > 0 && nid == (unsigned long)t->native_tid);
}

/* Sample the target's thread in thread state ts: 0 if ts has no frame
 * (or its frame pointer cannot be read) on the first look, and then t
 * is left as it was. */
static int sample_thread(pp_store_t *st, const void *ts, void *interp,
                         pp_walk_target_t *t)
{
    static chain_frame_t chain[PP_DEPTH_LIMIT];
    const void *top = NULL;
    uint32_t depth = 0;
    int tries, truncated = 0;

    /* The thread runs on while we copy: the chain is checked (every code
     * object really is one, every instruction lies inside its code,
     * callers below callees) rather than required to stand still, which
     * a thread calling small functions never does for a microsecond. */
    for (tries = 0; tries < tries_per_chain; tries++) {
        int rc = copy_chain(ts, chain, t->max_depth, &depth, &truncated, &top);

        if (tries == 0 && (rc == -2 || (rc == 0 && !top))) {
            return 0; /* no frame here */
        }
        if (rc != 0) {
            continue;
        }
        if (!top) {
            break; /* it left Python meanwhile */
        }
        if (decode_chain(st, chain, depth, t) == 0) {
            /* every frame still starting up: not in Python code yet, as
             * far as a sample can tell */
            t->found = t->depth > 0 || t->truncated;
            t->truncated |= truncated;
            t->interp = interp;
            break;
        }
    }
    if (tries == tries_per_chain && top) {
        t->torn = 1;
    }
    return 1;
}

static void walk(pp_store_t *st, pp_walk_target_t *targets, int n)
{
    const void *interp;
    int i, left = n, last_gil = -1;

    gil_tick.n = 0;
    for (i = 0; i < n; i++) {
        targets[i].found = 0;
        targets[i].torn = 0;
        targets[i].depth = 0;
        targets[i].truncated = 0;
        targets[i].gil = -1;
        targets[i].gil_requested = 0;
        if (targets[i].max_depth == 0 ||
            targets[i].max_depth > PP_DEPTH_LIMIT) {
            targets[i].max_depth = PP_DEPTH_LIMIT;
        }
    }
    if (!L || !code_cache) {
        return;
    }
    /* HEAD_LOCK: no thread state is freed while we look at it */
    pp_py_rt_head_lock();
    /* With GIL blame every thread state is looked at, found targets or
     * not: the GIL's holder is one of them, and its thread is known only
     * once it is seen. */
    for (interp = pp_py_rt_interpreters(); interp && (left > 0 || gil_blame);
         interp = (const void *)word_in_place(interp, L->interp_next)) {
        const void *ts;
        int g = -1;

        if (R == &local_reader && !pp_py_rt_shares_gil(interp)) {
            continue; /* runs on under its own GIL: not ours to copy */
        }
        if (gil_blame) {
            g = interp_gil(interp);
            last_gil = g;
        }
        for (ts = (const void *)word_in_place(interp, L->interp_threads_head);
             ts && (left > 0 || gil_blame);
             ts = (const void *)word_in_place(ts, L->ts_next)) {
            if (g >= 0 && ts == gil_tick.gils[g].holder_ts) {
                pp_gil_state_t *gs = &gil_tick.gils[g];

                gs->holder_ident =
                    (unsigned long)word_in_place(ts, L->ts_thread_id);
                gs->holder_tid =
                    (pid_t)word_in_place(ts, L->ts_native_thread_id);
                gs->holder_interp = (void *)interp;
            }
            for (i = 0; i < n; i++) {
                pp_walk_target_t *t = &targets[i];

                if (t->found || !is_thread_of(ts, t)) {
                    continue;
                }
                /* the GIL it would wait for: of the interpreter where it
                 * waits (3.15 says), else where it runs, else any it has
                 * a thread state in */
                if (g >= 0 && !t->gil_requested) {
                    if (ts_gil_requested(ts)) {
                        t->gil_requested = 1;
                        t->gil = g;
                    }
                    else if (t->gil < 0) {
                        t->gil = g;
                    }
                }
                /* several interpreters may know this thread: the one with
                 * a frame is where it runs */
                if (!sample_thread(st, ts, (void *)interp, t)) {
                    break;
                }
                /* A thread state that threading.Thread.start() has just
                 * made carries its creator's ids until the new thread sets
                 * its own (init_threadstate), and it comes first in the
                 * list: had the new thread started meanwhile, the chain
                 * copied would be its stack, not the request's.  It sets
                 * its ids before it runs any Python, so ids that still
                 * match after the copy mean the copy was the target's. */
                atomic_thread_fence(memory_order_acquire);
                if (!is_thread_of(ts, t)) {
                    t->found = 0;
                    t->torn = 0;
                    t->depth = 0;
                    t->truncated = 0;
                    break; /* not this thread state: look on */
                }
                /* No Python frame here: not where the thread runs now.  A
                 * thread that has run in several interpreters (mod_wsgi's
                 * application groups) has a thread state in each, and
                 * from 3.14 an idle one is not empty but holds its base
                 * frame (owned by the interpreter, skipped): look on in
                 * the other interpreters. */
                if (!t->found && !t->torn) {
                    t->depth = 0;
                    t->truncated = 0;
                    break;
                }
                if (g >= 0 && !t->gil_requested) {
                    t->gil = g;
                }
                left--;
                break;
            }
        }
    }
    pp_py_rt_head_unlock();
    /* A thread with no thread state yet (or none left) enters Python in
     * the main interpreter, the last of the list: mod_wsgi's
     * PyGILState_Ensure makes one there, and a thread queued behind
     * another on mod_wsgi's interpreter lock has not got that far. */
    for (i = 0; i < n && last_gil >= 0; i++) {
        if (targets[i].gil < 0) {
            targets[i].gil = last_gil;
        }
    }
}

int pp_py_walk_gil_holder(pp_store_t *st, const pp_gil_state_t *g,
                          pp_walk_target_t *t)
{
    const void *interp;
    int seen = 0;

    t->found = 0;
    t->torn = 0;
    t->depth = 0;
    t->truncated = 0;
    if (t->max_depth == 0 || t->max_depth > PP_DEPTH_LIMIT) {
        t->max_depth = PP_DEPTH_LIMIT;
    }
    if (!gil_blame || !g->holder_ts || !g->holder_ident) {
        return 0;
    }
    t->thread_ident = g->holder_ident;
    t->native_tid = g->holder_tid;
    /* the holder's thread state is dereferenced only once it is found in
     * a list under HEAD_LOCK: it may have been deleted since the walk */
    pp_py_rt_head_lock();
    for (interp = pp_py_rt_interpreters(); interp && !seen;
         interp = (const void *)word_in_place(interp, L->interp_next)) {
        const void *ts;

        for (ts = (const void *)word_in_place(interp, L->interp_threads_head);
             ts; ts = (const void *)word_in_place(ts, L->ts_next)) {
            if (ts != g->holder_ts) {
                continue;
            }
            seen = 1;
            if (is_thread_of(ts, t) &&
                sample_thread(st, ts, (void *)interp, t)) {
                atomic_thread_fence(memory_order_acquire);
                if (!is_thread_of(ts, t)) {
                    t->found = 0;
                    t->depth = 0;
                }
            }
            break;
        }
    }
    pp_py_rt_head_unlock();
    return t->found && !t->torn && t->depth > 0;
}

const pp_gil_tick_t *pp_py_gil_tick(void)
{
    return &gil_tick;
}

int pp_py_gil_marks_waiters(void)
{
    return L && L->ts_gil_requested != 0;
}

int pp_py_gil_blame_init(const char **why)
{
    gil_blame = 0;
    gil_tick.n = 0;
    if (!L || !code_cache) {
        *why = "the stack reader is not set up";
        return -1;
    }
    if (pp_py_layout_gil_check(why) != 0) {
        return -1;
    }
    wrefs_ok = cond_probe() == 0;
    if ((wrefs_ok ? L->gil_cond + wrefs_at + sizeof(uint32_t)
                  : L->gil_switch_number + sizeof(uint64_t)) > GIL_READ_MAX) {
        *why = "the GIL struct is larger than the reader's buffer";
        return -1;
    }
    gil_blame = 1;
    return 0;
}

/* ------------------------------------------------------------ interface */

static int walker_init(int gil_free, int copy)
{
    const char *why = NULL;

    L = pp_py_layout();
    if (!L || L->code_header > CODE_HDR_MAX || L->frame_size > FRAME_HDR_MAX ||
        L->str_header > STR_HDR_MAX || L->bytes_data > BYTES_HDR_MAX ||
        L->chunk_data > 64) {
        why = "a structure is larger than the reader's buffers";
    }
    else if (pp_py_layout_check(&why) != 0 && !why) {
        why = "unknown";
    }
    if (why) {
        /* the interpreter running is not the one the module was built
         * for: reading its memory with these offsets could only mislead */
        pp_log(PP_LOG_ERR,
               "not sampling in pid %d: the running Python does not match "
               "the CPython %s headers mod_pyprof was built with (%s); "
               "rebuild mod_pyprof against the Python mod_wsgi links",
               (int)getpid(), L ? L->version : "?", why);
        L = NULL;
        return -1;
    }
    own_pid = getpid();
    if (!code_cache) {
        code_cache = calloc(CODE_CACHE_SIZE, sizeof(code_info_t));
    }
    if (!frame_cache) {
        frame_cache = calloc(FRAME_CACHE_SIZE, sizeof(frame_cache_entry_t));
    }
    /* headers are copied whole, each at its own 16-byte aligned place */
    if (code_head_stride != ((L->code_header + 15) & ~(size_t)15)) {
        free(code_heads);
        code_head_stride = (L->code_header + 15) & ~(size_t)15;
        code_heads = malloc(UNIQ_MAX * code_head_stride);
    }
    if (!chunk_copy) {
        chunk_copy = malloc(CHUNK_COPY_MAX);
    }
    if (!code_cache || !frame_cache || !chunk_copy || !code_heads) {
        return -1;
    }
    if (gil_free) {
        /* can we read ourselves at all (a seccomp filter or a hardened
         * kernel may say no)? */
        int probe = 42, got = 0;
        if (vm_read(&got, &probe, sizeof(got)) != 0 || got != 42) {
            return -1;
        }
        R = &vm_reader;
        tries_per_chain = NOGIL_TRIES;
        if (copy == PP_PY_COPY_GUARDED) {
            const char *no = NULL;

            if (pp_py_guard_install(&no) == 0) {
                R = &guarded_reader;
                faults_counted = pp_py_guard_faults();
            }
            else {
                pp_log(PP_LOG_INFO,
                       "pid %d copies Python stacks with process_vm_readv "
                       "(no guarded copies: %s)",
                       (int)getpid(), no ? no : "unknown");
            }
        }
    }
    else {
        R = &local_reader;
        tries_per_chain = 1;
    }
    return 0;
}

int pp_py_walker_init(int gil_free)
{
    return walker_init(gil_free, PP_PY_COPY_SYSCALL);
}

int pp_py_nogil_init(int copy)
{
    return walker_init(1, copy);
}

int pp_py_nogil_copy(void)
{
    return R == &guarded_reader ? PP_PY_COPY_GUARDED : PP_PY_COPY_SYSCALL;
}

void pp_py_nogil_fini(void)
{
    if (R == &guarded_reader) {
        R = &vm_reader;
    }
    pp_py_guard_remove();
}

/* Guarded copies need our handler to be the one the kernel calls: one
 * signal's disposition is looked at a walk (a system call a tick, not a
 * sample), SIGSEGV and SIGBUS in turn.  Somebody who installed another
 * (faulthandler.enable(), a C extension) takes the faults from then on,
 * so copies go through process_vm_readv for the rest of the process. */
static void check_guard(pp_store_t *st)
{
    if (R != &guarded_reader) {
        return;
    }
    check_signal ^= 1;
    if (pp_py_guard_intact(check_signal)) {
        return;
    }
    R = &vm_reader;
    atomic_fetch_add_explicit(&st->c.guard_replaced, 1, memory_order_relaxed);
    if (!loss_logged) {
        loss_logged = 1;
        pp_log(PP_LOG_NOTICE,
               "pid %d: another %s handler replaced the sampler's (an "
               "application calling faulthandler.enable(), say); copying "
               "Python stacks with process_vm_readv from now on",
               (int)getpid(), check_signal ? "SIGBUS" : "SIGSEGV");
    }
}

void pp_py_walk_nogil(pp_store_t *st, pp_walk_target_t *targets, int n)
{
    uint64_t faults;

    check_guard(st);
    walk(st, targets, n);
    /* pages that went away under a guarded copy (each a torn try) */
    faults = pp_py_guard_faults();
    if (faults != faults_counted) {
        atomic_fetch_add_explicit(&st->c.copy_faults, faults - faults_counted,
                                  memory_order_relaxed);
        faults_counted = faults;
    }
}

void pp_py_walk(pp_store_t *st, pp_walk_target_t *targets, int n)
{
    walk(st, targets, n);
}
