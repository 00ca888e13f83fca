/*
 * test_duration.c - unit tests of src/common/duration.c: durations, clocks
 * and RFC 3339 times.
 */
#include "common/compat.h"

#include <stdint.h>
#include <string.h>
#include <time.h>

#include "common/duration.h"
#include "common/error.h"
#include "../tap.h"

static int64_t dur(const char *s)
{
    int64_t ms = -12345;
    int rc = wfo_duration_parse(s, &ms);

    return rc < 0 ? rc : ms;
}

TEST(duration_parse_valid)
{
    is_int(dur("1.5s"), 1500, "1.5s");
    is_int(dur("250ms"), 250, "250ms");
    is_int(dur("2h"), 7200000, "2h");
    is_int(dur("1d"), 86400000, "1d");
    is_int(dur("1m"), 60000, "1m is a minute");
    is_int(dur("0s"), 0, "zero");
    is_int(dur("0.1s"), 100, "0.1s exactly");
    is_int(dur("0.001s"), 1, "one millisecond");
    is_int(dur("0.0004s"), 0, "below half a millisecond rounds down");
    is_int(dur("0.0005s"), 1, "half a millisecond rounds up");
    is_int(dur("1.5ms"), 2, "fraction of ms rounds");
    is_int(dur("0.5m"), 30000, "half a minute");
    is_int(dur("1.25h"), 4500000, "1.25h");
    is_int(dur("007s"), 7000, "leading zeros");
    is_int(dur("36525d"), INT64_C(36525) * 86400000, "100 years");
    is_int(dur("0.1234567890123456789012s"), 123, "many fraction digits");
}

TEST(duration_parse_invalid)
{
    static const char *const bad[] = {
        "",     "5",     "-1s",   "+1s",  "1e3s",  "s",      "1.5.5s",   "5 s",
        " 5s",  "5s ",   "1.s",   ".5s",  "1S",    "1sec",   "1 ms",     "1us",
        "1y",   "1w",    "ms",    "1ms5", "1h30m", "37000d", "36525.5d", "99999999999999999999999s",
        "1,5s", "0x10s", "inf s", "nan",
    };
    int all = 1;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms = 77;

        if (wfo_duration_parse(bad[i], &ms) != WFO_EINVAL || ms != 77) {
            all = 0;
            printf("# accepted \"%s\"\n", bad[i]);
        }
    }
    ok(all, "all malformed durations refused, *ms untouched");
    is_int(wfo_duration_parse(NULL, &(int64_t){0}), WFO_EINVAL, "NULL refused");
}

static const char *fmt(int64_t ms)
{
    static char out[32];

    wfo_duration_format(ms, out, sizeof(out));
    return out;
}

TEST(duration_parse_text)
{
    static const struct {
        const char *in;
        int64_t ms;
    } good[] = {{"1500", 1500}, {"0", 0},       {"007", 7},
                {"1.5s", 1500}, {"2m", 120000}, {"3155760000000", INT64_C(3155760000000)}};
    static const char *const bad[] = {"",      "-5",    "1e3",           "15 00",
                                      "1500 ", " 1500", "3155760000001", "99999999999999999999999",
                                      "ms",    "1.5",   "0x10",          NULL};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int64_t ms = -1;
        is_int(wfo_duration_parse_text(good[i].in, &ms), 0, "'%s' parses", good[i].in);
        ok(ms == good[i].ms, "'%s' is %lld ms", good[i].in, (long long)ms);
    }
    for (size_t i = 0; bad[i]; i++) {
        int64_t ms = -1;
        is_int(wfo_duration_parse_text(bad[i], &ms), WFO_EINVAL, "'%s' refused", bad[i]);
    }
    int64_t ms = 0;
    is_int(wfo_duration_parse_text(NULL, &ms), WFO_EINVAL, "NULL refused");
}

TEST(duration_format)
{
    is_str(fmt(1500), "1.5s", "1.5s");
    is_str(fmt(250), "250ms", "250ms");
    is_str(fmt(7200000), "2h", "2h");
    is_str(fmt(86400000), "1d", "1d");
    is_str(fmt(60000), "1m", "1m");
    is_str(fmt(90000), "90s", "90s");
    is_str(fmt(0), "0s", "zero");
    is_str(fmt(1001), "1.001s", "1.001s");
    is_str(fmt(1250), "1.25s", "1.25s");
    is_str(fmt(-1500), "-1.5s", "negative");
    {
        char small[4];

        wfo_duration_format(123456, small, sizeof(small));
        is_str(small, "123", "truncated to the buffer");
    }
}

TEST(duration_format_roundtrip)
{
    static const int64_t values[] = {1,
                                     999,
                                     1000,
                                     1001,
                                     59999,
                                     60000,
                                     61000,
                                     3599999,
                                     3600000,
                                     86399999,
                                     86400000,
                                     123456789,
                                     INT64_C(36525) * 86400000};
    int all = 1;

    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
        if (dur(fmt(values[i])) != values[i]) {
            all = 0;
            printf("# %lld -> %s -> %lld\n", (long long)values[i], fmt(values[i]),
                   (long long)dur(fmt(values[i])));
        }
    ok(all, "format then parse gives the same value");
}

TEST(clocks)
{
    int64_t now = wfo_now_ms(), m1 = wfo_mono_ms(), m2;

    ok(now > INT64_C(1700000000000), "wall clock is after 2023");
    ok(now - (int64_t)time(NULL) * 1000 < 2000, "wall clock agrees with time()");
    m2 = wfo_mono_ms();
    ok(m2 >= m1, "monotonic");
    /* the fractional clock: the same clock, with time under 1 ms */
    double f1 = wfo_mono_ms_f(), f2 = f1;
    int64_t i1 = wfo_mono_ms();
    ok(f1 <= (double)i1 + 1 && (double)i1 - f1 < 1000, "wfo_mono_ms_f is the same clock");
    for (int k = 0; k < 1000000 && f2 == f1; k++)
        f2 = wfo_mono_ms_f();
    ok(f2 > f1 && f2 - f1 < 1.0, "wfo_mono_ms_f tells durations under 1 ms (%.6f)", f2 - f1);
}

static const char *tfmt(int64_t ms)
{
    static char out[40];

    wfo_time_format(ms, out, sizeof(out));
    return out;
}

static int64_t tparse(const char *s)
{
    int64_t ms = -777;

    if (wfo_time_parse(s, &ms) < 0)
        return -777;
    return ms;
}

TEST(time_format)
{
    is_str(tfmt(0), "1970-01-01T00:00:00.000Z", "epoch");
    is_str(tfmt(INT64_C(1795666490123)), "2026-11-26T04:14:50.123Z", "the example of the header");
    is_str(tfmt(INT64_C(951782400000)), "2000-02-29T00:00:00.000Z", "leap day 2000");
    is_str(tfmt(-1), "1969-12-31T23:59:59.999Z", "before the epoch");
    is_str(tfmt(INT64_C(253402300799999)), "9999-12-31T23:59:59.999Z", "last millisecond of 9999");
}

TEST(time_parse)
{
    is_int(tparse("2026-11-26T04:14:50.123Z"), INT64_C(1795666490123), "with milliseconds");
    is_int(tparse("2026-11-26T04:14:50Z"), INT64_C(1795666490000), "without fraction");
    is_int(tparse("2026-11-26t04:14:50z"), INT64_C(1795666490000), "lower-case t and z");
    is_int(tparse("2026-11-26 04:14:50Z"), INT64_C(1795666490000), "space separator");
    is_int(tparse("2026-11-26T04:14:50.1Z"), INT64_C(1795666490100), "one fraction digit");
    is_int(tparse("2026-11-26T04:14:50.123999Z"), INT64_C(1795666490123), "microseconds cut");
    is_int(tparse("2026-11-26T05:14:50.123+01:00"), INT64_C(1795666490123), "positive offset");
    is_int(tparse("2026-11-25T23:44:50.123-04:30"), INT64_C(1795666490123), "negative offset");
    is_int(tparse("2026-11-26T04:14:50+00:00"), INT64_C(1795666490000), "+00:00");
    is_int(tparse("1970-01-01T00:00:00Z"), 0, "epoch");
    is_int(tparse("1969-12-31T23:59:59.999Z"), -1, "before the epoch");
    is_int(tparse("2024-02-29T00:00:00Z"), INT64_C(1709164800000), "leap day");
    is_int(tparse("2016-12-31T23:59:60Z"), INT64_C(1483228800000), "leap second");
}

TEST(time_parse_invalid)
{
    static const char *const bad[] = {
        "",
        "2026-11-26",
        "2026-11-26T04:14:50",
        "2026-11-26T04:14Z",
        "2026-11-26T04:14:50.Z",
        "2026-13-01T00:00:00Z",
        "2026-00-01T00:00:00Z",
        "2026-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-11-26T24:00:00Z",
        "2026-11-26T23:60:00Z",
        "2026-11-26T23:59:61Z",
        "2026-11-26T04:14:50+0100",
        "2026-11-26T04:14:50+24:00",
        "2026-11-26T04:14:50Z ",
        " 2026-11-26T04:14:50Z",
        "26-11-26T04:14:50Z",
        "2026/11/26T04:14:50Z",
        "2026-11-26X04:14:50Z",
        "2026-1-26T04:14:50Z",
        "now",
        "1795666490123",
        /* instants past what RFC 3339 can write (fuzz_time found the first) */
        "9999-12-31T23:59:60.99999999-00:00",
        "9999-12-31T23:00:00-01:00",
        "0000-01-01T00:30:00+01:00",
    };
    int all = 1;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms = 5;

        if (wfo_time_parse(bad[i], &ms) != WFO_EINVAL || ms != 5) {
            all = 0;
            printf("# accepted \"%s\"\n", bad[i]);
        }
    }
    ok(all, "all malformed times refused, *ms untouched");
    int64_t edge;
    ok(wfo_time_parse("9999-12-31T23:59:59.999Z", &edge) == 0 &&
           wfo_time_parse("0000-01-01T00:00:00Z", &edge) == 0,
       "the first and last instants RFC 3339 can write are accepted");
    is_int(wfo_time_parse(NULL, &(int64_t){0}), WFO_EINVAL, "NULL refused");
}

TEST(time_roundtrip)
{
    int all = 1;

    /* Every day from 1600 to 2400, at a varying time of day. */
    for (int64_t ms = INT64_C(-11676096000000); ms < INT64_C(13569465600000);
         ms += 86400000 + 3601001) {
        if (tparse(tfmt(ms)) != ms) {
            all = 0;
            printf("# %lld -> %s\n", (long long)ms, tfmt(ms));
            break;
        }
    }
    ok(all, "format then parse gives the same time over eight centuries");
    {
        char mine[40], libc[40];
        time_t t = (time_t)1795666490;
        struct tm tm;

        gmtime_r(&t, &tm);
        strftime(libc, sizeof(libc), "%Y-%m-%dT%H:%M:%S.000Z", &tm);
        wfo_time_format((int64_t)t * 1000, mine, sizeof(mine));
        is_str(mine, libc, "agrees with gmtime_r");
    }
}

int main(void)
{
    return tap_run();
}
