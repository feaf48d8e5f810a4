/* test_bf16_layers.c — mixed_bfloat16 in Conv1D, Conv2D, SimpleRNN, LSTM and GRU (issue 18).
 *
 * Products against float64: the forward of Conv1D / Conv2D and of a linear SimpleRNN (its input
 * and recurrent products) is, per output, a float32 sum of products of bfloat16-rounded inputs
 * and weights, each exact in float32; so it must equal the float64 sum of those products to
 * (terms + 4) u of the sum of their magnitudes (u = 2^-24), whatever order the sums take.
 *
 * Gradients: a finite difference cannot check a bfloat16 model directly (its function steps at
 * every bfloat16 rounding boundary of a weight, 2^-8 relative apart). The float32 gradients of
 * these layers are checked by finite differences (test_conv, test_rnn); here the mixed_bfloat16
 * gradients must match the float32 ones within a bound from bfloat16's unit roundoff
 * ub = 2^-8: every product rounds both its inputs (2 ub per term), and a gradient goes through at
 * most the forward product, the chain of upstream gradient products (T = 4 steps of recurrence,
 * each one more rounding of dh) and its own weight product: 2 ub x (T + 3) = 14 ub ~ 0.055 worst
 * case on the magnitudes; with random signs the errors add as a random walk, about
 * ub x sqrt(2 (T + 3)) ~ 0.015 of the norm, and the bound checked is 0.02 of the gradient's norm
 * (measured: 0.0014-0.0028, printed), which a product off by one transposition, a lost beta or a
 * wrong workspace would exceed. They must also differ from
 * the float32 gradients (the bfloat16 path ran). Keras on the same layer differs from loom by the
 * same order (it rounds the activations too).
 *
 * The fallback: with loom_bf16_off (what LOOM_IGNORE_AVX512BF16 does, in a build or in the
 * environment) the gradients must be the same bits, and compile's note must say why. CMake runs
 * this test a second time with LOOM_IGNORE_AVX512BF16=1 in the environment. */
#include "check.h"
#include "core/model.h"
#include "kernels/gemm_bf16.h"
#include "loom.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static float uniform(float lo, float hi) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return lo + (hi - lo) * (float)((uint32_t)(rng >> 16) >> 8) / 16777216.0f;
}
static float bf(float x) { return loom_bf16_float(loom_bf16_round(x)); }
static const double u = 1.0 / 16777216.0;

enum { NB = 5 };

static void randomize(loom_model *m) {
    size_t n = loom_param_count(m);
    float *p = loom_params(m);
    for (size_t i = 0; i < n; i++) p[i] = uniform(-0.6f, 0.6f);
}

static loom_status compile_policy(loom_model *m, loom_dtype_policy p) {
    loom_loss l = {.name = "mse"};
    loom_compile_config cfg = {.n_losses = 1, .losses = &l, .optimizer = loom_sgd(0.1f, 0, 0), .dtype_policy = p};
    return loom_compile(m, &cfg);
}

/* ---------------------------------------------------------------- forward against float64 */

static void test_conv2d_forward(void) {
    enum { H = 6, W = 7, C = 3, F = 4, KH = 3, KW = 2, OH = H - KH + 1, OW = W - KW + 1 };
    loom_graph *g = loom_graph_new(5);
    loom_tensor *x = loom_input(g, "x", 3, (int[]){H, W, C});
    loom_tensor *y = loom_call(loom_conv2d(g, "c", F, KH, KW, 1, 1, LOOM_PADDING_VALID, 1, 1, LOOM_LINEAR, NULL), x);
    loom_model *m = loom_model_new(g, 1, &x, 1, &y);
    CHECK_STATUS(compile_policy(m, LOOM_POLICY_MIXED_BFLOAT16), LOOM_OK);
    randomize(m);
    static float xs[NB * H * W * C], out[NB * OH * OW * F];
    for (int i = 0; i < NB * H * W * C; i++) xs[i] = uniform(-1, 1);
    loom_array xa = {.name = "x", .data = xs, .n = NB, .count = NB * H * W * C};
    CHECK_STATUS(loom_predict(m, 1, &xa, NB, (float *const[]){out}), LOOM_OK);
    const float *k = loom_params(m), *b = k + KH * KW * C * F;
    int bad = 0;
    for (int n = 0; n < NB; n++)
        for (int i = 0; i < OH; i++)
            for (int j = 0; j < OW; j++)
                for (int f = 0; f < F; f++) {
                    double s = b[f], mag = fabs(b[f]);
                    for (int di = 0; di < KH; di++)
                        for (int dj = 0; dj < KW; dj++)
                            for (int c = 0; c < C; c++) {
                                double t = (double)bf(xs[((n * H + i + di) * W + j + dj) * C + c]) *
                                           bf(k[((di * KW + dj) * C + c) * F + f]);
                                s += t, mag += fabs(t);
                            }
                    bad += !(fabs(out[((n * OH + i) * OW + j) * F + f] - s) <= (KH * KW * C + 5) * u * mag);
                }
    CHECK(bad == 0);
    loom_model_free(m);
}

static void test_conv1d_forward(void) {
    enum { T = 9, C = 5, F = 6, KS = 3, OT = T - KS + 1 };
    loom_graph *g = loom_graph_new(6);
    loom_tensor *x = loom_input(g, "x", 2, (int[]){T, C});
    loom_tensor *y = loom_call(loom_conv1d(g, "c", F, KS, 1, LOOM_PADDING_VALID, 1, LOOM_LINEAR, NULL), x);
    loom_model *m = loom_model_new(g, 1, &x, 1, &y);
    CHECK_STATUS(compile_policy(m, LOOM_POLICY_MIXED_BFLOAT16), LOOM_OK);
    randomize(m);
    static float xs[NB * T * C], out[NB * OT * F];
    for (int i = 0; i < NB * T * C; i++) xs[i] = uniform(-1, 1);
    loom_array xa = {.name = "x", .data = xs, .n = NB, .count = NB * T * C};
    CHECK_STATUS(loom_predict(m, 1, &xa, NB, (float *const[]){out}), LOOM_OK);
    const float *k = loom_params(m), *b = k + KS * C * F;
    int bad = 0;
    for (int n = 0; n < NB; n++)
        for (int t = 0; t < OT; t++)
            for (int f = 0; f < F; f++) {
                double s = b[f], mag = fabs(b[f]);
                for (int d = 0; d < KS; d++)
                    for (int c = 0; c < C; c++) {
                        double p = (double)bf(xs[(n * T + t + d) * C + c]) * bf(k[(d * C + c) * F + f]);
                        s += p, mag += fabs(p);
                    }
                bad += !(fabs(out[(n * OT + t) * F + f] - s) <= (KS * C + 5) * u * mag);
            }
    CHECK(bad == 0);
    loom_model_free(m);
}

/* A linear SimpleRNN over 3 steps, sequences returned: h_t = x_t W + h_{t-1} U + b with both
 * products in bfloat16; each step against float64 from loom's own h_{t-1} (a float32 output). */
static void test_simple_rnn_forward(void) {
    enum { T = 3, F = 7, U = 6 };
    loom_graph *g = loom_graph_new(8);
    loom_tensor *x = loom_input(g, "x", 2, (int[]){T, F});
    loom_rnn_options o = loom_rnn_defaults();
    o.activation = LOOM_LINEAR, o.return_sequences = 1;
    loom_tensor *y = loom_call(loom_simple_rnn(g, "r", U, &o), x);
    loom_model *m = loom_model_new(g, 1, &x, 1, &y);
    CHECK_STATUS(compile_policy(m, LOOM_POLICY_MIXED_BFLOAT16), LOOM_OK);
    randomize(m);
    static float xs[NB * T * F], out[NB * T * U];
    for (int i = 0; i < NB * T * F; i++) xs[i] = uniform(-1, 1);
    loom_array xa = {.name = "x", .data = xs, .n = NB, .count = NB * T * F};
    CHECK_STATUS(loom_predict(m, 1, &xa, NB, (float *const[]){out}), LOOM_OK);
    const float *W = loom_params(m), *R = W + F * U, *b = R + U * U;
    int bad = 0;
    for (int n = 0; n < NB; n++)
        for (int t = 0; t < T; t++)
            for (int j = 0; j < U; j++) {
                double s = b[j], mag = fabs(b[j]);
                for (int f = 0; f < F; f++) {
                    double p = (double)bf(xs[(n * T + t) * F + f]) * bf(W[f * U + j]);
                    s += p, mag += fabs(p);
                }
                for (int i = 0; i < U && t > 0; i++) {
                    double p = (double)bf(out[(n * T + t - 1) * U + i]) * bf(R[i * U + j]);
                    s += p, mag += fabs(p);
                }
                /* two float32 sums (input side with the bias, recurrent side) then their sum */
                bad += !(fabs(out[(n * T + t) * U + j] - s) <= (F + U + 6) * u * mag);
            }
    CHECK(bad == 0);
    loom_model_free(m);
}

/* ---------------------------------------------------------------- gradients */

enum { CONV1D, CONV2D, SIMPLE, LSTM, GRU, N_KINDS };
static const char *kind_names[N_KINDS] = {"Conv1D", "Conv2D", "SimpleRNN", "LSTM", "GRU"};

/* x -> Dense (float32 per layer: the layer's dx is checked through its gradient) -> the layer */
static void check_gradients(int kind) {
    loom_graph *g = loom_graph_new(21 + (uint64_t)kind);
    int T = 4, F = 5;
    loom_tensor *x = kind == CONV2D ? loom_input(g, "x", 3, (int[]){4, 5, 3}) : loom_input(g, "x", 2, (int[]){T, F});
    loom_layer *pre = loom_dense(g, "pre", kind == CONV2D ? 3 : F, LOOM_TANH, NULL);
    loom_layer_set_dtype_policy(pre, LOOM_POLICY_FLOAT32);
    loom_tensor *h = loom_call(pre, x);
    loom_rnn_options o = loom_rnn_defaults();
    o.return_sequences = 1;
    loom_layer *L = kind == CONV1D   ? loom_conv1d(g, "l", 6, 3, 1, LOOM_PADDING_SAME, 1, LOOM_TANH, NULL)
                    : kind == CONV2D ? loom_conv2d(g, "l", 4, 3, 3, 1, 1, LOOM_PADDING_SAME, 1, 1, LOOM_TANH, NULL)
                    : kind == SIMPLE ? loom_simple_rnn(g, "l", 6, &o)
                    : kind == LSTM   ? loom_lstm(g, "l", 6, &o)
                                     : loom_gru(g, "l", 6, &o);
    loom_tensor *y = loom_call(L, h);
    loom_model *m = loom_model_new(g, 1, &x, 1, &y);
    CHECK(m != NULL);
    if (!m) return;
    CHECK_STATUS(compile_policy(m, LOOM_POLICY_FLOAT32), LOOM_OK);
    randomize(m);
    size_t in_n = kind == CONV2D ? 4 * 5 * 3 : (size_t)T * F;
    size_t out_n = kind == CONV2D ? 4 * 5 * 4 : (size_t)T * 6;
    float *xs = malloc(NB * in_n * 4), *ys = malloc(NB * out_n * 4);
    for (size_t i = 0; i < NB * in_n; i++) xs[i] = uniform(-1, 1);
    for (size_t i = 0; i < NB * out_n; i++) ys[i] = uniform(-1, 1);
    loom_array xa = {.name = "x", .data = xs, .n = NB, .count = NB * in_n}, ya = {.data = ys, .n = NB, .count = NB * out_n};
    loom_data d = {.n_x = 1, .x = &xa, .n_y = 1, .y = &ya};
    size_t n = loom_param_count(m);
    float *g32 = malloc(n * 4), *gbf = malloc(n * 4);
    CHECK_STATUS(loom_gradients(m, &d, 0, NULL, g32, NULL), LOOM_OK);
    CHECK_STATUS(compile_policy(m, LOOM_POLICY_MIXED_BFLOAT16), LOOM_OK);
    CHECK(m->order[2].bf16 && !m->order[1].bf16); /* the layer in bfloat16, the Dense kept float32 */
    CHECK_STATUS(loom_gradients(m, &d, 0, NULL, gbf, NULL), LOOM_OK);
    double diff = 0, norm = 0;
    for (size_t i = 0; i < n; i++) diff += (double)(gbf[i] - g32[i]) * (gbf[i] - g32[i]), norm += (double)g32[i] * g32[i];
    double ratio = sqrt(diff / norm);
    printf("%-9s mixed_bfloat16 gradients vs float32: |diff| / |g| = %.4f (bound 0.02)\n", kind_names[kind], ratio);
    CHECK(ratio <= 0.02);
    CHECK(ratio > 0); /* the bfloat16 products ran */
    /* a CPU without AVX512-BF16 (or told to ignore it): the same bits, and compile says why it is
     * not faster */
    bool was = loom_bf16_off;
    loom_bf16_off = true;
    float *goff = malloc(n * 4);
    CHECK_STATUS(compile_policy(m, LOOM_POLICY_MIXED_BFLOAT16), LOOM_OK);
    CHECK(strstr(loom_model_compile_note(m), "no AVX512-BF16 instructions") != NULL);
    CHECK_STATUS(loom_gradients(m, &d, 0, NULL, goff, NULL), LOOM_OK);
    CHECK(memcmp(goff, gbf, n * 4) == 0);
    free(goff);
    loom_bf16_off = was;
    /* the float32 Dense's gradient too (it sees the layer's dx) */
    double dd = 0, dn = 0;
    size_t pre_n = (size_t)(kind == CONV2D ? 3 * 3 + 3 : F * F + F);
    for (size_t i = 0; i < pre_n; i++) dd += (double)(gbf[i] - g32[i]) * (gbf[i] - g32[i]), dn += (double)g32[i] * g32[i];
    CHECK(sqrt(dd / dn) <= 0.02 && dd > 0);
    free(xs), free(ys), free(g32), free(gbf);
    loom_model_free(m);
}

int main(void) {
    printf("AVX512-BF16 %s%s\n", loom_bf16_hw() ? "used" : "not used (the portable loops, the same numbers)",
           loom_bf16_cpu() && loom_bf16_ignored() ? ": ignored (LOOM_IGNORE_AVX512BF16)" : "");
    if (getenv("LOOM_IGNORE_AVX512BF16")) CHECK(!loom_bf16_hw()); /* the environment is obeyed */
    test_conv2d_forward();
    test_conv1d_forward();
    test_simple_rnn_forward();
    for (int k = 0; k < N_KINDS; k++) check_gradients(k);
    return check_report("test_bf16_layers");
}
