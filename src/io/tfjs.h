/* tfjs.h — the TensorFlow.js layers format in and out (tfjs.c; internal). */
#ifndef LOOM_TFJS_H
#define LOOM_TFJS_H

#include "core/model.h"

#include <cjson/cJSON.h>

/* TensorFlow.js layers format (tfjs.c): model.json (modelTopology, weightsManifest) and one .bin
 * shard beside it, named after it. */
loom_status loom_tfjs_export(loom_model *m, const char *path, loom_error *err);
/* A tfjs model.json (parsed) into a model; path: where it is (its shards are read beside it, plain
 * names only), NULL when it came from memory (then only a model without weights loads). */
loom_model *loom_tfjs_import(const cJSON *root, const char *path, int none_dim, const char *what, loom_error *err);
#endif
