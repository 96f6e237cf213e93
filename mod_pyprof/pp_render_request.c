/* pp_render_request.c: the pages of one stack set: a request (details,
 * where its time went, segments, then its profile) and a location (since
 * start, a time window, or the slowest requests against the rest), and
 * their folded exports.  Each renders from what pp_overview.c read and
 * resolved first (pp_request_page_t, pp_location_page_t, a resolved
 * profile), never from the store.  The views themselves are pp_views.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp_export.h"
#include "pp_render_int.h"
#include "pp_views.h"

void pp_render_request_folded(pp_sink_t *o, const pp_request_view_t *v)
{
    /* out of memory: no stacks rather than some (the format has no room
     * to say they are not all there) */
    if (!v->failed) {
        pp_export_folded(o, &v->p);
    }
}

size_t pp_render_location_folded(pp_sink_t *o, const pp_profile_t *p)
{
    pp_export_folded(o, p);
    return p->n;
}

/* ---- request and location pages ---- */

/* Flame graph, hot functions and call tree of one built tree: the tree is
 * built once per stack set and every view reads it. */
static void tree_sections(pp_sink_t *o, const pp_tree_t *tree, int with_cpu,
                          const char *app_root)
{
    pp_puts(o, "<h2>Flame graph</h2>");
    pp_view_truncated(o, tree);
    pp_view_flamegraph(o, tree, app_root);
    pp_puts(o, "<h2>Hot functions <span class=muted>(bottom-up)</span>"
               "</h2>");
    pp_view_hot(o, tree, with_cpu, app_root);
    pp_puts(o, "<h2>Call tree <span class=muted>(top-down; bar: "
               "<span style=\"color:#d9480f\">on CPU</span> / "
               "<span style=\"color:#7aa2d6\">off CPU: sleep, I/O, "
               "waiting for the GIL or for a core</span>)</span></h2>");
    pp_view_tree(o, tree, app_root);
}

/* The notice a page prints in place of its views when the load ran out
 * of memory (PP_PAGE_*). */
static void page_failed(pp_sink_t *o, int failed)
{
    pp_puts(o, failed == PP_PAGE_NO_STACKS
                   ? "<p class=empty>Out of memory reading the stacks.</p>"
                   : "<p class=empty>Out of memory building the tree.</p>");
}

/* Links to the exports of this page's stack set; a location page's keep
 * its path (readable: ?path=/app) and window. */
static void export_links(pp_sink_t *o, const char *path, int64_t since_us)
{
    static const char *const fmts[][2] = {{"json", "JSON"},
                                          {"folded", "folded stacks"},
                                          {"speedscope", "speedscope"},
                                          {"pprof", "pprof"}};
    size_t i;

    for (i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
        pp_printf(o, "%s<a href=\"?", i ? " &middot; " : "");
        if (path) {
            pp_puts(o, "path=");
            pp_put_url(o, path, strlen(path), PP_URL_KEEP_SLASH);
            if (since_us > 0) {
                pp_printf(o, "&amp;since=%llds",
                          (long long)(since_us / 1000000));
            }
            pp_puts(o, "&amp;");
        }
        pp_printf(o, "format=%s\">%s</a>", fmts[i][0], fmts[i][1]);
    }
}

/* The timeline of pyprof.segment() blocks, like a transaction trace. */
static void segments_table(pp_sink_t *o, const pp_record_t *rec)
{
    const pp_req_t *q = &rec->req;
    double total = q->duration_us > 0 ? q->duration_us / 1e3 : 0;
    uint32_t i,
        n = q->nsegments < PP_SEGMENTS_MAX ? q->nsegments : PP_SEGMENTS_MAX;

    if (!n) {
        return;
    }
    if (total <= 0) { /* in flight: scale to the latest end seen */
        for (i = 0; i < n; i++) {
            double end =
                (rec->segments[i].start_us +
                 (rec->segments[i].dur_us > 0 ? rec->segments[i].dur_us : 0)) /
                1e3;
            if (end > total) {
                total = end;
            }
        }
    }
    pp_puts(o, "<h2>Segments <span class=muted>(exact timings from "
               "pyprof.segment / @pyprof.trace; samples inside each are "
               "counted to it)</span></h2><table class=segs><tr>"
               "<th>Segment</th><th>Detail</th><th class=num>Start</th>"
               "<th class=num>Duration</th><th class=num>Share</th>"
               "<th class=num>Samples</th><th style=\"width:30%\">Timeline"
               "</th></tr>");
    for (i = 0; i < n; i++) {
        const pp_segment_t *g = &rec->segments[i];
        double start = g->start_us / 1e3;
        double dur = g->dur_us < 0 ? -1 : g->dur_us / 1e3;
        double left = total > 0 ? 100.0 * start / total : 0;
        double width = total > 0 && dur > 0 ? 100.0 * dur / total : 0;

        if (left > 100) {
            left = 100;
        }
        if (left + width > 100) {
            width = 100 - left;
        }
        pp_printf(o, "<tr><td class=fn style=\"padding-left:%upx\">",
                  10 + 16 * (g->depth < 20 ? g->depth : 20));
        pp_puts_html(o, g->name);
        pp_puts(o, "</td><td class=\"mono detail\">");
        pp_puts_html(o, g->detail);
        pp_printf(o, "</td><td class=num>%.1f ms</td>", start);
        if (dur < 0) {
            pp_puts(o, "<td class=num>open</td><td class=num></td>");
        }
        else {
            pp_printf(o, "<td class=num>%.1f ms</td><td class=num>%.1f%%</td>",
                      dur, total > 0 ? 100.0 * dur / total : 0.0);
        }
        pp_printf(o,
                  "<td class=num>%u</td><td><div class=tl><span "
                  "style=\"left:%.2f%%;width:%.2f%%\"></span></div></td>"
                  "</tr>",
                  g->samples, left, width < 0.3 ? 0.3 : width);
    }
    pp_puts(o, "</table>");
    if (q->segments_dropped) {
        pp_printf(o,
                  "<p class=muted>%u more segments were not recorded "
                  "(at most %d a request).</p>",
                  q->segments_dropped, PP_SEGMENTS_MAX);
    }
}

static void split_part(pp_sink_t *o, const char *cls, double ms, double total,
                       const char *label)
{
    double pct = total > 0 ? 100.0 * ms / total : 0;
    if (ms <= 0 || pct < 0.05) {
        return;
    }
    pp_printf(o,
              "<span class=\"seg %s\" style=\"width:%.2f%%\" "
              "title=\"%s: %.1f ms\"></span>",
              cls, pct, label, ms);
}

/* The app's time in Python is cut by measurement where the kernel counts
 * it, not by counting samples: the CPU time is what the thread's CPU clock
 * said over the samples' intervals, and the wait for a core is the
 * kernel's count of the thread's run-queue waits (schedstat) over the
 * request.  Sample counts would not do: on a busy core a thread runs in
 * slices shorter than the interval, so a sample counted on CPU holds some
 * waiting and one counted off CPU some running.  What is left, the time
 * blocked, is cut between the GIL and sleep or I/O in the proportions of
 * the time off CPU of the samples that saw each (weights, not counts: on a
 * busy machine the sampler's wake-ups come late and its intervals differ).
 * Without the kernel's count (a request still running, a kernel without
 * CONFIG_SCHED_INFO) all of it is cut that way. */
void pp_req_time_split(const pp_req_t *q, pp_time_split_t *s)
{
    uint32_t py = q->samples_on_cpu + q->samples_off_cpu - q->samples_gil_enter;
    double off = (double)(q->off_gil_us + q->off_core_us + q->off_other_us);
    double in_app, waiting;

    s->total = q->duration_us / 1e3;
    s->before =
        q->handler_start_us > 0 ? (q->handler_start_us - q->start_us) / 1e3 : 0;
    s->app = q->handler_start_us > 0 && q->app_end_us >= q->handler_start_us
                 ? (q->app_end_us - q->handler_start_us) / 1e3
                 : s->total - s->before;
    s->after = s->total - s->before - s->app;
    if (s->after < 0) {
        s->after = 0;
    }
    s->outside = q->outside_us / 1e3;
    s->enter = q->gil_enter_us / 1e3;
    in_app =
        s->app - s->outside - s->enter > 0 ? s->app - s->outside - s->enter : 0;
    s->on = py ? q->sampled_cpu_us / 1e3 : 0;
    if (s->on > in_app) {
        s->on = in_app;
    }
    waiting = py ? in_app - s->on : 0;
    if (q->flags & PP_REQ_RUN_DELAY) {
        /* measured: the kernel's count of the thread's waits for a core;
         * the rest was blocked, on a futex (GIL) or elsewhere */
        double blocked = (double)(q->off_gil_us + q->off_other_us);
        s->core =
            q->run_delay_us / 1e3 < waiting ? q->run_delay_us / 1e3 : waiting;
        s->gil = blocked > 0
                     ? (waiting - s->core) * (double)q->off_gil_us / blocked
                     : 0;
    }
    else {
        s->gil = off > 0 ? waiting * (double)q->off_gil_us / off : 0;
        s->core = off > 0 ? waiting * (double)q->off_core_us / off : 0;
    }
    s->off = waiting - s->gil - s->core;
    if (s->off < 0) {
        s->off = 0;
    }
}

/* The file's last path segment. */
static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* "Waited 836 ms for the GIL, 97% behind GET /reports/export in
 * build_rows (views.py:88)": the largest holder, linked to its request,
 * the share of all its entries, and the frame of its largest. */
static void gil_sentence(pp_sink_t *o, const pp_request_page_t *pg,
                         const pp_render_opts_t *opt)
{
    const pp_req_t *q = &pg->rec->req;
    const pp_gil_view_t *g = &pg->gil;
    int64_t total = q->gil_wait_us + q->gil_enter_us;
    const pp_gil_holder_t *h;
    uint64_t behind = 0;
    uint32_t i;

    if (total <= 0 || g->n == 0) {
        return;
    }
    h = &g->e[0].h;
    /* the share of the holder (its request, or its thread), whatever line
     * it was on: the entries are per frame */
    for (i = 0; i < g->n; i++) {
        const pp_gil_holder_t *x = &g->e[i].h;
        if (x->location != PP_GIL_OTHER && h->location != PP_GIL_OTHER &&
            x->serial == h->serial && (h->serial || x->tid == h->tid)) {
            behind += x->wait_us;
        }
    }
    if (!behind) {
        behind = h->wait_us;
    }
    pp_printf(o, "<p class=gilblame>Waited %.0f ms for the GIL, %.0f%% behind ",
              total / 1e3, 100.0 * (double)behind / (double)total);
    if (h->location == PP_GIL_OTHER) {
        pp_puts(o, "several other holders");
    }
    else if (h->serial && h->id[0]) {
        char text[PP_METHOD_MAX + PP_GIL_URI_MAX + 2];

        snprintf(text, sizeof(text), "%s %s", h->method, h->uri);
        pp_req_link(o, opt, h->id, text);
    }
    else if (h->tid) {
        pp_printf(o, "a thread serving no request (tid %d)", (int)h->tid);
    }
    else {
        pp_puts(o, "a holder that could not be identified");
    }
    if (h->location != PP_GIL_OTHER && g->e[0].f.function[0]) {
        pp_puts(o, " in <span class=mono>");
        pp_puts_html(o, g->e[0].f.function);
        pp_puts(o, "</span> (<span class=mono>");
        pp_puts_html(o, base_name(g->e[0].f.file));
        pp_printf(o, ":%u</span>)", g->e[0].f.line);
    }
    if (q->flags & PP_REQ_DAEMON) {
        pp_printf(o, ", inside mod_wsgi daemon process pid %d (group ",
                  (int)q->daemon_pid);
        pp_puts_html(o, q->process_group);
        pp_puts(o, ")");
    }
    pp_puts(o, ".</p>");
}

/* What a legend cell says after its milliseconds: nothing, the samples
 * behind them "(n)", or "(n samples)". */
enum { LEGEND_MS, LEGEND_COUNT, LEGEND_SAMPLES };

/* One cell of the time split's legend: colour key `key` (a class of the
 * split's segments), `label`, the milliseconds and what `says`. */
static void legend_cell(pp_sink_t *o, const char *key, const char *label,
                        double ms, int says, uint32_t samples)
{
    pp_printf(o, "<td><span class=\"key %s\"></span>%s %.1f ms", key, label,
              ms);
    if (says != LEGEND_MS) {
        pp_printf(o, " (%u%s)", samples,
                  says == LEGEND_SAMPLES ? " samples" : "");
    }
    pp_puts(o, "</td>");
}

/* Where the request's wall time went: Apache before the app, the app
 * (split by what the samples saw), and Apache after it. */
/* PyProfAllocations: a size as the page prints it */
static void alloc_size(pp_sink_t *o, uint64_t b)
{
    if (b >= (1ULL << 30)) {
        pp_printf(o, "%.2f GiB", (double)b / (1ULL << 30));
    }
    else if (b >= (1ULL << 20)) {
        pp_printf(o, "%.1f MiB", (double)b / (1ULL << 20));
    }
    else if (b >= 1024) {
        pp_printf(o, "%.1f KiB", (double)b / 1024);
    }
    else {
        pp_printf(o, "%llu B", (unsigned long long)b);
    }
}

#define ALLOC_CALLERS_SHOWN 3 /* frames of a stack the table names */

/* PyProfAllocations: the request's estimates and its top allocating
 * stacks (only when its process sampled allocations). */
static void alloc_section(pp_sink_t *o, const pp_record_t *rec,
                          const pp_alloc_view_t *a)
{
    const pp_req_t *q = &rec->req;
    uint32_t i, j;

    if (!(q->flags & PP_REQ_ALLOC)) {
        return;
    }
    pp_puts(o, "<h2>Allocations <span class=muted>(sampled: about one "
               "allocation every ");
    alloc_size(o, q->alloc_mean);
    pp_puts(o, " allocated; estimates)</span></h2><p class=alloc>");
    alloc_size(o, q->alloc_bytes);
    pp_printf(o, " allocated in about %llu allocations (%u samples), of which ",
              (unsigned long long)q->alloc_count, q->alloc_samples);
    alloc_size(o, q->alloc_live_bytes);
    pp_puts(o, " still live when the request ended");
    if (q->alloc_flags & PP_ALLOC_LIVE_FULL) {
        pp_puts(o, " (at least: some frees could not be tracked)");
    }
    pp_puts(o, ".</p>");
    if (!a->n) {
        return;
    }
    pp_puts(o, "<table class=allocs><tr><th>Allocating function "
               "<span class=muted>(and its callers)</span></th>"
               "<th class=num>Bytes</th><th class=num>Share</th>"
               "<th class=num>Allocations</th></tr>");
    for (i = 0; i < a->n; i++) {
        uint32_t d = a->e[i].depth;
        const pp_frame_view_t *leaf = &a->e[i].f[d - 1];

        pp_puts(o, "<tr><td class=fn>");
        pp_puts_html(o, leaf->function);
        pp_puts(o, " <span class=muted>");
        pp_puts_html(o, base_name(leaf->file));
        pp_printf(o, ":%u", leaf->line);
        for (j = 1; j < ALLOC_CALLERS_SHOWN && j < d; j++) {
            pp_puts(o, " &larr; ");
            pp_puts_html(o, a->e[i].f[d - 1 - j].function);
        }
        pp_puts(o, "</span></td><td class=num>");
        alloc_size(o, a->e[i].bytes);
        pp_printf(o,
                  "</td><td class=num>%.1f%%</td><td class=num>%u</td>"
                  "</tr>",
                  q->alloc_bytes
                      ? 100.0 * (double)a->e[i].bytes / (double)q->alloc_bytes
                      : 0.0,
                  a->e[i].count);
    }
    pp_puts(o, "</table>");
}

static void time_split(pp_sink_t *o, const pp_req_t *q)
{
    pp_time_split_t s;
    uint32_t sleeping = q->samples_off_cpu - q->samples_gil_wait -
                        q->samples_wait_core - q->samples_gil_enter;

    pp_req_time_split(q, &s);
    if (s.total <= 0) {
        return;
    }
    pp_puts(o, "<h2>Where the time went</h2><div class=split>");
    split_part(o, "before", s.before, s.total, "Apache before the app");
    split_part(o, "on", s.on, s.total, "Python on CPU");
    split_part(o, "core", s.core, s.total,
               "Python runnable, waiting for a core");
    split_part(o, "enter", s.enter, s.total, "waiting to enter Python (GIL)");
    split_part(o, "gil", s.gil, s.total, "GIL wait in Python");
    split_part(o, "off", s.off, s.total, "Python off CPU (sleep, I/O)");
    split_part(o, "outside", s.outside, s.total, "in the app, outside Python");
    split_part(o, "after", s.after, s.total, "Apache after the app");
    pp_puts(o, "</div><table class=legend><tr>");
    legend_cell(o, "before", "Apache before the app", s.before, LEGEND_MS, 0);
    legend_cell(o, "on", "Python on CPU", s.on, LEGEND_SAMPLES,
                q->samples_on_cpu);
    legend_cell(o, "core", "waiting for a core", s.core, LEGEND_COUNT,
                q->samples_wait_core);
    legend_cell(o, "enter", "waiting to enter Python", s.enter, LEGEND_COUNT,
                q->samples_gil_enter);
    legend_cell(o, "gil", "GIL wait in Python", s.gil, LEGEND_COUNT,
                q->samples_gil_wait);
    legend_cell(o, "off", "off CPU: sleep, I/O", s.off, LEGEND_COUNT, sleeping);
    legend_cell(o, "outside", "outside Python", s.outside, LEGEND_COUNT,
                q->samples_outside);
    legend_cell(o, "after", "Apache after the app", s.after, LEGEND_MS, 0);
    pp_puts(o, "</tr></table><p class=muted>On CPU is the thread's CPU "
               "clock over the sampled intervals, and waiting for a core the "
               "kernel's count of the time it was runnable but not running "
               "(the machine is busy). A sample counts as on CPU when the "
               "clock advanced for at least half of its interval; off CPU, "
               "the thread's kernel wait channel tells the rest apart: a "
               "futex wait while another thread holds the GIL and threads "
               "sleep on it is waiting for the GIL (3.15: the thread state "
               "says so), no wait at all is waiting for a core, anything "
               "else (a lock, sleep, I/O) is off CPU, and the time blocked "
               "is cut in the proportions the samples saw. A thread waiting "
               "for the GIL before its first Python frame (mod_wsgi takes it "
               "before the app) is waiting to enter Python. "
               "\"Before\" and \"after\" are Apache's own work around the "
               "handler (reading the request, sending the last bytes, "
               "logging).</p>");
}

void pp_render_request_html(pp_sink_t *o, const pp_request_page_t *pg,
                            const pp_render_opts_t *opt)
{
    const pp_record_t *rec = pg->rec;
    const pp_req_t *q = &rec->req;
    const char *lp = pg->location;
    int inflight = pg->inflight;
    char t[40];
    char title[PP_ID_MAX + 16];

    snprintf(title, sizeof(title), "Request %s", q->id);
    pp_page_begin(o, title, opt);
    pp_iso_time(q->start_us, t, sizeof(t));
    pp_puts(o, "<h2>");
    pp_puts_html(o, q->method);
    pp_puts(o, " <span class=mono>");
    pp_puts_html(o, q->uri);
    pp_puts(o, "</span></h2><dl class=kv>");
    if (inflight) {
        pp_printf(o, "<dt>State</dt><dd>in flight, %.1f ms so far</dd>",
                  pp_elapsed_ms(opt, q->start_us));
    }
    else {
        pp_printf(o, "<dt>Status</dt><dd>%d</dd>", (int)q->status);
        pp_printf(o, "<dt>Duration</dt><dd>%.1f ms</dd>", q->duration_us / 1e3);
        pp_printf(o,
                  "<dt>CPU time</dt><dd>%.1f ms (thread CPU clock, "
                  "%.0f%% of the duration)</dd>",
                  q->cpu_us / 1e3,
                  q->duration_us ? 100.0 * q->cpu_us / q->duration_us : 0.0);
    }
    pp_printf(o, "<dt>Samples</dt><dd>%u every %.1f ms", q->samples,
              q->interval_us / 1e3);
    if (!inflight && q->samples > 1 && q->duration_us > 0) {
        double sampled_ms = (q->duration_us - q->outside_us) / 1e3;
        double achieved = sampled_ms > 0 ? sampled_ms / q->samples : 0;
        if (achieved > 1.25 * q->interval_us / 1e3) {
            if (pg->sampler_mode == PP_SAMPLER_GIL) {
                pp_printf(o,
                          " &mdash; achieved one per %.1f ms. While a "
                          "thread runs Python it gives up the GIL only "
                          "every switch interval (5 ms by default), so a "
                          "sampler that takes the GIL (PyProfSampler gil) "
                          "cannot see it more often than about 200 times "
                          "a second",
                          achieved);
            }
            else {
                pp_printf(o,
                          " &mdash; achieved one per %.1f ms: the machine "
                          "was too busy to run the sampler on time, or "
                          "samples were dropped as torn (see the "
                          "overview)",
                          achieved);
            }
        }
    }
    if (q->samples_overflow) {
        pp_printf(o, " (%u in [other stacks]: more than %d distinct stacks)",
                  q->samples_overflow, PP_STACKS_MAX - 1);
    }
    pp_puts(o, "</dd><dt>Location</dt><dd class=mono>");
    if (lp[0]) {
        pp_location_link(o, opt, lp);
    }
    pp_puts(o, "</dd><dt>Virtual host</dt><dd>");
    pp_puts_html(o, q->vhost);
    pp_printf(o, "</dd><dt>Process / thread</dt><dd>pid %d, tid %d",
              (int)q->pid, (int)q->tid);
    if (q->flags & PP_REQ_DAEMON) {
        pp_printf(o,
                  "; the app ran in mod_wsgi daemon pid %d, process "
                  "group <span class=mono>",
                  (int)q->daemon_pid);
        pp_puts_html(o, q->process_group);
        pp_puts(o, "</span>, application group <span class=mono>");
        pp_puts_html(o, q->app_group[0] ? q->app_group : "(main interpreter)");
        pp_puts(o, "</span>");
    }
    pp_puts(o, "</dd>");
    pp_printf(o, "<dt>Started</dt><dd class=mono>%s</dd>", t);
    pp_puts(o, "<dt>Request id</dt><dd class=mono>");
    pp_puts_html(o, q->id);
    if (q->flags & PP_REQ_TRIGGERED) {
        pp_puts(o, " <span class=flag>triggered</span>");
    }
    if (q->flags & PP_REQ_CAPTURED) {
        pp_printf(o, " <span class=flag>capture %u</span>", q->capture);
    }
    if (q->flags & PP_REQ_FAST) {
        pp_puts(o, " <span class=flag title=\"kept for a short while "
                   "because its X-PyProf-Id was sent\">fast</span>");
    }
    pp_puts(o, "</dd>");
    if (q->trace_id[0]) {
        pp_puts(o, "<dt>W3C trace</dt><dd class=mono>trace ");
        pp_puts_html(o, q->trace_id);
        pp_puts(o, ", parent span ");
        pp_puts_html(o, q->parent_id);
        pp_puts(o, "</dd>");
    }
    if (q->unique_id[0]) {
        pp_puts(o, "<dt>UNIQUE_ID</dt><dd class=mono>");
        pp_puts_html(o, q->unique_id);
        pp_puts(o, "</dd>");
    }
    pp_puts(o, "<dt>Export</dt><dd>");
    export_links(o, NULL, 0);
    pp_puts(o, "</dd></dl>");
    gil_sentence(o, pg, opt);
    if (!inflight) {
        time_split(o, q);
    }
    segments_table(o, rec);
    alloc_section(o, rec, &pg->alloc);

    if (q->samples == 0) {
        pp_puts(o, "<p class=empty>No sample landed in Python code during "
                   "this request (it was shorter than the interval, or "
                   "spent its time outside Python).</p>");
    }
    else if (pg->failed) {
        page_failed(o, pg->failed);
    }
    else {
        tree_sections(o, &pg->tree, 1, pg->root);
    }
    pp_page_end(o);
}

static void window_links(pp_sink_t *o, const pp_render_opts_t *opt,
                         const char *path)
{
    static const struct {
        const char *arg, *label;
        int64_t us;
    } w[] = {{"", "since start", 0},
             {"5m", "last 5 min", 300000000LL},
             {"15m", "last 15 min", 900000000LL},
             {"1h", "last hour", 3600000000LL}};
    size_t i;

    pp_puts(o, "<p class=tabs>");
    for (i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
        int on = !opt->diff && opt->since_us == w[i].us;
        pp_printf(o, "<a class=\"tab%s\" href=\"?path=", on ? " on" : "");
        pp_put_url_segment(o, path, strlen(path));
        if (w[i].arg[0]) {
            pp_printf(o, "&amp;since=%s", w[i].arg);
        }
        pp_printf(o, "\">%s</a>", w[i].label);
    }
    pp_printf(o, "<a class=\"tab%s\" href=\"?path=", opt->diff ? " on" : "");
    pp_put_url_segment(o, path, strlen(path));
    pp_puts(o, "&amp;view=diff\">slowest 5% vs the rest</a></p>");
}

/* The location's GIL contention, both ways: behind whom its requests
 * waited, and whom its requests made wait (all time, every process).  A
 * location that only made its own requests wait (one location serving
 * everything, as often) has one table, not the same one twice.  At the
 * end of the page: the profile comes first. */
#define GIL_ROWS_SHOWN 10
static void gil_location_section(pp_sink_t *o, const pp_location_page_t *pg,
                                 const pp_render_opts_t *opt)
{
    const pp_ov_location_t *l = &pg->l;
    int only_self = 1;
    size_t i;

    if (!l->gil_wait_us && !l->gil_blocking_us) {
        return;
    }
    for (i = 0; i < pg->gil.n && only_self; i++) {
        const pp_gil_row_t *r = &pg->gil.rows[i];

        if ((r->holder == l->row) != (r->waiter == l->row)) {
            only_self = 0;
        }
    }
    pp_printf(o,
              "<h2>GIL contention</h2><p>Requests here waited %.1f ms for "
              "the GIL; requests here held it while others waited %.1f "
              "ms.</p>",
              l->gil_wait_us / 1e3, l->gil_blocking_us / 1e3);
    if (only_self) {
        pp_puts(o, "<h3>Its own requests, behind each other</h3>");
        pp_gil_table(o, &pg->gil, opt, l->row, l->row, GIL_ROWS_SHOWN);
        return;
    }
    pp_puts(o, "<h3>Waited behind</h3>");
    pp_gil_table(o, &pg->gil, opt, -1, l->row, GIL_ROWS_SHOWN);
    pp_puts(o, "<h3>Made wait</h3>");
    pp_gil_table(o, &pg->gil, opt, l->row, -1, GIL_ROWS_SHOWN);
}

void pp_render_location_html(pp_sink_t *o, pp_location_page_t *pg,
                             const pp_render_opts_t *opt)
{
    const pp_ov_location_t *l = &pg->l;
    const pp_loc_snap_t *s = &l->s;
    const char *path = l->path, *root = l->root;

    pp_page_begin(o, "Location profile", opt);
    pp_puts(o, "<h2>All sampled requests under <span class=mono>");
    pp_puts_html(o, path);
    pp_printf(o,
              "</span></h2><dl class=kv><dt>Requests</dt><dd>%llu, "
              "%llu samples every %.1f ms</dd>",
              (unsigned long long)s->requests, (unsigned long long)s->samples,
              l->interval_us / 1e3);
    pp_puts(o, "<dt>Response time</dt><dd>");
    {
        char b[4][32];
        pp_human_ms(pp_hist_quantile_us(s->hist, 0.5, (int64_t)s->max_us) / 1e3,
                    b[0], sizeof(b[0]));
        pp_human_ms(pp_hist_quantile_us(s->hist, 0.95, (int64_t)s->max_us) /
                        1e3,
                    b[1], sizeof(b[1]));
        pp_human_ms(pp_hist_quantile_us(s->hist, 0.99, (int64_t)s->max_us) /
                        1e3,
                    b[2], sizeof(b[2]));
        pp_human_ms(s->max_us / 1e3, b[3], sizeof(b[3]));
        pp_printf(o,
                  "p50 %s &middot; p95 %s &middot; p99 %s &middot; max "
                  "%s</dd>",
                  b[0], b[1], b[2], b[3]);
    }
    if (root[0]) {
        pp_puts(o, "<dt>Application root</dt><dd class=mono>");
        pp_puts_html(o, root);
        pp_puts(o, "</dd>");
    }
    pp_puts(o, "<dt>Export</dt><dd>");
    export_links(o, path, opt->since_us);
    pp_puts(o, " &middot; pull for a fleet: <span class=mono>");
    pp_puts_html(o, opt->base);
    pp_puts(o, "/pprof?path=");
    pp_puts_html(o, path);
    pp_puts(o, "&amp;seconds=30</span></dd></dl>");
    window_links(o, opt, path);

    if (pg->diff) {
        /* one tree per side, each read by every view that needs it */
        pp_puts(o, "<h2>What grows in the slowest requests</h2>");
        if (pg->failed) {
            page_failed(o, PP_PAGE_NO_TREE);
        }
        else {
            pp_view_diff(o, &pg->tree, &pg->rest_tree, root);
            /* not held while the slow side's views are drawn (its
             * profile stays, with the page's, until the page is freed) */
            pp_tree_free(&pg->rest_tree);
            if (pg->samples) {
                pp_puts(o, "<h3>The slowest requests only</h3>");
                tree_sections(o, &pg->tree, 1, root);
            }
        }
    }
    else if (pg->failed == PP_PAGE_NO_STACKS) {
        pp_puts(o, "<p class=empty>Out of memory reading the samples.</p>");
    }
    else if (!pg->samples) {
        pp_puts(o, "<p class=empty>No samples in this window.</p>");
    }
    else {
        pp_printf(o,
                  "<p class=muted>%llu samples, %.1f s of request "
                  "time, %.0f%% of it on CPU.</p>",
                  (unsigned long long)pg->samples, pg->weight_us / 1e6,
                  pg->weight_us
                      ? 100.0 * (double)pg->cpu_us / (double)pg->weight_us
                      : 0.0);
        if (pg->failed) {
            page_failed(o, pg->failed);
        }
        else {
            tree_sections(o, &pg->tree, 1, root);
        }
    }
    gil_location_section(o, pg, opt);
    pp_page_end(o);
}
