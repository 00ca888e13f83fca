/*
 * test_map.c - unit tests of src/common/map.c: put, get, replace, delete
 * (tombstones reused, lookups past them still found), growth keeping every
 * entry, iteration visiting each live entry once, borrowed keys, and a map
 * whose keys come and go keeping its size.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/map.h"
#include "../tap.h"
#include "common/banned.h"

#define N 5000

TEST(put_get_replace_delete)
{
    struct wfo_map m = WFO_MAP_INIT;
    int a = 1, b = 2, c = 3;
    ok(wfo_map_get(&m, "x") == NULL, "empty map: nothing");
    ok(wfo_map_del(&m, "x") == NULL, "empty map: nothing to delete");
    ok(wfo_map_put(&m, "x", &a) == NULL, "first put: no previous value");
    ok(wfo_map_put(&m, "y", &b) == NULL, "another key");
    ok(wfo_map_get(&m, "x") == &a, "get x");
    ok(wfo_map_get(&m, "y") == &b, "get y");
    ok(wfo_map_get(&m, "z") == NULL, "missing key");
    is_int(m.len, 2, "two entries");
    char key[] = "x";
    ok(wfo_map_put(&m, key, &c) == &a, "replace returns the old value");
    ok(wfo_map_get(&m, "x") == &c, "replaced");
    ok(wfo_map_key(&m, "x") == key, "the key stored is the last one given");
    ok(wfo_map_key(&m, "nope") == NULL, "no key for a missing entry");
    is_int(m.len, 2, "still two");
    ok(wfo_map_del(&m, "x") == &c, "delete returns the value");
    ok(wfo_map_get(&m, "x") == NULL, "gone");
    ok(wfo_map_get(&m, "y") == &b, "the other stays");
    is_int(m.len, 1, "one entry");
    ok(wfo_map_put(&m, "", &a) == NULL, "the empty key");
    ok(wfo_map_get(&m, "") == &a, "is a key like any");
    wfo_map_release(&m);
    wfo_map_release(&m); /* twice: no-op */
}

/* Keys that come and go, never more than 8 at once: the table is sized for
 * those (it grew with every key ever put, 1,000,000 of them here: a server's
 * map of executions in memory after a million workflows). */
TEST(churn_keeps_its_size)
{
    struct wfo_map m = WFO_MAP_INIT;
    static char keys[8][24];
    int v = 0, lost = 0;
    size_t most = 0;
    for (int i = 0; i < 1000000; i++) {
        char *k = keys[i % 8];
        if (i >= 8)
            lost += wfo_map_del(&m, k) != &v;
        snprintf(k, sizeof(keys[0]), "exec-%d", i);
        wfo_map_put(&m, k, &v);
        if (m.cap > most)
            most = m.cap;
    }
    is_int(lost, 0, "each deleted key was there");
    is_int(m.len, 8, "eight live");
    ok(most <= 64, "the table stayed small (at most %zu slots)", most);
    int found = 0;
    for (int i = 1000000 - 8; i < 1000000; i++) {
        char k[24];
        snprintf(k, sizeof(k), "exec-%d", i);
        found += wfo_map_get(&m, k) == &v;
    }
    is_int(found, 8, "the live ones found");
    wfo_map_release(&m);
}

TEST(grow_and_iterate)
{
    struct wfo_map m = WFO_MAP_INIT;
    static char keys[N][16];
    static int vals[N];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%d", i);
        vals[i] = i;
        wfo_map_put(&m, keys[i], &vals[i]);
    }
    is_int(m.len, N, "all in");
    ok(m.cap > N, "grown past them");
    int found = 0;
    for (int i = 0; i < N; i++)
        found += wfo_map_get(&m, keys[i]) == &vals[i];
    is_int(found, N, "each found after growing");

    /* delete every other: lookups must go past the tombstones */
    for (int i = 0; i < N; i += 2)
        wfo_map_del(&m, keys[i]);
    is_int(m.len, N / 2, "half left");
    found = 0;
    int wrong = 0;
    for (int i = 0; i < N; i++) {
        void *v = wfo_map_get(&m, keys[i]);
        if (i % 2)
            found += v == &vals[i];
        else
            wrong += v != NULL;
    }
    is_int(found, N / 2, "odd keys found past tombstones");
    is_int(wrong, 0, "even keys gone");

    static int seen[N];
    memset(seen, 0, sizeof(seen));
    const char *k;
    void *v;
    int visits = 0, mismatch = 0;
    for (size_t i = 0; wfo_map_next(&m, &i, &k, &v);) {
        int n = *(int *)v;
        visits++;
        seen[n]++;
        mismatch += strcmp(k, keys[n]) != 0;
    }
    is_int(visits, N / 2, "iteration: each live entry");
    int twice = 0, missed = 0;
    for (int i = 1; i < N; i += 2) {
        twice += seen[i] > 1;
        missed += seen[i] == 0;
    }
    is_int(twice + missed, 0, "each once");
    is_int(mismatch, 0, "with its key");

    /* put again after deletes: tombstones reused, the table does not run full */
    size_t cap = m.cap;
    for (int r = 0; r < 10; r++) {
        for (int i = 0; i < N; i += 2)
            wfo_map_put(&m, keys[i], &vals[i]);
        for (int i = 0; i < N; i += 2)
            wfo_map_del(&m, keys[i]);
    }
    is_int(m.len, N / 2, "len after churn");
    ok(m.cap <= 2 * cap, "churn does not keep growing the table (%zu -> %zu)", cap, m.cap);
    found = 0;
    for (int i = 1; i < N; i += 2)
        found += wfo_map_get(&m, keys[i]) == &vals[i];
    is_int(found, N / 2, "entries intact after churn");
    wfo_map_release(&m);
}

int main(void)
{
    return tap_run();
}
