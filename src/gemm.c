/* gemm.c — the matrix product every layer goes through: OpenBLAS when the build found it,
 * portable loops otherwise (same results to float32 rounding). */
#include "internal.h"
#include "parallel.h"

#ifdef LOOM_HAVE_CBLAS
#include <cblas.h>
#endif

/* The portable product (also the reference the fast path is tested against).
 * i-k-j order keeps the inner loop contiguous in B and C for the untransposed case. */
void loom_sgemm_portable(bool ta, bool tb, int M, int N, int K, float alpha, const float *A,
                          int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0.0f)
            for (int j = 0; j < N; j++) c[j] = 0.0f;
        else if (beta != 1.0f)
            for (int j = 0; j < N; j++) c[j] *= beta;
        for (int k = 0; k < K; k++) {
            float a = alpha * (ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]);
            if (!tb) {
                const float *b = B + (size_t)k * ldb;
                for (int j = 0; j < N; j++) c[j] += a * b[j];
            } else {
                for (int j = 0; j < N; j++) c[j] += a * B[(size_t)j * ldb + k];
            }
        }
    }
}

void loom_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
                int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
#ifdef LOOM_HAVE_CBLAS
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
    loom_sgemm_portable(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

/* Threads: the count is both OpenBLAS's and loom's own (parallel.c: optimizer, convolution
 * lowering, pooling, activations). The same thread count always gives the same bits; loom's own
 * loops split only independent elements, so they never change a result. Different counts may:
 * OpenBLAS 0.3.21 picks another kernel when it runs threaded (its single-thread "small matrix"
 * kernels sum in another order), so results differ in the last bit (measured: 1 ulp on a product,
 * ~1e-6 relative after training; tests/test_fastpaths.c bounds it). */
static int threads_set = 1;

loom_status loom_set_num_threads(int n) {
    if (n < 1 || n > 1024) return LOOM_ERR_ARGUMENT;
    threads_set = n;
    loom_parallel_set_num_threads(n);
#ifdef LOOM_HAVE_CBLAS
    openblas_set_num_threads(n);
#endif
    return LOOM_OK;
}

int loom_get_num_threads(void) {
#ifdef LOOM_HAVE_CBLAS
    return openblas_get_num_threads();
#else
    return threads_set;
#endif
}

/* z[r][:] = bias for every row: the start of "x . kernel + bias". An inline loop: a memcpy call
 * per row of a few dozen floats (one per output position of a convolution) costs more than the
 * copy itself. */
LOOM_VECTOR_CLONES void loom_broadcast_rows(float *restrict z, const float *restrict bias, size_t rows, int n) {
    for (size_t r = 0; r < rows; r++) {
        float *zr = z + r * (size_t)n;
        for (int j = 0; j < n; j++) zr[j] = bias[j];
    }
}
