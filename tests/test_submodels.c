/* test_submodels.c — several models over one graph (Keras's encoder beside the full model), their
 * shared weights and every order of freeing them; a model called as a layer (nesting); trainable
 * per layer and per model (fine-tuning: freeze a trunk, train a head, unfreeze, recompile); and the
 * compile defaults a Keras user expects (no optimizer: rmsprop 0.001; threads from the environment).
 * Run under ASan+UBSan the free-order tests are what catches a use-after-free. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_getaffinity, for the default thread count */
#endif
#include "check.h"
#include "loom.h"

#include <math.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { NS = 32, NF = 6, NH = 8 };

static float X[NS * NF], YC[NS], YD[NS * 3];

static uint64_t rng_state = 0x2545F4914F6CDD1DULL;
static float frand(float lo, float hi) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return lo + (hi - lo) * (float)((rng_state >> 40) * (1.0 / 16777216.0));
}

static void make_data(void) {
    for (int i = 0; i < NS * NF; i++) X[i] = frand(-1, 1);
    for (int i = 0; i < NS; i++) {
        YC[i] = X[i * NF] + X[i * NF + 1] > 0 ? 1.0f : 0.0f;
        int k = (int)((X[i * NF + 2] + 1) * 1.5f);
        k = k < 0 ? 0 : k > 2 ? 2 : k;
        for (int j = 0; j < 3; j++) YD[i * 3 + j] = j == k;
    }
}

static bool same(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof *a) == 0; }

/* x -> trunk (Dense relu) -> c (sigmoid, 1) and d (softmax, 3); the tensors of each part. */
typedef struct net {
    loom_graph *g;
    loom_tensor *x, *h, *c, *d;
} net;

static net make_net(uint64_t seed) {
    net n = {0};
    n.g = loom_graph_new(seed);
    n.x = loom_input(n.g, "x", 1, (int[]){NF});
    n.h = loom_call(loom_dense(n.g, "trunk", NH, LOOM_RELU, NULL), n.x);
    n.c = loom_call(loom_dense(n.g, "c", 1, LOOM_SIGMOID, NULL), n.h);
    n.d = loom_call(loom_dense(n.g, "d", 3, LOOM_SOFTMAX, NULL), n.h);
    return n;
}

static loom_model *model1(net *n, loom_tensor *out) { return loom_model_new(n->g, 1, &n->x, 1, &out); }
static loom_model *model_full(net *n) { return loom_model_new(n->g, 1, &n->x, 2, (loom_tensor *[]){n->c, n->d}); }

static loom_status compile_full(loom_model *m, loom_optimizer opt) {
    loom_loss losses[2] = {{.name = "binary_crossentropy"}, {.name = "categorical_crossentropy"}};
    loom_compile_config cfg = {.n_losses = 2, .losses = losses, .n_loss_weights = 2,
                               .loss_weights = (float[]){1.0f, 0.2f}, .optimizer = opt};
    return loom_compile(m, &cfg);
}

static loom_data full_data(void) {
    static loom_array x, y[2];
    x = (loom_array){.name = "x", .data = X, .n = NS, .count = NS * NF};
    y[0] = (loom_array){.name = "c", .data = YC, .n = NS, .count = NS};
    y[1] = (loom_array){.name = "d", .data = YD, .n = NS, .count = NS * 3};
    return (loom_data){.n_x = 1, .x = &x, .n_y = 2, .y = y};
}

static loom_status fit_epochs(loom_model *m, const loom_data *d, int epochs) {
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = 8;
    fo.epochs = epochs;
    return loom_fit(m, d, &fo, NULL);
}

static void predict1(loom_model *m, float *out) {
    loom_array x = {.name = "x", .data = X, .n = NS, .count = NS * NF};
    CHECK_STATUS(loom_predict(m, 1, &x, 16, (float *[]){out}), LOOM_OK);
}

static float *weights(loom_model *m, const char *layer, int i) {
    size_t n = loom_layer_weight_size(loom_model_find_layer(m, layer), i);
    float *w = malloc(n * sizeof *w + sizeof *w);
    if (w) CHECK_STATUS(loom_get_weights(m, layer, i, w, n), LOOM_OK);
    return w;
}

/* ---------------------------------------------------------------- ownership */

static void test_free_orders(void) {
    /* encoder and full over one graph, freed in both orders, with a stray loom_graph_free between
     * (a no-op: the models hold the graph) */
    for (int order = 0; order < 4; order++) {
        net n = make_net(1);
        loom_model *enc = model1(&n, n.h), *full = model_full(&n);
        CHECK(enc && full);
        if (order >= 2) loom_graph_free(n.g);
        if (order % 2) {
            loom_model_free(full);
            float out[NS * NH];
            predict1(enc, out); /* the graph and the weights outlive the first model */
            loom_model_free(enc);
        } else {
            loom_model_free(enc);
            CHECK_STATUS(compile_full(full, loom_adam(0.01f)), LOOM_OK);
            loom_data d = full_data();
            CHECK_STATUS(fit_epochs(full, &d, 1), LOOM_OK);
            loom_model_free(full);
        }
    }
    /* a graph that never became a model; one whose model failed */
    net n = make_net(2);
    loom_graph_free(n.g);
    n = make_net(2);
    loom_tensor *y = loom_input(n.g, "unused", 1, (int[]){3});
    CHECK(y && loom_model_new(n.g, 2, (loom_tensor *[]){n.x, y}, 1, &n.c) == NULL);
    loom_graph_free(n.g);
    /* retained: the graph outlives its models, a later model reuses the trained weights; the
     * caller's loom_graph_free may come before or after the models' */
    for (int late = 0; late < 2; late++) {
        n = make_net(3);
        CHECK(loom_graph_retain(n.g) == n.g);
        loom_model *full = model_full(&n);
        CHECK(full != NULL);
        float *k = weights(full, "trunk", 0);
        loom_model_free(full);
        loom_model *enc = model1(&n, n.h);
        CHECK(enc != NULL);
        float *k2 = weights(enc, "trunk", 0);
        CHECK(k && k2 && same(k, k2, NF * NH));
        free(k);
        free(k2);
        if (late) {
            loom_model_free(enc);
            loom_graph_free(n.g);
        } else {
            loom_graph_free(n.g);
            loom_model_free(enc);
        }
    }
    /* NULL is allowed */
    loom_graph_free(NULL);
    loom_model_free(NULL);
    CHECK(loom_graph_retain(NULL) == NULL);
}

/* ---------------------------------------------------------------- shared weights */

static void test_shared_weights(void) {
    net n = make_net(4);
    loom_model *enc = model1(&n, n.h), *full = model_full(&n);
    CHECK(enc && full);
    if (!enc || !full) return;
    CHECK(loom_params(enc) == loom_params(full));
    CHECK(loom_param_count(enc) == NF * NH + NH); /* the trunk comes first: no gap */
    float before[NS * NH], after[NS * NH];
    predict1(enc, before);
    CHECK_STATUS(compile_full(full, loom_adam(0.01f)), LOOM_OK);
    loom_data d = full_data();
    CHECK_STATUS(fit_epochs(full, &d, 3), LOOM_OK);
    predict1(enc, after);
    CHECK(!same(before, after, NS * NH)); /* training full changed encoder's predictions */
    /* and they are relu(x K + b) with full's trained trunk, to float rounding */
    float *K = weights(full, "trunk", 0), *b = weights(full, "trunk", 1);
    double worst = 0;
    for (int s = 0; s < NS && K && b; s++)
        for (int j = 0; j < NH; j++) {
            double z = b[j];
            for (int f = 0; f < NF; f++) z += (double)X[s * NF + f] * K[f * NH + j];
            worst = fmax(worst, fabs(fmax(z, 0.0) - after[s * NH + j]));
        }
    CHECK(worst < 1e-5);
    free(K);
    free(b);
    /* set_weights through one model is seen by the other */
    float ones[NH];
    for (int j = 0; j < NH; j++) ones[j] = 1.0f;
    CHECK_STATUS(loom_set_weights(enc, "trunk", 1, ones, NH), LOOM_OK);
    float *b2 = weights(full, "trunk", 1);
    CHECK(b2 && same(b2, ones, NH));
    free(b2);

    /* a model made later with layers no model used yet: the buffer grows, the first models
     * follow it and keep their values */
    float *k_old = weights(enc, "trunk", 0);
    loom_tensor *e = loom_call(loom_dense(n.g, "e", 2, LOOM_LINEAR, NULL), n.h);
    loom_model *third = model1(&n, e);
    CHECK(third != NULL);
    CHECK(loom_params(enc) == loom_params(third) && loom_params(full) == loom_params(third));
    float *k_new = weights(enc, "trunk", 0);
    CHECK(k_old && k_new && same(k_old, k_new, NF * NH));
    free(k_old);
    free(k_new);
    predict1(enc, before);
    CHECK(!same(before, after, NS * NH)); /* the bias set to ones is in use */
    loom_model_free(full);
    loom_model_free(enc);
    loom_model_free(third);
}

/* A model over a shared graph with another model's weights between its own saves only its own,
 * and the file loads into a model that predicts the same. */
static void test_save_gapped(void) {
    loom_graph *g = loom_graph_new(5);
    loom_tensor *a = loom_input(g, "a", 1, (int[]){NF}), *b = loom_input(g, "b", 1, (int[]){NF});
    loom_tensor *ta = loom_call(loom_dense(g, "tower_a", 4, LOOM_TANH, NULL), a);
    loom_tensor *tb = loom_call(loom_dense(g, "tower_b", 5, LOOM_TANH, NULL), b);
    loom_tensor *both = loom_call_n(loom_concatenate(g, "cat", -1), 2, (loom_tensor *[]){ta, tb});
    loom_tensor *y = loom_call(loom_dense(g, "y", 1, LOOM_LINEAR, NULL), both);
    loom_tensor *yb = loom_call(loom_dense(g, "yb", 2, LOOM_LINEAR, NULL), tb);
    loom_model *ab = loom_model_new(g, 2, (loom_tensor *[]){a, b}, 1, &y);
    loom_model *only_b = loom_model_new(g, 1, &b, 1, &yb);
    CHECK(ab && only_b);
    if (!ab || !only_b) return;
    /* tower_b's weights lie after tower_a's: only_b's range has a gap */
    CHECK(loom_param_count(only_b) > (size_t)(NF * 5 + 5 + 5 * 2 + 2));
    loom_loss mse = {.name = "mse"};
    loom_compile_config cfg = {.n_losses = 1, .losses = &mse, .optimizer = loom_adam(0.01f)};
    CHECK_STATUS(loom_compile(only_b, &cfg), LOOM_OK);
    float target[NS * 2];
    for (int i = 0; i < NS * 2; i++) target[i] = frand(-1, 1);
    loom_array xb = {.name = "b", .data = X, .n = NS, .count = NS * NF};
    loom_array yt = {.data = target, .n = NS, .count = NS * 2};
    loom_data d = {.n_x = 1, .x = &xb, .n_y = 1, .y = &yt};
    CHECK_STATUS(fit_epochs(only_b, &d, 2), LOOM_OK);
    const char *path = "test_submodels_gapped.loom";
    CHECK_STATUS(loom_model_save(only_b, path), LOOM_OK);
    char err[256] = "";
    loom_model *back = loom_model_load(path, err, sizeof err);
    CHECK(back != NULL);
    if (back) {
        CHECK(loom_param_count(back) == (size_t)(NF * 5 + 5 + 5 * 2 + 2));
        float p1[NS * 2], p2[NS * 2];
        CHECK_STATUS(loom_predict(only_b, 1, &xb, 16, (float *[]){p1}), LOOM_OK);
        CHECK_STATUS(loom_predict(back, 1, &xb, 16, (float *[]){p2}), LOOM_OK);
        CHECK(same(p1, p2, NS * 2));
        /* the optimizer state came along: one more step gives the same weights */
        CHECK_STATUS(fit_epochs(only_b, &d, 1), LOOM_OK);
        CHECK_STATUS(fit_epochs(back, &d, 1), LOOM_OK);
        float *w1 = weights(only_b, "yb", 0), *w2 = weights(back, "yb", 0);
        CHECK(w1 && w2 && same(w1, w2, 10));
        free(w1);
        free(w2);
        loom_model_free(back);
    } else {
        fprintf(stderr, "load: %s\n", err);
    }
    remove(path);
    loom_model_free(ab);
    loom_model_free(only_b);
}

/* ---------------------------------------------------------------- nesting */

static void test_nesting(void) {
    net n = make_net(6);
    loom_model *enc = model1(&n, n.h);
    CHECK(enc != NULL);
    if (!enc) return;
    /* outer = head(encoder(x2)) on a second input of the same graph */
    loom_tensor *x2 = loom_input(n.g, "x2", 1, (int[]){NF}), *h2 = NULL;
    CHECK_STATUS(loom_model_call(enc, 1, &x2, &h2), LOOM_OK);
    CHECK(h2 != NULL);
    loom_tensor *head = loom_call(loom_dense(n.g, "head", 1, LOOM_SIGMOID, NULL), h2);
    loom_model *outer = loom_model_new(n.g, 1, &x2, 1, &head);
    loom_model *probe = loom_model_new(n.g, 1, &x2, 1, &h2);
    CHECK(outer && probe);
    if (!outer || !probe) return;
    float pe[NS * NH], pp[NS * NH];
    loom_array x = {.name = "x2", .data = X, .n = NS, .count = NS * NF};
    predict1(enc, pe);
    CHECK_STATUS(loom_predict(probe, 1, &x, 16, (float *[]){pp}), LOOM_OK);
    CHECK(same(pe, pp, NS * NH)); /* the nested call is the encoder, weights and all */
    loom_loss bce = {.name = "binary_crossentropy"};
    loom_compile_config cfg = {.n_losses = 1, .losses = &bce, .optimizer = loom_adam(0.02f)};
    CHECK_STATUS(loom_compile(outer, &cfg), LOOM_OK);
    loom_array y = {.data = YC, .n = NS, .count = NS};
    loom_data d = {.n_x = 1, .x = &x, .n_y = 1, .y = &y};
    CHECK_STATUS(fit_epochs(outer, &d, 2), LOOM_OK);
    float pe2[NS * NH];
    predict1(enc, pe2);
    CHECK(!same(pe, pe2, NS * NH)); /* training the outer model trained the encoder inside */
    CHECK_STATUS(loom_loss_reaches(outer, "head", "trunk"), 1);
    /* the outer model saves the encoder's layers with their second call, and loads back */
    const char *path = "test_submodels_nested.loom";
    CHECK_STATUS(loom_model_save(outer, path), LOOM_OK);
    char err[256] = "";
    loom_model *back = loom_model_load(path, err, sizeof err);
    CHECK(back != NULL);
    if (back) {
        float p1[NS], p2[NS];
        CHECK_STATUS(loom_predict(outer, 1, &x, 16, (float *[]){p1}), LOOM_OK);
        CHECK_STATUS(loom_predict(back, 1, &x, 16, (float *[]){p2}), LOOM_OK);
        CHECK(same(p1, p2, NS));
        loom_model_free(back);
    } else {
        fprintf(stderr, "load: %s\n", err);
    }
    remove(path);
    /* errors: wrong count, a tensor of another graph */
    CHECK_STATUS(loom_model_call(enc, 2, (loom_tensor *[]){x2, x2}, &h2), LOOM_ERR_COUNT);
    loom_graph *other = loom_graph_new(0);
    loom_tensor *xo = loom_input(other, "xo", 1, (int[]){NF});
    CHECK_STATUS(loom_model_call(enc, 1, &xo, &h2), LOOM_ERR_ARGUMENT);
    CHECK(strstr(loom_model_error(enc), "another graph") != NULL);
    loom_graph_free(other);
    /* a wrong shape names the layer */
    loom_tensor *x3 = loom_input(n.g, "x3", 1, (int[]){NF + 1});
    CHECK(loom_model_call(enc, 1, &x3, &h2) != LOOM_OK);
    CHECK(strstr(loom_model_error(enc), "trunk") != NULL);
    loom_model_free(outer);
    loom_model_free(enc);
    loom_model_free(probe);
}

/* ---------------------------------------------------------------- trainable */

static size_t summary_count(loom_model *m, const char *label) {
    FILE *f = tmpfile();
    if (!f) return (size_t)-1;
    CHECK_STATUS(loom_summary(m, f), LOOM_OK);
    rewind(f);
    char line[512];
    size_t v = (size_t)-1;
    size_t len = strlen(label);
    while (fgets(line, sizeof line, f)) {
        const char *p = strstr(line, label);
        if (p && (p == line || p[-1] == ' ') && strncmp(p + len, " params: ", 9) == 0) {
            v = 0;
            for (const char *q = p + len + 9; *q && *q != ' '; q++)
                if (*q >= '0' && *q <= '9') v = v * 10 + (size_t)(*q - '0');
            break;
        }
    }
    fclose(f);
    return v;
}

/* freeze the trunk, train the new head, unfreeze, recompile, train on */
static void test_fine_tuning(void) {
    loom_graph *g = loom_graph_new(7);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){NF});
    loom_layer *t1 = loom_dense(g, "t1", NH, LOOM_RELU, NULL);
    loom_layer *bn = loom_batch_normalization(g, "bn", NULL);
    loom_tensor *h = loom_call(bn, loom_call(t1, x));
    loom_tensor *c = loom_call(loom_dense(g, "c", 1, LOOM_SIGMOID, NULL), h);
    loom_model *base = loom_model_new(g, 1, &x, 1, &c);
    CHECK(base != NULL);
    if (!base) return;
    loom_loss bce = {.name = "binary_crossentropy"};
    loom_compile_config cfg = {.n_losses = 1, .losses = &bce, .optimizer = loom_adamw(0.01f, 0.05f)};
    CHECK_STATUS(loom_compile(base, &cfg), LOOM_OK);
    loom_array xa = {.name = "x", .data = X, .n = NS, .count = NS * NF};
    loom_array ya = {.data = YC, .n = NS, .count = NS};
    loom_data d = {.n_x = 1, .x = &xa, .n_y = 1, .y = &ya};
    CHECK_STATUS(fit_epochs(base, &d, 2), LOOM_OK); /* "pre-trained" */

    /* the new head, on the trunk's features; the trunk frozen (a model over it, as Keras's
     * base_model.trainable = False) */
    loom_tensor *d3 = loom_call(loom_dense(g, "new_head", 3, LOOM_SOFTMAX, NULL), h);
    loom_model *ft = loom_model_new(g, 1, &x, 1, &d3);
    loom_model *trunk = loom_model_new(g, 1, &x, 1, &h);
    CHECK(ft && trunk);
    if (!ft || !trunk) return;
    size_t trunk_n = NF * NH + NH + 4 * NH, head_n = NH * 3 + 3;
    CHECK(summary_count(ft, "Trainable") == trunk_n - 2 * NH + head_n); /* moving stats never train */
    CHECK_STATUS(loom_model_set_trainable(trunk, 0), LOOM_OK);
    CHECK(!loom_layer_trainable(t1) && !loom_layer_trainable(bn) && !loom_model_trainable(trunk));
    CHECK(loom_model_trainable(ft));
    CHECK(summary_count(ft, "Total") == trunk_n + head_n);
    CHECK(summary_count(ft, "Trainable") == head_n);
    CHECK(summary_count(ft, "Non-trainable") == trunk_n);
    loom_loss cce = {.name = "categorical_crossentropy"};
    loom_compile_config cfg2 = {.n_losses = 1, .losses = &cce, .optimizer = loom_adamw(0.01f, 0.05f)};
    CHECK_STATUS(loom_compile(ft, &cfg2), LOOM_OK);
    loom_array yd = {.data = YD, .n = NS, .count = NS * 3};
    loom_data d2 = {.n_x = 1, .x = &xa, .n_y = 1, .y = &yd};
    size_t np = loom_param_count(ft);
    float *p0 = malloc(np * sizeof *p0), *grad = malloc(np * sizeof *grad);
    if (!p0 || !grad) return;
    memcpy(p0, loom_params(ft), np * sizeof *p0);
    float *head0 = weights(ft, "new_head", 0);
    /* a frozen BatchNormalization runs in inference mode: the loss a training step reports is
     * the one evaluate gives on the same batch (no dropout here) */
    loom_history *e = NULL;
    CHECK_STATUS(loom_evaluate(ft, &d2, NS, 0, &e), LOOM_OK);
    float logs[4];
    int n_logs = 0;
    CHECK_STATUS(loom_train_on_batch(ft, &d2, logs, 4, &n_logs), LOOM_OK);
    CHECK(n_logs >= 1 && logs[0] == loom_history_get(e, "loss", 0));
    loom_history_free(e);
    CHECK_STATUS(fit_epochs(ft, &d2, 3), LOOM_OK);
    /* the frozen trunk bit-identical (weights, moving statistics; AdamW's decay did not touch
     * it either); the head trained */
    size_t t1k = loom_param_offset(ft, "t1", 0);
    CHECK(same(p0 + t1k, loom_params(ft) + t1k, trunk_n));
    float *head1 = weights(ft, "new_head", 0);
    CHECK(head0 && head1 && !same(head0, head1, NH * 3));
    /* gradient queries give frozen weights zeros, the head a gradient */
    CHECK_STATUS(loom_gradients(ft, &d2, 0, NULL, grad, NULL), LOOM_OK);
    bool zero = true, head_moves = false;
    for (size_t i = 0; i < trunk_n; i++) zero = zero && grad[t1k + i] == 0.0f;
    size_t hk = loom_param_offset(ft, "new_head", 0);
    for (size_t i = 0; i < NH * 3; i++) head_moves = head_moves || grad[hk + i] != 0.0f;
    CHECK(zero && head_moves);
    /* saved as Keras's "trainable": false, loaded frozen */
    const char *path = "test_submodels_frozen.loom";
    CHECK_STATUS(loom_model_save(ft, path), LOOM_OK);
    char err[256] = "";
    loom_model *back = loom_model_load(path, err, sizeof err);
    CHECK(back != NULL);
    if (back) {
        CHECK(!loom_layer_trainable(loom_model_find_layer(back, "t1")));
        CHECK(!loom_layer_trainable(loom_model_find_layer(back, "bn")));
        CHECK(loom_layer_trainable(loom_model_find_layer(back, "new_head")));
        loom_model_free(back);
    }
    remove(path);

    /* unfreeze: nothing changes until the next compile (Keras), then the trunk trains */
    CHECK_STATUS(loom_model_set_trainable(trunk, 1), LOOM_OK);
    memcpy(p0, loom_params(ft), np * sizeof *p0);
    CHECK_STATUS(fit_epochs(ft, &d2, 1), LOOM_OK);
    CHECK(same(p0 + t1k, loom_params(ft) + t1k, NF * NH));
    CHECK_STATUS(loom_compile(ft, &cfg2), LOOM_OK);
    CHECK_STATUS(fit_epochs(ft, &d2, 1), LOOM_OK);
    CHECK(!same(p0 + t1k, loom_params(ft) + t1k, NF * NH));
    /* one frozen layer in the middle: gradients still flow through it to the trunk */
    CHECK_STATUS(loom_layer_set_trainable(bn, 0), LOOM_OK);
    CHECK_STATUS(loom_compile(ft, &cfg2), LOOM_OK);
    CHECK_STATUS(loom_gradients(ft, &d2, 0, NULL, grad, NULL), LOOM_OK);
    bool t1_moves = false;
    for (size_t i = 0; i < NF * NH; i++) t1_moves = t1_moves || grad[t1k + i] != 0.0f;
    size_t bnk = loom_param_offset(ft, "bn", 0);
    bool bn_zero = true;
    for (size_t i = 0; i < 4 * NH; i++) bn_zero = bn_zero && grad[bnk + i] == 0.0f;
    CHECK(t1_moves && bn_zero);
    CHECK_STATUS(loom_layer_set_trainable(NULL, 0), LOOM_ERR_ARGUMENT);
    free(p0);
    free(grad);
    free(head0);
    free(head1);
    loom_model_free(trunk);
    loom_model_free(base);
    loom_model_free(ft);
}

/* ---------------------------------------------------------------- defaults */

static void test_default_optimizer(void) {
    loom_model *m[2];
    for (int i = 0; i < 2; i++) {
        net n = make_net(8);
        m[i] = model_full(&n);
        CHECK(m[i] != NULL);
        if (!m[i]) return;
    }
    loom_optimizer none = {0};
    CHECK_STATUS(compile_full(m[0], none), LOOM_OK);
    CHECK_STATUS(compile_full(m[1], loom_rmsprop(0.001f)), LOOM_OK);
    CHECK_CLOSE(loom_get_learning_rate(m[0]), 0.001, 0, 1e-6);
    loom_data d = full_data();
    float *p0 = malloc(loom_param_count(m[0]) * sizeof *p0);
    if (!p0) return;
    memcpy(p0, loom_params(m[0]), loom_param_count(m[0]) * sizeof *p0);
    for (int i = 0; i < 2; i++) CHECK_STATUS(fit_epochs(m[i], &d, 2), LOOM_OK);
    CHECK(!same(p0, loom_params(m[0]), loom_param_count(m[0]))); /* it trains */
    CHECK(same(loom_params(m[0]), loom_params(m[1]), loom_param_count(m[0]))); /* as rmsprop 0.001 */
    /* an explicit SGD at rate 0 stays what it says */
    CHECK_STATUS(compile_full(m[0], loom_sgd(0.0f, 0, 0)), LOOM_OK);
    memcpy(p0, loom_params(m[0]), loom_param_count(m[0]) * sizeof *p0);
    CHECK_STATUS(fit_epochs(m[0], &d, 1), LOOM_OK);
    CHECK(same(p0, loom_params(m[0]), loom_param_count(m[0])));
    free(p0);
    loom_model_free(m[0]);
    loom_model_free(m[1]);
}

/* The recurrent layers split each step over the batch: training gives the same bits at 1 and 3
 * threads (masked steps, every gate kind, return_sequences and not, recurrent_dropout). */
static void rnn_train(int threads, float **params, size_t *n) {
    enum { T = 6, V = 9, NB = 40 };
    CHECK_STATUS(loom_set_num_threads(threads), LOOM_OK);
    loom_graph *g = loom_graph_new(9);
    loom_tensor *ids = loom_input(g, "ids", 1, (int[]){T});
    loom_tensor *e = loom_call(loom_embedding(g, "emb", V, 5, 1), ids);
    loom_rnn_options seq = loom_rnn_defaults(), before = loom_rnn_defaults();
    seq.return_sequences = 1;
    seq.recurrent_dropout = 0.25f; /* its mask path too */
    before.reset_after = 0;
    loom_tensor *l = loom_call(loom_lstm(g, "lstm", 64, &seq), e);
    loom_tensor *r1 = loom_call(loom_gru(g, "gru", 32, NULL), l);
    loom_tensor *r2 = loom_call(loom_gru(g, "gru_before", 32, &before), e);
    loom_tensor *r3 = loom_call(loom_simple_rnn(g, "simple", 16, NULL), e);
    loom_tensor *cat = loom_call_n(loom_concatenate(g, "cat", -1), 3, (loom_tensor *[]){r1, r2, r3});
    loom_tensor *y = loom_call(loom_dense(g, "y", 1, LOOM_SIGMOID, NULL), cat);
    loom_model *m = loom_model_new(g, 1, &ids, 1, &y);
    CHECK(m != NULL);
    if (!m) return;
    loom_loss bce = {.name = "binary_crossentropy"};
    loom_compile_config cfg = {.n_losses = 1, .losses = &bce, .optimizer = loom_adam(0.01f)};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    static float xs[2 * NB * T], ys[2 * NB];
    for (int i = 0; i < 2 * NB; i++) {
        int len = 1 + i % T; /* padded at the end with id 0 */
        for (int t = 0; t < T; t++) xs[i * T + t] = t < len ? (float)(1 + (i * 7 + t * 3) % (V - 1)) : 0.0f;
        ys[i] = (float)(i % 3 == 0);
    }
    loom_array xa = {.name = "ids", .data = xs, .n = 2 * NB, .count = 2 * NB * T};
    loom_array ya = {.data = ys, .n = 2 * NB, .count = 2 * NB};
    loom_data d = {.n_x = 1, .x = &xa, .n_y = 1, .y = &ya};
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = NB;
    fo.epochs = 2;
    CHECK_STATUS(loom_fit(m, &d, &fo, NULL), LOOM_OK);
    *n = loom_param_count(m);
    *params = malloc(*n * sizeof **params);
    if (*params) memcpy(*params, loom_params(m), *n * sizeof **params);
    loom_model_free(m);
}

static void test_rnn_threads(void) {
    float *p1 = NULL, *p3 = NULL;
    size_t n1 = 0, n3 = 0;
    rnn_train(1, &p1, &n1);
    rnn_train(3, &p3, &n3);
    CHECK(p1 && p3 && n1 == n3 && same(p1, p3, n1));
    free(p1);
    free(p3);
}

/* Without LOOM_NUM_THREADS loom uses every core the process may run on. */
static int default_threads(void) {
    if (getenv("LOOM_NUM_THREADS")) {
        printf("test_submodels default-threads: skipped, LOOM_NUM_THREADS is set\n");
        return 0;
    }
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int cores = CPU_COUNT(&set) > 64 ? 64 : CPU_COUNT(&set);
        CHECK(loom_get_num_threads() == cores);
        printf("default threads: %d (cores available: %d)\n", loom_get_num_threads(), CPU_COUNT(&set));
    }
#else
    CHECK(loom_get_num_threads() >= 1);
#endif
    return check_report("test_submodels default-threads");
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "default-threads") == 0) return default_threads();
    /* LOOM_NUM_THREADS is read at the first parallel loop (ctest sets it to 3 for this test) */
    const char *env = getenv("LOOM_NUM_THREADS");
    if (env && strcmp(env, "3") == 0) CHECK(loom_get_num_threads() == 3);
    else CHECK(loom_get_num_threads() >= 1);
    make_data();
    test_free_orders();
    test_shared_weights();
    test_save_gapped();
    test_nesting();
    test_fine_tuning();
    test_default_optimizer();
    test_rnn_threads();
    CHECK_STATUS(loom_set_num_threads(1), LOOM_OK);
    CHECK(loom_get_num_threads() == 1);
    return check_report("test_submodels");
}
