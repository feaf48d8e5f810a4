/* test_metrics.c — metrics against hand-computed values and the examples in Keras's docstrings
 * (keras/src/metrics/accuracy_metrics.py, regression_metrics.py). */
#include "check.h"
#include "graph/graph.h"
#include "ops/activations.h"
#include "ops/losses.h"
#include "ops/metrics.h"
#include "ops/init.h"
#include "optim/optim.h"
#include "kernels/gemm.h"

#include <string.h>

static loom_metric_impl resolve_ok(const char *name, int dim, int target_dim) {
    loom_metric_impl m;
    loom_error err = {0};
    CHECK_STATUS(loom_metric_resolve(name, NULL, dim, target_dim, &m, &err), LOOM_OK);
    return m;
}

static void test_resolution(void) {
    loom_metric_impl m;
    loom_error err = {0};

    /* accuracy: prediction width 1 -> binary, whatever the loss */
    m = resolve_ok("accuracy", 1, 1);
    CHECK(m.kind == METRIC_BINARY_ACCURACY);
    CHECK(strcmp(m.log_name, "accuracy") == 0);
    /* integer labels against several classes (sparse CE) -> sparse categorical */
    loom_loss_impl scce = {.kind = LOSS_SCCE};
    CHECK_STATUS(loom_metric_resolve("acc", &scce, 10, 1, &m, &err), LOOM_OK);
    CHECK(m.kind == METRIC_SPARSE_CATEGORICAL_ACCURACY);
    CHECK(strcmp(m.log_name, "acc") == 0);
    /* one-hot labels -> categorical */
    m = resolve_ok("accuracy", 3, 3);
    CHECK(m.kind == METRIC_CATEGORICAL_ACCURACY);
    /* Keras lower-cases the identifier before comparing, and logs it as written */
    m = resolve_ok("Accuracy", 3, 3);
    CHECK(m.kind == METRIC_CATEGORICAL_ACCURACY);
    CHECK(strcmp(m.log_name, "Accuracy") == 0);
    m = resolve_ok("ACC", 1, 1);
    CHECK(m.kind == METRIC_BINARY_ACCURACY);

    /* explicit names and aliases keep the name as written */
    m = resolve_ok("mse", 4, 4);
    CHECK(m.kind == METRIC_MSE);
    CHECK(strcmp(m.log_name, "mse") == 0);
    m = resolve_ok("mean_squared_error", 4, 4);
    CHECK(m.kind == METRIC_MSE);
    CHECK(strcmp(m.log_name, "mean_squared_error") == 0);
    CHECK(resolve_ok("MSE", 2, 2).kind == METRIC_MSE);
    CHECK(resolve_ok("mae", 2, 2).kind == METRIC_MAE);
    CHECK(resolve_ok("mean_absolute_error", 2, 2).kind == METRIC_MAE);
    CHECK(resolve_ok("rmse", 2, 2).kind == METRIC_RMSE);
    CHECK(resolve_ok("root_mean_squared_error", 2, 2).kind == METRIC_RMSE);
    CHECK(resolve_ok("binary_accuracy", 3, 3).kind == METRIC_BINARY_ACCURACY);
    CHECK(resolve_ok("categorical_accuracy", 3, 3).kind == METRIC_CATEGORICAL_ACCURACY);
    CHECK(resolve_ok("sparse_categorical_accuracy", 3, 1).kind ==
          METRIC_SPARSE_CATEGORICAL_ACCURACY);
    m = resolve_ok("top_k_categorical_accuracy", 8, 8);
    CHECK(m.kind == METRIC_TOP_K);
    CHECK(m.k == 5);
    m = resolve_ok("sparse_top_k_categorical_accuracy", 8, 1);
    CHECK(m.kind == METRIC_SPARSE_TOP_K);
    CHECK(m.k == 5);
    /* k > classes is accepted, as in Keras */
    CHECK(resolve_ok("top_k_categorical_accuracy", 3, 3).k == 5);

    /* errors */
    err = (loom_error){0};
    CHECK_STATUS(loom_metric_resolve("f1", NULL, 3, 3, &m, &err), LOOM_ERR_NAME);
    CHECK(err.code == LOOM_ERR_NAME);
    CHECK(strstr(err.msg, "'f1'") != NULL);
    CHECK(strstr(err.msg, "sparse_categorical_accuracy") != NULL);
    CHECK(strstr(err.msg, "rmse") != NULL);
    CHECK_STATUS(loom_metric_resolve("Mse", NULL, 3, 3, &m, &err), LOOM_ERR_NAME);
    CHECK_STATUS(loom_metric_resolve("", NULL, 3, 3, &m, &err), LOOM_ERR_NAME);
    CHECK_STATUS(loom_metric_resolve(NULL, NULL, 3, 3, &m, &err), LOOM_ERR_NAME);

    err = (loom_error){0};
    CHECK_STATUS(loom_metric_resolve("categorical_accuracy", NULL, 1, 1, &m, &err),
                 LOOM_ERR_SHAPE);
    CHECK(strstr(err.msg, "categorical_accuracy") != NULL);
    CHECK_STATUS(loom_metric_resolve("categorical_accuracy", NULL, 3, 1, &m, &err),
                 LOOM_ERR_SHAPE);
    CHECK(strstr(err.msg, "sparse") != NULL);
    CHECK_STATUS(loom_metric_resolve("sparse_categorical_accuracy", NULL, 3, 3, &m, &err),
                 LOOM_ERR_SHAPE);
    CHECK(strstr(err.msg, "width 3") != NULL);
    CHECK_STATUS(loom_metric_resolve("sparse_categorical_accuracy", NULL, 1, 1, &m, &err),
                 LOOM_ERR_SHAPE);
    CHECK_STATUS(loom_metric_resolve("top_k_categorical_accuracy", NULL, 4, 1, &m, &err),
                 LOOM_ERR_SHAPE);
    CHECK_STATUS(loom_metric_resolve("sparse_top_k_categorical_accuracy", NULL, 4, 4, &m, &err),
                 LOOM_ERR_SHAPE);
    CHECK_STATUS(loom_metric_resolve("mse", NULL, 3, 1, &m, &err), LOOM_ERR_SHAPE);
    CHECK_STATUS(loom_metric_resolve("binary_accuracy", NULL, 3, 1, &m, &err), LOOM_ERR_SHAPE);
    CHECK_STATUS(loom_metric_resolve("mae", NULL, 0, 0, &m, &err), LOOM_ERR_SHAPE);
}

static void test_binary_accuracy(void) {
    loom_metric_impl m = resolve_ok("binary_accuracy", 1, 1);
    /* Keras docstring: 0.75 */
    float t[] = {1, 1, 0, 0}, p[] = {0.98f, 1.0f, 0.0f, 0.6f};
    loom_metric_update(&m, t, p, 4, 1, 1, NULL);
    CHECK_CLOSE(loom_metric_result(&m), 0.75, 1e-7, 0);

    /* threshold is strict (0.5 -> 0), and a soft target never equals a thresholded prediction */
    loom_metric_reset(&m);
    CHECK_CLOSE(loom_metric_result(&m), 0.0, 0, 0);
    float t2[] = {0, 1, 0.9f}, p2[] = {0.5f, 0.5f, 0.99f};
    loom_metric_update(&m, t2, p2, 3, 1, 1, NULL);
    CHECK_CLOSE(loom_metric_result(&m), 1.0 / 3.0, 1e-7, 0);

    /* several labels per row: the row value is the fraction of matches, then a mean over rows */
    loom_metric_impl m2 = resolve_ok("binary_accuracy", 4, 4);
    float t3[] = {1, 0, 1, 0, /**/ 1, 1, 1, 1};
    float p3[] = {0.7f, 0.2f, 0.1f, 0.9f, /**/ 0.6f, 0.6f, 0.6f, 0.6f};
    loom_metric_update(&m2, t3, p3, 2, 4, 4, NULL);
    CHECK_CLOSE(loom_metric_result(&m2), (0.5 + 1.0) / 2, 1e-7, 0);
}

static void test_categorical_accuracy(void) {
    loom_metric_impl m = resolve_ok("categorical_accuracy", 3, 3);
    /* Keras docstring: 0.5 */
    float t[] = {0, 0, 1, 0, 1, 0}, p[] = {0.1f, 0.9f, 0.8f, 0.05f, 0.95f, 0};
    loom_metric_update(&m, t, p, 2, 3, 3, NULL);
    CHECK_CLOSE(loom_metric_result(&m), 0.5, 1e-7, 0);

    /* a second batch of a different size: (1 + 2 hits) / (2 + 4 rows), size-weighted.
     * Ties pick the first index, in predictions and in targets. */
    float t2[] = {1, 0, 0, /**/ 0, 1, 0, /**/ 0, 0, 1, /**/ 0.5f, 0.5f, 0};
    float p2[] = {0.4f, 0.4f, 0.2f, /**/ 0.4f, 0.4f, 0.2f, /**/ 0, 0, 1, /**/ 0.3f, 0.1f, 0.6f};
    /* rows: tie -> 0 == 0 hit; tie -> 0 != 1 miss; 2 == 2 hit; target tie -> 0, pred 2: miss */
    loom_metric_update(&m, t2, p2, 4, 3, 3, NULL);
    CHECK_CLOSE(loom_metric_result(&m), (1.0 + 2.0) / 6.0, 1e-7, 0);
}

static void test_sparse_categorical_accuracy(void) {
    loom_metric_impl m = resolve_ok("sparse_categorical_accuracy", 3, 1);
    /* Keras docstring: 0.5 */
    float t[] = {2, 1}, p[] = {0.1f, 0.6f, 0.3f, 0.05f, 0.95f, 0};
    loom_metric_update(&m, t, p, 2, 3, 1, NULL);
    CHECK_CLOSE(loom_metric_result(&m), 0.5, 1e-7, 0);

    /* out-of-range and non-integer labels never match; ties choose the first class */
    float t2[] = {0, 5, 1.5f, 0, -1};
    float p2[] = {0.5f, 0.5f, 0, /**/ 0, 0, 1, /**/ 0, 1, 0, /**/ 0.2f, 0.2f, 0.2f, /**/ 1, 0, 0};
    loom_metric_update(&m, t2, p2, 5, 3, 1, NULL);
    CHECK_CLOSE(loom_metric_result(&m), (1.0 + 2.0) / 7.0, 1e-7, 0);
}

static void test_top_k(void) {
    /* Keras docstring with k=1: 0.5 */
    loom_metric_impl m = resolve_ok("top_k_categorical_accuracy", 3, 3);
    m.k = 1;
    float t[] = {0, 0, 1, 0, 1, 0}, p[] = {0.1f, 0.9f, 0.8f, 0.05f, 0.95f, 0};
    loom_metric_update(&m, t, p, 2, 3, 3, NULL);
    CHECK_CLOSE(loom_metric_result(&m), 0.5, 1e-7, 0);
    /* k=2 takes the 0.8 of row 0 in */
    loom_metric_reset(&m);
    m.k = 2;
    loom_metric_update(&m, t, p, 2, 3, 3, NULL);
    CHECK_CLOSE(loom_metric_result(&m), 1.0, 1e-7, 0);
    /* the default k=5 over 3 classes: every label is in the top 5 */
    loom_metric_impl m5 = resolve_ok("top_k_categorical_accuracy", 3, 3);
    float p_low[] = {0.9f, 0.1f, 0.0f, 0.9f, 0.1f, 0.0f};
    loom_metric_update(&m5, t, p_low, 2, 3, 3, NULL);
    CHECK_CLOSE(loom_metric_result(&m5), 1.0, 1e-7, 0);

    /* ties at the boundary count as in (tf.math.in_top_k): label 2 of {.3,.3,.3,.1} is in the
     * top 1; label 3 is in the top 4 but not the top 3 */
    loom_metric_impl s = resolve_ok("sparse_top_k_categorical_accuracy", 4, 1);
    float pt[] = {0.3f, 0.3f, 0.3f, 0.1f};
    float lab2[] = {2}, lab3[] = {3};
    s.k = 1;
    loom_metric_update(&s, lab2, pt, 1, 4, 1, NULL);
    CHECK_CLOSE(loom_metric_result(&s), 1.0, 1e-7, 0);
    loom_metric_reset(&s);
    s.k = 3;
    loom_metric_update(&s, lab3, pt, 1, 4, 1, NULL);
    CHECK_CLOSE(loom_metric_result(&s), 0.0, 1e-7, 0);
    loom_metric_reset(&s);
    s.k = 4;
    loom_metric_update(&s, lab3, pt, 1, 4, 1, NULL);
    CHECK_CLOSE(loom_metric_result(&s), 1.0, 1e-7, 0);

    /* sparse Keras docstring with k=1: 0.5; then a batch of 1 more hit: 2/3 */
    loom_metric_impl s1 = resolve_ok("sparse_top_k_categorical_accuracy", 3, 1);
    s1.k = 1;
    float ls[] = {2, 1};
    loom_metric_update(&s1, ls, p, 2, 3, 1, NULL);
    CHECK_CLOSE(loom_metric_result(&s1), 0.5, 1e-7, 0);
    float l3[] = {0}, p3[] = {0.7f, 0.2f, 0.1f};
    loom_metric_update(&s1, l3, p3, 1, 3, 1, NULL);
    CHECK_CLOSE(loom_metric_result(&s1), 2.0 / 3.0, 1e-7, 0);
    /* a label out of range is never in */
    float lbad[] = {7};
    loom_metric_update(&s1, lbad, p3, 1, 3, 1, NULL);
    CHECK_CLOSE(loom_metric_result(&s1), 2.0 / 4.0, 1e-7, 0);
}

static void test_regression(void) {
    /* Keras docstrings: [[0,1],[0,0]] vs [[1,1],[0,0]]: mse 0.25, mae 0.25, rmse 0.5 */
    float t[] = {0, 1, 0, 0}, p[] = {1, 1, 0, 0};
    loom_metric_impl mse = resolve_ok("mse", 2, 2), mae = resolve_ok("mae", 2, 2),
                     rmse = resolve_ok("rmse", 2, 2);
    loom_metric_update(&mse, t, p, 2, 2, 2, NULL);
    loom_metric_update(&mae, t, p, 2, 2, 2, NULL);
    loom_metric_update(&rmse, t, p, 2, 2, 2, NULL);
    CHECK_CLOSE(loom_metric_result(&mse), 0.25, 1e-7, 0);
    CHECK_CLOSE(loom_metric_result(&mae), 0.25, 1e-7, 0);
    CHECK_CLOSE(loom_metric_result(&rmse), 0.5, 1e-7, 0);

    /* two batches of different sizes, rows of 3: the epoch value pools every element */
    loom_metric_reset(&mse);
    loom_metric_reset(&mae);
    loom_metric_reset(&rmse);
    float ta[] = {0, 0, 0, 1, 1, 1};               /* 2 rows */
    float pa[] = {1, -2, 0.5f, 1, 3, 1};           /* errors 1 -2 .5 | 0 2 0 */
    float tb[] = {0, 0, 0, 0, 0, 0, 0, 0, 0};      /* 3 rows */
    float pb[] = {0.1f, 0.2f, 0.3f, 4, 0, 0, -1, -1, -1};
    loom_metric_impl *all[] = {&mse, &mae, &rmse};
    for (int i = 0; i < 3; i++) {
        loom_metric_update(all[i], ta, pa, 2, 3, 3, NULL);
        loom_metric_update(all[i], tb, pb, 3, 3, 3, NULL);
    }
    double sq = 0, ab = 0, sq_a = 0, sq_b = 0;
    for (int i = 0; i < 6; i++) {
        double d = (double)pa[i] - ta[i];
        sq += d * d, ab += fabs(d), sq_a += d * d;
    }
    for (int i = 0; i < 9; i++) {
        double d = (double)pb[i] - tb[i];
        sq += d * d, ab += fabs(d), sq_b += d * d;
    }
    CHECK_CLOSE(loom_metric_result(&mse), sq / 15, 1e-6, 1e-6);
    CHECK_CLOSE(loom_metric_result(&mae), ab / 15, 1e-6, 1e-6);
    CHECK_CLOSE(loom_metric_result(&rmse), sqrt(sq / 15), 1e-6, 1e-6);
    /* not the mean of the batch rmses, nor their size-weighted mean */
    double mean_rmse = (sqrt(sq_a / 6) * 2 + sqrt(sq_b / 9) * 3) / 5;
    CHECK(fabs(loom_metric_result(&rmse) - mean_rmse) > 1e-3);
    /* and the mse is the size-weighted mean of the batch mses */
    CHECK_CLOSE(loom_metric_result(&mse), (sq_a / 6 * 2 + sq_b / 9 * 3) / 5, 1e-6, 1e-6);

    /* reset empties the state; no update gives 0 (Keras divide_no_nan) */
    loom_metric_reset(&rmse);
    CHECK(rmse.count == 0 && rmse.sum == 0);
    CHECK_CLOSE(loom_metric_result(&rmse), 0.0, 0, 0);
}

static void test_accumulation(void) {
    /* accuracy over batches of 4 and 2 rows: 3/4 then 1/2 -> 4/6, not (0.75 + 0.5) / 2 */
    loom_metric_impl m = resolve_ok("accuracy", 1, 1);
    float t1[] = {1, 1, 0, 0}, p1[] = {0.98f, 1.0f, 0.0f, 0.6f};
    float t2[] = {1, 0}, p2[] = {0.9f, 0.7f};
    loom_metric_update(&m, t1, p1, 4, 1, 1, NULL);
    loom_metric_update(&m, t2, p2, 2, 1, 1, NULL);
    CHECK_CLOSE(loom_metric_result(&m), 4.0 / 6.0, 1e-7, 0);
    CHECK_CLOSE(m.count, 6.0, 0, 0);
    /* an empty batch changes nothing */
    loom_metric_update(&m, t2, p2, 0, 1, 1, NULL);
    CHECK_CLOSE(loom_metric_result(&m), 4.0 / 6.0, 1e-7, 0);
}

/* A mask as row weights: padded rows (weight 0) are left out of both sum and count. */
static void test_row_weights(void) {
    loom_metric_impl m;
    loom_error e = {0};
    CHECK_STATUS(loom_metric_resolve("sparse_categorical_accuracy", NULL, 3, 1, &m, &e), LOOM_OK);
    loom_metric_reset(&m);
    const float t[3] = {0, 1, 2};
    const float p[9] = {0.9f, 0.05f, 0.05f, /* right */ 0.9f, 0.05f, 0.05f, /* wrong, padded */
                        0.1f, 0.1f, 0.8f /* right */};
    const float mask[3] = {1, 0, 1};
    loom_metric_update(&m, t, p, 3, 3, 1, mask);
    CHECK_CLOSE(loom_metric_result(&m), 1.0, 1e-7, 0);
    loom_metric_update(&m, t, p, 3, 3, 1, NULL); /* unmasked: 2 of 3 */
    CHECK_CLOSE(loom_metric_result(&m), 4.0 / 5.0, 1e-7, 0);
    const float all_padded[3] = {0, 0, 0};
    loom_metric_reset(&m);
    loom_metric_update(&m, t, p, 3, 3, 1, all_padded);
    CHECK(loom_metric_result(&m) == 0.0f); /* nothing counted: 0, as Keras's divide_no_nan */
}

int main(void) {
    test_row_weights();
    test_resolution();
    test_binary_accuracy();
    test_categorical_accuracy();
    test_sparse_categorical_accuracy();
    test_top_k();
    test_regression();
    test_accumulation();
    return check_report("metrics");
}
