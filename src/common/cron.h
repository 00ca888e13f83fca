/*
 * cron.h - five-field cron expressions (SPEC 2.5 triggers): minute hour
 * day-of-month month day-of-week, in UTC, with `*`, numbers, ranges `1-5`,
 * steps `* /5` and `10-50/10`, and lists `1,15`. Day-of-week 0 and 7 are
 * both Sunday. When neither day field starts with `*`, a day matches when
 * either does (Vixie cron's rule); otherwise both must. No names (`MON`),
 * no `@daily`, no time zones. Pure: no clock, no allocation.
 */
#ifndef WFO_COMMON_CRON_H
#define WFO_COMMON_CRON_H

#include <stddef.h>
#include <stdint.h>

struct wfo_cron {
    uint64_t minute; /* bit n: minute n */
    uint32_t hour;
    uint32_t dom;           /* bits 1-31 */
    uint16_t month;         /* bits 1-12 */
    uint8_t dow;            /* bits 0-6, Sunday 0 */
    int dom_star, dow_star; /* the field starts with '*' */
};

/* Parses text into *out: 0, or -1 with the reason in why ("expected 5
 * fields ...", "hour: 24 is out of range 0-23", "never fires"). */
int wfo_cron_parse(const char *text, struct wfo_cron *out, char *why, size_t whysz);
/* Does the minute that starts at ms (or contains it) match? */
int wfo_cron_match(const struct wfo_cron *c, int64_t ms);
/* The latest slot (a minute's start, ms since the epoch) at or before ms;
 * -1 when none in the 28 years before. */
int64_t wfo_cron_prev(const struct wfo_cron *c, int64_t ms);
/* The first slot strictly after ms; -1 when none in the 28 years after. */
int64_t wfo_cron_next(const struct wfo_cron *c, int64_t ms);

#endif
