/* test_onnx_real.c — the real Keras files of ../shared/keras-models exported to ONNX and checked
 * against ONNX Runtime (issue 20).
 *
 * Each file (LOOM_SHARED_DIR; skipped with a message when absent) is imported, exported to ONNX
 * and run by loom on its reference inputs (refs/<name>/input_<k>.npy). Three sets of predictions
 * must agree to 1e-5 relative (with an absolute floor of 1e-6 of the output's largest value, as
 * test_keras_io): loom's, the Keras-side references (refs/<name>/output_<k>.npy: TensorFlow.js 4.22
 * or an independent NumPy forward pass) and ONNX Runtime's on the exported file, committed in
 * tests/reference/onnx_real/<name>/ort_output_<k>.npy by tests/reference/onnx_real_ort.sh (which
 * runs this program with --write DIR, then onnx_real_ort.js in onnxruntime-node), so this test
 * needs neither npm nor Python.
 *
 * The exported files stay in LOOM_ONNX_REAL_DIR for ONNX's checker (ctest onnx_checker_real).
 *   test_onnx_real                    compare with the committed ONNX Runtime outputs
 *   test_onnx_real --write DIR        export into DIR with a manifest for onnx_real_ort.js
 *   test_onnx_real --fixture DIR      compare with ONNX Runtime outputs in DIR/<name>/ */
#include "check.h"
#include "loom.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef LOOM_SHARED_DIR
#define LOOM_SHARED_DIR ""
#endif
#ifndef LOOM_ONNX_REAL_DIR
#define LOOM_ONNX_REAL_DIR "onnx_real_models"
#endif

typedef struct real_file {
    const char *file, *name;
    int none_dim; /* the length of the references' sequences, for an input of unknown length */
} real_file;

static const real_file REAL[] = {
    {"digits_conv2d_bn.keras", "digits_conv2d_bn", 0}, {"energy_bigru_bn.keras", "energy_bigru_bn", 0},
    {"keras2c_example.h5", "keras2c_example", 0},      {"sentiment_embed.keras", "sentiment_embed", 20},
    {"katakana_seq2seq.h5", "katakana_seq2seq", 0},    {"weather_decoder.keras", "weather_decoder", 0},
};
#define N_REAL (int)(sizeof REAL / sizeof REAL[0])
#define MAX_IO 4

/* |a - b| / (1e-5 |b| + 1e-6 max |b|), the worst over the output (<= 1 passes); NaN counts as worst. */
static double tolerance_ratio(const float *a, const float *b, size_t n) {
    double worst = 0, scale = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs((double)b[i]));
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)a[i] - b[i]) / (1e-5 * fabs((double)b[i]) + 1e-6 * scale);
        if (!(r <= worst)) worst = isnan(r) ? INFINITY : r;
    }
    return worst;
}

static bool agree(const char *what, const float *a, const float *b, size_t n) {
    double t = tolerance_ratio(a, b, n);
    printf("  %-44s %6zu values, %.3f of the tolerance\n", what, n, t);
    CHECK(t <= 1.0);
    return t <= 1.0;
}

static bool load_npy(const char *path, loom_ndarray *a) {
    char err[512];
    if (loom_npy_load(path, a, err, sizeof err) == LOOM_OK) return true;
    fprintf(stderr, "%s\n", err);
    return false;
}

static void one_file(const real_file *r, const char *models, const char *ort_dir, FILE *manifest) {
    char path[1024], err[1024] = "";
    snprintf(path, sizeof path, "%s/keras-models/%s", LOOM_SHARED_DIR, r->file);
    loom_import_options io = {.none_dim = r->none_dim};
    loom_model *m = loom_model_import_with(path, &io, err, sizeof err);
    CHECK(m != NULL);
    if (!m) {
        fprintf(stderr, "%s: %s\n", r->file, err);
        return;
    }
    printf("%s\n", r->file);
    char onnx[1024];
    snprintf(onnx, sizeof onnx, "%s/%s.onnx", models, r->name);
    loom_status s = loom_model_export_onnx(m, onnx);
    CHECK_STATUS(s, LOOM_OK);
    if (s) fprintf(stderr, "%s: %s\n", r->file, loom_model_error(m));
    int ni = loom_model_num_inputs(m), no = loom_model_num_outputs(m);
    CHECK(ni <= MAX_IO && no <= MAX_IO);
    if (ni > MAX_IO || no > MAX_IO) {
        loom_model_free(m);
        return;
    }
    if (manifest) fprintf(manifest, "model %s %s.onnx\n", r->name, r->name);
    loom_ndarray in[MAX_IO] = {{0}}, ref[MAX_IO] = {{0}}, ort[MAX_IO] = {{0}};
    loom_array x[MAX_IO];
    float *pred[MAX_IO] = {0};
    bool ok = true;
    for (int i = 0; i < ni && ok; i++) {
        snprintf(path, sizeof path, "%s/keras-models/refs/%s/input_%d.npy", LOOM_SHARED_DIR, r->name, i);
        ok = load_npy(path, &in[i]);
        if (ok) x[i] = (loom_array){.name = NULL, .data = in[i].data, .n = in[i].dims[0], .count = in[i].size};
        if (ok && manifest) fprintf(manifest, "input %s %s\n", loom_model_input_name(m, i), path);
    }
    for (int k = 0; k < no && ok; k++) {
        snprintf(path, sizeof path, "%s/keras-models/refs/%s/output_%d.npy", LOOM_SHARED_DIR, r->name, k);
        ok = load_npy(path, &ref[k]) && ref[k].size == in[0].dims[0] * loom_model_output_size(m, k);
        pred[k] = ok ? calloc(ref[k].size, sizeof(float)) : NULL;
        ok = ok && pred[k];
        if (ok && manifest) fprintf(manifest, "output %s %d\n", loom_model_output_name(m, k), k);
    }
    CHECK(ok);
    if (ok && !manifest) {
        CHECK_STATUS(loom_predict(m, ni, x, (int)in[0].dims[0], pred), LOOM_OK);
        for (int k = 0; k < no; k++) {
            char what[160];
            snprintf(path, sizeof path, "%s/%s/ort_output_%d.npy", ort_dir, r->name, k);
            bool have_ort = load_npy(path, &ort[k]);
            CHECK(have_ort && ort[k].size == ref[k].size);
            const char *name = loom_model_output_name(m, k);
            snprintf(what, sizeof what, "%s: loom vs Keras reference", name);
            agree(what, pred[k], ref[k].data, ref[k].size);
            if (have_ort && ort[k].size == ref[k].size) {
                snprintf(what, sizeof what, "%s: ONNX Runtime vs loom", name);
                agree(what, ort[k].data, pred[k], ref[k].size);
                snprintf(what, sizeof what, "%s: ONNX Runtime vs Keras reference", name);
                agree(what, ort[k].data, ref[k].data, ref[k].size);
            }
        }
    }
    for (int i = 0; i < MAX_IO; i++) {
        loom_ndarray_free(&in[i]);
        loom_ndarray_free(&ref[i]);
        loom_ndarray_free(&ort[i]);
        free(pred[i]);
    }
    loom_model_free(m);
}

int main(int argc, char **argv) {
    const char *write_dir = argc == 3 && strcmp(argv[1], "--write") == 0 ? argv[2] : NULL;
    const char *ort_dir = argc == 3 && strcmp(argv[1], "--fixture") == 0 ? argv[2] : LOOM_TEST_DIR "/reference/onnx_real";
    char probe[600];
    snprintf(probe, sizeof probe, "%s/keras-models/README.md", LOOM_SHARED_DIR);
    if (!LOOM_SHARED_DIR[0] || access(probe, R_OK) != 0) {
        printf("SKIP: %s not found (set LOOM_SHARED_DIR to the folder holding keras-models/)\n", probe);
        return 0;
    }
#ifndef LOOM_HAVE_ONNX
    printf("SKIP: this loom was built without ONNX export\n");
    return 0;
#endif
    const char *models = write_dir ? write_dir : LOOM_ONNX_REAL_DIR;
    mkdir(models, 0777);
    FILE *manifest = NULL;
    if (write_dir) {
        char mp[1024];
        snprintf(mp, sizeof mp, "%s/manifest.txt", write_dir);
        manifest = fopen(mp, "w");
        CHECK(manifest != NULL);
        if (!manifest) return check_report("onnx_real");
    }
    for (int f = 0; f < N_REAL; f++) one_file(&REAL[f], models, ort_dir, manifest);
    if (manifest) fclose(manifest);
    return check_report("onnx_real");
}
