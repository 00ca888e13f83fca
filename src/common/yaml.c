/*
 * yaml.c - YAML documents into the JSON model (common/yaml.h; SPEC 2: "YAML
 * is parsed to the same JSON value"; docs/interfaces/internal.md, "Common
 * building blocks"). The one file that includes libfyaml.
 *
 * We read libfyaml's event stream and build json_t values with an explicit
 * stack (no recursion), so that every limit is ours and checked as events
 * arrive:
 *  1. the text is valid UTF-8 without NUL bytes (checked before parsing:
 *     libfyaml lets some invalid bytes through);
 *  2. nesting is at most WFO_JSON_MAX_DEPTH, aliases included;
 *  3. aliases are expanded by copying (a document never shares a json_t
 *     between two places) and add at most YAML_MAX_ALIAS_NODES nodes in
 *     total: a "billion laughs" document is refused after a few steps;
 *  4. mapping keys are scalars, unique, used as strings;
 *  5. one document per text.
 * libfyaml's diagnostics are collected, never printed: its first error
 * becomes our message.
 */
#include "common/compat.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libfyaml.h>

#include "common/util.h"
#include "common/yaml.h"

#define YAML_MAX_ALIAS_NODES 100000
#define YAML_TAG_PREFIX "tag:yaml.org,2002:"

struct yaml_anchor {
    char *name;
    size_t name_len;
    json_t *value; /* NULL while the anchored node is still open */
    int height;
    size_t nodes;       /* nodes in the expanded value */
    size_t start_nodes; /* yaml_state.nodes when the node opened */
};

struct yaml_frame {
    json_t *node; /* object or array, owned until it is closed */
    int height;   /* 1 + the largest child height */
    char *key;    /* pending key of a mapping, owned */
    size_t key_len;
    int key_line, key_col;
    long anchor; /* index in yaml_state.anchors, -1: none */
};

struct yaml_state {
    struct yaml_frame stack[WFO_JSON_MAX_DEPTH];
    int depth;
    struct yaml_anchor *anchors;
    size_t nanchors, aanchors;
    size_t nodes, alias_nodes;
    json_t *root;
    int ndocs;
    int line, col; /* 1-based position of the event being handled */
    struct wfo_error *err;
};

/* ---- input checks ---- */

/* 0 when s is valid UTF-8 without NUL; else the offset of the bad byte + 1. */
static size_t yaml_check_text(const char *s, size_t len)
{
    size_t n = wfo_utf8_span(s, len);

    return n < len ? n + 1 : 0;
}

static void yaml_position(const char *text, size_t pos, int *line, int *col)
{
    int l = 1, c = 1;

    for (size_t i = 0; i < pos; i++) {
        if (text[i] == '\n') {
            l++;
            c = 1;
        } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

/* ---- errors ---- */

static int yaml_fail(struct yaml_state *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int yaml_fail(struct yaml_state *st, const char *fmt, ...)
{
    char msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return wfo_error_set(st->err, WFO_EPARSE, "line %d column %d: %s", st->line, st->col, msg);
}

/* A quoted, shortened, printable copy of s for a message. */
static void yaml_quote(const char *s, size_t len, char *out, size_t size)
{
    size_t k = 0, max = size > 48 ? 40 : size / 2;

    for (size_t i = 0; i < len && k + 5 < size; i++) {
        unsigned char c = (unsigned char)s[i];

        if (i >= max && (c & 0xC0) != 0x80) {
            memcpy(out + k, "...", 3);
            k += 3;
            break;
        }
        out[k++] = c < 0x20 ? '?' : (char)c;
    }
    out[k] = '\0';
}

/* ---- scalars ---- */

static int yaml_is_digits(const char *s, size_t len, const char *set)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!strchr(set, s[i]) || s[i] == '\0')
            return 0;
    return 1;
}

/* [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static int yaml_is_float(const char *s, size_t len)
{
    size_t i = 0, a, b = 0;

    if (i < len && (s[i] == '-' || s[i] == '+'))
        i++;
    for (a = i; i < len && s[i] >= '0' && s[i] <= '9'; i++)
        ;
    a = i - a;
    if (i < len && s[i] == '.') {
        size_t f = ++i;

        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
            ;
        b = i - f;
    }
    if (a == 0 && b == 0)
        return 0;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        size_t e;

        i++;
        if (i < len && (s[i] == '-' || s[i] == '+'))
            i++;
        for (e = i; i < len && s[i] >= '0' && s[i] <= '9'; i++)
            ;
        if (i == e)
            return 0;
    }
    return i == len;
}

static int yaml_is_one_of(const char *s, size_t len, const char *const *words)
{
    for (; *words; words++)
        if (strlen(*words) == len && memcmp(s, *words, len) == 0)
            return 1;
    return 0;
}

/* YAML_ANY: resolve by the text; YAML_STR: a string whatever the text. */
enum yaml_kind { YAML_BAD = -1, YAML_ANY, YAML_STR, YAML_NULL, YAML_BOOL, YAML_INT, YAML_FLOAT };

/*
 * Resolves a plain scalar by YAML 1.2's core schema. want != YAML_ANY: the
 * text must be of that kind (an explicit !!null, !!bool, !!int or !!float),
 * an int being acceptable as a float. Sets *out to NULL when the text is a
 * string.
 */
static int yaml_resolve(struct yaml_state *st, const char *s, size_t len, enum yaml_kind want,
                        json_t **out)
{
    static const char *const nulls[] = {"null", "Null", "NULL", "~", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", NULL};
    static const char *const infs[] = {".inf",  ".Inf",  ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
                                       "-.Inf", "-.INF", ".nan", ".NaN",  ".NAN",  NULL};
    char quoted[64];
    enum yaml_kind kind = YAML_ANY;
    char *copy = NULL, *end;
    int base = 10, rc = 0;
    size_t skip = 0;

    *out = NULL;
    if (len == 0 || yaml_is_one_of(s, len, nulls))
        kind = YAML_NULL;
    else if (yaml_is_one_of(s, len, trues) || yaml_is_one_of(s, len, falses))
        kind = YAML_BOOL;
    else if (yaml_is_digits(s + (s[0] == '-' || s[0] == '+'), len - (s[0] == '-' || s[0] == '+'),
                            "0123456789"))
        kind = YAML_INT;
    else if (len > 2 && s[0] == '0' && s[1] == 'o' && yaml_is_digits(s + 2, len - 2, "01234567"))
        kind = YAML_INT, base = 8, skip = 2;
    else if (len > 2 && s[0] == '0' && s[1] == 'x' &&
             yaml_is_digits(s + 2, len - 2, "0123456789abcdefABCDEF"))
        kind = YAML_INT, base = 16, skip = 2;
    else if (yaml_is_float(s, len))
        kind = YAML_FLOAT;

    yaml_quote(s, len, quoted, sizeof(quoted));
    if (yaml_is_one_of(s, len, infs))
        return yaml_fail(st, "'%s' is not a JSON number", quoted);
    if (want != YAML_ANY && kind != want && !(want == YAML_FLOAT && kind == YAML_INT))
        return yaml_fail(st, "'%s' does not match its tag", quoted);

    switch (kind) {
    case YAML_BAD:
    case YAML_ANY:
    case YAML_STR:
        return 0;
    case YAML_NULL:
        *out = json_null();
        return 0;
    case YAML_BOOL:
        *out = json_boolean(s[0] == 't' || s[0] == 'T');
        return 0;
    case YAML_INT:
    case YAML_FLOAT:
        break;
    }
    copy = wfo_strndup(s + skip, len - skip);
    errno = 0;
    if (kind == YAML_INT && want != YAML_FLOAT) {
        long long v = strtoll(copy, &end, base);

        if (errno || *end)
            rc = yaml_fail(st, "integer '%s' is out of range", quoted);
        else
            *out = json_integer(v);
    } else {
        double d = strtod(copy, &end);

        if (*end || !isfinite(d) || (errno == ERANGE && fabs(d) > 1.0))
            rc = yaml_fail(st, "number '%s' is out of range", quoted);
        else
            *out = json_real(d);
    }
    free(copy);
    return rc;
}

/* Which kind an explicit tag asks for; YAML_BAD for a tag we do not support. */
static enum yaml_kind yaml_tag_kind(struct fy_token *tag, int is_scalar, const char **text_out)
{
    size_t len = 0;
    const char *t = tag ? fy_token_get_text(tag, &len) : NULL;
    size_t plen = sizeof(YAML_TAG_PREFIX) - 1;

    *text_out = t;
    if (!t)
        return YAML_ANY;
    if (len == 1 && t[0] == '!')
        return is_scalar ? YAML_STR : YAML_ANY; /* non-specific: a string */
    if (len <= plen || memcmp(t, YAML_TAG_PREFIX, plen) != 0)
        return YAML_BAD;
    t += plen;
    len -= plen;
#define IS(word) (len == sizeof(word) - 1 && memcmp(t, word, len) == 0)
    if (!is_scalar)
        return IS("map") || IS("seq") ? YAML_ANY : YAML_BAD;
    if (IS("str"))
        return YAML_STR;
    if (IS("null"))
        return YAML_NULL;
    if (IS("bool"))
        return YAML_BOOL;
    if (IS("int"))
        return YAML_INT;
    if (IS("float"))
        return YAML_FLOAT;
#undef IS
    return YAML_BAD;
}

/* ---- building ---- */

static struct yaml_anchor *yaml_find_anchor(struct yaml_state *st, const char *name, size_t len)
{
    for (size_t i = st->nanchors; i-- > 0;)
        if (st->anchors[i].name_len == len && memcmp(st->anchors[i].name, name, len) == 0)
            return &st->anchors[i];
    return NULL;
}

/* Registers the anchor of a node that opens now; returns its index or -1. */
static long yaml_open_anchor(struct yaml_state *st, struct fy_token *anchor)
{
    struct yaml_anchor *a;
    const char *name;
    size_t len = 0;

    if (!anchor || !(name = fy_token_get_text(anchor, &len)))
        return -1;
    if (st->nanchors == st->aanchors) {
        st->aanchors = st->aanchors ? st->aanchors * 2 : 8;
        st->anchors = wfo_realloc(st->anchors, st->aanchors * sizeof(*st->anchors));
    }
    a = &st->anchors[st->nanchors];
    a->name = wfo_strndup(name, len);
    a->name_len = len;
    a->value = NULL;
    a->height = 0;
    a->nodes = 0;
    a->start_nodes = st->nodes;
    return (long)st->nanchors++;
}

static void yaml_close_anchor(struct yaml_state *st, long idx, json_t *v, int height)
{
    struct yaml_anchor *a;

    if (idx < 0)
        return;
    a = &st->anchors[idx];
    a->value = json_incref(v);
    a->height = height;
    a->nodes = st->nodes - a->start_nodes;
}

/* Sets a pending key on the mapping at the top of the stack (invariant 4). */
static int yaml_set_key(struct yaml_state *st, const char *s, size_t len)
{
    struct yaml_frame *f = &st->stack[st->depth - 1];
    char quoted[64];

    yaml_quote(s, len, quoted, sizeof(quoted));
    if (memchr(s, '\0', len))
        return yaml_fail(st, "NUL characters are not allowed");
    if (yaml_check_text(s, len))
        return yaml_fail(st, "key '%s' is not valid UTF-8", quoted);
    if (json_object_getn(f->node, s, len))
        return yaml_fail(st, "duplicate key '%s'", quoted);
    f->key = wfo_strndup(s, len);
    f->key_len = len;
    f->key_line = st->line;
    f->key_col = st->col;
    return 0;
}

/* Adds a finished value (stolen) of the given height to the top container. */
static int yaml_add(struct yaml_state *st, json_t *v, int height)
{
    struct yaml_frame *f;

    if (!v)
        return yaml_fail(st, "out of memory");
    if (st->depth == 0) {
        json_decref(st->root);
        st->root = v;
        return 0;
    }
    f = &st->stack[st->depth - 1];
    if (f->height < height + 1)
        f->height = height + 1;
    if (json_is_array(f->node)) {
        if (json_array_append_new(f->node, v) < 0)
            return yaml_fail(st, "out of memory");
        return 0;
    }
    wfo_assert(f->key != NULL);
    if (json_object_setn_new(f->node, f->key, f->key_len, v) < 0)
        return yaml_fail(st, "out of memory");
    free(f->key);
    f->key = NULL;
    return 0;
}

static int yaml_expecting_key(struct yaml_state *st)
{
    struct yaml_frame *f;

    if (st->depth == 0)
        return 0;
    f = &st->stack[st->depth - 1];
    return json_is_object(f->node) && !f->key;
}

static int yaml_on_scalar(struct yaml_state *st, struct fy_event *e)
{
    const char *s, *tag_text;
    size_t len = 0;
    enum yaml_kind kind;
    json_t *v = NULL;
    long anchor;
    int rc;
    char quoted[64];

    s = fy_token_get_text(e->scalar.value, &len);
    if (!s)
        return yaml_fail(st, "out of memory");
    st->nodes++;
    if (yaml_expecting_key(st)) {
        anchor = yaml_open_anchor(st, e->scalar.anchor);
        if ((rc = yaml_set_key(st, s, len)) < 0)
            return rc;
        if (anchor >= 0) {
            v = json_stringn(s, len);
            yaml_close_anchor(st, anchor, v, 0);
            json_decref(v); /* the anchor keeps its own reference */
        }
        return 0;
    }
    if (st->depth == 0 && len == 0 && !e->scalar.tag &&
        fy_token_scalar_style(e->scalar.value) == FYSS_PLAIN)
        return yaml_fail(st, "empty document");
    kind = yaml_tag_kind(e->scalar.tag, 1, &tag_text);
    if (kind == YAML_BAD) {
        yaml_quote(tag_text, strlen(tag_text), quoted, sizeof(quoted));
        return yaml_fail(st, "unsupported tag '%s'", quoted);
    }
    if (memchr(s, '\0', len))
        return yaml_fail(st, "NUL characters are not allowed");
    /* Quoted and block scalars are strings unless a tag says otherwise. */
    if (kind != YAML_STR &&
        (kind != YAML_ANY || fy_token_scalar_style(e->scalar.value) == FYSS_PLAIN)) {
        if ((rc = yaml_resolve(st, s, len, kind, &v)) < 0)
            return rc;
    }
    if (!v) {
        v = json_stringn(s, len);
        if (!v)
            return yaml_fail(st, "scalar is not valid UTF-8");
    }
    anchor = yaml_open_anchor(st, e->scalar.anchor);
    yaml_close_anchor(st, anchor, v, 0);
    return yaml_add(st, v, 0);
}

static int yaml_on_alias(struct yaml_state *st, struct fy_event *e)
{
    const char *name;
    size_t len = 0;
    struct yaml_anchor *a;
    char quoted[64];
    json_t *copy;

    name = fy_token_get_text(e->alias.anchor, &len);
    if (!name)
        return yaml_fail(st, "out of memory");
    yaml_quote(name, len, quoted, sizeof(quoted));
    a = yaml_find_anchor(st, name, len);
    if (!a)
        return yaml_fail(st, "unknown anchor '%s'", quoted);
    if (!a->value)
        return yaml_fail(st, "alias '%s' refers to a node that contains it", quoted);
    if (yaml_expecting_key(st)) {
        if (!json_is_string(a->value))
            return yaml_fail(st, "mapping keys must be scalars");
        return yaml_set_key(st, json_string_value(a->value), json_string_length(a->value));
    }
    /* Invariants 2 and 3. */
    st->alias_nodes += a->nodes;
    if (st->alias_nodes > YAML_MAX_ALIAS_NODES)
        return yaml_fail(st, "aliases expand to more than %d nodes", YAML_MAX_ALIAS_NODES);
    if (st->depth + a->height > WFO_JSON_MAX_DEPTH)
        return yaml_fail(st, "nesting deeper than %d levels", WFO_JSON_MAX_DEPTH);
    st->nodes += a->nodes;
    copy = json_deep_copy(a->value);
    return yaml_add(st, copy, a->height);
}

static int yaml_on_start(struct yaml_state *st, struct fy_event *e)
{
    int is_map = e->type == FYET_MAPPING_START;
    struct fy_token *tag = is_map ? e->mapping_start.tag : e->sequence_start.tag;
    struct fy_token *anchor = is_map ? e->mapping_start.anchor : e->sequence_start.anchor;
    struct yaml_frame *f;
    const char *tag_text;
    char quoted[64];

    if (yaml_expecting_key(st))
        return yaml_fail(st, "mapping keys must be scalars");
    if (yaml_tag_kind(tag, 0, &tag_text) == YAML_BAD) {
        yaml_quote(tag_text, strlen(tag_text), quoted, sizeof(quoted));
        return yaml_fail(st, "unsupported tag '%s'", quoted);
    }
    if (st->depth >= WFO_JSON_MAX_DEPTH)
        return yaml_fail(st, "nesting deeper than %d levels", WFO_JSON_MAX_DEPTH);
    st->nodes++;
    f = &st->stack[st->depth++];
    f->node = is_map ? json_object() : json_array();
    f->height = 1;
    f->key = NULL;
    f->key_len = 0;
    f->anchor = yaml_open_anchor(st, anchor);
    if (!f->node)
        return yaml_fail(st, "out of memory");
    return 0;
}

static int yaml_on_end(struct yaml_state *st)
{
    struct yaml_frame *f = &st->stack[--st->depth];
    json_t *v = f->node;

    f->node = NULL;
    free(f->key);
    f->key = NULL;
    yaml_close_anchor(st, f->anchor, v, f->height);
    return yaml_add(st, v, f->height);
}

static int yaml_on_event(struct yaml_state *st, struct fy_event *e)
{
    const struct fy_mark *m = fy_event_start_mark(e);

    if (m) {
        st->line = m->line + 1;
        st->col = m->column + 1;
        /* libfyaml marks an alias after its '*' and a quoted scalar after
         * its quote: point at the node's first character instead. */
        if (st->col > 1 && (e->type == FYET_ALIAS ||
                            (e->type == FYET_SCALAR &&
                             (fy_token_scalar_style(e->scalar.value) == FYSS_SINGLE_QUOTED ||
                              fy_token_scalar_style(e->scalar.value) == FYSS_DOUBLE_QUOTED))))
            st->col--;
    }
    switch (e->type) {
    case FYET_DOCUMENT_START:
        if (++st->ndocs > 1)
            return yaml_fail(st, "more than one document");
        return 0;
    case FYET_MAPPING_START:
    case FYET_SEQUENCE_START:
        return yaml_on_start(st, e);
    case FYET_MAPPING_END:
    case FYET_SEQUENCE_END:
        if (st->depth == 0)
            return yaml_fail(st, "unbalanced end of collection");
        return yaml_on_end(st);
    case FYET_SCALAR:
        return yaml_on_scalar(st, e);
    case FYET_ALIAS:
        return yaml_on_alias(st, e);
    default:
        return 0;
    }
}

static void yaml_diag_output(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
    /* Never print (STYLE rule 6); errors are collected instead. */
}

/* The first error libfyaml collected, as our message. */
static int yaml_parser_error(struct yaml_state *st, struct fy_diag *diag)
{
    struct fy_diag_error *de;
    void *it = NULL;
    char msg[300];

    while ((de = fy_diag_errors_iterate(diag, &it))) {
        if (de->type < FYET_ERROR || !de->msg)
            continue;
        /* Its text, without control characters. */
        snprintf(msg, sizeof(msg), "%s", de->msg);
        for (char *p = msg; *p; p++)
            if ((unsigned char)*p < 0x20)
                *p = ' ';
        return wfo_error_set(st->err, WFO_EPARSE, "line %d column %d: %s",
                             de->line > 0 ? de->line : st->line,
                             de->column > 0 ? de->column : st->col, msg);
    }
    return yaml_fail(st, "invalid YAML");
}

int wfo_yaml_parse(const char *text, size_t len, json_t **out, struct wfo_error *err)
{
    struct yaml_state *st = wfo_calloc(1, sizeof(*st));
    struct fy_diag *diag = NULL;
    struct fy_parser *fyp = NULL;
    struct fy_parse_cfg pcfg;
    struct fy_diag_cfg dcfg;
    struct fy_event *e;
    size_t bad;
    int rc = 0, done = 0;

    *out = NULL;
    st->err = err;
    st->line = st->col = 1;
    if (!text)
        len = 0;
    /* Invariant 1. */
    bad = yaml_check_text(text, len);
    if (bad) {
        yaml_position(text, bad - 1, &st->line, &st->col);
        rc = yaml_fail(st, text[bad - 1] ? "invalid UTF-8" : "NUL bytes are not allowed");
        goto out;
    }

    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.output_fn = yaml_diag_output;
    dcfg.colorize = false;
    diag = fy_diag_create(&dcfg);
    if (!diag) {
        rc = wfo_error_set(err, WFO_ENOMEM, "cannot create a YAML parser");
        goto out;
    }
    fy_diag_set_collect_errors(diag, true);
    memset(&pcfg, 0, sizeof(pcfg));
    pcfg.flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2 | FYPCF_JSON_NONE |
                 FYPCF_DISABLE_MMAP_OPT | FYPCF_DISABLE_DEPTH_LIMIT;
    pcfg.diag = diag;
    fyp = fy_parser_create(&pcfg);
    if (!fyp || fy_parser_set_string(fyp, len ? text : "", len) != 0) {
        rc = wfo_error_set(err, WFO_ENOMEM, "cannot create a YAML parser");
        goto out;
    }
    while (!done && (e = fy_parser_parse(fyp))) {
        done = e->type == FYET_STREAM_END;
        rc = yaml_on_event(st, e);
        fy_parser_event_free(fyp, e);
        if (rc < 0)
            goto out;
    }
    if (!done || fy_parser_get_stream_error(fyp)) {
        rc = yaml_parser_error(st, diag);
        goto out;
    }
    if (!st->root) {
        st->line = st->col = 1;
        rc = yaml_fail(st, "empty document");
        goto out;
    }
    *out = st->root;
    st->root = NULL;
out:
    while (st->depth > 0) {
        struct yaml_frame *f = &st->stack[--st->depth];

        json_decref(f->node);
        free(f->key);
    }
    for (size_t i = 0; i < st->nanchors; i++) {
        free(st->anchors[i].name);
        json_decref(st->anchors[i].value);
    }
    free(st->anchors);
    json_decref(st->root);
    free(st);
    if (fyp)
        fy_parser_destroy(fyp);
    if (diag)
        fy_diag_destroy(diag);
    return rc;
}

int wfo_doc_parse(const char *text, size_t len, json_t **out, struct wfo_error *err)
{
    size_t i = 0;

    if (text && len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        i = 3;
    for (; text && i < len; i++)
        if (text[i] != ' ' && text[i] != '\t' && text[i] != '\n' && text[i] != '\r')
            break;
    if (text && i < len && (text[i] == '{' || text[i] == '['))
        return wfo_json_parse(text, len, out, err);
    return wfo_yaml_parse(text, len, out, err);
}
