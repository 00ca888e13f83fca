/*
 * log.h - structured logs on stderr, text or JSON lines.
 *
 * Every line about one execution carries its id and, when about a step, the
 * step's path (SPEC 7).
 */
#ifndef WFO_COMMON_LOG_H
#define WFO_COMMON_LOG_H

enum wfo_log_level { WFO_LOG_DEBUG, WFO_LOG_INFO, WFO_LOG_WARN, WFO_LOG_ERROR, WFO_LOG_OFF };
enum wfo_log_format { WFO_LOG_TEXT, WFO_LOG_JSON };

void wfo_log_setup(enum wfo_log_level level, enum wfo_log_format format);
/* "debug" | "info" | "warn" | "error" | "off"; -1 when unknown. */
int wfo_log_level_parse(const char *s);
int wfo_log_enabled(enum wfo_log_level level);

/* exec_id and step may be NULL. Thread-safe: one write(2) per line. */
void wfo_log(enum wfo_log_level level, const char *exec_id, const char *step, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The same with the execution's workflow name too (may be NULL). */
void wfo_log_exec(enum wfo_log_level level, const char *exec_id, const char *workflow,
                  const char *step, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The same with fields: kv holds n (name, value) pairs, a NULL value is
 * left out; JSON lines get them as keys, text lines as " name=value"
 * (quoted when the value holds a blank). */
void wfo_log_fields(enum wfo_log_level level, const char *exec_id, const char *workflow,
                    const char *const *kv, int n, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* This thread's lines are kept from wfo_log_hold() to the matching
 * wfo_log_release(), then written with one write(2) (and whenever they
 * pass 64 KiB). Holds nest. */
void wfo_log_hold(void);
void wfo_log_release(void);

#define wfo_debug(...) wfo_log(WFO_LOG_DEBUG, __VA_ARGS__)
#define wfo_info(...) wfo_log(WFO_LOG_INFO, __VA_ARGS__)
#define wfo_warn(...) wfo_log(WFO_LOG_WARN, __VA_ARGS__)
#define wfo_err(...) wfo_log(WFO_LOG_ERROR, __VA_ARGS__)

#endif
