/* onnx_export.c — loom_model_export_onnx: the inference graph of a model as an ONNX model
 * (opset 17, IR 8), encoded with protobuf-c over the onnx.proto of Debian's libonnx-dev.
 *
 * What the graph is:
 *   - graph inputs and outputs carry loom's input and output names; axis 0 is the symbolic
 *     "batch"; an input whose axis 1 is a time axis (it reaches a recurrent or attention layer
 *     through layers that keep time) gets the symbolic "<input>_steps", unless a layer on the way
 *     bakes the length into a constant (a causal mask);
 *   - Dropout disappears (its output is its input); BatchNormalization is (x - moving_mean) *
 *     (gamma / sqrt(moving_var + eps)) + beta with the factors computed here as loom computes them;
 *   - loom is channels-last like Keras and ONNX's Conv / ConvTranspose / pooling are
 *     channels-first: each such layer is Transpose, the op, Transpose back (between consecutive
 *     such layers a transpose meets its inverse, which graph optimizers remove). Keras's SAME padding becomes explicit pads (the
 *     extra element after), Conv2DTranspose's output size explicit pads / output_padding;
 *   - a per-sample LOOM_DIM_VARIABLE (variable-length sequences) is a symbolic dim_param too: the
 *     input's "<input>_steps" on axis 1, "<value>_dim<axis>" elsewhere; a layer whose ONNX form
 *     fixes that size (Flatten, Reshape, a causal mask, an unrolled recurrent layer) refuses it;
 *   - SimpleRNN, LSTM, GRU and Bidirectional are ONNX's recurrent operators, or unrolled where
 *     those cannot express the layer (onnx_recurrent.c), with their initial states and
 *     return_state; RecurrentOutput slices loom's stacked (output rows, states) tensor;
 *   - MultiHeadAttention is decomposed: projections (MatMul + Add), heads by Reshape/Transpose,
 *     scores MatMul * 1/sqrt(key_dim), a constant -1e30 above the diagonal when causal, Softmax,
 *     MatMul, output projection;
 *   - TimeDistributed folds the time axis into the batch (Reshape), runs its layer, unfolds it;
 *   - Embedding is Cast to int64 + Gather (loom gives a zero row for an id outside the table,
 *     ONNX Runtime an error: the ONNX model expects valid ids).
 * Masks (Embedding mask_zero, "id != 0") travel as bool (batch, steps) tensors to the recurrent
 * layers (unrolled) and to MultiHeadAttention (a -1e30 bias on padded keys when the keys are the
 * query tensor, padded query rows multiplied by 0, as layer_attention.c).
 * Not exported (an error naming the layer): user C layers. */
#include "core/model.h"
#include "layers/layers.h"
#include "layers/rnn.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef LOOM_HAVE_ONNX

loom_status loom_model_export_onnx(loom_model *m, const char *path) {
    if (!m) return LOOM_ERR_ARGUMENT;
    return loom_set_error(&m->err, LOOM_ERR_STATE,
                          "export %s: this loom was built without ONNX support (protobuf-c and onnx.proto "
                          "were not found, or LOOM_USE_ONNX was OFF)",
                          path ? path : "(null)");
}

#else

#include "io/onnx_emit.h"
#include "io/onnx_recurrent.h"

#include <unistd.h>

#define ONNX_OPSET 17
#define ONNX_IR_VERSION 8

/* The pre-activation's name: the output itself when the activation is linear. */
static const char *preact(onnx_exporter *e, const onnx_call *c, loom_activation a) {
    return a == LOOM_LINEAR ? c->out : loom_onnx_tmp(e, c, "preact");
}

static bool finish_activation(onnx_exporter *e, const onnx_call *c, loom_activation a, const char *z) {
    return a == LOOM_LINEAR || loom_onnx_activation(e, c, a, z, c->out);
}

/* ---------------------------------------------------------------- dense, activation, merges */

static bool emit_dense(onnx_exporter *e, const onnx_call *c) {
    const loom_layer *L = c->L;
    int64_t in = c->in_shape[0].dims[c->in_shape[0].rank - 1], units = L->units;
    const char *z = preact(e, c, L->activation);
    const char *k = ox_weight(&e->x, loom_onnx_wname(e, c->L, "kernel"), 2, (int64_t[]){in, units}, c->w);
    if (L->dense.use_bias) {
        const char *mm = loom_onnx_tmp(e, c, "matmul");
        ox_op2(&e->x, "MatMul", mm, c->in[0], k);
        ox_op2(&e->x, "Add", z, mm, ox_weight(&e->x, loom_onnx_wname(e, c->L, "bias"), 1, &units, c->w + in * units));
    } else {
        ox_op2(&e->x, "MatMul", z, c->in[0], k);
    }
    return finish_activation(e, c, L->activation, z);
}

/* Add, Subtract, Multiply: binary ONNX ops chained left to right, as loom sums. */
static bool emit_elementwise(onnx_exporter *e, const onnx_call *c, const char *op) {
    const char *acc = c->in[0];
    for (int i = 1; i < c->n_in; i++) {
        const char *to = i == c->n_in - 1 ? c->out : ox_str(&e->x, "%s/%s%d", c->out, op, i);
        ox_op2(&e->x, op, to, acc, c->in[i]);
        acc = to;
    }
    return true;
}

static bool emit_concatenate(onnx_exporter *e, const onnx_call *c) {
    int rank = c->in_shape[0].rank;
    int a = c->L->axis < 0 ? c->L->axis + rank + 1 : c->L->axis; /* Keras axis = ONNX axis (batch is 0) */
    ox_attr_int(&e->x, ox_node(&e->x, "Concat", c->n_in, c->in, 1, &c->out), "axis", a);
    return true;
}

/* ---------------------------------------------------------------- shapes */

static bool emit_reshape_to(onnx_exporter *e, const onnx_call *c, const loom_shape *to) {
    int64_t d[LOOM_MAX_RANK + 1] = {0}; /* 0: keep the batch dim */
    for (int i = 0; i < to->rank; i++) d[i + 1] = to->dims[i];
    ox_op2(&e->x, "Reshape", c->out, c->in[0], loom_onnx_ints(e, c, "shape", to->rank + 1, d));
    return true;
}

static bool emit_permute(onnx_exporter *e, const onnx_call *c) {
    int64_t perm[LOOM_MAX_RANK + 1] = {0};
    for (int i = 0; i < c->L->iarg[0]; i++) perm[i + 1] = c->L->iarg[1 + i];
    loom_onnx_transpose(e, c->out, c->in[0], c->L->iarg[0] + 1, perm);
    return true;
}

static bool emit_repeat_vector(onnx_exporter *e, const onnx_call *c) {
    const char *u = loom_onnx_tmp(e, c, "unsqueezed");
    ox_op2(&e->x, "Unsqueeze", u, c->in[0], loom_onnx_ints(e, c, "axes", 1, (int64_t[]){1}));
    ox_op2(&e->x, "Expand", c->out, u, loom_onnx_ints(e, c, "repeats", 3, (int64_t[]){1, c->L->iarg[0], 1}));
    return true;
}

/* ---------------------------------------------------------------- convolution and pooling */

/* Keras's (TensorFlow's) padding along one axis: SAME puts the extra element after. */
static void same_pads(int in, int out, int k, int stride, int dil, loom_padding pad, int64_t *before,
                      int64_t *after) {
    *before = *after = 0;
    if (pad != LOOM_PADDING_SAME) return;
    int total = (out - 1) * stride + (k - 1) * dil + 1 - in;
    if (total <= 0) return;
    *before = total / 2;
    *after = total - total / 2;
}

/* Channels-last <-> channels-first around a 1-D or 2-D op. */
static void to_channels_first(onnx_exporter *e, const char *out, const char *in, bool one_d) {
    if (one_d) loom_onnx_transpose(e, out, in, 3, (int64_t[]){0, 2, 1});
    else loom_onnx_transpose(e, out, in, 4, (int64_t[]){0, 3, 1, 2});
}

static void to_channels_last(onnx_exporter *e, const char *out, const char *in, bool one_d) {
    if (one_d) loom_onnx_transpose(e, out, in, 3, (int64_t[]){0, 2, 1});
    else loom_onnx_transpose(e, out, in, 4, (int64_t[]){0, 2, 3, 1});
}

/* configuration slots, as layer_conv.c and layer_pool.c document them */
enum { A_FILT = 0, A_KH, A_KW, A_SH, A_SW, A_DH, A_DW, A_PAD, A_BIAS };

static bool emit_conv(onnx_exporter *e, const onnx_call *c) {
    const loom_layer *L = c->L;
    const loom_op *op = L->op;
    bool one_d = op == &loom_op_conv1d, transposed = op == &loom_op_conv2d_transpose,
         depthwise = op == &loom_op_depthwise_conv2d;
    const loom_shape *is = &c->in_shape[0], *os = &c->out_shape;
    int h = one_d ? 1 : is->dims[0], w = one_d ? is->dims[0] : is->dims[1], cin = is->dims[is->rank - 1];
    int oh = one_d ? 1 : os->dims[0], ow = one_d ? os->dims[0] : os->dims[1], cout = os->dims[os->rank - 1];
    int kh = L->iarg[A_KH], kw = L->iarg[A_KW], sh = L->iarg[A_SH], sw = L->iarg[A_SW];
    int dh = L->iarg[A_DH] > 0 ? L->iarg[A_DH] : 1, dw = L->iarg[A_DW] > 0 ? L->iarg[A_DW] : 1;
    loom_padding pad = (loom_padding)L->iarg[A_PAD];
    size_t kn = (size_t)kh * kw * cin * (depthwise ? (size_t)cout / cin : (size_t)cout);
    float *W = malloc(kn * sizeof *W);
    if (!W) {
        e->x.failed = true;
        return true;
    }
    /* ONNX kernels: Conv (out, in/group, kh, kw); ConvTranspose (in, out, kh, kw). Keras: Conv
     * (kh, kw, in, out), DepthwiseConv2D (kh, kw, in, mult) with output channel c*mult + m,
     * Conv2DTranspose (kh, kw, out, in). */
    int64_t wd[4];
    if (transposed) {
        wd[0] = cin, wd[1] = cout;
        for (int i = 0; i < kh; i++)
            for (int j = 0; j < kw; j++)
                for (int o = 0; o < cout; o++)
                    for (int ci = 0; ci < cin; ci++)
                        W[(((size_t)ci * cout + o) * kh + i) * kw + j] = c->w[(((size_t)i * kw + j) * cout + o) * cin + ci];
    } else if (depthwise) {
        int mult = cout / cin;
        wd[0] = cout, wd[1] = 1;
        for (int i = 0; i < kh; i++)
            for (int j = 0; j < kw; j++)
                for (int ci = 0; ci < cin; ci++)
                    for (int mm = 0; mm < mult; mm++)
                        W[(((size_t)ci * mult + mm) * kh + i) * kw + j] = c->w[(((size_t)i * kw + j) * cin + ci) * mult + mm];
    } else {
        wd[0] = cout, wd[1] = cin;
        for (int i = 0; i < kh; i++)
            for (int j = 0; j < kw; j++)
                for (int ci = 0; ci < cin; ci++)
                    for (int o = 0; o < cout; o++)
                        W[(((size_t)o * cin + ci) * kh + i) * kw + j] = c->w[(((size_t)i * kw + j) * cin + ci) * cout + o];
    }
    int sp = one_d ? 1 : 2; /* spatial axes */
    if (one_d) wd[2] = kw;
    else wd[2] = kh, wd[3] = kw;
    const char *kname = ox_weight(&e->x, loom_onnx_wname(e, L, "kernel"), 2 + sp, wd, W);
    free(W);

    int64_t pads[4], out_pad[2] = {0, 0}, pt, pb, pl, pr;
    if (transposed) {
        /* ONNX: out = s (in - 1) + output_padding + k - pads; Keras's sizes need pads when the
         * full (in - 1) s + k overhangs the output, output_padding when it falls short */
        int full_h = (h - 1) * sh + kh, full_w = (w - 1) * sw + kw;
        if (oh >= full_h) pt = pb = 0, out_pad[0] = oh - full_h;
        else same_pads(oh, h, kh, sh, 1, LOOM_PADDING_SAME, &pt, &pb), pb = full_h - oh - pt;
        if (ow >= full_w) pl = pr = 0, out_pad[1] = ow - full_w;
        else same_pads(ow, w, kw, sw, 1, LOOM_PADDING_SAME, &pl, &pr), pr = full_w - ow - pl;
    } else {
        same_pads(h, oh, kh, sh, dh, pad, &pt, &pb);
        same_pads(w, ow, kw, sw, dw, pad, &pl, &pr);
    }
    if (one_d) pads[0] = pl, pads[1] = pr;
    else pads[0] = pt, pads[1] = pl, pads[2] = pb, pads[3] = pr;

    const char *xc = loom_onnx_tmp(e, c, "channels_first"), *yc = loom_onnx_tmp(e, c, "conv");
    to_channels_first(e, xc, c->in[0], one_d);
    const char *ins[3] = {xc, kname, NULL};
    int n_in = 2;
    if (L->iarg[A_BIAS]) {
        int64_t nb = cout;
        ins[n_in++] = ox_weight(&e->x, loom_onnx_wname(e, L, "bias"), 1, &nb, c->w + kn);
    }
    Onnx__NodeProto *n = ox_node(&e->x, transposed ? "ConvTranspose" : "Conv", n_in, ins, 1, &yc);
    int64_t ks[2] = {one_d ? kw : kh, kw}, st[2] = {one_d ? sw : sh, sw}, dl[2] = {one_d ? dw : dh, dw};
    ox_attr_ints(&e->x, n, "kernel_shape", sp, ks);
    ox_attr_ints(&e->x, n, "strides", sp, st);
    ox_attr_ints(&e->x, n, "dilations", sp, dl);
    ox_attr_ints(&e->x, n, "pads", 2 * sp, pads);
    if (transposed) ox_attr_ints(&e->x, n, "output_padding", sp, one_d ? out_pad + 1 : out_pad);
    if (depthwise) ox_attr_int(&e->x, n, "group", cin);
    const char *z = preact(e, c, L->activation);
    to_channels_last(e, z, yc, one_d);
    return finish_activation(e, c, L->activation, z);
}

static bool emit_pool(onnx_exporter *e, const onnx_call *c, bool is_max, bool one_d) {
    const loom_layer *L = c->L;
    const loom_shape *is = &c->in_shape[0], *os = &c->out_shape;
    int h = one_d ? 1 : is->dims[0], w = one_d ? is->dims[0] : is->dims[1];
    int oh = one_d ? 1 : os->dims[0], ow = one_d ? os->dims[0] : os->dims[1];
    int ph = L->iarg[A_KH], pw = L->iarg[A_KW], sh = L->iarg[A_SH], sw = L->iarg[A_SW];
    int64_t pt, pb, pl, pr;
    same_pads(h, oh, ph, sh, 1, (loom_padding)L->iarg[A_PAD], &pt, &pb);
    same_pads(w, ow, pw, sw, 1, (loom_padding)L->iarg[A_PAD], &pl, &pr);
    const char *xc = loom_onnx_tmp(e, c, "channels_first"), *yc = loom_onnx_tmp(e, c, "pool");
    to_channels_first(e, xc, c->in[0], one_d);
    Onnx__NodeProto *n = ox_op1(&e->x, is_max ? "MaxPool" : "AveragePool", yc, xc);
    int sp = one_d ? 1 : 2;
    int64_t ks[2] = {one_d ? pw : ph, pw}, st[2] = {one_d ? sw : sh, sw};
    int64_t pads[4] = {pt, pl, pb, pr}, pads1[2] = {pl, pr};
    ox_attr_ints(&e->x, n, "kernel_shape", sp, ks);
    ox_attr_ints(&e->x, n, "strides", sp, st);
    ox_attr_ints(&e->x, n, "pads", 2 * sp, one_d ? pads1 : pads);
    /* Keras averages over the real entries of a window only */
    if (!is_max) ox_attr_int(&e->x, n, "count_include_pad", 0);
    to_channels_last(e, c->out, yc, one_d);
    return true;
}

static bool emit_global_pool(onnx_exporter *e, const onnx_call *c, bool is_max, bool one_d) {
    Onnx__NodeProto *n = ox_op1(&e->x, is_max ? "ReduceMax" : "ReduceMean", c->out, c->in[0]);
    ox_attr_ints(&e->x, n, "axes", one_d ? 1 : 2, (int64_t[]){1, 2});
    ox_attr_int(&e->x, n, "keepdims", 0);
    return true;
}

/* UpSampling2D (nearest): (N, H, W, C) -> (N, H, 1, W, 1, C), broadcast, fold back. Exact and
 * independent of Resize's coordinate conventions. */
static bool emit_upsampling(onnx_exporter *e, const onnx_call *c) {
    const loom_shape *s = &c->in_shape[0];
    int64_t H = s->dims[0], W = s->dims[1], C = s->dims[2], fh = c->L->iarg[0], fw = c->L->iarg[1];
    const char *a = loom_onnx_tmp(e, c, "split"), *b = loom_onnx_tmp(e, c, "repeated");
    ox_op2(&e->x, "Reshape", a, c->in[0], loom_onnx_ints(e, c, "split_shape", 6, (int64_t[]){0, H, 1, W, 1, C}));
    ox_op2(&e->x, "Expand", b, a, loom_onnx_ints(e, c, "repeats", 6, (int64_t[]){1, 1, fh, 1, fw, 1}));
    ox_op2(&e->x, "Reshape", c->out, b, loom_onnx_ints(e, c, "shape", 4, (int64_t[]){0, H * fh, W * fw, C}));
    return true;
}

static bool emit_zero_padding(onnx_exporter *e, const onnx_call *c) {
    const int *p = c->L->iarg; /* top, bottom, left, right */
    ox_op2(&e->x, "Pad", c->out, c->in[0], loom_onnx_ints(e, c, "pads", 8, (int64_t[]){0, p[0], p[2], 0, 0, p[1], p[3], 0}));
    return true;
}

static bool emit_cropping(onnx_exporter *e, const onnx_call *c) {
    const int *p = c->L->iarg;
    const loom_shape *s = &c->in_shape[0];
    const char *in[4] = {c->in[0], loom_onnx_ints(e, c, "starts", 2, (int64_t[]){p[0], p[2]}),
                         loom_onnx_ints(e, c, "ends", 2, (int64_t[]){s->dims[0] - p[1], s->dims[1] - p[3]}),
                         loom_onnx_ints(e, c, "axes", 2, (int64_t[]){1, 2})};
    ox_node(&e->x, "Slice", 4, in, 1, &c->out);
    return true;
}

/* ---------------------------------------------------------------- normalisation, embedding */

/* configuration slots, as layer_norm.c and layer_embedding.c document them */
enum { N_CENTER = 0, N_SCALE = 1 };
enum { F_EPSILON = 1 };
enum { E_INPUT_DIM = 0, E_OUTPUT_DIM = 1, E_MASK_ZERO = 2 };

static bool emit_batchnorm(onnx_exporter *e, const onnx_call *c) {
    const loom_layer *L = c->L;
    int rank = c->in_shape[0].rank;
    int a = L->axis < 0 ? rank + L->axis : L->axis - 1;
    int64_t C = c->in_shape[0].dims[a];
    bool scale = L->iarg[N_SCALE], center = L->iarg[N_CENTER];
    const float *gamma = scale ? c->w : NULL, *beta = center ? c->w + (scale ? C : 0) : NULL;
    const float *mean = c->w + (size_t)(scale + center) * C, *var = mean + C;
    float *buf = malloc(2 * (size_t)C * sizeof *buf);
    if (!buf) {
        e->x.failed = true;
        return true;
    }
    float *sc = buf, *sh = buf + C;
    for (int64_t i = 0; i < C; i++) { /* as layer_norm.c's inference */
        float inv_std = (float)(1.0 / sqrt((double)var[i] + L->farg[F_EPSILON]));
        sc[i] = inv_std * (gamma ? gamma[i] : 1.0f);
        sh[i] = beta ? beta[i] : 0.0f;
    }
    /* constants shaped (C, 1, ...) broadcast against the channel axis */
    int64_t d[LOOM_MAX_RANK] = {C, 1, 1, 1};
    int cr = rank - a;
    const char *centered = loom_onnx_tmp(e, c, "centered"), *scaled = center ? loom_onnx_tmp(e, c, "scaled") : c->out;
    ox_op2(&e->x, "Sub", centered, c->in[0], ox_weight(&e->x, loom_onnx_wname(e, L, "moving_mean"), cr, d, mean));
    ox_op2(&e->x, "Mul", scaled, centered, ox_weight(&e->x, loom_onnx_wname(e, L, "scale"), cr, d, sc));
    if (center) ox_op2(&e->x, "Add", c->out, scaled, ox_weight(&e->x, loom_onnx_wname(e, L, "shift"), cr, d, sh));
    free(buf);
    return true;
}

static bool emit_layernorm(onnx_exporter *e, const onnx_call *c) {
    const loom_layer *L = c->L;
    /* layer_norm.c: iarg[2] axes given (0: the last), always the trailing ones; gamma and beta
     * have their shape, which ONNX's Scale and B take as they are (axis = -k) */
    const loom_shape *x = &c->in_shape[0];
    int k = L->iarg[2] > 0 ? L->iarg[2] : 1;
    int64_t d[LOOM_MAX_RANK], D = 1;
    for (int i = 0; i < k; i++) D *= d[i] = x->dims[x->rank - k + i];
    if (D <= 0) /* gamma's shape is fixed: a variable-length axis cannot be among the normalised */
        return loom_onnx_fail(e, L, "%s", "LayerNormalization over a variable-length axis has no ONNX form");
    bool scale = L->iarg[N_SCALE], center = L->iarg[N_CENTER];
    const char *in[3] = {c->in[0], NULL, NULL};
    float *ones = NULL;
    if (scale) {
        in[1] = ox_weight(&e->x, loom_onnx_wname(e, L, "gamma"), k, d, c->w);
    } else {
        ones = malloc((size_t)D * sizeof *ones);
        if (!ones) {
            e->x.failed = true;
            return true;
        }
        for (int64_t i = 0; i < D; i++) ones[i] = 1.0f;
        in[1] = ox_weight(&e->x, loom_onnx_wname(e, L, "gamma"), k, d, ones);
        free(ones);
    }
    if (center) in[2] = ox_weight(&e->x, loom_onnx_wname(e, L, "beta"), k, d, c->w + (scale ? D : 0));
    Onnx__NodeProto *n = ox_node(&e->x, "LayerNormalization", center ? 3 : 2, in, 1, &c->out);
    ox_attr_int(&e->x, n, "axis", -k);
    ox_attr_float(&e->x, n, "epsilon", L->farg[F_EPSILON]);
    return true;
}

static bool emit_embedding(onnx_exporter *e, const onnx_call *c) {
    int64_t d[2] = {c->L->iarg[E_INPUT_DIM], c->L->iarg[E_OUTPUT_DIM]};
    const char *ids = loom_onnx_tmp(e, c, "ids");
    /* Cast truncates toward zero, as Keras's cast to int32 */
    ox_attr_int(&e->x, ox_op1(&e->x, "Cast", ids, c->in[0]), "to", ONNX__TENSOR_PROTO__DATA_TYPE__INT64);
    Onnx__NodeProto *n = ox_op2(&e->x, "Gather", c->out, ox_weight(&e->x, loom_onnx_wname(e, c->L, "embeddings"), 2, d, c->w), ids);
    ox_attr_int(&e->x, n, "axis", 0);
    return true;
}

/* ---------------------------------------------------------------- attention */

enum { MHA_HEADS = 0, MHA_KDIM, MHA_VDIM, MHA_BIAS, MHA_CAUSAL }; /* layer_attention.c's slots */

/* x . kernel (+ bias) split into heads: (batch, heads, steps, dim), or (batch, heads, dim, steps)
 * when keys_last. Advances *w past the kernel and bias. */
static const char *mha_project(onnx_exporter *e, const onnx_call *c, const char *x, int in_dim, int heads, int dim,
                               const float **w, const char *what, bool keys_last) {
    bool bias = c->L->iarg[MHA_BIAS];
    int64_t hd = (int64_t)heads * dim;
    const char *p = ox_str(&e->x, "%s/%s", c->out, what);
    const char *mm = ox_tmp(&e->x, p, "matmul"), *lin = ox_tmp(&e->x, p, "linear"),
               *split = ox_tmp(&e->x, p, "heads"), *t = ox_tmp(&e->x, p, "head_major");
    ox_op2(&e->x, "MatMul", bias ? mm : lin, x, ox_weight(&e->x, ox_str(&e->x, "%s/%s/kernel", c->L->name, what), 2, (int64_t[]){in_dim, hd}, *w));
    *w += (size_t)in_dim * hd;
    if (bias) {
        ox_op2(&e->x, "Add", lin, mm, ox_weight(&e->x, ox_str(&e->x, "%s/%s/bias", c->L->name, what), 1, &hd, *w));
        *w += hd;
    }
    ox_op2(&e->x, "Reshape", split, lin, ox_int64s(&e->x, ox_tmp(&e->x, p, "split_shape"), 4, (int64_t[]){0, 0, heads, dim}));
    loom_onnx_transpose(e, t, split, 4, keys_last ? (int64_t[]){0, 2, 3, 1} : (int64_t[]){0, 2, 1, 3});
    return t;
}

static bool emit_attention(onnx_exporter *e, const onnx_call *c) {
    const loom_layer *L = c->L;
    int H = L->iarg[MHA_HEADS], Kd = L->iarg[MHA_KDIM], Vd = L->iarg[MHA_VDIM];
    int key = c->n_in > 2 ? 2 : 1;
    int dq = c->in_shape[0].dims[1], dv = c->in_shape[1].dims[1], dk = c->in_shape[key].dims[1];
    int Tq = c->in_shape[0].dims[0], Tv = c->in_shape[1].dims[0];
    const float *w = c->w;
    const char *Q = mha_project(e, c, c->in[0], dq, H, Kd, &w, "query", false);
    const char *K = mha_project(e, c, c->in[key], dk, H, Kd, &w, "key", true);
    const char *V = mha_project(e, c, c->in[1], dv, H, Vd, &w, "value", false);
    const char *qk = loom_onnx_tmp(e, c, "qk"), *scores = loom_onnx_tmp(e, c, "scores"), *probs = loom_onnx_tmp(e, c, "probs"),
               *ctx = loom_onnx_tmp(e, c, "context"), *ctx_t = loom_onnx_tmp(e, c, "context_t"), *merged = loom_onnx_tmp(e, c, "merged"),
               *proj = loom_onnx_tmp(e, c, "projected");
    ox_op2(&e->x, "MatMul", qk, Q, K);
    bool causal = L->iarg[MHA_CAUSAL];
    const char *scaled = causal ? loom_onnx_tmp(e, c, "scaled") : scores;
    ox_op2(&e->x, "Mul", scaled, qk, ox_scalar(&e->x, loom_onnx_tmp(e, c, "scale"), 1.0f / sqrtf((float)Kd)));
    if (causal && (Tq == LOOM_DIM_VARIABLE || Tv == LOOM_DIM_VARIABLE))
        return loom_onnx_fail(e, L, "%s", "a causal mask over a variable number of steps is not exported");
    if (causal) {
        float *mask = malloc((size_t)Tq * Tv * sizeof *mask);
        if (!mask) {
            e->x.failed = true;
            return true;
        }
        for (int i = 0; i < Tq; i++)
            for (int j = 0; j < Tv; j++) mask[(size_t)i * Tv + j] = j <= i ? 0.0f : -1e30f;
        ox_op2(&e->x, "Add", scores, scaled, ox_floats(&e->x, loom_onnx_tmp(e, c, "causal_mask"), 2, (int64_t[]){Tq, Tv}, mask));
        free(mask);
        e->steps_baked = true;
    }
    const char *key_masks[2] = {c->value_mask, c->key_mask}; /* padded key steps are not seen */
    for (int i = 0; i < 2; i++) {
        if (!key_masks[i]) continue;
        const char *tag = i ? "key" : "value";
        char km[64], kb[64], all[64];
        snprintf(km, sizeof km, "%s_mask", tag);
        snprintf(kb, sizeof kb, "%s_bias", tag);
        snprintf(all, sizeof all, "scores_%s_unmasked", tag);
        const char *kmn = loom_onnx_tmp(e, c, km), *kbn = loom_onnx_tmp(e, c, kb), *unmasked = loom_onnx_tmp(e, c, all);
        ox_op2(&e->x, "Unsqueeze", kmn, key_masks[i], loom_onnx_ints(e, c, i ? "key_mask_axes" : "value_mask_axes", 2, (int64_t[]){1, 2}));
        ox_node(&e->x, "Where", 3,
                (const char *[]){kmn, ox_scalar(&e->x, loom_onnx_tmp(e, c, i ? "key_seen" : "seen"), 0.0f),
                                 ox_scalar(&e->x, loom_onnx_tmp(e, c, i ? "key_unseen" : "unseen"), -1e30f)},
                1, &kbn);
        ox_op2(&e->x, "Add", unmasked, scores, kbn);
        scores = unmasked;
    }
    const char *sm = c->mask ? loom_onnx_tmp(e, c, "softmax") : probs;
    ox_attr_int(&e->x, ox_op1(&e->x, "Softmax", sm, scores), "axis", -1);
    if (c->mask) { /* padded query steps attend to nothing (Keras multiplies by the mask) */
        const char *qm = loom_onnx_tmp(e, c, "query_mask"), *qf = loom_onnx_tmp(e, c, "query_mask_float");
        ox_op2(&e->x, "Unsqueeze", qm, c->mask, loom_onnx_ints(e, c, "query_mask_axes", 2, (int64_t[]){1, 3}));
        ox_attr_int(&e->x, ox_op1(&e->x, "Cast", qf, qm), "to", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
        ox_op2(&e->x, "Mul", probs, sm, qf);
    }
    ox_op2(&e->x, "MatMul", ctx, probs, V);
    loom_onnx_transpose(e, ctx_t, ctx, 4, (int64_t[]){0, 2, 1, 3});
    ox_op2(&e->x, "Reshape", merged, ctx_t, loom_onnx_ints(e, c, "merge_shape", 3, (int64_t[]){0, 0, (int64_t)H * Vd}));
    int64_t hv = (int64_t)H * Vd, dq64 = dq;
    const char *wo = ox_weight(&e->x, loom_onnx_wname(e, L, "output_kernel"), 2, (int64_t[]){hv, dq64}, w);
    w += hv * dq;
    if (L->iarg[MHA_BIAS]) {
        ox_op2(&e->x, "MatMul", proj, merged, wo);
        ox_op2(&e->x, "Add", c->out, proj, ox_weight(&e->x, loom_onnx_wname(e, L, "output_bias"), 1, &dq64, w));
    } else {
        ox_op2(&e->x, "MatMul", c->out, merged, wo);
    }
    return true;
}

/* ---------------------------------------------------------------- dispatch */

static bool emit_layer(onnx_exporter *e, const onnx_call *c);

/* TimeDistributed: (batch, steps, rest) -> (batch*steps, rest) -> layer -> (batch, steps, out rest),
 * the leading dims taken from the input's shape at run time so the time axis may vary. */
static bool emit_time_distributed(onnx_exporter *e, const onnx_call *c) {
    const loom_layer *inner = c->L->inner[0];
    loom_shape in_rest = {c->in_shape[0].rank - 1, {0}}, out_rest = {c->out_shape.rank - 1, {0}};
    int64_t fold[LOOM_MAX_RANK] = {-1}, rest[LOOM_MAX_RANK];
    for (int i = 0; i < in_rest.rank; i++) fold[i + 1] = in_rest.dims[i] = c->in_shape[0].dims[i + 1];
    for (int i = 0; i < out_rest.rank; i++) rest[i] = out_rest.dims[i] = c->out_shape.dims[i + 1];
    const char *folded = loom_onnx_tmp(e, c, "folded"), *inner_out = loom_onnx_tmp(e, c, "inner"), *shape = loom_onnx_tmp(e, c, "input_shape"),
               *lead = loom_onnx_tmp(e, c, "lead"), *unfold = loom_onnx_tmp(e, c, "unfold_shape");
    ox_op2(&e->x, "Reshape", folded, c->in[0], loom_onnx_ints(e, c, "fold_shape", in_rest.rank + 1, fold));
    onnx_call ic = {.L = inner, .w = c->w, .n_in = 1, .in = &folded, .in_shape = &in_rest, .out_shape = out_rest,
               .out = inner_out};
    if (!emit_layer(e, &ic)) return false;
    ox_op1(&e->x, "Shape", shape, c->in[0]);
    const char *sl[3] = {shape, loom_onnx_ints(e, c, "lead_start", 1, (int64_t[]){0}), loom_onnx_ints(e, c, "lead_end", 1, (int64_t[]){2})};
    ox_node(&e->x, "Slice", 3, sl, 1, &lead);
    const char *cat[2] = {lead, loom_onnx_ints(e, c, "out_rest", out_rest.rank, rest)};
    ox_attr_int(&e->x, ox_node(&e->x, "Concat", 2, cat, 1, &unfold), "axis", 0);
    ox_op2(&e->x, "Reshape", c->out, inner_out, unfold);
    return true;
}

static bool emit_layer(onnx_exporter *e, const onnx_call *c) {
    const loom_op *op = c->L->op;
    if (op == &loom_op_dense) return emit_dense(e, c);
    if (op == &loom_op_activation) return loom_onnx_activation(e, c, c->L->activation, c->in[0], c->out);
    if (op == &loom_op_dropout) return ox_op1(&e->x, "Identity", c->out, c->in[0]), true;
    if (op == &loom_op_add) return emit_elementwise(e, c, "Add");
    if (op == &loom_op_subtract) return emit_elementwise(e, c, "Sub");
    if (op == &loom_op_multiply) return emit_elementwise(e, c, "Mul");
    if (op == &loom_op_concatenate) return emit_concatenate(e, c);
    if (op == &loom_op_flatten || op == &loom_op_reshape) return emit_reshape_to(e, c, &c->out_shape);
    if (op == &loom_op_permute) return emit_permute(e, c);
    if (op == &loom_op_repeat_vector) return emit_repeat_vector(e, c);
    if (op == &loom_op_conv1d || op == &loom_op_conv2d || op == &loom_op_conv2d_transpose ||
        op == &loom_op_depthwise_conv2d)
        return emit_conv(e, c);
    if (op == &loom_op_max_pooling1d) return emit_pool(e, c, true, true);
    if (op == &loom_op_average_pooling1d) return emit_pool(e, c, false, true);
    if (op == &loom_op_max_pooling2d) return emit_pool(e, c, true, false);
    if (op == &loom_op_average_pooling2d) return emit_pool(e, c, false, false);
    if (op == &loom_op_global_average_pooling1d) return emit_global_pool(e, c, false, true);
    if (op == &loom_op_global_max_pooling1d) return emit_global_pool(e, c, true, true);
    if (op == &loom_op_global_average_pooling2d) return emit_global_pool(e, c, false, false);
    if (op == &loom_op_global_max_pooling2d) return emit_global_pool(e, c, true, false);
    if (op == &loom_op_upsampling2d) return emit_upsampling(e, c);
    if (op == &loom_op_zero_padding2d) return emit_zero_padding(e, c);
    if (op == &loom_op_cropping2d) return emit_cropping(e, c);
    if (op == &loom_op_batch_normalization) return emit_batchnorm(e, c);
    if (op == &loom_op_layer_normalization) return emit_layernorm(e, c);
    if (op == &loom_op_embedding) return emit_embedding(e, c);
    if (loom_is_rnn_op(op)) return loom_onnx_recurrent(e, c);
    if (op == &loom_op_bidirectional) return loom_onnx_bidirectional(e, c);
    if (op == &loom_op_recurrent_output) return loom_onnx_recurrent_output(e, c);
    if (op == &loom_op_time_distributed) return emit_time_distributed(e, c);
    if (op == &loom_op_multi_head_attention) return emit_attention(e, c);
    return loom_onnx_fail(e, c->L, "%s", "no ONNX form for this layer class (a user C layer cannot be exported)");
}

/* ---------------------------------------------------------------- the model */

/* The recurrent and attention layers: they read a Keras mask (whose masked semantics ONNX's
 * operators cannot take over) and their inputs' axis 1 is time. */
static bool sequence_layer(const loom_op *op) {
    return loom_is_rnn_op(op) || op == &loom_op_bidirectional || op == &loom_op_multi_head_attention;
}

/* Does a Concatenate join, or a BatchNormalization normalise per entry of, axis 1 (time)? Keras
 * axis numbering, resolved on the rank of the first call's input. */
static bool on_time_axis(const loom_layer *L) {
    int rank = L->built_in[0].rank;
    return (L->axis < 0 ? L->axis + rank + 1 : L->axis) == 1;
}

/* Layers whose output axis 0 is their input 0's time axis (and that do not fix its length). A
 * return_state layer's output rows are the steps and its states: its RecurrentOutput 0 keeps the
 * time axis (build_graph declares a symbolic dim only where the lengths agree). */
static bool keeps_time(const loom_layer *L) {
    const loom_op *op = L->op;
    if (loom_is_rnn_op(op)) return L->iarg[RNN_SEQ];
    if (op == &loom_op_recurrent_output) return L->iarg[0] == 0 && L->iarg[2];
    if (op == &loom_op_bidirectional) return L->inner[0]->iarg[RNN_SEQ];
    return op == &loom_op_dense || op == &loom_op_activation || op == &loom_op_dropout || op == &loom_op_add ||
           op == &loom_op_subtract || op == &loom_op_multiply || op == &loom_op_layer_normalization ||
           op == &loom_op_embedding || op == &loom_op_time_distributed || op == &loom_op_multi_head_attention ||
           ((op == &loom_op_concatenate || op == &loom_op_batch_normalization) && !on_time_axis(L));
}

/* keeps_time for one call: its input 0 and output have a steps axis (Embedding: ids (steps)). */
static bool keeps_time_here(const loom_model *m, const loom_step_node *s) {
    const loom_layer *L = s->node->layer;
    int in_rank = m->order[s->in_pos[0]].node->out_shape.rank;
    return keeps_time(L) && s->node->out_shape.rank >= 2 && (in_rank >= 2 || L->op == &loom_op_embedding);
}

/* Which nodes carry a Keras mask (as engine.c decides) and which have a variable time axis:
 * time[pos] is 1 + the model input whose axis 1 it is, or 0. */
static loom_status analyse(onnx_exporter *e, bool *masked, int *time) {
    loom_model *m = e->m;
    bool *needs = calloc((size_t)m->n_order, sizeof *needs);
    if (!needs) return loom_set_error(&m->err, LOOM_ERR_MEMORY, "ONNX export: out of memory");
    for (int p = 0; p < m->n_order; p++) {
        const loom_step_node *s = &m->order[p];
        const loom_layer *L = s->node->layer;
        masked[p] = false;
        if (L->op == &loom_op_embedding)
            masked[p] = L->iarg[E_MASK_ZERO] && m->order[s->in_pos[0]].node->out_shape.rank == 1;
        else if (L->op->mask_mode == LOOM_MASK_KEEP && s->node->n_in > 0 && masked[s->in_pos[0]]) {
            const loom_shape *a = &m->order[s->in_pos[0]].node->out_shape, *b = &s->node->out_shape;
            masked[p] = a->rank >= 2 && b->rank >= 2 && a->dims[0] == b->dims[0];
        }
    }
    /* backwards: which outputs are read as time axes */
    for (int p = m->n_order - 1; p >= 0; p--) {
        const loom_step_node *s = &m->order[p];
        const loom_layer *L = s->node->layer;
        bool consumer = sequence_layer(L->op);
        for (int i = 0; i < s->node->n_in; i++)
            /* a recurrent layer's inputs after the sequence are its initial states */
            if ((consumer && (i == 0 || L->op == &loom_op_multi_head_attention)) ||
                (needs[p] && keeps_time_here(m, s) && !(L->op == &loom_op_multi_head_attention && i > 0)))
                needs[s->in_pos[i]] = true;
    }
    /* forwards: the inputs that are sequences and where their time axis goes */
    for (int p = 0; p < m->n_order; p++) {
        const loom_step_node *s = &m->order[p];
        time[p] = 0;
        if (s->is_input) {
            /* a sequence for a recurrent or attention layer, or of variable length */
            const loom_shape *is = &s->node->out_shape;
            for (int i = 0; i < m->n_inputs; i++)
                if (m->input_pos[i] == p && ((needs[p] && is->rank <= 2) || is->dims[0] == LOOM_DIM_VARIABLE)) time[p] = 1 + i;
        } else if (s->node->n_in > 0 && keeps_time_here(m, s)) {
            time[p] = time[s->in_pos[0]];
        }
    }
    free(needs);
    return LOOM_OK;
}

/* The dims of a value for a graph input/output: the symbolic "batch", then the per-sample ones; a
 * per-sample LOOM_DIM_VARIABLE is the symbolic "<value>_dim<axis>", and axis 1 the symbolic
 * "<input>_steps" when it is the time axis of model input time_input (1-based) with its length. */
static void io_dims(const loom_shape *s, const char *value, int time_input, const loom_model *m, int64_t *dims,
                    const char **params, ox *x) {
    dims[0] = -1;
    params[0] = "batch";
    for (int i = 0; i < s->rank; i++) {
        dims[i + 1] = s->dims[i];
        params[i + 1] = s->dims[i] == LOOM_DIM_VARIABLE ? ox_str(x, "%s_dim%d", value, i + 1) : NULL;
    }
    if (time_input && s->rank >= 1) {
        const loom_node *in = m->order[m->input_pos[time_input - 1]].node;
        if (in->out_shape.dims[0] == s->dims[0]) {
            dims[1] = -1;
            params[1] = ox_str(x, "%s_steps", in->layer->name);
        }
    }
}

/* Layers whose ONNX form holds no per-sample size but the last axis's (so a LOOM_DIM_VARIABLE
 * elsewhere is fine); the recurrent layers refuse by themselves where they must unroll. */
static bool variable_ok(const loom_layer *L) {
    const loom_op *op = L->op;
    return keeps_time(L) || loom_is_rnn_op(op) || op == &loom_op_bidirectional || op == &loom_op_recurrent_output ||
           op == &loom_op_global_average_pooling1d || op == &loom_op_global_max_pooling1d ||
           op == &loom_op_global_average_pooling2d || op == &loom_op_global_max_pooling2d;
}

static bool has_variable_dim(const loom_shape *s) {
    for (int i = 0; i < s->rank; i++)
        if (s->dims[i] == LOOM_DIM_VARIABLE) return true;
    return false;
}

static loom_status write_file(loom_model *m, const char *path, const uint8_t *data, size_t n) {
    size_t len = strlen(path);
    char *tmpname = malloc(len + 8);
    if (!tmpname) return loom_set_error(&m->err, LOOM_ERR_MEMORY, "export %s: out of memory", path);
    snprintf(tmpname, len + 8, "%s.partial", path);
    FILE *f = fopen(tmpname, "wb");
    if (!f) {
        loom_status s = loom_set_error(&m->err, LOOM_ERR_IO, "export %s: cannot create %s: %s", path, tmpname, strerror(errno));
        free(tmpname);
        return s;
    }
    bool ok = fwrite(data, 1, n, f) == n && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmpname, path) != 0) {
        loom_status s = loom_set_error(&m->err, LOOM_ERR_IO, "export %s: writing failed: %s", path, strerror(errno));
        remove(tmpname);
        free(tmpname);
        return s;
    }
    free(tmpname);
    return LOOM_OK;
}

static loom_status build_graph(onnx_exporter *e, const bool *masked, const int *time, const char **value,
                               const char **mask) {
    loom_model *m = e->m;
    ox *x = &e->x;
    int max_in = 1;
    for (int p = 0; p < m->n_order; p++)
        if (m->order[p].node->n_in > max_in) max_in = m->order[p].node->n_in;
    int *calls = calloc((size_t)m->g->n_layers, sizeof *calls);
    const char **in = malloc((size_t)max_in * sizeof *in);
    loom_shape *in_shape = malloc((size_t)max_in * sizeof *in_shape);
    loom_status st = LOOM_OK;
    if (!calls || !in || !in_shape) st = loom_set_error(&m->err, LOOM_ERR_MEMORY, "ONNX export: out of memory");
    int64_t dims[LOOM_MAX_RANK + 1];
    const char *params[LOOM_MAX_RANK + 1];
    for (int p = 0; p < m->n_order && !st; p++) {
        const loom_step_node *s = &m->order[p];
        const loom_node *n = s->node;
        const loom_layer *L = n->layer;
        if (s->is_input) {
            value[p] = L->name;
            io_dims(&n->out_shape, L->name, time[p], m, dims, params, x);
            ox_input(x, L->name, n->out_shape.rank + 1, dims, params);
            continue;
        }
        /* a reshape of a variable time axis fixes its length */
        if ((L->op == &loom_op_flatten || L->op == &loom_op_reshape) && time[s->in_pos[0]]) e->steps_baked = true;
        const char *in_mask = n->n_in > 0 && masked[s->in_pos[0]] ? mask[s->in_pos[0]] : NULL;
        if (masked[p]) mask[p] = in_mask; /* kept from input 0 (Embedding makes its own below) */
        if (L->op == &loom_op_dropout) { /* inference: the identity */
            value[p] = value[s->in_pos[0]];
            continue;
        }
        const char *value_mask = NULL, *key_mask = NULL; /* MultiHeadAttention's, as layer_attention.c */
        if (L->op == &loom_op_multi_head_attention && n->n_in > 1) {
            int vp = s->in_pos[1], kp = s->in_pos[n->n_in > 2 ? 2 : 1];
            value_mask = masked[vp] ? mask[vp] : NULL;
            key_mask = masked[kp] && kp != vp ? mask[kp] : NULL;
        }
        const char *out = NULL;
        for (int k = 0; k < m->n_outputs && !out; k++)
            if (m->outputs[k].pos == p) out = m->outputs[k].name;
        int k = calls[L->index]++;
        if (!out) out = k ? ox_str(x, "%s_call%d", L->name, k) : L->name;
        value[p] = out;
        for (int i = 0; i < n->n_in; i++) {
            in[i] = value[s->in_pos[i]];
            in_shape[i] = m->order[s->in_pos[i]].node->out_shape;
        }
        bool variable = has_variable_dim(&n->out_shape);
        for (int i = 0; i < n->n_in; i++) variable = variable || has_variable_dim(&in_shape[i]);
        if (variable && !variable_ok(L)) {
            loom_onnx_fail(e, L, "%s", "a variable-length dimension reaches a layer whose ONNX form fixes its size");
            st = m->err.code;
            break;
        }
        onnx_call c = {.L = L, .w = L->n_weights ? m->params + L->weights[0].offset : NULL, .n_in = n->n_in, .in = in,
                  .in_shape = in_shape, .out_shape = n->out_shape, .out = out, .mask = in_mask,
                  .value_mask = value_mask, .key_mask = key_mask};
        if (!emit_layer(e, &c)) st = m->err.code;
        if (L->op == &loom_op_embedding && masked[p]) { /* Keras: not_equal(ids, 0) */
            const char *eq = ox_tmp(x, out, "is_padding");
            mask[p] = ox_tmp(x, out, "mask");
            ox_op2(x, "Equal", eq, in[0], ox_scalar(x, ox_tmp(x, out, "zero"), 0.0f));
            ox_op1(x, "Not", mask[p], eq);
        }
    }
    free(calls);
    free(in);
    free(in_shape);
    if (st) return st;
    for (int k = 0; k < m->n_outputs; k++) {
        const loom_output *o = &m->outputs[k];
        if (strcmp(value[o->pos], o->name) != 0) ox_op1(x, "Identity", o->name, value[o->pos]);
        const loom_shape *s = &m->order[o->pos].node->out_shape;
        io_dims(s, o->name, e->steps_baked ? 0 : time[o->pos], m, dims, params, x);
        ox_output(x, o->name, s->rank + 1, dims, params);
    }
    return LOOM_OK;
}

loom_status loom_model_export_onnx(loom_model *m, const char *path) {
    if (!m) return LOOM_ERR_ARGUMENT;
    if (!path || !*path) return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "ONNX export: no path given");
    onnx_exporter e = {.m = m};
    bool *masked = calloc((size_t)m->n_order, sizeof *masked);
    int *time = calloc((size_t)m->n_order, sizeof *time);
    const char **value = calloc((size_t)m->n_order, sizeof *value);
    const char **mask = calloc((size_t)m->n_order, sizeof *mask);
    loom_status st = LOOM_OK;
    if (!masked || !time || !value || !mask) st = loom_set_error(&m->err, LOOM_ERR_MEMORY, "ONNX export: out of memory");
    if (!st) st = analyse(&e, masked, time);
    if (!st) {
        ox_init(&e.x, "loom");
        st = build_graph(&e, masked, time, value, mask);
        if (!st && e.steps_baked) {
            /* a constant fixed the sequence length: the inputs declare it */
            for (size_t i = 0; i < e.x.graph.n_input; i++) {
                Onnx__TensorShapeProto *sh = e.x.graph.input[i]->type->tensor_type->shape;
                for (size_t d = 1; d < sh->n_dim; d++)
                    if (sh->dim[d]->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM) {
                        int p = m->input_pos[i];
                        sh->dim[d]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
                        sh->dim[d]->dim_value = m->order[p].node->out_shape.dims[d - 1];
                    }
            }
        }
        if (!st && e.x.failed) st = loom_set_error(&m->err, LOOM_ERR_MEMORY, "ONNX export %s: out of memory", path);
        if (!st) {
            Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT;
            opset.domain = "";
            opset.has_version = 1;
            opset.version = ONNX_OPSET;
            Onnx__OperatorSetIdProto *opsets[1] = {&opset};
            Onnx__ModelProto mp = ONNX__MODEL_PROTO__INIT;
            mp.has_ir_version = 1;
            mp.ir_version = ONNX_IR_VERSION;
            mp.n_opset_import = 1;
            mp.opset_import = opsets;
            mp.producer_name = "loom";
            mp.producer_version = LOOM_VERSION;
            mp.graph = &e.x.graph;
            size_t size = onnx__model_proto__get_packed_size(&mp);
            /* protobuf messages are limited to 2 GiB (larger models need ONNX's external data) */
            if (size > (size_t)INT32_MAX) {
                st = loom_set_error(&m->err, LOOM_ERR_ARGUMENT,
                                    "ONNX export %s: %zu bytes exceed the 2 GiB a protobuf message may hold", path, size);
            } else {
                uint8_t *buf = malloc(size ? size : 1);
                if (!buf) st = loom_set_error(&m->err, LOOM_ERR_MEMORY, "ONNX export %s: out of memory", path);
                else {
                    onnx__model_proto__pack(&mp, buf);
                    st = write_file(m, path, buf, size);
                    free(buf);
                }
            }
        }
        ox_free(&e.x);
    }
    free(masked);
    free(time);
    free(value);
    free(mask);
    if (!st) loom_clear_error(&m->err);
    return st;
}

#endif
