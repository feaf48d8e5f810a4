/* activations.c — keras.activations, forward and backward side by side.
 *
 * Definitions follow Keras 3: gelu is the exact erf form (approximate=False), elu has alpha 1,
 * leaky_relu a negative slope of 0.2, softmax runs over the last axis. */
#include "ops/activations.h"
#include "kernels/vector_clones.h"
#include "kernels/parallel.h"
#include "kernels/avx512.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static const char *const act_names[LOOM_ACTIVATION_COUNT] = {
    [LOOM_LINEAR] = "linear",   [LOOM_RELU] = "relu",       [LOOM_SIGMOID] = "sigmoid",
    [LOOM_TANH] = "tanh",       [LOOM_SOFTMAX] = "softmax", [LOOM_GELU] = "gelu",
    [LOOM_ELU] = "elu",         [LOOM_LEAKY_RELU] = "leaky_relu",
    [LOOM_SOFTPLUS] = "softplus", [LOOM_SWISH] = "swish",
    [LOOM_HARD_SIGMOID] = "hard_sigmoid", [LOOM_HARD_SIGMOID_KERAS2] = "hard_sigmoid_keras2",
};

/* "unknown" rather than NULL so that callers can print it in a message without a check. */
const char *loom_activation_name(loom_activation a) {
    if ((int)a < 0 || a >= LOOM_ACTIVATION_COUNT) return "unknown";
    return act_names[a];
}

int loom_activation_from_name(const char *name) {
    if (!name) return -1;
    for (int a = 0; a < LOOM_ACTIVATION_COUNT; a++)
        if (strcmp(name, act_names[a]) == 0) return a;
    /* Keras 3 exports swish as silu too. */
    if (strcmp(name, "silu") == 0) return LOOM_SWISH;
    return -1;
}

#define LEAKY_SLOPE 0.2f
#define SQRT1_2 0.70710678118654752f /* M_SQRT1_2 is not in C11 */

/* exp of a non-positive argument only, so it never overflows. */
static inline float sigmoidf(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

/* exp(x) for x <= 0 (a softmax's shifted logits), from element-wise IEEE operations only, so that
 * a loop of it vectorises and every vector width gives the same bits (libm's expf is a call per
 * element: two thirds of a 10-class softmax's time). Cephes's expf: x = k ln2 + r with
 * |r| <= ln2/2, a degree-6 polynomial for e^r, 2^k written into the exponent bits. Within 2 ulp of
 * expf; exp(0) is exactly 1; 0 below -87.3 (where e^x leaves the normal floats); NaN stays NaN. */
static inline float exp_nonpositive(float x) {
    const float round = 12582912.0f; /* 1.5 * 2^23: adding it rounds x log2(e) to an integer k */
    float k = x * 1.44269504088896341f + round;
    uint32_t kbits;
    memcpy(&kbits, &k, sizeof kbits); /* k's integer is in the low mantissa bits */
    k = k - round;
    float r = x - k * 0.693359375f; /* ln2 in two parts, the first exact in a few bits */
    r = r - k * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t sbits = (kbits - 0x4B400000u + 127u) << 23; /* 2^k (unsigned: no overflow to worry about) */
    float scale;
    memcpy(&scale, &sbits, sizeof scale);
    return x < -87.33654f ? 0.0f : p * scale;
}

LOOM_VECTOR_CLONES static void exp_nonpositive_all(float *restrict y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = exp_nonpositive(y[i]);
}

/* sigmoid(x) = 1 / (1 + e^-x) for x >= 0 and e^x / (1 + e^x) below, with e = e^-|x| <= 1 (never
 * overflows): both sides are one select away, so the loop vectorises. */
LOOM_VECTOR_CLONES void loom_sigmoid_vec(const float *restrict x, float *restrict y, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float e = exp_nonpositive(-fabsf(x[i]));
        y[i] = (x[i] >= 0.0f ? 1.0f : e) / (1.0f + e);
    }
}

/* tanh as Cephes's tanhf: below |x| 0.625 an odd polynomial (where 1 - e^-2|x| would cancel),
 * above (1 - e) / (1 + e) with e = e^-2|x|, and the sign of x. */
LOOM_VECTOR_CLONES void loom_tanh_vec(const float *restrict x, float *restrict y, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i], a = fabsf(v), z = v * v;
        float p = -5.70498872745e-3f;
        p = p * z + 2.06390887954e-2f;
        p = p * z - 5.37397155531e-2f;
        p = p * z + 1.33314422036e-1f;
        p = p * z - 3.33332819422e-1f;
        float small = p * z * v + v;
        float e = exp_nonpositive(-2.0f * a);
        float large = copysignf((1.0f - e) / (1.0f + e), v);
        y[i] = a < 0.625f ? small : large;
    }
}

/* Rows of at most SOFTMAX_NARROW values sum their exponentials in float (at most 16 terms, one of
 * them exactly 1: a few ulp), wider rows in double. */
#define SOFTMAX_NARROW 16

/* Three passes, so that the exponentials of all rows are one vectorised loop: shift each row by its
 * maximum, exponentiate, normalise. x == y is allowed. */
static void softmax_rows(const float *x, float *y, size_t rows, int dim) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * (size_t)dim;
        float *yr = y + r * (size_t)dim;
        float mx = xr[0];
        for (int j = 1; j < dim; j++) mx = xr[j] > mx ? xr[j] : mx;
        for (int j = 0; j < dim; j++) yr[j] = xr[j] - mx;
    }
    exp_nonpositive_all(y, rows * (size_t)dim);
    for (size_t r = 0; r < rows; r++) {
        float *yr = y + r * (size_t)dim, inv;
        if (dim <= SOFTMAX_NARROW) {
            float sum = 0.0f;
            for (int j = 0; j < dim; j++) sum += yr[j];
            inv = 1.0f / sum;
        } else {
            double sum = 0.0;
            for (int j = 0; j < dim; j++) sum += yr[j];
            inv = (float)(1.0 / sum);
        }
        for (int j = 0; j < dim; j++) yr[j] *= inv;
    }
}

#ifdef LOOM_HAVE_AVX512
/* exp_nonpositive on 16 lanes, operation for operation (no fused multiply-adds: the scalar code
 * has none either), so both give the same bits. */
LOOM_AVX512_TARGET static inline __m512 exp_nonpositive16(__m512 x) {
    const __m512 round = _mm512_set1_ps(12582912.0f);
    __m512 k = _mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), round);
    __m512i kbits = _mm512_castps_si512(k);
    k = _mm512_sub_ps(k, round);
    __m512 r = _mm512_sub_ps(x, _mm512_mul_ps(k, _mm512_set1_ps(0.693359375f)));
    r = _mm512_sub_ps(r, _mm512_mul_ps(k, _mm512_set1_ps(-2.12194440e-4f)));
    static const float c[] = {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f, 1.6666665459e-1f,
                              5.0000001201e-1f};
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    for (int i = 0; i < 5; i++) p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(c[i]));
    p = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(p, r), r), r), _mm512_set1_ps(1.0f));
    __m512i sbits = _mm512_slli_epi32(
        _mm512_add_epi32(_mm512_sub_epi32(kbits, _mm512_set1_epi32(0x4B400000)), _mm512_set1_epi32(127)), 23);
    __mmask16 under = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.33654f), _CMP_LT_OQ);
    return _mm512_mask_blend_ps(under, _mm512_mul_ps(p, _mm512_castsi512_ps(sbits)), _mm512_setzero_ps());
}

/* softmax_rows for dim <= 16, 16 rows at a time turned into lanes (avx512.h): the same bits. */
LOOM_AVX512_TARGET static void softmax_rows16(const float *x, float *y, size_t rows, int dim) {
    for (size_t r0 = 0; r0 < rows; r0 += 16) {
        int n = rows - r0 < 16 ? (int)(rows - r0) : 16;
        __m512 v[16];
        loom_rows16_load(x + r0 * (size_t)dim, (size_t)dim, dim, n, v);
        __m512 mx = v[0];
        for (int j = 1; j < dim; j++) mx = _mm512_max_ps(v[j], mx); /* v[j] > mx ? v[j] : mx */
        __m512 sum = _mm512_setzero_ps();
        for (int j = 0; j < dim; j++) {
            v[j] = exp_nonpositive16(_mm512_sub_ps(v[j], mx));
            sum = _mm512_add_ps(sum, v[j]);
        }
        __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.0f), sum);
        for (int j = 0; j < dim; j++) v[j] = _mm512_mul_ps(v[j], inv);
        loom_rows16_store(v, dim, n, y + r0 * (size_t)dim, (size_t)dim);
    }
}
#endif

static void softmax_forward(const float *x, float *y, size_t rows, int dim) {
#ifdef LOOM_HAVE_AVX512
    if (dim <= SOFTMAX_NARROW && loom_avx512_on()) {
        softmax_rows16(x, y, rows, dim);
        return;
    }
#endif
    softmax_rows(x, y, rows, dim);
}

/* The Jacobian of softmax is diag(y) - y y^T, so dx = y * (dy - <dy, y>) per row. */
/* dx += J^T dy, or (dx == dy) dy = J^T dy in place: the dot is taken before any element changes. */
static void softmax_backward(const float *y, const float *dy, float *dx, size_t rows, int dim, bool in_place) {
    for (size_t r = 0; r < rows; r++) {
        const float *yr = y + r * (size_t)dim;
        const float *dyr = dy + r * (size_t)dim;
        float *dxr = dx + r * (size_t)dim;
        double dot = 0.0;
        for (int j = 0; j < dim; j++) dot += (double)dyr[j] * yr[j];
        if (in_place)
            for (int j = 0; j < dim; j++) dxr[j] = yr[j] * (dxr[j] - (float)dot);
        else
            for (int j = 0; j < dim; j++) dxr[j] += yr[j] * (dyr[j] - (float)dot);
    }
}

/* The hot element-wise loops get restrict pointers and a select instead of a branch, so that the
 * compiler vectorises them (a data-dependent branch per element mispredicts half the time). */
LOOM_VECTOR_CLONES static void relu_backward(const float *restrict y, const float *restrict dy, float *restrict dx, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float d = dy[i]; /* loaded unconditionally: a conditional load blocks vectorising */
        dx[i] += y[i] > 0.0f ? d : 0.0f;
    }
}

LOOM_VECTOR_CLONES static void relu_backward_in_place(const float *restrict y, float *restrict dy, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float d = dy[i];
        dy[i] = y[i] > 0.0f ? d : 0.0f;
    }
}

LOOM_VECTOR_CLONES static void add_into(const float *restrict dy, float *restrict dx, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] += dy[i];
}

LOOM_VECTOR_CLONES static void relu_forward(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = v < 0.0f ? 0.0f : v;
    }
}

static void act_forward_serial(loom_activation a, const float *x, float *y, size_t rows, int dim) {
    size_t n = rows * (size_t)dim;
    switch (a) {
    case LOOM_LINEAR:
        if (y != x) memmove(y, x, n * sizeof *y);
        break;
    case LOOM_RELU:
        /* written so that a NaN passes through (as tf.nn.relu), for TerminateOnNaN to see it */
        relu_forward(x, y, n);
        break;
    case LOOM_SIGMOID:
        for (size_t i = 0; i < n; i++) y[i] = sigmoidf(x[i]);
        break;
    case LOOM_TANH:
        for (size_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
        break;
    case LOOM_SOFTMAX:
        softmax_forward(x, y, rows, dim);
        break;
    case LOOM_GELU:
        for (size_t i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * SQRT1_2));
        break;
    case LOOM_ELU:
        /* expm1 keeps the small negative values exact near 0 */
        for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : expm1f(x[i]);
        break;
    case LOOM_LEAKY_RELU:
        for (size_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? LEAKY_SLOPE * x[i] : x[i];
        break;
    case LOOM_SOFTPLUS:
        /* log(1 + e^x) without overflow for large x nor loss of precision for very negative x */
        for (size_t i = 0; i < n; i++) y[i] = log1pf(expf(-fabsf(x[i]))) + fmaxf(x[i], 0.0f);
        break;
    case LOOM_SWISH:
        for (size_t i = 0; i < n; i++) y[i] = x[i] * sigmoidf(x[i]);
        break;
    case LOOM_HARD_SIGMOID:
        for (size_t i = 0; i < n; i++) y[i] = fminf(fmaxf(x[i] / 6.0f + 0.5f, 0.0f), 1.0f);
        break;
    case LOOM_HARD_SIGMOID_KERAS2:
        for (size_t i = 0; i < n; i++) y[i] = fminf(fmaxf(0.2f * x[i] + 0.5f, 0.0f), 1.0f);
        break;
    default:
        break;
    }
}

/* Activations whose derivative is a function of y alone: the caller may then overwrite x with y
 * (x is not read by loom_act_backward and may be NULL). relu, leaky_relu and elu keep the sign of
 * x in y (y > 0 exactly when x > 0), and elu'(x) = e^x = y + 1 for x <= 0. softplus' = sigmoid(x)
 * could be written -expm1(-y), but that loses digits where y rounds, so it reads x. */
bool loom_act_needs_input(loom_activation a) {
    switch (a) {
    case LOOM_GELU:
    case LOOM_SOFTPLUS:
    case LOOM_SWISH:
        return true;
    default:
        return false;
    }
}

/* The derivative of every element-wise activation at element i, written once for both forms of
 * the backward: APPLY(i, g) is "dx[i] += dy[i] * g" (accumulate) or "dy[i] *= g" (in place). */
#define ELEMENTWISE_BACKWARD(APPLY)                                                          \
    switch (a) {                                                                             \
    case LOOM_SIGMOID:                                                                       \
        for (size_t i = 0; i < n; i++) APPLY(i, y[i] * (1.0f - y[i]));                       \
        break;                                                                               \
    case LOOM_TANH:                                                                          \
        for (size_t i = 0; i < n; i++) APPLY(i, 1.0f - y[i] * y[i]);                         \
        break;                                                                               \
    case LOOM_GELU: /* d/dx [x Phi(x)] = Phi(x) + x phi(x) */                                \
        for (size_t i = 0; i < n; i++)                                                       \
            APPLY(i, 0.5f * (1.0f + erff(x[i] * SQRT1_2)) +                                  \
                         x[i] * 0.3989422804014327f * expf(-0.5f * x[i] * x[i]));             \
        break;                                                                               \
    case LOOM_ELU:                                                                           \
        for (size_t i = 0; i < n; i++) APPLY(i, y[i] > 0.0f ? 1.0f : y[i] + 1.0f);           \
        break;                                                                               \
    case LOOM_LEAKY_RELU:                                                                    \
        for (size_t i = 0; i < n; i++) APPLY(i, y[i] > 0.0f ? 1.0f : LEAKY_SLOPE);           \
        break;                                                                               \
    case LOOM_SOFTPLUS:                                                                      \
        for (size_t i = 0; i < n; i++) APPLY(i, sigmoidf(x[i]));                             \
        break;                                                                               \
    case LOOM_HARD_SIGMOID: /* flat where clipped: y in (0, 1) tells the slope from y alone */ \
        for (size_t i = 0; i < n; i++) APPLY(i, y[i] > 0.0f && y[i] < 1.0f ? 1.0f / 6.0f : 0.0f); \
        break;                                                                               \
    case LOOM_HARD_SIGMOID_KERAS2:                                                           \
        for (size_t i = 0; i < n; i++) APPLY(i, y[i] > 0.0f && y[i] < 1.0f ? 0.2f : 0.0f);   \
        break;                                                                               \
    case LOOM_SWISH:                                                                         \
        for (size_t i = 0; i < n; i++) {                                                     \
            float s_ = sigmoidf(x[i]);                                                       \
            APPLY(i, s_ + x[i] * s_ * (1.0f - s_));                                          \
        }                                                                                    \
        break;                                                                               \
    default:                                                                                 \
        break;                                                                               \
    }
#define ACCUMULATE(i, g) dx[i] += dy[i] * (g)
#define SCALE(i, g) dy[i] *= (g)

bool loom_act_keeps_preact(loom_activation a) {
    return loom_act_needs_input(a) || a == LOOM_SOFTMAX || a == LOOM_SIGMOID;
}

static void act_backward_serial(loom_activation a, const float *x, const float *y, const float *dy,
                                float *dx, size_t rows, int dim) {
    size_t n = rows * (size_t)dim;
    if (a == LOOM_LINEAR)
        add_into(dy, dx, n);
    else if (a == LOOM_RELU)
        relu_backward(y, dy, dx, n);
    else if (a == LOOM_SOFTMAX)
        softmax_backward(y, dy, dx, rows, dim, false);
    else
        ELEMENTWISE_BACKWARD(ACCUMULATE)
}

static void act_backward_in_place_serial(loom_activation a, const float *x, const float *y, float *dy,
                                         size_t rows, int dim) {
    size_t n = rows * (size_t)dim;
    if (a == LOOM_RELU)
        relu_backward_in_place(y, dy, n);
    else if (a == LOOM_SOFTMAX)
        softmax_backward(y, dy, dy, rows, dim, true);
    else if (a != LOOM_LINEAR)
        ELEMENTWISE_BACKWARD(SCALE)
}

/* ---------------------------------------------------------------- threads
 *
 * Large activations are split by rows between loom's threads (src/parallel.c): every element (and
 * softmax's every row) is computed by the same operations in any chunk, so the result does not
 * depend on the thread count. A thread's share must be worth waking it for: more elements for the
 * memory-bound ones (relu's select) than for those that call expf/erff/tanhf per element. */
typedef struct act_job {
    loom_activation a;
    const float *x, *y, *dy;
    float *out; /* y (forward) or dx (backward) */
    int dim;
} act_job;

static const float *skip(const float *p, size_t n) { return p ? p + n : NULL; }

static void forward_rows(size_t r0, size_t r1, void *p) {
    const act_job *j = p;
    size_t at = r0 * (size_t)j->dim;
    act_forward_serial(j->a, j->x + at, j->out + at, r1 - r0, j->dim);
}

static void backward_rows(size_t r0, size_t r1, void *p) {
    const act_job *j = p;
    size_t at = r0 * (size_t)j->dim;
    if (j->dy == j->out)
        act_backward_in_place_serial(j->a, skip(j->x, at), skip(j->y, at), j->out + at, r1 - r0, j->dim);
    else
        act_backward_serial(j->a, skip(j->x, at), skip(j->y, at), j->dy + at, j->out + at, r1 - r0, j->dim);
}

static size_t min_rows_per_thread(loom_activation a, int dim) {
    size_t cost = a == LOOM_RELU || a == LOOM_LEAKY_RELU || a == LOOM_LINEAR ? 1 : 8; /* per element */
    return loom_parallel_min_units((size_t)dim * cost);
}

void loom_act_forward(loom_activation a, const float *x, float *y, size_t rows, int dim) {
    /* linear is one memmove, which may overlap: never split */
    if (a == LOOM_LINEAR || dim <= 0) {
        act_forward_serial(a, x, y, rows, dim);
        return;
    }
    act_job j = {a, x, NULL, NULL, y, dim};
    loom_parallel_for(rows, min_rows_per_thread(a, dim), forward_rows, &j);
}

void loom_act_backward(loom_activation a, const float *x, const float *y, const float *dy,
                       float *dx, size_t rows, int dim) {
    if (dim <= 0) return;
    act_job j = {a, x, y, dy, dx, dim};
    loom_parallel_for(rows, min_rows_per_thread(a, dim), backward_rows, &j);
}

void loom_act_backward_in_place(loom_activation a, const float *x, const float *y, float *dy, size_t rows,
                                int dim) {
    if (dim <= 0 || a == LOOM_LINEAR) return;
    act_job j = {a, x, y, dy, dy, dim};
    loom_parallel_for(rows, min_rows_per_thread(a, dim), backward_rows, &j);
}
