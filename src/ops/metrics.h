/* metrics.h — Keras's metrics over batches (internal): the running means (metrics.c), the
 * confusion-matrix metrics AUC, Precision, Recall, F-beta and MeanIoU (metrics_confusion.c), the
 * configuration syntax "auc(curve=PR)" and the registry of user metrics (metric_spec.c). */
#ifndef LOOM_METRICS_H
#define LOOM_METRICS_H

#include "ops/losses.h"
#include "ops/metric_spec.h"
#include "ops/metric_state.h"

/* Resolves a metric spec — a name, optionally with Keras constructor arguments in parentheses —
 * for an output of per-row width dim whose targets have width target_dim ("accuracy" depends on
 * both, as in Keras). Allocates the metric's state: release it with loom_metric_release. */
loom_status loom_metric_resolve(const char *spec, const loom_loss_impl *loss, int dim, int target_dim,
                                loom_metric_impl *out, loom_error *err);
void loom_metric_release(loom_metric_impl *mt);
/* Accumulates a batch: target rows of target_dim, pred rows of dim; row_weight (NULL: all 1)
 * weighs each row (an output's mask, times the sample and class weights for weighted metrics). */
void loom_metric_update(loom_metric_impl *mt, const float *target, const float *pred,
                        size_t n_rows, int dim, int target_dim, const float *row_weight);
void loom_metric_reset(loom_metric_impl *mt);
/* Writes the metric's n_values current values. */
void loom_metric_results(const loom_metric_impl *mt, float *values);
/* The value of a scalar metric (the first value of a vector one of at most
 * LOOM_METRIC_MAX_THRESHOLDS values, NaN for a longer one). */
float loom_metric_result(const loom_metric_impl *mt);
/* The suffix of value i's log key ("" for a scalar metric; "/0.5" for a threshold, "/2" for a
 * class). */
void loom_metric_value_suffix(const loom_metric_impl *mt, int i, char *buf, size_t len);

#endif
