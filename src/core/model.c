/* model.c — what a built model answers: its inputs, outputs and layers by index or name, its
 * weights (read and written by layer and index), which losses reach which layers, its history.
 * Nothing here allocates or depends on the rest of core/. */
#include "core/model.h"
#include "layers/rnn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

loom_status loom_model_status(const loom_model *m) { return m ? m->err.code : LOOM_ERR_ARGUMENT; }
const char *loom_model_error(const loom_model *m) { return m ? m->err.msg : "model is NULL"; }

/* Marks every node an output depends on; fails on an Input that is not a model input. */
int loom_model_num_inputs(const loom_model *m) { return m ? m->n_inputs : 0; }
int loom_model_num_outputs(const loom_model *m) { return m ? m->n_outputs : 0; }

const char *loom_model_input_name(const loom_model *m, int i) {
    if (!m || i < 0 || i >= m->n_inputs) return NULL;
    return m->order[m->input_pos[i]].node->layer->name;
}

const char *loom_model_output_name(const loom_model *m, int k) {
    return (m && k >= 0 && k < m->n_outputs) ? m->outputs[k].name : NULL;
}

size_t loom_model_input_size(const loom_model *m, int i) {
    return (m && i >= 0 && i < m->n_inputs) ? m->order[m->input_pos[i]].size : 0;
}

size_t loom_model_output_size(const loom_model *m, int k) {
    return (m && k >= 0 && k < m->n_outputs) ? m->outputs[k].size : 0;
}

size_t loom_model_target_size(const loom_model *m, int k) {
    if (!m || k < 0 || k >= m->n_outputs) return 0;
    return m->compiled ? m->outputs[k].target_size : m->outputs[k].size;
}

int loom_model_input_index(loom_model *m, const char *name) {
    if (!m || !name) return -1;
    for (int i = 0; i < m->n_inputs; i++)
        if (strcmp(loom_model_input_name(m, i), name) == 0) return i;
    char list[256] = "";
    for (int i = 0; i < m->n_inputs; i++) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", loom_model_input_name(m, i));
    }
    loom_set_error(&m->err, LOOM_ERR_NAME, "unknown input \"%.64s\"; the model's inputs are: %s", name, list);
    return -1;
}

int loom_model_output_index(loom_model *m, const char *name) {
    if (!m || !name) return -1;
    for (int k = 0; k < m->n_outputs; k++)
        if (strcmp(m->outputs[k].name, name) == 0) return k;
    char list[256] = "";
    for (int k = 0; k < m->n_outputs; k++) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s", k ? ", " : "", m->outputs[k].name);
    }
    loom_set_error(&m->err, LOOM_ERR_NAME, "unknown output \"%.64s\"; the model's outputs are: %s", name, list);
    return -1;
}

int loom_model_num_layers(const loom_model *m) { return m ? m->n_layers : 0; }
loom_layer *loom_model_layer(const loom_model *m, int i) {
    return (m && i >= 0 && i < m->n_layers) ? m->layers[i] : NULL;
}

loom_layer *loom_model_find_layer(const loom_model *m, const char *name) {
    if (!m || !name) return NULL;
    for (int i = 0; i < m->n_layers; i++)
        if (strcmp(m->layers[i]->name, name) == 0) return m->layers[i];
    return NULL;
}

static loom_status find_weight(loom_model *m, const char *layer, int i, size_t n, loom_weight **w) {
    if (!m) return LOOM_ERR_ARGUMENT;
    loom_layer *L = loom_model_find_layer(m, layer);
    if (!L) return loom_set_error(&m->err, LOOM_ERR_NAME, "no layer named \"%.64s\" in the model", layer ? layer : "(null)");
    if (i < 0 || i >= L->n_weights)
        return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "layer %s has %d weight(s); index %d is out of range",
                              L->name, L->n_weights, i);
    size_t size = loom_shape_size(&L->weights[i].shape);
    if (n != size)
        return loom_set_error(&m->err, LOOM_ERR_SHAPE, "layer %s weight %s has %zu values, got %zu", L->name,
                              L->weights[i].name, size, n);
    *w = &L->weights[i];
    return LOOM_OK;
}

loom_status loom_get_weights(loom_model *m, const char *layer, int i, float *out, size_t n) {
    loom_weight *w;
    loom_status s = find_weight(m, layer, i, n, &w);
    if (s) return s;
    if (!out) return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "get_weights: out is NULL");
    memcpy(out, m->params + w->offset, n * sizeof *out);
    loom_clear_error(&m->err);
    return LOOM_OK;
}

loom_status loom_set_weights(loom_model *m, const char *layer, int i, const float *in, size_t n) {
    loom_weight *w;
    loom_status s = find_weight(m, layer, i, n, &w);
    if (s) return s;
    if (!in) return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "set_weights: in is NULL");
    for (size_t j = 0; j < n; j++) {
        if (!isfinite(in[j]))
            return loom_set_error(&m->err, LOOM_ERR_DATA, "set_weights: layer %s weight %s value %zu is not finite",
                                  layer, w->name, j);
        if (w->non_negative && in[j] < 0)
            return loom_set_error(&m->err, LOOM_ERR_DATA, "set_weights: layer %s weight %s value %zu is %g; a variance is never negative",
                                  layer, w->name, j, (double)in[j]);
    }
    memcpy(m->params + w->offset, in, n * sizeof *in);
    loom_clear_error(&m->err);
    return LOOM_OK;
}

loom_status loom_check_weight_values(const loom_model *m, const char *what, loom_error *err) {
    for (int l = 0; l < m->n_layers; l++) {
        const loom_layer *L = m->layers[l];
        for (int i = 0; i < L->n_weights; i++) {
            const loom_weight *w = &L->weights[i];
            size_t n = loom_shape_size(&w->shape);
            for (size_t j = 0; j < n; j++) {
                float v = m->params[w->offset + j];
                if (!isfinite(v) || (w->non_negative && v < 0))
                    return loom_set_error(err, LOOM_ERR_DATA, "%s: layer %s weight %s value %zu is %g%s", what, L->name,
                                          w->name, j, (double)v, isfinite(v) ? "; a variance is never negative" : "");
            }
        }
    }
    return LOOM_OK;
}

size_t loom_param_count(const loom_model *m) { return m ? m->n_params : 0; }
float *loom_params(loom_model *m) { return m ? m->params : NULL; }

size_t loom_param_offset(const loom_model *m, const char *layer, int i) {
    loom_layer *L = loom_model_find_layer(m, layer);
    if (!L || i < 0 || i >= L->n_weights) return (size_t)-1;
    return L->weights[i].offset;
}

int loom_loss_reaches(loom_model *m, const char *output, const char *layer) {
    int k = loom_model_output_index(m, output);
    if (k < 0) return 0;
    loom_layer *L = loom_model_find_layer(m, layer);
    if (!L) {
        loom_set_error(&m->err, LOOM_ERR_NAME, "no layer named \"%.64s\" in the model", layer ? layer : "(null)");
        return 0;
    }
    loom_clear_error(&m->err);
    for (int i = 0; i < m->n_order; i++)
        if (m->order[i].node->layer == L && (m->order[i].reach >> k & 1)) return 1;
    return 0;
}

const loom_history *loom_model_history(const loom_model *m) { return m ? m->log : NULL; }
int loom_model_epochs_done(const loom_model *m) { return m ? m->epochs_done : 0; }

/* ---------------------------------------------------------------- trainable and nesting */

loom_status loom_model_set_trainable(loom_model *m, int trainable) {
    if (!m) return LOOM_ERR_ARGUMENT;
    for (int i = 0; i < m->n_layers; i++) loom_layer_set_trainable(m->layers[i], trainable);
    return LOOM_OK;
}

int loom_model_trainable(const loom_model *m) {
    if (!m) return 0;
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i]->n_weights && !m->layers[i]->frozen) return 1;
    return 0;
}

loom_status loom_model_reset_states(loom_model *m) {
    if (!m) return LOOM_ERR_ARGUMENT;
    for (int i = 0; i < m->n_layers; i++)
        if (loom_is_rnn_op(m->layers[i]->op) && loom_rnn_stateful_batch(m->layers[i])) loom_layer_reset_states(m->layers[i]);
    loom_clear_error(&m->err);
    return LOOM_OK;
}

loom_status loom_model_call(loom_model *m, int n_inputs, loom_tensor *const *inputs, loom_tensor **outputs) {
    if (!m) return LOOM_ERR_ARGUMENT;
    loom_graph *g = m->g;
    if (g->err.code) return loom_set_error(&m->err, g->err.code, "model call: the graph holds an error: %s", g->err.msg);
    if (n_inputs != m->n_inputs || !inputs || !outputs)
        return loom_set_error(&m->err, LOOM_ERR_COUNT, "model call: the model takes %d input(s), got %d%s", m->n_inputs,
                              n_inputs, inputs && outputs ? "" : " (or a NULL list)");
    for (int i = 0; i < n_inputs; i++)
        if (!inputs[i] || inputs[i]->node->layer->graph != g)
            return loom_set_error(&m->err, LOOM_ERR_ARGUMENT,
                                  "model call: input %d is NULL or from another graph (a model is called on "
                                  "tensors of its own graph)", i);
    /* Replays the model's nodes on the new inputs: every layer is called again, so the new
     * tensors share its weights, as Keras's nested Functional model does. */
    loom_tensor **value = calloc((size_t)m->n_order, sizeof *value);
    if (!value) return loom_set_error(&m->err, LOOM_ERR_MEMORY, "model call: out of memory");
    for (int i = 0; i < n_inputs; i++) value[m->input_pos[i]] = inputs[i];
    loom_status s = LOOM_OK;
    for (int p = 0; p < m->n_order && !s; p++) {
        const loom_step_node *sn = &m->order[p];
        if (sn->is_input) continue;
        loom_tensor *xs[16];
        for (int j = 0; j < sn->node->n_in; j++) xs[j] = value[sn->in_pos[j]];
        value[p] = loom_call_n(sn->node->layer, sn->node->n_in, xs);
        if (!value[p]) s = loom_set_error(&m->err, g->err.code, "model call: %s", g->err.msg);
    }
    for (int k = 0; k < m->n_outputs && !s; k++) outputs[k] = value[m->outputs[k].pos];
    free(value);
    return s;
}
