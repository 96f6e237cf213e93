/* pp_store_read.c: the pages' side of the store: consistent copies of
 * records, the kept traces and in-flight slots, lookups by id, the
 * interned frames and nodes, the aggregates, and the capture form's nonce.
 *
 * Called by the handlers (and renderers) of any child, and by the parent
 * at a renewal.  Nothing here writes to the store: a record is copied and
 * checked against its sequence counter (retried a few times, then given
 * up as torn), and every index, count and string read back is clamped or
 * terminated before a page uses it.  Never waits, never allocates, never
 * touches Python or httpd.
 */
#include <stdint.h>
#include <string.h>

#include "pp_hash.h"
#include "pp_store_int.h"

/* ---- the capture form's nonce ---- */

static void nonce_of_window(const pp_store_t *st, int64_t window,
                            char out[PP_NONCE_LEN + 1])
{
    unsigned char msg[8], mac[PP_SHA256_LEN];
    int i;

    for (i = 0; i < 8; i++) {
        msg[i] = (unsigned char)((uint64_t)window >> (56 - 8 * i));
    }
    pp_hmac_sha256(st->nonce_key, sizeof(st->nonce_key), msg, sizeof(msg), mac);
    pp_hash_hex(mac, sizeof(mac), out);
}

void pp_store_form_nonce(const pp_store_t *st, int64_t now_us,
                         char out[PP_NONCE_LEN + 1])
{
    nonce_of_window(st, now_us / PP_NONCE_WINDOW_US, out);
}

int pp_store_form_nonce_ok(const pp_store_t *st, const char *given,
                           int64_t now_us)
{
    char want[PP_NONCE_LEN + 1];
    int64_t w = now_us / PP_NONCE_WINDOW_US;
    int ok = 0, back;

    if (!given || strlen(given) != PP_NONCE_LEN) {
        return 0;
    }
    /* both windows compared, whatever the first gave: no timing hint */
    for (back = 0; back < 2; back++) {
        nonce_of_window(st, w - back, want);
        ok |= pp_hash_equal(given, want, PP_NONCE_LEN);
    }
    return ok;
}

/* ---- locations ---- */

const char *pp_store_location_root(const pp_store_t *st, int idx, char *buf,
                                   size_t cap)
{
    const pp_location_t *loc = pp_store_location((pp_store_t *)st, idx);

    buf[0] = '\0';
    if (cap && loc &&
        atomic_load_explicit(&loc->root_state, memory_order_acquire) == 2) {
        size_t n = strnlen(loc->app_root, PP_PREFIX_MAX - 1);
        if (n >= cap) {
            n = cap - 1;
        }
        memcpy(buf, loc->app_root, n);
        buf[n] = '\0';
    }
    return buf;
}

/* ---- interned frames and nodes ---- */

int pp_store_frame_view(const pp_store_t *st, uint32_t frame,
                        pp_frame_view_t *out)
{
    uint64_t v;
    const frame_text_t *t;
    size_t fl;

    if (frame == 0 || frame > st->nframes) {
        return 0;
    }
    v = atomic_load_explicit(&pp_store_frame_table(st)[frame - 1],
                             memory_order_acquire);
    t = pp_store_frame_text_at(st, v & 0xffffffffULL);
    if (!t) {
        return 0;
    }
    /* both names must be NUL-terminated inside the recorded length */
    fl = strnlen(t->text, t->len);
    if (fl + 1 >= t->len ||
        strnlen(t->text + fl + 1, t->len - fl - 1) >= t->len - fl - 1) {
        return 0;
    }
    out->function = t->text;
    out->file = t->text + fl + 1;
    out->line = t->line;
    return 1;
}

int pp_store_node_get(const pp_store_t *st, uint32_t node, uint32_t *parent,
                      uint32_t *frame)
{
    uint64_t v;

    if (node == 0 || node > st->nnodes) {
        return 0;
    }
    v = atomic_load_explicit(&pp_store_node_table(st)[node - 1],
                             memory_order_acquire);
    if (v == 0 || (uint32_t)v == 0) {
        return 0;
    }
    *parent = (uint32_t)(v >> 32);
    *frame = (uint32_t)v;
    return 1;
}

/* ---- records ---- */

/* Make a copied request header safe to print and to follow. */
static void terminate_req(pp_req_t *q)
{
    q->process_group[PP_GROUP_MAX - 1] = '\0';
    q->app_group[PP_APP_GROUP_MAX - 1] = '\0';
    if (q->nsegments > PP_SEGMENTS_MAX) {
        q->nsegments = PP_SEGMENTS_MAX;
    }
    q->trace_id[PP_TRACE_ID_MAX - 1] = '\0';
    q->parent_id[PP_SPAN_ID_MAX - 1] = '\0';
    q->unique_id[PP_ID_MAX - 1] = '\0';
    q->id[PP_ID_MAX - 1] = '\0';
    q->method[PP_METHOD_MAX - 1] = '\0';
    q->uri[PP_URI_MAX - 1] = '\0';
    q->vhost[PP_VHOST_MAX - 1] = '\0';
    if (q->max_depth > PP_DEPTH_LIMIT) {
        q->max_depth = PP_DEPTH_LIMIT;
    }
    /* indices a page follows: in range, or "none" */
    if (q->location < -1 || q->location >= PP_MAX_LOCATIONS) {
        q->location = -1;
    }
    if (q->open_segment > q->nsegments) {
        q->open_segment = 0;
    }
    if (q->nstacks > PP_STACKS_MAX) {
        q->nstacks = PP_STACKS_MAX;
    }
    if (q->ngil_holders > PP_GIL_HOLDERS) {
        q->ngil_holders = PP_GIL_HOLDERS;
    }
    if (q->alloc_nstacks > PP_ALLOC_STACKS) {
        q->alloc_nstacks = PP_ALLOC_STACKS;
    }
}

int pp_store_read_record(const pp_record_t *rec, pp_record_t *out)
{
    int tries;

    for (tries = 0; tries < 8; tries++) {
        uint32_t s1 = atomic_load_explicit(&rec->seq, memory_order_acquire);
        uint32_t s2;
        if (s1 & 1u) {
            continue;
        }
        memcpy(&out->req, &rec->req, sizeof(out->req));
        memcpy(out->stacks, rec->stacks, sizeof(out->stacks));
        memcpy(out->segments, rec->segments, sizeof(out->segments));
        memcpy(out->gil_holders, rec->gil_holders, sizeof(out->gil_holders));
        memcpy(out->alloc_stacks, rec->alloc_stacks, sizeof(out->alloc_stacks));
        atomic_thread_fence(memory_order_acquire);
        s2 = atomic_load_explicit(&rec->seq, memory_order_relaxed);
        if (s1 == s2) {
            /* the copy is ours now: make its strings safe to print */
            uint32_t g;
            terminate_req(&out->req);
            for (g = 0; g < PP_SEGMENTS_MAX; g++) {
                out->segments[g].name[PP_SEGMENT_NAME_MAX - 1] = '\0';
                out->segments[g].detail[PP_SEGMENT_DETAIL_MAX - 1] = '\0';
                /* a parent comes before its children: no cycles */
                if (out->segments[g].parent > g) {
                    out->segments[g].parent = 0;
                }
            }
            for (g = 0; g < PP_GIL_HOLDERS; g++) {
                pp_gil_holder_t *h = &out->gil_holders[g];
                h->id[PP_ID_MAX - 1] = '\0';
                h->method[PP_METHOD_MAX - 1] = '\0';
                h->uri[PP_GIL_URI_MAX - 1] = '\0';
                if (h->location < PP_GIL_OTHER ||
                    h->location >= PP_MAX_LOCATIONS) {
                    h->location = PP_GIL_NO_LOCATION;
                }
            }
            return out->req.serial != 0;
        }
    }
    return 0;
}

int pp_store_read_req(const pp_record_t *rec, pp_req_t *out)
{
    int tries;

    for (tries = 0; tries < 8; tries++) {
        uint32_t s1 = atomic_load_explicit(&rec->seq, memory_order_acquire);
        if (s1 & 1u) {
            continue;
        }
        memcpy(out, &rec->req, sizeof(*out));
        atomic_thread_fence(memory_order_acquire);
        if (s1 == atomic_load_explicit(&rec->seq, memory_order_relaxed)) {
            terminate_req(out);
            return out->serial != 0;
        }
    }
    return 0;
}

/* ---- kept traces and in-flight slots ---- */

uint32_t pp_store_listed_traces(const pp_store_t *st)
{
    return st->keep + st->nspecial;
}

uint32_t pp_store_all_traces(const pp_store_t *st)
{
    return st->keep + st->nspecial + st->nfast;
}

const pp_record_t *pp_store_trace_at(const pp_store_t *st, uint32_t i)
{
    if (i >= pp_store_all_traces(st)) {
        return NULL;
    }
    return (const pp_record_t *)((const char *)st + st->off_traces) + i;
}

const pp_record_t *pp_store_slot_rec(const pp_store_t *st, uint32_t i)
{
    const pp_slot_t *slot;

    if (i >= st->nslots) {
        return NULL;
    }
    slot = (const pp_slot_t *)((const char *)st + st->off_slots) + i;
    if (PP_SLOT_PHASE(atomic_load(&slot->state)) != PP_SLOT_ACTIVE) {
        return NULL;
    }
    return &slot->rec;
}

int pp_store_read_trace(const pp_store_t *st, uint32_t i, pp_record_t *out)
{
    const pp_record_t *r = pp_store_trace_at(st, i);
    return r ? pp_store_read_record(r, out) : 0;
}

/* ---- lookups by id ---- */

int pp_store_find(const pp_store_t *st, const char *id, pp_record_t *out,
                  int *inflight)
{
    uint32_t i;
    pp_req_t q;

    if (!id || !*id) {
        return 0;
    }
    /* a kept copy has the final status: prefer it to an in-flight slot */
    for (i = 0; i < pp_store_all_traces(st); i++) {
        const pp_record_t *r = pp_store_trace_at(st, i);
        if (pp_store_read_req(r, &q) && strncmp(q.id, id, PP_ID_MAX) == 0 &&
            pp_store_read_record(r, out) &&
            strncmp(out->req.id, id, PP_ID_MAX) == 0) {
            *inflight = 0;
            return 1;
        }
    }
    for (i = 0; i < st->nslots; i++) {
        const pp_record_t *r = pp_store_slot_rec(st, i);
        if (r && pp_store_read_req(r, &q) &&
            strncmp(q.id, id, PP_ID_MAX) == 0 && pp_store_read_record(r, out) &&
            strncmp(out->req.id, id, PP_ID_MAX) == 0) {
            *inflight = 1;
            return 1;
        }
    }
    return 0;
}

int pp_store_find_trace_id(const pp_store_t *st, const char *trace_id,
                           pp_req_t *out)
{
    uint32_t i;
    pp_req_t q;
    int found = 0;

    if (!trace_id || !*trace_id) {
        return 0;
    }
    for (i = 0; i < pp_store_all_traces(st); i++) {
        if (pp_store_read_req(pp_store_trace_at(st, i), &q) &&
            strncmp(q.trace_id, trace_id, PP_TRACE_ID_MAX) == 0 &&
            (!found || q.start_us > out->start_us)) {
            *out = q;
            found = 1;
        }
    }
    for (i = 0; i < st->nslots; i++) {
        const pp_record_t *r = pp_store_slot_rec(st, i);
        if (r && pp_store_read_req(r, &q) &&
            strncmp(q.trace_id, trace_id, PP_TRACE_ID_MAX) == 0 &&
            (!found || q.start_us > out->start_us)) {
            *out = q;
            found = 1;
        }
    }
    return found;
}

/* ---- aggregates ---- */

pp_agg_entry_t *pp_store_agg(const pp_store_t *st, uint32_t *n)
{
    *n = st->nagg;
    return (pp_agg_entry_t *)((char *)st + st->off_agg);
}

pp_agg_entry_t *pp_store_agg_slow(const pp_store_t *st, uint32_t *n)
{
    *n = st->nagg_slow;
    return (pp_agg_entry_t *)((char *)st + st->off_agg_slow);
}

uint64_t pp_store_arena_used(const pp_store_t *st)
{
    return atomic_load(&st->arena_used) * ARENA_UNIT;
}

pp_agg_entry_t *pp_store_epoch(const pp_store_t *st, int64_t minute,
                               uint32_t *n)
{
    uint32_t i;

    if (minute < 0) {
        return NULL;
    }
    i = (uint32_t)(minute % PP_EPOCHS);
    if (atomic_load(&pp_store_epoch_stamps(st)[i]) != (uint64_t)minute + 1) {
        return NULL;
    }
    *n = st->nepoch;
    return pp_store_epoch_table(st, i);
}
