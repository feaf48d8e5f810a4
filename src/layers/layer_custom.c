/* layer_custom.c — loom_custom: a layer written in C by the user (Keras's Lambda, with weights).
 *
 * The user's definition is copied into one allocation in L->user together with the layer's own
 * op table, built from the template loom_op_custom with the user's class name, auto-name stem
 * (the class name in snake_case, as Keras) and input counts. The weights are declared with the
 * user's names, shapes and initialisers (LOOM_INIT_DEFAULT: glorot_uniform, Keras's add_weight
 * default); the engine's context is translated into a loom_custom_ctx for each callback.
 * Scratch: batch * scratch_per_sample floats, kept from forward to backward. */
#include "layers/layer_custom.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define WNAME_MAX 16 /* loom_weight.name */
#define CUSTOM_MAX_INPUTS 16

typedef struct custom_blob {
    loom_op op;
    loom_custom_layer def; /* its strings point into this block */
    char class_name[LOOM_NAME_MAX];
    char base_name[LOOM_NAME_MAX + 16];
    char weight_names[LOOM_CUSTOM_MAX_WEIGHTS][WNAME_MAX];
} custom_blob;

static const loom_custom_layer *def_of(const loom_layer *L) { return &((const custom_blob *)L->user)->def; }

static loom_status custom_build(loom_layer *L, int n_in, const loom_shape *in, loom_shape *out, loom_error *err) {
    const loom_custom_layer *d = def_of(L);
    int in_rank[CUSTOM_MAX_INPUTS], in_dims[CUSTOM_MAX_INPUTS][LOOM_MAX_RANK];
    for (int i = 0; i < n_in; i++) {
        in_rank[i] = in[i].rank;
        memcpy(in_dims[i], in[i].dims, sizeof in_dims[i]);
    }
    int dims[LOOM_MAX_RANK] = {0};
    int rank = d->output_shape(n_in, in_rank, (const int(*)[LOOM_MAX_RANK])in_dims, dims, d->user);
    char s[64];
    if (rank == 0)
        return loom_set_error(err, LOOM_ERR_SHAPE, "%s (%s): its output_shape refused input %s%s", L->name,
                              d->class_name, loom_shape_str(&in[0], s, sizeof s), n_in > 1 ? " and the others" : "");
    if (rank < 0 || rank > LOOM_MAX_RANK)
        return loom_set_error(err, LOOM_ERR_SHAPE, "%s (%s): output_shape returned rank %d (1..%d allowed)", L->name,
                              d->class_name, rank, LOOM_MAX_RANK);
    out->rank = rank;
    for (int i = 0; i < rank; i++) {
        if (dims[i] <= 0)
            return loom_set_error(err, LOOM_ERR_SHAPE, "%s (%s): output_shape gave dimension %d = %d (must be > 0)",
                                  L->name, d->class_name, i + 1, dims[i]);
        out->dims[i] = dims[i];
    }
    if (!L->built)
        for (int k = 0; k < d->n_weights; k++) {
            loom_shape ws = {d->weight_ranks[k], {0}};
            memcpy(ws.dims, d->weight_dims[k], sizeof ws.dims);
            loom_initializer init = d->weight_inits[k] ? d->weight_inits[k] : LOOM_INIT_GLOROT_UNIFORM;
            loom_layer_add_weight(L, d->weight_names[k], &ws, init, (loom_regularizer){0, 0});
        }
    return LOOM_OK;
}

static size_t custom_scratch(const loom_layer *L, int n_in, const loom_shape *in, const loom_shape *out, int batch) {
    (void)n_in;
    (void)in;
    (void)out;
    return (size_t)batch * def_of(L)->scratch_per_sample;
}

/* The engine's view translated into the user's; the arrays live in the caller's frame. */
typedef struct user_view {
    loom_custom_ctx u;
    int in_rank[CUSTOM_MAX_INPUTS];
    int in_dims[CUSTOM_MAX_INPUTS][LOOM_MAX_RANK];
    const float *w[LOOM_CUSTOM_MAX_WEIGHTS];
    float *dw[LOOM_CUSTOM_MAX_WEIGHTS];
} user_view;

static void make_view(const loom_layer *L, const loom_op_ctx *c, user_view *v) {
    memset(v, 0, sizeof *v);
    for (int i = 0; i < c->n_in && i < CUSTOM_MAX_INPUTS; i++) {
        v->in_rank[i] = c->in_shape[i].rank;
        memcpy(v->in_dims[i], c->in_shape[i].dims, sizeof v->in_dims[i]);
    }
    size_t off = 0;
    for (int k = 0; k < L->n_weights; k++) {
        v->w[k] = c->w + off;
        v->dw[k] = c->dw ? c->dw + off : NULL;
        off += loom_shape_size(&L->weights[k].shape);
    }
    loom_custom_ctx *u = &v->u;
    u->batch = c->batch;
    u->n_in = c->n_in;
    u->in = c->in;
    u->din = c->din;
    u->in_rank = v->in_rank;
    u->in_dims = (const int(*)[LOOM_MAX_RANK])v->in_dims;
    u->out = c->out;
    u->dout = c->dout;
    u->out_rank = c->out_shape.rank;
    u->out_dims = c->out_shape.dims;
    u->w = v->w;
    u->dw = c->dw ? v->dw : NULL;
    u->scratch = c->scratch;
    u->training = c->training;
}

static void custom_forward(const loom_layer *L, const loom_op_ctx *c) {
    user_view v;
    make_view(L, c, &v);
    def_of(L)->forward(&v.u, def_of(L)->user);
}

static void custom_backward(const loom_layer *L, const loom_op_ctx *c) {
    user_view v;
    make_view(L, c, &v);
    def_of(L)->backward(&v.u, def_of(L)->user);
}

static cJSON *shape_json(const loom_shape *s) { return cJSON_CreateIntArray(s->dims, s->rank); }

/* The class name and weight shapes (and the output shape, for a stand-in): the file then holds
 * the weights, though not the code. */
static bool custom_save(const loom_layer *L, void *obj) {
    const loom_custom_layer *d = def_of(L);
    cJSON *o = cJSON_CreateObject();
    if (!o) return false;
    cJSON_AddItemToObject(obj, LOOM_CUSTOM_CONFIG_KEY, o);
    if (!cJSON_AddStringToObject(o, "class_name", d->class_name)) return false;
    cJSON *ws = cJSON_AddArrayToObject(o, "weights");
    if (!ws) return false;
    for (int k = 0; k < L->n_weights; k++) {
        cJSON *w = cJSON_CreateObject();
        if (!w) return false;
        cJSON_AddItemToArray(ws, w);
        cJSON *sh = shape_json(&L->weights[k].shape);
        if (!cJSON_AddStringToObject(w, "name", L->weights[k].name) || !sh) {
            cJSON_Delete(sh);
            return false;
        }
        cJSON_AddItemToObject(w, "shape", sh);
    }
    /* every call sees the first call's input shapes, so one output shape holds for all */
    loom_shape out = {0};
    loom_error err = {0};
    if (custom_build((loom_layer *)L, L->built_n_in, L->built_in, &out, &err) != LOOM_OK) return false;
    cJSON *sh = shape_json(&out);
    if (!sh) return false;
    cJSON_AddItemToObject(o, "output_shape", sh);
    return true;
}

static loom_layer *custom_load(loom_graph *g, const char *name, const void *config) {
    return loom_custom_from_config(g, name, config, false);
}

const loom_op loom_op_custom = {
    .class_name = "CustomLayer",
    .base_name = "custom_layer",
    .min_inputs = 1,
    .max_inputs = CUSTOM_MAX_INPUTS,
    .build = custom_build,
    .scratch_size = custom_scratch,
    .forward = custom_forward,
    .backward = custom_backward,
    .mask_mode = LOOM_MASK_DROP,
    .save_config = custom_save,
    .load_config = custom_load,
};

bool loom_layer_is_custom(const loom_layer *L) { return L && L->op && L->op->build == custom_build; }

/* Keras's auto-name stem: "ScaleShift" -> "scale_shift". */
static void snake_case(const char *in, char *out, size_t len) {
    size_t j = 0;
    for (size_t i = 0; in[i] && j + 2 < len; i++) {
        unsigned char ch = (unsigned char)in[i];
        if (isupper(ch) && i > 0 && j > 0 && out[j - 1] != '_') out[j++] = '_';
        out[j++] = (char)tolower(ch);
    }
    out[j] = '\0';
}

static bool valid_class_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n >= LOOM_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_') return false;
    return true;
}

loom_layer *loom_custom(loom_graph *g, const char *name, const loom_custom_layer *def) {
    if (!g || g->err.code) return NULL;
    const char *shown = name ? name : "custom";
    if (!def) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (custom layer): the definition is NULL", shown);
        return NULL;
    }
    const char *cls = def->class_name ? def->class_name : "(no class_name)";
    if (!def->class_name || !valid_class_name(def->class_name)) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT,
                       "%s (custom layer %.80s): class_name must be 1-%d letters, digits or '_'", shown, cls,
                       LOOM_NAME_MAX - 1);
        return NULL;
    }
    if (!def->output_shape || !def->forward || !def->backward) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (%s): the %s callback is NULL", shown, cls,
                       !def->output_shape ? "output_shape" : !def->forward ? "forward" : "backward");
        return NULL;
    }
    if (def->min_inputs < 1 || def->max_inputs < def->min_inputs || def->max_inputs > CUSTOM_MAX_INPUTS) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT,
                       "%s (%s): inputs must satisfy 1 <= min_inputs <= max_inputs <= %d, got %d and %d", shown, cls,
                       CUSTOM_MAX_INPUTS, def->min_inputs, def->max_inputs);
        return NULL;
    }
    if (def->n_weights < 0 || def->n_weights > LOOM_CUSTOM_MAX_WEIGHTS) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (%s): n_weights must be 0..%d, got %d", shown, cls,
                       LOOM_CUSTOM_MAX_WEIGHTS, def->n_weights);
        return NULL;
    }
    for (int k = 0; k < def->n_weights; k++) {
        const char *wn = def->weight_names[k];
        if (!wn || !wn[0] || strlen(wn) >= WNAME_MAX) {
            loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (%s): weight %d needs a name of 1-%d characters", shown,
                           cls, k, WNAME_MAX - 1);
            return NULL;
        }
        for (int j = 0; j < k; j++)
            if (strcmp(def->weight_names[j], wn) == 0) {
                loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (%s): two weights are named \"%s\"", shown, cls, wn);
                return NULL;
            }
        int r = def->weight_ranks[k];
        if (r < 1 || r > LOOM_MAX_RANK) {
            loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (%s): weight %s has rank %d (1..%d allowed)", shown, cls, wn,
                           r, LOOM_MAX_RANK);
            return NULL;
        }
        double size = 1;
        for (int i = 0; i < r; i++) {
            if (def->weight_dims[k][i] <= 0) {
                loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (%s): weight %s has dimension %d = %d (must be > 0)",
                               shown, cls, wn, i + 1, def->weight_dims[k][i]);
                return NULL;
            }
            size *= def->weight_dims[k][i];
        }
        if (size > (double)(1u << 31)) {
            loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (%s): weight %s is too large", shown, cls, wn);
            return NULL;
        }
        if ((int)def->weight_inits[k] < 0 || def->weight_inits[k] > LOOM_INIT_UNIFORM) {
            loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (%s): weight %s has the unknown initializer %d", shown, cls,
                           wn, (int)def->weight_inits[k]);
            return NULL;
        }
    }
    if (def->scratch_per_sample > ((size_t)1 << 32)) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (%s): scratch_per_sample %zu is too large", shown, cls,
                       def->scratch_per_sample);
        return NULL;
    }
    custom_blob *b = calloc(1, sizeof *b);
    if (!b) {
        loom_set_error(&g->err, LOOM_ERR_MEMORY, "%s (%s): out of memory", shown, cls);
        return NULL;
    }
    b->def = *def;
    snprintf(b->class_name, sizeof b->class_name, "%s", def->class_name);
    b->def.class_name = b->class_name;
    for (int k = 0; k < def->n_weights; k++) {
        snprintf(b->weight_names[k], WNAME_MAX, "%s", def->weight_names[k]);
        b->def.weight_names[k] = b->weight_names[k];
    }
    for (int k = def->n_weights; k < LOOM_CUSTOM_MAX_WEIGHTS; k++) b->def.weight_names[k] = NULL;
    snake_case(b->class_name, b->base_name, sizeof b->base_name);
    b->op = loom_op_custom;
    b->op.class_name = b->class_name;
    b->op.base_name = b->base_name;
    b->op.min_inputs = def->min_inputs;
    b->op.max_inputs = def->max_inputs;
    loom_layer *L = loom_graph_new_layer(g, &b->op, name);
    if (!L) {
        free(b);
        return NULL;
    }
    L->user = b;
    return L;
}

/* ---------------------------------------------------------------- stand-in for load_weights */

/* Config: iarg[0] output rank, iarg[1..4] output dims; weights declared by the loader. */
static loom_status standin_build(loom_layer *L, int n_in, const loom_shape *in, loom_shape *out, loom_error *err) {
    (void)n_in;
    (void)in;
    (void)err;
    out->rank = L->iarg[0];
    for (int i = 0; i < out->rank; i++) out->dims[i] = L->iarg[1 + i];
    return LOOM_OK;
}

static void standin_forward(const loom_layer *L, const loom_op_ctx *c) {
    (void)L;
    memset(c->out, 0, (size_t)c->batch * loom_shape_size(&c->out_shape) * sizeof *c->out);
}

static void standin_backward(const loom_layer *L, const loom_op_ctx *c) {
    (void)L;
    (void)c;
}

static const loom_op loom_op_custom_standin = {
    .class_name = "CustomLayer",
    .base_name = "custom_layer",
    .min_inputs = 1,
    .max_inputs = CUSTOM_MAX_INPUTS,
    .build = standin_build,
    .forward = standin_forward,
    .backward = standin_backward,
    .mask_mode = LOOM_MASK_DROP,
};

/* A JSON list of 1..LOOM_MAX_RANK whole numbers in [1, 2^30] into dims; its length, or 0. */
static int dims_from(const cJSON *a, int *dims) {
    int n = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : 0;
    if (n < 1 || n > LOOM_MAX_RANK) return 0;
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= 1 && v->valuedouble <= (double)(1 << 30)) ||
            v->valuedouble != (int)v->valuedouble)
            return 0;
        dims[i] = (int)v->valuedouble;
    }
    return n;
}

loom_layer *loom_custom_from_config(loom_graph *g, const char *name, const void *config, bool weights_only) {
    if (!g || g->err.code) return NULL;
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(config, LOOM_CUSTOM_CONFIG_KEY);
    const cJSON *cn = cJSON_GetObjectItemCaseSensitive(o, "class_name");
    const char *cls = cJSON_IsString(cn) ? cn->valuestring : "?";
    if (!weights_only) {
        loom_set_error(&g->err, LOOM_ERR_STATE,
                       "layer %s is a custom layer (class %.60s) written in C: its code is not in the file. Rebuild "
                       "the model in code with loom_custom and load the file with loom_load_weights",
                       name, cls);
        return NULL;
    }
    const cJSON *ws = cJSON_GetObjectItemCaseSensitive(o, "weights");
    int n_w = cJSON_IsArray(ws) ? cJSON_GetArraySize(ws) : -1;
    int out_dims[LOOM_MAX_RANK];
    int out_rank = dims_from(cJSON_GetObjectItemCaseSensitive(o, "output_shape"), out_dims);
    if (!cJSON_IsObject(o) || n_w < 0 || n_w > LOOM_CUSTOM_MAX_WEIGHTS || !out_rank) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "layer %s (custom layer %.60s): its saved description is damaged",
                       name, cls);
        return NULL;
    }
    loom_layer *L = loom_graph_new_layer(g, &loom_op_custom_standin, name);
    if (!L) return NULL;
    L->iarg[0] = out_rank;
    memcpy(L->iarg + 1, out_dims, (size_t)out_rank * sizeof *out_dims);
    for (int k = 0; k < n_w; k++) {
        const cJSON *w = cJSON_GetArrayItem(ws, k);
        const cJSON *wn = cJSON_GetObjectItemCaseSensitive(w, "name");
        loom_shape s = {0};
        s.rank = dims_from(cJSON_GetObjectItemCaseSensitive(w, "shape"), s.dims);
        if (!cJSON_IsString(wn) || !s.rank) {
            loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "layer %s (custom layer %.60s): weight %d is damaged", name, cls,
                           k);
            return NULL;
        }
        loom_layer_add_weight(L, wn->valuestring, &s, LOOM_INIT_ZEROS, (loom_regularizer){0, 0});
    }
    /* declared here, before any call: loom_call keeps weights that build did not add */
    return L;
}
