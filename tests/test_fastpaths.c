/* test_fastpaths.c — the fast paths give the plain path's results: OpenBLAS against the portable
 * product on every transpose case; the fused softmax + crossentropy against the logits form; the
 * same thread count twice is bit-identical, and 1 against 2 threads is bounded. */
#include "check.h"
#include "internal.h"

#include <loom.h>
#include <stdlib.h>
#include <string.h>

static float frand(void) { return (float)rand() / RAND_MAX * 2 - 1; }

static void gemm_cases(void) {
    const int shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {32, 64, 16}, {17, 1, 33}, {128, 96, 200}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
                float *C1 = malloc(sizeof(float) * M * N), *C2 = malloc(sizeof(float) * M * N);
                for (int i = 0; i < M * K; i++) A[i] = frand();
                for (int i = 0; i < K * N; i++) B[i] = frand();
                for (int i = 0; i < M * N; i++) C1[i] = C2[i] = frand();
                int lda = ta ? M : K, ldb = tb ? K : N;
                loom_sgemm(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 1.0f, C1, N);
                loom_sgemm_portable(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 1.0f, C2, N);
                double worst = 0;
                for (int i = 0; i < M * N; i++) worst = fmax(worst, fabs((double)C1[i] - C2[i]));
                CHECK(worst <= 1e-5 * K + 1e-6); /* float32 sums of K terms of size <= 1 */
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
    loom_array xa = {"x", x, 10}, ya = {"C", t, 10};
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

/* Big enough for OpenBLAS to split the products between threads. */
static void train_with_threads(int threads, float *out, size_t *n_out) {
    CHECK_STATUS(loom_set_num_threads(threads), LOOM_OK);
    loom_graph *g = loom_graph_new(8);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){128});
    loom_tensor *a = loom_call(loom_dense(g, "A", 256, LOOM_RELU, NULL), x);
    loom_tensor *b = loom_call(loom_dense(g, "B", 256, LOOM_RELU, NULL), a);
    loom_tensor *c = loom_call(loom_dense(g, "C", 10, LOOM_SOFTMAX, NULL), b);
    loom_tensor *d = loom_call(loom_dense(g, "D", 1, LOOM_LINEAR, NULL), b);
    loom_model *m = loom_model_new(g, 1, &x, 2, (loom_tensor *[]){c, d});
    loom_loss l[] = {{.name = "categorical_crossentropy"}, {.name = "mse"}};
    float w[] = {0.5f, 0.3f};
    loom_compile_config cfg = {.n_losses = 2, .losses = l, .n_loss_weights = 2, .loss_weights = w,
                               .optimizer = loom_adam(0.001f)};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    enum { N = 512 };
    static float xs[N * 128], yc[N * 10], yd[N];
    srand(42);
    memset(yc, 0, sizeof yc);
    for (int i = 0; i < N * 128; i++) xs[i] = frand();
    for (int i = 0; i < N; i++) {
        yc[i * 10 + rand() % 10] = 1;
        yd[i] = frand();
    }
    loom_array xa = {"x", xs, N}, ys[] = {{"C", yc, N}, {"D", yd, N}};
    loom_data data = {1, &xa, 2, ys, 0, NULL};
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = 128;
    fo.epochs = 2;
    fo.seed = 1;
    CHECK_STATUS(loom_fit(m, &data, &fo, NULL), LOOM_OK);
    *n_out = loom_param_count(m);
    memcpy(out, loom_params(m), *n_out * sizeof(float));
    loom_model_free(m);
}

/* The same thread count is bit-identical; 1 against 2 threads is not (OpenBLAS runs other kernels
 * when threaded, see src/gemm.c), so that difference is bounded instead. */
static void threads(void) {
    static float p1[200000], p2[200000], p3[200000];
    size_t n1, n2, n3;
    train_with_threads(2, p1, &n1);
    train_with_threads(2, p2, &n2);
    train_with_threads(1, p3, &n3);
    CHECK(n1 == n2 && n1 == n3);
    CHECK(memcmp(p1, p2, n1 * sizeof(float)) == 0);
    double worst = 0;
    for (size_t i = 0; i < n1; i++) worst = fmax(worst, fabs((double)p1[i] - p3[i]));
    printf("1 vs 2 threads, largest weight difference after 8 Adam steps: %.3g\n", worst);
    CHECK(worst < 1e-4);
    CHECK_STATUS(loom_set_num_threads(0), LOOM_ERR_ARGUMENT);
    CHECK_STATUS(loom_set_num_threads(1), LOOM_OK);
}

int main(void) {
    srand(1);
    gemm_cases();
    fused_softmax();
    threads();
    return check_report("fastpaths");
}
