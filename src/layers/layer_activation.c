/* layer_activation.c — keras.layers.Activation: y = act(x), softmax over the last axis.
 *
 * No scratch: the backward reads the pre-activation from c->in[0] and the post-activation from
 * c->out, both still holding what the forward saw. */
#include "graph/graph.h"
#include "layers/layers.h"
#include "ops/activations.h"
#include "kernels/gemm.h"

static loom_status activation_build(loom_layer *L, int n_in, const loom_shape *in, loom_shape *out,
                                    loom_error *err) {
    if (n_in != 1)
        return loom_set_error(err, LOOM_ERR_COUNT, "%s (Activation): takes 1 input, got %d",
                              L->name, n_in);
    if ((int)L->activation < 0 || L->activation >= LOOM_ACTIVATION_COUNT)
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "%s (Activation): unknown activation %d",
                              L->name, (int)L->activation);
    *out = in[0];
    return LOOM_OK;
}

/* Rows of the last axis: softmax needs them, the element-wise activations do not care. */
static size_t act_rows(const loom_op_ctx *c, int *dim) {
    *dim = c->out_shape.dims[c->out_shape.rank - 1];
    return (size_t)c->batch * (loom_shape_size(&c->out_shape) / (size_t)*dim);
}

static void activation_forward(const loom_layer *L, const loom_op_ctx *c) {
    int dim;
    size_t rows = act_rows(c, &dim);
    loom_act_forward(L->activation, c->in[0], c->out, rows, dim);
}

static void activation_backward(const loom_layer *L, const loom_op_ctx *c) {
    float *dx = c->din[0];
    if (!dx) return;
    int dim;
    size_t rows = act_rows(c, &dim);
    if (c->dout_is_preact) {
        /* Fused loss: dout already is dL/dx (the crossentropy differentiated through the softmax
         * or sigmoid), so applying the activation derivative again would be wrong. */
        size_t n = rows * (size_t)dim;
        for (size_t i = 0; i < n; i++) dx[i] += c->dout[i];
        return;
    }
    loom_act_backward(L->activation, c->in[0], c->out, c->dout, dx, rows, dim);
}

const loom_op loom_op_activation = {
    .class_name = "Activation",
    .base_name = "activation",
    .mask_mode = LOOM_MASK_KEEP,
    .min_inputs = 1,
    .max_inputs = 1,
    .build = activation_build,
    .scratch_size = NULL,
    .forward = activation_forward,
    .backward = activation_backward,
};

loom_layer *loom_activation_layer(loom_graph *g, const char *name, loom_activation act) {
    if (!g || g->err.code) return NULL;
    if ((int)act < 0 || act >= LOOM_ACTIVATION_COUNT) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (Activation): unknown activation %d",
                       name ? name : "activation", (int)act);
        return NULL;
    }
    loom_layer *L = loom_graph_new_layer(g, &loom_op_activation, name);
    if (!L) return NULL;
    L->activation = act;
    return L;
}
