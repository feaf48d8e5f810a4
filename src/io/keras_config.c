/* keras_config.c — Keras 2 and Keras 3 configs into model_json.c's layout (keras_config.h).
 *
 * One pass over the model (and, recursively, over models used as layers) writes a fresh layer
 * list: every layer entry gets a checked copy of its config (initializer, regularizer and dtype
 * objects in the plain forms model_json.c reads) and its calls as Keras 3 {"args", "kwargs"}
 * nodes. A nested model disappears: its inputs become the tensors it was called on, its outputs
 * the tensors its layers make (aliases below). */
#include "io/keras_config.h"
#include "io/model_json.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ALIASES 256
#define MAX_ALIAS_OUT 16
#define MAX_DEPTH 8

/* A name that no longer is a layer: a nested model (its outputs) or a nested model's InputLayer
 * (the tensor the model was called on). */
typedef struct alias {
    char name[LOOM_NAME_MAX];
    int n;
    cJSON *hist[MAX_ALIAS_OUT]; /* [layer, node, tensor] each, owned */
} alias;

/* A recurrent layer with return_state: its outputs are taken apart by RecurrentOutput layers,
 * made when first referenced (bit 1 << (3 * node + k) of `made`). */
typedef struct state_layer {
    char name[LOOM_NAME_MAX];
    int states, seq;
    unsigned made;
} state_layer;

#define MAX_STATE_LAYERS 64

typedef struct ctx {
    int major;
    int none_dim;
    int batch;       /* the batch size an Input's batch_shape fixes (0: none); stateful layers need it */
    const char *what;
    loom_error *err;
    cJSON *layers; /* the output list */
    alias *aliases;
    int n_aliases;
    state_layer states[MAX_STATE_LAYERS];
    int n_states;
} ctx;

void loom_keras_snake_case(const char *cls, char *out, size_t n) {
    /* re.sub("(.)([A-Z][a-z]+)", r"\1_\2"), then re.sub("([a-z])([A-Z])", r"\1_\2"), lower() */
    char a[256];
    size_t k = 0, len = strlen(cls);
    for (size_t i = 0; i < len && k + 2 < sizeof a; i++) {
        unsigned char c = (unsigned char)cls[i];
        if (!isalnum(c) && c != '_') continue; /* \W+ removed */
        if (i > 0 && k > 0 && isupper(c) && i + 1 < len && islower((unsigned char)cls[i + 1])) a[k++] = '_';
        a[k++] = (char)c;
    }
    a[k] = 0;
    size_t o = 0;
    for (size_t i = 0; a[i] && o + 2 < n; i++) {
        unsigned char c = (unsigned char)a[i];
        if (i > 0 && isupper(c) && islower((unsigned char)a[i - 1])) out[o++] = '_';
        out[o++] = (char)tolower(c);
    }
    if (n) out[o < n ? o : n - 1] = 0;
}

/* ---------------------------------------------------------------- per-layer config checks */

/* Keys each class may carry (beyond the common ones); values checked in check_value. */
typedef struct class_keys {
    const char *cls;
    const char *keys;
} class_keys;

static const char *const COMMON_KEYS = " name trainable dtype batch_input_shape batch_shape input_shape ";
#define ACT_KERNEL " activation use_bias kernel_initializer bias_initializer kernel_regularizer bias_regularizer activity_regularizer kernel_constraint bias_constraint lora_rank lora_alpha quantization_config "
#define CONV_KEYS " filters kernel_size strides padding data_format dilation_rate groups" ACT_KERNEL
#define POOL_KEYS " pool_size strides padding data_format "
#define RNN_KEYS " units activation recurrent_activation use_bias kernel_initializer recurrent_initializer bias_initializer unit_forget_bias kernel_regularizer recurrent_regularizer bias_regularizer activity_regularizer kernel_constraint recurrent_constraint bias_constraint dropout recurrent_dropout return_sequences return_state go_backwards stateful unroll zero_output_for_mask reset_after implementation seed time_major use_cudnn "

static const class_keys CLASS_KEYS[] = {
    {"InputLayer", " sparse ragged input_tensor optional "},
    {"Dense", " units" ACT_KERNEL},
    {"Activation", " activation "},
    {"Dropout", " rate noise_shape seed "},
    {"Add", ""},
    {"Subtract", ""},
    {"Multiply", ""},
    {"Concatenate", " axis "},
    {"Flatten", " data_format "},
    {"Reshape", " target_shape "},
    {"Conv1D", CONV_KEYS},
    {"Conv2D", CONV_KEYS},
    {"Conv2DTranspose", CONV_KEYS " output_padding "},
    {"DepthwiseConv2D", " kernel_size strides padding depth_multiplier data_format dilation_rate activation use_bias "
                        "depthwise_initializer bias_initializer depthwise_regularizer bias_regularizer activity_regularizer "
                        "depthwise_constraint bias_constraint "},
    {"MaxPooling1D", POOL_KEYS},
    {"MaxPooling2D", POOL_KEYS},
    {"AveragePooling1D", POOL_KEYS},
    {"AveragePooling2D", POOL_KEYS},
    {"GlobalAveragePooling1D", " data_format keepdims "},
    {"GlobalMaxPooling1D", " data_format keepdims "},
    {"GlobalAveragePooling2D", " data_format keepdims "},
    {"GlobalMaxPooling2D", " data_format keepdims "},
    {"UpSampling2D", " size interpolation data_format "},
    {"ZeroPadding2D", " padding data_format "},
    {"Cropping2D", " cropping data_format "},
    {"BatchNormalization", " axis momentum epsilon center scale beta_initializer gamma_initializer moving_mean_initializer "
                           "moving_variance_initializer beta_regularizer gamma_regularizer beta_constraint gamma_constraint "
                           "synchronized renorm renorm_clipping renorm_momentum fused virtual_batch_size adjustment "},
    /* TF 2's tf.keras.layers.experimental.SyncBatchNormalization: BatchNormalization(synchronized=True) */
    {"SyncBatchNormalization", " axis momentum epsilon center scale beta_initializer gamma_initializer moving_mean_initializer "
                               "moving_variance_initializer beta_regularizer gamma_regularizer beta_constraint gamma_constraint "
                               "renorm renorm_clipping renorm_momentum fused virtual_batch_size adjustment "},
    {"LayerNormalization", " axis epsilon center scale beta_initializer gamma_initializer beta_regularizer "
                           "gamma_regularizer beta_constraint gamma_constraint rms_scaling "},
    {"Embedding", " input_dim output_dim embeddings_initializer embeddings_regularizer activity_regularizer "
                  "embeddings_constraint mask_zero input_length lora_rank lora_alpha sparse "},
    {"SimpleRNN", RNN_KEYS},
    {"LSTM", RNN_KEYS},
    {"GRU", RNN_KEYS},
    {"Bidirectional", " layer backward_layer merge_mode "},
    {"TimeDistributed", " layer "},
    {"Permute", " dims "},
    {"RepeatVector", " n "},
    {"MultiHeadAttention", " num_heads key_dim value_dim dropout use_bias output_shape attention_axes kernel_initializer "
                           "bias_initializer kernel_regularizer bias_regularizer activity_regularizer kernel_constraint "
                           "bias_constraint seed flash_attention query_shape value_shape key_shape "},
};

static const char *keys_of(const char *cls) {
    for (size_t i = 0; i < sizeof CLASS_KEYS / sizeof *CLASS_KEYS; i++)
        if (strcmp(CLASS_KEYS[i].cls, cls) == 0) return CLASS_KEYS[i].keys;
    return NULL;
}

static bool in_list(const char *list, const char *key) {
    char pat[96];
    if (strlen(key) > 80) return false;
    snprintf(pat, sizeof pat, " %s ", key);
    return strstr(list, pat) != NULL;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static loom_status refuse(ctx *c, const char *layer, const char *cls, const char *key, const char *why) {
    return loom_set_error(c->err, LOOM_ERR_DATA, "%s: layer %s (%s): %s %s", c->what, layer, cls, key, why);
}

/* {"class_name": X, "config": {...}} (Keras 2 and 3; Keras 3 adds module and registered_name), or
 * Keras 3's plain string form. Class without its "keras.initializers>" style prefix. */
static const char *obj_class(const cJSON *v, const cJSON **cfg) {
    *cfg = NULL;
    if (cJSON_IsString(v)) return v->valuestring;
    const cJSON *cn = cJSON_GetObjectItemCaseSensitive(v, "class_name");
    if (!cJSON_IsString(cn)) return NULL;
    *cfg = cJSON_GetObjectItemCaseSensitive(v, "config");
    const char *s = strrchr(cn->valuestring, '>');
    return s ? s + 1 : cn->valuestring;
}

static double cfg_num(const cJSON *cfg, const char *key, double fallback) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    return cJSON_IsNumber(v) ? v->valuedouble : fallback;
}

static const char *cfg_str(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* An initializer as the class name loom knows (model_json.c's INIT_NAMES), or NULL. Variance
 * scaling is named by what it is: Keras 2 wrote glorot_uniform as VarianceScaling(1, fan_avg,
 * uniform). */
static const char *initializer_name(const cJSON *v) {
    const cJSON *cfg;
    const char *cls = obj_class(v, &cfg);
    if (!cls) return NULL;
    static const char *const SAME[][2] = {
        {"GlorotUniform", "GlorotUniform"}, {"glorot_uniform", "GlorotUniform"}, {"GlorotNormal", "GlorotNormal"},
        {"glorot_normal", "GlorotNormal"},  {"HeUniform", "HeUniform"},         {"he_uniform", "HeUniform"},
        {"HeNormal", "HeNormal"},           {"he_normal", "HeNormal"},          {"LecunUniform", "LecunUniform"},
        {"lecun_uniform", "LecunUniform"},  {"LecunNormal", "LecunNormal"},     {"lecun_normal", "LecunNormal"},
        {"Zeros", "Zeros"},                 {"zeros", "Zeros"},                 {"Ones", "Ones"},
        {"ones", "Ones"}};
    for (size_t i = 0; i < sizeof SAME / sizeof *SAME; i++)
        if (strcmp(cls, SAME[i][0]) == 0) return SAME[i][1];
    if (strcmp(cls, "Orthogonal") == 0 || strcmp(cls, "OrthogonalInitializer") == 0 || strcmp(cls, "orthogonal") == 0)
        return cfg_num(cfg, "gain", 1.0) == 1.0 ? "Orthogonal" : NULL;
    if (strcmp(cls, "RandomUniform") == 0 || strcmp(cls, "random_uniform") == 0)
        return fabs(cfg_num(cfg, "minval", -0.05) + 0.05) < 1e-9 && fabs(cfg_num(cfg, "maxval", 0.05) - 0.05) < 1e-9
                   ? "RandomUniform"
                   : NULL;
    if (strcmp(cls, "Constant") == 0 && cfg_num(cfg, "value", 0) == 0) return "Zeros";
    if (strcmp(cls, "VarianceScaling") == 0) {
        double scale = cfg_num(cfg, "scale", 1.0);
        const char *mode = cfg_str(cfg, "mode"), *dist = cfg_str(cfg, "distribution");
        if (!mode || !dist) return NULL;
        bool uniform = strcmp(dist, "uniform") == 0;
        bool normal = strcmp(dist, "truncated_normal") == 0 || strcmp(dist, "normal") == 0;
        if (scale == 1.0 && strcmp(mode, "fan_avg") == 0) return uniform ? "GlorotUniform" : normal ? "GlorotNormal" : NULL;
        if (scale == 2.0 && strcmp(mode, "fan_in") == 0) return uniform ? "HeUniform" : normal ? "HeNormal" : NULL;
        if (scale == 1.0 && strcmp(mode, "fan_in") == 0) return uniform ? "LecunUniform" : normal ? "LecunNormal" : NULL;
    }
    return NULL;
}

static const cJSON *batch_shape_of(const cJSON *cfg);

/* Checks one key's value, rewriting it in `out` (a copy of the config) where loom wants another
 * form. LOOM_OK or an error naming the key. */
static loom_status check_value(ctx *c, const char *layer, const char *cls, cJSON *out, const cJSON *v, const char *key) {
    if (cJSON_IsNull(v)) return LOOM_OK; /* an absent option */
    if (strcmp(key, "trainable") == 0)
        return cJSON_IsFalse(v) ? refuse(c, layer, cls, key, "is false: loom cannot freeze a layer") : LOOM_OK;
    if (strcmp(key, "dtype") == 0) {
        const cJSON *cfg;
        const char *d = cJSON_IsString(v) ? v->valuestring : (obj_class(v, &cfg), cfg_str(cfg, "name"));
        /* Keras 3 writes the global policy into every layer's config: mixed_bfloat16 becomes the
         * layer's own policy (model_json.c) */
        if (!d || (strcmp(d, "float32") != 0 && strcmp(d, "mixed_bfloat16") != 0))
            return refuse(c, layer, cls, key, "is neither float32 nor mixed_bfloat16, the policies loom has");
        cJSON_ReplaceItemInObjectCaseSensitive(out, key, cJSON_CreateString(d));
        return LOOM_OK;
    }
    if (ends_with(key, "_initializer")) {
        const char *n = initializer_name(v);
        if (!n) return refuse(c, layer, cls, key, "is an initializer loom does not have");
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "class_name", n);
        cJSON_AddObjectToObject(o, "config");
        cJSON_ReplaceItemInObjectCaseSensitive(out, key, o);
        return LOOM_OK;
    }
    if (strcmp(key, "activity_regularizer") == 0) return refuse(c, layer, cls, key, "is set: loom has no activity regularizers");
    if (ends_with(key, "_regularizer")) {
        const cJSON *cfg;
        const char *r = obj_class(v, &cfg);
        double l1 = cfg_num(cfg, "l1", 0), l2 = cfg_num(cfg, "l2", 0);
        if (!r || !(strcmp(r, "L1L2") == 0 || strcmp(r, "L1") == 0 || strcmp(r, "L2") == 0 || strcmp(r, "l1_l2") == 0) ||
            !isfinite(l1) || !isfinite(l2) || l1 < 0 || l2 < 0)
            return refuse(c, layer, cls, key, "is a regularizer loom does not have (L1, L2 and L1L2 only)");
        if (strcmp(r, "L2") == 0) l1 = 0;
        if (strcmp(r, "L1") == 0) l2 = 0;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "class_name", "L1L2");
        cJSON *oc = cJSON_AddObjectToObject(o, "config");
        cJSON_AddNumberToObject(oc, "l1", l1);
        cJSON_AddNumberToObject(oc, "l2", l2);
        cJSON_ReplaceItemInObjectCaseSensitive(out, key, o);
        return LOOM_OK;
    }
    if (ends_with(key, "_constraint"))
        return refuse(c, layer, cls, key, "is set: loom does not apply weight constraints, so it refuses them rather "
                                          "than train differently from Keras");
    if (strcmp(key, "data_format") == 0)
        return cJSON_IsString(v) && strcmp(v->valuestring, "channels_last") == 0
                   ? LOOM_OK
                   : refuse(c, layer, cls, key, "is not channels_last, the only layout loom has");
    if (strcmp(key, "stateful") == 0 && cJSON_IsTrue(v) &&
        (strcmp(cls, "SimpleRNN") == 0 || strcmp(cls, "LSTM") == 0 || strcmp(cls, "GRU") == 0)) {
        /* Keras fixes a stateful layer's batch in the batch_shape of the Input (or of the layer
         * itself, Keras 2's batch_input_shape): loom's layer keeps it as loom_stateful_batch */
        const cJSON *own = batch_shape_of(out);
        const cJSON *b0 = own ? cJSON_GetArrayItem(own, 0) : NULL;
        int batch = cJSON_IsNumber(b0) && b0->valuedouble >= 1 && b0->valuedouble <= (1 << 24) &&
                            b0->valuedouble == floor(b0->valuedouble)
                        ? (int)b0->valuedouble
                        : c->batch;
        if (batch <= 0)
            return refuse(c, layer, cls, key, "is set but the model's Input has no batch size (batch_shape) to keep "
                                              "the states for");
        cJSON_DeleteItemFromObjectCaseSensitive(out, "loom_stateful_batch");
        cJSON_AddNumberToObject(out, "loom_stateful_batch", batch);
        return LOOM_OK;
    }
    struct { const char *key; int want; } flags[] = {{"sparse", 0}, {"ragged", 0}, {"stateful", 0}, {"time_major", 0},
                                                     {"renorm", 0}, {"keepdims", 0}, {"rms_scaling", 0}, {"optional", 0}};
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++)
        if (strcmp(key, flags[i].key) == 0)
            return cJSON_IsBool(v) && cJSON_IsTrue(v) == flags[i].want ? LOOM_OK
                                                                         : refuse(c, layer, cls, key, "is set: loom does not have it");
    if (strcmp(key, "groups") == 0)
        return cJSON_IsNumber(v) && v->valuedouble == 1 ? LOOM_OK : refuse(c, layer, cls, key, "is not 1: loom has no grouped convolutions");
    if (strcmp(key, "interpolation") == 0)
        return cJSON_IsString(v) && strcmp(v->valuestring, "nearest") == 0 ? LOOM_OK : refuse(c, layer, cls, key, "is not nearest");
    if (strcmp(key, "attention_axes") == 0) {
        /* tf.keras saves the axes its build chose: (1,), the steps axis, is the default loom has */
        const cJSON *a = cJSON_IsArray(v) && cJSON_GetArraySize(v) == 1 ? cJSON_GetArrayItem(v, 0) : v;
        if (!cJSON_IsNumber(a) || a->valuedouble != 1)
            return refuse(c, layer, cls, key, "is not the steps axis [1]: loom attends over the steps only");
        cJSON_DeleteItemFromObjectCaseSensitive(out, key);
        return LOOM_OK;
    }
    if (strcmp(key, "lora_rank") == 0 || strcmp(key, "noise_shape") == 0 || strcmp(key, "output_padding") == 0 ||
        strcmp(key, "virtual_batch_size") == 0 || strcmp(key, "adjustment") == 0 || strcmp(key, "input_tensor") == 0 ||
        strcmp(key, "quantization_config") == 0 || strcmp(key, "renorm_clipping") == 0 || strcmp(key, "output_shape") == 0)
        return refuse(c, layer, cls, key, "is set: loom does not have it");
    if ((strcmp(key, "activation") == 0 || strcmp(key, "recurrent_activation") == 0) && cJSON_IsString(v) &&
        strcmp(v->valuestring, "hard_sigmoid") == 0 && c->major < 3)
        /* Keras 2's hard_sigmoid is clip(0.2 x + 0.5), Keras 3's clip(x / 6 + 0.5) */
        cJSON_ReplaceItemInObjectCaseSensitive(out, key, cJSON_CreateString("hard_sigmoid_keras2"));
    return LOOM_OK;
}

static loom_status check_config(ctx *c, const char *layer, const char *cls, const cJSON *cfg, cJSON **out);

/* A wrapper's inner layer {"class_name", "config"}: checked, written back normalised. */
static loom_status check_inner(ctx *c, const char *layer, const char *cls, cJSON *out, const char *key) {
    cJSON *o = cJSON_GetObjectItemCaseSensitive(out, key);
    if (cJSON_IsNull(o) || !o) return LOOM_OK;
    const cJSON *icfg = cJSON_GetObjectItemCaseSensitive(o, "config");
    const char *icls = loom_json_str(o, "class_name");
    const char *iname = loom_json_str(icfg, "name");
    if (!icls || !cJSON_IsObject(icfg)) return refuse(c, layer, cls, key, "is not a layer config");
    cJSON *ic = NULL;
    loom_status s = check_config(c, iname ? iname : layer, icls, icfg, &ic);
    if (s) return s;
    cJSON *n = cJSON_CreateObject();
    cJSON_AddStringToObject(n, "class_name", icls);
    cJSON_AddItemToObject(n, "config", ic);
    cJSON_ReplaceItemInObjectCaseSensitive(out, key, n);
    return LOOM_OK;
}

static loom_status check_config(ctx *c, const char *layer, const char *cls, const cJSON *cfg, cJSON **out) {
    *out = NULL;
    const char *keys = keys_of(cls);
    if (!keys)
        return loom_set_error(c->err, LOOM_ERR_DATA, "%s: layer %s has the class %.60s, which loom does not have", c->what,
                              layer, cls);
    cJSON *o = cJSON_Duplicate(cfg, true);
    if (!o) return loom_set_error(c->err, LOOM_ERR_MEMORY, "%s: out of memory", c->what);
    const cJSON *v;
    cJSON_ArrayForEach(v, cfg) {
        const char *key = v->string;
        if (!key || (!in_list(COMMON_KEYS, key) && !in_list(keys, key))) {
            cJSON_Delete(o);
            return refuse(c, layer, cls, key ? key : "(unnamed)", "is an option loom does not know");
        }
        loom_status s = check_value(c, layer, cls, o, v, key);
        if (s) {
            cJSON_Delete(o);
            return s;
        }
    }
    loom_status s = LOOM_OK;
    if (strcmp(cls, "TimeDistributed") == 0) s = check_inner(c, layer, cls, o, "layer");
    if (strcmp(cls, "Bidirectional") == 0) {
        s = check_inner(c, layer, cls, o, "layer");
        if (!s) s = check_inner(c, layer, cls, o, "backward_layer");
    }
    if (s) {
        cJSON_Delete(o);
        return s;
    }
    *out = o;
    return LOOM_OK;
}

/* ---------------------------------------------------------------- calls and tensors */

static loom_status add_layer(ctx *c, const char *cls, const char *name, cJSON *cfg, cJSON *nodes, const char *k3,
                             const char *k2group, const char *k2prefix);
static cJSON *one_node(cJSON *refs);

static alias *find_alias(ctx *c, const char *name) {
    for (int i = c->n_aliases - 1; i >= 0; i--)
        if (strcmp(c->aliases[i].name, name) == 0) return &c->aliases[i];
    return NULL;
}

/* A reference [layer, node, tensor] from either dialect: Keras 3 {"class_name": "__keras_tensor__",
 * "config": {"keras_history": [...]}}, Keras 2 [layer, node, tensor, kwargs], or the plain
 * [layer, node, tensor] of input_layers / output_layers. Returns a new [name, node, 0] array with
 * aliases resolved; NULL with err set. */
static cJSON *reference(ctx *c, const cJSON *t, const char *layer) {
    const cJSON *h = t;
    if (cJSON_IsObject(t)) h = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(t, "config"), "keras_history");
    const cJSON *ln = cJSON_GetArrayItem(h, 0), *ni = cJSON_GetArrayItem(h, 1), *ti = cJSON_GetArrayItem(h, 2);
    long node = loom_json_whole(ni, 0, 1L << 30, -1), tensor = ti ? loom_json_whole(ti, 0, 1L << 30, -1) : 0;
    if (!cJSON_IsArray(h) || !cJSON_IsString(ln) || node < 0 || tensor < 0) {
        loom_set_error(c->err, LOOM_ERR_DATA, "%s: layer %s: an input reference is not [layer, node, tensor]", c->what, layer);
        return NULL;
    }
    alias *a = find_alias(c, ln->valuestring);
    if (a) {
        if (tensor >= a->n) {
            loom_set_error(c->err, LOOM_ERR_DATA, "%s: layer %s uses output %ld of %s, which has %d", c->what, layer, tensor,
                           ln->valuestring, a->n);
            return NULL;
        }
        return cJSON_Duplicate(a->hist[tensor], true);
    }
    for (int i = 0; i < c->n_states; i++) {
        state_layer *sl = &c->states[i];
        if (strcmp(sl->name, ln->valuestring) != 0) continue;
        if (tensor > sl->states || node > 9) {
            loom_set_error(c->err, LOOM_ERR_DATA, "%s: %s uses output %ld of layer %s, which has %d", c->what, layer, tensor,
                           sl->name, sl->states + 1);
            return NULL;
        }
        static const char *const SUFFIX[2][3] = {{"output", "state", ""}, {"output", "state_h", "state_c"}};
        char name[LOOM_NAME_MAX + 32];
        snprintf(name, sizeof name, "%.*s_%s", LOOM_NAME_MAX - 20, sl->name, SUFFIX[sl->states - 1][tensor]);
        if (node) snprintf(name + strlen(name), sizeof name - strlen(name), "_%ld", node);
        unsigned bit = 1u << (3 * node + tensor);
        if (!(sl->made & bit)) {
            sl->made |= bit;
            cJSON *cfg = cJSON_CreateObject();
            cJSON_AddStringToObject(cfg, "name", name);
            cJSON_AddNumberToObject(cfg, "output", (double)tensor);
            cJSON_AddNumberToObject(cfg, "states", sl->states);
            cJSON_AddBoolToObject(cfg, "sequences", sl->seq);
            cJSON *src = cJSON_CreateArray();
            cJSON_AddItemToArray(src, cJSON_CreateString(sl->name));
            cJSON_AddItemToArray(src, cJSON_CreateNumber((double)node));
            cJSON_AddItemToArray(src, cJSON_CreateNumber(0));
            cJSON *in = cJSON_CreateArray();
            cJSON_AddItemToArray(in, src);
            add_layer(c, "RecurrentOutput", name, cfg, one_node(in), "", name, "");
        }
        cJSON *r = cJSON_CreateArray();
        cJSON_AddItemToArray(r, cJSON_CreateString(name));
        cJSON_AddItemToArray(r, cJSON_CreateNumber(0));
        cJSON_AddItemToArray(r, cJSON_CreateNumber(0));
        return r;
    }
    if (tensor != 0) {
        loom_set_error(c->err, LOOM_ERR_DATA, "%s: %s uses output %ld of layer %s, which has one output", c->what, layer,
                       tensor, ln->valuestring);
        return NULL;
    }
    cJSON *r = cJSON_CreateArray();
    cJSON_AddItemToArray(r, cJSON_CreateString(ln->valuestring));
    cJSON_AddItemToArray(r, cJSON_CreateNumber((double)node));
    cJSON_AddItemToArray(r, cJSON_CreateNumber(0));
    return r;
}

static cJSON *tensor_json(cJSON *hist) {
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "class_name", "__keras_tensor__");
    cJSON_AddItemToObject(cJSON_AddObjectToObject(t, "config"), "keras_history", hist);
    return t;
}

/* A call argument loom takes as a flag, not an input: Keras's training / mask flags, and
 * MultiHeadAttention's use_causal_mask (true sets *causal) and return_attention_scores (false
 * only). A null argument is the same as an absent one (Keras records None as passed). */
static bool flag_argument(const cJSON *kv, int *causal) {
    if (cJSON_IsNull(kv)) return true;
    if (!kv->string || !cJSON_IsBool(kv)) return false;
    if (strcmp(kv->string, "training") == 0 || strcmp(kv->string, "mask") == 0) return true;
    if (strcmp(kv->string, "use_causal_mask") == 0) {
        if (cJSON_IsTrue(kv)) *causal = 1;
        return true;
    }
    return strcmp(kv->string, "return_attention_scores") == 0 && cJSON_IsFalse(kv);
}

/* MultiHeadAttention's tensors passed by keyword: query, value, key, in that order. */
static const char *const MHA_TENSOR_ARGS[3] = {"query", "value", "key"};

static bool is_tensor_object(const cJSON *t) {
    const char *cls = loom_json_str(t, "class_name");
    return cls && strcmp(cls, "__keras_tensor__") == 0;
}

/* The input references of one call, in either dialect, as an array of [name, node, 0]. *causal
 * is set when the call passes use_causal_mask=True (MultiHeadAttention). */
static cJSON *call_inputs(ctx *c, const cJSON *node, const char *layer, int *causal) {
    cJSON *refs = cJSON_CreateArray();
    if (cJSON_IsObject(node)) { /* Keras 3 */
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(node, "args");
        const cJSON *kwargs = cJSON_GetObjectItemCaseSensitive(node, "kwargs");
        const cJSON *kv, *states = NULL, *by_name[3] = {NULL, NULL, NULL};
        cJSON_ArrayForEach(kv, kwargs) {
            if (flag_argument(kv, causal)) continue;
            /* a recurrent layer's initial states: more inputs after the sequence */
            if (kv->string && strcmp(kv->string, "initial_state") == 0 && (cJSON_IsArray(kv) || cJSON_IsObject(kv))) {
                states = kv;
                continue;
            }
            int named = -1;
            for (int i = 0; i < 3 && kv->string; i++)
                if (strcmp(kv->string, MHA_TENSOR_ARGS[i]) == 0 && is_tensor_object(kv)) named = i;
            if (named >= 0) {
                by_name[named] = kv;
                continue;
            }
            loom_set_error(c->err, LOOM_ERR_DATA, "%s: layer %s is called with the argument %s, which loom does not support",
                           c->what, layer, kv->string ? kv->string : "?");
            cJSON_Delete(refs);
            return NULL;
        }
        int n_args = cJSON_GetArraySize(args);
        const cJSON *first = cJSON_GetArrayItem(args, 0), *t;
        bool positional = n_args > 1; /* MultiHeadAttention(query, value[, key]): tensors one by one */
        const cJSON *each = positional ? args : NULL;
        cJSON_ArrayForEach(t, each) positional = positional && is_tensor_object(t);
        bool any_named = by_name[0] || by_name[1] || by_name[2];
        if (!cJSON_IsArray(args) || (!positional && !(n_args == 1 && first) && !(n_args == 0 && any_named))) {
            loom_set_error(c->err, LOOM_ERR_DATA, "%s: layer %s: a call needs exactly one argument (a tensor or a list)",
                           c->what, layer);
            cJSON_Delete(refs);
            return NULL;
        }
        if (positional || cJSON_IsArray(first)) {
            const cJSON *list = positional ? args : first;
            cJSON_ArrayForEach(t, list) {
                cJSON *r = reference(c, t, layer);
                if (!r) goto fail;
                cJSON_AddItemToArray(refs, r);
            }
        } else if (first) {
            cJSON *r = reference(c, first, layer);
            if (!r) goto fail;
            cJSON_AddItemToArray(refs, r);
        }
        for (int i = 0; i < 3; i++) {
            if (!by_name[i]) continue;
            if (cJSON_GetArraySize(refs) != i) { /* query, value, key must line up with the positions */
                loom_set_error(c->err, LOOM_ERR_DATA, "%s: layer %s: the argument %s comes after %d positional inputs", c->what,
                               layer, MHA_TENSOR_ARGS[i], cJSON_GetArraySize(refs));
                goto fail;
            }
            cJSON *r = reference(c, by_name[i], layer);
            if (!r) goto fail;
            cJSON_AddItemToArray(refs, r);
        }
        if (cJSON_IsObject(states)) {
            cJSON *r = reference(c, states, layer);
            if (!r) goto fail;
            cJSON_AddItemToArray(refs, r);
        } else if (states) {
            cJSON_ArrayForEach(t, states) {
                cJSON *r = reference(c, t, layer);
                if (!r) goto fail;
                cJSON_AddItemToArray(refs, r);
            }
        }
        return refs;
    }
    if (cJSON_IsArray(node)) { /* Keras 2: [[layer, node, tensor, kwargs], ...] */
        const cJSON *t;
        cJSON_ArrayForEach(t, node) {
            const cJSON *kw = cJSON_GetArrayItem(t, 3), *kv;
            /* tf.keras writes MultiHeadAttention(q, value=v[, key=k]) as [q, 0, 0, {"value": [v, 0, 0], ...}] */
            const cJSON *by_name[3] = {NULL, NULL, NULL}, *kws = cJSON_IsObject(kw) ? kw : NULL;
            cJSON_ArrayForEach(kv, kws) {
                if (flag_argument(kv, causal)) continue;
                int named = -1;
                for (int i = 1; i < 3 && kv->string; i++)
                    if (strcmp(kv->string, MHA_TENSOR_ARGS[i]) == 0 && cJSON_IsArray(kv)) named = i;
                if (named < 0) {
                    loom_set_error(c->err, LOOM_ERR_DATA, "%s: layer %s is called with the argument %s, which loom does not support",
                                   c->what, layer, kv->string ? kv->string : "?");
                    goto fail;
                }
                by_name[named] = kv;
            }
            cJSON *r = reference(c, t, layer);
            if (!r) goto fail;
            cJSON_AddItemToArray(refs, r);
            if (by_name[2] && !by_name[1]) {
                loom_set_error(c->err, LOOM_ERR_DATA, "%s: layer %s is called with a key but no value", c->what, layer);
                goto fail;
            }
            for (int i = 1; i < 3; i++) {
                if (!by_name[i]) continue;
                if (!(r = reference(c, by_name[i], layer))) goto fail;
                cJSON_AddItemToArray(refs, r);
            }
        }
        return refs;
    }
    loom_set_error(c->err, LOOM_ERR_DATA, "%s: layer %s: a call is neither Keras 2 nor Keras 3 shaped", c->what, layer);
fail:
    cJSON_Delete(refs);
    return NULL;
}

/* ---------------------------------------------------------------- models */

static loom_status add_alias(ctx *c, const char *name, int n, cJSON *const *hist) {
    if (c->n_aliases >= MAX_ALIASES || n > MAX_ALIAS_OUT)
        return loom_set_error(c->err, LOOM_ERR_DATA, "%s: too many nested models or outputs", c->what);
    alias *a = &c->aliases[c->n_aliases++];
    snprintf(a->name, sizeof a->name, "%s", name);
    a->n = n;
    for (int i = 0; i < n; i++) a->hist[i] = cJSON_Duplicate(hist[i], true);
    return LOOM_OK;
}

static const char *entry_name(const cJSON *lj) {
    const char *n = loom_json_str(lj, "name");
    return n ? n : loom_json_str(cJSON_GetObjectItemCaseSensitive(lj, "config"), "name");
}

static const char *entry_class(const cJSON *lj) {
    const char *s = loom_json_str(lj, "class_name");
    if (!s) return NULL;
    const char *gt = strrchr(s, '>');
    return gt ? gt + 1 : s;
}

static bool is_model_class(const char *cls) {
    return strcmp(cls, "Functional") == 0 || strcmp(cls, "Model") == 0 || strcmp(cls, "Sequential") == 0;
}

/* The path of the next member of a container list: snake-case of the class, _1, _2, ... */
typedef struct namer {
    char names[512][48];
    int counts[512];
    int n;
} namer;

static void next_path(namer *nm, const char *prefix, const char *cls, char *out, size_t len) {
    char snake[48];
    loom_keras_snake_case(cls, snake, sizeof snake);
    for (int i = 0; i < nm->n; i++)
        if (strcmp(nm->names[i], snake) == 0) {
            snprintf(out, len, "%s/%s_%d", prefix, snake, ++nm->counts[i]);
            return;
        }
    if (nm->n < 512) {
        snprintf(nm->names[nm->n], sizeof nm->names[0], "%s", snake);
        nm->counts[nm->n++] = 0;
    }
    snprintf(out, len, "%s/%s", prefix, snake);
}

static loom_status add_layer(ctx *c, const char *cls, const char *name, cJSON *cfg, cJSON *nodes, const char *k3,
                             const char *k2group, const char *k2prefix) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "class_name", cls);
    cJSON_AddStringToObject(e, "name", name);
    cJSON_AddItemToObject(e, "config", cfg);
    cJSON_AddItemToObject(e, "inbound_nodes", nodes ? nodes : cJSON_CreateArray());
    cJSON_AddStringToObject(e, LOOM_K3_PATH_KEY, k3);
    cJSON_AddStringToObject(e, LOOM_K2_GROUP_KEY, k2group);
    cJSON_AddStringToObject(e, LOOM_K2_PREFIX_KEY, k2prefix);
    cJSON_AddItemToArray(c->layers, e);
    return LOOM_OK;
}

static cJSON *one_node(cJSON *refs) {
    cJSON *nodes = cJSON_CreateArray(), *node = cJSON_CreateObject(), *args = cJSON_CreateArray();
    int n = cJSON_GetArraySize(refs);
    if (n == 1) {
        cJSON_AddItemToArray(args, tensor_json(cJSON_DetachItemFromArray(refs, 0)));
    } else {
        cJSON *list = cJSON_CreateArray();
        while (cJSON_GetArraySize(refs) > 0) cJSON_AddItemToArray(list, tensor_json(cJSON_DetachItemFromArray(refs, 0)));
        cJSON_AddItemToArray(args, list);
    }
    cJSON_Delete(refs);
    cJSON_AddItemToObject(node, "args", args);
    cJSON_AddObjectToObject(node, "kwargs");
    cJSON_AddItemToArray(nodes, node);
    return nodes;
}

/* The batch shape of an InputLayer (or of a Sequential model's first layer). */
static const cJSON *batch_shape_of(const cJSON *cfg) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(cfg, "batch_shape");
    if (!cJSON_IsArray(s)) s = cJSON_GetObjectItemCaseSensitive(cfg, "batch_input_shape");
    return cJSON_IsArray(s) ? s : NULL;
}

/* A None first per-sample axis (batch_shape [null, null, 16]) is a variable time axis
 * (LOOM_DIM_VARIABLE), kept as null; any other None becomes none_dim when the caller gave one
 * (which also fixes the time axis, as before variable lengths existed), else it is an error. */
static loom_status check_shape(ctx *c, const char *name, cJSON *shape) {
    int i = 0;
    cJSON *d;
    cJSON_ArrayForEach(d, shape) {
        if (i++ == 0) continue;
        if (cJSON_IsNull(d) && i == 2 && c->none_dim <= 0) continue;
        if (cJSON_IsNull(d) && c->none_dim > 0) {
            d->type = cJSON_Number;
            cJSON_SetNumberValue(d, c->none_dim);
        }
        if (!cJSON_IsNumber(d))
            return loom_set_error(c->err, LOOM_ERR_SHAPE,
                                  "%s: input %s has an unknown dimension %d (None): only the first (time) axis may "
                                  "be variable; import with loom_model_import_with and .none_dim set, or save the "
                                  "model with a fixed input shape",
                                  c->what, name, i - 1);
    }
    return LOOM_OK;
}

static loom_status add_input(ctx *c, const char *name, const cJSON *shape, const char *k3) {
    if (!shape) return loom_set_error(c->err, LOOM_ERR_DATA, "%s: input %s has no batch shape", c->what, name);
    const cJSON *b0 = cJSON_GetArrayItem(shape, 0);
    if (cJSON_IsNumber(b0) && b0->valuedouble >= 1 && b0->valuedouble <= (1 << 24) && b0->valuedouble == floor(b0->valuedouble))
        c->batch = (int)b0->valuedouble;
    cJSON *copy = cJSON_Duplicate(shape, true);
    if (copy && cJSON_GetArraySize(copy) > 0) cJSON_ReplaceItemInArray(copy, 0, cJSON_CreateNull()); /* kept in c->batch */
    loom_status s = check_shape(c, name, copy);
    if (s) {
        cJSON_Delete(copy);
        return s;
    }
    cJSON *cfg = cJSON_CreateObject();
    cJSON_AddStringToObject(cfg, "name", name);
    cJSON_AddItemToObject(cfg, "batch_shape", copy);
    return add_layer(c, "InputLayer", name, cfg, NULL, k3, name, name);
}

static loom_status model(ctx *c, const cJSON *root, const char *k3prefix, const char *k2group, int depth,
                         const cJSON *call_refs, const char *as_name, cJSON **in_out, cJSON **out_out);

/* One entry of a layer list (not an InputLayer): a layer, or a nested model to flatten. */
static loom_status layer_entry(ctx *c, const cJSON *lj, const char *cls, const char *name, cJSON *calls, const char *k3,
                               const char *k2group, int depth) {
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(lj, "config");
    if (is_model_class(cls)) {
        if (cJSON_GetArraySize(calls) != 1)
            return loom_set_error(c->err, LOOM_ERR_DATA, "%s: the nested model %s must be called exactly once", c->what, name);
        int causal = 0;
        cJSON *refs = call_inputs(c, cJSON_GetArrayItem(calls, 0), name, &causal);
        if (!refs) return c->err->code;
        cJSON *outs = NULL;
        /* Keras 2 keeps a nested model's weights in one group named after it */
        loom_status s = model(c, lj, k3, k2group ? k2group : name, depth + 1, refs, name, NULL, &outs);
        cJSON_Delete(refs);
        if (s) return s;
        cJSON *hist[MAX_ALIAS_OUT];
        int n = 0;
        const cJSON *o;
        cJSON_ArrayForEach(o, outs) if (n < MAX_ALIAS_OUT) hist[n++] = (cJSON *)o;
        s = add_alias(c, name, n, hist);
        cJSON_Delete(outs);
        return s;
    }
    cJSON *clean = NULL;
    loom_status s = check_config(c, name, cls, cfg, &clean);
    if (s) return s;
    if (strcmp(cls, "SyncBatchNormalization") == 0) { /* loom's BatchNormalization, synchronised */
        cls = "BatchNormalization";
        cJSON_DeleteItemFromObjectCaseSensitive(clean, "synchronized");
        cJSON_AddBoolToObject(clean, "synchronized", 1);
    }
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(clean, "return_state");
    if (cJSON_IsTrue(rs)) {
        if (c->n_states >= MAX_STATE_LAYERS) {
            cJSON_Delete(clean);
            return loom_set_error(c->err, LOOM_ERR_DATA, "%s: too many layers with return_state", c->what);
        }
        state_layer *sl = &c->states[c->n_states++];
        snprintf(sl->name, sizeof sl->name, "%s", name);
        sl->states = strcmp(cls, "LSTM") == 0 ? 2 : 1;
        sl->seq = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(clean, "return_sequences"));
        sl->made = 0;
    }
    cJSON *nodes = cJSON_CreateArray();
    const cJSON *call;
    int causal = -1; /* MultiHeadAttention's use_causal_mask, a call argument in Keras, loom's config */
    cJSON_ArrayForEach(call, calls) {
        int this_causal = 0;
        cJSON *refs = call_inputs(c, call, name, &this_causal);
        if (refs && causal >= 0 && this_causal != causal) {
            cJSON_Delete(refs);
            refs = NULL;
            refuse(c, name, cls, "use_causal_mask", "differs between the layer's calls: loom keeps one per layer");
        }
        if (refs && this_causal && strcmp(cls, "MultiHeadAttention") != 0) {
            cJSON_Delete(refs);
            refs = NULL;
            refuse(c, name, cls, "use_causal_mask", "is a call argument of MultiHeadAttention only");
        }
        causal = this_causal;
        if (!refs) {
            cJSON_Delete(nodes);
            cJSON_Delete(clean);
            return c->err->code;
        }
        cJSON *one = one_node(refs);
        cJSON_AddItemToArray(nodes, cJSON_DetachItemFromArray(one, 0));
        cJSON_Delete(one);
    }
    if (causal > 0) cJSON_AddBoolToObject(clean, "use_causal_mask", true);
    char prefix[LOOM_NAME_MAX + 2];
    snprintf(prefix, sizeof prefix, "%s/", name);
    return add_layer(c, cls, name, clean, nodes, k3, k2group ? k2group : name, k2group ? prefix : "");
}

/* Appends the model's layers. A nested model (call_refs given) takes its inputs from those
 * references; *out_out receives its output references. in_out/out_out of the top model: the
 * input_layers / output_layers lists. */
static loom_status model(ctx *c, const cJSON *root, const char *k3prefix, const char *k2group, int depth,
                         const cJSON *call_refs, const char *as_name, cJSON **in_out, cJSON **out_out) {
    if (depth > MAX_DEPTH) return loom_set_error(c->err, LOOM_ERR_DATA, "%s: models nested too deeply", c->what);
    const char *cls = entry_class(root);
    const cJSON *config = cJSON_GetObjectItemCaseSensitive(root, "config");
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(config, "layers");
    if (!cls || !is_model_class(cls) || !cJSON_IsArray(layers)) {
        return loom_set_error(c->err, LOOM_ERR_DATA, "%s: %s is not a Keras Sequential or Functional model", c->what,
                              as_name ? as_name : "the architecture");
    }
    if (cJSON_GetArraySize(layers) > 100000) return loom_set_error(c->err, LOOM_ERR_DATA, "%s: too many layers", c->what);
    namer *nm = calloc(1, sizeof *nm);
    if (!nm) return loom_set_error(c->err, LOOM_ERR_MEMORY, "%s: out of memory", c->what);
    char path[512];
    loom_status s = LOOM_OK;
    cJSON *ins = cJSON_CreateArray(), *outs = cJSON_CreateArray();
    if (strcmp(cls, "Sequential") == 0) {
        /* a chain: the input from an InputLayer or from the first layer's batch shape */
        cJSON *prev = NULL;
        int i = 0;
        const cJSON *lj;
        cJSON_ArrayForEach(lj, layers) {
            const char *lcls = entry_class(lj), *name = entry_name(lj);
            const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(lj, "config");
            if (!lcls || !name || !cJSON_IsObject(cfg)) {
                s = loom_set_error(c->err, LOOM_ERR_DATA, "%s: layer entry %d lacks class_name, name or config", c->what, i);
                break;
            }
            if (i++ == 0 && !call_refs) {
                const cJSON *shape = batch_shape_of(cfg);
                if (strcmp(lcls, "InputLayer") != 0 && !shape) {
                    const cJSON *bc = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "build_config"), "input_shape");
                    shape = cJSON_IsArray(bc) ? bc : NULL;
                }
                char in_name[LOOM_NAME_MAX + 8];
                snprintf(in_name, sizeof in_name, "%s", strcmp(lcls, "InputLayer") == 0 ? name : "");
                if (!in_name[0]) snprintf(in_name, sizeof in_name, "%.50s_input", name);
                if ((s = add_input(c, in_name, shape, ""))) break;
                prev = cJSON_CreateArray();
                cJSON_AddItemToArray(prev, cJSON_CreateString(in_name));
                cJSON_AddItemToArray(prev, cJSON_CreateNumber(0));
                cJSON_AddItemToArray(prev, cJSON_CreateNumber(0));
                cJSON_AddItemToArray(ins, cJSON_Duplicate(prev, true));
                if (strcmp(lcls, "InputLayer") == 0) continue;
            } else if (i == 1 && call_refs) {
                prev = cJSON_Duplicate(cJSON_GetArrayItem(call_refs, 0), true);
                if (strcmp(lcls, "InputLayer") == 0) continue;
            }
            if (strcmp(lcls, "InputLayer") == 0) continue;
            next_path(nm, k3prefix, lcls, path, sizeof path);
            /* a Keras 3 call node on the previous layer's output */
            cJSON *calls = cJSON_CreateArray(), *node = cJSON_CreateObject(), *args = cJSON_CreateArray();
            cJSON_AddItemToArray(args, tensor_json(prev));
            prev = NULL;
            cJSON_AddItemToObject(node, "args", args);
            cJSON_AddObjectToObject(node, "kwargs");
            cJSON_AddItemToArray(calls, node);
            s = layer_entry(c, lj, lcls, name, calls, path, k2group, depth);
            cJSON_Delete(calls);
            if (s) break;
            /* the layer's output, through aliases and return_state outputs */
            cJSON *raw = cJSON_CreateArray();
            cJSON_AddItemToArray(raw, cJSON_CreateString(name));
            cJSON_AddItemToArray(raw, cJSON_CreateNumber(0));
            cJSON_AddItemToArray(raw, cJSON_CreateNumber(0));
            prev = reference(c, raw, name);
            cJSON_Delete(raw);
            if (!prev) {
                s = c->err->code;
                break;
            }
        }
        if (!s && !prev) s = loom_set_error(c->err, LOOM_ERR_DATA, "%s: the Sequential model has no layers", c->what);
        if (!s) cJSON_AddItemToArray(outs, prev);
        else cJSON_Delete(prev);
    } else {
        int i = 0, n_in = 0;
        const cJSON *lj;
        cJSON_ArrayForEach(lj, layers) {
            const char *lcls = entry_class(lj), *name = entry_name(lj);
            const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(lj, "config");
            if (!lcls || !name || !cJSON_IsObject(cfg) || strlen(name) >= LOOM_NAME_MAX) {
                s = loom_set_error(c->err, LOOM_ERR_DATA, "%s: layer entry %d lacks class_name, name or config", c->what, i);
                break;
            }
            i++;
            next_path(nm, k3prefix, lcls, path, sizeof path);
            if (strcmp(lcls, "InputLayer") == 0) {
                if (call_refs) { /* a nested model's input: the tensor it was called on */
                    const cJSON *r = cJSON_GetArrayItem(call_refs, n_in++);
                    if (!r) {
                        s = loom_set_error(c->err, LOOM_ERR_DATA, "%s: the nested model %s gets fewer inputs than it has",
                                           c->what, as_name);
                        break;
                    }
                    cJSON *h = (cJSON *)r;
                    if ((s = add_alias(c, name, 1, &h))) break;
                } else if ((s = add_input(c, name, batch_shape_of(cfg), path))) {
                    break;
                }
                continue;
            }
            const cJSON *calls = cJSON_GetObjectItemCaseSensitive(lj, "inbound_nodes");
            if (!cJSON_IsArray(calls) || cJSON_GetArraySize(calls) == 0) {
                s = loom_set_error(c->err, LOOM_ERR_DATA, "%s: layer %s is never called", c->what, name);
                break;
            }
            if ((s = layer_entry(c, lj, lcls, name, (cJSON *)calls, path, k2group, depth))) break;
        }
        const char *lists[2] = {"input_layers", "output_layers"};
        for (int k = 0; k < 2 && !s; k++) {
            const cJSON *list = cJSON_GetObjectItemCaseSensitive(config, lists[k]);
            /* one [layer, node, tensor] alone may stand for the list (Keras 3, one input) */
            if (cJSON_IsArray(list) && cJSON_IsString(cJSON_GetArrayItem(list, 0))) {
                cJSON *r = reference(c, list, lists[k]);
                if (!r) s = c->err->code;
                else cJSON_AddItemToArray(k ? outs : ins, r);
                continue;
            }
            const cJSON *t;
            cJSON_ArrayForEach(t, list) {
                cJSON *r = reference(c, t, lists[k]);
                if (!r) {
                    s = c->err->code;
                    break;
                }
                cJSON_AddItemToArray(k ? outs : ins, r);
            }
        }
    }
    free(nm);
    if (!s && in_out) *in_out = ins;
    else cJSON_Delete(ins);
    if (!s && out_out) *out_out = outs;
    else cJSON_Delete(outs);
    return s;
}

cJSON *loom_keras_normalize(const cJSON *root, int keras_major, int none_dim, const char *what, loom_error *err) {
    ctx c = {.major = keras_major, .none_dim = none_dim, .what = what, .err = err, .layers = cJSON_CreateArray()};
    c.aliases = calloc(MAX_ALIASES, sizeof *c.aliases);
    cJSON *ins = NULL, *outs = NULL, *result = NULL;
    if (!c.layers || !c.aliases) {
        loom_set_error(err, LOOM_ERR_MEMORY, "%s: out of memory", what);
    } else if (model(&c, root, "layers", NULL, 0, NULL, NULL, &ins, &outs) == LOOM_OK) {
        result = cJSON_CreateObject();
        cJSON_AddStringToObject(result, "class_name", "Functional");
        cJSON *cfg = cJSON_AddObjectToObject(result, "config");
        const char *name = loom_json_str(cJSON_GetObjectItemCaseSensitive(root, "config"), "name");
        cJSON_AddStringToObject(cfg, "name", name ? name : "model");
        cJSON_AddItemToObject(cfg, "layers", c.layers);
        c.layers = NULL;
        cJSON_AddItemToObject(cfg, "input_layers", ins);
        cJSON_AddItemToObject(cfg, "output_layers", outs);
        ins = outs = NULL;
    }
    cJSON_Delete(ins);
    cJSON_Delete(outs);
    cJSON_Delete(c.layers);
    if (c.aliases)
        for (int i = 0; i < c.n_aliases; i++)
            for (int k = 0; k < c.aliases[i].n; k++) cJSON_Delete(c.aliases[i].hist[k]);
    free(c.aliases);
    return result;
}
