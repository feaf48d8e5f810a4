/* model_json.c — the architecture as JSON (cJSON), for model files (compile settings:
 * model_json_compile.c; history: history.c).
 * The architecture follows Keras 3's Model.to_json() so that reading Keras models is a natural
 * next step: {"class_name": "Functional", "config": {"layers": [{"class_name", "name", "config",
 * "inbound_nodes": [{"args": [tensor | [tensors]], "kwargs": {}}]}], "input_layers",
 * "output_layers"}} with tensors {"class_name": "__keras_tensor__", "config": {"shape",
 * "keras_history": [layer, node_index, 0]}}. */
#include "layers/layer_custom.h"
#include "io/model_json.h"
#include "io/loaders.h"
#include "layers/rnn.h"
#include "layers/layers.h"
#include "ops/activations.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- small helpers */

static const char *const INIT_NAMES[] = {"GlorotUniform", "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal",
                                         "LecunUniform",  "LecunNormal",   "Zeros",        "Ones"};

static cJSON *init_json(loom_initializer init, loom_initializer fallback) {
    if (init == LOOM_INIT_DEFAULT) init = fallback;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "class_name", INIT_NAMES[init]);
    cJSON *cfg = cJSON_AddObjectToObject(o, "config");
    if (init != LOOM_INIT_ZEROS && init != LOOM_INIT_ONES) cJSON_AddNullToObject(cfg, "seed");
    return o;
}

static loom_initializer init_from_json(const cJSON *j, loom_initializer fallback) {
    const cJSON *cn = cJSON_GetObjectItemCaseSensitive(j, "class_name");
    if (!cJSON_IsString(cn)) return fallback;
    for (int i = 1; i <= LOOM_INIT_ONES; i++)
        if (strcmp(cn->valuestring, INIT_NAMES[i]) == 0) return (loom_initializer)i;
    return (loom_initializer)-1;
}

static cJSON *reg_json(loom_regularizer r) {
    if (r.l1 == 0 && r.l2 == 0) return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "class_name", "L1L2");
    cJSON *cfg = cJSON_AddObjectToObject(o, "config");
    cJSON_AddNumberToObject(cfg, "l1", r.l1);
    cJSON_AddNumberToObject(cfg, "l2", r.l2);
    return o;
}

/* A JSON number as an integer, or `bad` when it is not a whole number in [lo, hi] (casting an
 * out-of-range double is undefined behaviour). */
long loom_json_whole(const cJSON *v, long lo, long hi, long bad) {
    return cJSON_IsNumber(v) ? loom_whole_number(v->valuedouble, lo, hi, bad) : bad;
}

double loom_json_num(const cJSON *obj, const char *key, double fallback) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? v->valuedouble : fallback;
}

float loom_json_float(const cJSON *obj, const char *key, float fallback) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? loom_ld_f64_to_f32(v->valuedouble) : fallback;
}

float loom_json_to_float(const cJSON *v) { return loom_ld_f64_to_f32(v->valuedouble); }

bool loom_json_flag(const cJSON *obj, const char *key, bool fallback) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : fallback;
}

const char *loom_json_str(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static loom_regularizer reg_from_json(const cJSON *j) {
    loom_regularizer r = {0, 0};
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(j, "config");
    if (cJSON_IsObject(cfg)) {
        r.l1 = loom_json_float(cfg, "l1", 0);
        r.l2 = loom_json_float(cfg, "l2", 0);
    }
    return r;
}

static cJSON *int_array(const int *v, int n, bool leading_null) {
    cJSON *a = cJSON_CreateArray();
    if (leading_null) cJSON_AddItemToArray(a, cJSON_CreateNull());
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

/* Reads an array of small integers (skipping a leading null); returns the count or -1. */
static int int_array_from(const cJSON *a, int *out, int max) {
    if (!cJSON_IsArray(a)) return -1;
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, a) {
        if (cJSON_IsNull(it) && n == 0) continue;
        long v = loom_json_whole(it, -1000000000L, 1000000000L, LONG_MIN);
        if (n >= max || v == LONG_MIN) return -1;
        out[n++] = (int)v;
    }
    return n;
}

/* An InputLayer's batch shape: the batch axis (null) skipped, a null first per-sample axis a
 * variable time axis (LOOM_DIM_VARIABLE). Returns the rank or -1. */
static int batch_shape_from(const cJSON *a, int *out, int max) {
    if (!cJSON_IsArray(a)) return -1;
    int n = 0, at = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, a) {
        if (cJSON_IsNull(it) && at++ == 0) continue;
        if (n >= max) return -1;
        if (cJSON_IsNull(it) && n == 0) {
            out[n++] = LOOM_DIM_VARIABLE;
            continue;
        }
        long v = loom_json_whole(it, -1000000000L, 1000000000L, LONG_MIN);
        if (v == LONG_MIN) return -1;
        out[n++] = (int)v;
    }
    return n;
}

/* the batch shape of an Input for the file: null for the batch and a variable time axis */
static cJSON *batch_shape_json(const loom_shape *s) {
    cJSON *a = int_array(s->dims, s->rank, true);
    cJSON *first = cJSON_GetArrayItem(a, 1);
    if (first && s->rank > 0 && s->dims[0] == LOOM_DIM_VARIABLE) cJSON_ReplaceItemInArray(a, 1, cJSON_CreateNull());
    return a;
}

/* ---------------------------------------------------------------- layers to JSON */

static cJSON *pair(int a, int b) {
    int v[2] = {a, b};
    return int_array(v, 2, false);
}

/* Convolution, pooling and spatial layers, Keras argument names (iarg layout: layer_conv.c). */
static bool conv_config(const loom_layer *L, cJSON *c) {
    const loom_op *op = L->op;
    const int *a = L->iarg;
    bool one_d = op == &loom_op_conv1d || op == &loom_op_max_pooling1d || op == &loom_op_average_pooling1d;
    bool conv = op == &loom_op_conv1d || op == &loom_op_conv2d || op == &loom_op_conv2d_transpose ||
                op == &loom_op_depthwise_conv2d;
    bool pool = op == &loom_op_max_pooling1d || op == &loom_op_max_pooling2d || op == &loom_op_average_pooling1d ||
                op == &loom_op_average_pooling2d;
    if (conv || pool) {
        const char *size_key = conv ? "kernel_size" : "pool_size";
        if (op == &loom_op_depthwise_conv2d) cJSON_AddNumberToObject(c, "depth_multiplier", a[0]);
        else if (conv) cJSON_AddNumberToObject(c, "filters", a[0]);
        cJSON_AddItemToObject(c, size_key, one_d ? int_array(&a[2], 1, false) : pair(a[1], a[2]));
        cJSON_AddItemToObject(c, "strides", one_d ? int_array(&a[4], 1, false) : pair(a[3], a[4]));
        cJSON_AddStringToObject(c, "padding", a[7] == LOOM_PADDING_SAME ? "same" : "valid");
        if (!conv) return true;
        if (op != &loom_op_conv2d_transpose && op != &loom_op_depthwise_conv2d)
            cJSON_AddItemToObject(c, "dilation_rate", one_d ? int_array(&a[6], 1, false) : pair(a[5], a[6]));
        cJSON_AddStringToObject(c, "activation", loom_activation_name(L->activation));
        cJSON_AddBoolToObject(c, "use_bias", a[8] != 0);
        const char *kinit = op == &loom_op_depthwise_conv2d ? "depthwise_initializer" : "kernel_initializer";
        const char *kreg = op == &loom_op_depthwise_conv2d ? "depthwise_regularizer" : "kernel_regularizer";
        cJSON_AddItemToObject(c, kinit, init_json((loom_initializer)a[9], LOOM_INIT_GLOROT_UNIFORM));
        cJSON_AddItemToObject(c, "bias_initializer", init_json((loom_initializer)a[10], LOOM_INIT_ZEROS));
        cJSON_AddItemToObject(c, kreg, reg_json((loom_regularizer){L->farg[0], L->farg[1]}));
        cJSON_AddItemToObject(c, "bias_regularizer", reg_json((loom_regularizer){L->farg[2], L->farg[3]}));
        return true;
    }
    if (op == &loom_op_upsampling2d) {
        cJSON_AddItemToObject(c, "size", pair(a[0], a[1]));
        cJSON_AddStringToObject(c, "interpolation", "nearest");
        return true;
    }
    if (op == &loom_op_zero_padding2d || op == &loom_op_cropping2d) {
        cJSON *p = cJSON_CreateArray();
        cJSON_AddItemToArray(p, pair(a[0], a[1]));
        cJSON_AddItemToArray(p, pair(a[2], a[3]));
        cJSON_AddItemToObject(c, op == &loom_op_cropping2d ? "cropping" : "padding", p);
        return true;
    }
    return false;
}

/* TimeDistributed: its config holds the wrapped layer's own, written and read with the per-layer
 * functions below, so any class loom can save may be wrapped. */
static bool time_distributed_config(const loom_layer *L, cJSON *c, loom_error *err) {
    const loom_layer *inner = L->inner[0];
    cJSON *cfg = loom_layer_config_json(inner, err);
    cJSON *o = cfg ? cJSON_CreateObject() : NULL;
    if (!o) {
        cJSON_Delete(cfg);
        return false;
    }
    cJSON_AddStringToObject(o, "module", "keras.layers");
    cJSON_AddStringToObject(o, "class_name", inner->op->class_name);
    cJSON_AddItemToObject(o, "config", cfg);
    cJSON_AddNullToObject(o, "registered_name");
    return cJSON_AddItemToObject(c, "layer", o);
}

static loom_layer *time_distributed_from_config(loom_graph *g, const char *name, const cJSON *c, const char *what,
                                                loom_error *err) {
    const char *shown = name ? name : "time_distributed";
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(c, "layer");
    const cJSON *icfg = cJSON_GetObjectItemCaseSensitive(o, "config");
    const char *cls = loom_json_str(o, "class_name"), *iname = loom_json_str(icfg, "name");
    if (!cls || !cJSON_IsObject(icfg)) {
        loom_set_error(err, LOOM_ERR_DATA, "%s: %s (TimeDistributed): the config has no wrapped layer", what, shown);
        return NULL;
    }
    loom_layer *inner = loom_layer_from_config_json(g, cls, iname, icfg, what, false, err);
    return inner ? loom_time_distributed(g, name, inner) : NULL;
}

cJSON *loom_layer_config_json(const loom_layer *L, loom_error *err) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "name", L->name);
    cJSON_AddBoolToObject(c, "trainable", !L->frozen);
    cJSON_AddStringToObject(c, "dtype", "float32");
    const loom_op *op = L->op;
    if (op == &loom_op_input) {
        cJSON_AddItemToObject(c, "batch_shape", batch_shape_json(&L->target));
    } else if (op == &loom_op_dense) {
        cJSON_AddNumberToObject(c, "units", L->units);
        cJSON_AddStringToObject(c, "activation", loom_activation_name(L->activation));
        cJSON_AddBoolToObject(c, "use_bias", L->dense.use_bias != 0);
        cJSON_AddItemToObject(c, "kernel_initializer", init_json(L->dense.kernel_initializer, LOOM_INIT_GLOROT_UNIFORM));
        cJSON_AddItemToObject(c, "bias_initializer", init_json(L->dense.bias_initializer, LOOM_INIT_ZEROS));
        cJSON_AddItemToObject(c, "kernel_regularizer", reg_json(L->dense.kernel_regularizer));
        cJSON_AddItemToObject(c, "bias_regularizer", reg_json(L->dense.bias_regularizer));
    } else if (op == &loom_op_activation) {
        cJSON_AddStringToObject(c, "activation", loom_activation_name(L->activation));
    } else if (op == &loom_op_dropout) {
        cJSON_AddNumberToObject(c, "rate", L->rate);
    } else if (op == &loom_op_concatenate) {
        cJSON_AddNumberToObject(c, "axis", L->axis);
    } else if (op == &loom_op_reshape) {
        cJSON_AddItemToObject(c, "target_shape", int_array(L->target.dims, L->target.rank, false));
    } else if (op == &loom_op_add || op == &loom_op_subtract || op == &loom_op_multiply || op == &loom_op_flatten ||
               op == &loom_op_global_average_pooling1d || op == &loom_op_global_max_pooling1d ||
               op == &loom_op_global_average_pooling2d || op == &loom_op_global_max_pooling2d) {
        /* no configuration */
    } else if (conv_config(L, c)) {
        /* a convolution, pooling or spatial layer */
    } else if (op == &loom_op_time_distributed) {
        if (!time_distributed_config(L, c, err)) {
            cJSON_Delete(c);
            if (!err->code) loom_set_error(err, LOOM_ERR_MEMORY, "layer %s: out of memory", L->name);
            return NULL;
        }
    } else if (op->save_config && op->load_config) {
        if (!op->save_config(L, c)) {
            cJSON_Delete(c);
            loom_set_error(err, LOOM_ERR_MEMORY, "layer %s: out of memory", L->name);
            return NULL;
        }
    } else {
        cJSON_Delete(c);
        loom_set_error(err, LOOM_ERR_STATE, "layer %s (%s) cannot be saved by this version of loom", L->name,
                       op->class_name);
        return NULL;
    }
    return c;
}

/* Precomputed for saving in O(n): call_of[node id] is the node's call index among the model's nodes
 * of its layer (Keras's node_index); a layer's positions in the order, as a list: first[layer
 * index], then next[position] (-1 ends it). */
typedef struct arch_index {
    int *call_of, *first, *last, *next;
} arch_index;

static void arch_index_free(arch_index *x) {
    free(x->call_of), free(x->first), free(x->last), free(x->next);
}

static bool arch_index_make(const loom_model *m, arch_index *x) {
    size_t nn = (size_t)m->g->n_nodes + 1, nl = (size_t)m->g->n_layers + 1;
    x->call_of = calloc(nn, sizeof *x->call_of);
    x->first = malloc(nl * sizeof *x->first);
    x->last = malloc(nl * sizeof *x->last);
    x->next = malloc(((size_t)m->n_order + 1) * sizeof *x->next);
    int *calls = calloc(nl, sizeof *calls);
    bool ok = x->call_of && x->first && x->last && x->next && calls;
    if (ok) {
        for (size_t i = 0; i < nl; i++) x->first[i] = x->last[i] = -1;
        for (int p = 0; p < m->n_order; p++) {
            const loom_node *n = m->order[p].node;
            int li = n->layer->index;
            x->call_of[n->id] = calls[li]++;
            x->next[p] = -1;
            if (x->last[li] < 0) x->first[li] = p;
            else x->next[x->last[li]] = p;
            x->last[li] = p;
        }
    }
    free(calls);
    if (!ok) arch_index_free(x);
    return ok;
}

static int node_index(const arch_index *x, const loom_node *n) { return x->call_of[n->id]; }

static cJSON *tensor_json(const arch_index *x, const loom_node *n) {
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "class_name", "__keras_tensor__");
    cJSON *cfg = cJSON_AddObjectToObject(t, "config");
    cJSON_AddItemToObject(cfg, "shape", batch_shape_json(&n->out_shape));
    cJSON_AddStringToObject(cfg, "dtype", "float32");
    cJSON *h = cJSON_AddArrayToObject(cfg, "keras_history");
    cJSON_AddItemToArray(h, cJSON_CreateString(n->layer->name));
    cJSON_AddItemToArray(h, cJSON_CreateNumber(node_index(x, n)));
    cJSON_AddItemToArray(h, cJSON_CreateNumber(0));
    return t;
}

static cJSON *history_ref(const arch_index *x, const loom_node *n) {
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, cJSON_CreateString(n->layer->name));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(node_index(x, n)));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(0));
    return a;
}

/* Keras 3's serialised policy object, as a layer config's "dtype" */
static cJSON *policy_json(const char *name) {
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "module", "keras");
    cJSON_AddStringToObject(d, "class_name", "DTypePolicy");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(d, "config"), "name", name);
    cJSON_AddNullToObject(d, "registered_name");
    return d;
}

/* A layer config's "dtype": absent, a name ("float32", Keras 2 and loom) or a policy object
 * (Keras 3: {"class_name": "DTypePolicy", "config": {"name": ...}}). mixed_bfloat16 sets the
 * layer's own policy; float32 leaves it to the model's; any other policy is refused. */
static loom_status read_dtype_policy(const cJSON *c, loom_layer *L, const char *what, loom_error *err) {
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(c, "dtype");
    if (!d || cJSON_IsNull(d)) return LOOM_OK;
    const cJSON *name = d;
    if (cJSON_IsObject(d)) name = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(d, "config"), "name");
    if (!cJSON_IsString(name))
        return loom_set_error(err, LOOM_ERR_DATA, "%s: layer %s: \"dtype\" is neither a name nor a policy with a name", what,
                              L->name);
    if (strcmp(name->valuestring, "mixed_bfloat16") == 0) return loom_layer_set_dtype_policy(L, LOOM_POLICY_MIXED_BFLOAT16);
    if (strcmp(name->valuestring, "float32") == 0) return LOOM_OK;
    return loom_set_error(err, LOOM_ERR_DATA, "%s: layer %s: dtype policy '%.64s' is not supported (float32 and mixed_bfloat16 are)",
                          what, L->name, name->valuestring);
}

cJSON *loom_arch_to_json(const loom_model *m, loom_error *err) {
    arch_index x;
    if (!arch_index_make(m, &x)) {
        loom_set_error(err, LOOM_ERR_MEMORY, "out of memory describing the architecture");
        return NULL;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "class_name", "Functional");
    cJSON *config = cJSON_AddObjectToObject(root, "config");
    cJSON_AddStringToObject(config, "name", "functional");
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)m->g->seed);
    cJSON_AddStringToObject(config, "loom_seed", seed);
    cJSON *layers = cJSON_AddArrayToObject(config, "layers");
    for (int i = 0; i < m->n_layers; i++) {
        const loom_layer *L = m->layers[i];
        cJSON *lj = cJSON_CreateObject();
        cJSON_AddItemToArray(layers, lj);
        cJSON_AddStringToObject(lj, "module", "keras.layers");
        cJSON_AddStringToObject(lj, "class_name", L->op->class_name);
        cJSON *cfg = loom_layer_config_json(L, err);
        if (!cfg) {
            cJSON_Delete(root);
            arch_index_free(&x);
            return NULL;
        }
        if (loom_model_layer_policy(m, L) == LOOM_POLICY_MIXED_BFLOAT16)
            cJSON_ReplaceItemInObjectCaseSensitive(cfg, "dtype", policy_json("mixed_bfloat16"));
        cJSON_AddItemToObject(lj, "config", cfg);
        cJSON_AddStringToObject(lj, "name", L->name);
        cJSON *inbound = cJSON_AddArrayToObject(lj, "inbound_nodes");
        for (int p = x.first[L->index]; p >= 0; p = x.next[p]) {
            const loom_node *n = m->order[p].node;
            if (n->n_in == 0) continue;
            cJSON *node = cJSON_CreateObject();
            cJSON_AddItemToArray(inbound, node);
            cJSON *args = cJSON_AddArrayToObject(node, "args");
            if (n->layer->op->max_inputs > 1) { /* merge layers take a list of tensors */
                cJSON *list = cJSON_CreateArray();
                for (int j = 0; j < n->n_in; j++) cJSON_AddItemToArray(list, tensor_json(&x, n->in[j]));
                cJSON_AddItemToArray(args, list);
            } else {
                cJSON_AddItemToArray(args, tensor_json(&x, n->in[0]));
            }
            cJSON_AddObjectToObject(node, "kwargs");
        }
        cJSON *ws = cJSON_AddArrayToObject(lj, "loom_weights");
        for (int w = 0; w < L->n_weights; w++) {
            cJSON *wj = cJSON_CreateObject();
            cJSON_AddStringToObject(wj, "name", L->weights[w].name);
            cJSON_AddItemToObject(wj, "shape", int_array(L->weights[w].shape.dims, L->weights[w].shape.rank, false));
            cJSON_AddItemToArray(ws, wj);
        }
    }
    cJSON *ins = cJSON_AddArrayToObject(config, "input_layers");
    for (int i = 0; i < m->n_inputs; i++) cJSON_AddItemToArray(ins, history_ref(&x, m->order[m->input_pos[i]].node));
    cJSON *outs = cJSON_AddArrayToObject(config, "output_layers");
    for (int k = 0; k < m->n_outputs; k++) cJSON_AddItemToArray(outs, history_ref(&x, m->order[m->outputs[k].pos].node));
    cJSON *order = cJSON_AddArrayToObject(config, "loom_node_order");
    for (int p = 0; p < m->n_order; p++)
        if (!m->order[p].is_input) cJSON_AddItemToArray(order, history_ref(&x, m->order[p].node));
    arch_index_free(&x);
    return root;
}

/* ---------------------------------------------------------------- layers from JSON */

/* Reads a 1- or 2-element integer list (or a bare number) into v[0..1]; 1-element lists fill
 * v[1] (1-D layers keep their size in the second slot). */
static bool two_ints(const cJSON *c, const char *key, int *v, int fallback) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(c, key);
    int tmp[2];
    v[0] = v[1] = fallback;
    if (!x) return true;
    if (cJSON_IsNumber(x)) {
        v[0] = v[1] = (int)loom_json_whole(x, -1000000000L, 1000000000L, -1);
        return true;
    }
    int n = int_array_from(x, tmp, 2);
    if (n == 1) v[0] = 1, v[1] = tmp[0];
    else if (n == 2) v[0] = tmp[0], v[1] = tmp[1];
    else return false;
    return true;
}

/* The convolution, pooling and spatial classes; false when cls is none of them. */
static bool conv_from_json(loom_graph *g, const char *cls, const char *name, const cJSON *c, int act, loom_layer **out) {
    loom_activation a = act < 0 ? LOOM_LINEAR : (loom_activation)act;
    loom_padding pad = loom_json_str(c, "padding") && strcmp(loom_json_str(c, "padding"), "same") == 0 ? LOOM_PADDING_SAME : LOOM_PADDING_VALID;
    int k[2] = {-1, -1}, s[2] = {0, 0}, d[2] = {1, 1};
    bool ok = two_ints(c, strstr(cls, "Pooling") ? "pool_size" : "kernel_size", k, -1) && two_ints(c, "strides", s, 0) &&
              two_ints(c, "dilation_rate", d, 1);
    if (!ok) k[0] = k[1] = -1; /* the constructor then names the bad argument */
    loom_conv_options o = loom_conv_defaults();
    o.use_bias = loom_json_flag(c, "use_bias", true);
    bool depthwise = strcmp(cls, "DepthwiseConv2D") == 0;
    o.kernel_initializer = init_from_json(cJSON_GetObjectItemCaseSensitive(c, depthwise ? "depthwise_initializer" : "kernel_initializer"),
                                          LOOM_INIT_GLOROT_UNIFORM);
    o.bias_initializer = init_from_json(cJSON_GetObjectItemCaseSensitive(c, "bias_initializer"), LOOM_INIT_ZEROS);
    o.kernel_regularizer = reg_from_json(cJSON_GetObjectItemCaseSensitive(c, depthwise ? "depthwise_regularizer" : "kernel_regularizer"));
    o.bias_regularizer = reg_from_json(cJSON_GetObjectItemCaseSensitive(c, "bias_regularizer"));
    const cJSON *dmj = cJSON_GetObjectItemCaseSensitive(c, "depth_multiplier");
    int filters = (int)loom_json_whole(cJSON_GetObjectItemCaseSensitive(c, "filters"), 1, 1L << 20, -1);
    int mult = dmj ? (int)loom_json_whole(dmj, 1, 1L << 20, -1) : 1;
    if (strcmp(cls, "Conv1D") == 0) *out = loom_conv1d(g, name, filters, k[1], s[1], pad, d[1], a, &o);
    else if (strcmp(cls, "Conv2D") == 0) *out = loom_conv2d(g, name, filters, k[0], k[1], s[0], s[1], pad, d[0], d[1], a, &o);
    else if (strcmp(cls, "Conv2DTranspose") == 0) *out = loom_conv2d_transpose(g, name, filters, k[0], k[1], s[0], s[1], pad, a, &o);
    else if (depthwise) *out = loom_depthwise_conv2d(g, name, k[0], k[1], s[0], s[1], pad, mult, a, &o);
    else if (strcmp(cls, "MaxPooling1D") == 0) *out = loom_max_pooling1d(g, name, k[1], s[1], pad);
    else if (strcmp(cls, "AveragePooling1D") == 0) *out = loom_average_pooling1d(g, name, k[1], s[1], pad);
    else if (strcmp(cls, "MaxPooling2D") == 0) *out = loom_max_pooling2d(g, name, k[0], k[1], s[0], s[1], pad);
    else if (strcmp(cls, "AveragePooling2D") == 0) *out = loom_average_pooling2d(g, name, k[0], k[1], s[0], s[1], pad);
    else if (strcmp(cls, "GlobalAveragePooling1D") == 0) *out = loom_global_average_pooling1d(g, name);
    else if (strcmp(cls, "GlobalMaxPooling1D") == 0) *out = loom_global_max_pooling1d(g, name);
    else if (strcmp(cls, "GlobalAveragePooling2D") == 0) *out = loom_global_average_pooling2d(g, name);
    else if (strcmp(cls, "GlobalMaxPooling2D") == 0) *out = loom_global_max_pooling2d(g, name);
    else if (strcmp(cls, "UpSampling2D") == 0) {
        int sz[2];
        if (!two_ints(c, "size", sz, 2)) sz[0] = sz[1] = -1;
        *out = loom_upsampling2d(g, name, sz[0], sz[1]);
    } else if (strcmp(cls, "ZeroPadding2D") == 0 || strcmp(cls, "Cropping2D") == 0) {
        bool crop = cls[0] == 'C';
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(c, crop ? "cropping" : "padding");
        int tb[2] = {-1, -1}, lr[2] = {-1, -1};
        if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 2 && cJSON_IsArray(cJSON_GetArrayItem(p, 0))) {
            if (int_array_from(cJSON_GetArrayItem(p, 0), tb, 2) != 2 || int_array_from(cJSON_GetArrayItem(p, 1), lr, 2) != 2)
                tb[0] = -1;
        } else if (int_array_from(p, tb, 2) == 2) { /* symmetric (rows, cols) */
            lr[0] = lr[1] = tb[1];
            tb[1] = tb[0];
        }
        *out = crop ? loom_cropping2d(g, name, tb[0], tb[1], lr[0], lr[1]) : loom_zero_padding2d(g, name, tb[0], tb[1], lr[0], lr[1]);
    } else
        return false;
    return true;
}

/* Layer classes that save and load their own configuration (loom_op.save_config/load_config). */
static const loom_op *const SELF_DESCRIBING[] = {
    &loom_op_multi_head_attention, &loom_op_batch_normalization, &loom_op_layer_normalization, &loom_op_embedding,
    &loom_op_permute, &loom_op_repeat_vector, &loom_op_simple_rnn, &loom_op_lstm, &loom_op_gru,
    &loom_op_bidirectional, &loom_op_recurrent_output, NULL};

static const loom_op *op_by_class(const char *cls) {
    for (size_t i = 0; SELF_DESCRIBING[i]; i++)
        if (strcmp(SELF_DESCRIBING[i]->class_name, cls) == 0 && SELF_DESCRIBING[i]->load_config) return SELF_DESCRIBING[i];
    return NULL;
}

loom_layer *loom_layer_from_config_json(loom_graph *g, const char *cls, const char *name, const cJSON *c,
                                        const char *what, bool weights_only, loom_error *err) {
    const loom_op *op;
    if (cJSON_GetObjectItemCaseSensitive(c, LOOM_CUSTOM_CONFIG_KEY)) { /* whatever its class name */
        loom_layer *L = loom_custom_from_config(g, name, c, weights_only);
        if (!L) loom_set_error(err, LOOM_ERR_DATA, "%s: %s", what, loom_graph_error(g));
        return L;
    }
    int act = -1;
    const char *act_name = loom_json_str(c, "activation");
    if (act_name && (act = loom_activation_from_name(act_name)) < 0) {
        loom_set_error(err, LOOM_ERR_DATA, "%s: layer %s has the unknown activation \"%.40s\"", what, name, act_name);
        return NULL;
    }
    loom_layer *L = NULL;
    if (strcmp(cls, "Dense") == 0) {
        loom_dense_options o = loom_dense_defaults();
        o.use_bias = loom_json_flag(c, "use_bias", true);
        o.kernel_initializer = init_from_json(cJSON_GetObjectItemCaseSensitive(c, "kernel_initializer"), LOOM_INIT_GLOROT_UNIFORM);
        o.bias_initializer = init_from_json(cJSON_GetObjectItemCaseSensitive(c, "bias_initializer"), LOOM_INIT_ZEROS);
        o.kernel_regularizer = reg_from_json(cJSON_GetObjectItemCaseSensitive(c, "kernel_regularizer"));
        o.bias_regularizer = reg_from_json(cJSON_GetObjectItemCaseSensitive(c, "bias_regularizer"));
        int units = (int)loom_json_whole(cJSON_GetObjectItemCaseSensitive(c, "units"), 1, 1L << 24, -1);
        L = loom_dense(g, name, units, act < 0 ? LOOM_LINEAR : (loom_activation)act, &o);
    } else if (strcmp(cls, "Activation") == 0) {
        L = loom_activation_layer(g, name, act < 0 ? LOOM_LINEAR : (loom_activation)act);
    } else if (strcmp(cls, "Dropout") == 0) {
        L = loom_dropout(g, name, loom_json_float(c, "rate", -1));
    } else if (strcmp(cls, "Add") == 0) {
        L = loom_add(g, name);
    } else if (strcmp(cls, "Subtract") == 0) {
        L = loom_subtract(g, name);
    } else if (strcmp(cls, "Multiply") == 0) {
        L = loom_multiply(g, name);
    } else if (strcmp(cls, "Concatenate") == 0) {
        const cJSON *axis = cJSON_GetObjectItemCaseSensitive(c, "axis");
        L = loom_concatenate(g, name, axis ? (int)loom_json_whole(axis, -63, 63, 0) : -1);
    } else if (strcmp(cls, "Flatten") == 0) {
        L = loom_flatten(g, name);
    } else if (strcmp(cls, "Reshape") == 0) {
        int dims[LOOM_MAX_RANK];
        int rank = int_array_from(cJSON_GetObjectItemCaseSensitive(c, "target_shape"), dims, LOOM_MAX_RANK);
        L = loom_reshape(g, name, rank, dims);
    } else if (strcmp(cls, "TimeDistributed") == 0) {
        L = time_distributed_from_config(g, name, c, what, err);
        if (!L && err->code) return NULL;
    } else if ((op = op_by_class(cls)) != NULL) {
        L = op->load_config(g, name, c);
    } else if (!conv_from_json(g, cls, name, c, act, &L)) {
        loom_set_error(err, LOOM_ERR_DATA, "%s: layer %s has the class %.40s, which this loom does not have", what, name, cls);
        return NULL;
    }
    if (!L) {
        /* A value that could not be used reaches the constructor as -1 or 0: show what the file
         * gave, so that "units must be > 0, got -1" comes with "units": 1.5. */
        char *given = cJSON_PrintUnformatted(c);
        loom_set_error(err, LOOM_ERR_DATA, "%s: %s (the layer's config in the file: %.200s%s)", what, loom_graph_error(g),
                       given ? given : "?", given && strlen(given) > 200 ? "..." : "");
        free(given);
    }
    return L;
}

typedef struct replay_layer {
    loom_layer *layer;
    const cJSON *json;
    const cJSON *inbound;
    const cJSON *next_call; /* the inbound node of call n_calls (cJSON lists are linked: no indexing) */
    int n_calls;            /* calls made so far */
    loom_tensor **outputs;  /* output tensor of each call */
    int n_nodes;
    bool waiting;           /* on the replay stack (replay_all) */
} replay_layer;

/* The layers being rebuilt, found by name through the graph's name table: of[layer index] is the
 * entry of that graph layer (-1: a layer a wrapper made, not in the file's list). */
typedef struct replay {
    replay_layer *r;
    int n;
    loom_graph *g;
    int *of;
} replay;

static replay_layer *find_replay(const replay *R, const char *name) {
    loom_layer *L = loom_graph_find_layer(R->g, name);
    return L && R->of[L->index] >= 0 ? &R->r[R->of[L->index]] : NULL;
}

/* keras_history [layer, node_index, tensor_index] -> the layer and call it names (NULL when the
 * layer does not exist or the reference is malformed). */
static replay_layer *history_source(const replay *R, const cJSON *hist, long *idx) {
    if (!cJSON_IsArray(hist)) return NULL;
    const cJSON *ln = hist->child, *ni = ln ? ln->next : NULL;
    if (!cJSON_IsString(ln) || !cJSON_IsNumber(ni)) return NULL;
    *idx = loom_json_whole(ni, 0, 1L << 30, -1);
    return *idx >= 0 ? find_replay(R, ln->valuestring) : NULL;
}

/* A tensor already made, or NULL. */
static loom_tensor *resolve(const replay *R, const cJSON *hist) {
    long idx;
    replay_layer *rl = history_source(R, hist, &idx);
    if (!rl || idx >= rl->n_calls) return NULL;
    return rl->outputs[idx];
}

static const cJSON *tensor_history(const cJSON *t) {
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(t, "config"), "keras_history");
}

/* The input tensors (keras_history holders) of a call's first argument: a tensor or a list. */
static int call_inputs(const cJSON *node, const cJSON **hist, int max) {
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(node, "args");
    const cJSON *first = cJSON_IsArray(args) ? args->child : NULL;
    if (!first) return -1;
    int n = 0;
    if (cJSON_IsArray(first)) {
        const cJSON *t;
        cJSON_ArrayForEach(t, first) {
            if (n >= max) return -2;
            hist[n++] = tensor_history(t);
        }
    } else {
        hist[n++] = tensor_history(first);
    }
    return n;
}

/* Makes the next call of a layer if its inputs exist: 1 done, 0 not ready, -1 error. */
static int replay_call(const replay *R, replay_layer *rl, const char *what, loom_error *err) {
    const cJSON *hist[16];
    int nx = call_inputs(rl->next_call, hist, 16);
    if (nx < 0) {
        loom_set_error(err, LOOM_ERR_DATA, "%s: layer %s call %d has %s", what, rl->layer->name, rl->n_calls,
                       nx == -1 ? "no arguments" : "too many inputs");
        return -1;
    }
    loom_tensor *xs[16];
    for (int i = 0; i < nx; i++)
        if (!(xs[i] = resolve(R, hist[i]))) return 0;
    loom_tensor *y = loom_call_n(rl->layer, nx, xs);
    if (!y) {
        loom_set_error(err, LOOM_ERR_DATA, "%s: %s", what, loom_graph_error(R->g));
        return -1;
    }
    rl->outputs[rl->n_calls++] = y;
    rl->next_call = rl->next_call->next;
    return 1;
}

/* Makes every call of `want` (files without loom_node_order, in any layer order): depth first,
 * each call after the calls its inputs come from, with an explicit stack (room for every layer:
 * a layer is on it at most once, or the graph has a cycle). O(calls + inputs). */
static bool replay_all(const replay *R, replay_layer *want, replay_layer **stack, const char *what, loom_error *err) {
    int top = 0;
    stack[top++] = want;
    want->waiting = true;
    while (top > 0) {
        replay_layer *rl = stack[top - 1];
        if (rl->n_calls >= rl->n_nodes) {
            rl->waiting = false;
            top--;
            continue;
        }
        const cJSON *hist[16];
        int nx = call_inputs(rl->next_call, hist, 16);
        replay_layer *missing = NULL;
        for (int i = 0; i < nx && !missing; i++) {
            long idx;
            replay_layer *src = history_source(R, hist[i], &idx);
            if (!src || idx >= (src->n_nodes ? src->n_nodes : src->n_calls)) {
                loom_set_error(err, LOOM_ERR_DATA, "%s: layer %s call %d reads a tensor of the graph that does not exist", what,
                               rl->layer->name, rl->n_calls);
                return false;
            }
            if (idx >= src->n_calls) missing = src;
        }
        if (!missing) {
            if (replay_call(R, rl, what, err) < 0) return false;
            continue;
        }
        if (missing->waiting) {
            loom_set_error(err, LOOM_ERR_DATA, "%s: the graph has a cycle through layer %s", what, missing->layer->name);
            return false;
        }
        missing->waiting = true;
        stack[top++] = missing;
    }
    return true;
}

static loom_tensor **tensor_list(const replay *R, const cJSON *list, int *count, const char *what, const char *kind,
                                 loom_error *err) {
    *count = cJSON_GetArraySize(list);
    if (!cJSON_IsArray(list) || *count < 1 || *count > LOOM_MAX_OUTPUTS) {
        loom_set_error(err, LOOM_ERR_DATA, "%s: %s missing or of a bad size", what, kind);
        return NULL;
    }
    loom_tensor **ts = calloc((size_t)*count, sizeof *ts);
    if (!ts) return NULL;
    for (int i = 0; i < *count; i++)
        if (!(ts[i] = resolve(R, cJSON_GetArrayItem(list, i)))) {
            loom_set_error(err, LOOM_ERR_DATA, "%s: %s entry %d names no tensor of the graph", what, kind, i);
            free(ts);
            return NULL;
        }
    return ts;
}

static uint64_t parse_seed(const cJSON *config) {
    const char *s = loom_json_str(config, "loom_seed");
    return s ? strtoull(s, NULL, 10) : 0;
}

loom_model *loom_arch_from_json(const cJSON *root, const char *what, bool weights_only, loom_error *err) {
    return loom_arch_from_json_limited(root, what, weights_only, SIZE_MAX, err);
}

loom_model *loom_arch_from_json_limited(const cJSON *root, const char *what, bool weights_only, size_t max_params,
                                        loom_error *err) {
    const cJSON *config = cJSON_GetObjectItemCaseSensitive(root, "config");
    const char *cls = loom_json_str(root, "class_name");
    if (!cls || (strcmp(cls, "Functional") != 0 && strcmp(cls, "Model") != 0) || !cJSON_IsObject(config)) {
        loom_set_error(err, LOOM_ERR_DATA, "%s: the architecture is not a functional model", what);
        return NULL;
    }
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(config, "layers");
    int n = cJSON_GetArraySize(layers);
    if (!cJSON_IsArray(layers) || n < 1 || n > 100000) {
        loom_set_error(err, LOOM_ERR_DATA, "%s: the architecture has no layer list", what);
        return NULL;
    }
    loom_graph *g = loom_graph_new(parse_seed(config));
    replay_layer *r = calloc((size_t)n, sizeof *r);
    replay R = {r, n, g, NULL};
    replay_layer **stack = NULL;
    loom_model *m = NULL;
    loom_tensor **ins = NULL, **outs = NULL;
    if (!g || !r) {
        loom_set_error(err, LOOM_ERR_MEMORY, "%s: out of memory", what);
        goto done;
    }
    g->max_params = max_params;
    int i = -1;
    const cJSON *lj;
    cJSON_ArrayForEach(lj, layers) {
        i++;
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(lj, "config");
        const char *lcls = loom_json_str(lj, "class_name");
        const char *name = loom_json_str(lj, "name");
        if (!name) name = loom_json_str(c, "name");
        if (!lcls || !name || !cJSON_IsObject(c)) {
            loom_set_error(err, LOOM_ERR_DATA, "%s: layer entry %d lacks class_name, name or config", what, i);
            goto done;
        }
        r[i].json = lj;
        r[i].inbound = cJSON_GetObjectItemCaseSensitive(lj, "inbound_nodes");
        r[i].n_nodes = cJSON_IsArray(r[i].inbound) ? cJSON_GetArraySize(r[i].inbound) : 0;
        r[i].next_call = cJSON_IsArray(r[i].inbound) ? r[i].inbound->child : NULL;
        if (strcmp(lcls, "InputLayer") == 0) {
            int dims[LOOM_MAX_RANK];
            const cJSON *shape = cJSON_GetObjectItemCaseSensitive(c, "batch_shape");
            if (!shape) shape = cJSON_GetObjectItemCaseSensitive(c, "batch_input_shape");
            int rank = batch_shape_from(shape, dims, LOOM_MAX_RANK);
            loom_tensor *t = loom_input(g, name, rank, dims);
            if (!t) {
                loom_set_error(err, LOOM_ERR_DATA, "%s: %s", what, loom_graph_error(g));
                goto done;
            }
            r[i].layer = loom_tensor_layer(t);
            r[i].outputs = calloc(1, sizeof *r[i].outputs);
            if (!r[i].outputs) goto oom;
            r[i].outputs[0] = t;
            r[i].n_calls = 1;
            r[i].n_nodes = 0;
            continue;
        }
        if (!(r[i].layer = loom_layer_from_config_json(g, lcls, name, c, what, weights_only, err))) goto done;
        if (!loom_json_flag(c, "trainable", true)) loom_layer_set_trainable(r[i].layer, 0);
        if (read_dtype_policy(c, r[i].layer, what, err)) goto done;
        r[i].outputs = calloc((size_t)(r[i].n_nodes ? r[i].n_nodes : 1), sizeof *r[i].outputs);
        if (!r[i].outputs) goto oom;
    }
    R.of = malloc((size_t)g->n_layers * sizeof *R.of);
    stack = malloc((size_t)n * sizeof *stack);
    if (!R.of || !stack) goto oom;
    for (int k = 0; k < g->n_layers; k++) R.of[k] = -1;
    for (int k = 0; k < n; k++) R.of[r[k].layer->index] = k;
    /* Replay the calls: in loom's recorded order when present (so node positions, and with them
     * the dropout streams, are those of the saved model), else each call once its inputs exist
     * (in list order when the list is already in call order, as Keras writes it). */
    const cJSON *order = cJSON_GetObjectItemCaseSensitive(config, "loom_node_order");
    if (cJSON_IsArray(order)) {
        const cJSON *ref;
        cJSON_ArrayForEach(ref, order) {
            long idx;
            replay_layer *rl = history_source(&R, ref, &idx);
            if (!rl || idx != rl->n_calls || rl->n_calls >= rl->n_nodes) {
                loom_set_error(err, LOOM_ERR_DATA, "%s: loom_node_order names a call that does not exist", what);
                goto done;
            }
            int rc = replay_call(&R, rl, what, err);
            if (rc <= 0) {
                if (rc == 0) loom_set_error(err, LOOM_ERR_DATA, "%s: layer %s is called before its inputs exist", what, rl->layer->name);
                goto done;
            }
        }
    } else {
        for (int k = 0; k < n; k++)
            if (!replay_all(&R, &r[k], stack, what, err)) goto done;
    }
    int n_in, n_out;
    if (!(ins = tensor_list(&R, cJSON_GetObjectItemCaseSensitive(config, "input_layers"), &n_in, what, "input_layers", err)) ||
        !(outs = tensor_list(&R, cJSON_GetObjectItemCaseSensitive(config, "output_layers"), &n_out, what, "output_layers", err)))
        goto done;
    /* the file's weight shapes must be the ones the rebuilt layers declare (checked before the
     * model allocates its parameters) */
    for (int i = 0; i < n; i++) {
        const cJSON *ws = cJSON_GetObjectItemCaseSensitive(r[i].json, "loom_weights");
        if (!cJSON_IsArray(ws)) continue;
        loom_layer *L = r[i].layer;
        if (cJSON_GetArraySize(ws) != L->n_weights) {
            loom_set_error(err, LOOM_ERR_DATA, "%s: layer %s declares %d weights, its class makes %d", what, L->name,
                           cJSON_GetArraySize(ws), L->n_weights);
            goto done;
        }
        for (int w = 0; w < L->n_weights; w++) {
            int dims[LOOM_MAX_RANK];
            int rank = int_array_from(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(ws, w), "shape"), dims, LOOM_MAX_RANK);
            loom_shape s = {rank, {0}};
            if (rank > 0) memcpy(s.dims, dims, (size_t)rank * sizeof(int));
            if (rank < 0 || !loom_shape_equal(&s, &L->weights[w].shape)) {
                loom_set_error(err, LOOM_ERR_DATA, "%s: layer %s weight %s has a shape that does not fit the layer", what,
                               L->name, L->weights[w].name);
                goto done;
            }
        }
    }
    m = loom_model_new(g, n_in, ins, n_out, outs);
    if (!m) {
        loom_set_error(err, LOOM_ERR_DATA, "%s: %s", what, loom_graph_error(g));
        goto done;
    }
    g = NULL; /* owned by the model now */
    goto done;
oom:
    loom_set_error(err, LOOM_ERR_MEMORY, "%s: out of memory", what);
    goto done;
done:
    if (r)
        for (int k = 0; k < n; k++) free(r[k].outputs);
    free(r);
    free(R.of);
    free(stack);
    free(ins);
    free(outs);
    loom_graph_free(g);
    return m;
}
