/* test_generator.c — fit from a C batch function (data larger than memory) behaves as fit from
 * arrays: same weights and history for the same batches; errors stop training cleanly. */
#include "check.h"

#include <loom.h>
#include <stdlib.h>
#include <string.h>

#define N 40
#define BATCH 8

static float xs[N * 5], yc[N * 3], yd[N];

static loom_model *make_model(void) {
    loom_graph *g = loom_graph_new(11);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){5});
    loom_tensor *h = loom_call(loom_dense(g, "A", 6, LOOM_TANH, NULL), x);
    loom_tensor *c = loom_call(loom_dense(g, "C", 3, LOOM_SOFTMAX, NULL), h);
    loom_tensor *d = loom_call(loom_dense(g, "D", 1, LOOM_LINEAR, NULL), h);
    loom_model *m = loom_model_new(g, 1, &x, 2, (loom_tensor *[]){c, d});
    loom_loss l[] = {{.name = "categorical_crossentropy"}, {.name = "mse"}};
    float w[] = {0.5f, 0.3f};
    loom_metric_spec ms[] = {{"C", "accuracy"}};
    loom_compile_config cfg = {.n_losses = 2, .losses = l, .n_loss_weights = 2, .loss_weights = w,
                               .n_metrics = 1, .metrics = ms, .optimizer = loom_adam(0.01f)};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    return m;
}

typedef struct source {
    int calls;
    int fail_at;      /* call number that returns an error, -1 never */
    int oversize;     /* give more samples than asked */
    loom_array x, y[2];
} source;

/* Batches in order, as fit with shuffle off takes them; the last one is partial (40 = 5 x 8). */
static int next_batch(int epoch, int step, int max_batch, loom_data *batch, void *user) {
    (void)epoch;
    source *s = user;
    if (s->calls++ == s->fail_at) return 7;
    size_t first = (size_t)step * BATCH;
    size_t n = first + (size_t)max_batch > N ? N - first : (size_t)max_batch;
    if (s->oversize) n = (size_t)max_batch + 1;
    s->x = (loom_array){.name = "x", .data = xs + first * 5, .n = n, .count = n * 5};
    s->y[0] = (loom_array){.name = "C", .data = yc + first * 3, .n = n, .count = n * 3};
    s->y[1] = (loom_array){.name = "D", .data = yd + first, .n = n, .count = n};
    batch->n_x = 1;
    batch->x = &s->x;
    batch->n_y = 2;
    batch->y = s->y;
    return 0;
}

int main(void) {
    srand(5);
    for (int i = 0; i < N * 5; i++) xs[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int i = 0; i < N; i++) {
        yc[i * 3 + i % 3] = 1;
        yd[i] = xs[i * 5] * 2;
    }
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = BATCH;
    fo.epochs = 3;
    fo.shuffle = 0;

    /* the same batches from arrays and from a function give bit-identical results */
    loom_model *a = make_model(), *b = make_model();
    loom_array x = {.name = "x", .data = xs, .n = N, .count = N * 5};
    loom_array y[] = {{.name = "C", .data = yc, .n = N, .count = N * 3}, {.name = "D", .data = yd, .n = N, .count = N}};
    loom_data data = {1, &x, 2, y, 0, NULL};
    loom_history *ha = NULL, *hb = NULL;
    CHECK_STATUS(loom_fit(a, &data, &fo, &ha), LOOM_OK);
    source src = {0, -1, 0, {0}, {{0}}};
    CHECK_STATUS(loom_fit_generator(b, next_batch, &src, N / BATCH, &fo, &hb), LOOM_OK);
    CHECK(src.calls == 3 * (N / BATCH));
    CHECK(memcmp(loom_params(a), loom_params(b), loom_param_count(a) * sizeof(float)) == 0);
    CHECK(loom_history_num_keys(ha) == loom_history_num_keys(hb));
    for (int k = 0; k < loom_history_num_keys(ha); k++) {
        const char *key = loom_history_key(ha, k);
        CHECK(strcmp(key, loom_history_key(hb, k)) == 0);
        for (int e = 0; e < 3; e++) CHECK(loom_history_get(ha, key, e) == loom_history_get(hb, key, e));
    }
    CHECK(loom_model_epochs_done(b) == 3);

    /* validation data works with a generator */
    loom_history *hv = NULL;
    fo.validation_data = &data;
    fo.epochs = 1;
    src.calls = 0;
    CHECK_STATUS(loom_fit_generator(b, next_batch, &src, N / BATCH, &fo, &hv), LOOM_OK);
    CHECK(!isnan(loom_history_get(hv, "val_loss", 0)));
    CHECK(!isnan(loom_history_get(hv, "val_C_accuracy", 0)));
    loom_history_free(hv);
    fo.validation_data = NULL;

    /* an error from the batch function stops training cleanly, with its message */
    loom_history *hf = NULL;
    fo.epochs = 2;
    src.calls = 0;
    src.fail_at = 7; /* epoch 2, step 3 */
    CHECK_STATUS(loom_fit_generator(b, next_batch, &src, N / BATCH, &fo, &hf), LOOM_ERR_CALLBACK);
    CHECK(strstr(loom_model_error(b), "returned 7") != NULL);
    CHECK(strstr(loom_model_error(b), "epoch 2, step 3") != NULL);
    CHECK(loom_history_epochs(hf) == 1); /* the finished epoch is kept */
    loom_history_free(hf);

    /* more samples than batch_size, bad arguments */
    src.fail_at = -1;
    src.oversize = 1;
    CHECK_STATUS(loom_fit_generator(b, next_batch, &src, N / BATCH, &fo, NULL), LOOM_ERR_DATA);
    CHECK(strstr(loom_model_error(b), "more than batch_size") != NULL);
    CHECK_STATUS(loom_fit_generator(b, NULL, &src, 5, &fo, NULL), LOOM_ERR_ARGUMENT);
    CHECK_STATUS(loom_fit_generator(b, next_batch, &src, 0, &fo, NULL), LOOM_ERR_ARGUMENT);
    fo.validation_split = 0.2f;
    CHECK_STATUS(loom_fit_generator(b, next_batch, &src, 5, &fo, NULL), LOOM_ERR_ARGUMENT);

    loom_history_free(ha);
    loom_history_free(hb);
    loom_model_free(a);
    loom_model_free(b);
    return check_report("generator");
}
