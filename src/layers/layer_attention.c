/* layer_attention.c — keras.layers.MultiHeadAttention on (steps, features) inputs.
 *
 * Called on {query, value} (key = value) or {query, value, key}; per sample query (Tq, dq),
 * value (Tv, dv), key (Tv, dk). With H heads of key_dim Kd and value_dim Vd:
 *   Q = query . Wq + bq   (Tq, H, Kd)      K = key . Wk + bk   (Tv, H, Kd)
 *   V = value . Wv + bv   (Tv, H, Vd)
 *   P_h = softmax_j(Q_h K_h^T / sqrt(Kd))   (Tq, Tv), causal: j <= i only (as Keras, also
 *                                           when Tq != Tv)
 *   O_h = P_h V_h                           (Tq, H, Vd)
 *   y   = O . Wo + bo                       (Tq, dq)
 * No attention dropout (Keras's default 0), no attention_axes, output_shape = dq (the defaults).
 *
 * Configuration in the generic loom_layer fields:
 *   iarg[0] num_heads   iarg[1] key_dim   iarg[2] value_dim (resolved: never 0)
 *   iarg[3] use_bias    iarg[4] causal (Keras's use_causal_mask, a call argument there)
 *
 * Weights in Keras's EinsumDense layouts and order, so Keras weights load unchanged:
 *   query_kernel (dq, H, Kd)  query_bias (H, Kd)   key_kernel (dk, H, Kd)  key_bias (H, Kd)
 *   value_kernel (dv, H, Vd)  value_bias (H, Vd)   output_kernel (H, Vd, dq)  output_bias (dq)
 * (biases only with use_bias). A (d, H, Kd) kernel in C order is the (d, H*Kd) matrix whose
 * columns are head-major, so every projection is one loom_sgemm over all rows of the batch and
 * head h is the column block [h*Kd, (h+1)*Kd) of the projected rows.
 *
 * Masks (Keras 3's _compute_attention_mask): padded query steps (the query's mask) get all-zero
 * attention (Keras multiplies the softmax by the mask), so their output is the output bias; a key
 * step is seen only where the value's mask and, when the key is a tensor of its own, the key's
 * mask are both nonzero. The output keeps the query's mask, as in Keras.
 *
 * Scratch per call site (floats; B batch):
 *   Q B*Tq*H*Kd | K B*Tv*H*Kd | V B*Tv*H*Vd | P B*H*Tq*Tv | O B*Tq*H*Vd      (forward, kept)
 *   dQ | dK | dV | dO (same sizes as Q, K, V, O) | dS Tq*Tv                  (backward) */
#include "graph/graph.h"
#include "layers/layers.h"
#include "ops/activations.h"
#include "kernels/gemm.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

enum { A_HEADS, A_KDIM, A_VDIM, A_BIAS, A_CAUSAL };

/* Every size of one call, from the input shapes. */
typedef struct mha_dims {
    int B, Tq, Tv, dq, dv, dk;
    int H, Kd, Vd, HK, HV;
    int key_in; /* index of the key input: 2 when given, else the value (1) */
} mha_dims;

static mha_dims mha_get_dims(const loom_layer *L, int batch, int n_in, const loom_shape *in) {
    mha_dims d;
    d.B = batch;
    d.Tq = in[0].dims[0];
    d.dq = in[0].dims[1];
    d.Tv = in[1].dims[0];
    d.dv = in[1].dims[1];
    d.key_in = n_in == 3 ? 2 : 1;
    d.dk = in[d.key_in].dims[1];
    d.H = L->iarg[A_HEADS];
    d.Kd = L->iarg[A_KDIM];
    d.Vd = L->iarg[A_VDIM];
    d.HK = d.H * d.Kd;
    d.HV = d.H * d.Vd;
    return d;
}

/* The eight weights (NULL when absent) inside the layer's contiguous block, in declaration order. */
typedef struct mha_weights {
    float *qk, *qb, *kk, *kb, *vk, *vb, *ok, *ob;
} mha_weights;

static mha_weights mha_split(const mha_dims *d, bool bias, const float *base) {
    mha_weights w = {0};
    if (!base) return w;
    float *p = (float *)base;
    w.qk = p, p += (size_t)d->dq * d->HK;
    if (bias) w.qb = p, p += d->HK;
    w.kk = p, p += (size_t)d->dk * d->HK;
    if (bias) w.kb = p, p += d->HK;
    w.vk = p, p += (size_t)d->dv * d->HV;
    if (bias) w.vb = p, p += d->HV;
    w.ok = p, p += (size_t)d->HV * d->dq;
    if (bias) w.ob = p;
    return w;
}

/* The scratch regions of one call site. */
typedef struct mha_scratch {
    float *Q, *K, *V, *P, *O, *dQ, *dK, *dV, *dO, *dS;
} mha_scratch;

static size_t mha_layout(const mha_dims *d, float *base, mha_scratch *s) {
    size_t nq = (size_t)d->B * d->Tq * d->HK, nk = (size_t)d->B * d->Tv * d->HK;
    size_t nv = (size_t)d->B * d->Tv * d->HV, np = (size_t)d->B * d->H * d->Tq * d->Tv;
    size_t no = (size_t)d->B * d->Tq * d->HV, ns = (size_t)d->Tq * d->Tv;
    size_t total = 2 * (nq + nk + nv + no) + np + ns;
    if (!s) return total;
    s->Q = base;
    s->K = s->Q + nq;
    s->V = s->K + nk;
    s->P = s->V + nv;
    s->O = s->P + np;
    s->dQ = s->O + no;
    s->dK = s->dQ + nq;
    s->dV = s->dK + nk;
    s->dO = s->dV + nv;
    s->dS = s->dO + no;
    return total;
}

/* ---------------------------------------------------------------- build */

static loom_status mha_build(loom_layer *L, int n_in, const loom_shape *in, loom_shape *out, loom_error *err) {
    static const char *const role[3] = {"query", "value", "key"};
    if (n_in < 2 || n_in > 3)
        return loom_set_error(err, LOOM_ERR_COUNT,
                              "%s (MultiHeadAttention): takes 2 inputs {query, value} or 3 {query, value, key}, got %d",
                              L->name, n_in);
    char buf[64];
    for (int i = 0; i < n_in; i++)
        if (in[i].rank != 2)
            return loom_set_error(err, LOOM_ERR_SHAPE,
                                  "%s (MultiHeadAttention): the %s must be (steps, features), got %s", L->name,
                                  role[i], loom_shape_str(&in[i], buf, sizeof buf));
    if (n_in == 3 && in[2].dims[0] != in[1].dims[0])
        return loom_set_error(err, LOOM_ERR_SHAPE,
                              "%s (MultiHeadAttention): key and value must have the same steps, got %d and %d",
                              L->name, in[2].dims[0], in[1].dims[0]);
    /* heads x key_dim and the per-sample intermediates (projections, scores) within the limits of
     * base.h, checked in 64 bits before mha_get_dims multiplies them as ints */
    char who[LOOM_NAME_MAX + 40];
    snprintf(who, sizeof who, "%s (MultiHeadAttention)", L->name);
    int hk, hv;
    if (loom_dim_check((int64_t)L->iarg[A_HEADS] * L->iarg[A_KDIM], &hk, who, "num_heads x key_dim", err) ||
        loom_dim_check((int64_t)L->iarg[A_HEADS] * L->iarg[A_VDIM], &hv, who, "num_heads x value_dim", err))
        return err->code;
    int tk = in[n_in == 3 ? 2 : 1].dims[0];
    loom_shape q = {2, {in[0].dims[0], hk}}, k = {2, {tk, hk}}, v = {2, {in[1].dims[0], hv}},
               o = {2, {in[0].dims[0], hv}}, scores = {3, {L->iarg[A_HEADS], in[0].dims[0], in[1].dims[0]}};
    if (loom_shape_check(&q, who, "the projected query", err) || loom_shape_check(&k, who, "the projected key", err) ||
        loom_shape_check(&v, who, "the projected value", err) || loom_shape_check(&o, who, "the attention output", err) ||
        loom_shape_check(&scores, who, "the attention scores", err))
        return err->code;
    *out = in[0];
    if (!L->built) {
        mha_dims d = mha_get_dims(L, 1, n_in, in);
        loom_regularizer none = {0, 0};
        bool bias = L->iarg[A_BIAS] != 0;
        loom_shape qk = {3, {d.dq, d.H, d.Kd}}, kk = {3, {d.dk, d.H, d.Kd}}, vk = {3, {d.dv, d.H, d.Vd}};
        loom_shape ok = {3, {d.H, d.Vd, d.dq}};
        loom_shape hb = {2, {d.H, d.Kd}}, vb = {2, {d.H, d.Vd}}, ob = {1, {d.dq}};
        loom_layer_add_weight(L, "query_kernel", &qk, LOOM_INIT_GLOROT_UNIFORM, none);
        if (bias) loom_layer_add_weight(L, "query_bias", &hb, LOOM_INIT_ZEROS, none);
        loom_layer_add_weight(L, "key_kernel", &kk, LOOM_INIT_GLOROT_UNIFORM, none);
        if (bias) loom_layer_add_weight(L, "key_bias", &hb, LOOM_INIT_ZEROS, none);
        loom_layer_add_weight(L, "value_kernel", &vk, LOOM_INIT_GLOROT_UNIFORM, none);
        if (bias) loom_layer_add_weight(L, "value_bias", &vb, LOOM_INIT_ZEROS, none);
        loom_layer_add_weight(L, "output_kernel", &ok, LOOM_INIT_GLOROT_UNIFORM, none);
        if (bias) loom_layer_add_weight(L, "output_bias", &ob, LOOM_INIT_ZEROS, none);
    }
    return LOOM_OK;
}

static size_t mha_scratch_size(const loom_layer *L, int n_in, const loom_shape *in, const loom_shape *out, int batch) {
    (void)out;
    mha_dims d = mha_get_dims(L, batch, n_in, in);
    return mha_layout(&d, NULL, NULL);
}

/* ---------------------------------------------------------------- projections */

/* Y (rows, n) = X (rows, k) . W (k, n) + b */
static void project(const float *X, int rows, int k, const float *W, const float *b, int n, float *Y) {
    if (b)
        for (int r = 0; r < rows; r++) memcpy(Y + (size_t)r * n, b, (size_t)n * sizeof *Y);
    loom_sgemm(false, false, rows, n, k, 1.0f, X, k, W, n, b ? 1.0f : 0.0f, Y, n);
}

/* The backward of project: dW += X^T dY, db += column sums of dY, dX += dY W^T (each if wanted). */
static void project_backward(const float *X, int rows, int k, const float *W, const float *dY, int n, float *dW,
                             float *db, float *dX) {
    if (dW) loom_sgemm(true, false, k, n, rows, 1.0f, X, k, dY, n, 1.0f, dW, n);
    if (db)
        for (int r = 0; r < rows; r++) {
            const float *row = dY + (size_t)r * n;
            for (int j = 0; j < n; j++) db[j] += row[j];
        }
    if (dX) loom_sgemm(false, true, rows, k, n, 1.0f, dY, n, W, n, 1.0f, dX, k);
}

/* ---------------------------------------------------------------- attention */

/* Row-wise softmax of scores S (Tq, Tv) in place over the key steps a query step may see:
 * j <= i when causal, vmask[j] != 0 and kmask[j] != 0 where given; a query step with qmask[i] == 0
 * or nothing to see gets a zero row (Keras: the masked softmax is multiplied by the mask). */
static inline bool key_seen(const float *vmask, const float *kmask, int j) {
    return (!vmask || vmask[j] != 0.0f) && (!kmask || kmask[j] != 0.0f);
}

static void masked_softmax(float *S, int Tq, int Tv, bool causal, const float *qmask, const float *vmask,
                           const float *kmask) {
    for (int i = 0; i < Tq; i++) {
        float *s = S + (size_t)i * Tv;
        int end = causal && i + 1 < Tv ? i + 1 : Tv; /* Keras: row >= col, so late rows see all */
        float mx = -INFINITY;
        bool row_ok = !qmask || qmask[i] != 0.0f;
        for (int j = 0; j < end && row_ok; j++)
            if (key_seen(vmask, kmask, j) && s[j] > mx) mx = s[j];
        if (mx == -INFINITY) { /* nothing visible */
            for (int j = 0; j < Tv; j++) s[j] = 0.0f;
            continue;
        }
        double sum = 0.0;
        for (int j = 0; j < Tv; j++) {
            bool seen = j < end && key_seen(vmask, kmask, j);
            s[j] = seen ? expf(s[j] - mx) : 0.0f;
            sum += s[j];
        }
        float inv = (float)(1.0 / sum);
        for (int j = 0; j < end; j++) s[j] *= inv;
    }
}

/* The key's own mask: only when the key is a tensor other than the value (else the value's). */
static const float *key_mask(const loom_op_ctx *c, const mha_dims *d) {
    return d->key_in != 1 && d->key_in < LOOM_MASKED_INPUTS && c->in_masks[d->key_in] != c->in_masks[1]
               ? c->in_masks[d->key_in]
               : NULL;
}

static void mha_forward(const loom_layer *L, const loom_op_ctx *c) {
    mha_dims d = mha_get_dims(L, c->batch, c->n_in, c->in_shape);
    mha_weights w = mha_split(&d, L->iarg[A_BIAS] != 0, c->w);
    mha_scratch s;
    mha_layout(&d, c->scratch, &s);
    const float scale = 1.0f / sqrtf((float)d.Kd);
    const float *vmask = c->in_masks[1], *kmask = key_mask(c, &d);
    bool causal = L->iarg[A_CAUSAL] != 0;

    project(c->in[0], d.B * d.Tq, d.dq, w.qk, w.qb, d.HK, s.Q);
    project(c->in[d.key_in], d.B * d.Tv, d.dk, w.kk, w.kb, d.HK, s.K);
    project(c->in[1], d.B * d.Tv, d.dv, w.vk, w.vb, d.HV, s.V);
    for (int b = 0; b < d.B; b++)
        for (int h = 0; h < d.H; h++) {
            const float *Qh = s.Q + (size_t)b * d.Tq * d.HK + (size_t)h * d.Kd;
            const float *Kh = s.K + (size_t)b * d.Tv * d.HK + (size_t)h * d.Kd;
            const float *Vh = s.V + (size_t)b * d.Tv * d.HV + (size_t)h * d.Vd;
            float *P = s.P + ((size_t)b * d.H + h) * d.Tq * d.Tv;
            float *Oh = s.O + (size_t)b * d.Tq * d.HV + (size_t)h * d.Vd;
            loom_sgemm(false, true, d.Tq, d.Tv, d.Kd, scale, Qh, d.HK, Kh, d.HK, 0.0f, P, d.Tv);
            masked_softmax(P, d.Tq, d.Tv, causal, c->in_mask ? c->in_mask + (size_t)b * d.Tq : NULL,
                           vmask ? vmask + (size_t)b * d.Tv : NULL, kmask ? kmask + (size_t)b * d.Tv : NULL);
            loom_sgemm(false, false, d.Tq, d.Vd, d.Tv, 1.0f, P, d.Tv, Vh, d.HV, 0.0f, Oh, d.HV);
        }
    project(s.O, d.B * d.Tq, d.HV, w.ok, w.ob, d.dq, c->out);
}

static void mha_backward(const loom_layer *L, const loom_op_ctx *c) {
    mha_dims d = mha_get_dims(L, c->batch, c->n_in, c->in_shape);
    bool bias = L->iarg[A_BIAS] != 0;
    mha_weights w = mha_split(&d, bias, c->w);
    mha_weights dw = mha_split(&d, bias, c->dw);
    mha_scratch s;
    mha_layout(&d, c->scratch, &s);
    const float scale = 1.0f / sqrtf((float)d.Kd);

    /* output projection; dO is overwritten, weights accumulate */
    project_backward(s.O, d.B * d.Tq, d.HV, w.ok, c->dout, d.dq, dw.ok, dw.ob, NULL);
    loom_sgemm(false, true, d.B * d.Tq, d.HV, d.dq, 1.0f, c->dout, d.dq, w.ok, d.dq, 0.0f, s.dO, d.HV);

    for (int b = 0; b < d.B; b++)
        for (int h = 0; h < d.H; h++) {
            size_t qo = (size_t)b * d.Tq * d.HK + (size_t)h * d.Kd, ko = (size_t)b * d.Tv * d.HK + (size_t)h * d.Kd;
            size_t vo = (size_t)b * d.Tv * d.HV + (size_t)h * d.Vd, oo = (size_t)b * d.Tq * d.HV + (size_t)h * d.Vd;
            const float *P = s.P + ((size_t)b * d.H + h) * d.Tq * d.Tv;
            float *dS = s.dS;
            /* dV_h = P^T dO_h ; dP = dO_h V_h^T */
            loom_sgemm(true, false, d.Tv, d.Vd, d.Tq, 1.0f, P, d.Tv, s.dO + oo, d.HV, 0.0f, s.dV + vo, d.HV);
            loom_sgemm(false, true, d.Tq, d.Tv, d.Vd, 1.0f, s.dO + oo, d.HV, s.V + vo, d.HV, 0.0f, dS, d.Tv);
            /* softmax backward: dS = P * (dP - sum_j P dP); masked entries have P = 0 and stay 0 */
            for (int i = 0; i < d.Tq; i++) {
                const float *p = P + (size_t)i * d.Tv;
                float *g = dS + (size_t)i * d.Tv;
                double dot = 0.0;
                for (int j = 0; j < d.Tv; j++) dot += (double)p[j] * g[j];
                for (int j = 0; j < d.Tv; j++) g[j] = p[j] * (g[j] - (float)dot);
            }
            /* scores were scale * Q_h K_h^T */
            loom_sgemm(false, false, d.Tq, d.Kd, d.Tv, scale, dS, d.Tv, s.K + ko, d.HK, 0.0f, s.dQ + qo, d.HK);
            loom_sgemm(true, false, d.Tv, d.Kd, d.Tq, scale, dS, d.Tv, s.Q + qo, d.HK, 0.0f, s.dK + ko, d.HK);
        }

    /* input projections: every contribution is added, so a tensor passed as two inputs (the same
     * gradient buffer twice) receives the sum */
    project_backward(c->in[0], d.B * d.Tq, d.dq, w.qk, s.dQ, d.HK, dw.qk, dw.qb, c->din[0]);
    project_backward(c->in[d.key_in], d.B * d.Tv, d.dk, w.kk, s.dK, d.HK, dw.kk, dw.kb, c->din[d.key_in]);
    project_backward(c->in[1], d.B * d.Tv, d.dv, w.vk, s.dV, d.HV, dw.vk, dw.vb, c->din[1]);
}

/* ---------------------------------------------------------------- model files */

static cJSON *initializer_json(const char *cls, bool seeded) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "module", "keras.initializers");
    cJSON_AddStringToObject(o, "class_name", cls);
    cJSON *cfg = cJSON_AddObjectToObject(o, "config");
    if (seeded) cJSON_AddNullToObject(cfg, "seed");
    return o;
}

/* Keras's get_config fields, plus use_causal_mask: a call argument in Keras, which a Keras
 * loader ignores in the config. */
static bool mha_save_config(const loom_layer *L, void *obj) {
    cJSON *c = obj;
    bool ok = cJSON_AddNumberToObject(c, "num_heads", L->iarg[A_HEADS]) &&
              cJSON_AddNumberToObject(c, "key_dim", L->iarg[A_KDIM]) &&
              cJSON_AddNumberToObject(c, "value_dim", L->iarg[A_VDIM]) &&
              cJSON_AddNumberToObject(c, "dropout", 0.0) && cJSON_AddBoolToObject(c, "use_bias", L->iarg[A_BIAS] != 0) &&
              cJSON_AddNullToObject(c, "output_shape") && cJSON_AddNullToObject(c, "attention_axes");
    if (!ok) return false;
    cJSON *ki = initializer_json("GlorotUniform", true), *bi = initializer_json("Zeros", false);
    if (!ki || !bi || !cJSON_AddItemToObject(c, "kernel_initializer", ki)) {
        cJSON_Delete(ki);
        cJSON_Delete(bi);
        return false;
    }
    if (!cJSON_AddItemToObject(c, "bias_initializer", bi)) {
        cJSON_Delete(bi);
        return false;
    }
    return cJSON_AddNullToObject(c, "kernel_regularizer") && cJSON_AddNullToObject(c, "bias_regularizer") &&
           cJSON_AddNullToObject(c, "activity_regularizer") && cJSON_AddNullToObject(c, "kernel_constraint") &&
           cJSON_AddNullToObject(c, "bias_constraint") && cJSON_AddNullToObject(c, "seed") &&
           cJSON_AddBoolToObject(c, "use_causal_mask", L->iarg[A_CAUSAL] != 0);
}

/* A positive int field; `fallback` when absent or null, -1 (refused by the constructor) when
 * not a number in range. */
static int int_field(const cJSON *c, const char *key, int fallback) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
    if (!v || cJSON_IsNull(v)) return fallback;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= (1 << 24)) ||
        v->valuedouble != floor(v->valuedouble))
        return -1;
    return (int)v->valuedouble;
}

static int bool_field(const cJSON *c, const char *key, int fallback) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : fallback;
}

static loom_layer *mha_load_config(loom_graph *g, const char *name, const void *obj) {
    const cJSON *c = obj;
    if (g && !g->err.code) {
        /* what loom cannot do is refused rather than silently changed */
        const cJSON *drop = cJSON_GetObjectItemCaseSensitive(c, "dropout");
        const cJSON *os = cJSON_GetObjectItemCaseSensitive(c, "output_shape");
        const cJSON *axes = cJSON_GetObjectItemCaseSensitive(c, "attention_axes");
        if ((cJSON_IsNumber(drop) && drop->valuedouble != 0.0) || (os && !cJSON_IsNull(os)) ||
            (axes && !cJSON_IsNull(axes))) {
            loom_set_error(&g->err, LOOM_ERR_ARGUMENT,
                           "%s (MultiHeadAttention): dropout, output_shape and attention_axes other than "
                           "Keras's defaults are not supported",
                           name ? name : "multi_head_attention");
            return NULL;
        }
    }
    return loom_multi_head_attention(g, name, int_field(c, "num_heads", -1), int_field(c, "key_dim", -1),
                                     int_field(c, "value_dim", 0), bool_field(c, "use_bias", 1),
                                     bool_field(c, "use_causal_mask", 0));
}

const loom_op loom_op_multi_head_attention = {
    .class_name = "MultiHeadAttention",
    .base_name = "multi_head_attention",
    .min_inputs = 2,
    .max_inputs = 3,
    .build = mha_build,
    .scratch_size = mha_scratch_size,
    .forward = mha_forward,
    .backward = mha_backward,
    .mask_mode = LOOM_MASK_KEEP,
    .make_mask = NULL,
    .save_config = mha_save_config,
    .load_config = mha_load_config,
};

/* ---------------------------------------------------------------- constructor */

loom_layer *loom_multi_head_attention(loom_graph *g, const char *name, int num_heads, int key_dim, int value_dim,
                                      int use_bias, int causal) {
    if (!g || g->err.code) return NULL;
    const char *shown = name ? name : "multi_head_attention";
    if (num_heads <= 0 || num_heads > 1 << 16) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (MultiHeadAttention): num_heads must be in 1..65536, got %d",
                       shown, num_heads);
        return NULL;
    }
    if (key_dim <= 0 || key_dim > 1 << 16) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (MultiHeadAttention): key_dim must be in 1..65536, got %d",
                       shown, key_dim);
        return NULL;
    }
    if (value_dim < 0 || value_dim > 1 << 16) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT,
                       "%s (MultiHeadAttention): value_dim must be in 0..65536 (0 = key_dim), got %d", shown,
                       value_dim);
        return NULL;
    }
    loom_layer *L = loom_graph_new_layer(g, &loom_op_multi_head_attention, name);
    if (!L) return NULL;
    L->iarg[A_HEADS] = num_heads;
    L->iarg[A_KDIM] = key_dim;
    L->iarg[A_VDIM] = value_dim ? value_dim : key_dim;
    L->iarg[A_BIAS] = use_bias != 0;
    L->iarg[A_CAUSAL] = causal != 0;
    return L;
}
