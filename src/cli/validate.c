/*
 * validate.c - `wfo validate FILE...` (SPEC 5): every problem of every file
 * as `FILE: PATH: MESSAGE`; exit 2 when there is one. A valid file gets
 * `FILE: ok` (all on stderr).
 */
#include "common/compat.h"

#include <stdio.h>

#include "cli.h"
#include "../core/def.h"

void cli_problem(const char *file, const char *path, const char *message)
{
    fprintf(stderr, "%s: %s: %s\n", file, path && *path ? path : "(root)", message);
}

int cmd_validate(int argc, char **argv)
{
    int bad = 0;
    if (argc < 2) {
        cli_error("validate: no FILE given");
        cli_usage_error("validate");
        return EXIT_USAGE;
    }
    for (int i = 1; i < argc; i++) {
        json_t *doc = NULL;
        if (cli_load_doc(argv[i], &doc, NULL, NULL)) {
            bad = 1;
            continue;
        }
        struct def *d = NULL;
        struct def_problems probs = {0};
        if (def_compile(doc, &d, &probs) < 0) {
            bad = 1;
            for (int k = 0; k < probs.n; k++)
                cli_problem(argv[i], probs.items[k].path, probs.items[k].message);
        } else {
            fprintf(stderr, "%s: ok\n", argv[i]);
        }
        def_problems_release(&probs);
        def_unref(d);
        json_decref(doc);
    }
    fflush(stdout);
    return bad ? EXIT_USAGE : EXIT_OK;
}
