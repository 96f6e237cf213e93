/* pp_py.h: private header of the Python layer (the sampler's side only).
 *
 * The layer is split the way CPython's own Modules/_remote_debugging/ is:
 * what a stack looks like in memory is data, and one version-free reader
 * walks it.
 *
 *   pp_py_layout.c   compiled against the headers of the Python that
 *                    mod_wsgi links (Py_BUILD_CORE): fills pp_py_layout_t
 *                    with offsetof()/sizeof() of that exact version, and
 *                    cross-checks them against the running interpreter's
 *                    _Py_DebugOffsets (3.13+).  Every difference between
 *                    3.11, 3.13, 3.14 and 3.15 that the reader sees is
 *                    one #if there.
 *   pp_py_walk.c,    no Python header: find threads, copy frame chains
 *   pp_py_frames.c,  and code objects, decode names and lines, intern
 *   pp_py_code.c,    stacks, read the GILs (split by what they read, with
 *   pp_py_read.c,    a private header, pp_py_int.h).  Read through a
 *   pp_py_gil.c      pp_py_reader_t, so the same code serves the GIL-free
 *                    mode (guarded copies, or process_vm_readv on our own
 *                    pid) and the GIL mode (plain copies while the GIL
 *                    keeps everything still).  Unit-tested on synthetic
 *                    memory with hand-made layouts (tests/unit/
 *                    test_pywalk.c).
 *   pp_py_guard.c    guarded copies: the GIL-free reader's memcpy() from
 *                    our own memory, a fault on a page freed meanwhile
 *                    caught by a SIGSEGV/SIGBUS handler and turned into a
 *                    failed read (process_vm_readv() stays the fallback).
 *   pp_py_rt311.c    the runtime of 3.11: HEAD_LOCK is a PyThread lock
 *                    (with the fork guard 3.11 needs), the GIL is asked
 *                    for in the holder's interpreter.
 *   pp_py_rt.c       the runtime of 3.13 and later: HEAD_LOCK is a PyMutex
 *                    that CPython itself holds across fork(), the drop
 *                    request goes to the holding thread whatever its
 *                    interpreter.
 *
 * The Makefile compiles pp_py_layout.c and exactly one of the two runtime
 * files, chosen from the Python's version; an unsupported version stops the
 * build with one line.
 */
#ifndef PP_PY_H
#define PP_PY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* What a str header says, decoded by the version that knows its bits. */
typedef struct pp_py_str {
    size_t length;   /* code points */
    unsigned kind;   /* 1, 2 or 4 bytes a code point */
    size_t data_off; /* where the characters start, from the object */
    size_t hdr_len;  /* header bytes that must not change between reads */
} pp_py_str_t;

/* Where things are, in bytes from the start of the struct, for the Python
 * this module was built against.  Filled once (pp_py_layout()); the reader
 * takes no other knowledge of CPython. */
typedef struct pp_py_layout {
    const char *version; /* "3.13" */

    /* interpreters and thread states (read in place, under HEAD_LOCK) */
    size_t interp_next, interp_threads_head;
    size_t ts_next, ts_thread_id, ts_native_thread_id;
    size_t ts_frame;       /* 3.13+: current_frame; 3.11: cframe */
    size_t cframe_frame;   /* 3.11: _PyCFrame.current_frame */
    int ts_frame_indirect; /* 3.11: ts_frame points at a _PyCFrame */
    size_t ts_datastack_chunk, ts_datastack_top;

    /* data-stack chunks: frames live in them */
    size_t chunk_previous, chunk_size, chunk_top, chunk_data;

    /* _PyInterpreterFrame */
    size_t frame_size;
    size_t frame_code;  /* f_code (3.11) / f_executable (3.13+) */
    uintptr_t code_tag; /* low bits to clear: 3.14+ stack references */
    size_t frame_previous;
    size_t frame_instr;   /* prev_instr (3.11) / instr_ptr (3.13+) */
    size_t frame_owner;   /* a char */
    int owner_generator;  /* FRAME_OWNED_BY_GENERATOR */
    int owner_not_python; /* owners >= this are no Python code: C-stack
                             entry frames (3.12+), interpreter frames
                             (3.14+) */
    int owner_max;        /* larger owners are garbage: a torn copy */

    /* objects */
    size_t obj_type; /* ob_type */
    size_t var_size; /* ob_size */
    const void *code_type, *str_type, *bytes_type;
    size_t code_qualname, code_filename, code_linetable;
    size_t code_firstlineno, code_firsttraceable; /* ints */
    size_t code_header; /* offsetof co_code_adaptive: the bytecode */
    size_t code_unit;   /* sizeof(_Py_CODEUNIT) */
    size_t bytes_data;  /* offsetof ob_sval */
    size_t str_header;  /* bytes to copy to decode a str's header */

    /* Decode a copied str header: 0 and *out, or -1 if it is not a
     * compact, ready str. */
    int (*str_decode)(const void *hdr, pp_py_str_t *out);
    /* Is a copied object header one of a live object?  A freed block
     * gives itself away by its reference count (see pp_py_layout.c). */
    int (*live)(const void *hdr);

    /* The GIL (struct _gil_runtime_state, the same layout in every
     * supported version).  3.11 has one, in the runtime (runtime_gil is
     * its address); from 3.12 each interpreter points to the GIL it uses
     * (interp_gil: offset of that pointer; runtime_gil NULL). */
    const void *runtime_gil;
    size_t interp_gil;
    size_t gil_last_holder; /* PyThreadState*: valid while locked */
    size_t gil_locked;      /* int: 1 held, 0 free, -1 not created */
    size_t gil_switch_number;
    size_t gil_cond; /* pthread_cond_t its waiters sleep on */
    /* 3.15: int set by a thread state from the moment it waits for the
     * GIL until it has it; 0: the version has none */
    size_t ts_gil_requested;
} pp_py_layout_t;

/* pp_py_layout.c */
const pp_py_layout_t *pp_py_layout(void);
/* 0 if the running interpreter describes itself (_Py_DebugOffsets, 3.13+)
 * as the headers we were built with do; -1 and a reason otherwise. */
int pp_py_layout_check(const char **why);
/* The same for the GIL's fields (3.13+): a difference refuses GIL blame,
 * not sampling. */
int pp_py_layout_gil_check(const char **why);

/* How the reader copies memory. */
typedef struct pp_py_reader {
    /* n bytes at src (an address in this process) into dst; 0 or -1 */
    int (*read)(void *dst, const void *src, size_t n);
    /* n (dst, src, len) triples at once; 0 only if all were read */
    int (*readv)(void *const *dst, const void *const *src, const size_t *len,
                 size_t n);
} pp_py_reader_t;

/* The runtime (pp_py_rt311.c or pp_py_rt.c): sampler thread only. */
void pp_py_rt_head_lock(void);
void pp_py_rt_head_unlock(void);
const void *pp_py_rt_interpreters(void);    /* the first; call under lock */
unsigned long pp_py_rt_sampler_ident(void); /* 0 if none */
/* GIL mode reads an interpreter only if the GIL the sampler holds is its
 * GIL (call under HEAD_LOCK). */
int pp_py_rt_shares_gil(const void *interp);

/* pp_py_guard.c: guarded copies (see there).  Install on the thread that
 * will copy: 0, or -1 and why (a sanitizer build).  Intact: is our handler
 * still the one installed for SIGSEGV (which 0) or SIGBUS (1)?  Remove:
 * puts back what was there before, if ours is still installed.  Copies:
 * 0, or -1 if a page faulted (the fault is counted). */
int pp_py_guard_install(const char **why);
int pp_py_guard_intact(int which);
void pp_py_guard_remove(void);
uint64_t pp_py_guard_faults(void);
int pp_py_guard_copy(void *dst, const void *src, size_t n);
int pp_py_guard_copyv(void *const *dst, const void *const *src,
                      const size_t *len, size_t n);

/* pp_py_walk.c: shared by both runtime files */
int pp_py_walker_init(int gil_free);

#endif
