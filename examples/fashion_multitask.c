/* fashion_multitask.c — multi-task learning on Fashion-MNIST; also `loom fashion` (docs/fashion.md).
 *
 *   image (28,28,1) -> Conv2D 32 3x3 relu -> MaxPool 2 -> Conv2D 64 3x3 relu -> MaxPool 2
 *                   -> Flatten -> Dense 128 relu  ("features", the shared trunk ends here)
 *        +-> item   Dense 10 softmax   sparse categorical crossentropy  weight 1.0  accuracy
 *        +-> group  Dense 4 softmax    sparse categorical crossentropy  weight 0.5  accuracy
 *        +-> recon  Dense 784 sigmoid  binary crossentropy on the pixels weight 0.5  mae
 *
 * Trains that model, evaluates every head on the test split, measures how the three losses pull
 * on the shared trunk (loom_diagnose), then trains the same trunk with the item head alone (same
 * seed, data and epochs) so the effect of the two extra losses on item accuracy can be seen.
 * Validation: the last 5000 images of the training file, which are never trained on. */
#include <loom.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"
#define PIXELS 784
#define N_VALID 5000
#define N_DIAG 512 /* test images the per-loss gradients are measured on */

/* Coarse group of each class: 0 tops, 1 bottoms, 2 footwear, 3 bags. */
static const int GROUP_OF[10] = {
    0, /* T-shirt/top */ 1, /* Trouser */ 0, /* Pullover */ 1, /* Dress */  0, /* Coat */
    2, /* Sandal */      0, /* Shirt */   2, /* Sneaker */  3, /* Bag */    2, /* Ankle boot */
};

typedef struct fashion_opts {
    int epochs;
    long train;
    uint64_t seed;
    int batch;
    int verbose;
    int heads_only; /* --three-heads-only: no diagnostics, no item-alone model */
    loom_dtype_policy dtype; /* --dtype: float32 or mixed_bfloat16 for every layer */
    const char *dir;
} fashion_opts;

typedef struct fashion_split {
    size_t n;
    loom_ndarray images; /* n x 28 x 28 in [0, 1] */
    loom_ndarray labels; /* n class indices (floats: sparse targets) */
    float *group;        /* n group indices */
} fashion_split;

static double seconds(void) {
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void split_free(fashion_split *s) {
    loom_ndarray_free(&s->images);
    loom_ndarray_free(&s->labels);
    free(s->group);
    memset(s, 0, sizeof *s);
}

static int load_one(const char *dir, const char *file, loom_ndarray *a) {
    char path[1024], err[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    loom_status s = loom_idx_load(path, a, err, sizeof err);
    if (s == LOOM_ERR_IO)
        fprintf(stderr, "loom fashion: %s\n  install the Debian package dataset-fashion-mnist "
                        "(apt-get install dataset-fashion-mnist), or point --data at a folder with the four files\n",
                err);
    else if (s)
        fprintf(stderr, "loom fashion: %s\n", err);
    return s ? -1 : 0;
}

static int split_load(const char *dir, const char *prefix, fashion_split *s) {
    memset(s, 0, sizeof *s);
    char images[128], labels[128];
    snprintf(images, sizeof images, "%s-images-idx3-ubyte.gz", prefix);
    snprintf(labels, sizeof labels, "%s-labels-idx1-ubyte.gz", prefix);
    if (load_one(dir, images, &s->images) || load_one(dir, labels, &s->labels)) {
        split_free(s);
        return -1;
    }
    const loom_ndarray *im = &s->images, *lb = &s->labels;
    if (im->rank != 3 || im->dims[1] != 28 || im->dims[2] != 28 || lb->rank != 1 || lb->dims[0] != im->dims[0]) {
        fprintf(stderr, "loom fashion: %s/%s and %s: expected n 28x28 images and n labels\n", dir, images, labels);
        split_free(s);
        return -1;
    }
    s->n = im->dims[0];
    s->group = malloc(s->n * sizeof *s->group);
    if (!s->group) {
        fprintf(stderr, "loom fashion: out of memory\n");
        split_free(s);
        return -1;
    }
    for (size_t i = 0; i < s->n * PIXELS; i++) im->data[i] /= 255.0f;
    for (size_t i = 0; i < s->n; i++) {
        float c = lb->data[i];
        if (!(c >= 0 && c <= 9 && c == (float)(int)c)) {
            fprintf(stderr, "loom fashion: %s/%s: label %zu is %g, not a class 0..9\n", dir, labels, i, c);
            split_free(s);
            return -1;
        }
        s->group[i] = (float)GROUP_OF[(int)c];
    }
    return 0;
}

/* Samples [first, first + n) of a split as model data; y needs room for 3 arrays. */
static loom_data split_data(const fashion_split *s, size_t first, size_t n, int n_heads, loom_array *x, loom_array *y) {
    *x = (loom_array){.name = "image", .data = s->images.data + first * PIXELS, .n = n, .count = n * PIXELS};
    y[0] = (loom_array){.name = "item", .data = s->labels.data + first, .n = n, .count = n};
    y[1] = (loom_array){.name = "group", .data = s->group + first, .n = n, .count = n};
    y[2] = (loom_array){.name = "recon", .data = s->images.data + first * PIXELS, .n = n, .count = n * PIXELS}; /* an autoencoder: input = target */
    return (loom_data){.n_x = 1, .x = x, .n_y = n_heads, .y = y};
}

/* The layers are created in the same order for one head or three: initialisation is keyed by the
 * layer's index, so both models start with identical trunk and item-head weights. */
static loom_model *fashion_model(uint64_t seed, int n_heads, loom_dtype_policy dtype) {
    loom_graph *g = loom_graph_new(seed);
    loom_tensor *x = loom_input(g, "image", 3, (int[]){28, 28, 1});
    loom_tensor *h = loom_call(loom_conv2d(g, "conv1", 32, 3, 3, 1, 1, LOOM_PADDING_VALID, 1, 1, LOOM_RELU, NULL), x);
    h = loom_call(loom_max_pooling2d(g, "pool1", 2, 2, 0, 0, LOOM_PADDING_VALID), h);
    h = loom_call(loom_conv2d(g, "conv2", 64, 3, 3, 1, 1, LOOM_PADDING_VALID, 1, 1, LOOM_RELU, NULL), h);
    h = loom_call(loom_max_pooling2d(g, "pool2", 2, 2, 0, 0, LOOM_PADDING_VALID), h);
    h = loom_call(loom_flatten(g, "flatten"), h);
    h = loom_call(loom_dense(g, "features", 128, LOOM_RELU, NULL), h);
    loom_tensor *outs[3];
    outs[0] = loom_call(loom_dense(g, "item", 10, LOOM_SOFTMAX, NULL), h);
    if (n_heads == 3) {
        outs[1] = loom_call(loom_dense(g, "group", 4, LOOM_SOFTMAX, NULL), h);
        outs[2] = loom_call(loom_dense(g, "recon", PIXELS, LOOM_SIGMOID, NULL), h);
    }
    loom_model *m = loom_model_new(g, 1, &x, n_heads, outs);
    if (!m) {
        fprintf(stderr, "loom fashion: %s\n", loom_graph_error(g));
        loom_graph_free(g);
        return NULL;
    }
    const char *names[] = {"item", "group", "recon"};
    loom_loss losses[] = {{.name = "sparse_categorical_crossentropy"},
                          {.name = "sparse_categorical_crossentropy"},
                          {.name = "binary_crossentropy"}};
    float weights[] = {1.0f, 0.5f, 0.5f};
    loom_metric_spec metrics[] = {{"item", "accuracy"}, {"group", "accuracy"}, {"recon", "mae"}};
    loom_compile_config cfg = {.n_losses = n_heads, .losses = losses, .loss_outputs = names,
                               .n_loss_weights = n_heads, .loss_weights = weights, .loss_weight_outputs = names,
                               .n_metrics = n_heads, .metrics = metrics, .optimizer = loom_adam(1e-3f),
                               .dtype_policy = dtype};
    if (loom_compile(m, &cfg)) {
        fprintf(stderr, "loom fashion: %s\n", loom_model_error(m));
        loom_model_free(m);
        return NULL;
    }
    return m;
}

/* Builds, trains on the first o->train images, validates on the last N_VALID of the training
 * file, evaluates on the test split into *result. The model is returned for diagnostics. */
static loom_model *train_and_test(const fashion_opts *o, int n_heads, const fashion_split *train,
                                  const fashion_split *test, loom_history **result, double *train_s) {
    loom_model *m = fashion_model(o->seed, n_heads, o->dtype);
    if (!m) return NULL;
    loom_array x, y[3], vx, vy[3], tx, ty[3];
    loom_data data = split_data(train, 0, (size_t)o->train, n_heads, &x, y);
    loom_data valid = split_data(train, train->n - N_VALID, N_VALID, n_heads, &vx, vy);
    loom_data testd = split_data(test, 0, test->n, n_heads, &tx, ty);
    loom_fit_options fo = loom_fit_defaults();
    fo.epochs = o->epochs;
    fo.batch_size = o->batch;
    fo.seed = o->seed;
    fo.validation_data = &valid;
    fo.validation_batch_size = 256;
    fo.verbose = o->verbose;
    double t0 = seconds();
    loom_status st = loom_fit(m, &data, &fo, NULL);
    *train_s = seconds() - t0;
    if (!st) st = loom_evaluate(m, &testd, 256, 0, result);
    if (st) {
        fprintf(stderr, "loom fashion: %s\n", loom_model_error(m));
        loom_model_free(m);
        return NULL;
    }
    return m;
}

static int diagnose(loom_model *m, const fashion_split *test) {
    loom_array x, y[3];
    loom_data batch = split_data(test, 0, N_DIAG, 3, &x, y);
    loom_diagnostics *d = loom_diagnose(m, &batch);
    if (!d) {
        fprintf(stderr, "loom fashion: %s\n", loom_model_error(m));
        return -1;
    }
    printf("\nHow the losses pull on the trunk, measured on the first %d test images:\n", N_DIAG);
    loom_diag_print(d, stdout);
    printf("\n(cosine > 0: the two losses push the shared weights the same way; < 0: they conflict.\n"
           " |gi|/|gj| compares the unweighted gradients; the weights 1.0 / 0.5 / 0.5 scale them in training.)\n");
    loom_diagnostics_free(d);
    return 0;
}

static void usage(FILE *f) {
    fprintf(f, "usage: loom fashion [--epochs N] [--train N] [--seed N] [--batch N] [--data DIR] [--quiet]\n"
               "                    [--dtype float32|mixed_bfloat16] [--three-heads-only]\n"
               "  --epochs N   epochs for each of the two trainings (default 15)\n"
               "  --train N    training images, the first N of the training file (1..%d, default 20000)\n"
               "  --seed N     weight initialisation and shuffling seed (default 42)\n"
               "  --batch N    batch size (default 64)\n"
               "  --data DIR   folder of the four .gz IDX files (default " FASHION_DIR ")\n"
               "  --quiet      no progress bars or model summary\n"
               "  --dtype P    the dtype policy of every layer: float32 (default) or mixed_bfloat16\n"
               "  --three-heads-only  train and test the three-head model only (no diagnostics, no item-alone model)\n",
            60000 - N_VALID);
}

/* A whole-string integer in [lo, hi], or -1 (every accepted option value is >= 0). */
static long long parse_int(const char *s, long long lo, long long hi) {
    char *end;
    long long v = strtoll(s, &end, 10);
    return (end == s || *end || v < lo || v > hi) ? -1 : v;
}

int fashion_main(int argc, char **argv) {
    fashion_opts o = {15, 20000, 42, 64, 1, 0, LOOM_POLICY_FLOAT32, FASHION_DIR};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long n = 0;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--quiet") == 0) {
            o.verbose = 0;
            continue;
        } else if (strcmp(a, "--three-heads-only") == 0) {
            o.heads_only = 1;
            continue;
        } else if (!v) {
            usage(stderr);
            return 2;
        } else if (strcmp(a, "--data") == 0) {
            o.dir = v;
        } else if (strcmp(a, "--dtype") == 0 && (!strcmp(v, "float32") || !strcmp(v, "mixed_bfloat16"))) {
            o.dtype = strcmp(v, "float32") ? LOOM_POLICY_MIXED_BFLOAT16 : LOOM_POLICY_FLOAT32;
        } else if (strcmp(a, "--epochs") == 0 && (n = parse_int(v, 1, 100000)) > 0) {
            o.epochs = (int)n;
        } else if (strcmp(a, "--train") == 0 && (n = parse_int(v, 1, 60000 - N_VALID)) > 0) {
            o.train = (long)n;
        } else if (strcmp(a, "--seed") == 0 && (n = parse_int(v, 0, (long long)1 << 62)) >= 0) {
            o.seed = (uint64_t)n;
        } else if (strcmp(a, "--batch") == 0 && (n = parse_int(v, 1, 1 << 20)) > 0) {
            o.batch = (int)n;
        } else {
            fprintf(stderr, "loom fashion: bad option or value: %s %s\n", a, v);
            usage(stderr);
            return 2;
        }
        i++;
    }

    double t0 = seconds();
    fashion_split train, test;
    if (split_load(o.dir, "train", &train)) return 1;
    if (split_load(o.dir, "t10k", &test)) {
        split_free(&train);
        return 1;
    }
    if (train.n < (size_t)o.train + N_VALID || test.n < N_DIAG) {
        fprintf(stderr, "loom fashion: %s holds %zu training and %zu test images; --train %ld needs %ld + %d\n", o.dir,
                train.n, test.n, o.train, o.train, N_VALID);
        split_free(&train);
        split_free(&test);
        return 1;
    }
    printf("loom fashion: Fashion-MNIST from %s (read and decompressed in %.1f s)\n"
           "  training on the first %ld of %zu training images, validating on the last %d, testing on all %zu test images\n"
           "  %d epochs, batch %d, seed %llu, Adam(1e-3), %d BLAS thread(s), dtype policy %s\n"
           "  minimised: loss = 1.0 * item_loss + 0.5 * group_loss + 0.5 * recon_loss\n"
           "  groups: tops = T-shirt/top, Pullover, Coat, Shirt; bottoms = Trouser, Dress;\n"
           "          footwear = Sandal, Sneaker, Ankle boot; bags = Bag\n\n",
           o.dir, seconds() - t0, o.train, train.n, N_VALID, test.n, o.epochs, o.batch, (unsigned long long)o.seed,
           loom_get_num_threads(), o.dtype == LOOM_POLICY_MIXED_BFLOAT16 ? "mixed_bfloat16" : "float32");

    int rc = 1;
    loom_history *multi = NULL, *alone = NULL;
    double multi_s = 0, alone_s = 0;
    loom_model *m = NULL;
    if (o.verbose) {
        loom_model *shown = fashion_model(o.seed, 3, o.dtype);
        if (!shown) goto done;
        loom_summary(shown, stdout);
        loom_model_free(shown);
        printf("\n1. Three heads (item, group, recon)\n");
    }
    m = train_and_test(&o, 3, &train, &test, &multi, &multi_s);
    if (!m) goto done;
    int diag_rc = o.heads_only ? 0 : diagnose(m, &test);
    loom_model_free(m);
    if (diag_rc) goto done;

    if (!o.heads_only) {
        if (o.verbose) printf("\n2. The same trunk with the item head alone\n");
        m = train_and_test(&o, 1, &train, &test, &alone, &alone_s);
        if (!m) goto done;
        loom_model_free(m);
    }

    printf("\nTest split (%zu images), after %d epochs on %ld images:\n\n", test.n, o.epochs, o.train);
    printf("  %-24s %-6s %10s %10s %10s\n", "model", "head", "loss", "accuracy", "mae");
    printf("  %-24s %-6s %10.4f %10.4f %10s\n", "three heads", "item", loom_history_get(multi, "item_loss", 0),
           loom_history_get(multi, "item_accuracy", 0), "");
    printf("  %-24s %-6s %10.4f %10.4f %10s\n", "", "group", loom_history_get(multi, "group_loss", 0),
           loom_history_get(multi, "group_accuracy", 0), "");
    printf("  %-24s %-6s %10.4f %10s %10.4f\n", "", "recon", loom_history_get(multi, "recon_loss", 0), "",
           loom_history_get(multi, "recon_mae", 0));
    printf("  %-24s %-6s %10.4f\n", "", "total", loom_history_get(multi, "loss", 0));
    if (o.heads_only) {
        printf("\n  training time (fit, with validation): three heads %.1f s (%.1f s/epoch)\n", multi_s,
               multi_s / o.epochs);
    } else {
        /* a single-output model logs "loss" and "accuracy", without the output's name (Keras) */
        printf("  %-24s %-6s %10.4f %10.4f %10s\n", "item head alone", "item", loom_history_get(alone, "loss", 0),
               loom_history_get(alone, "accuracy", 0), "");
        printf("\n  item accuracy, three heads minus item alone: %+.4f\n",
               loom_history_get(multi, "item_accuracy", 0) - loom_history_get(alone, "accuracy", 0));
        printf("  training time (fit, with validation): three heads %.1f s (%.1f s/epoch), item alone %.1f s "
               "(%.1f s/epoch)\n",
               multi_s, multi_s / o.epochs, alone_s, alone_s / o.epochs);
    }
    rc = 0;
done:
    loom_history_free(multi);
    loom_history_free(alone);
    split_free(&train);
    split_free(&test);
    return rc;
}

/* The program on its own; `loom fashion` compiles this file into the loom tool instead (see
 * tools/fashion.c), so the example and the sub-command are one program. */
#ifndef FASHION_NO_MAIN
int main(int argc, char **argv) { return fashion_main(argc, argv); }
#endif
