/* fuzz_escape.c: libFuzzer target for the escapers every page and export
 * relies on: pp_put_html, pp_put_json_str, pp_put_folded,
 * pp_put_prom_label, pp_put_url_segment, and the display shorteners
 * pp_view_short_name / pp_view_short_file.
 *
 * Round trips, not just "does not crash": the output is decoded by an
 * independent decoder (HTML entities, a strict JSON parser, Prometheus
 * label unescaping, percent-decoding) and must give back the input with
 * exactly the documented substitutions (invalid UTF-8 -> U+FFFD per byte,
 * control characters as each format says), and must contain none of the
 * characters that would end its context.  Input: raw bytes (NULs too).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "pp_render.h"
#include "pp_views.h"

static fz_buf_t out, want, got;

static void check_html(const char *s, size_t n)
{
    pp_sink_t o = fz_sink(&out);
    size_t i;

    fz_buf_reset(&out);
    pp_put_html(&o, s, n);
    FZ_CHECK("pp_put_html output as HTML text",
             fz_html_check(out.p ? out.p : "", out.n), out.p, out.n);
    for (i = 0; i < out.n; i++) {
        if (out.p[i] == '"' || out.p[i] == '\'' || out.p[i] == '<' ||
            out.p[i] == '>') {
            fz_fail_at = i;
            fz_fail("pp_put_html",
                    "raw quote or angle bracket (would "
                    "break out of an attribute or start a tag)",
                    out.p, out.n, i);
        }
    }
    /* decode the five entities it may write */
    fz_buf_reset(&got);
    for (i = 0; i < out.n;) {
        static const struct {
            const char *ent, *ch;
        } ents[] = {{"&lt;", "<"},
                    {"&gt;", ">"},
                    {"&amp;", "&"},
                    {"&quot;", "\""},
                    {"&#39;", "'"}};
        size_t k, hit = 0;
        if (out.p[i] == '&') {
            for (k = 0; k < sizeof(ents) / sizeof(ents[0]); k++) {
                size_t l = strlen(ents[k].ent);
                if (out.n - i >= l && memcmp(out.p + i, ents[k].ent, l) == 0) {
                    fz_buf_put(&got, ents[k].ch, 1);
                    i += l;
                    hit = 1;
                    break;
                }
            }
            if (!hit) {
                fz_fail("pp_put_html", "unexpected entity", out.p, out.n, i);
            }
            continue;
        }
        fz_buf_put(&got, out.p + i, 1);
        i++;
    }
    /* documented: invalid UTF-8, C0 controls but tab and newline, DEL and
     * the C1 controls (U+0080..U+009F, C2 80..C2 9F in the sanitised,
     * valid UTF-8) become U+FFFD */
    fz_buf_reset(&want);
    fz_sanitize_html(&want, s, n);
    if (got.n != want.n ||
        memcmp(got.p ? got.p : "", want.p ? want.p : "", got.n)) {
        fz_fail("pp_put_html",
                "decoded output differs from the input with "
                "the documented substitutions",
                out.p, out.n, 0);
    }
}

static void check_json(const char *s, size_t n)
{
    pp_sink_t o = fz_sink(&out);
    const char *err = NULL;
    fz_json_t *j;
    size_t i;

    fz_buf_reset(&out);
    pp_put_json_str(&o, s, n);
    j = fz_json_parse(fz_buf_str(&out), out.n, &err);
    if (!j) {
        fz_fail("pp_put_json_str", err, out.p, out.n, fz_fail_at);
    }
    if (j->type != FZ_J_STR) {
        fz_fail("pp_put_json_str", "not a JSON string", out.p, out.n, 0);
    }
    fz_buf_reset(&want);
    fz_sanitize(&want, s, n, NULL, NULL);
    if (j->len != want.n || memcmp(j->str, fz_buf_str(&want), want.n)) {
        fz_fail("pp_put_json_str",
                "decoded string differs from the input "
                "with invalid UTF-8 as U+FFFD",
                out.p, out.n, 0);
    }
    fz_json_free(j);
    /* safe inside <script>: no raw markup characters */
    for (i = 0; i < out.n; i++) {
        if (out.p[i] == '<' || out.p[i] == '>' || out.p[i] == '&') {
            fz_fail("pp_put_json_str",
                    "raw '<', '>' or '&' (unsafe in a "
                    "<script> block)",
                    out.p, out.n, i);
        }
    }
}

static void check_folded(const char *s, size_t n)
{
    pp_sink_t o = fz_sink(&out);
    size_t i;

    fz_buf_reset(&out);
    pp_put_folded(&o, s, n);
    if (!fz_utf8_valid(fz_buf_str(&out), out.n)) {
        fz_fail("pp_put_folded", "not valid UTF-8", out.p, out.n, fz_fail_at);
    }
    fz_buf_reset(&want);
    fz_sanitize(&want, s, n, " ", NULL);
    for (i = 0; i < want.n; i++) {
        if (want.p[i] == ';') {
            want.p[i] = ':';
        }
    }
    for (i = 0; i < out.n; i++) {
        unsigned char c = (unsigned char)out.p[i];
        if (c == ';' || c == '\n' || c < 0x20 || c == 0x7f) {
            fz_fail("pp_put_folded",
                    "frame separator, newline or control "
                    "character left in a frame",
                    out.p, out.n, i);
        }
    }
    if (out.n != want.n || memcmp(fz_buf_str(&out), fz_buf_str(&want), out.n)) {
        fz_fail("pp_put_folded",
                "output differs from the input with the "
                "documented substitutions",
                out.p, out.n, 0);
    }
}

static void prom_value(void *ctx, const char *v, size_t len)
{
    fz_buf_t *b = ctx;
    fz_buf_put(b, v, len);
}

static void check_prom(const char *s, size_t n)
{
    pp_sink_t o = fz_sink(&out);
    const char *err;

    fz_buf_reset(&out);
    pp_puts(&o, "pyprof_x{location=\"");
    pp_put_prom_label(&o, s, n);
    pp_puts(&o, "\",b=\"c\"} 1\n");
    fz_buf_reset(&got);
    err = fz_prom_check(fz_buf_str(&out), out.n, "location", prom_value, &got);
    if (err) {
        fz_fail("pp_put_prom_label", err, out.p, out.n, fz_fail_at);
    }
    /* documented: backslash, quote and newline escaped; other controls
     * become spaces; invalid UTF-8 U+FFFD */
    fz_buf_reset(&want);
    fz_sanitize(&want, s, n, " ", "\n");
    if (got.n != want.n || memcmp(fz_buf_str(&got), fz_buf_str(&want), got.n)) {
        fz_fail("pp_put_prom_label",
                "unescaped label value differs from the "
                "input with the documented substitutions",
                out.p, out.n, 0);
    }
}

static int unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
           c == '~';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static void check_url(const char *s, size_t n)
{
    pp_sink_t o = fz_sink(&out);
    size_t i;

    fz_buf_reset(&out);
    pp_put_url_segment(&o, s, n);
    fz_buf_reset(&got);
    for (i = 0; i < out.n;) {
        unsigned char c = (unsigned char)out.p[i];
        if (c == '%') {
            if (i + 2 >= out.n || hexval(out.p[i + 1]) < 0 ||
                hexval(out.p[i + 2]) < 0) {
                fz_fail("pp_put_url_segment",
                        "'%' not followed by two "
                        "upper-case hex digits",
                        out.p, out.n, i);
            }
            {
                char d =
                    (char)(hexval(out.p[i + 1]) * 16 + hexval(out.p[i + 2]));
                fz_buf_put(&got, &d, 1);
            }
            i += 3;
            continue;
        }
        /* '@' is a pchar (RFC 3986) and the pages leave it as is */
        if (!unreserved(c) && c != '@') {
            fz_fail("pp_put_url_segment",
                    "character that is neither "
                    "unreserved nor percent-encoded",
                    out.p, out.n, i);
        }
        fz_buf_put(&got, out.p + i, 1);
        i++;
    }
    if (got.n != n || (n && memcmp(got.p, s, n))) {
        fz_fail("pp_put_url_segment",
                "percent-decoding does not give the "
                "input back",
                out.p, out.n, 0);
    }
}

static void check_short(const char *s)
{
    char nbuf[90 + 16], fbuf[1024 + 16];
    const char *r;
    size_t n = strlen(s);

    r = pp_view_short_name(s, nbuf, sizeof(nbuf));
    FZ_ASSERT("pp_view_short_name result fits its buffer or is the input",
              r == s || strlen(r) < sizeof(nbuf));
    if (fz_utf8_valid(s, n)) {
        FZ_ASSERT("pp_view_short_name cut inside a UTF-8 sequence",
                  fz_utf8_valid(r, strlen(r)));
    }
    if (r != s) {
        /* r must be s[0..a) "\u2026" s[b..n): both ends kept */
        size_t rl = strlen(r), a;
        int found = 0;
        FZ_ASSERT("pp_view_short_name shortened a short name", n > 90);
        for (a = 0; a + 3 <= rl && a <= 45 && !found; a++) {
            size_t tail = rl - a - 3;
            found = memcmp(r, s, a) == 0 &&
                    memcmp(r + a, "\xe2\x80\xa6", 3) == 0 && tail <= n &&
                    memcmp(r + a + 3, s + n - tail, tail) == 0 &&
                    ((a >= 40 && tail >= 40) || !fz_utf8_valid(s, n));
        }
        FZ_ASSERT("pp_view_short_name keeps both ends around an ellipsis",
                  found);
    }
    if (n < 1024) {
        r = pp_view_short_file(s, (n & 1) ? "/srv/app" : "", fbuf,
                               sizeof(fbuf));
        FZ_ASSERT("pp_view_short_file result fits its buffer",
                  strlen(r) < sizeof(fbuf) || r == s || (r >= s && r <= s + n));
        if (fz_utf8_valid(s, n)) {
            FZ_ASSERT("pp_view_short_file cut inside a UTF-8 sequence",
                      fz_utf8_valid(r, strlen(r)));
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    char *z;

    check_html(s, size);
    check_json(s, size);
    check_folded(s, size);
    check_prom(s, size);
    check_url(s, size);
    z = malloc(size + 1);
    if (!z) {
        abort();
    }
    memcpy(z, data, size);
    z[size] = '\0';
    check_short(z);
    free(z);
    return 0;
}
