/* classify_cost.c: what the system calls behind one sample's
 * classification cost the sampler thread, warm and cold.
 *
 * Classifying a sample (pp_sampler.c) reads the thread's CPU clock
 * (clock_gettime on its pthread CPU clock), often its wait channel
 * (/proc/self/task/TID/wchan), and once a tick the sampler checks that
 * its SIGSEGV handler is still installed (sigaction with no new action).
 * This program times each of those calls, made from one thread against
 * a thread that burns CPU, with GAP microseconds of sleep before each
 * round: 0 is the calls back to back (what a loop over them measures),
 * 1000 and 10000 the sampler at 1 ms and 10 ms, waking with its caches
 * cold while BURNERS threads touch 64 MB between its wake-ups.  Prints
 * the median and 90th percentile of each call, in nanoseconds of wall
 * time (the calls do not block: wall is what they cost the sampler).
 *
 *   make build/classify_cost
 *   build/classify_cost [ROUNDS [BURNERS]] [GAP...]   # 400 2 0 1000 10000
 *
 * A benchmark, not a test: nothing here fails.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define TOUCHED (64u << 20)
#define MAX_BURNERS 16

static unsigned char *touched;
static atomic_int burner_tid;
static atomic_int stop;

static void *burn(void *arg)
{
    size_t i = 0;

    (void)arg;
    atomic_store(&burner_tid, (int)syscall(SYS_gettid));
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        touched[(i * 4099) % TOUCHED]++;
        i++;
    }
    return NULL;
}

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? -1 : x > y;
}

static void report(const char *what, int64_t *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_i64);
    printf("  %-24s p50 %6lld ns   p90 %6lld ns\n", what, (long long)v[n / 2],
           (long long)v[n * 9 / 10]);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 400;
    int burners = argc > 2 ? atoi(argv[2]) : 2;
    static const int default_gaps[] = {0, 1000, 10000};
    pthread_t th[MAX_BURNERS];
    clockid_t cpu_clock;
    char path[64], buf[64];
    int64_t *clk, *wch, *sig;
    int fd, g, i, ngaps = argc > 3 ? argc - 3 : 3;

    if (rounds < 10 || burners < 1 || burners > MAX_BURNERS) {
        fprintf(stderr, "usage: %s [ROUNDS>=10 [BURNERS 1-%d]] [GAP_US...]\n",
                argv[0], MAX_BURNERS);
        return 2;
    }
    touched = calloc(TOUCHED, 1);
    clk = calloc((size_t)rounds, sizeof(*clk));
    wch = calloc((size_t)rounds, sizeof(*wch));
    sig = calloc((size_t)rounds, sizeof(*sig));
    if (!touched || !clk || !wch || !sig) {
        perror("calloc");
        return 1;
    }
    for (i = 0; i < burners; i++) {
        if (pthread_create(&th[i], NULL, burn, NULL) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    while (!atomic_load(&burner_tid)) {
        usleep(1000);
    }
    usleep(100000);
    /* the last burner's clock and wait channel, as the sampler reads a
     * request thread's */
    if (pthread_getcpuclockid(th[burners - 1], &cpu_clock) != 0) {
        perror("pthread_getcpuclockid");
        return 1;
    }
    snprintf(path, sizeof(path), "/proc/self/task/%d/wchan",
             atomic_load(&burner_tid));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    printf("classify_cost: %d rounds, %d burner thread(s)\n", rounds, burners);
    for (g = 0; g < ngaps; g++) {
        int gap = argc > 3 ? atoi(argv[3 + g]) : default_gaps[g];

        for (i = 0; i < rounds; i++) {
            struct timespec ts;
            struct sigaction sa;
            int64_t t0, t1, t2, t3;

            if (gap > 0) {
                usleep((useconds_t)gap);
            }
            t0 = now_ns();
            clock_gettime(cpu_clock, &ts);
            t1 = now_ns();
            if (pread(fd, buf, sizeof(buf), 0) < 0) {
                perror("pread");
                return 1;
            }
            t2 = now_ns();
            sigaction(SIGSEGV, NULL, &sa);
            t3 = now_ns();
            clk[i] = t1 - t0;
            wch[i] = t2 - t1;
            sig[i] = t3 - t2;
        }
        printf("gap %d us:\n", gap);
        report("thread CPU clock", clk, rounds);
        report("wait channel pread", wch, rounds);
        report("sigaction query", sig, rounds);
    }
    atomic_store(&stop, 1);
    for (i = 0; i < burners; i++) {
        pthread_join(th[i], NULL);
    }
    return 0;
}
