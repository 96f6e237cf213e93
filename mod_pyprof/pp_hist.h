/* pp_hist.h: the fixed response-time histogram shared by every location.
 *
 * Buckets are log-spaced: bucket 0 is [0, 1 ms), buckets 1..PP_HIST_LOG are
 * PP_HIST_PER_DOUBLING per doubling from 1 ms up to 60 s, and the last one is
 * [60 s, inf).  The edges are a pure function of the index, so writers only
 * do an atomic increment and readers agree on edges without shared state.
 */
#ifndef PP_HIST_H
#define PP_HIST_H

#include <stdint.h>

#define PP_HIST_MIN_US 1000LL     /* 1 ms */
#define PP_HIST_MAX_US 60000000LL /* 60 s */
#define PP_HIST_LOG 64            /* log-spaced buckets in [1 ms, 60 s) */
#define PP_HIST_BUCKETS (PP_HIST_LOG + 2)

/* Bucket index for a duration in microseconds. */
int pp_hist_bucket(int64_t us);

/* Lower and upper edges of a bucket in microseconds; the upper edge of the
 * last bucket is INT64_MAX. */
int64_t pp_hist_lo_us(int bucket);
int64_t pp_hist_hi_us(int bucket);

/* Estimated q-quantile (0 < q <= 1) from bucket counts, interpolated
 * geometrically inside the bucket and clamped to max_us.  0 if empty. */
int64_t pp_hist_quantile_us(const uint64_t counts[PP_HIST_BUCKETS], double q,
                            int64_t max_us);

#endif
