/* pp_hash.c: SHA-256 and HMAC-SHA256 (see pp_hash.h).
 *
 * Written from FIPS 180-4 section 6.2 and RFC 2104; byte order handled
 * explicitly so it runs the same on any host.  Never allocates.
 */
#include "pp_hash.h"

#include <string.h>

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void compress(uint32_t h[8], const unsigned char *p)
{
    uint32_t w[64], a, b, c, d, e, f, g, k, t1, t2;
    size_t i;

    for (i = 0; i < 16; i++) {
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    }
    for (i = 16; i < 64; i++) {
        uint32_t s0 =
            ROTR(w[i - 15], 7) ^ ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 =
            ROTR(w[i - 2], 17) ^ ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = h[0], b = h[1], c = h[2], d = h[3];
    e = h[4], f = h[5], g = h[6], k = h[7];
    for (i = 0; i < 64; i++) {
        t1 = k + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) +
             ((e & f) ^ (~e & g)) + K[i] + w[i];
        t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) +
             ((a & b) ^ (a & c) ^ (b & c));
        k = g, g = f, f = e, e = d + t1;
        d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d;
    h[4] += e, h[5] += f, h[6] += g, h[7] += k;
}

void pp_sha256_init(pp_sha256_t *c)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372,
                                   0xa54ff53a, 0x510e527f, 0x9b05688c,
                                   0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, iv, sizeof(iv));
    c->len = 0;
    c->used = 0;
}

void pp_sha256_update(pp_sha256_t *c, const void *data, size_t n)
{
    const unsigned char *p = data;

    c->len += n;
    while (n) {
        size_t take = PP_SHA256_BLOCK - c->used;
        if (take > n) {
            take = n;
        }
        memcpy(c->buf + c->used, p, take);
        c->used += take;
        p += take;
        n -= take;
        if (c->used == PP_SHA256_BLOCK) {
            compress(c->h, c->buf);
            c->used = 0;
        }
    }
}

void pp_sha256_final(pp_sha256_t *c, unsigned char out[PP_SHA256_LEN])
{
    uint64_t bits = c->len * 8;
    size_t i;

    c->buf[c->used++] = 0x80;
    if (c->used > PP_SHA256_BLOCK - 8) {
        memset(c->buf + c->used, 0, PP_SHA256_BLOCK - c->used);
        compress(c->h, c->buf);
        c->used = 0;
    }
    memset(c->buf + c->used, 0, PP_SHA256_BLOCK - 8 - c->used);
    for (i = 0; i < 8; i++) {
        c->buf[PP_SHA256_BLOCK - 1 - i] = (unsigned char)(bits >> (8 * i));
    }
    compress(c->h, c->buf);
    for (i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(c->h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(c->h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(c->h[i] >> 8);
        out[4 * i + 3] = (unsigned char)c->h[i];
    }
    /* the state held the message's digest in progress */
    memset(c, 0, sizeof(*c));
}

void pp_sha256(const void *data, size_t n, unsigned char out[PP_SHA256_LEN])
{
    pp_sha256_t c;

    pp_sha256_init(&c);
    pp_sha256_update(&c, data, n);
    pp_sha256_final(&c, out);
}

void pp_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t n,
                    unsigned char out[PP_SHA256_LEN])
{
    unsigned char k[PP_SHA256_BLOCK], pad[PP_SHA256_BLOCK];
    unsigned char inner[PP_SHA256_LEN];
    pp_sha256_t c;
    size_t i;

    /* RFC 2104: a key longer than a block is hashed first */
    memset(k, 0, sizeof(k));
    if (keylen > PP_SHA256_BLOCK) {
        pp_sha256(key, keylen, k);
    }
    else if (keylen) {
        memcpy(k, key, keylen);
    }
    for (i = 0; i < PP_SHA256_BLOCK; i++) {
        pad[i] = k[i] ^ 0x36;
    }
    pp_sha256_init(&c);
    pp_sha256_update(&c, pad, sizeof(pad));
    pp_sha256_update(&c, msg, n);
    pp_sha256_final(&c, inner);
    for (i = 0; i < PP_SHA256_BLOCK; i++) {
        pad[i] = k[i] ^ 0x5c;
    }
    pp_sha256_init(&c);
    pp_sha256_update(&c, pad, sizeof(pad));
    pp_sha256_update(&c, inner, sizeof(inner));
    pp_sha256_final(&c, out);
    memset(k, 0, sizeof(k));
    memset(pad, 0, sizeof(pad));
}

int pp_hash_equal(const void *a, const void *b, size_t n)
{
    const volatile unsigned char *x = a, *y = b;
    unsigned char diff = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        diff |= (unsigned char)(x[i] ^ y[i]);
    }
    return diff == 0;
}

void pp_hash_hex(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* ---- FNV-1a ---- */

uint32_t pp_fnv1a32(uint32_t h, const void *p, size_t n)
{
    const unsigned char *s = p;

    while (n--) {
        h = (h ^ *s++) * 16777619u;
    }
    return h;
}

uint32_t pp_fnv1a32_str(uint32_t h, const char *s)
{
    while (*s) {
        h = (h ^ (unsigned char)*s++) * 16777619u;
    }
    return h;
}

uint64_t pp_fnv1a64(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;

    while (n--) {
        h = (h ^ *s++) * 0x100000001b3ULL;
    }
    return h;
}

uint64_t pp_fnv1a64_str(uint64_t h, const char *s)
{
    while (*s) {
        h = (h ^ (unsigned char)*s++) * 0x100000001b3ULL;
    }
    return h;
}
