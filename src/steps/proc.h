/*
 * proc.h - runs one child process: argv, stdin, extra environment, cwd,
 * timeout, cancellation, captured and capped stdout/stderr.
 * Used by the `exec` step (SPEC 2.2) and, through steps/taskcmd.h, by the
 * worker command protocol (SPEC 5). docs/interfaces/internal.md describes it.
 *
 * What must stay true:
 *  1. The child leads its own process group. On timeout or cancel the whole
 *     group (grandchildren included) gets SIGTERM, then SIGKILL once the
 *     child has exited and its pipes are closed, or PROC_KILL_GRACE_MS after
 *     the SIGTERM, whichever comes first.
 *  2. The child inherits no descriptor but its stdin, stdout and stderr.
 *  3. proc_run reaps its child before it returns: no zombies. The child is
 *     reaped only after the last signal sent to its group, so the group id
 *     cannot have been reused by then. Nobody else in the process may wait
 *     for any child (waitpid(-1)) or set SIGCHLD to SIG_IGN.
 *  4. A child that never reads its stdin, or writes more than max_output,
 *     never blocks proc_run: stdin is written without blocking, output past
 *     the cap is read and thrown away.
 *  5. SIGPIPE from writing to a child that closed its stdin cannot kill the
 *     caller: proc_run blocks SIGPIPE in the calling thread while it runs and
 *     consumes one it caused itself; the process-wide disposition is left
 *     alone. The child starts with an empty signal mask and with caught
 *     signals and SIGPIPE at their default (other ignored signals stay
 *     ignored, as with nohup).
 *
 * When the child exits normally while something it started still holds its
 * stdout or stderr open, proc_run reads for PROC_KILL_GRACE_MS more, then
 * returns without killing anything (a command may leave a daemon behind).
 *
 * Threads: proc_run may be called from many threads at once.
 */
#ifndef WFO_STEPS_PROC_H
#define WFO_STEPS_PROC_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/error.h"

#define PROC_KILL_GRACE_MS 200

/* A cancellation flag that also wakes the poll loop of every proc_run using
 * it. Once requested it stays requested. */
struct proc_cancel {
    atomic_int requested;
    int wake_fd[2]; /* a pipe; a byte in it means "requested" */
};

int proc_cancel_init(struct proc_cancel *c, struct wfo_error *err);
void proc_cancel_release(struct proc_cancel *c);
/* Async-signal-safe, callable from any thread, any number of times. */
void proc_cancel_request(struct proc_cancel *c);
int proc_cancel_requested(struct proc_cancel *c);

/* Everything borrowed for the duration of proc_run. */
struct proc_spec {
    char *const *argv;      /* argv[0] looked up in PATH (the PATH of the child's environment) */
    const char *stdin_data; /* written to the child's stdin, then closed */
    size_t stdin_len;       /* 0: the child's stdin is at EOF at once */
    char *const *env_add;   /* "KEY=VALUE" strings added to (overriding) the inherited
                               environment; NULL-terminated, or NULL */
    const char *cwd;        /* NULL: inherit */
    int64_t timeout_ms;     /* 0: none */
    size_t max_output;      /* cap on stdout and on stderr each; 0: no cap */
    int stderr_tail;        /* keep the last max_output bytes of stderr, not the first */
    struct proc_cancel *cancel; /* NULL: cannot be cancelled */
};

enum proc_end {
    PROC_EXITED,    /* exit_code is set */
    PROC_SIGNALED,  /* signal is set */
    PROC_TIMED_OUT, /* ran past timeout_ms and was killed */
    PROC_CANCELLED, /* cancel was requested (before the start or while it ran) */
};

struct proc_result {
    enum proc_end end;
    int exit_code; /* WEXITSTATUS when the child exited, else -1 */
    int signal;    /* WTERMSIG when a signal ended the child, else 0 */
    char *out;     /* NUL-terminated (the data may hold NULs too); never NULL after success */
    size_t out_len;
    char *err;
    size_t err_len;
    int out_truncated, err_truncated; /* output past max_output was thrown away */
    int64_t duration_ms;
};

/* Runs the child to its end. Returns 0 when the child ran, whatever its
 * exit (or when cancel was requested before the start: end is
 * PROC_CANCELLED and nothing ran); WFO_EINVAL for an empty argv or an
 * env_add entry without '='; WFO_EIO when it could not be started ("cannot
 * run 'nosuchcmd': No such file or directory", "cannot change to directory
 * 'DIR': ..."). res is filled only on 0; free it with proc_result_release. */
int proc_run(const struct proc_spec *spec, struct proc_result *res, struct wfo_error *err);
void proc_result_release(struct proc_result *res);

#endif
