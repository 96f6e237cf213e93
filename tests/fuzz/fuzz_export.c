/* fuzz_export.c: libFuzzer target for the profile exports (pp_export.c):
 * folded stacks, speedscope JSON and gzipped pprof profile.proto, for the
 * stack set of each request and each location of a store filled from the
 * input (see fuzz_store.h), with a hostile profile name and hostile pprof
 * labels.
 *
 * Checked: folded has exactly the sampled stacks, one per line, one
 * trailing count; speedscope parses strictly, every sample indexes an
 * existing shared frame, and the samples rebuild exactly the sampled
 * stacks with their weights; pprof gunzips, every message parses as
 * protobuf wire format, every id and string index resolves, and samples,
 * locations, functions and the string table rebuild exactly the sampled
 * stacks (names byte for byte, but for invalid UTF-8 written as U+FFFD),
 * counts, wall nanoseconds and labels; every string is valid UTF-8, as
 * proto3 `string` fields must be.
 */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_store.h"
#include "pp_export.h"
#include "pp_profile.h"
#include "pp_render.h"

#define MAX_LABELS 6

static fz_buf_t out;
static pp_record_t rec;

/* ---- the model's stacks of a stack set ---- */

static void frame_text(const fz_world_t *w, uint32_t fid, fz_buf_t *b,
                       int sanitize)
{
    pp_frame_view_t fv;
    char num[24];

    FZ_ASSERT("frame resolves", pp_store_frame_view(w->st, fid, &fv));
    if (sanitize) {
        fz_sanitize(b, fv.function, strlen(fv.function), NULL, NULL);
    }
    else {
        fz_buf_put(b, fv.function, strlen(fv.function));
    }
    fz_buf_put(b, "\x01", 1);
    if (fv.file[0]) {
        if (sanitize) {
            fz_sanitize(b, fv.file, strlen(fv.file), NULL, NULL);
        }
        else {
            fz_buf_put(b, fv.file, strlen(fv.file));
        }
        snprintf(num, sizeof(num), "\x01%u", fv.line);
        fz_buf_put(b, num, strlen(num));
    }
    fz_buf_put(b, "\x02", 1);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct multiset {
    char *v[FZ_STACKS * FZ_REQS];
    size_t n;
} multiset_t;

static void ms_add(multiset_t *m, fz_buf_t *b)
{
    FZ_ASSERT("multiset room", m->n < sizeof(m->v) / sizeof(m->v[0]));
    m->v[m->n++] = (char *)fz_buf_str(b);
    memset(b, 0, sizeof(*b));
}

static void ms_free(multiset_t *m)
{
    size_t i;
    for (i = 0; i < m->n; i++) {
        free(m->v[i]);
    }
    m->n = 0;
}

static void ms_compare(const char *what, multiset_t *got, multiset_t *want,
                       const char *text, size_t n)
{
    size_t i;

    if (got->n != want->n) {
        fprintf(stderr, "stacks: got %zu, sampled %zu\n", got->n, want->n);
        fz_fail(what, "another number of stacks than were sampled", text, n, 0);
    }
    qsort(got->v, got->n, sizeof(char *), cmp_str);
    qsort(want->v, want->n, sizeof(char *), cmp_str);
    for (i = 0; i < got->n; i++) {
        if (strcmp(got->v[i], want->v[i]) != 0) {
            fprintf(stderr, "got:  %.300s\nwant: %.300s\n", got->v[i],
                    want->v[i]);
            fz_fail(what, "a stack differs from what was sampled", text, n, 0);
        }
    }
    ms_free(got);
    ms_free(want);
}

/* Expected stacks: frames root first (or leaf first), then "#count" and,
 * if with_weight, "/weight". */
static void want_stacks(const fz_world_t *w, const fz_counts_t *c,
                        multiset_t *m, int sanitize, int leaf_first,
                        int with_count, int with_weight_ns)
{
    size_t i;
    for (i = 0; i < c->n; i++) {
        const fz_stack_t *s = fz_stack_of(w, c->v[i].node);
        fz_buf_t b = {0};
        uint32_t j;
        char num[64];
        if (!c->v[i].count) {
            continue;
        }
        for (j = 0; j < s->depth; j++) {
            frame_text(w, s->frames[leaf_first ? s->depth - 1 - j : j], &b,
                       sanitize);
        }
        if (with_count) {
            snprintf(num, sizeof(num), "#%llu",
                     (unsigned long long)c->v[i].count);
            fz_buf_put(&b, num, strlen(num));
        }
        if (with_weight_ns) {
            snprintf(num, sizeof(num), "/%llu",
                     (unsigned long long)c->v[i].weight_us * 1000);
            fz_buf_put(&b, num, strlen(num));
        }
        ms_add(m, &b);
    }
}

/* ---- speedscope ---- */

static void check_speedscope(const fz_world_t *w, const pp_profile_t *p,
                             const fz_counts_t *c, const char *name)
{
    pp_sink_t o = fz_sink(&out);
    const char *err = NULL;
    fz_json_t *j;
    const fz_json_t *frames, *prof, *samples, *weights, *shared;
    multiset_t got = {{0}, 0}, want = {{0}, 0};
    size_t i, k;

    fz_buf_reset(&out);
    pp_export_speedscope(&o, p, name);
    j = fz_json_parse(fz_buf_str(&out), out.n, &err);
    if (!j) {
        fz_fail("speedscope", err, out.p, out.n, fz_fail_at);
    }
    shared = fz_json_get(j, "shared");
    frames = fz_json_get(shared, "frames");
    prof = fz_json_at(fz_json_get(j, "profiles"), 0);
    samples = fz_json_get(prof, "samples");
    weights = fz_json_get(prof, "weights");
    if (!frames || frames->type != FZ_J_ARR || !samples ||
        samples->type != FZ_J_ARR || !weights || weights->type != FZ_J_ARR ||
        samples->nitems != weights->nitems) {
        fz_fail("speedscope",
                "no shared.frames, or samples and weights of "
                "different lengths",
                out.p, out.n, 0);
    }
    FZ_ASSERT("speedscope: the name comes back",
              fz_json_is(fz_json_get(j, "name"), name) &&
                  fz_json_is(fz_json_get(prof, "name"), name));
    FZ_ASSERT("speedscope: sampled profile in milliseconds",
              fz_json_is(fz_json_get(prof, "type"), "sampled") &&
                  fz_json_is(fz_json_get(prof, "unit"), "milliseconds"));
    for (i = 0; i < samples->nitems; i++) {
        const fz_json_t *s = samples->items[i];
        fz_buf_t b = {0};
        char num[64];
        if (s->type != FZ_J_ARR) {
            fz_fail("speedscope", "a sample is not an array", out.p, out.n, 0);
        }
        for (k = 0; k < s->nitems; k++) {
            const fz_json_t *ix = s->items[k], *f, *nm, *file, *line;
            if (ix->type != FZ_J_NUM || ix->num < 0 ||
                ix->num >= (double)frames->nitems ||
                ix->num != (double)(size_t)ix->num) {
                fz_fail("speedscope", "a sample indexes no shared frame", out.p,
                        out.n, 0);
            }
            f = frames->items[(size_t)ix->num];
            nm = fz_json_get(f, "name");
            file = fz_json_get(f, "file");
            line = fz_json_get(f, "line");
            if (!nm || nm->type != FZ_J_STR ||
                (file &&
                 (file->type != FZ_J_STR || !line || line->type != FZ_J_NUM))) {
                fz_fail("speedscope",
                        "a frame without a name, or a file "
                        "without a line",
                        out.p, out.n, 0);
            }
            fz_buf_put(&b, nm->str, nm->len);
            fz_buf_put(&b, "\x01", 1);
            if (file) {
                fz_buf_put(&b, file->str, file->len);
                snprintf(num, sizeof(num), "\x01%u", (unsigned)line->num);
                fz_buf_put(&b, num, strlen(num));
            }
            fz_buf_put(&b, "\x02", 1);
        }
        if (weights->items[i]->type != FZ_J_NUM) {
            fz_fail("speedscope", "a weight is not a number", out.p, out.n, 0);
        }
        /* weights are wall milliseconds with 3 decimals: exact in us */
        snprintf(num, sizeof(num), "/%.0f", weights->items[i]->num * 1000);
        fz_buf_put(&b, num, strlen(num));
        ms_add(&got, &b);
    }
    for (i = 0; i < c->n; i++) {
        const fz_stack_t *s = fz_stack_of(w, c->v[i].node);
        fz_buf_t b = {0};
        uint32_t d;
        char num[64];
        if (!c->v[i].count) {
            continue;
        }
        for (d = 0; d < s->depth; d++) {
            frame_text(w, s->frames[d], &b, 1);
        }
        snprintf(num, sizeof(num), "/%llu",
                 (unsigned long long)c->v[i].weight_us);
        fz_buf_put(&b, num, strlen(num));
        ms_add(&want, &b);
    }
    ms_compare("speedscope", &got, &want, out.p, out.n);
    fz_json_free(j);
}

/* ---- pprof ---- */

typedef struct pb_item {
    const unsigned char *p;
    size_t n;
} pb_item_t;

typedef struct pprof {
    pb_item_t strings[4096];
    size_t nstrings;
    pb_item_t samples[FZ_STACKS * FZ_REQS];
    size_t nsamples;
    pb_item_t locations[4096];
    size_t nlocations;
    pb_item_t functions[4096];
    size_t nfunctions;
    pb_item_t sample_types[4];
    size_t nsample_types;
    uint64_t period, time_ns, duration_ns;
    int other;
    const char *err;
} pprof_t;

static void push(pb_item_t *v, size_t *n, size_t cap, const fz_pb_field_t *f,
                 const char **err)
{
    if (f->wire != 2) {
        *err = "a message or string field is not length-delimited";
        return;
    }
    if (*n >= cap) {
        *err = "more entries than the target can hold";
        return;
    }
    v[*n].p = f->p;
    v[*n].n = (size_t)f->v;
    (*n)++;
}

static void profile_field(void *ctx, const fz_pb_field_t *f)
{
    pprof_t *pf = ctx;
    switch (f->num) {
    case 1:
        push(pf->sample_types, &pf->nsample_types, 4, f, &pf->err);
        break;
    case 2:
        push(pf->samples, &pf->nsamples, FZ_STACKS * FZ_REQS, f, &pf->err);
        break;
    case 4:
        push(pf->locations, &pf->nlocations, 4096, f, &pf->err);
        break;
    case 5:
        push(pf->functions, &pf->nfunctions, 4096, f, &pf->err);
        break;
    case 6:
        push(pf->strings, &pf->nstrings, 4096, f, &pf->err);
        break;
    case 9:
        pf->time_ns = f->v;
        break;
    case 10:
        pf->duration_ns = f->v;
        break;
    case 11:
        break;
    case 12:
        pf->period = f->v;
        break;
    default:
        pf->other = 1;
    }
}

/* A small message's varint and bytes fields by number (last wins). */
typedef struct msg {
    uint64_t v[8];
    pb_item_t b[8];
    int has[8];
    pb_item_t rep[MAX_LABELS + 1]; /* repeated field `rep_num` */
    size_t nrep;
    uint32_t rep_num;
    const char *err;
} msg_t;

static void msg_field(void *ctx, const fz_pb_field_t *f)
{
    msg_t *m = ctx;
    if (f->num == m->rep_num && m->rep_num) {
        push(m->rep, &m->nrep, MAX_LABELS + 1, f, &m->err);
        return;
    }
    if (f->num < 8) {
        m->has[f->num] = 1;
        if (f->wire == 0) {
            m->v[f->num] = f->v;
        }
        else {
            m->b[f->num].p = f->p;
            m->b[f->num].n = (size_t)f->v;
        }
    }
}

static void parse_msg(const char *what, const pb_item_t *it, msg_t *m,
                      uint32_t rep_num)
{
    const char *err;
    memset(m, 0, sizeof(*m));
    m->rep_num = rep_num;
    err = fz_pb_walk(it->p, it->n, msg_field, m);
    if (err || m->err) {
        fz_fail(what, err ? err : m->err, (const char *)it->p, it->n,
                fz_fail_at);
    }
}

static const pb_item_t *string_at(const pprof_t *pf, uint64_t i)
{
    if (i >= pf->nstrings) {
        fz_fail("pprof", "a string index past the string table", NULL, 0, 0);
    }
    return &pf->strings[i];
}

/* the Location with this id, its function id and line */
static void location_of(const pprof_t *pf, uint64_t id, uint64_t *fn,
                        uint64_t *line)
{
    size_t i;
    for (i = 0; i < pf->nlocations; i++) {
        msg_t m, l;
        parse_msg("pprof Location", &pf->locations[i], &m, 0);
        if (m.v[1] != id) {
            continue;
        }
        if (!m.has[4]) {
            fz_fail("pprof", "a Location without a Line", NULL, 0, 0);
        }
        parse_msg("pprof Line", &m.b[4], &l, 0);
        *fn = l.v[1];
        *line = l.v[2];
        return;
    }
    fz_fail("pprof", "a sample names a location id that does not exist", NULL,
            0, 0);
}

static void function_of(const pprof_t *pf, uint64_t id, const pb_item_t **name,
                        const pb_item_t **file)
{
    size_t i;
    for (i = 0; i < pf->nfunctions; i++) {
        msg_t m;
        parse_msg("pprof Function", &pf->functions[i], &m, 0);
        if (m.v[1] != id) {
            continue;
        }
        *name = string_at(pf, m.v[2]);
        *file = string_at(pf, m.v[4]);
        if (m.v[3] != m.v[2]) {
            fz_fail("pprof", "system_name differs from name", NULL, 0, 0);
        }
        return;
    }
    fz_fail("pprof", "a location names a function id that does not exist", NULL,
            0, 0);
}

static int item_is(const pb_item_t *it, const char *s)
{
    return it->n == strlen(s) && memcmp(it->p, s, it->n) == 0;
}

/* it holds s with invalid UTF-8 written as U+FFFD */
static int item_is_text(const pb_item_t *it, const char *s)
{
    fz_buf_t b = {0};
    int same;

    fz_sanitize(&b, s, strlen(s), NULL, NULL);
    same = it->n == b.n && memcmp(it->p, fz_buf_str(&b), it->n) == 0;
    fz_buf_free(&b);
    return same;
}

static void check_pprof(const fz_world_t *w, const pp_profile_t *p,
                        const fz_counts_t *c, const pp_pprof_label_t *labels,
                        size_t nlabels, int64_t interval_ns)
{
    pp_bytes_t gz;
    fz_buf_t raw = {0};
    static pprof_t pf;
    multiset_t got = {{0}, 0}, want = {{0}, 0};
    const char *err;
    size_t i, k;

    FZ_ASSERT("pp_export_pprof succeeds",
              pp_export_pprof(&gz, p, labels, nlabels, FZ_START_US * 1000,
                              5000000000LL, interval_ns) == 0);
    err = fz_gunzip(gz.data, gz.len, &raw);
    if (err) {
        fz_fail("pprof", err, (const char *)gz.data, gz.len, 0);
    }
    free(gz.data);
    memset(&pf, 0, sizeof(pf));
    fz_fail_at = 0;
    err = fz_pb_walk((const unsigned char *)fz_buf_str(&raw), raw.n,
                     profile_field, &pf);
    if (err || pf.err) {
        fz_fail("pprof Profile", err ? err : pf.err, raw.p, raw.n, fz_fail_at);
    }
    FZ_ASSERT("pprof: string_table[0] is \"\"",
              pf.nstrings > 0 && pf.strings[0].n == 0);
    FZ_ASSERT("pprof: period is the interval",
              pf.period == (uint64_t)interval_ns);
    FZ_ASSERT("pprof: two sample types", pf.nsample_types == 2);
    {
        msg_t a, b;
        parse_msg("pprof ValueType", &pf.sample_types[0], &a, 0);
        parse_msg("pprof ValueType", &pf.sample_types[1], &b, 0);
        FZ_ASSERT("pprof: samples/count and wall/nanoseconds",
                  item_is(string_at(&pf, a.v[1]), "samples") &&
                      item_is(string_at(&pf, a.v[2]), "count") &&
                      item_is(string_at(&pf, b.v[1]), "wall") &&
                      item_is(string_at(&pf, b.v[2]), "nanoseconds"));
    }
    for (i = 0; i < pf.nstrings; i++) {
        if (!fz_utf8_valid((const char *)pf.strings[i].p, pf.strings[i].n)) {
            fz_fail("pprof",
                    "a string_table entry is not valid UTF-8 "
                    "(proto3 string fields must be)",
                    (const char *)pf.strings[i].p, pf.strings[i].n, fz_fail_at);
        }
    }
    for (i = 0; i < pf.nsamples; i++) {
        msg_t s;
        uint64_t locs[PP_DEPTH_LIMIT + 2], vals[4];
        size_t nlocs, nvals;
        fz_buf_t b = {0};
        char num[64];

        parse_msg("pprof Sample", &pf.samples[i], &s, 3);
        if (!s.has[1] || !s.has[2]) {
            fz_fail("pprof", "a Sample without location ids or values", NULL, 0,
                    0);
        }
        err = fz_pb_packed(s.b[1].p, s.b[1].n, locs,
                           sizeof(locs) / sizeof(locs[0]), &nlocs);
        if (!err) {
            err = fz_pb_packed(s.b[2].p, s.b[2].n, vals, 4, &nvals);
        }
        if (err || nlocs > sizeof(locs) / sizeof(locs[0]) || nvals != 2) {
            fz_fail("pprof", err ? err : "bad location_id or value lists", NULL,
                    0, 0);
        }
        for (k = 0; k < nlocs; k++) { /* leaf first */
            uint64_t fn, line;
            const pb_item_t *name, *file;
            location_of(&pf, locs[k], &fn, &line);
            function_of(&pf, fn, &name, &file);
            fz_buf_put(&b, name->p, name->n);
            fz_buf_put(&b, "\x01", 1);
            if (file->n) {
                fz_buf_put(&b, file->p, file->n);
                snprintf(num, sizeof(num), "\x01%llu",
                         (unsigned long long)line);
                fz_buf_put(&b, num, strlen(num));
            }
            fz_buf_put(&b, "\x02", 1);
        }
        snprintf(num, sizeof(num), "#%llu/%llu", (unsigned long long)vals[0],
                 (unsigned long long)vals[1]);
        fz_buf_put(&b, num, strlen(num));
        ms_add(&got, &b);
        /* labels, in order */
        if (s.nrep != nlabels) {
            fz_fail("pprof", "a Sample carries another number of labels", NULL,
                    0, 0);
        }
        for (k = 0; k < nlabels; k++) {
            msg_t l;
            parse_msg("pprof Label", &s.rep[k], &l, 0);
            if (!item_is_text(string_at(&pf, l.v[1]), labels[k].key)) {
                fz_fail("pprof", "a label key differs", NULL, 0, 0);
            }
            if (labels[k].str
                    ? !item_is_text(string_at(&pf, l.v[2]), labels[k].str)
                    : l.v[3] != (uint64_t)labels[k].num) {
                fz_fail("pprof", "a label value differs", NULL, 0, 0);
            }
        }
    }
    want_stacks(w, c, &want, 1, 1, 1, 1);
    ms_compare("pprof", &got, &want, raw.p, raw.n);
    fz_buf_free(&raw);
}

/* ---- driver ---- */

static void check_set(const fz_world_t *w, const pp_profile_t *p,
                      const fz_counts_t *c, const char *name,
                      const pp_pprof_label_t *labels, size_t nlabels)
{
    pp_sink_t o = fz_sink(&out);

    fz_buf_reset(&out);
    pp_export_folded(&o, p);
    fz_check_folded_exact("pp_export_folded", w, c, fz_buf_str(&out), out.n);
    check_speedscope(w, p, c, name);
    check_pprof(w, p, c, labels, nlabels, 10000000);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in_t in = {data, size};
    fz_world_t w;
    pp_pprof_label_t labels[MAX_LABELS];
    size_t nlabels, i;
    const char *name;
    int m;

    if (fz_world_build(&w, &in) != 0) {
        fz_world_free(&w);
        return 0;
    }
    name = fz_wstr(&w, &in, 300);
    nlabels = fz_u8(&in) % (MAX_LABELS + 1);
    for (i = 0; i < nlabels; i++) {
        labels[i].key = fz_wstr(&w, &in, 60);
        if (fz_u8(&in) & 1) {
            labels[i].str = NULL;
            labels[i].num = (int64_t)fz_u32(&in) - 1000;
        }
        else {
            labels[i].str = fz_wstr(&w, &in, 200);
            labels[i].num = 0;
        }
    }

    for (i = 0; i < w.nreq; i++) {
        fz_req_t *r = &w.req[i];
        pp_profile_t p;
        int inflight;
        if (r->fate == FZ_NOT_KEPT) {
            continue;
        }
        FZ_ASSERT("kept or in-flight request found",
                  pp_store_find(w.st, r->id, &rec, &inflight));
        pp_profile_init(&p);
        FZ_ASSERT("profile of a record", pp_profile_add_record(&p, &rec) == 0);
        pp_profile_sort(&p);
        FZ_ASSERT("record profile resolves", pp_profile_resolve(&p, w.st) == 0);
        check_set(&w, &p, &r->counts, name, labels, nlabels);
        pp_profile_free(&p);
    }
    for (m = 0; m < w.nloc; m++) {
        pp_profile_t p;
        fz_counts_t counts;
        int k, first = 1;
        memset(&counts, 0, sizeof(counts));
        for (k = 0; k < w.nloc; k++) {
            size_t c;
            if (w.loc[k] != w.loc[m]) {
                continue;
            }
            first &= k >= m;
            for (c = 0; c < w.loc_counts[k].n; c++) {
                fz_count_add(&counts, w.loc_counts[k].v[c].node,
                             w.loc_counts[k].v[c].count,
                             w.loc_counts[k].v[c].weight_us);
            }
        }
        if (!first) {
            continue;
        }
        pp_profile_init(&p);
        FZ_ASSERT("location profile",
                  pp_render_location_profile(&p, w.st, w.loc[m],
                                             FZ_START_US + 200000000LL, 0,
                                             PP_SIDE_ALL) == 0);
        check_set(&w, &p, &counts, name, labels, nlabels);
        pp_profile_free(&p);
    }
    fz_world_free(&w);
    return 0;
}
