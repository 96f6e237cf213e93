/* pp_api.h: the functions mod_pyprof lends to the "pyprof" CPython
 * extension (pyext/), found at run time with dlsym(RTLD_DEFAULT,
 * "pyprof_api"): Apache loads modules RTLD_GLOBAL, and mod_wsgi's daemon
 * processes are forks of the Apache parent, so the module and the store it
 * mapped are already in their address space.
 *
 * A plain C table with a version and its own size, so an extension built
 * against an older header can tell what it may call.  Called from Python
 * (GIL held) except where noted; nothing here calls back into Python.
 */
#ifndef PP_API_H
#define PP_API_H

#include <stddef.h>
#include <stdint.h>

#define PP_API_VERSION 1
#define PP_API_SYMBOL "pyprof_api"

typedef struct pp_api {
    uint32_t version;
    uint32_t size; /* sizeof(pp_api_t) of the module */
    /* is there a store (some PyProfSample configured)? */
    int (*attached)(void);
    /* start this process' sampler (idempotent); 0 on success */
    int (*sampler_start)(void);
    /* stop and join it; call WITHOUT the GIL (the sampler may be waiting
     * for it); 0 if it stopped within timeout_ms */
    int (*sampler_stop)(int timeout_ms);
    int (*sampler_running)(void);
    /* daemon mode: adopt the in-flight request `id` that an Apache child
     * claimed, and register the calling thread as running it.  Slot, or -1
     * when the request is not being profiled. */
    int (*daemon_begin)(const char *id, const char *process_group,
                        const char *app_group);
    void (*daemon_end)(int slot);
    /* the request the calling thread serves: 1 and its slot, serial and
     * id, or 0 */
    int (*current)(int *slot, uint64_t *serial, char *id, size_t idcap);
    /* exact timings inside a request; begin returns a handle (0: none) */
    uint32_t (*segment_begin)(int slot, uint64_t serial, const char *name,
                              const char *detail);
    void (*segment_end)(int slot, uint64_t serial, uint32_t segment);
} pp_api_t;

#endif
