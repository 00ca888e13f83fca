/*
 * redact.h - the values of server-side secrets (SPEC 2.1 `$secrets`), and
 * their replacement by "[REDACTED]" wherever they could surface: step
 * outputs and errors, evaluated templates, logs, API responses.
 * docs/operations/security.md.
 *
 * Process-wide: values are added at start (wfo_engine_new, before any
 * thread that reads them) and never removed; every function is then
 * read-only and thread-safe.
 */
#ifndef WFO_COMMON_REDACT_H
#define WFO_COMMON_REDACT_H

#include <stddef.h>

#include "buf.h"
#include "json.h"

#define WFO_REDACTED "[REDACTED]"

/* Remembers value (copied) as one to redact. Values shorter than
 * WFO_REDACT_MIN are refused (-1): they would mangle every document. */
#define WFO_REDACT_MIN 4
int wfo_redact_add(const char *value);
/* 1 when there is a value to redact. */
int wfo_redact_active(void);
/* 1 when s[0..len) holds a value. */
int wfo_redact_hit(const char *s, size_t len);
/* Replaces every value in b, in place. */
void wfo_redact_buf(struct wfo_buf *b);
/* v with every string (and object key) that holds a value rewritten:
 * a new reference, v itself (incref'd) when nothing holds one. NULL: NULL. */
json_t *wfo_redact_json(json_t *v);

#endif
