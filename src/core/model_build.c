/* model_build.c — turning a graph into a model: validation, execution order, reach sets and the
 * flat parameter buffers; and freeing it. */
#include "core/balance.h"
#include "ops/init.h"

#include <stdlib.h>
#include <string.h>

void loom_unbind(loom_bound_data *d) {
    free(d->x);
    free(d->y);
    free(d->sw);
    memset(d, 0, sizeof *d);
}

loom_status loom_bind_alloc(loom_model *m, loom_bound_data *d) {
    memset(d, 0, sizeof *d);
    d->x = calloc((size_t)m->n_inputs, sizeof *d->x);
    d->y = calloc((size_t)m->n_outputs, sizeof *d->y);
    d->sw = calloc((size_t)m->n_outputs, sizeof *d->sw);
    if (!d->x || !d->y || !d->sw) {
        loom_unbind(d);
        return loom_set_error(&m->err, LOOM_ERR_MEMORY, "out of memory binding data");
    }
    return LOOM_OK;
}

static void model_free_parts(loom_model *m) {
    if (m->order)
        for (int i = 0; i < m->n_order; i++) {
            free(m->order[i].in_pos);
            free(m->order[i].din);
            free(m->order[i].in);
        }
    free(m->order);
    free(m->input_pos);
    for (int k = 0; m->outputs && k < m->n_outputs; k++) free(m->outputs[k].class_w);
    free(m->outputs);
    free(m->layers);
    loom_floats_free(m->grads); /* params belong to the graph */
    free(m->tensors);
    free(m->t_offset);
    free(m->t_size);
    free(m->t_active);
    free(m->t_sgd_update);
    free(m->t_sole_pos);
    free(m->t_frozen);
    loom_floats_free(m->slots);
    for (int i = 0; i < m->n_metrics; i++) loom_metric_release(&m->metrics[i]);
    free(m->metrics);
    free(m->metric_names);
    loom_history_free(m->log);
    loom_balance_free(m->balance);
    free(m->keys.keys);
    free(m->keys.values);
    free(m->key_ptrs);
    loom_floats_free(m->arena);
    loom_floats_free(m->bf16_ws);
    free(m->call_run);
    loom_unbind(&m->call_data);
}

/* The graph's list of live models: each holds a reference, and each must see the graph's
 * parameter buffer move when a new model places more layers. */
static loom_status register_model(loom_graph *g, loom_model *m) {
    if (g->n_models == g->cap_models) {
        int cap = g->cap_models ? 2 * g->cap_models : 4;
        loom_model **p = realloc(g->models, (size_t)cap * sizeof *p);
        if (!p) return LOOM_ERR_MEMORY;
        g->models = p;
        g->cap_models = cap;
    }
    g->models[g->n_models++] = m;
    if (!g->first_ref_given) { /* the caller's reference from loom_graph_new goes to this model */
        g->first_ref_given = true;
        if (g->caller_refs > 0) g->caller_refs--;
    }
    return LOOM_OK;
}

void loom_model_free(loom_model *m) {
    if (!m) return;
    model_free_parts(m);
    loom_graph *g = m->g;
    if (g) {
        for (int i = 0; i < g->n_models; i++)
            if (g->models[i] == m) {
                g->models[i] = g->models[--g->n_models];
                break;
            }
        if (g->n_models == 0 && g->caller_refs == 0) loom_graph_destroy(g);
    }
    free(m);
}

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

/* Gives the model's layers that no model placed yet their offsets in the graph's parameter buffer
 * (in order of first use, a layer's weights contiguous: a graph with one model has exactly the
 * layout of a model that owned its weights) and their initial values. The buffer grows by a copy;
 * the models already over the graph are pointed at the new one. */
static loom_status place_weights(loom_model *m, loom_graph *g) {
    size_t total = g->n_params;
    for (int i = 0; i < m->n_layers; i++) {
        loom_layer *L = m->layers[i];
        if (L->placed) continue;
        for (int w = 0; w < L->n_weights; w++) {
            size_t n = loom_shape_size(&L->weights[w].shape);
            if (n > SIZE_MAX / 4 - total)
                return loom_set_error(&g->err, LOOM_ERR_MEMORY, "model: too many parameters (layer %s)", L->name);
            L->weights[w].offset = total;
            total += n;
        }
    }
    if (total > g->n_params || !g->params) {
        float *p = loom_floats_zeroed(total ? total : 1);
        if (!p) return loom_set_error(&g->err, LOOM_ERR_MEMORY, "model: out of memory for %zu parameters", total);
        if (g->params) memcpy(p, g->params, g->n_params * sizeof *p);
        loom_floats_free(g->params);
        g->params = p;
        g->n_params = total;
        for (int i = 0; i < g->n_models; i++) g->models[i]->params = p;
    }
    for (int i = 0; i < m->n_layers; i++) {
        loom_layer *L = m->layers[i];
        if (L->placed) continue;
        for (int w = 0; w < L->n_weights; w++) {
            loom_weight *wt = &L->weights[w];
            /* A key per (graph seed, layer, weight): values do not depend on other layers. */
            uint64_t key = loom_hash64(g->seed, ((uint64_t)L->index << 8) | (uint64_t)w);
            loom_init_fill(wt->init, &wt->shape, g->params + wt->offset, key);
        }
        L->placed = true;
    }
    m->params = g->params;
    return LOOM_OK;
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
    loom_status s = place_weights(m, g);
    if (s) return s;
    /* the model's gradients and optimizer state cover the buffer up to its last weight */
    size_t end = 0;
    int nt = 0;
    for (int i = 0; i < m->n_layers; i++) {
        loom_layer *L = m->layers[i];
        for (int w = 0; w < L->n_weights; w++, nt++) {
            size_t e = L->weights[w].offset + loom_shape_size(&L->weights[w].shape);
            if (e > end) end = e;
        }
    }
    m->n_params = end;
    m->n_tensors = nt;
    size_t alloc = end ? end : 1;
    m->grads = loom_floats_zeroed(alloc);
    m->tensors = calloc((size_t)(nt ? nt : 1), sizeof *m->tensors);
    m->t_offset = calloc((size_t)(nt ? nt : 1), sizeof *m->t_offset);
    m->t_size = calloc((size_t)(nt ? nt : 1), sizeof *m->t_size);
    m->t_active = calloc((size_t)(nt ? nt : 1), sizeof *m->t_active);
    m->t_sgd_update = calloc((size_t)(nt ? nt : 1), sizeof *m->t_sgd_update);
    m->t_sole_pos = calloc((size_t)(nt ? nt : 1), sizeof *m->t_sole_pos);
    m->t_frozen = calloc((size_t)(nt ? nt : 1), sizeof *m->t_frozen);
    if (!m->grads || !m->tensors || !m->t_offset || !m->t_size || !m->t_active || !m->t_sgd_update ||
        !m->t_sole_pos || !m->t_frozen)
        return loom_set_error(&g->err, LOOM_ERR_MEMORY, "model: out of memory for %zu parameters", end);
    nt = 0;
    size_t packed = 0;
    m->dense_params = true;
    for (int i = 0; i < m->n_layers; i++) {
        loom_layer *L = m->layers[i];
        for (int w = 0; w < L->n_weights; w++) {
            loom_weight *wt = &L->weights[w];
            m->tensors[nt] = (loom_param_tensor){L, w, wt->offset, loom_shape_size(&wt->shape)};
            m->t_offset[nt] = wt->offset;
            m->t_size[nt] = m->tensors[nt].size;
            m->t_sole_pos[nt] = -1; /* until compile plans it */
            if (wt->offset != packed) m->dense_params = false;
            packed += m->t_size[nt];
            nt++;
        }
    }
    if (packed != end) m->dense_params = false;
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
    if (register_model(g, m)) {
        loom_set_error(&g->err, LOOM_ERR_MEMORY, "model: out of memory");
        model_free_parts(m);
        free(m);
        return NULL;
    }
    m->g = g;
    loom_model_snapshot_trainable(m);
    return m;
}

/* ---------------------------------------------------------------- accessors */
