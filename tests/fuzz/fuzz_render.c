/* fuzz_render.c: libFuzzer target for the pages of /server-profile:
 * overview (JSON, HTML), request (JSON, folded, HTML), location (JSON,
 * folded, HTML, windows and slow/rest sides), the Prometheus exposition
 * and the message page, over a real store filled from the input (see
 * fuzz_store.h) and with hostile render options (base URL, filters, the
 * process and application group names a query string can carry).
 *
 * Checked, beyond "does not crash": every JSON output parses strictly and
 * gives back each request's id, method, URI, vhost and each stack's
 * frames and counts exactly (after the documented U+FFFD substitution);
 * folded output has exactly the stacks sampled, one per line with one
 * trailing count; every HTML page is made of template tags only (no raw
 * '<', '>', '"' or bare '&' from data) and shows the URI, id, vhost and
 * function names escaped; Prometheus label values hold no raw quote or
 * newline and decode to the location paths.
 */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_store.h"
#include "pp_profile.h"
#include "pp_render.h"

static fz_buf_t out;
static pp_record_t rec;

static void read_opts(fz_world_t *w, fz_in_t *in, pp_render_opts_t *o)
{
    uint8_t sel = fz_u8(in);

    pp_render_opts_init(o);
    o->base = fz_wstr(w, in, 200);
    o->now_us = FZ_START_US + 200000000LL;
    o->memory = FZ_STORE_BYTES;
    o->refresh = (sel & 1) ? fz_u8(in) : 0;
    o->sort = fz_u8(in) % 3;
    if (sel & 2) {
        o->filter_location = w->loc[fz_u8(in) % w->nloc];
    }
    if (sel & 4) {
        o->filter_status = (int)(fz_u32(in) % 1000);
    }
    if (sel & 8) {
        o->min_us = fz_u32(in) % 100000000;
    }
    if (sel & 16) {
        o->max_us = fz_u32(in) % 100000000;
    }
    if (sel & 32) {
        o->process_group = fz_wstr(w, in, 80);
    }
    if (sel & 64) {
        o->app_group = fz_wstr(w, in, 120);
    }
    o->since_us = (sel & 128) ? (int64_t)(1 + fz_u8(in) % 60) * 60000000LL : 0;
    o->side = fz_u8(in) % 3;
    o->diff = fz_u8(in) & 1;
}

static void default_opts(pp_render_opts_t *o)
{
    pp_render_opts_init(o);
    o->base = "/server-profile";
    o->now_us = FZ_START_US + 200000000LL;
    o->memory = FZ_STORE_BYTES;
}

static fz_json_t *parse_json(const char *what)
{
    const char *err = NULL;
    fz_json_t *j = fz_json_parse(fz_buf_str(&out), out.n, &err);
    if (!j) {
        fz_fail(what, err, out.p, out.n, fz_fail_at);
    }
    return j;
}

static void html_valid(const char *what)
{
    fz_fail_at = 0;
    FZ_CHECK(what, fz_html_check(fz_buf_str(&out), out.n), out.p, out.n);
}

/* ---- stacks as canonical strings, to compare as multisets ---- */

static void canon_frame(fz_buf_t *b, const char *fn, size_t fl,
                        const char *file, size_t fil, unsigned line)
{
    char num[24];
    fz_buf_put(b, fn, fl);
    fz_buf_put(b, "\x01", 1);
    fz_buf_put(b, file, fil);
    snprintf(num, sizeof(num), "\x01%u\x02", line);
    fz_buf_put(b, num, strlen(num));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The JSON "stacks" array must list exactly `counts` (frames sanitized,
 * counts equal). */
static void check_json_stacks(const char *what, const fz_world_t *w,
                              const fz_json_t *stacks,
                              const fz_counts_t *counts)
{
    size_t i, k, nwant = 0;
    char *got[FZ_STACKS * FZ_REQS], *want[FZ_STACKS * FZ_REQS];

    if (!stacks || stacks->type != FZ_J_ARR) {
        fz_fail(what, "no \"stacks\" array", out.p, out.n, 0);
    }
    for (i = 0; i < counts->n; i++) {
        nwant += counts->v[i].count > 0;
    }
    if (stacks->nitems != nwant) {
        fprintf(stderr, "stacks: got %zu, sampled %zu\n", stacks->nitems,
                nwant);
        fz_fail(what, "another number of stacks than were sampled", out.p,
                out.n, 0);
    }
    for (i = 0; i < stacks->nitems; i++) {
        const fz_json_t *s = stacks->items[i];
        const fz_json_t *frames = fz_json_get(s, "frames");
        const fz_json_t *count = fz_json_get(s, "count");
        fz_buf_t b = {0};
        char num[32];
        if (!frames || frames->type != FZ_J_ARR || !count ||
            count->type != FZ_J_NUM) {
            fz_fail(what, "stack without frames or count", out.p, out.n, 0);
        }
        for (k = 0; k < frames->nitems; k++) {
            const fz_json_t *f = frames->items[k];
            const fz_json_t *fn = fz_json_get(f, "function");
            const fz_json_t *file = fz_json_get(f, "file");
            const fz_json_t *line = fz_json_get(f, "line");
            if (!fn || fn->type != FZ_J_STR || !file ||
                file->type != FZ_J_STR || !line || line->type != FZ_J_NUM) {
                fz_fail(what, "frame without function, file or line", out.p,
                        out.n, 0);
            }
            canon_frame(&b, fn->str, fn->len, file->str, file->len,
                        (unsigned)line->num);
        }
        snprintf(num, sizeof(num), "#%.0f", count->num);
        fz_buf_put(&b, num, strlen(num));
        got[i] = (char *)fz_buf_str(&b);
    }
    k = 0;
    for (i = 0; i < counts->n; i++) {
        const fz_stack_t *s = fz_stack_of(w, counts->v[i].node);
        fz_buf_t b = {0}, fn = {0}, file = {0};
        uint32_t j;
        char num[32];
        if (!counts->v[i].count) {
            continue;
        }
        for (j = 0; j < s->depth; j++) {
            pp_frame_view_t fv;
            pp_store_frame_view(w->st, s->frames[j], &fv);
            fz_buf_reset(&fn);
            fz_buf_reset(&file);
            fz_sanitize(&fn, fv.function, strlen(fv.function), NULL, NULL);
            fz_sanitize(&file, fv.file, strlen(fv.file), NULL, NULL);
            canon_frame(&b, fz_buf_str(&fn), fn.n, fz_buf_str(&file), file.n,
                        fv.line);
        }
        fz_buf_free(&fn);
        fz_buf_free(&file);
        snprintf(num, sizeof(num), "#%llu",
                 (unsigned long long)counts->v[i].count);
        fz_buf_put(&b, num, strlen(num));
        want[k++] = (char *)fz_buf_str(&b);
    }
    qsort(got, nwant, sizeof(char *), cmp_str);
    qsort(want, nwant, sizeof(char *), cmp_str);
    for (i = 0; i < nwant; i++) {
        if (strcmp(got[i], want[i]) != 0) {
            fz_fail(what,
                    "a stack's frames or count differ from what was "
                    "sampled",
                    out.p, out.n, 0);
        }
    }
    for (i = 0; i < nwant; i++) {
        free(got[i]);
        free(want[i]);
    }
}

/* ---- request pages ---- */

static void check_request(fz_world_t *w, fz_req_t *r,
                          const pp_render_opts_t *hostile)
{
    pp_sink_t o = fz_sink(&out);
    pp_render_opts_t opt;
    int inflight = -1;
    fz_json_t *j;
    uint32_t s;
    size_t i;

    if (r->fate == FZ_NOT_KEPT) {
        return;
    }
    if (!pp_store_find(w->st, r->id, &rec, &inflight)) {
        fz_fail("pp_store_find", "a kept or in-flight request is not found",
                NULL, 0, 0);
    }
    FZ_ASSERT("found in flight exactly when it is",
              inflight == (r->fate == FZ_INFLIGHT));
    default_opts(&opt);

    /* JSON */
    fz_buf_reset(&out);
    fz_render_request_json(&o, w->st, &rec, inflight, &opt);
    j = parse_json("request JSON");
    if (!fz_json_is(fz_json_get(j, "id"), rec.req.id) ||
        !fz_json_is(fz_json_get(j, "method"), rec.req.method) ||
        !fz_json_is(fz_json_get(j, "uri"), rec.req.uri) ||
        !fz_json_is(fz_json_get(j, "vhost"), rec.req.vhost)) {
        fz_fail("request JSON",
                "id, method, uri or vhost differs from the "
                "stored request",
                out.p, out.n, 0);
    }
    if (rec.req.flags & PP_REQ_DAEMON) {
        FZ_ASSERT(
            "request JSON: process group",
            fz_json_is(fz_json_get(j, "process_group"), rec.req.process_group));
        FZ_ASSERT(
            "request JSON: application group",
            fz_json_is(fz_json_get(j, "application_group"), rec.req.app_group));
    }
    {
        const fz_json_t *segs = fz_json_get(j, "segments");
        FZ_ASSERT("request JSON: segments array",
                  segs && segs->type == FZ_J_ARR &&
                      segs->nitems == (rec.req.nsegments < PP_SEGMENTS_MAX
                                           ? rec.req.nsegments
                                           : PP_SEGMENTS_MAX));
        for (s = 0; s < segs->nitems; s++) {
            FZ_ASSERT("request JSON: segment name and detail",
                      fz_json_is(fz_json_get(segs->items[s], "name"),
                                 rec.segments[s].name) &&
                          fz_json_is(fz_json_get(segs->items[s], "detail"),
                                     rec.segments[s].detail));
        }
    }
    check_json_stacks("request JSON", w, fz_json_get(j, "stacks"), &r->counts);
    {
        /* PyProfAllocations: the keys exactly when the record has them,
         * at most its stacks */
        const fz_json_t *ab = fz_json_get(j, "alloc_bytes");
        const fz_json_t *as = fz_json_get(j, "alloc_stacks");
        if (rec.req.flags & PP_REQ_ALLOC) {
            FZ_ASSERT("request JSON: alloc_bytes and alloc_stacks",
                      ab && as && as->type == FZ_J_ARR &&
                          as->nitems <= rec.req.alloc_nstacks);
        }
        else {
            FZ_ASSERT("request JSON: no alloc_* keys without PyProfAllocations",
                      !ab && !as);
        }
    }
    fz_json_free(j);

    /* folded */
    fz_buf_reset(&out);
    fz_render_request_folded(&o, w->st, &rec);
    fz_check_folded_exact("request folded", w, &r->counts, fz_buf_str(&out),
                          out.n);

    /* HTML, with the handler's options and with hostile ones */
    fz_buf_reset(&out);
    fz_render_request_html(&o, w->st, &rec, inflight, &opt);
    html_valid("request HTML");
    fz_expect_shown("request HTML: URI", out.p, out.n, "<span class=mono>",
                    rec.req.uri, "</span></h2>");
    fz_expect_shown("request HTML: method", out.p, out.n, "<h2>",
                    rec.req.method, " <span class=mono>");
    fz_expect_shown("request HTML: vhost", out.p, out.n,
                    "<dt>Virtual host</dt><dd>", rec.req.vhost, "</dd>");
    fz_expect_shown("request HTML: id", out.p, out.n,
                    "<dt>Request id</dt><dd class=mono>", rec.req.id, "");
    if (rec.req.samples && w->deep_total < 3000) {
        /* every function of every sampled stack has a row in the call
         * tree, its full name in the title */
        for (i = 0; i < r->counts.n; i++) {
            const fz_stack_t *st = fz_stack_of(w, r->counts.v[i].node);
            for (s = 0; st && s < st->depth; s++) {
                pp_frame_view_t fv;
                pp_store_frame_view(w->st, st->frames[s], &fv);
                fz_expect_shown("request HTML: call tree function", out.p,
                                out.n, "<span class=fn title=\"", fv.function,
                                "\">");
            }
        }
    }
    fz_buf_reset(&out);
    fz_render_request_html(&o, w->st, &rec, inflight, hostile);
    html_valid("request HTML, hostile options");
}

/* ---- overview ---- */

static const fz_json_t *by_id(const fz_json_t *list, const char *id)
{
    size_t i;
    for (i = 0; list && i < list->nitems; i++) {
        if (fz_json_is(fz_json_get(list->items[i], "id"), id)) {
            return list->items[i];
        }
    }
    return NULL;
}

static void check_overview(fz_world_t *w, const pp_render_opts_t *hostile)
{
    pp_sink_t o = fz_sink(&out);
    pp_render_opts_t opt;
    fz_json_t *j;
    const fz_json_t *reqs, *live, *locs;
    uint32_t i;

    default_opts(&opt);
    fz_buf_reset(&out);
    fz_render_overview(&o, w->st, &opt, PP_OV_JSON);
    j = parse_json("overview JSON");
    reqs = fz_json_get(j, "requests");
    live = fz_json_get(j, "inflight");
    locs = fz_json_get(j, "locations");
    FZ_ASSERT("overview JSON: requests, inflight and locations arrays",
              reqs && reqs->type == FZ_J_ARR && live &&
                  live->type == FZ_J_ARR && locs && locs->type == FZ_J_ARR);
    for (i = 0; i < w->nreq; i++) {
        fz_req_t *r = &w->req[i];
        const fz_json_t *e;
        pp_req_t q;
        int inflight;
        if (r->fate != FZ_KEEP_SLOW && r->fate != FZ_INFLIGHT) {
            continue;
        }
        e = by_id(r->fate == FZ_INFLIGHT ? live : reqs, r->id);
        if (!e) {
            fz_fail("overview JSON",
                    "a kept or in-flight request is not "
                    "listed",
                    out.p, out.n, 0);
        }
        FZ_ASSERT("found", pp_store_find(w->st, r->id, &rec, &inflight));
        q = rec.req;
        FZ_ASSERT("overview JSON: uri, method and vhost",
                  fz_json_is(fz_json_get(e, "uri"), q.uri) &&
                      fz_json_is(fz_json_get(e, "method"), q.method) &&
                      fz_json_is(fz_json_get(e, "vhost"), q.vhost));
    }
    /* every registered location, by its stored path */
    for (i = 0; i < (uint32_t)w->nloc; i++) {
        const pp_location_t *loc = pp_store_location(w->st, w->loc[i]);
        size_t k;
        int seen = 0;
        char path[PP_PREFIX_MAX + 1];
        snprintf(path, sizeof(path), "%.*s", PP_PREFIX_MAX, loc->path);
        for (k = 0; k < locs->nitems; k++) {
            seen |= fz_json_is(fz_json_get(locs->items[k], "path"), path);
        }
        FZ_ASSERT("overview JSON lists every location by its path", seen);
    }
    fz_json_free(j);

    fz_buf_reset(&out);
    fz_render_overview(&o, w->st, hostile, PP_OV_JSON);
    fz_json_free(parse_json("overview JSON, hostile filters"));

    fz_buf_reset(&out);
    fz_render_overview(&o, w->st, &opt, PP_OV_HTML);
    html_valid("overview HTML");
    for (i = 0; i < w->nreq; i++) {
        if (w->req[i].fate == FZ_KEEP_SLOW) {
            int inflight;
            FZ_ASSERT("found",
                      pp_store_find(w->st, w->req[i].id, &rec, &inflight));
            fz_expect_shown("overview HTML: URI", out.p, out.n,
                            "<td class=uri>", rec.req.uri, "");
        }
    }
    fz_buf_reset(&out);
    fz_render_overview(&o, w->st, hostile, PP_OV_HTML);
    html_valid("overview HTML, hostile options");
}

/* ---- locations ---- */

static void check_location(fz_world_t *w, int m,
                           const pp_render_opts_t *hostile)
{
    pp_sink_t o = fz_sink(&out);
    pp_render_opts_t opt;
    pp_profile_t p;
    fz_counts_t counts;
    fz_json_t *j;
    int row = w->loc[m], k, side;
    char path[PP_PREFIX_MAX + 1];
    const pp_location_t *loc = pp_store_location(w->st, row);

    /* model rows registered twice share one store row */
    memset(&counts, 0, sizeof(counts));
    for (k = 0; k < w->nloc; k++) {
        size_t c;
        if (w->loc[k] != row) {
            continue;
        }
        if (k < m) {
            return; /* checked with the first */
        }
        for (c = 0; c < w->loc_counts[k].n; c++) {
            fz_count_add(&counts, w->loc_counts[k].v[c].node,
                         w->loc_counts[k].v[c].count,
                         w->loc_counts[k].v[c].weight_us);
        }
    }
    snprintf(path, sizeof(path), "%.*s", PP_PREFIX_MAX, loc->path);
    FZ_ASSERT("pp_render_find_location finds a location by its path",
              pp_render_find_location(w->st, path) == row);
    default_opts(&opt);

    pp_profile_init(&p);
    FZ_ASSERT("location profile",
              pp_render_location_profile(&p, w->st, row, opt.now_us, 0,
                                         PP_SIDE_ALL) == 0);
    fz_buf_reset(&out);
    fz_render_location_json(&o, w->st, row, &p, &opt);
    j = parse_json("location JSON");
    FZ_ASSERT("location JSON: path", fz_json_is(fz_json_get(j, "path"), path));
    check_json_stacks("location JSON", w, fz_json_get(j, "stacks"), &counts);
    fz_json_free(j);
    pp_profile_free(&p);

    fz_buf_reset(&out);
    fz_render_location_folded(&o, w->st, row);
    fz_check_folded_exact("location folded", w, &counts, fz_buf_str(&out),
                          out.n);

    /* windows and sides: valid JSON whatever they hold */
    for (side = PP_SIDE_ALL; side <= PP_SIDE_REST; side++) {
        pp_profile_init(&p);
        pp_render_location_profile(&p, w->st, row, opt.now_us,
                                   side == PP_SIDE_ALL ? hostile->since_us : 0,
                                   side);
        fz_buf_reset(&out);
        fz_render_location_json(&o, w->st, row, &p, hostile);
        fz_json_free(parse_json("location JSON, window or side"));
        pp_profile_free(&p);
    }

    fz_buf_reset(&out);
    fz_render_location_html(&o, w->st, row, &opt);
    html_valid("location HTML");
    fz_buf_reset(&out);
    fz_render_location_html(&o, w->st, row, hostile);
    html_valid("location HTML, hostile options");
}

/* ---- metrics ---- */

typedef struct prom_ctx {
    fz_world_t *w;
    int empty; /* location="" labels that are no location's path */
} prom_ctx_t;

static void prom_label(void *ctx, const char *v, size_t len)
{
    prom_ctx_t *c = ctx;
    int k, ok = 0;

    for (k = 0; k < c->w->nloc && !ok; k++) {
        const pp_location_t *loc = pp_store_location(c->w->st, c->w->loc[k]);
        fz_buf_t want = {0};
        fz_sanitize(&want, loc->path, strnlen(loc->path, PP_PREFIX_MAX), " ",
                    "\n");
        ok = want.n == len && memcmp(fz_buf_str(&want), v, len) == 0;
        fz_buf_free(&want);
    }
    if (!ok && len == 0) {
        c->empty++; /* GIL wait caused by no request: checked below */
        return;
    }
    if (!ok) {
        fz_fail("metrics", "a location label decodes to no location's path",
                out.p, out.n, 0);
    }
}

static void check_metrics(fz_world_t *w, const pp_render_opts_t *hostile)
{
    pp_sink_t o = fz_sink(&out);
    prom_ctx_t ctx = {w, 0};
    static const char no_request[] =
        "\npyprof_gil_blocking_seconds_total{location=\"\"} ";
    size_t k;
    int seen = 0, blocking = 0;

    fz_buf_reset(&out);
    fz_render_overview(&o, w->st, hostile, PP_OV_METRICS);
    fz_fail_at = 0;
    FZ_CHECK(
        "metrics",
        fz_prom_check(fz_buf_str(&out), out.n, "location", prom_label, &ctx),
        out.p, out.n);
    /* one in-flight gauge per location; one empty location label that is
     * no location's path, the GIL wait caused by threads serving no
     * request */
    for (k = 0; k + 25 < out.n; k++) {
        seen += memcmp(out.p + k, "\npyprof_inflight_requests{", 26) == 0;
    }
    for (k = 0; k + sizeof(no_request) - 1 <= out.n; k++) {
        blocking += memcmp(out.p + k, no_request, sizeof(no_request) - 1) == 0;
    }
    /* (more than one such line: a location whose path is empty too) */
    if (ctx.empty > 1 || blocking < 1) {
        fz_fail("metrics",
                "an empty location label other than the one "
                "pyprof_gil_blocking_seconds_total{location=\"\"}",
                out.p, out.n, 0);
    }
    {
        int rows[FZ_LOCS], nrows = 0, a, b, dup;
        for (a = 0; a < w->nloc; a++) {
            dup = 0;
            for (b = 0; b < nrows; b++) {
                dup |= rows[b] == w->loc[a];
            }
            if (!dup) {
                rows[nrows++] = w->loc[a];
            }
        }
        if (seen != nrows) {
            fz_fail("metrics",
                    "not one pyprof_inflight_requests line per "
                    "location",
                    out.p, out.n, 0);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in_t in = {data, size};
    fz_world_t w;
    pp_render_opts_t hostile;
    uint32_t i;

    if (fz_world_build(&w, &in) != 0) {
        fz_world_free(&w);
        return 0;
    }
    read_opts(&w, &in, &hostile);
    for (i = 0; i < w.nreq; i++) {
        check_request(&w, &w.req[i], &hostile);
    }
    check_overview(&w, &hostile);
    for (i = 0; i < (uint32_t)w.nloc; i++) {
        check_location(&w, (int)i, &hostile);
    }
    check_metrics(&w, &hostile);
    {
        pp_sink_t o = fz_sink(&out);
        const char *title = fz_wstr(&w, &in, 200);
        const char *msg = fz_wstr(&w, &in, 400);
        fz_buf_reset(&out);
        pp_render_message_html(&o, title, msg, &hostile);
        html_valid("message page");
        fz_expect_shown("message page", out.p, out.n, "<p>", msg, "</p>");
    }
    if (getenv("FUZZ_VERBOSE")) {
        /* what an input exercised, to judge seeds by */
        fprintf(stderr,
                "render: %d locations, %u frames, %u stacks "
                "(%llu frames deep in all), requests:",
                w.nloc, w.nframes, w.nstacks, (unsigned long long)w.deep_total);
        for (i = 0; i < w.nreq; i++) {
            fprintf(stderr, " [fate %d, %zu stacks, loc %d]", w.req[i].fate,
                    w.req[i].counts.n, w.req[i].location);
        }
        fprintf(stderr, "\n");
    }
    fz_world_free(&w);
    return 0;
}
