/* gemm_bf16.c — the bfloat16 matrix product (see gemm_bf16.h).
 *
 * Packing. op(A) becomes M rows of Ke bfloat16 (K rounded up to even, the pad 0). op(B) becomes
 * panels of 16 columns; in panel p, pair kp holds 32 bfloat16: lane l's pair (B[2kp][16p + l],
 * B[2kp + 1][16p + l]), which is what VDPBF16PS multiplies with a broadcast pair of A's row:
 * lane l += A[i][2kp + 1] * B[2kp + 1][.] then += A[i][2kp] * B[2kp][.] (the order of the Intel
 * pseudo-code, which the portable loops follow). Columns past N in the last panel are 0 and never
 * stored. */
#include "kernels/gemm_bf16.h"
#include "kernels/parallel.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* The build switch LOOM_IGNORE_AVX512BF16 (CMake) starts it true: a whole build on the portable
 * loops, on a CPU that has the instructions. */
#ifdef LOOM_IGNORE_AVX512BF16
bool loom_bf16_off = true;
#else
bool loom_bf16_off = false;
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#define LOOM_HAVE_BF16_ISA 1
#include <immintrin.h>
#define LOOM_BF16_TARGET __attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl")))
bool loom_bf16_cpu(void) { return __builtin_cpu_supports("avx512bf16"); }
#else
bool loom_bf16_cpu(void) { return false; }
#endif

/* LOOM_IGNORE_AVX512BF16 in the environment (any value but "" and "0"), read once: the same as
 * the build switch, for one run of a program (a CPU without the instructions, simulated). */
static bool env_ignores;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static void read_env(void) {
    const char *v = getenv("LOOM_IGNORE_AVX512BF16");
    env_ignores = v && *v && strcmp(v, "0") != 0;
}
bool loom_bf16_ignored(void) {
    pthread_once(&env_once, read_env);
    return loom_bf16_off || env_ignores;
}

bool loom_bf16_hw(void) { return !loom_bf16_ignored() && loom_bf16_cpu(); }

/* As VCVTNE2PS2BF16 does (checked on the CPU by test_bf16): a subnormal input becomes a zero of
 * its sign, a NaN a quiet NaN, everything else rounds to nearest even (overflowing to infinity). */
uint16_t loom_bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static size_t even(int k) { return ((size_t)k + 1) & ~(size_t)1; }
static size_t panels(int n) { return ((size_t)n + 15) / 16; }

size_t loom_gemm_bf16_workspace(int M, int N, int K) {
    if (M <= 0 || N <= 0 || K <= 0) return 0;
    size_t halves = (size_t)M * even(K) + panels(N) * 16 * even(K);
    return (halves + 1) / 2 + 16; /* + 16: B's panels start on a 64-byte boundary */
}

typedef struct {
    bool ta, tb;
    int M, N, K;
    float alpha, beta;
    const float *A, *B;
    int lda, ldb, ldc;
    float *C;
    uint16_t *pa, *pb;
    size_t ke;
    bool hw;
} job;

static float a_at(const job *j, int i, int k) {
    return j->ta ? j->A[(size_t)k * j->lda + i] : j->A[(size_t)i * j->lda + k];
}
static float b_at(const job *j, int k, int n) {
    return j->tb ? j->B[(size_t)n * j->ldb + k] : j->B[(size_t)k * j->ldb + n];
}

#ifdef LOOM_HAVE_BF16_ISA
/* The packing on the CPU's own conversion (VCVTNE2PS2BF16, the rounding loom_bf16_round copies),
 * 16 or 32 values at a time; the scalar loops below are the portable path. */
static inline __mmask16 lanes16(long n) { return n >= 16 ? (__mmask16)0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1u); }

LOOM_BF16_TARGET static void pack_b_panel_hw(const job *j, size_t p) {
    uint16_t *dst = j->pb + p * 16 * j->ke;
    long n0 = (long)p * 16;
    if (!j->tb) { /* rows 2kp and 2kp + 1 of B, 16 columns: interleaved into lane pairs */
        const __m512i mix = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22,
                                             6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
        __mmask16 m = lanes16(j->N - n0);
        for (size_t kp = 0; kp < j->ke / 2; kp++) {
            int k0 = (int)(2 * kp), k1 = k0 + 1;
            __m512 v0 = _mm512_maskz_loadu_ps(m, j->B + (size_t)k0 * j->ldb + n0);
            __m512 v1 = k1 < j->K ? _mm512_maskz_loadu_ps(m, j->B + (size_t)k1 * j->ldb + n0) : _mm512_setzero_ps();
            __m512i r = (__m512i)_mm512_cvtne2ps_pbh(v1, v0);
            _mm512_store_si512((void *)(dst + kp * 32), _mm512_permutexvar_epi16(mix, r));
        }
        return;
    }
    /* B = W^T: column n of B is row n of W, whose pairs are lane n's pairs */
    uint32_t *d32 = (uint32_t *)(void *)dst;
    for (int l = 0; l < 16; l++) {
        long n = n0 + l;
        const float *row = j->B + (size_t)n * j->ldb;
        for (size_t k = 0; k < j->ke; k += 32) {
            uint32_t pairs[16];
            if (n < j->N) {
                __m512 lo = _mm512_maskz_loadu_ps(lanes16(j->K - (long)k), row + k);
                __m512 hi = _mm512_maskz_loadu_ps(lanes16(j->K - (long)k - 16), row + k + 16);
                _mm512_storeu_si512((void *)pairs, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
            } else {
                memset(pairs, 0, sizeof pairs);
            }
            for (size_t q = 0; q < 16 && k / 2 + q < j->ke / 2; q++) d32[(k / 2 + q) * 16 + (size_t)l] = pairs[q];
        }
    }
}

LOOM_BF16_TARGET static void pack_a_rows_hw(const job *j, size_t begin, size_t end) {
    if (!j->ta) {
        for (size_t i = begin; i < end; i++) {
            const float *row = j->A + i * j->lda;
            uint16_t *dst = j->pa + i * j->ke;
            for (size_t k = 0; k < j->ke; k += 32) {
                __m512 lo = _mm512_maskz_loadu_ps(lanes16(j->K - (long)k), row + k);
                __m512 hi = _mm512_maskz_loadu_ps(lanes16(j->K - (long)k - 16), row + k + 16);
                long left = (long)(j->ke - k);
                __mmask32 m = left >= 32 ? 0xffffffffu : (__mmask32)((1u << left) - 1u);
                _mm512_mask_storeu_epi16((void *)(dst + k), m, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
            }
        }
        return;
    }
    /* A = X^T: row k of X holds column k of these rows, 16 at a time */
    for (size_t i0 = begin; i0 < end; i0 += 16) {
        int n = end - i0 < 16 ? (int)(end - i0) : 16;
        for (size_t k = 0; k < j->ke; k++) {
            uint16_t v[16] = {0};
            if ((int)k < j->K)
                _mm256_storeu_si256((void *)v, (__m256i)_mm512_cvtneps_pbh(
                                                   _mm512_maskz_loadu_ps(lanes16(n), j->A + k * j->lda + i0)));
            for (int l = 0; l < n; l++) j->pa[(i0 + (size_t)l) * j->ke + k] = v[l];
        }
    }
}
#endif

#ifdef LOOM_HAVE_BF16_ISA
LOOM_BF16_TARGET static void round_row_hw(const float *src, int n, uint16_t *dst) {
    for (long k = 0; k < n; k += 32) {
        __m512 lo = _mm512_maskz_loadu_ps(lanes16(n - k), src + k);
        __m512 hi = _mm512_maskz_loadu_ps(lanes16(n - k - 16), src + k + 16);
        long left = n - k;
        __mmask32 m = left >= 32 ? 0xffffffffu : (__mmask32)((1u << left) - 1u);
        _mm512_mask_storeu_epi16((void *)(dst + k), m, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
}
#endif

void loom_bf16_round_row(const float *src, int n, uint16_t *dst) {
#ifdef LOOM_HAVE_BF16_ISA
    if (loom_bf16_hw()) {
        round_row_hw(src, n, dst);
        return;
    }
#endif
    for (int k = 0; k < n; k++) dst[k] = loom_bf16_round(src[k]);
}

/* panels [begin, end) of B */
static void pack_b(size_t begin, size_t end, void *ctx) {
    const job *j = ctx;
    for (size_t p = begin; p < end; p++) {
#ifdef LOOM_HAVE_BF16_ISA
        if (j->hw) {
            pack_b_panel_hw(j, p);
            continue;
        }
#endif
        uint16_t *dst = j->pb + p * 16 * j->ke;
        for (size_t k = 0; k < j->ke; k++)
            for (int l = 0; l < 16; l++) {
                int n = (int)p * 16 + l;
                dst[(k / 2) * 32 + 2 * l + (k & 1)] =
                    n < j->N && (int)k < j->K ? loom_bf16_round(b_at(j, (int)k, n)) : 0;
            }
    }
}

static void pack_a_rows(const job *j, size_t begin, size_t end) {
#ifdef LOOM_HAVE_BF16_ISA
    if (j->hw) {
        pack_a_rows_hw(j, begin, end);
        return;
    }
#endif
    for (size_t i = begin; i < end; i++) {
        uint16_t *dst = j->pa + i * j->ke;
        for (size_t k = 0; k < j->ke; k++) dst[k] = (int)k < j->K ? loom_bf16_round(a_at(j, (int)i, (int)k)) : 0;
    }
}

static void store(const job *j, size_t i, size_t col, const float *acc, int n) {
    float *c = j->C + i * j->ldc + col;
    for (int l = 0; l < n; l++) c[l] = j->beta == 0.0f ? j->alpha * acc[l] : j->alpha * acc[l] + j->beta * c[l];
}

/* VDPBF16PS flushes a subnormal result of each addition to a zero of its sign */
static inline float ftz(float x) { return fabsf(x) < FLT_MIN ? copysignf(0.0f, x) : x; }

static void rows_portable(const job *j, size_t begin, size_t end) {
    size_t pairs = j->ke / 2;
    for (size_t i = begin; i < end; i++) {
        const uint16_t *a = j->pa + i * j->ke;
        for (size_t p = 0; p < panels(j->N); p++) {
            const uint16_t *b = j->pb + p * 16 * j->ke;
            float acc[16] = {0};
            for (size_t kp = 0; kp < pairs; kp++) {
                float a0 = loom_bf16_float(a[2 * kp]), a1 = loom_bf16_float(a[2 * kp + 1]);
                const uint16_t *bk = b + kp * 32;
                for (int l = 0; l < 16; l++) {
                    acc[l] = ftz(acc[l] + a1 * loom_bf16_float(bk[2 * l + 1]));
                    acc[l] = ftz(acc[l] + a0 * loom_bf16_float(bk[2 * l]));
                }
            }
            int n = j->N - (int)p * 16 < 16 ? j->N - (int)p * 16 : 16;
            store(j, i, p * 16, acc, n);
        }
    }
}

#ifdef LOOM_HAVE_BF16_ISA
/* 4 rows x 32 columns a block: 8 accumulators, two loads of B per pair shared by the four rows */
LOOM_BF16_TARGET static void rows_avx512bf16(const job *j, size_t begin, size_t end) {
    size_t pairs = j->ke / 2, np = panels(j->N);
    for (size_t i0 = begin; i0 < end; i0 += 4) {
        int mr = end - i0 < 4 ? (int)(end - i0) : 4;
        const uint32_t *a[4];
        for (int r = 0; r < 4; r++) a[r] = (const uint32_t *)(const void *)(j->pa + (i0 + (r < mr ? r : 0)) * j->ke);
        for (size_t p = 0; p < np; p += 2) {
            bool two = p + 1 < np;
            const uint16_t *b0 = j->pb + p * 16 * j->ke, *b1 = two ? b0 + 16 * j->ke : b0;
            __m512 acc[4][2];
            for (int r = 0; r < 4; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
            for (size_t kp = 0; kp < pairs; kp++) {
                __m512bh v0 = (__m512bh)_mm512_load_si512((const void *)(b0 + kp * 32));
                __m512bh v1 = (__m512bh)_mm512_load_si512((const void *)(b1 + kp * 32));
                for (int r = 0; r < 4; r++) {
                    uint32_t pair;
                    memcpy(&pair, a[r] + kp, sizeof pair);
                    __m512bh x = (__m512bh)_mm512_set1_epi32((int)pair);
                    acc[r][0] = _mm512_dpbf16_ps(acc[r][0], x, v0);
                    acc[r][1] = _mm512_dpbf16_ps(acc[r][1], x, v1);
                }
            }
            for (int r = 0; r < mr; r++)
                for (int h = 0; h < (two ? 2 : 1); h++) {
                    int col = (int)(p + h) * 16, n = j->N - col < 16 ? j->N - col : 16;
                    float out[16];
                    _mm512_storeu_ps(out, acc[r][h]);
                    store(j, i0 + r, (size_t)col, out, n);
                }
        }
    }
}
#endif

static void rows(size_t begin, size_t end, void *ctx) {
    const job *j = ctx;
    pack_a_rows(j, begin, end);
#ifdef LOOM_HAVE_BF16_ISA
    if (j->hw) {
        rows_avx512bf16(j, begin, end);
        return;
    }
#endif
    rows_portable(j, begin, end);
}

void loom_gemm_bf16(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc, float *workspace) {
    if (M <= 0 || N <= 0) return;
    size_t ke = even(K);
    uint16_t *pa = (uint16_t *)(void *)workspace;
    uintptr_t at = (uintptr_t)(pa + (size_t)M * ke);
    uint16_t *pb = (uint16_t *)(void *)((at + 63) & ~(uintptr_t)63);
    job j = {trans_a, trans_b, M, N, K, alpha, beta, A, B, lda, ldb, ldc, C, pa, pb, ke, loom_bf16_hw()};
    if (K <= 0) { /* no products: C = beta * C */
        float zero[16] = {0};
        for (int i = 0; i < M; i++)
            for (int c = 0; c < N; c += 16) store(&j, (size_t)i, (size_t)c, zero, N - c < 16 ? N - c : 16);
        return;
    }
    size_t per_panel = 16 * ke, per_row = (size_t)N * ke;
    loom_parallel_for(panels(N), loom_parallel_min_units(per_panel), pack_b, &j);
    /* rows in multiples of 4 per piece would keep blocks whole; any split gives the same bits */
    loom_parallel_for((size_t)M, loom_parallel_min_units(per_row), rows, &j);
}
