/* pp_render_list.c: the requests a page lists, read out of the store
 * once: kept traces passing the overview's filters in its sort order, and
 * the requests in flight now.  Copies of the request headers only (the
 * store's seqlock read), so the page renders from plain structs.
 */
#include <stdlib.h>
#include <string.h>

#include "pp_render_int.h"

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

/* Kept traces passing the overview's filters, in its sort order. */
void pp_collect_traces(const pp_store_t *st, pp_req_list_t *l,
                       const pp_render_opts_t *opt)
{
    uint32_t i;

    l->n = 0;
    l->v = malloc(sizeof(pp_req_t) * (pp_store_listed_traces(st) + 1));
    if (!l->v) {
        return;
    }
    for (i = 0; i < pp_store_listed_traces(st); i++) {
        pp_req_t *q = &l->v[l->n];
        if (!pp_store_read_req(pp_store_trace_at(st, i), q)) {
            continue;
        }
        if ((opt->process_group && strncmp(q->process_group, opt->process_group,
                                           PP_GROUP_MAX) != 0) ||
            (opt->app_group &&
             strncmp(q->app_group, opt->app_group, PP_APP_GROUP_MAX) != 0) ||
            (opt->filter_location >= 0 &&
             q->location != opt->filter_location) ||
            !status_matches(q->status, opt->filter_status) ||
            (opt->min_us >= 0 && q->duration_us < opt->min_us) ||
            (opt->max_us >= 0 && q->duration_us >= opt->max_us)) {
            continue;
        }
        l->n++;
    }
    qsort(l->v, l->n, sizeof(pp_req_t),
          opt->sort == PP_SORT_TIME
              ? cmp_newest
              : (opt->sort == PP_SORT_URI ? cmp_uri : cmp_slowest));
}

static int cmp_oldest(const void *a, const void *b)
{
    const pp_req_t *x = a, *y = b;
    return x->start_us > y->start_us ? 1 : (x->start_us < y->start_us ? -1 : 0);
}

/* Slot k's request, if one is running: a request being finished already
 * has its final status in the slot while its trace is copied out, and is
 * not listed as in flight any more. */
int pp_read_inflight(const pp_store_t *st, uint32_t k, pp_req_t *q)
{
    const pp_record_t *r = pp_store_slot_rec(st, k);

    return r && pp_store_read_req(r, q) && q->status == 0;
}

void pp_collect_inflight(const pp_store_t *st, pp_req_list_t *l)
{
    uint32_t i;

    l->n = 0;
    l->v = malloc(sizeof(pp_req_t) * (st->nslots ? st->nslots : 1));
    if (!l->v) {
        return;
    }
    for (i = 0; i < st->nslots; i++) {
        if (pp_read_inflight(st, i, &l->v[l->n])) {
            l->n++;
        }
    }
    qsort(l->v, l->n, sizeof(pp_req_t), cmp_oldest);
}
