/* layer_embedding.c — keras.layers.Embedding: integer ids (held in floats) -> rows of a table.
 *
 * Configuration: iarg[0] input_dim, iarg[1] output_dim, iarg[2] mask_zero.
 * Weight: "embeddings" (input_dim, output_dim), RandomUniform(-0.05, 0.05) as Keras.
 * Shapes: ids (d1, ..., dr) -> (d1, ..., dr, output_dim); r < LOOM_MAX_RANK.
 *
 * Ids are truncated toward zero as Keras's cast to int32 does (2.7 -> 2). An id outside
 * [0, input_dim) (negative, too large or NaN) is refused as TensorFlow's CPU gather refuses it
 * ("indices[3,7] = 10 is not in [0, 10)"): a forward cannot fail, so check_input does it, called
 * by binding over the data and by the engine before every forward. Should a bad id still reach
 * the forward, it gives a row of zeros and no gradient and never reads outside the table.
 *
 * mask_zero: the layer makes the Keras mask "id != 0" for rank-1 id sequences (steps); the
 * engine's masks cover one steps axis, so for ids of higher rank no mask is made. */
#include "graph/graph.h"
#include "layers/layers.h"
#include "ops/activations.h"
#include "kernels/gemm.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

enum { A_INPUT_DIM, A_OUTPUT_DIM, A_MASK_ZERO };

static loom_status emb_build(loom_layer *L, int n_in, const loom_shape *in, loom_shape *out, loom_error *err) {
    (void)n_in;
    if (in[0].rank >= LOOM_MAX_RANK) {
        char s[64];
        return loom_set_error(err, LOOM_ERR_SHAPE, "%s (Embedding): ids %s leave no room for the output axis (rank %d at most)",
                              L->name, loom_shape_str(&in[0], s, sizeof s), LOOM_MAX_RANK - 1);
    }
    *out = in[0];
    out->dims[out->rank++] = L->iarg[A_OUTPUT_DIM];
    if (!L->built) {
        loom_shape s = {2, {L->iarg[A_INPUT_DIM], L->iarg[A_OUTPUT_DIM]}};
        loom_layer_add_weight(L, "embeddings", &s, LOOM_INIT_UNIFORM, (loom_regularizer){0, 0});
    }
    return LOOM_OK;
}

/* The table row of an id, or -1 when it is out of range. */
static long row_of(float id, int input_dim) {
    if (!(id > -1.0f && id < (float)input_dim)) return -1; /* NaN fails too */
    return (long)id;                                      /* truncation, as the cast in Keras */
}

static loom_status emb_check(const loom_layer *L, int input, const float *in, size_t n, const loom_shape *shape,
                            loom_error *err) {
    (void)input;
    size_t per = loom_shape_size(shape);
    int dim = L->iarg[A_INPUT_DIM];
    for (size_t i = 0; i < n * per; i++) {
        float id = in[i];
        if (!(id >= 0.0f) || row_of(id, dim) < 0)
            return loom_set_error(err, LOOM_ERR_DATA, "%s (Embedding): indices[%zu,%zu] = %g is not in [0, %d)", L->name,
                                  i / per, i % per, (double)id, dim);
    }
    return LOOM_OK;
}

static void emb_forward(const loom_layer *L, const loom_op_ctx *c) {
    size_t n = (size_t)c->batch * loom_shape_size(&c->in_shape[0]), D = (size_t)L->iarg[A_OUTPUT_DIM];
    for (size_t i = 0; i < n; i++) {
        long r = row_of(c->in[0][i], L->iarg[A_INPUT_DIM]);
        if (r < 0)
            memset(c->out + i * D, 0, D * sizeof *c->out);
        else
            memcpy(c->out + i * D, c->w + (size_t)r * D, D * sizeof *c->out);
    }
}

/* Rows accumulate into the table's gradient; ids get none (din[0] is left alone). */
static void emb_backward(const loom_layer *L, const loom_op_ctx *c) {
    if (!c->dw) return;
    size_t n = (size_t)c->batch * loom_shape_size(&c->in_shape[0]), D = (size_t)L->iarg[A_OUTPUT_DIM];
    for (size_t i = 0; i < n; i++) {
        long r = row_of(c->in[0][i], L->iarg[A_INPUT_DIM]);
        if (r < 0) continue;
        float *g = c->dw + (size_t)r * D;
        const float *dy = c->dout + i * D;
        for (size_t k = 0; k < D; k++) g[k] += dy[k];
    }
}

/* Keras's compute_mask: not_equal(ids, 0). */
static bool emb_mask(const loom_layer *L, const loom_op_ctx *c, float *mask) {
    if (!L->iarg[A_MASK_ZERO] || c->in_shape[0].rank != 1) return false;
    size_t n = (size_t)c->batch * (size_t)c->in_shape[0].dims[0];
    for (size_t i = 0; i < n; i++) mask[i] = c->in[0][i] != 0.0f ? 1.0f : 0.0f;
    return true;
}

static bool emb_save(const loom_layer *L, void *obj) {
    cJSON *c = obj;
    cJSON *init = cJSON_CreateObject();
    if (!init) return false;
    cJSON_AddItemToObject(c, "embeddings_initializer", init);
    cJSON_AddStringToObject(init, "class_name", "RandomUniform");
    cJSON *ic = cJSON_AddObjectToObject(init, "config");
    return ic && cJSON_AddNumberToObject(ic, "minval", -0.05) && cJSON_AddNumberToObject(ic, "maxval", 0.05) &&
           cJSON_AddNullToObject(ic, "seed") && cJSON_AddNumberToObject(c, "input_dim", L->iarg[A_INPUT_DIM]) &&
           cJSON_AddNumberToObject(c, "output_dim", L->iarg[A_OUTPUT_DIM]) &&
           cJSON_AddBoolToObject(c, "mask_zero", L->iarg[A_MASK_ZERO] != 0);
}

/* A whole number in [1, 2^30], else 0 (which the constructor refuses). */
static int cfg_dim(const cJSON *c, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 1 && v->valuedouble <= (double)(1 << 30))) return 0;
    return v->valuedouble == (int)v->valuedouble ? (int)v->valuedouble : 0;
}

static loom_layer *emb_load(loom_graph *g, const char *name, const void *config) {
    const cJSON *c = config;
    const cJSON *mz = cJSON_GetObjectItemCaseSensitive(c, "mask_zero");
    return loom_embedding(g, name, cfg_dim(c, "input_dim"), cfg_dim(c, "output_dim"), cJSON_IsTrue(mz));
}

const loom_op loom_op_embedding = {
    .class_name = "Embedding",
    .base_name = "embedding",
    .min_inputs = 1,
    .max_inputs = 1,
    .build = emb_build,
    .forward = emb_forward,
    .backward = emb_backward,
    .mask_mode = LOOM_MASK_MAKE,
    .make_mask = emb_mask,
    .check_input = emb_check,
    .save_config = emb_save,
    .load_config = emb_load,
};

loom_layer *loom_embedding(loom_graph *g, const char *name, int input_dim, int output_dim, int mask_zero) {
    if (!g || g->err.code) return NULL;
    const char *shown = name ? name : "embedding";
    if (input_dim <= 0 || output_dim <= 0) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT,
                       "%s (Embedding): input_dim and output_dim must be > 0, got %d and %d", shown, input_dim,
                       output_dim);
        return NULL;
    }
    /* the table's element count must fit the size_t and int arithmetic of the model */
    if ((double)input_dim * output_dim > (double)(1u << 31)) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (Embedding): a %d x %d table is too large", shown, input_dim,
                       output_dim);
        return NULL;
    }
    loom_layer *L = loom_graph_new_layer(g, &loom_op_embedding, name);
    if (!L) return NULL;
    L->iarg[A_INPUT_DIM] = input_dim;
    L->iarg[A_OUTPUT_DIM] = output_dim;
    L->iarg[A_MASK_ZERO] = mask_zero != 0;
    return L;
}
