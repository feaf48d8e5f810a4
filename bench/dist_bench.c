/* dist_bench.c — distributed training speed, run under mpirun (bench/run_dist.sh):
 *   dist_bench allreduce            allreduce of 4 KiB .. 64 MiB floats: time, algorithm and bus
 *                                   bandwidth (busbw = bytes / t * 2 (N-1) / N, the ring's traffic)
 *   dist_bench fit MODEL STEPS [BUCKET_BYTES]
 *                                   trains a models.h model on the global batch of models.h (per
 *                                   rank: batch / N), SGD; prints ms per step and the share of the
 *                                   step spent waiting for the gradients after the backward, with
 *                                   the gradient bucket size given (default loom's 4 MiB)
 * Rank 0 prints; threads follow LOOM_NUM_THREADS. For docs/scaling.md's arithmetic, on one process:
 * DIST_BENCH_SPLIT=N trains at the per-rank batch of N ranks, DIST_BENCH_UNFUSED=1 keeps SGD out
 * of the backward (a constant loss-weight schedule), as in a distributed fit. */
#include "build_model.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>

static void bench_allreduce(int rank, int size) {
    if (rank == 0) printf("allreduce ranks %d\n%10s %12s %12s %12s\n", size, "bytes", "time_us", "algbw_GBps", "busbw_GBps");
    for (size_t bytes = 4096; bytes <= ((size_t)64 << 20); bytes *= 4) {
        size_t n = bytes / sizeof(float);
        float *buf = malloc(bytes);
        for (size_t i = 0; i < n; i++) buf[i] = (float)(i % 17);
        int iters = (int)(((size_t)512 << 20) / bytes);
        if (iters < 5) iters = 5;
        if (iters > 2000) iters = 2000;
        for (int i = 0; i < 3; i++) MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        for (int i = 0; i < iters; i++) MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        double t = (MPI_Wtime() - t0) / iters, alg = (double)bytes / t / 1e9;
        if (rank == 0) printf("%10zu %12.1f %12.3f %12.3f\n", bytes, t * 1e6, alg, alg * 2.0 * (size - 1) / size);
        free(buf);
    }
}

static int bench_fit(const char *name, int steps, size_t bucket, int rank, int size) {
    const bench_model *bm = bench_find(name);
    if (!bm || steps < 1 || bm->batch % size) {
        if (rank == 0) fprintf(stderr, "dist_bench: unknown model %s, or %d ranks do not divide its batch\n", name, size);
        return 2;
    }
    const char *th = getenv("LOOM_NUM_THREADS");
    if (th) loom_set_num_threads(atoi(th));
    loom_model *m = bench_build_model(bm, 0);
    if (!m) return 1;
    /* DIST_BENCH_UNFUSED=1: a constant loss-weight schedule, which keeps one process's SGD out of
     * the backward as a distributed fit's is (docs/scaling.md: what the fusion is worth) */
    if (getenv("DIST_BENCH_UNFUSED")) {
        loom_weight_schedule ws = {.kind = LOOM_WEIGHT_CONSTANT, .w0 = loom_get_loss_weight(m, "C")};
        loom_set_loss_weight_schedule(m, "C", &ws);
    }
    size_t n = (size_t)bm->batch * (size_t)steps;
    float *xs = malloc(n * bm->in * sizeof *xs), *yc = calloc(n * bm->classes, sizeof *yc), *yd = malloc(n * sizeof *yd);
    srand(3);
    for (size_t i = 0; i < n * bm->in; i++) xs[i] = (float)rand() / RAND_MAX * 2 - 1;
    for (size_t i = 0; i < n; i++) {
        yc[i * bm->classes + (size_t)(rand() % bm->classes)] = 1;
        yd[i] = (float)rand() / RAND_MAX;
    }
    loom_array in = {.name = "x", .data = xs, .n = n, .count = n * bm->in};
    loom_array ys[] = {{.name = "C", .data = yc, .n = n, .count = n * bm->classes}, {.name = "D", .data = yd, .n = n, .count = n}};
    loom_data data = {.n_x = 1, .x = &in, .n_y = 2, .y = ys};
    char err[256];
    loom_dist *d = size > 1 ? loom_dist_create(NULL, err, sizeof err) : NULL;
    if (d && bucket) loom_dist_set_bucket_bytes(d, bucket);
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = bm->batch / size;
    /* DIST_BENCH_SPLIT=N: one process at the per-rank batch of N ranks (the compute one rank does) */
    const char *split = getenv("DIST_BENCH_SPLIT");
    if (split && size == 1 && atoi(split) > 1 && bm->batch % atoi(split) == 0) fo.batch_size = bm->batch / atoi(split);
    fo.dist = d;
    if (loom_fit(m, &data, &fo, NULL)) { /* warm-up */
        fprintf(stderr, "dist_bench: %s\n", loom_model_error(m));
        return 1;
    }
    long s0;
    double w0;
    loom_dist_stats(d, &s0, &w0);
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    loom_fit(m, &data, &fo, NULL);
    double t = (MPI_Wtime() - t0) / steps;
    long s1;
    double w1;
    loom_dist_stats(d, &s1, &w1);
    double wait = s1 > s0 ? (w1 - w0) / (double)(s1 - s0) : 0;
    double wmax = wait;
    MPI_Reduce(&wait, &wmax, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    if (rank == 0)
        printf("%s ranks %d threads %s global_batch %d bucket_bytes %zu step_ms %.3f wait_ms %.3f wait_share %.1f%%\n", name,
               size, th ? th : "1", bm->batch, bucket ? bucket : (size_t)4 << 20, t * 1e3, wmax * 1e3, 100 * wmax / t);
    loom_dist_free(d);
    loom_model_free(m);
    free(xs), free(yc), free(yd);
    return 0;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size, rc = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc >= 2 && strcmp(argv[1], "allreduce") == 0) bench_allreduce(rank, size);
    else if (argc >= 4 && strcmp(argv[1], "fit") == 0)
        rc = bench_fit(argv[2], atoi(argv[3]), argc > 4 ? (size_t)strtoull(argv[4], NULL, 10) : 0, rank, size);
    else {
        if (rank == 0) fprintf(stderr, "usage: dist_bench allreduce | fit MODEL STEPS [BUCKET_BYTES]\n");
        rc = 2;
    }
    MPI_Finalize();
    return rc;
}
