/* pp_py_alloc.h: the allocator hooks of PyProfAllocations (pp_py_alloc.c),
 * for the glue and pp_api.c, which include no Python header.
 */
#ifndef PP_PY_ALLOC_H
#define PP_PY_ALLOC_H

#include <stdint.h>

#include "pp_store.h"

/* Wrap the MEM and OBJ allocator domains of this process (once; a second
 * call does nothing), sampling every `mean` bytes into the accumulators
 * of pp_alloc.c.  The caller holds the GIL (pyprof's sampler_start in a
 * daemon).  0, or -1 and *why. */
int pp_py_alloc_install(pp_store_t *st, uint64_t mean, const char **why);
/* The same from a thread that does not hold the GIL (child_init, after
 * mod_wsgi initialised Python and before any worker thread runs): takes
 * it for the installation. */
int pp_py_alloc_install_ensure(pp_store_t *st, uint64_t mean, const char **why);
/* Whether this process's hooks are installed (they stay installed once
 * they are, sampling or passing through). */
int pp_py_alloc_installed(void);
/* Stop sampling: the hooks stay in the allocator chain (another hook may
 * wrap them) and only pass allocations through from now on; any thread,
 * no GIL needed.  Before Python is finalised (child exit). */
void pp_py_alloc_disable(void);

#endif
