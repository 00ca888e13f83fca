/*
 * sqlite.h - what the SQLite back end offers besides store_sqlite_ops
 * (store.h): a diagnostic door for tests and operators. It does not expose
 * <sqlite3.h>: only src/store/sqlite/ includes that.
 */
#ifndef WFO_STORE_SQLITE_SQLITE_H
#define WFO_STORE_SQLITE_SQLITE_H

#include <stddef.h>

#include "store/store.h"

/* Runs one SQL statement on the writer connection of s (a store opened by
 * store_sqlite_ops) and writes its rows into out, columns separated by '|',
 * each row ended by '\n' (NULL as ""). For pragmas and EXPLAIN QUERY PLAN in
 * tests: parameters stay unbound. WFO_ETOOBIG when out is too small (out then
 * holds what fitted), WFO_ESTORE with SQLite's message on error. */
int store_sqlite_query(struct store *s, const char *sql, char *out, size_t size,
                       struct wfo_error *err);

/* The SELECT that list_execs runs for the filters set in f (parameters
 * unbound), into out. */
void store_sqlite_list_sql(const struct store_exec_filter *f, char *out, size_t size);

#endif
