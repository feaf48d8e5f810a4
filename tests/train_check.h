/* train_check.h — "does this model learn?" for layer tests: fit a few epochs and require the
 * evaluated loss to fall below half its starting value and the logged epoch loss to fall.
 * Returns the evaluation after training (free it), for further checks; NULL if a call failed. */
#ifndef LOOM_TRAIN_CHECK_H
#define LOOM_TRAIN_CHECK_H

#include "check.h"

#include <loom.h>

static inline loom_history *check_fit_lowers_loss(loom_model *m, const loom_data *data, int batch, int epochs,
                                                  uint64_t seed, const char *label) {
    loom_history *before = NULL, *hist = NULL, *after = NULL;
    CHECK_STATUS(loom_evaluate(m, data, 64, 0, &before), LOOM_OK);
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = batch;
    fo.epochs = epochs;
    fo.seed = seed;
    CHECK_STATUS(loom_fit(m, data, &fo, &hist), LOOM_OK);
    CHECK_STATUS(loom_evaluate(m, data, 64, 0, &after), LOOM_OK);
    float l0 = loom_history_get(before, "loss", 0), l1 = loom_history_get(after, "loss", 0);
    float first = loom_history_get(hist, "loss", 0), last = loom_history_get(hist, "loss", -1);
    if (!(l1 < 0.5f * l0 && last < first))
        fprintf(stderr, "  %s: loss %g -> %g (fit %g -> %g)\n", label, l0, l1, first, last);
    CHECK(isfinite(l0) && isfinite(l1));
    CHECK(l1 < 0.5f * l0);
    CHECK(last < first);
    loom_history_free(before);
    loom_history_free(hist);
    return after;
}

#endif
