/* pp_sink.c: output through a sink and the escapers (see pp_sink.h).
 *
 * Escaping runs over the input in runs: a run of bytes that need no
 * escaping is written with one call, so the common case costs one pass
 * and few writes.  Pure functions of their input; no allocation.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "pp_sink.h"

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

size_t pp_utf8_seq(const unsigned char *s, size_t n)
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

/* What an escaper replaces the character at p (a valid UTF-8 sequence of
 * len bytes, or len 0 for an invalid byte) with; NULL keeps it. */
typedef const char *escape_fn(const unsigned char *p, size_t len,
                              char scratch[8]);

/* Copy s to o, in runs, through an escaper.  Invalid bytes are passed to
 * the escaper one at a time, which must replace them. */
static void put_escaped(pp_sink_t *o, const char *s, size_t n, escape_fn *fn)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;
    char scratch[8];

    while (i < n) {
        size_t len = pp_utf8_seq(p + i, n - i);
        const char *rep = fn(p + i, len, scratch);

        if (!rep && len == 0) {
            rep = REPLACEMENT; /* an escaper that forgot invalid bytes */
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

static const char *html_rep(const unsigned char *p, size_t len, char *scratch)
{
    (void)scratch;
    if (len == 0) {
        return REPLACEMENT;
    }
    switch (p[0]) {
    case '<':
        return "&lt;";
    case '>':
        return "&gt;";
    case '&':
        return "&amp;";
    case '"':
        return "&quot;";
    case '\'':
        return "&#39;";
    default:
        /* C0 controls but tab and newline, DEL and the C1 controls
         * (U+0080..U+009F) are parse errors in HTML */
        if ((p[0] < 0x20 && p[0] != '\t' && p[0] != '\n') || p[0] == 0x7f ||
            (len == 2 && p[0] == 0xc2 && p[1] < 0xa0)) {
            return REPLACEMENT;
        }
        return NULL;
    }
}

static const char *json_rep(const unsigned char *p, size_t len, char *scratch)
{
    if (len == 0) {
        return "\\ufffd";
    }
    if (p[0] == '"') {
        return "\\\"";
    }
    if (p[0] == '\\') {
        return "\\\\";
    }
    /* controls, and <>& so the JSON is safe inside a <script> block */
    if (p[0] < 0x20 || p[0] == 0x7f || p[0] == '<' || p[0] == '>' ||
        p[0] == '&') {
        snprintf(scratch, 8, "\\u%04x", p[0]);
        return scratch;
    }
    return NULL;
}

static const char *folded_rep(const unsigned char *p, size_t len, char *scratch)
{
    (void)scratch;
    if (len == 0) {
        return REPLACEMENT;
    }
    if (p[0] == ';') {
        return ":";
    }
    return p[0] < 0x20 || p[0] == 0x7f ? " " : NULL;
}

static const char *prom_rep(const unsigned char *p, size_t len, char *scratch)
{
    (void)scratch;
    if (len == 0) {
        return REPLACEMENT;
    }
    switch (p[0]) {
    case '\\':
        return "\\\\";
    case '"':
        return "\\\"";
    case '\n':
        return "\\n";
    default:
        return p[0] < 0x20 || p[0] == 0x7f ? " " : NULL;
    }
}

void pp_put_html(pp_sink_t *o, const char *s, size_t n)
{
    put_escaped(o, s, n, html_rep);
}

void pp_put_json_str(pp_sink_t *o, const char *s, size_t n)
{
    pp_puts(o, "\"");
    put_escaped(o, s, n, json_rep);
    pp_puts(o, "\"");
}

void pp_put_folded(pp_sink_t *o, const char *s, size_t n)
{
    put_escaped(o, s, n, folded_rep);
}

void pp_put_prom_label(pp_sink_t *o, const char *s, size_t n)
{
    put_escaped(o, s, n, prom_rep);
}

void pp_puts_html(pp_sink_t *o, const char *s)
{
    pp_put_html(o, s, strlen(s));
}

void pp_puts_json(pp_sink_t *o, const char *s)
{
    pp_put_json_str(o, s, strlen(s));
}

void pp_put_url(pp_sink_t *o, const char *s, size_t n, unsigned flags)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i, run = 0;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
            c == '~' || c == '@' || (c == '/' && (flags & PP_URL_KEEP_SLASH))) {
            run++;
        }
        else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            if (run) {
                o->write(o->ctx, s + i - run, run);
                run = 0;
            }
            o->write(o->ctx, e, 3);
        }
    }
    if (run) {
        o->write(o->ctx, s + n - run, run);
    }
}

void pp_put_url_segment(pp_sink_t *o, const char *s, size_t n)
{
    pp_put_url(o, s, n, 0);
}
