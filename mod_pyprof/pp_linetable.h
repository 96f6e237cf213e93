/* pp_linetable.h: CPython 3.11's location table (co_linetable), decoded
 * from a copy of its bytes by the GIL-free reader (pp_frames_py311.c).
 *
 * The bytes come from another thread's memory without the GIL, so they
 * may be torn or garbage: the decoder never reads past `n`, never
 * overflows, and gives up (-1) on what the format does not allow.  On a
 * well-formed table it agrees with PyCode_Addr2Line(): see
 * tests/unit/test_linetable.c, which checks it against CPython's own
 * co_lines() for every code object of several stdlib modules.
 */
#ifndef PP_LINETABLE_H
#define PP_LINETABLE_H

#include <stddef.h>
#include <stdint.h>

/* The line of code unit `unit` (instruction index, not byte offset):
 * firstlineno when unit < 0 (as PyCode_Addr2Line); -1 when the unit's
 * entry has no location, when the unit is past the table, or when the
 * table is malformed or its line leaves [0, INT32_MAX] before the unit. */
int pp_linetable_line(const uint8_t *p, size_t n, int firstlineno,
                      int64_t unit);

#endif
