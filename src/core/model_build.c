/* model_build.c — turning a graph into a model: validation, execution order, reach sets and the
 * flat parameter buffers; and freeing it. */
#include "core/branches.h"
#include "core/balance.h"
#include "ops/init.h"

#include <stdlib.h>
#include <string.h>

void loom_unbind(loom_bound_data *d) {
    free(d->x);
    free(d->y);
    free(d->sw);
    free(d->x_steps);
    free(d->lengths);
    free(d->y_per);
    memset(d, 0, sizeof *d);
}

loom_status loom_bind_alloc(loom_model *m, loom_bound_data *d) {
    memset(d, 0, sizeof *d);
    d->x = calloc((size_t)m->n_inputs, sizeof *d->x);
    d->y = calloc((size_t)m->n_outputs, sizeof *d->y);
    d->sw = calloc((size_t)m->n_outputs, sizeof *d->sw);
    d->x_steps = calloc((size_t)m->n_inputs, sizeof *d->x_steps);
    d->lengths = calloc((size_t)m->n_inputs, sizeof *d->lengths);
    d->y_per = calloc((size_t)m->n_outputs, sizeof *d->y_per);
    if (!d->x || !d->y || !d->sw || !d->x_steps || !d->lengths || !d->y_per) {
        loom_unbind(d);
        return loom_set_error(&m->err, LOOM_ERR_MEMORY, "out of memory binding data");
    }
    return LOOM_OK;
}

static void model_free_parts(loom_model *m) {
    if (m->order)
        for (int i = 0; i < m->n_order; i++) {
            for (int k = 0; k < m->order[i].n_products; k++) loom_product_release(&m->order[i].products[k]);
            free(m->order[i].products);
            free(m->order[i].in_pos);
            free(m->order[i].din);
            free(m->order[i].in);
        }
    free(m->order);
    free(m->input_pos);
    free(m->steps);
    free(m->plan_steps);
    free(m->max_steps);
    free(m->want_steps);
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
    loom_branches_free(m->branches);
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

/* Marks every node output_node depends on. With an explicit stack (stack: room for every node of
 * the graph, each pushed at most once): a chain of 100,000 layers would overflow the C stack. */
static loom_status mark_needed(loom_graph *g, loom_node *output_node, bool *needed, const bool *is_model_input,
                               const char *output_name, loom_node **stack) {
    int top = 0;
    if (!needed[output_node->id]) needed[output_node->id] = true, stack[top++] = output_node;
    while (top > 0) {
        loom_node *n = stack[--top];
        if (n->layer->op == &loom_op_input && !is_model_input[n->id])
            return loom_set_error(&g->err, LOOM_ERR_GRAPH,
                                  "output %s depends on Input \"%s\", which is not among the model's inputs",
                                  output_name, n->layer->name);
        for (int i = 0; i < n->n_in; i++)
            if (!needed[n->in[i]->id]) needed[n->in[i]->id] = true, stack[top++] = n->in[i];
    }
    return LOOM_OK;
}

static loom_status build_order(loom_model *m, loom_graph *g, int n_in, loom_tensor *const *inputs,
                               int n_out, loom_tensor *const *outputs) {
    int nn = g->n_nodes;
    bool *is_input = calloc((size_t)nn, sizeof *is_input);
    bool *needed = calloc((size_t)nn, sizeof *needed);
    int *pos = malloc((size_t)nn * sizeof *pos);
    loom_node **stack = malloc((size_t)(nn ? nn : 1) * sizeof *stack);
    loom_status s = LOOM_OK;
    if (!is_input || !needed || !pos || !stack) {
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
        s = mark_needed(g, outputs[k]->node, needed, is_input, outputs[k]->node->layer->name, stack);
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
        sn->shape = n->out_shape;
        sn->is_input = n->layer->op == &loom_op_input;
        /* a layer's own policy holds before any compile (a loaded model predicts as saved); compile
         * decides again with the model's policy */
        sn->bf16 = n->layer->op->bf16_workspace && loom_model_layer_policy(m, n->layer) == LOOM_POLICY_MIXED_BFLOAT16;
        sn->reshape = loom_shape_is_variable(&n->out_shape);
        for (int j = 0; j < n->n_in; j++) sn->reshape = sn->reshape || m->order[pos[n->in[j]->id]].reshape;
        m->variable = m->variable || sn->reshape;
        sn->size = sn->reshape ? 0 : loom_shape_size(&n->out_shape); /* variable: set by loom_engine_set_steps */
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
        o->size = m->order[o->pos].size;
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
    free(stack);
    return s;
}

/* Gives the model's layers that no model placed yet their offsets in the graph's parameter buffer
 * (in order of first use, a layer's weights contiguous: a graph with one model has exactly the
 * layout of a model that owned its weights) and their initial values. The buffer grows by a copy;
 * the models already over the graph are pointed at the new one. */
static loom_status place_weights(loom_model *m, loom_graph *g) {
    size_t total = g->n_params;
    bool fits = true;
    for (int i = 0; i < m->n_layers; i++) {
        loom_layer *L = m->layers[i];
        if (L->placed) continue;
        for (int w = 0; w < L->n_weights; w++) {
            L->weights[w].offset = total; /* a layer's weights are contiguous, in order */
            fits = fits && loom_size_add(total, loom_shape_size(&L->weights[w].shape), &total);
        }
    }
    /* Declared sizes before any allocation: the parameters, their gradients and the optimizer
     * state must fit in memory, and a model file must hold every value it declares. */
    if (!fits || total > loom_memory_limit() / (3 * sizeof(float)))
        return loom_set_error(&g->err, LOOM_ERR_MEMORY,
                              "model: %s%zu parameters (%.3g GiB with their gradients) do not fit this machine's %.3g GiB",
                              fits ? "" : "over ", total, (double)total * 2 * sizeof(float) / 1073741824.0,
                              (double)loom_memory_limit() / 1073741824.0);
    if (total > g->max_params)
        return loom_set_error(&g->err, LOOM_ERR_DATA,
                              "model: the architecture declares %zu parameters but the weights hold only %zu values", total,
                              g->max_params);
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
    bool *seen = calloc((size_t)(g->n_layers ? g->n_layers : 1), sizeof *seen);
    if (!m->layers || !seen) {
        free(seen);
        return loom_set_error(&g->err, LOOM_ERR_MEMORY, "model: out of memory");
    }
    for (int i = 0; i < m->n_order; i++) {
        loom_layer *L = m->order[i].node->layer;
        if (!seen[L->index]) seen[L->index] = true, m->layers[m->n_layers++] = L;
    }
    free(seen);
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

/* Variable-length inputs start at one step, or at the build probe's length when a layer needs
 * more (a Conv1D's kernel), until data sets them. */
static loom_status initial_steps(loom_model *m) {
    m->steps = calloc((size_t)m->n_inputs, sizeof *m->steps);
    m->plan_steps = calloc((size_t)m->n_inputs, sizeof *m->plan_steps);
    m->max_steps = calloc((size_t)m->n_inputs, sizeof *m->max_steps);
    m->want_steps = calloc((size_t)m->n_inputs, sizeof *m->want_steps);
    int *t = calloc((size_t)m->n_inputs, sizeof *t);
    loom_status s = LOOM_OK;
    if (!m->steps || !m->plan_steps || !m->max_steps || !m->want_steps || !t) s = loom_set_error(&m->err, LOOM_ERR_MEMORY, "out of memory");
    for (int i = 0; !s && i < m->n_inputs; i++) t[i] = 1;
    if (!s && loom_engine_set_steps(m, t)) {
        for (int i = 0; i < m->n_inputs; i++) t[i] = LOOM_PROBE_STEPS_A;
        s = loom_engine_set_steps(m, t);
    }
    free(t);
    if (!s) loom_clear_error(&m->err);
    return s;
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
    if (m) m->check_finite = true;
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
    if (m->variable && initial_steps(m)) {
        loom_set_error(&g->err, m->err.code, "model: %s", m->err.msg);
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
