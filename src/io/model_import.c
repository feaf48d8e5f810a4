/* model_import.c — the one place that picks a model file's format: loom_model_import and
 * loom_load_weights from the content (zip, HDF5, JSON or loom's magic), loom_model_export from the
 * extension. */
#include "core/model.h"
#include "io/keras_h5.h"
#include "io/keras_io.h"
#include "io/keras_zip.h"
#include "io/model_json.h"
#include "io/tfjs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char LOOM_MAGIC[4] = {0x89, 'L', 'O', 'O'};

/* A JSON object with a "modelTopology" key: TensorFlow.js's model.json. */
static bool is_tfjs(const unsigned char *d, size_t n) {
    size_t i = 0;
    while (i < n && (d[i] == ' ' || d[i] == '\t' || d[i] == '\r' || d[i] == '\n')) i++;
    if (i >= n || d[i] != '{') return false;
    static const char KEY[] = "\"modelTopology\"";
    for (; i + sizeof KEY - 1 <= n; i++)
        if (memcmp(d + i, KEY, sizeof KEY - 1) == 0) return true;
    return false;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static loom_model *import_bytes(const void *data, size_t size, const char *what, const loom_import_options *opt,
                                bool from_file, char *errbuf, size_t errlen) {
    loom_error err = {0};
    int none_dim = opt && opt->none_dim > 0 && opt->none_dim <= (1 << 24) ? opt->none_dim : 0;
    loom_model *m = NULL;
    if (!what) what = "(memory)";
    if (!data) loom_set_error(&err, LOOM_ERR_ARGUMENT, "import: no data");
    else if (size >= 4 && memcmp(data, LOOM_MAGIC, 4) == 0) return loom_model_parse(data, size, what, errbuf, errlen);
    else if (opt && (opt->none_dim < 0 || opt->none_dim > (1 << 24)))
        loom_set_error(&err, LOOM_ERR_ARGUMENT, "import %s: none_dim %d is out of 0..%d", what, opt->none_dim, 1 << 24);
    else if (is_tfjs(data, size)) {
        /* a TensorFlow.js model.json: its shards lie beside the file (none from memory) */
        cJSON *j = cJSON_ParseWithLength(data, size);
        if (!j) loom_set_error(&err, LOOM_ERR_DATA, "%s: not valid JSON", what);
        else m = loom_tfjs_import(j, from_file ? what : NULL, none_dim, what, &err);
        cJSON_Delete(j);
    } else
        m = loom_keras_import(data, size, what, none_dim, &err);
    if (!m && errbuf && errlen) snprintf(errbuf, errlen, "%s", err.msg);
    return m;
}

loom_model *loom_model_import_memory(const void *data, size_t size, const char *what, char *errbuf, size_t errlen) {
    return import_bytes(data, size, what, NULL, false, errbuf, errlen);
}

loom_model *loom_model_import(const char *path, char *errbuf, size_t errlen) {
    return loom_model_import_with(path, NULL, errbuf, errlen);
}

loom_model *loom_model_import_with(const char *path, const loom_import_options *opt, char *errbuf, size_t errlen) {
    loom_error err = {0};
    unsigned char *data = NULL;
    size_t size = 0;
    if (!path) loom_set_error(&err, LOOM_ERR_ARGUMENT, "import: no path given");
    else if (!loom_read_file(path, &data, &size, &err)) {
        loom_model *m = import_bytes(data, size, path, opt, true, errbuf, errlen);
        free(data);
        return m;
    }
    if (errbuf && errlen) snprintf(errbuf, errlen, "%s", err.msg);
    return NULL;
}

loom_status loom_model_export(loom_model *m, const char *path) {
    if (!m) return LOOM_ERR_ARGUMENT;
    if (!path) return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "export: no path given");
    loom_error err = {0};
    loom_status s;
    if (ends_with(path, ".loom")) return loom_model_save(m, path);
    if (ends_with(path, ".onnx")) return loom_model_export_onnx(m, path);
    if (ends_with(path, ".weights.h5")) s = loom_keras_export(m, path, true, &err);
    else if (ends_with(path, ".keras")) s = loom_keras_export(m, path, false, &err);
    else if (ends_with(path, ".json")) s = loom_tfjs_export(m, path, &err);
    else
        s = loom_set_error(&err, LOOM_ERR_ARGUMENT,
                           "export %s: the extension names no format loom writes (.loom, .keras, .weights.h5, tfjs .json, .onnx)",
                           path);
    if (s) return loom_set_error(&m->err, s, "%s", err.msg);
    loom_clear_error(&m->err);
    return LOOM_OK;
}

loom_status loom_load_weights(loom_model *m, const char *path) {
    if (!m) return LOOM_ERR_ARGUMENT;
    if (!path) return loom_set_error(&m->err, LOOM_ERR_ARGUMENT, "load_weights: no path given");
    loom_error err = {0};
    unsigned char *data = NULL;
    size_t size = 0;
    if (loom_read_file(path, &data, &size, &err)) return loom_set_error(&m->err, err.code, "%s", err.msg);
    bool keras = loom_h5_signature(data, size);
    if (!keras) {
        free(data);
        return loom_load_weights_loom(m, path);
    }
    loom_status s = loom_keras_load_weights(m, data, size, path, &err);
    free(data);
    if (s) return loom_set_error(&m->err, s, "%s", err.msg);
    loom_clear_error(&m->err);
    return LOOM_OK;
}

/* The importer's note when there is one (what of a file's settings could not be taken over),
 * else compile's own (a dtype policy this CPU cannot make faster). */
const char *loom_model_compile_note(const loom_model *m) {
    if (!m) return "";
    return m->compile_note[0] ? m->compile_note : m->note;
}
