/*
 * query.h - the reads of the API, its one door to the store: execution
 * documents, the execution list, histories, workflows, the store's health,
 * the waits for an execution's end (docs/interfaces/internal.md "The query
 * module"). What changes state goes through engine.h.
 *
 * ns is the caller's namespace, never NULL. An execution or a workflow of
 * another namespace is as absent as one that does not exist: the same
 * WFO_ENOTFOUND, the same message (SPEC 4; query.c Q1). Documents are
 * returned as new references (the caller decrefs); strings are borrowed.
 */
#ifndef WFO_CORE_QUERY_H
#define WFO_CORE_QUERY_H

#include <stdint.h>

#include "wfo/wfo.h"
#include "../common/json.h"

/* 0 when execution id exists in ns, else WFO_ENOTFOUND (or a store
 * error): for calls that change an execution, which name no namespace. */
int query_exec_check(struct wfo_engine *e, const char *ns, const char *id, struct wfo_error *err);
/* The same, with the name of its workflow in out (size bytes). */
int query_exec_workflow(struct wfo_engine *e, const char *ns, const char *id, char *out,
                        size_t size, struct wfo_error *err);

/* The execution document of SPEC 3. */
int query_execution(struct wfo_engine *e, const char *ns, const char *id, json_t **doc,
                    struct wfo_error *err);

/* The history of SPEC 3: [{seq, time, type, step, data}] after after_seq,
 * at most limit entries (0: all). */
int query_history(struct wfo_engine *e, const char *ns, const char *id, int64_t after_seq,
                  int limit, json_t **out, struct wfo_error *err);

/* Which executions a list page holds, newest first. */
struct query_filter {
    const char *workflow;   /* NULL: any */
    const char *status;     /* NULL: any */
    int64_t created_after;  /* 0: none */
    int64_t created_before; /* 0: none */
    int64_t before_seq;     /* the keyset cursor: only older executions; 0: from the newest */
    int limit;              /* at least 1 */
};
/* One page of ns's executions, as documents without their steps: *items
 * an array; *next_seq the cursor of the next page (its before_seq), 0 when
 * this page is the last. */
int query_executions(struct wfo_engine *e, const char *ns, const struct query_filter *f,
                     json_t **items, int64_t *next_seq, struct wfo_error *err);

/* Waits up to wait_ms for execution id to end: *ended is 1 when it has,
 * 0 when the wait ran out or the engine is stopping. *doc (doc not NULL)
 * is then its document when the commit that ended it handed it over
 * (engine.c E10), else NULL: read it with query_execution. WFO_ESTATE
 * before wfo_engine_launch() (engine_ready). */
int query_wait(struct wfo_engine *e, const char *ns, const char *id, int64_t wait_ms, int *ended,
               json_t **doc, struct wfo_error *err);

/* Workflow versions as {name, version, created_at, definition}: version
 * (0: the latest) of workflow name, or the latest of each of ns's
 * workflows ({"workflows": [...]}'s array, by name). */
int query_workflow(struct wfo_engine *e, const char *ns, const char *name, int version,
                   json_t **out, struct wfo_error *err);
int query_workflows(struct wfo_engine *e, const char *ns, json_t **out, struct wfo_error *err);

/* 0 when the store answers (/readyz). */
/* Has an execution whose status is NAME ("completed", ...) ended? 1 if it
 * has, 0 if it is running or paused, -1 for NULL or a name that is no
 * status. The by-name form of EX_ENDED (exec.h), for the API and the CLI. */
int query_status_ended(const char *name);

int query_ping(struct wfo_engine *e, struct wfo_error *err);

/* Where a request about execution id is served (a cluster, E8): 1 here
 * (its shard is this node's, or there is no cluster); 0 at the node whose
 * URL is put in url (size bytes), which holds its shard by a lease that
 * runs; WFO_EFENCED (503) when no live node holds it (a takeover under
 * way), or a store error. */
int query_owner(struct wfo_engine *e, const char *id, char *url, size_t size,
                struct wfo_error *err);
/* The URLs of the other live nodes of a cluster (a JSON array of strings,
 * new ref; empty outside a cluster). */
int query_peers(struct wfo_engine *e, json_t **urls, struct wfo_error *err);

#endif
