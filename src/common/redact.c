/*
 * redact.c - secrets' values replaced by "[REDACTED]" (redact.h).
 * docs/operations/security.md "What is never logged".
 *
 * Longer values are replaced first, so that a secret that contains another
 * leaves nothing of itself behind.
 */
#include "common/compat.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "redact.h"
#include "util.h"

#define REDACT_MAX 256

static char *values[REDACT_MAX];
static size_t lens[REDACT_MAX];
static atomic_int n_values;

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
        at--;
    }
    values[at] = wfo_strdup(value);
    lens[at] = len;
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
    for (int i = 0; i < n; i++)
        if (len >= lens[i] && memmem(s, len, values[i], lens[i]))
            return 1;
    return 0;
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
