/* metrics_confusion.c — Keras 3's confusion-matrix metrics (keras/src/metrics/confusion_metrics.py,
 * f_score_metrics.py, iou_metrics.py and metrics_utils.py): AUC, Precision, Recall, F-beta and
 * MeanIoU. Each keeps weighted counts in a state of doubles sized when it is resolved, so an
 * update allocates nothing; the value is computed from the counts only when it is logged.
 * Keras keeps its counts in float32; doubles here make the counts exact for any epoch size, which
 * changes a result by float rounding at most. */
#include "ops/metrics_confusion.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define KERAS_EPSILON 1e-7     /* keras.backend.epsilon() */
#define KERAS_NEG_INF (-1e10f) /* metrics_utils.NEG_INF: a filtered top-k entry */

/* ---------------------------------------------------------------- arguments */

static loom_status number_arg(const char *spec, loom_metric_call *call, const char *key, double lo, double hi,
                              bool whole, bool *given, double *v, loom_error *err) {
    loom_metric_arg *a = loom_metric_arg_get(call, key);
    *given = a != NULL;
    if (!a) return LOOM_OK;
    if (a->n_numbers != 1 || a->numbers[0] < lo || a->numbers[0] > hi || (whole && a->numbers[0] != floor(a->numbers[0])))
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%s': %s must be a %s in [%g, %g], got '%s'", spec, key,
                              whole ? "whole number" : "number", lo, hi, a->text);
    *v = a->numbers[0];
    return LOOM_OK;
}

static loom_status flag_arg(const char *spec, loom_metric_call *call, const char *key, bool *given, bool *v,
                            loom_error *err) {
    loom_metric_arg *a = loom_metric_arg_get(call, key);
    *given = a != NULL;
    if (!a) return LOOM_OK;
    if (strcmp(a->text, "true") == 0 || strcmp(a->text, "True") == 0 || strcmp(a->text, "1") == 0)
        *v = true;
    else if (strcmp(a->text, "false") == 0 || strcmp(a->text, "False") == 0 || strcmp(a->text, "0") == 0)
        *v = false;
    else
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%s': %s must be true or false, got '%s'", spec, key, a->text);
    return LOOM_OK;
}

/* The word value of `key` among the choices (case-insensitive, as Keras's from_str): its index,
 * or def when absent; -1 with an error when it is none of them. */
static int choice_arg(const char *spec, loom_metric_call *call, const char *key, const char *const *choices, int n,
                      int def, loom_error *err) {
    loom_metric_arg *a = loom_metric_arg_get(call, key);
    if (!a) return def;
    for (int i = 0; i < n; i++) {
        const char *x = a->text, *y = choices[i];
        while (*x && *y && (*x | 32) == (*y | 32)) x++, y++;
        if (!*x && !*y) return i;
    }
    char list[128] = "";
    for (int i = 0; i < n; i++) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", choices[i]);
    }
    loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%s': %s must be one of %s, got '%s'", spec, key, list, a->text);
    return -1;
}

static loom_status take_thresholds(loom_metric_impl *mt, const double *v, int n, loom_error *err) {
    mt->thresholds = malloc((size_t)n * sizeof *mt->thresholds);
    if (!mt->thresholds) return loom_set_error(err, LOOM_ERR_MEMORY, "metric: out of memory");
    for (int i = 0; i < n; i++) mt->thresholds[i] = (float)v[i];
    mt->n_thresholds = n;
    return LOOM_OK;
}

/* Keras's is_evenly_distributed_thresholds: at least 3, each within epsilon of i/(n-1). */
static bool evenly_distributed(const double *t, int n) {
    if (n < 3) return false;
    for (int i = 0; i < n; i++)
        if (fabs(t[i] - (double)((float)i / (float)(n - 1))) > KERAS_EPSILON + 1e-5 * fabs((float)i / (float)(n - 1)))
            return false;
    return true;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static loom_status auc_args(const char *spec, loom_metric_call *call, loom_metric_impl *mt, loom_error *err) {
    static const char *const curves[] = {"ROC", "PR"};
    static const char *const sums[] = {"interpolation", "minoring", "majoring"};
    int c = choice_arg(spec, call, "curve", curves, 2, AUC_ROC, err);
    int su = choice_arg(spec, call, "summation_method", sums, 3, AUC_INTERPOLATION, err);
    if (c < 0 || su < 0) return err->code;
    mt->curve = (loom_auc_curve)c;
    mt->summation = (loom_auc_summation)su;
    bool given, ml = false;
    loom_status s;
    if ((s = flag_arg(spec, call, "from_logits", &given, &mt->from_logits, err))) return s;
    if ((s = flag_arg(spec, call, "multi_label", &given, &ml, err))) return s;
    if (ml)
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%s': multi_label=True is not supported (one curve over "
                                                      "every entry of the output)", spec);
    double n = 200;
    if ((s = number_arg(spec, call, "num_thresholds", 2, 100000, true, &given, &n, err))) return s;
    loom_metric_arg *t = loom_metric_arg_get(call, "thresholds");
    double th[LOOM_METRIC_MAX_THRESHOLDS + 2];
    int nt;
    if (t) {
        /* keras: sorted, then the end points -epsilon and 1 + epsilon around them */
        if (t->n_numbers < 1)
            return loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%s': thresholds must be a number or a list of numbers",
                                  spec);
        nt = t->n_numbers + 2;
        memcpy(th + 1, t->numbers, (size_t)t->n_numbers * sizeof *th);
        qsort(th + 1, (size_t)t->n_numbers, sizeof *th, cmp_double);
        for (int i = 1; i < nt - 1; i++)
            if (th[i] < 0 || th[i] > 1)
                return loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%s': thresholds must be in [0, 1], got %g", spec, th[i]);
        th[0] = 0.0;
        th[nt - 1] = 1.0;
        mt->evenly = evenly_distributed(th, nt);
        th[0] = 0.0 - KERAS_EPSILON;
        th[nt - 1] = 1.0 + KERAS_EPSILON;
        return take_thresholds(mt, th, nt, err);
    }
    /* keras: [(i + 1) / (n - 1) for i in range(n - 2)] between -epsilon and 1 + epsilon */
    nt = (int)n;
    mt->evenly = true;
    mt->thresholds = malloc((size_t)nt * sizeof *mt->thresholds);
    if (!mt->thresholds) return loom_set_error(err, LOOM_ERR_MEMORY, "metric: out of memory");
    mt->n_thresholds = nt;
    mt->thresholds[0] = (float)(0.0 - KERAS_EPSILON);
    for (int i = 1; i < nt - 1; i++) mt->thresholds[i] = (float)((double)i / (nt - 1));
    mt->thresholds[nt - 1] = (float)(1.0 + KERAS_EPSILON);
    return LOOM_OK;
}

static loom_status precision_recall_args(const char *spec, loom_metric_call *call, loom_metric_impl *mt,
                                         loom_error *err) {
    bool given;
    double v = 0;
    loom_status s;
    mt->class_id = -1;
    if ((s = number_arg(spec, call, "top_k", 1, 1e6, true, &given, &v, err))) return s;
    mt->top_k = given ? (int)v : 0;
    if ((s = number_arg(spec, call, "class_id", 0, 1e6, true, &given, &v, err))) return s;
    if (given) mt->class_id = (int)v;
    loom_metric_arg *t = loom_metric_arg_get(call, "thresholds");
    if (!t) {
        /* keras: 0.5, or NEG_INF with top_k (every kept entry is positive) */
        double d = mt->top_k ? (double)KERAS_NEG_INF : 0.5;
        return take_thresholds(mt, &d, 1, err);
    }
    if (t->n_numbers < 1)
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%s': thresholds must be a number or a list of numbers", spec);
    for (int i = 0; i < t->n_numbers; i++)
        if (t->numbers[i] < 0 || t->numbers[i] > 1)
            return loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%s': threshold values must be in [0, 1], got %g", spec,
                                  t->numbers[i]);
    return take_thresholds(mt, t->numbers, t->n_numbers, err);
}

static loom_status fbeta_args(const char *spec, loom_metric_call *call, loom_metric_impl *mt, loom_error *err) {
    static const char *const avgs[] = {"None", "micro", "macro", "weighted"};
    int a = choice_arg(spec, call, "average", avgs, 4, FBETA_NONE, err);
    if (a < 0) return err->code;
    mt->average = (loom_fbeta_average)a;
    bool given;
    double v = 0;
    loom_status s = number_arg(spec, call, "threshold", 0, 1, false, &given, &v, err);
    if (s) return s;
    if (given && v <= 0)
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%s': threshold must be in (0, 1], got %g", spec, v);
    mt->threshold = given ? (float)v : NAN;
    return LOOM_OK;
}

static loom_status iou_args(const char *spec, loom_metric_call *call, loom_metric_impl *mt, loom_error *err) {
    bool given, given_t, given_p, sparse_t = true, sparse_p = true;
    double v = 0;
    loom_status s = number_arg(spec, call, "num_classes", 2, 1024, true, &given, &v, err);
    if (s) return s;
    if (!given)
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%s': MeanIoU needs num_classes (\"mean_iou(num_classes=3)\")",
                              spec);
    mt->num_classes = (int)v;
    mt->ignore_class = -1;
    if ((s = number_arg(spec, call, "ignore_class", 0, 1e6, true, &given, &v, err))) return s;
    if (given) mt->ignore_class = (int)v;
    if ((s = flag_arg(spec, call, "sparse_y_true", &given_t, &sparse_t, err)) ||
        (s = flag_arg(spec, call, "sparse_y_pred", &given_p, &sparse_p, err)))
        return s;
    /* the shapes say which form each side has; an explicit flag must agree with them */
    int C = mt->num_classes;
    bool shape_t = mt->target_dim == 1, shape_p = mt->dim == 1;
    if (!shape_t && mt->target_dim != C)
        return loom_set_error(err, LOOM_ERR_SHAPE, "metric '%s': targets of width %d are neither class indices (width 1) "
                                                   "nor one-hot over num_classes=%d", spec, mt->target_dim, C);
    if (!shape_p && mt->dim != C)
        return loom_set_error(err, LOOM_ERR_SHAPE, "metric '%s': predictions of width %d are neither class indices (width "
                                                   "1) nor scores over num_classes=%d", spec, mt->dim, C);
    if ((given_t && sparse_t != shape_t) || (given_p && sparse_p != shape_p))
        return loom_set_error(err, LOOM_ERR_SHAPE, "metric '%s': sparse_y_%s=%s does not fit a width of %d", spec,
                              (given_t && sparse_t != shape_t) ? "true" : "pred",
                              ((given_t && sparse_t != shape_t) ? sparse_t : sparse_p) ? "true" : "false",
                              (given_t && sparse_t != shape_t) ? mt->target_dim : mt->dim);
    return LOOM_OK;
}

loom_status loom_confusion_parse_args(const char *spec, loom_metric_call *call, loom_metric_impl *mt, loom_error *err) {
    switch (mt->kind) {
    case METRIC_AUC: return auc_args(spec, call, mt, err);
    case METRIC_PRECISION:
    case METRIC_RECALL: return precision_recall_args(spec, call, mt, err);
    case METRIC_FBETA: return fbeta_args(spec, call, mt, err);
    case METRIC_MEAN_IOU: return iou_args(spec, call, mt, err);
    default: return loom_set_error(err, LOOM_ERR_NAME, "metric '%s' is not a confusion-matrix metric", spec);
    }
}

/* ---------------------------------------------------------------- state */

/* State layouts (doubles):
 *   Precision / Recall: tp[n], fp[n], fn[n] per threshold
 *   AUC: per bucket (evenly) or per threshold: tp[n], fp[n]; then total positive, total negative
 *        weight; then tp[n], fp[n] cumulated by the result (scratch)
 *   F-beta: tp[C], fp[C], fn[C], support[C] (C = 1 for micro)
 *   MeanIoU: the confusion matrix [true][pred], C x C */
loom_status loom_confusion_setup(loom_metric_impl *mt, loom_error *err) {
    const char *name = mt->log_name;
    if (mt->kind != METRIC_MEAN_IOU && mt->target_dim != mt->dim)
        return loom_set_error(err, LOOM_ERR_SHAPE, "metric '%s' compares targets and predictions entry by entry (one-hot or "
                                                   "multi-hot targets), but targets have width %d and predictions width %d",
                              name, mt->target_dim, mt->dim);
    size_t n = (size_t)mt->n_thresholds, C = (size_t)mt->dim;
    switch (mt->kind) {
    case METRIC_PRECISION:
    case METRIC_RECALL:
        if (mt->class_id >= mt->dim)
            return loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%s': class_id %d, but predictions have %d entries", name,
                                  mt->class_id, mt->dim);
        if (mt->top_k > mt->dim)
            return loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%s': top_k %d, but predictions have %d entries", name,
                                  mt->top_k, mt->dim);
        mt->n_values = mt->n_thresholds;
        mt->n_state = 3 * n;
        break;
    case METRIC_AUC:
        mt->n_values = 1;
        mt->n_state = 4 * n + 2;
        break;
    case METRIC_FBETA:
        mt->n_values = mt->average == FBETA_NONE ? mt->dim : 1;
        mt->n_state = 4 * (mt->average == FBETA_MICRO ? 1 : C);
        break;
    case METRIC_MEAN_IOU:
        mt->n_values = 1;
        mt->n_state = (size_t)mt->num_classes * (size_t)mt->num_classes;
        break;
    default:
        return loom_set_error(err, LOOM_ERR_NAME, "metric '%s' is not a confusion-matrix metric", name);
    }
    mt->state = calloc(mt->n_state, sizeof *mt->state);
    if (!mt->state) return loom_set_error(err, LOOM_ERR_MEMORY, "metric '%s': out of memory for its state", name);
    return LOOM_OK;
}

/* ---------------------------------------------------------------- updates */

/* metrics_utils._filter_top_k: entry j of a row is kept when fewer than k entries outrank it
 * (higher, or equal at a lower index, as top_k breaks ties). */
static bool in_top_k_entry(const float *row, int dim, int j, int k) {
    int ahead = 0;
    for (int i = 0; i < dim && ahead < k; i++) ahead += row[i] > row[j] || (i < j && row[i] == row[j]);
    return ahead < k;
}

static void precision_recall_update(loom_metric_impl *mt, const float *target, const float *pred, size_t n_rows,
                                    const float *row_weight) {
    int dim = mt->dim, n = mt->n_thresholds;
    double *tp = mt->state, *fp = tp + n, *fn = fp + n;
    int j0 = mt->class_id >= 0 ? mt->class_id : 0, j1 = mt->class_id >= 0 ? mt->class_id + 1 : dim;
    for (size_t r = 0; r < n_rows; r++) {
        double w = row_weight ? row_weight[r] : 1.0;
        if (w == 0.0) continue;
        const float *p = pred + r * (size_t)dim, *t = target + r * (size_t)dim;
        for (int j = j0; j < j1; j++) {
            float v = mt->top_k && !in_top_k_entry(p, dim, j, mt->top_k) ? KERAS_NEG_INF : p[j];
            bool label = t[j] != 0.0f; /* keras casts y_true to bool */
            for (int i = 0; i < n; i++) {
                bool pos = v > mt->thresholds[i];
                if (pos && label) tp[i] += w;
                else if (pos) fp[i] += w;
                else if (label) fn[i] += w;
            }
        }
    }
}

static void auc_update(loom_metric_impl *mt, const float *target, const float *pred, size_t n_rows,
                       const float *row_weight) {
    int n = mt->n_thresholds;
    size_t entries = (size_t)mt->dim;
    double *tp = mt->state, *fp = tp + n, *totals = fp + n;
    const float scale = (float)(n - 1);
    for (size_t r = 0; r < n_rows; r++) {
        double w = row_weight ? row_weight[r] : 1.0;
        if (w == 0.0) continue;
        for (size_t j = 0; j < entries; j++) {
            float p = pred[r * entries + j], t = target[r * entries + j];
            if (mt->from_logits) p = 1.0f / (1.0f + expf(-p));
            if (isnan(p)) continue;
            if (mt->evenly) {
                /* _update_confusion_matrix_variables_optimized: bucket ceil(p (n-1)) - 1, the first
                 * bucket taking everything down to -epsilon (relu); counts from y_true itself */
                float b = ceilf(p * scale) - 1.0f;
                int bucket = b <= 0.0f ? 0 : b >= scale ? n - 1 : (int)b;
                tp[bucket] += t * w;
                fp[bucket] += (1.0 - t) * w;
                totals[0] += t * w;
                totals[1] += (1.0 - t) * w;
            } else {
                bool label = t != 0.0f;
                for (int i = 0; i < n; i++)
                    if (p > mt->thresholds[i]) (label ? tp : fp)[i] += w;
                totals[label ? 0 : 1] += w;
            }
        }
    }
}

static void fbeta_update(loom_metric_impl *mt, const float *target, const float *pred, size_t n_rows,
                         const float *row_weight) {
    int dim = mt->dim;
    bool micro = mt->average == FBETA_MICRO;
    size_t C = micro ? 1 : (size_t)dim;
    double *tp = mt->state, *fp = tp + C, *fn = fp + C, *support = fn + C;
    for (size_t r = 0; r < n_rows; r++) {
        double w = row_weight ? row_weight[r] : 1.0;
        if (w == 0.0) continue;
        const float *p = pred + r * (size_t)dim, *t = target + r * (size_t)dim;
        float rowmax = p[0];
        for (int j = 1; j < dim; j++) rowmax = p[j] > rowmax ? p[j] : rowmax;
        for (int j = 0; j < dim; j++) {
            /* keras: threshold None marks the row's maximum (never an all-zero row) */
            double yp = isnan(mt->threshold) ? (p[j] >= rowmax && fabsf(p[j]) > 1e-9f) : p[j] > mt->threshold;
            double yt = t[j];
            size_t c = micro ? 0 : (size_t)j;
            tp[c] += yp * yt * w;
            fp[c] += yp * (1.0 - yt) * w;
            fn[c] += (1.0 - yp) * yt * w;
            support[c] += yt * w;
        }
    }
}

/* A class index written as a float (keras casts to int32: truncation), or -1 outside [0, C). */
static int class_of(float v, int C) {
    if (!(v > -1.0f && v < (float)C)) return -1;
    return (int)v;
}

static int argmax_of(const float *x, int dim) {
    int best = 0;
    for (int j = 1; j < dim; j++)
        if (x[j] > x[best]) best = j;
    return best;
}

static void iou_update(loom_metric_impl *mt, const float *target, const float *pred, size_t n_rows,
                       const float *row_weight) {
    int C = mt->num_classes;
    for (size_t r = 0; r < n_rows; r++) {
        double w = row_weight ? row_weight[r] : 1.0;
        if (w == 0.0) continue;
        int yt = mt->target_dim == 1 ? class_of(target[r], C) : argmax_of(target + r * (size_t)C, C);
        int yp = mt->dim == 1 ? class_of(pred[r], C) : argmax_of(pred + r * (size_t)C, C);
        if (yt < 0 || yp < 0 || yt == mt->ignore_class) continue;
        mt->state[(size_t)yt * C + yp] += w;
    }
}

void loom_confusion_update(loom_metric_impl *mt, const float *target, const float *pred, size_t n_rows,
                           const float *row_weight) {
    switch (mt->kind) {
    case METRIC_PRECISION:
    case METRIC_RECALL: precision_recall_update(mt, target, pred, n_rows, row_weight); break;
    case METRIC_AUC: auc_update(mt, target, pred, n_rows, row_weight); break;
    case METRIC_FBETA: fbeta_update(mt, target, pred, n_rows, row_weight); break;
    case METRIC_MEAN_IOU: iou_update(mt, target, pred, n_rows, row_weight); break;
    default: break;
    }
}

/* ---------------------------------------------------------------- results */

static double divide_no_nan(double a, double b) { return b == 0.0 ? 0.0 : a / b; }

/* AUC.result and AUC.interpolate_pr_auc over the cumulated counts. */
static double auc_result(const loom_metric_impl *mt) {
    int n = mt->n_thresholds;
    const double *tpb = mt->state, *fpb = tpb + n, *totals = fpb + n;
    double *tp = mt->state + 2 * n + 2, *fp = tp + n;
    if (mt->evenly) {
        /* counts above threshold i: the buckets from i up */
        double a = 0, b = 0;
        for (int i = n - 1; i >= 0; i--) {
            a += tpb[i];
            b += fpb[i];
            tp[i] = a;
            fp[i] = b;
        }
    } else {
        memcpy(tp, tpb, (size_t)n * sizeof *tp);
        memcpy(fp, fpb, (size_t)n * sizeof *fp);
    }
    double total = 0;
    if (mt->curve == AUC_PR && mt->summation == AUC_INTERPOLATION) {
        /* Davis & Goadrich: precision interpolated linearly in the true positives between two
         * thresholds (keras interpolate_pr_auc) */
        for (int i = 0; i + 1 < n; i++) {
            double dtp = tp[i] - tp[i + 1];
            double p0 = tp[i] + fp[i], p1 = tp[i + 1] + fp[i + 1];
            double dp = p0 - p1;
            double slope = divide_no_nan(dtp, dp > 0 ? dp : 0);
            double intercept = tp[i + 1] - slope * p1;
            double ratio = (p0 > 0 && p1 > 0) ? divide_no_nan(p0, p1 > 0 ? p1 : 0) : 1.0;
            double fn1 = totals[0] - tp[i + 1];
            double denom = tp[i + 1] + fn1;
            total += divide_no_nan(slope * (dtp + intercept * log(ratio)), denom > 0 ? denom : 0);
        }
        return total;
    }
    for (int i = 0; i + 1 < n; i++) {
        double x0, x1, y0, y1;
        double fn0 = totals[0] - tp[i], fn1 = totals[0] - tp[i + 1];
        double r0 = divide_no_nan(tp[i], tp[i] + fn0), r1 = divide_no_nan(tp[i + 1], tp[i + 1] + fn1);
        if (mt->curve == AUC_ROC) {
            double tn0 = totals[1] - fp[i], tn1 = totals[1] - fp[i + 1];
            x0 = divide_no_nan(fp[i], fp[i] + tn0);
            x1 = divide_no_nan(fp[i + 1], fp[i + 1] + tn1);
            y0 = r0;
            y1 = r1;
        } else {
            x0 = r0;
            x1 = r1;
            y0 = divide_no_nan(tp[i], tp[i] + fp[i]);
            y1 = divide_no_nan(tp[i + 1], tp[i + 1] + fp[i + 1]);
        }
        double h = mt->summation == AUC_INTERPOLATION ? (y0 + y1) / 2 : mt->summation == AUC_MINORING ? fmin(y0, y1)
                                                                                                      : fmax(y0, y1);
        total += (x0 - x1) * h;
    }
    return total;
}

static void fbeta_results(const loom_metric_impl *mt, float *values) {
    bool micro = mt->average == FBETA_MICRO;
    size_t C = micro ? 1 : (size_t)mt->dim;
    const double *tp = mt->state, *fp = tp + C, *fn = fp + C, *support = fn + C;
    double b2 = (double)mt->beta * mt->beta, sum = 0, support_sum = 0, weighted = 0;
    for (size_t c = 0; c < C; c++) support_sum += support[c];
    for (size_t c = 0; c < C; c++) {
        double precision = tp[c] / (tp[c] + fp[c] + KERAS_EPSILON);
        double recall = tp[c] / (tp[c] + fn[c] + KERAS_EPSILON);
        double f = precision * recall / (b2 * precision + recall + KERAS_EPSILON) * (1 + b2);
        if (mt->average == FBETA_NONE) values[c] = (float)f;
        sum += f;
        weighted += f * support[c] / (support_sum + KERAS_EPSILON);
    }
    if (mt->average == FBETA_WEIGHTED) values[0] = (float)weighted;
    else if (mt->average != FBETA_NONE) values[0] = (float)(sum / (double)C);
}

static double iou_result(const loom_metric_impl *mt) {
    int C = mt->num_classes;
    const double *cm = mt->state;
    double sum = 0, valid = 0;
    for (int c = 0; c < C; c++) {
        double row = 0, col = 0; /* true c, predicted c */
        for (int j = 0; j < C; j++) {
            row += cm[(size_t)c * C + j];
            col += cm[(size_t)j * C + c];
        }
        double tp = cm[(size_t)c * C + c], denom = row + col - tp;
        if (denom > 1e-9) valid += 1;
        sum += tp / (denom + KERAS_EPSILON);
    }
    return sum / (valid + KERAS_EPSILON);
}

void loom_confusion_results(const loom_metric_impl *mt, float *values) {
    switch (mt->kind) {
    case METRIC_PRECISION:
    case METRIC_RECALL: {
        int n = mt->n_thresholds;
        const double *tp = mt->state, *fp = tp + n, *fn = fp + n;
        for (int i = 0; i < n; i++)
            values[i] = (float)divide_no_nan(tp[i], tp[i] + (mt->kind == METRIC_PRECISION ? fp[i] : fn[i]));
        break;
    }
    case METRIC_AUC: values[0] = (float)auc_result(mt); break;
    case METRIC_FBETA: fbeta_results(mt, values); break;
    case METRIC_MEAN_IOU: values[0] = (float)iou_result(mt); break;
    default: break;
    }
}
