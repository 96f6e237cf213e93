/* pp_render_json.c: the JSON forms of the overview, a request and a
 * location (?format=json), from what pp_overview.c read (the overview's
 * snapshot, a request's record with its resolved stacks, a location row
 * with its resolved profile): nothing here reads the store.  Keys are an
 * interface: tests and users read them, so they only ever get added to.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp_render_int.h"

/* `key` (the JSON text up to the member's value: comma, brace, quoted name,
 * colon), then `s` as a JSON string. */
static void json_member(pp_sink_t *o, const char *key, const char *s)
{
    pp_puts(o, key);
    pp_puts_json(o, s);
}

/* `s` as a JSON string when `present`, else null. */
static void json_str_or_null(pp_sink_t *o, int present, const char *s)
{
    if (present) {
        pp_puts_json(o, s);
    }
    else {
        pp_puts(o, "null");
    }
}

/* A request's fields; location: its row's path. */
static void json_req_fields(pp_sink_t *o, const pp_req_t *q,
                            const char *location)
{
    char t[40];
    pp_time_split_t split;

    pp_iso_time(q->start_us, t, sizeof(t));
    pp_req_time_split(q, &split);
    json_member(o, "\"id\":", q->id);
    json_member(o, ",\"method\":", q->method);
    json_member(o, ",\"uri\":", q->uri);
    json_member(o, ",\"vhost\":", q->vhost);
    pp_printf(o,
              ",\"status\":%d,\"duration_ms\":%.3f,\"cpu_ms\":%.3f,"
              "\"samples\":%u,\"pid\":%d,\"tid\":%d,\"interval_ms\":%.3f,"
              "\"location\":",
              (int)q->status, (double)q->duration_us / 1000.0,
              (double)q->cpu_us / 1000.0, q->samples, (int)q->pid, (int)q->tid,
              (double)q->interval_us / 1000.0);
    pp_puts_json(o, location);
    pp_printf(o, ",\"started_at\":\"%s\",\"truncated\":%s", t,
              (q->flags & PP_REQ_TRUNCATED) ? "true" : "false");
    pp_printf(o,
              ",\"triggered\":%s,\"captured\":%s,\"samples_on_cpu\":%u,"
              "\"samples_off_cpu\":%u,\"samples_gil_wait\":%u,"
              "\"samples_wait_core\":%u,\"wait_core_ms\":%.3f,"
              "\"samples_outside_python\":%u,\"outside_python_ms\":%.3f",
              (q->flags & PP_REQ_TRIGGERED) ? "true" : "false",
              (q->flags & PP_REQ_CAPTURED) ? "true" : "false",
              q->samples_on_cpu, q->samples_off_cpu, q->samples_gil_wait,
              q->samples_wait_core, split.core, q->samples_outside,
              q->outside_us / 1e3);
    pp_printf(o,
              ",\"gil_wait_ms\":%.3f,\"gil_enter_ms\":%.3f,"
              "\"samples_gil_enter\":%u",
              (q->gil_wait_us + q->gil_enter_us) / 1e3, q->gil_enter_us / 1e3,
              q->samples_gil_enter);
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
        pp_puts_json(o, q->trace_id);
        json_member(o, ",\"parent_id\":", q->parent_id);
    }
    else {
        pp_puts(o, "null,\"parent_id\":null");
    }
    pp_puts(o, ",\"unique_id\":");
    json_str_or_null(o, q->unique_id[0], q->unique_id);
    if (q->flags & PP_REQ_DAEMON) {
        pp_printf(o,
                  ",\"daemon_pid\":%d,\"process_group\":", (int)q->daemon_pid);
        pp_puts_json(o, q->process_group);
        json_member(o, ",\"application_group\":", q->app_group);
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
        json_member(o, i ? ",{\"name\":" : "{\"name\":", g->name);
        json_member(o, ",\"detail\":", g->detail);
        pp_printf(o,
                  ",\"start_ms\":%.3f,\"duration_ms\":%s%.3f,\"depth\":%u,"
                  "\"parent\":%u,\"samples\":%u,\"weight_ms\":%.3f}",
                  g->start_us / 1e3, "", g->dur_us < 0 ? -1.0 : g->dur_us / 1e3,
                  g->depth, g->parent, g->samples, g->weight_us / 1e3);
    }
    pp_printf(o, "],\"segments_dropped\":%u", rec->req.segments_dropped);
}

static void json_histogram(pp_sink_t *o, const pp_loc_snap_t *s)
{
    int b, firstb = 1;

    pp_puts(o, "\"histogram\":[");
    for (b = 0; b < PP_HIST_BUCKETS; b++) {
        int64_t hi = pp_hist_hi_us(b);
        if (!s->hist[b]) {
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
        pp_printf(o, ",\"count\":%llu}", (unsigned long long)s->hist[b]);
        firstb = 0;
    }
    pp_puts(o, "]");
}

void pp_render_overview_json(pp_sink_t *o, const pp_overview_t *ov,
                             const pp_render_opts_t *opt)
{
    size_t i, k, c;
    double uptime_s = (double)(opt->now_us - ov->created_us) / 1e6;

    pp_puts(o, "{\"locations\":[");
    for (i = 0; i < ov->nloc; i++) {
        const pp_ov_location_t *l = &ov->loc[i];
        const pp_loc_snap_t *s = &l->s;
        double age = (double)(opt->now_us - l->created_us) / 1e6;

        json_member(o, i ? ",{\"path\":" : "{\"path\":", l->path);
        pp_printf(o,
                  ",\"interval_ms\":%.3f,\"requests\":%llu,\"samples\":%llu,"
                  "\"kept\":%llu,\"rate_per_s\":%.3f,\"p50_ms\":%.3f,"
                  "\"p95_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
                  "\"mean_ms\":%.3f,\"nominal_samples\":%.1f,",
                  l->interval_us / 1000.0, (unsigned long long)s->requests,
                  (unsigned long long)s->samples, (unsigned long long)s->kept,
                  age > 0 ? (double)s->requests / age : 0.0,
                  pp_hist_quantile_us(s->hist, 0.50, (int64_t)s->max_us) / 1e3,
                  pp_hist_quantile_us(s->hist, 0.95, (int64_t)s->max_us) / 1e3,
                  pp_hist_quantile_us(s->hist, 0.99, (int64_t)s->max_us) / 1e3,
                  s->max_us / 1e3,
                  s->requests ? (double)s->sum_us / (double)s->requests / 1e3
                              : 0.0,
                  l->interval_us ? (double)s->sum_us / l->interval_us : 0.0);
        json_histogram(o, s);
        pp_puts(o, "}");
    }
    pp_puts(o, "],\"requests\":[");
    for (k = 0; k < ov->ntraces_listed; k++) {
        const pp_req_t *q = &ov->traces[k];
        pp_puts(o, k ? ",{" : "{");
        json_req_fields(o, q, pp_overview_path(ov, q->location));
        pp_puts(o, "}");
    }
    pp_puts(o, "],\"inflight\":[");
    for (k = 0; k < ov->ninflight; k++) {
        const pp_req_t *q = &ov->inflight[k].q;
        pp_puts(o, k ? ",{" : "{");
        json_req_fields(o, q, pp_overview_path(ov, q->location));
        pp_printf(o, ",\"elapsed_ms\":%.3f}", pp_elapsed_ms(opt, q->start_us));
    }
    pp_printf(o,
              "],\"sampler\":{\"samples\":%llu,\"ticks\":%llu,\"cpu_s\":%.6f,"
              "\"samples_per_s\":%.3f,\"sample_cost_p50_us\":%.2f,"
              "\"sample_cost_p99_us\":%.2f,\"gil_wait_s\":%.6f,\"walk_s\":%.6f,"
              "\"classify_s\":%.6f,\"store_s\":%.6f,"
              "\"cpu_clock_reads\":%llu,\"wchan_reads\":%llu,"
              "\"wchan_reads_saved\":%llu,"
              "\"threads_missing\":%llu,\"mode\":\"%s\",\"torn\":%llu,"
              "\"samplers_nogil\":%llu,\"samplers_gil\":%llu,"
              "\"reader\":\"%s\",\"samplers_guarded\":%llu,"
              "\"guard_replaced\":%llu,\"copy_faults\":%llu,"
              "\"gil_wait_samples\":%llu,\"gil_enter_samples\":%llu,"
              "\"gil_wait_ambiguous\":%llu,\"gil_holder_walks\":%llu},",
              (unsigned long long)ov->c.samples,
              (unsigned long long)ov->c.ticks, ov->c.sampler_cpu_ns / 1e9,
              uptime_s > 0 ? ov->c.samples / uptime_s : 0.0,
              pp_cost_quantile_us(&ov->c, 0.5),
              pp_cost_quantile_us(&ov->c, 0.99), ov->c.gil_wait_ns / 1e9,
              ov->c.walk_ns / 1e9, ov->c.classify_ns / 1e9,
              ov->c.store_ns / 1e9, (unsigned long long)ov->c.cpu_clock_reads,
              (unsigned long long)ov->c.wchan_reads,
              (unsigned long long)ov->c.wchan_reads_saved,
              (unsigned long long)ov->c.threads_missing,
              ov->sampler_mode == PP_SAMPLER_GIL ? "gil" : "nogil",
              (unsigned long long)ov->c.torn,
              (unsigned long long)ov->c.nogil_processes,
              (unsigned long long)ov->c.gil_processes, pp_overview_reader(ov),
              (unsigned long long)ov->c.guarded_processes,
              (unsigned long long)ov->c.guard_replaced,
              (unsigned long long)ov->c.copy_faults,
              (unsigned long long)ov->c.gil_wait_samples,
              (unsigned long long)ov->c.gil_enter_samples,
              (unsigned long long)ov->c.gil_wait_ambiguous,
              (unsigned long long)ov->c.gil_holder_walks);
    pp_printf(o,
              "\"store\":{\"memory\":%llu,\"arena_used\":%llu,"
              "\"arena_size\":%llu,\"slots\":%u,\"keep\":%u,"
              "\"frames_capacity\":%u,\"nodes_capacity\":%u",
              (unsigned long long)ov->total_size,
              (unsigned long long)ov->arena_used,
              (unsigned long long)ov->arena_size, ov->nslots, ov->keep,
              ov->nframes, ov->nnodes);
    for (c = 0; c < pp_counter_nrows; c++) {
        const pp_counter_t *ctr = &pp_counter_rows[c];
        pp_printf(o, ",\"%s\":%llu", ctr->json,
                  (unsigned long long)pp_counter_read(&ov->c, ctr));
    }
    pp_printf(o, ",\"uptime_s\":%.3f}}\n", uptime_s);
}

/* ---- stacks of one record or location ---- */

static void json_stacks(pp_sink_t *o, const pp_profile_t *p)
{
    uint32_t frames[PP_DEPTH_LIMIT + 2];
    size_t i;

    pp_puts(o, "\"stacks\":[");
    for (i = 0; i < p->n; i++) {
        uint32_t d = pp_profile_stack_frames(p, i, frames, PP_DEPTH_LIMIT + 2),
                 j;
        pp_puts(o, i ? ",{\"frames\":[" : "{\"frames\":[");
        for (j = 0; j < d; j++) {
            const pp_pframe_t *fv = pp_profile_pframe(p, frames[j]);
            json_member(o,
                        j ? ",{\"function\":" : "{\"function\":", fv->function);
            json_member(o, ",\"file\":", fv->file);
            pp_printf(o, ",\"line\":%u}", fv->line);
        }
        pp_printf(o, "],\"count\":%llu,\"weight_ms\":%.3f,\"cpu_ms\":%.3f}",
                  (unsigned long long)p->v[i].count, p->v[i].weight_us / 1e3,
                  p->v[i].cpu_us / 1e3);
    }
    pp_puts(o, "]");
}

/* Who held the GIL while the request waited, largest wait first. */
static void json_gil_holders(pp_sink_t *o, const pp_gil_view_t *g)
{
    uint32_t i;

    pp_puts(o, "\"gil_holders\":[");
    for (i = 0; i < g->n; i++) {
        const pp_gil_holder_t *h = &g->e[i].h;
        int other = h->location == PP_GIL_OTHER;

        pp_puts(o, i ? ",{\"request_id\":" : "{\"request_id\":");
        json_str_or_null(o, h->serial && h->id[0], h->id);
        json_member(o, ",\"method\":", h->serial ? h->method : "");
        json_member(o, ",\"uri\":", h->serial ? h->uri : "");
        pp_puts(o, ",\"location\":");
        json_str_or_null(o, h->serial && g->e[i].location[0], g->e[i].location);
        pp_printf(o, ",\"tid\":%d,\"other\":%s,\"function\":", (int)h->tid,
                  other ? "true" : "false");
        pp_puts_json(o, other ? "[other holders]" : g->e[i].f.function);
        json_member(o, ",\"file\":", g->e[i].f.file);
        pp_printf(o, ",\"line\":%u,\"ms\":%.3f,\"samples\":%u}", g->e[i].f.line,
                  h->wait_us / 1e3, h->samples);
    }
    pp_puts(o, "]");
}

/* PyProfAllocations: the request's estimates and allocating stacks,
 * largest first (only when its process sampled allocations). */
static void json_alloc(pp_sink_t *o, const pp_record_t *rec,
                       const pp_alloc_view_t *a)
{
    uint32_t i, j;

    if (!(rec->req.flags & PP_REQ_ALLOC)) {
        return;
    }
    pp_printf(o,
              ",\"alloc_bytes\":%llu,\"alloc_count\":%llu,"
              "\"alloc_live_bytes\":%llu,\"alloc_samples\":%u,"
              "\"alloc_mean\":%u,\"alloc_live_incomplete\":%s,"
              "\"alloc_stacks\":[",
              (unsigned long long)rec->req.alloc_bytes,
              (unsigned long long)rec->req.alloc_count,
              (unsigned long long)rec->req.alloc_live_bytes,
              rec->req.alloc_samples, rec->req.alloc_mean,
              rec->req.alloc_flags & PP_ALLOC_LIVE_FULL ? "true" : "false");
    for (i = 0; i < a->n; i++) {
        pp_puts(o, i ? ",{\"frames\":[" : "{\"frames\":[");
        for (j = 0; j < a->e[i].depth; j++) {
            pp_puts(o, j ? ",{\"function\":" : "{\"function\":");
            pp_puts_json(o, a->e[i].f[j].function);
            pp_puts(o, ",\"file\":");
            pp_puts_json(o, a->e[i].f[j].file);
            pp_printf(o, ",\"line\":%u}", a->e[i].f[j].line);
        }
        pp_printf(o, "],\"truncated\":%s,\"bytes\":%llu,\"count\":%u}",
                  a->e[i].truncated ? "true" : "false",
                  (unsigned long long)a->e[i].bytes, a->e[i].count);
    }
    pp_puts(o, "]");
}

void pp_render_request_json(pp_sink_t *o, const pp_request_view_t *v,
                            const pp_render_opts_t *opt)
{
    const pp_record_t *rec = v->rec;

    pp_puts(o, "{");
    json_req_fields(o, &rec->req, v->location);
    pp_printf(o, ",\"inflight\":%s", v->inflight ? "true" : "false");
    if (v->inflight) {
        pp_printf(o, ",\"elapsed_ms\":%.3f",
                  pp_elapsed_ms(opt, rec->req.start_us));
    }
    json_alloc(o, rec, &v->alloc);
    pp_printf(o, ",\"samples_other\":%u,", rec->req.samples_overflow);
    json_segments(o, rec);
    pp_puts(o, ",");
    json_gil_holders(o, &v->gil);
    pp_puts(o, ",");
    json_stacks(o, &v->p);
    if (v->failed) {
        pp_puts(o, ",\"error\":\"out of memory reading the stacks\"");
    }
    pp_puts(o, "}\n");
}

void pp_render_location_json(pp_sink_t *o, const pp_ov_location_t *l,
                             const pp_profile_t *p, const pp_render_opts_t *opt)
{
    json_member(o, "{\"path\":", l->path);
    json_member(o, ",\"app_root\":", l->root);
    pp_printf(o,
              ",\"interval_ms\":%.3f,\"requests\":%llu,\"window_s\":%lld,"
              "\"view\":\"%s\",\"samples\":%llu,\"weight_ms\":%.3f,"
              "\"cpu_ms\":%.3f,",
              l->interval_us / 1000.0, (unsigned long long)l->s.requests,
              (long long)(opt->since_us / 1000000),
              opt->side == PP_SIDE_SLOW
                  ? "slow"
                  : (opt->side == PP_SIDE_REST ? "rest" : "all"),
              (unsigned long long)p->samples, p->weight_us / 1e3,
              p->cpu_us / 1e3);
    pp_printf(o, "\"gil_wait_ms\":%.3f,\"gil_blocking_ms\":%.3f,",
              l->gil_wait_us / 1e3, l->gil_blocking_us / 1e3);
    json_stacks(o, p);
    pp_puts(o, "}\n");
}
