/* pp_overview.h: the overview as data.  What the overview (HTML and
 * JSON) and /metrics show is read out of the store once, by
 * pp_overview_load, into plain structs the snapshot owns: the current
 * locations' counters and histograms, the kept requests passing the
 * overview's filters in its sort order, the requests in flight with their
 * latest stacks resolved, the captures, the store's counters and sizes.
 * pp_render_overview.c, pp_render_json.c and pp_metrics.c render from
 * such a snapshot only, never from the store, so they are unit-tested on
 * hand-made ones (tests/unit/test_overview.c).  The same goes for the
 * JSON of one request and of one location (pp_request_load,
 * pp_location_load) and their HTML pages (pp_request_page_load,
 * pp_location_page_load): these read and resolve, then the renderer
 * writes.
 *
 * Owns heap memory (malloc): the kept requests' headers while they are
 * sorted (the HTML then keeps its first PP_OV_HTML_ROWS), the in-flight
 * ones, the captured ones, the in-flight stacks' frames (each copied
 * once), and the profiles and trees of the request and location
 * pages.  The handler's, never a request thread's or the sampler's.
 */
#ifndef PP_OVERVIEW_H
#define PP_OVERVIEW_H

#include <stddef.h>
#include <stdint.h>

#include "pp_alloc.h"
#include "pp_hist.h"
#include "pp_profile.h"
#include "pp_render_opts.h"
#include "pp_store.h"

/* Which output a snapshot is for: each reads only what it shows (the HTML
 * lists at most PP_OV_HTML_ROWS kept requests and needs the in-flight
 * stacks and the captures; /metrics needs no request list at all). */
enum { PP_OV_HTML = 0, PP_OV_JSON = 1, PP_OV_METRICS = 2 };

#define PP_OV_HTML_ROWS 100  /* slow requests listed on the HTML overview */
#define PP_OV_STACK_SHOWN 40 /* innermost frames of an in-flight stack */

/* One location's counters and histogram, read once. */
typedef struct pp_loc_snap {
    uint64_t requests, samples, kept, sum_us, max_us;
    uint64_t hist[PP_HIST_BUCKETS];
} pp_loc_snap_t;

/* A configured row of the current generation (the overview lists these,
 * pp_render_find_location finds only these). */
int pp_location_current(const pp_store_t *st, const pp_location_t *loc);

/* A location row as the pages show it. */
typedef struct pp_ov_location {
    int row;                  /* store row: filters and links name it */
    char path[PP_PREFIX_MAX]; /* NUL-terminated */
    uint32_t interval_us;
    int64_t created_us;
    pp_loc_snap_t s;
    /* /metrics: the histogram by status class, requests in flight */
    uint64_t class_hist[PP_STATUS_CLASSES][PP_HIST_BUCKETS];
    uint64_t class_sum_us[PP_STATUS_CLASSES];
    uint64_t inflight;
    /* HTML: its latest capture (id 0: none), and the kept requests of
     * that capture, ov->captured[capture_first .. + ncaptured) */
    uint32_t capture_id, capture_n;
    int32_t capture_left;
    size_t capture_first, ncaptured;
    /* the location page: the application's root ("" if unknown) */
    char root[PP_PREFIX_MAX];
    /* GIL blame: the wait its requests suffered, and caused others */
    uint64_t gil_wait_us, gil_blocking_us;
    /* PyProfAllocations: estimated bytes its requests allocated, and
     * still live at their ends */
    uint64_t alloc_bytes, alloc_retained;
} pp_ov_location_t;

/* GIL blame rows of every location (the "GIL contention" tables): who
 * (holder's location and innermost frame, resolved) made whom (waiter's
 * location) wait how long; largest wait first.  Paths by row, "" for a
 * row not in use. */
typedef struct pp_gil_row {
    int holder, waiter; /* location rows; -1: none */
    pp_frame_view_t f;  /* names point into the store; "" if none */
    uint64_t samples, wait_us, delayed;
} pp_gil_row_t;

typedef struct pp_gil_rows {
    size_t n;
    pp_gil_row_t *rows;
    char path[PP_MAX_LOCATIONS][PP_PREFIX_MAX];
} pp_gil_rows_t;

/* 0, or -1 out of memory (then none). */
int pp_gil_rows_load(pp_gil_rows_t *g, const pp_store_t *st);
void pp_gil_rows_free(pp_gil_rows_t *g);

/* A request in flight, with its latest sample's stack (HTML only). */
typedef struct pp_ov_inflight {
    pp_req_t q;
    uint32_t depth;                     /* frames of its stack, root first */
    uint32_t frames[PP_OV_STACK_SHOWN]; /* the innermost ones: ids in
                                         * ov->stacks (pp_profile_pframe) */
    uint32_t shown;
} pp_ov_inflight_t;

typedef struct pp_overview {
    /* locations: loc[0 .. nloc) the current generation's, in row order;
     * loc[nloc .. nrows) rows of earlier configurations, path only (kept
     * requests may still name them) */
    pp_ov_location_t *loc;
    size_t nloc, nrows;
    int by_row[PP_MAX_LOCATIONS]; /* row -> index in loc, -1: unused */
    /* kept requests passing the filters, sorted: ntraces match, the first
     * ntraces_listed are here (all but on the HTML page) */
    pp_req_t *traces;
    size_t ntraces, ntraces_listed;
    /* requests in flight, oldest first (none for /metrics) */
    pp_ov_inflight_t *inflight;
    size_t ninflight;
    /* kept requests of the locations' latest captures, by row then by
     * their place in the store */
    pp_req_t *captured;
    size_t ncaptured;
    /* the in-flight stacks' frames, copied out of the store */
    pp_profile_t stacks;
    /* the store's counters (a copy) and what the pages say of its size */
    pp_counters_t c;
    int64_t created_us;
    uint32_t sampler_mode; /* PP_SAMPLER_* */
    uint32_t alloc_mean;   /* PyProfAllocations; 0 Off */
    uint64_t total_size, arena_used, arena_size;
    uint32_t nslots, keep, nframes, nnodes;
    char nonce[PP_NONCE_LEN + 1]; /* the capture form's */
    pp_gil_rows_t gil;            /* HTML and /metrics */
} pp_overview_t;

/* Read what the output `what` (PP_OV_*) shows, once.  -1 if memory ran
 * out: what could not be read is left out (empty lists, stacks not
 * sampled yet), and the snapshot is still rendered and freed as usual.
 * Bounded reads only, so a corrupt store cannot make it loop. */
int pp_overview_load(pp_overview_t *ov, const pp_store_t *st,
                     const pp_render_opts_t *opt, int what);
void pp_overview_free(pp_overview_t *ov);

/* Fill by_row from loc[0 .. nrows) (pp_overview_load does; a snapshot
 * made by hand calls it once its rows are in). */
void pp_overview_index(pp_overview_t *ov);
/* A row's path ("" if the row is not in the snapshot). */
const char *pp_overview_path(const pp_overview_t *ov, int row);
/* How the samplers copy Python memory, from the counters: "gil" (GIL
 * mode), "guarded" (every GIL-free sampler started so far copies with
 * guarded memcpy), "syscall" (none does: process_vm_readv), "mixed". */
const char *pp_overview_reader(const pp_overview_t *ov);

/* One location row as the location page shows it (no class histogram,
 * no capture).  0, or -1 if the row is not in use. */
int pp_location_load(pp_ov_location_t *l, const pp_store_t *st, int row);

/* A record's GIL holders as the pages show them: largest wait first, the
 * holder's frame and location resolved (the frame's names point into the
 * store; "" when it had none). */
typedef struct pp_gil_view {
    uint32_t n;
    struct {
        pp_gil_holder_t h;
        pp_frame_view_t f;
        char location[PP_PREFIX_MAX];
    } e[PP_GIL_HOLDERS];
} pp_gil_view_t;

void pp_gil_view_load(pp_gil_view_t *v, const pp_store_t *st,
                      const pp_record_t *rec);

/* One request as its JSON shows it: the record, its location's path and
 * its stacks, resolved.  failed: out of memory reading the stacks (p is
 * then empty). */
typedef struct pp_request_view {
    const pp_record_t *rec;
    int inflight;
    char location[PP_PREFIX_MAX];
    pp_profile_t p;
    int failed;
    pp_gil_view_t gil;
    pp_alloc_view_t alloc; /* PyProfAllocations */
} pp_request_view_t;

void pp_request_load(pp_request_view_t *v, const pp_store_t *st,
                     const pp_record_t *rec, int inflight);
void pp_request_free(pp_request_view_t *v);

/* What an HTML page of stacks failed to read, for the notice it prints
 * in place of the views. */
enum {
    PP_PAGE_OK = 0,
    PP_PAGE_NO_STACKS = 1, /* out of memory reading the stacks */
    PP_PAGE_NO_TREE = 2    /* out of memory building the tree */
};

/* One request's HTML page: the record, its location's path and
 * application root, the sampler's mode, and the tree its views draw,
 * resolved (pp_profile_resolve_tree) from its stacks, which the tree's
 * frames live in.  No tree when the request has no sample. */
typedef struct pp_request_page {
    const pp_record_t *rec;
    int inflight;
    uint32_t sampler_mode; /* PP_SAMPLER_* */
    char location[PP_PREFIX_MAX];
    char root[PP_PREFIX_MAX];
    int failed; /* PP_PAGE_* */
    pp_profile_t p;
    pp_tree_t tree;
    pp_gil_view_t gil;
    pp_alloc_view_t alloc; /* PyProfAllocations */
} pp_request_page_t;

void pp_request_page_load(pp_request_page_t *pg, const pp_store_t *st,
                          const pp_record_t *rec, int inflight);
void pp_request_page_free(pp_request_page_t *pg);

/* One location's HTML page for opt's window, side or diff: the row as
 * pp_location_load reads it and the trees the page draws, each with the
 * profile its frames live in.  The diff's trees: tree the slowest
 * requests', rest_tree the rest's (the renderer frees rest_tree once the
 * diff is drawn, so it is not held while the slow side's views are). */
typedef struct pp_location_page {
    pp_ov_location_t l;
    int diff;
    int failed; /* PP_PAGE_*; the diff says either as PP_PAGE_NO_TREE */
    /* p's totals (the window's, or the slowest requests'), kept when
     * memory ran out and p was let go */
    uint64_t samples, weight_us, cpu_us;
    pp_profile_t p, rest;
    pp_tree_t tree, rest_tree;
    pp_gil_rows_t gil;
} pp_location_page_t;

/* 0, or -1 if the row is not in use (nothing to render; free it all the
 * same). */
int pp_location_page_load(pp_location_page_t *pg, const pp_store_t *st, int row,
                          const pp_render_opts_t *opt);
void pp_location_page_free(pp_location_page_t *pg);

#endif
