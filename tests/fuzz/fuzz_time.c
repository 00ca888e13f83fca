/*
 * fuzz_time.c - libFuzzer target for durations ("1.5s", "250ms", "2h") and
 * RFC 3339 times (src/common/duration.c), the two kinds of time a
 * definition, a query and a configuration hold.
 *
 * An input is one string (up to its first NUL). What must hold: no crash
 * or sanitizer report; a duration that parses is not negative, and its
 * canonical form (wfo_duration_format) parses back to the same number of
 * milliseconds; a time that parses formats (wfo_time_format) to a text
 * that parses back to the same instant.
 */
#include "common/compat.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/duration.h"
#include "common/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = wfo_strndup((const char *)data, size);
    char text[64];
    int64_t ms, back;

    if (wfo_duration_parse(s, &ms) == 0) {
        if (ms < 0)
            abort();
        wfo_duration_format(ms, text, sizeof(text));
        if (wfo_duration_parse(text, &back) < 0 || back != ms)
            abort();
    }
    if (wfo_time_parse(s, &ms) == 0) {
        wfo_time_format(ms, text, sizeof(text));
        if (wfo_time_parse(text, &back) < 0 || back != ms)
            abort();
    }
    free(s);
    return 0;
}
