/*
 * fuzz_definition.c - libFuzzer target for definitions: the YAML/JSON
 * document parser (src/common/yaml.c, json.c) and the validator and
 * compiler (src/core/def.c: every step type, templates, retry, catch,
 * durations, cron triggers). docs/interfaces/internal.md.
 *
 * An input is a definition as text, YAML or JSON (wfo_doc_parse picks by
 * its first byte). What must hold: no crash or sanitizer report; a
 * document that is not an object, or one def_compile refuses, gives
 * WFO_EDEFINITION/WFO_EPARSE-style errors with at least one problem, each
 * with a path and a message; one it accepts compiles again to the same hash
 * (the canonical form is deterministic), and walking it (task queues, step
 * types) stays inside it.
 */
#include "common/compat.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/def.h"
#include "common/buf.h"
#include "common/json.h"
#include "common/yaml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct def_problems probs = {0};
    struct def *d = NULL, *again = NULL;
    json_t *doc = NULL;

    if (wfo_doc_parse((const char *)data, size, &doc, &err) < 0) {
        if (!err.message[0])
            abort();
        return 0;
    }
    int rc = def_compile(doc, &d, &probs);
    if (rc < 0) {
        if (rc != WFO_EDEFINITION || probs.n < 1 || d)
            abort();
        for (int i = 0; i < probs.n; i++)
            if (!probs.items[i].path || !probs.items[i].message || !probs.items[i].message[0])
                abort();
        goto out;
    }
    if (!d || probs.n)
        abort();
    const char **queues = def_task_queues(d);
    for (const char **q = queues; *q; q++)
        if (!(*q)[0])
            abort();
    free(queues);
    struct wfo_buf path = WFO_BUF_INIT;
    for (int t = 0; t < STEP__COUNT; t++) {
        wfo_buf_reset(&path);
        if (def_find_type(d, (enum step_type)t, &path) && strncmp(path.buf, "steps[", 6) != 0)
            abort();
    }
    wfo_buf_release(&path);
    json_t *copy = json_deep_copy(doc);
    if (def_compile(copy, &again, &probs) < 0 || strcmp(again->hash, d->hash) != 0)
        abort();
    json_decref(copy);
out:
    def_unref(again);
    def_unref(d);
    def_problems_release(&probs);
    json_decref(doc);
    return 0;
}
