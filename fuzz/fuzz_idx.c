/* fuzz_idx.c — libFuzzer target for loom_idx_parse: any input must give either a well-formed
 * array or an error with an empty output, and never a crash, leak or undefined behaviour. */
#include "loom.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[256];
    loom_ndarray a;
    loom_status s = loom_idx_parse(data, size, "fuzz.idx", &a, err, sizeof err);
    if (s == LOOM_OK) {
        size_t n = 1;
        for (int i = 0; i < a.rank; i++) n *= a.dims[i];
        if (n != a.size || !a.data || a.rank < 0 || a.rank > LOOM_NDARRAY_MAX_RANK) abort();
        volatile float sink = 0;
        for (size_t i = 0; i < a.size; i++) sink += a.data[i]; /* every element is initialised */
        (void)sink;
    } else if (a.data || a.size || a.rank) {
        abort();
    }
    loom_ndarray_free(&a);
    return 0;
}
