/* pp_grow.c: capacity doubling for the growable arrays of the profile,
 * the tree and the exports (see pp_grow.h).
 */
#include <stdlib.h>
#include <string.h>

#include "pp_grow.h"

void *pp_grow(void *v, size_t *cap, size_t need, size_t elem, size_t first,
              size_t max, int zero)
{
    size_t ncap = *cap ? *cap : (first ? first : 1);
    char *nv;

    if (need <= *cap) {
        return v;
    }
    if (need > max || elem == 0) {
        return NULL;
    }
    while (ncap < need) {
        ncap = ncap > max / 2 ? max : ncap * 2;
    }
    if (ncap > max) {
        ncap = max;
    }
    if (ncap > SIZE_MAX / elem) {
        return NULL;
    }
    nv = realloc(v, ncap * elem);
    if (!nv) {
        return NULL;
    }
    if (zero) {
        memset(nv + *cap * elem, 0, (ncap - *cap) * elem);
    }
    *cap = ncap;
    return nv;
}

void *pp_grow32(void *v, uint32_t *cap, size_t need, size_t elem, size_t first,
                size_t max, int zero)
{
    size_t c = *cap;
    void *nv = pp_grow(v, &c, need, elem, first,
                       max < UINT32_MAX ? max : UINT32_MAX, zero);

    if (nv) {
        *cap = (uint32_t)c;
    }
    return nv;
}
