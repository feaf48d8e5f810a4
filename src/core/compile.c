/* compile.c — resolving loss=, loss_weights=, metrics= and optimizer= against the model's
 * outputs, as keras.Model.compile does (spec section 1). */
#include "core/balance.h"
#include "kernels/gemm_bf16.h"
#include "layers/layers.h"
#include "optim/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void output_list(const loom_model *m, char *buf, size_t len) {
    buf[0] = '\0';
    for (int k = 0; k < m->n_outputs; k++) {
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, "%s%s", k ? ", " : "", m->outputs[k].name);
    }
}

/* Maps a list given with optional names to output indices: slot[k] = index into the list or -1.
 * what: "losses" / "loss weights". broadcast: a single unnamed entry applies to every output. */
static loom_status map_to_outputs(loom_model *m, const char *what, int n, const char *const *names,
                                  bool broadcast, int *slot) {
    char outs[256];
    output_list(m, outs, sizeof outs);
    for (int k = 0; k < m->n_outputs; k++) slot[k] = -1;
    if (n == 0) return LOOM_OK;
    if (!names) {
        if (n == 1 && broadcast) {
            for (int k = 0; k < m->n_outputs; k++) slot[k] = 0;
            return LOOM_OK;
        }
        if (n != m->n_outputs)
            return loom_set_error(&m->err, LOOM_ERR_COUNT,
                                  "compile: %d %s given for %d output(s) (%s); give one per output, in output order, or name them",
                                  n, what, m->n_outputs, outs);
        for (int k = 0; k < m->n_outputs; k++) slot[k] = k;
        return LOOM_OK;
    }
    for (int i = 0; i < n; i++) {
        if (!names[i])
            return loom_set_error(&m->err, LOOM_ERR_NAME, "compile: %s entry %d has no output name", what, i);
        int k = -1;
        for (int j = 0; j < m->n_outputs; j++)
            if (strcmp(m->outputs[j].name, names[i]) == 0) k = j;
        if (k < 0)
            return loom_set_error(&m->err, LOOM_ERR_NAME,
                                  "compile: %s name \"%.64s\", which is not a model output; the outputs are: %s",
                                  what, names[i], outs);
        if (slot[k] >= 0)
            return loom_set_error(&m->err, LOOM_ERR_NAME, "compile: %s name output %s twice", what, names[i]);
        slot[k] = i;
    }
    return LOOM_OK;
}

static bool is_softmax_or_sigmoid_head(const loom_model *m, const loom_output *o, loom_activation *act) {
    const loom_step_node *sn = &m->order[o->pos];
    const loom_layer *L = sn->node->layer;
    if (L->op != &loom_op_dense && L->op != &loom_op_activation) return false;
    if (sn->n_consumers != 0) return false; /* another layer reads the probabilities */
    *act = L->activation;
    return true;
}

static loom_status compile_losses(loom_model *m, const loom_compile_config *cfg) {
    int slot[LOOM_MAX_OUTPUTS];
    loom_status s = map_to_outputs(m, "losses", cfg->n_losses, cfg->loss_outputs, true, slot);
    if (s) return s;
    if (cfg->n_losses && !cfg->losses)
        return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "compile: n_losses is %d but losses is NULL", cfg->n_losses);
    for (int k = 0; k < m->n_outputs; k++) {
        loom_output *o = &m->outputs[k];
        memset(&o->loss, 0, sizeof o->loss);
        o->fused = false;
        if (slot[k] >= 0) {
            loom_error e = {0};
            loom_loss spec = cfg->losses[slot[k]];
            /* Keras's "crossentropy"/"ce" pick the crossentropy from the output's width (labels
             * are not known at compile time, so the sparse form must be named explicitly). */
            if (spec.name && !spec.fn && (strcmp(spec.name, "crossentropy") == 0 || strcmp(spec.name, "ce") == 0))
                spec.name = o->dim == 1 ? "binary_crossentropy" : "categorical_crossentropy";
            if (loom_loss_resolve(&spec, &o->loss, &e))
                return loom_set_error(&m->err, e.code, "compile: output %s: %s", o->name, e.msg);
        }
        if (o->loss.kind == LOSS_NONE) {
            o->target_dim = o->dim;
            o->target_size = o->size;
            continue;
        }
        if ((o->loss.kind == LOSS_CCE || o->loss.kind == LOSS_SCCE) && o->dim < 2)
            return loom_set_error(&m->err, LOOM_ERR_SHAPE,
                                  "compile: output %s has %d unit(s) on its last axis; %s needs at least 2 classes",
                                  o->name, o->dim, o->loss.name);
        o->target_dim = loom_loss_target_dim(&o->loss, o->dim);
        o->target_size = o->rows_per_sample * (size_t)o->target_dim;
        loom_activation act;
        o->fused = is_softmax_or_sigmoid_head(m, o, &act) && loom_loss_can_fuse(&o->loss, act);
    }
    return LOOM_OK;
}

static loom_status compile_weights(loom_model *m, const loom_compile_config *cfg) {
    int slot[LOOM_MAX_OUTPUTS];
    /* one weight broadcasts when there is one output or one (broadcast) loss */
    bool broadcast = m->n_outputs == 1 || (cfg->n_losses == 1 && !cfg->loss_outputs);
    loom_status s = map_to_outputs(m, "loss weights", cfg->n_loss_weights, cfg->loss_weight_outputs,
                                   broadcast, slot);
    if (s) return s;
    if (cfg->n_loss_weights && !cfg->loss_weights)
        return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "compile: n_loss_weights is %d but loss_weights is NULL",
                              cfg->n_loss_weights);
    for (int k = 0; k < m->n_outputs; k++) {
        float w = slot[k] >= 0 ? cfg->loss_weights[slot[k]] : 1.0f;
        if (!isfinite(w))
            return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "compile: the loss weight of output %s is %g; it must be finite",
                                  m->outputs[k].name, (double)w);
        m->outputs[k].weight = w;
    }
    return LOOM_OK;
}

static void free_metrics(loom_model *m) {
    for (int i = 0; i < m->n_metrics; i++) loom_metric_release(&m->metrics[i]);
    free(m->metrics);
    free(m->metric_names);
    m->metrics = NULL;
    m->metric_names = NULL;
    m->n_metrics = 0;
}

/* One entry of metrics= or weighted_metrics= into m->metrics[m->n_metrics]. */
static loom_status compile_metric(loom_model *m, const loom_metric_spec *ms, bool weighted) {
    const char *list = weighted ? "weighted metric" : "metric";
    int k = 0;
    if (ms->output) {
        k = loom_model_output_index(m, ms->output);
        if (k < 0) {
            char msg[LOOM_ERR_MAX]; /* the message names the unknown output; keep it */
            snprintf(msg, sizeof msg, "%.400s", m->err.msg);
            return loom_set_error(&m->err, LOOM_ERR_NAME, "compile: %s %.64s: %s", list, ms->name ? ms->name : "?", msg);
        }
    } else if (m->n_outputs != 1) {
        return loom_set_error(&m->err, LOOM_ERR_NAME,
                              "compile: %s %.64s names no output; a model with %d outputs needs the output of every metric",
                              list, ms->name ? ms->name : "(null)", m->n_outputs);
    }
    loom_output *o = &m->outputs[k];
    loom_error e = {0};
    loom_metric_impl *mt = &m->metrics[m->n_metrics];
    int target_dim = o->loss.kind == LOSS_NONE ? o->dim : o->target_dim;
    if (!ms->name || loom_metric_resolve(ms->name, &o->loss, o->dim, target_dim, mt, &e))
        return loom_set_error(&m->err, ms->name ? e.code : LOOM_ERR_NAME, "compile: output %s: %s", o->name,
                              ms->name ? e.msg : "metric name is NULL");
    m->n_metrics++; /* owned from here: released with the others */
    mt->output = k;
    mt->weighted = weighted;
    snprintf(m->metric_names[m->n_metrics - 1], LOOM_METRIC_SPEC_MAX, "%s", ms->name);
    char stem[LOOM_LOG_KEY_MAX];
    snprintf(stem, sizeof stem, "%s", mt->log_name);
    if (m->n_outputs > 1) snprintf(mt->log_name, sizeof mt->log_name, "%.63s_%.63s", o->name, stem);
    return LOOM_OK;
}

/* metrics= see the output's mask only, weighted_metrics= the sample and class weights too (Keras 3
 * CompileMetrics); both lists are kept in one array, unweighted first, as Keras logs them. */
static loom_status compile_metrics(loom_model *m, const loom_compile_config *cfg) {
    free_metrics(m);
    int n = cfg->n_metrics > 0 ? cfg->n_metrics : 0, nw = cfg->n_weighted_metrics > 0 ? cfg->n_weighted_metrics : 0;
    if (n + nw == 0) return LOOM_OK;
    if ((n && !cfg->metrics) || cfg->n_metrics > 1024)
        return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "compile: bad metric list (%d entries)", cfg->n_metrics);
    if ((nw && !cfg->weighted_metrics) || cfg->n_weighted_metrics > 1024)
        return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "compile: bad weighted metric list (%d entries)",
                              cfg->n_weighted_metrics);
    m->metrics = calloc((size_t)(n + nw), sizeof *m->metrics);
    m->metric_names = calloc((size_t)(n + nw), sizeof *m->metric_names);
    if (!m->metrics || !m->metric_names) return loom_set_error(&m->err, LOOM_ERR_MEMORY, "compile: out of memory");
    loom_status s;
    for (int i = 0; i < n; i++)
        if ((s = compile_metric(m, &cfg->metrics[i], false))) return s;
    for (int i = 0; i < nw; i++)
        if ((s = compile_metric(m, &cfg->weighted_metrics[i], true))) return s;
    return LOOM_OK;
}

/* needs_grad: the node's own trainable weights, or an input's, make its backward worth running. */
void loom_model_snapshot_trainable(loom_model *m) {
    for (int t = 0; t < m->n_tensors; t++) m->t_frozen[t] = m->tensors[t].layer->frozen;
    for (int i = 0; i < m->n_order; i++) {
        loom_step_node *sn = &m->order[i];
        const loom_layer *L = sn->node->layer;
        sn->frozen = L->frozen;
        bool trains = false;
        for (int w = 0; w < L->n_weights && !L->frozen && !sn->is_input; w++) trains = trains || !L->weights[w].non_trainable;
        for (int j = 0; j < sn->node->n_in && !trains; j++) trains = m->order[sn->in_pos[j]].needs_grad;
        sn->needs_grad = trains;
    }
}

/* How each layer's weight gradients are made.
 * - dw_sole: a Dense layer called once writes its gradients whole in its backward (its products
 *   overwrite them), so nothing zeroes them first; other layers add to zeroed ones.
 * - sgd_update: plain SGD (no momentum, clipping or weight decay: w -= lr g and nothing else) needs
 *   no gradient buffer at all: such a Dense layer subtracts lr x^T dz from its kernel inside its own
 *   backward, once it has used the kernel for dx. That saves writing the gradients and the
 *   optimizer's pass over them (wide: ~10 ms of 140 per step; tiny: 0.4 of 8.5 us). Not for a
 *   regularised layer, whose gradient is added after the backward. The result is the same update to
 *   float rounding.
 * Both need the layer called once: a shared layer's later call sites add to its gradient and still
 * need the old kernel. */
static void plan_weight_gradients(loom_model *m) {
    const loom_optimizer *o = &m->opt;
    m->sgd_in_backward = o->kind == LOOM_SGD && o->momentum == 0.0f && !o->nesterov && o->weight_decay == 0.0f &&
                         o->clipnorm <= 0.0f && o->global_clipnorm <= 0.0f && o->clipvalue <= 0.0f;
    m->sgd_step_lr = loom_current_lr(m); /* each step sets it again; the plan's dW products start from it */
    for (int t = 0; t < m->n_tensors; t++) m->t_sgd_update[t] = false, m->t_sole_pos[t] = -1;
    for (int i = 0; i < m->n_order; i++) {
        loom_step_node *sn = &m->order[i];
        const loom_layer *L = sn->node->layer;
        sn->dw_sole = sn->sgd_update = false;
        if (sn->is_input || L->op != &loom_op_dense || L->n_weights == 0 || sn->frozen) continue;
        int calls = 0;
        for (int j = 0; j < m->n_order; j++) calls += m->order[j].node->layer == L;
        sn->dw_sole = calls == 1;
        bool plain = sn->dw_sole && m->sgd_in_backward;
        for (int w = 0; w < L->n_weights; w++)
            plain = plain && !L->weights[w].non_trainable && L->weights[w].reg.l1 == 0 && L->weights[w].reg.l2 == 0;
        sn->sgd_update = plain;
        for (int t = 0; t < m->n_tensors; t++)
            if (m->tensors[t].layer == L) {
                m->t_sgd_update[t] = plain;
                m->t_sole_pos[t] = sn->dw_sole ? i : -1;
            }
    }
}

/* A zero-filled optimizer field means none was given: Keras 3's compile() then uses "rmsprop"
 * (learning rate 0.001). SGD with learning rate 0 would train nothing and say nothing. */
static bool no_optimizer(const loom_optimizer *o) {
    return !o->constructed && o->kind == LOOM_SGD && o->learning_rate == 0.0f && o->schedule.kind == LOOM_SCHEDULE_CONSTANT &&
           o->schedule.initial_learning_rate == 0.0f && o->momentum == 0.0f && !o->nesterov && o->weight_decay == 0.0f &&
           o->clipnorm == 0.0f && o->global_clipnorm == 0.0f && o->clipvalue == 0.0f;
}

loom_dtype_policy loom_model_layer_policy(const loom_model *m, const loom_layer *L) {
    if (!m || !L || L->op == &loom_op_input) return LOOM_POLICY_FLOAT32; /* inputs keep their dtype, as Keras */
    int p = L->dtype_policy ? L->dtype_policy : m->dtype_policy;
    return p == LOOM_POLICY_MIXED_BFLOAT16 ? LOOM_POLICY_MIXED_BFLOAT16 : LOOM_POLICY_FLOAT32;
}


/* Which nodes compute in bfloat16, and the note when the CPU cannot make that faster. */
static loom_status compile_policy(loom_model *m, const loom_compile_config *cfg) {
    if ((int)cfg->dtype_policy < LOOM_POLICY_DEFAULT || cfg->dtype_policy > LOOM_POLICY_MIXED_BFLOAT16)
        return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "compile: unknown dtype_policy %d", (int)cfg->dtype_policy);
    m->dtype_policy = (int)cfg->dtype_policy;
    m->note[0] = 0;
    bool any = false;
    for (int i = 0; i < m->n_order; i++) {
        const loom_layer *L = m->order[i].node->layer;
        m->order[i].bf16 = L->op->bf16_workspace && loom_model_layer_policy(m, L) == LOOM_POLICY_MIXED_BFLOAT16;
        any |= m->order[i].bf16;
    }
    if (any && !loom_bf16_hw())
        snprintf(m->note, sizeof m->note,
                 "mixed_bfloat16: this CPU has no AVX512-BF16 instructions%s, so the bfloat16 products run in "
                 "float32 on rounded inputs (the same numbers, not faster)",
                 loom_bf16_cpu() ? " (they are there but ignored: LOOM_IGNORE_AVX512BF16)" : "");
    return LOOM_OK;
}

/* What a compile replaces, kept aside until the new settings are complete: a failed recompile
 * leaves the model as it was (still compiled with its old settings, its optimizer state kept). */
typedef struct compile_backup {
    bool compiled;
    loom_output *outputs;
    loom_metric_impl *metrics;
    char (*metric_names)[LOOM_METRIC_SPEC_MAX];
    int n_metrics, n_metric_keys;
    loom_balance_state *balance;
    loom_logs keys;
    const char **key_ptrs;
    loom_running *call_run;
    int key_weights, key_diag;
    bool log_output_losses;
} compile_backup;

static bool backup_take(loom_model *m, compile_backup *b) {
    b->outputs = malloc((size_t)m->n_outputs * sizeof *b->outputs);
    if (!b->outputs) return false;
    memcpy(b->outputs, m->outputs, (size_t)m->n_outputs * sizeof *b->outputs);
    b->compiled = m->compiled;
    b->metrics = m->metrics, b->metric_names = m->metric_names, b->n_metrics = m->n_metrics;
    b->n_metric_keys = m->n_metric_keys;
    b->balance = m->balance;
    b->keys = m->keys, b->key_ptrs = m->key_ptrs, b->call_run = m->call_run;
    b->key_weights = m->key_weights, b->key_diag = m->key_diag, b->log_output_losses = m->log_output_losses;
    m->metrics = NULL, m->metric_names = NULL, m->n_metrics = 0;
    m->balance = NULL;
    memset(&m->keys, 0, sizeof m->keys);
    m->key_ptrs = NULL, m->call_run = NULL;
    return true;
}

/* Frees what the new compile made and puts the old settings back (restore), or frees the old
 * ones (keep the new). */
static void backup_end(loom_model *m, compile_backup *b, bool restore) {
    compile_backup mine = {.metrics = m->metrics, .metric_names = m->metric_names, .n_metrics = m->n_metrics,
                           .balance = m->balance, .keys = m->keys, .key_ptrs = m->key_ptrs, .call_run = m->call_run};
    compile_backup *drop = restore ? &mine : b;
    for (int i = 0; i < drop->n_metrics && drop->metrics; i++) loom_metric_release(&drop->metrics[i]);
    free(drop->metrics);
    free(drop->metric_names);
    loom_balance_free(drop->balance);
    free(drop->keys.keys);
    free(drop->keys.values);
    free((void *)drop->key_ptrs);
    free(drop->call_run);
    if (restore) {
        memcpy(m->outputs, b->outputs, (size_t)m->n_outputs * sizeof *b->outputs);
        m->compiled = b->compiled;
        m->metrics = b->metrics, m->metric_names = b->metric_names, m->n_metrics = b->n_metrics;
        m->n_metric_keys = b->n_metric_keys;
        m->balance = b->balance;
        m->keys = b->keys, m->key_ptrs = b->key_ptrs, m->call_run = b->call_run;
        m->key_weights = b->key_weights, m->key_diag = b->key_diag, m->log_output_losses = b->log_output_losses;
    }
    free(b->outputs);
}

/* Everything compile resolves from the config (opt: the optimizer it will use). */
static loom_status compile_settings(loom_model *m, const loom_compile_config *cfg, const loom_optimizer *opt) {
    loom_status s;
    if ((s = compile_policy(m, cfg)) || (s = compile_losses(m, cfg)) || (s = compile_weights(m, cfg)) ||
        (s = compile_metrics(m, cfg)))
        return s;
    if ((s = loom_optimizer_check(opt, &m->err))) {
        char msg[LOOM_ERR_MAX];
        snprintf(msg, sizeof msg, "compile: optimizer: %.400s", m->err.msg);
        return loom_set_error(&m->err, s, "%s", msg);
    }
    if ((s = loom_balance_setup(m, &cfg->balance))) return s;
    if ((s = loom_balance_log_keys(m)))
        return s == LOOM_ERR_MEMORY ? loom_set_error(&m->err, LOOM_ERR_MEMORY, "compile: out of memory") : s;
    return LOOM_OK;
}

loom_status loom_compile(loom_model *m, const loom_compile_config *cfg) {
    if (!m) return LOOM_ERR_ARGUMENT;
    loom_clear_error(&m->err);
    if (!cfg) return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "compile: config is NULL");
    compile_backup backup;
    if (!backup_take(m, &backup)) return loom_set_error(&m->err, LOOM_ERR_MEMORY, "compile: out of memory");
    m->compiled = false;
    const loom_optimizer opt = no_optimizer(&cfg->optimizer) ? loom_rmsprop(0.001f) : cfg->optimizer;
    loom_status s = compile_settings(m, cfg, &opt);
    size_t n_slots = (size_t)loom_optimizer_slots(&opt) * m->n_params;
    float *slots = s ? NULL : loom_floats_zeroed(n_slots);
    loom_history *log = s ? NULL : loom_history_create(0, NULL, 0);
    if (!s && (!slots || !log)) s = loom_set_error(&m->err, LOOM_ERR_MEMORY, "compile: out of memory for optimizer state");
    if (s) {
        loom_floats_free(slots);
        loom_history_free(log);
        backup_end(m, &backup, true);
        return s;
    }
    backup_end(m, &backup, false);
    m->opt = opt;
    loom_model_snapshot_trainable(m);
    plan_weight_gradients(m);
    loom_floats_free(m->slots);
    m->slots = slots;
    if (m->opt.kind == LOOM_ADAGRAD)
        for (size_t i = 0; i < n_slots; i++) m->slots[i] = m->opt.initial_accumulator_value;
    m->iterations = 0;
    m->lr_overridden = false;
    m->rng_step = 0;
    m->epochs_done = 0;
    loom_history_free(m->log);
    m->log = log;
    /* targets and fused logits moved: plan the arena again at the next step */
    loom_floats_free(m->arena);
    m->arena = NULL;
    m->plan_batch = 0;
    m->compiled = true;
    return LOOM_OK;
}

loom_status loom_set_loss_weight(loom_model *m, const char *output, float weight) {
    if (!m) return LOOM_ERR_ARGUMENT;
    loom_clear_error(&m->err);
    int k = loom_model_output_index(m, output);
    if (k < 0) return LOOM_ERR_NAME;
    if (!isfinite(weight))
        return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "loss weight of output %s must be finite, got %g", output,
                              (double)weight);
    m->outputs[k].weight = weight;
    return LOOM_OK;
}

float loom_get_loss_weight(const loom_model *m, const char *output) {
    if (!m || !output) return NAN;
    for (int k = 0; k < m->n_outputs; k++)
        if (strcmp(m->outputs[k].name, output) == 0) return m->outputs[k].weight;
    return NAN;
}

float loom_current_lr(const loom_model *m) {
    if (m->lr_overridden) return m->lr_override;
    if (m->opt.schedule.kind != LOOM_SCHEDULE_CONSTANT) return loom_schedule_value(&m->opt.schedule, m->iterations);
    return m->opt.learning_rate;
}

float loom_get_learning_rate(const loom_model *m) { return (m && m->compiled) ? loom_current_lr(m) : NAN; }

loom_status loom_set_learning_rate(loom_model *m, float lr) {
    if (!m) return LOOM_ERR_ARGUMENT;
    loom_clear_error(&m->err);
    if (!m->compiled) return loom_set_error(&m->err, LOOM_ERR_STATE, "set_learning_rate: the model is not compiled");
    if (!(lr >= 0) || !isfinite(lr))
        return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "learning rate must be finite and >= 0, got %g", (double)lr);
    m->lr_overridden = true;
    m->lr_override = lr;
    return LOOM_OK;
}

long loom_iterations(const loom_model *m) { return m ? m->iterations : 0; }
