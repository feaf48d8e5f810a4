/* sgemm_bench.c — what the machine can do: OpenBLAS sgemm alone on exactly the products one
 * training step of a benchmark model issues (forward x.W, weight gradient x^T.dz, input gradient
 * dz.W^T, the last one untransposed where loom issues it so), timed back to back. Prints: model threads median_ms gflops
 *   sgemm_bench MODEL REPEATS */
#include "models.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct layer { int in, out, first; } layer;

int main(int argc, char **argv) {
    const bench_model *bm = argc > 2 ? bench_find(argv[1]) : NULL;
    int repeats = argc > 2 ? atoi(argv[2]) : 0;
    if (!bm || repeats < 1 || repeats > 100) {
        fprintf(stderr, "usage: sgemm_bench MODEL REPEATS\n");
        return 2;
    }
    if (bm->cnn || bm->steps) {
        fprintf(stderr, "sgemm_bench: %s is not a chain of Dense layers (no sgemm-only counterpart)\n", bm->name);
        return 2;
    }
    const char *t = getenv("LOOM_NUM_THREADS");
    if (t) openblas_set_num_threads(atoi(t));
    /* the four Dense layers as loom runs them (C and D are separate products) */
    layer layers[] = {{bm->in, bm->a, 1}, {bm->a, bm->b, 0}, {bm->b, bm->classes, 0}, {bm->b, 1, 0}};
    int B = bm->batch;
    size_t max = 0;
    for (int l = 0; l < 4; l++) {
        size_t s = (size_t)(layers[l].in > layers[l].out ? layers[l].in : layers[l].out);
        if (s * (size_t)B > max) max = s * (size_t)B;
        if ((size_t)layers[l].in * layers[l].out > max) max = (size_t)layers[l].in * layers[l].out;
    }
    float *X = malloc(max * sizeof *X), *W = malloc(max * sizeof *W), *Y = malloc(max * sizeof *Y);
    if (!X || !W || !Y) return 1;
    for (size_t i = 0; i < max; i++) X[i] = W[i] = Y[i] = (float)(i % 7) * 0.1f;
    double times[100];
    for (int r = -1; r < repeats; r++) { /* r = -1: warm-up */
        double t0 = now();
        for (int l = 0; l < 4; l++) {
            int in = layers[l].in, out = layers[l].out;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, out, in, 1, X, in, W, out, 0, Y, out);
            /* a small weight gradient of a narrow layer (under 16 units) loom issues transposed,
             * dz^T.x, and turns the result back (src/kernels/gemm.c); the turning is not timed here */
            if (out < 16 && in >= 16 && (double)in * out * B <= 1e6 && (size_t)in * out <= 4096)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, B, 1, Y, out, X, in, 0, W, in);
            else
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, in, out, B, 1, X, in, Y, out, 0, W, out);
            /* loom issues a small dz.W^T untransposed after copying W^T (src/kernels/gemm.c: OpenBLAS's small
             * kernels skip that case); the copy is loom's own work and not timed here */
            if (!layers[l].first && (double)B * in * out <= 1e6 && (size_t)in * out <= 4096)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, in, out, 1, Y, out, W, in, 0, X, in);
            else if (!layers[l].first)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, in, out, 1, Y, out, W, out, 0, X, in);
        }
        if (r >= 0) times[r] = (now() - t0) * 1e3;
    }
    qsort(times, (size_t)repeats, sizeof times[0], cmp_double);
    double ms = times[repeats / 2];
    printf("%s %s %.6f %.3f\n", bm->name, t ? t : "?", ms, bench_step_flops(bm) / (ms * 1e-3) / 1e9);
    free(X), free(Y), free(W);
    return 0;
}
