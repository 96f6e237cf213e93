/* pp_profile.h: a set of sampled stacks, whatever it came from (one
 * request, a location since start, a time window, the slow side of a
 * differential view), and the views computed from it: the call tree
 * merged per function, hot functions (self and total), and resolved
 * frames for the exports.
 *
 * Built from snapshot reads of the store, then resolved once
 * (pp_profile_resolve, pp_profile_resolve_tree): the frames' names and
 * the stacks' nodes are copied into memory the profile owns, and the
 * trees, views and exports read that copy only.  Owns heap memory
 * (malloc), so only the handler uses it, never a request thread or the
 * sampler.
 */
#ifndef PP_PROFILE_H
#define PP_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#include "pp_store.h"
#include "pp_u64map.h"

/* A frame as the views and exports see it: names copied out of the store
 * (the profile owns them), and the function's identity (name and file,
 * pp_profile_function_id).  key orders frames the way the store's ids
 * did (ties in the views), so output does not depend on resolve order. */
typedef struct pp_pframe {
    const char *function;
    const char *file;
    uint32_t line;
    int known;    /* 0: the store did not resolve it ("[unknown]") */
    uint32_t key; /* the store's frame id (or the local id, by hand) */
    uint64_t fid; /* pp_profile_function_id */
} pp_pframe_t;

/* A node of the profile's own trie: its frame and its caller (ids are
 * index + 1; 0 = none).  A caller always comes before its callees. */
typedef struct pp_pnode {
    uint32_t parent;
    uint32_t frame;
} pp_pnode_t;

typedef struct pp_prof_stack {
    uint32_t node; /* key: leaf node id in the store (merging, order) */
    uint32_t leaf; /* resolved: leaf in the profile's trie (0: none) */
    uint64_t count;
    uint64_t weight_us;
    uint64_t cpu_us;
} pp_prof_stack_t;

typedef struct pp_profile {
    pp_prof_stack_t *v;
    size_t n, cap;
    uint64_t samples;   /* sum of counts */
    uint64_t weight_us; /* sum of weights */
    uint64_t cpu_us;
    /* node -> index + 1, to merge stacks from several sources */
    pp_u64map_t index;
    /* the resolved snapshot (pp_profile_resolve): frames and nodes the
     * profile owns, so views and exports never read the store */
    pp_pframe_t *frames;
    uint32_t nframes, frames_cap;
    pp_pnode_t *nodes;
    uint32_t nnodes, nodes_cap;
    pp_u64map_t frame_of, node_of; /* store id -> local id (resolving) */
} pp_profile_t;

void pp_profile_init(pp_profile_t *p);
void pp_profile_free(pp_profile_t *p);
/* Add samples of one stack (merged with the same node).  -1 on ENOMEM. */
int pp_profile_add(pp_profile_t *p, uint32_t node, uint64_t count,
                   uint64_t weight_us, uint64_t cpu_us);
int pp_profile_add_record(pp_profile_t *p, const pp_record_t *rec);
/* Entries of an aggregate table that belong to `location` (store row). */
int pp_profile_add_table(pp_profile_t *p, const pp_agg_entry_t *tab, uint32_t n,
                         int location);
/* Minutes of the last `window_us` before now_us (current minute included). */
int pp_profile_add_window(pp_profile_t *p, const pp_store_t *st, int location,
                          int64_t now_us, int64_t window_us);
/* Take samples away from a stack (floored at zero).  -1 on ENOMEM (the
 * merge index, dropped by pp_profile_resolve_tree, could not
 * be built again). */
int pp_profile_subtract(pp_profile_t *p, uint32_t node, uint64_t count,
                        uint64_t weight_us, uint64_t cpu_us);
/* Sort stacks by count, biggest first. */
void pp_profile_sort(pp_profile_t *p);

/* Which requests of a location: all, the slowest (the store's slow table), or
 * the rest (all minus the slowest, stack by stack). */
enum { PP_SIDE_ALL = 0, PP_SIDE_SLOW = 1, PP_SIDE_REST = 2 };

/* The stack set of a location (store row): since the start, over the
 * last since_us (per-minute tables), or one side of the slow/rest split;
 * sorted, not yet resolved.  -1 on ENOMEM (p holds what was added: free
 * it all the same). */
int pp_profile_of_location(pp_profile_t *p, const pp_store_t *st, int location,
                           int64_t now_us, int64_t since_us, int side);

/* Resolve once: copy the frames and nodes the stacks use out of the store
 * into the profile (bounded walks, depth PP_DEPTH_LIMIT + 2; a node the
 * store does not resolve ends its stack there).  Run it after building,
 * before any export; stacks already resolved are kept.  The copy is a
 * subset of the store's node table.  The map that only serves copying
 * (store node -> copy) is freed; the merge index (p->index) stays.  -1 on
 * ENOMEM (the stacks not reached stay unresolved). */
int pp_profile_resolve(pp_profile_t *p, const pp_store_t *st);

/* Building by hand, no store: a frame (strings copied) and a node under
 * `parent` (0: a root); each returns its id, 0 on ENOMEM. */
uint32_t pp_profile_new_frame(pp_profile_t *p, const char *function,
                              const char *file, uint32_t line);
uint32_t pp_profile_new_node(pp_profile_t *p, uint32_t parent, uint32_t frame);
/* A resolved stack whose leaf is the trie node `leaf` (its id is the
 * stack's key).  -1 on ENOMEM. */
int pp_profile_add_resolved(pp_profile_t *p, uint32_t leaf, uint64_t count,
                            uint64_t weight_us, uint64_t cpu_us);

/* A resolved frame; an id that does not resolve reads as "[unknown]". */
const pp_pframe_t *pp_profile_pframe(const pp_profile_t *p, uint32_t frame);
/* The resolved frames (local ids) of stack i, root first, at most cap;
 * returns the depth (bounded walk). */
uint32_t pp_profile_stack_frames(const pp_profile_t *p, size_t i, uint32_t *out,
                                 uint32_t cap);

/* Store readers for pages that show a single stack (the overview): frames
 * of a store node, root first; returns the depth (bounded walk). */
uint32_t pp_profile_frames(const pp_store_t *st, uint32_t node, uint32_t *out,
                           uint32_t cap);
/* A frame's names, or "[unknown]" if the id does not resolve. */
void pp_profile_frame(const pp_store_t *st, uint32_t frame,
                      pp_frame_view_t *fv);
/* A function's identity whatever its line: its name and file, hashed
 * (FNV-1a), the same in every tree. */
uint64_t pp_profile_function_id(const pp_frame_view_t *fv);

/* ---- call tree, merged per function ---- */

typedef struct pp_tnode {
    uint32_t parent; /* index + 1; 0 = top level */
    uint32_t fkey;   /* function identity (name and file) */
    uint32_t frame;  /* the line most samples were on (profile frame id) */
    uint64_t frame_hits;
    uint64_t count, self;
    uint64_t weight_us, cpu_us;           /* of every stack through it */
    uint64_t self_weight_us, self_cpu_us; /* of the stacks ending in it */
    uint32_t first_child, next_sibling;   /* index + 1 */
    uint32_t depth;
    uint64_t x; /* flame graph: samples before it among its siblings' span */
} pp_tnode_t;

/* What one tree may cost, whatever the stack set: the views draw at most
 * PP_TREE_MAX_STACKS distinct stacks (the commonest), make at most
 * PP_TREE_MAX_NODES nodes (~100 bytes each) and read at most
 * PP_TREE_MAX_WALK store nodes to find them.  A stack that does not fit
 * is left out whole and counted; the exports stay complete. */
#define PP_TREE_MAX_STACKS 20000
#define PP_TREE_MAX_NODES 65536
#define PP_TREE_MAX_WALK 262144

typedef struct pp_tree {
    pp_tnode_t *v;
    uint32_t n, cap;
    int truncated;
    int full;          /* a cap was reached */
    uint64_t left_out; /* samples of the stacks left out */
    uint32_t stacks_left_out;
    uint32_t walked; /* store nodes read */
    uint32_t roots;  /* index + 1 of the first top-level node */
    uint64_t total;  /* samples drawn: total + left_out = the profile's */
    uint32_t max_depth;
    const pp_profile_t *prof; /* its frames: must outlive the tree */
    void *priv;
} pp_tree_t;

/* From a resolved profile, which must outlive the tree.  -1 only when
 * memory runs out at the start (free it all the same). */
int pp_tree_build(pp_tree_t *t, const pp_profile_t *p);
/* For the views: resolve only what a tree may draw and build that tree in
 * the same pass (pp_tree_build's result, but stacks are copied out of the
 * store only while the tree is not full, so a page reads no more of the
 * store than its tree needs).  The tree reads only the profile's frames:
 * the copied nodes are dropped once it is built (the stacks read as
 * unresolved again), so a page holds its tree and frames, not both
 * copies; the merge index is dropped too (built again if stacks are
 * added).  Free the tree whatever it returns; -1 on ENOMEM. */
int pp_profile_resolve_tree(pp_profile_t *p, const pp_store_t *st,
                            pp_tree_t *t);
/* A tree node's frame (pp_profile_pframe of the tree's profile). */
const pp_pframe_t *pp_tree_frame(const pp_tree_t *t, uint32_t frame);
void pp_tree_free(pp_tree_t *t);

/* ---- hot functions (bottom-up) ---- */

typedef struct pp_hot {
    uint32_t frame; /* representative frame (hottest line) */
    uint32_t key;   /* its pp_pframe_t key (ties) */
    uint64_t self;  /* samples with this function as the leaf */
    uint64_t total; /* samples with it anywhere on the stack (once each) */
    uint64_t self_weight_us, total_weight_us;
    uint64_t self_cpu_us;
} pp_hot_t;

/* Functions of a built tree by self samples, biggest first; *n entries,
 * free() the array.  Linear in the tree's nodes (so bounded by its cap);
 * the stacks the tree left out are not in it. */
pp_hot_t *pp_hot_functions(const pp_tree_t *t, size_t *n);

#endif
