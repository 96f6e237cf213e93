/* pp_py_layout.c: where CPython keeps what the stack reader needs, for the
 * one version this file is compiled against (the Python that mod_wsgi
 * links), taken from that version's own internal headers.
 *
 * Every difference between the supported versions that the reader sees is
 * an #if here, with the version that brought it:
 *
 *   3.12  _PyCFrame gone from the frame path in 3.13 (tstate->current_frame);
 *         prev_instr (last executed) became instr_ptr (executing now): the
 *         index the line table is asked for is the same expression;
 *         f_code became f_executable; entry frames owned by the C stack
 *         (FRAME_OWNED_BY_CSTACK, f_executable None) run no Python; the
 *         str "ready" bit is gone.
 *   3.14  f_executable is a tagged _PyStackRef (clear Py_TAG_BITS);
 *         FRAME_OWNED_BY_INTERPRETER comes before CSTACK; reference counts
 *         of immortal objects carry flags in their top 16 bits.
 *   3.15  FRAME_OWNED_BY_CSTACK is gone; Py_TAG_BITS is 3.
 *
 * The GIL (for GIL blame: who holds it while a request waits) has the same
 * struct _gil_runtime_state in every supported version; 3.11 keeps the one
 * GIL in the runtime (_PyRuntime.ceval.gil), 3.12 made it per interpreter
 * (interp->ceval.gil points to the one it uses: its own _gil, or the main
 * interpreter's for the legacy sub-interpreters mod_wsgi makes), and 3.15
 * marks a thread state that waits for it (gil_requested).
 *
 * Why offsets compiled from the headers, and not _Py_DebugOffsets, which
 * 3.13+ exports for out-of-process profilers: it names about twenty of the
 * fields used here, but not the data-stack chunk, the owner values, the
 * tag bits or the str state bits, and its own layout changes with every
 * minor version, so a reader built on it would still need code per
 * version.  In-process, the module is compiled against the exact headers
 * of the Python it runs in; what _Py_DebugOffsets is good for is a check
 * that the running interpreter is the one those headers describe (a
 * debug or free-threaded build, another patch release with a moved field):
 * pp_py_layout_check() compares every field both know, and the sampler
 * refuses GIL-free mode on any difference.
 */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <internal/pycore_code.h>
#include <internal/pycore_frame.h>
#include <internal/pycore_pystate.h>
#include <internal/pycore_runtime.h>
#if PY_VERSION_HEX >= 0x030E0000
#include <internal/pycore_interpframe.h>
#include <internal/pycore_stackref.h>
#endif

#include <stdint.h>
#include <string.h>

#include "pp_py.h"

#if !(PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000) && \
    !(PY_VERSION_HEX >= 0x030D0000 && PY_VERSION_HEX < 0x03100000)
#error "mod_pyprof supports CPython 3.11, 3.13, 3.14 and 3.15"
#endif
#ifdef Py_GIL_DISABLED
#error "mod_pyprof does not support free-threaded CPython builds"
#endif

static int str_decode(const void *hdr, pp_py_str_t *out)
{
    PyASCIIObject a;

    memcpy(&a, hdr, sizeof(a));
    if (!a.state.compact || a.length < 0 ||
        (a.state.kind != 1 && a.state.kind != 2 && a.state.kind != 4)) {
        return -1;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (!a.state.ready) {
        return -1;
    }
#endif
    out->length = (size_t)a.length;
    out->kind = a.state.kind;
    out->data_off =
        a.state.ascii ? sizeof(PyASCIIObject) : sizeof(PyCompactUnicodeObject);
    out->hdr_len = sizeof(PyASCIIObject);
    return 0;
}

/* A live object's reference count is a small positive number.  A freed
 * pymalloc block keeps its type pointer but its first word becomes the
 * free list's next pointer (a user-space address, below 2^47) or NULL.
 * 3.14+: immortal objects (statically allocated ones included) keep flags
 * in the top 16 bits, which no user-space address has. */
static int live(const void *hdr)
{
    uint64_t r;

    memcpy(&r, (const char *)hdr + offsetof(PyObject, ob_refcnt), sizeof(r));
#if PY_VERSION_HEX >= 0x030E0000
    if ((r >> 48) != 0 && (r >> 63) == 0 && (uint32_t)r != 0) {
        return 1;
    }
#endif
    return r > 0 && r < ((uint64_t)1 << 32);
}

static pp_py_layout_t layout;

const pp_py_layout_t *pp_py_layout(void)
{
    pp_py_layout_t *l = &layout;

    if (l->version) {
        return l;
    }
    l->interp_next = offsetof(PyInterpreterState, next);
    l->interp_threads_head = offsetof(PyInterpreterState, threads.head);
    l->ts_next = offsetof(PyThreadState, next);
    l->ts_thread_id = offsetof(PyThreadState, thread_id);
    l->ts_native_thread_id = offsetof(PyThreadState, native_thread_id);
    l->ts_datastack_chunk = offsetof(PyThreadState, datastack_chunk);
    l->ts_datastack_top = offsetof(PyThreadState, datastack_top);
    l->chunk_previous = offsetof(_PyStackChunk, previous);
    l->chunk_size = offsetof(_PyStackChunk, size);
    l->chunk_top = offsetof(_PyStackChunk, top);
    l->chunk_data = offsetof(_PyStackChunk, data);
    l->frame_size = offsetof(_PyInterpreterFrame, localsplus);
    l->frame_previous = offsetof(_PyInterpreterFrame, previous);
    l->frame_owner = offsetof(_PyInterpreterFrame, owner);
    l->owner_generator = FRAME_OWNED_BY_GENERATOR;
#if PY_VERSION_HEX < 0x030C0000
    l->version = "3.11";
    l->ts_frame = offsetof(PyThreadState, cframe);
    l->ts_frame_indirect = 1;
    l->cframe_frame = offsetof(_PyCFrame, current_frame);
    l->frame_code = offsetof(_PyInterpreterFrame, f_code);
    l->frame_instr = offsetof(_PyInterpreterFrame, prev_instr);
    l->owner_not_python = FRAME_OWNED_BY_FRAME_OBJECT + 1; /* none */
    l->owner_max = FRAME_OWNED_BY_FRAME_OBJECT;
#else
    l->ts_frame = offsetof(PyThreadState, current_frame);
    l->frame_code = offsetof(_PyInterpreterFrame, f_executable);
    l->frame_instr = offsetof(_PyInterpreterFrame, instr_ptr);
#if PY_VERSION_HEX < 0x030E0000
    l->version = "3.13";
    l->owner_not_python = FRAME_OWNED_BY_CSTACK;
    l->owner_max = FRAME_OWNED_BY_CSTACK;
#else
    l->code_tag = Py_TAG_BITS;
    l->owner_not_python = FRAME_OWNED_BY_INTERPRETER;
#if PY_VERSION_HEX < 0x030F0000
    l->version = "3.14";
    l->owner_max = FRAME_OWNED_BY_CSTACK;
#else
    l->version = "3.15";
    l->owner_max = FRAME_OWNED_BY_INTERPRETER;
#endif
#endif
#endif
    l->obj_type = offsetof(PyObject, ob_type);
    l->var_size = offsetof(PyVarObject, ob_size);
    l->code_type = &PyCode_Type;
    l->str_type = &PyUnicode_Type;
    l->bytes_type = &PyBytes_Type;
    l->code_qualname = offsetof(PyCodeObject, co_qualname);
    l->code_filename = offsetof(PyCodeObject, co_filename);
    l->code_linetable = offsetof(PyCodeObject, co_linetable);
    l->code_firstlineno = offsetof(PyCodeObject, co_firstlineno);
    l->code_firsttraceable = offsetof(PyCodeObject, _co_firsttraceable);
    l->code_header = offsetof(PyCodeObject, co_code_adaptive);
    l->code_unit = sizeof(_Py_CODEUNIT);
    l->bytes_data = offsetof(PyBytesObject, ob_sval);
    l->str_header = sizeof(PyASCIIObject);
    l->str_decode = str_decode;
    l->live = live;
#if PY_VERSION_HEX < 0x030C0000
    l->runtime_gil = &_PyRuntime.ceval.gil;
#else
    l->interp_gil = offsetof(PyInterpreterState, ceval.gil);
#endif
    l->gil_last_holder = offsetof(struct _gil_runtime_state, last_holder);
    l->gil_locked = offsetof(struct _gil_runtime_state, locked);
    l->gil_switch_number = offsetof(struct _gil_runtime_state, switch_number);
    l->gil_cond = offsetof(struct _gil_runtime_state, cond);
#if PY_VERSION_HEX >= 0x030F0000
    l->ts_gil_requested = offsetof(PyThreadState, gil_requested);
#endif
    return l;
}

int pp_py_layout_check(const char **why)
{
#if PY_VERSION_HEX >= 0x030D0000
    const _Py_DebugOffsets *d = &_PyRuntime.debug_offsets;
    static const struct {
        const char *name;
        size_t ours;
        size_t off; /* of the uint64_t in _Py_DebugOffsets */
    } fields[] = {
#define F(what, ours) {#what, ours, offsetof(_Py_DebugOffsets, what)}
        F(runtime_state.interpreters_head,
          offsetof(_PyRuntimeState, interpreters.head)),
        F(interpreter_state.next, offsetof(PyInterpreterState, next)),
        F(interpreter_state.threads_head,
          offsetof(PyInterpreterState, threads.head)),
        F(thread_state.next, offsetof(PyThreadState, next)),
        F(thread_state.current_frame, offsetof(PyThreadState, current_frame)),
        F(thread_state.thread_id, offsetof(PyThreadState, thread_id)),
        F(thread_state.native_thread_id,
          offsetof(PyThreadState, native_thread_id)),
        F(thread_state.datastack_chunk,
          offsetof(PyThreadState, datastack_chunk)),
        F(interpreter_frame.previous, offsetof(_PyInterpreterFrame, previous)),
        F(interpreter_frame.executable,
          offsetof(_PyInterpreterFrame, f_executable)),
        F(interpreter_frame.instr_ptr,
          offsetof(_PyInterpreterFrame, instr_ptr)),
        F(interpreter_frame.owner, offsetof(_PyInterpreterFrame, owner)),
        F(code_object.filename, offsetof(PyCodeObject, co_filename)),
        F(code_object.qualname, offsetof(PyCodeObject, co_qualname)),
        F(code_object.linetable, offsetof(PyCodeObject, co_linetable)),
        F(code_object.firstlineno, offsetof(PyCodeObject, co_firstlineno)),
        F(code_object.co_code_adaptive,
          offsetof(PyCodeObject, co_code_adaptive)),
        F(pyobject.ob_type, offsetof(PyObject, ob_type)),
#undef F
    };
    size_t i;
    uint64_t v;

    if (memcmp(d->cookie, _Py_Debug_Cookie, sizeof(d->cookie)) != 0) {
        *why = "no _Py_DebugOffsets cookie in the running interpreter";
        return -1;
    }
    if ((d->version >> 16) != ((uint64_t)PY_VERSION_HEX >> 16)) {
        *why = "the running interpreter is another minor version";
        return -1;
    }
    if (d->free_threaded) {
        *why = "the running interpreter is a free-threaded build";
        return -1;
    }
    for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        memcpy(&v, (const char *)d + fields[i].off, sizeof(v));
        if (v != fields[i].ours) {
            *why = fields[i].name;
            return -1;
        }
    }
#else
    (void)why;
#endif
    return 0;
}

int pp_py_layout_gil_check(const char **why)
{
#if PY_VERSION_HEX >= 0x030D0000
    const _Py_DebugOffsets *d = &_PyRuntime.debug_offsets;
    const uint64_t gil = d->interpreter_state.gil_runtime_state;

    /* the _gil fields are offsets in the interpreter of its own GIL; the
     * struct's are what is left after taking the GIL's own offset off */
    if (d->interpreter_state.ceval_gil !=
        offsetof(PyInterpreterState, ceval.gil)) {
        *why = "interpreter_state.ceval_gil";
        return -1;
    }
    if (d->interpreter_state.gil_runtime_state_locked - gil !=
        offsetof(struct _gil_runtime_state, locked)) {
        *why = "interpreter_state.gil_runtime_state_locked";
        return -1;
    }
    if (d->interpreter_state.gil_runtime_state_holder - gil !=
        offsetof(struct _gil_runtime_state, last_holder)) {
        *why = "interpreter_state.gil_runtime_state_holder";
        return -1;
    }
#if PY_VERSION_HEX >= 0x030F0000
    if (d->thread_state.gil_requested !=
        offsetof(PyThreadState, gil_requested)) {
        *why = "thread_state.gil_requested";
        return -1;
    }
#endif
#else
    (void)why;
#endif
    return 0;
}
