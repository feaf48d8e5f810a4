/* model_io.c — model files for the loom program (model_io.h).
 *
 * The Keras formats (.keras, Keras 2 .h5, tfjs model.json) come with loom_model_import /
 * loom_model_export (issue 15). Until they are in the library this file reads and writes .loom
 * only; each of the two marked lines is the single line to change when they land. */
#include "model_io.h"

#include <stdio.h>
#include <string.h>

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

loom_model *tool_model_load(const char *path, char *err, size_t errlen) {
    return loom_model_load(path, err, errlen); /* IMPORT: loom_model_import(path, err, errlen) */
}

bool tool_model_can_save(const char *path) {
    return ends_with(path, ".loom"); /* EXPORT: also .keras, .weights.h5, model.json, .onnx */
}

loom_status tool_model_save(loom_model *m, const char *path, char *err, size_t errlen) {
    if (!tool_model_can_save(path)) {
        snprintf(err, errlen, "%s: this build of loom writes only .loom model files (Keras and other formats come with loom_model_export)", path);
        return LOOM_ERR_ARGUMENT;
    }
    loom_status s = loom_model_save(m, path); /* EXPORT: loom_model_export(m, path) */
    if (s) snprintf(err, errlen, "%s", loom_model_error(m));
    return s;
}
