/*
 * util.c - checked allocation, whole-file reads, random numbers, UUIDv7 ids,
 * SHA-256 and strict integer parsing (common/util.h; docs/interfaces/internal.md,
 * "Common building blocks").
 *
 * Ids (RFC 9562 UUIDv7, "method 1" of section 6.2): 48 bits of Unix
 * milliseconds, version 7, then a 42-bit counter split over rand_a (12 bits)
 * and the top 30 bits of rand_b, then 32 random bits. Invariant: the pair
 * (id_last_ms, id_last_seq) strictly increases with each id made by this
 * process, so ids compare as text in the order they were made, even within
 * one millisecond and when the wall clock steps back.
 */
#include "common/compat.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

/* ---- allocation ---- */

static _Noreturn void util_oom(size_t n)
{
    char msg[96];
    int len = snprintf(msg, sizeof(msg), "wfo: out of memory allocating %zu bytes\n", n);

    if (len > 0 && write(STDERR_FILENO, msg, (size_t)len) < 0)
        len = 0;
    abort();
}

void *wfo_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (!p)
        util_oom(n);
    return p;
}

void *wfo_calloc(size_t n, size_t size)
{
    void *p;

    if (n == 0 || size == 0)
        n = size = 1;
    p = calloc(n, size);
    if (!p)
        util_oom(n * size);
    return p;
}

void *wfo_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    if (!q)
        util_oom(n);
    return q;
}

char *wfo_strdup(const char *s)
{
    return wfo_strndup(s, strlen(s));
}

char *wfo_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = wfo_malloc(len + 1);

    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

/* ---- files ---- */

int wfo_read_file(const char *path, struct wfo_buf *b, struct wfo_error *err)
{
    int is_stdin = strcmp(path, "-") == 0;
    size_t start = b->len;
    int fd = -1, rc = 0;
    char name[300];

    if (is_stdin)
        snprintf(name, sizeof(name), "standard input");
    else
        snprintf(name, sizeof(name), "'%s'", path);
    fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = wfo_error_set(err, WFO_EIO, "cannot read %s: %s", name, strerror(errno));
        goto out;
    }
    for (;;) {
        size_t room = 65536;
        ssize_t n;

        if (b->max && b->len >= b->max) {
            char c;

            /* At the bound: one more byte means too big. */
            do
                n = read(fd, &c, 1);
            while (n < 0 && errno == EINTR);
            if (n == 0)
                break;
            if (n > 0) {
                rc = wfo_error_set(err, WFO_ETOOBIG, "cannot read %s: larger than %zu bytes", name,
                                   b->max - start);
                goto out;
            }
        } else {
            if (b->max && room > b->max - b->len)
                room = b->max - b->len;
            rc = wfo_buf_grow(b, room);
            if (rc < 0) {
                rc = wfo_error_set(err, rc, "cannot read %s: too large", name);
                goto out;
            }
            n = read(fd, b->buf + b->len, room);
            if (n == 0)
                break;
            if (n > 0) {
                b->len += (size_t)n;
                b->buf[b->len] = '\0';
                continue;
            }
        }
        if (errno == EINTR)
            continue;
        rc = wfo_error_set(err, WFO_EIO, "cannot read %s: %s", name, strerror(errno));
        goto out;
    }
out:
    if (fd >= 0 && !is_stdin)
        close(fd);
    if (rc < 0) {
        b->len = start;
        if (b->alloc)
            b->buf[b->len] = '\0';
    }
    return rc;
}

/* ---- random numbers ---- */

/* Per-thread xoshiro256** seeded from getrandom(2), reseeded after fork:
 * the child's one thread (the one that forked) forgets its seed in an
 * atfork handler, rather than asking getpid(2) at every draw (a system
 * call each time: 3% of the engine thread, bench engine). */
struct util_rng {
    uint64_t s[4];
    int seeded;
};

static _Thread_local struct util_rng util_rng;
static pthread_once_t util_rng_once = PTHREAD_ONCE_INIT;

static void util_rng_forget(void)
{
    util_rng.seeded = 0;
}

static void util_rng_atfork(void)
{
    pthread_atfork(NULL, NULL, util_rng_forget);
}

static uint64_t util_splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void util_rng_seed(struct util_rng *r)
{
    uint64_t seed[4] = {0};
    struct timespec ts;
    uint64_t x;

    if (getrandom(seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
        clock_gettime(CLOCK_REALTIME, &ts);
        seed[0] = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        seed[1] = (uint64_t)getpid();
        seed[2] = (uint64_t)(uintptr_t)r;
    }
    x = seed[0] ^ seed[1] ^ seed[2] ^ seed[3];
    for (int i = 0; i < 4; i++)
        r->s[i] = seed[i] ^ util_splitmix(&x);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3]))
        r->s[0] = 1;
    r->seeded = 1;
}

static inline uint64_t util_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t util_rand64(void)
{
    struct util_rng *r = &util_rng;
    uint64_t result, t;

    if (!r->seeded) {
        pthread_once(&util_rng_once, util_rng_atfork);
        util_rng_seed(r);
    }
    result = util_rotl(r->s[1] * 5, 7) * 9;
    t = r->s[1] << 17;
    r->s[2] ^= r->s[0];
    r->s[3] ^= r->s[1];
    r->s[1] ^= r->s[2];
    r->s[0] ^= r->s[3];
    r->s[2] ^= t;
    r->s[3] = util_rotl(r->s[3], 45);
    return result;
}

double wfo_random(void)
{
    return (double)(util_rand64() >> 11) * 0x1.0p-53;
}

/* ---- ids ---- */

#define ID_SEQ_BITS 42
#define ID_SEQ_MAX ((UINT64_C(1) << ID_SEQ_BITS) - 1)

static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t id_last_ms, id_last_seq;

void wfo_id_new(char out[WFO_ID_SIZE])
{
    static const char hex[] = "0123456789abcdef";
    struct timespec ts;
    uint64_t ms, seq, r = util_rand64();
    unsigned char u[16];
    int k = 0;

    clock_gettime(CLOCK_REALTIME, &ts);
    ms = ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000) & 0xFFFFFFFFFFFFull;

    pthread_mutex_lock(&id_lock);
    if (ms > id_last_ms) {
        /* A fresh random start with the top bit clear leaves room to count. */
        seq = (r >> 32) & (ID_SEQ_MAX >> 1);
    } else {
        ms = id_last_ms;
        seq = id_last_seq + 1 + ((r >> 32) & 0xFF);
        if (seq > ID_SEQ_MAX) {
            ms++;
            seq = (r >> 32) & (ID_SEQ_MAX >> 1);
        }
    }
    id_last_ms = ms;
    id_last_seq = seq;
    pthread_mutex_unlock(&id_lock);

    for (int i = 0; i < 6; i++)
        u[i] = (unsigned char)(ms >> (40 - 8 * i));
    u[6] = (unsigned char)(0x70 | ((seq >> 38) & 0x0F)); /* version 7, rand_a */
    u[7] = (unsigned char)(seq >> 30);
    u[8] = (unsigned char)(0x80 | ((seq >> 24) & 0x3F)); /* variant 10 */
    u[9] = (unsigned char)(seq >> 16);
    u[10] = (unsigned char)(seq >> 8);
    u[11] = (unsigned char)seq;
    for (int i = 0; i < 4; i++)
        u[12 + i] = (unsigned char)(r >> (8 * i));

    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[k++] = '-';
        out[k++] = hex[u[i] >> 4];
        out[k++] = hex[u[i] & 0x0F];
    }
    out[k] = '\0';
}

/* ---- integers ---- */

size_t wfo_int_text(long long n, char out[WFO_INT_TEXT_SIZE])
{
    char tmp[WFO_INT_TEXT_SIZE];
    unsigned long long u = n < 0 ? 0ULL - (unsigned long long)n : (unsigned long long)n;
    char *p = tmp + sizeof(tmp);
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (n < 0)
        *--p = '-';
    size_t len = (size_t)(tmp + sizeof(tmp) - p);
    memcpy(out, p, len);
    out[len] = 0;
    return len;
}

int wfo_parse_int64(const char *s, int64_t *out)
{
    const char *p = s;
    char *end;
    long long v;

    if (!s)
        return WFO_EINVAL;
    if (*p == '-')
        p++;
    if (*p < '0' || *p > '9')
        return WFO_EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end != '\0')
        return WFO_EINVAL;
    *out = (int64_t)v;
    return 0;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid
 * or NUL (util.h says why). */
size_t wfo_utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t need;
    uint32_t cp;

    if (c < 0x80)
        return c ? 1 : 0;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((need == 3 && cp < 0x800) || (need == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return need;
}

size_t wfo_utf8_span(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;

    while (i < n) {
        size_t len = wfo_utf8_len(u + i, n - i);
        if (!len)
            break;
        i += len;
    }
    return i;
}

size_t wfo_utf8_chars(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s), i = 0, chars = 0;

    while (i < n) {
        size_t len = wfo_utf8_len(u + i, n - i);
        i += len ? len : 1;
        chars++;
    }
    return chars;
}

size_t wfo_utf8_cut(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
        max--;
    return max;
}

int64_t wfo_utf8_scrub(struct wfo_buf *b, const char *s, size_t n, size_t max)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    int rc;

    while (i < n) {
        size_t len = wfo_utf8_len(u + i, n - i);
        if (b->len + (len ? len : 3) > max)
            break;
        if (len)
            rc = wfo_buf_add(b, s + i, len);
        else
            rc = wfo_buf_adds(b, "\xef\xbf\xbd"); /* U+FFFD */
        if (rc < 0)
            return rc;
        i += len ? len : 1;
    }
    return (int64_t)i;
}

int wfo_type_matches(const char *pattern, const char *type)
{
    size_t n = strlen(pattern);
    if (strcmp(pattern, "*") == 0 || strcmp(pattern, type) == 0)
        return 1;
    /* "prefix.*": every type that starts with "prefix." */
    return n >= 2 && pattern[n - 1] == '*' && pattern[n - 2] == '.' &&
           strncmp(type, pattern, n - 1) == 0;
}
