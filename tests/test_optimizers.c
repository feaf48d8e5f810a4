/* test_optimizers.c — optimizers, clipping, weight decay and learning-rate schedules against the
 * test vectors of spec section 8 (Keras 3's own unit tests) and hand computations in double. */
#include "check.h"
#include "graph/graph.h"
#include "ops/activations.h"
#include "ops/losses.h"
#include "ops/metrics.h"
#include "ops/init.h"
#include "optim/optim.h"
#include "kernels/gemm.h"

#include <math.h>
#include <string.h>

#define PI 3.14159265358979323846

/* One apply over a single active tensor of n floats; slots must hold 3*n floats. */
static void step1(const loom_optimizer *o, float lr, long it, float *w, const float *g0,
                  float *slots, size_t n) {
    float g[16];
    memcpy(g, g0, n * sizeof *g);
    size_t off = 0, size = n;
    bool active = true;
    loom_optimizer_apply(o, lr, it, w, g, slots, n, 1, &off, &size, &active);
}

/* Runs `steps` applies of a constant gradient on a scalar, recording w after each. */
static void run_scalar(const loom_optimizer *o, float lr, float w0, float g, int steps,
                       float *out) {
    float w = w0, slots[3] = {0, 0, 0};
    for (int t = 0; t < steps; t++) {
        step1(o, lr, t, &w, &g, slots, 1);
        out[t] = w;
    }
}

static void test_defaults(void) {
    loom_optimizer o = loom_sgd(0.01f, 0.0f, 0);
    CHECK(o.kind == LOOM_SGD && o.learning_rate == 0.01f && o.momentum == 0.0f && !o.nesterov);
    CHECK(o.schedule.kind == LOOM_SCHEDULE_CONSTANT && o.weight_decay == 0.0f);
    CHECK(loom_optimizer_slots(&o) == 0);
    o = loom_sgd(0.01f, 0.9f, 1);
    CHECK(loom_optimizer_slots(&o) == 1);

    o = loom_adam(0.001f);
    CHECK(o.kind == LOOM_ADAM && o.beta_1 == 0.9f && o.beta_2 == 0.999f && o.epsilon == 1e-7f);
    CHECK(!o.amsgrad && o.weight_decay == 0.0f && loom_optimizer_slots(&o) == 2);
    o.amsgrad = 1;
    CHECK(loom_optimizer_slots(&o) == 3);

    o = loom_adamw(0.001f, 0.004f);
    CHECK(o.kind == LOOM_ADAMW && o.weight_decay == 0.004f && o.beta_2 == 0.999f);

    o = loom_rmsprop(0.001f);
    CHECK(o.kind == LOOM_RMSPROP && o.rho == 0.9f && o.momentum == 0.0f && o.epsilon == 1e-7f);
    CHECK(!o.centered && loom_optimizer_slots(&o) == 1);
    o.centered = 1;
    CHECK(loom_optimizer_slots(&o) == 2);
    o.momentum = 0.5f;
    CHECK(loom_optimizer_slots(&o) == 3);

    o = loom_adagrad(0.001f);
    CHECK(o.kind == LOOM_ADAGRAD && o.initial_accumulator_value == 0.1f && o.epsilon == 1e-7f);
    CHECK(loom_optimizer_slots(&o) == 1);

    loom_error err = {0};
    loom_optimizer all[5] = {loom_sgd(0.01f, 0.0f, 0), loom_adam(0.001f),
                             loom_adamw(0.001f, 0.004f), loom_rmsprop(0.001f),
                             loom_adagrad(0.001f)};
    for (int i = 0; i < 5; i++) CHECK_STATUS(loom_optimizer_check(&all[i], &err), LOOM_OK);
}

/* Spec 8, rows 1-4: w=[1,2,3,4], g=[1,6,7,2], one step at lr 0.5. */
static void test_one_step_vectors(void) {
    const float w0[4] = {1, 2, 3, 4}, g[4] = {1, 6, 7, 2};
    float w[4], slots[12];

    loom_optimizer o = loom_sgd(0.5f, 0.0f, 0);
    memcpy(w, w0, sizeof w);
    memset(slots, 0, sizeof slots);
    step1(&o, 0.5f, 0, w, g, slots, 4);
    const float sgd[4] = {0.5f, -1.0f, -0.5f, 3.0f};
    for (int i = 0; i < 4; i++) CHECK(w[i] == sgd[i]);

    o = loom_adam(0.5f);
    memcpy(w, w0, sizeof w);
    memset(slots, 0, sizeof slots);
    step1(&o, 0.5f, 0, w, g, slots, 4);
    /* The spec's values are exact arithmetic. Keras's float32 rounds 1 - 0.999 to 0.0009999871
     * (about 6e-6 relative in alpha), so compare with the spec at 1e-5 and with a numpy float32
     * replay of Keras's update_step at 1e-7. */
    const float adam[4] = {0.5000016f, 1.5000003f, 2.5000002f, 3.5000008f};
    const float adam_f32[4] = {0.500004947f, 1.50000358f, 2.50000358f, 3.50000405f};
    for (int i = 0; i < 4; i++) CHECK_CLOSE(w[i], adam[i], 0, 1e-5);
    for (int i = 0; i < 4; i++) CHECK_CLOSE(w[i], adam_f32[i], 0, 1e-7);

    o = loom_adamw(0.5f, 0.004f);
    memcpy(w, w0, sizeof w);
    memset(slots, 0, sizeof slots);
    step1(&o, 0.5f, 0, w, g, slots, 4);
    /* w*(1 - 0.004*0.5), then Adam's step of ~0.5 */
    const float adamw[4] = {0.4980f, 1.4960f, 2.4940f, 3.4920f};
    for (int i = 0; i < 4; i++) CHECK_CLOSE(w[i], adamw[i], 1e-5, 0);

    o = loom_rmsprop(0.5f);
    memcpy(w, w0, sizeof w);
    memset(slots, 0, sizeof slots);
    step1(&o, 0.5f, 0, w, g, slots, 4);
    const float rms[4] = {-0.5811380f, 0.4188612f, 1.4188612f, 2.4188614f};
    const float rms_f32[4] = {-0.581138134f, 0.418861151f, 1.41886127f, 2.41886139f};
    for (int i = 0; i < 4; i++) CHECK_CLOSE(w[i], rms[i], 0, 1e-6);
    for (int i = 0; i < 4; i++) CHECK_CLOSE(w[i], rms_f32[i], 0, 1e-7);
}

/* Spec 8, row 5: decoupled weight decay alone, w=2, g=0, lr 1, wd 0.004, three applies. */
static void test_weight_decay(void) {
    loom_optimizer opts[3] = {loom_sgd(1.0f, 0.0f, 0), loom_adamw(1.0f, 0.004f),
                              loom_rmsprop(1.0f)};
    opts[0].weight_decay = 0.004f;
    opts[2].weight_decay = 0.004f;
    for (int k = 0; k < 3; k++) {
        float out[3];
        run_scalar(&opts[k], 1.0f, 2.0f, 0.0f, 3, out);
        CHECK_CLOSE(out[2], 1.9760959, 0, 1e-7);
        CHECK_CLOSE(out[0], 2.0 * 0.996, 0, 1e-7);
    }
    /* The decay uses this step's lr (a schedule's value), not the base rate. */
    loom_optimizer o = loom_sgd(1.0f, 0.0f, 0);
    o.weight_decay = 0.1f;
    float w = 2.0f, g = 0.0f, slots[3] = {0};
    step1(&o, 0.5f, 0, &w, &g, slots, 1);
    CHECK_CLOSE(w, 2.0 - 2.0 * 0.1 * 0.5, 0, 1e-7);
}

/* Spec 8, row 6: w=1, g=0.5 three times, lr 0.1. */
static void test_sgd_momentum(void) {
    float out[3];
    loom_optimizer o = loom_sgd(0.1f, 0.0f, 0);
    run_scalar(&o, 0.1f, 1.0f, 0.5f, 3, out);
    const float plain[3] = {0.95f, 0.90f, 0.85f};
    for (int i = 0; i < 3; i++) CHECK_CLOSE(out[i], plain[i], 0, 1e-6);

    o = loom_sgd(0.1f, 0.9f, 0);
    run_scalar(&o, 0.1f, 1.0f, 0.5f, 3, out);
    const float mom[3] = {0.95f, 0.855f, 0.7195f};
    for (int i = 0; i < 3; i++) CHECK_CLOSE(out[i], mom[i], 0, 1e-6);

    o = loom_sgd(0.1f, 0.9f, 1);
    run_scalar(&o, 0.1f, 1.0f, 0.5f, 3, out);
    const float nes[3] = {0.905f, 0.7695f, 0.59755f};
    for (int i = 0; i < 3; i++) CHECK_CLOSE(out[i], nes[i], 0, 1e-6);
}

/* Spec 8, rows 7-8: Adam with defaults; Keras's epsilon-hat placement. */
static void test_adam(void) {
    float out[3];
    loom_optimizer o = loom_adam(0.001f);
    run_scalar(&o, 0.001f, 1.0f, 0.5f, 3, out);
    const double adam[3] = {0.9990000063, 0.9980000108, 0.9970000145};
    for (int i = 0; i < 3; i++) CHECK_CLOSE(out[i], adam[i], 0, 1e-7);

    run_scalar(&o, 0.001f, 0.0f, 1e-6f, 1, out);
    CHECK_CLOSE(out[0], -2.4025307e-4, 0, 1e-5); /* exact arithmetic */
    CHECK_CLOSE(out[0], -2.40251451e-4, 0, 1e-7); /* Keras's float32 replayed in numpy */
    /* PyTorch's placement of epsilon would give -9.0909e-4: make sure we are not there. */
    CHECK(fabs(out[0] + 9.0909e-4) > 1e-4);
}

/* amsgrad against a hand computation in double: g falls below sqrt(v), so v decays and vhat
 * keeps the first v. */
static void test_amsgrad(void) {
    loom_optimizer o = loom_adam(0.01f);
    o.amsgrad = 1;
    const float gs[3] = {1.0f, 0.01f, 0.01f};
    float w = 1.0f, slots[3] = {0, 0, 0};
    double m = 0, v = 0, vhat = 0, wd = 1.0;
    for (int t = 0; t < 3; t++) {
        step1(&o, 0.01f, t, &w, &gs[t], slots, 1);
        double g = gs[t];
        m += (g - m) * 0.1;
        v += (g * g - v) * 0.001;
        vhat = fmax(vhat, v);
        double alpha = 0.01 * sqrt(1 - pow(0.999, t + 1)) / (1 - pow(0.9, t + 1));
        wd -= alpha * m / (sqrt(vhat) + 1e-7);
        CHECK_CLOSE(w, wd, 0, 1e-6);
        CHECK_CLOSE(slots[2], vhat, 0, 1e-5); /* slot 2 holds vhat */
    }
    CHECK(slots[2] > slots[1]); /* vhat stayed above the decaying v */

    /* Without amsgrad the same gradients give a different (larger) step. */
    loom_optimizer plain = loom_adam(0.01f);
    float w2 = 1.0f, s2[3] = {0, 0, 0};
    for (int t = 0; t < 3; t++) step1(&plain, 0.01f, t, &w2, &gs[t], s2, 1);
    CHECK(w2 < w);
}

/* Spec 8, row 9, and the centered variant with momentum by hand. */
static void test_rmsprop(void) {
    float out[3];
    loom_optimizer o = loom_rmsprop(0.001f);
    run_scalar(&o, 0.001f, 1.0f, 0.5f, 3, out);
    const double rms[3] = {0.99683773, 0.99454357, 0.99262263};
    for (int i = 0; i < 3; i++) CHECK_CLOSE(out[i], rms[i], 0, 1e-7);

    o.centered = 1;
    o.momentum = 0.5f;
    const float gs[4] = {0.5f, -0.2f, 0.3f, 0.3f};
    float w = 1.0f, slots[3] = {0, 0, 0};
    double v = 0, a = 0, mom = 0, wd = 1.0;
    for (int t = 0; t < 4; t++) {
        step1(&o, 0.01f, t, &w, &gs[t], slots, 1);
        double g = gs[t];
        v = 0.9 * v + 0.1 * g * g;
        a = 0.9 * a + 0.1 * g;
        double inc = 0.01 * g / sqrt(v - a * a + 1e-7);
        mom = 0.5 * mom + inc;
        wd -= mom;
        CHECK_CLOSE(w, wd, 0, 2e-6);
    }
    CHECK_CLOSE(slots[0], v, 0, 1e-5);   /* velocity */
    CHECK_CLOSE(slots[1], mom, 0, 1e-5); /* momentum */
    CHECK_CLOSE(slots[2], a, 0, 1e-5);   /* average gradient */

    /* centered without momentum: the average gradient lives in slot 1 */
    o = loom_rmsprop(0.01f);
    o.centered = 1;
    w = 1.0f;
    memset(slots, 0, sizeof slots);
    v = a = 0;
    wd = 1.0;
    for (int t = 0; t < 4; t++) {
        step1(&o, 0.01f, t, &w, &gs[t], slots, 1);
        double g = gs[t];
        v = 0.9 * v + 0.1 * g * g;
        a = 0.9 * a + 0.1 * g;
        wd -= 0.01 * g / sqrt(v - a * a + 1e-7);
        CHECK_CLOSE(w, wd, 0, 2e-6);
    }
    CHECK_CLOSE(slots[1], a, 0, 1e-5);
}

/* Adagrad: acc starts at 0.1; acc += g^2; w -= lr*g/sqrt(acc + eps). */
static void test_adagrad(void) {
    loom_optimizer o = loom_adagrad(0.1f);
    const float gs[3] = {0.5f, -1.0f, 0.25f};
    float w[2] = {1.0f, -2.0f}, slots[6] = {0};
    double acc = 0.1, wd = 1.0;
    for (int t = 0; t < 3; t++) {
        float g2[2] = {gs[t], 0.0f};
        step1(&o, 0.1f, t, w, g2, slots, 2);
        acc += (double)gs[t] * gs[t];
        wd -= 0.1 * gs[t] / sqrt(acc + 1e-7);
        CHECK_CLOSE(w[0], wd, 0, 1e-6);
        CHECK_CLOSE(slots[0], acc, 0, 1e-6);
    }
    /* first step: 1 - 0.05/sqrt(0.35) */
    /* a zero gradient leaves w alone, but the accumulator still starts at 0.1 */
    CHECK(w[1] == -2.0f);
    CHECK_CLOSE(slots[1], 0.1, 0, 1e-7);
    loom_optimizer o2 = loom_adagrad(0.1f);
    float w1 = 1.0f, s1[3] = {0}, g1 = 0.5f;
    step1(&o2, 0.1f, 0, &w1, &g1, s1, 1);
    CHECK_CLOSE(w1, 1.0 - 0.05 / sqrt(0.35 + 1e-7), 0, 1e-7);
}

/* Three tensors, the middle one inactive; each clipping mode; the inactive one is untouched. */
static void test_clipping(void) {
    const size_t off[3] = {0, 2, 5}, size[3] = {2, 3, 1};
    const bool active[3] = {true, false, true};
    const float g0[6] = {3, 4, 100, -100, 1000, 12};
    const float w0[6] = {1, 1, 7, 8, 9, 1};

    /* clipnorm per tensor: [3,4] has norm 5 -> [0.6, 0.8]; [12] -> [1]. */
    loom_optimizer o = loom_sgd(1.0f, 0.0f, 0);
    o.clipnorm = 1.0f;
    float w[6], g[6];
    memcpy(w, w0, sizeof w);
    memcpy(g, g0, sizeof g);
    loom_optimizer_apply(&o, 1.0f, 0, w, g, NULL, 6, 3, off, size, active);
    CHECK_CLOSE(g[0], 0.6, 0, 1e-6);
    CHECK_CLOSE(g[1], 0.8, 0, 1e-6);
    CHECK_CLOSE(g[5], 1.0, 0, 1e-6);
    CHECK_CLOSE(w[0], 0.4, 0, 1e-6);
    CHECK_CLOSE(w[1], 0.2, 0, 1e-6);
    CHECK_CLOSE(w[5], 0.0, 1e-6, 0);
    CHECK(memcmp(g + 2, g0 + 2, 3 * sizeof *g) == 0);
    CHECK(memcmp(w + 2, w0 + 2, 3 * sizeof *w) == 0);

    /* clipnorm larger than the norm: g*c/c leaves the gradient as it is */
    o.clipnorm = 100.0f;
    memcpy(w, w0, sizeof w);
    memcpy(g, g0, sizeof g);
    loom_optimizer_apply(&o, 1.0f, 0, w, g, NULL, 6, 3, off, size, active);
    CHECK_CLOSE(g[0], 3.0, 0, 1e-7);
    CHECK_CLOSE(g[5], 12.0, 0, 1e-7);

    /* global_clipnorm over the active tensors only: sqrt(9+16+144) = 13 -> scale 1/13. */
    o.clipnorm = 0.0f;
    o.global_clipnorm = 1.0f;
    memcpy(w, w0, sizeof w);
    memcpy(g, g0, sizeof g);
    loom_optimizer_apply(&o, 1.0f, 0, w, g, NULL, 6, 3, off, size, active);
    CHECK_CLOSE(g[0], 3.0 / 13, 0, 1e-6);
    CHECK_CLOSE(g[1], 4.0 / 13, 0, 1e-6);
    CHECK_CLOSE(g[5], 12.0 / 13, 0, 1e-6);
    CHECK_CLOSE(w[5], 1.0 / 13, 0, 1e-5);
    CHECK(memcmp(w + 2, w0 + 2, 3 * sizeof *w) == 0);
    /* under the threshold: unchanged */
    o.global_clipnorm = 20.0f;
    memcpy(g, g0, sizeof g);
    loom_optimizer_apply(&o, 1.0f, 0, w, g, NULL, 6, 3, off, size, active);
    CHECK_CLOSE(g[1], 4.0, 0, 1e-6);
    /* a non-finite norm makes every gradient NaN, as Keras's clip_by_global_norm */
    o.global_clipnorm = 1.0f;
    memcpy(g, g0, sizeof g);
    g[5] = INFINITY;
    loom_optimizer_apply(&o, 1.0f, 0, w, g, NULL, 6, 3, off, size, active);
    CHECK(isnan(g[0]) && isnan(g[5]));

    /* clipvalue element-wise */
    o.global_clipnorm = 0.0f;
    o.clipvalue = 3.5f;
    const float gv[6] = {-5, 0.3f, 100, -100, 1000, 12};
    memcpy(w, w0, sizeof w);
    memcpy(g, gv, sizeof g);
    loom_optimizer_apply(&o, 1.0f, 0, w, g, NULL, 6, 3, off, size, active);
    CHECK(g[0] == -3.5f && g[1] == 0.3f && g[5] == 3.5f);
    CHECK(w[0] == 4.5f && w[5] == -2.5f);
    CHECK(memcmp(g + 2, gv + 2, 3 * sizeof *g) == 0);
}

/* An inactive tensor is skipped entirely: no decay, no slot change, bit for bit. */
static void test_inactive_untouched(void) {
    loom_optimizer kinds[5] = {loom_sgd(0.1f, 0.9f, 1), loom_adam(0.1f), loom_adamw(0.1f, 0.1f),
                               loom_rmsprop(0.1f), loom_adagrad(0.1f)};
    kinds[3].centered = 1;
    kinds[3].momentum = 0.5f;
    kinds[1].amsgrad = 1;
    for (int k = 0; k < 5; k++) {
        loom_optimizer o = kinds[k];
        o.weight_decay = 0.3f;
        const size_t off[2] = {0, 3}, size[2] = {3, 2};
        const bool active[2] = {false, true};
        float w[5] = {1.5f, -2.5f, 3.25f, 4, 5}, g[5] = {1, 2, 3, 4, 5};
        float slots[15];
        for (int i = 0; i < 15; i++) slots[i] = 0.01f * (float)(i + 1);
        float w_before[5], g_before[5], s_before[15];
        memcpy(w_before, w, sizeof w);
        memcpy(g_before, g, sizeof g);
        memcpy(s_before, slots, sizeof slots);
        loom_optimizer_apply(&o, 0.1f, 3, w, g, slots, 5, 2, off, size, active);
        CHECK(memcmp(w, w_before, 3 * sizeof *w) == 0);
        CHECK(memcmp(g, g_before, 3 * sizeof *g) == 0);
        int n_slots = loom_optimizer_slots(&o);
        for (int j = 0; j < 3; j++) {
            CHECK(memcmp(slots + j * 5, s_before + j * 5, 3 * sizeof *slots) == 0);
            /* slots beyond n_slots are not ours: never written */
            if (j >= n_slots) CHECK(memcmp(slots + j * 5, s_before + j * 5, 5 * sizeof *slots) == 0);
        }
        CHECK(w[3] != w_before[3] && w[4] != w_before[4]); /* the active one did move */
    }
}

/* Weight decay happens after clipping and before the update, on every optimizer. */
static void test_order(void) {
    loom_optimizer o = loom_adam(0.1f);
    o.weight_decay = 0.5f;
    o.clipvalue = 0.01f;
    float w = 2.0f, g = 10.0f, slots[3] = {0};
    step1(&o, 0.1f, 0, &w, &g, slots, 1);
    /* w = 2 - 2*0.5*0.1 = 1.9; Adam with clipped g 0.01: step ~ lr */
    double m = 0.1 * 0.01, v = 0.001 * 0.0001;
    double alpha = 0.1 * sqrt(0.001) / 0.1;
    CHECK_CLOSE(w, 1.9 - alpha * m / (sqrt(v) + 1e-7), 0, 1e-6);
}

static void test_check_errors(void) {
    loom_error err = {0};
    loom_optimizer o;
#define EXPECT_BAD(field)                                                                  \
    do {                                                                                   \
        err.msg[0] = '\0';                                                                 \
        CHECK_STATUS(loom_optimizer_check(&o, &err), LOOM_ERR_ARGUMENT);                   \
        CHECK(strstr(err.msg, field) != NULL);                                             \
    } while (0)

    o = loom_sgd(-0.1f, 0.0f, 0);
    EXPECT_BAD("learning_rate");
    o = loom_sgd(NAN, 0.0f, 0);
    EXPECT_BAD("learning_rate");
    o = loom_sgd(0.1f, 1.5f, 0);
    EXPECT_BAD("momentum");
    o = loom_sgd(0.1f, -0.1f, 0);
    EXPECT_BAD("momentum");
    o = loom_sgd(0.1f, 1.0f, 0); /* Keras allows momentum 1 */
    CHECK_STATUS(loom_optimizer_check(&o, &err), LOOM_OK);
    o = loom_adam(0.1f);
    o.beta_1 = 1.0f;
    EXPECT_BAD("beta_1");
    o = loom_adamw(0.1f, 0.004f);
    o.beta_2 = -0.5f;
    EXPECT_BAD("beta_2");
    o = loom_adam(0.1f);
    o.epsilon = 0.0f;
    EXPECT_BAD("epsilon");
    o = loom_rmsprop(0.1f);
    o.rho = 1.0f;
    EXPECT_BAD("rho");
    o = loom_rmsprop(0.1f);
    o.momentum = 2.0f;
    EXPECT_BAD("momentum");
    o = loom_adagrad(0.1f);
    o.initial_accumulator_value = -1.0f;
    EXPECT_BAD("initial_accumulator_value");
    o = loom_adamw(0.1f, -0.004f);
    EXPECT_BAD("weight_decay");
    o = loom_sgd(0.1f, 0.0f, 0);
    o.clipnorm = -1.0f;
    EXPECT_BAD("clipnorm");
    o = loom_sgd(0.1f, 0.0f, 0);
    o.clipvalue = INFINITY;
    EXPECT_BAD("clipvalue");
    o = loom_sgd(0.1f, 0.0f, 0);
    o.clipnorm = 1.0f;
    o.clipvalue = 1.0f;
    EXPECT_BAD("only one of");
    o = loom_sgd(0.1f, 0.0f, 0);
    o.global_clipnorm = 1.0f;
    o.clipnorm = 2.0f;
    EXPECT_BAD("global_clipnorm");
    o = loom_sgd(0.1f, 0.0f, 0);
    o.kind = (loom_optimizer_kind)42;
    EXPECT_BAD("kind");
    /* SGD ignores Adam's fields (0 from the constructor) */
    o = loom_sgd(0.1f, 0.0f, 0);
    o.global_clipnorm = 1.0f;
    CHECK_STATUS(loom_optimizer_check(&o, &err), LOOM_OK);

    /* schedules: learning_rate is then unused */
    o = loom_sgd(-1.0f, 0.0f, 0);
    o.schedule = loom_exponential_decay(0.1f, 0, 0.5f, 0);
    EXPECT_BAD("decay_steps");
    o.schedule = loom_exponential_decay(0.1f, 10, 0.5f, 0);
    CHECK_STATUS(loom_optimizer_check(&o, &err), LOOM_OK);
    o.schedule = loom_cosine_decay(-0.1f, 10, 0.0f);
    EXPECT_BAD("initial_learning_rate");
    o.schedule = loom_cosine_decay(0.1f, 10, 0.0f);
    o.schedule.warmup_steps = -1;
    EXPECT_BAD("warmup_steps");
    long b[2] = {10, 5};
    float v[3] = {1, 0.5f, 0.1f};
    o.schedule = loom_piecewise_constant(2, b, v);
    EXPECT_BAD("boundaries");
    b[1] = 20;
    v[2] = NAN;
    o.schedule = loom_piecewise_constant(2, b, v);
    EXPECT_BAD("values[2]");
    o.schedule.kind = (loom_schedule_kind)9;
    EXPECT_BAD("schedule.kind");
    CHECK_STATUS(loom_optimizer_check(NULL, &err), LOOM_ERR_ARGUMENT);
#undef EXPECT_BAD
}

static void test_schedules(void) {
    loom_schedule s = {0};
    s.kind = LOOM_SCHEDULE_CONSTANT;
    s.initial_learning_rate = 0.25f;
    CHECK(loom_schedule_value(&s, 0) == 0.25f && loom_schedule_value(&s, 1000) == 0.25f);

    /* ExponentialDecay: lr0 * rate^(step/decay_steps) */
    s = loom_exponential_decay(0.1f, 10, 0.5f, 0);
    const long steps[5] = {0, 5, 10, 25, 1000};
    for (int i = 0; i < 5; i++)
        CHECK_CLOSE(loom_schedule_value(&s, steps[i]), 0.1 * pow(0.5, steps[i] / 10.0), 1e-30,
                    1e-6);
    s = loom_exponential_decay(0.1f, 10, 0.5f, 1);
    CHECK_CLOSE(loom_schedule_value(&s, 0), 0.1, 0, 1e-7);
    CHECK_CLOSE(loom_schedule_value(&s, 9), 0.1, 0, 1e-7);
    CHECK_CLOSE(loom_schedule_value(&s, 10), 0.05, 0, 1e-7);
    CHECK_CLOSE(loom_schedule_value(&s, 19), 0.05, 0, 1e-7);
    CHECK_CLOSE(loom_schedule_value(&s, 25), 0.025, 0, 1e-7);

    /* CosineDecay without warm-up, alpha 0.1 */
    s = loom_cosine_decay(1.0f, 100, 0.1f);
    for (long t = 0; t <= 250; t += 25) {
        double tc = t < 100 ? t : 100;
        double want = 0.9 * 0.5 * (1 + cos(PI * tc / 100)) + 0.1;
        CHECK_CLOSE(loom_schedule_value(&s, t), want, 1e-7, 1e-6);
    }
    CHECK_CLOSE(loom_schedule_value(&s, 50), 0.55, 0, 1e-6);
    CHECK_CLOSE(loom_schedule_value(&s, 100), 0.1, 0, 1e-6);

    /* with warm-up: 0 -> 1 over 10 steps, then decay_steps 100 counted after the warm-up */
    s = loom_cosine_decay(0.0f, 100, 0.0f);
    s.warmup_steps = 10;
    s.warmup_target = 1.0f;
    CHECK_CLOSE(loom_schedule_value(&s, 0), 0.0, 1e-7, 0);
    CHECK_CLOSE(loom_schedule_value(&s, 5), 0.5, 0, 1e-6);
    CHECK_CLOSE(loom_schedule_value(&s, 9), 0.9, 0, 1e-6);
    CHECK_CLOSE(loom_schedule_value(&s, 10), 1.0, 0, 1e-6);
    CHECK_CLOSE(loom_schedule_value(&s, 60), 0.5, 0, 1e-6);
    CHECK_CLOSE(loom_schedule_value(&s, 35), 0.5 * (1 + cos(PI * 0.25)), 0, 1e-6);
    CHECK_CLOSE(loom_schedule_value(&s, 110), 0.0, 1e-7, 0);
    CHECK_CLOSE(loom_schedule_value(&s, 5000), 0.0, 1e-7, 0);
    /* warm-up from a nonzero start, alpha 0.2 */
    s = loom_cosine_decay(0.1f, 50, 0.2f);
    s.warmup_steps = 4;
    s.warmup_target = 0.5f;
    CHECK_CLOSE(loom_schedule_value(&s, 1), 0.1 + 0.4 * 0.25, 0, 1e-6);
    CHECK_CLOSE(loom_schedule_value(&s, 54), 0.5 * 0.2, 0, 1e-6);
    CHECK_CLOSE(loom_schedule_value(&s, 29), 0.5 * (0.8 * 0.5 * (1 + cos(PI * 0.5)) + 0.2), 0,
                1e-6);

    /* PiecewiseConstantDecay: values[0] up to and including boundaries[0], ... */
    const long b[2] = {10, 20};
    const float v[3] = {1.0f, 0.5f, 0.1f};
    s = loom_piecewise_constant(2, b, v);
    CHECK(s.kind == LOOM_SCHEDULE_PIECEWISE_CONSTANT);
    CHECK(loom_schedule_value(&s, 0) == 1.0f);
    CHECK(loom_schedule_value(&s, 10) == 1.0f);
    CHECK(loom_schedule_value(&s, 11) == 0.5f);
    CHECK(loom_schedule_value(&s, 20) == 0.5f);
    CHECK(loom_schedule_value(&s, 21) == 0.1f);
    CHECK(loom_schedule_value(&s, 100000) == 0.1f);
    /* out-of-range n: a CONSTANT schedule of values[0] */
    s = loom_piecewise_constant(0, b, v);
    CHECK(s.kind == LOOM_SCHEDULE_CONSTANT && loom_schedule_value(&s, 50) == 1.0f);
    s = loom_piecewise_constant(LOOM_MAX_BOUNDARIES + 1, b, v);
    CHECK(s.kind == LOOM_SCHEDULE_CONSTANT && loom_schedule_value(&s, 50) == 1.0f);
}

/* A schedule drives Adam over several steps, as the engine will: lr from iterations. */
static void test_schedule_with_optimizer(void) {
    loom_optimizer o = loom_sgd(0.0f, 0.0f, 0);
    o.schedule = loom_exponential_decay(0.1f, 1, 0.5f, 0);
    float w = 0.0f, g = 1.0f, slots[3] = {0};
    for (long t = 0; t < 4; t++) step1(&o, loom_schedule_value(&o.schedule, t), t, &w, &g, slots, 1);
    CHECK_CLOSE(w, -(0.1 + 0.05 + 0.025 + 0.0125), 0, 1e-6);
}

int main(void) {
    test_defaults();
    test_one_step_vectors();
    test_weight_decay();
    test_sgd_momentum();
    test_adam();
    test_amsgrad();
    test_rmsprop();
    test_adagrad();
    test_clipping();
    test_inactive_untouched();
    test_order();
    test_check_errors();
    test_schedules();
    test_schedule_with_optimizer();
    return check_report("optimizers");
}
