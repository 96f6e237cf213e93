/* pp_sink.h: where output goes, and the escapers that make a string safe
 * for the output it lands in (HTML, JSON, folded stacks, Prometheus label
 * values, URL components).
 *
 * A leaf: no httpd, no store.  The glue's sink writes to the response, the
 * tests' to a buffer.  Every string that came from a client or from Python
 * goes through one of these before it is written.  Invalid UTF-8 becomes
 * U+FFFD in HTML and JSON.
 */
#ifndef PP_SINK_H
#define PP_SINK_H

#include <stddef.h>
#include <stdint.h>

typedef struct pp_sink {
    void (*write)(void *ctx, const char *s, size_t n);
    void *ctx;
} pp_sink_t;

void pp_puts(pp_sink_t *o, const char *s);
/* Formatted output of at most 1023 bytes (longer is cut). */
void pp_printf(pp_sink_t *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Length of the valid UTF-8 sequence at s (1..4; n >= 1 bytes left), or 0
 * if s starts an invalid one (overlong, surrogate, > U+10FFFF, cut). */
size_t pp_utf8_seq(const unsigned char *s, size_t n);

void pp_put_html(pp_sink_t *o, const char *s, size_t n);
void pp_put_json_str(pp_sink_t *o, const char *s, size_t n); /* quoted */
/* NUL-terminated forms of the two above. */
void pp_puts_html(pp_sink_t *o, const char *s);
void pp_puts_json(pp_sink_t *o, const char *s);
/* Folded format: ';' separates frames and the last ' ' precedes the count,
 * so ';' becomes ':' and line breaks and control characters become ' '. */
void pp_put_folded(pp_sink_t *o, const char *s, size_t n);
/* A Prometheus label value: backslash, quote and newline escaped. */
void pp_put_prom_label(pp_sink_t *o, const char *s, size_t n);

/* Percent-encoding for a URL: everything but the unreserved characters
 * (RFC 3986: letters, digits, - . _ ~) and '@' is encoded, and '/' too
 * unless PP_URL_KEEP_SLASH (a path given as a query value, where the
 * pages show it readable: ?path=/app).  The result needs no HTML escaping
 * in an attribute. */
#define PP_URL_KEEP_SLASH 1u
void pp_put_url(pp_sink_t *o, const char *s, size_t n, unsigned flags);
/* URL path segment or query component: pp_put_url with '/' encoded. */
void pp_put_url_segment(pp_sink_t *o, const char *s, size_t n);

#endif
