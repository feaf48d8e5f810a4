/* model_json_compile.c — the compile settings in a model file: losses, loss weights, metrics,
 * optimizer and schedule, the balancing method with its state, loss-weight schedules, and the
 * training progress (model_json.h). */
#include "core/balance.h"
#include "io/model_json.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- compile settings */

static const char *const OPT_NAMES[] = {"sgd", "adam", "adamw", "rmsprop", "adagrad"};

static cJSON *optimizer_json(const loom_optimizer *o) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "class_name", OPT_NAMES[o->kind]);
    cJSON_AddNumberToObject(j, "learning_rate", o->learning_rate);
    cJSON_AddNumberToObject(j, "momentum", o->momentum);
    cJSON_AddBoolToObject(j, "nesterov", o->nesterov);
    cJSON_AddNumberToObject(j, "beta_1", o->beta_1);
    cJSON_AddNumberToObject(j, "beta_2", o->beta_2);
    cJSON_AddNumberToObject(j, "epsilon", o->epsilon);
    cJSON_AddBoolToObject(j, "amsgrad", o->amsgrad);
    cJSON_AddNumberToObject(j, "rho", o->rho);
    cJSON_AddBoolToObject(j, "centered", o->centered);
    cJSON_AddNumberToObject(j, "initial_accumulator_value", o->initial_accumulator_value);
    cJSON_AddNumberToObject(j, "weight_decay", o->weight_decay);
    cJSON_AddNumberToObject(j, "clipnorm", o->clipnorm);
    cJSON_AddNumberToObject(j, "global_clipnorm", o->global_clipnorm);
    cJSON_AddNumberToObject(j, "clipvalue", o->clipvalue);
    const loom_schedule *s = &o->schedule;
    cJSON *sj = cJSON_AddObjectToObject(j, "schedule");
    cJSON_AddNumberToObject(sj, "kind", s->kind);
    cJSON_AddNumberToObject(sj, "initial_learning_rate", s->initial_learning_rate);
    cJSON_AddNumberToObject(sj, "decay_steps", (double)s->decay_steps);
    cJSON_AddNumberToObject(sj, "decay_rate", s->decay_rate);
    cJSON_AddBoolToObject(sj, "staircase", s->staircase);
    cJSON_AddNumberToObject(sj, "alpha", s->alpha);
    cJSON_AddNumberToObject(sj, "warmup_steps", (double)s->warmup_steps);
    cJSON_AddNumberToObject(sj, "warmup_target", s->warmup_target);
    cJSON *b = cJSON_AddArrayToObject(sj, "boundaries"), *v = cJSON_AddArrayToObject(sj, "values");
    for (int i = 0; i < s->n_boundaries && i < LOOM_MAX_BOUNDARIES; i++) cJSON_AddItemToArray(b, cJSON_CreateNumber((double)s->boundaries[i]));
    for (int i = 0; i <= s->n_boundaries && i <= LOOM_MAX_BOUNDARIES; i++) cJSON_AddItemToArray(v, cJSON_CreateNumber(s->values[i]));
    return j;
}

static bool optimizer_from_json(const cJSON *j, loom_optimizer *o) {
    const char *cls = loom_json_str(j, "class_name");
    int kind = -1;
    for (int i = 0; cls && i < 5; i++)
        if (strcmp(cls, OPT_NAMES[i]) == 0) kind = i;
    if (kind < 0) return false;
    memset(o, 0, sizeof *o);
    o->kind = (loom_optimizer_kind)kind;
    o->constructed = 1; /* a saved optimizer is the one it was, even SGD at rate 0 */
    o->learning_rate = loom_json_float(j, "learning_rate", 0.01);
    o->momentum = loom_json_float(j, "momentum", 0);
    o->nesterov = loom_json_flag(j, "nesterov", false);
    o->beta_1 = loom_json_float(j, "beta_1", 0.9);
    o->beta_2 = loom_json_float(j, "beta_2", 0.999);
    o->epsilon = loom_json_float(j, "epsilon", 1e-7);
    o->amsgrad = loom_json_flag(j, "amsgrad", false);
    o->rho = loom_json_float(j, "rho", 0.9);
    o->centered = loom_json_flag(j, "centered", false);
    o->initial_accumulator_value = loom_json_float(j, "initial_accumulator_value", 0.1);
    o->weight_decay = loom_json_float(j, "weight_decay", 0);
    o->clipnorm = loom_json_float(j, "clipnorm", 0);
    o->global_clipnorm = loom_json_float(j, "global_clipnorm", 0);
    o->clipvalue = loom_json_float(j, "clipvalue", 0);
    const cJSON *sj = cJSON_GetObjectItemCaseSensitive(j, "schedule");
    if (cJSON_IsObject(sj)) {
        loom_schedule *s = &o->schedule;
        const cJSON *kind_j = cJSON_GetObjectItemCaseSensitive(sj, "kind");
        long kind_s = kind_j ? loom_json_whole(kind_j, 0, LOOM_SCHEDULE_PIECEWISE_CONSTANT, -1) : 0;
        if (kind_s < 0) return false;
        s->kind = (loom_schedule_kind)kind_s;
        s->initial_learning_rate = loom_json_float(sj, "initial_learning_rate", 0);
        s->decay_steps = loom_json_whole(cJSON_GetObjectItemCaseSensitive(sj, "decay_steps"), 0, 1L << 53, -1);
        s->decay_rate = loom_json_float(sj, "decay_rate", 0);
        s->staircase = loom_json_flag(sj, "staircase", false);
        s->alpha = loom_json_float(sj, "alpha", 0);
        s->warmup_steps = loom_json_whole(cJSON_GetObjectItemCaseSensitive(sj, "warmup_steps"), 0, 1L << 53, -1);
        if (s->decay_steps < 0 || s->warmup_steps < 0) return false;
        s->warmup_target = loom_json_float(sj, "warmup_target", 0);
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(sj, "boundaries"), *v = cJSON_GetObjectItemCaseSensitive(sj, "values");
        int nb = cJSON_GetArraySize(b);
        if (nb > LOOM_MAX_BOUNDARIES || cJSON_GetArraySize(v) != nb + 1) return false;
        s->n_boundaries = nb;
        for (int i = 0; i < nb; i++)
            if ((s->boundaries[i] = loom_json_whole(cJSON_GetArrayItem(b, i), -(1L << 53), 1L << 53, LONG_MIN)) == LONG_MIN) return false;
        for (int i = 0; i <= nb; i++) {
            const cJSON *x = cJSON_GetArrayItem(v, i);
            if (!cJSON_IsNumber(x)) return false;
            s->values[i] = loom_json_to_float(x);
        }
    }
    return true;
}

/* ---- balancing settings, weight schedules and balancer state (exact resume needs all three) */

static cJSON *doubles(const double *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static bool doubles_from(const cJSON *a, double *v, int n) {
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) return false;
    for (int i = 0; i < n; i++) {
        const cJSON *x = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble)) return false;
        v[i] = x->valuedouble;
    }
    return true;
}

static cJSON *balance_json(const loom_model *m) {
    const loom_balance_state *b = m->balance;
    const loom_balance *c = &b->cfg;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "method", loom_balance_name(c->kind));
    cJSON_AddBoolToObject(j, "sum_to_one", c->sum_to_one);
    cJSON_AddBoolToObject(j, "static_outer", c->static_outer);
    cJSON_AddNumberToObject(j, "uw_initial_log_variance", c->uw_initial_log_variance);
    cJSON_AddNumberToObject(j, "uw_learning_rate", c->uw_learning_rate);
    cJSON_AddBoolToObject(j, "uw_classification", c->uw_classification);
    if (b->gn_layer) cJSON_AddStringToObject(j, "gradnorm_layer", b->gn_layer->name);
    cJSON_AddNumberToObject(j, "gradnorm_alpha", c->gradnorm_alpha);
    cJSON_AddNumberToObject(j, "gradnorm_learning_rate", c->gradnorm_learning_rate);
    cJSON_AddNumberToObject(j, "dwa_temperature", c->dwa_temperature);
    cJSON_AddBoolToObject(j, "pcgrad_mean", c->pcgrad_mean);
    cJSON_AddNumberToObject(j, "mgda_normalization", c->mgda_normalization);
    cJSON_AddNumberToObject(j, "cagrad_c", c->cagrad_c);
    cJSON_AddNumberToObject(j, "cagrad_rescale", c->cagrad_rescale);
    cJSON_AddNumberToObject(j, "nash_max_norm", c->nash_max_norm);
    cJSON_AddNumberToObject(j, "nash_update_every", c->nash_update_every);
    cJSON_AddNumberToObject(j, "diagnostics_every", c->diagnostics_every);
    cJSON *s = cJSON_AddObjectToObject(j, "state");
    int K = b->K;
    cJSON_AddItemToObject(s, "uw_s", doubles(b->uw_s, K));
    cJSON_AddItemToObject(s, "uw_m", doubles(b->uw_m, K));
    cJSON_AddItemToObject(s, "uw_v", doubles(b->uw_v, K));
    cJSON_AddNumberToObject(s, "uw_t", (double)b->uw_t);
    cJSON_AddItemToObject(s, "gn_w", doubles(b->gn_w, K));
    cJSON_AddItemToObject(s, "gn_L0", doubles(b->gn_L0, K));
    cJSON_AddBoolToObject(s, "gn_has_L0", b->gn_has_L0);
    cJSON_AddNumberToObject(s, "dwa_epoch", b->dwa_epoch);
    cJSON_AddNumberToObject(s, "dwa_epochs_seen", b->dwa_epochs_seen);
    cJSON_AddItemToObject(s, "dwa_sum", doubles(b->dwa_sum, K));
    cJSON_AddNumberToObject(s, "dwa_count", b->dwa_count);
    cJSON_AddItemToObject(s, "dwa_prev1", doubles(b->dwa_prev1, K));
    cJSON_AddItemToObject(s, "dwa_prev2", doubles(b->dwa_prev2, K));
    cJSON_AddItemToObject(s, "nash_alpha", doubles(b->nash_alpha, K));
    cJSON_AddBoolToObject(s, "nash_has", b->nash_has);
    return j;
}

static bool balance_from_json(const cJSON *j, loom_balance *c) {
    int kind = loom_balance_from_name(loom_json_str(j, "method"));
    if (kind < 0) return false;
    *c = loom_balance_defaults((loom_balance_kind)kind);
    c->sum_to_one = loom_json_flag(j, "sum_to_one", false);
    c->static_outer = loom_json_flag(j, "static_outer", false);
    c->uw_initial_log_variance = loom_json_float(j, "uw_initial_log_variance", 0);
    c->uw_learning_rate = loom_json_float(j, "uw_learning_rate", c->uw_learning_rate);
    c->uw_classification = loom_json_flag(j, "uw_classification", true);
    c->gradnorm_layer = loom_json_str(j, "gradnorm_layer"); /* read during compile, while the JSON lives */
    c->gradnorm_alpha = loom_json_float(j, "gradnorm_alpha", c->gradnorm_alpha);
    c->gradnorm_learning_rate = loom_json_float(j, "gradnorm_learning_rate", c->gradnorm_learning_rate);
    c->dwa_temperature = loom_json_float(j, "dwa_temperature", c->dwa_temperature);
    c->pcgrad_mean = loom_json_flag(j, "pcgrad_mean", false);
    c->mgda_normalization = (loom_mgda_normalization)loom_json_whole(cJSON_GetObjectItemCaseSensitive(j, "mgda_normalization"), 0, 3, 0);
    c->cagrad_c = loom_json_float(j, "cagrad_c", c->cagrad_c);
    c->cagrad_rescale = (int)loom_json_whole(cJSON_GetObjectItemCaseSensitive(j, "cagrad_rescale"), 0, 2, 1);
    c->nash_max_norm = loom_json_float(j, "nash_max_norm", c->nash_max_norm);
    c->nash_update_every = (int)loom_json_whole(cJSON_GetObjectItemCaseSensitive(j, "nash_update_every"), 0, 1L << 30, 1);
    c->diagnostics_every = (int)loom_json_whole(cJSON_GetObjectItemCaseSensitive(j, "diagnostics_every"), 0, 1L << 30, 0);
    return true;
}

static bool balance_state_from_json(loom_balance_state *b, const cJSON *s) {
    int K = b->K;
    long uw_t = loom_json_whole(cJSON_GetObjectItemCaseSensitive(s, "uw_t"), 0, 1L << 53, -1);
    long dwa_epoch = loom_json_whole(cJSON_GetObjectItemCaseSensitive(s, "dwa_epoch"), -1, 1L << 30, -2);
    long seen = loom_json_whole(cJSON_GetObjectItemCaseSensitive(s, "dwa_epochs_seen"), 0, 1L << 30, -1);
    if (!doubles_from(cJSON_GetObjectItemCaseSensitive(s, "uw_s"), b->uw_s, K) ||
        !doubles_from(cJSON_GetObjectItemCaseSensitive(s, "uw_m"), b->uw_m, K) ||
        !doubles_from(cJSON_GetObjectItemCaseSensitive(s, "uw_v"), b->uw_v, K) ||
        !doubles_from(cJSON_GetObjectItemCaseSensitive(s, "gn_w"), b->gn_w, K) ||
        !doubles_from(cJSON_GetObjectItemCaseSensitive(s, "gn_L0"), b->gn_L0, K) ||
        !doubles_from(cJSON_GetObjectItemCaseSensitive(s, "dwa_sum"), b->dwa_sum, K) ||
        !doubles_from(cJSON_GetObjectItemCaseSensitive(s, "dwa_prev1"), b->dwa_prev1, K) ||
        !doubles_from(cJSON_GetObjectItemCaseSensitive(s, "dwa_prev2"), b->dwa_prev2, K) ||
        !doubles_from(cJSON_GetObjectItemCaseSensitive(s, "nash_alpha"), b->nash_alpha, K) || uw_t < 0 ||
        dwa_epoch < -1 || seen < 0)
        return false;
    b->uw_t = uw_t;
    b->gn_has_L0 = loom_json_flag(s, "gn_has_L0", false);
    b->dwa_epoch = (int)dwa_epoch;
    b->dwa_epochs_seen = (int)seen;
    b->dwa_count = loom_json_num(s, "dwa_count", 0);
    b->nash_has = loom_json_flag(s, "nash_has", false);
    return true;
}

static cJSON *schedule_json(const loom_output *o) {
    const loom_mtl_schedule *s = &o->schedule;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "kind", s->kind);
    cJSON_AddNumberToObject(j, "w0", s->w0);
    cJSON_AddNumberToObject(j, "w1", s->w1);
    cJSON_AddNumberToObject(j, "t0", s->t0);
    cJSON_AddNumberToObject(j, "t1", s->t1);
    cJSON_AddNumberToObject(j, "rate", s->rate);
    cJSON_AddNumberToObject(j, "decay_steps", s->decay_steps);
    cJSON_AddNumberToObject(j, "length", s->length);
    cJSON_AddBoolToObject(j, "staircase", s->staircase);
    cJSON_AddBoolToObject(j, "by_epoch", o->schedule_by_epoch);
    cJSON_AddItemToObject(j, "boundaries", doubles(s->boundaries, s->n_boundaries));
    cJSON_AddItemToObject(j, "values", doubles(s->values, s->n_boundaries + 1));
    return j;
}

static loom_status schedule_from_json(loom_model *m, const char *output, const cJSON *j) {
    loom_weight_schedule s;
    memset(&s, 0, sizeof s);
    s.kind = (loom_weight_schedule_kind)loom_json_whole(cJSON_GetObjectItemCaseSensitive(j, "kind"), 0, LOOM_WEIGHT_RAMPUP, -1);
    s.w0 = loom_json_num(j, "w0", 0), s.w1 = loom_json_num(j, "w1", 0), s.t0 = loom_json_num(j, "t0", 0), s.t1 = loom_json_num(j, "t1", 0);
    s.rate = loom_json_num(j, "rate", 0), s.decay_steps = loom_json_num(j, "decay_steps", 0), s.length = loom_json_num(j, "length", 0);
    s.staircase = loom_json_flag(j, "staircase", false);
    s.by_epoch = loom_json_flag(j, "by_epoch", false);
    int nb = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "boundaries"));
    if (nb > 16 || !doubles_from(cJSON_GetObjectItemCaseSensitive(j, "boundaries"), s.boundaries, nb) ||
        !doubles_from(cJSON_GetObjectItemCaseSensitive(j, "values"), s.values, nb + 1))
        return LOOM_ERR_DATA;
    s.n_boundaries = nb;
    return loom_set_loss_weight_schedule(m, output, &s);
}

cJSON *loom_compile_to_json(const loom_model *m, loom_error *err) {
    cJSON *root = cJSON_CreateObject();
    cJSON *loss = cJSON_AddObjectToObject(root, "loss");
    cJSON *weights = cJSON_AddObjectToObject(root, "loss_weights");
    for (int k = 0; k < m->n_outputs; k++) {
        const loom_output *o = &m->outputs[k];
        cJSON_AddNumberToObject(weights, o->name, o->weight);
        if (o->loss.kind == LOSS_NONE) continue;
        if (o->loss.kind == LOSS_CUSTOM) {
            cJSON_Delete(root);
            loom_set_error(err, LOOM_ERR_STATE,
                           "output %s uses a user C loss, which a file cannot hold; save the weights with a built-in loss or "
                           "rebuild the model in code and use loom_load_weights",
                           o->name);
            return NULL;
        }
        cJSON *lj = cJSON_AddObjectToObject(loss, o->name);
        cJSON_AddStringToObject(lj, "name", o->loss.name);
        if (o->loss.from_logits) cJSON_AddBoolToObject(lj, "from_logits", true);
        if (o->loss.label_smoothing != 0) cJSON_AddNumberToObject(lj, "label_smoothing", o->loss.label_smoothing);
        if (o->loss.kind == LOSS_HUBER) cJSON_AddNumberToObject(lj, "delta", o->loss.delta);
    }
    cJSON *metrics = cJSON_AddArrayToObject(root, "metrics");
    for (int i = 0; i < m->n_metrics; i++) {
        cJSON *mj = cJSON_CreateObject();
        cJSON_AddStringToObject(mj, "output", m->outputs[m->metrics[i].output].name);
        cJSON_AddStringToObject(mj, "name", m->metric_names[i]);
        if (m->metrics[i].weighted) cJSON_AddBoolToObject(mj, "weighted", true);
        cJSON_AddItemToArray(metrics, mj);
    }
    cJSON_AddItemToObject(root, "optimizer", optimizer_json(&m->opt));
    if (m->balance) cJSON_AddItemToObject(root, "balance", balance_json(m));
    cJSON *scheds = cJSON_AddObjectToObject(root, "loss_weight_schedules");
    for (int k = 0; k < m->n_outputs; k++)
        if (m->outputs[k].has_schedule) cJSON_AddItemToObject(scheds, m->outputs[k].name, schedule_json(&m->outputs[k]));
    cJSON *p = cJSON_AddObjectToObject(root, "progress");
    cJSON_AddNumberToObject(p, "iterations", (double)m->iterations);
    char rng[32];
    snprintf(rng, sizeof rng, "%llu", (unsigned long long)m->rng_step);
    cJSON_AddStringToObject(p, "rng_step", rng);
    cJSON_AddNumberToObject(p, "epochs_done", m->epochs_done);
    if (m->lr_overridden) cJSON_AddNumberToObject(p, "learning_rate_override", m->lr_override);
    return root;
}

loom_status loom_compile_from_json(loom_model *m, const cJSON *root, const char *what, loom_error *err) {
    const cJSON *loss = cJSON_GetObjectItemCaseSensitive(root, "loss");
    const cJSON *weights = cJSON_GetObjectItemCaseSensitive(root, "loss_weights");
    const cJSON *metrics = cJSON_GetObjectItemCaseSensitive(root, "metrics");
    const cJSON *progress = cJSON_GetObjectItemCaseSensitive(root, "progress");
    int nm = cJSON_GetArraySize(metrics);
    if (!cJSON_IsObject(loss) || (weights && !cJSON_IsObject(weights)) || (metrics && !cJSON_IsArray(metrics)) || nm > 1024)
        return loom_set_error(err, LOOM_ERR_DATA, "%s: the compile settings are malformed", what);
    loom_loss losses[LOOM_MAX_OUTPUTS];
    const char *loss_names[LOOM_MAX_OUTPUTS];
    float w[LOOM_MAX_OUTPUTS];
    const char *w_names[LOOM_MAX_OUTPUTS];
    int nl = 0, nw = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, loss) {
        if (nl >= LOOM_MAX_OUTPUTS || !cJSON_IsObject(it) || !loom_json_str(it, "name"))
            return loom_set_error(err, LOOM_ERR_DATA, "%s: the loss of output %.64s is malformed", what, it->string ? it->string : "?");
        losses[nl] = (loom_loss){.name = loom_json_str(it, "name"), .from_logits = loom_json_flag(it, "from_logits", false),
                                 .label_smoothing = loom_json_float(it, "label_smoothing", 0), .delta = loom_json_float(it, "delta", 0)};
        loss_names[nl++] = it->string;
    }
    cJSON_ArrayForEach(it, weights) {
        if (nw >= LOOM_MAX_OUTPUTS || !cJSON_IsNumber(it))
            return loom_set_error(err, LOOM_ERR_DATA, "%s: a loss weight is malformed", what);
        w[nw] = loom_json_to_float(it);
        w_names[nw++] = it->string;
    }
    /* unweighted metrics first, then weighted_metrics, each in saved order (as compile keeps them) */
    loom_metric_spec *ms = calloc((size_t)(nm ? nm : 1), sizeof *ms);
    if (!ms) return loom_set_error(err, LOOM_ERR_MEMORY, "%s: out of memory", what);
    int n_plain = 0, n_weighted = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < nm; i++) {
            const cJSON *mj = cJSON_GetArrayItem(metrics, i);
            if (loom_json_flag(mj, "weighted", false) != (pass == 1)) continue;
            loom_metric_spec *e = &ms[n_plain + n_weighted];
            e->output = loom_json_str(mj, "output");
            e->name = loom_json_str(mj, "name");
            if (pass == 0) n_plain++;
            else n_weighted++;
        }
    loom_compile_config cfg = {.n_losses = nl, .losses = losses, .loss_outputs = loss_names, .n_loss_weights = nw,
                               .loss_weights = w, .loss_weight_outputs = w_names, .n_metrics = n_plain, .metrics = ms,
                               .n_weighted_metrics = n_weighted, .weighted_metrics = ms + n_plain};
    if (!optimizer_from_json(cJSON_GetObjectItemCaseSensitive(root, "optimizer"), &cfg.optimizer)) {
        free(ms);
        return loom_set_error(err, LOOM_ERR_DATA, "%s: the optimizer settings are malformed", what);
    }
    const cJSON *bal = cJSON_GetObjectItemCaseSensitive(root, "balance");
    if (bal && !balance_from_json(bal, &cfg.balance)) {
        free(ms);
        return loom_set_error(err, LOOM_ERR_DATA, "%s: the balancing settings are malformed", what);
    }
    loom_status s = loom_compile(m, &cfg);
    free(ms);
    if (s) return loom_set_error(err, LOOM_ERR_DATA, "%s: %s", what, m->err.msg);
    if (bal && m->balance && !balance_state_from_json(m->balance, cJSON_GetObjectItemCaseSensitive(bal, "state")))
        return loom_set_error(err, LOOM_ERR_DATA, "%s: the balancing state is malformed", what);
    const cJSON *sc;
    cJSON_ArrayForEach(sc, cJSON_GetObjectItemCaseSensitive(root, "loss_weight_schedules")) {
        if (schedule_from_json(m, sc->string, sc))
            return loom_set_error(err, LOOM_ERR_DATA, "%s: the loss-weight schedule of %.64s is malformed", what,
                                  sc->string ? sc->string : "?");
    }
    const cJSON *iters_j = cJSON_GetObjectItemCaseSensitive(progress, "iterations");
    const cJSON *epochs_j = cJSON_GetObjectItemCaseSensitive(progress, "epochs_done");
    long iters = iters_j ? loom_json_whole(iters_j, 0, 9000000000000000L, -1) : 0;
    long epochs = epochs_j ? loom_json_whole(epochs_j, 0, 1000000000L, -1) : 0;
    if (iters < 0 || epochs < 0)
        return loom_set_error(err, LOOM_ERR_DATA, "%s: the training progress is malformed", what);
    m->iterations = iters;
    m->epochs_done = (int)epochs;
    const char *rng = loom_json_str(progress, "rng_step");
    m->rng_step = rng ? strtoull(rng, NULL, 10) : 0;
    const cJSON *lr = cJSON_GetObjectItemCaseSensitive(progress, "learning_rate_override");
    if (lr && (!cJSON_IsNumber(lr) || !(lr->valuedouble >= 0) || !isfinite(loom_json_to_float(lr))))
        return loom_set_error(err, LOOM_ERR_DATA, "%s: the learning-rate override is not a finite rate >= 0", what);
    if (cJSON_IsNumber(lr)) {
        m->lr_overridden = true;
        m->lr_override = loom_json_to_float(lr);
    }
    return LOOM_OK;
}
