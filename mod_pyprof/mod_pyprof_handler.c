/* mod_pyprof_handler.c: the "server-profile" handler.
 *
 * Like mod_status: declines unless r->handler matches, serves GET (and
 * HEAD) and the capture form's POST, reads options from r->args, and
 * renders through the core's
 * pp_render_* / pp_export_* with a sink that writes to the response.
 * Everything it reads from the store is a snapshot copy; it never writes
 * to the store.  Every query value is validated before use: an unknown
 * option value is a 400 that says what is accepted.
 *
 * Access is enforced here as well as by Apache's Require: whatever a
 * virtual host's <Location /> grants, every page below serves loopback
 * clients only unless PyProfAccess opens it (access_refusal), and a POST
 * must come from this server's own pages (cross_site_refusal).
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
#include "apr_network_io.h"
#include "apr_strings.h"
#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "mod_pyprof.h"
#include "pp_export.h"
#include "pp_profile.h"
#include "pp_render.h"
#include "pp_sampler.h"
#include "pp_views.h"

APLOG_USE_MODULE(pyprof);

enum { FMT_HTML, FMT_JSON, FMT_FOLDED, FMT_SPEEDSCOPE, FMT_PPROF };

#define PULL_MAX_SECONDS 60

/* What one child serves at once.  A location page or export may take tens
 * of MB while it renders (bounded by the tree caps, pp_profile.h), and a
 * pull holds its worker for its seconds: past these, 503 with Retry-After
 * rather than a child's memory or workers spent on pages.  Counters of
 * this process only (every child has its own). */
#define RENDERS_PER_CHILD 4
#define PULLS_PER_CHILD 1

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
} query_t;

#define FORM_MAX 4096

static void sink_write(void *ctx, const char *s, size_t n)
{
    request_rec *r = ctx;
    if (n) {
        ap_rwrite(s, (int)n, r);
    }
}

/* Decode a form-urlencoded value in place: %XX (any byte but NUL, '/'
 * included, which is what the pages put in their links) and '+' for
 * space.  0 if malformed. */
static int unescape_query(char *s)
{
    char *w = s;

    for (; *s; s++) {
        if (*s == '+') {
            *w++ = ' ';
        }
        else if (*s == '%') {
            int hi, lo;
            if (!apr_isxdigit(s[1]) || !apr_isxdigit(s[2])) {
                return 0;
            }
            hi = apr_isdigit(s[1]) ? s[1] - '0' : (apr_tolower(s[1]) - 'a' + 10);
            lo = apr_isdigit(s[2]) ? s[2] - '0' : (apr_tolower(s[2]) - 'a' + 10);
            if (hi == 0 && lo == 0) {
                return 0;
            }
            *w++ = (char)(hi * 16 + lo);
            s += 2;
        }
        else {
            *w++ = *s;
        }
    }
    *w = '\0';
    return 1;
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
            /* as mod_status: at least 1 s, at most a day */
            q->refresh = n < 1 ? 1 : (n > 86400 ? 86400 : (int)n);
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
    if (v <= 0 || v > 7LL * 24 * 3600) {
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
    if (*end || v < 0 || v > 1e9) {
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

/* On every response of the handler, errors and redirects included (so in
 * err_headers_out, which ap_die keeps).  The pages' one script (the flame
 * graph's zoom and search) is allowed by its hash and no other; style is
 * inline only (<style> and style= for bar widths); the one form posts to
 * the page itself, and no page may be framed (the capture form is a
 * clickjacking target).  Request ids and location paths are in the
 * URLs: no Referer leaves the pages. */
static void set_security_headers(request_rec *r)
{
    apr_table_t *h = r->err_headers_out;
    char script[64];

    pp_view_script_csp_hash(script, sizeof(script));
    apr_table_setn(h, "Content-Security-Policy",
                   apr_pstrcat(r->pool, "default-src 'none'; script-src ",
                               script, "; style-src 'unsafe-inline'; "
                               "img-src 'self' data:; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
                               NULL));
    apr_table_setn(h, "X-Frame-Options", "DENY");
    apr_table_setn(h, "X-Content-Type-Options", "nosniff");
    apr_table_setn(h, "Referrer-Policy", "no-referrer");
    apr_table_setn(h, "Cache-Control", "no-store");
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

static int send_pprof(request_rec *r, const pp_store_t *st,
                      const pp_profile_t *p, const pp_pprof_label_t *labels,
                      size_t nlabels, int64_t time_ns, int64_t duration_ns,
                      int64_t interval_ns)
{
    pp_bytes_t out;

    if (pp_export_pprof(&out, st, p, labels, nlabels, time_ns, duration_ns,
                        interval_ns) != 0) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    set_type(r, FMT_PPROF);
    ap_set_content_length(r, (apr_off_t)out.len);
    if (!r->header_only) {
        ap_rwrite(out.data, (int)out.len, r);
    }
    free(out.data);
    return OK;
}

static int serve_request(request_rec *r, pp_store_t *st, const char *id,
                         query_t *q, pp_sink_t *sink, pp_render_opts_t *opt)
{
    pp_record_t *rec;
    int inflight = 0;

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
        pp_profile_add_record(&p, rec);
        pp_profile_sort(&p);
        if (q->format == FMT_PPROF) {
            if (rec->req.flags & PP_REQ_DAEMON) {
                labels[nlabels++] = labels[5];
            }
            rc = send_pprof(r, st, &p, labels, nlabels,
                            rec->req.start_us * 1000,
                            rec->req.duration_us * 1000,
                            (int64_t)rec->req.interval_us * 1000);
        }
        else {
            set_type(r, q->format);
            if (!r->header_only) {
                pp_export_speedscope(
                    sink, st, &p,
                    apr_pstrcat(r->pool, rec->req.method, " ", rec->req.uri,
                                " (", rec->req.id, ")", NULL));
            }
        }
        pp_profile_free(&p);
        return rc;
    }
    set_type(r, q->format);
    if (r->header_only) {
        return OK;
    }
    if (q->format == FMT_JSON) {
        pp_render_request_json(sink, st, rec, inflight, opt);
    }
    else if (q->format == FMT_FOLDED) {
        pp_render_request_folded(sink, st, rec);
    }
    else {
        pp_render_request_html(sink, st, rec, inflight, opt);
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
        set_type(r, q->format);
        if (!r->header_only) {
            pp_render_location_html(sink, st, idx, opt);
        }
        return OK;
    }
    pp_profile_init(&p);
    if (pp_render_location_profile(&p, st, idx, opt->now_us, opt->since_us,
                                   opt->side) != 0) {
        pp_profile_free(&p);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (q->format == FMT_PPROF) {
        pp_pprof_label_t labels[1] = {{"location", lp, 0}};
        int64_t dur = opt->since_us ? opt->since_us
                                    : (opt->now_us - loc->created_us);
        rc = send_pprof(r, st, &p, labels, 1, (opt->now_us - dur) * 1000,
                        dur * 1000, (int64_t)loc->interval_us * 1000);
    }
    else {
        set_type(r, q->format);
        if (!r->header_only) {
            if (q->format == FMT_JSON) {
                pp_render_location_json(sink, st, idx, &p, opt);
            }
            else if (q->format == FMT_FOLDED) {
                pp_export_folded(sink, st, &p);
            }
            else {
                pp_export_speedscope(sink, st, &p, lp);
            }
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
    long seconds = 10;
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
                              "seconds must be a whole number from 1 to 60");
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
        return busy_page(r, sink, opt, FMT_JSON, "5",
                         "this server process is already answering a pull "
                         "(at most 1 at once per process); retry later");
    }
    loc = pp_store_location(st, idx);
    snprintf(lp, sizeof(lp), "%.*s", PP_PREFIX_MAX - 1, loc->path);
    pp_profile_init(&before);
    pp_profile_init(&after);
    t0 = pp_wall_us();
    pp_render_location_profile(&before, st, idx, t0, 0, PP_SIDE_ALL);
    {
        /* sleep in slices so a stopping child does not wait for us */
        long left = seconds * 10;
        while (left-- > 0 && !r->connection->aborted) {
            usleep(100000);
        }
    }
    pp_render_location_profile(&after, st, idx, pp_wall_us(), 0,
                               PP_SIDE_ALL);
    for (i = 0; i < before.n; i++) {
        pp_profile_subtract(&after, before.v[i].node, before.v[i].count,
                            before.v[i].weight_us, before.v[i].cpu_us);
    }
    pp_profile_sort(&after);
    {
        pp_pprof_label_t labels[1] = {{"location", lp, 0}};
        rc = send_pprof(r, st, &after, labels, 1, t0 * 1000,
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

static const char *form_value(request_rec *r, const char *form,
                              const char *key)
{
    char *copy = apr_pstrdup(r->pool, form), *tok, *state;

    for (tok = apr_strtok(copy, "&", &state); tok;
         tok = apr_strtok(NULL, "&", &state)) {
        char *val = strchr(tok, '=');
        char *k;
        if (!val) {
            continue;
        }
        *val++ = '\0';
        (void)k;
        if (strcmp(tok, key) == 0) {
            return unescape_query(val) ? val : NULL;
        }
    }
    return NULL;
}

/* Origin "scheme://host[:port]" names the server the request was sent to
 * (its Host header): the authorities are compared, a default port of the
 * origin's scheme dropped from both.  The scheme itself is not compared
 * with this server's: behind a TLS-terminating proxy the page is https
 * for the browser and http here. */
static int origin_is_this_server(request_rec *r, const char *origin)
{
    const char *host = apr_table_get(r->headers_in, "Host");
    const char *auth, *dflt;
    size_t al, hl, dl;

    if (strncasecmp(origin, "https://", 8) == 0) {
        auth = origin + 8;
        dflt = ":443";
    }
    else if (strncasecmp(origin, "http://", 7) == 0) {
        auth = origin + 7;
        dflt = ":80";
    }
    else {
        return 0; /* "null" (sandboxed frames, file:), other schemes */
    }
    if (!host || !*auth || strpbrk(auth, "/?#@ ")) {
        return 0;
    }
    al = strlen(auth);
    hl = strlen(host);
    dl = strlen(dflt);
    if (al > dl && strcasecmp(auth + al - dl, dflt) == 0) {
        al -= dl;
    }
    if (hl > dl && strcasecmp(host + hl - dl, dflt) == 0) {
        hl -= dl;
    }
    return al == hl && strncasecmp(auth, host, al) == 0;
}

/* Why a POST is not from this server's own page, or NULL.  Browsers send
 * Origin with every POST and Sec-Fetch-Site with every request; a client
 * that sends neither (curl, a script) is no browser a third-party page
 * could drive, and still needs the nonce.  same-site is refused as well
 * as cross-site: another host of the same site (a user-content subdomain)
 * has no business posting this form either. */
static const char *cross_site_refusal(request_rec *r)
{
    const char *site = apr_table_get(r->headers_in, "Sec-Fetch-Site");
    const char *origin = apr_table_get(r->headers_in, "Origin");

    if (site && strcasecmp(site, "same-origin") != 0 &&
        strcasecmp(site, "none") != 0) {
        return "The capture form must be posted from this server's own "
               "page: Sec-Fetch-Site says the request came from another "
               "site.";
    }
    if (origin && !origin_is_this_server(r, origin)) {
        return "The capture form must be posted from this server's own "
               "page: the request's Origin is not the server it was sent "
               "to (behind a reverse proxy, pass the Host header on: "
               "ProxyPreserveHost On).";
    }
    return NULL;
}

/* POST /server-profile: arm a capture (the only state-changing action;
 * GET never changes anything). */
static int serve_post(request_rec *r, pp_store_t *st, pp_sink_t *sink,
                      pp_render_opts_t *opt)
{
    const char *form, *action, *nonce, *path, *count, *why;
    long n;
    char *end;
    int idx;

    if ((why = cross_site_refusal(r))) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      PYPROF_LOGNO(00202) "capture form refused: %s "
                      "(Origin: %s, Sec-Fetch-Site: %s)", why,
                      ap_escape_logitem(r->pool, apr_table_get(r->headers_in,
                                                               "Origin")),
                      ap_escape_logitem(r->pool,
                                        apr_table_get(r->headers_in,
                                                      "Sec-Fetch-Site")));
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
    if (!count || *end || n < 1 || n > 1000) {
        return error_page(r, sink, opt, FMT_HTML, HTTP_BAD_REQUEST,
                          "count must be a whole number from 1 to 1000");
    }
    idx = path ? pp_render_find_location(st, path) : -1;
    if (idx < 0) {
        return error_page(r, sink, opt, FMT_HTML, HTTP_BAD_REQUEST,
                          "path must be a PyProfSample location");
    }
    pp_store_capture_arm(st, idx, (uint32_t)n);
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                  PYPROF_LOGNO(00013) "capture of the next %ld requests to "
                  "%s armed",
                  n, ap_escape_logitem(r->pool, path));
    apr_table_setn(r->headers_out, "Location",
                   apr_pstrcat(r->pool, opt->base, "#captures", NULL));
    return HTTP_SEE_OTHER;
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
    if (n != 32 || i != n) {
        return error_page(r, sink, opt, q->format, HTTP_BAD_REQUEST,
                          "trace must be a W3C trace id: 32 hex digits");
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
        opt->filter_location = st ? pp_render_find_location(st, q->location)
                                  : -1;
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

static int is_loopback(const apr_sockaddr_t *sa)
{
    if (sa->family == AF_INET) {
        const unsigned char *a = (const unsigned char *)&sa->sa.sin.sin_addr;
        return a[0] == 127;
    }
#if APR_HAVE_IPV6
    if (sa->family == AF_INET6) {
        const struct in6_addr *a = &sa->sa.sin6.sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) ||
               (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
#endif
    return 0;
}

static int is_ip_literal(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    char v6[64];
    size_t n = strlen(host);

    if (inet_pton(AF_INET, host, buf) == 1) {
        return 1;
    }
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof(v6)) {
        memcpy(v6, host + 1, n - 2);
        v6[n - 2] = '\0';
        host = v6;
    }
    return inet_pton(AF_INET6, host, buf) == 1;
}

/* A browser page that rebinds its own name (evil.example) to 127.0.0.1
 * reaches a loopback-only page with Host: evil.example.  Serve only a Host
 * that names this server: an IP address, localhost, or the ServerName or a
 * ServerAlias of the virtual host.  No Host at all (HTTP/1.0) is no
 * browser. */
static int host_names_this_server(request_rec *r)
{
    const server_rec *s = r->server;
    const char *h = r->hostname;
    int i;

    if (!h || !*h || is_ip_literal(h) || strcasecmp(h, "localhost") == 0 ||
        (s->server_hostname && strcasecmp(h, s->server_hostname) == 0)) {
        return 1;
    }
    for (i = 0; s->names && i < s->names->nelts; i++) {
        if (strcasecmp(h, APR_ARRAY_IDX(s->names, i, const char *)) == 0) {
            return 1;
        }
    }
    for (i = 0; s->wild_names && i < s->wild_names->nelts; i++) {
        if (ap_strcasecmp_match(h, APR_ARRAY_IDX(s->wild_names, i,
                                                 const char *)) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Why this client may not see the pages, or NULL.  The client address is
 * r->useragent_addr: the peer, or the address mod_remoteip took from a
 * trusted proxy's header when the operator configured it. */
static const char *access_refusal(request_rec *r)
{
    const pyprof_dir_conf_t *d =
        ap_get_module_config(r->per_dir_config, &pyprof_module);
    const pyprof_access_t *a = d ? d->access : NULL;
    const apr_sockaddr_t *sa = r->useragent_addr;
    int by_address = 0, i;

    if (a && a->any) {
        return NULL;
    }
    if (a && a->authenticated && r->user) {
        return NULL;
    }
    if (sa && (!a || a->local) && is_loopback(sa)) {
        by_address = 1;
    }
    for (i = 0; sa && !by_address && a && i < a->networks->nelts; i++) {
        if (apr_ipsubnet_test(APR_ARRAY_IDX(a->networks, i, apr_ipsubnet_t *),
                              (apr_sockaddr_t *)sa)) {
            by_address = 1;
        }
    }
    if (!by_address) {
        if (!a) {
            return "The profile pages are served to loopback clients only "
                   "(127.0.0.0/8, ::1). The server's administrator can "
                   "open them to other clients with PyProfAccess.";
        }
        return "This client is not among those PyProfAccess allows to see "
               "the profile pages.";
    }
    if (!host_names_this_server(r)) {
        return "The Host header names neither this server (its ServerName "
               "or a ServerAlias) nor an IP address or localhost; such "
               "requests are refused as DNS rebinding.";
    }
    return NULL;
}

int pyprof_handler(request_rec *r)
{
    pp_store_t *st = pyprof_shared_store();
    pp_sink_t sink = {sink_write, r};
    pp_render_opts_t opt;
    query_t q;
    const char *sub = NULL, *err;
    char *base;
    size_t n;
    enum {
        PAGE_OVERVIEW,
        PAGE_REQUEST,
        PAGE_LOCATION,
        PAGE_PULL,
        PAGE_METRICS
    } page;
    pyprof_server_conf_t *c;

    if (!r->handler || strcmp(r->handler, PYPROF_HANDLER) != 0) {
        return DECLINED;
    }
    set_security_headers(r);
    if ((err = access_refusal(r))) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      PYPROF_LOGNO(00201) "%s refused to %s (Host: %s): %s",
                      ap_escape_logitem(r->pool, r->uri), r->useragent_ip,
                      ap_escape_logitem(r->pool, r->hostname), err);
        r->status = HTTP_FORBIDDEN;
        ap_set_content_type(r, "text/plain; charset=utf-8");
        if (!r->header_only) {
            ap_rvputs(r, "403 Forbidden: ", err, "\n", NULL);
        }
        return OK;
    }
    r->allowed = (AP_METHOD_BIT << M_GET) | (AP_METHOD_BIT << M_POST);
    if (r->method_number != M_GET && r->method_number != M_POST) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    c = ap_get_module_config(r->server->module_config, &pyprof_module);
    parse_query(r, &q);

    /* the handler's own URL is whatever <Location> mapped here; the
     * other pages live below it */
    base = apr_pstrdup(r->pool, r->uri);
    page = PAGE_OVERVIEW;
    if ((sub = ap_strstr_c(base, "/request/"))) {
        base[sub - base] = '\0';
        sub += strlen("/request/");
        page = PAGE_REQUEST;
    }
    else if ((n = strlen(base)) >= 8 && strcmp(base + n - 8, "/request") == 0) {
        base[n - 8] = '\0';
        page = PAGE_REQUEST;
        sub = "";
    }
    else {
        n = strlen(base);
        while (n > 1 && base[n - 1] == '/') {
            base[--n] = '\0';
        }
        if (n >= 9 && strcmp(base + n - 9, "/location") == 0) {
            base[n - 9] = '\0';
            page = PAGE_LOCATION;
        }
        else if (n >= 6 && strcmp(base + n - 6, "/pprof") == 0) {
            base[n - 6] = '\0';
            page = PAGE_PULL;
        }
        else if (n >= 8 && strcmp(base + n - 8, "/metrics") == 0) {
            base[n - 8] = '\0';
            page = PAGE_METRICS;
        }
    }
    pp_render_opts_init(&opt);
    /* r->uri is decoded: re-escaped, base is fit for a Location header
     * (no CR LF) and for the pages' links */
    opt.base = ap_escape_uri(r->pool, base);
    opt.now_us = pp_wall_us();
    opt.refresh = q.refresh;
    opt.memory = pyprof_conf_memory(c);

    if (q.error) {
        return error_page(r, &sink, &opt, FMT_HTML, HTTP_BAD_REQUEST,
                          q.error);
    }
    if (q.refresh) {
        apr_table_setn(r->headers_out, "Refresh",
                       apr_psprintf(r->pool, "%d", q.refresh));
    }
    if (q.since) {
        opt.since_us = parse_window_us(q.since);
        if (opt.since_us < 0 || opt.since_us > PP_WINDOW_MAX_US) {
            return error_page(r, &sink, &opt, q.format, HTTP_BAD_REQUEST,
                              "since must be a window from 1s to 1h, like "
                              "30s, 10m or 1h");
        }
    }
    if (q.view) {
        if (strcmp(q.view, "diff") == 0) {
            opt.diff = 1;
        }
        else if (strcmp(q.view, "slow") == 0) {
            opt.side = PP_SIDE_SLOW;
        }
        else if (strcmp(q.view, "rest") == 0) {
            opt.side = PP_SIDE_REST;
        }
        else if (strcmp(q.view, "all") != 0) {
            return error_page(r, &sink, &opt, q.format, HTTP_BAD_REQUEST,
                              "view must be all, diff, slow or rest");
        }
        if (opt.diff && q.format != FMT_HTML) {
            return error_page(r, &sink, &opt, q.format, HTTP_BAD_REQUEST,
                              "view=diff is a page; export one side with "
                              "view=slow or view=rest");
        }
        if ((opt.diff || opt.side) && opt.since_us) {
            return error_page(r, &sink, &opt, q.format, HTTP_BAD_REQUEST,
                              "the slow/rest split covers the whole run: "
                              "drop since= or view=");
        }
    }

    if (r->method_number == M_POST) {
        if (page != PAGE_OVERVIEW) {
            return HTTP_METHOD_NOT_ALLOWED;
        }
        return serve_post(r, st, &sink, &opt);
    }
    /* a request's page reads one record (bounded by PyProfMaxDepth and
     * the record's stacks) and is what people and scripts open by the
     * dozen: only the location pages, which aggregate, take a turn */
    if (page == PAGE_LOCATION &&
        !turn_take(r, &renders_running, RENDERS_PER_CHILD)) {
        return busy_page(r, &sink, &opt, q.format, "1",
                         apr_psprintf(r->pool, "this server process is "
                                      "rendering as many location profiles "
                                      "as it may at once (%d); retry in a "
                                      "second", RENDERS_PER_CHILD));
    }
    switch (page) {
    case PAGE_REQUEST:
        if (!*sub && q.trace) {
            return serve_trace_lookup(r, st, &q, &sink, &opt);
        }
        return serve_request(r, st, sub, &q, &sink, &opt);
    case PAGE_LOCATION:
        return serve_location(r, st, &q, &sink, &opt);
    case PAGE_PULL:
        return serve_pull(r, st, &q, &sink, &opt);
    case PAGE_METRICS:
        ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
        if (!r->header_only && st) {
            pp_render_metrics(&sink, st, &opt);
        }
        return OK;
    default:
        break;
    }

    if (q.format != FMT_HTML && q.format != FMT_JSON) {
        return error_page(r, &sink, &opt, FMT_HTML, HTTP_BAD_REQUEST,
                          "the overview is html or json; profiles are at "
                          "/request/ID and /location?path=PREFIX");
    }
    if ((err = overview_filters(st, &q, &opt))) {
        return error_page(r, &sink, &opt, q.format, HTTP_BAD_REQUEST, err);
    }
    set_type(r, q.format);
    if (r->header_only) {
        return OK;
    }
    if (!st) {
        /* inert: no PyProfSample anywhere */
        if (q.format == FMT_JSON) {
            pp_puts(&sink, "{\"locations\":[],\"requests\":[],"
                           "\"inflight\":[],\"sampler\":null,"
                           "\"store\":null}\n");
        }
        else {
            pp_render_message_html(&sink, "Python request profiles",
                                   "No PyProfSample location is "
                                   "configured, so nothing is sampled.",
                                   &opt);
        }
        return OK;
    }
    pp_store_reap_dead(st);
    if (q.format == FMT_JSON) {
        pp_render_overview_json(&sink, st, &opt);
    }
    else {
        pp_render_overview_html(&sink, st, &opt);
    }
    return OK;
}
