/* optimizer.c — SGD, Adam, AdamW, RMSprop and Adagrad, applied the way Keras 3 applies them:
 * clip -> decoupled weight decay -> update_step, all in float32 like Keras's variables.
 * One call updates every active weight tensor of the model in place; slots live in one flat
 * buffer the caller owns (slot j of parameter p at j*n_params + p, zero at the start). */
#include "optim/optim.h"
#include "kernels/vector_clones.h"
#include "kernels/parallel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* ---------------------------------------------------------------- constructors */

static loom_optimizer optimizer_base(loom_optimizer_kind kind, float lr) {
    loom_optimizer o = {0};
    o.kind = kind;
    o.learning_rate = lr;
    o.schedule.kind = LOOM_SCHEDULE_CONSTANT;
    o.schedule.initial_learning_rate = lr;
    o.constructed = 1;
    return o;
}

loom_optimizer loom_sgd(float learning_rate, float momentum, int nesterov) {
    loom_optimizer o = optimizer_base(LOOM_SGD, learning_rate);
    o.momentum = momentum;
    o.nesterov = nesterov;
    return o;
}

loom_optimizer loom_adam(float learning_rate) {
    loom_optimizer o = optimizer_base(LOOM_ADAM, learning_rate);
    o.beta_1 = 0.9f;
    o.beta_2 = 0.999f;
    o.epsilon = 1e-7f;
    return o;
}

loom_optimizer loom_adamw(float learning_rate, float weight_decay) {
    loom_optimizer o = loom_adam(learning_rate);
    o.kind = LOOM_ADAMW;
    o.weight_decay = weight_decay;
    return o;
}

loom_optimizer loom_rmsprop(float learning_rate) {
    loom_optimizer o = optimizer_base(LOOM_RMSPROP, learning_rate);
    o.rho = 0.9f;
    o.epsilon = 1e-7f;
    return o;
}

loom_optimizer loom_adagrad(float learning_rate) {
    loom_optimizer o = optimizer_base(LOOM_ADAGRAD, learning_rate);
    o.initial_accumulator_value = 0.1f;
    o.epsilon = 1e-7f;
    return o;
}

/* ---------------------------------------------------------------- slots */

int loom_optimizer_slots(const loom_optimizer *o) {
    switch (o->kind) {
    case LOOM_SGD: return o->momentum != 0.0f ? 1 : 0;               /* velocity */
    case LOOM_ADAM:
    case LOOM_ADAMW: return 2 + (o->amsgrad ? 1 : 0);                /* m, v, vhat */
    case LOOM_RMSPROP: return 1 + (o->momentum > 0.0f) + (o->centered != 0); /* v, mom, avg g */
    case LOOM_ADAGRAD: return 1;                                     /* accumulator */
    }
    return 0;
}

bool loom_optimizer_slot_nonnegative(const loom_optimizer *o, int j) {
    switch (o->kind) {
    case LOOM_SGD: return false;                  /* velocity */
    case LOOM_ADAM:
    case LOOM_ADAMW: return j >= 1;               /* m may be negative; v and vhat may not */
    case LOOM_RMSPROP: return j == 0;             /* v; momentum and the average gradient are signed */
    case LOOM_ADAGRAD: return j == 0;
    }
    return false;
}

/* ---------------------------------------------------------------- validation */

static bool finite_in(float x, float lo, float hi) { return isfinite(x) && x >= lo && x <= hi; }

static loom_status check_schedule(const loom_schedule *s, loom_error *err) {
    if (!finite_in(s->initial_learning_rate, 0.0f, INFINITY))
        return loom_set_error(err, LOOM_ERR_ARGUMENT,
                              "schedule.initial_learning_rate must be finite and >= 0, "
                              "got %g", (double)s->initial_learning_rate);
    switch (s->kind) {
    case LOOM_SCHEDULE_CONSTANT: return LOOM_OK;
    case LOOM_SCHEDULE_EXPONENTIAL_DECAY:
        if (s->decay_steps <= 0)
            return loom_set_error(err, LOOM_ERR_ARGUMENT,
                                  "schedule.decay_steps must be > 0, got %ld",
                                  s->decay_steps);
        if (!finite_in(s->decay_rate, 0.0f, INFINITY))
            return loom_set_error(err, LOOM_ERR_ARGUMENT,
                                  "schedule.decay_rate must be finite and >= 0, got %g",
                                  (double)s->decay_rate);
        return LOOM_OK;
    case LOOM_SCHEDULE_COSINE_DECAY:
        if (s->decay_steps <= 0)
            return loom_set_error(err, LOOM_ERR_ARGUMENT,
                                  "schedule.decay_steps must be > 0, got %ld",
                                  s->decay_steps);
        if (!isfinite(s->alpha))
            return loom_set_error(err, LOOM_ERR_ARGUMENT,
                                  "schedule.alpha must be finite, got %g",
                                  (double)s->alpha);
        if (s->warmup_steps < 0)
            return loom_set_error(err, LOOM_ERR_ARGUMENT,
                                  "schedule.warmup_steps must be >= 0, got %ld",
                                  s->warmup_steps);
        if (!finite_in(s->warmup_target, 0.0f, INFINITY))
            return loom_set_error(err, LOOM_ERR_ARGUMENT,
                                  "schedule.warmup_target must be finite and >= 0, "
                                  "got %g", (double)s->warmup_target);
        return LOOM_OK;
    case LOOM_SCHEDULE_PIECEWISE_CONSTANT:
        if (s->n_boundaries < 1 || s->n_boundaries > LOOM_MAX_BOUNDARIES)
            return loom_set_error(err, LOOM_ERR_ARGUMENT,
                                  "schedule.n_boundaries must be in [1, %d], got %d",
                                  LOOM_MAX_BOUNDARIES, s->n_boundaries);
        for (int i = 1; i < s->n_boundaries; i++)
            if (s->boundaries[i] <= s->boundaries[i - 1])
                return loom_set_error(err, LOOM_ERR_ARGUMENT,
                                      "schedule.boundaries must be strictly "
                                      "increasing, but boundaries[%d] = %ld follows %ld",
                                      i, s->boundaries[i], s->boundaries[i - 1]);
        for (int i = 0; i <= s->n_boundaries; i++)
            if (!finite_in(s->values[i], 0.0f, INFINITY))
                return loom_set_error(err, LOOM_ERR_ARGUMENT,
                                      "schedule.values[%d] must be finite and >= 0, "
                                      "got %g", i, (double)s->values[i]);
        return LOOM_OK;
    }
    return loom_set_error(err, LOOM_ERR_ARGUMENT, "unknown schedule.kind %d",
                          (int)s->kind);
}

loom_status loom_optimizer_check(const loom_optimizer *o, loom_error *err) {
    if (!o) return loom_set_error(err, LOOM_ERR_ARGUMENT, "NULL optimizer");
    if ((int)o->kind < LOOM_SGD || (int)o->kind > LOOM_ADAGRAD)
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "unknown optimizer kind %d", (int)o->kind);

    if (o->schedule.kind == LOOM_SCHEDULE_CONSTANT) {
        if (!finite_in(o->learning_rate, 0.0f, INFINITY))
            return loom_set_error(err, LOOM_ERR_ARGUMENT,
                                  "learning_rate must be finite and >= 0, got %g",
                                  (double)o->learning_rate);
    } else {
        loom_status s = check_schedule(&o->schedule, err);
        if (s != LOOM_OK) return s;
    }

    /* Fields a kind does not use are ignored: the constructors leave them 0. */
    switch (o->kind) {
    case LOOM_SGD:
    case LOOM_RMSPROP:
        if (!finite_in(o->momentum, 0.0f, 1.0f))
            return loom_set_error(err, LOOM_ERR_ARGUMENT,
                                  "momentum must be in [0, 1], got %g",
                                  (double)o->momentum);
        break;
    default: break;
    }
    if (o->kind == LOOM_ADAM || o->kind == LOOM_ADAMW) {
        if (!(isfinite(o->beta_1) && o->beta_1 >= 0.0f && o->beta_1 < 1.0f))
            return loom_set_error(err, LOOM_ERR_ARGUMENT,
                                  "beta_1 must be in [0, 1), got %g", (double)o->beta_1);
        if (!(isfinite(o->beta_2) && o->beta_2 >= 0.0f && o->beta_2 < 1.0f))
            return loom_set_error(err, LOOM_ERR_ARGUMENT,
                                  "beta_2 must be in [0, 1), got %g", (double)o->beta_2);
    }
    if (o->kind == LOOM_RMSPROP &&
        !(isfinite(o->rho) && o->rho >= 0.0f && o->rho < 1.0f))
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "rho must be in [0, 1), got %g",
                              (double)o->rho);
    if (o->kind != LOOM_SGD && !(isfinite(o->epsilon) && o->epsilon > 0.0f))
        return loom_set_error(err, LOOM_ERR_ARGUMENT,
                              "epsilon must be finite and > 0, got %g",
                              (double)o->epsilon);
    if (o->kind == LOOM_ADAGRAD && !finite_in(o->initial_accumulator_value, 0.0f, INFINITY))
        return loom_set_error(err, LOOM_ERR_ARGUMENT,
                              "initial_accumulator_value must be finite and >= 0, "
                              "got %g", (double)o->initial_accumulator_value);

    if (!finite_in(o->weight_decay, 0.0f, INFINITY))
        return loom_set_error(err, LOOM_ERR_ARGUMENT,
                              "weight_decay must be finite and >= 0, got %g",
                              (double)o->weight_decay);
    const struct { const char *name; float v; } clips[3] = {
        {"clipnorm", o->clipnorm}, {"global_clipnorm", o->global_clipnorm},
        {"clipvalue", o->clipvalue}};
    int n_clips = 0;
    for (int i = 0; i < 3; i++) {
        if (!finite_in(clips[i].v, 0.0f, INFINITY))
            return loom_set_error(err, LOOM_ERR_ARGUMENT,
                                  "%s must be finite and >= 0 (0 = none), got %g",
                                  clips[i].name, (double)clips[i].v);
        n_clips += clips[i].v > 0.0f;
    }
    /* Keras's BaseOptimizer refuses any two of the three together. */
    if (n_clips > 1)
        return loom_set_error(err, LOOM_ERR_ARGUMENT,
                              "only one of clipnorm, clipvalue and global_clipnorm can "
                              "be set; got clipnorm=%g, clipvalue=%g, global_clipnorm=%g",
                              (double)o->clipnorm, (double)o->clipvalue,
                              (double)o->global_clipnorm);
    return LOOM_OK;
}

/* ---------------------------------------------------------------- apply */

/* Keras writes `1 - self.beta_1` with the Python float the user typed (0.9), so the constant is
 * float32(1 - 0.9) = 0.1f; 1.0f - 0.9f would be 0.100000024f, 3 ulp away from Keras.
 * Recover that decimal: the shortest %g form that reads back to the same float. */
static float keras_one_minus(float b) {
    char buf[32];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)b);
        double d = strtod(buf, NULL);
        if ((float)d == b) return (float)(1.0 - d);
    }
    return (float)(1.0 - (double)b);
}

/* What one step of one tensor needs, computed once per apply. */
typedef struct step_consts {
    float lr, wd;
    float clip_mul, clip_div; /* clipnorm: g*clip_mul/clip_div; global: g*clip_mul (div 1) */
    float clipvalue;
    float alpha;              /* Adam: lr*sqrt(1-b2^t)/(1-b1^t) */
    float one_minus_b1, one_minus_b2, one_minus_rho;
} step_consts;

/* One tensor: clipping, decoupled weight decay, then the update rule — each a separate tight
 * loop over restrict pointers (a per-element switch would keep the compiler from vectorising). */
LOOM_VECTOR_CLONES static void apply_tensor(const loom_optimizer *o, const step_consts *k, float *restrict w, float *restrict grad,
                         float *restrict s0, float *restrict s1, float *restrict s2, size_t n) {
    const float lr = k->lr;
    /* 1. clipping (Keras's _clip_gradients) */
    if (k->clip_div != 1.0f || k->clip_mul != 1.0f)
        for (size_t i = 0; i < n; i++) grad[i] = grad[i] * k->clip_mul / k->clip_div;
    if (k->clipvalue > 0.0f) {
        const float c = k->clipvalue;
        for (size_t i = 0; i < n; i++) { /* comparisons, not fminf, so that a NaN stays NaN */
            float g = grad[i];
            g = g < -c ? -c : g;
            grad[i] = g > c ? c : g;
        }
    }
    /* 2. decoupled weight decay (Keras's _apply_weight_decay), at this step's lr */
    if (k->wd != 0.0f)
        for (size_t i = 0; i < n; i++) w[i] = w[i] - w[i] * k->wd * lr;

    /* 3. update_step */
    switch (o->kind) {
    case LOOM_SGD:
        if (!s0) {
            for (size_t i = 0; i < n; i++) w[i] -= grad[i] * lr;
        } else if (o->nesterov) {
            const float mu = o->momentum;
            for (size_t i = 0; i < n; i++) {
                float v = s0[i] * mu - grad[i] * lr;
                s0[i] = v;
                w[i] += v * mu - grad[i] * lr;
            }
        } else {
            const float mu = o->momentum;
            for (size_t i = 0; i < n; i++) {
                float v = s0[i] * mu - grad[i] * lr;
                s0[i] = v;
                w[i] += v;
            }
        }
        break;
    case LOOM_ADAM:
    case LOOM_ADAMW: {
        const float b1 = k->one_minus_b1, b2 = k->one_minus_b2, alpha = k->alpha, eps = o->epsilon;
        if (s2) { /* amsgrad: the running maximum of v replaces v */
            for (size_t i = 0; i < n; i++) {
                float g = grad[i];
                float m = s0[i] + (g - s0[i]) * b1;
                float v = s1[i] + (g * g - s1[i]) * b2;
                s0[i] = m;
                s1[i] = v;
                v = s2[i] > v ? s2[i] : v;
                s2[i] = v;
                w[i] -= (m * alpha) / (sqrtf(v) + eps);
            }
        } else {
            for (size_t i = 0; i < n; i++) {
                float g = grad[i];
                float m = s0[i] + (g - s0[i]) * b1;
                float v = s1[i] + (g * g - s1[i]) * b2;
                s0[i] = m;
                s1[i] = v;
                w[i] -= (m * alpha) / (sqrtf(v) + eps);
            }
        }
        break;
    }
    case LOOM_RMSPROP: {
        const float rho = o->rho, omr = k->one_minus_rho, eps = o->epsilon;
        for (size_t i = 0; i < n; i++) {
            float g = grad[i];
            float v = rho * s0[i] + omr * (g * g);
            s0[i] = v;
            float den;
            if (o->centered) {
                float a = rho * s2[i] + omr * g;
                s2[i] = a;
                den = v - a * a + eps;
            } else {
                den = v + eps;
            }
            float inc = (lr * g) / sqrtf(den); /* epsilon inside the root, as Keras */
            if (s1) {
                float mom = o->momentum * s1[i] + inc;
                s1[i] = mom;
                w[i] -= mom;
            } else {
                w[i] -= inc;
            }
        }
        break;
    }
    case LOOM_ADAGRAD: {
        const float acc0 = o->initial_accumulator_value, eps = o->epsilon;
        for (size_t i = 0; i < n; i++) {
            float g = grad[i];
            /* Keras starts the accumulator at initial_accumulator_value while our slots start at
             * 0. A positive start only grows, so an exact 0 can only mean "not started yet". */
            float acc = s0[i] == 0.0f ? acc0 : s0[i];
            acc += g * g;
            s0[i] = acc;
            w[i] -= (lr * g) / sqrtf(acc + eps);
        }
        break;
    }
    }
}

/* One tensor split by element range between loom's threads (src/parallel.c): every element is
 * updated by the same operations in any chunk, so the result does not depend on the thread count.
 * The norms clipping needs are computed serially before (one summation order). */

typedef struct tensor_job {
    const loom_optimizer *o;
    const step_consts *k;
    float *w, *grad, *s0, *s1, *s2;
} tensor_job;

static float *skip(float *p, size_t n) { return p ? p + n : NULL; }

static void tensor_range(size_t begin, size_t end, void *p) {
    const tensor_job *j = p;
    apply_tensor(j->o, j->k, j->w + begin, j->grad + begin, skip(j->s0, begin), skip(j->s1, begin),
                 skip(j->s2, begin), end - begin);
}

static double sum_squares(const float *g, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * (double)g[i];
    return s;
}

void loom_optimizer_apply(const loom_optimizer *o, float lr, long iterations, float *params,
                          float *grads, float *slots, size_t n_params, int n_tensors,
                          const size_t *offset, const size_t *size, const bool *active) {
    step_consts k = {0};
    k.lr = lr;
    k.wd = o->weight_decay;
    k.clip_mul = 1.0f;
    k.clip_div = 1.0f;
    k.clipvalue = o->clipvalue;

    if (o->kind == LOOM_ADAM || o->kind == LOOM_ADAMW) {
        float t = (float)(iterations + 1);
        float b1_power = powf(o->beta_1, t);
        float b2_power = powf(o->beta_2, t);
        k.alpha = lr * sqrtf(1.0f - b2_power) / (1.0f - b1_power);
        k.one_minus_b1 = keras_one_minus(o->beta_1);
        k.one_minus_b2 = keras_one_minus(o->beta_2);
    }
    if (o->kind == LOOM_RMSPROP) k.one_minus_rho = keras_one_minus(o->rho);

    /* global_clipnorm: one scale for all tensors that have a gradient, as Keras's
     * clip_by_global_norm: c * min(1/norm, 1/c), NaN when the norm is not finite. */
    if (o->clipnorm <= 0.0f && o->global_clipnorm > 0.0f) {
        double sq = 0.0;
        for (int t = 0; t < n_tensors; t++)
            if (active[t]) sq += sum_squares(grads + offset[t], size[t]);
        float norm = (float)sqrt(sq);
        float c = o->global_clipnorm;
        k.clip_mul = c * fminf(1.0f / norm, 1.0f / c) + (norm - norm);
    }
    if (o->clipnorm > 0.0f || o->global_clipnorm > 0.0f) k.clipvalue = 0.0f;

    /* One pass over each run of adjacent tensors that have a gradient (normally the whole flat
     * buffer, shared out on the threads as one range); tensor by tensor only for clipnorm, whose
     * factor is per tensor. */
    const int n_slots = loom_optimizer_slots(o);
    for (int t = 0; t < n_tensors; t++) {
        if (!active[t]) continue;
        size_t off = offset[t], n = size[t];
        while (!(o->clipnorm > 0.0f) && t + 1 < n_tensors && active[t + 1] && offset[t + 1] == off + n)
            n += size[++t];
        float *s[3] = {NULL, NULL, NULL};
        for (int j = 0; j < n_slots; j++) s[j] = slots + (size_t)j * n_params + off;
        /* RMSprop without momentum but centered keeps the average gradient in slot 1. */
        if (o->kind == LOOM_RMSPROP && o->centered && !(o->momentum > 0.0f)) {
            s[2] = s[1];
            s[1] = NULL;
        }
        if (o->clipnorm > 0.0f) {
            /* Keras's _clip_by_norm: g*c / max(|g|, c), per tensor */
            k.clip_mul = o->clipnorm;
            k.clip_div = fmaxf((float)sqrt(sum_squares(grads + off, n)), o->clipnorm);
        }
        tensor_job j = {o, &k, params + off, grads + off, s[0], s[1], s[2]};
        loom_parallel_for(n, LOOM_PARALLEL_MIN_FLOATS, tensor_range, &j);
    }
}
