/* test_gemm_backends.c — the matrix-product backends of issue 18 (kernels/product.h): oneDNN's
 * float32 and bfloat16 matmul primitives against a float64 reference (on bfloat16-rounded inputs
 * for bfloat16), with transposes, leading dimensions, alpha and both betas; the table's choice;
 * a call of another shape falling back; and a model trained on each backend giving the same bits
 * twice for a seed and thread count. Without oneDNN it checks that everything plans on the default
 * backend and says so. */
#include "check.h"
#include "core/model.h"
#include "kernels/gemm_bf16.h"
#include "kernels/product.h"
#include "loom.h"

#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float uniform(float lo, float hi) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return lo + (hi - lo) * (float)((uint32_t)(rng >> 16) >> 8) / 16777216.0f;
}
static float bf(float x) { return loom_bf16_float(loom_bf16_round(x)); }
static uint32_t bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

typedef struct {
    bool ta, tb;
    int M, N, K;
    float alpha, beta;
} pcase;

/* One planned product on oneDNN against float64. The bound: float32 accumulation of K products
 * (each exact in float64 for bfloat16 inputs; within u for float32 ones) in any order is within
 * (K + 4) u of the sum of the magnitudes, plus alpha's and beta's roundings, plus K subnormal
 * flushes (FLT_MIN each: the bfloat16 instruction flushes a subnormal partial sum). */
static void check_product(bool bf16, const pcase *pc) {
    int lda = (pc->ta ? pc->M : pc->K) + 3, ldb = (pc->tb ? pc->K : pc->N) + 1, ldc = pc->N + 5;
    size_t na = (size_t)(pc->ta ? pc->K : pc->M) * lda, nb = (size_t)(pc->tb ? pc->N : pc->K) * ldb,
           nc = (size_t)pc->M * ldc;
    float *A = malloc(na * 4), *B = malloc(nb * 4), *C = malloc(nc * 4), *C0 = malloc(nc * 4), *C2 = malloc(nc * 4);
    for (size_t i = 0; i < na; i++) A[i] = uniform(-1, 1);
    for (size_t i = 0; i < nb; i++) B[i] = uniform(-1, 1);
    for (size_t i = 0; i < nc; i++) C0[i] = uniform(-1, 1);
    loom_product_shape s = {bf16, pc->ta, pc->tb, pc->M, pc->N, pc->K, lda, ldb, ldc, pc->alpha, -1, false};
    loom_product p;
    loom_product_force_backend(LOOM_BACKEND_DNNL);
    CHECK(loom_product_plan(&p, &s));
    loom_product_force_backend(-1);
    CHECK(strcmp(loom_product_backend_name(&p), "dnnl") == 0);
    size_t wsn = loom_product_workspace(&p) + loom_gemm_bf16_workspace(pc->M, pc->N, pc->K);
    float *ws = loom_floats_zeroed(wsn);
    memcpy(C, C0, nc * 4);
    loom_product_run(&p, bf16, pc->ta, pc->tb, pc->M, pc->N, pc->K, pc->alpha, A, lda, B, ldb, pc->beta, C, ldc, ws);
    const double u = 1.0 / 16777216.0;
    int bad = 0, untouched = 0;
    for (int i = 0; i < pc->M; i++) {
        for (int j = 0; j < pc->N; j++) {
            double sum = 0, mag = 0;
            for (int k = 0; k < pc->K; k++) {
                float a = pc->ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = pc->tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                double t = bf16 ? (double)bf(a) * bf(b) : (double)a * b;
                sum += t, mag += fabs(t);
            }
            double c0 = C0[(size_t)i * ldc + j];
            double want = pc->alpha * sum + pc->beta * c0;
            double tol = (pc->K + 4) * u * fabs(pc->alpha) * mag + 2 * u * fabs(pc->beta * c0) +
                         pc->K * (double)FLT_MIN;
            bad += !(fabs(C[(size_t)i * ldc + j] - want) <= tol);
        }
        for (int j = pc->N; j < ldc; j++) untouched += bits(C[(size_t)i * ldc + j]) == bits(C0[(size_t)i * ldc + j]);
    }
    CHECK(bad == 0);
    CHECK(untouched == pc->M * (ldc - pc->N)); /* the padding of each row of C is left alone */
    /* the same call twice, and at 2 threads twice: the same bits each time at a thread count */
    for (int t = 1; t <= 2; t++) {
        loom_set_num_threads(t);
        memcpy(C, C0, nc * 4), memcpy(C2, C0, nc * 4);
        loom_product_run(&p, bf16, pc->ta, pc->tb, pc->M, pc->N, pc->K, pc->alpha, A, lda, B, ldb, pc->beta, C, ldc, ws);
        loom_product_run(&p, bf16, pc->ta, pc->tb, pc->M, pc->N, pc->K, pc->alpha, A, lda, B, ldb, pc->beta, C2, ldc, ws);
        CHECK(memcmp(C, C2, nc * 4) == 0);
    }
    loom_set_num_threads(1);
    if (bad) fprintf(stderr, "  (%s ta=%d tb=%d %dx%dx%d alpha %g beta %g: %d bad)\n", bf16 ? "bf16" : "f32", pc->ta,
                     pc->tb, pc->M, pc->N, pc->K, pc->alpha, pc->beta, bad);
    loom_product_release(&p);
    loom_floats_free(ws);
    free(A), free(B), free(C), free(C0), free(C2);
}

static void test_products(void) {
    const pcase cases[] = {
        {false, false, 70, 66, 129, 1.0f, 0.0f}, {false, true, 67, 80, 65, 1.0f, 1.0f},
        {true, false, 96, 72, 64, -0.25f, 1.0f}, {true, false, 65, 64, 70, 0.1f, 0.0f},
        {false, false, 5, 3, 7, 1.0f, 1.0f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_product(false, &cases[i]);
        if (loom_bf16_hw()) check_product(true, &cases[i]);
    }
}

/* the table: oneDNN for mnist-mlp's square products (float32 at 1 thread only: from 2 threads
 * OpenBLAS on loom's threads is faster; bfloat16 at any count), never for tiny's or a thin one;
 * never a bfloat16 one on a CPU (or a build) without AVX512-BF16 */
static void test_table(void) {
    loom_product_shape mnist = {false, false, false, 128, 512, 784, 784, 512, 512, 1.0f, 0, false};
    loom_product_shape tiny = {false, false, false, 32, 64, 64, 64, 64, 64, 1.0f, 0, false};
    loom_product_shape thin = {false, false, false, 128, 10, 512, 512, 10, 10, 1.0f, 0, false};
    loom_set_num_threads(1);
    CHECK(loom_product_choose(&mnist) == (loom_dnnl_built() ? LOOM_BACKEND_DNNL : LOOM_BACKEND_DEFAULT));
    loom_set_num_threads(2);
    CHECK(loom_product_choose(&mnist) == LOOM_BACKEND_DEFAULT);
    mnist.bf16 = true;
    CHECK(loom_product_choose(&mnist) ==
          (loom_dnnl_built() && loom_bf16_hw() ? LOOM_BACKEND_DNNL : LOOM_BACKEND_DEFAULT));
    mnist.bf16 = false;
    loom_set_num_threads(1);
    CHECK(loom_product_choose(&tiny) == LOOM_BACKEND_DEFAULT);
    CHECK(loom_product_choose(&thin) == LOOM_BACKEND_DEFAULT);
    mnist.bf16 = true;
    CHECK(loom_product_choose(&mnist) ==
          (loom_dnnl_built() && loom_bf16_hw() ? LOOM_BACKEND_DNNL : LOOM_BACKEND_DEFAULT));
    bool was = loom_bf16_off;
    loom_bf16_off = true;
    CHECK(loom_product_choose(&mnist) == LOOM_BACKEND_DEFAULT);
    CHECK(loom_dnnl_matmul_create(true, false, false, 128, 512, 784, 784, 512, 512, 1.0f, false) == NULL);
    loom_bf16_off = was;
    /* a planned product called with another shape (the last, smaller batch) runs on the default */
    loom_product p;
    loom_product_force_backend(LOOM_BACKEND_DNNL);
    loom_product_shape s = {false, false, false, 64, 64, 64, 64, 64, 64, 1.0f, 0, false};
    CHECK(loom_product_plan(&p, &s));
    loom_product_force_backend(-1);
    static float A[64 * 64], B[64 * 64], C[64 * 64], R[64 * 64];
    for (int i = 0; i < 64 * 64; i++) A[i] = uniform(-1, 1), B[i] = uniform(-1, 1);
    loom_product_run(&p, false, false, false, 40, 64, 64, 1.0f, A, 64, B, 64, 0.0f, C, 64, NULL);
    loom_product_run(NULL, false, false, false, 40, 64, 64, 1.0f, A, 64, B, 64, 0.0f, R, 64, NULL);
    CHECK(memcmp(C, R, 40 * 64 * 4) == 0);
    loom_product_release(&p);
}

/* ---------------------------------------------------------------- a model on each backend */

enum { NS = 200, IN = 96, HID = 128, OUT = 10, BATCH = 64 };
static float xs[NS * IN], ys[NS * OUT];
static bool scheduled; /* train() with a loss-weight schedule: the steps run without SGD in the backward */

/* Trains a 96-128-64-10 MLP (two epochs, batch 64: the last batch of 8 takes the fallback) under
 * `policy` with `opt` on `backend` (-1: the table) at `threads`; returns the weights. */
static float *train(int backend, loom_dtype_policy policy, loom_optimizer opt, int threads, const char **names) {
    loom_set_num_threads(threads);
    loom_product_force_backend(backend);
    loom_graph *g = loom_graph_new(11);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){IN});
    loom_tensor *h = loom_call(loom_dense(g, "h", HID, LOOM_RELU, NULL), x);
    h = loom_call(loom_dense(g, "h2", 64, LOOM_TANH, NULL), h);
    loom_tensor *z = loom_call(loom_dense(g, "out", OUT, LOOM_LINEAR, NULL), h);
    loom_model *m = loom_model_new(g, 1, &x, 1, &z);
    loom_loss l = {.name = "mse"};
    loom_compile_config cfg = {.n_losses = 1, .losses = &l, .optimizer = opt, .dtype_policy = policy};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    if (scheduled) {
        loom_weight_schedule ws = {.kind = LOOM_WEIGHT_CONSTANT, .w0 = 1.0};
        CHECK_STATUS(loom_set_loss_weight_schedule(m, "out", &ws), LOOM_OK);
    }
    loom_array xa = {.name = "x", .data = xs, .n = NS, .count = NS * IN}, ya = {.data = ys, .n = NS, .count = NS * OUT};
    loom_data d = {.n_x = 1, .x = &xa, .n_y = 1, .y = &ya};
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = BATCH, fo.epochs = 2, fo.seed = 3;
    CHECK_STATUS(loom_fit(m, &d, &fo, NULL), LOOM_OK);
    size_t n = loom_param_count(m);
    float *w = malloc(n * sizeof *w);
    memcpy(w, loom_params(m), n * sizeof *w);
    if (names) /* the first hidden layer's forward product and the output layer's */
        names[0] = loom_product_backend_name(&m->order[1].products[0]),
        names[1] = loom_product_backend_name(&m->order[3].products[0]);
    loom_model_free(m);
    loom_product_force_backend(-1);
    loom_set_num_threads(1);
    return w;
}

static void test_models(void) {
    for (int i = 0; i < NS * IN; i++) xs[i] = uniform(-1, 1);
    for (int i = 0; i < NS * OUT; i++) ys[i] = uniform(-1, 1);
    size_t n = (size_t)IN * HID + HID + HID * 64 + 64 + 64 * OUT + OUT;
    const loom_dtype_policy policies[2] = {LOOM_POLICY_FLOAT32, LOOM_POLICY_MIXED_BFLOAT16};
    for (int pi = 0; pi < 2; pi++)
        for (int oi = 0; oi < 2; oi++) {
            loom_optimizer opt = oi ? loom_adam(0.01f) : loom_sgd(0.05f, 0, 0); /* SGD: dW's alpha is -lr */
            const char *names[2];
            float *ref = train(LOOM_BACKEND_DEFAULT, policies[pi], opt, 1, NULL);
            unsigned long runs = loom_dnnl_runs;
            float *a = train(LOOM_BACKEND_DNNL, policies[pi], opt, 1, names);
            /* 6 full batches x 8 products (the first layer makes no dx) on oneDNN, SGD's dW with
             * its alpha -lr too; the last batch of 8 on the default backend */
            bool dnnl = loom_dnnl_built() && (pi == 0 || loom_bf16_hw());
            CHECK(loom_dnnl_runs - runs == (dnnl ? 48u : 0u));
            float *b = train(LOOM_BACKEND_DNNL, policies[pi], opt, 1, NULL);
            float *a2 = train(LOOM_BACKEND_DNNL, policies[pi], opt, 2, NULL);
            float *b2 = train(LOOM_BACKEND_DNNL, policies[pi], opt, 2, NULL);
            CHECK(memcmp(a, b, n * 4) == 0);   /* same seed, same thread count: the same bits */
            CHECK(memcmp(a2, b2, n * 4) == 0);
            CHECK(memcmp(a, a2, n * 4) == 0); /* and at any thread count, as loom promises */
            CHECK(strcmp(names[0], dnnl ? "dnnl" : pi ? "loom" : "blas") == 0);
            CHECK(strcmp(names[1], pi ? "loom" : "blas") == 0 || dnnl); /* forced: oneDNN makes it too */
            /* against the default backend: the same training up to the order of float32 sums (and
             * of the bfloat16 roundings that order moves), which two epochs do not amplify much */
            double worst = 0;
            for (size_t i = 0; i < n; i++) {
                double e = fabs(a[i] - ref[i]) / (1e-2 + fabs(ref[i]));
                if (e > worst) worst = e;
            }
            CHECK(worst < (pi ? 5e-2 : 1e-3));
            printf("policy %d opt %d: oneDNN %s the default backend's bits, worst %.3g\n", pi, oi, memcmp(a, ref, n * 4) ? "differs from" : "equals", worst);
            free(ref), free(a), free(b), free(a2), free(b2);
        }
}

/* Steps that sum or rescale the gradients before the update (loss balancing, a weight schedule, a
 * distributed fit) run SGD after the backward: the dW products are planned for the alpha 1 they
 * are then called with, so all of them still run on oneDNN (they missed their plans, planned with
 * -lr, and fell back to the default backend). */
static void test_unfused_sgd_plans(void) {
    scheduled = true;
    unsigned long runs = loom_dnnl_runs;
    float *w = train(LOOM_BACKEND_DNNL, LOOM_POLICY_FLOAT32, loom_sgd(0.05f, 0, 0), 1, NULL);
    CHECK(loom_dnnl_runs - runs == (loom_dnnl_built() ? 48u : 0u));
    scheduled = false;
    free(w);
}

/* Conv2D and LSTM plan their large products too: on oneDNN (forced) their gradients match the
 * default backend's to float32 summation order (float32) or to the bfloat16 bound of
 * test_bf16_layers (0.02 of the norm), and oneDNN made their planned products. */
static void layer_grads(int backend, bool lstm, loom_dtype_policy policy, float *grad, size_t *n_out) {
    loom_product_force_backend(backend);
    loom_graph *g = loom_graph_new(31);
    loom_tensor *x = lstm ? loom_input(g, "x", 2, (int[]){6, 70}) : loom_input(g, "x", 3, (int[]){10, 10, 8});
    loom_rnn_options o = loom_rnn_defaults();
    o.return_sequences = 1;
    loom_layer *L = lstm ? loom_lstm(g, "l", 32, &o)
                         : loom_conv2d(g, "l", 64, 3, 3, 1, 1, LOOM_PADDING_SAME, 1, 1, LOOM_RELU, NULL);
    loom_tensor *y = loom_call(L, x);
    loom_model *m = loom_model_new(g, 1, &x, 1, &y);
    loom_loss l = {.name = "mse"};
    loom_compile_config cfg = {.n_losses = 1, .losses = &l, .optimizer = loom_adam(0.01f), .dtype_policy = policy};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    enum { NBS = 16 };
    size_t in_n = lstm ? 6 * 70 : 10 * 10 * 8, out_n = lstm ? 6 * 32 : 10 * 10 * 64;
    float *xs = malloc(NBS * in_n * 4), *ys = malloc(NBS * out_n * 4);
    for (size_t i = 0; i < NBS * in_n; i++) xs[i] = uniform(-1, 1);
    for (size_t i = 0; i < NBS * out_n; i++) ys[i] = uniform(-1, 1);
    loom_array xa = {.name = "x", .data = xs, .n = NBS, .count = NBS * in_n}, ya = {.data = ys, .n = NBS, .count = NBS * out_n};
    loom_data d = {.n_x = 1, .x = &xa, .n_y = 1, .y = &ya};
    *n_out = loom_param_count(m);
    CHECK_STATUS(loom_gradients(m, &d, 0, NULL, grad, NULL), LOOM_OK);
    free(xs), free(ys);
    loom_model_free(m);
    loom_product_force_backend(-1);
}

static void test_layers(void) {
    static float ref[80000], got[80000];
    for (int lstm = 0; lstm < 2; lstm++)
        for (int pi = 0; pi < 2; pi++) {
            loom_dtype_policy policy = pi ? LOOM_POLICY_MIXED_BFLOAT16 : LOOM_POLICY_FLOAT32;
            size_t n;
            uint64_t keep = rng;
            layer_grads(LOOM_BACKEND_DEFAULT, lstm, policy, ref, &n);
            CHECK(n <= 80000);
            rng = keep; /* the same data */
            unsigned long runs = loom_dnnl_runs;
            layer_grads(LOOM_BACKEND_DNNL, lstm, policy, got, &n);
            bool dnnl = loom_dnnl_built() && (pi == 0 || loom_bf16_hw());
            CHECK((loom_dnnl_runs > runs) == dnnl);
            double diff = 0, norm = 0;
            for (size_t i = 0; i < n; i++) diff += (double)(got[i] - ref[i]) * (got[i] - ref[i]), norm += (double)ref[i] * ref[i];
            printf("%s %s on oneDNN: %lu products, |diff| / |g| = %.2g\n", lstm ? "LSTM" : "Conv2D", pi ? "bf16" : "f32",
                   loom_dnnl_runs - runs, sqrt(diff / norm));
            CHECK(sqrt(diff / norm) <= (pi ? 0.02 : 1e-5));
        }
}

int main(void) {
    printf("oneDNN %s, AVX512-BF16 %s\n", loom_dnnl_built() ? "built in" : "not built in (LOOM_USE_DNNL off)",
           loom_bf16_hw() ? "used" : "not used");
    if (loom_dnnl_built()) test_products();
    test_table();
    test_models();
    test_unfused_sgd_plans();
    test_layers();
    return check_report("test_gemm_backends");
}
