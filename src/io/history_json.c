/* history_json.c — a model file's training history: {"keys": [...], "values": [[epoch 0 values],
 * ...]}, NaN written as null. */
#include "io/loaders.h"
#include "io/model_json.h"

#include <math.h>

cJSON *loom_history_to_json(const loom_history *h) {
    cJSON *root = cJSON_CreateObject();
    cJSON *keys = cJSON_AddArrayToObject(root, "keys");
    cJSON *rows = cJSON_AddArrayToObject(root, "values");
    int n_keys = loom_history_num_keys(h), epochs = loom_history_epochs(h);
    for (int i = 0; i < n_keys; i++) cJSON_AddItemToArray(keys, cJSON_CreateString(loom_history_key(h, i)));
    for (int e = 0; e < epochs; e++) {
        cJSON *row = cJSON_CreateArray();
        for (int i = 0; i < n_keys; i++) {
            float v = loom_history_values(h, loom_history_key(h, i))[e];
            cJSON_AddItemToArray(row, isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull());
        }
        cJSON_AddItemToArray(rows, row);
    }
    return root;
}

loom_history *loom_history_from_json(const cJSON *root, const char *what, loom_error *err) {
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(root, "keys");
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(root, "values");
    int nk = cJSON_GetArraySize(keys);
    if (!cJSON_IsArray(keys) || !cJSON_IsArray(rows) || nk > 256) {
        loom_set_error(err, LOOM_ERR_DATA, "%s: the history is malformed", what);
        return NULL;
    }
    const char *names[256];
    float values[256];
    for (int i = 0; i < nk; i++) {
        const cJSON *k = cJSON_GetArrayItem(keys, i);
        if (!cJSON_IsString(k)) {
            loom_set_error(err, LOOM_ERR_DATA, "%s: a history key is not a string", what);
            return NULL;
        }
        names[i] = k->valuestring;
    }
    loom_history *h = loom_history_create(0, NULL, 0);
    if (!h) return NULL;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != nk) {
            loom_set_error(err, LOOM_ERR_DATA, "%s: a history row has the wrong length", what);
            loom_history_free(h);
            return NULL;
        }
        for (int i = 0; i < nk; i++) {
            const cJSON *v = cJSON_GetArrayItem(row, i);
            values[i] = cJSON_IsNumber(v) ? loom_ld_f64_to_f32(v->valuedouble) : NAN;
        }
        if (loom_history_append_keyed(h, nk, names, values)) {
            loom_set_error(err, LOOM_ERR_MEMORY, "%s: out of memory", what);
            loom_history_free(h);
            return NULL;
        }
    }
    return h;
}
