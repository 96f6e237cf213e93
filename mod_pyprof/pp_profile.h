/* pp_profile.h: a set of sampled stacks, whatever it came from (one
 * request, a location since start, a time window, the slow side of a
 * differential view), and the views computed from it: the call tree
 * merged per function, hot functions (self and total), and resolved
 * frames for the exports.
 *
 * Built from snapshot reads of the store; owns heap memory (malloc), so
 * only the handler uses it, never a request thread or the sampler.
 */
#ifndef PP_PROFILE_H
#define PP_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#include "pp_store.h"
#include "pp_u64map.h"

typedef struct pp_prof_stack {
    uint32_t node; /* leaf node id in the store */
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
/* Take samples away from a stack (floored at zero). */
void pp_profile_subtract(pp_profile_t *p, uint32_t node, uint64_t count,
                         uint64_t weight_us, uint64_t cpu_us);
/* Sort stacks by count, biggest first. */
void pp_profile_sort(pp_profile_t *p);

/* Which requests of a location: all, the slowest (the store's slow table), or
 * the rest (all minus the slowest, stack by stack). */
enum { PP_SIDE_ALL = 0, PP_SIDE_SLOW = 1, PP_SIDE_REST = 2 };

/* The stack set of a location (store row): since the start, over the
 * last since_us (per-minute tables), or one side of the slow/rest split;
 * sorted.  -1 on ENOMEM (p holds what was added: free it all the same). */
int pp_profile_of_location(pp_profile_t *p, const pp_store_t *st, int location,
                           int64_t now_us, int64_t since_us, int side);

/* Frames of a node, root first; returns the depth (bounded walk). */
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
    uint32_t frame;  /* the line most samples were on */
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
    void *priv;
} pp_tree_t;

/* -1 only when memory runs out at the start (free it all the same). */
int pp_tree_build(pp_tree_t *t, const pp_store_t *st, const pp_profile_t *p);
void pp_tree_free(pp_tree_t *t);

/* ---- hot functions (bottom-up) ---- */

typedef struct pp_hot {
    uint32_t frame; /* representative frame (hottest line) */
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
