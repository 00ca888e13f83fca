/*
 * engine.h - the engine's internal interface, for api/ and cli/ (the
 * public one is include/wfo/wfo.h). docs/interfaces/internal.md.
 */
#ifndef WFO_CORE_ENGINE_H
#define WFO_CORE_ENGINE_H

#include "wfo/wfo.h"
#include "../common/json.h"
#include "../store/store.h"
#include "def.h"

/* The store the engine writes; readers may use it too (thread-safe). */
struct wfo_store *engine_store(struct wfo_engine *e);

/* The execution document of SPEC 3 (new ref), read from the store. */
int engine_doc(struct wfo_engine *e, const char *id, json_t **doc, struct wfo_error *err);

/* Operator commands on one execution (SPEC 4). */
enum engine_op { OP_CANCEL, OP_TERMINATE, OP_PAUSE, OP_RESUME, OP_RETRY };
int engine_op(struct wfo_engine *e, const char *id, enum engine_op op, const char *reason,
              int compensate, struct wfo_error *err);

#endif
