/*
 * test_utf8.c - unit tests of the one UTF-8 decoder in src/common/util.c
 * (wfo_utf8_len, wfo_utf8_span, wfo_utf8_cut, wfo_utf8_scrub): what is text, and that a
 * NUL byte is not.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "../tap.h"
#include "common/banned.h"

static size_t len_of(const char *s, size_t n)
{
    return wfo_utf8_len((const unsigned char *)s, n);
}

TEST(len_valid)
{
    is_int(len_of("a", 1), 1, "ASCII");
    is_int(len_of("\x7f", 1), 1, "DEL");
    is_int(len_of("\xc2\x80", 2), 2, "U+0080, the first two-byte one");
    is_int(len_of("\xc3\xa9xyz", 5), 2, "e acute, the bytes after not read");
    is_int(len_of("\xe0\xa0\x80", 3), 3, "U+0800, the first three-byte one");
    is_int(len_of("\xe2\x82\xac", 3), 3, "euro sign");
    is_int(len_of("\xef\xbf\xbd", 3), 3, "U+FFFD");
    is_int(len_of("\xf0\x90\x80\x80", 4), 4, "U+10000, the first four-byte one");
    is_int(len_of("\xf4\x8f\xbf\xbf", 4), 4, "U+10FFFF, the last one");
}

TEST(len_nul_is_not_text)
{
    is_int(len_of("\0", 1), 0, "a NUL byte");
    is_int(len_of("\0a", 2), 0, "a NUL byte before text");
}

TEST(len_invalid)
{
    is_int(len_of("\x80", 1), 0, "a continuation byte alone");
    is_int(len_of("\xbf", 1), 0, "another continuation byte");
    is_int(len_of("\xc0\xaf", 2), 0, "overlong '/' (C0)");
    is_int(len_of("\xc1\xbf", 2), 0, "overlong (C1)");
    is_int(len_of("\xe0\x9f\xbf", 3), 0, "overlong three-byte");
    is_int(len_of("\xf0\x8f\xbf\xbf", 4), 0, "overlong four-byte");
    is_int(len_of("\xed\xa0\x80", 3), 0, "surrogate U+D800");
    is_int(len_of("\xed\xbf\xbf", 3), 0, "surrogate U+DFFF");
    is_int(len_of("\xed\x9f\xbf", 3), 3, "U+D7FF, just before the surrogates");
    is_int(len_of("\xf4\x90\x80\x80", 4), 0, "past U+10FFFF");
    is_int(len_of("\xf5\x80\x80\x80", 4), 0, "lead byte F5");
    is_int(len_of("\xff", 1), 0, "FF");
    is_int(len_of("\xfe", 1), 0, "FE");
    is_int(len_of("\xc3", 1), 0, "cut short: one byte of two");
    is_int(len_of("\xe2\x82", 2), 0, "cut short: two bytes of three");
    is_int(len_of("\xe2\x82\xac", 2), 0, "n counts, not the bytes after");
    is_int(len_of("\xc3\x41", 2), 0, "second byte not a continuation");
    is_int(len_of("\xf0\x90\x80\x41", 4), 0, "fourth byte not a continuation");
}

TEST(span)
{
    is_int(wfo_utf8_span("", 0), 0, "empty");
    is_int(wfo_utf8_span("hello", 5), 5, "ASCII");
    is_int(wfo_utf8_span("caf\xc3\xa9", 5), 5, "all text");
    is_int(wfo_utf8_span("ab\0cd", 5), 2, "stops at a NUL");
    is_int(wfo_utf8_span("ab\xff", 3), 2, "stops at an invalid byte");
    is_int(wfo_utf8_span("ab\xe2\x82", 4), 2, "stops at a sequence cut short");
}

TEST(cut)
{
    is_int(wfo_utf8_chars(""), 0, "chars: none");
    is_int(wfo_utf8_chars("abc"), 3, "chars: ASCII");
    is_int(wfo_utf8_chars("\xc3\xa9t\xc3\xa9 \xe2\x82\xac\xf0\x9f\x98\x80"), 6,
           "chars: 2-, 3- and 4-byte sequences count one each");
    is_int(wfo_utf8_chars("a\xff"
                          "b\xc3"),
           4, "chars: an invalid byte counts one");
    is_int(wfo_utf8_cut("abc", 3, 5), 3, "shorter than max: all");
    is_int(wfo_utf8_cut("abcdef", 6, 4), 4, "ASCII cut at max");
    is_int(wfo_utf8_cut("ab\xe2\x82\xac", 5, 4), 2, "not inside the euro sign");
    is_int(wfo_utf8_cut("ab\xe2\x82\xac", 5, 5), 5, "all of it when it fits");
    is_int(wfo_utf8_cut("ab\xe2\x82\xac"
                        "c",
                        6, 5),
           5, "just after it");
    is_int(wfo_utf8_cut("\xc3\xa9", 2, 1), 0, "nothing when the first one does not fit");
}

static char *scrub(const char *s, size_t n, size_t max, int64_t *taken)
{
    struct wfo_buf b = WFO_BUF_INIT;

    *taken = wfo_utf8_scrub(&b, s, n, max);
    wfo_buf_addch(&b, 0);
    return wfo_buf_detach(&b, NULL);
}

TEST(scrub)
{
    int64_t taken;
    char *r;

    r = scrub("caf\xc3\xa9", 5, SIZE_MAX, &taken);
    is_str(r, "caf\xc3\xa9", "text is kept");
    is_int(taken, 5, "all taken");
    free(r);
    r = scrub("a\0b", 3, SIZE_MAX, &taken);
    is_str(r,
           "a\xef\xbf\xbd"
           "b",
           "a NUL becomes U+FFFD");
    free(r);
    r = scrub("a\xff\xfe"
              "b",
              4, SIZE_MAX, &taken);
    is_str(r,
           "a\xef\xbf\xbd\xef\xbf\xbd"
           "b",
           "each invalid byte becomes U+FFFD");
    free(r);
    r = scrub("\xe2\x82", 2, SIZE_MAX, &taken);
    is_str(r, "\xef\xbf\xbd\xef\xbf\xbd", "a cut sequence: one U+FFFD a byte");
    free(r);
    r = scrub("ab\xe2\x82\xac", 5, 4, &taken);
    is_str(r, "ab", "max stops before a character that would not fit");
    is_int(taken, 2, "the bytes taken say where");
    free(r);
    r = scrub("ab\xff", 3, 4, &taken);
    is_str(r, "ab", "nor a U+FFFD that would not fit");
    free(r);
    r = scrub("abc", 3, 3, &taken);
    is_str(r, "abc", "max is the length allowed");
    is_int(taken, 3, "all taken");
    free(r);
}

int main(void)
{
    return tap_run();
}
