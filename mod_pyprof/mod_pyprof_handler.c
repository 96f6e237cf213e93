/* mod_pyprof_handler.c: the "server-profile" handler: which page a
 * request asks for, and everything checked before any page is.
 *
 * Like mod_status: declines unless r->handler matches, serves GET (and
 * HEAD) and the capture form's POST, reads options from r->args
 * (mod_pyprof_query.c), and hands the request to its page
 * (mod_pyprof_pages.c), which renders through the core's pp_render_* /
 * pp_export_* with the sink below, which writes to the response.  Writes
 * nothing to the store itself (the pages say where they do).  Every query
 * value is validated before use: an unknown option value is a 400 that
 * says what is accepted.  Glue: no Python header.  httpd calls
 * pyprof_handler (mod_pyprof.c registers it).
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
#include "apr_strings.h"
#include "http_protocol.h"

#include "mod_pyprof.h"
#include "mod_pyprof_pages.h"
#include "pp_time.h"

static void sink_write(void *ctx, const char *s, size_t n)
{
    request_rec *r = ctx;
    if (n) {
        /* -1 only when the client is gone: httpd marks the connection
         * aborted and drops the rest; the page has nothing to add */
        ap_rwrite(s, (int)n, r);
    }
}

/* The pages below the handler's own URL.  A route's name is the last
 * segment of the path (trailing slashes aside); a route that is `below`
 * also takes a path that continues after its name and a '/' anywhere in
 * it, the rest going to q->sub.  The first match wins; the last row, with
 * no name, is the handler's own URL.  A method without a function is 405
 * (r->allowed says GET and POST: the overview's form). */
typedef struct route {
    const char *name;
    int below;
    pyprof_page_t *get; /* GET and HEAD */
    pyprof_page_t *post;
} route_t;

static const route_t routes[] = {
    {"/request", 1, pyprof_page_request, NULL},
    {"/location", 0, pyprof_page_location, NULL},
    {"/pprof", 0, pyprof_page_pull, NULL},
    {"/metrics", 0, pyprof_page_metrics, NULL},
    {NULL, 0, pyprof_page_overview, pyprof_page_post},
};

/* The route of the path in base, which is cut to the handler's own URL;
 * q->sub is set to the route's rest ("" if none). */
static const route_t *route_of(char *base, pyprof_query_t *q)
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

int pyprof_handler(request_rec *r)
{
    pp_store_t *st = pyprof_shared_store();
    pp_sink_t sink = {sink_write, r};
    pp_render_opts_t opt;
    pyprof_query_t q;
    const route_t *rt;
    pyprof_page_t *serve;
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
    pyprof_query_parse(r, &q);
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
        return pyprof_page_error(r, &sink, &opt, PYPROF_FMT_HTML,
                                 HTTP_BAD_REQUEST, q.error);
    }
    if (q.refresh) {
        apr_table_setn(r->headers_out, "Refresh",
                       apr_psprintf(r->pool, "%d", q.refresh));
    }
    if ((err = pyprof_query_window_view(r, &q, &opt))) {
        return pyprof_page_error(r, &sink, &opt, q.format, HTTP_BAD_REQUEST,
                                 err);
    }
    serve = r->method_number == M_POST ? rt->post : rt->get;
    if (!serve) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    return serve(r, st, &q, &sink, &opt);
}
