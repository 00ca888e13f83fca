/*
 * cron.c - five-field cron expressions in UTC (common/cron.h): parsing, and
 * the slots before and after a time. Slots are searched day by day over at
 * most 28 years (a full cycle of weekdays and leap years), so an expression
 * that matches no day (`0 0 30 2 *`) is found at parse time and refused.
 * Times use the proleptic Gregorian calendar without timegm(3).
 */
#include "common/compat.h"

#include <stdio.h>
#include <string.h>

#include "common/cron.h"

#define MIN_MS INT64_C(60000)
#define DAY_MIN 1440
#define SEARCH_DAYS (28 * 366)

static const struct cron_field {
    const char *name;
    int lo, hi;
} fields[5] = {
    {"minute", 0, 59}, {"hour", 0, 23},       {"day-of-month", 1, 31},
    {"month", 1, 12},  {"day-of-week", 0, 7}, /* 0 and 7 are Sunday */
};

static int num(const char **p, const char *end, int *out)
{
    const char *s = *p;
    int n = 0, digits = 0;

    while (s < end && *s >= '0' && *s <= '9') {
        if (n < 1000000)
            n = n * 10 + (*s - '0');
        digits++;
        s++;
    }
    if (!digits)
        return -1;
    *out = n;
    *p = s;
    return 0;
}

/* One field into the bits of *bits; 0 or -1 with the reason in why. */
static int field(const char *s, const char *end, const struct cron_field *f, uint64_t *bits,
                 char *why, size_t whysz)
{
    *bits = 0;
    while (s <= end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *ie = comma ? comma : end, *p = s;
        int a = f->lo, b = f->hi, step = 1, star = 0;

        if (p == ie) {
            snprintf(why, whysz, "%s: empty list item", f->name);
            return -1;
        }
        if (*p == '*') {
            star = 1;
            p++;
        } else {
            if (num(&p, ie, &a) < 0)
                goto bad;
            b = a;
            if (p < ie && *p == '-') {
                p++;
                if (num(&p, ie, &b) < 0)
                    goto bad;
            }
            if (a < f->lo || a > f->hi || b < f->lo || b > f->hi) {
                snprintf(why, whysz, "%s: %d is out of range %d-%d", f->name,
                         (a < f->lo || a > f->hi) ? a : b, f->lo, f->hi);
                return -1;
            }
            if (a > b) {
                snprintf(why, whysz, "%s: range %d-%d is backwards", f->name, a, b);
                return -1;
            }
        }
        if (p < ie && *p == '/') {
            int single = !star && a == b;
            p++;
            if (num(&p, ie, &step) < 0)
                goto bad;
            if (step < 1) {
                snprintf(why, whysz, "%s: step must be at least 1", f->name);
                return -1;
            }
            if (single) /* "5/10": from 5 to the end, like Vixie cron */
                b = f->hi;
        }
        if (p != ie)
            goto bad;
        for (int v = a; v <= b; v += step)
            *bits |= UINT64_C(1) << v;
        s = ie + 1;
        continue;
    bad:
        snprintf(why, whysz, "%s: bad item \"%.*s\"", f->name, (int)(ie - s > 40 ? 40 : ie - s), s);
        return -1;
    }
    return 0;
}

/* Days since 1970-01-01 to year, month (1-12), day (Howard Hinnant's
 * civil_from_days). */
static void civil(int64_t days, int *y, int *m, int *d)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static int64_t floordiv(int64_t a, int64_t b)
{
    return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

static int day_match(const struct wfo_cron *c, int64_t days)
{
    int y, m, d;
    civil(days, &y, &m, &d);
    int wd = (int)(((days % 7) + 11) % 7); /* 1970-01-01 was a Thursday (4) */
    if (!(c->month >> m & 1))
        return 0;
    int dm = (int)(c->dom >> d & 1), wm = (int)(c->dow >> wd & 1);
    if (c->dom_star || c->dow_star)
        return dm && wm;
    return dm || wm;
}

int wfo_cron_match(const struct wfo_cron *c, int64_t ms)
{
    int64_t m = floordiv(ms, MIN_MS), days = floordiv(m, DAY_MIN);
    int mod = (int)(m - days * DAY_MIN);
    return day_match(c, days) && (c->hour >> (mod / 60) & 1) && (c->minute >> (mod % 60) & 1);
}

/* The first matching minute of day `days` at or after minute `from` of
 * the day (dir 1), or at or before it (dir -1); -1 when none. */
static int in_day(const struct wfo_cron *c, int from, int dir)
{
    for (int mod = from; mod >= 0 && mod < DAY_MIN; mod += dir) {
        if (!(c->hour >> (mod / 60) & 1)) {
            /* skip to the hour's edge */
            mod = dir > 0 ? (mod / 60) * 60 + 59 : (mod / 60) * 60;
            continue;
        }
        if (c->minute >> (mod % 60) & 1)
            return mod;
    }
    return -1;
}

static int64_t search(const struct wfo_cron *c, int64_t m, int dir)
{
    int64_t days = floordiv(m, DAY_MIN);
    int from = (int)(m - days * DAY_MIN);
    for (int i = 0; i <= SEARCH_DAYS; i++, days += dir, from = dir > 0 ? 0 : DAY_MIN - 1) {
        if (!day_match(c, days))
            continue;
        int mod = in_day(c, from, dir);
        if (mod >= 0)
            return (days * DAY_MIN + mod) * MIN_MS;
    }
    return -1;
}

int64_t wfo_cron_prev(const struct wfo_cron *c, int64_t ms)
{
    return search(c, floordiv(ms, MIN_MS), -1);
}

int64_t wfo_cron_next(const struct wfo_cron *c, int64_t ms)
{
    return search(c, floordiv(ms, MIN_MS) + 1, 1);
}

int wfo_cron_parse(const char *text, struct wfo_cron *out, char *why, size_t whysz)
{
    const char *start[6], *end[6], *p = text;
    uint64_t bits[5];
    int n = 0;

    memset(out, 0, sizeof(*out));
    while (*p) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        if (n < 6)
            start[n] = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        if (n < 6)
            end[n] = p;
        n++;
    }
    if (n != 5) {
        snprintf(why, whysz,
                 "expected 5 fields (minute hour day-of-month month day-of-week), got %d", n);
        return -1;
    }
    for (int i = 0; i < 5; i++)
        if (field(start[i], end[i], &fields[i], &bits[i], why, whysz) < 0)
            return -1;
    out->minute = bits[0];
    out->hour = (uint32_t)bits[1];
    out->dom = (uint32_t)bits[2];
    out->month = (uint16_t)bits[3];
    out->dow = (uint8_t)((bits[4] | (bits[4] >> 7)) & 0x7f); /* 7 is Sunday */
    out->dom_star = *start[2] == '*';
    out->dow_star = *start[4] == '*';
    if (wfo_cron_next(out, 0) < 0) {
        snprintf(why, whysz, "never fires (no day matches)");
        return -1;
    }
    return 0;
}
