/*
 * doc.h - the documents of SPEC 3, built from store rows: the execution
 * document, the history, a workflow version. docs/data_model.md shows
 * them. Every builder returns a new reference; rows are borrowed.
 */
#ifndef WFO_CORE_DOC_H
#define WFO_CORE_DOC_H

#include "../common/json.h"
#include "../store/store.h"

/* The execution document without its steps (the list endpoint's item). */
json_t *doc_exec(const struct store_exec *r);
/* Appends one step of the document to the array steps (compensation runs
 * are left out). */
void doc_step(json_t *steps, const struct store_step *r);
/* The whole document from doc_exec()'s part doc and the array steps
 * (takes both). */
json_t *doc_assemble(json_t *doc, json_t *steps);
/* The whole document from an execution's row and its steps' rows (in ord
 * order), as the store would give them. */
json_t *doc_from_rows(const struct store_exec *r, const struct store_step *steps, int n);
/* One history entry: {seq, time, type, step, data}. */
json_t *doc_history_entry(const struct store_history *r);
/* One workflow version: {name, version, created_at, definition}; the one
 * builder of it (takes definition; NULL writes null). */
json_t *doc_workflow_new(const char *name, int version, int64_t created_at, json_t *definition);
/* The same from a store row (its definition text parsed). */
json_t *doc_workflow(const struct store_workflow *w);
/* A time as the documents write it, or null for 0. */
json_t *doc_time(int64_t ms);

#endif
