/* train.c — the training step, fit, evaluate, predict and gradients.
 *
 * A step: forward (every output's loss, unweighted), total = sum_k w_k L_k + regularisation,
 * one backward pass seeded with the weights, one optimizer update over the flat buffers.
 * Logged values are running means over the epoch weighted by batch size (Keras's Mean), computed
 * with the weights before each batch's update. Nothing is allocated inside a step. */
#include "core/balance.h"
#include "dist/dist.h"
#include "train/progbar.h"
#include "optim/optim.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- running logs */

typedef struct epoch_logs {
    int n;                  /* keys (train part) */
    loom_running *run;      /* loss and per-output losses; metrics keep their own state */
    float *values;          /* current values, train keys then val keys */
} epoch_logs;

static void logs_reset(loom_model *m, epoch_logs *e) {
    memset(e->run, 0, (size_t)e->n * sizeof *e->run);
    for (int i = 0; i < m->n_metrics; i++) loom_metric_reset(&m->metrics[i]);
}

/* The row weights a metric of output o sees (NULL: every row 1): the output's mask, as Keras
 * applies it to every metric, times the sample and class weights for weighted_metrics (Keras 3
 * passes sample_weight to weighted_metrics only). */
static const float *metric_weights(loom_model *m, loom_output *o, int batch, bool weighted) {
    const float *mask = m->order[o->pos].mask;
    size_t rps = o->rows_per_sample, rows = (size_t)batch * rps;
    if (mask && rps != (size_t)m->order[o->pos].shape.dims[0]) mask = NULL;
    bool sw = weighted && o->has_sw, cw = weighted && m->class_weights_on && o->class_w;
    if (!sw && !cw) return mask;
    for (size_t r = 0; r < rows; r++)
        o->metric_w[r] = (mask ? mask[r] : 1.0f) * (sw ? o->sw[r / rps] : 1.0f) *
                         (cw ? loom_class_weight_of(o, o->target + r * (size_t)o->target_dim) : 1.0f);
    return o->metric_w;
}

/* Adds one batch of predictions to the metrics' running state. */
static void update_metrics(loom_model *m, int batch) {
    for (int i = 0; i < m->n_metrics; i++) {
        loom_metric_impl *mt = &m->metrics[i];
        loom_output *o = &m->outputs[mt->output];
        loom_metric_update(mt, o->target, m->order[o->pos].val, (size_t)batch * o->rows_per_sample, o->dim,
                           o->loss.kind == LOSS_NONE ? o->dim : o->target_dim, metric_weights(m, o, batch, mt->weighted));
    }
}

/* Adds one batch's total and per-output losses (the metrics already updated); then refreshes
 * e->values[0..n). */
static void logs_add_values(loom_model *m, epoch_logs *e, int batch, float total, bool training) {
    e->run[0].sum += (double)total * batch;
    e->run[0].count += batch;
    int key = 1 + m->n_metric_keys;
    for (int k = 0; k < m->n_outputs && m->log_output_losses; k++) {
        if (m->outputs[k].loss.kind == LOSS_NONE) continue;
        e->run[key].sum += (double)m->outputs[k].loss_value * batch;
        e->run[key].count += batch;
        key++;
    }
    if (m->key_weights >= 0 && training)
        for (int k = 0, key = m->key_weights; k < m->n_outputs; k++) {
            if (m->outputs[k].loss.kind == LOSS_NONE) continue;
            e->run[key].sum += (double)m->outputs[k].effective_weight * batch;
            e->run[key].count += batch;
            key++;
        }
    if (m->key_diag >= 0 && training && m->balance->diag_measured) {
        int pairs = m->balance->K * (m->balance->K - 1) / 2;
        for (int p = 0; p < pairs; p++) {
            e->run[m->key_diag + p].sum += m->balance->diag_cos[p];
            e->run[m->key_diag + p].count += 1;
        }
    }
    for (int i = 0; i < e->n; i++)
        if (i < 1 || i >= 1 + m->n_metric_keys) e->values[i] = e->run[i].count ? (float)(e->run[i].sum / e->run[i].count) : NAN;
    for (int i = 0, key = 1; i < m->n_metrics; key += m->metrics[i].n_values, i++)
        loom_metric_results(&m->metrics[i], e->values + key);
}

/* Adds one batch: total, per-output losses, metric updates; then refreshes e->values[0..n). */
static void logs_add_batch(loom_model *m, epoch_logs *e, int batch, float total, bool training) {
    update_metrics(m, batch);
    logs_add_values(m, e, batch, total, training);
}

static loom_status logs_init(loom_model *m, epoch_logs *e, bool with_val) {
    e->n = m->keys.n;
    e->run = calloc((size_t)e->n, sizeof *e->run);
    e->values = calloc((size_t)(with_val ? 2 * e->n : e->n), sizeof *e->values);
    if (!e->run || !e->values) return loom_set_error(&m->err, LOOM_ERR_MEMORY, "out of memory for logs");
    return LOOM_OK;
}

static void logs_free(epoch_logs *e) {
    free(e->run);
    free(e->values);
}

/* ---------------------------------------------------------------- checks */

static loom_status check_ready(loom_model *m, const char *what) {
    if (!m->compiled)
        return loom_set_error(&m->err, LOOM_ERR_STATE, "%s: the model must be compiled first (loom_compile)%s%.400s", what,
                              m->compile_note[0] ? ": " : "", m->compile_note);
    for (int k = 0; k < m->n_outputs; k++)
        if (m->outputs[k].loss.kind != LOSS_NONE) return LOOM_OK;
    return loom_set_error(&m->err, LOOM_ERR_STATE, "%s: no output has a loss", what);
}

static float weighted_total(const loom_model *m, float reg) {
    double total = reg;
    for (int k = 0; k < m->n_outputs; k++)
        if (m->outputs[k].loss.kind != LOSS_NONE && m->outputs[k].weight != 0.0f)
            total += (double)m->outputs[k].weight * m->outputs[k].loss_value;
    return (float)total;
}

static loom_status nan_check(loom_model *m, float reg, int epoch, int batch) {
    for (int k = 0; k < m->n_outputs; k++) {
        loom_output *o = &m->outputs[k];
        if (o->loss.kind != LOSS_NONE && !isfinite(o->loss_value))
            return loom_set_error(&m->err, LOOM_ERR_NAN,
                                  "TerminateOnNaN: the loss of output %s (%s) is %s at epoch %d, batch %d; "
                                  "training stopped, the weights of the last good step are kept",
                                  o->name, o->loss.name, isnan(o->loss_value) ? "NaN" : "infinite", epoch + 1, batch + 1);
    }
    if (!isfinite(reg))
        return loom_set_error(&m->err, LOOM_ERR_NAN,
                              "TerminateOnNaN: the regularisation penalty is not finite at epoch %d, batch %d; "
                              "training stopped, the weights of the last good step are kept",
                              epoch + 1, batch + 1);
    return LOOM_OK;
}

/* TerminateOnNaN's checks after the backward pass, before the update: the weighted total (finite
 * losses can still sum to inf with large weights) and the gradient norm. Plain SGD updates some
 * layers inside the backward pass (sgd_update); their gradients are never stored, so their
 * weights are checked instead, and the message says which are no longer those of the last good
 * step rather than claim they are kept. */
static loom_status nan_check_step(loom_model *m, float total, int epoch, int batch) {
    if (!isfinite(total))
        return loom_set_error(&m->err, LOOM_ERR_NAN,
                              "TerminateOnNaN: the total loss (the weighted sum) is %s at epoch %d, batch %d; "
                              "training stopped, the weights of the last good step are kept",
                              isnan(total) ? "NaN" : "infinite", epoch + 1, batch + 1);
    double sq = 0;
    for (int t = 0; t < m->n_tensors; t++) {
        if (!m->t_active[t] || m->t_sgd_update[t]) continue;
        const float *g = m->grads + m->t_offset[t];
        for (size_t i = 0; i < m->t_size[t]; i++) sq += (double)g[i] * g[i];
    }
    char spoiled[160] = "";
    for (int t = 0; t < m->n_tensors; t++) {
        if (!m->t_sgd_update[t]) continue;
        const float *w = m->params + m->t_offset[t];
        bool finite = true;
        for (size_t i = 0; i < m->t_size[t] && finite; i++) finite = isfinite(w[i]);
        size_t used = strlen(spoiled);
        const char *name = m->tensors[t].layer->name;
        if (!finite && !strstr(spoiled, name) && used + strlen(name) + 8 < sizeof spoiled)
            snprintf(spoiled + used, sizeof spoiled - used, "%s%s", used ? ", " : "", name);
    }
    if (spoiled[0])
        return loom_set_error(&m->err, LOOM_ERR_NAN,
                              "TerminateOnNaN: the gradient is not finite at epoch %d, batch %d; training stopped. "
                              "Plain SGD had already applied it inside the backward pass to %s, whose weights are "
                              "no longer finite; the other weights are those of the last good step",
                              epoch + 1, batch + 1, spoiled);
    if (!isfinite(sq))
        return loom_set_error(&m->err, LOOM_ERR_NAN,
                              "TerminateOnNaN: the gradient norm is %s at epoch %d, batch %d; "
                              "training stopped, the weights of the last good step are kept",
                              isnan(sq) ? "NaN" : "infinite", epoch + 1, batch + 1);
    return LOOM_OK;
}

/* One training step on the batch already gathered into the arena. */
static loom_status train_step(loom_model *m, int batch, bool check_nan, int epoch, int step, float *total) {
    loom_status s;
    if (loom_balance_active(m)) {
        if ((s = loom_balance_step(m, batch, epoch, total, check_nan, nan_check, step, NULL))) return s;
    } else {
        uint64_t mask = loom_engine_active_mask(m);
        float reg = 0;
        if ((s = loom_engine_forward(m, batch, true, true, mask, &reg))) return s;
        *total = weighted_total(m, reg);
        if (check_nan && (s = nan_check(m, reg, epoch, step))) return s;
        if (check_nan && !isfinite(*total) && (s = nan_check_step(m, *total, epoch, step))) return s;
        m->sgd_step = m->sgd_in_backward;
        m->sgd_step_lr = loom_current_lr(m);
        loom_engine_backward(m, batch, mask, true, NULL, m->grads);
        m->sgd_step = false;
        for (int k = 0; k < m->n_outputs; k++) m->outputs[k].effective_weight = m->outputs[k].weight;
    }
    if (check_nan && (s = nan_check_step(m, *total, epoch, step))) return s;
    loom_optimizer_apply(&m->opt, loom_current_lr(m), m->iterations, m->params, m->grads, m->slots,
                         m->n_params, m->n_tensors, m->t_offset, m->t_size, m->t_active);
    m->iterations++;
    m->rng_step++;
    return LOOM_OK;
}

/* ---------------------------------------------------------------- distributed steps
 *
 * Data-parallel fit over the ranks of a loom_dist (loom.h explains the semantics). Per step: each
 * rank runs the forward on its part of the global batch and updates the metrics from zero; one
 * small allreduce sums the error flags, sample counts, per-output loss sums (loss x samples), the
 * regularisation penalty and the metrics' sums and counts, so every rank then holds the global
 * batch's values and decides the same (stop on error, NaN check); the backward's gradient,
 * scaled by the rank's share of the global batch, is summed bucket by bucket while it runs. */

typedef struct dist_fit {
    loom_dist *d;
    loom_model *m;
    loom_dist_grads *grads;
    double *sync;          /* SYNC_HEAD + n_outputs + 2 * n_metrics + the metrics' state + n_outputs */
    int n_sync;
    int ranks_with_samples;
    /* output k's gradient on this rank counts out_scale[k] of the global one: the rank's share of
     * the global batch, or, for a loss a sequence mask normalises (Keras: by the batch's valid
     * steps), its share of the global batch's valid steps; seeds[k]: the backward's seed that
     * gives that once the whole gradient is scaled by the batch share */
    bool any_masked;
    bool sync_failed; /* a reduction of an op (synchronised BatchNormalization) failed */
    double local_valid[LOOM_MAX_OUTPUTS];
    float out_scale[LOOM_MAX_OUTPUTS], seeds[LOOM_MAX_OUTPUTS];
} dist_fit;

/* Is output o's loss normalised by the valid steps of a sequence mask (engine.c)? */
static bool masked_loss(const loom_model *m, const loom_output *o) {
    return o->loss.kind != LOSS_NONE && m->order[o->pos].mask &&
           o->rows_per_sample == (size_t)m->order[o->pos].node->out_shape.dims[0];
}

enum { SYNC_FAILED, SYNC_SAMPLES, SYNC_RANKS, SYNC_REG, SYNC_HEAD };

static loom_status dist_fit_init(loom_model *m, loom_dist *d, dist_fit *df) {
    memset(df, 0, sizeof *df);
    df->d = d;
    df->m = m;
    df->n_sync = SYNC_HEAD + 2 * m->n_outputs + 2 * m->n_metrics;
    for (int k = 0; k < m->n_outputs; k++) df->any_masked |= masked_loss(m, &m->outputs[k]);
    /* the confusion-count metrics (AUC, Precision, Recall, F-beta, MeanIoU) add their counts; a
     * user metric's state need not add up, so it is not distributed */
    for (int i = 0; i < m->n_metrics; i++) {
        if (m->metrics[i].kind == METRIC_CUSTOM)
            return loom_set_error(&m->err, LOOM_ERR_DIST, "distributed fit: metric %s is a user metric, whose state loom "
                                  "cannot reduce across ranks", m->metrics[i].log_name);
        df->n_sync += (int)m->metrics[i].n_state;
    }
    df->sync = calloc((size_t)df->n_sync, sizeof *df->sync);
    if (!df->sync)
        return loom_set_error(&m->err, LOOM_ERR_MEMORY, "distributed fit: out of memory");
    df->grads = loom_dist_grads_new(d, m, &m->err);
    return df->grads ? LOOM_OK : m->err.code;
}

static void dist_fit_free(dist_fit *df) {
    loom_dist_grads_free(df->grads);
    free(df->sync);
}

/* Every rank tells the others whether it failed (`local`) or wants to stop; returns the local
 * status, LOOM_ERR_DIST when only another rank failed. Called where ranks could part ways. */
static loom_status dist_agree(loom_model *m, loom_dist *d, loom_status local, const char *where, int epoch) {
    double v[2] = {local != LOOM_OK, m->stop_training};
    loom_error scratch = {0};
    if (loom_dist_max(d, v, 2, &scratch)) return local ? local : loom_set_error(&m->err, LOOM_ERR_DIST, "%s", scratch.msg);
    if (v[1] > 0) m->stop_training = true;
    if (v[0] > 0 && !local)
        return loom_set_error(&m->err, LOOM_ERR_DIST, "distributed fit: another rank stopped with an error %s at epoch %d; "
                              "rank %d of %d stops too", where, epoch + 1, loom_dist_rank(d), loom_dist_size(d));
    return local;
}

/* Forward of this rank's b samples (already gathered; b may be 0), then the global values:
 * loss_value of every output and the metrics' state are the global batch's, *reg the penalty,
 * *global_b the global batch size. `local`: an error this rank already has (it still joins). */
static loom_status dist_forward_sync(loom_model *m, dist_fit *df, loom_status local, int b, bool training,
                                     uint64_t mask, int epoch, int step, int *global_b, float *reg) {
    double *v = df->sync;
    memset(v, 0, (size_t)df->n_sync * sizeof *v);
    /* rank 0 adds its rows to the running state, the others to zero: one rank sums as one
     * process does, bit for bit */
    if (loom_dist_rank(df->d) != 0)
        for (int i = 0; i < m->n_metrics; i++) {
            m->metrics[i].sum = m->metrics[i].count = 0;
            if (m->metrics[i].n_state) memset(m->metrics[i].state, 0, m->metrics[i].n_state * sizeof(double));
        }
    float r = 0;
    double *valid = v + df->n_sync - m->n_outputs; /* masked outputs' valid steps */
    for (int k = 0; k < m->n_outputs; k++) df->local_valid[k] = 0;
    if ((local || b == 0) && training) loom_engine_sync_idle(m, false, mask); /* what the forward would reduce */
    if (!local && b > 0 && !(local = loom_engine_forward(m, b, training, true, mask, &r))) {
        update_metrics(m, b);
        for (int k = 0; k < m->n_outputs; k++) {
            const loom_output *o = &m->outputs[k];
            if (o->loss.kind == LOSS_NONE) continue;
            bool masked = masked_loss(m, o);
            if (masked) valid[k] = df->local_valid[k] = o->mask_valid;
            v[SYNC_HEAD + k] = (double)o->loss_value * (masked ? o->mask_valid : b);
        }
    }
    double *state = v + SYNC_HEAD + m->n_outputs + 2 * m->n_metrics;
    for (int i = 0; i < m->n_metrics; i++) {
        v[SYNC_HEAD + m->n_outputs + 2 * i] = m->metrics[i].sum;
        v[SYNC_HEAD + m->n_outputs + 2 * i + 1] = m->metrics[i].count;
        if (m->metrics[i].n_state) memcpy(state, m->metrics[i].state, m->metrics[i].n_state * sizeof(double));
        state += m->metrics[i].n_state;
    }
    v[SYNC_FAILED] = local != LOOM_OK;
    v[SYNC_SAMPLES] = local ? 0 : b;
    v[SYNC_RANKS] = !local && b > 0;
    v[SYNC_REG] = !local && b > 0 ? r : 0;
    loom_error scratch = {0};
    if (loom_dist_sum(df->d, v, df->n_sync, &scratch))
        return local ? local : loom_set_error(&m->err, LOOM_ERR_DIST, "%s", scratch.msg);
    if (v[SYNC_FAILED] > 0) {
        if (local) {
            char msg[LOOM_ERR_MAX];
            snprintf(msg, sizeof msg, "rank %d of %d: %.400s", loom_dist_rank(df->d), loom_dist_size(df->d), m->err.msg);
            return loom_set_error(&m->err, local, "%s", msg);
        }
        return loom_set_error(&m->err, LOOM_ERR_DIST,
                              "distributed fit: %g other rank(s) stopped with an error at epoch %d, step %d%s; rank %d of %d "
                              "stops too", v[SYNC_FAILED], epoch + 1, step + 1, training ? "" : " of validation",
                              loom_dist_rank(df->d), loom_dist_size(df->d));
    }
    double n = v[SYNC_SAMPLES];
    for (int k = 0; k < m->n_outputs; k++) {
        loom_output *o = &m->outputs[k];
        if (o->loss.kind == LOSS_NONE) continue;
        if (masked_loss(m, o)) { /* no valid step anywhere: 0, as one process's loss of zero weights */
            o->loss_value = n > 0 ? (valid[k] > 0 ? (float)(v[SYNC_HEAD + k] / valid[k]) : 0.0f) : NAN;
            df->out_scale[k] = valid[k] > 0 ? (float)(df->local_valid[k] / valid[k]) : 0.0f;
        } else {
            o->loss_value = n > 0 ? (float)(v[SYNC_HEAD + k] / n) : NAN;
            df->out_scale[k] = n > 0 ? (float)((double)(local ? 0 : b) / n) : 0.0f;
        }
    }
    state = v + SYNC_HEAD + m->n_outputs + 2 * m->n_metrics;
    for (int i = 0; i < m->n_metrics; i++) {
        m->metrics[i].sum = v[SYNC_HEAD + m->n_outputs + 2 * i];
        m->metrics[i].count = v[SYNC_HEAD + m->n_outputs + 2 * i + 1];
        if (m->metrics[i].n_state) memcpy(m->metrics[i].state, state, m->metrics[i].n_state * sizeof(double));
        state += m->metrics[i].n_state;
    }
    /* every rank with samples computed the same penalty from the same weights */
    *reg = v[SYNC_RANKS] > 0 ? (float)(v[SYNC_REG] / v[SYNC_RANKS]) : 0.0f;
    *global_b = (int)n;
    df->ranks_with_samples = (int)v[SYNC_RANKS];
    return LOOM_OK;
}

/* loom_op_ctx.sync_sum: an op's statistics over the ranks (a failure is reported after the step) */
static void dist_sync_sum(void *user, double *v, size_t n) {
    dist_fit *df = user;
    loom_error scratch = {0};
    if (n > (size_t)INT_MAX || loom_dist_sum(df->d, v, (int)n, &scratch)) df->sync_failed = true;
}

static loom_status dist_sum_floats(void *user, float *v, size_t n) {
    dist_fit *df = user;
    return loom_dist_sum_floats(df->d, v, n, &df->m->err);
}

/* One distributed training step; `local`: this rank's error from fetching its batch. A balancing
 * method gets the global losses and reduces the per-loss gradients it looks at (balance.h). */
static loom_status dist_train_step(loom_model *m, dist_fit *df, loom_status local, int b, bool check_nan, int epoch,
                                   int step, float *total, int *global_b) {
    bool balanced = loom_balance_active(m);
    uint64_t mask = 0;
    if (balanced) { /* every loss, as loom_balance_step's own forward */
        for (int k = 0; k < m->n_outputs; k++)
            if (m->outputs[k].loss.kind != LOSS_NONE) mask |= 1ULL << k;
    } else {
        mask = loom_engine_active_mask(m);
    }
    float reg = 0;
    loom_status s = dist_forward_sync(m, df, local, b, true, mask, epoch, step, global_b, &reg);
    if (s) return s;
    if (!balanced) {
        *total = weighted_total(m, reg);
        if (check_nan && (s = nan_check(m, reg, epoch, step))) return s;
    }
    if (*global_b == 0)
        return loom_set_error(&m->err, LOOM_ERR_DATA, "distributed fit: epoch %d, step %d has no samples on any rank",
                              epoch + 1, step + 1);
    float scale = (float)((double)b / *global_b);
    bool global_grads = balanced && loom_balance_grads_global(m); /* else summed here, bucket by bucket */
    if (!global_grads) loom_dist_grads_begin(df->grads, scale);
    m->sync_share = scale;
    if (balanced) {
        loom_balance_reduce red = {.grad_scale = scale, .global_batch = *global_b, .reg = reg, .sum = dist_sum_floats, .user = df};
        memcpy(red.out_scale, df->out_scale, sizeof red.out_scale);
        s = loom_balance_step(m, b, epoch, total, check_nan, nan_check, step, &red);
    } else if (b > 0) {
        for (int k = 0; k < m->n_outputs && df->any_masked; k++)
            df->seeds[k] = m->outputs[k].weight * (df->out_scale[k] / scale);
        loom_engine_backward(m, b, mask, true, df->any_masked ? df->seeds : NULL, m->grads);
    } else { /* nothing to add; the tensors to update are the other ranks' (below) */
        memset(m->grads, 0, m->n_params * sizeof *m->grads);
        for (int t = 0; t < m->n_tensors; t++) m->t_active[t] = false;
        loom_engine_sync_idle(m, true, mask);
    }
    if (!global_grads) { /* waited for even after an error, which every rank meets alike */
        loom_status f = loom_dist_grads_finish(df->grads);
        if (!s) s = f;
    }
    if (!s && df->sync_failed)
        s = loom_set_error(&m->err, LOOM_ERR_DIST, "distributed fit: a synchronised BatchNormalization's reduction over "
                           "the ranks failed at epoch %d, step %d", epoch + 1, step + 1);
    if (s) return s;
    if (!global_grads && df->ranks_with_samples < loom_dist_size(df->d) &&
        (s = loom_dist_or(df->d, m->t_active, m->n_tensors, &m->err)))
        return s;
    if (!balanced)
        for (int k = 0; k < m->n_outputs; k++) m->outputs[k].effective_weight = m->outputs[k].weight;
    loom_optimizer_apply(&m->opt, loom_current_lr(m), m->iterations, m->params, m->grads, m->slots,
                         m->n_params, m->n_tensors, m->t_offset, m->t_size, m->t_active);
    m->iterations++;
    m->rng_step++;
    /* non-trainable state (moving statistics) from rank 0, as PyTorch DDP's broadcast_buffers */
    for (int t = 0; t < m->n_tensors; t++)
        if (m->tensors[t].layer->weights[m->tensors[t].index].non_trainable &&
            (s = loom_dist_bcast(df->d, m->params + m->t_offset[t], m->t_size[t], &m->err)))
            return s;
    return LOOM_OK;
}

/* Validation sharded as training is: global batches of ranks x batch_size, reduced. */
static loom_status dist_evaluate(loom_model *m, dist_fit *df, const loom_bound_data *d, int batch_size, epoch_logs *e,
                                 int epoch) {
    logs_reset(m, e);
    int ranks = loom_dist_size(df->d), rank = loom_dist_rank(df->d);
    size_t global = (size_t)batch_size * (size_t)ranks;
    for (size_t first = 0, step = 0; first < d->n; first += global, step++) {
        size_t off;
        int b, gb;
        loom_dist_shard(rank, ranks, batch_size, d->n - first < global ? d->n - first : global, &off, &b);
        loom_status s = b > 0 ? loom_engine_gather(m, d, NULL, first + off, b) : LOOM_OK;
        float reg = 0;
        if (!s) s = dist_forward_sync(m, df, LOOM_OK, b, false, 0, epoch, (int)step, &gb, &reg);
        if (s) return s;
        logs_add_values(m, e, gb, weighted_total(m, reg), false);
    }
    return LOOM_OK;
}

/* ---------------------------------------------------------------- evaluate */

/* Runs the bound data in batches without training; writes the epoch values of m->keys. */
static loom_status evaluate_bound(loom_model *m, const loom_bound_data *d, int batch_size,
                                  epoch_logs *e, loom_progbar *bar) {
    logs_reset(m, e);
    int steps = (int)((d->n + (size_t)batch_size - 1) / (size_t)batch_size);
    for (int step = 0; step < steps; step++) {
        size_t first = (size_t)step * batch_size;
        int b = (int)(d->n - first < (size_t)batch_size ? d->n - first : (size_t)batch_size);
        float reg = 0;
        loom_status s = loom_engine_gather(m, d, NULL, first, b);
        if (!s) s = loom_engine_forward(m, b, false, true, 0, &reg);
        if (s) return s;
        logs_add_batch(m, e, b, weighted_total(m, reg), false);
        if (bar)
            loom_progbar_update(bar, step + 1, loom_eval_key_count(m), m->key_ptrs, e->values, step + 1 == steps);
    }
    return LOOM_OK;
}

/* The per-call APIs (evaluate, predict, train_on_batch, gradient queries) bind their data into
 * the model's own binding and keep their running logs in the model's buffers, so a user's own
 * training loop allocates nothing per step either. */
static epoch_logs call_logs(loom_model *m) { return (epoch_logs){m->keys.n, m->call_run, m->keys.values}; }

/* Binds one batch (all of `data`), plans the arena for it and gathers it; *n: its size. */
static loom_status bind_batch(loom_model *m, const loom_data *data, const char *what, int *n) {
    loom_bound_data *d = &m->call_data;
    loom_status s = loom_bind_fill(m, data, true, what, d);
    if (s) return s;
    if (d->n > (size_t)1 << 30) return loom_set_error(&m->err, LOOM_ERR_DATA, "%s: batch too large", what);
    loom_engine_reserve_steps(m, d);
    if ((s = loom_engine_plan(m, (int)d->n))) return s;
    *n = (int)d->n;
    return loom_engine_gather(m, d, NULL, 0, *n);
}

/* A gradient query's forward: training mode (dropout on, batch statistics), but
 * BatchNormalization's moving statistics stay put — a query changes no part of the model. */
static loom_status query_forward(loom_model *m, const loom_data *data, const char *what, uint64_t mask, int *n) {
    loom_status s = bind_batch(m, data, what, n);
    if (s) return s;
    m->freeze_state = true;
    s = loom_engine_forward(m, *n, true, true, mask, NULL);
    m->freeze_state = false;
    return s;
}

loom_status loom_evaluate(loom_model *m, const loom_data *data, int batch_size, int verbose,
                          loom_history **result) {
    if (result) *result = NULL;
    if (!m) return LOOM_ERR_ARGUMENT;
    loom_clear_error(&m->err);
    loom_status s = check_ready(m, "evaluate");
    if (s) return s;
    if (batch_size <= 0) batch_size = 32;
    loom_bound_data *d = &m->call_data;
    if ((s = loom_bind_fill(m, data, true, "evaluate", d))) return s;
    int plan = d->n < (size_t)batch_size ? (int)d->n : batch_size;
    epoch_logs e = call_logs(m);
    loom_engine_reserve_steps(m, d);
    if (!(s = loom_engine_plan(m, plan))) {
        loom_progbar bar;
        loom_progbar_init(&bar, stdout, (int)((d->n + (size_t)batch_size - 1) / (size_t)batch_size), verbose);
        s = evaluate_bound(m, d, batch_size, &e, verbose ? &bar : NULL);
        if (!s && result) {
            *result = loom_history_create(loom_eval_key_count(m), m->keys.keys, 0);
            if (!*result || loom_history_append(*result, e.values))
                s = loom_set_error(&m->err, LOOM_ERR_MEMORY, "evaluate: out of memory");
        }
    }
    return s;
}

/* ---------------------------------------------------------------- predict */

loom_status loom_predict(loom_model *m, int n_x, const loom_array *x, int batch_size, float *const *outputs) {
    if (!m) return LOOM_ERR_ARGUMENT;
    loom_clear_error(&m->err);
    if (!outputs) return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "predict: outputs is NULL");
    if (batch_size <= 0) batch_size = 32;
    loom_data data = {n_x, x, 0, NULL, 0, NULL};
    loom_bound_data *d = &m->call_data;
    loom_status s = loom_bind_fill(m, &data, false, "predict", d);
    if (s) return s;
    int plan = d->n < (size_t)batch_size ? (int)d->n : batch_size;
    /* A sample's outputs take their size at the arrays' steps (binding set them); a batch trimmed
     * to shorter lengths fills the front of each sample's block and zeroes the rest. */
    size_t full[LOOM_MAX_OUTPUTS];
    for (int k = 0; k < m->n_outputs; k++) full[k] = m->outputs[k].size;
    loom_engine_reserve_steps(m, d);
    if (!(s = loom_engine_plan(m, plan))) {
        for (size_t first = 0; first < d->n && !s; first += (size_t)batch_size) {
            int b = (int)(d->n - first < (size_t)batch_size ? d->n - first : (size_t)batch_size);
            s = loom_engine_gather(m, d, NULL, first, b);
            if (!s) s = loom_engine_forward(m, b, false, false, 0, NULL);
            for (int k = 0; k < m->n_outputs && !s; k++) {
                size_t size = m->outputs[k].size;
                const float *v = m->order[m->outputs[k].pos].val;
                if (!outputs[k]) continue;
                if (size > full[k]) { /* no layer grows when the steps shrink; never write past the caller's rows */
                    s = loom_set_error(&m->err, LOOM_ERR_SHAPE, "predict: output %s is longer for a trimmed batch",
                                       m->outputs[k].name);
                    break;
                }
                if (size == full[k]) {
                    memcpy(outputs[k] + first * size, v, (size_t)b * size * sizeof(float));
                    continue;
                }
                for (int i = 0; i < b; i++) {
                    float *dst = outputs[k] + (first + (size_t)i) * full[k];
                    memcpy(dst, v + (size_t)i * size, size * sizeof(float));
                    memset(dst + size, 0, (full[k] - size) * sizeof(float));
                }
            }
        }
        /* the sizes at the arrays' steps again, as loom_model_output_size reports them */
        if (!s && m->variable) s = loom_engine_set_steps(m, d->x_steps);
    }
    return s;
}

/* ---------------------------------------------------------------- one batch */

loom_status loom_train_on_batch(loom_model *m, const loom_data *batch, float *logs_out, int max_logs, int *n_logs) {
    if (n_logs) *n_logs = 0;
    if (!m) return LOOM_ERR_ARGUMENT;
    loom_clear_error(&m->err);
    loom_status s = check_ready(m, "train_on_batch");
    if (s) return s;
    int n = 0;
    if ((s = bind_batch(m, batch, "train_on_batch", &n))) return s;
    epoch_logs e = call_logs(m);
    float total;
    logs_reset(m, &e);
    if (!(s = train_step(m, n, false, 0, 0, &total))) {
        logs_add_batch(m, &e, n, total, true);
        int k = e.n < max_logs ? e.n : max_logs;
        if (logs_out)
            for (int i = 0; i < k; i++) logs_out[i] = e.values[i];
        if (n_logs) *n_logs = logs_out ? k : 0;
    }
    return s;
}

loom_status loom_gradients(loom_model *m, const loom_data *batch, int n_outputs, const char *const *outputs,
                           float *grad, float *losses) {
    if (!m) return LOOM_ERR_ARGUMENT;
    loom_clear_error(&m->err);
    if (!grad) return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "gradients: grad is NULL");
    loom_status s = check_ready(m, "gradients");
    if (s) return s;
    uint64_t mask = 0;
    bool with_reg = n_outputs == 0;
    if (n_outputs == 0) mask = loom_engine_active_mask(m);
    for (int i = 0; i < n_outputs; i++) {
        int k = outputs ? loom_model_output_index(m, outputs[i]) : -1;
        if (k < 0) return outputs ? LOOM_ERR_NAME : loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "gradients: outputs is NULL");
        if (m->outputs[k].loss.kind == LOSS_NONE)
            return loom_set_error(&m->err, LOOM_ERR_STATE, "gradients: output %s has no loss", outputs[i]);
        mask |= 1ULL << k;
    }
    int n = 0;
    if ((s = query_forward(m, batch, "gradients", mask, &n))) return s;
    /* the backward writes the model's tensors; other models' weights between them get zeros */
    if (!m->dense_params) memset(grad, 0, m->n_params * sizeof(float));
    loom_engine_backward(m, n, mask, with_reg, NULL, grad);
    if (losses)
        for (int k = 0; k < m->n_outputs; k++) losses[k] = m->outputs[k].loss_value;
    return LOOM_OK;
}

loom_status loom_loss_gradients(loom_model *m, const loom_data *batch, int weighted, float *const *grads,
                                float *losses) {
    if (!m) return LOOM_ERR_ARGUMENT;
    loom_clear_error(&m->err);
    if (!grads) return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "loss_gradients: grads is NULL");
    loom_status s = check_ready(m, "loss_gradients");
    if (s) return s;
    uint64_t mask = 0;
    float ones[LOOM_MAX_OUTPUTS];
    for (int k = 0; k < m->n_outputs; k++) {
        ones[k] = 1.0f;
        if (m->outputs[k].loss.kind != LOSS_NONE) mask |= 1ULL << k;
    }
    int n = 0;
    if ((s = query_forward(m, batch, "loss_gradients", mask, &n))) return s;
    /* one forward, then one backward per loss into its own buffer */
    for (int k = 0; k < m->n_outputs; k++) {
        if (!grads[k]) continue;
        if (!m->dense_params) memset(grads[k], 0, m->n_params * sizeof(float)); /* as in loom_gradients */
        if (mask >> k & 1)
            loom_engine_backward(m, n, 1ULL << k, false, weighted ? NULL : ones, grads[k]);
        else
            memset(grads[k], 0, m->n_params * sizeof(float));
    }
    if (losses)
        for (int k = 0; k < m->n_outputs; k++) losses[k] = m->outputs[k].loss_value;
    return LOOM_OK;
}

/* ---------------------------------------------------------------- fit */

loom_fit_options loom_fit_defaults(void) {
    loom_fit_options o;
    memset(&o, 0, sizeof o);
    o.batch_size = 32;
    o.epochs = 1;
    o.shuffle = 1;
    return o;
}

/* Fisher-Yates from a counter-based stream: the permutation depends only on (seed, epoch). */
static void shuffle_indices(size_t *idx, size_t n, uint64_t seed, int epoch) {
    for (size_t i = 0; i < n; i++) idx[i] = i;
    uint64_t key = loom_hash64(seed, 0x5EED0000ULL + (uint64_t)epoch);
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(loom_hash64(key, i) % i);
        size_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

static loom_status check_fit_options(loom_model *m, const loom_fit_options *o) {
    if (o->batch_size <= 0) return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "fit: batch_size must be > 0, got %d", o->batch_size);
    if (o->epochs < 0 || o->initial_epoch < 0)
        return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "fit: epochs (%d) and initial_epoch (%d) must be >= 0", o->epochs, o->initial_epoch);
    if (!(o->validation_split >= 0 && o->validation_split < 1))
        return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "fit: validation_split must be in [0, 1), got %g", (double)o->validation_split);
    if (o->n_callbacks < 0 || (o->n_callbacks && !o->callbacks))
        return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "fit: bad callback list");
    return LOOM_OK;
}

/* Where training batches come from: arrays (shuffled per epoch) or a user batch function. */
typedef struct batch_source {
    const loom_bound_data *arrays;
    size_t *idx;
    loom_batch_fn fn;
    void *user;
    loom_bound_data bound; /* the generator's batch, bound without allocating */
    int steps;
} batch_source;

/* Gathers the next training batch into the arena; *b receives its size. Distributed (df), arrays
 * give this rank its part of the global batch of ranks x bs (loom_dist_shard). */
static loom_status next_batch(loom_model *m, batch_source *src, const dist_fit *df, int epoch, int step, int bs, int *b) {
    if (src->arrays) {
        int ranks = df ? loom_dist_size(df->d) : 1;
        size_t global = (size_t)bs * (size_t)ranks, first = (size_t)step * global, n = src->arrays->n, off = 0;
        loom_dist_shard(df ? loom_dist_rank(df->d) : 0, ranks, bs, n - first < global ? n - first : global, &off, b);
        return *b > 0 ? loom_engine_gather(m, src->arrays, src->idx + first + off, 0, *b) : LOOM_OK;
    }
    loom_data batch;
    memset(&batch, 0, sizeof batch);
    int rc = src->fn(epoch, step, bs, &batch, src->user);
    if (rc)
        return loom_set_error(&m->err, LOOM_ERR_CALLBACK,
                              "the batch function returned %d at epoch %d, step %d: training stopped", rc, epoch + 1, step + 1);
    loom_status s = loom_bind_fill(m, &batch, true, "batch function", &src->bound);
    if (s) return s;
    if (src->bound.n > (size_t)bs)
        return loom_set_error(&m->err, LOOM_ERR_DATA, "batch function: epoch %d, step %d gave %zu samples, more than batch_size %d",
                              epoch + 1, step + 1, src->bound.n, bs);
    *b = (int)src->bound.n;
    return loom_engine_gather(m, &src->bound, NULL, 0, *b);
}

/* The epoch loop shared by loom_fit and loom_fit_generator. */
static loom_status fit_core(loom_model *m, batch_source *src, const loom_bound_data *val, bool has_val,
                            const loom_fit_options *o, dist_fit *df, int plan, loom_history **history) {
    FILE *out = o->out ? o->out : stdout;
    int bs = o->batch_size;
    int vbs = o->validation_batch_size > 0 ? o->validation_batch_size : bs;
    if (has_val && val->n < (size_t)vbs) vbs = (int)val->n;
    if (has_val && vbs > plan) plan = vbs;
    /* variable-length inputs: the arena covers the longest sequence of the data from the start, so
     * no batch of the epochs re-plans (a generator's longer batch does, once) */
    if (src->arrays) loom_engine_reserve_steps(m, src->arrays);
    if (has_val) loom_engine_reserve_steps(m, val);
    loom_status s = loom_class_weights_set(m, o->n_class_weights, o->class_weights);
    if (s) return s;
    epoch_logs e = {0}, ve = {0};
    loom_history *h = NULL;
    char (*all_keys)[LOOM_LOG_KEY_MAX] = calloc((size_t)(2 * m->keys.n), sizeof *all_keys);
    const char **all_ptrs = calloc((size_t)(2 * m->keys.n), sizeof *all_ptrs);
    if (!all_keys || !all_ptrs) {
        s = loom_set_error(&m->err, LOOM_ERR_MEMORY, "fit: out of memory");
        goto out;
    }
    if (!df) m->no_sgd_fusion = loom_balance_active(m); /* run_fit sets it for a distributed fit */
    if ((s = loom_engine_plan(m, plan)) || (s = logs_init(m, &e, has_val)) || (has_val && (s = logs_init(m, &ve, false))))
        goto out;
    int n_val = has_val ? loom_eval_key_count(m) : 0; /* val_ keys: what evaluation produces */
    for (int i = 0; i < m->keys.n; i++) snprintf(all_keys[i], LOOM_LOG_KEY_MAX, "%s", m->keys.keys[i]);
    for (int i = 0; i < n_val; i++)
        snprintf(all_keys[m->keys.n + i], LOOM_LOG_KEY_MAX, "val_%.*s", LOOM_LOG_KEY_MAX - 5, m->keys.keys[i]);
    for (int i = 0; i < m->keys.n + n_val; i++) all_ptrs[i] = all_keys[i];
    h = loom_history_create(m->keys.n, m->keys.keys, n_val);
    if (!h) {
        s = loom_set_error(&m->err, LOOM_ERR_MEMORY, "fit: out of memory");
        goto out;
    }
    if (history) *history = h;

    int n_keys_all = m->keys.n + n_val;
    loom_logs batch_logs = {m->keys.n, m->keys.keys, e.values};
    loom_logs epoch_view = {n_keys_all, all_keys, e.values};
    bool check_nan = loom_callbacks_want_nan_check(o->callbacks, o->n_callbacks);
    int steps = src->steps;
    m->stop_training = false;
    loom_callbacks_begin(m, o->callbacks, o->n_callbacks);
    for (int epoch = o->initial_epoch; epoch < o->epochs && !s && !m->stop_training; epoch++) {
        if (o->verbose) loom_progbar_epoch_header(out, epoch, o->epochs);
        loom_progbar bar;
        loom_progbar_init(&bar, out, steps, o->verbose);
        if (o->progress_seconds != 0) bar.pipe_interval = o->progress_seconds;
        logs_reset(m, &e);
        if (src->arrays) {
            if (o->shuffle) shuffle_indices(src->idx, src->arrays->n, o->seed, epoch);
            else for (size_t i = 0; i < src->arrays->n; i++) src->idx[i] = i;
        }
        for (int step = 0; step < steps && !s && !m->stop_training; step++) {
            int b = 0;
            float total;
            if (df) { /* every rank reaches the step's reduction, errors included */
                loom_status got = next_batch(m, src, df, epoch, step, bs, &b);
                m->class_weights_on = m->has_class_weights; /* training batches only, as Keras */
                s = dist_train_step(m, df, got, b, check_nan, epoch, step, &total, &b);
            } else {
                if ((s = next_batch(m, src, NULL, epoch, step, bs, &b))) break;
                m->class_weights_on = m->has_class_weights; /* training batches only, as Keras */
                s = train_step(m, b, check_nan, epoch, step, &total);
            }
            if (!s && !df) logs_add_batch(m, &e, b, total, true);
            m->class_weights_on = false;
            if (s == LOOM_ERR_NAN) {
                loom_callbacks_note_nan_stop(o->callbacks, o->n_callbacks, epoch);
                if (o->verbose) fprintf(out, "\n%s\n", m->err.msg);
                break;
            }
            if (s) break;
            if (df) logs_add_values(m, &e, b, total, true); /* metrics: reduced in the step */
            bool last = step + 1 == steps;
            if (!(last && has_val)) loom_progbar_update(&bar, step + 1, m->keys.n, m->key_ptrs, e.values, last);
            s = loom_callbacks_batch_end(m, o->callbacks, o->n_callbacks, epoch, step, &batch_logs);
            if (df && o->n_callbacks) s = dist_agree(m, df->d, s, "in a batch callback", epoch);
        }
        if (s) break;
        if (has_val) {
            if ((s = df ? dist_evaluate(m, df, val, vbs, &ve, epoch) : evaluate_bound(m, val, vbs, &ve, NULL))) break;
            memcpy(e.values + m->keys.n, ve.values, (size_t)n_val * sizeof(float));
            loom_progbar_update(&bar, steps, n_keys_all, all_ptrs, e.values, true);
        }
        m->epochs_done = epoch + 1;
        if (loom_history_append(h, e.values) || loom_history_append_keyed(m->log, n_keys_all, all_ptrs, e.values)) {
            s = loom_set_error(&m->err, LOOM_ERR_MEMORY, "fit: out of memory for the history");
            break;
        }
        s = loom_callbacks_epoch_end(m, o->callbacks, o->n_callbacks, epoch, &epoch_view);
        if (df && o->n_callbacks) s = dist_agree(m, df->d, s, "in an epoch callback", epoch);
    }
    loom_callbacks_end(m, o->callbacks, o->n_callbacks);
out:
    loom_class_weights_clear(m);
    if (!history) loom_history_free(h);
    free(all_keys);
    free(all_ptrs);
    logs_free(&e);
    logs_free(&ve);
    return s;
}

/* Distributed: every rank calls this once before training, whether it could bind its data or
 * not (local), so that no rank waits for one that gave up; all must hold the same data set. */
static loom_status dist_ready(loom_model *m, loom_dist *d, loom_status local, size_t n_train, size_t n_val) {
    double v[5] = {local != LOOM_OK, (double)n_train, -(double)n_train, (double)n_val, -(double)n_val};
    loom_error scratch = {0};
    if (loom_dist_max(d, v, 5, &scratch)) return local ? local : loom_set_error(&m->err, LOOM_ERR_DIST, "%s", scratch.msg);
    if (local) return local;
    if (v[0] > 0)
        return loom_set_error(&m->err, LOOM_ERR_DIST, "distributed fit: another rank could not start (its data or options); "
                              "rank %d of %d stops too", loom_dist_rank(d), loom_dist_size(d));
    if (v[1] != -v[2] || v[3] != -v[4])
        return loom_set_error(&m->err, LOOM_ERR_DIST, "distributed fit: the ranks hold different data (training samples "
                              "%.0f to %.0f, validation %.0f to %.0f); every rank must load the same global data set",
                              -v[2], v[1], -v[4], v[3]);
    return LOOM_OK;
}

/* fit_core, distributed over o->dist when given. */
static loom_status run_fit(loom_model *m, batch_source *src, const loom_bound_data *val, bool has_val,
                           const loom_fit_options *o, int plan, loom_history **history) {
    if (!o->dist) return fit_core(m, src, val, has_val, o, NULL, plan, history);
    loom_dist *d = o->dist;
    loom_status s = dist_ready(m, d, LOOM_OK, src->arrays ? src->arrays->n : 0, has_val ? val->n : 0);
    if (s) return s;
    m->no_sgd_fusion = true; /* before planning: the dW products are planned for it */
    loom_status prep = loom_engine_plan(m, plan); /* the masks are known once planned (masked_loss) */
    int ranks = loom_dist_size(d), rank = loom_dist_rank(d);
    if (src->arrays) {
        size_t global = (size_t)o->batch_size * (size_t)ranks;
        src->steps = (int)((src->arrays->n + global - 1) / global);
    }
    dist_fit df;
    memset(&df, 0, sizeof df);
    if (!prep) prep = dist_fit_init(m, d, &df);
    s = dist_agree(m, d, prep, "preparing", o->initial_epoch);
    loom_fit_options local = *o;
    if (rank != 0) local.verbose = 0; /* one progress bar */
    m->rng_salt = (uint64_t)rank;     /* dropout: a stream per rank */
    m->no_files = rank != 0;          /* ModelCheckpoint: rank 0 writes */
    m->sync_sum = dist_sync_sum;      /* synchronised BatchNormalization */
    m->sync_user = &df;
    if (!s) s = fit_core(m, src, val, has_val, &local, &df, plan, history);
    m->rng_salt = 0;
    m->no_sgd_fusion = false;
    m->no_files = false;
    m->sync_sum = NULL;
    m->sync_user = NULL;
    m->sync_share = 0;
    dist_fit_free(&df);
    return s;
}

loom_status loom_fit(loom_model *m, const loom_data *data, const loom_fit_options *opt, loom_history **history) {
    if (history) *history = NULL;
    if (!m) return LOOM_ERR_ARGUMENT;
    loom_clear_error(&m->err);
    loom_fit_options o = opt ? *opt : loom_fit_defaults();
    loom_status s = check_ready(m, "fit");
    if (s || (s = check_fit_options(m, &o))) return s;

    loom_bound_data train, val;
    memset(&train, 0, sizeof train);
    memset(&val, 0, sizeof val);
    bool joined = false; /* distributed: this rank has told the others whether it could start */
    if ((s = loom_bind(m, data, true, "fit", &train))) goto out;
    bool has_val = false;
    if (o.validation_data) {
        if ((s = loom_bind(m, o.validation_data, true, "fit: validation data", &val))) goto out;
        has_val = true;
    } else if (o.validation_split > 0) {
        /* Keras: the last fraction, taken before shuffling; split_at = ceil(n * (1 - split)). */
        size_t split_at = (size_t)ceil((double)train.n * (1.0 - (double)o.validation_split));
        if (split_at == 0 || split_at >= train.n) {
            s = loom_set_error(&m->err, LOOM_ERR_DATA,
                               "fit: validation_split %g of %zu samples leaves an empty training or validation set",
                               (double)o.validation_split, train.n);
            goto out;
        }
        if ((s = loom_bind_alloc(m, &val))) goto out;
        val.n = train.n - split_at;
        for (int i = 0; i < m->n_inputs; i++) {
            size_t per = train.x_steps[i] ? loom_model_input_size(m, i) / (size_t)m->steps[i] * (size_t)train.x_steps[i]
                                          : m->order[m->input_pos[i]].size;
            val.x[i] = train.x[i] + split_at * per;
            val.x_steps[i] = train.x_steps[i];
            val.lengths[i] = train.lengths[i] ? train.lengths[i] + split_at : NULL;
        }
        for (int k = 0; k < m->n_outputs; k++) {
            val.y_per[k] = train.y_per[k];
            if (train.y[k]) val.y[k] = train.y[k] + split_at * train.y_per[k];
            if (train.sw[k]) val.sw[k] = train.sw[k] + split_at;
        }
        train.n = split_at;
        has_val = true;
    }
    batch_source src;
    memset(&src, 0, sizeof src);
    src.arrays = &train;
    src.steps = (int)((train.n + (size_t)o.batch_size - 1) / (size_t)o.batch_size);
    src.idx = malloc(train.n * sizeof *src.idx);
    if (!src.idx) {
        s = loom_set_error(&m->err, LOOM_ERR_MEMORY, "fit: out of memory");
    } else {
        s = run_fit(m, &src, &val, has_val, &o, train.n < (size_t)o.batch_size ? (int)train.n : o.batch_size, history);
        joined = true;
    }
    free(src.idx);
out:
    if (o.dist && !joined) s = dist_ready(m, o.dist, s, 0, 0);
    loom_unbind(&train);
    loom_unbind(&val);
    return s;
}

loom_status loom_fit_generator(loom_model *m, loom_batch_fn next, void *user, int steps_per_epoch,
                               const loom_fit_options *opt, loom_history **history) {
    if (history) *history = NULL;
    if (!m) return LOOM_ERR_ARGUMENT;
    loom_clear_error(&m->err);
    loom_fit_options o = opt ? *opt : loom_fit_defaults();
    loom_status s = check_ready(m, "fit_generator");
    if (s || (s = check_fit_options(m, &o))) return s;
    if (!next || steps_per_epoch < 1)
        return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "fit_generator: needs a batch function and steps_per_epoch >= 1 (got %d)",
                              steps_per_epoch);
    if (o.validation_split > 0)
        return loom_set_error(&m->err, LOOM_ERR_ARGUMENT,
                              "fit_generator: validation_split needs arrays; give validation_data instead");
    loom_bound_data val;
    memset(&val, 0, sizeof val);
    bool has_val = o.validation_data != NULL;
    if (has_val && (s = loom_bind(m, o.validation_data, true, "fit_generator: validation data", &val)))
        return o.dist ? dist_ready(m, o.dist, s, 0, 0) : s;
    batch_source src;
    memset(&src, 0, sizeof src);
    src.fn = next;
    src.user = user;
    src.steps = steps_per_epoch;
    if (!(s = loom_bind_alloc(m, &src.bound))) s = run_fit(m, &src, &val, has_val, &o, o.batch_size, history);
    else if (o.dist) s = dist_ready(m, o.dist, s, 0, 0);
    loom_unbind(&src.bound);
    loom_unbind(&val);
    return s;
}
