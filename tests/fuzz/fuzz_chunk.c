/*
 * fuzz_chunk.c - libFuzzer target for the stored encoding of an
 * execution's changes of one commit (src/store/chunk.c): what a damaged
 * or hostile store row could hand the reader.
 *
 * An input is the bytes of one chunk value. What must hold: no crash or
 * sanitizer report (the reader never reads past the value); every record
 * read has its required strings; a value re-encoded from the records read
 * reads back to the same records.
 */
#include "common/compat.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/chunk.h"
#include "common/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Re-encodes what r reads into b; returns the number of records. */
static int reencode(struct chunk_reader *r, struct wfo_buf *b)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct chunk_rec rec;
    int n = 0, rc;

    while ((rc = chunk_next(r, &rec, &err)) == 1) {
        n++;
        if (rec.tag == CHUNK_STATE)
            chunk_put_state(b, rec.time, rec.state);
        else if (rec.tag == CHUNK_STEP && rec.step.path && rec.step.status)
            chunk_put_step(b, &rec.step);
        else if (rec.tag == CHUNK_HISTORY && rec.history.type)
            chunk_put_history(b, &rec.history);
        else
            abort(); /* a record without its required strings */
    }
    return rc < 0 ? -1 : n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct wfo_buf once = WFO_BUF_INIT, twice = WFO_BUF_INIT;
    struct chunk_reader r;
    /* a copy of exactly size bytes: ASan sees a read past the value */
    uint8_t *copy = malloc(size ? size : 1);

    memcpy(copy, data, size);
    if (chunk_open(&r, copy, size, "fuzz", &err) == 0) {
        chunk_begin(&once);
        int n = reencode(&r, &once);
        if (n >= 0) {
            if (chunk_open(&r, once.buf, once.len, "fuzz", &err) != 0)
                abort();
            chunk_begin(&twice);
            if (reencode(&r, &twice) != n || once.len != twice.len ||
                memcmp(once.buf, twice.buf, once.len) != 0)
                abort();
        }
    }
    free(copy);
    wfo_buf_release(&once);
    wfo_buf_release(&twice);
    return 0;
}
