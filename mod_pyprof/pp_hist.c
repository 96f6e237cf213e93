/* pp_hist.c: histogram bucket edges and quantiles (see pp_hist.h).  Pure
 * arithmetic; no state.
 */
#include <math.h>
#include <stdint.h>

#include "pp_hist.h"

/* ratio between consecutive edges: (60 s / 1 ms)^(1/PP_HIST_LOG) */
/* Computed at each call: a lazily set static here was written by
 * concurrent threads (a data race), and a pow() costs less than the
 * rendering around it. */
static double edge_ratio(void)
{
    return pow((double)PP_HIST_MAX_US / (double)PP_HIST_MIN_US,
               1.0 / PP_HIST_LOG);
}

int64_t pp_hist_lo_us(int b)
{
    if (b <= 0) {
        return 0;
    }
    if (b > PP_HIST_LOG) {
        return PP_HIST_MAX_US;
    }
    return (int64_t)llround(PP_HIST_MIN_US * pow(edge_ratio(), b - 1));
}

int64_t pp_hist_hi_us(int b)
{
    if (b >= PP_HIST_BUCKETS - 1) {
        return INT64_MAX;
    }
    return pp_hist_lo_us(b + 1);
}

int pp_hist_bucket(int64_t us)
{
    int lo = 1, hi = PP_HIST_LOG;

    if (us < PP_HIST_MIN_US) {
        return 0;
    }
    if (us >= PP_HIST_MAX_US) {
        return PP_HIST_BUCKETS - 1;
    }
    /* binary search on the exact integer edges, so bucketing agrees with
     * the edges that readers print */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (pp_hist_lo_us(mid) <= us) {
            lo = mid;
        }
        else {
            hi = mid - 1;
        }
    }
    return lo;
}

int64_t pp_hist_quantile_us(const uint64_t counts[PP_HIST_BUCKETS], double q,
                            int64_t max_us)
{
    uint64_t total = 0, seen = 0;
    double rank;
    int b;

    for (b = 0; b < PP_HIST_BUCKETS; b++) {
        total += counts[b];
    }
    if (total == 0) {
        return 0;
    }
    if (q <= 0) {
        q = 0;
    }
    if (q > 1) {
        q = 1;
    }
    rank = q * (double)total;
    if (rank < 1) {
        rank = 1;
    }
    for (b = 0; b < PP_HIST_BUCKETS; b++) {
        if (counts[b] && (double)(seen + counts[b]) >= rank) {
            double frac = (rank - (double)seen) / (double)counts[b];
            double lo = (double)pp_hist_lo_us(b);
            double hi;
            int64_t v;

            if (b == PP_HIST_BUCKETS - 1) {
                return max_us > PP_HIST_MAX_US ? max_us : PP_HIST_MAX_US;
            }
            hi = (double)pp_hist_hi_us(b);
            if (b == 0) {
                v = (int64_t)(hi * frac);
            }
            else {
                v = (int64_t)(lo * pow(hi / lo, frac));
            }
            if (max_us > 0 && v > max_us) {
                v = max_us;
            }
            return v;
        }
        seen += counts[b];
    }
    return max_us;
}
