/* graph.c — the functional-API builder: layers, calls (nodes) and symbolic tensors.
 *
 * As in Keras, a layer owns its weights and gets one node per call site; a tensor is the output
 * of one node. Errors are sticky: after the first failure every builder call returns NULL and
 * keeps the first message, so a graph can be written without checks and tested once. */
#include "graph/graph.h"

#include <stdlib.h>
#include <string.h>

loom_graph *loom_graph_new(uint64_t seed) {
    loom_graph *g = calloc(1, sizeof *g);
    if (g) {
        g->seed = seed;
        g->caller_refs = 1;
        g->max_params = SIZE_MAX;
    }
    return g;
}

loom_graph *loom_graph_retain(loom_graph *g) {
    if (g) g->caller_refs++;
    return g;
}

void loom_graph_free(loom_graph *g) {
    if (!g) return;
    /* a call without a reference of the caller's (the graph went to its models) changes nothing */
    if (g->caller_refs > 0) g->caller_refs--;
    if (g->caller_refs == 0 && g->n_models == 0) loom_graph_destroy(g);
}

void loom_graph_destroy(loom_graph *g) {
    if (!g) return;
    for (int i = 0; i < g->n_layers; i++) {
        free(g->layers[i]->user); /* a custom layer's copied definition, a stateful recurrent layer's states */
        free(g->layers[i]);
    }
    for (int i = 0; i < g->n_nodes; i++) {
        free(g->nodes[i]->in);
        free(g->nodes[i]->tensor);
        free(g->nodes[i]);
    }
    free(g->layers);
    free(g->nodes);
    loom_floats_free(g->params);
    free(g->models);
    free(g->name_slots);
    free(g->stems);
    free(g);
}

loom_status loom_graph_status(const loom_graph *g) { return g ? g->err.code : LOOM_ERR_ARGUMENT; }
const char *loom_graph_error(const loom_graph *g) { return g ? g->err.msg : "graph is NULL"; }

static size_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)(h ^ (h >> 29));
}

loom_layer *loom_graph_find_layer(const loom_graph *g, const char *name) {
    if (!g || !g->name_cap) return NULL;
    for (size_t i = name_hash(name) & (g->name_cap - 1);; i = (i + 1) & (g->name_cap - 1)) {
        int k = g->name_slots[i];
        if (k < 0) return NULL;
        if (strcmp(g->layers[k]->name, name) == 0) return g->layers[k];
    }
}

static bool name_taken(const loom_graph *g, const char *name) { return loom_graph_find_layer(g, name) != NULL; }

static void name_insert(loom_graph *g, int k) {
    size_t i = name_hash(g->layers[k]->name) & (g->name_cap - 1);
    while (g->name_slots[i] >= 0) i = (i + 1) & (g->name_cap - 1);
    g->name_slots[i] = k;
}

/* Room in the name table for one more layer (kept at most half full). */
static bool name_reserve(loom_graph *g) {
    if ((size_t)(g->n_layers + 1) * 2 <= g->name_cap) return true;
    size_t cap = g->name_cap ? 2 * g->name_cap : 64;
    int *slots = malloc(cap * sizeof *slots);
    if (!slots) return false;
    free(g->name_slots);
    g->name_slots = slots;
    g->name_cap = cap;
    for (size_t i = 0; i < cap; i++) slots[i] = -1;
    for (int k = 0; k < g->n_layers; k++) name_insert(g, k);
    return true;
}

/* Keras 3 names: "dense", then "dense_1", "dense_2", ... Names are never removed, so a suffix
 * found taken stays taken: each stem resumes where its last search ended. */
static bool auto_name(loom_graph *g, const char *stem, char *out) {
    struct loom_name_stem *st = NULL;
    for (int i = 0; i < g->n_stems && !st; i++)
        if (strcmp(g->stems[i].stem, stem) == 0) st = &g->stems[i];
    if (!st) {
        struct loom_name_stem *p = realloc(g->stems, (size_t)(g->n_stems + 1) * sizeof *p);
        if (!p) return false;
        g->stems = p;
        st = &g->stems[g->n_stems++];
        snprintf(st->stem, sizeof st->stem, "%s", stem);
        st->next = 0;
    }
    for (;; st->next++) {
        if (st->next == 0) snprintf(out, LOOM_NAME_MAX, "%s", stem);
        else if (snprintf(out, LOOM_NAME_MAX, "%s_%d", stem, st->next) >= LOOM_NAME_MAX) /* keep the suffix */
            snprintf(out, LOOM_NAME_MAX, "%.*s_%d", LOOM_NAME_MAX - 13, stem, st->next);
        if (!name_taken(g, out)) return true;
    }
}

static bool valid_name(const char *name) {
    if (!name[0] || strlen(name) >= LOOM_NAME_MAX) return false;
    for (const char *p = name; *p; p++) {
        /* printable, no separators that would confuse log keys ("C_loss", "val_C_loss") */
        if (*p <= ' ' || *p == '/' || *p == '~' || *p == ',' || *p == '"' || *p == '\\') return false;
    }
    return true;
}

loom_layer *loom_graph_new_layer(loom_graph *g, const loom_op *op, const char *name) {
    if (!g || g->err.code) return NULL;
    if (name && !valid_name(name)) {
        loom_set_error(&g->err, LOOM_ERR_NAME,
                       "%s: invalid layer name \"%.80s\" (1-%d printable characters, no spaces, '/', '~', ',')",
                       op->class_name, name, LOOM_NAME_MAX - 1);
        return NULL;
    }
    if (name && name_taken(g, name)) {
        loom_set_error(&g->err, LOOM_ERR_NAME, "%s: the name \"%s\" is already used by another layer",
                       op->class_name, name);
        return NULL;
    }
    if (!name_reserve(g)) goto oom;
    if (g->n_layers == g->cap_layers) {
        int cap = g->cap_layers ? 2 * g->cap_layers : 16;
        loom_layer **p = realloc(g->layers, (size_t)cap * sizeof *p);
        if (!p) goto oom;
        g->layers = p;
        g->cap_layers = cap;
    }
    loom_layer *L = calloc(1, sizeof *L);
    if (!L) goto oom;
    L->graph = g;
    L->op = op;
    L->index = g->n_layers;
    if (name)
        snprintf(L->name, sizeof L->name, "%s", name);
    else if (!auto_name(g, op->base_name, L->name)) {
        free(L);
        goto oom;
    }
    g->layers[g->n_layers] = L;
    name_insert(g, g->n_layers++);
    return L;
oom:
    loom_set_error(&g->err, LOOM_ERR_MEMORY, "%s: out of memory", op->class_name);
    return NULL;
}

int loom_layer_add_weight(loom_layer *L, const char *name, const loom_shape *shape,
                          loom_initializer init, loom_regularizer reg) {
    /* Internal invariant: no layer class declares more than LOOM_MAX_WEIGHTS. */
    int i = L->n_weights++;
    loom_weight *w = &L->weights[i];
    snprintf(w->name, sizeof w->name, "%s", name);
    w->shape = *shape;
    w->init = init;
    w->reg = reg;
    return i;
}

static loom_node *new_node(loom_graph *g, loom_layer *L, int n_in) {
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? 2 * g->cap_nodes : 16;
        loom_node **p = realloc(g->nodes, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        g->nodes = p;
        g->cap_nodes = cap;
    }
    loom_node *n = calloc(1, sizeof *n);
    loom_tensor *t = calloc(1, sizeof *t);
    loom_node **in = n_in ? calloc((size_t)n_in, sizeof *in) : NULL;
    if (!n || !t || (n_in && !in)) {
        free(n);
        free(t);
        free(in);
        return NULL;
    }
    n->id = g->n_nodes;
    n->layer = L;
    n->n_in = n_in;
    n->in = in;
    n->tensor = t;
    t->node = n;
    g->nodes[g->n_nodes++] = n;
    return n;
}

/* ---------------------------------------------------------------- Input */

static loom_status input_build(loom_layer *L, int n_in, const loom_shape *in, loom_shape *out,
                               loom_error *err) {
    (void)n_in;
    (void)in;
    (void)err;
    *out = L->target;
    return LOOM_OK;
}

static void input_forward(const loom_layer *L, const loom_op_ctx *c) {
    (void)L;
    (void)c; /* the engine writes the batch straight into the node's value buffer */
}

static void input_backward(const loom_layer *L, const loom_op_ctx *c) {
    (void)L;
    (void)c;
}

const loom_op loom_op_input = {
    .class_name = "InputLayer",
    .base_name = "input_layer",
    .min_inputs = 0,
    .max_inputs = 0,
    .build = input_build,
    .forward = input_forward,
    .backward = input_backward,
    .mask_mode = LOOM_MASK_DROP,
};

loom_tensor *loom_input(loom_graph *g, const char *name, int rank, const int *dims) {
    if (!g || g->err.code) return NULL;
    if (rank < 1 || rank > LOOM_MAX_RANK || !dims) {
        loom_set_error(&g->err, LOOM_ERR_SHAPE, "Input %s: rank must be 1..%d, got %d",
                       name ? name : "(unnamed)", LOOM_MAX_RANK, rank);
        return NULL;
    }
    loom_shape shape = {rank, {0}};
    memcpy(shape.dims, dims, (size_t)rank * sizeof *dims);
    char who[LOOM_NAME_MAX + 8];
    snprintf(who, sizeof who, "Input %s", name ? name : "(unnamed)");
    for (int i = 1; i < rank; i++)
        if (dims[i] == LOOM_DIM_VARIABLE) {
            loom_set_error(&g->err, LOOM_ERR_SHAPE,
                           "%s: only the first (time) axis of a sequence may be variable (None), not axis %d", who, i + 1);
            return NULL;
        }
    loom_shape checked = shape; /* the fixed dimensions are held to the limits, the steps at their probe */
    if (checked.dims[0] == LOOM_DIM_VARIABLE) checked.dims[0] = LOOM_PROBE_STEPS_B;
    if (loom_shape_check(&checked, who, "shape", &g->err)) return NULL;
    loom_layer *L = loom_graph_new_layer(g, &loom_op_input, name);
    if (!L) return NULL;
    L->target.rank = rank;
    memcpy(L->target.dims, dims, (size_t)rank * sizeof *dims);
    loom_node *n = new_node(g, L, 0);
    if (!n) {
        loom_set_error(&g->err, LOOM_ERR_MEMORY, "Input %s: out of memory", L->name);
        return NULL;
    }
    L->built = true;
    L->n_calls = 1;
    n->out_shape = L->target;
    return n->tensor;
}

/* ---------------------------------------------------------------- calls */

bool loom_shape_is_variable(const loom_shape *s) { return s->rank >= 1 && s->dims[0] == LOOM_DIM_VARIABLE; }

bool loom_shape_compatible(const loom_shape *a, const loom_shape *b) {
    if (a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i] && !(i == 0 && (a->dims[0] == LOOM_DIM_VARIABLE || b->dims[0] == LOOM_DIM_VARIABLE)))
            return false;
    return true;
}

/* in with every variable time axis set to `steps` */
static void concrete_shapes(int n, const loom_shape *in, int steps, loom_shape *out) {
    for (int i = 0; i < n; i++) {
        out[i] = in[i];
        if (loom_shape_is_variable(&in[i])) out[i].dims[0] = steps;
    }
}

/* Shape inference with a variable time axis, for every layer class at once: the layer is built at
 * two probe lengths. What changes between them depends on the steps: the output's first axis may
 * (it is variable then: the engine builds the layer again at each batch's length, which is how
 * Conv1D's or a pooling's shorter output is found); any other output axis or any weight may not
 * (Flatten of the steps, a Dense kernel sized by them): an error naming the layer. */
static loom_status probe_variable_build(loom_layer *L, int n, const loom_shape *in, loom_shape *out, const char *who,
                                        loom_error *err) {
    loom_shape a_in[16], b_in[16], a_out, b_out;
    concrete_shapes(n, in, LOOM_PROBE_STEPS_A, a_in);
    concrete_shapes(n, in, LOOM_PROBE_STEPS_B, b_in);
    int before = L->n_weights;
    loom_status s = L->op->build(L, n, a_in, &a_out, err);
    if (s) return s;
    loom_weight a_weights[LOOM_MAX_WEIGHTS];
    int n_a = L->n_weights;
    memcpy(a_weights, L->weights, sizeof a_weights);
    L->n_weights = before;
    if ((s = L->op->build(L, n, b_in, &b_out, err))) return s;
    bool same_weights = L->n_weights == n_a;
    for (int w = before; w < n_a && same_weights; w++) same_weights = loom_shape_equal(&a_weights[w].shape, &L->weights[w].shape);
    if (!same_weights)
        return loom_set_error(err, LOOM_ERR_SHAPE,
                              "%s: its weights would depend on the variable (None) time axis of its input; give the "
                              "Input a fixed number of steps",
                              who);
    if ((s = loom_shape_check(&a_out, who, "output shape", err)) || (s = loom_shape_check(&b_out, who, "output shape", err)))
        return s;
    bool fixed_rest = a_out.rank == b_out.rank;
    for (int i = 1; i < a_out.rank && fixed_rest; i++) fixed_rest = a_out.dims[i] == b_out.dims[i];
    /* A vector's one axis may vary only as the steps do (ids through an Activation), not faster:
     * Flatten of (None, 4) would make a feature vector sized by the steps. */
    if (a_out.rank == 1 && b_out.dims[0] - a_out.dims[0] > LOOM_PROBE_STEPS_B - LOOM_PROBE_STEPS_A) fixed_rest = false;
    if (!fixed_rest) {
        char sa[96];
        return loom_set_error(err, LOOM_ERR_SHAPE,
                              "%s: its output %s would have a size that depends on the variable (None) time axis "
                              "beyond its first axis; only the steps axis may vary (give the Input a fixed number of steps)",
                              who, loom_shape_str(&a_out, sa, sizeof sa));
    }
    *out = a_out;
    if (a_out.dims[0] != b_out.dims[0]) out->dims[0] = LOOM_DIM_VARIABLE;
    return LOOM_OK;
}

loom_tensor *loom_call(loom_layer *layer, loom_tensor *x) { return loom_call_n(layer, 1, &x); }

loom_tensor *loom_call_n(loom_layer *L, int n, loom_tensor *const *xs) {
    if (!L) return NULL; /* the graph already holds the error that made L NULL */
    loom_graph *g = L->graph;
    if (g->err.code) return NULL;
    if (L->op == &loom_op_input) {
        loom_set_error(&g->err, LOOM_ERR_GRAPH, "%s: an Input layer cannot be called", L->name);
        return NULL;
    }
    if (n < L->op->min_inputs || n > L->op->max_inputs || !xs) {
        if (L->op->min_inputs == L->op->max_inputs)
            loom_set_error(&g->err, LOOM_ERR_COUNT, "%s (%s): takes %d input(s), got %d", L->name,
                           L->op->class_name, L->op->min_inputs, n);
        else
            loom_set_error(&g->err, LOOM_ERR_COUNT, "%s (%s): takes %d to %d inputs, got %d",
                           L->name, L->op->class_name, L->op->min_inputs, L->op->max_inputs, n);
        return NULL;
    }
    loom_shape in[16];
    if (n > 16) {
        loom_set_error(&g->err, LOOM_ERR_COUNT, "%s: at most 16 inputs, got %d", L->name, n);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        if (!xs[i]) {
            loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s: input %d is NULL", L->name, i);
            return NULL;
        }
        if (xs[i]->node->layer->graph != g) {
            loom_set_error(&g->err, LOOM_ERR_GRAPH, "%s: input %d belongs to another graph",
                           L->name, i);
            return NULL;
        }
        in[i] = xs[i]->node->out_shape;
    }
    /* A shared layer has one set of weights: every call must see the shapes of the first. A first
     * call on a variable time axis matches any length (its probes showed that the weights do not
     * depend on it); a first call on a fixed length matches a variable one only in a layer without
     * weights (nothing then says the weights would fit every length). */
    if (L->built) {
        bool same = L->built_n_in == n;
        for (int i = 0; same && i < n && i < 8; i++)
            same = loom_shape_equal(&L->built_in[i], &in[i]) ||
                   ((loom_shape_is_variable(&L->built_in[i]) || L->n_weights == 0) &&
                    loom_shape_compatible(&L->built_in[i], &in[i]));
        if (!same) {
            char a[64], b[64];
            loom_set_error(&g->err, LOOM_ERR_SHAPE,
                           "%s (%s): called on input shape %s, but its weights were built for %s",
                           L->name, L->op->class_name, loom_shape_str(&in[0], a, sizeof a),
                           loom_shape_str(&L->built_in[0], b, sizeof b));
            return NULL;
        }
    }
    loom_shape out;
    int weights_before = L->n_weights;
    char who[LOOM_NAME_MAX + 40];
    snprintf(who, sizeof who, "%s (%s)", L->name, L->op->class_name);
    bool variable = false;
    for (int i = 0; i < n; i++) variable = variable || loom_shape_is_variable(&in[i]);
    if (variable) {
        if (probe_variable_build(L, n, in, &out, who, &g->err) != LOOM_OK) {
            L->n_weights = weights_before;
            return NULL;
        }
    } else if (L->op->build(L, n, in, &out, &g->err) != LOOM_OK) {
        L->n_weights = weights_before;
        return NULL;
    }
    /* Every shape a layer computes is held to the limits of base.h here, once for all classes:
     * nothing downstream (planner, kernels) can then see a product that wraps. (A variable output
     * was checked at its probes.) */
    bool bad = !loom_shape_is_variable(&out) && loom_shape_check(&out, who, "output shape", &g->err) != LOOM_OK;
    for (int w = weights_before; w < L->n_weights && !bad; w++) {
        char what[40];
        snprintf(what, sizeof what, "weight %s of shape", L->weights[w].name);
        bad = loom_shape_check(&L->weights[w].shape, who, what, &g->err) != LOOM_OK;
    }
    if (bad) {
        L->n_weights = weights_before;
        return NULL;
    }
    if (L->built) L->n_weights = weights_before; /* only the first call declares weights */
    loom_node *node = new_node(g, L, n);
    if (!node) {
        loom_set_error(&g->err, LOOM_ERR_MEMORY, "%s: out of memory", L->name);
        return NULL;
    }
    for (int i = 0; i < n; i++) node->in[i] = xs[i]->node;
    node->out_shape = out;
    if (!L->built) {
        L->built = true;
        L->built_n_in = n;
        for (int i = 0; i < n && i < 8; i++) L->built_in[i] = in[i];
    }
    L->n_calls++;
    return node->tensor;
}

/* ---------------------------------------------------------------- introspection */

const char *loom_layer_name(const loom_layer *L) { return L ? L->name : NULL; }
const char *loom_layer_class(const loom_layer *L) { return L ? L->op->class_name : NULL; }

int loom_tensor_shape(const loom_tensor *t, int *dims) {
    if (!t) return 0;
    if (dims) memcpy(dims, t->node->out_shape.dims, (size_t)t->node->out_shape.rank * sizeof(int));
    return t->node->out_shape.rank;
}

loom_layer *loom_tensor_layer(const loom_tensor *t) { return t ? t->node->layer : NULL; }

int loom_layer_num_weights(const loom_layer *L) { return L ? L->n_weights : 0; }

const char *loom_layer_weight_name(const loom_layer *L, int i) {
    return (L && i >= 0 && i < L->n_weights) ? L->weights[i].name : NULL;
}

int loom_layer_weight_shape(const loom_layer *L, int i, int *dims) {
    if (!L || i < 0 || i >= L->n_weights) return 0;
    if (dims) memcpy(dims, L->weights[i].shape.dims, (size_t)L->weights[i].shape.rank * sizeof(int));
    return L->weights[i].shape.rank;
}

size_t loom_layer_weight_size(const loom_layer *L, int i) {
    return (L && i >= 0 && i < L->n_weights) ? loom_shape_size(&L->weights[i].shape) : 0;
}

/* ---------------------------------------------------------------- trainable */

loom_status loom_layer_set_trainable(loom_layer *layer, int trainable) {
    if (!layer) return LOOM_ERR_ARGUMENT;
    layer->frozen = !trainable;
    for (int i = 0; i < 2; i++) /* a wrapper's inner layers follow it, as Keras's sublayers */
        if (layer->inner[i]) layer->inner[i]->frozen = !trainable;
    return LOOM_OK;
}

int loom_layer_trainable(const loom_layer *layer) { return layer && !layer->frozen; }

/* ---------------------------------------------------------------- dtype policy */

loom_status loom_layer_set_dtype_policy(loom_layer *layer, loom_dtype_policy policy) {
    if (!layer || (int)policy < LOOM_POLICY_DEFAULT || policy > LOOM_POLICY_MIXED_BFLOAT16) return LOOM_ERR_ARGUMENT;
    layer->dtype_policy = (int)policy;
    for (int i = 0; i < 2; i++)
        if (layer->inner[i]) layer->inner[i]->dtype_policy = (int)policy;
    return LOOM_OK;
}

loom_dtype_policy loom_layer_dtype_policy(const loom_layer *layer) {
    return layer ? (loom_dtype_policy)layer->dtype_policy : LOOM_POLICY_DEFAULT;
}
