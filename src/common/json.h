/*
 * json.h - wfo's JSON value model and its codecs: the one door to jansson.
 *
 * Every JSON value in wfo is a jansson json_t (refcounted). Functions that
 * return a json_t * return a new reference unless they say "borrowed".
 * YAML documents are read into the same model by common/yaml.c.
 */
#ifndef WFO_COMMON_JSON_H
#define WFO_COMMON_JSON_H

#include <jansson.h>
#include <stddef.h>

#include "buf.h"
#include "error.h"

/* Deepest nesting accepted by wfo_json_parse and wfo_yaml_parse. */
#define WFO_JSON_MAX_DEPTH 512

/* Parses len bytes of UTF-8 JSON text (any value, not only objects). Fails
 * with WFO_EPARSE and "line L column C: MESSAGE" for bad syntax, invalid UTF-8,
 * trailing garbage, NUL bytes or nesting deeper than WFO_JSON_MAX_DEPTH. */
int wfo_json_parse(const char *text, size_t len, json_t **out, struct wfo_error *err);
/* The value of stored JSON text: null for NULL or text that is not JSON.
 * New reference. */
json_t *wfo_json_text(const char *text);

/* Compact serialization, keys in insertion order. Caller frees with free().
 * NULL value serializes as "null". Returns NULL only when out of memory. */
char *wfo_json_dumps(const json_t *v);
/* Appends the compact serialization to b. */
int wfo_json_dumpb(const json_t *v, struct wfo_buf *b);
/* Appends what wfo_json_dumpb gives for the object {key: v}, without
 * building it (v not NULL). */
int wfo_json_dumpb_member(const char *key, const json_t *v, struct wfo_buf *b);
/* Appends one JSON string (escaped as wfo_json_dumpb does) or integer:
 * for code that writes JSON text without building values first. */
int wfo_json_dump_str(const char *s, struct wfo_buf *b);
int wfo_json_dump_int(long long n, struct wfo_buf *b);
/* Indented (2 spaces) serialization for people, keys in insertion order. */
char *wfo_json_dumps_pretty(const json_t *v);

/* Borrowed lookups that return NULL for a missing key or a wrong kind. */
const char *wfo_json_str(const json_t *obj, const char *key);
json_t *wfo_json_obj(const json_t *obj, const char *key);
json_t *wfo_json_arr(const json_t *obj, const char *key);

/* The one builder of the error object (SPEC 2: a failed step, a failed
 * execution, a worker's failure): a new {"type", "message", "details"},
 * message "" when NULL and made valid UTF-8 (a byte that is not becomes
 * U+FFFD), details null when NULL. Takes details. */
json_t *wfo_json_error(const char *type, const char *message, json_t *details);

/* Returns v with one new reference, or json_null() when v is NULL. */
json_t *wfo_json_ref(json_t *v);

/* Structural equality (numbers compared by value: 1 == 1.0). */
int wfo_json_equal(const json_t *a, const json_t *b);

#endif
