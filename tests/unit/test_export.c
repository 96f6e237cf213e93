/* test_export.c: the pprof export (pp_export.c) read back with zlib and a
 * small protobuf wire reader written from profile.proto: the string table
 * is valid UTF-8 whatever the names are, functions are one per (name,
 * file) however many lines and frames share them, and every id resolves.
 */
#include "unit.h"

#include <zlib.h>

#include "pp_export.h"
#include "pp_profile.h"
#include "pp_store.h"

/* ---- gunzip + a protobuf wire reader ---- */

typedef struct pb {
    const unsigned char *p, *end;
} pb_t;

static int pb_varint(pb_t *b, uint64_t *v)
{
    int shift = 0;

    *v = 0;
    while (b->p < b->end && shift < 64) {
        unsigned char c = *b->p++;
        *v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            return 0;
        }
        shift += 7;
    }
    return -1;
}

/* Next field of a message: its number, and either a varint or bytes. */
static int pb_next(pb_t *b, uint32_t *field, uint64_t *v, pb_t *bytes)
{
    uint64_t key;

    if (pb_varint(b, &key)) {
        return -1;
    }
    *field = (uint32_t)(key >> 3);
    switch (key & 7) {
    case 0:
        return pb_varint(b, v);
    case 2:
        if (pb_varint(b, v) || *v > (uint64_t)(b->end - b->p)) {
            return -1;
        }
        bytes->p = b->p;
        bytes->end = b->p + *v;
        b->p += *v;
        return 0;
    default:
        return -1; /* pp_export writes varints and bytes only */
    }
}

typedef struct profile {
    unsigned char *raw;
    size_t nraw;
    pb_t strings[70000];
    size_t nstrings;
    uint64_t fn_name[70000], fn_file[70000]; /* by function id - 1 */
    size_t nfunctions;
    uint64_t loc_fn[70000], loc_line[70000]; /* by location id - 1 */
    size_t nlocations;
    size_t nsamples;
} profile_t;

static void gunzip(const pp_bytes_t *gz, profile_t *pf)
{
    z_stream z;
    size_t cap = 1 << 20;

    memset(&z, 0, sizeof(z));
    assert_int_equal(inflateInit2(&z, 31), Z_OK);
    pf->raw = malloc(cap);
    assert_non_null(pf->raw);
    z.next_in = gz->data;
    z.avail_in = (uInt)gz->len;
    for (;;) {
        int rc;
        z.next_out = pf->raw + z.total_out;
        z.avail_out = (uInt)(cap - z.total_out);
        rc = inflate(&z, Z_NO_FLUSH);
        if (rc == Z_STREAM_END) {
            break;
        }
        assert_true(rc == Z_OK || rc == Z_BUF_ERROR);
        if (z.avail_out == 0) {
            cap *= 2;
            pf->raw = realloc(pf->raw, cap);
            assert_non_null(pf->raw);
        }
        else {
            assert_true(z.avail_in > 0); /* truncated stream */
        }
    }
    pf->nraw = z.total_out;
    inflateEnd(&z);
}

/* message fields 1 and 2 of a Function / Location(line) */
static void read_profile(const pp_bytes_t *gz, profile_t *pf)
{
    pb_t b, sub, sub2;
    uint32_t field;
    uint64_t v;

    gunzip(gz, pf);
    b.p = pf->raw;
    b.end = pf->raw + pf->nraw;
    while (b.p < b.end) {
        assert_int_equal(pb_next(&b, &field, &v, &sub), 0);
        if (field == 6) {
            assert_true(pf->nstrings < 70000);
            pf->strings[pf->nstrings++] = sub;
        }
        else if (field == 5) { /* Function { id, name, system_name, file } */
            uint64_t id = 0, name = 0, file = 0;
            while (sub.p < sub.end) {
                assert_int_equal(pb_next(&sub, &field, &v, &sub2), 0);
                if (field == 1)
                    id = v;
                if (field == 2)
                    name = v;
                if (field == 4)
                    file = v;
            }
            assert_true(id >= 1 && id <= 70000);
            pf->fn_name[id - 1] = name;
            pf->fn_file[id - 1] = file;
            pf->nfunctions++;
        }
        else if (field == 4) { /* Location { id, line { function_id, line } } */
            uint64_t id = 0, fn = 0, line = 0;
            while (sub.p < sub.end) {
                assert_int_equal(pb_next(&sub, &field, &v, &sub2), 0);
                if (field == 1)
                    id = v;
                if (field == 4) {
                    while (sub2.p < sub2.end) {
                        pb_t unused;
                        assert_int_equal(pb_next(&sub2, &field, &v, &unused),
                                         0);
                        if (field == 1)
                            fn = v;
                        if (field == 2)
                            line = v;
                    }
                }
            }
            assert_true(id >= 1 && id <= 70000);
            pf->loc_fn[id - 1] = fn;
            pf->loc_line[id - 1] = line;
            pf->nlocations++;
        }
        else if (field == 2) {
            pf->nsamples++;
        }
    }
}

static int str_is(const profile_t *pf, uint64_t i, const char *s)
{
    return i < pf->nstrings &&
           (size_t)(pf->strings[i].end - pf->strings[i].p) == strlen(s) &&
           memcmp(pf->strings[i].p, s, strlen(s)) == 0;
}

static int valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        size_t len = pp_utf8_seq(s + i, n - i);
        if (!len) {
            return 0;
        }
        i += len;
    }
    return 1;
}

/* ---- fixture ---- */

typedef struct fix {
    pp_store_t *st;
    pp_profile_t prof;
    pp_bytes_t gz;
    profile_t *pf;
} fix_t;

static int setup(void **state)
{
    fix_t *f = calloc(1, sizeof(*f));

    if (!f) {
        return -1;
    }
    f->st = unit_make_store(64ULL << 20, 4, 8);
    f->pf = calloc(1, sizeof(*f->pf));
    if (!f->st || !f->pf) {
        return -1;
    }
    pp_profile_init(&f->prof);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fix_t *f = *state;

    pp_profile_free(&f->prof);
    pp_store_destroy(f->st);
    free(f->gz.data);
    free(f->pf->raw);
    free(f->pf);
    free(f);
    return 0;
}

static uint32_t frame(pp_store_t *st, const char *func, const char *file,
                      uint32_t line)
{
    uint32_t id =
        pp_store_intern_frame(st, func, strlen(func), file, strlen(file), line);
    assert_true(id != 0);
    return id;
}

static void export(fix_t *f)
{
    static const pp_pprof_label_t label = {"uri\xff", "/app/\xc3(\xe2\x82", 0};

    pp_profile_sort(&f->prof);
    assert_int_equal(pp_profile_resolve(&f->prof, f->st), 0);
    assert_int_equal(pp_export_pprof(&f->gz, &f->prof, &label, 1, 1000000000,
                                     2000000000, 10000000),
                     0);
    read_profile(&f->gz, f->pf);
}

/* ---- tests ---- */

static void test_pprof_strings_are_valid_utf8_whatever_the_names(void **state)
{
    fix_t *f = *state;
    /* invalid bytes, an overlong NUL, a surrogate, a cut sequence, and a
     * valid non-ASCII name that must stay as it is */
    uint32_t a = frame(f->st, "bad\xff\xc0\x80", "x\xed\xa0\x80.py", 5);
    uint32_t b = frame(f->st, "cut\xe2\x82", "/srv/\xe2\x82\xac.py", 7);
    uint32_t n =
        pp_store_intern_node(f->st, pp_store_intern_node(f->st, 0, a), b);
    size_t i;
    int found_bad = 0, found_cut = 0, found_euro = 0, found_label = 0;

    assert_int_equal(pp_profile_add(&f->prof, n, 3, 30000, 0), 0);
    export(f);
    assert_true(f->pf->nstrings > 0);
    for (i = 0; i < f->pf->nstrings; i++) {
        assert_true(
            valid_utf8(f->pf->strings[i].p,
                       (size_t)(f->pf->strings[i].end - f->pf->strings[i].p)));
        found_bad |=
            str_is(f->pf, i, "bad\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
        found_cut |= str_is(f->pf, i, "cut\xef\xbf\xbd\xef\xbf\xbd");
        found_euro |= str_is(f->pf, i, "/srv/\xe2\x82\xac.py");
        found_label |=
            str_is(f->pf, i, "/app/\xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd");
    }
    assert_true(found_bad); /* one U+FFFD per invalid byte */
    assert_true(found_cut);
    assert_true(found_euro);  /* valid UTF-8 untouched */
    assert_true(found_label); /* label values too */
    assert_int_equal(f->pf->nsamples, 1);
}

static void test_pprof_has_one_function_per_name_and_file(void **state)
{
    fix_t *f = *state;
    /* same function on three lines, and a namesake in another file */
    uint32_t l1 = frame(f->st, "handler", "app.py", 10);
    uint32_t l2 = frame(f->st, "handler", "app.py", 11);
    uint32_t l3 = frame(f->st, "handler", "app.py", 12);
    uint32_t other = frame(f->st, "handler", "lib.py", 10);
    uint32_t root = frame(f->st, "main", "app.py", 1);
    uint32_t r = pp_store_intern_node(f->st, 0, root);
    uint32_t ids[4] = {l1, l2, l3, other};
    size_t i, k, handler_app = 0, handler_lib = 0;

    for (i = 0; i < 4; i++) {
        assert_int_equal(pp_profile_add(&f->prof,
                                        pp_store_intern_node(f->st, r, ids[i]),
                                        1, 10000, 0),
                         0);
    }
    export(f);
    assert_int_equal(f->pf->nlocations, 5);
    assert_int_equal(f->pf->nfunctions, 3);
    for (k = 0; k < f->pf->nfunctions; k++) {
        if (str_is(f->pf, f->pf->fn_name[k], "handler")) {
            handler_app += str_is(f->pf, f->pf->fn_file[k], "app.py");
            handler_lib += str_is(f->pf, f->pf->fn_file[k], "lib.py");
        }
    }
    assert_int_equal(handler_app, 1);
    assert_int_equal(handler_lib, 1);
    /* the three lines of handler in app.py share its function */
    for (k = 0; k < f->pf->nlocations; k++) {
        uint64_t fn = f->pf->loc_fn[k];
        assert_true(fn >= 1 && fn <= f->pf->nfunctions);
        if (str_is(f->pf, f->pf->fn_name[fn - 1], "handler") &&
            str_is(f->pf, f->pf->fn_file[fn - 1], "app.py")) {
            assert_true(f->pf->loc_line[k] >= 10 && f->pf->loc_line[k] <= 12);
        }
    }
}

/* Samples with a gil_holder label whose value is string `want`. */
static int gil_labels(const profile_t *pf, const char *want)
{
    pb_t b, sub, lab, unused;
    uint32_t field;
    uint64_t v;
    int n = 0;

    b.p = pf->raw;
    b.end = pf->raw + pf->nraw;
    while (b.p < b.end) {
        assert_int_equal(pb_next(&b, &field, &v, &sub), 0);
        if (field != 2) {
            continue;
        }
        while (sub.p < sub.end) {
            uint64_t key = 0, str = 0;

            assert_int_equal(pb_next(&sub, &field, &v, &lab), 0);
            if (field != 3) {
                continue;
            }
            while (lab.p < lab.end) {
                assert_int_equal(pb_next(&lab, &field, &v, &unused), 0);
                if (field == 1)
                    key = v;
                if (field == 2)
                    str = v;
            }
            n += str_is(pf, key, "gil_holder") && str_is(pf, str, want);
        }
    }
    return n;
}

/* A sample whose leaf is a GIL-wait pseudo-frame carries the holder as
 * the label gil_holder, each its own (the string table keeps pointers:
 * the label text must outlive the sample it was made for); others none. */
static void test_pprof_gil_holder_label(void **state)
{
    fix_t *f = *state;
    uint32_t root =
        pp_store_intern_node(f->st, 0, frame(f->st, "app", "a.py", 1));
    uint32_t w1 = frame(f->st, "<GIL wait: held by /app build_rows>",
                        "/srv/views.py", 88);
    uint32_t w2 = frame(f->st,
                        "<waiting to enter Python: held by no request "
                        "[no Python frame]>",
                        "", 0);
    uint32_t w3 = frame(f->st, "<GIL wait: holder unknown>", "", 0);
    uint32_t plain = frame(f->st, "<lambda>", "a.py", 2);

    assert_int_equal(pp_profile_add(&f->prof,
                                    pp_store_intern_node(f->st, root, w1), 4,
                                    4000, 0),
                     0);
    assert_int_equal(pp_profile_add(&f->prof,
                                    pp_store_intern_node(f->st, 0, w2), 2, 2000,
                                    0),
                     0);
    assert_int_equal(pp_profile_add(&f->prof,
                                    pp_store_intern_node(f->st, root, w3), 1,
                                    1000, 0),
                     0);
    assert_int_equal(pp_profile_add(&f->prof,
                                    pp_store_intern_node(f->st, root, plain), 1,
                                    1000, 0),
                     0);
    export(f);
    assert_int_equal(f->pf->nsamples, 4);
    assert_int_equal(gil_labels(f->pf, "/app build_rows (/srv/views.py:88)"),
                     1);
    assert_int_equal(gil_labels(f->pf, "no request [no Python frame]"), 1);
    assert_int_equal(gil_labels(f->pf, "holder unknown"), 1);
}

/* 30,000 distinct functions (about a default store's frame table): every
 * one is its own Function with its own name, resolved through the map
 * that replaced the linear scan (that scan took 1.4 s at 32,000). */
static void test_pprof_many_distinct_functions_each_resolve(void **state)
{
    fix_t *f = *state;
    enum { N = 30000 };
    uint32_t root =
        pp_store_intern_node(f->st, 0, frame(f->st, "main", "m.py", 1));
    char name[32];
    size_t i, k;
    static unsigned char seen[N];

    for (i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "fn_%zu", i);
        assert_int_equal(
            pp_profile_add(&f->prof,
                           pp_store_intern_node(f->st, root,
                                                frame(f->st, name, "m.py", 2)),
                           1, 10000, 0),
            0);
    }
    export(f);
    assert_int_equal(f->pf->nfunctions, N + 1);
    assert_int_equal(f->pf->nlocations, N + 1);
    memset(seen, 0, sizeof(seen));
    for (k = 0; k < f->pf->nfunctions; k++) {
        uint64_t nm = f->pf->fn_name[k];
        unsigned long idx;
        char tail;
        assert_true(nm < f->pf->nstrings);
        snprintf(name, sizeof(name), "%.*s",
                 (int)(f->pf->strings[nm].end - f->pf->strings[nm].p),
                 (const char *)f->pf->strings[nm].p);
        if (strcmp(name, "main") == 0) {
            continue;
        }
        assert_int_equal(sscanf(name, "fn_%lu%c", &idx, &tail), 1);
        assert_true(idx < N);
        assert_false(seen[idx]);
        seen[idx] = 1;
    }
}

/* Resolving for the views drops the merge index (pp_profile_resolve
 * keeps it); adding and subtracting build it again, and still find the
 * stacks already there. */
static void test_profile_merges_after_a_resolve(void **state)
{
    fix_t *f = *state;
    uint32_t a = pp_store_intern_node(f->st, 0, frame(f->st, "a", "x.py", 1));
    uint32_t b = pp_store_intern_node(f->st, a, frame(f->st, "b", "x.py", 2));
    pp_tree_t t;

    assert_int_equal(pp_profile_add(&f->prof, a, 2, 20, 0), 0);
    assert_int_equal(pp_profile_add(&f->prof, b, 5, 50, 0), 0);
    pp_profile_sort(&f->prof);
    assert_int_equal(pp_profile_resolve(&f->prof, f->st), 0);
    assert_non_null(pp_u64map_find(&f->prof.index, b));
    assert_int_equal(pp_profile_resolve_tree(&f->prof, f->st, &t), 0);
    assert_null(f->prof.index.keys);
    pp_tree_free(&t);
    assert_int_equal(pp_profile_subtract(&f->prof, b, 1, 10, 0), 0);
    assert_int_equal(pp_profile_add(&f->prof, a, 1, 10, 0), 0);
    assert_int_equal(f->prof.n, 2);
    assert_int_equal(f->prof.v[0].node, b);
    assert_int_equal(f->prof.v[0].count, 4);
    assert_int_equal(f->prof.v[1].count, 3);
    assert_int_equal(f->prof.samples, 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_pprof_strings_are_valid_utf8_whatever_the_names, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_pprof_has_one_function_per_name_and_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pprof_gil_holder_label, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_pprof_many_distinct_functions_each_resolve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_profile_merges_after_a_resolve,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
