/* fashion_multitask.c — one convolutional trunk, three heads, on Fashion-MNIST.
 *
 *   image (28,28,1) -> Conv2D 32 3x3 relu -> MaxPool 2 -> Conv2D 64 3x3 relu -> MaxPool 2
 *                   -> Flatten -> Dense 128 relu  ("features", shared by every head)
 *        +-> item   Dense 10 softmax   sparse categorical crossentropy, weight 1.0, accuracy
 *        +-> group  Dense 4 softmax    sparse categorical crossentropy, weight 0.5, accuracy
 *        +-> recon  Dense 784 sigmoid  binary crossentropy on the pixels, weight 0.5, mae
 *
 * Minimised: loss = 1.0 * item_loss + 0.5 * group_loss + 0.5 * recon_loss. Then the same trunk
 * with the item head alone (same seed, data, epochs) shows what the two extra losses change.
 *
 * Data: Debian's dataset-fashion-mnist package (gzipped IDX files, read by loom_idx_load).
 * Usage: example_fashion_multitask [EPOCHS [TRAIN_SAMPLES]]   (defaults 15 and 20000, as `loom fashion`)
 * The `loom fashion` command runs the same experiment with options and a progress bar. */
#include <loom.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DATA_DIR "/usr/share/datasets/fashion-mnist"
#define PIXELS 784
#define N_VALID 5000 /* the last images of the training file: validation, never trained on */

/* Coarse group of each Fashion-MNIST class: 0 tops, 1 bottoms, 2 footwear, 3 bags. */
static const int GROUP_OF[10] = {
    0, /* T-shirt/top */ 1, /* Trouser */ 0, /* Pullover */ 1, /* Dress */  0, /* Coat */
    2, /* Sandal */      0, /* Shirt */   2, /* Sneaker */  3, /* Bag */    2, /* Ankle boot */
};

typedef struct split {
    size_t n;
    loom_ndarray images; /* n x 28 x 28, scaled to [0, 1] */
    loom_ndarray labels; /* n class indices 0..9 (floats: sparse targets) */
    float *group;        /* n group indices 0..3 */
} split;

static double now(void) {
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Reads one images/labels pair of files into s; returns 0 or prints why and returns -1. */
static int load_split(const char *images, const char *labels, split *s) {
    char path[512], err[1024];
    loom_ndarray im = {0}, lb = {0};
    snprintf(path, sizeof path, "%s/%s", DATA_DIR, images);
    if (loom_idx_load(path, &im, err, sizeof err)) {
        fprintf(stderr, "%s\n(install the Debian package dataset-fashion-mnist)\n", err);
        return -1;
    }
    snprintf(path, sizeof path, "%s/%s", DATA_DIR, labels);
    if (loom_idx_load(path, &lb, err, sizeof err)) {
        fprintf(stderr, "%s\n(install the Debian package dataset-fashion-mnist)\n", err);
        loom_ndarray_free(&im);
        return -1;
    }
    if (im.rank != 3 || im.dims[1] != 28 || im.dims[2] != 28 || lb.rank != 1 || lb.dims[0] != im.dims[0]) {
        fprintf(stderr, "%s: expected 28x28 images with one label each\n", images);
        loom_ndarray_free(&im);
        loom_ndarray_free(&lb);
        return -1;
    }
    s->n = im.dims[0];
    s->images = im;
    s->labels = lb;
    s->group = malloc(s->n * sizeof *s->group);
    if (!s->group) {
        fprintf(stderr, "out of memory\n");
        return -1;
    }
    for (size_t i = 0; i < s->n * PIXELS; i++) im.data[i] /= 255.0f;
    for (size_t i = 0; i < s->n; i++) {
        float c = lb.data[i];
        if (!(c >= 0 && c <= 9 && c == (int)c)) {
            fprintf(stderr, "%s: label %zu is %g, not a class 0..9\n", labels, i, c);
            return -1;
        }
        s->group[i] = (float)GROUP_OF[(int)c];
    }
    return 0;
}

static void free_split(split *s) {
    loom_ndarray_free(&s->images);
    loom_ndarray_free(&s->labels);
    free(s->group);
}

/* The trunk and the heads. Layers are created in the same order in both models, so the trunk
 * and the item head start from the same weights (initialisation is keyed by the layer's index). */
static loom_model *build(uint64_t seed, int multitask) {
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
    if (multitask) {
        outs[1] = loom_call(loom_dense(g, "group", 4, LOOM_SOFTMAX, NULL), h);
        outs[2] = loom_call(loom_dense(g, "recon", PIXELS, LOOM_SIGMOID, NULL), h);
    }
    loom_model *m = loom_model_new(g, 1, &x, multitask ? 3 : 1, outs);
    if (!m) { /* errors are sticky: this one check covers every building call above */
        fprintf(stderr, "%s\n", loom_graph_error(g));
        loom_graph_free(g);
        return NULL;
    }
    /* compile(loss={...}, loss_weights={...}, metrics={...}, optimizer=Adam(1e-3)), by output name */
    const char *names[] = {"item", "group", "recon"};
    loom_loss losses[] = {{.name = "sparse_categorical_crossentropy"},
                          {.name = "sparse_categorical_crossentropy"},
                          {.name = "binary_crossentropy"}};
    float weights[] = {1.0f, 0.5f, 0.5f};
    loom_metric_spec metrics[] = {{"item", "accuracy"}, {"group", "accuracy"}, {"recon", "mae"}};
    int k = multitask ? 3 : 1;
    loom_compile_config cfg = {.n_losses = k, .losses = losses, .loss_outputs = names,
                               .n_loss_weights = k, .loss_weights = weights, .loss_weight_outputs = names,
                               .n_metrics = k, .metrics = metrics, .optimizer = loom_adam(1e-3f)};
    if (loom_compile(m, &cfg)) {
        fprintf(stderr, "%s\n", loom_model_error(m));
        loom_model_free(m);
        return NULL;
    }
    return m;
}

/* The targets of samples [first, first + n) of a split, bound to the outputs by name. */
static loom_data data_of(const split *s, size_t first, size_t n, loom_array *x, loom_array *y, int multitask) {
    *x = (loom_array){"image", s->images.data + first * PIXELS, n};
    y[0] = (loom_array){"item", s->labels.data + first, n};
    y[1] = (loom_array){"group", s->group + first, n};
    y[2] = (loom_array){"recon", s->images.data + first * PIXELS, n}; /* the input is the target */
    return (loom_data){.n_x = 1, .x = x, .n_y = multitask ? 3 : 1, .y = y};
}

/* Trains one model and evaluates it on the test split; *test receives the evaluation. */
static int run(const split *train, size_t n_train, const split *test, int epochs, int multitask,
               loom_history **test_result) {
    loom_model *m = build(42, multitask);
    if (!m) return -1;
    if (multitask) loom_summary(m, stdout);
    loom_array x, y[3], vx, vy[3], tx, ty[3];
    loom_data data = data_of(train, 0, n_train, &x, y, multitask);
    loom_data valid = data_of(train, train->n - N_VALID, N_VALID, &vx, vy, multitask);
    loom_data testd = data_of(test, 0, test->n, &tx, ty, multitask);

    loom_fit_options fo = loom_fit_defaults();
    fo.epochs = epochs;
    fo.batch_size = 64;
    fo.seed = 42;
    fo.validation_data = &valid;
    fo.verbose = 2; /* one line per epoch */
    double t0 = now();
    loom_status st = loom_fit(m, &data, &fo, NULL);
    if (!st) st = loom_evaluate(m, &testd, 256, 0, test_result);
    if (st) {
        fprintf(stderr, "%s\n", loom_model_error(m));
        loom_model_free(m);
        return -1;
    }
    printf("trained and evaluated in %.1f s\n\n", now() - t0);

    if (multitask) {
        /* How do the three losses pull on the shared trunk? Measured on 512 test images. */
        loom_data batch = data_of(test, 0, 512, &tx, ty, 1);
        loom_diagnostics *d = loom_diagnose(m, &batch);
        if (d) {
            loom_diag_print(d, stdout);
            loom_diagnostics_free(d);
            printf("\n");
        } else {
            fprintf(stderr, "%s\n", loom_model_error(m));
        }
    }
    loom_model_free(m);
    return 0;
}

int main(int argc, char **argv) {
    int epochs = argc > 1 ? atoi(argv[1]) : 15;
    long n_train = argc > 2 ? atol(argv[2]) : 20000;
    if (epochs < 1 || n_train < 1 || n_train > 60000 - N_VALID) {
        fprintf(stderr, "usage: %s [EPOCHS >= 1 [TRAIN_SAMPLES 1..%d]]\n", argv[0], 60000 - N_VALID);
        return 2;
    }
    split train = {0}, test = {0};
    if (load_split("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", &train) ||
        load_split("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", &test)) {
        free_split(&train);
        free_split(&test);
        return 1;
    }
    printf("Fashion-MNIST: training on %ld images, validating on %d, testing on %zu\n\n", n_train, N_VALID, test.n);

    loom_history *multi = NULL, *alone = NULL;
    int rc = run(&train, (size_t)n_train, &test, epochs, 1, &multi);
    if (!rc) {
        printf("The same trunk with the item head alone:\n");
        rc = run(&train, (size_t)n_train, &test, epochs, 0, &alone);
    }
    if (!rc) {
        printf("Test split (%zu images)          loss     accuracy / mae\n", test.n);
        printf("  item   (3 heads)           %8.4f   %.4f\n", loom_history_get(multi, "item_loss", 0),
               loom_history_get(multi, "item_accuracy", 0));
        printf("  group  (3 heads)           %8.4f   %.4f\n", loom_history_get(multi, "group_loss", 0),
               loom_history_get(multi, "group_accuracy", 0));
        printf("  recon  (3 heads)           %8.4f   %.4f (mae)\n", loom_history_get(multi, "recon_loss", 0),
               loom_history_get(multi, "recon_mae", 0));
        /* a single-output model logs its metric without the output's name */
        printf("  item   (item head alone)   %8.4f   %.4f\n", loom_history_get(alone, "loss", 0),
               loom_history_get(alone, "accuracy", 0));
    }
    loom_history_free(multi);
    loom_history_free(alone);
    free_split(&train);
    free_split(&test);
    return rc ? 1 : 0;
}
