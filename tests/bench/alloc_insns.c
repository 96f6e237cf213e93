/* alloc_insns.c: the instructions PyProfAllocations' hooks add to Python
 * code, on the Python the module is built for (embedded): a view of
 * tests/bench/app.py (render or alloc) called ITERS times as a profiled
 * request's thread would run it, with the hooks of pp_py_alloc.c on the
 * MEM and OBJ domains at MEAN bytes (0: no hooks).  For instruction
 * counts, run it under callgrind, which counts only workload():
 *
 *   make build/alloc_insns
 *   valgrind --tool=callgrind --toggle-collect=workload \
 *       build/alloc_insns MEAN ITERS VIEW        # 262144 50 render
 *
 * and compare MEAN 0 with the others (divide by ITERS for a request).
 * Without valgrind it prints CPU ms per call.  A benchmark, not a test.
 */
#include <Python.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pp_alloc.h"
#include "pp_py_alloc.h"
#include "pp_store.h"

static PyObject *view, *params;

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* What callgrind counts: ITERS calls of the view. */
__attribute__((noinline)) static void workload(int iters)
{
    int i;

    for (i = 0; i < iters; i++) {
        PyObject *r = PyObject_CallOneArg(view, params);
        if (!r) {
            PyErr_Print();
            exit(1);
        }
        Py_DECREF(r);
    }
}

int main(int argc, char **argv)
{
    uint64_t mean = argc > 1 ? strtoull(argv[1], NULL, 10) : 262144;
    int iters = argc > 2 ? atoi(argv[2]) : 50;
    const char *name = argc > 3 ? argv[3] : "render";
    const char *err = NULL, *why = NULL;
    pp_store_t *st = pp_store_create(64u << 20, 16, 16, &err);
    pp_req_info_t info;
    char code[512];
    PyObject *main_mod;
    uint64_t serial;
    double t0;
    int slot;

    if (!st) {
        fprintf(stderr, "store: %s\n", err);
        return 1;
    }
    Py_Initialize();
    snprintf(code, sizeof(code),
             "import runpy, sys\n"
             "sys.path.insert(0, 'tests/integration/apps')\n"
             "_g = runpy.run_path('tests/bench/app.py')\n"
             "view = _g['view_%s']\n"
             "params = {}\n"
             "for _ in range(3): view(params)\n",
             name);
    if (PyRun_SimpleString(code) != 0) {
        return 1;
    }
    main_mod = PyImport_AddModule("__main__");
    view = PyObject_GetAttrString(main_mod, "view");
    params = PyObject_GetAttrString(main_mod, "params");
    if (!view || !params) {
        return 1;
    }
    /* a request in flight on this thread: samples are charged to it and
     * read its stack, as in a served request */
    memset(&info, 0, sizeof(info));
    info.id = "bench";
    info.method = "GET";
    info.uri = "/app/x";
    info.vhost = "bench";
    info.pid = 1;
    info.tid = 1;
    info.location = pp_store_location_register(st, "/app", 10000);
    info.interval_us = 10000;
    info.max_depth = 128;
    slot = pp_store_claim(st, &info, 0);
    serial = pp_store_slot(st, slot)->rec.req.serial;
    if (mean && pp_py_alloc_install(st, mean, &why) != 0) {
        fprintf(stderr, "install: %s\n", why);
        return 1;
    }
    pp_alloc_begin(slot, serial);
    t0 = cpu_s();
    workload(iters);
    printf("%s, mean %llu: %.3f ms CPU per call (%d calls)\n", name,
           (unsigned long long)mean, (cpu_s() - t0) * 1e3 / iters, iters);
    pp_alloc_end(st, slot, serial);
    if (mean) {
        pp_record_t *rec = calloc(1, sizeof(*rec));
        if (rec && pp_store_read_record(&pp_store_slot(st, slot)->rec, rec)) {
            printf("estimated %llu bytes in %llu allocations per call, %u "
                   "samples in all\n",
                   (unsigned long long)(rec->req.alloc_bytes / iters),
                   (unsigned long long)(rec->req.alloc_count / iters),
                   rec->req.alloc_samples);
        }
        free(rec);
    }
    return 0;
}
