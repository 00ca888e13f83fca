/*
 * check.h - the invariant checks of the state machine and the engine
 * (docs/interfaces/internal.md, "Invariant checks").
 *
 * Each *_check() function returns NULL when its invariants hold, else the
 * name of the first broken one ("I2", "E4", ...) with what broke written to
 * its why buffer; it never aborts, so a unit test can call it on a state
 * made broken on purpose. WFO_CHECK() is how the code calls them: built
 * with -DWFO_CHECKS (the ASan build that `make unit` and `make blackbox`
 * run) it aborts the process with the invariant's name when one is broken,
 * like git's BUG(); in the release build it compiles to nothing.
 */
#ifndef WFO_CORE_CHECK_H
#define WFO_CORE_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK_WHY_SIZE 256

/* For a *_check(): writes what broke to why and returns name. */
static inline const char *check_broken(char *why, size_t n, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline const char *check_broken(char *why, size_t n, const char *name, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return name;
}

/* An invariant is broken: says which and aborts. */
static inline void check_fail(const char *name, const char *why, const char *file, int line)
{
    fprintf(stderr, "wfo: invariant %s broken at %s:%d: %s\n", name, file, line, why);
    fflush(stderr);
    abort();
}

#ifdef WFO_CHECKS
/* WFO_CHECK(fsm_check, f, x) calls fsm_check(f, x, why, sizeof(why)). */
#define WFO_CHECK(fn, ...)                                                                         \
    do {                                                                                           \
        char why_[CHECK_WHY_SIZE] = "";                                                            \
        const char *broken_ = fn(__VA_ARGS__, why_, sizeof(why_));                                 \
        if (broken_)                                                                               \
            check_fail(broken_, why_, __FILE__, __LINE__);                                         \
    } while (0)
#else
#define WFO_CHECK(fn, ...) ((void)0)
#endif

#endif
