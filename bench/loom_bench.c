/* loom_bench.c — times loom's training step on one benchmark model.
 *   loom_bench MODEL sgd|adam STEPS REPEATS
 * Prints one line: model opt threads median_ms min_ms peak_rss_kb
 * Threads follow LOOM_NUM_THREADS / OPENBLAS_NUM_THREADS (set by bench/run.py).
 * LOOM_BENCH_POLICY=mixed_bfloat16 compiles under that dtype policy (issue 18). */
#include "models.h"

#include <loom.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: loom_bench MODEL sgd|adam STEPS REPEATS\n");
        return 2;
    }
    const bench_model *bm = bench_find(argv[1]);
    int adam = strcmp(argv[2], "adam") == 0;
    int steps = atoi(argv[3]), repeats = atoi(argv[4]);
    if (!bm || steps < 1 || repeats < 1 || repeats > 100) {
        fprintf(stderr, "loom_bench: bad arguments\n");
        return 2;
    }
    const char *threads_env = getenv("LOOM_NUM_THREADS");
    if (threads_env) loom_set_num_threads(atoi(threads_env));
    loom_graph *g = loom_graph_new(1);
    loom_tensor *x, *b;
    if (bm->cnn) {
        x = loom_input(g, "x", 3, (int[]){28, 28, 1});
        loom_tensor *h = loom_call(loom_conv2d(g, "conv1", 32, 3, 3, 1, 1, LOOM_PADDING_VALID, 1, 1, LOOM_RELU, NULL), x);
        h = loom_call(loom_max_pooling2d(g, "pool1", 2, 2, 0, 0, LOOM_PADDING_VALID), h);
        h = loom_call(loom_conv2d(g, "conv2", 64, 3, 3, 1, 1, LOOM_PADDING_VALID, 1, 1, LOOM_RELU, NULL), h);
        h = loom_call(loom_max_pooling2d(g, "pool2", 2, 2, 0, 0, LOOM_PADDING_VALID), h);
        h = loom_call(loom_flatten(g, "flatten"), h);
        b = loom_call(loom_dense(g, "B", bm->b, LOOM_RELU, NULL), h);
    } else if (bm->steps) {
        x = loom_input(g, "x", 2, (int[]){bm->steps, bm->in});
        b = loom_call(loom_lstm(g, "B", bm->b, NULL), x);
    } else {
        x = loom_input(g, "x", 1, (int[]){bm->in});
        loom_tensor *a = loom_call(loom_dense(g, "A", bm->a, LOOM_RELU, NULL), x);
        b = loom_call(loom_dense(g, "B", bm->b, LOOM_RELU, NULL), a);
    }
    loom_tensor *c = loom_call(loom_dense(g, "C", bm->classes, LOOM_SOFTMAX, NULL), b);
    loom_tensor *d = loom_call(loom_dense(g, "D", 1, LOOM_LINEAR, NULL), b);
    loom_model *m = loom_model_new(g, 1, &x, 2, (loom_tensor *[]){c, d});
    if (!m) {
        fprintf(stderr, "loom_bench: %s\n", loom_graph_error(g));
        return 1;
    }
    loom_loss losses[] = {{.name = "categorical_crossentropy"}, {.name = "mse"}};
    float weights[] = {0.5f, 0.3f};
    loom_compile_config cfg = {.n_losses = 2, .losses = losses, .n_loss_weights = 2, .loss_weights = weights,
                               .optimizer = adam ? loom_adam(1e-4f) : loom_sgd(1e-3f, 0, 0)};
    const char *policy = getenv("LOOM_BENCH_POLICY");
    if (policy && strcmp(policy, "mixed_bfloat16") == 0) cfg.dtype_policy = LOOM_POLICY_MIXED_BFLOAT16;
    else if (policy && strcmp(policy, "float32") != 0) {
        fprintf(stderr, "loom_bench: LOOM_BENCH_POLICY must be float32 or mixed_bfloat16\n");
        return 2;
    }
    if (loom_compile(m, &cfg)) {
        fprintf(stderr, "loom_bench: %s\n", loom_model_error(m));
        return 1;
    }
    size_t n = (size_t)bm->batch * (size_t)steps, per_sample = (size_t)bm->in * (size_t)(bm->steps ? bm->steps : 1);
    float *xs = malloc(n * per_sample * sizeof *xs), *yc = calloc(n * bm->classes, sizeof *yc), *yd = malloc(n * sizeof *yd);
    if (!xs || !yc || !yd) return 1;
    srand(3);
    for (size_t i = 0; i < n * per_sample; i++) xs[i] = (float)rand() / RAND_MAX * 2 - 1;
    for (size_t i = 0; i < n; i++) {
        yc[i * bm->classes + (size_t)(rand() % bm->classes)] = 1;
        yd[i] = (float)rand() / RAND_MAX;
    }
    loom_array in = {"x", xs, n};
    loom_array ys[] = {{"C", yc, n}, {"D", yd, n}};
    loom_data data = {.n_x = 1, .x = &in, .n_y = 2, .y = ys};
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = bm->batch;
    fo.epochs = 1;
    /* warm-up: plans the arena, touches every page, lets the BLAS threads start */
    if (loom_fit(m, &data, &fo, NULL)) {
        fprintf(stderr, "loom_bench: %s\n", loom_model_error(m));
        return 1;
    }
    if (getenv("LOOM_BENCH_PREDICT")) {
        /* embedded use: predict one sample at a time */
        float *out_c = malloc(bm->classes * sizeof *out_c), out_d[1];
        loom_array one = {"x", xs, 1};
        double best[100];
        for (int r = 0; r < repeats; r++) {
            double t0 = now();
            for (int i = 0; i < 1000; i++) {
                one.data = xs + (size_t)(i % (int)n) * per_sample;
                loom_predict(m, 1, &one, 1, (float *const[]){out_c, out_d});
            }
            best[r] = (now() - t0) / 1000 * 1e6;
        }
        qsort(best, (size_t)repeats, sizeof best[0], cmp_double);
        printf("%s predict-batch-1 %s %.3f us\n", bm->name, threads_env ? threads_env : "?", best[repeats / 2]);
        free(out_c);
        loom_model_free(m);
        free(xs), free(yc), free(yd);
        return 0;
    }
    double t[100];
    for (int r = 0; r < repeats; r++) {
        double t0 = now();
        loom_fit(m, &data, &fo, NULL);
        t[r] = (now() - t0) / steps * 1e3;
    }
    qsort(t, (size_t)repeats, sizeof t[0], cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const char *threads = getenv("LOOM_NUM_THREADS");
    printf("%s %s %s %.6f %.6f %ld\n", bm->name, adam ? "adam" : "sgd", threads ? threads : "?", t[repeats / 2], t[0],
           ru.ru_maxrss);
    loom_model_free(m);
    free(xs);
    free(yc);
    free(yd);
    return 0;
}
