/* render_bench.c: how long the pages take to render from a full store.
 *
 * Builds a store the way the module does, fills it with 2,000 kept traces
 * (realistic 25-frame stacks over a few hundred functions) and one request
 * with 5,000 samples, then times the overview (HTML and JSON) and the
 * request detail (HTML, JSON, folded, speedscope, pprof), writing into a
 * sink that only counts bytes.  Median of 21 runs, in milliseconds.
 *
 * Then the worst case one can build with the module's own limits: a
 * location of 66,000 distinct stacks, every one PyProfMaxDepth 1024
 * frames deep with no function twice on a stack (the most a "seen" list
 * per stack can cost), branching so the call tree has millions of
 * distinct paths, half of its requests on the slow side.  It renders the
 * location page and the diff view once each, in a child process that
 * reports its own time and peak memory over the store it inherited.
 *
 *   make render-bench
 *   build/render_bench worst [location|diff|json|pprof] [STACKS]
 *       one render (or export of the location) only,
 *       for /usr/bin/time -v and valgrind --tool=callgrind
 *       --toggle-collect=pp_location_page_load
 *       --toggle-collect=pp_render_location_html (the page is read, then
 *       written: both)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pp_export.h"
#include "pp_overview.h"
#include "pp_profile.h"
#include "pp_render.h"
#include "pp_store_testing.h"
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
        snprintf(fn, sizeof(fn), "module%d.Class%u.method_%u", d % 7, pick, d);
        snprintf(file, sizeof(file), "/srv/app/pkg%d/module%d.py", d % 5,
                 d % 7);
        f = pp_store_intern_frame(st, fn, strlen(fn), file, strlen(file),
                                  10 + d * 3 + pick);
        node = pp_store_intern_node(st, node, f);
    }
    return node;
}

typedef void (*render_fn)(pp_sink_t *, const pp_store_t *, const pp_record_t *,
                          const pp_render_opts_t *);

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

/* the overview's time is its read of the store and its render */
static void overview_html(void *a)
{
    pp_sink_t o = {count_write, NULL};
    pp_overview_t ov;
    (void)a;
    pp_overview_load(&ov, st, &opt, PP_OV_HTML);
    pp_render_overview_html(&o, &ov, &opt);
    pp_overview_free(&ov);
}

static void overview_json(void *a)
{
    pp_sink_t o = {count_write, NULL};
    pp_overview_t ov;
    (void)a;
    pp_overview_load(&ov, st, &opt, PP_OV_JSON);
    pp_render_overview_json(&o, &ov, &opt);
    pp_overview_free(&ov);
}

static void request_html(void *a)
{
    pp_sink_t o = {count_write, NULL};
    pp_request_page_t pg;
    (void)a;
    pp_request_page_load(&pg, st, &big, 0);
    pp_render_request_html(&o, &pg, &opt);
    pp_request_page_free(&pg);
}

static void request_json(void *a)
{
    pp_sink_t o = {count_write, NULL};
    pp_request_view_t v;
    (void)a;
    pp_request_load(&v, st, &big, 0);
    pp_render_request_json(&o, &v, &opt);
    pp_request_free(&v);
}

static void request_folded(void *a)
{
    pp_sink_t o = {count_write, NULL};
    pp_request_view_t v;
    (void)a;
    pp_request_load(&v, st, &big, 0);
    pp_render_request_folded(&o, &v);
    pp_request_free(&v);
}

static void request_pprof(void *a)
{
    pp_profile_t p;
    pp_bytes_t out;
    (void)a;
    pp_profile_init(&p);
    pp_profile_add_record(&p, &big);
    pp_profile_resolve(&p, st);
    pp_export_pprof(&out, &p, NULL, 0, 0, 0, 10000000);
    bytes = out.len;
    free(out.data);
    pp_profile_free(&p);
}

static void location_html(void *a)
{
    pp_sink_t o = {count_write, NULL};
    pp_location_page_t pg;
    (void)a;
    if (pp_location_page_load(&pg, st, 0, &opt) == 0) {
        pp_render_location_html(&o, &pg, &opt);
    }
    pp_location_page_free(&pg);
}

/* ---- the worst case ---- */

#define WORST_DEPTH 1024
#define WORST_VARIANTS 8 /* functions per depth: f<depth>_<variant> */
#define WORST_PER_REQUEST 128
#define WORST_MEMORY (256ULL << 20)

static uint32_t worst_frames[WORST_DEPTH][WORST_VARIANTS];

/* One store with a location "/worst" of `nstacks` distinct stacks. */
static pp_store_t *worst_store(uint32_t nstacks, int *loc_out)
{
    const char *err = NULL;
    pp_store_t *ws = pp_store_create(WORST_MEMORY, 8, 64, &err);
    uint32_t seed = 777, k, d, *leaves, chain[WORST_DEPTH];
    pp_req_info_t info;
    int loc, slot = -1, nreq = 0;

    if (!ws || !(leaves = calloc(nstacks, sizeof(*leaves)))) {
        fprintf(stderr, "store: %s\n", err ? err : "no memory");
        exit(1);
    }
    loc = pp_store_location_register(ws, "/worst", 10000);
    for (d = 0; d < WORST_DEPTH; d++) {
        for (k = 0; k < WORST_VARIANTS; k++) {
            char fn[48], file[48];
            snprintf(fn, sizeof(fn), "pkg.mod%u.Handler.step_%u_%u", d % 13, d,
                     k);
            snprintf(file, sizeof(file), "/srv/app/pkg/mod%u.py", d % 13);
            worst_frames[d][k] = pp_store_intern_frame(ws, fn, strlen(fn), file,
                                                       strlen(file), 10 + d);
        }
    }
    memset(&info, 0, sizeof(info));
    info.method = "GET";
    info.uri = "/worst/x";
    info.vhost = "www.example.com:80";
    info.pid = getpid();
    info.location = loc;
    info.interval_us = 10000;
    info.max_depth = WORST_DEPTH;
    for (k = 0; k < nstacks; k++) {
        /* branch off an earlier stack: the first 256 anywhere, the
         * others in their last 64 frames (what the node table holds) */
        uint32_t from = k ? rnd(&seed) % k : 0, at, node;
        uint32_t count = 1 + rnd(&seed) % 4;

        at = k == 0 ? 0
                    : (k < 256 ? rnd(&seed) % WORST_DEPTH
                               : WORST_DEPTH - 1 - rnd(&seed) % 64);
        node = leaves[from];
        for (d = WORST_DEPTH; d-- > 0;) {
            uint32_t parent, fr;
            chain[d] = node;
            if (node) {
                pp_store_node_get(ws, node, &parent, &fr);
                node = parent;
            }
        }
        node = at ? chain[at - 1] : 0;
        for (d = at; d < WORST_DEPTH; d++) {
            uint32_t v = rnd(&seed) % WORST_VARIANTS, pf, fr = 0;
            if (d == at && k && chain[d]) {
                /* not the frame the stack it branches from has here */
                pp_store_node_get(ws, chain[d], &pf, &fr);
                while (worst_frames[d][v] == fr) {
                    v = (v + 1) % WORST_VARIANTS;
                }
            }
            node = pp_store_intern_node(ws, node, worst_frames[d][v]);
        }
        leaves[k] = node;
        if (k % WORST_PER_REQUEST == 0) {
            char id[32];
            if (slot >= 0) {
                /* every other request slow: both sides of the diff big */
                pp_store_finish(ws, slot, 200, nreq % 2 ? 5000000 : 100000,
                                50000, PP_KEEP_NONE);
            }
            snprintf(id, sizeof(id), "w%06d", nreq++);
            info.id = id;
            info.start_us = 1700000000000000LL + nreq * 1000LL;
            slot = pp_store_claim(ws, &info, 0);
        }
        /* CPU-bound on even variants, waiting on odd ones */
        pp_store_add_sample(ws, pp_store_slot(ws, slot), node, 0,
                            count * 10000ULL,
                            (node & 1) ? count * 1000ULL : count * 9000ULL);
    }
    pp_store_finish(ws, slot, 200, nreq % 2 ? 5000000 : 100000, 50000,
                    PP_KEEP_NONE);
    free(leaves);
    *loc_out = loc;
    return ws;
}

static long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    size_t n = strlen(field);

    while (f && fgets(line, sizeof(line), f)) {
        if (strncmp(line, field, n) == 0) {
            kb = strtol(line + n, NULL, 10);
        }
    }
    if (f) {
        fclose(f);
    }
    return kb;
}

static int worst_loc;

static void worst_location(void *a)
{
    pp_sink_t o = {count_write, NULL};
    pp_render_opts_t wo = opt;
    int what = *(int *)a;
    pp_profile_t p;
    pp_bytes_t out;

    if (what < 2) {
        pp_location_page_t pg;
        wo.diff = what;
        if (pp_location_page_load(&pg, st, worst_loc, &wo) == 0) {
            pp_render_location_html(&o, &pg, &wo);
        }
        pp_location_page_free(&pg);
        return;
    }
    /* the exports are complete by design: their cost is the stacks' */
    pp_profile_init(&p);
    if (what == 2) {
        pp_ov_location_t l;
        pp_render_location_profile(&p, st, worst_loc, opt.now_us, 0,
                                   PP_SIDE_ALL);
        pp_location_load(&l, st, worst_loc);
        pp_render_location_json(&o, &l, &p, &wo);
    }
    else if (pp_profile_of_location(&p, st, worst_loc, opt.now_us, 0,
                                    PP_SIDE_ALL) == 0 &&
             pp_profile_resolve(&p, st) == 0 &&
             pp_export_pprof(&out, &p, NULL, 0, 0, 0, 10000000) == 0) {
        bytes = out.len;
        free(out.data);
    }
    pp_profile_free(&p);
}

/* One render in a child: its time, and its peak resident memory above
 * what it had when it began (the store's pages read in first, so only
 * the render's own memory counts). */
static void worst_measure(const char *label, int diff)
{
    struct rusage ru;
    int status, fd[2];
    pid_t pid;
    char res[128] = "";

    if (pipe(fd) != 0) {
        return;
    }
    pid = fork();
    if (pid == 0) {
        volatile const char *p = (const char *)st;
        uint64_t i;
        long base, peak;
        FILE *cr;
        double t0, t;

        for (i = 0; i < st->total_size; i += 4096) {
            (void)p[i];
        }
        if ((cr = fopen("/proc/self/clear_refs", "w"))) {
            fputs("5", cr); /* reset the peak (VmHWM) to now */
            fclose(cr);
        }
        base = status_kb("VmRSS:");
        t0 = now_ms();
        bytes = 0;
        worst_location(&diff);
        t = now_ms() - t0;
        peak = status_kb("VmHWM:");
        snprintf(res, sizeof(res), "%.1f %.1f %zu", t, (peak - base) / 1024.0,
                 bytes);
        if (write(fd[1], res, strlen(res)) < 0) {
            _exit(1);
        }
        _exit(0);
    }
    close(fd[1]);
    if (read(fd[0], res, sizeof(res) - 1) < 0) {
        res[0] = '\0';
    }
    close(fd[0]);
    wait4(pid, &status, 0, &ru);
    {
        double t = 0, mb = 0;
        size_t b = 0;
        sscanf(res, "%lf %lf %zu", &t, &mb, &b);
        printf("| %-34s | %8.1f | %8.1f | %9zu |\n", label, t, mb, b);
    }
}

static char worst_label[2][64];

static void worst_report(uint32_t nstacks)
{
    pp_profile_t p, slow;
    pp_tree_t t;
    double t0 = now_ms();

    st = worst_store(nstacks, &worst_loc);
    pp_profile_init(&p);
    pp_profile_init(&slow);
    pp_render_location_profile(&p, st, worst_loc, opt.now_us, 0, PP_SIDE_ALL);
    pp_render_location_profile(&slow, st, worst_loc, opt.now_us, 0,
                               PP_SIDE_SLOW);
    pp_profile_resolve_tree(&p, st, &t);
    printf("\nworst case (built in %.0f ms): %zu distinct stacks of %d "
           "frames, %zu on the slow side, %llu samples; the page's tree: "
           "%u nodes%s\n\n",
           now_ms() - t0, p.n, WORST_DEPTH, slow.n,
           (unsigned long long)p.samples, t.n,
           t.truncated ? ", truncated" : "");
    snprintf(worst_label[0], sizeof(worst_label[0]),
             "location HTML, %u x %d frames", nstacks, WORST_DEPTH);
    snprintf(worst_label[1], sizeof(worst_label[1]),
             "diff view HTML, %u x %d frames", nstacks, WORST_DEPTH);
    pp_tree_free(&t);
    pp_profile_free(&p);
    pp_profile_free(&slow);
    printf("| worst case, one render             |  time ms | peak MB |     "
           "bytes |\n");
    printf("|------------------------------------|---------:|--------:|--------"
           "--:|\n");
    worst_measure(worst_label[0], 0);
    worst_measure(worst_label[1], 1);
    pp_store_destroy(st);
}

int main(int argc, char **argv)
{
    const char *err = NULL;
    uint32_t seed = 12345, i, k;
    int loc, slot;
    pp_req_info_t info;

    pp_render_opts_init(&opt);
    opt.base = "/server-profile";
    opt.now_us = 1700000100000000LL;
    if (argc > 1 && strcmp(argv[1], "worst") == 0) {
        /* one render in this process, for time -v and callgrind */
        uint32_t n = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 10) : 66000;
        int diff = argc > 2 && strcmp(argv[2], "diff") == 0    ? 1
                   : argc > 2 && strcmp(argv[2], "json") == 0  ? 2
                   : argc > 2 && strcmp(argv[2], "pprof") == 0 ? 3
                                                               : 0;
        double t0;
        st = worst_store(n, &worst_loc);
        t0 = now_ms();
        worst_location(&diff);
        printf("%s, %u stacks: %.1f ms, %zu bytes\n",
               argc > 2 ? argv[2] : "location", n, now_ms() - t0, bytes);
        pp_store_destroy(st);
        return 0;
    }
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

    printf("| page (median of %d runs)           |   median |      max |     "
           "bytes |\n",
           RUNS);
    printf("|------------------------------------|---------:|---------:|-------"
           "---:|\n");
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
        pp_profile_resolve_tree(&p, st, &t);
        printf("(location: %zu distinct stacks, %llu samples, %u tree "
               "nodes, %s)\n",
               p.n, (unsigned long long)p.samples, t.n,
               t.truncated ? "truncated" : "whole");
        pp_tree_free(&t);
        pp_profile_free(&p);
    }
    time_it("location HTML, 80,000 samples", location_html, NULL);
    pp_store_destroy(st);
    worst_report(argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 66000);
    return 0;
}
