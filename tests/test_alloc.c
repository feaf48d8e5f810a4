/* test_alloc.c — no allocation inside a training step after the first one, in fit and in a
 * user's own loop of train_on_batch / predict / gradients. The test is linked
 * with --wrap=malloc/calloc/realloc (see CMakeLists.txt), so every allocation made by loom's code
 * goes through the counters below; a batch hook reads them between steps. */
#include "check.h"

#include <loom.h>
#include <stdlib.h>
#include <string.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t s);
void *__real_realloc(void *p, size_t n);
static long n_alloc = 0;
void *__wrap_malloc(size_t n) { n_alloc++; return __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t s) { n_alloc++; return __real_calloc(n, s); }
void *__wrap_realloc(void *p, size_t n) { n_alloc++; return __real_realloc(p, n); }

typedef struct counts {
    long after_first;
    long last;
    int batches;
} counts;

static int on_batch(loom_model *m, int epoch, int batch, const loom_logs *logs, void *user) {
    (void)m, (void)epoch, (void)batch, (void)logs;
    counts *c = user;
    if (c->batches++ == 0) c->after_first = n_alloc;
    c->last = n_alloc;
    return 0;
}

/* The same models and steps under mixed_bfloat16 (issue 18): the bfloat16 products' workspace
 * is planned with the arena, so a step allocates nothing there either. */
static int run(loom_dtype_policy policy) {
    loom_graph *g = loom_graph_new(2);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){12});
    loom_tensor *a = loom_call(loom_dense(g, "A", 16, LOOM_RELU, NULL), x);
    loom_tensor *dr = loom_call(loom_dropout(g, "drop", 0.2f), a);
    loom_tensor *b = loom_call(loom_dense(g, "B", 16, LOOM_GELU, NULL), dr);
    loom_tensor *c = loom_call(loom_dense(g, "C", 4, LOOM_SOFTMAX, NULL), b);
    loom_tensor *d = loom_call(loom_dense(g, "D", 2, LOOM_LINEAR, NULL), b);
    loom_model *m = loom_model_new(g, 1, &x, 2, (loom_tensor *[]){c, d});
    loom_loss l[] = {{.name = "categorical_crossentropy"}, {.name = "huber"}};
    float w[] = {0.5f, 0.3f};
    /* the confusion-matrix metrics size their state at compile, weighted ones too */
    loom_metric_spec ms[] = {{"C", "accuracy"}, {"D", "rmse"}, {"C", "auc"}, {"C", "f1_score(average=macro)"},
                             {"C", "precision(top_k=2)"}, {"C", "mean_iou(num_classes=4)"}};
    loom_metric_spec wms[] = {{"C", "auc(curve=PR)"}, {"C", "recall(thresholds=[0.2, 0.6])"}};
    loom_compile_config cfg = {.n_losses = 2, .losses = l, .n_loss_weights = 2, .loss_weights = w,
                               .n_metrics = 6, .metrics = ms, .optimizer = loom_adam(0.01f),
                               .n_weighted_metrics = 2, .weighted_metrics = wms, .dtype_policy = policy};
    cfg.optimizer.global_clipnorm = 1.0f;
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    enum { N = 100 };
    static float xs[N * 12], yc[N * 4], yd[N * 2], sw[N];
    for (int i = 0; i < N * 12; i++) xs[i] = (float)(i % 7) / 7;
    for (int i = 0; i < N; i++) {
        yc[i * 4 + i % 4] = 1;
        yd[2 * i] = yd[2 * i + 1] = (float)(i % 3);
        sw[i] = 1 + (float)(i % 2);
    }
    loom_array xa = {.name = "x", .data = xs, .n = N, .count = N * 12}, ys[] = {{.name = "C", .data = yc, .n = N, .count = N * 4}, {.name = "D", .data = yd, .n = N, .count = N * 2}}, sws[] = {{.name = "C", .data = sw, .n = N, .count = N}};
    loom_data data = {1, &xa, 2, ys, 1, sws};
    counts cnt = {0, 0, 0};
    loom_callback *hook = loom_hook_callback(on_batch, NULL, &cnt);
    loom_callback *nan = loom_terminate_on_nan();
    loom_callback *cbs[] = {hook, nan};
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = 16; /* 7 steps, the last one partial */
    fo.epochs = 1;
    fo.n_callbacks = 2;
    fo.callbacks = cbs;
    /* class weights: installed once by fit, applied to every step's losses and weighted metrics */
    const float cwv[] = {1.0f, 2.0f, 0.5f, 3.0f};
    fo.n_class_weights = 1;
    fo.class_weights = &(loom_class_weight){.output = "C", .n_classes = 4, .weights = cwv};
    CHECK_STATUS(loom_fit(m, &data, &fo, NULL), LOOM_OK);
    CHECK(cnt.batches == 7);
    CHECK(cnt.after_first > 0); /* the counters see loom's allocations at all */
    CHECK(cnt.last == cnt.after_first);
    printf("allocations during steps 2..7 (%s): %ld\n", policy ? "mixed_bfloat16" : "float32",
           cnt.last - cnt.after_first);

    /* A user's own loop: train_on_batch, predict and a gradient query after the first call */
    loom_array bx = {.name = "x", .data = xs, .n = 16, .count = 16 * 12}, by[] = {{.name = "C", .data = yc, .n = 16, .count = 16 * 4}, {.name = "D", .data = yd, .n = 16, .count = 16 * 2}};
    loom_data batch = {1, &bx, 2, by, 0, NULL};
    float logs[8], pc[16 * 4], pd[16 * 2], *grad = malloc(loom_param_count(m) * sizeof *grad);
    int n_logs;
    CHECK_STATUS(loom_train_on_batch(m, &batch, logs, 8, &n_logs), LOOM_OK);
    CHECK_STATUS(loom_predict(m, 1, &bx, 16, (float *const[]){pc, pd}), LOOM_OK);
    CHECK_STATUS(loom_gradients(m, &batch, 0, NULL, grad, NULL), LOOM_OK);
    long before = n_alloc;
    for (int i = 0; i < 5; i++) {
        CHECK_STATUS(loom_train_on_batch(m, &batch, logs, 8, &n_logs), LOOM_OK);
        CHECK_STATUS(loom_predict(m, 1, &bx, 16, (float *const[]){pc, pd}), LOOM_OK);
        CHECK_STATUS(loom_gradients(m, &batch, 0, NULL, grad, NULL), LOOM_OK);
    }
    CHECK(n_alloc == before);
    CHECK(n_logs > 0);
    free(grad);
    loom_callback_free(hook);
    loom_callback_free(nan);
    loom_model_free(m);
    return 0;
}

/* Variable-length sequences (issue 16 part 4): fit reserves its data's longest sample, so batches
 * trimmed to 3..19 steps allocate nothing; in a user's loop only a batch longer than any before
 * re-plans (once), shorter ones reuse the arena. */
static void run_varlen(void) {
    loom_graph *g = loom_graph_new(4);
    loom_tensor *x = loom_input(g, "ids", 1, (int[]){LOOM_DIM_VARIABLE});
    loom_rnn_options seq = loom_rnn_defaults();
    seq.return_sequences = 1;
    loom_tensor *h = loom_call(loom_lstm(g, "lstm", 6, &seq), loom_call(loom_embedding(g, "emb", 30, 4, 1), x));
    loom_tensor *t = loom_call(loom_dense(g, "tags", 3, LOOM_SOFTMAX, NULL), h);
    loom_tensor *p = loom_call(loom_dense(g, "prio", 1, LOOM_SIGMOID, NULL),
                               loom_call(loom_gru(g, "gru", 4, &(loom_rnn_options){.use_bias = 1, .reset_after = 1}), h));
    loom_model *m = loom_model_new(g, 1, &x, 2, (loom_tensor *[]){t, p});
    loom_loss l[] = {{.name = "sparse_categorical_crossentropy"}, {.name = "binary_crossentropy"}};
    loom_compile_config cfg = {.n_losses = 2, .losses = l, .optimizer = loom_adam(0.01f)};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    enum { N = 64, T = 19 };
    static float ids[N * T], tags[N * T], prio[N];
    static int len[N];
    for (int i = 0; i < N; i++) {
        len[i] = 3 + (i * 7) % (T - 2);
        for (int s = 0; s < T; s++) ids[i * T + s] = s < len[i] ? (float)(1 + (i + s) % 29) : 0.0f;
        for (int s = 0; s < T; s++) tags[i * T + s] = (float)(s % 3);
        prio[i] = (float)(i % 2);
    }
    loom_array xa = {.name = "ids", .data = ids, .n = N, .count = N * T, .lengths = len};
    loom_array ys[] = {{.name = "tags", .data = tags, .n = N, .count = N * T}, {.name = "prio", .data = prio, .n = N, .count = N}};
    loom_data data = {1, &xa, 2, ys, 0, NULL};
    counts cnt = {0, 0, 0};
    loom_callback *hook = loom_hook_callback(on_batch, NULL, &cnt);
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = 5; /* one epoch (the history grows at its end): 11 steps of 3..19 steps */
    fo.epochs = 1;
    fo.validation_split = 0.2f;
    fo.n_callbacks = 1;
    fo.callbacks = &hook;
    CHECK_STATUS(loom_fit(m, &data, &fo, NULL), LOOM_OK);
    CHECK(cnt.batches > 10);
    CHECK(cnt.last == cnt.after_first);
    printf("allocations during variable-length steps 2..%d: %ld\n", cnt.batches, cnt.last - cnt.after_first);

    /* a user's loop: 7 steps, then 25 (longer than fit's 19: re-plans), then 4, 25, 9 (no allocation) */
    static const int order[5] = {7, 25, 4, 25, 9};
    long at[5];
    for (int r = 0; r < 5; r++) {
        int L = order[r];
        static float bx[8 * 25], bt[8 * 25];
        for (int i = 0; i < 8 * L; i++) bx[i] = (float)(1 + i % 29), bt[i] = (float)(i % 3);
        loom_array b = {.name = "ids", .data = bx, .n = 8, .count = (size_t)8 * L};
        loom_array by[] = {{.name = "tags", .data = bt, .n = 8, .count = (size_t)8 * L}, {.name = "prio", .data = prio, .n = 8, .count = 8}};
        loom_data batch = {1, &b, 2, by, 0, NULL};
        CHECK_STATUS(loom_train_on_batch(m, &batch, NULL, 0, NULL), LOOM_OK);
        at[r] = n_alloc;
    }
    CHECK(at[1] > at[0]); /* the longer batch planned again */
    CHECK(at[4] == at[1]);
    loom_callback_free(hook);
    loom_model_free(m);
}

int main(void) {
    run(LOOM_POLICY_DEFAULT);
    run(LOOM_POLICY_MIXED_BFLOAT16);
    run_varlen();
    return check_report("alloc");
}
