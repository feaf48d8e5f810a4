/* metric_state.h — one resolved metric and its running state (internal; shared by metrics.c and
 * metrics_confusion.c). */
#ifndef LOOM_METRIC_STATE_H
#define LOOM_METRIC_STATE_H

#include "base/base.h"

typedef enum loom_metric_kind {
    METRIC_BINARY_ACCURACY = 0,
    METRIC_CATEGORICAL_ACCURACY,
    METRIC_SPARSE_CATEGORICAL_ACCURACY,
    METRIC_TOP_K,
    METRIC_SPARSE_TOP_K,
    METRIC_MAE,
    METRIC_MSE,
    METRIC_RMSE,
    METRIC_PRECISION,
    METRIC_RECALL,
    METRIC_AUC,
    METRIC_FBETA,
    METRIC_MEAN_IOU,
    METRIC_CUSTOM
} loom_metric_kind;

typedef enum { AUC_ROC = 0, AUC_PR } loom_auc_curve;
typedef enum { AUC_INTERPOLATION = 0, AUC_MINORING, AUC_MAJORING } loom_auc_summation;
typedef enum { FBETA_NONE = 0, FBETA_MICRO, FBETA_MACRO, FBETA_WEIGHTED } loom_fbeta_average;

typedef struct loom_metric_impl {
    loom_metric_kind kind;
    int output;               /* output index */
    int k;                    /* top-k accuracy */
    bool weighted;            /* in weighted_metrics: sample (and class) weights apply */
    char log_name[2 * LOOM_NAME_MAX];
    int n_values;             /* log values it reports (a vector result is one key per entry) */
    double sum, count;        /* running means */
    int dim, target_dim;      /* the shapes it was resolved for */
    /* confusion-matrix metrics (metrics_confusion.c) */
    int n_thresholds;         /* Precision, Recall, AUC */
    float *thresholds;        /* n_thresholds, ascending (owned) */
    bool evenly;              /* AUC: Keras's evenly spaced thresholds, counted by bucket */
    int top_k, class_id;      /* Precision / Recall; 0 / -1 when unset */
    loom_auc_curve curve;
    loom_auc_summation summation;
    bool from_logits;         /* AUC: sigmoid the predictions first */
    loom_fbeta_average average;
    float beta, threshold;    /* F-beta; threshold NaN: the row's maximum (Keras threshold=None) */
    int num_classes, ignore_class; /* MeanIoU; ignore_class -1 when unset */
    double *state;            /* n_state doubles, sized at compile (owned) */
    size_t n_state;
    loom_custom_metric custom; /* METRIC_CUSTOM: the definition as registered at compile (a copy, so
                                  registering the name again cannot change a compiled model) */
} loom_metric_impl;

#endif
