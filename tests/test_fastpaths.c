/* test_fastpaths.c — the fast paths give the plain path's results: OpenBLAS against the portable
 * product on every transpose case; the fused softmax + crossentropy against the logits form; any
 * thread count gives the same bits (products are cut into blocks by shape, src/kernels/gemm.c, and loom's
 * own loops split only independent outputs, src/kernels/parallel.c). */
#include "kernels/product.h"
#include "check.h"
#include "graph/graph.h"
#include "ops/activations.h"
#include "ops/losses.h"
#include "ops/metrics.h"
#include "ops/init.h"
#include "optim/optim.h"
#include "kernels/gemm.h"
#include "core/model.h"
#include "kernels/parallel.h"
#include "kernels/avx512.h"

#include <loom.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* The matrix product is the portable one when it agreed with loom_sgemm_portable to the bit on
 * every case of gemm_cases (OpenBLAS sums the larger ones in another order). The tests cannot see
 * the build's LOOM_HAVE_CBLAS, which is private to the library. */
static bool gemm_is_portable = true;

static float frand(void) { return (float)rand() / RAND_MAX * 2 - 1; }

/* Every transpose case, beta 1, 0 (C's old contents, NaN here, must not show) and 0.5, C tight and
 * with a padded row stride. The shapes reach every path of loom_sgemm below the blocked one: plain,
 * small with B transposed, narrow weight gradients (A^T . B with N < 16, N = 1 included), edges. */
static void gemm_cases(void) {
    const int shapes[][3] = {{1, 1, 1},    {3, 5, 7},   {32, 64, 16}, {17, 1, 33},  {9, 20, 1},  {32, 64, 64},
                             {40, 70, 50}, {128, 96, 200}, {64, 10, 32}, {64, 1, 32}, {37, 13, 5}, {16, 15, 40},
                             {130, 8, 24}};
    const float betas[] = {1.0f, 0.0f, 0.5f};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int bi = 0; bi < 3; bi++)
                    for (int pad = 0; pad < 2; pad++) {
                        int ldc = N + 3 * pad;
                        float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
                        float *C1 = malloc(sizeof(float) * M * ldc), *C2 = malloc(sizeof(float) * M * ldc);
                        for (int i = 0; i < M * K; i++) A[i] = frand();
                        for (int i = 0; i < K * N; i++) B[i] = frand();
                        for (int i = 0; i < M * ldc; i++) C1[i] = C2[i] = betas[bi] == 0.0f ? NAN : frand();
                        int lda = ta ? M : K, ldb = tb ? K : N;
                        loom_sgemm(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, betas[bi], C1, ldc);
                        loom_sgemm_portable(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, betas[bi], C2, ldc);
                        double worst = 0;
                        for (int i = 0; i < M; i++)
                            for (int j = 0; j < N; j++) {
                                double d = fabs((double)C1[i * ldc + j] - C2[i * ldc + j]);
                                worst = d > worst || d != d ? d : worst; /* a NaN stays the worst */
                                if (memcmp(&C1[i * ldc + j], &C2[i * ldc + j], sizeof(float)) != 0)
                                    gemm_is_portable = false;
                            }
                        CHECK(worst <= 1e-5 * K + 1e-6); /* float32 sums of K terms of size <= 1 */
                        for (int i = 0; i < M; i++) /* the padding is not C's */
                            for (int j = N; j < ldc; j++) CHECK(memcmp(&C1[i * ldc + j], &C2[i * ldc + j], 4) == 0);
                        free(A), free(B), free(C1), free(C2);
                    }
    }
}

/* in(6) -> Dense 5 tanh -> Dense 4 (softmax + cce: fused) vs (linear + cce from_logits). */
static loom_model *head_model(loom_activation act, int from_logits) {
    loom_graph *g = loom_graph_new(3);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){6});
    loom_tensor *h = loom_call(loom_dense(g, "A", 5, LOOM_TANH, NULL), x);
    loom_tensor *y = loom_call(loom_dense(g, "C", 4, act, NULL), h);
    loom_model *m = loom_model_new(g, 1, &x, 1, &y);
    loom_loss l = {.name = "categorical_crossentropy", .from_logits = from_logits};
    loom_compile_config cfg = {.n_losses = 1, .losses = &l, .optimizer = loom_sgd(0.1f, 0, 0)};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    return m;
}

static void fused_softmax(void) {
    loom_model *fused = head_model(LOOM_SOFTMAX, 0), *logits = head_model(LOOM_LINEAR, 1);
    float x[10 * 6], t[10 * 4] = {0};
    for (int i = 0; i < 60; i++) x[i] = frand();
    for (int i = 0; i < 10; i++) t[i * 4 + i % 4] = 1;
    loom_array xa = {.name = "x", .data = x, .n = 10, .count = 10 * 6}, ya = {.name = "C", .data = t, .n = 10, .count = 10 * 4};
    loom_data d = {1, &xa, 1, &ya, 0, NULL};
    size_t n = loom_param_count(fused);
    float *g1 = malloc(n * sizeof *g1), *g2 = malloc(n * sizeof *g2), l1, l2;
    CHECK_STATUS(loom_gradients(fused, &d, 0, NULL, g1, &l1), LOOM_OK);
    CHECK_STATUS(loom_gradients(logits, &d, 0, NULL, g2, &l2), LOOM_OK);
    CHECK_CLOSE(l1, l2, 1e-6, 1e-6);
    for (size_t i = 0; i < n; i++) CHECK_CLOSE(g1[i], g2[i], 1e-6, 1e-5);
    free(g1), free(g2);
    loom_model_free(fused), loom_model_free(logits);
}

/* The softmax's own vectorised exponential (src/ops/activations.c) against a double-precision
 * softmax: within a few float roundings for every row length, over logits spread far enough
 * that some probabilities underflow; the largest gives the row's log-sum-exp as the fused
 * crossentropy computes it (max - log p_argmax); -inf gives 0 and NaN stays NaN. */
static void softmax_exp(void) {
    enum { ROWS = 7, MAXDIM = 40 };
    float x[ROWS * MAXDIM], y[ROWS * MAXDIM];
    for (int dim = 1; dim <= MAXDIM; dim += 3) {
        for (int i = 0; i < ROWS * dim; i++) x[i] = frand() * (float)(i % 3 == 0 ? 60 : 5);
        if (dim > 1) x[dim] = -INFINITY; /* in row 1 */
        loom_act_forward(LOOM_SOFTMAX, x, y, ROWS, dim);
        for (int r = 0; r < ROWS; r++) {
            const float *xr = x + r * dim, *yr = y + r * dim;
            float mx = xr[0];
            for (int j = 1; j < dim; j++) mx = fmaxf(mx, xr[j]);
            /* the shift is a float subtraction in any float softmax: the reference starts from it */
            double sum = 0;
            for (int j = 0; j < dim; j++) sum += exp((double)(xr[j] - mx));
            int a = 0;
            for (int j = 0; j < dim; j++) {
                double want = exp((double)(xr[j] - mx)) / sum;
                CHECK(fabs(yr[j] - want) <= 6e-7 * want + 1e-37);
                if (xr[j] > xr[a]) a = j;
            }
            if (r == 1 && dim > 1) CHECK(yr[0] == 0.0f);
            double total = 0;
            for (int j = 0; j < dim; j++) total += yr[j];
            CHECK(fabs(total - 1.0) <= 1e-6);
            /* what the fused loss computes from it: log-sum-exp = max - log(p_argmax) */
            CHECK(fabs((xr[a] - log(yr[a])) - (mx + log(sum))) <= 1e-6 * (1 + fabs(mx)));
        }
    }
    x[2] = NAN;
    loom_act_forward(LOOM_SOFTMAX, x, y, 1, 4);
    for (int j = 0; j < 4; j++) CHECK(isnan(y[j]));
}

/* The AVX-512 paths (src/avx512.h) against the scalar ones, to the bit. The softmax and the fused
 * crossentropy, 16 rows at a time: every row length up to 16, whole and partial blocks of rows,
 * one-hot and probability targets, label smoothing and sample weights. */
static void avx512_softmax_paths(void) {
    enum { MAXR = 37, MAXD = 16 };
    const int row_counts[] = {1, 15, 16, 17, MAXR};
    static float x[MAXR * MAXD], t[MAXR * MAXD], sw[MAXR], y[2][MAXR * MAXD], v[2][MAXR], g[2][MAXR * MAXD];
    for (int dim = 1; dim <= MAXD; dim++)
        for (size_t c = 0; c < sizeof row_counts / sizeof row_counts[0]; c++) {
            int rows = row_counts[c], variant = (dim + (int)c) % 4;
            for (int i = 0; i < rows * dim; i++) x[i] = frand() * 8;
            for (int r = 0; r < rows; r++) {
                sw[r] = frand() + 1;
                float sum = 0;
                for (int j = 0; j < dim; j++) sum += t[r * dim + j] = variant & 1 ? frand() + 1 : j == r % dim;
                for (int j = 0; j < dim; j++) t[r * dim + j] /= sum;
            }
            loom_loss spec = {.name = "categorical_crossentropy", .label_smoothing = variant & 2 ? 0.1f : 0.0f};
            loom_loss_impl l;
            loom_error err;
            CHECK_STATUS(loom_loss_resolve(&spec, &l, &err), LOOM_OK);
            float loss[2];
            for (int scalar = 0; scalar < 2; scalar++) {
                loom_avx512_off = scalar;
                loom_act_forward(LOOM_SOFTMAX, x, y[scalar], (size_t)rows, dim);
                const float *w = variant == 3 ? sw : NULL;
                CHECK_STATUS(loom_loss_compute(&l, t, x, y[scalar], (size_t)rows, dim, 1, w, true, v[scalar], g[scalar],
                                               &loss[scalar], &err),
                             LOOM_OK);
            }
            loom_avx512_off = false;
            CHECK(memcmp(y[0], y[1], sizeof(float) * (size_t)(rows * dim)) == 0);
            CHECK(memcmp(v[0], v[1], sizeof(float) * (size_t)rows) == 0);
            CHECK(memcmp(g[0], g[1], sizeof(float) * (size_t)(rows * dim)) == 0);
            CHECK(memcmp(&loss[0], &loss[1], sizeof(float)) == 0);
            CHECK(isfinite(loss[0]));
        }
}

/* The turned operands of small products (16 x 16 tiles), the narrow-product kernel, and the bias
 * sums with and without ReLU's backward, over whole and partial tiles and blocks of 64 columns. */
static void avx512_matrix_paths(void) {
    const int shapes[][3] = {{32, 64, 64}, {32, 64, 10}, {64, 10, 32}, {17, 33, 5}, {40, 13, 70}, {64, 1, 32}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int beta = 0; beta < 2; beta++) {
                    int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], lda = ta ? M : K, ldb = tb ? K : N;
                    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
                    float *C[2] = {malloc(sizeof(float) * M * N), malloc(sizeof(float) * M * N)};
                    for (int i = 0; i < M * K; i++) A[i] = frand();
                    for (int i = 0; i < K * N; i++) B[i] = frand();
                    for (int i = 0; i < M * N; i++) C[0][i] = C[1][i] = frand();
                    for (int scalar = 0; scalar < 2; scalar++) {
                        loom_avx512_off = scalar;
                        loom_sgemm(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, (float)beta, C[scalar], N);
                    }
                    loom_avx512_off = false;
                    /* narrow products with A untransposed (B turned first where it is transposed)
                     * have a kernel of their own, with its own order of sums; the other cases only
                     * turn an operand for OpenBLAS: the same bits */
                    if (!ta && N >= 9 && N < 16 && M >= 16)
                        for (int i = 0; i < M * N; i++) CHECK_CLOSE(C[0][i], C[1][i], 1e-5 * K, 1e-5);
                    else
                        CHECK(memcmp(C[0], C[1], sizeof(float) * M * N) == 0);
                    free(A), free(B), free(C[0]), free(C[1]);
                }
    const int cols[] = {1, 10, 63, 64, 65, 130, 300};
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++)
        for (int relu = 0; relu < 2; relu++) {
            enum { ROWS = 33 };
            bool accumulate = (c + relu) % 2; /* else db's old contents (NaN here) must not show */
            int n = cols[c];
            float *y = malloc(sizeof(float) * ROWS * n), *dz[3], db[2][300];
            for (int k = 0; k < 3; k++) dz[k] = malloc(sizeof(float) * ROWS * n);
            for (int i = 0; i < ROWS * n; i++) y[i] = i % 7 ? frand() : 0.0f, dz[0][i] = dz[1][i] = dz[2][i] = frand();
            y[0] = NAN;
            for (int i = 0; i < n; i++) db[0][i] = db[1][i] = accumulate ? frand() : NAN;
            for (int scalar = 0; scalar < 2; scalar++) {
                loom_avx512_off = scalar;
                loom_column_sums(db[scalar], accumulate, -0.25f, dz[scalar], relu ? y : NULL, ROWS, n, n);
            }
            loom_avx512_off = false;
            CHECK(memcmp(db[0], db[1], sizeof(float) * n) == 0);
            for (int i = 0; i < n; i++) CHECK(isfinite(db[0][i]));
            CHECK(memcmp(dz[0], dz[1], sizeof(float) * ROWS * n) == 0);
            for (int i = 0; i < ROWS * n; i++) CHECK(dz[0][i] == (!relu || y[i] > 0 ? dz[2][i] : 0.0f));
            free(y), free(dz[0]), free(dz[1]), free(dz[2]);
        }
}

/* Random two-head data: inputs in [-1, 1], one-hot classes, regression targets in [-1, 1]. */
static void two_head_data(float *xs, int n_in, float *yc, int classes, float *yd, int n) {
    memset(yc, 0, sizeof(float) * (size_t)n * classes);
    for (int i = 0; i < n * n_in; i++) xs[i] = frand();
    for (int i = 0; i < n; i++) {
        yc[i * classes + rand() % classes] = 1;
        yd[i] = frand();
    }
}

/* Two epochs of fit on that data (input "x", outputs "C" and "D"). */
static loom_status fit_two_heads(loom_model *m, float *xs, float *yc, float *yd, int n, int batch, uint64_t seed) {
    loom_array xa = {.name = "x", .data = xs, .n = (size_t)n, .count = (size_t)n * loom_model_input_size(m, 0)}, ys[] = {{.name = "C", .data = yc, .n = (size_t)n, .count = (size_t)n * loom_model_target_size(m, loom_model_output_index(m, "C"))}, {.name = "D", .data = yd, .n = (size_t)n, .count = (size_t)n * loom_model_target_size(m, loom_model_output_index(m, "D"))}};
    loom_data data = {1, &xa, 2, ys, 0, NULL};
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = batch;
    fo.epochs = 2;
    fo.seed = seed;
    return loom_fit(m, &data, &fo, NULL);
}

/* Big enough for loom_sgemm to cut every product of the step into blocks (src/kernels/gemm.c), and for
 * the gather to split a batch between threads (src/core/engine.c). */
enum { IN = 1024, MAX_PARAMS = 1 << 20 };
static void train_with_threads(int threads, loom_optimizer opt, float *out, size_t *n_out) {
    CHECK_STATUS(loom_set_num_threads(threads), LOOM_OK);
    loom_graph *g = loom_graph_new(8);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){IN});
    loom_tensor *a = loom_call(loom_dense(g, "A", 512, LOOM_RELU, NULL), x);
    loom_tensor *b = loom_call(loom_dense(g, "B", 512, LOOM_RELU, NULL), a);
    loom_tensor *c = loom_call(loom_dense(g, "C", 10, LOOM_SOFTMAX, NULL), b);
    loom_tensor *d = loom_call(loom_dense(g, "D", 1, LOOM_LINEAR, NULL), b);
    loom_model *m = loom_model_new(g, 1, &x, 2, (loom_tensor *[]){c, d});
    loom_loss l[] = {{.name = "categorical_crossentropy"}, {.name = "mse"}};
    float w[] = {0.5f, 0.3f};
    loom_compile_config cfg = {.n_losses = 2, .losses = l, .n_loss_weights = 2, .loss_weights = w,
                               .optimizer = opt};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    enum { N = 512 };
    static float xs[N * IN], yc[N * 10], yd[N];
    srand(42);
    two_head_data(xs, IN, yc, 10, yd, N);
    CHECK_STATUS(fit_two_heads(m, xs, yc, yd, N, 128, 1), LOOM_OK);
    *n_out = loom_param_count(m);
    memcpy(out, loom_params(m), *n_out * sizeof(float));
    loom_model_free(m);
}

/* 1, 2 and 3 threads train to the same bits on loom's own products (OpenBLAS or the portable
 * loops cut into blocks by shape), in every build: with Adam, and with plain SGD, whose update
 * runs inside the backward (compile.c). With oneDNN built, a float32 plan at 1 thread runs its big
 * products there (kernels/product.c), so only the same thread count promises the same bits. */
static void threads(void) {
    static float p1[MAX_PARAMS], p2[MAX_PARAMS], p3[MAX_PARAMS];
    loom_product_force_backend(LOOM_BACKEND_DEFAULT);
    const loom_optimizer opts[] = {loom_adam(0.001f), loom_sgd(0.01f, 0, 0)};
    for (int o = 0; o < 2; o++) {
        size_t n1, n2, n3;
        train_with_threads(2, opts[o], p1, &n1);
        train_with_threads(1, opts[o], p2, &n2);
        train_with_threads(3, opts[o], p3, &n3);
        CHECK(n1 == n2 && n1 == n3 && n1 < MAX_PARAMS);
        CHECK(memcmp(p1, p2, n1 * sizeof(float)) == 0);
        CHECK(memcmp(p1, p3, n1 * sizeof(float)) == 0);
    }
    loom_product_force_backend(-1);
    CHECK(loom_get_num_threads() == 3);
    CHECK_STATUS(loom_set_num_threads(0), LOOM_ERR_ARGUMENT);
    CHECK_STATUS(loom_set_num_threads(1), LOOM_OK);
    CHECK(loom_get_num_threads() == 1);
}

/* Plain SGD updates a Dense layer inside its backward (compile.c) when the layer is called once and
 * unregularised; a shared layer, a regularised one and a non-Dense one go through the gradient
 * buffer and the optimizer. Both routes in one model against the gradient buffer for all: the same
 * weights after two epochs, to float32 rounding. */
static loom_model *mixed_sgd_model(void) {
    loom_graph *g = loom_graph_new(5);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){12});
    loom_tensor *a = loom_call(loom_dense(g, "A", 16, LOOM_RELU, NULL), x);
    loom_layer *shared = loom_dense(g, "S", 16, LOOM_TANH, NULL);
    loom_tensor *s = loom_call(shared, loom_call(shared, a));
    loom_dense_options ro = loom_dense_defaults();
    ro.kernel_regularizer.l2 = 0.01f;
    loom_tensor *r = loom_call(loom_dense(g, "R", 8, LOOM_ELU, &ro), s);
    loom_tensor *n = loom_call(loom_layer_normalization(g, "N", 1e-3f, 1, 1), r);
    loom_dense_options nb = loom_dense_defaults();
    nb.use_bias = 0;
    loom_tensor *c = loom_call(loom_dense(g, "C", 5, LOOM_SOFTMAX, NULL), n);
    loom_tensor *d = loom_call(loom_dense(g, "D", 1, LOOM_LINEAR, &nb), a);
    loom_model *m = loom_model_new(g, 1, &x, 2, (loom_tensor *[]){c, d});
    loom_loss l[] = {{.name = "categorical_crossentropy"}, {.name = "mse"}};
    float w[] = {0.7f, 0.4f};
    loom_compile_config cfg = {.n_losses = 2, .losses = l, .n_loss_weights = 2, .loss_weights = w,
                               .optimizer = loom_sgd(0.05f, 0, 0)};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    return m;
}

static void sgd_in_backward(void) {
    loom_model *in_backward = mixed_sgd_model(), *buffered = mixed_sgd_model();
    buffered->sgd_in_backward = false;
    /* which layers take the route: A, C and D; not S (shared), R (regularised) nor N (not Dense) */
    const char *routed = "ACD";
    for (int t = 0; t < in_backward->n_tensors; t++) {
        const char *name = in_backward->tensors[t].layer->name;
        CHECK(in_backward->t_sgd_update[t] == (strlen(name) == 1 && strchr(routed, name[0]) != NULL));
    }
    enum { N = 96 };
    static float xs[N * 12], yc[N * 5], yd[N];
    two_head_data(xs, 12, yc, 5, yd, N);
    const float *p1 = loom_params(in_backward), *p2 = loom_params(buffered);
    size_t n = loom_param_count(in_backward);
    float *before = malloc(n * sizeof *before);
    memcpy(before, p1, n * sizeof *before);
    CHECK(memcmp(p1, p2, n * sizeof *p1) == 0);
    CHECK_STATUS(fit_two_heads(in_backward, xs, yc, yd, N, 16, 3), LOOM_OK);
    CHECK_STATUS(fit_two_heads(buffered, xs, yc, yd, N, 16, 3), LOOM_OK);
    double moved = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK_CLOSE(p1[i], p2[i], 1e-6, 1e-5);
        moved = fmax(moved, fabs((double)p1[i] - before[i]));
    }
    CHECK(moved > 1e-3); /* it trained */
    free(before);
    loom_model_free(in_backward);
    loom_model_free(buffered);
}

/* The blocked product itself: every transpose case, shapes that split by rows, by columns and
 * with a ragged last block, at 1, 2 and 3 threads: the same bits, and the portable product's
 * values to float32 rounding. */
static void gemm_blocks(void) {
    const int shapes[][3] = {{300, 520, 64}, {700, 130, 96}, {1000, 1000, 8}, {257, 257, 257},
                             {600, 10, 200}, {12, 700, 300},  /* thin, cut finer */
                             {288, 64, 2048}};                /* long, cut in halves */
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                int lda = ta ? M : K, ldb = tb ? K : N;
                float *A = malloc(sizeof(float) * (size_t)M * K), *B = malloc(sizeof(float) * (size_t)K * N);
                float *C[4];
                for (size_t i = 0; i < (size_t)M * K; i++) A[i] = frand();
                for (size_t i = 0; i < (size_t)K * N; i++) B[i] = frand();
                for (int t = 0; t < 4; t++) {
                    C[t] = malloc(sizeof(float) * (size_t)M * N);
                    for (size_t i = 0; i < (size_t)M * N; i++) C[t][i] = (float)(i % 7) - 3;
                }
                for (int t = 0; t < 3; t++) {
                    CHECK_STATUS(loom_set_num_threads(t + 1), LOOM_OK);
                    loom_sgemm(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 1.0f, C[t], N);
                }
                loom_sgemm_portable(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 1.0f, C[3], N);
                CHECK(memcmp(C[0], C[1], sizeof(float) * (size_t)M * N) == 0);
                CHECK(memcmp(C[0], C[2], sizeof(float) * (size_t)M * N) == 0);
                double atol = K > 1000 ? 2e-6 * K : 1e-4; /* float sums of K terms */
                for (size_t i = 0; i < (size_t)M * N; i++) CHECK_CLOSE(C[0][i], C[3][i], atol, 1e-5);
                for (int t = 0; t < 4; t++) free(C[t]);
                free(A), free(B);
            }
    CHECK_STATUS(loom_set_num_threads(1), LOOM_OK);
}

/* ---------------------------------------------------------------- loom's own threads */

/* The pool itself: every index in exactly one contiguous piece of at least min_per_thread / 8
 * elements, the whole range inline below 2 * min_per_thread, a nested call inline. */
typedef struct cover_ctx {
    int *hits;
    size_t min_piece;
    bool whole; /* the outer range runs inline, so the pool is free for a nested call */
    int calls, bad;
    pthread_mutex_t lock;
} cover_ctx;

typedef struct nested_count {
    atomic_int sum, calls;
} nested_count;

static void nested(size_t b, size_t e, void *p) {
    nested_count *count = p;
    atomic_fetch_add(&count->sum, (int)(e - b));
    atomic_fetch_add(&count->calls, 1);
}

static void cover(size_t b, size_t e, void *p) {
    cover_ctx *c = p;
    for (size_t i = b; i < e; i++) c->hits[i]++;
    nested_count inner;
    atomic_init(&inner.sum, 0);
    atomic_init(&inner.calls, 0);
    /* Inside a job the pool is taken, so a nested call runs here, whole, in one call. When the
     * outer range ran inline the pool is free and the nested call may be split: all of it must
     * still be covered. */
    loom_parallel_for(1000, 1, nested, &inner);
    pthread_mutex_lock(&c->lock);
    c->calls++;
    c->bad += atomic_load(&inner.sum) != 1000 || (!c->whole && atomic_load(&inner.calls) != 1) || e - b < c->min_piece;
    pthread_mutex_unlock(&c->lock);
}

static void pool_cases(void) {
    const size_t ns[] = {0, 1, 7, 100, 1001, 65536};
    const size_t mins[] = {1, 3, 64, 100000};
    for (int t = 1; t <= 5; t++) {
        loom_parallel_set_num_threads(t);
        CHECK(loom_parallel_num_threads() == t);
        for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
            for (size_t m = 0; m < sizeof mins / sizeof mins[0]; m++) {
                size_t n = ns[a];
                bool whole = t == 1 || n < 2 * mins[m];
                int *hits = calloc(n + 1, sizeof *hits);
                cover_ctx c = {hits, whole ? n : (mins[m] / 8 ? mins[m] / 8 : 1), whole, 0, 0,
                               PTHREAD_MUTEX_INITIALIZER};
                loom_parallel_for(n, mins[m], cover, &c);
                int missed = 0;
                for (size_t i = 0; i < n; i++) missed += hits[i] != 1;
                CHECK(missed == 0);
                CHECK(c.bad == 0);
                if (whole) CHECK(c.calls == 1);
                else CHECK(c.calls >= 2 && c.calls <= 8 * t);
                free(hits);
            }
    }
    loom_parallel_set_num_threads(0);
    CHECK(loom_parallel_num_threads() == 1);
    loom_parallel_set_num_threads(100000);
    CHECK(loom_parallel_num_threads() == LOOM_PARALLEL_MAX_THREADS);
    loom_parallel_set_num_threads(1);
}

/* A small CNN whose convolutions, poolings, activations, bias sums and optimizer update are all
 * large enough for loom's threads to split them (src/kernels/parallel.c, PAR_MIN_* in the layers). */
static void train_cnn(float *out, size_t *n_out) {
    loom_graph *g = loom_graph_new(5);
    loom_tensor *x = loom_input(g, "x", 3, (int[]){16, 16, 3});
    loom_tensor *h = loom_call(loom_conv2d(g, "c1", 16, 3, 3, 1, 1, LOOM_PADDING_SAME, 1, 1, LOOM_RELU, NULL), x);
    h = loom_call(loom_max_pooling2d(g, "p1", 2, 2, 0, 0, LOOM_PADDING_VALID), h);
    h = loom_call(loom_conv2d(g, "c2", 16, 3, 3, 1, 1, LOOM_PADDING_SAME, 1, 1, LOOM_TANH, NULL), h);
    h = loom_call(loom_conv2d_transpose(g, "t", 8, 3, 3, 1, 1, LOOM_PADDING_SAME, LOOM_SWISH, NULL), h);
    h = loom_call(loom_average_pooling2d(g, "p2", 2, 2, 0, 0, LOOM_PADDING_VALID), h);
    h = loom_call(loom_flatten(g, "f"), h);
    h = loom_call(loom_dense(g, "B", 512, LOOM_GELU, NULL), h);
    loom_tensor *c = loom_call(loom_dense(g, "C", 10, LOOM_SOFTMAX, NULL), h);
    loom_tensor *d = loom_call(loom_dense(g, "D", 1, LOOM_LINEAR, NULL), h);
    loom_model *m = loom_model_new(g, 1, &x, 2, (loom_tensor *[]){c, d});
    loom_loss l[] = {{.name = "categorical_crossentropy"}, {.name = "mse"}};
    float w[] = {0.5f, 0.3f};
    loom_compile_config cfg = {.n_losses = 2, .losses = l, .n_loss_weights = 2, .loss_weights = w,
                               .optimizer = loom_adam(0.001f)};
    cfg.optimizer.global_clipnorm = 1.0f;
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    enum { N = 256, IN = 16 * 16 * 3 };
    float *xs = malloc(sizeof(float) * N * IN), *yc = calloc(N * 10, sizeof(float)), *yd = malloc(sizeof(float) * N);
    for (int i = 0; i < N * IN; i++) xs[i] = (float)((i * 7919) % 2001) / 1000.0f - 1.0f;
    for (int i = 0; i < N; i++) {
        yc[i * 10 + (i * 37) % 10] = 1;
        yd[i] = (float)(i % 13) / 13.0f;
    }
    loom_array xa = {.name = "x", .data = xs, .n = N, .count = N * IN}, ys[] = {{.name = "C", .data = yc, .n = N, .count = N * 10}, {.name = "D", .data = yd, .n = N, .count = N}};
    loom_data data = {1, &xa, 2, ys, 0, NULL};
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = 64;
    fo.epochs = 2;
    fo.seed = 3;
    fo.verbose = 0;
    CHECK_STATUS(loom_fit(m, &data, &fo, NULL), LOOM_OK);
    *n_out = loom_param_count(m);
    memcpy(out, loom_params(m), *n_out * sizeof(float));
    loom_model_free(m);
    free(xs), free(yc), free(yd);
}

typedef struct cnn_run {
    float *p;
    size_t n;
} cnn_run;

static void *train_cnn_thread(void *arg) {
    cnn_run *r = arg;
    train_cnn(r->p, &r->n);
    return NULL;
}

/* loom's own loops split only independent outputs, so their thread count changes no bit: 1, 2 and
 * 3 loom threads agree exactly, and so do loom_set_num_threads(1) and (2), in every build.
 * Two models trained at once in two user threads (one gets the pool, the other runs inline) give
 * the same bits as one alone. */
static void own_threads(void) {
    enum { MAXP = 1 << 20 };
    float *ref = malloc(sizeof(float) * MAXP), *p = malloc(sizeof(float) * MAXP);
    size_t n_ref, n;
    CHECK_STATUS(loom_set_num_threads(1), LOOM_OK);
    train_cnn(ref, &n_ref);
    CHECK(n_ref < MAXP);

    loom_parallel_set_num_threads(2); /* loom's loops only: the product stays on one thread */
    train_cnn(p, &n);
    CHECK(n == n_ref && memcmp(p, ref, n * sizeof(float)) == 0);
    loom_parallel_set_num_threads(3); /* more threads than cores: still the same bits */
    train_cnn(p, &n);
    CHECK(n == n_ref && memcmp(p, ref, n * sizeof(float)) == 0);

    CHECK_STATUS(loom_set_num_threads(2), LOOM_OK);
    CHECK(loom_parallel_num_threads() == 2);
    float *p2 = malloc(sizeof(float) * MAXP);
    size_t n2;
    train_cnn(p, &n);
    train_cnn(p2, &n2);
    CHECK(n == n2 && memcmp(p, p2, n * sizeof(float)) == 0);
    CHECK(n == n_ref && memcmp(p, ref, n * sizeof(float)) == 0);

    CHECK_STATUS(loom_set_num_threads(1), LOOM_OK);
    loom_parallel_set_num_threads(2);
    cnn_run runs[2] = {{malloc(sizeof(float) * MAXP), 0}, {malloc(sizeof(float) * MAXP), 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&th[i], NULL, train_cnn_thread, &runs[i]) == 0);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) CHECK(runs[i].n == n_ref && memcmp(runs[i].p, ref, n_ref * sizeof(float)) == 0);
    for (int i = 0; i < 2; i++) free(runs[i].p);
    free(ref), free(p), free(p2);
    CHECK_STATUS(loom_set_num_threads(1), LOOM_OK);
}

int main(void) {
    srand(1);
    gemm_cases();
    fused_softmax();
    softmax_exp();
    avx512_softmax_paths();
    avx512_matrix_paths();
    threads();
    sgd_in_backward();
    gemm_blocks();
    pool_cases();
    own_threads();
    printf("matrix product: %s\n", gemm_is_portable ? "portable" : "OpenBLAS");
    return check_report("fastpaths");
}
