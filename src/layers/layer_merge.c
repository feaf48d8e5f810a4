/* layer_merge.c — keras.layers.Add, Subtract, Multiply and Concatenate.
 *
 * The element-wise merges take inputs of one shape (no broadcasting); Concatenate joins inputs
 * that agree on every axis but the one it joins on. */
#include "graph/graph.h"
#include "layers/layers.h"
#include "ops/activations.h"
#include "kernels/gemm.h"

#include <string.h>

#define MERGE_MAX_INPUTS 16 /* as many as loom_call_n accepts */

/* ---------------------------------------------------------------- Add, Subtract, Multiply */

static loom_status same_shapes(const loom_layer *L, int n_in, const loom_shape *in,
                               loom_error *err) {
    const char *cls = L->op->class_name;
    if (n_in < 2)
        return loom_set_error(err, LOOM_ERR_COUNT, "%s (%s): needs at least 2 inputs, got %d",
                              L->name, cls, n_in);
    for (int i = 1; i < n_in; i++) {
        if (!loom_shape_equal(&in[0], &in[i])) {
            char a[64], b[64];
            return loom_set_error(err, LOOM_ERR_SHAPE,
                                  "%s (%s): inputs must have the same shape, got %s (input 0) and "
                                  "%s (input %d)",
                                  L->name, cls, loom_shape_str(&in[0], a, sizeof a),
                                  loom_shape_str(&in[i], b, sizeof b), i);
        }
    }
    return LOOM_OK;
}

static loom_status elementwise_build(loom_layer *L, int n_in, const loom_shape *in, loom_shape *out,
                                     loom_error *err) {
    loom_status s = same_shapes(L, n_in, in, err);
    if (s != LOOM_OK) return s;
    *out = in[0];
    return LOOM_OK;
}

static loom_status subtract_build(loom_layer *L, int n_in, const loom_shape *in, loom_shape *out,
                                  loom_error *err) {
    if (n_in != 2)
        return loom_set_error(err, LOOM_ERR_COUNT, "%s (Subtract): takes exactly 2 inputs, got %d",
                              L->name, n_in);
    return elementwise_build(L, n_in, in, out, err);
}

static size_t total(const loom_op_ctx *c) {
    return (size_t)c->batch * loom_shape_size(&c->out_shape);
}

static void add_forward(const loom_layer *L, const loom_op_ctx *c) {
    (void)L;
    size_t n = total(c);
    memcpy(c->out, c->in[0], n * sizeof *c->out);
    for (int k = 1; k < c->n_in; k++)
        for (size_t i = 0; i < n; i++) c->out[i] += c->in[k][i];
}

static void add_backward(const loom_layer *L, const loom_op_ctx *c) {
    (void)L;
    size_t n = total(c);
    for (int k = 0; k < c->n_in; k++) {
        if (!c->din[k]) continue;
        for (size_t i = 0; i < n; i++) c->din[k][i] += c->dout[i];
    }
}

static void subtract_forward(const loom_layer *L, const loom_op_ctx *c) {
    (void)L;
    size_t n = total(c);
    for (size_t i = 0; i < n; i++) c->out[i] = c->in[0][i] - c->in[1][i];
}

static void subtract_backward(const loom_layer *L, const loom_op_ctx *c) {
    (void)L;
    size_t n = total(c);
    if (c->din[0])
        for (size_t i = 0; i < n; i++) c->din[0][i] += c->dout[i];
    if (c->din[1])
        for (size_t i = 0; i < n; i++) c->din[1][i] -= c->dout[i];
}

static void multiply_forward(const loom_layer *L, const loom_op_ctx *c) {
    (void)L;
    size_t n = total(c);
    memcpy(c->out, c->in[0], n * sizeof *c->out);
    for (int k = 1; k < c->n_in; k++)
        for (size_t i = 0; i < n; i++) c->out[i] *= c->in[k][i];
}

/* The product of the other inputs, recomputed rather than out / in[k], which breaks on zeros. */
static void multiply_backward(const loom_layer *L, const loom_op_ctx *c) {
    (void)L;
    size_t n = total(c);
    for (int k = 0; k < c->n_in; k++) {
        float *dx = c->din[k];
        if (!dx) continue;
        for (size_t i = 0; i < n; i++) {
            float others = 1.0f;
            for (int j = 0; j < c->n_in; j++)
                if (j != k) others *= c->in[j][i];
            dx[i] += c->dout[i] * others;
        }
    }
}

const loom_op loom_op_add = {
    .class_name = "Add",
    .base_name = "add",
    .min_inputs = 2,
    .max_inputs = MERGE_MAX_INPUTS,
    .build = elementwise_build,
    .forward = add_forward,
    .backward = add_backward,
};

const loom_op loom_op_subtract = {
    .class_name = "Subtract",
    .base_name = "subtract",
    .min_inputs = 2,
    .max_inputs = 2,
    .build = subtract_build,
    .forward = subtract_forward,
    .backward = subtract_backward,
};

const loom_op loom_op_multiply = {
    .class_name = "Multiply",
    .base_name = "multiply",
    .min_inputs = 2,
    .max_inputs = MERGE_MAX_INPUTS,
    .build = elementwise_build,
    .forward = multiply_forward,
    .backward = multiply_backward,
};

/* ---------------------------------------------------------------- Concatenate */

/* Keras counts the batch axis: for per-sample rank r, axis -1 and r both mean the last per-sample
 * axis, axis 1 the first, axis 0 (and -(r+1)) the batch, which loom cannot join on.
 * Returns the per-sample axis, or -1 when out of range. */
static int concat_axis(int axis, int rank) {
    int a = axis < 0 ? axis + rank + 1 : axis;
    if (a < 1 || a > rank) return -1;
    return a - 1;
}

static loom_status concat_build(loom_layer *L, int n_in, const loom_shape *in, loom_shape *out,
                                loom_error *err) {
    if (n_in < 2)
        return loom_set_error(err, LOOM_ERR_COUNT, "%s (Concatenate): needs at least 2 inputs, got %d",
                              L->name, n_in);
    char a[64], b[64];
    int ax = concat_axis(L->axis, in[0].rank);
    if (ax < 0)
        return loom_set_error(err, LOOM_ERR_ARGUMENT,
                              "%s (Concatenate): axis %d is %s for inputs of shape %s", L->name,
                              L->axis,
                              (L->axis == 0 || L->axis == -(in[0].rank + 1))
                                  ? "the batch axis, which cannot be concatenated"
                                  : "out of range",
                              loom_shape_str(&in[0], a, sizeof a));
    *out = in[0];
    int64_t sum = in[0].dims[ax];
    for (int i = 1; i < n_in; i++) {
        bool match = in[i].rank == in[0].rank;
        for (int d = 0; match && d < in[0].rank; d++)
            if (d != ax && in[i].dims[d] != in[0].dims[d]) match = false;
        if (!match)
            return loom_set_error(err, LOOM_ERR_SHAPE,
                                  "%s (Concatenate): inputs must match on every axis but axis %d, "
                                  "got %s (input 0) and %s (input %d)",
                                  L->name, L->axis, loom_shape_str(&in[0], a, sizeof a),
                                  loom_shape_str(&in[i], b, sizeof b), i);
        sum += in[i].dims[ax];
    }
    char who[LOOM_NAME_MAX + 40];
    snprintf(who, sizeof who, "%s (Concatenate)", L->name);
    return loom_dim_check(sum, &out->dims[ax], who, "the concatenated axis", err);
}

/* Viewed as (outer, axis, inner) blocks: each input contributes a contiguous run of
 * dims[ax] * inner floats to every outer block of the output. */
static size_t concat_inner(const loom_shape *s, int ax) {
    size_t inner = 1;
    for (int d = ax + 1; d < s->rank; d++) inner *= (size_t)s->dims[d];
    return inner;
}

static void concat_forward(const loom_layer *L, const loom_op_ctx *c) {
    int ax = concat_axis(L->axis, c->out_shape.rank);
    size_t inner = concat_inner(&c->out_shape, ax);
    size_t out_run = (size_t)c->out_shape.dims[ax] * inner;
    size_t outer = (size_t)c->batch * loom_shape_size(&c->out_shape) / out_run;
    size_t offset = 0;
    for (int k = 0; k < c->n_in; k++) {
        size_t run = (size_t)c->in_shape[k].dims[ax] * inner;
        for (size_t o = 0; o < outer; o++)
            memcpy(c->out + o * out_run + offset, c->in[k] + o * run, run * sizeof(float));
        offset += run;
    }
}

static void concat_backward(const loom_layer *L, const loom_op_ctx *c) {
    int ax = concat_axis(L->axis, c->out_shape.rank);
    size_t inner = concat_inner(&c->out_shape, ax);
    size_t out_run = (size_t)c->out_shape.dims[ax] * inner;
    size_t outer = (size_t)c->batch * loom_shape_size(&c->out_shape) / out_run;
    size_t offset = 0;
    for (int k = 0; k < c->n_in; k++) {
        size_t run = (size_t)c->in_shape[k].dims[ax] * inner;
        float *dx = c->din[k];
        if (dx)
            for (size_t o = 0; o < outer; o++) {
                const float *dy = c->dout + o * out_run + offset;
                for (size_t i = 0; i < run; i++) dx[o * run + i] += dy[i];
            }
        offset += run;
    }
}

const loom_op loom_op_concatenate = {
    .class_name = "Concatenate",
    .base_name = "concatenate",
    .min_inputs = 2,
    .max_inputs = MERGE_MAX_INPUTS,
    .build = concat_build,
    .forward = concat_forward,
    .backward = concat_backward,
};

/* ---------------------------------------------------------------- constructors */

static loom_layer *merge_new(loom_graph *g, const loom_op *op, const char *name) {
    if (!g || g->err.code) return NULL;
    return loom_graph_new_layer(g, op, name);
}

loom_layer *loom_add(loom_graph *g, const char *name) { return merge_new(g, &loom_op_add, name); }
loom_layer *loom_subtract(loom_graph *g, const char *name) {
    return merge_new(g, &loom_op_subtract, name);
}
loom_layer *loom_multiply(loom_graph *g, const char *name) {
    return merge_new(g, &loom_op_multiply, name);
}

loom_layer *loom_concatenate(loom_graph *g, const char *name, int axis) {
    if (!g || g->err.code) return NULL;
    /* Only the batch axis can be refused before the input rank is known. */
    if (axis == 0) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT,
                       "%s (Concatenate): axis 0 is the batch axis, which cannot be concatenated",
                       name ? name : "concatenate");
        return NULL;
    }
    loom_layer *L = loom_graph_new_layer(g, &loom_op_concatenate, name);
    if (!L) return NULL;
    L->axis = axis;
    return L;
}
