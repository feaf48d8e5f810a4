/* test_loaders.c — the data-file readers: every .npy dtype and version, .npz stored and deflated,
 * IDX plain and gzipped, CSV; then hostile input: every truncation of every sample, flipped bytes, huge shapes,
 * refused dtypes and compression methods, bad CRCs, and CSV errors with their line numbers.
 * The sample files are made by tests/data/make_samples.py (numpy), whose formulas are repeated
 * here. */
#include "loom.h"
#include "check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#ifndef LOOM_TEST_DIR
#define LOOM_TEST_DIR "tests"
#endif

static char errbuf[512];

static const char *data_path(const char *name) {
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s/data/%s", LOOM_TEST_DIR, name);
    return buf;
}

static unsigned char *slurp(const char *name, size_t *len) {
    FILE *f = fopen(data_path(name), "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", data_path(name));
        *len = 0;
        return NULL;
    }
    unsigned char *b = malloc(1 << 20);
    *len = fread(b, 1, 1 << 20, f);
    fclose(f);
    return b;
}

static int contains(const char *s, const char *sub) { return strstr(s, sub) != NULL; }

static int is_empty(const loom_ndarray *a) { return a->data == NULL && a->size == 0 && a->rank == 0; }

/* Parses a copy of exactly len bytes, so ASan sees any read past the end. */
typedef loom_status (*parse_fn)(const void *, size_t, loom_ndarray *);
static loom_status npy_fn(const void *b, size_t n, loom_ndarray *a) {
    return loom_npy_parse(b, n, "t.npy", a, errbuf, sizeof errbuf);
}
static loom_status idx_fn(const void *b, size_t n, loom_ndarray *a) {
    return loom_idx_parse(b, n, "t.idx", a, errbuf, sizeof errbuf);
}
static loom_status npz_x_fn(const void *b, size_t n, loom_ndarray *a) {
    return loom_npz_parse(b, n, "t.npz", "x", a, errbuf, sizeof errbuf);
}
static loom_status parse_copy(parse_fn fn, const unsigned char *b, size_t n, loom_ndarray *a) {
    unsigned char *c = malloc(n ? n : 1);
    if (n) memcpy(c, b, n);
    loom_status s = fn(c, n, a);
    free(c);
    return s;
}

/* ---------------------------------------------------------------- npy: values */

static const float FLOATS[6] = {-1.5f, -0.25f, 0.0f, 0.5f, 3.0f, 1000.0f};

static void check_floats(const char *name) {
    loom_ndarray a;
    CHECK_STATUS(loom_npy_load(data_path(name), &a, errbuf, sizeof errbuf), LOOM_OK);
    CHECK(a.rank == 2 && a.dims[0] == 2 && a.dims[1] == 3 && a.size == 6);
    for (int i = 0; i < 6 && a.data; i++) CHECK(a.data[i] == FLOATS[i]);
    loom_ndarray_free(&a);
    CHECK(is_empty(&a));
}

static void check_values(const char *name, const float *want) {
    loom_ndarray a;
    loom_status s = loom_npy_load(data_path(name), &a, errbuf, sizeof errbuf);
    CHECK_STATUS(s, LOOM_OK);
    if (s) fprintf(stderr, "  %s: %s\n", name, errbuf);
    CHECK(a.rank == 2 && a.dims[0] == 2 && a.dims[1] == 3 && a.size == 6);
    for (int i = 0; i < 6 && a.data; i++) {
        CHECK(a.data[i] == want[i]);
        if (a.data[i] != want[i]) fprintf(stderr, "  %s[%d] = %.9g, want %.9g\n", name, i, a.data[i], want[i]);
    }
    loom_ndarray_free(&a);
}

static void test_npy_dtypes(void) {
    check_floats("f4_le.npy");
    check_floats("f4_be.npy");
    check_floats("f8_le.npy");
    check_floats("f8_be.npy");
    check_floats("f4_v2.npy");
    check_floats("f4_v3.npy");

    /* signed: [min, -1, 0, 1, 42, max]; unsigned: [0, 1, 42, 200, max-1, max] */
    const int64_t smin[4] = {INT8_MIN, INT16_MIN, INT32_MIN, INT64_MIN};
    const int64_t smax[4] = {INT8_MAX, INT16_MAX, INT32_MAX, INT64_MAX};
    const uint64_t umax[4] = {UINT8_MAX, UINT16_MAX, UINT32_MAX, UINT64_MAX};
    const char *sizes[4] = {"1", "2", "4", "8"};
    for (int k = 0; k < 4; k++) {
        float ws[6] = {(float)smin[k], -1, 0, 1, 42, (float)smax[k]};
        float wu[6] = {0, 1, 42, 200, (float)(umax[k] - 1), (float)umax[k]};
        const char *tags[2] = {k == 0 ? "na" : "le", "be"};
        for (int t = 0; t < (k == 0 ? 1 : 2); t++) {
            char name[32];
            snprintf(name, sizeof name, "i%s_%s.npy", sizes[k], tags[t]);
            check_values(name, ws);
            snprintf(name, sizeof name, "u%s_%s.npy", sizes[k], tags[t]);
            check_values(name, wu);
        }
    }
    const float wb[6] = {1, 0, 1, 1, 0, 0};
    check_values("b1.npy", wb);
    /* int64 extremes land on exact powers of two */
    CHECK((float)INT64_MIN == -9223372036854775808.0f);
}

static void test_npy_shapes(void) {
    loom_ndarray a;
    CHECK_STATUS(loom_npy_load(data_path("scalar.npy"), &a, errbuf, sizeof errbuf), LOOM_OK);
    CHECK(a.rank == 0 && a.size == 1 && a.data && a.data[0] == 3.25f);
    loom_ndarray_free(&a);

    CHECK_STATUS(loom_npy_load(data_path("cube.npy"), &a, errbuf, sizeof errbuf), LOOM_OK);
    CHECK(a.rank == 3 && a.dims[0] == 2 && a.dims[1] == 3 && a.dims[2] == 4 && a.size == 24);
    for (size_t i = 0; i < a.size; i++) CHECK(a.data[i] == (float)i);
    loom_ndarray_free(&a);

    CHECK_STATUS(loom_npy_load(data_path("empty.npy"), &a, errbuf, sizeof errbuf), LOOM_OK);
    CHECK(a.rank == 2 && a.dims[0] == 0 && a.dims[1] == 3 && a.size == 0);
    loom_ndarray_free(&a);
}

static void test_npy_refused(void) {
    loom_ndarray a;
    CHECK_STATUS(loom_npy_load(data_path("fortran.npy"), &a, errbuf, sizeof errbuf), LOOM_ERR_DATA);
    CHECK(contains(errbuf, "Fortran") && contains(errbuf, "fortran.npy"));
    CHECK(is_empty(&a));
    CHECK_STATUS(loom_npy_load(data_path("object.npy"), &a, errbuf, sizeof errbuf), LOOM_ERR_DATA);
    CHECK(contains(errbuf, "object") && contains(errbuf, "|O"));
    CHECK(is_empty(&a));
    CHECK_STATUS(loom_npy_load(data_path("f2.npy"), &a, errbuf, sizeof errbuf), LOOM_ERR_DATA);
    CHECK(contains(errbuf, "unsupported dtype '<f2'"));
    CHECK_STATUS(loom_npy_load(data_path("no-such-file.npy"), &a, errbuf, sizeof errbuf), LOOM_ERR_IO);
    CHECK(contains(errbuf, "no-such-file.npy"));
    CHECK(is_empty(&a));
}

/* A v1.0 .npy with the given header text and n data bytes (all 0x3f). */
static unsigned char *make_npy(const char *header, size_t n, size_t *len) {
    size_t h = strlen(header);
    *len = 10 + h + n;
    unsigned char *b = malloc(*len);
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (unsigned char)(h & 0xff);
    b[9] = (unsigned char)(h >> 8);
    memcpy(b + 10, header, h);
    memset(b + 10 + h, 0x3f, n);
    return b;
}

static loom_status npy_header(const char *header, size_t n, loom_ndarray *a) {
    size_t len;
    unsigned char *b = make_npy(header, n, &len);
    loom_status s = parse_copy(npy_fn, b, len, a);
    free(b);
    return s;
}

static void test_npy_headers(void) {
    loom_ndarray a;
    /* accepted spellings: double quotes, no trailing comma, keys in any order, rank 8 */
    CHECK_STATUS(npy_header("{\"shape\": (2, 1), \"fortran_order\": False, \"descr\": \"<u2\"}\n", 4, &a), LOOM_OK);
    CHECK(a.rank == 2 && a.size == 2 && a.data[0] == (float)0x3f3f);
    loom_ndarray_free(&a);
    CHECK_STATUS(npy_header("{'descr':'|u1','fortran_order':False,'shape':(1,1,1,1,1,1,1,2,),}", 2, &a), LOOM_OK);
    CHECK(a.rank == 8 && a.size == 2 && a.data[1] == 63.0f);
    loom_ndarray_free(&a);
    CHECK_STATUS(npy_header("{'descr':'<f4','fortran_order':False,'shape':(3L,),}  \n", 12, &a), LOOM_OK);
    CHECK(a.rank == 1 && a.dims[0] == 3);
    loom_ndarray_free(&a);

    struct { const char *header; size_t n; const char *msg; } bad[] = {
        {"{'descr':'<f4','fortran_order':False,'shape':(4294967296, 4294967296),}", 16, "too large"},
        {"{'descr':'<f4','fortran_order':False,'shape':(18446744073709551615,),}", 4, "too large"},
        {"{'descr':'<f4','fortran_order':False,'shape':(99999999999999999999999,),}", 4, "64 bits"},
        {"{'descr':'<f4','fortran_order':False,'shape':(0, 1152921504606846976),}", 0, "over the limit"},
        {"{'descr':'<f4','fortran_order':False,'shape':(1,1,1,1,1,1,1,1,1),}", 4, "more than 8"},
        {"{'descr':'<f4','fortran_order':False}", 4, "lacks the key 'shape'"},
        {"{'descr':'<f4','descr':'<f4','fortran_order':False,'shape':(1,),}", 4, "twice"},
        {"{'descr':'<f4','fortran_order':False,'shape':(1,),'extra':1}", 4, "unexpected key 'extra'"},
        {"{'descr':'<c8','fortran_order':False,'shape':(1,),}", 8, "unsupported dtype '<c8'"},
        {"{'descr':'|O','fortran_order':False,'shape':(1,),}", 8, "object"},
        {"{'descr':[('a','<f4')],'fortran_order':False,'shape':(1,),}", 4, "structured"},
        {"{'descr':'<f4','fortran_order':False,'shape':(1),}", 4, "1-tuple"},
        {"{'descr':'<f4','fortran_order':False,'shape':(-1,),}", 4, "non-negative"},
        {"{'descr':'<f4','fortran_order':0,'shape':(1,),}", 4, "True or False"},
        {"{'descr':'<f4','fortran_order':True,'shape':(1,),}", 4, "Fortran"},
        {"{'descr':'<f4','fortran_order':False,'shape':(1,)", 4, "',' or '}'"},
        {"{'descr':'<f4','fortran_order':False,'shape':(1,),} x", 4, "padding"},
        {"{'descr':'<f4\\x','fortran_order':False,'shape':(1,),}", 4, "escapes"},
        {"{'descr':'f4','fortran_order':False,'shape':(1,),}", 4, "byte-order"},
        {"{'descr':'<f4','fortran_order':False,'shape':(2,),}", 7, "needs 8 bytes, the file has 7"},
        {"{'descr':'<f4','fortran_order':False,'shape':(2,),}", 9, "trailing"},
        {"", 0, "'{'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errbuf[0] = '\0';
        CHECK_STATUS(npy_header(bad[i].header, bad[i].n, &a), LOOM_ERR_DATA);
        CHECK(is_empty(&a));
        if (!contains(errbuf, bad[i].msg) || !contains(errbuf, "t.npy")) {
            fprintf(stderr, "  header %zu: message \"%s\" lacks \"%s\"\n", i, errbuf, bad[i].msg);
            CHECK(0);
        }
    }

    /* versions: 1.1 and 4.0 do not exist; a 2.0 header length beyond the file */
    size_t len;
    unsigned char *b = slurp("f4_le.npy", &len);
    b[7] = 1;
    CHECK_STATUS(parse_copy(npy_fn, b, len, &a), LOOM_ERR_DATA);
    CHECK(contains(errbuf, "version 1.1"));
    b[6] = 4;
    b[7] = 0;
    CHECK_STATUS(parse_copy(npy_fn, b, len, &a), LOOM_ERR_DATA);
    b[6] = 2;
    b[8] = b[9] = b[10] = b[11] = 0xff;
    CHECK_STATUS(parse_copy(npy_fn, b, len, &a), LOOM_ERR_DATA);
    CHECK(contains(errbuf, "truncated .npy header"));
    free(b);
}

/* Every proper prefix of a sample must be refused (never crash); the full file must load. */
static void check_prefixes(const char *name, parse_fn fn) {
    size_t len;
    unsigned char *b = slurp(name, &len);
    if (!b) {
        CHECK(0);
        return;
    }
    loom_ndarray a;
    int refused = 0;
    for (size_t cut = 0; cut < len; cut++) {
        loom_status s = parse_copy(fn, b, cut, &a);
        refused += s != LOOM_OK;
        if (s == LOOM_OK) fprintf(stderr, "  %s: prefix of %zu bytes accepted\n", name, cut);
        if (s != LOOM_OK && !is_empty(&a)) CHECK(0);
        loom_ndarray_free(&a);
    }
    CHECK(refused == (int)len);
    CHECK_STATUS(parse_copy(fn, b, len, &a), LOOM_OK);
    loom_ndarray_free(&a);
    free(b);
}

/* Every byte flipped in several ways: any outcome but a crash, and a sane result when accepted. */
static void check_flips(const char *name, parse_fn fn) {
    size_t len;
    unsigned char *b = slurp(name, &len);
    if (!b) {
        CHECK(0);
        return;
    }
    const unsigned char masks[] = {0x01, 0x10, 0x80, 0xff};
    int bad = 0;
    for (size_t i = 0; i < len; i++) {
        for (size_t m = 0; m < sizeof masks; m++) {
            b[i] ^= masks[m];
            loom_ndarray a;
            loom_status s = parse_copy(fn, b, len, &a);
            if (s != LOOM_OK && !is_empty(&a)) bad++;
            if (s == LOOM_OK) {
                size_t prod = 1;
                for (int r = 0; r < a.rank; r++) prod *= a.dims[r];
                if (prod != a.size || !a.data || a.rank > LOOM_NDARRAY_MAX_RANK) bad++;
            }
            loom_ndarray_free(&a);
            b[i] ^= masks[m];
        }
    }
    CHECK(bad == 0);
    free(b);
}

static void test_truncation_and_corruption(void) {
    const char *npys[] = {"f4_le.npy", "f8_be.npy", "i8_le.npy", "u2_be.npy", "b1.npy", "f4_v2.npy", "f4_v3.npy",
                          "scalar.npy", "cube.npy", "empty.npy"};
    for (size_t i = 0; i < sizeof npys / sizeof npys[0]; i++) {
        check_prefixes(npys[i], npy_fn);
        check_flips(npys[i], npy_fn);
    }
    const char *idxs[] = {"u8.idx", "i8.idx", "i16.idx", "i32.idx", "f32.idx", "f64.idx"};
    for (size_t i = 0; i < sizeof idxs / sizeof idxs[0]; i++) {
        check_prefixes(idxs[i], idx_fn);
        check_flips(idxs[i], idx_fn);
    }
    /* gzip: every prefix lacks the CRC-32 trailer; a flip is caught by the CRC or is harmless */
    check_prefixes("u8.idx.gz", idx_fn);
    check_flips("u8.idx.gz", idx_fn);
    check_prefixes("stored.npz", npz_x_fn);
    check_prefixes("deflated.npz", npz_x_fn);
    check_flips("stored.npz", npz_x_fn);
    check_flips("deflated.npz", npz_x_fn);

    /* the truncation message names both sizes */
    size_t len;
    unsigned char *b = slurp("f4_le.npy", &len);
    loom_ndarray a;
    CHECK_STATUS(parse_copy(npy_fn, b, len - 5, &a), LOOM_ERR_DATA);
    CHECK(contains(errbuf, "truncated") && contains(errbuf, "needs 24 bytes") && contains(errbuf, "has 19"));
    free(b);
}

/* ---------------------------------------------------------------- npz */

static void test_npz(void) {
    loom_ndarray a;
    const char *files[2] = {"stored.npz", "deflated.npz"};
    for (int f = 0; f < 2; f++) {
        CHECK_STATUS(loom_npz_load(data_path(files[f]), "x", &a, errbuf, sizeof errbuf), LOOM_OK);
        CHECK(a.rank == 2 && a.dims[0] == 2 && a.dims[1] == 3);
        for (size_t i = 0; i < a.size; i++) CHECK(a.data[i] == (float)i);
        loom_ndarray_free(&a);
        CHECK_STATUS(loom_npz_load(data_path(files[f]), "y.npy", &a, errbuf, sizeof errbuf), LOOM_OK);
        CHECK(a.rank == 1 && a.dims[0] == 3 && a.data[0] == 1 && a.data[1] == 2 && a.data[2] == 3);
        loom_ndarray_free(&a);
        CHECK_STATUS(loom_npz_load(data_path(files[f]), "w", &a, errbuf, sizeof errbuf), LOOM_ERR_NAME);
        CHECK(contains(errbuf, "'w'") && contains(errbuf, "'x'") && contains(errbuf, "'y'"));
        CHECK(is_empty(&a));
    }
    CHECK_STATUS(loom_npz_load(data_path("deflated.npz"), "z", &a, errbuf, sizeof errbuf), LOOM_OK);
    CHECK(a.rank == 1 && a.dims[0] == 1000);
    int ok = 1;
    for (size_t i = 0; i < a.size; i++) ok &= a.data[i] == (float)(i % 7);
    CHECK(ok);
    loom_ndarray_free(&a);
    CHECK_STATUS(loom_npz_load(data_path("positional.npz"), "arr_0", &a, errbuf, sizeof errbuf), LOOM_OK);
    CHECK(a.rank == 1 && a.size == 3 && a.data[2] == 2.0f);
    loom_ndarray_free(&a);

    char *names[4] = {0};
    CHECK(loom_npz_members(data_path("deflated.npz"), names, 4, errbuf, sizeof errbuf) == 3);
    CHECK(names[0] && strcmp(names[0], "x") == 0);
    CHECK(names[1] && strcmp(names[1], "y") == 0);
    CHECK(names[2] && strcmp(names[2], "z") == 0);
    for (int i = 0; i < 4; i++) free(names[i]);
    memset(names, 0, sizeof names);
    CHECK(loom_npz_members(data_path("stored.npz"), names, 1, errbuf, sizeof errbuf) == 1);
    CHECK(names[0] && strcmp(names[0], "x") == 0 && names[1] == NULL);
    free(names[0]);
    CHECK(loom_npz_members(data_path("f4_le.npy"), names, 4, errbuf, sizeof errbuf) == -1);
    CHECK(contains(errbuf, "not a ZIP"));

    CHECK_STATUS(loom_npz_load(data_path("bzip2.npz"), "x", &a, errbuf, sizeof errbuf), LOOM_ERR_DATA);
    CHECK(contains(errbuf, "method 12") && contains(errbuf, "bzip2"));
    CHECK(is_empty(&a));
}

/* Offset of the central-directory entry named name in a zip buffer. */
static size_t find_central(const unsigned char *b, size_t len, const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; i + 46 + n <= len; i++)
        if (memcmp(b + i, "PK\x01\x02", 4) == 0 && b[i + 28] == n && memcmp(b + i + 46, name, n) == 0) return i;
    return 0;
}

static size_t rd32le(const unsigned char *p) {
    return (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 | (size_t)p[3] << 24;
}

static void test_npz_hostile(void) {
    loom_ndarray a;
    size_t len;
    unsigned char *b = slurp("stored.npz", &len);
    size_t cd = find_central(b, len, "x.npy");
    CHECK(cd != 0);

    /* a wrong CRC in the directory */
    b[cd + 16] ^= 0x55;
    CHECK_STATUS(parse_copy(npz_x_fn, b, len, &a), LOOM_ERR_DATA);
    CHECK(contains(errbuf, "CRC-32 mismatch") && contains(errbuf, "x.npy"));
    CHECK(is_empty(&a));
    b[cd + 16] ^= 0x55;
    /* a flipped data byte: the last float of x */
    size_t local = rd32le(b + cd + 42);
    size_t data = local + 30 + (b[local + 26] | b[local + 27] << 8) + (b[local + 28] | b[local + 29] << 8);
    size_t usize = rd32le(b + cd + 24);
    b[data + usize - 1] ^= 0x01;
    CHECK_STATUS(parse_copy(npz_x_fn, b, len, &a), LOOM_ERR_DATA);
    CHECK(contains(errbuf, "CRC-32 mismatch"));
    b[data + usize - 1] ^= 0x01;
    CHECK_STATUS(parse_copy(npz_x_fn, b, len, &a), LOOM_OK);
    loom_ndarray_free(&a);
    /* LZMA (14) in both headers */
    b[cd + 10] = 14;
    b[local + 8] = 14;
    CHECK_STATUS(parse_copy(npz_x_fn, b, len, &a), LOOM_ERR_DATA);
    CHECK(contains(errbuf, "method 14") && contains(errbuf, "LZMA"));
    b[cd + 10] = 0;
    b[local + 8] = 0;
    /* encrypted */
    b[cd + 8] |= 1;
    CHECK_STATUS(parse_copy(npz_x_fn, b, len, &a), LOOM_ERR_DATA);
    CHECK(contains(errbuf, "encrypted"));
    b[cd + 8] &= (unsigned char)~1u;
    /* a local-header offset past the end */
    b[cd + 45] = 0x7f;
    CHECK_STATUS(parse_copy(npz_x_fn, b, len, &a), LOOM_ERR_DATA);
    CHECK(contains(errbuf, "local header"));
    b[cd + 45] = 0;
    /* more members claimed than the central directory can hold */
    b[len - 22 + 9] = b[len - 22 + 11] = 0xf0;
    CHECK_STATUS(parse_copy(npz_x_fn, b, len, &a), LOOM_ERR_DATA);
    CHECK(contains(errbuf, "cannot fit"));
    b[len - 22 + 9] = b[len - 22 + 11] = 0;
    CHECK_STATUS(parse_copy(npz_x_fn, b, len, &a), LOOM_OK);
    loom_ndarray_free(&a);
    free(b);

    /* deflated: a huge declared size is refused before allocating */
    b = slurp("deflated.npz", &len);
    cd = find_central(b, len, "x.npy");
    b[cd + 24] = 0xf0;
    b[cd + 25] = b[cd + 26] = b[cd + 27] = 0xff;
    CHECK_STATUS(parse_copy(npz_x_fn, b, len, &a), LOOM_ERR_DATA);
    CHECK(contains(errbuf, "cannot inflate"));
    /* a declared size one short of the truth: inflating must stop at the limit */
    memcpy(b + cd + 24, (unsigned char[4]){0}, 4);
    free(b);
    b = slurp("deflated.npz", &len);
    size_t us = rd32le(b + cd + 24) - 1;
    b[cd + 24] = (unsigned char)us;
    b[cd + 25] = (unsigned char)(us >> 8);
    CHECK_STATUS(parse_copy(npz_x_fn, b, len, &a), LOOM_ERR_DATA);
    CHECK(contains(errbuf, "more than"));
    /* and one more than the truth */
    us += 2;
    b[cd + 24] = (unsigned char)us;
    b[cd + 25] = (unsigned char)(us >> 8);
    CHECK_STATUS(parse_copy(npz_x_fn, b, len, &a), LOOM_ERR_DATA);
    CHECK(contains(errbuf, "inflates to"));
    free(b);

    /* an archive comment is fine; a ZIP64 EOCD is refused by name */
    b = slurp("stored.npz", &len);
    unsigned char *c = malloc(len + 5);
    memcpy(c, b, len);
    memcpy(c + len, "hello", 5);
    c[len - 2] = 5;
    CHECK_STATUS(parse_copy(npz_x_fn, c, len + 5, &a), LOOM_OK);
    loom_ndarray_free(&a);
    c[len - 12] = c[len - 11] = c[len - 10] = c[len - 9] = 0xff; /* central directory size */
    CHECK_STATUS(parse_copy(npz_x_fn, c, len + 5, &a), LOOM_ERR_DATA);
    CHECK(contains(errbuf, "ZIP64"));
    free(c);
    free(b);
}

/* ---------------------------------------------------------------- idx */

static void test_idx(void) {
    loom_ndarray a;
    CHECK_STATUS(loom_idx_load(data_path("u8.idx"), &a, errbuf, sizeof errbuf), LOOM_OK);
    CHECK(a.rank == 3 && a.dims[0] == 2 && a.dims[1] == 2 && a.dims[2] == 3 && a.size == 12);
    for (size_t i = 0; i < a.size; i++) CHECK(a.data[i] == (float)(i * 23 % 256));
    loom_ndarray_free(&a);
    const char *ints[3] = {"i8.idx", "i16.idx", "i32.idx"};
    const float mins[3] = {-128.0f, -32768.0f, -2147483648.0f}, maxs[3] = {127.0f, 32767.0f, 2147483647.0f};
    for (int k = 0; k < 3; k++) {
        CHECK_STATUS(loom_idx_load(data_path(ints[k]), &a, errbuf, sizeof errbuf), LOOM_OK);
        float want[6] = {mins[k], -1, 0, 1, 42, maxs[k]};
        CHECK(a.rank == 2 && a.dims[0] == 2 && a.dims[1] == 3);
        for (int i = 0; i < 6 && a.data; i++) CHECK(a.data[i] == want[i]);
        loom_ndarray_free(&a);
    }
    CHECK_STATUS(loom_idx_load(data_path("f32.idx"), &a, errbuf, sizeof errbuf), LOOM_OK);
    for (int i = 0; i < 6 && a.data; i++) CHECK(a.data[i] == FLOATS[i]);
    loom_ndarray_free(&a);
    CHECK_STATUS(loom_idx_load(data_path("f64.idx"), &a, errbuf, sizeof errbuf), LOOM_OK);
    CHECK(a.rank == 1 && a.dims[0] == 6);
    for (int i = 0; i < 6 && a.data; i++) CHECK(a.data[i] == FLOATS[i]);
    loom_ndarray_free(&a);

    struct { unsigned char b[24]; size_t n; const char *msg; } bad[] = {
        {{0, 0, 8, 0}, 4, "rank 0"},
        {{0, 0, 8, 9}, 40, "rank 9"},
        {{0, 0, 0x0A, 1, 0, 0, 0, 1, 7}, 9, "type code 0x0A"},
        {{0, 1, 8, 1, 0, 0, 0, 1, 7}, 9, "not an IDX"},
        {{0x1f, 0x8b, 8, 0}, 4, "gzip"},
        {{0, 0, 8, 4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
          0xff}, 20, "too large"},
        {{0, 0, 8, 2, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, 12, "over the limit"},
        {{0, 0, 0x0C, 1, 0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7}, 15, "need 8 data bytes, the file has 7"},
        {{0, 0, 0x08, 1, 0, 0, 0, 2, 1, 2, 3}, 11, "trailing"},
        {{0, 0, 0x08, 2, 0, 0, 0, 2}, 8, "truncated IDX header"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned char buf[64] = {0};
        memcpy(buf, bad[i].b, sizeof bad[i].b);
        errbuf[0] = '\0';
        CHECK_STATUS(parse_copy(idx_fn, buf, bad[i].n, &a), LOOM_ERR_DATA);
        CHECK(is_empty(&a));
        if (!contains(errbuf, bad[i].msg)) {
            fprintf(stderr, "  idx case %zu: message \"%s\" lacks \"%s\"\n", i, errbuf, bad[i].msg);
            CHECK(0);
        }
    }
}

/* ---------------------------------------------------------------- idx, gzipped */

/* gzip of src[0..n) (one member) into a malloc'd buffer; *out_n its size. */
static unsigned char *gzip_bytes(const unsigned char *src, size_t n, size_t *out_n) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return NULL;
    uLong cap = deflateBound(&zs, (uLong)n);
    unsigned char *out = malloc(cap);
    zs.next_in = (unsigned char *)src;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    int r = deflate(&zs, Z_FINISH);
    *out_n = zs.total_out;
    deflateEnd(&zs);
    if (r != Z_STREAM_END) {
        free(out);
        return NULL;
    }
    return out;
}

/* A plain u8 IDX file of shape (rows, cols), element i = (i * 31 + i / 7) % 256. */
static unsigned char *idx_u8(uint32_t rows, uint32_t cols, size_t *n) {
    size_t count = (size_t)rows * cols;
    *n = 12 + count;
    unsigned char *b = malloc(*n);
    const unsigned char h[12] = {0, 0, 0x08, 2, (unsigned char)(rows >> 24), (unsigned char)(rows >> 16),
                                 (unsigned char)(rows >> 8), (unsigned char)rows, (unsigned char)(cols >> 24),
                                 (unsigned char)(cols >> 16), (unsigned char)(cols >> 8), (unsigned char)cols};
    memcpy(b, h, 12);
    for (size_t i = 0; i < count; i++) b[12 + i] = (unsigned char)((i * 31 + i / 7) % 256);
    return b;
}

static loom_status gz_parse(const unsigned char *gz, size_t n, loom_ndarray *a) {
    errbuf[0] = '\0';
    return parse_copy(idx_fn, gz, n, a);
}

static void expect_gz_error(const unsigned char *gz, size_t n, const char *msg) {
    loom_ndarray a;
    CHECK_STATUS(gz_parse(gz, n, &a), LOOM_ERR_DATA);
    CHECK(is_empty(&a));
    if (!contains(errbuf, msg)) {
        fprintf(stderr, "  gzip case: message \"%s\" lacks \"%s\"\n", errbuf, msg);
        CHECK(0);
    }
}

static void test_idx_gzip(void) {
    /* the sample made by Python's gzip module reads as its plain twin */
    loom_ndarray a, plain;
    CHECK_STATUS(loom_idx_load(data_path("u8.idx.gz"), &a, errbuf, sizeof errbuf), LOOM_OK);
    CHECK_STATUS(loom_idx_load(data_path("u8.idx"), &plain, errbuf, sizeof errbuf), LOOM_OK);
    CHECK(a.rank == 3 && a.dims[0] == 2 && a.dims[1] == 2 && a.dims[2] == 3 && a.size == 12);
    for (size_t i = 0; i < a.size && a.data; i++) CHECK(a.data[i] == (float)(i * 23 % 256));
    CHECK(a.size == plain.size && a.data && plain.data && memcmp(a.data, plain.data, a.size * sizeof(float)) == 0);
    loom_ndarray_free(&a);
    loom_ndarray_free(&plain);

    /* 3 MB of data: the output buffer grows several times past its first megabyte */
    size_t n, gn;
    unsigned char *raw = idx_u8(3000, 1000, &n);
    unsigned char *gz = gzip_bytes(raw, n, &gn);
    CHECK(gz != NULL);
    if (!gz) {
        free(raw);
        return;
    }
    CHECK_STATUS(gz_parse(gz, gn, &a), LOOM_OK);
    CHECK(a.rank == 2 && a.dims[0] == 3000 && a.dims[1] == 1000 && a.size == 3000000);
    int wrong = 0;
    for (size_t i = 0; i < a.size && a.data; i++) wrong += a.data[i] != (float)((i * 31 + i / 7) % 256);
    CHECK(wrong == 0);
    loom_ndarray_free(&a);

    /* the CRC-32 trailer is checked: a flipped CRC byte, and a flipped size byte */
    gz[gn - 6] ^= 0x40;
    expect_gz_error(gz, gn, "incorrect data check");
    gz[gn - 6] ^= 0x40;
    gz[gn - 2] ^= 0x01;
    expect_gz_error(gz, gn, "incorrect length check");
    gz[gn - 2] ^= 0x01;
    /* cut anywhere: the trailer is missing */
    expect_gz_error(gz, gn - 1, "truncated");
    expect_gz_error(gz, gn / 2, "truncated");
    expect_gz_error(gz, 10, "truncated");
    free(gz);

    /* two members one after another (cat a.gz b.gz) read as the joined file, as gunzip does */
    size_t g1, g2;
    unsigned char *m1 = gzip_bytes(raw, 1000, &g1), *m2 = gzip_bytes(raw + 1000, n - 1000, &g2);
    unsigned char *both = malloc(g1 + g2 + 3);
    memcpy(both, m1, g1);
    memcpy(both + g1, m2, g2);
    CHECK_STATUS(gz_parse(both, g1 + g2, &a), LOOM_OK);
    CHECK(a.size == 3000000 && a.data && a.data[2999999] == (float)((2999999ull * 31 + 2999999 / 7) % 256));
    loom_ndarray_free(&a);
    /* but bytes after the last member that are not a member are refused */
    memcpy(both + g1 + g2, "xyz", 3);
    expect_gz_error(both, g1 + g2 + 3, "3 bytes after the end of the gzip data");
    free(m1);
    free(m2);
    free(both);

    /* the decompressed file obeys every plain IDX rule; the sizes come from the IDX header */
    struct { size_t cut; int extra; const char *msg; } sizes[] = {
        {n - 1, 0, "truncated IDX data: the dimensions need 3000000 data bytes, the gzip data holds 2999999"},
        {n, 1, "trailing bytes after the IDX data"},
        {7, 0, "truncated IDX header: 7 bytes, 12 needed"},
        {3, 0, "too short for an IDX header"},
    };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        unsigned char *r = malloc(sizes[k].cut + 1);
        memcpy(r, raw, sizes[k].cut);
        r[sizes[k].cut] = 0x55;
        gz = gzip_bytes(r, sizes[k].cut + (size_t)sizes[k].extra, &gn);
        expect_gz_error(gz, gn, sizes[k].msg);
        free(gz);
        free(r);
    }
    unsigned char bad_type[12] = {0, 0, 0x0A, 1, 0, 0, 0, 1, 7};
    gz = gzip_bytes(bad_type, 9, &gn);
    expect_gz_error(gz, gn, "type code 0x0A");
    free(gz);
    unsigned char bad_rank[4] = {0, 0, 0x08, 9};
    gz = gzip_bytes(bad_rank, 4, &gn);
    expect_gz_error(gz, gn, "rank 9");
    free(gz);
    /* a header declaring 4 GB in a stream of a few dozen bytes: refused as truncated without
     * allocating the declared size (the buffer grows with what the stream produces) */
    unsigned char huge[16] = {0, 0, 0x08, 2, 0, 0, 0x80, 0, 0, 0, 0x7f, 0xff, 1, 2, 3, 4};
    gz = gzip_bytes(huge, 16, &gn);
    expect_gz_error(gz, gn, "the dimensions need 1073709056 data bytes, the gzip data holds 4");
    free(gz);
    /* a gzipped gzip is not an IDX file */
    unsigned char *inner = gzip_bytes(raw, 100, &g1);
    gz = gzip_bytes(inner, g1, &gn);
    expect_gz_error(gz, gn, "not an IDX file (magic starts with 1f 8b");
    free(gz);
    free(inner);
    /* zlib's own complaints are passed on */
    unsigned char not_deflate[12] = {0x1f, 0x8b, 7, 0, 0, 0, 0, 0, 0, 3, 0, 0};
    expect_gz_error(not_deflate, 12, "corrupt gzip data (unknown compression method)");
    /* and a missing file still says so, with the path */
    CHECK_STATUS(loom_idx_load(data_path("absent.idx.gz"), &a, errbuf, sizeof errbuf), LOOM_ERR_IO);
    CHECK(contains(errbuf, "absent.idx.gz") && is_empty(&a));
    free(raw);
}

/* ---------------------------------------------------------------- csv */

static loom_csv *csv_str(const char *text, int has_header, char delim) {
    return loom_csv_parse(text, strlen(text), "t.csv", has_header, delim, errbuf, sizeof errbuf);
}

static void test_csv(void) {
    loom_csv *c = loom_csv_read(data_path("sample.csv"), 1, 0, errbuf, sizeof errbuf);
    CHECK(c != NULL);
    if (!c) return;
    CHECK(loom_csv_rows(c) == 3 && loom_csv_cols(c) == 3);
    CHECK(strcmp(loom_csv_column_name(c, 1), "b \"quoted\"") == 0);
    CHECK(loom_csv_column_index(c, "c") == 2 && loom_csv_column_index(c, "d") == -1);
    CHECK(loom_csv_column_name(c, 3) == NULL);
    float out[6] = {0};
    const char *ab[2] = {"a", "b \"quoted\""};
    CHECK_STATUS(loom_csv_select(c, 2, ab, out, errbuf, sizeof errbuf), LOOM_OK);
    const float want[6] = {1, 2, 4.5f, -0.5f, 7, 8};
    for (int i = 0; i < 6; i++) CHECK(out[i] == want[i]);
    /* the NA in column c is on file line 3; out stays untouched on error */
    float out2[6] = {-7, -7, -7, -7, -7, -7};
    const char *ca[2] = {"c", "a"};
    CHECK_STATUS(loom_csv_select(c, 2, ca, out2, errbuf, sizeof errbuf), LOOM_ERR_DATA);
    CHECK(contains(errbuf, "sample.csv") && contains(errbuf, "line 3") && contains(errbuf, "'c'") &&
          contains(errbuf, "missing"));
    CHECK(out2[0] == -7 && out2[5] == -7);
    const char *bad[1] = {"nope"};
    CHECK_STATUS(loom_csv_select(c, 1, bad, out, errbuf, sizeof errbuf), LOOM_ERR_NAME);
    CHECK(contains(errbuf, "'nope'") && contains(errbuf, "'a'") && contains(errbuf, "'c'"));
    loom_csv_free(c);

    /* missing values of every spelling, on the right lines (blank lines still count) */
    c = csv_str("x,y\n1,2\n\n3,\n4,NA\n5,NaN\n6,nan\n7,\"\"\n", 1, 0);
    CHECK(c && loom_csv_rows(c) == 6);
    const char *y[1] = {"y"}, *x[1] = {"x"};
    CHECK_STATUS(loom_csv_select(c, 1, y, out, errbuf, sizeof errbuf), LOOM_ERR_DATA);
    CHECK(contains(errbuf, "line 4,"));
    CHECK_STATUS(loom_csv_select(c, 1, x, out, errbuf, sizeof errbuf), LOOM_OK);
    CHECK(out[0] == 1 && out[5] == 7);
    loom_csv_free(c);

    /* ragged rows name the line and both counts */
    CHECK(csv_str("a,b\n1,2\n3\n", 1, 0) == NULL);
    CHECK(contains(errbuf, "line 3 has 1 fields, expected 2"));
    CHECK(csv_str("a,b\n1,2\n3,4,5\n", 1, 0) == NULL);
    CHECK(contains(errbuf, "line 3 has 3 fields, expected 2"));
    CHECK(csv_str("1,2\n3,4,5\n", 0, 0) == NULL);
    CHECK(contains(errbuf, "line 2 has 3 fields, expected 2 (as in the first row)"));
    /* non-numeric text names line, column and text */
    CHECK(csv_str("a,b\r\n1,2\r\n3,abc\r\n", 1, 0) == NULL);
    CHECK(contains(errbuf, "line 3, column 2 ('b')") && contains(errbuf, "\"abc\""));
    CHECK(csv_str("1,0x10\n", 0, 0) == NULL);
    CHECK(contains(errbuf, "line 1, column 2") && contains(errbuf, "0x10"));
    /* "inf" and 1e999 are the same thing: read as infinities, refused (line, column) when selected */
    c = csv_str("a,b\n1,1e999\n2,-inf\n3,4\n", 1, 0);
    CHECK(c && loom_csv_rows(c) == 3);
    if (c) {
        const char *cb[1] = {"b"}, *ca[1] = {"a"};
        CHECK_STATUS(loom_csv_select(c, 1, cb, out, errbuf, sizeof errbuf), LOOM_ERR_DATA);
        CHECK(contains(errbuf, "line 2, column 'b'") && contains(errbuf, "+inf"));
        CHECK_STATUS(loom_csv_select(c, 1, ca, out, errbuf, sizeof errbuf), LOOM_OK);
    }
    loom_csv_free(c);
    c = csv_str("a,b\n1,inf\n", 1, 0);
    if (c) {
        const char *cb[1] = {"b"};
        CHECK_STATUS(loom_csv_select(c, 1, cb, out, errbuf, sizeof errbuf), LOOM_ERR_DATA);
        CHECK(contains(errbuf, "line 2, column 'b'") && contains(errbuf, "+inf"));
    }
    loom_csv_free(c);
    /* a newline inside a quoted header name moves the following line numbers */
    CHECK(csv_str("\"a\nb\",c\n1,2\n3,x\n", 1, 0) == NULL);
    CHECK(contains(errbuf, "line 4"));
    CHECK(csv_str("a,b\n1,\"2\n", 1, 0) == NULL);
    CHECK(contains(errbuf, "line 2: quoted field is never closed"));
    CHECK(csv_str("a,b\n1,\"2\"x\n", 1, 0) == NULL);
    CHECK(contains(errbuf, "after a closing quote"));
    CHECK(csv_str("a,a\n1,2\n", 1, 0) == NULL);
    CHECK(contains(errbuf, "'a' appears twice"));
    CHECK(csv_str("", 1, 0) == NULL);
    CHECK(contains(errbuf, "no header"));
    CHECK(csv_str("\n\r\n", 0, 0) == NULL);

    /* with or without a final newline, \n or \r\n, spaces around fields, other delimiters */
    const char *same[] = {"a;b\n1;2\n3; 4.5 ", "a;b\r\n1;2\r\n3;4.5\r\n", ("\xEF\xBB\xBF" "a ; \"b\"\n\n1;2\n3;4.5\n\n")};
    for (int i = 0; i < 3; i++) {
        c = csv_str(same[i], 1, ';');
        CHECK(c && loom_csv_rows(c) == 2 && loom_csv_cols(c) == 2);
        const char *ba[2] = {"b", "a"};
        if (c) {
            CHECK_STATUS(loom_csv_select(c, 2, ba, out, errbuf, sizeof errbuf), LOOM_OK);
            CHECK(out[0] == 2 && out[1] == 1 && out[2] == 4.5f && out[3] == 3);
        }
        loom_csv_free(c);
    }
    c = csv_str("1\t-2e3\n+inf\t.5\n", 0, '\t');
    CHECK(c && loom_csv_rows(c) == 2 && loom_csv_cols(c) == 2);
    CHECK(c && strcmp(loom_csv_column_name(c, 0), "") == 0 && loom_csv_column_index(c, "") == -1);
    CHECK_STATUS(loom_csv_select(c, 1, x, out, errbuf, sizeof errbuf), LOOM_ERR_NAME);
    CHECK(contains(errbuf, "no header row"));
    loom_csv_free(c);
    c = csv_str("a,b\n", 1, 0);
    CHECK(c && loom_csv_rows(c) == 0 && loom_csv_cols(c) == 2);
    loom_csv_free(c);

    /* every prefix of a tricky text: a table or an error, never a crash */
    const char *tricky = "\"a\"\"x\",b\r\n1,\"2\"\r\n\r\n\"3\n\",NA\n5 , 6\n";
    for (size_t cut = 0; cut <= strlen(tricky); cut++) {
        char *t = malloc(cut ? cut : 1);
        memcpy(t, tricky, cut);
        c = loom_csv_parse(t, cut, "t.csv", 1, 0, errbuf, sizeof errbuf);
        if (c) CHECK(loom_csv_cols(c) >= 1);
        loom_csv_free(c);
        free(t);
    }
}

int main(void) {
    test_npy_dtypes();
    test_npy_shapes();
    test_npy_refused();
    test_npy_headers();
    test_truncation_and_corruption();
    test_npz();
    test_npz_hostile();
    test_idx();
    test_idx_gzip();
    test_csv();
    return check_report("test_loaders");
}
