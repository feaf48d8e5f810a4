/* test_bf16.c — the mixed_bfloat16 policy (issue 18): the bfloat16 product (kernels/gemm_bf16.c)
 * against a float64 reference on bfloat16-rounded inputs, its two paths (AVX512-BF16 and the
 * portable loops) bit for bit, the rounding against the CPU's own conversion, and the policy in a
 * model: Dense's forward and gradients (the dx product exactly), a per-layer float32 override,
 * the policy saved and reloaded (and the forms Keras files hold), the note
 * on a CPU without the instructions. */
#include "check.h"
#include "io/model_json.h"
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

/* ---------------------------------------------------------------- the policy in a model */

enum { NB = 24, IN = 37, HID = 20, OUT = 3 };
static float xs[NB * IN], ys[NB * OUT];

static void fill_data(void) {
    for (int i = 0; i < NB * IN; i++) xs[i] = uniform(-1, 1);
    for (int i = 0; i < NB * OUT; i++) ys[i] = uniform(-1, 1);
}

static loom_data batch_of(loom_array *x, loom_array *y) {
    *x = (loom_array){.name = "x", .data = xs, .n = NB, .count = NB * IN};
    *y = (loom_array){.name = NULL, .data = ys, .n = NB, .count = NB * OUT};
    return (loom_data){.n_x = 1, .x = x, .n_y = 1, .y = y};
}

static loom_status compile_with(loom_model *m, loom_dtype_policy p) {
    loom_loss l = {.name = "mse"};
    loom_compile_config cfg = {.n_losses = 1, .losses = &l, .optimizer = loom_sgd(0.1f, 0, 0), .dtype_policy = p};
    return loom_compile(m, &cfg);
}

/* One Dense (x . K + b, linear) under mixed_bfloat16 against float64 on the rounded x and K.
 * Forward: z = sum_k bf(x) bf(K) + b, exact up to float32's additions: (IN + 4) u mag.
 * Backward: dz = 2 (z - y) / (NB OUT) in float32 from that z; the kernel's gradient x^T dz rounds
 * x and dz to bfloat16, so against dK_ref = sum_r bf(x) dz_ref it is off by dz's rounding
 * (at most 2^-8 |dz|, bfloat16's unit roundoff), dz's own float32 error (from z's, times
 * 2 / (NB OUT), plus 3 roundings), and float32's NB + 4 additions: each bounded below per element.
 * Tighter: the gradient must be the float32 sum of bf(x) bf(dz_ref) to (NB + 4) u, exact but for
 * the rows whose dz lies within its float32 error of a bfloat16 rounding boundary (there loom's dz
 * may round to the neighbour): true only if both x and dz were rounded.
 * The bias's gradient is a float32 column sum of dz (no bfloat16): dz's error plus NB + 4 u. */
static void test_dense_mixed(void) {
    loom_graph *g = loom_graph_new(7);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){IN});
    loom_tensor *z = loom_call(loom_dense(g, "d", OUT, LOOM_LINEAR, NULL), x);
    loom_model *m = loom_model_new(g, 1, &x, 1, &z);
    CHECK(m != NULL);
    if (!m) return;
    CHECK_STATUS(compile_with(m, LOOM_POLICY_MIXED_BFLOAT16), LOOM_OK);
    CHECK(loom_model_layer_policy(m, loom_model_layer(m, 1)) == LOOM_POLICY_MIXED_BFLOAT16);
    float K[IN * OUT], b[OUT];
    for (int i = 0; i < OUT; i++) b[i] = uniform(-0.5f, 0.5f);
    CHECK_STATUS(loom_set_weights(m, "d", 1, b, OUT), LOOM_OK);
    CHECK_STATUS(loom_get_weights(m, "d", 0, K, IN * OUT), LOOM_OK);
    loom_array xa, ya;
    loom_data d = batch_of(&xa, &ya);
    float pred[NB * OUT], grad[IN * OUT + OUT], grad32[IN * OUT + OUT];
    CHECK(loom_param_count(m) == IN * OUT + OUT);
    CHECK_STATUS(loom_predict(m, 1, &xa, NB, (float *const[]){pred}), LOOM_OK);
    CHECK_STATUS(loom_gradients(m, &d, 0, NULL, grad, NULL), LOOM_OK);
    const double u = 1.0 / 16777216.0, ub = 1.0 / 256;
    static double dzr[NB * OUT], dzerr[NB * OUT];
    int bad_z = 0, bad_k = 0, bad_b = 0, bad_exact = 0, unsafe = 0;
    const double scale = 2.0 / (NB * OUT);
    for (int r = 0; r < NB; r++)
        for (int j = 0; j < OUT; j++) {
            double s = b[j], mag = fabs(b[j]);
            for (int k = 0; k < IN; k++) {
                double p = (double)bf(xs[r * IN + k]) * bf(K[k * OUT + j]);
                s += p, mag += fabs(p);
            }
            bad_z += !(fabs(pred[r * OUT + j] - s) <= (IN + 4) * u * mag);
            dzr[r * OUT + j] = scale * (s - ys[r * OUT + j]);
            dzerr[r * OUT + j] = scale * (IN + 4) * u * mag + 3 * u * (fabs(dzr[r * OUT + j]) + scale * mag);
        }
    for (int k = 0; k < IN; k++)
        for (int j = 0; j < OUT; j++) {
            double s = 0, tol = 0, sr = 0, mr = 0, slack = 0;
            for (int r = 0; r < NB; r++) {
                double xb = bf(xs[r * IN + k]), dz = dzr[r * OUT + j], e = dzerr[r * OUT + j];
                s += xb * dz;
                tol += fabs(xb) * ((fabs(dz) + e) * (1 + ub) * (1 + (NB + 4) * u) - fabs(dz));
                sr += xb * bf((float)dz), mr += fabs(xb * bf((float)dz));
                /* a bfloat16 rounding boundary within dz's float32 error: loom's dz may round to
                 * the neighbour, at most 2^-7 |dz| away */
                if (loom_bf16_round((float)(dz - e)) != loom_bf16_round((float)(dz + e)))
                    slack += fabs(xb) * (2 * ub * fabs(dz) + e), unsafe++;
            }
            bad_k += !(fabs(grad[k * OUT + j] - s) <= tol);
            /* the exact check: the float32 sum of the products bf(x) bf(dz) to (NB + 4) u of
             * their magnitudes, only true if both were rounded */
            bad_exact += !(fabs(grad[k * OUT + j] - sr) <= (NB + 4) * u * mr * (1 + 4 * ub) + slack);
        }
    for (int j = 0; j < OUT; j++) {
        double s = 0, tol = 0;
        for (int r = 0; r < NB; r++) s += dzr[r * OUT + j], tol += dzerr[r * OUT + j] + (NB + 4) * u * fabs(dzr[r * OUT + j]);
        bad_b += !(fabs(grad[IN * OUT + j] - s) <= tol);
    }
    if (bad_z || bad_k || bad_b) fprintf(stderr, "mixed Dense: %d z, %d kernel, %d bias off the bound\n", bad_z, bad_k, bad_b);
    CHECK(bad_z == 0 && bad_k == 0 && bad_b == 0);
    printf("exact kernel-gradient check: %d of %d (row, unit) terms near a bfloat16 boundary\n", unsafe / IN, NB * OUT);
    CHECK(bad_exact == 0);
    CHECK(unsafe < IN * NB * OUT / 4); /* the exact check is mostly exact */
    /* and it is not float32's: the same model compiled float32 gives other numbers */
    CHECK_STATUS(compile_with(m, LOOM_POLICY_FLOAT32), LOOM_OK);
    CHECK_STATUS(loom_gradients(m, &d, 0, NULL, grad32, NULL), LOOM_OK);
    double diff = 0, norm = 0;
    for (int i = 0; i < IN * OUT; i++) diff += fabs(grad[i] - grad32[i]), norm += fabs(grad32[i]);
    CHECK(diff > 1e-6 * norm);
    CHECK(diff < 1.0 / 64 * norm); /* bfloat16's few bits, not a wrong product */
    loom_model_free(m);
}

/* Two Dense layers (tanh, then linear) trained a few steps under mixed_bfloat16 against float32:
 * every product's two inputs are rounded (relative error <= 2^-8 each) and the backward chains
 * four products (z_A, z_B, dx_B, dK_A), so the gradients stay within about 4 x 2^-7 = 2^-5 of
 * float32's in norm (typically far closer: the rounding errors are of both signs); the loss after
 * training within 2 %. Also: a per-layer float32 override is honoured, the policy is saved and
 * read back, and the fallback gives the same bits. */
static loom_model *two_layers(loom_layer **A, loom_layer **B) {
    loom_graph *g = loom_graph_new(11);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){IN});
    *A = loom_dense(g, "A", HID, LOOM_TANH, NULL);
    *B = loom_dense(g, "B", OUT, LOOM_LINEAR, NULL);
    loom_tensor *y = loom_call(*B, loom_call(*A, x));
    return loom_model_new(g, 1, &x, 1, &y);
}

static void predict_bits(loom_model *m, float *out) {
    loom_array xa = {.name = "x", .data = xs, .n = NB, .count = NB * IN};
    CHECK_STATUS(loom_predict(m, 1, &xa, NB, (float *const[]){out}), LOOM_OK);
}

static bool same_bits(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof *a) == 0; }

static void test_two_layers(const char *dir) {
    loom_layer *A, *B;
    loom_model *m = two_layers(&A, &B);
    CHECK(m != NULL);
    if (!m) return;
    size_t np = loom_param_count(m);
    float *g32 = malloc(np * sizeof *g32), *gbf = malloc(np * sizeof *gbf);
    loom_array xa, ya;
    loom_data d = batch_of(&xa, &ya);
    CHECK_STATUS(compile_with(m, LOOM_POLICY_FLOAT32), LOOM_OK);
    CHECK_STATUS(loom_gradients(m, &d, 0, NULL, g32, NULL), LOOM_OK);
    CHECK_STATUS(compile_with(m, LOOM_POLICY_MIXED_BFLOAT16), LOOM_OK);
    CHECK((strcmp(loom_model_compile_note(m), "") == 0) == loom_bf16_hw());
    CHECK_STATUS(loom_gradients(m, &d, 0, NULL, gbf, NULL), LOOM_OK);
    double diff = 0, norm = 0;
    for (size_t i = 0; i < np; i++) diff += ((double)gbf[i] - g32[i]) * (gbf[i] - g32[i]), norm += (double)g32[i] * g32[i];
    printf("two Dense layers: |g_bf16 - g_f32| / |g_f32| = %.3g (bound 2^-5)\n", sqrt(diff / norm));
    CHECK(diff > 0 && sqrt(diff / norm) <= 1.0 / 32);

    /* per-layer override: global mixed with B float32 == global float32 with A mixed */
    float p_mixed[NB * OUT], p_over[NB * OUT], p_same[NB * OUT], p_f32[NB * OUT], p_loaded[NB * OUT];
    predict_bits(m, p_mixed);
    CHECK_STATUS(loom_layer_set_dtype_policy(B, LOOM_POLICY_FLOAT32), LOOM_OK);
    CHECK_STATUS(compile_with(m, LOOM_POLICY_MIXED_BFLOAT16), LOOM_OK);
    CHECK(loom_model_layer_policy(m, A) == LOOM_POLICY_MIXED_BFLOAT16);
    CHECK(loom_model_layer_policy(m, B) == LOOM_POLICY_FLOAT32);
    predict_bits(m, p_over);
    CHECK_STATUS(loom_layer_set_dtype_policy(B, LOOM_POLICY_DEFAULT), LOOM_OK);
    CHECK_STATUS(loom_layer_set_dtype_policy(A, LOOM_POLICY_MIXED_BFLOAT16), LOOM_OK);
    CHECK_STATUS(compile_with(m, LOOM_POLICY_FLOAT32), LOOM_OK);
    predict_bits(m, p_same);
    CHECK_STATUS(loom_layer_set_dtype_policy(A, LOOM_POLICY_DEFAULT), LOOM_OK);
    CHECK_STATUS(compile_with(m, LOOM_POLICY_DEFAULT), LOOM_OK);
    predict_bits(m, p_f32);
    CHECK(same_bits(p_over, p_same, NB * OUT));
    CHECK(!same_bits(p_over, p_mixed, NB * OUT));
    CHECK(!same_bits(p_over, p_f32, NB * OUT));
    CHECK(loom_layer_set_dtype_policy(A, (loom_dtype_policy)7) == LOOM_ERR_ARGUMENT);

    /* saved and read back: A mixed (its own), B float32 under a mixed model */
    char path[512];
    snprintf(path, sizeof path, "%s/bf16_policy.loom", dir);
    CHECK_STATUS(loom_layer_set_dtype_policy(B, LOOM_POLICY_FLOAT32), LOOM_OK);
    CHECK_STATUS(compile_with(m, LOOM_POLICY_MIXED_BFLOAT16), LOOM_OK);
    CHECK_STATUS(loom_model_save(m, path), LOOM_OK);
    FILE *f = fopen(path, "rb");
    static char file[1 << 20];
    size_t n = f ? fread(file, 1, sizeof file - 1, f) : 0;
    if (f) fclose(f);
    file[n] = 0;
    const char *want = "\"dtype\":{\"module\":\"keras\",\"class_name\":\"DTypePolicy\",\"config\":{\"name\":\"mixed_bfloat16\"}";
    size_t hits = 0;
    for (size_t i = 0; i + strlen(want) <= n; i++) hits += memcmp(file + i, want, strlen(want)) == 0;
    CHECK(hits == 1); /* layer A only (B float32, the Input layer keeps its dtype) */
    char err[256];
    loom_model *r = loom_model_load(path, err, sizeof err);
    CHECK(r != NULL);
    if (r) {
        CHECK(loom_layer_dtype_policy(loom_model_layer(r, 1)) == LOOM_POLICY_MIXED_BFLOAT16);
        CHECK(loom_layer_dtype_policy(loom_model_layer(r, 2)) == LOOM_POLICY_DEFAULT);
        predict_bits(r, p_loaded);
        CHECK(same_bits(p_loaded, p_over, NB * OUT));
        loom_model_free(r);
    }
    remove(path);

    /* the fallback: the same bits, and the note */
    CHECK_STATUS(loom_layer_set_dtype_policy(B, LOOM_POLICY_DEFAULT), LOOM_OK);
    bool was_off = loom_bf16_off;
    loom_bf16_off = true;
    CHECK_STATUS(compile_with(m, LOOM_POLICY_MIXED_BFLOAT16), LOOM_OK);
    CHECK(strstr(loom_model_compile_note(m), "no AVX512-BF16") != NULL);
    predict_bits(m, p_over);
    CHECK(same_bits(p_over, p_mixed, NB * OUT));
    CHECK_STATUS(compile_with(m, LOOM_POLICY_FLOAT32), LOOM_OK);
    CHECK(strcmp(loom_model_compile_note(m), "") == 0); /* float32 notes nothing */
    loom_bf16_off = was_off;

    /* training: a few SGD steps in each policy end at nearly the same loss */
    float loss[2];
    for (int p = 0; p < 2; p++) {
        loom_model *t = two_layers(&A, &B);
        CHECK_STATUS(compile_with(t, p ? LOOM_POLICY_MIXED_BFLOAT16 : LOOM_POLICY_FLOAT32), LOOM_OK);
        float logs[4];
        int nl = 0;
        for (int s = 0; s < 30; s++) CHECK_STATUS(loom_train_on_batch(t, &d, logs, 4, &nl), LOOM_OK);
        loss[p] = logs[0];
        loom_model_free(t);
    }
    printf("loss after 30 SGD steps: float32 %.6f, mixed_bfloat16 %.6f\n", loss[0], loss[1]);
    CHECK(fabsf(loss[1] - loss[0]) <= 0.02f * loss[0]);
    free(g32), free(gbf);
    loom_model_free(m);
}

/* The backward's input gradient dx = dz K^T in bfloat16, exactly: with mae and targets far above
 * the outputs, dz = -1 / (16 x 4) for every element, a power of two (exact in bfloat16 and
 * independent of the forward's rounding), so dx_B = dz bf(K_B)^T holds exact products and only
 * float32's additions round. A float32 layer A before B (the per-layer override) turns dx_B into
 * its kernel's gradient x^T dx_B in float32: bound (OUT4 + NB16 + 8) u sum |x| |dz| |bf(K_B)|.
 * Unrounded K_B would be off by up to 2^-8 of that sum. */
static void test_dx_exact(void) {
    enum { NB16 = 16, OUT4 = 4 };
    loom_graph *g = loom_graph_new(5);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){IN});
    loom_layer *A = loom_dense(g, "A", HID, LOOM_LINEAR, NULL), *B = loom_dense(g, "B", OUT4, LOOM_LINEAR, NULL);
    loom_tensor *y = loom_call(B, loom_call(A, x));
    loom_model *m = loom_model_new(g, 1, &x, 1, &y);
    CHECK(m != NULL);
    if (!m) return;
    CHECK_STATUS(loom_layer_set_dtype_policy(A, LOOM_POLICY_FLOAT32), LOOM_OK);
    loom_loss l = {.name = "mae"};
    loom_compile_config cfg = {.n_losses = 1, .losses = &l, .dtype_policy = LOOM_POLICY_MIXED_BFLOAT16};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    static float far[NB16 * OUT4], KB[HID * OUT4];
    for (int i = 0; i < NB16 * OUT4; i++) far[i] = 1000;
    CHECK_STATUS(loom_get_weights(m, "B", 0, KB, HID * OUT4), LOOM_OK);
    loom_array xa = {.name = "x", .data = xs, .n = NB16, .count = NB16 * IN};
    loom_array ya = {.name = NULL, .data = far, .n = NB16, .count = NB16 * OUT4};
    loom_data d = {.n_x = 1, .x = &xa, .n_y = 1, .y = &ya};
    size_t np = loom_param_count(m);
    float *grad = malloc(np * sizeof *grad);
    CHECK_STATUS(loom_gradients(m, &d, 0, NULL, grad, NULL), LOOM_OK);
    const double u = 1.0 / 16777216.0, dz = -1.0 / (NB16 * OUT4);
    int bad = 0, unrounded = 0;
    for (int i = 0; i < IN; i++)
        for (int h = 0; h < HID; h++) {
            double dxs = 0, mag = 0, s32 = 0; /* dx_B[r][h] = dz sum_j bf(K_B[h][j]), the same for every row */
            for (int j = 0; j < OUT4; j++) dxs += dz * bf(KB[h * OUT4 + j]), mag += fabs(dz * bf(KB[h * OUT4 + j])),
                                           s32 += dz * KB[h * OUT4 + j];
            double ref = 0, refm = 0, ref32 = 0;
            for (int r = 0; r < NB16; r++) ref += xs[r * IN + i] * dxs, refm += fabs(xs[r * IN + i]) * mag,
                                            ref32 += xs[r * IN + i] * s32;
            double got = grad[i * HID + h], tol = (OUT4 + NB16 + 8) * u * refm;
            bad += !(fabs(got - ref) <= tol);
            unrounded += fabs(ref32 - ref) > 2 * tol; /* where float32's K_B would fail the check */
        }
    printf("dx in bfloat16: %d of %d kernel gradients of the float32 layer off the exact bound; "
           "%d would be off with an unrounded kernel\n", bad, IN * HID, unrounded);
    CHECK(bad == 0);
    CHECK(unrounded > IN * HID / 2);
    free(grad);
    loom_model_free(m);
}

/* The forms a layer's "dtype" takes in Keras files: a name, a policy object; an unsupported
 * policy is refused naming the layer and the policy. */
static loom_model *reload_with_dtype(loom_model *m, const char *layer, cJSON *dtype, loom_error *err) {
    cJSON *root = loom_arch_to_json(m, err);
    const cJSON *L;
    cJSON_ArrayForEach(L, cJSON_GetObjectItem(cJSON_GetObjectItem(root, "config"), "layers")) {
        cJSON *cfg = cJSON_GetObjectItem(L, "config");
        if (strcmp(cJSON_GetObjectItem(cfg, "name")->valuestring, layer) == 0) cJSON_ReplaceItemInObject(cfg, "dtype", dtype);
    }
    memset(err, 0, sizeof *err);
    loom_model *r = loom_arch_from_json(root, "test", false, err);
    cJSON_Delete(root);
    return r;
}

static void test_dtype_forms(void) {
    loom_layer *A, *B;
    loom_model *m = two_layers(&A, &B);
    loom_error err;
    loom_model *r = reload_with_dtype(m, "B", cJSON_CreateString("mixed_bfloat16"), &err);
    CHECK(r && loom_layer_dtype_policy(loom_model_layer(r, 2)) == LOOM_POLICY_MIXED_BFLOAT16);
    loom_model_free(r);
    r = reload_with_dtype(m, "B", cJSON_Parse("{\"module\": \"keras\", \"class_name\": \"DTypePolicy\", "
                                              "\"config\": {\"name\": \"float32\"}, \"registered_name\": null}"), &err);
    CHECK(r && loom_layer_dtype_policy(loom_model_layer(r, 2)) == LOOM_POLICY_DEFAULT);
    loom_model_free(r);
    r = reload_with_dtype(m, "A", cJSON_Parse("{\"class_name\": \"DTypePolicy\", \"config\": {\"name\": \"mixed_float16\"}}"),
                          &err);
    CHECK(r == NULL && err.code == LOOM_ERR_DATA && strstr(err.msg, "layer A") && strstr(err.msg, "mixed_float16"));
    loom_model_free(r);
    r = reload_with_dtype(m, "A", cJSON_CreateNumber(3), &err);
    CHECK(r == NULL && err.code == LOOM_ERR_DATA && strstr(err.msg, "layer A"));
    loom_model_free(r);
    loom_model_free(m);
}

int main(void) {
    loom_set_num_threads(1);
    printf("test_bf16: AVX512-BF16 %s%s\n", loom_bf16_cpu() ? "present" : "absent (portable path only)",
           loom_bf16_cpu() && !loom_bf16_hw() ? ", ignored by this build (LOOM_IGNORE_AVX512BF16)" : "");
    test_rounding();
    test_product();
    fill_data();
    test_dense_mixed();
    test_two_layers(".");
    test_dtype_forms();
    test_dx_exact();
    return check_report("test_bf16");
}
