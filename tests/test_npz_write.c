/* test_npz_write.c — loom_npz_save: every member byte-identical to numpy.save's .npy of the same
 * array (tests/reference/make_npz_write_ref.py), stored and deflated archives read back by loom's
 * own reader with the same shapes and bits, the member list, and every refused argument. */
#include "check.h"
#include "loom.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef LOOM_TEST_DIR
#define LOOM_TEST_DIR "tests"
#endif

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
    *len = b ? fread(b, 1, (size_t)n, f) : 0;
    fclose(f);
    return b;
}

static uint32_t rd16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t rd32(const unsigned char *p) { return rd16(p) | rd16(p + 2) << 16; }

/* The i-th member's data in a stored archive loom wrote: walk the local headers. */
static const unsigned char *stored_member(const unsigned char *zip, size_t len, int i, size_t *n) {
    size_t off = 0;
    for (int k = 0; off + 30 <= len && rd32(zip + off) == 0x04034b50u; k++) {
        size_t csize = rd32(zip + off + 18), nlen = rd16(zip + off + 26), xlen = rd16(zip + off + 28);
        if (rd16(zip + off + 8) != 0 || off + 30 + nlen + xlen + csize > len) return NULL;
        if (k == i) {
            *n = csize;
            return zip + off + 30 + nlen + xlen;
        }
        off += 30 + nlen + xlen + csize;
    }
    return NULL;
}

static float scalar_v[1] = {2.5f};
static float vector_v[7];
static float cube_v[24];

static void arrays(loom_ndarray *a) {
    float vals[7] = {0.0f, -0.0f, 1.0f, -1.5f, INFINITY, -INFINITY, NAN};
    memcpy(vector_v, vals, sizeof vals);
    for (int i = 0; i < 24; i++) cube_v[i] = (float)i * 0.25f - 1.0f;
    a[0] = (loom_ndarray){.rank = 0, .size = 1, .data = scalar_v};
    a[1] = (loom_ndarray){.rank = 1, .dims = {7}, .size = 7, .data = vector_v};
    a[2] = (loom_ndarray){.rank = 3, .dims = {2, 3, 4}, .size = 24, .data = cube_v};
}

static const char *const NAMES[3] = {"scalar", "vector", "cube"};

static void test_bytes_match_numpy(void) {
    loom_ndarray a[3];
    arrays(a);
    char err[512];
    const char *path = "test_npz_write_stored.npz";
    CHECK_STATUS(loom_npz_save(path, 3, NAMES, a, 0, err, sizeof err), LOOM_OK);
    size_t zlen = 0;
    unsigned char *zip = slurp(path, &zlen);
    CHECK(zip != NULL);
    const char *refs[3] = {LOOM_TEST_DIR "/data/npzw_scalar.npy", LOOM_TEST_DIR "/data/npzw_vector.npy",
                           LOOM_TEST_DIR "/data/npzw_cube.npy"};
    for (int i = 0; i < 3 && zip; i++) {
        size_t rlen = 0, mlen = 0;
        unsigned char *ref = slurp(refs[i], &rlen);
        const unsigned char *mem = stored_member(zip, zlen, i, &mlen);
        CHECK(ref != NULL && mem != NULL);
        if (ref && mem) {
            CHECK(mlen == rlen);
            CHECK(mlen == rlen && memcmp(mem, ref, rlen) == 0);
        }
        free(ref);
    }
    free(zip);
    remove(path);
}

static void test_round_trip(void) {
    loom_ndarray a[3];
    arrays(a);
    char err[512];
    for (int compress = 0; compress < 2; compress++) {
        const char *path = compress ? "test_npz_write_deflated.npz" : "test_npz_write_stored2.npz";
        CHECK_STATUS(loom_npz_save(path, 3, NAMES, a, compress, err, sizeof err), LOOM_OK);
        char *names[8];
        int n = loom_npz_members(path, names, 8, err, sizeof err);
        CHECK(n == 3);
        for (int i = 0; i < n && i < 8; i++) {
            CHECK(strcmp(names[i], NAMES[i]) == 0);
            free(names[i]);
        }
        for (int i = 0; i < 3; i++) {
            loom_ndarray b;
            CHECK_STATUS(loom_npz_load(path, NAMES[i], &b, err, sizeof err), LOOM_OK);
            CHECK(b.rank == a[i].rank && b.size == a[i].size);
            for (int d = 0; d < a[i].rank; d++) CHECK(b.dims[d] == a[i].dims[d]);
            CHECK(b.data && memcmp(b.data, a[i].data, a[i].size * sizeof(float)) == 0); /* bits, NaN and -0 too */
            loom_ndarray_free(&b);
        }
        remove(path);
    }
    /* a larger member compresses and survives */
    size_t big = 100000;
    float *v = malloc(big * sizeof *v);
    for (size_t i = 0; i < big; i++) v[i] = (float)(i % 97) * 0.5f;
    loom_ndarray one = {.rank = 2, .dims = {1000, 100}, .size = big, .data = v};
    const char *nm[1] = {"big"};
    CHECK_STATUS(loom_npz_save("test_npz_write_big.npz", 1, nm, &one, 1, err, sizeof err), LOOM_OK);
    size_t len = 0;
    unsigned char *file = slurp("test_npz_write_big.npz", &len);
    CHECK(file && len < big * 4 / 4); /* deflated to under a quarter */
    free(file);
    loom_ndarray b;
    CHECK_STATUS(loom_npz_load("test_npz_write_big.npz", "big", &b, err, sizeof err), LOOM_OK);
    CHECK(b.size == big && memcmp(b.data, v, big * sizeof *v) == 0);
    loom_ndarray_free(&b);
    remove("test_npz_write_big.npz");
    free(v);
}

static void test_refusals(void) {
    loom_ndarray a[3];
    arrays(a);
    char err[512];
    const char *dup[2] = {"x", "x"};
    CHECK_STATUS(loom_npz_save("t.npz", 2, dup, a, 1, err, sizeof err), LOOM_ERR_ARGUMENT);
    CHECK(strstr(err, "twice") != NULL);
    const char *slash[1] = {"a/b"};
    CHECK_STATUS(loom_npz_save("t.npz", 1, slash, a, 1, err, sizeof err), LOOM_ERR_ARGUMENT);
    const char *empty[1] = {""};
    CHECK_STATUS(loom_npz_save("t.npz", 1, empty, a, 1, err, sizeof err), LOOM_ERR_ARGUMENT);
    loom_ndarray bad = a[2];
    bad.size = 23; /* does not match 2 x 3 x 4 */
    const char *one[1] = {"cube"};
    CHECK_STATUS(loom_npz_save("t.npz", 1, one, &bad, 1, err, sizeof err), LOOM_ERR_ARGUMENT);
    CHECK(strstr(err, "cube") != NULL);
    bad = a[2];
    bad.data = NULL;
    CHECK_STATUS(loom_npz_save("t.npz", 1, one, &bad, 1, err, sizeof err), LOOM_ERR_ARGUMENT);
    bad = a[2];
    bad.rank = LOOM_NDARRAY_MAX_RANK + 1;
    CHECK_STATUS(loom_npz_save("t.npz", 1, one, &bad, 1, err, sizeof err), LOOM_ERR_ARGUMENT);
    bad = a[2];
    bad.rank = 2;
    bad.dims[0] = bad.dims[1] = SIZE_MAX / 2; /* overflowing dims */
    CHECK_STATUS(loom_npz_save("t.npz", 1, one, &bad, 1, err, sizeof err), LOOM_ERR_ARGUMENT);
    CHECK_STATUS(loom_npz_save("t.npz", 0, one, a, 1, err, sizeof err), LOOM_ERR_ARGUMENT);
    CHECK_STATUS(loom_npz_save(NULL, 1, one, a, 1, err, sizeof err), LOOM_ERR_ARGUMENT);
    CHECK_STATUS(loom_npz_save("no_such_dir/t.npz", 1, one, &a[2], 1, err, sizeof err), LOOM_ERR_IO);
    CHECK(strstr(err, "no_such_dir/t.npz") != NULL);
    FILE *f = fopen("t.npz", "r");
    CHECK(f == NULL); /* nothing written by a refused call */
    if (f) fclose(f);
}

int main(void) {
    test_bytes_match_numpy();
    test_round_trip();
    test_refusals();
    return check_report("npz_write");
}
