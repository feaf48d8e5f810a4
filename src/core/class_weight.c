/* class_weight.c — Keras's fit(class_weight=), per output: checking and installing the maps, and
 * the weight of one target row. The engine multiplies it into the loss's row weights while
 * loom_fit's training steps run (m->class_weights_on), and into the weighted metrics. */
#include "core/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The classes an output's loss knows, or 0 with a message when it is not a class output. */
static int output_classes(loom_model *m, const loom_output *o) {
    switch (o->loss.kind) {
    case LOSS_BCE:
        if (o->dim == 1) return 2;
        loom_set_error(&m->err, LOOM_ERR_ARGUMENT,
                       "fit: class_weight for output %s: binary_crossentropy over %d units is multi-label, so a row has "
                       "no single class; class_weight needs one class per row",
                       o->name, o->dim);
        return 0;
    case LOSS_CCE:
    case LOSS_SCCE: return o->dim;
    default:
        loom_set_error(&m->err, LOOM_ERR_ARGUMENT,
                       "fit: class_weight for output %s: its loss is %s, not a classification loss; class_weight needs "
                       "binary_crossentropy on 1 unit, categorical_crossentropy or sparse_categorical_crossentropy",
                       o->name, o->loss.kind == LOSS_NONE ? "none" : o->loss.name);
        return 0;
    }
}

void loom_class_weights_clear(loom_model *m) {
    for (int k = 0; k < m->n_outputs; k++) {
        free(m->outputs[k].class_w);
        m->outputs[k].class_w = NULL;
        m->outputs[k].n_class_w = 0;
    }
    m->has_class_weights = m->class_weights_on = false;
}

loom_status loom_class_weights_set(loom_model *m, int n, const loom_class_weight *cw) {
    loom_class_weights_clear(m);
    if (n == 0) return LOOM_OK;
    if (n < 0 || !cw) return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "fit: bad class_weight list (%d entries)", n);
    loom_status s = LOOM_OK;
    for (int i = 0; i < n && !s; i++) {
        int k = 0;
        if (cw[i].output) {
            if ((k = loom_model_output_index(m, cw[i].output)) < 0) {
                char msg[LOOM_ERR_MAX];
                snprintf(msg, sizeof msg, "%.400s", m->err.msg);
                s = loom_set_error(&m->err, LOOM_ERR_NAME, "fit: class_weight: %s", msg);
                break;
            }
        } else if (m->n_outputs != 1) {
            s = loom_set_error(&m->err, LOOM_ERR_NAME, "fit: class_weight entry %d names no output; the model has %d outputs",
                               i, m->n_outputs);
            break;
        }
        loom_output *o = &m->outputs[k];
        int classes = output_classes(m, o);
        if (!classes) {
            s = LOOM_ERR_ARGUMENT;
            break;
        }
        if (o->class_w) {
            s = loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "fit: class_weight names output %s twice", o->name);
            break;
        }
        if (cw[i].n_classes < 1 || cw[i].n_classes > classes || !cw[i].weights) {
            s = loom_set_error(&m->err, LOOM_ERR_ARGUMENT,
                               "fit: class_weight for output %s: %d weights%s, but the output has %d classes", o->name,
                               cw[i].n_classes, cw[i].weights ? "" : " (weights is NULL)", classes);
            break;
        }
        for (int c = 0; c < cw[i].n_classes && !s; c++)
            if (!isfinite(cw[i].weights[c]) || cw[i].weights[c] < 0)
                s = loom_set_error(&m->err, LOOM_ERR_ARGUMENT,
                                   "fit: class_weight for output %s: the weight of class %d is %g; it must be finite and >= 0",
                                   o->name, c, (double)cw[i].weights[c]);
        if (s) break;
        o->class_w = malloc((size_t)cw[i].n_classes * sizeof *o->class_w);
        if (!o->class_w) {
            s = loom_set_error(&m->err, LOOM_ERR_MEMORY, "fit: out of memory");
            break;
        }
        memcpy(o->class_w, cw[i].weights, (size_t)cw[i].n_classes * sizeof *o->class_w);
        o->n_class_w = cw[i].n_classes;
    }
    if (s) loom_class_weights_clear(m);
    else m->has_class_weights = true;
    return s;
}

/* keras data_adapter_utils: the argmax of a one-hot target (first maximum), the rounded label of
 * a sparse or binary one (np.round / tf.round: half to even); a class outside the map weighs 1. */
float loom_class_weight_of(const loom_output *o, const float *target_row) {
    int c;
    if (o->target_dim == 1) {
        float t = target_row[0];
        if (!(t >= -0.5f && t <= (float)o->n_class_w + 0.5f)) return 1.0f;
        c = (int)rintf(t);
    } else {
        c = 0;
        for (int j = 1; j < o->target_dim; j++)
            if (target_row[j] > target_row[c]) c = j;
    }
    return c >= 0 && c < o->n_class_w ? o->class_w[c] : 1.0f;
}
