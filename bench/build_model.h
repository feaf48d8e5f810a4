/* build_model.h — builds and compiles a benchmark model of models.h in loom (loom_bench.c,
 * dist_bench.c); NULL with the message on stderr. */
#ifndef LOOM_BENCH_BUILD_MODEL_H
#define LOOM_BENCH_BUILD_MODEL_H

#include "models.h"

#include <loom.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline loom_model *bench_build_model(const bench_model *bm, int adam) {
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
        if (bm->towers)
            b = loom_call_n(loom_concatenate(g, "join", -1), 2,
                            (loom_tensor *[]){b, loom_call(loom_lstm(g, "A", bm->a, NULL), x)});
    } else {
        x = loom_input(g, "x", 1, (int[]){bm->in});
        loom_tensor *a = loom_call(loom_dense(g, "A", bm->a, LOOM_RELU, NULL), x);
        b = loom_call(loom_dense(g, "B", bm->b, LOOM_RELU, NULL), a);
    }
    loom_tensor *c = loom_call(loom_dense(g, "C", bm->classes, LOOM_SOFTMAX, NULL), b);
    loom_tensor *d = loom_call(loom_dense(g, "D", 1, LOOM_LINEAR, NULL), b);
    loom_model *m = loom_model_new(g, 1, &x, 2, (loom_tensor *[]){c, d});
    if (!m) {
        fprintf(stderr, "bench: %s\n", loom_graph_error(g));
        return NULL;
    }
    loom_loss losses[] = {{.name = "categorical_crossentropy"}, {.name = "mse"}};
    float weights[] = {0.5f, 0.3f};
    loom_compile_config cfg = {.n_losses = 2, .losses = losses, .n_loss_weights = 2, .loss_weights = weights,
                               .optimizer = adam ? loom_adam(1e-4f) : loom_sgd(1e-3f, 0, 0)};
    /* LOOM_BENCH_POLICY=mixed_bfloat16: the dtype policy (issue 18) */
    const char *policy = getenv("LOOM_BENCH_POLICY");
    if (policy && strcmp(policy, "mixed_bfloat16") == 0) cfg.dtype_policy = LOOM_POLICY_MIXED_BFLOAT16;
    else if (policy && strcmp(policy, "float32") != 0) {
        fprintf(stderr, "bench: LOOM_BENCH_POLICY must be float32 or mixed_bfloat16\n");
        loom_model_free(m);
        return NULL;
    }
    if (loom_compile(m, &cfg)) {
        fprintf(stderr, "bench: %s\n", loom_model_error(m));
        loom_model_free(m);
        return NULL;
    }
    return m;
}

#endif
