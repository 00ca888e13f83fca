/*
 * test_proc.c - tests of steps/proc.c, the child process runner, with real
 * processes: exit codes, capture, caps, stdin, environment, cwd, timeouts
 * and process-group kills, cancellation, start failures, fd and zombie
 * leaks. docs/interfaces/internal.md describes the runner.
 */
#include "common/compat.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "steps/proc.h"
#include "../tap.h"

#define MIB (1024 * 1024)

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs `sh -c script` with the given stdin, timeout and cap. */
static int run_sh(const char *script, const char *in, size_t in_len, int64_t timeout_ms, size_t cap,
                  struct proc_result *res, struct wfo_error *err)
{
    char *argv[] = {"sh", "-c", (char *)script, NULL};
    struct proc_spec spec = {
        .argv = argv,
        .stdin_data = in,
        .stdin_len = in_len,
        .timeout_ms = timeout_ms,
        .max_output = cap,
    };

    return proc_run(&spec, res, err);
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (!d)
        return -1;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

/* True when pid is gone or a zombie waiting for its (new) parent. */
static int pid_dead(pid_t pid)
{
    char path[64], buf[256];
    FILE *f;
    char *p;

    if (kill(pid, 0) != 0 && errno == ESRCH)
        return 1;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return 1;
    p = fgets(buf, sizeof(buf), f);
    fclose(f);
    if (!p)
        return 1;
    p = strrchr(buf, ')');
    return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

static int wait_dead(pid_t pid, int64_t within_ms)
{
    int64_t end = now_ms() + within_ms;

    while (!pid_dead(pid)) {
        if (now_ms() > end)
            return 0;
        usleep(10000);
    }
    return 1;
}

/* Parses "PID\nPID\n..." into pids; returns how many. */
static int parse_pids(const char *s, pid_t *pids, int max)
{
    int n = 0;

    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s)
            break;
        pids[n++] = (pid_t)v;
        s = end;
        while (*s == '\n')
            s++;
    }
    return n;
}

TEST(exit_codes)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct proc_result res;

    is_int(run_sh("exit 0", NULL, 0, 0, 0, &res, &err), 0, "true runs");
    is_int(res.end, PROC_EXITED, "exited");
    is_int(res.exit_code, 0, "exit 0");
    is_int(res.signal, 0, "no signal");
    proc_result_release(&res);

    is_int(run_sh("exit 3", NULL, 0, 0, 0, &res, &err), 0, "exit 3 runs");
    is_int(res.end, PROC_EXITED, "exited");
    is_int(res.exit_code, 3, "exit 3");
    proc_result_release(&res);

    is_int(run_sh("exit 255", NULL, 0, 0, 0, &res, &err), 0, "exit 255 runs");
    is_int(res.exit_code, 255, "exit 255");
    proc_result_release(&res);

    is_int(run_sh("kill -KILL $$", NULL, 0, 0, 0, &res, &err), 0, "killed runs");
    is_int(res.end, PROC_SIGNALED, "signaled");
    is_int(res.signal, SIGKILL, "by SIGKILL");
    is_int(res.exit_code, -1, "no exit code");
    proc_result_release(&res);
}

TEST(capture)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct proc_result res;

    is_int(run_sh("printf 'hello\\n'; printf 'oops\\n' >&2; printf 'a\\000b'", NULL, 0, 0, 0, &res,
                  &err),
           0, "runs");
    is_int(res.out_len, 9, "stdout length, NUL included");
    ok(memcmp(res.out, "hello\na\0b", 9) == 0, "stdout bytes");
    is_int(res.out[res.out_len], 0, "stdout NUL-terminated");
    is_str(res.err, "oops\n", "stderr");
    is_int(res.out_truncated, 0, "not truncated");
    proc_result_release(&res);

    is_int(run_sh(":", NULL, 0, 0, 0, &res, &err), 0, "silent child runs");
    ok(res.out && res.err, "empty captures are strings");
    is_str(res.out, "", "empty stdout");
    is_str(res.err, "", "empty stderr");
    proc_result_release(&res);
}

TEST(big_output_truncated)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct proc_result res;
    int64_t t0 = now_ms();

    /* 10 MB on each stream with a 1 MiB cap: read past the cap and thrown
     * away, so the child never blocks on a full pipe. */
    is_int(run_sh("head -c 10000000 /dev/zero; head -c 10000000 /dev/zero >&2; echo done >&2", NULL,
                  0, 20000, MIB, &res, &err),
           0, "runs");
    is_int(res.end, PROC_EXITED, "exited, not timed out");
    is_int(res.exit_code, 0, "exit 0: the child finished writing everything");
    is_int(res.out_len, MIB, "stdout cut at the cap");
    is_int(res.err_len, MIB, "stderr cut at the cap");
    ok(res.out_truncated && res.err_truncated, "both flagged truncated");
    ok(now_ms() - t0 < 15000, "in reasonable time");
    proc_result_release(&res);

    /* Exactly at the cap is not truncated. */
    is_int(run_sh("printf 12345", NULL, 0, 0, 5, &res, &err), 0, "runs");
    is_str(res.out, "12345", "all five bytes");
    is_int(res.out_truncated, 0, "not truncated at exactly the cap");
    proc_result_release(&res);
}

TEST(stderr_tail)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct proc_result res;
    char *argv[] = {"sh", "-c", "seq 1 300000 >&2; echo out", NULL};
    struct proc_spec spec = {.argv = argv, .max_output = 20, .stderr_tail = 1};
    const char *want = "\n299998\n299999\n300000\n";

    is_int(proc_run(&spec, &res, &err), 0, "runs");
    is_int(res.err_len, 20, "stderr kept to the cap");
    ok(res.err_len == 20 && memcmp(res.err, want + strlen(want) - 20, 20) == 0,
       "the last bytes are kept");
    is_int(res.err_truncated, 1, "flagged truncated");
    is_str(res.out, "out\n", "stdout unaffected");
    proc_result_release(&res);
}

TEST(big_stdin)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct proc_result res;
    size_t n = 10 * 1000 * 1000;
    char *data = malloc(n);
    sigset_t pending;
    int64_t t0;

    memset(data, 'x', n);
    is_int(run_sh("wc -c", data, n, 20000, 0, &res, &err), 0, "reader runs");
    is_int(res.exit_code, 0, "wc exits 0");
    is_int(strtol(res.out, NULL, 10), (long)n, "the child read all 10 MB");
    proc_result_release(&res);

    /* A child that never reads: we must not block on a full pipe, nor die
     * of SIGPIPE when it exits. */
    t0 = now_ms();
    is_int(run_sh("exit 7", data, n, 5000, 0, &res, &err), 0, "non-reader runs");
    is_int(res.end, PROC_EXITED, "exited");
    is_int(res.exit_code, 7, "its exit code");
    ok(now_ms() - t0 < 2000, "returns at once");
    proc_result_release(&res);

    /* Closes stdin, then keeps running for a while: EPIPE mid-write. */
    is_int(run_sh("exec 0<&-; sleep 0.2; echo alive", data, n, 5000, 0, &res, &err), 0,
           "closer runs");
    is_str(res.out, "alive\n", "the child carried on");
    proc_result_release(&res);

    /* A child that reads a little and exits. */
    is_int(run_sh("head -c 10", data, n, 5000, 0, &res, &err), 0, "partial reader runs");
    is_str(res.out, "xxxxxxxxxx", "read 10 bytes");
    proc_result_release(&res);

    sigpending(&pending);
    ok(!sigismember(&pending, SIGPIPE), "no SIGPIPE left pending");
    free(data);
}

TEST(child_gets_default_sigpipe)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct proc_result res;
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;

    /* Even when wfo ignores SIGPIPE, the command gets the default: `yes`
     * dies quietly of it instead of printing "Broken pipe". */
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, &old);
    is_int(run_sh("yes | head -c 3 >/dev/null; echo ok", NULL, 0, 5000, 0, &res, &err), 0, "runs");
    is_str(res.out, "ok\n", "pipeline done");
    is_str(res.err, "", "yes died of SIGPIPE, said nothing");
    proc_result_release(&res);
    sigaction(SIGPIPE, &old, NULL);
}

TEST(env_add)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct proc_result res;
    char *argv[] = {"sh", "-c", "printf '%s|%s|%s' \"$HOME\" \"$WFO_T_NEW\" \"$WFO_T_DUP\"", NULL};
    char *env[] = {"HOME=/nowhere", "WFO_T_NEW=a=b", "WFO_T_DUP=1", "WFO_T_DUP=2", NULL};
    char *bad[] = {"NOEQUALS", NULL};
    char *nopath[] = {"PATH=/wfo-no-such-dir", NULL};
    char *sh[] = {"sh", "-c", "true", NULL};
    struct proc_spec spec = {.argv = argv, .env_add = env};

    setenv("WFO_T_KEEP", "kept", 1);
    is_int(proc_run(&spec, &res, &err), 0, "runs");
    is_str(res.out, "/nowhere|a=b|2", "overrides, adds, last duplicate wins");
    proc_result_release(&res);

    argv[2] = "printf '%s' \"$WFO_T_KEEP\"";
    is_int(proc_run(&spec, &res, &err), 0, "runs");
    is_str(res.out, "kept", "inherited variables stay");
    proc_result_release(&res);
    unsetenv("WFO_T_KEEP");

    spec.env_add = bad;
    is_int(proc_run(&spec, &res, &err), WFO_EINVAL, "entry without = refused");
    ok(strstr(err.message, "NOEQUALS") != NULL, "message names it: %s", err.message);

    /* argv[0] is looked up in the child's PATH. */
    spec.argv = sh;
    spec.env_add = nopath;
    is_int(proc_run(&spec, &res, &err), WFO_EIO, "sh not found in the new PATH");
    is_str(err.message, "cannot run 'sh': No such file or directory", "message");
}

TEST(cwd)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct proc_result res;
    char *argv[] = {"pwd", NULL};
    struct proc_spec spec = {.argv = argv, .cwd = "/tmp"};

    is_int(proc_run(&spec, &res, &err), 0, "runs");
    is_str(res.out, "/tmp\n", "in /tmp");
    proc_result_release(&res);

    spec.cwd = "/wfo-no-such-dir";
    is_int(proc_run(&spec, &res, &err), WFO_EIO, "missing cwd fails");
    is_str(err.message, "cannot change to directory '/wfo-no-such-dir': No such file or directory",
           "message");
}

TEST(timeout_kills_group)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct proc_result res;
    pid_t pids[4];
    int n;
    int64_t t0 = now_ms();

    is_int(run_sh("sleep 100 & echo $!; sleep 100 & echo $!; wait", NULL, 0, 300, 0, &res, &err), 0,
           "runs");
    ok(now_ms() - t0 < 900, "returns soon after the timeout (%lld ms)", (long long)(now_ms() - t0));
    ok(now_ms() - t0 >= 290, "not before the timeout");
    is_int(res.end, PROC_TIMED_OUT, "timed out");
    n = parse_pids(res.out, pids, 4);
    is_int(n, 2, "two grandchildren recorded");
    for (int i = 0; i < n; i++)
        ok(wait_dead(pids[i], 1000), "grandchild %d is gone", (int)pids[i]);
    proc_result_release(&res);

    /* Grandchildren that ignore SIGTERM get SIGKILL after the grace. */
    t0 = now_ms();
    is_int(run_sh("trap '' TERM; sleep 100 & echo $!; wait; wait", NULL, 0, 300, 0, &res, &err), 0,
           "runs");
    ok(now_ms() - t0 < 1000, "returns after the grace (%lld ms)", (long long)(now_ms() - t0));
    is_int(res.end, PROC_TIMED_OUT, "timed out");
    is_int(res.signal, SIGKILL, "the child needed SIGKILL");
    n = parse_pids(res.out, pids, 4);
    is_int(n, 1, "grandchild recorded");
    if (n == 1)
        ok(wait_dead(pids[0], 1000), "the TERM-proof grandchild is gone");
    proc_result_release(&res);

    /* A fast child is not affected by a timeout. */
    is_int(run_sh("echo quick", NULL, 0, 5000, 0, &res, &err), 0, "runs");
    is_int(res.end, PROC_EXITED, "exited");
    ok(res.duration_ms < 2000, "duration measured (%lld ms)", (long long)res.duration_ms);
    proc_result_release(&res);
}

TEST(background_holder_does_not_hang)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct proc_result res;
    pid_t pid[1];
    int64_t t0 = now_ms();

    /* The child exits while a background process holds stdout open: the
     * run ends after the grace and leaves the background process alone. */
    is_int(run_sh("sleep 30 & echo $!", NULL, 0, 0, 0, &res, &err), 0, "runs");
    ok(now_ms() - t0 < 1500, "returns (%lld ms)", (long long)(now_ms() - t0));
    is_int(res.end, PROC_EXITED, "exited");
    is_int(res.exit_code, 0, "exit 0");
    if (parse_pids(res.out, pid, 1) == 1) {
        ok(!pid_dead(pid[0]), "the background process still runs");
        kill(pid[0], SIGKILL);
    } else {
        ok(0, "background pid printed: %s", res.out);
    }
    proc_result_release(&res);
}

struct canceller {
    struct proc_cancel *c;
    int delay_ms;
};

static void *cancel_later(void *arg)
{
    struct canceller *k = arg;

    usleep((useconds_t)k->delay_ms * 1000);
    proc_cancel_request(k->c);
    return NULL;
}

TEST(cancel)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct proc_result res;
    struct proc_cancel c;
    char *argv[] = {"sh", "-c", "sleep 100 & echo $!; wait", NULL};
    struct proc_spec spec = {.argv = argv, .timeout_ms = 10000};
    struct canceller k;
    pthread_t th;
    pid_t pid[1];
    int64_t t0;

    is_int(proc_cancel_init(&c, &err), 0, "cancel init");
    ok(!proc_cancel_requested(&c), "not requested yet");
    spec.cancel = &c;
    k = (struct canceller){&c, 200};
    pthread_create(&th, NULL, cancel_later, &k);
    t0 = now_ms();
    is_int(proc_run(&spec, &res, &err), 0, "runs");
    pthread_join(th, NULL);
    ok(now_ms() - t0 < 900, "cancelled promptly (%lld ms)", (long long)(now_ms() - t0));
    is_int(res.end, PROC_CANCELLED, "cancelled");
    if (parse_pids(res.out, pid, 1) == 1)
        ok(wait_dead(pid[0], 1000), "grandchild killed");
    proc_result_release(&res);

    /* Requested already: nothing runs. */
    ok(proc_cancel_requested(&c), "requested sticks");
    proc_cancel_request(&c);
    argv[2] = "touch /tmp/wfo-test-proc-cancelled";
    unlink("/tmp/wfo-test-proc-cancelled");
    is_int(proc_run(&spec, &res, &err), 0, "returns");
    is_int(res.end, PROC_CANCELLED, "cancelled before start");
    ok(access("/tmp/wfo-test-proc-cancelled", F_OK) != 0, "the command did not run");
    proc_result_release(&res);
    proc_cancel_release(&c);
}

TEST(start_failures)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct proc_result res;
    char *missing[] = {"wfo-no-such-command-xyz", "arg", NULL};
    char *notexec[] = {"/tmp/wfo-test-proc-noexec", NULL};
    char *empty[] = {NULL};
    struct proc_spec spec = {.argv = missing};

    is_int(proc_run(&spec, &res, &err), WFO_EIO, "missing command fails to start");
    is_str(err.message, "cannot run 'wfo-no-such-command-xyz': No such file or directory",
           "message");
    fclose(fopen("/tmp/wfo-test-proc-noexec", "w"));
    chmod("/tmp/wfo-test-proc-noexec", 0644);
    spec.argv = notexec;
    is_int(proc_run(&spec, &res, &err), WFO_EIO, "non-executable file fails to start");
    is_str(err.message, "cannot run '/tmp/wfo-test-proc-noexec': Permission denied", "message");
    unlink("/tmp/wfo-test-proc-noexec");
    spec.argv = empty;
    is_int(proc_run(&spec, &res, &err), WFO_EINVAL, "empty argv refused");
    spec.argv = NULL;
    is_int(proc_run(&spec, &res, &err), WFO_EINVAL, "NULL argv refused");
}

TEST(no_fd_inherited)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct proc_result res;
    int fd = open("/dev/null", O_RDONLY); /* deliberately not close-on-exec */

    ok(fd > 2, "opened an inheritable descriptor");
    /* ls lists the shell's descriptors (a glob or a pipe would open some in
     * the shell). */
    is_int(run_sh("ls /proc/$$/fd", NULL, 0, 5000, 0, &res, &err), 0, "runs");
    is_str(res.out, "0\n1\n2\n", "the child has only 0, 1, 2");
    proc_result_release(&res);
    close(fd);
}

TEST(no_fd_leak_no_zombies)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct proc_result res;
    int before = count_fds(), failures = 0;

    for (int i = 0; i < 100; i++) {
        int rc = run_sh(i % 2 ? "echo x; echo y >&2" : "exit 1", "in", 2, 5000, 0, &res, &err);
        if (rc == 0)
            proc_result_release(&res);
        else
            failures++;
        char *bad[] = {"wfo-no-such-command-xyz", NULL};
        struct proc_spec spec = {.argv = bad};
        if (proc_run(&spec, &res, &err) != WFO_EIO)
            failures++;
    }
    is_int(failures, 0, "200 runs as expected");
    is_int(count_fds(), before, "descriptors before and after 200 runs");
    errno = 0;
    ok(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD, "no child left, zombie or not");
}

struct par {
    int id, bad;
};

static void *par_run(void *arg)
{
    struct par *p = arg;
    struct wfo_error err = WFO_ERROR_INIT;
    struct proc_result res;
    char script[64], want[32];

    for (int i = 0; i < 20; i++) {
        snprintf(script, sizeof(script), "cat; echo %d-%d", p->id, i);
        snprintf(want, sizeof(want), "in%d-%d\n", p->id, i);
        if (run_sh(script, "in", 2, 10000, 0, &res, &err) != 0) {
            p->bad++;
            continue;
        }
        if (strcmp(res.out, want) != 0 || res.exit_code != 0)
            p->bad++;
        proc_result_release(&res);
    }
    return NULL;
}

TEST(threads)
{
    pthread_t th[4];
    struct par p[4];
    int bad = 0;

    for (int i = 0; i < 4; i++) {
        p[i] = (struct par){i, 0};
        pthread_create(&th[i], NULL, par_run, &p[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        bad += p[i].bad;
    }
    is_int(bad, 0, "80 runs on 4 threads, each got its own output");
}

int main(void)
{
    return tap_run();
}
