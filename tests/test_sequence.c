/* test_sequence.c — the sequence task of the layers issue through the public API: padded
 * sequences of digits -> Embedding(mask_zero) -> LSTM / GRU -> two heads, the sequence's sum
 * (mse) and its parity (sigmoid + binary crossentropy), with loss weights. Checks the whole
 * model's gradient through time against central differences, that padding changes nothing, and
 * that training lowers both losses; and that per-step outputs on padded sequences have their loss
 * and accuracy counted over valid steps only. */
#include "check.h"

#include <loom.h>
#include <stdlib.h>
#include <string.h>

#define T 6
#define N 96

static float ids[N * T], sums[N], parity[N];

static void make_data(void) {
    srand(7);
    for (int i = 0; i < N; i++) {
        int len = 2 + rand() % (T - 1), s = 0;
        for (int t = 0; t < T; t++) {
            int d = t < len ? 1 + rand() % 9 : 0; /* 0 pads the end */
            ids[i * T + t] = (float)d;
            s += d;
        }
        sums[i] = (float)s / 10.0f;
        parity[i] = (float)(s % 2);
    }
}

static loom_model *make_model(int gru, uint64_t seed) {
    loom_graph *g = loom_graph_new(seed);
    loom_tensor *x = loom_input(g, "digits", 1, (int[]){T});
    loom_tensor *e = loom_call(loom_embedding(g, "embed", 10, 6, 1), x);
    loom_rnn_options ro = loom_rnn_defaults();
    loom_tensor *h = loom_call(gru ? loom_gru(g, "rnn", 8, &ro) : loom_lstm(g, "rnn", 8, &ro), e);
    loom_tensor *s = loom_call(loom_dense(g, "sum", 1, LOOM_LINEAR, NULL), h);
    loom_tensor *p = loom_call(loom_dense(g, "parity", 1, LOOM_SIGMOID, NULL), h);
    loom_model *m = loom_model_new(g, 1, &x, 2, (loom_tensor *[]){s, p});
    if (!m) {
        fprintf(stderr, "%s\n", loom_graph_error(g));
        loom_graph_free(g);
        return NULL;
    }
    loom_loss l[] = {{.name = "mse"}, {.name = "binary_crossentropy"}};
    float w[] = {1.0f, 0.5f};
    loom_metric_spec ms[] = {{"parity", "accuracy"}};
    loom_compile_config cfg = {.n_losses = 2, .losses = l, .n_loss_weights = 2, .loss_weights = w,
                               .n_metrics = 1, .metrics = ms, .optimizer = loom_adam(0.01f)};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    return m;
}

static loom_data data_of(int n, loom_array *x, loom_array *y) {
    *x = (loom_array){.name = "digits", .data = ids, .n = (size_t)n, .count = (size_t)n * T};
    y[0] = (loom_array){.name = "sum", .data = sums, .n = (size_t)n, .count = (size_t)n};
    y[1] = (loom_array){.name = "parity", .data = parity, .n = (size_t)n, .count = (size_t)n};
    return (loom_data){1, x, 2, y, 0, NULL};
}

static double total_loss(loom_model *m, const loom_data *d) {
    loom_history *h = NULL;
    CHECK_STATUS(loom_evaluate(m, d, 1000, 0, &h), LOOM_OK);
    double v = loom_history_get(h, "loss", 0);
    loom_history_free(h);
    return v;
}

/* Central differences on every parameter of the model (they are few). */
static void gradient_through_time(int gru) {
    loom_model *m = make_model(gru, 3);
    loom_array x, y[2];
    loom_data d = data_of(16, &x, y);
    size_t n = loom_param_count(m);
    float *g = malloc(n * sizeof *g);
    CHECK_STATUS(loom_gradients(m, &d, 0, NULL, g, NULL), LOOM_OK);
    float *p = loom_params(m);
    int bad = 0;
    double num_sq = 0, diff_sq = 0;
    for (size_t i = 0; i < n; i++) {
        float keep = p[i];
        const float h = 1e-2f;
        p[i] = keep + h;
        double up = total_loss(m, &d);
        p[i] = keep - h;
        double down = total_loss(m, &d);
        p[i] = keep;
        double numeric = (up - down) / (2 * h);
        num_sq += numeric * numeric;
        diff_sq += (numeric - g[i]) * (numeric - g[i]);
        if (fabs(numeric - g[i]) > 2e-3 + 5e-2 * fabs(numeric)) bad++;
    }
    CHECK(bad == 0);
    CHECK(sqrt(diff_sq) <= 1e-2 * sqrt(num_sq) + 1e-6);
    /* the padding id's embedding row gets no gradient: padded steps are masked, and id 0 never
     * appears at a valid step */
    size_t off = loom_param_offset(m, "embed", 0);
    for (int j = 0; j < 6; j++) CHECK(g[off + (size_t)j] == 0.0f);
    free(g);
    loom_model_free(m);
}

/* Where the padding sits must not matter: masked steps carry the state over unchanged, so a
 * sequence padded at the front ends in the state of the same sequence padded at the back. */
static void padding_is_invisible(void) {
    loom_model *m = make_model(0, 5);
    float a[T] = {3, 1, 4, 0, 0, 0}, b[T] = {0, 0, 0, 3, 1, 4}, b2[T] = {0, 3, 0, 1, 4, 0};
    float sa, pa, sb, pb, sb2, pb2;
    loom_array xa = {.name = "digits", .data = a, .n = 1, .count = 1 * T}, xb = {.name = "digits", .data = b, .n = 1, .count = 1 * T}, xb2 = {.name = "digits", .data = b2, .n = 1, .count = 1 * T};
    CHECK_STATUS(loom_predict(m, 1, &xa, 1, (float *const[]){&sa, &pa}), LOOM_OK);
    CHECK_STATUS(loom_predict(m, 1, &xb, 1, (float *const[]){&sb, &pb}), LOOM_OK);
    CHECK_STATUS(loom_predict(m, 1, &xb2, 1, (float *const[]){&sb2, &pb2}), LOOM_OK);
    CHECK_CLOSE(sa, sb, 1e-6, 1e-5);
    CHECK_CLOSE(pa, pb, 1e-6, 1e-5);
    CHECK_CLOSE(sa, sb2, 1e-6, 1e-5); /* holes too */
    CHECK_CLOSE(pa, pb2, 1e-6, 1e-5);
    float c[T] = {3, 1, 4, 1, 0, 0}, sc, pc;
    loom_array xc = {.name = "digits", .data = c, .n = 1, .count = 1 * T};
    CHECK_STATUS(loom_predict(m, 1, &xc, 1, (float *const[]){&sc, &pc}), LOOM_OK);
    CHECK(sc != sa); /* a real step does change it */
    loom_model_free(m);
}

static void training_lowers_both_losses(int gru) {
    loom_model *m = make_model(gru, 9);
    loom_array x, y[2];
    loom_data d = data_of(N, &x, y);
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = 16;
    fo.epochs = 25;
    fo.seed = 2;
    loom_history *h = NULL;
    CHECK_STATUS(loom_fit(m, &d, &fo, &h), LOOM_OK);
    CHECK(loom_history_get(h, "sum_loss", -1) < 0.5 * loom_history_get(h, "sum_loss", 0));
    CHECK(loom_history_get(h, "parity_loss", -1) < loom_history_get(h, "parity_loss", 0));
    CHECK(loom_history_get(h, "loss", -1) < loom_history_get(h, "loss", 0));
    loom_history_free(h);
    loom_model_free(m);
}

/* Per-step predictions on padded sequences: the loss and the accuracy count valid steps only. */
static void masked_sequence_outputs(void) {
    loom_graph *g = loom_graph_new(4);
    loom_tensor *x = loom_input(g, "digits", 1, (int[]){T});
    loom_tensor *e = loom_call(loom_embedding(g, "embed", 10, 5, 1), x);
    loom_tensor *y = loom_call(loom_dense(g, "tag", 3, LOOM_SOFTMAX, NULL), e); /* (T, 3): per step */
    loom_model *m = loom_model_new(g, 1, &x, 1, &y);
    loom_loss l = {.name = "sparse_categorical_crossentropy"};
    loom_metric_spec ms = {NULL, "accuracy"};
    loom_compile_config cfg = {.n_losses = 1, .losses = &l, .n_metrics = 1, .metrics = &ms, .optimizer = loom_sgd(0.1f, 0, 0)};
    CHECK_STATUS(loom_compile(m, &cfg), LOOM_OK);
    enum { NS = 8 };
    float tags[NS * T], probs[NS * T * 3];
    for (int i = 0; i < NS * T; i++) tags[i] = (float)((int)ids[i] % 3); /* tag = digit mod 3 */
    loom_array xa = {.name = "digits", .data = ids, .n = NS, .count = NS * T}, ya = {.name = "tag", .data = tags, .n = NS, .count = NS * T};
    loom_data d = {1, &xa, 1, &ya, 0, NULL};
    loom_history *h = NULL;
    CHECK_STATUS(loom_evaluate(m, &d, NS, 0, &h), LOOM_OK);
    CHECK_STATUS(loom_predict(m, 1, &xa, NS, (float *const[]){probs}), LOOM_OK);
    double loss = 0, hits = 0, valid = 0;
    for (int r = 0; r < NS * T; r++) {
        if (ids[r] == 0) continue; /* padding */
        const float *p = probs + r * 3;
        int best = 0;
        for (int c = 1; c < 3; c++)
            if (p[c] > p[best]) best = c;
        loss += -log(p[(int)tags[r]]);
        hits += best == (int)tags[r];
        valid += 1;
    }
    CHECK(valid < NS * T); /* the data do have padding */
    CHECK_CLOSE(loom_history_get(h, "loss", 0), loss / valid, 1e-5, 1e-4);
    CHECK_CLOSE(loom_history_get(h, "accuracy", 0), hits / valid, 1e-6, 0);
    loom_history_free(h);
    loom_model_free(m);
}

int main(void) {
    make_data();
    masked_sequence_outputs();
    gradient_through_time(0);
    gradient_through_time(1);
    padding_is_invisible();
    training_lowers_both_losses(0);
    training_lowers_both_losses(1);
    return check_report("sequence");
}
