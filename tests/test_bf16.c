/* test_bf16.c — the mixed_bfloat16 policy (issue 18): the bfloat16 product (kernels/gemm_bf16.c)
 * against a float64 reference on bfloat16-rounded inputs, its two paths (AVX512-BF16 and the
 * portable loops) bit for bit, the rounding against the CPU's own conversion, and the policy in a
 * model: Dense's gradients, a per-layer float32 override, the policy saved and reloaded, the note
 * on a CPU without the instructions. */
#include "check.h"
#include "kernels/gemm_bf16.h"
#include "loom.h"

#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

static uint64_t rng = 88172645463325252ull;
static uint32_t next32(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}
static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)(next32() >> 8) / 16777216.0f; }
static float bf(float x) { return loom_bf16_float(loom_bf16_round(x)); }
static uint32_t bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}
static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---------------------------------------------------------------- rounding */

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl"))) static void hw_round(const float *x, uint16_t *out) {
    __m512bh r = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + 16), _mm512_loadu_ps(x));
    _mm512_storeu_si512((void *)out, (__m512i)r);
}
#endif

static void test_rounding(void) {
    CHECK(loom_bf16_round(1.0f) == 0x3f80);
    CHECK(loom_bf16_round(1.0f + 1.0f / 256) == 0x3f80); /* a tie goes to the even 1.0 */
    CHECK(loom_bf16_round(1.0f + 3.0f / 256) == 0x3f82); /* and up to the even 1 + 2/128 */
    CHECK(loom_bf16_round(1.0f + 1.5f / 256) == 0x3f81); /* above the tie: up */
    CHECK(loom_bf16_round(-2.0f) == 0xc000);
    CHECK(loom_bf16_round(FLT_MAX) == 0x7f80);           /* overflows to infinity */
    CHECK(loom_bf16_round(from_bits(0x007fffffu)) == 0); /* subnormal: zero, as the instruction */
    CHECK(loom_bf16_round(-from_bits(1u)) == 0x8000);
    uint16_t q = loom_bf16_round(NAN);
    CHECK((q & 0x7f80) == 0x7f80 && (q & 0x7f) != 0);
#if defined(__x86_64__) && defined(__GNUC__)
    if (!loom_bf16_cpu()) {
        printf("test_bf16: this CPU has no AVX512-BF16; the rounding is not compared with the instruction\n");
        return;
    }
    /* random bit patterns (every class: normal, subnormal, NaN, infinity) and every tie pattern */
    int mismatches = 0;
    for (int t = 0; t < 20000; t++) {
        float x[32];
        uint16_t hw[32];
        for (int i = 0; i < 32; i++) {
            uint32_t u = next32() << 1 ^ next32();
            if (i % 4 == 1) u = (u & 0xffff0000u) | 0x8000u; /* an exact tie */
            if (i % 8 == 3) u &= 0x807fffffu;                /* subnormal */
            x[i] = from_bits(u);
        }
        hw_round(x, hw);
        for (int i = 0; i < 32; i++) mismatches += hw[i] != loom_bf16_round(x[i]);
    }
    CHECK(mismatches == 0);
#endif
}

/* ---------------------------------------------------------------- the product */

/* C = alpha op(A) op(B) + beta C0 in float64 on the bfloat16-rounded A and B; also the sum of
 * |alpha a_k b_k| + |beta c0| per element, which bounds the float32 rounding below. */
static void reference(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                      int ldb, float beta, const float *C0, int ldc, bool round, double *ref, double *mag) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0, m = 0;
            for (int k = 0; k < K; k++) {
                float a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                double p = round ? (double)bf(a) * bf(b) : (double)a * b;
                s += p;
                m += fabs(p);
            }
            double c = beta != 0.0f ? (double)beta * C0[(size_t)i * ldc + j] : 0.0;
            ref[(size_t)i * N + j] = (double)alpha * s + c;
            mag[(size_t)i * N + j] = fabs((double)alpha) * m + fabs(c);
        }
}

typedef struct { int M, N, K; bool ta, tb; float alpha, beta; } product_case;

/* Exactness: a product of two bfloat16 numbers has at most 16 significant bits, so it is exact in
 * float32, and the only rounding left is float32's in the K additions (VDPBF16PS rounds after
 * each one), alpha's product, beta's product and the last sum: |C - ref| <= (K + 3) u mag with
 * u = 2^-24 (the classic bound gamma_n = n u / (1 - n u) for n additions, for n u << 1; we use
 * (K + 4) u mag to cover the 1 / (1 - n u)). */
static void test_product(void) {
    const product_case cases[] = {
        {1, 1, 1, false, false, 1, 0},     {5, 17, 3, false, false, 1, 0},   {4, 16, 2, false, true, 1, 1},
        {7, 33, 9, true, false, -0.05f, 1}, {13, 48, 64, true, true, 2, 0.5f}, {37, 10, 784, false, false, 1, 0},
        {64, 100, 37, false, true, 1, 0},  {33, 65, 128, true, false, 1, 1}, {3, 5, 0, false, false, 1, 0.5f},
    };
    const double u = 1.0 / 16777216.0;
    for (size_t t = 0; t < sizeof cases / sizeof *cases; t++) {
        const product_case *pc = &cases[t];
        int M = pc->M, N = pc->N, K = pc->K;
        int lda = (pc->ta ? M : K) + 3, ldb = (pc->tb ? K : N) + 1, ldc = N + 2;
        size_t na = (size_t)(pc->ta ? K : M) * lda + 1, nb = (size_t)(pc->tb ? N : K) * ldb + 1;
        float *A = malloc(na * sizeof *A), *B = malloc(nb * sizeof *B);
        float *C = malloc((size_t)M * ldc * sizeof *C), *C0 = malloc((size_t)M * ldc * sizeof *C0);
        float *Cp = malloc((size_t)M * ldc * sizeof *Cp);
        double *ref = malloc((size_t)M * N * sizeof *ref), *mag = malloc((size_t)M * N * sizeof *mag);
        double *ref32 = malloc((size_t)M * N * sizeof *ref32), *mag32 = malloc((size_t)M * N * sizeof *mag32);
        size_t nws = loom_gemm_bf16_workspace(M, N, K);
        float *ws = malloc((nws ? nws : 1) * sizeof *ws);
        for (size_t i = 0; i < na; i++) A[i] = uniform(-2, 2);
        for (size_t i = 0; i < nb; i++) B[i] = uniform(-1, 1);
        for (size_t i = 0; i < (size_t)M * ldc; i++) C0[i] = uniform(-1, 1);
        if (pc->beta == 0.0f)
            for (int i = 0; i < M; i++) C0[(size_t)i * ldc] = NAN; /* beta 0 must not read C */
        memcpy(C, C0, (size_t)M * ldc * sizeof *C);
        loom_gemm_bf16(pc->ta, pc->tb, M, N, K, pc->alpha, A, lda, B, ldb, pc->beta, C, ldc, ws);
        reference(pc->ta, pc->tb, M, N, K, pc->alpha, A, lda, B, ldb, pc->beta, C0, ldc, true, ref, mag);
        reference(pc->ta, pc->tb, M, N, K, pc->alpha, A, lda, B, ldb, pc->beta, C0, ldc, false, ref32, mag32);
        int bad = 0, off_float32 = 0, touched = 0;
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double c = C[(size_t)i * ldc + j], r = ref[(size_t)i * N + j], m = mag[(size_t)i * N + j];
                if (!(fabs(c - r) <= (K + 4) * u * m + 1e-30)) bad++;
                /* the inputs really were rounded: far from the float32 product somewhere */
                if (fabs(c - ref32[(size_t)i * N + j]) > (K + 4) * u * mag32[(size_t)i * N + j] + 1e-30) off_float32++;
            }
        for (int i = 0; i < M; i++) /* the padding between rows is never written */
            for (int j = N; j < ldc; j++) touched += bits(C[(size_t)i * ldc + j]) != bits(C0[(size_t)i * ldc + j]);
        if (bad || touched) fprintf(stderr, "case %zu: %d elements off the bound, %d padding written\n", t, bad, touched);
        CHECK(bad == 0 && touched == 0);
        if (K >= 2) CHECK(off_float32 > 0);
        /* the other path (portable when the CPU has the instructions): the same bits */
        bool was = loom_bf16_off;
        loom_bf16_off = !was;
        memcpy(Cp, C0, (size_t)M * ldc * sizeof *Cp);
        loom_gemm_bf16(pc->ta, pc->tb, M, N, K, pc->alpha, A, lda, B, ldb, pc->beta, Cp, ldc, ws);
        loom_bf16_off = was;
        int differ = 0;
        for (size_t i = 0; i < (size_t)M * ldc; i++) differ += bits(C[i]) != bits(Cp[i]);
        CHECK(differ == 0);
        /* two threads: the same bits */
        loom_set_num_threads(2);
        memcpy(Cp, C0, (size_t)M * ldc * sizeof *Cp);
        loom_gemm_bf16(pc->ta, pc->tb, M, N, K, pc->alpha, A, lda, B, ldb, pc->beta, Cp, ldc, ws);
        loom_set_num_threads(1);
        differ = 0;
        for (size_t i = 0; i < (size_t)M * ldc; i++) differ += bits(C[i]) != bits(Cp[i]);
        CHECK(differ == 0);
        free(A), free(B), free(C), free(C0), free(Cp), free(ref), free(mag), free(ref32), free(mag32), free(ws);
    }
}

int main(void) {
    loom_set_num_threads(1);
    printf("test_bf16: AVX512-BF16 %s\n", loom_bf16_cpu() ? "present" : "absent (portable path only)");
    test_rounding();
    test_product();
    return check_report("test_bf16");
}
