/* losses.h — Keras's losses over flat buffers, value and gradient (losses.c; internal) */
#ifndef LOOM_LOSSES_H
#define LOOM_LOSSES_H

#include "base/base.h"


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

#endif
