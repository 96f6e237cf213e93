/* pp_api_impl.h: how the glue wires pp_api.c up (not for pyext). */
#ifndef PP_API_IMPL_H
#define PP_API_IMPL_H

#include "pp_api.h"
#include "pp_store.h"

void pp_api_set_store(pp_store_t *st);
const pp_api_t *pp_api_table(void);

#endif
