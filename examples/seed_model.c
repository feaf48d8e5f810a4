/* seed_model.c — the model from the well-known Keras question, in C with loom.
 *
 *   input -> Dense A -> Dense B -+-> Dense C (softmax) -> categorical crossentropy, weight 0.5
 *                                +-> Dense D (linear)  -> mean squared error,        weight 0.3
 *
 * Minimised: total = 0.5 * L_C + 0.3 * L_D. L_C trains A, B, C; L_D trains A, B, D.
 * Trains on synthetic data: C learns the sign pattern class of two features, D regresses them. */
#include <loom.h>

#include <stdio.h>
#include <stdlib.h>

#define N 512

int main(void) {
    /* 1. the graph, Keras's functional API */
    loom_graph *g = loom_graph_new(7);
    int x_shape[] = {16}; /* per sample, as Keras: (None, 16) */
    loom_tensor *x = loom_input(g, "x", 1, x_shape);
    loom_tensor *a = loom_call(loom_dense(g, "A", 32, LOOM_RELU, NULL), x);
    loom_tensor *b = loom_call(loom_dense(g, "B", 32, LOOM_RELU, NULL), a);
    loom_tensor *c = loom_call(loom_dense(g, "C", 4, LOOM_SOFTMAX, NULL), b);
    loom_tensor *d = loom_call(loom_dense(g, "D", 2, LOOM_LINEAR, NULL), b);
    loom_tensor *outputs[] = {c, d};
    loom_model *m = loom_model_new(g, 1, &x, 2, outputs);
    if (!m) { /* one check covers every building call: errors are sticky */
        fprintf(stderr, "%s\n", loom_graph_error(g));
        loom_graph_free(g);
        return 1;
    }

    /* 2. compile(loss=[cce, mse], loss_weights=[0.5, 0.3], metrics={C: accuracy}, optimizer=adam) */
    loom_loss losses[] = {{.name = "categorical_crossentropy"}, {.name = "mse"}};
    float weights[] = {0.5f, 0.3f};
    loom_metric_spec metrics[] = {{"C", "accuracy"}};
    loom_compile_config cfg = {.n_losses = 2, .losses = losses, .n_loss_weights = 2,
                               .loss_weights = weights, .n_metrics = 1, .metrics = metrics,
                               .optimizer = loom_adam(0.01f)};
    if (loom_compile(m, &cfg)) {
        fprintf(stderr, "%s\n", loom_model_error(m));
        loom_model_free(m);
        return 1;
    }

    /* 3. data: targets are bound to outputs by name */
    static float xs[N * 16], yc[N * 4], yd[N * 2];
    srand(1);
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < 16; j++) xs[i * 16 + j] = (float)rand() / RAND_MAX * 2 - 1;
        int cls = (xs[i * 16] > 0) * 2 + (xs[i * 16 + 1] > 0);
        yc[i * 4 + cls] = 1;
        yd[i * 2] = xs[i * 16] + xs[i * 16 + 1];
        yd[i * 2 + 1] = xs[i * 16] - xs[i * 16 + 1];
    }
    loom_array in = {.name = "x", .data = xs, .n = N, .count = N * 16};
    loom_array targets[] = {{.name = "C", .data = yc, .n = N, .count = N * 4}, {.name = "D", .data = yd, .n = N, .count = N * 2}};
    loom_data data = {.n_x = 1, .x = &in, .n_y = 2, .y = targets};

    /* 4. fit with a validation split; the history has loss, C_accuracy, C_loss, D_loss, val_... */
    loom_fit_options fo = loom_fit_defaults();
    fo.epochs = 10;
    fo.validation_split = 0.2f;
    fo.verbose = 1;
    loom_history *h = NULL;
    if (loom_fit(m, &data, &fo, &h)) fprintf(stderr, "%s\n", loom_model_error(m));

    /* 5. which layers does each loss train? */
    const char *layers[] = {"A", "B", "C", "D"};
    for (int k = 0; k < 2; k++) {
        printf("%s_loss trains:", loom_model_output_name(m, k));
        for (int i = 0; i < 4; i++)
            if (loom_loss_reaches(m, loom_model_output_name(m, k), layers[i])) printf(" %s", layers[i]);
        printf("\n");
    }
    printf("final val_C_accuracy: %.4f\n", loom_history_get(h, "val_C_accuracy", -1));
    loom_history_free(h);
    loom_model_free(m);
    return 0;
}
