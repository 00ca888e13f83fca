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
#include "../common/map.h"

/* The rows of a batch by execution, for every back end: each execution's
 * state, steps and history become one chunk. v[0, n) in the order the
 * executions first appear; step_next and hist_next chain the rows of one
 * execution (-1 ends), in batch order. */
struct chunk_group {
    const char *id;
    const struct store_exec *x; /* NULL: no row in the batch */
    int step, last_step, hist, last_hist;
};

struct chunk_ptr {
    const char *id; /* NULL: a free slot */
    int group;      /* index + 1 */
};

struct chunk_groups {
    struct chunk_group *v;
    int n;
    int *step_next, *hist_next;
    struct wfo_map by_id; /* id -> index + 1 */
    /* The engine's rows of one execution share its id pointer: a table of
     * pointers (open addressing) finds most groups without hashing the
     * text; by_id finds the others. */
    struct chunk_ptr *by_ptr;
    size_t ptr_mask;
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
