/* fuzz_npz.c — libFuzzer target for loom_npz_parse: looks up a few member names, as a caller
 * would, in any input; each must give a well-formed array or an error with an empty output. */
#include "ndarray_check.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *members[] = {"x", "y.npy", "arr_0"};
    for (size_t m = 0; m < sizeof members / sizeof members[0]; m++) {
        char err[256];
        loom_ndarray a;
        fuzz_check_ndarray(loom_npz_parse(data, size, "fuzz.npz", members[m], &a, err, sizeof err), &a);
    }
    return 0;
}
