/* data.c — binding user arrays to the model's inputs and outputs by name or position, with the
 * checks Keras makes (and a few it does not): every input given once, names known, one sample
 * count, targets for every output that has a loss. */
#include "core/model.h"

#include <stdlib.h>
#include <string.h>

static loom_status check_n(loom_model *m, const char *what, const char *kind, const char *name,
                           size_t n, size_t *expected) {
    if (!n) return loom_set_error(&m->err, LOOM_ERR_DATA, "%s: %s %s has no samples", what, kind, name);
    if (*expected == 0) *expected = n;
    if (n != *expected)
        return loom_set_error(&m->err, LOOM_ERR_DATA,
                              "%s: %s %s has %zu samples but the data before it has %zu", what, kind,
                              name, n, *expected);
    return LOOM_OK;
}

loom_status loom_bind(loom_model *m, const loom_data *data, bool need_targets, const char *what,
                      loom_bound_data *d) {
    loom_status s = loom_bind_alloc(m, d);
    if (!s && (s = loom_bind_fill(m, data, need_targets, what, d))) loom_unbind(d);
    return s;
}

loom_status loom_bind_fill(loom_model *m, const loom_data *data, bool need_targets, const char *what,
                           loom_bound_data *d) {
    memset(d->x, 0, (size_t)m->n_inputs * sizeof *d->x);
    memset(d->y, 0, (size_t)m->n_outputs * sizeof *d->y);
    memset(d->sw, 0, (size_t)m->n_outputs * sizeof *d->sw);
    d->n = 0;
    if (!data) return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "%s: data is NULL", what);
    size_t n = 0;
    loom_status s = LOOM_OK;
    if (data->n_x != m->n_inputs || (data->n_x && !data->x)) {
        s = loom_set_error(&m->err, LOOM_ERR_COUNT, "%s: the model has %d input(s), got %d input array(s)",
                           what, m->n_inputs, data->n_x);
        goto fail;
    }
    for (int i = 0; i < data->n_x; i++) {
        const loom_array *a = &data->x[i];
        int k = a->name ? loom_model_input_index(m, a->name) : i;
        if (k < 0) {
            s = LOOM_ERR_NAME; /* message set by loom_model_input_index */
            goto fail;
        }
        if (d->x[k]) {
            s = loom_set_error(&m->err, LOOM_ERR_DATA, "%s: input %s is given twice", what, loom_model_input_name(m, k));
            goto fail;
        }
        if (!a->data) {
            s = loom_set_error(&m->err, LOOM_ERR_DATA, "%s: input %s has no data (NULL)", what, loom_model_input_name(m, k));
            goto fail;
        }
        if ((s = check_n(m, what, "input", loom_model_input_name(m, k), a->n, &n))) goto fail;
        d->x[k] = a->data;
    }
    if (data->n_y < 0 || (data->n_y && !data->y) || data->n_y > m->n_outputs) {
        s = loom_set_error(&m->err, LOOM_ERR_COUNT, "%s: the model has %d output(s), got %d target array(s)",
                           what, m->n_outputs, data->n_y);
        goto fail;
    }
    for (int i = 0; i < data->n_y; i++) {
        const loom_array *a = &data->y[i];
        int k = a->name ? loom_model_output_index(m, a->name) : i;
        if (k < 0) {
            s = LOOM_ERR_NAME;
            goto fail;
        }
        if (d->y[k]) {
            s = loom_set_error(&m->err, LOOM_ERR_DATA, "%s: the target of output %s is given twice", what, m->outputs[k].name);
            goto fail;
        }
        if (!a->data) {
            s = loom_set_error(&m->err, LOOM_ERR_DATA, "%s: the target of output %s has no data (NULL)", what, m->outputs[k].name);
            goto fail;
        }
        if ((s = check_n(m, what, "target", m->outputs[k].name, a->n, &n))) goto fail;
        d->y[k] = a->data;
    }
    if (need_targets) {
        int with_loss = 0, given = 0;
        for (int k = 0; k < m->n_outputs; k++) {
            if (m->outputs[k].loss.kind == LOSS_NONE) continue;
            with_loss++;
            given += d->y[k] != NULL;
        }
        for (int k = 0; k < m->n_outputs; k++)
            if (m->outputs[k].loss.kind != LOSS_NONE && !d->y[k]) {
                s = loom_set_error(&m->err, LOOM_ERR_DATA,
                                   "%s: output %s has a loss (%s) but no target; %d output(s) have a loss, %d target(s) given",
                                   what, m->outputs[k].name, m->outputs[k].loss.name, with_loss, given);
                goto fail;
            }
    }
    if (data->n_sample_weights < 0 || (data->n_sample_weights && !data->sample_weights)) {
        s = loom_set_error(&m->err, LOOM_ERR_COUNT, "%s: bad sample weight count %d", what, data->n_sample_weights);
        goto fail;
    }
    if (data->n_sample_weights == 1 && !data->sample_weights[0].name) {
        /* One unnamed array: copied to every output, as Keras does. */
        const loom_array *a = &data->sample_weights[0];
        if (!a->data) {
            s = loom_set_error(&m->err, LOOM_ERR_DATA, "%s: sample weights have no data (NULL)", what);
            goto fail;
        }
        if ((s = check_n(m, what, "sample weights", "(all outputs)", a->n, &n))) goto fail;
        for (int k = 0; k < m->n_outputs; k++) d->sw[k] = a->data;
    } else {
        for (int i = 0; i < data->n_sample_weights; i++) {
            const loom_array *a = &data->sample_weights[i];
            if (!a->name) {
                s = loom_set_error(&m->err, LOOM_ERR_DATA,
                                   "%s: with several sample-weight arrays each must name its output (array %d has no name); the model's outputs: %d",
                                   what, i, m->n_outputs);
                goto fail;
            }
            int k = loom_model_output_index(m, a->name);
            if (k < 0) {
                s = LOOM_ERR_NAME;
                goto fail;
            }
            if (d->sw[k] || !a->data) {
                s = loom_set_error(&m->err, LOOM_ERR_DATA, "%s: sample weights of output %s are given twice or NULL", what, a->name);
                goto fail;
            }
            if ((s = check_n(m, what, "sample weights of", a->name, a->n, &n))) goto fail;
            d->sw[k] = a->data;
        }
    }
    d->n = n;
    return LOOM_OK;
fail:
    return s;
}
