/* metrics_confusion.h — Keras 3's confusion-matrix metrics: AUC, Precision, Recall, F-beta and
 * MeanIoU (metrics_confusion.c; internal). */
#ifndef LOOM_METRICS_CONFUSION_H
#define LOOM_METRICS_CONFUSION_H

#include "ops/metric_spec.h"
#include "ops/metric_state.h"

/* Reads the metric's constructor arguments (marking them used). */
loom_status loom_confusion_parse_args(const char *spec, loom_metric_call *call, loom_metric_impl *mt,
                                      loom_error *err);
/* Checks the shapes and allocates the state. */
loom_status loom_confusion_setup(loom_metric_impl *mt, loom_error *err);
void loom_confusion_update(loom_metric_impl *mt, const float *target, const float *pred, size_t n_rows,
                           const float *row_weight);
void loom_confusion_results(const loom_metric_impl *mt, float *values);

#endif
