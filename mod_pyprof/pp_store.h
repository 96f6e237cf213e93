/* pp_store.h: the shared store every Apache child and the handler see.
 *
 * One anonymous MAP_SHARED mapping made in the parent and inherited through
 * fork.  Fixed size, laid out once, never grows; nothing in it is a pointer
 * (only offsets and ids, bounds-checked on every read), so a corrupt or
 * half-written record can make a page wrong but never crash a reader.
 *
 * Concurrency: writers are request threads (claim, notes, segments,
 * finish) and one sampler thread per process; readers are handlers in any
 * child, and never wait.  Counters are atomics; records carry a sequence
 * counter (odd while being written) that readers check their copy
 * against; intern tables are insert-only and publish an entry with a
 * single compare-and-swap after its bytes are written.  The one wait is a
 * slot's write token (pp_slot_t): a writer of a slot's record swaps its
 * thread id into the slot, and one that finds another writer there spins
 * briefly, then yields, for a bounded time (10 ms once the holder is
 * seen stopped without writing, 200 ms at most), takes over a token left
 * by a thread that no longer exists, and otherwise gives up (a sample or
 * a note is dropped, counted in writes_dropped).  A process killed
 * mid-write leaves at most that one record odd (unreadable) or a few arena
 * bytes unreferenced.
 *
 * Split by caller: pp_store.c (layout, create, location rows: the parent
 * at config time), pp_store_req.c (request threads' writes),
 * pp_store_sample.c (sampler threads' writes), pp_store_agg.c (finish and
 * the aggregates), pp_store_intern.c (frame and node interning),
 * pp_store_read.c (the pages' readers), pp_store_renew.c (renewal at a
 * graceful restart), pp_store_token.c (the slot token); pp_store_int.h is
 * what they share.
 */
#ifndef PP_STORE_H
#define PP_STORE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pp_hist.h"

#define PP_STORE_MAGIC 0x31666f7270797070ULL /* "ppyprof1" */
#define PP_STORE_VERSION                       \
    3 /* 2: samples_wait_core, phase counters; \
       * 3: guarded copies' counters, GIL blame */

#define PP_PREFIX_MAX 256
#define PP_MAX_LOCATIONS 64
#define PP_ID_MAX 48
#define PP_METHOD_MAX 16
#define PP_URI_MAX 512
#define PP_VHOST_MAX 96
#define PP_STACKS_MAX 256 /* distinct stacks kept per request (power of 2) */
#define PP_DEPTH_LIMIT 1024
#define PP_INTERVAL_MIN_US 1000 /* sampling intervals a config accepts */
#define PP_INTERVAL_MAX_US 10000000
#define PP_FRAME_TEXT_MAX 1024 /* function and file name, each, bytes */
#define PP_COST_BUCKETS 40     /* log2 ns buckets of the per-sample cost */
#define PP_STATUS_CLASSES 6    /* 1xx..5xx and "other" (e.g. aborted) */
#define PP_EPOCHS 64           /* per-minute aggregates: windows up to 1 h */
#define PP_EPOCH_US 60000000LL
#define PP_EPOCH_RESETTING (1ULL << 63)
/* the longest window the per-minute tables can answer (a minute stays in
 * reserve for the one being rewritten) */
#define PP_WINDOW_MAX_US ((int64_t)(PP_EPOCHS - 4) * PP_EPOCH_US)

/* record flags */
#define PP_REQ_TRUNCATED 0x1u  /* some stack was deeper than PyProfMaxDepth */
#define PP_REQ_TRIGGERED 0x2u  /* PyProfTrigger header with the secret */
#define PP_REQ_CAPTURED 0x4u   /* one of the next N requests of a capture */
#define PP_REQ_FAST 0x8u       /* kept only because its id was sent out */
#define PP_REQ_DAEMON 0x10u    /* sampled in a mod_wsgi daemon process */
#define PP_REQ_RUN_DELAY 0x20u /* run_delay_us is known */
#define PP_REQ_ALLOC 0x40u     /* PyProfAllocations: alloc_* are known */

/* PyProfAllocations: the allocating stacks a record keeps, largest first
 * (the rest are folded into an [other stacks] entry), and the flags of
 * alloc_flags */
#define PP_ALLOC_STACKS 16
#define PP_ALLOC_LIVE_FULL                            \
    0x1u /* some sample found the live set full: its  \
          * free is not seen, alloc_live_bytes may be \
          * too high */

#define PP_GROUP_MAX 48     /* mod_wsgi process group name */
#define PP_APP_GROUP_MAX 96 /* mod_wsgi application group name */
#define PP_SEGMENTS_MAX 48  /* timed segments kept per request */
#define PP_SEGMENT_NAME_MAX 24
#define PP_SEGMENT_DETAIL_MAX 96

#define PP_TRACE_ID_MAX 33 /* W3C trace-id: 32 hex digits */
#define PP_SPAN_ID_MAX 17  /* W3C parent-id: 16 hex digits */
#define PP_FAST_KEEP 64    /* fast requests kept for their X-PyProf-Id */

/* how a sample's interval was spent, from the thread's CPU clock and, off
 * CPU, its kernel wait channel (see pp_sampler_classify.c):
 * GIL_WAIT and WAIT_CORE are kinds of off CPU, the first blocked on a
 * futex, the second runnable but waiting for a core to run on */
enum {
    PP_SAMPLE_ON_CPU = 0,
    PP_SAMPLE_OFF_CPU = 1,
    PP_SAMPLE_GIL_WAIT = 2,
    PP_SAMPLE_WAIT_CORE = 3,
    /* waiting for the GIL with no Python frame yet: mod_wsgi takes it
     * before the app's first frame (and between frames); a kind of off
     * CPU whose time is not Python's */
    PP_SAMPLE_GIL_ENTER = 4
};
#define PP_SAMPLE_TRUNCATED 0x100 /* or'ed in: the stack was cut */

/* how the samplers read stacks (PyProfSampler): NOGIL copies with
 * guarded memcpy() where it can, NOGIL_SYSCALL with process_vm_readv */
enum { PP_SAMPLER_NOGIL = 0, PP_SAMPLER_GIL = 1, PP_SAMPLER_NOGIL_SYSCALL = 2 };

/* what pp_store_finish keeps */
enum { PP_KEEP_NONE = 0, PP_KEEP_SLOW = 1, PP_KEEP_FAST = 2 };

/* special frame ids (interned like any other frame at create time) */
#define PP_FRAME_TRUNCATED_TEXT "[truncated]"
#define PP_FRAME_UNKNOWN_TEXT "[frame table full]"
#define PP_FRAME_OTHER_TEXT "[other stacks]"

/* Who held the GIL while a request waited for it (GIL blame): one entry
 * per distinct (holder request or thread, holder's innermost frame); the
 * last of a record's PP_GIL_HOLDERS takes whatever does not fit
 * (location PP_GIL_OTHER).  Also what the sampler hands the store with a
 * GIL-wait sample (samples and wait_us then unused). */
#define PP_GIL_HOLDERS 8
#define PP_GIL_URI_MAX 96 /* the holder's URI, cut */
#define PP_GIL_NO_LOCATION (-1)
#define PP_GIL_OTHER (-2) /* the entry of the holders that did not fit */
typedef struct pp_gil_holder {
    uint64_t serial; /* the holder's request, 0: it served none */
    char id[PP_ID_MAX];
    char method[PP_METHOD_MAX];
    char uri[PP_GIL_URI_MAX];
    int32_t location; /* the holder request's; PP_GIL_NO_LOCATION */
    int32_t tid;      /* the holder's thread (native id), 0 unknown */
    uint32_t frame;   /* its innermost Python frame, 0 none */
    uint32_t samples; /* samples that waited behind it */
    uint64_t wait_us; /* their weight */
} pp_gil_holder_t;

typedef struct pp_stack_count {
    uint32_t node;      /* leaf node id, 0 = empty entry */
    uint32_t count;     /* samples */
    uint64_t weight_us; /* wall time attributed to this stack */
    uint64_t cpu_us;    /* thread CPU time attributed to this stack */
} pp_stack_count_t;

/* One allocating stack of a request (PyProfAllocations): estimated bytes
 * and allocations of the samples taken there. */
typedef struct pp_alloc_stack {
    uint32_t node;  /* leaf node id, 0 = empty entry */
    uint32_t count; /* estimated allocations (saturating) */
    uint64_t bytes; /* estimated bytes */
} pp_alloc_stack_t;

/* What the pages show about one request; shared by in-flight slots and
 * kept traces. */
typedef struct pp_req {
    uint64_t serial; /* unique per store lifetime */
    char id[PP_ID_MAX];
    char method[PP_METHOD_MAX];
    char uri[PP_URI_MAX];
    char vhost[PP_VHOST_MAX];
    int32_t pid;
    int32_t tid;
    int32_t location;
    int32_t status;
    uint32_t interval_us;
    uint32_t max_depth;
    int64_t start_us;    /* wall clock, microseconds since the epoch */
    int64_t duration_us; /* set when finished */
    int64_t cpu_us;      /* thread CPU time, start to finish */
    int64_t sampled_cpu_us;
    uint32_t samples;
    uint32_t nstacks;
    uint32_t samples_overflow; /* samples folded into [other stacks] */
    uint32_t flags;
    uint32_t last_node; /* most recent sampled stack */
    uint32_t capture;   /* capture id, for PP_REQ_CAPTURED */
    int64_t last_sample_us;
    char trace_id[PP_TRACE_ID_MAX];
    char parent_id[PP_SPAN_ID_MAX];
    char unique_id[PP_ID_MAX];
    uint32_t samples_on_cpu;
    uint32_t samples_off_cpu;
    uint32_t samples_gil_wait;  /* of samples_off_cpu: blocked on a futex */
    uint32_t samples_wait_core; /* of samples_off_cpu: runnable, no core */
    uint32_t samples_outside;   /* the thread had no Python frame */
    int64_t outside_us;         /* their weight */
    /* the time off CPU of the samples off CPU (weight less CPU time), by
     * what they saw: blocked on a futex, waiting for a core, the rest */
    int64_t off_gil_us;
    int64_t off_core_us;
    int64_t off_other_us;
    /* the sampled thread's time runnable but waiting for a core, from
     * registration to its end (the kernel's schedstat), PP_REQ_RUN_DELAY */
    int64_t run_delay_us;
    int64_t handler_start_us; /* wall clock; 0 = unknown */
    int64_t app_end_us;       /* response complete (EOS); 0 = unknown */
    int32_t daemon_pid;       /* the daemon process that ran the app */
    int64_t daemon_cpu_us;    /* its thread's CPU time for the request */
    uint32_t nsegments;
    uint32_t open_segment; /* index + 1 of the innermost open segment */
    uint32_t segments_dropped;
    char process_group[PP_GROUP_MAX];
    char app_group[PP_APP_GROUP_MAX];
    /* GIL blame: the weight of the samples that waited for the GIL in
     * Python (PP_SAMPLE_GIL_WAIT) and to enter it (PP_SAMPLE_GIL_ENTER) */
    int64_t gil_wait_us;
    int64_t gil_enter_us;
    uint32_t samples_gil_enter;
    uint32_t ngil_holders; /* entries used in the record's gil_holders */
    /* PyProfAllocations (PP_REQ_ALLOC): estimated bytes and allocations
     * made by the request's thread, and the bytes of those still live when
     * it ended; the samples behind the estimates, the sampling mean */
    uint64_t alloc_bytes;
    uint64_t alloc_count;
    uint64_t alloc_live_bytes;
    uint32_t alloc_samples;
    uint32_t alloc_mean;
    uint32_t alloc_nstacks; /* entries used in the record's alloc_stacks */
    uint32_t alloc_flags;   /* PP_ALLOC_* */
} pp_req_t;

/* An exact timing inside a request: pyprof.segment() / @pyprof.trace. */
typedef struct pp_segment {
    char name[PP_SEGMENT_NAME_MAX];
    char detail[PP_SEGMENT_DETAIL_MAX];
    int64_t start_us; /* from the request's start */
    int64_t dur_us;   /* -1 while open */
    uint16_t depth;
    uint16_t parent;  /* index + 1; 0 = top level */
    uint32_t samples; /* samples taken while it was the innermost open one */
    uint64_t weight_us;
} pp_segment_t;

typedef struct pp_record {
    _Atomic uint32_t seq; /* odd while being written */
    uint32_t pad;
    pp_req_t req;
    pp_stack_count_t stacks[PP_STACKS_MAX]; /* open-addressed by node */
    pp_segment_t segments[PP_SEGMENTS_MAX];
    pp_gil_holder_t gil_holders[PP_GIL_HOLDERS];
    pp_alloc_stack_t alloc_stacks[PP_ALLOC_STACKS]; /* largest first */
} pp_record_t;

/* A slot's state word holds its owner's pid and its phase together, so a
 * claim publishes the owner in the same compare-and-swap: a process killed
 * right after claiming still leaves a slot that names a dead pid. */
enum { PP_SLOT_FREE = 0, PP_SLOT_CLAIMED = 1, PP_SLOT_ACTIVE = 2 };
#define PP_SLOT_PHASE(state) ((state)&3u)
#define PP_SLOT_PID(state) ((int32_t)((state) >> 2))
#define PP_SLOT_STATE(pid, phase) (((uint32_t)(pid) << 2) | (phase))

/* Writers of one slot may be several threads of two processes (the
 * request thread and the sampler thread of the Apache child that claimed
 * it, and those of the mod_wsgi daemon that runs the app and samples it),
 * so writes take the slot's token: a compare-and-swap of the writer's
 * thread id (gettid(), unique among the live threads of the machine's pid
 * namespace), held for microseconds.  A writer that finds it taken waits
 * (bounded) rather than dropping its write, and one that has waited past
 * a short spin goes next (a sampler that writes back to back cannot starve
 * a request thread's segment end); a token or a place in line left by a
 * thread that no longer exists is taken over (kill(tid, 0) says ESRCH), so
 * nothing can wedge on it. */
typedef struct pp_slot {
    _Atomic uint32_t state;
    _Atomic int32_t token;       /* thread id of the writer, 0 = free */
    _Atomic int32_t sampler_pid; /* 0: the claimer samples; > 0: a daemon
                                  * adopted it; -1: finished */
    _Atomic int32_t waiter;      /* thread id of a writer that has waited
                                  * past the spin, and goes next */
    pp_record_t rec;
} pp_slot_t;

typedef struct pp_agg_entry {
    _Atomic uint64_t key; /* (location + 1) << 32 | node; 0 = empty */
    _Atomic uint64_t count;
    _Atomic uint64_t weight_us;
    _Atomic uint64_t cpu_us; /* thread CPU time, summed as a request's is */
} pp_agg_entry_t;

/* A location's GIL blame rows (pp_location_t.gil_blame): key (waiter's
 * location + 1) << 32 | holder's frame; count: samples that waited,
 * weight_us: their wait, cpu_us: requests delayed (added at the waiter's
 * end, once per holder entry of its record).  Open-addressed like the
 * aggregates; a wait that finds no room is counted (gil_blame_full). */
#define PP_GIL_BLAME_ROWS 32

typedef struct pp_location {
    _Atomic uint32_t used;
    uint32_t interval_us;
    uint64_t config_gen; /* generation that last configured it */
    int64_t created_us;
    char path[PP_PREFIX_MAX];
    _Atomic uint32_t root_state;  /* 0 unset, 1 being written, 2 set */
    char app_root[PP_PREFIX_MAX]; /* directory of the WSGI script */
    _Atomic uint64_t requests;
    _Atomic uint64_t samples;
    _Atomic uint64_t kept;
    _Atomic uint64_t sum_us;
    _Atomic uint64_t max_us;
    _Atomic uint64_t hist[PP_HIST_BUCKETS];
    /* the same split by status class (1xx..5xx, then anything else), for
     * the Prometheus histogram */
    _Atomic uint64_t class_hist[PP_STATUS_CLASSES][PP_HIST_BUCKETS];
    _Atomic uint64_t class_sum_us[PP_STATUS_CLASSES];
    /* an armed capture: keep the next capture_n requests (X-Ray) */
    _Atomic int32_t capture_left;
    _Atomic uint32_t capture_id;
    uint32_t capture_n;
    int64_t capture_armed_us;
    /* GIL blame, written with each GIL-wait sample: the wait of this
     * location's requests (suffered), the wait of any request behind a
     * holder serving this location (caused), and that caused wait by
     * (waiter's location, holder's innermost frame) in gil_blame */
    _Atomic uint64_t gil_wait_us;
    _Atomic uint64_t gil_blocking_us;
    pp_agg_entry_t gil_blame[PP_GIL_BLAME_ROWS];
    /* PyProfAllocations: estimated bytes its requests allocated, and of
     * them those still live when each request ended */
    _Atomic uint64_t alloc_bytes;
    _Atomic uint64_t alloc_retained;
} pp_location_t;


typedef struct pp_counters {
    _Atomic uint64_t samples; /* stacks recorded */
    _Atomic uint64_t ticks;   /* sampler wake-ups that took the GIL */
    _Atomic uint64_t sampler_cpu_ns;
    _Atomic uint64_t gil_wait_ns;
    _Atomic uint64_t walk_ns; /* wall time reading the stacks (GIL held in
                               * GIL mode) */
    /* wall time of the tick's two other phases: telling how each thread
     * spent its interval (CPU clocks, wait channels), and writing the
     * samples into the store (interning stacks, the records) */
    _Atomic uint64_t classify_ns;
    _Atomic uint64_t store_ns;
    /* the system calls of classifying: thread CPU clock reads and wait
     * channel reads (and those a cached verdict saved) */
    _Atomic uint64_t cpu_clock_reads;
    _Atomic uint64_t wchan_reads;
    _Atomic uint64_t wchan_reads_saved;
    _Atomic uint64_t traces_kept;
    _Atomic uint64_t traces_evicted;
    _Atomic uint64_t traces_torn;    /* ring entry busy; trace dropped */
    _Atomic uint64_t slots_full;     /* request not profiled: no free slot */
    _Atomic uint64_t slots_lost;     /* owner died while in flight */
    _Atomic uint64_t slots_reaped;   /* of those, slots freed by a reap */
    _Atomic uint64_t writes_dropped; /* slot token still busy after the
                                      * bounded wait: one write lost */
    _Atomic uint64_t frames_full;
    _Atomic uint64_t nodes_full;
    _Atomic uint64_t agg_full;
    _Atomic uint64_t epoch_busy; /* samples not windowed: minute rolling */
    _Atomic uint64_t stacks_overflow;
    _Atomic uint64_t threads_missing; /* in-flight thread had no frame */
    _Atomic uint64_t torn;            /* GIL-free samples dropped */
    _Atomic uint64_t nogil_processes; /* samplers running GIL-free */
    _Atomic uint64_t gil_processes;   /* samplers that take the GIL */
    /* GIL-free samplers that started with guarded copies (the others
     * use process_vm_readv), those of them whose SIGSEGV/SIGBUS handler
     * was replaced later (process_vm_readv from then on), and the faults
     * guarded copies recovered from (a page freed under the copy) */
    _Atomic uint64_t guarded_processes;
    _Atomic uint64_t guard_replaced;
    _Atomic uint64_t copy_faults;
    /* GIL blame: samples that waited for the GIL (in Python, to enter
     * it); of them, those beyond the count of the GIL's sleepers (a lock
     * waiter looks the same: an upper bound); walks of a holder that was
     * not a request due in that tick */
    _Atomic uint64_t gil_wait_samples;
    _Atomic uint64_t gil_enter_samples;
    _Atomic uint64_t gil_wait_ambiguous;
    _Atomic uint64_t gil_holder_walks;
    _Atomic uint64_t gil_blocking_no_request_us; /* caused by no request */
    _Atomic uint64_t gil_blame_full; /* waits a location's rows had no
                                        room for */
    _Atomic uint64_t sample_cost[PP_COST_BUCKETS]; /* log2(ns per sample) */
    /* graceful restarts that renewed the store (pp_store_renew): frames,
     * nodes and location rows of code and prefixes gone were reclaimed */
    _Atomic uint64_t renewals;
    _Atomic uint64_t renewed_us;          /* wall clock of the last one */
    _Atomic uint64_t locations_reclaimed; /* rows left behind by them */
    /* PyProfAllocations: estimated bytes allocated by threads serving no
     * request (imports, background threads), added at each request's end
     * and process exit; sampled allocations whose free could not be
     * tracked (the process's live set was full) */
    _Atomic uint64_t alloc_outside_bytes;
    _Atomic uint64_t alloc_live_full;
} pp_counters_t;

/* The header's first PP_STORE_PRIVATE_BYTES are process-private: the
 * parent writes the layout there once (pp_store_create, from post_config)
 * and pp_store_create maps that range MAP_PRIVATE over the shared mapping,
 * so every child and mod_wsgi daemon inherits the parent's copy through
 * fork, and what any process writes there (an application's bug or an
 * attacker's code in a daemon running as another user) stays in that
 * process.  Offsets, counts and divisors are only ever taken from there.
 * 64 KiB: a multiple of every page size Linux runs with. */
#define PP_STORE_PRIVATE_BYTES 65536

typedef struct pp_store {
    union {
        struct {
            uint64_t magic;
            uint32_t version;
            uint32_t header_size;
            uint64_t layout; /* sizes of every record type: a graceful
                              * restart that loads a rebuilt DSO must not
                              * reuse a store laid out by another build */
            uint64_t total_size;
            int64_t created_us;
            uint32_t nslots;
            uint32_t keep;
            uint32_t nspecial; /* ring of triggered and captured traces */
            uint32_t nfast;    /* ring of fast requests whose id was sent */
            unsigned char nonce_key[32]; /* HMAC key of the capture
                                          * form's nonce */
            uint32_t sampler_mode;       /* PP_SAMPLER_*, from PyProfSampler */
            uint32_t alloc_mean;         /* PyProfAllocations: bytes, 0 = Off */
            uint32_t nframes;
            uint32_t nnodes;
            uint32_t nagg;
            uint32_t nagg_slow; /* entries of the slow-requests aggregate */
            uint32_t nepoch;    /* entries of each per-minute aggregate */
            uint32_t frame_truncated; /* special frame ids */
            uint32_t frame_unknown;
            uint32_t frame_other;
            uint64_t arena_size;
            uint64_t off_locations, off_slots, off_traces, off_frames,
                off_nodes, off_agg, off_agg_slow, off_epochs, off_epoch_stamps,
                off_arena;
        };
        char private_bytes[PP_STORE_PRIVATE_BYTES];
    };
    /* shared from here on: atomics only */
    /* Bumped by every post_config that reuses the store.  Shared, not in
     * the private header: children of the old generation, still serving
     * during a graceful restart, must see the locations the new
     * configuration registered (a private copy made them answer 404 for
     * those).  A process that scribbles here can only hide locations from
     * the pages, as it could by scribbling on the rows themselves. */
    _Atomic uint64_t generation;
    _Atomic uint64_t serial_next;
    _Atomic uint64_t trace_next;
    _Atomic uint64_t special_next;
    _Atomic uint64_t fast_next;
    _Atomic uint32_t capture_seq;
    _Atomic uint64_t arena_used;
    _Atomic int64_t reap_last_us; /* CLOCK_MONOTONIC of the last reap */
    pp_counters_t c;
} pp_store_t;

/* Resolved view of an interned frame (pointers into the store). */
typedef struct pp_frame_view {
    const char *function;
    const char *file;
    uint32_t line;
} pp_frame_view_t;

/* ---- sizing and creation (parent, single-threaded, at post_config) ---- */

/* Smallest mapping that holds nslots slots and keep traces with usable
 * intern tables. */
uint64_t pp_store_min_size(uint32_t nslots, uint32_t keep);

/* Map and lay out a store of `size` bytes.  NULL with *err set if it does
 * not fit or mmap fails. */
pp_store_t *pp_store_create(uint64_t size, uint32_t nslots, uint32_t keep,
                            const char **err);

/* The capture form's nonce (like balancer-manager's, but bound to time):
 * hex of HMAC-SHA256(nonce_key, window number), windows of an hour, so a
 * nonce that leaked stops working within two hours instead of living as
 * long as the store.  pp_store_form_nonce_ok accepts the window of now_us
 * and the one before (a page loaded just before the hour turns).  Both are
 * the handlers', in any child (pp_store_read.c). */
#define PP_NONCE_LEN 64
#define PP_NONCE_WINDOW_US (3600LL * 1000000)
void pp_store_form_nonce(const pp_store_t *st, int64_t now_us,
                         char out[PP_NONCE_LEN + 1]);
int pp_store_form_nonce_ok(const pp_store_t *st, const char *given,
                           int64_t now_us);
void pp_store_destroy(pp_store_t *st);

/* Can a store made for a previous generation be kept as it is? */
int pp_store_compatible(const pp_store_t *st, uint64_t size, uint32_t nslots,
                        uint32_t keep);

/* Find or add the row for a URL prefix; -1 if the table is full.  The
 * parent, at post_config. */
int pp_store_location_register(pp_store_t *st, const char *path,
                               uint32_t interval_us);
/* Row idx, or NULL; any thread of any process. */
pp_location_t *pp_store_location(pp_store_t *st, int idx);
/* Status class index for a status code: 0..4 for 1xx..5xx, 5 otherwise. */
int pp_status_class(int status);

/* Record the application's root directory once (first caller wins): a
 * request thread, when its request finishes. */
void pp_store_location_set_root(pp_store_t *st, int idx, const char *root);
/* Copy the root into buf (cap bytes); "" if unknown.  The pages. */
const char *pp_store_location_root(const pp_store_t *st, int idx, char *buf,
                                   size_t cap);

/* ---- request life cycle (request threads; the sampler where named) ---- */

typedef struct pp_req_info {
    const char *id;
    const char *trace_id; /* validated W3C ids, or NULL */
    const char *parent_id;
    uint32_t flags; /* PP_REQ_TRIGGERED / PP_REQ_CAPTURED */
    uint32_t capture;
    const char *method;
    const char *uri;
    const char *vhost;
    int32_t pid;
    int32_t tid;
    int32_t location;
    uint32_t interval_us;
    uint32_t max_depth;
    int64_t start_us;
} pp_req_info_t;

/* Claim a free slot for a request and publish it as in flight (the
 * Apache child's request thread).  When none
 * is free, the slots of dead processes are reaped first (at most once per
 * PP_REAP_INTERVAL_US in the whole store).  Returns the slot index or -1
 * (store full; counted). */
int pp_store_claim(pp_store_t *st, const pp_req_info_t *info, int hint);

pp_slot_t *pp_store_slot(pp_store_t *st, int idx);

/* Request facts learnt after the claim: the claiming request thread,
 * under the slot's token. */
void pp_store_note_handler_start(pp_store_t *st, int idx, int64_t us);
void pp_store_note_app_end(pp_store_t *st, int idx, int64_t us);
void pp_store_note_unique_id(pp_store_t *st, int idx, const char *id);
/* The daemon's thread CPU time for the request: the adopting daemon's
 * application thread, at the end of the request. */
void pp_store_note_daemon_cpu(pp_store_t *st, int idx, uint64_t serial,
                              int64_t cpu_us);
/* The time the sampled thread spent waiting for a core while it served
 * the request: that thread, when it unregisters. */
void pp_store_note_run_delay(pp_store_t *st, int idx, uint64_t serial,
                             int64_t us);
/* PyProfAllocations: what the process that ran the request's Python
 * estimated it allocated (a->req's alloc_* fields and n stacks, largest
 * first), at the request's end; nothing is written if another process
 * adopted the slot (the daemon that ran it writes its own).  Also adds
 * to the location's totals.  0, or -1 if nothing was written. */
int pp_store_note_alloc(pp_store_t *st, int idx, uint64_t serial,
                        const pp_req_t *a, const pp_alloc_stack_t *stacks,
                        uint32_t n);

/* The sampler thread's samples, checked against the request they were
 * taken for: nothing is written if the slot now holds another request
 * (serial), or if another process adopted it. */
void pp_store_sample(pp_store_t *st, int idx, uint64_t serial, uint32_t node,
                     int64_t now_us, uint64_t weight_us, uint64_t cpu_us,
                     int how);
/* The same for a sample that waited for the GIL (how PP_SAMPLE_GIL_WAIT
 * or PP_SAMPLE_GIL_ENTER), charged to holder (NULL: unknown). */
void pp_store_sample_gil(pp_store_t *st, int idx, uint64_t serial,
                         uint32_t node, int64_t now_us, uint64_t weight_us,
                         uint64_t cpu_us, int how,
                         const pp_gil_holder_t *holder);
void pp_store_sample_outside(pp_store_t *st, int idx, uint64_t serial,
                             int64_t now_us, uint64_t weight_us);
/* Is this process the one that samples slot idx?  The sampler thread. */
int pp_store_samples_here(pp_store_t *st, int idx, int32_t pid);

/* Daemon mode: the in-flight request with this id, adopted by `pid` (a
 * daemon process, from its application thread) for sampling.  Slot
 * index, or -1 (not found, not sampled, or already adopted).  Fills
 * serial, interval and depth. */
int pp_store_adopt(pp_store_t *st, const char *id, int32_t pid,
                   const char *process_group, const char *app_group,
                   uint64_t *serial, uint32_t *interval_us,
                   uint32_t *max_depth);

/* Segments, from the application's thread (pyprof API): begin returns
 * index + 1 (0 if the request is gone or full). */
uint32_t pp_store_segment_begin(pp_store_t *st, int idx, uint64_t serial,
                                const char *name, const char *detail,
                                int64_t now_us);
void pp_store_segment_end(pp_store_t *st, int idx, uint64_t serial,
                          uint32_t seg, int64_t now_us);

/* Arm a capture of the next n requests of a location; its id.  The
 * capture form's handler. */
uint32_t pp_store_capture_arm(pp_store_t *st, int location, uint32_t n);
/* Take one request from an armed capture: its id, or 0 if none left.  A
 * request thread, before its claim. */
uint32_t pp_store_capture_take(pp_store_t *st, int location);

/* Finish a request: histogram, per-location aggregate, trace, and free the
 * slot.  keep is PP_KEEP_*: slow traces go to the main ring, or, when the
 * request was triggered or captured, to their own smaller ring so a flood
 * of them never evicts ordinary slow traces; PP_KEEP_FAST keeps it in the
 * small ring of fast requests, out of the slow list.  Called once, by the
 * request thread that claimed the slot, after unregistering it from its
 * sampler; it takes the slot's token (and finishes anyway, counted in
 * traces_torn, if the wait gives up) and marks the slot finished so that
 * no sampler, this process' or a daemon's, writes to it again. */
void pp_store_finish(pp_store_t *st, int idx, int status, int64_t duration_us,
                     int64_t cpu_us, int keep);

/* Free a slot without counting the request (it never finished: the
 * connection went away before logging); counted as lost.  The claiming
 * request thread, like pp_store_finish. */
void pp_store_abandon(pp_store_t *st, int idx);

/* Free slots whose owner process no longer exists (SIGKILL, the OOM
 * killer, a crash); counted in slots_lost and slots_reaped.  Returns how
 * many it freed.  Called from child_init, by a claim that finds no free
 * slot, and by the overview. */
#define PP_REAP_INTERVAL_US 100000
uint32_t pp_store_reap_dead(pp_store_t *st);

/* ---- interning (sampler threads; the parent too) ---- */

/* Intern a frame; 0 if the tables are full (counted).  Ids are stable for
 * the store's lifetime and never reused. */
uint32_t pp_store_intern_frame(pp_store_t *st, const char *func, size_t funclen,
                               const char *file, size_t filelen, uint32_t line);
/* Intern the child `frame` of node `parent` (0 = root); 0 if full. */
uint32_t pp_store_intern_node(pp_store_t *st, uint32_t parent, uint32_t frame);
/* Intern a whole stack, `frames` leaf first (depth of them), under a
 * [truncated] root when `truncated`: the root-first node chain's leaf, 0
 * if the tables are full. */
uint32_t pp_store_intern_stack(pp_store_t *st, const uint32_t *frames,
                               uint32_t depth, int truncated);
/* What one request's previous stack interned to, so that its next one
 * interns only the frames where it differs: the node chain of a stack is
 * a function of its frame ids, so the longest root-side run of frames the
 * two share has the node remembered for it.  Any stack's memo serves any
 * other's (it only saves lookups when they share a root side).  Caller-
 * owned (a sampler keeps one per request slot it samples), zeroed to
 * start; one thread's at a time. */
#define PP_STACK_MEMO_DEPTH 128
typedef struct pp_stack_memo {
    const pp_store_t *st; /* the store the nodes are of */
    int truncated;        /* the chain starts at [truncated] */
    uint32_t depth;       /* frames remembered, root first */
    uint32_t frames[PP_STACK_MEMO_DEPTH];
    uint32_t nodes[PP_STACK_MEMO_DEPTH]; /* node of frames[0..i] */
} pp_stack_memo_t;
/* pp_store_intern_stack through a memo (NULL: without one). */
uint32_t pp_store_intern_stack_memo(pp_store_t *st, pp_stack_memo_t *memo,
                                    const uint32_t *frames, uint32_t depth,
                                    int truncated);

/* ---- reading (handler, any process); all bounds-checked ---- */

int pp_store_frame_view(const pp_store_t *st, uint32_t frame,
                        pp_frame_view_t *out);
/* Parent and frame of a node; 0 if the id is invalid or not published. */
int pp_store_node_get(const pp_store_t *st, uint32_t node, uint32_t *parent,
                      uint32_t *frame);

/* Copy a consistent snapshot of a record; 0 if it is empty or keeps
 * changing (torn). */
int pp_store_read_record(const pp_record_t *rec, pp_record_t *out);
/* Copy only the request header of a record (cheap, for listings). */
int pp_store_read_req(const pp_record_t *rec, pp_req_t *out);
/* Kept traces: i < keep + nspecial (the slow list), then the fast ring. */
const pp_record_t *pp_store_trace_at(const pp_store_t *st, uint32_t i);
uint32_t pp_store_listed_traces(const pp_store_t *st);
uint32_t pp_store_all_traces(const pp_store_t *st);
/* The record of in-flight slot i, or NULL if the slot is not active. */
const pp_record_t *pp_store_slot_rec(const pp_store_t *st, uint32_t i);
int pp_store_read_trace(const pp_store_t *st, uint32_t i, pp_record_t *out);

/* Find a kept trace, or an in-flight request, by request id. */
int pp_store_find(const pp_store_t *st, const char *id, pp_record_t *out,
                  int *inflight);
/* The newest request (kept or in flight) with this W3C trace id. */
int pp_store_find_trace_id(const pp_store_t *st, const char *trace_id,
                           pp_req_t *out);

/* Aggregates, keyed (location + 1) << 32 | node: every sampled request of
 * a location since the store began; the same for only the requests at or
 * over their location's p95 when they finished (the "slow" side of the
 * differential view); and one table per minute for time windows. */
pp_agg_entry_t *pp_store_agg(const pp_store_t *st, uint32_t *n);
pp_agg_entry_t *pp_store_agg_slow(const pp_store_t *st, uint32_t *n);
/* The table of the minute `minute` (wall clock us / PP_EPOCH_US) if it
 * still holds that minute, else NULL. */
pp_agg_entry_t *pp_store_epoch(const pp_store_t *st, int64_t minute,
                               uint32_t *n);

uint64_t pp_store_arena_used(const pp_store_t *st);

/* ---- renewal at a graceful restart (parent, single-threaded) ---- */

/* The intern tables only grow: every deploy of new code adds frames and
 * nodes that are never freed, and every prefix ever configured keeps its
 * location row.  Should this graceful restart renew the store?  1, with
 * *why, when the frame table, the node table or the frame text is half
 * full, or when the `n` prefixes configured now need more
 * location rows than are free. */
int pp_store_wants_renewal(const pp_store_t *st, const char *const *prefixes,
                           int n, const char **why);
/* Fill `dst`, a new, empty store of the same sizes, from `src`: the
 * counters, the location rows of the prefixes configured now (same rows,
 * histograms and all), and the kept traces, newest first, with their
 * stacks interned anew, as long as they take at most a quarter of each
 * table (the older ones count as evicted).  Frames and nodes that no
 * kept trace refers to, the per-location profiles (since start, per
 * minute, slow side) and the rows of prefixes no longer configured stay
 * behind, to go with `src`.  Returns the number
 * of location rows left behind, -1 if dst cannot take src's contents. */
int pp_store_renew(pp_store_t *dst, const pp_store_t *src,
                   const char *const *prefixes, int n);

#endif
