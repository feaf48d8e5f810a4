/* tfjs.c — the TensorFlow.js layers format out (keras_io.h): model.json with modelTopology (the
 * Keras 2 form of the architecture, which tf.loadLayersModel reads: batch_input_shape, nested-list
 * inbound_nodes, initial states as extra inbound tensors) and weightsManifest (one group, one
 * shard), and the shard of float32 weights beside it, named after weight scopes as TensorFlow.js
 * makes them (<layer>/kernel, <bidirectional>/forward_<rnn>/kernel, <layer>/recurrent_kernel). */
#include "io/keras_io.h"
#include "io/model_json.h"
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
