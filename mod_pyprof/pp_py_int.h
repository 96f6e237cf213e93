/* pp_py_int.h: what the stack reader's files share and nothing else may
 * use: the layout and the reader in use, the size limits of the copies,
 * the inline field accessors of copied structs, and the calls one file of
 * the reader makes into another:
 *
 *   pp_py_read.c   how memory is copied (process_vm_readv, guarded
 *                  memcpy, plain memcpy under the GIL) and str objects
 *                  decoded;
 *   pp_py_code.c   code objects: the caches of their names, location
 *                  tables and interned frames, and a code object's load;
 *   pp_py_frames.c one thread's sample: its frame chain copied, checked
 *                  and decoded into frame ids through those caches (the
 *                  hot path, kept in one translation unit);
 *   pp_py_gil.c    the GILs' state as each walk reads it (GIL blame);
 *   pp_py_walk.c   threads: the walk of the thread lists, the GIL
 *                  holder's walk, and the reader's set-up.
 *
 * Everything declared here is the sampler thread's: its state is plain
 * globals that only that thread reads or writes, set up by
 * pp_py_walker_init / pp_py_nogil_init before the first walk.  Nothing
 * here creates a Python object, takes a reference or runs Python code.
 * The accessors are inline because every frame of every sample goes
 * through them (see tests/bench/sample_cost.c).  No Python header.
 */
#ifndef PP_PY_INT_H
#define PP_PY_INT_H

#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "pp_frames.h"
#include "pp_py.h"
#include "pp_store.h"

/* Headers copied whole: bigger than any supported version's (checked at
 * init against the layout). */
#define PP_PY_CODE_HDR_MAX 512
#define PP_PY_FRAME_HDR_MAX 128
#define PP_PY_STR_HDR_MAX 128
#define PP_PY_BYTES_HDR_MAX 64
#define PP_PY_CHUNK_HDR_MAX 64

/* The layout of the Python sampled (pp_py_walk.c; NULL until a walker
 * init succeeded) and the reader copies go through (pp_py_read.c). */
extern const pp_py_layout_t *pp_py_L;
extern const pp_py_reader_t *pp_py_R;

/* Fields of a copied struct (copies are byte buffers: no alignment). */
static inline const void *pp_py_ptr_at(const void *base, size_t off)
{
    const void *p;
    memcpy(&p, (const char *)base + off, sizeof(p));
    return p;
}

static inline int pp_py_int_at(const void *base, size_t off)
{
    int v;
    memcpy(&v, (const char *)base + off, sizeof(v));
    return v;
}

static inline ssize_t pp_py_ssize_at(const void *base, size_t off)
{
    ssize_t v;
    memcpy(&v, (const char *)base + off, sizeof(v));
    return v;
}

/* A field of a live struct another thread may be writing (a thread
 * state's ids and pointers), read once. */
static inline uintptr_t pp_py_word_in_place(const void *base, size_t off)
{
    return *(const volatile uintptr_t *)((const char *)base + off);
}

/* A torn pointer can be anything: nothing below the first page and
 * nothing outside x86-64/aarch64 user space. */
static inline int pp_py_plausible(const void *p)
{
    return (uintptr_t)p >= 4096 && (uintptr_t)p <= 0x00007fffffffffffULL;
}

/* ------------------------------------------------------- pp_py_read.c */

/* The last bytes of a str's characters as read, and where they are.  A
 * code object freed and replaced by one of the same shape (the same
 * template exec'd or imported again) can get the same address, and so can
 * its name and file strs (pymalloc and malloc hand out the last freed
 * block first): all the pointers a cache entry is checked against match,
 * yet the names differ.  They differ in their characters, most often at
 * the end (a nonce, a module name): a cache hit counts only if these bytes
 * are still there (re-read in one batch per sample). */
#define PP_PY_STR_TAIL 24
typedef struct pp_py_str_tail {
    const void *at; /* address of the bytes; NULL: not checked */
    uint8_t bytes[PP_PY_STR_TAIL];
    uint8_t len;
} pp_py_str_tail_t;

/* A str, copied out as UTF-8 into out (cap bytes); 0 if it is not a live
 * str.  tail, if not NULL, gets the last bytes read. */
/* n code points of `kind` bytes each (1, 2 or 4: a str's) at data, as
 * UTF-8 into buf, cut at a whole character to fit cap - 1 bytes and
 * NUL-terminated; surrogates and out-of-range values become U+FFFD.
 * Returns the bytes written. */
size_t pp_py_ucs_to_utf8(unsigned kind, const uint8_t *data, size_t n,
                         char *buf, size_t cap);
size_t pp_py_read_str(const void *obj, char *out, size_t cap,
                      pp_py_str_tail_t *tail);
/* Pick the reader: plain copies (gil_free 0), else guarded copies (copy
 * PP_PY_COPY_GUARDED, if the guard installs) or process_vm_readv; -1 if
 * this process cannot read itself. */
int pp_py_read_select(int gil_free, int copy);
/* Are copies plain (the sampler holds the GIL)? */
int pp_py_read_plain(void);
/* GIL-free walks, before and after: is the guard still the signal
 * handler (else copies go through process_vm_readv from now on), and the
 * pages that went away under a guarded copy, counted in st. */
void pp_py_read_check_guard(pp_store_t *st);
void pp_py_read_count_faults(pp_store_t *st);

/* ------------------------------------------------------- pp_py_code.c */

#define PP_PY_CODE_CACHE_SIZE 4096  /* power of two */
#define PP_PY_FRAME_CACHE_SIZE 8192 /* power of two */
/* Distinct code objects of one chain: as many as frames, so a stack of
 * PyProfMaxDepth frames that are all different functions (deep recursion
 * through generated code) is read whole, not dropped. */
#define PP_PY_UNIQ_MAX PP_DEPTH_LIMIT

/* A code object as last loaded: its name, file and location table, and
 * the pointers a later copy of its header is checked against. */
typedef struct pp_py_code_info {
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
    pp_py_str_tail_t func_tail, file_tail; /* see pp_py_str_tail_t */
    uint64_t gen;                          /* which load this is (never 0) */
} pp_py_code_info_t;

/* (code object, instruction) -> interned frame, valid for one load of
 * the code object (gen). */
typedef struct pp_py_frame_cache_entry {
    const void *code;
    int lasti;
    uint32_t frame;
    uint64_t gen;
} pp_py_frame_cache_entry_t;

/* The caches (pp_py_code.c's; read and filled by pp_py_frames.c):
 * code_cache by code object address, frame_cache by (code object,
 * instruction), code_heads PP_PY_UNIQ_MAX copied code object headers, each
 * code_head_stride bytes apart. */
extern pp_py_code_info_t *pp_py_code_cache;
extern pp_py_frame_cache_entry_t *pp_py_frame_cache;
extern uint8_t *pp_py_code_heads;
extern size_t pp_py_code_head_stride;

/* Allocate the caches for the layout pp_py_L; 0, or -1 if out of memory. */
int pp_py_code_init(void);
/* Did pp_py_code_init allocate the caches? */
int pp_py_code_ready(void);
/* Fill ci from the copied header head of the code object at code; 0, or
 * -1 if it is not one (or changed while its parts were read). */
int pp_py_code_load(pp_py_code_info_t *ci, const void *code,
                    const uint8_t *head);

static inline pp_py_code_info_t *pp_py_code_entry(const void *code)
{
    return &pp_py_code_cache[((uintptr_t)code >> 4) &
                             (PP_PY_CODE_CACHE_SIZE - 1)];
}

static inline int pp_py_is_live_code(const uint8_t *head)
{
    return pp_py_ptr_at(head, pp_py_L->obj_type) == pp_py_L->code_type &&
           pp_py_L->live(head);
}

/* ----------------------------------------------------- pp_py_frames.c */

/* Allocate the buffer data-stack chunks are copied to; 0, or -1 if out of
 * memory.  Then: how many copies of a chain are tried before its sample
 * is dropped as torn. */
int pp_py_frames_init(void);
void pp_py_frames_set_tries(int tries);
/* Sample the target's thread in thread state ts (under HEAD_LOCK): 0 if
 * ts has no frame (or its frame pointer cannot be read) on the first
 * look, and then t is left as it was; 1 otherwise, t filled (found,
 * torn, frames). */
int pp_py_frames_sample_thread(pp_store_t *st, const void *ts, void *interp,
                               pp_walk_target_t *t);

/* -------------------------------------------------------- pp_py_gil.c */

/* GIL blame is on (pp_py_gil_blame_init succeeded), and the GILs this
 * walk read (emptied at its start). */
extern int pp_py_gil_blame;
extern pp_gil_tick_t pp_py_gils;

/* The index in pp_py_gils of the GIL threads of interp wait for (call
 * under HEAD_LOCK); -1 if it cannot be read. */
int pp_py_gil_of_interp(const void *interp);

/* 3.15: does thread state ts wait for the GIL? */
static inline int pp_py_ts_gil_requested(const void *ts)
{
    return pp_py_L->ts_gil_requested &&
           *(const volatile int *)((const char *)ts +
                                   pp_py_L->ts_gil_requested) == 1;
}

#endif
