/* layer_dropout.c — keras.layers.Dropout: inverted dropout while training, identity otherwise.
 *
 * Element i of the batch is kept when uniform01(key, i) >= rate (probability 1 - rate) and
 * scaled by 1/(1 - rate), so the expected value matches inference and no rescaling is needed
 * there. The mask (0 or the scale; 1 outside training) is kept in the scratch for the backward,
 * which reads only the mask: the forward alone decides between dropout and identity. */
#include "graph/graph.h"
#include "layers/layers.h"
#include "ops/activations.h"
#include "kernels/gemm.h"

#include <string.h>

static bool rate_ok(float rate) { return rate >= 0.0f && rate < 1.0f; } /* false for NaN */

static loom_status dropout_build(loom_layer *L, int n_in, const loom_shape *in, loom_shape *out,
                                 loom_error *err) {
    if (n_in != 1)
        return loom_set_error(err, LOOM_ERR_COUNT, "%s (Dropout): takes 1 input, got %d", L->name,
                              n_in);
    if (!rate_ok(L->rate))
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "%s (Dropout): rate must be in [0, 1), got %g",
                              L->name, (double)L->rate);
    *out = in[0];
    return LOOM_OK;
}

static size_t dropout_scratch(const loom_layer *L, int n_in, const loom_shape *in,
                              const loom_shape *out, int batch) {
    (void)L, (void)n_in, (void)in;
    return (size_t)batch * loom_shape_size(out);
}

static void dropout_forward(const loom_layer *L, const loom_op_ctx *c) {
    size_t n = (size_t)c->batch * loom_shape_size(&c->out_shape);
    const float *x = c->in[0];
    float *y = c->out;
    float *mask = c->scratch;
    if (!c->training || L->rate == 0.0f) {
        memcpy(y, x, n * sizeof *y);
        /* A mask of ones even here: the backward then follows what this forward did, whatever
         * training flag its own context carries. */
        for (size_t i = 0; i < n; i++) mask[i] = 1.0f;
        return;
    }
    float scale = 1.0f / (1.0f - L->rate);
    uint64_t key = loom_hash64(c->rng_seed, c->rng_counter);
    for (size_t i = 0; i < n; i++) {
        mask[i] = loom_uniform01(key, i) >= L->rate ? scale : 0.0f;
        y[i] = x[i] * mask[i];
    }
}

static void dropout_backward(const loom_layer *L, const loom_op_ctx *c) {
    (void)L;
    float *dx = c->din[0];
    if (!dx) return;
    size_t n = (size_t)c->batch * loom_shape_size(&c->out_shape);
    const float *dy = c->dout;
    const float *mask = c->scratch;
    for (size_t i = 0; i < n; i++) dx[i] += dy[i] * mask[i];
}

const loom_op loom_op_dropout = {
    .class_name = "Dropout",
    .base_name = "dropout",
    .mask_mode = LOOM_MASK_KEEP,
    .min_inputs = 1,
    .max_inputs = 1,
    .build = dropout_build,
    .scratch_size = dropout_scratch,
    .forward = dropout_forward,
    .backward = dropout_backward,
};

loom_layer *loom_dropout(loom_graph *g, const char *name, float rate) {
    if (!g || g->err.code) return NULL;
    if (!rate_ok(rate)) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (Dropout): rate must be in [0, 1), got %g",
                       name ? name : "dropout", (double)rate);
        return NULL;
    }
    loom_layer *L = loom_graph_new_layer(g, &loom_op_dropout, name);
    if (!L) return NULL;
    L->rate = rate;
    return L;
}
