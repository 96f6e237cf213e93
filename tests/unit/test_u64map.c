/* test_u64map.c: the helpers of one each: the u64 -> u32 map
 * (pp_u64map.c) through growth, lookups and clearing, FNV-1a (pp_hash.c)
 * against the published vectors and its chaining, and array growth
 * (pp_grow.c): doubling, its bound, zeroing and overflow.
 */
#include "unit.h"

#include "pp_grow.h"
#include "pp_hash.h"
#include "pp_u64map.h"

static void test_map_inserts_finds_and_grows(void **state)
{
    pp_u64map_t m;
    uint32_t i, *slot;

    (void)state;
    assert_int_equal(pp_u64map_init(&m, 4), 0);
    assert_null(pp_u64map_find(&m, 7));
    /* keys spread and clustered, 0 and the largest allowed included */
    for (i = 0; i < 50000; i++) {
        uint64_t key = i % 2 ? (uint64_t)i << 32 : i;
        slot = pp_u64map_get(&m, key, i + 1);
        assert_non_null(slot);
        assert_int_equal(*slot, i + 1);
    }
    slot = pp_u64map_get(&m, UINT64_MAX - 1, 99);
    assert_non_null(slot);
    assert_int_equal(m.used, 50001);
    assert_true(m.cap >= 50001);
    for (i = 0; i < 50000; i++) {
        uint64_t key = i % 2 ? (uint64_t)i << 32 : i;
        /* present: the stored value, not the one offered */
        slot = pp_u64map_get(&m, key, 0);
        assert_non_null(slot);
        assert_int_equal(*slot, i + 1);
        assert_ptr_equal(pp_u64map_find(&m, key), slot);
    }
    assert_int_equal(m.used, 50001);
    assert_int_equal(*pp_u64map_find(&m, UINT64_MAX - 1), 99);
    assert_null(pp_u64map_find(&m, 50001));
    pp_u64map_clear(&m);
    assert_int_equal(m.used, 0);
    assert_null(pp_u64map_find(&m, 1));
    assert_int_equal(*pp_u64map_get(&m, 1, 5), 5);
    pp_u64map_free(&m);
    assert_null(m.keys);
}

static void test_fnv1a_vectors(void **state)
{
    (void)state;
    /* the FNV reference's test vectors */
    assert_int_equal(pp_fnv1a32(PP_FNV32_BASIS, "", 0), PP_FNV32_BASIS);
    assert_int_equal(pp_fnv1a32_str(PP_FNV32_BASIS, "a"), 0xe40c292cu);
    assert_int_equal(pp_fnv1a32_str(PP_FNV32_BASIS, "foobar"), 0xbf9cf968u);
    assert_int_equal(pp_fnv1a32(PP_FNV32_BASIS, "foobar", 6), 0xbf9cf968u);
    assert_true(pp_fnv1a64_str(PP_FNV64_BASIS, "a") == 0xaf63dc4c8601ec8cULL);
    assert_true(pp_fnv1a64(PP_FNV64_BASIS, "foobar", 6) ==
                0x85944171f73967e8ULL);
    /* chaining is hashing the concatenation */
    assert_true(
        pp_fnv1a64_str(
            pp_fnv1a64(pp_fnv1a64_str(PP_FNV64_BASIS, "main"), "\xff", 1),
            "app.py") == 0x29c46635c1438151ULL);
    assert_true(pp_fnv1a64_str(pp_fnv1a64_str(PP_FNV64_BASIS, "foo"), "bar") ==
                pp_fnv1a64_str(PP_FNV64_BASIS, "foobar"));
}

static void test_grow_doubles_up_to_its_bound(void **state)
{
    uint32_t *v = NULL, *nv, cap32 = 0;
    size_t cap = 0, i;
    char *c;

    (void)state;
    /* from the first size, doubling until the need fits; zeroed */
    v = pp_grow32(v, &cap32, 1, sizeof(*v), 4, 100, 1);
    assert_non_null(v);
    assert_int_equal(cap32, 4);
    v[3] = 7;
    v = pp_grow32(v, &cap32, 9, sizeof(*v), 4, 100, 1);
    assert_non_null(v);
    assert_int_equal(cap32, 16);
    assert_int_equal(v[3], 7);
    for (i = 4; i < 16; i++) {
        assert_int_equal(v[i], 0);
    }
    /* room already: the same array */
    assert_ptr_equal(pp_grow32(v, &cap32, 16, sizeof(*v), 4, 100, 1), v);
    /* capped at the bound, and refused past it, the array kept */
    v = pp_grow32(v, &cap32, 70, sizeof(*v), 4, 100, 1);
    assert_non_null(v);
    assert_int_equal(cap32, 100);
    nv = pp_grow32(v, &cap32, 101, sizeof(*v), 4, 100, 1);
    assert_null(nv);
    assert_int_equal(cap32, 100);
    free(v);
    /* a size that would overflow is refused */
    c = pp_grow(NULL, &cap, 2, SIZE_MAX / 2 + 1, 1, SIZE_MAX, 0);
    assert_null(c);
    assert_int_equal(cap, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_inserts_finds_and_grows),
        cmocka_unit_test(test_fnv1a_vectors),
        cmocka_unit_test(test_grow_doubles_up_to_its_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
