/*
 * cli.h - the command line (SPEC 5): one commands[] table in main.c, one
 * function per command. Only cli/ prints and chooses exit codes.
 */
#ifndef WFO_CLI_CLI_H
#define WFO_CLI_CLI_H

#include "../common/json.h"

/* Exit codes of SPEC 5. */
#define EXIT_OK 0
#define EXIT_FAILED 1
#define EXIT_USAGE 2

/* Largest definition or input file read. */
#define CLI_FILE_MAX (8u << 20)

int cmd_run(int argc, char **argv);
int cmd_validate(int argc, char **argv);
int cmd_server(int argc, char **argv);
int cmd_worker(int argc, char **argv);
int cmd_workflow(int argc, char **argv);
int cmd_start(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_history(int argc, char **argv);
int cmd_delete(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
int cmd_terminate(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_retry(int argc, char **argv);
int cmd_signal(int argc, char **argv);
int cmd_emit(int argc, char **argv);
int cmd_queues(int argc, char **argv);
int cmd_events(int argc, char **argv);
int cmd_subscriptions(int argc, char **argv);

/* The usage text of a command ("start NAME [--input ...]"), from the one
 * commands[] table of main.c, the only place it is written. cli_help
 * prints "usage: wfo TEXT" on stdout (--help), cli_usage_error the same
 * on stderr (a usage error); `wfo --help` lists the table. */
const char *cli_usage(const char *name);
void cli_help(const char *name);
void cli_usage_error(const char *name);

/* Where the client commands and `wfo worker` reach the server (SPEC 5), the
 * one place that finds it: url (--server) when given, else $WFO_SERVER,
 * else CLI_DEFAULT_SERVER; "http://" goes in front of one without a
 * scheme and trailing slashes are dropped. *base gets the URL, *auth
 * "Bearer $WFO_TOKEN" or NULL without a token: new strings, caller frees. */
#define CLI_DEFAULT_SERVER "http://127.0.0.1:7233"
void cli_server(const char *url, char **base, char **auth);

/* Prints "wfo: MESSAGE" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reads a definition file and parses it. On failure prints
 * "FILE: MESSAGE" and returns EXIT_USAGE. */
int cli_load_doc(const char *file, json_t **doc, char **text, size_t *len);
/* One problem of a definition on stderr as SPEC 5 says, `FILE: PATH:
 * MESSAGE`; a problem of the whole document (empty path) says `(root)`. */
void cli_problem(const char *file, const char *path, const char *message);

/* --input JSON|@FILE into a new JSON text; EXIT_USAGE with a message. */
int cli_input(const char *arg, char **out);

#endif
