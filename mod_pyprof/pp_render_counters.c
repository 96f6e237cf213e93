/* pp_render_counters.c: the store's counters as one table, after mod_md's
 * status_infos[]: a row names a counter once (its JSON key, its
 * Prometheus metric and HELP, its card on the HTML overview) and says
 * where to read it, and the three outputs iterate the rows.  A new
 * counter is one row here.
 *
 * Rows are in the Prometheus order: the rows of one metric family
 * (pyprof_dropped_total by reason) follow each other.
 */
#include <stddef.h>

#include "pp_render_int.h"

#define AT(field) offsetof(pp_counters_t, field)

static const char DROPPED_HELP[] = "Data the store had no room for, by reason.";

const pp_counter_t pp_store_counters[] = {
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

const size_t pp_store_ncounters =
    sizeof(pp_store_counters) / sizeof(pp_store_counters[0]);

uint64_t pp_counter_read(const pp_store_t *st, const pp_counter_t *c)
{
    const _Atomic uint64_t *v =
        (const _Atomic uint64_t *)((const char *)&st->c + c->offset);

    return atomic_load(v);
}

uint64_t pp_counters_dropped(const pp_store_t *st)
{
    uint64_t sum = 0;
    size_t i;

    for (i = 0; i < pp_store_ncounters; i++) {
        if (pp_store_counters[i].flags & PP_CTR_DROPPED) {
            sum += pp_counter_read(st, &pp_store_counters[i]);
        }
    }
    return sum;
}
