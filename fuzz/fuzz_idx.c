/* fuzz_idx.c — libFuzzer target for loom_idx_parse: any input must give either a well-formed
 * array or an error with an empty output, and never a crash, leak or undefined behaviour. */
#include "ndarray_check.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[256];
    loom_ndarray a;
    fuzz_check_ndarray(loom_idx_parse(data, size, "fuzz.idx", &a, err, sizeof err), &a);
    return 0;
}
