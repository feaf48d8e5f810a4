/* layer_conv.c — keras.layers.Conv1D, Conv2D, Conv2DTranspose and DepthwiseConv2D, channels_last.
 *
 * Configuration in the generic loom_layer fields (the same slots for all four classes):
 *   iarg[0]  filters (Conv*), depth_multiplier (DepthwiseConv2D)
 *   iarg[1]  kernel rows (1 for Conv1D)       iarg[2]  kernel cols (Conv1D: kernel_size)
 *   iarg[3]  stride rows (1 for Conv1D)       iarg[4]  stride cols
 *   iarg[5]  dilation rows                    iarg[6]  dilation cols
 *   iarg[7]  loom_padding                     iarg[8]  use_bias
 *   iarg[9]  kernel initializer (resolved)    iarg[10] bias initializer (resolved)
 *   farg[0..1] kernel regularizer l1, l2      farg[2..3] bias regularizer l1, l2
 *   activation: the layer's activation.
 *
 * Weights are in Keras layouts, so Keras weights load unchanged:
 *   Conv1D (k, in, filters), Conv2D (kh, kw, in, filters), Conv2DTranspose (kh, kw, filters, in),
 *   DepthwiseConv2D (kh, kw, in, multiplier) with output channel c * multiplier + m; bias last.
 *
 * Conv1D is Conv2D on a (1, steps, channels) image with a 1-row kernel: same memory layouts.
 *
 * Convolutions go through loom_sgemm on an im2col buffer: a row per output position, holding
 * the receptive field in kernel order (row, col, channel), so the kernel is the (kh*kw*in, filters)
 * right-hand matrix as stored. Samples are processed in chunks whose column buffer stays below
 * CHUNK_FLOATS (2 MB, about a core's L2 cache): the products stay large for small images, the
 * product reads a buffer im2col has just written while it is still in cache, and scratch stays
 * bounded (measured on the benchmark cnn: 16 MB chunks were 10 % slower and 6 MB larger).
 * Conv2DTranspose is the same machinery backwards: its forward is a convolution's input gradient
 * (X . K^T then col2im), its backward an im2col of dY. DepthwiseConv2D uses direct loops: a
 * per-channel product would have a single column.
 *
 * Under mixed_bfloat16 (Conv1D, Conv2D) the three products take bfloat16 inputs with float32 sums
 * (loom_layer_product: loom_gemm_bf16 on the same column buffer); im2col, col2im, the bias and the
 * activation stay float32.
 *
 * Scratch per call site: z (batch * out floats, the pre-activation) when the activation needs it
 * for backward or a fused loss reads it as logits, then the column buffer. */
#include "graph/graph.h"
#include "layers/layers.h"
#include "ops/activations.h"
#include "kernels/gemm.h"
#include "kernels/gemm_bf16.h"
#include "kernels/parallel.h"

#include <math.h>
#include <string.h>

#define CHUNK_FLOATS ((size_t)1 << 19)

enum { A_FILT, A_KH, A_KW, A_SH, A_SW, A_DH, A_DW, A_PAD, A_BIAS, A_KINIT, A_BINIT };

/* ---------------------------------------------------------------- geometry */

/* Output size along one axis (TensorFlow rules) and the padding before the first element.
 * Same: ceil(in / stride), the total padding split with the extra element after (bottom/right).
 * Returns <= 0 when a valid window does not fit. */
/* In 64 bits: (k - 1) * dil + 1 and in + stride - 1 may pass INT_MAX (build refuses a dilated
 * kernel that does, so *before always fits an int). */
static int conv_out_size(int in, int k, int stride, int dil, loom_padding pad, int *before) {
    int64_t ek = ((int64_t)k - 1) * dil + 1;
    if (pad == LOOM_PADDING_VALID) {
        *before = 0;
        return in >= ek ? (int)((in - ek) / stride + 1) : 0;
    }
    int64_t out = ((int64_t)in + stride - 1) / stride;
    int64_t total = (out - 1) * stride + ek - in;
    *before = total > 0 ? (int)(total / 2) : 0;
    return (int)out;
}

/* One convolution seen from im2col: a (in_h, in_w, in_c) image, (out_h, out_w) positions. */
typedef struct conv_geom {
    int in_h, in_w, in_c;
    int out_h, out_w;
    int kh, kw, sh, sw, dh, dw, pad_t, pad_l;
} conv_geom;

static size_t geom_rows(const conv_geom *g) { return (size_t)g->out_h * g->out_w; }
static size_t geom_cols(const conv_geom *g) { return (size_t)g->kh * g->kw * g->in_c; }

/* Short copies (few channels) inline: a library memcpy call per 1-4 floats costs more than it moves. */
static inline void copy_floats(float *restrict dst, const float *restrict src, size_t n) {
    if (n <= 16)
        for (size_t k = 0; k < n; k++) dst[k] = src[k];
    else
        memcpy(dst, src, n * sizeof *dst);
}

/* cols[(oy, ox)][(i, j, c)] = x[oy*sh - pad_t + i*dh][ox*sw - pad_l + j*dw][c], 0 in the padding. */
static void im2col(const conv_geom *g, const float *x, float *cols) {
    size_t C = (size_t)g->in_c;
    for (int oy = 0; oy < g->out_h; oy++)
        for (int ox = 0; ox < g->out_w; ox++) {
            float *row = cols + ((size_t)oy * g->out_w + ox) * geom_cols(g);
            for (int i = 0; i < g->kh; i++) {
                int iy = oy * g->sh - g->pad_t + i * g->dh;
                int ix0 = ox * g->sw - g->pad_l, ix1 = ix0 + (g->kw - 1) * g->dw;
                if (g->dw == 1 && iy >= 0 && iy < g->in_h && ix0 >= 0 && ix1 < g->in_w) {
                    /* the whole kernel row is one contiguous run of the image row */
                    copy_floats(row + (size_t)i * g->kw * C, x + ((size_t)iy * g->in_w + ix0) * C, (size_t)g->kw * C);
                    continue;
                }
                for (int j = 0; j < g->kw; j++) {
                    int ix = ox * g->sw - g->pad_l + j * g->dw;
                    float *dst = row + ((size_t)i * g->kw + j) * C;
                    if (iy < 0 || iy >= g->in_h || ix < 0 || ix >= g->in_w)
                        memset(dst, 0, C * sizeof *dst);
                    else
                        copy_floats(dst, x + ((size_t)iy * g->in_w + ix) * C, C);
                }
            }
        }
}

/* The adjoint of im2col: dx += scatter(cols). */
static void col2im(const conv_geom *g, const float *cols, float *dx) {
    size_t C = (size_t)g->in_c;
    for (int oy = 0; oy < g->out_h; oy++)
        for (int ox = 0; ox < g->out_w; ox++) {
            const float *row = cols + ((size_t)oy * g->out_w + ox) * geom_cols(g);
            for (int i = 0; i < g->kh; i++) {
                int iy = oy * g->sh - g->pad_t + i * g->dh;
                if (iy < 0 || iy >= g->in_h) continue;
                for (int j = 0; j < g->kw; j++) {
                    int ix = ox * g->sw - g->pad_l + j * g->dw;
                    if (ix < 0 || ix >= g->in_w) continue;
                    const float *src = row + ((size_t)i * g->kw + j) * C;
                    float *d = dx + ((size_t)iy * g->in_w + ix) * C;
                    for (size_t c = 0; c < C; c++) d[c] += src[c];
                }
            }
        }
}

/* Threads (src/parallel.c) split samples, rows or columns whose outputs do not depend on one
 * another, so results are the same bits at any thread count. */

typedef struct lowering_job {
    const conv_geom *g;
    const float *from;
    float *to;
    size_t image_n; /* floats per sample of the image side */
} lowering_job;

static void im2col_samples(size_t s0, size_t s1, void *p) {
    const lowering_job *j = p;
    size_t per = geom_rows(j->g) * geom_cols(j->g);
    for (size_t s = s0; s < s1; s++) im2col(j->g, j->from + s * j->image_n, j->to + s * per);
}

/* col2im of sample s only writes sample s of the image: samples split freely. */
static void col2im_samples(size_t s0, size_t s1, void *p) {
    const lowering_job *j = p;
    size_t per = geom_rows(j->g) * geom_cols(j->g);
    for (size_t s = s0; s < s1; s++) col2im(j->g, j->from + s * per, j->to + s * j->image_n);
}

/* im2col of nb consecutive samples (image_n floats each) into consecutive column blocks. */
static void im2col_batch(const conv_geom *g, const float *x, size_t image_n, int nb, float *cols) {
    lowering_job j = {g, x, cols, image_n};
    loom_parallel_for((size_t)nb, loom_parallel_min_units(geom_rows(g) * geom_cols(g)), im2col_samples, &j);
}

static void col2im_batch(const conv_geom *g, const float *cols, int nb, float *dx, size_t image_n) {
    lowering_job j = {g, cols, dx, image_n};
    loom_parallel_for((size_t)nb, loom_parallel_min_units(geom_rows(g) * geom_cols(g)), col2im_samples, &j);
}

static bool is_conv1d(const loom_layer *L);
static bool is_transpose(const loom_layer *L);
static bool is_depthwise(const loom_layer *L);

/* Spatial dims of a per-sample shape: Conv1D's (steps, ch) is a 1-row image. */
static void spatial(const loom_layer *L, const loom_shape *s, int *h, int *w, int *c) {
    if (is_conv1d(L)) {
        *h = 1;
        *w = s->dims[0];
        *c = s->dims[1];
    } else {
        *h = s->dims[0];
        *w = s->dims[1];
        *c = s->dims[2];
    }
}

/* The convolution this layer computes (for Conv2DTranspose: the convolution whose input
 * gradient it is, from its output image to its input positions). */
static conv_geom layer_geom(const loom_layer *L, const loom_shape *in, const loom_shape *out) {
    conv_geom g;
    int h, w, c, oh, ow, oc;
    spatial(L, in, &h, &w, &c);
    spatial(L, out, &oh, &ow, &oc);
    g.kh = L->iarg[A_KH];
    g.kw = L->iarg[A_KW];
    g.sh = L->iarg[A_SH];
    g.sw = L->iarg[A_SW];
    g.dh = L->iarg[A_DH];
    g.dw = L->iarg[A_DW];
    loom_padding pad = (loom_padding)L->iarg[A_PAD];
    if (is_transpose(L)) {
        g.in_h = oh, g.in_w = ow, g.in_c = oc;
        g.out_h = h, g.out_w = w;
        /* The forward convolution from an (oh, ow) image that lands on (h, w) positions. For
         * SAME that is TF's padding of conv(oh -> h); VALID has none. */
        conv_out_size(oh, g.kh, g.sh, 1, pad, &g.pad_t);
        conv_out_size(ow, g.kw, g.sw, 1, pad, &g.pad_l);
    } else {
        g.in_h = h, g.in_w = w, g.in_c = c;
        g.out_h = oh, g.out_w = ow;
        conv_out_size(h, g.kh, g.sh, g.dh, pad, &g.pad_t);
        conv_out_size(w, g.kw, g.sw, g.dw, pad, &g.pad_l);
    }
    return g;
}

/* Samples per chunk so that the chunk's column buffer stays under CHUNK_FLOATS (at least 1). */
static int chunk_samples(const conv_geom *g, int batch) {
    size_t per = geom_rows(g) * geom_cols(g);
    size_t n = per ? CHUNK_FLOATS / per : (size_t)batch;
    if (n < 1) n = 1;
    if (n > (size_t)batch) n = (size_t)batch;
    return (int)n;
}

/* ---------------------------------------------------------------- build */

static const char *class_of(const loom_layer *L) { return L->op->class_name; }

static loom_regularizer reg_of(const loom_layer *L, int k) {
    loom_regularizer r = {L->farg[2 * k], L->farg[2 * k + 1]};
    return r;
}

static loom_status conv_build(loom_layer *L, int n_in, const loom_shape *in, loom_shape *out,
                              loom_error *err) {
    (void)n_in;
    char a[64];
    const loom_shape *x = &in[0];
    bool one_d = is_conv1d(L);
    int want = one_d ? 2 : 3;
    if (x->rank != want)
        return loom_set_error(err, LOOM_ERR_SHAPE, "%s (%s): expects input %s, got %s", L->name,
                              class_of(L), one_d ? "(steps, channels)" : "(rows, cols, channels)",
                              loom_shape_str(x, a, sizeof a));
    int h, w, c;
    spatial(L, x, &h, &w, &c);
    int kh = L->iarg[A_KH], kw = L->iarg[A_KW], sh = L->iarg[A_SH], sw = L->iarg[A_SW];
    loom_padding pad = (loom_padding)L->iarg[A_PAD];
    int oh, ow, oc, before;
    bool depthwise = is_depthwise(L);
    char who[LOOM_NAME_MAX + 40];
    snprintf(who, sizeof who, "%s (%s)", L->name, class_of(L));
    /* geometry in 64 bits, each dimension checked before it becomes an int */
    if (loom_dim_check(((int64_t)kh - 1) * L->iarg[A_DH] + 1, &before, who, "the dilated kernel's rows", err) ||
        loom_dim_check(((int64_t)kw - 1) * L->iarg[A_DW] + 1, &before, who,
                       one_d ? "the dilated kernel's steps" : "the dilated kernel's columns", err))
        return err->code;
    if (is_transpose(L)) {
        /* Keras: valid (in - 1) * stride + max(k, stride), same in * stride (no output_padding) */
        int64_t oh64 = pad == LOOM_PADDING_SAME ? (int64_t)h * sh : ((int64_t)h - 1) * sh + (kh > sh ? kh : sh);
        int64_t ow64 = pad == LOOM_PADDING_SAME ? (int64_t)w * sw : ((int64_t)w - 1) * sw + (kw > sw ? kw : sw);
        if (loom_dim_check(oh64, &oh, who, "output rows", err) || loom_dim_check(ow64, &ow, who, "output columns", err))
            return err->code;
        oc = L->iarg[A_FILT];
    } else {
        oh = conv_out_size(h, kh, sh, L->iarg[A_DH], pad, &before);
        ow = conv_out_size(w, kw, sw, L->iarg[A_DW], pad, &before);
        if (oh <= 0 || ow <= 0) {
            int ekh = (kh - 1) * L->iarg[A_DH] + 1, ekw = (kw - 1) * L->iarg[A_DW] + 1;
            if (one_d)
                return loom_set_error(err, LOOM_ERR_SHAPE,
                                      "%s (%s): kernel of %d steps (dilated) is larger than the "
                                      "input %s with valid padding",
                                      L->name, class_of(L), ekw, loom_shape_str(x, a, sizeof a));
            return loom_set_error(err, LOOM_ERR_SHAPE,
                                  "%s (%s): kernel %dx%d (dilated) is larger than the input %s "
                                  "with valid padding",
                                  L->name, class_of(L), ekh, ekw, loom_shape_str(x, a, sizeof a));
        }
        if (loom_dim_check(depthwise ? (int64_t)c * L->iarg[A_FILT] : L->iarg[A_FILT], &oc, who, "output channels", err))
            return err->code;
    }
    if (one_d) {
        out->rank = 2;
        out->dims[0] = ow;
        out->dims[1] = oc;
    } else {
        out->rank = 3;
        out->dims[0] = oh;
        out->dims[1] = ow;
        out->dims[2] = oc;
    }
    out->dims[3] = 0;
    if (!L->built) {
        loom_shape k;
        memset(&k, 0, sizeof k);
        if (one_d)
            k = (loom_shape){3, {kw, c, L->iarg[A_FILT], 0}};
        else if (is_transpose(L))
            k = (loom_shape){4, {kh, kw, L->iarg[A_FILT], c}};
        else
            k = (loom_shape){4, {kh, kw, c, L->iarg[A_FILT]}};
        loom_shape b = {1, {oc, 0, 0, 0}};
        loom_layer_add_weight(L, "kernel", &k, (loom_initializer)L->iarg[A_KINIT], reg_of(L, 0));
        if (L->iarg[A_BIAS])
            loom_layer_add_weight(L, "bias", &b, (loom_initializer)L->iarg[A_BINIT], reg_of(L, 1));
    }
    return LOOM_OK;
}

/* ---------------------------------------------------------------- activation plumbing */

/* The pre-activation z stays in scratch only when the activation needs it (loom_act_keeps_preact);
 * otherwise forward writes z into the output and activates it in place. */
static size_t act_floats(const loom_layer *L, const loom_shape *out, int batch) {
    return loom_act_keeps_preact(L->activation) ? (size_t)batch * loom_shape_size(out) : 0;
}

/* Where forward writes the pre-activation (the output itself when it is not kept). */
static float *preact(const loom_layer *L, const loom_op_ctx *c) {
    return loom_act_keeps_preact(L->activation) ? c->scratch : c->out;
}

static void finish_forward(const loom_layer *L, const loom_op_ctx *c) {
    if (L->activation == LOOM_LINEAR) return;
    int ch = c->out_shape.dims[c->out_shape.rank - 1];
    size_t rows = (size_t)c->batch * loom_shape_size(&c->out_shape) / (size_t)ch;
    loom_act_forward(L->activation, preact(L, c), c->out, rows, ch);
}

/* dL/dz, computed over dout in place (or dout itself when linear or given as such by a fused loss). */
static const float *preact_grad(const loom_layer *L, const loom_op_ctx *c) {
    if (L->activation == LOOM_LINEAR || c->dout_is_preact) return c->dout;
    int ch = c->out_shape.dims[c->out_shape.rank - 1];
    size_t rows = (size_t)c->batch * loom_shape_size(&c->out_shape) / (size_t)ch;
    loom_act_backward_in_place(L->activation, preact(L, c), c->out, c->dout, rows, ch);
    return c->dout;
}

static float *cols_buffer(const loom_layer *L, const loom_op_ctx *c) {
    return c->scratch + act_floats(L, &c->out_shape, c->batch);
}

static const float *bias_of(const loom_layer *L, const loom_op_ctx *c) {
    if (!L->iarg[A_BIAS]) return NULL;
    return c->w + loom_shape_size(&L->weights[0].shape);
}

static void add_bias_grad(const loom_layer *L, const loom_op_ctx *c, const float *dz) {
    if (!L->iarg[A_BIAS] || !c->dw) return;
    int ch = c->out_shape.dims[c->out_shape.rank - 1];
    size_t rows = (size_t)c->batch * loom_shape_size(&c->out_shape) / (size_t)ch;
    loom_add_column_sums(c->dw + loom_shape_size(&L->weights[0].shape), dz, rows, ch);
}

/* ---------------------------------------------------------------- Conv1D / Conv2D */

/* What every lowered pass (Conv*, Conv2DTranspose, forward and backward) starts from: the
 * geometry, the product's row and column counts per sample, floats per sample on each side, the
 * samples per chunk and the chunk's column buffer. */
typedef struct lowering {
    conv_geom g;
    size_t M, K, in_n, out_n;
    int chunk;
    float *cols;
} lowering;

static lowering lowering_of(const loom_layer *L, const loom_op_ctx *c) {
    lowering w;
    w.g = layer_geom(L, &c->in_shape[0], &c->out_shape);
    w.M = geom_rows(&w.g);
    w.K = geom_cols(&w.g);
    w.in_n = loom_shape_size(&c->in_shape[0]);
    w.out_n = loom_shape_size(&c->out_shape);
    w.chunk = chunk_samples(&w.g, c->batch);
    w.cols = cols_buffer(L, c);
    return w;
}

/* The start of every backward: dz (over dout, in place), the bias gradient; NULL when neither the
 * kernel's nor the input's gradient is wanted. */
static const float *backward_start(const loom_layer *L, const loom_op_ctx *c) {
    const float *dz = preact_grad(L, c);
    add_bias_grad(L, c, dz);
    return c->dw || c->din[0] ? dz : NULL;
}

static size_t conv_scratch(const loom_layer *L, int n_in, const loom_shape *in,
                           const loom_shape *out, int batch) {
    (void)n_in;
    conv_geom g = layer_geom(L, &in[0], out);
    return act_floats(L, out, batch) + (size_t)chunk_samples(&g, batch) * geom_rows(&g) * geom_cols(&g);
}

/* mixed_bfloat16: the workspace of the largest chunk's three products (they run one at a time) */
static size_t conv_bf16_workspace(const loom_layer *L, int n_in, const loom_shape *in, const loom_shape *out,
                                  int batch) {
    (void)n_in;
    conv_geom g = layer_geom(L, &in[0], out);
    int rows = (int)((size_t)chunk_samples(&g, batch) * geom_rows(&g)), K = (int)geom_cols(&g), F = L->iarg[A_FILT];
    size_t f = loom_gemm_bf16_workspace(rows, F, K), dw = loom_gemm_bf16_workspace(K, F, rows),
           dx = loom_gemm_bf16_workspace(rows, K, F);
    return f > dw ? (f > dx ? f : dx) : (dw > dx ? dw : dx);
}

/* The products of a whole chunk, planned on their backends (a last, smaller chunk takes the
 * default): the forward, dK and dcols, in slots 0, 1, 2. */
enum { CONV_FWD, CONV_DW, CONV_DX };
static int conv_products(const loom_layer *L, int n_in, const loom_shape *in, const loom_shape *out, int batch,
                         bool bf16, float dw_alpha, loom_product_shape *s) {
    (void)n_in, (void)dw_alpha; /* dK is never updated in place */
    conv_geom g = layer_geom(L, &in[0], out);
    int rows = (int)((size_t)chunk_samples(&g, batch) * geom_rows(&g)), K = (int)geom_cols(&g), F = L->iarg[A_FILT];
    s[CONV_FWD] = (loom_product_shape){bf16, false, false, rows, F, K, K, F, F, 1.0f, -1, false};
    s[CONV_DW] = (loom_product_shape){bf16, true, false, K, F, rows, K, F, F, 1.0f, 1, false};
    s[CONV_DX] = (loom_product_shape){bf16, false, true, rows, K, F, F, F, K, 1.0f, 0, false};
    return 3;
}

static void conv_forward(const loom_layer *L, const loom_op_ctx *c) {
    lowering w = lowering_of(L, c);
    int F = L->iarg[A_FILT];
    size_t M = w.M, K = w.K, in_n = w.in_n, out_n = w.out_n;
    int chunk = w.chunk;
    float *z = preact(L, c), *cols = w.cols;
    const float *bias = bias_of(L, c);
    /* with ReLU the bias is added in the ReLU's pass over the products instead of before them */
    const float *fill = L->activation == LOOM_RELU ? NULL : bias;
    for (int b0 = 0; b0 < c->batch; b0 += chunk) {
        int nb = c->batch - b0 < chunk ? c->batch - b0 : chunk;
        im2col_batch(&w.g, c->in[0] + (size_t)b0 * in_n, in_n, nb, cols);
        float *zc = z + (size_t)b0 * out_n;
        if (fill) loom_fill_rows(zc, fill, (size_t)nb * M, F);
        /* z = cols . kernel (+ bias) */
        loom_layer_product(c, CONV_FWD, false, false, (int)(nb * M), F, (int)K, 1.0f, cols, (int)K, c->w, F,
                           fill ? 1.0f : 0.0f, zc, F);
    }
    if (bias && !fill)
        loom_add_bias(z, bias, (size_t)c->batch * out_n / (size_t)F, F, true);
    else
        finish_forward(L, c);
}

static void conv_backward(const loom_layer *L, const loom_op_ctx *c) {
    const float *dz = backward_start(L, c);
    if (!dz) return;
    lowering w = lowering_of(L, c);
    int F = L->iarg[A_FILT];
    size_t M = w.M, K = w.K, in_n = w.in_n, out_n = w.out_n;
    int chunk = w.chunk;
    float *cols = w.cols;
    for (int b0 = 0; b0 < c->batch; b0 += chunk) {
        int nb = c->batch - b0 < chunk ? c->batch - b0 : chunk;
        const float *dzc = dz + (size_t)b0 * out_n;
        if (c->dw) {
            /* dK += cols^T . dz */
            im2col_batch(&w.g, c->in[0] + (size_t)b0 * in_n, in_n, nb, cols);
            loom_layer_product(c, CONV_DW, true, false, (int)K, F, (int)(nb * M), 1.0f, cols, (int)K, dzc, F, 1.0f,
                               c->dw, F);
        }
        if (c->din[0]) {
            /* dcols = dz . K^T, scattered back onto the input */
            loom_layer_product(c, CONV_DX, false, true, (int)(nb * M), (int)K, F, 1.0f, dzc, F, c->w, F, 0.0f, cols,
                               (int)K);
            col2im_batch(&w.g, cols, nb, c->din[0] + (size_t)b0 * in_n, in_n);
        }
    }
}

const loom_op loom_op_conv1d = {
    .class_name = "Conv1D",
    .base_name = "conv1d",
    .min_inputs = 1,
    .max_inputs = 1,
    .build = conv_build,
    .scratch_size = conv_scratch,
    .forward = conv_forward,
    .bf16_workspace = conv_bf16_workspace,
    .products = conv_products,
    .backward = conv_backward,
    .mask_mode = LOOM_MASK_DROP,
};
const loom_op loom_op_conv2d = {
    .class_name = "Conv2D",
    .base_name = "conv2d",
    .min_inputs = 1,
    .max_inputs = 1,
    .build = conv_build,
    .scratch_size = conv_scratch,
    .forward = conv_forward,
    .bf16_workspace = conv_bf16_workspace,
    .products = conv_products,
    .backward = conv_backward,
    .mask_mode = LOOM_MASK_DROP,
};

/* ---------------------------------------------------------------- Conv2DTranspose */

/* Here the geometry's "image" is the layer's output (channels = filters) and its positions are
 * the layer's input pixels; the kernel (kh, kw, filters, in) is the (kh*kw*filters, in) matrix. */
static void convt_forward(const loom_layer *L, const loom_op_ctx *c) {
    lowering w = lowering_of(L, c);
    int F = L->iarg[A_FILT];
    int Cin = c->in_shape[0].dims[2];
    size_t M = w.M, K = w.K, in_n = w.in_n, out_n = w.out_n;
    int chunk = w.chunk;
    float *z = preact(L, c), *cols = w.cols;
    loom_fill_rows(z, bias_of(L, c), (size_t)c->batch * out_n / (size_t)F, F);
    for (int b0 = 0; b0 < c->batch; b0 += chunk) {
        int nb = c->batch - b0 < chunk ? c->batch - b0 : chunk;
        /* cols = x . K^T: each input pixel's contribution to its output window */
        loom_sgemm(false, true, (int)(nb * M), (int)K, Cin, 1.0f, c->in[0] + (size_t)b0 * in_n, Cin,
                   c->w, Cin, 0.0f, cols, (int)K);
        col2im_batch(&w.g, cols, nb, z + (size_t)b0 * out_n, out_n);
    }
    finish_forward(L, c);
}

static void convt_backward(const loom_layer *L, const loom_op_ctx *c) {
    const float *dz = backward_start(L, c);
    if (!dz) return;
    lowering w = lowering_of(L, c);
    int Cin = c->in_shape[0].dims[2];
    size_t M = w.M, K = w.K, in_n = w.in_n, out_n = w.out_n;
    int chunk = w.chunk;
    float *cols = w.cols;
    for (int b0 = 0; b0 < c->batch; b0 += chunk) {
        int nb = c->batch - b0 < chunk ? c->batch - b0 : chunk;
        im2col_batch(&w.g, dz + (size_t)b0 * out_n, out_n, nb, cols);
        const float *xc = c->in[0] + (size_t)b0 * in_n;
        if (c->din[0]) /* dx += cols . K */
            loom_sgemm(false, false, (int)(nb * M), Cin, (int)K, 1.0f, cols, (int)K, c->w, Cin, 1.0f,
                       c->din[0] + (size_t)b0 * in_n, Cin);
        if (c->dw) /* dK += cols^T . x */
            loom_sgemm(true, false, (int)K, Cin, (int)(nb * M), 1.0f, cols, (int)K, xc, Cin, 1.0f,
                       c->dw, Cin);
    }
}

const loom_op loom_op_conv2d_transpose = {
    .class_name = "Conv2DTranspose",
    .base_name = "conv2d_transpose",
    .min_inputs = 1,
    .max_inputs = 1,
    .build = conv_build,
    .scratch_size = conv_scratch,
    .forward = convt_forward,
    .backward = convt_backward,
    .mask_mode = LOOM_MASK_DROP,
};

/* ---------------------------------------------------------------- DepthwiseConv2D */

static size_t dw_scratch(const loom_layer *L, int n_in, const loom_shape *in, const loom_shape *out,
                         int batch) {
    (void)n_in;
    (void)in;
    return act_floats(L, out, batch);
}

static void dw_forward(const loom_layer *L, const loom_op_ctx *c) {
    conv_geom g = layer_geom(L, &c->in_shape[0], &c->out_shape);
    int Mu = L->iarg[A_FILT], C = g.in_c, OC = C * Mu;
    size_t in_n = loom_shape_size(&c->in_shape[0]), out_n = loom_shape_size(&c->out_shape);
    float *z = preact(L, c);
    loom_fill_rows(z, bias_of(L, c), (size_t)c->batch * out_n / (size_t)OC, OC);
    for (int b = 0; b < c->batch; b++) {
        const float *x = c->in[0] + (size_t)b * in_n;
        for (int oy = 0; oy < g.out_h; oy++)
            for (int ox = 0; ox < g.out_w; ox++) {
                float *zp = z + (size_t)b * out_n + ((size_t)oy * g.out_w + ox) * OC;
                for (int i = 0; i < g.kh; i++) {
                    int iy = oy * g.sh - g.pad_t + i * g.dh;
                    if (iy < 0 || iy >= g.in_h) continue;
                    for (int j = 0; j < g.kw; j++) {
                        int ix = ox * g.sw - g.pad_l + j * g.dw;
                        if (ix < 0 || ix >= g.in_w) continue;
                        const float *xp = x + ((size_t)iy * g.in_w + ix) * C;
                        const float *kp = c->w + ((size_t)i * g.kw + j) * OC;
                        for (int ch = 0; ch < C; ch++)
                            for (int m = 0; m < Mu; m++) zp[ch * Mu + m] += xp[ch] * kp[ch * Mu + m];
                    }
                }
            }
    }
    finish_forward(L, c);
}

static void dw_backward(const loom_layer *L, const loom_op_ctx *c) {
    conv_geom g = layer_geom(L, &c->in_shape[0], &c->out_shape);
    int Mu = L->iarg[A_FILT], C = g.in_c, OC = C * Mu;
    size_t in_n = loom_shape_size(&c->in_shape[0]), out_n = loom_shape_size(&c->out_shape);
    const float *dz = backward_start(L, c);
    if (!dz) return;
    float *dx_all = c->din[0], *dk = c->dw;
    for (int b = 0; b < c->batch; b++) {
        const float *x = c->in[0] + (size_t)b * in_n;
        float *dx = dx_all ? dx_all + (size_t)b * in_n : NULL;
        for (int oy = 0; oy < g.out_h; oy++)
            for (int ox = 0; ox < g.out_w; ox++) {
                const float *dzp = dz + (size_t)b * out_n + ((size_t)oy * g.out_w + ox) * OC;
                for (int i = 0; i < g.kh; i++) {
                    int iy = oy * g.sh - g.pad_t + i * g.dh;
                    if (iy < 0 || iy >= g.in_h) continue;
                    for (int j = 0; j < g.kw; j++) {
                        int ix = ox * g.sw - g.pad_l + j * g.dw;
                        if (ix < 0 || ix >= g.in_w) continue;
                        size_t xo = ((size_t)iy * g.in_w + ix) * C, ko = ((size_t)i * g.kw + j) * OC;
                        for (int ch = 0; ch < C; ch++)
                            for (int m = 0; m < Mu; m++) {
                                float d = dzp[ch * Mu + m];
                                if (dx) dx[xo + ch] += d * c->w[ko + ch * Mu + m];
                                if (dk) dk[ko + ch * Mu + m] += d * x[xo + ch];
                            }
                    }
                }
            }
    }
}

const loom_op loom_op_depthwise_conv2d = {
    .class_name = "DepthwiseConv2D",
    .base_name = "depthwise_conv2d",
    .min_inputs = 1,
    .max_inputs = 1,
    .build = conv_build,
    .scratch_size = dw_scratch,
    .forward = dw_forward,
    .backward = dw_backward,
    .mask_mode = LOOM_MASK_DROP,
};

static bool is_conv1d(const loom_layer *L) { return L->op == &loom_op_conv1d; }
static bool is_transpose(const loom_layer *L) { return L->op == &loom_op_conv2d_transpose; }
static bool is_depthwise(const loom_layer *L) { return L->op == &loom_op_depthwise_conv2d; }

/* ---------------------------------------------------------------- constructors */

loom_conv_options loom_conv_defaults(void) {
    loom_conv_options o;
    memset(&o, 0, sizeof o);
    o.use_bias = 1;
    return o;
}

static bool bad_reg(loom_regularizer r) {
    return !(r.l1 >= 0 && r.l2 >= 0 && isfinite(r.l1) && isfinite(r.l2));
}

/* Checks what all four classes share and makes the layer; NULL (error on g) if anything is off.
 * Zero strides and dilations become 1 (Keras's default) before this call. */
static loom_layer *new_conv(loom_graph *g, const loom_op *op, const char *name, int filters,
                            const char *filters_word, int kh, int kw, int sh, int sw, int dh, int dw,
                            loom_padding padding, loom_activation act, const loom_conv_options *opt) {
    if (!g || g->err.code) return NULL;
    const char *shown = name ? name : op->base_name;
    const char *cls = op->class_name;
    bool one_d = op == &loom_op_conv1d;
    if (filters <= 0) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (%s): %s must be > 0, got %d", shown, cls,
                       filters_word, filters);
        return NULL;
    }
    if (kh <= 0 || kw <= 0) {
        if (one_d)
            loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (%s): kernel_size must be > 0, got %d",
                           shown, cls, kw);
        else
            loom_set_error(&g->err, LOOM_ERR_ARGUMENT,
                           "%s (%s): kernel_size must be > 0, got (%d, %d)", shown, cls, kh, kw);
        return NULL;
    }
    if (sh < 0 || sw < 0) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (%s): strides must be >= 1 (0 = 1), got %d",
                       shown, cls, sh < 0 ? sh : sw);
        return NULL;
    }
    if (dh < 0 || dw < 0) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT,
                       "%s (%s): dilation_rate must be >= 1 (0 = 1), got %d", shown, cls,
                       dh < 0 ? dh : dw);
        return NULL;
    }
    if (sh == 0) sh = 1;
    if (sw == 0) sw = 1;
    if (dh == 0) dh = 1;
    if (dw == 0) dw = 1;
    if ((sh > 1 || sw > 1) && (dh > 1 || dw > 1)) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT,
                       "%s (%s): strides > 1 are not supported together with dilation_rate > 1 "
                       "(as Keras)",
                       shown, cls);
        return NULL;
    }
    if (padding != LOOM_PADDING_VALID && padding != LOOM_PADDING_SAME) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (%s): unknown padding %d", shown, cls,
                       (int)padding);
        return NULL;
    }
    if ((int)act < 0 || act >= LOOM_ACTIVATION_COUNT) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (%s): unknown activation %d", shown, cls,
                       (int)act);
        return NULL;
    }
    loom_conv_options o = opt ? *opt : loom_conv_defaults();
    if ((int)o.kernel_initializer < 0 || o.kernel_initializer > LOOM_INIT_ONES ||
        (int)o.bias_initializer < 0 || o.bias_initializer > LOOM_INIT_ONES) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (%s): unknown initializer", shown, cls);
        return NULL;
    }
    if (bad_reg(o.kernel_regularizer) || bad_reg(o.bias_regularizer)) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT,
                       "%s (%s): regularizer factors must be >= 0 and finite", shown, cls);
        return NULL;
    }
    loom_layer *L = loom_graph_new_layer(g, op, name);
    if (!L) return NULL;
    L->activation = act;
    L->iarg[A_FILT] = filters;
    L->iarg[A_KH] = kh;
    L->iarg[A_KW] = kw;
    L->iarg[A_SH] = sh;
    L->iarg[A_SW] = sw;
    L->iarg[A_DH] = dh;
    L->iarg[A_DW] = dw;
    L->iarg[A_PAD] = (int)padding;
    L->iarg[A_BIAS] = o.use_bias != 0;
    L->iarg[A_KINIT] = o.kernel_initializer ? (int)o.kernel_initializer : (int)LOOM_INIT_GLOROT_UNIFORM;
    L->iarg[A_BINIT] = o.bias_initializer ? (int)o.bias_initializer : (int)LOOM_INIT_ZEROS;
    L->farg[0] = o.kernel_regularizer.l1;
    L->farg[1] = o.kernel_regularizer.l2;
    L->farg[2] = o.bias_regularizer.l1;
    L->farg[3] = o.bias_regularizer.l2;
    return L;
}

loom_layer *loom_conv1d(loom_graph *g, const char *name, int filters, int kernel_size, int stride,
                        loom_padding padding, int dilation, loom_activation act,
                        const loom_conv_options *opt) {
    return new_conv(g, &loom_op_conv1d, name, filters, "filters", 1, kernel_size, 1, stride, 1,
                    dilation, padding, act, opt);
}

loom_layer *loom_conv2d(loom_graph *g, const char *name, int filters, int kh, int kw, int stride_h,
                        int stride_w, loom_padding padding, int dilation_h, int dilation_w,
                        loom_activation act, const loom_conv_options *opt) {
    return new_conv(g, &loom_op_conv2d, name, filters, "filters", kh, kw, stride_h, stride_w,
                    dilation_h, dilation_w, padding, act, opt);
}

loom_layer *loom_conv2d_transpose(loom_graph *g, const char *name, int filters, int kh, int kw,
                                  int stride_h, int stride_w, loom_padding padding,
                                  loom_activation act, const loom_conv_options *opt) {
    return new_conv(g, &loom_op_conv2d_transpose, name, filters, "filters", kh, kw, stride_h,
                    stride_w, 1, 1, padding, act, opt);
}

loom_layer *loom_depthwise_conv2d(loom_graph *g, const char *name, int kh, int kw, int stride_h,
                                  int stride_w, loom_padding padding, int depth_multiplier,
                                  loom_activation act, const loom_conv_options *opt) {
    return new_conv(g, &loom_op_depthwise_conv2d, name, depth_multiplier, "depth_multiplier", kh,
                    kw, stride_h, stride_w, 1, 1, padding, act, opt);
}
