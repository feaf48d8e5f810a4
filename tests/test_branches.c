/* test_branches.c — independent branches run at the same time (core/branches.h):
 * - which regions are found: towers from separate inputs joined by a Concatenate are one region;
 *   branches forking from a node that takes a gradient, towers sharing a layer and towers with a
 *   user's C layer are none; a fork-join inside a tower leaves only the outer region;
 * - the gradients of different parts never share memory (their backwards run at once);
 * - training with the parts on two threads gives the same bits as one after another (float32 with
 *   SGD inside the backward, mixed_bfloat16 with Adam, dropout, masks, variable lengths), and the
 *   measured choice does too and is made;
 * - an input check failing inside a lane is reported as the sequential run reports it. */
#include "check.h"
#include "core/branches.h"
#include "core/model.h"
#include "loom.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define N 96
#define STEPS_A 9
#define STEPS_B 14
#define TAGS 8

static float xa[N * STEPS_A], xb[N * STEPS_B], xc[N * TAGS], yp[N], yq[N * 3];
static int la[N], lb[N];

static void make_data(void) {
    uint32_t s = 12345;
    for (int i = 0; i < N; i++) {
        s = s * 1664525u + 1013904223u;
        la[i] = 2 + (int)(s >> 8) % (STEPS_A - 1);
        s = s * 1664525u + 1013904223u;
        lb[i] = 3 + (int)(s >> 8) % (STEPS_B - 2);
        for (int t = 0; t < STEPS_A; t++) {
            s = s * 1664525u + 1013904223u;
            xa[i * STEPS_A + t] = t < la[i] ? (float)(1 + (s >> 8) % 49) : 0.0f;
        }
        for (int t = 0; t < STEPS_B; t++) {
            s = s * 1664525u + 1013904223u;
            xb[i * STEPS_B + t] = t < lb[i] ? (float)(1 + (s >> 8) % 49) : 0.0f;
        }
        for (int k = 0; k < TAGS; k++) {
            s = s * 1664525u + 1013904223u;
            xc[i * TAGS + k] = (float)((s >> 8) % 1000) / 1000.0f;
        }
        yp[i] = (float)(xa[i * STEPS_A] > 25);
        for (int k = 0; k < 3; k++) yq[i * 3 + k] = (float)(k == (int)xb[i * STEPS_B] % 3);
    }
}

/* a: Embedding -> LSTM; b: Embedding -> GRU -> Dropout; c: Dense -> Dense; joined, two heads */
static loom_model *towers(loom_dtype_policy policy, loom_optimizer opt) {
    loom_graph *g = loom_graph_new(7);
    loom_tensor *a = loom_input(g, "a", 1, (int[]){LOOM_DIM_VARIABLE});
    loom_tensor *b = loom_input(g, "b", 1, (int[]){LOOM_DIM_VARIABLE});
    loom_tensor *c = loom_input(g, "c", 1, (int[]){TAGS});
    loom_rnn_options ro = loom_rnn_defaults();
    loom_tensor *ta = loom_call(loom_lstm(g, "lstm_a", 16, &ro), loom_call(loom_embedding(g, "emb_a", 50, 8, 1), a));
    loom_tensor *tb = loom_call(loom_gru(g, "gru_b", 8, &ro), loom_call(loom_embedding(g, "emb_b", 50, 8, 1), b));
    tb = loom_call(loom_dropout(g, "drop_b", 0.3f), tb);
    loom_tensor *tc = loom_call(loom_dense(g, "dense_c2", 6, LOOM_RELU, NULL),
                                loom_call(loom_dense(g, "dense_c1", 12, LOOM_RELU, NULL), c));
    loom_tensor *x = loom_call_n(loom_concatenate(g, "join", -1), 3, (loom_tensor *[]){ta, tb, tc});
    loom_tensor *p = loom_call(loom_dense(g, "p", 1, LOOM_LINEAR, NULL), x);
    loom_tensor *q = loom_call(loom_dense(g, "q", 3, LOOM_LINEAR, NULL), x);
    loom_model *m = loom_model_new(g, 3, (loom_tensor *[]){a, b, c}, 2, (loom_tensor *[]){p, q});
    CHECK(m != NULL);
    if (!m) return NULL;
    const char *outs[] = {"p", "q"};
    loom_loss losses[] = {{.name = "binary_crossentropy", .from_logits = 1},
                          {.name = "categorical_crossentropy", .from_logits = 1}};
    float weights[] = {1.0f, 0.2f};
    loom_compile_config cfg = {.n_losses = 2, .losses = losses, .loss_outputs = outs, .n_loss_weights = 2,
                               .loss_weights = weights, .loss_weight_outputs = outs, .optimizer = opt,
                               .dtype_policy = policy};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    return m;
}

/* Trains 3 epochs at 2 threads with LOOM_BRANCHES as given (NULL: measured); returns the model. */
static loom_model *train(const char *branches, loom_dtype_policy policy, loom_optimizer opt, float *losses) {
    if (branches) setenv("LOOM_BRANCHES", branches, 1);
    else unsetenv("LOOM_BRANCHES");
    loom_model *m = towers(policy, opt);
    if (!m) return NULL;
    loom_array x[] = {{.name = "a", .data = xa, .n = N, .count = N * STEPS_A, .lengths = la},
                      {.name = "b", .data = xb, .n = N, .count = N * STEPS_B, .lengths = lb},
                      {.name = "c", .data = xc, .n = N, .count = N * TAGS}};
    loom_array y[] = {{.name = "p", .data = yp, .n = N, .count = N}, {.name = "q", .data = yq, .n = N, .count = N * 3}};
    loom_data data = {.n_x = 3, .x = x, .n_y = 2, .y = y};
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = 8;
    fo.epochs = 3;
    fo.verbose = 0;
    fo.validation_split = 0.25f;
    loom_history *h = NULL;
    CHECK_STATUS(loom_fit(m, &data, &fo, &h), LOOM_OK);
    for (int e = 0; e < 3; e++) {
        losses[2 * e] = loom_history_get(h, "loss", e);
        losses[2 * e + 1] = loom_history_get(h, "val_loss", e);
    }
    loom_history_free(h);
    return m;
}

static bool same_bits(loom_model *a, loom_model *b) {
    size_t n = loom_param_count(a);
    return n == loom_param_count(b) && memcmp(loom_params(a), loom_params(b), n * sizeof(float)) == 0;
}

static void free_model(loom_model *m) { loom_model_free(m); /* and its graph */ }

/* every gradient of a region's parts in memory no other part's gradient touches */
static void check_disjoint_grads(const loom_model *m) {
    const loom_branches *b = m->branches;
    for (int k = 0; b && k < b->n; k++) {
        const loom_region *r = &b->r[k];
        for (int i = r->start; i < r->end; i++)
            for (int j = r->start; j < r->end; j++) {
                const loom_step_node *u = &m->order[i], *v = &m->order[j];
                if (i == j || !u->grad || !v->grad || r->part[i - r->start] == r->part[j - r->start]) continue;
                const float *u1 = u->grad + (size_t)m->plan_batch * u->size, *v1 = v->grad + (size_t)m->plan_batch * v->size;
                CHECK(u1 <= v->grad || v1 <= u->grad);
            }
    }
}

static void test_towers_region(void) {
    loom_model *m = towers(LOOM_POLICY_FLOAT32, loom_sgd(0.05f, 0, 0));
    if (!m) return;
    CHECK_STATUS(loom_engine_plan(m, 8), LOOM_OK);
    const loom_branches *b = m->branches;
    CHECK(b && b->n == 1);
    if (b && b->n == 1) {
        CHECK(b->r[0].n_parts == 3);
        CHECK(strcmp(m->order[b->r[0].end].node->layer->name, "join") == 0);
        int in_region = 0;
        for (int p = b->r[0].start; p < b->r[0].end; p++) in_region += b->r[0].part[p - b->r[0].start] >= 0;
        CHECK(in_region == 7); /* emb, lstm; emb, gru, dropout; dense, dense */
    }
    check_disjoint_grads(m);
    free_model(m);
}

static void nop_cb(const loom_custom_ctx *c, void *user) { (void)c, (void)user; }
static int same_shape(int n_in, const int *in_rank, const int (*in_dims)[LOOM_MAX_RANK], int *out_dims, void *user) {
    (void)n_in, (void)user;
    memcpy(out_dims, in_dims[0], sizeof(int) * (size_t)in_rank[0]);
    return in_rank[0];
}

/* shape: 0 fork from a trained node, 1 a layer shared by two towers, 2 a custom layer in a tower,
 * 3 a fork-join inside a tower */
static int regions_of(int shape, int *parts) {
    loom_graph *g = loom_graph_new(3);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){6}), *y = loom_input(g, "y", 1, (int[]){6}), *out = NULL;
    if (shape == 0) {
        loom_tensor *a = loom_call(loom_dense(g, "a", 6, LOOM_RELU, NULL), x);
        loom_tensor *l = loom_call(loom_dense(g, "l", 6, LOOM_RELU, NULL), a);
        loom_tensor *r = loom_call(loom_dense(g, "r", 6, LOOM_RELU, NULL), a);
        out = loom_call_n(loom_add(g, "sum"), 2, (loom_tensor *[]){l, r});
        (void)y;
    } else if (shape == 1) {
        loom_layer *s = loom_dense(g, "shared", 6, LOOM_RELU, NULL);
        loom_tensor *l = loom_call(loom_dense(g, "l", 6, LOOM_RELU, NULL), loom_call(s, x));
        loom_tensor *r = loom_call(loom_dense(g, "r", 6, LOOM_RELU, NULL), loom_call(s, y));
        out = loom_call_n(loom_add(g, "sum"), 2, (loom_tensor *[]){l, r});
    } else if (shape == 2) {
        loom_custom_layer def = {.class_name = "Nop", .min_inputs = 1, .max_inputs = 1, .output_shape = same_shape,
                                 .forward = nop_cb, .backward = nop_cb};
        loom_tensor *l = loom_call(loom_custom(g, "mine", &def), loom_call(loom_dense(g, "l", 6, LOOM_RELU, NULL), x));
        loom_tensor *r = loom_call(loom_dense(g, "r", 6, LOOM_RELU, NULL), y);
        out = loom_call_n(loom_add(g, "sum"), 2, (loom_tensor *[]){l, r});
    } else {
        loom_tensor *a2 = loom_call(loom_dense(g, "a2", 6, LOOM_RELU, NULL), loom_call(loom_dense(g, "a1", 6, LOOM_RELU, NULL), x));
        loom_tensor *b1 = loom_call(loom_dense(g, "b1", 6, LOOM_RELU, NULL), x);
        loom_tensor *t = loom_call(loom_dense(g, "t", 6, LOOM_RELU, NULL), loom_call_n(loom_add(g, "inner"), 2, (loom_tensor *[]){a2, b1}));
        loom_tensor *u = loom_call(loom_dense(g, "u", 6, LOOM_RELU, NULL), y);
        out = loom_call_n(loom_concatenate(g, "outer", -1), 2, (loom_tensor *[]){t, u});
    }
    loom_model *m = loom_model_new(g, shape == 0 ? 1 : 2, (loom_tensor *[]){x, y}, 1, (loom_tensor *[]){out});
    CHECK(m != NULL);
    int n = -1;
    *parts = 0;
    if (m) {
        loom_loss mse = {.name = "mse"};
        loom_compile_config cfg = {.n_losses = 1, .losses = &mse, .optimizer = loom_sgd(0.01f, 0, 0)};
        CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
        CHECK_STATUS(loom_engine_plan(m, 4), LOOM_OK);
        n = m->branches ? m->branches->n : -1;
        if (n == 1) *parts = m->branches->r[0].n_parts;
        loom_model_free(m);
    } else {
        loom_graph_free(g);
    }
    return n;
}

static void test_no_regions(void) {
    int parts;
    CHECK(regions_of(0, &parts) == 0); /* l and r add into a's gradient */
    CHECK(regions_of(1, &parts) == 0); /* both towers would write shared's weight gradient */
    CHECK(regions_of(2, &parts) == 0); /* a user's layer may not be thread-safe */
    CHECK(regions_of(3, &parts) == 1 && parts == 2); /* the outer one; the inner runs inside a part */
}

static void test_same_bits(void) {
    float l0[6], l1[6], lm[6];
    loom_model *seq = train("0", LOOM_POLICY_FLOAT32, loom_sgd(0.05f, 0, 0), l0);
    loom_model *con = train("1", LOOM_POLICY_FLOAT32, loom_sgd(0.05f, 0, 0), l1);
    loom_model *mea = train(NULL, LOOM_POLICY_FLOAT32, loom_sgd(0.05f, 0, 0), lm);
    if (seq && con && mea) {
        CHECK(seq->branches->n == 1 && con->branches->r[0].lanes == 2);
        CHECK(same_bits(seq, con));
        CHECK(same_bits(seq, mea));
        CHECK(memcmp(l0, l1, sizeof l0) == 0 && memcmp(l0, lm, sizeof l0) == 0);
        CHECK(mea->branches->r[0].timing[LOOM_BRANCH_FORWARD].choice >= 0);
        CHECK(mea->branches->r[0].timing[LOOM_BRANCH_BACKWARD].choice >= 0);
        CHECK(l0[4] < l0[0]); /* it learns */
    }
    free_model(seq), free_model(con), free_model(mea);

    /* mixed_bfloat16 (a products' workspace per lane) with Adam */
    seq = train("0", LOOM_POLICY_MIXED_BFLOAT16, loom_adam(1e-2f), l0);
    con = train("1", LOOM_POLICY_MIXED_BFLOAT16, loom_adam(1e-2f), l1);
    if (seq && con) {
        CHECK(con->ws_lanes == 2);
        CHECK(same_bits(seq, con));
        CHECK(memcmp(l0, l1, sizeof l0) == 0);
        check_disjoint_grads(con);
    }
    free_model(seq), free_model(con);
}

/* An id the embedding cannot look up, met inside a lane: the same error as one after another. */
static void test_error_in_lane(void) {
    char msg[2][LOOM_ERR_MAX];
    for (int way = 0; way < 2; way++) {
        setenv("LOOM_BRANCHES", way ? "1" : "0", 1);
        loom_model *m = towers(LOOM_POLICY_FLOAT32, loom_sgd(0.05f, 0, 0));
        msg[way][0] = 0;
        if (!m) continue;
        CHECK_STATUS(loom_engine_plan(m, 8), LOOM_OK);
        loom_step_node *b = &m->order[m->input_pos[1]];
        for (size_t i = 0; i < 8 * b->size; i++) b->val[i] = 1.0f;
        b->val[3] = 77.0f; /* emb_b has 50 ids */
        CHECK(loom_engine_forward(m, 8, true, false, 0, NULL) != LOOM_OK);
        snprintf(msg[way], sizeof msg[way], "%s", loom_model_error(m));
        CHECK(strstr(msg[way], "emb_b") != NULL);
        free_model(m);
    }
    CHECK(strcmp(msg[0], msg[1]) == 0);
    unsetenv("LOOM_BRANCHES");
}

int main(void) {
    make_data();
    loom_set_num_threads(2);
    test_towers_region();
    test_no_regions();
    test_same_bits();
    test_error_in_lane();
    return check_report("test_branches");
}
