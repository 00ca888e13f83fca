/*
 * rawdb.h - SQLite files made and read by hand, below the store interface,
 * for the migration checks of the store contract suite (suite.h): the
 * schemas of older wfo versions as they were written then, and a way to run
 * SQL on a file and read its answer. The only file of the suite that
 * includes <sqlite3.h>, as store/sqlite/ is the only one in src/.
 */
#ifndef WFO_TESTS_STORE_RAWDB_H
#define WFO_TESTS_STORE_RAWDB_H

#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

/* Schema version 1 (src/store/sqlite/sqlite.c before 4dc36a4): no
 * steps.input, no executions_ended index, no meta table. */
static const char rawdb_schema_v1[] =
    "CREATE TABLE IF NOT EXISTS workflows ("
    " namespace TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,"
    " hash TEXT NOT NULL, definition TEXT NOT NULL, created_at INTEGER,"
    " PRIMARY KEY (namespace, name, version));"
    "CREATE TABLE IF NOT EXISTS executions ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,"
    " namespace TEXT NOT NULL, workflow TEXT NOT NULL, version INTEGER NOT NULL,"
    " status TEXT NOT NULL, input TEXT NOT NULL, output TEXT, error TEXT,"
    " compensation TEXT, parent TEXT, state TEXT,"
    " created_at INTEGER, updated_at INTEGER, finished_at INTEGER);"
    "CREATE INDEX IF NOT EXISTS executions_ns_seq ON executions (namespace, seq);"
    "CREATE INDEX IF NOT EXISTS executions_ns_status_seq ON executions (namespace, status, seq);"
    "CREATE INDEX IF NOT EXISTS executions_ns_workflow_seq"
    " ON executions (namespace, workflow, seq);"
    "CREATE INDEX IF NOT EXISTS executions_active ON executions (seq)"
    " WHERE status IN ('running', 'paused');"
    "CREATE TABLE IF NOT EXISTS steps ("
    " exec_id TEXT NOT NULL, path TEXT NOT NULL, ord INTEGER NOT NULL, status TEXT NOT NULL,"
    " attempts INTEGER NOT NULL, output TEXT, error TEXT, state TEXT,"
    " started_at INTEGER, finished_at INTEGER,"
    " PRIMARY KEY (exec_id, path)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS history ("
    " exec_id TEXT NOT NULL, seq INTEGER NOT NULL, time INTEGER, type TEXT NOT NULL,"
    " step TEXT, data TEXT,"
    " PRIMARY KEY (exec_id, seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS timers ("
    " id TEXT PRIMARY KEY NOT NULL, exec_id TEXT NOT NULL, due_at INTEGER, kind TEXT NOT NULL,"
    " step TEXT, attempt INTEGER NOT NULL, data TEXT);"
    "CREATE INDEX IF NOT EXISTS timers_due ON timers (due_at);"
    "CREATE TABLE IF NOT EXISTS tasks ("
    " id TEXT PRIMARY KEY NOT NULL, exec_id TEXT NOT NULL, namespace TEXT NOT NULL,"
    " queue TEXT NOT NULL, step TEXT NOT NULL, attempt INTEGER NOT NULL, status TEXT NOT NULL,"
    " lease TEXT, input TEXT, ready_at INTEGER, leased_until INTEGER, created_at INTEGER);"
    "CREATE INDEX IF NOT EXISTS tasks_queue ON tasks (queue, status, ready_at);"
    "PRAGMA user_version = 1;";

/* Schema version 2 (src/store/sqlite/sqlite.c at 92774a8), with the meta
 * table that server_key adds when first asked. */
static const char rawdb_schema_v2[] =
    "CREATE TABLE IF NOT EXISTS workflows ("
    " namespace TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,"
    " hash TEXT NOT NULL, definition TEXT NOT NULL, created_at INTEGER,"
    " PRIMARY KEY (namespace, name, version));"
    "CREATE TABLE IF NOT EXISTS executions ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,"
    " namespace TEXT NOT NULL, workflow TEXT NOT NULL, version INTEGER NOT NULL,"
    " status TEXT NOT NULL, input TEXT NOT NULL, output TEXT, error TEXT,"
    " compensation TEXT, parent TEXT, state TEXT,"
    " created_at INTEGER, updated_at INTEGER, finished_at INTEGER);"
    "CREATE INDEX IF NOT EXISTS executions_ns_seq ON executions (namespace, seq);"
    "CREATE INDEX IF NOT EXISTS executions_ns_status_seq ON executions (namespace, status, seq);"
    "CREATE INDEX IF NOT EXISTS executions_ns_workflow_seq"
    " ON executions (namespace, workflow, seq);"
    "CREATE INDEX IF NOT EXISTS executions_active ON executions (seq)"
    " WHERE status IN ('running', 'paused');"
    "CREATE INDEX IF NOT EXISTS executions_ended ON executions (finished_at)"
    " WHERE status NOT IN ('running', 'paused');"
    "CREATE TABLE IF NOT EXISTS steps ("
    " exec_id TEXT NOT NULL, path TEXT NOT NULL, ord INTEGER NOT NULL, status TEXT NOT NULL,"
    " attempts INTEGER NOT NULL, output TEXT, error TEXT, state TEXT,"
    " started_at INTEGER, finished_at INTEGER, input TEXT,"
    " PRIMARY KEY (exec_id, path)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS history ("
    " exec_id TEXT NOT NULL, seq INTEGER NOT NULL, time INTEGER, type TEXT NOT NULL,"
    " step TEXT, data TEXT,"
    " PRIMARY KEY (exec_id, seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS timers ("
    " id TEXT PRIMARY KEY NOT NULL, exec_id TEXT NOT NULL, due_at INTEGER, kind TEXT NOT NULL,"
    " step TEXT, attempt INTEGER NOT NULL, data TEXT);"
    "CREATE INDEX IF NOT EXISTS timers_due ON timers (due_at);"
    "CREATE TABLE IF NOT EXISTS tasks ("
    " id TEXT PRIMARY KEY NOT NULL, exec_id TEXT NOT NULL, namespace TEXT NOT NULL,"
    " queue TEXT NOT NULL, step TEXT NOT NULL, attempt INTEGER NOT NULL, status TEXT NOT NULL,"
    " lease TEXT, input TEXT, ready_at INTEGER, leased_until INTEGER, created_at INTEGER);"
    "CREATE INDEX IF NOT EXISTS tasks_queue ON tasks (queue, status, ready_at);"
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL);"
    "PRAGMA user_version = 2;";

/* Runs sql (several statements) on the file at path, creating it; the rows
 * of the last statement that has any go to out ('|' between columns, '\n'
 * after each row, NULL as "~"). 0, or -1 with SQLite's message in out. */
static inline int rawdb_run(const char *path, const char *sql, char *out, size_t size)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    const char *tail = sql;
    size_t len = 0;
    int rc;

    out[0] = '\0';
    rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    sqlite3_busy_timeout(db, 5000);
    while (rc == SQLITE_OK && tail && *tail) {
        rc = sqlite3_prepare_v2(db, tail, -1, &st, &tail);
        if (rc != SQLITE_OK || !st)
            break;
        int first = 1;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            if (first) {
                len = 0;
                out[0] = '\0';
                first = 0;
            }
            for (int i = 0; i < sqlite3_column_count(st) && len < size; i++) {
                const char *v = (const char *)sqlite3_column_text(st, i);
                int n = snprintf(out + len, size - len, "%s%s", i ? "|" : "", v ? v : "~");
                len += n > 0 ? (size_t)n : 0;
            }
            if (len < size) {
                int n = snprintf(out + len, size - len, "\n");
                len += n > 0 ? (size_t)n : 0;
            }
        }
        sqlite3_finalize(st);
        st = NULL;
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    if (rc != SQLITE_OK)
        snprintf(out, size, "sqlite: %s", db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

#endif
