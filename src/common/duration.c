/*
 * duration.c - durations ("1.5s", "250ms", "2h": SPEC 2.1) and RFC 3339
 * times, all in milliseconds (common/duration.h; docs/interfaces/internal.md,
 * "Common building blocks").
 *
 * Durations are parsed with integer arithmetic only, so "0.1s" is exactly
 * 100 ms; fractions of a millisecond round half up. wfo_duration_format
 * writes a text that wfo_duration_parse reads back to the same value.
 * Times use the proleptic Gregorian calendar in UTC, without timegm(3) and
 * its dependence on the process's time zone.
 */
#include "common/compat.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/duration.h"
#include "common/error.h"

#define MS_PER_S INT64_C(1000)
#define MS_PER_M (60 * MS_PER_S)
#define MS_PER_H (60 * MS_PER_M)
#define MS_PER_D (24 * MS_PER_H)
/* "must fit in 100 years" (duration.h): 36,525 days. */
#define DURATION_MAX (36525 * MS_PER_D)

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int wfo_duration_parse(const char *s, int64_t *ms)
{
    unsigned __int128 whole = 0, frac = 0, scale = 1, total;
    const char *p = s;
    int64_t unit;
    int ndigits = 0;

    if (!s || !is_digit(*p))
        return WFO_EINVAL;
    for (; is_digit(*p); p++) {
        whole = whole * 10 + (unsigned)(*p - '0');
        if (whole > (unsigned __int128)DURATION_MAX)
            return WFO_EINVAL;
    }
    if (*p == '.') {
        p++;
        if (!is_digit(*p))
            return WFO_EINVAL;
        for (; is_digit(*p); p++) {
            /* Digits past the 18th cannot change a millisecond count. */
            if (ndigits++ < 18) {
                frac = frac * 10 + (unsigned)(*p - '0');
                scale *= 10;
            }
        }
    }
    if (strcmp(p, "ms") == 0)
        unit = 1;
    else if (strcmp(p, "s") == 0)
        unit = MS_PER_S;
    else if (strcmp(p, "m") == 0)
        unit = MS_PER_M;
    else if (strcmp(p, "h") == 0)
        unit = MS_PER_H;
    else if (strcmp(p, "d") == 0)
        unit = MS_PER_D;
    else
        return WFO_EINVAL;
    total = whole * (unsigned)unit + (frac * (unsigned)unit + scale / 2) / scale;
    if (total > (unsigned __int128)DURATION_MAX)
        return WFO_EINVAL;
    *ms = (int64_t)total;
    return 0;
}

int wfo_duration_parse_text(const char *s, int64_t *ms)
{
    int64_t v = 0;
    const char *p = s;

    if (!s || !is_digit(*p))
        return WFO_EINVAL;
    for (; is_digit(*p); p++) {
        v = v * 10 + (*p - '0');
        if (v > DURATION_MAX)
            return WFO_EINVAL;
    }
    if (*p)
        return wfo_duration_parse(s, ms);
    *ms = v;
    return 0;
}

void wfo_duration_format(int64_t ms, char *out, size_t size)
{
    const char *sign = "";
    uint64_t v = (uint64_t)ms;
    char frac[8];
    int n;

    if (ms < 0) {
        sign = "-";
        v = 0 - v;
    }
    if (v == 0)
        snprintf(out, size, "0s");
    else if (v % MS_PER_D == 0)
        snprintf(out, size, "%s%llud", sign, (unsigned long long)(v / MS_PER_D));
    else if (v % MS_PER_H == 0)
        snprintf(out, size, "%s%lluh", sign, (unsigned long long)(v / MS_PER_H));
    else if (v % MS_PER_M == 0)
        snprintf(out, size, "%s%llum", sign, (unsigned long long)(v / MS_PER_M));
    else if (v % MS_PER_S == 0)
        snprintf(out, size, "%s%llus", sign, (unsigned long long)(v / MS_PER_S));
    else if (v < 1000)
        snprintf(out, size, "%s%llums", sign, (unsigned long long)v);
    else {
        n = snprintf(frac, sizeof(frac), "%03u", (unsigned)(v % 1000));
        while (n > 0 && frac[n - 1] == '0')
            frac[--n] = '\0';
        snprintf(out, size, "%s%llu.%ss", sign, (unsigned long long)(v / 1000), frac);
    }
}

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t wfo_now_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

int64_t wfo_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

double wfo_mono_ms_f(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t era;
    unsigned doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

void wfo_time_format(int64_t ms, char *out, size_t size)
{
    int64_t days = floor_div(ms, MS_PER_D), rem = ms - days * MS_PER_D, y;
    unsigned m, d;

    civil_from_days(days, &y, &m, &d);
    unsigned hh = (unsigned)(rem / MS_PER_H), mi = (unsigned)(rem / MS_PER_M % 60),
             ss = (unsigned)(rem / MS_PER_S % 60), ms3 = (unsigned)(rem % 1000);
    if (y < 0 || y > 9999 || size < 25) { /* not RFC 3339's range: printf's way */
        snprintf(out, size, "%04lld-%02u-%02uT%02u:%02u:%02u.%03uZ", (long long)y, m, d, hh, mi, ss,
                 ms3);
        return;
    }
    /* digit by digit: documents and log lines write several a request */
    static const char pat[] = "0000-00-00T00:00:00.000Z";
    memcpy(out, pat, sizeof(pat));
    unsigned v[][2] = {{(unsigned)y, 4}, {m, 2}, {d, 2}, {hh, 2}, {mi, 2}, {ss, 2}, {ms3, 3}};
    static const int at[] = {0, 5, 8, 11, 14, 17, 20};
    for (int f = 0; f < 7; f++)
        for (unsigned i = v[f][1], x = v[f][0]; i-- > 0; x /= 10)
            out[at[f] + (int)i] = (char)('0' + x % 10);
}

/* Reads exactly n digits. */
static int time_digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!is_digit((*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int wfo_time_parse(const char *s, int64_t *ms)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, sec, frac = 0, oh = 0, om = 0, sign = 0;
    const char *p = s;
    int64_t t;

    if (!s)
        return WFO_EINVAL;
    if (time_digits(&p, 4, &y) || *p++ != '-' || time_digits(&p, 2, &mo) || *p++ != '-' ||
        time_digits(&p, 2, &d))
        return WFO_EINVAL;
    if (*p != 'T' && *p != 't' && *p != ' ')
        return WFO_EINVAL;
    p++;
    if (time_digits(&p, 2, &h) || *p++ != ':' || time_digits(&p, 2, &mi) || *p++ != ':' ||
        time_digits(&p, 2, &sec))
        return WFO_EINVAL;
    if (*p == '.') {
        int n = 0;

        p++;
        if (!is_digit(*p))
            return WFO_EINVAL;
        /* Milliseconds: the digits past the third are dropped. */
        for (; is_digit(*p); p++, n++)
            if (n < 3)
                frac = frac * 10 + (*p - '0');
        for (; n < 3; n++)
            frac *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p++ == '-' ? -1 : 1;
        if (time_digits(&p, 2, &oh) || *p++ != ':' || time_digits(&p, 2, &om))
            return WFO_EINVAL;
    } else {
        return WFO_EINVAL;
    }
    if (*p != '\0')
        return WFO_EINVAL;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && is_leap(y)) || h > 23 ||
        mi > 59 || sec > 60 || oh > 23 || om > 59)
        return WFO_EINVAL;
    /* A leap second (:60) reads as the first second of the next minute. */
    t = days_from_civil(y, (unsigned)mo, (unsigned)d) * MS_PER_D + h * MS_PER_H + mi * MS_PER_M +
        sec * MS_PER_S + frac;
    t -= sign * (oh * MS_PER_H + om * MS_PER_M);
    /* Only instants that wfo_time_format writes back as RFC 3339 (years
     * 0000 to 9999 in UTC): a leap second or an offset may push a time
     * just past either end (found by tests/fuzz/fuzz_time.c). */
    if (t < days_from_civil(0, 1, 1) * MS_PER_D ||
        t > days_from_civil(9999, 12, 31) * MS_PER_D + MS_PER_D - 1)
        return WFO_EINVAL;
    *ms = t;
    return 0;
}
