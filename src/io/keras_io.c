/* keras_io.c — Keras 3 .keras, Keras 2 .h5 and .weights.h5 files in and out (keras_io.h).
 *
 * Import: the config (config.json in the zip, the model_config attribute of an .h5) goes through
 * keras_config.c into model_json.c's reader; the weights are then read into a scratch copy of the
 * parameters, every dataset's shape checked against the layer before it is read, and committed
 * only when every layer matched. Keras 3 files name a layer's group by its class
 * (layers/<snake_case class>[_<k>], k counting per class in the layer list), with the variables
 * of wrapped layers below it: a recurrent layer's under cell/, a Bidirectional's under
 * forward_layer/cell/ and backward_layer/cell/, a TimeDistributed's under layer/. Keras 2 files
 * keep model_weights/<layer>/ with the order in its weight_names attribute.
 *
 * Export writes the same Keras 3 layout, so import -> export -> import keeps every bit. */
#include "io/keras_io.h"
#include "io/keras_config.h"
#include "io/keras_h5.h"
#include "io/keras_zip.h"
#include "io/model_json.h"
#include "layers/layers.h"
#include "layers/rnn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CONFIG_BYTES ((size_t)64 << 20)
#define MAX_WEIGHTS_BYTES ((size_t)1 << 34)
#define PATH_LEN 400

/* ---------------------------------------------------------------- where a layer's variables are */

/* MultiHeadAttention's EinsumDense sub-layers as Keras 3 saves them (its query_dense, key_dense,
 * value_dense and output_dense properties: saving_lib walks public attributes before private
 * ones), in loom's weight order. */
static const char *const MHA_PARTS[4] = {"query_dense", "key_dense", "value_dense", "output_dense"};

/* The dataset paths of layer L's weights below its group p, in L's weight order. Returns the
 * count, or -1 for a layer whose Keras layout loom does not map. */
static int var_paths(const loom_layer *L, const char *p, char (*out)[PATH_LEN]) {
    const loom_op *op = L->op;
    if (op == &loom_op_multi_head_attention) { /* per sub-layer: kernel, then bias (use_bias) */
        int per = L->n_weights / 4, n = 0; /* 2 with use_bias, else 1 */
        for (int s = 0; s < 4; s++)
            for (int i = 0; i < per; i++) snprintf(out[n++], PATH_LEN, "%s/%s/vars/%d", p, MHA_PARTS[s], i);
        return n;
    }
    if (op == &loom_op_bidirectional) {
        int nf = L->inner[0]->n_weights, nb = L->inner[1]->n_weights;
        for (int i = 0; i < nf; i++) snprintf(out[i], PATH_LEN, "%s/forward_layer/cell/vars/%d", p, i);
        for (int i = 0; i < nb; i++) snprintf(out[nf + i], PATH_LEN, "%s/backward_layer/cell/vars/%d", p, i);
        return nf + nb;
    }
    const char *mid = "";
    if (op == &loom_op_time_distributed) mid = loom_is_rnn_op(L->inner[0]->op) ? "/layer/cell" : "/layer";
    else if (loom_is_rnn_op(op)) mid = "/cell";
    for (int i = 0; i < L->n_weights; i++) snprintf(out[i], PATH_LEN, "%s%s/vars/%d", p, mid, i);
    return L->n_weights;
}

/* The groups of a layer's variables (every one Keras 3 makes, empty ones included). */
static int var_groups(const loom_layer *L, const char *p, char (*out)[PATH_LEN]) {
    int n = 0;
    snprintf(out[n++], PATH_LEN, "%s/vars", p);
    if (L->op == &loom_op_bidirectional) {
        snprintf(out[n++], PATH_LEN, "%s/forward_layer/vars", p);
        snprintf(out[n++], PATH_LEN, "%s/forward_layer/cell/vars", p);
        snprintf(out[n++], PATH_LEN, "%s/backward_layer/vars", p);
        snprintf(out[n++], PATH_LEN, "%s/backward_layer/cell/vars", p);
    } else if (L->op == &loom_op_time_distributed) {
        snprintf(out[n++], PATH_LEN, "%s/layer/vars", p);
        if (loom_is_rnn_op(L->inner[0]->op)) snprintf(out[n++], PATH_LEN, "%s/layer/cell/vars", p);
    } else if (loom_is_rnn_op(L->op)) {
        snprintf(out[n++], PATH_LEN, "%s/cell/vars", p);
    } else if (L->op == &loom_op_multi_head_attention) {
        for (int s = 0; s < 4; s++) snprintf(out[n++], PATH_LEN, "%s/%s/vars", p, MHA_PARTS[s]);
        /* its private Softmax and Dropout layers, which Keras walks last and saves empty */
        snprintf(out[n++], PATH_LEN, "%s/_softmax/vars", p);
        snprintf(out[n++], PATH_LEN, "%s/_dropout_layer/vars", p);
    }
    return n;
}

/* Keras 3 group paths for a model's layers, in m->layers order (as written by export). */
static void model_k3_paths(const loom_model *m, char (*paths)[PATH_LEN]) {
    char names[256][48];
    int counts[256], n = 0;
    for (int i = 0; i < m->n_layers; i++) {
        char snake[48];
        if (m->layers[i]->op == &loom_op_recurrent_output) { /* not a Keras layer: return_state's pieces */
            paths[i][0] = 0;
            continue;
        }
        loom_keras_snake_case(m->layers[i]->op->class_name, snake, sizeof snake);
        int k = -1;
        for (int j = 0; j < n; j++)
            if (strcmp(names[j], snake) == 0) k = ++counts[j];
        if (k < 0 && n < 256) {
            snprintf(names[n], sizeof names[0], "%s", snake);
            counts[n++] = 0;
        }
        if (k <= 0) snprintf(paths[i], PATH_LEN, "layers/%s", snake);
        else snprintf(paths[i], PATH_LEN, "layers/%s_%d", snake, k);
    }
}

/* ---------------------------------------------------------------- reading weights */

typedef struct weight_source {
    const char *layer;
    char k3[PATH_LEN];     /* Keras 3 group, or "" */
    char k2[PATH_LEN];     /* Keras 2 group (under model_weights/ or the root), or "" */
    char prefix[LOOM_NAME_MAX + 2]; /* Keras 2: weight names of this layer start so ("" = all) */
} weight_source;

static loom_status read_k3_layer(loom_h5 *h, const loom_layer *L, const char *group, float *params, loom_error *err,
                                 const char *what) {
    char (*paths)[PATH_LEN] = calloc(2 * LOOM_MAX_WEIGHTS, PATH_LEN);
    if (!paths) return loom_set_error(err, LOOM_ERR_MEMORY, "%s: out of memory", what);
    loom_status s = LOOM_OK;
    int n = var_paths(L, group, paths);
    if (n < 0) {
        s = loom_set_error(err, LOOM_ERR_STATE, "%s: layer %s (%s): loom does not map this class's Keras weights", what,
                           L->name, L->op->class_name);
    } else if (!loom_h5_exists(h, group)) {
        s = loom_set_error(err, LOOM_ERR_DATA, "%s: layer %s: the weights file has no group %s", what, L->name, group);
    } else {
        for (int w = 0; w < n && !s; w++)
            s = loom_h5_read_floats(h, paths[w], L->weights[w].shape.rank, L->weights[w].shape.dims,
                                    params + L->weights[w].offset, err);
        /* nothing left over: a variable loom would not read means another architecture */
        char groups[8][PATH_LEN];
        int ng = var_groups(L, group, groups);
        int total = 0;
        for (int g = 0; g < ng && !s; g++) {
            int k = loom_h5_group_size(h, groups[g]);
            total += k > 0 ? k : 0;
        }
        if (!s && total != n)
            s = loom_set_error(err, LOOM_ERR_DATA, "%s: layer %s (%s): the file holds %d variables under %s, the layer has %d",
                               what, L->name, L->op->class_name, total, group, n);
    }
    free(paths);
    return s;
}

static loom_status read_k2_layer(loom_h5 *h, const loom_layer *L, const weight_source *src, float *params,
                                 loom_error *err, const char *what) {
    char **names = NULL;
    int n = loom_h5_attr_strings(h, src->k2, "weight_names", &names, err);
    if (n < 0) return err->code;
    loom_status s = LOOM_OK;
    int used = 0;
    size_t plen = strlen(src->prefix);
    for (int i = 0; i < n && !s; i++) {
        if (plen && strncmp(names[i], src->prefix, plen) != 0) continue;
        if (used >= L->n_weights) {
            used++;
            continue;
        }
        char path[PATH_LEN * 2];
        snprintf(path, sizeof path, "%s/%s", src->k2, names[i]);
        const loom_weight *w = &L->weights[used++];
        s = loom_h5_read_floats(h, path, w->shape.rank, w->shape.dims, params + w->offset, err);
    }
    if (!s && used != L->n_weights)
        s = loom_set_error(err, LOOM_ERR_DATA, "%s: layer %s (%s): the file has %d weights for it, the layer has %d", what,
                           L->name, L->op->class_name, used, L->n_weights);
    loom_h5_free_strings(names, n);
    return s;
}

/* Reads every source into a copy of m's parameters; commits only if all succeed. */
static loom_status read_weights(loom_model *m, loom_h5 *h, const weight_source *srcs, int n, const char *what,
                                loom_error *err) {
    float *next = malloc((m->n_params ? m->n_params : 1) * sizeof *next);
    if (!next) return loom_set_error(err, LOOM_ERR_MEMORY, "%s: out of memory", what);
    memcpy(next, m->params, m->n_params * sizeof *next);
    loom_status s = LOOM_OK;
    for (int i = 0; i < n && !s; i++) {
        loom_layer *L = loom_model_find_layer(m, srcs[i].layer);
        if (!L || !L->n_weights) continue;
        s = srcs[i].k3[0] ? read_k3_layer(h, L, srcs[i].k3, next, err, what) : read_k2_layer(h, L, &srcs[i], next, err, what);
    }
    if (!s) memcpy(m->params, next, m->n_params * sizeof *next);
    free(next);
    return s;
}

/* ---------------------------------------------------------------- compile settings */

/* Keras's loss name (a string, or an object's class) as loom's: snake case of a class. */
static void loss_name(const cJSON *v, char *out, size_t n, loom_loss *l) {
    out[0] = 0;
    if (cJSON_IsString(v)) {
        snprintf(out, n, "%s", v->valuestring);
        return;
    }
    const char *cls = loom_json_str(v, "class_name");
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(v, "config");
    if (!cls) return;
    const char *gt = strrchr(cls, '>');
    loom_keras_snake_case(gt ? gt + 1 : cls, out, n);
    l->from_logits = loom_json_flag(cfg, "from_logits", false);
    l->label_smoothing = (float)loom_json_num(cfg, "label_smoothing", 0);
    if (strcmp(out, "huber") == 0) l->delta = (float)loom_json_num(cfg, "delta", 1);
}

static bool known_metric(const char *name) {
    static const char *const KNOWN[] = {"accuracy", "acc", "binary_accuracy", "categorical_accuracy",
                                        "sparse_categorical_accuracy", "top_k_categorical_accuracy",
                                        "sparse_top_k_categorical_accuracy", "mae", "mse", "rmse",
                                        "mean_absolute_error", "mean_squared_error", "root_mean_squared_error"};
    for (size_t i = 0; i < sizeof KNOWN / sizeof *KNOWN; i++)
        if (strcmp(name, KNOWN[i]) == 0) return true;
    return false;
}

static void note(loom_model *m, const char *fmt, const char *a, const char *b) {
    size_t used = strlen(m->compile_note);
    if (used + 8 >= sizeof m->compile_note) return;
    if (used) snprintf(m->compile_note + used, sizeof m->compile_note - used, "; ");
    used = strlen(m->compile_note);
    snprintf(m->compile_note + used, sizeof m->compile_note - used, fmt, a, b);
}

/* The optimizer of a Keras 2 optimizer_config / Keras 3 compile_config optimizer object. */
static bool keras_optimizer(const cJSON *o, loom_optimizer *out, loom_model *m) {
    const char *cls = loom_json_str(o, "class_name");
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(o, "config");
    if (!cls) return false;
    const char *gt = strrchr(cls, '>');
    char name[64];
    loom_keras_snake_case(gt ? gt + 1 : cls, name, sizeof name);
    /* Keras 3 learning_rate, Keras 2 lr, TensorFlow.js learningRate (and its beta1 / beta2) */
    const cJSON *lr = cJSON_GetObjectItemCaseSensitive(cfg, "learning_rate");
    if (!lr) lr = cJSON_GetObjectItemCaseSensitive(cfg, "lr");
    if (!lr) lr = cJSON_GetObjectItemCaseSensitive(cfg, "learningRate");
    if (!cJSON_IsNumber(lr) || !(lr->valuedouble > 0 && lr->valuedouble < 1e6)) {
        note(m, "the optimizer %s has a learning rate loom cannot read (a schedule object?)%s", cls, "");
        return false;
    }
    float rate = (float)lr->valuedouble;
    if (strcmp(name, "adam") == 0) *out = loom_adam(rate);
    else if (strcmp(name, "adam_w") == 0 || strcmp(name, "adamw") == 0) *out = loom_adamw(rate, (float)loom_json_num(cfg, "weight_decay", 0.004));
    else if (strcmp(name, "sgd") == 0) *out = loom_sgd(rate, (float)loom_json_num(cfg, "momentum", 0), loom_json_flag(cfg, "nesterov", false));
    else if (strcmp(name, "rmsprop") == 0 || strcmp(name, "r_m_sprop") == 0) *out = loom_rmsprop(rate);
    else if (strcmp(name, "adagrad") == 0) *out = loom_adagrad(rate);
    else {
        note(m, "the optimizer %s is not one loom has%s", cls, "");
        return false;
    }
    out->beta_1 = (float)loom_json_num(cfg, "beta_1", loom_json_num(cfg, "beta1", out->beta_1));
    out->beta_2 = (float)loom_json_num(cfg, "beta_2", loom_json_num(cfg, "beta2", out->beta_2));
    out->epsilon = (float)loom_json_num(cfg, "epsilon", out->epsilon);
    out->amsgrad = loom_json_flag(cfg, "amsgrad", out->amsgrad);
    out->rho = (float)loom_json_num(cfg, "rho", out->rho);
    out->clipnorm = (float)loom_json_num(cfg, "clipnorm", 0);
    out->global_clipnorm = (float)loom_json_num(cfg, "global_clipnorm", 0);
    out->clipvalue = (float)loom_json_num(cfg, "clipvalue", 0);
    if (strcmp(name, "adam") != 0 && strcmp(name, "adam_w") != 0 && strcmp(name, "adamw") != 0) out->weight_decay = (float)loom_json_num(cfg, "weight_decay", 0);
    if (loom_json_num(cfg, "decay", 0) != 0) note(m, "the optimizer %s has a Keras 2 decay, which loom does not have%s", cls, "");
    return true;
}

/* Keras 2 training_config / Keras 3 compile_config -> loom_compile. A loss or optimizer loom does
 * not have leaves the model uncompiled, with m->compile_note saying why and what to do; metrics
 * loom does not have are left out and named in the note. */
void loom_keras_compile(loom_model *m, const cJSON *tc) {
    const cJSON *loss = cJSON_GetObjectItemCaseSensitive(tc, "loss");
    if (!loss || cJSON_IsNull(loss)) return;
    int K = m->n_outputs;
    loom_loss losses[LOOM_MAX_OUTPUTS];
    char names[LOOM_MAX_OUTPUTS][64];
    const char *outs[LOOM_MAX_OUTPUTS];
    memset(losses, 0, sizeof losses);
    bool ok = true;
    for (int k = 0; k < K; k++) {
        const char *out = m->outputs[k].name;
        outs[k] = out;
        const cJSON *v = loss;
        if (cJSON_IsArray(loss)) v = cJSON_GetArrayItem(loss, k);
        else if (cJSON_IsObject(loss) && !cJSON_GetObjectItemCaseSensitive(loss, "class_name")) v = cJSON_GetObjectItemCaseSensitive(loss, out);
        if (!v || cJSON_IsNull(v)) {
            losses[k].name = NULL;
            continue;
        }
        loss_name(v, names[k], sizeof names[k], &losses[k]);
        losses[k].name = names[k];
        if (!names[k][0] || !loom_loss_known(names[k])) {
            char buf[200];
            snprintf(buf, sizeof buf, "%.60s", names[k][0] ? names[k] : "(unreadable)");
            note(m,
                 "output %s: the file's loss \"%s\" is not a loss loom knows; call loom_compile with, for this output, "
                 "a loom_loss whose .fn is your C implementation of it (and .name the same name)",
                 out, buf);
            ok = false;
        }
    }
    float w[LOOM_MAX_OUTPUTS];
    int nw = 0;
    const cJSON *lw = cJSON_GetObjectItemCaseSensitive(tc, "loss_weights");
    if (cJSON_IsArray(lw) || cJSON_IsObject(lw)) {
        for (int k = 0; k < K; k++) {
            const cJSON *x = cJSON_IsArray(lw) ? cJSON_GetArrayItem(lw, k) : cJSON_GetObjectItemCaseSensitive(lw, outs[k]);
            w[k] = cJSON_IsNumber(x) && isfinite(x->valuedouble) && fabs(x->valuedouble) < 1e30 ? (float)x->valuedouble : 1.0f;
        }
        nw = K;
    }
    loom_metric_spec ms[64];
    int nm = 0;
    const cJSON *metrics = cJSON_GetObjectItemCaseSensitive(tc, "metrics");
    const cJSON *first = cJSON_GetArrayItem(metrics, 0);
    bool per_output = cJSON_IsArray(metrics) && (cJSON_IsArray(first) || cJSON_IsNull(first));
    for (int k = 0; k < K; k++) {
        /* a dict by output name, a list per output, or one flat list for every output (Keras) */
        const cJSON *list = cJSON_IsObject(metrics) ? cJSON_GetObjectItemCaseSensitive(metrics, outs[k])
                            : per_output            ? cJSON_GetArrayItem(metrics, k)
                                                    : metrics;
        const cJSON *one = cJSON_IsArray(list) ? list->child : list;
        for (; one; one = cJSON_IsArray(list) ? one->next : NULL) {
            char name[64] = "";
            const cJSON *cfg = NULL;
            if (cJSON_IsString(one)) snprintf(name, sizeof name, "%s", one->valuestring);
            else if (cJSON_IsObject(one)) {
                cfg = cJSON_GetObjectItemCaseSensitive(one, "config");
                const char *cls = loom_json_str(one, "class_name");
                if (cls) loom_keras_snake_case(cls, name, sizeof name);
            } else {
                continue;
            }
            bool default_threshold = !cfg || loom_json_num(cfg, "threshold", 0.5) == 0.5;
            if (!name[0] || !known_metric(name) || !default_threshold) {
                note(m, "metric %s of output %s is not one loom has (left out)", name[0] ? name : "?", outs[k]);
                continue;
            }
            if (nm < 64) {
                char *copy = malloc(strlen(name) + 1);
                if (!copy) continue;
                strcpy(copy, name);
                ms[nm].output = K > 1 ? outs[k] : NULL;
                ms[nm++].name = copy;
            }
        }
    }
    loom_optimizer opt = loom_adam(0.001f);
    const cJSON *oj = cJSON_GetObjectItemCaseSensitive(tc, "optimizer_config");
    if (!oj) oj = cJSON_GetObjectItemCaseSensitive(tc, "optimizer");
    if (cJSON_IsString(oj)) {
        cJSON *tmp = cJSON_CreateObject();
        cJSON_AddStringToObject(tmp, "class_name", oj->valuestring);
        cJSON_AddNumberToObject(cJSON_AddObjectToObject(tmp, "config"), "learning_rate",
                                strcmp(oj->valuestring, "sgd") == 0 ? 0.01 : 0.001);
        if (!keras_optimizer(tmp, &opt, m)) ok = false;
        cJSON_Delete(tmp);
    } else if (oj && !keras_optimizer(oj, &opt, m)) {
        ok = false;
    }
    if (ok) {
        loom_compile_config cfg = {.n_losses = K, .losses = losses, .n_loss_weights = nw, .loss_weights = w,
                                   .n_metrics = nm, .metrics = ms, .optimizer = opt};
        if (loom_compile(m, &cfg) != LOOM_OK) {
            char msg[300];
            snprintf(msg, sizeof msg, "%.290s", loom_model_error(m));
            note(m, "the file's compile settings were refused: %s%s", msg, "");
        }
    }
    for (int i = 0; i < nm; i++) free((void *)ms[i].name);
}

/* ---------------------------------------------------------------- import */

static int keras_major(const char *version) {
    if (!version) return 3;
    long v = strtol(version, NULL, 10);
    return v >= 1 && v <= 2 ? 2 : 3;
}

/* The model from a normalised config; weight sources from its entries. */
static loom_model *build(const cJSON *norm, const char *what, weight_source **srcs, int *n_src, loom_error *err) {
    loom_model *m = loom_arch_from_json(norm, what, false, err);
    if (!m) return NULL;
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(norm, "config"), "layers");
    int n = cJSON_GetArraySize(layers);
    *srcs = calloc((size_t)(n ? n : 1), sizeof **srcs);
    if (!*srcs) {
        loom_model_free(m);
        loom_set_error(err, LOOM_ERR_MEMORY, "%s: out of memory", what);
        return NULL;
    }
    *n_src = n;
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(layers, i);
        weight_source *s = &(*srcs)[i];
        s->layer = loom_json_str(e, "name");
        const char *k3 = loom_json_str(e, LOOM_K3_PATH_KEY), *k2 = loom_json_str(e, LOOM_K2_GROUP_KEY),
                   *pre = loom_json_str(e, LOOM_K2_PREFIX_KEY);
        snprintf(s->k3, sizeof s->k3, "%s", k3 ? k3 : "");
        snprintf(s->k2, sizeof s->k2, "%s", k2 ? k2 : "");
        snprintf(s->prefix, sizeof s->prefix, "%s", pre ? pre : "");
    }
    return m;
}

static cJSON *parse_json(const unsigned char *text, size_t len, const char *what, const char *member, loom_error *err) {
    cJSON *j = cJSON_ParseWithLength((const char *)text, len);
    if (!j) loom_set_error(err, LOOM_ERR_DATA, "%s: %s is not valid JSON", what, member);
    return j;
}

static loom_model *import_zip(const unsigned char *data, size_t size, const char *what, int none_dim, loom_error *err) {
    unsigned char *cfg_text = NULL, *meta_text = NULL, *weights = NULL;
    size_t cfg_len = 0, meta_len = 0, w_len = 0;
    loom_model *m = NULL;
    cJSON *cfg = NULL, *meta = NULL, *norm = NULL;
    weight_source *srcs = NULL;
    int n_src = 0;
    loom_h5 *h = NULL;
    int rc = loom_zip_member(data, size, "config.json", MAX_CONFIG_BYTES, &cfg_text, &cfg_len, what, err);
    if (rc <= 0) {
        if (rc == 0) loom_set_error(err, LOOM_ERR_DATA, "%s: a zip without config.json is not a Keras 3 .keras file", what);
        goto done;
    }
    if (loom_zip_member(data, size, "metadata.json", MAX_CONFIG_BYTES, &meta_text, &meta_len, what, err) < 0) goto done;
    rc = loom_zip_member(data, size, "model.weights.h5", MAX_WEIGHTS_BYTES, &weights, &w_len, what, err);
    if (rc < 0) goto done;
    if (!(cfg = parse_json(cfg_text, cfg_len, what, "config.json", err))) goto done;
    if (meta_text && !(meta = parse_json(meta_text, meta_len, what, "metadata.json", err))) goto done;
    int major = keras_major(loom_json_str(meta, "keras_version"));
    if (!(norm = loom_keras_normalize(cfg, major, none_dim, what, err))) goto done;
    if (!(m = build(norm, what, &srcs, &n_src, err))) goto done;
    if (rc == 1 && m->n_params) {
        if (!(h = loom_h5_open_memory(weights, w_len, what, err)) || read_weights(m, h, srcs, n_src, what, err)) {
            loom_model_free(m);
            m = NULL;
            goto done;
        }
    } else if (rc == 0 && m->n_params) {
        loom_set_error(err, LOOM_ERR_DATA, "%s: the archive has no model.weights.h5", what);
        loom_model_free(m);
        m = NULL;
        goto done;
    }
    const cJSON *cc = cJSON_GetObjectItemCaseSensitive(cfg, "compile_config");
    if (cJSON_IsObject(cc)) loom_keras_compile(m, cc);
done:
    loom_h5_close(h);
    free(srcs);
    cJSON_Delete(norm);
    cJSON_Delete(meta);
    cJSON_Delete(cfg);
    free(cfg_text);
    free(meta_text);
    free(weights);
    return m;
}

static loom_model *import_h5(const unsigned char *data, size_t size, const char *what, int none_dim, loom_error *err) {
    loom_h5 *h = loom_h5_open_memory(data, size, what, err);
    if (!h) return NULL;
    loom_model *m = NULL;
    cJSON *cfg = NULL, *norm = NULL, *tc = NULL;
    weight_source *srcs = NULL;
    int n_src = 0;
    char *mc = loom_h5_attr_string(h, "/", "model_config", err);
    char *version = loom_h5_attr_string(h, "/", "keras_version", err);
    char *train = loom_h5_attr_string(h, "/", "training_config", err);
    if (!mc) {
        if (!err->code)
            loom_set_error(err, LOOM_ERR_DATA,
                           "%s: an HDF5 file without a model_config attribute holds weights only: build the model "
                           "and use loom_load_weights",
                           what);
        goto done;
    }
    if (!(cfg = parse_json((unsigned char *)mc, strlen(mc), what, "model_config", err))) goto done;
    if (!(norm = loom_keras_normalize(cfg, keras_major(version), none_dim, what, err))) goto done;
    if (!(m = build(norm, what, &srcs, &n_src, err))) goto done;
    const char *root = loom_h5_exists(h, "model_weights") ? "model_weights" : "";
    for (int i = 0; i < n_src; i++) {
        char g[PATH_LEN];
        /* k2 holds a layer name (< LOOM_NAME_MAX) */
        snprintf(g, sizeof g, "%s%s%.*s", root, root[0] ? "/" : "", LOOM_NAME_MAX, srcs[i].k2);
        snprintf(srcs[i].k2, sizeof srcs[i].k2, "%s", g);
        srcs[i].k3[0] = 0;
    }
    if (read_weights(m, h, srcs, n_src, what, err)) {
        loom_model_free(m);
        m = NULL;
        goto done;
    }
    if (train && (tc = cJSON_Parse(train)) && cJSON_IsObject(tc)) loom_keras_compile(m, tc);
done:
    free(mc);
    free(version);
    free(train);
    free(srcs);
    cJSON_Delete(tc);
    cJSON_Delete(norm);
    cJSON_Delete(cfg);
    loom_h5_close(h);
    return m;
}

loom_model *loom_keras_import(const unsigned char *data, size_t size, const char *what, int none_dim,
                              loom_error *err) {
    if (loom_zip_signature(data, size)) return import_zip(data, size, what, none_dim, err);
    if (loom_h5_signature(data, size)) return import_h5(data, size, what, none_dim, err);
    /* a bare Keras JSON config (Model.to_json()) */
    cJSON *j = parse_json(data, size, what, "the file", err);
    if (!j) return NULL;
    loom_model *m = NULL;
    {
        cJSON *norm = loom_keras_normalize(j, 3, none_dim, what, err);
        weight_source *srcs = NULL;
        int n = 0;
        if (norm) m = build(norm, what, &srcs, &n, err);
        const cJSON *cc = cJSON_GetObjectItemCaseSensitive(j, "compile_config");
        if (m && cJSON_IsObject(cc)) loom_keras_compile(m, cc);
        free(srcs);
        cJSON_Delete(norm);
    }
    cJSON_Delete(j);
    return m;
}

/* ---------------------------------------------------------------- weights-only load */

loom_status loom_keras_load_weights(loom_model *m, const unsigned char *data, size_t size, const char *what,
                                    loom_error *err) {
    loom_h5 *h = loom_h5_open_memory(data, size, what, err);
    if (!h) return err->code;
    weight_source *srcs = calloc((size_t)m->n_layers + 1, sizeof *srcs);
    char (*paths)[PATH_LEN] = calloc((size_t)m->n_layers + 1, PATH_LEN);
    loom_status s = LOOM_OK;
    if (!srcs || !paths) {
        s = loom_set_error(err, LOOM_ERR_MEMORY, "%s: out of memory", what);
        goto done;
    }
    bool k3 = loom_h5_exists(h, "layers");
    const char *root = loom_h5_exists(h, "model_weights") ? "model_weights/" : "";
    if (!k3 && !loom_h5_exists(h, root[0] ? "model_weights" : "/")) {
        s = loom_set_error(err, LOOM_ERR_DATA, "%s: no Keras weights in this HDF5 file", what);
        goto done;
    }
    model_k3_paths(m, paths);
    char problems[LOOM_ERR_MAX] = "";
    int n_bad = 0;
    /* every layer is read once into scratch first, so that every mismatch is named */
    float *scratch = calloc(m->n_params ? m->n_params : 1, sizeof *scratch);
    if (!scratch) {
        s = loom_set_error(err, LOOM_ERR_MEMORY, "%s: out of memory", what);
        goto done;
    }
    for (int i = 0; i < m->n_layers; i++) {
        const loom_layer *L = m->layers[i];
        srcs[i].layer = L->name;
        if (k3 && !paths[i][0]) continue;
        if (k3) snprintf(srcs[i].k3, PATH_LEN, "%s", paths[i]);
        else snprintf(srcs[i].k2, PATH_LEN, "%s%s", root, L->name);
        if (!L->n_weights) continue;
        loom_error e1 = {0};
        loom_status r = k3 ? read_k3_layer(h, L, srcs[i].k3, scratch, &e1, what) : read_k2_layer(h, L, &srcs[i], scratch, &e1, what);
        if (r) {
            size_t used = strlen(problems);
            const char *msg = strncmp(e1.msg, what, strlen(what)) == 0 ? e1.msg + strlen(what) + 2 : e1.msg;
            snprintf(problems + used, sizeof problems - used, "%slayer %s: %.200s", n_bad ? "; " : "", L->name, msg);
            n_bad++;
        }
    }
    free(scratch);
    if (n_bad) {
        s = loom_set_error(err, LOOM_ERR_SHAPE, "load_weights %s: %d layer(s) do not match, nothing was loaded: %s", what,
                           n_bad, problems);
        goto done;
    }
    s = read_weights(m, h, srcs, m->n_layers, what, err);
done:
    free(paths);
    free(srcs);
    loom_h5_close(h);
    return s;
}

/* ---------------------------------------------------------------- export */

/* The Keras 3 weights file of m (every layer's group, vars/<i> datasets, "name" attributes). */
static unsigned char *weights_image(loom_model *m, size_t *size, loom_error *err, const char *what) {
    loom_h5 *h = loom_h5_create_memory(what, err);
    if (!h) return NULL;
    char (*paths)[PATH_LEN] = calloc((size_t)m->n_layers + 1, PATH_LEN);
    char (*vp)[PATH_LEN] = calloc(2 * LOOM_MAX_WEIGHTS, PATH_LEN);
    unsigned char *img = NULL;
    loom_status s = paths && vp ? LOOM_OK : loom_set_error(err, LOOM_ERR_MEMORY, "%s: out of memory", what);
    if (!s) model_k3_paths(m, paths);
    if (!s) s = loom_h5_make_group(h, "layers", err);
    for (int i = 0; !s && i < m->n_layers; i++) {
        const loom_layer *L = m->layers[i];
        if (!paths[i][0]) continue;
        char groups[8][PATH_LEN];
        int ng = var_groups(L, paths[i], groups);
        for (int g = 0; g < ng && !s; g++) s = loom_h5_make_group(h, groups[g], err);
        if (!s) s = loom_h5_set_attr_string(h, groups[0], "name", L->name, err);
        int n = s ? 0 : var_paths(L, paths[i], vp);
        if (n < 0) s = loom_set_error(err, LOOM_ERR_STATE, "%s: layer %s (%s): loom cannot write this class's Keras weights",
                                      what, L->name, L->op->class_name);
        for (int w = 0; w < n && !s; w++)
            s = loom_h5_write_floats(h, vp[w], L->weights[w].shape.rank, L->weights[w].shape.dims,
                                     m->params + L->weights[w].offset, err);
    }
    if (!s) s = loom_h5_make_group(h, "vars", err);
    if (!s) s = loom_h5_set_attr_string(h, "vars", "name", "functional", err);
    if (!s) img = loom_h5_image(h, size, err);
    free(paths);
    free(vp);
    loom_h5_close(h);
    return img;
}

/* The node of a model that calls layer L (its first call). */
static const loom_node *first_call(const loom_model *m, const loom_layer *L) {
    for (int p = 0; p < m->n_order; p++)
        if (m->order[p].node->layer == L) return m->order[p].node;
    return NULL;
}

/* References [name, node, tensor] to a RecurrentOutput become [its recurrent layer, 0, k]:
 * Keras's own multi-output form of return_state. Walks every array of the config. */
static void fold_recurrent_outputs(const loom_model *m, cJSON *j) {
    if (cJSON_IsArray(j) && cJSON_GetArraySize(j) == 3 && cJSON_IsString(j->child) && cJSON_IsNumber(j->child->next)) {
        const loom_layer *L = loom_model_find_layer((loom_model *)m, j->child->valuestring);
        const loom_node *n = L && L->op == &loom_op_recurrent_output ? first_call(m, L) : NULL;
        if (n && n->n_in == 1) {
            cJSON_SetValuestring(j->child, n->in[0]->layer->name);
            cJSON_SetNumberValue(j->child->next, 0);
            cJSON_SetNumberValue(j->child->next->next, L->iarg[0]);
        }
        return;
    }
    for (cJSON *c = j ? j->child : NULL; c; c = c->next)
        if (cJSON_IsArray(c) || cJSON_IsObject(c)) fold_recurrent_outputs(m, c);
}

/* MultiHeadAttention is called as mha(query, value[, key], use_causal_mask=...) in Keras 3: its
 * tensors one by one (not as a list), the causal flag a call argument (not in its config). */
static void mha_call_arguments(cJSON *lj) {
    cJSON *cfg = cJSON_GetObjectItemCaseSensitive(lj, "config");
    bool causal = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "use_causal_mask"));
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, "use_causal_mask");
    cJSON *node;
    cJSON_ArrayForEach(node, cJSON_GetObjectItemCaseSensitive(lj, "inbound_nodes")) {
        cJSON *args = cJSON_GetObjectItemCaseSensitive(node, "args");
        cJSON *list = cJSON_GetArrayItem(args, 0);
        if (cJSON_IsArray(list) && cJSON_GetArraySize(args) == 1) {
            cJSON *tensors = cJSON_DetachItemFromArray(args, 0);
            while (cJSON_GetArraySize(tensors) > 0) cJSON_AddItemToArray(args, cJSON_DetachItemFromArray(tensors, 0));
            cJSON_Delete(tensors);
        }
        cJSON *kw = cJSON_GetObjectItemCaseSensitive(node, "kwargs");
        if (!kw) kw = cJSON_AddObjectToObject(node, "kwargs");
        if (causal) cJSON_AddBoolToObject(kw, "use_causal_mask", true);
    }
}

/* Removes loom's own keys, adds Keras 3's module / registered_name / build_config. */
static void keras3_layer_entries(loom_model *m, cJSON *config) {
    cJSON_DeleteItemFromObjectCaseSensitive(config, "loom_seed");
    cJSON_DeleteItemFromObjectCaseSensitive(config, "loom_node_order");
    cJSON_ReplaceItemInObjectCaseSensitive(config, "name", cJSON_CreateString("functional"));
    cJSON_AddBoolToObject(config, "trainable", true);
    cJSON *lj;
    int i = 0, stateful_batch = 0;
    for (int k = 0; k < m->n_layers; k++)
        if (loom_is_rnn_op(m->layers[k]->op) && m->layers[k]->iarg[RNN_STATEFUL])
            stateful_batch = m->layers[k]->iarg[RNN_SBATCH];
    cJSON_ArrayForEach(lj, cJSON_GetObjectItemCaseSensitive(config, "layers")) {
        cJSON_DeleteItemFromObjectCaseSensitive(lj, "loom_weights");
        /* stateful layers: Keras keeps their batch size in the Inputs' batch_shape */
        cJSON *lc = cJSON_GetObjectItemCaseSensitive(lj, "config");
        cJSON_DeleteItemFromObjectCaseSensitive(lc, "loom_stateful_batch");
        cJSON *bs = cJSON_GetObjectItemCaseSensitive(lc, "batch_shape");
        if (stateful_batch && cJSON_IsArray(bs) && cJSON_GetArraySize(bs) > 0)
            cJSON_ReplaceItemInArray(bs, 0, cJSON_CreateNumber(stateful_batch));
        cJSON_AddNullToObject(lj, "registered_name");
        const loom_layer *L = i < m->n_layers ? m->layers[i] : NULL;
        i++;
        /* a recurrent call with initial states: Keras 3 passes them as kwargs.initial_state */
        cJSON *node;
        cJSON *calls = L && loom_is_rnn_op(L->op) ? cJSON_GetObjectItemCaseSensitive(lj, "inbound_nodes") : NULL;
        cJSON_ArrayForEach(node, calls) {
            cJSON *args = cJSON_GetObjectItemCaseSensitive(node, "args");
            cJSON *list = cJSON_GetArrayItem(args, 0);
            if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) < 2) continue;
            cJSON *seq = cJSON_DetachItemFromArray(list, 0);
            cJSON *states = cJSON_DetachItemFromArray(args, 0);
            cJSON_AddItemToArray(args, seq);
            cJSON *kw = cJSON_GetObjectItemCaseSensitive(node, "kwargs");
            if (!kw) kw = cJSON_AddObjectToObject(node, "kwargs");
            cJSON_AddItemToObject(kw, "initial_state", states);
        }
        if (L && L->op == &loom_op_multi_head_attention) mha_call_arguments(lj);
        if (!L || L->op == &loom_op_input || !L->built_n_in) continue;
        cJSON *bc = cJSON_AddObjectToObject(lj, "build_config");
        /* a layer built from several named shapes (MultiHeadAttention's build(query_shape,
         * value_shape, key_shape)) has Keras's shapes_dict, the others one input_shape */
        bool mha = L->op == &loom_op_multi_head_attention;
        cJSON *dict = mha ? cJSON_AddObjectToObject(bc, "shapes_dict") : NULL;
        static const char *const MHA_SHAPES[3] = {"query_shape", "value_shape", "key_shape"};
        for (int k = 0; k < (mha ? L->built_n_in : 1) && k < 3; k++) {
            cJSON *shape = cJSON_CreateArray();
            cJSON_AddItemToArray(shape, cJSON_CreateNull());
            for (int d = 0; d < L->built_in[k].rank; d++) /* a variable time axis is Keras's None */
                cJSON_AddItemToArray(shape, L->built_in[k].dims[d] == LOOM_DIM_VARIABLE ? cJSON_CreateNull()
                                                                                       : cJSON_CreateNumber(L->built_in[k].dims[d]));
            cJSON_AddItemToObject(mha ? dict : bc, mha ? MHA_SHAPES[k] : "input_shape", shape);
        }
    }
    /* return_state's pieces are no Keras layers */
    cJSON *layers = cJSON_GetObjectItemCaseSensitive(config, "layers");
    for (int k = cJSON_GetArraySize(layers) - 1; k >= 0; k--)
        if (k < m->n_layers && m->layers[k]->op == &loom_op_recurrent_output) cJSON_DeleteItemFromArray(layers, k);
    fold_recurrent_outputs(m, config);
}

/* compile_config in Keras 3's form from the model's compile settings. */
static cJSON *keras3_compile_config(const loom_model *m) {
    cJSON *cc = cJSON_CreateObject();
    static const char *const OPT[] = {"SGD", "Adam", "AdamW", "RMSprop", "Adagrad"};
    const loom_optimizer *o = &m->opt;
    cJSON *oj = cJSON_AddObjectToObject(cc, "optimizer");
    cJSON_AddStringToObject(oj, "module", "keras.optimizers");
    cJSON_AddStringToObject(oj, "class_name", OPT[o->kind]);
    cJSON *ocfg = cJSON_AddObjectToObject(oj, "config");
    cJSON_AddStringToObject(ocfg, "name", OPT[o->kind]);
    cJSON_AddNumberToObject(ocfg, "learning_rate", o->learning_rate);
    if (o->kind == LOOM_ADAM || o->kind == LOOM_ADAMW) {
        cJSON_AddNumberToObject(ocfg, "beta_1", o->beta_1);
        cJSON_AddNumberToObject(ocfg, "beta_2", o->beta_2);
        cJSON_AddBoolToObject(ocfg, "amsgrad", o->amsgrad);
    }
    if (o->kind == LOOM_SGD) {
        cJSON_AddNumberToObject(ocfg, "momentum", o->momentum);
        cJSON_AddBoolToObject(ocfg, "nesterov", o->nesterov);
    }
    if (o->kind == LOOM_RMSPROP) cJSON_AddNumberToObject(ocfg, "rho", o->rho);
    if (o->kind != LOOM_SGD) cJSON_AddNumberToObject(ocfg, "epsilon", o->epsilon);
    if (o->weight_decay != 0) cJSON_AddNumberToObject(ocfg, "weight_decay", o->weight_decay);
    cJSON_AddNullToObject(oj, "registered_name");
    cJSON *loss = cJSON_AddObjectToObject(cc, "loss");
    cJSON *lw = cJSON_AddObjectToObject(cc, "loss_weights");
    for (int k = 0; k < m->n_outputs; k++) {
        const loom_output *out = &m->outputs[k];
        if (out->loss.kind == LOSS_NONE) {
            cJSON_AddNullToObject(loss, out->name);
            continue;
        }
        cJSON_AddStringToObject(loss, out->name, out->loss.name);
        cJSON_AddNumberToObject(lw, out->name, out->weight);
    }
    cJSON *metrics = cJSON_AddObjectToObject(cc, "metrics");
    for (int i = 0; i < m->n_metrics; i++) {
        const char *on = m->outputs[m->metrics[i].output].name;
        cJSON *list = cJSON_GetObjectItemCaseSensitive(metrics, on);
        if (!list) list = cJSON_AddArrayToObject(metrics, on);
        cJSON_AddItemToArray(list, cJSON_CreateString(m->metric_names[i]));
    }
    cJSON_AddNullToObject(cc, "weighted_metrics");
    cJSON_AddBoolToObject(cc, "run_eagerly", false);
    cJSON_AddNumberToObject(cc, "steps_per_execution", 1);
    cJSON_AddStringToObject(cc, "jit_compile", "auto");
    return cc;
}

cJSON *loom_keras3_config(loom_model *m, loom_error *err) {
    cJSON *root = loom_arch_to_json(m, err);
    if (!root) return NULL;
    cJSON *top = cJSON_CreateObject();
    cJSON_AddStringToObject(top, "module", "keras.src.models.functional");
    cJSON_AddStringToObject(top, "class_name", "Functional");
    cJSON *config = cJSON_DetachItemFromObjectCaseSensitive(root, "config");
    cJSON_Delete(root);
    keras3_layer_entries(m, config);
    cJSON_AddItemToObject(top, "config", config);
    cJSON_AddStringToObject(top, "registered_name", "Functional");
    cJSON *bc = cJSON_AddObjectToObject(top, "build_config");
    cJSON *shapes = cJSON_CreateArray();
    for (int i = 0; i < m->n_inputs; i++) {
        const loom_layer *L = m->order[m->input_pos[i]].node->layer;
        cJSON *s = cJSON_CreateArray();
        cJSON_AddItemToArray(s, cJSON_CreateNull());
        for (int d = 0; d < L->target.rank; d++) cJSON_AddItemToArray(s, cJSON_CreateNumber(L->target.dims[d]));
        cJSON_AddItemToArray(shapes, s);
    }
    if (m->n_inputs == 1) {
        cJSON_AddItemToObject(bc, "input_shape", cJSON_DetachItemFromArray(shapes, 0));
        cJSON_Delete(shapes);
    } else {
        cJSON_AddItemToObject(bc, "input_shape", shapes);
    }
    if (m->compiled) cJSON_AddItemToObject(top, "compile_config", keras3_compile_config(m));
    return top;
}

loom_status loom_write_bytes(const char *path, const unsigned char *data, size_t n, loom_error *err) {
    size_t len = strlen(path);
    char *tmp = malloc(len + 16);
    if (!tmp) return loom_set_error(err, LOOM_ERR_MEMORY, "%s: out of memory", path);
    snprintf(tmp, len + 16, "%s.tmp-loom", path);
    FILE *f = fopen(tmp, "wb");
    bool ok = f && fwrite(data, 1, n, f) == n;
    if (f && fclose(f) != 0) ok = false;
    if (ok && rename(tmp, path) != 0) ok = false;
    if (!ok) remove(tmp);
    free(tmp);
    return ok ? LOOM_OK : loom_set_error(err, LOOM_ERR_IO, "%s: cannot write the file", path);
}

loom_status loom_keras_export(loom_model *m, const char *path, bool weights_only, loom_error *err) {
    size_t wsize = 0;
    /* loom's Keras 2 hard_sigmoid has no Keras 3 name: such a model cannot go out as Keras 3 */
    for (int i = 0; i < m->n_layers; i++) {
        const loom_layer *L = m->layers[i];
        const loom_layer *R = L->op == &loom_op_bidirectional || L->op == &loom_op_time_distributed ? L->inner[0] : L;
        if (!weights_only && (R->activation == LOOM_HARD_SIGMOID_KERAS2 ||
                              (loom_is_rnn_op(R->op) && R->iarg[RNN_RACT] == LOOM_HARD_SIGMOID_KERAS2)))
            return loom_set_error(err, LOOM_ERR_STATE,
                                  "%s: layer %s uses Keras 2's hard_sigmoid, which Keras 3 does not have; export "
                                  "its weights (.weights.h5) or save it as .loom",
                                  path, L->name);
    }
    unsigned char *weights = weights_image(m, &wsize, err, path);
    if (!weights) return err->code;
    if (weights_only) {
        loom_status s = loom_write_bytes(path, weights, wsize, err);
        free(weights);
        return s;
    }
    cJSON *top = loom_keras3_config(m, err);
    if (!top) {
        free(weights);
        return err->code;
    }
    char *cfg_text = cJSON_PrintUnformatted(top);
    cJSON_Delete(top);
    /* Keras's loader reads the version to pick version-specific behaviour; the layout written is
     * Keras 3.7's */
    char meta[200];
    time_t now = time(NULL);
    struct tm tmv;
    char date[32] = "";
    if (gmtime_r(&now, &tmv)) strftime(date, sizeof date, "%Y-%m-%d@%H:%M:%S", &tmv);
    snprintf(meta, sizeof meta, "{\"keras_version\": \"3.7.0\", \"date_saved\": \"%s\", \"written_by\": \"loom\"}", date);
    loom_status s;
    if (!cfg_text) {
        s = loom_set_error(err, LOOM_ERR_MEMORY, "%s: out of memory", path);
    } else {
        const char *names[3] = {"metadata.json", "config.json", "model.weights.h5"};
        const unsigned char *data[3] = {(const unsigned char *)meta, (const unsigned char *)cfg_text, weights};
        size_t sizes[3] = {strlen(meta), strlen(cfg_text), wsize};
        s = loom_zip_write(path, 3, names, data, sizes, err);
    }
    free(cfg_text);
    free(weights);
    return s;
}
