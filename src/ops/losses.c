/* losses.c — Keras 3 losses: per-row values and their gradients, side by side.
 *
 * Every loss reduces the last axis of a row to one value v_r; the output's loss is then
 * L = sum_r v_r * s_r / n_rows (Keras sum_over_batch_size), so a row's gradient is
 * dv_r/dpred scaled by s_r / n_rows. Row work is done in double and stored as float.
 *
 * Probability inputs are clipped to [eps, 1 - eps] with float32 bounds, as Keras 3 does; the
 * gradient is zero where the clip is active, which is what autodiff of clip_by_value gives.
 * The logits formulas serve both from_logits and the fused softmax/sigmoid path. */
#include "ops/losses.h"
#include "ops/activations.h"
#include "kernels/vector_clones.h"
#include "kernels/avx512.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define LOSS_EPS 1e-7
/* keras.backend.epsilon() and 1 - epsilon() as float32 tensors hold them: the clip bounds must be
 * these exact floats for BCE to give K3's numbers (1 - (1 - eps) is 1.19e-7 in float32, not 1e-7). */
static const float CLIP_LO = 1e-7f;
static const float CLIP_HI = (float)(1.0 - 1e-7);

/* ---------------------------------------------------------------- names */

typedef struct loss_name {
    const char *name;
    loom_loss_kind kind;
} loss_name;

/* The first entry of each kind is its canonical Keras name; the others are aliases (K3's own,
 * its class names, and K2's older ones). */
static const loss_name LOSS_NAMES[] = {
    {"mean_squared_error", LOSS_MSE},
    {"mse", LOSS_MSE},
    {"MSE", LOSS_MSE},
    {"MeanSquaredError", LOSS_MSE},
    {"mean_absolute_error", LOSS_MAE},
    {"mae", LOSS_MAE},
    {"MAE", LOSS_MAE},
    {"MeanAbsoluteError", LOSS_MAE},
    {"binary_crossentropy", LOSS_BCE},
    {"bce", LOSS_BCE},
    {"BCE", LOSS_BCE},
    {"BinaryCrossentropy", LOSS_BCE},
    {"categorical_crossentropy", LOSS_CCE},
    {"cce", LOSS_CCE},
    {"CategoricalCrossentropy", LOSS_CCE},
    {"sparse_categorical_crossentropy", LOSS_SCCE},
    {"scce", LOSS_SCCE},
    {"SparseCategoricalCrossentropy", LOSS_SCCE},
    {"huber", LOSS_HUBER},
    {"huber_loss", LOSS_HUBER},
    {"Huber", LOSS_HUBER},
    {"kl_divergence", LOSS_KLD},
    {"kld", LOSS_KLD},
    {"KLD", LOSS_KLD},
    {"kullback_leibler_divergence", LOSS_KLD},
    {"KLDivergence", LOSS_KLD},
    {"cosine_similarity", LOSS_COSINE},
    {"CosineSimilarity", LOSS_COSINE},
    {"hinge", LOSS_HINGE},
    {"Hinge", LOSS_HINGE},
    {"log_cosh", LOSS_LOG_COSH},
    {"logcosh", LOSS_LOG_COSH},
    {"LogCosh", LOSS_LOG_COSH},
    {"poisson", LOSS_POISSON},
    {"Poisson", LOSS_POISSON},
};
#define N_LOSS_NAMES (sizeof LOSS_NAMES / sizeof LOSS_NAMES[0])

static const char *KNOWN_LIST =
    "mean_squared_error (mse), mean_absolute_error (mae), binary_crossentropy (bce), "
    "categorical_crossentropy (cce), sparse_categorical_crossentropy (scce), huber, "
    "kl_divergence (kld), cosine_similarity, hinge, log_cosh, poisson";

static int find_loss(const char *name) {
    if (!name) return -1;
    for (size_t i = 0; i < N_LOSS_NAMES; i++)
        if (strcmp(LOSS_NAMES[i].name, name) == 0) return (int)i;
    return -1;
}

static const char *canonical_name(loom_loss_kind kind) {
    for (size_t i = 0; i < N_LOSS_NAMES; i++)
        if (LOSS_NAMES[i].kind == kind) return LOSS_NAMES[i].name;
    return "none";
}

static void copy_name(char *dst, const char *src) {
    snprintf(dst, LOOM_NAME_MAX, "%s", src);
}

int loom_loss_known(const char *name) { return find_loss(name) >= 0; }

static bool is_crossentropy(loom_loss_kind k) {
    return k == LOSS_BCE || k == LOSS_CCE || k == LOSS_SCCE;
}

loom_status loom_loss_resolve(const loom_loss *spec, loom_loss_impl *out, loom_error *err) {
    if (!spec || !out) return loom_set_error(err, LOOM_ERR_ARGUMENT, "loss: NULL argument");
    memset(out, 0, sizeof *out);

    if (spec->fn) {
        out->kind = LOSS_CUSTOM;
        copy_name(out->name, spec->name && spec->name[0] ? spec->name : "custom");
        out->fn = spec->fn;
        out->user = spec->user;
        out->delta = 1.0f;
        return LOOM_OK;
    }
    if (!spec->name) {
        out->kind = LOSS_NONE;
        copy_name(out->name, "none");
        return LOOM_OK;
    }

    int i = find_loss(spec->name);
    if (i < 0)
        return loom_set_error(err, LOOM_ERR_NAME, "unknown loss '%s'; known losses: %s",
                              spec->name, KNOWN_LIST);
    loom_loss_kind kind = LOSS_NAMES[i].kind;
    const char *canon = canonical_name(kind);

    /* Keras's loss classes refuse arguments they do not take; a silently ignored option would
     * hide a typo in the user's intent, so loom refuses them too. */
    if (spec->from_logits && !is_crossentropy(kind))
        return loom_set_error(err, LOOM_ERR_ARGUMENT,
                              "loss '%s' does not take from_logits (only crossentropies do)", canon);
    if (!(spec->label_smoothing >= 0.0f && spec->label_smoothing <= 1.0f))
        return loom_set_error(err, LOOM_ERR_ARGUMENT,
                              "loss '%s': label_smoothing %g is outside [0, 1]", canon,
                              (double)spec->label_smoothing);
    if (spec->label_smoothing != 0.0f && kind != LOSS_BCE && kind != LOSS_CCE)
        return loom_set_error(err, LOOM_ERR_ARGUMENT,
                              "loss '%s' does not take label_smoothing (only binary and "
                              "categorical crossentropy do)",
                              canon);
    if (!(spec->delta >= 0.0f) || isinf(spec->delta))
        return loom_set_error(err, LOOM_ERR_ARGUMENT,
                              "loss '%s': delta %g must be a finite number >= 0 (0 means 1)",
                              canon, (double)spec->delta);
    if (spec->delta != 0.0f && kind != LOSS_HUBER)
        return loom_set_error(err, LOOM_ERR_ARGUMENT,
                              "loss '%s' does not take delta (only huber does)", canon);

    out->kind = kind;
    copy_name(out->name, canon);
    out->from_logits = spec->from_logits != 0;
    out->label_smoothing = spec->label_smoothing;
    out->delta = spec->delta == 0.0f ? 1.0f : spec->delta;
    return LOOM_OK;
}

int loom_loss_target_dim(const loom_loss_impl *l, int dim) {
    return (l && l->kind == LOSS_SCCE) ? 1 : dim;
}

bool loom_loss_can_fuse(const loom_loss_impl *l, loom_activation final_act) {
    if (!l || l->from_logits) return false;
    if ((l->kind == LOSS_CCE || l->kind == LOSS_SCCE) && final_act == LOOM_SOFTMAX) return true;
    if (l->kind == LOSS_BCE && final_act == LOOM_SIGMOID) return true;
    return false;
}

/* ---------------------------------------------------------------- helpers */

static inline float clip_prob(float p) {
    return p < CLIP_LO ? CLIP_LO : (p > CLIP_HI ? CLIP_HI : p);
}
static inline bool in_clip(double p) { return p >= CLIP_LO && p <= CLIP_HI; }

static inline double softplus(double x) { return fmax(x, 0.0) + log1p(exp(-fabs(x))); }

static inline double sigmoid(double z) {
    if (z >= 0) return 1.0 / (1.0 + exp(-z));
    double e = exp(z);
    return e / (1.0 + e);
}

static inline double sign(double x) { return (x > 0) - (x < 0); }

/* exp(z - max) for a logit row: float expf (a quarter of exp()'s cost, within 1 ulp of float), summed
 * in double. The exponentials are most of a short row's cost. */
static inline double shifted_exp(float z, double zmax) { return expf(z - (float)zmax); }

/* max_j z_j and sum_j exp(z_j - max): log_softmax(z)_j = z_j - max - log(sum). The first
 * EXP_KEEP exponentials stay in e (the usual class counts), so that the gradient reuses them. */
#define EXP_KEEP 256
static inline void softmax_stats(const float *z, int dim, double *zmax, double *sum, double e[EXP_KEEP]) {
    double m = z[0];
    for (int j = 1; j < dim; j++)
        if (z[j] > m) m = z[j];
    double s = 0.0;
    for (int j = 0; j < dim; j++) {
        double ej = shifted_exp(z[j], m);
        if (j < EXP_KEEP) e[j] = ej;
        s += ej;
    }
    *zmax = m;
    *sum = s;
}

static inline double kept_exp(const double e[EXP_KEEP], const float *z, int j, double zmax) {
    return j < EXP_KEEP ? e[j] : shifted_exp(z[j], zmax);
}

/* ---------------------------------------------------------------- per-row losses
 * Each returns the row value v and, when g is not NULL, writes g = scale * dv/dpred. */

static double row_mse(const float *t, const float *p, float *g, int dim, double scale) {
    double v = 0.0, k = 2.0 * scale / dim;
    for (int j = 0; j < dim; j++) {
        double e = (double)p[j] - t[j];
        v += e * e;
        if (g) g[j] = (float)(k * e);
    }
    return v / dim;
}

/* row_mse over a whole batch without sample weights: the gradient in one flat vectorised pass,
 * then the row values, totalled in four interleaved sums (a single running sum is a chain of
 * dependent additions, most of a 32-row batch's time). */
LOOM_VECTOR_CLONES static void mse_grad_flat(const float *restrict t, const float *restrict p, float *restrict g,
                                            size_t n, double k) {
    for (size_t i = 0; i < n; i++) g[i] = (float)(k * ((double)p[i] - t[i]));
}

static double mse_batch(const float *t, const float *p, float *g, size_t n_rows, int dim, double inv_n,
                        float *values) {
    if (g) mse_grad_flat(t, p, g, n_rows * (size_t)dim, 2.0 * inv_n / dim);
    double part[4] = {0.0, 0.0, 0.0, 0.0};
    for (size_t r = 0; r < n_rows; r++) {
        const float *tr = t + r * (size_t)dim, *pr = p + r * (size_t)dim;
        double v = 0.0;
        for (int j = 0; j < dim; j++) {
            double e = (double)pr[j] - tr[j];
            v += e * e;
        }
        v /= dim;
        values[r] = (float)v;
        part[r % 4] += v;
    }
    return (part[0] + part[1]) + (part[2] + part[3]);
}

static double row_mae(const float *t, const float *p, float *g, int dim, double scale) {
    double v = 0.0, k = scale / dim;
    for (int j = 0; j < dim; j++) {
        double e = (double)p[j] - t[j];
        v += fabs(e);
        if (g) g[j] = (float)(k * sign(e));
    }
    return v / dim;
}

static double row_huber(const float *t, const float *p, float *g, int dim, double scale,
                        double delta) {
    double v = 0.0, k = scale / dim;
    for (int j = 0; j < dim; j++) {
        double e = (double)p[j] - t[j], a = fabs(e);
        if (a <= delta) {
            v += 0.5 * e * e;
            if (g) g[j] = (float)(k * e);
        } else {
            v += delta * a - 0.5 * delta * delta;
            if (g) g[j] = (float)(k * delta * sign(e));
        }
    }
    return v / dim;
}

static double row_log_cosh(const float *t, const float *p, float *g, int dim, double scale) {
    const double LOG2 = 0.69314718055994531;
    double v = 0.0, k = scale / dim;
    for (int j = 0; j < dim; j++) {
        double x = (double)p[j] - t[j];
        v += x + softplus(-2.0 * x) - LOG2; /* = log cosh x, without overflow */
        if (g) g[j] = (float)(k * tanh(x));
    }
    return v / dim;
}

static double row_poisson(const float *t, const float *p, float *g, int dim, double scale) {
    double v = 0.0, k = scale / dim;
    for (int j = 0; j < dim; j++) {
        double pe = (double)p[j] + LOSS_EPS;
        v += p[j] - t[j] * log(pe);
        if (g) g[j] = (float)(k * (1.0 - t[j] / pe));
    }
    return v / dim;
}

/* A sum over the row, not a mean, as Keras. */
static double row_kld(const float *t, const float *p, float *g, int dim, double scale) {
    double v = 0.0;
    for (int j = 0; j < dim; j++) {
        double tc = t[j] < CLIP_LO ? CLIP_LO : (t[j] > 1.0f ? 1.0 : t[j]);
        double pc = p[j] < CLIP_LO ? CLIP_LO : (p[j] > 1.0f ? 1.0 : p[j]);
        v += tc * log(tc / pc);
        if (g) g[j] = (p[j] >= CLIP_LO && p[j] <= 1.0f) ? (float)(-scale * tc / pc) : 0.0f;
    }
    return v;
}

/* v = -n(t).n(p), n(x) = x / max(|x|, eps). Where |p| <= eps, n(p) = p/eps is linear. */
static double row_cosine(const float *t, const float *p, float *g, int dim, double scale) {
    double tt = 0.0, pp = 0.0, tp = 0.0;
    for (int j = 0; j < dim; j++) {
        tt += (double)t[j] * t[j];
        pp += (double)p[j] * p[j];
        tp += (double)t[j] * p[j];
    }
    double tn = sqrt(tt), pn = sqrt(pp);
    double inv_t = 1.0 / fmax(tn, LOSS_EPS), inv_p = 1.0 / fmax(pn, LOSS_EPS);
    double v = -tp * inv_t * inv_p;
    if (g) {
        /* dv/dp = -(a - (a.b) b) / |p| with a = n(t), b = n(p); just -a/eps below the floor */
        double ab = tp * inv_t * inv_p;
        bool floor_active = !(pn > LOSS_EPS);
        for (int j = 0; j < dim; j++) {
            double a = t[j] * inv_t;
            double d = floor_active ? -a * inv_p : -(a - ab * p[j] * inv_p) * inv_p;
            g[j] = (float)(scale * d);
        }
    }
    return v;
}

/* pm1: targets were all 0/1 in the batch, so they become -1/+1. */
static double row_hinge(const float *t, const float *p, float *g, int dim, double scale,
                        bool pm1) {
    double v = 0.0, k = scale / dim;
    for (int j = 0; j < dim; j++) {
        double tj = pm1 ? 2.0 * t[j] - 1.0 : t[j];
        double m = 1.0 - tj * p[j];
        if (m > 0) {
            v += m;
            if (g) g[j] = (float)(-k * tj);
        } else if (g) {
            g[j] = 0.0f;
        }
    }
    return v / dim;
}

/* BCE on probabilities: mean of -(t log pc + (1-t) log(1-pc)). */
static double row_bce(const float *t, const float *p, float *g, int dim, double scale, double ls) {
    double v = 0.0, k = scale / dim;
    for (int j = 0; j < dim; j++) {
        double tj = t[j] * (1.0 - ls) + 0.5 * ls;
        double pc = clip_prob(p[j]);
        v -= tj * log(pc) + (1.0 - tj) * log(1.0 - pc);
        if (g) g[j] = in_clip(p[j]) ? (float)(k * (-tj / pc + (1.0 - tj) / (1.0 - pc))) : 0.0f;
    }
    return v / dim;
}

/* BCE on logits (TF's sigmoid_cross_entropy_with_logits): gradient sigmoid(z) - t. */
static double row_bce_logits(const float *t, const float *z, float *g, int dim, double scale,
                             double ls) {
    double v = 0.0, k = scale / dim;
    for (int j = 0; j < dim; j++) {
        double tj = t[j] * (1.0 - ls) + 0.5 * ls;
        double zj = z[j];
        v += fmax(zj, 0.0) - zj * tj + log1p(exp(-fabs(zj)));
        if (g) g[j] = (float)(k * (sigmoid(zj) - tj));
    }
    return v / dim;
}

/* CCE on probabilities: q = p / sum p, clipped; v = -sum t log q.
 * With g_j = dv/dq_j (= -t_j/q_j where unclipped, else 0), the renormalisation gives
 * dv/dp_k = (g_k - sum_j g_j q_j) / S, and sum_j g_j q_j = -(sum of t over unclipped q). */
static double row_cce(const float *t, const float *p, float *g, int dim, double scale, double ls) {
    double S = 0.0;
    for (int j = 0; j < dim; j++) S += p[j];
    double off = ls / dim, on = 1.0 - ls;
    double v = 0.0, gq = 0.0;
    for (int j = 0; j < dim; j++) {
        double tj = t[j] * on + off;
        double q = p[j] / S;
        double qc = q < CLIP_LO ? CLIP_LO : (q > CLIP_HI ? CLIP_HI : q);
        v -= tj * log(qc);
        if (in_clip(q)) gq -= tj;
    }
    if (g) {
        for (int j = 0; j < dim; j++) {
            double tj = t[j] * on + off;
            double q = p[j] / S;
            double gj = in_clip(q) ? -tj / q : 0.0;
            g[j] = (float)(scale * (gj - gq) / S);
        }
    }
    return v;
}

/* Fused after a softmax whose output p the forward already computed: no exponential is needed.
 * That softmax makes p at the largest logit exactly 1 / sum exp(z - max) (its exponential is
 * exp(0) = 1), the largest p, so lse = max z - log(max p), and dv/dz = p * sum t - t.
 * Maxima by compare-and-select, not by index: a branch on random logits mispredicts half the time. */
static void softmax_row_maxima(const float *z, const float *p, int dim, float *zmax, float *pmax) {
    float zm = z[0], pm = p[0];
    for (int j = 1; j < dim; j++) {
        zm = z[j] > zm ? z[j] : zm;
        pm = p[j] > pm ? p[j] : pm;
    }
    *zmax = zm, *pmax = pm;
}

/* v = sum t (lse - z) = sum t (max z - z) - log(max p) sum t over the label-smoothed targets, in
 * float: each max z - z is exact where it is small (Sterbenz) and 0 at the target when it is the
 * largest logit, so a confident row keeps its small loss without a double in the loop (the double
 * form took 3x as long). Here the per-row sums: gap = sum t (max z - z), *tsum = sum t, *pmax. */
static float row_cce_softmax_sums(const float *t, const float *z, const float *p, int dim, float on, float off,
                                  float *tsum, float *pmax) {
    float zmax;
    softmax_row_maxima(z, p, dim, &zmax, pmax);
    float gap = 0.0f, ts = 0.0f;
    for (int j = 0; j < dim; j++) {
        float tj = t[j] * on + off;
        gap += tj * (zmax - z[j]);
        ts += tj;
    }
    *tsum = ts;
    return gap;
}

#ifdef LOOM_HAVE_AVX512
/* row_cce_softmax_sums for n <= 16 rows of dim <= 16 values, one row per lane (avx512.h): the same
 * operations, the same bits. */
LOOM_AVX512_TARGET static void cce_softmax_sums16(const float *t, const float *z, const float *p, int dim, int n,
                                                  float on, float off, float gap[16], float tsum[16],
                                                  float pmax[16]) {
    __m512 tv[16], zv[16], pv[16];
    loom_rows16_load(t, (size_t)dim, dim, n, tv);
    loom_rows16_load(z, (size_t)dim, dim, n, zv);
    loom_rows16_load(p, (size_t)dim, dim, n, pv);
    __m512 zm = zv[0], pm = pv[0];
    for (int j = 1; j < dim; j++) { /* a > b ? a : b, as softmax_row_maxima */
        zm = _mm512_max_ps(zv[j], zm);
        pm = _mm512_max_ps(pv[j], pm);
    }
    __m512 g = _mm512_setzero_ps(), s = _mm512_setzero_ps();
    for (int j = 0; j < dim; j++) {
        __m512 tj = _mm512_add_ps(_mm512_mul_ps(tv[j], _mm512_set1_ps(on)), _mm512_set1_ps(off));
        g = _mm512_add_ps(g, _mm512_mul_ps(tj, _mm512_sub_ps(zm, zv[j])));
        s = _mm512_add_ps(s, tj);
    }
    _mm512_storeu_ps(gap, g);
    _mm512_storeu_ps(tsum, s);
    _mm512_storeu_ps(pmax, pm);
}
#endif

/* dv/dz = k (p sum t - t) for rows that all share k and sum t = 1 (one-hot or probability targets
 * without sample weights, the usual case): one flat pass over the batch, vectorised. */
LOOM_VECTOR_CLONES static void cce_softmax_grad_flat(const float *restrict t, const float *restrict p,
                                                    float *restrict g, size_t n, float k, float on, float off) {
    for (size_t i = 0; i < n; i++) g[i] = k * (p[i] - (t[i] * on + off));
}

/* The crossentropy fused after a softmax over the whole batch; returns sum_r v_r s_r. The per-row
 * sums come 16 rows at a time where the CPU and the row length allow. */
static double cce_softmax(const float *t, const float *z, const float *p, size_t n_rows, int dim, size_t rps,
                          const float *sw, double inv_n, double ls, float *values, float *grad) {
    const float on = (float)(1.0 - ls), off = (float)(ls / dim);
    double total = 0.0;
    bool flat = !sw;
#ifdef LOOM_HAVE_AVX512
    const bool rows16 = dim <= 16 && loom_avx512_on();
#endif
    for (size_t r0 = 0; r0 < n_rows; r0 += 16) {
        int n = n_rows - r0 < 16 ? (int)(n_rows - r0) : 16;
        float gap[16], ts[16], pmax[16];
        size_t at = r0 * (size_t)dim;
#ifdef LOOM_HAVE_AVX512
        if (rows16)
            cce_softmax_sums16(t + at, z + at, p + at, dim, n, on, off, gap, ts, pmax);
        else
#endif
            for (int i = 0; i < n; i++)
                gap[i] = row_cce_softmax_sums(t + at + (size_t)i * dim, z + at + (size_t)i * dim,
                                              p + at + (size_t)i * dim, dim, on, off, &ts[i], &pmax[i]);
        for (int i = 0; i < n; i++) {
            size_t r = r0 + (size_t)i;
            double v = (double)gap[i] - (double)ts[i] * logf(pmax[i]);
            values[r] = (float)v;
            total += v * (sw ? sw[r / rps] : 1.0f);
            flat = flat && ts[i] == 1.0f;
        }
    }
    if (!grad) return total;
    if (flat) {
        cce_softmax_grad_flat(t, p, grad, n_rows * (size_t)dim, (float)inv_n, on, off);
        return total;
    }
    for (size_t r = 0; r < n_rows; r++) {
        size_t at = r * (size_t)dim;
        float ts = 0.0f;
        for (int j = 0; j < dim; j++) ts += t[at + j] * on + off;
        const float k = (float)((sw ? sw[r / rps] : 1.0) * inv_n);
        for (int j = 0; j < dim; j++) grad[at + j] = k * (p[at + j] * ts - (t[at + j] * on + off));
    }
    return total;
}

static double row_scce_softmax(int y, const float *z, const float *p, float *g, int dim, double scale) {
    float zmax, pmax;
    softmax_row_maxima(z, p, dim, &zmax, &pmax);
    if (g) {
        const float k = (float)scale;
        for (int j = 0; j < dim; j++) g[j] = k * p[j];
        g[y] = k * (p[y] - 1.0f);
    }
    return (double)(zmax - z[y]) - logf(pmax);
}

/* v = sum t (lse - z) over the label-smoothed targets; *tsum = their sum. */
static double cce_from_lse(const float *t, const float *z, int dim, double lse, double ls, double *tsum) {
    double off = ls / dim, on = 1.0 - ls;
    double v = 0.0, ts = 0.0;
    for (int j = 0; j < dim; j++) {
        double tj = t[j] * on + off;
        v += tj * (lse - z[j]);
        ts += tj;
    }
    *tsum = ts;
    return v;
}

/* CCE on logits: v = sum t (lse - z); dv/dz = softmax(z) * sum t - t. */
static double row_cce_logits(const float *t, const float *z, float *g, int dim, double scale,
                             double ls) {
    double m, se, e[EXP_KEEP];
    softmax_stats(z, dim, &m, &se, e);
    double tsum, v = cce_from_lse(t, z, dim, m + log(se), ls, &tsum);
    double off = ls / dim, on = 1.0 - ls;
    if (g) {
        for (int j = 0; j < dim; j++) {
            double tj = t[j] * on + off;
            g[j] = (float)(scale * (kept_exp(e, z, j, m) / se * tsum - tj));
        }
    }
    return v;
}

/* SCCE on probabilities: CCE with a one-hot target, i.e. -log(clip(p_y / sum p)) (the JAX and
 * torch backends' form, so that sparse and one-hot targets give the same numbers). */
static double row_scce(int y, const float *p, float *g, int dim, double scale) {
    double S = 0.0;
    for (int j = 0; j < dim; j++) S += p[j];
    double q = p[y] / S;
    double qc = q < CLIP_LO ? CLIP_LO : (q > CLIP_HI ? CLIP_HI : q);
    if (g) {
        if (in_clip(q)) {
            for (int j = 0; j < dim; j++) g[j] = (float)(scale / S); /* -(g_q q) / S = 1/S */
            g[y] = (float)(scale * (1.0 - 1.0 / q) / S);
        } else {
            for (int j = 0; j < dim; j++) g[j] = 0.0f;
        }
    }
    return -log(qc);
}

static double row_scce_logits(int y, const float *z, float *g, int dim, double scale) {
    double m, se, e[EXP_KEEP];
    softmax_stats(z, dim, &m, &se, e);
    if (g) {
        for (int j = 0; j < dim; j++) g[j] = (float)(scale * kept_exp(e, z, j, m) / se);
        g[y] = (float)(scale * (kept_exp(e, z, y, m) / se - 1.0));
    }
    return m + log(se) - z[y];
}

/* ---------------------------------------------------------------- the driver */

static loom_status compute_custom(const loom_loss_impl *l, const float *target, const float *pred,
                                  size_t n_rows, int dim, size_t rps, const float *sw,
                                  float *values, float *grad, float *loss, loom_error *err) {
    int rc = l->fn(target, pred, n_rows, dim, values, grad, l->user);
    if (rc != 0)
        return loom_set_error(err, LOOM_ERR_CALLBACK, "custom loss '%s' failed (returned %d)",
                              l->name, rc);
    double inv_n = 1.0 / (double)n_rows, total = 0.0;
    for (size_t r = 0; r < n_rows; r++) {
        double s = sw ? sw[r / rps] : 1.0;
        total += (double)values[r] * s;
        if (grad) {
            float k = (float)(s * inv_n);
            float *g = grad + r * (size_t)dim;
            for (int j = 0; j < dim; j++) g[j] *= k;
        }
    }
    *loss = (float)(total * inv_n);
    return LOOM_OK;
}

loom_status loom_loss_compute(const loom_loss_impl *l, const float *target, const float *pred,
                              const float *softmax, size_t n_rows, int dim, size_t rows_per_sample,
                              const float *sample_weight, bool fused, float *values, float *grad,
                              float *loss, loom_error *err) {
    if (!l || !loss || (n_rows > 0 && (!target || !pred || !values)))
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "loss: NULL argument");
    if (dim <= 0)
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "loss '%s': row length %d must be > 0",
                              l->name, dim);
    if (fused && !is_crossentropy(l->kind))
        return loom_set_error(err, LOOM_ERR_ARGUMENT,
                              "loss '%s' cannot be fused with an activation", l->name);
    *loss = 0.0f;
    size_t rps = rows_per_sample ? rows_per_sample : 1;

    if (l->kind == LOSS_NONE || n_rows == 0) {
        /* no loss adds nothing; an empty batch is 0 (Keras divide_no_nan) */
        for (size_t r = 0; r < n_rows; r++) values[r] = 0.0f;
        if (grad) memset(grad, 0, n_rows * (size_t)dim * sizeof *grad);
        return LOOM_OK;
    }
    if (l->kind == LOSS_CUSTOM)
        return compute_custom(l, target, pred, n_rows, dim, rps, sample_weight, values, grad,
                              loss, err);

    const bool logits = fused || l->from_logits;
    const double ls = l->label_smoothing, delta = l->delta;
    const int tdim = loom_loss_target_dim(l, dim);

    /* Keras converts 0/1 hinge labels to -1/+1 only when the whole batch is 0/1. */
    bool pm1 = false;
    if (l->kind == LOSS_HINGE) {
        pm1 = true;
        for (size_t i = 0, n = n_rows * (size_t)dim; i < n && pm1; i++)
            pm1 = target[i] == 0.0f || target[i] == 1.0f;
    }

    const double inv_n = 1.0 / (double)n_rows;
    if (l->kind == LOSS_CCE && fused && softmax) {
        *loss = (float)(cce_softmax(target, pred, softmax, n_rows, dim, rps, sample_weight, inv_n, ls, values, grad) *
                        inv_n);
        return LOOM_OK;
    }
    if (l->kind == LOSS_MSE && !sample_weight) {
        *loss = (float)(mse_batch(target, pred, grad, n_rows, dim, inv_n, values) * inv_n);
        return LOOM_OK;
    }
    double total = 0.0;
    for (size_t r = 0; r < n_rows; r++) {
        const double s = sample_weight ? sample_weight[r / rps] : 1.0;
        const double scale = s * inv_n;
        const float *t = target + r * (size_t)tdim;
        const float *p = pred + r * (size_t)dim;
        const float *sm = fused && softmax ? softmax + r * (size_t)dim : NULL;
        float *g = grad ? grad + r * (size_t)dim : NULL;
        double v = 0.0;
        switch (l->kind) {
        case LOSS_MSE: v = row_mse(t, p, g, dim, scale); break;
        case LOSS_MAE: v = row_mae(t, p, g, dim, scale); break;
        case LOSS_HUBER: v = row_huber(t, p, g, dim, scale, delta); break;
        case LOSS_LOG_COSH: v = row_log_cosh(t, p, g, dim, scale); break;
        case LOSS_POISSON: v = row_poisson(t, p, g, dim, scale); break;
        case LOSS_KLD: v = row_kld(t, p, g, dim, scale); break;
        case LOSS_COSINE: v = row_cosine(t, p, g, dim, scale); break;
        case LOSS_HINGE: v = row_hinge(t, p, g, dim, scale, pm1); break;
        case LOSS_BCE:
            v = logits ? row_bce_logits(t, p, g, dim, scale, ls) : row_bce(t, p, g, dim, scale, ls);
            break;
        case LOSS_CCE:
            v = logits ? row_cce_logits(t, p, g, dim, scale, ls) : row_cce(t, p, g, dim, scale, ls);
            break;
        case LOSS_SCCE: {
            float ty = t[0];
            if (!(ty >= 0.0f && ty < (float)dim && ty == floorf(ty)))
                return loom_set_error(err, LOOM_ERR_DATA,
                                      "loss '%s': target %g in row %zu is not a class index in "
                                      "[0, %d)",
                                      l->name, (double)ty, r, dim);
            int y = (int)ty;
            v = sm       ? row_scce_softmax(y, p, sm, g, dim, scale)
                : logits ? row_scce_logits(y, p, g, dim, scale)
                         : row_scce(y, p, g, dim, scale);
            break;
        }
        default:
            return loom_set_error(err, LOOM_ERR_ARGUMENT, "loss '%s': unknown kind %d", l->name,
                                  (int)l->kind);
        }
        values[r] = (float)v;
        total += v * s;
    }
    *loss = (float)(total * inv_n);
    return LOOM_OK;
}
