/* log_keys.c — the names under which fit, evaluate and the history report values: loss, the
 * metrics, the per-output losses and, with balancing, the effective weights and the gradient
 * cosines; made again whenever the compile settings or the balancing method change. */
#include "core/model.h"

#include <stdlib.h>
#include <string.h>

static loom_status add_key(loom_logs *keys, const char *name) {
    char (*k)[LOOM_LOG_KEY_MAX] = realloc(keys->keys, (size_t)(keys->n + 1) * sizeof *k);
    if (!k) return LOOM_ERR_MEMORY;
    keys->keys = k;
    snprintf(keys->keys[keys->n], LOOM_LOG_KEY_MAX, "%s", name);
    keys->n++;
    return LOOM_OK;
}

static bool key_taken(const loom_logs *keys, const char *name) {
    for (int i = 0; i < keys->n; i++)
        if (strcmp(keys->keys[i], name) == 0) return true;
    return false;
}

static void metric_key(const loom_metric_impl *mt, int v, char *key) {
    char suffix[32];
    loom_metric_value_suffix(mt, v, suffix, sizeof suffix);
    snprintf(key, LOOM_LOG_KEY_MAX, "%.100s%.30s", mt->log_name, suffix);
}

static bool metric_keys_taken(const loom_logs *keys, const loom_metric_impl *mt) {
    for (int v = 0; v < mt->n_values; v++) {
        char key[LOOM_LOG_KEY_MAX];
        metric_key(mt, v, key);
        if (key_taken(keys, key)) return true;
    }
    return false;
}

loom_status loom_log_keys_build(loom_model *m, bool show_weights, int n_tasks, const int *task_output) {
    free(m->keys.keys);
    free(m->keys.values);
    memset(&m->keys, 0, sizeof m->keys);
    int with_loss = 0;
    for (int k = 0; k < m->n_outputs; k++) with_loss += m->outputs[k].loss.kind != LOSS_NONE;
    m->log_output_losses = with_loss > 1;
    if (add_key(&m->keys, "loss")) return LOOM_ERR_MEMORY;
    m->n_metric_keys = 0;
    for (int i = 0; i < m->n_metrics; i++) {
        loom_metric_impl *mt = &m->metrics[i];
        /* collisions get _1, _2 as in Keras; a vector metric's keys are <name>/<entry> */
        char base[LOOM_LOG_KEY_MAX];
        snprintf(base, sizeof base, "%s", mt->log_name);
        for (int d = 1; metric_keys_taken(&m->keys, mt); d++)
            snprintf(mt->log_name, sizeof mt->log_name, "%.100s_%d", base, d);
        for (int v = 0; v < mt->n_values; v++) {
            char key[LOOM_LOG_KEY_MAX];
            metric_key(mt, v, key);
            if (add_key(&m->keys, key)) return LOOM_ERR_MEMORY;
        }
        m->n_metric_keys += mt->n_values;
    }
    if (m->log_output_losses)
        for (int k = 0; k < m->n_outputs; k++) {
            if (m->outputs[k].loss.kind == LOSS_NONE) continue;
            char key[LOOM_LOG_KEY_MAX];
            snprintf(key, sizeof key, "%s_loss", m->outputs[k].name);
            if (add_key(&m->keys, key)) return LOOM_ERR_MEMORY;
        }
    /* with balancing or weight schedules: the effective weight of every loss, then diagnostics */
    m->key_weights = m->key_diag = -1;
    if (show_weights) {
        m->key_weights = m->keys.n;
        for (int k = 0; k < m->n_outputs; k++) {
            if (m->outputs[k].loss.kind == LOSS_NONE) continue;
            char key[LOOM_LOG_KEY_MAX];
            snprintf(key, sizeof key, "%s_weight", m->outputs[k].name);
            if (add_key(&m->keys, key)) return LOOM_ERR_MEMORY;
        }
    }
    if (n_tasks > 0) {
        m->key_diag = m->keys.n;
        for (int i = 0; i < n_tasks; i++)
            for (int j = i + 1; j < n_tasks; j++) {
                char key[LOOM_LOG_KEY_MAX];
                snprintf(key, sizeof key, "grad_cos/%.60s~%.60s", m->outputs[task_output[i]].name,
                         m->outputs[task_output[j]].name);
                if (add_key(&m->keys, key)) return LOOM_ERR_MEMORY;
            }
    }
    /* An output named "val" or "val_<x>" makes keys that validation's copies use ("val_loss"):
     * the history would hold one key twice and EarlyStopping on val_loss would read a training
     * loss. Refused rather than renamed, so that every key stays what the user can predict. */
    for (int i = 0; i < m->keys.n; i++)
        for (int j = 0; j < m->keys.n; j++) {
            const char *a = m->keys.keys[i], *b = m->keys.keys[j];
            if ((i < j && strcmp(a, b) == 0) || (strncmp(a, "val_", 4) == 0 && strcmp(a + 4, b) == 0))
                return loom_set_error(&m->err, LOOM_ERR_NAME,
                                      "compile: the log key \"%s\" %s \"%s\"; rename the output that makes it "
                                      "(output names \"val\" and \"val_...\" collide with validation keys)",
                                      a, i < j && strcmp(a, b) == 0 ? "appears twice, as does" : "is also the validation key of", b);
        }
    m->keys.values = calloc((size_t)m->keys.n, sizeof *m->keys.values);
    free(m->key_ptrs);
    m->key_ptrs = malloc((size_t)m->keys.n * sizeof *m->key_ptrs);
    free(m->call_run);
    m->call_run = calloc((size_t)m->keys.n, sizeof *m->call_run);
    if (!m->keys.values || !m->key_ptrs || !m->call_run) return LOOM_ERR_MEMORY;
    for (int i = 0; i < m->keys.n; i++) m->key_ptrs[i] = m->keys.keys[i];
    return LOOM_OK;
}

int loom_eval_key_count(const loom_model *m) {
    if (m->key_weights >= 0) return m->key_weights;
    if (m->key_diag >= 0) return m->key_diag;
    return m->keys.n;
}
