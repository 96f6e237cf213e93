/* pp_py_code.c: code objects, for the stack reader.  Owns the cache that
 * maps a code object to its name, file and location table, the one that
 * maps (code object, instruction) to an interned frame id, and the copies
 * of a sample's code object headers; loads a code object into the first
 * (pp_py_code_load).  pp_py_frames.c looks them up on every sample.
 * Sampler thread only: called by the walk, on the sampler thread, under
 * HEAD_LOCK (set-up: by pp_py_walker_init / pp_py_nogil_init); the caches
 * are plain globals of that thread.
 *
 * A code object is copied through the reader (pp_py_read.c) and trusted
 * only while what was read from it still matches: a load is checked
 * against the header read again after its parts, and must start tracing
 * inside its code.  Never dereferences what it has not copied; never
 * creates a Python object, takes a reference or runs Python code.  No
 * Python header.
 */
#include <stdlib.h>
#include <string.h>

#include "pp_py_int.h"

#define LINETABLE_MAX 32768 /* bytes of location table kept */

pp_py_code_info_t *pp_py_code_cache;
pp_py_frame_cache_entry_t *pp_py_frame_cache;
uint8_t *pp_py_code_heads;
size_t pp_py_code_head_stride;
static uint64_t code_loads;

int pp_py_code_init(void)
{
    if (!pp_py_code_cache) {
        pp_py_code_cache =
            calloc(PP_PY_CODE_CACHE_SIZE, sizeof(pp_py_code_info_t));
    }
    if (!pp_py_frame_cache) {
        pp_py_frame_cache =
            calloc(PP_PY_FRAME_CACHE_SIZE, sizeof(pp_py_frame_cache_entry_t));
    }
    /* headers are copied whole, each at its own 16-byte aligned place */
    if (pp_py_code_head_stride != ((pp_py_L->code_header + 15) & ~(size_t)15)) {
        free(pp_py_code_heads);
        pp_py_code_head_stride = (pp_py_L->code_header + 15) & ~(size_t)15;
        pp_py_code_heads = malloc(PP_PY_UNIQ_MAX * pp_py_code_head_stride);
    }
    return pp_py_code_cache && pp_py_frame_cache && pp_py_code_heads ? 0 : -1;
}

int pp_py_code_ready(void)
{
    return pp_py_code_cache != NULL;
}

/* Fill a cache entry from a copied code object header; 0 on success. */
int pp_py_code_load(pp_py_code_info_t *ci, const void *code,
                    const uint8_t *head)
{
    uint8_t bhead[PP_PY_BYTES_HDR_MAX], again[PP_PY_CODE_HDR_MAX];
    const void *lt = pp_py_ptr_at(head, pp_py_L->code_linetable);
    ssize_t blen;

    free(ci->linetable);
    memset(ci, 0, sizeof(*ci));
    ci->func_len = pp_py_read_str(pp_py_ptr_at(head, pp_py_L->code_qualname),
                                  ci->func, sizeof(ci->func), &ci->func_tail);
    ci->file_len = pp_py_read_str(pp_py_ptr_at(head, pp_py_L->code_filename),
                                  ci->file, sizeof(ci->file), &ci->file_tail);
    if (!ci->func_len || !ci->file_len) {
        return -1;
    }
    if (pp_py_R->read(bhead, lt, pp_py_L->bytes_data) == 0 &&
        pp_py_ptr_at(bhead, pp_py_L->obj_type) == pp_py_L->bytes_type &&
        pp_py_L->live(bhead) &&
        (blen = pp_py_ssize_at(bhead, pp_py_L->var_size)) > 0 &&
        blen <= LINETABLE_MAX) {
        ci->linetable = malloc((size_t)blen);
        if (ci->linetable &&
            pp_py_R->read(ci->linetable, (const char *)lt + pp_py_L->bytes_data,
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
    if (pp_py_R->read(again, code, pp_py_L->code_header) != 0 ||
        !pp_py_is_live_code(again) ||
        pp_py_ptr_at(again, pp_py_L->code_qualname) !=
            pp_py_ptr_at(head, pp_py_L->code_qualname) ||
        pp_py_ptr_at(again, pp_py_L->code_filename) !=
            pp_py_ptr_at(head, pp_py_L->code_filename) ||
        pp_py_ptr_at(again, pp_py_L->code_linetable) != lt ||
        pp_py_int_at(again, pp_py_L->code_firstlineno) !=
            pp_py_int_at(head, pp_py_L->code_firstlineno)) {
        free(ci->linetable);
        ci->linetable = NULL;
        return -1;
    }
    ci->code = code;
    ci->gen = ++code_loads;
    ci->qualname = pp_py_ptr_at(head, pp_py_L->code_qualname);
    ci->filename = pp_py_ptr_at(head, pp_py_L->code_filename);
    ci->linetable_obj = lt;
    ci->firstlineno = pp_py_int_at(head, pp_py_L->code_firstlineno);
    ci->firsttraceable = pp_py_int_at(head, pp_py_L->code_firsttraceable);
    ci->ncodeunits = pp_py_ssize_at(head, pp_py_L->var_size);
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
