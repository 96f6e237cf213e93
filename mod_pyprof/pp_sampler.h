/* pp_sampler.h: the per-process sampler thread and its registry of the
 * requests this process is serving.
 *
 * Request threads register and unregister themselves (C only, a
 * process-local mutex, never the GIL); the sampler thread wakes when a
 * registered request is due, takes the GIL once for all due requests, and
 * records one stack per request in the shared store.  With nothing
 * registered it sleeps on a condition variable and never touches Python.
 */
#ifndef PP_SAMPLER_H
#define PP_SAMPLER_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "pp_store.h"
/* pp_mono_ns and pp_wall_us, which this header used to declare */
#include "pp_time.h"

/* Start the sampler of this process (idempotent).  0 on success. */
int pp_sampler_start(pp_store_t *st);
/* Stop and join it; it deletes its Python thread state before returning.
 * Safe to call when it never started.  Whatever the timeout, it returns
 * only once the thread has made its last call into Python (the caller
 * may finalise Python next): 0 if that took at most timeout_ms, -1 if
 * longer (the sampler was waiting for the GIL; logged). */
int pp_sampler_stop(int timeout_ms);
int pp_sampler_running(void);
/* Whether this process has a running Python interpreter for a sampler to
 * attach to (mod_wsgi's child_init made one): 1 or 0.  What the glue asks
 * before pp_sampler_start, so it never needs the Python layer itself. */
int pp_sampler_can_start(void);

/* Register the calling thread as serving the request in slot `slot`. */
int pp_sampler_register(int slot, uint64_t serial, uint32_t interval_us,
                        uint32_t max_depth);
/* The request the calling thread is registered for; 0 if none. */
int pp_sampler_current(int *slot, uint64_t *serial);
/* After this returns, the sampler will not write to the slot again. */
void pp_sampler_unregister(int slot);
/* The same, returning the CPU time the calling thread used since it
 * registered (-1 if it is not the registered thread). */
int64_t pp_sampler_unregister_cpu(int slot);

/* CPU time of a thread in nanoseconds (its CPU clock); -1 on error. */
int64_t pp_thread_cpu_ns(pthread_t thread);

/* The sampler's classification of an interval (PP_SAMPLE_*), as pure
 * functions for the unit tests: on CPU when the thread's CPU clock moved
 * for at least half the interval; else what its wait channel (`n` bytes
 * read, no newline) says, where "0" (not blocked: runnable) counts as
 * PP_SAMPLE_WAIT_CORE only if `names` (the kernel names wait channels). */
int pp_sample_on_cpu(int64_t cpu_delta_ns, int64_t wall_ns);
int pp_sample_how_wchan(const char *w, ssize_t n, int names);
/* Whether /proc/self/task/TID/stat (`n` bytes) says the thread is
 * runnable (state R): 1, 0 (blocked: S, D, ...), or -1 if unreadable.  A
 * wait channel of "0" alone does not say so: since Linux 6.12 a thread
 * that went to sleep on a busy CPU can stay queued a while (delayed
 * dequeue), and the kernel names no wait channel for a queued thread. */
int pp_sample_stat_runnable(const char *stat, ssize_t n);

/* GIL blame's rule (GIL-free mode), as a pure function for the unit
 * tests: may thread t be waiting for GIL g (NULL: unknown)?  With `marks`
 * (3.15) a thread state says so itself (gil_requested), and for a thread
 * in Python that is the answer.  Otherwise only while another thread
 * holds it and someone sleeps on it (or its sleepers cannot be counted),
 * and then a futex wait is taken for the GIL's.  A thread with no Python
 * frame needs no sleeper: its futex is mod_wsgi's way into Python, the GIL
 * or mod_wsgi's interpreter lock, which a thread holds on its way to the
 * GIL (so the ones queued behind it wait for the GIL at one remove). */
struct pp_gil_state;
struct pp_walk_target;
int pp_gil_may_wait(const struct pp_gil_state *g,
                    const struct pp_walk_target *t, int marks);

#endif
