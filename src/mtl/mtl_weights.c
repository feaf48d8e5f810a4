/* mtl_weights.c — loss-weighting methods that act on the losses (schedules, uncertainty
 * weighting, GradNorm, DWA, RLW). Pure functions, no allocation; the spec is
 * multi-task-balancing.md sections 2-7. */
#include "mtl/mtl.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define MAXK LOOM_MTL_MAX_TASKS
#define PI 3.14159265358979323846

/* ---------------------------------------------------------------- schedules */

static double clamp01(double x) { return x < 0 ? 0 : (x > 1 ? 1 : x); }

static loom_mtl_schedule schedule_zero(loom_mtl_schedule_kind kind) {
    loom_mtl_schedule s;
    memset(&s, 0, sizeof s);
    s.kind = kind;
    return s;
}

loom_mtl_schedule loom_mtl_schedule_constant(double w0) {
    loom_mtl_schedule s = schedule_zero(LOOM_MTL_SCHEDULE_CONSTANT);
    s.w0 = w0;
    return s;
}

loom_mtl_schedule loom_mtl_schedule_linear(double w0, double w1, double t0, double t1) {
    loom_mtl_schedule s = schedule_zero(LOOM_MTL_SCHEDULE_LINEAR);
    s.w0 = w0, s.w1 = w1, s.t0 = t0, s.t1 = t1;
    return s;
}

loom_mtl_schedule loom_mtl_schedule_cosine(double w0, double w1, double t0, double t1) {
    loom_mtl_schedule s = schedule_zero(LOOM_MTL_SCHEDULE_COSINE);
    s.w0 = w0, s.w1 = w1, s.t0 = t0, s.t1 = t1;
    return s;
}

loom_mtl_schedule loom_mtl_schedule_exponential(double w0, double rate, double decay_steps,
                                                int staircase) {
    loom_mtl_schedule s = schedule_zero(LOOM_MTL_SCHEDULE_EXPONENTIAL);
    s.w0 = w0, s.rate = rate, s.decay_steps = decay_steps, s.staircase = staircase;
    return s;
}

loom_mtl_schedule loom_mtl_schedule_rampup(double w_max, double length) {
    loom_mtl_schedule s = schedule_zero(LOOM_MTL_SCHEDULE_RAMPUP);
    s.w1 = w_max, s.length = length;
    return s;
}

loom_status loom_mtl_schedule_piecewise(int n, const double *boundaries, const double *values,
                                        loom_mtl_schedule *out, loom_error *err) {
    if (!boundaries || !values || !out)
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "piecewise schedule: NULL argument");
    if (n < 1 || n > LOOM_MTL_MAX_PIECES)
        return loom_set_error(err, LOOM_ERR_COUNT,
                              "piecewise schedule: %d boundaries, expected 1..%d", n,
                              LOOM_MTL_MAX_PIECES);
    loom_mtl_schedule s = schedule_zero(LOOM_MTL_SCHEDULE_PIECEWISE);
    s.n_boundaries = n;
    for (int i = 0; i < n; i++) s.boundaries[i] = boundaries[i];
    for (int i = 0; i <= n; i++) s.values[i] = values[i];
    loom_status st = loom_mtl_schedule_check(&s, err);
    if (st) return st;
    *out = s;
    return LOOM_OK;
}

/* A weight the float32 engine can use: finite in double is not enough (1e300 is inf in float). */
static bool fits_float(double w) { return isfinite(w) && fabs(w) <= FLT_MAX; }

loom_status loom_mtl_schedule_check(const loom_mtl_schedule *s, loom_error *err) {
    if (!s) return loom_set_error(err, LOOM_ERR_ARGUMENT, "schedule: NULL");
    switch (s->kind) {
    case LOOM_MTL_SCHEDULE_CONSTANT:
        if (!fits_float(s->w0))
            return loom_set_error(err, LOOM_ERR_ARGUMENT, "constant schedule: w0 (%g) is not a finite float32 weight", s->w0);
        return LOOM_OK;
    case LOOM_MTL_SCHEDULE_LINEAR:
    case LOOM_MTL_SCHEDULE_COSINE:
        if (!fits_float(s->w0) || !fits_float(s->w1) || !isfinite(s->t0) || !isfinite(s->t1))
            return loom_set_error(err, LOOM_ERR_ARGUMENT, "%s schedule: a parameter is not finite (weights must also fit in float32: w0 %g, w1 %g)",
                                  s->kind == LOOM_MTL_SCHEDULE_LINEAR ? "linear" : "cosine", s->w0, s->w1);
        if (s->t1 < s->t0)
            return loom_set_error(err, LOOM_ERR_ARGUMENT, "%s schedule: t1 (%g) < t0 (%g)",
                                  s->kind == LOOM_MTL_SCHEDULE_LINEAR ? "linear" : "cosine",
                                  s->t1, s->t0);
        return LOOM_OK;
    case LOOM_MTL_SCHEDULE_EXPONENTIAL:
        if (!fits_float(s->w0))
            return loom_set_error(err, LOOM_ERR_ARGUMENT, "exponential schedule: w0 (%g) is not a finite float32 weight", s->w0);
        if (!isfinite(s->rate) || s->rate <= 0)
            return loom_set_error(err, LOOM_ERR_ARGUMENT,
                                  "exponential schedule: rate must be finite and > 0 (got %g)",
                                  s->rate);
        if (!(s->decay_steps > 0) || !isfinite(s->decay_steps))
            return loom_set_error(err, LOOM_ERR_ARGUMENT,
                                  "exponential schedule: decay_steps must be > 0 (got %g)",
                                  s->decay_steps);
        return LOOM_OK;
    case LOOM_MTL_SCHEDULE_PIECEWISE:
        if (s->n_boundaries < 1 || s->n_boundaries > LOOM_MTL_MAX_PIECES)
            return loom_set_error(err, LOOM_ERR_COUNT,
                                  "piecewise schedule: %d boundaries, expected 1..%d",
                                  s->n_boundaries, LOOM_MTL_MAX_PIECES);
        for (int i = 0; i < s->n_boundaries; i++) {
            if (!isfinite(s->boundaries[i]) || !fits_float(s->values[i]))
                return loom_set_error(err, LOOM_ERR_ARGUMENT,
                                      "piecewise schedule: entry %d not finite (values must fit in float32)", i);
            if (i > 0 && !(s->boundaries[i] > s->boundaries[i - 1]))
                return loom_set_error(err, LOOM_ERR_ARGUMENT,
                                      "piecewise schedule: boundaries not increasing at %d", i);
        }
        if (!fits_float(s->values[s->n_boundaries]))
            return loom_set_error(err, LOOM_ERR_ARGUMENT, "piecewise schedule: last value (%g) is not a finite float32 weight", s->values[s->n_boundaries]);
        return LOOM_OK;
    case LOOM_MTL_SCHEDULE_RAMPUP:
        if (!fits_float(s->w1))
            return loom_set_error(err, LOOM_ERR_ARGUMENT, "ramp-up schedule: w1 (%g) is not a finite float32 weight", s->w1);
        if (!isfinite(s->length) || s->length < 0)
            return loom_set_error(err, LOOM_ERR_ARGUMENT,
                                  "ramp-up schedule: length must be finite and >= 0 (got %g)",
                                  s->length);
        return LOOM_OK;
    }
    return loom_set_error(err, LOOM_ERR_ARGUMENT, "schedule: unknown kind %d", (int)s->kind);
}

double loom_mtl_schedule_value(const loom_mtl_schedule *s, double t) {
    switch (s->kind) {
    case LOOM_MTL_SCHEDULE_CONSTANT:
        return s->w0;
    case LOOM_MTL_SCHEDULE_LINEAR:
    case LOOM_MTL_SCHEDULE_COSINE: {
        double frac = s->t1 > s->t0 ? clamp01((t - s->t0) / (s->t1 - s->t0)) : (t < s->t0 ? 0 : 1);
        if (s->kind == LOOM_MTL_SCHEDULE_LINEAR) return s->w0 + (s->w1 - s->w0) * frac;
        return s->w1 + (s->w0 - s->w1) * 0.5 * (1 + cos(PI * frac));
    }
    case LOOM_MTL_SCHEDULE_EXPONENTIAL: {
        double e = t / s->decay_steps;
        if (s->staircase) e = floor(e);
        return s->w0 * pow(s->rate, e);
    }
    case LOOM_MTL_SCHEDULE_PIECEWISE: {
        int i = 0;
        while (i < s->n_boundaries && t > s->boundaries[i]) i++;
        return s->values[i];
    }
    case LOOM_MTL_SCHEDULE_RAMPUP: {
        if (s->length <= 0) return s->w1;
        double p = 1 - clamp01(t / s->length);
        return s->w1 * exp(-5 * p * p);
    }
    }
    return 0;
}

/* ---------------------------------------------------------------- uncertainty weighting */

loom_status loom_mtl_uw(int K, const double *L, const double *s, const loom_mtl_uw_kind *kind,
                        double *total, double *dtotal_ds, double *weight, loom_error *err) {
    loom_status st = loom_mtl_check_tasks(K, "uncertainty weighting", err);
    if (!st) st = loom_mtl_check_finite(K, L, "uncertainty weighting", "losses", err);
    if (!st) st = loom_mtl_check_finite(K, s, "uncertainty weighting", "log-variances", err);
    if (st) return st;
    if (!total) return loom_set_error(err, LOOM_ERR_ARGUMENT, "uncertainty weighting: total is NULL");
    double sum = 0, dsv[MAXK], wv[MAXK];
    for (int i = 0; i < K; i++) {
        loom_mtl_uw_kind k = kind ? kind[i] : LOOM_MTL_UW_REGRESSION;
        if (k != LOOM_MTL_UW_REGRESSION && k != LOOM_MTL_UW_CLASSIFICATION)
            return loom_set_error(err, LOOM_ERR_ARGUMENT,
                                  "uncertainty weighting: task %d has unknown kind %d", i, (int)k);
        double a = k == LOOM_MTL_UW_REGRESSION ? 0.5 : 1.0;
        wv[i] = a * exp(-s[i]);
        sum += wv[i] * L[i] + 0.5 * s[i];
        dsv[i] = 0.5 - wv[i] * L[i];
    }
    *total = sum;
    for (int i = 0; i < K; i++) {
        if (dtotal_ds) dtotal_ds[i] = dsv[i];
        if (weight) weight[i] = wv[i];
    }
    return LOOM_OK;
}

/* ---------------------------------------------------------------- GradNorm */

loom_status loom_mtl_gradnorm_step(int K, const double *w, const double *n, const double *L0,
                                   const double *L, double alpha, double lr, double eps,
                                   double *w_out, loom_mtl_gradnorm_info *info, loom_error *err) {
    const char *who = "GradNorm";
    loom_status st = loom_mtl_check_tasks(K, who, err);
    if (!st) st = loom_mtl_check_finite(K, w, who, "weights", err);
    if (!st) st = loom_mtl_check_finite(K, n, who, "gradient norms", err);
    if (!st) st = loom_mtl_check_finite(K, L0, who, "initial losses", err);
    if (!st) st = loom_mtl_check_finite(K, L, who, "losses", err);
    if (st) return st;
    if (!w_out) return loom_set_error(err, LOOM_ERR_ARGUMENT, "%s: output weights are NULL", who);
    if (!isfinite(alpha) || !isfinite(lr) || lr < 0)
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "%s: alpha %g / lr %g not usable", who, alpha, lr);
    if (!(eps > 0) || !isfinite(eps))
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "%s: eps must be > 0 (got %g)", who, eps);

    loom_mtl_gradnorm_info loc;
    memset(&loc, 0, sizeof loc);
    double G[MAXK], ratio[MAXK], Gbar = 0, mean_ratio = 0;
    for (int i = 0; i < K; i++) {
        if (!(L0[i] > 0))
            return loom_set_error(err, LOOM_ERR_DATA, "%s: initial loss of task %d is %g, need > 0",
                                  who, i, L0[i]);
        if (L[i] < 0 || n[i] < 0)
            return loom_set_error(err, LOOM_ERR_DATA, "%s: task %d has a negative loss or norm", who, i);
        G[i] = w[i] * n[i];
        Gbar += G[i] / K;
        ratio[i] = L[i] / L0[i];
        mean_ratio += ratio[i] / K;
    }
    if (!(mean_ratio > 0))
        return loom_set_error(err, LOOM_ERR_DATA, "%s: every loss is zero, no training rate", who);
    for (int i = 0; i < K; i++) {
        loc.r[i] = ratio[i] / mean_ratio;
        loc.target[i] = Gbar * pow(loc.r[i], alpha);
        double diff = G[i] - loc.target[i];
        loc.L_grad += fabs(diff);
        /* L_i does not depend on w, so dL_grad/dw_i = n_i sign(G_i - target_i): no double backward */
        loc.dw[i] = diff > 0 ? n[i] : (diff < 0 ? -n[i] : 0.0);
        loc.w_raw[i] = w[i] - lr * loc.dw[i];
    }
    double sum = 0, wn[MAXK];
    for (int i = 0; i < K; i++) {
        wn[i] = loc.w_raw[i] > eps ? loc.w_raw[i] : eps;
        sum += wn[i];
    }
    for (int i = 0; i < K; i++) w_out[i] = wn[i] * K / sum;
    if (info) *info = loc;
    return LOOM_OK;
}

/* ---------------------------------------------------------------- DWA */

loom_status loom_mtl_dwa(int K, int epoch, const double *L_prev1, const double *L_prev2, double T,
                         double *lambda, loom_error *err) {
    const char *who = "DWA";
    loom_status st = loom_mtl_check_tasks(K, who, err);
    if (st) return st;
    if (!lambda) return loom_set_error(err, LOOM_ERR_ARGUMENT, "%s: output is NULL", who);
    if (!(T > 0))
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "%s: temperature must be > 0 (got %g)", who, T);
    if (epoch < 2) {
        for (int i = 0; i < K; i++) lambda[i] = 1;
        return LOOM_OK;
    }
    st = loom_mtl_check_finite(K, L_prev1, who, "losses of epoch e-1", err);
    if (!st) st = loom_mtl_check_finite(K, L_prev2, who, "losses of epoch e-2", err);
    if (st) return st;
    double z[MAXK];
    for (int i = 0; i < K; i++) {
        if (!(L_prev2[i] > 0))
            return loom_set_error(err, LOOM_ERR_DATA, "%s: epoch-mean loss of task %d is %g, need > 0",
                                  who, i, L_prev2[i]);
        z[i] = (L_prev1[i] / L_prev2[i]) / T; /* T = inf gives 0: equal weights */
    }
    return loom_mtl_softmax(K, z, K, lambda, err);
}

/* ---------------------------------------------------------------- RLW */

void loom_mtl_rlw_draw(int K, uint64_t key, uint64_t step, double *z) {
    for (int i = 0; i < K; i++) z[i] = loom_normal(key, step * MAXK + (uint64_t)i);
}

loom_status loom_mtl_rlw(int K, uint64_t key, uint64_t step, double sum_to, double *lambda,
                         loom_error *err) {
    loom_status st = loom_mtl_check_tasks(K, "RLW", err);
    if (st) return st;
    double z[MAXK];
    loom_mtl_rlw_draw(K, key, step, z);
    return loom_mtl_softmax(K, z, sum_to, lambda, err);
}
