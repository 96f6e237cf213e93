/* pp_parse.c: directive value parsers (see pp_parse.h).  Never allocates;
 * every input is treated as hostile (overflow-checked, bounded).
 */
#include <ctype.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "pp_parse.h"
#include "pp_store.h"

/* Parse a non-negative decimal with an optional fraction, scaled by
 * 10^scale_digits (so "2.5" with 6 digits -> 2500000).  Returns the end. */
static const char *parse_fixed(const char *s, int64_t *out, int *ok)
{
    /* value in millionths */
    int64_t whole = 0, frac = 0, fscale = 1000000;
    int digits = 0;

    *ok = 0;
    while (isdigit((unsigned char)*s)) {
        /* whole * 1000000 + a fraction (< 1000000) must fit in int64_t:
         * whole <= INT64_MAX / 1000000 - 1 */
        int d = *s - '0';
        if (whole > (INT64_MAX / 1000000 - 1 - d) / 10) {
            return s;
        }
        whole = whole * 10 + d;
        s++;
        digits++;
    }
    if (*s == '.') {
        s++;
        while (isdigit((unsigned char)*s)) {
            if (fscale > 1) {
                fscale /= 10;
                frac += (*s - '0') * fscale;
            }
            s++;
            digits++;
        }
    }
    if (digits == 0) {
        return s;
    }
    *ok = 1;
    *out = whole * 1000000 + frac;
    return s;
}

const char *pp_parse_duration(const char *s, int64_t min_us, int64_t max_us,
                              int64_t *out_us)
{
    static const char form[] =
        "expected a positive duration with a unit: us, ms or s "
        "(e.g. 500us, 10ms, 1s)";
    int64_t micro; /* value in millionths of the unit */
    int64_t us;
    int ok;
    const char *unit;

    if (!s || !*s || *s == '-' || *s == '+') {
        return form;
    }
    unit = parse_fixed(s, &micro, &ok);
    if (!ok) {
        return form;
    }
    if (strcmp(unit, "us") == 0) {
        us = micro / 1000000;
    }
    else if (strcmp(unit, "ms") == 0) {
        us = micro / 1000;
    }
    else if (strcmp(unit, "s") == 0) {
        if (micro > INT64_MAX / 1) {
            return form;
        }
        us = micro; /* millionths of a second are microseconds */
    }
    else {
        return form;
    }
    if (us <= 0) {
        return "the duration must be greater than zero";
    }
    if (us < min_us || us > max_us) {
        return "the duration is out of the accepted range";
    }
    *out_us = us;
    return NULL;
}

const char *pp_parse_size(const char *s, uint64_t min, uint64_t max,
                          uint64_t *out)
{
    static const char form[] =
        "expected a size in bytes with an optional K, M or G suffix "
        "(e.g. 16M, 1G)";
    uint64_t v = 0, mult = 1;
    int digits = 0;

    if (!s || !*s) {
        return form;
    }
    while (isdigit((unsigned char)*s)) {
        if (v > (UINT64_MAX - 9) / 10) {
            return form;
        }
        v = v * 10 + (uint64_t)(*s - '0');
        s++;
        digits++;
    }
    if (!digits) {
        return form;
    }
    switch (*s) {
    case '\0':
        break;
    case 'k':
    case 'K':
        mult = 1024ULL;
        s++;
        break;
    case 'm':
    case 'M':
        mult = 1024ULL * 1024;
        s++;
        break;
    case 'g':
    case 'G':
        mult = 1024ULL * 1024 * 1024;
        s++;
        break;
    default:
        return form;
    }
    if (*s == 'B' || *s == 'b') {
        s++;
    }
    if (*s) {
        return form;
    }
    if (v > UINT64_MAX / mult) {
        return "the size is out of the accepted range";
    }
    v *= mult;
    if (v < min || v > max) {
        return "the size is out of the accepted range";
    }
    *out = v;
    return NULL;
}

const char *pp_parse_int(const char *s, long min, long max, long *out)
{
    long v = 0;
    int digits = 0;

    if (!s || !*s) {
        return "expected a whole number";
    }
    while (isdigit((unsigned char)*s)) {
        if (v > (LONG_MAX - 9) / 10) {
            return "the number is out of the accepted range";
        }
        v = v * 10 + (*s - '0');
        s++;
        digits++;
    }
    if (!digits || *s) {
        return "expected a whole number";
    }
    if (v < min || v > max) {
        return "the number is out of the accepted range";
    }
    *out = v;
    return NULL;
}

const char *pp_parse_prefix(const char *s)
{
    size_t n;

    if (!s || s[0] != '/') {
        return "expected a URL path starting with '/' (e.g. /app)";
    }
    n = strlen(s);
    if (n >= PP_PREFIX_MAX) {
        return "the URL path is too long";
    }
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c == 0x7f || c == '?' || c == '#') {
            return "the URL path must not contain spaces, control "
                   "characters, '?' or '#'";
        }
    }
    return NULL;
}

int pp_prefix_match(const char *prefix, const char *uri)
{
    size_t n;

    if (!prefix || !uri) {
        return -1;
    }
    n = strlen(prefix);
    if (strncmp(prefix, uri, n) != 0) {
        return -1;
    }
    /* segment boundary: prefix ends in '/', or uri ends or continues with
     * a path separator */
    if (n > 0 && prefix[n - 1] == '/') {
        return (int)n;
    }
    if (uri[n] == '\0' || uri[n] == '/') {
        return (int)n;
    }
    return -1;
}
