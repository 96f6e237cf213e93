/* store_write_cost.c: what the store's hot writes cost on one thread with
 * no contention: the sampler's pp_store_sample, and a request's claim,
 * segment begin/end and finish.  Prints ns per operation; for instruction
 * counts run it under callgrind with fewer requests:
 *
 *   make build/store_write_cost
 *   build/store_write_cost              # 40,000 requests x 50 samples
 *   valgrind --tool=callgrind build/store_write_cost 2000
 *
 * A benchmark, not a test: nothing here fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "pp_store.h"
#include "pp_store_testing.h"

#define SAMPLES 50

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    const char *err = NULL;
    pp_store_t *st = pp_store_create(8ULL << 20, 64, 16, &err);
    int requests = argc > 1 ? atoi(argv[1]) : 40000;
    int loc, r, s;
    uint32_t node;
    pp_req_info_t info;
    double t0, t_samples = 0, t_requests = 0;

    if (!st || requests <= 0) {
        fprintf(stderr, "usage: %s [REQUESTS]; store: %s\n", argv[0],
                err ? err : "ok");
        return 1;
    }
    loc = pp_store_location_register(st, "/app", 10000);
    node = pp_store_intern_node(
        st, 0, pp_store_intern_frame(st, "view", 4, "app.py", 6, 1));
    pp_testing_req_info(&info, "bench", "/app/x", "h:80", loc, 10000, 128,
                        1700000000000000LL);
    for (r = 0; r < requests; r++) {
        int idx;
        uint64_t serial;
        uint32_t g;

        t0 = now_s();
        idx = pp_store_claim(st, &info, r);
        serial = pp_store_slot(st, idx)->rec.req.serial;
        g = pp_store_segment_begin(st, idx, serial, "sql", "q",
                                   info.start_us + 1);
        pp_store_segment_end(st, idx, serial, g, info.start_us + 2);
        t_requests += now_s() - t0;
        t0 = now_s();
        for (s = 0; s < SAMPLES; s++) {
            pp_store_sample(st, idx, serial, node, info.start_us + s, 10000,
                            5000, PP_SAMPLE_ON_CPU);
        }
        t_samples += now_s() - t0;
        t0 = now_s();
        pp_store_finish(st, idx, 200, 1000, 10, PP_KEEP_NONE);
        t_requests += now_s() - t0;
    }
    printf("%d requests, %llu samples: %.1f ns per pp_store_sample, "
           "%.1f ns per claim + segment + finish\n",
           requests, (unsigned long long)atomic_load(&st->c.samples),
           t_samples * 1e9 / ((double)requests * SAMPLES),
           t_requests * 1e9 / requests);
    pp_store_destroy(st);
    return 0;
}
