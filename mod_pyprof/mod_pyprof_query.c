/* mod_pyprof_query.c: the handler's reading of a request (see
 * mod_pyprof_query.h): the query string's options, the windows, views and
 * filters they ask for, and the capture form's body.  Reads the request
 * and writes only the query and the page options it is given (the
 * overview's location filter looks a path up in the store, read-only).
 * Glue: httpd and APR only, no Python header.  Called by the handler and
 * its pages (mod_pyprof_handler.c, mod_pyprof_pages.c).
 */
#include "apr_lib.h"
#include "apr_strings.h"
#include "http_protocol.h"

#include "mod_pyprof_query.h"

/* ?refresh=N: as mod_status, at least 1 s, at most a day */
#define REFRESH_MAX_S 86400
/* ?since= is parsed up to a week, then held to what the store keeps
 * (PP_WINDOW_MAX_US, an hour) */
#define WINDOW_PARSE_MAX_S (7LL * 24 * 3600)
/* ?min_ms= and ?max_ms=: at most this many milliseconds */
#define FILTER_MAX_MS 1e9
/* the capture form: its body's size */
#define FORM_MAX 4096

/* Decode a form-urlencoded value in place: '+' is a space, %XX any byte
 * but NUL ('/' included, which is what the pages put in their links).  0
 * if malformed (a '%' without two hex digits, or %00). */
static int unescape_query(char *s)
{
    return ap_unescape_urlencoded(s) == OK;
}

void pyprof_query_parse(request_rec *r, pyprof_query_t *q)
{
    char *args, *tok, *state;

    memset(q, 0, sizeof(*q));
    q->format = PYPROF_FMT_HTML;
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
                q->format = PYPROF_FMT_HTML;
            }
            else if (strcmp(val, "json") == 0) {
                q->format = PYPROF_FMT_JSON;
            }
            else if (strcmp(val, "folded") == 0) {
                q->format = PYPROF_FMT_FOLDED;
            }
            else if (strcmp(val, "speedscope") == 0) {
                q->format = PYPROF_FMT_SPEEDSCOPE;
            }
            else if (strcmp(val, "pprof") == 0) {
                q->format = PYPROF_FMT_PPROF;
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

const char *pyprof_query_overview_filters(pp_store_t *st, pyprof_query_t *q,
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

/* since= and view=: what they ask for, or why they are refused */
const char *pyprof_query_window_view(request_rec *r, pyprof_query_t *q,
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
        if (opt->diff && q->format != PYPROF_FMT_HTML) {
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

/* Read an urlencoded POST body of at most FORM_MAX bytes; NULL if it is
 * larger, chunked oddly, or unreadable. */
char *pyprof_form_read(request_rec *r)
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

const char *pyprof_form_value(request_rec *r, const char *form, const char *key)
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
