/*
 * duration.h - durations ("1.5s", "250ms", "2h", or an integer of
 * milliseconds: SPEC 2.1) and RFC 3339 times, all in milliseconds.
 */
#ifndef WFO_COMMON_DURATION_H
#define WFO_COMMON_DURATION_H

#include <stdint.h>
#include <stddef.h>

/* Parses "<number><unit>", unit one of ms s m h d; the number may have a
 * fraction, not a sign or exponent. 0 ok, WFO_EINVAL otherwise. The result is
 * rounded to whole milliseconds and must fit in 100 years. */
int wfo_duration_parse(const char *s, int64_t *ms);
/* A duration written as text where a JSON integer cannot be (a command
 * line, a query string, an environment variable): wfo_duration_parse's
 * forms, or digits alone, an integer of milliseconds (SPEC 2.1), within
 * the same 100 years. */
int wfo_duration_parse_text(const char *s, int64_t *ms);
/* Writes a short form ("1.5s", "250ms", "2h") into out. */
void wfo_duration_format(int64_t ms, char *out, size_t size);

/* Milliseconds since the epoch, wall clock. */
int64_t wfo_now_ms(void);
/* Monotonic milliseconds. */
int64_t wfo_mono_ms(void);
/* Monotonic milliseconds with their fraction (a duration under 1 ms). */
double wfo_mono_ms_f(void);
/* "2026-11-26T04:14:50.123Z" into out (at least 32 bytes). */
void wfo_time_format(int64_t ms, char *out, size_t size);
/* Parses RFC 3339 ("2026-11-26T04:14:50Z", fraction and offset allowed). */
int wfo_time_parse(const char *s, int64_t *ms);

#endif
