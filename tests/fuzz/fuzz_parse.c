/* fuzz_parse.c: libFuzzer target for the directive value parsers
 * (pp_parse_duration, pp_parse_size, pp_parse_int, pp_parse_prefix) and
 * the location prefix match (pp_prefix_match).
 *
 * Every result is compared with a reference computed here with 128-bit
 * arithmetic from the documented grammar: an accepted value must be the
 * exact value of the text and lie in [min, max]; a refused text must be
 * outside the grammar or the range (or, for the few digits-heavy texts
 * the parsers refuse as overflowing, really large).  Input: one selector
 * byte, eight bytes of range, then the text(s), NUL-separated.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "pp_parse.h"
#include "pp_store.h"

typedef __int128 i128;

/* reference values saturate here, far above anything the parsers accept */
#define HUGE_REF ((i128)1 << 80)

static i128 sat_digit(i128 v, char c)
{
    v = v * 10 + (c - '0');
    return v > HUGE_REF ? HUGE_REF : v;
}

static int digit(char c)
{
    return c >= '0' && c <= '9';
}

/* ---- durations: DIGITS[.DIGITS](us|ms|s), or .DIGITS ---- */

/* Reference value in microseconds (fraction of the unit beyond 1e-6 cut,
 * as documented), -1 when the text is outside the grammar, -2 when the
 * whole part is too long to judge. */
static i128 ref_duration(const char *s, i128 *wholep)
{
    i128 whole = 0, frac = 0, fscale = 1000000, micro;
    int digits = 0;

    while (digit(*s)) {
        whole = sat_digit(whole, *s++);
        digits++;
    }
    if (*s == '.') {
        s++;
        while (digit(*s)) {
            if (fscale > 1) {
                fscale /= 10;
                frac += (*s - '0') * fscale;
            }
            s++;
            digits++;
        }
    }
    *wholep = whole;
    if (!digits) {
        return -1;
    }
    micro = whole * 1000000 + frac; /* millionths of the unit */
    if (strcmp(s, "us") == 0) {
        return micro / 1000000;
    }
    if (strcmp(s, "ms") == 0) {
        return micro / 1000;
    }
    if (strcmp(s, "s") == 0) {
        return micro;
    }
    return -1;
}

static void check_duration(const char *s, int64_t min, int64_t max)
{
    int64_t out = -12345;
    const char *err = pp_parse_duration(s, min, max, &out);
    i128 whole = 0;
    i128 ref = ref_duration(s, &whole);

    if (!err) {
        FZ_ASSERT("duration accepted outside the grammar", ref >= 0);
        FZ_ASSERT("duration value differs from the text", ref == out);
        FZ_ASSERT("duration out of range accepted",
                  out >= min && out <= max && out > 0);
    }
    else {
        FZ_ASSERT("duration refused without leaving out unchanged",
                  out == -12345);
        /* refused: outside the grammar, zero, out of range, or a whole
         * part so long the parser's overflow guard stops it (it keeps
         * the value in millionths in an int64_t: at most ~9.2e12) */
        FZ_ASSERT("valid in-range duration refused",
                  ref < 0 || ref == 0 || ref < min || ref > max ||
                      whole > (i128)922337203685LL);
    }
}

/* ---- sizes: DIGITS[K|M|G[B]] ---- */

static i128 ref_size(const char *s)
{
    i128 v = 0, mult = 1;
    int digits = 0;

    while (digit(*s)) {
        v = sat_digit(v, *s++);
        digits++;
    }
    if (!digits) {
        return -1;
    }
    switch (*s) {
    case 'k':
    case 'K':
        mult = 1024;
        s++;
        break;
    case 'm':
    case 'M':
        mult = 1024 * 1024;
        s++;
        break;
    case 'g':
    case 'G':
        mult = 1024 * 1024 * 1024;
        s++;
        break;
    default:
        break;
    }
    /* a B may follow a multiplier ("16MB"); a bare "100B" is refused */
    if (mult > 1 && (*s == 'b' || *s == 'B')) {
        s++;
    }
    return *s ? -1 : v * mult;
}

static void check_size(const char *s, uint64_t min, uint64_t max)
{
    uint64_t out = 12345;
    const char *err = pp_parse_size(s, min, max, &out);
    i128 ref = ref_size(s);

    if (!err) {
        FZ_ASSERT("size accepted outside the grammar", ref >= 0);
        FZ_ASSERT("size value differs from the text", ref == (i128)out);
        FZ_ASSERT("size out of range accepted", out >= min && out <= max);
    }
    else {
        FZ_ASSERT("size refused without leaving out unchanged", out == 12345);
        FZ_ASSERT("valid in-range size refused",
                  ref < 0 || ref < (i128)min || ref > (i128)max ||
                      ref > (i128)UINT64_MAX / 10);
    }
}

/* ---- integers: DIGITS ---- */

static void check_int(const char *s, long min, long max)
{
    long out = 12345;
    const char *err = pp_parse_int(s, min, max, &out);
    i128 v = 0;
    const char *p = s;
    int digits = 0, grammar;

    while (digit(*p)) {
        v = sat_digit(v, *p++);
        digits++;
    }
    grammar = digits > 0 && *p == '\0';
    if (!err) {
        FZ_ASSERT("integer accepted outside the grammar", grammar);
        FZ_ASSERT("integer value differs from the text", v == out);
        FZ_ASSERT("integer out of range accepted", out >= min && out <= max);
    }
    else {
        FZ_ASSERT("integer refused without leaving out unchanged",
                  out == 12345);
        FZ_ASSERT("valid in-range integer refused",
                  !grammar || v < min || v > max || v > LONG_MAX / 10);
    }
}

/* ---- prefixes ---- */

static void check_prefix(const char *s)
{
    const char *err = pp_parse_prefix(s);
    size_t n = strlen(s), i;
    int ok = s[0] == '/' && n < PP_PREFIX_MAX;

    for (i = 0; ok && i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f || c == '?' || c == '#') {
            ok = 0;
        }
    }
    FZ_ASSERT("prefix accepted or refused against its documented form",
              (err == NULL) == ok);
}

/* Segment-boundary match, from the documentation in pp_parse.h. */
static int ref_match(const char *prefix, const char *uri)
{
    size_t n = strlen(prefix);

    if (strncmp(prefix, uri, n) != 0) {
        return -1;
    }
    if (n && prefix[n - 1] == '/') {
        return (int)n;
    }
    return uri[n] == '\0' || uri[n] == '/' ? (int)n : -1;
}

static void check_match(const char *prefix, const char *uri)
{
    int got = pp_prefix_match(prefix, uri);

    FZ_ASSERT("prefix match differs from the documented rule",
              got == ref_match(prefix, uri));
    if (got >= 0) {
        FZ_ASSERT("a match returns the prefix length",
                  (size_t)got == strlen(prefix));
    }
    /* "/app" matches "/app/x" but never "/apple" */
    if (got >= 0 && strlen(uri) > strlen(prefix) && prefix[0] &&
        prefix[strlen(prefix) - 1] != '/') {
        FZ_ASSERT("match not on a segment boundary",
                  uri[strlen(prefix)] == '/');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in_t in = {data, size};
    uint8_t sel = fz_u8(&in);
    uint32_t a = fz_u32(&in), b = fz_u32(&in);
    char *text = malloc(in.n + 2), *second;
    size_t n = in.n;

    if (!text) {
        abort();
    }
    memcpy(text, in.p, n);
    text[n] = '\0';
    text[n + 1] = '\0';
    second = text + strlen(text) + 1; /* after the first NUL, or "" */
    if (second > text + n) {
        second = text + n + 1;
    }

    switch (sel % 5) {
    case 0: {
        /* the ranges the directives use, or fuzzed ones */
        int64_t lo = (sel & 8) ? (int64_t)(a % 100000000u) : 1000;
        int64_t hi = (sel & 8) ? lo + (int64_t)b * 1000 : 10000000;
        check_duration(text, lo, hi);
        check_duration(text, 1, INT64_MAX);
        break;
    }
    case 1: {
        uint64_t lo = (sel & 8) ? a : 1;
        uint64_t hi =
            (sel & 8) ? lo + ((uint64_t)b << (sel >> 4)) : 64ULL << 30;
        check_size(text, lo, hi);
        check_size(text, 0, UINT64_MAX);
        break;
    }
    case 2: {
        long lo = (sel & 8) ? (long)(a % 100000) : 1;
        long hi = (sel & 8) ? lo + (long)b : 10000;
        check_int(text, lo, hi);
        check_int(text, 0, LONG_MAX);
        break;
    }
    case 3:
        check_prefix(text);
        break;
    default:
        check_match(text, second);
        check_match(second, text);
        check_prefix(second);
        break;
    }
    free(text);
    return 0;
}
