/* model.h — the compiled model: ordered nodes, flat parameter buffers, outputs with their losses,
 * and the engine that runs forward and backward over them (internal). */
#ifndef LOOM_MODEL_H
#define LOOM_MODEL_H

#include "graph/graph.h"
#include "ops/losses.h"
#include "ops/metrics.h"
#include "mtl/mtl.h"

/* One node of the model in execution order, with its buffers in the activation arena. */
typedef struct loom_step_node {
    loom_node *node;
    int *in_pos;      /* positions of its inputs in the order */
    loom_shape shape; /* per-sample output shape at the current steps (loom_engine_set_steps): the
                         node's out_shape with every variable time axis made concrete */
    size_t size;      /* per-sample output size at the current steps */
    bool reshape;     /* the shape follows a variable time axis: built again at each new length */
    size_t cap_size, cap_scratch; /* per-sample size and scratch floats the arena was planned for */
    size_t scratch;   /* scratch floats at the planned batch */
    float *val, *grad, *scr;
    int grad_from;    /* backward position where grad's lifetime starts (engine.c); -1: no grad */
    uint64_t reach;   /* bit k: the node lies on a path to output k */
    int n_consumers;  /* uses as an input by later nodes */
    bool is_input;
    float *mask;      /* batch x steps Keras mask, or NULL (a KEEP node shares its input's) */
    bool makes_mask;  /* the op computes the mask (LOOM_MASK_MAKE) into its own buffer */
    bool dw_sole;     /* a Dense layer's only call site: its backward writes the weights' gradients
                         whole, so nothing zeroes them first (compile.c; the fast paths and what
                         they gain are documented with loom_op_ctx in graph/graph.h) */
    bool sgd_update;  /* plain SGD updates this node's layer inside its backward (compile.c) */
    bool frozen;      /* its layer was not trainable at the last compile: no weight gradients, and a
                         BatchNormalization runs in inference mode (Keras 3) */
    bool needs_grad;  /* a trainable weight lies at or before this node: its backward has work */
    bool bf16;        /* computes its products in bfloat16 (mixed_bfloat16 at the last compile) */
    loom_product *products; /* its matrix products, planned for the planned batch (engine.c) */
    int n_products;
    float **din;      /* n_in pointers, set per backward */
    const float **in; /* n_in pointers */
} loom_step_node;

typedef struct loom_output {
    char name[LOOM_NAME_MAX];
    int pos;                 /* position of the producing node in the order */
    size_t size;             /* per-sample size */
    int dim;                 /* last axis */
    size_t rows_per_sample;  /* size / dim */
    loom_loss_impl loss;     /* kind LOSS_NONE: no loss */
    float weight;
    bool fused;              /* the loss reads logits and seeds dL/dz */
    int target_dim;
    size_t target_size;      /* per sample */
    /* arena buffers at the planned batch */
    float *target, *sw, *lgrad, *values;
    float *row_w;            /* masked outputs: per-row weights mask * sw * rows / valid */
    const float *logits;     /* fused: the loss's input (pre-activation) */
    const float *softmax;    /* fused after a softmax: its output, which spares the loss exp() */
    bool has_sw;
    float loss_value;        /* last batch, unweighted */
    double mask_valid;       /* masked outputs: the valid entries of the last batch (what its loss is
                                normalised by; a distributed fit sums them over the ranks) */
    /* weight schedule (multi-task balancing) */
    bool has_schedule, schedule_by_epoch;
    loom_mtl_schedule schedule;
    float effective_weight;  /* what the last step used */
    /* fit's class_weight (class_weight.c): weight of class c < n_class_w, other classes 1 */
    float *class_w;
    int n_class_w;
    float *metric_w;         /* arena: per-row weights of the metrics of the batch */
} loom_output;

typedef struct loom_balance_state loom_balance_state;
typedef struct loom_branches loom_branches;

/* A weight tensor in the flat buffers. */
typedef struct loom_param_tensor {
    loom_layer *layer;
    int index;
    size_t offset, size;
} loom_param_tensor;

/* Running mean of one log value over an epoch, weighted by batch size. */
typedef struct loom_running {
    double sum, count;
} loom_running;

#define LOOM_LOG_KEY_MAX (2 * LOOM_NAME_MAX + 8)

struct loom_logs {
    int n;
    char (*keys)[LOOM_LOG_KEY_MAX];
    float *values;
};

/* User arrays bound to the model's inputs and outputs (data.c). */
typedef struct loom_bound_data {
    size_t n;
    const float **x;  /* per model input */
    const float **y;  /* per output (NULL: none) */
    const float **sw; /* per output (NULL: none) */
    /* variable-length inputs (engine.c): per input, the steps of the array (0: a fixed input) and
     * the per-sample lengths (NULL: every sample uses all of them); per output, the floats of one
     * sample of the target array (a sequence target may be longer than the batch's output) */
    int *x_steps;
    const int **lengths;
    size_t *y_per;
} loom_bound_data;

struct loom_model {
    loom_graph *g;
    loom_error err;
    int n_inputs;
    int *input_pos;          /* position of each input node in the order */
    int n_outputs;
    loom_output *outputs;
    int n_order;
    loom_step_node *order;
    int n_layers;
    loom_layer **layers;     /* model layers (Input layers included) in order of first use */
    /* parameters: params is the graph's buffer, shared with every model over the graph (the graph
     * moves it when a new model places more layers); n_params covers this model's last weight, and
     * other models' weights may lie between its own (dense_params false) */
    size_t n_params;
    float *params, *grads;
    bool dense_params;       /* its tensors fill [0, n_params) in tensor order */
    bool *t_frozen;          /* per tensor: frozen at the last compile (or at loom_model_new) */
    int n_tensors;
    loom_param_tensor *tensors;
    size_t *t_offset, *t_size;
    bool *t_active;
    bool *t_sgd_update;      /* the tensor's layer is updated inside the backward (sgd_update) */
    int *t_sole_pos;         /* position of the dw_sole node that writes the tensor's gradient, or -1 */
    /* compile state */
    bool compiled;
    /* why a model made by an importer is not compiled, or what of the file's compile settings it
     * left out (a loss, metric or optimizer loom does not have); "" when nothing */
    char compile_note[LOOM_ERR_MAX];
    int dtype_policy;        /* loom_dtype_policy of the last compile (layers without their own) */
    float *bf16_ws;          /* the products' workspace (bfloat16 packing, oneDNN's scratchpad), shared by
                                the nodes (engine.c) */
    size_t bf16_ws_floats;   /* its size per lane, the largest any node asked for at the plan */
    int ws_lanes;            /* lanes of concurrent branches it holds a workspace for (one after another) */
    loom_branches *branches; /* the independent branches of the order (core/branches.h), found at the
                                first plan */
    char note[256];          /* compile's own note (mixed_bfloat16 without AVX512-BF16); loom_model_compile_note */
    loom_optimizer opt;
    float *slots;
    bool sgd_in_backward;    /* plain SGD: layers that allow it are updated in the backward */
    bool sgd_step;           /* train_step's backward is running: update them now, at sgd_step_lr */
    float sgd_step_lr;
    bool no_sgd_fusion;      /* this fit's steps sum or rescale the gradients before the update
                              * (distributed, loss balancing): no SGD inside the backward */
    bool plan_sgd_fused;     /* the plan's dW products carry -lr (engine.c, sgd_fused_steps) */
    long iterations;
    bool lr_overridden;
    float lr_override;
    int n_metrics;
    int n_metric_keys;       /* log keys of the metrics (a vector metric has several) */
    loom_metric_impl *metrics;
    char (*metric_names)[LOOM_METRIC_SPEC_MAX]; /* as the user wrote them (saved with the model) */
    /* balancing method state (NULL: Keras's static weights) */
    loom_balance_state *balance;
    /* log keys (without val_): loss, metrics, per-output losses, then with balancing the
     * effective weights (<output>_weight) and the diagnostics (grad_cos/<a>~<b>) */
    loom_logs keys;
    int key_weights, key_diag;   /* first index of each group; -1 when absent */
    const char **key_ptrs;   /* keys.keys as pointers, for the progress bar */
    bool log_output_losses;
    /* per-call APIs: a binding and running logs made once, so a user's loop allocates nothing */
    loom_bound_data call_data;
    loom_running *call_run;  /* keys.n entries */
    /* variable-length inputs (engine.c): per input, the current steps (0: a fixed input), the
     * steps the arena is planned for, and the declared maximum (loom_model_set_max_steps) */
    bool variable;
    int *steps, *plan_steps, *max_steps;
    int *want_steps;         /* the longest reserved (loom_engine_reserve_steps) or gathered */
    /* activation arena */
    int plan_batch;
    float *arena;
    uint64_t rng_step;       /* dropout stream position */
    bool freeze_state;       /* gradient queries: training-mode forward without moving statistics */
    bool stop_training;
    bool has_class_weights;  /* fit installed class weights (class_weight.c) */
    bool class_weights_on;   /* ... and a training step is running: the losses use them */
    bool check_finite;       /* binding refuses non-finite values (loom_set_check_finite) */
    /* distributed training (src/dist/, installed by the training loop; all zero otherwise):
     * backward_hook runs after each position of the backward (the node there is done), so
     * finished gradient buckets can be reduced while the rest of the backward runs; rng_salt
     * gives each rank its own dropout stream; no_files: this rank writes no checkpoints */
    void (*backward_hook)(void *user, int pos);
    void *backward_hook_user;
    /* and the ops' reductions over the ranks (loom_op_ctx.sync_sum, sync_share) */
    void (*sync_sum)(void *user, double *v, size_t n);
    void *sync_user;
    double sync_share;
    uint64_t rng_salt;
    bool no_files;
    /* training progress, saved with the model */
    int epochs_done;
    loom_history *log;       /* every epoch trained since compile (fit's histories joined) */
};

/* class_weight.c: fit installs the maps (checked; errors name the output) and clears them after */
loom_status loom_class_weights_set(loom_model *m, int n, const loom_class_weight *cw);
void loom_class_weights_clear(loom_model *m);
/* The class weight of a target row of output o (which has a map). */
float loom_class_weight_of(const loom_output *o, const float *target_row);

/* engine.c */
/* A model with variable-length inputs keeps their steps in small arrays on the stack */
#define LOOM_MAX_PLAN_INPUTS 64
/* Plans (or re-plans) the activation arena for batches up to `batch`. The only allocation on the
 * training path; a no-op when the plan already fits. */
loom_status loom_engine_plan(loom_model *m, int batch);
/* Forward over the order for `batch` samples whose inputs/targets are already gathered into the
 * arena. With `losses`, computes every output's loss (values in outputs[k].loss_value) and, for outputs whose bit
 * is set in grad_mask, dL_k/d(pred) into lgrad. Returns the regularisation penalty through *reg. */
loom_status loom_engine_forward(loom_model *m, int batch, bool training, bool losses,
                                uint64_t grad_mask, float *reg);
/* Backward for the outputs in `mask`, each seeded with seed_weights[k] (NULL: the loss weights),
 * plus the regularisation gradient when with_reg, WRITTEN into dw (n_params floats). Can run
 * several times after one forward (one gradient buffer per subset). Marks m->t_active. */
void loom_engine_backward(loom_model *m, int batch, uint64_t mask, bool with_reg, const float *seed_weights,
                          float *dw);
/* A rank without samples in a distributed step: joins the reductions the forward (training) or
 * the backward over `mask` would make (loom_op.sync_idle), so that the ranks with samples do not
 * wait for it; computes nothing. */
void loom_engine_sync_idle(loom_model *m, bool backward, uint64_t mask);
/* Adds the regularisation gradient into dw; returns the penalty. */
float loom_engine_add_regularization(const loom_model *m, float *dw);
/* Outputs whose loss takes part in the total gradient (has a loss and a nonzero weight). */
uint64_t loom_engine_active_mask(const loom_model *m);
/* Copies samples idx[0..batch) (or first..first+batch when idx is NULL) of the bound data into
 * the arena. With variable-length inputs it first sets the batch's steps (each input's longest
 * sample in the batch), which re-plans the arena when they exceed the plan (the only case in which
 * it allocates; fit reserves the data's longest first, so its steps never do). */
loom_status loom_engine_gather(loom_model *m, const loom_bound_data *d, const size_t *idx, size_t first,
                               int batch);
/* Makes every shape concrete for these steps per model input (entries of fixed inputs ignored):
 * the layers whose shapes follow a variable time axis are built again (no allocation). An error
 * names the layer (Conv1D longer than the sequence, two sequences Add cannot join). */
loom_status loom_engine_set_steps(loom_model *m, const int *steps);
/* Raises the planned steps to the longest sample of the bound data (the next plan covers it). */
void loom_engine_reserve_steps(loom_model *m, const loom_bound_data *d);

/* model.c: a binding's per-input/output pointer arrays, allocated once (the model keeps one for the
 * per-call APIs) and freed with loom_unbind. */
loom_status loom_bind_alloc(loom_model *m, loom_bound_data *d);
void loom_unbind(loom_bound_data *d);

/* model.c: every weight finite, and variances (non_negative weights) >= 0: for weights read from a
 * file. The message names the layer and the weight. */
loom_status loom_check_weight_values(const loom_model *m, const char *what, loom_error *err);

/* data.c */
/* Binds loom_data by name/position to the model's inputs and outputs, checking counts and names.
 * need_targets: targets required for every output with a loss. Allocates d's arrays; free with
 * loom_unbind. what: "training data", "validation data"... used in messages. */
loom_status loom_bind(loom_model *m, const loom_data *data, bool need_targets, const char *what,
                      loom_bound_data *d);
/* The second half of loom_bind: fills arrays made by loom_bind_alloc from a loom_data, as often as
 * needed (no allocation: a generator's batches are bound this way). */
loom_status loom_bind_fill(loom_model *m, const loom_data *data, bool need_targets, const char *what,
                           loom_bound_data *d);

/* compile.c: the learning rate of the next step (schedule or override) */
float loom_current_lr(const loom_model *m);
/* compile.c: reads the layers' trainable flags into t_frozen and the nodes' frozen / needs_grad
 * (at loom_model_new and at every compile: a change takes effect at the next compile). */
void loom_model_snapshot_trainable(loom_model *m);

/* log_keys.c: (re)builds the log keys from the compile settings: the effective weights when
 * show_weights, the gradient cosines of every pair of the n_tasks outputs task_output[] when
 * n_tasks > 0 (core/balance.c decides both). */
loom_status loom_log_keys_build(loom_model *m, bool show_weights, int n_tasks, const int *task_output);
/* Keys that evaluation produces (the training-only effective weights and diagnostics excluded). */
int loom_eval_key_count(const loom_model *m);

/* history.c */
/* A history with n_keys keys followed by "val_" copies of the first n_val of them. */
loom_history *loom_history_create(int n_keys, char (*keys)[LOOM_LOG_KEY_MAX], int n_val);
loom_status loom_history_append(loom_history *h, const float *values);
/* Appends one epoch given as (keys, values) of another history layout: keys it lacks get NaN,
 * new keys are added (earlier epochs NaN). */
loom_status loom_history_append_keyed(loom_history *h, int n, const char *const *keys, const float *values);

/* callbacks.c: the fit loop's view of the callbacks */
void loom_callbacks_begin(loom_model *m, loom_callback *const *cbs, int n);
/* Return LOOM_OK to go on; stop flag set in m->stop_training to stop cleanly. */
loom_status loom_callbacks_batch_end(loom_model *m, loom_callback *const *cbs, int n, int epoch,
                                     int batch, const loom_logs *logs);
loom_status loom_callbacks_epoch_end(loom_model *m, loom_callback *const *cbs, int n, int epoch,
                                     const loom_logs *logs);
void loom_callbacks_end(loom_model *m, loom_callback *const *cbs, int n);
bool loom_callbacks_want_nan_check(loom_callback *const *cbs, int n);
void loom_callbacks_note_nan_stop(loom_callback *const *cbs, int n, int epoch);

#endif
