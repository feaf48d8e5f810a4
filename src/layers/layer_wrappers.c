/* layer_wrappers.c — Bidirectional and TimeDistributed (Keras 3).
 *
 * A wrapper owns the layer(s) it wraps (L->inner): they stay in the graph (so their names stay
 * taken and the graph frees them) but are never called themselves. The wrapper declares their
 * weights on itself, in the inner layers' order, so the engine's contiguous weight block of the
 * wrapper is the inner blocks one after the other; each inner op runs on its slice.
 *
 * Bidirectional (iarg[0] = merge mode): inner[0] is the given layer (forward), inner[1] a copy
 * with go_backwards (named "backward_<name>"). Weights fw_kernel, fw_rec_kernel, fw_bias,
 * bw_kernel, bw_rec_kernel, bw_bias [Keras: forward_<name>/kernel, ...: loom_weight.name holds
 * 15 characters]. With return_sequences the backward outputs are flipped back to time order before
 * merging, and masked steps output 0 (Keras forces zero_output_for_mask then).
 *
 * TimeDistributed: inner[0] runs once on batch*steps samples of shape (in[1:]); its weights keep
 * their names. The mask passes through (the inner layer sees none). */
#include "layers/rnn.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

enum { BI_MODE = 0 };

static size_t weights_size(const loom_layer *L) {
    size_t n = 0;
    for (int i = 0; i < L->n_weights; i++) n += loom_shape_size(&L->weights[i].shape);
    return n;
}

static bool name_used(const loom_graph *g, const char *name) {
    for (int i = 0; i < g->n_layers; i++)
        if (strcmp(g->layers[i]->name, name) == 0) return true;
    return false;
}

/* Is `inner` already held by a wrapper of g? */
static bool is_wrapped(const loom_graph *g, const loom_layer *inner) {
    for (int i = 0; i < g->n_layers; i++)
        if (g->layers[i]->inner[0] == inner || g->layers[i]->inner[1] == inner) return true;
    return false;
}

/* Declares the inner layer's weights on the wrapper, names prefixed. */
static void adopt_weights(loom_layer *L, const loom_layer *inner, const char *prefix) {
    for (int i = 0; i < inner->n_weights; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s%s", prefix, inner->weights[i].name);
        const loom_weight *w = &inner->weights[i];
        int k = loom_layer_add_weight(L, name, &w->shape, w->init, w->reg);
        L->weights[k].non_trainable = w->non_trainable;
    }
}

static void mark_built(loom_layer *inner, const loom_shape *in) {
    inner->built = true;
    inner->built_n_in = 1;
    inner->built_in[0] = *in;
}

/* ---------------------------------------------------------------- Bidirectional */

static loom_status bi_build(loom_layer *L, int n_in, const loom_shape *in, loom_shape *out, loom_error *err) {
    (void)n_in;
    loom_layer *fw = L->inner[0], *bw = L->inner[1];
    loom_shape fo, bo;
    loom_status s = loom_wrapped_build(fw, 1, in, &fo, err);
    if (s == LOOM_OK) s = loom_wrapped_build(bw, 1, in, &bo, err);
    if (s != LOOM_OK) return s;
    if (!L->built) {
        if (fw->n_weights + bw->n_weights > LOOM_MAX_WEIGHTS)
            return loom_set_error(err, LOOM_ERR_ARGUMENT, "%s (Bidirectional): the wrapped layers have too many weights",
                                  L->name);
        adopt_weights(L, fw, "fw_");
        adopt_weights(L, bw, "bw_");
        mark_built(fw, in);
        mark_built(bw, in);
    }
    *out = fo;
    if (L->iarg[BI_MODE] == LOOM_MERGE_CONCAT) {
        char who[LOOM_NAME_MAX + 40];
        snprintf(who, sizeof who, "%s (Bidirectional)", L->name);
        return loom_dim_check(2 * (int64_t)fo.dims[fo.rank - 1], &out->dims[out->rank - 1], who, "output features", err);
    }
    return LOOM_OK;
}

/* The inner layers' output shape (the wrapper's with concat undone). */
static loom_shape bi_inner_shape(const loom_layer *L, const loom_shape *out) {
    loom_shape s = *out;
    s.dims[s.rank - 1] = L->inner[0]->units;
    return s;
}

typedef struct bi_buf {
    float *sf, *sb;   /* inner scratch */
    float *yf, *yb;   /* inner outputs */
    float *dyf, *dyb; /* their gradients */
} bi_buf;

static size_t bi_layout(const loom_layer *L, const loom_shape *in, const loom_shape *out, int batch, float *base,
                        bi_buf *p) {
    loom_shape io = bi_inner_shape(L, out);
    const loom_layer *fw = L->inner[0], *bw = L->inner[1];
    size_t nf = fw->op->scratch_size(fw, 1, in, &io, batch), nb = bw->op->scratch_size(bw, 1, in, &io, batch);
    size_t ny = (size_t)batch * loom_shape_size(&io);
    size_t sizes[6] = {nf, nb, ny, ny, ny, ny};
    float **slot[6] = {&p->sf, &p->sb, &p->yf, &p->yb, &p->dyf, &p->dyb};
    size_t total = 0;
    for (int i = 0; i < 6; i++) {
        *slot[i] = base ? base + total : NULL;
        total += sizes[i];
    }
    return total;
}

static size_t bi_scratch(const loom_layer *L, int n_in, const loom_shape *in, const loom_shape *out, int batch) {
    (void)n_in;
    bi_buf p;
    return bi_layout(L, in, out, batch, NULL, &p);
}

/* The inner contexts: same inputs and mask, own slices of weights, scratch and outputs. */
static void bi_inner_ctx(const loom_layer *L, const loom_op_ctx *c, const bi_buf *p, const loom_shape *io, int which,
                         loom_op_ctx *ic) {
    *ic = *c;
    size_t nwf = weights_size(L->inner[0]);
    ic->out_shape = *io;
    ic->w = which ? c->w + nwf : c->w;
    ic->state = c->state ? (which ? c->state + nwf : c->state) : NULL;
    ic->dw = c->dw ? (which ? c->dw + nwf : c->dw) : NULL;
    ic->out = which ? p->yb : p->yf;
    ic->dout = which ? p->dyb : p->dyf;
    ic->scratch = which ? p->sb : p->sf;
    ic->dout_is_preact = false;
    ic->rng_counter = c->rng_counter ^ ((uint64_t)which << 40); /* own recurrent_dropout masks */
}

static void bi_forward(const loom_layer *L, const loom_op_ctx *c) {
    bi_buf p;
    bi_layout(L, c->in_shape, &c->out_shape, c->batch, c->scratch, &p);
    loom_shape io = bi_inner_shape(L, &c->out_shape);
    loom_op_ctx fc, bc;
    bi_inner_ctx(L, c, &p, &io, 0, &fc);
    bi_inner_ctx(L, c, &p, &io, 1, &bc);
    L->inner[0]->op->forward(L->inner[0], &fc);
    L->inner[1]->op->forward(L->inner[1], &bc);

    const bool seq = io.rank == 2;
    const int U = L->inner[0]->units, R = seq ? io.dims[0] : 1, mode = L->iarg[BI_MODE];
    for (int b = 0; b < c->batch; b++)
        for (int r = 0; r < R; r++) {
            const float *f = p.yf + ((size_t)b * R + r) * U;
            const float *k = p.yb + ((size_t)b * R + (R - 1 - r)) * U; /* back to time order */
            float *o = c->out + ((size_t)b * R + r) * U * (mode == LOOM_MERGE_CONCAT ? 2 : 1);
            for (int j = 0; j < U; j++) {
                switch (mode) {
                case LOOM_MERGE_CONCAT: o[j] = f[j], o[U + j] = k[j]; break;
                case LOOM_MERGE_SUM: o[j] = f[j] + k[j]; break;
                case LOOM_MERGE_MUL: o[j] = f[j] * k[j]; break;
                default: o[j] = 0.5f * (f[j] + k[j]); break;
                }
            }
        }
}

static void bi_backward(const loom_layer *L, const loom_op_ctx *c) {
    bi_buf p;
    bi_layout(L, c->in_shape, &c->out_shape, c->batch, c->scratch, &p);
    loom_shape io = bi_inner_shape(L, &c->out_shape);
    const bool seq = io.rank == 2;
    const int U = L->inner[0]->units, R = seq ? io.dims[0] : 1, mode = L->iarg[BI_MODE];
    for (int b = 0; b < c->batch; b++)
        for (int r = 0; r < R; r++) {
            const float *f = p.yf + ((size_t)b * R + r) * U;
            const float *k = p.yb + ((size_t)b * R + (R - 1 - r)) * U;
            float *df = p.dyf + ((size_t)b * R + r) * U, *dk = p.dyb + ((size_t)b * R + (R - 1 - r)) * U;
            const float *d = c->dout + ((size_t)b * R + r) * U * (mode == LOOM_MERGE_CONCAT ? 2 : 1);
            for (int j = 0; j < U; j++) {
                switch (mode) {
                case LOOM_MERGE_CONCAT: df[j] = d[j], dk[j] = d[U + j]; break;
                case LOOM_MERGE_SUM: df[j] = dk[j] = d[j]; break;
                case LOOM_MERGE_MUL: df[j] = d[j] * k[j], dk[j] = d[j] * f[j]; break;
                default: df[j] = dk[j] = 0.5f * d[j]; break;
                }
            }
        }
    loom_op_ctx fc, bc;
    bi_inner_ctx(L, c, &p, &io, 0, &fc);
    bi_inner_ctx(L, c, &p, &io, 1, &bc);
    L->inner[0]->op->backward(L->inner[0], &fc);
    L->inner[1]->op->backward(L->inner[1], &bc);
}

static const char *const MERGE_NAMES[] = {"concat", "sum", "mul", "ave"};

/* {"module", "class_name", "config": {name, trainable, dtype, ...}} of an inner layer. */
static cJSON *inner_json(const loom_layer *inner, bool (*fields)(const loom_layer *, cJSON *)) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "module", "keras.layers");
    cJSON_AddStringToObject(o, "class_name", inner->op->class_name);
    cJSON *c = cJSON_AddObjectToObject(o, "config");
    if (!c || !cJSON_AddStringToObject(c, "name", inner->name) || !cJSON_AddBoolToObject(c, "trainable", true) ||
        !cJSON_AddStringToObject(c, "dtype", "float32") || !fields(inner, c) ||
        !cJSON_AddNullToObject(o, "registered_name")) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static bool op_fields(const loom_layer *inner, cJSON *c) { return inner->op->save_config(inner, c); }

static bool bi_save_config(const loom_layer *L, void *obj) {
    cJSON *c = obj;
    cJSON *f = inner_json(L->inner[0], op_fields), *b = inner_json(L->inner[1], op_fields);
    if (!f || !b || !cJSON_AddStringToObject(c, "merge_mode", MERGE_NAMES[L->iarg[BI_MODE]])) {
        cJSON_Delete(f);
        cJSON_Delete(b);
        return false;
    }
    cJSON_AddItemToObject(c, "layer", f);
    cJSON_AddItemToObject(c, "backward_layer", b);
    return true;
}

static loom_layer *bi_make(loom_graph *g, const char *name, loom_layer *rnn, loom_merge_mode mode, const char *bname);

/* The inner layer of a wrapper's config: its class, name and config object. */
static bool inner_parts(const cJSON *c, const char *key, const char **cls, const char **name, const cJSON **cfg) {
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(c, key);
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "class_name");
    *cfg = cJSON_GetObjectItemCaseSensitive(o, "config");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(*cfg, "name");
    *cls = cJSON_IsString(k) ? k->valuestring : NULL;
    *name = cJSON_IsString(n) ? n->valuestring : NULL;
    return *cls && cJSON_IsObject(*cfg);
}

static const loom_op *const RNN_OPS[] = {&loom_op_simple_rnn, &loom_op_lstm, &loom_op_gru};

static const loom_op *rnn_op_by_class(const char *cls) {
    for (size_t i = 0; i < sizeof RNN_OPS / sizeof *RNN_OPS; i++)
        if (strcmp(RNN_OPS[i]->class_name, cls) == 0) return RNN_OPS[i];
    return NULL;
}

static loom_layer *bi_load_config(loom_graph *g, const char *name, const void *obj) {
    const cJSON *c = obj;
    if (!g || g->err.code) return NULL;
    const char *shown = name ? name : "bidirectional";
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(c, "merge_mode");
    int mode = cJSON_IsString(m) ? -1 : LOOM_MERGE_CONCAT;
    for (int i = 0; i < 4 && cJSON_IsString(m); i++)
        if (strcmp(m->valuestring, MERGE_NAMES[i]) == 0) mode = i;
    const char *cls, *iname, *bcls, *bname = NULL;
    const cJSON *icfg, *bcfg;
    const loom_op *op;
    if (!inner_parts(c, "layer", &cls, &iname, &icfg) || !(op = rnn_op_by_class(cls))) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT,
                       "%s (Bidirectional): the wrapped layer must be a SimpleRNN, LSTM or GRU config", shown);
        return NULL;
    }
    if (!inner_parts(c, "backward_layer", &bcls, &bname, &bcfg)) bname = NULL;
    /* the forward layer runs forwards, whatever a Keras file's copy says */
    cJSON *fcfg = cJSON_Duplicate(icfg, true);
    if (!fcfg) {
        loom_set_error(&g->err, LOOM_ERR_MEMORY, "%s (Bidirectional): out of memory", shown);
        return NULL;
    }
    cJSON *forwards = cJSON_CreateFalse(); /* replaced, or added when the file has no such key */
    bool placed = forwards && (cJSON_GetObjectItemCaseSensitive(fcfg, "go_backwards")
                                   ? cJSON_ReplaceItemInObjectCaseSensitive(fcfg, "go_backwards", forwards)
                                   : cJSON_AddItemToObject(fcfg, "go_backwards", forwards));
    if (!placed) cJSON_Delete(forwards);
    loom_layer *rnn = op->load_config(g, iname, fcfg);
    cJSON_Delete(fcfg);
    if (rnn && rnn->iarg[RNN_STATE]) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (Bidirectional): a wrapped layer with return_state is not supported", shown);
        return NULL;
    }
    return rnn ? bi_make(g, name, rnn, (loom_merge_mode)mode, bname) : NULL;
}

const loom_op loom_op_bidirectional = {
    .class_name = "Bidirectional",
    .base_name = "bidirectional",
    .min_inputs = 1,
    .max_inputs = 1,
    .build = bi_build,
    .scratch_size = bi_scratch,
    .forward = bi_forward,
    .backward = bi_backward,
    .mask_mode = LOOM_MASK_KEEP,
    .make_mask = NULL,
    .save_config = bi_save_config,
    .load_config = bi_load_config,
};

static loom_layer *bi_make(loom_graph *g, const char *name, loom_layer *rnn, loom_merge_mode mode, const char *bname) {
    if (!g || g->err.code) return NULL;
    const char *shown = name ? name : "bidirectional";
    const char *why = NULL;
    if (!rnn)
        why = "the wrapped layer is NULL";
    else if (rnn->graph != g)
        why = "the wrapped layer belongs to another graph";
    else if (!loom_is_rnn_op(rnn->op))
        why = "the wrapped layer must be a SimpleRNN, LSTM or GRU";
    else if (rnn->n_calls > 0 || rnn->built)
        why = "the wrapped layer has already been called";
    else if (rnn->iarg[RNN_OWNED] || is_wrapped(g, rnn))
        why = "the wrapped layer already belongs to a wrapper";
    else if (rnn->iarg[RNN_STATEFUL])
        why = "a stateful layer cannot be wrapped (yet)";
    else if (rnn->iarg[RNN_BACK])
        why = "the wrapped layer has go_backwards set; the forward and backward layers need different go_backwards";
    else if ((int)mode < 0 || mode > LOOM_MERGE_AVE)
        why = "merge mode must be concat, sum, mul or ave";
    if (why) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (Bidirectional): %s", shown, why);
        return NULL;
    }
    loom_layer *L = loom_graph_new_layer(g, &loom_op_bidirectional, name);
    if (!L) return NULL;
    char own[LOOM_NAME_MAX];
    if (!bname) {
        /* Keras's "backward_<name>", made unique */
        snprintf(own, sizeof own, "backward_%.50s", rnn->name);
        for (int k = 1; name_used(g, own) && k < 100000; k++)
            snprintf(own, sizeof own, "backward_%.48s_%d", rnn->name, k);
        bname = own;
    }
    loom_layer *bw = loom_graph_new_layer(g, rnn->op, bname);
    if (!bw) return NULL;
    bw->units = rnn->units;
    bw->activation = rnn->activation;
    memcpy(bw->iarg, rnn->iarg, sizeof bw->iarg);
    memcpy(bw->farg, rnn->farg, sizeof bw->farg); /* recurrent_dropout */
    bw->iarg[RNN_BACK] = 1;
    rnn->iarg[RNN_ZERO] = bw->iarg[RNN_ZERO] = rnn->iarg[RNN_SEQ];
    rnn->iarg[RNN_OWNED] = bw->iarg[RNN_OWNED] = 1;
    L->inner[0] = rnn;
    L->inner[1] = bw;
    L->iarg[BI_MODE] = (int)mode;
    return L;
}

loom_layer *loom_bidirectional(loom_graph *g, const char *name, loom_layer *rnn, loom_merge_mode mode) {
    return bi_make(g, name, rnn, mode, NULL);
}

/* ---------------------------------------------------------------- TimeDistributed */

static loom_shape td_sub(const loom_shape *in) {
    loom_shape s = {in->rank - 1, {0}};
    for (int i = 1; i < in->rank; i++) s.dims[i - 1] = in->dims[i];
    return s;
}

static loom_shape td_inner_out(const loom_shape *out) { return td_sub(out); }

static loom_status td_build(loom_layer *L, int n_in, const loom_shape *in, loom_shape *out, loom_error *err) {
    (void)n_in;
    char a[64];
    if (in[0].rank < 2)
        return loom_set_error(err, LOOM_ERR_SHAPE,
                              "%s (TimeDistributed): expects inputs with a steps axis and at least one more, got %s",
                              L->name, loom_shape_str(&in[0], a, sizeof a));
    loom_layer *inner = L->inner[0];
    loom_shape sub = td_sub(&in[0]), so;
    loom_status s = loom_wrapped_build(inner, 1, &sub, &so, err);
    if (s != LOOM_OK) return s;
    if (so.rank + 1 > LOOM_MAX_RANK)
        return loom_set_error(err, LOOM_ERR_SHAPE, "%s (TimeDistributed): the output %s plus steps exceeds rank %d",
                              L->name, loom_shape_str(&so, a, sizeof a), LOOM_MAX_RANK);
    out->rank = so.rank + 1;
    out->dims[0] = in[0].dims[0];
    for (int i = 0; i < so.rank; i++) out->dims[i + 1] = so.dims[i];
    if (!L->built) {
        adopt_weights(L, inner, "");
        mark_built(inner, &sub);
    }
    return LOOM_OK;
}

static size_t td_scratch(const loom_layer *L, int n_in, const loom_shape *in, const loom_shape *out, int batch) {
    (void)n_in;
    const loom_layer *inner = L->inner[0];
    if (!inner->op->scratch_size) return 0;
    loom_shape sub = td_sub(&in[0]), so = td_inner_out(out);
    return inner->op->scratch_size(inner, 1, &sub, &so, batch * in[0].dims[0]);
}

static void td_ctx(const loom_op_ctx *c, const loom_shape *sub, loom_op_ctx *ic) {
    *ic = *c;
    ic->batch = c->batch * c->in_shape[0].dims[0];
    ic->in_shape = sub;
    ic->out_shape = td_inner_out(&c->out_shape);
    ic->in_mask = NULL;
    ic->dout_is_preact = false;
}

static void td_forward(const loom_layer *L, const loom_op_ctx *c) {
    loom_shape sub = td_sub(&c->in_shape[0]);
    loom_op_ctx ic;
    td_ctx(c, &sub, &ic);
    L->inner[0]->op->forward(L->inner[0], &ic);
}

static void td_backward(const loom_layer *L, const loom_op_ctx *c) {
    loom_shape sub = td_sub(&c->in_shape[0]);
    loom_op_ctx ic;
    td_ctx(c, &sub, &ic);
    L->inner[0]->op->backward(L->inner[0], &ic);
}

const loom_op loom_op_time_distributed = {
    .class_name = "TimeDistributed",
    .base_name = "time_distributed",
    .min_inputs = 1,
    .max_inputs = 1,
    .build = td_build,
    .scratch_size = td_scratch,
    .forward = td_forward,
    .backward = td_backward,
    .mask_mode = LOOM_MASK_KEEP,
    .make_mask = NULL,
    /* Its config holds the wrapped layer's, which the model-file code writes and reads for any
     * class (io/model_json.c), so the hooks are there rather than here. */
    .save_config = NULL,
    .load_config = NULL,
};

loom_layer *loom_time_distributed(loom_graph *g, const char *name, loom_layer *inner) {
    if (!g || g->err.code) return NULL;
    const char *shown = name ? name : "time_distributed";
    const char *why = NULL;
    if (!inner)
        why = "the wrapped layer is NULL";
    else if (inner->graph != g)
        why = "the wrapped layer belongs to another graph";
    else if (inner->op->min_inputs > 1 || inner->op->max_inputs < 1 || inner->op->min_inputs < 1)
        why = "the wrapped layer must take a single input";
    else if (inner->n_calls > 0 || inner->built)
        why = "the wrapped layer has already been called";
    else if ((loom_is_rnn_op(inner->op) && inner->iarg[RNN_OWNED]) || is_wrapped(g, inner))
        why = "the wrapped layer already belongs to a wrapper";
    if (why) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (TimeDistributed): %s", shown, why);
        return NULL;
    }
    loom_layer *L = loom_graph_new_layer(g, &loom_op_time_distributed, name);
    if (!L) return NULL;
    L->inner[0] = inner;
    if (loom_is_rnn_op(inner->op)) inner->iarg[RNN_OWNED] = 1;
    return L;
}
