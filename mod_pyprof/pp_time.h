/* pp_time.h: the module's clocks, in one place.
 *
 * Wall clock (CLOCK_REALTIME, microseconds since the epoch) for what the
 * pages show and what the per-minute tables are keyed by; monotonic clock
 * (CLOCK_MONOTONIC) for intervals and deadlines, which a clock step must
 * not stretch or shrink.  Any thread of any process may call these; they
 * never block, never allocate, and include no httpd or Python header.
 */
#ifndef PP_TIME_H
#define PP_TIME_H

#include <stdint.h>

/* Wall clock, microseconds since the epoch. */
int64_t pp_wall_us(void);
/* Monotonic clock, nanoseconds and microseconds (the same clock). */
int64_t pp_mono_ns(void);
int64_t pp_mono_us(void);

#endif
