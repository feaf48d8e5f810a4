/* test_bf16_plan.c — mixed_bfloat16's workspace (issue 18): Dense products run in blocks of C
 * (layers/layer_dense.c), so the one workspace the engine plans for all bfloat16 layers stays
 * within the block budget however wide the layers, and the blocks give the same bits as one whole
 * product (they cut only C's rows and columns, never the sums). This is loom's own bfloat16
 * kernel (LOOM_GEMM_BACKEND=loom); a product planned on oneDNN rounds its operands whole, faster
 * and larger (test_gemm_backends). */
#include "check.h"
#include "core/model.h"
#include "kernels/product.h"
#include "layers/layers.h"
#include "loom.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float uniform(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)(rng >> 40) / 16777216.0f * 2 - 1;
}

/* x (in) -> Dense a relu -> Dense b linear, mse, Adam, mixed_bfloat16 */
static loom_model *mlp(int in, int a, int b) {
    loom_graph *g = loom_graph_new(5);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){in});
    loom_tensor *h = loom_call(loom_dense(g, "a", a, LOOM_RELU, NULL), x);
    loom_tensor *y = loom_call(loom_dense(g, "b", b, LOOM_LINEAR, NULL), h);
    loom_model *m = loom_model_new(g, 1, &x, 1, &y);
    if (!m) return NULL;
    loom_loss l = {.name = "mse"};
    loom_compile_config cfg = {.n_losses = 1, .losses = &l, .optimizer = loom_adam(1e-2f),
                               .dtype_policy = LOOM_POLICY_MIXED_BFLOAT16};
    if (loom_compile(m, &cfg)) {
        loom_model_free(m);
        return NULL;
    }
    return m;
}

enum { IN = 96, A = 80, B = 40, NB = 24, STEPS = 3 };

/* Trains STEPS batches with the block budget `halves` (set before the plan, as the workspace
 * follows it) and returns the weights and a prediction. */
static int train_with(size_t halves, const float *xs, const float *ys, float *weights, float *pred) {
    size_t keep = loom_dense_bf16_block_halves;
    loom_dense_bf16_block_halves = halves;
    loom_model *m = mlp(IN, A, B);
    int ok = m != NULL;
    for (int s = 0; ok && s < STEPS; s++) {
        loom_array x = {.name = "x", .data = (float *)xs + (size_t)s * NB * IN, .n = NB, .count = NB * IN};
        loom_array y = {.name = "b", .data = (float *)ys + (size_t)s * NB * B, .n = NB, .count = NB * B};
        loom_data d = {.n_x = 1, .x = &x, .n_y = 1, .y = &y};
        ok = loom_train_on_batch(m, &d, NULL, 0, NULL) == LOOM_OK;
    }
    loom_array x = {.name = "x", .data = (float *)xs, .n = NB, .count = NB * IN};
    ok = ok && loom_predict(m, 1, &x, NB, (float *const[]){pred}) == LOOM_OK;
    ok = ok && loom_get_weights(m, "a", 0, weights, IN * A) == LOOM_OK &&
         loom_get_weights(m, "b", 0, weights + IN * A, A * B) == LOOM_OK &&
         loom_get_weights(m, "a", 1, weights + IN * A + A * B, A) == LOOM_OK;
    if (m && halves != SIZE_MAX) CHECK(m->bf16_ws_floats > 0);
    loom_model_free(m);
    loom_dense_bf16_block_halves = keep;
    return ok;
}

/* A budget of 4096 values cuts every product of this model (forward, input and weight gradients)
 * into blocks, with partial blocks at the edges; the trained weights and the predictions must be
 * those of whole products, bit for bit. */
static void test_blocks_same_bits(void) {
    static float xs[STEPS * NB * IN], ys[STEPS * NB * B];
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) xs[i] = uniform();
    for (size_t i = 0; i < sizeof ys / sizeof ys[0]; i++) ys[i] = uniform();
    static float w_blocks[IN * A + A * B + A], w_whole[IN * A + A * B + A], p_blocks[NB * B], p_whole[NB * B];
    CHECK(train_with(4096, xs, ys, w_blocks, p_blocks));
    CHECK(train_with(SIZE_MAX, xs, ys, w_whole, p_whole));
    CHECK(memcmp(w_blocks, w_whole, sizeof w_blocks) == 0);
    CHECK(memcmp(p_blocks, p_whole, sizeof p_blocks) == 0);
    /* and the training moved the weights: the comparison is not of two untouched initialisations */
    loom_model *m = mlp(IN, A, B);
    static float w0[IN * A];
    CHECK(m && loom_get_weights(m, "a", 0, w0, IN * A) == LOOM_OK);
    CHECK(memcmp(w0, w_whole, sizeof w0) != 0);
    loom_model_free(m);
}

/* Planned at one step, the workspace of layers 2048 wide stays within the budget (half a float per
 * bfloat16 value, plus the alignment of B's panels) where whole products would have needed four
 * times as much, and it does not grow with the width. */
static size_t planned_workspace(int in, int width, int nb) {
    loom_model *m = mlp(in, width, width);
    if (!m) return 0;
    float *x = calloc((size_t)nb * in, sizeof *x), *y = calloc((size_t)nb * width, sizeof *y);
    loom_array xa = {.name = "x", .data = x, .n = (size_t)nb, .count = (size_t)nb * in};
    loom_array ya = {.name = "b", .data = y, .n = (size_t)nb, .count = (size_t)nb * width};
    loom_data d = {.n_x = 1, .x = &xa, .n_y = 1, .y = &ya};
    size_t floats = x && y && loom_train_on_batch(m, &d, NULL, 0, NULL) == LOOM_OK ? m->bf16_ws_floats : 0;
    free(x), free(y);
    loom_model_free(m);
    return floats;
}

static void test_workspace_bounded(void) {
    const size_t bound = loom_dense_bf16_block_halves / 2 + 16;
    size_t narrow = planned_workspace(256, 1024, 16), wide = planned_workspace(256, 2048, 16);
    printf("planned bfloat16 workspace: width 1024 %zu floats, width 2048 %zu floats (bound %zu)\n", narrow, wide,
           bound);
    CHECK(narrow > 0 && narrow <= bound);
    CHECK(wide > 0 && wide <= bound);
    CHECK(wide <= narrow);
    /* whole products: 16 x 2048 x 2048 packs 16 x 2048 + 2048 x 2048 bfloat16 values */
    size_t keep = loom_dense_bf16_block_halves;
    loom_dense_bf16_block_halves = SIZE_MAX;
    size_t whole = planned_workspace(256, 2048, 16);
    loom_dense_bf16_block_halves = keep;
    CHECK(whole >= (size_t)(16 * 2048 + 2048 * 2048) / 2);
    CHECK(whole > 4 * wide);
}

int main(void) {
    loom_product_force_backend(LOOM_BACKEND_DEFAULT); /* the blocks are loom's kernel's */
    test_blocks_same_bits();
    test_workspace_bounded();
    return check_report("test_bf16_plan");
}
