/* init.c — weight initialisers with Keras's formulas (keras.initializers.VarianceScaling).
 * Every element is drawn from its own counter (its index), so the result depends only on the
 * key and the shape: never on threads or on the order of filling. */
#include "internal.h"

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

void loom_init_fill(loom_initializer init, const loom_shape *s, float *w, uint64_t key) {
    const size_t n = loom_shape_size(s);
    if (init == LOOM_INIT_ZEROS || init == LOOM_INIT_ONES) {
        float v = init == LOOM_INIT_ONES ? 1.0f : 0.0f;
        for (size_t i = 0; i < n; i++) w[i] = v;
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
