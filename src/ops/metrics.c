/* metrics.c — per-output metrics with Keras 3 semantics (keras/src/metrics/).
 *
 * Every metric here is a Keras MeanMetricWrapper (or, for rmse, a Mean of squared errors): a value
 * per row, then a running mean over rows. The state is a double sum of row values and a row count,
 * so an epoch value weights each batch by its size, and rmse takes the square root only at the end
 * (sqrt of the pooled mean, not a mean of batch rmses). */
#include "ops/metrics.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- names */

typedef struct metric_name {
    const char *name;
    loom_metric_kind kind;
} metric_name;

/* Keras's names: the function names, the snake-case class names, the class names and the
 * upper-case aliases of keras.metrics.get. "rmse" is loom's own short form. "accuracy"/"acc" are
 * not here: they depend on shapes (resolve_accuracy). */
static const metric_name known_metrics[] = {
    {"binary_accuracy", METRIC_BINARY_ACCURACY},
    {"BinaryAccuracy", METRIC_BINARY_ACCURACY},
    {"categorical_accuracy", METRIC_CATEGORICAL_ACCURACY},
    {"CategoricalAccuracy", METRIC_CATEGORICAL_ACCURACY},
    {"sparse_categorical_accuracy", METRIC_SPARSE_CATEGORICAL_ACCURACY},
    {"SparseCategoricalAccuracy", METRIC_SPARSE_CATEGORICAL_ACCURACY},
    {"top_k_categorical_accuracy", METRIC_TOP_K},
    {"TopKCategoricalAccuracy", METRIC_TOP_K},
    {"sparse_top_k_categorical_accuracy", METRIC_SPARSE_TOP_K},
    {"SparseTopKCategoricalAccuracy", METRIC_SPARSE_TOP_K},
    {"mae", METRIC_MAE},
    {"MAE", METRIC_MAE},
    {"mean_absolute_error", METRIC_MAE},
    {"MeanAbsoluteError", METRIC_MAE},
    {"mse", METRIC_MSE},
    {"MSE", METRIC_MSE},
    {"mean_squared_error", METRIC_MSE},
    {"MeanSquaredError", METRIC_MSE},
    {"rmse", METRIC_RMSE},
    {"root_mean_squared_error", METRIC_RMSE},
    {"RootMeanSquaredError", METRIC_RMSE},
};

#define KNOWN_METRICS_TEXT                                                                      \
    "accuracy (acc), binary_accuracy, categorical_accuracy, sparse_categorical_accuracy, "       \
    "top_k_categorical_accuracy, sparse_top_k_categorical_accuracy, mae (mean_absolute_error), " \
    "mse (mean_squared_error), rmse (root_mean_squared_error)"

/* Keras compares str(identifier).lower() with "accuracy" and "acc". */
static bool is_accuracy_alias(const char *name) {
    static const char *aliases[] = {"accuracy", "acc"};
    for (size_t a = 0; a < sizeof aliases / sizeof aliases[0]; a++) {
        const char *s = name, *t = aliases[a];
        while (*s && *t && tolower((unsigned char)*s) == *t) s++, t++;
        if (!*s && !*t) return true;
    }
    return false;
}

/* keras/src/trainers/compile_utils.py is_binary_or_sparse_categorical: a prediction width of 1 is
 * binary; labels narrower than the predictions (one integer per row) are sparse; else one-hot. */
static loom_metric_kind resolve_accuracy(int dim, int target_dim) {
    if (dim == 1) return METRIC_BINARY_ACCURACY;
    if (target_dim == 1) return METRIC_SPARSE_CATEGORICAL_ACCURACY;
    return METRIC_CATEGORICAL_ACCURACY;
}

/* Shapes Keras would accept only by broadcasting into nonsense (binary accuracy of integer labels
 * against 3 probabilities), or where the metric is constant (argmax over a single class is always
 * 0), are refused: loom is stricter here, never different. A top-k with k > dim is allowed, as in
 * Keras (tf.math.in_top_k): every class is then in the top k, so the value is 1. */
static loom_status check_shapes(const char *name, loom_metric_kind kind, int dim, int target_dim,
                                loom_error *err) {
    if (dim <= 0 || target_dim <= 0)
        return loom_set_error(err, LOOM_ERR_SHAPE,
                              "metric '%s': predictions of width %d and targets of width %d; both "
                              "must be at least 1",
                              name, dim, target_dim);
    switch (kind) {
    case METRIC_BINARY_ACCURACY:
    case METRIC_MAE:
    case METRIC_MSE:
    case METRIC_RMSE:
        if (target_dim != dim)
            return loom_set_error(err, LOOM_ERR_SHAPE,
                                  "metric '%s' compares targets and predictions element by "
                                  "element, but targets have width %d and predictions width %d",
                                  name, target_dim, dim);
        return LOOM_OK;
    case METRIC_CATEGORICAL_ACCURACY:
    case METRIC_TOP_K:
        if (dim < 2)
            return loom_set_error(err, LOOM_ERR_SHAPE,
                                  "metric '%s' needs at least 2 classes, but predictions have width "
                                  "1 (use binary_accuracy)",
                                  name);
        if (target_dim != dim)
            return loom_set_error(err, LOOM_ERR_SHAPE,
                                  "metric '%s' needs one-hot targets of width %d (the prediction "
                                  "width), got targets of width %d%s",
                                  name, dim, target_dim,
                                  target_dim == 1 ? " (for integer labels use the sparse_ metric)"
                                                  : "");
        return LOOM_OK;
    case METRIC_SPARSE_CATEGORICAL_ACCURACY:
    case METRIC_SPARSE_TOP_K:
        if (dim < 2)
            return loom_set_error(err, LOOM_ERR_SHAPE,
                                  "metric '%s' needs at least 2 classes, but predictions have width "
                                  "1 (use binary_accuracy)",
                                  name);
        if (target_dim != 1)
            return loom_set_error(err, LOOM_ERR_SHAPE,
                                  "metric '%s' needs one integer class label per row (targets of "
                                  "width 1), got targets of width %d",
                                  name, target_dim);
        return LOOM_OK;
    default:
        return loom_set_error(err, LOOM_ERR_NAME, "metric '%s' is not supported", name);
    }
}

loom_status loom_metric_resolve(const char *name, const loom_loss_impl *loss, int dim,
                                int target_dim, loom_metric_impl *out, loom_error *err) {
    /* The loss only decides target_dim, which the caller passes: Keras resolves from shapes. */
    (void)loss;
    if (!out) return loom_set_error(err, LOOM_ERR_ARGUMENT, "loom_metric_resolve: out is NULL");
    memset(out, 0, sizeof *out);
    if (!name || !name[0])
        return loom_set_error(err, LOOM_ERR_NAME,
                              "a metric name is NULL or empty; known metrics: " KNOWN_METRICS_TEXT);

    bool found = false;
    if (is_accuracy_alias(name)) {
        out->kind = resolve_accuracy(dim, target_dim);
        found = true;
    } else {
        for (size_t i = 0; i < sizeof known_metrics / sizeof known_metrics[0]; i++) {
            if (strcmp(name, known_metrics[i].name) == 0) {
                out->kind = known_metrics[i].kind;
                found = true;
                break;
            }
        }
    }
    if (!found)
        return loom_set_error(err, LOOM_ERR_NAME,
                              "unknown metric '%s'; known metrics: " KNOWN_METRICS_TEXT, name);

    loom_status s = check_shapes(name, out->kind, dim, target_dim, err);
    if (s != LOOM_OK) return s;

    out->k = (out->kind == METRIC_TOP_K || out->kind == METRIC_SPARSE_TOP_K) ? 5 : 0;
    /* Keras names a metric given as a string by that string ("acc" logs as acc). */
    snprintf(out->log_name, sizeof out->log_name, "%s", name);
    return LOOM_OK;
}

/* ---------------------------------------------------------------- per-row values */

/* First index of the largest value, as numpy/jax argmax: a NaN counts as the largest. */
static int argmax_row(const float *x, int dim) {
    int best = 0;
    for (int j = 0; j < dim; j++) {
        if (isnan(x[j])) return j;
        if (x[j] > x[best]) best = j;
    }
    return best;
}

/* tf.math.in_top_k: the label is in the top k when fewer than k classes score strictly higher,
 * so ties at the boundary count as in; a non-finite score at the label never does. */
static bool in_top_k(const float *pred, int dim, int label, int k) {
    if (label < 0 || label >= dim) return false;
    float at_label = pred[label];
    if (!isfinite(at_label)) return false;
    int higher = 0;
    for (int j = 0; j < dim; j++)
        if (pred[j] > at_label) higher++;
    return higher < k;
}

/* A sparse label stored as float: the class it names, or -1 when it names none. Keras casts to
 * int32 for top-k (truncation) but compares floats for accuracy (a label of 1.5 never matches);
 * `exact` picks which. */
static int sparse_label(float t, int dim, bool exact) {
    if (!isfinite(t) || t < 0.0f || t >= (float)dim) return -1;
    int c = (int)t;
    if (exact && (float)c != t) return -1;
    return c;
}

static double row_value(const loom_metric_impl *mt, const float *t, const float *p, int dim) {
    switch (mt->kind) {
    case METRIC_BINARY_ACCURACY: {
        /* keras binary_accuracy: cast(pred > 0.5) == target exactly, meaned over the row. */
        int hits = 0;
        for (int j = 0; j < dim; j++) hits += t[j] == (p[j] > 0.5f ? 1.0f : 0.0f);
        return (double)hits / dim;
    }
    case METRIC_CATEGORICAL_ACCURACY:
        return argmax_row(p, dim) == argmax_row(t, dim) ? 1.0 : 0.0;
    case METRIC_SPARSE_CATEGORICAL_ACCURACY:
        return sparse_label(t[0], dim, true) == argmax_row(p, dim) ? 1.0 : 0.0;
    case METRIC_TOP_K:
        return in_top_k(p, dim, argmax_row(t, dim), mt->k) ? 1.0 : 0.0;
    case METRIC_SPARSE_TOP_K:
        return in_top_k(p, dim, sparse_label(t[0], dim, false), mt->k) ? 1.0 : 0.0;
    case METRIC_MAE: {
        double s = 0.0;
        for (int j = 0; j < dim; j++) s += fabs((double)p[j] - (double)t[j]);
        return s / dim;
    }
    case METRIC_MSE:
    case METRIC_RMSE: {
        double s = 0.0;
        for (int j = 0; j < dim; j++) {
            double d = (double)p[j] - (double)t[j];
            s += d * d;
        }
        return s / dim;
    }
    default:
        return 0.0;
    }
}

/* ---------------------------------------------------------------- running state */

void loom_metric_update(loom_metric_impl *mt, const float *target, const float *pred,
                        size_t n_rows, int dim, int target_dim, const float *row_weight) {
    if (!row_weight) {
        for (size_t r = 0; r < n_rows; r++)
            mt->sum += row_value(mt, target + r * (size_t)target_dim, pred + r * (size_t)dim, dim);
        mt->count += (double)n_rows;
        return;
    }
    /* Keras applies an output's mask to its metrics as a sample weight: padded rows count 0 */
    for (size_t r = 0; r < n_rows; r++) {
        if (row_weight[r] == 0.0f) continue;
        mt->sum += row_weight[r] * row_value(mt, target + r * (size_t)target_dim, pred + r * (size_t)dim, dim);
        mt->count += row_weight[r];
    }
}

void loom_metric_reset(loom_metric_impl *mt) {
    mt->sum = 0.0;
    mt->count = 0.0;
}

float loom_metric_result(const loom_metric_impl *mt) {
    /* Keras Mean.result is divide_no_nan: 0 before any update. */
    if (mt->count <= 0.0) return 0.0f;
    double mean = mt->sum / mt->count;
    return (float)(mt->kind == METRIC_RMSE ? sqrt(mean) : mean);
}
