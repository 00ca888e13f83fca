/*
 * main.c - `wfo COMMAND ...`: the commands table (git's builtin/ in
 * spirit). docs/overview.md lists the commands.
 */
#include "common/compat.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "wfo/wfo.h"
#include "../common/util.h"
#include "../common/yaml.h"

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *usage;
};

/* Each command's usage, here only: `wfo --help` lists them, `wfo COMMAND
 * --help` and the commands' usage errors print theirs (cli_usage). */
static const struct command commands[] = {
    {"run", cmd_run,
     "run FILE [--input JSON|@FILE] [--db URL] [--handler QUEUE=COMMAND]... [--quiet]"},
    {"validate", cmd_validate, "validate FILE..."},
    {"server", cmd_server,
     "server [--config FILE] [--listen ADDR:PORT] [--db URL] [--print-config]"},
    {"worker", cmd_worker,
     "worker --queue Q [--queue Q2]... [--concurrency N] [--heartbeat DURATION] [--server URL] "
     "-- COMMAND [ARG]..."},
    {"workflow", cmd_workflow,
     "workflow put FILE | list | get NAME [--version V] | delete NAME [--server URL]"},
    {"start", cmd_start,
     "start NAME [--input JSON|@FILE] [--id ID] [--version V] [--wait] [--server URL]"},
    {"get", cmd_get, "get ID [--wait DURATION] [--server URL]"},
    {"list", cmd_list,
     "list [--workflow W] [--status S] [--limit N] [--cursor C] [--table] [--server URL]"},
    {"history", cmd_history, "history ID [--server URL]"},
    {"delete", cmd_delete, "delete ID [--server URL]"},
    {"cancel", cmd_cancel, "cancel ID [--compensate] [--reason TEXT] [--server URL]"},
    {"terminate", cmd_terminate, "terminate ID [--server URL]"},
    {"pause", cmd_pause, "pause ID [--server URL]"},
    {"resume", cmd_resume, "resume ID [--server URL]"},
    {"retry", cmd_retry, "retry ID [--from PATH] [--server URL]"},
    {"signal", cmd_signal, "signal ID NAME [--data JSON|@FILE] [--server URL]"},
    {"emit", cmd_emit,
     "emit TYPE [--key K] [--data JSON|@FILE] [--id ID] [--source S] [--server URL]"},
    {"events", cmd_events, "events tail [--types T] [--execution ID] [--server URL]"},
    {"subscriptions", cmd_subscriptions,
     "subscriptions add URL --types T[,T...] --secret S [--workflow W] | list | delete ID "
     "[--server URL]"},
    {"queues", cmd_queues, "queues [--server URL]"},
};

const char *cli_usage(const char *name)
{
    for (size_t i = 0; i < WFO_ARRAY_SIZE(commands); i++)
        if (strcmp(commands[i].name, name) == 0)
            return commands[i].usage;
    return name;
}

static void usage_line(FILE *f, const char *name)
{
    fprintf(f, "usage: wfo %s\n", cli_usage(name));
}

void cli_help(const char *name)
{
    usage_line(stdout, name);
}

void cli_usage_error(const char *name)
{
    usage_line(stderr, name);
}

void cli_server(const char *url, char **base, char **auth)
{
    const char *token = getenv("WFO_TOKEN");
    struct wfo_buf b = WFO_BUF_INIT;

    if (!url || !url[0])
        url = getenv("WFO_SERVER");
    if (!url || !url[0])
        url = CLI_DEFAULT_SERVER;
    if (!strstr(url, "://"))
        wfo_buf_adds(&b, "http://");
    wfo_buf_adds(&b, url);
    while (b.len > 0 && b.buf[b.len - 1] == '/')
        b.buf[--b.len] = 0;
    *base = wfo_buf_detach(&b, NULL);
    *auth = NULL;
    if (token && token[0]) {
        wfo_buf_addf(&b, "Bearer %s", token);
        *auth = wfo_buf_detach(&b, NULL);
    }
}

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("wfo: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_load_doc(const char *file, json_t **doc, char **text, size_t *len)
{
    struct wfo_buf b;
    struct wfo_error err = WFO_ERROR_INIT;
    wfo_buf_init(&b, CLI_FILE_MAX);
    /* FILE: PATH: MESSAGE (SPEC 5) for the whole file too: PATH (root) */
    if (wfo_read_file(file, &b, &err) < 0) {
        if (err.code == WFO_ETOOBIG)
            snprintf(err.message, sizeof(err.message), "file is larger than %u MiB",
                     CLI_FILE_MAX >> 20);
        cli_problem(file, NULL, err.message);
        wfo_buf_release(&b);
        return EXIT_USAGE;
    }
    if (wfo_doc_parse(b.buf, b.len, doc, &err) < 0) {
        cli_problem(file, NULL, err.message);
        wfo_buf_release(&b);
        return EXIT_USAGE;
    }
    if (text)
        *text = wfo_buf_detach(&b, len);
    wfo_buf_release(&b);
    return 0;
}

int cli_input(const char *arg, char **out)
{
    struct wfo_buf b;
    struct wfo_error err = WFO_ERROR_INIT;
    json_t *v = NULL;
    wfo_buf_init(&b, CLI_FILE_MAX);
    if (arg[0] == '@') {
        if (wfo_read_file(arg + 1, &b, &err) < 0) {
            fprintf(stderr, "%s: %s\n", arg + 1, err.message);
            wfo_buf_release(&b);
            return EXIT_USAGE;
        }
    } else {
        wfo_buf_adds(&b, arg);
    }
    if (wfo_json_parse(b.buf, b.len, &v, &err) < 0) {
        cli_error("--input: %s", err.message);
        wfo_buf_release(&b);
        return EXIT_USAGE;
    }
    *out = wfo_json_dumps(v);
    json_decref(v);
    wfo_buf_release(&b);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: wfo COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < WFO_ARRAY_SIZE(commands); i++)
        fprintf(f, "  wfo %s\n", commands[i].usage);
    fprintf(f, "  wfo --version\n  wfo COMMAND --help\n");
}

/* `--help` or `-h` among a command's options (before `--`, and not as the
 * value of an option that takes one... which every command reads as help:
 * nobody names a file or a queue "--help"). */
static int wants_help(int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return 0;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("wfo %s\n", WFO_VERSION);
        return EXIT_OK;
    }
    /* client options given before the command: wfo --server URL get ID */
    while (argc > 2 && strncmp(argv[1], "--server", 8) == 0) {
        if (argv[1][8] == '=') {
            setenv("WFO_SERVER", argv[1] + 9, 1);
            argv++;
            argc--;
        } else if (argv[1][8] == 0) {
            setenv("WFO_SERVER", argv[2], 1);
            argv += 2;
            argc -= 2;
        } else {
            break;
        }
    }
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    for (size_t i = 0; i < WFO_ARRAY_SIZE(commands); i++)
        if (strcmp(argv[1], commands[i].name) == 0) {
            if (wants_help(argc, argv)) {
                cli_help(commands[i].name);
                return EXIT_OK;
            }
            return commands[i].fn(argc - 1, argv + 1);
        }
    cli_error("unknown command '%s'", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
