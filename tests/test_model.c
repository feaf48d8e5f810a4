/* test_model.c — loom's core semantics through the public API only (loom.h): the weighted sum of
 * losses and its one backward pass, reach, shared layers, loss weights as state, Keras's log
 * rules, determinism, callbacks and every error a user can make while building, compiling or
 * feeding data. Reference values come from /work/shared/spec/keras-semantics.md (sections 2, 5, 7)
 * or from an independent computation (central differences of loom_evaluate, separate models). */
#include "check.h"
#include "loom.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

/* A test-local generator: the data must not depend on loom's own RNG. */
static float frand(float lo, float hi) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return lo + (hi - lo) * (float)((rng_state >> 40) * (1.0 / 16777216.0));
}

static void fill(float *p, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) p[i] = frand(lo, hi);
}

static bool has(const char *s, const char *sub) { return s && sub && strstr(s, sub) != NULL; }

static bool same_floats(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof *a) == 0; }

/* Copies one weight of a layer out (malloc'ed; the caller frees). */
static float *weights_of(loom_model *m, const char *layer, int i) {
    loom_layer *L = loom_model_find_layer(m, layer);
    size_t n = loom_layer_weight_size(L, i);
    float *w = malloc(n * sizeof *w + 1);
    if (w && loom_get_weights(m, layer, i, w, n) != LOOM_OK) {
        free(w);
        return NULL;
    }
    return w;
}

static bool layer_weights_equal(loom_model *m, const char *layer, const float *kernel, const float *bias) {
    loom_layer *L = loom_model_find_layer(m, layer);
    float *k = weights_of(m, layer, 0), *b = weights_of(m, layer, 1);
    bool eq = k && b && same_floats(k, kernel, loom_layer_weight_size(L, 0)) &&
              same_floats(b, bias, loom_layer_weight_size(L, 1));
    free(k);
    free(b);
    return eq;
}

/* Sets every weight of the named layers to random values in +-[0.05, 0.6] (biases too): away
 * from 0, where an L1 penalty has its kink. */
static void randomize_layers(loom_model *m, int n, const char *const *names) {
    for (int i = 0; i < n; i++) {
        loom_layer *L = loom_model_find_layer(m, names[i]);
        for (int w = 0; w < loom_layer_num_weights(L); w++) {
            size_t sz = loom_layer_weight_size(L, w);
            float *v = malloc(sz * sizeof *v);
            if (!v) continue;
            fill(v, sz, -0.55f, 0.55f);
            for (size_t j = 0; j < sz; j++) v[j] += v[j] < 0 ? -0.05f : 0.05f;
            CHECK_STATUS(loom_set_weights(m, names[i], w, v, sz), LOOM_OK);
            free(v);
        }
    }
}

/* The value of a history key after loom_evaluate over the whole data in one batch. */
static float evaluate_key(loom_model *m, const loom_data *d, int batch, const char *key) {
    loom_history *h = NULL;
    loom_status s = loom_evaluate(m, d, batch, 0, &h);
    if (s) fprintf(stderr, "evaluate: %s\n", loom_model_error(m));
    float v = s ? NAN : loom_history_get(h, key, 0);
    loom_history_free(h);
    return v;
}

static loom_model *model_or_report(loom_graph *g, int n_in, loom_tensor *const *in, int n_out,
                                   loom_tensor *const *out) {
    loom_model *m = loom_model_new(g, n_in, in, n_out, out);
    if (!m) {
        fprintf(stderr, "model_new failed: %s\n", loom_graph_error(g));
        loom_graph_free(g);
    }
    return m;
}

/* ---------------------------------------------------------------- the seed model
 * in(4) -> A Dense(8, relu) -> B Dense(6, tanh) -> { C Dense(3, softmax) : cce, w 0.5
 *                                                   D Dense(2, linear)   : mse, w 0.3 } */

#define NS 10
static float seed_x[NS * 4], seed_yc[NS * 3], seed_yd[NS * 2];
static loom_array seed_xa[1], seed_ya[2];
static loom_data seed_data;

static void make_seed_data(void) {
    fill(seed_x, NS * 4, -1.5f, 1.5f);
    memset(seed_yc, 0, sizeof seed_yc);
    for (int i = 0; i < NS; i++) seed_yc[i * 3 + (i * 7 + 1) % 3] = 1.0f;
    fill(seed_yd, NS * 2, -1.0f, 1.0f);
    seed_xa[0] = (loom_array){.name = "in", .data = seed_x, .n = NS, .count = NS * 4};
    seed_ya[0] = (loom_array){.name = "C", .data = seed_yc, .n = NS, .count = NS * 3};
    seed_ya[1] = (loom_array){.name = "D", .data = seed_yd, .n = NS, .count = NS * 2};
    seed_data = (loom_data){1, seed_xa, 2, seed_ya, 0, NULL};
}

/* The first n samples of the seed data (arrays point into the same storage). */
typedef struct data_view {
    loom_array x[1], y[2];
    loom_data d;
} data_view;

static void seed_slice(data_view *v, size_t first, size_t n) {
    v->x[0] = (loom_array){.name = "in", .data = seed_x + first * 4, .n = n, .count = n * 4};
    v->y[0] = (loom_array){.name = "C", .data = seed_yc + first * 3, .n = n, .count = n * 3};
    v->y[1] = (loom_array){.name = "D", .data = seed_yd + first * 2, .n = n, .count = n * 2};
    v->d = (loom_data){1, v->x, 2, v->y, 0, NULL};
}

static loom_model *seed_model(uint64_t seed) {
    loom_graph *g = loom_graph_new(seed);
    loom_tensor *x = loom_input(g, "in", 1, (int[]){4});
    loom_tensor *a = loom_call(loom_dense(g, "A", 8, LOOM_RELU, NULL), x);
    loom_tensor *b = loom_call(loom_dense(g, "B", 6, LOOM_TANH, NULL), a);
    loom_tensor *c = loom_call(loom_dense(g, "C", 3, LOOM_SOFTMAX, NULL), b);
    loom_tensor *d = loom_call(loom_dense(g, "D", 2, LOOM_LINEAR, NULL), b);
    loom_model *m = model_or_report(g, 1, &x, 2, (loom_tensor *[]){c, d});
    CHECK(m != NULL);
    return m;
}

static loom_status seed_compile(loom_model *m, float wc, float wd, loom_optimizer opt, bool metric) {
    loom_loss losses[2] = {{.name = "categorical_crossentropy"}, {.name = "mse"}};
    float w[2] = {wc, wd};
    loom_metric_spec ms = {"C", "accuracy"};
    loom_compile_config cfg = {.n_losses = 2, .losses = losses, .n_loss_weights = 2, .loss_weights = w,
                               .n_metrics = metric ? 1 : 0, .metrics = &ms, .optimizer = opt};
    loom_status s = loom_compile(m, &cfg);
    if (s) fprintf(stderr, "compile: %s\n", loom_model_error(m));
    return s;
}

static const char *const SEED_LAYERS[4] = {"A", "B", "C", "D"};

/* ---------------------------------------------------------------- 1. weighted sum of gradients */

static void test_weighted_gradients(void) {
    loom_model *m = seed_model(1);
    if (!m) return;
    randomize_layers(m, 4, SEED_LAYERS);
    CHECK_STATUS(seed_compile(m, 0.5f, 0.3f, loom_sgd(0.01f, 0, 0), false), LOOM_OK);
    size_t P = loom_param_count(m);
    float *gt = malloc(P * sizeof *gt), *gc = malloc(P * sizeof *gc), *gd = malloc(P * sizeof *gd);
    float losses[2] = {0}, lc[2], ld[2];
    /* every gradient is written, whatever the buffers held: a layer no chosen loss reaches gets 0 */
    for (size_t i = 0; i < P; i++) gt[i] = gc[i] = gd[i] = NAN;
    CHECK_STATUS(loom_gradients(m, &seed_data, 0, NULL, gt, losses), LOOM_OK);
    CHECK(isfinite(losses[0]) && isfinite(losses[1]) && losses[0] > 0 && losses[1] > 0);

    /* per-loss gradients with the weight temporarily 1 */
    CHECK_STATUS(loom_set_loss_weight(m, "C", 1.0f), LOOM_OK);
    CHECK_STATUS(loom_set_loss_weight(m, "D", 1.0f), LOOM_OK);
    CHECK_STATUS(loom_gradients(m, &seed_data, 1, (const char *[]){"C"}, gc, lc), LOOM_OK);
    CHECK_STATUS(loom_gradients(m, &seed_data, 1, (const char *[]){"D"}, gd, ld), LOOM_OK);
    CHECK_STATUS(loom_set_loss_weight(m, "C", 0.5f), LOOM_OK);
    CHECK_STATUS(loom_set_loss_weight(m, "D", 0.3f), LOOM_OK);
    CHECK(loom_get_loss_weight(m, "C") == 0.5f && loom_get_loss_weight(m, "D") == 0.3f);
    CHECK(isnan(loom_get_loss_weight(m, "nope")));
    /* the unweighted per-output losses do not depend on which outputs are differentiated */
    CHECK(lc[0] == losses[0] && ld[1] == losses[1]);

    int bad = 0, nonzero = 0;
    for (size_t i = 0; i < P; i++) {
        double e = 0.5 * gc[i] + 0.3 * gd[i];
        nonzero += gt[i] != 0.0f;
        if (!(fabs(gt[i] - e) <= 1e-6 + 1e-5 * fabs(e)) && bad++ < 5)
            fprintf(stderr, "  weighted gradient [%zu]: total %.8g, 0.5 gC + 0.3 gD %.8g\n", i, gt[i], e);
    }
    CHECK(bad == 0);
    CHECK(nonzero > (int)P / 2);

    /* reach: C's loss gives D's weights exactly 0, and D's gives C's exactly 0 */
    const char *heads[2] = {"C", "D"};
    for (int h = 0; h < 2; h++) {
        const float *g = h == 0 ? gd : gc; /* the other head's loss */
        loom_layer *L = loom_model_find_layer(m, heads[h]);
        int nz = 0, nz_own = 0;
        for (int w = 0; w < loom_layer_num_weights(L); w++) {
            size_t off = loom_param_offset(m, heads[h], w), sz = loom_layer_weight_size(L, w);
            for (size_t j = 0; j < sz; j++) {
                nz += g[off + j] != 0.0f;
                nz_own += (h == 0 ? gc : gd)[off + j] != 0.0f;
            }
        }
        CHECK(nz == 0);
        CHECK(nz_own > 0);
    }
    /* unknown output and an output list that is NULL */
    CHECK_STATUS(loom_gradients(m, &seed_data, 1, (const char *[]){"E"}, gc, NULL), LOOM_ERR_NAME);
    CHECK(has(loom_model_error(m), "\"E\""));
    CHECK_STATUS(loom_gradients(m, &seed_data, 1, NULL, gc, NULL), LOOM_ERR_ARGUMENT);
    free(gt);
    free(gc);
    free(gd);
    loom_model_free(m);
}

/* ---------------------------------------------------------------- 2. central differences */

/* Compares loom_gradients(total) with central differences of loom_evaluate's `loss` over the
 * whole data in one batch. Returns the number of mismatches. */
static int fd_check(loom_model *m, const loom_data *d, int n, const char *label, double h) {
    size_t P = loom_param_count(m);
    float *g = calloc(P, sizeof *g);
    float *p = loom_params(m);
    CHECK_STATUS(loom_gradients(m, d, 0, NULL, g, NULL), LOOM_OK);
    int bad = 0;
    double num2 = 0, diff2 = 0, worst = 0;
    for (size_t i = 0; i < P; i++) {
        float v = p[i];
        float vp = (float)(v + h), vm = (float)(v - h);
        p[i] = vp;
        double fp = evaluate_key(m, d, n, "loss");
        p[i] = vm;
        double fm = evaluate_key(m, d, n, "loss");
        p[i] = v;
        double num = (fp - fm) / ((double)vp - (double)vm);
        double a = g[i], err = fabs(a - num);
        num2 += num * num;
        diff2 += err * err;
        if (err > worst) worst = err;
        if (!(err <= 1e-4 + 2e-2 * fmax(fabs(a), fabs(num)))) {
            if (bad < 6) fprintf(stderr, "  %s: param %zu analytic %.7g numeric %.7g\n", label, i, a, num);
            bad++;
        }
    }
    CHECK(bad == 0);
    /* and the whole vector: relative error of the gradient */
    CHECK(sqrt(diff2) <= 5e-3 * sqrt(num2));
    CHECK(num2 > 0);
    free(g);
    return bad;
}

static void test_fd_seed(void) {
    loom_model *m = seed_model(2);
    if (!m) return;
    randomize_layers(m, 4, SEED_LAYERS);
    CHECK_STATUS(seed_compile(m, 0.5f, 0.3f, loom_sgd(0.01f, 0, 0), false), LOOM_OK);
    fd_check(m, &seed_data, NS, "seed model", 2e-3);
    loom_model_free(m);
}

/* The rich graph: two inputs, Flatten, a Dense with L1/L2 regularisers, a shared Dense called on
 * two tensors, Add, Subtract, Multiply, Concatenate, Reshape, a rank-2 Dense, an Activation layer
 * and three heads with sparse CCE (fused softmax), Huber and BCE (fused sigmoid). */
#define NR 6
static float rich_a[NR * 4], rich_b[NR * 6], rich_y1[NR], rich_y2[NR * 2], rich_y3[NR];
static float rich_sw1[NR], rich_sw2[NR], rich_y4[NR * 8], rich_sw4[NR];

static loom_model *rich_model(uint64_t seed, bool shared) {
    loom_graph *g = loom_graph_new(seed);
    loom_tensor *a = loom_input(g, "a", 1, (int[]){4});
    loom_tensor *b = loom_input(g, "b", 2, (int[]){3, 2});
    loom_tensor *fb = loom_call(loom_flatten(g, "fb"), b);
    loom_dense_options po = loom_dense_defaults();
    po.kernel_regularizer = (loom_regularizer){0.01f, 0};
    po.bias_regularizer = (loom_regularizer){0, 0.02f};
    loom_tensor *p = loom_call(loom_dense(g, "P", 4, LOOM_SIGMOID, &po), fb);
    loom_dense_options so = loom_dense_defaults();
    so.kernel_regularizer = (loom_regularizer){0, 0.01f};
    so.bias_regularizer = (loom_regularizer){0.005f, 0};
    loom_layer *S = loom_dense(g, "S", 5, LOOM_TANH, &so);
    loom_tensor *s1 = loom_call(S, a);
    loom_tensor *s2 = loom_call(shared ? S : loom_dense(g, "S2", 5, LOOM_TANH, &so), p);
    loom_tensor *add = loom_call_n(loom_add(g, "add"), 2, (loom_tensor *[]){s1, s2});
    loom_tensor *sub = loom_call_n(loom_subtract(g, "sub"), 2, (loom_tensor *[]){s1, s2});
    loom_tensor *mul = loom_call_n(loom_multiply(g, "mul"), 2, (loom_tensor *[]){add, sub});
    loom_tensor *cat = loom_call_n(loom_concatenate(g, "cat", -1), 3, (loom_tensor *[]){mul, s1, fb});
    loom_tensor *r = loom_call(loom_reshape(g, "r", 2, (int[]){4, 4}), cat);
    loom_tensor *dr = loom_call(loom_dense(g, "R", 3, LOOM_TANH, NULL), r);
    loom_tensor *f = loom_call(loom_flatten(g, "f"), dr);
    loom_tensor *act = loom_call(loom_activation_layer(g, "act", LOOM_TANH), f);
    loom_tensor *h1 = loom_call(loom_dense(g, "H1", 3, LOOM_SOFTMAX, NULL), act);
    loom_tensor *h2 = loom_call(loom_dense(g, "H2", 2, LOOM_LINEAR, NULL), mul);
    loom_tensor *h3 = loom_call(loom_dense(g, "H3", 1, LOOM_SIGMOID, NULL), act);
    loom_tensor *h4 = loom_call(loom_dense(g, "H4", 2, LOOM_SOFTMAX, NULL), r); /* (4, 2) */
    loom_model *m = model_or_report(g, 2, (loom_tensor *[]){a, b}, 4, (loom_tensor *[]){h1, h2, h3, h4});
    CHECK(m != NULL);
    if (!m) return NULL;
    int dims[LOOM_MAX_RANK];
    CHECK(loom_tensor_shape(dr, dims) == 2 && dims[0] == 4 && dims[1] == 3);
    CHECK(loom_tensor_shape(cat, dims) == 1 && dims[0] == 16);
    loom_loss losses[4] = {{.name = "sparse_categorical_crossentropy"}, {.name = "huber"},
                           {.name = "binary_crossentropy"}, {.name = "categorical_crossentropy"}};
    float w[4] = {0.7f, 1.3f, 0.4f, 0.9f};
    loom_compile_config cfg = {.n_losses = 4, .losses = losses, .n_loss_weights = 4, .loss_weights = w,
                               .optimizer = loom_sgd(0.01f, 0, 0)};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    return m;
}

static loom_array rich_x[2], rich_y[4], rich_sw[3];
static loom_data rich_data;

static void make_rich_data(void) {
    fill(rich_a, NR * 4, -1.5f, 1.5f);
    fill(rich_b, NR * 6, -1.5f, 1.5f);
    for (int i = 0; i < NR; i++) {
        rich_y1[i] = (float)(i % 3);
        rich_y3[i] = (float)(i % 2);
        rich_sw1[i] = 0.5f + 0.25f * (float)i;
        rich_sw2[i] = i == 2 ? 0.0f : 2.0f - 0.2f * (float)i; /* a zero weight stays in the mean */
        rich_sw4[i] = 1.5f - 0.2f * (float)i;                  /* repeated over the 4 rows of a sample */
    }
    memset(rich_y4, 0, sizeof rich_y4);
    for (int r = 0; r < NR * 4; r++) rich_y4[r * 2 + (r * 5 + 1) % 3 % 2] = 1.0f;
    fill(rich_y2, NR * 2, -2.5f, 2.5f); /* errors on both sides of Huber's delta */
    rich_x[0] = (loom_array){.name = "a", .data = rich_a, .n = NR, .count = NR * 4};
    rich_x[1] = (loom_array){.name = "b", .data = rich_b, .n = NR, .count = NR * 6};
    rich_y[0] = (loom_array){.name = "H1", .data = rich_y1, .n = NR, .count = NR};
    rich_y[1] = (loom_array){.name = "H2", .data = rich_y2, .n = NR, .count = NR * 2};
    rich_y[2] = (loom_array){.name = "H3", .data = rich_y3, .n = NR, .count = NR};
    rich_sw[0] = (loom_array){.name = "H1", .data = rich_sw1, .n = NR, .count = NR};
    rich_y[3] = (loom_array){.name = "H4", .data = rich_y4, .n = NR, .count = NR * 8};
    rich_sw[1] = (loom_array){.name = "H3", .data = rich_sw2, .n = NR, .count = NR};
    rich_sw[2] = (loom_array){.name = "H4", .data = rich_sw4, .n = NR, .count = NR};
    rich_data = (loom_data){2, rich_x, 4, rich_y, 3, rich_sw};
}

#define N_RICH_LAYERS 7
static const char *const RICH_LAYERS[N_RICH_LAYERS] = {"P", "S", "R", "H1", "H2", "H3", "H4"};

static void test_fd_rich(void) {
    loom_model *m = rich_model(3, true);
    if (!m) return;
    randomize_layers(m, N_RICH_LAYERS, RICH_LAYERS);
    /* the shared layer has one set of weights */
    loom_layer *S = loom_model_find_layer(m, "S");
    CHECK(S != NULL && loom_layer_num_weights(S) == 2 && loom_layer_weight_size(S, 0) == 20);
    CHECK(loom_param_count(m) == (6 * 4 + 4) + (4 * 5 + 5) + (4 * 3 + 3) + (12 * 3 + 3) + (5 * 2 + 2) + (12 + 1) + (4 * 2 + 2));
    fd_check(m, &rich_data, NR, "rich graph", 5e-3);

    /* each head's logged loss against its formula on predict's outputs, in double (Keras
     * sum_over_batch_size: the divisor counts every row, zero-weighted ones included) */
    {
        float p1[NR * 3], p2[NR * 2], p3[NR], p4[NR * 8];
        CHECK_STATUS(loom_predict(m, 2, rich_x, 4, (float *[]){p1, p2, p3, p4}), LOOM_OK);
        double l1 = 0, l2 = 0, l3 = 0, l4 = 0;
        for (int i = 0; i < NR; i++) {
            l1 += rich_sw1[i] * -log(p1[i * 3 + (int)rich_y1[i]]);
            for (int j = 0; j < 2; j++) {
                double e = fabs((double)p2[i * 2 + j] - rich_y2[i * 2 + j]);
                l2 += (e <= 1 ? 0.5 * e * e : e - 0.5) / 2;
            }
            l3 += rich_sw2[i] * -(rich_y3[i] * log(p3[i]) + (1 - rich_y3[i]) * log(1 - p3[i]));
            for (int r = 0; r < 4; r++)
                for (int j = 0; j < 2; j++)
                    l4 += rich_sw4[i] * -rich_y4[(i * 4 + r) * 2 + j] * log(p4[(i * 4 + r) * 2 + j]);
        }
        loom_history *e = NULL;
        CHECK_STATUS(loom_evaluate(m, &rich_data, 4, 0, &e), LOOM_OK);
        CHECK_CLOSE(loom_history_get(e, "H1_loss", 0), l1 / NR, 1e-6, 1e-5);
        CHECK_CLOSE(loom_history_get(e, "H2_loss", 0), l2 / NR, 1e-6, 1e-5);
        CHECK_CLOSE(loom_history_get(e, "H3_loss", 0), l3 / NR, 1e-6, 1e-5);
        CHECK_CLOSE(loom_history_get(e, "H4_loss", 0), l4 / (NR * 4), 1e-6, 1e-5);
        loom_history_free(e);
    }
    /* the regularisers are in the total: the loss of all-zero loss weights is the penalty */
    float p_k[24], s_k[20], s_b[5], p_b[4];
    loom_get_weights(m, "P", 0, p_k, 24);
    loom_get_weights(m, "P", 1, p_b, 4);
    loom_get_weights(m, "S", 0, s_k, 20);
    loom_get_weights(m, "S", 1, s_b, 5);
    double pen = 0;
    for (int i = 0; i < 24; i++) pen += 0.01 * fabs(p_k[i]);
    for (int i = 0; i < 4; i++) pen += 0.02 * (double)p_b[i] * p_b[i];
    for (int i = 0; i < 20; i++) pen += 0.01 * (double)s_k[i] * s_k[i];
    for (int i = 0; i < 5; i++) pen += 0.005 * fabs(s_b[i]);
    const char *heads[4] = {"H1", "H2", "H3", "H4"};
    for (int k = 0; k < 4; k++) CHECK_STATUS(loom_set_loss_weight(m, heads[k], 0.0f), LOOM_OK);
    CHECK_CLOSE(evaluate_key(m, &rich_data, NR, "loss"), pen, 1e-6, 1e-5);
    /* and the per-output losses are still evaluated and logged, unweighted */
    CHECK(evaluate_key(m, &rich_data, NR, "H2_loss") > 0);
    loom_model_free(m);
}

/* Forks at outputs: an output that another layer also reads (so its softmax cannot be fused with
 * the crossentropy), and a softmax fused through a separate Activation layer. */
static void test_fd_forks(void) {
    loom_graph *g = loom_graph_new(21);
    loom_tensor *x = loom_input(g, "in", 1, (int[]){4});
    loom_tensor *a = loom_call(loom_dense(g, "A", 5, LOOM_TANH, NULL), x);
    loom_tensor *b = loom_call(loom_dense(g, "B", 3, LOOM_SOFTMAX, NULL), a);
    loom_tensor *c = loom_call(loom_dense(g, "C", 2, LOOM_LINEAR, NULL), b);
    loom_tensor *z = loom_call(loom_dense(g, "Z", 3, LOOM_LINEAR, NULL), a);
    loom_tensor *sm = loom_call(loom_activation_layer(g, "Sm", LOOM_SOFTMAX), z);
    loom_model *m = model_or_report(g, 1, &x, 3, (loom_tensor *[]){b, c, sm});
    CHECK(m != NULL);
    if (!m) return;
    randomize_layers(m, 4, (const char *[]){"A", "B", "C", "Z"});
    loom_loss l[3] = {{.name = "cce"}, {.name = "mse"}, {.name = "cce"}};
    float w[3] = {0.6f, 0.9f, 0.8f};
    loom_compile_config cfg = {.n_losses = 3, .losses = l, .n_loss_weights = 3, .loss_weights = w,
                               .optimizer = loom_sgd(0.01f, 0, 0)};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    loom_array ya[3] = {{.name = "B", .data = seed_yc, .n = NS, .count = NS * 3}, {.name = "C", .data = seed_yd, .n = NS, .count = NS * 2}, {.name = "Sm", .data = seed_yc, .n = NS, .count = NS * 3}};
    loom_data d = {1, seed_xa, 3, ya, 0, NULL};
    fd_check(m, &d, NS, "forks", 2e-3);
    loom_model_free(m);
}

/* A shared softmax head called on two tensors gives two outputs, "E" and "E_1": one with a
 * crossentropy (fused with its call's softmax), one with an MSE on the probabilities. Both call
 * sites feed one kernel. */
static void test_fd_shared_head(void) {
    loom_graph *g = loom_graph_new(22);
    loom_tensor *x = loom_input(g, "in", 1, (int[]){4});
    loom_tensor *a = loom_call(loom_dense(g, "A", 5, LOOM_TANH, NULL), x);
    loom_tensor *a2 = loom_call(loom_dense(g, "A2", 5, LOOM_SIGMOID, NULL), x);
    loom_layer *E = loom_dense(g, "E", 3, LOOM_SOFTMAX, NULL);
    loom_tensor *e1 = loom_call(E, a), *e2 = loom_call(E, a2);
    loom_model *m = model_or_report(g, 1, &x, 2, (loom_tensor *[]){e1, e2});
    CHECK(m != NULL);
    if (!m) return;
    CHECK(strcmp(loom_model_output_name(m, 0), "E") == 0 && strcmp(loom_model_output_name(m, 1), "E_1") == 0);
    randomize_layers(m, 3, (const char *[]){"A", "A2", "E"});
    loom_loss l[2] = {{.name = "cce"}, {.name = "mse"}};
    float w[2] = {0.7f, 2.0f};
    loom_compile_config cfg = {.n_losses = 2, .losses = l, .n_loss_weights = 2, .loss_weights = w,
                               .optimizer = loom_sgd(0.01f, 0, 0)};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    static float ymse[NS * 3];
    fill(ymse, NS * 3, 0.0f, 1.0f);
    loom_array ya[2] = {{.name = "E", .data = seed_yc, .n = NS, .count = NS * 3}, {.name = "E_1", .data = ymse, .n = NS, .count = NS * 3}};
    loom_data d = {1, seed_xa, 2, ya, 0, NULL};
    fd_check(m, &d, NS, "shared head", 2e-3);
    /* the history keys use the output names */
    loom_history *h = NULL;
    CHECK_STATUS(loom_evaluate(m, &d, NS, 0, &h), LOOM_OK);
    CHECK(h && loom_history_num_keys(h) == 3 && strcmp(loom_history_key(h, 2), "E_1_loss") == 0);
    loom_history_free(h);
    loom_model_free(m);
}

/* ---------------------------------------------------------------- 3. shared layer */

static void test_shared_layer(void) {
    loom_model *ms = rich_model(4, true), *mu = rich_model(4, false);
    if (!ms || !mu) {
        loom_model_free(ms);
        loom_model_free(mu);
        return;
    }
    randomize_layers(ms, N_RICH_LAYERS, RICH_LAYERS);
    /* the unshared model gets the same weights, S's in both S and S2 */
    for (int l = 0; l < N_RICH_LAYERS; l++)
        for (int w = 0; w < 2; w++) {
            float *v = weights_of(ms, RICH_LAYERS[l], w);
            size_t n = loom_layer_weight_size(loom_model_find_layer(ms, RICH_LAYERS[l]), w);
            CHECK_STATUS(loom_set_weights(mu, RICH_LAYERS[l], w, v, n), LOOM_OK);
            if (strcmp(RICH_LAYERS[l], "S") == 0) CHECK_STATUS(loom_set_weights(mu, "S2", w, v, n), LOOM_OK);
            free(v);
        }
    /* identical forward */
    CHECK_CLOSE(evaluate_key(mu, &rich_data, NR, "H1_loss"), evaluate_key(ms, &rich_data, NR, "H1_loss"), 1e-7, 1e-6);
    size_t Ps = loom_param_count(ms), Pu = loom_param_count(mu);
    CHECK(Pu == Ps + 25);
    float *gs = calloc(Ps, sizeof *gs), *gu = calloc(Pu, sizeof *gu);
    /* without the regularisers (with them S2 would add its own penalty): loss gradients only */
    const char *heads[4] = {"H1", "H2", "H3", "H4"};
    CHECK_STATUS(loom_gradients(ms, &rich_data, 4, heads, gs, NULL), LOOM_OK);
    CHECK_STATUS(loom_gradients(mu, &rich_data, 4, heads, gu, NULL), LOOM_OK);
    for (int w = 0; w < 2; w++) {
        size_t n = w == 0 ? 20 : 5;
        const float *g = gs + loom_param_offset(ms, "S", w);
        const float *g1 = gu + loom_param_offset(mu, "S", w), *g2 = gu + loom_param_offset(mu, "S2", w);
        int bad = 0, both = 0;
        for (size_t j = 0; j < n; j++) {
            double e = (double)g1[j] + g2[j];
            both += g1[j] != 0 && g2[j] != 0;
            if (!(fabs(g[j] - e) <= 1e-6 + 1e-4 * fabs(e)) && bad++ < 3)
                fprintf(stderr, "  shared S weight %d [%zu]: %.8g, S + S2 %.8g\n", w, j, g[j], e);
        }
        CHECK(bad == 0);
        CHECK(both > 0); /* both call sites contribute */
    }
    /* every other layer's gradient is the same in both models */
    for (int l = 0; l < N_RICH_LAYERS; l++) {
        if (strcmp(RICH_LAYERS[l], "S") == 0) continue;
        for (int w = 0; w < 2; w++) {
            size_t n = loom_layer_weight_size(loom_model_find_layer(ms, RICH_LAYERS[l]), w);
            const float *a = gs + loom_param_offset(ms, RICH_LAYERS[l], w);
            const float *b = gu + loom_param_offset(mu, RICH_LAYERS[l], w);
            int bad = 0;
            for (size_t j = 0; j < n; j++) bad += !(fabs(a[j] - b[j]) <= 1e-6 + 1e-4 * fabs(b[j]));
            CHECK(bad == 0);
        }
    }
    free(gs);
    free(gu);
    loom_model_free(ms);
    loom_model_free(mu);
}

/* ---------------------------------------------------------------- 4. loss weights 0 / no loss */

typedef struct snapshot {
    float *w[4][2];
} snapshot;

static void snap(loom_model *m, snapshot *s) {
    for (int l = 0; l < 4; l++)
        for (int w = 0; w < 2; w++) s->w[l][w] = weights_of(m, SEED_LAYERS[l], w);
}

static void snap_free(snapshot *s) {
    for (int l = 0; l < 4; l++)
        for (int w = 0; w < 2; w++) free(s->w[l][w]);
}

/* Fits the seed model 4 epochs and checks which layers moved. frozen: index of the head that
 * must stay bit-identical. Returns the model for further comparison. */
static loom_model *fit_with_weights(float wc, float wd, loom_optimizer opt, int frozen, loom_history **hist) {
    loom_model *m = seed_model(5);
    if (!m) return NULL;
    CHECK_STATUS(seed_compile(m, wc, wd, opt, false), LOOM_OK);
    snapshot before;
    snap(m, &before);
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = 4;
    fo.epochs = 4;
    fo.seed = 3;
    CHECK_STATUS(loom_fit(m, &seed_data, &fo, hist), LOOM_OK);
    CHECK(loom_iterations(m) == 12);
    for (int l = 0; l < 4; l++) {
        bool eq = layer_weights_equal(m, SEED_LAYERS[l], before.w[l][0], before.w[l][1]);
        if (l == frozen) CHECK(eq);
        else CHECK(!eq);
    }
    snap_free(&before);
    return m;
}

static void test_zero_weights(void) {
    loom_optimizer opts[2] = {loom_adam(0.01f), loom_sgd(0.05f, 0.9f, 0)};
    for (int o = 0; o < 2; o++) {
        loom_history *h10 = NULL, *h01 = NULL;
        loom_model *m10 = fit_with_weights(1.0f, 0.0f, opts[o], 3, &h10);
        loom_model *m01 = fit_with_weights(0.0f, 1.0f, opts[o], 2, &h01);
        /* "no loss" on D: the same run as weight 0, bit for bit */
        loom_model *mn = seed_model(5);
        if (m10 && mn) {
            loom_loss cce = {.name = "cce"};
            loom_compile_config cfg = {.n_losses = 1, .losses = &cce, .loss_outputs = (const char *[]){"C"},
                                       .optimizer = opts[o]};
            CHECK_STATUS(loom_compile(mn, &cfg), LOOM_OK);
            CHECK(loom_get_loss_weight(mn, "D") == 1.0f); /* absent from loss_weights: 1 */
            float *dk = weights_of(mn, "D", 0), *db = weights_of(mn, "D", 1);
            /* the target of an output without a loss may be left out */
            loom_data d = {1, seed_xa, 1, seed_ya, 0, NULL};
            loom_fit_options fo = loom_fit_defaults();
            fo.batch_size = 4;
            fo.epochs = 4;
            fo.seed = 3;
            loom_history *hn = NULL;
            CHECK_STATUS(loom_fit(mn, &d, &fo, &hn), LOOM_OK);
            CHECK(layer_weights_equal(mn, "D", dk, db));
            CHECK(loom_param_count(mn) == loom_param_count(m10));
            CHECK(same_floats(loom_params(mn), loom_params(m10), loom_param_count(m10)));
            const float *ln = loom_history_values(hn, "loss"), *l10 = loom_history_values(h10, "loss");
            CHECK(ln && l10 && same_floats(ln, l10, 4));
            /* one output with a loss: no per-output loss keys */
            CHECK(loom_history_num_keys(hn) == 1);
            CHECK(loom_history_values(hn, "D_loss") == NULL);
            /* the (1, 0) run logs D's unweighted loss */
            CHECK(loom_history_values(h10, "D_loss") != NULL && loom_history_get(h10, "D_loss", -1) > 0);
            loom_history_free(hn);
            free(dk);
            free(db);
        }
        loom_history_free(h10);
        loom_history_free(h01);
        loom_model_free(m10);
        loom_model_free(m01);
        loom_model_free(mn);
    }
}

/* ---------------------------------------------------------------- 5. spec section 7 scalar test */

/* L1 = y^2 */
static int loss_square(const float *t, const float *p, size_t n_rows, int dim, float *values, float *grad, void *u) {
    (void)t, (void)u;
    for (size_t r = 0; r < n_rows; r++) {
        double v = 0;
        for (int j = 0; j < dim; j++) {
            v += (double)p[r * dim + j] * p[r * dim + j];
            if (grad) grad[r * dim + j] = 2.0f * p[r * dim + j];
        }
        values[r] = (float)v;
    }
    return 0;
}

/* L2 = 3y */
static int loss_triple(const float *t, const float *p, size_t n_rows, int dim, float *values, float *grad, void *u) {
    (void)t, (void)u;
    for (size_t r = 0; r < n_rows; r++) {
        double v = 0;
        for (int j = 0; j < dim; j++) {
            v += 3.0 * p[r * dim + j];
            if (grad) grad[r * dim + j] = 3.0f;
        }
        values[r] = (float)v;
    }
    return 0;
}

/* in(1) -> T Dense(1, linear, no bias, kernel 1) -> output 1; U on T -> output 2. U is an
 * Activation(linear), or a Dense(1, no bias, kernel 1) for the head-only parameter check. */
static loom_model *scalar_model(bool dense_head) {
    loom_graph *g = loom_graph_new(1);
    loom_dense_options nb = loom_dense_defaults();
    nb.use_bias = 0;
    nb.kernel_initializer = LOOM_INIT_ONES;
    loom_tensor *x = loom_input(g, "x", 1, (int[]){1});
    loom_tensor *t = loom_call(loom_dense(g, "T", 1, LOOM_LINEAR, &nb), x);
    loom_tensor *u = loom_call(dense_head ? loom_dense(g, "U", 1, LOOM_LINEAR, &nb)
                                          : loom_activation_layer(g, "U", LOOM_LINEAR),
                               t);
    loom_model *m = model_or_report(g, 1, &x, 2, (loom_tensor *[]){t, u});
    CHECK(m != NULL);
    if (!m) return NULL;
    float one = 1.0f;
    CHECK_STATUS(loom_set_weights(m, "T", 0, &one, 1), LOOM_OK);
    loom_loss losses[2] = {{.name = "square", .fn = loss_square}, {.name = "triple", .fn = loss_triple}};
    float w[2] = {1.0f, 0.2f};
    loom_compile_config cfg = {.n_losses = 2, .losses = losses, .n_loss_weights = 2, .loss_weights = w,
                               .optimizer = loom_sgd(0.1f, 0, 0)};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    return m;
}

static void test_scalar_spec7(void) {
    float x = 1.0f, t = 0.0f;
    loom_array xa = {.name = "x", .data = &x, .n = 1, .count = 1}, ya[2] = {{.name = "T", .data = &t, .n = 1, .count = 1}, {.name = "U", .data = &t, .n = 1, .count = 1}};
    loom_data d = {1, &xa, 2, ya, 0, NULL};
    for (int dense_head = 0; dense_head <= 1; dense_head++) {
        loom_model *m = scalar_model(dense_head);
        if (!m) continue;
        size_t P = loom_param_count(m);
        CHECK(P == (size_t)(1 + dense_head));
        float g[2] = {0}, losses[2];
        size_t kT = loom_param_offset(m, "T", 0);
        CHECK_STATUS(loom_gradients(m, &d, 0, NULL, g, losses), LOOM_OK);
        CHECK_CLOSE(g[kT], 2.6, 1e-6, 1e-6);
        CHECK(losses[0] == 1.0f && losses[1] == 3.0f);
        CHECK_CLOSE(evaluate_key(m, &d, 1, "loss"), 1.0 + 0.2 * 3.0, 1e-6, 1e-6);
        if (dense_head) {
            /* the head only output 2 reaches gets exactly w_2 * dL_2/du = 0.2 * 3 * 1 */
            size_t kU = loom_param_offset(m, "U", 0);
            CHECK(g[kU] == 0.2f * 3.0f);
            CHECK(loom_loss_reaches(m, "T", "U") == 0);
            CHECK(loom_loss_reaches(m, "U", "U") == 1 && loom_loss_reaches(m, "U", "T") == 1);
        }
        CHECK_STATUS(loom_set_loss_weight(m, "U", 0.0f), LOOM_OK);
        CHECK_STATUS(loom_gradients(m, &d, 0, NULL, g, losses), LOOM_OK);
        CHECK(g[kT] == 2.0f);
        if (dense_head) CHECK(g[loom_param_offset(m, "U", 0)] == 0.0f);
        CHECK(losses[1] == 3.0f); /* still evaluated */
        loom_model_free(m);
    }
}

/* ---------------------------------------------------------------- 6. spec 2.4 test vectors */

/* Two identity outputs: input "<name>_in" -> Activation(linear) "<name>"; outputs in the order
 * given. dim: per-sample size. */
static loom_model *identity_model(int dim, const char *first, const char *second) {
    loom_graph *g = loom_graph_new(1);
    char n1[32], n2[32];
    snprintf(n1, sizeof n1, "%s_in", first);
    snprintf(n2, sizeof n2, "%s_in", second);
    loom_tensor *x1 = loom_input(g, n1, 1, &dim), *x2 = loom_input(g, n2, 1, &dim);
    loom_tensor *o1 = loom_call(loom_activation_layer(g, first, LOOM_LINEAR), x1);
    loom_tensor *o2 = loom_call(loom_activation_layer(g, second, LOOM_LINEAR), x2);
    loom_model *m = model_or_report(g, 2, (loom_tensor *[]){x1, x2}, 2, (loom_tensor *[]){o1, o2});
    CHECK(m != NULL);
    return m;
}

static void test_spec_vectors(void) {
    const float t1[6] = {.1f, .2f, .3f, .4f, .5f, .6f}, p1[6] = {1.2f, 1.1f, 1.0f, .9f, .8f, .7f};
    const float t2[6] = {.7f, .8f, .9f, 1.0f, 1.1f, 1.2f}, p2[6] = {.6f, .5f, .4f, .3f, .2f, .1f};
    loom_array x[2] = {{.name = "a_in", .data = p1, .n = 3, .count = 3 * 2}, {.name = "b_in", .data = p2, .n = 3, .count = 3 * 2}};
    loom_array y[2] = {{.name = "a", .data = t1, .n = 3, .count = 3 * 2}, {.name = "b", .data = t2, .n = 3, .count = 3 * 2}};
    loom_model *m = identity_model(2, "a", "b");
    if (m) {
        loom_loss mse = {.name = "mse"};
        loom_compile_config cfg = {.n_losses = 1, .losses = &mse, .optimizer = loom_sgd(0.01f, 0, 0)};
        CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
        loom_data d = {2, x, 2, y, 0, NULL};
        loom_history *h = NULL;
        CHECK_STATUS(loom_evaluate(m, &d, 32, 0, &h), LOOM_OK);
        CHECK_CLOSE(loom_history_get(h, "loss", 0), 0.953333, 1e-5, 0);
        CHECK_CLOSE(loom_history_get(h, "a_loss", 0), 0.476667, 1e-5, 0);
        CHECK_CLOSE(loom_history_get(h, "b_loss", 0), 0.476667, 1e-5, 0);
        CHECK(loom_history_num_keys(h) == 3);
        loom_history_free(h);
        /* sample weights: the divisor stays 3 */
        const float swa[3] = {1, 2, 3}, swb[3] = {3, 2, 1};
        loom_array sw[2] = {{.name = "a", .data = swa, .n = 3, .count = 3}, {.name = "b", .data = swb, .n = 3, .count = 3}};
        loom_data dw = {2, x, 2, y, 2, sw};
        CHECK_CLOSE(evaluate_key(m, &dw, 32, "loss"), 1.266667, 1e-5, 0);
        /* batches of 1 and 2 give the same epoch mean (batch-size weighted) */
        CHECK_CLOSE(evaluate_key(m, &dw, 2, "loss"), 1.266667, 1e-5, 0);
        /* one unnamed sample-weight array applies to every output: a=[1,2,3] on both */
        loom_array sw1 = {.name = NULL, .data = swa, .n = 3, .count = 3};
        loom_data d1 = {2, x, 2, y, 1, &sw1};
        CHECK_CLOSE(evaluate_key(m, &d1, 32, "a_loss"), (1.01 + 0.74 + 0.15) / 3.0, 1e-5, 0);
        /* b's per-sample losses [0.05, 0.37, 1.01] weighted [1, 2, 3] */
        CHECK_CLOSE(evaluate_key(m, &d1, 32, "b_loss"), (0.05 + 0.74 + 3.03) / 3.0, 1e-5, 0);
        loom_model_free(m);
    }
    /* outputs ordered (b, a), losses in output order ["mse", "mae"], data by name */
    m = identity_model(2, "b", "a");
    if (m) {
        loom_loss l[2] = {{.name = "mse"}, {.name = "mae"}};
        loom_compile_config cfg = {.n_losses = 2, .losses = l, .optimizer = loom_sgd(0.01f, 0, 0)};
        CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
        loom_data d = {2, x, 2, y, 0, NULL};
        loom_history *h = NULL;
        CHECK_STATUS(loom_evaluate(m, &d, 32, 0, &h), LOOM_OK);
        CHECK_CLOSE(loom_history_get(h, "loss", 0), 1.076667, 1e-5, 0);
        CHECK_CLOSE(loom_history_get(h, "a_loss", 0), 0.6, 1e-5, 0);
        CHECK_CLOSE(loom_history_get(h, "b_loss", 0), 0.476667, 1e-5, 0);
        /* key order: loss, then per-output losses in output order */
        CHECK(loom_history_num_keys(h) == 3 && strcmp(loom_history_key(h, 1), "b_loss") == 0 &&
              strcmp(loom_history_key(h, 2), "a_loss") == 0);
        loom_history_free(h);
        loom_model_free(m);
    }
    /* t=[1,2], p=[3,4], weights a=1, b=0: total 4, both per-output losses 4 */
    m = identity_model(1, "a", "b");
    if (m) {
        loom_loss mse = {.name = "mse"};
        float w[2] = {1, 0};
        loom_compile_config cfg = {.n_losses = 1, .losses = &mse, .n_loss_weights = 2, .loss_weights = w,
                                   .optimizer = loom_sgd(0.01f, 0, 0)};
        CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
        const float t[2] = {1, 2}, p[2] = {3, 4};
        loom_array xx[2] = {{.name = "a_in", .data = p, .n = 2, .count = 2}, {.name = "b_in", .data = p, .n = 2, .count = 2}}, yy[2] = {{.name = "a", .data = t, .n = 2, .count = 2}, {.name = "b", .data = t, .n = 2, .count = 2}};
        loom_data d = {2, xx, 2, yy, 0, NULL};
        loom_history *h = NULL;
        CHECK_STATUS(loom_evaluate(m, &d, 32, 0, &h), LOOM_OK);
        CHECK(loom_history_get(h, "loss", 0) == 4.0f);
        CHECK(loom_history_get(h, "a_loss", 0) == 4.0f);
        CHECK(loom_history_get(h, "b_loss", 0) == 4.0f);
        loom_history_free(h);
        loom_model_free(m);
    }
}

/* ---------------------------------------------------------------- 7. errors */

static void expect_compile_error(loom_model *m, const loom_compile_config *cfg, loom_status want,
                                 const char *name1, const char *name2, int line) {
    loom_status s = loom_compile(m, cfg);
    const char *msg = loom_model_error(m);
    bool ok = s == want && msg[0] && has(msg, name1) && (!name2 || has(msg, name2));
    if (!ok)
        fprintf(stderr, "test_model.c:%d: compile returned %s (want %s), message \"%s\" should name %s%s%s\n", line,
                loom_status_name(s), loom_status_name(want), msg, name1, name2 ? " and " : "", name2 ? name2 : "");
    CHECK(ok);
    CHECK(loom_model_status(m) == want);
}

static void expect_data_error(loom_status s, loom_model *m, loom_status want, const char *name, int line) {
    const char *msg = loom_model_error(m);
    bool ok = s == want && msg[0] && (!name || has(msg, name));
    if (!ok)
        fprintf(stderr, "test_model.c:%d: returned %s (want %s), message \"%s\" should name %s\n", line,
                loom_status_name(s), loom_status_name(want), msg, name ? name : "-");
    CHECK(ok);
}

static void expect_graph_error(loom_graph *g, loom_status want, const char *name, int line) {
    const char *msg = loom_graph_error(g);
    bool ok = loom_graph_status(g) == want && msg[0] && has(msg, name);
    if (!ok)
        fprintf(stderr, "test_model.c:%d: graph status %s (want %s), message \"%s\" should name %s\n", line,
                loom_status_name(loom_graph_status(g)), loom_status_name(want), msg, name);
    CHECK(ok);
}

static void test_compile_errors(void) {
    loom_model *m = seed_model(6);
    if (!m) return;
    /* predict needs no compile */
    float pc[NS * 3], pd[NS * 2];
    CHECK_STATUS(loom_predict(m, 1, seed_xa, 4, (float *[]){pc, pd}), LOOM_OK);
    loom_loss l3[3] = {{.name = "cce"}, {.name = "mse"}, {.name = "mse"}};
    loom_compile_config c = {.n_losses = 3, .losses = l3, .optimizer = loom_adam(0.001f)};
    /* fit before compile */
    loom_fit_options fo = loom_fit_defaults();
    expect_data_error(loom_fit(m, &seed_data, &fo, NULL), m, LOOM_ERR_STATE, "compile", __LINE__);
    expect_data_error(loom_evaluate(m, &seed_data, 4, 0, NULL), m, LOOM_ERR_STATE, "compile", __LINE__);
    CHECK(isnan(loom_get_learning_rate(m)));

    expect_compile_error(m, &c, LOOM_ERR_COUNT, "C", "D", __LINE__); /* 3 losses, 2 outputs */
    CHECK(has(loom_model_error(m), "3") && has(loom_model_error(m), "2"));
    c.n_losses = 2;
    c.loss_outputs = (const char *[]){"C", "Xout"};
    expect_compile_error(m, &c, LOOM_ERR_NAME, "Xout", "D", __LINE__); /* unknown name, lists valid ones */
    c.loss_outputs = (const char *[]){"C", "C"};
    expect_compile_error(m, &c, LOOM_ERR_NAME, "C", NULL, __LINE__); /* duplicate */
    c.loss_outputs = NULL;
    loom_loss bad[2] = {{.name = "cce"}, {.name = "msee"}};
    c.losses = bad;
    expect_compile_error(m, &c, LOOM_ERR_NAME, "msee", "D", __LINE__); /* unknown loss, names the output */
    c.losses = l3;
    c.n_loss_weights = 3;
    c.loss_weights = (const float[]){1, 1, 1};
    expect_compile_error(m, &c, LOOM_ERR_COUNT, "C", "D", __LINE__);
    c.n_loss_weights = 2;
    c.loss_weights = (const float[]){1, NAN};
    expect_compile_error(m, &c, LOOM_ERR_ARGUMENT, "D", NULL, __LINE__);
    c.loss_weights = (const float[]){INFINITY, 1};
    expect_compile_error(m, &c, LOOM_ERR_ARGUMENT, "C", NULL, __LINE__);
    c.loss_weight_outputs = (const char *[]){"C", "Yout"};
    c.loss_weights = (const float[]){1, 1};
    expect_compile_error(m, &c, LOOM_ERR_NAME, "Yout", NULL, __LINE__);
    c.loss_weight_outputs = NULL;
    c.n_loss_weights = 0;
    c.loss_weights = NULL;
    c.n_metrics = 1;
    c.metrics = (const loom_metric_spec[]){{NULL, "mae"}};
    expect_compile_error(m, &c, LOOM_ERR_NAME, "mae", NULL, __LINE__); /* which output? */
    c.metrics = (const loom_metric_spec[]){{"C", "accurasy"}};
    expect_compile_error(m, &c, LOOM_ERR_NAME, "accurasy", NULL, __LINE__);
    c.metrics = (const loom_metric_spec[]){{"Zout", "mae"}};
    expect_compile_error(m, &c, LOOM_ERR_NAME, "Zout", NULL, __LINE__);
    c.n_metrics = 0;
    /* a failed compile leaves the model uncompiled */
    expect_data_error(loom_fit(m, &seed_data, &fo, NULL), m, LOOM_ERR_STATE, NULL, __LINE__);
    /* a model without any loss cannot train */
    loom_loss none[2] = {{0}, {0}};
    c.losses = none;
    CHECK_STATUS(loom_compile(m, &c), LOOM_OK);
    expect_data_error(loom_fit(m, &seed_data, &fo, NULL), m, LOOM_ERR_STATE, "loss", __LINE__);
    /* accepted forms: weights by name (an absent output weighs 1), one loss broadcast with a
     * list of weights, one unnamed weight with two losses is refused */
    loom_loss two[2] = {{.name = "cce"}, {.name = "mse"}};
    loom_compile_config ok = {.n_losses = 2, .losses = two, .n_loss_weights = 1,
                              .loss_weight_outputs = (const char *[]){"D"}, .loss_weights = (const float[]){0.3f},
                              .optimizer = loom_adam(0.001f)};
    CHECK_STATUS(loom_compile(m, &ok), LOOM_OK);
    CHECK(loom_get_loss_weight(m, "C") == 1.0f && loom_get_loss_weight(m, "D") == 0.3f);
    ok = (loom_compile_config){.n_losses = 1, .losses = two, .n_loss_weights = 2,
                               .loss_weights = (const float[]){0.5f, 0.25f}, .optimizer = loom_adam(0.001f)};
    CHECK_STATUS(loom_compile(m, &ok), LOOM_OK);
    CHECK(loom_get_loss_weight(m, "C") == 0.5f && loom_get_loss_weight(m, "D") == 0.25f);
    ok.n_losses = 2;
    ok.n_loss_weights = 1;
    expect_compile_error(m, &ok, LOOM_ERR_COUNT, "C", "D", __LINE__);
    /* set_loss_weight errors */
    CHECK_STATUS(loom_set_loss_weight(m, "Q", 1.0f), LOOM_ERR_NAME);
    CHECK(has(loom_model_error(m), "Q"));
    CHECK_STATUS(loom_set_loss_weight(m, "C", NAN), LOOM_ERR_ARGUMENT);
    CHECK(has(loom_model_error(m), "C"));
    loom_model_free(m);

    /* CCE (and sparse CCE) on a 1-unit output */
    loom_graph *g = loom_graph_new(1);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){3});
    loom_tensor *o = loom_call(loom_dense(g, "single", 1, LOOM_SIGMOID, NULL), x);
    m = model_or_report(g, 1, &x, 1, &o);
    CHECK(m != NULL);
    if (m) {
        loom_loss cce = {.name = "categorical_crossentropy"};
        loom_compile_config c1 = {.n_losses = 1, .losses = &cce, .optimizer = loom_adam(0.001f)};
        expect_compile_error(m, &c1, LOOM_ERR_SHAPE, "single", NULL, __LINE__);
        cce.name = "sparse_categorical_crossentropy";
        expect_compile_error(m, &c1, LOOM_ERR_SHAPE, "single", NULL, __LINE__);
        /* a single output takes a metric without output name, logged without prefix */
        cce.name = "bce";
        c1.n_metrics = 1;
        c1.metrics = (const loom_metric_spec[]){{NULL, "accuracy"}};
        CHECK_STATUS(loom_compile(m, &c1), LOOM_OK);
        loom_model_free(m);
    }
}

static void test_data_errors(void) {
    loom_model *m = seed_model(7);
    if (!m) return;
    CHECK_STATUS(seed_compile(m, 0.5f, 0.3f, loom_sgd(0.01f, 0, 0), false), LOOM_OK);
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = 4;
    loom_history *h = NULL;

    /* missing target for an output with a loss */
    loom_data d = {1, seed_xa, 1, seed_ya, 0, NULL};
    expect_data_error(loom_fit(m, &d, &fo, &h), m, LOOM_ERR_DATA, "D", __LINE__);
    loom_history_free(h);
    expect_data_error(loom_evaluate(m, &d, 4, 0, NULL), m, LOOM_ERR_DATA, "D", __LINE__);
    /* mismatched sample counts */
    loom_array ys[2] = {{.name = "C", .data = seed_yc, .n = NS, .count = NS * 3}, {.name = "D", .data = seed_yd, .n = NS - 1, .count = (NS - 1) * 2}};
    d = (loom_data){1, seed_xa, 2, ys, 0, NULL};
    expect_data_error(loom_fit(m, &d, &fo, NULL), m, LOOM_ERR_DATA, "D", __LINE__);
    /* no samples */
    loom_array x0 = {.name = "in", .data = seed_x, .n = 0, .count = 0 * 4};
    d = (loom_data){1, &x0, 2, seed_ya, 0, NULL};
    expect_data_error(loom_fit(m, &d, &fo, NULL), m, LOOM_ERR_DATA, "in", __LINE__);
    /* unknown input name */
    loom_array xu = {.name = "inp", .data = seed_x, .n = NS, .count = NS * 4};
    d = (loom_data){1, &xu, 2, seed_ya, 0, NULL};
    expect_data_error(loom_fit(m, &d, &fo, NULL), m, LOOM_ERR_NAME, "inp", __LINE__);
    /* unknown target name */
    loom_array yu[2] = {{.name = "C", .data = seed_yc, .n = NS, .count = NS * 3}, {.name = "Dx", .data = seed_yd, .n = NS, .count = NS * 2}};
    d = (loom_data){1, seed_xa, 2, yu, 0, NULL};
    expect_data_error(loom_fit(m, &d, &fo, NULL), m, LOOM_ERR_NAME, "Dx", __LINE__);
    /* NULL data pointers */
    loom_array xn = {.name = "in", .data = NULL, .n = NS, .count = NS * 4};
    d = (loom_data){1, &xn, 2, seed_ya, 0, NULL};
    expect_data_error(loom_fit(m, &d, &fo, NULL), m, LOOM_ERR_DATA, "in", __LINE__);
    loom_array yn[2] = {{.name = "C", .data = seed_yc, .n = NS, .count = NS * 3}, {.name = "D", .data = NULL, .n = NS, .count = NS * 4}};
    d = (loom_data){1, seed_xa, 2, yn, 0, NULL};
    expect_data_error(loom_fit(m, &d, &fo, NULL), m, LOOM_ERR_DATA, "D", __LINE__);
    expect_data_error(loom_fit(m, NULL, &fo, NULL), m, LOOM_ERR_ARGUMENT, NULL, __LINE__);
    /* wrong number of input arrays */
    d = (loom_data){0, NULL, 2, seed_ya, 0, NULL};
    expect_data_error(loom_fit(m, &d, &fo, NULL), m, LOOM_ERR_COUNT, NULL, __LINE__);
    /* sample weights naming no output, and with a wrong count */
    loom_array swu = {.name = "Cx", .data = seed_x, .n = NS, .count = NS * 4};
    d = (loom_data){1, seed_xa, 2, seed_ya, 1, &swu};
    expect_data_error(loom_fit(m, &d, &fo, NULL), m, LOOM_ERR_NAME, "Cx", __LINE__);
    loom_array swn = {.name = "C", .data = seed_x, .n = NS - 2, .count = (NS - 2) * 4};
    d = (loom_data){1, seed_xa, 2, seed_ya, 1, &swn};
    expect_data_error(loom_fit(m, &d, &fo, NULL), m, LOOM_ERR_DATA, "C", __LINE__);
    /* bad fit options */
    fo.batch_size = 0;
    expect_data_error(loom_fit(m, &seed_data, &fo, NULL), m, LOOM_ERR_ARGUMENT, "batch_size", __LINE__);
    fo.batch_size = 4;
    fo.validation_split = 1.0f;
    expect_data_error(loom_fit(m, &seed_data, &fo, NULL), m, LOOM_ERR_ARGUMENT, "validation_split", __LINE__);
    fo.validation_split = -0.1f;
    expect_data_error(loom_fit(m, &seed_data, &fo, NULL), m, LOOM_ERR_ARGUMENT, "validation_split", __LINE__);
    fo.validation_split = NAN;
    expect_data_error(loom_fit(m, &seed_data, &fo, NULL), m, LOOM_ERR_ARGUMENT, "validation_split", __LINE__);
    fo.validation_split = 0.01f; /* ceil(10 * 0.99) = 10: nothing left to validate on */
    expect_data_error(loom_fit(m, &seed_data, &fo, NULL), m, LOOM_ERR_DATA, "validation_split", __LINE__);
    fo.validation_split = 0;
    fo.epochs = -1;
    expect_data_error(loom_fit(m, &seed_data, &fo, NULL), m, LOOM_ERR_ARGUMENT, "epochs", __LINE__);
    fo.epochs = 1;
    /* validation data with its own errors */
    loom_data vd = {1, seed_xa, 1, seed_ya, 0, NULL};
    fo.validation_data = &vd;
    expect_data_error(loom_fit(m, &seed_data, &fo, NULL), m, LOOM_ERR_DATA, "D", __LINE__);
    fo.validation_data = NULL;
    /* predict: bad output list, unknown input */
    float out[NS * 3];
    expect_data_error(loom_predict(m, 1, &xu, 4, (float *[]){out, NULL}), m, LOOM_ERR_NAME, "inp", __LINE__);
    expect_data_error(loom_predict(m, 1, seed_xa, 4, NULL), m, LOOM_ERR_ARGUMENT, NULL, __LINE__);
    /* a model that still works after all of that */
    CHECK_STATUS(loom_fit(m, &seed_data, &fo, NULL), LOOM_OK);
    /* get/set weights errors */
    float w[32];
    CHECK_STATUS(loom_get_weights(m, "nope", 0, w, 32), LOOM_ERR_NAME);
    CHECK(has(loom_model_error(m), "nope"));
    CHECK_STATUS(loom_get_weights(m, "A", 2, w, 32), LOOM_ERR_ARGUMENT);
    CHECK_STATUS(loom_get_weights(m, "A", 0, w, 31), LOOM_ERR_SHAPE);
    CHECK(has(loom_model_error(m), "A"));
    loom_model_free(m);
}

static void test_graph_errors(void) {
    /* an Input that reaches no output */
    loom_graph *g = loom_graph_new(1);
    loom_tensor *a = loom_input(g, "a_used", 1, (int[]){3});
    loom_tensor *b = loom_input(g, "b_unused", 1, (int[]){3});
    loom_tensor *o = loom_call(loom_dense(g, "out", 2, LOOM_LINEAR, NULL), a);
    CHECK(loom_model_new(g, 2, (loom_tensor *[]){a, b}, 1, &o) == NULL);
    expect_graph_error(g, LOOM_ERR_GRAPH, "b_unused", __LINE__);
    loom_graph_free(g); /* a failed model_new leaves the graph to the caller */

    /* an output that depends on an Input not given */
    g = loom_graph_new(1);
    a = loom_input(g, "a_given", 1, (int[]){3});
    b = loom_input(g, "b_missing", 1, (int[]){3});
    o = loom_call_n(loom_add(g, "sum"), 2, (loom_tensor *[]){a, b});
    CHECK(loom_model_new(g, 1, &a, 1, &o) == NULL);
    expect_graph_error(g, LOOM_ERR_GRAPH, "b_missing", __LINE__);
    loom_graph_free(g);

    /* one tensor listed twice as an output */
    g = loom_graph_new(1);
    a = loom_input(g, "x", 1, (int[]){3});
    o = loom_call(loom_dense(g, "twice_out", 2, LOOM_SOFTMAX, NULL), a);
    CHECK(loom_model_new(g, 1, &a, 2, (loom_tensor *[]){o, o}) == NULL);
    expect_graph_error(g, LOOM_ERR_GRAPH, "twice_out", __LINE__);
    loom_graph_free(g);

    /* a shared Dense called on a different shape */
    g = loom_graph_new(1);
    a = loom_input(g, "a4", 1, (int[]){4});
    b = loom_input(g, "b5", 1, (int[]){5});
    loom_layer *S = loom_dense(g, "shared_dense", 3, LOOM_TANH, NULL);
    CHECK(loom_call(S, a) != NULL);
    CHECK(loom_call(S, b) == NULL);
    expect_graph_error(g, LOOM_ERR_SHAPE, "shared_dense", __LINE__);
    loom_graph_free(g);

    /* Add on mismatched shapes */
    g = loom_graph_new(1);
    a = loom_input(g, "a4", 1, (int[]){4});
    b = loom_input(g, "b5", 1, (int[]){5});
    CHECK(loom_call_n(loom_add(g, "adder"), 2, (loom_tensor *[]){a, b}) == NULL);
    expect_graph_error(g, LOOM_ERR_SHAPE, "adder", __LINE__);
    loom_graph_free(g);

    /* Subtract takes exactly two */
    g = loom_graph_new(1);
    a = loom_input(g, "a4", 1, (int[]){4});
    CHECK(loom_call_n(loom_subtract(g, "minus"), 3, (loom_tensor *[]){a, a, a}) == NULL);
    expect_graph_error(g, LOOM_ERR_COUNT, "minus", __LINE__);
    loom_graph_free(g);

    /* duplicate layer names, then the error is sticky */
    g = loom_graph_new(1);
    a = loom_input(g, "x", 1, (int[]){4});
    CHECK(loom_dense(g, "twice", 2, LOOM_LINEAR, NULL) != NULL);
    CHECK(loom_dense(g, "twice", 2, LOOM_LINEAR, NULL) == NULL);
    expect_graph_error(g, LOOM_ERR_NAME, "twice", __LINE__);
    char first[600];
    snprintf(first, sizeof first, "%s", loom_graph_error(g));
    CHECK(loom_dense(g, "fresh", 2, LOOM_LINEAR, NULL) == NULL);
    CHECK(loom_input(g, "y", 1, (int[]){2}) == NULL);
    CHECK(loom_add(g, NULL) == NULL);
    CHECK(loom_call(NULL, a) == NULL);
    CHECK(loom_model_new(g, 1, &a, 1, &a) == NULL);
    CHECK(loom_graph_status(g) == LOOM_ERR_NAME);
    CHECK(strcmp(loom_graph_error(g), first) == 0);
    loom_graph_free(g);

    /* a bad argument: the first error is kept, later ones are not reported over it */
    g = loom_graph_new(1);
    a = loom_input(g, "x", 1, (int[]){4});
    CHECK(loom_dense(g, "zero_units", 0, LOOM_LINEAR, NULL) == NULL);
    expect_graph_error(g, LOOM_ERR_ARGUMENT, "zero_units", __LINE__);
    CHECK(loom_call(loom_dense(g, "later", 2, LOOM_LINEAR, NULL), a) == NULL);
    CHECK(has(loom_graph_error(g), "zero_units") && !has(loom_graph_error(g), "later"));
    loom_graph_free(g);

    /* Input with a bad shape, Reshape to a wrong element count, Concatenate on axis 0 */
    g = loom_graph_new(1);
    CHECK(loom_input(g, "bad_input", 1, (int[]){0}) == NULL);
    expect_graph_error(g, LOOM_ERR_SHAPE, "bad_input", __LINE__);
    loom_graph_free(g);
    g = loom_graph_new(1);
    a = loom_input(g, "x", 1, (int[]){6});
    CHECK(loom_call(loom_reshape(g, "reshaper", 2, (int[]){4, 2}), a) == NULL);
    expect_graph_error(g, LOOM_ERR_SHAPE, "reshaper", __LINE__);
    loom_graph_free(g);

    /* model outputs named after their layers, inputs by position */
    g = loom_graph_new(1);
    a = loom_input(g, NULL, 1, (int[]){4});
    o = loom_call(loom_dense(g, NULL, 2, LOOM_LINEAR, NULL), a);
    loom_tensor *o2 = loom_call(loom_dense(g, NULL, 2, LOOM_LINEAR, NULL), a);
    loom_model *m = model_or_report(g, 1, &a, 2, (loom_tensor *[]){o, o2});
    CHECK(m != NULL);
    if (m) {
        CHECK(strcmp(loom_model_output_name(m, 0), "dense") == 0);
        CHECK(strcmp(loom_model_output_name(m, 1), "dense_1") == 0);
        CHECK(strcmp(loom_model_input_name(m, 0), "input_layer") == 0);
        CHECK(loom_model_output_index(m, "dense_2") == -1);
        CHECK(loom_model_status(m) == LOOM_ERR_NAME && has(loom_model_error(m), "dense_2"));
        loom_model_free(m);
    }
}

/* ---------------------------------------------------------------- 8. logs */

static bool keys_are(const loom_history *h, int n, const char *const *want) {
    if (!h || loom_history_num_keys(h) != n) return false;
    for (int i = 0; i < n; i++)
        if (strcmp(loom_history_key(h, i), want[i]) != 0) return false;
    return true;
}

static void test_log_keys(void) {
    loom_model *m = seed_model(8);
    if (!m) return;
    CHECK_STATUS(seed_compile(m, 0.5f, 0.3f, loom_sgd(0.0f, 0, 0), true), LOOM_OK);
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = 4;
    loom_history *h = NULL;
    CHECK_STATUS(loom_fit(m, &seed_data, &fo, &h), LOOM_OK);
    CHECK(keys_are(h, 4, (const char *[]){"loss", "C_accuracy", "C_loss", "D_loss"}));
    CHECK(loom_history_epochs(h) == 1);
    /* lr 0: the weights never change, so the batch-size-weighted epoch means (10 samples in
     * batches 4, 4, 2) must equal evaluate's over the same data */
    loom_history *e = NULL;
    CHECK_STATUS(loom_evaluate(m, &seed_data, NS, 0, &e), LOOM_OK);
    CHECK(keys_are(e, 4, (const char *[]){"loss", "C_accuracy", "C_loss", "D_loss"}));
    for (int i = 0; i < 4; i++) {
        const char *k = loom_history_key(e, i);
        CHECK_CLOSE(loom_history_get(h, k, 0), loom_history_get(e, k, 0), 1e-6, 1e-5);
    }
    /* the total is w_C L_C + w_D L_D */
    CHECK_CLOSE(loom_history_get(e, "loss", 0), 0.5 * loom_history_get(e, "C_loss", 0) + 0.3 * loom_history_get(e, "D_loss", 0),
                1e-6, 1e-5);
    loom_history_free(h);
    loom_history_free(e);

    /* validation: val_ keys after the train keys */
    fo.validation_split = 0.25f; /* ceil(10 * 0.75) = 8 train, the last 2 validate */
    fo.epochs = 2;
    CHECK_STATUS(loom_fit(m, &seed_data, &fo, &h), LOOM_OK);
    CHECK(keys_are(h, 8, (const char *[]){"loss", "C_accuracy", "C_loss", "D_loss", "val_loss", "val_C_accuracy",
                                          "val_C_loss", "val_D_loss"}));
    CHECK(loom_history_epochs(h) == 2);
    data_view first8, last2;
    seed_slice(&first8, 0, 8);
    seed_slice(&last2, 8, 2);
    CHECK_CLOSE(loom_history_get(h, "loss", -1), evaluate_key(m, &first8.d, 8, "loss"), 1e-6, 1e-5);
    CHECK_CLOSE(loom_history_get(h, "val_loss", -1), evaluate_key(m, &last2.d, 2, "loss"), 1e-6, 1e-5);
    CHECK_CLOSE(loom_history_get(h, "val_D_loss", -1), evaluate_key(m, &last2.d, 2, "D_loss"), 1e-6, 1e-5);
    CHECK(isnan(loom_history_get(h, "nope", 0)) && loom_history_values(h, "nope") == NULL);
    loom_history_free(h);
    loom_model_free(m);

    /* with training: epoch values are means of per-batch values computed before each update.
     * A twin model stepped by train_on_batch on the same batches gives those values. */
    loom_model *ma = seed_model(9), *mb = seed_model(9);
    if (ma && mb) {
        CHECK_STATUS(seed_compile(ma, 0.5f, 0.3f, loom_sgd(0.1f, 0, 0), true), LOOM_OK);
        CHECK_STATUS(seed_compile(mb, 0.5f, 0.3f, loom_sgd(0.1f, 0, 0), true), LOOM_OK);
        loom_fit_options f1 = loom_fit_defaults();
        f1.batch_size = 4;
        f1.shuffle = 0;
        loom_data vd = seed_data;
        f1.validation_data = &vd;
        CHECK_STATUS(loom_fit(ma, &seed_data, &f1, &h), LOOM_OK);
        double sums[4] = {0};
        const size_t starts[3] = {0, 4, 8}, sizes[3] = {4, 4, 2};
        for (int b = 0; b < 3; b++) {
            data_view v;
            seed_slice(&v, starts[b], sizes[b]);
            float logs[8];
            int n = 0;
            CHECK_STATUS(loom_train_on_batch(mb, &v.d, logs, 8, &n), LOOM_OK);
            CHECK(n == 4);
            for (int i = 0; i < 4; i++) sums[i] += logs[i] * (double)sizes[b];
        }
        const char *keys[4] = {"loss", "C_accuracy", "C_loss", "D_loss"};
        /* accuracy is a running count, not a mean of batch means, but with batch weights the
         * two agree */
        for (int i = 0; i < 4; i++) CHECK_CLOSE(loom_history_get(h, keys[i], 0), sums[i] / NS, 1e-6, 1e-5);
        CHECK(same_floats(loom_params(ma), loom_params(mb), loom_param_count(ma)));
        /* val_ values come from the weights after the epoch */
        CHECK_CLOSE(loom_history_get(h, "val_loss", 0), evaluate_key(ma, &seed_data, NS, "loss"), 1e-6, 1e-5);
        CHECK_CLOSE(loom_history_get(h, "val_C_accuracy", 0), evaluate_key(ma, &seed_data, 3, "C_accuracy"), 1e-6, 1e-5);
        loom_history_free(h);
    }
    loom_model_free(ma);
    loom_model_free(mb);

    /* one output: no "<out>_loss" key; its metrics carry no prefix */
    loom_graph *g = loom_graph_new(1);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){4});
    loom_tensor *o = loom_call(loom_dense(g, "O", 2, LOOM_LINEAR, NULL), x);
    m = model_or_report(g, 1, &x, 1, &o);
    if (m) {
        loom_loss mse = {.name = "mse"};
        loom_compile_config c = {.n_losses = 1, .losses = &mse, .n_metrics = 1,
                                 .metrics = (const loom_metric_spec[]){{NULL, "mae"}}, .optimizer = loom_sgd(0.01f, 0, 0)};
        CHECK_STATUS(loom_compile(m, &c), LOOM_OK);
        loom_array xa = {.name = "x", .data = seed_x, .n = NS, .count = NS * 4}, ya = {.name = "O", .data = seed_yd, .n = NS, .count = NS * 2};
        loom_data d = {1, &xa, 1, &ya, 0, NULL};
        loom_fit_options f = loom_fit_defaults();
        f.batch_size = 4;
        f.validation_split = 0.3f; /* ceil(7) = 7 train samples */
        CHECK_STATUS(loom_fit(m, &d, &f, &h), LOOM_OK);
        CHECK(keys_are(h, 4, (const char *[]){"loss", "mae", "val_loss", "val_mae"}));
        loom_array xv = {.name = "x", .data = seed_x + 7 * 4, .n = 3, .count = 3 * 4}, yv = {.name = "O", .data = seed_yd + 7 * 2, .n = 3, .count = 3 * 2};
        loom_data dv = {1, &xv, 1, &yv, 0, NULL};
        CHECK_CLOSE(loom_history_get(h, "val_loss", 0), evaluate_key(m, &dv, 3, "loss"), 1e-6, 1e-5);
        loom_history_free(h);
        loom_model_free(m);
    }
}

/* ---------------------------------------------------------------- 9. determinism */

static loom_model *dropout_model(void) {
    loom_graph *g = loom_graph_new(42);
    loom_tensor *x = loom_input(g, "in", 1, (int[]){4});
    loom_tensor *a = loom_call(loom_dense(g, "A", 8, LOOM_TANH, NULL), x);
    loom_tensor *dr = loom_call(loom_dropout(g, "drop", 0.5f), a);
    loom_tensor *c = loom_call(loom_dense(g, "C", 3, LOOM_SOFTMAX, NULL), dr);
    loom_tensor *d = loom_call(loom_dense(g, "D", 2, LOOM_LINEAR, NULL), dr);
    loom_model *m = model_or_report(g, 1, &x, 2, (loom_tensor *[]){c, d});
    CHECK(m != NULL);
    if (m) CHECK_STATUS(seed_compile(m, 0.5f, 0.3f, loom_adam(0.01f), true), LOOM_OK);
    return m;
}

static void test_determinism(void) {
    loom_model *m[3] = {dropout_model(), dropout_model(), dropout_model()};
    loom_history *h[3] = {NULL, NULL, NULL};
    if (m[0] && m[1] && m[2]) {
        CHECK(same_floats(loom_params(m[0]), loom_params(m[1]), loom_param_count(m[0])));
        for (int i = 0; i < 3; i++) {
            loom_fit_options fo = loom_fit_defaults();
            fo.batch_size = 3;
            fo.epochs = 3;
            fo.seed = i == 2 ? 1235 : 1234;
            CHECK_STATUS(loom_fit(m[i], &seed_data, &fo, &h[i]), LOOM_OK);
        }
        CHECK(same_floats(loom_params(m[0]), loom_params(m[1]), loom_param_count(m[0])));
        CHECK(!same_floats(loom_params(m[0]), loom_params(m[2]), loom_param_count(m[0])));
        CHECK(loom_history_num_keys(h[0]) == loom_history_num_keys(h[1]));
        for (int k = 0; k < loom_history_num_keys(h[0]); k++) {
            const char *key = loom_history_key(h[0], k);
            const float *a = loom_history_values(h[0], key), *b = loom_history_values(h[1], key);
            CHECK(a && b && same_floats(a, b, 3));
        }
        /* dropout is on in training only: predict is deterministic and evaluate equals it */
        float p1[NS * 3], p2[NS * 3];
        CHECK_STATUS(loom_predict(m[0], 1, seed_xa, 4, (float *[]){p1, NULL}), LOOM_OK);
        CHECK_STATUS(loom_predict(m[0], 1, seed_xa, 4, (float *[]){p2, NULL}), LOOM_OK);
        CHECK(same_floats(p1, p2, NS * 3));
        /* and it is on in training: with lr 0 a training step's loss differs from evaluate's */
        CHECK_STATUS(seed_compile(m[0], 0.5f, 0.3f, loom_sgd(0.0f, 0, 0), false), LOOM_OK);
        float logs[4];
        int n = 0;
        CHECK_STATUS(loom_train_on_batch(m[0], &seed_data, logs, 4, &n), LOOM_OK);
        CHECK(n == 3 && logs[0] != evaluate_key(m[0], &seed_data, NS, "loss"));
    }
    for (int i = 0; i < 3; i++) {
        loom_history_free(h[i]);
        loom_model_free(m[i]);
    }
}

/* ---------------------------------------------------------------- 10. callbacks */

typedef struct nan_loss_state {
    int calls;
    int nan_at;
} nan_loss_state;

/* MSE that turns NaN on its nan_at-th call. */
static int loss_nan_on_call(const float *t, const float *p, size_t n_rows, int dim, float *values, float *grad, void *u) {
    nan_loss_state *st = u;
    st->calls++;
    for (size_t r = 0; r < n_rows; r++) {
        double v = 0;
        for (int j = 0; j < dim; j++) {
            double e = (double)p[r * dim + j] - t[r * dim + j];
            v += e * e / dim;
            if (grad) grad[r * dim + j] = (float)(2.0 * e / dim);
        }
        values[r] = st->calls == st->nan_at ? NAN : (float)v;
    }
    return 0;
}

static loom_model *nan_model(nan_loss_state *st) {
    loom_model *m = seed_model(10);
    if (!m) return NULL;
    loom_loss l[2] = {{.name = "cce"}, {.name = "nanny", .fn = loss_nan_on_call, .user = st}};
    float w[2] = {0.5f, 0.3f};
    loom_compile_config c = {.n_losses = 2, .losses = l, .n_loss_weights = 2, .loss_weights = w,
                             .optimizer = loom_sgd(0.1f, 0.5f, 0)};
    CHECK_STATUS(loom_compile(m, &c), LOOM_OK);
    return m;
}

static int stop_at_epoch1(loom_model *m, int epoch, int batch, const loom_logs *l, void *u) {
    (void)m, (void)batch, (void)l;
    return epoch == 1 ? *(int *)u : 0;
}

typedef struct weight_switch {
    float kernel[12], bias[2];
    int calls;
} weight_switch;

/* After the first batch: D's loss weight becomes 0, and D's weights are remembered. */
static int switch_off_d(loom_model *m, int epoch, int batch, const loom_logs *l, void *u) {
    (void)epoch, (void)batch;
    weight_switch *ws = u;
    if (ws->calls++ == 0) {
        loom_get_weights(m, "D", 0, ws->kernel, 12);
        loom_get_weights(m, "D", 1, ws->bias, 2);
        loom_set_loss_weight(m, "D", 0.0f);
    }
    /* the batch logs are the history keys, in order */
    return loom_logs_count(l) == 3 && strcmp(loom_logs_key(l, 0), "loss") == 0 && isfinite(loom_logs_get(l, "D_loss")) ? 0 : 2;
}

static void test_callbacks(void) {
    /* TerminateOnNaN: the 3rd step's loss is NaN; the weights are those after step 2 */
    nan_loss_state st = {0, 3}, st2 = {0, 3};
    loom_model *m = nan_model(&st), *m2 = nan_model(&st2);
    loom_callback *ton = loom_terminate_on_nan();
    if (m && m2 && ton) {
        loom_fit_options fo = loom_fit_defaults();
        fo.batch_size = 4;
        fo.shuffle = 0;
        fo.epochs = 3;
        fo.n_callbacks = 1;
        fo.callbacks = &ton;
        loom_history *h = NULL;
        CHECK_STATUS(loom_fit(m, &seed_data, &fo, &h), LOOM_ERR_NAN);
        CHECK(has(loom_model_error(m), "D") && has(loom_model_error(m), "nanny"));
        CHECK(loom_model_status(m) == LOOM_ERR_NAN);
        CHECK(h != NULL && loom_history_epochs(h) == 0);
        CHECK(loom_callback_stopped_epoch(ton) == 0);
        CHECK(loom_iterations(m) == 2);
        loom_history_free(h);
        /* the reference: two steps on the first 8 samples */
        data_view first8;
        seed_slice(&first8, 0, 8);
        loom_fit_options f2 = loom_fit_defaults();
        f2.batch_size = 4;
        f2.shuffle = 0;
        CHECK_STATUS(loom_fit(m2, &first8.d, &f2, NULL), LOOM_OK);
        CHECK(st2.calls == 2);
        CHECK(same_floats(loom_params(m), loom_params(m2), loom_param_count(m)));
        /* without TerminateOnNaN the NaN goes through (Keras trains on) */
        st.calls = 0;
        fo.n_callbacks = 0;
        fo.epochs = 1;
        CHECK_STATUS(loom_fit(m, &seed_data, &fo, &h), LOOM_OK);
        CHECK(isnan(loom_history_get(h, "D_loss", 0)));
        loom_history_free(h);
    }
    loom_callback_free(ton);
    loom_model_free(m);
    loom_model_free(m2);

    /* EarlyStopping on a constructed plateau: lr 0, val_loss constant. Epoch 0 improves on +inf;
     * epochs 1 and 2 do not; with patience 2 training stops after epoch 2. */
    m = seed_model(11);
    loom_callback *es = loom_early_stopping(NULL, 0.0f, 2, LOOM_MODE_AUTO, 1);
    CHECK(es != NULL);
    if (m && es) {
        CHECK_STATUS(seed_compile(m, 0.5f, 0.3f, loom_sgd(0.0f, 0, 0), false), LOOM_OK);
        loom_fit_options fo = loom_fit_defaults();
        fo.batch_size = 4;
        fo.epochs = 10;
        fo.validation_data = &seed_data;
        fo.n_callbacks = 1;
        fo.callbacks = &es;
        loom_history *h = NULL;
        CHECK_STATUS(loom_fit(m, &seed_data, &fo, &h), LOOM_OK);
        CHECK(loom_history_epochs(h) == 3);
        CHECK(loom_callback_stopped_epoch(es) == 2);
        loom_history_free(h);
        /* patience 0 still needs epoch > 0 */
        loom_callback *es0 = loom_early_stopping("val_loss", 0.0f, 0, LOOM_MODE_MIN, 0);
        fo.callbacks = &es0;
        CHECK_STATUS(loom_fit(m, &seed_data, &fo, &h), LOOM_OK);
        CHECK(loom_history_epochs(h) == 2);
        CHECK(loom_callback_stopped_epoch(es0) == 1);
        loom_history_free(h);
        /* a missing monitor key: training goes on */
        loom_callback *esx = loom_early_stopping("val_nothing", 0.0f, 0, LOOM_MODE_MIN, 0);
        fo.callbacks = &esx;
        fo.epochs = 4;
        CHECK_STATUS(loom_fit(m, &seed_data, &fo, &h), LOOM_OK);
        CHECK(loom_history_epochs(h) == 4);
        CHECK(loom_callback_stopped_epoch(esx) == -1);
        loom_history_free(h);
        loom_callback_free(es0);
        loom_callback_free(esx);
    }
    loom_callback_free(es);
    loom_model_free(m);

    /* restore_best_weights: "loss" watched in max mode while it falls, so epoch 0 stays best;
     * training stops after epoch 2 and the weights go back to those after epoch 0 */
    m = seed_model(12);
    m2 = seed_model(12);
    es = loom_early_stopping("loss", 0.0f, 2, LOOM_MODE_MAX, 1);
    if (m && m2 && es) {
        CHECK_STATUS(seed_compile(m, 0.5f, 0.3f, loom_sgd(0.05f, 0, 0), false), LOOM_OK);
        CHECK_STATUS(seed_compile(m2, 0.5f, 0.3f, loom_sgd(0.05f, 0, 0), false), LOOM_OK);
        loom_fit_options fo = loom_fit_defaults();
        fo.batch_size = 4;
        fo.epochs = 10;
        fo.n_callbacks = 1;
        fo.callbacks = &es;
        loom_history *h = NULL;
        CHECK_STATUS(loom_fit(m, &seed_data, &fo, &h), LOOM_OK);
        CHECK(loom_history_epochs(h) == 3);
        CHECK(loom_callback_stopped_epoch(es) == 2);
        /* the construction needs the loss to fall */
        CHECK(loom_history_get(h, "loss", 1) < loom_history_get(h, "loss", 0));
        CHECK(loom_history_get(h, "loss", 2) < loom_history_get(h, "loss", 0));
        loom_history_free(h);
        fo.epochs = 1;
        fo.n_callbacks = 0;
        CHECK_STATUS(loom_fit(m2, &seed_data, &fo, NULL), LOOM_OK);
        CHECK(same_floats(loom_params(m), loom_params(m2), loom_param_count(m)));
    }
    loom_callback_free(es);
    loom_model_free(m);
    loom_model_free(m2);

    /* ReduceLROnPlateau: a min_delta no change can meet makes every epoch after the first a
     * plateau; patience 1, factor 0.5: 0.01 -> 0.005 -> 0.0025 over three epochs */
    m = seed_model(13);
    loom_callback *rl = loom_reduce_lr_on_plateau("loss", 0.5f, 1, LOOM_MODE_MIN, 1e9f, 0, 0.0f);
    CHECK(rl != NULL);
    CHECK(loom_reduce_lr_on_plateau("loss", 1.0f, 1, LOOM_MODE_MIN, 0, 0, 0) == NULL);
    if (m && rl) {
        CHECK_STATUS(seed_compile(m, 0.5f, 0.3f, loom_sgd(0.01f, 0, 0), false), LOOM_OK);
        CHECK(loom_get_learning_rate(m) == 0.01f);
        loom_fit_options fo = loom_fit_defaults();
        fo.batch_size = 4;
        fo.epochs = 3;
        fo.n_callbacks = 1;
        fo.callbacks = &rl;
        CHECK_STATUS(loom_fit(m, &seed_data, &fo, NULL), LOOM_OK);
        CHECK(loom_get_learning_rate(m) == 0.0025f);
        /* recompiling resets the rate */
        CHECK_STATUS(seed_compile(m, 0.5f, 0.3f, loom_sgd(0.01f, 0, 0), false), LOOM_OK);
        CHECK(loom_get_learning_rate(m) == 0.01f);
    }
    loom_callback_free(rl);
    loom_model_free(m);

    /* hooks: 1 stops cleanly, anything else is an error */
    m = seed_model(14);
    if (m) {
        CHECK_STATUS(seed_compile(m, 0.5f, 0.3f, loom_sgd(0.01f, 0, 0), false), LOOM_OK);
        int rc = 1;
        loom_callback *hk = loom_hook_callback(NULL, stop_at_epoch1, &rc);
        loom_fit_options fo = loom_fit_defaults();
        fo.batch_size = 4;
        fo.epochs = 5;
        fo.n_callbacks = 1;
        fo.callbacks = &hk;
        loom_history *h = NULL;
        CHECK_STATUS(loom_fit(m, &seed_data, &fo, &h), LOOM_OK);
        CHECK(loom_history_epochs(h) == 2);
        CHECK(loom_callback_stopped_epoch(hk) == 1);
        loom_history_free(h);
        rc = 2;
        CHECK_STATUS(loom_fit(m, &seed_data, &fo, &h), LOOM_ERR_CALLBACK);
        CHECK(loom_model_error(m)[0] != '\0');
        CHECK(h != NULL && loom_history_epochs(h) <= 2);
        loom_history_free(h);
        loom_callback_free(hk);

        /* a loss weight changed from the batch hook takes effect at the next step */
        CHECK_STATUS(seed_compile(m, 0.5f, 0.3f, loom_sgd(0.05f, 0, 0), false), LOOM_OK);
        float k0[12], b0[2];
        CHECK_STATUS(loom_get_weights(m, "D", 0, k0, 12), LOOM_OK);
        CHECK_STATUS(loom_get_weights(m, "D", 1, b0, 2), LOOM_OK);
        weight_switch ws = {{0}, {0}, 0};
        hk = loom_hook_callback(switch_off_d, NULL, &ws);
        fo.callbacks = &hk;
        fo.epochs = 2;
        CHECK_STATUS(loom_fit(m, &seed_data, &fo, NULL), LOOM_OK);
        CHECK(ws.calls == 6);
        CHECK(!same_floats(ws.kernel, k0, 12)); /* the first step trained D */
        CHECK(layer_weights_equal(m, "D", ws.kernel, ws.bias)); /* later steps did not */
        CHECK(loom_get_loss_weight(m, "D") == 0.0f);
        loom_callback_free(hk);
        loom_model_free(m);
    }
}

/* ---------------------------------------------------------------- 11. predict, reach, train_on_batch */

static void test_predict_reach_batch(void) {
    loom_model *m = seed_model(15);
    if (!m) return;
    randomize_layers(m, 4, SEED_LAYERS);
    CHECK_STATUS(seed_compile(m, 0.5f, 0.3f, loom_sgd(0.1f, 0, 0), true), LOOM_OK);
    float c3[NS * 3], d3[NS * 2], c10[NS * 3], d10[NS * 2];
    CHECK_STATUS(loom_predict(m, 1, seed_xa, 3, (float *[]){c3, d3}), LOOM_OK);
    CHECK_STATUS(loom_predict(m, 1, seed_xa, NS, (float *[]){c10, d10}), LOOM_OK);
    int bad = 0;
    for (int i = 0; i < NS * 3; i++) bad += !(fabsf(c3[i] - c10[i]) <= 1e-6f);
    for (int i = 0; i < NS * 2; i++) bad += !(fabsf(d3[i] - d10[i]) <= 1e-6f * (1 + fabsf(d10[i])));
    CHECK(bad == 0);
    for (int i = 0; i < NS; i++) CHECK_CLOSE(c10[i * 3] + c10[i * 3 + 1] + c10[i * 3 + 2], 1.0, 1e-6, 0);
    /* a NULL entry skips an output; an unnamed array binds by position */
    float d_only[NS * 2];
    loom_array pos = {.name = NULL, .data = seed_x, .n = NS, .count = NS * 4};
    CHECK_STATUS(loom_predict(m, 1, &pos, 4, (float *[]){NULL, d_only}), LOOM_OK);
    int off = 0;
    for (int i = 0; i < NS * 2; i++) off += !(fabsf(d_only[i] - d10[i]) <= 1e-6f * (1 + fabsf(d10[i])));
    CHECK(off == 0);

    /* reach over every (output, layer) pair */
    CHECK(loom_model_num_layers(m) == 5);
    const char *outs[2] = {"C", "D"};
    for (int k = 0; k < 2; k++)
        for (int l = 0; l < 4; l++) {
            bool want = l < 2 || l == 2 + k;
            if (loom_loss_reaches(m, outs[k], SEED_LAYERS[l]) != want)
                fprintf(stderr, "  loss_reaches(%s, %s) should be %d\n", outs[k], SEED_LAYERS[l], want);
            CHECK(loom_loss_reaches(m, outs[k], SEED_LAYERS[l]) == want);
        }
    CHECK(loom_loss_reaches(m, "E", "A") == 0 && loom_model_status(m) == LOOM_ERR_NAME && has(loom_model_error(m), "E"));
    CHECK(loom_loss_reaches(m, "C", "Zlayer") == 0 && loom_model_status(m) == LOOM_ERR_NAME &&
          has(loom_model_error(m), "Zlayer"));

    /* train_on_batch: logs in key order, computed before the update */
    loom_history *e = NULL;
    CHECK_STATUS(loom_evaluate(m, &seed_data, NS, 0, &e), LOOM_OK);
    float logs[8] = {0};
    int n = -1;
    float *before = malloc(loom_param_count(m) * sizeof *before);
    memcpy(before, loom_params(m), loom_param_count(m) * sizeof *before);
    CHECK_STATUS(loom_train_on_batch(m, &seed_data, logs, 8, &n), LOOM_OK);
    CHECK(n == 4);
    for (int i = 0; i < 4 && i < n; i++)
        CHECK_CLOSE(logs[i], loom_history_get(e, loom_history_key(e, i), 0), 1e-6, 1e-5);
    CHECK(strcmp(loom_history_key(e, 1), "C_accuracy") == 0);
    CHECK(loom_iterations(m) == 1);
    CHECK(!same_floats(before, loom_params(m), loom_param_count(m)));
    /* the step is w -= lr * grad(total) at the old weights (plain SGD) */
    {
        size_t P = loom_param_count(m);
        float *g = malloc(P * sizeof *g), *after = malloc(P * sizeof *after);
        memcpy(after, loom_params(m), P * sizeof *after);
        memcpy(loom_params(m), before, P * sizeof *before);
        CHECK_STATUS(loom_gradients(m, &seed_data, 0, NULL, g, NULL), LOOM_OK);
        int off = 0;
        for (size_t i = 0; i < P; i++) off += !(fabsf(after[i] - (before[i] - 0.1f * g[i])) <= 1e-6f);
        CHECK(off == 0);
        memcpy(loom_params(m), after, P * sizeof *after);
        free(g);
        free(after);
    }
    /* max_logs truncates */
    CHECK_STATUS(loom_train_on_batch(m, &seed_data, logs, 2, &n), LOOM_OK);
    CHECK(n == 2);
    free(before);
    loom_history_free(e);
    loom_model_free(m);
}

int main(void) {
    make_seed_data();
    make_rich_data();
    test_weighted_gradients();
    test_fd_seed();
    test_fd_rich();
    test_fd_forks();
    test_fd_shared_head();
    test_shared_layer();
    test_zero_weights();
    test_scalar_spec7();
    test_spec_vectors();
    test_compile_errors();
    test_data_errors();
    test_graph_errors();
    test_log_keys();
    test_determinism();
    test_callbacks();
    test_predict_reach_batch();
    return check_report("test_model");
}
