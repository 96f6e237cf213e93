/* pp_metrics.c: Prometheus text exposition (version 0.0.4) of the
 * locations' response times by status class, in-flight requests and the
 * store's counters, from the overview's snapshot (pp_overview.h): it
 * reads nothing else.  Metric names and HELP texts are an interface:
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
static void store_counters(pp_sink_t *o, const pp_counters_t *ctr)
{
    size_t i, j, k;

    for (i = 0; i < pp_counter_nrows; i++) {
        const char *metric = pp_counter_rows[i].metric;

        if (!metric) {
            continue;
        }
        for (k = 0; k < i; k++) { /* written with an earlier row */
            const char *prev = pp_counter_rows[k].metric;
            if (prev && strcmp(prev, metric) == 0) {
                break;
            }
        }
        if (k < i) {
            continue;
        }
        pp_printf(o, "# HELP %s %s\n# TYPE %s counter\n", metric,
                  pp_counter_rows[i].help, metric);
        for (j = i; j < pp_counter_nrows; j++) {
            const pp_counter_t *c = &pp_counter_rows[j];
            if (!c->metric || strcmp(c->metric, metric) != 0) {
                continue;
            }
            pp_puts(o, metric);
            if (c->label) {
                pp_printf(o, "{%s}", c->label);
            }
            pp_printf(o, " %llu\n",
                      (unsigned long long)pp_counter_read(ctr, c));
        }
    }
}

/* One series of the duration histogram: its name's suffix, then the
 * location and status class labels. */
static void duration_series(pp_sink_t *o, const char *suffix,
                            const pp_ov_location_t *l, int c)
{
    pp_printf(o, "pyprof_request_duration_seconds_%s{location=\"", suffix);
    pp_put_prom_label(o, l->path, strlen(l->path));
    pp_printf(o, "\",status_class=\"%s\"", CLASS_NAMES[c]);
}

/* PyProfAllocations (only when it is on): sampled estimates, per
 * location, added at each request's end. */
static void alloc_metrics(pp_sink_t *o, const pp_overview_t *ov)
{
    size_t i;

    pp_puts(o, "# HELP pyprof_alloc_bytes_total Bytes of Python "
               "allocations made by requests under a PyProfSample prefix "
               "(estimated from sampled allocations, PyProfAllocations).\n"
               "# TYPE pyprof_alloc_bytes_total counter\n");
    for (i = 0; i < ov->nloc; i++) {
        pp_puts(o, "pyprof_alloc_bytes_total{location=\"");
        pp_put_prom_label(o, ov->loc[i].path, strlen(ov->loc[i].path));
        pp_printf(o, "\"} %llu\n", (unsigned long long)ov->loc[i].alloc_bytes);
    }
    pp_puts(o, "# HELP pyprof_alloc_retained_bytes_total Of "
               "pyprof_alloc_bytes_total, the bytes still allocated when "
               "their request ended (estimated).\n"
               "# TYPE pyprof_alloc_retained_bytes_total counter\n");
    for (i = 0; i < ov->nloc; i++) {
        pp_puts(o, "pyprof_alloc_retained_bytes_total{location=\"");
        pp_put_prom_label(o, ov->loc[i].path, strlen(ov->loc[i].path));
        pp_printf(o, "\"} %llu\n",
                  (unsigned long long)ov->loc[i].alloc_retained);
    }
    pp_printf(o,
              "# HELP pyprof_alloc_outside_bytes_total Bytes of Python "
              "allocations made by threads serving no profiled request "
              "(estimated; added as requests end).\n"
              "# TYPE pyprof_alloc_outside_bytes_total counter\n"
              "pyprof_alloc_outside_bytes_total %llu\n"
              "# HELP pyprof_alloc_untracked_total Sampled allocations "
              "whose free could not be tracked (a process's live set was "
              "full).\n"
              "# TYPE pyprof_alloc_untracked_total counter\n"
              "pyprof_alloc_untracked_total %llu\n",
              (unsigned long long)ov->c.alloc_outside_bytes,
              (unsigned long long)ov->c.alloc_live_full);
}

void pp_render_metrics(pp_sink_t *o, const pp_overview_t *ov,
                       const pp_render_opts_t *opt)
{
    size_t i;
    int c, b;

    pp_puts(o, "# HELP pyprof_request_duration_seconds Response time of "
               "requests under a PyProfSample prefix.\n"
               "# TYPE pyprof_request_duration_seconds histogram\n");
    for (i = 0; i < ov->nloc; i++) {
        const pp_ov_location_t *l = &ov->loc[i];
        for (c = 0; c < PP_STATUS_CLASSES; c++) {
            uint64_t cum = 0, total = 0;
            for (b = 0; b < PP_HIST_BUCKETS; b++) {
                total += l->class_hist[c][b];
            }
            if (!total) {
                continue;
            }
            /* every fourth edge: 17 buckets from 1 ms to 60 s */
            for (b = 0; b < PP_HIST_BUCKETS - 1; b++) {
                cum += l->class_hist[c][b];
                if (b % 4 != 0) {
                    continue;
                }
                duration_series(o, "bucket", l, c);
                pp_printf(o, ",le=\"%.6g\"} %llu\n", pp_hist_hi_us(b) / 1e6,
                          (unsigned long long)cum);
            }
            duration_series(o, "bucket", l, c);
            pp_printf(o, ",le=\"+Inf\"} %llu\n", (unsigned long long)total);
            duration_series(o, "sum", l, c);
            pp_printf(o, "} %.6f\n", l->class_sum_us[c] / 1e6);
            duration_series(o, "count", l, c);
            pp_printf(o, "} %llu\n", (unsigned long long)total);
        }
    }
    pp_puts(o, "# HELP pyprof_inflight_requests Profiled requests running "
               "now, in every process.\n"
               "# TYPE pyprof_inflight_requests gauge\n");
    for (i = 0; i < ov->nloc; i++) {
        pp_puts(o, "pyprof_inflight_requests{location=\"");
        pp_put_prom_label(o, ov->loc[i].path, strlen(ov->loc[i].path));
        pp_printf(o, "\"} %llu\n", (unsigned long long)ov->loc[i].inflight);
    }
    pp_puts(o, "# HELP pyprof_gil_wait_seconds_total Time requests under a "
               "PyProfSample prefix waited for the GIL (sampled wall time; "
               "not the samplers' own wait, which is "
               "pyprof_sampler_gil_wait_seconds_total).\n"
               "# TYPE pyprof_gil_wait_seconds_total counter\n");
    for (i = 0; i < ov->nloc; i++) {
        pp_puts(o, "pyprof_gil_wait_seconds_total{location=\"");
        pp_put_prom_label(o, ov->loc[i].path, strlen(ov->loc[i].path));
        pp_printf(o, "\"} %.6f\n", ov->loc[i].gil_wait_us / 1e6);
    }
    pp_puts(o, "# HELP pyprof_gil_blocking_seconds_total Time other "
               "requests waited for the GIL while a request under this "
               "prefix held it (location=\"\": held by a thread serving no "
               "profiled request).\n"
               "# TYPE pyprof_gil_blocking_seconds_total counter\n");
    for (i = 0; i < ov->nloc; i++) {
        pp_puts(o, "pyprof_gil_blocking_seconds_total{location=\"");
        pp_put_prom_label(o, ov->loc[i].path, strlen(ov->loc[i].path));
        pp_printf(o, "\"} %.6f\n", ov->loc[i].gil_blocking_us / 1e6);
    }
    pp_printf(o, "pyprof_gil_blocking_seconds_total{location=\"\"} %.6f\n",
              ov->c.gil_blocking_no_request_us / 1e6);
    if (ov->alloc_mean) {
        alloc_metrics(o, ov);
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
              "samplers waited for the GIL (PyProfSampler gil; requests' "
              "waits are pyprof_gil_wait_seconds_total).\n"
              "# TYPE pyprof_sampler_gil_wait_seconds_total counter\n"
              "pyprof_sampler_gil_wait_seconds_total %.6f\n"
              "# HELP pyprof_sampler_phase_seconds_total Wall time the "
              "sampler threads spent per phase of a tick: reading stacks, "
              "classifying the samples, storing them.\n"
              "# TYPE pyprof_sampler_phase_seconds_total counter\n"
              "pyprof_sampler_phase_seconds_total{phase=\"walk\"} %.6f\n"
              "pyprof_sampler_phase_seconds_total{phase=\"classify\"} %.6f\n"
              "pyprof_sampler_phase_seconds_total{phase=\"store\"} %.6f\n",
              (unsigned long long)ov->c.samples, ov->c.sampler_cpu_ns / 1e9,
              ov->c.gil_wait_ns / 1e9, ov->c.walk_ns / 1e9,
              ov->c.classify_ns / 1e9, ov->c.store_ns / 1e9);
    store_counters(o, &ov->c);
    pp_printf(o,
              "# HELP pyprof_store_bytes Shared store size and frame text "
              "in use.\n"
              "# TYPE pyprof_store_bytes gauge\n"
              "pyprof_store_bytes{kind=\"size\"} %llu\n"
              "pyprof_store_bytes{kind=\"frame_text_used\"} %llu\n",
              (unsigned long long)ov->total_size,
              (unsigned long long)ov->arena_used);
    (void)opt;
}
