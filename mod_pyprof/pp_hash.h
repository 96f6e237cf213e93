/* pp_hash.h: SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), for the
 * capture form's nonce and the trigger secret; and FNV-1a, the one
 * non-cryptographic string hash of the hash tables.
 *
 * APR-util offers SHA-1 only and the module links no crypto library, so
 * the core carries its own: one small, allocation-free implementation,
 * checked against the FIPS 180-4 and RFC 4231 vectors in
 * tests/unit/test_hash.c.  Pure functions: no I/O, no global state.
 */
#ifndef PP_HASH_H
#define PP_HASH_H

#include <stddef.h>
#include <stdint.h>

#define PP_SHA256_LEN 32
#define PP_SHA256_BLOCK 64

typedef struct pp_sha256 {
    uint32_t h[8];
    uint64_t len; /* bytes hashed so far */
    unsigned char buf[PP_SHA256_BLOCK];
    size_t used;
} pp_sha256_t;

void pp_sha256_init(pp_sha256_t *c);
void pp_sha256_update(pp_sha256_t *c, const void *data, size_t n);
void pp_sha256_final(pp_sha256_t *c, unsigned char out[PP_SHA256_LEN]);
void pp_sha256(const void *data, size_t n, unsigned char out[PP_SHA256_LEN]);

void pp_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t n,
                    unsigned char out[PP_SHA256_LEN]);

/* 1 if the n bytes at a and b are equal; the time taken depends on n
 * only, not on where they differ. */
int pp_hash_equal(const void *a, const void *b, size_t n);

/* Lower-case hex of n bytes into out (2n + 1 bytes, NUL-terminated). */
void pp_hash_hex(const unsigned char *in, size_t n, char *out);

/* FNV-1a (32 and 64 bit) of n bytes, or of a NUL-terminated string,
 * continuing from h: start from the basis, chain to hash several parts.
 * For hash tables only, never for anything a client could exploit. */
#define PP_FNV32_BASIS 2166136261u
#define PP_FNV64_BASIS 0xcbf29ce484222325ULL
uint32_t pp_fnv1a32(uint32_t h, const void *p, size_t n);
uint32_t pp_fnv1a32_str(uint32_t h, const char *s);
uint64_t pp_fnv1a64(uint64_t h, const void *p, size_t n);
uint64_t pp_fnv1a64_str(uint64_t h, const char *s);

#endif
