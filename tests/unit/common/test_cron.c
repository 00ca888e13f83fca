/*
 * test_cron.c - unit tests of src/common/cron.c: parsing five-field cron
 * expressions, matching, and the slots before and after a time (UTC).
 */
#include "common/compat.h"

#include <stdint.h>
#include <string.h>

#include "common/cron.h"
#include "common/duration.h"
#include "../tap.h"

static int64_t t(const char *s)
{
    int64_t ms = -1;
    wfo_time_parse(s, &ms);
    return ms;
}

static struct wfo_cron cr(const char *text)
{
    struct wfo_cron c;
    char why[200];
    if (wfo_cron_parse(text, &c, why, sizeof(why)) < 0)
        memset(&c, 0, sizeof(c));
    return c;
}

static const char *why_of(const char *text)
{
    static char why[200];
    struct wfo_cron c;
    if (wfo_cron_parse(text, &c, why, sizeof(why)) == 0)
        return "(valid)";
    return why;
}

static int64_t prev(const char *expr, const char *at)
{
    struct wfo_cron c = cr(expr);
    return wfo_cron_prev(&c, t(at));
}

static int64_t next(const char *expr, const char *at)
{
    struct wfo_cron c = cr(expr);
    return wfo_cron_next(&c, t(at));
}

TEST(cron_parse_errors)
{
    is_str(why_of("* * * * *"), "(valid)", "every minute");
    is_str(why_of("*/5 1-5 1,15 */2 0-7"), "(valid)", "steps, ranges, lists");
    is_str(why_of("every minute"),
           "expected 5 fields (minute hour day-of-month month "
           "day-of-week), got 2",
           "two fields");
    is_str(why_of("* * * * * *"),
           "expected 5 fields (minute hour day-of-month month "
           "day-of-week), got 6",
           "six fields");
    is_str(why_of(""), "expected 5 fields (minute hour day-of-month month day-of-week), got 0",
           "empty");
    is_str(why_of("60 * * * *"), "minute: 60 is out of range 0-59", "minute 60");
    is_str(why_of("* 24 * * *"), "hour: 24 is out of range 0-23", "hour 24");
    is_str(why_of("* * 0 * *"), "day-of-month: 0 is out of range 1-31", "day 0");
    is_str(why_of("* * * 13 *"), "month: 13 is out of range 1-12", "month 13");
    is_str(why_of("* * * * 8"), "day-of-week: 8 is out of range 0-7", "dow 8");
    is_str(why_of("5-1 * * * *"), "minute: range 5-1 is backwards", "backwards");
    is_str(why_of("*/0 * * * *"), "minute: step must be at least 1", "step 0");
    is_str(why_of("1,,2 * * * *"), "minute: empty list item", "empty item");
    is_str(why_of("MON * * * *"), "minute: bad item \"MON\"", "names are not supported");
    is_str(why_of("1-2-3 * * * *"), "minute: bad item \"1-2-3\"", "double range");
    is_str(why_of("0 0 30 2 *"), "never fires (no day matches)", "Feb 30");
    is_str(why_of("0 0 31 4,6,9,11 *"), "never fires (no day matches)", "31st of short months");
    is_str(why_of("0 0 29 2 *"), "(valid)", "Feb 29 is a day");
}

TEST(cron_fields)
{
    struct wfo_cron c = cr("*/15 1-3 1,15 * 7");
    is_int((long long)c.minute,
           (long long)((1ULL << 0) | (1ULL << 15) | (1ULL << 30) | (1ULL << 45)), "*/15");
    is_int(c.hour, 0xe, "1-3");
    is_int(c.dom, (1 << 1) | (1 << 15), "1,15");
    is_int(c.dow, 1, "7 is Sunday");
    c = cr("10-50/20 5/6 * * 0");
    is_int((long long)c.minute, (long long)((1ULL << 10) | (1ULL << 30) | (1ULL << 50)),
           "range with step");
    is_int(c.hour, (1 << 5) | (1 << 11) | (1 << 17) | (1 << 23), "5/6: from 5 to the end");
    is_int(c.dow, 1, "0 is Sunday");
    ok(c.dom_star && !c.dow_star, "stars");
}

TEST(cron_prev_next)
{
    is_int(prev("* * * * *", "2026-03-04T10:20:30.5Z"), t("2026-03-04T10:20:00Z"), "the minute");
    is_int(prev("* * * * *", "2026-03-04T10:20:00Z"), t("2026-03-04T10:20:00Z"),
           "a slot is at or before itself");
    is_int(next("* * * * *", "2026-03-04T10:20:00Z"), t("2026-03-04T10:21:00Z"),
           "next is strictly after");
    is_int(prev("*/5 * * * *", "2026-03-04T10:24:59Z"), t("2026-03-04T10:20:00Z"), "*/5 prev");
    is_int(next("*/5 * * * *", "2026-03-04T10:24:59Z"), t("2026-03-04T10:25:00Z"), "*/5 next");
    is_int(prev("30 9 * * 1-5", "2026-03-08T12:00:00Z"), t("2026-03-06T09:30:00Z"),
           "weekdays: Sunday looks back to Friday");
    is_int(next("30 9 * * 1-5", "2026-03-06T09:30:00Z"), t("2026-03-09T09:30:00Z"),
           "weekdays: Friday's next is Monday");
    is_int(next("0 0 1 1 *", "2026-06-01T00:00:00Z"), t("2027-01-01T00:00:00Z"), "yearly");
    is_int(prev("0 0 1 1 *", "2026-06-01T00:00:00Z"), t("2026-01-01T00:00:00Z"), "yearly prev");
    is_int(next("59 23 31 12 *", "2026-12-31T23:59:00Z"), t("2027-12-31T23:59:00Z"), "year end");
}

TEST(cron_feb29)
{
    is_int(next("0 12 29 2 *", "2026-01-01T00:00:00Z"), t("2028-02-29T12:00:00Z"),
           "next Feb 29 is in 2028");
    is_int(prev("0 12 29 2 *", "2026-01-01T00:00:00Z"), t("2024-02-29T12:00:00Z"),
           "previous Feb 29 is in 2024");
    is_int(next("0 0 29 2 *", "2096-03-01T00:00:00Z"), t("2104-02-29T00:00:00Z"),
           "2100 is not a leap year");
}

TEST(cron_dom_dow_or)
{
    /* both restricted: either matches (Vixie cron) */
    is_int(next("0 0 13 * 5", "2026-03-01T00:00:00Z"), t("2026-03-06T00:00:00Z"),
           "the first Friday comes before the 13th");
    is_int(next("0 0 13 * 5", "2026-03-06T00:00:00Z"), t("2026-03-13T00:00:00Z"),
           "the 13th (a Friday too)");
    is_int(next("0 0 1 * 1", "2026-03-24T00:00:00Z"), t("2026-03-30T00:00:00Z"),
           "Monday 30th before April 1st");
    /* a day field starred (a step on a star too): both must match */
    is_int(next("0 0 1 * *", "2026-03-02T00:00:00Z"), t("2026-04-01T00:00:00Z"), "dom only");
    is_int(next("0 0 * * 0", "2026-03-02T00:00:00Z"), t("2026-03-08T00:00:00Z"), "Sunday as 0");
    is_int(next("0 0 * * 7", "2026-03-02T00:00:00Z"), t("2026-03-08T00:00:00Z"), "Sunday as 7");
    is_int(next("0 0 */2 * 1", "2026-03-02T00:00:00Z"), t("2026-03-09T00:00:00Z"),
           "*/2 counts as a star: the odd day that is a Monday");
}

TEST(cron_match)
{
    struct wfo_cron c = cr("0 12 * * 3");
    ok(wfo_cron_match(&c, t("2026-03-04T12:00:59Z")), "Wednesday noon, within the minute");
    ok(!wfo_cron_match(&c, t("2026-03-04T12:01:00Z")), "a minute later");
    ok(!wfo_cron_match(&c, t("2026-03-05T12:00:00Z")), "Thursday");
    c = cr("* * * * *");
    ok(wfo_cron_match(&c, t("1969-12-31T23:59:00Z")), "before the epoch");
    is_int(wfo_cron_prev(&c, -1), -60000, "prev before the epoch floors");
}

int main(void)
{
    return tap_run();
}
