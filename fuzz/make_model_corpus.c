/* make_model_corpus.c — writes the seed model files of fuzz_model into a folder:
 *
 *   cc -std=c11 -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc fuzz/make_model_corpus.c src/*/*.c
 *      -lcjson -lz -lm -o /tmp/make_model_corpus && /tmp/make_model_corpus fuzz/corpus/model
 * (from the repository root, as one command line)
 *
 * Small models (each under the fuzzer's 8 KiB input limit) that together use every saveable layer
 * class, every optimizer and schedule kind, losses with options, metrics, a shared layer, several
 * inputs and outputs, and both compiled (with history) and uncompiled files. Deterministic: the
 * same library writes the same bytes. */
#include "loom.h"

#include <stdio.h>
#include <string.h>

enum { N = 8 };
static float xa[N * 4], xb[N * 4], y1[N * 2], y2[N];

static void data_init(void) {
    for (int i = 0; i < N * 4; i++) {
        xa[i] = (float)((i * 7) % 11) / 11.0f - 0.5f;
        xb[i] = (float)((i * 5) % 13) / 13.0f - 0.5f;
    }
    for (int i = 0; i < N * 2; i++) y1[i] = (float)(i % 3) - 1.0f;
    for (int i = 0; i < N; i++) y2[i] = (float)(i % 2);
}

static int save(loom_model *m, const char *dir, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    loom_status s = loom_model_save(m, path);
    if (s) fprintf(stderr, "%s: %s\n", path, loom_model_error(m));
    else printf("wrote %s\n", path);
    loom_model_free(m);
    return s != LOOM_OK;
}

static int fit(loom_model *m, int n_x, const loom_array *x, int n_y, const loom_array *y, int epochs) {
    loom_data d = {n_x, x, n_y, y, 0, NULL};
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = 4;
    fo.epochs = epochs;
    fo.validation_split = 0.25f;
    loom_status s = loom_fit(m, &d, &fo, NULL);
    if (s) fprintf(stderr, "fit: %s\n", loom_model_error(m));
    return s != LOOM_OK;
}

/* Input -> Dense, never compiled: architecture and weights only. */
static int uncompiled(const char *dir) {
    loom_graph *g = loom_graph_new(1);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){4});
    loom_tensor *y = loom_call(loom_dense(g, "d", 2, LOOM_RELU, NULL), x);
    loom_model *m = loom_model_new(g, 1, &x, 1, &y);
    return !m || save(m, dir, "uncompiled.loom");
}

/* Dense, Dropout, Dense; SGD with momentum, nesterov and an exponential schedule; trained. */
static int sgd_dropout(const char *dir) {
    loom_graph *g = loom_graph_new(2);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){4});
    loom_dense_options o = loom_dense_defaults();
    o.kernel_regularizer = (loom_regularizer){0.01f, 0.001f};
    o.kernel_initializer = LOOM_INIT_HE_NORMAL;
    loom_tensor *h = loom_call(loom_dense(g, "h", 3, LOOM_ELU, &o), x);
    h = loom_call(loom_dropout(g, "drop", 0.5f), h);
    loom_tensor *y = loom_call(loom_dense(g, "y", 1, LOOM_SIGMOID, NULL), h);
    loom_model *m = loom_model_new(g, 1, &x, 1, &y);
    if (!m) return 1;
    loom_optimizer opt = loom_sgd(0.1f, 0.9f, 1);
    opt.schedule = loom_exponential_decay(0.1f, 2, 0.5f, 1);
    loom_metric_spec ms = {NULL, "accuracy"};
    loom_compile_config cfg = {1, &(loom_loss){.name = "binary_crossentropy", .label_smoothing = 0.1f}, .n_metrics = 1,
                               .metrics = &ms, .optimizer = opt};
    loom_array xs = {.name = "x", .data = xa, .n = N, .count = N * 4}, ys = {.name = "y", .data = y2, .n = N, .count = N};
    if (loom_compile(m, &cfg) || fit(m, 1, &xs, 1, &ys, 2)) {
        loom_model_free(m);
        return 1;
    }
    return save(m, dir, "sgd_dropout.loom");
}

/* Two inputs, every merge, Concatenate, two heads (huber delta 2, crossentropy from logits) and a
 * head without a loss; Adam with a cosine schedule and warm-up. */
static int merges(const char *dir) {
    loom_graph *g = loom_graph_new(3);
    loom_tensor *a = loom_input(g, "a", 1, (int[]){4});
    loom_tensor *b = loom_input(g, "b", 1, (int[]){4});
    loom_tensor *ab[2] = {a, b};
    loom_tensor *s = loom_call_n(loom_add(g, "add"), 2, ab);
    loom_tensor *d = loom_call_n(loom_subtract(g, "sub"), 2, ab);
    loom_tensor *p = loom_call_n(loom_multiply(g, "mul"), 2, ab);
    loom_tensor *c = loom_call_n(loom_concatenate(g, "cat", -1), 3, (loom_tensor *[]){s, d, p});
    loom_tensor *r = loom_call(loom_dense(g, "reg", 2, LOOM_LINEAR, NULL), c);
    loom_tensor *l = loom_call(loom_dense(g, "logit", 1, LOOM_LINEAR, NULL), c);
    loom_tensor *z = loom_call(loom_dense(g, "aux", 1, LOOM_SOFTPLUS, NULL), c);
    loom_model *m = loom_model_new(g, 2, ab, 3, (loom_tensor *[]){r, l, z});
    if (!m) return 1;
    loom_optimizer opt = loom_adam(0.01f);
    opt.amsgrad = 1;
    opt.schedule = loom_cosine_decay(0.01f, 6, 0.1f);
    opt.schedule.warmup_steps = 2;
    opt.schedule.warmup_target = 0.02f;
    opt.global_clipnorm = 1.0f;
    loom_loss losses[2] = {{.name = "huber", .delta = 2.0f}, {.name = "binary_crossentropy", .from_logits = 1}};
    const char *outs[2] = {"reg", "logit"};
    loom_metric_spec ms[2] = {{"reg", "mae"}, {"logit", "binary_accuracy"}};
    loom_compile_config cfg = {.n_losses = 2, .losses = losses, .loss_outputs = outs, .n_loss_weights = 1,
                               .loss_weights = (float[]){0.5f}, .loss_weight_outputs = (const char *[]){"reg"},
                               .n_metrics = 2, .metrics = ms, .optimizer = opt};
    /* configured and weighted metrics travel as spec text in the file */
    cfg.n_weighted_metrics = 2;
    cfg.weighted_metrics = (const loom_metric_spec[]){{"logit", "auc(curve=PR, num_thresholds=20, from_logits=true)"},
                                                      {"logit", "precision(thresholds=[0.3, 0.7])"}};
    loom_array xs[2] = {{.name = "a", .data = xa, .n = N, .count = N * 4}, {.name = "b", .data = xb, .n = N, .count = N * 4}},
               ys[2] = {{.name = "reg", .data = y1, .n = N, .count = N * 2}, {.name = "logit", .data = y2, .n = N, .count = N}};
    if (loom_compile(m, &cfg) || fit(m, 2, xs, 2, ys, 1)) {
        loom_model_free(m);
        return 1;
    }
    return save(m, dir, "merges.loom");
}

/* A shared layer called twice, Reshape with -1, Flatten, Activation; RMSprop (centered, momentum),
 * a piecewise-constant schedule and a learning-rate override. */
static int shared_reshape(const char *dir) {
    loom_graph *g = loom_graph_new(4);
    loom_tensor *a = loom_input(g, "a", 1, (int[]){4});
    loom_tensor *b = loom_input(g, "b", 1, (int[]){4});
    loom_layer *sh = loom_dense(g, "shared", 4, LOOM_GELU, NULL);
    loom_tensor *s1 = loom_call(sh, a), *s2 = loom_call(sh, b);
    loom_tensor *c = loom_call_n(loom_concatenate(g, "cat", 1), 2, (loom_tensor *[]){s1, s2});
    loom_tensor *r = loom_call(loom_reshape(g, "rs", 2, (int[]){2, -1}), c);
    loom_tensor *f = loom_call(loom_flatten(g, "fl"), r);
    loom_tensor *t = loom_call(loom_activation_layer(g, "act", LOOM_SWISH), f);
    loom_tensor *y = loom_call(loom_dense(g, "y", 2, LOOM_SOFTMAX, NULL), t);
    loom_model *m = loom_model_new(g, 2, (loom_tensor *[]){a, b}, 1, &y);
    if (!m) return 1;
    loom_optimizer opt = loom_rmsprop(0.01f);
    opt.centered = 1;
    opt.momentum = 0.2f;
    opt.schedule = loom_piecewise_constant(2, (long[]){1, 2}, (float[]){0.01f, 0.005f, 0.001f});
    opt.clipnorm = 0.5f;
    loom_compile_config cfg = {1, &(loom_loss){.name = "categorical_crossentropy"}, .optimizer = opt};
    float onehot[N * 2];
    for (int i = 0; i < N; i++) onehot[2 * i] = 1.0f - (onehot[2 * i + 1] = (float)(i % 2));
    loom_array xs[2] = {{.name = "a", .data = xa, .n = N, .count = N * 4}, {.name = "b", .data = xb, .n = N, .count = N * 4}},
               ys = {.name = "y", .data = onehot, .n = N, .count = N * 2};
    if (loom_compile(m, &cfg) || fit(m, 2, xs, 1, &ys, 1) || loom_set_learning_rate(m, 0.0025f)) {
        loom_model_free(m);
        return 1;
    }
    return save(m, dir, "shared_reshape.loom");
}

/* Adagrad and AdamW with weight decay and clipvalue, compiled but never trained. */
static int untrained(const char *dir, int adamw) {
    loom_graph *g = loom_graph_new(5);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){4});
    loom_dense_options o = loom_dense_defaults();
    o.use_bias = 0;
    loom_tensor *y = loom_call(loom_dense(g, "y", 3, LOOM_TANH, &o), x);
    loom_model *m = loom_model_new(g, 1, &x, 1, &y);
    if (!m) return 1;
    loom_optimizer opt = adamw ? loom_adamw(0.001f, 0.01f) : loom_adagrad(0.05f);
    opt.clipvalue = 0.25f;
    loom_compile_config cfg = {1, &(loom_loss){.name = adamw ? "mae" : "log_cosh"}, .optimizer = opt};
    if (loom_compile(m, &cfg)) {
        loom_model_free(m);
        return 1;
    }
    return save(m, dir, adamw ? "adamw.loom" : "adagrad.loom");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s <output folder>\n", argv[0]);
        return 2;
    }
    data_init();
    int bad = uncompiled(argv[1]) + sgd_dropout(argv[1]) + merges(argv[1]) + shared_reshape(argv[1]) +
              untrained(argv[1], 0) + untrained(argv[1], 1);
    return bad ? 1 : 0;
}
