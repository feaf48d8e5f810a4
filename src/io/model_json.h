/* model_json.h — the JSON parts of a model file (internal). */
#ifndef LOOM_MODEL_JSON_H
#define LOOM_MODEL_JSON_H

#include "core/model.h"

#include <cjson/cJSON.h>

/* Architecture in Keras's Model.to_json() layout (class_name "Functional"; config with layers,
 * inbound_nodes, input_layers, output_layers), plus loom's keys: "loom_seed" (graph seed),
 * "loom_node_order" (execution order, so a reloaded model runs its nodes in the same order) and
 * per layer "loom_weights" (names and shapes, checked on load). NULL with err set if a layer
 * cannot be described. */
cJSON *loom_arch_to_json(const loom_model *m, loom_error *err);
/* Rebuilds an uncompiled model from that JSON (Keras-written JSON without loom's keys works for
 * the layer classes loom has). weights_only: custom (user C) layers become stand-ins that only
 * hold their weight shapes (for loom_load_weights); otherwise they are refused. */
loom_model *loom_arch_from_json(const cJSON *root, const char *what, bool weights_only, loom_error *err);
/* The same, refusing (before allocating them) more than max_params parameters: a file's weight
 * section bounds what its architecture may declare. */
loom_model *loom_arch_from_json_limited(const cJSON *root, const char *what, bool weights_only, size_t max_params,
                                        loom_error *err);

/* One layer's Keras config object (name, trainable, dtype and the class's own fields), for any
 * class loom can save; NULL with err set otherwise. Wrappers (TimeDistributed) use it for the
 * layer they hold. */
cJSON *loom_layer_config_json(const loom_layer *L, loom_error *err);
/* A layer of class `cls` from its config object (NULL with err set, naming `what`). */
loom_layer *loom_layer_from_config_json(loom_graph *g, const char *cls, const char *name, const cJSON *c,
                                        const char *what, bool weights_only, loom_error *err);

/* Compile settings (losses, loss weights, metrics, optimizer with schedule) and training progress
 * (iterations, epochs, dropout stream position, learning-rate override). */
cJSON *loom_compile_to_json(const loom_model *m, loom_error *err);
loom_status loom_compile_from_json(loom_model *m, const cJSON *root, const char *what, loom_error *err);

/* History: {"keys": [...], "values": [[epoch 0 values], ...]} (NaN as null). */
cJSON *loom_history_to_json(const loom_history *h);
loom_history *loom_history_from_json(const cJSON *root, const char *what, loom_error *err);

uint32_t loom_crc32(uint32_t crc, const void *data, size_t n);

/* A whole file into memory (model_file.c): malloc'd, one spare byte past the end; size-limited. */
loom_status loom_read_file(const char *path, unsigned char **out, size_t *size, loom_error *err);
/* loom_load_weights for a .loom file (model_file.c); model_import.c dispatches by content. */
loom_status loom_load_weights_loom(loom_model *m, const char *path);

/* Reading JSON values defensively (model_json.c): a field of an object, or the fallback when it
 * is absent or of another type; loom_json_whole gives `bad` unless the number is a whole number in
 * [lo, hi] (casting an out-of-range double is undefined behaviour). */
double loom_json_num(const cJSON *obj, const char *key, double fallback);
/* as a float: a number past the float range is +-infinity (a plain cast would be undefined) */
float loom_json_float(const cJSON *obj, const char *key, float fallback);
float loom_json_to_float(const cJSON *v); /* v must be a number */
bool loom_json_flag(const cJSON *obj, const char *key, bool fallback);
const char *loom_json_str(const cJSON *obj, const char *key);
long loom_json_whole(const cJSON *v, long lo, long hi, long bad);

#endif
