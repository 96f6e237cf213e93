/* pp_py_frames.c: one thread's sample, the stack reader's hot path.  Copies
 * the frame chain of a thread state (the innermost frame pointer and the
 * thread's data-stack chunks, one read each, frames read where they were
 * copied), checks it (callers below callees within a chunk, owners in
 * range), and decodes it: each distinct code object's header read in one
 * batch with the last bytes of its cached names, then names and lines from
 * the caches of pp_py_code.c, interned in the store.  A chain that does not
 * check out is copied again, up to the reader's tries, then the sample is
 * dropped as torn.  Copying and decoding live in one translation unit on
 * purpose: every sample of every thread runs through them (see
 * tests/bench/sample_cost.c).
 *
 * Sampler thread only: pp_py_frames_sample_thread is called by the walk
 * (pp_py_walk.c) under HEAD_LOCK, which keeps the thread state itself
 * alive; everything the thread state points to is copied through the
 * reader (pp_py_read.c), never dereferenced in place.  The scratch buffers
 * are plain globals of that thread.  Never creates a Python object, takes
 * a reference or runs Python code.  No Python header.
 */
#include <stdlib.h>
#include <string.h>

#include "pp_linetable.h"
#include "pp_py_int.h"

#define CHUNK_COPY_MAX ((size_t)512 * 1024)
#define REGIONS_MAX 16                 /* data-stack chunks copied per chain */
#define UNIQ_HASH (2 * PP_PY_UNIQ_MAX) /* power of two */
/* Distinct name tails of one sample looked for among those already to be
 * read, at most (past it, read again: the search is quadratic). */
#define TAIL_DEDUP_MAX 64

/* One frame of a copied chain. */
typedef struct chain_frame {
    const void *code;
    const void *instr;
    int owner;
} chain_frame_t;

static int tries_per_chain = 1;
static char *chunk_copy; /* the data-stack chunks of the chain copied */

/* --------------------------------------------------------------- chains */

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
        pp_py_R->read(chunk_copy + rs->fill, base, used) != 0) {
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
        uint8_t head[PP_PY_CHUNK_HDR_MAX];
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
        if (!pp_py_plausible(rs->next) ||
            pp_py_R->read(head, rs->next, pp_py_L->chunk_data) != 0) {
            rs->next = NULL;
            return NULL;
        }
        csize = (size_t)pp_py_ssize_at(head, pp_py_L->chunk_size);
        ctop = (size_t)pp_py_ssize_at(head, pp_py_L->chunk_top);
        if (ctop > csize / sizeof(void *) ||
            copy_region(rs, (const char *)rs->next + pp_py_L->chunk_data,
                        ctop * sizeof(void *)) != 0) {
            rs->next = NULL;
            return NULL;
        }
        rs->next = pp_py_ptr_at(head, pp_py_L->chunk_previous);
    }
}

/* Where the thread's innermost frame pointer is; NULL if that cannot be
 * told. */
static const void *top_frame_at(const void *ts)
{
    if (pp_py_L->ts_frame_indirect) {
        const void *cf =
            (const void *)pp_py_word_in_place(ts, pp_py_L->ts_frame);
        if (!pp_py_plausible(cf)) {
            return NULL;
        }
        return (const char *)cf + pp_py_L->cframe_frame;
    }
    return (const char *)ts + pp_py_L->ts_frame;
}

/* The thread's innermost frame, or NULL; -1 if it cannot be read. */
static int top_frame(const void *ts, const void **top)
{
    const void *at = top_frame_at(ts);

    return at ? pp_py_R->read(top, at, sizeof(*top)) : -1;
}

/* The innermost frame pointer and the current data-stack chunk (its
 * header, for the older chunk's address, and its frames up to the top)
 * in one read, the pointer first as when read apart (3.13 and later: the
 * pointer is the thread state's, read in place just before).  0: *top is
 * read and, when the chunk had frames, rs holds them; -1: nothing was
 * (the caller reads them one at a time). */
static int copy_top_and_chunk(const void *ts, const void **top, regions_t *rs)
{
    const char *chunk =
        (const char *)pp_py_word_in_place(ts, pp_py_L->ts_datastack_chunk);
    const char *dtop =
        (const char *)pp_py_word_in_place(ts, pp_py_L->ts_datastack_top);
    const void *at = top_frame_at(ts);
    void *dst[2];
    const void *src[2];
    size_t len[2], used = 0, k = 0;

    if (!at || !pp_py_plausible(chunk) || !pp_py_plausible(dtop)) {
        return -1;
    }
    if (dtop > chunk + pp_py_L->chunk_data &&
        (size_t)(dtop - chunk) <= CHUNK_COPY_MAX) {
        used = (size_t)(dtop - chunk) - pp_py_L->chunk_data;
    }
    if (pp_py_L->ts_frame_indirect) {
        /* 3.11: in the _PyCFrame on the thread's C stack */
        dst[k] = (void *)top;
        src[k] = at;
        len[k++] = sizeof(*top);
    }
    else {
        /* a field of the thread state, which HEAD_LOCK keeps, read in
         * place like its data-stack fields (one piece less to read) */
        *top = (const void *)pp_py_word_in_place(ts, pp_py_L->ts_frame);
    }
    dst[k] = chunk_copy;
    src[k] = chunk;
    len[k++] = pp_py_L->chunk_data + used;
    if (pp_py_R->readv(dst, src, len, k) != 0) {
        return -1;
    }
    rs->next = pp_py_ptr_at(chunk_copy, pp_py_L->chunk_previous);
    rs->fill = pp_py_L->chunk_data + used;
    if (used) {
        rs->r[0].base = chunk + pp_py_L->chunk_data;
        rs->r[0].used = used;
        rs->r[0].at = pp_py_L->chunk_data;
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
            (const void *)pp_py_word_in_place(ts, pp_py_L->ts_datastack_chunk);
        const char *dtop =
            (const char *)pp_py_word_in_place(ts, pp_py_L->ts_datastack_top);

        rs.n = 0;
        rs.fill = 0;
        rs.next = NULL;
        if (top_frame(ts, &f) != 0) {
            return -2; /* *top: what an earlier try read, if any */
        }
        /* the current chunk now; older ones when the walk gets there */
        if (pp_py_plausible(chunk) && pp_py_plausible(dtop)) {
            const char *base = (const char *)chunk + pp_py_L->chunk_data;
            if (dtop > base && (size_t)(dtop - base) <= CHUNK_COPY_MAX) {
                copy_region(&rs, base, (size_t)(dtop - base));
            }
            if (pp_py_R->read(&rs.next,
                              (const char *)chunk + pp_py_L->chunk_previous,
                              sizeof(void *)) != 0) {
                rs.next = NULL;
            }
        }
    }
    *top = f;
    while (f && guard++ < 4 * PP_DEPTH_LIMIT) {
        uint8_t buf[PP_PY_FRAME_HDR_MAX];
        const uint8_t *fr;
        const char *fp = (const char *)f;
        const void *prev;
        const region_t *r;
        int owner;

        if (!pp_py_plausible(fp)) {
            return -1;
        }
        /* a frame inside a copied chunk is read where it was copied */
        if ((r = region_of(&rs, fp, pp_py_L->frame_size))) {
            fr = (const uint8_t *)chunk_copy + r->at + (size_t)(fp - r->base);
        }
        else if (pp_py_R->read(buf, f, pp_py_L->frame_size) != 0) {
            return -1;
        }
        else {
            fr = buf;
        }
        /* a char in CPython; any value above the largest owner (a byte
         * of a torn copy, read unsigned) is garbage */
        owner = fr[pp_py_L->frame_owner];
        prev = pp_py_ptr_at(fr, pp_py_L->frame_previous);
        if (owner > pp_py_L->owner_max) {
            return -1;
        }
        if (owner < pp_py_L->owner_not_python) {
            if (*n >= cap) {
                *truncated = 1;
                break;
            }
            out[*n].code = (const void *)((uintptr_t)pp_py_ptr_at(
                                              fr, pp_py_L->frame_code) &
                                          ~pp_py_L->code_tag);
            out[*n].instr = pp_py_ptr_at(fr, pp_py_L->frame_instr);
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

/* ----------------------------------------------------------- decoding */

static int cache_matches(const pp_py_code_info_t *ci, const void *code,
                         const uint8_t *head)
{
    return ci->code == code &&
           ci->qualname == pp_py_ptr_at(head, pp_py_L->code_qualname) &&
           ci->filename == pp_py_ptr_at(head, pp_py_L->code_filename) &&
           ci->linetable_obj == pp_py_ptr_at(head, pp_py_L->code_linetable) &&
           ci->firstlineno == pp_py_int_at(head, pp_py_L->code_firstlineno);
}

/* Cache entries that still match their code object's pointers keep
 * their names only if the last bytes of those names are still the ones
 * read (see pp_py_str_tail_t); the others are dropped, to be loaded again.  One
 * batched read for every code object of the sample. */
static void check_cached_names(const uint8_t *heads, size_t stride,
                               const void *const *addrs, uint32_t nuniq)
{
    static void *dst[2 * PP_PY_UNIQ_MAX];
    static const void *src[2 * PP_PY_UNIQ_MAX];
    static size_t len[2 * PP_PY_UNIQ_MAX];
    static uint8_t now[2 * PP_PY_UNIQ_MAX][PP_PY_STR_TAIL];
    static pp_py_code_info_t *owner[2 * PP_PY_UNIQ_MAX];
    static const pp_py_str_tail_t *tails[2 * PP_PY_UNIQ_MAX];
    uint32_t k, m = 0, j;
    int ok;

    for (k = 0; k < nuniq; k++) {
        pp_py_code_info_t *ci = pp_py_code_entry(addrs[k]);
        const pp_py_str_tail_t *pair[2];
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
    ok = pp_py_R->readv(dst, src, len, m) == 0;
    for (j = 0; j < m; j++) {
        if (!ok || memcmp(now[j], tails[j]->bytes, tails[j]->len) != 0) {
            owner[j]->code = NULL; /* reload: its names changed */
        }
    }
}

/* The headers of a chain's distinct code objects into pp_py_code_heads, and
 * with them, in the same read, the last bytes of the names of those whose
 * cache entry is theirs (see pp_py_str_tail_t): an entry whose bytes changed is
 * dropped, to be loaded again.  If that one read fails (a name freed
 * meanwhile, say), the headers are read alone and the names apart, as
 * check_cached_names does.  -1: a header could not be read. */
static int read_heads_and_names(const void *const *addrs, uint32_t nuniq)
{
    static void *dst[3 * PP_PY_UNIQ_MAX];
    static const void *src[3 * PP_PY_UNIQ_MAX];
    static size_t len[3 * PP_PY_UNIQ_MAX];
    static uint8_t now[2 * PP_PY_UNIQ_MAX][PP_PY_STR_TAIL];
    static pp_py_code_info_t *owner[2 * PP_PY_UNIQ_MAX];
    static const pp_py_str_tail_t *tails[2 * PP_PY_UNIQ_MAX];
    static uint32_t
        bytes_of[2 * PP_PY_UNIQ_MAX]; /* tail -> its bytes in now[] */
    const size_t stride = pp_py_code_head_stride;
    uint32_t k, m = 0, nb = 0, j;

    for (k = 0; k < nuniq; k++) {
        dst[k] = pp_py_code_heads + k * stride;
        src[k] = addrs[k];
        len[k] = pp_py_L->code_header;
    }
    for (k = 0; k < nuniq; k++) {
        pp_py_code_info_t *ci = pp_py_code_entry(addrs[k]);
        const pp_py_str_tail_t *pair[2];
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
    if (pp_py_R->readv(dst, src, len, nuniq + nb) != 0) {
        if (pp_py_R->readv(dst, src, len, nuniq) != 0) {
            return -1;
        }
        check_cached_names(pp_py_code_heads, stride, addrs, nuniq);
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
    static const void *addrs[PP_PY_UNIQ_MAX];
    static uint16_t uniq_of[PP_DEPTH_LIMIT]; /* frame -> index in addrs */
    /* code object -> index + 1 in addrs, valid where stamp is this call's */
    static struct {
        const void *code;
        uint32_t stamp;
        uint16_t at;
    } seen[UNIQ_HASH];
    static uint32_t stamp;
    static pp_py_code_info_t *uniq_ci[PP_PY_UNIQ_MAX];
    const size_t stride = pp_py_code_head_stride;
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
                if (!pp_py_plausible(fr[i].code)) {
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
        const uint8_t *head = pp_py_code_heads + k * stride;

        /* a code object being deallocated (refcount 0) may already have
         * released its names: not one to read */
        if (!pp_py_is_live_code(head)) {
            return -1;
        }
        uniq_ci[k] = pp_py_code_entry(addrs[k]);
        if (!cache_matches(uniq_ci[k], addrs[k], head) &&
            pp_py_code_load(uniq_ci[k], addrs[k], head) != 0) {
            return -1;
        }
    }
    for (i = 0; i < n && t->depth < t->max_depth; i++) {
        pp_py_code_info_t *ci = uniq_ci[uniq_of[i]];
        pp_py_frame_cache_entry_t *fe;
        uintptr_t h;
        intptr_t unit;
        int line, lasti;
        uint32_t id;

        /* two code objects of this chain that share a cache entry: the
         * later one's load evicted this one, load it again (its header,
         * checked above, is the copy of this sample) */
        if (ci->code != fr[i].code &&
            pp_py_code_load(ci, fr[i].code,
                            pp_py_code_heads + uniq_of[i] * stride) != 0) {
            return -1;
        }
        unit = ((intptr_t)fr[i].instr -
                (intptr_t)((const char *)fr[i].code + pp_py_L->code_header)) /
               (intptr_t)pp_py_L->code_unit;
        /* An instruction outside its code is a torn copy.  Checked first:
         * _co_firsttraceable is read from the same copy, and a garbage one
         * larger than the code would otherwise pass the frame off as not
         * started yet, and the sample as good with a frame left out. */
        if (unit < -1 || unit > ci->ncodeunits) {
            return -1;
        }
        /* _PyFrame_IsIncomplete: not started yet */
        if (fr[i].owner != pp_py_L->owner_generator &&
            unit < ci->firsttraceable) {
            continue;
        }
        lasti = (int)unit;
        h = ((uintptr_t)fr[i].code >> 4) ^ ((uintptr_t)lasti * 0x9e3779b1u);
        fe = &pp_py_frame_cache[h & (PP_PY_FRAME_CACHE_SIZE - 1)];
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

/* ----------------------------------------------------------- one thread */

/* Sample the target's thread in thread state ts: 0 if ts has no frame
 * (or its frame pointer cannot be read) on the first look, and then t
 * is left as it was. */
int pp_py_frames_sample_thread(pp_store_t *st, const void *ts, void *interp,
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

int pp_py_frames_init(void)
{
    if (!chunk_copy) {
        chunk_copy = malloc(CHUNK_COPY_MAX);
    }
    return chunk_copy ? 0 : -1;
}

void pp_py_frames_set_tries(int tries)
{
    tries_per_chain = tries;
}
