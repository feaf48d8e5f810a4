/* schedule.c — learning-rate schedules as keras.optimizers.schedules computes them: in float32
 * (the dtype of initial_learning_rate), from the number of optimizer steps already taken. */
#include "base/base.h"

#include <math.h>

loom_schedule loom_exponential_decay(float initial_lr, long decay_steps, float decay_rate,
                                     int staircase) {
    loom_schedule s = {0};
    s.kind = LOOM_SCHEDULE_EXPONENTIAL_DECAY;
    s.initial_learning_rate = initial_lr;
    s.decay_steps = decay_steps;
    s.decay_rate = decay_rate;
    s.staircase = staircase;
    return s;
}

loom_schedule loom_cosine_decay(float initial_lr, long decay_steps, float alpha) {
    loom_schedule s = {0};
    s.kind = LOOM_SCHEDULE_COSINE_DECAY;
    s.initial_learning_rate = initial_lr;
    s.decay_steps = decay_steps;
    s.alpha = alpha;
    return s;
}

loom_schedule loom_piecewise_constant(int n, const long *boundaries, const float *values) {
    loom_schedule s = {0};
    s.kind = LOOM_SCHEDULE_CONSTANT;
    if (values) s.initial_learning_rate = values[0];
    if (n < 1 || n > LOOM_MAX_BOUNDARIES || !boundaries || !values) return s;
    s.kind = LOOM_SCHEDULE_PIECEWISE_CONSTANT;
    s.n_boundaries = n;
    for (int i = 0; i < n; i++) s.boundaries[i] = boundaries[i];
    for (int i = 0; i <= n; i++) s.values[i] = values[i];
    return s;
}

/* math.pi cast to float32, as Keras does (M_PI is not ISO C). */
#define PI_F 3.14159265358979323846f

/* Keras CosineDecay._decay_function: from `from_lr` down to from_lr*alpha over decay_steps. */
static float cosine_decayed(float step, float decay_steps, float from_lr, float alpha) {
    float completed = step / decay_steps;
    float cosine = 0.5f * (1.0f + cosf(PI_F * completed));
    float decayed = (1.0f - alpha) * cosine + alpha;
    return from_lr * decayed;
}

float loom_schedule_value(const loom_schedule *s, long step) {
    if (!s) return NAN;
    const float lr0 = s->initial_learning_rate;
    switch (s->kind) {
    case LOOM_SCHEDULE_CONSTANT: return lr0;

    case LOOM_SCHEDULE_EXPONENTIAL_DECAY: {
        if (s->decay_steps <= 0) return lr0; /* refused by loom_optimizer_check */
        float p = (float)step / (float)s->decay_steps;
        if (s->staircase) p = floorf(p);
        return lr0 * powf(s->decay_rate, p);
    }

    case LOOM_SCHEDULE_COSINE_DECAY: {
        if (s->decay_steps <= 0) return lr0;
        float decay_steps = (float)s->decay_steps;
        float t = (float)step;
        /* Keras's warmup_target=None cannot be written in a float field: a zero target with
         * no warm-up steps stands for it. Then the decay starts from initial_learning_rate. */
        if (s->warmup_steps <= 0 && s->warmup_target == 0.0f)
            return cosine_decayed(fminf(t, decay_steps), decay_steps, lr0, s->alpha);
        /* With a target, decay_steps counts after the warm-up: the rate climbs linearly from
         * initial_learning_rate to warmup_target over warmup_steps, then decays from there. */
        float warmup_steps = (float)s->warmup_steps;
        t = fminf(t, decay_steps + warmup_steps);
        if (t < warmup_steps)
            return (s->warmup_target - lr0) * (t / warmup_steps) + lr0;
        return cosine_decayed(t - warmup_steps, decay_steps, s->warmup_target, s->alpha);
    }

    case LOOM_SCHEDULE_PIECEWISE_CONSTANT: {
        int n = s->n_boundaries;
        if (n < 1 || n > LOOM_MAX_BOUNDARIES) return lr0;
        /* values[i] while step <= boundaries[i]; the last value after the last boundary */
        for (int i = 0; i < n; i++)
            if (step <= s->boundaries[i]) return s->values[i];
        return s->values[n];
    }
    }
    return lr0;
}
