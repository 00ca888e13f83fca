/*
 * test_walbuf.c - the VFS that writes a commit's WAL frames in one call
 * (store/sqlite/walbuf.c): what a commit wrote is in the file for another
 * connection (W2), for a transaction larger than the buffer and than one
 * write, for the writer's own reads of frames it spilled (W1), and after
 * the writing process is killed right after its commits (W1: the sync
 * covers every frame).
 */
#include "common/compat.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/sqlite/walbuf.h"
#include "../tap.h"

static char dir[] = "/tmp/wfo-walbuf-XXXXXX";
static char path[256];

static sqlite3 *open_db(const char *vfs)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs) != SQLITE_OK)
        return NULL;
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static int exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static long long one(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    long long v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* A new database through the VFS: WAL, synchronous=FULL, as the store. */
static sqlite3 *fresh(int page_size)
{
    char sql[64];
    snprintf(path, sizeof(path), "%s/t.db", dir);
    unlink(path);
    snprintf(sql, sizeof(sql), "%s/t.db-wal", dir);
    unlink(sql);
    sqlite3 *db = open_db(WALBUF_VFS);
    snprintf(sql, sizeof(sql), "PRAGMA page_size = %d", page_size);
    if (!db || exec(db, sql) || exec(db, "PRAGMA journal_mode = WAL") ||
        exec(db, "PRAGMA synchronous = FULL") ||
        exec(db, "CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")) {
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

TEST(commits_are_seen_by_another_connection)
{
    sqlite3 *w = fresh(16384), *r = open_db(NULL);
    ok(w && r, "opened");
    int seen = 1;
    for (int i = 1; i <= 200 && w && r; i++) {
        char sql[128];
        snprintf(sql, sizeof(sql), "INSERT INTO t VALUES (%d, randomblob(%d))", i, 100 + i * 50);
        if (exec(w, sql) != SQLITE_OK)
            seen = 0;
        if (i % 25 == 0)
            seen = seen && one(r, "SELECT count(*) FROM t") == i;
    }
    ok(seen, "every 25 commits the reader (the default VFS) counts them all");
    ok(one(r, "SELECT sum(length(v)) FROM t") == 200LL * 100 + 50LL * 200 * 201 / 2,
       "and their bytes");
    sqlite3_close(r);
    sqlite3_close(w);
}

TEST(a_transaction_larger_than_the_buffer)
{
    sqlite3 *w = fresh(4096);
    ok(w != NULL, "opened");
    /* 12 MiB in one commit: past the 8 MiB buffer and many 120 KiB writes */
    size_t n = 3u << 20;
    unsigned char *blob = malloc(n);
    for (size_t i = 0; i < n; i++)
        blob[i] = (unsigned char)(i * 2654435761u >> 13);
    sqlite3_stmt *st = NULL;
    int rc = exec(w, "BEGIN");
    sqlite3_prepare_v2(w, "INSERT INTO t VALUES (?1, ?2)", -1, &st, NULL);
    for (int k = 1; k <= 4 && rc == SQLITE_OK; k++) {
        sqlite3_bind_int(st, 1, k);
        sqlite3_bind_blob(st, 2, blob, (int)n, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    is_int(rc == SQLITE_OK ? exec(w, "COMMIT") : rc, SQLITE_OK, "committed");
    sqlite3 *r = open_db(NULL);
    int same = 1;
    for (int k = 1; k <= 4; k++) {
        st = NULL;
        sqlite3_prepare_v2(r, "SELECT v FROM t WHERE k = ?1", -1, &st, NULL);
        sqlite3_bind_int(st, 1, k);
        same = same && sqlite3_step(st) == SQLITE_ROW && (size_t)sqlite3_column_bytes(st, 0) == n &&
               memcmp(sqlite3_column_blob(st, 0), blob, n) == 0;
        sqlite3_finalize(st);
    }
    ok(same, "each blob reads back whole through the default VFS");
    free(blob);
    sqlite3_close(r);
    sqlite3_close(w);
}

TEST(spilled_frames_read_back_and_rolled_back)
{
    sqlite3 *w = fresh(4096);
    ok(w != NULL, "opened");
    /* a cache of 10 pages: a big transaction spills its pages to the WAL
     * before it commits, and the writer reads them back from there */
    exec(w, "PRAGMA cache_size = 10");
    exec(w, "PRAGMA cache_spill = 1");
    exec(w, "BEGIN");
    exec(w, "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3000)"
            " INSERT INTO t SELECT i, randomblob(300) FROM c");
    is_int((int)one(w, "SELECT count(*) FROM t WHERE length(v) = 300"), 3000,
           "the writer reads its spilled pages");
    exec(w, "ROLLBACK");
    is_int((int)one(w, "SELECT count(*) FROM t"), 0, "rolled back");
    exec(w, "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3000)"
            " INSERT INTO t SELECT i, zeroblob(300) FROM c");
    sqlite3 *r = open_db(NULL);
    is_int((int)one(r, "SELECT count(*) FROM t"), 3000, "then a commit is seen");
    char msg[64] = "";
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(r, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        snprintf(msg, sizeof(msg), "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    is_str(msg, "ok", "integrity_check");
    sqlite3_close(r);
    sqlite3_close(w);
}

TEST(commits_survive_a_kill)
{
    sqlite3 *w = fresh(16384);
    ok(w != NULL, "opened");
    sqlite3_close(w);
    int fd[2];
    if (pipe(fd) != 0) {
        ok(0, "pipe");
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        sqlite3 *c = open_db(WALBUF_VFS);
        exec(c, "PRAGMA synchronous = FULL");
        for (int i = 1; i <= 300; i++) {
            char sql[96];
            snprintf(sql, sizeof(sql), "INSERT INTO t VALUES (%d, randomblob(%d))", i, i * 37);
            if (exec(c, sql) != SQLITE_OK)
                _exit(3);
            /* told only once the commit returned */
            if (write(fd[1], &i, sizeof(i)) != (ssize_t)sizeof(i))
                _exit(4);
        }
        raise(SIGKILL); /* no close, no checkpoint */
        _exit(5);
    }
    close(fd[1]);
    int last = 0, i;
    while (read(fd[0], &i, sizeof(i)) == (ssize_t)sizeof(i))
        last = i;
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the writer was killed");
    is_int(last, 300, "after 300 commits");
    sqlite3 *r = open_db(NULL);
    is_int((int)one(r, "SELECT count(*) FROM t"), last, "every commit it was told of is there");
    is_int((int)one(r, "SELECT sum(length(v)) FROM t"), 37 * 300 * 301 / 2, "whole");
    sqlite3_close(r);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    if (walbuf_register() != SQLITE_OK) {
        fprintf(stderr, "walbuf_register failed\n");
        return 1;
    }
    int rc = tap_run();
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        rc = rc ? rc : 1;
    return rc;
}
