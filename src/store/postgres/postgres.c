/*
 * postgres.c - the PostgreSQL back end of the store (store.h, STYLE
 * "store/"): `postgres://...` or `postgresql://...`, a libpq connection URI.
 * docs/implementation/database_optimization.md ("PostgreSQL") explains the
 * schema, how seq stays in commit order, the fence and the pool.
 *
 * CONNECTIONS
 *
 *   A fixed pool of up to s->max connections (store.pool_size, set by
 *   set_pool_size), opened on first use, each used by one op at a time: an
 *   op takes one under s->mu (waiting on s->cv while all are taken) and
 *   gives it back before it calls the caller's callbacks, which read the
 *   rows of a PGresult it owns. So a callback may call the store again, and
 *   no connection is held while the caller works. Each connection prepares
 *   a statement the first time it runs it (pg_conn.prepared), and every
 *   parameter and every result travels in binary: no escaping, no parsing
 *   of numbers, chunks as raw bytes.
 *
 *   A connection that breaks (CONNECTION_BAD, or SQLSTATE class 08 or
 *   57P01-57P03: the server went away) is closed; the op returns WFO_ESTORE
 *   and the next op connects again. While connecting fails the store waits
 *   s->backoff_ms (100 ms doubling to 2 s, each wait jittered between half
 *   and all of it, so the nodes of a cluster do not reconnect in step)
 *   before it tries again, failing
 *   ops at once in between, so a database that is down costs no thread
 *   more than connect_timeout. A read that meets a connection broken while
 *   idle in the pool (a restarted server) is tried once more on a new one.
 *   Every connection has connect_timeout, TCP keepalives and a
 *   statement_timeout (PG_STATEMENT_TIMEOUT): no op waits forever.
 *
 * INVARIANTS (the numbers of sqlite.c's, which every back end keeps)
 *
 *   1. A batch is all or nothing: one transaction; any failing statement
 *      rolls it back before apply() returns.
 *   2. executions.seq, events.seq and outbox.seq are the commit order of
 *      their inserts. A sequence is not (nextval is taken at insert, commits
 *      may land in another order), so every transaction that inserts such
 *      rows takes the transaction-level advisory lock PG_LOCK_SEQ first and
 *      holds it to its commit: the inserts that assign seq, and the commits,
 *      happen one transaction at a time. A reader whose snapshot sees a row
 *      of seq n sees every row of a smaller seq. The lock is taken after
 *      the batch's other rows are written, so only the seq inserts and the
 *      commit are serialized. Sequences never go back: seq is never reused.
 *   3. A chunk number of an execution is unique (primary key): a doubled
 *      transition fails the batch.
 *   4. Times are stored as given, 0 as NULL; NULL reads back as 0.
 *   5. A read is one statement, so it sees one committed state.
 *   6. Fencing: a batch with an owner reads the shards rows it writes FOR
 *      SHARE inside its transaction and is refused (WFO_EFENCED, rolled
 *      back) unless each names that owner at the epoch the batch holds; a
 *      claim takes the rows FOR UPDATE, so no takeover commits in between.
 *   7. Events are unique per (namespace, id); a consumption (exec_id,
 *      event_id) is unique.
 */
#include "common/compat.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "store/store.h"
#include "store/chunk.h"
#include "common/crypto.h"
#include "common/duration.h"
#include "common/map.h"
#include "common/util.h"

#define PG_SCHEMA_VERSION 8
#define PG_POOL_DEFAULT 4
#define PG_BACKOFF_MIN_MS 100
/* 2 s: with the engine's restart in place (at most 2 s apart), a server
 * is back within about 4 s of its database (issue: within 5 s). */
#define PG_BACKOFF_MAX_MS 2000
#define PG_STATEMENT_TIMEOUT "30s" /* no statement waits longer (a lock, a dead peer) */
/* Transaction-level advisory lock keys ("wfo" and a number). */
#define PG_LOCK_SCHEMA "7825263001" /* creating the schema */
#define PG_LOCK_SEQ "7825263002"    /* invariant 2 */
#define PG_LOCK_WF "7825263003"     /* the workflow registry */
#define PG_PARAMS_MAX 16
#define PG_READY_CHANNEL "wfo_ready" /* listen_ready: NOTIFY on a batch with ready tasks */

/* Type OIDs (pg_type.h, fixed since forever) of the binary parameters. */
#define PG_BYTEA 17
#define PG_INT8 20
#define PG_TEXT 25

/*
 * The schema: sqlite.c's version 6, with BIGINT for INTEGER, BIGSERIAL for
 * AUTOINCREMENT, BYTEA for BLOB. JSON is TEXT, not jsonb: the engine stores
 * the text it serialized and reads it back byte for byte (SPEC: a document
 * is what was written), and jsonb would parse every value on write,
 * reorder keys and drop duplicates, for queries the store never makes.
 * Keys and the columns lists sort by are COLLATE "C": byte order, as in
 * SQLite, whatever the database's locale, and cheaper to compare.
 */
#define PG_C " COLLATE \"C\""
/* What version 7 added: webhook subscriptions (sqlite.c's SQ_V7_SCHEMA)
 * and the nodes of a cluster (sqlite.c makes that table when first
 * needed); for a new database and for the migration from 6. */
#define PG_V7_SCHEMA                                                                               \
    "CREATE TABLE IF NOT EXISTS subscriptions ("                                                   \
    " id TEXT" PG_C " PRIMARY KEY, namespace TEXT" PG_C " NOT NULL, url TEXT NOT NULL,"            \
    " types TEXT NOT NULL, workflow TEXT, secret TEXT NOT NULL, created_at BIGINT NOT NULL,"       \
    " cursor BIGINT NOT NULL, status TEXT NOT NULL DEFAULT 'active',"                              \
    " failures BIGINT NOT NULL DEFAULT 0, next_attempt_at BIGINT, last_error TEXT,"                \
    " last_delivery_at BIGINT, delivered BIGINT NOT NULL DEFAULT 0);"                              \
    "CREATE INDEX IF NOT EXISTS subscriptions_ns ON subscriptions (namespace, cursor);"            \
    "CREATE TABLE IF NOT EXISTS nodes (id TEXT" PG_C " PRIMARY KEY, url TEXT,"                     \
    " started_at BIGINT NOT NULL, seen_at BIGINT NOT NULL);"
/* What version 8 added: an event's CloudEvents attributes that have no
 * column of their own (sqlite.c's SQ_V9_SCHEMA); for a new database and
 * for the migration from 7. */
#define PG_V8_SCHEMA "ALTER TABLE events ADD COLUMN IF NOT EXISTS attrs TEXT;"
static const char pg_schema[] =
    "CREATE TABLE workflows ("
    " namespace TEXT" PG_C " NOT NULL, name TEXT" PG_C " NOT NULL, version BIGINT NOT NULL,"
    " hash TEXT NOT NULL, definition TEXT NOT NULL, created_at BIGINT,"
    " PRIMARY KEY (namespace, name, version));"
    "CREATE TABLE executions ("
    " seq BIGSERIAL PRIMARY KEY, id TEXT" PG_C " UNIQUE NOT NULL,"
    " namespace TEXT" PG_C " NOT NULL, workflow TEXT" PG_C " NOT NULL, version BIGINT NOT NULL,"
    " status TEXT" PG_C " NOT NULL, input TEXT NOT NULL, output TEXT, error TEXT,"
    " compensation TEXT, parent TEXT, state TEXT,"
    " created_at BIGINT, updated_at BIGINT, finished_at BIGINT,"
    " shard BIGINT NOT NULL DEFAULT 0, resume BIGINT NOT NULL DEFAULT 0);"
    "CREATE INDEX executions_ns_seq ON executions (namespace, seq);"
    "CREATE INDEX executions_ns_status_seq ON executions (namespace, status, seq);"
    "CREATE INDEX executions_ns_workflow_seq ON executions (namespace, workflow, seq);"
    "CREATE INDEX executions_ended ON executions (finished_at)"
    " WHERE status NOT IN ('running', 'paused');"
    "CREATE INDEX executions_resume ON executions (seq)"
    " WHERE status IN ('running', 'paused') AND resume = 1;"
    "CREATE TABLE chunks ("
    " exec_id TEXT" PG_C " NOT NULL, n BIGINT NOT NULL, hseq BIGINT NOT NULL,"
    " data BYTEA NOT NULL, PRIMARY KEY (exec_id, n));"
    "CREATE TABLE shards ("
    " shard BIGINT PRIMARY KEY, owner TEXT, epoch BIGINT NOT NULL DEFAULT 0,"
    " lease_until BIGINT NOT NULL DEFAULT 0);"
    "INSERT INTO shards (shard) SELECT generate_series(0, 15);"
    "CREATE TABLE timers ("
    " id TEXT" PG_C " PRIMARY KEY, exec_id TEXT" PG_C " NOT NULL, due_at BIGINT,"
    " kind TEXT NOT NULL, step TEXT, token BIGINT NOT NULL, data TEXT,"
    " shard BIGINT NOT NULL DEFAULT 0);"
    "CREATE INDEX timers_due ON timers (due_at);"
    "CREATE INDEX timers_exec ON timers (exec_id);"
    "CREATE TABLE tasks ("
    " id TEXT" PG_C " PRIMARY KEY, exec_id TEXT" PG_C " NOT NULL,"
    " namespace TEXT" PG_C " NOT NULL, queue TEXT" PG_C " NOT NULL, step TEXT NOT NULL,"
    " attempt BIGINT NOT NULL, status TEXT" PG_C " NOT NULL, lease TEXT, input TEXT,"
    " ready_at BIGINT, leased_until BIGINT, created_at BIGINT,"
    " shard BIGINT NOT NULL DEFAULT 0);"
    "CREATE INDEX tasks_queue ON tasks (queue, status, ready_at);"
    "CREATE INDEX tasks_exec ON tasks (exec_id);"
    "CREATE TABLE events ("
    " seq BIGSERIAL PRIMARY KEY, namespace TEXT" PG_C " NOT NULL, id TEXT" PG_C " NOT NULL,"
    " type TEXT" PG_C " NOT NULL, key TEXT" PG_C ", source TEXT, data TEXT, time BIGINT,"
    " published_at BIGINT NOT NULL, UNIQUE (namespace, id));"
    "CREATE INDEX events_match ON events (namespace, type, key, seq);"
    "CREATE TABLE consumed ("
    " exec_id TEXT" PG_C " NOT NULL, event_id TEXT" PG_C " NOT NULL,"
    " PRIMARY KEY (exec_id, event_id));"
    "CREATE TABLE signals ("
    " seq BIGSERIAL PRIMARY KEY, id TEXT" PG_C " UNIQUE NOT NULL, exec_id TEXT" PG_C " NOT NULL,"
    " name TEXT" PG_C " NOT NULL, data TEXT, time BIGINT, shard BIGINT NOT NULL DEFAULT 0);"
    "CREATE INDEX signals_exec ON signals (exec_id, name, seq);"
    "CREATE TABLE outbox ("
    " seq BIGSERIAL PRIMARY KEY, event_id TEXT" PG_C " NOT NULL,"
    " namespace TEXT" PG_C " NOT NULL, type TEXT NOT NULL, key TEXT, exec_id TEXT,"
    " event TEXT NOT NULL, time BIGINT NOT NULL);"
    "CREATE INDEX outbox_ns ON outbox (namespace, seq);"
    "CREATE INDEX outbox_id ON outbox (namespace, event_id);" PG_V7_SCHEMA PG_V8_SCHEMA;

#define PG_WF_COLS "namespace, name, version, hash, definition, created_at"
#define PG_EXEC_COLS                                                                               \
    "seq, id, namespace, workflow, version, status, input, output, error, compensation, "          \
    "parent, state, created_at, updated_at, finished_at, resume"
#define PG_EVENT_COLS "seq, namespace, id, type, key, source, data, time, published_at, attrs"
#define PG_SUB_COLS                                                                                \
    "id, namespace, url, types, workflow, secret, created_at, cursor, status, failures,"           \
    " next_attempt_at, last_error, last_delivery_at, delivered"
#define PG_SIGNAL_COLS "seq, id, exec_id, name, data, time"
#define PG_OUTBOX_COLS "seq, event_id, namespace, type, key, exec_id, event, time"
#define PG_TIMER_COLS "id, exec_id, due_at, kind, step, token, data"
#define PG_TASK_COLS                                                                               \
    "id, exec_id, namespace, queue, step, attempt, status, lease, input, ready_at, "               \
    "leased_until, created_at"
/* An execution row with its newest chunk (for its state, pg_exec_row). */
#define PG_EXEC_WITH_CHUNK(from)                                                                   \
    "SELECT e.*, c.data FROM (" from ") AS e LEFT JOIN LATERAL (SELECT data FROM chunks"           \
    " WHERE exec_id = e.id ORDER BY n DESC LIMIT 1) AS c ON true"

/* Every statement, prepared on a connection at its first use. The batch's
 * statements take arrays, one element per row, so a batch writes each kind
 * of row with one statement whatever its size. */
enum pg_q {
    Q_PING,
    Q_SEQ_LOCK,
    Q_WF_LOCK,
    Q_FENCE,
    Q_EXEC_INSERT,
    Q_EXEC_UPDATE,
    Q_CHUNKS_INSERT,
    Q_TIMERS_PUT,
    Q_TIMERS_DEL,
    Q_TASKS_PUT,
    Q_TASKS_LEASE,
    Q_TASKS_DEL,
    Q_EVENTS_INSERT,
    Q_CONSUME,
    Q_SIGNALS_DEL,
    Q_OUTBOX_INSERT,
    Q_EXEC_DEL,
    Q_SHARDS_LOCK,
    Q_SHARDS_SET,
    Q_SHARDS_RELEASE,
    Q_SHARDS,
    Q_WF_LATEST,
    Q_WF_VERSION,
    Q_WF_INSERT,
    Q_WF_LIST,
    Q_WF_LIST_ALL,
    Q_WF_RUNNING,
    Q_WF_DEL,
    Q_EXEC,
    Q_EXEC_ACTIVE,
    Q_EXPIRED,
    Q_CHUNKS,
    Q_CHUNKS_LAST,
    Q_HISTORY,
    Q_TIMERS,
    Q_TASKS,
    Q_EVENT_GET,
    Q_EVENTS_FIND,
    Q_EVENTS_FIND_NOKEY,
    Q_EVENTS_RECENT,
    Q_SIGNAL_EXEC,
    Q_SIGNAL_INSERT,
    Q_SIGNALS_FIND,
    Q_OUTBOX,
    Q_OUTBOX_ID,
    Q_OUTBOX_LAST,
    Q_OUTBOX_DEL,
    Q_KEY_PUT,
    Q_KEY_GET,
    Q_NOTIFY_READY,
    Q_NODE_BEAT,
    Q_NODES,
    Q_SUB_INSERT,
    Q_SUB_GET,
    Q_SUBS,
    Q_SUBS_ALL,
    Q_SUB_DEL,
    Q_SUB_DELIVERED,
    Q_SUB_FAILED,
    Q_SUB_EXISTS,
    Q_LIST, /* + a mask of PG_F_* filters: the list queries */
    Q__COUNT = Q_LIST + 32
};

static const char *const pg_sql[Q_LIST] = {
    [Q_PING] = "SELECT value FROM meta WHERE key = 'schema_version'",
    [Q_SEQ_LOCK] = "SELECT pg_advisory_xact_lock(" PG_LOCK_SEQ ")",
    [Q_WF_LOCK] = "SELECT pg_advisory_xact_lock(" PG_LOCK_WF ")",
    /* invariant 6 */
    [Q_FENCE] = "SELECT shard, owner, epoch FROM shards WHERE shard = ANY($1::int8[])"
                " ORDER BY shard FOR SHARE",
    /* new executions in batch order, so seq follows it (invariant 2); the
     * conflict branch sets every column but seq, id and created_at (the
     * state lives in the chunks) */
    [Q_EXEC_INSERT] =
        "INSERT INTO executions (id, namespace, workflow, version, status, input, output, error,"
        " compensation, parent, created_at, updated_at, finished_at, shard, resume)"
        " SELECT id, namespace, workflow, version, status, input, output, error, compensation,"
        " parent, created_at, updated_at, finished_at, shard, resume"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[],"
        " $7::text[], $8::text[], $9::text[], $10::text[], $11::int8[], $12::int8[], $13::int8[],"
        " $14::int8[], $15::int8[]) WITH ORDINALITY AS u(id, namespace, workflow, version, status,"
        " input, output, error, compensation, parent, created_at, updated_at, finished_at, shard,"
        " resume, o) ORDER BY o"
        " ON CONFLICT (id) DO UPDATE SET namespace = excluded.namespace,"
        " workflow = excluded.workflow, version = excluded.version, status = excluded.status,"
        " input = excluded.input, output = excluded.output, error = excluded.error,"
        " compensation = excluded.compensation, parent = excluded.parent, state = NULL,"
        " updated_at = excluded.updated_at, finished_at = excluded.finished_at,"
        " resume = excluded.resume",
    /* rows the engine wrote before: only what can change */
    [Q_EXEC_UPDATE] = "UPDATE executions AS e SET status = u.status, output = u.output,"
                      " error = u.error, compensation = u.compensation, state = NULL,"
                      " updated_at = u.updated_at, finished_at = u.finished_at, resume = u.resume"
                      " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
                      " $6::int8[], $7::int8[], $8::int8[]) AS u(id, status, output, error,"
                      " compensation, updated_at, finished_at, resume) WHERE e.id = u.id",
    /* invariant 3; n 0: after the last one stored (a batch has at most one
     * chunk per execution, so the subquery cannot race itself) */
    [Q_CHUNKS_INSERT] = "INSERT INTO chunks (exec_id, n, hseq, data)"
                        " SELECT u.id, CASE WHEN u.n > 0 THEN u.n ELSE (SELECT coalesce(max(c.n),"
                        " 0) + 1 FROM chunks AS c WHERE c.exec_id = u.id) END, u.hseq, u.data"
                        " FROM unnest($1::text[], $2::int8[], $3::int8[], $4::bytea[])"
                        " AS u(id, n, hseq, data)",
    [Q_TIMERS_PUT] = "INSERT INTO timers (" PG_TIMER_COLS ", shard)"
                     " SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[],"
                     " $5::text[], $6::int8[], $7::text[], $8::int8[])"
                     " ON CONFLICT (id) DO UPDATE SET exec_id = excluded.exec_id,"
                     " due_at = excluded.due_at, kind = excluded.kind, step = excluded.step,"
                     " token = excluded.token, data = excluded.data, shard = excluded.shard",
    [Q_TIMERS_DEL] = "DELETE FROM timers WHERE id = ANY($1::text[])",
    [Q_TASKS_PUT] = "INSERT INTO tasks (" PG_TASK_COLS ", shard)"
                    " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
                    " $5::text[], $6::int8[], $7::text[], $8::text[], $9::text[], $10::int8[],"
                    " $11::int8[], $12::int8[], $13::int8[])"
                    " ON CONFLICT (id) DO UPDATE SET exec_id = excluded.exec_id,"
                    " namespace = excluded.namespace, queue = excluded.queue, step = excluded.step,"
                    " attempt = excluded.attempt, status = excluded.status, lease = excluded.lease,"
                    " input = excluded.input, ready_at = excluded.ready_at,"
                    " leased_until = excluded.leased_until, created_at = excluded.created_at,"
                    " shard = excluded.shard",
    [Q_TASKS_LEASE] = "UPDATE tasks AS t SET status = 'leased', lease = u.lease,"
                      " leased_until = u.until FROM unnest($1::text[], $2::text[], $3::int8[])"
                      " AS u(id, lease, until) WHERE t.id = u.id",
    [Q_TASKS_DEL] = "DELETE FROM tasks WHERE id = ANY($1::text[])",
    [Q_EVENTS_INSERT] = "INSERT INTO events (namespace, id, type, key, source, data, time,"
                        " published_at, attrs) SELECT namespace, id, type, key, source, data,"
                        " time, published_at, attrs FROM unnest($1::text[], $2::text[],"
                        " $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::int8[],"
                        " $9::text[]) WITH ORDINALITY AS u(namespace, id, type, key, source,"
                        " data, time, published_at, attrs, o) ORDER BY o RETURNING seq",
    /* invariant 7: the primary key refuses an event consumed twice */
    [Q_CONSUME] = "INSERT INTO consumed (exec_id, event_id)"
                  " SELECT * FROM unnest($1::text[], $2::text[])",
    [Q_SIGNALS_DEL] = "DELETE FROM signals WHERE id = ANY($1::text[])",
    [Q_OUTBOX_INSERT] = "INSERT INTO outbox (event_id, namespace, type, key, exec_id, event, time)"
                        " SELECT event_id, namespace, type, key, exec_id, event, time"
                        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
                        " $6::text[], $7::int8[]) WITH ORDINALITY AS u(event_id, namespace, type,"
                        " key, exec_id, event, time, o) ORDER BY o",
    /* ended executions with everything they own, in one statement */
    [Q_EXEC_DEL] = "WITH c AS (DELETE FROM chunks WHERE exec_id = ANY($1::text[])),"
                   " t AS (DELETE FROM timers WHERE exec_id = ANY($1::text[])),"
                   " k AS (DELETE FROM tasks WHERE exec_id = ANY($1::text[])),"
                   " n AS (DELETE FROM consumed WHERE exec_id = ANY($1::text[])),"
                   " g AS (DELETE FROM signals WHERE exec_id = ANY($1::text[]))"
                   " DELETE FROM executions WHERE id = ANY($1::text[])",
    [Q_SHARDS_LOCK] =
        "SELECT shard, owner, epoch, lease_until FROM shards ORDER BY shard FOR UPDATE",
    [Q_SHARDS_SET] = "UPDATE shards AS s SET owner = u.owner, epoch = u.epoch,"
                     " lease_until = u.lease FROM unnest($1::int8[], $2::text[], $3::int8[],"
                     " $4::int8[]) AS u(shard, owner, epoch, lease) WHERE s.shard = u.shard",
    [Q_SHARDS_RELEASE] = "UPDATE shards SET lease_until = 0 WHERE shard = ANY($1::int8[])"
                         " AND owner = $2::text",
    [Q_SHARDS] = "SELECT shard, owner, epoch, lease_until FROM shards ORDER BY shard",
    [Q_WF_LATEST] = "SELECT " PG_WF_COLS " FROM workflows WHERE namespace = $1::text"
                    " AND name = $2::text ORDER BY version DESC LIMIT 1",
    [Q_WF_VERSION] = "SELECT " PG_WF_COLS " FROM workflows WHERE namespace = $1::text"
                     " AND name = $2::text AND version = $3::int8",
    [Q_WF_INSERT] = "INSERT INTO workflows (" PG_WF_COLS ") VALUES ($1::text, $2::text,"
                    " $3::int8, $4::text, $5::text, $6::int8)",
    [Q_WF_LIST] = "SELECT DISTINCT ON (name) " PG_WF_COLS " FROM workflows"
                  " WHERE namespace = $1::text ORDER BY name, version DESC",
    [Q_WF_LIST_ALL] = "SELECT DISTINCT ON (namespace, name) " PG_WF_COLS " FROM workflows"
                      " ORDER BY namespace, name, version DESC",
    [Q_WF_RUNNING] = "SELECT id FROM executions WHERE status IN ('running', 'paused')"
                     " AND namespace = $1::text AND workflow = $2::text LIMIT 1",
    [Q_WF_DEL] = "DELETE FROM workflows WHERE namespace = $1::text AND name = $2::text",
    [Q_EXEC] = PG_EXEC_WITH_CHUNK("SELECT " PG_EXEC_COLS " FROM executions WHERE id = $1::text"),
    /* the same expression as executions_resume's WHERE, so it is used */
    [Q_EXEC_ACTIVE] = PG_EXEC_WITH_CHUNK(
        "SELECT " PG_EXEC_COLS " FROM executions WHERE status IN ('running', 'paused')"
        " AND resume = 1 AND ($1::int8 >> shard::int) & 1 = 1") " ORDER BY e.seq",
    /* retention: executions_ended orders the ended ones by when they ended */
    [Q_EXPIRED] = PG_EXEC_WITH_CHUNK("SELECT " PG_EXEC_COLS " FROM executions"
                                     " WHERE status NOT IN ('running', 'paused')"
                                     " AND finished_at < $1::int8 ORDER BY finished_at"
                                     " LIMIT $2::int8") " ORDER BY e.finished_at",
    [Q_CHUNKS] = "SELECT data FROM chunks WHERE exec_id = $1::text ORDER BY n",
    [Q_CHUNKS_LAST] = "SELECT data FROM chunks WHERE exec_id = $1::text ORDER BY n DESC",
    [Q_HISTORY] = "SELECT data FROM chunks WHERE exec_id = $1::text AND hseq > $2::int8"
                  " ORDER BY n",
    [Q_TIMERS] = "SELECT " PG_TIMER_COLS " FROM timers WHERE due_at >= $1::int8"
                 " AND due_at < $2::int8 AND ($3::int8 >> shard::int) & 1 = 1"
                 " ORDER BY due_at, id",
    [Q_TASKS] = "SELECT " PG_TASK_COLS " FROM tasks WHERE status <> 'done'"
                " AND ($1::int8 >> shard::int) & 1 = 1 ORDER BY created_at, id",
    [Q_EVENT_GET] = "SELECT " PG_EVENT_COLS " FROM events WHERE namespace = $1::text"
                    " AND id = $2::text",
    /* two statements, key = $3 and key IS NULL, so that both use
     * events_match (IS NOT DISTINCT FROM would not) */
    [Q_EVENTS_FIND] = "SELECT " PG_EVENT_COLS " FROM events AS e WHERE namespace = $1::text"
                      " AND type = $2::text AND key = $3::text AND published_at >= $4::int8"
                      " AND NOT EXISTS (SELECT 1 FROM consumed AS c WHERE c.exec_id = $5::text"
                      " AND c.event_id = e.id) ORDER BY seq LIMIT $6::int8",
    [Q_EVENTS_FIND_NOKEY] = "SELECT " PG_EVENT_COLS " FROM events AS e WHERE namespace = $1::text"
                            " AND type = $2::text AND key IS NULL AND $3::text IS NULL"
                            " AND published_at >= $4::int8 AND NOT EXISTS (SELECT 1"
                            " FROM consumed AS c WHERE c.exec_id = $5::text"
                            " AND c.event_id = e.id) ORDER BY seq LIMIT $6::int8",
    [Q_EVENTS_RECENT] = "SELECT " PG_EVENT_COLS " FROM events WHERE published_at >= $1::int8"
                        " ORDER BY seq DESC LIMIT $2::int8",
    /* FOR SHARE: the execution cannot end before the signal commits */
    [Q_SIGNAL_EXEC] = "SELECT status FROM executions WHERE id = $1::text FOR SHARE",
    [Q_SIGNAL_INSERT] = "INSERT INTO signals (id, exec_id, name, data, time, shard)"
                        " VALUES ($1::text, $2::text, $3::text, $4::text, $5::int8, $6::int8)",
    [Q_SIGNALS_FIND] = "SELECT " PG_SIGNAL_COLS " FROM signals WHERE exec_id = $1::text"
                       " AND name = $2::text ORDER BY seq LIMIT $3::int8",
    [Q_OUTBOX] = "SELECT " PG_OUTBOX_COLS " FROM outbox WHERE namespace = $1::text"
                 " AND seq > $2::int8 ORDER BY seq LIMIT $3::int8",
    [Q_OUTBOX_ID] = "SELECT seq FROM outbox WHERE namespace = $1::text AND event_id = $2::text"
                    " ORDER BY seq LIMIT 1",
    [Q_OUTBOX_LAST] = "SELECT coalesce(max(seq), 0) FROM outbox WHERE namespace = $1::text",
    /* retention: among the $2 oldest rows (time grows with seq), those
     * older than $1 */
    /* retention: among the $2 oldest rows (time grows with seq) that no
     * subscription of their namespace holds (store.h C2: above its lowest
     * cursor), those older than $1 */
    [Q_OUTBOX_DEL] = "DELETE FROM outbox WHERE seq IN (SELECT o.seq FROM outbox AS o WHERE o.seq"
                     " <= coalesce((SELECT min(c.cursor) FROM subscriptions AS c"
                     " WHERE c.namespace = o.namespace), 9223372036854775807)"
                     " ORDER BY o.seq LIMIT $2::int8) AND time < $1::int8",
    [Q_KEY_PUT] = "INSERT INTO meta (key, value) VALUES ('server_key', $1::bytea)"
                  " ON CONFLICT (key) DO NOTHING",
    [Q_KEY_GET] = "SELECT value FROM meta WHERE key = 'server_key'",
    [Q_NOTIFY_READY] = "SELECT pg_notify('" PG_READY_CHANNEL "', x) FROM unnest($1::text[]) AS x",
    /* nodes not seen for an hour ($5) go with a beat */
    [Q_NODE_BEAT] = "WITH gone AS (DELETE FROM nodes WHERE seen_at < $5::int8)"
                    " INSERT INTO nodes (id, url, started_at, seen_at)"
                    " VALUES ($1::text, $2::text, $3::int8, $4::int8) ON CONFLICT (id)"
                    " DO UPDATE SET url = excluded.url, seen_at = excluded.seen_at",
    [Q_NODES] = "SELECT id, url, started_at, seen_at FROM nodes WHERE seen_at >= $1::int8"
                " ORDER BY id",
    /* C1: the cursor starts at the namespace's last row */
    [Q_SUB_INSERT] =
        "INSERT INTO subscriptions (id, namespace, url, types, workflow, secret,"
        " created_at, cursor) VALUES ($1::text, $2::text, $3::text, $4::text,"
        " $5::text, $6::text, $7::int8, (SELECT coalesce(max(seq), 0) FROM outbox"
        " WHERE namespace = $2::text)) ON CONFLICT (id) DO NOTHING RETURNING " PG_SUB_COLS,
    [Q_SUB_GET] = "SELECT " PG_SUB_COLS " FROM subscriptions WHERE id = $1::text"
                  " AND ($2::text IS NULL OR namespace = $2::text)",
    [Q_SUBS] = "SELECT " PG_SUB_COLS " FROM subscriptions WHERE namespace = $1::text"
               " ORDER BY created_at, id",
    [Q_SUBS_ALL] = "SELECT " PG_SUB_COLS " FROM subscriptions ORDER BY namespace, created_at, id",
    [Q_SUB_DEL] = "DELETE FROM subscriptions WHERE id = $1::text AND namespace = $2::text",
    /* C1: only forward */
    [Q_SUB_DELIVERED] = "UPDATE subscriptions SET cursor = $2::int8,"
                        " status = CASE WHEN $3::int8 <> 0 THEN 'active' ELSE status END,"
                        " failures = CASE WHEN $3::int8 <> 0 THEN 0 ELSE failures END,"
                        " next_attempt_at = CASE WHEN $3::int8 <> 0 THEN NULL"
                        " ELSE next_attempt_at END,"
                        " last_error = CASE WHEN $3::int8 <> 0 THEN NULL ELSE last_error END,"
                        " delivered = delivered + $3::int8,"
                        " last_delivery_at = CASE WHEN $3::int8 <> 0 THEN $4::int8"
                        " ELSE last_delivery_at END WHERE id = $1::text AND cursor < $2::int8",
    [Q_SUB_FAILED] = "UPDATE subscriptions SET failures = $3::int8, status = $4::text,"
                     " next_attempt_at = $5::int8, last_error = $6::text"
                     " WHERE id = $1::text AND cursor < $2::int8",
    [Q_SUB_EXISTS] = "SELECT 1 FROM subscriptions WHERE id = $1::text",
};

/* The filters of a list query, as bits of its statement's index. */
enum {
    PG_F_WORKFLOW = 1,
    PG_F_STATUS = 2,
    PG_F_AFTER = 4,
    PG_F_BEFORE = 8,
    PG_F_SEQ = 16,
};

/* The list queries' parameters, the same for every variant (so that one
 * binding serves them all): their types are given at prepare time, as a
 * variant leaves some unused. */
static const Oid pg_list_types[7] = {PG_TEXT, PG_TEXT, PG_TEXT, PG_INT8, PG_INT8, PG_INT8, PG_INT8};

struct pg_conn {
    PGconn *c; /* NULL: not connected */
    int busy;  /* taken by an op; under s->mu */
    int fresh; /* connected by the op that holds it */
    unsigned char prepared[Q__COUNT];
};

struct pg_store {
    struct store base; /* first: store.h */
    char *url;         /* what libpq gets */
    char *label;       /* the URL without its password, for messages */

    pthread_mutex_t mu; /* guards the pool below */
    pthread_cond_t cv;  /* a connection became free */
    int max;            /* store.pool_size */
    int64_t down_until; /* connecting failed: fail at once until then (ms) */
    int backoff_ms;     /* the next wait after a failed connect */
    char down_msg[256]; /* why the last connect failed */
    struct pg_conn conns[STORE_POOL_MAX];

    /* listen_ready: a connection of its own, outside the pool, in a thread */
    pthread_t listener;
    int listening;
    atomic_int listen_stop;
    pthread_mutex_t listen_mu; /* with listen_cond: the first LISTEN tried */
    pthread_cond_t listen_cond;
    int listen_tried;
    store_ready_cb ready_cb;
    void *ready_ud;
};

static struct pg_store *pg_store(struct store *s)
{
    wfo_assert(s && s->ops == &store_postgres_ops);
    return (struct pg_store *)s;
}

/* ---- parameters: every one in binary ---- */

struct pg_params {
    int n;
    const char *v[PG_PARAMS_MAX];
    int len[PG_PARAMS_MAX];
    int fmt[PG_PARAMS_MAX];
    unsigned char num[PG_PARAMS_MAX][8];
    struct wfo_buf arr[PG_PARAMS_MAX]; /* arrays, set into v at pg_params_seal */
    int is_arr[PG_PARAMS_MAX];
};

static void pg_params_init(struct pg_params *p)
{
    memset(p, 0, sizeof(*p));
    for (int i = 0; i < PG_PARAMS_MAX; i++)
        wfo_buf_init(&p->arr[i], 0);
}

static void pg_params_release(struct pg_params *p)
{
    for (int i = 0; i < PG_PARAMS_MAX; i++)
        wfo_buf_release(&p->arr[i]);
}

static void pg_params_reset(struct pg_params *p)
{
    for (int i = 0; i < PG_PARAMS_MAX; i++) {
        wfo_buf_reset(&p->arr[i]);
        p->is_arr[i] = 0;
    }
    p->n = 0;
}

static int pg_param(struct pg_params *p)
{
    wfo_assert(p->n < PG_PARAMS_MAX);
    p->fmt[p->n] = 1;
    return p->n++;
}

static void pg_put_be(unsigned char *out, uint64_t v, int size)
{
    for (int i = size - 1; i >= 0; i--, v >>= 8)
        out[i] = (unsigned char)v;
}

/* A text parameter; NULL is SQL NULL. Borrowed until the statement runs. */
static void pg_p_text(struct pg_params *p, const char *v)
{
    int i = pg_param(p);
    p->v[i] = v;
    p->len[i] = v ? (int)strlen(v) : 0;
}

static void pg_p_bytes(struct pg_params *p, const void *v, size_t len)
{
    int i = pg_param(p);
    p->v[i] = v;
    p->len[i] = (int)len;
}

static void pg_p_int(struct pg_params *p, int64_t v)
{
    int i = pg_param(p);
    pg_put_be(p->num[i], (uint64_t)v, 8);
    p->v[i] = (const char *)p->num[i];
    p->len[i] = 8;
}

static void pg_p_null(struct pg_params *p)
{
    int i = pg_param(p);
    p->v[i] = NULL;
}

/* A limit: 0 or less is none (LIMIT NULL). */
static void pg_p_limit(struct pg_params *p, int64_t limit)
{
    if (limit > 0)
        pg_p_int(p, limit);
    else
        pg_p_null(p);
}

static void pg_add_be(struct wfo_buf *b, uint64_t v, int size)
{
    unsigned char tmp[8];
    pg_put_be(tmp, v, size);
    wfo_buf_add(b, tmp, (size_t)size);
}

/* An array parameter of n elements of type oid (array_recv's format: the
 * dimensions, then each element as a length, -1 for NULL, and its bytes);
 * the caller adds exactly n elements with pg_el_*. */
static struct wfo_buf *pg_p_array(struct pg_params *p, Oid oid, int n)
{
    int i = pg_param(p);
    struct wfo_buf *b = &p->arr[i];
    p->is_arr[i] = 1;
    pg_add_be(b, n ? 1 : 0, 4); /* dimensions */
    pg_add_be(b, 0, 4);         /* flags (array_recv ignores "has nulls") */
    pg_add_be(b, oid, 4);
    if (n) {
        pg_add_be(b, (uint64_t)n, 4);
        pg_add_be(b, 1, 4); /* lower bound */
    }
    return b;
}

static void pg_el_text(struct wfo_buf *b, const char *v)
{
    if (!v) {
        pg_add_be(b, (uint64_t)-1, 4);
        return;
    }
    size_t n = strlen(v);
    pg_add_be(b, n, 4);
    wfo_buf_add(b, v, n);
}

static void pg_el_bytes(struct wfo_buf *b, const void *v, size_t n)
{
    pg_add_be(b, n, 4);
    wfo_buf_add(b, v, n);
}

static void pg_el_int(struct wfo_buf *b, int64_t v)
{
    pg_add_be(b, 8, 4);
    pg_add_be(b, (uint64_t)v, 8);
}

/* Invariant 4. */
static void pg_el_time(struct wfo_buf *b, int64_t v)
{
    if (v)
        pg_el_int(b, v);
    else
        pg_add_be(b, (uint64_t)-1, 4);
}

static void pg_params_seal(struct pg_params *p)
{
    for (int i = 0; i < p->n; i++)
        if (p->is_arr[i]) {
            p->v[i] = p->arr[i].buf;
            p->len[i] = (int)p->arr[i].len;
        }
}

/* ---- reading result columns (binary) ---- */

static const char *pg_text(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static int64_t pg_int(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    const unsigned char *v = (const unsigned char *)PQgetvalue(r, row, col);
    int len = PQgetlength(r, row, col);
    uint64_t u = 0;
    for (int i = 0; i < len && i < 8; i++)
        u = u << 8 | v[i];
    if (len == 4)
        return (int32_t)(uint32_t)u;
    if (len == 2)
        return (int16_t)(uint16_t)u;
    return (int64_t)u;
}

/* ---- errors ---- */

/* The URL without what follows ':' in its user part, nor a password
 * parameter: messages and logs never show a password. */
static char *pg_label(const char *url)
{
    struct wfo_buf b = WFO_BUF_INIT;
    const char *auth = strstr(url, "://");
    auth = auth ? auth + 3 : url;
    size_t alen = strcspn(auth, "/?");
    const char *at = memchr(auth, '@', alen);
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon) {
        wfo_buf_add(&b, url, (size_t)(colon - url));
        wfo_buf_adds(&b, ":***");
        url = at;
    }
    for (const char *p = url; *p;) {
        const char *pw = strstr(p, "password=");
        if (!pw || (pw != p && pw[-1] != '?' && pw[-1] != '&')) {
            size_t n = pw ? (size_t)(pw - p) + 9 : strlen(p);
            wfo_buf_add(&b, p, n);
            p += n;
            continue;
        }
        wfo_buf_add(&b, p, (size_t)(pw - p));
        wfo_buf_adds(&b, "password=***");
        p = pw + 9 + strcspn(pw + 9, "&");
    }
    return wfo_buf_detach(&b, NULL);
}

/* The server's or libpq's message, on one line. */
static void pg_message(PGconn *c, const PGresult *r, char *out, size_t size)
{
    const char *m = r ? PQresultErrorMessage(r) : NULL;
    if (!m || !*m)
        m = c ? PQerrorMessage(c) : "no connection";
    if (!m || !*m)
        m = "unknown error";
    snprintf(out, size, "%s", m);
    for (char *p = out; *p; p++)
        if (*p == '\n')
            *p = *(p + 1) ? ' ' : '\0';
}

static const char *pg_sqlstate(const PGresult *r)
{
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    return st ? st : "";
}

/* Did the connection break (rather than the statement fail)? */
static int pg_broken(PGconn *c, const PGresult *r)
{
    const char *st = pg_sqlstate(r);
    if (!c || PQstatus(c) != CONNECTION_OK || !r)
        return 1;
    return strncmp(st, "08", 2) == 0 || strcmp(st, "57P01") == 0 || strcmp(st, "57P02") == 0 ||
           strcmp(st, "57P03") == 0;
}

/* WFO_ESTORE "WHAT in 'LABEL': MESSAGE". */
static int pg_fail(struct pg_store *s, PGconn *c, const PGresult *r, struct wfo_error *err,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int pg_fail(struct pg_store *s, PGconn *c, const PGresult *r, struct wfo_error *err,
                   const char *fmt, ...)
{
    char what[256], msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    pg_message(c, r, msg, sizeof(msg));
    return wfo_error_set(err, WFO_ESTORE, "%s in '%s': %s", what, s->label, msg);
}

/* ---- connections ---- */

/* Opens a connection: the URL's own settings win over these defaults
 * (libpq takes the last value of a repeated keyword, and dbname expands to
 * the URL's), then the statement timeout. */
static PGconn *pg_connect(struct pg_store *s, char *msg, size_t size)
{
    static const char *const keys[] = {
        "connect_timeout",  "keepalives",       "keepalives_idle", "keepalives_interval",
        "keepalives_count", "application_name", "dbname",          NULL};
    const char *vals[] = {"5", "1", "10", "5", "3", "wfo", s->url, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    PGresult *r = NULL;

    if (c && PQstatus(c) == CONNECTION_OK) {
        r = PQexec(c, "SET statement_timeout = '" PG_STATEMENT_TIMEOUT "'");
        if (PQresultStatus(r) == PGRES_COMMAND_OK) {
            PQclear(r);
            return c;
        }
    }
    pg_message(c, r, msg, size);
    PQclear(r);
    PQfinish(c);
    return NULL;
}

/* Takes a free connection of the pool, connecting it if it is not, or
 * waits for one. */
static int pg_get(struct pg_store *s, struct pg_conn **out, struct wfo_error *err)
{
    struct pg_conn *cn = NULL;
    char msg[256];

    pthread_mutex_lock(&s->mu);
    while (!cn) {
        for (int i = 0; i < s->max && !cn; i++)
            if (!s->conns[i].busy && s->conns[i].c)
                cn = &s->conns[i];
        for (int i = 0; i < s->max && !cn; i++)
            if (!s->conns[i].busy)
                cn = &s->conns[i];
        if (!cn)
            pthread_cond_wait(&s->cv, &s->mu);
    }
    cn->busy = 1;
    cn->fresh = 0;
    if (!cn->c && wfo_now_ms() < s->down_until) {
        int64_t left = s->down_until - wfo_now_ms();
        snprintf(msg, sizeof(msg), "%s", s->down_msg);
        cn->busy = 0;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        return wfo_error_set(err, WFO_ESTORE,
                             "connecting to store '%s': %s (trying again in %lld ms)", s->label,
                             msg, (long long)left);
    }
    pthread_mutex_unlock(&s->mu);
    if (cn->c) {
        *out = cn;
        return 0;
    }

    /* Outside the lock: connecting may take up to connect_timeout. */
    cn->c = pg_connect(s, msg, sizeof(msg));
    memset(cn->prepared, 0, sizeof(cn->prepared));
    pthread_mutex_lock(&s->mu);
    if (cn->c) {
        s->backoff_ms = 0;
        s->down_until = 0;
        cn->fresh = 1;
        pthread_mutex_unlock(&s->mu);
        *out = cn;
        return 0;
    }
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : PG_BACKOFF_MIN_MS;
    if (s->backoff_ms > PG_BACKOFF_MAX_MS)
        s->backoff_ms = PG_BACKOFF_MAX_MS;
    s->down_until =
        wfo_now_ms() + s->backoff_ms / 2 + (int64_t)(wfo_random() * (double)(s->backoff_ms / 2));
    snprintf(s->down_msg, sizeof(s->down_msg), "%s", msg);
    cn->busy = 0;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return wfo_error_set(err, WFO_ESTORE, "connecting to store '%s': %s", s->label, msg);
}

/* Gives cn back; a broken one is closed, to be connected again by its next
 * taker. */
static void pg_put(struct pg_store *s, struct pg_conn *cn, int broken)
{
    if (broken) {
        PQfinish(cn->c);
        cn->c = NULL;
    }
    pthread_mutex_lock(&s->mu);
    cn->busy = 0;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* The list query for a set of filters; the parameter numbers are fixed. */
static void pg_list_sql(int mask, char *out, size_t size)
{
    snprintf(out, size,
             PG_EXEC_WITH_CHUNK("SELECT " PG_EXEC_COLS " FROM executions WHERE namespace = $1%s%s"
                                "%s%s%s ORDER BY seq DESC LIMIT $7") " ORDER BY e.seq DESC",
             mask & PG_F_WORKFLOW ? " AND workflow = $2" : "",
             mask & PG_F_STATUS ? " AND status = $3" : "",
             mask & PG_F_AFTER ? " AND created_at > $4" : "",
             mask & PG_F_BEFORE ? " AND created_at < $5" : "",
             mask & PG_F_SEQ ? " AND seq < $6" : "");
}

/* Runs statement q on cn with p (binary in, binary out), preparing it on
 * the connection first if it was not. Never NULL but when out of memory
 * or the connection is gone. */
static PGresult *pg_exec(struct pg_conn *cn, int q, struct pg_params *p)
{
    char name[16], sql[1536];

    snprintf(name, sizeof(name), "q%d", q);
    if (!cn->prepared[q]) {
        const Oid *types = NULL;
        int ntypes = 0;
        if (q >= Q_LIST) {
            pg_list_sql(q - Q_LIST, sql, sizeof(sql));
            types = pg_list_types;
            ntypes = 7;
        } else {
            snprintf(sql, sizeof(sql), "%s", pg_sql[q]);
        }
        PGresult *r = PQprepare(cn->c, name, sql, ntypes, types);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            return r;
        PQclear(r);
        cn->prepared[q] = 1;
    }
    if (p)
        pg_params_seal(p);
    return PQexecPrepared(cn->c, name, p ? p->n : 0, p ? p->v : NULL, p ? p->len : NULL,
                          p ? p->fmt : NULL, 1);
}

static int pg_ok(const PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* A read: statement q with p on a connection of the pool, its result in
 * *out (the caller PQclears it) with the connection already given back. A
 * connection found broken that had waited in the pool (a server restart
 * since) is replaced and the read tried once more. */
static int pg_read(struct pg_store *s, int q, struct pg_params *p, PGresult **out, const char *what,
                   struct wfo_error *err)
{
    *out = NULL;
    for (int attempt = 0;; attempt++) {
        struct pg_conn *cn;
        int rc = pg_get(s, &cn, err);
        if (rc)
            return rc;
        PGresult *r = pg_exec(cn, q, p);
        if (pg_ok(r)) {
            pg_put(s, cn, 0);
            *out = r;
            return 0;
        }
        int broken = pg_broken(cn->c, r), fresh = cn->fresh;
        rc = pg_fail(s, cn->c, r, err, "%s", what);
        PQclear(r);
        pg_put(s, cn, broken);
        if (!broken || fresh || attempt > 0)
            return rc;
    }
}

/* ---- transactions ---- */

/* One transaction on one connection: tx_begin takes a connection and
 * begins; tx_run runs a statement in it; tx_end commits (ok) or rolls back,
 * and gives the connection back. After an error in tx_run, tx_end rolls
 * back whatever rc says. */
struct pg_tx {
    struct pg_store *s;
    struct pg_conn *cn;
    int broken;
};

static int pg_simple(struct pg_tx *t, const char *sql, const char *what, struct wfo_error *err)
{
    PGresult *r = PQexec(t->cn->c, sql);
    int rc = 0;
    if (!pg_ok(r)) {
        t->broken |= pg_broken(t->cn->c, r);
        rc = pg_fail(t->s, t->cn->c, r, err, "%s", what);
    }
    PQclear(r);
    return rc;
}

static int pg_tx_begin(struct pg_store *s, struct pg_tx *t, const char *what, struct wfo_error *err)
{
    memset(t, 0, sizeof(*t));
    t->s = s;
    for (int attempt = 0;; attempt++) {
        int rc = pg_get(s, &t->cn, err);
        if (rc)
            return rc;
        t->broken = 0;
        rc = pg_simple(t, "BEGIN", what, err);
        if (rc == 0)
            return 0;
        int retry = t->broken && !t->cn->fresh && attempt == 0;
        pg_put(s, t->cn, t->broken);
        t->cn = NULL;
        if (!retry)
            return rc;
    }
}

/* Runs q in the transaction; *out (when not NULL) gets the result. */
static int pg_tx_run(struct pg_tx *t, int q, struct pg_params *p, PGresult **out,
                     struct wfo_error *err, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int pg_tx_run(struct pg_tx *t, int q, struct pg_params *p, PGresult **out,
                     struct wfo_error *err, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    PGresult *r = pg_exec(t->cn, q, p);

    if (out)
        *out = NULL;
    if (pg_ok(r)) {
        if (out)
            *out = r;
        else
            PQclear(r);
        return 0;
    }
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    t->broken |= pg_broken(t->cn->c, r);
    int rc = pg_fail(t->s, t->cn->c, r, err, "%s", what);
    PQclear(r);
    return rc;
}

/* Commits when rc is 0 (returning the commit's error, if any), else rolls
 * back; gives the connection back either way. */
static int pg_tx_end(struct pg_tx *t, int rc, const char *what, struct wfo_error *err)
{
    if (!t->cn)
        return rc;
    if (rc == 0)
        rc = pg_simple(t, "COMMIT", what, err);
    if (rc && !t->broken && PQtransactionStatus(t->cn->c) != PQTRANS_IDLE) {
        PGresult *r = PQexec(t->cn->c, "ROLLBACK");
        t->broken |= !pg_ok(r) && pg_broken(t->cn->c, r);
        PQclear(r);
    }
    pg_put(t->s, t->cn, t->broken);
    t->cn = NULL;
    return rc;
}

/* ---- the schema ---- */

/* The schema version of the database on c: 0 when it has no meta table or
 * no version, -1 (and err) on error. */
static long pg_version(struct pg_store *s, PGconn *c, struct wfo_error *err)
{
    PGresult *r = PQexec(c, "SELECT convert_from(value, 'UTF8') FROM meta"
                            " WHERE key = 'schema_version'");
    long v = 0;

    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        if (PQntuples(r) > 0)
            v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    } else if (strcmp(pg_sqlstate(r), "42P01") != 0) { /* undefined_table: new */
        pg_fail(s, c, r, err, "reading the schema version");
        v = -1;
    }
    PQclear(r);
    return v;
}

static int pg_exec_simple(struct pg_store *s, PGconn *c, const char *sql, const char *what,
                          struct wfo_error *err)
{
    PGresult *r = PQexec(c, sql);
    int rc = pg_ok(r) ? 0 : pg_fail(s, c, r, err, "%s", what);
    PQclear(r);
    return rc;
}

/* Checks the schema and makes it in a new database: one transaction under
 * the advisory lock PG_LOCK_SCHEMA, so that processes opening a new
 * database at once make it once (the version is read again under it). */
static int pg_setup(struct pg_store *s, PGconn *c, struct wfo_error *err)
{
    long v = pg_version(s, c, err);
    int rc;

    if (v < 0)
        return err->code;
    if (v == PG_SCHEMA_VERSION)
        return 0;
    if (v == 0) {
        rc = pg_exec_simple(s, c,
                            "BEGIN; SELECT pg_advisory_xact_lock(" PG_LOCK_SCHEMA ");"
                            " CREATE TABLE IF NOT EXISTS meta (key TEXT" PG_C
                            " PRIMARY KEY, value BYTEA NOT NULL)",
                            "creating the schema", err);
        if (rc == 0 && (v = pg_version(s, c, err)) < 0)
            rc = err->code;
        if (rc == 0 && v == 0)
            rc = pg_exec_simple(s, c, pg_schema, "creating the schema", err);
        if (rc == 0 && v == 0) {
            char sql[128];
            snprintf(sql, sizeof(sql),
                     "INSERT INTO meta (key, value) VALUES ('schema_version', '%d')",
                     PG_SCHEMA_VERSION);
            rc = pg_exec_simple(s, c, sql, "creating the schema", err);
        }
        if (rc == 0)
            rc = pg_exec_simple(s, c, "COMMIT", "creating the schema", err);
        if (rc) {
            PGresult *r = PQexec(c, "ROLLBACK");
            PQclear(r);
            return rc;
        }
        if (v == 0 || v == PG_SCHEMA_VERSION)
            return 0;
    }
    if (v > PG_SCHEMA_VERSION)
        return wfo_error_set(err, WFO_ESTORE,
                             "opening store '%s': schema version %ld is newer than this wfo's (%d)",
                             s->label, v, PG_SCHEMA_VERSION);
    if (v == 6 || v == 7) { /* 6 -> 7 -> 8, under the schema lock like a new schema */
        char sql[256];
        snprintf(sql, sizeof(sql), "UPDATE meta SET value = '%d' WHERE key = 'schema_version'",
                 PG_SCHEMA_VERSION);
        rc = pg_exec_simple(s, c, "BEGIN; SELECT pg_advisory_xact_lock(" PG_LOCK_SCHEMA ")",
                            "migrating the schema", err);
        if (rc == 0 && (v = pg_version(s, c, err)) < 0)
            rc = err->code;
        if (rc == 0 && v == 6)
            rc = pg_exec_simple(s, c, PG_V7_SCHEMA, "migrating the schema to 7", err);
        if (rc == 0 && (v == 6 || v == 7))
            rc = pg_exec_simple(s, c, PG_V8_SCHEMA, "migrating the schema to 8", err);
        if (rc == 0 && (v == 6 || v == 7))
            rc = pg_exec_simple(s, c, sql, "migrating the schema", err);
        if (rc == 0)
            rc = pg_exec_simple(s, c, "COMMIT", "migrating the schema", err);
        if (rc) {
            PGresult *r = PQexec(c, "ROLLBACK");
            PQclear(r);
        }
        return rc;
    }
    /* The first PostgreSQL schema is version 6: there is nothing older to
     * migrate from. */
    return wfo_error_set(err, WFO_ESTORE,
                         "opening store '%s': schema version %ld is not one of PostgreSQL's (%d)",
                         s->label, v, PG_SCHEMA_VERSION);
}

/* ---- the ops ---- */

static int pg_accepts(const char *url)
{
    return url && (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0);
}

static void pg_close(struct store *base)
{
    struct pg_store *s;

    if (!base)
        return;
    s = pg_store(base);
    if (s->listening) {
        atomic_store(&s->listen_stop, 1);
        pthread_join(s->listener, NULL);
        pthread_mutex_destroy(&s->listen_mu);
        pthread_cond_destroy(&s->listen_cond);
    }
    for (int i = 0; i < STORE_POOL_MAX; i++) {
        wfo_assert(!s->conns[i].busy);
        PQfinish(s->conns[i].c);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->url);
    free(s->label);
    free(s);
}

/* Opens the pool's first connection at once, so that a wrong URL or a
 * server that is down fails the open, and checks or makes the schema. */
static int pg_open(const char *url, struct store **out, struct wfo_error *err)
{
    struct pg_store *s;
    char msg[256];
    int rc;

    *out = NULL;
    if (!pg_accepts(url))
        return wfo_error_set(err, WFO_EINVAL, "store url is not a postgres url");
    s = wfo_calloc(1, sizeof(*s));
    s->base.ops = &store_postgres_ops;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->max = PG_POOL_DEFAULT;
    s->url = wfo_strdup(url);
    s->label = pg_label(url);
    s->conns[0].c = pg_connect(s, msg, sizeof(msg));
    if (!s->conns[0].c) {
        rc = wfo_error_set(err, WFO_ESTORE, "opening store '%s': %s", s->label, msg);
        goto out;
    }
    rc = pg_setup(s, s->conns[0].c, err);
    if (rc)
        goto out;
    *out = &s->base;
    s = NULL;
out:
    pg_close(s ? &s->base : NULL);
    return rc;
}

static void pg_set_pool_size(struct store *base, int n)
{
    struct pg_store *s = pg_store(base);
    pthread_mutex_lock(&s->mu);
    s->max = n < 1 ? 1 : n > STORE_POOL_MAX ? STORE_POOL_MAX : n;
    pthread_mutex_unlock(&s->mu);
}

static int pg_ping(struct store *base, struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    PGresult *r;
    int rc = pg_read(s, Q_PING, NULL, &r, "pinging store", err);

    if (rc)
        return rc;
    long v = PQntuples(r) ? strtol(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    if (v != PG_SCHEMA_VERSION)
        return wfo_error_set(err, WFO_ESTORE, "pinging store '%s': schema version is %ld", s->label,
                             v);
    return 0;
}

/* ---- rows to callbacks ---- */

static void pg_wf_read(const PGresult *r, int i, struct store_workflow *w)
{
    w->namespace = pg_text(r, i, 0);
    w->name = pg_text(r, i, 1);
    w->version = (int)pg_int(r, i, 2);
    w->hash = pg_text(r, i, 3);
    w->definition = pg_text(r, i, 4);
    w->created_at = pg_int(r, i, 5);
}

static int pg_wf_rows(const PGresult *r, store_workflow_cb cb, void *ud)
{
    for (int i = 0; i < PQntuples(r); i++) {
        struct store_workflow w;
        pg_wf_read(r, i, &w);
        int rc = cb(ud, &w);
        if (rc)
            return rc;
    }
    return 0;
}

/* Looks for the state record in chunk data (len bytes); 1 when found. */
static int pg_chunk_state(const void *data, size_t len, struct store_exec *x, struct wfo_error *err)
{
    struct chunk_reader cr;
    struct chunk_rec rec;
    int rc = chunk_open(&cr, data, len, x->id, err);

    while (rc == 0 && (rc = chunk_next(&cr, &rec, err)) == 1 && rec.tag != CHUNK_STATE)
        ;
    if (rc == 1) {
        x->state = rec.state;
        if (rec.time > x->updated_at)
            x->updated_at = rec.time;
    }
    return rc;
}

/* An execution's rows (PG_EXEC_COLS, then its newest chunk) to cb, with
 * the state of its newest chunk that has one: nearly always the newest,
 * read with the row; else its chunks are read again, newest first. */
static int pg_exec_rows(struct pg_store *s, const PGresult *r, store_exec_cb cb, void *ud,
                        struct wfo_error *err)
{
    for (int i = 0; i < PQntuples(r); i++) {
        struct store_exec x = {
            .seq = pg_int(r, i, 0),
            .id = pg_text(r, i, 1),
            .namespace = pg_text(r, i, 2),
            .workflow = pg_text(r, i, 3),
            .version = (int)pg_int(r, i, 4),
            .status = pg_text(r, i, 5),
            .input = pg_text(r, i, 6),
            .output = pg_text(r, i, 7),
            .error = pg_text(r, i, 8),
            .compensation = pg_text(r, i, 9),
            .parent = pg_text(r, i, 10),
            .state = pg_text(r, i, 11),
            .created_at = pg_int(r, i, 12),
            .updated_at = pg_int(r, i, 13),
            .finished_at = pg_int(r, i, 14),
            .resume = (int)pg_int(r, i, 15),
        };
        PGresult *all = NULL;
        int rc = 0;
        if (!PQgetisnull(r, i, 16))
            rc = pg_chunk_state(PQgetvalue(r, i, 16), (size_t)PQgetlength(r, i, 16), &x, err);
        if (rc == 0 && !PQgetisnull(r, i, 16)) { /* not in the newest: the older ones */
            struct pg_params p;
            pg_params_init(&p);
            pg_p_text(&p, x.id);
            rc = pg_read(s, Q_CHUNKS_LAST, &p, &all, "reading the state of an execution", err);
            pg_params_release(&p);
            for (int k = 1; rc == 0 && k < PQntuples(all); k++)
                rc = pg_chunk_state(PQgetvalue(all, k, 0), (size_t)PQgetlength(all, k, 0), &x, err);
        }
        if (rc >= 0)
            rc = cb(ud, &x);
        PQclear(all);
        if (rc)
            return rc;
    }
    return 0;
}

static void pg_event_read(const PGresult *r, int i, struct store_event *e)
{
    memset(e, 0, sizeof(*e));
    e->seq = pg_int(r, i, 0);
    e->namespace = pg_text(r, i, 1);
    e->id = pg_text(r, i, 2);
    e->type = pg_text(r, i, 3);
    e->key = pg_text(r, i, 4);
    e->source = pg_text(r, i, 5);
    e->data = pg_text(r, i, 6);
    e->time = pg_int(r, i, 7);
    e->published_at = pg_int(r, i, 8);
    e->attrs = pg_text(r, i, 9);
}

/* ---- writing a batch ---- */

/* Every chunk of the batch in one INSERT: the chunks are encoded into
 * data, then put in the bytea array (which copies them). */
static int pg_put_chunks(struct pg_tx *t, const struct store_batch *b, struct wfo_error *err)
{
    struct chunk_groups g = {0};
    struct wfo_buf data = WFO_BUF_INIT;
    struct pg_params p;
    size_t *off;
    int64_t *hseq;
    int n = 0, rc = 0;

    chunk_groups_build(&g, b);
    off = wfo_malloc(((size_t)g.n + 1) * sizeof(*off));
    hseq = wfo_malloc(((size_t)g.n + 1) * sizeof(*hseq));
    const struct chunk_group **with = wfo_malloc(((size_t)g.n + 1) * sizeof(*with));
    for (int i = 0; i < g.n; i++) {
        const struct chunk_group *r = &g.v[i];
        if (!(r->x && r->x->state) && r->step < 0 && r->hist < 0)
            continue;
        off[n] = data.len;
        hseq[n] = 0;
        chunk_begin(&data);
        if (r->x && r->x->state)
            chunk_put_state(&data, r->x->updated_at, r->x->state);
        for (int k = r->step; k >= 0; k = g.step_next[k])
            chunk_put_step(&data, &b->steps[k]);
        for (int k = r->hist; k >= 0; k = g.hist_next[k]) {
            chunk_put_history(&data, &b->history[k]);
            if (b->history[k].seq > hseq[n])
                hseq[n] = b->history[k].seq;
        }
        with[n++] = r;
    }
    off[n] = data.len;
    if (n) {
        pg_params_init(&p);
        struct wfo_buf *ids = pg_p_array(&p, PG_TEXT, n);
        struct wfo_buf *ns = pg_p_array(&p, PG_INT8, n);
        struct wfo_buf *hs = pg_p_array(&p, PG_INT8, n);
        struct wfo_buf *ds = pg_p_array(&p, PG_BYTEA, n);
        for (int i = 0; i < n; i++) {
            pg_el_text(ids, with[i]->id ? with[i]->id : "");
            pg_el_int(ns, with[i]->x ? with[i]->x->chunk : 0);
            pg_el_int(hs, hseq[i]);
            pg_el_bytes(ds, data.buf + off[i], off[i + 1] - off[i]);
        }
        PGresult *r = pg_exec(t->cn, Q_CHUNKS_INSERT, &p);
        if (!pg_ok(r)) {
            t->broken |= pg_broken(t->cn->c, r);
            const char *id = with[0]->id ? with[0]->id : "";
            if (strcmp(pg_sqlstate(r), "23505") == 0)
                rc = wfo_error_set(err, WFO_ESTORE,
                                   "writing a chunk of execution '%s'%s in '%s': it exists (a "
                                   "doubled transition)",
                                   id, n > 1 ? " or of the next ones" : "", t->s->label);
            else
                rc = pg_fail(t->s, t->cn->c, r, err, "writing the chunks of execution '%s'%s", id,
                             n > 1 ? " and the next ones" : "");
        }
        PQclear(r);
        pg_params_release(&p);
    }
    free(with);
    free(off);
    free(hseq);
    wfo_buf_release(&data);
    chunk_groups_release(&g);
    return rc;
}

/* Does an id repeat among n rows (id of row i from fn)? A statement over
 * arrays writes each row once, so a batch that names a row twice is
 * written one row at a time, in order. */
static int pg_repeats(int n, const char *(*fn)(const void *, int), const void *arr)
{
    struct wfo_map m;
    int dup = 0;

    if (n < 2)
        return 0;
    memset(&m, 0, sizeof(m));
    for (int i = 0; i < n && !dup; i++) {
        const char *id = fn(arr, i);
        id = id ? id : "";
        dup = wfo_map_get(&m, id) != NULL;
        wfo_map_put(&m, id, (void *)1);
    }
    wfo_map_release(&m);
    return dup;
}

static const char *pg_exec_id(const void *arr, int i)
{
    return ((const struct store_exec *)arr)[i].id;
}

static const char *pg_timer_id(const void *arr, int i)
{
    return ((const struct store_timer *)arr)[i].id;
}

static const char *pg_task_id(const void *arr, int i)
{
    return ((const struct store_task *)arr)[i].id;
}

/* Invariant 6: every shard the batch writes is owner's at its epoch. */
/* The shards of want are owned by owner at epochs[k], read FOR SHARE so
 * that a takeover waits for this transaction (else WFO_EFENCED, saying
 * what was refused). */
static int pg_fence_shards(struct pg_tx *t, const char *owner, store_shardset want,
                           const int64_t *epochs, const char *what, struct wfo_error *err)
{
    store_shardset ok = 0;
    struct pg_params p;
    PGresult *r;
    int n = 0, rc;

    if (!owner || !want)
        return 0;
    for (int k = 0; k < STORE_SHARDS; k++)
        n += want >> k & 1;
    pg_params_init(&p);
    struct wfo_buf *ks = pg_p_array(&p, PG_INT8, n);
    for (int k = 0; k < STORE_SHARDS; k++)
        if (want >> k & 1)
            pg_el_int(ks, k);
    rc = pg_tx_run(t, Q_FENCE, &p, &r, err, "reading the shards");
    pg_params_release(&p);
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        int k = (int)pg_int(r, i, 0);
        const char *o = pg_text(r, i, 1);
        if (k >= 0 && k < STORE_SHARDS && o && strcmp(o, owner) == 0 &&
            pg_int(r, i, 2) == epochs[k])
            ok |= (store_shardset)1 << k;
    }
    PQclear(r);
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

static int pg_fence(struct pg_tx *t, const struct store_batch *b, struct wfo_error *err)
{
    return pg_fence_shards(t, b->owner, store_batch_shards(b), b->epochs, "committing a batch",
                           err);
}

/* Executions execs[from, to) of kind `existing` (an in-place update) or
 * not (an insert or upsert), one statement. */
static int pg_put_execs_range(struct pg_tx *t, const struct store_batch *b, int from, int to,
                              int existing, struct wfo_error *err)
{
    struct pg_params p;
    const struct store_exec *first = NULL;
    int n = 0, rc;

    for (int i = from; i < to; i++)
        if (!b->execs[i].only_state && !b->execs[i].existing == !existing) {
            n++;
            first = first ? first : &b->execs[i];
        }
    if (!n)
        return 0;
    pg_params_init(&p);
    if (existing) {
        struct wfo_buf *a[8];
        a[0] = pg_p_array(&p, PG_TEXT, n);
        for (int c = 1; c < 5; c++)
            a[c] = pg_p_array(&p, PG_TEXT, n);
        for (int c = 5; c < 8; c++)
            a[c] = pg_p_array(&p, PG_INT8, n);
        for (int i = from; i < to; i++) {
            const struct store_exec *e = &b->execs[i];
            if (e->only_state || !e->existing)
                continue;
            pg_el_text(a[0], e->id);
            pg_el_text(a[1], e->status);
            pg_el_text(a[2], e->output);
            pg_el_text(a[3], e->error);
            pg_el_text(a[4], e->compensation);
            pg_el_time(a[5], e->updated_at);
            pg_el_time(a[6], e->finished_at);
            pg_el_int(a[7], e->resume);
        }
    } else {
        static const Oid types[15] = {PG_TEXT, PG_TEXT, PG_TEXT, PG_INT8, PG_TEXT,
                                      PG_TEXT, PG_TEXT, PG_TEXT, PG_TEXT, PG_TEXT,
                                      PG_INT8, PG_INT8, PG_INT8, PG_INT8, PG_INT8};
        struct wfo_buf *a[15];
        for (int c = 0; c < 15; c++)
            a[c] = pg_p_array(&p, types[c], n);
        for (int i = from; i < to; i++) {
            const struct store_exec *e = &b->execs[i];
            if (e->only_state || e->existing)
                continue;
            pg_el_text(a[0], e->id);
            pg_el_text(a[1], e->namespace);
            pg_el_text(a[2], e->workflow);
            pg_el_int(a[3], e->version);
            pg_el_text(a[4], e->status);
            pg_el_text(a[5], e->input);
            pg_el_text(a[6], e->output);
            pg_el_text(a[7], e->error);
            pg_el_text(a[8], e->compensation);
            pg_el_text(a[9], e->parent);
            pg_el_time(a[10], e->created_at);
            pg_el_time(a[11], e->updated_at);
            pg_el_time(a[12], e->finished_at);
            pg_el_int(a[13], store_shard_of(e->id));
            pg_el_int(a[14], e->resume);
        }
    }
    PGresult *r = NULL;
    const char *id = first->id ? first->id : "";
    rc = pg_tx_run(t, existing ? Q_EXEC_UPDATE : Q_EXEC_INSERT, &p, &r, err,
                   "writing execution '%s'%s", id, n > 1 ? " (and the next ones)" : "");
    if (rc == 0 && existing && strtol(PQcmdTuples(r), NULL, 10) != n)
        rc = wfo_error_set(err, WFO_ESTORE, "writing execution '%s'%s: no such row", id,
                           n > 1 ? " (or one of the next ones)" : "");
    PQclear(r);
    pg_params_release(&p);
    return rc;
}

/* The batch's execution rows: new ones in one statement, the others in
 * another (one row at a time when an id repeats). */
static int pg_put_execs(struct pg_tx *t, const struct store_batch *b, struct wfo_error *err)
{
    int rc = 0;

    if (pg_repeats(b->n_execs, pg_exec_id, b->execs)) {
        for (int i = 0; rc == 0 && i < b->n_execs; i++)
            rc = pg_put_execs_range(t, b, i, i + 1, b->execs[i].existing, err);
        return rc;
    }
    rc = pg_put_execs_range(t, b, 0, b->n_execs, 0, err);
    if (rc == 0)
        rc = pg_put_execs_range(t, b, 0, b->n_execs, 1, err);
    return rc;
}

static int pg_put_timers_range(struct pg_tx *t, const struct store_timer *v, int n,
                               struct wfo_error *err)
{
    static const Oid types[8] = {PG_TEXT, PG_TEXT, PG_INT8, PG_TEXT,
                                 PG_TEXT, PG_INT8, PG_TEXT, PG_INT8};
    struct pg_params p;
    struct wfo_buf *a[8];
    int rc;

    pg_params_init(&p);
    for (int c = 0; c < 8; c++)
        a[c] = pg_p_array(&p, types[c], n);
    for (int i = 0; i < n; i++) {
        pg_el_text(a[0], v[i].id);
        pg_el_text(a[1], v[i].exec_id);
        pg_el_time(a[2], v[i].due_at);
        pg_el_text(a[3], v[i].kind);
        pg_el_text(a[4], v[i].step);
        pg_el_int(a[5], v[i].token);
        pg_el_text(a[6], v[i].data);
        pg_el_int(a[7], store_shard_of(v[i].exec_id));
    }
    rc = pg_tx_run(t, Q_TIMERS_PUT, &p, NULL, err, "writing timer '%s'%s", v[0].id ? v[0].id : "",
                   n > 1 ? " (and the next ones)" : "");
    pg_params_release(&p);
    return rc;
}

static int pg_put_timers(struct pg_tx *t, const struct store_batch *b, struct wfo_error *err)
{
    int rc = 0;

    if (!b->n_timers)
        return 0;
    if (!pg_repeats(b->n_timers, pg_timer_id, b->timers))
        return pg_put_timers_range(t, b->timers, b->n_timers, err);
    for (int i = 0; rc == 0 && i < b->n_timers; i++)
        rc = pg_put_timers_range(t, &b->timers[i], 1, err);
    return rc;
}

/* Tasks v[0, n): the full rows in one statement, the leases (lease_only)
 * in another. */
static int pg_put_tasks_range(struct pg_tx *t, const struct store_task *v, int n,
                              struct wfo_error *err)
{
    static const Oid types[13] = {PG_TEXT, PG_TEXT, PG_TEXT, PG_TEXT, PG_TEXT, PG_INT8, PG_TEXT,
                                  PG_TEXT, PG_TEXT, PG_INT8, PG_INT8, PG_INT8, PG_INT8};
    struct pg_params p;
    int full = 0, leases = 0, rc = 0;

    for (int i = 0; i < n; i++) {
        full += !v[i].lease_only;
        leases += v[i].lease_only;
    }
    pg_params_init(&p);
    if (full) {
        struct wfo_buf *a[13];
        const char *id = NULL;
        for (int c = 0; c < 13; c++)
            a[c] = pg_p_array(&p, types[c], full);
        for (int i = 0; i < n; i++) {
            const struct store_task *k = &v[i];
            if (k->lease_only)
                continue;
            id = id ? id : k->id;
            pg_el_text(a[0], k->id);
            pg_el_text(a[1], k->exec_id);
            pg_el_text(a[2], k->namespace);
            pg_el_text(a[3], k->queue);
            pg_el_text(a[4], k->step);
            pg_el_int(a[5], k->attempt);
            pg_el_text(a[6], k->status);
            pg_el_text(a[7], k->lease);
            pg_el_text(a[8], k->input);
            pg_el_time(a[9], k->ready_at);
            pg_el_time(a[10], k->leased_until);
            pg_el_time(a[11], k->created_at);
            pg_el_int(a[12], store_shard_of(k->exec_id));
        }
        rc = pg_tx_run(t, Q_TASKS_PUT, &p, NULL, err, "writing task '%s'%s", id ? id : "",
                       full > 1 ? " (and the next ones)" : "");
    }
    if (rc == 0 && leases) {
        const char *id = NULL;
        pg_params_reset(&p);
        struct wfo_buf *ids = pg_p_array(&p, PG_TEXT, leases);
        struct wfo_buf *ls = pg_p_array(&p, PG_TEXT, leases);
        struct wfo_buf *us = pg_p_array(&p, PG_INT8, leases);
        for (int i = 0; i < n; i++) {
            if (!v[i].lease_only)
                continue;
            id = id ? id : v[i].id;
            pg_el_text(ids, v[i].id);
            pg_el_text(ls, v[i].lease);
            pg_el_time(us, v[i].leased_until);
        }
        rc = pg_tx_run(t, Q_TASKS_LEASE, &p, NULL, err, "leasing task '%s'%s", id ? id : "",
                       leases > 1 ? " (and the next ones)" : "");
    }
    pg_params_release(&p);
    return rc;
}

static int pg_put_tasks(struct pg_tx *t, const struct store_batch *b, struct wfo_error *err)
{
    int rc = 0;

    if (!b->n_tasks)
        return 0;
    if (!pg_repeats(b->n_tasks, pg_task_id, b->tasks))
        return pg_put_tasks_range(t, b->tasks, b->n_tasks, err);
    for (int i = 0; rc == 0 && i < b->n_tasks; i++)
        rc = pg_put_tasks_range(t, &b->tasks[i], 1, err);
    return rc;
}

/* Deletes the rows of q named by ids dels[0, n) (field: the id's or the
 * execution's). */
static int pg_delete(struct pg_tx *t, int q, const struct store_del *dels, int n, const char *what,
                     struct wfo_error *err)
{
    struct pg_params p;
    int rc;

    if (!n)
        return 0;
    pg_params_init(&p);
    struct wfo_buf *ids = pg_p_array(&p, PG_TEXT, n);
    for (int i = 0; i < n; i++)
        pg_el_text(ids, dels[i].id);
    rc = pg_tx_run(t, q, &p, NULL, err, "deleting %s '%s'%s", what, dels[0].id ? dels[0].id : "",
                   n > 1 ? " (and the next ones)" : "");
    pg_params_release(&p);
    return rc;
}

static int pg_put_consumes(struct pg_tx *t, const struct store_batch *b, struct wfo_error *err)
{
    struct pg_params p;
    int rc, n = b->n_consumes;

    if (!n)
        return 0;
    pg_params_init(&p);
    struct wfo_buf *xs = pg_p_array(&p, PG_TEXT, n);
    struct wfo_buf *es = pg_p_array(&p, PG_TEXT, n);
    for (int i = 0; i < n; i++) {
        pg_el_text(xs, b->consumes[i].exec_id);
        pg_el_text(es, b->consumes[i].id);
    }
    rc = pg_tx_run(t, Q_CONSUME, &p, NULL, err, "consuming event '%s'%s",
                   b->consumes[0].id ? b->consumes[0].id : "", n > 1 ? " (and the next ones)" : "");
    pg_params_release(&p);
    return rc;
}

/* Events v[0, n) in one statement; *seq (when not NULL) gets the first
 * one's. */
static int pg_put_events(struct pg_tx *t, const struct store_event *v, int n, int64_t *seq,
                         struct wfo_error *err)
{
    static const Oid types[9] = {PG_TEXT, PG_TEXT, PG_TEXT, PG_TEXT, PG_TEXT,
                                 PG_TEXT, PG_INT8, PG_INT8, PG_TEXT};
    struct pg_params p;
    struct wfo_buf *a[9];
    PGresult *r;
    int rc;

    if (!n)
        return 0;
    pg_params_init(&p);
    for (int c = 0; c < 9; c++)
        a[c] = pg_p_array(&p, types[c], n);
    for (int i = 0; i < n; i++) {
        pg_el_text(a[0], v[i].namespace);
        pg_el_text(a[1], v[i].id);
        pg_el_text(a[2], v[i].type);
        pg_el_text(a[3], v[i].key);
        pg_el_text(a[4], v[i].source);
        pg_el_text(a[5], v[i].data);
        pg_el_int(a[6], v[i].time);
        pg_el_int(a[7], v[i].published_at);
        pg_el_text(a[8], v[i].attrs);
    }
    rc = pg_tx_run(t, Q_EVENTS_INSERT, &p, &r, err, "writing event '%s'%s", v[0].id ? v[0].id : "",
                   n > 1 ? " (and the next ones)" : "");
    if (rc == 0 && seq)
        *seq = PQntuples(r) ? pg_int(r, 0, 0) : 0;
    PQclear(r);
    pg_params_release(&p);
    return rc;
}

static int pg_put_outbox(struct pg_tx *t, const struct store_outbox *v, int n,
                         struct wfo_error *err)
{
    struct pg_params p;
    struct wfo_buf *a[7];
    int rc;

    if (!n)
        return 0;
    pg_params_init(&p);
    for (int c = 0; c < 6; c++)
        a[c] = pg_p_array(&p, PG_TEXT, n);
    a[6] = pg_p_array(&p, PG_INT8, n);
    for (int i = 0; i < n; i++) {
        pg_el_text(a[0], v[i].event_id);
        pg_el_text(a[1], v[i].namespace);
        pg_el_text(a[2], v[i].type);
        pg_el_text(a[3], v[i].key);
        pg_el_text(a[4], v[i].exec_id);
        pg_el_text(a[5], v[i].event);
        pg_el_int(a[6], v[i].time ? v[i].time : wfo_now_ms());
    }
    rc = pg_tx_run(t, Q_OUTBOX_INSERT, &p, NULL, err, "writing outbox event '%s'%s",
                   v[0].event_id ? v[0].event_id : "", n > 1 ? " (and the next ones)" : "");
    pg_params_release(&p);
    return rc;
}

static int pg_del_execs(struct pg_tx *t, const struct store_batch *b, struct wfo_error *err)
{
    struct pg_params p;
    int rc, n = b->n_exec_dels;

    if (!n)
        return 0;
    pg_params_init(&p);
    struct wfo_buf *ids = pg_p_array(&p, PG_TEXT, n);
    for (int i = 0; i < n; i++)
        pg_el_text(ids, b->exec_dels[i]);
    rc = pg_tx_run(t, Q_EXEC_DEL, &p, NULL, err, "deleting execution '%s'%s",
                   b->exec_dels[0] ? b->exec_dels[0] : "", n > 1 ? " (and the next ones)" : "");
    pg_params_release(&p);
    return rc;
}

/* Does the batch insert rows whose seq is the commit order (invariant 2)? */
static int pg_assigns_seq(const struct store_batch *b)
{
    if (b->n_events || b->n_outbox)
        return 1;
    for (int i = 0; i < b->n_execs; i++)
        if (!b->execs[i].only_state && !b->execs[i].existing)
            return 1;
    return 0;
}

/* Invariant 1: one transaction, rolled back on any error. The rows without
 * a seq first; then, under PG_LOCK_SEQ (invariant 2), those with one, the
 * deletes, and the commit. */
/* ---- ready tasks, told to the other nodes (listen_ready) ----
 *
 * A batch that puts ready tasks sends, in its transaction (so at its
 * commit, and never for one rolled back), one NOTIFY on PG_READY_CHANNEL
 * per distinct (namespace, queue), whose payload is "OWNER\nNS\nQUEUE".
 * Each node's listener thread holds a connection of its own that LISTENs
 * and hands them to the engine: a long poll there asks the other nodes at
 * once (docs/operations/scaling.md#several-nodes). A notification lost
 * while the listener reconnects costs a poll's next look, not a task. */

static int pg_notify_ready(struct pg_tx *t, const struct store_batch *b, struct wfo_error *err)
{
    struct wfo_buf payloads[8];
    int n = 0, rc = 0;

    if (!b->owner)
        return 0; /* not an engine's batch: nobody polls for it */
    for (int i = 0; i < b->n_tasks && n < 8; i++) {
        const struct store_task *k = &b->tasks[i];
        if (k->lease_only || !k->status || strcmp(k->status, "ready") != 0)
            continue;
        struct wfo_buf p = WFO_BUF_INIT;
        wfo_buf_addf(&p, "%s\n%s\n%s", b->owner, k->namespace ? k->namespace : "",
                     k->queue ? k->queue : "");
        int seen = 0;
        for (int j = 0; j < n && !seen; j++)
            seen = strcmp(payloads[j].buf, p.buf) == 0;
        if (seen)
            wfo_buf_release(&p);
        else
            payloads[n++] = p;
    }
    if (n) {
        struct pg_params p;
        pg_params_init(&p);
        struct wfo_buf *arr = pg_p_array(&p, PG_TEXT, n);
        for (int j = 0; j < n; j++)
            pg_el_text(arr, payloads[j].buf);
        rc = pg_tx_run(t, Q_NOTIFY_READY, &p, NULL, err, "telling the other nodes of ready tasks");
        pg_params_release(&p);
    }
    for (int j = 0; j < n; j++)
        wfo_buf_release(&payloads[j]);
    return rc;
}

/* The listener's first LISTEN has been tried, whether it worked or not:
 * pg_listen_ready returns. */
static void pg_listen_tried(struct pg_store *s)
{
    pthread_mutex_lock(&s->listen_mu);
    s->listen_tried = 1;
    pthread_cond_signal(&s->listen_cond);
    pthread_mutex_unlock(&s->listen_mu);
}

/* The listener thread: LISTEN on a connection of its own; each
 * notification to ready_cb; reconnects with the pool's backoff, jittered. */
static void *pg_listener_main(void *arg)
{
    struct pg_store *s = arg;
    PGconn *c = NULL;
    int backoff = 0;
    char msg[256];

    pthread_setname_np(pthread_self(), "wfo-pg-listen");
    while (!atomic_load(&s->listen_stop)) {
        if (!c) {
            c = pg_connect(s, msg, sizeof(msg));
            PGresult *r = c ? PQexec(c, "LISTEN " PG_READY_CHANNEL) : NULL;
            pg_listen_tried(s);
            if (!c || PQresultStatus(r) != PGRES_COMMAND_OK) {
                PQclear(r);
                PQfinish(c);
                c = NULL;
                backoff = backoff ? backoff * 2 : PG_BACKOFF_MIN_MS;
                if (backoff > PG_BACKOFF_MAX_MS)
                    backoff = PG_BACKOFF_MAX_MS;
                int64_t wait = backoff / 2 + (int64_t)(wfo_random() * (double)(backoff / 2));
                for (int64_t t = 0; t < wait && !atomic_load(&s->listen_stop); t += 100)
                    usleep(100 * 1000);
                continue;
            }
            PQclear(r);
            backoff = 0;
        }
        struct pollfd pfd = {PQsocket(c), POLLIN, 0};
        if (poll(&pfd, 1, 200) < 0 && errno != EINTR)
            break;
        if (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK) {
            PQfinish(c);
            c = NULL;
            continue;
        }
        PGnotify *n;
        while ((n = PQnotifies(c))) {
            char *owner = n->extra, *ns = strchr(owner, '\n'),
                 *queue = ns ? strchr(ns + 1, '\n') : NULL;
            if (ns && queue) {
                *ns++ = 0;
                *queue++ = 0;
                s->ready_cb(s->ready_ud, owner, ns, queue);
            }
            PQfreemem(n);
        }
    }
    PQfinish(c);
    return NULL;
}

static int pg_listen_ready(struct store *base, store_ready_cb cb, void *ud, struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    if (s->listening)
        return wfo_error_set(err, WFO_ESTATE, "the store listens already");
    s->ready_cb = cb;
    s->ready_ud = ud;
    atomic_store(&s->listen_stop, 0);
    pthread_mutex_init(&s->listen_mu, NULL);
    pthread_cond_init(&s->listen_cond, NULL);
    if (pthread_create(&s->listener, NULL, pg_listener_main, s) != 0)
        return wfo_error_set(err, WFO_ESTORE, "starting the listener thread");
    s->listening = 1;
    /* "From now" (store.h): a batch committed after this returns is heard,
     * unless the first LISTEN failed (then from its reconnect on). The
     * first try is bounded by connect_timeout. */
    pthread_mutex_lock(&s->listen_mu);
    while (!s->listen_tried)
        pthread_cond_wait(&s->listen_cond, &s->listen_mu);
    pthread_mutex_unlock(&s->listen_mu);
    return 0;
}

static int pg_apply(struct store *base, const struct store_batch *b, struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct pg_tx t;
    int rc;

    if (store_batch_empty(b))
        return 0;
    rc = pg_tx_begin(s, &t, "starting a batch", err);
    if (rc)
        return rc;
    rc = pg_fence(&t, b, err);
    if (rc == 0)
        rc = pg_put_chunks(&t, b, err);
    if (rc == 0)
        rc = pg_put_timers(&t, b, err);
    if (rc == 0)
        rc = pg_delete(&t, Q_TIMERS_DEL, b->timer_dels, b->n_timer_dels, "timer", err);
    if (rc == 0)
        rc = pg_put_tasks(&t, b, err);
    if (rc == 0)
        rc = pg_delete(&t, Q_TASKS_DEL, b->task_dels, b->n_task_dels, "task", err);
    if (rc == 0)
        rc = pg_put_consumes(&t, b, err);
    if (rc == 0)
        rc = pg_delete(&t, Q_SIGNALS_DEL, b->signal_dels, b->n_signal_dels, "signal", err);
    if (rc == 0 && pg_assigns_seq(b))
        rc = pg_tx_run(&t, Q_SEQ_LOCK, NULL, NULL, err, "ordering the batch's commit");
    if (rc == 0)
        rc = pg_put_execs(&t, b, err);
    if (rc == 0)
        rc = pg_put_events(&t, b->events, b->n_events, NULL, err);
    if (rc == 0)
        rc = pg_put_outbox(&t, b->outbox, b->n_outbox, err);
    if (rc == 0)
        rc = pg_del_execs(&t, b, err);
    if (rc == 0)
        rc = pg_notify_ready(&t, b, err);
    return pg_tx_end(&t, rc, "committing a batch", err);
}

/* ---- shards ---- */

struct pg_shard_row {
    char *owner;
    int64_t epoch, lease_until;
};

/* One transaction: the shards rows FOR UPDATE (no batch's fence, which
 * reads them FOR SHARE, and no other claim runs in between), then one
 * UPDATE of those claimed. */
static int pg_claim_shards(struct store *base, const char *owner, store_shardset want, int64_t now,
                           int64_t lease_until, int force, store_shard_cb cb, void *ud,
                           struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct pg_shard_row rows[STORE_SHARDS] = {{0}};
    store_shardset claimed = 0;
    struct pg_params p;
    struct pg_tx t;
    PGresult *r = NULL;
    int rc, n = 0;

    if (!owner || !*owner)
        return wfo_error_set(err, WFO_EINVAL, "claiming shards needs an owner");
    pg_params_init(&p);
    rc = pg_tx_begin(s, &t, "claiming shards", err);
    if (rc)
        goto out;
    rc = pg_tx_run(&t, Q_SHARDS_LOCK, NULL, &r, err, "reading the shards");
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        int k = (int)pg_int(r, i, 0);
        if (k < 0 || k >= STORE_SHARDS)
            continue;
        rows[k].owner = pg_text(r, i, 1) ? wfo_strdup(pg_text(r, i, 1)) : NULL;
        rows[k].epoch = pg_int(r, i, 2);
        rows[k].lease_until = pg_int(r, i, 3);
    }
    PQclear(r);
    for (int k = 0; rc == 0 && k < STORE_SHARDS; k++) {
        struct pg_shard_row *w = &rows[k];
        if (!(want >> k & 1))
            continue;
        int mine = w->owner && strcmp(w->owner, owner) == 0;
        if (!mine && !force && w->owner && w->lease_until >= now)
            continue; /* another's, and its lease runs */
        if (!mine) {
            free(w->owner);
            w->owner = wfo_strdup(owner);
            w->epoch++;
        }
        w->lease_until = lease_until;
        claimed |= (store_shardset)1 << k;
        n++;
    }
    if (rc == 0 && n) {
        struct wfo_buf *ks = pg_p_array(&p, PG_INT8, n);
        struct wfo_buf *os = pg_p_array(&p, PG_TEXT, n);
        struct wfo_buf *es = pg_p_array(&p, PG_INT8, n);
        struct wfo_buf *ls = pg_p_array(&p, PG_INT8, n);
        for (int k = 0; k < STORE_SHARDS; k++)
            if (claimed >> k & 1) {
                pg_el_int(ks, k);
                pg_el_text(os, rows[k].owner);
                pg_el_int(es, rows[k].epoch);
                pg_el_int(ls, rows[k].lease_until);
            }
        rc = pg_tx_run(&t, Q_SHARDS_SET, &p, NULL, err, "claiming shards");
    }
    rc = pg_tx_end(&t, rc, "claiming shards", err);
out:
    pg_params_release(&p);
    for (int k = 0; rc == 0 && cb && k < STORE_SHARDS; k++)
        if (want >> k & 1) {
            struct store_shard row = {k, rows[k].owner, rows[k].epoch, rows[k].lease_until};
            rc = cb(ud, &row);
        }
    for (int k = 0; k < STORE_SHARDS; k++)
        free(rows[k].owner);
    return rc;
}

static int pg_release_shards(struct store *base, const char *owner, store_shardset which,
                             struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct pg_params p;
    PGresult *r;
    int n = 0, rc;

    for (int k = 0; k < STORE_SHARDS; k++)
        n += which >> k & 1;
    if (!n)
        return 0;
    pg_params_init(&p);
    struct wfo_buf *ks = pg_p_array(&p, PG_INT8, n);
    for (int k = 0; k < STORE_SHARDS; k++)
        if (which >> k & 1)
            pg_el_int(ks, k);
    pg_p_text(&p, owner ? owner : "");
    rc = pg_read(s, Q_SHARDS_RELEASE, &p, &r, "releasing shards", err);
    PQclear(r);
    pg_params_release(&p);
    return rc;
}

static int pg_list_shards(struct store *base, store_shard_cb cb, void *ud, struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    PGresult *r;
    int rc = pg_read(s, Q_SHARDS, NULL, &r, "listing shards", err);

    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        struct store_shard row = {(int)pg_int(r, i, 0), pg_text(r, i, 1), pg_int(r, i, 2),
                                  pg_int(r, i, 3)};
        rc = cb(ud, &row);
    }
    PQclear(r);
    return rc;
}

/* ---- workflows ---- */

/* Under PG_LOCK_WF: two nodes registering one workflow at once number
 * their versions one after the other. */
static int pg_put_workflow(struct store *base, const struct store_workflow *w, int *created,
                           store_workflow_cb cb, void *ud, struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct store_workflow row = *w;
    struct pg_params p;
    struct pg_tx t;
    PGresult *latest = NULL;
    int rc;

    *created = 0;
    if (!w->namespace || !w->name || !w->hash || !w->definition)
        return wfo_error_set(err, WFO_EINVAL, "workflow to store lacks a name, hash or body");
    pg_params_init(&p);
    rc = pg_tx_begin(s, &t, "registering a workflow", err);
    if (rc)
        goto out;
    rc = pg_tx_run(&t, Q_WF_LOCK, NULL, NULL, err, "registering workflow '%s'", w->name);
    if (rc == 0) {
        pg_p_text(&p, w->namespace);
        pg_p_text(&p, w->name);
        rc = pg_tx_run(&t, Q_WF_LATEST, &p, &latest, err, "reading workflow '%s'", w->name);
    }
    if (rc == 0 && PQntuples(latest) && strcmp(pg_text(latest, 0, 3), w->hash) == 0) {
        rc = pg_tx_end(&t, 0, "registering a workflow", err);
        if (rc == 0 && cb) {
            pg_wf_read(latest, 0, &row);
            rc = cb(ud, &row);
        }
        goto out;
    }
    if (rc == 0) {
        row.version = PQntuples(latest) ? (int)pg_int(latest, 0, 2) + 1 : 1;
        row.created_at = w->created_at ? w->created_at : wfo_now_ms();
        pg_params_reset(&p);
        pg_p_text(&p, row.namespace);
        pg_p_text(&p, row.name);
        pg_p_int(&p, row.version);
        pg_p_text(&p, row.hash);
        pg_p_text(&p, row.definition);
        pg_p_int(&p, row.created_at);
        rc = pg_tx_run(&t, Q_WF_INSERT, &p, NULL, err, "writing workflow '%s' version %d", row.name,
                       row.version);
    }
    rc = pg_tx_end(&t, rc, "registering a workflow", err);
    if (rc == 0) {
        *created = 1;
        rc = cb ? cb(ud, &row) : 0;
    }
out:
    PQclear(latest);
    pg_params_release(&p);
    return rc;
}

static int pg_get_workflow(struct store *base, const char *ns, const char *name, int version,
                           store_workflow_cb cb, void *ud, struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct pg_params p;
    PGresult *r;
    int rc;

    pg_params_init(&p);
    pg_p_text(&p, ns);
    pg_p_text(&p, name);
    if (version)
        pg_p_int(&p, version);
    rc = pg_read(s, version ? Q_WF_VERSION : Q_WF_LATEST, &p, &r, "reading a workflow", err);
    pg_params_release(&p);
    if (rc)
        return rc;
    if (PQntuples(r) == 0) {
        if (version)
            rc = wfo_error_set(err, WFO_ENOTFOUND, "workflow '%s' version %d not found",
                               name ? name : "", version);
        else
            rc = wfo_error_set(err, WFO_ENOTFOUND, "workflow '%s' not found", name ? name : "");
    } else {
        rc = pg_wf_rows(r, cb, ud);
    }
    PQclear(r);
    return rc;
}

static int pg_list_workflows(struct store *base, const char *ns, store_workflow_cb cb, void *ud,
                             struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct pg_params p;
    PGresult *r;
    int rc;

    pg_params_init(&p);
    if (ns)
        pg_p_text(&p, ns);
    rc = pg_read(s, ns ? Q_WF_LIST : Q_WF_LIST_ALL, &p, &r, "listing workflows", err);
    pg_params_release(&p);
    if (rc == 0)
        rc = pg_wf_rows(r, cb, ud);
    PQclear(r);
    return rc;
}

static int pg_delete_workflow(struct store *base, const char *ns, const char *name,
                              struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct pg_params p;
    struct pg_tx t;
    PGresult *r = NULL;
    int rc;

    pg_params_init(&p);
    rc = pg_tx_begin(s, &t, "deleting a workflow", err);
    if (rc)
        goto out;
    pg_p_text(&p, ns);
    pg_p_text(&p, name);
    rc = pg_tx_run(&t, Q_WF_LOCK, NULL, NULL, err, "deleting workflow '%s'", name);
    if (rc == 0)
        rc = pg_tx_run(&t, Q_WF_RUNNING, &p, &r, err, "reading executions of workflow '%s'", name);
    if (rc == 0 && PQntuples(r))
        rc = wfo_error_set(err, WFO_ECONFLICT,
                           "workflow '%s' has a running execution ('%s'): cancel or terminate it "
                           "first",
                           name, pg_text(r, 0, 0));
    PQclear(r);
    r = NULL;
    if (rc == 0)
        rc = pg_tx_run(&t, Q_WF_DEL, &p, &r, err, "deleting workflow '%s'", name);
    if (rc == 0 && strtol(PQcmdTuples(r), NULL, 10) == 0)
        rc = wfo_error_set(err, WFO_ENOTFOUND, "workflow '%s' not found", name);
    PQclear(r);
    rc = pg_tx_end(&t, rc, "deleting a workflow", err);
out:
    pg_params_release(&p);
    return rc;
}

/* ---- executions ---- */

static int pg_exec_read(struct pg_store *s, int q, struct pg_params *p, store_exec_cb cb, void *ud,
                        int *n, const char *what, struct wfo_error *err)
{
    PGresult *r;
    int rc = pg_read(s, q, p, &r, what, err);

    if (rc)
        return rc;
    if (n)
        *n = PQntuples(r);
    rc = pg_exec_rows(s, r, cb, ud, err);
    PQclear(r);
    return rc;
}

static int pg_get_exec(struct store *base, const char *id, store_exec_cb cb, void *ud,
                       struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct pg_params p;
    int rc, n = 0;

    pg_params_init(&p);
    pg_p_text(&p, id);
    rc = pg_exec_read(s, Q_EXEC, &p, cb, ud, &n, "reading an execution", err);
    pg_params_release(&p);
    if (rc == 0 && n == 0)
        rc = wfo_error_set(err, WFO_ENOTFOUND, "execution '%s' not found", id ? id : "");
    return rc;
}

static int pg_list_execs(struct store *base, const struct store_exec_filter *f, store_exec_cb cb,
                         void *ud, struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct pg_params p;
    int mask, rc;

    if (!f->namespace)
        return wfo_error_set(err, WFO_EINVAL, "listing executions needs a namespace");
    mask = (f->workflow ? PG_F_WORKFLOW : 0) | (f->status ? PG_F_STATUS : 0) |
           (f->created_after ? PG_F_AFTER : 0) | (f->created_before ? PG_F_BEFORE : 0) |
           (f->before_seq ? PG_F_SEQ : 0);
    pg_params_init(&p);
    pg_p_text(&p, f->namespace);
    pg_p_text(&p, f->workflow);
    pg_p_text(&p, f->status);
    pg_p_int(&p, f->created_after);
    pg_p_int(&p, f->created_before);
    pg_p_int(&p, f->before_seq);
    pg_p_limit(&p, f->limit);
    rc = pg_exec_read(s, Q_LIST + mask, &p, cb, ud, NULL, "listing executions", err);
    pg_params_release(&p);
    return rc;
}

static int pg_list_active_execs(struct store *base, store_shardset shards, store_exec_cb cb,
                                void *ud, struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct pg_params p;
    int rc;

    pg_params_init(&p);
    pg_p_int(&p, shards);
    rc = pg_exec_read(s, Q_EXEC_ACTIVE, &p, cb, ud, NULL, "listing active executions", err);
    pg_params_release(&p);
    return rc;
}

static int pg_list_expired(struct store *base, int64_t before, int limit, store_exec_cb cb,
                           void *ud, struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct pg_params p;
    int rc;

    pg_params_init(&p);
    pg_p_int(&p, before);
    pg_p_limit(&p, limit);
    rc = pg_exec_read(s, Q_EXPIRED, &p, cb, ud, NULL, "listing expired executions", err);
    pg_params_release(&p);
    return rc;
}

/* ---- steps and history: records folded from the chunks ---- */

/* Calls fn for each record of each chunk of r (column 0), in order, until
 * fn returns non-zero (then returned). */
static int pg_records(const PGresult *r, const char *exec_id,
                      int (*fn)(void *ud, const struct chunk_rec *rec), void *ud,
                      struct wfo_error *err)
{
    int rc = 0;

    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        struct chunk_reader cr;
        struct chunk_rec rec;
        rc = chunk_open(&cr, PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0), exec_id, err);
        while (rc == 0 && (rc = chunk_next(&cr, &rec, err)) == 1)
            rc = fn(ud, &rec);
    }
    return rc;
}

/* A step is the last record of its path; the records point into the
 * PGresult, which lives until the callbacks are done, so they are kept by
 * pointer. */
struct pg_steps {
    struct store_step *v;
    int n, alloc;
    struct wfo_map by_path; /* path -> index + 1 */
};

static int pg_step_rec(void *ud, const struct chunk_rec *rec)
{
    struct pg_steps *l = ud;
    if (rec->tag != CHUNK_STEP)
        return 0;
    intptr_t i = (intptr_t)wfo_map_get(&l->by_path, rec->step.path);
    if (i) {
        l->v[i - 1] = rec->step;
        return 0;
    }
    GROW(l->v, l->n, l->alloc);
    l->v[l->n++] = rec->step;
    wfo_map_put(&l->by_path, rec->step.path, (void *)(intptr_t)l->n);
    return 0;
}

static int pg_step_cmp(const void *a, const void *b)
{
    const struct store_step *x = a, *y = b;
    if (x->ord != y->ord)
        return x->ord < y->ord ? -1 : 1;
    return strcmp(x->path ? x->path : "", y->path ? y->path : "");
}

static int pg_list_steps(struct store *base, const char *exec_id, store_step_cb cb, void *ud,
                         struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct pg_steps l = {0};
    struct pg_params p;
    PGresult *r;
    int rc;

    pg_params_init(&p);
    pg_p_text(&p, exec_id);
    rc = pg_read(s, Q_CHUNKS, &p, &r, "listing steps", err);
    pg_params_release(&p);
    if (rc)
        return rc;
    rc = pg_records(r, exec_id, pg_step_rec, &l, err);
    if (rc == 0 && l.n > 1)
        qsort(l.v, (size_t)l.n, sizeof(*l.v), pg_step_cmp);
    for (int i = 0; rc == 0 && i < l.n; i++) {
        l.v[i].exec_id = exec_id;
        rc = cb(ud, &l.v[i]);
    }
    free(l.v);
    wfo_map_release(&l.by_path);
    PQclear(r);
    return rc;
}

static int pg_list_history(struct store *base, const char *exec_id, int64_t after_seq, int limit,
                           store_history_cb cb, void *ud, struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct chunk_page pg = {cb, ud, after_seq, limit, 0, 0};
    struct pg_params p;
    PGresult *r;
    int rc;

    pg_params_init(&p);
    pg_p_text(&p, exec_id);
    pg_p_int(&p, after_seq);
    rc = pg_read(s, Q_HISTORY, &p, &r, "reading history", err);
    pg_params_release(&p);
    if (rc)
        return rc;
    rc = pg_records(r, exec_id, chunk_page_rec, &pg, err);
    PQclear(r);
    return pg.full ? 0 : rc;
}

/* ---- timers and tasks ---- */

static int pg_list_timers(struct store *base, store_shardset shards, int64_t from, int64_t before,
                          store_timer_cb cb, void *ud, struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct pg_params p;
    PGresult *r;
    int rc;

    pg_params_init(&p);
    pg_p_int(&p, from);
    pg_p_int(&p, before);
    pg_p_int(&p, shards);
    rc = pg_read(s, Q_TIMERS, &p, &r, "listing timers", err);
    pg_params_release(&p);
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        struct store_timer t = {
            .id = pg_text(r, i, 0),
            .exec_id = pg_text(r, i, 1),
            .due_at = pg_int(r, i, 2),
            .kind = pg_text(r, i, 3),
            .step = pg_text(r, i, 4),
            .token = pg_int(r, i, 5),
            .data = pg_text(r, i, 6),
        };
        rc = cb(ud, &t);
    }
    PQclear(r);
    return rc;
}

static int pg_list_tasks(struct store *base, store_shardset shards, store_task_cb cb, void *ud,
                         struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct pg_params p;
    PGresult *r;
    int rc;

    pg_params_init(&p);
    pg_p_int(&p, shards);
    rc = pg_read(s, Q_TASKS, &p, &r, "listing tasks", err);
    pg_params_release(&p);
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        struct store_task k = {
            .id = pg_text(r, i, 0),
            .exec_id = pg_text(r, i, 1),
            .namespace = pg_text(r, i, 2),
            .queue = pg_text(r, i, 3),
            .step = pg_text(r, i, 4),
            .attempt = (int)pg_int(r, i, 5),
            .status = pg_text(r, i, 6),
            .lease = pg_text(r, i, 7),
            .input = pg_text(r, i, 8),
            .ready_at = pg_int(r, i, 9),
            .leased_until = pg_int(r, i, 10),
            .created_at = pg_int(r, i, 11),
        };
        rc = cb(ud, &k);
    }
    PQclear(r);
    return rc;
}

/* ---- the server key ---- */

/* Drawn once from the CSPRNG by whichever process gets here first (the
 * INSERT does nothing when a key is there), and read back by all. */
static int pg_server_key(struct store *base, unsigned char *out, size_t size, struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    unsigned char fresh[64];
    struct pg_params p;
    PGresult *r = NULL;
    int rc;

    wfo_assert(size <= sizeof(fresh));
    wfo_random_bytes(fresh, size);
    pg_params_init(&p);
    pg_p_bytes(&p, fresh, size);
    rc = pg_read(s, Q_KEY_PUT, &p, &r, "writing the server key", err);
    pg_params_release(&p);
    PQclear(r);
    r = NULL;
    if (rc == 0)
        rc = pg_read(s, Q_KEY_GET, NULL, &r, "reading the server key", err);
    if (rc == 0 && (PQntuples(r) == 0 || (size_t)PQgetlength(r, 0, 0) < size))
        rc = wfo_error_set(err, WFO_ESTORE, "the store's server key is shorter than %zu bytes",
                           size);
    if (rc == 0)
        memcpy(out, PQgetvalue(r, 0, 0), size);
    PQclear(r);
    return rc;
}

/* ---- events and signals ---- */

/* Under PG_LOCK_SEQ from the lookup on: two posts of one id store it once,
 * and seq is the commit order (invariant 2). */
static int pg_put_event(struct store *base, const struct store_event *ev, int *created,
                        store_event_cb cb, void *ud, struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct store_event row = *ev;
    struct pg_params p;
    struct pg_tx t;
    PGresult *found = NULL;
    int rc;

    *created = 0;
    if (!ev->namespace || !ev->id || !ev->type)
        return wfo_error_set(err, WFO_EINVAL, "event to store lacks a namespace, id or type");
    pg_params_init(&p);
    rc = pg_tx_begin(s, &t, "storing an event", err);
    if (rc)
        goto out;
    rc = pg_tx_run(&t, Q_SEQ_LOCK, NULL, NULL, err, "storing event '%s'", ev->id);
    if (rc == 0) {
        pg_p_text(&p, ev->namespace);
        pg_p_text(&p, ev->id);
        rc = pg_tx_run(&t, Q_EVENT_GET, &p, &found, err, "reading event '%s'", ev->id);
    }
    if (rc == 0 && PQntuples(found)) {
        rc = pg_tx_end(&t, 0, "storing an event", err);
        if (rc == 0 && cb) {
            pg_event_read(found, 0, &row);
            rc = cb(ud, &row);
        }
        goto out;
    }
    if (rc == 0) {
        if (!row.published_at)
            row.published_at = wfo_now_ms();
        if (!row.time)
            row.time = row.published_at;
        rc = pg_put_events(&t, &row, 1, &row.seq, err);
    }
    if (rc == 0 && ev->outbox) {
        /* in the event's transaction (SPEC 2.5 "Outbound") */
        struct store_outbox o = {.event_id = row.id,
                                 .namespace = row.namespace,
                                 .type = row.type,
                                 .key = row.key,
                                 .event = ev->outbox,
                                 .time = row.published_at};
        rc = pg_put_outbox(&t, &o, 1, err);
    }
    rc = pg_tx_end(&t, rc, "storing an event", err);
    if (rc == 0) {
        *created = 1;
        rc = cb ? cb(ud, &row) : 0;
    }
out:
    PQclear(found);
    pg_params_release(&p);
    return rc;
}

static int pg_event_rows(const PGresult *r, store_event_cb cb, void *ud)
{
    for (int i = 0; i < PQntuples(r); i++) {
        struct store_event e;
        pg_event_read(r, i, &e);
        int rc = cb(ud, &e);
        if (rc)
            return rc;
    }
    return 0;
}

static int pg_find_events(struct store *base, const char *ns, const char *type, const char *key,
                          int64_t after, const char *exec_id, int limit, store_event_cb cb,
                          void *ud, struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct pg_params p;
    PGresult *r;
    int rc;

    pg_params_init(&p);
    if (!type) { /* every event since `after`, newest first (store.h) */
        pg_p_int(&p, after);
        pg_p_limit(&p, limit);
        rc = pg_read(s, Q_EVENTS_RECENT, &p, &r, "listing recent events", err);
    } else {
        pg_p_text(&p, ns);
        pg_p_text(&p, type);
        pg_p_text(&p, key);
        pg_p_int(&p, after);
        pg_p_text(&p, exec_id);
        pg_p_limit(&p, limit);
        rc = pg_read(s, key ? Q_EVENTS_FIND : Q_EVENTS_FIND_NOKEY, &p, &r, "finding events", err);
    }
    pg_params_release(&p);
    if (rc == 0)
        rc = pg_event_rows(r, cb, ud);
    PQclear(r);
    return rc;
}

static int pg_put_signal(struct store *base, const struct store_signal *sg, struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct pg_params p;
    struct pg_tx t;
    PGresult *r = NULL;
    int rc;

    if (!sg->id || !sg->exec_id || !sg->name)
        return wfo_error_set(err, WFO_EINVAL, "signal to store lacks an id, execution or name");
    pg_params_init(&p);
    rc = pg_tx_begin(s, &t, "queueing a signal", err);
    if (rc)
        goto out;
    if (sg->owner) {
        int k = store_shard_of(sg->exec_id);
        int64_t epochs[STORE_SHARDS] = {0};
        epochs[k] = sg->epoch;
        rc = pg_fence_shards(&t, sg->owner, (store_shardset)1 << k, epochs, "queueing a signal",
                             err);
    }
    if (rc == 0) {
        pg_p_text(&p, sg->exec_id);
        rc = pg_tx_run(&t, Q_SIGNAL_EXEC, &p, &r, err, "reading execution '%s'", sg->exec_id);
    }
    if (rc == 0 && PQntuples(r) == 0)
        rc = wfo_error_set(err, WFO_ENOTFOUND, "execution '%s' not found", sg->exec_id);
    if (rc == 0) {
        const char *status = pg_text(r, 0, 0);
        if (!status || (strcmp(status, "running") != 0 && strcmp(status, "paused") != 0))
            rc = wfo_error_set(err, WFO_ESTATE, "execution '%s' has ended (%s)", sg->exec_id,
                               status ? status : "?");
    }
    if (rc == 0) {
        pg_params_reset(&p);
        pg_p_text(&p, sg->id);
        pg_p_text(&p, sg->exec_id);
        pg_p_text(&p, sg->name);
        pg_p_text(&p, sg->data);
        pg_p_int(&p, sg->time);
        pg_p_int(&p, store_shard_of(sg->exec_id));
        rc = pg_tx_run(&t, Q_SIGNAL_INSERT, &p, NULL, err, "writing signal '%s'", sg->id);
    }
    rc = pg_tx_end(&t, rc, "queueing a signal", err);
out:
    PQclear(r);
    pg_params_release(&p);
    return rc;
}

static int pg_find_signals(struct store *base, const char *exec_id, const char *name, int limit,
                           store_signal_cb cb, void *ud, struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct pg_params p;
    PGresult *r;
    int rc;

    pg_params_init(&p);
    pg_p_text(&p, exec_id);
    pg_p_text(&p, name);
    pg_p_limit(&p, limit);
    rc = pg_read(s, Q_SIGNALS_FIND, &p, &r, "finding signals", err);
    pg_params_release(&p);
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        struct store_signal g = {
            .seq = pg_int(r, i, 0),
            .id = pg_text(r, i, 1),
            .exec_id = pg_text(r, i, 2),
            .name = pg_text(r, i, 3),
            .data = pg_text(r, i, 4),
            .time = pg_int(r, i, 5),
        };
        rc = cb(ud, &g);
    }
    PQclear(r);
    return rc;
}

/* ---- the outbox ---- */

static int pg_list_outbox(struct store *base, const char *ns, int64_t after_seq, int limit,
                          store_outbox_cb cb, void *ud, struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct pg_params p;
    PGresult *r;
    int rc;

    pg_params_init(&p);
    pg_p_text(&p, ns);
    pg_p_int(&p, after_seq);
    pg_p_limit(&p, limit);
    rc = pg_read(s, Q_OUTBOX, &p, &r, "reading the outbox", err);
    pg_params_release(&p);
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        struct store_outbox o = {
            .seq = pg_int(r, i, 0),
            .event_id = pg_text(r, i, 1),
            .namespace = pg_text(r, i, 2),
            .type = pg_text(r, i, 3),
            .key = pg_text(r, i, 4),
            .exec_id = pg_text(r, i, 5),
            .event = pg_text(r, i, 6),
            .time = pg_int(r, i, 7),
        };
        rc = cb(ud, &o);
    }
    PQclear(r);
    return rc;
}

static int pg_outbox_seq(struct store *base, const char *ns, const char *event_id, int64_t *seq,
                         struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct pg_params p;
    PGresult *r;
    int rc;

    *seq = 0;
    pg_params_init(&p);
    pg_p_text(&p, ns);
    if (event_id)
        pg_p_text(&p, event_id);
    rc = pg_read(s, event_id ? Q_OUTBOX_ID : Q_OUTBOX_LAST, &p, &r, "reading the outbox", err);
    pg_params_release(&p);
    if (rc)
        return rc;
    if (PQntuples(r))
        *seq = pg_int(r, 0, 0);
    else
        rc = wfo_error_set(err, WFO_ENOTFOUND, "event '%s' is not in the outbox",
                           event_id ? event_id : "");
    PQclear(r);
    return rc;
}

static int pg_delete_outbox(struct store *base, int64_t before, int limit, int *n,
                            struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct pg_params p;
    PGresult *r;
    int rc;

    *n = 0;
    pg_params_init(&p);
    pg_p_int(&p, before);
    pg_p_limit(&p, limit);
    rc = pg_read(s, Q_OUTBOX_DEL, &p, &r, "deleting old outbox rows", err);
    pg_params_release(&p);
    if (rc == 0)
        *n = (int)strtol(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return rc;
}

/* ---- nodes (a cluster) ---- */

#define PG_NODE_FORGET_MS (3600 * 1000) /* sqlite.c's SQ_NODE_FORGET_MS */

static int pg_beat_node(struct store *base, const struct store_node *n, struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct pg_params p;
    PGresult *r;

    if (!n->id || !*n->id)
        return wfo_error_set(err, WFO_EINVAL, "a node needs an id");
    pg_params_init(&p);
    pg_p_text(&p, n->id);
    pg_p_text(&p, n->url);
    pg_p_int(&p, n->started_at);
    pg_p_int(&p, n->seen_at);
    pg_p_int(&p, n->seen_at > PG_NODE_FORGET_MS ? n->seen_at - PG_NODE_FORGET_MS : 0);
    int rc = pg_read(s, Q_NODE_BEAT, &p, &r, "recording a node", err);
    PQclear(r);
    pg_params_release(&p);
    return rc;
}

static int pg_list_nodes(struct store *base, int64_t since, store_node_cb cb, void *ud,
                         struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct pg_params p;
    PGresult *r;

    pg_params_init(&p);
    pg_p_int(&p, since);
    int rc = pg_read(s, Q_NODES, &p, &r, "listing the nodes", err);
    pg_params_release(&p);
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        struct store_node row = {pg_text(r, i, 0), pg_text(r, i, 1), pg_int(r, i, 2),
                                 pg_int(r, i, 3)};
        rc = cb(ud, &row);
    }
    PQclear(r);
    return rc;
}

/* ---- webhook subscriptions ---- */

static int pg_sub_rows(const PGresult *r, store_subscription_cb cb, void *ud)
{
    int rc = 0;
    for (int i = 0; rc == 0 && cb && i < PQntuples(r); i++) {
        struct store_subscription row = {
            .id = pg_text(r, i, 0),
            .namespace = pg_text(r, i, 1),
            .url = pg_text(r, i, 2),
            .types = pg_text(r, i, 3),
            .workflow = pg_text(r, i, 4),
            .secret = pg_text(r, i, 5),
            .created_at = pg_int(r, i, 6),
            .cursor = pg_int(r, i, 7),
            .status = pg_text(r, i, 8),
            .failures = (int)pg_int(r, i, 9),
            .next_attempt_at = pg_int(r, i, 10),
            .last_error = pg_text(r, i, 11),
            .last_delivery_at = pg_int(r, i, 12),
            .delivered = pg_int(r, i, 13),
        };
        rc = cb(ud, &row);
    }
    return rc;
}

/* A time parameter: 0 is NULL (store.h: 0 means null). */
static void pg_p_time(struct pg_params *p, int64_t v)
{
    if (v)
        pg_p_int(p, v);
    else
        pg_p_null(p);
}

static int pg_put_subscription(struct store *base, const struct store_subscription *sub,
                               store_subscription_cb cb, void *ud, struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct pg_params p;
    PGresult *r;

    if (!sub->id || !sub->namespace || !sub->url || !sub->types || !sub->secret)
        return wfo_error_set(err, WFO_EINVAL,
                             "subscription to store lacks an id, namespace, url, types or secret");
    pg_params_init(&p);
    pg_p_text(&p, sub->id);
    pg_p_text(&p, sub->namespace);
    pg_p_text(&p, sub->url);
    pg_p_text(&p, sub->types);
    pg_p_text(&p, sub->workflow);
    pg_p_text(&p, sub->secret);
    pg_p_int(&p, sub->created_at);
    int rc = pg_read(s, Q_SUB_INSERT, &p, &r, "writing a subscription", err);
    pg_params_release(&p);
    if (rc == 0 && PQntuples(r) == 0)
        rc = wfo_error_set(err, WFO_ECONFLICT, "subscription '%s' exists", sub->id);
    if (rc == 0)
        rc = pg_sub_rows(r, cb, ud);
    PQclear(r);
    return rc;
}

static int pg_get_subscription(struct store *base, const char *ns, const char *id,
                               store_subscription_cb cb, void *ud, struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct pg_params p;
    PGresult *r;

    pg_params_init(&p);
    pg_p_text(&p, id ? id : "");
    pg_p_text(&p, ns);
    int rc = pg_read(s, Q_SUB_GET, &p, &r, "reading a subscription", err);
    pg_params_release(&p);
    if (rc == 0 && PQntuples(r) == 0)
        rc = wfo_error_set(err, WFO_ENOTFOUND, "subscription '%s' not found", id ? id : "");
    if (rc == 0)
        rc = pg_sub_rows(r, cb, ud);
    PQclear(r);
    return rc;
}

static int pg_list_subscriptions(struct store *base, const char *ns, store_subscription_cb cb,
                                 void *ud, struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct pg_params p;
    PGresult *r;

    pg_params_init(&p);
    if (ns)
        pg_p_text(&p, ns);
    int rc = pg_read(s, ns ? Q_SUBS : Q_SUBS_ALL, ns ? &p : NULL, &r, "listing subscriptions", err);
    pg_params_release(&p);
    if (rc == 0)
        rc = pg_sub_rows(r, cb, ud);
    PQclear(r);
    return rc;
}

/* Runs an UPDATE or DELETE of one subscription row; *n gets the rows it
 * changed. */
static int pg_sub_write(struct pg_store *s, int q, struct pg_params *p, int *n, const char *what,
                        struct wfo_error *err)
{
    PGresult *r;
    int rc = pg_read(s, q, p, &r, what, err);
    *n = rc == 0 ? (int)strtol(PQcmdTuples(r), NULL, 10) : 0;
    PQclear(r);
    return rc;
}

static int pg_delete_subscription(struct store *base, const char *ns, const char *id,
                                  struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct pg_params p;
    int n = 0;

    pg_params_init(&p);
    pg_p_text(&p, id ? id : "");
    pg_p_text(&p, ns ? ns : "");
    int rc = pg_sub_write(s, Q_SUB_DEL, &p, &n, "deleting a subscription", err);
    pg_params_release(&p);
    if (rc == 0 && n == 0)
        rc = wfo_error_set(err, WFO_ENOTFOUND, "subscription '%s' not found", id ? id : "");
    return rc;
}

/* After an UPDATE guarded by cursor < seq that changed nothing: was the
 * subscription gone (WFO_ENOTFOUND) or the row done already (WFO_ECONFLICT)? */
static int pg_sub_unchanged(struct pg_store *s, const char *id, int64_t seq, struct wfo_error *err)
{
    struct pg_params p;
    PGresult *r;

    pg_params_init(&p);
    pg_p_text(&p, id);
    int rc = pg_read(s, Q_SUB_EXISTS, &p, &r, "reading a subscription", err);
    pg_params_release(&p);
    if (rc == 0)
        rc =
            PQntuples(r)
                ? wfo_error_set(err, WFO_ECONFLICT,
                                "subscription '%s' is past outbox seq %" PRId64 " already", id, seq)
                : wfo_error_set(err, WFO_ENOTFOUND, "subscription '%s' not found", id);
    PQclear(r);
    return rc;
}

static int pg_subscription_delivered(struct store *base, const char *id, int64_t seq, int delivered,
                                     int64_t at, struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct pg_params p;
    int n = 0;

    if (!id)
        return wfo_error_set(err, WFO_EINVAL, "no subscription id");
    pg_params_init(&p);
    pg_p_text(&p, id);
    pg_p_int(&p, seq);
    pg_p_int(&p, delivered ? 1 : 0);
    pg_p_time(&p, at);
    int rc = pg_sub_write(s, Q_SUB_DELIVERED, &p, &n, "moving a subscription's cursor", err);
    pg_params_release(&p);
    if (rc == 0 && n == 0)
        rc = pg_sub_unchanged(s, id, seq, err);
    return rc;
}

static int pg_subscription_failed(struct store *base, const char *id, int64_t seq, int failures,
                                  const char *status, int64_t next_attempt_at, const char *error,
                                  struct wfo_error *err)
{
    struct pg_store *s = pg_store(base);
    struct pg_params p;
    int n = 0;

    if (!id || !status)
        return wfo_error_set(err, WFO_EINVAL, "no subscription id or status");
    pg_params_init(&p);
    pg_p_text(&p, id);
    pg_p_int(&p, seq);
    pg_p_int(&p, failures);
    pg_p_text(&p, status);
    pg_p_time(&p, next_attempt_at);
    pg_p_text(&p, error);
    int rc = pg_sub_write(s, Q_SUB_FAILED, &p, &n, "recording a subscription's failure", err);
    pg_params_release(&p);
    if (rc == 0 && n == 0)
        rc = pg_sub_unchanged(s, id, seq, err);
    return rc;
}

const struct store_ops store_postgres_ops = {
    .name = "postgres",
    .version = 1,
    .accepts = pg_accepts,
    .open = pg_open,
    .close = pg_close,
    .ping = pg_ping,
    .apply = pg_apply,
    .claim_shards = pg_claim_shards,
    .release_shards = pg_release_shards,
    .list_shards = pg_list_shards,
    .put_workflow = pg_put_workflow,
    .get_workflow = pg_get_workflow,
    .list_workflows = pg_list_workflows,
    .get_exec = pg_get_exec,
    .list_execs = pg_list_execs,
    .list_active_execs = pg_list_active_execs,
    .list_steps = pg_list_steps,
    .list_history = pg_list_history,
    .list_timers = pg_list_timers,
    .list_tasks = pg_list_tasks,
    .delete_workflow = pg_delete_workflow,
    .list_expired = pg_list_expired,
    .set_pool_size = pg_set_pool_size,
    .server_key = pg_server_key,
    .put_event = pg_put_event,
    .find_events = pg_find_events,
    .put_signal = pg_put_signal,
    .find_signals = pg_find_signals,
    .list_outbox = pg_list_outbox,
    .outbox_seq = pg_outbox_seq,
    .delete_outbox = pg_delete_outbox,
    .beat_node = pg_beat_node,
    .list_nodes = pg_list_nodes,
    .put_subscription = pg_put_subscription,
    .get_subscription = pg_get_subscription,
    .list_subscriptions = pg_list_subscriptions,
    .delete_subscription = pg_delete_subscription,
    .subscription_delivered = pg_subscription_delivered,
    .subscription_failed = pg_subscription_failed,
    .listen_ready = pg_listen_ready,
};
