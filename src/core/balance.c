/* balance.c — training steps that balance several losses: loss-weight schedules, uncertainty
 * weighting, GradNorm, DWA, RLW (weights on the losses, one backward pass) and PCGrad, MGDA,
 * CAGrad, Nash-MTL (one backward pass per loss into its own buffer, a solver on the Gram matrix
 * of the shared gradients, then the combined update). The solvers are the pure functions of
 * mtl_gradient.c / mtl_weights.c; this file wires them to the engine. Nothing is allocated per
 * step: the per-loss gradient buffers are made at compile time. */
#include "core/balance.h"
#include "mtl/mtl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *loom_balance_name(loom_balance_kind kind) {
    static const char *names[] = {"static", "uncertainty", "gradnorm", "dwa", "rlw",
                                  "pcgrad", "mgda",        "cagrad",   "nash_mtl"};
    return (int)kind >= 0 && kind <= LOOM_BALANCE_NASH_MTL ? names[kind] : "unknown";
}

int loom_balance_from_name(const char *name) {
    for (int k = 0; name && k <= LOOM_BALANCE_NASH_MTL; k++)
        if (strcmp(name, loom_balance_name((loom_balance_kind)k)) == 0) return k;
    return -1;
}

loom_balance loom_balance_defaults(loom_balance_kind kind) {
    loom_balance b;
    memset(&b, 0, sizeof b);
    b.kind = kind;
    b.uw_learning_rate = 0.025f;
    b.uw_classification = 1;
    b.gradnorm_alpha = 1.5f;
    b.gradnorm_learning_rate = 0.001f;
    b.dwa_temperature = 2.0f;
    b.cagrad_c = 0.4f;
    b.cagrad_rescale = 1;
    b.nash_max_norm = 1.0f;
    b.nash_update_every = 1;
    return b;
}

static bool is_gradient_method(loom_balance_kind k) {
    return k == LOOM_BALANCE_PCGRAD || k == LOOM_BALANCE_MGDA || k == LOOM_BALANCE_CAGRAD || k == LOOM_BALANCE_NASH_MTL;
}

void loom_balance_free(loom_balance_state *b) {
    if (!b) return;
    free(b->G);
    free(b->shared);
    free(b->head_of);
    free(b);
}

/* Which losses reach a weight tensor's layer. */
static uint64_t tensor_reach(const loom_model *m, int t) {
    uint64_t r = 0;
    for (int i = 0; i < m->n_order; i++)
        if (m->order[i].node->layer == m->tensors[t].layer) r |= m->order[i].reach;
    return r;
}

loom_status loom_balance_log_keys(loom_model *m) {
    const loom_balance_state *b = m->balance;
    bool scheduled = false;
    for (int k = 0; k < m->n_outputs; k++) scheduled |= m->outputs[k].has_schedule;
    bool show_weights = (b && b->cfg.kind != LOOM_BALANCE_STATIC) || scheduled;
    bool diag = b && b->cfg.diagnostics_every > 0;
    return loom_log_keys_build(m, show_weights, diag ? b->K : 0, diag ? b->out_of : NULL);
}

loom_status loom_balance_setup(loom_model *m, const loom_balance *cfg) {
    loom_balance_free(m->balance);
    m->balance = NULL;
    if (cfg->kind == LOOM_BALANCE_STATIC && !cfg->diagnostics_every) return LOOM_OK;
    if ((int)cfg->kind < 0 || cfg->kind > LOOM_BALANCE_NASH_MTL)
        return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "compile: unknown balancing method %d", (int)cfg->kind);
    const char *bad = NULL;
    if (!(cfg->uw_learning_rate >= 0) || !isfinite(cfg->uw_learning_rate)) bad = "uw_learning_rate";
    else if (!isfinite(cfg->uw_initial_log_variance)) bad = "uw_initial_log_variance";
    else if (!(cfg->gradnorm_alpha >= 0) || !isfinite(cfg->gradnorm_alpha)) bad = "gradnorm_alpha";
    else if (!(cfg->gradnorm_learning_rate >= 0) || !isfinite(cfg->gradnorm_learning_rate)) bad = "gradnorm_learning_rate";
    else if (cfg->kind == LOOM_BALANCE_DWA && !(cfg->dwa_temperature > 0)) bad = "dwa_temperature";
    else if (!(cfg->cagrad_c >= 0 && cfg->cagrad_c < 1)) bad = "cagrad_c (must be in [0, 1))";
    else if (cfg->cagrad_rescale < 0 || cfg->cagrad_rescale > 2) bad = "cagrad_rescale (0, 1 or 2)";
    else if (!(cfg->nash_max_norm >= 0)) bad = "nash_max_norm";
    else if (cfg->nash_update_every < 0 || cfg->diagnostics_every < 0) bad = "nash_update_every / diagnostics_every";
    else if ((int)cfg->mgda_normalization < 0 || cfg->mgda_normalization > LOOM_MGDA_NORM_LOSS_PLUS) bad = "mgda_normalization";
    if (bad) return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "compile: balance %s: bad %s", loom_balance_name(cfg->kind), bad);

    loom_balance_state *b = calloc(1, sizeof *b);
    if (!b) return loom_set_error(&m->err, LOOM_ERR_MEMORY, "compile: out of memory");
    m->balance = b;
    b->cfg = *cfg;
    if (b->cfg.nash_update_every == 0) b->cfg.nash_update_every = 1;
    for (int k = 0; k < m->n_outputs; k++)
        if (m->outputs[k].loss.kind != LOSS_NONE) {
            if (b->K == LOOM_MTL_MAX_TASKS)
                return loom_set_error(&m->err, LOOM_ERR_COUNT, "compile: balancing handles at most %d losses", LOOM_MTL_MAX_TASKS);
            b->out_of[b->K++] = k;
        }
    b->shared = calloc((size_t)(m->n_tensors ? m->n_tensors : 1), sizeof *b->shared);
    b->head_of = calloc((size_t)(m->n_tensors ? m->n_tensors : 1), sizeof *b->head_of);
    if (!b->shared || !b->head_of) return loom_set_error(&m->err, LOOM_ERR_MEMORY, "compile: out of memory");
    for (int t = 0; t < m->n_tensors; t++) {
        uint64_t r = tensor_reach(m, t);
        int count = 0, last = -1;
        for (int i = 0; i < b->K; i++)
            if (r >> b->out_of[i] & 1) count++, last = i;
        b->shared[t] = count >= 2;
        b->head_of[t] = count == 1 ? last : -1;
        b->n_shared += b->shared[t] ? m->tensors[t].size : 0;
    }
    bool needs_G = is_gradient_method(cfg->kind) || cfg->kind == LOOM_BALANCE_GRADNORM || cfg->diagnostics_every > 0;
    if (needs_G) {
        b->G = malloc((size_t)b->K * (m->n_params ? m->n_params : 1) * sizeof *b->G);
        if (!b->G)
            return loom_set_error(&m->err, LOOM_ERR_MEMORY, "compile: out of memory for %d per-loss gradient buffers", b->K);
    }
    if (cfg->kind == LOOM_BALANCE_GRADNORM) {
        /* W: the named layer, or the last layer (in execution order) with weights that every loss reaches */
        b->gn_layer = NULL;
        for (int i = m->n_order - 1; i >= 0 && !cfg->gradnorm_layer && !b->gn_layer; i--) {
            loom_layer *L = m->order[i].node->layer;
            bool all = L->n_weights > 0;
            for (int k = 0; k < b->K && all; k++) all = (m->order[i].reach >> b->out_of[k] & 1) != 0;
            if (all) b->gn_layer = L;
        }
        if (cfg->gradnorm_layer) {
            /* the named layer must have weights and be reached by every loss, or n_i is meaningless */
            loom_layer *L = loom_model_find_layer(m, cfg->gradnorm_layer);
            bool all = L && L->n_weights > 0;
            for (int k = 0; k < b->K && all; k++) {
                bool reached = false;
                for (int i = 0; i < m->n_order && !reached; i++)
                    reached = m->order[i].node->layer == L && (m->order[i].reach >> b->out_of[k] & 1);
                all = reached;
            }
            b->gn_layer = all ? L : NULL;
        }
        if (!b->gn_layer || b->gn_layer->n_weights == 0)
            return loom_set_error(&m->err, LOOM_ERR_NAME, "compile: GradNorm needs a shared layer with weights%s%s%s",
                                  cfg->gradnorm_layer ? " (\"" : "", cfg->gradnorm_layer ? cfg->gradnorm_layer : "",
                                  cfg->gradnorm_layer ? "\" is not one)" : "; no layer is reached by every loss");
    }
    for (int i = 0; i < b->K; i++) {
        b->gn_w[i] = 1.0;
        b->uw_s[i] = cfg->uw_initial_log_variance;
    }
    b->dwa_epoch = -1;
    return LOOM_OK;
}

/* ---------------------------------------------------------------- weight schedules */

loom_status loom_set_loss_weight_schedule(loom_model *m, const char *output, const loom_weight_schedule *s) {
    if (!m) return LOOM_ERR_ARGUMENT;
    int k = loom_model_output_index(m, output);
    if (k < 0) return LOOM_ERR_NAME;
    if (!s) {
        bool had = m->outputs[k].has_schedule;
        m->outputs[k].has_schedule = false;
        loom_status st = had && m->compiled ? loom_balance_log_keys(m) : LOOM_OK;
        if (st == LOOM_ERR_MEMORY) return loom_set_error(&m->err, LOOM_ERR_MEMORY, "out of memory");
        if (!st) loom_clear_error(&m->err);
        return st;
    }
    loom_mtl_schedule ms;
    memset(&ms, 0, sizeof ms);
    ms.kind = (loom_mtl_schedule_kind)s->kind;
    ms.w0 = s->w0, ms.w1 = s->w1, ms.t0 = s->t0, ms.t1 = s->t1, ms.rate = s->rate;
    ms.decay_steps = s->decay_steps, ms.staircase = s->staircase, ms.length = s->length;
    ms.n_boundaries = s->n_boundaries;
    if (s->n_boundaries < 0 || s->n_boundaries > 16 || s->n_boundaries > LOOM_MTL_MAX_PIECES)
        return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "weight schedule of %s: n_boundaries %d out of range", output,
                              s->n_boundaries);
    for (int i = 0; i < s->n_boundaries; i++) ms.boundaries[i] = s->boundaries[i];
    for (int i = 0; i <= s->n_boundaries; i++) ms.values[i] = s->values[i];
    loom_error e = {0};
    if ((int)s->kind < 0 || s->kind > LOOM_WEIGHT_RAMPUP || loom_mtl_schedule_check(&ms, &e))
        return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "weight schedule of %s: %s", output,
                              e.msg[0] ? e.msg : "unknown kind");
    bool had = m->outputs[k].has_schedule;
    m->outputs[k].schedule = ms;
    m->outputs[k].schedule_by_epoch = s->by_epoch != 0;
    m->outputs[k].has_schedule = true;
    /* the effective weights join the logs */
    loom_status st = !had && m->compiled ? loom_balance_log_keys(m) : LOOM_OK;
    if (st == LOOM_ERR_MEMORY) return loom_set_error(&m->err, LOOM_ERR_MEMORY, "out of memory");
    if (!st) loom_clear_error(&m->err);
    return st;
}

/* The static part of output k's weight at this step. */
static double base_weight(const loom_model *m, int k, int epoch) {
    const loom_output *o = &m->outputs[k];
    if (!o->has_schedule) return o->weight;
    return loom_mtl_schedule_value(&o->schedule, o->schedule_by_epoch ? (double)epoch : (double)m->iterations);
}

bool loom_balance_active(const loom_model *m) {
    if (m->balance) return true;
    for (int k = 0; k < m->n_outputs; k++)
        if (m->outputs[k].has_schedule) return true;
    return false;
}

loom_status loom_effective_loss_weights(const loom_model *m, float *weights, int n) {
    if (!m || !weights || n != m->n_outputs) return LOOM_ERR_ARGUMENT;
    for (int k = 0; k < n; k++) weights[k] = m->outputs[k].effective_weight;
    return LOOM_OK;
}

/* ---------------------------------------------------------------- the step */

/* Gram matrix of the K per-loss gradients over the shared tensors. */
static void shared_gram(const loom_model *m, const loom_balance_state *b, double *M) {
    int K = b->K;
    size_t P = m->n_params;
    for (int i = 0; i < K * K; i++) M[i] = 0;
    for (int t = 0; t < m->n_tensors; t++) {
        if (!b->shared[t]) continue;
        size_t off = m->t_offset[t], n = m->t_size[t];
        for (int i = 0; i < K; i++)
            for (int j = i; j < K; j++) {
                const float *gi = b->G + (size_t)i * P + off, *gj = b->G + (size_t)j * P + off;
                double s = 0;
                for (size_t p = 0; p < n; p++) s += (double)gi[p] * gj[p];
                M[i * K + j] += s;
            }
    }
    for (int i = 0; i < K; i++)
        for (int j = 0; j < i; j++) M[i * K + j] = M[j * K + i];
}

bool loom_balance_grads_global(const loom_model *m) { return m->balance && is_gradient_method(m->balance->cfg.kind); }

/* One backward pass per loss, seeded with seeds[i], into G (reusing the forward). Distributed
 * (red): each scaled by the rank's share of that loss, then summed over the ranks, so that G
 * holds the global batch's per-loss gradients on every rank. The caller's gradient hook (which
 * reduces m->grads) is off meanwhile: these passes write G. */
static loom_status per_loss_backward(loom_model *m, loom_balance_state *b, int batch, const double *seeds,
                                     const loom_balance_reduce *red) {
    float sw[LOOM_MAX_OUTPUTS];
    void (*hook)(void *, int) = m->backward_hook;
    double share = m->sync_share;
    m->backward_hook = NULL;
    m->sync_share = 1.0; /* the seeds below carry the rank's share: G is summed as it is */
    for (int i = 0; i < b->K; i++) {
        int k = b->out_of[i];
        float *g = b->G + (size_t)i * m->n_params;
        if (batch == 0) { /* a rank without samples this step adds nothing, but joins */
            memset(g, 0, m->n_params * sizeof *g);
            loom_engine_sync_idle(m, true, 1ULL << k);
            continue;
        }
        for (int j = 0; j < m->n_outputs; j++) sw[j] = 0;
        sw[k] = (float)seeds[i] * (red ? red->out_scale[k] : 1.0f);
        loom_engine_backward(m, batch, 1ULL << k, false, sw, g);
    }
    m->backward_hook = hook;
    m->sync_share = share;
    return red ? red->sum(red->user, b->G, (size_t)b->K * m->n_params) : LOOM_OK;
}

/* The one backward of the loss-weighting methods, seeded with seeds. Distributed (red): this
 * rank's part, which the caller scales by grad_scale and sums; a masked output's share differs
 * from the batch share, so its seed carries the ratio. */
static void combined_backward(loom_model *m, int batch, uint64_t mask, const float *seeds, const loom_balance_reduce *red) {
    if (!red) {
        loom_engine_backward(m, batch, mask, true, seeds, m->grads);
        return;
    }
    if (batch == 0) { /* nothing to add; the tensors to update are the other ranks' */
        memset(m->grads, 0, m->n_params * sizeof *m->grads);
        for (int t = 0; t < m->n_tensors; t++) m->t_active[t] = false;
        loom_engine_sync_idle(m, true, mask);
        return;
    }
    float sd[LOOM_MAX_OUTPUTS];
    for (int k = 0; k < m->n_outputs; k++) sd[k] = seeds[k] * (red->out_scale[k] / red->grad_scale);
    loom_engine_backward(m, batch, mask, true, sd, m->grads);
}

static void log_diagnostics(loom_balance_state *b, const double *M) {
    int K = b->K, p = 0;
    for (int i = 0; i < K; i++)
        for (int j = i + 1; j < K; j++, p++) {
            int zero = 0;
            double c = loom_mtl_cosine(M[i * K + i], M[i * K + j], M[j * K + j], &zero);
            b->diag_cos[p] = c;
        }
    b->diag_measured = true;
}

/* GradNorm's n_i: the norm of grad L_i over W's weights, from the per-loss buffers. */
static double layer_norm_in(const loom_model *m, const float *g, const loom_layer *L) {
    double s = 0;
    for (int w = 0; w < L->n_weights; w++) {
        size_t off = L->weights[w].offset, n = loom_shape_size(&L->weights[w].shape);
        for (size_t p = 0; p < n; p++) s += (double)g[off + p] * g[off + p];
    }
    (void)m;
    return sqrt(s);
}

/* Adam on the uncertainty log-variances (their own small optimizer, as the references use). */
static void uw_update(loom_balance_state *b, const double *grad) {
    const double b1 = 0.9, b2 = 0.999, eps = 1e-7, lr = b->cfg.uw_learning_rate;
    b->uw_t++;
    for (int i = 0; i < b->K; i++) {
        b->uw_m[i] += (1 - b1) * (grad[i] - b->uw_m[i]);
        b->uw_v[i] += (1 - b2) * (grad[i] * grad[i] - b->uw_v[i]);
        double alpha = lr * sqrt(1 - pow(b2, (double)b->uw_t)) / (1 - pow(b1, (double)b->uw_t));
        b->uw_s[i] -= alpha * b->uw_m[i] / (sqrt(b->uw_v[i]) + eps);
    }
}

static void dwa_epoch_boundary(loom_balance_state *b, int epoch) {
    if (epoch == b->dwa_epoch) return;
    if (b->dwa_epoch >= 0 && b->dwa_count > 0) {
        for (int i = 0; i < b->K; i++) {
            b->dwa_prev2[i] = b->dwa_prev1[i];
            b->dwa_prev1[i] = b->dwa_sum[i] / b->dwa_count;
        }
        b->dwa_epochs_seen++;
    }
    for (int i = 0; i < b->K; i++) b->dwa_sum[i] = 0;
    b->dwa_count = 0;
    b->dwa_epoch = epoch;
}

loom_status loom_balance_step(loom_model *m, int batch, int epoch, float *total_out, bool check_nan,
                              loom_status (*nan_check)(loom_model *, float, int, int), int step,
                              const loom_balance_reduce *red) {
    loom_balance_state *b = m->balance;
    loom_balance_kind kind = b ? b->cfg.kind : LOOM_BALANCE_STATIC;
    double base[LOOM_MAX_OUTPUTS];
    uint64_t with_loss = 0;
    for (int k = 0; k < m->n_outputs; k++) {
        base[k] = m->outputs[k].loss.kind == LOSS_NONE ? 0 : base_weight(m, k, epoch);
        if (m->outputs[k].loss.kind != LOSS_NONE) with_loss |= 1ULL << k;
    }
    float reg = red ? red->reg : 0;
    loom_status s = red ? LOOM_OK : loom_engine_forward(m, batch, true, true, with_loss, &reg);
    if (s) return s;
    if (check_nan && (s = nan_check(m, reg, epoch, step))) return s;

    float seeds[LOOM_MAX_OUTPUTS];
    double total = reg;
    for (int k = 0; k < m->n_outputs; k++) seeds[k] = 0;
    if (!b) { /* schedules only */
        uint64_t mask = 0;
        for (int k = 0; k < m->n_outputs; k++) {
            seeds[k] = (float)base[k];
            if (base[k] != 0 && (with_loss >> k & 1)) mask |= 1ULL << k;
            if (with_loss >> k & 1) total += base[k] * m->outputs[k].loss_value;
            m->outputs[k].effective_weight = (float)base[k];
        }
        combined_backward(m, batch, mask, seeds, red);
        *total_out = (float)total;
        return LOOM_OK;
    }

    int K = b->K;
    double L[LOOM_MTL_MAX_TASKS], w[LOOM_MTL_MAX_TASKS], lam[LOOM_MTL_MAX_TASKS];
    bool outer = b->cfg.static_outer != 0;
    double sum_to = b->cfg.sum_to_one ? 1.0 : (double)K;
    for (int i = 0; i < K; i++) {
        L[i] = m->outputs[b->out_of[i]].loss_value;
        w[i] = base[b->out_of[i]];
        lam[i] = 1.0;
    }
    /* the losses the method balances: w_i L_i (inner) or L_i (outer) */
    double Lb[LOOM_MTL_MAX_TASKS];
    for (int i = 0; i < K; i++) Lb[i] = outer ? L[i] : w[i] * L[i];
    loom_error e = {0};
    bool diag_now = b->cfg.diagnostics_every > 0 && m->iterations % b->cfg.diagnostics_every == 0;
    b->diag_measured = false;

    if (!is_gradient_method(kind)) {
        double uw_grad[LOOM_MTL_MAX_TASKS], extra = 0;
        switch (kind) {
        case LOOM_BALANCE_UNCERTAINTY: {
            loom_mtl_uw_kind forms[LOOM_MTL_MAX_TASKS];
            for (int i = 0; i < K; i++) {
                loom_loss_kind lk = m->outputs[b->out_of[i]].loss.kind;
                bool ce = lk == LOSS_BCE || lk == LOSS_CCE || lk == LOSS_SCCE;
                forms[i] = b->cfg.uw_classification && ce ? LOOM_MTL_UW_CLASSIFICATION : LOOM_MTL_UW_REGRESSION;
            }
            double uw_total;
            if (loom_mtl_uw(K, Lb, b->uw_s, forms, &uw_total, uw_grad, lam, &e)) goto solver_error;
            for (int i = 0; i < K; i++) extra += 0.5 * b->uw_s[i] * (outer ? w[i] : 1.0);
            break;
        }
        case LOOM_BALANCE_GRADNORM:
            for (int i = 0; i < K; i++) lam[i] = b->gn_w[i] * sum_to / K;
            break;
        case LOOM_BALANCE_DWA:
            dwa_epoch_boundary(b, epoch);
            if (loom_mtl_dwa(K, b->dwa_epochs_seen, b->dwa_prev1, b->dwa_prev2, b->cfg.dwa_temperature, lam, &e))
                goto solver_error;
            for (int i = 0; i < K; i++) {
                lam[i] *= sum_to / K;
                b->dwa_sum[i] += L[i] * (red ? red->global_batch : batch);
            }
            b->dwa_count += red ? red->global_batch : batch;
            break;
        case LOOM_BALANCE_RLW:
            if (loom_mtl_rlw(K, loom_hash64(m->g->seed, 0x41CE), (uint64_t)m->iterations, sum_to, lam, &e)) goto solver_error;
            break;
        default:
            break;
        }
        uint64_t mask = 0;
        for (int i = 0; i < K; i++) {
            int k = b->out_of[i];
            seeds[k] = (float)(lam[i] * w[i]);
            if (seeds[k] != 0) mask |= 1ULL << k;
            total += lam[i] * w[i] * L[i];
            m->outputs[k].effective_weight = seeds[k];
        }
        total += extra;
        if (kind == LOOM_BALANCE_GRADNORM || diag_now) {
            /* per-loss gradients of the balanced losses, for n_i and/or the diagnostics */
            double sd[LOOM_MTL_MAX_TASKS];
            for (int i = 0; i < K; i++) sd[i] = outer ? 1.0 : w[i];
            if ((s = per_loss_backward(m, b, batch, sd, red))) return s;
            if (diag_now) {
                double M[LOOM_MTL_MAX_TASKS * LOOM_MTL_MAX_TASKS];
                shared_gram(m, b, M);
                log_diagnostics(b, M);
            }
        }
        combined_backward(m, batch, mask, seeds, red);
        if (kind == LOOM_BALANCE_GRADNORM) {
            double n[LOOM_MTL_MAX_TASKS];
            for (int i = 0; i < K; i++) n[i] = layer_norm_in(m, b->G + (size_t)i * m->n_params, b->gn_layer);
            if (!b->gn_has_L0) {
                for (int i = 0; i < K; i++) b->gn_L0[i] = Lb[i] > 0 ? Lb[i] : 1e-12;
                b->gn_has_L0 = true;
            }
            if (loom_mtl_gradnorm_step(K, b->gn_w, n, b->gn_L0, Lb, b->cfg.gradnorm_alpha, b->cfg.gradnorm_learning_rate,
                                       1e-8, b->gn_w, NULL, &e))
                goto solver_error;
        }
        if (kind == LOOM_BALANCE_UNCERTAINTY) {
            if (outer)
                for (int i = 0; i < K; i++) uw_grad[i] *= w[i];
            uw_update(b, uw_grad);
        }
        *total_out = (float)total;
        return LOOM_OK;
    }

    /* gradient methods: K backward passes, a solver on the shared Gram matrix */
    double sd[LOOM_MTL_MAX_TASKS], M[LOOM_MTL_MAX_TASKS * LOOM_MTL_MAX_TASKS], c[LOOM_MTL_MAX_TASKS];
    double head[LOOM_MTL_MAX_TASKS]; /* what each head's own gradient is multiplied by */
    for (int i = 0; i < K; i++) {
        sd[i] = outer ? 1.0 : w[i];
        total += w[i] * L[i];
    }
    if ((s = per_loss_backward(m, b, batch, sd, red))) return s;
    shared_gram(m, b, M);
    if (diag_now) log_diagnostics(b, M);
    for (int i = 0; i < K; i++) head[i] = 1.0;
    switch (kind) {
    case LOOM_BALANCE_PCGRAD:
        if (loom_mtl_pcgrad_random(K, M, loom_hash64(m->g->seed, 0x9C6A), (uint64_t)m->iterations,
                                   b->cfg.pcgrad_mean ? LOOM_MTL_REDUCE_MEAN : LOOM_MTL_REDUCE_SUM, NULL, c, &e))
            goto solver_error;
        break;
    case LOOM_BALANCE_MGDA: {
        double Mn[LOOM_MTL_MAX_TASKS * LOOM_MTL_MAX_TASKS];
        if (loom_mtl_mgda_normalize(K, M, Lb, (loom_mtl_mgda_norm)b->cfg.mgda_normalization, Mn, NULL, &e) ||
            loom_mtl_mgda(K, Mn, LOOM_MTL_MGDA_PGD, 0, 0, c, NULL, &e))
            goto solver_error;
        for (int i = 0; i < K; i++) head[i] = c[i]; /* official: backward of sum alpha_i L_i */
        break;
    }
    case LOOM_BALANCE_CAGRAD:
        if (loom_mtl_cagrad(K, M, b->cfg.cagrad_c, b->cfg.cagrad_rescale, c, NULL, &e)) goto solver_error;
        break;
    case LOOM_BALANCE_NASH_MTL:
        if (!b->nash_has || m->iterations % b->cfg.nash_update_every == 0) {
            double alpha[LOOM_MTL_MAX_TASKS];
            for (int i = 0; i < K; i++) alpha[i] = b->nash_has ? b->nash_alpha[i] : 1.0;
            if (loom_mtl_nash(K, M, 20, 0, alpha, NULL, &e) == LOOM_OK) {
                memcpy(b->nash_alpha, alpha, sizeof alpha);
                b->nash_has = true;
            } else if (!b->nash_has) { /* no previous alpha to fall back on: equal weights */
                for (int i = 0; i < K; i++) b->nash_alpha[i] = 1.0;
                b->nash_has = true;
            }
        }
        for (int i = 0; i < K; i++) c[i] = head[i] = b->nash_alpha[i];
        if (b->cfg.nash_max_norm > 0) loom_mtl_clip_coeffs(K, M, c, b->cfg.nash_max_norm);
        break;
    default:
        break;
    }
    if (outer)
        for (int i = 0; i < K; i++) c[i] *= w[i], head[i] *= w[i];
    /* assemble: shared tensors get sum_j c_j g_j, a head its own loss's gradient */
    size_t P = m->n_params;
    memset(m->grads, 0, P * sizeof(float));
    for (int t = 0; t < m->n_tensors; t++) {
        size_t off = m->t_offset[t], n = m->t_size[t];
        float *g = m->grads + off;
        m->t_active[t] = false;
        if (m->tensors[t].layer->weights[m->tensors[t].index].non_trainable) continue;
        if (b->shared[t]) {
            for (int i = 0; i < K; i++) {
                const float *gi = b->G + (size_t)i * P + off;
                float ci = (float)c[i];
                for (size_t p = 0; p < n; p++) g[p] += ci * gi[p];
            }
            m->t_active[t] = true;
        } else if (b->head_of[t] >= 0) {
            int i = b->head_of[t];
            const float *gi = b->G + (size_t)i * P + off;
            float hi = (float)head[i];
            for (size_t p = 0; p < n; p++) g[p] = hi * gi[p];
            m->t_active[t] = true;
        }
    }
    loom_engine_add_regularization(m, m->grads);
    for (int i = 0; i < K; i++) m->outputs[b->out_of[i]].effective_weight = (float)(c[i] * (outer ? 1.0 : w[i]));
    *total_out = (float)total;
    return LOOM_OK;
solver_error:
    return loom_set_error(&m->err, e.code ? e.code : LOOM_ERR_DATA, "balance %s: %s", loom_balance_name(kind), e.msg);
}
