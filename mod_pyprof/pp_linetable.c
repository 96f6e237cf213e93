/* pp_linetable.c: CPython 3.11's location table, bounds-checked.
 *
 * Format (CPython 3.11, Objects/locations.md): a sequence of entries, each
 * a first byte with bit 7 set, code = bits 3-6, length = bits 0-2 plus one
 * (in code units), then code-dependent payload bytes, none with bit 7 set.
 * The line delta of an entry is 0 for the short forms (codes 0-9), code -
 * 10 for the one-line forms (10-12), a signed varint for the no-column
 * form (13) and the long form (14) (its first varint); code 15 means no
 * location.  Varints are 6 bits per byte, bit 6 = more.
 */
#include "pp_linetable.h"

#include <limits.h>

/* 6-bit varint at *i; at most five bytes (30 bits) */
static int varint(const uint8_t *p, size_t n, size_t *i, uint32_t *out)
{
    uint32_t val, read;
    unsigned shift = 0;

    if (*i >= n) {
        return -1;
    }
    read = p[(*i)++];
    val = read & 63;
    while (read & 64) {
        if (*i >= n || shift >= 24) {
            return -1;
        }
        read = p[(*i)++];
        shift += 6;
        val |= (read & 63) << shift;
    }
    *out = val;
    return 0;
}

int pp_linetable_line(const uint8_t *p, size_t n, int firstlineno, int64_t unit)
{
    size_t i = 0;
    int64_t line = firstlineno, at = 0;

    if (unit < 0) {
        return firstlineno;
    }
    if (!p) {
        return -1;
    }
    while (i < n) {
        uint8_t first = p[i];
        int code, len;
        int64_t delta = 0;

        if (!(first & 128)) {
            return -1; /* not an entry start */
        }
        code = (first >> 3) & 15;
        len = (first & 7) + 1;
        i++;
        if (code == 13 || code == 14) {
            uint32_t u;
            if (varint(p, n, &i, &u) != 0) {
                return -1;
            }
            delta = (u & 1) ? -(int64_t)(u >> 1) : (int64_t)(u >> 1);
        }
        else if (code >= 10 && code <= 12) {
            delta = code - 10;
        }
        /* |delta| < 2^29 and one entry per byte: no int64 overflow; a
         * line outside int is a torn or hostile table */
        line += delta;
        if (line < 0 || line > INT_MAX) {
            return -1;
        }
        if (unit < at + len) {
            return code == 15 ? -1 : (int)line;
        }
        at += len;
        while (i < n && !(p[i] & 128)) {
            i++; /* the rest of the payload */
        }
    }
    return -1;
}
