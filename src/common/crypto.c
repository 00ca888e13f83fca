/*
 * crypto.c - SHA-256, HMAC-SHA256, the CSPRNG and constant-time compares,
 * through OpenSSL: the only file of wfo that includes an OpenSSL header
 * (crypto.h). docs/operations/security.md.
 */
#include "common/compat.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "crypto.h"
#include "error.h"

static const char hexdigits[] = "0123456789abcdef";

void wfo_hex(const void *data, size_t n, char *out)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexdigits[p[i] >> 4];
        out[2 * i + 1] = hexdigits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int wfo_unhex(const char *s, unsigned char *out, size_t n)
{
    if (strlen(s) != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval((unsigned char)s[2 * i]), lo = hexval((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi * 16 + lo);
    }
    return 0;
}

void wfo_sha256(const void *data, size_t len, unsigned char out[WFO_SHA256_SIZE])
{
    unsigned int mdlen = 0;
    int ok = EVP_Digest(data ? data : (const void *)"", len, out, &mdlen, EVP_sha256(), NULL);
    wfo_assert(ok == 1 && mdlen == WFO_SHA256_SIZE);
}

void wfo_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[WFO_SHA256_SIZE];
    wfo_sha256(data, len, md);
    wfo_hex(md, sizeof(md), out);
}

void wfo_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t len,
                     unsigned char out[WFO_SHA256_SIZE])
{
    unsigned int n = 0;
    if (!HMAC(EVP_sha256(), key ? key : "", (int)key_len, msg ? msg : (const void *)"", len, out,
              &n) ||
        n != WFO_SHA256_SIZE)
        wfo_assert(!"HMAC-SHA256 failed");
}

void wfo_hmac_sha256_hex(const void *key, size_t key_len, const void *msg, size_t len, char out[65])
{
    unsigned char md[WFO_SHA256_SIZE];
    wfo_hmac_sha256(key, key_len, msg, len, md);
    wfo_hex(md, sizeof(md), out);
}

void wfo_random_bytes(void *out, size_t n)
{
    int ok = RAND_bytes(out, (int)n);
    wfo_assert(ok == 1);
}

void wfo_random_hex(char *out, size_t n)
{
    unsigned char buf[64];
    wfo_assert(n <= sizeof(buf));
    wfo_random_bytes(buf, n);
    wfo_hex(buf, n, out);
}

int wfo_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}
