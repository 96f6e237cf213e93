/* pp_store.c: layout, claim/finish, interning and readers of the shared
 * store (see pp_store.h).
 *
 * Never blocks for more than a bounded wait on a slot's token, never takes
 * a lock, never allocates on the heap, never touches Python or httpd.  The
 * layout (offsets, counts, divisors) is read only from the header's
 * process-private part; every index, count and time read back from the
 * shared part is range-checked before use: another process may have died
 * mid-write, or be hostile (an application can write the whole mapping).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sched.h>
#include <sys/time.h>
#include <time.h>

#include "pp_store.h"
#include "pp_hash.h"

#define ALIGN64(x) (((x) + 63u) & ~(uint64_t)63u)
#define ARENA_UNIT 8u
#define PROBE_LIMIT 64 /* probes before an intern table counts as full */

/* minimum entries of the intern tables in the smallest store */
#define MIN_FRAMES 1024u
#define MIN_NODES 4096u
#define MIN_AGG 4096u
#define MIN_EPOCH 256u
#define MIN_ARENA ((uint64_t)256 * 1024)

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    /* FNV-1a, 64 bit */
    while (n--) {
        h ^= *s++;
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint32_t pow2_floor(uint64_t x)
{
    uint32_t p = 1;
    while ((uint64_t)p * 2 <= x && p < (1u << 30)) {
        p *= 2;
    }
    return p;
}

/* ---- layout ---- */

static uint64_t layout_signature(void)
{
    uint64_t sig = 0xcbf29ce484222325ULL;
    const uint64_t parts[] = {
        sizeof(pp_store_t),  sizeof(pp_slot_t),       sizeof(pp_record_t),
        sizeof(pp_req_t),    sizeof(pp_location_t),   sizeof(pp_agg_entry_t),
        sizeof(pp_counters_t), PP_STACKS_MAX,         PP_HIST_BUCKETS,
        PP_MAX_LOCATIONS,    PP_FRAME_TEXT_MAX,       PP_STORE_VERSION};
    size_t i;

    for (i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        sig = (sig ^ parts[i]) * 0x100000001b3ULL;
    }
    return sig;
}

typedef struct layout {
    uint64_t off_locations, off_slots, off_traces, off_frames, off_nodes,
        off_agg, off_arena, end;
    uint64_t off_agg_slow, off_epochs, off_epoch_stamps;
    uint32_t nframes, nnodes, nagg, nagg_slow, nepoch;
    uint64_t arena_size;
} layout_t;

static uint32_t special_for(uint32_t keep)
{
    return keep / 4 > 4 ? keep / 4 : 4;
}

static uint32_t ring_records(uint32_t keep)
{
    return keep + special_for(keep) + PP_FAST_KEEP;
}

static uint64_t fixed_part(uint32_t nslots, uint32_t keep)
{
    uint64_t off = ALIGN64(sizeof(pp_store_t));
    off = ALIGN64(off + (uint64_t)PP_MAX_LOCATIONS * sizeof(pp_location_t));
    off = ALIGN64(off + (uint64_t)nslots * sizeof(pp_slot_t));
    off = ALIGN64(off + (uint64_t)ring_records(keep) * sizeof(pp_record_t));
    return off;
}

static uint64_t tables_size(uint32_t nframes, uint32_t nnodes, uint32_t nagg,
                            uint64_t arena)
{
    return ALIGN64((uint64_t)nframes * 8) + ALIGN64((uint64_t)nnodes * 8) +
           ALIGN64((uint64_t)nagg * sizeof(pp_agg_entry_t)) * 2 +
           ALIGN64((uint64_t)PP_EPOCHS * MIN_EPOCH * sizeof(pp_agg_entry_t)) +
           ALIGN64((uint64_t)PP_EPOCHS * 8) + ALIGN64(arena);
}

uint64_t pp_store_min_size(uint32_t nslots, uint32_t keep)
{
    return fixed_part(nslots, keep) +
           tables_size(MIN_FRAMES, MIN_NODES, MIN_AGG, MIN_ARENA);
}

static uint64_t place_tables(layout_t *l, uint64_t off)
{
    l->off_frames = off;
    off = ALIGN64(off + (uint64_t)l->nframes * 8);
    l->off_nodes = off;
    off = ALIGN64(off + (uint64_t)l->nnodes * 8);
    l->off_agg = off;
    off = ALIGN64(off + (uint64_t)l->nagg * sizeof(pp_agg_entry_t));
    l->off_agg_slow = off;
    off = ALIGN64(off + (uint64_t)l->nagg_slow * sizeof(pp_agg_entry_t));
    l->off_epochs = off;
    off = ALIGN64(off + (uint64_t)PP_EPOCHS * l->nepoch *
                            sizeof(pp_agg_entry_t));
    l->off_epoch_stamps = off;
    off = ALIGN64(off + (uint64_t)PP_EPOCHS * 8);
    l->off_arena = off;
    return off;
}

static int make_layout(uint64_t size, uint32_t nslots, uint32_t keep,
                       layout_t *l)
{
    uint64_t off = ALIGN64(sizeof(pp_store_t)), rest, tables_at;

    if (size < pp_store_min_size(nslots, keep)) {
        return -1;
    }
    l->off_locations = off;
    off = ALIGN64(off + (uint64_t)PP_MAX_LOCATIONS * sizeof(pp_location_t));
    l->off_slots = off;
    off = ALIGN64(off + (uint64_t)nslots * sizeof(pp_slot_t));
    l->off_traces = off;
    off = ALIGN64(off + (uint64_t)ring_records(keep) * sizeof(pp_record_t));
    rest = size - off;
    tables_at = off;
    /* Split what is left: a frame costs 8 bytes of table plus ~96 bytes of
     * text; nodes and aggregate entries are many more than frames. */
    l->nframes = pow2_floor(rest / 8 / 104);
    l->nnodes = pow2_floor(rest / 4 / 8);
    l->nagg = pow2_floor(rest / 5 / sizeof(pp_agg_entry_t));
    l->nagg_slow = l->nagg / 2;
    l->nepoch = pow2_floor(rest / 5 / PP_EPOCHS / sizeof(pp_agg_entry_t));
    if (l->nframes < MIN_FRAMES) {
        l->nframes = MIN_FRAMES;
    }
    if (l->nnodes < MIN_NODES) {
        l->nnodes = MIN_NODES;
    }
    if (l->nagg < MIN_AGG) {
        l->nagg = MIN_AGG;
    }
    if (l->nagg_slow < MIN_AGG) {
        l->nagg_slow = MIN_AGG;
    }
    if (l->nepoch < MIN_EPOCH) {
        l->nepoch = MIN_EPOCH;
    }
    /* rounding to powers of two can overshoot near the minimum: halve the
     * biggest table until the arena's minimum fits too */
    while ((off = place_tables(l, tables_at)) + MIN_ARENA > size) {
        /* the biggest table still above its minimum gives way */
        struct {
            uint32_t *n;
            uint32_t min;
            uint64_t bytes;
        } t[5] = {
            {&l->nepoch, MIN_EPOCH,
             (uint64_t)PP_EPOCHS * l->nepoch * sizeof(pp_agg_entry_t)},
            {&l->nagg, MIN_AGG, (uint64_t)l->nagg * sizeof(pp_agg_entry_t)},
            {&l->nnodes, MIN_NODES, (uint64_t)l->nnodes * 8},
            {&l->nagg_slow, MIN_AGG,
             (uint64_t)l->nagg_slow * sizeof(pp_agg_entry_t)},
            {&l->nframes, MIN_FRAMES, (uint64_t)l->nframes * 8}};
        int i, pick = -1;

        for (i = 0; i < 5; i++) {
            if (*t[i].n > t[i].min &&
                (pick < 0 || t[i].bytes > t[pick].bytes)) {
                pick = i;
            }
        }
        if (pick < 0) {
            return -1;
        }
        *t[pick].n /= 2;
    }
    l->arena_size = (size - off) & ~(uint64_t)(ARENA_UNIT - 1);
    l->end = off + l->arena_size;
    return 0;
}

static _Atomic uint64_t *frame_table(const pp_store_t *st)
{
    return (_Atomic uint64_t *)((char *)st + st->off_frames);
}

static _Atomic uint64_t *node_table(const pp_store_t *st)
{
    return (_Atomic uint64_t *)((char *)st + st->off_nodes);
}

static char *arena(const pp_store_t *st)
{
    return (char *)st + st->off_arena;
}

/* The nonce key from the kernel's random pool (time and pid as a last
 * resort: the nonce guards a form against cross-site posts together with
 * the Origin check, it protects no secret) */
static void make_nonce_key(unsigned char *out, size_t n)
{
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? read(fd, out, n) : -1;

    if (fd >= 0) {
        close(fd);
    }
    if (got != (ssize_t)n) {
        uint64_t a = mix64((uint64_t)wall_us()), b = mix64(a ^ getpid());
        size_t i;
        for (i = 0; i < n; i++) {
            out[i] = (unsigned char)((i & 8 ? b : a) >> (8 * (i & 7)));
        }
    }
}

static void nonce_of_window(const pp_store_t *st, int64_t window,
                            char out[PP_NONCE_LEN + 1])
{
    unsigned char msg[8], mac[PP_SHA256_LEN];
    int i;

    for (i = 0; i < 8; i++) {
        msg[i] = (unsigned char)((uint64_t)window >> (56 - 8 * i));
    }
    pp_hmac_sha256(st->nonce_key, sizeof(st->nonce_key), msg, sizeof(msg),
                   mac);
    pp_hash_hex(mac, sizeof(mac), out);
}

void pp_store_form_nonce(const pp_store_t *st, int64_t now_us,
                         char out[PP_NONCE_LEN + 1])
{
    nonce_of_window(st, now_us / PP_NONCE_WINDOW_US, out);
}

int pp_store_form_nonce_ok(const pp_store_t *st, const char *given,
                           int64_t now_us)
{
    char want[PP_NONCE_LEN + 1];
    int64_t w = now_us / PP_NONCE_WINDOW_US;
    int ok = 0, back;

    if (!given || strlen(given) != PP_NONCE_LEN) {
        return 0;
    }
    /* both windows compared, whatever the first gave: no timing hint */
    for (back = 0; back < 2; back++) {
        nonce_of_window(st, w - back, want);
        ok |= pp_hash_equal(given, want, PP_NONCE_LEN);
    }
    return ok;
}

pp_store_t *pp_store_create(uint64_t size, uint32_t nslots, uint32_t keep,
                            const char **err)
{
    layout_t l;
    pp_store_t *st;
    void *p;

    if (nslots == 0 || keep == 0 || make_layout(size, nslots, keep, &l)) {
        *err = "the memory budget is too small for the slots and kept "
               "traces";
        return NULL;
    }
    if (sysconf(_SC_PAGESIZE) <= 0 ||
        PP_STORE_PRIVATE_BYTES % sysconf(_SC_PAGESIZE) != 0) {
        *err = "the page size does not divide the store's 64 KiB private "
               "header";
        return NULL;
    }
    /* MAP_ANONYMOUS takes fd -1 (cppcheck's posix.cfg wants fd >= 0) */
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
             -1, 0); // cppcheck-suppress invalidFunctionArg
    if (p == MAP_FAILED) {
        *err = "mmap of the shared store failed";
        return NULL;
    }
    /* the layout part of the header: private to each process from its
     * fork on (see pp_store.h), so no other process can change the
     * offsets and counts this one computes with */
    /* MAP_FIXED over part of p: the result is p itself, nothing to free */
    // cppcheck-suppress leakReturnValNotUsed
    if (mmap(p, PP_STORE_PRIVATE_BYTES, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
             -1, 0) != p) { // cppcheck-suppress invalidFunctionArg
        munmap(p, size);
        *err = "mmap of the store's private header failed";
        return NULL;
    }
    /* anonymous mappings are zero-filled: every table starts empty */
    st = p;
    st->version = PP_STORE_VERSION;
    st->header_size = sizeof(pp_store_t);
    st->layout = layout_signature();
    st->total_size = size;
    st->created_us = wall_us();
    st->nslots = nslots;
    st->keep = keep;
    st->nspecial = special_for(keep);
    st->nfast = PP_FAST_KEEP;
    make_nonce_key(st->nonce_key, sizeof(st->nonce_key));
    st->nframes = l.nframes;
    st->nnodes = l.nnodes;
    st->nagg = l.nagg;
    st->nagg_slow = l.nagg_slow;
    st->nepoch = l.nepoch;
    st->off_agg_slow = l.off_agg_slow;
    st->off_epochs = l.off_epochs;
    st->off_epoch_stamps = l.off_epoch_stamps;
    st->arena_size = l.arena_size;
    st->off_locations = l.off_locations;
    st->off_slots = l.off_slots;
    st->off_traces = l.off_traces;
    st->off_frames = l.off_frames;
    st->off_nodes = l.off_nodes;
    st->off_agg = l.off_agg;
    st->off_arena = l.off_arena;
    st->frame_truncated = pp_store_intern_frame(
        st, PP_FRAME_TRUNCATED_TEXT, strlen(PP_FRAME_TRUNCATED_TEXT), "", 0, 0);
    st->frame_unknown = pp_store_intern_frame(
        st, PP_FRAME_UNKNOWN_TEXT, strlen(PP_FRAME_UNKNOWN_TEXT), "", 0, 0);
    st->frame_other = pp_store_intern_frame(
        st, PP_FRAME_OTHER_TEXT, strlen(PP_FRAME_OTHER_TEXT), "", 0, 0);
    atomic_store(&st->serial_next, 1);
    /* published last: a reader that sees the magic sees a laid-out store */
    atomic_thread_fence(memory_order_release);
    st->magic = PP_STORE_MAGIC;
    return st;
}

void pp_store_destroy(pp_store_t *st)
{
    if (st) {
        munmap(st, st->total_size);
    }
}

int pp_store_compatible(const pp_store_t *st, uint64_t size, uint32_t nslots,
                        uint32_t keep)
{
    return st && st->magic == PP_STORE_MAGIC &&
           st->version == PP_STORE_VERSION &&
           st->header_size == sizeof(pp_store_t) &&
           st->layout == layout_signature() && st->total_size == size &&
           st->nslots == nslots && st->keep == keep;
}

/* ---- locations ---- */

pp_location_t *pp_store_location(pp_store_t *st, int idx)
{
    if (!st || idx < 0 || idx >= PP_MAX_LOCATIONS) {
        return NULL;
    }
    return (pp_location_t *)((char *)st + st->off_locations) + idx;
}

int pp_store_location_register(pp_store_t *st, const char *path,
                               uint32_t interval_us)
{
    int i, free_idx = -1;

    if (!st || !path) {
        return -1;
    }
    for (i = 0; i < PP_MAX_LOCATIONS; i++) {
        pp_location_t *loc = pp_store_location(st, i);
        if (atomic_load(&loc->used)) {
            if (strncmp(loc->path, path, PP_PREFIX_MAX) == 0) {
                loc->interval_us = interval_us;
                loc->config_gen = atomic_load(&st->generation);
                return i;
            }
        }
        else if (free_idx < 0) {
            free_idx = i;
        }
    }
    if (free_idx < 0) {
        return -1;
    }
    {
        pp_location_t *loc = pp_store_location(st, free_idx);
        size_t n = strnlen(path, PP_PREFIX_MAX - 1);
        memset(loc, 0, sizeof(*loc));
        memcpy(loc->path, path, n);
        loc->interval_us = interval_us;
        loc->config_gen = atomic_load(&st->generation);
        loc->created_us = wall_us();
        atomic_store(&loc->used, 1);
    }
    return free_idx;
}

int pp_status_class(int status)
{
    return status >= 100 && status < 600 ? status / 100 - 1
                                          : PP_STATUS_CLASSES - 1;
}

void pp_store_location_set_root(pp_store_t *st, int idx, const char *root)
{
    pp_location_t *loc = pp_store_location(st, idx);
    uint32_t expect = 0;
    size_t n;

    if (!loc || !root || !*root || atomic_load(&loc->root_state) ||
        !atomic_compare_exchange_strong(&loc->root_state, &expect, 1)) {
        return;
    }
    n = strnlen(root, PP_PREFIX_MAX - 1);
    memcpy(loc->app_root, root, n);
    loc->app_root[n] = '\0';
    atomic_store_explicit(&loc->root_state, 2, memory_order_release);
}

const char *pp_store_location_root(const pp_store_t *st, int idx, char *buf,
                                   size_t cap)
{
    const pp_location_t *loc = pp_store_location((pp_store_t *)st, idx);

    buf[0] = '\0';
    if (cap && loc &&
        atomic_load_explicit(&loc->root_state, memory_order_acquire) == 2) {
        size_t n = strnlen(loc->app_root, PP_PREFIX_MAX - 1);
        if (n >= cap) {
            n = cap - 1;
        }
        memcpy(buf, loc->app_root, n);
        buf[n] = '\0';
    }
    return buf;
}

/* ---- records ---- */

static void rec_write_begin(pp_record_t *rec)
{
    uint32_t s = atomic_load_explicit(&rec->seq, memory_order_relaxed);
    /* an odd value left by a writer that died is simply carried on */
    atomic_store_explicit(&rec->seq, (s | 1u) + ((s & 1u) ? 2u : 0u),
                          memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

static void rec_write_end(pp_record_t *rec)
{
    uint32_t s = atomic_load_explicit(&rec->seq, memory_order_relaxed);
    atomic_store_explicit(&rec->seq, s + 1, memory_order_release);
}

/* Where to cut s, of which only the first n bytes are kept, so the kept
 * part never ends inside a UTF-8 sequence: when s[n] is a continuation
 * byte, step back to the sequence's lead byte and drop it too. */
static size_t utf8_cut(const char *s, size_t n)
{
    size_t k = n;

    while (k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80) {
        k--;
    }
    return k;
}

/* Copy at most cap - 1 bytes, never ending inside a UTF-8 sequence. */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strnlen(src, cap - 1) : 0;

    if (n == cap - 1 && src[n] != '\0') {
        n = utf8_cut(src, n);
    }
    if (n) {
        memcpy(dst, src, n);
    }
    dst[n] = '\0';
}

/* ---- the slot write token ---- */

/* A holder keeps the token for a record's worth of stores (well under a
 * microsecond for a sample, a few for a claim's memset): spin that long,
 * then queue (one place) and yield: until TOKEN_WAIT_US have passed with
 * no write to the record while the holder is stopped (a debugger), or
 * TOKEN_WAIT_MAX_US in all (a holder preempted on a busy machine is
 * waited for), and only then give the write up (counted by the caller).
 * A newcomer lets the queued writer go first for TOKEN_DEFER rounds, not
 * for ever: a queued writer that was stopped must not stop the others. */
#define TOKEN_SPINS 512
#define TOKEN_DEFER (TOKEN_SPINS + 256)
#define TOKEN_WAIT_US 10000      /* on a stopped holder that wrote nothing */
#define TOKEN_WAIT_MAX_US 200000 /* in any case */

/* This thread's ids, cached: getpid() and gettid() are system calls, and
 * a token's value must differ between the threads of one process (the
 * request thread and the sampler share a pid).  A fork forgets them: the
 * child's one thread has new ids. */
static __thread int32_t tls_tid, tls_pid;
static pthread_once_t ids_once = PTHREAD_ONCE_INIT;

static void ids_forget(void)
{
    tls_tid = 0;
    tls_pid = 0;
}

static void ids_register(void)
{
    pthread_atfork(NULL, NULL, ids_forget);
}

static int32_t self_tid(void)
{
    if (!tls_tid) {
        pthread_once(&ids_once, ids_register);
        tls_pid = (int32_t)getpid();
        tls_tid = (int32_t)syscall(SYS_gettid);
    }
    return tls_tid;
}

static int32_t self_pid(void)
{
    self_tid();
    return tls_pid;
}

static int thread_gone(int32_t tid)
{
    return tid > 0 && kill(tid, 0) == -1 && errno == ESRCH;
}

/* Is thread tid stopped (SIGSTOP, a tracer)?  From /proc/TID/stat; a
 * thread this process may not look at counts as running. */
static int thread_stopped(int32_t tid)
{
    char path[48], buf[256];
    const char *p;
    ssize_t n;
    int fd;

    if (tid <= 0) {
        return 0;
    }
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)tid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    p = strrchr(buf, ')');
    return p && p[1] == ' ' && (p[2] == 'T' || p[2] == 't');
}

static void leave_line(pp_slot_t *slot, int32_t me)
{
    atomic_compare_exchange_strong(&slot->waiter, &me, 0);
}

/* Take the slot's token, waiting (bounded) for a live holder and taking it
 * over from a thread that no longer exists.  0 only after the wait, or on
 * a nested take by the holder itself (a bug: never wait on ourselves). */
static int slot_lock(pp_slot_t *slot)
{
    int32_t me = self_tid(), cur, w;
    uint32_t spins, seen = 0;
    int64_t deadline = 0, give_up = 0;
    int queued = 0;

    for (spins = 0;; spins++) {
        w = atomic_load_explicit(&slot->waiter, memory_order_relaxed);
        /* a writer that has waited longer goes first, for a while */
        if (w == 0 || w == me || spins >= TOKEN_DEFER) {
            cur = 0;
            if (atomic_compare_exchange_weak_explicit(
                    &slot->token, &cur, me, memory_order_acquire,
                    memory_order_relaxed)) {
                if (queued) {
                    leave_line(slot, me);
                }
                return 1;
            }
        }
        else {
            cur = atomic_load_explicit(&slot->token, memory_order_relaxed);
        }
        if (cur == me) {
            return 0;
        }
        if (spins < TOKEN_SPINS) {
            continue;
        }
        if (!queued) {
            int32_t none = 0;
            queued = atomic_compare_exchange_strong(&slot->waiter, &none, me);
        }
        if ((spins - TOKEN_SPINS) % 64 == 0) {
            int64_t now = mono_us();
            /* the holder died mid-write: take the token over */
            if (thread_gone(cur) &&
                atomic_compare_exchange_strong(&slot->token, &cur, me)) {
                if (queued) {
                    leave_line(slot, me);
                }
                return 1;
            }
            if (w != me && thread_gone(w)) {
                atomic_compare_exchange_strong(&slot->waiter, &w, 0);
            }
            if (!deadline) {
                deadline = now + TOKEN_WAIT_US;
                give_up = now + TOKEN_WAIT_MAX_US;
                seen = atomic_load(&slot->rec.seq);
            }
            else if (now > deadline) {
                /* Given up early only for a holder that is stopped (a
                 * debugger, SIGSTOP) and has not written since: one that
                 * was merely preempted on a busy machine, or a record in
                 * use, is waited for up to the hard limit. */
                uint32_t seq = atomic_load(&slot->rec.seq);
                if ((seq == seen && thread_stopped(cur)) || now > give_up) {
                    if (queued) {
                        leave_line(slot, me);
                    }
                    return 0;
                }
                seen = seq;
                deadline = now + TOKEN_WAIT_US;
            }
        }
        sched_yield();
    }
}

/* slot_lock for a write that is lost if the token cannot be had. */
static int slot_lock_counted(pp_store_t *st, pp_slot_t *slot)
{
    if (slot_lock(slot)) {
        return 1;
    }
    atomic_fetch_add_explicit(&st->c.writes_dropped, 1, memory_order_relaxed);
    return 0;
}

static void slot_unlock(pp_slot_t *slot)
{
    atomic_store_explicit(&slot->token, 0, memory_order_release);
}

pp_slot_t *pp_store_slot(pp_store_t *st, int idx)
{
    if (!st || idx < 0 || (uint32_t)idx >= st->nslots) {
        return NULL;
    }
    return (pp_slot_t *)((char *)st + st->off_slots) + idx;
}

/* One pass over the slots from `start`: the index claimed, or -1. */
static int claim_pass(pp_store_t *st, const pp_req_info_t *info,
                      uint32_t start)
{
    uint32_t i, n = st->nslots;

    for (i = 0; i < n; i++) {
        uint32_t idx = (start + i) % n;
        pp_slot_t *slot = pp_store_slot(st, (int)idx);
        uint32_t expect = PP_SLOT_FREE;
        pp_req_t *q;

        if (atomic_load_explicit(&slot->state, memory_order_relaxed) !=
                PP_SLOT_FREE ||
            !atomic_compare_exchange_strong(
                &slot->state, &expect,
                PP_SLOT_STATE(info->pid, PP_SLOT_CLAIMED))) {
            continue;
        }
        /* A daemon that sampled the slot's previous request may still be
         * writing to it under the token (its claimer was reaped): wait for
         * it like any writer, never wipe a token someone holds. */
        if (!slot_lock(slot)) {
            atomic_store(&slot->state, PP_SLOT_FREE);
            continue;
        }
        rec_write_begin(&slot->rec);
        memset(&slot->rec.req, 0, sizeof(slot->rec.req));
        memset(slot->rec.stacks, 0, sizeof(slot->rec.stacks));
        memset(slot->rec.segments, 0, sizeof(slot->rec.segments));
        q = &slot->rec.req;
        q->serial = atomic_fetch_add(&st->serial_next, 1);
        copy_str(q->id, sizeof(q->id), info->id);
        copy_str(q->method, sizeof(q->method), info->method);
        copy_str(q->uri, sizeof(q->uri), info->uri);
        copy_str(q->vhost, sizeof(q->vhost), info->vhost);
        q->pid = info->pid;
        q->tid = info->tid;
        q->location = info->location;
        q->interval_us = info->interval_us;
        q->max_depth = info->max_depth;
        q->start_us = info->start_us;
        q->last_sample_us = info->start_us;
        q->flags = info->flags & (PP_REQ_TRIGGERED | PP_REQ_CAPTURED);
        q->capture = info->capture;
        copy_str(q->trace_id, sizeof(q->trace_id), info->trace_id);
        copy_str(q->parent_id, sizeof(q->parent_id), info->parent_id);
        rec_write_end(&slot->rec);
        atomic_store(&slot->sampler_pid, 0);
        slot_unlock(slot);
        atomic_store(&slot->state, PP_SLOT_STATE(info->pid, PP_SLOT_ACTIVE));
        return (int)idx;
    }
    return -1;
}

/* Is it this caller's turn to reap?  At most one reap per
 * PP_REAP_INTERVAL_US in the whole store: a store full of live requests
 * costs a failed claim no more than a scan now and then. */
static int reap_due(pp_store_t *st)
{
    int64_t now = mono_us();
    int64_t last = atomic_load_explicit(&st->reap_last_us,
                                        memory_order_relaxed);

    return (last == 0 || now - last >= PP_REAP_INTERVAL_US || now < last) &&
           atomic_compare_exchange_strong(&st->reap_last_us, &last, now);
}

int pp_store_claim(pp_store_t *st, const pp_req_info_t *info, int hint)
{
    uint32_t start = (uint32_t)hint % st->nslots;
    int idx = claim_pass(st, info, start);

    /* no free slot: the slots of processes that died (SIGKILL, the OOM
     * killer) would otherwise stay taken until someone opens the
     * overview, and every request until then go unprofiled */
    if (idx < 0 && reap_due(st) && pp_store_reap_dead(st) > 0) {
        idx = claim_pass(st, info, start);
    }
    if (idx < 0) {
        atomic_fetch_add(&st->c.slots_full, 1);
    }
    return idx;
}

static pp_stack_count_t *stack_entry(pp_record_t *rec, uint32_t node,
                                     int create)
{
    uint32_t h = (uint32_t)mix64(node), i;

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

void pp_store_add_sample(pp_store_t *st, pp_slot_t *slot, uint32_t node,
                         int64_t now_us, uint64_t weight_us, uint64_t cpu_us)
{
    pp_store_add_sample_ex(st, slot, node, now_us, weight_us, cpu_us,
                           cpu_us * 2 >= weight_us ? PP_SAMPLE_ON_CPU
                                                   : PP_SAMPLE_OFF_CPU);
}

/* The claimer's own notes; the token keeps them apart from a daemon's
 * samples. */
static pp_record_t *note_begin(pp_store_t *st, int idx, pp_slot_t **slotp)
{
    pp_slot_t *slot = pp_store_slot(st, idx);
    if (!slot || PP_SLOT_PHASE(atomic_load(&slot->state)) != PP_SLOT_ACTIVE ||
        !slot_lock_counted(st, slot)) {
        return NULL;
    }
    *slotp = slot;
    rec_write_begin(&slot->rec);
    return &slot->rec;
}

static void note_end(pp_slot_t *slot)
{
    rec_write_end(&slot->rec);
    slot_unlock(slot);
}

void pp_store_note_handler_start(pp_store_t *st, int idx, int64_t us)
{
    pp_slot_t *slot;
    pp_record_t *rec = note_begin(st, idx, &slot);
    if (rec) {
        if (!rec->req.handler_start_us) {
            rec->req.handler_start_us = us;
        }
        note_end(slot);
    }
}

void pp_store_note_app_end(pp_store_t *st, int idx, int64_t us)
{
    pp_slot_t *slot;
    pp_record_t *rec = note_begin(st, idx, &slot);
    if (rec) {
        rec->req.app_end_us = us;
        note_end(slot);
    }
}

void pp_store_note_unique_id(pp_store_t *st, int idx, const char *id)
{
    pp_slot_t *slot;
    pp_record_t *rec = id ? note_begin(st, idx, &slot) : NULL;
    if (rec) {
        copy_str(rec->req.unique_id, sizeof(rec->req.unique_id), id);
        note_end(slot);
    }
}

uint32_t pp_store_capture_arm(pp_store_t *st, int location, uint32_t n)
{
    pp_location_t *loc = pp_store_location(st, location);
    uint32_t id;

    if (!loc || n == 0) {
        return 0;
    }
    id = atomic_fetch_add(&st->capture_seq, 1) + 1;
    /* the id first: a request that takes a slot of this capture must not
     * be labelled with the previous one */
    atomic_store(&loc->capture_left, 0);
    loc->capture_n = n;
    loc->capture_armed_us = wall_us();
    atomic_store(&loc->capture_id, id);
    atomic_store(&loc->capture_left, (int32_t)n);
    return id;
}

uint32_t pp_store_capture_take(pp_store_t *st, int location)
{
    pp_location_t *loc = pp_store_location(st, location);
    int32_t left;

    if (!loc) {
        return 0;
    }
    left = atomic_load_explicit(&loc->capture_left, memory_order_relaxed);
    while (left > 0) {
        if (atomic_compare_exchange_weak(&loc->capture_left, &left,
                                         left - 1)) {
            return atomic_load(&loc->capture_id);
        }
    }
    return 0;
}

/* One sample into a record; the caller holds the slot's token. */
static void record_sample(pp_store_t *st, pp_record_t *rec, uint32_t node,
                          int64_t now_us, uint64_t weight_us, uint64_t cpu_us,
                          int how)
{
    pp_stack_count_t *e;
    uint32_t seg;

    rec_write_begin(rec);
    /* keep one entry free for [other stacks] */
    e = rec->req.nstacks < PP_STACKS_MAX - 1 ? stack_entry(rec, node, 1)
                                             : stack_entry(rec, node, 0);
    if (!e) {
        uint32_t other = pp_store_intern_node(st, 0, st->frame_other);
        e = other ? stack_entry(rec, other, 1) : NULL;
        rec->req.samples_overflow++;
        atomic_fetch_add(&st->c.stacks_overflow, 1);
    }
    if (e) {
        e->count++;
        e->weight_us += weight_us;
        e->cpu_us += cpu_us;
    }
    rec->req.samples++;
    if (how & PP_SAMPLE_TRUNCATED) {
        rec->req.flags |= PP_REQ_TRUNCATED;
        how &= ~PP_SAMPLE_TRUNCATED;
    }
    if (how == PP_SAMPLE_ON_CPU) {
        rec->req.samples_on_cpu++;
    }
    else {
        rec->req.samples_off_cpu++;
        if (how == PP_SAMPLE_GIL_WAIT) {
            rec->req.samples_gil_wait++;
        }
    }
    seg = rec->req.open_segment;
    if (seg >= 1 && seg <= PP_SEGMENTS_MAX) {
        rec->segments[seg - 1].samples++;
        rec->segments[seg - 1].weight_us += weight_us;
    }
    rec->req.sampled_cpu_us += (int64_t)cpu_us;
    rec->req.last_node = node;
    rec->req.last_sample_us = now_us;
    rec_write_end(rec);
    atomic_fetch_add_explicit(&st->c.samples, 1, memory_order_relaxed);
}

void pp_store_add_sample_ex(pp_store_t *st, pp_slot_t *slot, uint32_t node,
                            int64_t now_us, uint64_t weight_us,
                            uint64_t cpu_us, int how)
{
    if (node == 0 || !slot_lock_counted(st, slot)) {
        return;
    }
    record_sample(st, &slot->rec, node, now_us, weight_us, cpu_us, how);
    slot_unlock(slot);
}

/* Lock a slot for a write on behalf of request `serial` by this process;
 * NULL (and unlocked) if the slot moved on or belongs to another sampler. */
static pp_slot_t *lock_for(pp_store_t *st, int idx, uint64_t serial,
                           int sampling)
{
    pp_slot_t *slot = pp_store_slot(st, idx);
    int32_t owner;

    if (!slot || PP_SLOT_PHASE(atomic_load(&slot->state)) != PP_SLOT_ACTIVE ||
        !slot_lock_counted(st, slot)) {
        return NULL;
    }
    owner = atomic_load(&slot->sampler_pid);
    if (slot->rec.req.serial != serial ||
        PP_SLOT_PHASE(atomic_load(&slot->state)) != PP_SLOT_ACTIVE ||
        owner < 0 || (sampling && owner > 0 && owner != self_pid())) {
        slot_unlock(slot);
        return NULL;
    }
    return slot;
}

void pp_store_sample(pp_store_t *st, int idx, uint64_t serial, uint32_t node,
                     int64_t now_us, uint64_t weight_us, uint64_t cpu_us,
                     int how)
{
    pp_slot_t *slot;

    if (node == 0 || !(slot = lock_for(st, idx, serial, 1))) {
        return;
    }
    record_sample(st, &slot->rec, node, now_us, weight_us, cpu_us, how);
    slot_unlock(slot);
}

void pp_store_sample_outside(pp_store_t *st, int idx, uint64_t serial,
                             int64_t now_us, uint64_t weight_us)
{
    pp_slot_t *slot = lock_for(st, idx, serial, 1);
    pp_record_t *rec;

    if (!slot) {
        return;
    }
    rec = &slot->rec;
    rec_write_begin(rec);
    rec->req.samples_outside++;
    rec->req.outside_us += (int64_t)weight_us;
    rec->req.last_sample_us = now_us;
    rec_write_end(rec);
    slot_unlock(slot);
}

int pp_store_samples_here(pp_store_t *st, int idx, int32_t pid)
{
    pp_slot_t *slot = pp_store_slot(st, idx);
    int32_t owner = slot ? atomic_load(&slot->sampler_pid) : -1;
    return owner == 0 || owner == pid;
}

static uint32_t clamp_u32(uint32_t v, uint32_t lo, uint32_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

int pp_store_adopt(pp_store_t *st, const char *id, int32_t pid,
                   const char *process_group, const char *app_group,
                   uint64_t *serial, uint32_t *interval_us,
                   uint32_t *max_depth)
{
    uint32_t i;

    if (!id || !*id) {
        return -1;
    }
    for (i = 0; i < st->nslots; i++) {
        pp_slot_t *slot = pp_store_slot(st, (int)i);
        int32_t none = 0;

        if (PP_SLOT_PHASE(atomic_load(&slot->state)) != PP_SLOT_ACTIVE ||
            strncmp(slot->rec.req.id, id, PP_ID_MAX) != 0) {
            continue;
        }
        if (!atomic_compare_exchange_strong(&slot->sampler_pid, &none, pid)) {
            return -1; /* finished, or another daemon has it */
        }
        /* The slot may have gone to another request between the scan and
         * the compare-and-swap: then the adoption is handed back, or that
         * request would be sampled by nobody (its claimer leaves it to
         * us, we never register it). */
        if (!slot_lock_counted(st, slot)) {
            int32_t mine = pid;
            atomic_compare_exchange_strong(&slot->sampler_pid, &mine, 0);
            return -1;
        }
        if (strncmp(slot->rec.req.id, id, PP_ID_MAX) != 0 ||
            PP_SLOT_PHASE(atomic_load(&slot->state)) != PP_SLOT_ACTIVE) {
            int32_t mine = pid;
            atomic_compare_exchange_strong(&slot->sampler_pid, &mine, 0);
            slot_unlock(slot);
            return -1;
        }
        rec_write_begin(&slot->rec);
        slot->rec.req.flags |= PP_REQ_DAEMON;
        slot->rec.req.daemon_pid = pid;
        copy_str(slot->rec.req.process_group,
                 sizeof(slot->rec.req.process_group), process_group);
        copy_str(slot->rec.req.app_group, sizeof(slot->rec.req.app_group),
                 app_group);
        rec_write_end(&slot->rec);
        *serial = slot->rec.req.serial;
        /* the record is shared memory: what steers this process' sampler
         * is kept to the range the configuration accepts */
        *interval_us = clamp_u32(slot->rec.req.interval_us,
                                 PP_INTERVAL_MIN_US, PP_INTERVAL_MAX_US);
        *max_depth = clamp_u32(slot->rec.req.max_depth, 1, PP_DEPTH_LIMIT);
        slot_unlock(slot);
        return (int)i;
    }
    return -1;
}

void pp_store_note_daemon_cpu(pp_store_t *st, int idx, uint64_t serial,
                              int64_t cpu_us)
{
    pp_slot_t *slot = lock_for(st, idx, serial, 1);

    if (!slot) {
        return;
    }
    rec_write_begin(&slot->rec);
    slot->rec.req.daemon_cpu_us = cpu_us;
    rec_write_end(&slot->rec);
    slot_unlock(slot);
}

uint32_t pp_store_segment_begin(pp_store_t *st, int idx, uint64_t serial,
                                const char *name, const char *detail,
                                int64_t now_us)
{
    pp_slot_t *slot = lock_for(st, idx, serial, 0);
    pp_record_t *rec;
    pp_segment_t *g;
    uint32_t n, parent;

    if (!slot) {
        return 0;
    }
    rec = &slot->rec;
    n = rec->req.nsegments;
    if (n >= PP_SEGMENTS_MAX) {
        rec_write_begin(rec);
        rec->req.segments_dropped++;
        rec_write_end(rec);
        slot_unlock(slot);
        return 0;
    }
    parent = rec->req.open_segment <= PP_SEGMENTS_MAX ? rec->req.open_segment
                                                      : 0;
    rec_write_begin(rec);
    g = &rec->segments[n];
    memset(g, 0, sizeof(*g));
    copy_str(g->name, sizeof(g->name), name);
    copy_str(g->detail, sizeof(g->detail), detail);
    g->start_us = now_us - rec->req.start_us;
    g->dur_us = -1;
    g->parent = (uint16_t)parent;
    g->depth = parent ? (uint16_t)(rec->segments[parent - 1].depth + 1) : 0;
    rec->req.nsegments = n + 1;
    rec->req.open_segment = n + 1;
    rec_write_end(rec);
    slot_unlock(slot);
    return n + 1;
}

void pp_store_segment_end(pp_store_t *st, int idx, uint64_t serial,
                          uint32_t seg, int64_t now_us)
{
    pp_slot_t *slot;
    pp_record_t *rec;
    pp_segment_t *g;

    if (seg == 0 || seg > PP_SEGMENTS_MAX ||
        !(slot = lock_for(st, idx, serial, 0))) {
        return;
    }
    rec = &slot->rec;
    if (seg <= rec->req.nsegments) {
        rec_write_begin(rec);
        g = &rec->segments[seg - 1];
        g->dur_us = now_us - rec->req.start_us - g->start_us;
        if (g->dur_us < 0) {
            g->dur_us = 0;
        }
        /* close it, and any inner one left open by an exception path */
        rec->req.open_segment = g->parent;
        rec_write_end(rec);
    }
    slot_unlock(slot);
}

static int table_add(pp_agg_entry_t *tab, uint32_t cap, int loc,
                     uint32_t node, uint64_t count, uint64_t weight_us,
                     uint64_t cpu_us)
{
    uint64_t key = ((uint64_t)(uint32_t)(loc + 1) << 32) | node;
    uint32_t mask = cap - 1, i;
    uint32_t h = (uint32_t)mix64(key);

    for (i = 0; i < PROBE_LIMIT; i++) {
        pp_agg_entry_t *e = &tab[(h + i) & mask];
        uint64_t k = atomic_load_explicit(&e->key, memory_order_acquire);
        if (k == 0) {
            uint64_t expect = 0;
            if (atomic_compare_exchange_strong(&e->key, &expect, key)) {
                k = key;
            }
            else {
                k = expect;
            }
        }
        if (k == key) {
            atomic_fetch_add_explicit(&e->count, count, memory_order_relaxed);
            atomic_fetch_add_explicit(&e->weight_us, weight_us,
                                      memory_order_relaxed);
            atomic_fetch_add_explicit(&e->cpu_us, cpu_us,
                                      memory_order_relaxed);
            return 0;
        }
    }
    return -1;
}

static _Atomic uint64_t *epoch_stamps(const pp_store_t *st)
{
    return (_Atomic uint64_t *)((char *)st + st->off_epoch_stamps);
}

static pp_agg_entry_t *epoch_table(const pp_store_t *st, uint32_t i)
{
    return (pp_agg_entry_t *)((char *)st + st->off_epochs) +
           (uint64_t)i * st->nepoch;
}

/* The table for `minute`, taking it over (and emptying it) if it still
 * holds a minute PP_EPOCHS ago.  NULL while another writer empties it:
 * those few samples miss the window views, never the all-time ones. */
static pp_agg_entry_t *epoch_for_write(pp_store_t *st, int64_t minute)
{
    uint32_t i;
    _Atomic uint64_t *stamp;
    uint64_t cur, want;

    /* a start time from the record (shared memory) may be anything: a
     * negative minute would index before the table */
    if (minute < 0) {
        return NULL;
    }
    i = (uint32_t)(minute % PP_EPOCHS);
    stamp = &epoch_stamps(st)[i];
    cur = atomic_load(stamp);
    want = (uint64_t)minute + 1;

    if (cur == want) {
        return epoch_table(st, i);
    }
    /* A RESETTING stamp for the same minute is another writer emptying
     * the table right now.  One for an older minute (64 minutes ago) was
     * left by a process killed mid-reset: take it over, or the table
     * would stay disabled for good. */
    if ((cur & ~PP_EPOCH_RESETTING) >= want ||
        !atomic_compare_exchange_strong(stamp, &cur,
                                        want | PP_EPOCH_RESETTING)) {
        return NULL;
    }
    memset(epoch_table(st, i), 0, (size_t)st->nepoch * sizeof(pp_agg_entry_t));
    atomic_store(stamp, want);
    return epoch_table(st, i);
}

pp_agg_entry_t *pp_store_epoch(const pp_store_t *st, int64_t minute,
                               uint32_t *n)
{
    uint32_t i;

    if (minute < 0) {
        return NULL;
    }
    i = (uint32_t)(minute % PP_EPOCHS);
    if (atomic_load(&epoch_stamps(st)[i]) != (uint64_t)minute + 1) {
        return NULL;
    }
    *n = st->nepoch;
    return epoch_table(st, i);
}

static void atomic_max_u64(_Atomic uint64_t *p, uint64_t v)
{
    uint64_t cur = atomic_load_explicit(p, memory_order_relaxed);
    while (cur < v &&
           !atomic_compare_exchange_weak(p, &cur, v)) {
    }
}

static void keep_trace(pp_store_t *st, const pp_record_t *src, int keep)
{
    uint32_t tries, base, size;
    _Atomic uint64_t *next;

    if (keep == PP_KEEP_FAST) {
        base = st->keep + st->nspecial;
        size = st->nfast;
        next = &st->fast_next;
    }
    else if (src->req.flags & (PP_REQ_TRIGGERED | PP_REQ_CAPTURED)) {
        base = st->keep;
        size = st->nspecial;
        next = &st->special_next;
    }
    else {
        base = 0;
        size = st->keep;
        next = &st->trace_next;
    }
    for (tries = 0; tries < 4; tries++) {
        uint64_t n = atomic_fetch_add(next, 1);
        pp_record_t *dst = (pp_record_t *)((char *)st + st->off_traces) +
                           base + (n % size);
        uint32_t s = atomic_load(&dst->seq);

        /* odd: another writer is filling this entry right now (or died
         * doing so); take the next one instead of waiting */
        if ((s & 1u) ||
            !atomic_compare_exchange_strong(&dst->seq, &s, s + 1)) {
            continue;
        }
        atomic_thread_fence(memory_order_release);
        if (dst->req.serial && keep != PP_KEEP_FAST) {
            atomic_fetch_add(&st->c.traces_evicted, 1);
        }
        memcpy(&dst->req, &src->req, sizeof(dst->req));
        memcpy(dst->stacks, src->stacks, sizeof(dst->stacks));
        memcpy(dst->segments, src->segments, sizeof(dst->segments));
        if (keep == PP_KEEP_FAST) {
            dst->req.flags |= PP_REQ_FAST;
        }
        atomic_store_explicit(&dst->seq, s + 2, memory_order_release);
        if (keep != PP_KEEP_FAST) {
            atomic_fetch_add(&st->c.traces_kept, 1);
        }
        return;
    }
    atomic_fetch_add(&st->c.traces_torn, 1);
}

/* The minute a request ended in, or -1 if its start time (shared memory)
 * is not a time: no signed overflow, no negative index. */
static int64_t end_minute(const pp_req_t *q)
{
    int64_t start = q->start_us, dur = q->duration_us;

    if (start < 0 || dur < 0 || start > INT64_MAX - dur) {
        return -1;
    }
    return (start + dur) / PP_EPOCH_US;
}

void pp_store_finish(pp_store_t *st, int idx, int status, int64_t duration_us,
                     int64_t cpu_us, int keep)
{
    pp_slot_t *slot = pp_store_slot(st, idx);
    pp_location_t *loc;
    pp_record_t *rec;
    pp_agg_entry_t *all, *slow = NULL, *window;
    uint32_t i;
    int locked;

    if (!slot || PP_SLOT_PHASE(atomic_load(&slot->state)) != PP_SLOT_ACTIVE) {
        return;
    }
    rec = &slot->rec;
    /* from here on no daemon writes: it sees sampler_pid -1 */
    locked = slot_lock(slot);
    if (!locked) {
        /* cannot happen short of a stuck live writer; finish anyway */
        atomic_fetch_add(&st->c.traces_torn, 1);
    }
    atomic_store(&slot->sampler_pid, -1);
    rec_write_begin(rec);
    rec->req.status = status;
    rec->req.duration_us = duration_us < 0 ? 0 : duration_us;
    /* in daemon mode the CPU that matters is the daemon thread's; the
     * Apache child only proxied */
    if ((rec->req.flags & PP_REQ_DAEMON) && rec->req.daemon_cpu_us > 0) {
        cpu_us = rec->req.daemon_cpu_us;
    }
    rec->req.cpu_us = cpu_us < 0 ? 0 : cpu_us;
    rec_write_end(rec);

    loc = pp_store_location(st, rec->req.location);
    if (loc) {
        int cls = pp_status_class(status);
        int bucket = pp_hist_bucket(rec->req.duration_us);
        atomic_fetch_add(&loc->class_hist[cls][bucket], 1);
        atomic_fetch_add(&loc->class_sum_us[cls],
                         (uint64_t)rec->req.duration_us);
        atomic_fetch_add(&loc->hist[bucket], 1);
        atomic_fetch_add(&loc->sum_us, (uint64_t)rec->req.duration_us);
        atomic_max_u64(&loc->max_us, (uint64_t)rec->req.duration_us);
        atomic_fetch_add(&loc->samples, rec->req.samples);
        if (keep == PP_KEEP_SLOW) {
            atomic_fetch_add(&loc->kept, 1);
        }
        if (rec->req.samples) {
            uint64_t hist[PP_HIST_BUCKETS];
            int b;
            /* "slow" = at or over the location's p95 so far; needs enough
             * requests for a p95 to mean something */
            if (atomic_load(&loc->requests) >= 20) {
                for (b = 0; b < PP_HIST_BUCKETS; b++) {
                    hist[b] = atomic_load_explicit(&loc->hist[b],
                                                   memory_order_relaxed);
                }
                if (rec->req.duration_us >=
                    pp_hist_quantile_us(hist, 0.95,
                                        (int64_t)atomic_load(&loc->max_us))) {
                    slow = (pp_agg_entry_t *)((char *)st + st->off_agg_slow);
                }
            }
        }
        /* requests last: a reader that sees N requests sees their buckets */
        atomic_fetch_add(&loc->requests, 1);
        all = (pp_agg_entry_t *)((char *)st + st->off_agg);
        window = rec->req.samples ? epoch_for_write(st, end_minute(&rec->req))
                                  : NULL;
        if (rec->req.samples && !window) {
            atomic_fetch_add(&st->c.epoch_busy, 1);
        }
        for (i = 0; i < PP_STACKS_MAX; i++) {
            const pp_stack_count_t *e = &rec->stacks[i];
            int loc_idx = rec->req.location;
            if (!e->node || !e->count) {
                continue;
            }
            if (table_add(all, st->nagg, loc_idx, e->node, e->count,
                          e->weight_us, e->cpu_us)) {
                atomic_fetch_add(&st->c.agg_full, 1);
            }
            if (slow && table_add(slow, st->nagg_slow, loc_idx, e->node,
                                  e->count, e->weight_us, e->cpu_us)) {
                atomic_fetch_add(&st->c.agg_full, 1);
            }
            if (window && table_add(window, st->nepoch, loc_idx, e->node,
                                    e->count, e->weight_us, e->cpu_us)) {
                atomic_fetch_add(&st->c.agg_full, 1);
            }
        }
    }
    if (keep == PP_KEEP_SLOW || keep == PP_KEEP_FAST) {
        keep_trace(st, rec, keep);
    }
    if (locked) {
        slot_unlock(slot);
    }
    atomic_store_explicit(&slot->state, PP_SLOT_FREE, memory_order_release);
}

void pp_store_abandon(pp_store_t *st, int idx)
{
    pp_slot_t *slot = pp_store_slot(st, idx);
    int locked;

    if (!slot || PP_SLOT_PHASE(atomic_load(&slot->state)) != PP_SLOT_ACTIVE) {
        return;
    }
    locked = slot_lock(slot);
    atomic_store(&slot->sampler_pid, -1);
    if (locked) {
        slot_unlock(slot);
    }
    atomic_fetch_add(&st->c.slots_lost, 1);
    atomic_store_explicit(&slot->state, PP_SLOT_FREE, memory_order_release);
}

/* Is pid gone?  Remembered for the scan: the slots of one process are
 * many, a kill() each is not needed. */
typedef struct pid_memo {
    int32_t pid[16];
    unsigned char dead[16];
    uint32_t n;
} pid_memo_t;

static int pid_dead(pid_memo_t *m, int32_t pid)
{
    uint32_t i;
    int dead;

    for (i = 0; i < m->n && i < 16; i++) {
        if (m->pid[i] == pid) {
            return m->dead[i];
        }
    }
    dead = kill(pid, 0) == -1 && errno == ESRCH;
    m->pid[m->n % 16] = pid;
    m->dead[m->n % 16] = (unsigned char)dead;
    m->n++;
    return dead;
}

uint32_t pp_store_reap_dead(pp_store_t *st)
{
    pid_memo_t memo;
    uint32_t i, reaped = 0;

    memo.n = 0;
    atomic_store(&st->reap_last_us, mono_us());
    for (i = 0; i < st->nslots; i++) {
        pp_slot_t *slot = pp_store_slot(st, (int)i);
        uint32_t s = atomic_load(&slot->state);
        int32_t pid = PP_SLOT_PID(s);

        if (s == PP_SLOT_FREE || pid <= 0) {
            continue;
        }
        if (pid_dead(&memo, pid) &&
            atomic_compare_exchange_strong(&slot->state, &s, PP_SLOT_FREE)) {
            atomic_fetch_add(&st->c.slots_lost, 1);
            atomic_fetch_add(&st->c.slots_reaped, 1);
            reaped++;
        }
    }
    return reaped;
}

/* ---- interning ---- */

/* Frame text in the arena: u32 total length, u32 line, function NUL file
 * NUL.  Both names are cut at PP_FRAME_TEXT_MAX bytes. */
typedef struct frame_text {
    uint32_t len;
    uint32_t line;
    char text[];
} frame_text_t;

static const frame_text_t *frame_text_at(const pp_store_t *st, uint64_t unit)
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
    t = (const frame_text_t *)(arena(st) + off);
    if (t->len < 2 || t->len > 2 * PP_FRAME_TEXT_MAX + 2 ||
        off + sizeof(frame_text_t) + t->len > st->arena_size) {
        return NULL;
    }
    return t;
}

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
    } while (!atomic_compare_exchange_weak(&st->arena_used, &used,
                                           used + units));
    *at = used;
    return 0;
}

uint32_t pp_store_intern_frame(pp_store_t *st, const char *func,
                               size_t funclen, const char *file,
                               size_t filelen, uint32_t line)
{
    _Atomic uint64_t *tab = frame_table(st);
    uint32_t mask = st->nframes - 1, i;
    uint64_t h, unit = 0;

    /* a NUL inside a name would split it: cut there; a name longer than
     * PP_FRAME_TEXT_MAX is cut on a character boundary */
    funclen = strnlen(func, funclen > PP_FRAME_TEXT_MAX ? PP_FRAME_TEXT_MAX + 1
                                                        : funclen);
    filelen = strnlen(file, filelen > PP_FRAME_TEXT_MAX ? PP_FRAME_TEXT_MAX + 1
                                                        : filelen);
    if (funclen > PP_FRAME_TEXT_MAX) {
        funclen = utf8_cut(func, PP_FRAME_TEXT_MAX);
    }
    if (filelen > PP_FRAME_TEXT_MAX) {
        filelen = utf8_cut(file, PP_FRAME_TEXT_MAX);
    }
    h = hash_bytes(0xcbf29ce484222325ULL, func, funclen);
    h = hash_bytes(h ^ 0xff, file, filelen);
    h = mix64(h ^ line);

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
                t = (frame_text_t *)(arena(st) + at * ARENA_UNIT);
                t->len = (uint32_t)(funclen + filelen + 2);
                t->line = line;
                memcpy(t->text, func, funclen);
                t->text[funclen] = '\0';
                memcpy(t->text + funclen + 1, file, filelen);
                t->text[funclen + 1 + filelen] = '\0';
                unit = at + 1;
            }
            if (atomic_compare_exchange_strong(
                    &tab[idx], &expect, ((h >> 32) << 32) | unit)) {
                return idx + 1;
            }
            v = expect; /* lost the race: compare with the winner */
        }
        if ((v >> 32) == (h >> 32)) {
            const frame_text_t *t = frame_text_at(st, v & 0xffffffffULL);
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
    _Atomic uint64_t *tab = node_table(st);
    uint64_t key = ((uint64_t)parent << 32) | frame;
    uint32_t mask = st->nnodes - 1, i;
    uint32_t h = (uint32_t)mix64(key);

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

/* ---- readers ---- */

static void terminate_req(pp_req_t *q);

int pp_store_frame_view(const pp_store_t *st, uint32_t frame,
                        pp_frame_view_t *out)
{
    uint64_t v;
    const frame_text_t *t;
    size_t fl;

    if (frame == 0 || frame > st->nframes) {
        return 0;
    }
    v = atomic_load_explicit(&frame_table(st)[frame - 1],
                             memory_order_acquire);
    t = frame_text_at(st, v & 0xffffffffULL);
    if (!t) {
        return 0;
    }
    /* both names must be NUL-terminated inside the recorded length */
    fl = strnlen(t->text, t->len);
    if (fl + 1 >= t->len || strnlen(t->text + fl + 1, t->len - fl - 1) >=
                                t->len - fl - 1) {
        return 0;
    }
    out->function = t->text;
    out->file = t->text + fl + 1;
    out->line = t->line;
    return 1;
}

int pp_store_node_get(const pp_store_t *st, uint32_t node, uint32_t *parent,
                      uint32_t *frame)
{
    uint64_t v;

    if (node == 0 || node > st->nnodes) {
        return 0;
    }
    v = atomic_load_explicit(&node_table(st)[node - 1], memory_order_acquire);
    if (v == 0 || (uint32_t)v == 0) {
        return 0;
    }
    *parent = (uint32_t)(v >> 32);
    *frame = (uint32_t)v;
    return 1;
}

int pp_store_read_record(const pp_record_t *rec, pp_record_t *out)
{
    int tries;

    for (tries = 0; tries < 8; tries++) {
        uint32_t s1 = atomic_load_explicit(&rec->seq, memory_order_acquire);
        uint32_t s2;
        if (s1 & 1u) {
            continue;
        }
        memcpy(&out->req, &rec->req, sizeof(out->req));
        memcpy(out->stacks, rec->stacks, sizeof(out->stacks));
        memcpy(out->segments, rec->segments, sizeof(out->segments));
        atomic_thread_fence(memory_order_acquire);
        s2 = atomic_load_explicit(&rec->seq, memory_order_relaxed);
        if (s1 == s2) {
            /* the copy is ours now: make its strings safe to print */
            uint32_t g;
            terminate_req(&out->req);
            for (g = 0; g < PP_SEGMENTS_MAX; g++) {
                out->segments[g].name[PP_SEGMENT_NAME_MAX - 1] = '\0';
                out->segments[g].detail[PP_SEGMENT_DETAIL_MAX - 1] = '\0';
                /* a parent comes before its children: no cycles */
                if (out->segments[g].parent > g) {
                    out->segments[g].parent = 0;
                }
            }
            return out->req.serial != 0;
        }
    }
    return 0;
}

static void terminate_req(pp_req_t *q)
{
    q->process_group[PP_GROUP_MAX - 1] = '\0';
    q->app_group[PP_APP_GROUP_MAX - 1] = '\0';
    if (q->nsegments > PP_SEGMENTS_MAX) {
        q->nsegments = PP_SEGMENTS_MAX;
    }
    q->trace_id[PP_TRACE_ID_MAX - 1] = '\0';
    q->parent_id[PP_SPAN_ID_MAX - 1] = '\0';
    q->unique_id[PP_ID_MAX - 1] = '\0';
    q->id[PP_ID_MAX - 1] = '\0';
    q->method[PP_METHOD_MAX - 1] = '\0';
    q->uri[PP_URI_MAX - 1] = '\0';
    q->vhost[PP_VHOST_MAX - 1] = '\0';
    if (q->max_depth > PP_DEPTH_LIMIT) {
        q->max_depth = PP_DEPTH_LIMIT;
    }
    /* indices a page follows: in range, or "none" */
    if (q->location < -1 || q->location >= PP_MAX_LOCATIONS) {
        q->location = -1;
    }
    if (q->open_segment > q->nsegments) {
        q->open_segment = 0;
    }
    if (q->nstacks > PP_STACKS_MAX) {
        q->nstacks = PP_STACKS_MAX;
    }
}

int pp_store_read_req(const pp_record_t *rec, pp_req_t *out)
{
    int tries;

    for (tries = 0; tries < 8; tries++) {
        uint32_t s1 = atomic_load_explicit(&rec->seq, memory_order_acquire);
        if (s1 & 1u) {
            continue;
        }
        memcpy(out, &rec->req, sizeof(*out));
        atomic_thread_fence(memory_order_acquire);
        if (s1 == atomic_load_explicit(&rec->seq, memory_order_relaxed)) {
            terminate_req(out);
            return out->serial != 0;
        }
    }
    return 0;
}

uint32_t pp_store_listed_traces(const pp_store_t *st)
{
    return st->keep + st->nspecial;
}

uint32_t pp_store_all_traces(const pp_store_t *st)
{
    return st->keep + st->nspecial + st->nfast;
}

const pp_record_t *pp_store_trace_at(const pp_store_t *st, uint32_t i)
{
    if (i >= pp_store_all_traces(st)) {
        return NULL;
    }
    return (const pp_record_t *)((const char *)st + st->off_traces) + i;
}

const pp_record_t *pp_store_slot_rec(const pp_store_t *st, uint32_t i)
{
    const pp_slot_t *slot;

    if (i >= st->nslots) {
        return NULL;
    }
    slot = (const pp_slot_t *)((const char *)st + st->off_slots) + i;
    if (PP_SLOT_PHASE(atomic_load(&slot->state)) != PP_SLOT_ACTIVE) {
        return NULL;
    }
    return &slot->rec;
}

int pp_store_read_trace(const pp_store_t *st, uint32_t i, pp_record_t *out)
{
    const pp_record_t *r = pp_store_trace_at(st, i);
    return r ? pp_store_read_record(r, out) : 0;
}

int pp_store_read_slot(const pp_store_t *st, uint32_t i, pp_record_t *out)
{
    const pp_slot_t *slot;

    if (i >= st->nslots) {
        return 0;
    }
    slot = (const pp_slot_t *)((const char *)st + st->off_slots) + i;
    if (PP_SLOT_PHASE(atomic_load(&slot->state)) != PP_SLOT_ACTIVE) {
        return 0;
    }
    return pp_store_read_record(&slot->rec, out);
}

int pp_store_find(const pp_store_t *st, const char *id, pp_record_t *out,
                  int *inflight)
{
    uint32_t i;
    pp_req_t q;

    if (!id || !*id) {
        return 0;
    }
    /* a kept copy has the final status: prefer it to an in-flight slot */
    for (i = 0; i < pp_store_all_traces(st); i++) {
        const pp_record_t *r = pp_store_trace_at(st, i);
        if (pp_store_read_req(r, &q) && strncmp(q.id, id, PP_ID_MAX) == 0 &&
            pp_store_read_record(r, out) &&
            strncmp(out->req.id, id, PP_ID_MAX) == 0) {
            *inflight = 0;
            return 1;
        }
    }
    for (i = 0; i < st->nslots; i++) {
        const pp_record_t *r = pp_store_slot_rec(st, i);
        if (r && pp_store_read_req(r, &q) &&
            strncmp(q.id, id, PP_ID_MAX) == 0 &&
            pp_store_read_record(r, out) &&
            strncmp(out->req.id, id, PP_ID_MAX) == 0) {
            *inflight = 1;
            return 1;
        }
    }
    return 0;
}

int pp_store_find_trace_id(const pp_store_t *st, const char *trace_id,
                           pp_req_t *out)
{
    uint32_t i;
    pp_req_t q;
    int found = 0;

    if (!trace_id || !*trace_id) {
        return 0;
    }
    for (i = 0; i < pp_store_all_traces(st); i++) {
        if (pp_store_read_req(pp_store_trace_at(st, i), &q) &&
            strncmp(q.trace_id, trace_id, PP_TRACE_ID_MAX) == 0 &&
            (!found || q.start_us > out->start_us)) {
            *out = q;
            found = 1;
        }
    }
    for (i = 0; i < st->nslots; i++) {
        const pp_record_t *r = pp_store_slot_rec(st, i);
        if (r && pp_store_read_req(r, &q) &&
            strncmp(q.trace_id, trace_id, PP_TRACE_ID_MAX) == 0 &&
            (!found || q.start_us > out->start_us)) {
            *out = q;
            found = 1;
        }
    }
    return found;
}

pp_agg_entry_t *pp_store_agg(const pp_store_t *st, uint32_t *n)
{
    *n = st->nagg;
    return (pp_agg_entry_t *)((char *)st + st->off_agg);
}

pp_agg_entry_t *pp_store_agg_slow(const pp_store_t *st, uint32_t *n)
{
    *n = st->nagg_slow;
    return (pp_agg_entry_t *)((char *)st + st->off_agg_slow);
}

uint64_t pp_store_arena_used(const pp_store_t *st)
{
    return atomic_load(&st->arena_used) * ARENA_UNIT;
}

/* ---- renewal (parent, at a graceful restart) ---- */

/* Renew at half full.  The intern tables are probed linearly for at most
 * PROBE_LIMIT entries, and clusters make them refuse inserts from about
 * 70% (1,024 frames: the first refusal at 73%): the next generation's
 * code needs the rest.  What a renewal carries over takes at most a
 * quarter. */
#define RENEW_AT(used, cap) ((uint64_t)(used) * 2 >= (uint64_t)(cap))
#define CARRY_MAX(used, cap) ((uint64_t)(used) * 4 >= (uint64_t)(cap))

static uint32_t table_used(const _Atomic uint64_t *tab, uint32_t n)
{
    uint32_t i, used = 0;

    for (i = 0; i < n; i++) {
        used += atomic_load_explicit(&tab[i], memory_order_relaxed) != 0;
    }
    return used;
}

static int prefix_listed(const char *path, const char *const *prefixes,
                         int n)
{
    int i;

    for (i = 0; i < n; i++) {
        if (prefixes[i] && strncmp(path, prefixes[i], PP_PREFIX_MAX) == 0) {
            return 1;
        }
    }
    return 0;
}

int pp_store_wants_renewal(const pp_store_t *st, const char *const *prefixes,
                           int n, const char **why)
{
    int i, used = 0, have = 0, want = 0;

    if (RENEW_AT(table_used(frame_table(st), st->nframes), st->nframes)) {
        *why = "the frame table is half full";
        return 1;
    }
    if (RENEW_AT(table_used(node_table(st), st->nnodes), st->nnodes)) {
        *why = "the stack table is half full";
        return 1;
    }
    if (RENEW_AT(atomic_load(&st->arena_used) * ARENA_UNIT, st->arena_size)) {
        *why = "the frame text is half full";
        return 1;
    }
    for (i = 0; i < PP_MAX_LOCATIONS; i++) {
        const pp_location_t *loc =
            (const pp_location_t *)((const char *)st + st->off_locations) + i;
        if (atomic_load(&loc->used)) {
            used++;
            have += prefix_listed(loc->path, prefixes, n);
        }
    }
    /* distinct prefixes configured now that have no row yet */
    for (i = 0; i < n; i++) {
        int j, dup = 0;
        for (j = 0; j < i && !dup; j++) {
            dup = prefixes[j] && prefixes[i] &&
                  strncmp(prefixes[i], prefixes[j], PP_PREFIX_MAX) == 0;
        }
        want += !dup && prefixes[i];
    }
    if (want - have > PP_MAX_LOCATIONS - used && used > have) {
        *why = "the location rows are taken by prefixes no longer "
               "configured";
        return 1;
    }
    return 0;
}

/* What a renewal has moved so far: src id -> dst id for nodes and
 * frames, and how many of each (the budget). */
typedef struct renew_map {
    uint32_t *node, *frame;
    uint32_t nodes, frames;
} renew_map_t;

/* The node in dst for node `node` of src, interning its chain from the
 * nearest ancestor already mapped.  0 if the chain does not resolve or
 * dst is full. */
static uint32_t renew_node(pp_store_t *dst, const pp_store_t *src,
                           renew_map_t *m, uint32_t node)
{
    uint32_t *memo = m->node;
    uint32_t chain[PP_DEPTH_LIMIT + 2], parent, frame, cur = node, to = 0;
    uint32_t n = 0;

    while (cur) {
        if (cur > src->nnodes) {
            return 0;
        }
        if (memo[cur]) {
            break;
        }
        if (n == PP_DEPTH_LIMIT + 2 ||
            !pp_store_node_get(src, cur, &parent, &frame)) {
            return 0;
        }
        chain[n++] = cur;
        cur = parent;
    }
    if (cur) {
        to = memo[cur];
    }
    while (n > 0) {
        pp_frame_view_t fv;
        uint32_t f;

        cur = chain[--n];
        if (!pp_store_node_get(src, cur, &parent, &frame) ||
            frame > src->nframes) {
            return 0;
        }
        if (!(f = m->frame[frame])) {
            if (!pp_store_frame_view(src, frame, &fv) ||
                !(f = pp_store_intern_frame(dst, fv.function,
                                            strlen(fv.function), fv.file,
                                            strlen(fv.file), fv.line))) {
                return 0;
            }
            m->frame[frame] = f;
            m->frames++;
        }
        if (!(to = pp_store_intern_node(dst, to, f))) {
            return 0;
        }
        memo[cur] = to;
        m->nodes++;
    }
    return to;
}

/* Move one kept trace (src's record i) to the same place in dst. */
static void renew_trace(pp_store_t *dst, const pp_store_t *src,
                        renew_map_t *m, uint32_t i, const int *carried)
{
    static pp_record_t rec; /* parent only, one at a time */
    pp_record_t *to = (pp_record_t *)((char *)dst + dst->off_traces) + i;
    uint32_t j, other = pp_store_intern_node(dst, 0, dst->frame_other);

    if (!pp_store_read_trace(src, i, &rec)) {
        return;
    }
    memcpy(&to->req, &rec.req, sizeof(to->req));
    memcpy(to->segments, rec.segments, sizeof(to->segments));
    to->req.nstacks = 0;
    if (to->req.location < 0 || to->req.location >= PP_MAX_LOCATIONS ||
        !carried[to->req.location]) {
        to->req.location = -1;
    }
    for (j = 0; j < PP_STACKS_MAX; j++) {
        const pp_stack_count_t *e = &rec.stacks[j];
        pp_stack_count_t *ne;
        uint32_t node;

        if (!e->node) {
            continue;
        }
        node = renew_node(dst, src, m, e->node);
        if (!(ne = stack_entry(to, node ? node : other, 1))) {
            continue;
        }
        ne->count += e->count;
        ne->weight_us += e->weight_us;
        ne->cpu_us += e->cpu_us;
    }
    to->req.last_node =
        rec.req.last_node ? renew_node(dst, src, m, rec.req.last_node) : 0;
    atomic_store(&to->seq, 2);
}

int pp_store_renew(pp_store_t *dst, const pp_store_t *src,
                   const char *const *prefixes, int n)
{
    /* the rings, each newest first: main, triggered/captured, fast */
    struct {
        uint32_t base, size;
        uint64_t next;
    } rings[3];
    int carried[PP_MAX_LOCATIONS];
    renew_map_t m;
    uint64_t left_behind = 0;
    uint32_t r, k;
    int loc, dropped = 0;
    size_t node_bytes, frame_bytes;

    if (!dst || !src || dst->nslots != src->nslots ||
        dst->keep != src->keep || dst->nspecial != src->nspecial ||
        dst->nfast != src->nfast || dst->nframes < src->nframes ||
        dst->nnodes < src->nnodes) {
        return -1;
    }
    rings[0].base = 0;
    rings[0].size = src->keep;
    rings[0].next = atomic_load(&src->trace_next);
    rings[1].base = src->keep;
    rings[1].size = src->nspecial;
    rings[1].next = atomic_load(&src->special_next);
    rings[2].base = src->keep + src->nspecial;
    rings[2].size = src->nfast;
    rings[2].next = atomic_load(&src->fast_next);
    memset(&m, 0, sizeof(m));
    node_bytes = ((size_t)src->nnodes + 1) * sizeof(uint32_t);
    frame_bytes = ((size_t)src->nframes + 1) * sizeof(uint32_t);
    m.node = mmap(NULL, node_bytes, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); // cppcheck-suppress invalidFunctionArg
    m.frame = mmap(NULL, frame_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); // cppcheck-suppress invalidFunctionArg
    if (m.node == MAP_FAILED || m.frame == MAP_FAILED) {
        if (m.node != MAP_FAILED) {
            munmap(m.node, node_bytes);
        }
        if (m.frame != MAP_FAILED) {
            munmap(m.frame, frame_bytes);
        }
        return -1;
    }
    for (loc = 0; loc < PP_MAX_LOCATIONS; loc++) {
        const pp_location_t *from =
            (const pp_location_t *)((const char *)src + src->off_locations) +
            loc;
        pp_location_t *to = pp_store_location(dst, loc);

        carried[loc] = 0;
        if (!atomic_load(&from->used)) {
            continue;
        }
        if (!prefix_listed(from->path, prefixes, n)) {
            dropped++;
            continue;
        }
        memcpy(to, from, sizeof(*to));
        to->path[PP_PREFIX_MAX - 1] = '\0';
        to->app_root[PP_PREFIX_MAX - 1] = '\0';
        carried[loc] = 1;
    }
    /* Kept traces, newest first, while they take at most a quarter of
     * each table: the new code needs the room.  The older ones left
     * behind count as evicted. */
    for (r = 0; r < 3; r++) {
        for (k = 0; k < rings[r].size; k++) {
            uint32_t i = rings[r].base +
                         (uint32_t)((rings[r].next + rings[r].size - 1 - k) %
                                    rings[r].size);
            const pp_record_t *rec = pp_store_trace_at(src, i);

            if (!rec || !rec->req.serial) {
                continue;
            }
            if (CARRY_MAX(m.frames, dst->nframes) ||
                CARRY_MAX(m.nodes, dst->nnodes) ||
                CARRY_MAX(atomic_load(&dst->arena_used) * ARENA_UNIT,
                          dst->arena_size)) {
                left_behind++;
                continue;
            }
            renew_trace(dst, src, &m, i, carried);
        }
    }
    munmap(m.node, node_bytes);
    munmap(m.frame, frame_bytes);

    memcpy(&dst->c, &src->c, sizeof(dst->c));
    atomic_fetch_add(&dst->c.renewals, 1);
    atomic_store(&dst->c.renewed_us, (uint64_t)wall_us());
    atomic_fetch_add(&dst->c.locations_reclaimed, (uint64_t)dropped);
    atomic_fetch_add(&dst->c.traces_evicted, left_behind);
    atomic_store(&dst->generation, atomic_load(&src->generation));
    dst->created_us = src->created_us;
    atomic_store(&dst->serial_next, atomic_load(&src->serial_next));
    atomic_store(&dst->trace_next, rings[0].next);
    atomic_store(&dst->special_next, rings[1].next);
    atomic_store(&dst->fast_next, rings[2].next);
    atomic_store(&dst->capture_seq, atomic_load(&src->capture_seq));
    return dropped;
}
