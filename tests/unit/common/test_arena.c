/*
 * test_arena.c - unit tests of src/common/arena.c: alignment, copies that
 * stay put while more is allocated, large allocations, reset and reuse.
 */
#include "common/compat.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/arena.h"
#include "../tap.h"

TEST(strings_stay_valid)
{
    struct wfo_arena a = WFO_ARENA_INIT;
    char *s[5000];
    char want[32];
    int all = 1;

    for (int i = 0; i < 5000; i++) {
        int n = snprintf(want, sizeof(want), "row-%d", i);
        s[i] = wfo_arena_strndup(&a, want, (size_t)n);
        all &= ((uintptr_t)s[i] % alignof(max_align_t)) == 0;
    }
    ok(all, "every allocation is aligned for any type");
    all = 1;
    for (int i = 0; i < 5000; i++) {
        snprintf(want, sizeof(want), "row-%d", i);
        all &= strcmp(s[i], want) == 0;
    }
    ok(all, "5000 copies over several blocks keep their text");
    is_str(wfo_arena_strndup(&a, "abcdef", 3), "abc", "strndup copies len bytes and ends them");
    wfo_arena_release(&a);
    ok(a.head == NULL, "release frees everything");
}

TEST(large_allocations)
{
    struct wfo_arena a = WFO_ARENA_INIT;
    char *small = wfo_arena_strndup(&a, "small", 5);
    char *big = wfo_arena_alloc(&a, 1 << 20);
    memset(big, 'x', 1 << 20);
    char *after = wfo_arena_strndup(&a, "after", 5);
    is_str(small, "small", "a large allocation leaves earlier ones alone");
    is_str(after, "after", "and later small ones still share the block");
    ok(after == small + alignof(max_align_t) || after > small, "the block keeps filling");
    wfo_arena_release(&a);
}

TEST(reset_reuses_the_block)
{
    struct wfo_arena a = WFO_ARENA_INIT;
    char *first = wfo_arena_strndup(&a, "one", 3);
    for (int i = 0; i < 3000; i++)
        wfo_arena_alloc(&a, 100); /* spills into more blocks */
    wfo_arena_alloc(&a, 1 << 20);
    wfo_arena_reset(&a);
    ok(a.head != NULL, "one block kept after reset");
    void *kept = a.head;
    char *again = wfo_arena_strndup(&a, "two", 3);
    char *next = wfo_arena_strndup(&a, "three", 5);
    is_str(again, "two", "allocates after reset");
    ok(a.head == kept, "in the kept block");
    ok(next == again + alignof(max_align_t), "which fills from its start again");
    (void)first;
    wfo_arena_release(&a);
}

TEST(reset_keeps_blocks_for_the_next_fill)
{
    struct wfo_arena a = WFO_ARENA_INIT;
    for (int i = 0; i < 3000; i++)
        wfo_arena_alloc(&a, 100); /* about five blocks */
    wfo_arena_reset(&a);
    ok(a.n_spare >= 3, "the other blocks are kept (%d)", a.n_spare);
    int before = a.n_spare;
    for (int i = 0; i < 3000; i++)
        wfo_arena_alloc(&a, 100);
    is_int(a.n_spare, 0, "and filled again (%d were kept)", before);
    for (int i = 0; i < 40000; i++)
        wfo_arena_alloc(&a, 100); /* about sixty blocks */
    wfo_arena_reset(&a);
    ok(a.n_spare <= 15, "no more than 15 kept (%d)", a.n_spare);
    wfo_arena_release(&a);
    ok(a.head == NULL && a.spare == NULL && a.n_spare == 0, "release frees them");
}

int main(void)
{
    return tap_run();
}
