/* pp_store_int.h: what the pp_store*.c files share and nothing else may
 * use: layout constants, accessors of the tables behind the header's
 * offsets, the record's sequence counter, string copies, and the slot
 * write token (pp_store_token.c).
 *
 * Offsets and counts are read only from the header's process-private
 * part (see pp_store.h).  Everything else is shared memory that another
 * process may have left half-written, or written on purpose (an
 * application can write the whole mapping), so nothing read back from it
 * is used as an index, count or time without a range check.  No httpd or
 * Python header.
 */
#ifndef PP_STORE_INT_H
#define PP_STORE_INT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pp_store.h"

#define ALIGN64(x) (((x) + 63u) & ~(uint64_t)63u)
#define ARENA_UNIT 8u
#define PROBE_LIMIT 64 /* probes before an intern table counts as full */

/* minimum entries of the intern tables in the smallest store */
#define MIN_FRAMES 1024u
#define MIN_NODES 4096u
#define MIN_AGG 4096u
#define MIN_EPOCH 256u
#define MIN_ARENA ((uint64_t)256 * 1024)

static inline uint64_t pp_store_mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* ---- the tables behind the private header's offsets ---- */

static inline _Atomic uint64_t *pp_store_frame_table(const pp_store_t *st)
{
    return (_Atomic uint64_t *)((char *)st + st->off_frames);
}

static inline _Atomic uint64_t *pp_store_node_table(const pp_store_t *st)
{
    return (_Atomic uint64_t *)((char *)st + st->off_nodes);
}

static inline char *pp_store_arena(const pp_store_t *st)
{
    return (char *)st + st->off_arena;
}

static inline _Atomic uint64_t *pp_store_epoch_stamps(const pp_store_t *st)
{
    return (_Atomic uint64_t *)((char *)st + st->off_epoch_stamps);
}

static inline pp_agg_entry_t *pp_store_epoch_table(const pp_store_t *st,
                                                   uint32_t i)
{
    return (pp_agg_entry_t *)((char *)st + st->off_epochs) +
           (uint64_t)i * st->nepoch;
}

/* Slot idx, or NULL if out of range (pp_store_slot, inlined). */
static inline pp_slot_t *pp_store_slot_at(pp_store_t *st, int idx)
{
    if (!st || idx < 0 || (uint32_t)idx >= st->nslots) {
        return NULL;
    }
    return (pp_slot_t *)((char *)st + st->off_slots) + idx;
}

/* Frame text in the arena: u32 total length, u32 line, function NUL file
 * NUL.  Both names are cut at PP_FRAME_TEXT_MAX bytes. */
typedef struct frame_text {
    uint32_t len;
    uint32_t line;
    char text[];
} frame_text_t;

/* The text at arena unit `unit` (1-based), or NULL if it does not lie
 * inside the arena with a plausible length. */
static inline const frame_text_t *pp_store_frame_text_at(const pp_store_t *st,
                                                         uint64_t unit)
{
    uint64_t off;
    const frame_text_t *t;

    if (unit == 0) {
        return NULL;
    }
    off = (unit - 1) * ARENA_UNIT;
    if (off + sizeof(frame_text_t) > st->arena_size) {
        return NULL;
    }
    t = (const frame_text_t *)(pp_store_arena(st) + off);
    if (t->len < 2 || t->len > 2 * PP_FRAME_TEXT_MAX + 2 ||
        off + sizeof(frame_text_t) + t->len > st->arena_size) {
        return NULL;
    }
    return t;
}

/* ---- records ---- */

static inline void pp_rec_write_begin(pp_record_t *rec)
{
    uint32_t s = atomic_load_explicit(&rec->seq, memory_order_relaxed);
    /* an odd value left by a writer that died is simply carried on */
    atomic_store_explicit(&rec->seq, (s | 1u) + ((s & 1u) ? 2u : 0u),
                          memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

static inline void pp_rec_write_end(pp_record_t *rec)
{
    uint32_t s = atomic_load_explicit(&rec->seq, memory_order_relaxed);
    atomic_store_explicit(&rec->seq, s + 1, memory_order_release);
}

/* One sample into rec, whose slot's token the caller holds
 * (pp_store_sample.c; the sampler's entry point is pp_store_sample). */
void pp_store_record_sample(pp_store_t *st, pp_record_t *rec, uint32_t node,
                            int64_t now_us, uint64_t weight_us, uint64_t cpu_us,
                            int how);
/* Add to the entry of key in an aggregate table of cap entries (a power
 * of two), taking a free one for it: 0, or -1 if there was no room. */
int pp_agg_add(pp_agg_entry_t *tab, uint32_t cap, uint64_t key, uint64_t count,
               uint64_t weight_us, uint64_t cpu_us);
/* The same with the GIL's holder of a GIL-wait sample (NULL: none). */
void pp_store_record_sample_gil(pp_store_t *st, pp_record_t *rec, uint32_t node,
                                int64_t now_us, uint64_t weight_us,
                                uint64_t cpu_us, int how,
                                const pp_gil_holder_t *holder);

/* The entry of stack `node` in a record's open-addressed table; with
 * create, a free entry is taken for it.  NULL if absent (or full). */
static inline pp_stack_count_t *pp_record_stack_entry(pp_record_t *rec,
                                                      uint32_t node, int create)
{
    uint32_t h = (uint32_t)pp_store_mix64(node), i;

    for (i = 0; i < PP_STACKS_MAX; i++) {
        pp_stack_count_t *e = &rec->stacks[(h + i) & (PP_STACKS_MAX - 1)];
        if (e->node == node) {
            return e;
        }
        if (e->node == 0) {
            if (!create) {
                return NULL;
            }
            e->node = node;
            rec->req.nstacks++;
            return e;
        }
    }
    return NULL;
}

/* Where to cut s, of which only the first n bytes are kept, so the kept
 * part never ends inside a UTF-8 sequence: when s[n] is a continuation
 * byte, step back to the sequence's lead byte and drop it too. */
static inline size_t pp_utf8_cut(const char *s, size_t n)
{
    size_t k = n;

    while (k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80) {
        k--;
    }
    return k;
}

/* Copy at most cap - 1 bytes, never ending inside a UTF-8 sequence. */
static inline void pp_copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strnlen(src, cap - 1) : 0;

    if (n == cap - 1 && src[n] != '\0') {
        n = pp_utf8_cut(src, n);
    }
    if (n) {
        memcpy(dst, src, n);
    }
    dst[n] = '\0';
}

/* ---- the slot write token (pp_store_token.c) ---- */

/* Take the slot's token: a compare-and-swap of this thread's id, with a
 * bounded spin-then-yield wait for a live holder (see pp_store_token.c).
 * 1 when taken; 0 after the wait gave up, or on a nested take by the
 * holder itself. */
int pp_slot_token_take(pp_slot_t *slot);
/* The same for a write that is lost without the token: counted in
 * writes_dropped. */
int pp_slot_token_take_counted(pp_store_t *st, pp_slot_t *slot);
/* Take slot idx's token for a write on behalf of request `serial`; NULL
 * (and not taken) if the slot is not active, holds another request, is
 * finished, or (with sampling) is sampled by another process. */
pp_slot_t *pp_slot_token_take_for(pp_store_t *st, int idx, uint64_t serial,
                                  int sampling);

static inline void pp_slot_token_release(pp_slot_t *slot)
{
    atomic_store_explicit(&slot->token, 0, memory_order_release);
}

#endif
