/* model_io.c — model files for the loom program (model_io.h): every format the library reads
 * (loom_model_import: .loom, Keras .keras / .h5, tfjs model.json) and writes (loom_model_export:
 * .loom, .keras, .weights.h5, tfjs .json, .onnx). */
#include "model_io.h"

#include <stdio.h>
#include <string.h>

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

loom_model *tool_model_load(const char *path, char *err, size_t errlen) {
    return loom_model_import(path, err, errlen);
}

bool tool_model_can_save(const char *path) {
    return ends_with(path, ".loom") || ends_with(path, ".keras") || ends_with(path, ".weights.h5") ||
           ends_with(path, ".json") || ends_with(path, ".onnx");
}

loom_status tool_model_save(loom_model *m, const char *path, char *err, size_t errlen) {
    if (!tool_model_can_save(path)) {
        snprintf(err, errlen, "%s: loom writes .loom, .keras, .weights.h5, tfjs .json and .onnx model files", path);
        return LOOM_ERR_ARGUMENT;
    }
    loom_status s = loom_model_export(m, path);
    if (s) snprintf(err, errlen, "%s", loom_model_error(m));
    return s;
}
