/* balance_compare.c — every loss-balancing method of loom on one synthetic multi-task problem.
 *
 * Usage: balance_compare [epochs]        (default 20; prints a markdown table to stdout)
 *
 * The problem (12 inputs uniform in [-1, 1], 4096 training and 2048 held-out samples):
 *
 *   x -> trunk1 Dense(32, relu) -> trunk2 Dense(3, tanh)  <- a narrow shared bottleneck
 *        +-> big_h   Dense(16, relu) -> big   Dense(1)            mse   y = 10 (sin(2 x0) + x1 x2)
 *        +-> small_h Dense(16, relu) -> small Dense(1)            mse   y = 0.3 (cos(3 x0) + x3 x4)
 *        +-> easy_h  Dense(16, relu) -> easy  Dense(2, softmax)   cce   class = [x5 > 0]
 *
 * Why the heads conflict: "big" and "small" both need x0, through different nonlinearities
 * (sin 2x0 is odd, cos 3x0 even), plus a product of two inputs each, and the three-unit
 * bottleneck cannot hold everything: at init their shared gradients have cosine -0.6. Big's
 * targets are ~30x larger, so with static weights 1/1 its gradient dominates the trunk and small
 * is starved. "easy" is linearly separable but needs one of the three bottleneck directions for
 * itself. The shared-gradient cosines are printed before and after the table.
 *
 * Every method starts from the same weights (graph seed 42), sees the same data in the same
 * order (fit seed 1) and uses Adam(1e-3), batch 64, its reference defaults (loom_balance_defaults)
 * and static weights 1/1/1. Held-out metrics: NRMSE = RMSE / std(y) for the regressions (1.0 is
 * predicting the mean), accuracy for "easy". Time: wall-clock mean per epoch of loom_fit, one
 * thread (loom_set_num_threads(1), so runs are bit-reproducible). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <loom.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define D_IN 12
#define N_TRAIN 4096
#define N_TEST 2048
#define N_ALL (N_TRAIN + N_TEST)

static float X[N_ALL * D_IN], Y_big[N_ALL], Y_small[N_ALL], Y_easy[N_ALL * 2];

static uint64_t rng = 0x853C49E6748FEA9BULL;
static float uniform(float lo, float hi) {
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return lo + (hi - lo) * (float)((rng >> 40) / 16777216.0);
}

static void make_data(void) {
    for (int i = 0; i < N_ALL; i++) {
        float *x = X + (size_t)i * D_IN;
        for (int j = 0; j < D_IN; j++) x[j] = uniform(-1, 1);
        Y_big[i] = 10.0f * (sinf(2 * x[0]) + x[1] * x[2]);
        Y_small[i] = 0.3f * (cosf(3 * x[0]) + x[3] * x[4]);
        int c = x[5] > 0;
        Y_easy[i * 2] = (float)(1 - c);
        Y_easy[i * 2 + 1] = (float)c;
    }
}

static loom_model *build(void) {
    loom_graph *g = loom_graph_new(42);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){D_IN});
    loom_tensor *h = loom_call(loom_dense(g, "trunk1", 32, LOOM_RELU, NULL), x);
    loom_tensor *z = loom_call(loom_dense(g, "trunk2", 3, LOOM_TANH, NULL), h);
    loom_tensor *big = loom_call(loom_dense(g, "big", 1, LOOM_LINEAR, NULL),
                                 loom_call(loom_dense(g, "big_h", 16, LOOM_RELU, NULL), z));
    loom_tensor *small = loom_call(loom_dense(g, "small", 1, LOOM_LINEAR, NULL),
                                   loom_call(loom_dense(g, "small_h", 16, LOOM_RELU, NULL), z));
    loom_tensor *easy = loom_call(loom_dense(g, "easy", 2, LOOM_SOFTMAX, NULL),
                                  loom_call(loom_dense(g, "easy_h", 16, LOOM_RELU, NULL), z));
    loom_model *m = loom_model_new(g, 1, &x, 3, (loom_tensor *[]){big, small, easy});
    if (!m) {
        fprintf(stderr, "build: %s\n", loom_graph_error(g));
        loom_graph_free(g);
    }
    return m;
}

static loom_model *build_compiled(loom_balance_kind kind) {
    loom_model *m = build();
    if (!m) return NULL;
    loom_loss losses[3] = {{.name = "mse"}, {.name = "mse"}, {.name = "categorical_crossentropy"}};
    loom_compile_config cfg = {.n_losses = 3, .losses = losses, .optimizer = loom_adam(1e-3f),
                               .balance = loom_balance_defaults(kind)};
    if (loom_compile(m, &cfg)) {
        fprintf(stderr, "compile %s: %s\n", loom_balance_name(kind), loom_model_error(m));
        loom_model_free(m);
        return NULL;
    }
    return m;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static double nrmse(const float *pred, const float *y, int n) {
    double mean = 0, se = 0, var = 0;
    for (int i = 0; i < n; i++) mean += y[i];
    mean /= n;
    for (int i = 0; i < n; i++) {
        se += (pred[i] - (double)y[i]) * (pred[i] - (double)y[i]);
        var += (y[i] - mean) * (y[i] - mean);
    }
    return sqrt(se / var);
}

/* Shared-gradient cosines of the three losses on the first 512 training samples. */
static void print_cosines(loom_model *m, const char *when) {
    loom_array xa = {.name = "x", .data = X, .n = 512, .count = 512 * D_IN};
    loom_array ya[3] = {{.name = "big", .data = Y_big, .n = 512, .count = 512}, {.name = "small", .data = Y_small, .n = 512, .count = 512}, {.name = "easy", .data = Y_easy, .n = 512, .count = 512 * 2}};
    loom_data d = {1, &xa, 3, ya, 0, NULL};
    loom_diagnostics *dg = loom_diagnose(m, &d);
    if (!dg) {
        fprintf(stderr, "diagnose: %s\n", loom_model_error(m));
        return;
    }
    printf("%s: cos(big, small) %+.3f, cos(big, easy) %+.3f, cos(small, easy) %+.3f; "
           "|g_big|/|g_small| %.1f\n",
           when, loom_diag_cosine(dg, 0, 1), loom_diag_cosine(dg, 0, 2), loom_diag_cosine(dg, 1, 2),
           loom_diag_magnitude_ratio(dg, 0, 1));
    loom_diagnostics_free(dg);
}

int main(int argc, char **argv) {
    int epochs = argc > 1 ? atoi(argv[1]) : 20;
    if (epochs <= 0) {
        fprintf(stderr, "usage: %s [epochs > 0]\n", argv[0]);
        return 2;
    }
    loom_set_num_threads(1);
    make_data();
    loom_array xtr = {.name = "x", .data = X, .n = N_TRAIN, .count = N_TRAIN * D_IN};
    loom_array ytr[3] = {{.name = "big", .data = Y_big, .n = N_TRAIN, .count = N_TRAIN}, {.name = "small", .data = Y_small, .n = N_TRAIN, .count = N_TRAIN}, {.name = "easy", .data = Y_easy, .n = N_TRAIN, .count = N_TRAIN * 2}};
    loom_data train = {1, &xtr, 3, ytr, 0, NULL};
    const float *xte = X + (size_t)N_TRAIN * D_IN;
    static float p_big[N_TEST], p_small[N_TEST], p_easy[N_TEST * 2];

    loom_model *probe = build_compiled(LOOM_BALANCE_STATIC);
    if (!probe) return 1;
    print_cosines(probe, "shared-gradient cosines at init");
    loom_model_free(probe);
    printf("\n| method | big NRMSE | small NRMSE | easy accuracy | last-epoch weights big / small / easy | ms / epoch |\n");
    printf("|---|---:|---:|---:|---|---:|\n");
    loom_model *first = NULL;
    for (int k = 0; k <= LOOM_BALANCE_NASH_MTL; k++) {
        loom_balance_kind kind = (loom_balance_kind)k;
        loom_model *m = build_compiled(kind);
        if (!m) return 1;
        if (!first) first = m; /* static: kept for the diagnostics after training */
        loom_fit_options fo = loom_fit_defaults();
        fo.epochs = epochs;
        fo.batch_size = 64;
        fo.seed = 1;
        loom_history *h = NULL;
        double t0 = now_s();
        loom_status s = loom_fit(m, &train, &fo, &h);
        double ms = (now_s() - t0) * 1000.0 / epochs;
        if (s) {
            fprintf(stderr, "fit %s: %s\n", loom_balance_name(kind), loom_model_error(m));
            printf("| %s | failed: %s | | | | |\n", loom_balance_name(kind), loom_status_name(s));
        } else {
            loom_array xa = {.name = "x", .data = xte, .n = N_TEST, .count = N_TEST * D_IN};
            if (loom_predict(m, 1, &xa, 256, (float *const[]){p_big, p_small, p_easy})) {
                fprintf(stderr, "predict: %s\n", loom_model_error(m));
                return 1;
            }
            int correct = 0;
            for (int i = 0; i < N_TEST; i++)
                correct += (p_easy[i * 2 + 1] > p_easy[i * 2]) == (Y_easy[(N_TRAIN + i) * 2 + 1] > 0.5f);
            char weights[96];
            if (loom_history_values(h, "big_weight"))
                snprintf(weights, sizeof weights, "%.3f / %.3f / %.3f", loom_history_get(h, "big_weight", -1),
                         loom_history_get(h, "small_weight", -1), loom_history_get(h, "easy_weight", -1));
            else
                snprintf(weights, sizeof weights, "1 / 1 / 1");
            printf("| %s | %.4f | %.4f | %.4f | %s | %.1f |\n", loom_balance_name(kind),
                   nrmse(p_big, Y_big + N_TRAIN, N_TEST), nrmse(p_small, Y_small + N_TRAIN, N_TEST),
                   (double)correct / N_TEST, weights, ms);
        }
        loom_history_free(h);
        if (m != first) loom_model_free(m);
    }
    printf("\n");
    print_cosines(first, "static weights, after training");
    loom_model_free(first);
    return 0;
}
