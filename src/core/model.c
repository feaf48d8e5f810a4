/* model.c — turning a graph into a model: validation, execution order, reach sets, flat
 * parameter buffers and weight access. */
#include "core/balance.h"
#include "ops/init.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void model_free_parts(loom_model *m) {
    if (m->order)
        for (int i = 0; i < m->n_order; i++) {
            free(m->order[i].in_pos);
            free(m->order[i].din);
            free(m->order[i].in);
        }
    free(m->order);
    free(m->input_pos);
    free(m->outputs);
    free(m->layers);
    loom_floats_free(m->params);
    loom_floats_free(m->grads);
    free(m->tensors);
    free(m->t_offset);
    free(m->t_size);
    free(m->t_active);
    free(m->t_sgd_update);
    free(m->t_sole_pos);
    loom_floats_free(m->slots);
    free(m->metrics);
    free(m->metric_names);
    loom_history_free(m->log);
    loom_balance_free(m->balance);
    free(m->keys.keys);
    free(m->keys.values);
    free(m->key_ptrs);
    loom_floats_free(m->arena);
    free(m->call_run);
    loom_unbind(&m->call_data);
}

void loom_model_free(loom_model *m) {
    if (!m) return;
    model_free_parts(m);
    loom_graph_free(m->g);
    free(m);
}

loom_status loom_model_status(const loom_model *m) { return m ? m->err.code : LOOM_ERR_ARGUMENT; }
const char *loom_model_error(const loom_model *m) { return m ? m->err.msg : "model is NULL"; }

/* Marks every node an output depends on; fails on an Input that is not a model input. */
static loom_status mark_needed(loom_graph *g, loom_node *n, bool *needed, const bool *is_model_input,
                               const char *output_name) {
    if (needed[n->id]) return LOOM_OK;
    needed[n->id] = true;
    if (n->layer->op == &loom_op_input) {
        if (!is_model_input[n->id])
            return loom_set_error(&g->err, LOOM_ERR_GRAPH,
                                  "output %s depends on Input \"%s\", which is not among the model's inputs",
                                  output_name, n->layer->name);
        return LOOM_OK;
    }
    for (int i = 0; i < n->n_in; i++) {
        loom_status s = mark_needed(g, n->in[i], needed, is_model_input, output_name);
        if (s) return s;
    }
    return LOOM_OK;
}

static loom_status build_order(loom_model *m, loom_graph *g, int n_in, loom_tensor *const *inputs,
                               int n_out, loom_tensor *const *outputs) {
    int nn = g->n_nodes;
    bool *is_input = calloc((size_t)nn, sizeof *is_input);
    bool *needed = calloc((size_t)nn, sizeof *needed);
    int *pos = malloc((size_t)nn * sizeof *pos);
    loom_status s = LOOM_OK;
    if (!is_input || !needed || !pos) {
        s = loom_set_error(&g->err, LOOM_ERR_MEMORY, "model: out of memory");
        goto done;
    }
    for (int i = 0; i < n_in; i++) {
        loom_node *n = inputs[i]->node;
        if (n->layer->op != &loom_op_input) {
            s = loom_set_error(&g->err, LOOM_ERR_GRAPH,
                               "model input %d is the output of layer %s (%s), not an Input", i,
                               n->layer->name, n->layer->op->class_name);
            goto done;
        }
        if (is_input[n->id]) {
            s = loom_set_error(&g->err, LOOM_ERR_GRAPH, "Input %s is given twice as a model input",
                               n->layer->name);
            goto done;
        }
        is_input[n->id] = true;
    }
    for (int k = 0; k < n_out; k++) {
        for (int j = 0; j < k; j++)
            if (outputs[j] == outputs[k]) {
                s = loom_set_error(&g->err, LOOM_ERR_GRAPH,
                                   "the output of %s is given twice as a model output",
                                   outputs[k]->node->layer->name);
                goto done;
            }
        s = mark_needed(g, outputs[k]->node, needed, is_input, outputs[k]->node->layer->name);
        if (s) goto done;
    }
    for (int i = 0; i < n_in; i++)
        if (!needed[inputs[i]->node->id]) {
            s = loom_set_error(&g->err, LOOM_ERR_GRAPH, "Input %s does not reach any model output",
                               inputs[i]->node->layer->name);
            goto done;
        }
    /* Nodes are created after their inputs, so id order is a topological order. */
    m->n_order = 0;
    for (int i = 0; i < nn; i++) m->n_order += needed[i];
    m->order = calloc((size_t)m->n_order, sizeof *m->order);
    if (!m->order) {
        s = loom_set_error(&g->err, LOOM_ERR_MEMORY, "model: out of memory");
        goto done;
    }
    int p = 0;
    for (int i = 0; i < nn; i++) {
        pos[i] = -1;
        if (!needed[i]) continue;
        loom_node *n = g->nodes[i];
        loom_step_node *sn = &m->order[p];
        sn->node = n;
        sn->size = loom_shape_size(&n->out_shape);
        sn->is_input = n->layer->op == &loom_op_input;
        sn->in_pos = calloc((size_t)(n->n_in ? n->n_in : 1), sizeof *sn->in_pos);
        sn->din = calloc((size_t)(n->n_in ? n->n_in : 1), sizeof *sn->din);
        sn->in = calloc((size_t)(n->n_in ? n->n_in : 1), sizeof *sn->in);
        if (!sn->in_pos || !sn->din || !sn->in) {
            s = loom_set_error(&g->err, LOOM_ERR_MEMORY, "model: out of memory");
            goto done;
        }
        for (int j = 0; j < n->n_in; j++) {
            sn->in_pos[j] = pos[n->in[j]->id];
            m->order[sn->in_pos[j]].n_consumers++;
        }
        pos[i] = p++;
    }
    m->n_inputs = n_in;
    m->input_pos = malloc((size_t)n_in * sizeof *m->input_pos);
    m->n_outputs = n_out;
    m->outputs = calloc((size_t)n_out, sizeof *m->outputs);
    if (!m->input_pos || !m->outputs) {
        s = loom_set_error(&g->err, LOOM_ERR_MEMORY, "model: out of memory");
        goto done;
    }
    for (int i = 0; i < n_in; i++) m->input_pos[i] = pos[inputs[i]->node->id];
    for (int k = 0; k < n_out; k++) {
        loom_output *o = &m->outputs[k];
        loom_node *n = outputs[k]->node;
        o->pos = pos[n->id];
        o->size = loom_shape_size(&n->out_shape);
        o->dim = n->out_shape.dims[n->out_shape.rank - 1];
        o->rows_per_sample = o->size / (size_t)o->dim;
        o->weight = 1.0f;
        /* Output names are layer names; a layer whose calls give two outputs gets "_1", "_2". */
        snprintf(o->name, sizeof o->name, "%s", n->layer->name);
        for (int j = 0, dup = 1; j < k; j++)
            if (strcmp(m->outputs[j].name, o->name) == 0) {
                snprintf(o->name, sizeof o->name, "%.50s_%d", n->layer->name, dup++);
                j = -1;
            }
        /* reach: every node this output depends on */
        m->order[o->pos].reach |= 1ULL << k;
    }
    for (int i = m->n_order - 1; i >= 0; i--)
        for (int j = 0; j < m->order[i].node->n_in; j++)
            m->order[m->order[i].in_pos[j]].reach |= m->order[i].reach;
done:
    free(is_input);
    free(needed);
    free(pos);
    return s;
}

static loom_status build_params(loom_model *m, loom_graph *g) {
    /* Layers in order of first use; a shared layer appears once. */
    m->layers = calloc((size_t)m->n_order, sizeof *m->layers);
    if (!m->layers) return loom_set_error(&g->err, LOOM_ERR_MEMORY, "model: out of memory");
    for (int i = 0; i < m->n_order; i++) {
        loom_layer *L = m->order[i].node->layer;
        bool seen = false;
        for (int j = 0; j < m->n_layers && !seen; j++) seen = m->layers[j] == L;
        if (!seen) m->layers[m->n_layers++] = L;
    }
    size_t total = 0;
    int nt = 0;
    for (int i = 0; i < m->n_layers; i++) {
        loom_layer *L = m->layers[i];
        for (int w = 0; w < L->n_weights; w++) {
            L->weights[w].offset = total; /* a layer's weights are contiguous, in order */
            total += loom_shape_size(&L->weights[w].shape);
            nt++;
        }
    }
    m->n_params = total;
    m->n_tensors = nt;
    size_t alloc = total ? total : 1;
    m->params = loom_floats_zeroed(alloc);
    m->grads = loom_floats_zeroed(alloc);
    m->tensors = calloc((size_t)(nt ? nt : 1), sizeof *m->tensors);
    m->t_offset = calloc((size_t)(nt ? nt : 1), sizeof *m->t_offset);
    m->t_size = calloc((size_t)(nt ? nt : 1), sizeof *m->t_size);
    m->t_active = calloc((size_t)(nt ? nt : 1), sizeof *m->t_active);
    m->t_sgd_update = calloc((size_t)(nt ? nt : 1), sizeof *m->t_sgd_update);
    m->t_sole_pos = calloc((size_t)(nt ? nt : 1), sizeof *m->t_sole_pos);
    if (!m->params || !m->grads || !m->tensors || !m->t_offset || !m->t_size ||
        !m->t_active || !m->t_sgd_update || !m->t_sole_pos)
        return loom_set_error(&g->err, LOOM_ERR_MEMORY, "model: out of memory for %zu parameters", total);
    nt = 0;
    for (int i = 0; i < m->n_layers; i++) {
        loom_layer *L = m->layers[i];
        for (int w = 0; w < L->n_weights; w++) {
            loom_weight *wt = &L->weights[w];
            m->tensors[nt] = (loom_param_tensor){L, w, wt->offset, loom_shape_size(&wt->shape)};
            m->t_offset[nt] = wt->offset;
            m->t_size[nt] = m->tensors[nt].size;
            m->t_sole_pos[nt] = -1; /* until compile plans it */
            /* A key per (graph seed, layer, weight): values do not depend on other layers. */
            uint64_t key = loom_hash64(g->seed, ((uint64_t)L->index << 8) | (uint64_t)w);
            loom_init_fill(wt->init, &wt->shape, m->params + wt->offset, key);
            nt++;
        }
    }
    return LOOM_OK;
}

loom_model *loom_model_new(loom_graph *g, int n_inputs, loom_tensor *const *inputs, int n_outputs,
                           loom_tensor *const *outputs) {
    if (!g) return NULL;
    if (g->err.code) return NULL; /* keep the first building error */
    if (n_inputs < 1 || !inputs) {
        loom_set_error(&g->err, LOOM_ERR_COUNT, "model: needs at least one input, got %d", n_inputs);
        return NULL;
    }
    if (n_outputs < 1 || n_outputs > LOOM_MAX_OUTPUTS || !outputs) {
        loom_set_error(&g->err, LOOM_ERR_COUNT, "model: needs 1..%d outputs, got %d", LOOM_MAX_OUTPUTS,
                       n_outputs);
        return NULL;
    }
    for (int i = 0; i < n_inputs; i++)
        if (!inputs[i] || inputs[i]->node->layer->graph != g) {
            loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "model: input %d is NULL or from another graph", i);
            return NULL;
        }
    for (int k = 0; k < n_outputs; k++)
        if (!outputs[k] || outputs[k]->node->layer->graph != g) {
            loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "model: output %d is NULL or from another graph", k);
            return NULL;
        }
    loom_model *m = calloc(1, sizeof *m);
    if (!m) {
        loom_set_error(&g->err, LOOM_ERR_MEMORY, "model: out of memory");
        return NULL;
    }
    if (build_order(m, g, n_inputs, inputs, n_outputs, outputs) || build_params(m, g) ||
        (loom_bind_alloc(m, &m->call_data) && loom_set_error(&g->err, LOOM_ERR_MEMORY, "model: out of memory"))) {
        model_free_parts(m);
        free(m);
        return NULL;
    }
    m->g = g;
    return m;
}

/* ---------------------------------------------------------------- accessors */

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
    return LOOM_OK;
}

loom_status loom_set_weights(loom_model *m, const char *layer, int i, const float *in, size_t n) {
    loom_weight *w;
    loom_status s = find_weight(m, layer, i, n, &w);
    if (s) return s;
    if (!in) return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "set_weights: in is NULL");
    for (size_t j = 0; j < n; j++)
        if (!isfinite(in[j]))
            return loom_set_error(&m->err, LOOM_ERR_DATA, "set_weights: layer %s weight %s value %zu is not finite",
                                  layer, w->name, j);
    memcpy(m->params + w->offset, in, n * sizeof *in);
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
    for (int i = 0; i < m->n_order; i++)
        if (m->order[i].node->layer == L && (m->order[i].reach >> k & 1)) return 1;
    return 0;
}

const loom_history *loom_model_history(const loom_model *m) { return m ? m->log : NULL; }
int loom_model_epochs_done(const loom_model *m) { return m ? m->epochs_done : 0; }
