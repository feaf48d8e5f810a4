/* test_resource_limits.c — untrusted input cannot make loom spend time or memory out of proportion:
 * long layer chains build, save and load in time proportional to their length (they were about
 * cubic: 4,000 layers in reverse order took 46 s), an .npz member cannot grow past 1032 times its
 * compressed size, and readers refuse devices and other non-regular files (/dev/zero was read
 * toward 4 GiB, or for ever). */
#include "check.h"
#include "loom.h"
#include "model_forge.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

static bool has(const char *msg, const char *part) {
    bool ok = strstr(msg, part) != NULL;
    if (!ok) fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", msg, part);
    return ok;
}

static double cpu_seconds(void) { return (double)clock() / CLOCKS_PER_SEC; }

/* ---------------------------------------------------------------- long chains */

/* Builds a chain of n layers through the API with generated names (an Input, then Dense and
 * Activation layers in turn), saves it, loads it back; returns the CPU seconds. */
static double api_chain(int n, const char *path) {
    double t0 = cpu_seconds();
    loom_graph *g = loom_graph_new(7);
    const int four[1] = {4};
    loom_tensor *x = loom_input(g, NULL, 1, four), *y = x;
    for (int i = 1; i < n; i++)
        y = loom_call(i % 2 ? loom_dense(g, NULL, 4, LOOM_LINEAR, NULL) : loom_activation_layer(g, NULL, LOOM_TANH), y);
    loom_model *m = loom_model_new(g, 1, &x, 1, &y);
    CHECK(m != NULL);
    if (!m) {
        fprintf(stderr, "  %s\n", loom_graph_error(g));
        loom_graph_free(g);
        return 0;
    }
    /* the generated names continue Keras's pattern however long the chain: the last of n / 2
     * Dense layers (n even) is dense_<n/2 - 1> */
    char last[32];
    snprintf(last, sizeof last, "dense_%d", n / 2 - 1);
    CHECK(n % 2 || strcmp(loom_layer_name(loom_tensor_layer(y)), last) == 0);
    CHECK_STATUS(loom_model_save(m, path), LOOM_OK);
    char err[512];
    loom_model *r = loom_model_load(path, err, sizeof err);
    CHECK(r != NULL && loom_param_count(r) == loom_param_count(m));
    if (!r) fprintf(stderr, "  %s\n", err);
    loom_model_free(r);
    loom_model_free(m);
    return cpu_seconds() - t0;
}

/* A chain of n Activation layers written by hand, listed in REVERSE call order and without
 * loom_node_order (as another writer may): loading must find the order itself. */
static char *reversed_chain(int n) {
    size_t cap = 512 + 300 * (size_t)n;
    char *s = malloc(cap);
    size_t at = (size_t)snprintf(s, cap, "{\"class_name\": \"Functional\", \"config\": {\"layers\": [");
    for (int i = n - 1; i >= 1; i--)
        at += (size_t)snprintf(s + at, cap - at,
                               "{\"class_name\": \"Activation\", \"name\": \"a%d\", \"config\": {\"activation\": \"relu\"}, "
                               "\"inbound_nodes\": [{\"args\": [{\"config\": {\"keras_history\": [\"a%d\", 0, 0]}}]}]},",
                               i, i - 1);
    snprintf(s + at, cap - at,
             "{\"class_name\": \"InputLayer\", \"name\": \"a0\", \"config\": {\"batch_shape\": [null, 3]}}], "
             "\"input_layers\": [[\"a0\", 0, 0]], \"output_layers\": [[\"a%d\", 0, 0]]}}",
             n - 1);
    return s;
}

static double reversed_load(int n) {
    char *arch = reversed_chain(n);
    size_t size;
    unsigned char *f = loom_file(arch, 0, &size);
    double t0 = cpu_seconds();
    char err[512];
    loom_model *m = loom_model_parse(f, size, "reversed.loom", err, sizeof err);
    double t = cpu_seconds() - t0;
    CHECK(m != NULL);
    if (m) { /* the order found is the chain's (and planning it is O(n log n) too) */
        float in[3] = {-1, 0.5f, 2}, out[3];
        loom_array xa = {.name = "a0", .data = in, .n = 1, .count = 3};
        float *outs[1] = {out};
        CHECK_STATUS(loom_predict(m, 1, &xa, 1, outs), LOOM_OK);
        CHECK(out[0] == 0 && out[1] == 0.5f && out[2] == 2);
    } else if (!m) {
        fprintf(stderr, "  %s\n", err);
    }
    loom_model_free(m);
    free(f);
    free(arch);
    return t;
}

/* The bound: linear growth would take 100x the time of a 1,000-layer chain for 100,000 layers;
 * allow 20x that for n log n terms, caches and the allocator (measured: about 4x in all);
 * quadratic growth would take 10,000x, cubic 10^6 x. The
 * small chain is timed several times and the fastest kept, so a busy machine does not shrink
 * the bound; the large one, timed once, can only look slower, never faster, on a busy machine. */
static void test_long_chains(void) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/loom_chain_%ld.loom", (long)getpid());
    double small = 1e9;
    for (int k = 0; k < 5; k++) {
        double t = api_chain(1000, path);
        if (t < small) small = t;
    }
    double big = api_chain(100000, path);
    fprintf(stderr, "  100,000 layers built, saved, loaded: %.2f s (1,000: %.4f s, bound %.2f s)\n", big, small,
            2000 * small + 0.5);
    CHECK(big < 2000 * small + 0.5);
    unlink(path);

    double rsmall = 1e9;
    for (int k = 0; k < 5; k++) {
        double t = reversed_load(1000);
        if (t < rsmall) rsmall = t;
    }
    double rbig = reversed_load(100000);
    fprintf(stderr, "  100,000 layers in reverse order loaded: %.2f s (1,000: %.4f s, bound %.2f s)\n", rbig, rsmall,
            2000 * rsmall + 0.5);
    CHECK(rbig < 2000 * rsmall + 0.5);
}

/* ---------------------------------------------------------------- selecting CSV columns by name */

static void test_csv_select(void) {
    const int cols = 200000;
    size_t cap = (size_t)cols * 16 + 64;
    char *text = malloc(cap);
    size_t at = 0;
    for (int c = 0; c < cols; c++) at += (size_t)snprintf(text + at, cap - at, "%sc%d", c ? "," : "", c);
    at += (size_t)snprintf(text + at, cap - at, "\n");
    for (int c = 0; c < cols; c++) at += (size_t)snprintf(text + at, cap - at, "%s%d", c ? "," : "", c % 7);
    snprintf(text + at, cap - at, "\n");
    char err[256];
    loom_csv *csv = loom_csv_parse(text, strlen(text), "wide.csv", 1, ',', err, sizeof err);
    CHECK(csv != NULL);
    char (*names)[16] = malloc((size_t)cols * sizeof *names);
    const char **sel = malloc((size_t)cols * sizeof *sel);
    float *out = malloc((size_t)cols * sizeof *out);
    for (int c = 0; c < cols; c++) {
        snprintf(names[c], sizeof names[c], "c%d", cols - 1 - c); /* every column, last first */
        sel[c] = names[c];
    }
    double t0 = cpu_seconds();
    CHECK_STATUS(loom_csv_select(csv, cols, sel, out, err, sizeof err), LOOM_OK);
    double t = cpu_seconds() - t0;
    bool right = true;
    for (int c = 0; c < cols; c++) right = right && out[c] == (float)((cols - 1 - c) % 7);
    CHECK(right);
    /* a scan per name took minutes for 10^6 columns; by binary search 200,000 take milliseconds */
    CHECK(t < 2.0);
    CHECK(loom_csv_column_index(csv, "c0") == 0 && loom_csv_column_index(csv, "c199999") == 199999 &&
          loom_csv_column_index(csv, "c200000") == -1 && loom_csv_column_index(csv, "") == -1);
    loom_csv_free(csv);
    free(names);
    free(sel);
    free(out);
    free(text);
}

/* ---------------------------------------------------------------- decompression */

static void put16(unsigned char *p, unsigned v) { p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8); }

/* An .npz of one deflated member "x.npy": a (n,) array of dtype descr, all zero bytes. */
static unsigned char *npz_of_zeros(const char *descr, size_t itemsize, size_t n, size_t *len) {
    char header[128];
    int hl = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (%zu,), }", descr, n);
    size_t pad = 64 - (10 + (size_t)hl + 1) % 64;
    size_t hlen = (size_t)hl + pad + 1, usize = 10 + hlen + n * itemsize;
    unsigned char *npy = calloc(1, usize);
    memcpy(npy, "\x93NUMPY\x01\x00", 8);
    put16(npy + 8, (unsigned)hlen);
    memcpy(npy + 10, header, (size_t)hl);
    memset(npy + 10 + hl, ' ', pad);
    npy[10 + hlen - 1] = '\n';
    uLong crc = crc32(crc32(0L, Z_NULL, 0), npy, (uInt)usize);
    size_t ccap = compressBound((uLong)usize) + 64;
    unsigned char *comp = malloc(ccap);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    deflateInit2(&zs, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY);
    zs.next_in = npy, zs.avail_in = (uInt)usize, zs.next_out = comp, zs.avail_out = (uInt)ccap;
    deflate(&zs, Z_FINISH);
    size_t csize = zs.total_out;
    deflateEnd(&zs);
    free(npy);
    const char *name = "x.npy";
    size_t nl = strlen(name);
    *len = 30 + nl + csize + 46 + nl + 22;
    unsigned char *z = calloc(1, *len), *p = z;
    put32(p, 0x04034b50u), put16(p + 4, 20), put16(p + 8, 8), put32(p + 14, (uint32_t)crc);
    put32(p + 18, (uint32_t)csize), put32(p + 22, (uint32_t)usize), put16(p + 26, (unsigned)nl);
    memcpy(p + 30, name, nl);
    memcpy(p + 30 + nl, comp, csize);
    p += 30 + nl + csize;
    put32(p, 0x02014b50u), put16(p + 4, 20), put16(p + 6, 20), put16(p + 10, 8), put32(p + 16, (uint32_t)crc);
    put32(p + 20, (uint32_t)csize), put32(p + 24, (uint32_t)usize), put16(p + 28, (unsigned)nl);
    memcpy(p + 46, name, nl);
    p += 46 + nl;
    put32(p, 0x06054b50u), put16(p + 8, 1), put16(p + 10, 1), put32(p + 12, (uint32_t)(46 + nl));
    put32(p + 16, (uint32_t)(30 + nl + csize));
    free(comp);
    return z;
}

static void test_npz_ratio(void) {
    char err[512];
    loom_ndarray a;
    size_t len;
    /* 16 MB of uint8 zeros deflate to about 16 KB; as float32 they would be 64 MB: over 1032x */
    unsigned char *bomb = npz_of_zeros("|u1", 1, (size_t)16 << 20, &len);
    CHECK_STATUS(loom_npz_parse(bomb, len, "bomb.npz", "x", &a, err, sizeof err), LOOM_ERR_DATA);
    CHECK(has(err, "bomb.npz:x.npy") && has(err, "1032x bound on decompression"));
    loom_ndarray_free(&a);
    free(bomb);
    /* the same zeros as float32 stay within deflate's own ratio: loaded */
    unsigned char *fine = npz_of_zeros("<f4", 4, (size_t)1 << 20, &len);
    CHECK_STATUS(loom_npz_parse(fine, len, "fine.npz", "x", &a, err, sizeof err), LOOM_OK);
    CHECK(a.size == (size_t)1 << 20);
    loom_ndarray_free(&a);
    free(fine);
    /* small uint8 members (headers dominate) are fine too */
    unsigned char *small = npz_of_zeros("|u1", 1, 1000, &len);
    CHECK_STATUS(loom_npz_parse(small, len, "small.npz", "x", &a, err, sizeof err), LOOM_OK);
    loom_ndarray_free(&a);
    free(small);
}

/* ---------------------------------------------------------------- non-regular files */

static void test_non_regular(void) {
    char err[512];
    loom_ndarray a;
    const char *devices[3] = {"/dev/zero", "/dev/null", "/tmp"};
    for (int i = 0; i < 3; i++) {
        double t0 = cpu_seconds();
        CHECK_STATUS(loom_npy_load(devices[i], &a, err, sizeof err), LOOM_ERR_IO);
        CHECK(has(err, "not a regular file"));
        CHECK_STATUS(loom_npz_load(devices[i], "x", &a, err, sizeof err), LOOM_ERR_IO);
        CHECK_STATUS(loom_idx_load(devices[i], &a, err, sizeof err), LOOM_ERR_IO);
        CHECK(loom_csv_read(devices[i], 1, ',', err, sizeof err) == NULL && has(err, "not a regular file"));
        CHECK(loom_model_load(devices[i], err, sizeof err) == NULL && has(err, "not a regular file"));
        CHECK(cpu_seconds() - t0 < 1.0); /* /dev/zero was read toward 4 GiB */
    }
    /* a FIFO: refused at once, without waiting for a writer */
    char fifo[64];
    snprintf(fifo, sizeof fifo, "/tmp/loom_fifo_%ld", (long)getpid());
    if (mkfifo(fifo, 0600) == 0) {
        CHECK_STATUS(loom_npy_load(fifo, &a, err, sizeof err), LOOM_ERR_IO);
        CHECK(has(err, "not a regular file"));
        unlink(fifo);
    }
}

int main(void) {
    test_non_regular();
    test_npz_ratio();
    test_csv_select();
    test_long_chains();
    return check_report("test_resource_limits");
}
