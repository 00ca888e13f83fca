/*
 * map.c - string-keyed hash map (see map.h). FNV-1a hashing, power-of-two
 * capacity, load factor below 0.7 counting tombstones; a rehash sizes the
 * table for the live entries only.
 */
#include "common/compat.h"

#include <stdlib.h>
#include <string.h>

#include "map.h"
#include "util.h"

static const char tomb[1];
#define WFO_MAP_TOMB tomb

static unsigned map_hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

void wfo_map_release(struct wfo_map *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->len = m->used = 0;
}

static struct wfo_map_slot *map_find(const struct wfo_map *m, const char *key, unsigned h)
{
    if (!m->cap)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct wfo_map_slot *s = &m->slots[i];
        if (!s->key)
            return NULL;
        if (s->key != WFO_MAP_TOMB && s->hash == h && strcmp(s->key, key) == 0)
            return s;
    }
}

void *wfo_map_get(const struct wfo_map *m, const char *key)
{
    struct wfo_map_slot *s = map_find(m, key, map_hash(key));
    return s ? s->value : NULL;
}

/* Rehashes into a capacity made for the live entries (under half full),
 * dropping the tombstones: a map whose keys come and go (executions in
 * memory, running jobs) keeps the size of what it holds at once, not of
 * all it ever held; one that fills up doubles. */
static void map_grow(struct wfo_map *m)
{
    struct wfo_map old = *m;
    m->cap = 16;
    while (old.len * 2 >= m->cap)
        m->cap *= 2;
    m->slots = wfo_calloc(m->cap, sizeof(*m->slots));
    m->len = m->used = 0;
    for (size_t i = 0; i < old.cap; i++) {
        struct wfo_map_slot *s = &old.slots[i];
        if (s->key && s->key != WFO_MAP_TOMB)
            wfo_map_put(m, s->key, s->value);
    }
    free(old.slots);
}

const char *wfo_map_key(const struct wfo_map *m, const char *key)
{
    struct wfo_map_slot *s = map_find(m, key, map_hash(key));
    return s ? s->key : NULL;
}

void *wfo_map_put(struct wfo_map *m, const char *key, void *value)
{
    unsigned h = map_hash(key);
    struct wfo_map_slot *s = map_find(m, key, h);
    if (s) {
        void *prev = s->value;
        s->key = key;
        s->value = value;
        return prev;
    }
    if ((m->used + 1) * 10 >= m->cap * 7)
        map_grow(m);
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        s = &m->slots[i];
        if (!s->key || s->key == WFO_MAP_TOMB) {
            if (!s->key)
                m->used++;
            s->key = key;
            s->value = value;
            s->hash = h;
            m->len++;
            return NULL;
        }
    }
}

void *wfo_map_del(struct wfo_map *m, const char *key)
{
    struct wfo_map_slot *s = map_find(m, key, map_hash(key));
    if (!s)
        return NULL;
    void *v = s->value;
    s->key = WFO_MAP_TOMB;
    s->value = NULL;
    m->len--;
    return v;
}

int wfo_map_next(const struct wfo_map *m, size_t *i, const char **key, void **value)
{
    for (; *i < m->cap; (*i)++) {
        struct wfo_map_slot *s = &m->slots[*i];
        if (s->key && s->key != WFO_MAP_TOMB) {
            if (key)
                *key = s->key;
            if (value)
                *value = s->value;
            (*i)++;
            return 1;
        }
    }
    return 0;
}
