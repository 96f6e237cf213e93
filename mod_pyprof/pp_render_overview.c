/* pp_render_overview.c: the HTML overview of /server-profile, one
 * function per section: locations with their histograms, requests in
 * flight, the slow-request table with its filters, captures, and the
 * sampler's cost.  Renders the overview's snapshot (pp_overview.h) and
 * reads nothing else.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pp_render_int.h"

static void duration_label(int64_t us, char *buf, size_t cap)
{
    if (us >= 1000000) {
        snprintf(buf, cap, "%llds", (long long)(us / 1000000));
    }
    else {
        snprintf(buf, cap, "%lldms", (long long)(us / 1000));
    }
}

static void hist_svg(pp_sink_t *o, const pp_loc_snap_t *s, const char *path)
{
    const int bw = 5, h = 52, top = 4, bottom = 14, left = 14;
    const int w = PP_HIST_BUCKETS * bw;
    uint64_t mx = 0;
    int b;
    static const int64_t ticks[] = {1000, 10000, 100000, 1000000, 10000000};
    size_t k;

    for (b = 0; b < PP_HIST_BUCKETS; b++) {
        if (s->hist[b] > mx) {
            mx = s->hist[b];
        }
    }
    pp_printf(o,
              "<svg class=hist width=%d height=%d viewBox=\"0 0 %d %d\" "
              "role=img aria-label=\"response time histogram\">",
              w + left + 14, h + bottom, w + left + 14, h + bottom);
    pp_printf(o, "<g transform=\"translate(%d,0)\">", left);
    pp_printf(o, "<line x1=0 y1=%d x2=%d y2=%d stroke=#c5ccd6 />", h, w, h);
    pp_printf(o, "<text x=%d y=10 text-anchor=end>max %llu</text>", w,
              (unsigned long long)mx);
    for (b = 0; b < PP_HIST_BUCKETS; b++) {
        char lo[24], hi[24];
        int bh;
        if (!s->hist[b]) {
            continue;
        }
        bh = (int)((double)(h - top) * (double)s->hist[b] / (double)mx);
        if (bh < 2) {
            bh = 2;
        }
        duration_label(pp_hist_lo_us(b), lo, sizeof(lo));
        if (pp_hist_hi_us(b) == INT64_MAX) {
            snprintf(hi, sizeof(hi), "&#8734;");
        }
        else {
            snprintf(hi, sizeof(hi), "%.1fms", pp_hist_hi_us(b) / 1e3);
        }
        /* a bar links to the kept requests in its range: the slow table,
         * filtered, further down this page */
        pp_puts(o, "<a href=\"?location=");
        pp_put_url_segment(o, path, strlen(path));
        pp_printf(o, "&amp;min_ms=%.3f", pp_hist_lo_us(b) / 1e3);
        if (pp_hist_hi_us(b) != INT64_MAX) {
            pp_printf(o, "&amp;max_ms=%.3f", pp_hist_hi_us(b) / 1e3);
        }
        pp_printf(o,
                  "#slow\"><rect class=b x=%d y=%d width=%d height=%d>"
                  "<title>%.1fms - %s: %llu requests (click: the kept "
                  "ones)</title></rect>"
                  "<rect x=%d y=0 width=%d height=%d fill=transparent />"
                  "</a>",
                  b * bw, h - bh, bw - 1, bh, pp_hist_lo_us(b) / 1e3, hi,
                  (unsigned long long)s->hist[b], b * bw, bw, h);
    }
    for (k = 0; k < sizeof(ticks) / sizeof(ticks[0]); k++) {
        char lab[32];
        int x = pp_hist_bucket(ticks[k]) * bw;
        duration_label(ticks[k], lab, sizeof(lab));
        pp_printf(o,
                  "<line x1=%d y1=%d x2=%d y2=%d stroke=#9aa5b4 />"
                  "<text x=%d y=%d text-anchor=middle>%s</text>",
                  x, h, x, h + 3, x, h + 13, lab);
    }
    pp_puts(o, "</g></svg>");
}

/* "function (file.py:line)": an in-flight request's innermost frame. */
static void leaf_function(const pp_pframe_t *fv, char *buf, size_t cap)
{
    if (fv->file[0]) {
        const char *base = strrchr(fv->file, '/');
        snprintf(buf, cap, "%s (%s:%u)", fv->function,
                 base ? base + 1 : fv->file, fv->line);
    }
    else {
        snprintf(buf, cap, "%s", fv->function);
    }
}

/* The query that reproduces the current filters, with another sort. */
static void filter_query(pp_sink_t *o, const pp_overview_t *ov,
                         const pp_render_opts_t *opt, int sort)
{
    static const char *const sorts[] = {"duration", "time", "uri"};

    pp_printf(o, "?sort=%s", sorts[sort % 3]);
    if (opt->filter_location >= 0) {
        const char *lp = pp_overview_path(ov, opt->filter_location);
        pp_puts(o, "&amp;location=");
        pp_put_url_segment(o, lp, strlen(lp));
    }
    if (opt->filter_status) {
        if (opt->filter_status < 10) {
            pp_printf(o, "&amp;status=%dxx", opt->filter_status);
        }
        else {
            pp_printf(o, "&amp;status=%d", opt->filter_status);
        }
    }
    if (opt->min_us >= 0) {
        pp_printf(o, "&amp;min_ms=%.3f", opt->min_us / 1e3);
    }
    if (opt->max_us >= 0) {
        pp_printf(o, "&amp;max_ms=%.3f", opt->max_us / 1e3);
    }
    if (opt->process_group) {
        pp_puts(o, "&amp;process_group=");
        pp_put_url_segment(o, opt->process_group, strlen(opt->process_group));
    }
    if (opt->app_group) {
        pp_puts(o, "&amp;app_group=");
        pp_put_url_segment(o, opt->app_group, strlen(opt->app_group));
    }
}

static void sort_link(pp_sink_t *o, const pp_overview_t *ov,
                      const pp_render_opts_t *opt, int sort, const char *label)
{
    pp_puts(o, "<a href=\"");
    filter_query(o, ov, opt, sort);
    pp_printf(o, "#slow\">%s%s</a>", label,
              opt->sort == sort ? " \xe2\x96\xbe" : "");
}

/* The <option>s of a <select> of the configured locations, `selected`
 * (a location index, or -1) marked. */
static void location_options(pp_sink_t *o, const pp_overview_t *ov,
                             int selected)
{
    size_t i;

    for (i = 0; i < ov->nloc; i++) {
        const pp_ov_location_t *l = &ov->loc[i];
        pp_puts(o, "<option value=\"");
        pp_puts_html(o, l->path);
        pp_puts(o, selected == l->row ? "\" selected>" : "\">");
        pp_puts_html(o, l->path);
        pp_puts(o, "</option>");
    }
}

/* A GET form: filters work without JavaScript. */
static void filter_form(pp_sink_t *o, const pp_overview_t *ov,
                        const pp_render_opts_t *opt)
{
    static const char *const sorts[] = {"duration", "time", "uri"};

    pp_printf(o,
              "<form class=filters method=get action=\"#slow\">"
              "<input type=hidden name=sort value=%s>"
              "<label>Location <select name=location>"
              "<option value=\"\">any</option>",
              sorts[opt->sort % 3]);
    location_options(o, ov, opt->filter_location);
    pp_puts(o, "</select></label> <label>Status <input name=status size=4 "
               "placeholder=\"5xx\" value=\"");
    if (opt->filter_status >= 10) {
        pp_printf(o, "%d", opt->filter_status);
    }
    else if (opt->filter_status) {
        pp_printf(o, "%dxx", opt->filter_status);
    }
    pp_puts(o, "\"></label> <label>From <input name=min_ms size=6 "
               "placeholder=ms value=\"");
    if (opt->min_us >= 0) {
        pp_printf(o, "%.0f", opt->min_us / 1e3);
    }
    pp_puts(o, "\"></label> <label>to <input name=max_ms size=6 "
               "placeholder=ms value=\"");
    if (opt->max_us >= 0) {
        pp_printf(o, "%.0f", opt->max_us / 1e3);
    }
    pp_puts(o, "\"></label> <label>Daemon group <input name=process_group "
               "size=8 value=\"");
    if (opt->process_group) {
        pp_puts_html(o, opt->process_group);
    }
    pp_puts(o, "\"></label> <label>App group <input name=app_group size=12 "
               "value=\"");
    if (opt->app_group) {
        pp_puts_html(o, opt->app_group);
    }
    pp_puts(o, "\"></label> <button>Filter</button> <a href=\"?#slow\">"
               "clear</a></form>");
}

/* X-Ray style captures: arm one (POST, with this hour's nonce), and for
 * each location the requests of its latest capture with their histogram. */
static void captures_section(pp_sink_t *o, const pp_overview_t *ov,
                             const pp_render_opts_t *opt)
{
    size_t i, k;
    int any = 0;

    pp_puts(o, "<h2 id=captures>Captures <span class=muted>(keep the next "
               "N requests of a location, sampled at the trigger interval)"
               "</span></h2><form class=filters method=post action=\"");
    pp_puts_html(o, opt->base);
    pp_puts(o, "\"><input type=hidden name=action value=capture>"
               "<input type=hidden name=nonce value=\"");
    pp_puts(o, ov->nonce);
    pp_puts(o, "\"><label>Keep the next <input name=count size=4 "
               "value=20></label> <label>requests to <select name=path>");
    location_options(o, ov, -1);
    pp_puts(o, "</select></label> <button>Arm</button></form>");
    for (i = 0; i < ov->nloc; i++) {
        const pp_ov_location_t *l = &ov->loc[i];
        uint32_t n = l->capture_n;
        pp_loc_snap_t snap;

        if (!l->capture_id) {
            continue;
        }
        any = 1;
        memset(&snap, 0, sizeof(snap));
        pp_puts(o, "<h3>");
        pp_puts_html(o, l->path);
        pp_printf(
            o, ": capture %u, %d of %u taken</h3>", l->capture_id,
            (int)(n - (uint32_t)(l->capture_left > 0 ? l->capture_left : 0)),
            n);
        pp_puts(o, "<table><tr><th class=num>Duration</th><th>Method</th>"
                   "<th>URI</th><th class=num>Status</th>"
                   "<th class=num>Samples</th><th>Profile</th></tr>");
        for (k = 0; k < l->ncaptured; k++) {
            const pp_req_t *q = &ov->captured[l->capture_first + k];
            snap.hist[pp_hist_bucket(q->duration_us)]++;
            snap.requests++;
            if ((uint64_t)q->duration_us > snap.max_us) {
                snap.max_us = (uint64_t)q->duration_us;
            }
            pp_puts(o, "<tr>");
            pp_put_ms_cell(o, q->duration_us / 1e3);
            pp_puts(o, "<td>");
            pp_puts_html(o, q->method);
            pp_puts(o, "</td><td class=uri>");
            pp_puts_html(o, q->uri);
            pp_puts(o, "</td>");
            pp_status_cell(o, q->status);
            pp_printf(o, "<td class=num>%u</td><td>", q->samples);
            pp_req_link(o, opt, q->id, "call tree");
            pp_puts(o, "</td></tr>");
        }
        pp_puts(o, "</table>");
        if (l->ncaptured) {
            char b[3][32];
            pp_human_ms(
                pp_hist_quantile_us(snap.hist, 0.5, (int64_t)snap.max_us) / 1e3,
                b[0], sizeof(b[0]));
            pp_human_ms(
                pp_hist_quantile_us(snap.hist, 0.95, (int64_t)snap.max_us) /
                    1e3,
                b[1], sizeof(b[1]));
            pp_human_ms(snap.max_us / 1e3, b[2], sizeof(b[2]));
            pp_printf(o,
                      "<p class=muted>These %zu requests: p50 %s, p95 %s, "
                      "max %s</p>",
                      l->ncaptured, b[0], b[1], b[2]);
            hist_svg(o, &snap, l->path);
        }
    }
    if (!any) {
        pp_puts(o, "<p class=empty>No capture armed yet.</p>");
    }
}

/* Configured locations: counts, quantiles, and the response-time
 * histogram whose bars link to the kept requests in their range. */
static void locations_section(pp_sink_t *o, const pp_overview_t *ov,
                              const pp_render_opts_t *opt)
{
    size_t i;

    pp_puts(o, "<h2>Locations</h2>");
    for (i = 0; i < ov->nloc; i++) {
        const pp_ov_location_t *l = &ov->loc[i];
        const pp_loc_snap_t *s = &l->s;
        double age = (double)(opt->now_us - l->created_us) / 1e6;
        /* achieved vs nominal: one sample per interval of request time is
         * what the configuration asks for */
        double nominal =
            l->interval_us ? (double)s->sum_us / (double)l->interval_us : 0;

        if (i == 0) {
            pp_puts(o, "<table><tr><th>Location</th><th class=num>Every</th>"
                       "<th class=num>Requests</th>"
                       "<th class=num title=\"average since the location "
                       "was configured\">Rate</th>"
                       "<th class=num>p50</th><th class=num>p95</th>"
                       "<th class=num>p99</th><th class=num>Max</th>"
                       "<th class=num>Kept</th><th class=num>Samples</th>"
                       "<th>Response time (log scale)</th></tr>");
        }
        pp_puts(o, "<tr><td class=mono><a href=\"");
        pp_puts_html(o, opt->base);
        pp_puts(o, "/location?path=");
        pp_put_url_segment(o, l->path, strlen(l->path));
        pp_puts(o, "\" title=\"flame graph of every sampled request\">");
        pp_puts_html(o, l->path);
        pp_puts(o, "</a></td>");
        pp_put_ms_cell(o, l->interval_us / 1e3);
        pp_printf(o, "<td class=num>%llu</td><td class=num>%.2f/s</td>",
                  (unsigned long long)s->requests,
                  age > 0 ? (double)s->requests / age : 0.0);
        pp_put_ms_cell(
            o, pp_hist_quantile_us(s->hist, 0.50, (int64_t)s->max_us) / 1e3);
        pp_put_ms_cell(
            o, pp_hist_quantile_us(s->hist, 0.95, (int64_t)s->max_us) / 1e3);
        pp_put_ms_cell(
            o, pp_hist_quantile_us(s->hist, 0.99, (int64_t)s->max_us) / 1e3);
        pp_put_ms_cell(o, s->max_us / 1e3);
        pp_printf(o, "<td class=num>%llu</td><td class=num>%llu",
                  (unsigned long long)s->kept, (unsigned long long)s->samples);
        if (nominal >= 1) {
            pp_printf(o,
                      "<br><span class=muted title=\"samples taken "
                      "against one per interval of request time\">"
                      "%.0f%% of nominal</span>",
                      100.0 * (double)s->samples / nominal);
        }
        pp_puts(o, "</td><td>");
        hist_svg(o, s, l->path);
        pp_puts(o, "</td></tr>");
    }
    if (ov->nloc) {
        pp_puts(o, "</table>");
    }
    else {
        pp_puts(o, "<p class=empty>No <code>PyProfSample</code> location is "
                   "configured, so nothing is sampled.</p>");
    }
}

static void location_link(pp_sink_t *o, const pp_gil_rows_t *g,
                          const pp_render_opts_t *opt, int row)
{
    const char *path = row >= 0 && row < PP_MAX_LOCATIONS ? g->path[row] : "";

    if (!path[0]) {
        pp_puts(o, "<span class=muted>(none)</span>");
        return;
    }
    pp_location_link(o, opt, path);
}

void pp_gil_table(pp_sink_t *o, const pp_gil_rows_t *g,
                  const pp_render_opts_t *opt, int holder, int waiter,
                  size_t max)
{
    size_t i, shown = 0;

    for (i = 0; i < g->n && shown < max; i++) {
        const pp_gil_row_t *r = &g->rows[i];

        if ((holder >= 0 && r->holder != holder) ||
            (waiter >= 0 && r->waiter != waiter)) {
            continue;
        }
        if (!shown++) {
            pp_puts(o, "<table class=contention><tr><th>Held by location</th>"
                       "<th>In function</th><th>Made wait</th>"
                       "<th class=num>Wait caused</th>"
                       "<th class=num>Samples</th>"
                       "<th class=num title=\"requests that waited behind "
                       "it, counted when they ended\">Requests "
                       "delayed</th></tr>");
        }
        pp_puts(o, "<tr><td class=mono>");
        location_link(o, g, opt, r->holder);
        pp_puts(o, "</td><td class=mono>");
        if (r->f.function[0]) {
            pp_puts_html(o, r->f.function);
            pp_puts(o, " <span class=loc>");
            pp_puts_html(o, r->f.file);
            pp_printf(o, ":%u</span>", r->f.line);
        }
        else {
            pp_puts(o, "<span class=muted>[no Python frame]</span>");
        }
        pp_puts(o, "</td><td class=mono>");
        location_link(o, g, opt, r->waiter);
        pp_puts(o, "</td>");
        pp_put_ms_cell(o, r->wait_us / 1e3);
        pp_printf(o, "<td class=num>%llu</td><td class=num>%llu</td></tr>",
                  (unsigned long long)r->samples,
                  (unsigned long long)r->delayed);
    }
    if (shown) {
        pp_puts(o, "</table>");
    }
    else {
        pp_puts(o, "<p class=empty>No request has waited for the GIL "
                   "behind another.</p>");
    }
}

/* The noisy neighbours: who held the GIL while requests waited for it. */
static void gil_section(pp_sink_t *o, const pp_overview_t *ov,
                        const pp_render_opts_t *opt)
{
    pp_puts(o, "<h2 id=gil>GIL contention</h2>");
    pp_gil_table(o, &ov->gil, opt, -1, -1, 20);
    if (ov->c.gil_blocking_no_request_us) {
        pp_printf(o,
                  "<p class=muted>Threads serving no profiled request held "
                  "the GIL while requests waited %.1f ms.</p>",
                  ov->c.gil_blocking_no_request_us / 1e3);
    }
}

/* Requests running now, each with the stack of its latest sample. */
static void inflight_section(pp_sink_t *o, const pp_overview_t *ov,
                             const pp_render_opts_t *opt)
{
    size_t k;

    pp_printf(o, "<h2>In flight now <span class=muted>(%zu)</span></h2>",
              ov->ninflight);
    if (ov->ninflight == 0) {
        pp_puts(o, "<p class=empty>No profiled request is running.</p>");
        return;
    }
    pp_puts(o, "<table><tr><th class=num>Elapsed</th><th>Method</th>"
               "<th>URI</th><th class=num>Samples</th>"
               "<th class=num>PID</th><th>Now in</th></tr>");
    for (k = 0; k < ov->ninflight; k++) {
        const pp_ov_inflight_t *e = &ov->inflight[k];
        const pp_req_t *q = &e->q;
        const pp_pframe_t *leaf =
            e->shown ? pp_profile_pframe(&ov->stacks, e->frames[e->shown - 1])
                     : NULL;
        uint32_t j;

        pp_puts(o, "<tr>");
        pp_put_ms_cell(o, pp_elapsed_ms(opt, q->start_us));
        pp_puts(o, "<td>");
        pp_puts_html(o, q->method);
        pp_puts(o, "</td><td class=uri>");
        pp_puts_html(o, q->uri);
        pp_printf(o,
                  "</td><td class=num>%u</td><td class=num>%d</td>"
                  "<td class=mono>",
                  q->samples, (int)q->pid);
        if (leaf && leaf->known) {
            /* the most recent sample's stack, innermost last, like a
             * traceback */
            char name[600];
            leaf_function(leaf, name, sizeof(name));
            pp_puts(o, "<details><summary>");
            pp_puts_html(o, name);
            pp_puts(o, "</summary><ol class=stack>");
            for (j = 0; j < e->shown; j++) {
                const pp_pframe_t *fv =
                    pp_profile_pframe(&ov->stacks, e->frames[j]);
                pp_puts(o, "<li>");
                pp_puts_html(o, fv->function);
                if (fv->file[0]) {
                    pp_puts(o, " <span class=muted>");
                    pp_puts_html(o, fv->file);
                    pp_printf(o, ":%u</span>", fv->line);
                }
                pp_puts(o, "</li>");
            }
            pp_puts(o, "</ol>");
            pp_req_link(o, opt, q->id, "call tree so far");
            pp_puts(o, "</details>");
        }
        else {
            pp_puts(o, "<span class=muted>not sampled yet</span>");
        }
        pp_puts(o, "</td></tr>");
    }
    pp_puts(o, "</table>");
}

/* Kept slow requests: the filter form, sortable columns, the first
 * PP_OV_HTML_ROWS rows (the JSON has them all). */
static void slow_section(pp_sink_t *o, const pp_overview_t *ov,
                         const pp_render_opts_t *opt)
{
    size_t k;

    pp_printf(o,
              "<h2 id=slow>Slow requests <span class=muted>(%zu kept%s, "
              "%s first)</span></h2>",
              ov->ntraces,
              opt->filter_location >= 0 || opt->filter_status ||
                      opt->min_us >= 0 || opt->max_us >= 0 ||
                      opt->process_group || opt->app_group
                  ? " matching the filter"
                  : "",
              opt->sort == PP_SORT_TIME
                  ? "newest"
                  : (opt->sort == PP_SORT_URI ? "by URI," : "slowest"));
    filter_form(o, ov, opt);
    if (ov->ntraces == 0) {
        pp_puts(o, "<p class=empty>No kept request matches. Only requests "
                   "at or over PyProfSlowThreshold are kept.</p>");
    }
    else {
        pp_puts(o, "<table><tr><th class=num>");
        sort_link(o, ov, opt, PP_SORT_DURATION, "Duration");
        pp_puts(o, "</th><th class=num>CPU</th><th>Method</th><th>");
        sort_link(o, ov, opt, PP_SORT_URI, "URI");
        pp_puts(o, "</th><th class=num>Status</th><th class=num>Samples</th>"
                   "<th class=num>PID</th><th>");
        sort_link(o, ov, opt, PP_SORT_TIME, "Started (UTC)");
        pp_puts(o, "</th><th>Profile</th></tr>");
        for (k = 0; k < ov->ntraces_listed && k < PP_OV_HTML_ROWS; k++) {
            const pp_req_t *q = &ov->traces[k];
            char t[40];
            pp_puts(o, "<tr>");
            pp_put_ms_cell(o, q->duration_us / 1e3);
            pp_put_ms_cell(o, q->cpu_us / 1e3);
            pp_puts(o, "<td>");
            pp_puts_html(o, q->method);
            pp_puts(o, "</td><td class=uri>");
            pp_puts_html(o, q->uri);
            if (q->flags & PP_REQ_TRIGGERED) {
                pp_puts(o, "<span class=flag>triggered</span>");
            }
            if (q->flags & PP_REQ_CAPTURED) {
                pp_printf(o, "<span class=flag>capture %u</span>", q->capture);
            }
            if (q->flags & PP_REQ_DAEMON) {
                pp_puts(o, "<br><span class=muted>daemon ");
                pp_puts_html(o, q->process_group);
                if (q->app_group[0]) {
                    pp_puts(o, " &middot; ");
                    pp_puts_html(o, q->app_group);
                }
                pp_puts(o, "</span>");
            }
            pp_puts(o, "</td>");
            pp_status_cell(o, q->status);
            pp_iso_time(q->start_us, t, sizeof(t));
            pp_printf(o,
                      "<td class=num>%u</td><td class=num>%d</td>"
                      "<td class=mono>%s</td><td>",
                      q->samples, (int)q->pid, t);
            pp_req_link(o, opt, q->id, "call tree");
            pp_puts(o, "</td></tr>");
        }
        pp_puts(o, "</table>");
        if (ov->ntraces > PP_OV_HTML_ROWS) {
            pp_printf(o,
                      "<p class=muted>%zu more in <a href=\"?format=json"
                      "\">JSON</a>.</p>",
                      ov->ntraces - PP_OV_HTML_ROWS);
        }
    }
}

/* What sampling costs, and what the store had no room for. */
static void sampler_section(pp_sink_t *o, const pp_overview_t *ov,
                            const pp_render_opts_t *opt)
{
    const pp_counters_t *c = &ov->c;
    char b1[64], b2[64];
    double uptime_s = (double)(opt->now_us - ov->created_us) / 1e6;
    uint64_t samples = c->samples;
    size_t i;
    int dropped_shown = 0;

    const char *reader = pp_overview_reader(ov);

    pp_printf(o,
              "<h2>Sampler cost <span class=muted>(%s)</span></h2>"
              "<div class=cards>",
              strcmp(reader, "gil") == 0 ? "GIL mode: each sample takes the GIL"
              : strcmp(reader, "guarded") == 0
                  ? "GIL-free: stacks are copied directly, a page freed "
                    "meanwhile caught, while the app runs on"
              : strcmp(reader, "syscall") == 0
                  ? "GIL-free: stacks are copied with process_vm_readv while "
                    "the app runs on"
                  : "GIL-free: stacks are copied directly in some processes, "
                    "with process_vm_readv in others, while the app runs on");
    pp_printf(o, "<div class=card><b>%llu</b><span>samples</span></div>",
              (unsigned long long)samples);
    pp_printf(o,
              "<div class=card><b>%.3f s</b><span>sampler CPU</span>"
              "</div>",
              c->sampler_cpu_ns / 1e9);
    pp_printf(o,
              "<div class=card><b>%.1f &micro;s</b><span>per sample, "
              "median</span></div>",
              pp_cost_quantile_us(c, 0.5));
    pp_printf(o,
              "<div class=card><b>%.1f &micro;s</b><span>per sample, "
              "p99</span></div>",
              pp_cost_quantile_us(c, 0.99));
    pp_printf(o,
              "<div class=card><b>%.3f s</b><span>waiting for the GIL"
              "</span></div>",
              c->gil_wait_ns / 1e9);
    pp_printf(o,
              "<div class=card><b>%.2f/s</b><span>samples per second"
              "</span></div>",
              uptime_s > 0 ? samples / uptime_s : 0.0);
    snprintf(b1, sizeof(b1), "%.1f", ov->arena_used / 1048576.0);
    snprintf(b2, sizeof(b2), "%.1f", ov->total_size / 1048576.0);
    pp_printf(o,
              "<div class=card><b>%s / %s MiB</b><span>frame text used / "
              "store size</span></div>",
              b1, b2);
    for (i = 0; i < pp_counter_nrows; i++) {
        const pp_counter_t *row = &pp_counter_rows[i];
        if ((row->flags & PP_CTR_DROPPED) && !dropped_shown) {
            pp_printf(o,
                      "<div class=card><b>%llu</b><span>dropped (store "
                      "full, see JSON)</span></div>",
                      (unsigned long long)pp_counters_dropped(c));
            dropped_shown = 1;
        }
        else if (row->card) {
            pp_printf(o, "<div class=card><b>%llu</b><span>%s</span></div>",
                      (unsigned long long)pp_counter_read(c, row), row->card);
        }
    }
    pp_printf(o,
              "<div class=card><b>%llu</b><span>samples dropped as torn"
              "</span></div>",
              (unsigned long long)c->torn);
    if (ov->sampler_mode != PP_SAMPLER_GIL) {
        pp_printf(o,
                  "<div class=card><b>%llu</b><span>copies that met a freed "
                  "page (guarded, recovered)</span></div>",
                  (unsigned long long)c->copy_faults);
        if (c->guard_replaced) {
            pp_printf(o,
                      "<div class=card><b>%llu</b><span>samplers back on "
                      "process_vm_readv (their SIGSEGV handler replaced)"
                      "</span></div>",
                      (unsigned long long)c->guard_replaced);
        }
    }
    if (uptime_s > 0) {
        pp_printf(o,
                  "<div class=card><b>%.4f</b><span>CPU s sampling per "
                  "s of wall time</span></div>",
                  c->sampler_cpu_ns / 1e9 / uptime_s);
    }
    if (samples) {
        /* the phases of a wake-up, wall time per sample */
        pp_printf(o,
                  "<div class=card><b>%.1f / %.1f / %.1f &micro;s</b><span>"
                  "wall time per sample: walking / classifying / storing"
                  "</span></div>",
                  c->walk_ns / 1e3 / samples, c->classify_ns / 1e3 / samples,
                  c->store_ns / 1e3 / samples);
    }
    pp_puts(o, "</div>");
    if (c->renewals) {
        /* say what a renewal took away: the numbers above still count
         * from the start, the profiles only from the renewal */
        time_t at = (time_t)(c->renewed_us / 1000000);
        struct tm tm;
        char when[32] = "?";
        if (gmtime_r(&at, &tm)) {
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
        }
        pp_printf(o,
                  "<p class=notice>The store was renewed %llu time(s) "
                  "at graceful restarts, the last at %s, because it was "
                  "filling with the code of earlier deploys: profiles "
                  "since start begin there; frames of old code and %llu "
                  "location row(s) no longer configured were reclaimed. "
                  "Counters, histograms and the newest kept traces "
                  "carried over.</p>",
                  (unsigned long long)c->renewals, when,
                  (unsigned long long)c->locations_reclaimed);
    }
}

void pp_render_overview_html(pp_sink_t *o, const pp_overview_t *ov,
                             const pp_render_opts_t *opt)
{
    pp_page_begin(o, "Python request profiles", opt);
    locations_section(o, ov, opt);
    inflight_section(o, ov, opt);
    slow_section(o, ov, opt);
    captures_section(o, ov, opt);
    gil_section(o, ov, opt);
    sampler_section(o, ov, opt);
    pp_puts(o, "<p class=muted>Machine-readable: <a href=\"");
    pp_puts_html(o, opt->base);
    pp_puts(o, "?format=json\">?format=json</a>. Reload every N seconds "
               "with <code>?refresh=N</code>.</p>");
    pp_page_end(o);
}
