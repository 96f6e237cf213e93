/* pp_api.c: the table in pp_api.h, over the store and the sampler.  Holds
 * no state of its own beyond the store pointer the glue hands it; never
 * calls into Python (the sampler does, on its own thread) but to hook the
 * allocators for PyProfAllocations at sampler_start (pp_py_alloc.c; the
 * caller holds the GIL).
 */
#include <string.h>
#include <unistd.h>

#include "pp_alloc.h"
#include "pp_api.h"
#include "pp_api_impl.h"
#include "pp_py_alloc.h"
#include "pp_sampler.h"
#include "pp_store.h"

static pp_store_t *api_store;

void pp_api_set_store(pp_store_t *st)
{
    api_store = st;
}

static int api_attached(void)
{
    return api_store != NULL;
}

static int api_sampler_start(void)
{
    const char *why;

    if (!api_store || pp_sampler_start(api_store) != 0) {
        return -1;
    }
    /* a daemon's allocations from here on (failure: not profiled) */
    if (api_store->alloc_mean) {
        pp_py_alloc_install(api_store, api_store->alloc_mean, &why);
    }
    return 0;
}

static int api_sampler_stop(int timeout_ms)
{
    pp_py_alloc_disable();
    return pp_sampler_stop(timeout_ms);
}

static int api_daemon_begin(const char *id, const char *process_group,
                            const char *app_group)
{
    uint64_t serial;
    uint32_t interval_us, max_depth;
    int slot;

    if (!api_store || !pp_sampler_running()) {
        return -1;
    }
    slot = pp_store_adopt(api_store, id, (int32_t)getpid(), process_group,
                          app_group, &serial, &interval_us, &max_depth);
    if (slot < 0) {
        return -1;
    }
    if (pp_sampler_register(slot, serial, interval_us, max_depth) != 0) {
        return -1;
    }
    pp_alloc_begin(slot, serial);
    return slot;
}

static void api_daemon_end(int slot)
{
    uint64_t serial;
    int cur;
    int64_t cpu_ns;

    /* the serial before unregistering: the CPU time belongs to it */
    if (!pp_sampler_current(&cur, &serial) || cur != slot) {
        pp_sampler_unregister(slot);
        return;
    }
    if (api_store) {
        pp_alloc_end(api_store, slot, serial);
    }
    cpu_ns = pp_sampler_unregister_cpu(slot);
    if (api_store && cpu_ns >= 0) {
        pp_store_note_daemon_cpu(api_store, slot, serial, cpu_ns / 1000);
    }
}

static int api_current(int *slot, uint64_t *serial, char *id, size_t idcap)
{
    pp_slot_t *s;
    pp_req_t q;

    if (!api_store || !pp_sampler_current(slot, serial)) {
        return 0;
    }
    s = pp_store_slot(api_store, *slot);
    if (!s || !pp_store_read_req(&s->rec, &q) || q.serial != *serial) {
        return 0;
    }
    if (id && idcap) {
        size_t n = strnlen(q.id, idcap - 1);
        memcpy(id, q.id, n);
        id[n] = '\0';
    }
    return 1;
}

static uint32_t api_segment_begin(int slot, uint64_t serial, const char *name,
                                  const char *detail)
{
    return api_store ? pp_store_segment_begin(api_store, slot, serial, name,
                                              detail, pp_wall_us())
                     : 0;
}

static void api_segment_end(int slot, uint64_t serial, uint32_t segment)
{
    if (api_store) {
        pp_store_segment_end(api_store, slot, serial, segment, pp_wall_us());
    }
}

static const pp_api_t api = {
    PP_API_VERSION,   sizeof(pp_api_t),   api_attached,     api_sampler_start,
    api_sampler_stop, pp_sampler_running, api_daemon_begin, api_daemon_end,
    api_current,      api_segment_begin,  api_segment_end};

const pp_api_t *pp_api_table(void)
{
    return &api;
}
