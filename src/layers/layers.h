/* layers.h — the op table of each layer class (the files of layers/), for the model and the model files
 * that recognise or recreate them (internal) */
#ifndef LOOM_LAYERS_H
#define LOOM_LAYERS_H

#include "graph/graph.h"

extern const loom_op loom_op_dense, loom_op_activation, loom_op_dropout,
    loom_op_add, loom_op_subtract, loom_op_multiply, loom_op_concatenate, loom_op_flatten,
    loom_op_reshape;
/* convolution and spatial layers: configuration in iarg/farg as documented in their files */
extern const loom_op loom_op_conv1d, loom_op_conv2d, loom_op_conv2d_transpose, loom_op_depthwise_conv2d,
    loom_op_max_pooling1d, loom_op_max_pooling2d, loom_op_average_pooling1d, loom_op_average_pooling2d,
    loom_op_global_average_pooling1d, loom_op_global_max_pooling1d, loom_op_global_average_pooling2d,
    loom_op_global_max_pooling2d, loom_op_upsampling2d, loom_op_zero_padding2d, loom_op_cropping2d;
/* layers that describe themselves in model files (save_config / load_config); the recurrent
 * ones are declared in rnn.h */
extern const loom_op loom_op_multi_head_attention, loom_op_batch_normalization, loom_op_layer_normalization,
    loom_op_embedding, loom_op_permute, loom_op_repeat_vector;

/* mixed_bfloat16: a Dense product's bfloat16 operands are packed in blocks of at most this many
 * values (layer_dense.c; the workspace the engine plans follows it, so a change holds only for
 * models planned after it). Tests set SIZE_MAX for one whole block and compare the bits. */
extern size_t loom_dense_bf16_block_halves;
/* The product in slot `slot` of this call site (loom_op.products): on its planned backend when the
 * call is the planned one, else float32 loom_sgemm, or, under mixed_bfloat16 (c->bf16_ws set),
 * bfloat16 inputs with float32 sums (loom_gemm_bf16). */
static inline void loom_layer_product(const loom_op_ctx *c, int slot, bool ta, bool tb, int M, int N, int K,
                                      float alpha, const float *A, int lda, const float *B, int ldb, float beta,
                                      float *C, int ldc) {
    const loom_product *p = slot < c->n_products ? &c->products[slot] : NULL;
    loom_product_run(p, c->bf16_ws != NULL, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                     c->product_ws);
}

#endif
