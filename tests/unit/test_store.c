/* test_store.c: the shared store (pp_store.c): sizing, claim/finish,
 * traces and eviction, interning, per-request stacks, the record seqlock,
 * dead owners, per-minute windows, and many writers at once (threads,
 * forked processes, a process SIGKILLed mid-write, a process stopped under
 * ptrace and killed at the exact instruction where a crash hurts most);
 * a header and records scribbled on by another process; the per-thread
 * write token; reaping when a claim finds no free slot.
 *
 * Children and threads never call cmocka: they report through exit codes
 * and counters, and the test's own thread asserts.
 */
#include "unit.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <time.h>

#include "pp_overview.h"
#include "pp_store.h"
#include "pp_store_testing.h"

#define STORE_SIZE (4ULL << 20)
/* the tables at their minimum sizes, whatever the records weigh */
#define SMALL_STORE_SIZE (pp_store_min_size(1, 1) + (256ULL << 10))

/* ---- helpers ---- */

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int claim_as(pp_store_t *st, int loc, const char *id, const char *uri,
                    int32_t pid, int hint)
{
    return unit_claim(st, loc, id, uri, pid, 4242, now_us(), hint);
}

static int claim(pp_store_t *st, int loc, const char *id)
{
    return claim_as(st, loc, id, "/app/page", (int32_t)getpid(), 0);
}

/* The pid of a process that has exited and been waited for. */
static pid_t dead_pid(void)
{
    pid_t pid;
    int ws = 0;

    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    return pid;
}

static uint32_t frame(pp_store_t *st, const char *func, const char *file,
                      uint32_t line)
{
    return pp_store_intern_frame(st, func, strlen(func), file, strlen(file),
                                 line);
}

static uint32_t hist_sum(const pp_location_t *loc)
{
    uint64_t s = 0;
    int b;
    for (b = 0; b < PP_HIST_BUCKETS; b++) {
        s += atomic_load(&loc->hist[b]);
    }
    return (uint32_t)s;
}

static const pp_stack_count_t *stack_of(const pp_record_t *rec, uint32_t node)
{
    int i;
    for (i = 0; i < PP_STACKS_MAX; i++) {
        if (rec->stacks[i].node == node) {
            return &rec->stacks[i];
        }
    }
    return NULL;
}

static pp_record_t *new_record(void)
{
    pp_record_t *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    return r;
}

/* A fresh 4 MiB store with 8 slots, 16 kept traces and location "/app". */
typedef struct fix {
    pp_store_t *st;
    int loc;
    pp_record_t *rec;
} fix_t;

static int setup(void **state)
{
    fix_t *f = calloc(1, sizeof(*f));

    if (!f) {
        return -1;
    }
    f->st = unit_make_store(STORE_SIZE, 8, 16);
    f->loc = pp_store_location_register(f->st, "/app", 10000);
    f->rec = calloc(1, sizeof(*f->rec));
    *state = f;
    return f->loc == 0 && f->rec ? 0 : -1;
}

static int teardown(void **state)
{
    fix_t *f = *state;
    pp_store_destroy(f->st);
    free(f->rec);
    free(f);
    return 0;
}

/* ---- sizing ---- */

static void test_create_refuses_too_small_size_with_message(void **state)
{
    const char *err = NULL;
    uint64_t need = pp_store_min_size(4, 2);
    (void)state;

    assert_null(pp_store_create(need - 64, 4, 2, &err));
    assert_non_null(err);
    assert_non_null(strstr(err, "too small"));
    err = NULL;
    assert_null(pp_store_create(4096, 4, 2, &err));
    assert_non_null(err);
}

static void test_create_refuses_zero_slots_or_keep(void **state)
{
    const char *err = NULL;
    (void)state;
    assert_null(pp_store_create(STORE_SIZE, 0, 2, &err));
    assert_non_null(err);
    err = NULL;
    assert_null(pp_store_create(STORE_SIZE, 4, 0, &err));
    assert_non_null(err);
}

/* The glue refuses PyProfMemory below pp_store_min_size() and then calls
 * pp_store_create() with what it accepted: every size from the minimum up
 * must work. */
static void test_min_size_is_enough(void **state)
{
    static const uint32_t shapes[][2] = {{1, 1}, {4, 2}, {16, 1}, {64, 200}};
    char fails[512] = "";
    size_t k;
    (void)state;

    for (k = 0; k < sizeof(shapes) / sizeof(shapes[0]); k++) {
        uint64_t min = pp_store_min_size(shapes[k][0], shapes[k][1]);
        uint64_t size, first_bad = 0, last_bad = 0;

        for (size = min; size <= min + 1024 * 1024; size += 4096) {
            const char *err = NULL;
            pp_store_t *st =
                pp_store_create(size, shapes[k][0], shapes[k][1], &err);
            if (st) {
                pp_store_destroy(st);
                continue;
            }
            if (!first_bad) {
                first_bad = size;
            }
            last_bad = size;
        }
        if (first_bad) {
            size_t n = strlen(fails);
            snprintf(fails + n, sizeof(fails) - n,
                     " [nslots=%u keep=%u: min_size=%llu, create fails "
                     "for min+%llu .. min+%llu]",
                     shapes[k][0], shapes[k][1], (unsigned long long)min,
                     (unsigned long long)(first_bad - min),
                     (unsigned long long)(last_bad - min));
        }
    }
    if (fails[0]) {
        fail_msg("pp_store_create refuses sizes >= pp_store_min_size:%s",
                 fails);
    }
}

static void test_create_lays_out_an_empty_store(void **state)
{
    fix_t *f = *state;
    pp_store_t *st = f->st;
    pp_frame_view_t fv;

    assert_true(st->magic == PP_STORE_MAGIC);
    assert_int_equal(st->version, PP_STORE_VERSION);
    assert_int_equal(st->nslots, 8);
    assert_int_equal(st->keep, 16);
    assert_true(pp_store_compatible(st, STORE_SIZE, 8, 16));
    assert_false(pp_store_compatible(st, STORE_SIZE * 2, 8, 16));
    assert_false(pp_store_compatible(st, STORE_SIZE, 9, 16));
    assert_false(pp_store_compatible(st, STORE_SIZE, 8, 17));
    assert_true(st->frame_truncated && st->frame_unknown && st->frame_other);
    assert_true(st->frame_truncated != st->frame_unknown &&
                st->frame_unknown != st->frame_other);
    assert_true(pp_store_frame_view(st, st->frame_other, &fv));
    assert_string_equal(fv.function, PP_FRAME_OTHER_TEXT);
    assert_string_equal(fv.file, "");
    assert_false(pp_store_read_slot(st, 0, f->rec));
    assert_false(pp_store_read_trace(st, 0, f->rec));
}

/* ---- the capture form's nonce ---- */

static void test_form_nonce_accepts_this_and_the_previous_hour(void **state)
{
    fix_t *f = *state;
    const int64_t hour = PP_NONCE_WINDOW_US, t = 500000 * hour + hour / 2;
    char now[PP_NONCE_LEN + 1], prev[PP_NONCE_LEN + 1];

    pp_store_form_nonce(f->st, t, now);
    pp_store_form_nonce(f->st, t - hour, prev);
    assert_int_equal(strlen(now), PP_NONCE_LEN);
    assert_string_not_equal(now, prev);
    assert_true(pp_store_form_nonce_ok(f->st, now, t));
    /* the page was loaded just before the hour turned */
    assert_true(pp_store_form_nonce_ok(f->st, prev, t));
    /* the same window's nonce until the hour turns */
    assert_true(pp_store_form_nonce_ok(f->st, now, t + hour / 2 - 1));
}

static void test_form_nonce_refuses_an_older_window(void **state)
{
    fix_t *f = *state;
    const int64_t hour = PP_NONCE_WINDOW_US, t = 500000 * hour + hour / 2;
    char old[PP_NONCE_LEN + 1];

    pp_store_form_nonce(f->st, t - 2 * hour, old);
    assert_false(pp_store_form_nonce_ok(f->st, old, t));
    /* nor one from a window to come */
    pp_store_form_nonce(f->st, t + hour, old);
    assert_false(pp_store_form_nonce_ok(f->st, old, t));
}

static void test_form_nonce_refuses_garbage_and_other_stores(void **state)
{
    fix_t *f = *state;
    const int64_t t = now_us();
    char good[PP_NONCE_LEN + 1], other[PP_NONCE_LEN + 1];
    pp_store_t *st2 = unit_make_store(STORE_SIZE, 8, 8);

    pp_store_form_nonce(f->st, t, good);
    pp_store_form_nonce(st2, t, other);
    /* each store draws its own key */
    assert_string_not_equal(good, other);
    assert_false(pp_store_form_nonce_ok(f->st, other, t));
    assert_false(pp_store_form_nonce_ok(f->st, NULL, t));
    assert_false(pp_store_form_nonce_ok(f->st, "", t));
    /* a prefix or an extension of the right nonce is no nonce */
    good[PP_NONCE_LEN - 1] = '\0';
    assert_false(pp_store_form_nonce_ok(f->st, good, t));
    pp_store_form_nonce(f->st, t, good);
    {
        char longer[PP_NONCE_LEN + 2];
        snprintf(longer, sizeof(longer), "%s0", good);
        assert_false(pp_store_form_nonce_ok(f->st, longer, t));
    }
    pp_store_destroy(st2);
}

/* ---- locations ---- */

static void test_location_register_finds_existing_row(void **state)
{
    fix_t *f = *state;
    int b = pp_store_location_register(f->st, "/api", 5000);

    assert_true(b >= 0 && b != f->loc);
    assert_int_equal(pp_store_location_register(f->st, "/app", 20000), f->loc);
    assert_int_equal(pp_store_location(f->st, f->loc)->interval_us, 20000);
    assert_int_equal(pp_store_location_register(f->st, "/api", 5000), b);
}

static void test_location_table_full_returns_minus_one(void **state)
{
    fix_t *f = *state;
    char p[32];
    int i;

    for (i = 1; i < PP_MAX_LOCATIONS; i++) {
        snprintf(p, sizeof(p), "/loc%d", i);
        assert_true(pp_store_location_register(f->st, p, 1000) >= 0);
    }
    assert_int_equal(pp_store_location_register(f->st, "/one-too-many", 1000),
                     -1);
    assert_null(pp_store_location(f->st, -1));
    assert_null(pp_store_location(f->st, PP_MAX_LOCATIONS));
}

/* ---- claim / finish ---- */

static void test_claim_publishes_an_inflight_request(void **state)
{
    fix_t *f = *state;
    int inflight = -1;
    int idx = claim(f->st, f->loc, "req-1");

    assert_true(idx >= 0);
    assert_true(pp_store_read_slot(f->st, (uint32_t)idx, f->rec));
    assert_string_equal(f->rec->req.id, "req-1");
    assert_string_equal(f->rec->req.method, "GET");
    assert_string_equal(f->rec->req.uri, "/app/page");
    assert_string_equal(f->rec->req.vhost, "www.example.org");
    assert_int_equal(f->rec->req.pid, getpid());
    assert_int_equal(f->rec->req.location, f->loc);
    assert_true(f->rec->req.serial != 0);
    assert_true(pp_store_find(f->st, "req-1", f->rec, &inflight));
    assert_int_equal(inflight, 1);
}

static void test_claim_truncates_long_strings(void **state)
{
    fix_t *f = *state;
    char id[200], uri[PP_URI_MAX * 2];
    int idx;

    memset(id, 'i', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    memset(uri, 'u', sizeof(uri) - 1);
    uri[0] = '/';
    uri[sizeof(uri) - 1] = '\0';
    idx = claim_as(f->st, f->loc, id, uri, (int32_t)getpid(), 0);
    assert_true(idx >= 0);
    assert_true(pp_store_read_slot(f->st, (uint32_t)idx, f->rec));
    assert_int_equal(strlen(f->rec->req.id), PP_ID_MAX - 1);
    assert_int_equal(strlen(f->rec->req.uri), PP_URI_MAX - 1);
    assert_memory_equal(f->rec->req.uri, uri, PP_URI_MAX - 1);
}

static void test_claim_serials_are_unique(void **state)
{
    fix_t *f = *state;
    int a = claim(f->st, f->loc, "a"), b = claim(f->st, f->loc, "b");
    uint64_t sa;

    assert_true(a >= 0 && b >= 0 && a != b);
    assert_true(pp_store_read_slot(f->st, (uint32_t)a, f->rec));
    sa = f->rec->req.serial;
    assert_true(pp_store_read_slot(f->st, (uint32_t)b, f->rec));
    assert_true(sa != f->rec->req.serial);
}

static void test_finish_counts_request_in_histogram(void **state)
{
    fix_t *f = *state;
    pp_location_t *loc = pp_store_location(f->st, f->loc);
    int idx = claim(f->st, f->loc, "req-1");
    uint32_t node =
        pp_store_intern_node(f->st, 0, frame(f->st, "view", "app.py", 10));

    pp_store_add_sample(f->st, pp_store_slot(f->st, idx), node, now_us(), 10000,
                        5000);
    pp_store_finish(f->st, idx, 200, 12000, 7000, 0);
    assert_int_equal(atomic_load(&loc->requests), 1);
    assert_int_equal(atomic_load(&loc->hist[pp_hist_bucket(12000)]), 1);
    assert_int_equal(hist_sum(loc), 1);
    assert_int_equal(atomic_load(&loc->samples), 1);
    assert_int_equal(atomic_load(&loc->sum_us), 12000);
    assert_int_equal(atomic_load(&loc->max_us), 12000);
    assert_int_equal(atomic_load(&loc->kept), 0);
}

static void test_finish_keeps_trace_when_asked(void **state)
{
    fix_t *f = *state;
    int inflight = -1;
    int idx = claim(f->st, f->loc, "slow-1");
    uint32_t node =
        pp_store_intern_node(f->st, 0, frame(f->st, "view", "app.py", 10));
    const pp_stack_count_t *e;

    pp_store_add_sample(f->st, pp_store_slot(f->st, idx), node, now_us(), 10000,
                        4000);
    pp_store_add_sample(f->st, pp_store_slot(f->st, idx), node, now_us(), 10000,
                        4000);
    pp_store_finish(f->st, idx, 503, 900000, 8000, 1);
    assert_true(pp_store_find(f->st, "slow-1", f->rec, &inflight));
    assert_int_equal(inflight, 0);
    assert_string_equal(f->rec->req.id, "slow-1");
    assert_int_equal(f->rec->req.status, 503);
    assert_true(f->rec->req.duration_us == 900000);
    assert_true(f->rec->req.cpu_us == 8000);
    assert_int_equal(f->rec->req.samples, 2);
    e = stack_of(f->rec, node);
    assert_non_null(e);
    assert_int_equal(e->count, 2);
    assert_int_equal(e->weight_us, 20000);
    assert_int_equal(atomic_load(&f->st->c.traces_kept), 1);
    assert_int_equal(atomic_load(&pp_store_location(f->st, f->loc)->kept), 1);
}

static void test_finish_does_not_keep_fast_request(void **state)
{
    fix_t *f = *state;
    int inflight = -1;
    int idx = claim(f->st, f->loc, "fast-1");

    pp_store_finish(f->st, idx, 200, 3000, 1000, 0);
    assert_false(pp_store_find(f->st, "fast-1", f->rec, &inflight));
    assert_int_equal(atomic_load(&f->st->c.traces_kept), 0);
    assert_false(pp_store_read_trace(f->st, 0, f->rec));
}

static void test_finish_frees_the_slot(void **state)
{
    fix_t *f = *state;
    int idx = claim(f->st, f->loc, "r");

    pp_store_finish(f->st, idx, 200, 3000, 1000, 0);
    assert_int_equal(
        PP_SLOT_PHASE(atomic_load(&pp_store_slot(f->st, idx)->state)),
        PP_SLOT_FREE);
    assert_false(pp_store_read_slot(f->st, (uint32_t)idx, f->rec));
    assert_null(pp_store_slot_rec(f->st, (uint32_t)idx));
    assert_int_equal(claim(f->st, f->loc, "r2"), idx);
}

static void test_finish_twice_counts_once(void **state)
{
    fix_t *f = *state;
    int idx = claim(f->st, f->loc, "r");

    pp_store_finish(f->st, idx, 200, 3000, 1000, 1);
    pp_store_finish(f->st, idx, 200, 3000, 1000, 1);
    assert_int_equal(atomic_load(&pp_store_location(f->st, f->loc)->requests),
                     1);
    assert_int_equal(atomic_load(&f->st->c.traces_kept), 1);
}

/* Interning through a memo gives the node pp_store_intern_stack gives,
 * whatever the previous stack was: the same, a new leaf, a new root, a
 * [truncated] one, deeper than the memo remembers, shallower. */
static void test_intern_stack_memo_matches_plain(void **state)
{
    fix_t *f = *state;
    static uint32_t stacks[8][PP_STACK_MEMO_DEPTH + 40];
    static const uint32_t depths[8] = {
        30, 30, 30, 30, PP_STACK_MEMO_DEPTH + 40, PP_STACK_MEMO_DEPTH + 40,
        12, 30};
    static const int truncated[8] = {0, 0, 0, 1, 0, 0, 0, 0};
    pp_stack_memo_t memo;
    uint32_t fr[6], k, i, rep;
    char name[8];

    memset(&memo, 0, sizeof(memo));
    for (i = 0; i < 6; i++) {
        snprintf(name, sizeof(name), "f%u", i);
        fr[i] = frame(f->st, name, "m.py", i + 1);
    }
    for (k = 0; k < 8; k++) {
        for (i = 0; i < depths[k]; i++) {
            /* leaf first: a root of f0..., the leaf side varied */
            uint32_t from_root = depths[k] - 1 - i;
            stacks[k][i] = fr[(from_root * 7 + (from_root > 20 ? k : 0)) % 6];
        }
    }
    stacks[2][depths[2] - 1] = fr[5]; /* another root */
    for (rep = 0; rep < 2; rep++) {
        for (k = 0; k < 8; k++) {
            uint32_t plain = pp_store_intern_stack(f->st, stacks[k], depths[k],
                                                   truncated[k]);
            uint32_t memoed = pp_store_intern_stack_memo(
                f->st, &memo, stacks[k], depths[k], truncated[k]);
            assert_true(plain != 0);
            assert_int_equal(memoed, plain);
            /* again, now all of it remembered */
            assert_int_equal(pp_store_intern_stack_memo(f->st, &memo, stacks[k],
                                                        depths[k],
                                                        truncated[k]),
                             plain);
        }
    }
    assert_int_equal(
        pp_store_intern_stack_memo(f->st, NULL, stacks[0], depths[0], 0),
        pp_store_intern_stack(f->st, stacks[0], depths[0], 0));
}

static void test_finish_adds_stacks_to_location_aggregate(void **state)
{
    fix_t *f = *state;
    uint32_t fa = frame(f->st, "a", "a.py", 1),
             fb = frame(f->st, "b", "b.py", 2);
    uint32_t na = pp_store_intern_node(f->st, 0, fa);
    uint32_t nb = pp_store_intern_node(f->st, na, fb);
    uint64_t cnt_a = 0, cnt_b = 0, w_b = 0;
    pp_agg_entry_t *agg;
    uint32_t n, i;
    int r;

    for (r = 0; r < 2; r++) {
        int idx = claim(f->st, f->loc, "agg");
        pp_slot_t *slot = pp_store_slot(f->st, idx);
        pp_store_add_sample(f->st, slot, na, now_us(), 1000, 0);
        pp_store_add_sample(f->st, slot, nb, now_us(), 3000, 0);
        pp_store_add_sample(f->st, slot, nb, now_us(), 3000, 0);
        pp_store_finish(f->st, idx, 200, 5000, 0, 0);
    }
    agg = pp_store_agg(f->st, &n);
    for (i = 0; i < n; i++) {
        uint64_t key = atomic_load(&agg[i].key);
        if (key == (((uint64_t)(f->loc + 1) << 32) | na)) {
            cnt_a += atomic_load(&agg[i].count);
        }
        if (key == (((uint64_t)(f->loc + 1) << 32) | nb)) {
            cnt_b += atomic_load(&agg[i].count);
            w_b += atomic_load(&agg[i].weight_us);
        }
    }
    assert_int_equal(cnt_a, 2);
    assert_int_equal(cnt_b, 4);
    assert_int_equal(w_b, 12000);
}

static void test_slots_exhaustion_is_counted(void **state)
{
    pp_store_t *st = unit_make_store(STORE_SIZE, 2, 2);
    int loc = pp_store_location_register(st, "/app", 10000);
    (void)state;

    assert_true(claim(st, loc, "a") >= 0);
    assert_true(claim(st, loc, "b") >= 0);
    assert_int_equal(claim(st, loc, "c"), -1);
    assert_int_equal(claim(st, loc, "d"), -1);
    assert_int_equal(atomic_load(&st->c.slots_full), 2);
    pp_store_destroy(st);
}

static void test_eviction_keeps_the_newest_traces(void **state)
{
    pp_store_t *st = unit_make_store(STORE_SIZE, 2, 3);
    int loc = pp_store_location_register(st, "/app", 10000);
    pp_record_t *rec = new_record();
    char id[16];
    int i, inflight;
    (void)state;

    for (i = 1; i <= 5; i++) {
        snprintf(id, sizeof(id), "r%d", i);
        pp_store_finish(st, claim(st, loc, id), 200, 600000 + i, 0, 1);
    }
    assert_int_equal(atomic_load(&st->c.traces_kept), 5);
    assert_int_equal(atomic_load(&st->c.traces_evicted), 2);
    assert_false(pp_store_find(st, "r1", rec, &inflight));
    assert_false(pp_store_find(st, "r2", rec, &inflight));
    for (i = 3; i <= 5; i++) {
        snprintf(id, sizeof(id), "r%d", i);
        assert_true(pp_store_find(st, id, rec, &inflight));
        assert_string_equal(rec->req.id, id);
        assert_true(rec->req.duration_us == 600000 + i);
    }
    free(rec);
    pp_store_destroy(st);
}

static void test_find_refuses_empty_and_unknown_ids(void **state)
{
    fix_t *f = *state;
    int inflight;

    pp_store_finish(f->st, claim(f->st, f->loc, "known"), 200, 1, 0, 1);
    assert_false(pp_store_find(f->st, "", f->rec, &inflight));
    assert_false(pp_store_find(f->st, NULL, f->rec, &inflight));
    assert_false(pp_store_find(f->st, "unknown", f->rec, &inflight));
    assert_false(pp_store_find(f->st, "know", f->rec, &inflight));
    assert_true(pp_store_find(f->st, "known", f->rec, &inflight));
}

/* ---- interning ---- */

static void test_intern_same_frame_same_id(void **state)
{
    fix_t *f = *state;
    uint32_t a = frame(f->st, "handler", "/srv/app.py", 42);

    assert_true(a != 0);
    assert_int_equal(frame(f->st, "handler", "/srv/app.py", 42), a);
}

static void test_intern_different_line_different_id(void **state)
{
    fix_t *f = *state;
    uint32_t a = frame(f->st, "handler", "/srv/app.py", 42);

    assert_true(frame(f->st, "handler", "/srv/app.py", 43) != a);
    assert_true(frame(f->st, "handler", "/srv/app2.py", 42) != a);
    assert_true(frame(f->st, "handler2", "/srv/app.py", 42) != a);
    /* the split between function and file matters */
    assert_true(frame(f->st, "ab", "c", 1) != frame(f->st, "a", "bc", 1));
}

static void test_intern_truncates_names_at_frame_text_max(void **state)
{
    fix_t *f = *state;
    size_t n = PP_FRAME_TEXT_MAX * 2;
    char *fn = malloc(n + 1), *file = malloc(n + 1);
    pp_frame_view_t fv;
    uint32_t a, b;

    assert_non_null(fn);
    assert_non_null(file);
    memset(fn, 'f', n);
    fn[n] = '\0';
    memset(file, 'g', n);
    file[n] = '\0';
    a = pp_store_intern_frame(f->st, fn, n, file, n, 7);
    assert_true(a != 0);
    assert_true(pp_store_frame_view(f->st, a, &fv));
    assert_int_equal(strlen(fv.function), PP_FRAME_TEXT_MAX);
    assert_int_equal(strlen(fv.file), PP_FRAME_TEXT_MAX);
    assert_int_equal(fv.line, 7);
    /* names equal up to the cut are the same frame */
    fn[n - 1] = 'x';
    b = pp_store_intern_frame(f->st, fn, n, file, n, 7);
    assert_int_equal(a, b);
    free(fn);
    free(file);
}

/* A long non-ASCII name is cut on a character boundary, never inside a
 * UTF-8 sequence (strict readers such as proto3 refuse half a character). */
static void test_intern_cuts_long_names_between_characters(void **state)
{
    fix_t *f = *state;
    size_t n = PP_FRAME_TEXT_MAX + 300, i;
    char *fn = malloc(n + 1), *file = malloc(n + 1);
    pp_frame_view_t fv;
    uint32_t a;

    assert_non_null(fn);
    assert_non_null(file);
    /* "x" then euro signs (3 bytes): the cut at PP_FRAME_TEXT_MAX falls
     * inside one; "yy" then 4-byte characters for the file */
    fn[0] = 'x';
    for (i = 1; i + 3 <= n; i += 3) {
        memcpy(fn + i, "\xe2\x82\xac", 3);
    }
    fn[i] = '\0';
    file[0] = file[1] = 'y';
    for (i = 2; i + 4 <= n; i += 4) {
        memcpy(file + i, "\xf0\x9f\x90\x8d", 4);
    }
    file[i] = '\0';
    a = pp_store_intern_frame(f->st, fn, strlen(fn), file, strlen(file), 3);
    assert_true(a != 0);
    assert_true(pp_store_frame_view(f->st, a, &fv));
    assert_true(strlen(fv.function) <= PP_FRAME_TEXT_MAX);
    assert_true(strlen(fv.function) > PP_FRAME_TEXT_MAX - 3);
    assert_int_equal((strlen(fv.function) - 1) % 3, 0);
    assert_true(strlen(fv.file) <= PP_FRAME_TEXT_MAX);
    assert_true(strlen(fv.file) > PP_FRAME_TEXT_MAX - 4);
    assert_int_equal((strlen(fv.file) - 2) % 4, 0);
    assert_memory_equal(fv.function, fn, strlen(fv.function));
    assert_memory_equal(fv.file, file, strlen(fv.file));
    free(fn);
    free(file);
}

static void test_intern_cuts_names_at_embedded_nul(void **state)
{
    fix_t *f = *state;
    pp_frame_view_t fv;
    uint32_t a = pp_store_intern_frame(f->st, "ab\0cd", 5, "x.py\0evil", 9, 3);

    assert_true(a != 0);
    assert_true(pp_store_frame_view(f->st, a, &fv));
    assert_string_equal(fv.function, "ab");
    assert_string_equal(fv.file, "x.py");
    assert_int_equal(a, frame(f->st, "ab", "x.py", 3));
}

static void test_frame_view_returns_the_exact_strings(void **state)
{
    fix_t *f = *state;
    static const char *funcs[] = {
        "main",  "<module>", "caf\xc3\xa9",
        "a;b c", "",         "Cls.meth.<locals>.<lambda>"};
    static const char *files[] = {
        "/srv/app.py", "<string>", "/x/\xe2\x82\xac.py", "a\nb", "", "f.py"};
    uint32_t ids[6];
    pp_frame_view_t fv;
    int i;

    for (i = 0; i < 6; i++) {
        ids[i] = frame(f->st, funcs[i], files[i], (uint32_t)(i * 1000 + 1));
        assert_true(ids[i] != 0);
    }
    for (i = 0; i < 6; i++) {
        assert_true(pp_store_frame_view(f->st, ids[i], &fv));
        assert_string_equal(fv.function, funcs[i]);
        assert_string_equal(fv.file, files[i]);
        assert_int_equal(fv.line, i * 1000 + 1);
    }
}

static void test_frame_view_refuses_invalid_ids(void **state)
{
    fix_t *f = *state;
    pp_frame_view_t fv;
    uint32_t a = frame(f->st, "x", "y", 1), id;
    int unused = 0;

    assert_false(pp_store_frame_view(f->st, 0, &fv));
    assert_false(pp_store_frame_view(f->st, f->st->nframes + 1, &fv));
    assert_false(pp_store_frame_view(f->st, UINT32_MAX, &fv));
    /* an id that was never handed out */
    for (id = 1; id <= f->st->nframes && !unused; id++) {
        if (id != a && id != f->st->frame_other &&
            id != f->st->frame_truncated && id != f->st->frame_unknown) {
            assert_false(pp_store_frame_view(f->st, id, &fv));
            unused = 1;
        }
    }
    assert_true(unused);
}

static void test_intern_table_full_returns_zero_and_counts(void **state)
{
    pp_store_t *st = unit_make_store(SMALL_STORE_SIZE, 1, 1);
    uint32_t i, got = 0, zeros = 0;
    char fn[32];
    (void)state;

    for (i = 0; i < st->nframes + 64; i++) {
        snprintf(fn, sizeof(fn), "f%u", i);
        if (frame(st, fn, "m.py", i)) {
            got++;
        }
        else {
            zeros++;
        }
    }
    assert_true(zeros > 0);
    assert_true(got < st->nframes);
    assert_int_equal(atomic_load(&st->c.frames_full), zeros);
    /* existing frames still resolve once the table is full */
    assert_true(frame(st, "f0", "m.py", 0) != 0);
    pp_store_destroy(st);
}

/* Fill a small store's frame table, then its arena, with unique frames:
 * every id handed out resolves to its own text and to nothing else. */
static void check_ids_resolve_to_their_own_text(pp_store_t *st, size_t name_len)
{
    uint32_t n = st->nframes + 64, i, j, zeros = 0;
    uint32_t *ids = calloc(n, sizeof(uint32_t));
    char *fn = malloc(name_len + 32), *file = malloc(name_len + 32);
    pp_frame_view_t fv;
    char want[64];

    assert_non_null(ids);
    assert_non_null(fn);
    assert_non_null(file);
    memset(fn, 'F', name_len);
    memset(file, 'P', name_len);
    for (i = 0; i < n; i++) {
        /* the distinguishing part is at the front: long names are cut */
        int k = snprintf(want, sizeof(want), "u%u-", i);
        memcpy(fn, want, (size_t)k);
        fn[name_len] = '\0';
        memcpy(file, want, (size_t)k);
        file[name_len] = '\0';
        ids[i] =
            pp_store_intern_frame(st, fn, name_len, file, name_len, i * 7 + 1);
        if (!ids[i]) {
            zeros++;
        }
    }
    assert_true(zeros > 0); /* the store did fill up */
    for (i = 0; i < n; i++) {
        if (!ids[i]) {
            continue;
        }
        snprintf(want, sizeof(want), "u%u-", i);
        if (!pp_store_frame_view(st, ids[i], &fv)) {
            fail_msg("id %u of frame %u does not resolve", ids[i], i);
        }
        if (strncmp(fv.function, want, strlen(want)) != 0 ||
            strncmp(fv.file, want, strlen(want)) != 0 || fv.line != i * 7 + 1 ||
            strlen(fv.function) !=
                (name_len < PP_FRAME_TEXT_MAX ? name_len : PP_FRAME_TEXT_MAX)) {
            fail_msg("id %u of frame %u resolves to \"%.40s\" \"%.40s\" "
                     "line %u",
                     ids[i], i, fv.function, fv.file, fv.line);
        }
        for (j = 0; j < i; j++) {
            assert_true(ids[j] != ids[i] || ids[i] == 0);
        }
    }
    free(ids);
    free(fn);
    free(file);
}

static void test_full_frame_table_never_misresolves_ids(void **state)
{
    pp_store_t *st = unit_make_store(SMALL_STORE_SIZE, 1, 1);
    (void)state;
    check_ids_resolve_to_their_own_text(st, 12);
    pp_store_destroy(st);
}

static void test_full_arena_never_misresolves_ids(void **state)
{
    pp_store_t *st = unit_make_store(SMALL_STORE_SIZE, 1, 1);
    (void)state;
    /* ~2 KiB a frame: the arena runs out well before the table */
    check_ids_resolve_to_their_own_text(st, PP_FRAME_TEXT_MAX + 100);
    assert_true(atomic_load(&st->c.frames_full) > 0);
    assert_true(pp_store_arena_used(st) <= st->arena_size);
    pp_store_destroy(st);
}

/* Threads interning unique frames of mixed sizes into a nearly full
 * arena at once (processes do the same through the shared mapping): every
 * id handed out resolves to its own text.  A claim that was undone when it
 * did not fit (fetch_add then fetch_sub) once let two writers get the same
 * arena units, and a frame showed another's name over its own file. */
#define ARENA_THREADS 4
#define ARENA_PER_THREAD 400

typedef struct arena_worker {
    pp_store_t *st;
    int k;
    uint32_t ids[ARENA_PER_THREAD];
    uint32_t len[ARENA_PER_THREAD];
} arena_worker_t;

static void arena_name(char *buf, int k, int i, uint32_t len)
{
    int n = snprintf(buf, 32, "t%d-%d-", k, i);
    memset(buf + n, 'a' + (k + i) % 26, len - (uint32_t)n);
    buf[len] = '\0';
}

static void *arena_worker_main(void *arg)
{
    arena_worker_t *w = arg;
    char *name = malloc(PP_FRAME_TEXT_MAX + 1);
    int i;

    for (i = 0; i < ARENA_PER_THREAD && name; i++) {
        /* small and large frames: large ones fail near the end while
         * small ones still fit */
        w->len[i] = (i + w->k) % 3 ? 40 + (uint32_t)i % 50 : PP_FRAME_TEXT_MAX;
        arena_name(name, w->k, i, w->len[i]);
        w->ids[i] = pp_store_intern_frame(w->st, name, w->len[i], name,
                                          w->len[i], (uint32_t)i + 1);
    }
    free(name);
    return NULL;
}

static void
test_concurrent_interning_into_a_full_arena_never_overlaps(void **state)
{
    char *want = malloc(PP_FRAME_TEXT_MAX + 1);
    int round, k, i, full_rounds = 0;
    (void)state;

    assert_non_null(want);
    for (round = 0; round < 20; round++) {
        pp_store_t *st = unit_make_store(SMALL_STORE_SIZE, 1, 1);
        arena_worker_t *w = calloc(ARENA_THREADS, sizeof(*w));
        pthread_t th[ARENA_THREADS];

        assert_non_null(w);
        for (k = 0; k < ARENA_THREADS; k++) {
            w[k].st = st;
            w[k].k = k;
            assert_int_equal(
                pthread_create(&th[k], NULL, arena_worker_main, &w[k]), 0);
        }
        for (k = 0; k < ARENA_THREADS; k++) {
            pthread_join(th[k], NULL);
        }
        full_rounds += atomic_load(&st->c.frames_full) > 0;
        for (k = 0; k < ARENA_THREADS; k++) {
            for (i = 0; i < ARENA_PER_THREAD; i++) {
                pp_frame_view_t fv;
                if (!w[k].ids[i]) {
                    continue;
                }
                arena_name(want, k, i, w[k].len[i]);
                assert_true(pp_store_frame_view(st, w[k].ids[i], &fv));
                if (strcmp(fv.function, want) != 0 ||
                    strcmp(fv.file, want) != 0 || fv.line != (uint32_t)i + 1) {
                    fail_msg("round %d: frame t%d-%d resolves to \"%.30s\" in "
                             "\"%.30s\" line %u",
                             round, k, i, fv.function, fv.file, fv.line);
                }
            }
        }
        assert_true(pp_store_arena_used(st) <= st->arena_size);
        free(w);
        pp_store_destroy(st);
    }
    assert_true(full_rounds > 0); /* the arena did fill up */
    free(want);
}

static void test_node_interning_is_stable(void **state)
{
    fix_t *f = *state;
    uint32_t fa = frame(f->st, "a", "a.py", 1),
             fb = frame(f->st, "b", "b.py", 2);
    uint32_t ra = pp_store_intern_node(f->st, 0, fa);
    uint32_t ab = pp_store_intern_node(f->st, ra, fb);
    uint32_t rb = pp_store_intern_node(f->st, 0, fb);
    uint32_t parent = 99, fr = 99;

    assert_true(ra && ab && rb);
    assert_int_equal(pp_store_intern_node(f->st, 0, fa), ra);
    assert_int_equal(pp_store_intern_node(f->st, ra, fb), ab);
    assert_true(ab != rb); /* same frame, different parent */
    assert_true(pp_store_node_get(f->st, ab, &parent, &fr));
    assert_int_equal(parent, ra);
    assert_int_equal(fr, fb);
    assert_true(pp_store_node_get(f->st, ra, &parent, &fr));
    assert_int_equal(parent, 0);
    assert_int_equal(fr, fa);
}

static void test_node_with_frame_zero_is_refused(void **state)
{
    fix_t *f = *state;
    uint32_t p, fr;

    assert_int_equal(pp_store_intern_node(f->st, 0, 0), 0);
    assert_false(pp_store_node_get(f->st, 0, &p, &fr));
    assert_false(pp_store_node_get(f->st, f->st->nnodes + 1, &p, &fr));
}

/* ---- samples ---- */

static void test_add_sample_aggregates_per_stack(void **state)
{
    fix_t *f = *state;
    uint32_t ra = pp_store_intern_node(f->st, 0, frame(f->st, "a", "a.py", 1));
    uint32_t rb = pp_store_intern_node(f->st, ra, frame(f->st, "b", "b.py", 2));
    int idx = claim(f->st, f->loc, "s");
    pp_slot_t *slot = pp_store_slot(f->st, idx);
    const pp_stack_count_t *ea, *eb;

    pp_store_add_sample(f->st, slot, rb, 100, 10, 1);
    pp_store_add_sample(f->st, slot, rb, 200, 20, 2);
    pp_store_add_sample(f->st, slot, rb, 300, 30, 3);
    pp_store_add_sample(f->st, slot, ra, 400, 40, 4);
    assert_true(pp_store_read_slot(f->st, (uint32_t)idx, f->rec));
    assert_int_equal(f->rec->req.samples, 4);
    assert_int_equal(f->rec->req.nstacks, 2);
    assert_int_equal(f->rec->req.last_node, ra);
    assert_true(f->rec->req.last_sample_us == 400);
    assert_true(f->rec->req.sampled_cpu_us == 10);
    eb = stack_of(f->rec, rb);
    ea = stack_of(f->rec, ra);
    assert_non_null(ea);
    assert_non_null(eb);
    assert_int_equal(eb->count, 3);
    assert_int_equal(eb->weight_us, 60);
    assert_int_equal(eb->cpu_us, 6);
    assert_int_equal(ea->count, 1);
    assert_int_equal(ea->weight_us, 40);
    assert_int_equal(atomic_load(&f->st->c.samples), 4);
}

static void test_add_sample_ignores_node_zero(void **state)
{
    fix_t *f = *state;
    int idx = claim(f->st, f->loc, "s");

    pp_store_add_sample(f->st, pp_store_slot(f->st, idx), 0, 100, 10, 1);
    assert_true(pp_store_read_slot(f->st, (uint32_t)idx, f->rec));
    assert_int_equal(f->rec->req.samples, 0);
    assert_int_equal(f->rec->req.nstacks, 0);
}

static void test_add_sample_overflows_into_other_stacks(void **state)
{
    fix_t *f = *state;
    const int distinct = 300, keepable = PP_STACKS_MAX - 1;
    uint32_t root =
        pp_store_intern_node(f->st, 0, frame(f->st, "r", "r.py", 1));
    uint32_t other = pp_store_intern_node(f->st, 0, f->st->frame_other);
    uint32_t *nodes = calloc((size_t)distinct, sizeof(uint32_t));
    int idx = claim(f->st, f->loc, "many");
    pp_slot_t *slot = pp_store_slot(f->st, idx);
    const pp_stack_count_t *e;
    uint64_t sum = 0;
    int i;

    assert_non_null(nodes);
    for (i = 0; i < distinct; i++) {
        nodes[i] = pp_store_intern_node(
            f->st, root, frame(f->st, "leaf", "l.py", (uint32_t)i + 1));
        assert_true(nodes[i] != 0);
        pp_store_add_sample(f->st, slot, nodes[i], i, 1000, 0);
    }
    /* a stack that already has an entry still counts there */
    pp_store_add_sample(f->st, slot, nodes[0], 0, 1000, 0);
    assert_true(pp_store_read_slot(f->st, (uint32_t)idx, f->rec));
    assert_int_equal(f->rec->req.samples, distinct + 1);
    assert_int_equal(f->rec->req.nstacks, PP_STACKS_MAX);
    assert_int_equal(f->rec->req.samples_overflow, distinct - keepable);
    assert_int_equal(atomic_load(&f->st->c.stacks_overflow),
                     distinct - keepable);
    e = stack_of(f->rec, other);
    assert_non_null(e);
    assert_int_equal(e->count, distinct - keepable);
    assert_int_equal(e->weight_us, 1000ULL * (distinct - keepable));
    e = stack_of(f->rec, nodes[0]);
    assert_non_null(e);
    assert_int_equal(e->count, 2);
    for (i = 0; i < PP_STACKS_MAX; i++) {
        sum += f->rec->stacks[i].count;
    }
    assert_int_equal(sum, distinct + 1);
    free(nodes);
}

/* ---- the record seqlock ---- */

static void test_record_with_odd_seq_is_unreadable(void **state)
{
    fix_t *f = *state;
    int idx = claim(f->st, f->loc, "odd"), inflight;
    pp_slot_t *slot = pp_store_slot(f->st, idx);
    pp_req_t q;
    uint32_t s = atomic_load(&slot->rec.seq);

    assert_true((s & 1u) == 0);
    atomic_store(&slot->rec.seq, s + 1); /* a writer died mid-write */
    assert_int_equal(pp_store_read_record(&slot->rec, f->rec), 0);
    assert_int_equal(pp_store_read_req(&slot->rec, &q), 0);
    assert_int_equal(pp_store_read_slot(f->st, (uint32_t)idx, f->rec), 0);
    assert_false(pp_store_find(f->st, "odd", f->rec, &inflight));
    atomic_store(&slot->rec.seq, s + 2);
    assert_int_equal(pp_store_read_record(&slot->rec, f->rec), 1);
}

static void test_writer_carries_on_after_a_dead_writer(void **state)
{
    fix_t *f = *state;
    int idx = claim(f->st, f->loc, "odd");
    pp_slot_t *slot = pp_store_slot(f->st, idx);
    uint32_t node =
        pp_store_intern_node(f->st, 0, frame(f->st, "x", "x.py", 1));

    atomic_fetch_add(&slot->rec.seq, 1); /* left odd */
    pp_store_add_sample(f->st, slot, node, 1, 1, 1);
    assert_true((atomic_load(&slot->rec.seq) & 1u) == 0);
    assert_true(pp_store_read_slot(f->st, (uint32_t)idx, f->rec));
    assert_int_equal(f->rec->req.samples, 1);
}

static void test_keep_skips_a_trace_entry_left_odd(void **state)
{
    pp_store_t *st = unit_make_store(STORE_SIZE, 2, 2);
    int loc = pp_store_location_register(st, "/app", 10000), inflight;
    pp_record_t *rec = new_record();
    pp_record_t *t0 = (pp_record_t *)pp_store_trace_at(st, 0);
    (void)state;

    atomic_store(&t0->seq, 1); /* a writer died filling entry 0 */
    pp_store_finish(st, claim(st, loc, "kept"), 200, 700000, 0, 1);
    assert_true(pp_store_find(st, "kept", rec, &inflight));
    assert_int_equal(inflight, 0);
    assert_int_equal(atomic_load(&st->c.traces_kept), 1);
    assert_int_equal(atomic_load(&st->c.traces_torn), 0);
    assert_false(pp_store_read_trace(st, 0, rec));
    free(rec);
    pp_store_destroy(st);
}

static void test_keep_with_every_entry_odd_is_counted_torn(void **state)
{
    pp_store_t *st = unit_make_store(STORE_SIZE, 2, 1);
    int loc = pp_store_location_register(st, "/app", 10000), inflight;
    pp_record_t *rec = new_record();
    (void)state;

    atomic_store(&((pp_record_t *)pp_store_trace_at(st, 0))->seq, 1);
    pp_store_finish(st, claim(st, loc, "lost"), 200, 700000, 0, 1);
    assert_int_equal(atomic_load(&st->c.traces_torn), 1);
    assert_int_equal(atomic_load(&st->c.traces_kept), 0);
    assert_false(pp_store_find(st, "lost", rec, &inflight));
    /* the request itself is still counted */
    assert_int_equal(atomic_load(&pp_store_location(st, loc)->requests), 1);
    free(rec);
    pp_store_destroy(st);
}

/* ---- dead owners ---- */

static void test_reap_dead_frees_slot_of_dead_process(void **state)
{
    fix_t *f = *state;
    int mine = claim(f->st, f->loc, "parent"), ws = 0, idx;
    pid_t pid;

    assert_true(mine >= 0);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* claim and die without finishing */
        int i =
            claim_as(f->st, f->loc, "orphan", "/app/x", (int32_t)getpid(), 3);
        _exit(i >= 0 ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    /* MAP_SHARED: the parent sees the child's slot */
    {
        int inflight = 0;
        assert_true(pp_store_find(f->st, "orphan", f->rec, &inflight));
        assert_int_equal(inflight, 1);
        assert_int_equal(f->rec->req.pid, pid);
    }
    for (idx = 0; idx < (int)f->st->nslots; idx++) {
        if (pp_store_read_slot(f->st, (uint32_t)idx, f->rec) &&
            strcmp(f->rec->req.id, "orphan") == 0) {
            break;
        }
    }
    assert_true(idx < (int)f->st->nslots);
    assert_int_equal(pp_store_reap_dead(f->st), 1);
    assert_int_equal(
        PP_SLOT_PHASE(atomic_load(&pp_store_slot(f->st, idx)->state)),
        PP_SLOT_FREE);
    assert_int_equal(atomic_load(&f->st->c.slots_lost), 1);
    assert_int_equal(atomic_load(&f->st->c.slots_reaped), 1);
    /* the live owner's slot stays */
    assert_true(pp_store_read_slot(f->st, (uint32_t)mine, f->rec));
    assert_string_equal(f->rec->req.id, "parent");
    /* reaping again changes nothing */
    assert_int_equal(pp_store_reap_dead(f->st), 0);
    assert_int_equal(atomic_load(&f->st->c.slots_lost), 1);
}

/* ---- reaping when the store is full ---- */

static int64_t mono_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A child that claims every free slot and dies (SIGKILL, the OOM killer)
 * without finishing any. */
static void die_holding_every_slot(pp_store_t *st, int loc)
{
    pid_t pid;
    int ws = 0;

    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        uint32_t i;
        for (i = 0; i < st->nslots; i++) {
            if (claim_as(st, loc, "doomed", "/app/x", (int32_t)getpid(),
                         (int)i) < 0) {
                _exit(1);
            }
        }
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
}

static void
test_claim_reaps_slots_of_dead_processes_when_none_is_free(void **state)
{
    fix_t *f = *state;
    int idx;

    die_holding_every_slot(f->st, f->loc);
    /* nobody opened the overview: the claim itself reaps */
    idx = claim(f->st, f->loc, "after");
    assert_true(idx >= 0);
    assert_int_equal(atomic_load(&f->st->c.slots_full), 0);
    assert_int_equal(atomic_load(&f->st->c.slots_reaped), f->st->nslots);
    assert_int_equal(atomic_load(&f->st->c.slots_lost), f->st->nslots);
    assert_true(pp_store_read_slot(f->st, (uint32_t)idx, f->rec));
    assert_string_equal(f->rec->req.id, "after");
}

static void test_reaping_on_claim_is_rate_limited(void **state)
{
    fix_t *f = *state;
    uint32_t i;

    for (i = 0; i < f->st->nslots; i++) {
        assert_true(claim(f->st, f->loc, "live") >= 0);
    }
    /* full of live requests: a failed claim scans once... */
    atomic_store(&f->st->reap_last_us, 0);
    assert_int_equal(claim(f->st, f->loc, "x"), -1);
    assert_true(atomic_load(&f->st->reap_last_us) != 0);
    /* ...and a claim right after it does not scan again, even though the
     * owner is now dead */
    for (i = 0; i < f->st->nslots; i++) {
        pp_slot_t *slot = pp_store_slot(f->st, (int)i);
        atomic_store(&slot->state, PP_SLOT_STATE(dead_pid(), PP_SLOT_ACTIVE));
    }
    atomic_store(&f->st->reap_last_us, mono_now_us());
    assert_int_equal(claim(f->st, f->loc, "x"), -1);
    assert_int_equal(atomic_load(&f->st->c.slots_reaped), 0);
    assert_int_equal(atomic_load(&f->st->c.slots_full), 2);
    /* once the interval has passed, the next one does */
    atomic_store(&f->st->reap_last_us, mono_now_us() - PP_REAP_INTERVAL_US - 1);
    assert_true(claim(f->st, f->loc, "x") >= 0);
    assert_int_equal(atomic_load(&f->st->c.slots_reaped), f->st->nslots);
}

/* ---- the header and records are shared memory: another process may
 * write anything there ---- */

/* A graceful restart: the parent bumps the generation and registers the
 * new configuration's locations while children of the old generation,
 * forked before, still serve pages.  They must list those locations (the
 * generation they compare rows with is the store's, not a copy of their
 * own); a private copy made them answer 404 for every location. */
static void
test_old_generation_child_sees_locations_of_the_new_one(void **state)
{
    fix_t *f = *state;
    pp_store_t *st = f->st;
    int go[2], ws = 0;
    pid_t pid;
    char c = 0;

    assert_int_equal(pipe(go), 0);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        unit_buf_t out = {0};
        pp_sink_t o = unit_sink(&out);
        pp_render_opts_t opt;
        pp_overview_t ov;
        const char *json;

        close(go[1]);
        if (read(go[0], &c, 1) != 1) {
            _exit(2);
        }
        unit_default_opts(&opt, now_us());
        if (pp_overview_load(&ov, st, &opt, PP_OV_JSON) != 0) {
            _exit(3);
        }
        pp_render_overview_json(&o, &ov, &opt);
        pp_overview_free(&ov);
        json = unit_buf_str(&out);
        _exit(strstr(json, "\"/renamed\"") && strstr(json, "\"/app\"") ? 0 : 1);
    }
    close(go[0]);
    /* what post_config does on a graceful restart */
    atomic_fetch_add(&st->generation, 1);
    assert_true(pp_store_location_register(st, "/app", 10000) >= 0);
    assert_true(pp_store_location_register(st, "/renamed", 10000) >= 0);
    assert_int_equal(write(go[1], &c, 1), 1);
    close(go[1]);
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    if (WEXITSTATUS(ws) != 0) {
        fail_msg("a child of the old generation does not list the locations "
                 "the new generation registered (exit %d)",
                 WEXITSTATUS(ws));
    }
}

static void
test_header_scribbled_by_another_process_changes_nothing_here(void **state)
{
    fix_t *f = *state;
    pp_store_t *st = f->st;
    uint32_t nslots = st->nslots, nframes = st->nframes;
    uint64_t off_slots = st->off_slots;
    uint32_t node = pp_store_intern_node(st, 0, frame(st, "v", "v.py", 1));
    int idx, inflight, ws = 0;
    pid_t pid;

    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* what an application (or code injected into a daemon that runs
         * as another user) can do to the mapping */
        st->nslots = 0;
        st->keep = 0;
        st->nspecial = 0;
        st->nfast = 0;
        st->nframes = 0xffffffffu;
        st->nnodes = 0xffffffffu;
        st->nagg = 0;
        st->nagg_slow = 0;
        st->nepoch = 0x7fffffffu;
        st->arena_size = ~0ULL;
        st->off_slots = st->off_traces = st->off_agg = st->off_epochs =
            st->off_epoch_stamps = st->off_frames = st->off_nodes =
                st->off_arena = st->off_locations = 1ULL << 60;
        st->frame_other = 0xfffffff0u;
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    /* this process computes with its own copy of the layout */
    assert_int_equal(st->nslots, nslots);
    assert_int_equal(st->nframes, nframes);
    assert_true(st->off_slots == off_slots);
    idx = claim(st, f->loc, "still-works");
    assert_true(idx >= 0);
    pp_store_add_sample(st, pp_store_slot(st, idx), node, 1, 1000, 0);
    pp_store_finish(st, idx, 200, 700000, 0, PP_KEEP_SLOW);
    assert_true(pp_store_find(st, "still-works", f->rec, &inflight));
    assert_int_equal(inflight, 0);
    assert_int_equal(f->rec->req.samples, 1);
    assert_int_equal(atomic_load(&pp_store_location(st, f->loc)->requests), 1);
}

static void test_shared_counters_scribbled_over_stay_harmless(void **state)
{
    fix_t *f = *state;
    pp_store_t *st = f->st;
    int idx, inflight;

    atomic_store(&st->trace_next, ~0ULL);
    atomic_store(&st->special_next, ~0ULL - 1);
    atomic_store(&st->fast_next, ~0ULL - 2);
    atomic_store(&st->arena_used, ~0ULL - 5);
    atomic_store(&st->reap_last_us, INT64_MIN);
    idx = claim(st, f->loc, "counters");
    assert_true(idx >= 0);
    pp_store_finish(st, idx, 200, 700000, 0, PP_KEEP_SLOW);
    assert_true(pp_store_find(st, "counters", f->rec, &inflight));
    /* no room in a full-looking arena: refused, never written out of it */
    assert_int_equal(frame(st, "new", "new.py", 9), 0);
    assert_true(atomic_load(&st->c.frames_full) > 0);
}

static void
test_negative_or_huge_start_time_never_indexes_out_of_the_windows(void **state)
{
    fix_t *f = *state;
    uint32_t node =
        pp_store_intern_node(f->st, 0, frame(f->st, "v", "v.py", 1));
    const int64_t starts[] = {-3 * PP_EPOCH_US, -1, INT64_MIN, INT64_MAX,
                              INT64_MAX - 5};
    size_t k;

    for (k = 0; k < sizeof(starts) / sizeof(starts[0]); k++) {
        int idx = claim(f->st, f->loc, "odd-time");
        pp_slot_t *slot = pp_store_slot(f->st, idx);
        pp_store_add_sample(f->st, slot, node, 1, 1000, 0);
        slot->rec.req.start_us = starts[k];
        pp_store_finish(f->st, idx, 200, 700000, 0, PP_KEEP_NONE);
    }
    /* counted as requests; kept out of every per-minute table */
    assert_int_equal(atomic_load(&pp_store_location(f->st, f->loc)->requests),
                     k);
    assert_int_equal(atomic_load(&f->st->c.epoch_busy), k);
}

static void test_record_indices_out_of_range_are_bounded(void **state)
{
    fix_t *f = *state;
    uint32_t node =
        pp_store_intern_node(f->st, 0, frame(f->st, "v", "v.py", 1));
    int idx = claim(f->st, f->loc, "bad-indices");
    uint64_t serial = pp_store_slot(f->st, idx)->rec.req.serial;
    pp_req_t *q = &pp_store_slot(f->st, idx)->rec.req;
    pp_record_t *segs = &pp_store_slot(f->st, idx)->rec;
    uint32_t g;

    /* two segments whose parents point at each other: a page that
     * followed parents would never stop */
    assert_int_equal(pp_store_segment_begin(f->st, idx, serial, "a", "", 2), 1);
    assert_int_equal(pp_store_segment_begin(f->st, idx, serial, "b", "", 3), 2);
    segs->segments[0].parent = 2;
    segs->segments[1].parent = 2;
    q->open_segment = 5000;
    q->nstacks = 100000;
    pp_store_sample(f->st, idx, serial, node, 4, 1000, 0, PP_SAMPLE_ON_CPU);
    q->nsegments = 100000;
    assert_int_equal(pp_store_segment_begin(f->st, idx, serial, "c", "", 5), 0);
    pp_store_segment_end(f->st, idx, serial, 100000, 6);
    assert_true(pp_store_read_slot(f->st, (uint32_t)idx, f->rec));
    assert_true(f->rec->req.nsegments <= PP_SEGMENTS_MAX);
    assert_true(f->rec->req.nstacks <= PP_STACKS_MAX);
    assert_true(f->rec->req.open_segment <= f->rec->req.nsegments);
    for (g = 0; g < PP_SEGMENTS_MAX; g++) {
        assert_true(f->rec->segments[g].parent <= g);
    }
    q->location = 9999;
    assert_true(pp_store_read_slot(f->st, (uint32_t)idx, f->rec));
    assert_int_equal(f->rec->req.location, -1);
    q->location = -77;
    assert_true(pp_store_read_slot(f->st, (uint32_t)idx, f->rec));
    assert_int_equal(f->rec->req.location, -1);
    /* finishing a request of no location counts it nowhere */
    pp_store_finish(f->st, idx, 200, 1000, 0, PP_KEEP_NONE);
    assert_int_equal(atomic_load(&pp_store_location(f->st, f->loc)->requests),
                     0);
}

static void
test_adoption_keeps_interval_and_depth_to_what_a_config_accepts(void **state)
{
    fix_t *f = *state;
    int idx = claim(f->st, f->loc, "steer");
    pp_req_t *q = &pp_store_slot(f->st, idx)->rec.req;
    uint64_t serial;
    uint32_t interval, depth;

    q->interval_us = 0;
    q->max_depth = 1u << 30;
    assert_int_equal(pp_store_adopt(f->st, "steer", 4242, "g", "a", &serial,
                                    &interval, &depth),
                     idx);
    assert_int_equal(interval, PP_INTERVAL_MIN_US);
    assert_int_equal(depth, PP_DEPTH_LIMIT);
}

/* ---- the write token ---- */

static int32_t gettid_now(void)
{
    return (int32_t)syscall(SYS_gettid);
}

/* The sampler's side: samples into whatever request is current, without
 * pause, until told to stop.  The test changes idx/serial, then bumps gen;
 * ack says the sampler has written under that generation (or, for idx -1,
 * stopped writing). */
typedef struct sampler_sim {
    pp_store_t *st;
    uint32_t node;
    _Atomic int idx;
    _Atomic uint64_t serial;
    _Atomic uint32_t gen, ack;
    atomic_int stop;
    _Atomic unsigned long writes;
} sampler_sim_t;

static void *sampler_sim_main(void *arg)
{
    sampler_sim_t *s = arg;

    while (!atomic_load(&s->stop)) {
        uint32_t gen = atomic_load(&s->gen);
        int idx = atomic_load(&s->idx);
        if (idx >= 0) {
            pp_store_sample(s->st, idx, atomic_load(&s->serial), s->node, 1, 10,
                            5, PP_SAMPLE_ON_CPU);
            atomic_fetch_add(&s->writes, 1);
        }
        atomic_store(&s->ack, gen);
        /* a sampler waits between samples; without it, under valgrind
         * (one thread runs at a time) this loop kept the token nearly
         * always and the test ran for hours */
        sched_yield();
    }
    return NULL;
}

/* Point the sampler at slot idx (-1: nowhere) and wait (bounded) until it
 * has acted on it. */
static int sampler_sim_set(sampler_sim_t *s, int idx, uint64_t serial)
{
    int64_t until = mono_now_us() + 5000000;
    uint32_t gen;

    atomic_store(&s->serial, serial);
    atomic_store(&s->idx, idx);
    gen = atomic_fetch_add(&s->gen, 1) + 1;
    while (atomic_load(&s->ack) != gen) {
        if (mono_now_us() > until) {
            return 0;
        }
        sched_yield();
    }
    return 1;
}

#define TOKEN_REQUESTS 300
#define TOKEN_SEGMENTS 40

static void test_two_threads_of_one_process_lose_no_writes(void **state)
{
    pp_store_t *st = unit_make_store(STORE_SIZE, 8, 16);
    int loc = pp_store_location_register(st, "/app", 10000);
    pp_record_t *rec = new_record();
    sampler_sim_t sim;
    pthread_t th;
    unsigned long lost_begins = 0, open_left = 0, lost_notes = 0;
    int r, g;
    (void)state;

    memset(&sim, 0, sizeof(sim));
    sim.st = st;
    sim.node = pp_store_intern_node(st, 0, frame(st, "v", "v.py", 1));
    atomic_store(&sim.idx, -1);
    assert_int_equal(pthread_create(&th, NULL, sampler_sim_main, &sim), 0);
    for (r = 0; r < TOKEN_REQUESTS; r++) {
        int idx = claim(st, loc, "contended");
        uint64_t serial;

        assert_true(idx >= 0);
        serial = pp_store_slot(st, idx)->rec.req.serial;
        /* the request thread's writes, while the sampler writes too */
        assert_true(sampler_sim_set(&sim, idx, serial));
        pp_store_note_handler_start(st, idx, 11);
        for (g = 0; g < TOKEN_SEGMENTS; g++) {
            uint32_t seg =
                pp_store_segment_begin(st, idx, serial, "sql", "q", 20 + g);
            if (!seg) {
                lost_begins++;
                continue;
            }
            pp_store_segment_end(st, idx, serial, seg, 21 + g);
        }
        pp_store_note_unique_id(st, idx, "uid");
        pp_store_note_app_end(st, idx, 99);
        assert_true(sampler_sim_set(&sim, -1, 0));
        assert_true(pp_store_read_slot(st, (uint32_t)idx, rec));
        for (g = 0; g < (int)rec->req.nsegments; g++) {
            open_left += rec->segments[g].dur_us < 0;
        }
        lost_notes += (rec->req.handler_start_us != 11) +
                      (strcmp(rec->req.unique_id, "uid") != 0) +
                      (rec->req.app_end_us != 99);
        pp_store_finish(st, idx, 200, 1000, 0, PP_KEEP_NONE);
    }
    atomic_store(&sim.stop, 1);
    pthread_join(th, NULL);
    assert_true(atomic_load(&sim.writes) >= TOKEN_REQUESTS);
    if (lost_begins || open_left || lost_notes) {
        fail_msg("with a sampler thread writing: %lu of %d segment begins "
                 "lost, %lu segments left open, %lu of %d notes lost "
                 "(writes_dropped %llu)",
                 lost_begins, TOKEN_REQUESTS * TOKEN_SEGMENTS, open_left,
                 lost_notes, TOKEN_REQUESTS * 3,
                 (unsigned long long)atomic_load(&st->c.writes_dropped));
    }
    assert_int_equal(atomic_load(&st->c.writes_dropped), 0);
    free(rec);
    pp_store_destroy(st);
}

static void
test_write_waits_for_a_busy_token_then_is_counted_dropped(void **state)
{
    fix_t *f = *state;
    int idx = claim(f->st, f->loc, "held");
    pp_slot_t *slot = pp_store_slot(f->st, idx);
    int64_t t0;

    /* held for good by a live writer that is not this thread */
    atomic_store(&slot->token, (int32_t)getppid());
    t0 = mono_now_us();
    pp_store_note_app_end(f->st, idx, 5);
    /* it waited (bounded), then gave the write up and said so */
    assert_true(mono_now_us() - t0 >= 5000);
    assert_true(mono_now_us() - t0 < 2000000);
    assert_int_equal(atomic_load(&f->st->c.writes_dropped), 1);
    atomic_store(&slot->token, 0);
    pp_store_note_app_end(f->st, idx, 6);
    assert_true(pp_store_read_slot(f->st, (uint32_t)idx, f->rec));
    assert_int_equal(f->rec->req.app_end_us, 6);
}

static void test_claim_never_wipes_a_token_another_writer_holds(void **state)
{
    pp_store_t *st = unit_make_store(STORE_SIZE, 2, 2);
    int loc = pp_store_location_register(st, "/app", 10000);
    pp_slot_t *s0 = pp_store_slot(st, 0);
    int32_t holder = (int32_t)getppid(); /* alive, not this thread */
    (void)state;

    /* a daemon still writing into slot 0 for the request that was there */
    atomic_store(&s0->token, holder);
    assert_int_equal(claim_as(st, loc, "next", "/app/x", getpid(), 0), 1);
    assert_int_equal(atomic_load(&s0->token), holder);
    assert_int_equal(PP_SLOT_PHASE(atomic_load(&s0->state)), PP_SLOT_FREE);
    /* once it is done, the slot is claimable again */
    atomic_store(&s0->token, 0);
    assert_int_equal(claim_as(st, loc, "later", "/app/x", getpid(), 0), 0);
    assert_int_equal(atomic_load(&s0->token), 0);
    pp_store_destroy(st);
}

static void test_claim_takes_over_a_token_left_by_a_dead_process(void **state)
{
    pp_store_t *st = unit_make_store(STORE_SIZE, 1, 1);
    int loc = pp_store_location_register(st, "/app", 10000);
    pp_slot_t *s0 = pp_store_slot(st, 0);
    (void)state;

    atomic_store(&s0->token, (int32_t)dead_pid());
    assert_int_equal(claim(st, loc, "takeover"), 0);
    assert_int_equal(atomic_load(&s0->token), 0);
    pp_store_destroy(st);
}

/* ---- adoption by a daemon ---- */

static void
test_adoption_that_cannot_take_the_token_hands_the_slot_back(void **state)
{
    fix_t *f = *state;
    int idx = claim(f->st, f->loc, "adopt-me");
    pp_slot_t *slot = pp_store_slot(f->st, idx);
    uint64_t serial;
    uint32_t interval, depth;

    atomic_store(&slot->token, (int32_t)getppid());
    assert_int_equal(pp_store_adopt(f->st, "adopt-me", 4242, "g", "a", &serial,
                                    &interval, &depth),
                     -1);
    /* not adopted, so the claimer samples it */
    assert_int_equal(atomic_load(&slot->sampler_pid), 0);
    assert_true(pp_store_samples_here(f->st, idx, getpid()));
    atomic_store(&slot->token, 0);
}

typedef struct adopter {
    pp_store_t *st;
    int result;
} adopter_t;

static void *adopter_main(void *arg)
{
    adopter_t *a = arg;
    uint64_t serial;
    uint32_t interval, depth;

    a->result = pp_store_adopt(a->st, "first", 4242, "g", "a", &serial,
                               &interval, &depth);
    return NULL;
}

static void test_adoption_of_a_slot_that_moved_on_hands_it_back(void **state)
{
    fix_t *f = *state;
    int idx = claim(f->st, f->loc, "first");
    pp_slot_t *slot = pp_store_slot(f->st, idx);
    adopter_t a = {f->st, 0};
    pthread_t th;
    int64_t until;

    /* this thread holds the token while the daemon's adoption runs: it
     * finds "first", wins the compare-and-swap, then waits for us */
    atomic_store(&slot->token, gettid_now());
    assert_int_equal(pthread_create(&th, NULL, adopter_main, &a), 0);
    until = mono_now_us() + 5000000;
    while (atomic_load(&slot->sampler_pid) != 4242 && mono_now_us() < until) {
        sched_yield();
    }
    assert_int_equal(atomic_load(&slot->sampler_pid), 4242);
    /* meanwhile "first" finished and another request took the slot */
    memcpy(slot->rec.req.id, "second", sizeof("second"));
    atomic_store(&slot->token, 0);
    pthread_join(th, NULL);
    assert_int_equal(a.result, -1);
    /* "second" was never adopted: its claimer must sample it */
    assert_int_equal(atomic_load(&slot->sampler_pid), 0);
    assert_true(pp_store_samples_here(f->st, idx, getpid()));
}

/* ---- many writers ---- */

#define CYCLES 2000

typedef struct worker {
    pp_store_t *st;
    int loc;
    int who;
    long cycles; /* < 0: until killed */
    unsigned long claim_failed, intern_failed;
    uint32_t handler_frame; /* id of ("handler", "app.py", 3) */
} worker_t;

static int samples_of(int i)
{
    return i % 5 + 1;
}

static void run_cycles(worker_t *w)
{
    int32_t pid = (int32_t)getpid();
    long i;

    for (i = 0; w->cycles < 0 || i < w->cycles; i++) {
        char id[32], uri[64];
        int idx, k;
        uint32_t fmain, fh, n1, n2;
        pp_slot_t *slot;

        snprintf(id, sizeof(id), "w%d-%ld", w->who, i);
        snprintf(uri, sizeof(uri), "/app/w%d/%ld", w->who, i);
        idx = claim_as(w->st, w->loc, id, uri, pid, w->who);
        if (idx < 0) {
            w->claim_failed++;
            continue;
        }
        slot = pp_store_slot(w->st, idx);
        fmain = frame(w->st, "main", "wsgi.py", 1);
        fh = frame(w->st, "handler", "app.py", (uint32_t)(i % 10));
        if (i % 10 == 3) {
            w->handler_frame = fh;
        }
        n1 = pp_store_intern_node(w->st, 0, fmain);
        n2 = pp_store_intern_node(w->st, n1, fh);
        if (!fmain || !fh || !n1 || !n2) {
            w->intern_failed++;
        }
        for (k = 0; k < samples_of((int)i); k++) {
            pp_store_add_sample(w->st, slot, k == 0 ? n1 : n2, k, 1000, 500);
        }
        pp_store_finish(w->st, idx, 200 + (int)(i % 3),
                        (int64_t)(i % 50 + 1) * 1000, 100, i % 4 == 0);
    }
}

/* Does a snapshot read from the store describe one request written by
 * run_cycles, whole?  finished: a kept trace (final fields known). */
static int record_consistent(const pp_store_t *st, const pp_record_t *r,
                             int finished)
{
    int who, n = 0;
    long i;
    char uri[64];
    uint64_t sum = 0;
    uint32_t k, nonempty = 0;

    if (sscanf(r->req.id, "w%d-%ld%n", &who, &i, &n) != 2 ||
        r->req.id[n] != '\0') {
        return 0;
    }
    snprintf(uri, sizeof(uri), "/app/w%d/%ld", who, i);
    if (strcmp(r->req.uri, uri) != 0 || strcmp(r->req.method, "GET") != 0) {
        return 0;
    }
    for (k = 0; k < PP_STACKS_MAX; k++) {
        const pp_stack_count_t *e = &r->stacks[k];
        uint32_t parent, fr;
        pp_frame_view_t fv;

        if (!e->node) {
            continue;
        }
        nonempty++;
        sum += e->count;
        if (!pp_store_node_get(st, e->node, &parent, &fr) ||
            !pp_store_frame_view(st, fr, &fv) ||
            (strcmp(fv.function, "main") != 0 &&
             strcmp(fv.function, "handler") != 0)) {
            return 0;
        }
    }
    if (sum != r->req.samples || nonempty != r->req.nstacks) {
        return 0;
    }
    if (r->req.samples > (uint32_t)samples_of((int)i)) {
        return 0;
    }
    if (finished) {
        return r->req.samples == (uint32_t)samples_of((int)i) &&
               r->req.status == 200 + (int)(i % 3) &&
               r->req.duration_us == (int64_t)(i % 50 + 1) * 1000 && i % 4 == 0;
    }
    return (r->req.status == 0 || r->req.status == 200 + (int)(i % 3));
}

typedef struct reader {
    pp_store_t *st;
    atomic_int *stop;
    unsigned long reads, bad;
    pp_record_t *rec;
} reader_t;

static void *reader_main(void *arg)
{
    reader_t *r = arg;

    while (!atomic_load(r->stop)) {
        uint32_t i;
        for (i = 0; i < r->st->keep; i++) {
            if (pp_store_read_trace(r->st, i, r->rec)) {
                r->reads++;
                r->bad += !record_consistent(r->st, r->rec, 1);
            }
        }
        for (i = 0; i < r->st->nslots; i++) {
            if (pp_store_read_slot(r->st, i, r->rec)) {
                r->reads++;
                r->bad += !record_consistent(r->st, r->rec, 0);
            }
        }
    }
    return NULL;
}

static void *worker_main(void *arg)
{
    run_cycles(arg);
    return NULL;
}

/* Totals of one location after `n` workers ran CYCLES cycles each. */
static void check_location_totals(pp_store_t *st, int loc, int n)
{
    pp_location_t *l = pp_store_location(st, loc);
    uint64_t samples = 0;
    int i;

    for (i = 0; i < CYCLES; i++) {
        samples += (uint64_t)samples_of(i);
    }
    assert_int_equal(atomic_load(&l->requests), (uint64_t)n * CYCLES);
    assert_int_equal(hist_sum(l), (uint64_t)n * CYCLES);
    assert_int_equal(atomic_load(&l->samples), samples * (uint64_t)n);
    assert_int_equal(atomic_load(&l->kept), (uint64_t)n * CYCLES / 4);
}

static void check_kept_traces(pp_store_t *st, pp_record_t *rec)
{
    uint32_t i, readable = 0;

    for (i = 0; i < st->keep; i++) {
        if (!pp_store_read_trace(st, i, rec)) {
            continue;
        }
        readable++;
        if (!record_consistent(st, rec, 1)) {
            fail_msg("kept trace %u (id \"%s\") is not self-consistent", i,
                     rec->req.id);
        }
    }
    assert_int_equal(readable, st->keep);
}

static void test_concurrent_threads_totals_add_up(void **state)
{
    pp_store_t *st = unit_make_store(STORE_SIZE, 8, 16);
    int loc = pp_store_location_register(st, "/app", 10000);
    worker_t w[4];
    reader_t rd;
    pthread_t th[4], rt;
    atomic_int stop = 0;
    int i;
    (void)state;

    memset(&rd, 0, sizeof(rd));
    rd.st = st;
    rd.stop = &stop;
    rd.rec = new_record();
    assert_int_equal(pthread_create(&rt, NULL, reader_main, &rd), 0);
    for (i = 0; i < 4; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].st = st;
        w[i].loc = loc;
        w[i].who = i;
        w[i].cycles = CYCLES;
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
    }
    atomic_store(&stop, 1);
    pthread_join(rt, NULL);

    for (i = 0; i < 4; i++) {
        assert_int_equal(w[i].claim_failed, 0);
        assert_int_equal(w[i].intern_failed, 0);
        assert_true(w[i].handler_frame != 0);
        assert_int_equal(w[i].handler_frame, w[0].handler_frame);
    }
    assert_int_equal(atomic_load(&st->c.slots_full), 0);
    check_location_totals(st, loc, 4);
    assert_int_equal(atomic_load(&st->c.samples),
                     atomic_load(&pp_store_location(st, loc)->samples));
    assert_int_equal(atomic_load(&st->c.traces_kept) +
                         atomic_load(&st->c.traces_torn),
                     4 * CYCLES / 4);
    check_kept_traces(st, rd.rec);
    assert_true(rd.reads > 0);
    if (rd.bad) {
        fail_msg("%lu of %lu concurrent reads returned a torn record", rd.bad,
                 rd.reads);
    }
    free(rd.rec);
    pp_store_destroy(st);
}

static pid_t spawn_worker(pp_store_t *st, int loc, int who, long cycles)
{
    pid_t pid;

    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        worker_t w;
        memset(&w, 0, sizeof(w));
        w.st = st;
        w.loc = loc;
        w.who = who;
        w.cycles = cycles;
        run_cycles(&w);
        _exit(w.claim_failed ? 10 : w.intern_failed ? 11 : 0);
    }
    return pid;
}

static void test_forked_writers_totals_add_up(void **state)
{
    pp_store_t *st = unit_make_store(STORE_SIZE, 8, 16);
    int loc = pp_store_location_register(st, "/app", 10000);
    pp_record_t *rec = new_record();
    uint64_t arena_before;
    pid_t pids[3];
    int i, ws;
    (void)state;

    for (i = 0; i < 3; i++) {
        pids[i] = spawn_worker(st, loc, i, CYCLES);
        assert_true(pids[i] > 0);
    }
    for (i = 0; i < 3; i++) {
        assert_int_equal(waitpid(pids[i], &ws, 0), pids[i]);
        if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
            fail_msg("worker %d ended with status 0x%x", i, ws);
        }
    }
    check_location_totals(st, loc, 3);
    check_kept_traces(st, rec);
    /* the children's interned frames are the parent's too */
    arena_before = pp_store_arena_used(st);
    assert_true(frame(st, "handler", "app.py", 3) != 0);
    assert_true(pp_store_arena_used(st) == arena_before);
    free(rec);
    pp_store_destroy(st);
}

static void test_sigkilled_writer_leaves_readers_and_totals_intact(void **state)
{
    pp_store_t *st = unit_make_store(STORE_SIZE, 8, 16);
    int victim_loc = pp_store_location_register(st, "/victim", 10000);
    int loc = pp_store_location_register(st, "/app", 10000);
    pp_record_t *rec = new_record();
    unit_buf_t out = {0};
    pp_sink_t o = unit_sink(&out);
    pp_render_opts_t opt;
    pp_overview_t ov;
    pid_t victim, pids[2];
    int i, ws;
    uint32_t k;
    struct timespec ts = {0, 30 * 1000 * 1000};
    (void)state;

    unit_default_opts(&opt, now_us());
    victim = spawn_worker(st, victim_loc, 9, -1);
    assert_true(victim > 0);
    for (i = 0; i < 2; i++) {
        pids[i] = spawn_worker(st, loc, i, CYCLES);
        assert_true(pids[i] > 0);
    }
    /* killed while it writes: once it has finished a request (under
     * valgrind on a busy machine that can take far longer than 30 ms) */
    for (i = 0; i < 2000 &&
                atomic_load(&pp_store_location(st, victim_loc)->requests) == 0;
         i++) {
        nanosleep(&ts, NULL);
    }
    nanosleep(&ts, NULL);
    kill(victim, SIGKILL);
    assert_int_equal(waitpid(victim, &ws, 0), victim);
    assert_true(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
    for (i = 0; i < 2; i++) {
        assert_int_equal(waitpid(pids[i], &ws, 0), pids[i]);
        if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
            fail_msg("worker %d ended with status 0x%x", i, ws);
        }
    }
    /* the victim really ran alongside */
    assert_true(atomic_load(&pp_store_location(st, victim_loc)->requests) > 0);
    check_location_totals(st, loc, 2);
    pp_store_reap_dead(st);
    /* every record reads as whole or not at all */
    for (k = 0; k < st->keep; k++) {
        if (pp_store_read_trace(st, k, rec)) {
            assert_true(record_consistent(st, rec, 1));
        }
    }
    for (k = 0; k < st->nslots; k++) {
        if (pp_store_read_slot(st, k, rec)) {
            assert_true(record_consistent(st, rec, 0));
        }
    }
    assert_int_equal(pp_overview_load(&ov, st, &opt, PP_OV_JSON), 0);
    pp_render_overview_json(&o, &ov, &opt);
    pp_overview_free(&ov);
    unit_assert_json(unit_buf_str(&out), "len(d['locations']) == 2");
    unit_buf_reset(&out);
    assert_int_equal(pp_overview_load(&ov, st, &opt, PP_OV_HTML), 0);
    pp_render_overview_html(&o, &ov, &opt);
    pp_overview_free(&ov);
    assert_non_null(strstr(unit_buf_str(&out), "</html>"));
    unit_buf_free(&out);
    free(rec);
    pp_store_destroy(st);
}

/* One claim / sample / kept finish, as a request thread and the sampler
 * do it. */
static void one_request(pp_store_t *st, int loc, const char *id)
{
    int idx = claim_as(st, loc, id, "/app/traced", (int32_t)getpid(), 0);
    uint32_t n;

    if (idx < 0) {
        _exit(20);
    }
    n = pp_store_intern_node(st, 0, frame(st, "view", "v.py", 1));
    pp_store_add_sample(st, pp_store_slot(st, idx), n, 1, 1000, 0);
    pp_store_finish(st, idx, 200, 700000, 0, 1);
}

/* Would pp_store_reap_dead free everything `pid` holds if it died now? A
 * slot that is not free must name its owner. */
static int owner_identifiable(pp_store_t *st, pid_t pid, uint32_t *bad_slot)
{
    uint32_t i;
    for (i = 0; i < st->nslots; i++) {
        pp_slot_t *s = pp_store_slot(st, (int)i);
        uint32_t v = atomic_load(&s->state);
        if (PP_SLOT_PHASE(v) != PP_SLOT_FREE && PP_SLOT_PID(v) != pid) {
            *bad_slot = i;
            return 0;
        }
    }
    return 1;
}

/* Run a child through one request under ptrace, one instruction at a
 * time; the `nth` time a slot stops naming its owner, SIGKILL the child
 * there.  Returns 1 if killed (and fills what reap_dead then left), 0 if
 * the child finished first, -1 if ptrace is not available. */
static int kill_at_nth_anonymous_point(int nth, char *msg, size_t cap,
                                       long *steps_out)
{
    pp_store_t *st = unit_make_store(STORE_SIZE, 2, 2);
    int loc = pp_store_location_register(st, "/app", 10000);
    int ws = 0, seen = 0, was_ok = 1, killed = 0;
    long steps = 0;
    uint32_t bad = 0, i;
    pid_t pid;

    msg[0] = '\0';
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0) {
            _exit(3);
        }
        one_request(st, loc, "warm-up"); /* bind symbols, touch pages */
        raise(SIGSTOP);
        one_request(st, loc, "traced");
        _exit(0);
    }
    if (pid < 0 || waitpid(pid, &ws, 0) != pid || !WIFSTOPPED(ws)) {
        pp_store_destroy(st);
        return -1;
    }
    while (steps < 5000000) {
        int ok;
        if (ptrace(PTRACE_SINGLESTEP, pid, NULL, NULL) != 0 ||
            waitpid(pid, &ws, 0) != pid || !WIFSTOPPED(ws)) {
            break;
        }
        steps++;
        ok = owner_identifiable(st, pid, &bad);
        if (!ok && was_ok && ++seen == nth) {
            pp_slot_t *s = pp_store_slot(st, (int)bad);
            uint32_t before = atomic_load(&s->state);
            kill(pid, SIGKILL);
            waitpid(pid, &ws, 0);
            killed = 1;
            pp_store_reap_dead(st);
            for (i = 0; i < st->nslots; i++) {
                s = pp_store_slot(st, (int)i);
                uint32_t after = atomic_load(&s->state);
                if (PP_SLOT_PHASE(after) != PP_SLOT_FREE) {
                    snprintf(msg, cap,
                             "killed %ld instructions into claim/finish "
                             "with slot %u phase=%u pid=%d: after "
                             "pp_store_reap_dead the slot is still "
                             "phase=%u pid=%d (leaked for good)",
                             steps, bad, PP_SLOT_PHASE(before),
                             PP_SLOT_PID(before), PP_SLOT_PHASE(after),
                             PP_SLOT_PID(after));
                    break;
                }
            }
            break;
        }
        was_ok = ok;
    }
    if (!killed) {
        kill(pid, SIGKILL);
        waitpid(pid, &ws, 0);
    }
    *steps_out = steps;
    pp_store_destroy(st);
    return killed;
}

static void test_slot_of_process_killed_anywhere_is_reapable(void **state)
{
    char msg[512], all[2048] = "";
    long steps = 0;
    int nth, r;
    (void)state;

    /* single-stepping a child that runs under valgrind's JIT took minutes
     * (tests/unit/valgrind-unit.sh sets this); the native run checks it */
    if (getenv("PP_UNIT_UNDER_VALGRIND")) {
        skip();
    }
    for (nth = 1; nth <= 8; nth++) {
        r = kill_at_nth_anonymous_point(nth, msg, sizeof(msg), &steps);
        if (r < 0) {
            skip(); /* no ptrace here (seccomp, yama) */
        }
        if (r == 0) {
            /* the child ran the whole request under the tracer */
            assert_true(steps > 200);
            break; /* no more such points */
        }
        if (msg[0]) {
            size_t n = strlen(all);
            snprintf(all + n, sizeof(all) - n, "\n  point %d: %s", nth, msg);
        }
    }
    if (all[0]) {
        fail_msg("a process SIGKILLed inside pp_store_claim/finish can leak "
                 "a slot:%s",
                 all);
    }
}

/* ---- per-minute windows ---- */

static _Atomic uint64_t *epoch_stamp(pp_store_t *st, int64_t minute)
{
    return (_Atomic uint64_t *)((char *)st + st->off_epoch_stamps) +
           (minute % PP_EPOCHS);
}

/* A request with one sample on `node` that finished inside `minute`. */
static void finish_in_minute(pp_store_t *st, int loc, int64_t minute,
                             uint32_t node)
{
    pp_req_info_t info;
    int idx;

    pp_testing_req_info(&info, "minute", "/app/m", NULL, loc, 10000, 128,
                        minute * PP_EPOCH_US + 1000);
    idx = pp_store_claim(st, &info, 0);
    if (idx < 0) {
        _exit(21); /* only reached in a child: the parent asserts first */
    }
    pp_store_add_sample(st, pp_store_slot(st, idx), node, info.start_us, 1000,
                        0);
    pp_store_finish(st, idx, 200, 2000, 0, 0);
}

static uint64_t count_in(const pp_agg_entry_t *tab, uint32_t n, int loc,
                         uint32_t node)
{
    uint64_t key = ((uint64_t)(loc + 1) << 32) | node, c = 0;
    uint32_t i;

    for (i = 0; tab && i < n; i++) {
        if (atomic_load(&tab[i].key) == key) {
            c += atomic_load(&tab[i].count);
        }
    }
    return c;
}

static void test_epoch_table_holds_its_minute_only(void **state)
{
    fix_t *f = *state;
    int64_t m = now_us() / PP_EPOCH_US;
    uint32_t node =
        pp_store_intern_node(f->st, 0, frame(f->st, "w", "w.py", 1));
    const pp_agg_entry_t *t;
    uint32_t n = 0, nall = 0;

    finish_in_minute(f->st, f->loc, m, node);
    t = pp_store_epoch(f->st, m, &n);
    assert_non_null(t);
    assert_int_equal(count_in(t, n, f->loc, node), 1);
    assert_null(pp_store_epoch(f->st, m + 1, &n));
    /* 64 minutes later the same table is taken over, emptied */
    finish_in_minute(f->st, f->loc, m + PP_EPOCHS, node);
    assert_null(pp_store_epoch(f->st, m, &n));
    t = pp_store_epoch(f->st, m + PP_EPOCHS, &n);
    assert_non_null(t);
    assert_int_equal(count_in(t, n, f->loc, node), 1);
    /* a late finish for the old minute misses the windows, not the
     * all-time aggregate */
    finish_in_minute(f->st, f->loc, m, node);
    assert_int_equal(count_in(t, n, f->loc, node), 1);
    assert_int_equal(atomic_load(&f->st->c.epoch_busy), 1);
    t = pp_store_agg(f->st, &nall);
    assert_int_equal(count_in(t, nall, f->loc, node), 3);
}

/* Single-step a stopped, traced child until pred() holds (1; the child is
 * left stopped there) or it ends (0). */
static int step_until(pid_t pid, int (*pred)(void *), void *ctx, long *steps)
{
    int ws;

    for (*steps = 0; *steps < 5000000; (*steps)++) {
        if (ptrace(PTRACE_SINGLESTEP, pid, NULL, NULL) != 0 ||
            waitpid(pid, &ws, 0) != pid || !WIFSTOPPED(ws)) {
            return 0;
        }
        if (pred(ctx)) {
            return 1;
        }
    }
    return 0;
}

typedef struct stamp_watch {
    pp_store_t *st;
    int64_t minute;
} stamp_watch_t;

static int stamp_resetting(void *ctx)
{
    stamp_watch_t *w = ctx;
    return (atomic_load(epoch_stamp(w->st, w->minute)) & PP_EPOCH_RESETTING) !=
           0;
}

/* A process SIGKILLed while it empties a minute's table for reuse must not
 * take that table out of service: later minutes that map to it are still
 * windowed. */
static void test_epoch_reset_by_killed_process_is_not_stuck(void **state)
{
    fix_t *f = *state;
    int64_t m = now_us() / PP_EPOCH_US;
    uint32_t node =
        pp_store_intern_node(f->st, 0, frame(f->st, "w", "w.py", 1));
    stamp_watch_t w = {f->st, m + PP_EPOCHS};
    const pp_agg_entry_t *t;
    uint32_t n = 0;
    long steps = 0;
    int ws = 0, caught;
    pid_t pid;

    finish_in_minute(f->st, f->loc, m, node);
    assert_non_null(pp_store_epoch(f->st, m, &n));
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0) {
            _exit(3);
        }
        raise(SIGSTOP);
        finish_in_minute(f->st, f->loc, m + PP_EPOCHS, node);
        _exit(0);
    }
    if (waitpid(pid, &ws, 0) != pid || !WIFSTOPPED(ws)) {
        kill(pid, SIGKILL);
        waitpid(pid, &ws, 0);
        skip(); /* no ptrace here */
    }
    caught = step_until(pid, stamp_resetting, &w, &steps);
    kill(pid, SIGKILL);
    waitpid(pid, &ws, 0);
    if (!caught) {
        fail_msg("the child finished in minute m+%d without resetting "
                 "that minute's table (%ld steps)",
                 PP_EPOCHS, steps);
    }
    /* killed mid-reset; 64 minutes on, the table must work again */
    finish_in_minute(f->st, f->loc, m + 2 * PP_EPOCHS, node);
    t = pp_store_epoch(f->st, m + 2 * PP_EPOCHS, &n);
    if (!t) {
        fail_msg("after a process died %ld instructions into resetting the "
                 "table of minute m+%d, minute m+%d is not windowed "
                 "(stamp 0x%llx, epoch_busy %llu): that table is out of "
                 "service for good",
                 steps, PP_EPOCHS, 2 * PP_EPOCHS,
                 (unsigned long long)atomic_load(
                     epoch_stamp(f->st, m + 2 * PP_EPOCHS)),
                 (unsigned long long)atomic_load(&f->st->c.epoch_busy));
    }
    assert_int_equal(count_in(t, n, f->loc, node), 1);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_refuses_too_small_size_with_message),
        cmocka_unit_test(test_create_refuses_zero_slots_or_keep),
        cmocka_unit_test(test_min_size_is_enough),
        T(test_create_lays_out_an_empty_store),
        T(test_form_nonce_accepts_this_and_the_previous_hour),
        T(test_form_nonce_refuses_an_older_window),
        T(test_form_nonce_refuses_garbage_and_other_stores),
        T(test_location_register_finds_existing_row),
        T(test_location_table_full_returns_minus_one),
        T(test_claim_publishes_an_inflight_request),
        T(test_claim_truncates_long_strings),
        T(test_claim_serials_are_unique),
        T(test_finish_counts_request_in_histogram),
        T(test_finish_keeps_trace_when_asked),
        T(test_finish_does_not_keep_fast_request),
        T(test_finish_frees_the_slot),
        T(test_finish_twice_counts_once),
        T(test_intern_stack_memo_matches_plain),
        T(test_finish_adds_stacks_to_location_aggregate),
        cmocka_unit_test(test_slots_exhaustion_is_counted),
        cmocka_unit_test(test_eviction_keeps_the_newest_traces),
        T(test_find_refuses_empty_and_unknown_ids),
        T(test_intern_same_frame_same_id),
        T(test_intern_different_line_different_id),
        T(test_intern_truncates_names_at_frame_text_max),
        T(test_intern_cuts_names_at_embedded_nul),
        T(test_intern_cuts_long_names_between_characters),
        T(test_frame_view_returns_the_exact_strings),
        T(test_frame_view_refuses_invalid_ids),
        cmocka_unit_test(test_intern_table_full_returns_zero_and_counts),
        cmocka_unit_test(test_full_frame_table_never_misresolves_ids),
        cmocka_unit_test(test_full_arena_never_misresolves_ids),
        cmocka_unit_test(
            test_concurrent_interning_into_a_full_arena_never_overlaps),
        T(test_node_interning_is_stable),
        T(test_node_with_frame_zero_is_refused),
        T(test_add_sample_aggregates_per_stack),
        T(test_add_sample_ignores_node_zero),
        T(test_add_sample_overflows_into_other_stacks),
        T(test_record_with_odd_seq_is_unreadable),
        T(test_writer_carries_on_after_a_dead_writer),
        cmocka_unit_test(test_keep_skips_a_trace_entry_left_odd),
        cmocka_unit_test(test_keep_with_every_entry_odd_is_counted_torn),
        T(test_reap_dead_frees_slot_of_dead_process),
        T(test_claim_reaps_slots_of_dead_processes_when_none_is_free),
        T(test_reaping_on_claim_is_rate_limited),
        T(test_header_scribbled_by_another_process_changes_nothing_here),
        T(test_old_generation_child_sees_locations_of_the_new_one),
        T(test_shared_counters_scribbled_over_stay_harmless),
        T(test_negative_or_huge_start_time_never_indexes_out_of_the_windows),
        T(test_record_indices_out_of_range_are_bounded),
        T(test_adoption_keeps_interval_and_depth_to_what_a_config_accepts),
        cmocka_unit_test(test_two_threads_of_one_process_lose_no_writes),
        T(test_write_waits_for_a_busy_token_then_is_counted_dropped),
        cmocka_unit_test(test_claim_never_wipes_a_token_another_writer_holds),
        cmocka_unit_test(test_claim_takes_over_a_token_left_by_a_dead_process),
        T(test_adoption_that_cannot_take_the_token_hands_the_slot_back),
        T(test_adoption_of_a_slot_that_moved_on_hands_it_back),
        cmocka_unit_test(test_concurrent_threads_totals_add_up),
        cmocka_unit_test(test_forked_writers_totals_add_up),
        cmocka_unit_test(
            test_sigkilled_writer_leaves_readers_and_totals_intact),
        cmocka_unit_test(test_slot_of_process_killed_anywhere_is_reapable),
        T(test_epoch_table_holds_its_minute_only),
        T(test_epoch_reset_by_killed_process_is_not_stuck),
    };
#undef T
    return cmocka_run_group_tests_name("pp_store", tests, NULL, NULL);
}
