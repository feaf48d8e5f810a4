/* readme_example.h — runs the README's "seed model in C" snippet (readme_seed_model.inc, taken
 * from README.md by cmake/package_tests.cmake) on synthetic data and checks that it trained.
 * Included by test_readme_example.c (as C) and test_cxx_header.cpp (as C++), so the README's
 * code is compiled and run in both languages. Uses check.h's CHECK. */
#ifndef LOOM_TEST_README_EXAMPLE_H
#define LOOM_TEST_README_EXAMPLE_H

#include "check.h"

#include <loom.h>
#include <stdio.h>
#include <stdlib.h>

static void run_readme_example(void) {
    enum { N = 256 };
    /* the data of examples/seed_model.c: C is the sign pattern of two features, D their sum and
     * difference */
    static float xs[N * 16], yc[N * 4], yd[N * 2];
    srand(1);
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < 16; j++) xs[i * 16 + j] = (float)rand() / (float)RAND_MAX * 2 - 1;
        int cls = (xs[i * 16] > 0) * 2 + (xs[i * 16 + 1] > 0);
        yc[i * 4 + cls] = 1;
        yd[i * 2] = xs[i * 16] + xs[i * 16 + 1];
        yd[i * 2 + 1] = xs[i * 16] - xs[i * 16 + 1];
    }

#include "readme_seed_model.inc"

    CHECK(m != NULL);
    CHECK(h != NULL);
    if (!m || !h) {
        loom_model_free(m);
        return;
    }
    CHECK(loom_model_error(m)[0] == '\0');
    CHECK(loom_history_epochs(h) == 10);
    /* it learnt: the training loss fell, and the class head beats chance (0.25) on held-out data */
    CHECK(loom_history_get(h, "loss", -1) < 0.8 * loom_history_get(h, "loss", 0));
    CHECK(loom_history_get(h, "val_C_accuracy", -1) > 0.5);
    printf("README example: loss %.4f -> %.4f, val_C_accuracy %.4f\n", loom_history_get(h, "loss", 0),
           loom_history_get(h, "loss", -1), loom_history_get(h, "val_C_accuracy", -1));
    loom_history_free(h);
    loom_model_free(m);
}

#endif
