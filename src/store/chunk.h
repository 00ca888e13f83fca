/*
 * chunk.h - one execution's changes of one commit as one value: its state,
 * the steps that changed and the history entries appended, so that a
 * commit writes one row per execution instead of one per step and entry
 * (docs/implementation/database_optimization.md "Chunks"). Every back end
 * stores the same bytes (SQLite BLOB, PostgreSQL bytea).
 *
 * The format: "WC1", then records. A record is one tag byte ('E' the
 * execution's state, 'S' a step, 'H' a history entry) and its fields in a
 * fixed order; an integer is 8 bytes little-endian; a string is a 4-byte
 * little-endian length (0xffffffff: NULL), the bytes, and a NUL, so that a
 * reader points into the value instead of copying.
 */
#ifndef WFO_STORE_CHUNK_H
#define WFO_STORE_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "../common/buf.h"

/* The rows of a batch by execution, for every back end: each execution's
 * state, steps and history become one chunk. v[0, n) in the order the
 * executions first appear; step_next and hist_next chain the rows of one
 * execution (-1 ends), in batch order. */
struct chunk_group {
    const char *id;
    const struct store_exec *x; /* NULL: no row in the batch */
    int step, last_step, hist, last_hist;
};

/* A slot of chunk_groups' tables: empty unless its gen is the build's. */
struct chunk_slot {
    const char *key; /* the id's pointer (by_ptr) or text (by_text) */
    uint64_t hash;   /* by_text: the text's hash */
    int group;       /* index + 1 */
    uint32_t gen;
};

/* The rows of a batch by execution. Zeroed, it is empty; chunk_groups_build
 * fills it again each time, keeping its arrays (a store builds one per
 * batch: allocating and clearing them was a fifth of the SQLite writer's
 * time, bench engine), and chunk_groups_release frees them. */
struct chunk_groups {
    struct chunk_group *v;
    int n;
    int *step_next, *hist_next;
    size_t cap_v, cap_steps, cap_hist;
    /* Open addressing, cap slots each, at most half full. The engine's
     * rows of one execution share its id pointer: by_ptr finds their group
     * without reading the text; by_text (FNV-1a of the text) is looked at
     * once per pointer, for the rows of other callers. */
    struct chunk_slot *by_ptr, *by_text;
    size_t cap;
    uint32_t gen;
    const char *last_id; /* the last group found */
    int last;
};

struct chunk_rec;

/* A page of an execution's history read from its chunks (list_history):
 * chunk_page_rec, a record callback, hands cb the entries after `after`,
 * at most limit (0: all), then stops the read (full). */
struct chunk_page {
    store_history_cb cb;
    void *ud;
    int64_t after;
    int limit, n, full;
};
int chunk_page_rec(void *ud, const struct chunk_rec *rec);

void chunk_groups_build(struct chunk_groups *g, const struct store_batch *b);
void chunk_groups_release(struct chunk_groups *g);

void chunk_begin(struct wfo_buf *b);
void chunk_put_state(struct wfo_buf *b, int64_t time, const char *state);
void chunk_put_step(struct wfo_buf *b, const struct store_step *s);
void chunk_put_history(struct wfo_buf *b, const struct store_history *h);

enum chunk_tag { CHUNK_STATE = 'E', CHUNK_STEP = 'S', CHUNK_HISTORY = 'H' };

/* One record; its strings point into the chunk's bytes. */
struct chunk_rec {
    enum chunk_tag tag;
    int64_t time;      /* CHUNK_STATE */
    const char *state; /* CHUNK_STATE */
    struct store_step step;
    struct store_history history;
};

struct chunk_reader {
    const unsigned char *p, *end;
    const char *exec_id; /* set in every step and history record */
};

/* WFO_ESTORE when data is not a chunk. */
int chunk_open(struct chunk_reader *r, const void *data, size_t len, const char *exec_id,
               struct wfo_error *err);
/* 1 and *rec when there is one more record, 0 at the end, WFO_ESTORE when
 * the bytes are damaged (never reads past the end). */
int chunk_next(struct chunk_reader *r, struct chunk_rec *rec, struct wfo_error *err);

#endif
