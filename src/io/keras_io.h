/* keras_io.h — Keras model files in and out (keras_io.c; internal). The public entry points
 * (loom_model_import / loom_model_export / loom_load_weights) dispatch here from model_import.c. */
#ifndef LOOM_KERAS_IO_H
#define LOOM_KERAS_IO_H

#include "core/model.h"

/* A whole model from a Keras 3 .keras zip or a Keras 2 full-model .h5 (either, whatever the
 * name says), or from a bare Keras JSON config (weights then as initialised). none_dim: the size of
 * unknown (None) per-sample input dimensions, 0 to refuse them. NULL with err set. */
loom_model *loom_keras_import(const unsigned char *data, size_t size, const char *what, int none_dim,
                              loom_error *err);
/* Weights from a Keras 3 .weights.h5, a Keras 2 save_weights .h5 or a Keras 2 full-model .h5 into
 * m by layer name: all or nothing, every mismatch named. */
loom_status loom_keras_load_weights(loom_model *m, const unsigned char *data, size_t size, const char *what,
                                    loom_error *err);
/* .keras (weights_only false) or .weights.h5 (true), written atomically. */
loom_status loom_keras_export(loom_model *m, const char *path, bool weights_only, loom_error *err);

/* The Keras 3 config.json of m (Functional, build_config, compile_config when compiled); NULL with
 * err set. */
#include <cjson/cJSON.h>
cJSON *loom_keras3_config(loom_model *m, loom_error *err);
/* Writes bytes to path atomically (a temporary file renamed over it). */
loom_status loom_write_bytes(const char *path, const unsigned char *data, size_t n, loom_error *err);
/* Keras 2 training_config / Keras 3 compile_config into loom_compile (keras_io.c); what it cannot
 * take over goes into m->compile_note. */
void loom_keras_compile(loom_model *m, const cJSON *tc);

#endif
