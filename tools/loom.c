/* loom.c — the command-line program.
 *   loom demo [--epochs N] [--seed N] [--quiet] [--data PATH] [--save MODEL]
 *       trains the seed model (input -> A -> B -> {C: digit class, D: pixel reconstruction}) on
 *       scikit-learn's 8x8 digits and shows which layers each loss trains and how they agree.
 *   loom summary [MODEL]             the seed model's (or a model file's) summary table: any
 *       file loom_model_import reads (.loom, Keras .keras / .h5).
 *   loom convert IN OUT              a model file into another format (loom_model_import, then
 *       loom_model_export by OUT's extension: .loom, .keras, .weights.h5).
 *   loom diagnose MODEL DATA.npz     how the losses of a saved model share it, measured on the
 *       arrays of DATA.npz named after the model's inputs and outputs.
 *   loom fashion [options]           the Fashion-MNIST multi-task example (docs/fashion.md). */
#include "commands.h"
#include "digits.h"
#include "loom.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef LOOM_DATA_DIR
#define LOOM_DATA_DIR "data"
#endif

typedef struct demo_opts {
    int epochs;
    uint64_t seed;
    int verbose;
    const char *data;
    const char *save;
} demo_opts;

/* in(64) -> A Dense 64 relu -> B Dense 32 relu -> { C Dense 10 softmax ; D Dense 64 linear } */
static loom_model *seed_model(uint64_t seed) {
    loom_graph *g = loom_graph_new(seed);
    if (!g) return NULL;
    loom_tensor *x = loom_input(g, "pixels", 1, (int[]){64});
    loom_tensor *a = loom_call(loom_dense(g, "A", 64, LOOM_RELU, NULL), x);
    loom_tensor *b = loom_call(loom_dense(g, "B", 32, LOOM_RELU, NULL), a);
    loom_tensor *c = loom_call(loom_dense(g, "C", 10, LOOM_SOFTMAX, NULL), b);
    loom_tensor *d = loom_call(loom_dense(g, "D", 64, LOOM_LINEAR, NULL), b);
    loom_model *m = loom_model_new(g, 1, &x, 2, (loom_tensor *[]){c, d});
    if (!m) {
        fprintf(stderr, "loom: %s\n", loom_graph_error(g));
        loom_graph_free(g);
    }
    return m;
}

static int compile_seed(loom_model *m) {
    loom_loss losses[] = {{.name = "categorical_crossentropy"}, {.name = "mse"}};
    float weights[] = {0.5f, 0.3f};
    loom_metric_spec metrics[] = {{"C", "accuracy"}, {"D", "mae"}};
    loom_compile_config cfg = {0};
    cfg.n_losses = 2;
    cfg.losses = losses;
    cfg.n_loss_weights = 2;
    cfg.loss_weights = weights;
    cfg.n_metrics = 2;
    cfg.metrics = metrics;
    cfg.optimizer = loom_adam(0.003f);
    if (loom_compile(m, &cfg)) {
        fprintf(stderr, "loom: %s\n", loom_model_error(m));
        return -1;
    }
    return 0;
}

static double layer_norm(const loom_model *m, const loom_layer *L, const float *grad) {
    double s = 0;
    for (int w = 0; w < loom_layer_num_weights(L); w++) {
        size_t off = loom_param_offset(m, loom_layer_name(L), w), n = loom_layer_weight_size(L, w);
        for (size_t i = 0; i < n; i++) s += (double)grad[off + i] * grad[off + i];
    }
    return sqrt(s);
}

/* For each loss: the layers it reaches (from the graph) and the measured norm of the gradient of
 * w_k * L_k per layer on a batch — 0 exactly where the loss does not reach. */
static int report_reach(loom_model *m, const loom_data *batch, size_t n) {
    size_t np = loom_param_count(m);
    float *gC = calloc(np, sizeof *gC), *gD = calloc(np, sizeof *gD);
    if (!gC || !gD) {
        free(gC);
        free(gD);
        return -1;
    }
    if (loom_loss_gradients(m, batch, 1, (float *const[]){gC, gD}, NULL)) {
        fprintf(stderr, "loom: %s\n", loom_model_error(m));
        free(gC);
        free(gD);
        return -1;
    }
    printf("\nWhich layers each loss trains: norm of the gradient of w_k * L_k per layer,\n"
           "measured on %zu validation samples (\"-\": the loss does not reach the layer).\n\n", n);
    printf("  %-8s %-7s %22s %22s\n", "layer", "type", "C_loss (w=0.5)", "D_loss (w=0.3)");
    for (int i = 0; i < loom_model_num_layers(m); i++) {
        loom_layer *L = loom_model_layer(m, i);
        if (loom_layer_num_weights(L) == 0) continue;
        char cs[32], ds[32];
        double nc = layer_norm(m, L, gC), nd = layer_norm(m, L, gD);
        snprintf(cs, sizeof cs, "%s%.4e", loom_loss_reaches(m, "C", loom_layer_name(L)) ? "" : "- ", nc);
        snprintf(ds, sizeof ds, "%s%.4e", loom_loss_reaches(m, "D", loom_layer_name(L)) ? "" : "- ", nd);
        printf("  %-8s %-7s %22s %22s\n", loom_layer_name(L), loom_layer_class(L), cs, ds);
    }
    printf("\nC_loss reaches:");
    for (int i = 0; i < loom_model_num_layers(m); i++)
        if (loom_loss_reaches(m, "C", loom_layer_name(loom_model_layer(m, i))))
            printf(" %s", loom_layer_name(loom_model_layer(m, i)));
    printf("\nD_loss reaches:");
    for (int i = 0; i < loom_model_num_layers(m); i++)
        if (loom_loss_reaches(m, "D", loom_layer_name(loom_model_layer(m, i))))
            printf(" %s", loom_layer_name(loom_model_layer(m, i)));
    printf("\n\n");
    free(gC);
    free(gD);
    loom_diagnostics *diag = loom_diagnose(m, batch);
    if (!diag) {
        fprintf(stderr, "loom: %s\n", loom_model_error(m));
        return -1;
    }
    printf("Do the losses agree on the shared layers? (a cosine < 0 means they pull apart)\n\n");
    printf("  %-10s %10s %12s %s\n", "pair", "cosine", "|gC|/|gD|", "conflict");
    printf("  %-10s %10.4f %12.4g %s   over %zu shared parameters (A, B), unweighted losses\n", "C~D",
           loom_diag_cosine(diag, 0, 1), loom_diag_magnitude_ratio(diag, 0, 1), loom_diag_conflict(diag, 0, 1) ? "yes" : "no",
           loom_diag_shared_params(diag));
    loom_diagnostics_free(diag);
    return 0;
}

static int run_demo(const demo_opts *o) {
    digits_set ds;
    char err[512];
    if (digits_load(o->data, &ds, err, sizeof err)) {
        fprintf(stderr, "loom demo: %s\n", err);
        return 1;
    }
    loom_model *m = seed_model(o->seed);
    if (!m || compile_seed(m)) {
        digits_free(&ds);
        loom_model_free(m);
        return 1;
    }
    float *onehot = calloc(ds.n * 10, sizeof *onehot);
    if (!onehot) {
        digits_free(&ds);
        loom_model_free(m);
        return 1;
    }
    /* The file is ordered by writer; mix the rows once (fixed seed) so that the validation split
     * (the last 20 %, as Keras takes it) holds all writers. */
    uint64_t state = 0x9E3779B97F4A7C15ULL;
    for (size_t i = ds.n - 1; i > 0; i--) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t j = (size_t)(state >> 33) % (i + 1);
        for (int p = 0; p < 64; p++) {
            float t = ds.pixels[i * 64 + p];
            ds.pixels[i * 64 + p] = ds.pixels[j * 64 + p];
            ds.pixels[j * 64 + p] = t;
        }
        int t = ds.labels[i];
        ds.labels[i] = ds.labels[j];
        ds.labels[j] = t;
    }
    for (size_t i = 0; i < ds.n; i++) onehot[i * 10 + (size_t)ds.labels[i]] = 1.0f;
    printf("loom demo: %zu handwritten digits (8x8), head C classifies the digit (categorical\n"
           "crossentropy, weight 0.5), head D reconstructs the 64 pixels (mse, weight 0.3).\n"
           "Minimised: loss = 0.5 * C_loss + 0.3 * D_loss.\n\n",
           ds.n);
    loom_summary(m, stdout);
    printf("\n");
    loom_array x = {"pixels", ds.pixels, ds.n};
    loom_array y[] = {{"C", onehot, ds.n}, {"D", ds.pixels, ds.n}};
    loom_data data = {1, &x, 2, y, 0, NULL};
    loom_fit_options fo = loom_fit_defaults();
    fo.epochs = o->epochs;
    fo.batch_size = 32;
    fo.seed = o->seed;
    fo.validation_split = 0.2f;
    fo.verbose = o->verbose;
    loom_history *h = NULL;
    int rc = 0;
    if (loom_fit(m, &data, &fo, &h)) {
        fprintf(stderr, "loom demo: %s\n", loom_model_error(m));
        rc = 1;
    } else {
        int last = loom_history_epochs(h) - 1;
        printf("\nAfter %d epochs: val_loss %.4f, val_C_loss %.4f, val_D_loss %.4f, val_C_accuracy %.4f\n",
               last + 1, loom_history_get(h, "val_loss", last), loom_history_get(h, "val_C_loss", last),
               loom_history_get(h, "val_D_loss", last), loom_history_get(h, "val_C_accuracy", last));
        /* the validation split: the last 20 % of the samples */
        size_t first = ds.n - ds.n / 5;
        size_t nv = ds.n - first;
        loom_array vx = {"pixels", ds.pixels + first * 64, nv};
        loom_array vy[] = {{"C", onehot + first * 10, nv}, {"D", ds.pixels + first * 64, nv}};
        loom_data vdata = {1, &vx, 2, vy, 0, NULL};
        if (report_reach(m, &vdata, nv)) rc = 1;
        if (o->save) {
            if (loom_model_save(m, o->save)) {
                fprintf(stderr, "loom demo: %s\n", loom_model_error(m));
                rc = 1;
            } else {
                printf("\nSaved to %s (try: loom diagnose %s data/digits_diag.npz)\n", o->save, o->save);
            }
        }
    }
    loom_history_free(h);
    free(onehot);
    digits_free(&ds);
    loom_model_free(m);
    return rc;
}

static void usage(FILE *f) {
    fprintf(f, "usage: loom demo [--epochs N] [--seed N] [--quiet] [--data PATH] [--save MODEL]\n"
               "       loom summary [MODEL]\n"
               "       loom convert IN OUT\n"
               "       loom diagnose MODEL DATA.npz\n"
               "       loom fashion [--epochs N] [--train N] [--seed N] [--batch N] [--data DIR] [--quiet]\n");
}

/* loom diagnose: arrays named after the model's inputs and outputs, read from an .npz file. */
static int run_diagnose(const char *model_path, const char *data_path) {
    char err[1024];
    loom_model *m = loom_model_import(model_path, err, sizeof err);
    if (!m) {
        fprintf(stderr, "loom diagnose: %s\n", err);
        return 1;
    }
    int ni = loom_model_num_inputs(m), no = loom_model_num_outputs(m), rc = 1;
    loom_ndarray arrays[2 * LOOM_MAX_OUTPUTS];
    loom_array xs[LOOM_MAX_OUTPUTS], ys[LOOM_MAX_OUTPUTS];
    int n_arrays = 0, n_y = 0;
    memset(arrays, 0, sizeof arrays);
    for (int i = 0; i < ni + no; i++) {
        const char *name = i < ni ? loom_model_input_name(m, i) : loom_model_output_name(m, i - ni);
        size_t want = i < ni ? loom_model_input_size(m, i) : loom_model_target_size(m, i - ni);
        loom_ndarray *a = &arrays[n_arrays];
        if (loom_npz_load(data_path, name, a, err, sizeof err)) {
            if (i >= ni) continue; /* an output without targets: its loss is left out */
            fprintf(stderr, "loom diagnose: input %s: %s\n", name, err);
            goto done;
        }
        n_arrays++;
        size_t per = a->rank > 0 && a->dims[0] ? a->size / a->dims[0] : 0;
        if (a->rank < 1 || per != want) {
            fprintf(stderr, "loom diagnose: %s: member %s holds %zu values per sample, the model needs %zu\n", data_path, name,
                    per, want);
            goto done;
        }
        if (i < ni) xs[i] = (loom_array){name, a->data, a->dims[0]};
        else ys[n_y++] = (loom_array){name, a->data, a->dims[0]};
    }
    loom_data data = {ni, xs, n_y, ys, 0, NULL};
    loom_diagnostics *d = loom_diagnose(m, &data);
    if (!d) {
        fprintf(stderr, "loom diagnose: %s\n", loom_model_error(m));
        goto done;
    }
    printf("%s on %s (%zu samples)\n\n", model_path, data_path, xs[0].n);
    loom_diag_print(d, stdout);
    loom_diagnostics_free(d);
    rc = 0;
done:
    for (int i = 0; i < n_arrays; i++) loom_ndarray_free(&arrays[i]);
    loom_model_free(m);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "summary") == 0) {
        char err[1024];
        loom_model *m = argc > 2 ? loom_model_import(argv[2], err, sizeof err) : seed_model(0);
        if (!m) {
            if (argc > 2) fprintf(stderr, "loom summary: %s\n", err);
            return 1;
        }
        loom_summary(m, stdout);
        if (loom_model_compile_note(m)[0]) printf("compile settings: %s\n", loom_model_compile_note(m));
        loom_model_free(m);
        return 0;
    }
    if (strcmp(argv[1], "convert") == 0) {
        if (argc != 4) {
            usage(stderr);
            return 2;
        }
        char err[1024];
        loom_model *m = loom_model_import(argv[2], err, sizeof err);
        if (!m) {
            fprintf(stderr, "loom convert: %s\n", err);
            return 1;
        }
        int rc = loom_model_export(m, argv[3]) == LOOM_OK ? 0 : 1;
        if (rc) fprintf(stderr, "loom convert: %s\n", loom_model_error(m));
        loom_model_free(m);
        return rc;
    }
    if (strcmp(argv[1], "diagnose") == 0) {
        if (argc != 4) {
            usage(stderr);
            return 2;
        }
        return run_diagnose(argv[2], argv[3]);
    }
    if (strcmp(argv[1], "fashion") == 0) return loom_cmd_fashion(argc - 1, argv + 1);
    if (strcmp(argv[1], "demo") != 0) {
        usage(strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ? stdout : stderr);
        return strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ? 0 : 2;
    }
    demo_opts o = {20, 42, 1, LOOM_DATA_DIR "/digits.csv", NULL};
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--quiet") == 0) o.verbose = 0;
        else if (strcmp(argv[i], "--epochs") == 0 && i + 1 < argc) o.epochs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) o.seed = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) o.data = argv[++i];
        else if (strcmp(argv[i], "--save") == 0 && i + 1 < argc) o.save = argv[++i];
        else {
            usage(stderr);
            return 2;
        }
    }
    if (o.epochs < 1) {
        fprintf(stderr, "loom demo: --epochs must be >= 1\n");
        return 2;
    }
    return run_demo(&o);
}
