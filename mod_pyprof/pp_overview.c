/* pp_overview.c: the one read of the store behind the overview, its JSON
 * and /metrics (see pp_overview.h), and behind the JSON and the HTML
 * pages of one request and of one location.  Location rows, kept traces
 * and in-flight slots are copied through the store's snapshot reads
 * (seqlock copies of the request headers), the in-flight stacks are
 * resolved through pp_profile_resolve and the pages' trees through
 * pp_profile_resolve_tree (bounded walks), the counters are copied word
 * by word; nothing here writes to the store or to a sink.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp_overview.h"

/* ---- location rows ---- */

/* pp_location_current: see pp_overview.h. */
int pp_location_current(const pp_store_t *st, const pp_location_t *loc)
{
    return atomic_load(&loc->used) &&
           loc->config_gen == atomic_load(&st->generation);
}

/* A row's path into buf ("" if unused). */
static const char *location_path(const pp_store_t *st, int idx, char *buf,
                                 size_t cap)
{
    const pp_location_t *loc = pp_store_location((pp_store_t *)st, idx);
    buf[0] = '\0';
    if (!loc || !atomic_load(&loc->used)) {
        return buf;
    }
    snprintf(buf, cap, "%.*s", PP_PREFIX_MAX - 1, loc->path);
    return buf;
}

/* One location's counters and histogram, read once. */
static void snap_location(const pp_location_t *loc, pp_loc_snap_t *s)
{
    int b;
    /* requests is bumped last by writers, so reading it first gives a
     * count never above the sum of the buckets read after it; the JSON
     * reports the buckets' sum as "requests" so the two always agree */
    s->requests = atomic_load(&loc->requests);
    s->samples = atomic_load(&loc->samples);
    s->kept = atomic_load(&loc->kept);
    s->sum_us = atomic_load(&loc->sum_us);
    s->max_us = atomic_load(&loc->max_us);
    s->requests = 0;
    for (b = 0; b < PP_HIST_BUCKETS; b++) {
        s->hist[b] = atomic_load(&loc->hist[b]);
        s->requests += s->hist[b];
    }
}


static int cmp_slowest(const void *a, const void *b)
{
    const pp_req_t *x = a, *y = b;
    if (x->duration_us != y->duration_us) {
        return x->duration_us < y->duration_us ? 1 : -1;
    }
    return x->serial < y->serial ? 1 : (x->serial > y->serial ? -1 : 0);
}

static int cmp_newest(const void *a, const void *b)
{
    const pp_req_t *x = a, *y = b;
    if (x->start_us != y->start_us) {
        return x->start_us < y->start_us ? 1 : -1;
    }
    return x->serial < y->serial ? 1 : (x->serial > y->serial ? -1 : 0);
}

static int cmp_uri(const void *a, const void *b)
{
    const pp_req_t *x = a, *y = b;
    int c = strcmp(x->uri, y->uri);
    return c ? c : cmp_slowest(a, b);
}

static int cmp_oldest(const void *a, const void *b)
{
    const pp_ov_inflight_t *x = a, *y = b;
    return x->q.start_us > y->q.start_us
               ? 1
               : (x->q.start_us < y->q.start_us ? -1 : 0);
}

static int status_matches(int status, int filter)
{
    if (filter == 0) {
        return 1;
    }
    if (filter < 10) {
        return status / 100 == filter;
    }
    return status == filter;
}

static int passes_filters(const pp_req_t *q, const pp_render_opts_t *opt)
{
    return !(
        (opt->process_group &&
         strncmp(q->process_group, opt->process_group, PP_GROUP_MAX) != 0) ||
        (opt->app_group &&
         strncmp(q->app_group, opt->app_group, PP_APP_GROUP_MAX) != 0) ||
        (opt->filter_location >= 0 && q->location != opt->filter_location) ||
        !status_matches(q->status, opt->filter_status) ||
        (opt->min_us >= 0 && q->duration_us < opt->min_us) ||
        (opt->max_us >= 0 && q->duration_us >= opt->max_us));
}

/* Every field of pp_counters_t is an _Atomic uint64_t (or an array of
 * them), so the struct is copied as an array of them: a counter added to
 * it is in the snapshot with no change here. */
static void copy_counters(pp_counters_t *dst, const pp_counters_t *src)
{
    const _Atomic uint64_t *s = (const _Atomic uint64_t *)(const void *)src;
    _Atomic uint64_t *d = (_Atomic uint64_t *)(void *)dst;
    size_t i;

    _Static_assert(sizeof(pp_counters_t) % sizeof(_Atomic uint64_t) == 0,
                   "pp_counters_t holds 64-bit counters only");
    for (i = 0; i < sizeof(*dst) / sizeof(*d); i++) {
        atomic_store(&d[i], atomic_load(&s[i]));
    }
}

/* A row's path and what every page shows of it. */
static void read_location(pp_ov_location_t *l, const pp_location_t *loc,
                          int row)
{
    l->row = row;
    snprintf(l->path, sizeof(l->path), "%.*s", PP_PREFIX_MAX - 1, loc->path);
    l->interval_us = loc->interval_us;
    l->created_us = loc->created_us;
    snap_location(loc, &l->s);
    l->gil_wait_us =
        atomic_load_explicit(&loc->gil_wait_us, memory_order_relaxed);
    l->gil_blocking_us =
        atomic_load_explicit(&loc->gil_blocking_us, memory_order_relaxed);
    l->alloc_bytes =
        atomic_load_explicit(&loc->alloc_bytes, memory_order_relaxed);
    l->alloc_retained =
        atomic_load_explicit(&loc->alloc_retained, memory_order_relaxed);
}

static int gil_row_cmp(const void *a, const void *b)
{
    const pp_gil_row_t *x = a, *y = b;

    if (x->wait_us != y->wait_us) {
        return x->wait_us < y->wait_us ? 1 : -1;
    }
    if (x->holder != y->holder) {
        return x->holder < y->holder ? -1 : 1;
    }
    return x->waiter < y->waiter ? -1 : x->waiter > y->waiter;
}

int pp_gil_rows_load(pp_gil_rows_t *g, const pp_store_t *st)
{
    int i, k;

    memset(g, 0, sizeof(*g));
    for (i = 0; i < PP_MAX_LOCATIONS; i++) {
        const pp_location_t *loc = pp_store_location((pp_store_t *)st, i);

        if (!loc || !atomic_load(&loc->used)) {
            continue;
        }
        location_path(st, i, g->path[i], sizeof(g->path[i]));
        for (k = 0; k < PP_GIL_BLAME_ROWS; k++) {
            const pp_agg_entry_t *e = &loc->gil_blame[k];
            uint64_t key = atomic_load(&e->key);
            pp_gil_row_t *r;

            if (!key || !atomic_load(&e->weight_us)) {
                continue;
            }
            if (!g->rows &&
                !(g->rows = calloc((size_t)PP_MAX_LOCATIONS * PP_GIL_BLAME_ROWS,
                                   sizeof(*g->rows)))) {
                return -1;
            }
            r = &g->rows[g->n++];
            r->holder = i;
            r->waiter = (int)(key >> 32) - 1;
            if (r->waiter >= PP_MAX_LOCATIONS) {
                r->waiter = -1;
            }
            if (!(uint32_t)key ||
                !pp_store_frame_view(st, (uint32_t)key, &r->f)) {
                r->f.function = "";
                r->f.file = "";
                r->f.line = 0;
            }
            r->samples = atomic_load(&e->count);
            r->wait_us = atomic_load(&e->weight_us);
            r->delayed = atomic_load(&e->cpu_us);
        }
    }
    if (g->n) {
        qsort(g->rows, g->n, sizeof(*g->rows), gil_row_cmp);
    }
    return 0;
}

void pp_gil_rows_free(pp_gil_rows_t *g)
{
    free(g->rows);
    g->rows = NULL;
    g->n = 0;
}

/* The current generation's rows first, in row order, then the rows of
 * earlier configurations (path only). */
static int load_locations(pp_overview_t *ov, const pp_store_t *st, int what)
{
    int cur[PP_MAX_LOCATIONS], old[PP_MAX_LOCATIONS], i, c, b;
    size_t ncur = 0, nold = 0, k;

    for (i = 0; i < PP_MAX_LOCATIONS; i++) {
        const pp_location_t *loc = pp_store_location((pp_store_t *)st, i);
        if (pp_location_current(st, loc)) {
            cur[ncur++] = i;
        }
        else if (loc && atomic_load(&loc->used)) {
            old[nold++] = i;
        }
    }
    if (ncur + nold == 0) {
        return 0;
    }
    if (!(ov->loc = calloc(ncur + nold, sizeof(*ov->loc)))) {
        return -1;
    }
    for (k = 0; k < ncur + nold; k++) {
        int row = k < ncur ? cur[k] : old[k - ncur];
        const pp_location_t *loc = pp_store_location((pp_store_t *)st, row);
        pp_ov_location_t *l = &ov->loc[k];

        if (k >= ncur) {
            l->row = row;
            snprintf(l->path, sizeof(l->path), "%.*s", PP_PREFIX_MAX - 1,
                     loc->path);
            continue;
        }
        read_location(l, loc, row);
        if (what == PP_OV_METRICS) {
            for (c = 0; c < PP_STATUS_CLASSES; c++) {
                for (b = 0; b < PP_HIST_BUCKETS; b++) {
                    l->class_hist[c][b] = atomic_load(&loc->class_hist[c][b]);
                }
                l->class_sum_us[c] = atomic_load(&loc->class_sum_us[c]);
            }
        }
        else if (what == PP_OV_HTML) {
            l->capture_id = atomic_load(&loc->capture_id);
            l->capture_n = loc->capture_n;
            l->capture_left = atomic_load(&loc->capture_left);
        }
    }
    ov->nloc = ncur;
    ov->nrows = ncur + nold;
    return 0;
}

void pp_overview_index(pp_overview_t *ov)
{
    size_t k;
    int i;

    for (i = 0; i < PP_MAX_LOCATIONS; i++) {
        ov->by_row[i] = -1;
    }
    for (k = 0; k < ov->nrows; k++) {
        if (ov->loc[k].row >= 0 && ov->loc[k].row < PP_MAX_LOCATIONS) {
            ov->by_row[ov->loc[k].row] = (int)k;
        }
    }
}

static pp_ov_location_t *row_of(const pp_overview_t *ov, int row)
{
    if (row < 0 || row >= PP_MAX_LOCATIONS || ov->by_row[row] < 0) {
        return NULL;
    }
    return &ov->loc[ov->by_row[row]];
}

const char *pp_overview_path(const pp_overview_t *ov, int row)
{
    const pp_ov_location_t *l = row_of(ov, row);
    return l ? l->path : "";
}

const char *pp_overview_reader(const pp_overview_t *ov)
{
    const pp_counters_t *c = &ov->c;
    /* started guarded and not fallen back since (never below 0: the
     * counters are read one by one while samplers start) */
    uint64_t guarded = c->guarded_processes > c->guard_replaced
                           ? c->guarded_processes - c->guard_replaced
                           : 0;

    if (ov->sampler_mode == PP_SAMPLER_GIL) {
        return "gil";
    }
    if (!guarded) {
        return ov->sampler_mode == PP_SAMPLER_NOGIL && !c->nogil_processes
                   ? "guarded" /* none started yet: what they will do */
                   : "syscall";
    }
    return guarded >= c->nogil_processes ? "guarded" : "mixed";
}

/* Is q one of the requests of its location's latest capture? */
static int captured_now(const pp_overview_t *ov, const pp_req_t *q)
{
    const pp_ov_location_t *l = row_of(ov, q->location);

    return (q->flags & PP_REQ_CAPTURED) && l && l->capture_id &&
           q->capture == l->capture_id;
}

/* Group the captured requests (read in store order) by location, in row
 * order, each location's in store order still. */
static int group_captures(pp_overview_t *ov)
{
    pp_req_t *by_loc;
    size_t i, k, at = 0;

    if (!ov->ncaptured) {
        return 0;
    }
    if (!(by_loc = malloc(sizeof(*by_loc) * ov->ncaptured))) {
        ov->ncaptured = 0;
        return -1;
    }
    for (i = 0; i < ov->nloc; i++) {
        pp_ov_location_t *l = &ov->loc[i];
        l->capture_first = at;
        for (k = 0; k < ov->ncaptured; k++) {
            if (ov->captured[k].location == l->row) {
                by_loc[at++] = ov->captured[k];
            }
        }
        l->ncaptured = at - l->capture_first;
    }
    free(ov->captured);
    ov->captured = by_loc;
    ov->ncaptured = at;
    return 0;
}

/* One more captured request; -1 (left out) if memory runs out. */
static int add_captured(pp_overview_t *ov, const pp_req_t *q, size_t *cap)
{
    if (ov->ncaptured == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        pp_req_t *nv = realloc(ov->captured, sizeof(*nv) * ncap);
        if (!nv) {
            return -1;
        }
        ov->captured = nv;
        *cap = ncap;
    }
    ov->captured[ov->ncaptured++] = *q;
    return 0;
}

/* Kept traces: those passing the filters, sorted; on the HTML page also
 * those of the latest captures.  One pass over the store's list. */
static int load_traces(pp_overview_t *ov, const pp_store_t *st,
                       const pp_render_opts_t *opt, int what)
{
    uint32_t i, n = pp_store_listed_traces(st);
    size_t cap = 0;
    int rc = 0;

    if (!(ov->traces = malloc(sizeof(pp_req_t) * (n + 1)))) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        pp_req_t *q = &ov->traces[ov->ntraces];
        if (!pp_store_read_req(pp_store_trace_at(st, i), q)) {
            continue;
        }
        if (what == PP_OV_HTML && captured_now(ov, q) &&
            add_captured(ov, q, &cap)) {
            rc = -1;
        }
        if (passes_filters(q, opt)) {
            ov->ntraces++;
        }
    }
    qsort(ov->traces, ov->ntraces, sizeof(pp_req_t),
          opt->sort == PP_SORT_TIME
              ? cmp_newest
              : (opt->sort == PP_SORT_URI ? cmp_uri : cmp_slowest));
    ov->ntraces_listed = ov->ntraces;
    if (what == PP_OV_HTML) {
        if (ov->ntraces_listed > PP_OV_HTML_ROWS) {
            /* only the rows it lists are held while the page is written
             * (copied, not realloc'ed: a big block freed whole keeps
             * glibc's mmap threshold up, and the next page off mmap) */
            pp_req_t *rows = malloc(sizeof(pp_req_t) * PP_OV_HTML_ROWS);
            if (rows) {
                memcpy(rows, ov->traces, sizeof(pp_req_t) * PP_OV_HTML_ROWS);
                free(ov->traces);
                ov->traces = rows;
            }
            ov->ntraces_listed = PP_OV_HTML_ROWS;
        }
        if (group_captures(ov)) {
            rc = -1;
        }
    }
    return rc;
}

/* Slot k's request, if one is running: a request being finished already
 * has its final status in the slot while its trace is copied out, and is
 * not listed as in flight any more. */
static int read_inflight(const pp_store_t *st, uint32_t k, pp_req_t *q)
{
    const pp_record_t *r = pp_store_slot_rec(st, k);

    return r && pp_store_read_req(r, q) && q->status == 0;
}

/* Each in-flight request's latest stack, resolved once for all of them:
 * its depth, and the innermost PP_OV_STACK_SHOWN frames. */
static int load_stacks(pp_overview_t *ov, const pp_store_t *st)
{
    uint32_t tmp[PP_DEPTH_LIMIT + 2];
    size_t k;
    int rc = 0;

    for (k = 0; k < ov->ninflight; k++) {
        if (pp_profile_add(&ov->stacks, ov->inflight[k].q.last_node, 1, 0, 0)) {
            rc = -1;
            break;
        }
    }
    if (rc == 0 && pp_profile_resolve(&ov->stacks, st)) {
        rc = -1; /* the stacks not reached stay unresolved: depth 0 */
    }
    for (k = 0; k < ov->ninflight; k++) {
        pp_ov_inflight_t *e = &ov->inflight[k];
        const uint32_t *at = pp_u64map_find(&ov->stacks.index, e->q.last_node);
        uint32_t j, from;

        if (!e->q.last_node || !at || !*at) {
            continue;
        }
        e->depth = pp_profile_stack_frames(&ov->stacks, *at - 1, tmp,
                                           PP_DEPTH_LIMIT + 2);
        from = e->depth > PP_OV_STACK_SHOWN ? e->depth - PP_OV_STACK_SHOWN : 0;
        for (j = from; j < e->depth; j++) {
            e->frames[e->shown++] = tmp[j];
        }
    }
    return rc;
}

/* Requests in flight, oldest first; /metrics only counts them. */
static int load_inflight(pp_overview_t *ov, const pp_store_t *st, int what)
{
    uint32_t k;
    pp_req_t q;

    if (what != PP_OV_METRICS &&
        !(ov->inflight =
              malloc(sizeof(*ov->inflight) * (st->nslots ? st->nslots : 1)))) {
        return -1;
    }
    for (k = 0; k < st->nslots; k++) {
        pp_ov_location_t *l;
        if (!read_inflight(st, k, &q)) {
            continue;
        }
        if ((l = row_of(ov, q.location))) {
            l->inflight++;
        }
        if (ov->inflight) {
            memset(&ov->inflight[ov->ninflight], 0, sizeof(*ov->inflight));
            ov->inflight[ov->ninflight++].q = q;
        }
    }
    if (ov->inflight && ov->ninflight > 1) {
        qsort(ov->inflight, ov->ninflight, sizeof(*ov->inflight), cmp_oldest);
    }
    return what == PP_OV_HTML ? load_stacks(ov, st) : 0;
}

int pp_overview_load(pp_overview_t *ov, const pp_store_t *st,
                     const pp_render_opts_t *opt, int what)
{
    int rc = 0;

    memset(ov, 0, sizeof(*ov));
    pp_profile_init(&ov->stacks);
    copy_counters(&ov->c, &st->c);
    ov->created_us = st->created_us;
    ov->sampler_mode = st->sampler_mode;
    ov->alloc_mean = st->alloc_mean;
    ov->total_size = st->total_size;
    ov->arena_used = pp_store_arena_used(st);
    ov->arena_size = st->arena_size;
    ov->nslots = st->nslots;
    ov->keep = st->keep;
    ov->nframes = st->nframes;
    ov->nnodes = st->nnodes;
    if (what == PP_OV_HTML) {
        pp_store_form_nonce(st, opt->now_us, ov->nonce);
    }
    rc = load_locations(ov, st, what);
    pp_overview_index(ov);
    if (rc) {
        return -1; /* nothing else names a row without them */
    }
    if (what != PP_OV_METRICS && load_traces(ov, st, opt, what)) {
        rc = -1;
    }
    if (load_inflight(ov, st, what)) {
        rc = -1;
    }
    if (what == PP_OV_HTML && pp_gil_rows_load(&ov->gil, st) != 0) {
        rc = -1;
    }
    return rc;
}

void pp_overview_free(pp_overview_t *ov)
{
    free(ov->loc);
    free(ov->traces);
    free(ov->inflight);
    free(ov->captured);
    pp_gil_rows_free(&ov->gil);
    pp_profile_free(&ov->stacks);
    memset(ov, 0, sizeof(*ov));
}

int pp_location_load(pp_ov_location_t *l, const pp_store_t *st, int row)
{
    const pp_location_t *loc = pp_store_location((pp_store_t *)st, row);

    memset(l, 0, sizeof(*l));
    if (!loc || !atomic_load(&loc->used)) {
        return -1;
    }
    read_location(l, loc, row);
    pp_store_location_root(st, row, l->root, sizeof(l->root));
    return 0;
}

void pp_gil_view_load(pp_gil_view_t *v, const pp_store_t *st,
                      const pp_record_t *rec)
{
    uint32_t i, j, n = rec->req.ngil_holders;

    memset(v, 0, sizeof(*v));
    if (n > PP_GIL_HOLDERS) {
        n = PP_GIL_HOLDERS;
    }
    for (i = 0; i < n; i++) {
        const pp_gil_holder_t *h = &rec->gil_holders[i];

        /* insertion by wait, largest first (eight at most) */
        for (j = v->n; j > 0 && v->e[j - 1].h.wait_us < h->wait_us; j--) {
            v->e[j] = v->e[j - 1];
        }
        v->e[j].h = *h;
        v->e[j].h.id[PP_ID_MAX - 1] = '\0';
        v->e[j].h.method[PP_METHOD_MAX - 1] = '\0';
        v->e[j].h.uri[PP_GIL_URI_MAX - 1] = '\0';
        if (!h->frame || !pp_store_frame_view(st, h->frame, &v->e[j].f)) {
            v->e[j].f.function = "";
            v->e[j].f.file = "";
            v->e[j].f.line = 0;
        }
        v->e[j].location[0] = '\0';
        if (h->serial && h->location >= 0) {
            location_path(st, h->location, v->e[j].location,
                          sizeof(v->e[j].location));
        }
        v->n++;
    }
}

void pp_request_load(pp_request_view_t *v, const pp_store_t *st,
                     const pp_record_t *rec, int inflight)
{
    pp_gil_view_load(&v->gil, st, rec);
    pp_alloc_view_load(&v->alloc, st, rec);
    v->rec = rec;
    v->inflight = inflight;
    location_path(st, rec->req.location, v->location, sizeof(v->location));
    pp_profile_init(&v->p);
    /* out of memory: no stacks rather than some */
    v->failed = pp_profile_add_record(&v->p, rec) != 0;
    if (v->failed) {
        pp_profile_free(&v->p);
    }
    pp_profile_sort(&v->p);
    if (!v->failed && pp_profile_resolve(&v->p, st) != 0) {
        v->failed = 1;
        pp_profile_free(&v->p);
    }
}

void pp_request_free(pp_request_view_t *v)
{
    pp_profile_free(&v->p);
}

void pp_request_page_load(pp_request_page_t *pg, const pp_store_t *st,
                          const pp_record_t *rec, int inflight)
{
    memset(pg, 0, sizeof(*pg));
    pg->rec = rec;
    pg->inflight = inflight;
    pg->sampler_mode = st->sampler_mode;
    location_path(st, rec->req.location, pg->location, sizeof(pg->location));
    pp_store_location_root(st, rec->req.location, pg->root, sizeof(pg->root));
    pp_gil_view_load(&pg->gil, st, rec);
    pp_alloc_view_load(&pg->alloc, st, rec);
    pp_profile_init(&pg->p);
    if (rec->req.samples == 0) {
        return; /* the page says so, and draws no tree */
    }
    if (pp_profile_add_record(&pg->p, rec) != 0) {
        pg->failed = PP_PAGE_NO_STACKS;
        pp_profile_free(&pg->p);
        return;
    }
    pp_profile_sort(&pg->p);
    if (pp_profile_resolve_tree(&pg->p, st, &pg->tree) != 0) {
        pg->failed = PP_PAGE_NO_TREE;
        pp_tree_free(&pg->tree);
        pp_profile_free(&pg->p);
    }
}

void pp_request_page_free(pp_request_page_t *pg)
{
    pp_tree_free(&pg->tree);
    pp_profile_free(&pg->p); /* after its tree: the tree reads its frames */
}

/* The diff's two sides: both trees built whatever happened, so both can
 * be freed; if either side ran short of memory, neither is kept. */
static void load_diff(pp_location_page_t *pg, const pp_store_t *st, int row,
                      const pp_render_opts_t *opt)
{
    int ok;

    ok = pp_profile_of_location(&pg->p, st, row, opt->now_us, 0,
                                PP_SIDE_SLOW) == 0;
    ok = pp_profile_of_location(&pg->rest, st, row, opt->now_us, 0,
                                PP_SIDE_REST) == 0 &&
         ok;
    ok = pp_profile_resolve_tree(&pg->p, st, &pg->tree) == 0 && ok;
    ok = pp_profile_resolve_tree(&pg->rest, st, &pg->rest_tree) == 0 && ok;
    pg->samples = pg->p.samples;
    pg->weight_us = pg->p.weight_us;
    pg->cpu_us = pg->p.cpu_us;
    if (!ok) {
        pg->failed = PP_PAGE_NO_TREE;
        pp_location_page_free(pg);
    }
}

int pp_location_page_load(pp_location_page_t *pg, const pp_store_t *st, int row,
                          const pp_render_opts_t *opt)
{
    memset(pg, 0, sizeof(*pg));
    pp_profile_init(&pg->p);
    pp_profile_init(&pg->rest);
    pg->diff = opt->diff;
    if (pp_location_load(&pg->l, st, row) != 0) {
        return -1;
    }
    (void)pp_gil_rows_load(&pg->gil, st); /* out of memory: no table */
    if (opt->diff) {
        load_diff(pg, st, row, opt);
        return 0;
    }
    if (pp_profile_of_location(&pg->p, st, row, opt->now_us, opt->since_us,
                               opt->side) != 0) {
        pg->failed = PP_PAGE_NO_STACKS;
        pp_profile_free(&pg->p);
        return 0;
    }
    pg->samples = pg->p.samples;
    pg->weight_us = pg->p.weight_us;
    pg->cpu_us = pg->p.cpu_us;
    if (pg->samples && pp_profile_resolve_tree(&pg->p, st, &pg->tree) != 0) {
        pg->failed = PP_PAGE_NO_TREE;
        pp_location_page_free(pg);
    }
    return 0;
}

void pp_location_page_free(pp_location_page_t *pg)
{
    /* the trees first: they read their profiles' frames */
    pp_tree_free(&pg->tree);
    pp_tree_free(&pg->rest_tree);
    pp_profile_free(&pg->p);
    pp_profile_free(&pg->rest);
    pp_gil_rows_free(&pg->gil);
}
