/*
 * loom.h — the one public header of loom: Keras-style functional models in C with several inputs
 * and outputs, a loss per output, a weight per loss, and one backward pass over the weighted sum.
 *
 * Life cycle
 *   1. loom_graph_new()            a builder that owns layers and symbolic tensors
 *   2. loom_input(), loom_dense(), loom_call() ...   build the graph (functional API)
 *   3. loom_model_new()            validate the graph, order it, place the layers' weights in the
 *                                  graph's flat parameter buffer; on success the model holds the
 *                                  graph (several models may share one: see "graph ownership")
 *   4. loom_compile()              losses, loss weights, metrics, optimizer
 *   5. loom_fit() / loom_fit_generator() / loom_evaluate() / loom_predict() /
 *      loom_train_on_batch(); loom_gradients() / loom_loss_gradients() / loom_diagnose() to look
 *      at how the losses share the network
 *   6. loom_model_save() / loom_model_load() (exact resume), loom_model_free()
 *
 * Errors. Every call that can fail returns a loom_status (or NULL) and leaves a message on the
 * handle it was given: loom_graph_error() for building, loom_model_error() afterwards. Messages
 * name the layer, output or file at fault. Building is "sticky": once a graph call fails, later
 * calls on that graph return NULL and keep the first message, so a whole graph can be written
 * without checks and tested once at loom_model_new(). The library never exits, aborts or prints
 * unless printing was asked for (verbose > 0).
 *
 * Shapes exclude the batch axis, as in Keras: loom_input(g, "x", 1, (int[]){64}) is (None, 64).
 * Data are float32, C order, one sample after another.
 *
 * What is minimised:  total = sum_k w_k * L_k  +  sum of regularisation penalties (unweighted).
 * Each L_k reaches only the layers on a path from the inputs to output k; gradients at a fork are
 * summed; a layer called twice has one set of weights that receives the sum over its call sites.
 */
#ifndef LOOM_H
#define LOOM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- version: kept equal to CMake's project(VERSION) and CHANGELOG.md by tests/test_version.c */
#define LOOM_VERSION_MAJOR 0
#define LOOM_VERSION_MINOR 1
#define LOOM_VERSION_PATCH 0
#define LOOM_VERSION "0.1.0"
/* One number for #if comparisons: 10000 * major + 100 * minor + patch (0.1.0 is 100). */
#define LOOM_VERSION_NUMBER (LOOM_VERSION_MAJOR * 10000 + LOOM_VERSION_MINOR * 100 + LOOM_VERSION_PATCH)
/* The version of the library the program runs with, "MAJOR.MINOR.PATCH": with the shared
 * library it may differ from the LOOM_VERSION the program was compiled against. */
const char *loom_version(void);

#define LOOM_MAX_RANK 4 /* per-sample rank, batch axis excluded */
#define LOOM_MAX_OUTPUTS 64

/* ---------------------------------------------------------------- status codes */

typedef enum loom_status {
    LOOM_OK = 0,
    LOOM_ERR_ARGUMENT,  /* a bad argument: NULL, out of range, unknown enum */
    LOOM_ERR_SHAPE,     /* shapes that do not fit together */
    LOOM_ERR_GRAPH,     /* a graph that cannot become a model (disconnected, cyclic, ...) */
    LOOM_ERR_NAME,      /* an unknown or duplicated name (layer, output, loss, metric) */
    LOOM_ERR_COUNT,     /* a list of the wrong length */
    LOOM_ERR_DATA,      /* bad data: empty, mismatched sample counts, wrong sizes */
    LOOM_ERR_NAN,       /* a loss became NaN or infinite (TerminateOnNaN) */
    LOOM_ERR_MEMORY,    /* an allocation failed */
    LOOM_ERR_STATE,     /* a call in the wrong state (fit before compile, ...) */
    LOOM_ERR_CALLBACK,  /* a user callback asked to stop with an error */
    LOOM_ERR_IO,        /* a file could not be read or written */
    LOOM_ERR_DIST       /* distributed training: MPI missing or failing, or another rank stopped */
} loom_status;

/* A short constant name for a status ("LOOM_ERR_SHAPE"). */
const char *loom_status_name(loom_status s);

/* Threads used by loom: one pool runs its loops (optimizer update, convolution lowering, pooling,
 * activations, the recurrent layers' gates, split over the batch) and shares out blocks of every
 * large matrix product. Default, as PyTorch and TensorFlow: every core the process may run on (its
 * CPU affinity), or LOOM_NUM_THREADS from the environment when that is a whole number 1..1024
 * (read at loom's first parallel loop; an invalid value is ignored); loom_set_num_threads
 * overrides both. The same seed gives bit-identical results at a fixed thread count, and in fact
 * at ANY thread count: blocks depend on the product's shape only, never on the threads, so a
 * program that needs reproducible bits across machines with different core counts may still set a
 * count to be explicit. (On one kind of CPU: OpenBLAS's kernels and loom's AVX-512 paths are chosen
 * for the CPU that runs them, and another may round differently.)
 * OpenBLAS itself is set to one thread (process-wide, by this call or by loom's first product), so
 * its own workers never compete with loom's; a program that uses OpenBLAS directly as well may
 * set its count again with openblas_set_num_threads, at the price of that bit-identity.
 * LOOM_ERR_ARGUMENT outside 1..1024. Process-wide. loom_get_num_threads: the count in force. */
loom_status loom_set_num_threads(int n);
int loom_get_num_threads(void);

/* ---------------------------------------------------------------- opaque handles */

typedef struct loom_graph loom_graph;       /* builder: owns layers, tensors and their weights */
typedef struct loom_layer loom_layer;       /* a layer: has weights, may be called many times */
typedef struct loom_tensor loom_tensor;     /* a symbolic tensor: one output of one layer call */
typedef struct loom_model loom_model;       /* a compiled functional model */
typedef struct loom_history loom_history;   /* per-epoch logs returned by fit / evaluate */
typedef struct loom_callback loom_callback; /* a training callback */
typedef struct loom_logs loom_logs;         /* the current logs passed to callbacks */

/* ---------------------------------------------------------------- graph building */

/* Creates an empty graph. The seed drives weight initialisation and dropout. NULL if out of memory. */
loom_graph *loom_graph_new(uint64_t seed);
/* Graph ownership (reference counted). loom_graph_new gives the caller one reference; the first
 * successful loom_model_new takes it over, and every live model holds one, so the graph (and the
 * weights all its models share) is freed with the last of its models, in whatever order they are
 * freed. loom_graph_free releases a reference of the caller's: on a graph that never became a model
 * it frees it; on a graph its models hold (without loom_graph_retain) it does nothing. A caller
 * that wants the graph to outlive its models (to make a new model later) calls loom_graph_retain
 * and then owes one loom_graph_free, before or after freeing the models. NULL is allowed. */
void loom_graph_free(loom_graph *g);
/* Takes a reference of the caller's on g (see loom_graph_free); returns g. */
loom_graph *loom_graph_retain(loom_graph *g);
/* The first error met while building (LOOM_OK if none) and its message ("" if none). */
loom_status loom_graph_status(const loom_graph *g);
const char *loom_graph_error(const loom_graph *g);

/* A symbolic input of the given per-sample shape (rank 1..LOOM_MAX_RANK, every dim > 0).
 * name may be NULL ("input_layer", "input_layer_1", ...).
 * dims[0] may be LOOM_DIM_VARIABLE: a sequence whose number of steps (Keras's
 * Input(shape=(None, ...))) is fixed per batch, not at build; see "variable-length sequences". Any
 * other dimension must be > 0 (LOOM_ERR_SHAPE naming the input). */
#define LOOM_DIM_VARIABLE (-1)
loom_tensor *loom_input(loom_graph *g, const char *name, int rank, const int *dims);

/* Activations, as keras.activations (gelu: exact erf form; elu: alpha 1; leaky_relu: slope 0.2). */
typedef enum loom_activation {
    LOOM_LINEAR = 0,
    LOOM_RELU,
    LOOM_SIGMOID,
    LOOM_TANH,
    LOOM_SOFTMAX, /* over the last axis */
    LOOM_GELU,
    LOOM_ELU,
    LOOM_LEAKY_RELU,
    LOOM_SOFTPLUS,
    LOOM_SWISH,
    LOOM_HARD_SIGMOID,        /* Keras 3: clip(x / 6 + 0.5, 0, 1) */
    LOOM_HARD_SIGMOID_KERAS2, /* Keras 2's hard_sigmoid, clip(0.2 x + 0.5, 0, 1) ("hard_sigmoid_keras2";
                                 the importer picks it for Keras 2 files) */
    LOOM_ACTIVATION_COUNT
} loom_activation;
/* The Keras name of an activation ("relu"), and the reverse (-1 when unknown). */
const char *loom_activation_name(loom_activation a);
int loom_activation_from_name(const char *name);

/* Weight initialisers (Keras formulas; fans as keras.initializers compute them). */
typedef enum loom_initializer {
    LOOM_INIT_DEFAULT = 0, /* the layer's Keras default: glorot_uniform kernels, zero biases */
    LOOM_INIT_GLOROT_UNIFORM,
    LOOM_INIT_GLOROT_NORMAL,
    LOOM_INIT_HE_UNIFORM,
    LOOM_INIT_HE_NORMAL,
    LOOM_INIT_LECUN_UNIFORM,
    LOOM_INIT_LECUN_NORMAL,
    LOOM_INIT_ZEROS,
    LOOM_INIT_ONES,
    LOOM_INIT_ORTHOGONAL,   /* Keras Orthogonal(gain 1): recurrent kernels */
    LOOM_INIT_UNIFORM       /* Keras RandomUniform(-0.05, 0.05): embeddings */
} loom_initializer;

/* L1/L2 penalty on a weight: l1*sum|w| + l2*sum w^2 (no 1/2), added to the total unweighted.
 * {0, 0} means none. */
typedef struct loom_regularizer {
    float l1;
    float l2;
} loom_regularizer;

/* Options of a Dense layer. Pass NULL for Keras's defaults, or start from loom_dense_defaults()
 * and change fields (a zero-filled struct means no bias; zero initialisers mean the defaults). */
typedef struct loom_dense_options {
    int use_bias;
    loom_initializer kernel_initializer;
    loom_initializer bias_initializer;
    loom_regularizer kernel_regularizer;
    loom_regularizer bias_regularizer;
} loom_dense_options;
/* Keras's Dense defaults: use_bias 1, glorot_uniform kernel, zero bias, no regularisers. */
loom_dense_options loom_dense_defaults(void);

/* Layer constructors. name may be NULL: Keras-style unique names are generated ("dense",
 * "dense_1", ...). A layer name must be unique in its graph. Each returns NULL on error. */

/* y = act(x . kernel + bias) over the last axis; kernel (in, units), bias (units). opt NULL = defaults. */
loom_layer *loom_dense(loom_graph *g, const char *name, int units, loom_activation act,
                       const loom_dense_options *opt);
/* y = act(x), element-wise (softmax over the last axis). */
loom_layer *loom_activation_layer(loom_graph *g, const char *name, loom_activation act);
/* Inverted dropout during training (kept units scaled by 1/(1-rate)); identity otherwise.
 * 0 <= rate < 1. The mask stream follows the graph seed. */
loom_layer *loom_dropout(loom_graph *g, const char *name, float rate);
/* Element-wise merges of two or more tensors of one shape. Subtract takes exactly two. */
loom_layer *loom_add(loom_graph *g, const char *name);
loom_layer *loom_subtract(loom_graph *g, const char *name);
loom_layer *loom_multiply(loom_graph *g, const char *name);
/* Joins tensors along axis (Keras numbering: -1 = last, 1 = first non-batch axis; 0 is refused). */
loom_layer *loom_concatenate(loom_graph *g, const char *name, int axis);
/* (d1, ..., dr) -> (d1*...*dr). */
loom_layer *loom_flatten(loom_graph *g, const char *name);
/* To a new per-sample shape with the same element count; one dim may be -1 (inferred). */
loom_layer *loom_reshape(loom_graph *g, const char *name, int rank, const int *dims);

/* ---- convolution and spatial layers (channels_last, as Keras's default: (steps, channels) for
 * 1-D, (rows, cols, channels) for 2-D). Strides and pool sizes of 0 take Keras's default. */
typedef enum loom_padding { LOOM_PADDING_VALID = 0, LOOM_PADDING_SAME } loom_padding;

/* Options of convolution layers; NULL = Keras defaults (bias on, glorot_uniform kernel, zero bias). */
typedef struct loom_conv_options {
    int use_bias;
    loom_initializer kernel_initializer;
    loom_initializer bias_initializer;
    loom_regularizer kernel_regularizer;
    loom_regularizer bias_regularizer;
} loom_conv_options;
loom_conv_options loom_conv_defaults(void);

/* Conv1D: kernel (kernel_size, in_channels, filters). stride and dilation >= 1 (0 = 1). */
loom_layer *loom_conv1d(loom_graph *g, const char *name, int filters, int kernel_size, int stride,
                        loom_padding padding, int dilation, loom_activation act, const loom_conv_options *opt);
/* Conv2D: kernel (kh, kw, in_channels, filters). */
loom_layer *loom_conv2d(loom_graph *g, const char *name, int filters, int kh, int kw, int stride_h,
                        int stride_w, loom_padding padding, int dilation_h, int dilation_w,
                        loom_activation act, const loom_conv_options *opt);
/* Conv2DTranspose: kernel (kh, kw, filters, in_channels), Keras's output-size rule (no output_padding). */
loom_layer *loom_conv2d_transpose(loom_graph *g, const char *name, int filters, int kh, int kw, int stride_h,
                                  int stride_w, loom_padding padding, loom_activation act,
                                  const loom_conv_options *opt);
/* DepthwiseConv2D: kernel (kh, kw, in_channels, depth_multiplier); output channels in*multiplier. */
loom_layer *loom_depthwise_conv2d(loom_graph *g, const char *name, int kh, int kw, int stride_h, int stride_w,
                                  loom_padding padding, int depth_multiplier, loom_activation act,
                                  const loom_conv_options *opt);
/* Pooling; stride 0 = pool size (Keras). Average pooling with SAME padding averages over the
 * valid entries only, as Keras. */
loom_layer *loom_max_pooling1d(loom_graph *g, const char *name, int pool, int stride, loom_padding padding);
loom_layer *loom_average_pooling1d(loom_graph *g, const char *name, int pool, int stride, loom_padding padding);
loom_layer *loom_max_pooling2d(loom_graph *g, const char *name, int pool_h, int pool_w, int stride_h,
                               int stride_w, loom_padding padding);
loom_layer *loom_average_pooling2d(loom_graph *g, const char *name, int pool_h, int pool_w, int stride_h,
                                   int stride_w, loom_padding padding);
loom_layer *loom_global_average_pooling1d(loom_graph *g, const char *name);
loom_layer *loom_global_max_pooling1d(loom_graph *g, const char *name);
loom_layer *loom_global_average_pooling2d(loom_graph *g, const char *name);
loom_layer *loom_global_max_pooling2d(loom_graph *g, const char *name);
/* UpSampling2D, nearest neighbour. */
loom_layer *loom_upsampling2d(loom_graph *g, const char *name, int size_h, int size_w);
loom_layer *loom_zero_padding2d(loom_graph *g, const char *name, int top, int bottom, int left, int right);
loom_layer *loom_cropping2d(loom_graph *g, const char *name, int top, int bottom, int left, int right);

/* ---- normalisation, embeddings, sequences and attention */

/* BatchNormalization: normalises over every axis but `axis` (Keras numbering, -1 = channels).
 * Training uses the batch statistics and updates the moving mean/variance (non-trainable,
 * saved): moving = moving * momentum + batch * (1 - momentum); inference uses the moving ones.
 * With a Keras mask on (steps, channels) inputs (channels last), the training statistics cover
 * the valid steps only (Keras 3's masked moments); every step is normalised. */
typedef struct loom_batchnorm_options {
    int axis;        /* -1 */
    float momentum;  /* 0.99 */
    float epsilon;   /* 1e-3 */
    int center;      /* beta (1) */
    int scale;       /* gamma (1) */
    int synchronized; /* 0: in a distributed fit each rank normalises with its own batch's
                         statistics; 1 (Keras's synchronized=True, TF's SyncBatchNormalization):
                         with the global batch's, reduced over the ranks (forward and backward),
                         so N ranks train what one process trains. One process: no difference. */
} loom_batchnorm_options;
loom_batchnorm_options loom_batchnorm_defaults(void);
loom_layer *loom_batch_normalization(loom_graph *g, const char *name, const loom_batchnorm_options *opt);
/* LayerNormalization over the last axis (epsilon 0 means Keras's 1e-3). */
loom_layer *loom_layer_normalization(loom_graph *g, const char *name, float epsilon, int center, int scale);
/* LayerNormalization over several axes (Keras axis=[...], 1-based or negative): they must be the
 * n_axes trailing axes of the input, normalised together; gamma and beta have their shape. */
loom_layer *loom_layer_normalization_axes(loom_graph *g, const char *name, int n_axes, const int *axes, float epsilon,
                                          int center, int scale);
/* Embedding: integer ids (given as floats, 0 <= id < input_dim) -> vectors of output_dim;
 * RandomUniform(-0.05, 0.05) init. mask_zero: id 0 is padding and its steps are masked for the
 * layers after it (recurrent layers skip them, losses over sequences ignore them). */
loom_layer *loom_embedding(loom_graph *g, const char *name, int input_dim, int output_dim, int mask_zero);

/* Recurrent layers on (steps, features) inputs, Keras defaults and gate order (LSTM i, f, c, o;
 * GRU z, r, h with reset_after). Kernels (features, gates*units), recurrent kernels
 * (units, gates*units) orthogonal, bias (gates*units) or GRU reset_after (2, 3*units). */
typedef struct loom_rnn_options {
    int return_sequences;             /* output (steps, units) instead of the last state (units) */
    int go_backwards;
    int use_bias;                     /* 1 */
    loom_activation activation;       /* tanh */
    loom_activation recurrent_activation; /* sigmoid (LSTM, GRU) */
    int unit_forget_bias;             /* LSTM: forget-gate bias starts at 1 (1) */
    int reset_after;                  /* GRU: 1 (Keras 2+ default) */
    float recurrent_dropout;          /* 0; in training, drops units of h_prev where it enters the
                                         recurrent products, one mask per sample for the whole
                                         sequence, kept units scaled by 1/(1-rate) (Keras 3) */
    int stateful;                     /* 0; 1: a batch's final states start the next batch (sample
                                         b continues sample b; no gradient crosses batches), until
                                         loom_layer_reset_states. Fit with shuffle off. */
    int batch_size;                   /* stateful: the largest batch (Keras's fixed batch size); a
                                         smaller (last) batch continues the first rows */
} loom_rnn_options;
loom_rnn_options loom_rnn_defaults(void);
loom_layer *loom_simple_rnn(loom_graph *g, const char *name, int units, const loom_rnn_options *opt);
loom_layer *loom_lstm(loom_graph *g, const char *name, int units, const loom_rnn_options *opt);
loom_layer *loom_gru(loom_graph *g, const char *name, int units, const loom_rnn_options *opt);
/* ---- stateful recurrent layers (loom_rnn_options.stateful) */
/* Zeroes a stateful layer's carried states (Keras reset_states); an error for other layers. */
loom_status loom_layer_reset_states(loom_layer *rnn);
/* Zeroes the carried states of every stateful layer of the model (Keras Model.reset_states). */
loom_status loom_model_reset_states(loom_model *m);
/* Bidirectional: runs a recurrent layer (not yet called) forwards and a copy of it backwards and
 * merges them (concat default). The wrapped layer belongs to the wrapper. */
typedef enum loom_merge_mode { LOOM_MERGE_CONCAT = 0, LOOM_MERGE_SUM, LOOM_MERGE_MUL, LOOM_MERGE_AVE } loom_merge_mode;
loom_layer *loom_bidirectional(loom_graph *g, const char *name, loom_layer *rnn, loom_merge_mode mode);
/* TimeDistributed: applies a layer (not yet called; single input) to every step of axis 1. */
loom_layer *loom_time_distributed(loom_graph *g, const char *name, loom_layer *inner);

/* MultiHeadAttention (Keras): call with loom_call_n(layer, 2, {query, value}) or 3,
 * {query, value, key}; self-attention is {x, x}. Output (query steps, query features).
 * value_dim 0 = key_dim. causal: each query step attends to key steps <= its own. */
loom_layer *loom_multi_head_attention(loom_graph *g, const char *name, int num_heads, int key_dim, int value_dim,
                                      int use_bias, int causal);

/* Permute the non-batch axes: dims is a permutation of 1..rank (Keras numbering). */
loom_layer *loom_permute(loom_graph *g, const char *name, int rank, const int *dims);
/* RepeatVector: (features) -> (n, features). */
loom_layer *loom_repeat_vector(loom_graph *g, const char *name, int n);

/* A layer written in C by the user (Keras's Lambda, with weights): forward and backward
 * callbacks, weights of fixed shapes that loom owns, initialises, trains and saves. */
typedef struct loom_custom_ctx {
    int batch;
    int n_in;
    const float *const *in;          /* batch x input size each */
    float *const *din;               /* ACCUMULATE input gradients here; an entry may be NULL */
    const int *in_rank;
    const int (*in_dims)[LOOM_MAX_RANK];
    float *out;                      /* forward writes batch x output size */
    const float *dout;               /* backward reads */
    int out_rank;
    const int *out_dims;
    const float *const *w;           /* the weights, in declaration order */
    float *const *dw;                /* ACCUMULATE weight gradients here (NULL when not needed) */
    float *scratch;                  /* batch x scratch_per_sample floats, kept from forward to backward */
    int training;
} loom_custom_ctx;

#define LOOM_CUSTOM_MAX_WEIGHTS 4
typedef struct loom_custom_layer {
    const char *class_name;          /* shown by summary and saved in model files */
    int min_inputs, max_inputs;
    int n_weights;
    const char *weight_names[LOOM_CUSTOM_MAX_WEIGHTS];
    int weight_ranks[LOOM_CUSTOM_MAX_WEIGHTS];
    int weight_dims[LOOM_CUSTOM_MAX_WEIGHTS][LOOM_MAX_RANK];
    loom_initializer weight_inits[LOOM_CUSTOM_MAX_WEIGHTS];
    size_t scratch_per_sample;
    /* The output shape for these input shapes: return its rank (1..LOOM_MAX_RANK), or 0 when
     * the inputs do not fit (the call then fails naming the layer). */
    int (*output_shape)(int n_in, const int *in_rank, const int (*in_dims)[LOOM_MAX_RANK], int *out_dims,
                        void *user);
    void (*forward)(const loom_custom_ctx *c, void *user);
    void (*backward)(const loom_custom_ctx *c, void *user);
    void *user;
} loom_custom_layer;
/* The definition is copied; `user` and the callbacks must outlive the model. A model with a
 * custom layer saves its weights but can only be loaded with loom_load_weights into a model
 * built in code. */
loom_layer *loom_custom(loom_graph *g, const char *name, const loom_custom_layer *def);

/* Calls a layer on one tensor / on n tensors (merge layers). Returns the output tensor, NULL on
 * error. Calling a layer again shares its weights; every call must see the same input shapes. */
loom_tensor *loom_call(loom_layer *layer, loom_tensor *x);
loom_tensor *loom_call_n(loom_layer *layer, int n, loom_tensor *const *xs);

/* Introspection of the graph. */
const char *loom_layer_name(const loom_layer *layer);
const char *loom_layer_class(const loom_layer *layer); /* "Dense", "Add", ... */
/* A tensor's per-sample shape: returns the rank and writes up to LOOM_MAX_RANK dims (a first axis
 * that follows a variable time axis is LOOM_DIM_VARIABLE; so in loom_model_node_shape). */
int loom_tensor_shape(const loom_tensor *t, int *dims);
/* The layer that produced a tensor. */
loom_layer *loom_tensor_layer(const loom_tensor *t);

/* A distributed context (see "distributed training" at the end). */
typedef struct loom_dist loom_dist;

/* ---------------------------------------------------------------- model */

/* Makes a model from its input and output tensors. Validates the graph: every output must be
 * reached from the given inputs, every given input must reach an output, every layer input on
 * the way must come from the given inputs. On success the model holds a reference to g (the
 * first model takes over the caller's, see loom_graph_free); on failure NULL is returned, g keeps
 * the error message and its references are unchanged.
 * Several models over one graph share their layers' weights, as Keras models built from the same
 * layers do: encoder = model(inp, h) beside full = model(inp, [c, d]); training full changes what
 * encoder predicts. A layer's weights are placed (and initialised) by the first model that uses it;
 * later models over the same graph reuse them (so models that share weights must not train or
 * predict from two threads at once). Output names are the names of the layers that produce them. */
loom_model *loom_model_new(loom_graph *g, int n_inputs, loom_tensor *const *inputs, int n_outputs,
                           loom_tensor *const *outputs);
void loom_model_free(loom_model *m);
loom_status loom_model_status(const loom_model *m);
const char *loom_model_error(const loom_model *m);

int loom_model_num_inputs(const loom_model *m);
int loom_model_num_outputs(const loom_model *m);
const char *loom_model_input_name(const loom_model *m, int i);
const char *loom_model_output_name(const loom_model *m, int k);
/* Per-sample size (element count) of input i / output k. With variable-length inputs: at the
 * current steps (those of the last data bound; see "variable-length sequences"). */
size_t loom_model_input_size(const loom_model *m, int i);
size_t loom_model_output_size(const loom_model *m, int k);
/* Per-sample size of output k's target array: the output size, or one class index per row for
 * sparse_categorical_crossentropy (known once compiled). */
size_t loom_model_target_size(const loom_model *m, int k);
/* Index of an input / output by name, -1 (and an error on m) if unknown. */
int loom_model_input_index(loom_model *m, const char *name);
int loom_model_output_index(loom_model *m, const char *name);

/* Layers of the model in order of first use, and their weights. */
int loom_model_num_layers(const loom_model *m);
loom_layer *loom_model_layer(const loom_model *m, int i);
loom_layer *loom_model_find_layer(const loom_model *m, const char *name);
int loom_layer_num_weights(const loom_layer *layer);
/* Name ("kernel", "bias"), shape (returns rank) and size of weight i of a layer. */
const char *loom_layer_weight_name(const loom_layer *layer, int i);
int loom_layer_weight_shape(const loom_layer *layer, int i, int *dims);
size_t loom_layer_weight_size(const loom_layer *layer, int i);
/* Copies weight i of the named layer out of / into the model (n must equal its size). Values set
 * must be finite, and a variance (BatchNormalization's moving_variance) >= 0: LOOM_ERR_DATA
 * otherwise; model files are checked the same way when loaded. */
loom_status loom_get_weights(loom_model *m, const char *layer, int i, float *out, size_t n);
loom_status loom_set_weights(loom_model *m, const char *layer, int i, const float *in, size_t n);

/* All parameters live in one flat buffer, the graph's, shared by every model over the graph (and a
 * model's gradients in another of the same layout). loom_param_offset gives where weight i of a
 * layer starts; loom_param_count is the end of the model's last weight. A graph with one model has
 * exactly that model's weights there, in order of first use. With several models the buffer also
 * holds the others' weights, and a model's range may include some of them (gradient queries write
 * zeros there). Writing through the pointer changes every model that uses those weights. It stays
 * valid until a new model over the same graph places layers no model used before (the buffer then
 * grows and moves), or the graph is freed. */
size_t loom_param_count(const loom_model *m);
float *loom_params(loom_model *m);
size_t loom_param_offset(const loom_model *m, const char *layer, int i);

/* Writes a Keras-like summary table (layer, type, output shape, params, connected to, totals:
 * total, trainable and non-trainable, from the layers' trainable flags as they are now). */
loom_status loom_summary(const loom_model *m, FILE *out);

/* ---- sub-models, nesting and freezing (Keras's layer.trainable / model.trainable) */

/* A model called as a layer (Keras nesting: y = encoder(x) inside another model): calls every
 * layer of m again on `inputs` (n_inputs == loom_model_num_inputs(m), tensors of m's own graph with
 * the shapes of m's inputs) and writes m's loom_model_num_outputs tensors into outputs. The new
 * tensors share m's weights; a model made from them shows (and saves) m's layers one by one, each
 * with one more call. Tensors of another graph are refused. Message on m on error. */
loom_status loom_model_call(loom_model *m, int n_inputs, loom_tensor *const *inputs, loom_tensor **outputs);
/* trainable (1, the default) or frozen (0). A frozen layer's weights get no update and no
 * optimizer-state change (Adam's moments, ...); the backward pass skips the layers before the first
 * trainable weight, and gives frozen layers no weight gradient (gradient queries return zeros for
 * them); a frozen BatchNormalization runs in inference mode (moving statistics, not updated), as in
 * Keras 3. As in Keras, a change takes effect at the next loom_compile of each model that uses the
 * layer (a recompile resets the optimizer state); summaries show it at once. Saved in model files as
 * the layer's "trainable". A wrapper's inner layers follow it. */
loom_status loom_layer_set_trainable(loom_layer *layer, int trainable);
int loom_layer_trainable(const loom_layer *layer);
/* Sets every layer of the model (and so of every model sharing them) trainable or frozen. */
loom_status loom_model_set_trainable(loom_model *m, int trainable);
/* 1 when some layer of m with weights is trainable. */
int loom_model_trainable(const loom_model *m);

/* ---------------------------------------------------------------- losses */

/* A user loss: for each of n_rows rows of length dim (the last axis), write the row's value
 * into values[r] and d value / d y_pred into grad (n_rows*dim, may be NULL when only values are
 * wanted). y_true rows have the same length as y_pred. Return 0, or nonzero to signal an error. */
typedef int (*loom_loss_fn)(const float *y_true, const float *y_pred, size_t n_rows, int dim,
                            float *values, float *grad, void *user);

/* A loss. Zero-filled fields mean Keras's defaults, so (loom_loss){.name = "huber"} is
 * Huber with delta 1. name NULL and fn NULL means "no loss" for that output.
 * Names: mse / mean_squared_error, mae / mean_absolute_error, binary_crossentropy (bce),
 * categorical_crossentropy (cce), sparse_categorical_crossentropy, huber, kl_divergence (kld),
 * cosine_similarity, hinge, log_cosh, poisson; "crossentropy"/"ce" pick binary (1 unit) or
 * categorical crossentropy from the output's width. Options a loss does not take (from_logits on
 * mse, delta on anything but huber, ...) are refused with LOOM_ERR_ARGUMENT.
 * Crossentropies on a softmax/sigmoid output with from_logits = 0 are fused with it: computed
 * from the logits (TensorFlow's numbers) with gradient p - t. */
typedef struct loom_loss {
    const char *name;
    int from_logits;       /* crossentropies: the output is logits */
    float label_smoothing; /* binary / categorical crossentropy */
    float delta;           /* huber; 0 means 1 */
    loom_loss_fn fn;       /* a user loss (name then only labels it, default "custom") */
    void *user;
} loom_loss;

/* Keras names: known loss name? (1/0). */
int loom_loss_known(const char *name);

/* ---------------------------------------------------------------- optimizers */

typedef enum loom_optimizer_kind {
    LOOM_SGD = 0,
    LOOM_ADAM,
    LOOM_ADAMW,
    LOOM_RMSPROP,
    LOOM_ADAGRAD
} loom_optimizer_kind;

typedef enum loom_schedule_kind {
    LOOM_SCHEDULE_CONSTANT = 0,
    LOOM_SCHEDULE_EXPONENTIAL_DECAY, /* lr0 * rate^(step/decay_steps), floor() when staircase */
    LOOM_SCHEDULE_COSINE_DECAY,      /* Keras CosineDecay with alpha, optional linear warm-up */
    LOOM_SCHEDULE_PIECEWISE_CONSTANT /* values[i] while step <= boundaries[i] */
} loom_schedule_kind;

#define LOOM_MAX_BOUNDARIES 16
typedef struct loom_schedule {
    loom_schedule_kind kind;
    float initial_learning_rate;
    long decay_steps;
    float decay_rate; /* exponential */
    int staircase;    /* exponential */
    float alpha;      /* cosine: final fraction of the initial rate */
    long warmup_steps;            /* cosine: linear warm-up from initial to warmup_target */
    float warmup_target;          /* cosine */
    int n_boundaries;             /* piecewise: boundaries[n], values[n+1] */
    long boundaries[LOOM_MAX_BOUNDARIES];
    float values[LOOM_MAX_BOUNDARIES + 1];
} loom_schedule;

/* Schedule constructors (Keras argument order and meaning). */
loom_schedule loom_exponential_decay(float initial_lr, long decay_steps, float decay_rate, int staircase);
loom_schedule loom_cosine_decay(float initial_lr, long decay_steps, float alpha);
/* n boundaries, n+1 values; returns a CONSTANT schedule of values[0] if n is out of range. */
loom_schedule loom_piecewise_constant(int n, const long *boundaries, const float *values);
/* The learning rate of a schedule at a step (iterations done so far); NaN for a NULL schedule. */
float loom_schedule_value(const loom_schedule *s, long step);

/* An optimizer: start from a constructor (which fills Keras's defaults), then change fields. */
typedef struct loom_optimizer {
    loom_optimizer_kind kind;
    float learning_rate;  /* used when schedule.kind == LOOM_SCHEDULE_CONSTANT */
    loom_schedule schedule;
    float momentum;       /* SGD, RMSprop */
    int nesterov;         /* SGD */
    float beta_1, beta_2; /* Adam, AdamW */
    float epsilon;        /* Adam, AdamW, RMSprop, Adagrad */
    int amsgrad;          /* Adam, AdamW */
    float rho;            /* RMSprop */
    int centered;         /* RMSprop */
    float initial_accumulator_value; /* Adagrad */
    float weight_decay;   /* decoupled, any optimizer: w -= w*wd*lr; 0 = none */
    float clipnorm;       /* per weight tensor: g*c/max(|g|,c); 0 = none */
    float global_clipnorm;/* over all gradients; 0 = none */
    float clipvalue;      /* element-wise clip to [-c, c]; 0 = none */
    int constructed;      /* set by the constructors below: a zero-filled struct (0 here, SGD at
                             learning rate 0) means "no optimizer given" (see loom_compile_config) */
} loom_optimizer;

/* Plain SGD (momentum 0, no clipping, no weight decay) needs no gradient buffer: loom subtracts
 * lr * gradient from each Dense layer that is called once and has no regulariser inside the backward
 * pass, right after the layer has used its kernel. The update is Keras's to float rounding; the
 * gradient buffer of those layers is never written and takes no memory. */
loom_optimizer loom_sgd(float learning_rate, float momentum, int nesterov); /* Keras: 0.01, 0, 0 */
loom_optimizer loom_adam(float learning_rate);    /* Keras: 0.001, b1 .9, b2 .999, eps 1e-7 */
loom_optimizer loom_adamw(float learning_rate, float weight_decay); /* Keras: 0.001, 0.004 */
loom_optimizer loom_rmsprop(float learning_rate); /* Keras: 0.001, rho .9, eps 1e-7 */
loom_optimizer loom_adagrad(float learning_rate); /* Keras: 0.001, acc0 0.1, eps 1e-7 */

/* ---- dtype policy (Keras's mixed precision; issue 18)
 * LOOM_POLICY_MIXED_BFLOAT16 is Keras's "mixed_bfloat16": a layer computes in bfloat16 while its
 * variables, their gradients and the optimizer state stay float32. In loom that means: the matrix
 * products of a layer under the policy take bfloat16 inputs (its input and its kernel rounded to
 * nearest even) and accumulate in float32, forward and backward; the bias, the activation (the
 * final softmax or sigmoid included), the losses and the update run in float32 on float32 values,
 * as Keras recommends for the last activation and the losses. No loss scaling is needed:
 * bfloat16 has float32's exponent range. Layers that honour it: Dense, Conv1D, Conv2D, SimpleRNN,
 * LSTM and GRU (their input and recurrent products; the gates stay float32); every other layer
 * computes in float32 under either policy. On a CPU with AVX512-BF16 the products run on its
 * dot-product instruction; elsewhere plain loops give the same numbers (and compile leaves a note,
 * loom_model_compile_note). float32 (the default) keeps loom's float32 arithmetic bit for bit.
 * Saved in model files as Keras writes it: a layer under mixed_bfloat16 gets
 * "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "mixed_bfloat16"},
 * "registered_name": null}; a float32 layer keeps "dtype": "float32". Loading reads both forms. */
typedef enum loom_dtype_policy {
    LOOM_POLICY_DEFAULT = 0,     /* a layer: the model's policy (loom_compile_config.dtype_policy) */
    LOOM_POLICY_FLOAT32,         /* "float32" */
    LOOM_POLICY_MIXED_BFLOAT16   /* "mixed_bfloat16" */
} loom_dtype_policy;
/* A layer's own policy, over the model's; takes effect at the next loom_compile (one set before
 * loom_model_new holds from the start, so a loaded model predicts as saved before any compile). A
 * loaded layer saved as mixed_bfloat16 has it set; one saved as float32 keeps LOOM_POLICY_DEFAULT
 * (so a model's policy applies to it). A wrapper's inner layers follow it. */
loom_status loom_layer_set_dtype_policy(loom_layer *layer, loom_dtype_policy policy);
loom_dtype_policy loom_layer_dtype_policy(const loom_layer *layer);
/* The policy a layer of m computes under after the last compile (its own, else the model's);
 * float32 for Input layers. */
loom_dtype_policy loom_model_layer_policy(const loom_model *m, const loom_layer *layer);
/* loom_model_compile_note (model files section) also says what the last loom_compile noted
 * without failing: under mixed_bfloat16 on a CPU without AVX512-BF16, that the products run in
 * float32 on rounded inputs and so will not be faster. Never printed by loom. */

/* ---- matrix-product backends (issue 18): no functions, two environment variables, read once.
 * LOOM_GEMM_BACKEND=dnnl|blas|loom forces the backend of the products planned from then on
 * (default: a table of shapes picks oneDNN for large square products when loom is built with it,
 * LOOM_USE_DNNL; docs/gemm_backends.md). LOOM_IGNORE_AVX512BF16=1 runs mixed_bfloat16's products on
 * the portable loops (the same numbers) as on a CPU without the instructions. */

/* ---------------------------------------------------------------- compile */

/* A metric on one output. output NULL is allowed only for a single-output model.
 * Names: accuracy/acc (resolved from the loss and shapes as Keras does), binary_accuracy,
 * categorical_accuracy, sparse_categorical_accuracy, top_k_categorical_accuracy (k=5),
 * sparse_top_k_categorical_accuracy (k=5), mae, mse, rmse (and their long Keras names), the
 * confusion-matrix metrics below, and user metrics registered with loom_register_metric.
 * Logged as "<output>_<name>" with a multi-output model, "<name>" with a single output.
 * See "---- metrics with configuration" for the name syntax that carries Keras's constructor
 * arguments ("auc(curve=PR)"); the name as written is what a saved model keeps. */
typedef struct loom_metric_spec {
    const char *output;
    const char *name;
} loom_metric_spec;

/* ---- metrics with configuration (Keras 3 keras.metrics; issue 16 part 2)
 * A metric name may carry the Keras constructor's arguments in parentheses, e.g.
 *   "auc(curve=PR, num_thresholds=50)", "precision(thresholds=[0.3, 0.7])",
 *   "recall(top_k=2, class_id=1)", "f1_score(average=macro)", "mean_iou(num_classes=3)".
 * Values are numbers, [lists of at most 32 numbers], words or quoted words; None leaves the
 * default; a spec is at most 255 characters. An
 * unknown or malformed argument is LOOM_ERR_ARGUMENT naming it. A plain name logs under that name
 * (as Keras logs a metric given by string); the object form logs under Keras's default object
 * name (auc, precision, recall, f1_score, fbeta_score, mean_io_u) unless name=... is given.
 * A metric whose result is a vector logs one key per entry: "<name>/<threshold>" for a list of
 * thresholds, "<name>/<class>" for per-class F-scores (average=None, Keras's default).
 * Predictions are probabilities (AUC: from_logits=true applies a sigmoid); targets have the
 * predictions' width (one-hot / multi-hot), except MeanIoU which also takes class indices.
 * State is sized at compile; an update allocates nothing.
 *  auc / AUC: num_thresholds (200), curve ROC | PR, summation_method interpolation | minoring |
 *      majoring, thresholds [list] (replaces the evenly spaced ones), from_logits. Keras's
 *      thresholds (i/(n-1) for i = 1..n-2, plus -1e-7 and 1 + 1e-7) and its bucketed counting;
 *      ROC sums trapezoids; PR with interpolation is Davis & Goadrich's interpolation as Keras's
 *      interpolate_pr_auc. All entries of an output form one curve (multi_label=False).
 *  precision, recall / Precision, Recall: thresholds (0.5; a number or a list), top_k (only the
 *      k highest entries of a row can be positive, ties to the lower index; threshold then
 *      defaults to -1e10), class_id (only that column). tp / (tp + fp), tp / (tp + fn), 0 when
 *      the denominator is 0.
 *  f1_score / F1Score, fbeta_score / FBetaScore: beta (1; fbeta only), average None (per class)
 *      | micro | macro | weighted (by the class's weighted support), threshold (none: a row's
 *      largest entries are its positives, as Keras). Keras's epsilon 1e-7 in every division.
 *  mean_iou / MeanIoU: num_classes (required), ignore_class, sparse_y_true, sparse_y_pred
 *      (default: from the shapes: width 1 is class indices, width num_classes is argmaxed).
 *      Classes with no true or predicted entry are left out of the mean, as Keras; a label
 *      outside [0, num_classes) is skipped (Keras raises).
 *
 * Sample weights (Keras 3): metrics listed in `metrics` see only the output's mask; metrics in
 * `weighted_metrics` (loom_compile_config) also see the sample weights and the class weights,
 * multiplied per row. The same metric may appear in both (the second key gets "_1", as Keras). */

/* A metric written in C. loom owns its state: n_state doubles, allocated once per use at compile
 * (so updates allocate nothing), reset before every epoch and every evaluation.
 *   reset:  set the initial state (NULL: all zeros).
 *   update: one batch: n_rows rows of y_pred (width dim) and y_true (width target_dim);
 *           weights: one per row (the mask, times sample and class weights in weighted_metrics),
 *           NULL when every row weighs 1. A row of weight 0 is padding.
 *   result: the value logged.
 * The definition is copied; `user` must outlive every model that uses it. */
typedef struct loom_custom_metric {
    const char *name;   /* what metric specs use, and the log key; at most 63 characters */
    int n_state;        /* 0..65536 */
    void (*reset)(double *state, void *user);
    void (*update)(double *state, const float *y_true, const float *y_pred, const float *weights,
                   size_t n_rows, int dim, int target_dim, void *user);
    double (*result)(const double *state, void *user);
    void *user;
} loom_custom_metric;
/* Registers a user metric process-wide (as Keras's custom objects), so compile and
 * loom_model_load find it by name; a saved model stores the name only, and loading it in a
 * program that has not registered the metric fails naming it. Registering a name again replaces
 * the definition (for models compiled afterwards). A built-in name is refused. Not thread-safe:
 * register before building models. At most 64 metrics. Message in err (errlen may be 0). */
loom_status loom_register_metric(const loom_custom_metric *def, char *err, size_t errlen);

/* ---- multi-task balancing (beyond Keras's fixed loss_weights; see README "Balancing losses").
 * Conventions: dynamic weights sum to K, the number of outputs with a loss (so equal weights are
 * Keras's plain sum), or to 1 with sum_to_one. Static loss_weights multiply each loss first
 * ("inner": the method balances w_k L_k) unless static_outer, where they multiply the dynamic
 * weight instead. Shared parameters are those reached by two or more losses; a head's parameters
 * get their own loss's gradient. */
typedef enum loom_balance_kind {
    LOOM_BALANCE_STATIC = 0, /* Keras: total = sum_k w_k L_k */
    LOOM_BALANCE_UNCERTAINTY,/* Kendall et al. 2018: learned log-variances s_k */
    LOOM_BALANCE_GRADNORM,   /* Chen et al. 2018 */
    LOOM_BALANCE_DWA,        /* Dynamic Weight Average, Liu et al. 2019 */
    LOOM_BALANCE_RLW,        /* random loss weighting: softmax of N(0, I) each step */
    LOOM_BALANCE_PCGRAD,     /* Yu et al. 2020: gradient surgery */
    LOOM_BALANCE_MGDA,       /* Sener & Koltun 2018: min-norm point (MGDA-UB on the shared parameters) */
    LOOM_BALANCE_CAGRAD,     /* Liu et al. 2021 */
    LOOM_BALANCE_NASH_MTL    /* Navon et al. 2022 */
} loom_balance_kind;

typedef enum loom_mgda_normalization {
    LOOM_MGDA_NORM_NONE = 0, LOOM_MGDA_NORM_L2, LOOM_MGDA_NORM_LOSS, LOOM_MGDA_NORM_LOSS_PLUS
} loom_mgda_normalization;

typedef struct loom_balance {
    loom_balance_kind kind;
    int sum_to_one;              /* dynamic weights sum to 1 instead of K */
    int static_outer;            /* static weights multiply the dynamic weight, not the loss */
    float uw_initial_log_variance;   /* uncertainty: s_k at the start (0) */
    float uw_learning_rate;          /* uncertainty: Adam on s (0.025, as nash-mtl) */
    int uw_classification;           /* uncertainty: crossentropy losses use e^-s L + s/2 (1),
                                        or every loss the regression form 1/2 e^-s L + s/2 (0) */
    const char *gradnorm_layer;      /* GradNorm: the shared layer W (NULL: the last layer every
                                        loss reaches) */
    float gradnorm_alpha;            /* 1.5 */
    float gradnorm_learning_rate;    /* SGD on the weights (0.001) */
    float dwa_temperature;           /* 2.0 */
    int pcgrad_mean;                 /* reduce projected gradients by mean, not sum */
    loom_mgda_normalization mgda_normalization; /* none */
    float cagrad_c;                  /* 0.4 */
    int cagrad_rescale;              /* 1: divide by 1 + c^2 */
    float nash_max_norm;             /* clip the shared update to this norm (1.0; 0 = no clip) */
    int nash_update_every;           /* recompute alpha every N steps (1) */
    int diagnostics_every;           /* every N steps log grad_cos/<a>~<b> (epoch means) (0: off) */
} loom_balance;

/* The reference defaults of a method (as listed above). */
loom_balance loom_balance_defaults(loom_balance_kind kind);
/* "static", "uncertainty", "gradnorm", "dwa", "rlw", "pcgrad", "mgda", "cagrad", "nash_mtl". */
const char *loom_balance_name(loom_balance_kind kind);
int loom_balance_from_name(const char *name);

/* Compile settings, mirroring keras.Model.compile(loss=, loss_weights=, metrics=, optimizer=):
 *  losses:     n_losses == 1 and loss_outputs == NULL: the loss on every output;
 *              loss_outputs == NULL: a list in output order (n_losses must equal the outputs);
 *              loss_outputs given: by output name, any subset; an absent output has no loss.
 *  loss_weights: likewise (n_loss_weights == 0: all 1); by name, an absent output weighs 1.
 *  A weight must be finite; 0 keeps the output evaluated and logged but out of the gradient. */
typedef struct loom_compile_config {
    int n_losses;
    const loom_loss *losses;
    const char *const *loss_outputs;
    int n_loss_weights;
    const float *loss_weights;
    const char *const *loss_weight_outputs;
    int n_metrics;
    const loom_metric_spec *metrics;   /* unweighted (Keras 3): the mask only */
    loom_optimizer optimizer;  /* zero-filled (no optimizer given): Keras 3's default, rmsprop with
                                  learning rate 0.001 (loom_rmsprop(0.001f)), not SGD at rate 0 */
    loom_balance balance; /* zero-filled: Keras's static weights */
    int n_weighted_metrics;            /* Keras's weighted_metrics: sample and class weights apply; */
    const loom_metric_spec *weighted_metrics; /* logged after `metrics` */
    loom_dtype_policy dtype_policy; /* every layer's unless it has its own (0: float32) */
} loom_compile_config;

/* Compiles (or recompiles, resetting the optimizer state). Output names whose log keys would
 * collide with another key or its validation copy (an output "val", whose "val_loss" is the
 * validation loss; "val_C" beside "C") are refused with LOOM_ERR_NAME: loom does not rename them.
 * On any error the model keeps its previous compile settings and state (still compiled if it
 * was), with the message on m. */
loom_status loom_compile(loom_model *m, const loom_compile_config *cfg);

/* Loss weights are state read at every step: change them between steps or from a callback. */
loom_status loom_set_loss_weight(loom_model *m, const char *output, float weight);
float loom_get_loss_weight(const loom_model *m, const char *output); /* NaN if unknown */
/* Per-output loss-weight schedules, evaluated before every step from the optimizer step count t
 * (or the epoch with by_epoch), replacing that output's static weight; any balancing method then
 * applies on top. Kinds: constant w0; linear w0 -> w1 over [t0, t1]; cosine w0 -> w1 over
 * [t0, t1]; exponential w0 * rate^(t/decay_steps) (staircase: floor); piecewise values[i] while
 * t <= boundaries[i]; rampup w1 * exp(-5 (1 - min(t, length)/length)^2) (Laine & Aila). */
typedef enum loom_weight_schedule_kind {
    LOOM_WEIGHT_CONSTANT = 0, LOOM_WEIGHT_LINEAR, LOOM_WEIGHT_COSINE, LOOM_WEIGHT_EXPONENTIAL,
    LOOM_WEIGHT_PIECEWISE, LOOM_WEIGHT_RAMPUP
} loom_weight_schedule_kind;
typedef struct loom_weight_schedule {
    loom_weight_schedule_kind kind;
    double w0, w1, t0, t1, rate, decay_steps, length;
    int staircase, by_epoch;
    int n_boundaries;
    double boundaries[16];
    double values[17];
} loom_weight_schedule;
/* Sets (schedule) or removes (NULL) an output's weight schedule. Checked: a bad field is an error
 * naming it. */
loom_status loom_set_loss_weight_schedule(loom_model *m, const char *output, const loom_weight_schedule *s);
/* The effective weight of every output at the last training step (dynamic method and schedule
 * included), in output order; n must be the output count. */
loom_status loom_effective_loss_weights(const loom_model *m, float *weights, int n);

/* The learning rate the next step will use, and a way to override it (ReduceLROnPlateau does). */
float loom_get_learning_rate(const loom_model *m);
loom_status loom_set_learning_rate(loom_model *m, float lr);
/* Optimizer steps taken so far. */
long loom_iterations(const loom_model *m);

/* ---------------------------------------------------------------- data */

/* One array of n samples, bound to an input or output by name (or by position when name is NULL).
 * data holds n * (per-sample size) floats. For sparse_categorical_crossentropy the target is the
 * class index (as a float), one per row. Sample weights: n floats, one per sample.
 * count: the floats data holds (n x the per-sample size), so that binding can check the buffer
 * against the input or target it is bound to. */
typedef struct loom_array {
    const char *name;
    const float *data;
    size_t n;
    size_t count;
    /* An input with a variable time axis only (see "variable-length sequences"): n valid lengths,
     * one per sample, each in 1..steps of the array; NULL: every sample uses all steps. */
    const int *lengths;
} loom_array;

/* ---- data checks at binding (fit, evaluate, predict, train_on_batch, the gradient queries)
 * Every input, target and sample-weight array must say how many floats it holds (count): n x the
 * input's size, n x loom_model_target_size (one class index per row for the sparse
 * crossentropy), or n for sample weights; a count of 0 or another count is LOOM_ERR_DATA naming
 * the input or output and both shapes. Values must be finite (LOOM_ERR_DATA naming the array,
 * the sample and the position) unless check_finite is 0; ids for an Embedding must lie in
 * [0, input_dim) (LOOM_ERR_DATA naming the layer, the sample and the id) whatever the setting.
 * The finite check is on by default. */
loom_status loom_set_check_finite(loom_model *m, int check_finite);

/* Inputs, targets and optional per-output sample weights. Targets may omit outputs that have no
 * loss. One sample-weight array without a name applies to every output (as Keras). */
typedef struct loom_data {
    int n_x;
    const loom_array *x;
    int n_y;
    const loom_array *y;
    int n_sample_weights;
    const loom_array *sample_weights;
} loom_data;

/* ---------------------------------------------------------------- training */

typedef struct loom_fit_options {
    int batch_size;            /* default 32 */
    int epochs;                /* default 1 */
    int initial_epoch;         /* default 0 */
    int shuffle;               /* default 1: a new permutation each epoch from seed */
    uint64_t seed;             /* shuffling seed */
    float validation_split;    /* the last fraction of the data, taken before shuffling */
    const loom_data *validation_data; /* takes precedence over validation_split */
    int validation_batch_size; /* default: batch_size */
    int verbose;               /* 0 silent (default), 1 progress bar (one line per epoch when
                                  `out` is not a terminal), 2 one line per epoch */
    FILE *out;                 /* where to print; NULL = stdout */
    int n_callbacks;
    loom_callback *const *callbacks;
    double progress_seconds;   /* verbose 1 into a file or pipe: besides the line per epoch, a
                                  progress line every this many seconds inside an epoch;
                                  0 = 30 s, < 0 = never */
    int n_class_weights;       /* Keras's class_weight, per output (see loom_class_weight) */
    const struct loom_class_weight *class_weights;
    loom_dist *dist;           /* NULL: one process; else data-parallel over its ranks
                                  (see "distributed training") */
} loom_fit_options;

/* ---- class weights (Keras fit(class_weight=); issue 16 part 3)
 * For output `output` (NULL: the only output), a row whose class is c weighs weights[c] in the
 * loss (c < n_classes; other classes weigh 1, as Keras's dict.get(c, 1.0)). The class of a row
 * is, as Keras: the argmax of a one-hot target, the rounded (half to even) label of a sparse or
 * binary target. The class weight multiplies the sample weight (tf.keras 2's rule; Keras 3
 * refuses the two together) and the output's mask; every row of a sequence output has its own
 * class. Used by the training steps of loom_fit and loom_fit_generator only: validation and
 * loom_evaluate see sample weights alone, as Keras. Weighted metrics see it too.
 * A class output is one with binary_crossentropy on 1 unit (classes 0, 1), or categorical or
 * sparse categorical crossentropy (classes 0..units-1). Keras converts any target without a
 * check; loom refuses any other output (a regression, a multi-label sigmoid, a user loss) with
 * LOOM_ERR_ARGUMENT naming it, and n_classes above the class count or a weight that is negative
 * or not finite. Two entries for one output are refused. */
typedef struct loom_class_weight {
    const char *output;
    int n_classes;
    const float *weights; /* n_classes: the weight of class 0, 1, ... */
} loom_class_weight;

/* Defaults: batch 32, 1 epoch, shuffle on, seed 0, no validation, silent. */
loom_fit_options loom_fit_defaults(void);

/* Trains. *history (if not NULL) receives the per-epoch logs, to be freed with loom_history_free;
 * it is returned even when training stops early or with an error (then it holds the epochs done). */
loom_status loom_fit(loom_model *m, const loom_data *data, const loom_fit_options *opt,
                     loom_history **history);

/* A batch source for data larger than memory: fill *batch with the next batch of at most
 * max_batch samples (the fit's batch_size); its arrays must stay valid until the next call.
 * Return 0, or nonzero to stop training with LOOM_ERR_CALLBACK. epoch and step count from 0. */
typedef int (*loom_batch_fn)(int epoch, int step, int max_batch, loom_data *batch, void *user);
/* Trains from a batch function, steps_per_epoch calls per epoch; the progress bar, history,
 * validation_data and callbacks behave as in loom_fit (shuffling is the function's business;
 * validation_split is refused). */
loom_status loom_fit_generator(loom_model *m, loom_batch_fn next, void *user, int steps_per_epoch,
                               const loom_fit_options *opt, loom_history **history);

/* Evaluates in batches; *result (if not NULL) holds one "epoch" with the same keys as fit's
 * (loss, <output>_loss, metrics), without the val_ prefix. */
loom_status loom_evaluate(loom_model *m, const loom_data *data, int batch_size, int verbose,
                          loom_history **result);

/* Predicts in batches. outputs[k] receives n * loom_model_output_size(m, k) floats; a NULL
 * entry skips that output. Variable-length inputs: n * loom_model_output_size_at(m, k, steps of
 * the x arrays) floats (see "variable-length sequences"). */
loom_status loom_predict(loom_model *m, int n_x, const loom_array *x, int batch_size,
                         float *const *outputs);

/* One training step on one batch (the whole of data). After the first call (which plans memory
 * for the batch size) a call allocates nothing, so a user's own loop is allocation-free too; the
 * same holds for loom_predict, loom_evaluate and the gradient queries. logs_out, if not NULL, receives the
 * batch's values in history key order (loss first), up to max_logs of them; returns the count
 * through *n_logs. */
loom_status loom_train_on_batch(loom_model *m, const loom_data *batch, float *logs_out,
                                int max_logs, int *n_logs);

/* Gradients on one batch, without an update and without changing the model (a training-mode
 * forward: dropout active, BatchNormalization on batch statistics, its moving statistics left as
 * they are). Runs one forward pass and one backward pass for the
 * weighted losses of the listed outputs (n_outputs == 0: all outputs plus regularisation — the
 * gradient of `total`), written (not accumulated) into grad (loom_param_count floats). losses,
 * if not NULL, receives the unweighted loss of every output (NaN for outputs without a loss). */
loom_status loom_gradients(loom_model *m, const loom_data *batch, int n_outputs,
                           const char *const *outputs, float *grad, float *losses);

/* Per-loss gradients on one batch: one forward pass, then one backward pass per output with a
 * loss, written into grads[k] (loom_param_count floats; a NULL entry skips output k; an output
 * without a loss gets zeros). weighted: grads[k] = grad(w_k * L_k), else grad(L_k). No
 * regularisation term. losses, if not NULL, receives every output's unweighted loss. The
 * building block for gradient surgery and per-loss diagnostics. */
loom_status loom_loss_gradients(loom_model *m, const loom_data *batch, int weighted, float *const *grads,
                                float *losses);

/* ---- variable-length sequences (Keras's Input(shape=(None, ...)); issue 16 part 4)
 * An input made with dims[0] = LOOM_DIM_VARIABLE has its number of steps fixed per batch. Every
 * layer is shape-checked at build for any length (loom_call builds it at two probe lengths): a
 * layer's output may have a variable first axis (recurrent layers with return_sequences,
 * Embedding, Dense on sequences, Conv1D and pooling with their shorter outputs, TimeDistributed,
 * Bidirectional, normalisation, attention, merges of sequences), or lose it (GlobalPooling,
 * recurrent layers without return_sequences); a layer whose weights or whose other axes would
 * depend on the steps (Flatten or Reshape of them, a Dense over them) is LOOM_ERR_SHAPE naming
 * the layer. Shapes print the variable axis as None.
 *
 * Data. An array bound to a variable input holds n samples of any whole number of steps (count =
 * n x steps x the fixed axes' size), so one loom_array per batch may have its own length (a
 * batch function, train_on_batch, predict on a length never seen in training). Or, as Keras
 * users pad per batch: give the whole padded data set (steps = the longest) with
 * loom_array.lengths, and each batch is trimmed to its own longest sample (the steps past it are
 * not computed; those within it but past a sample's length are padding that the model's masks
 * must cover, as in Keras: Embedding mask_zero, a padding id of 0; loom makes no mask from the
 * lengths). Two variable inputs may have different steps (a title and a body). A target of an
 * output whose first axis follows the steps (return_sequences) is padded to the output's length
 * at the input array's steps and trimmed with it. predict writes each sample at the length of the
 * input arrays, with the steps past a trimmed batch's length set to 0.
 *
 * Memory. The arena is planned for the longest steps so far: loom_fit reserves the longest
 * sample of its data (training and validation) before the first step, so its steps never
 * allocate; a later call whose batch is longer than any before (train_on_batch, predict,
 * evaluate, a batch function's batch) re-plans once, allocating, and shorter batches reuse the
 * front of each buffer. loom_model_set_max_steps declares a maximum up front instead. Results do
 * not depend on the plan: the same seed and thread count give the same bits. */

/* Plans the arena, from the next call that runs the model, for up to max_steps steps of the
 * variable input `input` (NULL: every variable input); longer batches still re-plan. Errors:
 * LOOM_ERR_NAME for an unknown input, LOOM_ERR_ARGUMENT when it has no variable axis or
 * max_steps < 1 (or too many steps for one sample). */
loom_status loom_model_set_max_steps(loom_model *m, const char *input, int max_steps);
/* 1 when input i has a variable time axis, else 0. */
int loom_model_input_variable(const loom_model *m, int i);
/* Per-sample size of output k when each variable input i has steps[i] steps (entries of fixed
 * inputs are ignored); 0 with the model's message set when a layer cannot take those lengths.
 * Leaves the model's current steps as they were. */
size_t loom_model_output_size_at(loom_model *m, int k, const int *steps);

/* ---- diagnostics: how the losses share the network, measured on one batch. */
typedef struct loom_diagnostics loom_diagnostics;
/* One forward pass and one backward pass per loss (unweighted gradients of L_k). NULL on error
 * (message on m). */
loom_diagnostics *loom_diagnose(loom_model *m, const loom_data *batch);
void loom_diagnostics_free(loom_diagnostics *d);
/* The losses measured (outputs with a loss), by index 0..n-1. */
int loom_diag_num_losses(const loom_diagnostics *d);
const char *loom_diag_loss_output(const loom_diagnostics *d, int i);
float loom_diag_loss_value(const loom_diagnostics *d, int i);
/* Norm of grad L_i over one layer's weights (exactly 0 where the loss does not reach it); NaN for
 * an unknown layer. */
double loom_diag_layer_norm(const loom_diagnostics *d, int i, const char *layer);
/* Over the shared parameters (reached by two or more losses): gradient norm of L_i, cosine of
 * L_i and L_j (0 when either is zero), magnitude ratio |g_i|/|g_j| (inf when g_j is zero),
 * conflict (cosine < 0), and how many shared parameters there are. */
double loom_diag_shared_norm(const loom_diagnostics *d, int i);
double loom_diag_cosine(const loom_diagnostics *d, int i, int j);
double loom_diag_magnitude_ratio(const loom_diagnostics *d, int i, int j);
int loom_diag_conflict(const loom_diagnostics *d, int i, int j);
size_t loom_diag_shared_params(const loom_diagnostics *d);
/* A readable report: per-loss per-layer norms, then the pairwise table. */
loom_status loom_diag_print(const loom_diagnostics *d, FILE *out);

/* Which layers does the loss of an output reach? 1/0 (and an error on m for unknown names).
 * A layer is reached when one of its calls lies on a path from the model's inputs to that output
 * (Input layers included). */
int loom_loss_reaches(loom_model *m, const char *output, const char *layer);

/* ---------------------------------------------------------------- history and logs */

void loom_history_free(loom_history *h);
int loom_history_epochs(const loom_history *h);
int loom_history_num_keys(const loom_history *h);
const char *loom_history_key(const loom_history *h, int i);
/* Values of a key, one per epoch (NULL if the key is absent). */
const float *loom_history_values(const loom_history *h, const char *key);
/* The value of a key at an epoch (negative counts from the end), NaN if absent. */
float loom_history_get(const loom_history *h, const char *key, int epoch);

/* Logs given to callbacks: the running values of the current batch or epoch. */
int loom_logs_count(const loom_logs *l);
const char *loom_logs_key(const loom_logs *l, int i);
float loom_logs_value(const loom_logs *l, int i);
/* Value by key, NaN when absent. */
float loom_logs_get(const loom_logs *l, const char *key);

/* ---------------------------------------------------------------- callbacks */

/* Callback constructors return NULL when out of memory or given a bad argument (a negative
 * patience, a factor outside (0, 1), an empty path, a mode that is not a loom_monitor_mode); a
 * callback may serve several fits in turn.
 * A C hook: return 0 to go on, 1 to stop training cleanly, any other value to stop with
 * LOOM_ERR_CALLBACK. epoch counts from 0; batch is -1 in the epoch hook. */
typedef int (*loom_hook)(loom_model *m, int epoch, int batch, const loom_logs *logs, void *user);
/* Calls on_batch after every training batch and on_epoch after every epoch (either may be NULL). */
loom_callback *loom_hook_callback(loom_hook on_batch, loom_hook on_epoch, void *user);

typedef enum loom_monitor_mode { LOOM_MODE_AUTO = 0, LOOM_MODE_MIN, LOOM_MODE_MAX } loom_monitor_mode;
/* Keras EarlyStopping(monitor, min_delta, patience, mode, restore_best_weights); monitor NULL =
 * "val_loss". When the monitored key is missing training goes on (as Keras warns and goes on). */
loom_callback *loom_early_stopping(const char *monitor, float min_delta, int patience,
                                   loom_monitor_mode mode, int restore_best_weights);
/* Keras ReduceLROnPlateau(monitor, factor, patience, mode, min_delta, cooldown, min_lr). */
loom_callback *loom_reduce_lr_on_plateau(const char *monitor, float factor, int patience,
                                         loom_monitor_mode mode, float min_delta, int cooldown,
                                         float min_lr);
/* Stops training when a loss, the weighted total or the gradient norm is NaN or infinite, before
 * that step's update: the weights of the last good step are kept, fit returns LOOM_ERR_NAN and the
 * message names the output (or says total / gradient norm). Exception: plain SGD updates some
 * Dense layers inside the backward pass (see loom_sgd); a non-finite gradient has then already
 * reached them, and the message names those layers instead of claiming their weights were kept. */
loom_callback *loom_terminate_on_nan(void);
/* Frees a callback (not while a fit uses it). NULL is allowed. */
void loom_callback_free(loom_callback *cb);
/* Was the last fit stopped by this callback (EarlyStopping, TerminateOnNaN, hook)? At which epoch
 * (0-based, -1 if not stopped)? */
int loom_callback_stopped_epoch(const loom_callback *cb);

/* ---------------------------------------------------------------- saving and loading */

/* Saves everything needed to go on training exactly where the model is: architecture (JSON in
 * Keras's to_json layout), weights, compile settings, optimizer state, learning-rate schedule
 * position, dropout stream position, epochs done and the history. Atomic: written to a temporary
 * file in the same folder, flushed to disk, renamed over `path`; a crash at any moment leaves the
 * previous file intact, and the temporaries such crashes leave ("<path>.tmpXXXXXX", which no save
 * is writing) are removed by the next save to the same path. A file saved over keeps its mode
 * (0600 stays 0600) and, when the caller may set it, its owner; a new file gets 0666 less the
 * umask. A symbolic link is followed: the file it names is replaced and the link stays; a link to
 * a missing file is refused (LOOM_ERR_IO), as is a path that is not a regular file (a device
 * node, a folder, a FIFO). Models may be saved from several threads at once (one thread per
 * model). A model whose loss is a user C function cannot be saved (LOOM_ERR_STATE). */
loom_status loom_model_save(loom_model *m, const char *path);
/* Loads a whole model (compiled if it was saved compiled). NULL on any problem, with a message
 * saying what and where in err; nothing is half-loaded. */
loom_model *loom_model_load(const char *path, char *err, size_t errlen);
/* The same from bytes in memory (fuzzing, embedded files); `what` names them in messages. */
loom_model *loom_model_parse(const void *data, size_t size, const char *what, char *err, size_t errlen);
/* Copies weights from a model file into m by layer name: a .loom file, a Keras 3 .weights.h5
 * (layers by their Keras 3 class paths in m's layer order) or a Keras 2 .h5 (save_weights or a
 * full model: by layer name). Every layer of m with weights must be in the file with the same
 * weight shapes; otherwise nothing changes and the message lists each mismatched layer. */
loom_status loom_load_weights(loom_model *m, const char *path);
/* Every epoch trained since compile (the histories of successive fits joined; kept across save
 * and load), and how many epochs that is: pass it as initial_epoch to resume. */
const loom_history *loom_model_history(const loom_model *m);
int loom_model_epochs_done(const loom_model *m);
/* Keras ModelCheckpoint: saves to `path` ("{epoch}" in it becomes the 1-based epoch) after every
 * epoch, or every save_every_steps training steps when > 0; with save_best_only, only when
 * `monitor` (NULL = "val_loss") improves. A failed save stops training with its message. */
loom_callback *loom_model_checkpoint(const char *path, const char *monitor, loom_monitor_mode mode,
                                     int save_best_only, long save_every_steps);

/* ---------------------------------------------------------------- ONNX export */

/* Writes the model's inference graph as an ONNX model (opset 17) for ONNX Runtime, TensorRT,
 * OpenVINO...: graph inputs and outputs named as loom's, float32, axis 0 the symbolic "batch"; an
 * input that is a sequence reaching a recurrent or attention layer gets a symbolic time axis
 * "<input>_steps" (unless a layer fixes its length: Flatten/Reshape of it, a causal mask, an
 * unrolled recurrent layer).
 * Dropout is left out, BatchNormalization uses its moving statistics, channels-last convolutions
 * and pooling are wrapped in Transposes around ONNX's channels-first operators, SimpleRNN / LSTM /
 * GRU / Bidirectional are ONNX's RNN / LSTM / GRU operators (Keras gate order and reset_after
 * mapped), MultiHeadAttention is decomposed into MatMul / Softmax, Embedding is Gather (ids must
 * lie in the table: loom's zero row for an invalid id has no ONNX equivalent). Keras masks
 * (Embedding mask_zero) are carried: a recurrent layer that receives one, or whose activations
 * ONNX's operators cannot name (gelu, swish, softmax, linear, elu, leaky_relu), is unrolled step
 * by step (its time axis then has a fixed length); MultiHeadAttention masks padded steps as loom
 * does. A user C layer cannot be exported: LOOM_ERR_ARGUMENT naming it. The file is written to
 * "<path>.partial", then renamed over path.
 * LOOM_ERR_STATE when loom was built without ONNX support (CMake LOOM_USE_ONNX). */
loom_status loom_model_export_onnx(loom_model *m, const char *path);
/* ---- Keras and other model files (issue 15)
 * Formats (README "Model files"): loom's own .loom; Keras 3 .keras (a zip of config.json,
 * metadata.json and model.weights.h5); Keras 2 / tf.keras full-model .h5 (model_config and
 * training_config attributes, model_weights/); weights-only Keras 3 .weights.h5 and Keras 2
 * save_weights .h5. HDF5 needs libhdf5 and .keras libzip at build time (LOOM_USE_HDF5,
 * LOOM_USE_LIBZIP); without them those formats are refused with a message saying so.
 * HDF5's own parser is not hardened against hostile files: loom checks every dataset's class and
 * shape against the architecture before reading it and bounds every string, but a crafted file
 * can still reach HDF5's internals; import untrusted HDF5 files in a process you can lose. */

/* A whole model from any file loom reads, the format taken from the content (not the name): a
 * .loom file (as loom_model_load), a Keras 3 .keras zip, a Keras 2 full-model .h5, a
 * TensorFlow.js layers model.json (its .bin shards read beside it; from memory only a model
 * without weights), or a bare Keras JSON config (then the weights are freshly initialised). Keras configs of either dialect
 * are read (Sequential, Functional, models nested as layers, which are flattened into the graph
 * with their layers' names); every layer option is checked: one loom cannot honour (a weight
 * constraint, an activity regularizer, channels_first, a frozen layer, return_state, initial
 * states, ...) is an error naming the layer, its class and the key. Keras 2's hard_sigmoid is read
 * as LOOM_HARD_SIGMOID_KERAS2. The file's compile settings (Keras 2 training_config, Keras 3
 * compile_config) compile the model when loom has its losses and optimizer; otherwise the model is
 * returned uncompiled and loom_model_compile_note (and fit's not-compiled error) says which
 * output's loss is missing and how to pass it as a C loss. NULL with a message on error. */
loom_model *loom_model_import(const char *path, char *err, size_t errlen);
/* Options of an import. A None first per-sample axis of an input (Keras batch_shape
 * [null, null, 16], Keras 2 batch_input_shape) is a variable time axis (LOOM_DIM_VARIABLE; see
 * "variable-length sequences"), and export writes it back as null. none_dim: the size given to
 * every per-sample input dimension the file leaves unknown, the time axis included (fixing it);
 * without it (0) a None on any other axis is refused with a message naming the input. */
typedef struct loom_import_options {
    int none_dim;
} loom_import_options;
loom_model *loom_model_import_with(const char *path, const loom_import_options *opt, char *err, size_t errlen);
/* The same from bytes in memory (fuzzing, embedded files); `what` names them in messages. */
loom_model *loom_model_import_memory(const void *data, size_t size, const char *what, char *err, size_t errlen);
/* What an importer could not take over from a file's compile settings ("" when nothing). */
const char *loom_model_compile_note(const loom_model *m);
/* Writes the model in the format its extension names: .loom (loom_model_save), .keras (Keras 3:
 * config.json with build_config and compile_config, metadata.json, model.weights.h5 in the
 * layers/<class>/vars/<i> layout, read by keras.saving.load_model), .weights.h5 (that weights
 * file alone), .json (TensorFlow.js layers format: model.json and <stem>.weights.bin beside it,
 * read by tf.loadLayersModel). Atomic per file. Message on m on error. */
loom_status loom_model_export(loom_model *m, const char *path);

/* ---------------------------------------------------------------- data files
 * Readers for NumPy .npy / .npz, CSV and IDX (MNIST family) files. Each converts to float32,
 * never trusts a size it read (every header field is checked against the bytes present), and on
 * failure returns a status and writes a message naming the file (and line / member / field) into
 * err (errlen bytes, may be 0). Nothing is half-loaded: on error *out is left empty. Paths must
 * name regular files (devices, directories and pipes are refused before reading) of at most
 * 4 GiB; a deflated .npz member may not become more than 1032 times its compressed size as
 * float32 (uint8 zeros would otherwise grow 4128 times). */

#define LOOM_NDARRAY_MAX_RANK 8
typedef struct loom_ndarray {
    int rank;
    size_t dims[LOOM_NDARRAY_MAX_RANK];
    size_t size;  /* product of dims */
    float *data;  /* size floats, C order; owned, free with loom_ndarray_free */
} loom_ndarray;

void loom_ndarray_free(loom_ndarray *a);

/* ---- binding arrays read from files */
/* An array for loom_data / loom_predict from an ndarray: samples along the first axis (n =
 * dims[0]), count = size, bound to the input or output `name` (NULL: by position). The ndarray
 * keeps owning the floats. An ndarray of rank 0 gives an array with no samples, which binding
 * refuses. Binding then checks the remaining axes against the input's or target's shape. */
loom_array loom_array_from_ndarray(const char *name, const loom_ndarray *a);

/* .npy versions 1-3: float32/64, int8-64, uint8-64, bool, either byte order; C order only
 * (Fortran order and object arrays are refused with LOOM_ERR_DATA). */
loom_status loom_npy_load(const char *path, loom_ndarray *out, char *err, size_t errlen);
/* The same from a memory buffer; `what` names it in messages. */
loom_status loom_npy_parse(const void *buf, size_t len, const char *what, loom_ndarray *out, char *err,
                           size_t errlen);
/* One member of an .npz archive (stored or deflated), by name with or without ".npy". */
loom_status loom_npz_load(const char *path, const char *member, loom_ndarray *out, char *err, size_t errlen);
loom_status loom_npz_parse(const void *buf, size_t len, const char *what, const char *member,
                           loom_ndarray *out, char *err, size_t errlen);
/* Names of the members of an .npz archive (without ".npy"): returns the count (at most max written
 * into names, each a malloc'd string the caller frees), or -1 with err set. */
int loom_npz_members(const char *path, char **names, int max, char *err, size_t errlen);

/* IDX files (MNIST family: magic 0x00000800 | type << 8 | rank; big-endian dims), plain or
 * gzip-compressed (as Debian's dataset packages ship them). */
loom_status loom_idx_load(const char *path, loom_ndarray *out, char *err, size_t errlen);
loom_status loom_idx_parse(const void *buf, size_t len, const char *what, loom_ndarray *out, char *err,
                           size_t errlen);

/* CSV: numbers separated by `delimiter` (0 = ','), optional header row of column names, quoted
 * fields allowed. Empty fields, "NA", "NaN" and "nan" are missing values: kept as NaN and reported
 * with their line when a selection needs them. "inf" and numbers beyond float32 ("1e999") alike are
 * kept as infinities and refused, with their line and column, when a selection needs them. */
typedef struct loom_csv loom_csv;
loom_csv *loom_csv_read(const char *path, int has_header, char delimiter, char *err, size_t errlen);
loom_csv *loom_csv_parse(const char *text, size_t len, const char *what, int has_header, char delimiter,
                         char *err, size_t errlen);
void loom_csv_free(loom_csv *csv);
size_t loom_csv_rows(const loom_csv *csv);
int loom_csv_cols(const loom_csv *csv);
/* Column name ("" when there is no header) and index by name (-1 if unknown). */
const char *loom_csv_column_name(const loom_csv *csv, int col);
int loom_csv_column_index(const loom_csv *csv, const char *name);
/* Copies the named columns (n of them) into out (rows x n, row-major), e.g. the columns of one
 * model input. A missing value in them is LOOM_ERR_DATA naming the line and column; an unknown
 * column is LOOM_ERR_NAME listing the known ones. */
loom_status loom_csv_select(const loom_csv *csv, int n, const char *const *columns, float *out, char *err,
                            size_t errlen);

/* ---- NumPy .npz writing */
/* Writes n float32 arrays as an .npz archive (numpy.load and loom_npz_load read it), member i
 * named names[i] (".npy" is appended; 1 to 200 characters, no '/', no duplicates). compress:
 * deflate the members (numpy.savez_compressed), else store them (numpy.savez). Each array's size
 * must equal the product of its dims. Atomic: written beside `path`, then renamed over it. At most
 * 4 GiB in all (no ZIP64). */
loom_status loom_npz_save(const char *path, int n, const char *const *names, const loom_ndarray *arrays,
                          int compress, char *err, size_t errlen);

/* ---- CSVLogger */
/* Keras CSVLogger(filename, separator, append): after every epoch a row "epoch,<every log key in
 * sorted order>" (epoch counts from 0; the header is written first unless appending to a file
 * that already has lines), flushed at once. separator 0 means ','; one that could belong to a
 * number (digits, '.', '+', '-', 'e', "nan", "inf" letters), a quote or a line break is refused
 * (NULL), as is an empty path. The file is opened at the first epoch of each fit; a file that
 * cannot be opened or written stops training with LOOM_ERR_IO naming it. */
loom_callback *loom_csv_logger(const char *path, char separator, int append);

/* ---- compile settings and structure read back
 * For programs that change one compile setting and recompile with the others (the loom program's
 * `fit` flags), and for drawing the model (`loom plot`). Strings returned point into the model
 * and stay valid until it is recompiled or freed. */
int loom_model_is_compiled(const loom_model *m);
/* Output k's loss as compile resolved it (canonical Keras name and options); name NULL when the
 * output has no loss. LOOM_ERR_STATE when not compiled. */
loom_status loom_model_get_loss(const loom_model *m, int k, loom_loss *out);
int loom_model_num_metrics(const loom_model *m);
/* Metric i: its output and the name as it was given to compile. */
loom_status loom_model_get_metric(const loom_model *m, int i, loom_metric_spec *out);
/* The optimizer's configuration (not its state) and the balancing method's. */
loom_status loom_model_get_optimizer(const loom_model *m, loom_optimizer *out);
loom_status loom_model_get_balance(const loom_model *m, loom_balance *out);
/* The model's layer calls ("nodes") in execution order, Input layers first among them: the layer
 * called, the positions of the nodes feeding it (-1 out of range), its per-sample output shape
 * (rank returned, dims written when not NULL; -1 out of range), and the node producing output k. */
int loom_model_num_nodes(const loom_model *m);
loom_layer *loom_model_node_layer(const loom_model *m, int i);
int loom_model_node_num_inputs(const loom_model *m, int i);
int loom_model_node_input(const loom_model *m, int i, int j);
int loom_model_node_shape(const loom_model *m, int i, int *dims);
int loom_model_output_node(const loom_model *m, int k);
/* ---- distributed training: data-parallel over MPI (optional: CMake LOOM_USE_MPI).
 * Run the same program under `mpirun -np N`; every rank builds and compiles the same model with
 * the same seed, loads the same (global) data and calls loom_fit with fit options whose `dist` is
 * a context from loom_dist_create. Then:
 *  - batch_size is the batch of ONE rank; the global batch is N x batch_size. Every epoch every
 *    rank computes the same seeded permutation of the whole data set; global batch j is positions
 *    [j*N*batch_size, (j+1)*N*batch_size) of it and rank r takes the r-th batch_size of them, so
 *    N ranks with batch B/N see exactly the samples one process sees with batch B. The last,
 *    partial global batch of R samples is split in rank order, the first R mod N ranks taking one
 *    more than R / N (a rank may get none; it still takes part in the reduction).
 *  - The loss is Keras's sum_over_batch_size over the GLOBAL batch: each rank's gradient is
 *    scaled by its share of the global batch and the gradients are summed with non-blocking
 *    allreduces over buckets of the flat gradient buffer (reverse layer order, fixed order), each
 *    started as soon as the backward has written it; the optimizer steps after all have arrived,
 *    so every rank applies the same gradient and the weights stay bit-identical across ranks.
 *  - Logged losses and metrics, validation (sharded the same way) and the history are reduced
 *    from sums and counts and are identical on every rank, so callbacks decide the same
 *    everywhere; the progress bar prints on rank 0 only; ModelCheckpoint and CSVLogger write
 *    from rank 0 only.
 *    A saved model resumes on any number of ranks (or on one process).
 *  - Faults: an error on one rank (bad data, a non-finite loss, a failing callback or batch
 *    function) stops every rank at the same step: that rank returns its own message, the others
 *    LOOM_ERR_DIST naming the step. A rank that dies is handled by mpirun, which ends the job.
 *  - Non-trainable state (BatchNormalization's moving statistics) is computed from each rank's
 *    batch and then rank 0's is broadcast after every step (PyTorch DDP's broadcast_buffers), so
 *    every rank holds the same model; the normalisation itself uses per-rank batch statistics,
 *    unless the layer is synchronized (loom_batchnorm_options): then the global batch's.
 *  - Multi-task balancing: the methods see the global batch. Their losses are the global ones,
 *    and the per-loss gradients they look at (PCGrad, MGDA, CAGrad, Nash-MTL, GradNorm, the
 *    diagnostics) are each reduced over the ranks before the method combines them, so every rank
 *    takes the same decision one process takes; the loss-weighting methods (uncertainty, DWA,
 *    RLW, schedules) reduce their one weighted gradient as a plain step does.
 *  - A loss that a sequence mask normalises (Keras: by the valid steps of the batch) is
 *    normalised by the valid steps of the GLOBAL batch: each rank's part counts by its share of
 *    them. Dropout draws a different mask stream on each rank (statistically, not bitwise,
 *    equal to one process).
 * With loom_fit_generator each rank's batch function returns that rank's part of the step. */

/* 1 when loom was built with MPI, else 0. */
int loom_dist_available(void);
/* A context over a communicator: comm points to an MPI_Comm (NULL: MPI_COMM_WORLD), so loom.h
 * does not need mpi.h. Collective: every rank of the communicator calls it (and
 * loom_dist_free). Initialises MPI if the program has not (and then finalises it in
 * loom_dist_free). NULL with a message in err when loom was built without MPI or MPI fails. */
loom_dist *loom_dist_create(const void *comm, char *err, size_t errlen);
void loom_dist_free(loom_dist *d);
int loom_dist_rank(const loom_dist *d);
int loom_dist_size(const loom_dist *d);
/* The number of processes an MPI launcher (mpirun, mpiexec, srun) started this one among, from
 * its environment; 0 when not started by one. Works without MPI built in, so a program can
 * refuse to train N independent copies. */
int loom_dist_launcher_size(void);
/* The gradient bucket size in bytes (default 4 MiB; clamped to 256 B .. 1 GiB). */
void loom_dist_set_bucket_bytes(loom_dist *d, size_t bytes);
/* Where this rank's distributed steps spent their time, summed over every fit with this context:
 * *steps training steps, *wait_s seconds waiting after the backward for the gradient reductions
 * to finish (what the overlap with the backward did not hide). Either pointer may be NULL. */
void loom_dist_stats(const loom_dist *d, long *steps, double *wait_s);

/* ---- distributed training: agreeing before and after a fit (the loom program's `fit`)
 * 1 when `flag` is nonzero on any rank of d, else 0; -1 when the reduction fails. Collective:
 * every rank calls it, so a program whose setup (reading files, compiling) fails on one rank can
 * stop every rank instead of leaving the others waiting in the fit. NULL d: flag != 0. */
int loom_dist_any(loom_dist *d, int flag);

#ifdef __cplusplus
}
#endif
#endif /* LOOM_H */
