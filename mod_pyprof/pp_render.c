/* pp_render.c: the pages and formats of /server-profile (see pp_render.h).
 *
 * Reads the store through snapshot copies only; never writes to it.  Every
 * client or Python string goes through pp_put_html / pp_put_json_str /
 * pp_put_folded.  Call trees are rebuilt from node ids with bounded walks
 * (a corrupt parent chain ends at PP_DEPTH_LIMIT, never loops).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pp_export.h"
#include "pp_hist.h"
#include "pp_profile.h"
#include "pp_render.h"
#include "pp_views.h"

#define HTML_SLOW_ROWS 100 /* slow requests listed on the HTML overview */

void pp_render_opts_init(pp_render_opts_t *opt)
{
    memset(opt, 0, sizeof(*opt));
    opt->base = "";
    opt->filter_location = -1;
    opt->min_us = -1;
    opt->max_us = -1;
}

static void html(pp_sink_t *o, const char *s)
{
    pp_put_html(o, s, strlen(s));
}

static void json_str(pp_sink_t *o, const char *s)
{
    pp_put_json_str(o, s, strlen(s));
}

/* ---- helpers ---- */

static void iso_time(int64_t us, char *buf, size_t cap)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    char b[32];

    gmtime_r(&t, &tm);
    strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, cap, "%s.%03dZ", b, (int)((us / 1000) % 1000));
}

static void human_ms(double ms, char *buf, size_t cap)
{
    if (ms >= 10000) {
        snprintf(buf, cap, "%.1f s", ms / 1000);
    }
    else if (ms >= 1000) {
        snprintf(buf, cap, "%.2f s", ms / 1000);
    }
    else if (ms >= 10) {
        snprintf(buf, cap, "%.0f ms", ms);
    }
    else {
        snprintf(buf, cap, "%.1f ms", ms);
    }
}

static void put_ms_cell(pp_sink_t *o, double ms)
{
    char b[32];
    human_ms(ms, b, sizeof(b));
    pp_printf(o, "<td class=num>%s</td>", b);
}

/* How long an in-flight request has run.  The page's clock is read once,
 * before the slots: a request that arrived while they were read would
 * come out negative. */
static double elapsed_ms(const pp_render_opts_t *opt, int64_t start_us)
{
    return opt->now_us > start_us ? (opt->now_us - start_us) / 1e3 : 0.0;
}

static int location_current(const pp_store_t *st, const pp_location_t *loc)
{
    return atomic_load(&loc->used) && loc->config_gen == atomic_load(&st->generation);
}

static const char *location_path(const pp_store_t *st, int idx, char *buf,
                                 size_t cap)
{
    const pp_location_t *loc =
        pp_store_location((pp_store_t *)st, idx);
    buf[0] = '\0';
    if (!loc || !atomic_load(&loc->used)) {
        return buf;
    }
    snprintf(buf, cap, "%.*s", PP_PREFIX_MAX - 1, loc->path);
    return buf;
}

typedef struct loc_snap {
    uint64_t requests, samples, kept, sum_us, max_us;
    uint64_t hist[PP_HIST_BUCKETS];
} loc_snap_t;

static void snap_location(const pp_location_t *loc, loc_snap_t *s)
{
    int b;
    /* requests is bumped last by writers, so reading it first gives a
     * count never above the sum of the buckets read after it; the JSON
     * reports the buckets' sum as "requests" so the two always agree */
    s->requests = atomic_load(&loc->requests);
    s->samples = atomic_load(&loc->samples);
    s->kept = atomic_load(&loc->kept);
    s->sum_us = atomic_load(&loc->sum_us);
    s->max_us = atomic_load(&loc->max_us);
    s->requests = 0;
    for (b = 0; b < PP_HIST_BUCKETS; b++) {
        s->hist[b] = atomic_load(&loc->hist[b]);
        s->requests += s->hist[b];
    }
}

/* kept traces, request headers only */
typedef struct req_list {
    pp_req_t *v;
    size_t n;
} req_list_t;

static int cmp_slowest(const void *a, const void *b)
{
    const pp_req_t *x = a, *y = b;
    if (x->duration_us != y->duration_us) {
        return x->duration_us < y->duration_us ? 1 : -1;
    }
    return x->serial < y->serial ? 1 : (x->serial > y->serial ? -1 : 0);
}

static int cmp_newest(const void *a, const void *b)
{
    const pp_req_t *x = a, *y = b;
    if (x->start_us != y->start_us) {
        return x->start_us < y->start_us ? 1 : -1;
    }
    return x->serial < y->serial ? 1 : (x->serial > y->serial ? -1 : 0);
}

static int cmp_uri(const void *a, const void *b)
{
    const pp_req_t *x = a, *y = b;
    int c = strcmp(x->uri, y->uri);
    return c ? c : cmp_slowest(a, b);
}

static int status_matches(int status, int filter)
{
    if (filter == 0) {
        return 1;
    }
    if (filter < 10) {
        return status / 100 == filter;
    }
    return status == filter;
}

/* Kept traces passing the overview's filters, in its sort order. */
static void collect_traces(const pp_store_t *st, req_list_t *l,
                           const pp_render_opts_t *opt)
{
    uint32_t i;

    l->n = 0;
    l->v = malloc(sizeof(pp_req_t) * (pp_store_listed_traces(st) + 1));
    if (!l->v) {
        return;
    }
    for (i = 0; i < pp_store_listed_traces(st); i++) {
        pp_req_t *q = &l->v[l->n];
        if (!pp_store_read_req(pp_store_trace_at(st, i), q)) {
            continue;
        }
        if ((opt->process_group &&
             strncmp(q->process_group, opt->process_group, PP_GROUP_MAX) != 0) ||
            (opt->app_group &&
             strncmp(q->app_group, opt->app_group, PP_APP_GROUP_MAX) != 0) ||
            (opt->filter_location >= 0 && q->location != opt->filter_location) ||
            !status_matches(q->status, opt->filter_status) ||
            (opt->min_us >= 0 && q->duration_us < opt->min_us) ||
            (opt->max_us >= 0 && q->duration_us >= opt->max_us)) {
            continue;
        }
        l->n++;
    }
    qsort(l->v, l->n, sizeof(pp_req_t),
          opt->sort == PP_SORT_TIME
              ? cmp_newest
              : (opt->sort == PP_SORT_URI ? cmp_uri : cmp_slowest));
}

static int cmp_oldest(const void *a, const void *b)
{
    const pp_req_t *x = a, *y = b;
    return x->start_us > y->start_us ? 1 : (x->start_us < y->start_us ? -1 : 0);
}

/* Slot k's request, if one is running: a request being finished already
 * has its final status in the slot while its trace is copied out, and is
 * not listed as in flight any more. */
static int read_inflight(const pp_store_t *st, uint32_t k, pp_req_t *q)
{
    const pp_record_t *r = pp_store_slot_rec(st, k);

    return r && pp_store_read_req(r, q) && q->status == 0;
}

static void collect_inflight(const pp_store_t *st, req_list_t *l)
{
    uint32_t i;

    l->n = 0;
    l->v = malloc(sizeof(pp_req_t) * (st->nslots ? st->nslots : 1));
    if (!l->v) {
        return;
    }
    for (i = 0; i < st->nslots; i++) {
        if (read_inflight(st, i, &l->v[l->n])) {
            l->n++;
        }
    }
    qsort(l->v, l->n, sizeof(pp_req_t), cmp_oldest);
}

/* Per-sample cost quantile from the log2 histogram (upper edge, ns). */
static double cost_quantile_us(const pp_store_t *st, double q)
{
    uint64_t total = 0, seen = 0;
    int b;

    for (b = 0; b < PP_COST_BUCKETS; b++) {
        total += atomic_load(&st->c.sample_cost[b]);
    }
    if (!total) {
        return 0;
    }
    for (b = 0; b < PP_COST_BUCKETS; b++) {
        seen += atomic_load(&st->c.sample_cost[b]);
        if ((double)seen >= q * (double)total) {
            /* bucket b holds [2^b, 2^(b+1)) ns: report its geometric mid */
            return (double)(1ULL << b) * 1.41421356 / 1000.0;
        }
    }
    return 0;
}

/* ---- JSON ---- */

static void json_req_fields(pp_sink_t *o, const pp_store_t *st,
                            const pp_req_t *q)
{
    char t[40], lp[PP_PREFIX_MAX];

    iso_time(q->start_us, t, sizeof(t));
    pp_puts(o, "\"id\":");
    json_str(o, q->id);
    pp_puts(o, ",\"method\":");
    json_str(o, q->method);
    pp_puts(o, ",\"uri\":");
    json_str(o, q->uri);
    pp_puts(o, ",\"vhost\":");
    json_str(o, q->vhost);
    pp_printf(o,
              ",\"status\":%d,\"duration_ms\":%.3f,\"cpu_ms\":%.3f,"
              "\"samples\":%u,\"pid\":%d,\"tid\":%d,\"interval_ms\":%.3f,"
              "\"location\":",
              (int)q->status, (double)q->duration_us / 1000.0,
              (double)q->cpu_us / 1000.0, q->samples, (int)q->pid,
              (int)q->tid, (double)q->interval_us / 1000.0);
    json_str(o, location_path(st, q->location, lp, sizeof(lp)));
    pp_printf(o, ",\"started_at\":\"%s\",\"truncated\":%s", t,
              (q->flags & PP_REQ_TRUNCATED) ? "true" : "false");
    pp_printf(o,
              ",\"triggered\":%s,\"captured\":%s,\"samples_on_cpu\":%u,"
              "\"samples_off_cpu\":%u,\"samples_gil_wait\":%u,"
              "\"samples_outside_python\":%u,\"outside_python_ms\":%.3f",
              (q->flags & PP_REQ_TRIGGERED) ? "true" : "false",
              (q->flags & PP_REQ_CAPTURED) ? "true" : "false",
              q->samples_on_cpu, q->samples_off_cpu, q->samples_gil_wait,
              q->samples_outside, q->outside_us / 1e3);
    if (q->flags & PP_REQ_CAPTURED) {
        pp_printf(o, ",\"capture\":%u", q->capture);
    }
    if (q->samples > 0 && q->duration_us > q->outside_us) {
        pp_printf(o, ",\"achieved_interval_ms\":%.3f",
                  (q->duration_us - q->outside_us) / 1e3 / q->samples);
    }
    if (q->handler_start_us > 0) {
        pp_printf(o, ",\"before_app_ms\":%.3f",
                  (q->handler_start_us - q->start_us) / 1e3);
    }
    if (q->handler_start_us > 0 && q->app_end_us >= q->handler_start_us) {
        pp_printf(o, ",\"app_ms\":%.3f",
                  (q->app_end_us - q->handler_start_us) / 1e3);
    }
    if (q->app_end_us > 0 && q->duration_us > 0) {
        int64_t after = q->start_us + q->duration_us - q->app_end_us;
        pp_printf(o, ",\"after_app_ms\":%.3f", (after > 0 ? after : 0) / 1e3);
    }
    pp_puts(o, ",\"trace_id\":");
    if (q->trace_id[0]) {
        json_str(o, q->trace_id);
        pp_puts(o, ",\"parent_id\":");
        json_str(o, q->parent_id);
    }
    else {
        pp_puts(o, "null,\"parent_id\":null");
    }
    pp_puts(o, ",\"unique_id\":");
    if (q->unique_id[0]) {
        json_str(o, q->unique_id);
    }
    else {
        pp_puts(o, "null");
    }
    if (q->flags & PP_REQ_DAEMON) {
        pp_printf(o, ",\"daemon_pid\":%d,\"process_group\":",
                  (int)q->daemon_pid);
        json_str(o, q->process_group);
        pp_puts(o, ",\"application_group\":");
        json_str(o, q->app_group);
    }
    else {
        pp_puts(o, ",\"daemon_pid\":null,\"process_group\":null,"
                   "\"application_group\":null");
    }
}

static void json_segments(pp_sink_t *o, const pp_record_t *rec)
{
    uint32_t i, n = rec->req.nsegments;

    pp_puts(o, "\"segments\":[");
    for (i = 0; i < n && i < PP_SEGMENTS_MAX; i++) {
        const pp_segment_t *g = &rec->segments[i];
        pp_puts(o, i ? ",{\"name\":" : "{\"name\":");
        json_str(o, g->name);
        pp_puts(o, ",\"detail\":");
        json_str(o, g->detail);
        pp_printf(o,
                  ",\"start_ms\":%.3f,\"duration_ms\":%s%.3f,\"depth\":%u,"
                  "\"parent\":%u,\"samples\":%u,\"weight_ms\":%.3f}",
                  g->start_us / 1e3, "", g->dur_us < 0 ? -1.0 : g->dur_us / 1e3,
                  g->depth, g->parent, g->samples, g->weight_us / 1e3);
    }
    pp_printf(o, "],\"segments_dropped\":%u", rec->req.segments_dropped);
}

void pp_render_overview_json(pp_sink_t *o, const pp_store_t *st,
                             const pp_render_opts_t *opt)
{
    req_list_t traces, live;
    int i, first = 1;
    size_t k;
    double uptime_s = (double)(opt->now_us - st->created_us) / 1e6;

    pp_puts(o, "{\"locations\":[");
    for (i = 0; i < PP_MAX_LOCATIONS; i++) {
        const pp_location_t *loc = pp_store_location((pp_store_t *)st, i);
        loc_snap_t s;
        int b, firstb = 1;
        double age;

        if (!location_current(st, loc)) {
            continue;
        }
        snap_location(loc, &s);
        age = (double)(opt->now_us - loc->created_us) / 1e6;
        pp_puts(o, first ? "{" : ",{");
        first = 0;
        pp_puts(o, "\"path\":");
        pp_put_json_str(o, loc->path, strnlen(loc->path, PP_PREFIX_MAX));
        pp_printf(o,
                  ",\"interval_ms\":%.3f,\"requests\":%llu,\"samples\":%llu,"
                  "\"kept\":%llu,\"rate_per_s\":%.3f,\"p50_ms\":%.3f,"
                  "\"p95_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
                  "\"mean_ms\":%.3f,\"nominal_samples\":%.1f,"
                  "\"histogram\":[",
                  loc->interval_us / 1000.0, (unsigned long long)s.requests,
                  (unsigned long long)s.samples, (unsigned long long)s.kept,
                  age > 0 ? (double)s.requests / age : 0.0,
                  pp_hist_quantile_us(s.hist, 0.50, (int64_t)s.max_us) / 1e3,
                  pp_hist_quantile_us(s.hist, 0.95, (int64_t)s.max_us) / 1e3,
                  pp_hist_quantile_us(s.hist, 0.99, (int64_t)s.max_us) / 1e3,
                  s.max_us / 1e3,
                  s.requests ? (double)s.sum_us / (double)s.requests / 1e3
                             : 0.0,
                  loc->interval_us ? (double)s.sum_us / loc->interval_us : 0.0);
        for (b = 0; b < PP_HIST_BUCKETS; b++) {
            int64_t hi = pp_hist_hi_us(b);
            if (!s.hist[b]) {
                continue; /* sparse: empty buckets are implied */
            }
            pp_printf(o, "%s{\"lo_ms\":%.3f,\"hi_ms\":", firstb ? "" : ",",
                      pp_hist_lo_us(b) / 1e3);
            if (hi == INT64_MAX) {
                pp_puts(o, "null");
            }
            else {
                pp_printf(o, "%.3f", hi / 1e3);
            }
            pp_printf(o, ",\"count\":%llu}", (unsigned long long)s.hist[b]);
            firstb = 0;
        }
        pp_puts(o, "]}");
    }
    pp_puts(o, "],\"requests\":[");
    collect_traces(st, &traces, opt);
    for (k = 0; k < traces.n; k++) {
        pp_puts(o, k ? ",{" : "{");
        json_req_fields(o, st, &traces.v[k]);
        pp_puts(o, "}");
    }
    free(traces.v);
    pp_puts(o, "],\"inflight\":[");
    collect_inflight(st, &live);
    for (k = 0; k < live.n; k++) {
        pp_puts(o, k ? ",{" : "{");
        json_req_fields(o, st, &live.v[k]);
        pp_printf(o, ",\"elapsed_ms\":%.3f}",
                  elapsed_ms(opt, live.v[k].start_us));
    }
    free(live.v);
    pp_printf(
        o,
        "],\"sampler\":{\"samples\":%llu,\"ticks\":%llu,\"cpu_s\":%.6f,"
        "\"samples_per_s\":%.3f,\"sample_cost_p50_us\":%.2f,"
        "\"sample_cost_p99_us\":%.2f,\"gil_wait_s\":%.6f,\"walk_s\":%.6f,"
        "\"threads_missing\":%llu,\"mode\":\"%s\",\"torn\":%llu,"
        "\"samplers_nogil\":%llu,\"samplers_gil\":%llu},",
        (unsigned long long)atomic_load(&st->c.samples),
        (unsigned long long)atomic_load(&st->c.ticks),
        atomic_load(&st->c.sampler_cpu_ns) / 1e9,
        uptime_s > 0 ? atomic_load(&st->c.samples) / uptime_s : 0.0,
        cost_quantile_us(st, 0.5), cost_quantile_us(st, 0.99),
        atomic_load(&st->c.gil_wait_ns) / 1e9,
        atomic_load(&st->c.walk_ns) / 1e9,
        (unsigned long long)atomic_load(&st->c.threads_missing),
        st->sampler_mode == PP_SAMPLER_GIL ? "gil" : "nogil",
        (unsigned long long)atomic_load(&st->c.torn),
        (unsigned long long)atomic_load(&st->c.nogil_processes),
        (unsigned long long)atomic_load(&st->c.gil_processes));
    pp_printf(
        o,
        "\"store\":{\"memory\":%llu,\"arena_used\":%llu,\"arena_size\":%llu,"
        "\"slots\":%u,\"keep\":%u,\"frames_capacity\":%u,"
        "\"nodes_capacity\":%u,\"traces_kept\":%llu,\"traces_evicted\":%llu,"
        "\"traces_dropped\":%llu,\"slots_full\":%llu,\"slots_lost\":%llu,"
        "\"slots_reaped\":%llu,\"writes_dropped\":%llu,"
        "\"frames_full\":%llu,\"nodes_full\":%llu,\"aggregate_full\":%llu,"
        "\"stacks_overflow\":%llu,\"renewals\":%llu,"
        "\"locations_reclaimed\":%llu,\"renewed_us\":%llu,"
        "\"uptime_s\":%.3f}}\n",
        (unsigned long long)st->total_size,
        (unsigned long long)pp_store_arena_used(st),
        (unsigned long long)st->arena_size, st->nslots, st->keep,
        st->nframes, st->nnodes,
        (unsigned long long)atomic_load(&st->c.traces_kept),
        (unsigned long long)atomic_load(&st->c.traces_evicted),
        (unsigned long long)atomic_load(&st->c.traces_torn),
        (unsigned long long)atomic_load(&st->c.slots_full),
        (unsigned long long)atomic_load(&st->c.slots_lost),
        (unsigned long long)atomic_load(&st->c.slots_reaped),
        (unsigned long long)atomic_load(&st->c.writes_dropped),
        (unsigned long long)atomic_load(&st->c.frames_full),
        (unsigned long long)atomic_load(&st->c.nodes_full),
        (unsigned long long)atomic_load(&st->c.agg_full),
        (unsigned long long)atomic_load(&st->c.stacks_overflow),
        (unsigned long long)atomic_load(&st->c.renewals),
        (unsigned long long)atomic_load(&st->c.locations_reclaimed),
        (unsigned long long)atomic_load(&st->c.renewed_us), uptime_s);
}

/* ---- stacks of one record or location ---- */

static void json_stacks(pp_sink_t *o, const pp_store_t *st,
                        const pp_profile_t *p)
{
    uint32_t frames[PP_DEPTH_LIMIT + 2];
    size_t i;

    pp_puts(o, "\"stacks\":[");
    for (i = 0; i < p->n; i++) {
        uint32_t d = pp_profile_frames(st, p->v[i].node, frames,
                                       PP_DEPTH_LIMIT + 2), j;
        pp_puts(o, i ? ",{\"frames\":[" : "{\"frames\":[");
        for (j = 0; j < d; j++) {
            pp_frame_view_t fv;
            pp_profile_frame(st, frames[j], &fv);
            pp_puts(o, j ? ",{\"function\":" : "{\"function\":");
            json_str(o, fv.function);
            pp_puts(o, ",\"file\":");
            json_str(o, fv.file);
            pp_printf(o, ",\"line\":%u}", fv.line);
        }
        pp_printf(o, "],\"count\":%llu,\"weight_ms\":%.3f,\"cpu_ms\":%.3f}",
                  (unsigned long long)p->v[i].count, p->v[i].weight_us / 1e3,
                  p->v[i].cpu_us / 1e3);
    }
    pp_puts(o, "]");
}

void pp_render_request_json(pp_sink_t *o, const pp_store_t *st,
                            const pp_record_t *rec, int inflight,
                            const pp_render_opts_t *opt)
{
    pp_profile_t p;

    pp_profile_init(&p);
    pp_profile_add_record(&p, rec);
    pp_profile_sort(&p);
    pp_puts(o, "{");
    json_req_fields(o, st, &rec->req);
    pp_printf(o, ",\"inflight\":%s", inflight ? "true" : "false");
    if (inflight) {
        pp_printf(o, ",\"elapsed_ms\":%.3f",
                  elapsed_ms(opt, rec->req.start_us));
    }
    pp_printf(o, ",\"samples_other\":%u,", rec->req.samples_overflow);
    json_segments(o, rec);
    pp_puts(o, ",");
    json_stacks(o, st, &p);
    pp_puts(o, "}\n");
    pp_profile_free(&p);
}

void pp_render_request_folded(pp_sink_t *o, const pp_store_t *st,
                              const pp_record_t *rec)
{
    pp_profile_t p;

    pp_profile_init(&p);
    pp_profile_add_record(&p, rec);
    pp_profile_sort(&p);
    pp_export_folded(o, st, &p);
    pp_profile_free(&p);
}

int pp_render_find_location(const pp_store_t *st, const char *path)
{
    int i;

    for (i = 0; i < PP_MAX_LOCATIONS; i++) {
        const pp_location_t *loc = pp_store_location((pp_store_t *)st, i);
        if (location_current(st, loc) &&
            strncmp(loc->path, path, PP_PREFIX_MAX) == 0) {
            return i;
        }
    }
    return -1;
}

int pp_render_location_profile(pp_profile_t *p, const pp_store_t *st,
                               int location, int64_t now_us,
                               int64_t since_us, int side)
{
    uint32_t n;
    const pp_agg_entry_t *tab;

    if (side == PP_SIDE_SLOW || side == PP_SIDE_REST) {
        pp_profile_t slow;
        size_t i;

        pp_profile_init(&slow);
        tab = pp_store_agg_slow(st, &n);
        if (pp_profile_add_table(&slow, tab, n, location)) {
            pp_profile_free(&slow);
            return -1;
        }
        if (side == PP_SIDE_SLOW) {
            *p = slow;
            pp_profile_sort(p);
            return 0;
        }
        tab = pp_store_agg(st, &n);
        if (pp_profile_add_table(p, tab, n, location)) {
            pp_profile_free(&slow);
            return -1;
        }
        /* rest = all - slow, stack by stack */
        for (i = 0; i < slow.n; i++) {
            pp_profile_subtract(p, slow.v[i].node, slow.v[i].count,
                                slow.v[i].weight_us, slow.v[i].cpu_us);
        }
        pp_profile_free(&slow);
        pp_profile_sort(p);
        return 0;
    }
    if (since_us > 0) {
        if (pp_profile_add_window(p, st, location, now_us, since_us)) {
            return -1;
        }
    }
    else {
        tab = pp_store_agg(st, &n);
        if (pp_profile_add_table(p, tab, n, location)) {
            return -1;
        }
    }
    pp_profile_sort(p);
    return 0;
}

size_t pp_render_location_folded(pp_sink_t *o, const pp_store_t *st,
                                 int location)
{
    pp_profile_t p;
    size_t n;

    pp_profile_init(&p);
    pp_render_location_profile(&p, st, location, 0, 0, PP_SIDE_ALL);
    pp_export_folded(o, st, &p);
    n = p.n;
    pp_profile_free(&p);
    return n;
}

void pp_render_location_json(pp_sink_t *o, const pp_store_t *st,
                             int location, const pp_profile_t *p,
                             const pp_render_opts_t *opt)
{
    const pp_location_t *loc = pp_store_location((pp_store_t *)st, location);
    loc_snap_t s;
    char root[PP_PREFIX_MAX];

    snap_location(loc, &s);
    pp_puts(o, "{\"path\":");
    pp_put_json_str(o, loc->path, strnlen(loc->path, PP_PREFIX_MAX));
    pp_puts(o, ",\"app_root\":");
    json_str(o, pp_store_location_root(st, location, root, sizeof(root)));
    pp_printf(o,
              ",\"interval_ms\":%.3f,\"requests\":%llu,\"window_s\":%lld,"
              "\"view\":\"%s\",\"samples\":%llu,\"weight_ms\":%.3f,"
              "\"cpu_ms\":%.3f,",
              loc->interval_us / 1000.0, (unsigned long long)s.requests,
              (long long)(opt->since_us / 1000000),
              opt->side == PP_SIDE_SLOW
                  ? "slow"
                  : (opt->side == PP_SIDE_REST ? "rest" : "all"),
              (unsigned long long)p->samples, p->weight_us / 1e3,
              p->cpu_us / 1e3);
    json_stacks(o, st, p);
    pp_puts(o, "}\n");
}

/* ---- HTML ---- */

static const char CSS[] =
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;"
    "margin:0;color:#1d232b;background:#f6f7f9}"
    "header{background:#20324a;color:#fff;padding:10px 24px;display:flex;"
    "gap:24px;align-items:baseline}"
    "header h1{font-size:18px;margin:0;font-weight:600}"
    "header a{color:#cfe0ff;text-decoration:none}"
    "header .meta{color:#aab8cc;font-size:12px;margin-left:auto}"
    "main{padding:8px 24px 40px;max-width:1400px}"
    "h2{font-size:16px;margin:22px 0 8px;color:#20324a}"
    "table{border-collapse:collapse;background:#fff;width:100%;"
    "box-shadow:0 1px 2px rgba(0,0,0,.08)}"
    "th,td{padding:5px 10px;border-bottom:1px solid #e6e9ee;"
    "text-align:left;vertical-align:middle}"
    "th{background:#eef1f5;font-weight:600;font-size:12px;color:#46556a;"
    "white-space:nowrap}"
    "td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;"
    "white-space:nowrap}"
    "td.uri{font-family:ui-monospace,monospace;font-size:12.5px;"
    "word-break:break-all}"
    "a{color:#1f5fbf}"
    ".muted{color:#6b778a}.empty{color:#6b778a;padding:10px;background:#fff}"
    ".notice{background:#fff3bf;color:#7a5b00;padding:8px 10px}"
    ".s5{color:#b3261e;font-weight:600}.s4{color:#9a5b00}"
    "code,.mono{font-family:ui-monospace,monospace;font-size:12.5px}"
    ".kv{display:grid;grid-template-columns:max-content 1fr;gap:3px 16px;"
    "background:#fff;padding:12px 16px;box-shadow:0 1px 2px "
    "rgba(0,0,0,.08)}"
    ".kv dt{color:#6b778a}.kv dd{margin:0}"
    ".tree{background:#fff;padding:10px 14px;overflow-x:auto;"
    "box-shadow:0 1px 2px rgba(0,0,0,.08);font-size:13px}"
    ".tree details>details,.tree details>.leaf{margin-left:16px}"
    ".tree summary{cursor:pointer;list-style:none;padding:1px 0;"
    "white-space:nowrap}"
    ".tree summary::-webkit-details-marker{display:none}"
    ".tree summary::before{content:'\\25B8';display:inline-block;"
    "width:14px;color:#6b778a}"
    ".tree details[open]>summary::before{content:'\\25BE'}"
    ".tree .leaf{padding:1px 0 1px 14px;white-space:nowrap}"
    ".bars{display:inline-block;width:126px;vertical-align:middle}"
    ".bar{display:inline-block;height:9px;vertical-align:middle}"
    ".bar.cpu{background:#d9480f}.bar.wait{background:#7aa2d6}"
    ".pct{display:inline-block;width:52px;text-align:right;"
    "font-variant-numeric:tabular-nums;margin-right:6px}"
    ".fn{font-weight:600}.loc{color:#6b778a;font-size:12px;"
    "font-family:ui-monospace,monospace}"
    ".cnt{color:#6b778a;font-size:12px;margin-left:8px}"
    "svg.hist{display:block}svg.hist rect.b{fill:#4a7fc1}"
    "svg.hist text{font:10px sans-serif;fill:#6b778a}"
    ".cards{display:flex;gap:12px;flex-wrap:wrap}"
    ".card{background:#fff;padding:8px 14px;box-shadow:0 1px 2px "
    "rgba(0,0,0,.08);min-width:120px}"
    ".card b{display:block;font-size:18px;font-weight:600}"
    ".card span{color:#6b778a;font-size:12px}"
    ".flamebox{background:#fff;padding:8px;box-shadow:0 1px 2px "
    "rgba(0,0,0,.08)}"
    ".flametools{display:flex;gap:8px;align-items:center;margin-bottom:6px;"
    "font-size:12px}"
    "svg.flame{display:block;cursor:pointer}"
    "svg.flame text{font:11px ui-monospace,monospace;fill:#1d232b;"
    "pointer-events:none}"
    "svg.flame g.f rect{stroke:#fff;stroke-width:.5}"
    "svg.flame g.hit rect{fill:#d63384}"
    "table.hot td.fn{font-weight:600}"
    "table.hot td.loc{color:#6b778a;font-family:ui-monospace,monospace;"
    "font-size:12px}"
    ".hbar{display:inline-block;height:9px;background:#e8734a;"
    "margin-right:6px;vertical-align:middle}"
    "td.up{color:#b3261e;font-weight:600}td.down{color:#2b7a3d}"
    ".tabs{margin:14px 0 4px}.tab{display:inline-block;padding:3px 10px;"
    "margin-right:4px;background:#e6e9ee;border-radius:3px;"
    "text-decoration:none;color:#20324a;font-size:13px}"
    ".tab.on{background:#20324a;color:#fff}"
    "h3{font-size:14px;margin:18px 0 6px;color:#46556a}"
    "th a{color:inherit}"
    ".filters{background:#fff;padding:6px 10px;margin-bottom:6px;"
    "font-size:13px;box-shadow:0 1px 2px rgba(0,0,0,.08)}"
    ".filters label{margin-right:6px;color:#46556a}"
    ".split{display:flex;height:18px;background:#e6e9ee;margin:4px 0}"
    ".seg,.key{display:inline-block;height:100%}"
    ".key{width:12px;height:12px;margin-right:5px;vertical-align:-1px}"
    ".before{background:#9aa5b4}.on{background:#d9480f}"
    ".gil{background:#f2a541}.off{background:#7aa2d6}"
    ".outside{background:#b197fc}.after{background:#c5ccd6}"
    "table.legend{box-shadow:none;background:transparent;font-size:12px}"
    "table.legend td{border:0;padding:2px 10px 2px 0}"
    ".flag{display:inline-block;background:#fff3bf;color:#7a5b00;"
    "border-radius:3px;padding:0 6px;font-size:11px;margin-left:6px}"
    ".tl{position:relative;height:10px;background:#eef1f5}"
    ".tl span{position:absolute;top:0;height:10px;background:#4a7fc1}"
    "td.detail{max-width:420px;word-break:break-all;color:#46556a}"
    ".stack{font-family:ui-monospace,monospace;font-size:12px;"
    "color:#46556a;margin:4px 0 0 0;padding:0;list-style:none}";

static void page_begin(pp_sink_t *o, const char *title,
                       const pp_render_opts_t *opt)
{
    char t[40];

    pp_puts(o, "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
               "<meta name=viewport content=\"width=device-width\">");
    if (opt->refresh > 0) {
        pp_printf(o, "<meta http-equiv=refresh content=\"%d\">",
                  opt->refresh);
    }
    pp_puts(o, "<title>");
    html(o, title);
    pp_puts(o, "</title><style>");
    pp_puts(o, CSS);
    pp_puts(o, "</style></head><body><header><h1><a href=\"");
    html(o, opt->base);
    pp_puts(o, "\">mod_pyprof</a></h1><span>");
    html(o, title);
    iso_time(opt->now_us, t, sizeof(t));
    pp_printf(o, "</span><span class=meta>%s</span></header><main>", t);
}

static void page_end(pp_sink_t *o)
{
    pp_puts(o, "</main></body></html>\n");
}

void pp_render_message_html(pp_sink_t *o, const char *title,
                            const char *msg, const pp_render_opts_t *opt)
{
    page_begin(o, title, opt);
    pp_puts(o, "<p>");
    html(o, msg);
    pp_puts(o, "</p><p><a href=\"");
    html(o, opt->base);
    pp_puts(o, "\">Back to the overview</a></p>");
    page_end(o);
}

static void duration_label(int64_t us, char *buf, size_t cap)
{
    if (us >= 1000000) {
        snprintf(buf, cap, "%llds", (long long)(us / 1000000));
    }
    else {
        snprintf(buf, cap, "%lldms", (long long)(us / 1000));
    }
}

static void hist_svg(pp_sink_t *o, const loc_snap_t *s, const char *path)
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

static void status_cell(pp_sink_t *o, int status)
{
    pp_printf(o, "<td class=\"num%s\">%d</td>",
              status >= 500 ? " s5" : (status >= 400 ? " s4" : ""), status);
}

static void req_link(pp_sink_t *o, const pp_render_opts_t *opt,
                     const char *id, const char *text)
{
    pp_puts(o, "<a href=\"");
    html(o, opt->base);
    pp_puts(o, "/request/");
    /* percent-encoded: needs no HTML escaping */
    pp_put_url_segment(o, id, strnlen(id, PP_ID_MAX));
    pp_puts(o, "\">");
    html(o, text);
    pp_puts(o, "</a>");
}

static void leaf_function(const pp_store_t *st, uint32_t node, char *buf,
                          size_t cap)
{
    uint32_t parent, frame;
    pp_frame_view_t fv;

    buf[0] = '\0';
    if (pp_store_node_get(st, node, &parent, &frame) &&
        pp_store_frame_view(st, frame, &fv)) {
        if (fv.file[0]) {
            const char *base = strrchr(fv.file, '/');
            snprintf(buf, cap, "%s (%s:%u)", fv.function,
                     base ? base + 1 : fv.file, fv.line);
        }
        else {
            snprintf(buf, cap, "%s", fv.function);
        }
    }
}

/* The query that reproduces the current filters, with another sort. */
static void filter_query(pp_sink_t *o, const pp_store_t *st,
                         const pp_render_opts_t *opt, int sort)
{
    static const char *const sorts[] = {"duration", "time", "uri"};
    char lp[PP_PREFIX_MAX];

    pp_printf(o, "?sort=%s", sorts[sort % 3]);
    if (opt->filter_location >= 0) {
        location_path(st, opt->filter_location, lp, sizeof(lp));
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
        pp_put_url_segment(o, opt->process_group,
                           strlen(opt->process_group));
    }
    if (opt->app_group) {
        pp_puts(o, "&amp;app_group=");
        pp_put_url_segment(o, opt->app_group, strlen(opt->app_group));
    }
}

static void sort_link(pp_sink_t *o, const pp_store_t *st,
                      const pp_render_opts_t *opt, int sort,
                      const char *label)
{
    pp_puts(o, "<a href=\"");
    filter_query(o, st, opt, sort);
    pp_printf(o, "#slow\">%s%s</a>", label,
              opt->sort == sort ? " \xe2\x96\xbe" : "");
}

/* A GET form: filters work without JavaScript. */
static void filter_form(pp_sink_t *o, const pp_store_t *st,
                        const pp_render_opts_t *opt)
{
    static const char *const sorts[] = {"duration", "time", "uri"};
    int i;

    pp_printf(o, "<form class=filters method=get action=\"#slow\">"
                 "<input type=hidden name=sort value=%s>"
                 "<label>Location <select name=location>"
                 "<option value=\"\">any</option>",
              sorts[opt->sort % 3]);
    for (i = 0; i < PP_MAX_LOCATIONS; i++) {
        const pp_location_t *loc = pp_store_location((pp_store_t *)st, i);
        size_t pl;
        if (!location_current(st, loc)) {
            continue;
        }
        pl = strnlen(loc->path, PP_PREFIX_MAX);
        pp_puts(o, "<option value=\"");
        pp_put_html(o, loc->path, pl);
        pp_printf(o, "\"%s>", opt->filter_location == i ? " selected" : "");
        pp_put_html(o, loc->path, pl);
        pp_puts(o, "</option>");
    }
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
        html(o, opt->process_group);
    }
    pp_puts(o, "\"></label> <label>App group <input name=app_group size=12 "
               "value=\"");
    if (opt->app_group) {
        html(o, opt->app_group);
    }
    pp_puts(o, "\"></label> <button>Filter</button> <a href=\"?#slow\">"
               "clear</a></form>");
}

/* A kept trace of a location's latest capture: which, and where. */
typedef struct capture_ref {
    uint32_t trace;
    int32_t location;
} capture_ref_t;

static int cmp_capture_ref(const void *a, const void *b)
{
    const capture_ref_t *x = a, *y = b;
    if (x->location != y->location) {
        return x->location < y->location ? -1 : 1;
    }
    return x->trace < y->trace ? -1 : (x->trace > y->trace);
}

/* X-Ray style captures: arm one (POST, with this hour's nonce), and for
 * each location the requests of its latest capture with their histogram.
 * One pass over the kept traces picks the captured ones for every
 * location at once (not one pass per location). */
static void captures_section(pp_sink_t *o, const pp_store_t *st,
                             const pp_render_opts_t *opt)
{
    int i, any = 0;
    uint32_t k, ids[PP_MAX_LOCATIONS], ntraces = pp_store_listed_traces(st);
    capture_ref_t *refs = malloc(sizeof(*refs) * (ntraces + 1));
    size_t nrefs = 0, r = 0;
    char nonce[PP_NONCE_LEN + 1];

    pp_puts(o, "<h2 id=captures>Captures <span class=muted>(keep the next "
               "N requests of a location, sampled at the trigger interval)"
               "</span></h2><form class=filters method=post action=\"");
    html(o, opt->base);
    pp_puts(o, "\"><input type=hidden name=action value=capture>"
               "<input type=hidden name=nonce value=\"");
    pp_store_form_nonce(st, opt->now_us, nonce);
    pp_puts(o, nonce);
    pp_puts(o, "\"><label>Keep the next <input name=count size=4 "
               "value=20></label> <label>requests to <select name=path>");
    for (i = 0; i < PP_MAX_LOCATIONS; i++) {
        const pp_location_t *loc = pp_store_location((pp_store_t *)st, i);
        size_t pl;
        if (!location_current(st, loc)) {
            continue;
        }
        pl = strnlen(loc->path, PP_PREFIX_MAX);
        pp_puts(o, "<option value=\"");
        pp_put_html(o, loc->path, pl);
        pp_puts(o, "\">");
        pp_put_html(o, loc->path, pl);
        pp_puts(o, "</option>");
    }
    pp_puts(o, "</select></label> <button>Arm</button></form>");
    for (i = 0; i < PP_MAX_LOCATIONS; i++) {
        const pp_location_t *loc = pp_store_location((pp_store_t *)st, i);
        ids[i] = location_current(st, loc) ? atomic_load(&loc->capture_id)
                                           : 0;
    }
    for (k = 0; refs && k < ntraces; k++) {
        pp_req_t q;
        if (pp_store_read_req(pp_store_trace_at(st, k), &q) &&
            (q.flags & PP_REQ_CAPTURED) && q.location >= 0 &&
            q.location < PP_MAX_LOCATIONS && ids[q.location] &&
            q.capture == ids[q.location]) {
            refs[nrefs].trace = k;
            refs[nrefs++].location = q.location;
        }
    }
    if (nrefs > 1) {
        qsort(refs, nrefs, sizeof(*refs), cmp_capture_ref);
    }
    for (i = 0; i < PP_MAX_LOCATIONS; i++) {
        const pp_location_t *loc = pp_store_location((pp_store_t *)st, i);
        uint32_t id = ids[i], n;
        int32_t left;
        loc_snap_t snap;
        size_t got = 0;
        char pb[PP_PREFIX_MAX];

        if (!id) {
            continue;
        }
        any = 1;
        n = loc->capture_n;
        left = atomic_load(&loc->capture_left);
        memset(&snap, 0, sizeof(snap));
        snprintf(pb, sizeof(pb), "%.*s", PP_PREFIX_MAX - 1, loc->path);
        pp_puts(o, "<h3>");
        html(o, pb);
        pp_printf(o, ": capture %u, %d of %u taken</h3>", id,
                  (int)(n - (uint32_t)(left > 0 ? left : 0)), n);
        pp_puts(o, "<table><tr><th class=num>Duration</th><th>Method</th>"
                   "<th>URI</th><th class=num>Status</th>"
                   "<th class=num>Samples</th><th>Profile</th></tr>");
        /* refs are sorted by location and only name locations with a
         * capture, each visited here in order: r is at this one's first */
        for (; r < nrefs && refs[r].location == i; r++) {
            pp_req_t q;
            /* read again: it may have been evicted since the first pass */
            if (!pp_store_read_req(pp_store_trace_at(st, refs[r].trace),
                                   &q) ||
                !(q.flags & PP_REQ_CAPTURED) || q.capture != id ||
                q.location != i) {
                continue;
            }
            got++;
            snap.hist[pp_hist_bucket(q.duration_us)]++;
            snap.requests++;
            if ((uint64_t)q.duration_us > snap.max_us) {
                snap.max_us = (uint64_t)q.duration_us;
            }
            pp_puts(o, "<tr>");
            put_ms_cell(o, q.duration_us / 1e3);
            pp_puts(o, "<td>");
            html(o, q.method);
            pp_puts(o, "</td><td class=uri>");
            html(o, q.uri);
            pp_puts(o, "</td>");
            status_cell(o, q.status);
            pp_printf(o, "<td class=num>%u</td><td>", q.samples);
            req_link(o, opt, q.id, "call tree");
            pp_puts(o, "</td></tr>");
        }
        pp_puts(o, "</table>");
        if (got) {
            char b[3][32];
            human_ms(pp_hist_quantile_us(snap.hist, 0.5,
                                         (int64_t)snap.max_us) / 1e3,
                     b[0], sizeof(b[0]));
            human_ms(pp_hist_quantile_us(snap.hist, 0.95,
                                         (int64_t)snap.max_us) / 1e3,
                     b[1], sizeof(b[1]));
            human_ms(snap.max_us / 1e3, b[2], sizeof(b[2]));
            pp_printf(o, "<p class=muted>These %zu requests: p50 %s, p95 %s, "
                         "max %s</p>",
                      got, b[0], b[1], b[2]);
            hist_svg(o, &snap, pb);
        }
    }
    if (!any) {
        pp_puts(o, "<p class=empty>No capture armed yet.</p>");
    }
    free(refs);
}

void pp_render_overview_html(pp_sink_t *o, const pp_store_t *st,
                             const pp_render_opts_t *opt)
{
    req_list_t traces, live;
    int i, nloc = 0;
    size_t k;
    char b1[64], b2[64];
    double uptime_s = (double)(opt->now_us - st->created_us) / 1e6;
    uint64_t samples = atomic_load(&st->c.samples);

    page_begin(o, "Python request profiles", opt);

    pp_puts(o, "<h2>Locations</h2>");
    for (i = 0; i < PP_MAX_LOCATIONS; i++) {
        const pp_location_t *loc = pp_store_location((pp_store_t *)st, i);
        loc_snap_t s;
        double age;

        if (!location_current(st, loc)) {
            continue;
        }
        if (nloc++ == 0) {
            pp_puts(o, "<table><tr><th>Location</th><th class=num>Every</th>"
                       "<th class=num>Requests</th>"
                       "<th class=num title=\"average since the location "
                       "was configured\">Rate</th>"
                       "<th class=num>p50</th><th class=num>p95</th>"
                       "<th class=num>p99</th><th class=num>Max</th>"
                       "<th class=num>Kept</th><th class=num>Samples</th>"
                       "<th>Response time (log scale)</th></tr>");
        }
        snap_location(loc, &s);
        age = (double)(opt->now_us - loc->created_us) / 1e6;
        {
            size_t pl = strnlen(loc->path, PP_PREFIX_MAX);
            pp_puts(o, "<tr><td class=mono><a href=\"");
            html(o, opt->base);
            pp_puts(o, "/location?path=");
            pp_put_url_segment(o, loc->path, pl);
            pp_puts(o, "\" title=\"flame graph of every sampled request\">");
            pp_put_html(o, loc->path, pl);
            pp_puts(o, "</a></td>");
        }
        put_ms_cell(o, loc->interval_us / 1e3);
        pp_printf(o, "<td class=num>%llu</td><td class=num>%.2f/s</td>",
                  (unsigned long long)s.requests,
                  age > 0 ? (double)s.requests / age : 0.0);
        put_ms_cell(o, pp_hist_quantile_us(s.hist, 0.50, (int64_t)s.max_us) /
                           1e3);
        put_ms_cell(o, pp_hist_quantile_us(s.hist, 0.95, (int64_t)s.max_us) /
                           1e3);
        put_ms_cell(o, pp_hist_quantile_us(s.hist, 0.99, (int64_t)s.max_us) /
                           1e3);
        put_ms_cell(o, s.max_us / 1e3);
        {
            /* achieved vs nominal: one sample per interval of request time
             * is what the configuration asks for */
            double nominal = loc->interval_us
                                 ? (double)s.sum_us / (double)loc->interval_us
                                 : 0;
            pp_printf(o, "<td class=num>%llu</td><td class=num>%llu",
                      (unsigned long long)s.kept,
                      (unsigned long long)s.samples);
            if (nominal >= 1) {
                pp_printf(o, "<br><span class=muted title=\"samples taken "
                             "against one per interval of request time\">"
                             "%.0f%% of nominal</span>",
                          100.0 * (double)s.samples / nominal);
            }
            pp_puts(o, "</td><td>");
        }
        {
            char pb[PP_PREFIX_MAX];
            snprintf(pb, sizeof(pb), "%.*s", PP_PREFIX_MAX - 1, loc->path);
            hist_svg(o, &s, pb);
        }
        pp_puts(o, "</td></tr>");
    }
    if (nloc) {
        pp_puts(o, "</table>");
    }
    else {
        pp_puts(o, "<p class=empty>No <code>PyProfSample</code> location is "
                   "configured, so nothing is sampled.</p>");
    }

    collect_inflight(st, &live);
    pp_printf(o, "<h2>In flight now <span class=muted>(%zu)</span></h2>",
              live.n);
    if (live.n == 0) {
        pp_puts(o, "<p class=empty>No profiled request is running.</p>");
    }
    else {
        pp_puts(o, "<table><tr><th class=num>Elapsed</th><th>Method</th>"
                   "<th>URI</th><th class=num>Samples</th>"
                   "<th class=num>PID</th><th>Now in</th></tr>");
        for (k = 0; k < live.n; k++) {
            const pp_req_t *q = &live.v[k];
            char leaf[600];
            pp_puts(o, "<tr>");
            put_ms_cell(o, elapsed_ms(opt, q->start_us));
            pp_puts(o, "<td>");
            html(o, q->method);
            pp_puts(o, "</td><td class=uri>");
            html(o, q->uri);
            pp_printf(o, "</td><td class=num>%u</td><td class=num>%d</td>"
                         "<td class=mono>",
                      q->samples, (int)q->pid);
            leaf_function(st, q->last_node, leaf, sizeof(leaf));
            if (leaf[0]) {
                /* the most recent sample's stack, innermost last, like
                 * a traceback */
                uint32_t frames[PP_DEPTH_LIMIT + 2], d, j;
                d = pp_profile_frames(st, q->last_node, frames,
                                      PP_DEPTH_LIMIT + 2);
                pp_puts(o, "<details><summary>");
                html(o, leaf);
                pp_puts(o, "</summary><ol class=stack>");
                for (j = d > 40 ? d - 40 : 0; j < d; j++) {
                    pp_frame_view_t fv;
                    pp_profile_frame(st, frames[j], &fv);
                    pp_puts(o, "<li>");
                    html(o, fv.function);
                    if (fv.file[0]) {
                        pp_puts(o, " <span class=muted>");
                        html(o, fv.file);
                        pp_printf(o, ":%u</span>", fv.line);
                    }
                    pp_puts(o, "</li>");
                }
                pp_puts(o, "</ol>");
                req_link(o, opt, q->id, "call tree so far");
                pp_puts(o, "</details>");
            }
            else {
                pp_puts(o, "<span class=muted>not sampled yet</span>");
            }
            pp_puts(o, "</td></tr>");
        }
        pp_puts(o, "</table>");
    }
    free(live.v);

    collect_traces(st, &traces, opt);
    pp_printf(o, "<h2 id=slow>Slow requests <span class=muted>(%zu kept%s, "
                 "%s first)</span></h2>",
              traces.n,
              opt->filter_location >= 0 || opt->filter_status ||
                      opt->min_us >= 0 || opt->max_us >= 0 ||
                      opt->process_group || opt->app_group
                  ? " matching the filter"
                  : "",
              opt->sort == PP_SORT_TIME
                  ? "newest"
                  : (opt->sort == PP_SORT_URI ? "by URI," : "slowest"));
    filter_form(o, st, opt);
    if (traces.n == 0) {
        pp_puts(o, "<p class=empty>No kept request matches. Only requests "
                   "at or over PyProfSlowThreshold are kept.</p>");
    }
    else {
        pp_puts(o, "<table><tr><th class=num>");
        sort_link(o, st, opt, PP_SORT_DURATION, "Duration");
        pp_puts(o, "</th><th class=num>CPU</th><th>Method</th><th>");
        sort_link(o, st, opt, PP_SORT_URI, "URI");
        pp_puts(o, "</th><th class=num>Status</th><th class=num>Samples</th>"
                   "<th class=num>PID</th><th>");
        sort_link(o, st, opt, PP_SORT_TIME, "Started (UTC)");
        pp_puts(o, "</th><th>Profile</th></tr>");
        for (k = 0; k < traces.n && k < HTML_SLOW_ROWS; k++) {
            const pp_req_t *q = &traces.v[k];
            char t[40];
            pp_puts(o, "<tr>");
            put_ms_cell(o, q->duration_us / 1e3);
            put_ms_cell(o, q->cpu_us / 1e3);
            pp_puts(o, "<td>");
            html(o, q->method);
            pp_puts(o, "</td><td class=uri>");
            html(o, q->uri);
            if (q->flags & PP_REQ_TRIGGERED) {
                pp_puts(o, "<span class=flag>triggered</span>");
            }
            if (q->flags & PP_REQ_CAPTURED) {
                pp_printf(o, "<span class=flag>capture %u</span>",
                          q->capture);
            }
            if (q->flags & PP_REQ_DAEMON) {
                pp_puts(o, "<br><span class=muted>daemon ");
                html(o, q->process_group);
                if (q->app_group[0]) {
                    pp_puts(o, " &middot; ");
                    html(o, q->app_group);
                }
                pp_puts(o, "</span>");
            }
            pp_puts(o, "</td>");
            status_cell(o, q->status);
            iso_time(q->start_us, t, sizeof(t));
            pp_printf(o, "<td class=num>%u</td><td class=num>%d</td>"
                         "<td class=mono>%s</td><td>",
                      q->samples, (int)q->pid, t);
            req_link(o, opt, q->id, "call tree");
            pp_puts(o, "</td></tr>");
        }
        pp_puts(o, "</table>");
        if (traces.n > HTML_SLOW_ROWS) {
            pp_printf(o, "<p class=muted>%zu more in <a href=\"?format=json"
                         "\">JSON</a>.</p>",
                      traces.n - HTML_SLOW_ROWS);
        }
    }
    free(traces.v);

    captures_section(o, st, opt);

    pp_printf(o, "<h2>Sampler cost <span class=muted>(%s)</span></h2>"
                 "<div class=cards>",
              st->sampler_mode == PP_SAMPLER_GIL
                  ? "GIL mode: each sample takes the GIL"
                  : "GIL-free: stacks are copied with process_vm_readv while "
                    "the app runs on");
    pp_printf(o, "<div class=card><b>%llu</b><span>samples</span></div>",
              (unsigned long long)samples);
    pp_printf(o, "<div class=card><b>%.3f s</b><span>sampler CPU</span>"
                 "</div>",
              atomic_load(&st->c.sampler_cpu_ns) / 1e9);
    pp_printf(o, "<div class=card><b>%.1f &micro;s</b><span>per sample, "
                 "median</span></div>",
              cost_quantile_us(st, 0.5));
    pp_printf(o, "<div class=card><b>%.1f &micro;s</b><span>per sample, "
                 "p99</span></div>",
              cost_quantile_us(st, 0.99));
    pp_printf(o, "<div class=card><b>%.3f s</b><span>waiting for the GIL"
                 "</span></div>",
              atomic_load(&st->c.gil_wait_ns) / 1e9);
    pp_printf(o, "<div class=card><b>%.2f/s</b><span>samples per second"
                 "</span></div>",
              uptime_s > 0 ? samples / uptime_s : 0.0);
    snprintf(b1, sizeof(b1), "%.1f", pp_store_arena_used(st) / 1048576.0);
    snprintf(b2, sizeof(b2), "%.1f", st->total_size / 1048576.0);
    pp_printf(o, "<div class=card><b>%s / %s MiB</b><span>frame text used / "
                 "store size</span></div>",
              b1, b2);
    pp_printf(o, "<div class=card><b>%llu</b><span>traces evicted (oldest "
                 "first)</span></div>",
              (unsigned long long)atomic_load(&st->c.traces_evicted));
    {
        unsigned long long drops =
            atomic_load(&st->c.traces_torn) + atomic_load(&st->c.slots_full) +
            atomic_load(&st->c.frames_full) + atomic_load(&st->c.nodes_full) +
            atomic_load(&st->c.agg_full) +
            atomic_load(&st->c.stacks_overflow) +
            atomic_load(&st->c.writes_dropped);
        pp_printf(o, "<div class=card><b>%llu</b><span>dropped (store full, "
                     "see JSON)</span></div>",
                  drops);
    }
    pp_printf(o, "<div class=card><b>%llu</b><span>lost (process died or "
                 "connection dropped)</span></div>",
              (unsigned long long)atomic_load(&st->c.slots_lost));
    pp_printf(o, "<div class=card><b>%llu</b><span>samples dropped as torn"
                 "</span></div>",
              (unsigned long long)atomic_load(&st->c.torn));
    if (uptime_s > 0) {
        pp_printf(o, "<div class=card><b>%.4f</b><span>CPU s sampling per "
                     "s of wall time</span></div>",
                  atomic_load(&st->c.sampler_cpu_ns) / 1e9 / uptime_s);
    }
    pp_puts(o, "</div>");
    if (atomic_load(&st->c.renewals)) {
        /* say what a renewal took away: the numbers above still count
         * from the start, the profiles only from the renewal */
        time_t at = (time_t)(atomic_load(&st->c.renewed_us) / 1000000);
        struct tm tm;
        char when[32] = "?";
        if (gmtime_r(&at, &tm)) {
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
        }
        pp_printf(o, "<p class=notice>The store was renewed %llu time(s) "
                     "at graceful restarts, the last at %s, because it was "
                     "filling with the code of earlier deploys: profiles "
                     "since start begin there; frames of old code and %llu "
                     "location row(s) no longer configured were reclaimed. "
                     "Counters, histograms and the newest kept traces "
                     "carried over.</p>",
                  (unsigned long long)atomic_load(&st->c.renewals), when,
                  (unsigned long long)atomic_load(
                      &st->c.locations_reclaimed));
    }
    pp_puts(o, "<p class=muted>Machine-readable: <a href=\"");
    html(o, opt->base);
    pp_puts(o, "?format=json\">?format=json</a>. Reload every N seconds "
               "with <code>?refresh=N</code>.</p>");
    page_end(o);
}

/* ---- Prometheus ---- */

static const char *const CLASS_NAMES[PP_STATUS_CLASSES] = {
    "1xx", "2xx", "3xx", "4xx", "5xx", "other"};

void pp_render_metrics(pp_sink_t *o, const pp_store_t *st,
                       const pp_render_opts_t *opt)
{
    int i, c, b;
    uint32_t k;
    uint64_t inflight[PP_MAX_LOCATIONS] = {0};

    for (k = 0; k < st->nslots; k++) {
        pp_req_t q;
        if (read_inflight(st, k, &q) && q.location >= 0 &&
            q.location < PP_MAX_LOCATIONS) {
            inflight[q.location]++;
        }
    }
    pp_puts(o, "# HELP pyprof_request_duration_seconds Response time of "
               "requests under a PyProfSample prefix.\n"
               "# TYPE pyprof_request_duration_seconds histogram\n");
    for (i = 0; i < PP_MAX_LOCATIONS; i++) {
        const pp_location_t *loc = pp_store_location((pp_store_t *)st, i);
        size_t pl;
        if (!location_current(st, loc)) {
            continue;
        }
        pl = strnlen(loc->path, PP_PREFIX_MAX);
        for (c = 0; c < PP_STATUS_CLASSES; c++) {
            uint64_t counts[PP_HIST_BUCKETS], cum = 0, total = 0;
            for (b = 0; b < PP_HIST_BUCKETS; b++) {
                counts[b] = atomic_load(&loc->class_hist[c][b]);
                total += counts[b];
            }
            if (!total) {
                continue;
            }
            /* every fourth edge: 17 buckets from 1 ms to 60 s */
            for (b = 0; b < PP_HIST_BUCKETS - 1; b++) {
                cum += counts[b];
                if (b % 4 != 0) {
                    continue;
                }
                pp_puts(o, "pyprof_request_duration_seconds_bucket{location=\"");
                pp_put_prom_label(o, loc->path, pl);
                pp_printf(o, "\",status_class=\"%s\",le=\"%.6g\"} %llu\n",
                          CLASS_NAMES[c], pp_hist_hi_us(b) / 1e6,
                          (unsigned long long)cum);
            }
            pp_puts(o, "pyprof_request_duration_seconds_bucket{location=\"");
            pp_put_prom_label(o, loc->path, pl);
            pp_printf(o, "\",status_class=\"%s\",le=\"+Inf\"} %llu\n",
                      CLASS_NAMES[c], (unsigned long long)total);
            pp_puts(o, "pyprof_request_duration_seconds_sum{location=\"");
            pp_put_prom_label(o, loc->path, pl);
            pp_printf(o, "\",status_class=\"%s\"} %.6f\n", CLASS_NAMES[c],
                      atomic_load(&loc->class_sum_us[c]) / 1e6);
            pp_puts(o, "pyprof_request_duration_seconds_count{location=\"");
            pp_put_prom_label(o, loc->path, pl);
            pp_printf(o, "\",status_class=\"%s\"} %llu\n", CLASS_NAMES[c],
                      (unsigned long long)total);
        }
    }
    pp_puts(o, "# HELP pyprof_inflight_requests Profiled requests running "
               "now, in every process.\n"
               "# TYPE pyprof_inflight_requests gauge\n");
    for (i = 0; i < PP_MAX_LOCATIONS; i++) {
        const pp_location_t *loc = pp_store_location((pp_store_t *)st, i);
        if (!location_current(st, loc)) {
            continue;
        }
        pp_puts(o, "pyprof_inflight_requests{location=\"");
        pp_put_prom_label(o, loc->path, strnlen(loc->path, PP_PREFIX_MAX));
        pp_printf(o, "\"} %llu\n", (unsigned long long)inflight[i]);
    }
    pp_printf(o,
              "# HELP pyprof_samples_total Stacks recorded by the samplers.\n"
              "# TYPE pyprof_samples_total counter\n"
              "pyprof_samples_total %llu\n"
              "# HELP pyprof_sampler_cpu_seconds_total CPU time the sampler "
              "threads spent.\n"
              "# TYPE pyprof_sampler_cpu_seconds_total counter\n"
              "pyprof_sampler_cpu_seconds_total %.6f\n"
              "# HELP pyprof_sampler_gil_wait_seconds_total Time the "
              "samplers waited for the GIL.\n"
              "# TYPE pyprof_sampler_gil_wait_seconds_total counter\n"
              "pyprof_sampler_gil_wait_seconds_total %.6f\n"
              "# HELP pyprof_traces_kept_total Slow-request traces kept.\n"
              "# TYPE pyprof_traces_kept_total counter\n"
              "pyprof_traces_kept_total %llu\n"
              "# HELP pyprof_traces_evicted_total Kept traces overwritten by "
              "newer ones.\n"
              "# TYPE pyprof_traces_evicted_total counter\n"
              "pyprof_traces_evicted_total %llu\n",
              (unsigned long long)atomic_load(&st->c.samples),
              atomic_load(&st->c.sampler_cpu_ns) / 1e9,
              atomic_load(&st->c.gil_wait_ns) / 1e9,
              (unsigned long long)atomic_load(&st->c.traces_kept),
              (unsigned long long)atomic_load(&st->c.traces_evicted));
    pp_printf(o,
              "# HELP pyprof_dropped_total Data the store had no room for, "
              "by reason.\n"
              "# TYPE pyprof_dropped_total counter\n"
              "pyprof_dropped_total{reason=\"trace_busy\"} %llu\n"
              "pyprof_dropped_total{reason=\"slots_full\"} %llu\n"
              "pyprof_dropped_total{reason=\"frames_full\"} %llu\n"
              "pyprof_dropped_total{reason=\"nodes_full\"} %llu\n"
              "pyprof_dropped_total{reason=\"aggregate_full\"} %llu\n"
              "pyprof_dropped_total{reason=\"stacks_overflow\"} %llu\n"
              "pyprof_dropped_total{reason=\"lost\"} %llu\n"
              "pyprof_dropped_total{reason=\"writer_busy\"} %llu\n"
              "# HELP pyprof_slots_reaped_total Request slots freed because "
              "the process holding them died (part of reason=\"lost\").\n"
              "# TYPE pyprof_slots_reaped_total counter\n"
              "pyprof_slots_reaped_total %llu\n"
              "# HELP pyprof_store_bytes Shared store size and frame text "
              "in use.\n"
              "# TYPE pyprof_store_bytes gauge\n"
              "pyprof_store_bytes{kind=\"size\"} %llu\n"
              "pyprof_store_bytes{kind=\"frame_text_used\"} %llu\n",
              (unsigned long long)atomic_load(&st->c.traces_torn),
              (unsigned long long)atomic_load(&st->c.slots_full),
              (unsigned long long)atomic_load(&st->c.frames_full),
              (unsigned long long)atomic_load(&st->c.nodes_full),
              (unsigned long long)atomic_load(&st->c.agg_full),
              (unsigned long long)atomic_load(&st->c.stacks_overflow),
              (unsigned long long)atomic_load(&st->c.slots_lost),
              (unsigned long long)atomic_load(&st->c.writes_dropped),
              (unsigned long long)atomic_load(&st->c.slots_reaped),
              (unsigned long long)st->total_size,
              (unsigned long long)pp_store_arena_used(st));
    (void)opt;
}

/* ---- request and location pages ---- */

/* Flame graph, hot functions and call tree of one built tree: the tree is
 * built once per stack set and every view reads it. */
static void tree_sections(pp_sink_t *o, const pp_store_t *st,
                          const pp_tree_t *tree, int with_cpu,
                          const char *app_root)
{
    pp_puts(o, "<h2>Flame graph</h2>");
    pp_view_truncated(o, tree);
    pp_view_flamegraph(o, st, tree, app_root);
    pp_puts(o, "<h2>Hot functions <span class=muted>(bottom-up)</span>"
               "</h2>");
    pp_view_hot(o, st, tree, with_cpu, app_root);
    pp_puts(o, "<h2>Call tree <span class=muted>(top-down; bar: "
               "<span style=\"color:#d9480f\">on CPU</span> / "
               "<span style=\"color:#7aa2d6\">off CPU: sleep, I/O or "
               "waiting for the GIL</span>)</span></h2>");
    pp_view_tree(o, st, tree, app_root);
}

static void profile_sections(pp_sink_t *o, const pp_store_t *st,
                             const pp_profile_t *p, int with_cpu,
                             const char *app_root)
{
    pp_tree_t tree;

    if (pp_tree_build(&tree, st, p) != 0) {
        pp_tree_free(&tree);
        pp_puts(o, "<p class=empty>Out of memory building the tree.</p>");
        return;
    }
    tree_sections(o, st, &tree, with_cpu, app_root);
    pp_tree_free(&tree);
}

/* Links to the exports of this page's stack set; a location page's keep
 * its path (readable: ?path=/app) and window. */
static void export_links(pp_sink_t *o, const char *path, int64_t since_us)
{
    static const char *const fmts[][2] = {
        {"json", "JSON"},
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
    uint32_t i, n = q->nsegments < PP_SEGMENTS_MAX ? q->nsegments
                                                   : PP_SEGMENTS_MAX;

    if (!n) {
        return;
    }
    if (total <= 0) { /* in flight: scale to the latest end seen */
        for (i = 0; i < n; i++) {
            double end = (rec->segments[i].start_us +
                          (rec->segments[i].dur_us > 0 ? rec->segments[i].dur_us
                                                       : 0)) / 1e3;
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
        html(o, g->name);
        pp_puts(o, "</td><td class=\"mono detail\">");
        html(o, g->detail);
        pp_printf(o, "</td><td class=num>%.1f ms</td>", start);
        if (dur < 0) {
            pp_puts(o, "<td class=num>open</td><td class=num></td>");
        }
        else {
            pp_printf(o, "<td class=num>%.1f ms</td><td class=num>%.1f%%</td>",
                      dur, total > 0 ? 100.0 * dur / total : 0.0);
        }
        pp_printf(o, "<td class=num>%u</td><td><div class=tl><span "
                     "style=\"left:%.2f%%;width:%.2f%%\"></span></div></td>"
                     "</tr>",
                  g->samples, left, width < 0.3 ? 0.3 : width);
    }
    pp_puts(o, "</table>");
    if (q->segments_dropped) {
        pp_printf(o, "<p class=muted>%u more segments were not recorded "
                     "(at most %d a request).</p>",
                  q->segments_dropped, PP_SEGMENTS_MAX);
    }
}

static void split_part(pp_sink_t *o, const char *cls, double ms,
                       double total, const char *label)
{
    double pct = total > 0 ? 100.0 * ms / total : 0;
    if (ms <= 0 || pct < 0.05) {
        return;
    }
    pp_printf(o, "<span class=\"seg %s\" style=\"width:%.2f%%\" "
                 "title=\"%s: %.1f ms\"></span>",
              cls, pct, label, ms);
}

/* Where the request's wall time went: Apache before the app, the app
 * (split by what the samples saw), and Apache after it. */
static void time_split(pp_sink_t *o, const pp_req_t *q)
{
    double total = q->duration_us / 1e3;
    double before = q->handler_start_us > 0
                        ? (q->handler_start_us - q->start_us) / 1e3
                        : 0;
    double app = q->handler_start_us > 0 && q->app_end_us >= q->handler_start_us
                     ? (q->app_end_us - q->handler_start_us) / 1e3
                     : total - before;
    double after = total - before - app;
    uint32_t py = q->samples_on_cpu + q->samples_off_cpu;
    double outside = q->outside_us / 1e3;
    double in_app = app - outside > 0 ? app - outside : 0;
    double on = py ? in_app * q->samples_on_cpu / py : 0;
    double gil = py ? in_app * q->samples_gil_wait / py : 0;
    double off = in_app - on - gil;

    if (total <= 0) {
        return;
    }
    if (after < 0) {
        after = 0;
    }
    pp_puts(o, "<h2>Where the time went</h2><div class=split>");
    split_part(o, "before", before, total, "Apache before the app");
    split_part(o, "on", on, total, "Python on CPU");
    split_part(o, "gil", gil, total, "Python waiting for the GIL or a lock");
    split_part(o, "off", off, total, "Python off CPU (sleep, I/O)");
    split_part(o, "outside", outside, total, "in the app, outside Python");
    split_part(o, "after", after, total, "Apache after the app");
    pp_puts(o, "</div><table class=legend><tr>");
    pp_printf(o, "<td><span class=\"key before\"></span>Apache before the "
                 "app %.1f ms</td>", before);
    pp_printf(o, "<td><span class=\"key on\"></span>Python on CPU "
                 "%.1f ms (%u samples)</td>", on, q->samples_on_cpu);
    pp_printf(o, "<td><span class=\"key gil\"></span>waiting for the GIL "
                 "or a lock %.1f ms (%u)</td>", gil, q->samples_gil_wait);
    pp_printf(o, "<td><span class=\"key off\"></span>off CPU: sleep, I/O "
                 "%.1f ms (%u)</td>",
              off > 0 ? off : 0, q->samples_off_cpu - q->samples_gil_wait);
    pp_printf(o, "<td><span class=\"key outside\"></span>outside Python "
                 "%.1f ms (%u)</td>", outside, q->samples_outside);
    pp_printf(o, "<td><span class=\"key after\"></span>Apache after the "
                 "app %.1f ms</td>", after);
    pp_puts(o, "</tr></table><p class=muted>A sample is on CPU when the "
               "thread's CPU clock advanced for at least half of its "
               "interval. Off CPU, the thread's kernel wait channel tells "
               "the rest apart: a futex wait is the GIL (or a Python lock); "
               "anything else is sleep or I/O. \"Before\" and \"after\" "
               "are Apache's own work around the handler (reading the "
               "request, sending the last bytes, logging).</p>");
}

void pp_render_request_html(pp_sink_t *o, const pp_store_t *st,
                            const pp_record_t *rec, int inflight,
                            const pp_render_opts_t *opt)
{
    const pp_req_t *q = &rec->req;
    char t[40], lp[PP_PREFIX_MAX], root[PP_PREFIX_MAX];
    char title[PP_ID_MAX + 16];
    pp_profile_t p;

    snprintf(title, sizeof(title), "Request %s", q->id);
    page_begin(o, title, opt);
    iso_time(q->start_us, t, sizeof(t));
    pp_store_location_root(st, q->location, root, sizeof(root));
    pp_puts(o, "<h2>");
    html(o, q->method);
    pp_puts(o, " <span class=mono>");
    html(o, q->uri);
    pp_puts(o, "</span></h2><dl class=kv>");
    if (inflight) {
        pp_printf(o, "<dt>State</dt><dd>in flight, %.1f ms so far</dd>",
                  elapsed_ms(opt, q->start_us));
    }
    else {
        pp_printf(o, "<dt>Status</dt><dd>%d</dd>", (int)q->status);
        pp_printf(o, "<dt>Duration</dt><dd>%.1f ms</dd>",
                  q->duration_us / 1e3);
        pp_printf(o, "<dt>CPU time</dt><dd>%.1f ms (thread CPU clock, "
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
            if (st->sampler_mode == PP_SAMPLER_GIL) {
                pp_printf(o, " &mdash; achieved one per %.1f ms. While a "
                             "thread runs Python it gives up the GIL only "
                             "every switch interval (5 ms by default), so a "
                             "sampler that takes the GIL (PyProfSampler gil) "
                             "cannot see it more often than about 200 times "
                             "a second",
                          achieved);
            }
            else {
                pp_printf(o, " &mdash; achieved one per %.1f ms: the machine "
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
    location_path(st, q->location, lp, sizeof(lp));
    if (lp[0]) {
        pp_puts(o, "<a href=\"");
        html(o, opt->base);
        pp_puts(o, "/location?path=");
        pp_put_url_segment(o, lp, strlen(lp));
        pp_puts(o, "\">");
        html(o, lp);
        pp_puts(o, "</a>");
    }
    pp_puts(o, "</dd><dt>Virtual host</dt><dd>");
    html(o, q->vhost);
    pp_printf(o, "</dd><dt>Process / thread</dt><dd>pid %d, tid %d",
              (int)q->pid, (int)q->tid);
    if (q->flags & PP_REQ_DAEMON) {
        pp_printf(o, "; the app ran in mod_wsgi daemon pid %d, process "
                     "group <span class=mono>",
                  (int)q->daemon_pid);
        html(o, q->process_group);
        pp_puts(o, "</span>, application group <span class=mono>");
        html(o, q->app_group[0] ? q->app_group : "(main interpreter)");
        pp_puts(o, "</span>");
    }
    pp_puts(o, "</dd>");
    pp_printf(o, "<dt>Started</dt><dd class=mono>%s</dd>", t);
    pp_puts(o, "<dt>Request id</dt><dd class=mono>");
    html(o, q->id);
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
        html(o, q->trace_id);
        pp_puts(o, ", parent span ");
        html(o, q->parent_id);
        pp_puts(o, "</dd>");
    }
    if (q->unique_id[0]) {
        pp_puts(o, "<dt>UNIQUE_ID</dt><dd class=mono>");
        html(o, q->unique_id);
        pp_puts(o, "</dd>");
    }
    pp_puts(o, "<dt>Export</dt><dd>");
    export_links(o, NULL, 0);
    pp_puts(o, "</dd></dl>");
    if (!inflight) {
        time_split(o, q);
    }
    segments_table(o, rec);

    if (q->samples == 0) {
        pp_puts(o, "<p class=empty>No sample landed in Python code during "
                   "this request (it was shorter than the interval, or "
                   "spent its time outside Python).</p>");
    }
    else {
        pp_profile_init(&p);
        pp_profile_add_record(&p, rec);
        pp_profile_sort(&p);
        profile_sections(o, st, &p, 1, root);
        pp_profile_free(&p);
    }
    page_end(o);
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

void pp_render_location_html(pp_sink_t *o, const pp_store_t *st,
                             int location, const pp_render_opts_t *opt)
{
    const pp_location_t *loc = pp_store_location((pp_store_t *)st, location);
    char path[PP_PREFIX_MAX], root[PP_PREFIX_MAX];
    loc_snap_t s;
    pp_profile_t p;

    snprintf(path, sizeof(path), "%.*s", PP_PREFIX_MAX - 1, loc->path);
    pp_store_location_root(st, location, root, sizeof(root));
    page_begin(o, "Location profile", opt);
    snap_location(loc, &s);
    pp_puts(o, "<h2>All sampled requests under <span class=mono>");
    html(o, path);
    pp_printf(o, "</span></h2><dl class=kv><dt>Requests</dt><dd>%llu, "
                 "%llu samples every %.1f ms</dd>",
              (unsigned long long)s.requests, (unsigned long long)s.samples,
              loc->interval_us / 1e3);
    pp_puts(o, "<dt>Response time</dt><dd>");
    {
        char b[4][32];
        human_ms(pp_hist_quantile_us(s.hist, 0.5, (int64_t)s.max_us) / 1e3,
                 b[0], sizeof(b[0]));
        human_ms(pp_hist_quantile_us(s.hist, 0.95, (int64_t)s.max_us) / 1e3,
                 b[1], sizeof(b[1]));
        human_ms(pp_hist_quantile_us(s.hist, 0.99, (int64_t)s.max_us) / 1e3,
                 b[2], sizeof(b[2]));
        human_ms(s.max_us / 1e3, b[3], sizeof(b[3]));
        pp_printf(o, "p50 %s &middot; p95 %s &middot; p99 %s &middot; max "
                     "%s</dd>",
                  b[0], b[1], b[2], b[3]);
    }
    if (root[0]) {
        pp_puts(o, "<dt>Application root</dt><dd class=mono>");
        html(o, root);
        pp_puts(o, "</dd>");
    }
    pp_puts(o, "<dt>Export</dt><dd>");
    export_links(o, path, opt->since_us);
    pp_puts(o, " &middot; pull for a fleet: <span class=mono>");
    html(o, opt->base);
    pp_puts(o, "/pprof?path=");
    html(o, path);
    pp_puts(o, "&amp;seconds=30</span></dd></dl>");
    window_links(o, opt, path);

    pp_profile_init(&p);
    if (opt->diff) {
        /* one tree per side, each read by every view that needs it */
        pp_profile_t rest;
        pp_tree_t ts, tr;
        int ok;

        pp_profile_init(&rest);
        pp_render_location_profile(&p, st, location, opt->now_us, 0,
                                   PP_SIDE_SLOW);
        pp_render_location_profile(&rest, st, location, opt->now_us, 0,
                                   PP_SIDE_REST);
        ok = pp_tree_build(&ts, st, &p) == 0;
        ok = pp_tree_build(&tr, st, &rest) == 0 && ok;
        pp_profile_free(&rest); /* its tree has what the views need */
        pp_puts(o, "<h2>What grows in the slowest requests</h2>");
        if (!ok) {
            pp_puts(o, "<p class=empty>Out of memory building the tree."
                       "</p>");
        }
        else {
            pp_view_diff(o, st, &ts, &tr, root);
            pp_tree_free(&tr);
            if (p.samples) {
                pp_puts(o, "<h3>The slowest requests only</h3>");
                tree_sections(o, st, &ts, 1, root);
            }
        }
        pp_tree_free(&ts);
        pp_tree_free(&tr);
    }
    else {
        pp_render_location_profile(&p, st, location, opt->now_us,
                                   opt->since_us, opt->side);
        if (!p.samples) {
            pp_puts(o, "<p class=empty>No samples in this window.</p>");
        }
        else {
            pp_printf(o, "<p class=muted>%llu samples, %.1f s of request "
                         "time, %.0f%% of it on CPU.</p>",
                      (unsigned long long)p.samples, p.weight_us / 1e6,
                      p.weight_us ? 100.0 * (double)p.cpu_us /
                                        (double)p.weight_us
                                  : 0.0);
            profile_sections(o, st, &p, 1, root);
        }
    }
    pp_profile_free(&p);
    page_end(o);
}
