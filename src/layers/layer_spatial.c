/* layer_spatial.c — keras.layers.UpSampling2D (nearest), ZeroPadding2D and Cropping2D on
 * (rows, cols, channels) inputs.
 *
 * Configuration in the generic loom_layer fields:
 *   UpSampling2D:                iarg[0] size rows, iarg[1] size cols
 *   ZeroPadding2D, Cropping2D:   iarg[0] top, iarg[1] bottom, iarg[2] left, iarg[3] right
 *
 * Padding and cropping are the same copy in opposite directions: the input (padding) or the
 * output (cropping) is the larger image, the other a window of it at (top, left). */
#include "graph/graph.h"
#include "layers/layers.h"
#include "ops/activations.h"
#include "kernels/gemm.h"

#include <string.h>

static loom_status need_image(const loom_layer *L, const loom_shape *x, loom_error *err) {
    char a[64];
    if (x->rank != 3)
        return loom_set_error(err, LOOM_ERR_SHAPE, "%s (%s): expects input (rows, cols, channels), got %s",
                              L->name, L->op->class_name, loom_shape_str(x, a, sizeof a));
    return LOOM_OK;
}

/* ---------------------------------------------------------------- UpSampling2D */

static loom_status up_build(loom_layer *L, int n_in, const loom_shape *in, loom_shape *out,
                            loom_error *err) {
    (void)n_in;
    loom_status s = need_image(L, &in[0], err);
    if (s != LOOM_OK) return s;
    *out = in[0];
    char who[LOOM_NAME_MAX + 40];
    snprintf(who, sizeof who, "%s (UpSampling2D)", L->name);
    if (loom_dim_check((int64_t)in[0].dims[0] * L->iarg[0], &out->dims[0], who, "output rows", err) ||
        loom_dim_check((int64_t)in[0].dims[1] * L->iarg[1], &out->dims[1], who, "output columns", err))
        return err->code;
    return LOOM_OK;
}

static void up_forward(const loom_layer *L, const loom_op_ctx *c) {
    const loom_shape *s = &c->in_shape[0];
    int W = s->dims[1], C = s->dims[2], OH = c->out_shape.dims[0], OW = c->out_shape.dims[1];
    int fh = L->iarg[0], fw = L->iarg[1];
    size_t in_n = loom_shape_size(s), out_n = loom_shape_size(&c->out_shape);
    for (int b = 0; b < c->batch; b++) {
        const float *x = c->in[0] + (size_t)b * in_n;
        float *y = c->out + (size_t)b * out_n;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++)
                memcpy(y + ((size_t)oy * OW + ox) * C, x + ((size_t)(oy / fh) * W + ox / fw) * C,
                       (size_t)C * sizeof *y);
    }
}

static void up_backward(const loom_layer *L, const loom_op_ctx *c) {
    if (!c->din[0]) return;
    const loom_shape *s = &c->in_shape[0];
    int W = s->dims[1], C = s->dims[2], OH = c->out_shape.dims[0], OW = c->out_shape.dims[1];
    int fh = L->iarg[0], fw = L->iarg[1];
    size_t in_n = loom_shape_size(s), out_n = loom_shape_size(&c->out_shape);
    for (int b = 0; b < c->batch; b++) {
        float *dx = c->din[0] + (size_t)b * in_n;
        const float *dy = c->dout + (size_t)b * out_n;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                float *d = dx + ((size_t)(oy / fh) * W + ox / fw) * C;
                const float *g = dy + ((size_t)oy * OW + ox) * C;
                for (int ch = 0; ch < C; ch++) d[ch] += g[ch];
            }
    }
}

const loom_op loom_op_upsampling2d = {
    .class_name = "UpSampling2D",
    .base_name = "up_sampling2d",
    .min_inputs = 1,
    .max_inputs = 1,
    .build = up_build,
    .forward = up_forward,
    .backward = up_backward,
    .mask_mode = LOOM_MASK_DROP,
};

/* ---------------------------------------------------------------- ZeroPadding2D / Cropping2D */

static bool is_padding(const loom_layer *L);

static loom_status pad_build(loom_layer *L, int n_in, const loom_shape *in, loom_shape *out,
                             loom_error *err) {
    (void)n_in;
    loom_status s = need_image(L, &in[0], err);
    if (s != LOOM_OK) return s;
    int t = L->iarg[0], b = L->iarg[1], l = L->iarg[2], r = L->iarg[3];
    *out = in[0];
    if (is_padding(L)) { /* pads of up to 2^31 - 1 each: add in 64 bits */
        char who[LOOM_NAME_MAX + 40];
        snprintf(who, sizeof who, "%s (ZeroPadding2D)", L->name);
        if (loom_dim_check((int64_t)in[0].dims[0] + t + b, &out->dims[0], who, "output rows", err) ||
            loom_dim_check((int64_t)in[0].dims[1] + l + r, &out->dims[1], who, "output columns", err))
            return err->code;
        return LOOM_OK;
    }
    if ((int64_t)t + b >= in[0].dims[0] || (int64_t)l + r >= in[0].dims[1]) {
        char a[64];
        return loom_set_error(err, LOOM_ERR_SHAPE,
                              "%s (Cropping2D): cropping ((%d, %d), (%d, %d)) leaves nothing of the "
                              "input %s",
                              L->name, t, b, l, r, loom_shape_str(&in[0], a, sizeof a));
    }
    out->dims[0] -= t + b;
    out->dims[1] -= l + r;
    return LOOM_OK;
}

/* Copies (backward: adds) between the large image and its (h, w) window at (top, left).
 * to_small: large -> small, else small -> large. With accumulate, adds instead of copying. */
static void window_copy(const float *src, float *dst, int big_w, int h, int w, int C, int top,
                        int left, bool to_small, bool accumulate) {
    for (int y = 0; y < h; y++) {
        size_t big = ((size_t)(y + top) * big_w + left) * C, small = (size_t)y * w * C;
        const float *s = src + (to_small ? big : small);
        float *d = dst + (to_small ? small : big);
        size_t n = (size_t)w * C;
        if (accumulate)
            for (size_t i = 0; i < n; i++) d[i] += s[i];
        else
            memcpy(d, s, n * sizeof *d);
    }
}

static void pad_forward(const loom_layer *L, const loom_op_ctx *c) {
    const loom_shape *in = &c->in_shape[0], *out = &c->out_shape;
    size_t in_n = loom_shape_size(in), out_n = loom_shape_size(out);
    int C = in->dims[2], top = L->iarg[0], left = L->iarg[2];
    bool pad = is_padding(L);
    const loom_shape *small = pad ? in : out, *big = pad ? out : in;
    if (pad) memset(c->out, 0, (size_t)c->batch * out_n * sizeof *c->out);
    for (int b = 0; b < c->batch; b++)
        window_copy(c->in[0] + (size_t)b * in_n, c->out + (size_t)b * out_n, big->dims[1],
                    small->dims[0], small->dims[1], C, top, left, !pad, false);
}

static void pad_backward(const loom_layer *L, const loom_op_ctx *c) {
    if (!c->din[0]) return;
    const loom_shape *in = &c->in_shape[0], *out = &c->out_shape;
    size_t in_n = loom_shape_size(in), out_n = loom_shape_size(out);
    int C = in->dims[2], top = L->iarg[0], left = L->iarg[2];
    bool pad = is_padding(L);
    const loom_shape *small = pad ? in : out, *big = pad ? out : in;
    for (int b = 0; b < c->batch; b++)
        window_copy(c->dout + (size_t)b * out_n, c->din[0] + (size_t)b * in_n, big->dims[1],
                    small->dims[0], small->dims[1], C, top, left, pad, true);
}

const loom_op loom_op_zero_padding2d = {
    .class_name = "ZeroPadding2D",
    .base_name = "zero_padding2d",
    .min_inputs = 1,
    .max_inputs = 1,
    .build = pad_build,
    .forward = pad_forward,
    .backward = pad_backward,
    .mask_mode = LOOM_MASK_DROP,
};
const loom_op loom_op_cropping2d = {
    .class_name = "Cropping2D",
    .base_name = "cropping2d",
    .min_inputs = 1,
    .max_inputs = 1,
    .build = pad_build,
    .forward = pad_forward,
    .backward = pad_backward,
    .mask_mode = LOOM_MASK_DROP,
};

static bool is_padding(const loom_layer *L) { return L->op == &loom_op_zero_padding2d; }

/* ---------------------------------------------------------------- constructors */

loom_layer *loom_upsampling2d(loom_graph *g, const char *name, int size_h, int size_w) {
    if (!g || g->err.code) return NULL;
    if (size_h <= 0 || size_w <= 0) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (UpSampling2D): size must be > 0, got (%d, %d)",
                       name ? name : "up_sampling2d", size_h, size_w);
        return NULL;
    }
    loom_layer *L = loom_graph_new_layer(g, &loom_op_upsampling2d, name);
    if (!L) return NULL;
    L->iarg[0] = size_h;
    L->iarg[1] = size_w;
    return L;
}

static loom_layer *new_pad(loom_graph *g, const loom_op *op, const char *name, int t, int b, int l,
                           int r) {
    if (!g || g->err.code) return NULL;
    if (t < 0 || b < 0 || l < 0 || r < 0) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT,
                       "%s (%s): %s must be >= 0, got ((%d, %d), (%d, %d))",
                       name ? name : op->base_name, op->class_name,
                       op == &loom_op_cropping2d ? "cropping" : "padding", t, b, l, r);
        return NULL;
    }
    loom_layer *L = loom_graph_new_layer(g, op, name);
    if (!L) return NULL;
    L->iarg[0] = t;
    L->iarg[1] = b;
    L->iarg[2] = l;
    L->iarg[3] = r;
    return L;
}

loom_layer *loom_zero_padding2d(loom_graph *g, const char *name, int top, int bottom, int left,
                                int right) {
    return new_pad(g, &loom_op_zero_padding2d, name, top, bottom, left, right);
}

loom_layer *loom_cropping2d(loom_graph *g, const char *name, int top, int bottom, int left,
                            int right) {
    return new_pad(g, &loom_op_cropping2d, name, top, bottom, left, right);
}
