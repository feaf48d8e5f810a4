/* metric_spec.h — the text of a metric spec: "name" or "name(key=value, ...)" with Keras's
 * constructor arguments (metric_spec.c; internal). */
#ifndef LOOM_METRIC_SPEC_H
#define LOOM_METRIC_SPEC_H

#include "base/base.h"

/* The longest metric spec ("auc(curve=PR, num_thresholds=50)") kept with the model. */
#define LOOM_METRIC_SPEC_MAX 256
/* The longest list of numbers in an argument (Precision / Recall thresholds: one log key each). */
#define LOOM_METRIC_MAX_THRESHOLDS 32

#define LOOM_METRIC_MAX_ARGS 12
typedef struct loom_metric_arg {
    char key[32];
    char text[64];            /* the value as written, unquoted */
    int n_numbers;            /* a number or a [list] of numbers; -1: not numeric */
    double numbers[LOOM_METRIC_MAX_THRESHOLDS];
    bool used;
} loom_metric_arg;
typedef struct loom_metric_call {
    char base[LOOM_NAME_MAX];
    bool has_parens;          /* the object form: Keras's default object name is logged */
    int n_args;
    loom_metric_arg args[LOOM_METRIC_MAX_ARGS];
} loom_metric_call;
loom_status loom_metric_parse(const char *spec, loom_metric_call *call, loom_error *err);
/* Finds an argument by key (NULL if absent) and marks it used. */
loom_metric_arg *loom_metric_arg_get(loom_metric_call *call, const char *key);

#endif
