/* pp_render.c: the pages and formats of /server-profile (see pp_render.h).
 *
 * Reads the store through snapshot copies only; never writes to it.  Every
 * client or Python string goes through pp_put_html / pp_put_json_str /
 * pp_put_folded.  Call trees are rebuilt from node ids with bounded walks
 * (a corrupt parent chain ends at PP_DEPTH_LIMIT, never loops).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pp_hist.h"
#include "pp_render.h"

#define HTML_SLOW_ROWS 100 /* slow requests listed on the HTML overview */

/* ---- output primitives ---- */

void pp_puts(pp_sink_t *o, const char *s)
{
    o->write(o->ctx, s, strlen(s));
}

void pp_printf(pp_sink_t *o, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n >= sizeof(buf)) {
        n = (int)sizeof(buf) - 1;
    }
    o->write(o->ctx, buf, (size_t)n);
}

/* Length of a valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len, i;
    uint32_t cp;

    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    }
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    }
    else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    }
    else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return len;
}

static const char REPLACEMENT[] = "\xef\xbf\xbd"; /* U+FFFD */

void pp_put_html(pp_sink_t *o, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;

    while (i < n) {
        const char *rep = NULL;
        size_t len = utf8_seq(p + i, n - i);

        switch (p[i]) {
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '&': rep = "&amp;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default:
            if (len == 0) {
                rep = REPLACEMENT;
            }
            else if (p[i] < 0x20 && p[i] != '\t' && p[i] != '\n') {
                rep = "\xef\xbf\xbd";
            }
        }
        if (rep) {
            if (run) {
                o->write(o->ctx, s + i - run, run);
                run = 0;
            }
            pp_puts(o, rep);
            i += len ? len : 1;
        }
        else {
            run += len;
            i += len;
        }
    }
    if (run) {
        o->write(o->ctx, s + n - run, run);
    }
}

void pp_put_json_str(pp_sink_t *o, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;

    pp_puts(o, "\"");
    while (i < n) {
        char esc[8];
        const char *rep = NULL;
        size_t len = utf8_seq(p + i, n - i);

        if (len == 0) {
            rep = "\\ufffd";
        }
        else if (p[i] == '"') {
            rep = "\\\"";
        }
        else if (p[i] == '\\') {
            rep = "\\\\";
        }
        else if (p[i] < 0x20 || p[i] == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", p[i]);
            rep = esc;
        }
        else if (p[i] == '<' || p[i] == '>' || p[i] == '&') {
            /* keeps the JSON safe to embed in a <script> block */
            snprintf(esc, sizeof(esc), "\\u%04x", p[i]);
            rep = esc;
        }
        if (rep) {
            if (run) {
                o->write(o->ctx, s + i - run, run);
                run = 0;
            }
            pp_puts(o, rep);
            i += len ? len : 1;
        }
        else {
            run += len;
            i += len;
        }
    }
    if (run) {
        o->write(o->ctx, s + n - run, run);
    }
    pp_puts(o, "\"");
}

void pp_put_folded(pp_sink_t *o, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;

    while (i < n) {
        const char *rep = NULL;
        size_t len = utf8_seq(p + i, n - i);

        if (len == 0) {
            rep = REPLACEMENT;
        }
        else if (p[i] == ';') {
            rep = ":";
        }
        else if (p[i] < 0x20 || p[i] == 0x7f) {
            rep = " ";
        }
        if (rep) {
            if (run) {
                o->write(o->ctx, s + i - run, run);
                run = 0;
            }
            pp_puts(o, rep);
            i += len ? len : 1;
        }
        else {
            run += len;
            i += len;
        }
    }
    if (run) {
        o->write(o->ctx, s + n - run, run);
    }
}

void pp_put_url_segment(pp_sink_t *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
            c == '~' || c == '@') {
            o->write(o->ctx, (const char *)&c, 1);
        }
        else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            o->write(o->ctx, e, 3);
        }
    }
}

static void html(pp_sink_t *o, const char *s)
{
    pp_put_html(o, s, strlen(s));
}

static void json_str(pp_sink_t *o, const char *s)
{
    pp_put_json_str(o, s, strlen(s));
}

/* ---- helpers ---- */

static void iso_time(int64_t us, char *buf, size_t cap)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    char b[32];

    gmtime_r(&t, &tm);
    strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, cap, "%s.%03dZ", b, (int)((us / 1000) % 1000));
}

static void human_ms(double ms, char *buf, size_t cap)
{
    if (ms >= 10000) {
        snprintf(buf, cap, "%.1f s", ms / 1000);
    }
    else if (ms >= 1000) {
        snprintf(buf, cap, "%.2f s", ms / 1000);
    }
    else if (ms >= 10) {
        snprintf(buf, cap, "%.0f ms", ms);
    }
    else {
        snprintf(buf, cap, "%.1f ms", ms);
    }
}

static void put_ms_cell(pp_sink_t *o, double ms)
{
    char b[32];
    human_ms(ms, b, sizeof(b));
    pp_printf(o, "<td class=num>%s</td>", b);
}

static int location_current(const pp_store_t *st, const pp_location_t *loc)
{
    return atomic_load(&loc->used) && loc->config_gen == st->generation;
}

static const char *location_path(const pp_store_t *st, int idx, char *buf,
                                 size_t cap)
{
    const pp_location_t *loc =
        pp_store_location((pp_store_t *)st, idx);
    if (!loc || !atomic_load(&loc->used)) {
        return "";
    }
    snprintf(buf, cap, "%.*s", PP_PREFIX_MAX - 1, loc->path);
    return buf;
}

typedef struct loc_snap {
    uint64_t requests, samples, kept, sum_us, max_us;
    uint64_t hist[PP_HIST_BUCKETS];
} loc_snap_t;

static void snap_location(const pp_location_t *loc, loc_snap_t *s)
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

/* kept traces, request headers only */
typedef struct req_list {
    pp_req_t *v;
    size_t n;
} req_list_t;

static int cmp_slowest(const void *a, const void *b)
{
    const pp_req_t *x = a, *y = b;
    if (x->duration_us != y->duration_us) {
        return x->duration_us < y->duration_us ? 1 : -1;
    }
    return x->serial < y->serial ? 1 : (x->serial > y->serial ? -1 : 0);
}

static void collect_traces(const pp_store_t *st, req_list_t *l)
{
    uint32_t i;

    l->n = 0;
    l->v = malloc(sizeof(pp_req_t) * (st->keep ? st->keep : 1));
    if (!l->v) {
        return;
    }
    for (i = 0; i < st->keep; i++) {
        if (pp_store_read_req(pp_store_trace_at(st, i), &l->v[l->n])) {
            l->n++;
        }
    }
    qsort(l->v, l->n, sizeof(pp_req_t), cmp_slowest);
}

static int cmp_oldest(const void *a, const void *b)
{
    const pp_req_t *x = a, *y = b;
    return x->start_us > y->start_us ? 1 : (x->start_us < y->start_us ? -1 : 0);
}

static void collect_inflight(const pp_store_t *st, req_list_t *l)
{
    uint32_t i;

    l->n = 0;
    l->v = malloc(sizeof(pp_req_t) * (st->nslots ? st->nslots : 1));
    if (!l->v) {
        return;
    }
    for (i = 0; i < st->nslots; i++) {
        const pp_record_t *r = pp_store_slot_rec(st, i);
        if (r && pp_store_read_req(r, &l->v[l->n])) {
            l->n++;
        }
    }
    qsort(l->v, l->n, sizeof(pp_req_t), cmp_oldest);
}

/* Per-sample cost quantile from the log2 histogram (upper edge, ns). */
static double cost_quantile_us(const pp_store_t *st, double q)
{
    uint64_t total = 0, seen = 0;
    int b;

    for (b = 0; b < PP_COST_BUCKETS; b++) {
        total += atomic_load(&st->c.sample_cost[b]);
    }
    if (!total) {
        return 0;
    }
    for (b = 0; b < PP_COST_BUCKETS; b++) {
        seen += atomic_load(&st->c.sample_cost[b]);
        if ((double)seen >= q * (double)total) {
            /* bucket b holds [2^b, 2^(b+1)) ns: report its geometric mid */
            return (double)(1ULL << b) * 1.41421356 / 1000.0;
        }
    }
    return 0;
}

/* ---- JSON ---- */

static void json_req_fields(pp_sink_t *o, const pp_store_t *st,
                            const pp_req_t *q)
{
    char t[40], lp[PP_PREFIX_MAX];

    iso_time(q->start_us, t, sizeof(t));
    pp_puts(o, "\"id\":");
    json_str(o, q->id);
    pp_puts(o, ",\"method\":");
    json_str(o, q->method);
    pp_puts(o, ",\"uri\":");
    json_str(o, q->uri);
    pp_puts(o, ",\"vhost\":");
    json_str(o, q->vhost);
    pp_printf(o,
              ",\"status\":%d,\"duration_ms\":%.3f,\"cpu_ms\":%.3f,"
              "\"samples\":%u,\"pid\":%d,\"tid\":%d,\"interval_ms\":%.3f,"
              "\"location\":",
              (int)q->status, (double)q->duration_us / 1000.0,
              (double)q->cpu_us / 1000.0, q->samples, (int)q->pid,
              (int)q->tid, (double)q->interval_us / 1000.0);
    json_str(o, location_path(st, q->location, lp, sizeof(lp)));
    pp_printf(o, ",\"started_at\":\"%s\",\"truncated\":%s", t,
              (q->flags & PP_REQ_TRUNCATED) ? "true" : "false");
}

void pp_render_overview_json(pp_sink_t *o, const pp_store_t *st,
                             const pp_render_opts_t *opt)
{
    req_list_t traces, live;
    int i, first = 1;
    size_t k;
    double uptime_s = (double)(opt->now_us - st->created_us) / 1e6;

    pp_puts(o, "{\"locations\":[");
    for (i = 0; i < PP_MAX_LOCATIONS; i++) {
        const pp_location_t *loc = pp_store_location((pp_store_t *)st, i);
        loc_snap_t s;
        int b, firstb = 1;
        double age;

        if (!location_current(st, loc)) {
            continue;
        }
        snap_location(loc, &s);
        age = (double)(opt->now_us - loc->created_us) / 1e6;
        pp_puts(o, first ? "{" : ",{");
        first = 0;
        pp_puts(o, "\"path\":");
        pp_put_json_str(o, loc->path, strnlen(loc->path, PP_PREFIX_MAX));
        pp_printf(o,
                  ",\"interval_ms\":%.3f,\"requests\":%llu,\"samples\":%llu,"
                  "\"kept\":%llu,\"rate_per_s\":%.3f,\"p50_ms\":%.3f,"
                  "\"p95_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
                  "\"mean_ms\":%.3f,\"histogram\":[",
                  loc->interval_us / 1000.0, (unsigned long long)s.requests,
                  (unsigned long long)s.samples, (unsigned long long)s.kept,
                  age > 0 ? (double)s.requests / age : 0.0,
                  pp_hist_quantile_us(s.hist, 0.50, (int64_t)s.max_us) / 1e3,
                  pp_hist_quantile_us(s.hist, 0.95, (int64_t)s.max_us) / 1e3,
                  pp_hist_quantile_us(s.hist, 0.99, (int64_t)s.max_us) / 1e3,
                  s.max_us / 1e3,
                  s.requests ? (double)s.sum_us / (double)s.requests / 1e3
                             : 0.0);
        for (b = 0; b < PP_HIST_BUCKETS; b++) {
            int64_t hi = pp_hist_hi_us(b);
            if (!s.hist[b]) {
                continue; /* sparse: empty buckets are implied */
            }
            pp_printf(o, "%s{\"lo_ms\":%.3f,\"hi_ms\":", firstb ? "" : ",",
                      pp_hist_lo_us(b) / 1e3);
            if (hi == INT64_MAX) {
                pp_puts(o, "null");
            }
            else {
                pp_printf(o, "%.3f", hi / 1e3);
            }
            pp_printf(o, ",\"count\":%llu}", (unsigned long long)s.hist[b]);
            firstb = 0;
        }
        pp_puts(o, "]}");
    }
    pp_puts(o, "],\"requests\":[");
    collect_traces(st, &traces);
    for (k = 0; k < traces.n; k++) {
        pp_puts(o, k ? ",{" : "{");
        json_req_fields(o, st, &traces.v[k]);
        pp_puts(o, "}");
    }
    free(traces.v);
    pp_puts(o, "],\"inflight\":[");
    collect_inflight(st, &live);
    for (k = 0; k < live.n; k++) {
        pp_puts(o, k ? ",{" : "{");
        json_req_fields(o, st, &live.v[k]);
        pp_printf(o, ",\"elapsed_ms\":%.3f}",
                  (double)(opt->now_us - live.v[k].start_us) / 1e3);
    }
    free(live.v);
    pp_printf(
        o,
        "],\"sampler\":{\"samples\":%llu,\"ticks\":%llu,\"cpu_s\":%.6f,"
        "\"samples_per_s\":%.3f,\"sample_cost_p50_us\":%.2f,"
        "\"sample_cost_p99_us\":%.2f,\"gil_wait_s\":%.6f,\"walk_s\":%.6f,"
        "\"threads_missing\":%llu},",
        (unsigned long long)atomic_load(&st->c.samples),
        (unsigned long long)atomic_load(&st->c.ticks),
        atomic_load(&st->c.sampler_cpu_ns) / 1e9,
        uptime_s > 0 ? atomic_load(&st->c.samples) / uptime_s : 0.0,
        cost_quantile_us(st, 0.5), cost_quantile_us(st, 0.99),
        atomic_load(&st->c.gil_wait_ns) / 1e9,
        atomic_load(&st->c.walk_ns) / 1e9,
        (unsigned long long)atomic_load(&st->c.threads_missing));
    pp_printf(
        o,
        "\"store\":{\"memory\":%llu,\"arena_used\":%llu,\"arena_size\":%llu,"
        "\"slots\":%u,\"keep\":%u,\"frames_capacity\":%u,"
        "\"nodes_capacity\":%u,\"traces_kept\":%llu,\"traces_evicted\":%llu,"
        "\"traces_dropped\":%llu,\"slots_full\":%llu,\"slots_lost\":%llu,"
        "\"frames_full\":%llu,\"nodes_full\":%llu,\"aggregate_full\":%llu,"
        "\"stacks_overflow\":%llu,\"uptime_s\":%.3f}}\n",
        (unsigned long long)st->total_size,
        (unsigned long long)pp_store_arena_used(st),
        (unsigned long long)st->arena_size, st->nslots, st->keep,
        st->nframes, st->nnodes,
        (unsigned long long)atomic_load(&st->c.traces_kept),
        (unsigned long long)atomic_load(&st->c.traces_evicted),
        (unsigned long long)atomic_load(&st->c.traces_torn),
        (unsigned long long)atomic_load(&st->c.slots_full),
        (unsigned long long)atomic_load(&st->c.slots_lost),
        (unsigned long long)atomic_load(&st->c.frames_full),
        (unsigned long long)atomic_load(&st->c.nodes_full),
        (unsigned long long)atomic_load(&st->c.agg_full),
        (unsigned long long)atomic_load(&st->c.stacks_overflow), uptime_s);
}

/* ---- stacks of one record ---- */

/* Frames of a node, root first, into out (cap entries); returns depth. */
static uint32_t node_frames(const pp_store_t *st, uint32_t node,
                            uint32_t *out, uint32_t cap)
{
    uint32_t tmp[PP_DEPTH_LIMIT + 2];
    uint32_t n = 0, i, parent, frame;

    while (node && n < PP_DEPTH_LIMIT + 2 &&
           pp_store_node_get(st, node, &parent, &frame)) {
        tmp[n++] = frame;
        node = parent;
    }
    if (n > cap) {
        n = cap;
    }
    for (i = 0; i < n; i++) {
        out[i] = tmp[n - 1 - i];
    }
    return n;
}

static int cmp_stack_count(const void *a, const void *b)
{
    const pp_stack_count_t *x = a, *y = b;
    if (x->count != y->count) {
        return x->count < y->count ? 1 : -1;
    }
    return x->node > y->node ? 1 : (x->node < y->node ? -1 : 0);
}

/* The record's non-empty stacks, most samples first. */
static size_t sorted_stacks(const pp_record_t *rec, pp_stack_count_t *out)
{
    size_t n = 0, i;
    for (i = 0; i < PP_STACKS_MAX; i++) {
        if (rec->stacks[i].node && rec->stacks[i].count) {
            out[n++] = rec->stacks[i];
        }
    }
    qsort(out, n, sizeof(*out), cmp_stack_count);
    return n;
}

void pp_render_request_json(pp_sink_t *o, const pp_store_t *st,
                            const pp_record_t *rec, int inflight,
                            const pp_render_opts_t *opt)
{
    pp_stack_count_t *stacks = malloc(sizeof(pp_stack_count_t) *
                                      PP_STACKS_MAX);
    uint32_t frames[PP_DEPTH_LIMIT + 2];
    size_t n, i;

    pp_puts(o, "{");
    json_req_fields(o, st, &rec->req);
    pp_printf(o, ",\"inflight\":%s", inflight ? "true" : "false");
    if (inflight) {
        pp_printf(o, ",\"elapsed_ms\":%.3f",
                  (double)(opt->now_us - rec->req.start_us) / 1e3);
    }
    pp_printf(o, ",\"samples_other\":%u,\"stacks\":[",
              rec->req.samples_overflow);
    n = stacks ? sorted_stacks(rec, stacks) : 0;
    for (i = 0; i < n; i++) {
        uint32_t d = node_frames(st, stacks[i].node, frames,
                                 PP_DEPTH_LIMIT + 2), j;
        pp_puts(o, i ? ",{\"frames\":[" : "{\"frames\":[");
        for (j = 0; j < d; j++) {
            pp_frame_view_t fv;
            if (!pp_store_frame_view(st, frames[j], &fv)) {
                fv.function = "[unknown]";
                fv.file = "";
                fv.line = 0;
            }
            pp_puts(o, j ? ",{\"function\":" : "{\"function\":");
            json_str(o, fv.function);
            pp_puts(o, ",\"file\":");
            json_str(o, fv.file);
            pp_printf(o, ",\"line\":%u}", fv.line);
        }
        pp_printf(o, "],\"count\":%u,\"weight_ms\":%.3f,\"cpu_ms\":%.3f}",
                  stacks[i].count, stacks[i].weight_us / 1e3,
                  stacks[i].cpu_us / 1e3);
    }
    pp_puts(o, "]}\n");
    free(stacks);
}

static void folded_frame(pp_sink_t *o, const pp_frame_view_t *fv)
{
    pp_put_folded(o, fv->function, strlen(fv->function));
    if (fv->file[0]) {
        char line[16];
        pp_puts(o, " (");
        pp_put_folded(o, fv->file, strlen(fv->file));
        snprintf(line, sizeof(line), ":%u)", fv->line);
        pp_puts(o, line);
    }
}

void pp_render_request_folded(pp_sink_t *o, const pp_store_t *st,
                              const pp_record_t *rec)
{
    pp_stack_count_t *stacks = malloc(sizeof(pp_stack_count_t) *
                                      PP_STACKS_MAX);
    uint32_t frames[PP_DEPTH_LIMIT + 2];
    size_t n, i;

    n = stacks ? sorted_stacks(rec, stacks) : 0;
    for (i = 0; i < n; i++) {
        uint32_t d = node_frames(st, stacks[i].node, frames,
                                 PP_DEPTH_LIMIT + 2), j;
        if (d == 0) {
            continue;
        }
        for (j = 0; j < d; j++) {
            pp_frame_view_t fv;
            if (!pp_store_frame_view(st, frames[j], &fv)) {
                fv.function = "[unknown]";
                fv.file = "";
                fv.line = 0;
            }
            if (j) {
                pp_puts(o, ";");
            }
            folded_frame(o, &fv);
        }
        pp_printf(o, " %u\n", stacks[i].count);
    }
    free(stacks);
}

int pp_render_find_location(const pp_store_t *st, const char *path)
{
    int i;

    for (i = 0; i < PP_MAX_LOCATIONS; i++) {
        const pp_location_t *loc = pp_store_location((pp_store_t *)st, i);
        if (location_current(st, loc) &&
            strncmp(loc->path, path, PP_PREFIX_MAX) == 0) {
            return i;
        }
    }
    return -1;
}

size_t pp_render_location_folded(pp_sink_t *o, const pp_store_t *st,
                                 int location)
{
    uint32_t n, i, frames[PP_DEPTH_LIMIT + 2];
    const pp_agg_entry_t *tab = pp_store_agg(st, &n);
    size_t written = 0;

    for (i = 0; i < n; i++) {
        uint64_t key = atomic_load(&tab[i].key);
        uint64_t count = atomic_load(&tab[i].count);
        uint32_t d, j;

        if (!key || (key >> 32) != (uint64_t)(location + 1) || !count) {
            continue;
        }
        d = node_frames(st, (uint32_t)key, frames, PP_DEPTH_LIMIT + 2);
        if (d == 0) {
            continue;
        }
        for (j = 0; j < d; j++) {
            pp_frame_view_t fv;
            if (!pp_store_frame_view(st, frames[j], &fv)) {
                fv.function = "[unknown]";
                fv.file = "";
                fv.line = 0;
            }
            if (j) {
                pp_puts(o, ";");
            }
            folded_frame(o, &fv);
        }
        pp_printf(o, " %llu\n", (unsigned long long)count);
        written++;
    }
    return written;
}

/* ---- HTML ---- */

static const char CSS[] =
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;"
    "margin:0;color:#1d232b;background:#f6f7f9}"
    "header{background:#20324a;color:#fff;padding:10px 24px;display:flex;"
    "gap:24px;align-items:baseline}"
    "header h1{font-size:18px;margin:0;font-weight:600}"
    "header a{color:#cfe0ff;text-decoration:none}"
    "header .meta{color:#aab8cc;font-size:12px;margin-left:auto}"
    "main{padding:8px 24px 40px;max-width:1400px}"
    "h2{font-size:16px;margin:22px 0 8px;color:#20324a}"
    "table{border-collapse:collapse;background:#fff;width:100%;"
    "box-shadow:0 1px 2px rgba(0,0,0,.08)}"
    "th,td{padding:5px 10px;border-bottom:1px solid #e6e9ee;"
    "text-align:left;vertical-align:middle}"
    "th{background:#eef1f5;font-weight:600;font-size:12px;color:#46556a;"
    "white-space:nowrap}"
    "td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;"
    "white-space:nowrap}"
    "td.uri{font-family:ui-monospace,monospace;font-size:12.5px;"
    "word-break:break-all}"
    "a{color:#1f5fbf}"
    ".muted{color:#6b778a}.empty{color:#6b778a;padding:10px;background:#fff}"
    ".s5{color:#b3261e;font-weight:600}.s4{color:#9a5b00}"
    "code,.mono{font-family:ui-monospace,monospace;font-size:12.5px}"
    ".kv{display:grid;grid-template-columns:max-content 1fr;gap:3px 16px;"
    "background:#fff;padding:12px 16px;box-shadow:0 1px 2px "
    "rgba(0,0,0,.08)}"
    ".kv dt{color:#6b778a}.kv dd{margin:0}"
    ".tree{background:#fff;padding:10px 14px;overflow-x:auto;"
    "box-shadow:0 1px 2px rgba(0,0,0,.08);font-size:13px}"
    ".tree details>details,.tree details>.leaf{margin-left:16px}"
    ".tree summary{cursor:pointer;list-style:none;padding:1px 0;"
    "white-space:nowrap}"
    ".tree summary::-webkit-details-marker{display:none}"
    ".tree summary::before{content:'\\25B8';display:inline-block;"
    "width:14px;color:#6b778a}"
    ".tree details[open]>summary::before{content:'\\25BE'}"
    ".tree .leaf{padding:1px 0 1px 14px;white-space:nowrap}"
    ".bars{display:inline-block;width:126px;vertical-align:middle}"
    ".bar{display:inline-block;height:9px;vertical-align:middle}"
    ".bar.cpu{background:#d9480f}.bar.wait{background:#7aa2d6}"
    ".pct{display:inline-block;width:52px;text-align:right;"
    "font-variant-numeric:tabular-nums;margin-right:6px}"
    ".fn{font-weight:600}.loc{color:#6b778a;font-size:12px;"
    "font-family:ui-monospace,monospace}"
    ".cnt{color:#6b778a;font-size:12px;margin-left:8px}"
    "svg.hist{display:block}svg.hist rect.b{fill:#4a7fc1}"
    "svg.hist text{font:10px sans-serif;fill:#6b778a}"
    ".cards{display:flex;gap:12px;flex-wrap:wrap}"
    ".card{background:#fff;padding:8px 14px;box-shadow:0 1px 2px "
    "rgba(0,0,0,.08);min-width:120px}"
    ".card b{display:block;font-size:18px;font-weight:600}"
    ".card span{color:#6b778a;font-size:12px}";

static void page_begin(pp_sink_t *o, const char *title,
                       const pp_render_opts_t *opt)
{
    char t[40];

    pp_puts(o, "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
               "<meta name=viewport content=\"width=device-width\">");
    if (opt->refresh > 0) {
        pp_printf(o, "<meta http-equiv=refresh content=\"%d\">",
                  opt->refresh);
    }
    pp_puts(o, "<title>");
    html(o, title);
    pp_puts(o, "</title><style>");
    pp_puts(o, CSS);
    pp_puts(o, "</style></head><body><header><h1><a href=\"");
    html(o, opt->base);
    pp_puts(o, "\">mod_pyprof</a></h1><span>");
    html(o, title);
    iso_time(opt->now_us, t, sizeof(t));
    pp_printf(o, "</span><span class=meta>%s</span></header><main>", t);
}

static void page_end(pp_sink_t *o)
{
    pp_puts(o, "</main></body></html>\n");
}

void pp_render_message_html(pp_sink_t *o, const char *title,
                            const char *msg, const pp_render_opts_t *opt)
{
    page_begin(o, title, opt);
    pp_puts(o, "<p>");
    html(o, msg);
    pp_puts(o, "</p><p><a href=\"");
    html(o, opt->base);
    pp_puts(o, "\">Back to the overview</a></p>");
    page_end(o);
}

static void duration_label(int64_t us, char *buf, size_t cap)
{
    if (us >= 1000000) {
        snprintf(buf, cap, "%llds", (long long)(us / 1000000));
    }
    else {
        snprintf(buf, cap, "%lldms", (long long)(us / 1000));
    }
}

static void hist_svg(pp_sink_t *o, const loc_snap_t *s)
{
    const int bw = 5, h = 52, top = 4, bottom = 14, left = 14;
    const int w = PP_HIST_BUCKETS * bw;
    uint64_t mx = 0;
    int b;
    static const int64_t ticks[] = {1000, 10000, 100000, 1000000, 10000000};
    size_t k;

    for (b = 0; b < PP_HIST_BUCKETS; b++) {
        if (s->hist[b] > mx) {
            mx = s->hist[b];
        }
    }
    pp_printf(o,
              "<svg class=hist width=%d height=%d viewBox=\"0 0 %d %d\" "
              "role=img aria-label=\"response time histogram\">",
              w + left + 14, h + bottom, w + left + 14, h + bottom);
    pp_printf(o, "<g transform=\"translate(%d,0)\">", left);
    pp_printf(o, "<line x1=0 y1=%d x2=%d y2=%d stroke=#c5ccd6 />", h, w, h);
    pp_printf(o, "<text x=%d y=10 text-anchor=end>max %llu</text>", w,
              (unsigned long long)mx);
    for (b = 0; b < PP_HIST_BUCKETS; b++) {
        char lo[24], hi[24];
        int bh;
        if (!s->hist[b]) {
            continue;
        }
        bh = (int)((double)(h - top) * (double)s->hist[b] / (double)mx);
        if (bh < 2) {
            bh = 2;
        }
        duration_label(pp_hist_lo_us(b), lo, sizeof(lo));
        if (pp_hist_hi_us(b) == INT64_MAX) {
            snprintf(hi, sizeof(hi), "&#8734;");
        }
        else {
            snprintf(hi, sizeof(hi), "%.1fms", pp_hist_hi_us(b) / 1e3);
        }
        pp_printf(o,
                  "<rect class=b x=%d y=%d width=%d height=%d>"
                  "<title>%.1fms - %s: %llu</title></rect>",
                  b * bw, h - bh, bw - 1, bh, pp_hist_lo_us(b) / 1e3, hi,
                  (unsigned long long)s->hist[b]);
    }
    for (k = 0; k < sizeof(ticks) / sizeof(ticks[0]); k++) {
        char lab[32];
        int x = pp_hist_bucket(ticks[k]) * bw;
        duration_label(ticks[k], lab, sizeof(lab));
        pp_printf(o,
                  "<line x1=%d y1=%d x2=%d y2=%d stroke=#9aa5b4 />"
                  "<text x=%d y=%d text-anchor=middle>%s</text>",
                  x, h, x, h + 3, x, h + 13, lab);
    }
    pp_puts(o, "</g></svg>");
}

static void status_cell(pp_sink_t *o, int status)
{
    pp_printf(o, "<td class=\"num%s\">%d</td>",
              status >= 500 ? " s5" : (status >= 400 ? " s4" : ""), status);
}

static void req_link(pp_sink_t *o, const pp_render_opts_t *opt,
                     const char *id, const char *text)
{
    pp_puts(o, "<a href=\"");
    html(o, opt->base);
    pp_puts(o, "/request/");
    {
        /* the id is percent-encoded, then HTML-escaped */
        char buf[PP_ID_MAX * 3 + 1];
        size_t n = 0, i;
        static const char hex[] = "0123456789ABCDEF";
        for (i = 0; id[i] && i < PP_ID_MAX; i++) {
            unsigned char c = (unsigned char)id[i];
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                c == '.' || c == '~' || c == '@') {
                buf[n++] = (char)c;
            }
            else {
                buf[n++] = '%';
                buf[n++] = hex[c >> 4];
                buf[n++] = hex[c & 15];
            }
        }
        buf[n] = '\0';
        html(o, buf);
    }
    pp_puts(o, "\">");
    html(o, text);
    pp_puts(o, "</a>");
}

static void leaf_function(const pp_store_t *st, uint32_t node, char *buf,
                          size_t cap)
{
    uint32_t parent, frame;
    pp_frame_view_t fv;

    buf[0] = '\0';
    if (pp_store_node_get(st, node, &parent, &frame) &&
        pp_store_frame_view(st, frame, &fv)) {
        if (fv.file[0]) {
            const char *base = strrchr(fv.file, '/');
            snprintf(buf, cap, "%s (%s:%u)", fv.function,
                     base ? base + 1 : fv.file, fv.line);
        }
        else {
            snprintf(buf, cap, "%s", fv.function);
        }
    }
}

void pp_render_overview_html(pp_sink_t *o, const pp_store_t *st,
                             const pp_render_opts_t *opt)
{
    req_list_t traces, live;
    int i, nloc = 0;
    size_t k;
    char b1[64], b2[64];
    double uptime_s = (double)(opt->now_us - st->created_us) / 1e6;
    uint64_t samples = atomic_load(&st->c.samples);

    page_begin(o, "Python request profiles", opt);

    pp_puts(o, "<h2>Locations</h2>");
    for (i = 0; i < PP_MAX_LOCATIONS; i++) {
        const pp_location_t *loc = pp_store_location((pp_store_t *)st, i);
        loc_snap_t s;
        double age;

        if (!location_current(st, loc)) {
            continue;
        }
        if (nloc++ == 0) {
            pp_puts(o, "<table><tr><th>Location</th><th class=num>Every</th>"
                       "<th class=num>Requests</th>"
                       "<th class=num title=\"average since the location "
                       "was configured\">Rate</th>"
                       "<th class=num>p50</th><th class=num>p95</th>"
                       "<th class=num>p99</th><th class=num>Max</th>"
                       "<th class=num>Kept</th><th class=num>Samples</th>"
                       "<th>Response time (log scale)</th></tr>");
        }
        snap_location(loc, &s);
        age = (double)(opt->now_us - loc->created_us) / 1e6;
        pp_puts(o, "<tr><td class=mono>");
        pp_put_html(o, loc->path, strnlen(loc->path, PP_PREFIX_MAX));
        pp_puts(o, "</td>");
        put_ms_cell(o, loc->interval_us / 1e3);
        pp_printf(o, "<td class=num>%llu</td><td class=num>%.2f/s</td>",
                  (unsigned long long)s.requests,
                  age > 0 ? (double)s.requests / age : 0.0);
        put_ms_cell(o, pp_hist_quantile_us(s.hist, 0.50, (int64_t)s.max_us) /
                           1e3);
        put_ms_cell(o, pp_hist_quantile_us(s.hist, 0.95, (int64_t)s.max_us) /
                           1e3);
        put_ms_cell(o, pp_hist_quantile_us(s.hist, 0.99, (int64_t)s.max_us) /
                           1e3);
        put_ms_cell(o, s.max_us / 1e3);
        pp_printf(o, "<td class=num>%llu</td><td class=num>%llu</td><td>",
                  (unsigned long long)s.kept, (unsigned long long)s.samples);
        hist_svg(o, &s);
        pp_puts(o, "</td></tr>");
    }
    if (nloc) {
        pp_puts(o, "</table>");
    }
    else {
        pp_puts(o, "<p class=empty>No <code>PyProfSample</code> location is "
                   "configured, so nothing is sampled.</p>");
    }

    collect_inflight(st, &live);
    pp_printf(o, "<h2>In flight now <span class=muted>(%zu)</span></h2>",
              live.n);
    if (live.n == 0) {
        pp_puts(o, "<p class=empty>No profiled request is running.</p>");
    }
    else {
        pp_puts(o, "<table><tr><th class=num>Elapsed</th><th>Method</th>"
                   "<th>URI</th><th class=num>Samples</th>"
                   "<th class=num>PID</th><th>Now in</th></tr>");
        for (k = 0; k < live.n; k++) {
            const pp_req_t *q = &live.v[k];
            char leaf[600];
            pp_puts(o, "<tr>");
            put_ms_cell(o, (opt->now_us - q->start_us) / 1e3);
            pp_puts(o, "<td>");
            html(o, q->method);
            pp_puts(o, "</td><td class=uri>");
            html(o, q->uri);
            pp_printf(o, "</td><td class=num>%u</td><td class=num>%d</td>"
                         "<td class=mono>",
                      q->samples, (int)q->pid);
            leaf_function(st, q->last_node, leaf, sizeof(leaf));
            if (leaf[0]) {
                req_link(o, opt, q->id, leaf);
            }
            else {
                pp_puts(o, "<span class=muted>not sampled yet</span>");
            }
            pp_puts(o, "</td></tr>");
        }
        pp_puts(o, "</table>");
    }
    free(live.v);

    collect_traces(st, &traces);
    pp_printf(o, "<h2>Slow requests <span class=muted>(%zu kept, slowest "
                 "first)</span></h2>",
              traces.n);
    if (traces.n == 0) {
        pp_puts(o, "<p class=empty>No request has reached the slow "
                   "threshold yet.</p>");
    }
    else {
        pp_puts(o, "<table><tr><th class=num>Duration</th>"
                   "<th class=num>CPU</th><th>Method</th><th>URI</th>"
                   "<th class=num>Status</th><th class=num>Samples</th>"
                   "<th class=num>PID</th><th>Started (UTC)</th>"
                   "<th>Profile</th></tr>");
        for (k = 0; k < traces.n && k < HTML_SLOW_ROWS; k++) {
            const pp_req_t *q = &traces.v[k];
            char t[40];
            pp_puts(o, "<tr>");
            put_ms_cell(o, q->duration_us / 1e3);
            put_ms_cell(o, q->cpu_us / 1e3);
            pp_puts(o, "<td>");
            html(o, q->method);
            pp_puts(o, "</td><td class=uri>");
            html(o, q->uri);
            pp_puts(o, "</td>");
            status_cell(o, q->status);
            iso_time(q->start_us, t, sizeof(t));
            pp_printf(o, "<td class=num>%u</td><td class=num>%d</td>"
                         "<td class=mono>%s</td><td>",
                      q->samples, (int)q->pid, t);
            req_link(o, opt, q->id, "call tree");
            pp_puts(o, "</td></tr>");
        }
        pp_puts(o, "</table>");
        if (traces.n > HTML_SLOW_ROWS) {
            pp_printf(o, "<p class=muted>%zu more in <a href=\"?format=json"
                         "\">JSON</a>.</p>",
                      traces.n - HTML_SLOW_ROWS);
        }
    }
    free(traces.v);

    pp_puts(o, "<h2>Sampler cost</h2><div class=cards>");
    pp_printf(o, "<div class=card><b>%llu</b><span>samples</span></div>",
              (unsigned long long)samples);
    pp_printf(o, "<div class=card><b>%.3f s</b><span>sampler CPU</span>"
                 "</div>",
              atomic_load(&st->c.sampler_cpu_ns) / 1e9);
    pp_printf(o, "<div class=card><b>%.1f &micro;s</b><span>per sample, "
                 "median</span></div>",
              cost_quantile_us(st, 0.5));
    pp_printf(o, "<div class=card><b>%.1f &micro;s</b><span>per sample, "
                 "p99</span></div>",
              cost_quantile_us(st, 0.99));
    pp_printf(o, "<div class=card><b>%.3f s</b><span>waiting for the GIL"
                 "</span></div>",
              atomic_load(&st->c.gil_wait_ns) / 1e9);
    pp_printf(o, "<div class=card><b>%.2f/s</b><span>samples per second"
                 "</span></div>",
              uptime_s > 0 ? samples / uptime_s : 0.0);
    snprintf(b1, sizeof(b1), "%.1f", pp_store_arena_used(st) / 1048576.0);
    snprintf(b2, sizeof(b2), "%.1f", st->total_size / 1048576.0);
    pp_printf(o, "<div class=card><b>%s / %s MiB</b><span>frame text used / "
                 "store size</span></div>",
              b1, b2);
    pp_printf(o, "<div class=card><b>%llu</b><span>traces evicted (oldest "
                 "first)</span></div>",
              (unsigned long long)atomic_load(&st->c.traces_evicted));
    {
        unsigned long long drops =
            atomic_load(&st->c.traces_torn) + atomic_load(&st->c.slots_full) +
            atomic_load(&st->c.frames_full) + atomic_load(&st->c.nodes_full) +
            atomic_load(&st->c.agg_full) +
            atomic_load(&st->c.stacks_overflow);
        pp_printf(o, "<div class=card><b>%llu</b><span>dropped (store full, "
                     "see JSON)</span></div>",
                  drops);
    }
    pp_printf(o, "<div class=card><b>%llu</b><span>lost (process died)"
                 "</span></div>",
              (unsigned long long)atomic_load(&st->c.slots_lost));
    pp_puts(o, "</div><p class=muted>Machine-readable: <a href=\"");
    html(o, opt->base);
    pp_puts(o, "?format=json\">?format=json</a>. Reload every N seconds "
               "with <code>?refresh=N</code>.</p>");
    page_end(o);
}

/* ---- call tree ---- */

/* The HTML tree merges frames of the same function (name and file) under
 * one parent, whatever line each sample was on, so a function shows once
 * per caller; the line shown is the one most samples were on.  Exports
 * keep every line. */

typedef struct u64map {
    uint64_t *keys; /* key + 1; 0 = empty */
    uint32_t *vals;
    uint32_t cap;   /* power of two */
} u64map_t;

static int map_init(u64map_t *m, uint32_t want)
{
    m->cap = 16;
    while (m->cap < want * 2 && m->cap < (1u << 30)) {
        m->cap *= 2;
    }
    m->keys = calloc(m->cap, sizeof(uint64_t));
    m->vals = calloc(m->cap, sizeof(uint32_t));
    return m->keys && m->vals ? 0 : -1;
}

static void map_free(u64map_t *m)
{
    free(m->keys);
    free(m->vals);
}

/* Value for key, or insert `val` if absent.  Returns a pointer to it, NULL
 * if the map is full. */
static uint32_t *map_get(u64map_t *m, uint64_t key, uint32_t val)
{
    uint32_t h = (uint32_t)((key * 0x9e3779b97f4a7c15ULL) >> 32), i;

    for (i = 0; i < m->cap; i++) {
        uint32_t at = (h + i) & (m->cap - 1);
        if (m->keys[at] == key + 1) {
            return &m->vals[at];
        }
        if (m->keys[at] == 0) {
            m->keys[at] = key + 1;
            m->vals[at] = val;
            return &m->vals[at];
        }
    }
    return NULL;
}

typedef struct tnode {
    uint32_t parent;     /* tnode index + 1; 0 = top level */
    uint32_t fkey;       /* function identity (name and file) */
    uint32_t frame;      /* the line most samples were on */
    uint32_t frame_hits;
    uint32_t count;      /* samples through this function here */
    uint32_t self;       /* samples that ended here */
    uint64_t weight_us, cpu_us;
    uint32_t first_child, next_sibling; /* tnode index + 1 */
} tnode_t;

typedef struct tree {
    tnode_t *v;
    uint32_t n, cap;
    u64map_t index;  /* (parent, fkey) -> tnode index + 1 */
    u64map_t fkeys;  /* frame id -> fkey */
    u64map_t fnames; /* hash of (function, file) -> fkey */
    uint32_t roots;
    uint32_t total;
} tree_t;

static uint32_t function_key(tree_t *t, const pp_store_t *st, uint32_t frame)
{
    uint32_t *k = map_get(&t->fkeys, frame, 0);
    pp_frame_view_t fv;
    uint64_t h = 0xcbf29ce484222325ULL;
    const char *p;
    uint32_t *named;

    if (!k) {
        return frame;
    }
    if (*k) {
        return *k;
    }
    if (!pp_store_frame_view(st, frame, &fv)) {
        *k = frame;
        return frame;
    }
    for (p = fv.function; *p; p++) {
        h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    }
    h = (h ^ 0xff) * 0x100000001b3ULL;
    for (p = fv.file; *p; p++) {
        h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    }
    named = map_get(&t->fnames, h, frame);
    *k = named ? *named : frame;
    return *k;
}

static void tree_free(tree_t *t)
{
    free(t->v);
    map_free(&t->index);
    map_free(&t->fkeys);
    map_free(&t->fnames);
}

static void tree_add_stack(tree_t *t, const pp_store_t *st,
                           const pp_stack_count_t *e)
{
    uint32_t frames[PP_DEPTH_LIMIT + 2];
    uint32_t d = node_frames(st, e->node, frames, PP_DEPTH_LIMIT + 2), j;
    uint32_t parent = 0;

    for (j = 0; j < d; j++) {
        uint32_t fkey = function_key(t, st, frames[j]);
        uint32_t *slot =
            map_get(&t->index, ((uint64_t)parent << 32) | fkey, 0);
        tnode_t *x;

        if (!slot) {
            return;
        }
        if (*slot == 0) {
            if (t->n >= t->cap) {
                return;
            }
            x = &t->v[t->n];
            memset(x, 0, sizeof(*x));
            x->parent = parent;
            x->fkey = fkey;
            x->frame = frames[j];
            *slot = ++t->n;
        }
        x = &t->v[*slot - 1];
        if (x->frame == frames[j]) {
            x->frame_hits += e->count;
        }
        else if (e->count > x->frame_hits) {
            x->frame = frames[j];
            x->frame_hits = e->count;
        }
        x->count += e->count;
        x->weight_us += e->weight_us;
        x->cpu_us += e->cpu_us;
        if (j + 1 == d) {
            x->self += e->count;
        }
        parent = *slot;
    }
}

static const tree_t *sort_tree;

static int cmp_children(const void *a, const void *b)
{
    const tnode_t *x = &sort_tree->v[*(const uint32_t *)a - 1];
    const tnode_t *y = &sort_tree->v[*(const uint32_t *)b - 1];
    if (x->count != y->count) {
        return x->count < y->count ? 1 : -1;
    }
    return x->fkey > y->fkey ? 1 : (x->fkey < y->fkey ? -1 : 0);
}

/* Link each node's children, most samples first. */
static void tree_link(tree_t *t)
{
    uint32_t *order = malloc(sizeof(uint32_t) * (t->n ? t->n : 1));
    uint32_t i;

    if (!order) {
        return;
    }
    for (i = 0; i < t->n; i++) {
        order[i] = i + 1;
    }
    /* qsort has no context argument; the handler renders one page per
     * thread, and this runs with no other tree alive on the thread */
    sort_tree = t;
    qsort(order, t->n, sizeof(uint32_t), cmp_children);
    sort_tree = NULL;
    /* prepend in reverse order so the biggest child comes first */
    for (i = t->n; i-- > 0;) {
        tnode_t *x = &t->v[order[i] - 1];
        if (x->parent) {
            x->next_sibling = t->v[x->parent - 1].first_child;
            t->v[x->parent - 1].first_child = order[i];
        }
        else {
            x->next_sibling = t->roots;
            t->roots = order[i];
            t->total += x->count;
        }
    }
    free(order);
}

static int tree_build(tree_t *t, const pp_store_t *st, const pp_record_t *rec)
{
    uint32_t i, nstacks = 0;

    memset(t, 0, sizeof(*t));
    for (i = 0; i < PP_STACKS_MAX; i++) {
        if (rec->stacks[i].node && rec->stacks[i].count) {
            nstacks++;
        }
    }
    t->cap = nstacks * (rec->req.max_depth + 2) + 1;
    if (t->cap > nstacks * (PP_DEPTH_LIMIT + 2) + 1) {
        t->cap = nstacks * (PP_DEPTH_LIMIT + 2) + 1;
    }
    t->v = malloc(sizeof(tnode_t) * t->cap);
    if (!t->v || map_init(&t->index, t->cap) || map_init(&t->fkeys, t->cap) ||
        map_init(&t->fnames, t->cap)) {
        return -1;
    }
    for (i = 0; i < PP_STACKS_MAX; i++) {
        if (rec->stacks[i].node && rec->stacks[i].count) {
            tree_add_stack(t, st, &rec->stacks[i]);
        }
    }
    tree_link(t);
    return 0;
}

static void tree_html(pp_sink_t *o, const pp_store_t *st, const tree_t *t,
                      uint32_t first, int depth)
{
    uint32_t c;

    for (c = first; c; c = t->v[c - 1].next_sibling) {
        const tnode_t *x = &t->v[c - 1];
        pp_frame_view_t fv;
        double pct = t->total ? 100.0 * x->count / t->total : 0;
        double cpu_share =
            x->weight_us ? (double)x->cpu_us / (double)x->weight_us : 0;
        int w = (int)(pct * 1.2 + 0.5), wc;
        int open = pct >= 5.0 && depth < 64;

        if (cpu_share > 1) {
            cpu_share = 1;
        }
        wc = (int)(w * cpu_share + 0.5);
        if (!pp_store_frame_view(st, x->frame, &fv)) {
            fv.function = "[unknown]";
            fv.file = "";
            fv.line = 0;
        }
        pp_puts(o, x->first_child ? (open ? "<details open><summary>"
                                          : "<details><summary>")
                                  : "<div class=leaf>");
        pp_printf(o, "<span class=pct>%.1f%%</span>", pct);
        pp_printf(o,
                  "<span class=bars><span class=\"bar cpu\" "
                  "style=\"width:%dpx\"></span><span class=\"bar wait\" "
                  "style=\"width:%dpx\"></span></span>",
                  wc, w - wc);
        pp_puts(o, "<span class=fn>");
        html(o, fv.function);
        pp_puts(o, "</span> ");
        if (fv.file[0]) {
            pp_puts(o, "<span class=loc>");
            html(o, fv.file);
            pp_printf(o, ":%u</span>", fv.line);
        }
        pp_printf(o, "<span class=cnt>%u sample%s, %.1f ms", x->count,
                  x->count == 1 ? "" : "s", x->weight_us / 1e3);
        if (x->self && x->first_child) {
            pp_printf(o, ", %u in itself", x->self);
        }
        pp_printf(o, ", %.0f%% on CPU</span>", cpu_share * 100);
        if (x->first_child) {
            pp_puts(o, "</summary>");
            if (depth < PP_DEPTH_LIMIT + 2) {
                tree_html(o, st, t, x->first_child, depth + 1);
            }
            pp_puts(o, "</details>");
        }
        else {
            pp_puts(o, "</div>");
        }
    }
}

void pp_render_request_html(pp_sink_t *o, const pp_store_t *st,
                            const pp_record_t *rec, int inflight,
                            const pp_render_opts_t *opt)
{
    const pp_req_t *q = &rec->req;
    char t[40], lp[PP_PREFIX_MAX], title[PP_ID_MAX + 16];
    tree_t tree;

    snprintf(title, sizeof(title), "Request %s", q->id);
    page_begin(o, title, opt);
    iso_time(q->start_us, t, sizeof(t));
    pp_puts(o, "<h2>");
    html(o, q->method);
    pp_puts(o, " <span class=mono>");
    html(o, q->uri);
    pp_puts(o, "</span></h2><dl class=kv>");
    if (inflight) {
        pp_printf(o, "<dt>State</dt><dd>in flight, %.1f ms so far</dd>",
                  (opt->now_us - q->start_us) / 1e3);
    }
    else {
        pp_printf(o, "<dt>Status</dt><dd>%d</dd>", (int)q->status);
        pp_printf(o, "<dt>Duration</dt><dd>%.1f ms</dd>",
                  q->duration_us / 1e3);
        pp_printf(o, "<dt>CPU time</dt><dd>%.1f ms (thread CPU clock, "
                     "%.0f%% of the duration)</dd>",
                  q->cpu_us / 1e3,
                  q->duration_us ? 100.0 * q->cpu_us / q->duration_us : 0.0);
    }
    pp_printf(o, "<dt>Samples</dt><dd>%u every %.1f ms", q->samples,
              q->interval_us / 1e3);
    if (q->samples_overflow) {
        pp_printf(o, " (%u in [other stacks]: more than %d distinct stacks)",
                  q->samples_overflow, PP_STACKS_MAX - 1);
    }
    pp_puts(o, "</dd><dt>Location</dt><dd class=mono>");
    html(o, location_path(st, q->location, lp, sizeof(lp)));
    pp_puts(o, "</dd><dt>Virtual host</dt><dd>");
    html(o, q->vhost);
    pp_printf(o, "</dd><dt>Process / thread</dt><dd>pid %d, tid %d</dd>",
              (int)q->pid, (int)q->tid);
    pp_printf(o, "<dt>Started</dt><dd class=mono>%s</dd>", t);
    pp_puts(o, "<dt>Request id</dt><dd class=mono>");
    html(o, q->id);
    pp_puts(o, "</dd><dt>Export</dt><dd><a href=\"?format=json\">JSON</a> "
               "&middot; <a href=\"?format=folded\">folded stacks</a> (for "
               "flamegraph.pl, speedscope)</dd></dl>");

    pp_puts(o, "<h2>Call tree <span class=muted>(share of samples; bar: "
               "<span style=\"color:#d9480f\">on CPU</span> / "
               "<span style=\"color:#7aa2d6\">off CPU: sleep, I/O or waiting for "
               "the GIL</span>)</span></h2>");
    if (q->samples == 0) {
        pp_puts(o, "<p class=empty>No sample landed in Python code during "
                   "this request (it was shorter than the interval, or "
                   "spent its time outside Python).</p>");
    }
    else if (tree_build(&tree, st, rec) == 0) {
        pp_puts(o, "<div class=tree>");
        tree_html(o, st, &tree, tree.roots, 0);
        pp_puts(o, "</div>");
        tree_free(&tree);
    }
    else {
        tree_free(&tree);
        pp_puts(o, "<p class=empty>Out of memory building the tree.</p>");
    }
    page_end(o);
}
