/* test_hash.c: SHA-256 and HMAC-SHA256 (pp_hash.c) against the published
 * vectors: FIPS 180-4's examples (NIST CSRC "SHA256.pdf") and RFC 4231's
 * HMAC-SHA256 test cases, plus the incremental API split at every offset
 * and the constant-time comparison.
 */
#include "unit.h"

#include "pp_hash.h"

static void assert_digest(const unsigned char *d, const char *hex)
{
    char got[2 * PP_SHA256_LEN + 1];

    pp_hash_hex(d, PP_SHA256_LEN, got);
    assert_string_equal(got, hex);
}

static void sha256_of(const char *s, const char *hex)
{
    unsigned char d[PP_SHA256_LEN];

    pp_sha256(s, strlen(s), d);
    assert_digest(d, hex);
}

static void test_sha256_fips_vectors(void **state)
{
    (void)state;
    sha256_of("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b"
                  "7852b855");
    sha256_of("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff"
                     "61f20015ad");
    sha256_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db"
              "06c1");
    sha256_of("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijk"
              "lmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
              "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afe"
              "e9d1");
}

static void test_sha256_million_a(void **state)
{
    unsigned char d[PP_SHA256_LEN];
    char chunk[1000];
    pp_sha256_t c;
    int i;
    (void)state;

    memset(chunk, 'a', sizeof(chunk));
    pp_sha256_init(&c);
    for (i = 0; i < 1000; i++) {
        pp_sha256_update(&c, chunk, sizeof(chunk));
    }
    pp_sha256_final(&c, d);
    assert_digest(d, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39"
                     "ccc7112cd0");
}

/* lengths around the 55/56/64-byte padding edges, fed in two parts split
 * at every offset, equal the one-shot digest */
static void test_sha256_incremental_equals_oneshot(void **state)
{
    unsigned char msg[130], one[PP_SHA256_LEN], two[PP_SHA256_LEN];
    size_t len, cut;
    (void)state;

    for (len = 0; len < sizeof(msg); len++) {
        msg[len] = (unsigned char)(len * 7 + 1);
    }
    for (len = 0; len <= sizeof(msg); len++) {
        pp_sha256(msg, len, one);
        for (cut = 0; cut <= len; cut++) {
            pp_sha256_t c;
            pp_sha256_init(&c);
            pp_sha256_update(&c, msg, cut);
            pp_sha256_update(&c, msg + cut, len - cut);
            pp_sha256_final(&c, two);
            assert_memory_equal(one, two, PP_SHA256_LEN);
        }
    }
}

static void hmac_of(const void *key, size_t kl, const void *msg, size_t ml,
                    const char *hex)
{
    unsigned char d[PP_SHA256_LEN];

    pp_hmac_sha256(key, kl, msg, ml, d);
    assert_digest(d, hex);
}

static void test_hmac_rfc4231(void **state)
{
    unsigned char key[131], data[50];
    const char *big1 = "Test Using Larger Than Block-Size Key - Hash Key First";
    const char *big2 = "This is a test using a larger than block-size key and "
                       "a larger than block-size data. The key needs to be "
                       "hashed before being used by the HMAC algorithm.";
    size_t i;
    (void)state;

    /* test case 1 */
    memset(key, 0x0b, 20);
    hmac_of(key, 20, "Hi There", 8,
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32"
            "cff7");
    /* 2: a key shorter than the output */
    hmac_of("Jefe", 4, "what do ya want for nothing?", 28,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec"
            "3843");
    /* 3 */
    memset(key, 0xaa, 20);
    memset(data, 0xdd, 50);
    hmac_of(key, 20, data, 50,
            "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced5"
            "65fe");
    /* 4 */
    for (i = 0; i < 25; i++) {
        key[i] = (unsigned char)(i + 1);
    }
    memset(data, 0xcd, 50);
    hmac_of(key, 25, data, 50,
            "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729"
            "665b");
    /* 6 and 7: a key longer than a block is hashed first */
    memset(key, 0xaa, 131);
    hmac_of(key, 131, big1, strlen(big1),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee3"
            "7f54");
    hmac_of(key, 131, big2, strlen(big2),
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a"
            "35e2");
}

static void test_hash_equal(void **state)
{
    unsigned char a[32], b[32];
    size_t i;
    (void)state;

    memset(a, 0x5a, sizeof(a));
    memcpy(b, a, sizeof(b));
    assert_true(pp_hash_equal(a, b, sizeof(a)));
    assert_true(pp_hash_equal(a, b, 0));
    for (i = 0; i < sizeof(a); i++) {
        b[i] ^= 1;
        assert_false(pp_hash_equal(a, b, sizeof(a)));
        b[i] ^= 1;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_fips_vectors),
        cmocka_unit_test(test_sha256_million_a),
        cmocka_unit_test(test_sha256_incremental_equals_oneshot),
        cmocka_unit_test(test_hmac_rfc4231),
        cmocka_unit_test(test_hash_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
