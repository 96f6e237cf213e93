/* render_bench.c: how long the pages take to render from a full store.
 *
 * Builds a store the way the module does, fills it with 2,000 kept traces
 * (realistic 25-frame stacks over a few hundred functions) and one request
 * with 5,000 samples, then times the overview (HTML and JSON) and the
 * request detail (HTML, JSON, folded, speedscope, pprof), writing into a
 * sink that only counts bytes.  Median of 21 runs, in milliseconds.
 *
 *   make render-bench
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pp_export.h"
#include "pp_profile.h"
#include "pp_render.h"
#include "pp_store.h"

#define RUNS 21

static size_t bytes;

static void count_write(void *ctx, const char *s, size_t n)
{
    (void)ctx;
    (void)s;
    bytes += n;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static uint32_t rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* a stack of `depth` frames drawn from a tree-shaped call graph */
static uint32_t make_stack(pp_store_t *st, uint32_t *seed, int depth)
{
    uint32_t node = 0, f;
    int d;
    char fn[64], file[64];

    for (d = 0; d < depth; d++) {
        /* a few callees per frame, most calls along a hot path: a few
         * thousand distinct stacks, as real apps have */
        uint32_t r = rnd(seed) % 16;
        uint32_t pick = r < 10 ? 0 : (r < 14 ? 1 : r - 12);
        snprintf(fn, sizeof(fn), "module%d.Class%u.method_%u", d % 7, pick,
                 d);
        snprintf(file, sizeof(file), "/srv/app/pkg%d/module%d.py", d % 5,
                 d % 7);
        f = pp_store_intern_frame(st, fn, strlen(fn), file, strlen(file),
                                  10 + d * 3 + pick);
        node = pp_store_intern_node(st, node, f);
    }
    return node;
}

typedef void (*render_fn)(pp_sink_t *, const pp_store_t *,
                          const pp_record_t *, const pp_render_opts_t *);

static double time_it(const char *label, void (*fn)(void *), void *arg)
{
    double t[RUNS];
    int i;

    for (i = 0; i < RUNS; i++) {
        double t0 = now_ms();
        bytes = 0;
        fn(arg);
        t[i] = now_ms() - t0;
    }
    qsort(t, RUNS, sizeof(double), cmp_double);
    printf("| %-34s | %8.2f | %8.2f | %9zu |\n", label, t[RUNS / 2],
           t[RUNS - 1], bytes);
    return t[RUNS / 2];
}

static pp_store_t *st;
static pp_render_opts_t opt;
static pp_record_t big;

static void overview_html(void *a)
{
    pp_sink_t o = {count_write, NULL};
    (void)a;
    pp_render_overview_html(&o, st, &opt);
}

static void overview_json(void *a)
{
    pp_sink_t o = {count_write, NULL};
    (void)a;
    pp_render_overview_json(&o, st, &opt);
}

static void request_html(void *a)
{
    pp_sink_t o = {count_write, NULL};
    (void)a;
    pp_render_request_html(&o, st, &big, 0, &opt);
}

static void request_json(void *a)
{
    pp_sink_t o = {count_write, NULL};
    (void)a;
    pp_render_request_json(&o, st, &big, 0, &opt);
}

static void request_folded(void *a)
{
    pp_sink_t o = {count_write, NULL};
    (void)a;
    pp_render_request_folded(&o, st, &big);
}

static void request_pprof(void *a)
{
    pp_profile_t p;
    pp_bytes_t out;
    (void)a;
    pp_profile_init(&p);
    pp_profile_add_record(&p, &big);
    pp_export_pprof(&out, st, &p, NULL, 0, 0, 0, 10000000);
    bytes = out.len;
    free(out.data);
    pp_profile_free(&p);
}

static void location_html(void *a)
{
    pp_sink_t o = {count_write, NULL};
    (void)a;
    pp_render_location_html(&o, st, 0, &opt);
}

int main(void)
{
    const char *err = NULL;
    uint32_t seed = 12345, i, k;
    int loc, slot;
    pp_req_info_t info;

    st = pp_store_create(160ULL << 20, 64, 2000, &err);
    if (!st) {
        fprintf(stderr, "store: %s\n", err);
        return 1;
    }
    loc = pp_store_location_register(st, "/app", 10000);
    memset(&info, 0, sizeof(info));
    info.method = "GET";
    info.vhost = "www.example.com:80";
    info.pid = getpid();
    info.location = loc;
    info.interval_us = 10000;
    info.max_depth = 128;
    /* 2,000 kept traces, ~40 samples over ~12 stacks each */
    for (i = 0; i < 2000; i++) {
        char id[32], uri[64];
        snprintf(id, sizeof(id), "req%06u", i);
        snprintf(uri, sizeof(uri), "/app/orders/%u/report?...", i);
        info.id = id;
        info.uri = uri;
        info.start_us = 1700000000000000LL + i * 1000;
        slot = pp_store_claim(st, &info, (int)i);
        for (k = 0; k < 40; k++) {
            pp_store_add_sample(st, pp_store_slot(st, slot),
                                make_stack(st, &seed, 25), 0, 10000, 5000);
        }
        pp_store_finish(st, slot, 200, 500000 + (int64_t)(rnd(&seed) % 2000000),
                        200000, PP_KEEP_SLOW);
    }
    /* one request with 5,000 samples (the record keeps 255 distinct
     * stacks and folds the rest into [other stacks]) */
    info.id = "big";
    info.uri = "/app/big";
    slot = pp_store_claim(st, &info, 7);
    for (k = 0; k < 5000; k++) {
        pp_store_add_sample(st, pp_store_slot(st, slot),
                            make_stack(st, &seed, 30), 0, 10000, 6000);
    }
    pp_store_read_record(&pp_store_slot(st, slot)->rec, &big);
    pp_render_opts_init(&opt);
    opt.base = "/server-profile";
    opt.now_us = 1700000100000000LL;

    printf("| page (median of %d runs)           |   median |      max |     bytes |\n", RUNS);
    printf("|------------------------------------|---------:|---------:|----------:|\n");
    time_it("overview HTML, 2,000 kept traces", overview_html, NULL);
    time_it("overview JSON, 2,000 kept traces", overview_json, NULL);
    time_it("request HTML, 5,000 samples", request_html, NULL);
    time_it("request JSON, 5,000 samples", request_json, NULL);
    time_it("request folded, 5,000 samples", request_folded, NULL);
    time_it("request pprof, 5,000 samples", request_pprof, NULL);
    {
        pp_profile_t p;
        pp_tree_t t;
        pp_profile_init(&p);
        pp_render_location_profile(&p, st, 0, opt.now_us, 0, PP_SIDE_ALL);
        pp_tree_build(&t, st, &p);
        printf("(location: %zu distinct stacks, %llu samples, %u tree "
               "nodes)\n", p.n, (unsigned long long)p.samples, t.n);
        pp_tree_free(&t);
        pp_profile_free(&p);
    }
    time_it("location HTML, 80,000 samples", location_html, NULL);
    pp_store_destroy(st);
    return 0;
}
