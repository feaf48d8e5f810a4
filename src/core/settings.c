/* settings.c — the compile settings of a model read back (loss per output, metrics, optimizer,
 * balancing method) and its structure as layer calls, for programs that change one setting and
 * recompile with the rest (the loom program's `fit` flags) or draw the model (`loom plot`). */
#include "core/balance.h"

#include <string.h>

int loom_model_is_compiled(const loom_model *m) { return m && m->compiled; }

loom_status loom_model_get_loss(const loom_model *m, int k, loom_loss *out) {
    if (!m || !out || k < 0 || k >= m->n_outputs) return LOOM_ERR_ARGUMENT;
    memset(out, 0, sizeof *out);
    if (!m->compiled) return LOOM_ERR_STATE;
    const loom_loss_impl *l = &m->outputs[k].loss;
    if (l->kind == LOSS_NONE) return LOOM_OK;
    out->name = l->name;
    out->from_logits = l->from_logits;
    out->label_smoothing = l->label_smoothing;
    out->delta = l->kind == LOSS_HUBER ? l->delta : 0.0f; /* compile keeps 1 for every loss */
    out->fn = l->fn;
    out->user = l->user;
    return LOOM_OK;
}

int loom_model_num_metrics(const loom_model *m) { return m && m->compiled ? m->n_metrics : 0; }

loom_status loom_model_get_metric(const loom_model *m, int i, loom_metric_spec *out) {
    if (!m || !out || i < 0 || i >= loom_model_num_metrics(m)) return LOOM_ERR_ARGUMENT;
    out->output = m->outputs[m->metrics[i].output].name;
    out->name = m->metric_names[i];
    return LOOM_OK;
}

loom_status loom_model_get_optimizer(const loom_model *m, loom_optimizer *out) {
    if (!m || !out) return LOOM_ERR_ARGUMENT;
    if (!m->compiled) return LOOM_ERR_STATE;
    *out = m->opt;
    return LOOM_OK;
}

loom_status loom_model_get_balance(const loom_model *m, loom_balance *out) {
    if (!m || !out) return LOOM_ERR_ARGUMENT;
    if (!m->compiled) return LOOM_ERR_STATE;
    if (!m->balance) {
        memset(out, 0, sizeof *out);
        return LOOM_OK;
    }
    *out = m->balance->cfg;
    /* the configured name may have pointed into the caller's memory at compile; the resolved
     * layer is the model's own */
    out->gradnorm_layer = m->balance->gn_layer ? m->balance->gn_layer->name : NULL;
    return LOOM_OK;
}

/* ---------------------------------------------------------------- structure */

int loom_model_num_nodes(const loom_model *m) { return m ? m->n_order : 0; }

loom_layer *loom_model_node_layer(const loom_model *m, int i) {
    return m && i >= 0 && i < m->n_order ? m->order[i].node->layer : NULL;
}

int loom_model_node_num_inputs(const loom_model *m, int i) {
    return m && i >= 0 && i < m->n_order && !m->order[i].is_input ? m->order[i].node->n_in : 0;
}

int loom_model_node_input(const loom_model *m, int i, int j) {
    if (j < 0 || j >= loom_model_node_num_inputs(m, i)) return -1;
    return m->order[i].in_pos[j];
}

int loom_model_node_shape(const loom_model *m, int i, int *dims) {
    if (!m || i < 0 || i >= m->n_order) return -1;
    const loom_shape *s = &m->order[i].node->out_shape;
    if (dims)
        for (int d = 0; d < s->rank; d++) dims[d] = s->dims[d];
    return s->rank;
}

int loom_model_output_node(const loom_model *m, int k) {
    return m && k >= 0 && k < m->n_outputs ? m->outputs[k].pos : -1;
}
