/*
 * test_chunk.c - the encoding of an execution's changes of one commit
 * (store/chunk.h): round trips, NULL strings, and damaged values refused at
 * every length without reading past the end.
 */
#include "common/compat.h"

#include <stdlib.h>
#include <string.h>

#include "store/chunk.h"
#include "../tap.h"

static void encode(struct wfo_buf *b)
{
    struct store_step s = {.path = "par/a",
                           .ord = 3,
                           .status = "completed",
                           .attempts = 2,
                           .output = "{\"x\":1}",
                           .error = NULL,
                           .state = "{\"token\":7}",
                           .started_at = 1700000000123,
                           .finished_at = -5,
                           .input = ""};
    struct store_history h = {.seq = 42,
                              .time = 99,
                              .type = "step.completed",
                              .step = NULL,
                              .data = "{\"\\u00e9\":true}"};
    chunk_begin(b);
    chunk_put_state(b, 1234, "{\"hseq\":42}");
    chunk_put_step(b, &s);
    chunk_put_history(b, &h);
}

TEST(round_trip)
{
    struct wfo_buf b = WFO_BUF_INIT;
    struct wfo_error err = WFO_ERROR_INIT;
    struct chunk_reader r;
    struct chunk_rec rec;

    encode(&b);
    is_int(chunk_open(&r, b.buf, b.len, "e1", &err), 0, "opens");
    is_int(chunk_next(&r, &rec, &err), 1, "first record");
    ok(rec.tag == CHUNK_STATE && rec.time == 1234, "the state, with its time");
    is_str(rec.state, "{\"hseq\":42}", "state text");
    is_int(chunk_next(&r, &rec, &err), 1, "second record");
    ok(rec.tag == CHUNK_STEP, "a step");
    is_str(rec.step.exec_id, "e1", "its execution is the reader's");
    is_str(rec.step.path, "par/a", "path");
    is_int(rec.step.ord, 3, "ord");
    is_str(rec.step.status, "completed", "status");
    is_int(rec.step.attempts, 2, "attempts");
    is_str(rec.step.output, "{\"x\":1}", "output");
    ok(rec.step.error == NULL, "a NULL stays NULL");
    is_str(rec.step.state, "{\"token\":7}", "state");
    is_int(rec.step.started_at, 1700000000123, "a 64-bit time");
    is_int(rec.step.finished_at, -5, "a negative integer");
    is_str(rec.step.input, "", "an empty string is not NULL");
    is_int(chunk_next(&r, &rec, &err), 1, "third record");
    ok(rec.tag == CHUNK_HISTORY && rec.history.seq == 42 && rec.history.time == 99,
       "a history entry");
    is_str(rec.history.type, "step.completed", "type");
    ok(rec.history.step == NULL, "no step");
    is_str(rec.history.data, "{\"\\u00e9\":true}", "data");
    is_int(chunk_next(&r, &rec, &err), 0, "then the end");
    is_int(chunk_next(&r, &rec, &err), 0, "and it stays at the end");
    wfo_buf_release(&b);
}

/* Every shorter prefix, and every single-byte change, is refused or read
 * within its bounds (ASan would catch a read past the copy). */
TEST(damaged)
{
    struct wfo_buf b = WFO_BUF_INIT;
    struct wfo_error err = WFO_ERROR_INIT;
    struct chunk_reader r;
    struct chunk_rec rec;

    encode(&b);
    is_int(chunk_open(&r, "WC2", 3, "e", &err), WFO_ESTORE, "another magic is refused");
    is_int(chunk_open(&r, NULL, 0, "e", &err), WFO_ESTORE, "nothing is refused");
    int refused = 0, cut = 0;
    for (size_t n = 3; n < b.len; n++) {
        char *copy = malloc(n);
        memcpy(copy, b.buf, n);
        int rc = chunk_open(&r, copy, n, "e", &err);
        int records = 0;
        while (rc == 0 && (rc = chunk_next(&r, &rec, &err)) == 1) {
            records++;
            rc = 0;
        }
        cut++;
        refused += rc == WFO_ESTORE || records < 3;
        free(copy);
    }
    is_int(refused, cut, "every truncation loses a record or is refused");
    /* a string whose NUL is missing */
    char *copy = malloc(b.len);
    memcpy(copy, b.buf, b.len);
    copy[3 + 1 + 8 + 4 + strlen("{\"hseq\":42}")] = 'x';
    chunk_open(&r, copy, b.len, "e", &err);
    is_int(chunk_next(&r, &rec, &err), WFO_ESTORE, "a string without its NUL is refused");
    ok(strstr(err.message, "damaged") != NULL, "saying so: %s", err.message);
    is_int(chunk_next(&r, &rec, &err), 0, "and the reader stops");
    /* a length that points past the end */
    memcpy(copy, b.buf, b.len);
    copy[3 + 1 + 8 + 3] = 0x7f;
    chunk_open(&r, copy, b.len, "e", &err);
    is_int(chunk_next(&r, &rec, &err), WFO_ESTORE, "a length past the end is refused");
    /* an unknown tag */
    memcpy(copy, b.buf, b.len);
    copy[3] = 'Z';
    chunk_open(&r, copy, b.len, "e", &err);
    is_int(chunk_next(&r, &rec, &err), WFO_ESTORE, "an unknown tag is refused");
    free(copy);
    wfo_buf_release(&b);
}

int main(void)
{
    return tap_run();
}

/* The rows of a batch grouped by execution: by the id's pointer when rows
 * share it (the engine's), by its text otherwise; each group's steps and
 * history in batch order; groups in order of first appearance. */
TEST(groups)
{
    static char a1[] = "exec-a", a2[] = "exec-a", b1[] = "exec-b";
    struct store_batch b;
    struct chunk_groups g = {0};
    store_batch_init(&b);
    store_batch_exec(&b)->id = a1;
    struct store_history *h = store_batch_history(&b);
    h->exec_id = b1; /* b's first row: a history entry */
    h->seq = 1;
    for (int i = 0; i < 40; i++) { /* a2: another pointer, a's text */
        h = store_batch_history(&b);
        h->exec_id = i % 2 ? a1 : a2;
        h->seq = 10 + i;
        struct store_step *st = store_batch_step(&b);
        st->exec_id = i % 3 ? b1 : a2;
        st->ord = i;
    }
    h = store_batch_history(&b);
    h->exec_id = NULL;
    h->seq = 99;
    chunk_groups_build(&g, &b);
    is_int(g.n, 3, "three groups: a, b and the one without an id");
    ok(g.v[0].x == &b.execs[0] && g.v[0].id == a1, "a first, with its row");
    ok(g.v[1].id == b1 && !g.v[1].x, "then b, no row");
    ok(g.v[2].id == NULL, "then the NULL id");
    int n = 0, in_order = 1, last = 0;
    for (int i = g.v[0].hist; i >= 0; i = g.hist_next[i], n++) {
        in_order &= b.history[i].seq > last;
        last = (int)b.history[i].seq;
    }
    is_int(n, 40, "a's 40 history entries, whichever pointer named it");
    ok(in_order, "in batch order");
    n = 0;
    for (int i = g.v[1].step; i >= 0; i = g.step_next[i])
        n += strcmp(b.steps[i].exec_id, "exec-b") == 0;
    is_int(n, 26, "b's 26 steps");
    n = 0;
    for (int i = g.v[0].step; i >= 0; i = g.step_next[i])
        n++;
    is_int(n, 14, "a's 14 steps");
    n = 0;
    for (int i = g.v[1].hist; i >= 0; i = g.hist_next[i])
        n++;
    is_int(n, 1, "b's one history entry");

    /* built again, its tables kept: nothing of the first batch is left */
    struct store_batch b2;
    store_batch_init(&b2);
    static char c1[] = "exec-c";
    for (int i = 0; i < 3; i++) {
        h = store_batch_history(&b2);
        h->exec_id = i == 1 ? b1 : c1;
        h->seq = i + 1;
    }
    chunk_groups_build(&g, &b2);
    is_int(g.n, 2, "a second batch: its own two groups");
    ok(g.v[0].id == c1 && !g.v[0].x && g.v[1].id == b1, "c then b, no row left from before");
    n = 0;
    for (int i = g.v[0].hist; i >= 0; i = g.hist_next[i])
        n++;
    is_int(n, 2, "c's two entries");
    chunk_groups_release(&g);
    store_batch_release(&b2);
    store_batch_release(&b);
}
