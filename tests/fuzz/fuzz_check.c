/* fuzz_check.c: output oracles for the fuzz targets (see fuzz_check.h).
 *
 * Written from the formats' specifications, not from mod_pyprof's code, so
 * that a bug shared by an escaper and its check is unlikely.  Bounded
 * everywhere: the JSON parser refuses nesting deeper than 64 and the
 * protobuf walker only descends where the caller asks.
 */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fuzz_check.h"
#include "pp_grow.h"

size_t fz_fail_at;

/* ---- buffer ---- */

void fz_buf_put(fz_buf_t *b, const void *s, size_t n)
{
    char *p = pp_grow(b->p, &b->cap, b->n + n + 1, 1, 1024, SIZE_MAX, 0);

    if (!p) {
        abort();
    }
    b->p = p;
    if (n) {
        memcpy(b->p + b->n, s, n);
    }
    b->n += n;
    b->p[b->n] = '\0';
}

void fz_buf_reset(fz_buf_t *b)
{
    b->n = 0;
    if (b->p) {
        b->p[0] = '\0';
    }
}

void fz_buf_free(fz_buf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

const char *fz_buf_str(fz_buf_t *b)
{
    if (!b->p) {
        fz_buf_put(b, "", 0);
    }
    return b->p;
}

static void sink_write(void *ctx, const char *s, size_t n)
{
    fz_buf_put(ctx, s, n);
}

pp_sink_t fz_sink(fz_buf_t *b)
{
    pp_sink_t o = {sink_write, b};
    return o;
}

/* ---- failure ---- */

static void dump(const char *s, size_t n, size_t from, size_t to)
{
    size_t i;
    for (i = from; i < to && i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            fputc(c, stderr);
        }
        else if (c == '\n') {
            fputs("\\n\n", stderr);
        }
        else {
            fprintf(stderr, "\\x%02x", c);
        }
    }
}

void fz_fail(const char *what, const char *why, const char *out, size_t n,
             size_t at)
{
    fprintf(stderr, "\n==FUZZ CHECK FAILED== %s: %s\n", what, why);
    if (out) {
        size_t from = at > 600 ? at - 600 : 0;
        fprintf(stderr,
                "output: %zu bytes, failure at offset %zu; around "
                "it:\n-----\n",
                n, at);
        dump(out, n, from, at);
        fputs("[HERE>", stderr);
        dump(out, n, at, at + 400);
        fputs("\n-----\n", stderr);
    }
    abort();
}

/* ---- input ---- */

uint8_t fz_u8(fz_in_t *in)
{
    uint8_t v;
    if (!in->n) {
        return 0;
    }
    v = *in->p++;
    in->n--;
    return v;
}

uint32_t fz_u32(fz_in_t *in)
{
    uint32_t v = 0;
    int i;
    for (i = 0; i < 4; i++) {
        v = (v << 8) | fz_u8(in);
    }
    return v;
}

char *fz_str(fz_in_t *in, size_t max, size_t *len)
{
    size_t n = fz_u8(in);
    char *s;

    if (n & 0x80) {
        n = ((n & 0x7f) << 8) | fz_u8(in);
    }
    if (n > max) {
        n = max;
    }
    if (n > in->n) {
        n = in->n;
    }
    s = malloc(n + 1);
    if (!s) {
        abort();
    }
    if (n) {
        memcpy(s, in->p, n);
    }
    s[n] = '\0';
    in->p += n;
    in->n -= n;
    *len = n;
    return s;
}

/* ---- UTF-8 ---- */

/* Decode one scalar value at s (RFC 3629: no overlongs, no surrogates, at
 * most U+10FFFF); its length, or 0 if s does not start one. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t len, i;
    uint32_t v, min;

    if (n == 0) {
        return 0;
    }
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if ((s[0] & 0xe0) == 0xc0) {
        len = 2, v = s[0] & 0x1f, min = 0x80;
    }
    else if ((s[0] & 0xf0) == 0xe0) {
        len = 3, v = s[0] & 0x0f, min = 0x800;
    }
    else if ((s[0] & 0xf8) == 0xf0) {
        len = 4, v = s[0] & 0x07, min = 0x10000;
    }
    else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
        return 0;
    }
    *cp = v;
    return len;
}

int fz_utf8_valid(const char *s, size_t n)
{
    size_t i, k;
    uint32_t cp;

    for (i = 0; i < n; i += k) {
        if (!(k = utf8_decode((const unsigned char *)s + i, n - i, &cp))) {
            fz_fail_at = i;
            return 0;
        }
    }
    return 1;
}

void fz_sanitize(fz_buf_t *b, const char *s, size_t n, const char *ctl_to,
                 const char *keep)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    uint32_t cp;

    while (i < n) {
        size_t k = utf8_decode(p + i, n - i, &cp);
        if (!k) {
            fz_buf_put(b, "\xef\xbf\xbd", 3);
            i++;
            continue;
        }
        if (ctl_to && (cp < 0x20 || cp == 0x7f) &&
            !(keep && cp && strchr(keep, (int)cp))) {
            fz_buf_put(b, ctl_to, strlen(ctl_to));
        }
        else {
            fz_buf_put(b, s + i, k);
        }
        i += k;
    }
}

/* What pp_put_html promises before escaping markup: fz_sanitize with C0
 * controls but tab and newline, DEL and the C1 controls (U+0080..U+009F:
 * C2 80..C2 9F once the text is valid UTF-8) as U+FFFD. */
void fz_sanitize_html(fz_buf_t *b, const char *s, size_t n)
{
    fz_buf_t t = {0};
    size_t i;

    fz_sanitize(&t, s, n, "\xef\xbf\xbd", "\t\n");
    for (i = 0; i < t.n; i++) {
        if ((unsigned char)t.p[i] == 0xc2 && i + 1 < t.n &&
            (unsigned char)t.p[i + 1] < 0xa0) {
            fz_buf_put(b, "\xef\xbf\xbd", 3);
            i++;
        }
        else {
            fz_buf_put(b, t.p + i, 1);
        }
    }
    fz_buf_free(&t);
}

/* ---- JSON ---- */

typedef struct jp {
    const unsigned char *s;
    size_t n, i;
    const char *err;
    int depth;
} jp_t;

static void jws(jp_t *p)
{
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' ||
                           p->s[p->i] == '\n' || p->s[p->i] == '\r')) {
        p->i++;
    }
}

static fz_json_t *jnew(int type)
{
    fz_json_t *j = calloc(1, sizeof(*j));
    if (!j) {
        abort();
    }
    j->type = type;
    return j;
}

static int hex4(const unsigned char *s, uint32_t *v)
{
    int i;
    *v = 0;
    for (i = 0; i < 4; i++) {
        unsigned c = s[i];
        *v <<= 4;
        if (c >= '0' && c <= '9') {
            *v |= c - '0';
        }
        else if (c >= 'a' && c <= 'f') {
            *v |= c - 'a' + 10;
        }
        else if (c >= 'A' && c <= 'F') {
            *v |= c - 'A' + 10;
        }
        else {
            return 0;
        }
    }
    return 1;
}

static void put_utf8(fz_buf_t *b, uint32_t cp)
{
    char u[4];
    if (cp < 0x80) {
        u[0] = (char)cp;
        fz_buf_put(b, u, 1);
    }
    else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        fz_buf_put(b, u, 2);
    }
    else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        fz_buf_put(b, u, 3);
    }
    else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        fz_buf_put(b, u, 4);
    }
}

static char *jstring(jp_t *p, size_t *len)
{
    fz_buf_t b = {0};

    p->i++; /* opening quote */
    for (;;) {
        uint32_t cp;
        size_t k;

        if (p->i >= p->n) {
            p->err = "unterminated string";
            goto bad;
        }
        if (p->s[p->i] == '"') {
            p->i++;
            break;
        }
        if (p->s[p->i] < 0x20) {
            p->err = "raw control character in a string";
            goto bad;
        }
        if (p->s[p->i] == '\\') {
            unsigned char e;
            if (p->i + 1 >= p->n) {
                p->err = "truncated escape";
                goto bad;
            }
            e = p->s[p->i + 1];
            p->i += 2;
            if (e != 'u') {
                /* the one-character escapes, and what each stands for */
                static const char from[] = "\"\\/bfnrt";
                static const char to[] = "\"\\/\b\f\n\r\t";
                const char *at = e ? strchr(from, e) : NULL;

                if (!at) {
                    p->err = "unknown escape";
                    goto bad;
                }
                fz_buf_put(&b, to + (at - from), 1);
                continue;
            }
            if (p->i + 4 > p->n || !hex4(p->s + p->i, &cp)) {
                p->err = "bad \\u escape";
                goto bad;
            }
            p->i += 4;
            if (cp >= 0xdc00 && cp <= 0xdfff) {
                p->err = "lone low surrogate escape";
                goto bad;
            }
            if (cp >= 0xd800 && cp <= 0xdbff) {
                uint32_t lo;
                if (p->i + 6 > p->n || p->s[p->i] != '\\' ||
                    p->s[p->i + 1] != 'u' || !hex4(p->s + p->i + 2, &lo) ||
                    lo < 0xdc00 || lo > 0xdfff) {
                    p->err = "lone high surrogate escape";
                    goto bad;
                }
                p->i += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            put_utf8(&b, cp);
            continue;
        }
        k = utf8_decode(p->s + p->i, p->n - p->i, &cp);
        if (!k) {
            p->err = "invalid UTF-8 in a string";
            goto bad;
        }
        fz_buf_put(&b, p->s + p->i, k);
        p->i += k;
    }
    *len = b.n;
    return (char *)fz_buf_str(&b);
bad:
    fz_buf_free(&b);
    return NULL;
}

static int jdigits(jp_t *p)
{
    size_t start = p->i;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
        p->i++;
    }
    return p->i > start;
}

static fz_json_t *jvalue(jp_t *p);

static void jpush(fz_json_t *j, fz_json_t *v, char *key)
{
    if ((j->nitems & (j->nitems - 1)) == 0) { /* 0, 1, 2, 4, ...: grow */
        size_t cap = j->nitems ? j->nitems * 2 : 1;
        j->items = realloc(j->items, cap * sizeof(*j->items));
        if (j->type == FZ_J_OBJ) {
            j->keys = realloc(j->keys, cap * sizeof(*j->keys));
        }
        if (!j->items || (j->type == FZ_J_OBJ && !j->keys)) {
            abort();
        }
    }
    j->items[j->nitems] = v;
    if (j->type == FZ_J_OBJ) {
        j->keys[j->nitems] = key;
    }
    j->nitems++;
}

static fz_json_t *jvalue(jp_t *p)
{
    fz_json_t *j;
    size_t start;

    jws(p);
    if (p->i >= p->n) {
        p->err = "unexpected end";
        return NULL;
    }
    switch (p->s[p->i]) {
    case '{':
    case '[': {
        int obj = p->s[p->i] == '{';
        if (++p->depth > 64) {
            p->err = "nested deeper than 64";
            return NULL;
        }
        j = jnew(obj ? FZ_J_OBJ : FZ_J_ARR);
        p->i++;
        jws(p);
        if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) {
            p->i++;
            p->depth--;
            return j;
        }
        for (;;) {
            char *key = NULL;
            size_t kl;
            fz_json_t *v;
            jws(p);
            if (obj) {
                if (p->i >= p->n || p->s[p->i] != '"') {
                    p->err = "object key is not a string";
                    goto fail;
                }
                if (!(key = jstring(p, &kl))) {
                    goto fail;
                }
                jws(p);
                if (p->i >= p->n || p->s[p->i] != ':') {
                    free(key);
                    p->err = "missing ':'";
                    goto fail;
                }
                p->i++;
            }
            if (!(v = jvalue(p))) {
                free(key);
                goto fail;
            }
            jpush(j, v, key);
            jws(p);
            if (p->i < p->n && p->s[p->i] == ',') {
                p->i++;
                continue;
            }
            if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) {
                p->i++;
                break;
            }
            p->err = obj ? "expected ',' or '}'" : "expected ',' or ']'";
            goto fail;
        }
        p->depth--;
        return j;
fail:
        fz_json_free(j);
        return NULL;
    }
    case '"':
        j = jnew(FZ_J_STR);
        if (!(j->str = jstring(p, &j->len))) {
            free(j);
            return NULL;
        }
        return j;
    case 't':
    case 'f':
    case 'n': {
        static const char *const lit[] = {"true", "false", "null"};
        int k = p->s[p->i] == 't' ? 0 : (p->s[p->i] == 'f' ? 1 : 2);
        size_t l = strlen(lit[k]);
        if (p->n - p->i < l || memcmp(p->s + p->i, lit[k], l) != 0) {
            p->err = "bad literal";
            return NULL;
        }
        p->i += l;
        j = jnew(k == 2 ? FZ_J_NULL : FZ_J_BOOL);
        j->b = k == 0;
        return j;
    }
    default:
        start = p->i;
        if (p->s[p->i] == '-') {
            p->i++;
        }
        if (p->i < p->n && p->s[p->i] == '0') {
            p->i++;
        }
        else if (!jdigits(p)) {
            p->err = "unexpected character";
            return NULL;
        }
        if (p->i < p->n && p->s[p->i] == '.') {
            p->i++;
            if (!jdigits(p)) {
                p->err = "no digits after '.'";
                return NULL;
            }
        }
        if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
            p->i++;
            if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) {
                p->i++;
            }
            if (!jdigits(p)) {
                p->err = "no digits in the exponent";
                return NULL;
            }
        }
        {
            char tmp[64];
            size_t l = p->i - start;
            j = jnew(FZ_J_NUM);
            if (l >= sizeof(tmp)) {
                l = sizeof(tmp) - 1;
            }
            memcpy(tmp, p->s + start, l);
            tmp[l] = '\0';
            j->num = strtod(tmp, NULL);
        }
        return j;
    }
}

fz_json_t *fz_json_parse(const char *s, size_t n, const char **err)
{
    jp_t p = {(const unsigned char *)s, n, 0, NULL, 0};
    fz_json_t *j = jvalue(&p);

    if (j) {
        jws(&p);
        if (p.i != p.n) {
            fz_json_free(j);
            j = NULL;
            p.err = "trailing characters after the JSON text";
        }
    }
    if (!j) {
        fz_fail_at = p.i;
        *err = p.err ? p.err : "invalid JSON";
    }
    return j;
}

void fz_json_free(fz_json_t *j)
{
    size_t i;
    if (!j) {
        return;
    }
    for (i = 0; i < j->nitems; i++) {
        fz_json_free(j->items[i]);
        if (j->keys) {
            free(j->keys[i]);
        }
    }
    free(j->items);
    free(j->keys);
    free(j->str);
    free(j);
}

const fz_json_t *fz_json_get(const fz_json_t *obj, const char *key)
{
    size_t i;
    if (!obj || obj->type != FZ_J_OBJ) {
        return NULL;
    }
    for (i = 0; i < obj->nitems; i++) {
        if (strcmp(obj->keys[i], key) == 0) {
            return obj->items[i];
        }
    }
    return NULL;
}

const fz_json_t *fz_json_at(const fz_json_t *arr, size_t i)
{
    if (!arr || arr->type != FZ_J_ARR || i >= arr->nitems) {
        return NULL;
    }
    return arr->items[i];
}

/* ---- HTML ---- */

/* HTML and SVG element names; the pages use a subset.  Anything else after
 * a raw '<' is data that escaped its escaper. */
static const char *const TAGS[] = {
    "a",       "abbr",   "b",        "body",     "br",       "button",
    "caption", "code",   "col",      "colgroup", "dd",       "details",
    "div",     "dl",     "dt",       "em",       "footer",   "form",
    "g",       "h1",     "h2",       "h3",       "h4",       "head",
    "header",  "hr",     "html",     "i",        "input",    "kbd",
    "label",   "li",     "line",     "main",     "meta",     "nav",
    "ol",      "option", "p",        "path",     "polyline", "pre",
    "rect",    "script", "section",  "select",   "small",    "span",
    "strong",  "style",  "summary",  "svg",      "table",    "tbody",
    "td",      "text",   "textarea", "tfoot",    "th",       "thead",
    "time",    "title",  "tr",       "tspan",    "ul",       NULL};

static int known_tag(const char *s, size_t n)
{
    size_t i;
    for (i = 0; TAGS[i]; i++) {
        if (strlen(TAGS[i]) == n && memcmp(TAGS[i], s, n) == 0) {
            return 1;
        }
    }
    return 0;
}

static int is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_alnum(unsigned char c)
{
    return is_alpha(c) || (c >= '0' && c <= '9');
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

/* An entity at s[i] == '&'; its length or 0. */
static size_t entity(const unsigned char *s, size_t n, size_t i)
{
    size_t j = i + 1, start;

    if (j < n && s[j] == '#') {
        j++;
        if (j < n && (s[j] == 'x' || s[j] == 'X')) {
            j++;
            start = j;
            while (j < n && j - start < 6 &&
                   (is_alnum(s[j]) && strchr("0123456789abcdefABCDEF", s[j]))) {
                j++;
            }
        }
        else {
            start = j;
            while (j < n && j - start < 7 && s[j] >= '0' && s[j] <= '9') {
                j++;
            }
        }
        if (j == start) {
            return 0;
        }
    }
    else {
        start = j;
        while (j < n && j - start < 32 && is_alnum(s[j])) {
            j++;
        }
        if (j == start || !is_alpha(s[start])) {
            return 0;
        }
    }
    return j < n && s[j] == ';' ? j + 1 - i : 0;
}

const char *fz_html_check(const char *text, size_t n)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;

    if (!fz_utf8_valid(text, n)) {
        return "HTML is not valid UTF-8";
    }
    while (i < n) {
        unsigned char c = s[i];
        if (c == '&') {
            size_t k = entity(s, n, i);
            if (!k) {
                fz_fail_at = i;
                return "'&' in text does not start an entity";
            }
            i += k;
            continue;
        }
        if (c == '>') {
            fz_fail_at = i;
            return "raw '>' in text";
        }
        if (c != '<') {
            i++;
            continue;
        }
        fz_fail_at = i;
        /* markup */
        if (n - i >= 4 && memcmp(s + i, "<!--", 4) == 0) {
            const char *end = memmem(s + i + 4, n - i - 4, "-->", 3);
            if (!end) {
                return "unterminated comment";
            }
            i = (size_t)((const unsigned char *)end - s) + 3;
            continue;
        }
        if (n - i >= 15 && memcmp(s + i, "<!DOCTYPE html>", 15) == 0) {
            i += 15;
            continue;
        }
        {
            int closing = 0;
            size_t name, nl;
            i++;
            if (i < n && s[i] == '/') {
                closing = 1;
                i++;
            }
            name = i;
            while (i < n && is_alnum(s[i])) {
                i++;
            }
            nl = i - name;
            if (!nl || !known_tag(text + name, nl)) {
                return "'<' not followed by a known tag name: raw '<' from "
                       "data?";
            }
            if (closing) {
                if (i >= n || s[i] != '>') {
                    return "malformed closing tag";
                }
                i++;
                continue;
            }
            /* attributes */
            for (;;) {
                size_t an;
                while (i < n && is_space(s[i])) {
                    i++;
                }
                if (i >= n) {
                    return "unterminated tag";
                }
                if (s[i] == '>') {
                    i++;
                    break;
                }
                if (s[i] == '/' && i + 1 < n && s[i + 1] == '>') {
                    i += 2;
                    break;
                }
                an = i;
                while (i < n && (is_alnum(s[i]) || s[i] == '-' || s[i] == '_' ||
                                 s[i] == ':' || s[i] == '.')) {
                    i++;
                }
                if (i == an) {
                    fz_fail_at = i;
                    return "bad character in a tag (broken attribute?)";
                }
                if (i < n && s[i] == '=') {
                    i++;
                    if (i < n && (s[i] == '"' || s[i] == '\'')) {
                        unsigned char q = s[i++];
                        while (i < n && s[i] != q) {
                            if (s[i] == '<' || s[i] == '>') {
                                fz_fail_at = i;
                                return "raw '<' or '>' in an attribute value";
                            }
                            if (s[i] == '&') {
                                size_t k = entity(s, n, i);
                                if (!k) {
                                    fz_fail_at = i;
                                    return "'&' in an attribute value does "
                                           "not start an entity";
                                }
                                i += k;
                                continue;
                            }
                            if (q == '"' && s[i] == '\'') {
                                /* allowed inside "..." by HTML, but the
                                 * escaper must have turned data quotes
                                 * into &#39;; templates do not use them */
                            }
                            i++;
                        }
                        if (i >= n) {
                            return "unterminated attribute value";
                        }
                        i++;
                    }
                    else {
                        size_t vs = i;
                        while (i < n && !is_space(s[i]) && s[i] != '>' &&
                               !(s[i] == '/' && i + 1 < n && s[i + 1] == '>')) {
                            if (strchr("\"'=<`", s[i])) {
                                fz_fail_at = i;
                                return "bad character in an unquoted "
                                       "attribute value";
                            }
                            i++;
                        }
                        if (i == vs) {
                            return "empty unquoted attribute value";
                        }
                    }
                }
            }
            /* raw text elements: their body runs to the close tag */
            if ((nl == 6 && memcmp(text + name, "script", 6) == 0) ||
                (nl == 5 && memcmp(text + name, "style", 5) == 0)) {
                const char *close = nl == 6 ? "</script>" : "</style>";
                const char *end = memmem(s + i, n - i, close, strlen(close));
                if (!end) {
                    return "unterminated script or style";
                }
                i = (size_t)((const unsigned char *)end - s) + strlen(close);
            }
        }
    }
    return NULL;
}

/* ---- folded ---- */

const char *fz_folded_check(const char *text, size_t n, size_t *lines,
                            uint64_t *sum)
{
    size_t i = 0;

    *lines = 0;
    *sum = 0;
    if (!fz_utf8_valid(text, n)) {
        return "folded output is not valid UTF-8";
    }
    while (i < n) {
        const char *nl = memchr(text + i, '\n', n - i);
        size_t end, sp, k;
        uint64_t count = 0;

        fz_fail_at = i;
        if (!nl) {
            return "last folded line has no newline";
        }
        end = (size_t)(nl - text);
        for (k = i; k < end; k++) {
            unsigned char c = (unsigned char)text[k];
            if (c < 0x20 || c == 0x7f) {
                fz_fail_at = k;
                return "control character inside a folded line";
            }
        }
        /* the count: digits after the last space */
        sp = end;
        while (sp > i && text[sp - 1] != ' ') {
            sp--;
        }
        if (sp == i || sp == end) {
            return "folded line without \"STACK COUNT\"";
        }
        /* an empty stack text (" 3") is allowed: a frame may have an
         * empty name; the targets compare the text itself */
        for (k = sp; k < end; k++) {
            if (text[k] < '0' || text[k] > '9') {
                fz_fail_at = k;
                return "folded count is not a decimal number";
            }
            count = count * 10 + (uint64_t)(text[k] - '0');
        }
        if (end - sp > 19) {
            return "folded count too long";
        }
        *sum += count;
        (*lines)++;
        i = end + 1;
    }
    return NULL;
}

/* ---- Prometheus ---- */

static int metric_name_char(unsigned char c, int first)
{
    return is_alpha(c) || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

const char *fz_prom_check(const char *text, size_t n, const char *label,
                          void (*want_label)(void *ctx, const char *v,
                                             size_t len),
                          void *ctx)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    fz_buf_t val = {0};

    if (!fz_utf8_valid(text, n)) {
        return "exposition is not valid UTF-8";
    }
    while (i < n) {
        const char *nl = memchr(text + i, '\n', n - i);
        size_t end, k;

        fz_fail_at = i;
        if (!nl) {
            fz_buf_free(&val);
            return "last line has no newline";
        }
        end = (size_t)(nl - text);
        if (s[i] == '#') {
            if (!(end - i >= 7 && (memcmp(s + i, "# HELP ", 7) == 0 ||
                                   memcmp(s + i, "# TYPE ", 7) == 0))) {
                fz_buf_free(&val);
                return "comment line that is not # HELP or # TYPE";
            }
            i = end + 1;
            continue;
        }
        k = i;
        if (k >= end || !metric_name_char(s[k], 1)) {
            fz_buf_free(&val);
            return "sample line does not start with a metric name";
        }
        while (k < end && metric_name_char(s[k], 0)) {
            k++;
        }
        if (k < end && s[k] == '{') {
            k++;
            for (;;) {
                size_t ln = k, lnl;
                if (k < end && s[k] == '}') {
                    k++;
                    break;
                }
                while (k < end && metric_name_char(s[k], k == ln)) {
                    k++;
                }
                lnl = k - ln;
                if (!lnl || k + 1 >= end || s[k] != '=' || s[k + 1] != '"') {
                    fz_fail_at = k;
                    fz_buf_free(&val);
                    return "bad label name or missing =\"";
                }
                k += 2;
                fz_buf_reset(&val);
                while (k < end && s[k] != '"') {
                    if (s[k] == '\\') {
                        if (k + 1 >= end ||
                            !(s[k + 1] == '\\' || s[k + 1] == '"' ||
                              s[k + 1] == 'n')) {
                            fz_fail_at = k;
                            fz_buf_free(&val);
                            return "bad escape in a label value";
                        }
                        fz_buf_put(&val, s[k + 1] == 'n' ? "\n" : text + k + 1,
                                   1);
                        k += 2;
                        continue;
                    }
                    fz_buf_put(&val, text + k, 1);
                    k++;
                }
                if (k >= end) {
                    fz_fail_at = k;
                    fz_buf_free(&val);
                    return "label value not closed on its line (raw '\"' or "
                           "newline inside?)";
                }
                k++; /* closing quote */
                if (want_label && label && strlen(label) == lnl &&
                    memcmp(text + ln, label, lnl) == 0) {
                    want_label(ctx, fz_buf_str(&val), val.n);
                }
                if (k < end && s[k] == ',') {
                    k++;
                    continue;
                }
                if (k < end && s[k] == '}') {
                    k++;
                    break;
                }
                fz_fail_at = k;
                fz_buf_free(&val);
                return "expected ',' or '}' after a label value";
            }
        }
        if (k >= end || s[k] != ' ') {
            fz_fail_at = k;
            fz_buf_free(&val);
            return "no space before the sample value";
        }
        k++;
        {
            char num[64], *e;
            size_t l = end - k;
            if (!l || l >= sizeof(num)) {
                fz_buf_free(&val);
                return "bad sample value";
            }
            memcpy(num, text + k, l);
            num[l] = '\0';
            if (strcmp(num, "+Inf") && strcmp(num, "-Inf") &&
                strcmp(num, "NaN")) {
                (void)strtod(num, &e);
                if (*e) {
                    fz_fail_at = k;
                    fz_buf_free(&val);
                    return "sample value is not a number";
                }
            }
        }
        i = end + 1;
    }
    fz_buf_free(&val);
    return NULL;
}

/* ---- gzip and protobuf ---- */

const char *fz_gunzip(const unsigned char *s, size_t n, fz_buf_t *out)
{
    z_stream z;
    unsigned char chunk[16384];
    int rc;

    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) { /* gzip only */
        return "inflateInit2 failed";
    }
    z.next_in = (unsigned char *)s;
    z.avail_in = (uInt)n;
    do {
        z.next_out = chunk;
        z.avail_out = sizeof(chunk);
        rc = inflate(&z, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END) {
            inflateEnd(&z);
            return "not a valid gzip stream";
        }
        fz_buf_put(out, chunk, sizeof(chunk) - z.avail_out);
        if (out->n > (256u << 20)) {
            inflateEnd(&z);
            return "gzip inflates past 256 MB";
        }
    } while (rc != Z_STREAM_END && (z.avail_in || !z.avail_out));
    if (rc != Z_STREAM_END) {
        inflateEnd(&z);
        return "truncated gzip stream";
    }
    if (z.avail_in) {
        inflateEnd(&z);
        return "bytes after the gzip stream";
    }
    inflateEnd(&z);
    return NULL;
}

static int varint(const unsigned char *s, size_t n, size_t *i, uint64_t *v)
{
    int shift = 0;
    *v = 0;
    while (*i < n && shift < 64) {
        unsigned char b = s[(*i)++];
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            return 1;
        }
        shift += 7;
    }
    return 0;
}

const char *fz_pb_walk(const unsigned char *s, size_t n,
                       void (*cb)(void *ctx, const fz_pb_field_t *f), void *ctx)
{
    size_t i = 0;

    while (i < n) {
        uint64_t key, v;
        fz_pb_field_t f;

        fz_fail_at = i;
        if (!varint(s, n, &i, &key)) {
            return "truncated field key";
        }
        f.num = (uint32_t)(key >> 3);
        f.wire = (int)(key & 7);
        if ((key >> 3) == 0 || (key >> 3) > 536870911u) {
            return "invalid field number";
        }
        if (f.wire == 0) {
            if (!varint(s, n, &i, &v)) {
                return "truncated varint";
            }
            f.v = v;
            f.p = NULL;
        }
        else if (f.wire == 2) {
            if (!varint(s, n, &i, &v)) {
                return "truncated length";
            }
            if (v > n - i) {
                return "length-delimited field runs past its message";
            }
            f.v = v;
            f.p = s + i;
            i += (size_t)v;
        }
        else {
            return "wire type other than varint or length-delimited";
        }
        if (cb) {
            cb(ctx, &f);
        }
    }
    return NULL;
}

const char *fz_pb_packed(const unsigned char *s, size_t n, uint64_t *out,
                         size_t cap, size_t *count)
{
    size_t i = 0;
    *count = 0;
    while (i < n) {
        uint64_t v;
        if (!varint(s, n, &i, &v)) {
            return "truncated packed varint";
        }
        if (*count < cap) {
            out[*count] = v;
        }
        (*count)++;
    }
    return NULL;
}
