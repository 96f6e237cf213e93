/* test_renew.c: what a graceful restart does with a store that fills up
 * (pp_store_wants_renewal, pp_store_renew in pp_store.c).
 *
 * Frames, stack nodes and location rows are never freed in a running
 * store; deploys of new code (new function names) and of new prefixes
 * fill them.  These tests play many deploys the way the parent does at
 * each graceful restart: ask whether to renew, and if so move what is
 * still referred to into a new store of the same sizes.
 */
#include "unit.h"

#include <time.h>

#include "pp_store.h"
#include "pp_store_testing.h"

/* the intern tables at their minimum sizes (1024 frames) */
#define SMALL_STORE_SIZE (pp_store_min_size(8, 4) + (64ULL << 10))
#define NSLOTS 8
#define KEEP 4
#define FUNCS_PER_DEPLOY 200 /* distinct functions of each deploy's code */

static pp_store_t *make_store(void)
{
    const char *err = NULL;
    pp_store_t *st = pp_store_create(SMALL_STORE_SIZE, NSLOTS, KEEP, &err);

    if (!st) {
        fail_msg("pp_store_create: %s", err ? err : "(no message)");
    }
    return st;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* One deploy's traffic: a request of location `loc` whose one stack runs
 * through every function of this deploy's code (root first), sampled and
 * kept as slow.  Returns the stack's leaf node (0: a table was full). */
static uint32_t deploy_request(pp_store_t *st, int loc, int deploy)
{
    pp_req_info_t info;
    char id[32], func[32];
    uint32_t node = 0, frame;
    int idx, k;

    for (k = 0; k < FUNCS_PER_DEPLOY; k++) {
        snprintf(func, sizeof(func), "v%d_step%d", deploy, k);
        frame = pp_store_intern_frame(st, func, strlen(func), "/srv/app.py", 11,
                                      (uint32_t)(10 + k));
        if (!frame || !(node = pp_store_intern_node(st, node, frame))) {
            return 0;
        }
    }
    snprintf(id, sizeof(id), "deploy-%d", deploy);
    memset(&info, 0, sizeof(info));
    info.id = id;
    info.method = "GET";
    info.uri = "/app/work";
    info.vhost = "www.example.org";
    info.pid = getpid();
    info.tid = 1;
    info.location = loc;
    info.interval_us = 10000;
    info.max_depth = PP_DEPTH_LIMIT;
    info.start_us = now_us();
    idx = pp_store_claim(st, &info, 0);
    assert_true(idx >= 0);
    pp_store_add_sample(st, pp_store_slot(st, idx), node, now_us(), 10000,
                        9000);
    pp_store_finish(st, idx, 200, 500000, 450000, PP_KEEP_SLOW);
    return node;
}

/* The kept trace of a deploy, read back with its stack's names: 1 if its
 * one stack names every function of that deploy, leaf first; 0 if it
 * does not; -1 if no trace of that deploy is kept. */
static int trace_names_deploy(const pp_store_t *st, int deploy)
{
    static pp_record_t rec;
    char id[32], want[32];
    uint32_t i, j;

    snprintf(id, sizeof(id), "deploy-%d", deploy);
    for (i = 0; i < pp_store_all_traces(st); i++) {
        if (!pp_store_read_trace(st, i, &rec) || strcmp(rec.req.id, id)) {
            continue;
        }
        for (j = 0; j < PP_STACKS_MAX; j++) {
            uint32_t node = rec.stacks[j].node, parent, frame;
            int k = FUNCS_PER_DEPLOY - 1;

            if (!node) {
                continue;
            }
            if (rec.stacks[j].count != 1 || rec.req.last_node != node) {
                return 0;
            }
            while (node && pp_store_node_get(st, node, &parent, &frame)) {
                pp_frame_view_t fv;
                snprintf(want, sizeof(want), "v%d_step%d", deploy, k);
                if (k < 0 || !pp_store_frame_view(st, frame, &fv) ||
                    strcmp(fv.function, want) != 0 ||
                    fv.line != (uint32_t)(10 + k)) {
                    return 0;
                }
                k--;
                node = parent;
            }
            return k == -1;
        }
        return 0;
    }
    return -1;
}

/* What the parent does at a graceful restart (mod_pyprof.c,
 * renew_if_full): renew when asked to, and re-register the prefixes. */
static pp_store_t *graceful_restart(pp_store_t *st, const char *const *prefixes,
                                    int n, int *renewed)
{
    const char *why = NULL;
    int i;

    if (pp_store_wants_renewal(st, prefixes, n, &why)) {
        pp_store_t *fresh = make_store();
        assert_non_null(why);
        assert_true(pp_store_renew(fresh, st, prefixes, n) >= 0);
        pp_store_destroy(st);
        st = fresh;
        (*renewed)++;
    }
    atomic_fetch_add(&st->generation, 1);
    for (i = 0; i < n; i++) {
        assert_true(pp_store_location_register(st, prefixes[i], 10000) >= 0);
    }
    return st;
}

/* Thirty deploys of 200 new functions each (6,000 frames) into a table of
 * 1,024: without renewal the table is full by the sixth and every later
 * deploy's stacks are "[frame table full]"; with it every deploy's code
 * is named, the last deploys' kept traces survive the renewals with their
 * names, and the location's histogram and the counters carry over. */
static void test_deploys_of_new_code_never_fill_the_frame_table(void **state)
{
    static const char *const prefixes[] = {"/app"};
    pp_store_t *st = make_store(), *plain = make_store();
    int d, renewed = 0, loc, plain_loc, unnamed = 0;
    uint64_t requests_before;
    (void)state;

    assert_int_equal(st->nframes, 1024);
    loc = pp_store_location_register(st, "/app", 10000);
    plain_loc = pp_store_location_register(plain, "/app", 10000);
    for (d = 0; d < 30; d++) {
        uint32_t node;

        st = graceful_restart(st, prefixes, 1, &renewed);
        assert_int_equal(pp_store_location_register(st, "/app", 10000), loc);
        requests_before = atomic_load(&pp_store_location(st, loc)->requests);
        node = deploy_request(st, loc, d);
        if (!node) {
            fail_msg("deploy %d: the store had no room for its code "
                     "(%d renewals so far)",
                     d, renewed);
        }
        assert_int_equal(trace_names_deploy(st, d), 1);
        assert_int_equal(atomic_load(&pp_store_location(st, loc)->requests),
                         requests_before + 1);
        /* the store that is never renewed */
        unnamed += deploy_request(plain, plain_loc, d) == 0;
    }
    assert_true(renewed >= 4);
    assert_int_equal(atomic_load(&st->c.renewals), (uint64_t)renewed);
    assert_int_equal(atomic_load(&st->c.frames_full), 0);
    /* every request counted in the histogram, across all renewals */
    assert_int_equal(atomic_load(&pp_store_location(st, loc)->requests), 30);
    /* The last deploys' traces are kept with their names, but for those
     * a renewal left behind to make room (counted as evicted); the one
     * before the last restart always moves over. */
    for (d = 30 - KEEP; d < 30; d++) {
        assert_true(trace_names_deploy(st, d) != 0);
    }
    assert_int_equal(trace_names_deploy(st, 28), 1);
    assert_true(atomic_load(&st->c.traces_evicted) > 0);
    assert_true(unnamed >= 20);
    assert_true(atomic_load(&plain->c.frames_full) > 0);
    pp_store_destroy(st);
    pp_store_destroy(plain);
}

/* A store with room to spare is kept as it is. */
static void test_no_renewal_while_there_is_room(void **state)
{
    static const char *const prefixes[] = {"/app"};
    pp_store_t *st = make_store();
    const char *why = NULL;
    int loc = pp_store_location_register(st, "/app", 10000);
    (void)state;

    assert_true(deploy_request(st, loc, 0) != 0);
    assert_int_equal(pp_store_wants_renewal(st, prefixes, 1, &why), 0);
    assert_null(why);
    pp_store_destroy(st);
}

/* Each deploy configures a new prefix and drops the previous one: the 64
 * location rows fill with prefixes no longer configured, and the 65th
 * deploy's location was not sampled at all.  A renewal leaves behind the
 * rows of prefixes gone (counted) and keeps the ones configured. */
static void test_rows_of_prefixes_gone_are_reclaimed(void **state)
{
    pp_store_t *st = make_store();
    int d, renewed = 0;
    char path[2][32];
    (void)state;

    snprintf(path[0], sizeof(path[0]), "/always");
    for (d = 0; d < 3 * PP_MAX_LOCATIONS; d++) {
        const char *prefixes[2];
        int idx;

        snprintf(path[1], sizeof(path[1]), "/release-%d", d);
        prefixes[0] = path[0];
        prefixes[1] = path[1];
        st = graceful_restart(st, prefixes, 2, &renewed);
        idx = pp_store_location_register(st, path[1], 10000);
        assert_true(idx >= 0);
        assert_string_equal(pp_store_location(st, idx)->path, path[1]);
        idx = pp_store_location_register(st, "/always", 10000);
        assert_true(deploy_request(st, idx, d % 2) != 0);
    }
    assert_true(renewed >= 2);
    assert_true(atomic_load(&st->c.locations_reclaimed) >=
                (uint64_t)(2 * PP_MAX_LOCATIONS - 4));
    /* "/always" kept its row and its count through every renewal */
    assert_int_equal(
        atomic_load(
            &pp_store_location(st, pp_store_location_register(st, "/always", 1))
                 ->requests),
        3 * PP_MAX_LOCATIONS);
    pp_store_destroy(st);
}

/* Kept traces of a prefix no longer configured keep their stacks but no
 * row: a new prefix that takes the row must not inherit them. */
static void test_traces_of_a_reclaimed_row_lose_their_location(void **state)
{
    static const char *const now_prefixes[] = {"/new"};
    pp_store_t *st = make_store(), *fresh = make_store();
    static pp_record_t rec;
    uint32_t i;
    int loc, found = 0;
    (void)state;

    loc = pp_store_location_register(st, "/old", 10000);
    assert_true(deploy_request(st, loc, 7) != 0);
    assert_int_equal(pp_store_renew(fresh, st, now_prefixes, 1), 1);
    for (i = 0; i < pp_store_all_traces(fresh); i++) {
        if (pp_store_read_trace(fresh, i, &rec)) {
            found++;
            assert_int_equal(rec.req.location, -1);
        }
    }
    assert_int_equal(found, 1);
    assert_int_equal(trace_names_deploy(fresh, 7), 1);
    assert_int_equal(pp_store_location_register(fresh, "/new", 10000), 0);
    pp_store_destroy(st);
    pp_store_destroy(fresh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deploys_of_new_code_never_fill_the_frame_table),
        cmocka_unit_test(test_no_renewal_while_there_is_room),
        cmocka_unit_test(test_rows_of_prefixes_gone_are_reclaimed),
        cmocka_unit_test(test_traces_of_a_reclaimed_row_lose_their_location),
    };

    return cmocka_run_group_tests_name("pp_store renewal", tests, NULL, NULL);
}
