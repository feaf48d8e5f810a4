/* test_ops_grad.c — activations, Activation, Dropout, the merges, Flatten and Reshape: known
 * values, build errors, and central-difference checks of every backward (op_harness.h).
 * Layers are filled by hand, so the ops are tested without a graph or a model. */
#include "op_harness.h"

#include <string.h>

/* ---------------------------------------------------------------- test graph */

#ifdef OPS_GRAD_STANDALONE
/* STAND-IN FOR THE STANDALONE TEST BUILD ONLY (gcc with src/base/util.c and the op files, without
 * src/graph/graph.c). The constructors call loom_graph_new_layer; this minimal version hands out zeroed
 * layers from a static pool. The library's real one lives in src/graph/graph.c. */
static loom_layer standin_pool[64];
static int standin_used;

loom_layer *loom_graph_new_layer(loom_graph *g, const loom_op *op, const char *name) {
    if (!g || g->err.code) return NULL;
    if (standin_used == 64) {
        loom_set_error(&g->err, LOOM_ERR_MEMORY, "stand-in pool exhausted");
        return NULL;
    }
    loom_layer *L = &standin_pool[standin_used++];
    memset(L, 0, sizeof *L);
    L->graph = g;
    L->op = op;
    snprintf(L->name, sizeof L->name, "%s", name ? name : op->base_name);
    return L;
}

static loom_graph standin_graph;
static loom_graph *test_graph_new(void) {
    memset(&standin_graph, 0, sizeof standin_graph);
    return &standin_graph;
}
static void test_graph_free(loom_graph *g) { (void)g; }
#else
static loom_graph *test_graph_new(void) { return loom_graph_new(1); }
static void test_graph_free(loom_graph *g) { loom_graph_free(g); }
#endif

/* ---------------------------------------------------------------- helpers */

static loom_shape shp(int rank, int d0, int d1, int d2) {
    loom_shape s = {rank, {d0, d1, d2, 0}};
    return s;
}

static loom_layer make_layer(const loom_op *op, const char *name) {
    loom_layer L;
    memset(&L, 0, sizeof L);
    L.op = op;
    snprintf(L.name, sizeof L.name, "%s", name);
    return L;
}

/* Builds a hand-filled layer expecting failure: the status and a message naming the layer. */
static void expect_build_error(loom_layer *L, int n_in, const loom_shape *in, loom_status want,
                               const char *must_contain) {
    loom_error err = {0};
    loom_shape out;
    CHECK_STATUS(L->op->build(L, n_in, in, &out, &err), want);
    CHECK(err.code == want);
    CHECK(strstr(err.msg, L->name) != NULL);
    if (must_contain && !strstr(err.msg, must_contain))
        fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", err.msg, must_contain);
    CHECK(!must_contain || strstr(err.msg, must_contain) != NULL);
}

/* Moves points off the kinks at 0 (relu, leaky_relu, elu) so differences do not straddle them. */
static void away_from_zero(float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (fabsf(x[i]) < 0.1f) x[i] += x[i] < 0.0f ? -0.15f : 0.15f;
}

/* ---------------------------------------------------------------- activations */

static void test_activation_names(void) {
    for (int a = 0; a < LOOM_ACTIVATION_COUNT; a++)
        CHECK(loom_activation_from_name(loom_activation_name((loom_activation)a)) == a);
    CHECK(strcmp(loom_activation_name(LOOM_GELU), "gelu") == 0);
    CHECK(strcmp(loom_activation_name(LOOM_LEAKY_RELU), "leaky_relu") == 0);
    CHECK(loom_activation_from_name("silu") == LOOM_SWISH);
    CHECK(loom_activation_from_name("softmax") == LOOM_SOFTMAX);
    CHECK(loom_activation_from_name("Relu") == -1);
    CHECK(loom_activation_from_name("nope") == -1);
    CHECK(loom_activation_from_name(NULL) == -1);
    CHECK(strcmp(loom_activation_name((loom_activation)99), "unknown") == 0);
}

static float act1(loom_activation a, float x) {
    float y;
    loom_act_forward(a, &x, &y, 1, 1);
    return y;
}

static void test_activation_values(void) {
    /* references: Python math (erf, expm1, log1p) in double */
    CHECK(act1(LOOM_RELU, -1.0f) == 0.0f);
    CHECK(act1(LOOM_RELU, 2.5f) == 2.5f);
    CHECK(isnan(act1(LOOM_RELU, NAN)));
    CHECK(act1(LOOM_LINEAR, -3.25f) == -3.25f);
    CHECK_CLOSE(act1(LOOM_SIGMOID, 0.0f), 0.5, 1e-7, 0);
    CHECK_CLOSE(act1(LOOM_SIGMOID, 2.0f), 0.8807970779778823, 1e-7, 1e-6);
    CHECK_CLOSE(act1(LOOM_SIGMOID, -2.0f), 1.0 - 0.8807970779778823, 1e-7, 1e-6);
    CHECK(act1(LOOM_SIGMOID, -100.0f) >= 0.0f && act1(LOOM_SIGMOID, -100.0f) < 1e-40f);
    CHECK(act1(LOOM_SIGMOID, 100.0f) == 1.0f);
    CHECK_CLOSE(act1(LOOM_TANH, 0.5f), 0.46211715726000974, 1e-7, 1e-6);
    CHECK_CLOSE(act1(LOOM_GELU, 1.0f), 0.8413447460685429, 1e-7, 1e-6);
    CHECK_CLOSE(act1(LOOM_GELU, -1.0f), -0.15865525393145707, 1e-7, 1e-6);
    CHECK_CLOSE(act1(LOOM_GELU, 2.5f), 2.4844758366855597, 1e-6, 1e-6);
    CHECK_CLOSE(act1(LOOM_ELU, -1.0f), -0.6321205588285577, 1e-7, 1e-6);
    CHECK(act1(LOOM_ELU, 2.0f) == 2.0f);
    CHECK_CLOSE(act1(LOOM_LEAKY_RELU, -1.0f), -0.2, 1e-7, 1e-6);
    CHECK(act1(LOOM_LEAKY_RELU, 3.0f) == 3.0f);
    CHECK_CLOSE(act1(LOOM_SOFTPLUS, 0.0f), 0.6931471805599453, 1e-7, 1e-6);
    CHECK_CLOSE(act1(LOOM_SOFTPLUS, 1.0f), 1.3132616875182228, 1e-7, 1e-6);
    CHECK_CLOSE(act1(LOOM_SOFTPLUS, -20.0f), 2.061153620314381e-09, 0, 1e-5);
    CHECK_CLOSE(act1(LOOM_SOFTPLUS, 100.0f), 100.0, 0, 1e-7); /* no overflow */
    CHECK_CLOSE(act1(LOOM_SWISH, 1.0f), 0.7310585786300049, 1e-7, 1e-6);
    CHECK_CLOSE(act1(LOOM_SWISH, -2.0f), -0.2384058440442351, 1e-7, 1e-6);
    /* hard_sigmoid: Keras 3 clip(x / 6 + 0.5), Keras 2 clip(0.2 x + 0.5) */
    CHECK_CLOSE(act1(LOOM_HARD_SIGMOID, 1.5f), 0.75, 1e-7, 1e-6);
    CHECK(act1(LOOM_HARD_SIGMOID, 3.5f) == 1.0f && act1(LOOM_HARD_SIGMOID, -3.5f) == 0.0f);
    CHECK_CLOSE(act1(LOOM_HARD_SIGMOID_KERAS2, 1.5f), 0.8, 1e-7, 1e-6);
    CHECK(act1(LOOM_HARD_SIGMOID_KERAS2, 2.6f) == 1.0f && act1(LOOM_HARD_SIGMOID_KERAS2, -2.6f) == 0.0f);
    CHECK(loom_activation_from_name("hard_sigmoid") == LOOM_HARD_SIGMOID);

    /* softmax over rows: [1,2,3], the same shifted by 1000 (stability), and [-1, 0.5] */
    float x[6] = {1, 2, 3, 1000, 1001, 1002}, y[6];
    loom_act_forward(LOOM_SOFTMAX, x, y, 2, 3);
    const double want[3] = {0.09003057317038046, 0.24472847105479764, 0.6652409557748219};
    for (int j = 0; j < 3; j++) {
        CHECK_CLOSE(y[j], want[j], 1e-7, 1e-6);
        CHECK_CLOSE(y[3 + j], want[j], 1e-7, 1e-6);
    }
    float x2[2] = {-1.0f, 0.5f};
    loom_act_forward(LOOM_SOFTMAX, x2, x2, 1, 2); /* in place */
    CHECK_CLOSE(x2[0], 0.18242552380635635, 1e-7, 1e-6);
    CHECK_CLOSE(x2[1], 0.8175744761936437, 1e-7, 1e-6);
}

/* In place equals out of place, and where needs_input is false the backward works from y alone
 * (x passed as NULL: reading it would crash). */
static void test_activation_in_place_and_needs_input(void) {
    enum { N = 12 };
    float x[N], dy[N];
    oph_fill_uniform(x, N, -3.0f, 3.0f, 7);
    oph_fill_uniform(dy, N, -1.0f, 1.0f, 8);
    away_from_zero(x, N);
    for (int a = 0; a < LOOM_ACTIVATION_COUNT; a++) {
        float y[N], yy[N], d1[N] = {0}, d2[N] = {0};
        loom_act_forward((loom_activation)a, x, y, 3, 4);
        memcpy(yy, x, sizeof x);
        loom_act_forward((loom_activation)a, yy, yy, 3, 4);
        CHECK(memcmp(y, yy, sizeof y) == 0);
        loom_act_backward((loom_activation)a, x, y, dy, d1, 3, 4);
        if (!loom_act_needs_input((loom_activation)a)) {
            loom_act_backward((loom_activation)a, NULL, y, dy, d2, 3, 4);
            for (int i = 0; i < N; i++) CHECK_CLOSE(d2[i], d1[i], 1e-6, 1e-5);
        }
    }
    CHECK(loom_act_needs_input(LOOM_GELU));
    CHECK(loom_act_needs_input(LOOM_SWISH));
    CHECK(loom_act_needs_input(LOOM_SOFTPLUS));
    CHECK(!loom_act_needs_input(LOOM_SOFTMAX));
    CHECK(!loom_act_needs_input(LOOM_SIGMOID));
}

static void test_activation_layer_grads(void) {
    for (int a = 0; a < LOOM_ACTIVATION_COUNT; a++) {
        loom_layer L = make_layer(&loom_op_activation, "act");
        L.activation = (loom_activation)a;
        /* softmax sees rows of 5 inside a rank-2 sample: batch 3 x 2 rows */
        loom_shape in = shp(2, 2, 5, 0);
        op_harness H;
        CHECK_STATUS(oph_init(&H, &L, 1, &in, 3, 1, 0), LOOM_OK);
        CHECK(loom_shape_equal(&H.out_shape, &in));
        oph_fill_uniform(H.in[0], H.in_n[0], -2.5f, 2.5f, 100 + a);
        away_from_zero(H.in[0], H.in_n[0]);
        char label[64];
        snprintf(label, sizeof label, "Activation(%s)", loom_activation_name((loom_activation)a));
        oph_grad_check(&H, label, NULL);
        oph_free(&H);
    }

    /* a row of the layer's softmax output sums to 1 */
    loom_layer L = make_layer(&loom_op_activation, "act");
    L.activation = LOOM_SOFTMAX;
    loom_shape in = shp(1, 4, 0, 0);
    op_harness H;
    CHECK_STATUS(oph_init(&H, &L, 1, &in, 2, 0, 0), LOOM_OK);
    oph_forward(&H);
    for (int r = 0; r < 2; r++) {
        double s = 0;
        for (int j = 0; j < 4; j++) s += H.out[r * 4 + j];
        CHECK_CLOSE(s, 1.0, 1e-6, 0);
    }
    oph_free(&H);

    loom_layer bad = make_layer(&loom_op_activation, "bad_act");
    bad.activation = (loom_activation)LOOM_ACTIVATION_COUNT;
    expect_build_error(&bad, 1, &in, LOOM_ERR_ARGUMENT, NULL);
}

/* Fused loss: dout is already dL/dlogits, so it goes straight into din, derivative skipped. */
static void test_activation_fused_contract(void) {
    loom_activation acts[2] = {LOOM_SOFTMAX, LOOM_SIGMOID};
    for (int k = 0; k < 2; k++) {
        loom_layer L = make_layer(&loom_op_activation, "out");
        L.activation = acts[k];
        loom_shape in = shp(1, 3, 0, 0);
        op_harness H;
        CHECK_STATUS(oph_init(&H, &L, 1, &in, 2, 1, 0), LOOM_OK);
        oph_forward(&H);
        for (size_t j = 0; j < H.in_n[0]; j++) H.din[0][j] = oph_pattern(j);
        H.dout_is_preact = true;
        oph_backward(&H);
        for (size_t j = 0; j < H.in_n[0]; j++)
            CHECK(H.din[0][j] == oph_pattern(j) + H.dout[j]);

        /* and without the flag the derivative is applied (the results differ) */
        for (size_t j = 0; j < H.in_n[0]; j++) H.din[0][j] = 0.0f;
        H.dout_is_preact = false;
        oph_backward(&H);
        int differ = 0;
        for (size_t j = 0; j < H.in_n[0]; j++) differ += fabsf(H.din[0][j] - H.dout[j]) > 1e-3f;
        CHECK(differ > 0);
        oph_free(&H);
    }
}

/* ---------------------------------------------------------------- dropout */

static void test_dropout(void) {
    const float rate = 0.3f;
    const uint64_t key = 0xD0D0;
    loom_shape in = shp(1, 50, 0, 0);

    /* training: kept units scaled by 1/(1-rate), mask from uniform01(hash64(key, 0), i) >= rate (the
     * harness passes key as the seed, 0 as the counter) */
    loom_layer L = make_layer(&loom_op_dropout, "drop");
    L.rate = rate;
    op_harness H;
    CHECK_STATUS(oph_init(&H, &L, 1, &in, 4, 1, key), LOOM_OK);
    CHECK(H.n_scratch >= H.in_n[0]);
    oph_forward(&H);
    size_t dropped = 0, wrong = 0;
    for (size_t i = 0; i < H.in_n[0]; i++) {
        bool keep = loom_uniform01(loom_hash64(key, 0), i) >= rate;
        float want = keep ? H.in[0][i] / (1.0f - rate) : 0.0f;
        wrong += fabsf(H.out[i] - want) > 1e-6f;
        dropped += !keep;
    }
    CHECK(wrong == 0);
    /* 200 draws at p = 0.3: mean 60, sd 6.5 */
    CHECK(dropped > 35 && dropped < 85);
    oph_grad_check(&H, "Dropout(training)", NULL);

    /* another key, another mask */
    size_t same = 0;
    float *out1 = malloc(H.out_n * sizeof(float));
    memcpy(out1, H.out, H.out_n * sizeof(float));
    H.rng_key = key + 1;
    oph_forward(&H);
    for (size_t i = 0; i < H.out_n; i++) same += H.out[i] == out1[i];
    CHECK(same < H.out_n);
    free(out1);
    oph_free(&H);

    /* inference: identity, gradient passes through */
    CHECK_STATUS(oph_init(&H, &L, 1, &in, 4, 0, key), LOOM_OK);
    oph_forward(&H);
    CHECK(memcmp(H.out, H.in[0], H.out_n * sizeof(float)) == 0);
    oph_grad_check(&H, "Dropout(inference)", NULL);
    for (size_t i = 0; i < H.in_n[0]; i++) CHECK(H.din[0][i] == H.dout[i]);
    oph_free(&H);

    /* the backward follows its forward, not its own context's training flag */
    L.rate = rate;
    CHECK_STATUS(oph_init(&H, &L, 1, &in, 4, 0, key), LOOM_OK);
    oph_forward(&H);
    H.training = 1;
    memset(H.din[0], 0, H.in_n[0] * sizeof(float));
    oph_backward(&H);
    CHECK(memcmp(H.din[0], H.dout, H.in_n[0] * sizeof(float)) == 0);
    H.training = 1;
    oph_forward(&H);
    H.training = 0;
    memset(H.din[0], 0, H.in_n[0] * sizeof(float));
    oph_backward(&H);
    wrong = 0;
    for (size_t i = 0; i < H.in_n[0]; i++) {
        float want = loom_uniform01(loom_hash64(key, 0), i) >= rate ? H.dout[i] / (1.0f - rate) : 0.0f;
        wrong += fabsf(H.din[0][i] - want) > 1e-6f;
    }
    CHECK(wrong == 0);
    oph_free(&H);

    /* rate 0 in training is the identity too */
    L.rate = 0.0f;
    CHECK_STATUS(oph_init(&H, &L, 1, &in, 2, 1, key), LOOM_OK);
    oph_forward(&H);
    CHECK(memcmp(H.out, H.in[0], H.out_n * sizeof(float)) == 0);
    oph_free(&H);

    const float bad_rates[3] = {1.0f, -0.1f, NAN};
    for (int k = 0; k < 3; k++) {
        loom_layer B = make_layer(&loom_op_dropout, "bad_drop");
        B.rate = bad_rates[k];
        expect_build_error(&B, 1, &in, LOOM_ERR_ARGUMENT, "rate");
    }
}

/* ---------------------------------------------------------------- merges */

static void test_elementwise_merges(void) {
    loom_shape s[3] = {shp(2, 3, 2, 0), shp(2, 3, 2, 0), shp(2, 3, 2, 0)};
    const loom_op *ops[3] = {&loom_op_add, &loom_op_subtract, &loom_op_multiply};
    for (int o = 0; o < 3; o++) {
        for (int n = 2; n <= 3; n++) {
            if (ops[o] == &loom_op_subtract && n == 3) continue;
            loom_layer L = make_layer(ops[o], "merge");
            op_harness H;
            CHECK_STATUS(oph_init(&H, &L, n, s, 2, 1, 0), LOOM_OK);
            CHECK(loom_shape_equal(&H.out_shape, &s[0]));
            oph_forward(&H);
            size_t wrong = 0;
            for (size_t i = 0; i < H.out_n; i++) {
                double want = H.in[0][i];
                for (int k = 1; k < n; k++) {
                    if (ops[o] == &loom_op_add) want += H.in[k][i];
                    if (ops[o] == &loom_op_subtract) want -= H.in[k][i];
                    if (ops[o] == &loom_op_multiply) want *= H.in[k][i];
                }
                wrong += fabs(H.out[i] - want) > 1e-6;
            }
            CHECK(wrong == 0);
            char label[64];
            snprintf(label, sizeof label, "%s x%d", ops[o]->class_name, n);
            oph_grad_check(&H, label, NULL);
            oph_free(&H);
        }
    }

    /* Multiply with a zero input: the others' gradient is the product of the rest, not out/x */
    loom_layer M = make_layer(&loom_op_multiply, "mul");
    op_harness H;
    CHECK_STATUS(oph_init(&H, &M, 3, s, 1, 0, 0), LOOM_OK);
    H.in[1][0] = 0.0f;
    oph_forward(&H);
    for (int k = 0; k < 3; k++) memset(H.din[k], 0, H.in_n[k] * sizeof(float));
    oph_backward(&H);
    CHECK_CLOSE(H.din[1][0], H.dout[0] * H.in[0][0] * H.in[2][0], 1e-7, 1e-6);
    CHECK(H.din[0][0] == 0.0f && H.din[2][0] == 0.0f);
    oph_grad_check(&H, "Multiply x3 with a zero", NULL);
    oph_free(&H);

    /* build errors */
    loom_shape mism[2] = {shp(1, 3, 0, 0), shp(1, 4, 0, 0)};
    loom_layer A = make_layer(&loom_op_add, "add_bad");
    expect_build_error(&A, 2, mism, LOOM_ERR_SHAPE, "(None, 3)");
    expect_build_error(&A, 2, mism, LOOM_ERR_SHAPE, "(None, 4)");
    expect_build_error(&A, 1, mism, LOOM_ERR_COUNT, NULL);
    loom_layer Mu = make_layer(&loom_op_multiply, "mul_bad");
    loom_shape mism3[3] = {shp(2, 3, 2, 0), shp(2, 3, 2, 0), shp(1, 6, 0, 0)};
    expect_build_error(&Mu, 3, mism3, LOOM_ERR_SHAPE, "(None, 6)");
    loom_layer Su = make_layer(&loom_op_subtract, "sub_bad");
    expect_build_error(&Su, 3, s, LOOM_ERR_COUNT, NULL);
    expect_build_error(&Su, 2, mism, LOOM_ERR_SHAPE, "(None, 3)");
    CHECK(loom_op_subtract.min_inputs == 2 && loom_op_subtract.max_inputs == 2);
}

/* Output element (b, i, j, k) of a rank-3 concatenation, computed by index. */
static float concat_ref(const op_harness *H, int ax, int b, const int idx[3]) {
    int pos = idx[ax];
    for (int k = 0; k < H->n_in; k++) {
        const loom_shape *s = &H->in_shape[k];
        if (pos < s->dims[ax]) {
            int at[3] = {idx[0], idx[1], idx[2]};
            at[ax] = pos;
            size_t off = (size_t)b * loom_shape_size(s) +
                         ((size_t)at[0] * s->dims[1] + at[1]) * s->dims[2] + at[2];
            return H->in[k][off];
        }
        pos -= s->dims[ax];
    }
    return NAN;
}

static void test_concatenate(void) {
    struct {
        int axis, n;
        loom_shape in[3];
        loom_shape out;
    } cases[] = {
        {-1, 3, {shp(3, 2, 3, 4), shp(3, 2, 3, 2), shp(3, 2, 3, 1)}, shp(3, 2, 3, 7)},
        {3, 2, {shp(3, 2, 3, 4), shp(3, 2, 3, 2)}, shp(3, 2, 3, 6)},
        {1, 2, {shp(3, 2, 3, 4), shp(3, 1, 3, 4)}, shp(3, 3, 3, 4)},
        {1, 3, {shp(3, 2, 3, 4), shp(3, 1, 3, 4), shp(3, 3, 3, 4)}, shp(3, 6, 3, 4)},
        {2, 2, {shp(3, 2, 3, 4), shp(3, 2, 5, 4)}, shp(3, 2, 8, 4)},
        {-2, 3, {shp(3, 2, 3, 4), shp(3, 2, 1, 4), shp(3, 2, 2, 4)}, shp(3, 2, 6, 4)},
        {-3, 2, {shp(3, 2, 3, 4), shp(3, 4, 3, 4)}, shp(3, 6, 3, 4)},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        loom_layer L = make_layer(&loom_op_concatenate, "concat");
        L.axis = cases[c].axis;
        op_harness H;
        CHECK_STATUS(oph_init(&H, &L, cases[c].n, cases[c].in, 2, 1, 0), LOOM_OK);
        CHECK(loom_shape_equal(&H.out_shape, &cases[c].out));
        int ax = cases[c].axis < 0 ? cases[c].axis + 3 : cases[c].axis - 1;
        oph_forward(&H);
        const loom_shape *o = &H.out_shape;
        size_t wrong = 0, i = 0;
        for (int b = 0; b < 2; b++)
            for (int d0 = 0; d0 < o->dims[0]; d0++)
                for (int d1 = 0; d1 < o->dims[1]; d1++)
                    for (int d2 = 0; d2 < o->dims[2]; d2++, i++) {
                        int idx[3] = {d0, d1, d2};
                        wrong += H.out[i] != concat_ref(&H, ax, b, idx);
                    }
        CHECK(wrong == 0);
        char label[64];
        snprintf(label, sizeof label, "Concatenate(axis=%d) x%d", cases[c].axis, cases[c].n);
        oph_grad_check(&H, label, NULL);
        oph_free(&H);
    }

    /* rank 1 */
    loom_layer L = make_layer(&loom_op_concatenate, "concat1");
    L.axis = -1;
    loom_shape r1[2] = {shp(1, 3, 0, 0), shp(1, 2, 0, 0)};
    op_harness H;
    CHECK_STATUS(oph_init(&H, &L, 2, r1, 3, 0, 0), LOOM_OK);
    CHECK(H.out_shape.rank == 1 && H.out_shape.dims[0] == 5);
    oph_grad_check(&H, "Concatenate rank 1", NULL);
    oph_free(&H);

    /* errors: the batch axis, out of range, a mismatch off the axis */
    loom_shape s3[2] = {shp(3, 2, 3, 4), shp(3, 2, 3, 2)};
    int bad_axes[4] = {0, -4, 4, 7};
    for (int k = 0; k < 4; k++) {
        loom_layer B = make_layer(&loom_op_concatenate, "concat_axis");
        B.axis = bad_axes[k];
        expect_build_error(&B, 2, s3, LOOM_ERR_ARGUMENT, "axis");
    }
    loom_layer B = make_layer(&loom_op_concatenate, "concat_bad");
    B.axis = 1; /* joins on the first axis: dims 3 and 4 must match but 4 != 2 */
    expect_build_error(&B, 2, s3, LOOM_ERR_SHAPE, "(None, 2, 3, 4)");
    expect_build_error(&B, 2, s3, LOOM_ERR_SHAPE, "(None, 2, 3, 2)");
    loom_shape ranks[2] = {shp(3, 2, 3, 4), shp(2, 2, 3, 0)};
    B.axis = -1;
    expect_build_error(&B, 2, ranks, LOOM_ERR_SHAPE, "(None, 2, 3)");
    expect_build_error(&B, 1, ranks, LOOM_ERR_COUNT, NULL);
}

/* ---------------------------------------------------------------- flatten, reshape */

static void test_flatten_reshape(void) {
    loom_shape in = shp(3, 2, 3, 4);
    op_harness H;

    loom_layer F = make_layer(&loom_op_flatten, "flat");
    CHECK_STATUS(oph_init(&H, &F, 1, &in, 3, 1, 0), LOOM_OK);
    CHECK(H.out_shape.rank == 1 && H.out_shape.dims[0] == 24);
    oph_forward(&H);
    CHECK(memcmp(H.out, H.in[0], H.out_n * sizeof(float)) == 0);
    oph_grad_check(&H, "Flatten", NULL);
    oph_free(&H);
    loom_shape v = shp(1, 5, 0, 0);
    CHECK_STATUS(oph_init(&H, &F, 1, &v, 2, 0, 0), LOOM_OK);
    CHECK(H.out_shape.rank == 1 && H.out_shape.dims[0] == 5);
    oph_free(&H);

    struct {
        loom_shape target, out;
    } ok[] = {
        {shp(2, 4, -1, 0), shp(2, 4, 6, 0)},
        {shp(2, 6, 4, 0), shp(2, 6, 4, 0)},
        {shp(3, -1, 2, 3), shp(3, 4, 2, 3)},
        {shp(1, -1, 0, 0), shp(1, 24, 0, 0)},
        {(loom_shape){4, {1, 2, 3, 4}}, (loom_shape){4, {1, 2, 3, 4}}},
    };
    for (size_t c = 0; c < sizeof ok / sizeof ok[0]; c++) {
        loom_layer R = make_layer(&loom_op_reshape, "resh");
        R.target = ok[c].target;
        CHECK_STATUS(oph_init(&H, &R, 1, &in, 2, 1, 0), LOOM_OK);
        CHECK(loom_shape_equal(&H.out_shape, &ok[c].out));
        CHECK(R.target.dims[0] == ok[c].target.dims[0]); /* the layer's target stays as given */
        oph_forward(&H);
        CHECK(memcmp(H.out, H.in[0], H.out_n * sizeof(float)) == 0);
        oph_grad_check(&H, "Reshape", NULL);
        oph_free(&H);
    }

    loom_layer R = make_layer(&loom_op_reshape, "resh_bad");
    R.target = shp(2, 5, -1, 0); /* 24 is not a multiple of 5 */
    expect_build_error(&R, 1, &in, LOOM_ERR_SHAPE, "(None, 2, 3, 4)");
    expect_build_error(&R, 1, &in, LOOM_ERR_SHAPE, "(None, 5, -1)");
    R.target = shp(1, 7, 0, 0);
    expect_build_error(&R, 1, &in, LOOM_ERR_SHAPE, "(None, 7)");
    R.target = shp(2, 4, 7, 0);
    expect_build_error(&R, 1, &in, LOOM_ERR_SHAPE, "(None, 4, 7)");
    R.target = shp(2, -1, -1, 0);
    expect_build_error(&R, 1, &in, LOOM_ERR_ARGUMENT, "-1");
    R.target = shp(2, 0, 24, 0);
    expect_build_error(&R, 1, &in, LOOM_ERR_ARGUMENT, NULL);
    R.target = shp(0, 0, 0, 0);
    expect_build_error(&R, 1, &in, LOOM_ERR_ARGUMENT, "rank");
    R.target = shp(3, 2, 3, 4);
    R.target.rank = LOOM_MAX_RANK + 1;
    expect_build_error(&R, 1, &in, LOOM_ERR_ARGUMENT, "rank");
}

/* ---------------------------------------------------------------- constructors */

static void test_constructors(void) {
    loom_graph *g = test_graph_new();
    CHECK(g != NULL);
    if (!g) return;

    loom_layer *a = loom_activation_layer(g, "act", LOOM_GELU);
    CHECK(a && a->op == &loom_op_activation && a->activation == LOOM_GELU);
    loom_layer *d = loom_dropout(g, "drop", 0.25f);
    CHECK(d && d->op == &loom_op_dropout && d->rate == 0.25f);
    loom_layer *c = loom_concatenate(g, NULL, -2);
    CHECK(c && c->op == &loom_op_concatenate && c->axis == -2);
    CHECK(c && strcmp(c->name, "concatenate") == 0);
    loom_layer *r = loom_reshape(g, "resh", 2, (int[]){-1, 3});
    CHECK(r && r->target.rank == 2 && r->target.dims[0] == -1 && r->target.dims[1] == 3);
    loom_layer *ad = loom_add(g, NULL), *su = loom_subtract(g, NULL), *mu = loom_multiply(g, NULL);
    loom_layer *fl = loom_flatten(g, NULL);
    CHECK(ad && ad->op == &loom_op_add && strcmp(ad->name, "add") == 0);
    CHECK(su && su->op == &loom_op_subtract && mu && mu->op == &loom_op_multiply);
    CHECK(fl && fl->op == &loom_op_flatten && strcmp(fl->name, "flatten") == 0);
    CHECK(g->err.code == LOOM_OK);
    test_graph_free(g);

    /* each bad argument: NULL, a code, a message naming the layer or the argument */
    struct {
        int which;
        loom_status want;
        const char *text;
    } bad[] = {
        {0, LOOM_ERR_ARGUMENT, "my_drop"},  {1, LOOM_ERR_ARGUMENT, "rate"},
        {2, LOOM_ERR_ARGUMENT, "axis"},     {3, LOOM_ERR_ARGUMENT, "-1"},
        {4, LOOM_ERR_ARGUMENT, "rank"},     {5, LOOM_ERR_ARGUMENT, "my_act"},
        {6, LOOM_ERR_ARGUMENT, "dims"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        g = test_graph_new();
        loom_layer *L = NULL;
        switch (bad[k].which) {
        case 0: L = loom_dropout(g, "my_drop", 1.0f); break;
        case 1: L = loom_dropout(g, NULL, -0.5f); break;
        case 2: L = loom_concatenate(g, "cat", 0); break;
        case 3: L = loom_reshape(g, "r", 3, (int[]){-1, 2, -1}); break;
        case 4: L = loom_reshape(g, "r", 5, (int[]){1, 1, 1, 1, 1}); break;
        case 5: L = loom_activation_layer(g, "my_act", (loom_activation)42); break;
        case 6: L = loom_reshape(g, "r", 2, NULL); break;
        }
        CHECK(L == NULL);
        CHECK(g->err.code == bad[k].want);
        if (!strstr(g->err.msg, bad[k].text))
            fprintf(stderr, "  constructor case %zu: \"%s\" lacks \"%s\"\n", k, g->err.msg,
                    bad[k].text);
        CHECK(strstr(g->err.msg, bad[k].text) != NULL);
        CHECK(g->n_layers == 0); /* a refused layer is not added */
        test_graph_free(g);
    }

    /* sticky: after a failure every constructor returns NULL and keeps the first message */
    g = test_graph_new();
    CHECK(loom_dropout(g, "first", 2.0f) == NULL);
    char first[LOOM_ERR_MAX];
    memcpy(first, g->err.msg, sizeof first);
    CHECK(loom_activation_layer(g, "ok", LOOM_RELU) == NULL);
    CHECK(loom_dropout(g, "second", 5.0f) == NULL);
    CHECK(loom_add(g, NULL) == NULL && loom_subtract(g, NULL) == NULL);
    CHECK(loom_multiply(g, NULL) == NULL && loom_flatten(g, NULL) == NULL);
    CHECK(loom_concatenate(g, NULL, 0) == NULL);
    CHECK(loom_reshape(g, NULL, 9, NULL) == NULL);
    CHECK(g->err.code == LOOM_ERR_ARGUMENT && strcmp(g->err.msg, first) == 0);
    CHECK(g->n_layers == 0);
    test_graph_free(g);

    CHECK(loom_add(NULL, NULL) == NULL);
    CHECK(loom_dropout(NULL, NULL, 0.5f) == NULL);
}

static void test_op_tables(void) {
    const loom_op *ops[] = {&loom_op_activation, &loom_op_dropout, &loom_op_add,
                            &loom_op_subtract,   &loom_op_multiply, &loom_op_concatenate,
                            &loom_op_flatten,    &loom_op_reshape};
    const char *cls[] = {"Activation", "Dropout", "Add", "Subtract", "Multiply", "Concatenate",
                         "Flatten", "Reshape"};
    const char *base[] = {"activation", "dropout", "add", "subtract", "multiply", "concatenate",
                          "flatten", "reshape"};
    for (int i = 0; i < 8; i++) {
        CHECK(strcmp(ops[i]->class_name, cls[i]) == 0);
        CHECK(strcmp(ops[i]->base_name, base[i]) == 0);
        CHECK(ops[i]->build && ops[i]->forward && ops[i]->backward);
        CHECK(ops[i]->min_inputs >= 1 && ops[i]->max_inputs >= ops[i]->min_inputs);
    }
}

int main(void) {
    test_activation_names();
    test_activation_values();
    test_activation_in_place_and_needs_input();
    test_activation_layer_grads();
    test_activation_fused_contract();
    test_dropout();
    test_elementwise_merges();
    test_concatenate();
    test_flatten_reshape();
    test_constructors();
    test_op_tables();
    return check_report("test_ops_grad");
}
