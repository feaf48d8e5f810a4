/* layer_norm.c — keras.layers.BatchNormalization and LayerNormalization.
 *
 * Configuration in the generic loom_layer fields (both classes):
 *   axis      BatchNormalization: Keras axis (-1 = last; 1 = first non-batch axis; 0 refused)
 *   iarg[0]   center (beta)        iarg[1]  scale (gamma)
 *   iarg[2]   synchronized (BatchNormalization; Keras's synchronized=True, TF's SyncBatchNormalization)
 *   farg[0]   momentum (BatchNormalization)   farg[1]  epsilon
 *   iarg[2]   LayerNormalization: the number k of axes given (0: the last axis), iarg[3..3+k) the
 *             Keras axes as given (1-based or negative); they must be the k trailing axes
 *
 * Weights in Keras's order: gamma (if scale), beta (if center), then for BatchNormalization the
 * non-trainable moving_mean and moving_variance. All have the size of the normalised axis.
 *
 * BatchNormalization sees its per-sample input as (outer, C, inner) around the channel axis; a
 * channel's statistics run over batch * outer * inner values. Training normalises with the batch
 * mean and the biased batch variance and moves the moving statistics through c->state exactly as
 * Keras 3 does (moving = moving * momentum + batch * (1 - momentum), with the BIASED variance:
 * keras/src/layers/normalization/batch_normalization.py uses ops.moments). Inference uses the
 * moving statistics. Masks (Keras 3's _moments with a mask): on (steps, channels) inputs with the
 * channel axis last, training statistics are weighted by the mask, mean = sum(w x) / (sum(w) +
 * 1e-7) and variance = sum(w (x - mean)^2) / (sum(w) + 1e-7); every step is still normalised.
 * Other layouts, and a synchronised layer in a distributed fit, ignore the mask.
 *
 * Synchronised (a distributed fit, c->sync_sum set): the batch statistics are the GLOBAL batch's,
 * as one process computes them on the whole batch: the ranks sum the channel sums and counts,
 * then the squared deviations from the global mean (two passes, in double, as alone); the
 * backward sums sum(dy) and sum(dy * xhat) over the ranks, each rank's scaled by its gradient
 * share (c->sync_share) so the sums are the global loss's, and back to its own scale after. Off,
 * or in one process, each rank normalises with its own batch (PyTorch DDP's default).
 *
 * Scratch (BatchNormalization): [mode | mean (C) | inv_std (C) | N (2) | pad | sums (2C
 * doubles)]. The forward records whether it used batch or moving statistics, so the backward
 * (which the engine always calls with training set) knows whether to differentiate through the
 * mean and variance, and the count N (as float hi + lo) its statistics ran over.
 * Scratch (LayerNormalization): [mean | inv_std], one pair per row of the last axis. */
#include "graph/graph.h"
#include "layers/layers.h"
#include "ops/activations.h"
#include "kernels/gemm.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

enum { A_CENTER, A_SCALE, A_SYNC };              /* BatchNormalization */
enum { A_LN_NAXES = 2, A_LN_AXES };              /* LayerNormalization (center, scale, then the axes) */
enum { LN_MAX_AXES = 8 };
enum { F_MOMENTUM, F_EPSILON };

/* Weight indices of a layer with these flags: gamma, beta, moving mean, moving variance. */
static int idx_gamma(const loom_layer *L) { return L->iarg[A_SCALE] ? 0 : -1; }
static int idx_beta(const loom_layer *L) { return L->iarg[A_CENTER] ? (L->iarg[A_SCALE] ? 1 : 0) : -1; }
static int n_affine(const loom_layer *L) { return (L->iarg[A_SCALE] != 0) + (L->iarg[A_CENTER] != 0); }

static void declare_affine(loom_layer *L, int dim) {
    loom_shape s = {1, {dim}};
    loom_regularizer none = {0, 0};
    if (L->iarg[A_SCALE]) loom_layer_add_weight(L, "gamma", &s, LOOM_INIT_ONES, none);
    if (L->iarg[A_CENTER]) loom_layer_add_weight(L, "beta", &s, LOOM_INIT_ZEROS, none);
}

/* ---------------------------------------------------------------- BatchNormalization */

/* The per-sample channel axis of a Keras axis, or -1 when it names no non-batch axis. */
static int bn_axis(int keras_axis, int rank) {
    int a = keras_axis < 0 ? rank + keras_axis : keras_axis - 1;
    return keras_axis != 0 && a >= 0 && a < rank ? a : -1;
}

typedef struct bn_geom {
    size_t outer, channels, inner; /* outer includes the batch */
} bn_geom;

static bn_geom bn_geometry(const loom_layer *L, const loom_shape *x, int batch) {
    int a = bn_axis(L->axis, x->rank);
    bn_geom g = {(size_t)batch, (size_t)x->dims[a], 1};
    for (int i = 0; i < a; i++) g.outer *= (size_t)x->dims[i];
    for (int i = a + 1; i < x->rank; i++) g.inner *= (size_t)x->dims[i];
    return g;
}

static loom_status bn_build(loom_layer *L, int n_in, const loom_shape *in, loom_shape *out, loom_error *err) {
    (void)n_in;
    int a = bn_axis(L->axis, in[0].rank);
    if (a < 0) {
        char s[64];
        return loom_set_error(err, LOOM_ERR_SHAPE, "%s (BatchNormalization): axis %d does not exist in input %s",
                              L->name, L->axis, loom_shape_str(&in[0], s, sizeof s));
    }
    *out = in[0];
    if (!L->built) {
        int C = in[0].dims[a];
        declare_affine(L, C);
        loom_shape s = {1, {C}};
        loom_regularizer none = {0, 0};
        int i = loom_layer_add_weight(L, "moving_mean", &s, LOOM_INIT_ZEROS, none);
        L->weights[i].non_trainable = true;
        i = loom_layer_add_weight(L, "moving_variance", &s, LOOM_INIT_ONES, none);
        L->weights[i].non_trainable = true;
        L->weights[i].non_negative = true;
    }
    return LOOM_OK;
}

static size_t bn_scratch(const loom_layer *L, int n_in, const loom_shape *in, const loom_shape *out, int batch) {
    (void)n_in;
    (void)out;
    size_t C = bn_geometry(L, &in[0], batch).channels;
    return 1 + 2 * C + 2 + 1 + 2 * (3 * C + 1); /* see the file's comment */
}

/* The scratch's 3C + 1 doubles, aligned for doubles inside the float scratch: the reductions'
 * buffer (C + 1 in the forward, 2C in the backward), the forward's global mean and variance. */
static double *bn_sums(const loom_op_ctx *c, size_t C) {
    uintptr_t at = (uintptr_t)(c->scratch + 1 + 2 * C + 2);
    return (double *)((at + sizeof(double) - 1) & ~(uintptr_t)(sizeof(double) - 1));
}

static bool bn_synced(const loom_layer *L, const loom_op_ctx *c) { return L->iarg[A_SYNC] && c->sync_sum; }

/* Synchronised training statistics: the global batch's mean and biased variance per channel. */
static void bn_global_moments(const loom_op_ctx *c, bn_geom g, double *n_out) {
    size_t C = g.channels;
    double *buf = bn_sums(c, C); /* C sums and the count, then C squared deviations */
    double *mu = buf + C + 1, *var = mu + C;
    const float *x = c->in[0];
    for (size_t ch = 0; ch < C; ch++) {
        double s = 0;
        for (size_t o = 0; o < g.outer; o++) {
            const float *p = x + (o * C + ch) * g.inner;
            for (size_t i = 0; i < g.inner; i++) s += p[i];
        }
        buf[ch] = s;
    }
    buf[C] = (double)(g.outer * g.inner);
    c->sync_sum(c->sync_user, buf, C + 1);
    double N = buf[C];
    for (size_t ch = 0; ch < C; ch++) mu[ch] = N > 0 ? buf[ch] / N : 0;
    for (size_t ch = 0; ch < C; ch++) {
        double s2 = 0;
        for (size_t o = 0; o < g.outer; o++) {
            const float *p = x + (o * C + ch) * g.inner;
            for (size_t i = 0; i < g.inner; i++) s2 += (p[i] - mu[ch]) * (p[i] - mu[ch]);
        }
        buf[ch] = s2;
    }
    c->sync_sum(c->sync_user, buf, C);
    for (size_t ch = 0; ch < C; ch++) var[ch] = N > 0 ? buf[ch] / N : 0;
    *n_out = N;
}

/* A rank without samples joins the reductions of bn_global_moments / bn_backward with zeros. */
static void bn_sync_idle(const loom_layer *L, const loom_op_ctx *c, bool backward) {
    if (!bn_synced(L, c) || !c->training) return;
    size_t C = (size_t)c->in_shape[0].dims[bn_axis(L->axis, c->in_shape[0].rank)];
    double *buf = bn_sums(c, C);
    memset(buf, 0, 2 * C * sizeof *buf);
    if (backward) {
        c->sync_sum(c->sync_user, buf, 2 * C);
    } else {
        c->sync_sum(c->sync_user, buf, C + 1);
        memset(buf, 0, (C + 1) * sizeof *buf);
        c->sync_sum(c->sync_user, buf, C);
    }
}

/* The mask weight of each value (NULL: all 1): only (steps, channels) inputs normalised over the
 * last axis, where the mask's steps are the values' rows. */
static const float *bn_weights(const loom_layer *L, const loom_op_ctx *c) {
    const loom_shape *x = &c->in_shape[0];
    return c->in_mask && x->rank == 2 && bn_axis(L->axis, 2) == 1 ? c->in_mask : NULL;
}

static const double KERAS_EPSILON = 1e-7; /* backend.epsilon() in the masked denominators */

static void bn_forward(const loom_layer *L, const loom_op_ctx *c) {
    bn_geom g = bn_geometry(L, &c->in_shape[0], c->batch);
    size_t C = g.channels, N = g.outer * g.inner;
    const float *x = c->in[0];
    int gi = idx_gamma(L), bi = idx_beta(L);
    const float *gamma = gi >= 0 ? c->w + (size_t)gi * C : NULL;
    const float *beta = bi >= 0 ? c->w + (size_t)bi * C : NULL;
    size_t moving = (size_t)n_affine(L) * C; /* moving_mean, then moving_variance */
    float eps = L->farg[F_EPSILON], momentum = L->farg[F_MOMENTUM];
    float *mean = c->scratch + 1, *inv_std = c->scratch + 1 + C;
    c->scratch[0] = c->training ? 1.0f : 0.0f;
    bool synced = c->training && bn_synced(L, c);
    double Ng = (double)N;
    const double *g_mu = bn_sums(c, C) + C + 1, *g_var = g_mu + C;
    if (synced) bn_global_moments(c, g, &Ng);
    float n_hi = (float)Ng;
    c->scratch[1 + 2 * C] = n_hi;
    c->scratch[2 + 2 * C] = (float)(Ng - (double)n_hi);
    /* masked statistics in one process or unsynchronised (a synchronised layer uses every step) */
    const float *wm = c->training && !synced ? bn_weights(L, c) : NULL; /* rows = outer, inner = 1 */
    double wsum = 0;
    if (wm)
        for (size_t o = 0; o < g.outer; o++) wsum += wm[o];
    const double denom = wm ? wsum + KERAS_EPSILON : (double)N;
    for (size_t ch = 0; ch < C; ch++) {
        double mu, var;
        if (synced) {
            mu = g_mu[ch];
            var = g_var[ch];
            if (c->state) {
                float *mm = c->state + moving, *mv = c->state + moving + C;
                mm[ch] = mm[ch] * momentum + (float)mu * (1.0f - momentum);
                mv[ch] = mv[ch] * momentum + (float)var * (1.0f - momentum);
            }
        } else if (c->training) {
            double s = 0, s2 = 0;
            for (size_t o = 0; o < g.outer; o++) {
                const float *p = x + (o * C + ch) * g.inner;
                double w = wm ? wm[o] : 1.0;
                for (size_t i = 0; i < g.inner; i++) s += w * p[i];
            }
            mu = s / denom;
            for (size_t o = 0; o < g.outer; o++) {
                const float *p = x + (o * C + ch) * g.inner;
                double w = wm ? wm[o] : 1.0;
                for (size_t i = 0; i < g.inner; i++) s2 += w * (p[i] - mu) * (p[i] - mu);
            }
            var = s2 / denom; /* biased, as Keras's ops.moments */
            if (c->state) {
                float *mm = c->state + moving, *mv = c->state + moving + C;
                mm[ch] = mm[ch] * momentum + (float)mu * (1.0f - momentum);
                mv[ch] = mv[ch] * momentum + (float)var * (1.0f - momentum);
            }
        } else {
            mu = c->w[moving + ch];
            var = c->w[moving + C + ch];
        }
        mean[ch] = (float)mu;
        inv_std[ch] = (float)(1.0 / sqrt(var + eps));
    }
    for (size_t o = 0; o < g.outer; o++)
        for (size_t ch = 0; ch < C; ch++) {
            const float *p = x + (o * C + ch) * g.inner;
            float *y = c->out + (o * C + ch) * g.inner;
            float sc = inv_std[ch] * (gamma ? gamma[ch] : 1.0f), sh = beta ? beta[ch] : 0.0f;
            for (size_t i = 0; i < g.inner; i++) y[i] = (p[i] - mean[ch]) * sc + sh;
        }
}

/* Channel ch's sum(dy) and sum(dy * xhat) over this rank's batch. */
static void bn_channel_sums(const loom_op_ctx *c, bn_geom g, size_t ch, const float *mean, const float *inv_std,
                            double *sum_dy, double *sum_dy_xhat) {
    size_t C = g.channels;
    const float *x = c->in[0], *dy = c->dout;
    for (size_t o = 0; o < g.outer; o++) {
        size_t off = (o * C + ch) * g.inner;
        for (size_t i = 0; i < g.inner; i++) {
            double xhat = (x[off + i] - mean[ch]) * inv_std[ch];
            *sum_dy += dy[off + i];
            *sum_dy_xhat += dy[off + i] * xhat;
        }
    }
}

/* Training: y = gamma * xhat + beta with xhat = (x - mean) * inv_std over N values, so
 *   dx = gamma * inv_std / N * (N * dy - sum(dy) - xhat * sum(dy * xhat)).
 * Masked (weights w, D = sum(w) + 1e-7, A = sum(w (x - mean)), which the 1e-7 makes nonzero):
 *   dx_j = gamma * inv_std * (dy_j - w_j / D * (sum(dy) + sum(dy * xhat) * (xhat_j - inv_std * A / D))),
 * the sums over every value (a padded step's output still depends on the statistics).
 * Inference: the statistics are constants and dx = gamma * inv_std * dy. */
static void bn_backward(const loom_layer *L, const loom_op_ctx *c) {
    bn_geom g = bn_geometry(L, &c->in_shape[0], c->batch);
    size_t C = g.channels, N = g.outer * g.inner;
    const float *x = c->in[0], *dy = c->dout;
    int gi = idx_gamma(L), bi = idx_beta(L);
    const float *gamma = gi >= 0 ? c->w + (size_t)gi * C : NULL;
    const float *mean = c->scratch + 1, *inv_std = c->scratch + 1 + C;
    bool batch_stats = c->scratch[0] != 0.0f;
    float *dx = c->din[0];
    /* synchronised: every channel's sums first, summed over the ranks at the global loss's scale */
    bool synced = batch_stats && bn_synced(L, c);
    double *buf = bn_sums(c, C), Ng = (double)N, share = c->sync_share;
    const float *wm = batch_stats && !synced ? bn_weights(L, c) : NULL;
    double wsum = 0;
    if (wm)
        for (size_t o = 0; o < g.outer; o++) wsum += wm[o];
    for (size_t ch = 0; ch < C && synced; ch++) {
        double sum_dy = 0, sum_dy_xhat = 0;
        bn_channel_sums(c, g, ch, mean, inv_std, &sum_dy, &sum_dy_xhat);
        buf[ch] = sum_dy * share;
        buf[C + ch] = sum_dy_xhat * share;
    }
    if (synced) {
        c->sync_sum(c->sync_user, buf, 2 * C);
        for (size_t i = 0; i < 2 * C; i++) buf[i] = share > 0 ? buf[i] / share : 0;
        Ng = (double)c->scratch[1 + 2 * C] + (double)c->scratch[2 + 2 * C];
    }
    for (size_t ch = 0; ch < C; ch++) {
        double sum_dy = 0, sum_dy_xhat = 0; /* this rank's own: gamma's and beta's gradient */
        bn_channel_sums(c, g, ch, mean, inv_std, &sum_dy, &sum_dy_xhat);
        if (c->dw) {
            if (gi >= 0) c->dw[(size_t)gi * C + ch] += (float)sum_dy_xhat;
            if (bi >= 0) c->dw[(size_t)bi * C + ch] += (float)sum_dy;
        }
        if (!dx) continue;
        float k = (gamma ? gamma[ch] : 1.0f) * inv_std[ch];
        if (synced) sum_dy = buf[ch], sum_dy_xhat = buf[C + ch];
        const double denom = synced ? Ng : wm ? wsum + KERAS_EPSILON : (double)N;
        double mean_dy = batch_stats ? sum_dy / denom : 0.0;
        double mean_dy_xhat = batch_stats ? sum_dy_xhat / denom : 0.0;
        double shift = 0; /* inv_std * A / D */
        if (wm) {
            double a = 0;
            for (size_t o = 0; o < g.outer; o++) a += wm[o] * ((double)x[o * C + ch] - mean[ch]);
            shift = inv_std[ch] * a / denom;
        }
        for (size_t o = 0; o < g.outer; o++) {
            size_t off = (o * C + ch) * g.inner;
            double w = wm ? wm[o] : 1.0;
            for (size_t i = 0; i < g.inner; i++) {
                double xhat = (x[off + i] - mean[ch]) * inv_std[ch];
                dx[off + i] += (float)(k * (dy[off + i] - w * (mean_dy + (xhat - shift) * mean_dy_xhat)));
            }
        }
    }
}

static bool bn_save(const loom_layer *L, void *obj) {
    cJSON *c = obj;
    return cJSON_AddNumberToObject(c, "axis", L->axis) && cJSON_AddNumberToObject(c, "momentum", L->farg[F_MOMENTUM]) &&
           cJSON_AddNumberToObject(c, "epsilon", L->farg[F_EPSILON]) &&
           cJSON_AddBoolToObject(c, "center", L->iarg[A_CENTER] != 0) &&
           cJSON_AddBoolToObject(c, "scale", L->iarg[A_SCALE] != 0) &&
           (!L->iarg[A_SYNC] || cJSON_AddBoolToObject(c, "synchronized", 1)); /* Keras 3's key */
}

static float cfg_num(const cJSON *c, const char *key, float fallback) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
    return cJSON_IsNumber(v) ? loom_double_to_float(v->valuedouble) : fallback;
}

static int cfg_flag(const cJSON *c, const char *key, int fallback) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : fallback;
}

/* Keras writes axis as an int or a one-element list. Out of range values become 0 (refused). */
static int cfg_axis(const cJSON *c) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, "axis");
    if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 1) v = cJSON_GetArrayItem(v, 0);
    if (!v) return -1;
    double a = cJSON_IsNumber(v) ? v->valuedouble : 0;
    return fabs(a) <= 64 && a == (int)a ? (int)a : 0;
}

static loom_layer *bn_load(loom_graph *g, const char *name, const void *config) {
    const cJSON *c = config;
    loom_batchnorm_options o = loom_batchnorm_defaults();
    o.axis = cfg_axis(c);
    o.momentum = cfg_num(c, "momentum", o.momentum);
    o.epsilon = cfg_num(c, "epsilon", o.epsilon);
    o.center = cfg_flag(c, "center", 1);
    o.scale = cfg_flag(c, "scale", 1);
    o.synchronized = cfg_flag(c, "synchronized", 0);
    return loom_batch_normalization(g, name, &o);
}

const loom_op loom_op_batch_normalization = {
    .class_name = "BatchNormalization",
    .base_name = "batch_normalization",
    .min_inputs = 1,
    .max_inputs = 1,
    .build = bn_build,
    .scratch_size = bn_scratch,
    .forward = bn_forward,
    .backward = bn_backward,
    .mask_mode = LOOM_MASK_KEEP,
    .save_config = bn_save,
    .load_config = bn_load,
    .sync_idle = bn_sync_idle,
};

loom_batchnorm_options loom_batchnorm_defaults(void) {
    loom_batchnorm_options o = {.axis = -1, .momentum = 0.99f, .epsilon = 1e-3f, .center = 1, .scale = 1};
    return o;
}

loom_layer *loom_batch_normalization(loom_graph *g, const char *name, const loom_batchnorm_options *opt) {
    if (!g || g->err.code) return NULL;
    const char *shown = name ? name : "batch_normalization";
    loom_batchnorm_options o = opt ? *opt : loom_batchnorm_defaults();
    if (o.axis == 0 || o.axis > LOOM_MAX_RANK || o.axis < -LOOM_MAX_RANK) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT,
                       "%s (BatchNormalization): axis %d is not a non-batch axis (use -1..-%d or 1..%d)", shown, o.axis,
                       LOOM_MAX_RANK, LOOM_MAX_RANK);
        return NULL;
    }
    if (!(o.momentum >= 0.0f && o.momentum <= 1.0f)) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (BatchNormalization): momentum must be in [0, 1], got %g",
                       shown, (double)o.momentum);
        return NULL;
    }
    if (!(o.epsilon > 0.0f && isfinite(o.epsilon))) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (BatchNormalization): epsilon must be > 0, got %g", shown,
                       (double)o.epsilon);
        return NULL;
    }
    loom_layer *L = loom_graph_new_layer(g, &loom_op_batch_normalization, name);
    if (!L) return NULL;
    L->axis = o.axis;
    L->iarg[A_CENTER] = o.center != 0;
    L->iarg[A_SCALE] = o.scale != 0;
    L->iarg[A_SYNC] = o.synchronized != 0;
    L->farg[F_MOMENTUM] = o.momentum;
    L->farg[F_EPSILON] = o.epsilon;
    return L;
}

/* ---------------------------------------------------------------- LayerNormalization */

/* The number of trailing axes normalised together (Keras axis: an int or a list of them). */
static int ln_k(const loom_layer *L) { return L->iarg[A_LN_NAXES] > 0 ? L->iarg[A_LN_NAXES] : 1; }

/* Values normalised together: the product of the k trailing dims. */
static size_t ln_D(const loom_layer *L, const loom_shape *x) {
    size_t D = 1;
    for (int i = x->rank - ln_k(L); i < x->rank; i++) D *= (size_t)x->dims[i];
    return D;
}

static loom_status ln_build(loom_layer *L, int n_in, const loom_shape *in, loom_shape *out, loom_error *err) {
    (void)n_in;
    const int rank = in[0].rank, k = ln_k(L);
    /* Keras's axes (batch = 0) must name each of the k trailing per-sample axes once */
    bool seen[LOOM_MAX_RANK] = {false}, ok = k <= rank;
    for (int i = 0; ok && i < L->iarg[A_LN_NAXES]; i++) {
        int a = L->iarg[A_LN_AXES + i], p = a < 0 ? rank + a : a - 1;
        ok = a != 0 && p >= rank - k && p < rank && !seen[p];
        if (ok) seen[p] = true;
    }
    if (!ok) {
        char s[64];
        return loom_set_error(err, LOOM_ERR_SHAPE,
                              "%s (LayerNormalization): the axes must be the %d trailing axes of input %s (each once)",
                              L->name, k, loom_shape_str(&in[0], s, sizeof s));
    }
    *out = in[0];
    if (!L->built) { /* gamma and beta have the normalised axes' shape (Keras's param_shape) */
        loom_shape s = {k, {0}};
        for (int i = 0; i < k; i++) s.dims[i] = in[0].dims[rank - k + i];
        loom_regularizer none = {0, 0};
        if (L->iarg[A_SCALE]) loom_layer_add_weight(L, "gamma", &s, LOOM_INIT_ONES, none);
        if (L->iarg[A_CENTER]) loom_layer_add_weight(L, "beta", &s, LOOM_INIT_ZEROS, none);
    }
    return LOOM_OK;
}

static size_t ln_rows_of(const loom_layer *L, const loom_shape *x, int batch) {
    return (size_t)batch * loom_shape_size(x) / ln_D(L, x);
}

static size_t ln_scratch(const loom_layer *L, int n_in, const loom_shape *in, const loom_shape *out, int batch) {
    (void)n_in;
    (void)out;
    return 2 * ln_rows_of(L, &in[0], batch);
}

static void ln_forward(const loom_layer *L, const loom_op_ctx *c) {
    size_t D = ln_D(L, &c->in_shape[0]), rows = ln_rows_of(L, &c->in_shape[0], c->batch);
    int gi = idx_gamma(L), bi = idx_beta(L);
    const float *gamma = gi >= 0 ? c->w + (size_t)gi * D : NULL;
    const float *beta = bi >= 0 ? c->w + (size_t)bi * D : NULL;
    float *mean = c->scratch, *inv_std = c->scratch + rows;
    for (size_t r = 0; r < rows; r++) {
        const float *x = c->in[0] + r * D;
        float *y = c->out + r * D;
        double s = 0, s2 = 0;
        for (size_t i = 0; i < D; i++) s += x[i];
        double mu = s / (double)D;
        for (size_t i = 0; i < D; i++) s2 += (x[i] - mu) * (x[i] - mu);
        mean[r] = (float)mu;
        inv_std[r] = (float)(1.0 / sqrt(s2 / (double)D + L->farg[F_EPSILON]));
        for (size_t i = 0; i < D; i++) {
            float xhat = (x[i] - mean[r]) * inv_std[r];
            y[i] = xhat * (gamma ? gamma[i] : 1.0f) + (beta ? beta[i] : 0.0f);
        }
    }
}

/* Per row: g = dy * gamma; dx = inv_std * (g - mean(g) - xhat * mean(g * xhat)). */
static void ln_backward(const loom_layer *L, const loom_op_ctx *c) {
    size_t D = ln_D(L, &c->in_shape[0]), rows = ln_rows_of(L, &c->in_shape[0], c->batch);
    int gi = idx_gamma(L), bi = idx_beta(L);
    const float *gamma = gi >= 0 ? c->w + (size_t)gi * D : NULL;
    const float *mean = c->scratch, *inv_std = c->scratch + rows;
    for (size_t r = 0; r < rows; r++) {
        const float *x = c->in[0] + r * D, *dy = c->dout + r * D;
        double sum_g = 0, sum_g_xhat = 0;
        for (size_t i = 0; i < D; i++) {
            double xhat = (x[i] - mean[r]) * inv_std[r];
            double gr = dy[i] * (gamma ? gamma[i] : 1.0f);
            sum_g += gr;
            sum_g_xhat += gr * xhat;
            if (c->dw && gi >= 0) c->dw[(size_t)gi * D + i] += (float)(dy[i] * xhat);
            if (c->dw && bi >= 0) c->dw[(size_t)bi * D + i] += dy[i];
        }
        if (!c->din[0]) continue;
        float *dx = c->din[0] + r * D;
        double mg = sum_g / (double)D, mgx = sum_g_xhat / (double)D;
        for (size_t i = 0; i < D; i++) {
            double xhat = (x[i] - mean[r]) * inv_std[r];
            double gr = dy[i] * (gamma ? gamma[i] : 1.0f);
            dx[i] += (float)(inv_std[r] * (gr - mg - xhat * mgx));
        }
    }
}

static bool ln_save(const loom_layer *L, void *obj) {
    cJSON *c = obj;
    bool axis_ok;
    if (L->iarg[A_LN_NAXES] > 1) {
        cJSON *axes = cJSON_AddArrayToObject(c, "axis");
        for (int i = 0; axes && i < L->iarg[A_LN_NAXES]; i++)
            cJSON_AddItemToArray(axes, cJSON_CreateNumber(L->iarg[A_LN_AXES + i]));
        axis_ok = axes && cJSON_GetArraySize(axes) == L->iarg[A_LN_NAXES];
    } else {
        axis_ok = cJSON_AddNumberToObject(c, "axis", L->iarg[A_LN_NAXES] ? L->iarg[A_LN_AXES] : -1) != NULL;
    }
    return axis_ok && cJSON_AddNumberToObject(c, "epsilon", L->farg[F_EPSILON]) &&
           cJSON_AddBoolToObject(c, "center", L->iarg[A_CENTER] != 0) &&
           cJSON_AddBoolToObject(c, "scale", L->iarg[A_SCALE] != 0);
}

static loom_layer *ln_load(loom_graph *g, const char *name, const void *config) {
    const cJSON *c = config;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, "axis");
    int axes[LN_MAX_AXES], n = 0;
    if (cJSON_IsArray(v)) {
        const cJSON *a;
        cJSON_ArrayForEach(a, v) {
            if (n >= LN_MAX_AXES || !cJSON_IsNumber(a) || fabs(a->valuedouble) > 64 || a->valuedouble != (int)a->valuedouble) {
                if (!g->err.code)
                    loom_set_error(&g->err, LOOM_ERR_ARGUMENT,
                                   "%s (LayerNormalization): axis must be a list of at most %d whole numbers", name,
                                   LN_MAX_AXES);
                return NULL;
            }
            axes[n++] = (int)a->valuedouble;
        }
    } else {
        axes[n++] = cfg_axis(c);
    }
    return loom_layer_normalization_axes(g, name, n, axes, cfg_num(c, "epsilon", 1e-3f), cfg_flag(c, "center", 1),
                                         cfg_flag(c, "scale", 1));
}

const loom_op loom_op_layer_normalization = {
    .class_name = "LayerNormalization",
    .base_name = "layer_normalization",
    .min_inputs = 1,
    .max_inputs = 1,
    .build = ln_build,
    .scratch_size = ln_scratch,
    .forward = ln_forward,
    .backward = ln_backward,
    .mask_mode = LOOM_MASK_KEEP,
    .save_config = ln_save,
    .load_config = ln_load,
};

loom_layer *loom_layer_normalization(loom_graph *g, const char *name, float epsilon, int center, int scale) {
    const int last = -1;
    return loom_layer_normalization_axes(g, name, 1, &last, epsilon, center, scale);
}

loom_layer *loom_layer_normalization_axes(loom_graph *g, const char *name, int n_axes, const int *axes, float epsilon,
                                          int center, int scale) {
    if (!g || g->err.code) return NULL;
    if (n_axes < 1 || n_axes > LN_MAX_AXES || !axes) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (LayerNormalization): 1 to %d axes, got %d",
                       name ? name : "layer_normalization", LN_MAX_AXES, n_axes);
        return NULL;
    }
    for (int i = 0; i < n_axes; i++)
        if (axes[i] == 0 || axes[i] > LOOM_MAX_RANK || axes[i] < -LOOM_MAX_RANK) {
            loom_set_error(&g->err, LOOM_ERR_ARGUMENT,
                           "%s (LayerNormalization): axis %d is not a non-batch axis (use -1..-%d or 1..%d)",
                           name ? name : "layer_normalization", axes[i], LOOM_MAX_RANK, LOOM_MAX_RANK);
            return NULL;
        }
    if (epsilon == 0.0f) epsilon = 1e-3f;
    if (!(epsilon > 0.0f && isfinite(epsilon))) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (LayerNormalization): epsilon must be > 0, got %g",
                       name ? name : "layer_normalization", (double)epsilon);
        return NULL;
    }
    loom_layer *L = loom_graph_new_layer(g, &loom_op_layer_normalization, name);
    if (!L) return NULL;
    L->iarg[A_CENTER] = center != 0;
    L->iarg[A_SCALE] = scale != 0;
    L->farg[F_EPSILON] = epsilon;
    L->iarg[A_LN_NAXES] = n_axes;
    for (int i = 0; i < n_axes; i++) L->iarg[A_LN_AXES + i] = axes[i];
    return L;
}
