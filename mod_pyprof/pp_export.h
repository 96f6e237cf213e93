/* pp_export.h: standard profile formats for a stack set: Brendan Gregg's
 * folded stacks, speedscope's JSON file format, and pprof's gzipped
 * profile.proto (what Go's net/http/pprof serves and Pyroscope scrapes).
 *
 * Names are exported whole (display shortening is the pages' business);
 * every string is escaped or length-delimited for its format.  Each
 * writes a resolved profile (pp_profile_resolve) and nothing else: it
 * never reads the store.  Heap memory only.
 */
#ifndef PP_EXPORT_H
#define PP_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "pp_profile.h"
#include "pp_sink.h"

/* One line per stack, root first: "f (file:line);g (file:line) COUNT". */
void pp_export_folded(pp_sink_t *o, const pp_profile_t *p);

/* A speedscope "sampled" profile, weights in milliseconds of wall time. */
void pp_export_speedscope(pp_sink_t *o, const pp_profile_t *p,
                          const char *name);

typedef struct pp_pprof_label {
    const char *key;
    const char *str; /* NULL: numeric */
    int64_t num;
} pp_pprof_label_t;

typedef struct pp_bytes {
    unsigned char *data;
    size_t len, cap;
    int failed;
} pp_bytes_t;

/* Gzipped profile.proto: sample types samples/count and wall/nanoseconds,
 * every sample carrying `labels`; period = interval_ns of wall time.
 * Returns 0 and fills *out (free out->data), or -1. */
int pp_export_pprof(pp_bytes_t *out, const pp_profile_t *p,
                    const pp_pprof_label_t *labels, size_t nlabels,
                    int64_t time_ns, int64_t duration_ns, int64_t interval_ns);
/* The same for allocations (PyProfAllocations): a stack's count is
 * allocations and its weight_us bytes; sample types alloc_objects/count
 * and alloc_space/bytes (the default), period mean_bytes of space/bytes. */
int pp_export_pprof_alloc(pp_bytes_t *out, const pp_profile_t *p,
                          const pp_pprof_label_t *labels, size_t nlabels,
                          int64_t time_ns, int64_t duration_ns,
                          int64_t mean_bytes);

#endif
