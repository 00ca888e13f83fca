/*
 * crypto.h - the one door to OpenSSL (STYLE: each foreign library from one
 * adapter file): SHA-256, HMAC-SHA256, random bytes from the CSPRNG and a
 * constant-time comparison. docs/operations/security.md says what each is
 * used for (token digests, leases, cursors, webhook signatures).
 */
#ifndef WFO_COMMON_CRYPTO_H
#define WFO_COMMON_CRYPTO_H

#include <stddef.h>

#define WFO_SHA256_SIZE 32

/* SHA-256 of data[0..len). */
void wfo_sha256(const void *data, size_t len, unsigned char out[WFO_SHA256_SIZE]);
/* The same as lowercase hex (65 bytes with NUL). */
void wfo_sha256_hex(const void *data, size_t len, char out[65]);
/* HMAC-SHA256 (RFC 2104) of msg keyed with key (any length, NULL/0 ok). */
void wfo_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t len,
                     unsigned char out[WFO_SHA256_SIZE]);
void wfo_hmac_sha256_hex(const void *key, size_t key_len, const void *msg, size_t len,
                         char out[65]);
/* n bytes from OpenSSL's CSPRNG; asserts when it cannot give them (wfo
 * never falls back to a weaker source). */
void wfo_random_bytes(void *out, size_t n);
/* n random bytes as 2n lowercase hex digits and a NUL (out holds 2n + 1). */
void wfo_random_hex(char *out, size_t n);
/* 1 when a[0..n) equals b[0..n), in time that depends only on n. */
int wfo_ct_equal(const void *a, const void *b, size_t n);
/* Lowercase hex of data[0..n) into out (2n + 1 bytes). */
void wfo_hex(const void *data, size_t n, char *out);
/* Parses 2n hex digits (either case) into out[0..n); -1 when s is not
 * exactly that. */
int wfo_unhex(const char *s, unsigned char *out, size_t n);

#endif
