/* sample_cost.c: what one steady-state sample costs the sampler thread,
 * walk and store, on the Python the module is built for (embedded).
 *
 * N Python threads each recurse DEPTH frames and then spin in a pure-
 * Python loop; this program, GIL-free like the module's default sampler,
 * then takes K samples of all N threads, each exactly as the sampler's
 * tick does it after collecting its due requests and before classifying
 * them: pp_py_walk_nogil(), then per thread pp_store_intern_stack_memo()
 * and pp_store_sample() into a store of its own.  Classification (the CPU
 * clock and wait-channel reads) is not part of it.  Prints the sampler-
 * thread CPU per sample; for instructions by function, run it under
 * callgrind, which counts only one_tick() and what it calls:
 *
 *   make build/sample_cost
 *   build/sample_cost [THREADS [DEPTH [TICKS]]]      # 8 30 20000
 *   valgrind --tool=callgrind --toggle-collect=one_tick \
 *       build/sample_cost 8 30 200
 *
 * (divide callgrind's total by THREADS x TICKS).  --same keeps every
 * thread in one unchanging stack (a loop in the innermost frame that
 * calls nothing) instead of one that calls a small function in its loop;
 * --gap=US sleeps that long between ticks (the sampler at 10 ms, say,
 * finds its caches cold) instead of yielding every 16 ticks; --syscall
 * copies with process_vm_readv (PyProfSampler nogil syscall) instead of
 * the default guarded memcpy.
 * A benchmark, not a test: nothing here fails.
 */
#include <Python.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pp_frames.h"
#include "pp_store.h"
#include "pp_store_testing.h"

#define THREADS_MAX 64

static pp_store_t *st;
static pp_walk_target_t targets[THREADS_MAX];
static int slot_of[THREADS_MAX];
static uint64_t serial_of[THREADS_MAX];
static pp_stack_memo_t memos[THREADS_MAX];
static uint64_t torn, missing;

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One tick's walk and store for every thread (what callgrind counts). */
__attribute__((noinline)) static void one_tick(int n, int64_t now_us)
{
    int i;

    pp_py_walk_nogil(st, targets, n);
    for (i = 0; i < n; i++) {
        pp_walk_target_t *t = &targets[i];
        uint32_t node;

        if (t->torn) {
            torn++;
            continue;
        }
        if (!t->found) {
            missing++;
            continue;
        }
        node = pp_store_intern_stack_memo(st, &memos[i], t->frames, t->depth,
                                          t->truncated);
        pp_store_sample(st, slot_of[i], serial_of[i], node, now_us, 1000, 1000,
                        PP_SAMPLE_ON_CPU);
    }
}

static const char *app =
    "import threading, time\n"
    "ids = []\n"
    "stop = False\n"
    "ready = threading.Semaphore(0)\n"
    "def leaf(x):\n"
    "    return x + 1\n"
    "def spin_calls():\n"
    "    x = 0\n"
    "    while not stop:\n"
    "        x = leaf(x)\n"
    "def spin_same():\n"
    "    x = 0\n"
    "    while not stop:\n"
    "        x += 1\n"
    "def recurse(d, same):\n"
    "    if d <= 1:\n"
    "        ids.append((threading.get_ident(), threading.get_native_id()))\n"
    "        ready.release()\n"
    "        return spin_same() if same else spin_calls()\n"
    "    return recurse(d - 1, same)\n"
    "def start(n, depth, same):\n"
    "    for _ in range(n):\n"
    "        threading.Thread(target=recurse, args=(depth, same)).start()\n"
    "    for _ in range(n):\n"
    "        ready.acquire()\n";

int main(int argc, char **argv)
{
    const char *err = NULL;
    int argi = 1, same = 0, gap_us = 0, nthreads = 8, depth = 30;
    int copy = PP_PY_COPY_GUARDED;
    int ticks = 20000;
    int i, k;
    char cmd[128];
    PyObject *mod, *ids;
    PyThreadState *save;
    pp_req_info_t info;
    double c0, c1;

    for (; argi < argc && argv[argi][0] == '-'; argi++) {
        if (strcmp(argv[argi], "--same") == 0) {
            same = 1;
        }
        else if (strcmp(argv[argi], "--syscall") == 0) {
            copy = PP_PY_COPY_SYSCALL;
        }
        else if (strncmp(argv[argi], "--gap=", 6) == 0) {
            gap_us = atoi(argv[argi] + 6);
        }
    }
    if (argc > argi) {
        nthreads = atoi(argv[argi]);
    }
    if (argc > argi + 1) {
        depth = atoi(argv[argi + 1]);
    }
    if (argc > argi + 2) {
        ticks = atoi(argv[argi + 2]);
    }
    if (nthreads < 1 || nthreads > THREADS_MAX || depth < 1 || ticks < 1) {
        fprintf(stderr,
                "usage: %s [--same] [--syscall] [--gap=US] "
                "[THREADS [DEPTH [TICKS]]]\n",
                argv[0]);
        return 1;
    }
    st = pp_store_create(64ULL << 20, THREADS_MAX, 16, &err);
    if (!st) {
        fprintf(stderr, "store: %s\n", err ? err : "?");
        return 1;
    }
    pp_testing_req_info(&info, "bench", "/app/x", "h:80",
                        pp_store_location_register(st, "/app", 1000), 1000,
                        PP_DEPTH_LIMIT, 1700000000000000LL);

    Py_InitializeEx(0);
    if (PyRun_SimpleString(app) != 0) {
        return 1;
    }
    snprintf(cmd, sizeof(cmd), "start(%d, %d, %s)\n", nthreads, depth,
             same ? "True" : "False");
    if (PyRun_SimpleString(cmd) != 0) {
        return 1;
    }
    mod = PyImport_AddModule("__main__");
    ids = PyObject_GetAttrString(mod, "ids");
    for (i = 0; i < nthreads; i++) {
        PyObject *pair = PyList_GetItem(ids, i);
        targets[i].thread_ident =
            PyLong_AsUnsignedLong(PyTuple_GetItem(pair, 0));
        targets[i].native_tid = (pid_t)PyLong_AsLong(PyTuple_GetItem(pair, 1));
        targets[i].max_depth = PP_DEPTH_LIMIT;
        slot_of[i] = pp_store_claim(st, &info, i);
        serial_of[i] = pp_store_slot(st, slot_of[i])->rec.req.serial;
    }
    Py_DECREF(ids);

    save = PyEval_SaveThread();
    if (pp_py_nogil_init(copy) != 0) {
        fprintf(stderr, "pp_py_nogil_init failed\n");
        return 1;
    }
    if (pp_py_nogil_copy() != copy) {
        fprintf(stderr, "no guarded copies here (a sanitizer build?)\n");
        return 1;
    }
    /* warm: names and frames interned, caches filled */
    for (k = 0; k < 20; k++) {
        one_tick(nthreads, info.start_us);
        usleep(1000);
    }
    torn = missing = 0;
    c0 = cpu_s();
    for (k = 0; k < ticks; k++) {
        one_tick(nthreads, info.start_us + k);
        /* let the threads run on between ticks, as between real ones */
        if (gap_us > 0) {
            usleep((useconds_t)gap_us);
        }
        else if (k % 16 == 15) {
            sched_yield();
        }
    }
    c1 = cpu_s();
    printf("%d threads x %d frames (%s, %s), %d ticks: %.2f us sampler CPU "
           "per sample (walk + intern + store), torn %llu, missing %llu\n",
           nthreads, depth, same ? "unchanging stacks" : "calling",
           copy == PP_PY_COPY_GUARDED ? "guarded copies" : "process_vm_readv",
           ticks, (c1 - c0) * 1e6 / ((double)ticks * nthreads),
           (unsigned long long)torn, (unsigned long long)missing);
    fflush(stdout);

    PyEval_RestoreThread(save);
    PyRun_SimpleString("stop = True\n"
                       "for t in threading.enumerate()[1:]: t.join()\n");
    Py_FinalizeEx();
    pp_store_destroy(st);
    return 0;
}
