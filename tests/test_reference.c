/* test_reference.c — loom against an independent NumPy reference of the seed model.
 *
 *   x (8) -> Dense A 6 relu -> Dense B 5 tanh -> { Dense C 3 softmax : cce, weight 0.5
 *                                                   Dense D 4 linear  : mse, weight 0.3 }
 *
 * Data, initial weights and every expected number come from tests/reference/seed_model.ref,
 * written by tests/reference/seed_model_ref.py (float64, gradients checked there by central
 * differences). Only the public API of loom.h is used.
 *
 * Tolerances, |loom - ref| <= atol + rtol*|ref|:
 *  - one forward/backward pass: atol 1e-5, rtol 1e-4. The reference script reruns the pass in
 *    float32 and finds it within ~1e-7 of float64; the slack is for other summation orders.
 *  - after 9 optimizer steps (weights and per-epoch history): atol 1e-4, rtol 1e-3. Rounding
 *    differences are amplified a little by each step (the float32 rerun drifts ~1e-7), and Adam
 *    divides by sqrt(v), which magnifies the relative error of small gradients. These bounds are
 *    still tight enough to catch a wrong rule: the script asserts that plain momentum instead of
 *    Nesterov, Adam without bias correction, and history taken after the update instead of
 *    before all land outside them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fixture.h"
#include "loom.h"

#ifndef LOOM_TEST_DIR
#define LOOM_TEST_DIR "tests"
#endif

#define N 48
#define ONE_PASS_ATOL 1e-5
#define ONE_PASS_RTOL 1e-4
#define TRAINED_ATOL 1e-4
#define TRAINED_RTOL 1e-3

typedef struct layer_spec {
    const char *name;
    int in, units;
} layer_spec;

static const layer_spec LAYERS[4] = {{"A", 8, 6}, {"B", 6, 5}, {"C", 5, 3}, {"D", 5, 4}};
static const char *const WEIGHT_NAMES[2] = {"kernel", "bias"};
#define N_PARAMS (8 * 6 + 6 + 6 * 5 + 5 + 5 * 3 + 3 + 5 * 4 + 4)

static size_t weight_size(int layer, int i) {
    return i == 0 ? (size_t)LAYERS[layer].in * (size_t)LAYERS[layer].units
                  : (size_t)LAYERS[layer].units;
}

/* One CHECK for a whole array; prints the first few offenders and the worst error. */
static void expect_close(const char *what, const float *got, const double *want, size_t n,
                         double atol, double rtol) {
    check_count++;
    if (!want) { /* fixture_get already recorded the failure */
        return;
    }
    size_t bad = 0;
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]);
        if (!(err <= atol + rtol * fabs(want[i]))) {
            if (bad < 4)
                fprintf(stderr, "  %s[%zu]: loom %.9g, reference %.9g\n", what, i, (double)got[i],
                        want[i]);
            bad++;
        }
        if (!(err <= worst)) worst = err; /* NaN-sticky */
    }
    if (bad) {
        check_failures++;
        fprintf(stderr, "%s: %zu of %zu values off (worst |diff| %.3g)\n", what, bad, n, worst);
    }
}

static void expect_close_scalar(const char *what, double got, double want, double atol,
                                double rtol) {
    float g = (float)got;
    expect_close(what, &g, &want, 1, atol, rtol);
}

/* The seed model with the fixture's initial weights, compiled with the given optimizer. */
static loom_model *build_model(const fixture *fx, loom_optimizer opt) {
    loom_graph *g = loom_graph_new(7);
    CHECK(g != NULL);
    if (!g) return NULL;
    loom_dense_options o = loom_dense_defaults();
    loom_tensor *x = loom_input(g, "x", 1, (int[]){8});
    loom_tensor *h = loom_call(loom_dense(g, "A", 6, LOOM_RELU, &o), x);
    h = loom_call(loom_dense(g, "B", 5, LOOM_TANH, &o), h);
    loom_tensor *c = loom_call(loom_dense(g, "C", 3, LOOM_SOFTMAX, &o), h);
    loom_tensor *d = loom_call(loom_dense(g, "D", 4, LOOM_LINEAR, &o), h);
    loom_tensor *outs[2] = {c, d};
    loom_model *m = loom_model_new(g, 1, &x, 2, outs);
    CHECK(m != NULL);
    if (!m) {
        fprintf(stderr, "loom_model_new: %s\n", loom_graph_error(g));
        loom_graph_free(g);
        return NULL;
    }
    CHECK(loom_param_count(m) == N_PARAMS);

    for (int l = 0; l < 4; l++) {
        loom_layer *layer = loom_model_find_layer(m, LAYERS[l].name);
        CHECK(layer != NULL);
        if (!layer) continue;
        CHECK(loom_layer_num_weights(layer) == 2);
        int dims[LOOM_MAX_RANK] = {0};
        CHECK(loom_layer_weight_shape(layer, 0, dims) == 2);
        CHECK(dims[0] == LAYERS[l].in && dims[1] == LAYERS[l].units);
        for (int i = 0; i < 2; i++) {
            const char *wname = loom_layer_weight_name(layer, i);
            CHECK(wname != NULL && strcmp(wname, WEIGHT_NAMES[i]) == 0);
            size_t n = weight_size(l, i);
            CHECK(loom_layer_weight_size(layer, i) == n);
            char key[64];
            snprintf(key, sizeof key, "%s.%s", LAYERS[l].name, WEIGHT_NAMES[i]);
            float buf[64];
            fixture_floats(fx, key, buf, n);
            CHECK_STATUS(loom_set_weights(m, LAYERS[l].name, i, buf, n), LOOM_OK);
        }
    }

    loom_loss losses[2] = {{.name = "categorical_crossentropy"}, {.name = "mse"}};
    float weights[2] = {0.5f, 0.3f};
    loom_compile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.n_losses = 2;
    cfg.losses = losses;
    cfg.n_loss_weights = 2;
    cfg.loss_weights = weights;
    cfg.optimizer = opt;
    loom_status s = loom_compile(m, &cfg);
    CHECK_STATUS(s, LOOM_OK);
    if (s != LOOM_OK) {
        fprintf(stderr, "loom_compile: %s\n", loom_model_error(m));
        loom_model_free(m);
        return NULL;
    }
    return m;
}

/* Every weight's slice of a flat gradient buffer against "<prefix>.<layer>.<weight>". */
static void expect_gradients(loom_model *m, const fixture *fx, const char *prefix,
                             const float *grad) {
    for (int l = 0; l < 4; l++)
        for (int i = 0; i < 2; i++) {
            char key[96];
            snprintf(key, sizeof key, "%s.%s.%s", prefix, LAYERS[l].name, WEIGHT_NAMES[i]);
            size_t n = weight_size(l, i);
            size_t off = loom_param_offset(m, LAYERS[l].name, i);
            CHECK(off + n <= N_PARAMS);
            if (off + n > N_PARAMS) continue;
            expect_close(key, grad + off, fixture_get(fx, key, n), n, ONE_PASS_ATOL,
                         ONE_PASS_RTOL);
        }
}

/* Every weight of the model, read back with loom_get_weights, against "<prefix>.<layer>.<w>". */
static void expect_weights(loom_model *m, const fixture *fx, const char *prefix) {
    for (int l = 0; l < 4; l++)
        for (int i = 0; i < 2; i++) {
            char key[96];
            snprintf(key, sizeof key, "%s.%s.%s", prefix, LAYERS[l].name, WEIGHT_NAMES[i]);
            size_t n = weight_size(l, i);
            float buf[64];
            CHECK_STATUS(loom_get_weights(m, LAYERS[l].name, i, buf, n), LOOM_OK);
            expect_close(key, buf, fixture_get(fx, key, n), n, TRAINED_ATOL, TRAINED_RTOL);
        }
}

static void expect_history(const loom_history *h, const fixture *fx, const char *prefix) {
    static const char *const keys[3] = {"loss", "C_loss", "D_loss"};
    CHECK(loom_history_epochs(h) == 3);
    for (int k = 0; k < 3; k++) {
        char key[96];
        snprintf(key, sizeof key, "%s.hist.%s", prefix, keys[k]);
        float got[3];
        for (int e = 0; e < 3; e++) got[e] = loom_history_get(h, keys[k], e);
        expect_close(key, got, fixture_get(fx, key, 3), 3, TRAINED_ATOL, TRAINED_RTOL);
    }
}

/* Fits 3 epochs, batch 16, in order (9 steps), and compares weights and history. */
static void fit_and_compare(loom_model *m, const fixture *fx, const loom_data *data,
                            const char *prefix) {
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = 16;
    fo.shuffle = 0;
    fo.epochs = 3;
    loom_history *h = NULL;
    loom_status s = loom_fit(m, data, &fo, &h);
    CHECK_STATUS(s, LOOM_OK);
    if (s != LOOM_OK) fprintf(stderr, "%s fit: %s\n", prefix, loom_model_error(m));
    CHECK(loom_iterations(m) == 9);
    CHECK(h != NULL);
    if (h) expect_history(h, fx, prefix);
    expect_weights(m, fx, prefix);
    loom_history_free(h);
}

/* evaluate() on the whole set in one batch must log the same numbers as the gradient pass. */
static void expect_evaluate(loom_model *m, const fixture *fx, const loom_data *data,
                            const char *prefix) {
    static const char *const keys[3] = {"loss", "C_loss", "D_loss"};
    loom_history *r = NULL;
    CHECK_STATUS(loom_evaluate(m, data, N, 0, &r), LOOM_OK);
    CHECK(r != NULL);
    if (!r) return;
    for (int k = 0; k < 3; k++) {
        char key[96];
        snprintf(key, sizeof key, "%s.%s", prefix, keys[k]);
        expect_close_scalar(key, loom_history_get(r, keys[k], 0), fixture_scalar(fx, key),
                            ONE_PASS_ATOL, ONE_PASS_RTOL);
    }
    loom_history_free(r);
}

int main(void) {
    fixture fx;
    if (fixture_load(&fx, LOOM_TEST_DIR "/reference/seed_model.ref") != 0) {
        fixture_free(&fx);
        return check_report("reference");
    }

    static float x[N * 8], yC[N * 3], yD[N * 4], swC[N];
    fixture_floats(&fx, "x", x, N * 8);
    fixture_floats(&fx, "yC", yC, N * 3);
    fixture_floats(&fx, "yD", yD, N * 4);
    fixture_floats(&fx, "swC", swC, N);

    loom_array xs = {.name = "x", .data = x, .n = N, .count = N * 8};
    loom_array ys[2] = {{.name = "C", .data = yC, .n = N, .count = N * 3}, {.name = "D", .data = yD, .n = N, .count = N * 4}};
    loom_data data = {1, &xs, 2, ys, 0, NULL};
    static float grad[N_PARAMS];
    float losses[2];

    /* ---- one pass on all 48: total, each loss alone, then SGD */
    loom_model *m = build_model(&fx, loom_sgd(0.1f, 0.0f, 0));
    if (m) {
        int iC = loom_model_output_index(m, "C"), iD = loom_model_output_index(m, "D");
        CHECK(iC == 0 && iD == 1);
        if (iC < 0 || iC > 1 || iD < 0 || iD > 1) iC = 0, iD = 1;

        losses[0] = losses[1] = NAN;
        CHECK_STATUS(loom_gradients(m, &data, 0, NULL, grad, losses), LOOM_OK);
        expect_close_scalar("init.C_loss", losses[iC], fixture_scalar(&fx, "init.C_loss"),
                            ONE_PASS_ATOL, ONE_PASS_RTOL);
        expect_close_scalar("init.D_loss", losses[iD], fixture_scalar(&fx, "init.D_loss"),
                            ONE_PASS_ATOL, ONE_PASS_RTOL);
        expect_close_scalar("init.loss", 0.5 * losses[iC] + 0.3 * losses[iD],
                            fixture_scalar(&fx, "init.loss"), ONE_PASS_ATOL, ONE_PASS_RTOL);
        expect_gradients(m, &fx, "grad_total", grad);
        CHECK(loom_iterations(m) == 0); /* a gradient pass is not a step */

        /* each loss alone, at weight 1: the other head must get exactly zero */
        static const char *const outs[2] = {"C", "D"};
        static const char *const prefixes[2] = {"grad_C", "grad_D"};
        static const float weights[2] = {0.5f, 0.3f};
        for (int k = 0; k < 2; k++) {
            CHECK_STATUS(loom_set_loss_weight(m, outs[k], 1.0f), LOOM_OK);
            CHECK_STATUS(loom_gradients(m, &data, 1, &outs[k], grad, NULL), LOOM_OK);
            expect_gradients(m, &fx, prefixes[k], grad);
            CHECK_STATUS(loom_set_loss_weight(m, outs[k], weights[k]), LOOM_OK);
            CHECK(loom_get_loss_weight(m, outs[k]) == weights[k]);
        }

        expect_evaluate(m, &fx, &data, "init");
        fit_and_compare(m, &fx, &data, "sgd");
        loom_model_free(m);
    }

    /* ---- Adam, Keras 3 rule (epsilon hat, bias correction folded into alpha) */
    m = build_model(&fx, loom_adam(0.01f));
    if (m) {
        fit_and_compare(m, &fx, &data, "adam");
        loom_model_free(m);
    }

    /* ---- SGD, momentum 0.9, Nesterov (Keras rule: w += mu*v - lr*g with the new v) */
    m = build_model(&fx, loom_sgd(0.1f, 0.9f, 1));
    if (m) {
        fit_and_compare(m, &fx, &data, "nesterov");
        loom_model_free(m);
    }

    /* ---- per-sample weights on C only; Keras divides by the batch size, not by sum(s) */
    m = build_model(&fx, loom_sgd(0.1f, 0.0f, 0));
    if (m) {
        loom_array sw = {.name = "C", .data = swC, .n = N, .count = N};
        loom_data wdata = data;
        wdata.n_sample_weights = 1;
        wdata.sample_weights = &sw;
        int iC = loom_model_output_index(m, "C"), iD = loom_model_output_index(m, "D");
        if (iC < 0 || iC > 1 || iD < 0 || iD > 1) iC = 0, iD = 1;
        losses[0] = losses[1] = NAN;
        CHECK_STATUS(loom_gradients(m, &wdata, 0, NULL, grad, losses), LOOM_OK);
        expect_close_scalar("sw.init.C_loss", losses[iC], fixture_scalar(&fx, "sw.init.C_loss"),
                            ONE_PASS_ATOL, ONE_PASS_RTOL);
        expect_close_scalar("sw.init.D_loss", losses[iD], fixture_scalar(&fx, "sw.init.D_loss"),
                            ONE_PASS_ATOL, ONE_PASS_RTOL);
        expect_close_scalar("sw.init.loss", 0.5 * losses[iC] + 0.3 * losses[iD],
                            fixture_scalar(&fx, "sw.init.loss"), ONE_PASS_ATOL, ONE_PASS_RTOL);
        expect_gradients(m, &fx, "sw.grad_total", grad);
        expect_evaluate(m, &fx, &wdata, "sw.init");
        loom_model_free(m);
    }

    fixture_free(&fx);
    return check_report("reference");
}
