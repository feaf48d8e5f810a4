/* history.c — per-epoch logs (keras.callbacks.History) and the logs handed to callbacks. */
#include "core/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct loom_history {
    int n_keys, epochs, cap;
    char (*keys)[LOOM_LOG_KEY_MAX];
    float **cols; /* one array per key, `cap` long, so a key's values are contiguous */
};

loom_history *loom_history_create(int n_keys, char (*keys)[LOOM_LOG_KEY_MAX], int n_val) {
    loom_history *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->n_keys = n_keys + n_val;
    h->keys = calloc((size_t)(h->n_keys ? h->n_keys : 1), sizeof *h->keys);
    h->cols = calloc((size_t)(h->n_keys ? h->n_keys : 1), sizeof *h->cols);
    if (!h->keys || !h->cols) {
        loom_history_free(h);
        return NULL;
    }
    for (int i = 0; i < n_keys; i++) snprintf(h->keys[i], LOOM_LOG_KEY_MAX, "%s", keys[i]);
    for (int i = 0; i < n_val; i++) snprintf(h->keys[n_keys + i], LOOM_LOG_KEY_MAX, "val_%.*s", LOOM_LOG_KEY_MAX - 5, keys[i]);
    return h;
}

/* Room for one more epoch in every column. */
static int grow(loom_history *h) {
    if (h->epochs < h->cap) return 0;
    int cap = h->cap ? 2 * h->cap : 16;
    for (int i = 0; i < h->n_keys; i++) {
        float *c = realloc(h->cols[i], (size_t)cap * sizeof *c);
        if (!c) return -1;
        h->cols[i] = c;
    }
    h->cap = cap;
    return 0;
}

loom_status loom_history_append(loom_history *h, const float *values) {
    if (grow(h)) return LOOM_ERR_MEMORY;
    for (int i = 0; i < h->n_keys; i++) h->cols[i][h->epochs] = values[i];
    h->epochs++;
    return LOOM_OK;
}

static int add_key(loom_history *h, const char *key) {
    char (*keys)[LOOM_LOG_KEY_MAX] = realloc(h->keys, (size_t)(h->n_keys + 1) * sizeof *keys);
    if (!keys) return -1;
    h->keys = keys;
    float **cols = realloc(h->cols, (size_t)(h->n_keys + 1) * sizeof *cols);
    if (!cols) return -1;
    h->cols = cols;
    float *col = malloc((size_t)(h->cap ? h->cap : 1) * sizeof *col);
    if (!col) return -1;
    for (int e = 0; e < h->epochs; e++) col[e] = NAN;
    snprintf(h->keys[h->n_keys], LOOM_LOG_KEY_MAX, "%s", key);
    h->cols[h->n_keys] = col;
    return h->n_keys++;
}

loom_status loom_history_append_keyed(loom_history *h, int n, const char *const *keys, const float *values) {
    int idx[256];
    if (n > 256) return LOOM_ERR_ARGUMENT;
    for (int i = 0; i < n; i++) {
        idx[i] = -1;
        for (int j = 0; j < h->n_keys && idx[i] < 0; j++)
            if (strcmp(h->keys[j], keys[i]) == 0) idx[i] = j;
        if (idx[i] < 0 && (idx[i] = add_key(h, keys[i])) < 0) return LOOM_ERR_MEMORY;
    }
    if (grow(h)) return LOOM_ERR_MEMORY;
    for (int j = 0; j < h->n_keys; j++) h->cols[j][h->epochs] = NAN;
    for (int i = 0; i < n; i++) h->cols[idx[i]][h->epochs] = values[i];
    h->epochs++;
    return LOOM_OK;
}

void loom_history_free(loom_history *h) {
    if (!h) return;
    if (h->cols)
        for (int i = 0; i < h->n_keys; i++) free(h->cols[i]);
    free(h->cols);
    free(h->keys);
    free(h);
}

int loom_history_epochs(const loom_history *h) { return h ? h->epochs : 0; }
int loom_history_num_keys(const loom_history *h) { return h ? h->n_keys : 0; }
const char *loom_history_key(const loom_history *h, int i) {
    return (h && i >= 0 && i < h->n_keys) ? h->keys[i] : NULL;
}

static int key_index(const loom_history *h, const char *key) {
    if (!h || !key) return -1;
    for (int i = 0; i < h->n_keys; i++)
        if (strcmp(h->keys[i], key) == 0) return i;
    return -1;
}

float loom_history_get(const loom_history *h, const char *key, int epoch) {
    int i = key_index(h, key);
    if (i < 0) return NAN;
    if (epoch < 0) epoch += h->epochs;
    if (epoch < 0 || epoch >= h->epochs) return NAN;
    return h->cols[i][epoch];
}

const float *loom_history_values(const loom_history *h, const char *key) {
    int i = key_index(h, key);
    return (i < 0 || h->epochs == 0) ? NULL : h->cols[i];
}

int loom_logs_count(const loom_logs *l) { return l ? l->n : 0; }
const char *loom_logs_key(const loom_logs *l, int i) { return (l && i >= 0 && i < l->n) ? l->keys[i] : NULL; }
float loom_logs_value(const loom_logs *l, int i) { return (l && i >= 0 && i < l->n) ? l->values[i] : NAN; }
float loom_logs_get(const loom_logs *l, const char *key) {
    if (!l || !key) return NAN;
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->keys[i], key) == 0) return l->values[i];
    return NAN;
}
