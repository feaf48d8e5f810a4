/* ndarray_check.h — what every array reader's fuzz target asserts about one parse: either a
 * well-formed array whose every element was written, or an error that left the output empty.
 * Any other outcome aborts, which libFuzzer reports as a crash. */
#ifndef LOOM_FUZZ_NDARRAY_CHECK_H
#define LOOM_FUZZ_NDARRAY_CHECK_H

#include "loom.h"

#include <stdlib.h>

static inline void fuzz_check_ndarray(loom_status s, loom_ndarray *a) {
    if (s == LOOM_OK) {
        size_t n = 1;
        for (int i = 0; i < a->rank; i++) n *= a->dims[i];
        if (n != a->size || !a->data || a->rank < 0 || a->rank > LOOM_NDARRAY_MAX_RANK) abort();
        volatile float sink = 0;
        for (size_t i = 0; i < a->size; i++) sink += a->data[i]; /* reads every element (MSan/ASan) */
        (void)sink;
    } else if (a->data || a->size || a->rank) {
        abort();
    }
    loom_ndarray_free(a);
}

#endif
