/* layer_dense.c — Dense: y = act(x . kernel + bias) over the last axis.
 * Leading axes (batch and any others) are folded into rows, as Keras applies Dense to the last
 * axis of an input of any rank. */
#include "graph/graph.h"
#include "layers/layers.h"
#include "ops/activations.h"
#include "kernels/gemm.h"
#include "kernels/gemm_bf16.h"

#include <math.h>
#include <string.h>

static loom_status dense_build(loom_layer *L, int n_in, const loom_shape *in, loom_shape *out,
                               loom_error *err) {
    (void)n_in;
    const loom_shape *x = &in[0];
    if (x->rank < 1) return loom_set_error(err, LOOM_ERR_SHAPE, "%s (Dense): input has no axes", L->name);
    *out = *x;
    out->dims[x->rank - 1] = L->units;
    if (!L->built) {
        int fan_in = x->dims[x->rank - 1];
        loom_shape k = {2, {fan_in, L->units}};
        loom_shape b = {1, {L->units}};
        loom_initializer ki = L->dense.kernel_initializer ? L->dense.kernel_initializer
                                                          : LOOM_INIT_GLOROT_UNIFORM;
        loom_initializer bi = L->dense.bias_initializer ? L->dense.bias_initializer : LOOM_INIT_ZEROS;
        loom_layer_add_weight(L, "kernel", &k, ki, L->dense.kernel_regularizer);
        if (L->dense.use_bias) loom_layer_add_weight(L, "bias", &b, bi, L->dense.bias_regularizer);
    }
    return LOOM_OK;
}

/* The pre-activation z is kept in scratch only when the activation's backward needs it or a fused
 * loss reads it as logits (loom_act_keeps_preact); otherwise forward activates the output in
 * place and backward turns dout into dz in place. */
static size_t dense_scratch(const loom_layer *L, int n_in, const loom_shape *in,
                            const loom_shape *out, int batch) {
    (void)n_in;
    (void)in;
    return loom_act_keeps_preact(L->activation) ? (size_t)batch * loom_shape_size(out) : 0;
}

/* mixed_bfloat16's products run in blocks of C whose operands' bfloat16 copies (the block's rows of
 * op(A) and columns of op(B), which loom_gemm_bf16 packs into the workspace) hold at most this many
 * values. Packed whole, a 4096 x 4096 layer's product needs 34 MiB of workspace, more than the
 * float32 step's own activations (the wide benchmark's peak memory rose by that much); in blocks
 * it needs 512 KiB however wide the layer. The budget is set by memory, not speed: with OpenBLAS's
 * Cooperlake kernel the float32 step touches about 1 MB of packing buffers the bfloat16 step does
 * not, and a workspace of 2 MiB (1 MiB) still left wide's peak 1.1 MB (0.1 MB) above float32's.
 * Smaller blocks mean more calls (1024 per 256 x 4096 x 4096 product), each packing again and
 * sharing out its rows among the threads. The blocks
 * cut only C's rows and columns (at multiples of 32, keeping the kernel's 16-column panels whole),
 * never K, so every element's sum runs in the same order on the same values: the same bits as one
 * whole product. SIZE_MAX: one block (tests compare the two). */
size_t loom_dense_bf16_block_halves = (size_t)1 << 18;

/* The block of an M x N x K product: *mb rows and *nb columns of C (all of them when they fit). */
static void bf16_block(int M, int N, int K, int *mb, int *nb) {
    size_t ke = ((size_t)K + 1) & ~(size_t)1, fit = loom_dense_bf16_block_halves / (ke ? ke : 1);
    if ((size_t)M + (size_t)N <= fit) {
        *mb = M, *nb = N;
        return;
    }
    /* half the budget each, the rest to the other side when one side is narrow */
    size_t half = fit / 2 / 32 * 32 > 32 ? fit / 2 / 32 * 32 : 32;
    size_t m = (size_t)M < half ? (size_t)M : half;
    size_t n = fit > m + 32 ? (fit - m) / 32 * 32 : 32;
    if (n >= (size_t)N) {
        n = (size_t)N;
        size_t rows = fit > n + 32 ? (fit - n) / 32 * 32 : 32;
        if (rows > m) m = rows < (size_t)M ? rows : (size_t)M;
    }
    *mb = (int)m, *nb = (int)n;
}

static size_t bf16_block_workspace(int M, int N, int K) {
    int mb, nb;
    bf16_block(M, N, K, &mb, &nb);
    return loom_gemm_bf16_workspace(mb, nb, K);
}

/* The three products of a step share one workspace (they run one after another; the engine gives
 * all bfloat16 layers one, sized for the largest block). */
static size_t dense_bf16_workspace(const loom_layer *L, int n_in, const loom_shape *in, const loom_shape *out,
                                   int batch) {
    (void)n_in;
    int in_dim = in[0].dims[in[0].rank - 1], units = L->units;
    int rows = (int)((size_t)batch * loom_shape_size(out) / (size_t)units);
    size_t f = bf16_block_workspace(rows, units, in_dim), dx = bf16_block_workspace(rows, in_dim, units),
           dw = bf16_block_workspace(in_dim, units, rows);
    return f > dx ? (f > dw ? f : dw) : (dx > dw ? dx : dw);
}

/* The product in slot `slot` of this call site: on its planned backend (kernels/product.h) in
 * float32, and in bfloat16 when the call is the one planned on oneDNN (its operands rounded whole
 * into the workspace); any other bfloat16 call runs loom's kernel block by block, within the
 * workspace budget (bench/README.md: wide's memory). */
static void product(const loom_op_ctx *c, int slot, bool ta, bool tb, int M, int N, int K, float alpha,
                    const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    const loom_product *p = slot < c->n_products ? &c->products[slot] : NULL;
    if (!c->bf16_ws || loom_product_planned_call(p, true, ta, tb, M, N, K, alpha, lda, ldb, beta, ldc)) {
        loom_layer_product(c, slot, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int mb, nb;
    bf16_block(M, N, K, &mb, &nb);
    for (int i = 0; i < M; i += mb)
        for (int j = 0; j < N; j += nb) {
            /* row i of op(A) is A's column i when A is transposed; column j of op(B) is B's row j */
            const float *a = ta ? A + i : A + (size_t)i * (size_t)lda, *b = tb ? B + (size_t)j * (size_t)ldb : B + j;
            loom_gemm_bf16(ta, tb, M - i < mb ? M - i : mb, N - j < nb ? N - j : nb, K, alpha, a, lda, b, ldb, beta,
                           C + (size_t)i * (size_t)ldc + j, ldc, c->bf16_ws);
        }
}

/* The three products of a step, in their slots: forward, dx, dW (the same shapes whatever the
 * dtype; mixed_bfloat16 makes them bfloat16 products). dx and dW overwrite or accumulate as the
 * engine decides per step: both are planned. */
enum { FORWARD, DX, DW };
static int dense_products(const loom_layer *L, int n_in, const loom_shape *in, const loom_shape *out, int batch,
                          bool bf16, float dw_alpha, loom_product_shape *s) {
    (void)n_in;
    int in_dim = in[0].dims[in[0].rank - 1], units = L->units;
    int rows = (int)((size_t)batch * loom_shape_size(out) / (size_t)units);
    s[FORWARD] = (loom_product_shape){bf16, false, false, rows, units, in_dim, in_dim, units, units, 1.0f, 0, true};
    s[DX] = (loom_product_shape){bf16, false, true, rows, in_dim, units, units, units, in_dim, 1.0f, -1, true};
    s[DW] = (loom_product_shape){bf16, true, false, in_dim, units, rows, in_dim, units, units, dw_alpha, -1, true};
    return 3;
}

static void dense_forward(const loom_layer *L, const loom_op_ctx *c) {
    int in_dim = c->in_shape[0].dims[c->in_shape[0].rank - 1];
    int units = L->units;
    int rows = (int)((size_t)c->batch * loom_shape_size(&c->out_shape) / (size_t)units);
    float *z = loom_act_keeps_preact(L->activation) ? c->scratch : c->out;
    const float *kernel = c->w, *bias = L->dense.use_bias ? c->w + (size_t)in_dim * units : NULL;
    /* the bias joins the pass after the product (with the ReLU's, when there is one) */
    product(c, FORWARD, false, false, rows, units, in_dim, 1.0f, c->in[0], in_dim, kernel, units, 0.0f, z, units);
    bool relu_done = bias && L->activation == LOOM_RELU;
    if (bias) loom_add_bias(z, bias, (size_t)rows, units, relu_done);
    if (L->activation != LOOM_LINEAR && !relu_done) loom_act_forward(L->activation, z, c->out, (size_t)rows, units);
}

static void dense_backward(const loom_layer *L, const loom_op_ctx *c) {
    int in_dim = c->in_shape[0].dims[c->in_shape[0].rank - 1];
    int units = L->units;
    int rows = (int)((size_t)c->batch * loom_shape_size(&c->out_shape) / (size_t)units);
    float *dz = c->dout;
    /* Plain SGD inside the backward (compile.c): sgd_w instead of dw, the step -lr * gradient
     * applied where the gradient is made. */
    float *dw = c->sgd_w ? c->sgd_w : c->dw, step = c->sgd_w ? -c->sgd_lr : 1.0f;
    float *db = dw && L->dense.use_bias ? dw + (size_t)in_dim * units : NULL;
    bool accumulate = c->sgd_w || !c->dw_overwrite; /* SGD steps onto the weights themselves */
    bool act = L->activation != LOOM_LINEAR && !c->dout_is_preact;
    if (act && L->activation == LOOM_RELU && db) { /* dz over dout and db in one pass */
        loom_column_sums(db, accumulate, step, dz, c->out, (size_t)rows, units, units);
        db = NULL;
    } else if (act) { /* dz over dout, in place */
        const float *z = loom_act_keeps_preact(L->activation) ? c->scratch : c->out;
        loom_act_backward_in_place(L->activation, z, c->out, dz, (size_t)rows, units);
    }
    /* dx before the kernel changes (sgd_w): dx += dz K^T (or = when dx holds nothing yet) */
    if (c->din[0])
        product(c, DX, false, true, rows, in_dim, units, 1.0f, dz, units, c->w, units, c->din_overwrite ? 0.0f : 1.0f,
                c->din[0], in_dim);
    if (!dw) return;
    /* dK += step x^T dz ; db += step (column sums of dz), or = when they hold nothing yet */
    product(c, DW, true, false, in_dim, units, rows, step, c->in[0], in_dim, dz, units, accumulate ? 1.0f : 0.0f, dw,
            units);
    if (db) loom_column_sums(db, accumulate, step, dz, NULL, (size_t)rows, units, units);
}

const loom_op loom_op_dense = {
    .class_name = "Dense",
    .base_name = "dense",
    .min_inputs = 1,
    .max_inputs = 1,
    .build = dense_build,
    .scratch_size = dense_scratch,
    .forward = dense_forward,
    .bf16_workspace = dense_bf16_workspace,
    .products = dense_products,
    .backward = dense_backward,
    .mask_mode = LOOM_MASK_KEEP,
};

loom_dense_options loom_dense_defaults(void) {
    loom_dense_options o;
    memset(&o, 0, sizeof o);
    o.use_bias = 1;
    return o;
}

static bool bad_reg(loom_regularizer r) { return !(r.l1 >= 0 && r.l2 >= 0 && isfinite(r.l1) && isfinite(r.l2)); }

loom_layer *loom_dense(loom_graph *g, const char *name, int units, loom_activation act,
                       const loom_dense_options *opt) {
    if (!g || g->err.code) return NULL;
    const char *shown = name ? name : "dense";
    if (units <= 0) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (Dense): units must be > 0, got %d", shown, units);
        return NULL;
    }
    if ((int)act < 0 || act >= LOOM_ACTIVATION_COUNT) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (Dense): unknown activation %d", shown, (int)act);
        return NULL;
    }
    loom_dense_options o = opt ? *opt : loom_dense_defaults();
    if ((int)o.kernel_initializer < 0 || o.kernel_initializer > LOOM_INIT_ONES ||
        (int)o.bias_initializer < 0 || o.bias_initializer > LOOM_INIT_ONES) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT, "%s (Dense): unknown initializer", shown);
        return NULL;
    }
    if (bad_reg(o.kernel_regularizer) || bad_reg(o.bias_regularizer)) {
        loom_set_error(&g->err, LOOM_ERR_ARGUMENT,
                       "%s (Dense): regularizer factors must be >= 0 and finite", shown);
        return NULL;
    }
    loom_layer *L = loom_graph_new_layer(g, &loom_op_dense, name);
    if (!L) return NULL;
    L->units = units;
    L->activation = act;
    L->dense = o;
    return L;
}
