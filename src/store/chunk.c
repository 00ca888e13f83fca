/*
 * chunk.c - the encoding of an execution's changes of one commit (chunk.h).
 * Writing appends to a wfo_buf; reading checks every length against the end
 * of the value, so a damaged row is an error and never a crash.
 */
#include "common/compat.h"

#include <stdint.h>
#include <string.h>

#include "store/chunk.h"
#include "common/util.h"

#define CHUNK_MAGIC "WC1"
#define CHUNK_NULL 0xffffffffu

/* Writing: each record's size is computed first and the buffer grown once,
 * then the fields are stored through a cursor. */
static size_t str_size(const char *s)
{
    return 4 + (s ? strlen(s) + 1 : 0);
}

static unsigned char *put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
    return p + 4;
}

static unsigned char *put_i64(unsigned char *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(u >> (8 * i));
    return p + 8;
}

static unsigned char *put_str(unsigned char *p, const char *s)
{
    if (!s)
        return put_u32(p, CHUNK_NULL);
    size_t n = strlen(s);
    wfo_assert(n < CHUNK_NULL);
    p = put_u32(p, (uint32_t)n);
    memcpy(p, s, n + 1);
    return p + n + 1;
}

/* Room for a record of size bytes (its tag included); the cursor after the
 * tag. */
static unsigned char *rec_begin(struct wfo_buf *b, size_t size, int tag)
{
    int rc = wfo_buf_grow(b, size); /* an unbounded buffer: only ETOOBIG past SIZE_MAX */
    wfo_assert(rc == 0);
    unsigned char *p = (unsigned char *)b->buf + b->len;
    *p = (unsigned char)tag;
    return p + 1;
}

static void rec_end(struct wfo_buf *b, unsigned char *end)
{
    b->len = (size_t)(end - (unsigned char *)b->buf);
    b->buf[b->len] = '\0';
}

void chunk_begin(struct wfo_buf *b)
{
    wfo_buf_add(b, CHUNK_MAGIC, 3);
}

void chunk_put_state(struct wfo_buf *b, int64_t time, const char *state)
{
    unsigned char *p = rec_begin(b, 1 + 8 + str_size(state), CHUNK_STATE);
    p = put_i64(p, time);
    rec_end(b, put_str(p, state));
}

void chunk_put_step(struct wfo_buf *b, const struct store_step *s)
{
    size_t n = 1 + 8 * 4 + str_size(s->path) + str_size(s->status) + str_size(s->output) +
               str_size(s->error) + str_size(s->state) + str_size(s->input);
    unsigned char *p = rec_begin(b, n, CHUNK_STEP);
    p = put_str(p, s->path);
    p = put_i64(p, s->ord);
    p = put_str(p, s->status);
    p = put_i64(p, s->attempts);
    p = put_str(p, s->output);
    p = put_str(p, s->error);
    p = put_str(p, s->state);
    p = put_i64(p, s->started_at);
    p = put_i64(p, s->finished_at);
    rec_end(b, put_str(p, s->input));
}

void chunk_put_history(struct wfo_buf *b, const struct store_history *h)
{
    size_t n = 1 + 8 * 2 + str_size(h->type) + str_size(h->step) + str_size(h->data);
    unsigned char *p = rec_begin(b, n, CHUNK_HISTORY);
    p = put_i64(p, h->seq);
    p = put_i64(p, h->time);
    p = put_str(p, h->type);
    p = put_str(p, h->step);
    rec_end(b, put_str(p, h->data));
}

int chunk_open(struct chunk_reader *r, const void *data, size_t len, const char *exec_id,
               struct wfo_error *err)
{
    r->p = data;
    r->end = r->p + len;
    r->exec_id = exec_id;
    if (!data || len < 3 || memcmp(data, CHUNK_MAGIC, 3) != 0)
        return wfo_error_set(err, WFO_ESTORE, "execution '%s': a stored chunk is not one",
                             exec_id ? exec_id : "");
    r->p += 3;
    return 0;
}

/* The readers below return 0, or -1 when the value ends too soon. */
static int get_i64(struct chunk_reader *r, int64_t *v)
{
    if (r->end - r->p < 8)
        return -1;
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--)
        u = u << 8 | r->p[i];
    r->p += 8;
    *v = (int64_t)u;
    return 0;
}

static int get_int(struct chunk_reader *r, int *v)
{
    int64_t w;
    if (get_i64(r, &w) < 0 || w < INT32_MIN || w > INT32_MAX)
        return -1;
    *v = (int)w;
    return 0;
}

static int get_str(struct chunk_reader *r, const char **s)
{
    if (r->end - r->p < 4)
        return -1;
    uint32_t n = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 |
                 (uint32_t)r->p[3] << 24;
    r->p += 4;
    if (n == CHUNK_NULL) {
        *s = NULL;
        return 0;
    }
    if ((size_t)(r->end - r->p) <= n || r->p[n] != '\0')
        return -1;
    *s = (const char *)r->p;
    r->p += n + 1;
    return 0;
}

int chunk_next(struct chunk_reader *r, struct chunk_rec *rec, struct wfo_error *err)
{
    int bad = 0;

    if (r->p >= r->end)
        return 0;
    memset(rec, 0, sizeof(*rec));
    rec->tag = (enum chunk_tag) * r->p++;
    switch (rec->tag) {
    case CHUNK_STATE:
        bad = get_i64(r, &rec->time) || get_str(r, &rec->state);
        break;
    case CHUNK_STEP: {
        struct store_step *s = &rec->step;
        s->exec_id = r->exec_id;
        bad = get_str(r, &s->path) || get_int(r, &s->ord) || get_str(r, &s->status) ||
              get_int(r, &s->attempts) || get_str(r, &s->output) || get_str(r, &s->error) ||
              get_str(r, &s->state) || get_i64(r, &s->started_at) || get_i64(r, &s->finished_at) ||
              get_str(r, &s->input) || !s->path || !s->status;
        break;
    }
    case CHUNK_HISTORY: {
        struct store_history *h = &rec->history;
        h->exec_id = r->exec_id;
        bad = get_i64(r, &h->seq) || get_i64(r, &h->time) || get_str(r, &h->type) ||
              get_str(r, &h->step) || get_str(r, &h->data) || !h->type;
        break;
    }
    default:
        bad = 1;
    }
    if (bad) {
        r->p = r->end;
        return wfo_error_set(err, WFO_ESTORE, "execution '%s': a stored chunk is damaged",
                             r->exec_id ? r->exec_id : "");
    }
    return 1;
}

/* ---- a batch's rows by execution (chunk.h; both back ends) ---- */

/* The slot of key in t (cap slots, a power of two): its own, or the empty
 * one where it goes. by_text compares texts, by_ptr pointers. */
static struct chunk_slot *slot_of(const struct chunk_groups *g, struct chunk_slot *t,
                                  const char *key, uint64_t h, int text)
{
    for (size_t i = (size_t)h;; i++) {
        struct chunk_slot *sl = &t[i & (g->cap - 1)];
        if (sl->gen != g->gen)
            return sl;
        if (text ? sl->hash == h && strcmp(sl->key, key) == 0 : sl->key == key)
            return sl;
    }
}

static uint64_t text_hash(const char *s)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = (h ^ *p) * UINT64_C(1099511628211);
    return h;
}

/* The group of execution id, made when new. */
static struct chunk_group *group_of(struct chunk_groups *g, const char *id)
{
    if (id == g->last_id && g->last)
        return &g->v[g->last - 1];
    const char *key = id ? id : "";
    uint64_t ph = ((uintptr_t)key >> 3) * UINT64_C(0x9E3779B97F4A7C15);
    struct chunk_slot *p = slot_of(g, g->by_ptr, key, ph >> 32, 0);
    if (p->gen != g->gen) {
        uint64_t th = text_hash(key);
        struct chunk_slot *t = slot_of(g, g->by_text, key, th, 1);
        if (t->gen != g->gen) {
            g->v[g->n] = (struct chunk_group){id, NULL, -1, -1, -1, -1};
            *t = (struct chunk_slot){key, th, ++g->n, g->gen};
        }
        *p = (struct chunk_slot){key, 0, t->group, g->gen};
    }
    g->last_id = id;
    g->last = p->group;
    return &g->v[p->group - 1];
}

/* *arr holds at least n elements of size each (its contents may go). */
static void *room(void *arr, size_t *cap, size_t n, size_t size)
{
    if (n <= *cap)
        return arr;
    *cap = n + n / 2;
    free(arr);
    return wfo_malloc(*cap * size);
}

/* Appends row i to a group's list of rows (first, last; next links them,
 * -1 ends). */
static void chain(int *next, int *first, int *last, int i)
{
    next[i] = -1;
    if (*last >= 0)
        next[*last] = i;
    else
        *first = i;
    *last = i;
}

void chunk_groups_build(struct chunk_groups *g, const struct store_batch *b)
{
    size_t rows = (size_t)(b->n_execs + b->n_steps + b->n_history);
    /* every slot of these is set before it is read */
    g->v = room(g->v, &g->cap_v, rows + 1, sizeof(*g->v));
    g->step_next = room(g->step_next, &g->cap_steps, (size_t)b->n_steps + 1, sizeof(int));
    g->hist_next = room(g->hist_next, &g->cap_hist, (size_t)b->n_history + 1, sizeof(int));
    /* at most one key per row in each table, at most half full; a new
     * generation empties both without touching them */
    size_t cap = g->cap ? g->cap : 64;
    while (cap < 2 * rows)
        cap *= 2;
    if (cap != g->cap || ++g->gen == 0) {
        free(g->by_ptr);
        free(g->by_text);
        g->by_ptr = wfo_calloc(cap, sizeof(*g->by_ptr));
        g->by_text = wfo_calloc(cap, sizeof(*g->by_text));
        g->cap = cap;
        g->gen = 1;
    }
    g->n = 0;
    g->last_id = NULL;
    g->last = 0;
    for (int i = 0; i < b->n_execs; i++)
        group_of(g, b->execs[i].id)->x = &b->execs[i];
    for (int i = 0; i < b->n_steps; i++) {
        struct chunk_group *r = group_of(g, b->steps[i].exec_id);
        chain(g->step_next, &r->step, &r->last_step, i);
    }
    for (int i = 0; i < b->n_history; i++) {
        struct chunk_group *r = group_of(g, b->history[i].exec_id);
        chain(g->hist_next, &r->hist, &r->last_hist, i);
    }
}

void chunk_groups_release(struct chunk_groups *g)
{
    free(g->v);
    free(g->step_next);
    free(g->hist_next);
    free(g->by_ptr);
    free(g->by_text);
    memset(g, 0, sizeof(*g));
}

/* ---- a page of history (chunk.h; both back ends) ---- */

int chunk_page_rec(void *ud, const struct chunk_rec *rec)
{
    struct chunk_page *p = ud;
    if (rec->tag != CHUNK_HISTORY || rec->history.seq <= p->after)
        return 0;
    int rc = p->cb(p->ud, &rec->history);
    if (rc == 0 && p->limit > 0 && ++p->n >= p->limit) {
        p->full = 1;
        return 1;
    }
    return rc;
}
