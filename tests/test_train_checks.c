/* test_train_checks.c — the checks around training of issue 14, section 3: weight schedules that
 * do not fit float32, TerminateOnNaN on the total and the gradient norm, optimizer states and
 * moving variances that cannot be right, output names that collide with validation log keys, a
 * failed recompile, the smaller validation gaps, and messages cleared by every call that
 * succeeds. */
#include "check.h"
#include "loom.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int has(const char *s, const char *part) { return s && strstr(s, part) != NULL; }

#define N 8
static float xs[N * 2], ya[N], yb[N];

/* x (2,) -> "a" Dense 1 and "b" Dense 1 (names configurable) */
static loom_model *two_outputs(const char *na, const char *nb, loom_optimizer opt, const float *weights) {
    loom_graph *g = loom_graph_new(4);
    int d2 = 2;
    loom_tensor *x = loom_input(g, "x", 1, &d2);
    loom_tensor *o[2] = {loom_call(loom_dense(g, na, 1, LOOM_LINEAR, NULL), x),
                         loom_call(loom_dense(g, nb, 1, LOOM_LINEAR, NULL), x)};
    loom_model *m = loom_model_new(g, 1, &x, 2, o);
    if (!m) {
        fprintf(stderr, "%s\n", loom_graph_error(g));
        loom_graph_free(g);
        CHECK(0);
        return NULL;
    }
    loom_loss mse = {.name = "mse"};
    loom_compile_config cfg = {.n_losses = 1, .losses = &mse, .n_loss_weights = weights ? 2 : 0,
                               .loss_weights = weights, .optimizer = opt};
    loom_status s = loom_compile(m, &cfg);
    if (s) fprintf(stderr, "compile: %s\n", loom_model_error(m));
    return m;
}

static loom_data data_for(loom_model *m, loom_array *x, loom_array *y) {
    *x = (loom_array){.name = "x", .data = xs, .n = N, .count = N * 2};
    y[0] = (loom_array){.name = loom_model_output_name(m, 0), .data = ya, .n = N, .count = N};
    y[1] = (loom_array){.name = loom_model_output_name(m, 1), .data = yb, .n = N, .count = N};
    return (loom_data){1, x, 2, y, 0, NULL};
}

static void zero_weights(loom_model *m) {
    float z[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        const char *name = loom_model_output_name(m, k);
        CHECK_STATUS(loom_set_weights(m, name, 0, z, 2), LOOM_OK);
        CHECK_STATUS(loom_set_weights(m, name, 1, z, 1), LOOM_OK);
    }
}

static void test_weight_schedules(void) {
    loom_model *m = two_outputs("a", "b", loom_adam(0.01f), NULL);
    if (!m) return;
    loom_weight_schedule s = {.kind = LOOM_WEIGHT_CONSTANT, .w0 = 1e300};
    CHECK_STATUS(loom_set_loss_weight_schedule(m, "a", &s), LOOM_ERR_ARGUMENT);
    CHECK(has(loom_model_error(m), "float32"));
    s = (loom_weight_schedule){.kind = LOOM_WEIGHT_LINEAR, .w0 = 1, .w1 = -1e39, .t0 = 0, .t1 = 10};
    CHECK_STATUS(loom_set_loss_weight_schedule(m, "a", &s), LOOM_ERR_ARGUMENT);
    s = (loom_weight_schedule){.kind = LOOM_WEIGHT_EXPONENTIAL, .w0 = 1e300, .rate = 0.5, .decay_steps = 1};
    CHECK_STATUS(loom_set_loss_weight_schedule(m, "a", &s), LOOM_ERR_ARGUMENT);
    s = (loom_weight_schedule){.kind = LOOM_WEIGHT_PIECEWISE, .n_boundaries = 1, .boundaries = {5}, .values = {1, 1e300}};
    CHECK_STATUS(loom_set_loss_weight_schedule(m, "a", &s), LOOM_ERR_ARGUMENT);
    s = (loom_weight_schedule){.kind = LOOM_WEIGHT_RAMPUP, .w1 = 1e300, .length = 5};
    CHECK_STATUS(loom_set_loss_weight_schedule(m, "a", &s), LOOM_ERR_ARGUMENT);
    s = (loom_weight_schedule){.kind = LOOM_WEIGHT_CONSTANT, .w0 = 1e30};
    CHECK_STATUS(loom_set_loss_weight_schedule(m, "a", &s), LOOM_OK);
    CHECK(strcmp(loom_model_error(m), "") == 0);
    loom_model_free(m);
}

static void test_terminate_on_nan(void) {
    loom_callback *ton = loom_terminate_on_nan();
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = 4;
    fo.shuffle = 0;
    fo.n_callbacks = 1;
    fo.callbacks = &ton;
    loom_array x, y[2];
    for (int i = 0; i < N * 2; i++) xs[i] = 1e30f; /* the kernels start at 0: the outputs are 0 */
    for (int i = 0; i < N; i++) ya[i] = yb[i] = 1.0f;

    /* two finite losses (1 each) whose weighted sum 2 x 3e38 is inf in float */
    float big[2] = {3e38f, 3e38f};
    loom_model *m = two_outputs("a", "b", loom_adam(0.01f), big);
    if (m) {
        zero_weights(m);
        loom_data d = data_for(m, &x, y);
        size_t P = loom_param_count(m);
        float *before = malloc(P * sizeof *before);
        memcpy(before, loom_params(m), P * sizeof *before);
        CHECK_STATUS(loom_fit(m, &d, &fo, NULL), LOOM_ERR_NAN);
        CHECK(has(loom_model_error(m), "total loss") && has(loom_model_error(m), "kept"));
        CHECK(memcmp(before, loom_params(m), P * sizeof *before) == 0);
        CHECK(loom_iterations(m) == 0);
        free(before);
        loom_model_free(m);
    }
    /* a finite total (1e38) whose gradient overflows: dL/dy = -2e38 / 4 per sample, times x = 1e30
     * (even lr x dL/dy x x overflows, whatever order a kernel multiplies in) */
    float one_big[2] = {1e38f, 0.0f};
    for (int sgd = 0; sgd <= 1; sgd++) {
        m = two_outputs("a", "b", sgd ? loom_sgd(0.01f, 0, 0) : loom_adam(0.01f), one_big);
        if (!m) continue;
        zero_weights(m);
        loom_data d = data_for(m, &x, y);
        size_t P = loom_param_count(m);
        float *before = malloc(P * sizeof *before);
        memcpy(before, loom_params(m), P * sizeof *before);
        CHECK_STATUS(loom_fit(m, &d, &fo, NULL), LOOM_ERR_NAN);
        const char *msg = loom_model_error(m);
        if (!sgd) {
            CHECK(has(msg, "gradient norm is") && has(msg, "kept"));
            CHECK(memcmp(before, loom_params(m), P * sizeof *before) == 0);
        } else {
            /* plain SGD has already applied the gradient to Dense "a" inside the backward pass:
             * the message says so and does not claim its weights were kept */
            CHECK(has(msg, "gradient is not finite"));
            CHECK(has(msg, "applied it inside the backward pass to a") && has(msg, "no longer finite"));
            float k[2];
            CHECK_STATUS(loom_get_weights(m, "a", 0, k, 2), LOOM_OK);
            CHECK(!isfinite(k[0]));
        }
        free(before);
        loom_model_free(m);
    }
    loom_callback_free(ton);
}

/* ---------------------------------------------------------------- file surgery */

static uint32_t crc32_ieee(const unsigned char *p, size_t n, uint32_t crc) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = crc & 1 ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
    }
    return ~crc;
}

static uint64_t rd64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void wr32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void wr64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static unsigned char *save_bytes(loom_model *m, size_t *n) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/loom_train_checks_%d.loom", (int)getpid());
    if (loom_model_save(m, path)) return NULL;
    FILE *f = fopen(path, "rb");
    unsigned char *buf = malloc(1 << 20);
    *n = f ? fread(buf, 1, 1 << 20, f) : 0;
    if (f) fclose(f);
    unlink(path);
    return buf;
}

/* The file with section `tag`'s payload replaced by edit(payload) (which may change its size),
 * CRC recomputed: loads then judge the values, not the checksum. */
typedef size_t (*edit_fn)(unsigned char *payload, size_t n, void *user);
static unsigned char *rewrite(const unsigned char *in, size_t n, const char *tag, edit_fn edit, void *user, size_t *out_n) {
    unsigned char *out = malloc(n + 4096);
    memcpy(out, in, 16);
    size_t at = 16, o = 16;
    while (at + 12 <= n) {
        uint64_t len = rd64(in + at + 4);
        memcpy(out + o, in + at, 12);
        unsigned char *pl = out + o + 12;
        memcpy(pl, in + at + 12, len);
        size_t new_len = memcmp(in + at, tag, 4) == 0 ? edit(pl, len, user) : len;
        wr64(out + o + 4, new_len);
        wr32(pl + new_len, crc32_ieee(pl, new_len, crc32_ieee(out + o, 4, 0)));
        at += 12 + len + 4;
        o += 12 + new_len + 4;
    }
    *out_n = o;
    return out;
}

typedef struct float_edit {
    size_t index;
    float value;
} float_edit;

static size_t set_float(unsigned char *p, size_t n, void *user) { /* u64 count + f32 values */
    float_edit *e = user;
    memcpy(p + 8 + 4 * e->index, &e->value, 4);
    return n;
}

static size_t replace_text(unsigned char *p, size_t n, void *user) {
    const char *const *ft = user; /* {from, to} */
    char *text = malloc(n + 1);
    memcpy(text, p, n);
    text[n] = 0;
    char *at = strstr(text, ft[0]);
    CHECK(at != NULL);
    if (!at) {
        free(text);
        return n;
    }
    size_t head = (size_t)(at - text), fl = strlen(ft[0]), tl = strlen(ft[1]);
    memcpy(p + head, ft[1], tl);
    memcpy(p + head + tl, text + head + fl, n - head - fl);
    free(text);
    return n - fl + tl;
}

static loom_model *parse(const unsigned char *b, size_t n, char *err, size_t errlen) {
    return loom_model_parse(b, n, "edited.loom", err, errlen);
}

static void test_loaded_state(void) {
    char err[512];
    /* Adam: slot 0 (m) may be negative, slot 1 (v) may not; AMSGrad's slot 2 neither */
    for (int kind = 0; kind < 3; kind++) {
        loom_optimizer opt = kind == 2 ? loom_adagrad(0.01f) : loom_adam(0.01f);
        loom_model *m = two_outputs("a", "b", opt, NULL);
        if (!m) continue;
        loom_array x, y[2];
        for (int i = 0; i < N * 2; i++) xs[i] = 0.1f * (float)i;
        for (int i = 0; i < N; i++) ya[i] = yb[i] = 0.5f;
        loom_data d = data_for(m, &x, y);
        loom_fit_options fo = loom_fit_defaults();
        CHECK_STATUS(loom_fit(m, &d, &fo, NULL), LOOM_OK);
        size_t n, n2, P = loom_param_count(m);
        unsigned char *file = save_bytes(m, &n);
        float_edit e = {kind == 1 ? 0 : (kind == 0 ? P + 1 : 1), -1.0f}; /* adam v / adam m / adagrad acc */
        unsigned char *bad = rewrite(file, n, "OPTS", set_float, &e, &n2);
        loom_model *r = parse(bad, n2, err, sizeof err);
        if (kind == 1) {
            CHECK(r != NULL); /* a negative first moment is fine */
        } else {
            CHECK(r == NULL && has(err, "never negative") && has(err, "edited.loom"));
        }
        loom_model_free(r);
        /* the untouched rewrite loads: the surgery itself is sound */
        free(bad);
        e.value = 0.0f;
        bad = rewrite(file, n, "OPTS", set_float, &e, &n2);
        r = parse(bad, n2, err, sizeof err);
        CHECK(r != NULL);
        loom_model_free(r);
        free(bad);
        free(file);
        loom_model_free(m);
    }
    /* BatchNormalization's moving variance: refused negative by set_weights and in a file */
    loom_graph *g = loom_graph_new(2);
    int d3 = 3;
    loom_tensor *x = loom_input(g, "x", 1, &d3);
    loom_tensor *t = loom_call(loom_batch_normalization(g, "bn", NULL), x);
    t = loom_call(loom_dense(g, "out", 1, LOOM_LINEAR, NULL), t);
    loom_model *m = loom_model_new(g, 1, &x, 1, &t);
    CHECK(m != NULL);
    if (!m) return;
    CHECK(strcmp(loom_layer_weight_name(loom_model_find_layer(m, "bn"), 3), "moving_variance") == 0);
    float bad_var[3] = {1, -1, 1}, ok_var[3] = {1, 0, 2};
    CHECK_STATUS(loom_set_weights(m, "bn", 3, bad_var, 3), LOOM_ERR_DATA);
    CHECK(has(loom_model_error(m), "moving_variance") && has(loom_model_error(m), "never negative"));
    CHECK_STATUS(loom_set_weights(m, "bn", 3, ok_var, 3), LOOM_OK);
    CHECK(strcmp(loom_model_error(m), "") == 0);
    size_t n, n2;
    unsigned char *file = save_bytes(m, &n);
    float_edit e = {loom_param_offset(m, "bn", 3) + 1, -1.0f};
    unsigned char *bad = rewrite(file, n, "WGHT", set_float, &e, &n2);
    loom_model *r = parse(bad, n2, err, sizeof err);
    CHECK(r == NULL && has(err, "bn") && has(err, "moving_variance") && has(err, "never negative"));
    free(bad);
    /* units 1.5 in a file: refused, and the message shows what the file gave */
    const char *ft[2] = {"\"units\":1,", "\"units\":1.5,"};
    bad = rewrite(file, n, "ARCH", replace_text, (void *)ft, &n2);
    r = parse(bad, n2, err, sizeof err);
    CHECK(r == NULL && has(err, "out") && has(err, "1.5"));
    loom_model_free(r);
    free(bad);
    free(file);
    loom_model_free(m);
}

static void test_log_key_collisions(void) {
    const char *pairs[][2] = {{"val", "b"}, {"C", "val_C"}};
    for (int i = 0; i < 2; i++) {
        loom_model *m = two_outputs(pairs[i][0], pairs[i][1], loom_adam(0.01f), NULL);
        if (!m) continue;
        CHECK(loom_model_status(m) == LOOM_ERR_NAME);
        CHECK(has(loom_model_error(m), "validation key") && has(loom_model_error(m), i ? "val_C_loss" : "val_loss"));
        CHECK(isnan(loom_get_learning_rate(m))); /* not compiled */
        loom_model_free(m);
    }
    /* "val" as the only output logs no per-output loss: nothing collides */
    loom_graph *g = loom_graph_new(1);
    int d2 = 2;
    loom_tensor *x = loom_input(g, "x", 1, &d2);
    loom_tensor *o = loom_call(loom_dense(g, "val", 1, LOOM_LINEAR, NULL), x);
    loom_model *m = loom_model_new(g, 1, &x, 1, &o);
    loom_loss mse = {.name = "mse"};
    loom_compile_config cfg = {.n_losses = 1, .losses = &mse, .optimizer = loom_adam(0.01f)};
    CHECK(m && loom_compile(m, &cfg) == LOOM_OK);
    loom_model_free(m);
}

static void test_failed_recompile(void) {
    float w[2] = {0.25f, 2.0f};
    loom_model *m = two_outputs("a", "b", loom_adam(0.01f), w);
    if (!m) return;
    loom_array x, y[2];
    loom_data d = data_for(m, &x, y);
    loom_fit_options fo = loom_fit_defaults();
    CHECK_STATUS(loom_fit(m, &d, &fo, NULL), LOOM_OK);
    long it = loom_iterations(m);
    loom_loss bad = {.name = "no_such_loss"};
    loom_metric_spec ms = {"a", "mae"};
    loom_compile_config cfg = {.n_losses = 1, .losses = &bad, .n_metrics = 1, .metrics = &ms, .optimizer = loom_sgd(0.1f, 0, 0)};
    CHECK(loom_compile(m, &cfg) != LOOM_OK);
    CHECK(has(loom_model_error(m), "no_such_loss"));
    /* still compiled with the old settings and state */
    CHECK(loom_get_loss_weight(m, "a") == 0.25f && loom_get_loss_weight(m, "b") == 2.0f);
    CHECK(loom_get_learning_rate(m) == 0.01f && loom_iterations(m) == it);
    loom_history *h = NULL;
    CHECK_STATUS(loom_evaluate(m, &d, 4, 0, &h), LOOM_OK);
    CHECK(loom_history_num_keys(h) == 3 && isnan(loom_history_get(h, "a_mae", 0)));
    loom_history_free(h);
    CHECK_STATUS(loom_fit(m, &d, &fo, NULL), LOOM_OK);
    /* a failing metric after good losses: the same */
    loom_loss good = {.name = "mae"};
    loom_metric_spec bad_metric = {"nope", "mae"};
    cfg = (loom_compile_config){.n_losses = 1, .losses = &good, .n_metrics = 1, .metrics = &bad_metric,
                                .optimizer = loom_sgd(0.1f, 0, 0)};
    CHECK(loom_compile(m, &cfg) == LOOM_ERR_NAME);
    CHECK(loom_get_learning_rate(m) == 0.01f);
    CHECK_STATUS(loom_evaluate(m, &d, 4, 0, &h), LOOM_OK);
    CHECK(h && strcmp(loom_history_key(h, 1), "a_loss") == 0);
    loom_history_free(h);
    /* and a good recompile still replaces everything */
    cfg.metrics = &ms;
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    CHECK(loom_get_learning_rate(m) == 0.1f && loom_iterations(m) == 0);
    loom_model_free(m);
}

static void test_small_gaps(void) {
    /* Dense L2 = inf (Conv already refused it) */
    loom_graph *g = loom_graph_new(1);
    loom_dense_options o = loom_dense_defaults();
    o.kernel_regularizer.l2 = INFINITY;
    CHECK(loom_dense(g, "d", 2, LOOM_LINEAR, &o) == NULL);
    CHECK(has(loom_graph_error(g), "finite"));
    loom_graph_free(g);
    /* monitor modes outside the enum */
    CHECK(loom_early_stopping(NULL, 0, 1, (loom_monitor_mode)7, 0) == NULL);
    CHECK(loom_reduce_lr_on_plateau(NULL, 0.5f, 1, (loom_monitor_mode)7, 0, 0, 0) == NULL);
    CHECK(loom_model_checkpoint("/tmp/x.loom", NULL, (loom_monitor_mode)-1, 0, 0) == NULL);
    loom_callback *es = loom_early_stopping(NULL, 0, 1, LOOM_MODE_MAX, 0);
    CHECK(es != NULL);
    loom_callback_free(es);
    /* a NULL schedule */
    CHECK(isnan(loom_schedule_value(NULL, 3)));
}

/* Each call that reports a status leaves no stale message when it succeeds. */
static void test_messages_cleared(void) {
    loom_model *m = two_outputs("a", "b", loom_adam(0.01f), NULL);
    if (!m) return;
    loom_array x, y[2];
    loom_data d = data_for(m, &x, y);
    loom_array bad_x = {.name = "x", .data = xs, .n = N, .count = 3};
    loom_data bad = {1, &bad_x, 2, y, 0, NULL};
    size_t P = loom_param_count(m);
    float *grad = malloc(P * sizeof *grad), *grads2[2] = {grad, NULL}, out[N], k[2];
#define STALE_THEN_OK(call)                                                                   \
    do {                                                                                      \
        CHECK(loom_set_learning_rate(m, -1.0f) != LOOM_OK && loom_model_error(m)[0]);         \
        CHECK_STATUS((call), LOOM_OK);                                                        \
        if (loom_model_error(m)[0]) fprintf(stderr, "stale after %s: %s\n", #call, loom_model_error(m)); \
        CHECK(loom_model_error(m)[0] == 0);                                                   \
    } while (0)
    loom_fit_options fo = loom_fit_defaults();
    STALE_THEN_OK(loom_set_learning_rate(m, 0.01f));
    STALE_THEN_OK(loom_set_loss_weight(m, "a", 1.0f));
    STALE_THEN_OK(loom_fit(m, &d, &fo, NULL));
    STALE_THEN_OK(loom_evaluate(m, &d, 4, 0, NULL));
    STALE_THEN_OK(loom_predict(m, 1, &x, 4, (float *const[]){out, NULL}));
    STALE_THEN_OK(loom_train_on_batch(m, &d, NULL, 0, NULL));
    STALE_THEN_OK(loom_gradients(m, &d, 0, NULL, grad, NULL));
    STALE_THEN_OK(loom_loss_gradients(m, &d, 1, grads2, NULL));
    STALE_THEN_OK(loom_get_weights(m, "a", 0, k, 2));
    STALE_THEN_OK(loom_set_weights(m, "a", 0, k, 2));
    STALE_THEN_OK(loom_set_check_finite(m, 1));
    STALE_THEN_OK(loom_set_loss_weight_schedule(m, "a", NULL));
    char path[64];
    snprintf(path, sizeof path, "/tmp/loom_msg_%d.loom", (int)getpid());
    STALE_THEN_OK(loom_model_save(m, path));
    STALE_THEN_OK(loom_load_weights(m, path));
    /* the readers that report into the caller's buffer empty it when they succeed */
    char eb[64] = "stale";
    loom_model *r = loom_model_load(path, eb, sizeof eb);
    CHECK(r != NULL && eb[0] == 0);
    loom_model_free(r);
    unlink(path);
    loom_csv *csv = loom_csv_parse("a\n1\n", 4, "t.csv", 1, 0, eb, sizeof eb);
    snprintf(eb, sizeof eb, "stale");
    CHECK(csv && loom_csv_select(csv, 1, (const char *const[]){"a"}, out, eb, sizeof eb) == LOOM_OK && eb[0] == 0);
    loom_csv_free(csv);
    CHECK(loom_train_on_batch(m, &bad, NULL, 0, NULL) == LOOM_ERR_DATA);
    loom_diagnostics *diag = loom_diagnose(m, &d);
    CHECK(diag != NULL && loom_model_error(m)[0] == 0);
    loom_diagnostics_free(diag);
    CHECK(loom_loss_reaches(m, "a", "nope") == 0 && loom_model_error(m)[0]);
    CHECK(loom_loss_reaches(m, "a", "a") == 1 && loom_model_error(m)[0] == 0);
    STALE_THEN_OK(loom_compile(m, &(loom_compile_config){.n_losses = 1, .losses = &(loom_loss){.name = "mse"},
                                                          .optimizer = loom_adam(0.01f)}));
    free(grad);
    loom_model_free(m);
}

int main(void) {
    test_weight_schedules();
    test_terminate_on_nan();
    test_loaded_state();
    test_log_key_collisions();
    test_failed_recompile();
    test_small_gaps();
    test_messages_cleared();
    return check_report("test_train_checks");
}
