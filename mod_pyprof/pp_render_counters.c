/* pp_render_counters.c: the store's counters as one table, after mod_md's
 * status_infos[]: a row names a counter once (its JSON key, its
 * Prometheus metric and HELP, its card on the HTML overview) and says
 * where to read it in the overview's copy of the counters
 * (pp_overview_t), and the three outputs iterate the rows.  A new
 * counter is one row here.
 *
 * Rows are in the Prometheus order: the rows of one metric family
 * (pyprof_dropped_total by reason) follow each other.
 */
#include <stddef.h>

#include "pp_render_int.h"

#define AT(field) offsetof(pp_counters_t, field)

static const char DROPPED_HELP[] = "Data the store had no room for, by reason.";

const pp_counter_t pp_counter_rows[] = {
    {"traces_kept", "pyprof_traces_kept_total", NULL,
     "Slow-request traces kept.", NULL, AT(traces_kept), 0},
    {"traces_evicted", "pyprof_traces_evicted_total", NULL,
     "Kept traces overwritten by newer ones.", "traces evicted (oldest first)",
     AT(traces_evicted), 0},
    {"traces_dropped", "pyprof_dropped_total", "reason=\"trace_busy\"",
     DROPPED_HELP, NULL, AT(traces_torn), PP_CTR_DROPPED},
    {"slots_full", "pyprof_dropped_total", "reason=\"slots_full\"",
     DROPPED_HELP, NULL, AT(slots_full), PP_CTR_DROPPED},
    {"frames_full", "pyprof_dropped_total", "reason=\"frames_full\"",
     DROPPED_HELP, NULL, AT(frames_full), PP_CTR_DROPPED},
    {"nodes_full", "pyprof_dropped_total", "reason=\"nodes_full\"",
     DROPPED_HELP, NULL, AT(nodes_full), PP_CTR_DROPPED},
    {"aggregate_full", "pyprof_dropped_total", "reason=\"aggregate_full\"",
     DROPPED_HELP, NULL, AT(agg_full), PP_CTR_DROPPED},
    {"stacks_overflow", "pyprof_dropped_total", "reason=\"stacks_overflow\"",
     DROPPED_HELP, NULL, AT(stacks_overflow), PP_CTR_DROPPED},
    /* a request whose process died: lost, not for want of room */
    {"slots_lost", "pyprof_dropped_total", "reason=\"lost\"", DROPPED_HELP,
     "lost (process died or connection dropped)", AT(slots_lost), 0},
    {"writes_dropped", "pyprof_dropped_total", "reason=\"writer_busy\"",
     DROPPED_HELP, NULL, AT(writes_dropped), PP_CTR_DROPPED},
    {"slots_reaped", "pyprof_slots_reaped_total", NULL,
     "Request slots freed because the process holding them died (part of "
     "reason=\"lost\").",
     NULL, AT(slots_reaped), 0},
    /* graceful-restart renewals: the HTML says so in a notice */
    {"renewals", NULL, NULL, NULL, NULL, AT(renewals), 0},
    {"locations_reclaimed", NULL, NULL, NULL, NULL, AT(locations_reclaimed), 0},
    {"renewed_us", NULL, NULL, NULL, NULL, AT(renewed_us), 0},
};

const size_t pp_counter_nrows =
    sizeof(pp_counter_rows) / sizeof(pp_counter_rows[0]);

uint64_t pp_counter_read(const pp_counters_t *c, const pp_counter_t *row)
{
    const _Atomic uint64_t *v =
        (const _Atomic uint64_t *)((const char *)c + row->offset);

    return atomic_load(v);
}

uint64_t pp_counters_dropped(const pp_counters_t *c)
{
    uint64_t sum = 0;
    size_t i;

    for (i = 0; i < pp_counter_nrows; i++) {
        if (pp_counter_rows[i].flags & PP_CTR_DROPPED) {
            sum += pp_counter_read(c, &pp_counter_rows[i]);
        }
    }
    return sum;
}

/* Per-sample cost quantile from the log2 histogram (upper edge, ns). */
double pp_cost_quantile_us(const pp_counters_t *c, double q)
{
    uint64_t total = 0, seen = 0;
    int b;

    for (b = 0; b < PP_COST_BUCKETS; b++) {
        total += atomic_load(&c->sample_cost[b]);
    }
    if (!total) {
        return 0;
    }
    for (b = 0; b < PP_COST_BUCKETS; b++) {
        seen += atomic_load(&c->sample_cost[b]);
        if ((double)seen >= q * (double)total) {
            /* bucket b holds [2^b, 2^(b+1)) ns: report its geometric mid */
            return (double)(1ULL << b) * 1.41421356 / 1000.0;
        }
    }
    return 0;
}
