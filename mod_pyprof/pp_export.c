/* pp_export.c: folded, speedscope and pprof writers (see pp_export.h).
 *
 * The protobuf encoder is a few varint helpers over a growable buffer:
 * profile.proto needs nothing more, and it keeps the module free of a
 * protobuf runtime.  gzip comes from zlib, which httpd installs anyway.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "pp_export.h"
#include "pp_grow.h"
#include "pp_hash.h"

/* ---- folded ---- */

static void folded_frame(pp_sink_t *o, const pp_pframe_t *fv)
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

void pp_export_folded(pp_sink_t *o, const pp_profile_t *p)
{
    uint32_t frames[PP_DEPTH_LIMIT + 2];
    size_t i;

    for (i = 0; i < p->n; i++) {
        uint32_t d = pp_profile_stack_frames(p, i, frames, PP_DEPTH_LIMIT + 2),
                 j;
        if (d == 0) {
            continue;
        }
        for (j = 0; j < d; j++) {
            const pp_pframe_t *fv;
            fv = pp_profile_pframe(p, frames[j]);
            if (j) {
                pp_puts(o, ";");
            }
            folded_frame(o, fv);
        }
        pp_printf(o, " %llu\n", (unsigned long long)p->v[i].count);
    }
}

/* ---- frame indexing shared by speedscope and pprof ---- */

typedef struct frame_index {
    uint64_t *ids; /* keys (profile frame ids), in first-seen order */
    uint32_t n, cap;
    pp_u64map_t map; /* key -> index + 1 */
} frame_index_t;

static int fi_init(frame_index_t *fi)
{
    memset(fi, 0, sizeof(*fi));
    return pp_u64map_init(&fi->map, 2048);
}

static void fi_free(frame_index_t *fi)
{
    free(fi->ids);
    pp_u64map_free(&fi->map);
}

/* Index (0-based) of a key (a frame id, or any value < UINT64_MAX), added
 * if new; -1 on ENOMEM. */
static int64_t fi_get(frame_index_t *fi, uint64_t frame)
{
    /* room first: a new key's index is n */
    uint64_t *ids = pp_grow32(fi->ids, &fi->cap, (size_t)fi->n + 1,
                              sizeof(uint64_t), 256, UINT32_MAX - 1, 0);
    uint32_t *slot;

    if (!ids) {
        return -1;
    }
    fi->ids = ids;
    slot = pp_u64map_get(&fi->map, frame, fi->n + 1);
    if (!slot) {
        return -1;
    }
    if (*slot == fi->n + 1) { /* new */
        fi->ids[fi->n++] = frame;
    }
    return *slot - 1;
}

/* ---- speedscope ---- */

void pp_export_speedscope(pp_sink_t *o, const pp_profile_t *p, const char *name)
{
    frame_index_t fi;
    uint32_t frames[PP_DEPTH_LIMIT + 2];
    size_t i;
    uint32_t k;

    if (fi_init(&fi)) {
        fi_free(&fi);
        pp_puts(o, "{}\n");
        return;
    }
    pp_puts(o, "{\"$schema\":\"https://www.speedscope.app/"
               "file-format-schema.json\",\"exporter\":\"mod_pyprof\","
               "\"name\":");
    pp_put_json_str(o, name, strlen(name));
    pp_puts(o, ",\"activeProfileIndex\":0,\"profiles\":[{\"type\":\"sampled\","
               "\"name\":");
    pp_put_json_str(o, name, strlen(name));
    pp_printf(o,
              ",\"unit\":\"milliseconds\",\"startValue\":0,"
              "\"endValue\":%.3f,\"samples\":[",
              p->weight_us / 1e3);
    for (i = 0; i < p->n; i++) {
        uint32_t d = pp_profile_stack_frames(p, i, frames, PP_DEPTH_LIMIT + 2),
                 j;
        pp_puts(o, i ? ",[" : "[");
        for (j = 0; j < d; j++) {
            int64_t idx = fi_get(&fi, frames[j]);
            pp_printf(o, "%s%lld", j ? "," : "",
                      (long long)(idx < 0 ? 0 : idx));
        }
        pp_puts(o, "]");
    }
    pp_puts(o, "],\"weights\":[");
    for (i = 0; i < p->n; i++) {
        pp_printf(o, "%s%.3f", i ? "," : "", p->v[i].weight_us / 1e3);
    }
    pp_puts(o, "]}],\"shared\":{\"frames\":[");
    for (k = 0; k < fi.n; k++) {
        const pp_pframe_t *fv;
        fv = pp_profile_pframe(p, (uint32_t)fi.ids[k]);
        pp_puts(o, k ? ",{\"name\":" : "{\"name\":");
        pp_put_json_str(o, fv->function, strlen(fv->function));
        if (fv->file[0]) {
            pp_puts(o, ",\"file\":");
            pp_put_json_str(o, fv->file, strlen(fv->file));
            pp_printf(o, ",\"line\":%u", fv->line);
        }
        pp_puts(o, "}");
    }
    pp_puts(o, "]}}\n");
    fi_free(&fi);
}

/* ---- protobuf ---- */

static void b_need(pp_bytes_t *b, size_t n)
{
    unsigned char *d;

    if (b->failed || b->len + n <= b->cap) {
        return;
    }
    d = n > SIZE_MAX / 2 - b->len
            ? NULL
            : pp_grow(b->data, &b->cap, b->len + n, 1, 4096, SIZE_MAX / 2, 0);
    if (!d) {
        b->failed = 1;
        return;
    }
    b->data = d;
}

static void b_put(pp_bytes_t *b, const void *p, size_t n)
{
    if (!n) {
        return;
    }
    b_need(b, n);
    if (!b->failed) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
    }
}

static void pb_varint(pp_bytes_t *b, uint64_t v)
{
    unsigned char buf[10];
    size_t n = 0;
    do {
        buf[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v) {
            buf[n] |= 0x80;
        }
        n++;
    } while (v);
    b_put(b, buf, n);
}

static void pb_key(pp_bytes_t *b, uint32_t field, uint32_t wire)
{
    pb_varint(b, ((uint64_t)field << 3) | wire);
}

static void pb_uint(pp_bytes_t *b, uint32_t field, uint64_t v)
{
    if (v) { /* proto3: zero is the default and is not written */
        pb_key(b, field, 0);
        pb_varint(b, v);
    }
}

static void pb_bytes(pp_bytes_t *b, uint32_t field, const void *p, size_t n)
{
    pb_key(b, field, 2);
    pb_varint(b, n);
    b_put(b, p, n);
}

/* An embedded message: encode it into `sub`, then append length-delimited. */
static void pb_message(pp_bytes_t *b, uint32_t field, pp_bytes_t *sub)
{
    if (sub->failed) {
        b->failed = 1;
    }
    pb_bytes(b, field, sub->data ? sub->data : (unsigned char *)"", sub->len);
    sub->len = 0;
}

/* A string field that proto3 requires to be valid UTF-8 (string_table):
 * names come from applications and file systems, so invalid sequences are
 * written as U+FFFD, as the JSON writer does. */
static void pb_utf8(pp_bytes_t *b, uint32_t field, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), i = 0, len;
    pp_bytes_t fixed = {0};

    while (i < n && (len = pp_utf8_seq(p + i, n - i)) != 0) {
        i += len;
    }
    if (i == n) {
        pb_bytes(b, field, s, n);
        return;
    }
    b_put(&fixed, s, i);
    while (i < n) {
        len = pp_utf8_seq(p + i, n - i);
        if (len) {
            b_put(&fixed, s + i, len);
            i += len;
        }
        else {
            b_put(&fixed, "\xef\xbf\xbd", 3);
            i++;
        }
    }
    if (fixed.failed) {
        b->failed = 1;
    }
    else {
        pb_bytes(b, field, (const char *)fixed.data, fixed.len);
    }
    free(fixed.data);
}

/* string table: index of s, appended if new (linear-probe hash) */
typedef struct strtab {
    pp_bytes_t *out; /* the Profile being written: strings go to field 6 */
    const char **v;
    uint32_t n, cap;
    uint32_t *slots; /* index + 1 */
    uint32_t mcap;
} strtab_t;

static int64_t strtab_get(strtab_t *t, const char *s)
{
    uint32_t h;

    if (t->n * 2 >= t->mcap) {
        uint32_t ncap = t->mcap ? t->mcap * 2 : 1024, k;
        uint32_t *slots = calloc(ncap, sizeof(uint32_t));
        if (!slots) {
            return -1;
        }
        for (k = 0; k < t->n; k++) {
            h = pp_fnv1a32_str(PP_FNV32_BASIS, t->v[k]);
            while (slots[h & (ncap - 1)]) {
                h++;
            }
            slots[h & (ncap - 1)] = k + 1;
        }
        free(t->slots);
        t->slots = slots;
        t->mcap = ncap;
    }
    h = pp_fnv1a32_str(PP_FNV32_BASIS, s);
    for (;; h++) {
        uint32_t at = h & (t->mcap - 1), v = t->slots[at];
        if (v == 0) {
            const char **nv = pp_grow32(t->v, &t->cap, (size_t)t->n + 1,
                                        sizeof(char *), 256, UINT32_MAX - 1, 0);
            if (!nv) {
                return -1;
            }
            t->v = nv;
            t->v[t->n] = s;
            t->slots[at] = ++t->n;
            return t->n - 1;
        }
        /* a non-zero slot was filled after t->v grew to hold its string */
        // NOLINTNEXTLINE(clang-analyzer-core.NullDereference)
        if (strcmp(t->v[v - 1], s) == 0) {
            return v - 1;
        }
    }
}

/* Compress what `raw` holds into `out` and empty `raw`: the profile is
 * gzipped as it is encoded, so its raw bytes (stacks x depth varints, 130
 * MB for a location of 66,000 stacks of 1,024 frames) never sit in memory
 * whole, only the compressed result.  -1 on a zlib or memory failure. */
#define GZ_CHUNK ((size_t)256 * 1024)

static int gz_drain(z_stream *z, pp_bytes_t *raw, pp_bytes_t *out, int finish)
{
    int ret;

    if (raw->failed) {
        return -1;
    }
    z->next_in = raw->data ? raw->data : (unsigned char *)"";
    z->avail_in = (uInt)raw->len;
    do {
        b_need(out, GZ_CHUNK);
        if (out->failed) {
            return -1;
        }
        z->next_out = out->data + out->len;
        z->avail_out = out->cap - out->len > 0x40000000u
                           ? 0x40000000u
                           : (uInt)(out->cap - out->len);
        ret = deflate(z, finish ? Z_FINISH : Z_NO_FLUSH);
        out->len = (size_t)(z->next_out - out->data);
        if (ret == Z_STREAM_ERROR) {
            return -1;
        }
    } while (z->avail_in > 0 || (finish && ret != Z_STREAM_END));
    raw->len = 0;
    return 0;
}

/* Strings made for labels: the string table keeps pointers, so each
 * distinct one is copied once and lives until the export is done. */
typedef struct owned {
    char **v;
    size_t n, cap;
} owned_t;

static const char *keep_label(owned_t *o, const char *s)
{
    size_t i;
    char **nv;

    for (i = 0; i < o->n; i++) {
        if (strcmp(o->v[i], s) == 0) {
            return o->v[i];
        }
    }
    if (o->n == o->cap) {
        size_t cap = o->cap ? 2 * o->cap : 16;
        if (!(nv = realloc(o->v, cap * sizeof(*nv)))) {
            return NULL;
        }
        o->v = nv;
        o->cap = cap;
    }
    if (!(o->v[o->n] = strdup(s))) {
        return NULL;
    }
    return o->v[o->n++];
}

static void owned_free(owned_t *o)
{
    size_t i;

    for (i = 0; i < o->n; i++) {
        free(o->v[i]);
    }
    free(o->v);
}

/* The holder a GIL-wait pseudo-frame names ("<GIL wait: held by /app
 * build_rows>", "<waiting to enter Python: ...>", see pp_sampler.c) as
 * "LOCATION FUNCTION (file:line)" into buf; 0 if fv is no such frame. */
static int gil_holder_label(const pp_pframe_t *fv, char *buf, size_t cap)
{
    static const char *const kinds[] = {"<GIL wait: ",
                                        "<waiting to enter Python: "};
    const char *who = NULL, *end;
    size_t k;

    for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]) && !who; k++) {
        if (strncmp(fv->function, kinds[k], strlen(kinds[k])) == 0) {
            who = fv->function + strlen(kinds[k]);
        }
    }
    end = who ? strrchr(who, '>') : NULL;
    if (!end) {
        return 0;
    }
    if (strncmp(who, "held by ", 8) == 0) {
        who += 8;
    }
    if (fv->file[0]) {
        snprintf(buf, cap, "%.*s (%s:%u)", (int)(end - who), who, fv->file,
                 fv->line);
    }
    else {
        snprintf(buf, cap, "%.*s", (int)(end - who), who);
    }
    return 1;
}

/* The two profiles: wall (the samples) or alloc (PyProfAllocations:
 * counts are allocations, weights bytes). */
static int export_pprof(pp_bytes_t *out, const pp_profile_t *p,
                        const pp_pprof_label_t *labels, size_t nlabels,
                        int64_t time_ns, int64_t duration_ns, int64_t period,
                        int alloc)
{
    pp_bytes_t prof = {0}, sub = {0}, sub2 = {0};
    frame_index_t fi = {0}, fns = {0};
    strtab_t strs = {0};
    uint32_t frames[PP_DEPTH_LIMIT + 2];
    char holder[2 * PP_FRAME_TEXT_MAX + 32];
    owned_t labels_owned = {0};
    size_t i;
    uint32_t k;
    int64_t s_samples, s_count, s_wall, s_ns, s_space;
    z_stream z;
    int rc = -1, zinit = 0;

    memset(out, 0, sizeof(*out));
    /* gzip (windowBits 31), as pprof readers expect */
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 31, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        goto done;
    }
    zinit = 1;
    if (fi_init(&fi)) {
        goto done;
    }
    /* index 0 is "", as profile.proto requires; -1 (ENOMEM) anywhere
     * fails the export rather than writing a wrong index */
    if (strtab_get(&strs, "") != 0) {
        goto done;
    }
    s_samples = strtab_get(&strs, alloc ? "alloc_objects" : "samples");
    s_count = strtab_get(&strs, "count");
    s_wall = strtab_get(&strs, alloc ? "alloc_space" : "wall");
    s_ns = strtab_get(&strs, alloc ? "bytes" : "nanoseconds");
    s_space = alloc ? strtab_get(&strs, "space") : s_wall;
    if (s_samples < 0 || s_count < 0 || s_wall < 0 || s_ns < 0 || s_space < 0) {
        goto done;
    }

    /* sample_type = [samples/count, wall/nanoseconds], or for allocations
     * [alloc_objects/count, alloc_space/bytes] (the names Go's heap
     * profiles use, so pprof -sample_index=alloc_space works) */
    pb_uint(&sub, 1, (uint64_t)s_samples);
    pb_uint(&sub, 2, (uint64_t)s_count);
    pb_message(&prof, 1, &sub);
    pb_uint(&sub, 1, (uint64_t)s_wall);
    pb_uint(&sub, 2, (uint64_t)s_ns);
    pb_message(&prof, 1, &sub);

    /* samples: location ids leaf first, as profile.proto wants */
    for (i = 0; i < p->n; i++) {
        uint32_t d, j;
        size_t l;
        d = pp_profile_stack_frames(p, i, frames, PP_DEPTH_LIMIT + 2);
        pb_key(&sub, 1, 2);
        for (j = 0; j < d; j++) {
            int64_t idx = fi_get(&fi, frames[d - 1 - j]);
            pb_varint(&sub2, (uint64_t)(idx < 0 ? 0 : idx) + 1);
        }
        pb_varint(&sub, sub2.len);
        b_put(&sub, sub2.data, sub2.len);
        sub2.len = 0;
        pb_varint(&sub2, p->v[i].count);
        pb_varint(&sub2, alloc ? p->v[i].weight_us : p->v[i].weight_us * 1000);
        pb_message(&sub, 2, &sub2);
        if (d > 0 && !alloc &&
            gil_holder_label(pp_profile_pframe(p, frames[d - 1]), holder,
                             sizeof(holder))) {
            pp_bytes_t lab = {0};
            const char *kept = keep_label(&labels_owned, holder);
            int64_t key = strtab_get(&strs, "gil_holder"),
                    str = kept ? strtab_get(&strs, kept) : -1;
            if (key < 0 || str < 0) {
                goto done;
            }
            pb_uint(&lab, 1, (uint64_t)key);
            pb_uint(&lab, 2, (uint64_t)str);
            pb_message(&sub, 3, &lab);
            free(lab.data);
        }
        for (l = 0; l < nlabels; l++) {
            pp_bytes_t lab = {0};
            int64_t key = strtab_get(&strs, labels[l].key), str = 0;
            if (labels[l].str) {
                str = strtab_get(&strs, labels[l].str);
            }
            if (key < 0 || str < 0) {
                goto done;
            }
            pb_uint(&lab, 1, (uint64_t)key);
            if (labels[l].str) {
                pb_uint(&lab, 2, (uint64_t)str);
            }
            else {
                pb_uint(&lab, 3, (uint64_t)labels[l].num);
            }
            pb_message(&sub, 3, &lab);
            free(lab.data);
        }
        pb_message(&prof, 2, &sub);
        if (prof.len >= GZ_CHUNK && gz_drain(&z, &prof, out, 0)) {
            goto done;
        }
    }

    /* functions: one per (name, file), found through their string table
     * indices; locations: one per frame (line) */
    if (fi_init(&fns)) {
        goto done;
    }
    for (k = 0; k < fi.n; k++) {
        const pp_pframe_t *fv;
        int64_t nm, fl, f;
        fv = pp_profile_pframe(p, (uint32_t)fi.ids[k]);
        nm = strtab_get(&strs, fv->function);
        fl = strtab_get(&strs, fv->file);
        if (nm < 0 || fl < 0) {
            goto done;
        }
        f = fi_get(&fns, ((uint64_t)nm << 32) | (uint64_t)fl);
        if (f < 0) {
            goto done;
        }
        /* Location { id, line { function_id, line } } */
        pb_uint(&sub, 1, k + 1);
        pb_uint(&sub2, 1, (uint64_t)f + 1);
        pb_uint(&sub2, 2, fv->line);
        pb_message(&sub, 4, &sub2);
        pb_message(&prof, 4, &sub);
    }
    for (k = 0; k < fns.n; k++) {
        /* Function { id, name, system_name, filename } */
        uint64_t nm = fns.ids[k] >> 32;
        pb_uint(&sub, 1, k + 1);
        pb_uint(&sub, 2, nm);
        pb_uint(&sub, 3, nm);
        pb_uint(&sub, 4, fns.ids[k] & 0xffffffffu);
        pb_message(&prof, 5, &sub);
    }
    for (k = 0; k < strs.n; k++) {
        pb_utf8(&prof, 6, strs.v[k]);
    }
    pb_uint(&prof, 9, (uint64_t)time_ns);
    pb_uint(&prof, 10, (uint64_t)duration_ns);
    /* period_type: wall/nanoseconds, or space/bytes */
    pb_uint(&sub, 1, (uint64_t)s_space);
    pb_uint(&sub, 2, (uint64_t)s_ns);
    pb_message(&prof, 11, &sub);
    pb_uint(&prof, 12, (uint64_t)period);
    if (alloc) {
        pb_uint(&prof, 14, (uint64_t)s_wall); /* default_sample_type */
    }
    if (prof.failed || sub.failed || sub2.failed ||
        gz_drain(&z, &prof, out, 1)) {
        goto done;
    }
    rc = 0;
done:
    if (zinit) {
        deflateEnd(&z);
    }
    if (rc != 0) {
        free(out->data);
        memset(out, 0, sizeof(*out));
    }
    free(prof.data);
    free(sub.data);
    free(sub2.data);
    free(strs.v);
    free(strs.slots);
    owned_free(&labels_owned);
    fi_free(&fi);
    fi_free(&fns);
    return rc;
}

int pp_export_pprof(pp_bytes_t *out, const pp_profile_t *p,
                    const pp_pprof_label_t *labels, size_t nlabels,
                    int64_t time_ns, int64_t duration_ns, int64_t interval_ns)
{
    return export_pprof(out, p, labels, nlabels, time_ns, duration_ns,
                        interval_ns, 0);
}

int pp_export_pprof_alloc(pp_bytes_t *out, const pp_profile_t *p,
                          const pp_pprof_label_t *labels, size_t nlabels,
                          int64_t time_ns, int64_t duration_ns,
                          int64_t mean_bytes)
{
    return export_pprof(out, p, labels, nlabels, time_ns, duration_ns,
                        mean_bytes, 1);
}
