/* test_profile.c: the resolved profile (pp_profile.c) on its own, built by
 * hand with no store: stacks as frames the profile owns, the call tree
 * merged per function, hot functions (self and total, recursion counted
 * once), the depth bounds of a stack's walk, and what a tree does with a
 * stack the snapshot does not hold.
 */
#include "unit.h"

#include "pp_profile.h"

/* A stack of `depth` frames (root first) as its own chain of nodes;
 * `count` samples of it, 10 ms each, half on CPU. */
static uint32_t add_stack(pp_profile_t *p, const uint32_t *frames,
                          uint32_t depth, uint64_t count)
{
    return unit_add_stack(p, frames, depth, count, count * 10000, count * 5000);
}

typedef struct fix {
    pp_profile_t p;
    uint32_t main_, handler10, handler11, db;
} fix_t;

/* main -> handler:10 -> db  x3
 * main -> handler:11        x2  (the same function on another line)
 * main -> db                x1 */
static int setup(void **state)
{
    fix_t *f = calloc(1, sizeof(*f));

    if (!f) {
        return -1;
    }
    pp_profile_init(&f->p);
    f->main_ = pp_profile_new_frame(&f->p, "main", "/srv/app/app.py", 1);
    f->handler10 =
        pp_profile_new_frame(&f->p, "handler", "/srv/app/app.py", 10);
    f->handler11 =
        pp_profile_new_frame(&f->p, "handler", "/srv/app/app.py", 11);
    f->db = pp_profile_new_frame(&f->p, "query", "/usr/lib/db.py", 5);
    {
        uint32_t a[] = {f->main_, f->handler10, f->db};
        uint32_t b[] = {f->main_, f->handler11};
        uint32_t c[] = {f->main_, f->db};
        add_stack(&f->p, b, 2, 2);
        add_stack(&f->p, c, 2, 1);
        add_stack(&f->p, a, 3, 3);
    }
    pp_profile_sort(&f->p);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fix_t *f = *state;

    pp_profile_free(&f->p);
    free(f);
    return 0;
}

static const pp_tnode_t *child_named(const pp_tree_t *t, uint32_t parent,
                                     const char *name)
{
    uint32_t c = parent ? t->v[parent - 1].first_child : t->roots;

    for (; c; c = t->v[c - 1].next_sibling) {
        if (strcmp(pp_tree_frame(t, t->v[c - 1].frame)->function, name) == 0) {
            return &t->v[c - 1];
        }
    }
    return NULL;
}

static void test_profile_owns_its_frames_and_stacks(void **state)
{
    fix_t *f = *state;
    uint32_t out[8], d;
    const pp_pframe_t *fr;

    assert_int_equal(f->p.n, 3);
    assert_int_equal(f->p.samples, 6);
    assert_int_equal(f->p.weight_us, 60000);
    assert_int_equal(f->p.cpu_us, 30000);
    /* sorted: the commonest stack first, frames root first */
    assert_int_equal(f->p.v[0].count, 3);
    d = pp_profile_stack_frames(&f->p, 0, out, 8);
    assert_int_equal(d, 3);
    assert_int_equal(out[0], f->main_);
    assert_int_equal(out[1], f->handler10);
    assert_int_equal(out[2], f->db);
    /* a smaller cap keeps the root-most frames */
    assert_int_equal(pp_profile_stack_frames(&f->p, 0, out, 2), 2);
    assert_int_equal(out[0], f->main_);
    assert_int_equal(out[1], f->handler10);
    fr = pp_profile_pframe(&f->p, f->db);
    assert_string_equal(fr->function, "query");
    assert_string_equal(fr->file, "/usr/lib/db.py");
    assert_int_equal(fr->line, 5);
    /* the same function on two lines: one identity */
    assert_true(pp_profile_pframe(&f->p, f->handler10)->fid ==
                pp_profile_pframe(&f->p, f->handler11)->fid);
    assert_true(pp_profile_pframe(&f->p, f->handler10)->fid != fr->fid);
    /* ids that do not resolve read as unknown */
    assert_string_equal(pp_profile_pframe(&f->p, 0)->function, "[unknown]");
    assert_string_equal(pp_profile_pframe(&f->p, 99)->function, "[unknown]");
    assert_int_equal(pp_profile_stack_frames(&f->p, 7, out, 8), 0);
}

static void test_tree_merges_per_function(void **state)
{
    fix_t *f = *state;
    pp_tree_t t;
    const pp_tnode_t *m, *h, *hq, *mq;

    assert_int_equal(pp_tree_build(&t, &f->p), 0);
    /* main; handler (both lines); query under handler; query under main */
    assert_int_equal(t.n, 4);
    assert_int_equal(t.total, 6);
    assert_int_equal(t.left_out, 0);
    assert_false(t.truncated);
    assert_int_equal(t.max_depth, 3);
    m = child_named(&t, 0, "main");
    assert_non_null(m);
    assert_int_equal(m->count, 6);
    assert_int_equal(m->self, 0);
    assert_int_equal(m->weight_us, 60000);
    assert_int_equal(m->cpu_us, 30000);
    assert_null(m->next_sibling ? &t.v[m->next_sibling - 1] : NULL);
    h = child_named(&t, t.roots, "handler");
    assert_non_null(h);
    assert_int_equal(h->count, 5);
    assert_int_equal(h->self, 2);
    assert_int_equal(h->self_weight_us, 20000);
    assert_int_equal(h->depth, 1);
    /* the line most samples were on */
    assert_int_equal(pp_tree_frame(&t, h->frame)->line, 10);
    /* children biggest first: handler (5) before query (1) */
    assert_true(&t.v[t.v[t.roots - 1].first_child - 1] == h);
    hq = child_named(&t, (uint32_t)(h - t.v) + 1, "query");
    assert_non_null(hq);
    assert_int_equal(hq->count, 3);
    assert_int_equal(hq->self, 3);
    assert_int_equal(hq->depth, 2);
    mq = child_named(&t, t.roots, "query");
    assert_non_null(mq);
    assert_int_equal(mq->count, 1);
    assert_int_equal(mq->self, 1);
    /* flame graph offsets: siblings side by side under their parent */
    assert_int_equal(h->x, 0);
    assert_int_equal(mq->x, 5);
    pp_tree_free(&t);
}

static void test_hot_functions_self_and_total(void **state)
{
    fix_t *f = *state;
    pp_tree_t t;
    pp_hot_t *hot;
    size_t n;

    assert_int_equal(pp_tree_build(&t, &f->p), 0);
    hot = pp_hot_functions(&t, &n);
    assert_non_null(hot);
    assert_int_equal(n, 3);
    /* by self, biggest first: query 4, handler 2, main 0 */
    assert_string_equal(pp_tree_frame(&t, hot[0].frame)->function, "query");
    assert_int_equal(hot[0].self, 4);
    assert_int_equal(hot[0].total, 4);
    assert_int_equal(hot[0].self_weight_us, 40000);
    assert_int_equal(hot[0].self_cpu_us, 20000);
    assert_string_equal(pp_tree_frame(&t, hot[1].frame)->function, "handler");
    assert_int_equal(hot[1].self, 2);
    assert_int_equal(hot[1].total, 5);
    assert_int_equal(hot[1].total_weight_us, 50000);
    /* its one tree node's line: where most samples were (10, not 11) */
    assert_int_equal(pp_tree_frame(&t, hot[1].frame)->line, 10);
    assert_string_equal(pp_tree_frame(&t, hot[2].frame)->function, "main");
    assert_int_equal(hot[2].self, 0);
    assert_int_equal(hot[2].total, 6);
    free(hot);
    pp_tree_free(&t);
}

static void test_hot_functions_count_recursion_once(void **state)
{
    pp_profile_t p;
    pp_tree_t t;
    pp_hot_t *hot;
    size_t n, i;
    uint32_t a, b, m;

    (void)state;
    pp_profile_init(&p);
    m = pp_profile_new_frame(&p, "m", "r.py", 9);
    a = pp_profile_new_frame(&p, "a", "r.py", 1);
    b = pp_profile_new_frame(&p, "b", "r.py", 5);
    {
        uint32_t s1[] = {m, a, b, a, b}; /* a and b twice on the stack */
        uint32_t s2[] = {m, b};
        add_stack(&p, s1, 5, 3);
        add_stack(&p, s2, 2, 2);
    }
    pp_profile_sort(&p);
    assert_int_equal(pp_tree_build(&t, &p), 0);
    assert_int_equal(t.n, 6);
    hot = pp_hot_functions(&t, &n);
    assert_int_equal(n, 3);
    for (i = 0; i < n; i++) {
        const char *fn = pp_tree_frame(&t, hot[i].frame)->function;
        if (strcmp(fn, "b") == 0) {
            assert_int_equal(hot[i].self, 5);
            assert_int_equal(hot[i].total, 5); /* once per sample */
        }
        else if (strcmp(fn, "a") == 0) {
            assert_int_equal(hot[i].self, 0);
            assert_int_equal(hot[i].total, 3);
        }
        else {
            assert_string_equal(fn, "m");
            assert_int_equal(hot[i].total, 5);
        }
    }
    free(hot);
    pp_tree_free(&t);
    pp_profile_free(&p);
}

static void test_stack_walks_are_depth_bounded(void **state)
{
    enum { DEEP = PP_DEPTH_LIMIT + 40 };
    static uint32_t frames[DEEP], out[DEEP];
    pp_profile_t p;
    pp_tree_t t;
    uint32_t d, leaf_frame;

    (void)state;
    pp_profile_init(&p);
    for (d = 0; d < DEEP; d++) {
        char fn[32];
        snprintf(fn, sizeof(fn), "f%u", d);
        frames[d] = pp_profile_new_frame(&p, fn, "deep.py", d + 1);
        assert_true(frames[d] != 0);
    }
    leaf_frame = frames[DEEP - 1];
    add_stack(&p, frames, DEEP, 7);
    /* the walk stops at PP_DEPTH_LIMIT + 2 frames, the leaf-most ones */
    d = pp_profile_stack_frames(&p, 0, out, DEEP);
    assert_int_equal(d, PP_DEPTH_LIMIT + 2);
    assert_int_equal(out[d - 1], leaf_frame);
    assert_int_equal(out[0], frames[DEEP - (PP_DEPTH_LIMIT + 2)]);
    /* and so does the tree's: as deep as the bound, every sample in */
    assert_int_equal(pp_tree_build(&t, &p), 0);
    assert_int_equal(t.max_depth, PP_DEPTH_LIMIT + 2);
    assert_int_equal(t.n, PP_DEPTH_LIMIT + 2);
    assert_int_equal(t.total, 7);
    assert_int_equal(t.walked, PP_DEPTH_LIMIT + 2);
    pp_tree_free(&t);
    pp_profile_free(&p);
}

static void test_tree_counts_unresolved_stacks_as_left_out(void **state)
{
    fix_t *f = *state;
    pp_tree_t t;

    /* a stack keyed by a node the snapshot never copied */
    assert_int_equal(pp_profile_add(&f->p, 4000, 9, 90000, 0), 0);
    pp_profile_sort(&f->p);
    assert_int_equal(f->p.v[0].count, 9);
    assert_int_equal(f->p.v[0].leaf, 0);
    assert_int_equal(pp_tree_build(&t, &f->p), 0);
    assert_true(t.truncated);
    assert_int_equal(t.left_out, 9);
    assert_int_equal(t.stacks_left_out, 1);
    assert_int_equal(t.total, 6);
    assert_int_equal(t.total + t.left_out, f->p.samples);
    pp_tree_free(&t);
}

static void test_subtract_keeps_what_is_left_resolved(void **state)
{
    fix_t *f = *state;
    uint32_t out[4];

    /* take the commonest stack away: what is left keeps its frames */
    pp_profile_subtract(&f->p, f->p.v[0].node, 3, 30000, 15000);
    pp_profile_sort(&f->p);
    assert_int_equal(f->p.n, 2);
    assert_int_equal(f->p.samples, 3);
    assert_int_equal(f->p.v[0].count, 2);
    assert_int_equal(pp_profile_stack_frames(&f->p, 0, out, 4), 2);
    assert_int_equal(out[0], f->main_);
    assert_int_equal(out[1], f->handler11);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_profile_owns_its_frames_and_stacks,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_tree_merges_per_function, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hot_functions_self_and_total,
                                        setup, teardown),
        cmocka_unit_test(test_hot_functions_count_recursion_once),
        cmocka_unit_test(test_stack_walks_are_depth_bounded),
        cmocka_unit_test_setup_teardown(
            test_tree_counts_unresolved_stacks_as_left_out, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_subtract_keeps_what_is_left_resolved, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
