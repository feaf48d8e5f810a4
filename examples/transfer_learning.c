/* transfer_learning.c — Keras's transfer-learning recipe in C with loom: a feature extractor shared
 * by several models, frozen while a new head learns, then fine-tuned.
 *
 *   x -> Dense "f1" -> BatchNormalization "bn" -> Dense "features"      (encoder: x -> features)
 *   pretrain:  features -> Dense "old_head" (4 classes)                 (pretrained = x -> old_head)
 *   new task:  features -> Dense "new_head" (sigmoid, 1 unit)           (model = x -> new_head)
 *
 * The three models are made over one graph and share its weights: training `pretrained` changes
 * what `encoder` predicts. The graph is freed with the last model, whatever the order. */
#include <loom.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 512
#define F 12

static float X[N * F], OLD[N * 4], NEW[N];

static void make_data(void) {
    srand(11);
    for (int i = 0; i < N * F; i++) X[i] = (float)rand() / RAND_MAX * 2 - 1;
    for (int i = 0; i < N; i++) {
        const float *x = X + i * F;
        int k = (x[0] > 0) * 2 + (x[1] > 0); /* the old task: the quadrant of two features */
        for (int j = 0; j < 4; j++) OLD[i * 4 + j] = j == k;
        NEW[i] = x[0] * x[1] + 0.2f * x[2] > 0; /* the new task reuses the same features */
    }
}

static float fit_and_report(loom_model *m, const loom_data *d, int epochs, const char *what, const char *key) {
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = 32;
    fo.epochs = epochs;
    loom_history *h = NULL;
    if (loom_fit(m, d, &fo, &h)) {
        fprintf(stderr, "%s: %s\n", what, loom_model_error(m));
        loom_history_free(h);
        return -1;
    }
    float v = loom_history_get(h, key, -1);
    printf("%-34s %s %.4f after %d epochs\n", what, key, v, epochs);
    loom_history_free(h);
    return v;
}

int main(void) {
    make_data();
    loom_graph *g = loom_graph_new(3);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){F});
    loom_tensor *f = loom_call(loom_dense(g, "f1", 32, LOOM_RELU, NULL), x);
    f = loom_call(loom_batch_normalization(g, "bn", NULL), f);
    f = loom_call(loom_dense(g, "features", 16, LOOM_RELU, NULL), f);
    loom_tensor *old_head = loom_call(loom_dense(g, "old_head", 4, LOOM_SOFTMAX, NULL), f);
    loom_tensor *new_head = loom_call(loom_dense(g, "new_head", 1, LOOM_SIGMOID, NULL), f);
    loom_model *encoder = loom_model_new(g, 1, &x, 1, &f);
    loom_model *pretrained = loom_model_new(g, 1, &x, 1, &old_head);
    loom_model *model = loom_model_new(g, 1, &x, 1, &new_head);
    if (!encoder || !pretrained || !model) {
        fprintf(stderr, "%s\n", loom_graph_error(g));
        loom_model_free(encoder);
        loom_model_free(pretrained);
        loom_graph_free(g); /* frees it when no model took it */
        return 1;
    }
    loom_array xa = {.name = "x", .data = X, .n = N, .count = N * F};
    loom_array ya_old = {.data = OLD, .n = N, .count = N * 4}, ya_new = {.data = NEW, .n = N, .count = N};
    loom_data old_task = {.n_x = 1, .x = &xa, .n_y = 1, .y = &ya_old};
    loom_data new_task = {.n_x = 1, .x = &xa, .n_y = 1, .y = &ya_new};
    loom_metric_spec acc = {.name = "accuracy"};

    /* 1. pretrain on the old task (no optimizer given: Keras's default, rmsprop 0.001) */
    loom_loss cce = {.name = "categorical_crossentropy"}, bce = {.name = "binary_crossentropy"};
    loom_compile_config c_old = {.n_losses = 1, .losses = &cce, .n_metrics = 1, .metrics = &acc};
    float *feat0 = malloc(N * 16 * sizeof *feat0), *feat1 = malloc(N * 16 * sizeof *feat1);
    if (!feat0 || !feat1 || loom_compile(pretrained, &c_old)) return 1;
    loom_predict(encoder, 1, &xa, 128, (float *[]){feat0});
    fit_and_report(pretrained, &old_task, 10, "pretrain (old task)", "accuracy");
    loom_predict(encoder, 1, &xa, 128, (float *[]){feat1});
    printf("the encoder's features changed with the pretraining: %s\n",
           memcmp(feat0, feat1, N * 16 * sizeof *feat0) ? "yes" : "no");

    /* 2. freeze the encoder (BatchNormalization then runs in inference mode), train the new head */
    loom_model_set_trainable(encoder, 0);
    loom_compile_config c_new = {.n_losses = 1, .losses = &bce, .n_metrics = 1, .metrics = &acc,
                                 .optimizer = loom_adam(0.01f)};
    if (loom_compile(model, &c_new)) return 1;
    loom_summary(model, stdout);
    fit_and_report(model, &new_task, 10, "new head, encoder frozen", "accuracy");
    loom_predict(encoder, 1, &xa, 128, (float *[]){feat0});
    printf("the frozen encoder's features are unchanged: %s\n",
           memcmp(feat0, feat1, N * 16 * sizeof *feat0) ? "no" : "yes");

    /* 3. fine-tune everything at a low learning rate: trainable takes effect at the next compile */
    loom_model_set_trainable(encoder, 1);
    c_new.optimizer = loom_adam(1e-4f);
    if (loom_compile(model, &c_new)) return 1;
    fit_and_report(model, &new_task, 5, "fine-tuned, encoder trainable", "accuracy");

    free(feat0);
    free(feat1);
    /* any order: the graph goes with the last model */
    loom_model_free(encoder);
    loom_model_free(model);
    loom_model_free(pretrained);
    return 0;
}
