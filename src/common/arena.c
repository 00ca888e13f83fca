/*
 * arena.c - bump allocation in blocks (arena.h).
 */
#include "common/compat.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "util.h"

#define ARENA_BLOCK (64 * 1024)
/* Blocks a reset keeps besides the first: the text of a large batch
 * (group commit) takes several, and freeing a block this size makes glibc
 * consolidate its free lists; more are freed. */
#define ARENA_SPARE_MAX 15

struct wfo_arena_block {
    struct wfo_arena_block *next;
    size_t used, size;
    alignas(max_align_t) char data[];
};

static struct wfo_arena_block *block_new(size_t size, struct wfo_arena_block *next)
{
    struct wfo_arena_block *b = wfo_malloc(sizeof(*b) + size);
    b->next = next;
    b->used = 0;
    b->size = size;
    return b;
}

void *wfo_arena_alloc(struct wfo_arena *a, size_t n)
{
    size_t align = alignof(max_align_t);
    n = (n + align - 1) & ~(align - 1);
    struct wfo_arena_block *b = a->head;
    if (b && b->size - b->used >= n) {
        void *p = b->data + b->used;
        b->used += n;
        return p;
    }
    if (n > ARENA_BLOCK / 4) {
        /* a large one gets a block of its own, behind the current one */
        struct wfo_arena_block *big = block_new(n, b ? b->next : NULL);
        big->used = n;
        if (b)
            b->next = big;
        else
            a->head = big;
        return big->data;
    }
    struct wfo_arena_block *nb = a->spare;
    if (nb) {
        a->spare = nb->next;
        a->n_spare--;
        nb->next = b;
    } else {
        nb = block_new(ARENA_BLOCK, b);
    }
    a->head = nb;
    nb->used = n;
    return nb->data;
}

char *wfo_arena_strndup(struct wfo_arena *a, const char *s, size_t len)
{
    char *p = wfo_arena_alloc(a, len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void wfo_arena_reset(struct wfo_arena *a)
{
    struct wfo_arena_block *keep = NULL;
    for (struct wfo_arena_block *b = a->head, *next; b; b = next) {
        next = b->next;
        if (!keep && b->size == ARENA_BLOCK) {
            keep = b;
        } else if (b->size == ARENA_BLOCK && a->n_spare < ARENA_SPARE_MAX) {
            b->next = a->spare;
            a->spare = b;
            a->n_spare++;
        } else {
            free(b);
        }
    }
    if (keep) {
        keep->next = NULL;
        keep->used = 0;
    }
    a->head = keep;
}

void wfo_arena_release(struct wfo_arena *a)
{
    wfo_arena_reset(a);
    free(a->head);
    a->head = NULL;
    for (struct wfo_arena_block *b = a->spare, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    a->spare = NULL;
    a->n_spare = 0;
}
