/* pp_store_intern.c: the intern tables of frames (function, file, line)
 * and stack nodes (parent node, frame), and the arena that holds the
 * frames' text.
 *
 * Called by sampler threads (the stack walk interns what it finds), and by
 * the parent at config time (the special frames at create, the kept
 * traces' stacks at a renewal).  Insert-only, shared by every process:
 * an entry is published with one compare-and-swap after its bytes are
 * written, ids are never reused, a full table answers 0 (counted).  No
 * lock, no wait, no allocation, never touches Python or httpd.
 */
#include <stdint.h>
#include <string.h>

#include "pp_hash.h"
#include "pp_store_int.h"

static int frame_equal(const frame_text_t *t, const char *func, size_t fl,
                       const char *file, size_t fil, uint32_t line)
{
    return t->line == line && t->len == fl + fil + 2 &&
           memcmp(t->text, func, fl) == 0 && t->text[fl] == '\0' &&
           memcmp(t->text + fl + 1, file, fil) == 0;
}

/* Claim `units` arena units at *at, only if they fit.  Never a fetch_add
 * undone by a fetch_sub when it did not fit: between the two, another
 * writer (another process) could be handed units that a third one was
 * then handed again, and two frames' texts overlapped (one frame's name
 * over another's file; found by the GIL-free torture under ASan). */
static int arena_claim(pp_store_t *st, uint64_t units, uint64_t *at)
{
    uint64_t used = atomic_load(&st->arena_used);

    do {
        if ((used + units) * ARENA_UNIT > st->arena_size ||
            used + 1 > 0xffffffffULL) {
            return -1;
        }
    } while (
        !atomic_compare_exchange_weak(&st->arena_used, &used, used + units));
    *at = used;
    return 0;
}

uint32_t pp_store_intern_frame(pp_store_t *st, const char *func, size_t funclen,
                               const char *file, size_t filelen, uint32_t line)
{
    _Atomic uint64_t *tab = pp_store_frame_table(st);
    uint32_t mask = st->nframes - 1, i;
    uint64_t h, unit = 0;

    /* a NUL inside a name would split it: cut there; a name longer than
     * PP_FRAME_TEXT_MAX is cut on a character boundary */
    funclen = strnlen(func, funclen > PP_FRAME_TEXT_MAX ? PP_FRAME_TEXT_MAX + 1
                                                        : funclen);
    filelen = strnlen(file, filelen > PP_FRAME_TEXT_MAX ? PP_FRAME_TEXT_MAX + 1
                                                        : filelen);
    if (funclen > PP_FRAME_TEXT_MAX) {
        funclen = pp_utf8_cut(func, PP_FRAME_TEXT_MAX);
    }
    if (filelen > PP_FRAME_TEXT_MAX) {
        filelen = pp_utf8_cut(file, PP_FRAME_TEXT_MAX);
    }
    h = pp_fnv1a64(PP_FNV64_BASIS, func, funclen);
    h = pp_fnv1a64(h ^ 0xff, file, filelen);
    h = pp_store_mix64(h ^ line);

    for (i = 0; i < PROBE_LIMIT; i++) {
        uint32_t idx = ((uint32_t)h + i) & mask;
        uint64_t v = atomic_load_explicit(&tab[idx], memory_order_acquire);

        if (v == 0) {
            uint64_t expect = 0;
            if (!unit) {
                uint64_t need = sizeof(frame_text_t) + funclen + filelen + 2;
                uint64_t units = (need + ARENA_UNIT - 1) / ARENA_UNIT;
                uint64_t at;
                frame_text_t *t;

                if (arena_claim(st, units, &at) != 0) {
                    break;
                }
                t = (frame_text_t *)(pp_store_arena(st) + at * ARENA_UNIT);
                t->len = (uint32_t)(funclen + filelen + 2);
                t->line = line;
                memcpy(t->text, func, funclen);
                t->text[funclen] = '\0';
                memcpy(t->text + funclen + 1, file, filelen);
                t->text[funclen + 1 + filelen] = '\0';
                unit = at + 1;
            }
            if (atomic_compare_exchange_strong(&tab[idx], &expect,
                                               ((h >> 32) << 32) | unit)) {
                return idx + 1;
            }
            v = expect; /* lost the race: compare with the winner */
        }
        if ((v >> 32) == (h >> 32)) {
            const frame_text_t *t =
                pp_store_frame_text_at(st, v & 0xffffffffULL);
            if (t && frame_equal(t, func, funclen, file, filelen, line)) {
                return idx + 1; /* our arena bytes, if any, stay unused */
            }
        }
    }
    atomic_fetch_add(&st->c.frames_full, 1);
    return 0;
}

uint32_t pp_store_intern_node(pp_store_t *st, uint32_t parent, uint32_t frame)
{
    _Atomic uint64_t *tab = pp_store_node_table(st);
    uint64_t key = ((uint64_t)parent << 32) | frame;
    uint32_t mask = st->nnodes - 1, i;
    uint32_t h = (uint32_t)pp_store_mix64(key);

    if (frame == 0) {
        return 0;
    }
    for (i = 0; i < PROBE_LIMIT; i++) {
        uint32_t idx = (h + i) & mask;
        uint64_t v = atomic_load_explicit(&tab[idx], memory_order_acquire);
        if (v == 0) {
            uint64_t expect = 0;
            if (atomic_compare_exchange_strong(&tab[idx], &expect, key)) {
                return idx + 1;
            }
            v = expect;
        }
        if (v == key) {
            return idx + 1;
        }
    }
    atomic_fetch_add(&st->c.nodes_full, 1);
    return 0;
}

uint32_t pp_store_intern_stack(pp_store_t *st, const uint32_t *frames,
                               uint32_t depth, int truncated)
{
    uint32_t node = 0;
    int i;

    if (truncated) {
        node = pp_store_intern_node(st, 0, st->frame_truncated);
        if (!node) {
            return 0;
        }
    }
    for (i = (int)depth - 1; i >= 0; i--) {
        node = pp_store_intern_node(st, node, frames[i]);
        if (!node) {
            return 0;
        }
    }
    return node;
}

uint32_t pp_store_intern_stack_memo(pp_store_t *st, pp_stack_memo_t *memo,
                                    const uint32_t *frames, uint32_t depth,
                                    int truncated)
{
    uint32_t node = 0, same = 0, lim, j;

    if (!memo) {
        return pp_store_intern_stack(st, frames, depth, truncated);
    }
    if (memo->st != st || memo->truncated != truncated ||
        memo->depth > PP_STACK_MEMO_DEPTH) {
        memo->st = st;
        memo->truncated = truncated;
        memo->depth = 0;
    }
    if (truncated) {
        node = pp_store_intern_node(st, 0, st->frame_truncated);
        if (!node) {
            return 0;
        }
    }
    /* frames is leaf first, the memo root first */
    lim = depth < memo->depth ? depth : memo->depth;
    while (same < lim && memo->frames[same] == frames[depth - 1 - same]) {
        same++;
    }
    if (same) {
        node = memo->nodes[same - 1];
    }
    for (j = same; j < depth; j++) {
        node = pp_store_intern_node(st, node, frames[depth - 1 - j]);
        if (!node) {
            memo->depth = j < PP_STACK_MEMO_DEPTH ? j : PP_STACK_MEMO_DEPTH;
            return 0;
        }
        if (j < PP_STACK_MEMO_DEPTH) {
            memo->frames[j] = frames[depth - 1 - j];
            memo->nodes[j] = node;
        }
    }
    memo->depth = depth < PP_STACK_MEMO_DEPTH ? depth : PP_STACK_MEMO_DEPTH;
    return node;
}
