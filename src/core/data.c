/* data.c — binding user arrays to the model's inputs and outputs by name or position, with the
 * checks Keras makes (and a few it does not): every input given once, names known, one sample
 * count, targets for every output that has a loss, every buffer as large as its shape says
 * (loom_array.count), finite values, and ids an Embedding can look up. */
#include "core/model.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
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

/* "(64, 6)": the shape an array's count gives n samples, or "385 floats" when it is no whole
 * number per sample. */
static const char *given_shape(const loom_array *a, char *buf, size_t len) {
    if (a->count % a->n) snprintf(buf, len, "%zu floats for %zu samples", a->count, a->n);
    else snprintf(buf, len, "(%zu, %zu)", a->n, a->count / a->n);
    return buf;
}

/* A target's expected shape: the output's, with the loss's target width on the last axis. */
static const char *target_shape(const loom_model *m, const loom_output *o, char *buf, size_t len) {
    loom_shape t = m->order[o->pos].shape;
    t.dims[t.rank - 1] = m->compiled ? o->target_dim : o->dim;
    return loom_shape_str(&t, buf, len);
}

/* Keras's hint for the classic mix-up: one-hot rows for the sparse crossentropy, or class indices
 * for the categorical one. */
static const char *crossentropy_hint(const loom_output *o, size_t per) {
    if (!o || o->rows_per_sample == 0) return "";
    if (o->loss.kind == LOSS_SCCE && per == o->size)
        return "; these look like one-hot targets: use categorical_crossentropy, or give one class index per row";
    if (o->loss.kind == LOSS_CCE && per == o->rows_per_sample)
        return "; these look like class indices: use sparse_categorical_crossentropy, or give one-hot rows";
    return "";
}

/* The array holds exactly n x per floats (and says so: count 0 is a forgotten field). role is
 * "input x", "the target of output C", ...; shape the expected per-sample shape. */
static loom_status check_count(loom_model *m, const char *what, const char *role, const loom_array *a,
                               size_t per, const char *shape, const loom_output *o) {
    size_t want;
    if (__builtin_mul_overflow(a->n, per, &want))
        return loom_set_error(&m->err, LOOM_ERR_DATA, "%s: %s: %zu samples of %s do not fit in memory", what, role,
                              a->n, shape);
    if (a->count == 0)
        return loom_set_error(&m->err, LOOM_ERR_DATA,
                              "%s: %s: loom_array.count is 0; set it to the floats data holds (%zu samples x %zu = %zu for %s)",
                              what, role, a->n, per, want, shape);
    if (a->count != want) {
        char given[64];
        return loom_set_error(&m->err, LOOM_ERR_DATA, "%s: %s expects %s (%zu x %zu = %zu floats), got %s%s", what,
                              role, shape, a->n, per, want, given_shape(a, given, sizeof given),
                              a->count % a->n ? "" : crossentropy_hint(o, a->count / a->n));
    }
    return LOOM_OK;
}

/* Every value finite, unless the model was told not to look (loom_set_check_finite). */
static loom_status check_finite(loom_model *m, const char *what, const char *role, const loom_array *a, size_t per) {
    if (!m->check_finite) return LOOM_OK;
    for (size_t i = 0; i < a->count; i++)
        if (!isfinite(a->data[i]))
            return loom_set_error(&m->err, LOOM_ERR_DATA,
                                  "%s: %s: sample %zu, position %zu is %g (non-finite values are refused; loom_set_check_finite turns this off)",
                                  what, role, i / per, i % per, (double)a->data[i]);
    return LOOM_OK;
}

/* Layers that read a model input directly and check its values (Embedding ids): checked here
 * over the whole array, so the message gives the sample's index in the data. */
static loom_status check_input_values(loom_model *m, const char *what, int input, const loom_array *a) {
    int pos = m->input_pos[input];
    const loom_shape *shape = &m->order[pos].shape;
    for (int i = pos + 1; i < m->n_order; i++) {
        const loom_step_node *sn = &m->order[i];
        const loom_layer *L = sn->node->layer;
        if (sn->is_input || !L->op->check_input) continue;
        for (int j = 0; j < sn->node->n_in; j++) {
            if (sn->in_pos[j] != pos) continue;
            loom_error e = {0};
            if (L->op->check_input(L, j, a->data, a->n, shape, &e))
                return loom_set_error(&m->err, e.code, "%s: input %s: %s", what, loom_model_input_name(m, input), e.msg);
        }
    }
    return LOOM_OK;
}

/* A variable-length input: its steps from the array (count / n floats per sample, a whole
 * number of steps of the fixed axes) into d->x_steps[k], and its per-sample lengths, each within
 * them. A fixed input takes no lengths. */
static loom_status variable_steps(loom_model *m, const char *what, int k, const loom_array *a, loom_bound_data *d) {
    const loom_shape *in = &m->order[m->input_pos[k]].node->out_shape;
    const char *name = loom_model_input_name(m, k);
    if (!loom_shape_is_variable(in)) {
        if (a->lengths)
            return loom_set_error(&m->err, LOOM_ERR_DATA, "%s: input %s has lengths, but its shape has no variable time axis",
                                  what, name);
        return LOOM_OK;
    }
    loom_shape step = *in;
    step.dims[0] = 1;
    size_t per_step = loom_shape_size(&step);
    char shape[96];
    loom_shape_str(in, shape, sizeof shape);
    if (a->count == 0 || a->count % a->n || (a->count / a->n) % per_step || a->count / a->n / per_step > INT_MAX)
        return loom_set_error(&m->err, LOOM_ERR_DATA,
                              "%s: input %s expects %s, whole steps of %zu floats per sample; loom_array.count %zu for %zu "
                              "samples is not",
                              what, name, shape, per_step, a->count, a->n);
    int steps = (int)(a->count / a->n / per_step);
    d->x_steps[k] = steps;
    if (a->lengths) {
        for (size_t i = 0; i < a->n; i++)
            if (a->lengths[i] < 1 || a->lengths[i] > steps)
                return loom_set_error(&m->err, LOOM_ERR_DATA,
                                      "%s: input %s: sample %zu has length %d; lengths must lie in 1..%d (the array's steps)",
                                      what, name, i, a->lengths[i], steps);
        d->lengths[k] = a->lengths;
    }
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
    memset(d->x_steps, 0, (size_t)m->n_inputs * sizeof *d->x_steps);
    memset(d->lengths, 0, (size_t)m->n_inputs * sizeof *d->lengths);
    memset(d->y_per, 0, (size_t)m->n_outputs * sizeof *d->y_per);
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
        if ((s = variable_steps(m, what, k, a, d))) goto fail;
        d->x[k] = a->data;
    }
    /* every shape at the arrays' steps: the checks below and the targets' sizes follow them */
    if (m->variable && (s = loom_engine_set_steps(m, d->x_steps))) {
        char msg[LOOM_ERR_MAX];
        snprintf(msg, sizeof msg, "%s: %.450s", what, m->err.msg);
        s = loom_set_error(&m->err, s, "%s", msg);
        goto fail;
    }
    for (int i = 0; i < data->n_x; i++) {
        const loom_array *a = &data->x[i];
        int k = a->name ? loom_model_input_index(m, a->name) : i;
        char role[LOOM_NAME_MAX + 16], shape[96];
        snprintf(role, sizeof role, "input %s", loom_model_input_name(m, k));
        size_t per = loom_model_input_size(m, k);
        loom_shape_str(&m->order[m->input_pos[k]].shape, shape, sizeof shape);
        if ((s = check_count(m, what, role, a, per, shape, NULL)) || (s = check_finite(m, what, role, a, per)) ||
            (s = check_input_values(m, what, k, a)))
            goto fail;
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
        char role[LOOM_NAME_MAX + 32], shape[96];
        snprintf(role, sizeof role, "the target of output %s", m->outputs[k].name);
        size_t per = loom_model_target_size(m, k);
        target_shape(m, &m->outputs[k], shape, sizeof shape);
        if ((s = check_count(m, what, role, a, per, shape, &m->outputs[k])) || (s = check_finite(m, what, role, a, per)))
            goto fail;
        d->y[k] = a->data;
        d->y_per[k] = per;
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
        if ((s = check_n(m, what, "sample weights", "(all outputs)", a->n, &n)) ||
            (s = check_count(m, what, "the sample weights", a, 1, "one weight per sample", NULL)) ||
            (s = check_finite(m, what, "the sample weights", a, 1)))
            goto fail;
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
            char role[LOOM_NAME_MAX + 32];
            snprintf(role, sizeof role, "the sample weights of output %s", m->outputs[k].name);
            if ((s = check_n(m, what, "sample weights of", a->name, a->n, &n)) ||
                (s = check_count(m, what, role, a, 1, "one weight per sample", NULL)) ||
                (s = check_finite(m, what, role, a, 1)))
                goto fail;
            d->sw[k] = a->data;
        }
    }
    d->n = n;
    loom_clear_error(&m->err);
    return LOOM_OK;
fail:
    return s;
}

loom_status loom_set_check_finite(loom_model *m, int check_finite) {
    if (!m) return LOOM_ERR_ARGUMENT;
    m->check_finite = check_finite != 0;
    loom_clear_error(&m->err);
    return LOOM_OK;
}
