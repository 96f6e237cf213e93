/* pp_render.h: turns a snapshot of the shared store into the pages and
 * formats of /server-profile (HTML, JSON, folded).  Every page renders
 * from a snapshot read first (pp_overview.h) or a resolved profile, never
 * from the store: the overview, its JSON and /metrics, and a request's or
 * a location's HTML, JSON and folded stacks.
 *
 * Output goes through a sink (pp_sink.h, included for the callers) so the
 * core needs no httpd: the glue's sink writes to the response.  Every
 * string that came from a client or from Python is escaped for the output
 * it lands in.  Readers only: nothing
 * here writes to the store.  May allocate (malloc) for the call tree; never
 * from a hot path.
 */
#ifndef PP_RENDER_H
#define PP_RENDER_H

#include <stddef.h>
#include <stdint.h>

#include "pp_profile.h"
#include "pp_render_opts.h"
#include "pp_sink.h"
#include "pp_store.h"

/* Defaults: no filter, sorted by duration, no window. */
void pp_render_opts_init(pp_render_opts_t *opt);

struct pp_overview;
struct pp_ov_location;
struct pp_request_view;
struct pp_request_page;
struct pp_location_page;

/* From a snapshot pp_overview_load made for PP_OV_JSON / PP_OV_HTML. */
void pp_render_overview_json(pp_sink_t *o, const struct pp_overview *ov,
                             const pp_render_opts_t *opt);
void pp_render_overview_html(pp_sink_t *o, const struct pp_overview *ov,
                             const pp_render_opts_t *opt);

/* From pp_request_load's read of the record (folded: nothing if it ran
 * out of memory). */
void pp_render_request_json(pp_sink_t *o, const struct pp_request_view *v,
                            const pp_render_opts_t *opt);
void pp_render_request_folded(pp_sink_t *o, const struct pp_request_view *v);
/* From pp_request_page_load's. */
void pp_render_request_html(pp_sink_t *o, const struct pp_request_page *pg,
                            const pp_render_opts_t *opt);

/* The stack set of a location: pp_profile_of_location (PP_SIDE_* are in
 * pp_profile.h), resolved for the exports (pp_profile_resolve), under the
 * name the handler knows. */
int pp_render_location_profile(struct pp_profile *p, const pp_store_t *st,
                               int location, int64_t now_us, int64_t since_us,
                               int side);
/* The location as pp_location_load read it, and its resolved profile. */
void pp_render_location_json(pp_sink_t *o, const struct pp_ov_location *l,
                             const struct pp_profile *p,
                             const pp_render_opts_t *opt);
/* From pp_location_page_load's, for the same opt.  Frees the diff's
 * rest_tree once the diff is drawn (pp_location_page_free still frees
 * the rest). */
void pp_render_location_html(pp_sink_t *o, struct pp_location_page *pg,
                             const pp_render_opts_t *opt);

/* A location's stacks (pp_render_location_profile's, resolved) in folded
 * form.  Returns the stacks written. */
size_t pp_render_location_folded(pp_sink_t *o, const struct pp_profile *p);
/* Store row of a configured location path, or -1. */
int pp_render_find_location(const pp_store_t *st, const char *path);

/* Prometheus text exposition (version 0.0.4) of the locations' response
 * times by status class, in-flight requests and the sampler's counters,
 * from a snapshot pp_overview_load made for PP_OV_METRICS. */
void pp_render_metrics(pp_sink_t *o, const struct pp_overview *ov,
                       const pp_render_opts_t *opt);

/* A small HTML page for errors (404 etc.), message escaped. */
void pp_render_message_html(pp_sink_t *o, const char *title, const char *msg,
                            const pp_render_opts_t *opt);

#endif
