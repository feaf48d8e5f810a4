/* init.c — weight initialisers with Keras's formulas (keras.initializers.VarianceScaling).
 * Every element is drawn from its own counter (its index), so the result depends only on the
 * key and the shape: never on threads or on the order of filling. */
#include "ops/init.h"

#include <math.h>

/* Keras compute_fans: a kernel (..., in, out) has a receptive field of the leading dims. */
static void compute_fans(const loom_shape *s, double *fan_in, double *fan_out) {
    double in = 1.0, out = 1.0;
    if (s->rank == 1) {
        in = out = s->dims[0];
    } else if (s->rank == 2) {
        in = s->dims[0];
        out = s->dims[1];
    } else if (s->rank > 2) {
        double receptive = 1.0;
        for (int i = 0; i < s->rank - 2; i++) receptive *= s->dims[i];
        in = receptive * s->dims[s->rank - 2];
        out = receptive * s->dims[s->rank - 1];
    }
    *fan_in = in;
    *fan_out = out;
}

/* Stddev of N(0, 1) truncated to [-2, 2]: dividing by it keeps the variance at scale/fan. */
#define TRUNCATED_STDDEV 0.87962566103423978

/* N(0, 1) truncated to [-2, 2]: a draw outside is redrawn with a fresh counter. The counters
 * attempt*n + i never collide with another element's. */
static float truncated_normal(uint64_t key, size_t i, size_t n) {
    for (uint64_t attempt = 0;; attempt++) {
        float z = loom_normal(key, attempt * (uint64_t)n + (uint64_t)i);
        if (fabsf(z) <= 2.0f) return z;
    }
}

/* Keras Orthogonal(gain 1): the Q of a QR factorisation of a normal (max, min) matrix with the
 * sign correction q *= sign(diag(r)), transposed when there are fewer rows than columns. Rows are
 * the product of the leading dims, columns the last dim (Keras flattens the same way). Q with a
 * positive diag(R) is exactly what Gram-Schmidt produces, so the columns of the normal matrix
 * are orthonormalised in place, in double, each one twice (a second pass restores the
 * orthogonality that one pass loses in rounding); no buffer is needed.
 * A rank-1 shape, which Keras refuses, is taken as one row (a unit vector): fill cannot fail. */
static void orthogonal_fill(const loom_shape *s, float *w, uint64_t key) {
    size_t rows = 1, cols = s->rank >= 1 ? (size_t)s->dims[s->rank - 1] : 1;
    for (int i = 0; i + 1 < s->rank; i++) rows *= (size_t)s->dims[i];
    /* the (m, n) matrix A, m >= n, lives in w: a[i][j] at w[i*si + j*sj]; when rows < cols it is
     * stored transposed, so that w ends up holding Q^T */
    size_t m = rows >= cols ? rows : cols, n = rows >= cols ? cols : rows;
    size_t si = rows >= cols ? cols : 1, sj = rows >= cols ? 1 : cols;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) w[i * si + j * sj] = loom_normal(key, i * n + j);
    for (size_t j = 0; j < n; j++) {
        for (int pass = 0; pass < 2; pass++)
            for (size_t k = 0; k < j; k++) {
                double dot = 0;
                for (size_t i = 0; i < m; i++) dot += (double)w[i * si + k * sj] * w[i * si + j * sj];
                for (size_t i = 0; i < m; i++) w[i * si + j * sj] -= (float)(dot * w[i * si + k * sj]);
            }
        double norm = 0;
        for (size_t i = 0; i < m; i++) norm += (double)w[i * si + j * sj] * w[i * si + j * sj];
        norm = sqrt(norm);
        for (size_t i = 0; i < m; i++) w[i * si + j * sj] = norm > 0 ? (float)(w[i * si + j * sj] / norm) : 0.0f;
    }
}

void loom_init_fill(loom_initializer init, const loom_shape *s, float *w, uint64_t key) {
    const size_t n = loom_shape_size(s);
    if (init == LOOM_INIT_ZEROS || init == LOOM_INIT_ONES) {
        float v = init == LOOM_INIT_ONES ? 1.0f : 0.0f;
        for (size_t i = 0; i < n; i++) w[i] = v;
        return;
    }
    if (init == LOOM_INIT_UNIT_FORGET_BIAS) { /* LSTM bias [i, f, c, o]: zeros, ones on the forget gate */
        for (size_t i = 0; i < n; i++) w[i] = i >= n / 4 && i < n / 2 ? 1.0f : 0.0f;
        return;
    }
    if (init == LOOM_INIT_UNIFORM) { /* Keras RandomUniform(-0.05, 0.05) */
        for (size_t i = 0; i < n; i++) w[i] = -0.05f + 0.1f * loom_uniform01(key, i);
        return;
    }
    if (init == LOOM_INIT_ORTHOGONAL) {
        orthogonal_fill(s, w, key);
        return;
    }

    /* VarianceScaling(scale, mode): variance scale/fan, fan by mode, clamped at 1 as Keras. */
    double fan_in, fan_out;
    compute_fans(s, &fan_in, &fan_out);
    double scale, fan;
    bool normal;
    switch (init) {
    case LOOM_INIT_HE_UNIFORM:
    case LOOM_INIT_HE_NORMAL:
        scale = 2.0;
        fan = fan_in;
        normal = init == LOOM_INIT_HE_NORMAL;
        break;
    case LOOM_INIT_LECUN_UNIFORM:
    case LOOM_INIT_LECUN_NORMAL:
        scale = 1.0;
        fan = fan_in;
        normal = init == LOOM_INIT_LECUN_NORMAL;
        break;
    case LOOM_INIT_GLOROT_NORMAL:
        scale = 1.0;
        fan = 0.5 * (fan_in + fan_out);
        normal = true;
        break;
    default: /* GLOROT_UNIFORM, and DEFAULT (Keras's default kernel initialiser) */
        scale = 1.0;
        fan = 0.5 * (fan_in + fan_out);
        normal = false;
        break;
    }
    double variance = scale / (fan > 1.0 ? fan : 1.0);

    if (normal) {
        float stddev = (float)(sqrt(variance) / TRUNCATED_STDDEV);
        for (size_t i = 0; i < n; i++) w[i] = stddev * truncated_normal(key, i, n);
    } else {
        float limit = (float)sqrt(3.0 * variance);
        for (size_t i = 0; i < n; i++) w[i] = -limit + 2.0f * limit * loom_uniform01(key, i);
    }
}
