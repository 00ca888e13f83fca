/*
 * rawpg.h - PostgreSQL databases made and read by hand, below the store
 * interface, for the store contract suite (suite.h): a fresh database per
 * store name on the server that $WFO_TEST_PG names (tests/pg/pg.sh starts
 * a throwaway one), and a way to run SQL on one and read its answer. The
 * only file of the suite that includes <libpq-fe.h>, as store/postgres/ is
 * the only one in src/.
 */
#ifndef WFO_TESTS_STORE_RAWPG_H
#define WFO_TESTS_STORE_RAWPG_H

#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

/* url with its database (the URI's path) replaced by db:
 * postgres://AUTH/OLD?PARAMS -> postgres://AUTH/DB?PARAMS. */
static inline const char *rawpg_url(const char *url, const char *db, char *out, size_t size)
{
    const char *auth = strstr(url, "://");
    auth = auth ? auth + 3 : url;
    size_t alen = strcspn(auth, "/?");
    const char *rest = auth + alen;
    if (*rest == '/')
        rest += strcspn(rest, "?");
    snprintf(out, size, "%.*s/%s%s", (int)(auth + alen - url), url, db, rest);
    return out;
}

/* Runs sql (one or several statements) on the database of url; the rows of
 * the last statement go to out ('|' between columns, '\n' after each row,
 * NULL as "~"). 0, or -1 with the server's message in out. */
static inline int rawpg_run(const char *url, const char *sql, char *out, size_t size)
{
    PGconn *c = PQconnectdb(url);
    size_t len = 0;
    int rc = -1;

    out[0] = '\0';
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(out, size, "postgres: %s", PQerrorMessage(c));
        PQfinish(c);
        return -1;
    }
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        rc = 0;
        for (int i = 0; i < PQntuples(r) && len < size; i++) {
            for (int k = 0; k < PQnfields(r) && len < size; k++) {
                int n = snprintf(out + len, size - len, "%s%s", k ? "|" : "",
                                 PQgetisnull(r, i, k) ? "~" : PQgetvalue(r, i, k));
                len += n > 0 ? (size_t)n : 0;
            }
            if (len < size) {
                int n = snprintf(out + len, size - len, "\n");
                len += n > 0 ? (size_t)n : 0;
            }
        }
    } else {
        snprintf(out, size, "postgres: %s", PQresultErrorMessage(r));
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}

/* The database name of store `name` of run `run`: lower case letters,
 * digits and '_' only. */
static inline const char *rawpg_dbname(const char *run, const char *name, char *out, size_t size)
{
    size_t n = (size_t)snprintf(out, size, "wfo_%s_%s", run, name);
    for (size_t i = 0; i < n && i < size; i++) {
        char ch = out[i];
        if (ch >= 'A' && ch <= 'Z')
            out[i] = (char)(ch - 'A' + 'a');
        else if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')))
            out[i] = '_';
    }
    return out;
}

#endif
