/* pp_u64map.c: the open-addressing map u64 -> u32 of the profiles, the
 * trees and the exports (see pp_u64map.h).  Linear probing over a power
 * of two; keys are stored + 1 so that 0 marks an empty slot.
 */
#include <stdlib.h>
#include <string.h>

#include "pp_u64map.h"

int pp_u64map_init(pp_u64map_t *m, uint32_t want)
{
    m->cap = 16;
    m->used = 0;
    while (m->cap < want * 2 && m->cap < (1u << 30)) {
        m->cap *= 2;
    }
    m->keys = calloc(m->cap, sizeof(uint64_t));
    m->vals = calloc(m->cap, sizeof(uint32_t));
    return m->keys && m->vals ? 0 : -1;
}

void pp_u64map_free(pp_u64map_t *m)
{
    free(m->keys);
    free(m->vals);
    m->keys = NULL;
    m->vals = NULL;
}

static uint32_t hash64(uint64_t key)
{
    return (uint32_t)((key * 0x9e3779b97f4a7c15ULL) >> 32);
}

/* Double the table; on failure the map stays as it was. */
static int u64map_grow(pp_u64map_t *m)
{
    uint64_t *keys, *old_keys = m->keys;
    uint32_t *vals, *old_vals = m->vals;
    uint32_t i, cap, old_cap = m->cap;

    if (old_cap >= (1u << 30)) {
        return -1;
    }
    cap = old_cap * 2;
    keys = calloc(cap, sizeof(uint64_t));
    vals = calloc(cap, sizeof(uint32_t));
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return -1;
    }
    for (i = 0; i < old_cap; i++) {
        if (old_keys[i]) {
            uint32_t h = hash64(old_keys[i] - 1);
            while (keys[h & (cap - 1)]) {
                h++;
            }
            keys[h & (cap - 1)] = old_keys[i];
            vals[h & (cap - 1)] = old_vals[i];
        }
    }
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    free(old_keys);
    free(old_vals);
    return 0;
}

uint32_t *pp_u64map_get(pp_u64map_t *m, uint64_t key, uint32_t val)
{
    uint32_t h, i;

    if ((uint64_t)m->used * 10 >= (uint64_t)m->cap * 7 && u64map_grow(m)) {
        /* cannot grow: look up only, while there is an empty slot */
        if (m->used + 1 >= m->cap) {
            return NULL;
        }
    }
    h = hash64(key);
    for (i = 0; i < m->cap; i++) {
        uint32_t at = (h + i) & (m->cap - 1);
        if (m->keys[at] == key + 1) {
            return &m->vals[at];
        }
        if (m->keys[at] == 0) {
            m->keys[at] = key + 1;
            m->vals[at] = val;
            m->used++;
            return &m->vals[at];
        }
    }
    return NULL;
}

uint32_t *pp_u64map_find(const pp_u64map_t *m, uint64_t key)
{
    uint32_t h = hash64(key), i;

    for (i = 0; i < m->cap; i++) {
        uint32_t at = (h + i) & (m->cap - 1);
        if (m->keys[at] == key + 1) {
            return &m->vals[at];
        }
        if (m->keys[at] == 0) {
            return NULL;
        }
    }
    return NULL;
}

void pp_u64map_clear(pp_u64map_t *m)
{
    if (m->keys) {
        memset(m->keys, 0, (size_t)m->cap * sizeof(uint64_t));
    }
    m->used = 0;
}
