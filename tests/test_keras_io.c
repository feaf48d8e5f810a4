/* test_keras_io.c — Keras model files in and out (src/io/keras_*.c).
 *
 * 1. The real files of ../shared/keras-models (LOOM_SHARED_DIR; skipped with a message when
 *    absent): each imports or is refused with the message its missing feature should give, and the
 *    imported ones predict refs/<name>/output_<k>.npy (TensorFlow.js 4.22 or an independent NumPy
 *    forward pass, see that folder's README) to 1e-5 relative.
 * 2. Round trips: a loom model -> .keras -> loom and -> .weights.h5 -> loom_load_weights keep every
 *    weight bit for bit and give identical predictions; a real .keras -> import -> export keeps
 *    every weight bit for bit (compared with the original by h5py in keras_h5py_check.py, run
 *    here when python3-h5py is present).
 * 3. Dialect errors: an unknown class, an unknown option, a constraint, an unknown loss, a
 *    nested model flattened. */
#include "check.h"
#include "loom.h"

#include <float.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef LOOM_SHARED_DIR
#define LOOM_SHARED_DIR ""
#endif
#ifndef LOOM_PYTHON
#define LOOM_PYTHON ""
#endif

static char tmpdir[256];

static void tmp_path(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", tmpdir, name); }

static bool file_exists(const char *p) { return access(p, R_OK) == 0; }

/* ---------------------------------------------------------------- 1. real files */

typedef struct real_file {
    const char *file, *ref;
    int n_in, n_out;
    int none_dim; /* the length of the references' sequences, for inputs of unknown length */
    const char *refusal; /* NULL: must import and predict; else a part of the expected message */
} real_file;

static const real_file REAL[] = {
    {"digits_conv2d_bn.keras", "digits_conv2d_bn", 1, 1, 0, NULL},
    {"energy_bigru_bn.keras", "energy_bigru_bn", 1, 1, 0, NULL},
    {"keras2c_example.h5", "keras2c_example", 1, 1, 0, NULL},
    {"sentiment_embed.keras", "sentiment_embed", 1, 1, 20, NULL},
    {"katakana_seq2seq.h5", "katakana_seq2seq", 2, 1, 0, NULL},
    {"weather_decoder.keras", "weather_decoder", 3, 3, 0, NULL},
};

/* How far predictions are from the reference, in units of the tolerance 1e-5 |b| + 1e-6 max|b|:
 * 1e-5 relative, with an absolute floor of 1e-6 of the output's largest value (about eight float32
 * ulps of it), since float32 sums of terms of the output's scale leave absolute errors of that
 * size on values near 0 (keras2c_example: 1.1e-7 on a value of 0.0066, whose largest is 0.54). */
static double tolerance_ratio(const float *a, const float *b, size_t n, double *max_rel) {
    double worst = 0, scale = 0;
    *max_rel = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs((double)b[i]));
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        double r = d / (1e-5 * fabs((double)b[i]) + 1e-6 * scale);
        if (!(r <= worst)) worst = r;
        double rel = d / fmax(fabs((double)b[i]), 1e-30);
        if (!(rel <= *max_rel)) *max_rel = rel;
    }
    return worst;
}

static void real_files(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/keras-models", LOOM_SHARED_DIR);
    char probe[600];
    snprintf(probe, sizeof probe, "%s/README.md", dir);
    if (!LOOM_SHARED_DIR[0] || !file_exists(probe)) {
        printf("SKIP real Keras files: %s not found (set LOOM_SHARED_DIR)\n", dir);
        return;
    }
    for (size_t f = 0; f < sizeof REAL / sizeof *REAL; f++) {
        const real_file *r = &REAL[f];
        char path[700], err[1024] = "";
        snprintf(path, sizeof path, "%s/%s", dir, r->file);
        /* a file with inputs of unknown length twice: at the references' length (none_dim), and
         * with the variable (None) time axis the file has, predicting at the references' length */
        for (int pass = 0; pass < (r->none_dim && !r->refusal ? 2 : 1); pass++) {
        snprintf(path, sizeof path, "%s/%s", dir, r->file);
        loom_import_options io = {.none_dim = pass ? 0 : r->none_dim};
        loom_model *m = loom_model_import_with(path, &io, err, sizeof err);
        if (pass && m) {
            int variable = 0;
            for (int i = 0; i < loom_model_num_inputs(m); i++) variable += loom_model_input_variable(m, i);
            CHECK(variable > 0);
        }
        if (r->refusal) {
            CHECK(m == NULL);
            CHECK(strstr(err, r->refusal) != NULL);
            printf("%s: refused as expected: %s\n", r->file, err);
            loom_model_free(m);
            continue;
        }
        CHECK(m != NULL);
        if (!m) {
            fprintf(stderr, "%s: %s\n", r->file, err);
            continue;
        }
        CHECK(loom_model_num_inputs(m) == r->n_in && loom_model_num_outputs(m) == r->n_out);
        loom_ndarray in[4] = {{0}}, ref[4] = {{0}};
        loom_array x[4];
        bool ok = true;
        for (int i = 0; i < r->n_in && ok; i++) {
            snprintf(path, sizeof path, "%s/refs/%s/input_%d.npy", dir, r->ref, i);
            ok = loom_npy_load(path, &in[i], err, sizeof err) == LOOM_OK;
            if (ok) x[i] = (loom_array){.name = NULL, .data = in[i].data, .n = in[i].dims[0], .count = in[i].size};
        }
        CHECK(ok);
        float *pred[4] = {0};
        for (int k = 0; ok && k < r->n_out; k++) {
            snprintf(path, sizeof path, "%s/refs/%s/output_%d.npy", dir, r->ref, k);
            ok = loom_npy_load(path, &ref[k], err, sizeof err) == LOOM_OK;
            pred[k] = ok ? calloc(ref[k].size, sizeof(float)) : NULL;
            int steps[4] = {0};
            for (int i = 0; i < r->n_in; i++) steps[i] = in[i].rank > 1 ? (int)in[i].dims[1] : 0;
            CHECK(ok && ref[k].size == in[0].dims[0] * loom_model_output_size_at(m, k, steps));
        }
        if (ok && loom_predict(m, r->n_in, x, 4, pred) == LOOM_OK) {
            for (int k = 0; k < r->n_out; k++) {
                double rel, t = tolerance_ratio(pred[k], ref[k].data, ref[k].size, &rel);
                printf("%s output %d: largest relative difference %.3g; %.2f of the tolerance\n", r->file, k, rel, t);
                CHECK(t <= 1.0);
            }
        } else {
            CHECK(!"predict");
            fprintf(stderr, "%s: %s\n", r->file, ok ? loom_model_error(m) : err);
        }
        for (int i = 0; i < 4; i++) {
            loom_ndarray_free(&in[i]);
            loom_ndarray_free(&ref[i]);
            free(pred[i]);
        }
        loom_model_free(m);
        }
    }
}

/* ---------------------------------------------------------------- 2. round trips */

static loom_model *model_with(bool tfjs) {
    loom_graph *g = loom_graph_new(7);
    int d_seq[2] = {5, 3}, d_img[3] = {6, 6, 2};
    loom_tensor *seq = loom_input(g, "seq", 2, d_seq), *img = loom_input(g, "img", 3, d_img);
    loom_rnn_options ro = loom_rnn_defaults();
    ro.return_sequences = 1;
    loom_tensor *c = loom_call(loom_conv2d(g, "conv", 3, 3, 3, 1, 1, LOOM_PADDING_SAME, 1, 1, LOOM_RELU, NULL), img);
    c = loom_call(loom_batch_normalization(g, "bn", NULL), c);
    c = loom_call(loom_max_pooling2d(g, NULL, 2, 2, 0, 0, LOOM_PADDING_VALID), c);
    c = loom_call(loom_flatten(g, NULL), c);
    /* the image sets the LSTM's initial states (Keras 3 writes them as kwargs.initial_state) */
    loom_tensor *h0 = loom_call(loom_dense(g, "h0", 3, LOOM_TANH, NULL), c);
    loom_tensor *c0 = loom_call(loom_dense(g, "c0", 3, LOOM_LINEAR, NULL), c);
    /* TensorFlow.js has no GRU with reset_after: an LSTM there */
    loom_layer *inner = tfjs ? loom_lstm(g, "rnn", 4, &ro) : loom_gru(g, "rnn", 4, &ro);
    loom_tensor *h = loom_call(loom_bidirectional(g, "bi", inner, LOOM_MERGE_CONCAT), seq);
    h = loom_call_n(loom_lstm(g, "lstm", 3, NULL), 3, (loom_tensor *[]){h, h0, c0});
    loom_tensor *j = loom_call_n(loom_concatenate(g, "join", -1), 2, (loom_tensor *[]){h, c});
    loom_tensor *a = loom_call(loom_dense(g, "head_a", 2, LOOM_SOFTMAX, NULL), j);
    loom_tensor *b = loom_call(loom_dense(g, "head_b", 1, LOOM_LINEAR, NULL), j);
    loom_model *m = loom_model_new(g, 2, (loom_tensor *[]){seq, img}, 2, (loom_tensor *[]){a, b});
    if (!m) {
        fprintf(stderr, "small_model: %s\n", loom_graph_error(g));
        return NULL;
    }
    /* weights away from their initial values, so that a lost weight shows */
    float *p = loom_params(m);
    for (size_t i = 0; i < loom_param_count(m); i++) p[i] = (float)sin(0.37 * (double)i) * 0.5f;
    /* a variance is positive */
    loom_layer *bn = loom_model_find_layer(m, "bn");
    float *var = p + loom_param_offset(m, "bn", 3);
    for (size_t i = 0; bn && i < loom_layer_weight_size(bn, 3); i++) var[i] = fabsf(var[i]) + 0.5f;
    loom_loss losses[2] = {{.name = "categorical_crossentropy"}, {.name = "mse"}};
    float w[2] = {1.0f, 0.25f};
    loom_metric_spec ms[1] = {{.output = "head_a", .name = "accuracy"}};
    loom_compile_config cfg = {.n_losses = 2, .losses = losses, .n_loss_weights = 2, .loss_weights = w,
                               .n_metrics = 1, .metrics = ms, .optimizer = loom_adam(0.002f)};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    return m;
}

static loom_model *small_model(void) { return model_with(false); }

static void predict2(loom_model *m, float *a, float *b) {
    static float seq[4 * 15], img[4 * 72];
    for (int i = 0; i < 4 * 15; i++) seq[i] = (float)cos(0.3 * i);
    for (int i = 0; i < 4 * 72; i++) img[i] = (float)sin(0.11 * i);
    loom_array x[2] = {{.name = "seq", .data = seq, .n = 4, .count = 4 * 15}, {.name = "img", .data = img, .n = 4, .count = 4 * 72}};
    CHECK_STATUS(loom_predict(m, 2, x, 4, (float *[]){a, b}), LOOM_OK);
    for (int i = 0; i < 8; i++) CHECK(isfinite(a[i]));
    for (int i = 0; i < 4; i++) CHECK(isfinite(b[i]));
}

static void round_trips(void) {
    loom_model *m = small_model();
    CHECK(m != NULL);
    if (!m) return;
    float a0[8], b0[4], a1[8], b1[4];
    predict2(m, a0, b0);
    char path[512], err[1024] = "";
    tmp_path(path, sizeof path, "small.keras");
    CHECK_STATUS(loom_model_export(m, path), LOOM_OK);
    loom_model *r = loom_model_import(path, err, sizeof err);
    CHECK(r != NULL);
    if (!r) fprintf(stderr, "round trip .keras: %s\n", err);
    if (r) {
        CHECK(loom_param_count(r) == loom_param_count(m));
        CHECK(memcmp(loom_params(r), loom_params(m), loom_param_count(m) * sizeof(float)) == 0);
        predict2(r, a1, b1);
        CHECK(memcmp(a0, a1, sizeof a0) == 0 && memcmp(b0, b1, sizeof b0) == 0);
        /* the compile settings came back: same losses, weights, metric */
        CHECK(loom_get_loss_weight(r, "head_b") == 0.25f);
        CHECK(fabsf(loom_get_learning_rate(r) - 0.002f) < 1e-9f);
        loom_model_free(r);
    }
    /* weights only: into a fresh model of the same architecture */
    tmp_path(path, sizeof path, "small.weights.h5");
    CHECK_STATUS(loom_model_export(m, path), LOOM_OK);
    loom_model *fresh = small_model();
    if (fresh) {
        float *p = loom_params(fresh);
        for (size_t i = 0; i < loom_param_count(fresh); i++) p[i] = 0;
        CHECK_STATUS(loom_load_weights(fresh, path), LOOM_OK);
        CHECK(memcmp(loom_params(fresh), loom_params(m), loom_param_count(m) * sizeof(float)) == 0);
        predict2(fresh, a1, b1);
        CHECK(memcmp(a0, a1, sizeof a0) == 0 && memcmp(b0, b1, sizeof b0) == 0);
        loom_model_free(fresh);
    }
    /* a weights file of another architecture: nothing loaded, every mismatch named */
    loom_graph *g = loom_graph_new(1);
    int d[1] = {3};
    loom_tensor *x = loom_input(g, "x", 1, d);
    loom_tensor *y = loom_call(loom_dense(g, "head_a", 5, LOOM_LINEAR, NULL), x);
    loom_model *other = loom_model_new(g, 1, &x, 1, &y);
    float before = loom_params(other)[0];
    CHECK(loom_load_weights(other, path) != LOOM_OK);
    CHECK(strstr(loom_model_error(other), "head_a") != NULL);
    CHECK(loom_params(other)[0] == before);
    loom_model_free(other);
    loom_model_free(m);
}

/* Real .keras files: import -> export keeps every weight, the re-export imports again with the
 * same weights and predictions; h5py compares the files dataset by dataset and checks the layout. */
static void real_reexport(void) {
    static const char *const FILES[] = {"digits_conv2d_bn", "energy_bigru_bn", "weather_decoder"};
    char cmd[4000] = "", py[300] = "";
    if (!LOOM_SHARED_DIR[0]) {
        printf("SKIP re-export of real files: no LOOM_SHARED_DIR\n");
        return;
    }
    if (LOOM_PYTHON[0]) {
        snprintf(cmd, sizeof cmd, "%s -c 'import h5py' 2>/dev/null", LOOM_PYTHON);
        if (system(cmd) == 0) snprintf(py, sizeof py, "%s", LOOM_PYTHON);
    }
    /* Debian's python3-h5py lives in the system interpreter */
    if (!py[0] && system("/usr/bin/python3 -c 'import h5py' 2>/dev/null") == 0) snprintf(py, sizeof py, "/usr/bin/python3");
    for (size_t f = 0; f < sizeof FILES / sizeof *FILES; f++) {
        char src[600], out[512], err[1024] = "";
        snprintf(src, sizeof src, "%s/keras-models/%s.keras", LOOM_SHARED_DIR, FILES[f]);
        if (!file_exists(src)) {
            printf("SKIP re-export of %s: not found\n", src);
            continue;
        }
        loom_model *m = loom_model_import(src, err, sizeof err);
        CHECK(m != NULL);
        if (!m) continue;
        snprintf(out, sizeof out, "%s/%s_again.keras", tmpdir, FILES[f]);
        CHECK_STATUS(loom_model_export(m, out), LOOM_OK);
        loom_model *r = loom_model_import(out, err, sizeof err);
        CHECK(r != NULL && loom_param_count(r) == loom_param_count(m));
        if (!r) fprintf(stderr, "%s: %s\n", out, err);
        if (r) {
            CHECK(memcmp(loom_params(r), loom_params(m), loom_param_count(m) * sizeof(float)) == 0);
            CHECK(loom_model_num_outputs(r) == loom_model_num_outputs(m));
            for (int k = 0; k < loom_model_num_outputs(m); k++)
                CHECK(strcmp(loom_model_output_name(r, k), loom_model_output_name(m, k)) == 0);
        }
        loom_model_free(r);
        loom_model_free(m);
        if (!py[0]) {
            printf("SKIP h5py check of %s: python3-h5py not installed\n", out);
            continue;
        }
        char small[512];
        tmp_path(small, sizeof small, "small.keras");
        snprintf(cmd, sizeof cmd, "%s %s/keras_h5py_check.py %s %s %s", py, LOOM_TEST_DIR, src, out, small);
        CHECK(system(cmd) == 0);
    }
}

/* Keras 2 file (masks, initial states) -> loom -> .loom -> loom: same weights and the same
 * predictions to the bit; .keras is refused for its Keras 2 hard_sigmoid. */
static void real_h5_to_keras(void) {
    char src[600], out[512], err[1024] = "";
    snprintf(src, sizeof src, "%s/keras-models/katakana_seq2seq.h5", LOOM_SHARED_DIR);
    if (!LOOM_SHARED_DIR[0] || !file_exists(src)) {
        printf("SKIP .h5 -> .loom: %s not found\n", src);
        return;
    }
    loom_model *m = loom_model_import(src, err, sizeof err);
    CHECK(m != NULL);
    if (!m) return;
    /* Keras 2's hard_sigmoid has no Keras 3 name: .keras is refused, .weights.h5 and .loom work */
    tmp_path(out, sizeof out, "katakana.keras");
    CHECK(loom_model_export(m, out) != LOOM_OK);
    CHECK(strstr(loom_model_error(m), "hard_sigmoid") != NULL);
    tmp_path(out, sizeof out, "katakana.loom");
    CHECK_STATUS(loom_model_export(m, out), LOOM_OK);
    loom_model *r = loom_model_import(out, err, sizeof err);
    CHECK(r != NULL);
    if (!r) fprintf(stderr, "katakana.keras: %s\n", err);
    if (r) {
        CHECK(loom_param_count(r) == loom_param_count(m) &&
              memcmp(loom_params(r), loom_params(m), loom_param_count(m) * sizeof(float)) == 0);
        static float a[2 * 85], b[2 * 45], y0[2 * 45 * 89], y1[2 * 45 * 89];
        for (int i = 0; i < 2 * 85; i++) a[i] = (float)((i * 7) % 54 * (i % 9 != 0)); /* zeros: masked steps */
        for (int i = 0; i < 2 * 45; i++) b[i] = (float)((i * 5) % 89 * (i % 7 != 0));
        loom_array x[2] = {{.data = a, .n = 2, .count = 2 * 85}, {.data = b, .n = 2, .count = 2 * 45}};
        CHECK_STATUS(loom_predict(m, 2, x, 2, (float *[]){y0}), LOOM_OK);
        CHECK_STATUS(loom_predict(r, 2, x, 2, (float *[]){y1}), LOOM_OK);
        CHECK(memcmp(y0, y1, sizeof y0) == 0);
        loom_model_free(r);
    }
    loom_model_free(m);
}

/* TensorFlow.js reads what loom writes: tests/tfjs/run.sh exports this model (LOOM_TFJS_OUT), has
 * tfjs 4.22 predict on the inputs of predict2 and commits the result as tests/tfjs/predictions.json;
 * loom's predictions must match them. */
static void tfjs_check(void) {
    loom_model *m = model_with(true);
    if (!m) return;
    char path[512];
    const char *dir = getenv("LOOM_TFJS_OUT");
    if (dir) snprintf(path, sizeof path, "%s/model.json", dir);
    else tmp_path(path, sizeof path, "model.json");
    CHECK_STATUS(loom_model_export(m, path), LOOM_OK);
    float a[8], b[4], a1[8], b1[4];
    predict2(m, a, b);
    /* and back: loom reads its tfjs export bit for bit */
    char err[1024] = "";
    loom_model *r = loom_model_import(path, err, sizeof err);
    CHECK(r != NULL);
    if (!r) fprintf(stderr, "tfjs import: %s\n", err);
    if (r) {
        CHECK(loom_param_count(r) == loom_param_count(m) &&
              memcmp(loom_params(r), loom_params(m), loom_param_count(m) * sizeof(float)) == 0);
        predict2(r, a1, b1);
        CHECK(memcmp(a, a1, sizeof a) == 0 && memcmp(b, b1, sizeof b) == 0);
        loom_model_free(r);
    }
    loom_model_free(m);
    /* a GRU with reset_after has no tfjs form: refused by name */
    m = small_model();
    if (m) {
        CHECK(loom_model_export(m, path) != LOOM_OK && strstr(loom_model_error(m), "reset_after"));
        loom_model_free(m);
    }
    char fixture[512];
    snprintf(fixture, sizeof fixture, "%s/tfjs/predictions.json", LOOM_TEST_DIR);
    FILE *f = fopen(fixture, "rb");
    if (!f) {
        printf("SKIP tfjs predictions: %s not found (run tests/tfjs/run.sh)\n", fixture);
        return;
    }
    /* {"head_a": [8 numbers], "head_b": [4 numbers]} */
    char text[8192];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    const char *keys[2] = {"\"head_a\"", "\"head_b\""};
    float *mine[2] = {a, b};
    int counts[2] = {8, 4};
    for (int k = 0; k < 2; k++) {
        const char *p = strstr(text, keys[k]);
        CHECK(p != NULL);
        if (!p) continue;
        p = strchr(p, '[');
        for (int i = 0; p && i < counts[k]; i++) {
            char *end;
            double v = strtod(p + 1, &end);
            CHECK(end != p + 1);
            CHECK_CLOSE(mine[k][i], v, 1e-6, 1e-5);
            p = end;
        }
    }
}

/* ---------------------------------------------------------------- 3. dialects and errors */

static loom_model *from_json(const char *json, char *err, size_t n) {
    return loom_model_import_memory(json, strlen(json), "test.json", err, n);
}

#define DENSE_K2(name, extra) \
    "{\"class_name\": \"Dense\", \"config\": {\"name\": \"" name "\", \"units\": 2, \"activation\": \"relu\"" extra "}}"

static void dialects(void) {
    char err[1024];
    /* Keras 2 Sequential: the input from the first layer's batch_input_shape */
    const char *seq = "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", \"layers\": ["
                      "{\"class_name\": \"Dense\", \"config\": {\"name\": \"d1\", \"units\": 4, \"batch_input_shape\": [null, 3],"
                      " \"kernel_initializer\": {\"class_name\": \"VarianceScaling\", \"config\": {\"scale\": 1.0, \"mode\": \"fan_avg\","
                      " \"distribution\": \"uniform\", \"seed\": null}}, \"kernel_regularizer\": {\"class_name\": \"L2\", \"config\": {\"l2\": 0.01}}}},"
                      DENSE_K2("d2", "") "]}}";
    loom_model *m = from_json(seq, err, sizeof err);
    CHECK(m != NULL);
    if (!m) fprintf(stderr, "sequential: %s\n", err);
    if (m) {
        CHECK(loom_model_num_layers(m) == 3);
        CHECK(loom_model_input_size(m, 0) == 3 && loom_model_output_size(m, 0) == 2);
        CHECK(strcmp(loom_model_input_name(m, 0), "d1_input") == 0);
        loom_model_free(m);
    }
    /* an unknown option: named with layer, class and key */
    const char *bad = "{\"class_name\": \"Sequential\", \"config\": {\"layers\": ["
                      "{\"class_name\": \"Dense\", \"config\": {\"name\": \"d1\", \"units\": 4, \"batch_input_shape\": [null, 3], \"wobble\": 1}}]}}";
    CHECK(from_json(bad, err, sizeof err) == NULL);
    CHECK(strstr(err, "d1") && strstr(err, "Dense") && strstr(err, "wobble"));
    /* an unknown class */
    const char *cls = "{\"class_name\": \"Sequential\", \"config\": {\"layers\": ["
                      "{\"class_name\": \"Dense\", \"config\": {\"name\": \"d1\", \"units\": 4, \"batch_input_shape\": [null, 3]}},"
                      "{\"class_name\": \"Wobbler\", \"config\": {\"name\": \"w\"}}]}}";
    CHECK(from_json(cls, err, sizeof err) == NULL);
    CHECK(strstr(err, "w ") && strstr(err, "Wobbler"));
    /* a constraint is refused, not ignored */
    const char *con = "{\"class_name\": \"Sequential\", \"config\": {\"layers\": ["
                      "{\"class_name\": \"Dense\", \"config\": {\"name\": \"d1\", \"units\": 4, \"batch_input_shape\": [null, 3],"
                      " \"kernel_constraint\": {\"class_name\": \"MaxNorm\", \"config\": {\"max_value\": 2}}}}]}}";
    CHECK(from_json(con, err, sizeof err) == NULL);
    CHECK(strstr(err, "kernel_constraint") != NULL);
    /* Keras 3 Functional with a nested Sequential model, flattened with its layer names */
    const char *nest =
        "{\"module\": \"keras.src.models.functional\", \"class_name\": \"Functional\", \"config\": {\"name\": \"outer\","
        " \"layers\": [{\"module\": \"keras.layers\", \"class_name\": \"InputLayer\", \"config\": {\"batch_shape\": [null, 3],"
        " \"dtype\": \"float32\", \"name\": \"inp\"}, \"name\": \"inp\", \"inbound_nodes\": []},"
        " {\"module\": \"keras\", \"class_name\": \"Sequential\", \"name\": \"inner\", \"config\": {\"name\": \"inner\", \"layers\": ["
        "   {\"module\": \"keras.layers\", \"class_name\": \"InputLayer\", \"config\": {\"batch_shape\": [null, 3], \"name\": \"inner_in\"}},"
        "   {\"module\": \"keras.layers\", \"class_name\": \"Dense\", \"config\": {\"name\": \"hidden\", \"units\": 5, \"activation\": \"tanh\","
        "    \"dtype\": {\"module\": \"keras\", \"class_name\": \"DTypePolicy\", \"config\": {\"name\": \"float32\"}}}}]},"
        "  \"inbound_nodes\": [{\"args\": [{\"class_name\": \"__keras_tensor__\", \"config\": {\"keras_history\": [\"inp\", 0, 0]}}], \"kwargs\": {}}]},"
        " {\"module\": \"keras.layers\", \"class_name\": \"Dense\", \"config\": {\"name\": \"out\", \"units\": 1}, \"name\": \"out\","
        "  \"inbound_nodes\": [{\"args\": [{\"class_name\": \"__keras_tensor__\", \"config\": {\"keras_history\": [\"inner\", 0, 0]}}], \"kwargs\": {}}]}],"
        " \"input_layers\": [[\"inp\", 0, 0]], \"output_layers\": [[\"out\", 0, 0]]}}";
    m = from_json(nest, err, sizeof err);
    CHECK(m != NULL);
    if (!m) fprintf(stderr, "nested: %s\n", err);
    if (m) {
        CHECK(loom_model_find_layer(m, "hidden") != NULL && loom_model_find_layer(m, "inner") == NULL);
        CHECK(loom_model_output_size(m, 0) == 1);
        loom_model_free(m);
    }
}

/* A config whose loss loom does not know (real files carry custom names such as hinge_mse): the
 * model imports uncompiled, and the note and fit's error name the output and the loss. */
static void unknown_loss(void) {
    char err[1024] = "";
    const char *json =
        "{\"class_name\": \"Sequential\", \"config\": {\"layers\": ["
        "{\"class_name\": \"Dense\", \"config\": {\"name\": \"d\", \"units\": 2, \"batch_input_shape\": [null, 3]}}]},"
        " \"compile_config\": {\"loss\": \"hinge_mse\", \"optimizer\": {\"class_name\": \"Adam\", \"config\": {\"learning_rate\": 0.01}},"
        " \"metrics\": [\"mae\"]}}";
    loom_model *m = from_json(json, err, sizeof err);
    CHECK(m != NULL);
    if (!m) return;
    const char *note = loom_model_compile_note(m);
    CHECK(strstr(note, "output d") && strstr(note, "hinge_mse") && strstr(note, ".fn"));
    float x[6] = {0}, y[4] = {0};
    loom_array xa = {.data = x, .n = 2, .count = 6}, ya = {.data = y, .n = 2, .count = 4};
    loom_data data = {.n_x = 1, .x = &xa, .n_y = 1, .y = &ya};
    loom_fit_options fo = loom_fit_defaults();
    fo.verbose = 0;
    CHECK(loom_fit(m, &data, &fo, NULL) == LOOM_ERR_STATE);
    CHECK(strstr(loom_model_error(m), "hinge_mse") != NULL);
    loom_model_free(m);
    /* the same with a known loss compiles, optimizer settings included */
    const char *ok =
        "{\"class_name\": \"Sequential\", \"config\": {\"layers\": ["
        "{\"class_name\": \"Dense\", \"config\": {\"name\": \"d\", \"units\": 2, \"batch_input_shape\": [null, 3]}}]},"
        " \"compile_config\": {\"loss\": {\"class_name\": \"MeanSquaredError\", \"config\": {}}, \"optimizer\": "
        "{\"class_name\": \"Adam\", \"config\": {\"learning_rate\": 0.01}}, \"metrics\": [\"mae\"]}}";
    m = from_json(ok, err, sizeof err);
    CHECK(m != NULL);
    if (m) {
        CHECK(loom_model_compile_note(m)[0] == 0);
        CHECK(fabsf(loom_get_learning_rate(m) - 0.01f) < 1e-9f);
        loom_model_free(m);
    }
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/loom_keras_io_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    /* a loom built without HDF5 or libzip must say so, never fail silently */
    {
        loom_model *m = small_model();
        char path[512];
        tmp_path(path, sizeof path, "probe.keras");
        if (m && loom_model_export(m, path) != LOOM_OK && strstr(loom_model_error(m), "built without")) {
            printf("SKIP Keras files: %s\n", loom_model_error(m));
            CHECK(strstr(loom_model_error(m), "HDF5") || strstr(loom_model_error(m), "libzip"));
            loom_model_free(m);
            dialects();
            unknown_loss();
            remove(path);
            rmdir(tmpdir);
            return check_report("test_keras_io");
        }
        loom_model_free(m);
    }
    real_files();
    round_trips();
    real_reexport();
    real_h5_to_keras();
    tfjs_check();
    dialects();
    unknown_loss();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_report("test_keras_io");
}
