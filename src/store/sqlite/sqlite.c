/*
 * sqlite.c - the SQLite back end of the store (store.h, STYLE "store/"):
 * `sqlite:PATH`, a bare PATH, or `sqlite::memory:`.
 * docs/implementation/database_optimization.md explains the schema, the
 * indexes and the connections.
 *
 * CONNECTIONS
 *
 *   One writer connection does every write (apply, put_workflow) with
 *   s->wmu held, in BEGIN IMMEDIATE transactions, with its statements
 *   prepared once at open. Reads go to a pool of up to SQ_READERS_MAX reader
 *   connections (PRAGMA query_only), each used by one thread at a time and
 *   preparing its statements on first use. Connections are opened NOMUTEX:
 *   our own locks guard them.
 *
 *   A file store is in WAL mode with synchronous=FULL, so a commit is on disk
 *   when apply() returns and readers read their snapshot without waiting for
 *   the writer. A memory store is a named shared-cache in-memory database
 *   (file:wfo-mem-PID-N?mode=memory&cache=shared) that lives as long as the
 *   writer connection; its connections share one cache and lock per table,
 *   so a reader may find a table locked by the open write transaction
 *   (SQLITE_LOCKED), and the writer one that a reader is reading: both wait
 *   and retry (sq_step), up to SQ_WAIT_MS.
 *
 * INVARIANTS
 *
 *   1. A batch is all or nothing: any failing row rolls back the whole
 *      transaction before apply() returns.
 *   2. executions.seq is the rowid, assigned once on first insert
 *      (AUTOINCREMENT: never reused, even after rows are deleted), and never
 *      changed by the upsert. One writer commits at a time, so it is the
 *      commit order of the inserts too: a keyset page never skips a row
 *      whose commit overlapped another's.
 *   3. A chunk number of an execution is unique: a chunk whose (exec_id, n)
 *      exists (a doubled transition) fails the batch. That history seqs
 *      count from 1 without gaps is the engine's invariant (fsm.c I2).
 *   6. Fencing: a batch with an owner is refused (WFO_EFENCED, rolled back)
 *      unless the shards row of every shard it writes names that owner at
 *      the epoch the batch holds, read inside the batch's transaction.
 *   4. Times are stored as given, 0 as NULL; NULL reads back as 0.
 *   5. A read is one SELECT, so it sees one committed state.
 *   7. Events are unique per (namespace, id) (put_event answers the stored
 *      one for an id seen before); events.seq is their commit order like
 *      executions.seq (2); a consumption (exec_id, event_id) is unique, so
 *      a batch that would consume an event twice for one execution fails.
 */
#include "common/compat.h"

#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/store.h"
#include "store/chunk.h"
#include "store/sqlite/sqlite.h"
#include "store/sqlite/walbuf.h"
#include "common/crypto.h"
#include "common/duration.h"
#include "common/map.h"
#include "common/util.h"

#define SQ_READERS_MAX STORE_POOL_MAX /* store.pool_size at most; 8 unless set */
#define SQ_WAIT_MS 5000 /* busy_timeout, and how long a memory store waits for a table lock */
#define SQ_SCHEMA_VERSION 9

/*
 * The schema. The list queries (sq_list_sql) are
 *   WHERE namespace = ? [AND workflow = ?] [AND status = ?]
 *         [AND created_at > ?] [AND created_at < ?] [AND seq < ?]
 *   ORDER BY seq DESC LIMIT ?
 * and each equality set has an index ending in seq, so SQLite walks one
 * index backwards from the cursor and stops after LIMIT rows, never sorting:
 *   executions_ns_seq           namespace only (+ created_at filters)
 *   executions_ns_status_seq    status filter (with or without workflow)
 *   executions_ns_workflow_seq  workflow filter
 * With both filters SQLite takes one of the last two and checks the other
 * column on each row. created_at grows with seq, so its filters are checked
 * on the rows walked rather than given an index of their own.
 * executions_resume is a partial index over the few running or paused rows
 * that a restart must load (resume = 1), for recovery (list_active_execs)
 * which spans namespaces.
 *
 * chunks holds, per execution and commit, its state, the steps that changed
 * and the history appended (store/chunk.h): one row per execution per
 * commit, in a rowid table (rows appended in commit order) with a unique
 * index chunks_exec (exec_id, n) that every read and delete walks. A step
 * is read as its last record over the chunks in order; history pages skip
 * the chunks whose last seq (hseq, 0 when they have none) is not after the
 * cursor. (Until version 8 the table was WITHOUT ROWID, keyed (exec_id, n):
 * each commit then inserted into the middle of the range of every
 * execution in flight, rewriting about 60 leaf pages of 16 KiB per commit
 * in bench engine; appended rows fill new pages and only the small index
 * entries land in the middle: 8.9 -> 7.2 ms per commit, alternating runs.)
 * shards holds who owns each shard, at which epoch, until when (store.h).
 */
/* Settings of the store itself (the server key); made when first needed,
 * so a store made by an older wfo gets it too. */
#define SQ_META_SCHEMA                                                                             \
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL);"

/* What version 3 added, for a new store and for the migration from 2. */
#define SQ_V3_SCHEMA                                                                               \
    "CREATE INDEX IF NOT EXISTS executions_resume ON executions (seq)"                             \
    " WHERE status IN ('running', 'paused') AND resume = 1;"                                       \
    "CREATE TABLE IF NOT EXISTS chunks ("                                                          \
    " exec_id TEXT NOT NULL, n INTEGER NOT NULL, hseq INTEGER NOT NULL, data BLOB NOT NULL,"       \
    " PRIMARY KEY (exec_id, n)) WITHOUT ROWID;"                                                    \
    "CREATE TABLE IF NOT EXISTS shards ("                                                          \
    " shard INTEGER PRIMARY KEY, owner TEXT, epoch INTEGER NOT NULL DEFAULT 0,"                    \
    " lease_until INTEGER NOT NULL DEFAULT 0);"

/* What version 8 changed: chunks in a rowid table, appended in commit
 * order, with the unique index chunks_exec (the comment above the schema);
 * and tasks_queue dropped: no query read it (recovery reads a shard's
 * tasks in one scan of the small table), and every task row paid for it
 * three times — put, leased (its status moves), deleted. For a new store
 * (made as version 3 had it, then moved) and for the migration from 7. */
#define SQ_V8_SCHEMA                                                                               \
    "CREATE TABLE chunks_v8 (rid INTEGER PRIMARY KEY, exec_id TEXT NOT NULL,"                      \
    " n INTEGER NOT NULL, hseq INTEGER NOT NULL, data BLOB NOT NULL);"                             \
    "INSERT INTO chunks_v8 (exec_id, n, hseq, data)"                                               \
    " SELECT exec_id, n, hseq, data FROM chunks ORDER BY exec_id, n;"                              \
    "DROP TABLE chunks;"                                                                           \
    "ALTER TABLE chunks_v8 RENAME TO chunks;"                                                      \
    "CREATE UNIQUE INDEX chunks_exec ON chunks (exec_id, n);"                                      \
    "DROP INDEX IF EXISTS tasks_queue;"

/* What version 5 added (events and signals, SPEC 2.5): for a new store and
 * for the migration from 4. events_match serves await_event's lookup
 * (namespace, type, key, then seq: the oldest first); consumed is keyed by
 * (exec_id, event_id), so one execution consumes an event at most once;
 * signals_exec serves a wait's lookup, oldest first. */
#define SQ_V5_SCHEMA                                                                               \
    "CREATE TABLE IF NOT EXISTS events ("                                                          \
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, namespace TEXT NOT NULL, id TEXT NOT NULL,"           \
    " type TEXT NOT NULL, key TEXT, source TEXT, data TEXT, time INTEGER,"                         \
    " published_at INTEGER NOT NULL, UNIQUE (namespace, id));"                                     \
    "CREATE INDEX IF NOT EXISTS events_match ON events (namespace, type, key, seq);"               \
    "CREATE TABLE IF NOT EXISTS consumed ("                                                        \
    " exec_id TEXT NOT NULL, event_id TEXT NOT NULL,"                                              \
    " PRIMARY KEY (exec_id, event_id)) WITHOUT ROWID;"                                             \
    "CREATE TABLE IF NOT EXISTS signals ("                                                         \
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, exec_id TEXT NOT NULL,"      \
    " name TEXT NOT NULL, data TEXT, time INTEGER, shard INTEGER NOT NULL DEFAULT 0);"             \
    "CREATE INDEX IF NOT EXISTS signals_exec ON signals (exec_id, name, seq);"

/* What version 6 added (the outbox, SPEC 2.5 "Outbound"): for a new store
 * and for the migration from 5. seq is the commit order (one writer);
 * outbox_ns serves the stream's reads (namespace, then seq after a cursor),
 * outbox_id maps a Last-Event-ID to its seq; retention deletes by seq from
 * the oldest, whose time is checked row by row (time grows with seq). */
#define SQ_V6_SCHEMA                                                                               \
    "CREATE TABLE IF NOT EXISTS outbox ("                                                          \
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, namespace TEXT NOT NULL,"     \
    " type TEXT NOT NULL, key TEXT, exec_id TEXT, event TEXT NOT NULL, time INTEGER NOT NULL);"    \
    "CREATE INDEX IF NOT EXISTS outbox_ns ON outbox (namespace, seq);"                             \
    "CREATE INDEX IF NOT EXISTS outbox_id ON outbox (namespace, event_id);"

/* What version 7 added (webhook subscriptions, store.h): for a new store
 * and for the migration from 6. subscriptions_ns serves the API's lists
 * and retention's "lowest cursor of a namespace" (store.h C2). */
#define SQ_V7_SCHEMA                                                                               \
    "CREATE TABLE IF NOT EXISTS subscriptions ("                                                   \
    " id TEXT PRIMARY KEY NOT NULL, namespace TEXT NOT NULL, url TEXT NOT NULL,"                   \
    " types TEXT NOT NULL, workflow TEXT, secret TEXT NOT NULL, created_at INTEGER NOT NULL,"      \
    " cursor INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'active',"                             \
    " failures INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER, last_error TEXT,"              \
    " last_delivery_at INTEGER, delivered INTEGER NOT NULL DEFAULT 0);"                            \
    "CREATE INDEX IF NOT EXISTS subscriptions_ns ON subscriptions (namespace, cursor);"

/* What version 9 added: an event's CloudEvents attributes that have no
 * column of their own (store.h, struct store_event's attrs); for a new
 * store and for the migration from 8. */
#define SQ_V9_SCHEMA "ALTER TABLE events ADD COLUMN attrs TEXT;"

static const char sq_schema[] =
    "CREATE TABLE IF NOT EXISTS workflows ("
    " namespace TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,"
    " hash TEXT NOT NULL, definition TEXT NOT NULL, created_at INTEGER,"
    " PRIMARY KEY (namespace, name, version));"
    "CREATE TABLE IF NOT EXISTS executions ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,"
    " namespace TEXT NOT NULL, workflow TEXT NOT NULL, version INTEGER NOT NULL,"
    " status TEXT NOT NULL, input TEXT NOT NULL, output TEXT, error TEXT,"
    " compensation TEXT, parent TEXT, state TEXT,"
    " created_at INTEGER, updated_at INTEGER, finished_at INTEGER,"
    " shard INTEGER NOT NULL DEFAULT 0, resume INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS executions_ns_seq ON executions (namespace, seq);"
    "CREATE INDEX IF NOT EXISTS executions_ns_status_seq ON executions (namespace, status, seq);"
    "CREATE INDEX IF NOT EXISTS executions_ns_workflow_seq"
    " ON executions (namespace, workflow, seq);"
    "CREATE INDEX IF NOT EXISTS executions_ended ON executions (finished_at)"
    " WHERE status NOT IN ('running', 'paused');"
    "CREATE TABLE IF NOT EXISTS timers ("
    " id TEXT PRIMARY KEY NOT NULL, exec_id TEXT NOT NULL, due_at INTEGER, kind TEXT NOT NULL,"
    " step TEXT, token INTEGER NOT NULL, data TEXT, shard INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS timers_due ON timers (due_at);"
    "CREATE TABLE IF NOT EXISTS tasks ("
    " id TEXT PRIMARY KEY NOT NULL, exec_id TEXT NOT NULL, namespace TEXT NOT NULL,"
    " queue TEXT NOT NULL, step TEXT NOT NULL, attempt INTEGER NOT NULL, status TEXT NOT NULL,"
    " lease TEXT, input TEXT, ready_at INTEGER, leased_until INTEGER, created_at INTEGER,"
    " shard INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS tasks_queue ON tasks (queue, status, ready_at);" SQ_V3_SCHEMA
        SQ_V5_SCHEMA SQ_V6_SCHEMA SQ_V7_SCHEMA SQ_V8_SCHEMA SQ_V9_SCHEMA SQ_META_SCHEMA;

#define SQ_WF_COLS "namespace, name, version, hash, definition, created_at"
#define SQ_EXEC_COLS                                                                               \
    "seq, id, namespace, workflow, version, status, input, output, error, compensation, "          \
    "parent, state, created_at, updated_at, finished_at, resume"
#define SQ_EVENT_COLS "seq, namespace, id, type, key, source, data, time, published_at, attrs"
#define SQ_SIGNAL_COLS "seq, id, exec_id, name, data, time"
#define SQ_OUTBOX_COLS "seq, event_id, namespace, type, key, exec_id, event, time"
#define SQ_SUB_COLS                                                                                \
    "id, namespace, url, types, workflow, secret, created_at, cursor, status, failures, "          \
    "next_attempt_at, last_error, last_delivery_at, delivered"
#define SQ_TIMER_COLS "id, exec_id, due_at, kind, step, token, data"
#define SQ_TASK_COLS                                                                               \
    "id, exec_id, namespace, queue, step, attempt, status, lease, input, ready_at, "               \
    "leased_until, created_at"

/* The writer's statements, prepared at open. */
enum sq_wq {
    W_BEGIN,
    W_COMMIT,
    W_ROLLBACK,
    W_EXEC,
    W_EXEC_UPDATE,
    W_CHUNK,
    W_CHUNK_NEXT,
    W_SHARDS,
    W_SHARD_SET,
    W_SHARD_RELEASE,
    W_TIMER,
    W_TIMER_DEL,
    W_TASK,
    W_TASK_DEL,
    W_TASK_LEASE,
    W_WF_LATEST,
    W_WF_INSERT,
    W_EXEC_DEL_CHUNKS,
    W_EXEC_DEL_TIMERS,
    W_EXEC_DEL_TASKS,
    W_EXEC_DEL_CONSUMED,
    W_EXEC_DEL_SIGNALS,
    W_EXEC_DEL,
    W_WF_RUNNING,
    W_WF_DEL,
    W_EVENT_GET,
    W_EVENT_INSERT,
    W_CONSUME,
    W_SIGNAL_DEL,
    W_SIGNAL_EXEC,
    W_SIGNAL_INSERT,
    W_OUTBOX_INSERT,
    W_OUTBOX_DEL,
    W_SUB_INSERT,
    W_SUB_GET,
    W_SUB_DEL,
    W_SUB_DELIVERED,
    W_SUB_FAILED,
    W_SUB_EXISTS,
    W__COUNT
};

static const char *const sq_writer_sql[W__COUNT] = {
    [W_BEGIN] = "BEGIN IMMEDIATE",
    [W_COMMIT] = "COMMIT",
    [W_ROLLBACK] = "ROLLBACK",
    /* OR ROLLBACK on the statements that write several rows: a failing
     * row ends the whole batch anyway (invariant 1), and without it SQLite
     * keeps a statement journal, a copy of every page the statement
     * changes, to undo just the statement (callgrind, bench engine: the
     * writer's 164k instructions a workflow became 134k).
     *
     * Invariant 2: the conflict branch sets every column but seq, id and
     * created_at. The state lives in the chunks. */
    [W_EXEC] = "INSERT OR ROLLBACK INTO executions (id, namespace, workflow, version, status, "
               "input, output,"
               " error, compensation, parent, state, created_at, updated_at, finished_at,"
               " shard, resume)"
               " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, NULL, ?12, ?13, ?14, ?15, ?16)"
               " ON CONFLICT (id) DO UPDATE SET namespace = excluded.namespace,"
               " workflow = excluded.workflow, version = excluded.version,"
               " status = excluded.status, input = excluded.input, output = excluded.output,"
               " error = excluded.error, compensation = excluded.compensation,"
               " parent = excluded.parent, state = NULL,"
               " updated_at = excluded.updated_at, finished_at = excluded.finished_at,"
               " resume = excluded.resume",
    /* A row the engine wrote before: only what can change, so the indexes
     * of columns that never change are left alone. */
    [W_EXEC_UPDATE] = "UPDATE OR ROLLBACK executions SET status = ?2, output = ?3, error = ?4,"
                      " compensation = ?5, state = NULL, updated_at = ?6, finished_at = ?7,"
                      " resume = ?8 WHERE id = ?1",
    /* Invariant 3: chunks_exec refuses a chunk written twice. */
    [W_CHUNK] = "INSERT OR ROLLBACK INTO chunks (exec_id, n, hseq, data) VALUES (?1, ?2, ?3, ?4)",
    [W_CHUNK_NEXT] = "SELECT coalesce(max(n), 0) + 1 FROM chunks WHERE exec_id = ?1",
    /* Invariant 6 */
    [W_SHARDS] = "SELECT shard, owner, epoch, lease_until FROM shards ORDER BY shard",
    [W_SHARD_SET] = "INSERT INTO shards (shard, owner, epoch, lease_until) VALUES (?1, ?2, ?3, ?4)"
                    " ON CONFLICT (shard) DO UPDATE SET owner = excluded.owner,"
                    " epoch = excluded.epoch, lease_until = excluded.lease_until",
    [W_SHARD_RELEASE] = "UPDATE shards SET lease_until = 0 WHERE shard = ?1 AND owner = ?2",
    [W_TIMER] = "INSERT OR REPLACE INTO timers (" SQ_TIMER_COLS ", shard)"
                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [W_TIMER_DEL] = "DELETE FROM timers WHERE id = ?1",
    [W_TASK] = "INSERT OR REPLACE INTO tasks (" SQ_TASK_COLS ", shard)"
               " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    [W_TASK_DEL] = "DELETE FROM tasks WHERE id = ?1",
    [W_TASK_LEASE] = "UPDATE tasks SET status = 'leased', lease = ?2, leased_until = ?3"
                     " WHERE id = ?1",
    [W_WF_LATEST] = "SELECT " SQ_WF_COLS " FROM workflows WHERE namespace = ?1 AND name = ?2"
                    " ORDER BY version DESC LIMIT 1",
    [W_WF_INSERT] = "INSERT INTO workflows (" SQ_WF_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    /* an execution that ended, with everything it owns */
    [W_EXEC_DEL_CHUNKS] = "DELETE FROM chunks WHERE exec_id = ?1",
    [W_EXEC_DEL_TIMERS] = "DELETE FROM timers WHERE exec_id = ?1",
    [W_EXEC_DEL_TASKS] = "DELETE FROM tasks WHERE exec_id = ?1",
    [W_EXEC_DEL_CONSUMED] = "DELETE FROM consumed WHERE exec_id = ?1",
    [W_EXEC_DEL_SIGNALS] = "DELETE FROM signals WHERE exec_id = ?1",
    [W_EXEC_DEL] = "DELETE FROM executions WHERE id = ?1",
    /* executions_active holds the running and paused ones */
    [W_WF_RUNNING] = ("SELECT id FROM executions WHERE status IN ('running', 'paused')"
                      " AND namespace = ?1 AND workflow = ?2 LIMIT 1"),
    [W_WF_DEL] = "DELETE FROM workflows WHERE namespace = ?1 AND name = ?2",
    [W_EVENT_GET] = "SELECT " SQ_EVENT_COLS " FROM events WHERE namespace = ?1 AND id = ?2",
    /* OR ROLLBACK: an emitted event's id is new; a clash fails the batch */
    [W_EVENT_INSERT] = "INSERT OR ROLLBACK INTO events (namespace, id, type, key, source, data,"
                       " time, published_at, attrs) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    /* Invariant 7: the primary key refuses an event consumed twice by one
     * execution */
    [W_CONSUME] = "INSERT OR ROLLBACK INTO consumed (exec_id, event_id) VALUES (?1, ?2)",
    [W_SIGNAL_DEL] = "DELETE FROM signals WHERE id = ?1",
    [W_SIGNAL_EXEC] = "SELECT status FROM executions WHERE id = ?1",
    [W_SIGNAL_INSERT] = "INSERT INTO signals (id, exec_id, name, data, time, shard)"
                        " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [W_OUTBOX_INSERT] = "INSERT OR ROLLBACK INTO outbox (event_id, namespace, type, key, exec_id,"
                        " event, time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    /* retention: among the ?2 oldest rows (by seq, with which time grows)
     * that no subscription of their namespace holds (store.h C2: above its
     * lowest cursor), those older than ?1: a bounded walk of the primary
     * key, never a scan of the young rows; it passes over the held rows
     * (as many as the subscriptions are behind). */
    [W_OUTBOX_DEL] =
        ("DELETE FROM outbox WHERE seq IN (SELECT o.seq FROM outbox AS o WHERE o.seq <="
         " coalesce((SELECT min(c.cursor) FROM subscriptions AS c WHERE c.namespace ="
         " o.namespace), 9223372036854775807) ORDER BY o.seq LIMIT ?2) AND time < ?1"),
    /* C1: the cursor starts at the namespace's last row, read in the
     * insert's transaction */
    [W_SUB_INSERT] = ("INSERT INTO subscriptions (id, namespace, url, types, workflow, secret,"
                      " created_at, cursor) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,"
                      " (SELECT coalesce(max(seq), 0) FROM outbox WHERE namespace = ?2))"),
    [W_SUB_GET] = "SELECT " SQ_SUB_COLS " FROM subscriptions WHERE id = ?1",
    [W_SUB_DEL] = "DELETE FROM subscriptions WHERE id = ?1 AND namespace = ?2",
    /* C1: only forward */
    [W_SUB_DELIVERED] =
        ("UPDATE subscriptions SET cursor = ?2,"
         " status = CASE WHEN ?3 THEN 'active' ELSE status END,"
         " failures = CASE WHEN ?3 THEN 0 ELSE failures END,"
         " next_attempt_at = CASE WHEN ?3 THEN NULL ELSE next_attempt_at END,"
         " last_error = CASE WHEN ?3 THEN NULL ELSE last_error END, delivered = delivered + ?3,"
         " last_delivery_at = CASE WHEN ?3 THEN ?4 ELSE last_delivery_at END"
         " WHERE id = ?1 AND cursor < ?2"),
    [W_SUB_FAILED] = ("UPDATE subscriptions SET failures = ?3, status = ?4, next_attempt_at = ?5,"
                      " last_error = ?6 WHERE id = ?1 AND cursor < ?2"),
    [W_SUB_EXISTS] = "SELECT 1 FROM subscriptions WHERE id = ?1",
};

/* retention: executions_ended orders the ended ones by when they ended */
static const char sq_expired_sql[] =
    "SELECT " SQ_EXEC_COLS " FROM executions WHERE status NOT IN ('running', 'paused')"
    " AND finished_at < ?1 ORDER BY finished_at LIMIT ?2";

/* The readers' statements; R_LIST + mask are the list queries, one per set
 * of filters (sq_list_mask), built by sq_list_sql. */
enum sq_rq {
    R_PING,
    R_WF_VERSION,
    R_WF_LATEST,
    R_WF_LIST,
    R_WF_LIST_ALL,
    R_EXEC,
    R_EXEC_ACTIVE,
    R_CHUNKS,
    R_CHUNKS_LAST,
    R_HISTORY,
    R_TIMERS,
    R_TASKS,
    R_SHARDS,
    R_EVENTS_FIND,
    R_EVENTS_RECENT,
    R_SIGNALS_FIND,
    R_OUTBOX,
    R_OUTBOX_ID,
    R_OUTBOX_LAST,
    R_SUB,
    R_SUBS,
    R_SUBS_ALL,
    R_LIST,
    R__COUNT = R_LIST + 32
};

static const char *const sq_reader_sql[R_LIST] = {
    [R_PING] = "PRAGMA user_version",
    [R_WF_VERSION] = "SELECT " SQ_WF_COLS " FROM workflows"
                     " WHERE namespace = ?1 AND name = ?2 AND version = ?3",
    [R_WF_LATEST] = "SELECT " SQ_WF_COLS " FROM workflows WHERE namespace = ?1 AND name = ?2"
                    " ORDER BY version DESC LIMIT 1",
    [R_WF_LIST] = "SELECT " SQ_WF_COLS " FROM workflows AS w WHERE namespace = ?1 AND version ="
                  " (SELECT max(version) FROM workflows"
                  " WHERE namespace = w.namespace AND name = w.name) ORDER BY name",
    [R_WF_LIST_ALL] = "SELECT " SQ_WF_COLS " FROM workflows AS w WHERE version ="
                      " (SELECT max(version) FROM workflows"
                      " WHERE namespace = w.namespace AND name = w.name) ORDER BY namespace, name",
    [R_EXEC] = "SELECT " SQ_EXEC_COLS " FROM executions WHERE id = ?1",
    /* The same expression as executions_resume's WHERE, so it is used. */
    [R_EXEC_ACTIVE] = "SELECT " SQ_EXEC_COLS " FROM executions"
                      " WHERE status IN ('running', 'paused') AND resume = 1"
                      " AND (?1 >> shard) & 1 ORDER BY seq",
    [R_CHUNKS] = "SELECT data FROM chunks WHERE exec_id = ?1 ORDER BY n",
    /* the latest first: the execution's state is in the last one */
    [R_CHUNKS_LAST] = "SELECT data FROM chunks WHERE exec_id = ?1 ORDER BY n DESC",
    [R_HISTORY] = "SELECT data FROM chunks WHERE exec_id = ?1 AND hseq > ?2 ORDER BY n",
    [R_TIMERS] = "SELECT " SQ_TIMER_COLS " FROM timers WHERE due_at >= ?1 AND due_at < ?2"
                 " AND (?3 >> shard) & 1 ORDER BY due_at",
    [R_TASKS] = "SELECT " SQ_TASK_COLS " FROM tasks WHERE status <> 'done'"
                " AND (?1 >> shard) & 1 ORDER BY created_at, id",
    [R_SHARDS] = "SELECT shard, owner, epoch, lease_until FROM shards ORDER BY shard",
    [R_EVENTS_FIND] = "SELECT " SQ_EVENT_COLS " FROM events AS e WHERE namespace = ?1"
                      " AND type = ?2 AND key IS ?3 AND published_at >= ?4 AND NOT EXISTS"
                      " (SELECT 1 FROM consumed AS c WHERE c.exec_id = ?5 AND c.event_id = e.id)"
                      " ORDER BY seq LIMIT ?6",
    [R_EVENTS_RECENT] = "SELECT " SQ_EVENT_COLS " FROM events WHERE published_at >= ?1"
                        " ORDER BY seq DESC LIMIT ?2",
    [R_SIGNALS_FIND] = "SELECT " SQ_SIGNAL_COLS " FROM signals WHERE exec_id = ?1 AND name = ?2"
                       " ORDER BY seq LIMIT ?3",
    [R_OUTBOX] = "SELECT " SQ_OUTBOX_COLS " FROM outbox WHERE namespace = ?1 AND seq > ?2"
                 " ORDER BY seq LIMIT ?3",
    [R_OUTBOX_ID] = ("SELECT seq FROM outbox WHERE namespace = ?1 AND event_id = ?2"
                     " ORDER BY seq LIMIT 1"),
    [R_OUTBOX_LAST] = "SELECT coalesce(max(seq), 0) FROM outbox WHERE namespace = ?1",
    [R_SUB] = ("SELECT " SQ_SUB_COLS " FROM subscriptions WHERE id = ?1"
               " AND (?2 IS NULL OR namespace = ?2)"),
    [R_SUBS] = ("SELECT " SQ_SUB_COLS " FROM subscriptions WHERE namespace = ?1"
                " ORDER BY created_at, id"),
    [R_SUBS_ALL] = "SELECT " SQ_SUB_COLS " FROM subscriptions ORDER BY namespace, created_at, id",
};

/* The filters of a list query, as bits of its statement's index. */
enum {
    SQ_F_WORKFLOW = 1,
    SQ_F_STATUS = 2,
    SQ_F_AFTER = 4,
    SQ_F_BEFORE = 8,
    SQ_F_SEQ = 16,
};

struct sq_reader {
    sqlite3 *db; /* NULL until first taken */
    int busy;    /* taken by a thread; under s->pmu */
    sqlite3_stmt *st[R__COUNT];
};

struct sq_store {
    struct store base; /* first: store.h */
    char *name;        /* what sqlite3_open_v2 gets */
    char *label;       /* the path, for messages */
    int memory;

    pthread_mutex_t wmu; /* guards w, wst, wchunks and chunk */
    sqlite3 *w;
    sqlite3_stmt *wst[W__COUNT];
    sqlite3_stmt *wchunks;      /* W_CHUNK for SQ_MANY rows */
    sqlite3_stmt *wexecs;       /* W_EXEC for SQ_MANY rows */
    sqlite3_stmt *woutbox;      /* W_OUTBOX_INSERT for SQ_MANY rows */
    struct wfo_buf chunk;       /* the chunks being written */
    struct chunk_groups groups; /* the batch's rows by execution (kept between batches) */

    pthread_mutex_t pmu; /* guards n_readers and each reader's busy */
    pthread_cond_t pcv;  /* a reader became free */
    int n_readers;
    int max_readers; /* store.pool_size */
    struct sq_reader readers[SQ_READERS_MAX];
};

static struct sq_store *sq_store(struct store *s)
{
    wfo_assert(s && s->ops == &store_sqlite_ops);
    return (struct sq_store *)s;
}

/* ---- errors and stepping ---- */

/* WFO_ESTORE "WHAT in 'LABEL': SQLITE MESSAGE". */
static int sq_fail(struct sq_store *s, sqlite3 *db, struct wfo_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int sq_fail(struct sq_store *s, sqlite3 *db, struct wfo_error *err, const char *fmt, ...)
{
    char what[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return wfo_error_set(err, WFO_ESTORE, "%s in '%s': %s", what, s->label,
                         db ? sqlite3_errmsg(db) : "out of memory");
}

static void sq_nap(int us)
{
    struct timespec ts = {0, (long)us * 1000};

    nanosleep(&ts, NULL);
}

/* sqlite3_step, waiting out a table lock of a shared-cache memory store
 * (SQLITE_LOCKED) by resetting and stepping again: a statement that got
 * SQLITE_LOCKED has done nothing (the unlock-notify pattern of the SQLite
 * docs, with naps instead of notifications). Only for a statement's first
 * step, before any row was seen. File stores wait in busy_timeout instead. */
static int sq_step(sqlite3_stmt *st)
{
    int rc, waited = 0, nap = 50;

    for (;;) {
        rc = sqlite3_step(st);
        if ((rc & 0xff) != SQLITE_LOCKED || waited >= SQ_WAIT_MS * 1000)
            return rc;
        sqlite3_reset(st);
        sq_nap(nap);
        waited += nap;
        if (nap < 2000)
            nap *= 2;
    }
}

static int sq_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
    int rc, waited = 0;

    for (;;) {
        rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
        if ((rc & 0xff) != SQLITE_LOCKED || waited >= SQ_WAIT_MS)
            return rc;
        sq_nap(1000);
        waited++;
    }
}

/* Steps a statement whose rows, if any, are not needed; SQLITE_OK when it
 * ran. The caller resets it (sq_done). */
static int sq_run(sqlite3_stmt *st)
{
    int rc = sq_step(st);

    if (rc == SQLITE_ROW)
        rc = SQLITE_DONE;
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void sq_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* ---- binding and reading columns ---- */

static int sq_text(sqlite3_stmt *st, int i, const char *v)
{
    return v ? sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

/* Invariant 4. */
static int sq_time(sqlite3_stmt *st, int i, int64_t v)
{
    return v ? sqlite3_bind_int64(st, i, v) : sqlite3_bind_null(st, i);
}

static int sq_int(sqlite3_stmt *st, int i, int64_t v)
{
    return sqlite3_bind_int64(st, i, v);
}

static const char *sq_col_text(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

static int64_t sq_col_int(sqlite3_stmt *st, int i)
{
    return sqlite3_column_int64(st, i);
}

/* A callback of any row type, with its user data. */
struct sq_cb {
    union {
        store_workflow_cb wf;
        store_exec_cb exec;
        store_step_cb step;
        store_history_cb history;
        store_timer_cb timer;
        store_task_cb task;
        store_shard_cb shard;
        store_event_cb event;
        store_signal_cb signal;
        store_outbox_cb outbox;
        store_subscription_cb sub;
    } fn;
    void *ud;
    /* exec rows: the statement that reads the execution's chunks, newest
     * first, for its state (sq_exec_row); NULL leaves the row's */
    sqlite3_stmt *chunks;
    struct wfo_error *err;
};

static void sq_wf_read(sqlite3_stmt *st, struct store_workflow *r)
{
    r->namespace = sq_col_text(st, 0);
    r->name = sq_col_text(st, 1);
    r->version = (int)sq_col_int(st, 2);
    r->hash = sq_col_text(st, 3);
    r->definition = sq_col_text(st, 4);
    r->created_at = sq_col_int(st, 5);
}

static int sq_wf_row(sqlite3_stmt *st, const struct sq_cb *cb)
{
    struct store_workflow r;

    sq_wf_read(st, &r);
    return cb->fn.wf(cb->ud, &r);
}

/* The execution's state and when it was last written, from its newest
 * chunk that has them (the row holds them only for a store migrated from
 * version 2, until the execution is written again). The strings stay valid
 * until cb->chunks is reset. */
static int sq_exec_state(const struct sq_cb *cb, struct store_exec *r)
{
    sqlite3_stmt *st = cb->chunks;
    int rc;

    sq_text(st, 1, r->id);
    /* the first step waits out a memory store's table lock, as every
     * read's does (sq_step); later ones cannot meet a new one */
    for (int seen = 0; (rc = seen++ ? sqlite3_step(st) : sq_step(st)) == SQLITE_ROW;) {
        struct chunk_reader cr;
        struct chunk_rec rec;
        rc = chunk_open(&cr, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), r->id,
                        cb->err);
        if (rc == 0)
            while ((rc = chunk_next(&cr, &rec, cb->err)) == 1 && rec.tag != CHUNK_STATE)
                ;
        if (rc == 1) {
            r->state = rec.state;
            if (rec.time > r->updated_at)
                r->updated_at = rec.time;
            return 0;
        }
        if (rc < 0)
            return rc;
    }
    if (rc != SQLITE_DONE)
        return wfo_error_set(cb->err, WFO_ESTORE, "reading the state of execution '%s': %s",
                             r->id ? r->id : "", sqlite3_errstr(rc));
    return 0;
}

static int sq_exec_row(sqlite3_stmt *st, const struct sq_cb *cb)
{
    struct store_exec r = {
        .seq = sq_col_int(st, 0),
        .id = sq_col_text(st, 1),
        .namespace = sq_col_text(st, 2),
        .workflow = sq_col_text(st, 3),
        .version = (int)sq_col_int(st, 4),
        .status = sq_col_text(st, 5),
        .input = sq_col_text(st, 6),
        .output = sq_col_text(st, 7),
        .error = sq_col_text(st, 8),
        .compensation = sq_col_text(st, 9),
        .parent = sq_col_text(st, 10),
        .state = sq_col_text(st, 11),
        .created_at = sq_col_int(st, 12),
        .updated_at = sq_col_int(st, 13),
        .finished_at = sq_col_int(st, 14),
        .resume = (int)sq_col_int(st, 15),
    };
    int rc = cb->chunks ? sq_exec_state(cb, &r) : 0;
    if (rc == 0)
        rc = cb->fn.exec(cb->ud, &r);
    if (cb->chunks)
        sq_done(cb->chunks);
    return rc;
}

static int sq_timer_row(sqlite3_stmt *st, const struct sq_cb *cb)
{
    struct store_timer r = {
        .id = sq_col_text(st, 0),
        .exec_id = sq_col_text(st, 1),
        .due_at = sq_col_int(st, 2),
        .kind = sq_col_text(st, 3),
        .step = sq_col_text(st, 4),
        .token = sq_col_int(st, 5),
        .data = sq_col_text(st, 6),
    };
    return cb->fn.timer(cb->ud, &r);
}

static int sq_task_row(sqlite3_stmt *st, const struct sq_cb *cb)
{
    struct store_task r = {
        .id = sq_col_text(st, 0),
        .exec_id = sq_col_text(st, 1),
        .namespace = sq_col_text(st, 2),
        .queue = sq_col_text(st, 3),
        .step = sq_col_text(st, 4),
        .attempt = (int)sq_col_int(st, 5),
        .status = sq_col_text(st, 6),
        .lease = sq_col_text(st, 7),
        .input = sq_col_text(st, 8),
        .ready_at = sq_col_int(st, 9),
        .leased_until = sq_col_int(st, 10),
        .created_at = sq_col_int(st, 11),
    };
    return cb->fn.task(cb->ud, &r);
}

static int sq_shard_row(sqlite3_stmt *st, const struct sq_cb *cb)
{
    struct store_shard r = {
        .shard = (int)sq_col_int(st, 0),
        .owner = sq_col_text(st, 1),
        .epoch = sq_col_int(st, 2),
        .lease_until = sq_col_int(st, 3),
    };
    return cb->fn.shard(cb->ud, &r);
}

/* ---- opening connections ---- */

/* walbuf_register's result: file stores open through WALBUF_VFS when it
 * is SQLITE_OK. */
static int sq_walbuf = SQLITE_ERROR;

/* Before SQLite's first use: no memory statistics, whose global mutex
 * every allocation of every connection would take (callgrind: 5 % of a
 * batch's instructions). Refused, harmlessly, if SQLite was already in use.
 * And the VFS that writes a commit's WAL frames in one call (walbuf.c). */
static void sq_configure(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    sq_walbuf = walbuf_register();
}

/* Opens a connection to s: the writer (create the file if missing) or a
 * reader. */
static int sq_connect(struct sq_store *s, int writer, sqlite3 **out, struct wfo_error *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
    sqlite3 *db = NULL;
    int rc;

    pthread_once(&once, sq_configure);
    *out = NULL;
    if (writer)
        flags |= SQLITE_OPEN_CREATE;
    if (s->memory)
        flags |= SQLITE_OPEN_URI;
    rc = sqlite3_open_v2(s->name, &db, flags,
                         !s->memory && sq_walbuf == SQLITE_OK ? WALBUF_VFS : NULL);
    if (rc != SQLITE_OK) {
        rc = sq_fail(s, db, err, "opening store");
        goto out;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, SQ_WAIT_MS);
    if (!writer && sqlite3_exec(db, "PRAGMA query_only = 1", NULL, NULL, NULL) != SQLITE_OK) {
        rc = sq_fail(s, db, err, "opening a reader");
        goto out;
    }
    *out = db;
    db = NULL;
    rc = 0;
out:
    sqlite3_close_v2(db);
    return rc;
}

/* Runs a pragma that answers one row and returns its first column, copied
 * into val. */
static int sq_pragma(struct sq_store *s, const char *sql, char *val, size_t size,
                     struct wfo_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    val[0] = '\0';
    rc = sqlite3_prepare_v2(s->w, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sq_step(st);
    if (rc == SQLITE_ROW) {
        const char *v = sq_col_text(st, 0);
        snprintf(val, size, "%s", v ? v : "");
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK)
        rc = sq_fail(s, s->w, err, "opening store");
    sqlite3_finalize(st);
    return rc;
}

/* Forward migrations: sq_migrations[v - 1] takes a store from version v to
 * v + 1. A new database gets sq_schema, which is already the latest. */
static const char *const sq_migrations[SQ_SCHEMA_VERSION - 1] = {
    /* 1 -> 2: a step's input (SPEC 3) */
    "ALTER TABLE steps ADD COLUMN input TEXT;"
    "CREATE INDEX IF NOT EXISTS executions_ended ON executions (finished_at)"
    " WHERE status NOT IN ('running', 'paused');",
    /* 2 -> 3: shards, resume, chunks; sq_migrate_chunks then moves the
     * steps and history rows into chunks. Every running or paused
     * execution is loaded at the first restart (resume = 1), as all were. */
    "ALTER TABLE executions ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE executions ADD COLUMN resume INTEGER NOT NULL DEFAULT 0;"
    "UPDATE executions SET shard = wfo_shard(id), resume = status IN ('running', 'paused');"
    "DROP INDEX IF EXISTS executions_active;"
    "ALTER TABLE timers ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;"
    "UPDATE timers SET shard = wfo_shard(exec_id);"
    "ALTER TABLE tasks ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;"
    "UPDATE tasks SET shard = wfo_shard(exec_id);" SQ_V3_SCHEMA,
    /* 3 -> 4: a timer's attempt token is named for what it holds */
    "ALTER TABLE timers RENAME COLUMN attempt TO token;",
    /* 4 -> 5: events, their consumptions, signals */
    SQ_V5_SCHEMA,
    /* 5 -> 6: the outbox */
    SQ_V6_SCHEMA,
    /* 6 -> 7: webhook subscriptions */
    SQ_V7_SCHEMA,
    /* 7 -> 8: chunks appended in commit order */
    SQ_V8_SCHEMA,
    /* 8 -> 9: an event's CloudEvents attributes */
    SQ_V9_SCHEMA,
};

/* SQL's wfo_shard(id): store_shard_of, for the migration. */
static void sq_shard_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    const char *id = (const char *)sqlite3_value_text(argv[0]);
    sqlite3_result_int(ctx, store_shard_of(id));
}

/* 2 -> 3: each execution's steps and history become its chunk 0, with the
 * state of its row; then the two tables go. */
static int sq_migrate_chunks(struct sq_store *s)
{
    sqlite3_stmt *ex = NULL, *steps = NULL, *hist = NULL, *ins = NULL;
    struct wfo_buf b = WFO_BUF_INIT;
    int rc;

    rc = sqlite3_prepare_v2(s->w, "SELECT id, state, updated_at FROM executions", -1, &ex, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(s->w,
                                "SELECT path, ord, status, attempts, output, error, state,"
                                " started_at, finished_at, input FROM steps WHERE exec_id = ?1"
                                " ORDER BY ord",
                                -1, &steps, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(s->w,
                                "SELECT seq, time, type, step, data FROM history"
                                " WHERE exec_id = ?1 ORDER BY seq",
                                -1, &hist, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(s->w,
                                "INSERT INTO chunks (exec_id, n, hseq, data)"
                                " VALUES (?1, 0, ?2, ?3)",
                                -1, &ins, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(ex)) == SQLITE_ROW) {
        const char *id = sq_col_text(ex, 0);
        int64_t hseq = 0;
        wfo_buf_reset(&b);
        chunk_begin(&b);
        if (sq_col_text(ex, 1))
            chunk_put_state(&b, sq_col_int(ex, 2), sq_col_text(ex, 1));
        sq_text(steps, 1, id);
        while ((rc = sqlite3_step(steps)) == SQLITE_ROW) {
            struct store_step p = {
                .path = sq_col_text(steps, 0),
                .ord = (int)sq_col_int(steps, 1),
                .status = sq_col_text(steps, 2),
                .attempts = (int)sq_col_int(steps, 3),
                .output = sq_col_text(steps, 4),
                .error = sq_col_text(steps, 5),
                .state = sq_col_text(steps, 6),
                .started_at = sq_col_int(steps, 7),
                .finished_at = sq_col_int(steps, 8),
                .input = sq_col_text(steps, 9),
            };
            chunk_put_step(&b, &p);
        }
        sqlite3_reset(steps);
        if (rc != SQLITE_DONE)
            break;
        sq_text(hist, 1, id);
        while ((rc = sqlite3_step(hist)) == SQLITE_ROW) {
            struct store_history h = {
                .seq = sq_col_int(hist, 0),
                .time = sq_col_int(hist, 1),
                .type = sq_col_text(hist, 2),
                .step = sq_col_text(hist, 3),
                .data = sq_col_text(hist, 4),
            };
            chunk_put_history(&b, &h);
            hseq = h.seq;
        }
        sqlite3_reset(hist);
        if (rc != SQLITE_DONE)
            break;
        rc = SQLITE_OK;
        if (b.len == 3)
            continue; /* nothing but the magic */
        sq_text(ins, 1, id);
        sq_int(ins, 2, hseq);
        sqlite3_bind_blob(ins, 3, b.buf, (int)b.len, SQLITE_STATIC);
        rc = sq_run(ins);
        sq_done(ins);
    }
    if (rc == SQLITE_DONE)
        rc = SQLITE_OK;
    sqlite3_finalize(ex);
    sqlite3_finalize(steps);
    sqlite3_finalize(hist);
    sqlite3_finalize(ins);
    wfo_buf_release(&b);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->w, "DROP TABLE steps; DROP TABLE history;", NULL, NULL, NULL);
    return rc;
}

/* Every shard has its row from the start: claims only update. */
static int sq_shard_rows(struct sq_store *s)
{
    sqlite3_stmt *st = NULL;
    int rc =
        sqlite3_prepare_v2(s->w, "INSERT OR IGNORE INTO shards (shard) VALUES (?1)", -1, &st, NULL);
    for (int k = 0; rc == SQLITE_OK && k < STORE_SHARDS; k++) {
        sq_int(st, 1, k);
        rc = sq_run(st);
        sq_done(st);
    }
    sqlite3_finalize(st);
    return rc;
}

/* Sets up the writer: WAL for files, then the schema (invariant: user_version
 * 0 is a new database, 1 .. SQ_SCHEMA_VERSION ours (older ones migrated
 * forward in one transaction), more a newer wfo's). */
static int sq_setup(struct sq_store *s, struct wfo_error *err)
{
    char val[64];
    long version;
    int rc;

    if (!s->memory) {
        /* A new file gets 8 KiB pages (an existing one keeps its own). A
         * big commit dirties fewer pages the bigger they are, a small one
         * touches one page a table or index whatever their size, and its
         * fdatasync pays for every byte: 8 KiB was the best of 4, 8 and
         * 16 for bench latency (p50 1.27-1.52 -> 1.10-1.20 ms in-process,
         * 2.44-2.62 -> 1.98-2.08 over HTTP, alternating runs) at a few
         * per cent of bench engine (docs/implementation/
         * database_optimization.md). */
        rc = sq_pragma(s, "PRAGMA page_size = 8192", val, sizeof(val), err);
        if (rc)
            return rc;
        /* Several processes opening a new file at once: all but the one
         * that turns it to WAL may get SQLITE_BUSY at once, busy_timeout
         * or not (a connection holding a shared lock that wants an
         * exclusive one gives up rather than deadlock): 32 of 900 opens by
         * four threads at once on a busy host (test_contract's
         * concurrent_first_open failed in CI). They try again. */
        for (int waited = 0;; waited += 10) {
            rc = sq_pragma(s, "PRAGMA journal_mode = WAL", val, sizeof(val), err);
            if (rc == 0 || (sqlite3_errcode(s->w) & 0xff) != SQLITE_BUSY || waited >= SQ_WAIT_MS)
                break;
            sq_nap(10 * 1000);
        }
        if (rc)
            return rc;
        if (strcmp(val, "wal") != 0)
            return wfo_error_set(err, WFO_ESTORE,
                                 "opening store '%s': cannot use WAL mode (journal mode is '%s')",
                                 s->label, val);
        rc = sq_pragma(s, "PRAGMA synchronous = FULL", val, sizeof(val), err);
        if (rc)
            return rc;
    }
    /* A statement journal, where one is still needed, stays in memory: on
     * a temporary file the multi-row INSERTs' were 40% of the writer's
     * pwrite calls (a 4-byte page number and a page each). */
    rc = sq_pragma(s, "PRAGMA temp_store = MEMORY", val, sizeof(val), err);
    if (rc)
        return rc;
    rc = sqlite3_create_function(s->w, "wfo_shard", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
                                 sq_shard_fn, NULL, NULL);
    if (rc != SQLITE_OK)
        return sq_fail(s, s->w, err, "opening store");
    rc = sq_pragma(s, "PRAGMA user_version", val, sizeof(val), err);
    if (rc)
        return rc;
    version = strtol(val, NULL, 10);
    if (version > SQ_SCHEMA_VERSION)
        return wfo_error_set(err, WFO_ESTORE,
                             "opening store '%s': schema version %ld is newer than this wfo's (%d)",
                             s->label, version, SQ_SCHEMA_VERSION);
    if (version == SQ_SCHEMA_VERSION)
        return 0;
    /* IF NOT EXISTS: two processes may create the schema of a new file at
     * once; BEGIN IMMEDIATE makes the second wait for the first, which is
     * why the version is read again inside the transaction. */
    rc = sqlite3_exec(s->w, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_stmt *st = NULL;
        rc = sqlite3_prepare_v2(s->w, "PRAGMA user_version", -1, &st, NULL);
        if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            version = sqlite3_column_int(st, 0);
            rc = SQLITE_OK;
        }
        sqlite3_finalize(st);
    }
    if (rc == SQLITE_OK && version == 0)
        rc = sqlite3_exec(s->w, sq_schema, NULL, NULL, NULL);
    else
        for (long v = version; rc == SQLITE_OK && v > 0 && v < SQ_SCHEMA_VERSION; v++) {
            rc = sqlite3_exec(s->w, sq_migrations[v - 1], NULL, NULL, NULL);
            if (rc == SQLITE_OK && v == 2)
                rc = sq_migrate_chunks(s);
        }
    if (rc == SQLITE_OK && version < SQ_SCHEMA_VERSION)
        rc = sq_shard_rows(s);
    if (rc == SQLITE_OK && version < SQ_SCHEMA_VERSION) {
        char set[48];
        snprintf(set, sizeof(set), "PRAGMA user_version = %d", SQ_SCHEMA_VERSION);
        rc = sqlite3_exec(s->w, set, NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->w, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        rc = sq_fail(s, s->w, err, "creating the schema");
        if (!sqlite3_get_autocommit(s->w))
            sqlite3_exec(s->w, "ROLLBACK", NULL, NULL, NULL);
    }
    return rc;
}

/* ---- the ops ---- */

static int sq_has_scheme(const char *u)
{
    size_t n = 0;

    if (!isalpha((unsigned char)u[0]))
        return 0;
    while (isalnum((unsigned char)u[n]) || u[n] == '+' || u[n] == '-' || u[n] == '.')
        n++;
    return u[n] == ':';
}

static int sq_accepts(const char *url)
{
    if (!url || !*url)
        return 0;
    return strncmp(url, "sqlite:", 7) == 0 || !sq_has_scheme(url);
}

static void sq_close(struct store *base)
{
    struct sq_store *s;

    if (!base)
        return;
    s = sq_store(base);
    for (int i = 0; i < s->n_readers; i++) {
        wfo_assert(!s->readers[i].busy);
        for (int q = 0; q < R__COUNT; q++)
            sqlite3_finalize(s->readers[i].st[q]);
        sqlite3_close_v2(s->readers[i].db);
    }
    for (int q = 0; q < W__COUNT; q++)
        sqlite3_finalize(s->wst[q]);
    sqlite3_finalize(s->wchunks);
    sqlite3_finalize(s->woutbox);
    sqlite3_finalize(s->wexecs);
    wfo_buf_release(&s->chunk);
    chunk_groups_release(&s->groups);
    /* Last: a memory database goes with its last connection. */
    sqlite3_close_v2(s->w);
    pthread_mutex_destroy(&s->wmu);
    pthread_mutex_destroy(&s->pmu);
    pthread_cond_destroy(&s->pcv);
    free(s->name);
    free(s->label);
    free(s);
}

/*
 * URLs: "sqlite::memory:" (or a bare ":memory:"), "sqlite:PATH",
 * "sqlite:///ABSOLUTE/PATH", or a bare PATH. The path is taken as it is (no
 * URI parameters); a relative path that starts with "file:" is read as
 * "./file:..." so SQLite does not take it for a URI.
 */
/* Chunks go SQ_MANY to a statement: one sqlite3_step and one statement
 * start and halt for them all (callgrind: VdbeHalt alone was a sixth of the
 * writer's instructions with one statement a chunk). */
#define SQ_MANY 8

/* sql, whose one row "VALUES (...)" numbers its parameters ?1 to ?cols,
 * with SQ_MANY such rows instead, row r's parameters numbered from
 * r * cols + 1; what follows the row (ON CONFLICT ...) is kept. */
static char *sq_many_sql(const char *sql, int cols)
{
    struct wfo_buf b = WFO_BUF_INIT;
    const char *v = strstr(sql, " VALUES (");
    wfo_assert(v);
    v += strlen(" VALUES ");
    const char *end = strchr(v, ')');
    wfo_assert(end);
    wfo_buf_add(&b, sql, (size_t)(v - sql));
    for (int r = 0; r < SQ_MANY; r++) {
        if (r)
            wfo_buf_adds(&b, ", ");
        for (const char *p = v; p <= end; p++) {
            if (*p != '?') {
                wfo_buf_addch(&b, *p);
                continue;
            }
            char *num_end;
            long k = strtol(p + 1, &num_end, 10);
            wfo_assert(k >= 1 && k <= cols);
            wfo_buf_addch(&b, '?');
            wfo_buf_addint(&b, (long long)r * cols + k);
            p = num_end - 1;
        }
    }
    wfo_buf_adds(&b, end + 1);
    return wfo_buf_detach(&b, NULL);
}

static int sq_open(const char *url, struct store **out, struct wfo_error *err)
{
    static atomic_uint mem_counter;
    struct sq_store *s = NULL;
    struct wfo_buf name = WFO_BUF_INIT;
    const char *path = url;
    int rc;

    *out = NULL;
    if (!sq_accepts(url))
        return wfo_error_set(err, WFO_EINVAL, "store url is not a sqlite url");
    if (strncmp(path, "sqlite:", 7) == 0)
        path += 7;
    if (strcmp(path, ":memory:") != 0 && strncmp(path, "//", 2) == 0)
        path += 2;
    if (!*path)
        return wfo_error_set(err, WFO_EINVAL, "store url '%s' has no path", url);

    s = wfo_calloc(1, sizeof(*s));
    s->base.ops = &store_sqlite_ops;
    pthread_mutex_init(&s->wmu, NULL);
    pthread_mutex_init(&s->pmu, NULL);
    wfo_buf_init(&s->chunk, 0);
    s->max_readers = 8;
    pthread_cond_init(&s->pcv, NULL);
    s->label = wfo_strdup(path);
    if (strcmp(path, ":memory:") == 0) {
        s->memory = 1;
        rc = wfo_buf_addf(&name, "file:wfo-mem-%ld-%u?mode=memory&cache=shared", (long)getpid(),
                          atomic_fetch_add(&mem_counter, 1));
    } else {
        rc = wfo_buf_addf(&name, "%s%s", strncmp(path, "file:", 5) == 0 ? "./" : "", path);
    }
    if (rc)
        goto out;
    s->name = wfo_buf_detach(&name, NULL);

    rc = sq_connect(s, 1, &s->w, err);
    if (rc)
        goto out;
    rc = sq_setup(s, err);
    if (rc)
        goto out;
    for (int q = 0; q < W__COUNT; q++) {
        if (sq_prepare(s->w, sq_writer_sql[q], &s->wst[q]) != SQLITE_OK) {
            rc = sq_fail(s, s->w, err, "opening store");
            goto out;
        }
    }
    char *many = sq_many_sql(sq_writer_sql[W_CHUNK], 4);
    int prc = sq_prepare(s->w, many, &s->wchunks);
    free(many);
    many = sq_many_sql(sq_writer_sql[W_EXEC], 16);
    if (prc == SQLITE_OK)
        prc = sq_prepare(s->w, many, &s->wexecs);
    free(many);
    many = sq_many_sql(sq_writer_sql[W_OUTBOX_INSERT], 7);
    if (prc == SQLITE_OK)
        prc = sq_prepare(s->w, many, &s->woutbox);
    free(many);

    if (prc != SQLITE_OK) {
        rc = sq_fail(s, s->w, err, "opening store");
        goto out;
    }
    *out = &s->base;
    s = NULL;
out:
    wfo_buf_release(&name);
    sq_close(s ? &s->base : NULL);
    return rc;
}

/* ---- the reader pool ---- */

/* Takes a free reader, opening one when none is free and there are fewer
 * than max_readers, else waits for one. */
static int sq_reader_get(struct sq_store *s, struct sq_reader **out, struct wfo_error *err)
{
    struct sq_reader *r = NULL;
    int rc = 0;

    pthread_mutex_lock(&s->pmu);
    while (!r) {
        for (int i = 0; i < s->n_readers && !r; i++)
            if (!s->readers[i].busy)
                r = &s->readers[i];
        if (!r && s->n_readers < s->max_readers)
            r = &s->readers[s->n_readers++];
        if (!r)
            pthread_cond_wait(&s->pcv, &s->pmu);
    }
    r->busy = 1;
    pthread_mutex_unlock(&s->pmu);

    /* Outside the pool's lock: opening may wait for the file. A slot whose
     * open failed stays free with db NULL, and is opened by the next taker. */
    if (!r->db)
        rc = sq_connect(s, 0, &r->db, err);
    if (rc) {
        pthread_mutex_lock(&s->pmu);
        r->busy = 0;
        pthread_cond_signal(&s->pcv);
        pthread_mutex_unlock(&s->pmu);
        return rc;
    }
    *out = r;
    return 0;
}

static void sq_reader_put(struct sq_store *s, struct sq_reader *r)
{
    pthread_mutex_lock(&s->pmu);
    r->busy = 0;
    pthread_cond_signal(&s->pcv);
    pthread_mutex_unlock(&s->pmu);
}

static int sq_list_mask(const struct store_exec_filter *f)
{
    return (f->workflow ? SQ_F_WORKFLOW : 0) | (f->status ? SQ_F_STATUS : 0) |
           (f->created_after ? SQ_F_AFTER : 0) | (f->created_before ? SQ_F_BEFORE : 0) |
           (f->before_seq ? SQ_F_SEQ : 0);
}

/* The list query for a set of filters. The parameter numbers are fixed, so
 * one binding code serves every variant. */
static void sq_list_sql_mask(int mask, char *out, size_t size)
{
    snprintf(out, size,
             "SELECT " SQ_EXEC_COLS " FROM executions WHERE namespace = ?1%s%s%s%s%s"
             " ORDER BY seq DESC LIMIT ?7",
             mask & SQ_F_WORKFLOW ? " AND workflow = ?2" : "",
             mask & SQ_F_STATUS ? " AND status = ?3" : "",
             mask & SQ_F_AFTER ? " AND created_at > ?4" : "",
             mask & SQ_F_BEFORE ? " AND created_at < ?5" : "",
             mask & SQ_F_SEQ ? " AND seq < ?6" : "");
}

void store_sqlite_list_sql(const struct store_exec_filter *f, char *out, size_t size)
{
    sq_list_sql_mask(sq_list_mask(f), out, size);
}

/* Reader r's statement q, prepared on first use. */
static int sq_reader_prep(struct sq_store *s, struct sq_reader *r, int q, sqlite3_stmt **st,
                          struct wfo_error *err)
{
    char sql[1024];

    if (!r->st[q]) {
        if (q >= R_LIST)
            sq_list_sql_mask(q - R_LIST, sql, sizeof(sql));
        else
            snprintf(sql, sizeof(sql), "%s", sq_reader_sql[q]);
        if (sq_prepare(r->db, sql, &r->st[q]) != SQLITE_OK)
            return sq_fail(s, r->db, err, "preparing a read");
    }
    *st = r->st[q];
    return 0;
}

/* Takes a reader and its statement q, prepared. On success the caller binds,
 * runs sq_each and gives the reader back with sq_reader_put. */
static int sq_reader_stmt(struct sq_store *s, int q, struct sq_reader **out, sqlite3_stmt **st,
                          struct wfo_error *err)
{
    struct sq_reader *r;
    int rc;

    rc = sq_reader_get(s, &r, err);
    if (rc)
        return rc;
    rc = sq_reader_prep(s, r, q, st, err);
    if (rc) {
        sq_reader_put(s, r);
        return rc;
    }
    *out = r;
    return 0;
}

/* Steps a bound statement, calling row for each row until it returns
 * non-zero (then returned), then resets the statement. *n counts rows. */
static int sq_each(struct sq_store *s, sqlite3 *db, sqlite3_stmt *st,
                   int (*row)(sqlite3_stmt *, const struct sq_cb *), const struct sq_cb *cb, int *n,
                   const char *what, struct wfo_error *err)
{
    int rc, ret = 0, seen = 0;

    for (;;) {
        /* Table locks are taken at the first step: only it may wait. */
        rc = seen ? sqlite3_step(st) : sq_step(st);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            ret = sq_fail(s, db, err, "%s", what);
            break;
        }
        seen++;
        ret = row(st, cb);
        if (ret)
            break;
    }
    sq_done(st);
    if (n)
        *n = seen;
    return ret;
}

static int sq_ping(struct store *base, struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    struct sq_reader *r;
    sqlite3_stmt *st;
    int rc;

    rc = sq_reader_stmt(s, R_PING, &r, &st, err);
    if (rc)
        return rc;
    rc = sq_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_int(st, 0) == SQ_SCHEMA_VERSION)
        rc = 0;
    else if (rc == SQLITE_ROW)
        rc = wfo_error_set(err, WFO_ESTORE, "pinging store '%s': schema version is %d", s->label,
                           sqlite3_column_int(st, 0));
    else
        rc = sq_fail(s, r->db, err, "pinging store");
    sq_done(st);
    sq_reader_put(s, r);
    return rc;
}

/* ---- writing ---- */

/* Steps a bound writer statement and resets it; WFO_ESTORE naming what was
 * written on error. */
static int sq_wstep(struct sq_store *s, sqlite3_stmt *st, int bind_rc, struct wfo_error *err,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int sq_wstep(struct sq_store *s, sqlite3_stmt *st, int bind_rc, struct wfo_error *err,
                    const char *fmt, ...)
{
    char what[256];
    va_list ap;
    int rc = bind_rc;

    if (rc == SQLITE_OK)
        rc = sq_run(st);
    if (rc != SQLITE_OK) {
        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        /* Before the reset, which may change the message. */
        rc = sq_fail(s, s->w, err, "%s", what);
    }
    sq_done(st);
    return rc;
}

static int sq_put_exec(struct sq_store *s, const struct store_exec *e, struct wfo_error *err);

/* W_EXEC_UPDATE's parameters for e from o + 1: id, status, output, error,
 * compensation, updated_at, finished_at, resume. */
static int sq_bind_exec_update(sqlite3_stmt *st, int o, const struct store_exec *e)
{
    int b = 0;

    b |= sq_text(st, o + 1, e->id);
    b |= sq_text(st, o + 2, e->status);
    b |= sq_text(st, o + 3, e->output);
    b |= sq_text(st, o + 4, e->error);
    b |= sq_text(st, o + 5, e->compensation);
    b |= sq_time(st, o + 6, e->updated_at);
    b |= sq_time(st, o + 7, e->finished_at);
    b |= sq_int(st, o + 8, e->resume);
    return b;
}

/* W_EXEC's parameters for e, the row's 16 from o + 1 (?11, the state, is
 * not one: the state lives in the chunks). */
static int sq_bind_exec(sqlite3_stmt *st, int o, const struct store_exec *e)
{
    int b = 0;

    b |= sq_text(st, o + 1, e->id);
    b |= sq_text(st, o + 2, e->namespace);
    b |= sq_text(st, o + 3, e->workflow);
    b |= sq_int(st, o + 4, e->version);
    b |= sq_text(st, o + 5, e->status);
    b |= sq_text(st, o + 6, e->input);
    b |= sq_text(st, o + 7, e->output);
    b |= sq_text(st, o + 8, e->error);
    b |= sq_text(st, o + 9, e->compensation);
    b |= sq_text(st, o + 10, e->parent);
    b |= sq_time(st, o + 12, e->created_at);
    b |= sq_time(st, o + 13, e->updated_at);
    b |= sq_time(st, o + 14, e->finished_at);
    b |= sq_int(st, o + 15, store_shard_of(e->id));
    b |= sq_int(st, o + 16, e->resume);
    return b;
}

/* The rows of a batch's executions: the new ones SQ_MANY to a statement
 * (one statement, one AUTOINCREMENT update for them all: callgrind, writer
 * 142.9k -> 126k instructions per workflow), the others one by one
 * (sq_put_exec; an UPDATE ... FROM VALUES of eight cost more than eight
 * UPDATEs). */
static int sq_put_execs(struct sq_store *s, const struct store_batch *b, struct wfo_error *err)
{
    const struct store_exec *many[SQ_MANY];
    int n = 0, rc = 0;

    for (int i = 0; rc == 0 && i < b->n_execs; i++) {
        const struct store_exec *e = &b->execs[i];
        if (e->only_state || e->existing) {
            rc = sq_put_exec(s, e, err);
            continue;
        }
        many[n++] = e;
        if (n < SQ_MANY)
            continue;
        int bc = 0;
        for (int k = 0; k < SQ_MANY; k++)
            bc |= sq_bind_exec(s->wexecs, 16 * k, many[k]);
        rc = sq_wstep(s, s->wexecs, bc, err, "writing execution '%s' (and the next ones)",
                      many[0]->id ? many[0]->id : "");
        n = 0;
    }
    for (int k = 0; rc == 0 && k < n; k++)
        rc = sq_put_exec(s, many[k], err);
    return rc;
}

/* The row of an execution: inserted, or updated in place when the engine
 * wrote it before; not written at all when only its state moved (the state
 * goes in its chunk). */
static int sq_put_exec(struct sq_store *s, const struct store_exec *e, struct wfo_error *err)
{
    sqlite3_stmt *st = s->wst[W_EXEC];
    int b = 0;

    if (e->only_state)
        return 0;
    if (e->existing) {
        st = s->wst[W_EXEC_UPDATE];
        b = sq_bind_exec_update(st, 0, e);
        int rc = sq_wstep(s, st, b, err, "writing execution '%s'", e->id ? e->id : "");
        if (rc == 0 && sqlite3_changes(s->w) != 1)
            rc = wfo_error_set(err, WFO_ESTORE, "writing execution '%s': no such row",
                               e->id ? e->id : "");
        return rc;
    }
    b = sq_bind_exec(st, 0, e);
    return sq_wstep(s, st, b, err, "writing execution '%s'", e->id ? e->id : "");
}

/* One encoded chunk: its bytes are s->chunks[off, off + len). */
struct sq_chunk {
    const char *id;
    int64_t n, hseq;
    size_t off, len;
};

/* Encodes the chunk of group r into s->chunk (appended), numbered by the
 * engine (x->chunk) or, when it does not say, after the last one stored.
 * *c is zeroed when the execution has nothing to write. */
static int sq_encode_chunk(struct sq_store *s, const struct chunk_groups *g,
                           const struct chunk_group *r, const struct store_batch *b,
                           struct sq_chunk *c, struct wfo_error *err)
{
    memset(c, 0, sizeof(*c));
    if (!(r->x && r->x->state) && r->step < 0 && r->hist < 0)
        return 0;
    c->id = r->id ? r->id : "";
    c->n = r->x ? r->x->chunk : 0;
    c->off = s->chunk.len;
    chunk_begin(&s->chunk);
    if (r->x && r->x->state)
        chunk_put_state(&s->chunk, r->x->updated_at, r->x->state);
    for (int i = r->step; i >= 0; i = g->step_next[i])
        chunk_put_step(&s->chunk, &b->steps[i]);
    for (int i = r->hist; i >= 0; i = g->hist_next[i]) {
        chunk_put_history(&s->chunk, &b->history[i]);
        if (b->history[i].seq > c->hseq)
            c->hseq = b->history[i].seq;
    }
    c->len = s->chunk.len - c->off;
    if (c->n > 0)
        return 0;
    sqlite3_stmt *st = s->wst[W_CHUNK_NEXT];
    sq_text(st, 1, c->id);
    int rc = sq_step(st);
    c->n = rc == SQLITE_ROW ? sq_col_int(st, 0) : 0;
    sq_done(st);
    return rc == SQLITE_ROW ? 0
                            : sq_fail(s, s->w, err, "numbering a chunk of execution '%s'", c->id);
}

/* Inserts chunks c[0..k) (k is 1 or SQ_MANY) in one statement; their bytes
 * are in s->chunk, which no longer moves. */
static int sq_insert_chunks(struct sq_store *s, const struct sq_chunk *c, int k,
                            struct wfo_error *err)
{
    sqlite3_stmt *st = k == 1 ? s->wst[W_CHUNK] : s->wchunks;
    int bc = 0, rc;

    for (int i = 0; i < k; i++) {
        bc |= sq_text(st, 4 * i + 1, c[i].id);
        bc |= sq_int(st, 4 * i + 2, c[i].n);
        bc |= sq_int(st, 4 * i + 3, c[i].hseq);
        bc |=
            sqlite3_bind_blob(st, 4 * i + 4, s->chunk.buf + c[i].off, (int)c[i].len, SQLITE_STATIC);
    }
    rc = sq_wstep(s, st, bc, err, "writing chunk %lld of execution '%s'%s", (long long)c->n, c->id,
                  k > 1 ? " (and the next ones)" : "");
    if (rc && sqlite3_extended_errcode(s->w) == SQLITE_CONSTRAINT_UNIQUE) /* chunks_exec */
        rc = wfo_error_set(err, WFO_ESTORE,
                           "writing a chunk of execution '%s'%s in '%s': it exists (a doubled "
                           "transition)",
                           c->id, k > 1 ? " or of the next ones" : "", s->label);
    return rc;
}

/* Every group's chunk: encoded first, then inserted SQ_MANY at a time. */
static int sq_put_chunks(struct sq_store *s, const struct chunk_groups *g,
                         const struct store_batch *b, struct wfo_error *err)
{
    struct sq_chunk *c = wfo_malloc(((size_t)g->n + 1) * sizeof(*c));
    int n = 0, rc = 0;

    wfo_buf_reset(&s->chunk);
    for (int i = 0; rc == 0 && i < g->n; i++) {
        rc = sq_encode_chunk(s, g, &g->v[i], b, &c[n], err);
        n += c[n].id != NULL;
    }
    for (int i = 0, k; rc == 0 && i < n; i += k) {
        k = n - i >= SQ_MANY ? SQ_MANY : 1;
        rc = sq_insert_chunks(s, &c[i], k, err);
    }
    free(c);
    return rc;
}

/* Invariant 6: every shard of want must be owner's at epochs[k]. */
/* The shards of want are owned by owner at epochs[k] (else WFO_EFENCED,
 * saying what was refused). */
static int sq_fence_shards(struct sq_store *s, const char *owner, store_shardset want,
                           const int64_t *epochs, const char *what, struct wfo_error *err)
{
    store_shardset ok = 0;
    sqlite3_stmt *st = s->wst[W_SHARDS];
    int rc;

    if (!owner || !want)
        return 0;
    while ((rc = sq_step(st)) == SQLITE_ROW) {
        int k = (int)sq_col_int(st, 0);
        const char *o = sq_col_text(st, 1);
        if (k >= 0 && k < STORE_SHARDS && o && strcmp(o, owner) == 0 &&
            sq_col_int(st, 2) == epochs[k])
            ok |= (store_shardset)1 << k;
    }
    sq_done(st);
    if (rc != SQLITE_DONE)
        return sq_fail(s, s->w, err, "reading the shards");
    if ((want & ok) != want) {
        int k = 0;
        while (!((want & ~ok) >> k & 1))
            k++;
        return wfo_error_set(err, WFO_EFENCED,
                             "%s: shard %d is no longer owned by '%s' at epoch %lld", what, k,
                             owner, (long long)epochs[k]);
    }
    return 0;
}

static int sq_fence(struct sq_store *s, const struct store_batch *b, struct wfo_error *err)
{
    return sq_fence_shards(s, b->owner, store_batch_shards(b), b->epochs, "committing a batch",
                           err);
}

static int sq_put_timer(struct sq_store *s, const struct store_timer *t, struct wfo_error *err)
{
    sqlite3_stmt *st = s->wst[W_TIMER];
    int b = 0;

    b |= sq_text(st, 1, t->id);
    b |= sq_text(st, 2, t->exec_id);
    b |= sq_time(st, 3, t->due_at);
    b |= sq_text(st, 4, t->kind);
    b |= sq_text(st, 5, t->step);
    b |= sq_int(st, 6, t->token);
    b |= sq_text(st, 7, t->data);
    b |= sq_int(st, 8, store_shard_of(t->exec_id));
    return sq_wstep(s, st, b, err, "writing timer '%s'", t->id ? t->id : "");
}

static int sq_put_task(struct sq_store *s, const struct store_task *t, struct wfo_error *err)
{
    sqlite3_stmt *st = s->wst[W_TASK];
    int b = 0;

    if (t->lease_only) {
        st = s->wst[W_TASK_LEASE];
        b |= sq_text(st, 1, t->id);
        b |= sq_text(st, 2, t->lease);
        b |= sq_time(st, 3, t->leased_until);
        return sq_wstep(s, st, b, err, "leasing task '%s'", t->id ? t->id : "");
    }
    b |= sq_text(st, 1, t->id);
    b |= sq_text(st, 2, t->exec_id);
    b |= sq_text(st, 3, t->namespace);
    b |= sq_text(st, 4, t->queue);
    b |= sq_text(st, 5, t->step);
    b |= sq_int(st, 6, t->attempt);
    b |= sq_text(st, 7, t->status);
    b |= sq_text(st, 8, t->lease);
    b |= sq_text(st, 9, t->input);
    b |= sq_time(st, 10, t->ready_at);
    b |= sq_time(st, 11, t->leased_until);
    b |= sq_time(st, 12, t->created_at);
    b |= sq_int(st, 13, store_shard_of(t->exec_id));
    return sq_wstep(s, st, b, err, "writing task '%s'", t->id ? t->id : "");
}

static int sq_delete(struct sq_store *s, int q, const char *id, const char *what,
                     struct wfo_error *err)
{
    sqlite3_stmt *st = s->wst[q];

    return sq_wstep(s, st, sq_text(st, 1, id), err, "deleting %s '%s'", what, id ? id : "");
}

/* ---- events and signals (SPEC 2.5) ---- */

static int sq_put_event_row(struct sq_store *s, const struct store_event *e, struct wfo_error *err)
{
    sqlite3_stmt *st = s->wst[W_EVENT_INSERT];
    int b = 0;

    b |= sq_text(st, 1, e->namespace);
    b |= sq_text(st, 2, e->id);
    b |= sq_text(st, 3, e->type);
    b |= sq_text(st, 4, e->key);
    b |= sq_text(st, 5, e->source);
    b |= sq_text(st, 6, e->data);
    b |= sq_int(st, 7, e->time);
    b |= sq_int(st, 8, e->published_at);
    b |= sq_text(st, 9, e->attrs);
    return sq_wstep(s, st, b, err, "writing event '%s'", e->id ? e->id : "");
}

static int sq_consume(struct sq_store *s, const struct store_del *c, struct wfo_error *err)
{
    sqlite3_stmt *st = s->wst[W_CONSUME];
    int b = 0;

    b |= sq_text(st, 1, c->exec_id);
    b |= sq_text(st, 2, c->id);
    return sq_wstep(s, st, b, err, "consuming event '%s'", c->id ? c->id : "");
}

static int sq_bind_outbox(sqlite3_stmt *st, int o, const struct store_outbox *r)
{
    int b = sq_text(st, o + 1, r->event_id);
    b |= sq_text(st, o + 2, r->namespace);
    b |= sq_text(st, o + 3, r->type);
    b |= sq_text(st, o + 4, r->key);
    b |= sq_text(st, o + 5, r->exec_id);
    b |= sq_text(st, o + 6, r->event);
    b |= sq_int(st, o + 7, r->time ? r->time : wfo_now_ms());
    return b;
}

static int sq_put_outbox(struct sq_store *s, const struct store_outbox *o, struct wfo_error *err)
{
    sqlite3_stmt *st = s->wst[W_OUTBOX_INSERT];
    return sq_wstep(s, st, sq_bind_outbox(st, 0, o), err, "writing outbox event '%s'",
                    o->event_id ? o->event_id : "");
}

/* A batch's outbox rows, in order (their seq is the order): SQ_MANY to a
 * statement like the new executions (callgrind, writer: a lifecycle row
 * alone cost 20k instructions, most of them the statement's and
 * AUTOINCREMENT's), the rest one by one. */
static int sq_put_outboxes(struct sq_store *s, const struct store_batch *b, struct wfo_error *err)
{
    int i = 0, rc = 0;
    for (; rc == 0 && i + SQ_MANY <= b->n_outbox; i += SQ_MANY) {
        int bc = 0;
        for (int k = 0; k < SQ_MANY; k++)
            bc |= sq_bind_outbox(s->woutbox, 7 * k, &b->outbox[i + k]);
        rc = sq_wstep(s, s->woutbox, bc, err, "writing outbox event '%s' (and the next ones)",
                      b->outbox[i].event_id ? b->outbox[i].event_id : "");
    }
    for (; rc == 0 && i < b->n_outbox; i++)
        rc = sq_put_outbox(s, &b->outbox[i], err);
    return rc;
}

static void sq_event_read(sqlite3_stmt *st, struct store_event *r)
{
    r->seq = sq_col_int(st, 0);
    r->namespace = sq_col_text(st, 1);
    r->id = sq_col_text(st, 2);
    r->type = sq_col_text(st, 3);
    r->key = sq_col_text(st, 4);
    r->source = sq_col_text(st, 5);
    r->data = sq_col_text(st, 6);
    r->time = sq_col_int(st, 7);
    r->published_at = sq_col_int(st, 8);
    r->attrs = sq_col_text(st, 9);
}

static int sq_event_row(sqlite3_stmt *st, const struct sq_cb *cb)
{
    struct store_event r;

    sq_event_read(st, &r);
    return cb->fn.event(cb->ud, &r);
}

static int sq_signal_row(sqlite3_stmt *st, const struct sq_cb *cb)
{
    struct store_signal r;

    r.seq = sq_col_int(st, 0);
    r.id = sq_col_text(st, 1);
    r.exec_id = sq_col_text(st, 2);
    r.name = sq_col_text(st, 3);
    r.data = sq_col_text(st, 4);
    r.time = sq_col_int(st, 5);
    return cb->fn.signal(cb->ud, &r);
}

/* With s->wmu held: rolls back the open transaction, if any. */
static void sq_rollback(struct sq_store *s)
{
    if (!sqlite3_get_autocommit(s->w)) {
        sq_run(s->wst[W_ROLLBACK]);
        sq_done(s->wst[W_ROLLBACK]);
    }
}

static int sq_begin(struct sq_store *s, const char *what, struct wfo_error *err)
{
    return sq_wstep(s, s->wst[W_BEGIN], SQLITE_OK, err, "%s", what);
}

static int sq_commit(struct sq_store *s, const char *what, struct wfo_error *err)
{
    return sq_wstep(s, s->wst[W_COMMIT], SQLITE_OK, err, "%s", what);
}

/* Invariant 1: everything in one transaction, rolled back on any error. */
static int sq_apply(struct store *base, const struct store_batch *b, struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    int rc, i;

    if (store_batch_empty(b))
        return 0;
    pthread_mutex_lock(&s->wmu);
    chunk_groups_build(&s->groups, b); /* its arrays are kept: under wmu */
    rc = sq_begin(s, "starting a batch", err);
    if (rc == 0)
        rc = sq_fence(s, b, err);
    if (rc == 0)
        rc = sq_put_execs(s, b, err);
    if (rc == 0)
        rc = sq_put_chunks(s, &s->groups, b, err);
    for (i = 0; rc == 0 && i < b->n_timers; i++)
        rc = sq_put_timer(s, &b->timers[i], err);
    for (i = 0; rc == 0 && i < b->n_timer_dels; i++)
        rc = sq_delete(s, W_TIMER_DEL, b->timer_dels[i].id, "timer", err);
    for (i = 0; rc == 0 && i < b->n_tasks; i++)
        rc = sq_put_task(s, &b->tasks[i], err);
    for (i = 0; rc == 0 && i < b->n_task_dels; i++)
        rc = sq_delete(s, W_TASK_DEL, b->task_dels[i].id, "task", err);
    for (i = 0; rc == 0 && i < b->n_events; i++)
        rc = sq_put_event_row(s, &b->events[i], err);
    for (i = 0; rc == 0 && i < b->n_consumes; i++)
        rc = sq_consume(s, &b->consumes[i], err);
    for (i = 0; rc == 0 && i < b->n_signal_dels; i++)
        rc = sq_delete(s, W_SIGNAL_DEL, b->signal_dels[i].id, "signal", err);
    if (rc == 0)
        rc = sq_put_outboxes(s, b, err);
    for (i = 0; rc == 0 && i < b->n_exec_dels; i++)
        for (int q = W_EXEC_DEL_CHUNKS; rc == 0 && q <= W_EXEC_DEL; q++)
            rc = sq_delete(s, q, b->exec_dels[i], "execution", err);
    if (rc == 0)
        rc = sq_commit(s, "committing a batch", err);
    if (rc)
        sq_rollback(s);
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

/* ---- shards ---- */

struct sq_shard_row {
    char *owner;
    int64_t epoch, lease_until;
};

static int sq_claim_shards(struct store *base, const char *owner, store_shardset want, int64_t now,
                           int64_t lease_until, int force, store_shard_cb cb, void *ud,
                           struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    struct sq_shard_row rows[STORE_SHARDS] = {{0}};
    sqlite3_stmt *st;
    int rc;

    if (!owner || !*owner)
        return wfo_error_set(err, WFO_EINVAL, "claiming shards needs an owner");
    pthread_mutex_lock(&s->wmu);
    rc = sq_begin(s, "claiming shards", err);
    if (rc)
        goto out;
    st = s->wst[W_SHARDS];
    while ((rc = sq_step(st)) == SQLITE_ROW) {
        int k = (int)sq_col_int(st, 0);
        if (k < 0 || k >= STORE_SHARDS)
            continue;
        rows[k].owner = sq_col_text(st, 1) ? wfo_strdup(sq_col_text(st, 1)) : NULL;
        rows[k].epoch = sq_col_int(st, 2);
        rows[k].lease_until = sq_col_int(st, 3);
    }
    sq_done(st);
    if (rc != SQLITE_DONE) {
        rc = sq_fail(s, s->w, err, "reading the shards");
        goto out;
    }
    rc = 0;
    for (int k = 0; rc == 0 && k < STORE_SHARDS; k++) {
        struct sq_shard_row *r = &rows[k];
        if (!(want >> k & 1))
            continue;
        int mine = r->owner && strcmp(r->owner, owner) == 0;
        if (!mine && !force && r->owner && r->lease_until >= now)
            continue; /* another's, and its lease runs */
        if (!mine) {
            free(r->owner);
            r->owner = wfo_strdup(owner);
            r->epoch++;
        }
        r->lease_until = lease_until;
        st = s->wst[W_SHARD_SET];
        int b = sq_int(st, 1, k);
        b |= sq_text(st, 2, r->owner);
        b |= sq_int(st, 3, r->epoch);
        b |= sq_int(st, 4, r->lease_until);
        rc = sq_wstep(s, st, b, err, "claiming shard %d", k);
    }
    if (rc == 0)
        rc = sq_commit(s, "claiming shards", err);
out:
    sq_rollback(s);
    pthread_mutex_unlock(&s->wmu);
    for (int k = 0; rc == 0 && cb && k < STORE_SHARDS; k++)
        if (want >> k & 1) {
            struct store_shard row = {k, rows[k].owner, rows[k].epoch, rows[k].lease_until};
            rc = cb(ud, &row);
        }
    for (int k = 0; k < STORE_SHARDS; k++)
        free(rows[k].owner);
    return rc;
}

static int sq_release_shards(struct store *base, const char *owner, store_shardset which,
                             struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    int rc;

    pthread_mutex_lock(&s->wmu);
    rc = sq_begin(s, "releasing shards", err);
    for (int k = 0; rc == 0 && k < STORE_SHARDS; k++)
        if (which >> k & 1) {
            sqlite3_stmt *st = s->wst[W_SHARD_RELEASE];
            int b = sq_int(st, 1, k);
            b |= sq_text(st, 2, owner);
            rc = sq_wstep(s, st, b, err, "releasing shard %d", k);
        }
    if (rc == 0)
        rc = sq_commit(s, "releasing shards", err);
    sq_rollback(s);
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

static int sq_list_shards(struct store *base, store_shard_cb cb, void *ud, struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    struct sq_cb c = {.fn.shard = cb, .ud = ud};
    struct sq_reader *r;
    sqlite3_stmt *st;
    int rc;

    rc = sq_reader_stmt(s, R_SHARDS, &r, &st, err);
    if (rc)
        return rc;
    rc = sq_each(s, r->db, st, sq_shard_row, &c, NULL, "listing shards", err);
    sq_reader_put(s, r);
    return rc;
}

static int sq_put_workflow(struct store *base, const struct store_workflow *w, int *created,
                           store_workflow_cb cb, void *ud, struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    struct store_workflow row = *w;
    sqlite3_stmt *st;
    int rc, b = 0;

    *created = 0;
    if (!w->namespace || !w->name || !w->hash || !w->definition)
        return wfo_error_set(err, WFO_EINVAL, "workflow to store lacks a name, hash or body");
    pthread_mutex_lock(&s->wmu);
    rc = sq_begin(s, "registering a workflow", err);
    if (rc)
        goto out;

    st = s->wst[W_WF_LATEST];
    sq_text(st, 1, w->namespace);
    sq_text(st, 2, w->name);
    rc = sq_step(st);
    if (rc == SQLITE_ROW && strcmp(sq_col_text(st, 3), w->hash) == 0) {
        /* Unchanged: the stored row, while the statement holds it. */
        sq_wf_read(st, &row);
        rc = cb ? cb(ud, &row) : 0;
        sq_done(st);
        if (rc == 0)
            rc = sq_commit(s, "registering a workflow", err);
        goto out;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        rc = sq_fail(s, s->w, err, "reading workflow '%s'", w->name);
        sq_done(st);
        goto out;
    }
    row.version = rc == SQLITE_ROW ? sqlite3_column_int(st, 2) + 1 : 1;
    sq_done(st);

    row.created_at = w->created_at ? w->created_at : wfo_now_ms();
    st = s->wst[W_WF_INSERT];
    b |= sq_text(st, 1, row.namespace);
    b |= sq_text(st, 2, row.name);
    b |= sq_int(st, 3, row.version);
    b |= sq_text(st, 4, row.hash);
    b |= sq_text(st, 5, row.definition);
    b |= sq_time(st, 6, row.created_at);
    rc = sq_wstep(s, st, b, err, "writing workflow '%s' version %d", row.name, row.version);
    if (rc == 0)
        rc = sq_commit(s, "registering a workflow", err);
    if (rc == 0) {
        *created = 1;
        rc = cb ? cb(ud, &row) : 0;
    }
out:
    sq_rollback(s);
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

/* ---- reading ---- */

static int sq_get_workflow(struct store *base, const char *ns, const char *name, int version,
                           store_workflow_cb cb, void *ud, struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    struct sq_cb c = {.fn.wf = cb, .ud = ud};
    struct sq_reader *r;
    sqlite3_stmt *st;
    int rc, n = 0;

    rc = sq_reader_stmt(s, version ? R_WF_VERSION : R_WF_LATEST, &r, &st, err);
    if (rc)
        return rc;
    sq_text(st, 1, ns);
    sq_text(st, 2, name);
    if (version)
        sq_int(st, 3, version);
    rc = sq_each(s, r->db, st, sq_wf_row, &c, &n, "reading a workflow", err);
    sq_reader_put(s, r);
    if (rc == 0 && n == 0) {
        if (version)
            rc = wfo_error_set(err, WFO_ENOTFOUND, "workflow '%s' version %d not found",
                               name ? name : "", version);
        else
            rc = wfo_error_set(err, WFO_ENOTFOUND, "workflow '%s' not found", name ? name : "");
    }
    return rc;
}

static int sq_list_workflows(struct store *base, const char *ns, store_workflow_cb cb, void *ud,
                             struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    struct sq_cb c = {.fn.wf = cb, .ud = ud};
    struct sq_reader *r;
    sqlite3_stmt *st;
    int rc;

    rc = sq_reader_stmt(s, ns ? R_WF_LIST : R_WF_LIST_ALL, &r, &st, err);
    if (rc)
        return rc;
    if (ns)
        sq_text(st, 1, ns);
    rc = sq_each(s, r->db, st, sq_wf_row, &c, NULL, "listing workflows", err);
    sq_reader_put(s, r);
    return rc;
}

/* Takes a reader and its statement q for execution rows, with c->chunks
 * ready for their state. */
static int sq_exec_stmt(struct sq_store *s, int q, struct sq_cb *c, struct sq_reader **r,
                        sqlite3_stmt **st, struct wfo_error *err)
{
    int rc = sq_reader_stmt(s, q, r, st, err);
    if (rc == 0 && (rc = sq_reader_prep(s, *r, R_CHUNKS_LAST, &c->chunks, err)) != 0)
        sq_reader_put(s, *r);
    c->err = err;
    return rc;
}

static int sq_get_exec(struct store *base, const char *id, store_exec_cb cb, void *ud,
                       struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    struct sq_cb c = {.fn.exec = cb, .ud = ud};
    struct sq_reader *r;
    sqlite3_stmt *st;
    int rc, n = 0;

    rc = sq_exec_stmt(s, R_EXEC, &c, &r, &st, err);
    if (rc)
        return rc;
    sq_text(st, 1, id);
    rc = sq_each(s, r->db, st, sq_exec_row, &c, &n, "reading an execution", err);
    sq_reader_put(s, r);
    if (rc == 0 && n == 0)
        rc = wfo_error_set(err, WFO_ENOTFOUND, "execution '%s' not found", id ? id : "");
    return rc;
}

/* created_after and created_before are exclusive; limit <= 0 means no
 * limit. */
static int sq_list_execs(struct store *base, const struct store_exec_filter *f, store_exec_cb cb,
                         void *ud, struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    struct sq_cb c = {.fn.exec = cb, .ud = ud};
    struct sq_reader *r;
    sqlite3_stmt *st;
    int rc;

    if (!f->namespace)
        return wfo_error_set(err, WFO_EINVAL, "listing executions needs a namespace");
    rc = sq_exec_stmt(s, R_LIST + sq_list_mask(f), &c, &r, &st, err);
    if (rc)
        return rc;
    sq_text(st, 1, f->namespace);
    if (f->workflow)
        sq_text(st, 2, f->workflow);
    if (f->status)
        sq_text(st, 3, f->status);
    if (f->created_after)
        sq_int(st, 4, f->created_after);
    if (f->created_before)
        sq_int(st, 5, f->created_before);
    if (f->before_seq)
        sq_int(st, 6, f->before_seq);
    sq_int(st, 7, f->limit > 0 ? f->limit : -1);
    rc = sq_each(s, r->db, st, sq_exec_row, &c, NULL, "listing executions", err);
    sq_reader_put(s, r);
    return rc;
}

static int sq_list_active_execs(struct store *base, store_shardset shards, store_exec_cb cb,
                                void *ud, struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    struct sq_cb c = {.fn.exec = cb, .ud = ud};
    struct sq_reader *r;
    sqlite3_stmt *st;
    int rc;

    rc = sq_exec_stmt(s, R_EXEC_ACTIVE, &c, &r, &st, err);
    if (rc)
        return rc;
    sq_int(st, 1, shards);
    rc = sq_each(s, r->db, st, sq_exec_row, &c, NULL, "listing active executions", err);
    sq_reader_put(s, r);
    return rc;
}

/* The steps of one execution: the last record of each path over its chunks,
 * copied out of the statement to be sorted by ord. */
struct sq_steps {
    struct store_step *v;
    int n, alloc;
    struct wfo_map by_path; /* path -> index + 1 */
};

static char *sq_keep(const char *s)
{
    return s ? wfo_strdup(s) : NULL;
}

static void sq_step_free(struct store_step *k)
{
    free((char *)k->path);
    free((char *)k->status);
    free((char *)k->output);
    free((char *)k->error);
    free((char *)k->state);
    free((char *)k->input);
}

static void sq_step_keep(void *ud, const struct store_step *r)
{
    struct sq_steps *l = ud;
    intptr_t i = (intptr_t)wfo_map_get(&l->by_path, r->path);
    struct store_step *k;
    char *path;
    if (i) { /* a later record of the path: the kept path stays the map's key */
        k = &l->v[i - 1];
        path = (char *)k->path;
        k->path = NULL;
        sq_step_free(k);
    } else {
        GROW(l->v, l->n, l->alloc);
        k = &l->v[l->n++];
        path = sq_keep(r->path);
    }
    *k = *r;
    k->path = path;
    k->status = sq_keep(r->status);
    k->output = sq_keep(r->output);
    k->error = sq_keep(r->error);
    k->state = sq_keep(r->state);
    k->input = sq_keep(r->input);
    if (!i) /* the map's key is the kept path (map.h) */
        wfo_map_put(&l->by_path, k->path, (void *)(intptr_t)l->n);
}

static int sq_step_cmp(const void *a, const void *b)
{
    const struct store_step *x = a, *y = b;
    if (x->ord != y->ord)
        return x->ord < y->ord ? -1 : 1;
    return strcmp(x->path ? x->path : "", y->path ? y->path : "");
}

/* Steps the bound statement st of reader r, whose rows are chunks of
 * exec_id, and calls fn for each record of each chunk, in order, until fn
 * returns non-zero (then returned). */
static int sq_records(struct sq_store *s, struct sq_reader *r, sqlite3_stmt *st,
                      const char *exec_id, const char *what,
                      int (*fn)(void *ud, const struct chunk_rec *rec), void *ud,
                      struct wfo_error *err)
{
    int rc = 0, seen = 0;

    while (rc == 0) {
        /* Table locks are taken at the first step: only it may wait. */
        int src = seen++ ? sqlite3_step(st) : sq_step(st);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = sq_fail(s, r->db, err, "%s", what);
            break;
        }
        struct chunk_reader cr;
        struct chunk_rec rec;
        rc = chunk_open(&cr, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0),
                        exec_id, err);
        while (rc == 0 && (rc = chunk_next(&cr, &rec, err)) == 1)
            rc = fn(ud, &rec);
    }
    sq_done(st);
    return rc;
}

static int sq_step_rec(void *ud, const struct chunk_rec *rec)
{
    if (rec->tag == CHUNK_STEP)
        sq_step_keep(ud, &rec->step);
    return 0;
}

static int sq_list_steps(struct store *base, const char *exec_id, store_step_cb cb, void *ud,
                         struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    struct sq_steps l = {0};
    struct sq_reader *r;
    sqlite3_stmt *st;
    int rc;

    rc = sq_reader_stmt(s, R_CHUNKS, &r, &st, err);
    if (rc)
        return rc;
    sq_text(st, 1, exec_id);
    rc = sq_records(s, r, st, exec_id, "listing steps", sq_step_rec, &l, err);
    sq_reader_put(s, r);
    if (rc == 0 && l.n > 1)
        qsort(l.v, (size_t)l.n, sizeof(*l.v), sq_step_cmp);
    for (int i = 0; rc == 0 && i < l.n; i++) {
        l.v[i].exec_id = exec_id;
        rc = cb(ud, &l.v[i]);
    }
    for (int i = 0; i < l.n; i++)
        sq_step_free(&l.v[i]);
    free(l.v);
    wfo_map_release(&l.by_path);
    return rc;
}

static int sq_list_history(struct store *base, const char *exec_id, int64_t after_seq, int limit,
                           store_history_cb cb, void *ud, struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    struct chunk_page p = {cb, ud, after_seq, limit, 0, 0};
    struct sq_reader *r;
    sqlite3_stmt *st;
    int rc;

    rc = sq_reader_stmt(s, R_HISTORY, &r, &st, err);
    if (rc)
        return rc;
    sq_text(st, 1, exec_id);
    sq_int(st, 2, after_seq);
    rc = sq_records(s, r, st, exec_id, "reading history", chunk_page_rec, &p, err);
    sq_reader_put(s, r);
    return p.full ? 0 : rc;
}

static int sq_list_timers(struct store *base, store_shardset shards, int64_t from, int64_t before,
                          store_timer_cb cb, void *ud, struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    struct sq_cb c = {.fn.timer = cb, .ud = ud};
    struct sq_reader *r;
    sqlite3_stmt *st;
    int rc;

    rc = sq_reader_stmt(s, R_TIMERS, &r, &st, err);
    if (rc)
        return rc;
    sq_int(st, 1, from);
    sq_int(st, 2, before);
    sq_int(st, 3, shards);
    rc = sq_each(s, r->db, st, sq_timer_row, &c, NULL, "listing timers", err);
    sq_reader_put(s, r);
    return rc;
}

static int sq_list_tasks(struct store *base, store_shardset shards, store_task_cb cb, void *ud,
                         struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    struct sq_cb c = {.fn.task = cb, .ud = ud};
    struct sq_reader *r;
    sqlite3_stmt *st;
    int rc;

    rc = sq_reader_stmt(s, R_TASKS, &r, &st, err);
    if (rc)
        return rc;
    sq_int(st, 1, shards);
    rc = sq_each(s, r->db, st, sq_task_row, &c, NULL, "listing tasks", err);
    sq_reader_put(s, r);
    return rc;
}

/* ---- diagnostics (sqlite.h) ---- */

int store_sqlite_query(struct store *base, const char *sql, char *out, size_t size,
                       struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    sqlite3_stmt *st = NULL;
    size_t len = 0;
    int rc;

    wfo_assert(size > 0);
    out[0] = '\0';
    pthread_mutex_lock(&s->wmu);
    rc = sqlite3_prepare_v2(s->w, sql, -1, &st, NULL);
    while (rc == SQLITE_OK && (rc = sq_step(st)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        for (int i = 0; i < sqlite3_column_count(st) && len < size; i++) {
            const char *v = sq_col_text(st, i);
            int n = snprintf(out + len, size - len, "%s%s", i ? "|" : "", v ? v : "");
            len += n > 0 ? (size_t)n : 0;
        }
        if (len < size)
            len += (size_t)snprintf(out + len, size - len, "\n");
    }
    if (rc == SQLITE_DONE)
        rc = len < size ? 0
                        : wfo_error_set(err, WFO_ETOOBIG, "query result is over %zu bytes", size);
    else
        rc = sq_fail(s, s->w, err, "running '%s'", sql);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

static void sq_set_pool_size(struct store *base, int n)
{
    struct sq_store *s = sq_store(base);
    pthread_mutex_lock(&s->pmu);
    s->max_readers = n < 1 ? 1 : n > SQ_READERS_MAX ? SQ_READERS_MAX : n;
    pthread_mutex_unlock(&s->pmu);
}

static int sq_list_expired(struct store *base, int64_t before, int limit, store_exec_cb cb,
                           void *ud, struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    struct sq_cb c = {.fn.exec = cb, .ud = ud, .err = err};
    struct sq_reader *r;
    sqlite3_stmt *st = NULL;
    int rc = sq_reader_get(s, &r, err);
    if (rc)
        return rc;
    if (sq_reader_prep(s, r, R_CHUNKS_LAST, &c.chunks, err) != 0) {
        sq_reader_put(s, r);
        return err->code;
    }
    if (sq_prepare(r->db, sq_expired_sql, &st) != SQLITE_OK) {
        rc = sq_fail(s, r->db, err, "listing expired executions");
    } else {
        sqlite3_bind_int64(st, 1, before);
        sqlite3_bind_int(st, 2, limit);
        rc = sq_each(s, r->db, st, sq_exec_row, &c, NULL, "listing expired executions", err);
        sqlite3_finalize(st);
    }
    sq_reader_put(s, r);
    return rc;
}

static int sq_delete_workflow(struct store *base, const char *ns, const char *name,
                              struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    sqlite3_stmt *st;
    int rc, b = 0;

    pthread_mutex_lock(&s->wmu);
    rc = sq_begin(s, "deleting a workflow", err);
    if (rc)
        goto out;
    st = s->wst[W_WF_RUNNING];
    sq_text(st, 1, ns);
    sq_text(st, 2, name);
    rc = sq_step(st);
    if (rc == SQLITE_ROW) {
        rc = wfo_error_set(err, WFO_ECONFLICT,
                           "workflow '%s' has a running execution ('%s'): cancel or terminate it "
                           "first",
                           name, sq_col_text(st, 0));
        sq_done(st);
        goto out;
    }
    sq_done(st);
    if (rc != SQLITE_DONE) {
        rc = sq_fail(s, s->w, err, "reading executions of workflow '%s'", name);
        goto out;
    }
    st = s->wst[W_WF_DEL];
    b |= sq_text(st, 1, ns);
    b |= sq_text(st, 2, name);
    rc = sq_wstep(s, st, b, err, "deleting workflow '%s'", name);
    if (rc == 0 && sqlite3_changes(s->w) == 0)
        rc = wfo_error_set(err, WFO_ENOTFOUND, "workflow '%s' not found", name);
    if (rc == 0)
        rc = sq_commit(s, "deleting a workflow", err);
out:
    sq_rollback(s);
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

/* The key is drawn once from the CSPRNG by whichever process gets here
 * first (INSERT OR IGNORE inside BEGIN IMMEDIATE), and read back by all. */
static int sq_server_key(struct store *base, unsigned char *out, size_t size, struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    sqlite3_stmt *st = NULL;
    unsigned char fresh[64];
    int rc;

    wfo_assert(size <= sizeof(fresh));
    wfo_random_bytes(fresh, size);
    pthread_mutex_lock(&s->wmu);
    rc = sqlite3_exec(s->w, SQ_META_SCHEMA, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        rc = sq_fail(s, s->w, err, "creating the meta table");
        goto out;
    }
    rc = sq_begin(s, "making the server key", err);
    if (rc)
        goto out;
    rc = sqlite3_prepare_v2(
        s->w, "INSERT OR IGNORE INTO meta (key, value) VALUES ('server_key', ?)", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob(st, 1, fresh, (int)size, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK)
        rc = sq_step(st);
    sqlite3_finalize(st);
    st = NULL;
    if (rc != SQLITE_DONE) {
        rc = sq_fail(s, s->w, err, "writing the server key");
        goto out;
    }
    rc = sqlite3_prepare_v2(s->w, "SELECT value FROM meta WHERE key = 'server_key'", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sq_step(st);
    if (rc != SQLITE_ROW) {
        rc = sq_fail(s, s->w, err, "reading the server key");
        goto out;
    }
    if (sqlite3_column_bytes(st, 0) < (int)size) {
        rc = wfo_error_set(err, WFO_ESTORE, "the store's server key is shorter than %zu bytes",
                           size);
        goto out;
    }
    memcpy(out, sqlite3_column_blob(st, 0), size);
    sqlite3_finalize(st);
    st = NULL;
    rc = sq_commit(s, "making the server key", err);
out:
    sqlite3_finalize(st);
    sq_rollback(s);
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

/* ---- nodes: the servers that share the store (a cluster) ---- */

/* Like meta, made when first needed, so that a store made by an older wfo
 * gets it without a new schema version. */
#define SQ_NODES_SCHEMA                                                                            \
    "CREATE TABLE IF NOT EXISTS nodes (id TEXT PRIMARY KEY NOT NULL, url TEXT,"                    \
    " started_at INTEGER NOT NULL, seen_at INTEGER NOT NULL);"

/* Nodes not seen for this long are deleted by the next beat. */
#define SQ_NODE_FORGET_MS (3600 * 1000)

static int sq_beat_node(struct store *base, const struct store_node *n, struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    sqlite3_stmt *st = NULL;
    int rc;

    if (!n->id || !*n->id)
        return wfo_error_set(err, WFO_EINVAL, "a node needs an id");
    pthread_mutex_lock(&s->wmu);
    rc = sqlite3_exec(s->w, SQ_NODES_SCHEMA, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        rc = sq_fail(s, s->w, err, "creating the nodes table");
        goto out;
    }
    rc = sq_begin(s, "recording a node", err);
    if (rc)
        goto out;
    rc = sq_prepare(s->w,
                    "INSERT INTO nodes (id, url, started_at, seen_at) VALUES (?1, ?2, ?3, ?4)"
                    " ON CONFLICT (id) DO UPDATE SET url = excluded.url,"
                    " seen_at = excluded.seen_at",
                    &st);
    if (rc == SQLITE_OK) {
        int b = sq_text(st, 1, n->id);
        b |= sq_text(st, 2, n->url);
        b |= sq_int(st, 3, n->started_at);
        b |= sq_int(st, 4, n->seen_at);
        rc = sq_wstep(s, st, b, err, "recording node '%s'", n->id);
    } else {
        rc = sq_fail(s, s->w, err, "recording node '%s'", n->id);
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc == 0 && n->seen_at > SQ_NODE_FORGET_MS) {
        rc = sq_prepare(s->w, "DELETE FROM nodes WHERE seen_at < ?1", &st);
        if (rc == SQLITE_OK) {
            int b = sq_int(st, 1, n->seen_at - SQ_NODE_FORGET_MS);
            rc = sq_wstep(s, st, b, err, "forgetting old nodes");
        } else {
            rc = sq_fail(s, s->w, err, "forgetting old nodes");
        }
        sqlite3_finalize(st);
    }
    if (rc == 0)
        rc = sq_commit(s, "recording a node", err);
out:
    sq_rollback(s);
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

static int sq_list_nodes(struct store *base, int64_t since, store_node_cb cb, void *ud,
                         struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    sqlite3_stmt *st = NULL;
    int rc;

    pthread_mutex_lock(&s->wmu);
    rc = sqlite3_exec(s->w, SQ_NODES_SCHEMA, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sq_prepare(s->w,
                        "SELECT id, url, started_at, seen_at FROM nodes WHERE seen_at >= ?1"
                        " ORDER BY id",
                        &st);
    if (rc != SQLITE_OK) {
        rc = sq_fail(s, s->w, err, "listing the nodes");
        goto out;
    }
    sq_int(st, 1, since);
    while ((rc = sq_step(st)) == SQLITE_ROW) {
        struct store_node row = {sq_col_text(st, 0), sq_col_text(st, 1), sq_col_int(st, 2),
                                 sq_col_int(st, 3)};
        if ((rc = cb(ud, &row)) != 0)
            goto out;
    }
    rc = rc == SQLITE_DONE ? 0 : sq_fail(s, s->w, err, "listing the nodes");
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

/* ---- events and signals: the ops ---- */

static int sq_event_get(struct sq_store *s, const char *ns, const char *id, store_event_cb cb,
                        void *ud, int *found, struct wfo_error *err)
{
    sqlite3_stmt *st = s->wst[W_EVENT_GET];
    struct store_event row;
    int rc;

    *found = 0;
    sq_text(st, 1, ns);
    sq_text(st, 2, id);
    rc = sq_step(st);
    if (rc == SQLITE_ROW) {
        *found = 1;
        sq_event_read(st, &row);
        rc = cb ? cb(ud, &row) : 0;
    } else if (rc == SQLITE_DONE) {
        rc = 0;
    } else {
        rc = sq_fail(s, s->w, err, "reading event '%s'", id);
    }
    sq_done(st);
    return rc;
}

static int sq_put_event(struct store *base, const struct store_event *ev, int *created,
                        store_event_cb cb, void *ud, struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    struct store_event row = *ev;
    int rc, found = 0;

    *created = 0;
    if (!ev->namespace || !ev->id || !ev->type)
        return wfo_error_set(err, WFO_EINVAL, "event to store lacks a namespace, id or type");
    pthread_mutex_lock(&s->wmu);
    rc = sq_begin(s, "storing an event", err);
    if (rc == 0)
        rc = sq_event_get(s, ev->namespace, ev->id, cb, ud, &found, err);
    if (rc == 0 && !found) {
        if (!row.published_at)
            row.published_at = wfo_now_ms();
        if (!row.time)
            row.time = row.published_at;
        rc = sq_put_event_row(s, &row, err);
        if (rc == 0)
            row.seq = sqlite3_last_insert_rowid(s->w);
        if (rc == 0 && ev->outbox) {
            /* in the event's transaction (SPEC 2.5 "Outbound") */
            struct store_outbox o = {.event_id = row.id,
                                     .namespace = row.namespace,
                                     .type = row.type,
                                     .key = row.key,
                                     .event = ev->outbox,
                                     .time = row.published_at};
            rc = sq_put_outbox(s, &o, err);
        }
        if (rc == 0)
            rc = sq_commit(s, "storing an event", err);
        if (rc == 0) {
            *created = 1;
            rc = cb ? cb(ud, &row) : 0;
        }
    } else if (rc == 0) {
        rc = sq_commit(s, "storing an event", err);
    }
    sq_rollback(s);
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

static int sq_find_events(struct store *base, const char *ns, const char *type, const char *key,
                          int64_t after, const char *exec_id, int limit, store_event_cb cb,
                          void *ud, struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    struct sq_cb c = {.fn.event = cb, .ud = ud};
    struct sq_reader *r;
    sqlite3_stmt *st;
    int rc;

    if (!type) { /* every event since `after`, newest first (store.h) */
        rc = sq_reader_stmt(s, R_EVENTS_RECENT, &r, &st, err);
        if (rc)
            return rc;
        sq_int(st, 1, after);
        sq_int(st, 2, limit > 0 ? limit : -1);
        rc = sq_each(s, r->db, st, sq_event_row, &c, NULL, "listing recent events", err);
        sq_reader_put(s, r);
        return rc;
    }
    rc = sq_reader_stmt(s, R_EVENTS_FIND, &r, &st, err);
    if (rc)
        return rc;
    sq_text(st, 1, ns);
    sq_text(st, 2, type);
    sq_text(st, 3, key);
    sq_int(st, 4, after);
    sq_text(st, 5, exec_id);
    sq_int(st, 6, limit > 0 ? limit : -1);
    rc = sq_each(s, r->db, st, sq_event_row, &c, NULL, "finding events", err);
    sq_reader_put(s, r);
    return rc;
}

static int sq_put_signal(struct store *base, const struct store_signal *sg, struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    sqlite3_stmt *st;
    int rc, b = 0;

    if (!sg->id || !sg->exec_id || !sg->name)
        return wfo_error_set(err, WFO_EINVAL, "signal to store lacks an id, execution or name");
    pthread_mutex_lock(&s->wmu);
    rc = sq_begin(s, "queueing a signal", err);
    if (rc)
        goto out;
    if (sg->owner) {
        int k = store_shard_of(sg->exec_id);
        int64_t epochs[STORE_SHARDS] = {0};
        epochs[k] = sg->epoch;
        rc =
            sq_fence_shards(s, sg->owner, (store_shardset)1 << k, epochs, "queueing a signal", err);
        if (rc)
            goto out;
    }
    st = s->wst[W_SIGNAL_EXEC];
    sq_text(st, 1, sg->exec_id);
    rc = sq_step(st);
    if (rc == SQLITE_DONE) {
        rc = wfo_error_set(err, WFO_ENOTFOUND, "execution '%s' not found", sg->exec_id);
    } else if (rc == SQLITE_ROW) {
        const char *status = sq_col_text(st, 0);
        rc = 0;
        if (!status || (strcmp(status, "running") != 0 && strcmp(status, "paused") != 0))
            rc = wfo_error_set(err, WFO_ESTATE, "execution '%s' has ended (%s)", sg->exec_id,
                               status ? status : "?");
    } else {
        rc = sq_fail(s, s->w, err, "reading execution '%s'", sg->exec_id);
    }
    sq_done(st);
    if (rc)
        goto out;
    st = s->wst[W_SIGNAL_INSERT];
    b |= sq_text(st, 1, sg->id);
    b |= sq_text(st, 2, sg->exec_id);
    b |= sq_text(st, 3, sg->name);
    b |= sq_text(st, 4, sg->data);
    b |= sq_int(st, 5, sg->time);
    b |= sq_int(st, 6, store_shard_of(sg->exec_id));
    rc = sq_wstep(s, st, b, err, "writing signal '%s'", sg->id);
    if (rc == 0)
        rc = sq_commit(s, "queueing a signal", err);
out:
    sq_rollback(s);
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

static int sq_find_signals(struct store *base, const char *exec_id, const char *name, int limit,
                           store_signal_cb cb, void *ud, struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    struct sq_cb c = {.fn.signal = cb, .ud = ud};
    struct sq_reader *r;
    sqlite3_stmt *st;
    int rc;

    rc = sq_reader_stmt(s, R_SIGNALS_FIND, &r, &st, err);
    if (rc)
        return rc;
    sq_text(st, 1, exec_id);
    sq_text(st, 2, name);
    sq_int(st, 3, limit > 0 ? limit : -1);
    rc = sq_each(s, r->db, st, sq_signal_row, &c, NULL, "finding signals", err);
    sq_reader_put(s, r);
    return rc;
}

/* ---- the outbox ---- */

static int sq_outbox_row(sqlite3_stmt *st, const struct sq_cb *cb)
{
    struct store_outbox r;

    r.seq = sq_col_int(st, 0);
    r.event_id = sq_col_text(st, 1);
    r.namespace = sq_col_text(st, 2);
    r.type = sq_col_text(st, 3);
    r.key = sq_col_text(st, 4);
    r.exec_id = sq_col_text(st, 5);
    r.event = sq_col_text(st, 6);
    r.time = sq_col_int(st, 7);
    return cb->fn.outbox(cb->ud, &r);
}

static int sq_list_outbox(struct store *base, const char *ns, int64_t after_seq, int limit,
                          store_outbox_cb cb, void *ud, struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    struct sq_cb c = {.fn.outbox = cb, .ud = ud};
    struct sq_reader *r;
    sqlite3_stmt *st;
    int rc;

    rc = sq_reader_stmt(s, R_OUTBOX, &r, &st, err);
    if (rc)
        return rc;
    sq_text(st, 1, ns);
    sq_int(st, 2, after_seq);
    sq_int(st, 3, limit > 0 ? limit : -1);
    rc = sq_each(s, r->db, st, sq_outbox_row, &c, NULL, "reading the outbox", err);
    sq_reader_put(s, r);
    return rc;
}

static int sq_outbox_seq(struct store *base, const char *ns, const char *event_id, int64_t *seq,
                         struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    struct sq_reader *r;
    sqlite3_stmt *st;
    int rc;

    *seq = 0;
    rc = sq_reader_stmt(s, event_id ? R_OUTBOX_ID : R_OUTBOX_LAST, &r, &st, err);
    if (rc)
        return rc;
    sq_text(st, 1, ns);
    if (event_id)
        sq_text(st, 2, event_id);
    rc = sq_step(st);
    if (rc == SQLITE_ROW) {
        *seq = sq_col_int(st, 0);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = wfo_error_set(err, WFO_ENOTFOUND, "event '%s' is not in the outbox",
                           event_id ? event_id : "");
    } else {
        rc = sq_fail(s, r->db, err, "reading the outbox");
    }
    sq_done(st);
    sq_reader_put(s, r);
    return rc;
}

static int sq_delete_outbox(struct store *base, int64_t before, int limit, int *n,
                            struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    sqlite3_stmt *st;
    int rc, b = 0;

    *n = 0;
    pthread_mutex_lock(&s->wmu);
    st = s->wst[W_OUTBOX_DEL];
    b |= sq_int(st, 1, before);
    b |= sq_int(st, 2, limit > 0 ? limit : -1);
    rc = sq_wstep(s, st, b, err, "deleting old outbox rows");
    if (rc == 0)
        *n = sqlite3_changes(s->w);
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

/* ---- webhook subscriptions ---- */

static void sq_sub_read(sqlite3_stmt *st, struct store_subscription *r)
{
    r->id = sq_col_text(st, 0);
    r->namespace = sq_col_text(st, 1);
    r->url = sq_col_text(st, 2);
    r->types = sq_col_text(st, 3);
    r->workflow = sq_col_text(st, 4);
    r->secret = sq_col_text(st, 5);
    r->created_at = sq_col_int(st, 6);
    r->cursor = sq_col_int(st, 7);
    r->status = sq_col_text(st, 8);
    r->failures = (int)sq_col_int(st, 9);
    r->next_attempt_at = sq_col_int(st, 10);
    r->last_error = sq_col_text(st, 11);
    r->last_delivery_at = sq_col_int(st, 12);
    r->delivered = sq_col_int(st, 13);
}

static int sq_sub_row(sqlite3_stmt *st, const struct sq_cb *cb)
{
    struct store_subscription r;

    sq_sub_read(st, &r);
    return cb->fn.sub ? cb->fn.sub(cb->ud, &r) : 0;
}

static int sq_put_subscription(struct store *base, const struct store_subscription *sub,
                               store_subscription_cb cb, void *ud, struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    sqlite3_stmt *st;
    int rc, b = 0;

    if (!sub->id || !sub->namespace || !sub->url || !sub->types || !sub->secret)
        return wfo_error_set(err, WFO_EINVAL,
                             "subscription to store lacks an id, namespace, url, types or secret");
    pthread_mutex_lock(&s->wmu);
    rc = sq_begin(s, "adding a subscription", err);
    if (rc)
        goto out;
    st = s->wst[W_SUB_INSERT];
    b |= sq_text(st, 1, sub->id);
    b |= sq_text(st, 2, sub->namespace);
    b |= sq_text(st, 3, sub->url);
    b |= sq_text(st, 4, sub->types);
    b |= sq_text(st, 5, sub->workflow);
    b |= sq_text(st, 6, sub->secret);
    b |= sq_int(st, 7, sub->created_at);
    rc = b == SQLITE_OK ? sq_run(st) : b;
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        sq_done(st);
        rc = wfo_error_set(err, WFO_ECONFLICT, "subscription '%s' exists", sub->id);
        goto out;
    }
    if (rc != SQLITE_OK) {
        rc = sq_fail(s, s->w, err, "writing subscription '%s'", sub->id);
        sq_done(st);
        goto out;
    }
    sq_done(st);
    st = s->wst[W_SUB_GET];
    sq_text(st, 1, sub->id);
    rc = sq_step(st);
    if (rc == SQLITE_ROW) {
        struct store_subscription row;
        sq_sub_read(st, &row);
        rc = sq_commit(s, "adding a subscription", err);
        if (rc == 0 && cb)
            rc = cb(ud, &row);
    } else {
        rc = sq_fail(s, s->w, err, "reading subscription '%s'", sub->id);
    }
    sq_done(st);
out:
    sq_rollback(s);
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

static int sq_get_subscription(struct store *base, const char *ns, const char *id,
                               store_subscription_cb cb, void *ud, struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    struct sq_cb c = {.fn.sub = cb, .ud = ud};
    struct sq_reader *r;
    sqlite3_stmt *st;
    int rc, n = 0;

    rc = sq_reader_stmt(s, R_SUB, &r, &st, err);
    if (rc)
        return rc;
    sq_text(st, 1, id);
    if (ns)
        sq_text(st, 2, ns);
    rc = sq_each(s, r->db, st, sq_sub_row, &c, &n, "reading a subscription", err);
    sq_reader_put(s, r);
    if (rc == 0 && n == 0)
        rc = wfo_error_set(err, WFO_ENOTFOUND, "subscription '%s' not found", id ? id : "");
    return rc;
}

static int sq_list_subscriptions(struct store *base, const char *ns, store_subscription_cb cb,
                                 void *ud, struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    struct sq_cb c = {.fn.sub = cb, .ud = ud};
    struct sq_reader *r;
    sqlite3_stmt *st;
    int rc;

    rc = sq_reader_stmt(s, ns ? R_SUBS : R_SUBS_ALL, &r, &st, err);
    if (rc)
        return rc;
    if (ns)
        sq_text(st, 1, ns);
    rc = sq_each(s, r->db, st, sq_sub_row, &c, NULL, "listing subscriptions", err);
    sq_reader_put(s, r);
    return rc;
}

static int sq_delete_subscription(struct store *base, const char *ns, const char *id,
                                  struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    sqlite3_stmt *st;
    int rc, b = 0;

    pthread_mutex_lock(&s->wmu);
    st = s->wst[W_SUB_DEL];
    b |= sq_text(st, 1, id);
    b |= sq_text(st, 2, ns);
    rc = sq_wstep(s, st, b, err, "deleting subscription '%s'", id ? id : "");
    if (rc == 0 && sqlite3_changes(s->w) == 0)
        rc = wfo_error_set(err, WFO_ENOTFOUND, "subscription '%s' not found", id ? id : "");
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

/* After an UPDATE guarded by cursor < seq that changed nothing: was the
 * subscription gone (WFO_ENOTFOUND) or the row done already (WFO_ECONFLICT)? */
static int sq_sub_unchanged(struct sq_store *s, const char *id, int64_t seq, struct wfo_error *err)
{
    sqlite3_stmt *st = s->wst[W_SUB_EXISTS];
    int rc;

    sq_text(st, 1, id);
    rc = sq_step(st);
    if (rc == SQLITE_ROW)
        rc = wfo_error_set(err, WFO_ECONFLICT,
                           "subscription '%s' is past outbox seq %" PRId64 " already", id, seq);
    else if (rc == SQLITE_DONE)
        rc = wfo_error_set(err, WFO_ENOTFOUND, "subscription '%s' not found", id);
    else
        rc = sq_fail(s, s->w, err, "reading subscription '%s'", id);
    sq_done(st);
    return rc;
}

static int sq_subscription_delivered(struct store *base, const char *id, int64_t seq, int delivered,
                                     int64_t at, struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    sqlite3_stmt *st;
    int rc, b = 0;

    if (!id)
        return wfo_error_set(err, WFO_EINVAL, "no subscription id");
    pthread_mutex_lock(&s->wmu);
    st = s->wst[W_SUB_DELIVERED];
    b |= sq_text(st, 1, id);
    b |= sq_int(st, 2, seq);
    b |= sq_int(st, 3, delivered ? 1 : 0);
    b |= sq_time(st, 4, at);
    rc = sq_wstep(s, st, b, err, "moving the cursor of subscription '%s'", id);
    if (rc == 0 && sqlite3_changes(s->w) == 0)
        rc = sq_sub_unchanged(s, id, seq, err);
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

static int sq_subscription_failed(struct store *base, const char *id, int64_t seq, int failures,
                                  const char *status, int64_t next_attempt_at, const char *error,
                                  struct wfo_error *err)
{
    struct sq_store *s = sq_store(base);
    sqlite3_stmt *st;
    int rc, b = 0;

    if (!id || !status)
        return wfo_error_set(err, WFO_EINVAL, "no subscription id or status");
    pthread_mutex_lock(&s->wmu);
    st = s->wst[W_SUB_FAILED];
    b |= sq_text(st, 1, id);
    b |= sq_int(st, 2, seq);
    b |= sq_int(st, 3, failures);
    b |= sq_text(st, 4, status);
    b |= sq_time(st, 5, next_attempt_at);
    b |= sq_text(st, 6, error);
    rc = sq_wstep(s, st, b, err, "recording a failure of subscription '%s'", id);
    if (rc == 0 && sqlite3_changes(s->w) == 0)
        rc = sq_sub_unchanged(s, id, seq, err);
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

const struct store_ops store_sqlite_ops = {
    .name = "sqlite",
    .version = 1,
    .accepts = sq_accepts,
    .open = sq_open,
    .close = sq_close,
    .ping = sq_ping,
    .apply = sq_apply,
    .claim_shards = sq_claim_shards,
    .release_shards = sq_release_shards,
    .list_shards = sq_list_shards,
    .put_workflow = sq_put_workflow,
    .get_workflow = sq_get_workflow,
    .list_workflows = sq_list_workflows,
    .get_exec = sq_get_exec,
    .list_execs = sq_list_execs,
    .list_active_execs = sq_list_active_execs,
    .list_steps = sq_list_steps,
    .list_history = sq_list_history,
    .list_timers = sq_list_timers,
    .list_tasks = sq_list_tasks,
    .delete_workflow = sq_delete_workflow,
    .list_expired = sq_list_expired,
    .set_pool_size = sq_set_pool_size,
    .server_key = sq_server_key,
    .put_event = sq_put_event,
    .find_events = sq_find_events,
    .put_signal = sq_put_signal,
    .find_signals = sq_find_signals,
    .list_outbox = sq_list_outbox,
    .outbox_seq = sq_outbox_seq,
    .delete_outbox = sq_delete_outbox,
    .beat_node = sq_beat_node,
    .list_nodes = sq_list_nodes,
    .put_subscription = sq_put_subscription,
    .get_subscription = sq_get_subscription,
    .list_subscriptions = sq_list_subscriptions,
    .delete_subscription = sq_delete_subscription,
    .subscription_delivered = sq_subscription_delivered,
    .subscription_failed = sq_subscription_failed,
};
