/*
 * crypto.c - SHA-256, HMAC-SHA256, the CSPRNG and constant-time compares,
 * through OpenSSL: the only file of wfo that includes an OpenSSL header
 * (crypto.h). docs/operations/security.md.
 */
#include "common/compat.h"

#include <pthread.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
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

/* SHA-256 fetched once: EVP_sha256() makes OpenSSL 3 look the algorithm
 * up again on every use, and its one-shot HMAC() does that and more (2.0
 * us a call here, against 0.4 us below). */
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *sha256(void)
{
    pthread_once(&sha256_once, sha256_fetch);
    wfo_assert(sha256_md);
    return sha256_md;
}

void wfo_sha256(const void *data, size_t len, unsigned char out[WFO_SHA256_SIZE])
{
    unsigned int mdlen = 0;
    int ok = EVP_Digest(data ? data : (const void *)"", len, out, &mdlen, sha256(), NULL);
    wfo_assert(ok == 1 && mdlen == WFO_SHA256_SIZE);
}

void wfo_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[WFO_SHA256_SIZE];
    wfo_sha256(data, len, md);
    wfo_hex(md, sizeof(md), out);
}

/* HMAC as RFC 2104 writes it: SHA-256((K ^ opad) || SHA-256((K ^ ipad) ||
 * msg)), K the key padded to the 64-byte block (hashed first when
 * longer). */
void wfo_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t len,
                     unsigned char out[WFO_SHA256_SIZE])
{
    enum { BLOCK = 64 };
    unsigned char k[BLOCK] = {0}, pad[BLOCK], inner[WFO_SHA256_SIZE];
    unsigned int n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL;

    if (key_len > BLOCK)
        wfo_sha256(key, key_len, k);
    else if (key_len)
        memcpy(k, key, key_len);
    for (int i = 0; i < BLOCK; i++)
        pad[i] = k[i] ^ 0x36;
    ok = ok && EVP_DigestInit_ex(ctx, sha256(), NULL) == 1 &&
         EVP_DigestUpdate(ctx, pad, BLOCK) == 1 &&
         EVP_DigestUpdate(ctx, msg ? msg : (const void *)"", len) == 1 &&
         EVP_DigestFinal_ex(ctx, inner, &n) == 1;
    for (int i = 0; i < BLOCK; i++)
        pad[i] = k[i] ^ 0x5c;
    ok = ok && EVP_DigestInit_ex(ctx, sha256(), NULL) == 1 &&
         EVP_DigestUpdate(ctx, pad, BLOCK) == 1 &&
         EVP_DigestUpdate(ctx, inner, sizeof(inner)) == 1 && EVP_DigestFinal_ex(ctx, out, &n) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(pad, sizeof(pad));
    if (!ok || n != WFO_SHA256_SIZE)
        wfo_assert(!"HMAC-SHA256 failed");
}

void wfo_hmac_sha256_hex(const void *key, size_t key_len, const void *msg, size_t len, char out[65])
{
    unsigned char md[WFO_SHA256_SIZE];
    wfo_hmac_sha256(key, key_len, msg, len, md);
    wfo_hex(md, sizeof(md), out);
}

/* Random bytes are drawn from OpenSSL's DRBG a block at a time, kept per
 * thread and handed out once each, wiped as they go: every RAND_bytes
 * call sets its cipher up again (about 2 us; 2% of the server's CPU in
 * bench http, where each task lease draws 16 bytes). A forked child
 * forgets the block its forking thread held (the parent hands those bytes
 * out too). Requests of more than half a block go to the DRBG directly. */
#define RAND_BLOCK 512

struct rand_pool {
    unsigned char b[RAND_BLOCK];
    size_t used; /* b[used..) not handed out yet */
};

static _Thread_local struct rand_pool rand_pool = {.used = RAND_BLOCK};
static pthread_once_t rand_once = PTHREAD_ONCE_INIT;

static void rand_forget(void)
{
    OPENSSL_cleanse(rand_pool.b, sizeof(rand_pool.b));
    rand_pool.used = RAND_BLOCK;
}

static void rand_atfork(void)
{
    pthread_atfork(NULL, NULL, rand_forget);
}

void wfo_random_bytes(void *out, size_t n)
{
    struct rand_pool *p = &rand_pool;
    if (n > RAND_BLOCK / 2) {
        int ok = RAND_bytes(out, (int)n);
        wfo_assert(ok == 1);
        return;
    }
    if (RAND_BLOCK - p->used < n) {
        pthread_once(&rand_once, rand_atfork);
        int ok = RAND_bytes(p->b, RAND_BLOCK);
        wfo_assert(ok == 1);
        p->used = 0;
    }
    memcpy(out, p->b + p->used, n);
    OPENSSL_cleanse(p->b + p->used, n);
    p->used += n;
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
