/* graph.h — the layer graph: the op interface every layer class implements, layers with their
 * weights, nodes (one per call site) and tensors (graph.c; internal). Layers and the model build on it */
#ifndef LOOM_GRAPH_H
#define LOOM_GRAPH_H

#include "base/base.h"
#include "kernels/product.h"

#define LOOM_MAX_WEIGHTS 8
#define LOOM_MASKED_INPUTS 4 /* inputs whose masks an op sees (loom_op_ctx in_masks) */

/* ---------------------------------------------------------------- ops (one per layer class) */

/* Everything an op's forward or backward needs for one call site over one batch.
 * Values are row-major with the batch axis first: in[i] holds batch * in_size[i] floats. */
typedef struct loom_op_ctx {
    int batch;
    int n_in;
    const float *const *in;      /* input values */
    float *const *din;           /* input gradients to ACCUMULATE into; din[i] NULL: not needed */
    const loom_shape *in_shape;  /* per-sample input shapes */
    float *out;                  /* output values (forward writes) */
    float *dout;                 /* output gradient: backward reads it and may overwrite it (nothing
                                    reads it after this node's backward) */
    loom_shape out_shape;
    const float *w;              /* the layer's weights, contiguous in layer weight order */
    float *dw;                   /* their gradients, to ACCUMULATE into; NULL: not needed */
    float *scratch;              /* this call site's scratch (scratch_size floats) */
    int training;                /* dropout and friends */
    uint64_t rng_seed, rng_counter; /* an op that draws random numbers keys them with
                                       loom_hash64(rng_seed, rng_counter): unique per (model seed,
                                       step, node); hashed there, not for every node */
    float *state;                /* the layer's weights, writable: forward in training may update
                                    non-trainable state (BatchNormalization's moving statistics) */
    const float *in_mask;        /* Keras mask of input 0: batch x steps, 1 valid / 0 padded; NULL
                                    when the input carries none (recurrent layers skip padded steps) */
    /* Keras masks of inputs 0..LOOM_MASKED_INPUTS-1 (in_masks[0] == in_mask; NULL: none), for
     * ops that read other inputs' masks (MultiHeadAttention: the value's and key's) */
    const float *in_masks[LOOM_MASKED_INPUTS];

    /* ---- Fast paths. Each one is a contract between the engine (core/engine.c, planned in
     * core/compile.c) and the ops that honour it; every other op sees them false / NULL and keeps
     * the plain rule (accumulate into din and dw, dout is dL/d(output)). Gains are medians of
     * interleaved processes of bench/loom_bench at 1 thread, the path switched off against on
     * (measured 2026-12-04 unless dated otherwise; the machine was busy, so only the clear ones
     * count). */

    /* The fused loss: dout already holds dL/d(pre-activation) of this node's final softmax or
     * sigmoid, because the loss read the logits (crossentropy on logits: exact for confident rows,
     * and no softmax backward). Honoured by Dense, the convolutions and Activation. This is also
     * what keeps a confident crossentropy finite, so it is not only a speed path. */
    bool dout_is_preact;
    /* Dense only: din[0] holds no gradient yet (its lifetime starts at this node), so the dx
     * product overwrites it (beta 0) instead of the engine zeroing it first.
     * tiny Adam 1.27x slower without it; tiny SGD 1.04x; mnist-mlp within noise. */
    bool din_overwrite;
    /* Dense called once (dw_sole): dw holds no gradient yet, so the weight products overwrite it
     * and nothing zeroes it first. tiny Adam 8.96 -> 8.66 us when added (commit 0a86eb3); 1.03x
     * slower without it in the run above. */
    bool dw_overwrite;
    /* Dense called once without regularisers, under plain SGD (no momentum, clipping or decay):
     * instead of writing dw the backward applies w -= sgd_lr * gradient to the weights at sgd_w,
     * after their last use for dx. No gradient buffer is written (so its calloc'd pages stay
     * untouched: wide's peak RSS 186 -> 105 MB) and no optimizer pass runs over it. tiny SGD
     * 8.4 -> 7.9 us, mnist-mlp -4 % when added (commit b9f1e20); with dw_overwrite, tiny SGD
     * 1.08x and mnist-mlp SGD 1.10x slower without them in the run above. */
    float *sgd_w;
    float sgd_lr;
    /* mixed_bfloat16 (issue 18): the workspace of the bfloat16 products (the op's bf16_workspace
     * floats at least); NULL: this node computes in float32. */
    float *bf16_ws;
    /* A distributed fit (train/ over dist/): sync_sum adds n doubles over the ranks in place, for
     * statistics over the global batch (BatchNormalization synchronized); NULL in one process.
     * sync_share: the factor this rank's gradients are multiplied by before the ranks' sum (its
     * share of the global batch), so a backward can bring its sums to the global loss's scale. */
    void (*sync_sum)(void *user, double *v, size_t n);
    void *sync_user;
    double sync_share;
    /* issue 18: the products the op declared (loom_op.products), planned on their backends at plan
     * time, and the workspace they share (at least what each needs); slot k is the op's k-th. */
    const loom_product *products;
    int n_products;
    float *product_ws;
} loom_op_ctx;

struct loom_layer;

#define LOOM_OP_MAX_PRODUCTS 8

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
    /* Ops with a bfloat16 path: the floats of workspace (loom_op_ctx.bf16_ws) its products need at
     * this batch size. NULL: the op computes in float32 under any dtype policy. */
    size_t (*bf16_workspace)(const struct loom_layer *L, int n_in, const loom_shape *in, const loom_shape *out,
                             int batch);
    /* The matrix products one call site makes at this batch size, in a fixed order of slots (at
     * most LOOM_OP_MAX_PRODUCTS), so that the engine plans each one's backend once (kernels/
     * product.h); dw_alpha is the alpha of a weight-gradient product (-learning rate under plain
     * SGD inside the backward, else 1). Returns how many it wrote. NULL: the op's products run on
     * the default backends (loom_sgemm, loom_gemm_bf16). */
    int (*products)(const struct loom_layer *L, int n_in, const loom_shape *in, const loom_shape *out, int batch,
                    bool bf16, float dw_alpha, loom_product_shape *shapes);
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
    /* Checks the values of input `input` (n samples of `shape`) before they reach forward, which
     * cannot fail: Embedding refuses ids it cannot look up. The message names the layer, the
     * sample (counted from the first of `in`) and the position. NULL: every value is fine. Called
     * by binding over a whole data array and by the engine over each batch. */
    loom_status (*check_input)(const struct loom_layer *L, int input, const float *in, size_t n,
                               const loom_shape *shape, loom_error *err);
    /* Model files (model_json.c): add the layer's Keras config fields to a cJSON object, and
     * recreate a layer from its Keras config object (NULL with the graph's error set). Layer
     * classes whose files do not provide these are handled in model_json.c itself. */
    bool (*save_config)(const struct loom_layer *L, void *cjson_object);
    struct loom_layer *(*load_config)(struct loom_graph *g, const char *name, const void *cjson_config);
    /* Ops whose forward (training) or backward reduces over the ranks (c->sync_sum): what a rank
     * without samples in a step does instead, joining the same reductions with nothing to add.
     * NULL: the op never reduces. */
    void (*sync_idle)(const struct loom_layer *L, const loom_op_ctx *c, bool backward);
} loom_op;

enum { LOOM_MASK_DROP = 0, LOOM_MASK_KEEP = 1, LOOM_MASK_MAKE = 2 };

/* A weight a layer owns: its place in the graph's flat parameter buffer (and in the gradient
 * buffers of every model over the graph) is `offset`. */
typedef struct loom_weight {
    char name[16];
    loom_shape shape;
    loom_initializer init;
    loom_regularizer reg;
    size_t offset; /* into loom_graph.params (= loom_model.params) and loom_model.grads; placed
                      by the first loom_model_new that uses the layer (layer `placed`) */
    bool non_trainable; /* state such as moving statistics: saved, never given to the optimizer */
    bool non_negative;  /* a variance: negative values are refused when set or loaded */
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
    bool placed;      /* its weights have their offsets in the graph's buffer and their values */
    bool frozen;      /* trainable = false (loom_layer_set_trainable); models read it at compile */
    int dtype_policy; /* loom_dtype_policy: the layer's own, LOOM_POLICY_DEFAULT: the model's */
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
    void *user;                  /* custom layers: the user's definition; stateful recurrent layers:
                                    the states carried between batches (layers/layer_rnn.c). Freed
                                    with the graph */
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

/* Ownership (loom.h "graph ownership"): the caller holds `caller_refs` references (one from
 * loom_graph_new, handed to the first model made; one more per loom_graph_retain) and every live
 * model one (`models`); the graph is freed when both are gone. */
struct loom_graph {
    uint64_t seed;
    loom_error err;
    int n_layers, cap_layers;
    loom_layer **layers;
    int n_nodes, cap_nodes;
    loom_node **nodes;
    /* every placed layer's weights, shared by all models over the graph (models point into it) */
    float *params;
    size_t n_params;
    int caller_refs;
    bool first_ref_given;        /* loom_graph_new's reference went to the first model */
    int n_models, cap_models;
    struct loom_model **models;  /* the live models over this graph (core/model_build.c keeps it) */
    /* loom_model_new refuses an architecture with more parameters (a model file sets it to the
     * values its weight section holds, before anything is allocated); SIZE_MAX: no limit */
    size_t max_params;
    /* Names in O(1): an open-addressing table of layer indices (-1 empty, size a power of two,
     * at most half full), and per auto-name stem the next suffix to try, so naming n layers costs
     * O(n) instead of O(n^2) lookups each O(n). */
    int *name_slots;
    size_t name_cap;
    struct loom_name_stem {
        char stem[LOOM_NAME_MAX + 16];
        int next;
    } *stems;
    int n_stems;
};

/* Frees the graph and everything it owns, whoever holds references (core/model_build.c calls it
 * when the last reference goes). */
void loom_graph_destroy(loom_graph *g);

/* The layer of that name, or NULL. */
loom_layer *loom_graph_find_layer(const loom_graph *g, const char *name);

/* Allocates a layer of the given op in g with the given (possibly NULL) name. NULL on error. */
loom_layer *loom_graph_new_layer(loom_graph *g, const loom_op *op, const char *name);



/* ---- variable time axes (LOOM_DIM_VARIABLE at dims[0]; graph.c) */
/* The lengths loom_call builds a layer at to find what depends on a variable time axis (two
 * primes far apart, so that a stride or pool size below ~4000 still tells them apart). */
#define LOOM_PROBE_STEPS_A 4099
#define LOOM_PROBE_STEPS_B 8209
bool loom_shape_is_variable(const loom_shape *s);
/* equal, a variable first axis matching any length */
bool loom_shape_compatible(const loom_shape *a, const loom_shape *b);

/* The Input layer's op (graph.c). */
extern const loom_op loom_op_input;

#endif
