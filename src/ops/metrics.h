/* metrics.h — Keras's metrics as running sums over batches (metrics.c; internal) */
#ifndef LOOM_METRICS_H
#define LOOM_METRICS_H

#include "ops/losses.h"


typedef enum loom_metric_kind {
    METRIC_BINARY_ACCURACY = 0,
    METRIC_CATEGORICAL_ACCURACY,
    METRIC_SPARSE_CATEGORICAL_ACCURACY,
    METRIC_TOP_K,
    METRIC_SPARSE_TOP_K,
    METRIC_MAE,
    METRIC_MSE,
    METRIC_RMSE
} loom_metric_kind;

typedef struct loom_metric_impl {
    loom_metric_kind kind;
    int output;               /* output index */
    int k;                    /* top-k */
    char log_name[2 * LOOM_NAME_MAX];
    double sum, count;        /* running state */
} loom_metric_impl;

/* Resolves a metric name for an output whose loss is `loss` (may be NULL or LOSS_NONE) and
 * whose per-row width is dim ("accuracy" depends on both, as in Keras). */
loom_status loom_metric_resolve(const char *name, const loom_loss_impl *loss, int dim,
                                int target_dim, loom_metric_impl *out, loom_error *err);
/* Accumulates a batch: target rows of target_dim, pred rows of dim; row_weight (NULL: all 1)
 * weighs each row, as an output's mask does in Keras (0 = padding, left out). */
void loom_metric_update(loom_metric_impl *mt, const float *target, const float *pred,
                        size_t n_rows, int dim, int target_dim, const float *row_weight);
void loom_metric_reset(loom_metric_impl *mt);
float loom_metric_result(const loom_metric_impl *mt);

#endif
