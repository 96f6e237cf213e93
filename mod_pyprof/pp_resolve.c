/* pp_resolve.c: a profile's resolved snapshot (see pp_profile.h), the
 * one place the views' data is read from the store: the frames' names and
 * the stacks' nodes copied into memory the profile owns, so trees, views
 * and exports read that copy only; also the by-hand frames and nodes
 * tests and fuzzers build, and the two readers of one stack straight from
 * the store (pp_profile_frames, pp_profile_frame).  Every node chain is
 * walked with a depth bound, in the store and in the profile's own trie,
 * so a corrupt store cannot loop.  Never writes to the store.  Callers go
 * through pp_profile.h; pp_tree.c also copies stack by stack as it builds
 * a tree, through pp_resolve_int.h.
 */
#include <stdlib.h>
#include <string.h>

#include "pp_grow.h"
#include "pp_hash.h"
#include "pp_profile.h"
#include "pp_resolve_int.h"

/* ---- the resolved snapshot ---- */

static const pp_pframe_t unknown_frame = {"[unknown]", "", 0, 0, 0, 0};

uint64_t pp_profile_function_id(const pp_frame_view_t *fv)
{
    return pp_fnv1a64_str(
        pp_fnv1a64(pp_fnv1a64_str(PP_FNV64_BASIS, fv->function), "\xff", 1),
        fv->file);
}

/* A frame of the profile's own: function and file copied into one block. */
static uint32_t frame_put(pp_profile_t *p, const char *function,
                          const char *file, uint32_t line, int known,
                          uint32_t key)
{
    size_t fl = strlen(function), sl = strlen(file);
    pp_frame_view_t fv;
    pp_pframe_t *f;
    char *mem;

    if (!(f = pp_grow32(p->frames, &p->frames_cap, (size_t)p->nframes + 1,
                        sizeof(*f), 256, UINT32_MAX - 1, 0))) {
        return 0;
    }
    p->frames = f;
    if (!(mem = malloc(fl + sl + 2))) {
        return 0;
    }
    memcpy(mem, function, fl + 1);
    memcpy(mem + fl + 1, file, sl + 1);
    f = &p->frames[p->nframes++];
    f->function = mem;
    f->file = mem + fl + 1;
    f->line = line;
    f->known = known;
    f->key = key ? key : p->nframes;
    fv.function = f->function;
    fv.file = f->file;
    fv.line = line;
    f->fid = pp_profile_function_id(&fv);
    return p->nframes;
}

uint32_t pp_profile_new_frame(pp_profile_t *p, const char *function,
                              const char *file, uint32_t line)
{
    return frame_put(p, function, file, line, 1, 0);
}

uint32_t pp_profile_new_node(pp_profile_t *p, uint32_t parent, uint32_t frame)
{
    pp_pnode_t *nv;

    if (parent > p->nnodes || !frame || frame > p->nframes) {
        return 0;
    }
    nv = pp_grow32(p->nodes, &p->nodes_cap, (size_t)p->nnodes + 1, sizeof(*nv),
                   1024, UINT32_MAX - 1, 0);
    if (!nv) {
        return 0;
    }
    p->nodes = nv;
    p->nodes[p->nnodes].parent = parent;
    p->nodes[p->nnodes].frame = frame;
    return ++p->nnodes;
}

int pp_profile_add_resolved(pp_profile_t *p, uint32_t leaf, uint64_t count,
                            uint64_t weight_us, uint64_t cpu_us)
{
    uint32_t *slot;

    if (!leaf || leaf > p->nnodes || !count) {
        return 0;
    }
    if (pp_profile_add(p, leaf, count, weight_us, cpu_us)) {
        return -1;
    }
    slot = pp_u64map_find(&p->index, leaf);
    if (slot && *slot) {
        p->v[*slot - 1].leaf = leaf;
    }
    return 0;
}

/* The profile's id of a store frame, copied on first use. */
static uint32_t resolve_frame(pp_profile_t *p, const pp_store_t *st,
                              uint32_t sframe)
{
    uint32_t *slot = pp_u64map_get(&p->frame_of, sframe, 0);
    pp_frame_view_t fv;
    uint32_t id;

    if (!slot) {
        return 0;
    }
    if (*slot != 0) {
        /* cppcheck takes the value for the pointer tested above */
        return *slot; /* cppcheck-suppress identicalInnerCondition */
    }
    if (pp_store_frame_view(st, sframe, &fv)) {
        id = frame_put(p, fv.function, fv.file, fv.line, 1, sframe);
    }
    else {
        id = frame_put(p, unknown_frame.function, unknown_frame.file, 0, 0,
                       sframe);
    }
    /* the map may have grown meanwhile: look the slot up again */
    slot = pp_u64map_get(&p->frame_of, sframe, 0);
    if (slot) {
        *slot = id;
    }
    return id;
}

/* Walk the store up from a stack's leaf until a node already copied (or
 * the root, or a node that does not resolve), then copy the missing part
 * top-down.  Bounded by the depth limit, so a corrupt store cannot loop.
 * -1 on ENOMEM. */
int pp_resolve_stack(pp_profile_t *p, const pp_store_t *st, pp_prof_stack_t *s)
{
    uint32_t chain[PP_DEPTH_LIMIT + 2], frames[PP_DEPTH_LIMIT + 2];
    uint32_t *slots[PP_DEPTH_LIMIT + 2];
    uint32_t n = 0, node = s->node, parent = 0, pnode, j, cap;
    uint32_t *slot;

    /* one lookup per node: a node not copied yet gets a 0 slot, filled
     * once its part of the stack is copied (a slot left 0 reads as not
     * copied, so a stack cut short leaves nothing half-made) */
    cap = p->node_of.cap;
    while (node && n < PP_DEPTH_LIMIT + 2) {
        if (!(slot = pp_u64map_get(&p->node_of, node, 0))) {
            return -1;
        }
        if (*slot) {
            parent = *slot;
            break;
        }
        if (!pp_store_node_get(st, node, &pnode, &frames[n])) {
            break;
        }
        slots[n] = slot;
        chain[n++] = node;
        node = pnode;
    }
    for (j = n; j-- > 0;) {
        uint32_t f = resolve_frame(p, st, frames[j]), id;
        if (!f || !(id = pp_profile_new_node(p, parent, f))) {
            return -1;
        }
        /* the map may have grown since the slot was found */
        if (p->node_of.cap != cap) {
            slots[j] = pp_u64map_get(&p->node_of, chain[j], 0);
            if (!slots[j]) {
                return -1;
            }
        }
        *slots[j] = id;
        parent = id;
    }
    s->leaf = parent;
    return 0;
}

int pp_resolve_init(pp_profile_t *p)
{
    return (!p->frame_of.keys && pp_u64map_init(&p->frame_of, 1024)) ||
                   (!p->node_of.keys && pp_u64map_init(&p->node_of, 1024))
               ? -1
               : 0;
}

/* Drop the copied nodes and what maps store nodes to them: every stack
 * reads as unresolved again.  Frames stay, with their ids. */
void pp_resolve_drop_nodes(pp_profile_t *p)
{
    size_t i;

    for (i = 0; i < p->n; i++) {
        p->v[i].leaf = 0;
    }
    free(p->nodes);
    p->nodes = NULL;
    p->nnodes = p->nodes_cap = 0;
    pp_u64map_free(&p->node_of);
}

int pp_profile_resolve(pp_profile_t *p, const pp_store_t *st)
{
    size_t i;
    int rc = 0;

    if (pp_resolve_init(p)) {
        return -1;
    }
    for (i = 0; i < p->n && rc == 0; i++) {
        if (!p->v[i].leaf) {
            rc = pp_resolve_stack(p, st, &p->v[i]);
        }
    }
    /* store node -> copy served the copying only (a later call copies
     * again the nodes new stacks share with these: same frames, same
     * output) */
    pp_u64map_free(&p->node_of);
    return rc;
}

const pp_pframe_t *pp_profile_pframe(const pp_profile_t *p, uint32_t frame)
{
    if (!frame || frame > p->nframes) {
        return &unknown_frame;
    }
    return &p->frames[frame - 1];
}

uint32_t pp_profile_stack_frames(const pp_profile_t *p, size_t i, uint32_t *out,
                                 uint32_t cap)
{
    uint32_t tmp[PP_DEPTH_LIMIT + 2];
    uint32_t n = 0, k, node = i < p->n ? p->v[i].leaf : 0;

    while (node && node <= p->nnodes && n < PP_DEPTH_LIMIT + 2) {
        tmp[n++] = p->nodes[node - 1].frame;
        node = p->nodes[node - 1].parent;
    }
    for (k = 0; k < n && k < cap; k++) {
        /* tmp[0..n) was written by the loop above */
        // cppcheck-suppress uninitvar
        out[k] = tmp[n - 1 - k];
    }
    return k;
}

/* ---- store readers for one stack ---- */

uint32_t pp_profile_frames(const pp_store_t *st, uint32_t node, uint32_t *out,
                           uint32_t cap)
{
    uint32_t tmp[PP_DEPTH_LIMIT + 2];
    uint32_t n = 0, i, parent, frame;

    while (node && n < PP_DEPTH_LIMIT + 2 &&
           pp_store_node_get(st, node, &parent, &frame)) {
        tmp[n++] = frame;
        node = parent;
    }
    /* root first; if cap is smaller, the root-most cap frames */
    for (i = 0; i < n && i < cap; i++) {
        /* tmp[0..n) was written by the loop above */
        // cppcheck-suppress uninitvar
        out[i] = tmp[n - 1 - i];
    }
    return i;
}

void pp_profile_frame(const pp_store_t *st, uint32_t frame, pp_frame_view_t *fv)
{
    if (!pp_store_frame_view(st, frame, fv)) {
        fv->function = "[unknown]";
        fv->file = "";
        fv->line = 0;
    }
}
