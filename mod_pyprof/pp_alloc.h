/* pp_alloc.h: PyProfAllocations, the C side of sampled allocation
 * profiling (no Python header): the directive's value, the sampling
 * maths, the live set of sampled allocations, and per-process
 * accumulators that attribute sampled bytes to the request the allocating
 * thread serves.  The allocator hooks that feed it are in pp_py_alloc.c.
 *
 * Sampling is by bytes: a countdown drawn from an exponential
 * distribution of mean `mean` bytes; the allocation that takes it to zero
 * or below is sampled.  An allocation of s < mean bytes is then sampled
 * with probability p = 1 - exp(-s/mean) and stands for s/p bytes and 1/p
 * allocations (unbiased); one of s >= mean bytes is always sampled, with
 * weight 1, and leaves the countdown alone.
 *
 * Locking: every entry point that changes state takes one process-local
 * leaf mutex (nothing is called while it is held); the hooks call them
 * with the GIL held, the request glue without it.  Never calls into
 * Python, never allocates after pp_alloc_setup.
 */
#ifndef PP_ALLOC_H
#define PP_ALLOC_H

#include <stdint.h>

#include "pp_store.h"

/* the directive's range: 1 byte (every allocation, exact) to 1G */
#define PP_ALLOC_MEAN_MAX (1ULL << 30)
#define PP_ALLOC_MEAN_MAX_TEXT "1G"

/* "Off" (0) or a size ("64K", "1M", "262144"): NULL and *mean, or why
 * not. */
const char *pp_alloc_parse(const char *v, uint64_t *mean);

/* ---- sampling maths ---- */

/* xorshift64*: any nonzero state; seeded with 0 it takes a fixed one */
typedef struct pp_alloc_rng {
    uint64_t s;
} pp_alloc_rng_t;
void pp_alloc_rng_seed(pp_alloc_rng_t *r, uint64_t seed);
/* uniform in (0, 1] */
double pp_alloc_rng_unit(pp_alloc_rng_t *r);
/* the next countdown: an exponential draw of mean `mean` bytes, >= 1 */
int64_t pp_alloc_gap(pp_alloc_rng_t *r, uint64_t mean);
/* what a sampled allocation of n bytes stands for at `mean`: bytes and
 * allocations */
void pp_alloc_weight(uint64_t n, uint64_t mean, double *bytes, double *count);

/* ---- the live set: sampled allocations not freed yet ---- */

/* A 64 KiB counting filter in front of an open-addressed table (linear
 * probing, backward-shift delete): a free looks at one filter byte, and
 * only a hit (about one free in a few hundred) searches the table. */
#define PP_ALLOC_FILTER_BITS 16
#define PP_ALLOC_LIVE_CAP 8192 /* entries (power of two), load <= 3/4 */

typedef struct pp_alloc_live_entry {
    uintptr_t ptr; /* 0 = empty */
    uint64_t bytes;
    uint64_t serial; /* the request it was charged to, 0 none */
    int32_t slot;
    uint32_t pad;
} pp_alloc_live_entry_t;

typedef struct pp_alloc_live {
    uint32_t cap, used;
    uint8_t filter[1u << PP_ALLOC_FILTER_BITS]; /* saturates at 255 */
    pp_alloc_live_entry_t *e;
} pp_alloc_live_t;

/* cap: a power of two; 0 or -1 out of memory */
int pp_alloc_live_init(pp_alloc_live_t *l, uint32_t cap);
void pp_alloc_live_free(pp_alloc_live_t *l);
static inline uint32_t pp_alloc_filter_hash(uintptr_t p)
{
    return (uint32_t)((((uint64_t)p >> 4) * 0x9e3779b97f4a7c15ULL) >>
                      (64 - PP_ALLOC_FILTER_BITS));
}
/* may p be in the set?  (0: certainly not) */
static inline int pp_alloc_live_maybe(const pp_alloc_live_t *l, uintptr_t p)
{
    return l->filter[pp_alloc_filter_hash(p)] != 0;
}
/* 0, or -1 when full (3/4 of cap) */
int pp_alloc_live_add(pp_alloc_live_t *l, const pp_alloc_live_entry_t *in);
/* 1 and the entry (removed), or 0 if p is not there */
int pp_alloc_live_take(pp_alloc_live_t *l, uintptr_t p,
                       pp_alloc_live_entry_t *out);

/* ---- the process: accumulators per request slot ---- */

/* Set up for st's slots at `mean` bytes (the hooks' installer, once):
 * 0, or -1 out of memory.  From then on pp_alloc_mean() is mean. */
int pp_alloc_setup(pp_store_t *st, uint64_t mean);
/* 0 until set up (and in a process forked from a request thread: the
 * child no longer samples) */
uint64_t pp_alloc_mean(void);
/* The sampling switch the hooks read on their slow path: 1 while set up
 * and not stopped. */
extern volatile int pp_alloc_enabled;
/* Stop sampling (the hooks pass everything through from now on) and add
 * the outside-requests bytes not yet counted to the store. */
void pp_alloc_stop(void);

/* The calling thread starts or ends serving request (slot, serial): the
 * glue, right after registering with the sampler (embedded) or in
 * daemon_begin/daemon_end.  End writes the request's estimates into its
 * record (pp_store_note_alloc).  Both cost a load when not set up. */
void pp_alloc_begin(int slot, uint64_t serial);
void pp_alloc_end(pp_store_t *st, int slot, uint64_t serial);
/* The request the calling thread serves (as begin set it): 1, or 0. */
int pp_alloc_current(int *slot, uint64_t *serial);

/* The hooks: a sampled allocation of n bytes at p (0: the allocation
 * failed; counted, not tracked), from stack `node` (0: none known);
 * charged to the calling thread's request, else to outside requests. */
void pp_alloc_sampled(uintptr_t p, uint64_t n, uint32_t node);
/* A free of p that the filter did not rule out. */
void pp_alloc_freed(uintptr_t p);
/* The filter the hooks test before pp_alloc_freed (NULL until set up). */
extern pp_alloc_live_t *pp_alloc_live;

/* Fold a slot's stacks into at most `cap` entries, largest first, the rest
 * summed into one entry of node `other` (tests call it on its own). */
uint32_t pp_alloc_top_stacks(const pp_alloc_stack_t *in, uint32_t n,
                             pp_alloc_stack_t *out, uint32_t cap,
                             uint32_t other);

/* ---- the pages' view of a record's allocating stacks ---- */

#define PP_ALLOC_VIEW_DEPTH 64 /* innermost frames shown of a stack */
typedef struct pp_alloc_view {
    uint32_t n;
    struct {
        uint64_t bytes;
        uint32_t count;
        uint32_t depth; /* frames in f, root first */
        int truncated;  /* deeper than PP_ALLOC_VIEW_DEPTH: root cut */
        pp_frame_view_t f[PP_ALLOC_VIEW_DEPTH]; /* names point into st */
    } e[PP_ALLOC_STACKS];
} pp_alloc_view_t;

/* rec's allocating stacks into p (count: allocations, weight_us: bytes),
 * for pp_export_pprof_alloc; -1 on ENOMEM */
struct pp_profile;
int pp_alloc_profile_add(struct pp_profile *p, const pp_record_t *rec);

/* rec's alloc_stacks resolved (nothing when rec has no PP_REQ_ALLOC) */
void pp_alloc_view_load(pp_alloc_view_t *v, const pp_store_t *st,
                        const pp_record_t *rec);

#endif
