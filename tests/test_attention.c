/* test_attention.c — MultiHeadAttention (src/layers/layer_attention.c):
 *   - forward values against NumPy (tests/reference/mha_ref.txt, written by mha_ref.py from Keras
 *     3's einsum equations): self- and cross-attention, Tq != Tv, dq != dv, a separate key,
 *     causal (also with Tq > Tv), 1, 2 and 3 heads, with and without bias, query/value masks;
 *   - value and key masks of their own (Keras 3): central differences, no gradient on unseen
 *     steps, a right-padded value = the value cut to its length;
 *   - central-difference checks of every input and weight gradient (op_harness.h), and by hand
 *     for self-attention on ONE tensor (the same buffer as query and value, one gradient buffer
 *     passed twice) with a mask;
 *   - through the public API: gradients of Input -> MHA(x, x) -> Flatten -> Dense against central
 *     differences of loom_evaluate, also with the layer shared (called twice);
 *   - Keras's output and weight shapes, names and parameter count, bad arguments and bad shapes;
 *   - a small model that learns, and a loom_model_save / loom_model_load round trip. */
#include "fixture.h"
#include "op_harness.h"
#include "train_check.h"

#include <stdint.h>
#include <string.h>
#include <unistd.h>

#ifndef LOOM_TEST_DIR
#define LOOM_TEST_DIR "tests"
#endif


/* ---------------------------------------------------------------- a call without the harness */

/* One call site by hand, for what op_harness.h cannot express: a key mask and one tensor given
 * as query and value (inputs and input gradients aliased, as the engine passes them). */
typedef struct mha_call {
    loom_shape in_shape[3];
    int n_in, batch;
    const float *in[3];
    float *din[3];
    float *out, *dout, *w, *dw, *scratch;
    size_t out_n, n_w;
    const float *mask;
} mha_call;

static loom_op_ctx call_ctx(const loom_layer *L, mha_call *k, bool with_dw) {
    loom_op_ctx c = {0};
    c.batch = k->batch;
    c.n_in = k->n_in;
    c.in = k->in;
    c.din = k->din;
    c.in_shape = k->in_shape;
    c.out = k->out;
    c.dout = k->dout;
    c.out_shape = k->in_shape[0];
    c.w = k->w;
    c.dw = with_dw ? k->dw : NULL;
    c.scratch = k->scratch;
    c.training = 1;
    c.in_mask = k->mask;
    /* as the engine: an input that is the query tensor itself carries its mask */
    for (int i = 0; i < k->n_in && i < LOOM_MASKED_INPUTS; i++)
        if (i == 0 || k->in[i] == k->in[0]) c.in_masks[i] = k->mask;
    (void)L;
    return c;
}

static double call_objective(const loom_layer *L, mha_call *k) {
    loom_op_ctx c = call_ctx(L, k, false);
    L->op->forward(L, &c);
    double f = 0;
    for (size_t i = 0; i < k->out_n; i++) f += (double)k->dout[i] * k->out[i];
    return f;
}

/* ---------------------------------------------------------------- against NumPy */

static void check_fixture_case(const fixture *fx, const char *id) {
    char key[FIXTURE_NAME_MAX + 8];
#define FX(suffix) (snprintf(key, sizeof key, "%s." suffix, id), key)
    const double *cfg = fixture_get(fx, FX("cfg"), 7);
    const double *sh = fixture_get(fx, FX("shapes"), 5);
    if (!cfg || !sh) return;
    int H = (int)cfg[0], Kd = (int)cfg[1], Vd = (int)cfg[2], bias = (int)cfg[3], causal = (int)cfg[4];
    int n_in = (int)cfg[5], masked = (int)cfg[6];
    int Tq = (int)sh[0], dq = (int)sh[1], Tv = (int)sh[2], dv = (int)sh[3], dk = (int)sh[4];
    const int B = 2;
    loom_graph *g = loom_graph_new(3);
    loom_layer *L = loom_multi_head_attention(g, NULL, H, Kd, Vd, bias, causal);
    CHECK(L != NULL);
    if (!L) {
        loom_graph_free(g);
        return;
    }
    loom_shape shapes[3] = {{2, {Tq, dq}}, {2, {Tv, dv}}, {2, {Tv, dk}}};
    op_harness Hs;
    loom_status s = oph_init(&Hs, L, n_in, shapes, B, 0, 1);
    CHECK_STATUS(s, LOOM_OK);
    if (s == LOOM_OK) {
        fixture_floats(fx, FX("q"), Hs.in[0], Hs.in_n[0]);
        fixture_floats(fx, FX("v"), Hs.in[1], Hs.in_n[1]);
        if (n_in == 3) fixture_floats(fx, FX("k"), Hs.in[2], Hs.in_n[2]);
        fixture_floats(fx, FX("w"), Hs.w, Hs.n_w);
        CHECK(Hs.out_shape.rank == 2 && Hs.out_shape.dims[0] == Tq && Hs.out_shape.dims[1] == dq);
        float *mask = NULL;
        if (masked) {
            /* self-attention on one tensor: the engine passes the same pointer twice */
            mask = malloc((size_t)B * Tq * sizeof *mask);
            fixture_floats(fx, FX("mask"), mask, (size_t)B * Tq);
            mha_call k = {.n_in = 2, .batch = B, .out = Hs.out, .dout = Hs.dout, .w = Hs.w, .scratch = Hs.scratch,
                          .out_n = Hs.out_n, .mask = mask};
            k.in_shape[0] = k.in_shape[1] = shapes[0];
            k.in[0] = k.in[1] = Hs.in[0];
            for (size_t i = 0; i < Hs.out_n; i++) Hs.out[i] = NAN;
            loom_op_ctx c = call_ctx(L, &k, false);
            L->op->forward(L, &c);
        } else {
            oph_forward(&Hs);
        }
        const double *y = fixture_get(fx, FX("y"), Hs.out_n);
        int bad = 0;
        if (y)
            for (size_t i = 0; i < Hs.out_n; i++)
                if (!(fabs(Hs.out[i] - y[i]) <= 1e-5 + 1e-5 * fabs(y[i])) && bad++ < 3)
                    fprintf(stderr, "  %s: y[%zu] = %.8g, NumPy %.8g\n", id, i, Hs.out[i], y[i]);
        CHECK(bad == 0);
        if (masked && bias) {
            /* a padded query step attends to nothing: its output is the output bias */
            const float *ob = Hs.w + Hs.n_w - dq;
            for (int b = 0; b < B; b++)
                for (int t = 0; t < Tq; t++)
                    if (mask[b * Tq + t] == 0.0f)
                        for (int j = 0; j < dq; j++) CHECK(Hs.out[((size_t)b * Tq + t) * dq + j] == ob[j]);
        }
        free(mask);
    } else {
        fprintf(stderr, "  %s: %s\n", id, Hs.err.msg);
    }
    oph_free(&Hs);
    loom_graph_free(g);
#undef FX
}

static void test_against_numpy(void) {
    fixture fx;
    if (fixture_load(&fx, LOOM_TEST_DIR "/reference/mha_ref.txt") != 0) {
        fixture_free(&fx);
        return;
    }
    int cases = 0, masked = 0, causal = 0, three = 0;
    for (int i = 0; i < fx.count; i++) {
        const char *name = fx.arrays[i].name;
        size_t len = strlen(name);
        if (len < 5 || strcmp(name + len - 4, ".cfg") != 0) continue;
        char id[FIXTURE_NAME_MAX];
        snprintf(id, sizeof id, "%.*s", (int)(len - 4), name);
        if (fx.arrays[i].n == 7) {
            causal += fx.arrays[i].v[4] != 0;
            three += fx.arrays[i].v[5] == 3;
            masked += fx.arrays[i].v[6] != 0;
        }
        check_fixture_case(&fx, id);
        cases++;
    }
    CHECK(cases == 11);
    CHECK(causal >= 3 && three >= 3 && masked >= 2);
    fixture_free(&fx);
}

/* ---------------------------------------------------------------- op gradients */

static void grad_case(const char *label, int H, int Kd, int Vd, int bias, int causal, int n_in, int Tq, int dq,
                      int Tv, int dv, int dk) {
    loom_graph *g = loom_graph_new(5);
    loom_layer *L = loom_multi_head_attention(g, NULL, H, Kd, Vd, bias, causal);
    CHECK(L != NULL);
    loom_shape shapes[3] = {{2, {Tq, dq}}, {2, {Tv, dv}}, {2, {Tv, dk}}};
    op_harness Hs;
    loom_status s = L ? oph_init(&Hs, L, n_in, shapes, 3, 1, 9) : LOOM_ERR_ARGUMENT;
    CHECK_STATUS(s, LOOM_OK);
    if (s == LOOM_OK) {
        /* weights of a few tenths keep the softmax away from saturation and the differences
         * well conditioned */
        oph_grad_check(&Hs, label, NULL);
    } else if (L) {
        fprintf(stderr, "  %s: %s\n", label, Hs.err.msg);
    }
    if (L) oph_free(&Hs);
    loom_graph_free(g);
}

static void test_gradients(void) {
    grad_case("self h1 bias", 1, 3, 0, 1, 0, 2, 4, 3, 4, 3, 3);
    grad_case("self h3 bias", 3, 2, 0, 1, 0, 2, 3, 4, 3, 4, 4);
    grad_case("cross h2 vdim", 2, 2, 3, 1, 0, 2, 3, 4, 5, 2, 2);
    grad_case("cross h1 nobias", 1, 4, 0, 0, 0, 2, 2, 3, 4, 5, 5);
    grad_case("key h2 bias", 2, 3, 2, 1, 0, 3, 4, 2, 3, 3, 5);
    grad_case("key h3 nobias", 3, 1, 2, 0, 0, 3, 2, 3, 3, 2, 4);
    grad_case("causal h3 bias", 3, 2, 0, 1, 1, 2, 4, 3, 4, 3, 3);
    grad_case("causal Tq>Tv", 2, 2, 0, 1, 1, 3, 5, 3, 3, 2, 4);
    grad_case("causal Tq<Tv", 1, 2, 0, 0, 1, 2, 3, 2, 5, 3, 3);
}

/* Self-attention on one tensor with a mask: query and value share the buffer and the gradient
 * buffer, so the analytic gradient is the sum of both paths and backward must only add. */
static void aliased_case(const char *label, int H, int Kd, int bias, int causal) {
    enum { B = 2, T = 5, D = 4 };
    loom_graph *g = loom_graph_new(6);
    loom_layer *L = loom_multi_head_attention(g, NULL, H, Kd, 0, bias, causal);
    CHECK(L != NULL);
    if (!L) {
        loom_graph_free(g);
        return;
    }
    loom_shape sh[2] = {{2, {T, D}}, {2, {T, D}}};
    loom_shape out;
    loom_error err = {0};
    CHECK_STATUS(L->op->build(L, 2, sh, &out, &err), LOOM_OK);
    L->built = true;
    size_t n_w = 0;
    for (int i = 0; i < L->n_weights; i++) n_w += loom_shape_size(&L->weights[i].shape);
    size_t n_s = L->op->scratch_size(L, 2, sh, &out, B), n_x = (size_t)B * T * D;
    float *x = malloc(n_x * sizeof *x), *dx = malloc(n_x * sizeof *dx), *o = malloc(n_x * sizeof *o);
    float *dout = malloc(n_x * sizeof *dout), *w = malloc(n_w * sizeof *w), *dw = malloc(n_w * sizeof *dw);
    float *scr = malloc(n_s * sizeof *scr);
    float mask[B * T] = {1, 1, 1, 0, 0, 0, 1, 1, 0, 1};
    oph_fill_uniform(x, n_x, -1, 1, 41);
    oph_fill_uniform(dout, n_x, -1, 1, 42);
    oph_fill_uniform(w, n_w, -0.5f, 0.5f, 43);
    mha_call k = {.n_in = 2, .batch = B, .out = o, .dout = dout, .w = w, .dw = dw, .scratch = scr, .out_n = n_x,
                  .n_w = n_w, .mask = mask};
    k.in_shape[0] = k.in_shape[1] = sh[0];
    k.in[0] = k.in[1] = x;
    k.din[0] = k.din[1] = dx;
    for (size_t i = 0; i < n_x; i++) dx[i] = oph_pattern(i);
    for (size_t i = 0; i < n_w; i++) dw[i] = oph_pattern(i + 3);
    call_objective(L, &k);
    loom_op_ctx c = call_ctx(L, &k, true);
    L->op->backward(L, &c);
    oph_tol t = oph_default_tol();
    int bad = 0, shown = 0, masked_zero = 1;
    for (size_t j = 0; j < n_x; j++) {
        float v = x[j];
        x[j] = v + (float)t.h;
        double fp = call_objective(L, &k);
        x[j] = v - (float)t.h;
        double fm = call_objective(L, &k);
        x[j] = v;
        double num = (fp - fm) / ((double)(v + (float)t.h) - (double)(v - (float)t.h));
        int b = oph_compare(label, "dx", 0, j, dx[j] - oph_pattern(j), num, &t, shown);
        bad += b;
        shown += b;
        /* a padded step is neither attended to nor (Keras) attending: no gradient reaches it */
        if (mask[j / D] == 0.0f && fabs(num) > 1e-6) masked_zero = 0;
    }
    for (size_t j = 0; j < n_w; j++) {
        float v = w[j];
        w[j] = v + (float)t.h;
        double fp = call_objective(L, &k);
        w[j] = v - (float)t.h;
        double fm = call_objective(L, &k);
        w[j] = v;
        double num = (fp - fm) / ((double)(v + (float)t.h) - (double)(v - (float)t.h));
        int b = oph_compare(label, "dw", 0, j, dw[j] - oph_pattern(j + 3), num, &t, shown);
        bad += b;
        shown += b;
    }
    if (bad) fprintf(stderr, "  %s: %d gradient mismatches\n", label, bad);
    CHECK(bad == 0);
    CHECK(masked_zero);
    free(x), free(dx), free(o), free(dout), free(w), free(dw), free(scr);
    loom_graph_free(g);
}

static void test_aliased_gradients(void) {
    aliased_case("one tensor, masked", 2, 3, 1, 0);
    aliased_case("one tensor, masked causal", 3, 2, 1, 1);
    aliased_case("one tensor, masked no bias", 1, 2, 0, 0);
}

/* ---------------------------------------------------------------- through the public API */

enum { MT = 4, MD = 3, MN = 6 };

/* x (4, 3) -> MHA(x, x) [-> the same MHA(h, x)] -> Flatten -> Dense 2. */
static loom_model *small_model(uint64_t seed, int shared, int causal) {
    loom_graph *g = loom_graph_new(seed);
    loom_tensor *x = loom_input(g, "x", 2, (int[]){MT, MD});
    loom_layer *att = loom_multi_head_attention(g, "att", 2, 2, 3, 1, causal);
    loom_tensor *h = loom_call_n(att, 2, (loom_tensor *[]){x, x});
    if (shared) h = loom_call_n(att, 2, (loom_tensor *[]){h, x});
    h = loom_call(loom_flatten(g, NULL), h);
    loom_tensor *y = loom_call(loom_dense(g, "y", 2, LOOM_LINEAR, NULL), h);
    loom_model *m = loom_model_new(g, 1, &x, 1, &y);
    if (!m) {
        fprintf(stderr, "  small model: %s\n", loom_graph_error(g));
        loom_graph_free(g);
        return NULL;
    }
    loom_loss loss = {.name = "mse"};
    loom_compile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.n_losses = 1;
    cfg.losses = &loss;
    cfg.optimizer = loom_adam(0.01f);
    if (loom_compile(m, &cfg) != LOOM_OK) {
        fprintf(stderr, "  small model: %s\n", loom_model_error(m));
        loom_model_free(m);
        return NULL;
    }
    return m;
}

static double eval_loss(loom_model *m, const loom_data *d) {
    loom_history *h = NULL;
    double v = NAN;
    if (loom_evaluate(m, d, MN, 0, &h) == LOOM_OK) v = loom_history_get(h, "loss", 0);
    loom_history_free(h);
    return v;
}

static void model_grad_case(const char *label, int shared, int causal) {
    loom_model *m = small_model(31, shared, causal);
    CHECK(m != NULL);
    if (!m) return;
    static float xs[MN * MT * MD], ys[MN * 2];
    oph_fill_uniform(xs, MN * MT * MD, -1, 1, 51);
    oph_fill_uniform(ys, MN * 2, -1, 1, 52);
    loom_array xa = {.name = "x", .data = xs, .n = MN, .count = MN * MT * MD}, ya = {.name = "y", .data = ys, .n = MN, .count = MN * 2};
    loom_data d = {1, &xa, 1, &ya, 0, NULL};
    size_t n = loom_param_count(m);
    /* 4 weights of (3,2,2) / (2,2) / (3,2,3) / (2,3) ... : 12+4+12+4+18+6+18+3, Dense 12*2+2 */
    CHECK(n == 77 + 26);
    float *p = loom_params(m);
    /* larger weights than glorot's so that attention is far from uniform */
    for (size_t i = 0; i < n; i++) p[i] = 1.5f * (loom_uniform01(53, i) - 0.5f);
    float *grad = malloc(n * sizeof *grad);
    CHECK_STATUS(loom_gradients(m, &d, 0, NULL, grad, NULL), LOOM_OK);
    int bad = 0, shown = 0;
    const double h = 1e-2;
    oph_tol t = {h, 2e-2, 2e-3};
    for (size_t j = 0; j < n; j++) {
        float v = p[j];
        p[j] = (float)(v + h);
        double fp = eval_loss(m, &d);
        p[j] = (float)(v - h);
        double fm = eval_loss(m, &d);
        p[j] = v;
        double num = (fp - fm) / ((double)(float)(v + h) - (double)(float)(v - h));
        int b = oph_compare(label, "param", 0, j, grad[j], num, &t, shown);
        bad += b;
        shown += b;
    }
    if (bad) fprintf(stderr, "  %s: %d gradient mismatches\n", label, bad);
    CHECK(bad == 0);
    free(grad);
    loom_model_free(m);
}

static void test_model_gradients(void) {
    model_grad_case("model MHA(x, x)", 0, 0);
    model_grad_case("model MHA(x, x) causal", 0, 1);
    model_grad_case("model shared MHA", 1, 0);
}

/* ---------------------------------------------------------------- shapes and errors */

static void test_shapes(void) {
    loom_graph *g = loom_graph_new(1);
    loom_tensor *q = loom_input(g, "q", 2, (int[]){7, 8});
    loom_tensor *v = loom_input(g, "v", 2, (int[]){5, 6});
    loom_tensor *k = loom_input(g, "k", 2, (int[]){5, 3});
    loom_layer *L = loom_multi_head_attention(g, NULL, 4, 2, 0, 1, 0);
    CHECK(L && strcmp(loom_layer_name(L), "multi_head_attention") == 0);
    CHECK(L && strcmp(loom_layer_class(L), "MultiHeadAttention") == 0);
    loom_layer *L2 = loom_multi_head_attention(g, NULL, 3, 5, 2, 0, 1);
    CHECK(L2 && strcmp(loom_layer_name(L2), "multi_head_attention_1") == 0);
    loom_tensor *y = loom_call_n(L, 3, (loom_tensor *[]){q, v, k});
    loom_tensor *y2 = loom_call_n(L2, 2, (loom_tensor *[]){q, v});
    int dims[LOOM_MAX_RANK];
    /* the output has the query's shape whatever the value's */
    CHECK(y && loom_tensor_shape(y, dims) == 2 && dims[0] == 7 && dims[1] == 8);
    CHECK(y2 && loom_tensor_shape(y2, dims) == 2 && dims[0] == 7 && dims[1] == 8);
    /* Keras's EinsumDense layouts and weight order */
    static const char *const names[8] = {"query_kernel", "query_bias", "key_kernel",    "key_bias",
                                         "value_kernel", "value_bias", "output_kernel", "output_bias"};
    static const int shapes[8][4] = {{3, 8, 4, 2}, {2, 4, 2}, {3, 3, 4, 2}, {2, 4, 2},
                                     {3, 6, 4, 2}, {2, 4, 2}, {3, 4, 2, 8}, {1, 8}};
    CHECK(L && loom_layer_num_weights(L) == 8);
    for (int i = 0; L && i < 8 && i < loom_layer_num_weights(L); i++) {
        CHECK(strcmp(loom_layer_weight_name(L, i), names[i]) == 0);
        int r = loom_layer_weight_shape(L, i, dims);
        CHECK(r == shapes[i][0]);
        for (int a = 0; a < r && a < 3; a++) CHECK(dims[a] == shapes[i][a + 1]);
    }
    /* no bias: the four kernels, value_dim 2 */
    CHECK(L2 && loom_layer_num_weights(L2) == 4);
    if (L2 && loom_layer_num_weights(L2) == 4) {
        CHECK(strcmp(loom_layer_weight_name(L2, 3), "output_kernel") == 0);
        CHECK(loom_layer_weight_shape(L2, 2, dims) == 3 && dims[0] == 6 && dims[1] == 3 && dims[2] == 2);
        CHECK(loom_layer_weight_shape(L2, 3, dims) == 3 && dims[0] == 3 && dims[1] == 2 && dims[2] == 8);
    }
    loom_tensor *outs[2] = {y, y2};
    loom_tensor *ins[3] = {q, v, k};
    loom_model *m = loom_model_new(g, 3, ins, 2, outs);
    CHECK(m != NULL);
    if (!m) {
        fprintf(stderr, "  shapes: %s\n", loom_graph_error(g));
        loom_graph_free(g);
        return;
    }
    /* Keras's counts: (8*8+8) + (3*8+8) + (6*8+8) + (8*8+8) and 8*15 + 6*15 + 6*6 + 6*8 */
    CHECK(loom_param_count(m) == 72 + 32 + 56 + 72 + 120 + 90 + 36 + 48);
    /* glorot_uniform with Keras's fans for a 3-D kernel (d, H, Kd): receptive field d,
     * fan_in = d*H, fan_out = d*Kd; biases zero */
    float qk[64], qb[8];
    CHECK_STATUS(loom_get_weights(m, "multi_head_attention", 0, qk, 64), LOOM_OK);
    CHECK_STATUS(loom_get_weights(m, "multi_head_attention", 1, qb, 8), LOOM_OK);
    float limit = sqrtf(6.0f / (8 * 4 + 8 * 2)), mx = 0;
    for (int i = 0; i < 64; i++) mx = fmaxf(mx, fabsf(qk[i]));
    CHECK(mx <= limit && mx > 0.5f * limit);
    for (int i = 0; i < 8; i++) CHECK(qb[i] == 0.0f);
    loom_model_free(m);
}

static void expect_graph_error(loom_graph *g, loom_status code, const char *needle) {
    CHECK_STATUS(loom_graph_status(g), code);
    if (!strstr(loom_graph_error(g), needle)) {
        fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", loom_graph_error(g), needle);
        CHECK(0);
    }
}

static void test_errors(void) {
    static const int bad[][3] = {{0, 4, 0}, {-1, 4, 0}, {2, 0, 0}, {2, -3, 0}, {2, 4, -1}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        loom_graph *g = loom_graph_new(1);
        CHECK(loom_multi_head_attention(g, "att", bad[i][0], bad[i][1], bad[i][2], 1, 0) == NULL);
        expect_graph_error(g, LOOM_ERR_ARGUMENT, "att (MultiHeadAttention)");
        /* sticky: later calls fail too and keep the first message */
        CHECK(loom_multi_head_attention(g, "ok", 2, 2, 0, 1, 0) == NULL);
        expect_graph_error(g, LOOM_ERR_ARGUMENT, "att (MultiHeadAttention)");
        loom_graph_free(g);
    }
    struct {
        int nq, q[3], nv, v[3], nk, k[3], n_in;
        loom_status code;
        const char *what;
    } cases[] = {
        {2, {4, 3}, 2, {4, 3}, 0, {0}, 1, LOOM_ERR_COUNT, "att"},           /* one input */
        {2, {4, 3}, 2, {4, 3}, 2, {4, 3}, 4, LOOM_ERR_COUNT, "att"},        /* four inputs */
        {1, {12}, 2, {4, 3}, 0, {0}, 2, LOOM_ERR_SHAPE, "query"},           /* rank-1 query */
        {3, {2, 2, 3}, 2, {4, 3}, 0, {0}, 2, LOOM_ERR_SHAPE, "query"},      /* rank-3 query */
        {2, {4, 3}, 1, {3}, 0, {0}, 2, LOOM_ERR_SHAPE, "value"},            /* rank-1 value */
        {2, {4, 3}, 2, {4, 3}, 3, {4, 3, 1}, 3, LOOM_ERR_SHAPE, "key"},     /* rank-3 key */
        {2, {4, 3}, 2, {5, 3}, 2, {4, 3}, 3, LOOM_ERR_SHAPE, "same steps"}, /* key 4 vs value 5 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        loom_graph *g = loom_graph_new(1);
        loom_tensor *t[4];
        t[0] = loom_input(g, "q", cases[i].nq, cases[i].q);
        t[1] = loom_input(g, "v", cases[i].nv, cases[i].v);
        t[2] = cases[i].nk ? loom_input(g, "k", cases[i].nk, cases[i].k) : t[1];
        t[3] = t[0];
        loom_layer *L = loom_multi_head_attention(g, "att", 2, 2, 0, 1, 0);
        CHECK(L != NULL);
        CHECK(loom_call_n(L, cases[i].n_in, t) == NULL);
        expect_graph_error(g, cases[i].code, "att");
        expect_graph_error(g, cases[i].code, cases[i].what);
        loom_graph_free(g);
    }
    /* a shared call must see the first call's shapes */
    loom_graph *g = loom_graph_new(1);
    loom_tensor *a = loom_input(g, "a", 2, (int[]){4, 3}), *b = loom_input(g, "b", 2, (int[]){5, 3});
    loom_layer *L = loom_multi_head_attention(g, "att", 2, 2, 0, 1, 0);
    CHECK(loom_call_n(L, 2, (loom_tensor *[]){a, a}) != NULL);
    CHECK(loom_call_n(L, 2, (loom_tensor *[]){b, b}) == NULL);
    expect_graph_error(g, LOOM_ERR_SHAPE, "att");
    loom_graph_free(g);
}

/* ---------------------------------------------------------------- end to end */

/* Each sample's target is the value of feature 1 at the step whose feature 0 is largest: the
 * model has to look across steps, which attention can and a per-step map cannot. */
static void make_task(float *xs, float *ys, int n, uint64_t key) {
    for (int s = 0; s < n; s++) {
        float *x = xs + (size_t)s * MT * MD;
        for (int i = 0; i < MT * MD; i++) x[i] = 2.0f * loom_uniform01(key, (uint64_t)s * MT * MD + i) - 1.0f;
        int best = 0;
        for (int t = 1; t < MT; t++)
            if (x[t * MD] > x[best * MD]) best = t;
        ys[2 * s] = x[best * MD + 1];
        ys[2 * s + 1] = 0.5f * x[best * MD];
    }
}

static void test_fit_and_save(void) {
    enum { N = 256 };
    loom_model *m = small_model(77, 0, 0);
    CHECK(m != NULL);
    if (!m) return;
    static float xs[N * MT * MD], ys[N * 2];
    make_task(xs, ys, N, 61);
    loom_array xa = {.name = "x", .data = xs, .n = N, .count = N * MT * MD}, ya = {.name = "y", .data = ys, .n = N, .count = N * 2};
    loom_data d = {1, &xa, 1, &ya, 0, NULL};
    loom_history *after = check_fit_lowers_loss(m, &d, 16, 30, 3, "fit");
    loom_history_free(after);

    /* round trip through a model file: same predictions, same configuration */
    char path[64];
    snprintf(path, sizeof path, "/tmp/loom_test_attention_%ld.loom", (long)getpid());
    CHECK_STATUS(loom_model_save(m, path), LOOM_OK);
    char err[512] = "";
    loom_model *r = loom_model_load(path, err, sizeof err);
    if (!r) fprintf(stderr, "  load: %s\n", err);
    CHECK(r != NULL);
    if (r) {
        static float p1[N * 2], p2[N * 2];
        float *o1[1] = {p1}, *o2[1] = {p2};
        CHECK_STATUS(loom_predict(m, 1, &xa, 64, o1), LOOM_OK);
        CHECK_STATUS(loom_predict(r, 1, &xa, 64, o2), LOOM_OK);
        CHECK(memcmp(p1, p2, sizeof p1) == 0);
        loom_layer *L = loom_model_find_layer(r, "att");
        CHECK(L && strcmp(loom_layer_class(L), "MultiHeadAttention") == 0);
        CHECK(L && loom_layer_num_weights(L) == 8);
        int dims[LOOM_MAX_RANK];
        /* value_dim 3 != key_dim 2 survived */
        CHECK(L && loom_layer_weight_shape(L, 4, dims) == 3 && dims[2] == 3);
        loom_model_free(r);
    }
    remove(path);
    loom_model_free(m);

    /* causal and no bias survive too: a causal model's predictions differ from a non-causal one's */
    loom_graph *g = loom_graph_new(8);
    loom_tensor *x = loom_input(g, "x", 2, (int[]){MT, MD});
    loom_tensor *y = loom_call_n(loom_multi_head_attention(g, "att", 3, 2, 0, 0, 1), 2, (loom_tensor *[]){x, x});
    m = loom_model_new(g, 1, &x, 1, &y);
    CHECK(m != NULL);
    if (!m) {
        loom_graph_free(g);
        return;
    }
    CHECK_STATUS(loom_model_save(m, path), LOOM_OK);
    r = loom_model_load(path, err, sizeof err);
    if (!r) fprintf(stderr, "  load: %s\n", err);
    CHECK(r != NULL);
    if (r) {
        static float p1[N * MT * MD], p2[N * MT * MD];
        float *o1[1] = {p1}, *o2[1] = {p2};
        CHECK_STATUS(loom_predict(m, 1, &xa, 64, o1), LOOM_OK);
        CHECK_STATUS(loom_predict(r, 1, &xa, 64, o2), LOOM_OK);
        CHECK(memcmp(p1, p2, sizeof p1) == 0);
        loom_layer *L = loom_model_find_layer(r, "att");
        CHECK(L && loom_layer_num_weights(L) == 4);
        /* the first step sees only itself: its output does not change with later steps */
        float x2[MT * MD], q1[MT * MD], q2[MT * MD];
        memcpy(x2, xs, sizeof x2);
        loom_array a1 = {.name = "x", .data = x2, .n = 1, .count = 1 * MT * MD};
        float *oq1[1] = {q1}, *oq2[1] = {q2};
        CHECK_STATUS(loom_predict(r, 1, &a1, 1, oq1), LOOM_OK);
        for (int i = MD; i < MT * MD; i++) x2[i] += 0.5f;
        CHECK_STATUS(loom_predict(r, 1, &a1, 1, oq2), LOOM_OK);
        for (int j = 0; j < MD; j++) CHECK(q1[j] == q2[j]);
        CHECK(q1[MD] != q2[MD]);
        loom_model_free(r);
    }
    remove(path);
    loom_model_free(m);
}

/* Value and key masks (Keras 3): central differences with a query, a value and (3 inputs) a key
 * mask of their own, padded value/key steps get exactly zero gradient; and a padded value is
 * the same as the value cut to its valid steps, sample by sample. */
static void value_mask_case(const char *label, int n_in, int causal) {
    enum { B = 3, Tq = 4, Tv = 5, D = 3 };
    const float qmask[B * Tq] = {1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1};
    const float vmask[B * Tv] = {1, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1};
    const float kmask[B * Tv] = {1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 0};
    loom_graph *g = loom_graph_new(6);
    loom_layer *L = loom_multi_head_attention(g, NULL, 2, 2, 0, 1, causal);
    loom_shape shapes[3] = {{2, {Tq, D}}, {2, {Tv, D}}, {2, {Tv, D}}};
    op_harness Hs;
    loom_status s = L ? oph_init(&Hs, L, n_in, shapes, B, 1, 9) : LOOM_ERR_ARGUMENT;
    CHECK_STATUS(s, LOOM_OK);
    if (s == LOOM_OK) {
        Hs.mask = qmask;
        Hs.in_masks[1] = vmask;
        if (n_in == 3) Hs.in_masks[2] = kmask;
        oph_grad_check(&Hs, label, NULL); /* leaves din as the gradients from zero */
        int leaked = 0;
        for (int b = 0; b < B; b++)
            for (int t = 0; t < Tv; t++) {
                bool seen = vmask[b * Tv + t] != 0 && (n_in < 3 || kmask[b * Tv + t] != 0);
                for (int f = 0; f < D && !seen; f++)
                    for (int i = 1; i < n_in; i++) leaked += Hs.din[i][(b * Tv + t) * D + f] != 0.0f;
            }
        if (leaked) fprintf(stderr, "  %s: %d gradients on unseen value/key steps\n", label, leaked);
        CHECK(leaked == 0);
    }
    if (L) oph_free(&Hs);
    loom_graph_free(g);
}

static void test_value_key_masks(void) {
    value_mask_case("cross, value mask", 2, 0);
    value_mask_case("cross, value mask, causal", 2, 1);
    value_mask_case("cross, value and key masks", 3, 0);
    /* right-padded values = the values cut to their length */
    enum { Tq = 3, Tv = 6, D = 4 };
    loom_graph *g = loom_graph_new(7);
    loom_layer *L = loom_multi_head_attention(g, NULL, 2, 3, 0, 1, 0);
    loom_shape full[2] = {{2, {Tq, D}}, {2, {Tv, D}}};
    op_harness Hf;
    CHECK_STATUS(oph_init(&Hf, L, 2, full, 1, 0, 3), LOOM_OK);
    int bad = 0;
    for (int len = 1; len < Tv; len++) {
        float vmask[Tv];
        for (int t = 0; t < Tv; t++) vmask[t] = t < len;
        Hf.in_masks[1] = vmask;
        oph_forward(&Hf);
        loom_shape cut[2] = {{2, {Tq, D}}, {2, {len, D}}};
        op_harness Hc;
        if (oph_init(&Hc, L, 2, cut, 1, 0, 3) == LOOM_OK) {
            memcpy(Hc.w, Hf.w, Hf.n_w * sizeof(float));
            memcpy(Hc.in[0], Hf.in[0], Hf.in_n[0] * sizeof(float));
            memcpy(Hc.in[1], Hf.in[1], Hc.in_n[1] * sizeof(float));
            oph_forward(&Hc);
            for (size_t i = 0; i < Hf.out_n; i++) bad += fabsf(Hf.out[i] - Hc.out[i]) > 1e-6f * (1 + fabsf(Hc.out[i]));
        } else {
            bad++;
        }
        oph_free(&Hc);
    }
    if (bad) fprintf(stderr, "  padded value vs cut value: %d outputs differ\n", bad);
    CHECK(bad == 0);
    oph_free(&Hf);
    loom_graph_free(g);
}

int main(void) {
    test_against_numpy();
    test_value_key_masks();
    test_gradients();
    test_aliased_gradients();
    test_model_gradients();
    test_shapes();
    test_errors();
    test_fit_and_save();
    (void)fixture_scalar;
    return check_report("test_attention");
}
