/*
 * yaml.h - YAML documents into the JSON model (SPEC 2: "YAML is parsed to
 * the same JSON value"). The one door to libfyaml.
 *
 * Plain scalars resolve as YAML 1.2's core schema does: null, ~ and the empty
 * scalar are null; true/false; integers (decimal, 0x, 0o); floats (.inf and
 * .nan are refused: JSON has none); everything else, and every quoted
 * scalar, is a string. Mapping keys must be scalars and are used as strings.
 * Anchors and aliases are expanded, with a bound on the expanded size (a
 * "billion laughs" document is refused). One document per text.
 */
#ifndef WFO_COMMON_YAML_H
#define WFO_COMMON_YAML_H

#include <stddef.h>

#include "json.h"

/* Fails with WFO_EPARSE and "line L column C: MESSAGE". An empty text (or
 * only comments) is an error too: "empty document". */
int wfo_yaml_parse(const char *text, size_t len, json_t **out, struct wfo_error *err);

/* Parses text as JSON when its first non-blank byte is '{' or '[', else as
 * YAML. */
int wfo_doc_parse(const char *text, size_t len, json_t **out, struct wfo_error *err);

#endif
