/* internal.h — structures shared by loom's source files. Not installed, not public. */
#ifndef LOOM_INTERNAL_H
#define LOOM_INTERNAL_H

#include "loom.h"

#include <stdarg.h>
#include <stdbool.h>

#define LOOM_NAME_MAX 64
#define LOOM_ERR_MAX 512
#define LOOM_MAX_WEIGHTS 8

/* Hot element-wise loops are compiled for AVX-512, AVX2 and the baseline, the best chosen at
 * run time (GCC function multi-versioning). Element-wise IEEE arithmetic gives the same bits in
 * every version (no contraction into FMA: the build is ISO C, -ffp-contract=off). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && !defined(__SANITIZE_ADDRESS__)
#define LOOM_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LOOM_VECTOR_CLONES
#endif

/* ---------------------------------------------------------------- errors */

typedef struct loom_error {
    loom_status code;
    char msg[LOOM_ERR_MAX];
} loom_error;

/* Sets code and a printf-formatted message; returns code so callers can `return set_error(...)`. */
loom_status loom_set_error(loom_error *e, loom_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void loom_clear_error(loom_error *e);

/* ---------------------------------------------------------------- shapes */

typedef struct loom_shape {
    int rank;
    int dims[LOOM_MAX_RANK];
} loom_shape;

size_t loom_shape_size(const loom_shape *s);
bool loom_shape_equal(const loom_shape *a, const loom_shape *b);
/* "(None, 4, 8)" into buf. */
const char *loom_shape_str(const loom_shape *s, char *buf, size_t len);

/* ---------------------------------------------------------------- big float buffers */

/* n zeroed floats starting on a cache line (LOOM_ALIGN_FLOATS floats, 64 bytes), freed with
 * loom_floats_free. Parameters, gradients, optimizer state and the activation arena live in these: a
 * 512-bit load from a row that starts mid-line touches two lines. They come from calloc, whose
 * large blocks are the system's untouched zero pages: a buffer that is never written (the gradients
 * of layers plain SGD updates in the backward) takes no memory. NULL when out of memory. */
#define LOOM_ALIGN_FLOATS 16
float *loom_floats_zeroed(size_t n);
void loom_floats_free(float *p);
/* n rounded up to whole cache lines */
static inline size_t loom_align_floats(size_t n) { return (n + LOOM_ALIGN_FLOATS - 1) / LOOM_ALIGN_FLOATS * LOOM_ALIGN_FLOATS; }

/* ---------------------------------------------------------------- random numbers */

/* Counter-based: the value depends only on (key, counter), so results never depend on threads or
 * on the order of calls. */
uint64_t loom_hash64(uint64_t key, uint64_t counter);
float loom_uniform01(uint64_t key, uint64_t counter); /* in [0, 1) */
float loom_normal(uint64_t key, uint64_t counter);    /* N(0, 1) */

/* ---------------------------------------------------------------- ops (one per layer class) */

/* Everything an op's forward or backward needs for one call site over one batch.
 * Values are row-major with the batch axis first: in[i] holds batch * in_size[i] floats. */
typedef struct loom_op_ctx {
    int batch;
    int n_in;
    const float *const *in;      /* input values */
    float *const *din;           /* input gradients to ACCUMULATE into; din[i] NULL: not needed */
    bool din_overwrite;          /* Dense only: din[0] holds no gradient yet, overwrite it */
    const loom_shape *in_shape;  /* per-sample input shapes */
    float *out;                  /* output values (forward writes) */
    float *dout;                 /* output gradient: backward reads it and may overwrite it (nothing
                                    reads it after this node's backward) */
    loom_shape out_shape;
    const float *w;              /* the layer's weights, contiguous in layer weight order */
    float *dw;                   /* their gradients, to ACCUMULATE into; NULL: not needed */
    bool dw_overwrite;           /* Dense only: dw holds no gradient yet, overwrite it */
    float *sgd_w;                /* instead of dw (Dense only, compile.c): apply plain SGD to the
                                    weights here, w -= sgd_lr * gradient, after their last use */
    float sgd_lr;
    float *scratch;              /* this call site's scratch (scratch_size floats) */
    int training;                /* dropout and friends */
    uint64_t rng_seed, rng_counter; /* an op that draws random numbers keys them with
                                       loom_hash64(rng_seed, rng_counter): unique per (model seed,
                                       step, node); hashed there, not for every node */
    bool dout_is_preact;         /* backward: dout is dL/d(pre-activation) (fused loss) */
    float *state;                /* the layer's weights, writable: forward in training may update
                                    non-trainable state (BatchNormalization's moving statistics) */
    const float *in_mask;        /* Keras mask of input 0: batch x steps, 1 valid / 0 padded; NULL
                                    when the input carries none (recurrent layers skip padded steps) */
} loom_op_ctx;

struct loom_layer;

typedef struct loom_op {
    const char *class_name; /* Keras class name: "Dense" */
    const char *base_name;  /* auto-name stem: "dense" */
    int min_inputs, max_inputs;
    /* Checks input shapes and writes the output shape. On the first call it also declares the
     * weights (shapes, initialisers, regularisers) through loom_layer_add_weight. */
    loom_status (*build)(struct loom_layer *L, int n_in, const loom_shape *in, loom_shape *out,
                         loom_error *err);
    /* Scratch floats one call site needs at this batch size (NULL: none). */
    size_t (*scratch_size)(const struct loom_layer *L, int n_in, const loom_shape *in,
                           const loom_shape *out, int batch);
    void (*forward)(const struct loom_layer *L, const loom_op_ctx *c);
    /* Must accumulate into din[] and dw (never overwrite): a tensor used twice sums. (The engine
     * asks Dense alone to overwrite a din its backward is the first to write: din_overwrite.) */
    void (*backward)(const struct loom_layer *L, const loom_op_ctx *c);
    /* Masks (Keras semantics; a mask covers the first non-batch axis, "steps"):
     * LOOM_MASK_DROP: the output carries no mask. LOOM_MASK_KEEP: the output keeps input 0's mask
     * when it still has the same steps axis (Dense on sequences, Activation, Dropout, recurrent
     * layers with return_sequences). LOOM_MASK_MAKE: make_mask computes it (Embedding mask_zero). */
    int mask_mode;
    /* Writes batch x steps mask values from the inputs (LOOM_MASK_MAKE only; may decide per
     * layer: return false when this layer makes no mask, e.g. mask_zero off). */
    bool (*make_mask)(const struct loom_layer *L, const loom_op_ctx *c, float *mask);
    /* Model files (model_json.c): add the layer's Keras config fields to a cJSON object, and
     * recreate a layer from its Keras config object (NULL with the graph's error set). Layer
     * classes whose files do not provide these are handled in model_json.c itself. */
    bool (*save_config)(const struct loom_layer *L, void *cjson_object);
    struct loom_layer *(*load_config)(struct loom_graph *g, const char *name, const void *cjson_config);
} loom_op;

enum { LOOM_MASK_DROP = 0, LOOM_MASK_KEEP = 1, LOOM_MASK_MAKE = 2 };

/* A weight a layer owns: its place in the model's flat buffers is `offset`. */
typedef struct loom_weight {
    char name[16];
    loom_shape shape;
    loom_initializer init;
    loom_regularizer reg;
    size_t offset; /* into loom_model.params / grads, set by loom_model_new */
    bool non_trainable; /* state such as moving statistics: saved, never given to the optimizer */
} loom_weight;

typedef struct loom_layer {
    struct loom_graph *graph;
    const loom_op *op;
    char name[LOOM_NAME_MAX];
    int index;        /* creation order in the graph */
    bool built;
    int n_calls;
    loom_shape built_in[8]; /* input shapes seen at the first call (shared calls must match) */
    int built_n_in;
    int n_weights;
    loom_weight weights[LOOM_MAX_WEIGHTS];
    /* configuration (fields a class does not use stay 0) */
    loom_activation activation;
    int units;
    int axis;
    float rate;
    loom_shape target;     /* Reshape */
    loom_dense_options dense;
    /* generic configuration for the other layer classes; each op documents its use */
    int iarg[12];
    float farg[4];
    struct loom_layer *inner[2]; /* wrapped layers (Bidirectional: forward, backward copies) */
    void *user;                  /* custom layers: the user's definition */
} loom_layer;

/* Declares a weight during build; returns its index. */
int loom_layer_add_weight(loom_layer *L, const char *name, const loom_shape *shape,
                          loom_initializer init, loom_regularizer reg);

/* A node is one call of a layer; its single output is the tensor. */
typedef struct loom_node {
    int id;
    loom_layer *layer;
    int n_in;
    struct loom_node **in;
    loom_shape out_shape;
    struct loom_tensor *tensor;
    const float *input_data; /* Input nodes: where the batch comes from (engine) */
} loom_node;

struct loom_tensor {
    loom_node *node;
};

struct loom_graph {
    uint64_t seed;
    loom_error err;
    int n_layers, cap_layers;
    loom_layer **layers;
    int n_nodes, cap_nodes;
    loom_node **nodes;
};

/* Allocates a layer of the given op in g with the given (possibly NULL) name. NULL on error. */
loom_layer *loom_graph_new_layer(loom_graph *g, const loom_op *op, const char *name);

/* The op tables. */
extern const loom_op loom_op_input, loom_op_dense, loom_op_activation, loom_op_dropout,
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

/* Internal initialiser: an LSTM bias with Keras's unit_forget_bias (ones on the forget gate). */
#define LOOM_INIT_UNIT_FORGET_BIAS ((loom_initializer)100)

/* ---------------------------------------------------------------- activations (activations.c) */

/* y = act(x) over rows of length `dim` (softmax needs the row). In place allowed (y == x). */
void loom_act_forward(loom_activation a, const float *x, float *y, size_t rows, int dim);
/* dx += dy * act'(x) given x (pre-activation) and y (post-activation). */
void loom_act_backward(loom_activation a, const float *x, const float *y, const float *dy,
                       float *dx, size_t rows, int dim);
/* dy = dy * act'(x) in place (x may be NULL unless loom_act_needs_input): how Dense and the
 * convolutions turn their output gradient into the pre-activation's without another buffer. */
void loom_act_backward_in_place(loom_activation a, const float *x, const float *y, float *dy, size_t rows,
                                int dim);
/* Does the backward need x (pre-activation), or is y enough? */
bool loom_act_needs_input(loom_activation a);
/* Must a layer with this activation keep its pre-activation z after forward (never for linear)?
 * When the backward needs it, or when a fused loss may read it as logits (softmax, sigmoid). Otherwise z is written
 * into the output and activated in place: one buffer less per layer. */
bool loom_act_keeps_preact(loom_activation a);

/* ---------------------------------------------------------------- matrix products (gemm.c) */

/* C = alpha * op(A) . op(B) + beta * C, row-major; op(A) is M x K, op(B) is K x N. A large product
 * is cut into blocks of C chosen from its shape alone and shared out on loom's pool (gemm.c). */
void loom_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
                int lda, const float *B, int ldb, float beta, float *C, int ldc);
/* z[r][0..n) = bias[0..n) (zeros when bias is NULL) for `rows` rows: the bias a product then
 * accumulates onto. Split over loom's threads by rows. */
void loom_fill_rows(float *z, const float *bias, size_t rows, int n);
/* z[r][:] += bias in place, or with relu z[r][:] = relu(z[r][:] + bias): a product's bias (and
 * ReLU) in one pass over its output. */
void loom_add_bias(float *z, const float *bias, size_t rows, int n, bool relu);
/* db[c] += sum over the rows of dz[r][c] (a bias's gradient), split over loom's threads by columns
 * (the same bits at any thread count). */
void loom_add_column_sums(float *db, const float *dz, size_t rows, int cols);
/* db[c] = (accumulate ? db[c] : 0) + scale * (the sum over rows of dz[r][c]) for a matrix whose
 * rows are `ld` floats apart; with relu_y (same layout) ReLU's backward first, in place in the same
 * pass: dz = 0 where relu_y <= 0. Split by columns, as loom_add_column_sums. */
void loom_column_sums(float *db, bool accumulate, float scale, float *dz, const float *relu_y, size_t rows, int cols,
                      int ld);
/* Plain loops with the same contract: the build without OpenBLAS, and the tests' reference. */
void loom_sgemm_portable(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
                         int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* ---------------------------------------------------------------- losses (losses.c) */

typedef enum loom_loss_kind {
    LOSS_NONE = 0,
    LOSS_MSE,
    LOSS_MAE,
    LOSS_BCE,
    LOSS_CCE,
    LOSS_SCCE,
    LOSS_HUBER,
    LOSS_KLD,
    LOSS_COSINE,
    LOSS_HINGE,
    LOSS_LOG_COSH,
    LOSS_POISSON,
    LOSS_CUSTOM
} loom_loss_kind;

/* A resolved loss. */
typedef struct loom_loss_impl {
    loom_loss_kind kind;
    char name[LOOM_NAME_MAX]; /* canonical Keras name, used in messages */
    bool from_logits;
    float label_smoothing;
    float delta;
    loom_loss_fn fn;
    void *user;
} loom_loss_impl;

/* Resolves a public loom_loss; LOOM_ERR_NAME with the known names if unknown. */
loom_status loom_loss_resolve(const loom_loss *spec, loom_loss_impl *out, loom_error *err);
/* Target elements per row for a row of `dim` predictions (1 for sparse, else dim). */
int loom_loss_target_dim(const loom_loss_impl *l, int dim);

/* Which fused path applies: the loss takes the logits z of a final softmax (CCE/SCCE) or sigmoid
 * (BCE) activation instead of its probabilities. */
bool loom_loss_can_fuse(const loom_loss_impl *l, loom_activation final_act);

/* Computes one output's loss over n_rows rows of length dim:
 *   values per row v_r (scratch `values`, n_rows floats),
 *   L = sum_r v_r * s_r / n_rows            (Keras sum_over_batch_size; s_r = 1 when sw NULL),
 *   grad (if not NULL) = dL/dpred           (n_rows*dim floats, overwritten).
 * rows_per_sample: rows of one sample (sample weights repeat over them).
 * pred is the probabilities, or the logits when `fused` (then grad is dL/dlogits).
 * softmax: when fused after a softmax, that softmax's output (the output node's value), which
 * spares a crossentropy its exponentials; NULL otherwise (or to compute them from the logits).
 * Returns LOOM_OK or an error (a user loss that failed, a target out of range) into err;
 * *loss receives L. */
loom_status loom_loss_compute(const loom_loss_impl *l, const float *target, const float *pred,
                              const float *softmax, size_t n_rows, int dim, size_t rows_per_sample,
                              const float *sample_weight, bool fused, float *values, float *grad,
                              float *loss, loom_error *err);

/* ---------------------------------------------------------------- metrics (metrics.c) */

typedef enum loom_metric_kind {
    METRIC_BINARY_ACCURACY = 0,
    METRIC_CATEGORICAL_ACCURACY,
    METRIC_SPARSE_CATEGORICAL_ACCURACY,
    METRIC_TOP_K,
    METRIC_SPARSE_TOP_K,
    METRIC_MAE,
    METRIC_MSE,
    METRIC_RMSE
} loom_metric_kind;

typedef struct loom_metric_impl {
    loom_metric_kind kind;
    int output;               /* output index */
    int k;                    /* top-k */
    char log_name[2 * LOOM_NAME_MAX];
    double sum, count;        /* running state */
} loom_metric_impl;

/* Resolves a metric name for an output whose loss is `loss` (may be NULL or LOSS_NONE) and
 * whose per-row width is dim ("accuracy" depends on both, as in Keras). */
loom_status loom_metric_resolve(const char *name, const loom_loss_impl *loss, int dim,
                                int target_dim, loom_metric_impl *out, loom_error *err);
/* Accumulates a batch: target rows of target_dim, pred rows of dim; row_weight (NULL: all 1)
 * weighs each row, as an output's mask does in Keras (0 = padding, left out). */
void loom_metric_update(loom_metric_impl *mt, const float *target, const float *pred,
                        size_t n_rows, int dim, int target_dim, const float *row_weight);
void loom_metric_reset(loom_metric_impl *mt);
float loom_metric_result(const loom_metric_impl *mt);

/* ---------------------------------------------------------------- optimizer (optimizer.c) */

/* Optimizer slots per parameter (m, v, vhat, ...): 0..3. */
int loom_optimizer_slots(const loom_optimizer *o);
/* One optimizer step over n_tensors weight tensors laid out in the flat buffers:
 * tensors [offset[i], offset[i]+size[i]) with active[i] false are skipped entirely (no gradient).
 * slots: loom_optimizer_slots(o) * n_params floats, slot j of parameter p at j*n_params + p.
 * iterations: steps done before this one; lr: the rate for this step. Applies clipping, weight
 * decay and the update rule exactly as Keras 3. grads may be modified (clipping). */
void loom_optimizer_apply(const loom_optimizer *o, float lr, long iterations, float *params,
                          float *grads, float *slots, size_t n_params, int n_tensors,
                          const size_t *offset, const size_t *size, const bool *active);
/* Validates an optimizer's fields (a message names the field). */
loom_status loom_optimizer_check(const loom_optimizer *o, loom_error *err);

/* ---------------------------------------------------------------- initialisers (init.c) */

/* Fills w (shape s) with initialiser `init` (LOOM_INIT_DEFAULT must be resolved by the caller). */
void loom_init_fill(loom_initializer init, const loom_shape *s, float *w, uint64_t key);

#endif
