/* test_render.c: pages and formats of /server-profile (pp_render.c).
 *
 * The escapers get hostile strings (markup, quotes, control characters,
 * every kind of invalid UTF-8); the renderers get a store whose request
 * and frame names are hostile, and their JSON is parsed strictly by the
 * system Python.
 */
#include "unit.h"

#include <ctype.h>
#include <time.h>

#include "pp_overview.h"
#include "pp_profile.h"
#include "pp_render.h"
#include "pp_store.h"
#include "pp_store_testing.h"
#include "pp_hash.h"
#include "pp_views.h"

#define FFFD "\xef\xbf\xbd"
#define START_US 1700000000123000LL /* 2023-11-14T22:13:20.123Z */

static unit_buf_t buf;
static pp_sink_t out;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The handler's turns: read the store once, then render into `out`. */
static void overview_json(const pp_store_t *st, const pp_render_opts_t *opt)
{
    pp_overview_t ov;
    assert_int_equal(pp_overview_load(&ov, st, opt, PP_OV_JSON), 0);
    pp_render_overview_json(&out, &ov, opt);
    pp_overview_free(&ov);
}

static void overview_html(const pp_store_t *st, const pp_render_opts_t *opt)
{
    pp_overview_t ov;
    assert_int_equal(pp_overview_load(&ov, st, opt, PP_OV_HTML), 0);
    pp_render_overview_html(&out, &ov, opt);
    pp_overview_free(&ov);
}

static void request_json(const pp_store_t *st, const pp_record_t *rec,
                         int inflight, const pp_render_opts_t *opt)
{
    pp_request_view_t v;
    pp_request_load(&v, st, rec, inflight);
    pp_render_request_json(&out, &v, opt);
    pp_request_free(&v);
}

static void request_folded(const pp_store_t *st, const pp_record_t *rec)
{
    pp_request_view_t v;
    pp_request_load(&v, st, rec, 0);
    pp_render_request_folded(&out, &v);
    pp_request_free(&v);
}

static void request_html(const pp_store_t *st, const pp_record_t *rec,
                         int inflight, const pp_render_opts_t *opt)
{
    pp_request_page_t pg;
    pp_request_page_load(&pg, st, rec, inflight);
    pp_render_request_html(&out, &pg, opt);
    pp_request_page_free(&pg);
}

static void location_html(const pp_store_t *st, int row,
                          const pp_render_opts_t *opt)
{
    pp_location_page_t pg;
    assert_int_equal(pp_location_page_load(&pg, st, row, opt), 0);
    pp_render_location_html(&out, &pg, opt);
    pp_location_page_free(&pg);
}

/* What pp_render_location_folded wrote; 0 when memory ran out, as the
 * handler writes nothing then. */
static size_t location_folded(const pp_store_t *st, int row)
{
    pp_profile_t p;
    size_t n = 0;

    pp_profile_init(&p);
    if (pp_render_location_profile(&p, st, row, 0, 0, PP_SIDE_ALL) == 0) {
        n = pp_render_location_folded(&out, &p);
    }
    pp_profile_free(&p);
    return n;
}

static void location_json(const pp_store_t *st, int row, const pp_profile_t *p,
                          const pp_render_opts_t *opt)
{
    pp_ov_location_t l;
    assert_int_equal(pp_location_load(&l, st, row), 0);
    pp_render_location_json(&out, &l, p, opt);
}

static const char *html_of(const char *s, size_t n)
{
    unit_buf_reset(&buf);
    pp_put_html(&out, s, n);
    return unit_buf_str(&buf);
}

static const char *json_of(const char *s, size_t n)
{
    unit_buf_reset(&buf);
    pp_put_json_str(&out, s, n);
    return unit_buf_str(&buf);
}

static const char *folded_of(const char *s, size_t n)
{
    unit_buf_reset(&buf);
    pp_put_folded(&out, s, n);
    return unit_buf_str(&buf);
}

static int buf_setup(void **state)
{
    (void)state;
    memset(&buf, 0, sizeof(buf));
    out = unit_sink(&buf);
    return 0;
}

static int buf_teardown(void **state)
{
    (void)state;
    unit_buf_free(&buf);
    return 0;
}

/* Invalid UTF-8 inputs, each between "a" and "b". */
static const struct {
    const char *what, *bytes;
} bad_utf8[] = {
    {"byte 0xff", "\xff"},
    {"byte 0xfe", "\xfe"},
    {"lone continuation", "\x80"},
    {"truncated 2-byte", "\xc3"},
    {"truncated 3-byte", "\xe2\x82"},
    {"truncated 4-byte", "\xf0\x9f\x98"},
    {"overlong NUL", "\xc0\x80"},
    {"overlong '/'", "\xc1\xaf"},
    {"overlong 3-byte", "\xe0\x80\x80"},
    {"overlong 4-byte", "\xf0\x80\x80\x80"},
    {"surrogate D800", "\xed\xa0\x80"},
    {"surrogate DFFF", "\xed\xbf\xbf"},
    {"above U+10FFFF", "\xf4\x90\x80\x80"},
    {"5-byte form", "\xf8\x88\x80\x80\x80"},
};

/* ---- HTML ---- */

static void test_html_escapes_markup_characters(void **state)
{
    const char *in = "<script>alert(\"x\")&'";
    (void)state;
    assert_string_equal(html_of(in, strlen(in)),
                        "&lt;script&gt;alert(&quot;x&quot;)&amp;&#39;");
}

static void test_html_keeps_valid_utf8(void **state)
{
    const char *in = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf";
    (void)state;
    assert_string_equal(html_of(in, strlen(in)), in);
}

static void test_html_replaces_invalid_utf8(void **state)
{
    size_t i;
    char in[32];
    (void)state;

    assert_string_equal(html_of("a\xff"
                                "b",
                                3),
                        "a" FFFD "b");
    for (i = 0; i < sizeof(bad_utf8) / sizeof(bad_utf8[0]); i++) {
        const char *o;
        size_t n = (size_t)snprintf(in, sizeof(in), "a%sb", bad_utf8[i].bytes);
        o = html_of(in, n);
        if (!unit_utf8_valid(o, strlen(o)) || o[0] != 'a' ||
            o[strlen(o) - 1] != 'b' || !strstr(o, FFFD) ||
            strstr(o, bad_utf8[i].bytes)) {
            fail_msg("HTML of %s came out wrong", bad_utf8[i].what);
        }
    }
}

static void test_html_replaces_control_characters(void **state)
{
    (void)state;
    assert_string_equal(html_of("a\x01"
                                "b\x00"
                                "c\x1b"
                                "d",
                                7),
                        "a" FFFD "b" FFFD "c" FFFD "d");
    assert_string_equal(html_of("a\tb\nc", 5), "a\tb\nc");
}

static void test_html_replaces_del_and_c1_controls(void **state)
{
    (void)state;
    /* DEL, U+0080, U+009F are parse errors in HTML; U+00A0 is not */
    assert_string_equal(html_of("a\x7f"
                                "b\xc2\x80"
                                "c\xc2\x9f"
                                "d\xc2\xa0",
                                11),
                        "a" FFFD "b" FFFD "c" FFFD "d\xc2\xa0");
}

static void test_html_writes_exactly_n_bytes_of_input(void **state)
{
    (void)state;
    assert_string_equal(html_of("ab<cd", 3), "ab&lt;");
    assert_string_equal(html_of("", 0), "");
}

/* ---- JSON ---- */

static void test_json_escapes_quote_backslash_and_controls(void **state)
{
    const char in[] = "q\"b\\n\nt\tc\x01"
                      "d\x1f"
                      "e\x7f";
    (void)state;
    assert_string_equal(json_of(in, sizeof(in) - 1),
                        "\"q\\\"b\\\\n\\u000at\\u0009c\\u0001d\\u001fe"
                        "\\u007f\"");
}

static void test_json_escapes_nul(void **state)
{
    (void)state;
    assert_string_equal(json_of("a\0b", 3), "\"a\\u0000b\"");
}

static void test_json_escapes_markup_characters(void **state)
{
    const char *in = "</script><!--&";
    (void)state;
    assert_string_equal(json_of(in, strlen(in)),
                        "\"\\u003c/script\\u003e\\u003c!--\\u0026\"");
}

static void test_json_keeps_valid_utf8(void **state)
{
    const char *in = "caf\xc3\xa9 \xf0\x9f\x98\x80";
    (void)state;
    assert_string_equal(json_of(in, strlen(in)),
                        "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"");
}

static void test_json_replaces_invalid_utf8(void **state)
{
    size_t i;
    char in[32];
    (void)state;

    assert_string_equal(json_of("a\xff"
                                "b",
                                3),
                        "\"a\\ufffdb\"");
    for (i = 0; i < sizeof(bad_utf8) / sizeof(bad_utf8[0]); i++) {
        const char *o;
        size_t n = (size_t)snprintf(in, sizeof(in), "a%sb", bad_utf8[i].bytes);
        o = json_of(in, n);
        if (!unit_utf8_valid(o, strlen(o)) || strncmp(o, "\"a", 2) != 0 ||
            strcmp(o + strlen(o) - 2, "b\"") != 0 || !strstr(o, "\\ufffd") ||
            strstr(o, bad_utf8[i].bytes)) {
            fail_msg("JSON of %s came out wrong: %s", bad_utf8[i].what, o);
        }
    }
}

static void test_json_of_every_byte_parses(void **state)
{
    char in[256 * 2], doc[4096];
    size_t n = 0;
    int c;
    (void)state;

    for (c = 1; c < 256; c++) {
        in[n++] = (char)c;
    }
    for (c = 0; c < 40; c++) {
        in[n++] = (char)(0x80 + c * 3);
    }
    json_of(in, n);
    assert_true(unit_utf8_valid(buf.p, buf.n));
    snprintf(doc, sizeof(doc), "{\"s\":%s}", buf.p);
    unit_assert_json(
        doc, "d['s'][:3] == '\\x01\\x02\\x03'",
        "d['s'][0x21:0x7f-1] == ''.join(map(chr, range(0x22, 0x7f)))",
        "'\\ufffd' in d['s']");
}

/* ---- folded ---- */

static void test_folded_neutralises_separators(void **state)
{
    (void)state;
    assert_string_equal(folded_of("a;b\nc\r\td", 8), "a:b c  d");
    assert_string_equal(folded_of("x\x01y\x7fz", 5), "x y z");
}

static void test_folded_replaces_invalid_utf8(void **state)
{
    const char *o;
    (void)state;
    assert_string_equal(folded_of("a\xff"
                                  "b",
                                  3),
                        "a" FFFD "b");
    o = folded_of("a\xed\xa0\x80"
                  "b",
                  5);
    assert_true(unit_utf8_valid(o, strlen(o)));
    assert_non_null(strstr(o, FFFD));
}

/* ---- URL segments ---- */

static void test_url_segment_percent_encodes(void **state)
{
    const char *in = "a b/\xc3\xa9?#%&\"<";
    (void)state;
    unit_buf_reset(&buf);
    pp_put_url_segment(&out, in, strlen(in));
    assert_string_equal(unit_buf_str(&buf), "a%20b%2F%C3%A9%3F%23%25%26%22%3C");
    unit_buf_reset(&buf);
    pp_put_url_segment(&out, "AZaz09-_.~", 10);
    assert_string_equal(unit_buf_str(&buf), "AZaz09-_.~");
}

/* ---- pages from a store ---- */

/* Hostile names, as Python code objects can carry them. */
#define F_SCRIPT "<script>evil()</script>"
#define F_SCRIPT_FILE "a;b\nc.py"
#define F_QUOTE "q\"uote"
#define F_QUOTE_FILE "/srv/x's.py"
#define URI_IMG "/app/slow?q=<img src=x onerror=alert(1)>"
#define ODD_ID "x y/\"<z>&"
#define ODD_ID_URL "x%20y%2F%22%3Cz%3E%26"

typedef struct fix {
    pp_store_t *st;
    int loc;
    uint32_t stack_a; /* main -> <script> -> q"uote */
    uint32_t stack_b; /* main -> handler -> bad UTF-8 */
    uint32_t stack_s; /* main -> <script> */
    pp_record_t *rec;
    pp_render_opts_t opt;
} fix_t;

static void default_opts(pp_render_opts_t *opt)
{
    unit_default_opts(opt, now_us());
}

static uint32_t frame(pp_store_t *st, const char *func, const char *file,
                      uint32_t line)
{
    return pp_store_intern_frame(st, func, strlen(func), file, strlen(file),
                                 line);
}

static int claim(pp_store_t *st, int loc, const char *id, const char *uri)
{
    return unit_claim(st, loc, id, uri, 4321, 8765, START_US, 0);
}

static void sample(fix_t *f, int idx, uint32_t node, uint64_t weight_us)
{
    pp_store_add_sample(f->st, pp_store_slot(f->st, idx), node, START_US,
                        weight_us, weight_us / 2);
}

static int store_setup(void **state)
{
    fix_t *f = calloc(1, sizeof(*f));
    uint32_t fmain, fscript, fquote, fhandler, fbad, n_main, n_script;
    static const int64_t fast_us[] = {999, 2000, 3000, 50000, 61000000};
    size_t k;
    int idx;

    buf_setup(state);
    if (!f) {
        return -1;
    }
    f->st = unit_make_store(4ULL << 20, 4, 8);
    f->rec = calloc(1, sizeof(*f->rec));
    if (!f->st || !f->rec) {
        return -1;
    }
    f->loc = pp_store_location_register(f->st, "/app", 10000);
    default_opts(&f->opt);
    f->opt.memory = 4ULL << 20;

    fmain = frame(f->st, "main", "app.py", 1);
    fscript = frame(f->st, F_SCRIPT, F_SCRIPT_FILE, 7);
    fquote = frame(f->st, F_QUOTE, F_QUOTE_FILE, 42);
    fhandler = frame(f->st, "handler", "app.py", 20);
    fbad = frame(f->st, "bad\xff\xc0\x80", "x\xed\xa0\x80.py", 5);
    n_main = pp_store_intern_node(f->st, 0, fmain);
    n_script = pp_store_intern_node(f->st, n_main, fscript);
    f->stack_a = pp_store_intern_node(f->st, n_script, fquote);
    f->stack_b = pp_store_intern_node(
        f->st, pp_store_intern_node(f->st, n_main, fhandler), fbad);
    f->stack_s = n_script;
    if (!f->stack_a || !f->stack_b || !fbad) {
        return -1;
    }

    /* req-1: kept, 3 samples on A and 1 on B */
    idx = claim(f->st, f->loc, "req-1", URI_IMG);
    sample(f, idx, f->stack_a, 10000);
    sample(f, idx, f->stack_b, 5000);
    sample(f, idx, f->stack_a, 10000);
    sample(f, idx, f->stack_a, 10000);
    pp_store_finish(f->st, idx, 200, 1234567, 1000, 1);

    /* fast ones, not kept; one past 60 s lands in the open bucket */
    for (k = 0; k < sizeof(fast_us) / sizeof(fast_us[0]); k++) {
        idx = claim(f->st, f->loc, "fast", "/app/fast");
        pp_store_finish(f->st, idx, 200, fast_us[k], 0, 0);
    }

    /* an id that needs percent-encoding, kept */
    idx = claim(f->st, f->loc, ODD_ID, "/app/odd");
    sample(f, idx, f->stack_b, 8000);
    pp_store_finish(f->st, idx, 500, 800000, 0, 1);

    /* in flight, now in <script> */
    idx = claim(f->st, f->loc, "live-1", "/app/live");
    sample(f, idx, f->stack_s, 10000);

    *state = f;
    return 0;
}

static int store_teardown(void **state)
{
    fix_t *f = *state;
    pp_store_destroy(f->st);
    free(f->rec);
    free(f);
    return buf_teardown(state);
}

static const pp_record_t *find(fix_t *f, const char *id, int want_inflight)
{
    int inflight = -1;
    if (!pp_store_find(f->st, id, f->rec, &inflight)) {
        fail_msg("request \"%s\" not in the store", id);
    }
    assert_int_equal(inflight, want_inflight);
    return f->rec;
}

static void test_overview_json_lists_the_request_exactly(void **state)
{
    fix_t *f = *state;
    const char *j;

    overview_json(f->st, &f->opt);
    j = unit_buf_str(&buf);
    unit_assert_json(
        j, "[r['id'] for r in d['requests']] == ['req-1', 'x y/\"<z>&']",
        "[r for r in d['requests'] if r['id'] == 'req-1'][0]['method'] == "
        "'GET'",
        "[r for r in d['requests'] if r['id'] == 'req-1'][0]['uri'] == "
        "'/app/slow?q=<img src=x onerror=alert(1)>'",
        "d['requests'][0]['status'] == 200",
        "d['requests'][0]['duration_ms'] == 1234.567",
        "d['requests'][0]['cpu_ms'] == 1.0", "d['requests'][0]['samples'] == 4",
        "d['requests'][0]['pid'] == 4321",
        "d['requests'][0]['location'] == '/app'",
        "d['requests'][0]['started_at'] == '2023-11-14T22:13:20.123Z'",
        "d['requests'][1]['status'] == 500",
        "d['requests'][1]['duration_ms'] == 800.0");
}

static void test_overview_json_histogram_sums_to_requests(void **state)
{
    fix_t *f = *state;

    overview_json(f->st, &f->opt);
    unit_assert_json(
        unit_buf_str(&buf), "len(d['locations']) == 1",
        "d['locations'][0]['path'] == '/app'",
        "d['locations'][0]['interval_ms'] == 10.0",
        "d['locations'][0]['requests'] == 7",
        "sum(h['count'] for h in d['locations'][0]['histogram']) == 7",
        "all(h['hi_ms'] is None or h['lo_ms'] < h['hi_ms'] "
        "for h in d['locations'][0]['histogram'])",
        "d['locations'][0]['histogram'][0]['lo_ms'] == 0",
        "d['locations'][0]['histogram'][-1]['hi_ms'] is None",
        "d['locations'][0]['histogram'][-1]['lo_ms'] == 60000",
        "0 < d['locations'][0]['p50_ms'] <= d['locations'][0]['p95_ms'] "
        "<= d['locations'][0]['p99_ms']");
}

static void test_overview_json_lists_inflight_requests(void **state)
{
    fix_t *f = *state;

    overview_json(f->st, &f->opt);
    unit_assert_json(unit_buf_str(&buf),
                     "[r['id'] for r in d['inflight']] == ['live-1']",
                     "d['inflight'][0]['samples'] == 1",
                     "d['inflight'][0]['elapsed_ms'] > 0");
}

static void test_overview_json_has_no_raw_markup(void **state)
{
    fix_t *f = *state;

    overview_json(f->st, &f->opt);
    assert_null(strchr(unit_buf_str(&buf), '<'));
    assert_true(unit_utf8_valid(buf.p, buf.n));
}

static void test_request_json_stacks_are_root_first(void **state)
{
    fix_t *f = *state;

    request_json(f->st, find(f, "req-1", 0), 0, &f->opt);
    unit_assert_json(
        unit_buf_str(&buf), "d['id'] == 'req-1'", "d['inflight'] is False",
        "d['status'] == 200", "len(d['stacks']) == 2",
        "d['stacks'][0]['frames'] == ["
        "{'function': 'main', 'file': 'app.py', 'line': 1},"
        "{'function': '<script>evil()</script>', 'file': 'a;b\\nc.py', "
        "'line': 7},"
        "{'function': 'q\"uote', 'file': \"/srv/x's.py\", 'line': 42}]",
        "d['stacks'][0]['count'] == 3", "d['stacks'][0]['weight_ms'] == 30.0",
        "[x['function'] for x in d['stacks'][1]['frames']][:2] == "
        "['main', 'handler']",
        "d['stacks'][1]['frames'][2]['function'].startswith('bad')",
        "'\\ufffd' in d['stacks'][1]['frames'][2]['function']",
        "'\\ufffd' in d['stacks'][1]['frames'][2]['file']",
        "d['stacks'][1]['count'] == 1", "d['stacks'][1]['weight_ms'] == 5.0",
        "sum(s['count'] for s in d['stacks']) == d['samples']");
    assert_null(strchr(unit_buf_str(&buf), '<'));
}

static void test_request_json_of_inflight_request(void **state)
{
    fix_t *f = *state;

    request_json(f->st, find(f, "live-1", 1), 1, &f->opt);
    unit_assert_json(unit_buf_str(&buf), "d['inflight'] is True",
                     "d['elapsed_ms'] > 0",
                     "[x['function'] for x in d['stacks'][0]['frames']] == "
                     "['main', '<script>evil()</script>']");
}

/* The line format: frames joined by ';', one space, the count. */
static void check_folded_lines(const char *text, uint64_t *sum, size_t *lines)
{
    const char *p = text;

    *sum = 0;
    *lines = 0;
    assert_true(unit_utf8_valid(text, strlen(text)));
    while (*p) {
        const char *nl = strchr(p, '\n'), *sp, *d;
        size_t n;
        char line[8192];

        assert_non_null(nl); /* every line ends in a newline */
        n = (size_t)(nl - p);
        assert_true(n < sizeof(line));
        memcpy(line, p, n);
        line[n] = '\0';
        sp = strrchr(line, ' ');
        if (!sp || sp == line || sp[-1] == ' ' || !sp[1]) {
            fail_msg("folded line without \"STACK COUNT\": \"%s\"", line);
        }
        for (d = sp + 1; *d; d++) {
            if (!isdigit((unsigned char)*d)) {
                fail_msg("folded count is not a number: \"%s\"", line);
            }
        }
        for (d = line; *d; d++) {
            if ((unsigned char)*d < 0x20 || *d == 0x7f) {
                fail_msg("control character in folded line \"%s\"", line);
            }
        }
        *sum += strtoull(sp + 1, NULL, 10);
        (*lines)++;
        p = nl + 1;
    }
}

static void test_request_folded_is_one_line_per_stack(void **state)
{
    fix_t *f = *state;
    const char *text;
    uint64_t sum;
    size_t lines;

    request_folded(f->st, find(f, "req-1", 0));
    text = unit_buf_str(&buf);
    check_folded_lines(text, &sum, &lines);
    assert_int_equal(lines, 2);
    assert_int_equal(sum, 4);
    /* most samples first, root first, hostile separators neutralised */
    assert_true(strncmp(text,
                        "main (app.py:1);<script>evil()</script> "
                        "(a:b c.py:7);q\"uote (/srv/x's.py:42) 3\n",
                        strlen("main (app.py:1);<script>evil()</script> "
                               "(a:b c.py:7);q\"uote (/srv/x's.py:42) 3\n")) ==
                0);
    assert_true(strncmp(strchr(text, '\n') + 1,
                        "main (app.py:1);handler (app.py:20);bad", 39) == 0);
    assert_int_equal(unit_count(text, ";"), 4);
}

static void test_location_folded_aggregates_finished_requests(void **state)
{
    fix_t *f = *state;
    uint64_t sum;
    size_t lines, written;

    assert_int_equal(pp_render_find_location(f->st, "/app"), f->loc);
    assert_int_equal(pp_render_find_location(f->st, "/nope"), -1);
    written = location_folded(f->st, f->loc);
    check_folded_lines(unit_buf_str(&buf), &sum, &lines);
    assert_int_equal(written, 2);
    assert_int_equal(lines, 2);
    assert_int_equal(sum, 5); /* req-1: 4, the odd id: 1; not in flight */
    assert_non_null(strstr(unit_buf_str(&buf), "q\"uote (/srv/x's.py:42) 3\n"));
}

static void test_overview_html_escapes_request_data(void **state)
{
    fix_t *f = *state;
    const char *h;

    overview_html(f->st, &f->opt);
    h = unit_buf_str(&buf);
    assert_true(unit_utf8_valid(buf.p, buf.n));
    assert_null(strstr(h, "<script>evil"));
    assert_null(strstr(h, "<img"));
    assert_null(strstr(h, "<z>"));
    assert_non_null(strstr(h, "&lt;img src=x onerror=alert(1)&gt;"));
    /* the in-flight request is "now in" the hostile function */
    assert_non_null(strstr(h, "&lt;script&gt;evil()&lt;/script&gt;"));
    assert_non_null(strstr(h, "</html>"));
}

static void test_overview_html_percent_encodes_id_in_link(void **state)
{
    fix_t *f = *state;
    const char *h;

    overview_html(f->st, &f->opt);
    h = unit_buf_str(&buf);
    assert_non_null(
        strstr(h, "href=\"/server-profile/request/" ODD_ID_URL "\""));
    assert_non_null(strstr(h, "href=\"/server-profile/request/req-1\""));
    assert_non_null(strstr(h, "href=\"/server-profile/request/live-1\""));
}

static void test_request_html_escapes_frame_names(void **state)
{
    fix_t *f = *state;
    const char *h;

    request_html(f->st, find(f, "req-1", 0), 0, &f->opt);
    h = unit_buf_str(&buf);
    assert_true(unit_utf8_valid(buf.p, buf.n));
    assert_null(strstr(h, "<script>evil"));
    assert_null(strstr(h, "<img"));
    assert_null(strstr(h, "q\"uote"));
    assert_non_null(strstr(h, "&lt;script&gt;evil()&lt;/script&gt;"));
    assert_non_null(strstr(h, "q&quot;uote"));
    assert_non_null(strstr(h, "x&#39;s.py"));
    assert_non_null(strstr(h, "</html>"));
}

static void test_request_html_escapes_the_id(void **state)
{
    fix_t *f = *state;
    const char *h;

    request_html(f->st, find(f, ODD_ID, 0), 0, &f->opt);
    h = unit_buf_str(&buf);
    assert_null(strstr(h, "<z>"));
    assert_non_null(strstr(h, "x y/&quot;&lt;z&gt;&amp;"));
}

/* The handler's Content-Security-Policy allows scripts by hash only: the
 * hash it sends must be that of every inline script a page carries, or
 * the browser blocks the flame graph's zoom and search. */
static void test_inline_scripts_match_the_csp_hash(void **state)
{
    fix_t *f = *state;
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char want[64], got[64], *at;
    int scripts = 0;

    pp_view_script_csp_hash(want, sizeof(want));
    assert_int_equal(strlen(want), 53);
    request_html(f->st, find(f, "req-1", 0), 0, &f->opt);
    at = (char *)unit_buf_str(&buf);
    while ((at = strstr(at, "<script"))) {
        /* the hash of the text between the tags, as a browser takes it */
        unsigned char d[PP_SHA256_LEN];
        char *body = at + strlen("<script>"), *end = strstr(at, "</script>");
        size_t i, n = 0;

        assert_memory_equal(at, "<script>", 8); /* no attributes */
        assert_non_null(end);
        pp_sha256(body, (size_t)(end - body), d);
        n += (size_t)snprintf(got, sizeof(got), "'sha256-");
        for (i = 0; i < PP_SHA256_LEN; i += 3) {
            uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 |
                         (i + 2 < PP_SHA256_LEN ? d[i + 2] : 0);
            got[n++] = b64[v >> 18 & 63];
            got[n++] = b64[v >> 12 & 63];
            got[n++] = b64[v >> 6 & 63];
            got[n++] = i + 2 < PP_SHA256_LEN ? b64[v & 63] : '=';
        }
        got[n++] = '\'';
        got[n] = '\0';
        assert_string_equal(got, want);
        scripts++;
        at = end;
    }
    assert_int_equal(scripts, 1);
}

static void test_message_page_escapes_text(void **state)
{
    pp_render_opts_t opt;

    (void)state;
    default_opts(&opt);
    pp_render_message_html(&out, "Not <found>", "no request <b>\"x\"</b>",
                           &opt);
    assert_null(strstr(unit_buf_str(&buf), "<found>"));
    assert_null(strstr(unit_buf_str(&buf), "<b>\""));
    assert_non_null(strstr(unit_buf_str(&buf),
                           "no request &lt;b&gt;&quot;x&quot;&lt;/b&gt;"));
}

/* A node table entry left pointing at itself (memory another process
 * scribbled on) must not make a renderer loop or overflow. */
static void test_renderers_survive_a_node_cycle(void **state)
{
    fix_t *f = *state;
    _Atomic uint64_t *nodes =
        (_Atomic uint64_t *)((char *)f->st + f->st->off_nodes);
    uint32_t fr = frame(f->st, "loop", "loop.py", 1);
    uint32_t node = pp_store_intern_node(f->st, 0, fr);
    const pp_record_t *rec;
    int idx;

    assert_true(node != 0);
    atomic_store(&nodes[node - 1], ((uint64_t)node << 32) | fr);
    idx = claim(f->st, f->loc, "cycle", "/app/cycle");
    sample(f, idx, node, 1000);
    pp_store_finish(f->st, idx, 200, 900000, 0, 1);
    rec = find(f, "cycle", 0);

    request_json(f->st, rec, 0, &f->opt);
    unit_assert_json(unit_buf_str(&buf), "len(d['stacks']) == 1",
                     "len(d['stacks'][0]['frames']) <= 1026");
    unit_buf_reset(&buf);
    request_folded(f->st, rec);
    assert_true(buf.n < 64 * 1024);
    unit_buf_reset(&buf);
    request_html(f->st, rec, 0, &f->opt);
    assert_non_null(strstr(unit_buf_str(&buf), "</html>"));
    unit_buf_reset(&buf);
    overview_html(f->st, &f->opt);
    assert_non_null(strstr(unit_buf_str(&buf), "</html>"));

    /* in flight on it: the overview shows the innermost 40 frames */
    idx = claim(f->st, f->loc, "cycle-live", "/app/cycle");
    sample(f, idx, node, 1000);
    unit_buf_reset(&buf);
    overview_html(f->st, &f->opt);
    assert_non_null(strstr(unit_buf_str(&buf), "</html>"));
    assert_int_equal(unit_count(unit_buf_str(&buf), "<li>loop "), 40);
}

static void test_renderers_survive_an_empty_store(void **state)
{
    const char *err = NULL;
    pp_store_t *st = pp_store_create(4ULL << 20, 2, 2, &err);
    pp_render_opts_t opt;
    (void)state;

    default_opts(&opt);
    opt.refresh = 5;

    assert_non_null(st);
    overview_json(st, &opt);
    unit_assert_json(unit_buf_str(&buf), "d['locations'] == []",
                     "d['requests'] == []", "d['inflight'] == []");
    unit_buf_reset(&buf);
    overview_html(st, &opt);
    assert_non_null(strstr(unit_buf_str(&buf), "</html>"));
    assert_non_null(strstr(unit_buf_str(&buf), "http-equiv=refresh"));
    pp_store_destroy(st);
}

/* ---- CPU time in a location's aggregate ---- */

static void test_location_json_carries_the_requests_cpu_time(void **state)
{
    fix_t *f = *state;
    pp_profile_t p;

    /* every sample of the fixture had half its wall time on CPU: req-1
     * 3 x 10 ms on A and 5 ms on B, the odd id 8 ms on B */
    pp_profile_init(&p);
    assert_int_equal(
        pp_render_location_profile(&p, f->st, f->loc, 0, 0, PP_SIDE_ALL), 0);
    location_json(f->st, f->loc, &p, &f->opt);
    pp_profile_free(&p);
    unit_assert_json(unit_buf_str(&buf), "d['weight_ms'] == 43.0",
                     "d['cpu_ms'] == 21.5",
                     "all(s['cpu_ms'] * 2 == s['weight_ms'] "
                     "for s in d['stacks'])");
}

static void test_location_html_shows_the_cpu_share(void **state)
{
    fix_t *f = *state;
    const char *h;

    location_html(f->st, f->loc, &f->opt);
    h = unit_buf_str(&buf);
    assert_non_null(strstr(h, "of request time, 50% of it on CPU"));
    /* the call tree's rows, and the hot table's CPU column */
    assert_non_null(strstr(h, ", 50% on CPU</span>"));
    assert_null(strstr(h, ", 0% on CPU</span>"));
    assert_non_null(strstr(h, "Self on CPU</th>"));
}

static void test_location_window_carries_cpu_time(void **state)
{
    fix_t *f = *state;
    pp_profile_t p;

    pp_profile_init(&p);
    /* the fixture's requests ended within a second or two of START_US */
    assert_int_equal(pp_render_location_profile(&p, f->st, f->loc,
                                                START_US + 2000000, 300000000LL,
                                                PP_SIDE_ALL),
                     0);
    assert_int_equal(p.weight_us, 43000);
    assert_int_equal(p.cpu_us, 21500);
    pp_profile_free(&p);
}

static void test_location_slow_and_rest_sides_carry_cpu_time(void **state)
{
    fix_t *f = *state;
    pp_profile_t slow, rest;
    size_t i;
    int k, idx, loc = pp_store_location_register(f->st, "/split", 10000);

    /* 20 quick requests half on CPU, then slow ones wholly on CPU: the
     * slow side is all CPU, and the rest keeps its half */
    for (k = 0; k < 26; k++) {
        idx = claim(f->st, loc, "split", "/split");
        if (k < 20) {
            sample(f, idx, f->stack_a, 10000);
        }
        else {
            pp_store_add_sample(f->st, pp_store_slot(f->st, idx), f->stack_s,
                                START_US, 10000, 10000);
        }
        pp_store_finish(f->st, idx, 200, k < 20 ? 100000 : 5000000, 0, 0);
    }
    pp_profile_init(&slow);
    pp_profile_init(&rest);
    assert_int_equal(
        pp_render_location_profile(&slow, f->st, loc, 0, 0, PP_SIDE_SLOW), 0);
    assert_int_equal(
        pp_render_location_profile(&rest, f->st, loc, 0, 0, PP_SIDE_REST), 0);
    assert_true(slow.samples > 0);
    assert_int_equal(slow.cpu_us, slow.weight_us);
    for (i = 0; i < rest.n; i++) {
        if (rest.v[i].node == f->stack_a) {
            assert_int_equal(rest.v[i].cpu_us * 2, rest.v[i].weight_us);
        }
    }
    assert_true(rest.cpu_us > 0);
    pp_profile_free(&slow);
    pp_profile_free(&rest);
}

/* ---- what one view may cost ---- */

/* A store with `nstacks` stacks of 1024 frames each, every one its own
 * path from the second frame on (entry_<k>), so nothing merges: the most
 * call-tree nodes a location can ask for.  Leaves in leaves[]. */
static pp_store_t *deep_store(uint32_t nstacks, uint32_t *leaves,
                              int same_function)
{
    const char *err = NULL;
    pp_store_t *st = pp_store_create(32ULL << 20, 2, 2, &err);
    uint32_t k, d, shared[PP_DEPTH_LIMIT];
    char fn[32];

    assert_non_null(st);
    for (d = 1; d < PP_DEPTH_LIMIT; d++) {
        snprintf(fn, sizeof(fn), "step_%u", d);
        shared[d] = frame(st, fn, "deep.py", d);
    }
    for (k = 0; k < nstacks; k++) {
        uint32_t node;
        /* distinct functions, or one function on distinct lines (the
         * store's nodes differ, the tree's merge) */
        snprintf(fn, sizeof(fn), "entry_%u", same_function ? 0 : k);
        node = pp_store_intern_node(st, 0, frame(st, fn, "deep.py", 10000 + k));
        for (d = 1; d < PP_DEPTH_LIMIT; d++) {
            node = pp_store_intern_node(st, node, shared[d]);
        }
        assert_true(node != 0);
        leaves[k] = node;
    }
    return st;
}

static void test_tree_of_a_deep_wide_location_is_capped(void **state)
{
    enum { N = 100 }; /* 100 x 1024 nodes: more than the cap */
    uint32_t leaves[N], k;
    pp_store_t *st = deep_store(N, leaves, 0);
    pp_render_opts_t opt;
    const char *h;
    pp_profile_t p;
    pp_tree_t t;
    int loc = pp_store_location_register(st, "/deep", 10000), idx;
    pp_req_info_t info;

    (void)state;
    memset(&info, 0, sizeof(info));
    info.id = "deep";
    info.method = "GET";
    info.uri = "/deep";
    info.vhost = "x";
    info.pid = 4321;
    info.location = loc;
    info.interval_us = 10000;
    info.max_depth = PP_DEPTH_LIMIT;
    info.start_us = START_US;
    idx = pp_store_claim(st, &info, 0);
    for (k = 0; k < N; k++) {
        uint32_t c;
        for (c = 0; c < N - k; c++) { /* the first stacks commonest */
            pp_store_add_sample(st, pp_store_slot(st, idx), leaves[k], START_US,
                                1000, 500);
        }
    }
    pp_store_finish(st, idx, 200, 1000000, 0, PP_KEEP_NONE);

    pp_profile_init(&p);
    pp_render_location_profile(&p, st, loc, 0, 0, PP_SIDE_ALL);
    assert_int_equal(p.n, N);
    assert_int_equal(pp_profile_resolve_tree(&p, st, &t), 0);
    assert_true(t.n <= PP_TREE_MAX_NODES);
    assert_true(t.truncated);
    assert_true(t.stacks_left_out > 0);
    /* whole stacks in, whole stacks out: every sample accounted for */
    assert_int_equal(t.total + t.left_out, p.samples);
    /* the commonest went in: 64 stacks of 1024 nodes fit, N..N-63 */
    assert_int_equal(t.v[t.roots - 1].count, N);
    assert_int_equal(t.total, (N + N - 63) * 64 / 2);
    pp_tree_free(&t);
    pp_profile_free(&p);

    default_opts(&opt);
    location_html(st, loc, &opt);
    h = unit_buf_str(&buf);
    assert_non_null(strstr(h, "Truncated: the views are drawn from the "
                              "commonest stacks"));
    assert_non_null(strstr(h, "</html>"));
    pp_store_destroy(st);
}

static void test_tree_walk_of_the_store_is_capped(void **state)
{
    /* 300 stacks that merge into one path of 1024 functions but are 300
     * chains of 1024 nodes in the store: reading them all would be more
     * than the walk budget allows */
    enum { N = 300 };
    uint32_t leaves[N], k;
    pp_store_t *st = deep_store(N, leaves, 1);
    pp_profile_t p;
    pp_tree_t t;
    size_t nhot;
    pp_hot_t *hot;

    (void)state;
    pp_profile_init(&p);
    for (k = 0; k < N; k++) {
        assert_int_equal(pp_profile_add(&p, leaves[k], N - k, 1000, 0), 0);
    }
    pp_profile_sort(&p);
    assert_int_equal(pp_profile_resolve_tree(&p, st, &t), 0);
    assert_true(t.walked <= PP_TREE_MAX_WALK);
    assert_int_equal(t.n, PP_DEPTH_LIMIT);
    assert_true(t.truncated);
    assert_int_equal(t.total + t.left_out, p.samples);
    /* hot functions from the capped tree: the deepest frame is every
     * drawn sample's leaf */
    hot = pp_hot_functions(&t, &nhot);
    assert_non_null(hot);
    assert_int_equal(nhot, PP_DEPTH_LIMIT);
    assert_int_equal(hot[0].self, t.total);
    free(hot);
    pp_tree_free(&t);
    pp_profile_free(&p);
    pp_store_destroy(st);
}

static void test_hot_functions_count_recursion_once(void **state)
{
    fix_t *f = *state;
    uint32_t fa = frame(f->st, "a", "r.py", 1);
    uint32_t fa2 = frame(f->st, "a", "r.py", 2); /* same function */
    uint32_t fb = frame(f->st, "b", "r.py", 5);
    uint32_t fm = frame(f->st, "m", "r.py", 9);
    uint32_t m = pp_store_intern_node(f->st, 0, fm);
    uint32_t mab =
        pp_store_intern_node(f->st, pp_store_intern_node(f->st, m, fa), fb);
    uint32_t maba = pp_store_intern_node(f->st, mab, fa2);
    uint32_t mb = pp_store_intern_node(f->st, m, fb);
    pp_profile_t p;
    pp_tree_t t;
    pp_hot_t *hot;
    size_t n, i;
    int seen = 0;

    /* m -> a -> b -> a: 3 samples; m -> b: 2 */
    pp_profile_init(&p);
    pp_profile_add(&p, maba, 3, 30000, 30000);
    pp_profile_add(&p, mb, 2, 20000, 0);
    pp_profile_sort(&p);
    assert_int_equal(pp_profile_resolve(&p, f->st), 0);
    assert_int_equal(pp_tree_build(&t, &p), 0);
    hot = pp_hot_functions(&t, &n);
    assert_int_equal(n, 3);
    for (i = 0; i < n; i++) {
        const pp_pframe_t *fv = pp_tree_frame(&t, hot[i].frame);
        if (strcmp(fv->function, "a") == 0) {
            assert_int_equal(hot[i].self, 3);
            assert_int_equal(hot[i].total, 3); /* once, not twice */
            assert_int_equal(hot[i].self_cpu_us, 30000);
            assert_int_equal(fv->line, 2); /* the leaf's line */
            seen++;
        }
        else if (strcmp(fv->function, "b") == 0) {
            assert_int_equal(hot[i].self, 2);
            assert_int_equal(hot[i].total, 5);
            assert_int_equal(hot[i].total_weight_us, 50000);
            seen++;
        }
        else {
            assert_string_equal(fv->function, "m");
            assert_int_equal(hot[i].self, 0);
            assert_int_equal(hot[i].total, 5);
            seen++;
        }
    }
    assert_int_equal(seen, 3);
    assert_int_equal(hot[0].self, 3); /* biggest self first */
    free(hot);
    pp_tree_free(&t);
    pp_profile_free(&p);
}

/* ---- the differential table ---- */

typedef struct diff_fix {
    pp_store_t *st;
    pp_profile_t slow, rest;
} diff_fix_t;

static int diff_setup(void **state)
{
    const char *err = NULL;
    diff_fix_t *d = calloc(1, sizeof(*d));

    if (!d || !(d->st = pp_store_create(4ULL << 20, 2, 2, &err))) {
        free(d);
        return -1;
    }
    pp_profile_init(&d->slow);
    pp_profile_init(&d->rest);
    memset(&buf, 0, sizeof(buf));
    out = unit_sink(&buf);
    *state = d;
    return 0;
}

static int diff_teardown(void **state)
{
    diff_fix_t *d = *state;

    pp_profile_free(&d->slow);
    pp_profile_free(&d->rest);
    pp_store_destroy(d->st);
    free(d);
    unit_buf_free(&buf);
    return 0;
}

/* handler -> leaf, `count` samples of it in p */
static void diff_add(diff_fix_t *d, pp_profile_t *p, const char *leaf,
                     uint64_t count)
{
    uint32_t root =
        pp_store_intern_node(d->st, 0, frame(d->st, "handler", "app.py", 1));
    uint32_t node =
        pp_store_intern_node(d->st, root, frame(d->st, leaf, "app.py", 2));
    assert_int_equal(pp_profile_add(p, node, count, count * 10000, 0), 0);
}

/* n functions prefix_0 .. prefix_<n-1>, prefix_0 with the most samples */
static void diff_add_ranked(diff_fix_t *d, pp_profile_t *p, const char *prefix,
                            int n)
{
    char name[32];
    int i;

    for (i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "%s_%d", prefix, i);
        diff_add(d, p, name, (uint64_t)(100 - i));
    }
}

static const char *diff_page(diff_fix_t *d)
{
    pp_tree_t ts, tr;

    pp_profile_sort(&d->slow);
    pp_profile_sort(&d->rest);
    assert_int_equal(pp_profile_resolve(&d->slow, d->st), 0);
    assert_int_equal(pp_profile_resolve(&d->rest, d->st), 0);
    assert_int_equal(pp_tree_build(&ts, &d->slow), 0);
    assert_int_equal(pp_tree_build(&tr, &d->rest), 0);
    unit_buf_reset(&buf);
    pp_view_diff(&out, &ts, &tr, "");
    pp_tree_free(&ts);
    pp_tree_free(&tr);
    return unit_buf_str(&buf);
}

/* the row of a function: its delta cell, or NULL if it has no row */
static const char *diff_row(const char *page, const char *fn)
{
    char key[96];
    const char *r;
    snprintf(key, sizeof(key), "<tr><td class=fn>%s</td>", fn);
    r = strstr(page, key);
    return r ? strstr(r, "<td class=\"num") : NULL;
}

static void test_diff_lists_functions_only_outside_the_slow_side(void **state)
{
    diff_fix_t *d = *state;
    const char *page, *row;

    /* the slow requests burn CPU only; the rest only sleep */
    diff_add(d, &d->slow, "burn_cpu", 30);
    diff_add(d, &d->rest, "sleep_for", 40);
    page = diff_page(d);
    row = diff_row(page, "burn_cpu");
    assert_non_null(row);
    assert_memory_equal(row, "<td class=\"num up\">+100.0</td>", 29);
    row = diff_row(page, "sleep_for");
    assert_non_null(row); /* it was missing: rows came from the slow side */
    assert_memory_equal(row, "<td class=\"num down\">-100.0</td>", 31);
    /* handler is on every stack: no change, counted but not listed */
    assert_null(diff_row(page, "handler"));
    assert_non_null(strstr(page, "1 function with smaller changes"));
    assert_true(strstr(page, "<td class=fn>burn_cpu") <
                strstr(page, "smaller changes"));
    assert_true(strstr(page, "smaller changes") <
                strstr(page, "<td class=fn>sleep_for"));
}

static void test_diff_keeps_the_most_shrinking_when_cut(void **state)
{
    diff_fix_t *d = *state;
    const char *page, *p;
    int shown = 0;

    /* 40 functions grow (grow_0 most), 40 shrink (shrink_0 most) */
    diff_add_ranked(d, &d->slow, "grow", 40);
    diff_add_ranked(d, &d->rest, "shrink", 40);
    page = diff_page(d);
    assert_non_null(diff_row(page, "grow_0"));
    assert_non_null(diff_row(page, "shrink_0"));
    assert_non_null(diff_row(page, "shrink_7"));
    assert_null(diff_row(page, "shrink_8"));
    assert_null(diff_row(page, "grow_39"));
    assert_non_null(strstr(page, "functions with smaller changes"));
    /* the shrinking ones end the table, the most shrinking last */
    assert_true(strstr(page, "<td class=fn>shrink_1<") <
                strstr(page, "<td class=fn>shrink_0<"));
    for (p = page; (p = strstr(p, "<tr><td class=fn>")); p++) {
        shown++;
    }
    assert_int_equal(shown, 30);
}

static void test_diff_gives_the_room_of_few_shrinking_to_growing(void **state)
{
    diff_fix_t *d = *state;
    const char *page;

    diff_add_ranked(d, &d->slow, "grow", 40);
    diff_add(d, &d->rest, "shrink_0", 5);
    page = diff_page(d);
    assert_non_null(diff_row(page, "grow_28"));
    assert_null(diff_row(page, "grow_29"));
    assert_non_null(diff_row(page, "shrink_0"));
    assert_non_null(strstr(page, "12 functions with smaller changes"));
}

int main(void)
{
#define B(f) cmocka_unit_test_setup_teardown(f, buf_setup, buf_teardown)
#define S(f) cmocka_unit_test_setup_teardown(f, store_setup, store_teardown)
#define D(f) cmocka_unit_test_setup_teardown(f, diff_setup, diff_teardown)
    const struct CMUnitTest tests[] = {
        B(test_html_escapes_markup_characters),
        B(test_html_keeps_valid_utf8),
        B(test_html_replaces_invalid_utf8),
        B(test_html_replaces_control_characters),
        B(test_html_replaces_del_and_c1_controls),
        B(test_html_writes_exactly_n_bytes_of_input),
        B(test_json_escapes_quote_backslash_and_controls),
        B(test_json_escapes_nul),
        B(test_json_escapes_markup_characters),
        B(test_json_keeps_valid_utf8),
        B(test_json_replaces_invalid_utf8),
        B(test_json_of_every_byte_parses),
        B(test_folded_neutralises_separators),
        B(test_folded_replaces_invalid_utf8),
        B(test_url_segment_percent_encodes),
        S(test_overview_json_lists_the_request_exactly),
        S(test_overview_json_histogram_sums_to_requests),
        S(test_overview_json_lists_inflight_requests),
        S(test_overview_json_has_no_raw_markup),
        S(test_request_json_stacks_are_root_first),
        S(test_request_json_of_inflight_request),
        S(test_request_folded_is_one_line_per_stack),
        S(test_location_folded_aggregates_finished_requests),
        S(test_overview_html_escapes_request_data),
        S(test_overview_html_percent_encodes_id_in_link),
        S(test_request_html_escapes_frame_names),
        S(test_request_html_escapes_the_id),
        S(test_inline_scripts_match_the_csp_hash),
        B(test_message_page_escapes_text),
        S(test_renderers_survive_a_node_cycle),
        B(test_renderers_survive_an_empty_store),
        S(test_location_json_carries_the_requests_cpu_time),
        S(test_location_html_shows_the_cpu_share),
        S(test_location_window_carries_cpu_time),
        S(test_location_slow_and_rest_sides_carry_cpu_time),
        B(test_tree_of_a_deep_wide_location_is_capped),
        B(test_tree_walk_of_the_store_is_capped),
        S(test_hot_functions_count_recursion_once),
        D(test_diff_lists_functions_only_outside_the_slow_side),
        D(test_diff_keeps_the_most_shrinking_when_cut),
        D(test_diff_gives_the_room_of_few_shrinking_to_growing),
    };
#undef B
#undef S
#undef D
    return cmocka_run_group_tests_name("pp_render", tests, NULL, NULL);
}
