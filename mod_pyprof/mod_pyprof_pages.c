/* mod_pyprof_pages.c: the handler's pages (see mod_pyprof_pages.h): a
 * request's page and exports, a location's, the pull, the metrics, the
 * overview and its capture form's POST, and the error pages.  Each reads
 * snapshot copies of the store and renders through the core's
 * pp_render_* / pp_export_* into the response's sink; a page writes to
 * the store in two places only: the overview reaps the slots of processes
 * that died (pp_store_reap_dead), and the POST arms a capture
 * (pp_store_capture_arm).  Also how many pages one child serves at once
 * (the turns below).  Glue: httpd and APR only, no Python header.  Called
 * by mod_pyprof_handler.c, once the query and access are checked.
 */
#include "apr_lib.h"
#include "apr_strings.h"
#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"

#include <unistd.h>

#include "mod_pyprof_pages.h"
#include "pp_export.h"
#include "pp_overview.h"
#include "pp_profile.h"
#include "pp_time.h"
#include "pp_views.h"

APLOG_USE_MODULE(pyprof);

/* /pprof?seconds=N: from 1 to PULL_MAX_SECONDS, PULL_DEFAULT_SECONDS when
 * not given; the pull sleeps in slices of PULL_SLICE_US so that it sees
 * its client go away */
#define PULL_MAX_SECONDS 60
#define PULL_DEFAULT_SECONDS 10
#define PULL_SLICE_US 100000

/* What one child serves at once.  A location page or export may take tens
 * of MB while it renders (bounded by the tree caps, pp_profile.h), and a
 * pull holds its worker for its seconds: past these, 503 with Retry-After
 * (in seconds) rather than a child's memory or workers spent on pages.
 * Counters of this process only (every child has its own). */
#define RENDERS_PER_CHILD 4
#define RENDERS_RETRY_AFTER "1"
#define PULLS_PER_CHILD 1
#define PULLS_RETRY_AFTER "5"

/* how many requests the capture form captures at most */
#define CAPTURE_MAX 1000
/* a W3C trace id: 32 hex digits */
#define TRACE_ID_HEX 32

static _Atomic int renders_running, pulls_running;

static apr_status_t turn_release(void *running)
{
    atomic_fetch_sub((_Atomic int *)running, 1);
    return APR_SUCCESS;
}

/* Take one of `max` turns; 0 if all are taken.  turn_give gives it back
 * when the page is written; should the handler not get there, the
 * request's pool does. */
static int turn_take(request_rec *r, _Atomic int *running, int max)
{
    if (atomic_fetch_add(running, 1) >= max) {
        atomic_fetch_sub(running, 1);
        return 0;
    }
    apr_pool_cleanup_register(r->pool, (void *)running, turn_release,
                              apr_pool_cleanup_null);
    return 1;
}

/* The turn back as the handler returns, before httpd sends the last of
 * the response: a client that asks again as soon as it has its answer
 * finds the turn free (the pool goes only after the response is written
 * and logged). */
static int turn_give(request_rec *r, _Atomic int *running, int rc)
{
    apr_pool_cleanup_run(r->pool, (void *)running, turn_release);
    return rc;
}

static void set_type(request_rec *r, int format)
{
    switch (format) {
    case PYPROF_FMT_JSON:
    case PYPROF_FMT_SPEEDSCOPE:
        ap_set_content_type(r, "application/json");
        break;
    case PYPROF_FMT_FOLDED:
        ap_set_content_type(r, "text/plain; charset=utf-8");
        break;
    case PYPROF_FMT_PPROF:
        ap_set_content_type(r, "application/octet-stream");
        apr_table_setn(r->headers_out, "Content-Disposition",
                       "attachment; filename=\"profile.pb.gz\"");
        break;
    default:
        ap_set_content_type(r, "text/html; charset=utf-8");
    }
}

int pyprof_page_error(request_rec *r, pp_sink_t *o, pp_render_opts_t *opt,
                      int format, int status, const char *msg)
{
    r->status = status;
    if (format == PYPROF_FMT_SPEEDSCOPE || format == PYPROF_FMT_PPROF) {
        format = PYPROF_FMT_JSON;
    }
    set_type(r, format);
    if (r->header_only) {
        return OK;
    }
    if (format == PYPROF_FMT_JSON) {
        pp_puts(o, "{\"error\":");
        pp_put_json_str(o, msg, strlen(msg));
        pp_puts(o, "}\n");
    }
    else if (format == PYPROF_FMT_FOLDED) {
        pp_puts(o, msg);
        pp_puts(o, "\n");
    }
    else {
        pp_render_message_html(o,
                               status == HTTP_NOT_FOUND   ? "Not found"
                               : status == HTTP_FORBIDDEN ? "Forbidden"
                               : status == HTTP_SERVICE_UNAVAILABLE
                                   ? "Busy"
                                   : "Bad request",
                               msg, opt);
    }
    return OK;
}

static int busy_page(request_rec *r, pp_sink_t *o, pp_render_opts_t *opt,
                     int format, const char *retry_after, const char *msg)
{
    apr_table_setn(r->headers_out, "Retry-After", retry_after);
    return pyprof_page_error(r, o, opt, format, HTTP_SERVICE_UNAVAILABLE, msg);
}

/* p resolved (pp_profile_resolve). */
static int send_pprof(request_rec *r, const pp_profile_t *p,
                      const pp_pprof_label_t *labels, size_t nlabels,
                      int64_t time_ns, int64_t duration_ns, int64_t interval_ns)
{
    pp_bytes_t out;

    if (pp_export_pprof(&out, p, labels, nlabels, time_ns, duration_ns,
                        interval_ns) != 0) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    set_type(r, PYPROF_FMT_PPROF);
    ap_set_content_length(r, (apr_off_t)out.len);
    if (!r->header_only) {
        ap_rwrite(out.data, (int)out.len, r); /* -1: client gone (sink_write) */
    }
    free(out.data);
    return OK;
}

/* /request?trace=TRACEID: the newest request of that W3C trace. */
static int serve_trace_lookup(request_rec *r, pp_store_t *st, pyprof_query_t *q,
                              pp_sink_t *sink, pp_render_opts_t *opt)
{
    pp_req_t found;
    size_t n = q->trace ? strlen(q->trace) : 0, i;

    for (i = 0; i < n; i++) {
        if (!apr_isxdigit(q->trace[i])) {
            break;
        }
    }
    if (n != TRACE_ID_HEX || i != n) {
        return pyprof_page_error(r, sink, opt, q->format, HTTP_BAD_REQUEST,
                                 apr_psprintf(r->pool,
                                              "trace must be a W3C trace "
                                              "id: %d hex digits",
                                              TRACE_ID_HEX));
    }
    {
        char *lower = apr_pstrdup(r->pool, q->trace), *c;
        for (c = lower; *c; c++) {
            *c = (char)apr_tolower(*c);
        }
        q->trace = lower;
    }
    if (!st || !pp_store_find_trace_id(st, q->trace, &found)) {
        return pyprof_page_error(r, sink, opt, q->format, HTTP_NOT_FOUND,
                                 "No kept or running request of this trace.");
    }
    apr_table_setn(
        r->headers_out, "Location",
        apr_pstrcat(r->pool, opt->base, "/request/",
                    ap_escape_path_segment(r->pool, found.id),
                    q->format == PYPROF_FMT_JSON ? "?format=json" : "", NULL));
    return HTTP_MOVED_TEMPORARILY;
}

/* /request/ID: one request's page or export; /request?trace=T */
int pyprof_page_request(request_rec *r, pp_store_t *st, pyprof_query_t *q,
                        pp_sink_t *sink, pp_render_opts_t *opt)
{
    const char *id = q->sub;
    pp_record_t *rec;
    int inflight = 0;

    if (!*id && q->trace) {
        return serve_trace_lookup(r, st, q, sink, opt);
    }
    if (!st || !*id || strlen(id) >= PP_ID_MAX ||
        !(rec = apr_palloc(r->pool, sizeof(*rec))) ||
        !pp_store_find(st, id, rec, &inflight)) {
        return pyprof_page_error(r, sink, opt, q->format, HTTP_NOT_FOUND,
                                 "No profile with this request id: it was "
                                 "never sampled, or it has been evicted.");
    }
    if (q->format == PYPROF_FMT_PPROF || q->format == PYPROF_FMT_SPEEDSCOPE) {
        pp_profile_t p;
        int rc = OK;
        char lp[PP_PREFIX_MAX];
        pp_location_t *loc = pp_store_location(st, rec->req.location);
        pp_pprof_label_t labels[6] = {
            {"request_id", rec->req.id, 0},
            {"location", "", 0},
            {"status", NULL, rec->req.status},
            {"trace_id", rec->req.trace_id, 0},
            {"parent_id", rec->req.parent_id, 0},
            {"process_group", rec->req.process_group, 0}};
        size_t nlabels = rec->req.trace_id[0] ? 5 : 3;

        if (loc) {
            snprintf(lp, sizeof(lp), "%.*s", PP_PREFIX_MAX - 1, loc->path);
            labels[1].str = lp;
        }
        pp_profile_init(&p);
        if ((q->alloc ? pp_alloc_profile_add(&p, rec)
                      : pp_profile_add_record(&p, rec)) != 0) {
            pp_profile_free(&p);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        pp_profile_sort(&p);
        if (pp_profile_resolve(&p, st) != 0) {
            pp_profile_free(&p);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        if (q->format == PYPROF_FMT_PPROF && q->alloc) {
            /* PyProfAllocations: the request's allocating stacks */
            pp_bytes_t out;
            if (pp_export_pprof_alloc(&out, &p, labels, nlabels,
                                      rec->req.start_us * 1000,
                                      rec->req.duration_us * 1000,
                                      (int64_t)rec->req.alloc_mean) != 0) {
                pp_profile_free(&p);
                return HTTP_INTERNAL_SERVER_ERROR;
            }
            set_type(r, PYPROF_FMT_PPROF);
            ap_set_content_length(r, (apr_off_t)out.len);
            if (!r->header_only) {
                ap_rwrite(out.data, (int)out.len, r);
            }
            free(out.data);
        }
        else if (q->format == PYPROF_FMT_PPROF) {
            if (rec->req.flags & PP_REQ_DAEMON) {
                labels[nlabels++] = labels[5];
            }
            rc = send_pprof(r, &p, labels, nlabels, rec->req.start_us * 1000,
                            rec->req.duration_us * 1000,
                            (int64_t)rec->req.interval_us * 1000);
        }
        else {
            set_type(r, q->format);
            if (!r->header_only) {
                pp_export_speedscope(sink, &p,
                                     apr_pstrcat(r->pool, rec->req.method, " ",
                                                 rec->req.uri, " (",
                                                 rec->req.id, ")", NULL));
            }
        }
        pp_profile_free(&p);
        return rc;
    }
    set_type(r, q->format);
    if (r->header_only) {
        return OK;
    }
    if (q->format == PYPROF_FMT_JSON || q->format == PYPROF_FMT_FOLDED) {
        pp_request_view_t v;
        pp_request_load(&v, st, rec, inflight);
        if (q->format == PYPROF_FMT_JSON) {
            pp_render_request_json(sink, &v, opt);
        }
        else {
            pp_render_request_folded(sink, &v);
        }
        pp_request_free(&v);
    }
    else {
        pp_request_page_t *pg = apr_palloc(r->pool, sizeof(*pg));
        pp_request_page_load(pg, st, rec, inflight);
        pp_render_request_html(sink, pg, opt);
        pp_request_page_free(pg);
    }
    return OK;
}

/* /location?path=P: a location's aggregate, as a page or an export.  It
 * aggregates, so it takes one of RENDERS_PER_CHILD turns first; a
 * request's page reads one record (bounded by PyProfMaxDepth and the
 * record's stacks) and is what people and scripts open by the dozen: it
 * takes none.  A pull takes its own (PULLS_PER_CHILD) once it is about to
 * wait. */
static int location_page(request_rec *r, pp_store_t *st, pyprof_query_t *q,
                         pp_sink_t *sink, pp_render_opts_t *opt);

int pyprof_page_location(request_rec *r, pp_store_t *st, pyprof_query_t *q,
                         pp_sink_t *sink, pp_render_opts_t *opt)
{
    if (!turn_take(r, &renders_running, RENDERS_PER_CHILD)) {
        return busy_page(r, sink, opt, q->format, RENDERS_RETRY_AFTER,
                         apr_psprintf(r->pool,
                                      "this server process is "
                                      "rendering as many location profiles "
                                      "as it may at once (%d); retry in a "
                                      "second",
                                      RENDERS_PER_CHILD));
    }
    return turn_give(r, &renders_running, location_page(r, st, q, sink, opt));
}

/* The location page or export, with a render turn held. */
static int location_page(request_rec *r, pp_store_t *st, pyprof_query_t *q,
                         pp_sink_t *sink, pp_render_opts_t *opt)
{
    int idx = st && q->path ? pp_render_find_location(st, q->path) : -1;
    pp_profile_t p;
    pp_location_t *loc;
    char lp[PP_PREFIX_MAX];
    int rc = OK;

    if (!q->path) {
        return pyprof_page_error(r, sink, opt, q->format, HTTP_BAD_REQUEST,
                                 "path is required: ?path=/PREFIX of a "
                                 "PyProfSample location");
    }
    if (idx < 0) {
        return pyprof_page_error(r, sink, opt, q->format, HTTP_NOT_FOUND,
                                 "No sampled location with this path.");
    }
    loc = pp_store_location(st, idx);
    snprintf(lp, sizeof(lp), "%.*s", PP_PREFIX_MAX - 1, loc->path);
    if (r->header_only) {
        set_type(r, q->format); /* no profile to build for no body */
        return OK;
    }
    if (q->format == PYPROF_FMT_HTML) {
        pp_location_page_t *pg = apr_palloc(r->pool, sizeof(*pg));
        int loaded = pp_location_page_load(pg, st, idx, opt) == 0;
        if (loaded) {
            set_type(r, q->format);
            pp_render_location_html(sink, pg, opt);
        }
        pp_location_page_free(pg);
        /* a row let go between the lookup and the load: as if not found */
        return loaded
                   ? OK
                   : pyprof_page_error(r, sink, opt, q->format, HTTP_NOT_FOUND,
                                       "No sampled location with this path.");
    }
    pp_profile_init(&p);
    /* read and resolved before anything is written */
    if (pp_render_location_profile(&p, st, idx, opt->now_us, opt->since_us,
                                   opt->side) != 0) {
        pp_profile_free(&p);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (q->format == PYPROF_FMT_PPROF) {
        pp_pprof_label_t labels[1] = {{"location", lp, 0}};
        int64_t dur =
            opt->since_us ? opt->since_us : (opt->now_us - loc->created_us);
        rc = send_pprof(r, &p, labels, 1, (opt->now_us - dur) * 1000,
                        dur * 1000, (int64_t)loc->interval_us * 1000);
    }
    else {
        set_type(r, q->format);
        if (q->format == PYPROF_FMT_JSON) {
            pp_ov_location_t *l = apr_palloc(r->pool, sizeof(*l));
            if (pp_location_load(l, st, idx) == 0) {
                pp_render_location_json(sink, l, &p, opt);
            }
        }
        else if (q->format == PYPROF_FMT_FOLDED) {
            pp_export_folded(sink, &p);
        }
        else {
            pp_export_speedscope(sink, &p, lp);
        }
    }
    pp_profile_free(&p);
    return rc;
}

/* Go's /debug/pprof/profile?seconds=N: what the location sampled while
 * this request waited.  Holds one worker thread for N seconds, so one
 * pull per process at a time; a HEAD is answered at once. */
static int pull_held(request_rec *r, pp_store_t *st, int idx, long seconds);

int pyprof_page_pull(request_rec *r, pp_store_t *st, pyprof_query_t *q,
                     pp_sink_t *sink, pp_render_opts_t *opt)
{
    int idx = st && q->path ? pp_render_find_location(st, q->path) : -1;
    long seconds = PULL_DEFAULT_SECONDS;

    q->format = PYPROF_FMT_PPROF;
    if (q->seconds) {
        char *end;
        seconds = strtol(q->seconds, &end, 10);
        if (*end || seconds < 1 || seconds > PULL_MAX_SECONDS) {
            return pyprof_page_error(r, sink, opt, PYPROF_FMT_JSON,
                                     HTTP_BAD_REQUEST,
                                     apr_psprintf(r->pool,
                                                  "seconds must be a whole "
                                                  "number from 1 to %d",
                                                  PULL_MAX_SECONDS));
        }
    }
    if (!q->path) {
        return pyprof_page_error(r, sink, opt, PYPROF_FMT_JSON,
                                 HTTP_BAD_REQUEST,
                                 "path is required: ?path=/PREFIX of a "
                                 "PyProfSample location");
    }
    if (idx < 0) {
        return pyprof_page_error(r, sink, opt, PYPROF_FMT_JSON, HTTP_NOT_FOUND,
                                 "path must name a PyProfSample location");
    }
    if (r->header_only) {
        /* what a GET would send, without waiting `seconds` for it */
        set_type(r, PYPROF_FMT_PPROF);
        return OK;
    }
    if (!turn_take(r, &pulls_running, PULLS_PER_CHILD)) {
        return busy_page(r, sink, opt, PYPROF_FMT_JSON, PULLS_RETRY_AFTER,
                         apr_psprintf(r->pool,
                                      "this server process is "
                                      "already answering a pull (at most %d "
                                      "at once per process); retry later",
                                      PULLS_PER_CHILD));
    }
    return turn_give(r, &pulls_running, pull_held(r, st, idx, seconds));
}

/* The pull's wait and its profile, with the pull turn held. */
static int pull_held(request_rec *r, pp_store_t *st, int idx, long seconds)
{
    pp_profile_t before, after;
    pp_location_t *loc;
    char lp[PP_PREFIX_MAX];
    int64_t t0;
    size_t i;
    int rc;

    loc = pp_store_location(st, idx);
    snprintf(lp, sizeof(lp), "%.*s", PP_PREFIX_MAX - 1, loc->path);
    pp_profile_init(&before);
    pp_profile_init(&after);
    t0 = pp_wall_us();
    /* stack sets only: what is subtracted is matched by node, and only
     * the result is resolved */
    if (pp_profile_of_location(&before, st, idx, t0, 0, PP_SIDE_ALL)) {
        pp_profile_free(&before);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    {
        /* sleep in slices, and stop early if the client goes away */
        long left = seconds * (1000000 / PULL_SLICE_US);
        while (left-- > 0 && !r->connection->aborted) {
            usleep(PULL_SLICE_US);
        }
    }
    if (pp_profile_of_location(&after, st, idx, pp_wall_us(), 0, PP_SIDE_ALL)) {
        pp_profile_free(&before);
        pp_profile_free(&after);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    for (i = 0; i < before.n; i++) {
        if (pp_profile_subtract(&after, before.v[i].node, before.v[i].count,
                                before.v[i].weight_us, before.v[i].cpu_us)) {
            pp_profile_free(&before);
            pp_profile_free(&after);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    pp_profile_free(&before); /* matched: only `after` is encoded */
    pp_profile_sort(&after);
    {
        pp_pprof_label_t labels[1] = {{"location", lp, 0}};
        rc = pp_profile_resolve(&after, st) != 0
                 ? HTTP_INTERNAL_SERVER_ERROR
                 : send_pprof(r, &after, labels, 1, t0 * 1000,
                              (pp_wall_us() - t0) * 1000,
                              (int64_t)loc->interval_us * 1000);
    }
    pp_profile_free(&before);
    pp_profile_free(&after);
    return rc;
}

/* POST /server-profile: arm a capture (the only action a client asks
 * for that changes the store; a GET changes nothing but the reaping of
 * dead processes' slots the overview does). */
int pyprof_page_post(request_rec *r, pp_store_t *st, pyprof_query_t *q,
                     pp_sink_t *sink, pp_render_opts_t *opt)
{
    const char *form, *action, *nonce, *path, *count, *why;
    long n;
    char *end;
    int idx;
    (void)q;

    if ((why = pyprof_post_refusal(r))) {
        return pyprof_page_error(r, sink, opt, PYPROF_FMT_HTML, HTTP_FORBIDDEN,
                                 why);
    }
    if (!st) {
        return pyprof_page_error(r, sink, opt, PYPROF_FMT_HTML, HTTP_NOT_FOUND,
                                 "No PyProfSample location is configured.");
    }
    form = pyprof_form_read(r);
    if (!form) {
        return pyprof_page_error(r, sink, opt, PYPROF_FMT_HTML,
                                 HTTP_BAD_REQUEST,
                                 "The form is too large or unreadable.");
    }
    action = pyprof_form_value(r, form, "action");
    nonce = pyprof_form_value(r, form, "nonce");
    path = pyprof_form_value(r, form, "path");
    count = pyprof_form_value(r, form, "count");
    if (!action || strcmp(action, "capture") != 0) {
        return pyprof_page_error(r, sink, opt, PYPROF_FMT_HTML,
                                 HTTP_BAD_REQUEST, "action must be capture");
    }
    if (!pp_store_form_nonce_ok(st, nonce, pp_wall_us())) {
        return pyprof_page_error(
            r, sink, opt, PYPROF_FMT_HTML, HTTP_BAD_REQUEST,
            "The form's nonce does not match or has expired "
            "(it is valid for one to two hours): reload the "
            "page and submit it again.");
    }
    n = count ? strtol(count, &end, 10) : 0;
    if (!count || *end || n < 1 || n > CAPTURE_MAX) {
        return pyprof_page_error(r, sink, opt, PYPROF_FMT_HTML,
                                 HTTP_BAD_REQUEST,
                                 apr_psprintf(r->pool,
                                              "count must be a whole "
                                              "number from 1 to %d",
                                              CAPTURE_MAX));
    }
    idx = path ? pp_render_find_location(st, path) : -1;
    if (idx < 0) {
        return pyprof_page_error(r, sink, opt, PYPROF_FMT_HTML,
                                 HTTP_BAD_REQUEST,
                                 "path must be a PyProfSample location");
    }
    /* 0 only for no location or n == 0, both refused above */
    pp_store_capture_arm(st, idx, (uint32_t)n);
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                  PYPROF_LOGNO(00013) "capture of the next %ld requests to "
                                      "%s armed",
                  n, ap_escape_logitem(r->pool, path));
    apr_table_setn(r->headers_out, "Location",
                   apr_pstrcat(r->pool, opt->base, "#captures", NULL));
    return HTTP_SEE_OTHER;
}

/* /metrics: Prometheus' text exposition */
int pyprof_page_metrics(request_rec *r, pp_store_t *st, pyprof_query_t *q,
                        pp_sink_t *sink, pp_render_opts_t *opt)
{
    (void)q;
    ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
    if (!r->header_only && st) {
        pp_overview_t ov;
        (void)pp_overview_load(&ov, st, opt, PP_OV_METRICS);
        pp_render_metrics(sink, &ov, opt);
        pp_overview_free(&ov);
    }
    return OK;
}

/* The handler's own URL: the overview of kept and running requests */
int pyprof_page_overview(request_rec *r, pp_store_t *st, pyprof_query_t *q,
                         pp_sink_t *sink, pp_render_opts_t *opt)
{
    pp_overview_t ov;
    const char *err;

    if (q->format != PYPROF_FMT_HTML && q->format != PYPROF_FMT_JSON) {
        return pyprof_page_error(
            r, sink, opt, PYPROF_FMT_HTML, HTTP_BAD_REQUEST,
            "the overview is html or json; profiles are at "
            "/request/ID and /location?path=PREFIX");
    }
    if ((err = pyprof_query_overview_filters(st, q, opt))) {
        return pyprof_page_error(r, sink, opt, q->format, HTTP_BAD_REQUEST,
                                 err);
    }
    set_type(r, q->format);
    if (r->header_only) {
        return OK;
    }
    if (!st) {
        /* inert: no PyProfSample anywhere */
        if (q->format == PYPROF_FMT_JSON) {
            pp_puts(sink, "{\"locations\":[],\"requests\":[],"
                          "\"inflight\":[],\"sampler\":null,"
                          "\"store\":null}\n");
        }
        else {
            pp_render_message_html(sink, "Python request profiles",
                                   "No PyProfSample location is "
                                   "configured, so nothing is sampled.",
                                   opt);
        }
        return OK;
    }
    /* the one write of a GET: slots of processes that died are freed
     * before they are listed as running */
    (void)pp_store_reap_dead(st);
    /* read once, then write: out of memory leaves some out (empty lists,
     * stacks not sampled yet), as the pages always did */
    (void)pp_overview_load(
        &ov, st, opt, q->format == PYPROF_FMT_JSON ? PP_OV_JSON : PP_OV_HTML);
    if (q->format == PYPROF_FMT_JSON) {
        pp_render_overview_json(sink, &ov, opt);
    }
    else {
        pp_render_overview_html(sink, &ov, opt);
    }
    pp_overview_free(&ov);
    return OK;
}
