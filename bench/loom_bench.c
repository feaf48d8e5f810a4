/* loom_bench.c — times loom's training step on one benchmark model.
 *   loom_bench MODEL sgd|adam STEPS REPEATS
 * Prints one line: model opt threads median_ms min_ms peak_rss_kb
 * Threads follow LOOM_NUM_THREADS / OPENBLAS_NUM_THREADS (set by bench/run.py).
 * LOOM_BENCH_POLICY=mixed_bfloat16 compiles under that dtype policy (issue 18). */
#include "build_model.h"

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
    loom_model *m = bench_build_model(bm, adam);
    if (!m) return 1;
    size_t n = (size_t)bm->batch * (size_t)steps, per_sample = (size_t)bm->in * (size_t)(bm->steps ? bm->steps : 1);
    float *xs = malloc(n * per_sample * sizeof *xs), *yc = calloc(n * bm->classes, sizeof *yc), *yd = malloc(n * sizeof *yd);
    if (!xs || !yc || !yd) return 1;
    srand(3);
    for (size_t i = 0; i < n * per_sample; i++) xs[i] = (float)rand() / RAND_MAX * 2 - 1;
    for (size_t i = 0; i < n; i++) {
        yc[i * bm->classes + (size_t)(rand() % bm->classes)] = 1;
        yd[i] = (float)rand() / RAND_MAX;
    }
    loom_array in = {.name = "x", .data = xs, .n = n, .count = n * per_sample};
    loom_array ys[] = {{.name = "C", .data = yc, .n = n, .count = n * (size_t)bm->classes}, {.name = "D", .data = yd, .n = n, .count = n}};
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
        loom_array one = {.name = "x", .data = xs, .n = 1, .count = per_sample};
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
