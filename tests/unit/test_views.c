/* test_views.c: the HTML views (pp_views.c) as pure functions of a
 * resolved profile built by hand, no store: the flame graph, the call
 * tree, the hot-functions table and the differential table, written into a
 * memory sink; hostile names come out escaped, and the structure (rows,
 * rectangles, shares) is what the samples say.
 */
#include "unit.h"

#include "pp_profile.h"
#include "pp_views.h"

#define HOSTILE "<script>alert(\"x\")</script>&'"
#define HOSTILE_ESC \
    "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"

static unit_buf_t buf;
static pp_sink_t out;

/* count samples of 10 ms */
static uint32_t add_stack(pp_profile_t *p, const uint32_t *frames,
                          uint32_t depth, uint64_t count, uint64_t cpu_us)
{
    return unit_add_stack(p, frames, depth, count, count * 10000, cpu_us);
}

typedef struct fix {
    pp_profile_t p;
    pp_tree_t t;
} fix_t;

/* main -> HOSTILE (in a&b.py) x3, main -> query x1; all under the app root
 * but query, which is a library's */
static int setup(void **state)
{
    fix_t *f = calloc(1, sizeof(*f));
    uint32_t m, h, q;

    if (!f) {
        return -1;
    }
    pp_profile_init(&f->p);
    m = pp_profile_new_frame(&f->p, "main", "/srv/app/app.py", 1);
    h = pp_profile_new_frame(&f->p, HOSTILE, "/srv/app/a&b.py", 7);
    q = pp_profile_new_frame(&f->p, "query",
                             "/usr/lib/python3/dist-packages/db.py", 5);
    {
        uint32_t a[] = {m, h};
        uint32_t b[] = {m, q};
        add_stack(&f->p, a, 2, 3, 30000);
        add_stack(&f->p, b, 2, 1, 0);
    }
    pp_profile_sort(&f->p);
    if (pp_tree_build(&f->t, &f->p) != 0) {
        return -1;
    }
    memset(&buf, 0, sizeof(buf));
    out = unit_sink(&buf);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fix_t *f = *state;

    pp_tree_free(&f->t);
    pp_profile_free(&f->p);
    free(f);
    unit_buf_free(&buf);
    return 0;
}

static void assert_escaped(const char *h)
{
    assert_null(strstr(h, "<script>alert"));
    assert_null(strstr(h, "a&b.py"));
    assert_non_null(strstr(h, HOSTILE_ESC));
    assert_true(unit_utf8_valid(h, strlen(h)));
}

static void test_flamegraph_draws_every_node_escaped(void **state)
{
    fix_t *f = *state;
    const char *h;

    pp_view_flamegraph(&out, &f->t, "/srv/app");
    h = unit_buf_str(&buf);
    assert_escaped(h);
    /* one rectangle per tree node: main, the hostile one, query */
    assert_int_equal(unit_count(h, "<g class=f "), 3);
    assert_int_equal(unit_count(h, "<rect "), 3);
    /* main spans it all; its children side by side, biggest first */
    assert_non_null(strstr(h, "<g class=f data-x=\"0.000\" data-w=\"1200.000\" "
                              "data-d=0 data-n=\"main\">"));
    assert_non_null(strstr(h, "data-x=\"0.000\" data-w=\"900.000\" data-d=1"));
    assert_non_null(strstr(h, "data-x=\"900.000\" data-w=\"300.000\" "
                              "data-d=1 data-n=\"query\""));
    /* the title: the whole name, the file relative to the app root */
    assert_non_null(strstr(h, "<title>" HOSTILE_ESC " (a&amp;b.py:7) "
                              "\xe2\x80\x94 3 samples, 75.0%, 30.0 ms"
                              "</title>"));
    assert_non_null(strstr(h, "<title>main (app.py:1) \xe2\x80\x94 4 samples, "
                              "100.0%, 40.0 ms</title>"));
    /* two rows of 18 px and the border */
    assert_non_null(strstr(h, "height=38 viewBox=\"0 0 1200 38\""));
    /* the script, once, after the drawing */
    assert_int_equal(unit_count(h, "<script>"), 1);
    assert_non_null(strstr(h, "</svg></div><script>"));
}

static void test_tree_view_nests_the_calls(void **state)
{
    fix_t *f = *state;
    const char *h;

    pp_view_tree(&out, &f->t, "/srv/app");
    h = unit_buf_str(&buf);
    assert_escaped(h);
    /* main opens (it has children and 100%), its two leaves inside */
    assert_int_equal(unit_count(h, "<details open><summary>"), 1);
    assert_int_equal(unit_count(h, "<div class=leaf>"), 2);
    assert_int_equal(unit_count(h, "</details>"), 1);
    assert_non_null(strstr(h, "<span class=pct>100.0%</span>"));
    assert_non_null(strstr(h, "<span class=pct>75.0%</span>"));
    assert_non_null(strstr(h, "<span class=pct>25.0%</span>"));
    assert_non_null(strstr(h, "<span class=fn title=\"" HOSTILE_ESC "\">"));
    /* the hostile one: 3 samples, all of them on CPU */
    assert_non_null(strstr(h, "3 samples, 30.0 ms"));
    assert_true(strstr(h, "75.0%") < strstr(h, "25.0%")); /* biggest first */
}

static void test_hot_table_has_one_row_per_function(void **state)
{
    fix_t *f = *state;
    const char *h, *hot, *q;

    pp_view_hot(&out, &f->t, 1, "/srv/app");
    h = unit_buf_str(&buf);
    assert_escaped(h);
    assert_int_equal(unit_count(h, "<tr><td class=fn"), 3);
    /* by self: the hostile one (75%), query (25%), main (0%, 100% total) */
    hot = strstr(h, "<tr><td class=fn title=\"" HOSTILE_ESC "\">");
    q = strstr(h, "<tr><td class=fn title=\"query\">");
    assert_non_null(hot);
    assert_non_null(q);
    assert_true(hot < q);
    assert_true(q < strstr(h, "<tr><td class=fn title=\"main\">"));
    assert_non_null(strstr(hot, "</span>75.0%</td><td class=num>75.0%</td>"
                                "<td class=num>30.0 ms</td><td class=num>"
                                "30.0 ms</td><td class=num>100%</td>"));
    assert_non_null(strstr(q, "</span>25.0%</td><td class=num>25.0%</td>"
                              "<td class=num>10.0 ms</td><td class=num>"
                              "10.0 ms</td><td class=num>0%</td>"));
    assert_non_null(strstr(h, "</span>0.0%</td><td class=num>100.0%</td>"));
    /* a library's file is cut to its package path */
    assert_non_null(strstr(h, ">db.py:5</td>"));
}

static void test_diff_table_from_two_hand_made_sides(void **state)
{
    pp_profile_t slow, rest;
    pp_tree_t ts, tr;
    const char *h;
    uint32_t m, db, cpu, s_only;

    (void)state;
    memset(&buf, 0, sizeof(buf));
    out = unit_sink(&buf);
    pp_profile_init(&slow);
    pp_profile_init(&rest);
    /* slow: main -> db x3, main -> cpu x1; rest: main -> db x1,
     * main -> cpu x2, main -> HOSTILE x1 (only in the rest) */
    m = pp_profile_new_frame(&slow, "main", "app.py", 1);
    db = pp_profile_new_frame(&slow, "db", "app.py", 2);
    cpu = pp_profile_new_frame(&slow, "cpu", "app.py", 3);
    {
        uint32_t a[] = {m, db}, b[] = {m, cpu};
        add_stack(&slow, a, 2, 3, 0);
        add_stack(&slow, b, 2, 1, 10000);
    }
    /* the rest's own frame ids, in another order: matched by name */
    s_only = pp_profile_new_frame(&rest, HOSTILE, "app.py", 4);
    cpu = pp_profile_new_frame(&rest, "cpu", "app.py", 3);
    db = pp_profile_new_frame(&rest, "db", "app.py", 2);
    m = pp_profile_new_frame(&rest, "main", "app.py", 1);
    {
        uint32_t a[] = {m, db}, b[] = {m, cpu}, c[] = {m, s_only};
        add_stack(&rest, a, 2, 1, 0);
        add_stack(&rest, b, 2, 2, 20000);
        add_stack(&rest, c, 2, 1, 0);
    }
    pp_profile_sort(&slow);
    pp_profile_sort(&rest);
    assert_int_equal(pp_tree_build(&ts, &slow), 0);
    assert_int_equal(pp_tree_build(&tr, &rest), 0);
    pp_view_diff(&out, &ts, &tr, "");
    h = unit_buf_str(&buf);
    assert_null(strstr(h, "<script>alert"));
    assert_non_null(strstr(h, "4 samples from the slowest requests"));
    assert_non_null(strstr(h, "against 4 from the rest"));
    /* db grows 25% -> 75%, cpu shrinks 50% -> 25%, the rest-only one
     * shrinks to 0; main (100% both sides) is counted, not shown */
    assert_non_null(strstr(h, "<tr><td class=fn>db</td><td class=loc>app.py"
                              "</td><td class=num>75.0%</td><td class=num>"
                              "25.0%</td><td class=\"num up\">+50.0</td>"));
    assert_non_null(strstr(h, "<tr><td class=fn>cpu</td><td class=loc>app.py"
                              "</td><td class=num>25.0%</td><td class=num>"
                              "50.0%</td><td class=\"num down\">-25.0</td>"));
    assert_non_null(strstr(h, "<tr><td class=fn>" HOSTILE_ESC "</td><td "
                              "class=loc>app.py</td><td class=num>0.0%</td>"
                              "<td class=num>25.0%</td><td class=\"num "
                              "down\">-25.0</td>"));
    assert_int_equal(unit_count(h, "<tr><td class=fn>"), 3);
    assert_non_null(strstr(h, "&hellip; 1 function with smaller changes"));
    /* growing first, shrinking last */
    assert_true(strstr(h, "num up") < strstr(h, "num down"));
    pp_tree_free(&ts);
    pp_tree_free(&tr);
    pp_profile_free(&slow);
    pp_profile_free(&rest);
    unit_buf_free(&buf);
}

static void test_views_of_an_empty_tree(void **state)
{
    pp_profile_t p;
    pp_tree_t t;

    (void)state;
    memset(&buf, 0, sizeof(buf));
    out = unit_sink(&buf);
    pp_profile_init(&p);
    assert_int_equal(pp_tree_build(&t, &p), 0);
    pp_view_flamegraph(&out, &t, "");
    assert_string_equal(unit_buf_str(&buf), "");
    pp_view_hot(&out, &t, 1, "");
    assert_string_equal(unit_buf_str(&buf), "<p class=empty>No samples.</p>");
    pp_tree_free(&t);
    pp_profile_free(&p);
    unit_buf_free(&buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_flamegraph_draws_every_node_escaped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tree_view_nests_the_calls, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hot_table_has_one_row_per_function,
                                        setup, teardown),
        cmocka_unit_test(test_diff_table_from_two_hand_made_sides),
        cmocka_unit_test(test_views_of_an_empty_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
