/* pp_metrics.c: Prometheus text exposition (version 0.0.4) of the
 * locations' response times by status class, in-flight requests and the
 * store's counters.  Metric names and HELP texts are an interface:
 * dashboards and alerts use them.
 */
#include <stdio.h>
#include <string.h>

#include "pp_render_int.h"

static const char *const CLASS_NAMES[PP_STATUS_CLASSES] = {
    "1xx", "2xx", "3xx", "4xx", "5xx", "other"};

/* The store's counters, a family at a time: the rows of one metric are
 * written together under one HELP and TYPE, wherever they sit in the
 * table. */
static void store_counters(pp_sink_t *o, const pp_store_t *st)
{
    size_t i, j, k;

    for (i = 0; i < pp_store_ncounters; i++) {
        const char *metric = pp_store_counters[i].metric;

        if (!metric) {
            continue;
        }
        for (k = 0; k < i; k++) { /* written with an earlier row */
            const char *prev = pp_store_counters[k].metric;
            if (prev && strcmp(prev, metric) == 0) {
                break;
            }
        }
        if (k < i) {
            continue;
        }
        pp_printf(o, "# HELP %s %s\n# TYPE %s counter\n", metric,
                  pp_store_counters[i].help, metric);
        for (j = i; j < pp_store_ncounters; j++) {
            const pp_counter_t *c = &pp_store_counters[j];
            if (!c->metric || strcmp(c->metric, metric) != 0) {
                continue;
            }
            pp_puts(o, metric);
            if (c->label) {
                pp_printf(o, "{%s}", c->label);
            }
            pp_printf(o, " %llu\n", (unsigned long long)pp_counter_read(st, c));
        }
    }
}

void pp_render_metrics(pp_sink_t *o, const pp_store_t *st,
                       const pp_render_opts_t *opt)
{
    int i, c, b;
    uint32_t k;
    uint64_t inflight[PP_MAX_LOCATIONS] = {0};

    for (k = 0; k < st->nslots; k++) {
        pp_req_t q;
        if (pp_read_inflight(st, k, &q) && q.location >= 0 &&
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
        if (!pp_location_current(st, loc)) {
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
                pp_puts(o,
                        "pyprof_request_duration_seconds_bucket{location=\"");
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
        if (!pp_location_current(st, loc)) {
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
              "pyprof_sampler_gil_wait_seconds_total %.6f\n",
              (unsigned long long)atomic_load(&st->c.samples),
              atomic_load(&st->c.sampler_cpu_ns) / 1e9,
              atomic_load(&st->c.gil_wait_ns) / 1e9);
    store_counters(o, st);
    pp_printf(o,
              "# HELP pyprof_store_bytes Shared store size and frame text "
              "in use.\n"
              "# TYPE pyprof_store_bytes gauge\n"
              "pyprof_store_bytes{kind=\"size\"} %llu\n"
              "pyprof_store_bytes{kind=\"frame_text_used\"} %llu\n",
              (unsigned long long)st->total_size,
              (unsigned long long)pp_store_arena_used(st));
    (void)opt;
}
