/* pp_render_opts.h: what a page is asked for (the handler's reading of
 * the query: filters, sort, window, side), which both the read of the
 * store behind a page (pp_overview.h) and its rendering (pp_render.h)
 * take.  Types only: pp_render_opts_init (pp_render.h) sets the
 * defaults.  Its own header so that the overview's read does not depend
 * on the renderer, which depends on it.
 */
#ifndef PP_RENDER_OPTS_H
#define PP_RENDER_OPTS_H

#include <stdint.h>

enum { PP_SORT_DURATION = 0, PP_SORT_TIME = 1, PP_SORT_URI = 2 };

typedef struct pp_render_opts {
    const char *base; /* URL of the handler, e.g. "/server-profile" */
    int64_t now_us;   /* wall clock */
    int refresh;      /* seconds, 0 = none */
    uint64_t memory;  /* configured PyProfMemory */
    /* overview: the slow-request table */
    int sort;                  /* PP_SORT_* */
    int filter_location;       /* store row, -1 = any */
    int filter_status;         /* 0 any; 1..5: class Nxx; else exact */
    int64_t min_us, max_us;    /* duration range, -1 = open */
    const char *process_group; /* mod_wsgi daemon group, NULL = any */
    const char *app_group;     /* mod_wsgi application group, NULL = any */
    /* location page */
    int64_t since_us; /* 0 = since the start */
    int side;         /* PP_SIDE_*; diff page shows both */
    int diff;
} pp_render_opts_t;

#endif
