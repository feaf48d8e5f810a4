/* train_tiny.c — a C program built against an installed loom (pkg-config); see ../README.md.
 * x (4) -> Dense h (8, tanh) -> { y: Dense 1 (mse, weight 1) ; k: Dense 2 softmax (cce, weight 0.5) } */
#include <loom.h>

#include <stdio.h>
#include <string.h>

enum { N = 32, STEPS = 20 };

int main(void) {
    if (strcmp(loom_version(), LOOM_VERSION) != 0) {
        fprintf(stderr, "header %s, library %s\n", LOOM_VERSION, loom_version());
        return 1;
    }
    static float xs[N * 4], ys[N], ks[N * 2];
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < 4; j++) xs[i * 4 + j] = (float)((i * 7 + j * 3) % 11) / 5.0f - 1.0f;
        ys[i] = 0.5f * xs[i * 4] - xs[i * 4 + 1] + 0.25f * xs[i * 4 + 2];
        ks[i * 2 + (xs[i * 4 + 3] > 0)] = 1.0f;
    }

    loom_graph *g = loom_graph_new(3);
    int shape[] = {4};
    loom_tensor *x = loom_input(g, "x", 1, shape);
    loom_tensor *h = loom_call(loom_dense(g, "h", 8, LOOM_TANH, NULL), x);
    loom_tensor *outputs[] = {loom_call(loom_dense(g, "y", 1, LOOM_LINEAR, NULL), h),
                              loom_call(loom_dense(g, "k", 2, LOOM_SOFTMAX, NULL), h)};
    loom_model *m = loom_model_new(g, 1, &x, 2, outputs);
    if (!m) {
        fprintf(stderr, "%s\n", loom_graph_error(g));
        loom_graph_free(g);
        return 1;
    }
    loom_loss losses[] = {{.name = "mse"}, {.name = "categorical_crossentropy"}};
    float weights[] = {1.0f, 0.5f};
    loom_compile_config cfg = {.n_losses = 2, .losses = losses, .n_loss_weights = 2, .loss_weights = weights,
                               .optimizer = loom_adam(0.02f)};
    loom_array in = {.name = "x", .data = xs, .n = N, .count = N * 4};
    loom_array targets[] = {{.name = "y", .data = ys, .n = N, .count = N},
                            {.name = "k", .data = ks, .n = N, .count = N * 2}};
    loom_data batch = {.n_x = 1, .x = &in, .n_y = 2, .y = targets};
    float first = 0, logs[8];
    int n_logs = 0;
    if (loom_compile(m, &cfg)) goto fail;
    for (int step = 0; step < STEPS; step++) {
        if (loom_train_on_batch(m, &batch, logs, 8, &n_logs)) goto fail;
        if (step == 0) first = logs[0];
    }
    printf("loom %s: loss %.9g -> %.9g\n", loom_version(), first, logs[0]);
    loom_model_free(m);
    return logs[0] < 0.8f * first ? 0 : 1;
fail:
    fprintf(stderr, "%s\n", loom_model_error(m));
    loom_model_free(m);
    return 1;
}
