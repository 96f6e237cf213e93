/* pp_store_testing.c: see pp_store_testing.h.  Built into the unit tests,
 * fuzzers and benchmarks only; it may use the store's private header
 * because it stands in for the sampler. */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "pp_store_int.h"
#include "pp_store_testing.h"

void pp_store_add_sample(pp_store_t *st, pp_slot_t *slot, uint32_t node,
                         int64_t now_us, uint64_t weight_us, uint64_t cpu_us)
{
    pp_store_add_sample_ex(st, slot, node, now_us, weight_us, cpu_us,
                           cpu_us * 2 >= weight_us ? PP_SAMPLE_ON_CPU
                                                   : PP_SAMPLE_OFF_CPU);
}

void pp_store_add_sample_ex(pp_store_t *st, pp_slot_t *slot, uint32_t node,
                            int64_t now_us, uint64_t weight_us, uint64_t cpu_us,
                            int how)
{
    if (node == 0 || !pp_slot_token_take_counted(st, slot)) {
        return;
    }
    pp_store_record_sample(st, &slot->rec, node, now_us, weight_us, cpu_us,
                           how);
    pp_slot_token_release(slot);
}

int pp_store_read_slot(const pp_store_t *st, uint32_t i, pp_record_t *out)
{
    const pp_slot_t *slot;

    if (i >= st->nslots) {
        return 0;
    }
    slot = (const pp_slot_t *)((const char *)st + st->off_slots) + i;
    if (PP_SLOT_PHASE(atomic_load(&slot->state)) != PP_SLOT_ACTIVE) {
        return 0;
    }
    return pp_store_read_record(&slot->rec, out);
}

void pp_testing_req_info(pp_req_info_t *info, const char *id, const char *uri,
                         const char *vhost, int loc, uint32_t interval_us,
                         uint32_t max_depth, int64_t start_us)
{
    memset(info, 0, sizeof(*info));
    info->id = id;
    info->method = "GET";
    info->uri = uri;
    info->vhost = vhost;
    info->pid = (int32_t)getpid();
    info->location = loc;
    info->interval_us = interval_us;
    info->max_depth = max_depth;
    info->start_us = start_us;
}
