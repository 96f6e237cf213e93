/* pp_store_testing.h: store writes and reads that only tests, fuzzers and
 * benchmarks make (tests/support/pp_store_testing.c).  Never linked into
 * the module: the module's sampler writes through pp_store_sample, which
 * checks that the slot still holds the request it sampled and that this
 * process samples it.
 */
#ifndef PP_STORE_TESTING_H
#define PP_STORE_TESTING_H

#include <stdint.h>

#include "pp_store.h"

/* Add one sample to a slot's record, whichever request it holds and
 * whoever samples it.  Takes the slot's token and brackets the change
 * with the record's sequence counter.  Classified on CPU when the CPU
 * time is at least half the weight, else off CPU. */
void pp_store_add_sample(pp_store_t *st, pp_slot_t *slot, uint32_t node,
                         int64_t now_us, uint64_t weight_us, uint64_t cpu_us);
/* The same with how the interval was spent (PP_SAMPLE_*). */
void pp_store_add_sample_ex(pp_store_t *st, pp_slot_t *slot, uint32_t node,
                            int64_t now_us, uint64_t weight_us, uint64_t cpu_us,
                            int how);

/* Request info for a GET of `uri` on `vhost` (NULL: none) by this process
 * at location `loc`, sampled every `interval_us` down to `max_depth`
 * frames, started at `start_us`; every other field zero. */
void pp_testing_req_info(pp_req_info_t *info, const char *id, const char *uri,
                         const char *vhost, int loc, uint32_t interval_us,
                         uint32_t max_depth, int64_t start_us);

/* A snapshot of in-flight slot i's record, if the slot is active. */
int pp_store_read_slot(const pp_store_t *st, uint32_t i, pp_record_t *out);

#endif
