/* layer_pool.c — keras.layers.MaxPooling1D/2D, AveragePooling1D/2D and the global poolings,
 * channels_last.
 *
 * Configuration in the generic loom_layer fields (windowed pooling only; global pooling has none):
 *   iarg[1]  pool rows (1 for 1-D)     iarg[2]  pool cols (1-D: pool_size)
 *   iarg[3]  stride rows (1 for 1-D)   iarg[4]  stride cols
 *   iarg[7]  loom_padding
 * (the indices match layer_conv.c's for the same quantities).
 *
 * 1-D pooling is 2-D pooling of a (1, steps, channels) image with a 1-row window.
 * Semantics as TensorFlow / Keras: SAME pads with the extra element after (bottom/right); max
 * pooling ignores the padding; average pooling divides by the number of real (non-padded)
 * entries of each window; the max's gradient goes to the first maximal entry of its window in
 * row-major order (ties), and overlapping windows add up. */
#include "graph/graph.h"
#include "layers/layers.h"
#include "ops/activations.h"
#include "kernels/gemm.h"
#include "kernels/parallel.h"
#include "kernels/vector_clones.h"

#include <stdint.h>
#include <string.h>

enum { A_PH = 1, A_PW = 2, A_SH = 3, A_SW = 4, A_PAD = 7 };

/* As layer_conv.c: TF's output size and padding before the first element (<= 0: no fit). */
/* In 64 bits: in + stride - 1 may pass INT_MAX. */
static int pool_out_size(int in, int k, int stride, loom_padding pad, int *before) {
    if (pad == LOOM_PADDING_VALID) {
        *before = 0;
        return in >= k ? (in - k) / stride + 1 : 0;
    }
    int64_t out = ((int64_t)in + stride - 1) / stride;
    int64_t total = (out - 1) * stride + k - in;
    *before = total > 0 ? (int)(total / 2) : 0;
    return (int)out;
}

typedef struct pool_geom {
    int h, w, c, oh, ow;
    int ph, pw, sh, sw, pad_t, pad_l;
} pool_geom;

static bool is_1d(const loom_layer *L);
static bool is_max(const loom_layer *L);

static pool_geom geom_of(const loom_layer *L, const loom_shape *in) {
    pool_geom g;
    if (is_1d(L)) {
        g.h = 1;
        g.w = in->dims[0];
        g.c = in->dims[1];
    } else {
        g.h = in->dims[0];
        g.w = in->dims[1];
        g.c = in->dims[2];
    }
    g.ph = L->iarg[A_PH];
    g.pw = L->iarg[A_PW];
    g.sh = L->iarg[A_SH];
    g.sw = L->iarg[A_SW];
    loom_padding pad = (loom_padding)L->iarg[A_PAD];
    g.oh = pool_out_size(g.h, g.ph, g.sh, pad, &g.pad_t);
    g.ow = pool_out_size(g.w, g.pw, g.sw, pad, &g.pad_l);
    return g;
}

/* The window of output (oy, ox) clipped to the image: rows [y0, y1), cols [x0, x1). */
static void window(const pool_geom *g, int oy, int ox, int *y0, int *y1, int *x0, int *x1) {
    /* 64 bits: a window of up to 2^31 - 1 rows starting near the end of the image */
    int64_t ya = (int64_t)oy * g->sh - g->pad_t, xa = (int64_t)ox * g->sw - g->pad_l;
    int64_t yb = ya + g->ph, xb = xa + g->pw;
    *y0 = ya < 0 ? 0 : (int)ya;
    *x0 = xa < 0 ? 0 : (int)xa;
    *y1 = yb > g->h ? g->h : (int)yb;
    *x1 = xb > g->w ? g->w : (int)xb;
}

static loom_status pool_build(loom_layer *L, int n_in, const loom_shape *in, loom_shape *out,
                              loom_error *err) {
    (void)n_in;
    char a[64];
    const loom_shape *x = &in[0];
    bool one_d = is_1d(L);
    if (x->rank != (one_d ? 2 : 3))
        return loom_set_error(err, LOOM_ERR_SHAPE, "%s (%s): expects input %s, got %s", L->name,
                              L->op->class_name, one_d ? "(steps, channels)" : "(rows, cols, channels)",
                              loom_shape_str(x, a, sizeof a));
    pool_geom g = geom_of(L, x);
    if (g.oh <= 0 || g.ow <= 0) {
        if (one_d)
            return loom_set_error(err, LOOM_ERR_SHAPE,
                                  "%s (%s): pool_size %d is larger than the input %s with valid padding",
                                  L->name, L->op->class_name, g.pw, loom_shape_str(x, a, sizeof a));
        return loom_set_error(err, LOOM_ERR_SHAPE,
                              "%s (%s): pool_size (%d, %d) is larger than the input %s with valid padding",
                              L->name, L->op->class_name, g.ph, g.pw, loom_shape_str(x, a, sizeof a));
    }
    memset(out, 0, sizeof *out);
    if (one_d) {
        out->rank = 2;
        out->dims[0] = g.ow;
        out->dims[1] = g.c;
    } else {
        out->rank = 3;
        out->dims[0] = g.oh;
        out->dims[1] = g.ow;
        out->dims[2] = g.c;
    }
    return LOOM_OK;
}

/* Index (into the sample) of the first maximal entry of channel ch in a window. */
static size_t argmax_in_window(const pool_geom *g, const float *x, int ch, int y0, int y1, int x0,
                               int x1) {
    size_t best = ((size_t)y0 * g->w + x0) * g->c + ch;
    for (int y = y0; y < y1; y++)
        for (int xx = x0; xx < x1; xx++) {
            size_t i = ((size_t)y * g->w + xx) * g->c + ch;
            if (x[i] > x[best]) best = i;
        }
    return best;
}

/* Max pooling keeps, per output element, the index of its maximum in the sample (an int32 in the
 * scratch, which holds nothing else), so the backward pass scatters without searching again. */
static size_t pool_scratch(const loom_layer *L, int n_in, const loom_shape *in, const loom_shape *out, int batch) {
    (void)n_in;
    (void)in;
    return is_max(L) ? (size_t)batch * loom_shape_size(out) : 0;
}

/* best = max(best, x) per channel, remembering where: selects, not branches, so the loop
 * vectorises (the maxima of random data would mispredict every other branch). Strict >: the
 * first maximum of a window wins ties. */
LOOM_VECTOR_CLONES static void max_update(const float *restrict x, float *restrict best, int32_t *restrict arg,
                                          int32_t base, int n) {
    for (int ch = 0; ch < n; ch++) {
        float v = x[ch], b = best[ch];
        int32_t a = arg[ch];
        bool gt = v > b;
        best[ch] = gt ? v : b;
        arg[ch] = gt ? base + ch : a;
    }
}

/* Samples are independent (each writes only its own output, argmax and input-gradient block), so
 * threads split the batch (src/parallel.c). */

typedef struct pool_job {
    const loom_layer *L;
    const loom_op_ctx *c;
} pool_job;

static void for_samples(const loom_layer *L, const loom_op_ctx *c, void (*fn)(size_t, size_t, void *)) {
    size_t in_n = loom_shape_size(&c->in_shape[0]);
    pool_job j = {L, c};
    loom_parallel_for((size_t)c->batch, loom_parallel_min_units(in_n), fn, &j);
}

static void pool_forward_samples(size_t b0, size_t b1, void *p) {
    const loom_layer *L = ((const pool_job *)p)->L;
    const loom_op_ctx *c = ((const pool_job *)p)->c;
    pool_geom g = geom_of(L, &c->in_shape[0]);
    size_t in_n = loom_shape_size(&c->in_shape[0]), out_n = loom_shape_size(&c->out_shape);
    bool mx = is_max(L);
    for (size_t b = b0; b < b1; b++) {
        const float *x = c->in[0] + (size_t)b * in_n;
        float *y = c->out + (size_t)b * out_n;
        int32_t *arg = mx ? (int32_t *)c->scratch + (size_t)b * out_n : NULL;
        for (int oy = 0; oy < g.oh; oy++)
            for (int ox = 0; ox < g.ow; ox++) {
                int y0, y1, x0, x1;
                window(&g, oy, ox, &y0, &y1, &x0, &x1);
                size_t o = ((size_t)oy * g.ow + ox) * g.c;
                float *yp = y + o;
                float inv = 1.0f / (float)((y1 - y0) * (x1 - x0));
                if (mx) { /* channels innermost, contiguous: scan the window position by position */
                    int32_t *ap = arg + o;
                    size_t first = ((size_t)y0 * g.w + x0) * g.c;
                    for (int ch = 0; ch < g.c; ch++) {
                        yp[ch] = x[first + (size_t)ch];
                        ap[ch] = (int32_t)(first + (size_t)ch);
                    }
                    for (int yy = y0; yy < y1; yy++)
                        for (int xx = x0; xx < x1; xx++) {
                            size_t at = ((size_t)yy * g.w + xx) * g.c;
                            max_update(x + at, yp, ap, (int32_t)at, g.c);
                        }
                    continue;
                }
                for (int ch = 0; ch < g.c; ch++) {
                    float s = 0;
                    for (int yy = y0; yy < y1; yy++)
                        for (int xx = x0; xx < x1; xx++) s += x[((size_t)yy * g.w + xx) * g.c + ch];
                    yp[ch] = s * inv;
                }
            }
    }
}

static void pool_forward(const loom_layer *L, const loom_op_ctx *c) {
    for_samples(L, c, pool_forward_samples);
}

static void pool_backward_samples(size_t b0, size_t b1, void *p) {
    const loom_layer *L = ((const pool_job *)p)->L;
    const loom_op_ctx *c = ((const pool_job *)p)->c;
    pool_geom g = geom_of(L, &c->in_shape[0]);
    size_t in_n = loom_shape_size(&c->in_shape[0]), out_n = loom_shape_size(&c->out_shape);
    bool mx = is_max(L);
    if (mx) { /* the maxima found by the forward pass */
        for (size_t b = b0; b < b1; b++) {
            float *dx = c->din[0] + (size_t)b * in_n;
            const float *dy = c->dout + (size_t)b * out_n;
            const int32_t *arg = (const int32_t *)c->scratch + (size_t)b * out_n;
            for (size_t o = 0; o < out_n; o++) dx[arg[o]] += dy[o];
        }
        return;
    }
    for (size_t b = b0; b < b1; b++) {
        const float *x = c->in[0] + b * in_n;
        float *dx = c->din[0] + b * in_n;
        const float *dy = c->dout + b * out_n;
        for (int oy = 0; oy < g.oh; oy++)
            for (int ox = 0; ox < g.ow; ox++) {
                int y0, y1, x0, x1;
                window(&g, oy, ox, &y0, &y1, &x0, &x1);
                const float *dyp = dy + ((size_t)oy * g.ow + ox) * g.c;
                float inv = 1.0f / (float)((y1 - y0) * (x1 - x0));
                for (int ch = 0; ch < g.c; ch++) {
                    if (mx) {
                        dx[argmax_in_window(&g, x, ch, y0, y1, x0, x1)] += dyp[ch];
                    } else {
                        float d = dyp[ch] * inv;
                        for (int yy = y0; yy < y1; yy++)
                            for (int xx = x0; xx < x1; xx++) dx[((size_t)yy * g.w + xx) * g.c + ch] += d;
                    }
                }
            }
    }
}

static void pool_backward(const loom_layer *L, const loom_op_ctx *c) {
    if (!c->din[0]) return;
    for_samples(L, c, pool_backward_samples);
}

const loom_op loom_op_max_pooling1d = {
    .class_name = "MaxPooling1D",
    .base_name = "max_pooling1d",
    .min_inputs = 1,
    .max_inputs = 1,
    .build = pool_build,
    .scratch_size = pool_scratch,
    .forward = pool_forward,
    .backward = pool_backward,
    .mask_mode = LOOM_MASK_DROP,
};
const loom_op loom_op_max_pooling2d = {
    .class_name = "MaxPooling2D",
    .base_name = "max_pooling2d",
    .min_inputs = 1,
    .max_inputs = 1,
    .build = pool_build,
    .scratch_size = pool_scratch,
    .forward = pool_forward,
    .backward = pool_backward,
    .mask_mode = LOOM_MASK_DROP,
};
const loom_op loom_op_average_pooling1d = {
    .class_name = "AveragePooling1D",
    .base_name = "average_pooling1d",
    .min_inputs = 1,
    .max_inputs = 1,
    .build = pool_build,
    .forward = pool_forward,
    .backward = pool_backward,
    .mask_mode = LOOM_MASK_DROP,
};
const loom_op loom_op_average_pooling2d = {
    .class_name = "AveragePooling2D",
    .base_name = "average_pooling2d",
    .min_inputs = 1,
    .max_inputs = 1,
    .build = pool_build,
    .forward = pool_forward,
    .backward = pool_backward,
    .mask_mode = LOOM_MASK_DROP,
};

static bool is_1d(const loom_layer *L) {
    return L->op == &loom_op_max_pooling1d || L->op == &loom_op_average_pooling1d;
}
static bool is_max(const loom_layer *L) {
    return L->op == &loom_op_max_pooling1d || L->op == &loom_op_max_pooling2d;
}

/* ---------------------------------------------------------------- global pooling */

static bool is_global_1d(const loom_layer *L);
static bool is_global_max(const loom_layer *L);

/* (steps, ch) or (rows, cols, ch) -> (ch): every spatial position pooled (keepdims False). */
static loom_status global_build(loom_layer *L, int n_in, const loom_shape *in, loom_shape *out,
                                loom_error *err) {
    (void)n_in;
    char a[64];
    bool one_d = is_global_1d(L);
    if (in[0].rank != (one_d ? 2 : 3))
        return loom_set_error(err, LOOM_ERR_SHAPE, "%s (%s): expects input %s, got %s", L->name,
                              L->op->class_name, one_d ? "(steps, channels)" : "(rows, cols, channels)",
                              loom_shape_str(&in[0], a, sizeof a));
    memset(out, 0, sizeof *out);
    out->rank = 1;
    out->dims[0] = in[0].dims[in[0].rank - 1];
    return LOOM_OK;
}

static void global_forward(const loom_layer *L, const loom_op_ctx *c) {
    size_t in_n = loom_shape_size(&c->in_shape[0]);
    int C = c->out_shape.dims[0];
    size_t P = in_n / (size_t)C;
    bool mx = is_global_max(L);
    for (int b = 0; b < c->batch; b++) {
        const float *x = c->in[0] + (size_t)b * in_n;
        float *y = c->out + (size_t)b * C;
        memcpy(y, x, (size_t)C * sizeof *y);
        for (size_t p = 1; p < P; p++)
            for (int ch = 0; ch < C; ch++) {
                float v = x[p * C + ch];
                if (!mx)
                    y[ch] += v;
                else if (v > y[ch])
                    y[ch] = v;
            }
        if (!mx)
            for (int ch = 0; ch < C; ch++) y[ch] /= (float)P;
    }
}

static void global_backward(const loom_layer *L, const loom_op_ctx *c) {
    if (!c->din[0]) return;
    size_t in_n = loom_shape_size(&c->in_shape[0]);
    int C = c->out_shape.dims[0];
    size_t P = in_n / (size_t)C;
    bool mx = is_global_max(L);
    for (int b = 0; b < c->batch; b++) {
        const float *x = c->in[0] + (size_t)b * in_n;
        float *dx = c->din[0] + (size_t)b * in_n;
        const float *dy = c->dout + (size_t)b * C;
        for (int ch = 0; ch < C; ch++) {
            if (mx) {
                size_t best = (size_t)ch;
                for (size_t p = 1; p < P; p++)
                    if (x[p * C + ch] > x[best]) best = p * C + ch;
                dx[best] += dy[ch];
            } else {
                float d = dy[ch] / (float)P;
                for (size_t p = 0; p < P; p++) dx[p * C + ch] += d;
            }
        }
    }
}

const loom_op loom_op_global_average_pooling1d = {
    .class_name = "GlobalAveragePooling1D",
    .base_name = "global_average_pooling1d",
    .min_inputs = 1,
    .max_inputs = 1,
    .build = global_build,
    .forward = global_forward,
    .backward = global_backward,
    .mask_mode = LOOM_MASK_DROP,
};
const loom_op loom_op_global_max_pooling1d = {
    .class_name = "GlobalMaxPooling1D",
    .base_name = "global_max_pooling1d",
    .min_inputs = 1,
    .max_inputs = 1,
    .build = global_build,
    .forward = global_forward,
    .backward = global_backward,
    .mask_mode = LOOM_MASK_DROP,
};
const loom_op loom_op_global_average_pooling2d = {
    .class_name = "GlobalAveragePooling2D",
    .base_name = "global_average_pooling2d",
    .min_inputs = 1,
    .max_inputs = 1,
    .build = global_build,
    .forward = global_forward,
    .backward = global_backward,
    .mask_mode = LOOM_MASK_DROP,
};
const loom_op loom_op_global_max_pooling2d = {
    .class_name = "GlobalMaxPooling2D",
    .base_name = "global_max_pooling2d",
    .min_inputs = 1,
    .max_inputs = 1,
    .build = global_build,
    .forward = global_forward,
    .backward = global_backward,
    .mask_mode = LOOM_MASK_DROP,
};

static bool is_global_1d(const loom_layer *L) {
    return L->op == &loom_op_global_average_pooling1d || L->op == &loom_op_global_max_pooling1d;
}
static bool is_global_max(const loom_layer *L) {
    return L->op == &loom_op_global_max_pooling1d || L->op == &loom_op_global_max_pooling2d;
}

/* ---------------------------------------------------------------- constructors */

/* pool 0 = Keras's default 2, stride 0 = the pool size; negatives are refused. */
static loom_layer *new_pool(loom_graph *g, const loom_op *op, const char *name, int ph, int pw,
                            int sh, int sw, loom_padding padding) {
    if (!g || g->err.code) return NULL;
    const char *shown = name ? name : op->base_name;
    const char *cls = op->class_name;
    if (ph < 0 || pw < 0) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (%s): pool_size must be > 0 (0 = 2), got %d",
                       shown, cls, ph < 0 ? ph : pw);
        return NULL;
    }
    if (sh < 0 || sw < 0) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT,
                       "%s (%s): strides must be > 0 (0 = pool_size), got %d", shown, cls,
                       sh < 0 ? sh : sw);
        return NULL;
    }
    if (padding != LOOM_PADDING_VALID && padding != LOOM_PADDING_SAME) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (%s): unknown padding %d", shown, cls,
                       (int)padding);
        return NULL;
    }
    if (ph == 0) ph = 2;
    if (pw == 0) pw = 2;
    if (sh == 0) sh = ph;
    if (sw == 0) sw = pw;
    loom_layer *L = loom_graph_new_layer(g, op, name);
    if (!L) return NULL;
    L->iarg[A_PH] = ph;
    L->iarg[A_PW] = pw;
    L->iarg[A_SH] = sh;
    L->iarg[A_SW] = sw;
    L->iarg[A_PAD] = (int)padding;
    return L;
}

loom_layer *loom_max_pooling1d(loom_graph *g, const char *name, int pool, int stride,
                               loom_padding padding) {
    /* a 1-row window moving 1 row: the row axis is trivial */
    return new_pool(g, &loom_op_max_pooling1d, name, 1, pool, 1, stride, padding);
}

loom_layer *loom_average_pooling1d(loom_graph *g, const char *name, int pool, int stride,
                                   loom_padding padding) {
    return new_pool(g, &loom_op_average_pooling1d, name, 1, pool, 1, stride, padding);
}

loom_layer *loom_max_pooling2d(loom_graph *g, const char *name, int pool_h, int pool_w, int stride_h,
                               int stride_w, loom_padding padding) {
    return new_pool(g, &loom_op_max_pooling2d, name, pool_h, pool_w, stride_h, stride_w, padding);
}

loom_layer *loom_average_pooling2d(loom_graph *g, const char *name, int pool_h, int pool_w,
                                   int stride_h, int stride_w, loom_padding padding) {
    return new_pool(g, &loom_op_average_pooling2d, name, pool_h, pool_w, stride_h, stride_w, padding);
}

static loom_layer *new_global(loom_graph *g, const loom_op *op, const char *name) {
    if (!g || g->err.code) return NULL;
    return loom_graph_new_layer(g, op, name);
}

loom_layer *loom_global_average_pooling1d(loom_graph *g, const char *name) {
    return new_global(g, &loom_op_global_average_pooling1d, name);
}
loom_layer *loom_global_max_pooling1d(loom_graph *g, const char *name) {
    return new_global(g, &loom_op_global_max_pooling1d, name);
}
loom_layer *loom_global_average_pooling2d(loom_graph *g, const char *name) {
    return new_global(g, &loom_op_global_average_pooling2d, name);
}
loom_layer *loom_global_max_pooling2d(loom_graph *g, const char *name) {
    return new_global(g, &loom_op_global_max_pooling2d, name);
}
