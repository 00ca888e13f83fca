/*
 * test_fsm_check.c - fsm_check() (src/core/fsm.c) holds on the states the
 * state machine makes and names the invariant on states broken on purpose.
 */
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "core/fsm.h"
#include "common/util.h"
#include "common/yaml.h"

static const char *wf = "name: w\nsteps:\n"
                        "  - {name: a, type: set, vars: {n: 1}}\n"
                        "  - {name: b, type: set, vars: {m: 2}}\n"
                        "  - {name: t, type: task, queue: q}\n";

static struct execution *start(struct fsm *f)
{
    json_t *doc = NULL;
    struct def *d = NULL;
    struct def_problems p = {0};
    wfo_doc_parse(wf, strlen(wf), &doc, NULL);
    def_compile(doc, &d, &p);
    def_problems_release(&p);
    json_decref(doc);
    if (!d)
        return NULL;
    d->version = 1;
    json_t *in = json_object();
    struct execution *x = exec_new("x1", "default", d, in, 1000);
    json_decref(in);
    def_unref(d);
    fsm_init(f);
    f->now = 1000;
    fsm_start(f, x);
    return x;
}

/* The name fsm_check gives, or "" when everything holds. */
static const char *check(struct fsm *f, struct execution *x)
{
    char why[256];
    const char *name = fsm_check(f, x, why, sizeof(why));
    if (name)
        printf("# %s: %s\n", name, why);
    return name ? name : "";
}

TEST(holds_after_transitions)
{
    struct fsm f;
    struct execution *x = start(&f);
    ok(x != NULL, "compiles");
    is_int(x->status, EX_RUNNING, "running, the task in flight");
    is_str(check(&f, x), "", "every invariant holds");
    fsm_release(&f);
    exec_free(x);
}

TEST(i1_token_out_of_range)
{
    struct fsm f;
    struct execution *x = start(&f);
    struct step_state *t = exec_step(x, "t");
    t->token = x->tick + 5;
    is_str(check(&f, x), "I1", "a token the execution never issued");
    t->token = 0;
    is_str(check(&f, x), "I1", "an attempt in flight without a token");
    fsm_release(&f);
    exec_free(x);
}

TEST(i2_history_gap)
{
    struct fsm f;
    struct execution *x = start(&f);
    x->hseq++;
    is_str(check(&f, x), "I2", "the execution's seq is past its last entry");
    x->hseq--;
    f.hist[1].seq++;
    is_str(check(&f, x), "I2", "a gap between two entries");
    fsm_release(&f);
    exec_free(x);
}

TEST(i3_effects_of_an_untouched_execution)
{
    struct fsm f;
    struct execution *x = start(&f);
    x->touched = f.gen - 1;
    is_str(check(&f, x), "I3", "effects whose execution is not written with them");
    fsm_release(&f);
    exec_free(x);
}

TEST(c1_compensation_out_of_order)
{
    struct fsm f;
    struct execution *x = start(&f);
    x->comp_queue = wfo_calloc(2, sizeof(*x->comp_queue));
    x->comp_queue[0] = (struct comp_entry){wfo_strdup("b"), 0, COMP_PENDING};
    x->comp_queue[1] = (struct comp_entry){wfo_strdup("a"), 0, COMP_RUNNING};
    x->n_comp = 2;
    is_str(check(&f, x), "C1", "a's compensation runs before b's is done");
    x->comp_queue[0].state = COMP_DONE;
    is_str(check(&f, x), "", "in order once b's is done");
    fsm_release(&f);
    exec_free(x);
}

TEST(c2_draining_without_a_stopping_attempt)
{
    struct fsm f;
    struct execution *x = start(&f);
    x->draining = 1;
    is_str(check(&f, x), "C2", "waits for attempts of which none is stopping");
    x->draining = 0;
    fsm_release(&f);
    exec_free(x);
}

int main(void)
{
    return tap_run();
}
