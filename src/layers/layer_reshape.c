/* layer_reshape.c — keras.layers.Flatten and Reshape. Row-major data make both a plain copy:
 * only the per-sample shape changes. */
#include "graph/graph.h"
#include "layers/layers.h"
#include "ops/activations.h"
#include "kernels/gemm.h"

#include <limits.h>
#include <string.h>

static void copy_forward(const loom_layer *L, const loom_op_ctx *c) {
    (void)L;
    size_t n = (size_t)c->batch * loom_shape_size(&c->out_shape);
    memcpy(c->out, c->in[0], n * sizeof *c->out);
}

static void copy_backward(const loom_layer *L, const loom_op_ctx *c) {
    (void)L;
    float *dx = c->din[0];
    if (!dx) return;
    size_t n = (size_t)c->batch * loom_shape_size(&c->out_shape);
    for (size_t i = 0; i < n; i++) dx[i] += c->dout[i];
}

/* ---------------------------------------------------------------- Flatten */

static loom_status flatten_build(loom_layer *L, int n_in, const loom_shape *in, loom_shape *out,
                                 loom_error *err) {
    if (n_in != 1)
        return loom_set_error(err, LOOM_ERR_COUNT, "%s (Flatten): takes 1 input, got %d", L->name,
                              n_in);
    size_t n = loom_shape_size(&in[0]);
    if (n > INT_MAX) {
        char a[64];
        return loom_set_error(err, LOOM_ERR_SHAPE, "%s (Flatten): input %s has too many elements",
                              L->name, loom_shape_str(&in[0], a, sizeof a));
    }
    out->rank = 1;
    out->dims[0] = (int)n;
    return LOOM_OK;
}

const loom_op loom_op_flatten = {
    .class_name = "Flatten",
    .base_name = "flatten",
    .min_inputs = 1,
    .max_inputs = 1,
    .build = flatten_build,
    .forward = copy_forward,
    .backward = copy_backward,
};

loom_layer *loom_flatten(loom_graph *g, const char *name) {
    if (!g || g->err.code) return NULL;
    return loom_graph_new_layer(g, &loom_op_flatten, name);
}

/* ---------------------------------------------------------------- Reshape */

/* The target itself, before any input is seen: rank 1..LOOM_MAX_RANK, dims > 0 or one -1. */
static loom_status check_target(const char *name, int rank, const int *dims, loom_error *err) {
    if (rank < 1 || rank > LOOM_MAX_RANK)
        return loom_set_error(err, LOOM_ERR_ARGUMENT,
                              "%s (Reshape): target rank must be 1 to %d, got %d", name,
                              LOOM_MAX_RANK, rank);
    if (!dims)
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "%s (Reshape): target dims are NULL", name);
    int unknown = 0;
    for (int i = 0; i < rank; i++) {
        if (dims[i] == -1) {
            if (++unknown > 1)
                return loom_set_error(err, LOOM_ERR_ARGUMENT,
                                      "%s (Reshape): only one target dim may be -1", name);
        } else if (dims[i] <= 0) {
            return loom_set_error(err, LOOM_ERR_ARGUMENT,
                                  "%s (Reshape): target dim %d is %d; dims must be > 0 or -1", name,
                                  i, dims[i]);
        }
    }
    return LOOM_OK;
}

static loom_status reshape_build(loom_layer *L, int n_in, const loom_shape *in, loom_shape *out,
                                 loom_error *err) {
    if (n_in != 1)
        return loom_set_error(err, LOOM_ERR_COUNT, "%s (Reshape): takes 1 input, got %d", L->name,
                              n_in);
    loom_status s = check_target(L->name, L->target.rank, L->target.dims, err);
    if (s != LOOM_OK) return s;
    size_t n = loom_shape_size(&in[0]);
    size_t known = 1;
    int unknown = -1;
    for (int i = 0; i < L->target.rank; i++) {
        if (L->target.dims[i] == -1)
            unknown = i;
        else if (known <= n) /* past n it cannot fit; stopping there also avoids overflow */
            known *= (size_t)L->target.dims[i];
    }
    *out = L->target;
    bool fits = unknown >= 0 ? n % known == 0 && n / known <= INT_MAX : n == known;
    if (!fits) {
        char a[64], b[64];
        /* the target as given: its -1 is "inferred" (loom_shape_str would print None, a variable axis) */
        size_t used = (size_t)snprintf(b, sizeof b, "(None");
        for (int i = 0; i < L->target.rank && used < sizeof b; i++)
            used += (size_t)snprintf(b + used, sizeof b - used, ", %d", L->target.dims[i]);
        if (used < sizeof b) snprintf(b + used, sizeof b - used, ")");
        return loom_set_error(err, LOOM_ERR_SHAPE,
                              "%s (Reshape): cannot reshape input %s (%zu elements) to %s", L->name,
                              loom_shape_str(&in[0], a, sizeof a), n, b);
    }
    if (unknown >= 0) out->dims[unknown] = (int)(n / known);
    return LOOM_OK;
}

const loom_op loom_op_reshape = {
    .class_name = "Reshape",
    .base_name = "reshape",
    .min_inputs = 1,
    .max_inputs = 1,
    .build = reshape_build,
    .forward = copy_forward,
    .backward = copy_backward,
};

loom_layer *loom_reshape(loom_graph *g, const char *name, int rank, const int *dims) {
    if (!g || g->err.code) return NULL;
    if (check_target(name ? name : "reshape", rank, dims, &g->err) != LOOM_OK) return NULL;
    loom_layer *L = loom_graph_new_layer(g, &loom_op_reshape, name);
    if (!L) return NULL;
    L->target.rank = rank;
    memcpy(L->target.dims, dims, (size_t)rank * sizeof *dims);
    return L;
}
