/* pp_grow.h: the one way the profile, the tree and the exports make room
 * in a growable array (stacks, frames, nodes, tree nodes, the exports'
 * indexes and byte buffers): the capacity doubles from a first size until
 * it holds what is needed, bounded by a maximum and checked against size
 * overflow.  Heap memory (realloc); the caller owns the array.
 */
#ifndef PP_GROW_H
#define PP_GROW_H

#include <stddef.h>
#include <stdint.h>

/* Room for `need` elements of `elem` bytes in v, whose capacity is *cap.
 * If need > *cap the capacity doubles from `first` (or from *cap) until
 * it holds need, capped at `max`; with `zero`, the part added is zeroed.
 * Returns the array (moved or not) with *cap updated, or NULL if need >
 * max, the size would overflow or memory runs out (v and *cap are then as
 * they were). */
void *pp_grow(void *v, size_t *cap, size_t need, size_t elem, size_t first,
              size_t max, int zero);
/* The same for a capacity kept in 32 bits (max at most UINT32_MAX). */
void *pp_grow32(void *v, uint32_t *cap, size_t need, size_t elem, size_t first,
                size_t max, int zero);

#endif
