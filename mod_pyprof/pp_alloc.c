/* pp_alloc.c: PyProfAllocations without Python (see pp_alloc.h): the
 * directive's parser, the sampling estimator, the live set of sampled
 * allocations, and the per-process accumulators that the allocator hooks
 * (pp_py_alloc.c) charge and the request glue flushes into the store.
 *
 * Everything process-wide here is private to the process (calloc'ed at
 * setup, inherited by nothing: a fork from a request thread stops
 * sampling in the child).  One leaf mutex guards the accumulators and the
 * live set; the hooks take it only on their slow path (a sampled
 * allocation, a free the filter does not rule out), the glue once per
 * request end.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pp_alloc.h"
#include "pp_parse.h"
#include "pp_profile.h"

/* distinct stacks a request accumulates before the rest are folded */
#define ACC_STACKS 64 /* power of two */

const char *pp_alloc_parse(const char *v, uint64_t *mean)
{
    if (v && strcasecmp(v, "off") == 0) {
        *mean = 0;
        return NULL;
    }
    if (pp_parse_size(v, 1, PP_ALLOC_MEAN_MAX, mean)) {
        return "expected Off (the default: no allocation profiling) or the "
               "mean bytes between samples, from 1 (every allocation) to "
               "" PP_ALLOC_MEAN_MAX_TEXT ", with an optional K, M or G "
               "suffix (e.g. 256K)";
    }
    return NULL;
}

/* ---- sampling maths ---- */

void pp_alloc_rng_seed(pp_alloc_rng_t *r, uint64_t seed)
{
    r->s = seed ? seed : 0x2545f4914f6cdd1dULL;
}

double pp_alloc_rng_unit(pp_alloc_rng_t *r)
{
    uint64_t x = r->s;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    /* the top 53 bits, shifted to (0, 1] */
    return (double)(((x * 0x2545f4914f6cdd1dULL) >> 11) + 1) *
           (1.0 / 9007199254740992.0);
}

int64_t pp_alloc_gap(pp_alloc_rng_t *r, uint64_t mean)
{
    double g = -log(pp_alloc_rng_unit(r)) * (double)mean;

    if (g < 1.0) {
        return 1;
    }
    /* -log of the smallest unit is about 36.7: far below INT64_MAX for
     * any mean the directive accepts */
    return (int64_t)g;
}

void pp_alloc_weight(uint64_t n, uint64_t mean, double *bytes, double *count)
{
    double p;

    if (n >= mean || n == 0) {
        *bytes = (double)n;
        *count = 1.0;
        return;
    }
    p = -expm1(-(double)n / (double)mean); /* 1 - exp(-n/mean) */
    *bytes = (double)n / p;
    *count = 1.0 / p;
}

/* ---- the live set ---- */

int pp_alloc_live_init(pp_alloc_live_t *l, uint32_t cap)
{
    memset(l->filter, 0, sizeof(l->filter));
    l->used = 0;
    l->cap = cap;
    l->e = calloc(cap, sizeof(*l->e));
    return l->e ? 0 : -1;
}

void pp_alloc_live_free(pp_alloc_live_t *l)
{
    free(l->e);
    l->e = NULL;
    l->cap = l->used = 0;
}

static uint32_t live_home(const pp_alloc_live_t *l, uintptr_t p)
{
    return (uint32_t)((((uint64_t)p >> 4) * 0xff51afd7ed558ccdULL) >> 32) &
           (l->cap - 1);
}

int pp_alloc_live_add(pp_alloc_live_t *l, const pp_alloc_live_entry_t *in)
{
    uint32_t i, h;
    uint8_t *f;

    if (!l->e || !in->ptr || (uint64_t)l->used * 4 >= (uint64_t)l->cap * 3) {
        return -1;
    }
    for (i = live_home(l, in->ptr);; i = (i + 1) & (l->cap - 1)) {
        if (!l->e[i].ptr) {
            break;
        }
        if (l->e[i].ptr == in->ptr) {
            /* a block given out again whose free we never saw (the hooks
             * were displaced meanwhile): the new one replaces it */
            l->e[i] = *in;
            return 0;
        }
    }
    l->e[i] = *in;
    l->used++;
    h = pp_alloc_filter_hash(in->ptr);
    f = &l->filter[h];
    if (*f < 255) {
        (*f)++;
    }
    return 0;
}

int pp_alloc_live_take(pp_alloc_live_t *l, uintptr_t p,
                       pp_alloc_live_entry_t *out)
{
    uint32_t i, j, mask;
    uint8_t *f;

    if (!l->e || !p) {
        return 0;
    }
    mask = l->cap - 1;
    for (i = live_home(l, p);; i = (i + 1) & mask) {
        if (!l->e[i].ptr) {
            return 0;
        }
        if (l->e[i].ptr == p) {
            break;
        }
    }
    *out = l->e[i];
    /* backward shift: pull later entries of the run into the hole unless
     * their home lies cyclically in (hole, their place] */
    for (j = (i + 1) & mask; l->e[j].ptr; j = (j + 1) & mask) {
        uint32_t home = live_home(l, l->e[j].ptr);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            l->e[i] = l->e[j];
            i = j;
        }
    }
    memset(&l->e[i], 0, sizeof(l->e[i]));
    l->used--;
    f = &l->filter[pp_alloc_filter_hash(p)];
    /* a saturated counter no longer knows its count: it stays */
    if (*f && *f < 255) {
        (*f)--;
    }
    return 1;
}

/* ---- the process ---- */

typedef struct acc {
    uint64_t serial; /* the request it accumulates for; 0 none */
    double bytes, count;
    double live; /* of bytes, not freed yet */
    uint32_t samples;
    uint32_t flags;
    uint64_t other_bytes; /* stacks that found the table full */
    uint64_t other_count;
    pp_alloc_stack_t stacks[ACC_STACKS];
} acc_t;

static struct {
    pthread_mutex_t mu;
    pp_store_t *st;
    uint64_t mean;
    uint32_t nslots;
    acc_t *acc;
    pp_alloc_live_t live;
    double outside;     /* bytes not yet added to the store */
    uint64_t live_full; /* the same for alloc_live_full */
    int atfork_done;
} A = {PTHREAD_MUTEX_INITIALIZER};

volatile int pp_alloc_enabled;
pp_alloc_live_t *pp_alloc_live;

static __thread int tls_slot = -1;
static __thread uint64_t tls_serial;

static void alloc_atfork_child(void)
{
    /* a fork from a request (subprocess, multiprocessing): the child has
     * the hooks but nobody to flush its estimates; it only passes
     * allocations through */
    pthread_mutex_init(&A.mu, NULL);
    pp_alloc_enabled = 0;
    tls_slot = -1;
}

int pp_alloc_setup(pp_store_t *st, uint64_t mean)
{
    if (!st || !mean || A.acc) {
        return A.acc ? 0 : -1;
    }
    A.acc = calloc(st->nslots, sizeof(*A.acc));
    if (!A.acc) {
        return -1;
    }
    if (pp_alloc_live_init(&A.live, PP_ALLOC_LIVE_CAP) != 0) {
        free(A.acc);
        A.acc = NULL;
        return -1;
    }
    A.st = st;
    A.nslots = st->nslots;
    A.mean = mean;
    if (!A.atfork_done) {
        pthread_atfork(NULL, NULL, alloc_atfork_child);
        A.atfork_done = 1;
    }
    pp_alloc_live = &A.live;
    pp_alloc_enabled = 1;
    return 0;
}

uint64_t pp_alloc_mean(void)
{
    return pp_alloc_enabled ? A.mean : 0;
}

/* Under the mutex: the outside bytes and full counts into the store. */
static void flush_outside_locked(void)
{
    if (A.st && A.outside >= 1.0) {
        atomic_fetch_add(&A.st->c.alloc_outside_bytes, (uint64_t)A.outside);
        A.outside -= (double)(uint64_t)A.outside;
    }
    if (A.st && A.live_full) {
        atomic_fetch_add(&A.st->c.alloc_live_full, A.live_full);
        A.live_full = 0;
    }
}

void pp_alloc_stop(void)
{
    if (!A.acc) {
        return;
    }
    pthread_mutex_lock(&A.mu);
    pp_alloc_enabled = 0;
    flush_outside_locked();
    pthread_mutex_unlock(&A.mu);
}

void pp_alloc_begin(int slot, uint64_t serial)
{
    if (!pp_alloc_enabled || slot < 0 || (uint32_t)slot >= A.nslots) {
        return;
    }
    pthread_mutex_lock(&A.mu);
    memset(&A.acc[slot], 0, sizeof(A.acc[slot]));
    A.acc[slot].serial = serial;
    pthread_mutex_unlock(&A.mu);
    tls_serial = serial;
    tls_slot = slot;
}

int pp_alloc_current(int *slot, uint64_t *serial)
{
    if (tls_slot < 0) {
        return 0;
    }
    *slot = tls_slot;
    *serial = tls_serial;
    return 1;
}

static int by_bytes_desc(const void *a, const void *b)
{
    const pp_alloc_stack_t *x = a, *y = b;

    return x->bytes < y->bytes ? 1 : x->bytes > y->bytes ? -1 : 0;
}

uint32_t pp_alloc_top_stacks(const pp_alloc_stack_t *in, uint32_t n,
                             pp_alloc_stack_t *out, uint32_t cap,
                             uint32_t other)
{
    pp_alloc_stack_t tmp[ACC_STACKS];
    uint32_t i, m = 0;
    uint64_t rest_bytes = 0, rest_count = 0;

    if (!cap) {
        return 0;
    }
    for (i = 0; i < n && m < ACC_STACKS; i++) {
        if (in[i].node && in[i].bytes) {
            tmp[m++] = in[i];
        }
    }
    qsort(tmp, m, sizeof(tmp[0]), by_bytes_desc);
    if (m <= cap) {
        memcpy(out, tmp, m * sizeof(tmp[0]));
        return m;
    }
    memcpy(out, tmp, (cap - 1) * sizeof(tmp[0]));
    for (i = cap - 1; i < m; i++) {
        rest_bytes += tmp[i].bytes;
        rest_count += tmp[i].count;
    }
    out[cap - 1].node = other;
    out[cap - 1].bytes = rest_bytes;
    out[cap - 1].count =
        rest_count > UINT32_MAX ? UINT32_MAX : (uint32_t)rest_count;
    return other ? cap : cap - 1;
}

void pp_alloc_end(pp_store_t *st, int slot, uint64_t serial)
{
    acc_t a;
    pp_req_t q;
    pp_alloc_stack_t all[ACC_STACKS], top[PP_ALLOC_STACKS];
    uint32_t n = 0, i, other = 0, ntop;

    if (tls_slot == slot && tls_serial == serial) {
        tls_slot = -1;
    }
    if (!A.acc || slot < 0 || (uint32_t)slot >= A.nslots || !st) {
        return;
    }
    pthread_mutex_lock(&A.mu);
    if (A.acc[slot].serial != serial) {
        pthread_mutex_unlock(&A.mu);
        return;
    }
    a = A.acc[slot];
    /* from now on a free of its allocations is no longer its business */
    A.acc[slot].serial = 0;
    flush_outside_locked();
    pthread_mutex_unlock(&A.mu);

    for (i = 0; i < ACC_STACKS; i++) {
        if (a.stacks[i].node) {
            all[n++] = a.stacks[i];
        }
    }
    /* the stacks that do not fit the record, and those that found no room
     * in the table, go to one [other stacks] entry */
    if ((n > PP_ALLOC_STACKS || a.other_bytes) && st->frame_other) {
        other = pp_store_intern_node(st, 0, st->frame_other);
    }
    ntop = pp_alloc_top_stacks(all, n, top, PP_ALLOC_STACKS, other);
    if (a.other_bytes && other) {
        for (i = 0; i < ntop && top[i].node != other; i++) {
        }
        if (i == ntop && ntop < PP_ALLOC_STACKS) {
            memset(&top[ntop], 0, sizeof(top[ntop]));
            top[ntop].node = other;
            ntop++;
        }
        if (i < ntop) {
            uint64_t c = top[i].count + a.other_count;
            top[i].bytes += a.other_bytes;
            top[i].count = c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
        }
    }
    memset(&q, 0, sizeof(q));
    q.alloc_bytes = (uint64_t)(a.bytes + 0.5);
    q.alloc_count = (uint64_t)(a.count + 0.5);
    q.alloc_live_bytes = a.live > 0 ? (uint64_t)(a.live + 0.5) : 0;
    q.alloc_samples = a.samples;
    q.alloc_mean = (uint32_t)A.mean;
    q.alloc_flags = a.flags;
    pp_store_note_alloc(st, slot, serial, &q, top, ntop);
}

/* Under the mutex: add to a slot's stack table. */
static void acc_stack_add(acc_t *a, uint32_t node, uint64_t bytes,
                          uint64_t count)
{
    uint32_t i, h = (node * 0x9e3779b1u) >> 26; /* 6 bits: ACC_STACKS */

    for (i = 0; i < ACC_STACKS; i++) {
        pp_alloc_stack_t *e = &a->stacks[(h + i) & (ACC_STACKS - 1)];
        if (e->node == node || !e->node) {
            uint64_t c = e->count + count;
            e->node = node;
            e->bytes += bytes;
            e->count = c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
            return;
        }
    }
    a->other_bytes += bytes;
    a->other_count += count;
}

void pp_alloc_sampled(uintptr_t p, uint64_t n, uint32_t node)
{
    double bytes, count;
    acc_t *a = NULL;
    pp_alloc_live_entry_t e;

    if (!pp_alloc_enabled) {
        return;
    }
    pp_alloc_weight(n, A.mean, &bytes, &count);
    pthread_mutex_lock(&A.mu);
    if (tls_slot >= 0 && (uint32_t)tls_slot < A.nslots &&
        A.acc[tls_slot].serial == tls_serial && tls_serial) {
        a = &A.acc[tls_slot];
    }
    if (a) {
        a->bytes += bytes;
        a->count += count;
        a->samples++;
        if (node) {
            acc_stack_add(a, node, (uint64_t)(bytes + 0.5),
                          (uint64_t)(count + 0.5));
        }
    }
    else {
        A.outside += bytes;
    }
    if (p) {
        memset(&e, 0, sizeof(e));
        e.ptr = p;
        e.bytes = (uint64_t)(bytes + 0.5);
        e.slot = a ? tls_slot : -1;
        e.serial = a ? tls_serial : 0;
        if (pp_alloc_live_add(&A.live, &e) == 0) {
            if (a) {
                a->live += (double)e.bytes;
            }
        }
        else {
            A.live_full++;
            if (a) {
                a->flags |= PP_ALLOC_LIVE_FULL;
            }
        }
    }
    pthread_mutex_unlock(&A.mu);
}

void pp_alloc_freed(uintptr_t p)
{
    pp_alloc_live_entry_t e;

    if (!A.acc) {
        return;
    }
    pthread_mutex_lock(&A.mu);
    if (pp_alloc_live_take(&A.live, p, &e) && e.serial && e.slot >= 0 &&
        (uint32_t)e.slot < A.nslots && A.acc[e.slot].serial == e.serial) {
        A.acc[e.slot].live -= (double)e.bytes;
    }
    pthread_mutex_unlock(&A.mu);
}

/* ---- the pages' view ---- */

void pp_alloc_view_load(pp_alloc_view_t *v, const pp_store_t *st,
                        const pp_record_t *rec)
{
    uint32_t i, n;

    v->n = 0;
    if (!(rec->req.flags & PP_REQ_ALLOC)) {
        return;
    }
    n = rec->req.alloc_nstacks < PP_ALLOC_STACKS ? rec->req.alloc_nstacks
                                                 : PP_ALLOC_STACKS;
    for (i = 0; i < n; i++) {
        const pp_alloc_stack_t *a = &rec->alloc_stacks[i];
        pp_frame_view_t leaf_first[PP_ALLOC_VIEW_DEPTH];
        uint32_t node = a->node, parent, frame, d = 0, k, guard = 0;
        int truncated = 0;

        if (!node) {
            continue;
        }
        /* a chain is at most PP_DEPTH_LIMIT (+ [truncated]) long; the
         * guard bounds a corrupt one */
        while (node && guard++ <= PP_DEPTH_LIMIT + 1 &&
               pp_store_node_get(st, node, &parent, &frame)) {
            if (d < PP_ALLOC_VIEW_DEPTH) {
                if (!pp_store_frame_view(st, frame, &leaf_first[d])) {
                    leaf_first[d].function = "[unknown]";
                    leaf_first[d].file = "";
                    leaf_first[d].line = 0;
                }
                d++;
            }
            else {
                truncated = 1;
            }
            node = parent;
        }
        if (!d) {
            continue;
        }
        v->e[v->n].bytes = a->bytes;
        v->e[v->n].count = a->count;
        v->e[v->n].depth = d;
        v->e[v->n].truncated = truncated;
        for (k = 0; k < d; k++) {
            v->e[v->n].f[k] = leaf_first[d - 1 - k];
        }
        v->n++;
    }
}

int pp_alloc_profile_add(struct pp_profile *p, const pp_record_t *rec)
{
    uint32_t i, n;

    if (!(rec->req.flags & PP_REQ_ALLOC)) {
        return 0;
    }
    n = rec->req.alloc_nstacks < PP_ALLOC_STACKS ? rec->req.alloc_nstacks
                                                 : PP_ALLOC_STACKS;
    for (i = 0; i < n; i++) {
        const pp_alloc_stack_t *a = &rec->alloc_stacks[i];
        if (a->node && a->bytes &&
            pp_profile_add(p, a->node, a->count ? a->count : 1, a->bytes, 0)) {
            return -1;
        }
    }
    return 0;
}
