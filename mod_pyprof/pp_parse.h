/* pp_parse.h: parsers for directive values (durations, sizes, URL prefixes).
 *
 * Pure functions over C strings: no allocation, no httpd, no Python.  Each
 * returns NULL on success or a static message naming the accepted form, so
 * the glue can prefix the directive name and fail "apachectl configtest".
 */
#ifndef PP_PARSE_H
#define PP_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* "10ms", "500us", "1s", "2.5s"; bare numbers are refused (ambiguous).
 * Result in microseconds, must lie in [min_us, max_us]. */
const char *pp_parse_duration(const char *s, int64_t min_us, int64_t max_us,
                              int64_t *out_us);

/* "16M", "1G", "512K", "1048576" (bytes); in [min, max]. */
const char *pp_parse_size(const char *s, uint64_t min, uint64_t max,
                          uint64_t *out);

/* Decimal integer in [min, max]. */
const char *pp_parse_int(const char *s, long min, long max, long *out);

/* A URL-path prefix: starts with '/', no whitespace, no control chars, no
 * "?" or "#", at most PP_PREFIX_MAX-1 bytes. */
const char *pp_parse_prefix(const char *s);

/* Does uri fall under prefix, on a path-segment boundary?  "/app" matches
 * "/app", "/app/", "/app/x" but not "/apple"; "/" matches everything.
 * Returns the prefix length on a match (for longest-prefix-wins), else -1. */
int pp_prefix_match(const char *prefix, const char *uri);

#endif
