/* pp_u64map.h: a small open-addressing hash map from 64-bit keys (any
 * value but UINT64_MAX) to 32-bit values, the one of pp_profile.c and
 * pp_export.c.  Heap memory (calloc); grows at 70% full; never shrinks.
 * Not thread-safe: one owner.
 */
#ifndef PP_U64MAP_H
#define PP_U64MAP_H

#include <stdint.h>

typedef struct pp_u64map {
    uint64_t *keys; /* key + 1; 0 = empty */
    uint32_t *vals;
    uint32_t cap; /* power of two */
    uint32_t used;
} pp_u64map_t;

/* Room for `want` keys before the first growth.  -1 on ENOMEM (free it
 * all the same). */
int pp_u64map_init(pp_u64map_t *m, uint32_t want);
void pp_u64map_free(pp_u64map_t *m);
/* Value slot for key, inserting `val` if absent (growing the table at
 * 70% full); NULL only when memory runs out.  A caller that passes a val
 * no present key has (a count, say) knows the key was new by it. */
uint32_t *pp_u64map_get(pp_u64map_t *m, uint64_t key, uint32_t val);
/* Look up without inserting; NULL if absent. */
uint32_t *pp_u64map_find(const pp_u64map_t *m, uint64_t key);
/* Empty it, keeping its table. */
void pp_u64map_clear(pp_u64map_t *m);

#endif
