/*
 * doc.h - the documents of SPEC 3, built from store rows: the execution
 * document and the history. docs/data_model.md shows them.
 */
#ifndef WFO_CORE_DOC_H
#define WFO_CORE_DOC_H

#include "../common/json.h"
#include "../store/store.h"

/* The execution document without its steps (the list endpoint's item). */
json_t *doc_exec(const struct store_exec *r);
/* The whole document from an execution's row and its steps' rows (in ord
 * order), as the store would give them. */
json_t *doc_from_rows(const struct store_exec *r, const struct store_step *steps, int n);
/* The whole document: WFO_ENOTFOUND when absent. */
int doc_execution(struct wfo_store *s, const char *id, json_t **out, struct wfo_error *err);
/* [{seq, time, type, step, data}] after after_seq, at most limit (0: all). */
int doc_history(struct wfo_store *s, const char *id, int64_t after_seq, int limit, json_t **out,
                struct wfo_error *err);
/* A time as the documents write it, or null for 0. */
json_t *doc_time(int64_t ms);

#endif
