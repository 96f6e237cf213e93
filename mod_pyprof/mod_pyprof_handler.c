/* mod_pyprof_handler.c: the "server-profile" handler.
 *
 * Like mod_status: declines unless r->handler matches, serves GET (and
 * HEAD) and the capture form's POST, reads options from r->args, and
 * renders through the core's pp_render_* / pp_export_* with a sink that
 * writes to the response.  Pages read snapshot copies of the store; the
 * handler writes to it in two places only: the overview reaps the slots
 * of processes that died (pp_store_reap_dead), and the capture form's
 * POST arms a capture (pp_store_capture_arm).  Every query value is
 * validated before use: an unknown option value is a 400 that says what
 * is accepted.
 *
 * Access is enforced before any page, on top of Apache's Require
 * (mod_pyprof_access.c): loopback clients only unless PyProfAccess opens
 * the pages, and a POST must come from this server's own pages.
 *
 * The pages live below the handler's own URL, whatever <Location> mapped
 * here; the routes table below names them:
 *
 *   /server-profile                      overview (html, json)
 *   /server-profile/request/ID           one request (html, json, folded,
 *                                        speedscope, pprof)
 *   /server-profile/location?path=P      a location's aggregate, &since=10m,
 *                                        &view=diff (same formats)
 *   /server-profile/request?trace=T      the request of a W3C trace id
 *   POST /server-profile                 arm a capture (form with nonce)
 *   /server-profile/metrics              Prometheus text exposition
 *   /server-profile/pprof?path=P&seconds=N
 *                                        samples of the next N seconds, as
 *                                        Go's net/http/pprof serves them
 */
#include "apr_lib.h"
#include "apr_strings.h"
#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"

#include <unistd.h>

#include "mod_pyprof.h"
#include "pp_export.h"
#include "pp_overview.h"
#include "pp_profile.h"
#include "pp_render.h"
#include "pp_sampler.h"
#include "pp_views.h"

APLOG_USE_MODULE(pyprof);

enum { FMT_HTML, FMT_JSON, FMT_FOLDED, FMT_SPEEDSCOPE, FMT_PPROF };

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

/* ?refresh=N: as mod_status, at least 1 s, at most a day */
#define REFRESH_MAX_S 86400
/* ?since= is parsed up to a week, then held to what the store keeps
 * (PP_WINDOW_MAX_US, an hour) */
#define WINDOW_PARSE_MAX_S (7LL * 24 * 3600)
/* ?min_ms= and ?max_ms=: at most this many milliseconds */
#define FILTER_MAX_MS 1e9
/* the capture form: its body's size, and how many requests it captures */
#define FORM_MAX 4096
#define CAPTURE_MAX 1000
/* a W3C trace id: 32 hex digits */
#define TRACE_ID_HEX 32

static _Atomic int renders_running, pulls_running;

static apr_status_t turn_release(void *running)
{
    atomic_fetch_sub((_Atomic int *)running, 1);
    return APR_SUCCESS;
}

/* Take one of `max` turns until the request's pool goes (its response is
 * written by then); 0 if all are taken. */
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
} query_t;

static void sink_write(void *ctx, const char *s, size_t n)
{
    request_rec *r = ctx;
    if (n) {
        /* -1 only when the client is gone: httpd marks the connection
         * aborted and drops the rest; the page has nothing to add */
        ap_rwrite(s, (int)n, r);
    }
}

/* Decode a form-urlencoded value in place: '+' is a space, %XX any byte
 * but NUL ('/' included, which is what the pages put in their links).  0
 * if malformed (a '%' without two hex digits, or %00). */
static int unescape_query(char *s)
{
    return ap_unescape_urlencoded(s) == OK;
}

static void parse_query(request_rec *r, query_t *q)
{
    char *args, *tok, *state;

    memset(q, 0, sizeof(*q));
    q->format = FMT_HTML;
    if (!r->args) {
        return;
    }
    args = apr_pstrdup(r->pool, r->args);
    for (tok = apr_strtok(args, "&;", &state); tok;
         tok = apr_strtok(NULL, "&;", &state)) {
        char *val = strchr(tok, '=');
        if (val) {
            *val++ = '\0';
            if (!unescape_query(val)) {
                q->error = "badly escaped query string";
                return;
            }
        }
        if (strcmp(tok, "format") == 0) {
            if (!val || strcmp(val, "html") == 0) {
                q->format = FMT_HTML;
            }
            else if (strcmp(val, "json") == 0) {
                q->format = FMT_JSON;
            }
            else if (strcmp(val, "folded") == 0) {
                q->format = FMT_FOLDED;
            }
            else if (strcmp(val, "speedscope") == 0) {
                q->format = FMT_SPEEDSCOPE;
            }
            else if (strcmp(val, "pprof") == 0) {
                q->format = FMT_PPROF;
            }
            else {
                q->error = "format must be html, json, folded, speedscope "
                           "or pprof";
                return;
            }
        }
        else if (strcmp(tok, "refresh") == 0) {
            long n = val ? strtol(val, NULL, 10) : 0;
            q->refresh =
                n < 1 ? 1 : (n > REFRESH_MAX_S ? REFRESH_MAX_S : (int)n);
        }
        else if (strcmp(tok, "path") == 0) {
            q->path = val;
        }
        else if (strcmp(tok, "sort") == 0) {
            q->sort = val;
        }
        else if (strcmp(tok, "location") == 0) {
            q->location = val;
        }
        else if (strcmp(tok, "status") == 0) {
            q->status = val;
        }
        else if (strcmp(tok, "since") == 0) {
            q->since = val;
        }
        else if (strcmp(tok, "view") == 0) {
            q->view = val;
        }
        else if (strcmp(tok, "kind") == 0) {
            q->alloc = val && strcmp(val, "alloc") == 0;
        }
        else if (strcmp(tok, "seconds") == 0) {
            q->seconds = val;
        }
        else if (strcmp(tok, "min_ms") == 0) {
            q->min_ms = val;
        }
        else if (strcmp(tok, "max_ms") == 0) {
            q->max_ms = val;
        }
        else if (strcmp(tok, "trace") == 0) {
            q->trace = val;
        }
        else if (strcmp(tok, "process_group") == 0) {
            q->process_group = val;
        }
        else if (strcmp(tok, "app_group") == 0) {
            q->app_group = val;
        }
    }
}

/* "30s", "10m", "1h" or plain seconds; -1 if malformed or out of range. */
static int64_t parse_window_us(const char *s)
{
    char *end;
    long long v;
    int64_t mult = 1000000;

    if (!s || !*s || !apr_isdigit(*s)) {
        return -1;
    }
    v = strtoll(s, &end, 10);
    if (*end == 'm' && end[1] == '\0') {
        mult = 60000000LL;
    }
    else if (*end == 'h' && end[1] == '\0') {
        mult = 3600000000LL;
    }
    else if (!(*end == '\0' || (*end == 's' && end[1] == '\0'))) {
        return -1;
    }
    if (v <= 0 || v > WINDOW_PARSE_MAX_S) {
        return -1;
    }
    return (int64_t)v * mult;
}

static int64_t parse_ms(const char *s)
{
    char *end;
    double v;

    if (!s || !*s) {
        return -1;
    }
    v = strtod(s, &end);
    if (*end || v < 0 || v > FILTER_MAX_MS) {
        return -2;
    }
    return (int64_t)(v * 1000.0);
}

static void set_type(request_rec *r, int format)
{
    switch (format) {
    case FMT_JSON:
    case FMT_SPEEDSCOPE:
        ap_set_content_type(r, "application/json");
        break;
    case FMT_FOLDED:
        ap_set_content_type(r, "text/plain; charset=utf-8");
        break;
    case FMT_PPROF:
        ap_set_content_type(r, "application/octet-stream");
        apr_table_setn(r->headers_out, "Content-Disposition",
                       "attachment; filename=\"profile.pb.gz\"");
        break;
    default:
        ap_set_content_type(r, "text/html; charset=utf-8");
    }
}

static int error_page(request_rec *r, pp_sink_t *o, pp_render_opts_t *opt,
                      int format, int status, const char *msg)
{
    r->status = status;
    if (format == FMT_SPEEDSCOPE || format == FMT_PPROF) {
        format = FMT_JSON;
    }
    set_type(r, format);
    if (r->header_only) {
        return OK;
    }
    if (format == FMT_JSON) {
        pp_puts(o, "{\"error\":");
        pp_put_json_str(o, msg, strlen(msg));
        pp_puts(o, "}\n");
    }
    else if (format == FMT_FOLDED) {
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
    return error_page(r, o, opt, format, HTTP_SERVICE_UNAVAILABLE, msg);
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
    set_type(r, FMT_PPROF);
    ap_set_content_length(r, (apr_off_t)out.len);
    if (!r->header_only) {
        ap_rwrite(out.data, (int)out.len, r); /* -1: client gone (sink_write) */
    }
    free(out.data);
    return OK;
}

/* /request?trace=TRACEID: the newest request of that W3C trace. */
static int serve_trace_lookup(request_rec *r, pp_store_t *st, query_t *q,
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
        return error_page(r, sink, opt, q->format, HTTP_BAD_REQUEST,
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
        return error_page(r, sink, opt, q->format, HTTP_NOT_FOUND,
                          "No kept or running request of this trace.");
    }
    apr_table_setn(r->headers_out, "Location",
                   apr_pstrcat(r->pool, opt->base, "/request/",
                               ap_escape_path_segment(r->pool, found.id),
                               q->format == FMT_JSON ? "?format=json" : "",
                               NULL));
    return HTTP_MOVED_TEMPORARILY;
}

/* /request/ID: one request's page or export; /request?trace=T */
static int serve_request(request_rec *r, pp_store_t *st, query_t *q,
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
        return error_page(r, sink, opt, q->format, HTTP_NOT_FOUND,
                          "No profile with this request id: it was "
                          "never sampled, or it has been evicted.");
    }
    if (q->format == FMT_PPROF || q->format == FMT_SPEEDSCOPE) {
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
        if (q->format == FMT_PPROF && q->alloc) {
            /* PyProfAllocations: the request's allocating stacks */
            pp_bytes_t out;
            if (pp_export_pprof_alloc(&out, &p, labels, nlabels,
                                      rec->req.start_us * 1000,
                                      rec->req.duration_us * 1000,
                                      (int64_t)rec->req.alloc_mean) != 0) {
                pp_profile_free(&p);
                return HTTP_INTERNAL_SERVER_ERROR;
            }
            set_type(r, FMT_PPROF);
            ap_set_content_length(r, (apr_off_t)out.len);
            if (!r->header_only) {
                ap_rwrite(out.data, (int)out.len, r);
            }
            free(out.data);
        }
        else if (q->format == FMT_PPROF) {
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
    if (q->format == FMT_JSON || q->format == FMT_FOLDED) {
        pp_request_view_t v;
        pp_request_load(&v, st, rec, inflight);
        if (q->format == FMT_JSON) {
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

static int serve_location(request_rec *r, pp_store_t *st, query_t *q,
                          pp_sink_t *sink, pp_render_opts_t *opt)
{
    int idx = st && q->path ? pp_render_find_location(st, q->path) : -1;
    pp_profile_t p;
    pp_location_t *loc;
    char lp[PP_PREFIX_MAX];
    int rc = OK;

    if (!q->path) {
        return error_page(r, sink, opt, q->format, HTTP_BAD_REQUEST,
                          "path is required: ?path=/PREFIX of a "
                          "PyProfSample location");
    }
    if (idx < 0) {
        return error_page(r, sink, opt, q->format, HTTP_NOT_FOUND,
                          "No sampled location with this path.");
    }
    loc = pp_store_location(st, idx);
    snprintf(lp, sizeof(lp), "%.*s", PP_PREFIX_MAX - 1, loc->path);
    if (r->header_only) {
        set_type(r, q->format); /* no profile to build for no body */
        return OK;
    }
    if (q->format == FMT_HTML) {
        pp_location_page_t *pg = apr_palloc(r->pool, sizeof(*pg));
        int loaded = pp_location_page_load(pg, st, idx, opt) == 0;
        if (loaded) {
            set_type(r, q->format);
            pp_render_location_html(sink, pg, opt);
        }
        pp_location_page_free(pg);
        /* a row let go between the lookup and the load: as if not found */
        return loaded ? OK
                      : error_page(r, sink, opt, q->format, HTTP_NOT_FOUND,
                                   "No sampled location with this path.");
    }
    pp_profile_init(&p);
    /* read and resolved before anything is written */
    if (pp_render_location_profile(&p, st, idx, opt->now_us, opt->since_us,
                                   opt->side) != 0) {
        pp_profile_free(&p);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (q->format == FMT_PPROF) {
        pp_pprof_label_t labels[1] = {{"location", lp, 0}};
        int64_t dur =
            opt->since_us ? opt->since_us : (opt->now_us - loc->created_us);
        rc = send_pprof(r, &p, labels, 1, (opt->now_us - dur) * 1000,
                        dur * 1000, (int64_t)loc->interval_us * 1000);
    }
    else {
        set_type(r, q->format);
        if (q->format == FMT_JSON) {
            pp_ov_location_t *l = apr_palloc(r->pool, sizeof(*l));
            if (pp_location_load(l, st, idx) == 0) {
                pp_render_location_json(sink, l, &p, opt);
            }
        }
        else if (q->format == FMT_FOLDED) {
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
static int serve_pull(request_rec *r, pp_store_t *st, query_t *q,
                      pp_sink_t *sink, pp_render_opts_t *opt)
{
    int idx = st && q->path ? pp_render_find_location(st, q->path) : -1;
    long seconds = PULL_DEFAULT_SECONDS;
    pp_profile_t before, after;
    pp_location_t *loc;
    char lp[PP_PREFIX_MAX];
    int64_t t0;
    size_t i;
    int rc;

    q->format = FMT_PPROF;
    if (q->seconds) {
        char *end;
        seconds = strtol(q->seconds, &end, 10);
        if (*end || seconds < 1 || seconds > PULL_MAX_SECONDS) {
            return error_page(r, sink, opt, FMT_JSON, HTTP_BAD_REQUEST,
                              apr_psprintf(r->pool,
                                           "seconds must be a whole "
                                           "number from 1 to %d",
                                           PULL_MAX_SECONDS));
        }
    }
    if (!q->path) {
        return error_page(r, sink, opt, FMT_JSON, HTTP_BAD_REQUEST,
                          "path is required: ?path=/PREFIX of a "
                          "PyProfSample location");
    }
    if (idx < 0) {
        return error_page(r, sink, opt, FMT_JSON, HTTP_NOT_FOUND,
                          "path must name a PyProfSample location");
    }
    if (r->header_only) {
        /* what a GET would send, without waiting `seconds` for it */
        set_type(r, FMT_PPROF);
        return OK;
    }
    if (!turn_take(r, &pulls_running, PULLS_PER_CHILD)) {
        return busy_page(r, sink, opt, FMT_JSON, PULLS_RETRY_AFTER,
                         apr_psprintf(r->pool,
                                      "this server process is "
                                      "already answering a pull (at most %d "
                                      "at once per process); retry later",
                                      PULLS_PER_CHILD));
    }
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

/* Read an urlencoded POST body of at most FORM_MAX bytes; NULL if it is
 * larger, chunked oddly, or unreadable. */
static char *read_form(request_rec *r)
{
    char *buf, *p;
    apr_size_t used = 0;
    long got;

    if (ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK) != OK ||
        !ap_should_client_block(r)) {
        return apr_pstrdup(r->pool, "");
    }
    if (r->remaining > FORM_MAX) {
        return NULL;
    }
    buf = apr_palloc(r->pool, FORM_MAX + 1);
    p = buf;
    while ((got = ap_get_client_block(r, p, FORM_MAX - used)) > 0) {
        used += (apr_size_t)got;
        p += got;
        if (used >= FORM_MAX) {
            return NULL;
        }
    }
    if (got < 0) {
        return NULL;
    }
    buf[used] = '\0';
    return buf;
}

static const char *form_value(request_rec *r, const char *form, const char *key)
{
    char *copy = apr_pstrdup(r->pool, form), *tok, *state;

    for (tok = apr_strtok(copy, "&", &state); tok;
         tok = apr_strtok(NULL, "&", &state)) {
        char *val = strchr(tok, '=');
        if (!val) {
            continue;
        }
        *val++ = '\0';
        if (strcmp(tok, key) == 0) {
            return unescape_query(val) ? val : NULL;
        }
    }
    return NULL;
}

/* POST /server-profile: arm a capture (the only action a client asks
 * for that changes the store; a GET changes nothing but the reaping of
 * dead processes' slots the overview does). */
static int serve_post(request_rec *r, pp_store_t *st, query_t *q,
                      pp_sink_t *sink, pp_render_opts_t *opt)
{
    const char *form, *action, *nonce, *path, *count, *why;
    long n;
    char *end;
    int idx;
    (void)q;

    if ((why = pyprof_post_refusal(r))) {
        return error_page(r, sink, opt, FMT_HTML, HTTP_FORBIDDEN, why);
    }
    if (!st) {
        return error_page(r, sink, opt, FMT_HTML, HTTP_NOT_FOUND,
                          "No PyProfSample location is configured.");
    }
    form = read_form(r);
    if (!form) {
        return error_page(r, sink, opt, FMT_HTML, HTTP_BAD_REQUEST,
                          "The form is too large or unreadable.");
    }
    action = form_value(r, form, "action");
    nonce = form_value(r, form, "nonce");
    path = form_value(r, form, "path");
    count = form_value(r, form, "count");
    if (!action || strcmp(action, "capture") != 0) {
        return error_page(r, sink, opt, FMT_HTML, HTTP_BAD_REQUEST,
                          "action must be capture");
    }
    if (!pp_store_form_nonce_ok(st, nonce, pp_wall_us())) {
        return error_page(r, sink, opt, FMT_HTML, HTTP_BAD_REQUEST,
                          "The form's nonce does not match or has expired "
                          "(it is valid for one to two hours): reload the "
                          "page and submit it again.");
    }
    n = count ? strtol(count, &end, 10) : 0;
    if (!count || *end || n < 1 || n > CAPTURE_MAX) {
        return error_page(r, sink, opt, FMT_HTML, HTTP_BAD_REQUEST,
                          apr_psprintf(r->pool,
                                       "count must be a whole "
                                       "number from 1 to %d",
                                       CAPTURE_MAX));
    }
    idx = path ? pp_render_find_location(st, path) : -1;
    if (idx < 0) {
        return error_page(r, sink, opt, FMT_HTML, HTTP_BAD_REQUEST,
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

static const char *overview_filters(pp_store_t *st, query_t *q,
                                    pp_render_opts_t *opt)
{
    if (q->sort) {
        if (strcmp(q->sort, "duration") == 0) {
            opt->sort = PP_SORT_DURATION;
        }
        else if (strcmp(q->sort, "time") == 0) {
            opt->sort = PP_SORT_TIME;
        }
        else if (strcmp(q->sort, "uri") == 0) {
            opt->sort = PP_SORT_URI;
        }
        else {
            return "sort must be duration, time or uri";
        }
    }
    if (q->location && *q->location) {
        opt->filter_location =
            st ? pp_render_find_location(st, q->location) : -1;
        if (opt->filter_location < 0) {
            return "location must be the path of a PyProfSample location";
        }
    }
    if (q->status && *q->status) {
        const char *s = q->status;
        if (strlen(s) == 3 && s[0] >= '1' && s[0] <= '5' && s[1] == 'x' &&
            s[2] == 'x') {
            opt->filter_status = s[0] - '0';
        }
        else if (strlen(s) == 3 && apr_isdigit(s[0]) && apr_isdigit(s[1]) &&
                 apr_isdigit(s[2]) && s[0] >= '1') {
            opt->filter_status = (int)strtol(s, NULL, 10);
        }
        else {
            return "status must be a code (404) or a class (5xx)";
        }
    }
    if (q->process_group && *q->process_group) {
        opt->process_group = q->process_group;
    }
    if (q->app_group && *q->app_group) {
        opt->app_group = q->app_group;
    }
    if (q->min_ms && *q->min_ms) {
        opt->min_us = parse_ms(q->min_ms);
        if (opt->min_us < 0) {
            return "min_ms must be a number of milliseconds";
        }
    }
    if (q->max_ms && *q->max_ms) {
        opt->max_us = parse_ms(q->max_ms);
        if (opt->max_us < 0) {
            return "max_ms must be a number of milliseconds";
        }
    }
    return NULL;
}

/* /metrics: Prometheus' text exposition */
static int serve_metrics(request_rec *r, pp_store_t *st, query_t *q,
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
static int serve_overview(request_rec *r, pp_store_t *st, query_t *q,
                          pp_sink_t *sink, pp_render_opts_t *opt)
{
    pp_overview_t ov;
    const char *err;

    if (q->format != FMT_HTML && q->format != FMT_JSON) {
        return error_page(r, sink, opt, FMT_HTML, HTTP_BAD_REQUEST,
                          "the overview is html or json; profiles are at "
                          "/request/ID and /location?path=PREFIX");
    }
    if ((err = overview_filters(st, q, opt))) {
        return error_page(r, sink, opt, q->format, HTTP_BAD_REQUEST, err);
    }
    set_type(r, q->format);
    if (r->header_only) {
        return OK;
    }
    if (!st) {
        /* inert: no PyProfSample anywhere */
        if (q->format == FMT_JSON) {
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
    (void)pp_overview_load(&ov, st, opt,
                           q->format == FMT_JSON ? PP_OV_JSON : PP_OV_HTML);
    if (q->format == FMT_JSON) {
        pp_render_overview_json(sink, &ov, opt);
    }
    else {
        pp_render_overview_html(sink, &ov, opt);
    }
    pp_overview_free(&ov);
    return OK;
}

typedef int (*route_fn)(request_rec *r, pp_store_t *st, query_t *q,
                        pp_sink_t *sink, pp_render_opts_t *opt);

/* The pages below the handler's own URL.  A route's name is the last
 * segment of the path (trailing slashes aside); a route that is `below`
 * also takes a path that continues after its name and a '/' anywhere in
 * it, the rest going to q->sub.  The first match wins; the last row, with
 * no name, is the handler's own URL.  A method without a function is 405
 * (r->allowed says GET and POST: the overview's form). */
typedef struct route {
    const char *name;
    int below;
    int render_turn; /* takes one of RENDERS_PER_CHILD (it aggregates) */
    route_fn get;    /* GET and HEAD */
    route_fn post;
} route_t;

/* A request's page reads one record (bounded by PyProfMaxDepth and the
 * record's stacks) and is what people and scripts open by the dozen:
 * only the location pages, which aggregate, take a turn.  A pull takes
 * its own (PULLS_PER_CHILD) once it is about to wait. */
static const route_t routes[] = {
    {"/request", 1, 0, serve_request, NULL},
    {"/location", 0, 1, serve_location, NULL},
    {"/pprof", 0, 0, serve_pull, NULL},
    {"/metrics", 0, 0, serve_metrics, NULL},
    {NULL, 0, 0, serve_overview, serve_post},
};

/* The route of the path in base, which is cut to the handler's own URL;
 * q->sub is set to the route's rest ("" if none). */
static const route_t *route_of(char *base, query_t *q)
{
    const route_t *rt;
    size_t n, len;
    char *p;

    q->sub = "";
    for (rt = routes; rt->name; rt++) {
        len = strlen(rt->name);
        for (p = strstr(base, rt->name); rt->below && p;
             p = strstr(p + 1, rt->name)) {
            if (p[len] == '/') {
                q->sub = p + len + 1;
                *p = '\0';
                return rt;
            }
        }
    }
    n = strlen(base);
    while (n > 1 && base[n - 1] == '/') {
        base[--n] = '\0';
    }
    for (rt = routes; rt->name; rt++) {
        len = strlen(rt->name);
        if (n >= len && strcmp(base + n - len, rt->name) == 0) {
            base[n - len] = '\0';
            return rt;
        }
    }
    return rt;
}

/* since= and view=: what they ask for, or why they are refused */
static const char *window_and_view(request_rec *r, query_t *q,
                                   pp_render_opts_t *opt)
{
    if (q->since) {
        opt->since_us = parse_window_us(q->since);
        if (opt->since_us < 0 || opt->since_us > PP_WINDOW_MAX_US) {
            return apr_psprintf(r->pool,
                                "since must be a window from 1s "
                                "to %dh, like 30s, 10m or 1h",
                                (int)(PP_WINDOW_MAX_US / 3600000000LL));
        }
    }
    if (q->view) {
        if (strcmp(q->view, "diff") == 0) {
            opt->diff = 1;
        }
        else if (strcmp(q->view, "slow") == 0) {
            opt->side = PP_SIDE_SLOW;
        }
        else if (strcmp(q->view, "rest") == 0) {
            opt->side = PP_SIDE_REST;
        }
        else if (strcmp(q->view, "all") != 0) {
            return "view must be all, diff, slow or rest";
        }
        if (opt->diff && q->format != FMT_HTML) {
            return "view=diff is a page; export one side with view=slow "
                   "or view=rest";
        }
        if ((opt->diff || opt->side) && opt->since_us) {
            return "the slow/rest split covers the whole run: drop since= "
                   "or view=";
        }
    }
    return NULL;
}

int pyprof_handler(request_rec *r)
{
    pp_store_t *st = pyprof_shared_store();
    pp_sink_t sink = {sink_write, r};
    pp_render_opts_t opt;
    query_t q;
    const route_t *rt;
    route_fn serve;
    const char *err;
    char *base;
    pyprof_server_conf_t *c;

    if (!r->handler || strcmp(r->handler, PYPROF_HANDLER) != 0) {
        return DECLINED;
    }
    pyprof_set_security_headers(r);
    if (pyprof_refuse_client(r)) {
        return OK;
    }
    r->allowed = (AP_METHOD_BIT << M_GET) | (AP_METHOD_BIT << M_POST);
    if (r->method_number != M_GET && r->method_number != M_POST) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    c = ap_get_module_config(r->server->module_config, &pyprof_module);
    parse_query(r, &q);
    base = apr_pstrdup(r->pool, r->uri);
    rt = route_of(base, &q);
    pp_render_opts_init(&opt);
    /* r->uri is decoded: re-escaped, base is fit for a Location header
     * (no CR LF) and for the pages' links */
    opt.base = ap_escape_uri(r->pool, base);
    opt.now_us = pp_wall_us();
    opt.refresh = q.refresh;
    opt.memory = pyprof_conf_memory(c);

    if (q.error) {
        return error_page(r, &sink, &opt, FMT_HTML, HTTP_BAD_REQUEST, q.error);
    }
    if (q.refresh) {
        apr_table_setn(r->headers_out, "Refresh",
                       apr_psprintf(r->pool, "%d", q.refresh));
    }
    if ((err = window_and_view(r, &q, &opt))) {
        return error_page(r, &sink, &opt, q.format, HTTP_BAD_REQUEST, err);
    }
    serve = r->method_number == M_POST ? rt->post : rt->get;
    if (!serve) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (rt->render_turn && !turn_take(r, &renders_running, RENDERS_PER_CHILD)) {
        return busy_page(r, &sink, &opt, q.format, RENDERS_RETRY_AFTER,
                         apr_psprintf(r->pool,
                                      "this server process is "
                                      "rendering as many location profiles "
                                      "as it may at once (%d); retry in a "
                                      "second",
                                      RENDERS_PER_CHILD));
    }
    return serve(r, st, &q, &sink, &opt);
}
