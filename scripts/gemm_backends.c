/* gemm_backends.c — times each matrix-product backend of loom on the products of the benchmark
 * models (bench/models.h: tiny, mnist-mlp, wide), forward (x W), dx (dz W^T) and dW (x^T dz): the
 * measurement behind the backend table of src/kernels/product.c (docs/gemm_backends.md).
 *   build/gemm_backends [threads]     prints GFLOP/s, the median of 7 timings of a batch of calls
 * Backends: blas (loom_sgemm: OpenBLAS or the portable loops), dnnl f32, loom bf16 (gemm_bf16.c),
 * dnnl bf16. Built when oneDNN is (LOOM_USE_DNNL). */
#include "kernels/gemm.h"
#include "kernels/gemm_bf16.h"
#include "kernels/gemm_dnnl.h"
#include "base/base.h"
#include "loom.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}
static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    bool ta, tb;
    int M, N, K;
    const char *what;
} shape;

enum { BLAS, DNNL_F32, LOOM_BF16, DNNL_BF16, N_BACKENDS };
static const char *names[N_BACKENDS] = {"blas f32", "dnnl f32", "loom bf16", "dnnl bf16"};

static double time_one(int backend, const shape *s, const float *A, const float *B, float *C, float *ws,
                       loom_dnnl_matmul *mm) {
    int lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N, ldc = s->N;
    double flops = 2.0 * s->M * s->N * s->K;
    int reps = (int)(2e8 / flops) + 1;
    double t[7];
    for (int r = 0; r < 8; r++) {
        double t0 = now();
        for (int i = 0; i < reps; i++) {
            if (backend == BLAS) loom_sgemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 1.0f, C, ldc);
            else if (backend == LOOM_BF16)
                loom_gemm_bf16(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 1.0f, C, ldc, ws);
            else loom_dnnl_matmul_run(mm, A, B, C, ws);
        }
        if (r > 0) t[r - 1] = (now() - t0) / reps; /* the first is a warm-up */
    }
    qsort(t, 7, sizeof t[0], cmp);
    return flops / t[3] * 1e-9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    loom_set_num_threads(threads);
    const shape shapes[] = {
        {false, false, 32, 64, 32, "tiny fwd 32x32.32x64"},    {false, false, 32, 64, 64, "tiny fwd 32x64.64x64"},
        {false, true, 32, 64, 64, "tiny dx 32x64.(64x64)^T"},  {true, false, 64, 64, 32, "tiny dW (32x64)^T.32x64"},
        {false, false, 128, 512, 784, "mnist fwd 128x784.784x512"},
        {false, false, 128, 512, 512, "mnist fwd 128x512.512x512"},
        {false, false, 128, 10, 512, "mnist fwd 128x512.512x10"},
        {false, true, 128, 784, 512, "mnist dx 128x512.(784x512)^T"},
        {true, false, 784, 512, 128, "mnist dW (128x784)^T.128x512"},
        {true, false, 512, 512, 128, "mnist dW (128x512)^T.128x512"},
        {false, false, 256, 4096, 1024, "wide fwd 256x1024.1024x4096"},
        {false, false, 256, 4096, 4096, "wide fwd 256x4096.4096x4096"},
    };
    size_t big = 4096 * 4096 * 2;
    float *A = loom_floats_zeroed(big), *B = loom_floats_zeroed(big), *C = loom_floats_zeroed(big),
          *ws = loom_floats_zeroed(big * 2);
    for (size_t i = 0; i < big; i++) A[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f, B[i] = A[(i * 31) % big];
    printf("threads %d, AVX512-BF16 %s, GFLOP/s (median of 7)\n", threads, loom_bf16_hw() ? "yes" : "no");
    printf("%-32s %10s %10s %10s %10s   dnnl impl f32 / bf16\n", "product", names[0], names[1], names[2], names[3]);
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const shape *s = &shapes[i];
        int lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
        loom_dnnl_matmul *f = loom_dnnl_matmul_create(false, s->ta, s->tb, s->M, s->N, s->K, lda, ldb, s->N, 1.0f, true);
        loom_dnnl_matmul *h = loom_dnnl_matmul_create(true, s->ta, s->tb, s->M, s->N, s->K, lda, ldb, s->N, 1.0f, true);
        printf("%-32s", s->what);
        for (int b = 0; b < N_BACKENDS; b++) {
            loom_dnnl_matmul *mm = b == DNNL_F32 ? f : b == DNNL_BF16 ? h : NULL;
            if ((b == DNNL_F32 || b == DNNL_BF16) && !mm) printf(" %10s", "-");
            else printf(" %10.1f", time_one(b, s, A, B, C, ws, mm));
            fflush(stdout);
        }
        printf("   %s / %s\n", f ? loom_dnnl_matmul_impl(f) : "-", h ? loom_dnnl_matmul_impl(h) : "-");
        loom_dnnl_matmul_free(f);
        loom_dnnl_matmul_free(h);
    }
    return 0;
}
