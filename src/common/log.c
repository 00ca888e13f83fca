/*
 * log.c - structured logs on stderr, as text or JSON lines (common/log.h;
 * SPEC 6 `log: {level, format}` and SPEC 7; docs/operations/monitoring.md).
 *
 *   text: 2026-11-26T04:14:50.123Z INFO exec=ID wf=NAME step=PATH message
 *   json: {"time":"…","level":"info","msg":"…","execution_id":"…","workflow":"…","step":"…"}
 *
 * exec= / wf= / step= (execution_id / workflow / step) are left out when NULL; their values,
 * and the fields' after the message, are quoted as logfmt quotes them when
 * they hold a blank, a quote, a backslash or '='. A line is built
 * whole and written with one write(2), so lines of concurrent threads never
 * interleave. Between wfo_log_hold() and wfo_log_release() a thread's lines
 * are kept and then written together, still whole lines in order, with one
 * write(2) (the engine's lines of a round: a system call per line was a
 * large part of the server's logging under load). In text lines, control
 * characters (tab included) are escaped so that one call is always one
 * line.
 */
#include "common/compat.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/duration.h"
#include "common/json.h"
#include "common/log.h"
#include "common/redact.h"

/* Longest message kept; the rest is cut. */
#define LOG_MAX_MSG 16384

static atomic_int log_level = WFO_LOG_INFO;
static atomic_int log_format = WFO_LOG_TEXT;

static const char *const log_names_upper[] = {"DEBUG", "INFO", "WARN", "ERROR"};
static const char *const log_names_lower[] = {"debug", "info", "warn", "error", "off"};

void wfo_log_setup(enum wfo_log_level level, enum wfo_log_format format)
{
    atomic_store(&log_level, (int)level);
    atomic_store(&log_format, (int)format);
}

int wfo_log_level_parse(const char *s)
{
    if (!s)
        return -1;
    for (int i = 0; i <= WFO_LOG_OFF; i++)
        if (strcmp(s, log_names_lower[i]) == 0)
            return i;
    return -1;
}

int wfo_log_enabled(enum wfo_log_level level)
{
    return (int)level >= atomic_load(&log_level) && level >= WFO_LOG_DEBUG && level < WFO_LOG_OFF;
}

/* Appends s, escaping control characters (text format); in a quoted
 * value (quoted), '"' and '\\' too. */
static void log_add_escaped(struct wfo_buf *b, const char *s, int quoted)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '\n')
            wfo_buf_adds(b, "\\n");
        else if (c == '\r')
            wfo_buf_adds(b, "\\r");
        else if (c == '\t')
            wfo_buf_adds(b, "\\t");
        else if (c < 0x20)
            wfo_buf_addf(b, "\\x%02x", c);
        else if (quoted && (c == '"' || c == '\\'))
            wfo_buf_addf(b, "\\%c", c);
        else
            wfo_buf_addch(b, c);
    }
}

/* " key=value": the value quoted (logfmt) when it is empty or holds a
 * blank, a quote, a backslash or '=', so that a line splits back into its
 * fields whatever an id or a name holds ("exec=x wf=payroll" cannot be
 * faked by an execution id). */
static void log_add_field(struct wfo_buf *b, const char *key, const char *v)
{
    int q = !v[0] || strpbrk(v, " \t\"\\=") != NULL;
    wfo_buf_addch(b, ' ');
    wfo_buf_adds(b, key);
    wfo_buf_addch(b, '=');
    if (q)
        wfo_buf_addch(b, '"');
    log_add_escaped(b, v, q);
    if (q)
        wfo_buf_addch(b, '"');
}

/* Lines held by this thread (wfo_log_hold), written at the release. */
static _Thread_local struct wfo_buf log_held;
static _Thread_local int log_holding;

/* Held lines are written once they pass this many bytes, release or not. */
#define LOG_HOLD_MAX 65536

static void log_write(const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

/* One line: the message, then exec_id, workflow, step and the fields (kv:
 * n pairs, NULL values left out). */
static void log_line(enum wfo_log_level level, const char *exec_id, const char *workflow,
                     const char *step, const char *const *kv, int n, const char *fmt, va_list ap)
    __attribute__((format(printf, 7, 0)));

void wfo_log_exec(enum wfo_log_level level, const char *exec_id, const char *workflow,
                  const char *step, const char *fmt, ...)
{
    va_list ap;

    if (!wfo_log_enabled(level))
        return;
    va_start(ap, fmt);
    log_line(level, exec_id, workflow, step, NULL, 0, fmt, ap);
    va_end(ap);
}

static void log_line(enum wfo_log_level level, const char *exec_id, const char *workflow,
                     const char *step, const char *const *kv, int n, const char *fmt, va_list ap)
{
    struct wfo_buf msg = WFO_BUF_INIT, line = WFO_BUF_INIT;
    char now[40];

    if (strchr(fmt, '%'))
        wfo_buf_vaddf(&msg, fmt, ap);
    else
        wfo_buf_adds(&msg, fmt); /* "audit" and the like: no printf */
    wfo_redact_buf(&msg);        /* no secret's value in any log line (SPEC 2.1) */
    if (msg.len > LOG_MAX_MSG) {
        msg.len = LOG_MAX_MSG;
        msg.buf[msg.len] = '\0';
    }
    wfo_time_format(wfo_now_ms(), now, sizeof(now));

    if (atomic_load(&log_format) == WFO_LOG_JSON) {
        json_t *o = json_object();

        json_object_set_new(o, "time", json_string(now));
        json_object_set_new(o, "level", json_string(log_names_lower[level]));
        /* _nocheck: the serializer turns bytes that are not UTF-8 into U+FFFD. */
        json_object_set_new(o, "msg", json_stringn_nocheck(msg.buf, msg.len));
        if (exec_id)
            json_object_set_new(o, "execution_id", json_string_nocheck(exec_id));
        if (workflow)
            json_object_set_new(o, "workflow", json_string_nocheck(workflow));
        if (step)
            json_object_set_new(o, "step", json_string_nocheck(step));
        for (int i = 0; i < n; i++)
            if (kv[2 * i + 1])
                json_object_set_new(o, kv[2 * i], json_string_nocheck(kv[2 * i + 1]));
        wfo_json_dumpb(o, &line);
        json_decref(o);
    } else {
        wfo_buf_adds(&line, now);
        wfo_buf_addch(&line, ' ');
        wfo_buf_adds(&line, log_names_upper[level]);
        if (exec_id)
            log_add_field(&line, "exec", exec_id);
        if (workflow)
            log_add_field(&line, "wf", workflow);
        if (step)
            log_add_field(&line, "step", step);
        wfo_buf_addch(&line, ' ');
        log_add_escaped(&line, msg.buf, 0);
        for (int i = 0; i < n; i++)
            if (kv[2 * i + 1])
                log_add_field(&line, kv[2 * i], kv[2 * i + 1]);
    }
    wfo_redact_buf(&line);
    wfo_buf_addch(&line, '\n');
    if (log_holding) {
        wfo_buf_add(&log_held, line.buf, line.len);
        if (log_held.len >= LOG_HOLD_MAX) {
            log_write(log_held.buf, log_held.len);
            wfo_buf_reset(&log_held);
        }
    } else {
        log_write(line.buf, line.len);
    }
    wfo_buf_release(&line);
    wfo_buf_release(&msg);
}

void wfo_log(enum wfo_log_level level, const char *exec_id, const char *step, const char *fmt, ...)
{
    va_list ap;

    if (!wfo_log_enabled(level))
        return;
    va_start(ap, fmt);
    log_line(level, exec_id, NULL, step, NULL, 0, fmt, ap);
    va_end(ap);
}

void wfo_log_fields(enum wfo_log_level level, const char *exec_id, const char *workflow,
                    const char *const *kv, int n, const char *fmt, ...)
{
    va_list ap;

    if (!wfo_log_enabled(level))
        return;
    va_start(ap, fmt);
    log_line(level, exec_id, workflow, NULL, kv, n, fmt, ap);
    va_end(ap);
}

void wfo_log_hold(void)
{
    log_holding++;
}

void wfo_log_release(void)
{
    if (log_holding > 0 && --log_holding == 0) {
        log_write(log_held.buf, log_held.len);
        wfo_buf_release(&log_held); /* a thread that ends holds nothing */
    }
}
