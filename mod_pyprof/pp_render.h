/* pp_render.h: turns a snapshot of the shared store into the pages and
 * formats of /server-profile (HTML, JSON, folded).
 *
 * Output goes through a sink so the core needs no httpd: the glue's sink
 * writes to the response.  Every string that came from a client or from
 * Python is escaped for the output it lands in.  Readers only: nothing
 * here writes to the store.  May allocate (malloc) for the call tree; never
 * from a hot path.
 */
#ifndef PP_RENDER_H
#define PP_RENDER_H

#include <stddef.h>
#include <stdint.h>

#include "pp_store.h"

typedef struct pp_sink {
    void (*write)(void *ctx, const char *s, size_t n);
    void *ctx;
} pp_sink_t;

void pp_puts(pp_sink_t *o, const char *s);
void pp_printf(pp_sink_t *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Escapers.  Invalid UTF-8 becomes U+FFFD in HTML and JSON. */
void pp_put_html(pp_sink_t *o, const char *s, size_t n);
void pp_put_json_str(pp_sink_t *o, const char *s, size_t n); /* quoted */
/* Folded format: ';' separates frames and the last ' ' precedes the count,
 * so ';' becomes ':' and line breaks and control characters become ' '. */
void pp_put_folded(pp_sink_t *o, const char *s, size_t n);
/* URL path segment (percent-encodes everything but unreserved chars). */
void pp_put_url_segment(pp_sink_t *o, const char *s, size_t n);

typedef struct pp_render_opts {
    const char *base; /* URL of the handler, e.g. "/server-profile" */
    int64_t now_us;   /* wall clock */
    int refresh;      /* seconds, 0 = none */
    uint64_t memory;  /* configured PyProfMemory */
} pp_render_opts_t;

void pp_render_overview_json(pp_sink_t *o, const pp_store_t *st,
                             const pp_render_opts_t *opt);
void pp_render_overview_html(pp_sink_t *o, const pp_store_t *st,
                             const pp_render_opts_t *opt);

void pp_render_request_json(pp_sink_t *o, const pp_store_t *st,
                            const pp_record_t *rec, int inflight,
                            const pp_render_opts_t *opt);
void pp_render_request_folded(pp_sink_t *o, const pp_store_t *st,
                              const pp_record_t *rec);
void pp_render_request_html(pp_sink_t *o, const pp_store_t *st,
                            const pp_record_t *rec, int inflight,
                            const pp_render_opts_t *opt);

/* The per-location aggregate (every sampled request of that location) in
 * folded form; location is the store row.  Returns the stacks written. */
size_t pp_render_location_folded(pp_sink_t *o, const pp_store_t *st,
                                 int location);
/* Store row of a configured location path, or -1. */
int pp_render_find_location(const pp_store_t *st, const char *path);

/* A small HTML page for errors (404 etc.), message escaped. */
void pp_render_message_html(pp_sink_t *o, const char *title,
                            const char *msg, const pp_render_opts_t *opt);

#endif
