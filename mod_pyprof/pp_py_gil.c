/* pp_py_gil.c: the GILs' state as each GIL-free walk reads it, for GIL
 * blame.  For every interpreter the walk visits (pp_py_walk.c), the GIL
 * its threads wait for is copied once through the reader (pp_py_read.c):
 * whether it is held, by which thread state, its switch count, and how
 * many threads sleep on its condition variable (glibc's waiter count, if
 * a probe at set-up finds it counts waiters).  The walk fills in the
 * holder's thread ids when it meets its thread state; the sampler reads
 * the result through pp_py_gil_tick().
 *
 * Sampler thread only: pp_py_gil_blame_init runs at the sampler thread's
 * start (it creates and joins one short-lived probe thread), the rest in
 * its walk under HEAD_LOCK.  Never takes or waits for the GIL, never
 * dereferences a GIL or thread state pointer but through the reader or
 * under HEAD_LOCK.  No Python header.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "pp_frames.h"
#include "pp_py_int.h"

#define GIL_READ_MAX 256 /* bytes of the GIL struct copied, at most */

int pp_py_gil_blame;    /* pp_py_gil_blame_init succeeded */
static size_t wrefs_at; /* glibc's waiter count in a pthread_cond_t */
static int wrefs_ok;    /* ... and the probe says it counts waiters */
pp_gil_tick_t pp_py_gils;

/* glibc's condition variable (2.25 and later) counts the threads inside
 * pthread_cond_wait in __wrefs, 8 a waiter (the low 3 bits are flags).
 * The count is not an interface: it is used only if a probe at start
 * reads it as one waiter while a thread waits, and none after. */
static pthread_mutex_t probe_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t probe_cv = PTHREAD_COND_INITIALIZER;
static int probe_go;

static int cond_waiters(const void *cond)
{
    uint32_t w;

    memcpy(&w, (const char *)cond + wrefs_at, sizeof(w));
    return (int)(w >> 3);
}

static void *probe_waiter(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&probe_mu);
    while (!probe_go) {
        pthread_cond_wait(&probe_cv, &probe_mu);
    }
    pthread_mutex_unlock(&probe_mu);
    return NULL;
}

static int cond_probe(void)
{
#ifdef __GLIBC__
    pthread_t th;
    int i, seen = 0, after;

    wrefs_at = offsetof(pthread_cond_t, __data.__wrefs);
    probe_go = 0;
    if (pthread_create(&th, NULL, probe_waiter, NULL) != 0) {
        return -1;
    }
    for (i = 0; i < 1000 && !seen; i++) {
        pthread_mutex_lock(&probe_mu);
        seen = cond_waiters(&probe_cv) == 1;
        pthread_mutex_unlock(&probe_mu);
        if (!seen) {
            usleep(1000);
        }
    }
    pthread_mutex_lock(&probe_mu);
    probe_go = 1;
    pthread_cond_signal(&probe_cv);
    pthread_mutex_unlock(&probe_mu);
    pthread_join(th, NULL);
    after = cond_waiters(&probe_cv);
    return seen && after == 0 ? 0 : -1;
#else
    return -1;
#endif
}

/* The index in pp_py_gils of the GIL at g, copied on first sight in this
 * walk; -1 if it cannot be read (or too many). */
static int gil_index(const void *g)
{
    uint8_t buf[GIL_READ_MAX];
    pp_gil_state_t *s;
    size_t n;
    int i;

    if (!pp_py_plausible(g)) {
        return -1;
    }
    for (i = 0; i < pp_py_gils.n; i++) {
        if (pp_py_gils.gils[i].gil == g) {
            return i;
        }
    }
    if (pp_py_gils.n == PP_GILS_MAX) {
        return -1;
    }
    n = wrefs_ok ? pp_py_L->gil_cond + wrefs_at + sizeof(uint32_t)
                 : pp_py_L->gil_switch_number + sizeof(uint64_t);
    if (pp_py_R->read(buf, g, n) != 0) {
        return -1;
    }
    s = &pp_py_gils.gils[pp_py_gils.n];
    memset(s, 0, sizeof(*s));
    s->gil = g;
    s->locked = pp_py_int_at(buf, pp_py_L->gil_locked) == 1;
    s->holder_ts =
        s->locked ? pp_py_ptr_at(buf, pp_py_L->gil_last_holder) : NULL;
    memcpy(&s->switch_number, buf + pp_py_L->gil_switch_number,
           sizeof(s->switch_number));
    s->waiters = wrefs_ok ? cond_waiters(buf + pp_py_L->gil_cond) : -1;
    return pp_py_gils.n++;
}

/* The GIL threads of interp wait for (read under HEAD_LOCK). */
int pp_py_gil_of_interp(const void *interp)
{
    if (pp_py_L->runtime_gil) {
        return gil_index(pp_py_L->runtime_gil);
    }
    return gil_index(
        (const void *)pp_py_word_in_place(interp, pp_py_L->interp_gil));
}

/* ------------------------------------------------------------ interface */

const pp_gil_tick_t *pp_py_gil_tick(void)
{
    return &pp_py_gils;
}

int pp_py_gil_marks_waiters(void)
{
    return pp_py_L && pp_py_L->ts_gil_requested != 0;
}

int pp_py_gil_blame_init(const char **why)
{
    pp_py_gil_blame = 0;
    pp_py_gils.n = 0;
    if (!pp_py_L || !pp_py_code_ready()) {
        *why = "the stack reader is not set up";
        return -1;
    }
    if (pp_py_layout_gil_check(why) != 0) {
        return -1;
    }
    wrefs_ok = cond_probe() == 0;
    if ((wrefs_ok
             ? pp_py_L->gil_cond + wrefs_at + sizeof(uint32_t)
             : pp_py_L->gil_switch_number + sizeof(uint64_t)) > GIL_READ_MAX) {
        *why = "the GIL struct is larger than the reader's buffer";
        return -1;
    }
    pp_py_gil_blame = 1;
    return 0;
}
