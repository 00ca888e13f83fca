/*
 * map.h - a string-keyed hash map of pointers (open addressing, linear
 * probing). Keys are borrowed: the caller keeps each key alive while it is
 * in the map (usually the key is a field of the value).
 */
#ifndef WFO_COMMON_MAP_H
#define WFO_COMMON_MAP_H

#include <stddef.h>

struct wfo_map {
    struct wfo_map_slot {
        const char *key; /* NULL: empty; WFO_MAP_TOMB: deleted */
        void *value;
        unsigned hash;
    } * slots;
    size_t cap, len, used;
};

#define WFO_MAP_INIT                                                                               \
    {                                                                                              \
        NULL, 0, 0, 0                                                                              \
    }

void wfo_map_release(struct wfo_map *m);
void *wfo_map_get(const struct wfo_map *m, const char *key);
/* The key pointer stored for key (the one given when it was put), or NULL. */
const char *wfo_map_key(const struct wfo_map *m, const char *key);
/* Inserts or replaces (key and value); returns the previous value or NULL. */
void *wfo_map_put(struct wfo_map *m, const char *key, void *value);
/* Removes; returns the value or NULL. */
void *wfo_map_del(struct wfo_map *m, const char *key);

/* Iteration: for (size_t i = 0; wfo_map_next(m, &i, &k, &v);) */
int wfo_map_next(const struct wfo_map *m, size_t *i, const char **key, void **value);

#endif
