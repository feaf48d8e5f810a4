/* cmd_demo.c — `loom demo`: trains the seed model (input -> A -> B -> {C: digit class,
 * D: pixel reconstruction}) on scikit-learn's 8x8 digits and shows which layers each loss trains
 * and how they agree. With --epochs 0 it saves the compiled, untrained model: a starting point
 * for `loom fit`. */
#include "commands.h"
#include "digits.h"
#include "loom.h"
#include "model_io.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct demo_opts {
    long epochs;
    uint64_t seed;
    int verbose;
    const char *data;
    const char *save;
} demo_opts;

/* in(64) -> A Dense 64 relu -> B Dense 32 relu -> { C Dense 10 softmax ; D Dense 64 linear } */
loom_model *demo_seed_model(unsigned long long seed) {
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

/* --epochs 0: the compiled model, untrained, saved for `loom fit`. */
static int save_untrained(const demo_opts *o) {
    if (!o->save) return tool_fail(&cmd_demo, "--epochs 0 trains nothing: give --save MODEL to write the untrained model");
    loom_model *m = demo_seed_model(o->seed);
    char err[1024];
    int rc = 0;
    if (!m || compile_seed(m)) rc = 1;
    else if (tool_model_save(m, o->save, err, sizeof err)) rc = tool_fail(&cmd_demo, "%s", err);
    else
        printf("Saved the untrained seed model (inputs: pixels; outputs: C, D; compiled) to %s\n"
               "Train it: loom fit %s --data %s/digits.npz --epochs 5\n",
               o->save, o->save, LOOM_DATA_DIR);
    loom_model_free(m);
    return rc;
}

static int run_demo(const demo_opts *o) {
    if (o->epochs == 0) return save_untrained(o);
    digits_set ds;
    char err[512];
    if (digits_load(o->data, &ds, err, sizeof err)) {
        fprintf(stderr, "loom demo: %s\n", err);
        return 1;
    }
    loom_model *m = demo_seed_model(o->seed);
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
    loom_array x = {.name = "pixels", .data = ds.pixels, .n = ds.n, .count = ds.n * 64};
    loom_array y[] = {{.name = "C", .data = onehot, .n = ds.n, .count = ds.n * 10},
                      {.name = "D", .data = ds.pixels, .n = ds.n, .count = ds.n * 64}};
    loom_data data = {1, &x, 2, y, 0, NULL};
    loom_fit_options fo = loom_fit_defaults();
    fo.epochs = (int)o->epochs;
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
               last + 1, (double)loom_history_get(h, "val_loss", last), loom_history_get(h, "val_C_loss", last),
               loom_history_get(h, "val_D_loss", last), loom_history_get(h, "val_C_accuracy", last));
        /* the validation split: the last 20 % of the samples */
        size_t first = ds.n - ds.n / 5;
        size_t nv = ds.n - first;
        loom_array vx = {.name = "pixels", .data = ds.pixels + first * 64, .n = nv, .count = nv * 64};
        loom_array vy[] = {{.name = "C", .data = onehot + first * 10, .n = nv, .count = nv * 10},
                           {.name = "D", .data = ds.pixels + first * 64, .n = nv, .count = nv * 64}};
        loom_data vdata = {1, &vx, 2, vy, 0, NULL};
        if (report_reach(m, &vdata, nv)) rc = 1;
        if (o->save) {
            char serr[1024];
            if (tool_model_save(m, o->save, serr, sizeof serr)) {
                rc = tool_fail(&cmd_demo, "%s", serr);
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


static demo_opts demo_o;
static bool demo_quiet;
static long demo_seed = 42;
static const opt_spec demo_opts_table[] = {
    {"--epochs", NULL, "N", OPT_INT, &demo_o.epochs, "20", 0, 100000, "epochs to train; 0 saves the compiled, untrained model (needs --save)"},
    {"--seed", NULL, "N", OPT_INT, &demo_seed, "42", 0, 2147483647, "seed of the weights and the shuffling"},
    {"--data", NULL, "PATH", OPT_STRING, &demo_o.data, LOOM_DATA_DIR "/digits.csv", 0, 0, "the digits CSV (64 pixels 0..16, then the label)"},
    {"--save", NULL, "MODEL", OPT_STRING, &demo_o.save, NULL, 0, 0, "save the model when done (.loom)"},
    {"--quiet", NULL, NULL, OPT_FLAG, &demo_quiet, NULL, 0, 0, "no progress bar"},
};

/* The demo's digits: the installed copy (share/loom) when there is one, else the source tree's. */
static const char *default_digits_path(void) {
#ifdef LOOM_INSTALLED_DATA_DIR
    FILE *f = fopen(LOOM_INSTALLED_DATA_DIR "/digits.csv", "r");
    if (f) {
        fclose(f);
        return LOOM_INSTALLED_DATA_DIR "/digits.csv";
    }
#endif
    return LOOM_DATA_DIR "/digits.csv";
}

static int demo_run(int argc, char **argv) {
    demo_o = (demo_opts){20, 42, 1, default_digits_path(), NULL};
    const char *args[1];
    int n_args, rc = opts_parse(&cmd_demo, argc, argv, args, &n_args);
    if (rc) return rc < 0 ? 0 : rc;
    demo_o.seed = (uint64_t)demo_seed;
    demo_o.verbose = demo_quiet ? 0 : 1;
    return run_demo(&demo_o);
}

const command cmd_demo = {
    "demo", "[options]", "train the seed model on the shipped digits and show which layers each loss trains",
    "The seed model: pixels(64) -> A Dense 64 relu -> B Dense 32 relu -> { C Dense 10 softmax (the digit,\n"
    "categorical crossentropy, weight 0.5) ; D Dense 64 (the pixels again, mse, weight 0.3) }.\n"
    "After training it prints, per loss, the gradient norm on every layer (0 where the loss does not reach)\n"
    "and the cosine between the two losses' gradients on the shared layers A and B.",
    0, 0, demo_opts_table, (int)(sizeof demo_opts_table / sizeof *demo_opts_table), demo_run};
