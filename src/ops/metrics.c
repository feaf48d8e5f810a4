/* metrics.c — per-output metrics with Keras 3 semantics (keras/src/metrics/): resolving a spec
 * to a metric, and the running-mean metrics. The confusion-matrix metrics (AUC, Precision,
 * Recall, F-beta, MeanIoU) live in metrics_confusion.c, user metrics are called from here.
 *
 * Every running-mean metric is a Keras MeanMetricWrapper (or, for rmse, a Mean of squared errors): a value
 * per row, then a running mean over rows. The state is a double sum of row values and a row count,
 * so an epoch value weights each batch by its size, and rmse takes the square root only at the end
 * (sqrt of the pooled mean, not a mean of batch rmses). */
#include "ops/metrics.h"
#include "ops/metrics_confusion.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Keras's default object names (the log name of the "Name(...)" form), by kind. */
static const char *const default_object_name[] = {
    [METRIC_BINARY_ACCURACY] = "binary_accuracy",
    [METRIC_CATEGORICAL_ACCURACY] = "categorical_accuracy",
    [METRIC_SPARSE_CATEGORICAL_ACCURACY] = "sparse_categorical_accuracy",
    [METRIC_TOP_K] = "top_k_categorical_accuracy",
    [METRIC_SPARSE_TOP_K] = "sparse_top_k_categorical_accuracy",
    [METRIC_MAE] = "mean_absolute_error",
    [METRIC_MSE] = "mean_squared_error",
    [METRIC_RMSE] = "root_mean_squared_error",
    [METRIC_PRECISION] = "precision",
    [METRIC_RECALL] = "recall",
    [METRIC_AUC] = "auc",
    [METRIC_FBETA] = "fbeta_score",
    [METRIC_MEAN_IOU] = "mean_io_u",
};

/* The confusion-matrix metrics: Keras's class names and their snake-case forms. */
static const metric_name confusion_metrics[] = {
    {"auc", METRIC_AUC},
    {"AUC", METRIC_AUC},
    {"precision", METRIC_PRECISION},
    {"Precision", METRIC_PRECISION},
    {"recall", METRIC_RECALL},
    {"Recall", METRIC_RECALL},
    {"f1_score", METRIC_FBETA},
    {"F1Score", METRIC_FBETA},
    {"fbeta_score", METRIC_FBETA},
    {"f_beta_score", METRIC_FBETA},
    {"FBetaScore", METRIC_FBETA},
    {"mean_iou", METRIC_MEAN_IOU},
    {"mean_io_u", METRIC_MEAN_IOU},
    {"MeanIoU", METRIC_MEAN_IOU},
};

#define KNOWN_METRICS_TEXT                                                                      \
    "accuracy (acc), binary_accuracy, categorical_accuracy, sparse_categorical_accuracy, "       \
    "top_k_categorical_accuracy, sparse_top_k_categorical_accuracy, mae (mean_absolute_error), " \
    "mse (mean_squared_error), rmse (root_mean_squared_error), auc, precision, recall, "         \
    "f1_score, fbeta_score, mean_iou, or a metric registered with loom_register_metric"

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

/* ---------------------------------------------------------------- user metrics (registry) */

#define MAX_REGISTERED 64
typedef struct registered_metric {
    char name[LOOM_NAME_MAX];
    loom_custom_metric def; /* def.name points at name */
} registered_metric;
static registered_metric registry[MAX_REGISTERED];
static int n_registered;

static const loom_custom_metric *loom_metric_registered(const char *name) {
    for (int i = 0; i < n_registered; i++)
        if (strcmp(registry[i].name, name) == 0) return &registry[i].def;
    return NULL;
}

static void write_err(char *err, size_t errlen, const char *msg) {
    if (err && errlen) snprintf(err, errlen, "%s", msg);
}

loom_status loom_register_metric(const loom_custom_metric *def, char *err, size_t errlen) {
    loom_error e = {0};
    loom_status s = LOOM_OK;
    if (!def || !def->name || !def->name[0] || !def->update || !def->result)
        s = loom_set_error(&e, LOOM_ERR_ARGUMENT, "register_metric: a user metric needs a name, update and result");
    else if (strlen(def->name) >= LOOM_NAME_MAX || strpbrk(def->name, "()=,[]'\"/"))
        s = loom_set_error(&e, LOOM_ERR_NAME, "register_metric: '%.64s' is too long or has one of ()=,[]'\"/", def->name);
    else if (def->n_state < 0 || def->n_state > 65536)
        s = loom_set_error(&e, LOOM_ERR_ARGUMENT, "register_metric: %s: n_state %d is outside 0..65536", def->name,
                           def->n_state);
    else if (!loom_metric_registered(def->name)) {
        /* a built-in name resolves (or fails on its shape or arguments), an unknown one fails on
         * the name: only those may be registered, so no built-in is ever shadowed */
        loom_metric_impl probe;
        loom_error pe = {0};
        loom_status r = loom_metric_resolve(def->name, NULL, 2, 2, &probe, &pe);
        if (r == LOOM_OK) loom_metric_release(&probe);
        if (r != LOOM_ERR_NAME) s = loom_set_error(&e, LOOM_ERR_NAME, "register_metric: '%s' is a built-in metric", def->name);
    }
    if (!s) {
        registered_metric *r = NULL;
        for (int i = 0; i < n_registered; i++)
            if (strcmp(registry[i].name, def->name) == 0) r = &registry[i];
        if (!r && n_registered >= MAX_REGISTERED)
            s = loom_set_error(&e, LOOM_ERR_COUNT, "register_metric: %s: already %d user metrics", def->name, MAX_REGISTERED);
        else {
            if (!r) r = &registry[n_registered++];
            snprintf(r->name, sizeof r->name, "%s", def->name);
            r->def = *def;
            r->def.name = r->name;
        }
    }
    write_err(err, errlen, s ? e.msg : "");
    return s;
}

static bool lookup(const metric_name *table, size_t n, const char *name, loom_metric_kind *kind) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, table[i].name) == 0) {
            *kind = table[i].kind;
            return true;
        }
    return false;
}

/* Arguments of the running-mean metrics, as their Keras constructors: BinaryAccuracy(threshold),
 * TopKCategoricalAccuracy(k). */
static loom_status mean_metric_args(const char *spec, loom_metric_call *call, loom_metric_impl *mt, loom_error *err) {
    mt->threshold = 0.5f;
    mt->k = (mt->kind == METRIC_TOP_K || mt->kind == METRIC_SPARSE_TOP_K) ? 5 : 0;
    loom_metric_arg *a;
    if (mt->kind == METRIC_BINARY_ACCURACY && (a = loom_metric_arg_get(call, "threshold"))) {
        if (a->n_numbers != 1)
            return loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%s': threshold must be a number", spec);
        mt->threshold = (float)a->numbers[0];
    }
    if (mt->k && (a = loom_metric_arg_get(call, "k"))) {
        if (a->n_numbers != 1 || a->numbers[0] < 1 || a->numbers[0] > 1e6 || a->numbers[0] != floor(a->numbers[0]))
            return loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%s': k must be a whole number >= 1", spec);
        mt->k = (int)a->numbers[0];
    }
    return LOOM_OK;
}

static loom_status resolve_spec(const char *spec, int dim, int target_dim, loom_metric_impl *out, loom_error *err) {
    loom_metric_call call;
    loom_status s = loom_metric_parse(spec, &call, err);
    if (s) return s;
    const char *name = call.base;
    bool confusion = false;
    /* F1Score is FBetaScore with beta 1: it takes no beta and has its own object name */
    bool f1 = strcmp(name, "f1_score") == 0 || strcmp(name, "F1Score") == 0;
    out->n_values = 1;
    out->dim = dim;
    out->target_dim = target_dim;
    if (is_accuracy_alias(name)) {
        out->kind = resolve_accuracy(dim, target_dim);
    } else if (lookup(known_metrics, sizeof known_metrics / sizeof known_metrics[0], name, &out->kind)) {
    } else if (lookup(confusion_metrics, sizeof confusion_metrics / sizeof confusion_metrics[0], name, &out->kind)) {
        confusion = true;
    } else if (loom_metric_registered(name)) {
        out->custom = *loom_metric_registered(name);
        out->kind = METRIC_CUSTOM;
    } else {
        return loom_set_error(err, LOOM_ERR_NAME, "unknown metric '%s'; known metrics: " KNOWN_METRICS_TEXT, name);
    }

    if (confusion) {
        out->beta = 1.0f;
        loom_metric_arg *b = f1 ? NULL : (out->kind == METRIC_FBETA ? loom_metric_arg_get(&call, "beta") : NULL);
        if (b) {
            if (b->n_numbers != 1 || !(b->numbers[0] > 0))
                return loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%s': beta must be a number > 0", spec);
            out->beta = (float)b->numbers[0];
        }
        if ((s = loom_confusion_parse_args(spec, &call, out, err))) return s;
    } else if (out->kind != METRIC_CUSTOM) {
        if ((s = check_shapes(name, out->kind, dim, target_dim, err))) return s;
        if ((s = mean_metric_args(spec, &call, out, err))) return s;
    }
    loom_metric_arg *nm = loom_metric_arg_get(&call, "name");
    for (int i = 0; i < call.n_args; i++)
        if (!call.args[i].used)
            return loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%s': unknown argument '%s'", spec, call.args[i].key);

    /* Keras names a metric given as a string by that string ("acc" logs as acc), an object by its
     * name, by default the class's; a user metric by its registered name. */
    const char *log = name;
    if (call.has_parens && out->kind != METRIC_CUSTOM) log = f1 ? "f1_score" : default_object_name[out->kind];
    if (nm) log = nm->text;
    snprintf(out->log_name, sizeof out->log_name, "%s", log);
    if (confusion) return loom_confusion_setup(out, err);
    if (out->kind == METRIC_CUSTOM && out->custom.n_state > 0) {
        out->n_state = (size_t)out->custom.n_state;
        out->state = calloc(out->n_state, sizeof *out->state);
        if (!out->state) return loom_set_error(err, LOOM_ERR_MEMORY, "metric '%s': out of memory for its state", spec);
    }
    return LOOM_OK;
}

loom_status loom_metric_resolve(const char *spec, const loom_loss_impl *loss, int dim, int target_dim,
                                loom_metric_impl *out, loom_error *err) {
    /* The loss only decides target_dim, which the caller passes: Keras resolves from shapes. */
    (void)loss;
    if (!out) return loom_set_error(err, LOOM_ERR_ARGUMENT, "loom_metric_resolve: out is NULL");
    memset(out, 0, sizeof *out);
    if (!spec || !spec[0])
        return loom_set_error(err, LOOM_ERR_NAME,
                              "a metric name is NULL or empty; known metrics: " KNOWN_METRICS_TEXT);
    if (dim <= 0 || target_dim <= 0)
        return loom_set_error(err, LOOM_ERR_SHAPE,
                              "metric '%s': predictions of width %d and targets of width %d; both must be at least 1",
                              spec, dim, target_dim);
    loom_status s = resolve_spec(spec, dim, target_dim, out, err);
    if (s) {
        loom_metric_release(out);
        return s;
    }
    loom_metric_reset(out);
    return LOOM_OK;
}

void loom_metric_release(loom_metric_impl *mt) {
    if (!mt) return;
    free(mt->state);
    free(mt->thresholds);
    mt->state = NULL;
    mt->thresholds = NULL;
    mt->n_state = 0;
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
        /* keras binary_accuracy: cast(pred > threshold) == target exactly, meaned over the row. */
        int hits = 0;
        for (int j = 0; j < dim; j++) hits += t[j] == (p[j] > mt->threshold ? 1.0f : 0.0f);
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
    if (mt->kind == METRIC_CUSTOM) {
        const loom_custom_metric *c = &mt->custom;
        c->update(mt->state, target, pred, row_weight, n_rows, dim, target_dim, c->user);
        return;
    }
    if (mt->kind >= METRIC_PRECISION) {
        loom_confusion_update(mt, target, pred, n_rows, row_weight);
        return;
    }
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
    if (mt->state) memset(mt->state, 0, mt->n_state * sizeof *mt->state);
    if (mt->kind == METRIC_CUSTOM && mt->custom.reset) mt->custom.reset(mt->state, mt->custom.user);
}

void loom_metric_results(const loom_metric_impl *mt, float *values) {
    if (mt->kind == METRIC_CUSTOM) {
        values[0] = (float)mt->custom.result(mt->state, mt->custom.user);
        return;
    }
    if (mt->kind >= METRIC_PRECISION) {
        loom_confusion_results(mt, values);
        return;
    }
    /* Keras Mean.result is divide_no_nan: 0 before any update. */
    if (mt->count <= 0.0) {
        values[0] = 0.0f;
        return;
    }
    double mean = mt->sum / mt->count;
    values[0] = (float)(mt->kind == METRIC_RMSE ? sqrt(mean) : mean);
}

float loom_metric_result(const loom_metric_impl *mt) {
    float v[LOOM_METRIC_MAX_THRESHOLDS];
    if (mt->n_values > LOOM_METRIC_MAX_THRESHOLDS) return NAN;
    loom_metric_results(mt, v);
    return v[0];
}

void loom_metric_value_suffix(const loom_metric_impl *mt, int i, char *buf, size_t len) {
    buf[0] = '\0';
    if (mt->n_values <= 1) return;
    if (mt->kind == METRIC_PRECISION || mt->kind == METRIC_RECALL)
        snprintf(buf, len, "/%g", (double)mt->thresholds[i]);
    else
        snprintf(buf, len, "/%d", i);
}
