/* balance.h — multi-task balancing state and the balanced training step (internal). */
#ifndef LOOM_BALANCE_H
#define LOOM_BALANCE_H

#include "core/model.h"
#include "mtl/mtl.h"

struct loom_balance_state {
    loom_balance cfg;
    int K;                                /* outputs with a loss ("tasks") */
    int out_of[LOOM_MTL_MAX_TASKS];       /* task i -> output index */
    bool *shared;                         /* per weight tensor: reached by >= 2 losses */
    int *head_of;                         /* per weight tensor: the one task reaching it, or -1 */
    size_t n_shared;                      /* shared parameters */
    float *G;                             /* K x n_params per-loss gradients */
    /* uncertainty weighting: log-variances and their Adam state */
    double uw_s[LOOM_MTL_MAX_TASKS], uw_m[LOOM_MTL_MAX_TASKS], uw_v[LOOM_MTL_MAX_TASKS];
    long uw_t;
    /* GradNorm */
    double gn_w[LOOM_MTL_MAX_TASKS], gn_L0[LOOM_MTL_MAX_TASKS];
    bool gn_has_L0;
    loom_layer *gn_layer;
    /* DWA: epoch means of the unweighted losses */
    int dwa_epoch, dwa_epochs_seen;
    double dwa_sum[LOOM_MTL_MAX_TASKS], dwa_count;
    double dwa_prev1[LOOM_MTL_MAX_TASKS], dwa_prev2[LOOM_MTL_MAX_TASKS];
    /* Nash-MTL */
    double nash_alpha[LOOM_MTL_MAX_TASKS];
    bool nash_has;
    /* diagnostics of this step: cosines of the pairs i < j in row order */
    bool diag_measured;
    double diag_cos[LOOM_MTL_MAX_TASKS * (LOOM_MTL_MAX_TASKS - 1) / 2];
};

/* Validates the settings and allocates the per-loss buffers (compile time). */
loom_status loom_balance_setup(loom_model *m, const loom_balance *cfg);
void loom_balance_free(loom_balance_state *b);
/* (Re)builds the model's log keys for its compile settings and balancing method. */
loom_status loom_balance_log_keys(loom_model *m);
/* Is the balanced step needed (a method or a weight schedule)? */
bool loom_balance_active(const loom_model *m);
/* A distributed step (train/ over dist/, which core/ cannot call): the forward has run on this
 * rank's `batch` samples (possibly none) and the outputs' loss_value are the global batch's.
 * Output k's gradient counts out_scale[k] of the global one (the rank's share of the global
 * batch, or of the valid steps of a masked output); `sum` adds a float buffer over the ranks. */
typedef struct loom_balance_reduce {
    float out_scale[LOOM_MAX_OUTPUTS];
    float grad_scale;   /* what the caller's reduction scales m->grads by (when it reduces them) */
    int global_batch;
    float reg;          /* the penalty of the forward */
    loom_status (*sum)(void *user, float *v, size_t n);
    void *user;
} loom_balance_reduce;

/* Forward, the balanced gradient into m->grads (regularisation included) and m->t_active;
 * *total receives the logged total. With red (distributed): no forward, and the per-loss
 * gradients the method looks at are reduced first, so every rank decides on the global batch's;
 * then m->grads is either this rank's part, to be scaled by grad_scale and summed by the caller
 * (the loss-weighting methods: one backward, linear in the samples), or already the global
 * gradient (loom_balance_grads_global: the gradient methods assemble it from reduced ones). */
loom_status loom_balance_step(loom_model *m, int batch, int epoch, float *total, bool check_nan,
                              loom_status (*nan_check)(loom_model *, float, int, int), int step,
                              const loom_balance_reduce *red);
/* Does a distributed balanced step leave the global gradient in m->grads (see above)? */
bool loom_balance_grads_global(const loom_model *m);

#endif
