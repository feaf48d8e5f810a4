/* keras_config.h — the config dialects of real Keras files, turned into the one layout
 * model_json.c reads (keras_config.c; internal).
 *
 * Accepted: Keras 3 (module / class_name / config / registered_name, DTypePolicy objects,
 * batch_shape, inbound_nodes as {"args": [...], "kwargs": {...}}) and Keras 2 / tf.keras
 * (batch_input_shape, nested-list inbound_nodes), Functional ("Model") and Sequential models, and
 * a Functional or Sequential model used as a layer of another (flattened into the graph; its
 * layers keep their names). Every layer's config is checked key by key: a key loom does not know,
 * or a known one whose value loom cannot honour (a constraint, an activity regularizer,
 * channels_first, a frozen layer, ...), is an error naming the layer, its class and the key.
 * Constraints are refused, not ignored: training would silently differ from Keras's. */
#ifndef LOOM_KERAS_CONFIG_H
#define LOOM_KERAS_CONFIG_H

#include "base/base.h"

#include <cjson/cJSON.h>

/* Keys the result adds to each layer entry, for the weight readers (keras_io.c):
 *   "loom_k3_path": the layer's group in a Keras 3 weights file ("layers/dense_1", nested:
 *                   "layers/functional/layers/dense"); Keras 3 names groups by class, not name;
 *   "loom_k2_group", "loom_k2_prefix": its group under model_weights/ in a Keras 2 file and the
 *                   prefix of its weight names there (a nested model keeps all its weights in
 *                   one group, named after the inner layers). */
#define LOOM_K3_PATH_KEY "loom_k3_path"
#define LOOM_K2_GROUP_KEY "loom_k2_group"
#define LOOM_K2_PREFIX_KEY "loom_k2_prefix"

/* none_dim: the size for unknown (None) per-sample input dimensions, 0 to refuse them.
 * keras_major: 2 or 3 (from the file's keras_version; decides hard_sigmoid's formula). Returns a
 * new {"class_name": "Functional", "config": {...}} tree, NULL with err set. */
cJSON *loom_keras_normalize(const cJSON *root, int keras_major, int none_dim, const char *what, loom_error *err);

/* The Keras 3 snake-case of a class name ("BatchNormalization" -> "batch_normalization",
 * "Conv2D" -> "conv2d"), as keras.src.utils.naming.to_snake_case. */
void loom_keras_snake_case(const char *cls, char *out, size_t n);

#endif
