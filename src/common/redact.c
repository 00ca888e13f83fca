/*
 * redact.c - secrets' values replaced by "[REDACTED]" (redact.h).
 * docs/operations/security.md "What is never logged".
 *
 * Longer values are replaced first, so that a secret that contains another
 * leaves nothing of itself behind.
 *
 * A value also surfaces cut short: jq's error messages show the value that
 * failed as its JSON text cut to a few characters and "..." (`string
 * ("zz-secret-...) and number (1) cannot be added`). So a "..." preceded by
 * at least TRUNC_MIN characters of a value's JSON text (its opening quote
 * and escapes included) is replaced too, with the "...".
 */
#include "common/compat.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "redact.h"
#include "util.h"

#define REDACT_MAX 256
/* The least of a value's JSON text before a "..." that is replaced: its
 * quote and three characters (jq shows eleven). */
#define TRUNC_MIN 4

static char *values[REDACT_MAX];
static size_t lens[REDACT_MAX];
static char *dumps[REDACT_MAX]; /* '"' and the value as JSON text escapes it */
static size_t dump_lens[REDACT_MAX];
static atomic_int n_values;

/* The JSON text of a value, as jq's error messages begin it. */
static char *dump_of(const char *value, size_t len)
{
    json_t *v = json_stringn_nocheck(value, len);
    char *d = v ? json_dumps(v, JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    return d;
}

/* Where in s[0..len) a value's JSON text, cut short, ends in "...": 1 with
 * [*at, *end) to replace, from from on. */
static int trunc_find(const char *s, size_t len, size_t from, size_t *at, size_t *end)
{
    int n = atomic_load(&n_values);
    const char *dots;
    while (from < len && (dots = memmem(s + from, len - from, "...", 3))) {
        size_t p = (size_t)(dots - s);
        for (int i = 0; i < n; i++) {
            size_t k = dump_lens[i] < p ? dump_lens[i] : p;
            for (; dumps[i] && k >= TRUNC_MIN; k--)
                if (memcmp(s + p - k, dumps[i], k) == 0) {
                    *at = p - k;
                    *end = p + 3;
                    return 1;
                }
        }
        from = p + 1;
    }
    return 0;
}

int wfo_redact_add(const char *value)
{
    size_t len = value ? strlen(value) : 0;
    int n = atomic_load(&n_values);
    if (len < WFO_REDACT_MIN || n == REDACT_MAX)
        return -1;
    for (int i = 0; i < n; i++)
        if (lens[i] == len && memcmp(values[i], value, len) == 0)
            return 0;
    /* keep longest first */
    int at = n;
    while (at > 0 && lens[at - 1] < len) {
        values[at] = values[at - 1];
        lens[at] = lens[at - 1];
        dumps[at] = dumps[at - 1];
        dump_lens[at] = dump_lens[at - 1];
        at--;
    }
    values[at] = wfo_strdup(value);
    lens[at] = len;
    dumps[at] = dump_of(value, len);
    dump_lens[at] = dumps[at] ? strlen(dumps[at]) - 1 : 0; /* without the closing quote */
    atomic_store(&n_values, n + 1);
    return 0;
}

int wfo_redact_active(void)
{
    return atomic_load(&n_values) > 0;
}

int wfo_redact_hit(const char *s, size_t len)
{
    int n = atomic_load(&n_values);
    size_t at, end;
    for (int i = 0; i < n; i++)
        if (len >= lens[i] && memmem(s, len, values[i], lens[i]))
            return 1;
    return n > 0 && trunc_find(s, len, 0, &at, &end);
}

void wfo_redact_buf(struct wfo_buf *b)
{
    int n = atomic_load(&n_values);
    if (!n || !b->len || !wfo_redact_hit(b->buf, b->len))
        return;
    for (int i = 0; i < n; i++) {
        struct wfo_buf out = WFO_BUF_INIT;
        const char *p = b->buf, *end = b->buf + b->len, *hit;
        if (!memmem(p, b->len, values[i], lens[i]))
            continue;
        while ((hit = memmem(p, (size_t)(end - p), values[i], lens[i]))) {
            wfo_buf_add(&out, p, (size_t)(hit - p));
            wfo_buf_adds(&out, WFO_REDACTED);
            p = hit + lens[i];
        }
        wfo_buf_add(&out, p, (size_t)(end - p));
        wfo_buf_reset(b);
        wfo_buf_add(b, out.buf, out.len);
        wfo_buf_release(&out);
    }
    /* then what is left of a value cut short */
    size_t from = 0, at, stop;
    while (trunc_find(b->buf, b->len, from, &at, &stop)) {
        struct wfo_buf out = WFO_BUF_INIT;
        wfo_buf_add(&out, b->buf, at);
        wfo_buf_adds(&out, WFO_REDACTED);
        from = out.len;
        wfo_buf_add(&out, b->buf + stop, b->len - stop);
        wfo_buf_reset(b);
        wfo_buf_add(b, out.buf, out.len);
        wfo_buf_release(&out);
    }
}

static json_t *redact_string(const char *s, size_t len)
{
    struct wfo_buf b = WFO_BUF_INIT;
    wfo_buf_add(&b, s, len);
    wfo_redact_buf(&b);
    json_t *r = json_stringn_nocheck(b.buf, b.len);
    wfo_buf_release(&b);
    return r;
}

/* 1 when something in v holds a value. */
static int json_hit(const json_t *v)
{
    const char *k;
    json_t *x;
    size_t i;
    switch (json_typeof(v)) {
    case JSON_STRING:
        return wfo_redact_hit(json_string_value(v), json_string_length(v));
    case JSON_OBJECT:
        json_object_foreach((json_t *)v, k, x)
        {
            if (wfo_redact_hit(k, strlen(k)) || json_hit(x))
                return 1;
        }
        return 0;
    case JSON_ARRAY:
        json_array_foreach(v, i, x)
        {
            if (json_hit(x))
                return 1;
        }
        return 0;
    default:
        return 0;
    }
}

static json_t *json_rewrite(json_t *v)
{
    const char *k;
    json_t *x, *out;
    size_t i;
    if (!json_hit(v))
        return json_incref(v);
    switch (json_typeof(v)) {
    case JSON_STRING:
        return redact_string(json_string_value(v), json_string_length(v));
    case JSON_OBJECT:
        out = json_object();
        json_object_foreach(v, k, x)
        {
            struct wfo_buf kb = WFO_BUF_INIT;
            wfo_buf_adds(&kb, k);
            wfo_redact_buf(&kb);
            json_object_set_new_nocheck(out, kb.buf, json_rewrite(x));
            wfo_buf_release(&kb);
        }
        return out;
    case JSON_ARRAY:
        out = json_array();
        json_array_foreach(v, i, x)
        {
            json_array_append_new(out, json_rewrite(x));
        }
        return out;
    default:
        return json_incref(v);
    }
}

json_t *wfo_redact_json(json_t *v)
{
    if (!v)
        return NULL;
    if (!atomic_load(&n_values))
        return json_incref(v);
    return json_rewrite(v);
}
