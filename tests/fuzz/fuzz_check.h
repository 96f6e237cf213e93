/* fuzz_check.h: the oracles the libFuzzer targets judge output by.
 *
 * Independent re-implementations, never the code under test: a UTF-8
 * decoder, a strict JSON parser (RFC 8259, building a small tree so a
 * target can walk the output and compare it with what it put in), an HTML
 * tokenizer that only accepts the markup the pages' templates write, a
 * Prometheus text-format line checker, gunzip and a protobuf wire walker.
 * Each check returns NULL when the text is valid, or a static message;
 * FZ_CHECK aborts with that message and a dump of the offending output so
 * libFuzzer records the input as a crash.  Test code only: never linked
 * into the module.
 */
#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "pp_render.h"

/* ---- growable byte buffer and a sink writing to it ---- */

typedef struct fz_buf {
    char *p;
    size_t n, cap;
} fz_buf_t;

void fz_buf_put(fz_buf_t *b, const void *s, size_t n);
void fz_buf_reset(fz_buf_t *b);
void fz_buf_free(fz_buf_t *b);
const char *fz_buf_str(fz_buf_t *b); /* NUL-terminated view */
pp_sink_t fz_sink(fz_buf_t *b);

/* ---- failure ---- */

/* Print what failed, the output around `at` (or its start), and abort. */
void fz_fail(const char *what, const char *why, const char *out, size_t n,
             size_t at) __attribute__((noreturn));

#define FZ_CHECK(what, expr, out, n)                          \
    do {                                                      \
        const char *fz_why_ = (expr);                         \
        if (fz_why_) {                                        \
            fz_fail((what), fz_why_, (out), (n), fz_fail_at); \
        }                                                     \
    } while (0)

#define FZ_ASSERT(what, cond)                                        \
    do {                                                             \
        if (!(cond)) {                                               \
            fz_fail((what), "assertion failed: " #cond, NULL, 0, 0); \
        }                                                            \
    } while (0)

/* Offset in the checked text where the last check failed (for the dump). */
extern size_t fz_fail_at;

/* ---- input reader ---- */

typedef struct fz_in {
    const uint8_t *p;
    size_t n;
} fz_in_t;

uint8_t fz_u8(fz_in_t *in);
uint32_t fz_u32(fz_in_t *in);
/* A string of up to max bytes (length byte, or two when the first has the
 * top bit set), copied NUL-terminated into a malloc'd buffer; *len is the
 * byte count, which may include NULs. */
char *fz_str(fz_in_t *in, size_t max, size_t *len);

/* ---- text ---- */

int fz_utf8_valid(const char *s, size_t n);
/* Append s[0..n) to b with every byte that does not start a valid UTF-8
 * sequence replaced by U+FFFD (one per byte), and, when ctl_to is not
 * NULL, every byte < 0x20 (except those in keep) and 0x7f replaced by
 * ctl_to.  This is what the escapers promise before escaping. */
void fz_sanitize(fz_buf_t *b, const char *s, size_t n, const char *ctl_to,
                 const char *keep);
/* What pp_put_html promises before it escapes markup (see fuzz_check.c). */
void fz_sanitize_html(fz_buf_t *b, const char *s, size_t n);

/* ---- JSON ---- */

enum { FZ_J_NULL, FZ_J_BOOL, FZ_J_NUM, FZ_J_STR, FZ_J_ARR, FZ_J_OBJ };

typedef struct fz_json {
    int type;
    int b;
    double num;
    char *str; /* decoded UTF-8, NUL-terminated; len may include NULs */
    size_t len;
    struct fz_json **items; /* array elements or object values */
    char **keys;            /* object keys (decoded) */
    size_t nitems;
} fz_json_t;

/* Parse exactly one JSON text (optional trailing whitespace); NULL and a
 * message on error.  Strict: UTF-8 only, no raw control characters in
 * strings, no lone surrogates, no NaN, nesting at most 64. */
fz_json_t *fz_json_parse(const char *s, size_t n, const char **err);
void fz_json_free(fz_json_t *j);
const fz_json_t *fz_json_get(const fz_json_t *obj, const char *key);
const fz_json_t *fz_json_at(const fz_json_t *arr, size_t i);

/* ---- HTML ---- */

/* The page is made of the templates' tags only (every '<' opens a known
 * tag, a comment or the doctype; every attribute is name, name=token or
 * name="..."), no raw '<', '>' or '"' in text or attribute values, every
 * '&' starts an entity, <script>/<style> bodies end at their close tag,
 * and the text is valid UTF-8. */
const char *fz_html_check(const char *s, size_t n);

/* ---- folded ---- */

/* Lines "FRAMES COUNT\n": exactly one space-separated decimal count at the
 * end, no control character, valid UTF-8; *lines and *sum are returned. */
const char *fz_folded_check(const char *s, size_t n, size_t *lines,
                            uint64_t *sum);

/* ---- Prometheus text format 0.0.4 ---- */

/* Every line is a comment or `name{l="v",...} value`; label values hold
 * no raw '"', newline or lone backslash.  `want_label`, when not NULL, is
 * called with each decoded value of label `label`. */
const char *fz_prom_check(const char *s, size_t n, const char *label,
                          void (*want_label)(void *ctx, const char *v,
                                             size_t len),
                          void *ctx);

/* ---- gzip + protobuf ---- */

/* Inflate a gzip stream into out; NULL or a message. */
const char *fz_gunzip(const unsigned char *s, size_t n, fz_buf_t *out);

typedef struct fz_pb_field {
    uint32_t num;
    int wire;               /* 0 varint, 2 bytes */
    uint64_t v;             /* varint value, or length */
    const unsigned char *p; /* bytes */
} fz_pb_field_t;

/* Walk a protobuf message: every key a valid field number with wire type 0
 * (varint) or 2 (length-delimited, inside the message), no truncated
 * varint.  Calls cb for each field (may be NULL). */
const char *fz_pb_walk(const unsigned char *s, size_t n,
                       void (*cb)(void *ctx, const fz_pb_field_t *f),
                       void *ctx);
/* Packed repeated varints: *count of them, NULL or a message. */
const char *fz_pb_packed(const unsigned char *s, size_t n, uint64_t *out,
                         size_t cap, size_t *count);

#endif
