/*
 * proc.c - runs one child process for the `exec` step and for worker
 * commands (SPEC 2.2, 5); docs/interfaces/internal.md explains the design,
 * proc.h lists the invariants cited below as (1)..(5).
 *
 * How a run goes:
 *   1. The parent builds the child's environment and four close-on-exec
 *      pipes (stdin, stdout, stderr, and "report", which carries an errno
 *      back when the child cannot exec), blocks every signal, forks.
 *   2. The child, doing only async-signal-safe calls, resets caught signals,
 *      leads a new process group, moves the pipes to 0/1/2, marks every other
 *      descriptor close-on-exec, changes directory, unblocks signals and
 *      execs. On failure it writes {stage, errno} to the report pipe.
 *   3. The parent reads the report pipe to its end: EOF alone means the exec
 *      happened. Then one poll() loop writes stdin, reads stdout and stderr,
 *      watches a pidfd for the child's exit (or checks every 50 ms where
 *      pidfd_open is missing), the cancel pipe and the deadline.
 *   4. The child is reaped last, after the final signal to its group (3).
 */
#include "common/compat.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"
#include "../common/buf.h"
#include "../common/util.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define PROC_CHUNK 65536
/* Where pidfd_open is missing, how often the loop looks for the child's exit. */
#define PROC_EXIT_CHECK_MS 50

enum proc_stage { PROC_STAGE_SETUP, PROC_STAGE_CHDIR, PROC_STAGE_EXEC };

/* What a child that could not exec writes to the report pipe. */
struct proc_report {
    int stage;
    int errnum;
};

/* What the child needs, all prepared before fork (no allocation after it). */
struct proc_child {
    char *const *argv;
    char **envp;
    const char *cwd;
    int in, out, err, report; /* all >= 3, all close-on-exec */
    int max_fd;               /* for the close loop when close_range is missing */
};

/* One captured output stream. */
struct proc_stream {
    int fd;
    struct wfo_buf buf;
    size_t cap;
    int tail;
    int truncated;
};

static int64_t proc_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *proc_strerror(int errnum, char *buf, size_t len)
{
    return strerror_r(errnum, buf, len); /* the GNU variant: returns the text */
}

static void proc_close(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* ---- cancellation ---- */

int proc_cancel_init(struct proc_cancel *c, struct wfo_error *err)
{
    char eb[128];

    atomic_init(&c->requested, 0);
    if (pipe2(c->wake_fd, O_CLOEXEC | O_NONBLOCK) != 0) {
        c->wake_fd[0] = c->wake_fd[1] = -1;
        return wfo_error_set(err, WFO_EIO, "cannot make a cancel pipe: %s",
                             proc_strerror(errno, eb, sizeof(eb)));
    }
    return 0;
}

void proc_cancel_release(struct proc_cancel *c)
{
    proc_close(&c->wake_fd[0]);
    proc_close(&c->wake_fd[1]);
}

void proc_cancel_request(struct proc_cancel *c)
{
    int saved = errno; /* may run in a signal handler */

    /* The byte is never read: it keeps the read end readable for every
     * poller, so a request is seen however many runs share c. */
    if (atomic_exchange(&c->requested, 1) == 0) {
        ssize_t n = write(c->wake_fd[1], "x", 1);
        (void)n;
    }
    errno = saved;
}

int proc_cancel_requested(struct proc_cancel *c)
{
    return atomic_load(&c->requested) != 0;
}

/* ---- the child's environment ---- */

static size_t proc_env_keylen(const char *kv)
{
    const char *eq = strchr(kv, '=');

    return eq ? (size_t)(eq - kv) : strlen(kv);
}

static int proc_env_same_key(const char *a, const char *b)
{
    size_t la = proc_env_keylen(a);

    return la == proc_env_keylen(b) && memcmp(a, b, la) == 0;
}

/* The inherited environment with env_add laid over it. The array is new
 * (caller frees), the strings are borrowed from environ and env_add. A later
 * env_add entry overrides an earlier one with the same key. */
static int proc_env_build(char *const *add, char ***out, struct wfo_error *err)
{
    size_t n = 0, m = 0, k = 0;
    char **envp;

    for (char **e = environ; e && *e; e++)
        n++;
    for (char *const *a = add; a && *a; a++, m++) {
        const char *eq = strchr(*a, '=');
        if (!eq || eq == *a)
            return wfo_error_set(err, WFO_EINVAL, "bad environment entry '%s': want KEY=VALUE", *a);
    }
    envp = wfo_calloc(n + m + 1, sizeof(*envp));
    for (size_t i = 0; i < n; i++) {
        int overridden = 0;
        for (size_t j = 0; j < m && !overridden; j++)
            overridden = proc_env_same_key(environ[i], add[j]);
        if (!overridden)
            envp[k++] = environ[i];
    }
    for (size_t j = 0; j < m; j++) {
        int later = 0;
        for (size_t l = j + 1; l < m && !later; l++)
            later = proc_env_same_key(add[j], add[l]);
        if (!later)
            envp[k++] = add[j];
    }
    envp[k] = NULL;
    *out = envp;
    return 0;
}

/* ---- the child side: async-signal-safe calls only ---- */

static _Noreturn void proc_child_run(const struct proc_child *c)
{
    struct proc_report r = {PROC_STAGE_SETUP, 0};
    sigset_t none;

    /* Caught signals would run wfo's handlers in the child until exec;
     * SIGPIPE, which wfo may ignore, must be at its default for the
     * command (5). The mask inherited from the parent blocks everything, so
     * nothing is delivered before this is done. */
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, NULL, &sa) != 0)
            continue;
        if (sig == SIGPIPE || (sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN)) {
            memset(&sa, 0, sizeof(sa));
            sa.sa_handler = SIG_DFL;
            sigaction(sig, &sa, NULL);
        }
    }
    if (setpgid(0, 0) != 0) /* (1) */
        goto fail;
    /* The pipe ends are all >= 3, so these cannot clobber one another; the
     * copies on 0..2 are not close-on-exec. */
    if (dup2(c->in, 0) < 0 || dup2(c->out, 1) < 0 || dup2(c->err, 2) < 0)
        goto fail;
    /* (2): everything from 3 up closes at exec; report is already
     * close-on-exec and must stay open until then. */
    if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
        for (int fd = 3; fd < c->max_fd; fd++)
            if (fd != c->report)
                close(fd);
    }
    if (c->cwd && chdir(c->cwd) != 0) {
        r.stage = PROC_STAGE_CHDIR;
        goto fail;
    }
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    environ = c->envp; /* execvp looks PATH up in environ */
    execvp(c->argv[0], c->argv);
    r.stage = PROC_STAGE_EXEC;
fail:
    r.errnum = errno;
    {
        ssize_t n = write(c->report, &r, sizeof(r));
        (void)n;
    }
    _exit(127);
}

/* ---- the parent side ---- */

/* A close-on-exec pipe whose ends are both >= 3 (see proc_child_run). */
static int proc_pipe(int fds[2])
{
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        if (fds[i] < 3) {
            int moved = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
            if (moved < 0) {
                close(fds[0]);
                close(fds[1]);
                fds[0] = fds[1] = -1;
                return -1;
            }
            close(fds[i]);
            fds[i] = moved;
        }
    }
    return 0;
}

static void proc_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* True once the child has ended; it stays a zombie, unreaped (3). */
static int proc_has_exited(pid_t pid)
{
    siginfo_t si;

    memset(&si, 0, sizeof(si));
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
        return errno != EINTR; /* ECHILD: someone broke (3); stop waiting */
    return si.si_pid == pid;
}

/* The group, and the child itself in case it left the group. Safe while the
 * child is unreaped: its pid, which is the group's id, cannot be reused. */
static void proc_kill_group(pid_t pid, int sig)
{
    kill(-pid, sig);
    kill(pid, sig);
}

static void proc_stream_keep(struct proc_stream *s, const char *p, size_t n)
{
    if (s->cap && !s->tail) {
        size_t room = s->cap - s->buf.len;
        if (n > room) {
            s->truncated = 1;
            n = room;
        }
    }
    if (n && wfo_buf_add(&s->buf, p, n) != 0) {
        s->truncated = 1;
        return;
    }
    /* Keeping the tail: cut back to cap only when the buffer doubles, so
     * the copying stays linear in the output's size. */
    if (s->cap && s->tail && s->buf.len > 2 * s->cap) {
        memmove(s->buf.buf, s->buf.buf + s->buf.len - s->cap, s->cap);
        s->buf.len = s->cap;
        s->buf.buf[s->cap] = '\0';
        s->truncated = 1;
    }
}

static void proc_stream_finish(struct proc_stream *s, char **out, size_t *len, int *truncated)
{
    if (s->cap && s->tail && s->buf.len > s->cap) {
        memmove(s->buf.buf, s->buf.buf + s->buf.len - s->cap, s->cap);
        s->buf.len = s->cap;
        s->buf.buf[s->cap] = '\0';
        s->truncated = 1;
    }
    *out = wfo_buf_detach(&s->buf, len);
    *truncated = s->truncated;
}

/* Reads what is there; closes the stream at EOF or on a read error. */
static void proc_stream_read(struct proc_stream *s, char *scratch)
{
    ssize_t n = read(s->fd, scratch, PROC_CHUNK);

    if (n > 0)
        proc_stream_keep(s, scratch, (size_t)n);
    else if (n == 0 || (errno != EINTR && errno != EAGAIN))
        proc_close(&s->fd);
}

static int64_t proc_min_deadline(int64_t a, int64_t b)
{
    return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

/* The pipes of one run: [0] read end, [1] write end. */
struct proc_pipes {
    int in[2], out[2], err[2], report[2];
};

/* Forks and execs; on success *pid is the child, which has exec'd. Closes
 * the child's ends of the pipes in the parent either way. */
static int proc_spawn(const struct proc_spec *spec, struct proc_child *c, struct proc_pipes *p,
                      pid_t *pid, struct wfo_error *err)
{
    char eb[128];
    sigset_t all, before;
    struct proc_report r;
    ssize_t n;
    size_t got = 0;
    int saved;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &before);
    *pid = fork();
    if (*pid == 0)
        proc_child_run(c);
    saved = errno;
    pthread_sigmask(SIG_SETMASK, &before, NULL);
    proc_close(&p->in[0]);
    proc_close(&p->out[1]);
    proc_close(&p->err[1]);
    proc_close(&p->report[1]); /* so that the read below sees EOF at exec */
    if (*pid < 0)
        return wfo_error_set(err, WFO_EIO, "cannot run '%s': fork: %s", spec->argv[0],
                             proc_strerror(saved, eb, sizeof(eb)));
    while (got < sizeof(r)) {
        n = read(p->report[0], (char *)&r + got, sizeof(r) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got == 0)
        return 0;
    while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
        ;
    if (got < sizeof(r))
        return wfo_error_set(err, WFO_EIO, "cannot run '%s': the child died before exec",
                             spec->argv[0]);
    if (r.stage == PROC_STAGE_CHDIR)
        return wfo_error_set(err, WFO_EIO, "cannot change to directory '%s': %s", spec->cwd,
                             proc_strerror(r.errnum, eb, sizeof(eb)));
    if (r.stage == PROC_STAGE_EXEC)
        return wfo_error_set(err, WFO_EIO, "cannot run '%s': %s", spec->argv[0],
                             proc_strerror(r.errnum, eb, sizeof(eb)));
    return wfo_error_set(err, WFO_EIO, "cannot start '%s': %s", spec->argv[0],
                         proc_strerror(r.errnum, eb, sizeof(eb)));
}

static int proc_pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
#else
    return -1;
#endif
}

/* Writes what the pipe takes of the rest of stdin; closes it when all is
 * written or the child closed its end (EPIPE: SIGPIPE is blocked, (5)). */
static void proc_write_stdin(const struct proc_spec *spec, int *fd, size_t *off)
{
    size_t n = spec->stdin_len - *off;
    ssize_t w = write(*fd, spec->stdin_data + *off, n < PROC_CHUNK ? n : PROC_CHUNK);

    if (w > 0)
        *off += (size_t)w;
    else if (w < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (w <= 0 || *off == spec->stdin_len)
        proc_close(fd);
}

/* The poll loop (step 3 above). Returns how the run ended; the child has
 * exited (not yet reaped) when it returns. */
static enum proc_end proc_wait(const struct proc_spec *spec, pid_t pid, int64_t start,
                               struct proc_pipes *p, struct proc_stream *out,
                               struct proc_stream *errs)
{
    enum { P_IN, P_OUT, P_ERR, P_CANCEL, P_PID, P_N };
    enum proc_end why = PROC_EXITED;
    int64_t deadline = spec->timeout_ms > 0 ? start + spec->timeout_ms : -1;
    int64_t kill_at = -1, drain_until = -1;
    int exited = 0, killing = 0; /* 1: SIGTERM sent, 2: SIGKILL sent */
    int pidfd = proc_pidfd_open(pid);
    size_t in_off = 0;
    char *scratch = wfo_malloc(PROC_CHUNK);

    if (spec->stdin_len == 0)
        proc_close(&p->in[1]);
    else
        proc_set_nonblock(p->in[1]); /* (4) */
    proc_set_nonblock(out->fd);
    proc_set_nonblock(errs->fd);
    for (;;) {
        struct pollfd pfd[P_N];
        int64_t now, wake = -1;
        int timeout;

        if (!exited)
            exited = proc_has_exited(pid);
        now = proc_now_ms();
        if (!exited && !killing) {
            if (spec->cancel && proc_cancel_requested(spec->cancel))
                why = PROC_CANCELLED;
            else if (deadline >= 0 && now >= deadline)
                why = PROC_TIMED_OUT;
            if (why != PROC_EXITED) {
                proc_kill_group(pid, SIGTERM); /* (1) */
                killing = 1;
                kill_at = now + PROC_KILL_GRACE_MS;
            }
        }
        if (killing == 1 && (now >= kill_at || (exited && out->fd < 0 && errs->fd < 0))) {
            proc_kill_group(pid, SIGKILL);
            killing = 2;
        }
        if (exited) {
            if (drain_until < 0)
                drain_until = now + PROC_KILL_GRACE_MS;
            if ((out->fd < 0 && errs->fd < 0) || now >= drain_until)
                break;
        }

        if (!exited && !killing)
            wake = deadline;
        if (killing == 1)
            wake = proc_min_deadline(wake, kill_at);
        if (exited)
            wake = proc_min_deadline(wake, drain_until);
        if (!exited && pidfd < 0)
            wake = proc_min_deadline(wake, now + PROC_EXIT_CHECK_MS);
        timeout = wake < 0 ? -1 : wake - now > INT_MAX ? INT_MAX : (int)(wake - now);

        pfd[P_IN] = (struct pollfd){.fd = exited ? -1 : p->in[1], .events = POLLOUT};
        pfd[P_OUT] = (struct pollfd){.fd = out->fd, .events = POLLIN};
        pfd[P_ERR] = (struct pollfd){.fd = errs->fd, .events = POLLIN};
        pfd[P_CANCEL] = (struct pollfd){
            .fd = spec->cancel && !exited && !killing ? spec->cancel->wake_fd[0] : -1,
            .events = POLLIN};
        pfd[P_PID] = (struct pollfd){.fd = exited ? -1 : pidfd, .events = POLLIN};
        if (poll(pfd, P_N, timeout) < 0)
            continue; /* EINTR, or ENOMEM: the loop tries again */
        if (pfd[P_IN].revents)
            proc_write_stdin(spec, &p->in[1], &in_off);
        if (pfd[P_OUT].revents)
            proc_stream_read(out, scratch);
        if (pfd[P_ERR].revents)
            proc_stream_read(errs, scratch);
        /* P_CANCEL and P_PID only wake the loop; its top looks at them. */
    }
    proc_close(&pidfd);
    free(scratch);
    return why;
}

int proc_run(const struct proc_spec *spec, struct proc_result *res, struct wfo_error *err)
{
    struct proc_pipes p = {{-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}};
    struct proc_stream out = {-1, WFO_BUF_INIT, 0, 0, 0};
    struct proc_stream errs = {-1, WFO_BUF_INIT, 0, 0, 0};
    struct proc_child child;
    char **envp = NULL;
    char eb[128];
    sigset_t pipeset, oldmask, pending;
    int pipe_was_pending = 0, masked = 0, status = 0, rc;
    enum proc_end why;
    int64_t start = proc_now_ms();
    long open_max = sysconf(_SC_OPEN_MAX);
    pid_t pid = -1;

    memset(res, 0, sizeof(*res));
    if (!spec->argv || !spec->argv[0] || !spec->argv[0][0]) {
        rc = wfo_error_set(err, WFO_EINVAL, "no command to run");
        goto out;
    }
    if (spec->stdin_len && !spec->stdin_data) {
        rc = wfo_error_set(err, WFO_EINVAL, "stdin_len without stdin_data");
        goto out;
    }
    rc = proc_env_build(spec->env_add, &envp, err);
    if (rc)
        goto out;
    if (spec->cancel && proc_cancel_requested(spec->cancel)) {
        res->end = PROC_CANCELLED;
        res->exit_code = -1;
        res->out = wfo_strdup("");
        res->err = wfo_strdup("");
        goto out;
    }
    if (proc_pipe(p.in) || proc_pipe(p.out) || proc_pipe(p.err) || proc_pipe(p.report)) {
        rc = wfo_error_set(err, WFO_EIO, "cannot run '%s': pipe: %s", spec->argv[0],
                           proc_strerror(errno, eb, sizeof(eb)));
        goto out;
    }

    /* (5): SIGPIPE stays blocked in this thread while the run lasts. */
    sigemptyset(&pipeset);
    sigaddset(&pipeset, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipeset, &oldmask);
    masked = 1;
    sigpending(&pending);
    pipe_was_pending = sigismember(&pending, SIGPIPE);

    child = (struct proc_child){
        .argv = spec->argv,
        .envp = envp,
        .cwd = spec->cwd,
        .in = p.in[0],
        .out = p.out[1],
        .err = p.err[1],
        .report = p.report[1],
        .max_fd = open_max > 0 && open_max < 65536 ? (int)open_max : 65536,
    };
    rc = proc_spawn(spec, &child, &p, &pid, err);
    if (rc)
        goto out;

    out.fd = p.out[0];
    p.out[0] = -1;
    out.cap = spec->max_output;
    errs.fd = p.err[0];
    p.err[0] = -1;
    errs.cap = spec->max_output;
    errs.tail = spec->stderr_tail;
    why = proc_wait(spec, pid, start, &p, &out, &errs);
    proc_close(&p.in[1]);
    proc_close(&out.fd);
    proc_close(&errs.fd);
    while (waitpid(pid, &status, 0) < 0) { /* (3) */
        if (errno != EINTR) {
            rc = wfo_error_set(err, WFO_EIO, "cannot wait for '%s': %s", spec->argv[0],
                               proc_strerror(errno, eb, sizeof(eb)));
            goto out;
        }
    }

    res->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    res->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    if (why != PROC_EXITED)
        res->end = why;
    else
        res->end = WIFSIGNALED(status) ? PROC_SIGNALED : PROC_EXITED;
    proc_stream_finish(&out, &res->out, &res->out_len, &res->out_truncated);
    proc_stream_finish(&errs, &res->err, &res->err_len, &res->err_truncated);
    res->duration_ms = proc_now_ms() - start;

out:
    if (masked) {
        /* Consume a SIGPIPE this run caused before unblocking it. */
        sigpending(&pending);
        if (!pipe_was_pending && sigismember(&pending, SIGPIPE)) {
            struct timespec zero = {0, 0};
            sigtimedwait(&pipeset, NULL, &zero);
        }
        pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
    }
    proc_close(&p.in[0]);
    proc_close(&p.in[1]);
    proc_close(&p.out[0]);
    proc_close(&p.out[1]);
    proc_close(&p.err[0]);
    proc_close(&p.err[1]);
    proc_close(&p.report[0]);
    proc_close(&p.report[1]);
    proc_close(&out.fd);
    proc_close(&errs.fd);
    wfo_buf_release(&out.buf);
    wfo_buf_release(&errs.buf);
    free(envp);
    return rc;
}

void proc_result_release(struct proc_result *res)
{
    free(res->out);
    free(res->err);
    memset(res, 0, sizeof(*res));
}
