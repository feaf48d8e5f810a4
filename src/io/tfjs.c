/* tfjs.c — the TensorFlow.js layers format in and out (keras_io.h). Out: model.json with modelTopology (the
 * Keras 2 form of the architecture, which tf.loadLayersModel reads: batch_input_shape, nested-list
 * inbound_nodes, initial states as extra inbound tensors) and weightsManifest (one group, one
 * shard), and the shard of float32 weights beside it, named after weight scopes as TensorFlow.js
 * makes them (<layer>/kernel, <bidirectional>/forward_<rnn>/kernel, <layer>/recurrent_kernel). */
#include "io/keras_config.h"
#include "io/keras_io.h"
#include "io/model_json.h"
#include "io/tfjs.h"
#include "layers/layers.h"
#include "layers/rnn.h"
#include "ops/activations.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A Keras 3 tensor reference {"class_name": "__keras_tensor__", ...} as Keras 2's [name, node, tensor, {}]. */
static cJSON *k2_ref(const cJSON *t) {
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(t, "config"), "keras_history");
    cJSON *r = cJSON_Duplicate(h, true);
    if (r) cJSON_AddItemToArray(r, cJSON_CreateObject());
    return r;
}

/* Activations: TensorFlow.js's hard_sigmoid is Keras 2's; Keras 3's has no tfjs name. */
static bool tfjs_activations(cJSON *cfg, const char *layer, loom_error *err, const char *path) {
    const char *keys[2] = {"activation", "recurrent_activation"};
    for (int i = 0; i < 2; i++) {
        cJSON *a = cJSON_GetObjectItemCaseSensitive(cfg, keys[i]);
        if (!cJSON_IsString(a)) continue;
        if (strcmp(a->valuestring, "hard_sigmoid_keras2") == 0) cJSON_SetValuestring(a, "hard_sigmoid");
        else if (strcmp(a->valuestring, "hard_sigmoid") == 0) {
            loom_set_error(err, LOOM_ERR_STATE, "%s: layer %s uses Keras 3's hard_sigmoid, which TensorFlow.js does not have", path, layer);
            return false;
        }
    }
    cJSON *inner = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cfg, "layer"), "config");
    return inner ? tfjs_activations(inner, layer, err, path) : true;
}

static cJSON *topology(loom_model *m, const char *path, loom_error *err) {
    cJSON *k3 = loom_keras3_config(m, err);
    if (!k3) return NULL;
    cJSON *config = cJSON_GetObjectItemCaseSensitive(k3, "config");
    cJSON *out = cJSON_CreateObject(), *oc = cJSON_CreateObject(), *layers = cJSON_CreateArray();
    cJSON_AddStringToObject(out, "class_name", "Model");
    cJSON_AddItemToObject(out, "config", oc);
    cJSON_AddStringToObject(oc, "name", "model");
    cJSON_AddItemToObject(oc, "layers", layers);
    bool ok = true;
    const cJSON *lj;
    cJSON_ArrayForEach(lj, cJSON_GetObjectItemCaseSensitive(config, "layers")) {
        const char *cls = loom_json_str(lj, "class_name"), *name = loom_json_str(lj, "name");
        cJSON *cfg = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(lj, "config"), true);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "class_name", cls ? cls : "");
        cJSON_AddStringToObject(e, "name", name ? name : "");
        cJSON_AddItemToObject(e, "config", cfg);
        cJSON_AddItemToArray(layers, e);
        if (cls && strcmp(cls, "InputLayer") == 0) {
            cJSON *bs = cJSON_DetachItemFromObjectCaseSensitive(cfg, "batch_shape");
            cJSON_AddItemToObject(cfg, "batch_input_shape", bs);
        }
        cJSON_DeleteItemFromObjectCaseSensitive(cfg, "backward_layer"); /* tfjs makes its own */
        if (!tfjs_activations(cfg, name ? name : "?", err, path)) ok = false;
        cJSON *nodes = cJSON_AddArrayToObject(e, "inbound_nodes");
        const cJSON *node;
        cJSON_ArrayForEach(node, cJSON_GetObjectItemCaseSensitive(lj, "inbound_nodes")) {
            cJSON *list = cJSON_CreateArray();
            const cJSON *arg = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(node, "args"), 0);
            const cJSON *t;
            if (cJSON_IsArray(arg)) {
                cJSON_ArrayForEach(t, arg) cJSON_AddItemToArray(list, k2_ref(t));
            } else if (arg) {
                cJSON_AddItemToArray(list, k2_ref(arg));
            }
            const cJSON *states = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(node, "kwargs"), "initial_state");
            cJSON_ArrayForEach(t, states) cJSON_AddItemToArray(list, k2_ref(t));
            cJSON_AddItemToArray(nodes, list);
        }
    }
    cJSON_AddItemToObject(oc, "input_layers", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(config, "input_layers"), true));
    cJSON_AddItemToObject(oc, "output_layers", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(config, "output_layers"), true));
    cJSON_AddStringToObject(out, "keras_version", "2.11.0");
    cJSON_AddStringToObject(out, "backend", "tensorflow");
    cJSON_Delete(k3);
    if (!ok) {
        cJSON_Delete(out);
        return NULL;
    }
    return out;
}

/* TensorFlow.js's name of weight w of layer L. */
static void weight_name(const loom_layer *L, int w, char *out, size_t n) {
    const char *wn = L->weights[w].name;
    char scope[2 * LOOM_NAME_MAX + 16] = "";
    if (L->op == &loom_op_bidirectional) {
        bool fw = strncmp(wn, "fw_", 3) == 0;
        snprintf(scope, sizeof scope, "/%s_%s", fw ? "forward" : "backward", L->inner[0]->name);
        wn += 3;
    }
    if (strcmp(wn, "rec_kernel") == 0) wn = "recurrent_kernel";
    if (L->op == &loom_op_depthwise_conv2d && strcmp(wn, "kernel") == 0) wn = "depthwise_kernel"; /* Keras's name */
    snprintf(out, n, "%s%s/%s", L->name, scope, wn);
}

loom_status loom_tfjs_export(loom_model *m, const char *path, loom_error *err) {
    for (int i = 0; i < m->n_layers; i++) {
        const loom_layer *L = m->layers[i];
        const loom_layer *R = L->op == &loom_op_bidirectional ? L->inner[0] : L;
        if (R->op == &loom_op_gru && R->iarg[RNN_RESET])
            return loom_set_error(err, LOOM_ERR_STATE, "%s: layer %s is a GRU with reset_after, which TensorFlow.js does not have",
                                  path, L->name);
        if (L->op == &loom_op_multi_head_attention)
            return loom_set_error(err, LOOM_ERR_STATE, "%s: layer %s (MultiHeadAttention) cannot be written for TensorFlow.js",
                                  path, L->name);
        if (loom_is_rnn_op(L->op) && L->iarg[RNN_STATEFUL]) /* its batch size has no place in loom's tfjs topology */
            return loom_set_error(err, LOOM_ERR_STATE, "%s: layer %s is stateful, which loom does not write for TensorFlow.js yet",
                                  path, L->name);
    }
    cJSON *topo = topology(m, path, err);
    if (!topo) return err->code;
    /* the shard: <stem>.bin beside model.json, named relative to it */
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t stem = strlen(base) > 5 && strcmp(base + strlen(base) - 5, ".json") == 0 ? strlen(base) - 5 : strlen(base);
    char shard[300], shard_path[1200];
    snprintf(shard, sizeof shard, "%.*s.weights.bin", (int)(stem < 200 ? stem : 200), base);
    snprintf(shard_path, sizeof shard_path, "%.*s%s", (int)(slash ? slash - path + 1 : 0), path, shard);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", "layers-model");
    cJSON_AddStringToObject(root, "generatedBy", "loom");
    cJSON_AddNullToObject(root, "convertedBy");
    cJSON_AddItemToObject(root, "modelTopology", topo);
    cJSON *manifest = cJSON_AddArrayToObject(root, "weightsManifest");
    cJSON *group = cJSON_CreateObject();
    cJSON_AddItemToArray(manifest, group);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(group, "paths"), cJSON_CreateString(shard));
    cJSON *specs = cJSON_AddArrayToObject(group, "weights");
    size_t total = 0;
    for (int i = 0; i < m->n_layers; i++)
        for (int w = 0; w < m->layers[i]->n_weights; w++) total += loom_shape_size(&m->layers[i]->weights[w].shape);
    unsigned char *bin = malloc(total * sizeof(float) + 1);
    if (!bin) {
        cJSON_Delete(root);
        return loom_set_error(err, LOOM_ERR_MEMORY, "%s: out of memory", path);
    }
    size_t at = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const loom_layer *L = m->layers[i];
        for (int w = 0; w < L->n_weights; w++) {
            char name[4 * LOOM_NAME_MAX];
            weight_name(L, w, name, sizeof name);
            cJSON *spec = cJSON_CreateObject();
            cJSON_AddStringToObject(spec, "name", name);
            cJSON *shape = cJSON_AddArrayToObject(spec, "shape");
            for (int d = 0; d < L->weights[w].shape.rank; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber(L->weights[w].shape.dims[d]));
            cJSON_AddStringToObject(spec, "dtype", "float32");
            cJSON_AddItemToArray(specs, spec);
            size_t n = loom_shape_size(&L->weights[w].shape) * sizeof(float);
            memcpy(bin + at, m->params + L->weights[w].offset, n); /* little-endian hosts: tfjs's order */
            at += n;
        }
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    loom_status s = text ? loom_write_bytes(shard_path, bin, at, err) : loom_set_error(err, LOOM_ERR_MEMORY, "%s: out of memory", path);
    if (!s) s = loom_write_bytes(path, (const unsigned char *)text, strlen(text), err);
    free(text);
    free(bin);
    return s;
}

/* ---------------------------------------------------------------- import
 * modelTopology is a Keras config (converter output nests it as model_config, beside
 * training_config), read as Keras 2 (tfjs's hard_sigmoid is Keras 2's). Weights by their tfjs
 * names from the shards of each manifest group, concatenated in order; every spec's shape and
 * dtype checked against the layer, every shard's size against the specs, before a byte is copied. */

#define TFJS_MAX_SHARD_BYTES ((size_t)1 << 32)

typedef struct tfjs_spec {
    const char *name;
    const cJSON *shape;
    int group;
    size_t offset, bytes; /* within the group's bytes */
    bool float32;         /* plain float32, the only form loom reads into a layer */
} tfjs_spec;

/* Bytes per element of a manifest entry (tfjs's io/types.ts: DTYPE_VALUE_SIZE_MAP and the
 * quantization dtypes), 0 for a dtype whose size is not fixed (string) or unknown. */
static size_t spec_element_size(const char *dtype, const cJSON *quant) {
    if (quant) {
        const char *q = loom_json_str(quant, "dtype");
        if (!q) return 0;
        return strcmp(q, "uint8") == 0 ? 1 : strcmp(q, "uint16") == 0 || strcmp(q, "float16") == 0 ? 2 : 0;
    }
    if (!dtype || strcmp(dtype, "float32") == 0 || strcmp(dtype, "int32") == 0) return 4;
    if (strcmp(dtype, "bool") == 0) return 1;
    if (strcmp(dtype, "complex64") == 0) return 8;
    return 0;
}

/* Reads group g's shards (plain file names beside path) into one buffer of `need` bytes. */
static unsigned char *read_group(const cJSON *paths, const char *path, size_t need, const char *what, loom_error *err) {
    unsigned char *buf = malloc(need + 1);
    if (!buf) {
        loom_set_error(err, LOOM_ERR_MEMORY, "%s: out of memory", what);
        return NULL;
    }
    size_t at = 0;
    const char *slash = strrchr(path, '/');
    const cJSON *p;
    cJSON_ArrayForEach(p, paths) {
        if (!cJSON_IsString(p) || !p->valuestring[0] || strchr(p->valuestring, '/') || strchr(p->valuestring, '\\') ||
            strcmp(p->valuestring, "..") == 0 || strlen(p->valuestring) > 255) {
            loom_set_error(err, LOOM_ERR_DATA, "%s: a weight shard must be a plain file name beside model.json", what);
            free(buf);
            return NULL;
        }
        char file[1400];
        snprintf(file, sizeof file, "%.*s%s", (int)(slash ? slash - path + 1 : 0), path, p->valuestring);
        unsigned char *data = NULL;
        size_t size = 0;
        if (loom_read_file(file, &data, &size, err)) {
            free(buf);
            return NULL;
        }
        if (size > need - at) {
            free(data);
            free(buf);
            loom_set_error(err, LOOM_ERR_DATA, "%s: shard %s holds more bytes than the manifest's weights", what, file);
            return NULL;
        }
        memcpy(buf + at, data, size);
        at += size;
        free(data);
    }
    if (at != need) {
        free(buf);
        loom_set_error(err, LOOM_ERR_DATA, "%s: the shards hold %zu bytes, the manifest's weights %zu", what, at, need);
        return NULL;
    }
    return buf;
}

loom_model *loom_tfjs_import(const cJSON *root, const char *path, int none_dim, const char *what, loom_error *err) {
    const cJSON *topo = cJSON_GetObjectItemCaseSensitive(root, "modelTopology");
    const cJSON *train = cJSON_GetObjectItemCaseSensitive(topo, "training_config");
    if (cJSON_GetObjectItemCaseSensitive(topo, "model_config")) topo = cJSON_GetObjectItemCaseSensitive(topo, "model_config");
    if (!train) train = cJSON_GetObjectItemCaseSensitive(root, "trainingConfig");
    cJSON *norm = loom_keras_normalize(topo, 2, none_dim, what, err);
    if (!norm) return NULL;
    loom_model *m = loom_arch_from_json(norm, what, false, err);
    cJSON_Delete(norm);
    if (!m) return NULL;
    /* the manifest: specs with their place in their group's bytes */
    const cJSON *manifest = cJSON_GetObjectItemCaseSensitive(root, "weightsManifest");
    int n_specs = 0, n_groups = cJSON_GetArraySize(manifest);
    const cJSON *g, *w;
    cJSON_ArrayForEach(g, manifest) n_specs += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(g, "weights"));
    tfjs_spec *specs = calloc((size_t)n_specs + 1, sizeof *specs);
    size_t *group_bytes = calloc((size_t)n_groups + 1, sizeof *group_bytes);
    unsigned char **group_data = calloc((size_t)n_groups + 1, sizeof *group_data);
    float *next = malloc((m->n_params ? m->n_params : 1) * sizeof *next);
    loom_status s = specs && group_bytes && group_data && next ? LOOM_OK : loom_set_error(err, LOOM_ERR_MEMORY, "%s: out of memory", what);
    int k = 0, gi = 0;
    cJSON_ArrayForEach(g, manifest) {
        if (s) break;
        cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(g, "weights")) {
            const char *name = loom_json_str(w, "name"), *dtype = loom_json_str(w, "dtype");
            const cJSON *shape = cJSON_GetObjectItemCaseSensitive(w, "shape");
            const cJSON *quant = cJSON_GetObjectItemCaseSensitive(w, "quantization");
            /* every spec takes its bytes in the shard, also those loom does not read (a saved
             * optimizer's "iter" int32, quantized weights): their element size keeps the offsets */
            size_t count = 1, elem = spec_element_size(dtype, quant);
            const cJSON *d;
            bool ok = name && cJSON_IsArray(shape) && elem;
            cJSON_ArrayForEach(d, shape) {
                long v = loom_json_whole(d, 0, 1L << 31, -1);
                if (v < 0 || (v && count > TFJS_MAX_SHARD_BYTES / 8 / (size_t)v)) ok = false;
                else count *= (size_t)v;
            }
            if (!ok || group_bytes[gi] + count * elem > TFJS_MAX_SHARD_BYTES) {
                s = loom_set_error(err, LOOM_ERR_DATA,
                                   "%s: weight %.80s: an array of bounded size of float32, int32, bool or complex64 (or "
                                   "uint8/uint16/float16 quantized) is needed",
                                   what, name ? name : "(unnamed)");
                break;
            }
            specs[k++] = (tfjs_spec){.name = name, .shape = shape, .group = gi, .offset = group_bytes[gi], .bytes = count * elem,
                                     .float32 = elem == 4 && !quant && (!dtype || strcmp(dtype, "float32") == 0)};
            group_bytes[gi] += count * elem;
        }
        gi++;
    }
    if (!s) memcpy(next, m->params, m->n_params * sizeof *next);
    for (int i = 0; !s && i < m->n_layers; i++) {
        const loom_layer *L = m->layers[i];
        for (int wi = 0; !s && wi < L->n_weights; wi++) {
            char name[4 * LOOM_NAME_MAX];
            weight_name(L, wi, name, sizeof name);
            const tfjs_spec *sp = NULL;
            for (int j = 0; j < k && !sp; j++)
                if (strcmp(specs[j].name, name) == 0) sp = &specs[j];
            const loom_shape *ws = &L->weights[wi].shape;
            bool same = sp && cJSON_GetArraySize(sp->shape) == ws->rank;
            for (int d = 0; same && d < ws->rank; d++) same = loom_json_whole(cJSON_GetArrayItem(sp->shape, d), 0, 1L << 31, -1) == ws->dims[d];
            if (!same) {
                s = loom_set_error(err, LOOM_ERR_DATA, "%s: layer %s: weight %s is %s the manifest", what, L->name, name,
                                   sp ? "of another shape in" : "not in");
                break;
            }
            if (!sp->float32) {
                s = loom_set_error(err, LOOM_ERR_DATA, "%s: layer %s: weight %s is not plain float32 in the manifest (quantized "
                                   "or another dtype), which loom does not read", what, L->name, name);
                break;
            }
            if (!path) {
                s = loom_set_error(err, LOOM_ERR_STATE, "%s: a tfjs model.json read from memory has no weight shards; import it from its file", what);
                break;
            }
            if (!group_data[sp->group] &&
                !(group_data[sp->group] = read_group(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(manifest, sp->group), "paths"),
                                                     path, group_bytes[sp->group], what, err))) {
                s = err->code;
                break;
            }
            memcpy(next + L->weights[wi].offset, group_data[sp->group] + sp->offset, sp->bytes);
        }
    }
    if (!s) memcpy(m->params, next, m->n_params * sizeof *next);
    for (int i = 0; group_data && i < n_groups; i++) free(group_data[i]);
    free(group_data);
    free(group_bytes);
    free(specs);
    free(next);
    if (s) {
        loom_model_free(m);
        return NULL;
    }
    if (cJSON_IsObject(train)) loom_keras_compile(m, train);
    return m;
}
