/* test_keras_more.c — Keras files beyond the first importer (issue 15, second round).
 *
 * 1. MultiHeadAttention in a Keras 3 .keras (tests/keras_fixtures/mha.keras, written by
 *    make_mha_keras.py in Keras 3.7's layout; called positionally, by keyword and with
 *    use_causal_mask): imports, predicts what a NumPy float64 forward of Keras's equations
 *    predicts to 1e-5 relative, exports and imports again bit for bit; h5py compares the
 *    re-export with the original dataset by dataset (tests/keras_h5py_check.py) when
 *    python3-h5py is present.
 * 2. The dtype policy: a model under mixed_bfloat16 (global, and one layer's own over a float32
 *    model) exported as .keras and tfjs carries Keras 3's DTypePolicy objects and comes back
 *    under the same policies with the same bits and predictions.
 * 3. tests/tfjs_zoo/: models built and saved by TensorFlow.js 4.22 itself (make_zoo.js) import
 *    and predict what tfjs predicted to 1e-5 relative.
 * 4. tests/keras_fixtures/dialects/: hand-made configs in the shapes Keras 2 and 3 write them. */
#include "check.h"
#include "loom.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef LOOM_PYTHON
#define LOOM_PYTHON ""
#endif

static char tmpdir[256];

static void tmp_path(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", tmpdir, name); }

/* The interpreter with h5py, or "" (Debian's python3-h5py lives in the system one). */
static const char *h5py_python(void) {
    static char py[300];
    static int done;
    if (done) return py;
    done = 1;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "%s -c 'import h5py' 2>/dev/null", LOOM_PYTHON);
    if (LOOM_PYTHON[0] && system(cmd) == 0) snprintf(py, sizeof py, "%s", LOOM_PYTHON);
    else if (system("/usr/bin/python3 -c 'import h5py' 2>/dev/null") == 0) snprintf(py, sizeof py, "/usr/bin/python3");
    return py;
}

/* Predictions of m on inputs dir/<stem>input_<i>.npy against dir/<stem>output_<k>.npy: 1e-5
 * relative with an absolute floor of 1e-6 of the output's largest value (as test_keras_io).
 * Returns the worst ratio to that tolerance (> 1 fails), -1 when a file is missing. */
static double predict_vs(loom_model *m, const char *dir, const char *stem, int n_in, int n_out) {
    loom_ndarray in[8] = {{0}}, ref[8] = {{0}};
    loom_array x[8];
    char path[700], err[512];
    double worst = -1;
    float *pred[8] = {0};
    bool ok = n_in <= 8 && n_out <= 8;
    for (int i = 0; ok && i < n_in; i++) {
        snprintf(path, sizeof path, "%s/%sinput_%d.npy", dir, stem, i);
        ok = loom_npy_load(path, &in[i], err, sizeof err) == LOOM_OK;
        if (!ok) fprintf(stderr, "%s\n", err);
        if (ok) x[i] = (loom_array){.name = NULL, .data = in[i].data, .n = in[i].dims[0], .count = in[i].size};
    }
    for (int k = 0; ok && k < n_out; k++) {
        snprintf(path, sizeof path, "%s/%soutput_%d.npy", dir, stem, k);
        ok = loom_npy_load(path, &ref[k], err, sizeof err) == LOOM_OK;
        if (!ok) fprintf(stderr, "%s\n", err);
        ok = ok && ref[k].size == in[0].dims[0] * loom_model_output_size(m, k);
        if (ok) pred[k] = calloc(ref[k].size, sizeof(float));
    }
    if (ok && loom_predict(m, n_in, x, (int)in[0].dims[0], pred) != LOOM_OK) {
        fprintf(stderr, "%s%s: predict: %s\n", dir, stem, loom_model_error(m));
        ok = false;
    }
    if (ok) {
        worst = 0;
        for (int k = 0; k < n_out; k++) {
            double scale = 0;
            for (size_t i = 0; i < ref[k].size; i++) scale = fmax(scale, fabs((double)ref[k].data[i]));
            for (size_t i = 0; i < ref[k].size; i++) {
                double r = fabs((double)pred[k][i] - ref[k].data[i]) / (1e-5 * fabs((double)ref[k].data[i]) + 1e-6 * scale + 1e-30);
                if (!(r <= worst)) worst = r;
            }
        }
    }
    for (int i = 0; i < 8; i++) {
        loom_ndarray_free(&in[i]);
        loom_ndarray_free(&ref[i]);
        free(pred[i]);
    }
    return worst;
}

static bool same_params(loom_model *a, loom_model *b) {
    return loom_param_count(a) == loom_param_count(b) &&
           memcmp(loom_params(a), loom_params(b), loom_param_count(a) * sizeof(float)) == 0;
}

/* ---------------------------------------------------------------- 1. MultiHeadAttention */

static void mha_file(void) {
    char src[700], out[512], err[1024] = "", dir[600];
    snprintf(dir, sizeof dir, "%s/keras_fixtures", LOOM_TEST_DIR);
    snprintf(src, sizeof src, "%s/mha.keras", dir);
    loom_model *m = loom_model_import(src, err, sizeof err);
    CHECK(m != NULL);
    if (!m) {
        fprintf(stderr, "mha.keras: %s\n", err);
        return;
    }
    CHECK(loom_model_num_inputs(m) == 2 && loom_model_num_outputs(m) == 1);
    double r = predict_vs(m, dir, "mha_", 2, 1);
    printf("mha.keras: %.2f of the tolerance\n", r);
    CHECK(r >= 0 && r <= 1);
    tmp_path(out, sizeof out, "mha_again.keras");
    CHECK_STATUS(loom_model_export(m, out), LOOM_OK);
    loom_model *again = loom_model_import(out, err, sizeof err);
    CHECK(again != NULL);
    if (!again) fprintf(stderr, "mha_again.keras: %s\n", err);
    if (again) {
        CHECK(same_params(m, again));
        CHECK(predict_vs(again, dir, "mha_", 2, 1) == r); /* the same bits give the same ratio */
        loom_model_free(again);
    }
    /* TensorFlow.js 4.22 has no MultiHeadAttention layer: refused by name */
    tmp_path(out, sizeof out, "mha.json");
    CHECK(loom_model_export(m, out) != LOOM_OK && strstr(loom_model_error(m), "MultiHeadAttention"));
    /* weights only, into the same architecture */
    tmp_path(out, sizeof out, "mha.weights.h5");
    CHECK_STATUS(loom_model_export(m, out), LOOM_OK);
    loom_model *fresh = loom_model_import(src, err, sizeof err);
    if (fresh) {
        memset(loom_params(fresh), 0, loom_param_count(fresh) * sizeof(float));
        CHECK_STATUS(loom_load_weights(fresh, out), LOOM_OK);
        CHECK(same_params(m, fresh));
        loom_model_free(fresh);
    }
    loom_model_free(m);
    const char *py = h5py_python();
    if (!py[0]) {
        printf("SKIP h5py check of the MultiHeadAttention re-export: python3-h5py not installed\n");
        return;
    }
    char cmd[2000];
    tmp_path(out, sizeof out, "mha_again.keras");
    snprintf(cmd, sizeof cmd, "%s %s/keras_h5py_check.py %s %s", py, LOOM_TEST_DIR, src, out);
    CHECK(system(cmd) == 0);
}

/* ---------------------------------------------------------------- 2. dtype policy */

static loom_model *policy_model(loom_dtype_policy global, bool own) {
    loom_graph *g = loom_graph_new(11);
    int d[1] = {6};
    loom_tensor *x = loom_input(g, "x", 1, d);
    loom_layer *h1 = loom_dense(g, "h1", 8, LOOM_RELU, NULL);
    loom_tensor *h = loom_call(h1, x);
    h = loom_call(loom_dense(g, "h2", 5, LOOM_TANH, NULL), h);
    loom_tensor *y = loom_call(loom_dense(g, "y", 3, LOOM_SOFTMAX, NULL), h);
    if (own) loom_layer_set_dtype_policy(h1, LOOM_POLICY_MIXED_BFLOAT16);
    loom_model *m = loom_model_new(g, 1, &x, 1, &y);
    if (!m) return NULL;
    float *p = loom_params(m);
    for (size_t i = 0; i < loom_param_count(m); i++) p[i] = (float)sin(0.71 * (double)i + 0.3) * 0.6f;
    loom_loss l = {.name = "categorical_crossentropy"};
    loom_compile_config cfg = {.n_losses = 1, .losses = &l, .optimizer = loom_adam(0.001f), .dtype_policy = global};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    return m;
}

static void predict_policy(loom_model *m, float *y) {
    static float x[5 * 6];
    for (int i = 0; i < 5 * 6; i++) x[i] = (float)cos(0.37 * i) * 1.7f;
    loom_array a = {.data = x, .n = 5, .count = 5 * 6};
    CHECK_STATUS(loom_predict(m, 1, &a, 5, (float *[]){y}), LOOM_OK);
}

/* Does the file's text hold Keras 3's DTypePolicy object for mixed_bfloat16 (once per layer under
 * it, counted)? */
static int count_in_file(const char *path, const char *needle) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    int c = 0;
    for (const char *p = text; (p = strstr(p, needle)); p++) c++;
    return c;
}

static void policy_round_trip(const char *file, loom_dtype_policy global, bool own, int n_bf16_layers) {
    loom_model *m = policy_model(global, own);
    CHECK(m != NULL);
    if (!m) return;
    float y0[15], y1[15];
    predict_policy(m, y0);
    char path[512], err[1024] = "";
    tmp_path(path, sizeof path, file);
    CHECK_STATUS(loom_model_export(m, path), LOOM_OK);
    if (strstr(file, ".json")) /* tfjs's model.json is plain text */
        CHECK(count_in_file(path, "mixed_bfloat16") == n_bf16_layers);
    loom_model *r = loom_model_import(path, err, sizeof err);
    CHECK(r != NULL);
    if (!r) {
        fprintf(stderr, "%s: %s\n", file, err);
        loom_model_free(m);
        return;
    }
    /* every layer back under the policy it computed under */
    int n_bf16 = 0;
    for (int i = 0; i < loom_model_num_layers(m); i++) {
        const loom_layer *L = loom_model_layer(m, i);
        const loom_layer *R = loom_model_find_layer(r, loom_layer_name(L));
        CHECK(R != NULL);
        if (!R) continue;
        loom_dtype_policy want = loom_model_layer_policy(m, L);
        CHECK(loom_model_layer_policy(r, R) == want);
        n_bf16 += want == LOOM_POLICY_MIXED_BFLOAT16;
    }
    CHECK(n_bf16 == n_bf16_layers);
    CHECK(same_params(m, r));
    predict_policy(r, y1);
    CHECK(memcmp(y0, y1, sizeof y0) == 0);
    if (memcmp(y0, y1, sizeof y0) != 0) fprintf(stderr, "%s: other predictions after the round trip\n", file);
    /* and the policy changes the numbers: a float32 copy predicts otherwise */
    loom_model *f32 = policy_model(LOOM_POLICY_FLOAT32, false);
    if (f32) {
        float y2[15];
        predict_policy(f32, y2);
        CHECK(memcmp(y0, y2, sizeof y0) != 0);
        loom_model_free(f32);
    }
    loom_model_free(r);
    loom_model_free(m);
}

static void dtype_policy(void) {
    policy_round_trip("global_bf16.keras", LOOM_POLICY_MIXED_BFLOAT16, false, 3);
    policy_round_trip("own_bf16.keras", LOOM_POLICY_FLOAT32, true, 1);
    policy_round_trip("global_bf16.json", LOOM_POLICY_MIXED_BFLOAT16, false, 3);
    policy_round_trip("own_bf16.json", LOOM_POLICY_FLOAT32, true, 1);
    const char *py = h5py_python();
    if (!py[0]) {
        printf("SKIP h5py check of the dtype policies: python3-h5py not installed\n");
        return;
    }
    char cmd[2000], a[512], b[512];
    tmp_path(a, sizeof a, "global_bf16.keras");
    tmp_path(b, sizeof b, "own_bf16.keras");
    snprintf(cmd, sizeof cmd, "%s %s/keras_h5py_check.py --policies %s:mixed_bfloat16 %s:h1=mixed_bfloat16", py,
             LOOM_TEST_DIR, a, b);
    CHECK(system(cmd) == 0);
}

/* ---------------------------------------------------------------- 3. files TensorFlow.js wrote */

static void tfjs_zoo(void) {
    char index[600], line[400];
    snprintf(index, sizeof index, "%s/tfjs_zoo/index.txt", LOOM_TEST_DIR);
    FILE *f = fopen(index, "r");
    CHECK(f != NULL); /* committed with the tests */
    if (!f) return;
    int n_models = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        char name[100], refusal[200] = "";
        int n_in = 0, n_out = 0;
        if (sscanf(line, "%99s %d %d refused: %199s", name, &n_in, &n_out, refusal) < 3) continue;
        n_models++;
        char dir[700], path[800], err[1024] = "";
        snprintf(dir, sizeof dir, "%s/tfjs_zoo/%s", LOOM_TEST_DIR, name);
        snprintf(path, sizeof path, "%s/model.json", dir);
        loom_model *m = loom_model_import(path, err, sizeof err);
        if (refusal[0]) {
            CHECK(m == NULL && strstr(err, refusal) != NULL);
            printf("tfjs_zoo/%s: refused as expected: %s\n", name, err);
            loom_model_free(m);
            continue;
        }
        CHECK(m != NULL);
        if (!m) {
            fprintf(stderr, "tfjs_zoo/%s: %s\n", name, err);
            continue;
        }
        CHECK(loom_model_num_inputs(m) == n_in && loom_model_num_outputs(m) == n_out);
        /* the compile settings tfjs saved (trainingConfig) */
        if (strcmp(name, "seq_dense") == 0) CHECK(fabsf(loom_get_learning_rate(m) - 0.003f) < 1e-9f);
        if (strcmp(name, "multi_io") == 0) CHECK(fabsf(loom_get_learning_rate(m) - 0.05f) < 1e-9f); /* tfjs writes no loss_weights */
        double r = predict_vs(m, dir, "", n_in, n_out);
        printf("tfjs_zoo/%s: %.3f of the tolerance\n", name, r);
        CHECK(r >= 0 && r <= 1);
        /* and out again: tfjs -> loom -> tfjs -> loom keeps every bit */
        char again[600];
        snprintf(again, sizeof again, "%s/%s.json", tmpdir, name);
        CHECK_STATUS(loom_model_export(m, again), LOOM_OK);
        loom_model *r2 = loom_model_import(again, err, sizeof err);
        CHECK(r2 != NULL && same_params(m, r2));
        if (!r2) fprintf(stderr, "tfjs_zoo/%s again: %s\n", name, err);
        loom_model_free(r2);
        loom_model_free(m);
    }
    fclose(f);
    CHECK(n_models >= 10);
}

/* ---------------------------------------------------------------- 4. config dialects */

static loom_model *dialect(const char *file, char *err, size_t n) {
    char path[600];
    snprintf(path, sizeof path, "%s/keras_fixtures/dialects/%s", LOOM_TEST_DIR, file);
    loom_model *m = loom_model_import(path, err, n);
    if (!m) fprintf(stderr, "%s: %s\n", file, err);
    return m;
}

static void dialects(bool keras_files) {
    char err[1024] = "";
    /* tf.keras 2.13: nested-list inbound_nodes, a shared layer (node 1 used), MultiHeadAttention
     * called with value= and use_causal_mask= in its call's kwargs dict and attention_axes [1] as
     * tf.keras saves it after build, a nested Functional whose first outer call is its node 1 */
    loom_model *m = dialect("k2_functional.json", err, sizeof err);
    CHECK(m != NULL);
    if (m) {
        CHECK(loom_model_num_inputs(m) == 2 && loom_model_output_size(m, 0) == 2);
        loom_layer *shared = loom_model_find_layer(m, "shared"), *mha = loom_model_find_layer(m, "mha");
        CHECK(shared && loom_layer_weight_size(shared, 0) == 9); /* one kernel for both calls */
        CHECK(mha != NULL && loom_model_find_layer(m, "inner_dense") != NULL);
        /* the causal flag arrived: the same file without it predicts otherwise */
        char path[600];
        snprintf(path, sizeof path, "%s/keras_fixtures/dialects/k2_functional.json", LOOM_TEST_DIR);
        FILE *f = fopen(path, "rb");
        static char text[16384];
        size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
        if (f) fclose(f);
        text[n] = 0;
        char *flag = strstr(text, "\"use_causal_mask\": true");
        CHECK(flag != NULL);
        if (flag) memcpy(flag + strlen("\"use_causal_mask\": "), "null", 4);
        loom_model *plain = flag ? loom_model_import_memory(text, n, "k2_functional.json", err, sizeof err) : NULL;
        CHECK(plain != NULL && loom_param_count(plain) == loom_param_count(m));
        if (plain) {
            memcpy(loom_params(plain), loom_params(m), loom_param_count(m) * sizeof(float));
            static float x[2][2 * 12], y[2][2 * 2];
            for (int i = 0; i < 2 * 12; i++) x[0][i] = (float)sin(0.9 * i), x[1][i] = (float)cos(0.4 * i);
            loom_array xs[2] = {{.data = x[0], .n = 2, .count = 24}, {.data = x[1], .n = 2, .count = 24}};
            CHECK_STATUS(loom_predict(m, 2, xs, 2, (float *[]){y[0]}), LOOM_OK);
            CHECK_STATUS(loom_predict(plain, 2, xs, 2, (float *[]){y[1]}), LOOM_OK);
            CHECK(memcmp(y[0], y[1], sizeof y[0]) != 0);
            loom_model_free(plain);
        }
        char out[512];
        tmp_path(out, sizeof out, "k2_functional.keras");
        if (keras_files) { /* and out as Keras 3, back the same */
            CHECK_STATUS(loom_model_export(m, out), LOOM_OK);
            loom_model *r = loom_model_import(out, err, sizeof err);
            CHECK(r != NULL && same_params(m, r));
            loom_model_free(r);
        }
        loom_model_free(m);
    }
    /* Keras 3 Sequential: InputLayer entry, DTypePolicy objects (mixed_bfloat16 per layer, one
     * float32), initializer / regularizer objects with module and registered_name, compile_config
     * with loss and optimizer objects */
    m = dialect("k3_sequential.json", err, sizeof err);
    CHECK(m != NULL);
    if (m) {
        CHECK(loom_model_num_layers(m) == 4 && loom_model_input_size(m, 0) == 6);
        CHECK(loom_model_layer_policy(m, loom_model_find_layer(m, "dense")) == LOOM_POLICY_MIXED_BFLOAT16);
        CHECK(loom_model_layer_policy(m, loom_model_find_layer(m, "dense_1")) == LOOM_POLICY_FLOAT32);
        CHECK(fabsf(loom_get_learning_rate(m) - 0.0005f) < 1e-9f);
        loom_model_free(m);
    }
    /* Keras 3 Functional with dict inputs and outputs (input_layers / output_layers as dicts),
     * a training=False call argument, compile_config by output name */
    m = dialect("k3_dict_io.json", err, sizeof err);
    CHECK(m != NULL);
    if (m) {
        CHECK(loom_model_num_inputs(m) == 2 && loom_model_num_outputs(m) == 2);
        CHECK(strcmp(loom_model_input_name(m, 0), "a") == 0 && strcmp(loom_model_output_name(m, 0), "label") == 0);
        CHECK(loom_get_loss_weight(m, "score") == 0.3f);
        loom_model_free(m);
    }
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/loom_keras_more_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    /* a loom built without HDF5 or libzip says so; the .keras parts then cannot run */
    char probe[512], err[1024] = "";
    snprintf(probe, sizeof probe, "%s/keras_fixtures/mha.keras", LOOM_TEST_DIR);
    loom_model *m = loom_model_import(probe, err, sizeof err);
    bool keras_files = m || !strstr(err, "built without");
    loom_model_free(m);
    tfjs_zoo();
    dialects(keras_files);
    if (keras_files) {
        mha_file();
        dtype_policy();
    } else {
        printf("SKIP .keras parts: %s\n", err);
    }
    char cmd[400];
    if (getenv("LOOM_KEEP_TMP")) return check_report("test_keras_more");
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_report("test_keras_more");
}
