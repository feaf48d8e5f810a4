/* models.h — the benchmark models, shared by loom_bench.c and sgemm_bench.c (and mirrored in
 * torch_bench.py): an MLP trunk A -> B, heads C (softmax, cce, weight 0.5) and D (linear, mse,
 * weight 0.3); a CNN and an LSTM trunk before the same heads. */
#ifndef LOOM_BENCH_MODELS_H
#define LOOM_BENCH_MODELS_H

#include <string.h>

typedef struct bench_model {
    const char *name;
    int in, a, b, classes, batch;
    int cnn; /* 1: (28,28,1) -> Conv 32 3x3 relu -> MaxPool 2 -> Conv 64 3x3 relu -> MaxPool 2
                -> Flatten -> Dense b relu -> heads (a unused) */
    int steps; /* > 0: (steps, in) -> LSTM b (last state; tanh, sigmoid gates) -> heads (a unused) */
    int towers; /* with steps: a second LSTM of a units over the same input beside the first, their
                   last states concatenated before the heads (two independent branches) */
} bench_model;

static const bench_model BENCH_MODELS[] = {
    {"tiny", 32, 64, 64, 10, 32, 0, 0, 0},
    {"mnist-mlp", 784, 512, 512, 10, 128, 0, 0, 0},
    {"wide", 1024, 4096, 4096, 10, 256, 0, 0, 0},
    {"cnn", 784, 0, 128, 10, 64, 1, 0, 0},
    {"lstm", 32, 0, 128, 10, 64, 0, 40, 0},
    {"towers", 32, 64, 64, 10, 64, 0, 40, 1},
};
#define BENCH_N_MODELS (int)(sizeof BENCH_MODELS / sizeof BENCH_MODELS[0])

static inline const bench_model *bench_find(const char *name) {
    for (int i = 0; i < BENCH_N_MODELS; i++)
        if (strcmp(BENCH_MODELS[i].name, name) == 0) return &BENCH_MODELS[i];
    return NULL;
}

/* Floating-point operations of one training step: per Dense (in -> out), forward 2*B*in*out,
 * weight gradient 2*B*in*out, input gradient 2*B*in*out except for the first layer. */
static inline double bench_step_flops(const bench_model *m) {
    double B = m->batch;
    double f = 0;
    if (m->cnn) { /* convolutions as products: out positions x kernel size x filters, x2 per MAC */
        double c1 = 2.0 * 26 * 26 * 32 * 9, c2 = 2.0 * 11 * 11 * 64 * 288, d = 2.0 * 1600 * m->b;
        double heads = 2.0 * m->b * (m->classes + 1);
        return B * (2 * c1 + 3 * c2 + 3 * d + 3 * heads); /* conv1 needs no input gradient */
    }
    if (m->steps) { /* per step: x.K and h.R forward; dK, dR and dh backward (no dx: it is the input) */
        double lstm = m->steps * 2 * B * 4.0 * m->b * (2.0 * m->in + 3.0 * m->b), h = m->b;
        if (m->towers) lstm += m->steps * 2 * B * 4.0 * m->a * (2.0 * m->in + 3.0 * m->a), h += m->a;
        return lstm + 3 * 2 * B * h * (m->classes + 1);
    }
    f += 2 * 2 * B * m->in * m->a;                 /* A: forward + dW */
    f += 3 * 2 * B * m->a * m->b;                  /* B */
    f += 3 * 2 * B * m->b * (m->classes + 1);      /* C and D */
    return f;
}

#endif
