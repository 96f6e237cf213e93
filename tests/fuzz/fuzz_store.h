/* fuzz_store.h: a real store filled from fuzz input, and what each output
 * of it must contain; shared by fuzz_render.c and fuzz_export.c.
 *
 * The input drives the same calls the module makes: locations registered
 * (hostile paths), frames interned (names up to 1.1 KB with NULs, markup,
 * quotes, separators and invalid UTF-8), stacks interned as node chains
 * (one of them up to PP_DEPTH_LIMIT + 2 deep), requests claimed with
 * hostile id, method, URI, vhost and trace ids, samples added, segments
 * opened, a daemon adoption with hostile group names, then each request
 * finished (kept slow, kept fast, not kept) or left in flight.  The model
 * remembers, per request and per location, how many samples each node
 * got, so a target can rebuild every stack an output should list.
 */
#ifndef FUZZ_STORE_H
#define FUZZ_STORE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_check.h"
#include "pp_overview.h"
#include "pp_render.h"
#include "pp_store.h"
#include "pp_store_testing.h"

#define FZ_LOCS 3
#define FZ_FRAMES 24
#define FZ_STACKS 24
#define FZ_REQS 4
#define FZ_SEGS 4
#define FZ_START_US 1700000000000000LL
#define FZ_STORE_BYTES (4ULL << 20)

typedef struct fz_stack {
    uint32_t node;
    uint32_t depth;
    uint32_t frames[PP_DEPTH_LIMIT + 2]; /* store frame ids, root first */
} fz_stack_t;

typedef struct fz_count {
    uint32_t node;
    uint64_t count, weight_us;
} fz_count_t;

typedef struct fz_counts {
    fz_count_t v[FZ_STACKS * FZ_REQS];
    size_t n;
} fz_counts_t;

enum { FZ_INFLIGHT = 0, FZ_KEEP_SLOW, FZ_KEEP_FAST, FZ_NOT_KEPT };

typedef struct fz_req {
    int slot;
    int fate;      /* FZ_* */
    int location;  /* as claimed (may be a row nobody registered) */
    int loc_model; /* index into world.loc, or -1 */
    char id[PP_ID_MAX];
    fz_counts_t counts;
} fz_req_t;

typedef struct fz_world {
    pp_store_t *st;
    int nloc;
    int loc[FZ_LOCS];
    fz_counts_t loc_counts[FZ_LOCS];
    uint32_t nframes;
    uint32_t frame[FZ_FRAMES];
    uint32_t nstacks;
    fz_stack_t *stacks; /* FZ_STACKS of them */
    uint32_t nreq;
    fz_req_t req[FZ_REQS];
    char *strings[256]; /* hostile strings kept for the render options */
    size_t nstrings;
    uint64_t deep_total; /* frames over all stacks (view budget) */
} fz_world_t;

static inline void fz_count_add(fz_counts_t *c, uint32_t node, uint64_t n,
                                uint64_t w)
{
    size_t i;
    for (i = 0; i < c->n; i++) {
        if (c->v[i].node == node) {
            c->v[i].count += n;
            c->v[i].weight_us += w;
            return;
        }
    }
    if (c->n < sizeof(c->v) / sizeof(c->v[0])) {
        c->v[c->n].node = node;
        c->v[c->n].count = n;
        c->v[c->n].weight_us = w;
        c->n++;
    }
}

static inline char *fz_keep(fz_world_t *w, char *s)
{
    if (w->nstrings < sizeof(w->strings) / sizeof(w->strings[0])) {
        w->strings[w->nstrings++] = s;
    }
    else {
        free(s);
        s = NULL;
    }
    return s;
}

/* A hostile string from the input, owned by the world. */
static inline const char *fz_wstr(fz_world_t *w, fz_in_t *in, size_t max)
{
    size_t len;
    const char *s = fz_keep(w, fz_str(in, max, &len));
    return s ? s : "";
}

static inline const fz_stack_t *fz_stack_of(const fz_world_t *w, uint32_t node)
{
    uint32_t i;
    for (i = 0; i < w->nstacks; i++) {
        if (w->stacks[i].node == node) {
            return &w->stacks[i];
        }
    }
    return NULL;
}

/* Length of what the store keeps of a name: cut at its first NUL; past
 * PP_FRAME_TEXT_MAX bytes, the longest prefix of at most that many bytes
 * that is not followed by a UTF-8 continuation byte (no half character). */
static inline size_t fz_interned_len(const char *s, size_t n)
{
    size_t w = strnlen(s, n);

    if (w > PP_FRAME_TEXT_MAX) {
        w = PP_FRAME_TEXT_MAX;
        while (w > 0 && ((unsigned char)s[w] & 0xc0) == 0x80) {
            w--;
        }
    }
    return w;
}

/* The store must give back what was interned, cut as fz_interned_len
 * says. */
static inline void fz_check_interned(const pp_store_t *st, uint32_t fid,
                                     const char *func, size_t fl,
                                     const char *file, size_t fil,
                                     uint32_t line)
{
    pp_frame_view_t fv;
    size_t wf = fz_interned_len(func, fl);
    size_t wfi = fz_interned_len(file, fil);

    FZ_ASSERT("an interned frame resolves", pp_store_frame_view(st, fid, &fv));
    FZ_ASSERT("interned function name comes back as given (cut at NUL "
              "and PP_FRAME_TEXT_MAX)",
              strlen(fv.function) == wf && memcmp(fv.function, func, wf) == 0);
    FZ_ASSERT("interned file name comes back as given",
              strlen(fv.file) == wfi && memcmp(fv.file, file, wfi) == 0);
    FZ_ASSERT("interned line comes back", fv.line == line);
}

/* The store must keep a prefix of what it was given, NUL-terminated, at
 * most cap - 1 bytes, never ending inside a UTF-8 sequence it cut. */
static inline void fz_check_copied(const char *stored, size_t cap,
                                   const char *given)
{
    size_t n = strnlen(stored, cap);
    FZ_ASSERT("stored string is NUL-terminated inside its field", n < cap);
    FZ_ASSERT("stored string is a prefix of the given one",
              strncmp(stored, given, n) == 0);
    if (n < strlen(given) && fz_utf8_valid(given, strlen(given))) {
        FZ_ASSERT("a cut string stays valid UTF-8", fz_utf8_valid(stored, n));
    }
}

/* The handler's turns for the overview, its JSON and /metrics (`what`,
 * PP_OV_*): read the store once, render the snapshot, free it. */
static inline void fz_render_overview(pp_sink_t *o, const pp_store_t *st,
                                      const pp_render_opts_t *opt, int what)
{
    pp_overview_t ov;

    (void)pp_overview_load(&ov, st, opt, what);
    if (what == PP_OV_HTML) {
        pp_render_overview_html(o, &ov, opt);
    }
    else if (what == PP_OV_JSON) {
        pp_render_overview_json(o, &ov, opt);
    }
    else {
        pp_render_metrics(o, &ov, opt);
    }
    pp_overview_free(&ov);
}

/* The same for the JSON of a request and of a location (its profile
 * resolved already). */
static inline void fz_render_request_json(pp_sink_t *o, const pp_store_t *st,
                                          const pp_record_t *rec, int inflight,
                                          const pp_render_opts_t *opt)
{
    pp_request_view_t v;

    pp_request_load(&v, st, rec, inflight);
    pp_render_request_json(o, &v, opt);
    pp_request_free(&v);
}

static inline void fz_render_location_json(pp_sink_t *o, const pp_store_t *st,
                                           int row, const pp_profile_t *p,
                                           const pp_render_opts_t *opt)
{
    pp_ov_location_t *l = malloc(sizeof(*l));

    if (l && pp_location_load(l, st, row) == 0) {
        pp_render_location_json(o, l, p, opt);
    }
    free(l);
}

/* And for the folded stacks and the HTML pages of a request and of a
 * location: load, render, free, as the handler does. */
static inline void fz_render_request_folded(pp_sink_t *o, const pp_store_t *st,
                                            const pp_record_t *rec)
{
    pp_request_view_t v;

    pp_request_load(&v, st, rec, 0);
    pp_render_request_folded(o, &v);
    pp_request_free(&v);
}

static inline void fz_render_request_html(pp_sink_t *o, const pp_store_t *st,
                                          const pp_record_t *rec, int inflight,
                                          const pp_render_opts_t *opt)
{
    pp_request_page_t *pg = malloc(sizeof(*pg));

    if (pg) {
        pp_request_page_load(pg, st, rec, inflight);
        pp_render_request_html(o, pg, opt);
        pp_request_page_free(pg);
    }
    free(pg);
}

static inline void fz_render_location_html(pp_sink_t *o, const pp_store_t *st,
                                           int row, const pp_render_opts_t *opt)
{
    pp_location_page_t *pg = malloc(sizeof(*pg));

    if (pg) {
        if (pp_location_page_load(pg, st, row, opt) == 0) {
            pp_render_location_html(o, pg, opt);
        }
        pp_location_page_free(pg);
    }
    free(pg);
}

/* Since the start, every side; nothing if memory ran out. */
static inline size_t fz_render_location_folded(pp_sink_t *o,
                                               const pp_store_t *st, int row)
{
    pp_profile_t p;
    size_t n = 0;

    pp_profile_init(&p);
    if (pp_render_location_profile(&p, st, row, 0, 0, PP_SIDE_ALL) == 0) {
        n = pp_render_location_folded(o, &p);
    }
    pp_profile_free(&p);
    return n;
}

static inline void fz_world_free(fz_world_t *w)
{
    size_t i;
    for (i = 0; i < w->nstrings; i++) {
        free(w->strings[i]);
    }
    free(w->stacks);
    pp_store_destroy(w->st);
    memset(w, 0, sizeof(*w));
}

/* Build the world; 0 on success (a store that cannot be made is no
 * finding: the input is skipped). */
static inline int fz_world_build(fz_world_t *w, fz_in_t *in)
{
    const char *err = NULL;
    uint32_t i, j;
    int deep_done = 0;

    memset(w, 0, sizeof(*w));
    w->stacks = calloc(FZ_STACKS, sizeof(*w->stacks));
    if (!w->stacks) {
        abort();
    }
    w->st = pp_store_create(FZ_STORE_BYTES, 8, 8, &err);
    if (!w->st) {
        fprintf(stderr, "pp_store_create: %s\n", err);
        abort();
    }
    {
        uint8_t b = fz_u8(in);
        w->st->sampler_mode = b & 1;
        /* PyProfAllocations on: the metrics' pyprof_alloc_* series */
        w->st->alloc_mean = (b & 2) ? 262144 : 0;
    }

    /* locations */
    w->nloc = 1 + fz_u8(in) % FZ_LOCS;
    for (i = 0; i < (uint32_t)w->nloc; i++) {
        const char *path = fz_wstr(w, in, 300);
        uint32_t interval = 1000 + fz_u32(in) % 10000000;
        w->loc[i] = pp_store_location_register(w->st, path, interval);
        FZ_ASSERT("a location registers", w->loc[i] >= 0);
        pp_store_location_set_root(w->st, w->loc[i],
                                   (fz_u8(in) & 1) ? "/srv/app"
                                                   : fz_wstr(w, in, 300));
    }

    /* frames */
    w->nframes = 1 + fz_u8(in) % FZ_FRAMES;
    for (i = 0; i < w->nframes; i++) {
        size_t fl, fil;
        char *func = fz_keep(w, fz_str(in, 1100, &fl));
        char *file = fz_keep(w, fz_str(in, 1100, &fil));
        uint32_t line = fz_u32(in);
        if (!func || !file) {
            w->nframes = i;
            break;
        }
        w->frame[i] = pp_store_intern_frame(w->st, func, fl, file, fil, line);
        FZ_ASSERT("a frame interns in a roomy store", w->frame[i] != 0);
        fz_check_interned(w->st, w->frame[i], func, fl, file, fil, line);
    }
    if (!w->nframes) {
        return -1;
    }

    /* stacks: node chains, root first */
    w->nstacks = 1 + fz_u8(in) % FZ_STACKS;
    for (i = 0; i < w->nstacks; i++) {
        fz_stack_t *s = &w->stacks[i];
        uint8_t d = fz_u8(in);
        uint32_t parent = 0, pattern[4];
        int deep = d == 0xff && !deep_done;

        s->depth = deep ? PP_DEPTH_LIMIT - 30 + fz_u8(in) % 33 : 1 + d % 12;
        deep_done |= deep;
        for (j = 0; j < 4; j++) {
            pattern[j] = fz_u8(in) % w->nframes;
        }
        for (j = 0; j < s->depth; j++) {
            /* a deep stack repeats a pattern (recursion); a short one
             * takes each frame from the input */
            uint32_t f =
                deep || j < 4 ? pattern[j % 4] : fz_u8(in) % w->nframes;
            s->frames[j] = w->frame[f];
            parent = pp_store_intern_node(w->st, parent, s->frames[j]);
            FZ_ASSERT("a node interns in a roomy store", parent != 0);
        }
        s->node = parent;
        w->deep_total += s->depth;
    }

    /* requests */
    w->nreq = 1 + fz_u8(in) % FZ_REQS;
    for (i = 0; i < w->nreq; i++) {
        fz_req_t *r = &w->req[i];
        pp_req_info_t info;
        char id[PP_ID_MAX + 8];
        uint8_t sel = fz_u8(in), nsamp, k;
        pp_slot_t *slot;
        uint64_t serial;

        memset(&info, 0, sizeof(info));
        /* ids unique by a prefix, hostile after it */
        snprintf(id, sizeof(id), "%u|%s", i, fz_wstr(w, in, 80));
        info.id = fz_keep(w, strdup(id));
        info.method = fz_wstr(w, in, 24);
        info.uri = fz_wstr(w, in, 700);
        info.vhost = fz_wstr(w, in, 140);
        if (sel & 1) {
            info.trace_id = fz_wstr(w, in, 40);
            info.parent_id = fz_wstr(w, in, 24);
        }
        info.flags = (sel >> 1) & (PP_REQ_TRIGGERED | PP_REQ_CAPTURED);
        info.capture = fz_u8(in);
        r->loc_model = fz_u8(in) % (w->nloc + 1);
        if (r->loc_model == w->nloc) {
            /* a row nobody registered, or out of range */
            info.location = (sel & 8) ? PP_MAX_LOCATIONS - 1 : -1 - (sel & 7);
            r->loc_model = -1;
        }
        else {
            info.location = w->loc[r->loc_model];
        }
        r->location = info.location;
        info.pid = (int32_t)getpid();
        info.tid = (int32_t)fz_u32(in);
        info.interval_us = 1000 + fz_u32(in) % 1000000;
        info.max_depth = PP_DEPTH_LIMIT;
        info.start_us = FZ_START_US + (int64_t)(fz_u32(in) % 100000000);
        r->slot = pp_store_claim(w->st, &info, (int)i);
        FZ_ASSERT("a slot is free", r->slot >= 0);
        slot = pp_store_slot(w->st, r->slot);
        serial = slot->rec.req.serial;
        fz_check_copied(slot->rec.req.id, PP_ID_MAX, info.id);
        fz_check_copied(slot->rec.req.method, PP_METHOD_MAX, info.method);
        fz_check_copied(slot->rec.req.uri, PP_URI_MAX, info.uri);
        fz_check_copied(slot->rec.req.vhost, PP_VHOST_MAX, info.vhost);
        snprintf(r->id, sizeof(r->id), "%s", slot->rec.req.id);

        if (sel & 0x10) {
            uint64_t s2;
            uint32_t iv, md;
            const char *pg = fz_wstr(w, in, 80), *ag = fz_wstr(w, in, 120);
            FZ_ASSERT("the daemon adopts the request",
                      pp_store_adopt(w->st, r->id, (int32_t)getpid(), pg, ag,
                                     &s2, &iv, &md) == r->slot);
            fz_check_copied(slot->rec.req.process_group, PP_GROUP_MAX, pg);
            fz_check_copied(slot->rec.req.app_group, PP_APP_GROUP_MAX, ag);
        }
        if (sel & 0x20) {
            pp_store_note_unique_id(w->st, r->slot, fz_wstr(w, in, 60));
            pp_store_note_handler_start(w->st, r->slot,
                                        info.start_us + fz_u8(in) * 100);
        }
        nsamp = fz_u8(in) % 12;
        for (k = 0; k < nsamp; k++) {
            const fz_stack_t *s = &w->stacks[fz_u8(in) % w->nstacks];
            uint32_t reps = 1 + fz_u8(in) % 4, x;
            uint64_t wt = fz_u32(in) % 1000000;
            int how = fz_u8(in) % 3;
            uint32_t segs = fz_u8(in) % 3;
            for (x = 0; x < segs && k < FZ_SEGS; x++) {
                const char *name = fz_wstr(w, in, 40);
                const char *detail = fz_wstr(w, in, 140);
                uint32_t g =
                    pp_store_segment_begin(w->st, r->slot, serial, name, detail,
                                           info.start_us + k * 1000);
                if (g && (fz_u8(in) & 1)) {
                    pp_store_segment_end(w->st, r->slot, serial, g,
                                         info.start_us + k * 1000 + 500);
                }
            }
            for (x = 0; x < reps; x++) {
                pp_store_add_sample_ex(w->st, slot, s->node,
                                       info.start_us + 1000 * (k + 1), wt,
                                       wt / 2, how);
                fz_count_add(&r->counts, s->node, 1, wt);
            }
            if (how == 2 && (sel & 0x40)) {
                pp_store_sample_outside(w->st, r->slot, serial, info.start_us,
                                        wt);
            }
        }
        if (sel & 0x80) {
            /* PyProfAllocations' estimates, any values, stacks of the
             * world's (and maybe a node that resolves to nothing) */
            pp_req_t a;
            pp_alloc_stack_t as[PP_ALLOC_STACKS];
            uint32_t na = fz_u8(in) % (PP_ALLOC_STACKS + 2), x;

            memset(&a, 0, sizeof(a));
            memset(as, 0, sizeof(as));
            a.alloc_bytes = fz_u32(in);
            a.alloc_count = fz_u8(in);
            a.alloc_live_bytes = fz_u32(in);
            a.alloc_samples = fz_u8(in);
            a.alloc_mean = fz_u32(in);
            a.alloc_flags = fz_u8(in) & 1;
            for (x = 0; x < na && x < PP_ALLOC_STACKS; x++) {
                uint8_t k2 = fz_u8(in);
                as[x].node =
                    k2 == 255 ? 0xfffffff0u : w->stacks[k2 % w->nstacks].node;
                as[x].bytes = fz_u32(in);
                as[x].count = fz_u8(in);
            }
            pp_store_note_alloc(w->st, r->slot, serial, &a, as, na);
        }
        r->fate = fz_u8(in) % 4;
        if (r->fate != FZ_INFLIGHT) {
            int32_t status = (int32_t)(fz_u32(in) % 1200) - 100;
            int64_t dur = (int64_t)(fz_u32(in) % 120000000);
            pp_store_note_app_end(w->st, r->slot, info.start_us + dur / 2);
            pp_store_finish(
                w->st, r->slot, status, dur, dur / 3,
                r->fate == FZ_KEEP_SLOW
                    ? PP_KEEP_SLOW
                    : (r->fate == FZ_KEEP_FAST ? PP_KEEP_FAST : PP_KEEP_NONE));
            if (r->loc_model >= 0) {
                size_t c;
                for (c = 0; c < r->counts.n; c++) {
                    fz_count_add(&w->loc_counts[r->loc_model],
                                 r->counts.v[c].node, r->counts.v[c].count,
                                 r->counts.v[c].weight_us);
                }
            }
        }
    }
    return 0;
}

/* ---- expected texts ---- */

/* A frame's folded text: "function (file:line)", or "function" when the
 * file is empty; ';' and controls neutralised, invalid UTF-8 U+FFFD. */
static inline void fz_expect_folded_frame(fz_buf_t *b, const pp_store_t *st,
                                          uint32_t fid)
{
    pp_frame_view_t fv;
    size_t from = b->n, i;

    FZ_ASSERT("frame resolves", pp_store_frame_view(st, fid, &fv));
    fz_sanitize(b, fv.function, strlen(fv.function), " ", NULL);
    if (fv.file[0]) {
        char line[24];
        fz_buf_put(b, " (", 2);
        fz_sanitize(b, fv.file, strlen(fv.file), " ", NULL);
        snprintf(line, sizeof(line), ":%u)", fv.line);
        fz_buf_put(b, line, strlen(line));
    }
    for (i = from; i < b->n; i++) {
        if (b->p[i] == ';') {
            b->p[i] = ':';
        }
    }
}

static int fz_cmp_lines(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Split text into lines, sort them; returns the array (free it and the
 * copy in *hold). */
static inline char **fz_sorted_lines(const char *text, size_t n, size_t *count,
                                     char **hold)
{
    size_t i, k = 0, cap = 16;
    char **v = malloc(cap * sizeof(*v)), *c = malloc(n + 1);

    if (!v || !c) {
        abort();
    }
    memcpy(c, text, n);
    c[n] = '\0';
    for (i = 0; i < n;) {
        char *nl = memchr(c + i, '\n', n - i);
        if (!nl) {
            break;
        }
        *nl = '\0';
        if (k == cap) {
            cap *= 2;
            v = realloc(v, cap * sizeof(*v));
            if (!v) {
                abort();
            }
        }
        v[k++] = c + i;
        i = (size_t)(nl - c) + 1;
    }
    qsort(v, k, sizeof(*v), fz_cmp_lines);
    *count = k;
    *hold = c;
    return v;
}

/* The folded export of `counts` must be exactly one line per stack with
 * samples, each "f1;f2;...;fn COUNT". */
static inline void fz_check_folded_exact(const char *what, const fz_world_t *w,
                                         const fz_counts_t *counts,
                                         const char *text, size_t n)
{
    fz_buf_t want = {0};
    size_t lines, i, ngot, nwant;
    uint64_t sum, want_sum = 0;
    char **got, **exp, *h1, *h2;

    FZ_CHECK(what, fz_folded_check(text, n, &lines, &sum), text, n);
    for (i = 0; i < counts->n; i++) {
        const fz_stack_t *s = fz_stack_of(w, counts->v[i].node);
        uint32_t j;
        char num[32];
        if (!counts->v[i].count) {
            continue;
        }
        FZ_ASSERT("model stack known", s);
        for (j = 0; j < s->depth; j++) {
            if (j) {
                fz_buf_put(&want, ";", 1);
            }
            fz_expect_folded_frame(&want, w->st, s->frames[j]);
        }
        snprintf(num, sizeof(num), " %llu\n",
                 (unsigned long long)counts->v[i].count);
        fz_buf_put(&want, num, strlen(num));
        want_sum += counts->v[i].count;
    }
    if (sum != want_sum) {
        fz_fail(what, "folded counts do not add up to the samples taken", text,
                n, 0);
    }
    got = fz_sorted_lines(text, n, &ngot, &h1);
    exp = fz_sorted_lines(fz_buf_str(&want), want.n, &nwant, &h2);
    if (ngot != nwant) {
        fz_fail(what,
                "folded output has another number of stacks than "
                "were sampled",
                text, n, 0);
    }
    for (i = 0; i < ngot; i++) {
        if (strcmp(got[i], exp[i]) != 0) {
            fprintf(stderr, "expected line: %.300s\n", exp[i]);
            fz_fail(what, "a folded line differs from the stack sampled", text,
                    n, (size_t)(strstr(text, got[i]) - text));
        }
    }
    free(got);
    free(exp);
    free(h1);
    free(h2);
    fz_buf_free(&want);
}

/* Expected HTML text of a string (what pp_put_html promises). */
static inline void fz_expect_html(fz_buf_t *b, const char *s, size_t n)
{
    fz_buf_t t = {0};
    size_t i;

    fz_sanitize_html(&t, s, n);
    for (i = 0; i < t.n; i++) {
        switch (t.p[i]) {
        case '<':
            fz_buf_put(b, "&lt;", 4);
            break;
        case '>':
            fz_buf_put(b, "&gt;", 4);
            break;
        case '&':
            fz_buf_put(b, "&amp;", 5);
            break;
        case '"':
            fz_buf_put(b, "&quot;", 6);
            break;
        case '\'':
            fz_buf_put(b, "&#39;", 5);
            break;
        default:
            fz_buf_put(b, t.p + i, 1);
        }
    }
    fz_buf_free(&t);
}

/* `html` must show s escaped, verbatim (with a prefix such as title=" to
 * pin the context). */
static inline void fz_expect_shown(const char *what, const char *html, size_t n,
                                   const char *prefix, const char *s,
                                   const char *suffix)
{
    fz_buf_t want = {0};
    fz_buf_put(&want, prefix, strlen(prefix));
    fz_expect_html(&want, s, strlen(s));
    fz_buf_put(&want, suffix, strlen(suffix));
    if (!memmem(html, n, want.p, want.n)) {
        fprintf(stderr, "expected to find: %.400s\n", want.p);
        fz_fail(what, "the page does not show the string, escaped", html, n, 0);
    }
    fz_buf_free(&want);
}

/* Is `got` (decoded JSON) the sanitized form of stored C string s? */
static inline int fz_json_is(const fz_json_t *got, const char *s)
{
    fz_buf_t want = {0};
    int ok;

    fz_sanitize(&want, s, strlen(s), NULL, NULL);
    ok = got && got->type == FZ_J_STR && got->len == want.n &&
         memcmp(got->str, fz_buf_str(&want), want.n) == 0;
    fz_buf_free(&want);
    return ok;
}

#endif
