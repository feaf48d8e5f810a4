/* gemm.c — the matrix product every layer goes through: OpenBLAS when the build found it,
 * portable loops otherwise (same results to float32 rounding); and the bias around it (filled in
 * before, or added with a ReLU after, and the column sums that make its gradient). */
#include "loom.h"
#include "kernels/gemm.h"
#include "kernels/vector_clones.h"
#include "kernels/avx512.h"
#include "kernels/parallel.h"

#include <stdatomic.h>

#ifdef LOOM_HAVE_CBLAS
#include <cblas.h>
#endif

/* The tests' switch that sends every AVX-512 path of loom to its scalar twin (avx512.h). */
bool loom_avx512_off = false;

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

#ifdef LOOM_HAVE_AVX512
/* Narrow products C = alpha A . B + beta C with NARROW_NN_MIN to NARROW_NN_MAX columns (a
 * classifier's head: 10 classes). OpenBLAS runs its vectors along C's rows, 10 of 16 lanes busy
 * (32x10x64: 380 ns); here they run down 16 rows of A at a time, turned in registers (avx512.h),
 * and each of C's columns is one vector of sums (280 ns; 128x10x512: 11.4 -> 8.1 us). Narrower
 * products OpenBLAS runs on 8-lane vectors as fast; 16 columns need more registers than there are.
 * Every element sums over k in order whatever rows share its tile, so any cut of the rows (the
 * threads' blocks) gives the same bits. */
#define NARROW_NN_MIN 9
#define NARROW_NN_MAX 15

LOOM_AVX512_TARGET static inline __attribute__((always_inline)) void
narrow_nn_cols(int M, const int N, int K, float alpha, const float *A, int lda, const float *B, int ldb, float beta,
               float *C, int ldc) {
    for (int r0 = 0; r0 < M; r0 += 16) {
        int n = M - r0 < 16 ? M - r0 : 16;
        __m512 acc[16];
        for (int j = 0; j < 16; j++) acc[j] = _mm512_setzero_ps(); /* from N on: turned, never stored */
        for (int k0 = 0; k0 < K; k0 += 16) {
            int dk = K - k0 < 16 ? K - k0 : 16;
            __m512 a[16]; /* a[k] lane i = A[r0 + i][k0 + k] */
            loom_rows16_load(A + (size_t)r0 * lda + k0, (size_t)lda, dk, n, a);
            const float *b = B + (size_t)k0 * ldb;
            if (dk == 16) /* unrolled whole: the vectors stay in registers */
                for (int k = 0; k < 16; k++)
                    for (int j = 0; j < N; j++)
                        acc[j] = _mm512_fmadd_ps(a[k], _mm512_set1_ps(b[(size_t)k * ldb + j]), acc[j]);
            else
                for (int k = 0; k < dk; k++)
                    for (int j = 0; j < N; j++)
                        acc[j] = _mm512_fmadd_ps(a[k], _mm512_set1_ps(b[(size_t)k * ldb + j]), acc[j]);
        }
        float *c = C + (size_t)r0 * ldc;
        if (alpha != 1.0f)
            for (int j = 0; j < N; j++) acc[j] = _mm512_mul_ps(_mm512_set1_ps(alpha), acc[j]);
        if (beta != 0.0f) {
            __m512 old[16];
            loom_rows16_load(c, (size_t)ldc, N, n, old);
            for (int j = 0; j < N; j++) acc[j] = _mm512_add_ps(acc[j], _mm512_mul_ps(_mm512_set1_ps(beta), old[j]));
        }
        loom_rows16_store(acc, N, n, c, (size_t)ldc);
    }
}

LOOM_AVX512_TARGET static void sgemm_narrow_nn(int M, int N, int K, float alpha, const float *A, int lda,
                                               const float *B, int ldb, float beta, float *C, int ldc) {
    switch (N) { /* a constant column count unrolls the loops over columns */
#define NARROW_NN_CASE(n)                                                  \
    case n:                                                                \
        narrow_nn_cols(M, n, K, alpha, A, lda, B, ldb, beta, C, ldc);      \
        break;
        NARROW_NN_CASE(9) NARROW_NN_CASE(10) NARROW_NN_CASE(11) NARROW_NN_CASE(12) NARROW_NN_CASE(13)
        NARROW_NN_CASE(14) NARROW_NN_CASE(15)
#undef NARROW_NN_CASE
    }
}
#endif

static void sgemm_one(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc) {
#ifdef LOOM_HAVE_AVX512
    if (!ta && !tb && N >= NARROW_NN_MIN && N <= NARROW_NN_MAX && M >= 16 && K > 0 && loom_avx512_on()) {
        sgemm_narrow_nn(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#endif
#ifdef LOOM_HAVE_CBLAS
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha,
                A, lda, B, ldb, beta, C, ldc);
#else
    loom_sgemm_portable(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

/* Small products with B transposed (dX = dZ . W^T in every Dense backward). OpenBLAS sends small
 * products to its fast small-matrix kernels in every case but this one (row-major A . B^T is its
 * column-major "TN"), which goes through the packing path at half the speed (32x64x64: 2.05 us
 * against 1.02 us untransposed).
 * Transposing B first (0.23 us) and multiplying untransposed is faster, and on CPUs without those
 * kernels no slower (measured on OpenBLAS's Haswell kernels: 2.72 against 2.91 us). The copy lives
 * on the stack, so a product qualifies only when B^T fits in SMALL_T_FLOATS (16 KB). */
#define SMALL_MNK 1e6
#define SMALL_T_FLOATS 4096

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* one 8 x 8 block: rows r[0..8) of src (stride lds) become columns of dst (stride ldd) */
__attribute__((target("avx"))) static void transpose_8x8_avx(const float *src, size_t lds, float *dst, size_t ldd) {
    __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + lds), r2 = _mm256_loadu_ps(src + 2 * lds),
           r3 = _mm256_loadu_ps(src + 3 * lds), r4 = _mm256_loadu_ps(src + 4 * lds),
           r5 = _mm256_loadu_ps(src + 5 * lds), r6 = _mm256_loadu_ps(src + 6 * lds),
           r7 = _mm256_loadu_ps(src + 7 * lds);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
           t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
           t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE),
           s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE),
           s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE),
           s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst, _mm256_permute2f128_ps(s0, s4, 0x20));
    _mm256_storeu_ps(dst + ldd, _mm256_permute2f128_ps(s1, s5, 0x20));
    _mm256_storeu_ps(dst + 2 * ldd, _mm256_permute2f128_ps(s2, s6, 0x20));
    _mm256_storeu_ps(dst + 3 * ldd, _mm256_permute2f128_ps(s3, s7, 0x20));
    _mm256_storeu_ps(dst + 4 * ldd, _mm256_permute2f128_ps(s0, s4, 0x31));
    _mm256_storeu_ps(dst + 5 * ldd, _mm256_permute2f128_ps(s1, s5, 0x31));
    _mm256_storeu_ps(dst + 6 * ldd, _mm256_permute2f128_ps(s2, s6, 0x31));
    _mm256_storeu_ps(dst + 7 * ldd, _mm256_permute2f128_ps(s3, s7, 0x31));
}
#define HAVE_TRANSPOSE_8X8 1
#endif

#ifdef LOOM_HAVE_AVX512
/* transpose with 16 x 16 tiles turned in registers (avx512.h): a third of the shuffles of 8 x 8
 * blocks, and no scalar edges */
LOOM_AVX512_TARGET static void transpose_avx512(const float *B, int ldb, int N, int K, float *T) {
    for (int j0 = 0; j0 < N; j0 += 16) {
        int n = N - j0 < 16 ? N - j0 : 16;
        for (int k0 = 0; k0 < K; k0 += 16) {
            int dk = K - k0 < 16 ? K - k0 : 16;
            __m512 v[16];
            loom_rows16_load(B + (size_t)j0 * ldb + k0, (size_t)ldb, dk, n, v);
            for (int k = 0; k < dk; k++) _mm512_mask_storeu_ps(T + (size_t)(k0 + k) * N + j0, loom_lanes(n), v[k]);
        }
    }
}
#endif

/* T (K x N, row stride N) = B^T, B being N x K with row stride ldb. */
static void transpose(const float *B, int ldb, int N, int K, float *T) {
#ifdef LOOM_HAVE_AVX512
    if (loom_avx512_on()) {
        transpose_avx512(B, ldb, N, K, T);
        return;
    }
#endif
    int j0 = 0;
#ifdef HAVE_TRANSPOSE_8X8
    if (__builtin_cpu_supports("avx")) {
        for (; j0 + 8 <= N; j0 += 8) {
            int k = 0;
            for (; k + 8 <= K; k += 8)
                transpose_8x8_avx(B + (size_t)j0 * ldb + k, (size_t)ldb, T + (size_t)k * N + j0, (size_t)N);
            for (; k < K; k++)
                for (int j = j0; j < j0 + 8; j++) T[(size_t)k * N + j] = B[(size_t)j * ldb + k];
        }
    }
#endif
    for (int j = j0; j < N; j++)
        for (int k = 0; k < K; k++) T[(size_t)k * N + j] = B[(size_t)j * ldb + k];
}

static bool small_transposed_b(bool ta, bool tb, int M, int N, int K) {
    return tb && !ta && K > 0 && (double)M * N * K <= SMALL_MNK && (size_t)N * K <= SMALL_T_FLOATS;
}

/* noinline: the 16 KB copy is on the stack only on this path */
__attribute__((noinline)) static void sgemm_small_transposed_b(int M, int N, int K, float alpha, const float *A,
                                                               int lda, const float *B, int ldb, float beta,
                                                               float *C, int ldc) {
    float t[SMALL_T_FLOATS];
    /* a single row or a contiguous single column is its own transpose */
    if (N == 1) {
        sgemm_one(false, false, M, N, K, alpha, A, lda, B, 1, beta, C, ldc);
    } else if (K == 1 && ldb == 1) {
        sgemm_one(false, false, M, N, K, alpha, A, lda, B, N, beta, C, ldc);
    } else {
        transpose(B, ldb, N, K, t);
        sgemm_one(false, false, M, N, K, alpha, A, lda, t, N, beta, C, ldc);
    }
}

/* Small weight gradients of narrow layers (A^T . B with N < 16: x^T . dz of a Dense layer with a
 * few units). OpenBLAS's small-matrix kernels run their vectors along row-major N, so 10 units
 * fill 10 of 16 lanes (64x10x32: 0.45 us). The transposed product C^T = B^T . A runs them along M
 * at full width (0.18 us), and turning its N x M result back costs less than the difference. A
 * single column needs no turning: C^T (1 x M) is laid out as C (M x 1). */
#define NARROW_N 16

static bool small_narrow_tn(bool ta, bool tb, int M, int N, int K, int ldc) {
    return ta && !tb && K > 0 && N < NARROW_N && M >= NARROW_N && (double)M * N * K <= SMALL_MNK &&
           (size_t)M * N <= SMALL_T_FLOATS && (N > 1 || ldc == 1);
}

#ifdef LOOM_HAVE_AVX512
/* add_transposed with 16 x 16 tiles turned in registers. A tile's rows of C are all read before
 * any is written: C's rows are often narrower than a vector, and a masked load whose 64 bytes
 * overlap a masked store just issued waits for that store (reading each row just before writing
 * it took twice as long as the whole scalar version). */
LOOM_AVX512_TARGET static void add_transposed_avx512(const float *t, int N, int M, float beta, float *C, int ldc) {
    for (int i0 = 0; i0 < M; i0 += 16) {
        int n = M - i0 < 16 ? M - i0 : 16;
        for (int j0 = 0; j0 < N; j0 += 16) {
            int dj = N - j0 < 16 ? N - j0 : 16;
            __mmask16 m = loom_lanes(dj);
            float *c = C + (size_t)i0 * ldc + j0;
            __m512 old[16], v[16]; /* v[i] lane j = t[j0 + j][i0 + i] = C's row i0 + i, column j0 + j */
            if (beta != 0.0f)
                for (int i = 0; i < n; i++) old[i] = _mm512_maskz_loadu_ps(m, c + (size_t)i * ldc);
            loom_rows16_load(t + (size_t)j0 * M + i0, (size_t)M, n, dj, v);
            for (int i = 0; i < n; i++) {
                if (beta != 0.0f) v[i] = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(beta), old[i]), v[i]);
                _mm512_mask_storeu_ps(c + (size_t)i * ldc, m, v[i]);
            }
        }
    }
}
#endif

/* C (M x N, stride ldc) = beta C + t^T (t where beta is 0), t being N x M: 8 x 8 blocks turned on
 * the stack and added a row at a time, then the columns the blocks left (a contiguous read of t
 * each), then the rows. */
static void add_transposed(const float *restrict t, int N, int M, float beta, float *restrict C, int ldc) {
#ifdef LOOM_HAVE_AVX512
    if (loom_avx512_on()) {
        add_transposed_avx512(t, N, M, beta, C, ldc);
        return;
    }
#endif
    int i0 = 0, j0 = 0;
#ifdef HAVE_TRANSPOSE_8X8
    if (__builtin_cpu_supports("avx")) {
        float blk[64];
        for (; i0 + 8 <= M; i0 += 8)
            for (j0 = 0; j0 + 8 <= N; j0 += 8) {
                transpose_8x8_avx(t + (size_t)j0 * M + i0, (size_t)M, blk, 8);
                for (int r = 0; r < 8; r++) {
                    float *restrict c = C + (size_t)(i0 + r) * ldc + j0;
                    const float *b = blk + r * 8;
                    if (beta == 0.0f)
                        for (int q = 0; q < 8; q++) c[q] = b[q];
                    else
                        for (int q = 0; q < 8; q++) c[q] = beta * c[q] + b[q];
                }
            }
    }
#endif
    for (int j = j0; j < N; j++) {
        const float *tj = t + (size_t)j * M;
        for (int i = 0; i < i0; i++) {
            float *c = C + (size_t)i * ldc + j;
            *c = beta == 0.0f ? tj[i] : beta * *c + tj[i];
        }
    }
    for (int i = i0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float *c = C + (size_t)i * ldc + j;
            *c = beta == 0.0f ? t[(size_t)j * M + i] : beta * *c + t[(size_t)j * M + i];
        }
}

__attribute__((noinline)) static void sgemm_small_narrow_tn(int M, int N, int K, float alpha, const float *A,
                                                            int lda, const float *B, int ldb, float beta,
                                                            float *C, int ldc) {
    if (N == 1) {
        sgemm_one(true, false, 1, M, K, alpha, B, ldb, A, lda, beta, C, M);
        return;
    }
    float t[SMALL_T_FLOATS];
    sgemm_one(true, false, N, M, K, alpha, B, ldb, A, lda, 0.0f, t, M);
    add_transposed(t, N, M, beta, C, ldc);
}

/* Threads. loom keeps ONE pool: OpenBLAS runs on a single thread, and a large product is cut into
 * 2, 4 or 8 blocks of C (rows or columns) that loom's own pool (parallel.c) shares out, one
 * OpenBLAS call per block. Why not OpenBLAS's threads:
 * - two pools fight: OpenBLAS's idle workers spin (sched_yield) for ~0.1 s after every product,
 *   taking half a core from loom's own loops that run in between (measured: cnn at 2 threads 25 %
 *   slower);
 * - the blocks depend on the product's shape only, never on the thread count, and each is the same
 *   call whichever thread runs it, so every thread count gives the same bits.
 * The cost is packing the other operand once per block: blocks are at least GEMM_MIN_BLOCK rows or
 * columns of the larger side and GEMM_MIN_FLOPS of work, which keeps it near 1 % at one thread.
 * A thin product (the other side or K under NARROW_N: a layer of a few units, its gradients) packs
 * next to nothing per block, so it is cut finer; otherwise a 10-class head ran on one thread while
 * the other waited (mnist-mlp: 37 us of a 1.05 ms step at 2 threads).
 * A long product (K much larger than both sides: a convolution's weight gradient, 288 x 64 over
 * 7744 positions, 1.3 ms) whose larger side is under two blocks is cut in two halves of at least
 * GEMM_MIN_BLOCK / 2 anyway: its packing is a few per cent of its time, while one thread would
 * otherwise wait through all of it. */
#define GEMM_MIN_BLOCK 256
#define GEMM_LONG_FLOPS 6.4e7
#define GEMM_MIN_FLOPS 4e6
#define GEMM_MIN_BLOCK_THIN 64
#define GEMM_MIN_FLOPS_THIN 5e5
#define GEMM_MAX_BLOCKS 8

typedef struct gemm_job {
    bool ta, tb, by_rows;
    int M, N, K, block, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B;
    float *C;
} gemm_job;

static void gemm_blocks(size_t b0, size_t b1, void *p) {
    const gemm_job *j = p;
    for (size_t b = b0; b < b1; b++) {
        int at = (int)b * j->block, n = j->by_rows ? j->M - at : j->N - at;
        if (n > j->block) n = j->block;
        if (j->by_rows)
            sgemm_one(j->ta, j->tb, n, j->N, j->K, j->alpha, j->ta ? j->A + at : j->A + (size_t)at * j->lda, j->lda,
                      j->B, j->ldb, j->beta, j->C + (size_t)at * j->ldc, j->ldc);
        else
            sgemm_one(j->ta, j->tb, j->M, n, j->K, j->alpha, j->A, j->lda,
                      j->tb ? j->B + (size_t)at * j->ldb : j->B + at, j->ldb, j->beta, j->C + at, j->ldc);
    }
}

/* OpenBLAS on one thread: at every loom_set_num_threads (force), and at the first product if that
 * comes before any. */
static void blas_single_thread(bool force) {
#ifdef LOOM_HAVE_CBLAS
    static atomic_int done;
    if (!force && atomic_load_explicit(&done, memory_order_relaxed)) return;
    openblas_set_num_threads(1);
    atomic_store(&done, 1);
#else
    (void)force;
#endif
}

void loom_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
                int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    blas_single_thread(false);
    /* split the larger side of C: the operand packed once per block is then the smaller one */
    bool by_rows = M > N;
    int side = by_rows ? M : N;
    double flops = 2.0 * M * N * (K > 0 ? K : 1);
    bool thin = (by_rows ? N : M) < NARROW_N || K < NARROW_N;
    double min_flops = thin ? GEMM_MIN_FLOPS_THIN : GEMM_MIN_FLOPS;
    int blocks = side / (thin ? GEMM_MIN_BLOCK_THIN : GEMM_MIN_BLOCK);
    if (blocks > flops / min_flops) blocks = (int)(flops / min_flops);
    if (blocks > GEMM_MAX_BLOCKS) blocks = GEMM_MAX_BLOCKS;
    if (blocks < 2 && !thin && flops >= GEMM_LONG_FLOPS && side >= GEMM_MIN_BLOCK) blocks = 2;
    /* a power of two, so that 2, 4 or 8 threads get equal shares (3 blocks on 2 threads would
     * leave one idle for a third of the product) */
    while (blocks & (blocks - 1)) blocks &= blocks - 1;
    if (blocks <= 1) {
        if (small_transposed_b(trans_a, trans_b, M, N, K)) {
            sgemm_small_transposed_b(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
            return;
        }
        if (small_narrow_tn(trans_a, trans_b, M, N, K, ldc)) {
            sgemm_small_narrow_tn(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
            return;
        }
        sgemm_one(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int block = (side + blocks - 1) / blocks;
    block = (block + 15) / 16 * 16; /* whole vectors of C per block */
    gemm_job j = {trans_a, trans_b, by_rows, M, N, K, block, lda, ldb, ldc, alpha, beta, A, B, C};
    loom_parallel_for((size_t)((side + block - 1) / block), 1, gemm_blocks, &j);
}

static int threads_set = 0; /* 0: not set, the pool's default (every core, or LOOM_NUM_THREADS) */

loom_status loom_set_num_threads(int n) {
    if (n < 1 || n > 1024) return LOOM_ERR_ARGUMENT;
    threads_set = n;
    loom_parallel_set_num_threads(n);
    blas_single_thread(true);
    return LOOM_OK;
}

int loom_get_num_threads(void) { return threads_set ? threads_set : loom_parallel_num_threads(); }

/* z[r][:] = bias (or 0) for every row: the start of "x . kernel + bias". An inline loop: a memcpy
 * call per row of a few dozen floats (one per output position of a convolution) costs more than
 * the copy itself. */
LOOM_VECTOR_CLONES static void fill_rows_serial(float *restrict z, const float *restrict bias, size_t rows, int n) {
    for (size_t r = 0; r < rows; r++) {
        float *zr = z + r * (size_t)n;
        if (bias)
            for (int j = 0; j < n; j++) zr[j] = bias[j];
        else
            for (int j = 0; j < n; j++) zr[j] = 0.0f;
    }
}

/* z[r][:] += bias, and with relu z[r][:] = relu(z[r][:] + bias): the other end, after a product
 * into z (one pass over its output instead of a fill before and an activation after). A NaN passes
 * through the ReLU, for TerminateOnNaN to see it. */
LOOM_VECTOR_CLONES static void relu_add_bias_serial(float *restrict z, const float *restrict bias, size_t rows,
                                                    int n) {
    for (size_t r = 0; r < rows; r++) {
        float *zr = z + r * (size_t)n;
        for (int j = 0; j < n; j++) {
            float v = zr[j] + bias[j];
            zr[j] = v < 0.0f ? 0.0f : v;
        }
    }
}

LOOM_VECTOR_CLONES static void add_bias_serial(float *restrict z, const float *restrict bias, size_t rows, int n) {
    if (n == 1) { /* a one-unit layer (a regression head): one flat loop, not a loop per row */
        const float b = bias[0];
        for (size_t r = 0; r < rows; r++) z[r] += b;
        return;
    }
    for (size_t r = 0; r < rows; r++) {
        float *zr = z + r * (size_t)n;
        for (int j = 0; j < n; j++) zr[j] += bias[j];
    }
}

typedef enum { BIAS_FILL, BIAS_ADD, BIAS_ADD_RELU } bias_mode;

typedef struct bias_job {
    float *z;
    const float *bias;
    int n;
    bias_mode mode;
} bias_job;

static void bias_range(size_t r0, size_t r1, void *p) {
    const bias_job *j = p;
    float *z = j->z + r0 * (size_t)j->n;
    if (j->mode == BIAS_FILL)
        fill_rows_serial(z, j->bias, r1 - r0, j->n);
    else if (j->mode == BIAS_ADD)
        add_bias_serial(z, j->bias, r1 - r0, j->n);
    else
        relu_add_bias_serial(z, j->bias, r1 - r0, j->n);
}

static void bias_rows(float *z, const float *bias, size_t rows, int n, bias_mode mode) {
    if (n <= 0) return;
    bias_job j = {z, bias, n, mode};
    loom_parallel_for(rows, loom_parallel_min_units((size_t)n), bias_range, &j);
}

void loom_fill_rows(float *z, const float *bias, size_t rows, int n) { bias_rows(z, bias, rows, n, BIAS_FILL); }

void loom_add_bias(float *z, const float *bias, size_t rows, int n, bool relu) {
    bias_rows(z, bias, rows, n, relu ? BIAS_ADD_RELU : BIAS_ADD);
}

/* db[c] = db[c] (or 0) + scale * (the sum over rows of dz[r][c]): a bias's gradient (dz^T . 1), or
 * with scale = -lr plain SGD's step on the bias. With relu_y, ReLU's backward comes first in the same
 * pass: dz[r][c] = 0 where relu_y[r][c] <= 0, so a Dense layer with a ReLU reads its gradient once
 * for both. Threads split the columns, so every db[c] is summed row by row in the same order at
 * any thread count. Each thread reads every row: a share narrower than a few cache lines would
 * read the whole matrix again for a handful of columns, hence at least SUMS_MIN_COLS columns a
 * thread (and the usual amount of work). The running sums of a block of columns live in a local
 * array, so that two threads never write to one cache line of db. */
#define SUMS_BLOCK 64
#define SUMS_MIN_COLS 256

typedef struct sums_job {
    float *db, *dz;
    const float *relu_y;
    bool accumulate;
    float scale;
    size_t rows;
    int ld; /* dz's and relu_y's row stride */
} sums_job;

static inline void column_sums_block(const sums_job *j, size_t b0, size_t nb) {
    float acc[SUMS_BLOCK];
    for (size_t u = 0; u < nb; u++) acc[u] = 0.0f;
    for (size_t r = 0; r < j->rows; r++) {
        float *row = j->dz + r * (size_t)j->ld + b0;
        if (j->relu_y) {
            const float *y = j->relu_y + r * (size_t)j->ld + b0;
            for (size_t u = 0; u < nb; u++) {
                float d = y[u] > 0.0f ? row[u] : 0.0f;
                row[u] = d;
                acc[u] += d;
            }
        } else {
            for (size_t u = 0; u < nb; u++) acc[u] += row[u];
        }
    }
    for (size_t u = 0; u < nb; u++)
        j->db[b0 + u] = j->accumulate ? j->db[b0 + u] + j->scale * acc[u] : j->scale * acc[u];
}

#ifdef LOOM_HAVE_AVX512
/* column_sums_block with its 64 running sums in four registers: the compiler keeps the array
 * above on the stack, and each row then waits for the previous row's stores (32 x 64: 97 against
 * 49 ns). */
LOOM_AVX512_TARGET static inline __mmask16 lanes_from(size_t nb, size_t first) {
    return loom_lanes(nb <= first ? 0 : nb - first >= 16 ? 16 : (int)(nb - first));
}

/* one vector of dz: ReLU's backward in place when y is given, and the running sum */
LOOM_AVX512_TARGET static inline __m512 relu_sum16(__m512 acc, float *row, const float *y, __mmask16 m) {
    __m512 d = _mm512_maskz_loadu_ps(m, row);
    if (y) { /* y > 0 ? d : 0, NaN in y giving 0 as the scalar compare does */
        __mmask16 pos = _mm512_mask_cmp_ps_mask(m, _mm512_maskz_loadu_ps(m, y), _mm512_setzero_ps(), _CMP_GT_OQ);
        d = _mm512_maskz_mov_ps(pos, d);
        _mm512_mask_storeu_ps(row, m, d);
    }
    return _mm512_add_ps(acc, d);
}

LOOM_AVX512_TARGET static inline void add_scaled16(float *db, bool accumulate, float scale, __m512 acc, __mmask16 m) {
    __m512 s = _mm512_mul_ps(_mm512_set1_ps(scale), acc);
    _mm512_mask_storeu_ps(db, m, accumulate ? _mm512_add_ps(_mm512_maskz_loadu_ps(m, db), s) : s);
}

LOOM_AVX512_TARGET static void column_sums_avx512(const sums_job *j, size_t b0, size_t nb) {
    const __mmask16 m0 = lanes_from(nb, 0), m1 = lanes_from(nb, 16), m2 = lanes_from(nb, 32), m3 = lanes_from(nb, 48);
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t r = 0; r < j->rows; r++) {
        float *row = j->dz + r * (size_t)j->ld + b0;
        const float *y = j->relu_y ? j->relu_y + r * (size_t)j->ld + b0 : NULL;
        a0 = relu_sum16(a0, row, y, m0);
        a1 = relu_sum16(a1, row + 16, y ? y + 16 : NULL, m1);
        a2 = relu_sum16(a2, row + 32, y ? y + 32 : NULL, m2);
        a3 = relu_sum16(a3, row + 48, y ? y + 48 : NULL, m3);
    }
    add_scaled16(j->db + b0, j->accumulate, j->scale, a0, m0);
    add_scaled16(j->db + b0 + 16, j->accumulate, j->scale, a1, m1);
    add_scaled16(j->db + b0 + 32, j->accumulate, j->scale, a2, m2);
    add_scaled16(j->db + b0 + 48, j->accumulate, j->scale, a3, m3);
}
#endif

LOOM_VECTOR_CLONES static void column_sums_range(size_t c0, size_t c1, void *p) {
    const sums_job *j = p;
#ifdef LOOM_HAVE_AVX512
    if (loom_avx512_on()) {
        for (size_t b0 = c0; b0 < c1; b0 += SUMS_BLOCK)
            column_sums_avx512(j, b0, c1 - b0 < SUMS_BLOCK ? c1 - b0 : SUMS_BLOCK);
        return;
    }
#endif
    size_t b0 = c0;
    for (; b0 + SUMS_BLOCK <= c1; b0 += SUMS_BLOCK) column_sums_block(j, b0, SUMS_BLOCK);
    if (b0 < c1) column_sums_block(j, b0, c1 - b0);
}

void loom_column_sums(float *db, bool accumulate, float scale, float *dz, const float *relu_y, size_t rows, int cols,
                      int ld) {
    if (cols <= 0) return;
    size_t by_work = loom_parallel_min_units(rows);
    sums_job j = {db, dz, relu_y, accumulate, scale, rows, ld};
    loom_parallel_for((size_t)cols, by_work > SUMS_MIN_COLS ? by_work : SUMS_MIN_COLS, column_sums_range, &j);
}

void loom_add_column_sums(float *db, const float *dz, size_t rows, int cols) {
    loom_column_sums(db, true, 1.0f, (float *)dz, NULL, rows, cols, cols); /* dz is only read */
}
