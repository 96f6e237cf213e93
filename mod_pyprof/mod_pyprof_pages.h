/* mod_pyprof_pages.h: the handler's pages (mod_pyprof_pages.c), one
 * function a route, for mod_pyprof_handler.c's routes table, and the
 * error page every refusal writes.  Glue only: no Python header.
 */
#ifndef MOD_PYPROF_PAGES_H
#define MOD_PYPROF_PAGES_H

#include "mod_pyprof_query.h"
#include "pp_sink.h"

/* A page: its status (OK once written), or an HTTP status for httpd to
 * answer.  st is NULL when no PyProfSample is configured. */
typedef int pyprof_page_t(request_rec *r, pp_store_t *st, pyprof_query_t *q,
                          pp_sink_t *sink, pp_render_opts_t *opt);

/* /request/ID (and /request?trace=T), /location?path=P,
 * /pprof?path=P&seconds=N, /metrics, the overview, and the overview's
 * POST (arm a capture). */
pyprof_page_t pyprof_page_request, pyprof_page_location, pyprof_page_pull,
    pyprof_page_metrics, pyprof_page_overview, pyprof_page_post;

/* An error of this status with msg, in the format asked for (JSON for the
 * binary exports); OK once written. */
int pyprof_page_error(request_rec *r, pp_sink_t *o, pp_render_opts_t *opt,
                      int format, int status, const char *msg);

#endif
