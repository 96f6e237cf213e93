/* pp_render_int.h: what the files of the renderer share and nobody else
 * uses: time and number formats, the store's counters as a table, the
 * page frame and its CSS.  Public API: pp_render.h.  The renderer draws
 * from the snapshots pp_overview.h reads (so it includes that header; the
 * overview's read never includes the renderer's).
 *
 * pp_render.c          helpers, page frame, location lookup, error page
 * pp_render_json.c     the JSON overview, request and location
 * pp_render_overview.c the HTML overview, one function per section
 * pp_render_request.c  the request and location pages, folded exports
 * pp_render_counters.c the store's counters as one table
 * pp_metrics.c         Prometheus text exposition
 * pp_page_css.c        the pages' stylesheet
 */
#ifndef PP_RENDER_INT_H
#define PP_RENDER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "pp_hist.h"
#include "pp_overview.h"
#include "pp_profile.h"
#include "pp_render.h"

/* ---- formats ---- */

/* "2026-01-02T03:04:05.678Z" */
void pp_iso_time(int64_t us, char *buf, size_t cap);
/* "1.2 ms", "34 ms", "5.67 s", "12.3 s" */
void pp_human_ms(double ms, char *buf, size_t cap);
void pp_put_ms_cell(pp_sink_t *o, double ms);
/* How long an in-flight request has run, never negative. */
double pp_elapsed_ms(const pp_render_opts_t *opt, int64_t start_us);

/* ---- a request's wall time, cut up (pp_render_request.c) ---- */

/* Milliseconds: Apache before the app, the app, Apache after it; of the
 * app, the time outside Python, waiting for the GIL to enter Python, and
 * the rest cut by the samples' kinds (on CPU, waiting for a core, for the
 * GIL in Python, sleep or I/O). */
typedef struct pp_time_split {
    double total, before, app, after, outside, enter, on, core, gil, off;
} pp_time_split_t;

void pp_req_time_split(const pp_req_t *q, pp_time_split_t *s);

/* ---- the store's counters (pp_render_counters.c) ---- */

/* Counted in the HTML overview's "dropped (store full)" card. */
#define PP_CTR_DROPPED 1u

typedef struct pp_counter {
    const char *json;   /* key in the JSON overview's "store" object */
    const char *metric; /* Prometheus counter, NULL: not exported */
    const char *label;  /* its label (reason="..."), or NULL */
    const char *help;   /* the metric's # HELP text */
    const char *card;   /* the HTML overview's card for it, or NULL */
    size_t offset;      /* where to read it: offsetof(pp_counters_t, ...) */
    unsigned flags;     /* PP_CTR_* */
} pp_counter_t;

extern const pp_counter_t pp_counter_rows[];
extern const size_t pp_counter_nrows;

/* A row's value in a copy of the counters (pp_overview_t's). */
uint64_t pp_counter_read(const pp_counters_t *c, const pp_counter_t *row);
/* The sum of the PP_CTR_DROPPED rows. */
uint64_t pp_counters_dropped(const pp_counters_t *c);
/* Per-sample cost quantile from the counters' log2 histogram, in
 * microseconds. */
double pp_cost_quantile_us(const pp_counters_t *c, double q);

/* ---- HTML page frame ---- */

extern const char pp_page_css[];

void pp_page_begin(pp_sink_t *o, const char *title,
                   const pp_render_opts_t *opt);
void pp_page_end(pp_sink_t *o);
/* A link to the location page of `path` (escaped for HTML and the URL). */
void pp_location_link(pp_sink_t *o, const pp_render_opts_t *opt,
                      const char *path);
void pp_status_cell(pp_sink_t *o, int status);
/* A "GIL contention" table (pp_render_overview.c) of g's rows, largest
 * wait first, at most `max`: with holder >= 0 only the rows of holders at
 * that location row, with waiter >= 0 only those of waiters there; each
 * location linked to its page. */
void pp_gil_table(pp_sink_t *o, const pp_gil_rows_t *g,
                  const pp_render_opts_t *opt, int holder, int waiter,
                  size_t max);

/* A link to a request's page: base + /request/ + the id, encoded. */
void pp_req_link(pp_sink_t *o, const pp_render_opts_t *opt, const char *id,
                 const char *text);

#endif
