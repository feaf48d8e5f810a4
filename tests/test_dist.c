/* test_dist.c — data-parallel training over MPI trains what one process trains.
 *
 * Run alone (ctest's test_dist): the sharding rule, the "built without MPI" error, and — with
 * MPI — a distributed fit at one rank, bit-identical to a plain fit. Under mpirun (ctest's
 * test_dist_np2 / _np3 / _save / _resume, registered when mpirun exists) the modes are:
 *   equiv        N ranks with per-rank batch 12/N against one process with batch 12, SGD and
 *                Adam, shuffled, sample weights, a partial last batch (with ranks that get no
 *                sample), an L2 penalty, validation data, ReduceLROnPlateau: history and weights
 *                within the float32 reduction-order tolerance (TOL below), weights and history
 *                bit-identical across ranks and between two runs at the same N; dropout: ranks
 *                stay bit-identical; every balancing method (uncertainty, GradNorm, DWA with the
 *                gradient-cosine diagnostics, RLW, PCGrad, MGDA, CAGrad, Nash-MTL) and a loss
 *                over a masked sequence (alone and beside an unmasked one) against one process.
 *   save PATH    trains 2 epochs distributed with a ModelCheckpoint (rank 0 writes), then every
 *                rank continues the file on ONE process; both against an uninterrupted run.
 *   resume PATH  continues PATH (saved at another rank count) distributed to the same end.
 *   faults       a rank with different data, a rank with a wrong input name, a NaN on one rank's
 *                shard, a batch function failing on one rank, a checkpoint rank 0 cannot write:
 *                every rank stops with a message, none hangs.
 *   compare A B S  two model files' weights and logs within S x TOL (tests/cli_dist.sh).
 *
 * Tolerance: one process sums each weight's gradient over the 12 samples of a batch; N ranks
 * sum per rank, scale by the rank's share and add the ranks' sums: the same real number, rounded
 * in another order, so per step a difference of a few float32 ulps of the gradient's terms
 * (|err| <= ~(12 + N) * 2^-24 * sum|g_i|). Over the ~30 steps here (the model is well
 * conditioned, Adam's step bounded by lr) that stays below TOL = 1e-6 absolute + 1e-5 relative
 * on the weights and losses; the largest deviation measured is printed. */
#include "check.h"
#include "dist/dist.h"

#include <loom.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef LOOM_HAVE_MPI
#include <mpi.h>
#endif

#define TOL_ABS 1e-6
#define TOL_REL 1e-5
#define GLOBAL_BATCH 12
#define FEAT 6
#define EPOCHS 4

static int rank = 0, ranks = 1;
static double tol_scale = 1; /* mode compare: the tolerance for its longer runs (see there) */
static double worst = 0; /* largest |dist - one process| / (TOL_ABS + TOL_REL |ref|) seen */

typedef struct dataset {
    size_t n;
    float *x, *yc, *yr, *sw;
} dataset;

static dataset make_data(size_t n, uint64_t seed) {
    dataset d = {n, malloc(n * FEAT * sizeof(float)), calloc(n * 3, sizeof(float)), malloc(n * sizeof(float)),
                 malloc(n * sizeof(float))};
    uint64_t s = seed;
    for (size_t i = 0; i < n * FEAT; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        d.x[i] = (float)((s >> 40) % 2001) / 1000.0f - 1.0f;
    }
    for (size_t i = 0; i < n; i++) {
        float a = d.x[i * FEAT] + d.x[i * FEAT + 1] - d.x[i * FEAT + 2];
        d.yc[i * 3 + (a > 0.4f ? 0 : a > -0.4f ? 1 : 2)] = 1;
        d.yr[i] = 0.5f * d.x[i * FEAT + 3] - d.x[i * FEAT + 4] * d.x[i * FEAT + 5];
        d.sw[i] = 0.5f + (float)(i % 3);
    }
    return d;
}

static void free_data(dataset *d) { free(d->x), free(d->yc), free(d->yr), free(d->sw); }

typedef struct view {
    loom_array x, y[2], sw[1];
    loom_data data;
} view;

/* samples [first, first + n) of d */
static void make_view(view *v, const dataset *d, size_t first, size_t n) {
    v->x = (loom_array){.name = "x", .data = d->x + first * FEAT, .n = n, .count = n * FEAT};
    v->y[0] = (loom_array){.name = "cls", .data = d->yc + first * 3, .n = n, .count = n * 3};
    v->y[1] = (loom_array){.name = "reg", .data = d->yr + first, .n = n, .count = n};
    v->sw[0] = (loom_array){.name = "cls", .data = d->sw + first, .n = n, .count = n};
    v->data = (loom_data){1, &v->x, 2, v->y, 1, v->sw};
}

/* opt: 0 plain SGD, 1 Adam, 2 SGD with momentum; bal: a balancing method (NULL: static weights) */
static loom_model *make_model_balanced(int opt, float dropout, const loom_balance *bal) {
    loom_graph *g = loom_graph_new(7);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){FEAT});
    loom_dense_options l2 = loom_dense_defaults();
    l2.kernel_regularizer.l2 = 1e-3f;
    loom_tensor *h = loom_call(loom_dense(g, "h1", 16, LOOM_TANH, &l2), x);
    if (dropout > 0) h = loom_call(loom_dropout(g, "drop", dropout), h);
    h = loom_call(loom_dense(g, "h2", 12, LOOM_RELU, NULL), h);
    loom_tensor *c = loom_call(loom_dense(g, "cls", 3, LOOM_SOFTMAX, NULL), h);
    loom_tensor *r = loom_call(loom_dense(g, "reg", 1, LOOM_LINEAR, NULL), h);
    loom_model *m = loom_model_new(g, 1, &x, 2, (loom_tensor *[]){c, r});
    loom_loss l[] = {{.name = "categorical_crossentropy"}, {.name = "mse"}};
    float w[] = {1.0f, 0.5f};
    loom_metric_spec ms[] = {{"cls", "accuracy"}, {"reg", "mae"}};
    loom_compile_config cfg = {.n_losses = 2, .losses = l, .n_loss_weights = 2, .loss_weights = w,
                               .n_metrics = 2, .metrics = ms,
                               .optimizer = opt == 1 ? loom_adam(0.01f) : loom_sgd(0.05f, opt == 2 ? 0.9f : 0.0f, 0)};
    if (bal) cfg.balance = *bal;
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    return m;
}

static loom_model *make_model(int opt, float dropout) { return make_model_balanced(opt, dropout, NULL); }

/* Compares a against the one-process reference b within TOL; tracks the worst ratio. */
static int close_to(const float *a, const float *b, size_t n) {
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double lim = tol_scale * (TOL_ABS + TOL_REL * fabs((double)b[i])), d = fabs((double)a[i] - (double)b[i]);
        if (d / lim > worst) worst = d / lim;
        if (!(d <= lim)) bad++;
    }
    return bad == 0;
}

static int hist_close(const loom_history *a, const loom_history *b) {
    int ok = loom_history_epochs(a) == loom_history_epochs(b) && loom_history_num_keys(a) == loom_history_num_keys(b);
    for (int k = 0; ok && k < loom_history_num_keys(b); k++) {
        const char *key = loom_history_key(b, k);
        const float *va = loom_history_values(a, key), *vb = loom_history_values(b, key);
        if (!va || !close_to(va, vb, (size_t)loom_history_epochs(b))) {
            fprintf(stderr, "rank %d: history key %s differs\n", rank, key);
            ok = 0;
        }
    }
    return ok;
}

/* Every rank's buffer equals rank 0's, bit for bit. */
static int same_on_all_ranks(const void *p, size_t bytes) {
#ifdef LOOM_HAVE_MPI
    char *root = malloc(bytes ? bytes : 1);
    if (rank == 0) memcpy(root, p, bytes);
    MPI_Bcast(root, (int)bytes, MPI_BYTE, 0, MPI_COMM_WORLD);
    int same = memcmp(root, p, bytes) == 0, all = 0;
    MPI_Allreduce(&same, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    free(root);
    return all;
#else
    (void)p, (void)bytes;
    return 1;
#endif
}

static float *history_flat(const loom_history *h, size_t *n) {
    int e = loom_history_epochs(h), k = loom_history_num_keys(h);
    float *out = calloc((size_t)(e * k + 1), sizeof *out);
    for (int i = 0; i < k; i++) memcpy(out + (size_t)i * e, loom_history_values(h, loom_history_key(h, i)), (size_t)e * sizeof *out);
    *n = (size_t)(e * k);
    return out;
}

static loom_fit_options fit_options(int batch, int epochs, const dataset *val_set, view *val, loom_dist *d) {
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = batch;
    fo.epochs = epochs;
    fo.seed = 99;
    fo.dist = d;
    if (val_set) {
        make_view(val, val_set, 0, val_set->n);
        fo.validation_data = &val->data;
    }
    return fo;
}

/* ---------------------------------------------------------------- alone */

static void test_shard_rule(void) {
    for (int size = 1; size <= 5; size++)
        for (int per = 1; per <= 4; per++)
            for (size_t global = 1; global <= (size_t)size * per; global++) {
                size_t next = 0;
                int lo = 1 << 30, hi = 0;
                for (int r = 0; r < size; r++) {
                    size_t off;
                    int c;
                    loom_dist_shard(r, size, per, global, &off, &c);
                    CHECK(off == next); /* contiguous, in rank order */
                    next = off + (size_t)c;
                    if (c < lo) lo = c;
                    if (c > hi) hi = c;
                    CHECK(c <= per);
                }
                CHECK(next == global);
                CHECK(hi - lo <= 1); /* as even as possible */
            }
}

/* fit with a context of one rank == plain fit, bit for bit; except plain SGD, which one process
 * applies inside the backward (a fused product, rounded differently) and a distributed fit after
 * the reduction: within the tolerance */
static void test_one_rank(loom_dist *d) {
    dataset tr = make_data(97, 1), va = make_data(20, 2);
    for (int opt = 0; opt <= 2; opt++) {
        view v, vv;
        make_view(&v, &tr, 0, tr.n);
        loom_model *a = make_model(opt, 0), *b = make_model(opt, 0);
        loom_history *ha = NULL, *hb = NULL;
        loom_fit_options fa = fit_options(GLOBAL_BATCH, 2, &va, &vv, NULL), fb = fit_options(GLOBAL_BATCH, 2, &va, &vv, d);
        CHECK_STATUS(loom_fit(a, &v.data, &fa, &ha), LOOM_OK);
        CHECK_STATUS(loom_fit(b, &v.data, &fb, &hb), LOOM_OK);
        if (!ha || !hb) continue;
        size_t na, nb;
        float *fa_h = history_flat(ha, &na), *fb_h = history_flat(hb, &nb);
        CHECK(na == nb && na > 0);
        if (opt == 0) {
            CHECK(close_to(loom_params(b), loom_params(a), loom_param_count(a)));
            CHECK(hist_close(hb, ha));
        } else {
            CHECK(memcmp(loom_params(a), loom_params(b), loom_param_count(a) * sizeof(float)) == 0);
            CHECK(na == nb && memcmp(fa_h, fb_h, na * sizeof(float)) == 0);
        }
        free(fa_h), free(fb_h);
        loom_history_free(ha), loom_history_free(hb);
        loom_model_free(a), loom_model_free(b);
    }
    free_data(&tr), free_data(&va);
}

/* TF 2's SyncBatchNormalization class in a Keras file imports as a synchronised
 * BatchNormalization, and the option is written back (Keras 3's "synchronized": true) */
static void test_sync_bn_import(void) {
    const char *json = "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", \"layers\": ["
                       "{\"class_name\": \"Dense\", \"config\": {\"name\": \"d\", \"units\": 4, \"batch_input_shape\": [null, 3]}},"
                       "{\"class_name\": \"SyncBatchNormalization\", \"config\": {\"name\": \"sbn\", \"axis\": -1, \"momentum\": 0.9,"
                       " \"epsilon\": 0.001, \"center\": true, \"scale\": true}},"
                       "{\"class_name\": \"BatchNormalization\", \"config\": {\"name\": \"bn\", \"synchronized\": false}}]}}";
    char err[512], path[64], text[8192];
    loom_model *m = loom_model_import_memory(json, strlen(json), "sync.json", err, sizeof err);
    CHECK(m != NULL);
    if (!m) {
        fprintf(stderr, "SyncBatchNormalization: %s\n", err);
        return;
    }
    snprintf(path, sizeof path, "/tmp/loom_test_dist_%ld.json", (long)getpid());
    CHECK_STATUS(loom_model_export(m, path), LOOM_OK);
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    text[n] = 0;
    if (f) fclose(f);
    const char *sbn = strstr(text, "\"sbn\""), *bn = strstr(text, "\"bn\"");
    CHECK(sbn && bn && strstr(text, "SyncBatchNormalization") == NULL);
    const char *sync = strstr(text, "\"synchronized\":"), *value = sync ? sync + 15 : NULL;
    while (value && (*value == ' ' || *value == '\t')) value++;
    CHECK(sync && strncmp(value, "true", 4) == 0);
    /* written for sbn alone (bn's false is the default, left out) */
    CHECK(sync && sbn && bn && sync > sbn && sync < bn && strstr(sync + 1, "\"synchronized\"") == NULL);
    remove(path);
    char bin[80];
    snprintf(bin, sizeof bin, "/tmp/loom_test_dist_%ld.weights.bin", (long)getpid());
    remove(bin);
    loom_model_free(m);
}

/* ---------------------------------------------------------------- under mpirun */

static void equiv_case(loom_dist *d, size_t n, int adam, const loom_balance *bal) {
    dataset tr = make_data(n, 3), va = make_data(23, 4);
    view v, vv;
    make_view(&v, &tr, 0, tr.n);
    int per_rank = GLOBAL_BATCH / ranks;
    loom_callback *plateau = loom_reduce_lr_on_plateau("val_loss", 0.5f, 1, LOOM_MODE_AUTO, 0.0f, 0, 0.0f);
    loom_callback *cbs[] = {plateau};
    /* the reference: one process, batch 12 */
    loom_model *ref = make_model_balanced(adam, 0, bal);
    loom_history *href = NULL;
    loom_fit_options fr = fit_options(GLOBAL_BATCH, EPOCHS, &va, &vv, NULL);
    fr.n_callbacks = 1, fr.callbacks = cbs;
    CHECK_STATUS(loom_fit(ref, &v.data, &fr, &href), LOOM_OK);
    float *wd[2] = {NULL, NULL};
    float *hd[2] = {NULL, NULL};
    size_t nh[2] = {0, 0};
    for (int run = 0; run < 2; run++) {
        loom_model *m = make_model_balanced(adam, 0, bal);
        loom_history *h = NULL;
        loom_fit_options fo = fit_options(per_rank, EPOCHS, &va, &vv, d);
        fo.n_callbacks = 1, fo.callbacks = cbs;
        CHECK_STATUS(loom_fit(m, &v.data, &fo, &h), LOOM_OK);
        if (!h) break;
        size_t np = loom_param_count(m);
        if (!close_to(loom_params(m), loom_params(ref), np) || !hist_close(h, href)) {
            fprintf(stderr, "rank %d: %zu samples, %s, balance %s: not what one process trains\n", rank, n,
                    adam ? "Adam" : "SGD", bal ? loom_balance_name(bal->kind) : "static");
            CHECK(0);
        }
        wd[run] = malloc(np * sizeof(float));
        memcpy(wd[run], loom_params(m), np * sizeof(float));
        hd[run] = history_flat(h, &nh[run]);
        CHECK(same_on_all_ranks(wd[run], np * sizeof(float)));
        CHECK(same_on_all_ranks(hd[run], nh[run] * sizeof(float)));
        if (run == 1) {
            CHECK(memcmp(wd[0], wd[1], np * sizeof(float)) == 0);
            CHECK(nh[0] == nh[1] && memcmp(hd[0], hd[1], nh[0] * sizeof(float)) == 0);
        }
        loom_history_free(h);
        loom_model_free(m);
    }
    free(wd[0]), free(wd[1]), free(hd[0]), free(hd[1]);
    loom_history_free(href);
    loom_model_free(ref);
    loom_callback_free(plateau);
    free_data(&tr), free_data(&va);
}

/* dropout: each rank draws its own stream, the weights stay identical across ranks */
static void dropout_case(loom_dist *d) {
    dataset tr = make_data(60, 5);
    view v;
    make_view(&v, &tr, 0, tr.n);
    loom_model *m = make_model(1, 0.3f);
    loom_fit_options fo = fit_options(GLOBAL_BATCH / ranks, 2, NULL, NULL, d);
    fo.verbose = 2; /* one progress line per epoch, on rank 0 only */
    fo.out = tmpfile();
    CHECK(fo.out != NULL);
    if (!fo.out) return;
    CHECK_STATUS(loom_fit(m, &v.data, &fo, NULL), LOOM_OK);
    CHECK(rank == 0 ? ftell(fo.out) > 0 : ftell(fo.out) == 0);
    fclose(fo.out);
    CHECK(same_on_all_ranks(loom_params(m), loom_param_count(m) * sizeof(float)));
    loom_model_free(m);
    free_data(&tr);
}

/* BatchNormalization: per-rank batch statistics, rank 0's moving statistics broadcast after
 * every step: every rank ends with the same model, moving statistics included */
static void batchnorm_case(loom_dist *d) {
    dataset tr = make_data(60, 8);
    view v;
    make_view(&v, &tr, 0, tr.n);
    loom_graph *g = loom_graph_new(3);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){FEAT});
    loom_tensor *h = loom_call(loom_dense(g, "h1", 8, LOOM_LINEAR, NULL), x);
    h = loom_call(loom_batch_normalization(g, "bn", NULL), h);
    loom_tensor *c = loom_call(loom_dense(g, "cls", 3, LOOM_SOFTMAX, NULL), h);
    loom_tensor *r = loom_call(loom_dense(g, "reg", 1, LOOM_LINEAR, NULL), h);
    loom_model *m = loom_model_new(g, 1, &x, 2, (loom_tensor *[]){c, r});
    loom_loss l[] = {{.name = "categorical_crossentropy"}, {.name = "mse"}};
    loom_compile_config cfg = {.n_losses = 2, .losses = l, .optimizer = loom_adam(0.01f)};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    float *before = malloc(loom_param_count(m) * sizeof(float));
    memcpy(before, loom_params(m), loom_param_count(m) * sizeof(float));
    loom_fit_options fo = fit_options(GLOBAL_BATCH / ranks, 2, NULL, NULL, d);
    CHECK_STATUS(loom_fit(m, &v.data, &fo, NULL), LOOM_OK);
    CHECK(same_on_all_ranks(loom_params(m), loom_param_count(m) * sizeof(float)));
    /* the moving mean moved (weight 2 of the layer: gamma, beta, moving mean, moving variance) */
    size_t at = loom_param_offset(m, "bn", 2);
    CHECK(memcmp(before + at, loom_params(m) + at, 8 * sizeof(float)) != 0);
    free(before);
    loom_model_free(m);
    free_data(&tr);
}

/* A loss over a masked sequence is normalised by the valid steps of the (global) batch: N ranks
 * against one process with sequences of different valid lengths, so ranks hold different shares
 * of the valid steps; with_static: a second, unmasked output beside it (per-output shares). */
static void masked_case(loom_dist *d, int with_static) {
    enum { N = 30, T = 5 };
    float ids[N * T], y[N * T], y2[N], sw[N];
    for (int i = 0; i < N; i++) {
        int len = i % 7 == 0 ? 0 : 1 + (i * 3) % T; /* some samples without a valid step */
        for (int t = 0; t < T; t++) {
            ids[i * T + t] = t < len ? (float)(1 + (i + 2 * t) % 9) : 0.0f;
            y[i * T + t] = t < len ? 0.1f * (float)((i * 7 + t) % 11) - 0.5f : 0.0f;
        }
        y2[i] = 0.05f * (float)(i % 13);
        sw[i] = 0.5f + (float)(i % 4);
    }
    loom_model *mods[2];
    loom_history *hs[2];
    for (int run = 0; run < 2; run++) {
        loom_graph *g = loom_graph_new(4);
        loom_tensor *in = loom_input(g, "ids", 1, (int[]){T});
        loom_tensor *e = loom_call(loom_embedding(g, "emb", 10, 4, 1), in);
        loom_tensor *outs[2] = {loom_call(loom_dense(g, "per_step", 1, LOOM_LINEAR, NULL), e), NULL};
        if (with_static) outs[1] = loom_call(loom_dense(g, "whole", 1, LOOM_LINEAR, NULL), loom_call(loom_flatten(g, "flat"), e));
        mods[run] = loom_model_new(g, 1, &in, 1 + with_static, outs);
        loom_loss l[] = {{.name = "mse"}, {.name = "mae"}};
        loom_compile_config cfg = {.n_losses = 1 + with_static, .losses = l, .optimizer = loom_adam(0.02f)};
        CHECK_STATUS(loom_compile(mods[run], &cfg), LOOM_OK);
        loom_array ax = {.name = "ids", .data = ids, .n = N, .count = N * T};
        loom_array ay[] = {{.name = "per_step", .data = y, .n = N, .count = N * T}, {.name = "whole", .data = y2, .n = N, .count = N}};
        loom_array asw = {.name = "per_step", .data = sw, .n = N, .count = N};
        loom_data data = {1, &ax, 1 + with_static, ay, 1, &asw};
        loom_fit_options fo = fit_options(run ? GLOBAL_BATCH / ranks : GLOBAL_BATCH, 3, NULL, NULL, run ? d : NULL);
        fo.validation_split = 0.2f;
        hs[run] = NULL;
        CHECK_STATUS(loom_fit(mods[run], &data, &fo, &hs[run]), LOOM_OK);
    }
    if (hs[0] && hs[1]) {
        if (!close_to(loom_params(mods[1]), loom_params(mods[0]), loom_param_count(mods[0])) || !hist_close(hs[1], hs[0])) {
            fprintf(stderr, "rank %d: masked sequence loss%s: not what one process trains\n", rank, with_static ? " beside another" : "");
            CHECK(0);
        }
        CHECK(same_on_all_ranks(loom_params(mods[1]), loom_param_count(mods[1]) * sizeof(float)));
    }
    for (int run = 0; run < 2; run++) loom_history_free(hs[run]), loom_model_free(mods[run]);
}

/* Synchronised BatchNormalization (Keras's synchronized=True): N ranks normalise with the global
 * batch's statistics and so train what one process trains on the global batch (weights, moving
 * statistics, history), also when the partial last batch leaves ranks without a sample (97) and
 * under a gradient method (PCGrad: per-loss backward passes, each reducing BN's sums). Without the
 * option the same fit differs from one process (each rank's own statistics). */
static loom_model *make_bn_model(int synced, const loom_balance *bal) {
    loom_graph *g = loom_graph_new(3);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){FEAT});
    loom_tensor *h = loom_call(loom_dense(g, "h1", 8, LOOM_TANH, NULL), x);
    loom_batchnorm_options bo = loom_batchnorm_defaults();
    bo.synchronized = synced;
    bo.momentum = 0.9f;
    h = loom_call(loom_batch_normalization(g, "bn", &bo), h);
    loom_tensor *c = loom_call(loom_dense(g, "cls", 3, LOOM_SOFTMAX, NULL), h);
    loom_tensor *r = loom_call(loom_dense(g, "reg", 1, LOOM_LINEAR, NULL), h);
    loom_model *m = loom_model_new(g, 1, &x, 2, (loom_tensor *[]){c, r});
    loom_loss l[] = {{.name = "categorical_crossentropy"}, {.name = "mse"}};
    loom_compile_config cfg = {.n_losses = 2, .losses = l, .optimizer = loom_adam(0.01f)};
    if (bal) cfg.balance = *bal;
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    return m;
}

static void sync_bn_case(loom_dist *d, size_t n, int synced, const loom_balance *bal) {
    dataset tr = make_data(n, 9), va = make_data(17, 10);
    view v, vv;
    make_view(&v, &tr, 0, tr.n);
    loom_model *ref = make_bn_model(synced, bal), *m = make_bn_model(synced, bal);
    loom_history *href = NULL, *h = NULL;
    loom_fit_options fr = fit_options(GLOBAL_BATCH, 3, &va, &vv, NULL), fo = fit_options(GLOBAL_BATCH / ranks, 3, &va, &vv, d);
    CHECK_STATUS(loom_fit(ref, &v.data, &fr, &href), LOOM_OK);
    CHECK_STATUS(loom_fit(m, &v.data, &fo, &h), LOOM_OK);
    if (h && href) {
        double keep = worst;
        bool same = close_to(loom_params(m), loom_params(ref), loom_param_count(ref)) && hist_close(h, href);
        if (!synced) worst = keep; /* the expected difference is no deviation to report */
        if (synced && !same) fprintf(stderr, "rank %d: synchronised BatchNormalization (%zu samples%s): not what one process trains\n",
                                     rank, n, bal ? ", PCGrad" : "");
        CHECK(synced ? same : !same);
        CHECK(same_on_all_ranks(loom_params(m), loom_param_count(m) * sizeof(float)));
    }
    loom_history_free(h), loom_history_free(href);
    loom_model_free(m), loom_model_free(ref);
    free_data(&tr), free_data(&va);
}

static void mode_equiv(loom_dist *d) {
    CHECK(loom_dist_launcher_size() == ranks);
    batchnorm_case(d);
    /* 103 = 8 x 12 + 7 and 97 = 8 x 12 + 1: the last global batch is partial, and in the second
     * it leaves every rank but rank 0 without a sample */
    for (int adam = 0; adam <= 1; adam++) {
        equiv_case(d, 103, adam, NULL);
        equiv_case(d, 97, adam, NULL);
    }
    /* small buckets: several reductions per step, started during the backward */
    loom_dist_set_bucket_bytes(d, 256);
    equiv_case(d, 103, 1, NULL);
    loom_dist_set_bucket_bytes(d, 4 << 20);
    /* every balancing method decides on the global batch's losses and per-loss gradients */
    for (int kind = LOOM_BALANCE_UNCERTAINTY; kind <= LOOM_BALANCE_NASH_MTL; kind++) {
        loom_balance bal = loom_balance_defaults((loom_balance_kind)kind);
        bal.diagnostics_every = kind == LOOM_BALANCE_DWA ? 3 : 0; /* the gradient cosines too */
        equiv_case(d, kind == LOOM_BALANCE_PCGRAD || kind == LOOM_BALANCE_GRADNORM ? 97 : 103, 1, &bal);
    }
    masked_case(d, 0);
    masked_case(d, 1);
    sync_bn_case(d, 103, 1, NULL);
    sync_bn_case(d, 97, 1, NULL);
    loom_balance pc = loom_balance_defaults(LOOM_BALANCE_PCGRAD);
    sync_bn_case(d, 97, 1, &pc);
    sync_bn_case(d, 103, 0, NULL);
    dropout_case(d);
}

/* an uninterrupted one-process run of EPOCHS epochs (Adam), the reference of save/resume */
static loom_model *uninterrupted(const dataset *tr, loom_history **h) {
    view v;
    make_view(&v, tr, 0, tr->n);
    loom_model *ref = make_model(1, 0);
    loom_fit_options fr = fit_options(GLOBAL_BATCH, EPOCHS, NULL, NULL, NULL);
    CHECK_STATUS(loom_fit(ref, &v.data, &fr, h), LOOM_OK);
    return ref;
}

static void continue_and_compare(const char *path, loom_dist *d, const dataset *tr) {
    loom_history *href = NULL;
    loom_model *ref = uninterrupted(tr, &href);
    char err[512];
    loom_model *m = loom_model_load(path, err, sizeof err);
    CHECK(m != NULL);
    if (!m) {
        fprintf(stderr, "rank %d: %s\n", rank, err);
        loom_model_free(ref);
        loom_history_free(href);
        return;
    }
    CHECK(loom_model_epochs_done(m) == 2);
    view v;
    make_view(&v, tr, 0, tr->n);
    int size = d ? ranks : 1;
    loom_fit_options fo = fit_options(GLOBAL_BATCH / size, EPOCHS, NULL, NULL, d);
    fo.initial_epoch = loom_model_epochs_done(m);
    CHECK_STATUS(loom_fit(m, &v.data, &fo, NULL), LOOM_OK);
    CHECK(close_to(loom_params(m), loom_params(ref), loom_param_count(ref)));
    /* the model's whole log (the 2 saved epochs and the 2 resumed ones) against the reference */
    CHECK(hist_close(loom_model_history(m), href));
    if (d) CHECK(same_on_all_ranks(loom_params(m), loom_param_count(m) * sizeof(float)));
    loom_model_free(m);
    loom_model_free(ref);
    loom_history_free(href);
}

static void mode_save(loom_dist *d, const char *path) {
    dataset tr = make_data(103, 6);
    view v;
    make_view(&v, &tr, 0, tr.n);
    if (rank == 0) remove(path);
    loom_model *m = make_model(1, 0);
    /* a second checkpoint whose path names the rank: only rank 0's may appear */
    char mine[4200];
    snprintf(mine, sizeof mine, "%s.rank%d", path, rank);
    remove(mine);
    loom_callback *ck = loom_model_checkpoint(path, NULL, LOOM_MODE_AUTO, 0, 0);
    loom_callback *ck_rank = loom_model_checkpoint(mine, NULL, LOOM_MODE_AUTO, 0, 0);
    loom_callback *cbs[] = {ck, ck_rank};
    loom_fit_options fo = fit_options(GLOBAL_BATCH / ranks, 2, NULL, NULL, d);
    fo.n_callbacks = 2, fo.callbacks = cbs;
    CHECK_STATUS(loom_fit(m, &v.data, &fo, NULL), LOOM_OK);
#ifdef LOOM_HAVE_MPI
    MPI_Barrier(MPI_COMM_WORLD);
#endif
    FILE *f = fopen(mine, "rb");
    CHECK(rank == 0 ? f != NULL : f == NULL);
    if (f) fclose(f);
    remove(mine);
    loom_callback_free(ck_rank);
    continue_and_compare(path, NULL, &tr); /* at one process */
    loom_callback_free(ck);
    loom_model_free(m);
    free_data(&tr);
}

static void mode_resume(loom_dist *d, const char *path) {
    dataset tr = make_data(103, 6);
    continue_and_compare(path, d, &tr);
    free_data(&tr);
}

static int fail_on_rank1(int epoch, int step, int max_batch, loom_data *batch, void *user) {
    view *v = user;
    (void)epoch, (void)max_batch;
    if (rank == 1 && step == 2) return 5;
    *batch = v->data;
    return 0;
}

static void mode_faults(loom_dist *d) {
    dataset tr = make_data(60, 7);
    view v;
    loom_model *m = make_model(0, 0);
    loom_fit_options fo = fit_options(GLOBAL_BATCH / ranks, 2, NULL, NULL, d);
    /* rank 1 holds a different data set */
    make_view(&v, &tr, 0, rank == 1 ? 50 : 60);
    CHECK_STATUS(loom_fit(m, &v.data, &fo, NULL), LOOM_ERR_DIST);
    CHECK(strstr(loom_model_error(m), "different data") != NULL);
    /* rank 1 names an input that does not exist: its own error, the others LOOM_ERR_DIST */
    make_view(&v, &tr, 0, 60);
    if (rank == 1) v.x.name = "nope";
    loom_status s = loom_fit(m, &v.data, &fo, NULL);
    CHECK(rank == 1 ? s == LOOM_ERR_NAME : s == LOOM_ERR_DIST);
    if (rank != 1) CHECK(strstr(loom_model_error(m), "another rank") != NULL);
    /* a NaN in one sample (on one rank's shard): TerminateOnNaN stops every rank at that step
     * (binding's own finite-value check off, so that the NaN reaches the loss) */
    make_view(&v, &tr, 0, 60);
    CHECK(loom_set_check_finite(m, 0) == LOOM_OK);
    float keep = tr.x[17 * FEAT];
    tr.x[17 * FEAT] = NAN;
    loom_callback *nan = loom_terminate_on_nan();
    loom_callback *cbs[] = {nan};
    fo.n_callbacks = 1, fo.callbacks = cbs;
    loom_history *h = NULL;
    CHECK_STATUS(loom_fit(m, &v.data, &fo, &h), LOOM_ERR_NAN);
    CHECK(h && loom_history_epochs(h) == 0);
    loom_history_free(h);
    tr.x[17 * FEAT] = keep;
    CHECK(loom_set_check_finite(m, 1) == LOOM_OK);
    fo.n_callbacks = 0, fo.callbacks = NULL;
    /* a batch function that fails on rank 1 at step 3 */
    make_view(&v, &tr, 0, GLOBAL_BATCH / ranks);
    s = loom_fit_generator(m, fail_on_rank1, &v, 4, &fo, NULL);
    CHECK(rank == 1 ? s == LOOM_ERR_CALLBACK : s == LOOM_ERR_DIST);
    if (rank == 1) CHECK(strstr(loom_model_error(m), "rank 1 of") != NULL);
    else CHECK(strstr(loom_model_error(m), "step 3") != NULL);
    /* a checkpoint that rank 0 (the only writer) cannot save: it reports the file, the others stop */
    loom_callback *ck = loom_model_checkpoint("/nonexistent-dir/ckpt.loom", NULL, LOOM_MODE_AUTO, 0, 0);
    loom_callback *ck_cbs[] = {ck};
    make_view(&v, &tr, 0, 60);
    fo.n_callbacks = 1, fo.callbacks = ck_cbs;
    s = loom_fit(m, &v.data, &fo, NULL);
    CHECK(rank == 0 ? s == LOOM_ERR_IO : s == LOOM_ERR_DIST);
    fo.n_callbacks = 0, fo.callbacks = NULL;
    loom_callback_free(ck);
    /* and the ranks are still in step: a good fit afterwards works */
    make_view(&v, &tr, 0, 60);
    CHECK_STATUS(loom_fit(m, &v.data, &fo, NULL), LOOM_OK);
    CHECK(same_on_all_ranks(loom_params(m), loom_param_count(m) * sizeof(float)));
    loom_callback_free(nan);
    loom_model_free(m);
    free_data(&tr);
}

/* `compare A B`: two model files (tests/cli_dist.sh: `loom fit` under mpirun and alone) hold
 * weights and a training log within `scale` times this file's tolerance (see cli_dist.sh). */
static int mode_compare(const char *dist_path, const char *one_path, double scale) {
    if (!(scale > 0)) scale = 1;
    char err[512];
    loom_model *a = loom_model_load(dist_path, err, sizeof err);
    if (!a) fprintf(stderr, "%s: %s\n", dist_path, err);
    loom_model *b = a ? loom_model_load(one_path, err, sizeof err) : NULL;
    if (a && !b) fprintf(stderr, "%s: %s\n", one_path, err);
    CHECK(a && b);
    tol_scale = scale;
    if (a && b) {
        double keep = worst;
        worst = 0;
        CHECK(loom_param_count(a) == loom_param_count(b) && close_to(loom_params(a), loom_params(b), loom_param_count(b)));
        double w_weights = worst;
        worst = 0;
        CHECK(loom_history_epochs(loom_model_history(b)) > 0);
        CHECK(hist_close(loom_model_history(a), loom_model_history(b)));
        printf("compare %s with %s: worst deviation %.3f (weights), %.3f (history) of the tolerance x %g\n", dist_path,
               one_path, w_weights, worst, scale);
        worst = keep;
    }
    loom_model_free(a);
    loom_model_free(b);
    return check_report("test_dist compare");
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "alone";
    if (strcmp(mode, "compare") == 0 && argc > 4) return mode_compare(argv[2], argv[3], atof(argv[4]));
    test_shard_rule();
    if (strcmp(mode, "alone") == 0) test_sync_bn_import();
    char err[512];
    loom_dist *d = loom_dist_create(NULL, err, sizeof err);
    if (!loom_dist_available()) {
        CHECK(d == NULL);
        CHECK(strstr(err, "built without MPI") != NULL);
        if (strcmp(mode, "alone") != 0) printf("test_dist: loom was built without MPI; skipping mode %s\n", mode);
        return check_report("test_dist");
    }
    CHECK(d != NULL);
    if (!d) {
        fprintf(stderr, "%s\n", err);
        return check_report("test_dist");
    }
    rank = loom_dist_rank(d);
    ranks = loom_dist_size(d);
    if (strcmp(mode, "alone") == 0) {
        if (ranks == 1) test_one_rank(d);
    } else if (GLOBAL_BATCH % ranks != 0) {
        fprintf(stderr, "test_dist: %d ranks do not divide the global batch %d\n", ranks, GLOBAL_BATCH);
        CHECK(0);
    } else if (strcmp(mode, "equiv") == 0) {
        mode_equiv(d);
    } else if (strcmp(mode, "save") == 0 && argc > 2) {
        mode_save(d, argv[2]);
    } else if (strcmp(mode, "resume") == 0 && argc > 2) {
        mode_resume(d, argv[2]);
    } else if (strcmp(mode, "faults") == 0 && ranks >= 2) {
        mode_faults(d);
    } else {
        fprintf(stderr, "test_dist: unknown mode %s (or too few ranks)\n", mode);
        CHECK(0);
    }
    if (strcmp(mode, "alone") != 0) printf("rank %d of %d: worst deviation from one process %.3f of the tolerance\n", rank, ranks, worst);
    int failed = check_report("test_dist");
    int any = failed;
#ifdef LOOM_HAVE_MPI
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
#endif
    loom_dist_free(d);
    return any;
}
