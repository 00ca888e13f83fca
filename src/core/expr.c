/*
 * expr.c - `${ ... }` expressions and templates (SPEC 2.1) on libjq 1.6.
 * The contract is core/expr.h; docs/implementation/state_management.md
 * describes the context the expressions read. This is the only file of wfo
 * that includes <jq.h>.
 *
 * An expression goes through four stages:
 *
 *   1. expr_sandbox_check() lexes the text the way jq 1.6's lexer does
 *      (strings, "\(...)" interpolations, comments, fields, object keys) and
 *      refuses every call of a builtin that reaches outside the value
 *      (expr_denied) and the variables $ENV and $__loc__.
 *   2. A plain path (`.`, `.a.b`, `.["x"]`, `.a[0]`) is parsed by
 *      expr_path_parse() and walked on the json_t itself (expr_path_walk):
 *      no conversion of the context, no jq. Its jq program is compiled only
 *      when a walk meets a value jq would refuse to index, so that jq gives
 *      the error. The grammar accepted is a subset of jq 1.6's. On a
 *      context made on demand (tmpl_eval_ctx), the walk starts from what
 *      its member() gives for the first keys: the object is not made.
 *   3. Anything else is compiled at tmpl_compile() time into a jq_state of
 *      its own, after EXPR_PRELUDE: definitions that shadow the refused
 *      builtins again (defence in depth) and put bounds on the C loops of
 *      libjq that the watchdog cannot interrupt (string repeat, array
 *      growth by setpath, strftime's alloca); the user's text is wrapped
 *      so that its first output comes out through a callback (I6).
 *   4. Evaluation converts the context to a jv once per tmpl_eval() and runs
 *      jq on a private 1 GiB stack (the "fiber"), registered with the
 *      watchdog thread, which halts it past WFO_EXPR_TIME_LIMIT_MS of the
 *      thread's CPU time (or ten times that of wall time) or when
 *      the process grew by EXPR_MEMORY_LIMIT while it ran.
 *
 * Not bounded: a few single C calls of libjq 1.6 run as long as their
 * input makes them, since jq_halt() is only seen between instructions:
 * `.[ARRAY]` and indices() on arrays (O(n*m)), global regex matching
 * (match(re; "g"), scan, splits, sub, gsub: quadratic in the string's
 * length), sort of a large array.
 *
 * Invariants:
 *   I1. A jq_state is used by the thread evaluating its template (expr.h);
 *       the watchdog touches it only through jq_halt(), only while it is
 *       registered in watch.head, under watch.mu.
 *   I2. jq_halt() is called at most once per registration, by the watchdog
 *       or by expr_emit_cb(), whichever first sets slot->fired under
 *       watch.mu; registration starts after jq_start() cleared the halted
 *       flag; user code cannot call halt/halt_error (stage 1). So libjq's
 *       assert(!halted) in jq_halt() holds.
 *   I3. When libjq runs out of memory its nomem handler (expr_nomem) jumps
 *       back to expr_guarded_call(). The jq_state it was running is never
 *       run again: it is torn down (expr_discard) and the expression
 *       recompiled on its next use. libjq 1.6 allocates before it changes
 *       a structure (its stack, arrays, objects, strings), so the state is
 *       consistent and jq_teardown() frees it, except the values that the
 *       interrupted C function owned, which leak. A teardown that runs out
 *       of memory too leaves the state in the graveyard, never touched.
 *   I4. libjq frees and prints nested values recursively; values nested
 *       millions deep are built in well under the time limit, so libjq only
 *       runs on the fiber's stack, whose size bounds what it can reach.
 *   I5. libjq's jq_init() leaves the input, debug and nomem callbacks
 *       uninitialised; expr_jq_compile() sets all of them first.
 *   I7. Some values crash libjq 1.6 where EXPR_PRELUDE cannot wrap the
 *       builtin: a NaN slice bound (.[nan:]) fails an assert, a global
 *       regex with empty matches in multibyte text reads past its string.
 *       While a guarded call runs, SIGABRT, SIGFPE, SIGSEGV, SIGBUS and
 *       SIGILL on its thread jump back to it (expr_on_fault; elsewhere they
 *       go to what handled them before, or kill as they would have). The
 *       jq_state is abandoned as in I3, without a teardown, and the step
 *       fails with ExpressionError. The crashes known are reads and
 *       asserts before anything changes; what libjq was building leaks.
 *   I6. libjq 1.6's jq_reset() (from jq_start() and jq_teardown()) aborts
 *       on a run stopped after a path expression (`paths`, `path(..)`,
 *       `|=`) produced a value while it can still backtrack, unless
 *       libjq's current path is an array. Programs therefore run inside
 *       `path(.[0] | .[...])` (expr_jq_new), where it always is, and stop
 *       there.
 */
#include "common/compat.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <jq.h>
#include <jv.h>

#include "core/expr.h"
#include "common/buf.h"
#include "common/error.h"
#include "common/util.h"

#if defined(__SANITIZE_ADDRESS__)
#include <dlfcn.h>
#include <sanitizer/common_interface_defs.h>
#define EXPR_ASAN 1
#endif

/* Growth of the process's resident memory while one evaluation runs past
 * which the watchdog halts it. */
#define EXPR_MEMORY_LIMIT (256L * 1024 * 1024)
/* How often the watchdog looks at the clock and the memory. */
#define EXPR_WATCH_POLL_MS 10
/* The wall-clock backstop of an evaluation, in time limits. */
#define EXPR_WALL_FACTOR 10
/* The fiber's stack: address space only, pages are touched as used (I4). */
#define EXPR_STACK_SIZE ((size_t)1 << 30)
/* Nesting of the values converted in (contexts) and out (results). */
#define EXPR_DEPTH_IN (4 * WFO_JSON_MAX_DEPTH)
#define EXPR_DEPTH_OUT WFO_JSON_MAX_DEPTH
/* Nesting of brackets in an expression's text. */
#define EXPR_LEX_DEPTH 256

/* Builtins refused in expressions (SPEC 2.1, expr.h): they read the
 * environment, files or input, write to stderr or stop the process.
 * _input is what input and inputs call. */
static const char *const expr_denied[] = {
    "env",
    "input",
    "inputs",
    "_input",
    "input_filename",
    "input_line_number",
    "debug",
    "stderr",
    "halt",
    "halt_error",
    "get_search_list",
    "get_prog_origin",
    "get_jq_origin",
    "modulemeta",
    "import",
    "include",
    NULL,
};
static const char *const expr_denied_vars[] = {"ENV", "__loc__", "__prog_args", NULL};

/*
 * Put before every program. Definitions shadow builtins for the program
 * that follows, so the refused ones are shadowed again (after _wfo_emit,
 * wfo's own use of debug: expr_jq_new), and the builtins that hand a size
 * to a C loop are wrapped with a bound: `*` on a string (jq 1.6 compiles
 * `a * b` to a call of _multiply, bound like any function), setpath and
 * the assignment operators built on it (a large index allocates and fills
 * the whole array), fromstream (which calls the builtin setpath), and
 * strftime (which allocas its format's length). ltrimstr and rtrimstr
 * leak in libjq 1.6 unless both sides are strings, so they are only called
 * then (otherwise they return `.`, as libjq does). The wrappers evaluate
 * their arguments in the builtins' order (last argument outermost). Names
 * starting with _wfo are refused in user text, so the originals stay out
 * of reach. The bounds: a repeated string of at most 1 MiB and at most
 * 1048576 repetitions (libjq appends once per repetition, even of "": the
 * template fuzzer's `"" * 1000000000` ran 13 s in one C loop), array indexes
 * written below 1000000, formats of at most 1000 bytes. No newline: line
 * numbers in jq's messages stay the user's.
 */
static const char EXPR_PRELUDE[] =
    "def _wfo_emit: debug; "
    "def _wfo_deny(f): error(\"\\(f) is not allowed in wfo expressions\"); "
    "def env: _wfo_deny(\"env\"); "
    "def input: _wfo_deny(\"input\"); "
    "def inputs: _wfo_deny(\"inputs\"); "
    "def _input: _wfo_deny(\"_input\"); "
    "def input_filename: _wfo_deny(\"input_filename\"); "
    "def input_line_number: _wfo_deny(\"input_line_number\"); "
    "def debug: _wfo_deny(\"debug\"); "
    "def stderr: _wfo_deny(\"stderr\"); "
    "def halt: _wfo_deny(\"halt\"); "
    "def halt_error: _wfo_deny(\"halt_error\"); "
    "def get_search_list: _wfo_deny(\"get_search_list\"); "
    "def get_prog_origin: _wfo_deny(\"get_prog_origin\"); "
    "def get_jq_origin: _wfo_deny(\"get_jq_origin\"); "
    "def modulemeta: _wfo_deny(\"modulemeta\"); "
    "def halt_error(f): _wfo_deny(\"halt_error\"); "
    "def _wfo_multiply(a; b): _multiply(a; b); "
    "def _multiply(a; b): b as $b | a as $a | "
    "if (($a | type) == \"string\" and ($b | type) == \"number\" "
    "and _wfo_multiply($a | utf8bytelength; $b) > 1048576) "
    "or (($b | type) == \"string\" and ($a | type) == \"number\" "
    "and _wfo_multiply($b | utf8bytelength; $a) > 1048576) "
    "then error(\"string repeat result longer than 1048576 bytes\") "
    "elif (($a | type) == \"string\" and ($b | type) == \"number\" and $b > 1048576) "
    "or (($b | type) == \"string\" and ($a | type) == \"number\" and $a > 1048576) "
    "then error(\"string repeated more than 1048576 times\") "
    "else _wfo_multiply($a; $b) end; "
    "def _wfo_setpath(p; v): setpath(p; v); "
    "def setpath(p; v): v as $v | p as $p | "
    "if ($p | type) == \"array\" and any($p[]; type == \"number\" and . >= 1000000) "
    "then error(\"array index larger than 1000000\") else _wfo_setpath($p; $v) end; "
    "def _wfo_delpaths(ps): delpaths(ps); "
    "def delpaths(ps): ps as $ps | if ($ps | type) == \"array\" and "
    "any($ps[]; type == \"array\" and any(.[]; type == \"number\" and isnan)) "
    "then error(\"delpaths: a path holds NaN\") else _wfo_delpaths($ps) end; "
    "def del(f): delpaths([path(f)]); "
    "def _assign(paths; value): value as $v | reduce path(paths) as $p (.; setpath($p; $v)); "
    "def _modify(paths; update): reduce path(paths) as $p (.; label $out | "
    "(setpath($p; getpath($p) | update) | ., break $out), delpaths([$p])); "
    "def fromstream(i): foreach i as $item ([null, false, null, false]; "
    "if ($item[0] | length) == 0 then [null, false, .[2], .[3]] "
    "elif ($item | length) == 1 and ($item[0] | length) < 2 then [null, false, .[0], .[1]] "
    "else . end | . as $state | "
    "if ($item | length) > 1 and ($item[0] | length) > 0 "
    "then [.[0] | setpath(($item | .[0]); ($item | .[1])), true, $state[2], $state[3]] "
    "else . end; "
    "if ($item[0] | length) == 1 and ($item | length == 1) and .[3] then .[2] else empty end, "
    "if ($item[0] | length) == 0 then $item[1] else empty end); "
    "def _wfo_time: if (type == \"number\" and (isnan or . <= -62167219200 or . >= 253402300800)) "
    "or (type == \"array\" and any(.[]; type == \"number\" and (isnan or fabs >= 1e12))) "
    "then error(\"time out of range (years 0 to 9999)\") else . end; "
    "def _wfo_gmtime: gmtime; def gmtime: _wfo_time | _wfo_gmtime; "
    "def _wfo_localtime: localtime; def localtime: _wfo_time | _wfo_localtime; "
    "def _wfo_mktime: mktime; def mktime: _wfo_time | _wfo_mktime; "
    "def _wfo_strftime(f): strftime(f); "
    "def strftime(f): f as $f | if ($f | type) != \"string\" "
    "then error(\"strftime/1 requires a string format\") elif ($f | utf8bytelength) > 1000 "
    "then error(\"strftime format longer than 1000 bytes\") else _wfo_time | _wfo_strftime($f) "
    "end; "
    "def _wfo_strflocaltime(f): strflocaltime(f); "
    "def strflocaltime(f): f as $f | if ($f | type) != \"string\" "
    "then error(\"strflocaltime/1 requires a string format\") elif ($f | utf8bytelength) > 1000 "
    "then error(\"strflocaltime format longer than 1000 bytes\") "
    "else _wfo_time | _wfo_strflocaltime($f) end; "
    "def todateiso8601: strftime(\"%Y-%m-%dT%H:%M:%SZ\"); def todate: todateiso8601; "
    "def date: todate; "
    "def fromdateiso8601: strptime(\"%Y-%m-%dT%H:%M:%SZ\") | mktime; "
    "def fromdate: fromdateiso8601; "
    "def _wfo_mod(a; b): _mod(a; b); "
    "def _mod(a; b): b as $b | a as $a | "
    "if ($a | type) == \"number\" and ($b | type) == \"number\" and "
    "(($a | isnan) or ($b | isnan) or ($a | fabs) >= 9e18 or ($b | fabs) >= 9e18) "
    "then error(\"% of numbers beyond 64-bit integers\") "
    "elif ($a | type) == \"number\" and ($b | type) == \"number\" and $b > -2 and $b <= -1 "
    "then 0 else _wfo_mod($a; $b) end; "
    "def _wfo_strindices($i): _strindices($i); "
    "def _strindices($i): if $i == \"\" then error(\"indices of an empty string\") "
    "else _wfo_strindices($i) end; "
    "def _wfo_indices($i): indices($i); "
    "def indices($i): if type == \"string\" and $i == \"\" "
    "then error(\"indices of an empty string\") else _wfo_indices($i) end; "
    "def index($i): indices($i) | .[0]; def rindex($i): indices($i) | .[-1:][0]; "
    "def _wfo_implode: implode; "
    "def implode: if type == \"array\" and all(.[]; type == \"number\" and . >= 0 "
    "and . <= 1114111 and (. < 55296 or . > 57343)) then _wfo_implode "
    "else error(\"implode input must be an array of codepoints\") end; "
    "def _wfo_ltrimstr(x): ltrimstr(x); "
    "def ltrimstr(x): x as $x | "
    "if type == \"string\" and ($x | type) == \"string\" then _wfo_ltrimstr($x) else . end; "
    "def _wfo_rtrimstr(x): rtrimstr(x); "
    "def rtrimstr(x): x as $x | "
    "if type == \"string\" and ($x | type) == \"string\" then _wfo_rtrimstr($x) else . end; "
    "{} as $ENV | ";
/* Around the user's program (see expr_jq_new). */
static const char EXPR_WRAP_OPEN[] = "path(.[0] | .[(";
static const char EXPR_WRAP_CLOSE[] = "\n) | _wfo_emit])";

/* ---- compiled templates ------------------------------------------------ */

struct expr_step {
    char *key; /* NULL: an array index */
    long long index;
};

struct expr {
    char *text;   /* the jq program the user wrote, trimmed */
    jq_state *jq; /* NULL until compiled, and again after an OOM (I3) */
    int is_path;  /* steps are valid: try expr_path_walk() first */
    int balanced; /* the text's brackets balance (expr_jq_new) */
    size_t nsteps;
    struct expr_step *steps;
};

enum node_kind { NODE_CONST, NODE_EXPR, NODE_ARRAY, NODE_OBJECT };

struct node {
    enum node_kind kind;
    json_t *value;     /* NODE_CONST: one reference */
    struct expr *expr; /* NODE_EXPR */
    size_t n;          /* NODE_ARRAY, NODE_OBJECT: children */
    struct node *kids;
    char **keys; /* NODE_OBJECT: keys in order, lengths in keylens */
    size_t *keylens;
};

struct tmpl {
    json_t *value; /* the template's own reference (expr.h) */
    struct node root;
};

/* ---- the watchdog ---------------------------------------------------- */

/* Why a run was halted: not yet, time, memory, or it gave its output. */
enum { WATCH_NONE, WATCH_TIME, WATCH_MEMORY, WATCH_DONE };

struct watch_slot {
    jq_state *jq;
    clockid_t cpu;            /* the evaluating thread's CPU clock */
    struct timespec cpu_end;  /* on it: the time limit */
    struct timespec deadline; /* CLOCK_MONOTONIC: EXPR_WALL_FACTOR times the limit */
    long rss_start;           /* pages; -1 until the watchdog first looks */
    int fired;                /* WATCH_*: why it was halted */
    int registered;
    struct watch_slot *prev, *next;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    pthread_once_t once;
    int ok;       /* the watchdog thread runs */
    int sleeping; /* it waits with no deadline: signal cond on register */
    struct watch_slot *head;
} watch = {.mu = PTHREAD_MUTEX_INITIALIZER, .once = PTHREAD_ONCE_INIT};

static void ts_add_ms(struct timespec *t, long ms)
{
    t->tv_sec += ms / 1000;
    t->tv_nsec += (ms % 1000) * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

static int ts_before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Resident pages of the process, or -1. */
static long watch_rss(int fd)
{
    char buf[128];
    ssize_t n;
    char *p, *end;
    long rss;

    if (fd < 0)
        return -1;
    n = pread(fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    p = strchr(buf, ' ');
    if (!p)
        return -1;
    errno = 0;
    rss = strtol(p + 1, &end, 10);
    if (errno || end == p + 1)
        return -1;
    return rss;
}

/* The watchdog: halts registered evaluations past their deadline or past
 * the memory limit; sleeps without a deadline after a second without any. */
static void *watch_main(void *unused)
{
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    long page = sysconf(_SC_PAGESIZE);
    struct timespec now, idle_since, wake;

    clock_gettime(CLOCK_MONOTONIC, &idle_since);
    pthread_mutex_lock(&watch.mu);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (!watch.head) {
            struct timespec idle_end = idle_since;

            ts_add_ms(&idle_end, 1000);
            if (!ts_before(&now, &idle_end)) {
                watch.sleeping = 1;
                pthread_cond_wait(&watch.cond, &watch.mu);
                watch.sleeping = 0;
                clock_gettime(CLOCK_MONOTONIC, &idle_since);
                continue;
            }
        } else {
            long rss = watch_rss(fd);

            idle_since = now;
            for (struct watch_slot *s = watch.head; s; s = s->next) {
                if (s->fired)
                    continue;
                if (s->rss_start < 0)
                    s->rss_start = rss;
                struct timespec used;
                if (!ts_before(&now, &s->deadline) ||
                    (clock_gettime(s->cpu, &used) == 0 && !ts_before(&used, &s->cpu_end)))
                    s->fired = WATCH_TIME;
                else if (rss >= 0 && s->rss_start >= 0 &&
                         (rss - s->rss_start) * page > EXPR_MEMORY_LIMIT)
                    s->fired = WATCH_MEMORY;
                if (s->fired)
                    jq_halt(s->jq, jv_invalid(), jv_invalid()); /* I1, I2 */
            }
        }
        wake = now;
        ts_add_ms(&wake, EXPR_WATCH_POLL_MS);
        pthread_cond_timedwait(&watch.cond, &watch.mu, &wake);
    }
    return NULL;
}

static void watch_init(void)
{
    pthread_condattr_t ca;
    pthread_attr_t ta;
    pthread_t tid;
    sigset_t all, old;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&watch.cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_attr_init(&ta);
    pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
    /* The watchdog takes no signal meant for the process. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    watch.ok = pthread_create(&tid, &ta, watch_main, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&ta);
}

static int watch_start(struct wfo_error *err)
{
    pthread_once(&watch.once, watch_init);
    if (!watch.ok)
        return wfo_error_set(err, WFO_EINTERNAL, "jq: cannot start the expression watchdog");
    return 0;
}

/* Called after jq_start() (I2). */
static void watch_register(struct watch_slot *s, jq_state *jq)
{
    s->jq = jq;
    s->fired = WATCH_NONE;
    s->rss_start = -1;
    /* The limit is on the thread's CPU time, so a busy machine does not
     * halt an evaluation that is only waiting for a core; the wall clock
     * bounds one that is starved for long. */
    if (pthread_getcpuclockid(pthread_self(), &s->cpu) != 0 ||
        clock_gettime(s->cpu, &s->cpu_end) != 0) {
        s->cpu = CLOCK_MONOTONIC;
        clock_gettime(s->cpu, &s->cpu_end);
    }
    ts_add_ms(&s->cpu_end, WFO_EXPR_TIME_LIMIT_MS);
    clock_gettime(CLOCK_MONOTONIC, &s->deadline);
    ts_add_ms(&s->deadline, (int64_t)WFO_EXPR_TIME_LIMIT_MS * EXPR_WALL_FACTOR);
    pthread_mutex_lock(&watch.mu);
    s->prev = NULL;
    s->next = watch.head;
    if (watch.head)
        watch.head->prev = s;
    watch.head = s;
    s->registered = 1;
    if (watch.sleeping)
        pthread_cond_signal(&watch.cond);
    pthread_mutex_unlock(&watch.mu);
}

/* Idempotent; returns why the evaluation was halted (WATCH_*). */
static int watch_unregister(struct watch_slot *s)
{
    int fired;

    pthread_mutex_lock(&watch.mu);
    if (s->registered) {
        if (s->prev)
            s->prev->next = s->next;
        else
            watch.head = s->next;
        if (s->next)
            s->next->prev = s->prev;
        s->registered = 0;
    }
    fired = s->fired;
    pthread_mutex_unlock(&watch.mu);
    return fired;
}

/* ---- the fiber: libjq's stack (I4) and its out-of-memory exit (I3) ------ */

struct fiber {
    char *base; /* the mapping; its first page is a guard */
    size_t size;
    ucontext_t ctx, caller;
    void (*fn)(void *);
    void *arg;
    int oom;
#ifdef EXPR_ASAN
    const void *caller_bottom;
    size_t caller_size;
#endif
};

static _Thread_local struct fiber *expr_fiber;
static _Thread_local int expr_fiber_failed;
/* Set while libjq runs under expr_guarded_call(): where expr_nomem and
 * expr_on_fault jump. */
static _Thread_local jmp_buf *expr_oom_jmp;
/* The signal that stopped the last guarded call (I7). */
static _Thread_local int expr_fault_sig;
static pthread_key_t expr_fiber_key; /* frees a thread's fiber when it exits */
static int expr_fiber_key_ok;
static pthread_once_t expr_fiber_once = PTHREAD_ONCE_INIT;

/* libjq's nomem handler: when it returns, libjq prints and aborts. */
static void expr_nomem(void *data)
{
    jmp_buf *jb = expr_oom_jmp;

    if (jb) {
        expr_oom_jmp = NULL;
        longjmp(*jb, 1);
    }
}

/* I7: the signals of libjq 1.6's crashes on values its checks miss, and
 * what was there before (called for a signal outside libjq). */
static const int expr_fault_sigs[] = {SIGABRT, SIGFPE, SIGSEGV, SIGBUS, SIGILL};
static struct sigaction expr_fault_old[WFO_ARRAY_SIZE(expr_fault_sigs)];
static pthread_once_t expr_fault_once = PTHREAD_ONCE_INIT;

static void expr_on_fault(int sig, siginfo_t *info, void *uc)
{
    jmp_buf *jb = expr_oom_jmp;

    if (jb) {
        expr_oom_jmp = NULL;
        expr_fault_sig = sig;
        longjmp(*jb, 2); /* SA_NODEFER: sig is not blocked */
    }
    for (size_t i = 0; i < WFO_ARRAY_SIZE(expr_fault_sigs); i++) {
        if (expr_fault_sigs[i] != sig)
            continue;
        struct sigaction *old = &expr_fault_old[i];
        if (old->sa_flags & SA_SIGINFO) {
            old->sa_sigaction(sig, info, uc);
            return;
        }
        if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
            old->sa_handler(sig);
            return;
        }
    }
    /* the default action, now: the process dies of sig as it would have */
    signal(sig, SIG_DFL);
    raise(sig);
}

static void expr_fault_install(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = expr_on_fault;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < WFO_ARRAY_SIZE(expr_fault_sigs); i++)
        sigaction(expr_fault_sigs[i], &sa, &expr_fault_old[i]);
}

/* Runs fn(arg); returns 1 when libjq ran out of memory inside it (I3), 2
 * when it crashed (I7). */
static int expr_guarded_call(void (*fn)(void *), void *arg)
{
    jmp_buf jb;
    int r;

    pthread_once(&expr_fault_once, expr_fault_install);
    if ((r = setjmp(jb)) != 0) {
        expr_oom_jmp = NULL;
        return r;
    }
    expr_oom_jmp = &jb;
    fn(arg);
    expr_oom_jmp = NULL;
    return 0;
}

static void fiber_free(void *p)
{
    struct fiber *f = p;

    if (f) {
        munmap(f->base, f->size);
        free(f);
    }
}

static void fiber_key_init(void)
{
    expr_fiber_key_ok = pthread_key_create(&expr_fiber_key, fiber_free) == 0;
}

#ifdef EXPR_ASAN
/* ASan's swapcontext interceptor prints a warning on stderr and clears the
 * shadow of the whole target stack at every switch; the fiber annotations
 * (__sanitizer_*_switch_fiber) already tell ASan what it needs, so under
 * ASan the switch calls libc's own swapcontext. */
typedef int (*swap_fn)(ucontext_t *, const ucontext_t *);
static swap_fn fiber_real_swap;
static pthread_once_t fiber_swap_once = PTHREAD_ONCE_INIT;

static void fiber_swap_init(void)
{
    void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    void *sym = libc ? dlsym(libc, "swapcontext") : NULL;

    fiber_real_swap = sym ? (swap_fn)sym : swapcontext;
}

static int fiber_swap(ucontext_t *from, const ucontext_t *to)
{
    pthread_once(&fiber_swap_once, fiber_swap_init);
    return fiber_real_swap(from, to);
}
#else
#define fiber_swap swapcontext
#endif

static void fiber_switch_back(struct fiber *f)
{
#ifdef EXPR_ASAN
    void *fake = NULL;

    __sanitizer_start_switch_fiber(&fake, f->caller_bottom, f->caller_size);
#endif
    fiber_swap(&f->ctx, &f->caller);
#ifdef EXPR_ASAN
    __sanitizer_finish_switch_fiber(fake, &f->caller_bottom, &f->caller_size);
#endif
}

/* The fiber's body: runs one call per switch, forever. */
static void fiber_main(void)
{
    struct fiber *f = expr_fiber;

#ifdef EXPR_ASAN
    __sanitizer_finish_switch_fiber(NULL, &f->caller_bottom, &f->caller_size);
#endif
    for (;;) {
        f->oom = expr_guarded_call(f->fn, f->arg);
        fiber_switch_back(f);
    }
}

/* This thread's fiber, made on first use; NULL when it cannot be made. */
static struct fiber *fiber_get(void)
{
    struct fiber *f;
    long page = sysconf(_SC_PAGESIZE);

    if (expr_fiber || expr_fiber_failed)
        return expr_fiber;
    pthread_once(&expr_fiber_once, fiber_key_init);
    if (!expr_fiber_key_ok) {
        expr_fiber_failed = 1;
        return NULL;
    }
    f = wfo_calloc(1, sizeof(*f));
    f->size = EXPR_STACK_SIZE;
    f->base = mmap(NULL, f->size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (f->base == MAP_FAILED || mprotect(f->base, (size_t)page, PROT_NONE) != 0 ||
        getcontext(&f->ctx) != 0) {
        if (f->base != MAP_FAILED)
            munmap(f->base, f->size);
        free(f);
        expr_fiber_failed = 1;
        return NULL;
    }
    f->ctx.uc_stack.ss_sp = f->base + page;
    f->ctx.uc_stack.ss_size = f->size - (size_t)page;
    f->ctx.uc_link = NULL;
    makecontext(&f->ctx, fiber_main, 0);
    expr_fiber = f;
    pthread_setspecific(expr_fiber_key, f);
    return f;
}

/* Runs fn(arg) on the fiber (on this stack when there is none); returns 1
 * when libjq ran out of memory inside it, 2 when it crashed (I7). */
static int fiber_call(void (*fn)(void *), void *arg)
{
    struct fiber *f = fiber_get();

    if (!f)
        return expr_guarded_call(fn, arg);
    f->fn = fn;
    f->arg = arg;
    {
#ifdef EXPR_ASAN
        void *fake = NULL;

        __sanitizer_start_switch_fiber(&fake, f->base + sysconf(_SC_PAGESIZE),
                                       f->size - (size_t)sysconf(_SC_PAGESIZE));
#endif
        fiber_swap(&f->caller, &f->ctx);
#ifdef EXPR_ASAN
        __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
    }
    return f->oom;
}

/* Gives back the fiber's stack pages below its top megabyte (after a run
 * that may have gone deep). */
static void fiber_trim(void)
{
    struct fiber *f = expr_fiber;
    size_t keep = (size_t)1 << 20, page = (size_t)sysconf(_SC_PAGESIZE);

    if (f)
        madvise(f->base + page, f->size - page - keep, MADV_DONTNEED);
}

/* ---- json_t <-> jv ------------------------------------------------------ */

/* Returns 0, or -1 when v is nested deeper than EXPR_DEPTH_IN. */
static int expr_to_jv(json_t *v, int depth, jv *out)
{
    jv r;

    if (depth > EXPR_DEPTH_IN)
        return -1;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        size_t keylen;
        json_t *val;

        r = jv_object();
        json_object_keylen_foreach(v, key, keylen, val)
        {
            jv x;

            if (expr_to_jv(val, depth + 1, &x) < 0) {
                jv_free(r);
                return -1;
            }
            r = jv_object_set(r, jv_string_sized(key, (int)keylen), x);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);

        r = jv_array_sized((int)n);
        for (size_t i = 0; i < n; i++) {
            jv x;

            if (expr_to_jv(json_array_get(v, i), depth + 1, &x) < 0) {
                jv_free(r);
                return -1;
            }
            r = jv_array_append(r, x);
        }
        break;
    }
    case JSON_STRING:
        r = jv_string_sized(json_string_value(v), (int)json_string_length(v));
        break;
    case JSON_INTEGER:
        r = jv_number((double)json_integer_value(v));
        break;
    case JSON_REAL:
        r = jv_number(json_real_value(v));
        break;
    case JSON_TRUE:
        r = jv_true();
        break;
    case JSON_FALSE:
        r = jv_false();
        break;
    default:
        r = jv_null();
        break;
    }
    *out = r;
    return 0;
}

/* A jq number as JSON: integral values within 2^53 are integers, NaN and
 * infinities are null. */
static json_t *expr_number(double d)
{
    if (isnan(d) || isinf(d))
        return json_null();
    if (d == floor(d) && fabs(d) <= 9007199254740992.0)
        return json_integer((json_int_t)d);
    return json_real(d);
}

/* Consumes v. Returns a new value, or NULL with err set. */
static json_t *expr_from_jv(jv v, int depth, struct wfo_error *err)
{
    json_t *r = NULL, *x;

    if (depth > EXPR_DEPTH_OUT) {
        wfo_error_set(err, WFO_EEXPR, "jq: result nested deeper than %d levels", EXPR_DEPTH_OUT);
        goto out;
    }
    switch (jv_get_kind(v)) {
    case JV_KIND_NULL:
        r = json_null();
        break;
    case JV_KIND_TRUE:
        r = json_true();
        break;
    case JV_KIND_FALSE:
        r = json_false();
        break;
    case JV_KIND_NUMBER:
        r = expr_number(jv_number_value(v));
        break;
    case JV_KIND_STRING: {
        size_t n = (size_t)jv_string_length_bytes(jv_copy(v));
        /* wfo's strings are C strings: a NUL would cut one short */
        if (memchr(jv_string_value(v), 0, n)) {
            wfo_error_set(err, WFO_EEXPR, "jq: result holds a NUL character (\\u0000)");
            break;
        }
        r = json_stringn(jv_string_value(v), n);
        if (!r)
            wfo_error_set(err, WFO_EEXPR, "jq: result holds a string that is not UTF-8");
        break;
    }
    case JV_KIND_ARRAY: {
        int n = jv_array_length(jv_copy(v));

        r = json_array();
        for (int i = 0; i < n; i++) {
            if (!(x = expr_from_jv(jv_array_get(jv_copy(v), i), depth + 1, err)))
                goto fail;
            json_array_append_new(r, x);
        }
        break;
    }
    case JV_KIND_OBJECT:
        r = json_object();
        for (int it = jv_object_iter(v); jv_object_iter_valid(v, it);
             it = jv_object_iter_next(v, it)) {
            jv key = jv_object_iter_key(v, it);

            if (memchr(jv_string_value(key), 0, (size_t)jv_string_length_bytes(jv_copy(key)))) {
                jv_free(key);
                wfo_error_set(err, WFO_EEXPR, "jq: result holds a NUL character (\\u0000)");
                goto fail;
            }
            if (!(x = expr_from_jv(jv_object_iter_value(v, it), depth + 1, err))) {
                jv_free(key);
                goto fail;
            }
            json_object_setn_new(r, jv_string_value(key),
                                 (size_t)jv_string_length_bytes(jv_copy(key)), x);
            jv_free(key);
        }
        break;
    default:
        wfo_error_set(err, WFO_EEXPR, "jq: result is not a JSON value");
        break;
    }
    goto out;
fail:
    json_decref(r);
    r = NULL;
out:
    jv_free(v);
    return r;
}

/* ---- stage 1: the sandbox lexer ------------------------------------------ */

static int lex_ident_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int lex_ident_char(int c)
{
    return lex_ident_start(c) || (c >= '0' && c <= '9');
}

static int lex_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* Length of the identifier at s, with jq's `a::b` module prefixes. */
static size_t lex_ident(const char *s, size_t n)
{
    size_t i = 0;

    for (;;) {
        if (i >= n || !lex_ident_start((unsigned char)s[i]))
            return i;
        while (i < n && lex_ident_char((unsigned char)s[i]))
            i++;
        if (i + 2 < n && s[i] == ':' && s[i + 1] == ':' && lex_ident_start((unsigned char)s[i + 2]))
            i += 2;
        else
            return i;
    }
}

static int lex_in_list(const char *s, size_t len, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strlen(list[i]) == len && memcmp(list[i], s, len) == 0)
            return 1;
    return 0;
}

/* Checks each `::`-separated part of the identifier at s. */
static int lex_check_ident(const char *s, size_t len, struct wfo_error *err)
{
    size_t i = 0;

    while (i < len) {
        size_t j = i;

        while (j < len && s[j] != ':')
            j++;
        if (lex_in_list(s + i, j - i, expr_denied) || (j - i >= 4 && memcmp(s + i, "_wfo", 4) == 0))
            return wfo_error_set(err, WFO_EEXPR, "jq: %.*s is not allowed in wfo expressions",
                                 (int)(j - i), s + i);
        i = j + 2;
    }
    return 0;
}

/* Skips whitespace and comments from *i. */
static void lex_skip_space(const char *s, size_t n, size_t *i)
{
    while (*i < n) {
        if (s[*i] == ' ' || s[*i] == '\t' || s[*i] == '\n' || s[*i] == '\r') {
            (*i)++;
        } else if (s[*i] == '#') {
            while (*i < n && s[*i] != '\n')
                (*i)++;
        } else {
            return;
        }
    }
}

/* Scans string text from *i (inside the quotes): returns 0 after the
 * closing quote, 1 after a "\(" that opens an interpolation, -1 at the end
 * of the text. */
static int lex_string(const char *s, size_t n, size_t *i)
{
    while (*i < n) {
        char c = s[(*i)++];

        if (c == '"')
            return 0;
        if (c == '\\' && *i < n) {
            if (s[*i] == '(') {
                (*i)++;
                return 1;
            }
            (*i)++;
        }
    }
    return -1;
}

/* Skips the number at s[*i] (a digit or a '.' followed by a digit), as
 * jq's lexer reads it: [0-9]+(\.[0-9]*)?|\.[0-9]+, then ([eE][+-]?[0-9]+)?. */
static void lex_number(const char *s, size_t n, size_t *i)
{
    while (*i < n && lex_digit((unsigned char)s[*i]))
        (*i)++;
    if (*i < n && s[*i] == '.') {
        (*i)++;
        while (*i < n && lex_digit((unsigned char)s[*i]))
            (*i)++;
    }
    if (*i < n && (s[*i] == 'e' || s[*i] == 'E')) {
        size_t j = *i + 1;

        if (j < n && (s[j] == '+' || s[j] == '-'))
            j++;
        if (j < n && lex_digit((unsigned char)s[j])) {
            while (j < n && lex_digit((unsigned char)s[j]))
                j++;
            *i = j;
        }
    }
}

/* libjq 1.6's parser leaks the text of a string left open at the end of
 * the program, so those are refused here, in jq's words. */
static int lex_unterminated(const char *s, size_t quote, struct wfo_error *err)
{
    int line = 1;

    for (size_t i = 0; i < quote; i++)
        line += s[i] == '\n';
    return wfo_error_set(err, WFO_EEXPR, "jq: syntax error, unterminated string at line %d", line);
}

/*
 * Refuses the denied builtins and variables in s (stage 1). Identifiers are
 * calls unless they follow '.' (a field: .input reads the context) or open
 * a key of an object construction ({input: 1}, {env}, which is {env: .env}).
 * Frames track the brackets: '(' '[' '{' and 'i' for a string
 * interpolation, which resumes the string at its ')'. A string left open
 * is refused (lex_unterminated); any other text that is not valid jq is
 * refused by jq at compile time.
 */
static int expr_sandbox_check(const char *s, size_t n, int *balanced, struct wfo_error *err)
{
    char frames[EXPR_LEX_DEPTH];
    int keypos[EXPR_LEX_DEPTH];
    size_t quote[EXPR_LEX_DEPTH]; /* 'i' frames: where their string opened */
    int depth = 0, rc;
    size_t i = 0, q;

    *balanced = 1;

#define LEX_PUSH(kind, key, at)                                                                    \
    do {                                                                                           \
        if (depth >= EXPR_LEX_DEPTH)                                                               \
            return wfo_error_set(err, WFO_EEXPR, "jq: expression nested too deeply");              \
        frames[depth] = (kind);                                                                    \
        keypos[depth] = (key);                                                                     \
        quote[depth++] = (at);                                                                     \
    } while (0)

    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        /* True when this token opens a key of the innermost object. */
        int key = depth > 0 && frames[depth - 1] == '{' && keypos[depth - 1];

        if (depth > 0 && frames[depth - 1] == '{' && c != ' ' && c != '\t' && c != '\n' &&
            c != '\r' && c != '#')
            keypos[depth - 1] = 0;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '#') {
            lex_skip_space(s, n, &i);
        } else if (c == '"') {
            q = i++;
            rc = lex_string(s, n, &i);
            if (rc == 1)
                LEX_PUSH('i', 0, q);
            else if (rc < 0)
                return lex_unterminated(s, q, err);
        } else if (c == '.') {
            if (i + 1 < n && s[i + 1] == '.')
                i += 2;
            else if (i + 1 < n && lex_ident_start((unsigned char)s[i + 1]))
                for (i++; i < n && lex_ident_char((unsigned char)s[i]); i++)
                    ; /* a field */
            else if (i + 1 < n && lex_digit((unsigned char)s[i + 1]))
                lex_number(s, n, &i);
            else
                i++;
        } else if (c == '$') {
            size_t len;

            i++;
            lex_skip_space(s, n, &i);
            len = lex_ident(s + i, n - i);
            if (lex_in_list(s + i, len, expr_denied_vars))
                return wfo_error_set(err, WFO_EEXPR, "jq: $%.*s is not allowed in wfo expressions",
                                     (int)len, s + i);
            i += len;
        } else if (c == '@') {
            for (i++; i < n && lex_ident_char((unsigned char)s[i]); i++)
                ; /* a format: @base64 */
        } else if (lex_digit(c)) {
            lex_number(s, n, &i);
        } else if (lex_ident_start(c)) {
            size_t len = lex_ident(s + i, n - i);

            if (!key && (rc = lex_check_ident(s + i, len, err)) < 0)
                return rc;
            i += len;
        } else {
            i++;
            if (c == '(' || c == '[')
                LEX_PUSH((char)c, 0, 0);
            else if (c == '{')
                LEX_PUSH('{', 1, 0);
            else if (c == ',' && depth > 0 && frames[depth - 1] == '{')
                keypos[depth - 1] = 1;
            else if ((c == ')' || c == ']' || c == '}') && depth > 0 && frames[depth - 1] != 'i') {
                if (frames[depth - 1] != (c == ')' ? '(' : c == ']' ? '[' : '{'))
                    *balanced = 0;
                depth--;
            } else if (c == ')' && depth > 0) {
                q = quote[--depth]; /* the end of an interpolation: back in the string */
                rc = lex_string(s, n, &i);
                if (rc == 1)
                    LEX_PUSH('i', 0, q);
                else if (rc < 0)
                    return lex_unterminated(s, q, err);
            } else if (c == ')' || c == ']' || c == '}') {
                *balanced = 0;
            }
        }
    }
    if (depth > 0)
        *balanced = 0;
    for (int k = 0; k < depth; k++)
        if (frames[k] == 'i')
            return lex_unterminated(s, quote[k], err);
#undef LEX_PUSH
    return 0;
}

/* ---- stage 2: plain paths ------------------------------------------------ */

static void expr_steps_free(struct expr *e)
{
    for (size_t i = 0; i < e->nsteps; i++)
        free(e->steps[i].key);
    free(e->steps);
    e->steps = NULL;
    e->nsteps = 0;
}

static void expr_step_add(struct expr *e, char *key, long long index)
{
    e->steps = wfo_realloc(e->steps, (e->nsteps + 1) * sizeof(*e->steps));
    e->steps[e->nsteps].key = key;
    e->steps[e->nsteps].index = index;
    e->nsteps++;
}

/* Parses `[0]`, `[-1]` or `["key"]` at s[*i]; 0, or -1 when it is not one
 * of those simple forms. */
static int path_bracket(struct expr *e, const char *s, size_t n, size_t *i)
{
    size_t j = *i + 1;

    if (j < n && s[j] == '"') {
        size_t start = ++j;

        while (j < n && s[j] != '"' && s[j] != '\\')
            j++;
        if (j + 1 >= n || s[j] != '"' || s[j + 1] != ']')
            return -1;
        expr_step_add(e, wfo_strndup(s + start, j - start), 0);
        *i = j + 2;
        return 0;
    } else {
        int neg = j < n && s[j] == '-';
        size_t start;
        long long v = 0;

        if (neg)
            j++;
        start = j;
        while (j < n && lex_digit((unsigned char)s[j]) && j - start < 15)
            v = v * 10 + (s[j++] - '0');
        /* No leading zeros: jq would read them, but keep the subset plain. */
        if (j == start || j >= n || s[j] != ']' || (s[start] == '0' && j - start > 1))
            return -1;
        expr_step_add(e, NULL, neg ? -v : v);
        *i = j + 1;
        return 0;
    }
}

/* Sets e->is_path and e->steps when the text is a plain path: `.`, or `.`
 * followed by a field or a bracket, then any of `.field`, `[N]`, `["k"]`.
 * All of these are valid jq 1.6 (`.a.["b"]` is not, so it is not taken). */
static void expr_path_parse(struct expr *e, const char *s, size_t n)
{
    size_t i = 1;

    if (n == 0 || s[0] != '.')
        return;
    if (n == 1) {
        e->is_path = 1;
        return;
    }
    if (s[1] == '[') {
        if (path_bracket(e, s, n, &i) < 0)
            goto fail;
    } else {
        i = 0;
    }
    while (i < n) {
        if (s[i] == '.' && i + 1 < n && lex_ident_start((unsigned char)s[i + 1])) {
            size_t start = ++i;

            while (i < n && lex_ident_char((unsigned char)s[i]))
                i++;
            expr_step_add(e, wfo_strndup(s + start, i - start), 0);
        } else if (s[i] == '[' && i > 0) {
            if (path_bracket(e, s, n, &i) < 0)
                goto fail;
        } else {
            goto fail;
        }
    }
    e->is_path = 1;
    return;
fail:
    expr_steps_free(e);
}

/* Walks the path on v from its step `from`. Returns 0 with *out set, or 1
 * when a step meets a value jq would refuse to index: then jq must run to
 * give its error. */
static int expr_path_walk(const struct expr *e, size_t from, json_t *v, json_t **out)
{
    for (size_t i = from; i < e->nsteps; i++) {
        const struct expr_step *st = &e->steps[i];

        if (!v || json_is_null(v)) {
            v = NULL; /* jq: null | .a == null, null | .[0] == null */
        } else if (st->key) {
            if (!json_is_object(v))
                return 1;
            v = json_object_get(v, st->key);
        } else {
            long long size, idx = st->index;

            if (!json_is_array(v))
                return 1;
            size = (long long)json_array_size(v);
            if (idx < 0)
                idx += size;
            v = idx >= 0 && idx < size ? json_array_get(v, (size_t)idx) : NULL;
        }
    }
    *out = v ? json_incref(v) : json_null();
    return 0;
}

/* ---- stage 3: compiling ---------------------------------------------------- */

struct expr_log {
    char first[400]; /* jq's first message */
    int have;
};

static void expr_err_cb(void *data, jv msg)
{
    struct expr_log *log = data;

    if (log && !log->have && jv_get_kind(msg) == JV_KIND_STRING) {
        snprintf(log->first, sizeof(log->first), "%s", jv_string_value(msg));
        log->have = 1;
    }
    jv_free(msg);
}

/* Removes every occurrence of cut from s. */
static void str_remove(char *s, const char *cut)
{
    size_t len = strlen(cut);
    char *p;

    while ((p = strstr(s, cut)))
        memmove(p, p + len, strlen(p + len) + 1);
}

/* jq's "jq: error: MESSAGE at <top-level>, line 1:\nPROGRAM" becomes
 * "jq: MESSAGE at line 1". */
static int expr_compile_error(struct expr_log *log, struct wfo_error *err)
{
    char *m = log->first, *p;
    const char *prefix = "jq: error: ";

    if (!log->have)
        return wfo_error_set(err, WFO_EEXPR, "jq: compile error");
    if (strncmp(m, prefix, strlen(prefix)) == 0)
        m += strlen(prefix);
    if ((p = strchr(m, '\n')))
        *p = '\0';
    str_remove(m, " (Unix shell quoting issues?)");
    if ((p = strstr(m, " at <top-level>, line "))) {
        size_t from = strlen(" at <top-level>, line "), to = strlen(" at line ");

        memmove(p + to, p + from, strlen(p + from) + 1);
        memcpy(p, " at line ", to);
    }
    p = m + strlen(m);
    if (p > m && p[-1] == ':')
        p[-1] = '\0';
    return wfo_error_set(err, WFO_EEXPR, "jq: %s", m);
}

static void expr_emit_cb(void *data, jv v);

/* The server's secrets as JSON text, bound to $secrets in every program
 * (SPEC 2.1): set once before any compile (expr_set_secrets), read-only
 * after. Text rather than a jv: libjq's reference counts are not atomic,
 * and programs are compiled on many threads. */
static char *expr_secrets_text;

void expr_set_secrets(json_t *obj)
{
    char *t = wfo_json_dumps(obj);
    free(expr_secrets_text);
    expr_secrets_text = t;
}

/* [{name: "secrets", value: {...}}] for jq_compile_args. */
static jv expr_compile_args(void)
{
    json_t *obj = NULL;
    jv v = jv_invalid();
    if (expr_secrets_text &&
        wfo_json_parse(expr_secrets_text, strlen(expr_secrets_text), &obj, NULL) == 0 &&
        expr_to_jv(obj, 0, &v) == 0) {
        /* v set */
    } else {
        v = jv_object();
    }
    json_decref(obj);
    jv arg = jv_object_set(jv_object(), jv_string("name"), jv_string("secrets"));
    arg = jv_object_set(arg, jv_string("value"), v);
    return jv_array_append(jv_array(), arg);
}

/* A new jq_state compiled from the program text (I5); 0, or WFO_EEXPR with
 * jq's message. */
static int expr_jq_compile(const char *program, jq_state **out, struct wfo_error *err)
{
    struct expr_log log = {{0}, 0};
    jq_state *jq;

    *out = NULL;
    jq = jq_init();
    if (!jq)
        return wfo_error_set(err, WFO_ENOMEM, "jq: out of memory");
    jq_set_nomem_handler(jq, expr_nomem, NULL);
    jq_set_input_cb(jq, NULL, NULL);
    jq_set_debug_cb(jq, expr_emit_cb, NULL);
    jq_set_error_cb(jq, expr_err_cb, &log);
    /* Without a library path, `import` makes libjq abort. */
    jq_set_attr(jq, jv_string("JQ_LIBRARY_PATH"), jv_array());
    if (!jq_compile_args(jq, program, expr_compile_args())) {
        jq_teardown(&jq);
        return expr_compile_error(&log, err);
    }
    jq_set_error_cb(jq, expr_err_cb, NULL); /* log is about to go */
    *out = jq;
    return 0;
}

/*
 * Compiles the user's text as EXPR_PRELUDE
 * `path(.[0] | .[(TEXT\n) | _wfo_emit])`, run on [CONTEXT]. The text runs
 * on the context as a subexpression inside a path expression: it behaves
 * as it would on its own (jq does not track paths in subexpressions), but
 * libjq's path stays an array for the whole run, which is what lets
 * jq_reset() unwind a run stopped anywhere (I6). The path is [0], not []:
 * backtracking slices it, and libjq 1.6 allocates a new array for each
 * empty slice. The first output goes to
 * expr_emit_cb() through _wfo_emit (debug, before EXPR_PRELUDE shadows it),
 * which halts the run there: jq never returns an output, so no error or
 * break travels back through the user's `try` (jq 1.6's try catches errors
 * raised after it). The newline ends a trailing comment; the wrapper is
 * used only when the text's brackets balance, so the text cannot close
 * it. jq's messages are those for the text on its own: when the wrapped
 * program fails, the plain one is compiled to say why.
 */
static int expr_jq_new(const char *text, int balanced, jq_state **out, struct wfo_error *err)
{
    struct wfo_buf prog = WFO_BUF_INIT;
    jq_state *plain = NULL;
    int rc;

    *out = NULL;
    wfo_buf_adds(&prog, EXPR_PRELUDE);
    if (balanced) {
        wfo_buf_adds(&prog, EXPR_WRAP_OPEN);
        wfo_buf_adds(&prog, text);
        wfo_buf_adds(&prog, EXPR_WRAP_CLOSE);
        if ((rc = expr_jq_compile(prog.buf, out, err)) == 0)
            goto out;
        wfo_buf_reset(&prog);
        wfo_buf_adds(&prog, EXPR_PRELUDE);
    }
    wfo_buf_adds(&prog, text);
    if ((rc = expr_jq_compile(prog.buf, &plain, err)) == 0) {
        /* Valid alone but not wrapped: err holds the wrapped message. */
        jq_teardown(&plain);
        rc = balanced ? WFO_EEXPR
                      : wfo_error_set(err, WFO_EEXPR, "jq: syntax error, unbalanced brackets");
    }
out:
    wfo_buf_release(&prog);
    return rc;
}

static void expr_free(struct expr *e)
{
    if (!e)
        return;
    if (e->jq)
        jq_teardown(&e->jq);
    expr_steps_free(e);
    free(e->text);
    free(e);
}

/* Compiles the expression text s (n bytes, without "${" and "}"). */
static int expr_new(const char *s, size_t n, struct expr **out, struct wfo_error *err)
{
    struct expr *e = NULL;
    int rc, balanced;

    *out = NULL;
    if (memchr(s, '\0', n))
        return wfo_error_set(err, WFO_EEXPR, "jq: expression holds a NUL character");
    while (n > 0 && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
        s++, n--;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    if (n == 0)
        return wfo_error_set(err, WFO_EEXPR, "jq: empty expression");
    if ((rc = expr_sandbox_check(s, n, &balanced, err)) < 0)
        return rc;
    e = wfo_calloc(1, sizeof(*e));
    e->balanced = balanced;
    e->text = wfo_strndup(s, n);
    expr_path_parse(e, s, n);
    /* A plain path is valid jq: compiled when first needed (stage 2). */
    if (!e->is_path && (rc = expr_jq_new(e->text, e->balanced, &e->jq, err)) < 0)
        goto out;
    *out = e;
    e = NULL;
out:
    expr_free(e);
    return rc;
}

/* ---- stage 4: evaluating ---------------------------------------------------- */

struct expr_run {
    jq_state *jq;
    jv input; /* consumed */
    struct watch_slot slot;
    jv value; /* the first output, from expr_emit_cb */
    int have_value;
    json_t *out;
    struct wfo_error *err;
    int rc;
};

/* libjq's debug callback. Only _wfo_emit calls debug (stage 1 refuses the
 * user's), with the program's first output: keep it and halt the run right
 * there, inside the path expression (I2, I6). */
static void expr_emit_cb(void *data, jv v)
{
    struct expr_run *r = data;

    if (!r || r->have_value) {
        jv_free(v);
        return;
    }
    r->value = v;
    r->have_value = 1;
    pthread_mutex_lock(&watch.mu);
    if (!r->slot.fired) {
        r->slot.fired = WATCH_DONE;
        jq_halt(r->jq, jv_invalid(), jv_invalid());
    }
    pthread_mutex_unlock(&watch.mu);
}

/* Runs on the fiber: starts jq on the input, takes the first output. */
static void expr_run_fn(void *p)
{
    struct expr_run *r = p;
    jv v;
    int fired;

    jq_set_debug_cb(r->jq, expr_emit_cb, r);
    jq_start(r->jq, r->input, 0);
    watch_register(&r->slot, r->jq);
    v = jq_next(r->jq);
    fired = watch_unregister(&r->slot);
    jq_set_debug_cb(r->jq, expr_emit_cb, NULL);
    if (r->have_value || jv_is_valid(v)) {
        /* An output, even if the watchdog fired meanwhile. */
        if (r->have_value) {
            jv_free(v);
            v = r->value;
            r->have_value = 0;
        }
        r->out = expr_from_jv(v, 0, r->err);
        if (!r->out)
            r->rc = WFO_EEXPR;
    } else if (fired == WATCH_TIME) {
        jv_free(v);
        r->rc = wfo_error_set(r->err, WFO_EEXPR, "jq: evaluation exceeded %d ms",
                              WFO_EXPR_TIME_LIMIT_MS);
    } else if (fired == WATCH_MEMORY) {
        jv_free(v);
        r->rc = wfo_error_set(r->err, WFO_EEXPR, "jq: evaluation exceeded %ld MiB of memory",
                              EXPR_MEMORY_LIMIT >> 20);
    } else if (jv_invalid_has_msg(jv_copy(v))) {
        jv msg = jv_invalid_get_msg(v);

        if (jv_get_kind(msg) == JV_KIND_STRING) {
            r->rc = wfo_error_set(r->err, WFO_EEXPR, "jq: %s", jv_string_value(msg));
        } else {
            jv text = jv_dump_string(msg, 0);

            msg = jv_null();
            r->rc =
                wfo_error_set(r->err, WFO_EEXPR, "jq: %s (not a string)", jv_string_value(text));
            jv_free(text);
        }
        jv_free(msg);
    } else {
        jv_free(v); /* no output */
        r->out = json_null();
    }
    /* Let go of what the run holds (the input, its stack) now (I6). */
    jq_start(r->jq, jv_null(), 0);
}

static void expr_jv_free_fn(void *p)
{
    jv_free(*(jv *)p);
}

/* jq_states whose teardown ran out of memory (I3): kept reachable, never
 * touched again. */
struct expr_grave {
    jq_state *jq;
    struct expr_grave *next;
};
static struct expr_grave *expr_graveyard;
static pthread_mutex_t expr_graveyard_mu = PTHREAD_MUTEX_INITIALIZER;

static void expr_abandon(jq_state *jq)
{
    struct expr_grave *g = wfo_malloc(sizeof(*g));

    g->jq = jq;
    pthread_mutex_lock(&expr_graveyard_mu);
    g->next = expr_graveyard;
    expr_graveyard = g;
    pthread_mutex_unlock(&expr_graveyard_mu);
}

static void expr_teardown_fn(void *p)
{
    jq_state *jq = *(jq_state **)p;

    jq_teardown(&jq);
}

/* Tears down the jq_state of e after an OOM (I3). */
static void expr_discard(struct expr *e)
{
    jq_state *jq = e->jq;

    e->jq = NULL;
    if (fiber_call(expr_teardown_fn, &jq))
        expr_abandon(jq);
}

struct eval_state {
    json_t *ctx;
    struct expr_ctx *lazy; /* tmpl_eval_ctx: ctx is asked of it when needed */
    jv ctxjv;              /* [the context] as a jv, jq's input (expr_jq_new), made on first need */
    int have_ctxjv;
};

/* A plain path: through lazy->member when the path starts with a key. */
static int expr_eval_path(struct expr *e, struct eval_state *es, json_t **out)
{
    if (es->lazy && e->nsteps && e->steps[0].key) {
        const char *keys[EXPR_CTX_KEYS];
        int n = 0, used = 1;
        while (n < EXPR_CTX_KEYS && (size_t)n < e->nsteps && e->steps[n].key) {
            keys[n] = e->steps[n].key;
            n++;
        }
        json_t *v = es->lazy->member(es->lazy, keys, n, &used);
        return expr_path_walk(e, (size_t)used, v, out);
    }
    if (es->lazy && !es->ctx)
        es->ctx = es->lazy->whole(es->lazy);
    return expr_path_walk(e, 0, es->ctx, out);
}

static int expr_eval(struct expr *e, struct eval_state *es, json_t **out, struct wfo_error *err)
{
    struct expr_run r;
    int rc, oom;

    *out = NULL;
    if (e->is_path && expr_eval_path(e, es, out) == 0)
        return 0;
    if (es->lazy && !es->ctx)
        es->ctx = es->lazy->whole(es->lazy);
    if ((rc = watch_start(err)) < 0)
        return rc;
    if (!e->jq && (rc = expr_jq_new(e->text, e->balanced, &e->jq, err)) < 0)
        return rc;
    if (!es->have_ctxjv) {
        jv c;

        if (expr_to_jv(es->ctx ? es->ctx : json_null(), 0, &c) < 0)
            return wfo_error_set(err, WFO_EEXPR, "jq: context nested deeper than %d levels",
                                 EXPR_DEPTH_IN);
        es->ctxjv = jv_array_append(jv_array(), c);
        es->have_ctxjv = 1;
    }
    memset(&r, 0, sizeof(r));
    r.jq = e->jq;
    r.input = jv_copy(es->ctxjv);
    r.err = err;
    oom = fiber_call(expr_run_fn, &r);
    if (oom == 2) {
        /* I7: nothing libjq holds is touched again */
        watch_unregister(&r.slot);
        json_decref(r.out);
        r.out = NULL;
        expr_abandon(e->jq);
        e->jq = NULL;
        r.rc = wfo_error_set(err, WFO_EEXPR, "jq: libjq failed on these values (signal %s)",
                             expr_fault_sig == SIGABRT   ? "SIGABRT"
                             : expr_fault_sig == SIGFPE  ? "SIGFPE"
                             : expr_fault_sig == SIGSEGV ? "SIGSEGV"
                                                         : "SIGBUS/SIGILL");
    } else if (oom) {
        watch_unregister(&r.slot);
        json_decref(r.out);
        r.out = NULL;
        if (r.have_value)
            fiber_call(expr_jv_free_fn, &r.value);
        expr_discard(e); /* I3: recompiled on next use */
        r.rc = wfo_error_set(err, WFO_EEXPR, "jq: evaluation ran out of memory");
    }
    if (r.rc < 0)
        fiber_trim();
    *out = r.out;
    return r.rc;
}

/* ---- templates ------------------------------------------------------------- */

static void node_release(struct node *n)
{
    switch (n->kind) {
    case NODE_CONST:
        json_decref(n->value);
        break;
    case NODE_EXPR:
        expr_free(n->expr);
        break;
    case NODE_ARRAY:
    case NODE_OBJECT:
        for (size_t i = 0; i < n->n; i++) {
            node_release(&n->kids[i]);
            if (n->keys)
                free(n->keys[i]);
        }
        free(n->kids);
        free(n->keys);
        free(n->keylens);
        break;
    }
    memset(n, 0, sizeof(*n));
}

/* Appends ".key", or ["key"] for keys that are not identifiers. */
static void path_add_key(struct wfo_buf *path, const char *key, size_t len)
{
    int plain = len > 0 && lex_ident_start((unsigned char)key[0]);

    for (size_t i = 0; plain && i < len; i++)
        plain = lex_ident_char((unsigned char)key[i]);
    if (plain) {
        wfo_buf_addch(path, '.');
        wfo_buf_add(path, key, len);
        return;
    }
    wfo_buf_adds(path, "[\"");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];

        if (c == '"' || c == '\\')
            wfo_buf_addf(path, "\\%c", c);
        else if (c < 0x20)
            wfo_buf_addf(path, "\\u%04x", c);
        else
            wfo_buf_addch(path, c);
    }
    wfo_buf_adds(path, "\"]");
}

static int expr_text(const char *s, size_t len);

/* Where node_compile tells of every leaf that fails (tmpl_check), rather
 * than stopping at the first. */
struct node_sink {
    tmpl_bad_fn *bad;
    void *ud;
    int rc; /* the first failure's */
};

static int node_compile(json_t *v, struct node *n, struct wfo_buf *path, struct wfo_error *err,
                        struct node_sink *sink)
{
    size_t mark = path->len, i = 0;
    int rc = 0, all_const = 1;

    memset(n, 0, sizeof(*n));
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);

        if (expr_text(s, len)) {
            n->kind = NODE_EXPR;
            rc = expr_new(s + 2, len - 3, &n->expr, err);
            if (rc < 0 && sink) {
                sink->bad(sink->ud, path->buf ? path->buf : "",
                          err->message[0] ? err->message : wfo_strerror(rc));
                if (!sink->rc)
                    sink->rc = rc;
                *err = (struct wfo_error)WFO_ERROR_INIT;
                rc = 0;
            }
            return rc;
        }
    } else if (json_is_array(v) && json_array_size(v) > 0) {
        n->kind = NODE_ARRAY;
        n->n = json_array_size(v);
        n->kids = wfo_calloc(n->n, sizeof(*n->kids));
        for (i = 0; i < n->n; i++) {
            wfo_buf_addf(path, "[%zu]", i);
            if ((rc = node_compile(json_array_get(v, i), &n->kids[i], path, err, sink)) < 0)
                return rc;
            path->len = mark;
            path->buf[mark] = '\0';
            all_const &= n->kids[i].kind == NODE_CONST;
        }
    } else if (json_is_object(v) && json_object_size(v) > 0) {
        const char *key;
        size_t keylen;
        json_t *val;

        n->kind = NODE_OBJECT;
        n->n = json_object_size(v);
        n->kids = wfo_calloc(n->n, sizeof(*n->kids));
        n->keys = wfo_calloc(n->n, sizeof(*n->keys));
        n->keylens = wfo_calloc(n->n, sizeof(*n->keylens));
        json_object_keylen_foreach(v, key, keylen, val)
        {
            n->keys[i] = wfo_malloc(keylen + 1);
            memcpy(n->keys[i], key, keylen + 1);
            n->keylens[i] = keylen;
            path_add_key(path, key, keylen);
            if ((rc = node_compile(val, &n->kids[i], path, err, sink)) < 0)
                return rc;
            path->len = mark;
            path->buf[mark] = '\0';
            all_const &= n->kids[i].kind == NODE_CONST;
            i++;
        }
    }
    if (n->kind != NODE_CONST && !all_const)
        return 0;
    node_release(n);
    n->kind = NODE_CONST;
    n->value = json_incref(v);
    return 0;
}

static int node_eval(const struct node *n, struct eval_state *es, json_t **out,
                     struct wfo_error *err)
{
    json_t *r = NULL, *x;
    int rc = 0;

    *out = NULL;
    switch (n->kind) {
    case NODE_CONST:
        *out = json_incref(n->value);
        return 0;
    case NODE_EXPR:
        return expr_eval(n->expr, es, out, err);
    case NODE_ARRAY:
        r = json_array();
        for (size_t i = 0; i < n->n; i++) {
            if ((rc = node_eval(&n->kids[i], es, &x, err)) < 0)
                goto out;
            json_array_append_new(r, x);
        }
        break;
    case NODE_OBJECT:
        r = json_object();
        for (size_t i = 0; i < n->n; i++) {
            if ((rc = node_eval(&n->kids[i], es, &x, err)) < 0)
                goto out;
            json_object_setn_new(r, n->keys[i], n->keylens[i], x);
        }
        break;
    }
    *out = r;
    r = NULL;
out:
    json_decref(r);
    return rc;
}

/* A whole-string expression: "${", then jq text whose braces balance
 * (strings skipped), then the "}" that closes it as the last byte. So
 * "${ .a } and ${ .b }" is text, not one broken expression. */
/* Whether s (len bytes) is an expression: "${ ... }" whose braces
 * (outside jq strings) close only at its end, so that "${ .a } and ${ .b }"
 * is text. */
static int expr_text(const char *s, size_t len)
{
    if (len < 3 || s[0] != '$' || s[1] != '{' || s[len - 1] != '}')
        return 0;
    int depth = 0, in_str = 0;
    for (size_t i = 2; i < len - 1; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\' && i + 1 < len - 1)
                i++;
            else if (c == '"')
                in_str = 0;
            continue;
        }
        if (c == '"')
            in_str = 1;
        else if (c == '{')
            depth++;
        else if (c == '}' && --depth < 0)
            return 0;
    }
    return 1;
}

int expr_is_expression(const char *s)
{
    return s ? expr_text(s, strlen(s)) : 0;
}

int tmpl_compile(json_t *value, struct tmpl **out, char **bad_path, struct wfo_error *err)
{
    struct tmpl *t = NULL;
    struct wfo_buf path = WFO_BUF_INIT;
    int rc;

    *out = NULL;
    if (bad_path)
        *bad_path = NULL;
    if (!value)
        return wfo_error_set(err, WFO_EINVAL, "no template value");
    t = wfo_calloc(1, sizeof(*t));
    t->value = json_incref(value);
    if ((rc = node_compile(value, &t->root, &path, err, NULL)) < 0) {
        if (bad_path)
            *bad_path = wfo_buf_detach(&path, NULL);
        goto out;
    }
    *out = t;
    t = NULL;
out:
    wfo_buf_release(&path);
    tmpl_free(t);
    return rc;
}

int tmpl_check(json_t *value, tmpl_bad_fn *bad, void *ud)
{
    struct node_sink sink = {bad, ud, 0};
    struct wfo_buf path = WFO_BUF_INIT;
    struct wfo_error err = WFO_ERROR_INIT;
    struct node root;

    (void)node_compile(value, &root, &path, &err, &sink);
    node_release(&root);
    wfo_buf_release(&path);
    return sink.rc;
}

void tmpl_free(struct tmpl *t)
{
    if (!t)
        return;
    node_release(&t->root);
    json_decref(t->value);
    free(t);
}

int tmpl_is_const(const struct tmpl *t)
{
    return t->root.kind == NODE_CONST;
}

int tmpl_eval(const struct tmpl *t, json_t *ctx, json_t **out, struct wfo_error *err)
{
    struct eval_state es = {ctx, NULL, {0}, 0};
    int rc;

    rc = node_eval(&t->root, &es, out, err);
    if (es.have_ctxjv)
        jv_free(es.ctxjv);
    return rc;
}

int tmpl_eval_ctx(const struct tmpl *t, struct expr_ctx *c, json_t **out, struct wfo_error *err)
{
    struct eval_state es = {NULL, c, {0}, 0};
    int rc;

    rc = node_eval(&t->root, &es, out, err);
    if (es.have_ctxjv)
        jv_free(es.ctxjv);
    return rc;
}

/* text is either an expression ("${ .a }") or the jq program itself. */
int expr_eval_once(const char *text, json_t *ctx, json_t **out, struct wfo_error *err)
{
    struct eval_state es = {ctx, NULL, {0}, 0};
    struct expr *e = NULL;
    size_t len;
    int rc;

    *out = NULL;
    if (!text)
        return wfo_error_set(err, WFO_EINVAL, "no expression");
    len = strlen(text);
    if (expr_is_expression(text))
        rc = expr_new(text + 2, len - 3, &e, err);
    else
        rc = expr_new(text, len, &e, err);
    if (rc < 0)
        return rc;
    rc = expr_eval(e, &es, out, err);
    if (es.have_ctxjv)
        jv_free(es.ctxjv);
    expr_free(e);
    return rc;
}
