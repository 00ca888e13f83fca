/*
 * arena.h - bump allocation in blocks, freed all at once (SQLite's
 * lookaside, h2o's mem pool): for the many short strings that live exactly
 * as long as one batch.
 *
 * Pointers stay valid until wfo_arena_reset() or wfo_arena_release();
 * reset keeps the blocks for reuse (up to ARENA_SPARE_MAX of them: 1 MiB),
 * so a steady workload allocates nothing.
 */
#ifndef WFO_COMMON_ARENA_H
#define WFO_COMMON_ARENA_H

#include <stddef.h>

struct wfo_arena_block;

struct wfo_arena {
    struct wfo_arena_block *head;  /* the block being filled; older ones follow */
    struct wfo_arena_block *spare; /* blocks a reset kept, filled next */
    int n_spare;
};

#define WFO_ARENA_INIT                                                                             \
    {                                                                                              \
        NULL                                                                                       \
    }

/* n bytes, aligned for any type. Never NULL (aborts when out of memory). */
void *wfo_arena_alloc(struct wfo_arena *a, size_t n);
/* A NUL-terminated copy of len bytes of s. */
char *wfo_arena_strndup(struct wfo_arena *a, const char *s, size_t len);
void wfo_arena_reset(struct wfo_arena *a);
void wfo_arena_release(struct wfo_arena *a);

#endif
