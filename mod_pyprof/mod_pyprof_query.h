/* mod_pyprof_query.h: what the handler's glue files (mod_pyprof_handler.c,
 * mod_pyprof_pages.c) read from a request: its query string, the capture
 * form's body, and the options they set on a page.  Glue only: includes
 * httpd's headers, never Python's.  Every value is checked here or where
 * it is used; a refusal is a message saying what is accepted.
 */
#ifndef MOD_PYPROF_QUERY_H
#define MOD_PYPROF_QUERY_H

#include "mod_pyprof.h"
#include "pp_render.h"

enum {
    PYPROF_FMT_HTML,
    PYPROF_FMT_JSON,
    PYPROF_FMT_FOLDED,
    PYPROF_FMT_SPEEDSCOPE,
    PYPROF_FMT_PPROF
};

/* The options of one request, as given (not yet checked but for format
 * and refresh); error says why the query string itself is refused. */
typedef struct query {
    int format;
    int refresh;
    const char *path;
    const char *sort;
    const char *location;
    const char *status;
    const char *since;
    const char *view;
    const char *seconds;
    const char *min_ms, *max_ms;
    const char *trace;
    const char *process_group, *app_group;
    const char *error;
    const char *sub; /* the route's rest: the ID of /request/ID */
    int alloc;       /* kind=alloc: a request's allocations (pprof) */
} pyprof_query_t;


/* r->args into q (zeroed first; format HTML unless given). */
void pyprof_query_parse(request_rec *r, pyprof_query_t *q);

/* since= and view= into opt: NULL, or why they are refused. */
const char *pyprof_query_window_view(request_rec *r, pyprof_query_t *q,
                                     pp_render_opts_t *opt);

/* The overview's sort and filters into opt: NULL, or why they are
 * refused. */
const char *pyprof_query_overview_filters(pp_store_t *st, pyprof_query_t *q,
                                          pp_render_opts_t *opt);

/* An urlencoded POST body shorter than 4 KiB (FORM_MAX), "" if none;
 * NULL if it is larger, chunked oddly, or unreadable. */
char *pyprof_form_read(request_rec *r);

/* One decoded value of the form, or NULL (missing or badly escaped). */
const char *pyprof_form_value(request_rec *r, const char *form,
                              const char *key);

#endif
