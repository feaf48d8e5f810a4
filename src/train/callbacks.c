/* callbacks.c — C hooks and the Keras callbacks EarlyStopping, ReduceLROnPlateau,
 * TerminateOnNaN, ModelCheckpoint and CSVLogger, with Keras 3's rules for improvement, patience
 * and cooldown. */
#include "core/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum { CB_HOOK, CB_EARLY_STOPPING, CB_REDUCE_LR, CB_TERMINATE_ON_NAN, CB_CHECKPOINT, CB_CSV_LOGGER } cb_kind;

struct loom_callback {
    cb_kind kind;
    loom_hook on_batch, on_epoch;
    void *user;
    char monitor[LOOM_LOG_KEY_MAX];
    bool maximize;
    float min_delta;
    int patience;
    bool restore_best;
    float factor, min_lr;
    int cooldown;
    char *path;              /* checkpoint, CSV logger */
    char separator;          /* CSV logger */
    bool append;             /* CSV logger: add to an existing file */
    FILE *csv;               /* CSV logger: open during one fit */
    bool save_best_only;
    long save_every_steps;
    /* state of one fit */
    int wait, cooldown_counter, stopped_epoch;
    float best;
    float *best_weights;
};

static loom_callback *cb_new(cb_kind kind) {
    loom_callback *cb = calloc(1, sizeof *cb);
    if (cb) {
        cb->kind = kind;
        cb->stopped_epoch = -1;
    }
    return cb;
}

/* Keras "auto": accuracies and AUCs are maximised, everything else minimised. */
static bool auto_maximize(const char *monitor, loom_monitor_mode mode) {
    if (mode == LOOM_MODE_MAX) return true;
    if (mode == LOOM_MODE_MIN) return false;
    return strstr(monitor, "acc") != NULL || strstr(monitor, "auc") != NULL;
}

loom_callback *loom_hook_callback(loom_hook on_batch, loom_hook on_epoch, void *user) {
    loom_callback *cb = cb_new(CB_HOOK);
    if (!cb) return NULL;
    cb->on_batch = on_batch;
    cb->on_epoch = on_epoch;
    cb->user = user;
    return cb;
}

/* Keras raises on an unknown mode; an out-of-range enum value here is the same mistake. */
static bool known_mode(loom_monitor_mode mode) { return mode == LOOM_MODE_AUTO || mode == LOOM_MODE_MIN || mode == LOOM_MODE_MAX; }

loom_callback *loom_early_stopping(const char *monitor, float min_delta, int patience,
                                   loom_monitor_mode mode, int restore_best_weights) {
    if (patience < 0 || !isfinite(min_delta) || !known_mode(mode)) return NULL;
    loom_callback *cb = cb_new(CB_EARLY_STOPPING);
    if (!cb) return NULL;
    snprintf(cb->monitor, sizeof cb->monitor, "%s", monitor ? monitor : "val_loss");
    cb->maximize = auto_maximize(cb->monitor, mode);
    cb->min_delta = fabsf(min_delta);
    cb->patience = patience;
    cb->restore_best = restore_best_weights != 0;
    return cb;
}

loom_callback *loom_reduce_lr_on_plateau(const char *monitor, float factor, int patience,
                                         loom_monitor_mode mode, float min_delta, int cooldown,
                                         float min_lr) {
    /* Keras refuses factor >= 1 ("does not support a factor >= 1.0"). */
    if (!(factor > 0 && factor < 1) || patience < 0 || cooldown < 0 || !(min_lr >= 0) || !isfinite(min_lr) ||
        !isfinite(min_delta) || !known_mode(mode))
        return NULL;
    loom_callback *cb = cb_new(CB_REDUCE_LR);
    if (!cb) return NULL;
    snprintf(cb->monitor, sizeof cb->monitor, "%s", monitor ? monitor : "val_loss");
    cb->maximize = auto_maximize(cb->monitor, mode);
    cb->factor = factor;
    cb->patience = patience;
    cb->min_delta = fabsf(min_delta);
    cb->cooldown = cooldown;
    cb->min_lr = min_lr;
    return cb;
}

loom_callback *loom_terminate_on_nan(void) { return cb_new(CB_TERMINATE_ON_NAN); }

loom_callback *loom_model_checkpoint(const char *path, const char *monitor, loom_monitor_mode mode,
                                     int save_best_only, long save_every_steps) {
    if (!path || !path[0] || save_every_steps < 0 || !known_mode(mode)) return NULL;
    loom_callback *cb = cb_new(CB_CHECKPOINT);
    if (!cb) return NULL;
    cb->path = strdup(path);
    if (!cb->path) {
        free(cb);
        return NULL;
    }
    snprintf(cb->monitor, sizeof cb->monitor, "%s", monitor ? monitor : "val_loss");
    cb->maximize = auto_maximize(cb->monitor, mode);
    cb->save_best_only = save_best_only != 0;
    cb->save_every_steps = save_every_steps;
    return cb;
}

loom_callback *loom_csv_logger(const char *path, char separator, int append) {
    /* a separator that could be part of a number or a line would make the file unreadable */
    if (!path || !path[0] || (separator && strchr("\n\r\"0123456789.+-einaf", separator))) return NULL;
    loom_callback *cb = cb_new(CB_CSV_LOGGER);
    if (!cb) return NULL;
    cb->path = strdup(path);
    if (!cb->path) {
        free(cb);
        return NULL;
    }
    cb->separator = separator ? separator : ',';
    cb->append = append != 0;
    return cb;
}

static int key_order(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Keras's CSVLogger: at the first epoch the file is opened (appended to with `append`, else
 * truncated) and, unless appending to a file that already has lines, the header "epoch" and the
 * log keys in sorted order is written; then one row per epoch (epoch counts from 0, as in Keras),
 * flushed so that a reader sees it at once. */
static loom_status csv_logger_epoch(loom_model *m, loom_callback *cb, int epoch, const loom_logs *logs) {
    if (m->no_files) return LOOM_OK; /* a distributed fit: rank 0 writes (the logs are the same on every rank) */
    int n = loom_logs_count(logs);
    const char **keys = malloc((size_t)(n ? n : 1) * sizeof *keys);
    if (!keys) return loom_set_error(&m->err, LOOM_ERR_MEMORY, "CSV logger: out of memory");
    for (int i = 0; i < n; i++) keys[i] = loom_logs_key(logs, i);
    qsort(keys, (size_t)n, sizeof *keys, key_order);
    bool header = false;
    if (!cb->csv) {
        bool has_lines = false;
        if (cb->append) {
            FILE *old = fopen(cb->path, "r");
            if (old) {
                has_lines = fgetc(old) != EOF;
                fclose(old);
            }
        }
        cb->csv = fopen(cb->path, cb->append ? "a" : "w");
        if (!cb->csv) {
            free(keys);
            cb->stopped_epoch = epoch;
            m->stop_training = true;
            return loom_set_error(&m->err, LOOM_ERR_IO, "CSV logger: cannot open %s for writing", cb->path);
        }
        header = !has_lines;
    }
    if (header) {
        fputs("epoch", cb->csv);
        for (int i = 0; i < n; i++) fprintf(cb->csv, "%c%s", cb->separator, keys[i]);
        fputc('\n', cb->csv);
    }
    fprintf(cb->csv, "%d", epoch);
    for (int i = 0; i < n; i++) {
        float v = loom_logs_get(logs, keys[i]);
        if (isnan(v)) fprintf(cb->csv, "%cnan", cb->separator);
        else if (isinf(v)) fprintf(cb->csv, "%c%sinf", cb->separator, v < 0 ? "-" : "");
        else fprintf(cb->csv, "%c%.9g", cb->separator, (double)v);
    }
    fputc('\n', cb->csv);
    free(keys);
    if (fflush(cb->csv) != 0 || ferror(cb->csv)) {
        cb->stopped_epoch = epoch;
        m->stop_training = true;
        return loom_set_error(&m->err, LOOM_ERR_IO, "CSV logger: writing %s failed (disk full?)", cb->path);
    }
    return LOOM_OK;
}

static void csv_logger_close(loom_callback *cb) {
    if (cb->csv) fclose(cb->csv);
    cb->csv = NULL;
}

/* Saves to the callback's path with "{epoch}" replaced by the 1-based epoch. */
static loom_status checkpoint_save(loom_model *m, loom_callback *cb, int epoch) {
    if (m->no_files) return LOOM_OK; /* a distributed fit: rank 0 writes */
    char path[4096];
    const char *mark = strstr(cb->path, "{epoch}");
    if (mark)
        snprintf(path, sizeof path, "%.*s%d%s", (int)(mark - cb->path), cb->path, epoch + 1, mark + 7);
    else
        snprintf(path, sizeof path, "%s", cb->path);
    loom_status s = loom_model_save(m, path);
    if (s) {
        cb->stopped_epoch = epoch;
        m->stop_training = true;
    }
    return s;
}

void loom_callback_free(loom_callback *cb) {
    if (!cb) return;
    if (cb->kind == CB_CSV_LOGGER) csv_logger_close(cb);
    free(cb->path);
    free(cb->best_weights);
    free(cb);
}

int loom_callback_stopped_epoch(const loom_callback *cb) { return cb ? cb->stopped_epoch : -1; }

void loom_callbacks_begin(loom_model *m, loom_callback *const *cbs, int n) {
    (void)m;
    for (int i = 0; i < n; i++) {
        loom_callback *cb = cbs[i];
        if (!cb) continue;
        cb->wait = 0;
        cb->cooldown_counter = 0;
        cb->stopped_epoch = -1;
        cb->best = cb->maximize ? -INFINITY : INFINITY;
        free(cb->best_weights);
        cb->best_weights = NULL;
        if (cb->kind == CB_CSV_LOGGER) csv_logger_close(cb);
    }
}

static loom_status hook_result(loom_model *m, loom_callback *cb, int rc, int epoch, const char *where) {
    if (rc == 0) return LOOM_OK;
    cb->stopped_epoch = epoch;
    m->stop_training = true;
    if (rc == 1) return LOOM_OK;
    return loom_set_error(&m->err, LOOM_ERR_CALLBACK, "the %s hook returned %d at epoch %d: training stopped",
                          where, rc, epoch + 1);
}

loom_status loom_callbacks_batch_end(loom_model *m, loom_callback *const *cbs, int n, int epoch,
                                     int batch, const loom_logs *logs) {
    for (int i = 0; i < n; i++) {
        loom_callback *cb = cbs[i];
        if (cb && cb->kind == CB_CHECKPOINT && cb->save_every_steps > 0 && m->iterations % cb->save_every_steps == 0) {
            loom_status s = checkpoint_save(m, cb, epoch);
            if (s) return s;
        }
        if (!cb || cb->kind != CB_HOOK || !cb->on_batch) continue;
        loom_status s = hook_result(m, cb, cb->on_batch(m, epoch, batch, logs, cb->user), epoch, "batch");
        if (s) return s;
    }
    return LOOM_OK;
}

static bool improved(const loom_callback *cb, float current, float reference) {
    return cb->maximize ? current - cb->min_delta > reference : current + cb->min_delta < reference;
}

static void early_stopping_epoch(loom_model *m, loom_callback *cb, int epoch, float current) {
    if (cb->restore_best && !cb->best_weights) {
        /* Keras: when no epoch improved yet, the first weights are the best. */
        cb->best_weights = malloc((m->n_params ? m->n_params : 1) * sizeof(float));
        if (cb->best_weights) memcpy(cb->best_weights, m->params, m->n_params * sizeof(float));
    }
    cb->wait++;
    if (improved(cb, current, cb->best)) {
        cb->best = current;
        if (cb->restore_best && cb->best_weights)
            memcpy(cb->best_weights, m->params, m->n_params * sizeof(float));
        cb->wait = 0;
        return;
    }
    if (cb->wait >= cb->patience && epoch > 0) {
        cb->stopped_epoch = epoch;
        m->stop_training = true;
        if (cb->restore_best && cb->best_weights) {
            if (m->dense_params)
                memcpy(m->params, cb->best_weights, m->n_params * sizeof(float));
            else /* only the model's own weights: another model's may lie between them */
                for (int t = 0; t < m->n_tensors; t++)
                    memcpy(m->params + m->t_offset[t], cb->best_weights + m->t_offset[t], m->t_size[t] * sizeof(float));
        }
    }
}

static void reduce_lr_epoch(loom_model *m, loom_callback *cb, float current) {
    if (cb->cooldown_counter > 0) {
        cb->cooldown_counter--;
        cb->wait = 0;
    }
    bool better = cb->maximize ? current > cb->best + cb->min_delta : current < cb->best - cb->min_delta;
    if (better) {
        cb->best = current;
        cb->wait = 0;
    } else if (cb->cooldown_counter <= 0) {
        cb->wait++;
        if (cb->wait >= cb->patience) {
            float lr = loom_current_lr(m);
            if (lr > cb->min_lr) {
                float next = lr * cb->factor;
                loom_set_learning_rate(m, next > cb->min_lr ? next : cb->min_lr);
                cb->cooldown_counter = cb->cooldown;
                cb->wait = 0;
            }
        }
    }
}

loom_status loom_callbacks_epoch_end(loom_model *m, loom_callback *const *cbs, int n, int epoch,
                                     const loom_logs *logs) {
    for (int i = 0; i < n; i++) {
        loom_callback *cb = cbs[i];
        if (!cb) continue;
        if (cb->kind == CB_HOOK) {
            if (!cb->on_epoch) continue;
            loom_status s = hook_result(m, cb, cb->on_epoch(m, epoch, -1, logs, cb->user), epoch, "epoch");
            if (s) return s;
            continue;
        }
        if (cb->kind == CB_TERMINATE_ON_NAN) continue;
        if (cb->kind == CB_CSV_LOGGER) {
            loom_status s = csv_logger_epoch(m, cb, epoch, logs);
            if (s) return s;
            continue;
        }
        if (cb->kind == CB_CHECKPOINT) {
            if (cb->save_every_steps > 0) continue;
            if (cb->save_best_only) {
                float current = loom_logs_get(logs, cb->monitor);
                if (isnan(current) || !improved(cb, current, cb->best)) continue;
                cb->best = current;
            }
            loom_status s = checkpoint_save(m, cb, epoch);
            if (s) return s;
            continue;
        }
        /* A monitored key that is absent: Keras warns and goes on; loom goes on silently. */
        float current = loom_logs_get(logs, cb->monitor);
        if (isnan(current)) continue;
        if (cb->kind == CB_EARLY_STOPPING) early_stopping_epoch(m, cb, epoch, current);
        else reduce_lr_epoch(m, cb, current);
    }
    return LOOM_OK;
}

void loom_callbacks_end(loom_model *m, loom_callback *const *cbs, int n) {
    (void)m;
    for (int i = 0; i < n; i++)
        if (cbs[i]) {
            free(cbs[i]->best_weights);
            cbs[i]->best_weights = NULL;
            if (cbs[i]->kind == CB_CSV_LOGGER) csv_logger_close(cbs[i]);
        }
}

bool loom_callbacks_want_nan_check(loom_callback *const *cbs, int n) {
    for (int i = 0; i < n; i++)
        if (cbs[i] && cbs[i]->kind == CB_TERMINATE_ON_NAN) return true;
    return false;
}

void loom_callbacks_note_nan_stop(loom_callback *const *cbs, int n, int epoch) {
    for (int i = 0; i < n; i++)
        if (cbs[i] && cbs[i]->kind == CB_TERMINATE_ON_NAN) cbs[i]->stopped_epoch = epoch;
}
