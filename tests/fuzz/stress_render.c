/* stress_render.c: many handler threads rendering one store at once, as
 * the worker and event MPMs do when several clients open /server-profile
 * pages together.  Built with ThreadSanitizer (`make stress-tsan`) it
 * reports any state the renderers share between threads; built with
 * AddressSanitizer (`make stress-asan`) it turns such races into crashes.
 *
 * The store is filled once, before the threads start, from fuzz inputs in
 * the fuzz_render/fuzz_export format (fuzz_store.h); the threads only read
 * it, so every report is a reader-reader race in the rendering code, not
 * the store's (by design racy) seqlock copies.
 *
 * Usage: stress_render [-t THREADS] [-n ROUNDS] FILE...
 */
#define _GNU_SOURCE /* memmem */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_store.h"
#include "pp_export.h"
#include "pp_profile.h"
#include "pp_render.h"

typedef struct job {
    fz_world_t *w;
    int rounds;
    int id;
    size_t bytes;
} job_t;

static void count_write(void *ctx, const char *s, size_t n)
{
    (void)s;
    *(size_t *)ctx += n;
}

static void *render_all(void *arg)
{
    job_t *j = arg;
    fz_world_t *w = j->w;
    pp_sink_t o = {count_write, &j->bytes};
    pp_render_opts_t opt;
    pp_record_t *rec = malloc(sizeof(*rec));
    int r;
    uint32_t i;

    if (!rec) {
        abort();
    }
    pp_render_opts_init(&opt);
    opt.base = "/server-profile";
    opt.now_us = FZ_START_US + 200000000LL;
    for (r = 0; r < j->rounds; r++) {
        /* threads start on different pages so that they overlap */
        int page = (r + j->id) % 4;
        if (page == 0) {
            fz_render_overview(&o, w->st, &opt, PP_OV_HTML);
            fz_render_overview(&o, w->st, &opt, PP_OV_JSON);
            fz_render_overview(&o, w->st, &opt, PP_OV_METRICS);
        }
        for (i = 0; page == 1 && i < w->nreq; i++) {
            int inflight;
            if (pp_store_find(w->st, w->req[i].id, rec, &inflight)) {
                fz_render_request_html(&o, w->st, rec, inflight, &opt);
                fz_render_request_json(&o, w->st, rec, inflight, &opt);
                fz_render_request_folded(&o, w->st, rec);
            }
        }
        for (i = 0; page == 2 && i < (uint32_t)w->nloc; i++) {
            pp_profile_t p;
            fz_render_location_html(&o, w->st, w->loc[i], &opt);
            pp_profile_init(&p);
            pp_render_location_profile(&p, w->st, w->loc[i], opt.now_us, 0,
                                       PP_SIDE_ALL);
            fz_render_location_json(&o, w->st, w->loc[i], &p, &opt);
            pp_profile_free(&p);
        }
        for (i = 0; page == 3 && i < (uint32_t)w->nloc; i++) {
            pp_profile_t p;
            pp_bytes_t gz;
            pp_profile_init(&p);
            pp_render_location_profile(&p, w->st, w->loc[i], opt.now_us, 0,
                                       PP_SIDE_ALL);
            pp_export_folded(&o, &p);
            pp_export_speedscope(&o, &p, "stress");
            if (pp_export_pprof(&gz, &p, NULL, 0, 1, 1, 1000) == 0) {
                j->bytes += gz.len;
                free(gz.data);
            }
            pp_profile_free(&p);
        }
    }
    free(rec);
    return NULL;
}

static int run_file(const char *path, int nthreads, int rounds)
{
    FILE *f = fopen(path, "rb");
    static uint8_t buf[1 << 16];
    size_t n;
    fz_in_t in;
    fz_world_t w;
    pthread_t th[64];
    job_t jobs[64];
    int t;
    size_t total = 0;

    if (!f) {
        perror(path);
        return -1;
    }
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    in.p = buf;
    in.n = n;
    if (fz_world_build(&w, &in) != 0) {
        fz_world_free(&w);
        return 0;
    }
    for (t = 0; t < nthreads; t++) {
        jobs[t].w = &w;
        jobs[t].rounds = rounds;
        jobs[t].id = t;
        jobs[t].bytes = 0;
        if (pthread_create(&th[t], NULL, render_all, &jobs[t]) != 0) {
            perror("pthread_create");
            abort();
        }
    }
    for (t = 0; t < nthreads; t++) {
        pthread_join(th[t], NULL);
        total += jobs[t].bytes;
    }
    printf("%s: %d threads x %d rounds, %zu bytes rendered\n", path, nthreads,
           rounds, total);
    fz_world_free(&w);
    return 0;
}

int main(int argc, char **argv)
{
    int nthreads = 4, rounds = 200, c, rc = 0;

    while ((c = getopt(argc, argv, "t:n:")) != -1) {
        if (c == 't') {
            nthreads = atoi(optarg);
        }
        else if (c == 'n') {
            rounds = atoi(optarg);
        }
        else {
            fprintf(stderr, "usage: %s [-t THREADS] [-n ROUNDS] FILE...\n",
                    argv[0]);
            return 2;
        }
    }
    if (nthreads < 1 || nthreads > 64 || rounds < 1 || optind >= argc) {
        fprintf(stderr, "usage: %s [-t 1..64] [-n ROUNDS] FILE...\n", argv[0]);
        return 2;
    }
    for (; optind < argc; optind++) {
        rc |= run_file(argv[optind], nthreads, rounds) != 0;
    }
    return rc;
}
