/*
 * tap.h - a tiny TAP producer for unit tests (libuv test/runner.c in
 * spirit): each test is a function; tests/unit/run.sh runs each binary in
 * its own process with a timeout.
 *
 *   TEST(name) { ok(1 + 1 == 2, "adds"); is_int(f(), 3, "f"); }
 *   int main(void) { return tap_run(); }
 */
#ifndef WFO_TESTS_TAP_H
#define WFO_TESTS_TAP_H

#include <stdio.h>
#include <string.h>

typedef void (*tap_fn)(void);
struct tap_case {
    const char *name;
    tap_fn fn;
};
static struct tap_case tap_cases[256];
static int tap_ncases, tap_count, tap_failed;

#define TEST(tname_)                                                                               \
    static void test_##tname_(void);                                                               \
    __attribute__((constructor)) static void reg_##tname_(void)                                    \
    {                                                                                              \
        tap_cases[tap_ncases].name = #tname_;                                                      \
        tap_cases[tap_ncases++].fn = test_##tname_;                                                \
    }                                                                                              \
    static void test_##tname_(void)

#define ok(cond, ...)                                                                              \
    do {                                                                                           \
        int ok_ = !!(cond);                                                                        \
        tap_count++;                                                                               \
        if (!ok_)                                                                                  \
            tap_failed++;                                                                          \
        printf("%sok %d - ", ok_ ? "" : "not ", tap_count);                                        \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
        if (!ok_)                                                                                  \
            printf("#   failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);                        \
    } while (0)

#define is_int(got, want, ...)                                                                     \
    do {                                                                                           \
        long long g_ = (long long)(got), w_ = (long long)(want);                                   \
        ok(g_ == w_, __VA_ARGS__);                                                                 \
        if (g_ != w_)                                                                              \
            printf("#   got %lld, want %lld\n", g_, w_);                                           \
    } while (0)

#define is_str(got, want, ...)                                                                     \
    do {                                                                                           \
        const char *g_ = (got), *w_ = (want);                                                      \
        int e_ = (g_ && w_) ? strcmp(g_, w_) == 0 : g_ == w_;                                      \
        ok(e_, __VA_ARGS__);                                                                       \
        if (!e_)                                                                                   \
            printf("#   got \"%s\", want \"%s\"\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)");       \
    } while (0)

static inline int tap_run(void)
{
    for (int i = 0; i < tap_ncases; i++) {
        printf("# %s\n", tap_cases[i].name);
        tap_cases[i].fn();
        fflush(stdout);
    }
    printf("1..%d\n", tap_count);
    return tap_failed ? 1 : 0;
}

#endif
