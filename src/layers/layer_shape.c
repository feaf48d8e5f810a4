/* layer_shape.c — keras.layers.Permute and RepeatVector: data movement only, no weights.
 *
 * Permute: iarg[0] rank, iarg[1..rank] the Keras dims (a permutation of 1..rank, non-batch axes);
 *   output axis i is input axis dims[i] - 1.
 * RepeatVector: iarg[0] n; (features) -> (n, features). */
#include "graph/graph.h"
#include "layers/layers.h"
#include "ops/activations.h"
#include "kernels/gemm.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <string.h>

/* ---------------------------------------------------------------- Permute */

static loom_status check_perm(const char *name, int rank, const int *dims, loom_error *err) {
    if (rank < 1 || rank > LOOM_MAX_RANK)
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "%s (Permute): rank must be 1 to %d, got %d", name,
                              LOOM_MAX_RANK, rank);
    if (!dims) return loom_set_error(err, LOOM_ERR_ARGUMENT, "%s (Permute): dims are NULL", name);
    bool seen[LOOM_MAX_RANK + 1] = {false};
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 1 || dims[i] > rank || seen[dims[i]])
            return loom_set_error(err, LOOM_ERR_ARGUMENT,
                                  "%s (Permute): dims must be a permutation of 1..%d (Keras numbering, batch axis "
                                  "excluded); dims[%d] = %d",
                                  name, rank, i, dims[i]);
        seen[dims[i]] = true;
    }
    return LOOM_OK;
}

static loom_status permute_build(loom_layer *L, int n_in, const loom_shape *in, loom_shape *out, loom_error *err) {
    (void)n_in;
    int rank = L->iarg[0];
    if (in[0].rank != rank) {
        char s[64];
        return loom_set_error(err, LOOM_ERR_SHAPE, "%s (Permute): dims permute %d axes but input %s has %d", L->name,
                              rank, loom_shape_str(&in[0], s, sizeof s), in[0].rank);
    }
    out->rank = rank;
    for (int i = 0; i < rank; i++) out->dims[i] = in[0].dims[L->iarg[1 + i] - 1];
    return LOOM_OK;
}

/* For each output axis, the input stride it walks along. */
static void permute_strides(const loom_layer *L, const loom_shape *in, size_t *stride) {
    size_t in_stride[LOOM_MAX_RANK], s = 1;
    for (int i = in->rank - 1; i >= 0; i--) {
        in_stride[i] = s;
        s *= (size_t)in->dims[i];
    }
    for (int i = 0; i < in->rank; i++) stride[i] = in_stride[L->iarg[1 + i] - 1];
}

/* Walks the output in order with an odometer over its axes; `scatter` runs the adjoint
 * (dx[gathered position] += dy) for the backward. */
static void permute_walk(const loom_layer *L, const loom_op_ctx *c, const float *src, float *dst, bool scatter) {
    const loom_shape *in = &c->in_shape[0], *out = &c->out_shape;
    size_t stride[LOOM_MAX_RANK], n = loom_shape_size(out);
    permute_strides(L, in, stride);
    for (int b = 0; b < c->batch; b++) {
        const float *s = src + (size_t)b * n;
        float *d = dst + (size_t)b * n;
        int idx[LOOM_MAX_RANK] = {0};
        size_t from = 0;
        for (size_t o = 0; o < n; o++) {
            if (scatter)
                d[from] += s[o];
            else
                d[o] = s[from];
            for (int a = out->rank - 1; a >= 0; a--) {
                from += stride[a];
                if (++idx[a] < out->dims[a]) break;
                from -= stride[a] * (size_t)out->dims[a];
                idx[a] = 0;
            }
        }
    }
}

static void permute_forward(const loom_layer *L, const loom_op_ctx *c) { permute_walk(L, c, c->in[0], c->out, false); }

static void permute_backward(const loom_layer *L, const loom_op_ctx *c) {
    if (c->din[0]) permute_walk(L, c, c->dout, c->din[0], true);
}

static bool permute_save(const loom_layer *L, void *obj) {
    cJSON *a = cJSON_CreateIntArray(L->iarg + 1, L->iarg[0]);
    if (!a) return false;
    cJSON_AddItemToObject(obj, "dims", a);
    return true;
}

static loom_layer *permute_load(loom_graph *g, const char *name, const void *config) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(config, "dims");
    int dims[LOOM_MAX_RANK] = {0}, rank = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : 0;
    if (rank > LOOM_MAX_RANK) rank = LOOM_MAX_RANK + 1; /* refused by the constructor */
    for (int i = 0; i < rank && i < LOOM_MAX_RANK; i++) {
        const cJSON *v = cJSON_GetArrayItem(a, i);
        dims[i] = cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble <= LOOM_MAX_RANK ? (int)v->valuedouble : 0;
    }
    return loom_permute(g, name, rank, dims);
}

const loom_op loom_op_permute = {
    .class_name = "Permute",
    .base_name = "permute",
    .min_inputs = 1,
    .max_inputs = 1,
    .build = permute_build,
    .forward = permute_forward,
    .backward = permute_backward,
    .mask_mode = LOOM_MASK_DROP,
    .save_config = permute_save,
    .load_config = permute_load,
};

loom_layer *loom_permute(loom_graph *g, const char *name, int rank, const int *dims) {
    if (!g || g->err.code) return NULL;
    if (check_perm(name ? name : "permute", rank, dims, &g->err) != LOOM_OK) return NULL;
    loom_layer *L = loom_graph_new_layer(g, &loom_op_permute, name);
    if (!L) return NULL;
    L->iarg[0] = rank;
    memcpy(L->iarg + 1, dims, (size_t)rank * sizeof *dims);
    return L;
}

/* ---------------------------------------------------------------- RepeatVector */

static loom_status repeat_build(loom_layer *L, int n_in, const loom_shape *in, loom_shape *out, loom_error *err) {
    (void)n_in;
    if (in[0].rank != 1) {
        char s[64];
        return loom_set_error(err, LOOM_ERR_SHAPE, "%s (RepeatVector): input must be (features), got %s", L->name,
                              loom_shape_str(&in[0], s, sizeof s));
    }
    if ((size_t)L->iarg[0] * (size_t)in[0].dims[0] > INT_MAX)
        return loom_set_error(err, LOOM_ERR_SHAPE, "%s (RepeatVector): %d copies of %d features are too many", L->name,
                              L->iarg[0], in[0].dims[0]);
    out->rank = 2;
    out->dims[0] = L->iarg[0];
    out->dims[1] = in[0].dims[0];
    return LOOM_OK;
}

static void repeat_forward(const loom_layer *L, const loom_op_ctx *c) {
    size_t F = (size_t)c->in_shape[0].dims[0], n = (size_t)L->iarg[0];
    for (int b = 0; b < c->batch; b++)
        for (size_t t = 0; t < n; t++) memcpy(c->out + ((size_t)b * n + t) * F, c->in[0] + (size_t)b * F, F * sizeof(float));
}

static void repeat_backward(const loom_layer *L, const loom_op_ctx *c) {
    float *dx = c->din[0];
    if (!dx) return;
    size_t F = (size_t)c->in_shape[0].dims[0], n = (size_t)L->iarg[0];
    for (int b = 0; b < c->batch; b++)
        for (size_t t = 0; t < n; t++) {
            const float *dy = c->dout + ((size_t)b * n + t) * F;
            for (size_t f = 0; f < F; f++) dx[(size_t)b * F + f] += dy[f];
        }
}

static bool repeat_save(const loom_layer *L, void *obj) { return cJSON_AddNumberToObject(obj, "n", L->iarg[0]) != NULL; }

static loom_layer *repeat_load(loom_graph *g, const char *name, const void *config) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(config, "n");
    int n = cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble <= (double)(1 << 30) &&
                    v->valuedouble == (int)v->valuedouble
                ? (int)v->valuedouble
                : 0;
    return loom_repeat_vector(g, name, n);
}

const loom_op loom_op_repeat_vector = {
    .class_name = "RepeatVector",
    .base_name = "repeat_vector",
    .min_inputs = 1,
    .max_inputs = 1,
    .build = repeat_build,
    .forward = repeat_forward,
    .backward = repeat_backward,
    .mask_mode = LOOM_MASK_DROP,
    .save_config = repeat_save,
    .load_config = repeat_load,
};

loom_layer *loom_repeat_vector(loom_graph *g, const char *name, int n) {
    if (!g || g->err.code) return NULL;
    if (n <= 0) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (RepeatVector): n must be > 0, got %d",
                       name ? name : "repeat_vector", n);
        return NULL;
    }
    loom_layer *L = loom_graph_new_layer(g, &loom_op_repeat_vector, name);
    if (!L) return NULL;
    L->iarg[0] = n;
    return L;
}
