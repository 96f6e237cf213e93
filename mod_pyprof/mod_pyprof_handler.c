/* mod_pyprof_handler.c: the "server-profile" handler.
 *
 * Like mod_status: declines unless r->handler matches, serves GET (and
 * HEAD) only, reads options from r->args, and renders through the core's
 * pp_render_* with a sink that writes to the response.  Everything it
 * reads from the store is a snapshot copy; it never writes to the store.
 */
#include "apr_strings.h"
#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"

#include "mod_pyprof.h"
#include "pp_render.h"
#include "pp_sampler.h"

APLOG_USE_MODULE(pyprof);

enum { FMT_HTML, FMT_JSON, FMT_FOLDED };

typedef struct query {
    int format;
    const char *path;
    int refresh;
    const char *error;
} query_t;

static void sink_write(void *ctx, const char *s, size_t n)
{
    request_rec *r = ctx;
    if (n) {
        ap_rwrite(s, (int)n, r);
    }
}

static void parse_query(request_rec *r, query_t *q)
{
    char *args, *tok, *state;

    q->format = FMT_HTML;
    q->path = NULL;
    q->refresh = 0;
    q->error = NULL;
    if (!r->args) {
        return;
    }
    args = apr_pstrdup(r->pool, r->args);
    for (tok = apr_strtok(args, "&;", &state); tok;
         tok = apr_strtok(NULL, "&;", &state)) {
        char *val = strchr(tok, '=');
        if (val) {
            *val++ = '\0';
            if (ap_unescape_url(val) != OK) {
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
            else {
                q->error = "format must be html, json or folded";
                return;
            }
        }
        else if (strcmp(tok, "path") == 0) {
            q->path = val;
        }
        else if (strcmp(tok, "refresh") == 0) {
            long n = val ? strtol(val, NULL, 10) : 0;
            /* as mod_status: at least 1 s, at most a day */
            q->refresh = n < 1 ? 1 : (n > 86400 ? 86400 : (int)n);
        }
    }
}

static void set_type(request_rec *r, int format)
{
    switch (format) {
    case FMT_JSON:
        ap_set_content_type(r, "application/json");
        break;
    case FMT_FOLDED:
        ap_set_content_type(r, "text/plain; charset=utf-8");
        break;
    default:
        ap_set_content_type(r, "text/html; charset=utf-8");
    }
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
}

static int error_page(request_rec *r, pp_sink_t *o, pp_render_opts_t *opt,
                      int format, int status, const char *msg)
{
    r->status = status;
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
        pp_render_message_html(o, status == HTTP_NOT_FOUND ? "Not found"
                                                           : "Bad request",
                               msg, opt);
    }
    return OK;
}

int pyprof_handler(request_rec *r)
{
    pp_store_t *st = pyprof_shared_store();
    pp_sink_t sink = {sink_write, r};
    pp_render_opts_t opt;
    query_t q;
    const char *sub, *marker = "/request/";
    char *base;
    int location_page = 0;
    pyprof_server_conf_t *c;

    if (!r->handler || strcmp(r->handler, PYPROF_HANDLER) != 0) {
        return DECLINED;
    }
    r->allowed = (AP_METHOD_BIT << M_GET);
    if (r->method_number != M_GET) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    c = ap_get_module_config(r->server->module_config, &pyprof_module);
    parse_query(r, &q);

    /* the handler's own URL is whatever <Location> mapped here; the
     * request pages live below it */
    base = apr_pstrdup(r->pool, r->uri);
    sub = ap_strstr_c(base, marker);
    if (sub) {
        base[sub - base] = '\0';
        sub += strlen(marker);
    }
    else {
        size_t n = strlen(base);
        while (n > 1 && base[n - 1] == '/') {
            base[--n] = '\0';
        }
        if (n >= 9 && strcmp(base + n - 9, "/location") == 0) {
            base[n - 9] = '\0';
            location_page = 1;
        }
    }
    memset(&opt, 0, sizeof(opt));
    opt.base = base;
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

    if (sub) {
        pp_record_t *rec;
        int inflight = 0;

        if (!st || !*sub || strlen(sub) >= PP_ID_MAX ||
            !(rec = apr_palloc(r->pool, sizeof(*rec))) ||
            !pp_store_find(st, sub, rec, &inflight)) {
            return error_page(r, &sink, &opt, q.format, HTTP_NOT_FOUND,
                              "No profile with this request id: it was "
                              "never sampled, or it has been evicted.");
        }
        set_type(r, q.format);
        if (r->header_only) {
            return OK;
        }
        if (q.format == FMT_JSON) {
            pp_render_request_json(&sink, st, rec, inflight, &opt);
        }
        else if (q.format == FMT_FOLDED) {
            pp_render_request_folded(&sink, st, rec);
        }
        else {
            pp_render_request_html(&sink, st, rec, inflight, &opt);
        }
        return OK;
    }

    if (location_page) {
        int idx = st && q.path ? pp_render_find_location(st, q.path) : -1;
        if (q.format != FMT_FOLDED) {
            return error_page(r, &sink, &opt, FMT_HTML, HTTP_BAD_REQUEST,
                              "the location aggregate is available as "
                              "?path=PREFIX&format=folded");
        }
        if (idx < 0) {
            return error_page(r, &sink, &opt, q.format, HTTP_NOT_FOUND,
                              "No sampled location with this path.");
        }
        set_type(r, q.format);
        if (!r->header_only) {
            pp_render_location_folded(&sink, st, idx);
        }
        return OK;
    }
    if (q.format == FMT_FOLDED) {
        return error_page(r, &sink, &opt, FMT_HTML, HTTP_BAD_REQUEST,
                          "format=folded is available for a request: "
                          "/request/ID?format=folded");
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
