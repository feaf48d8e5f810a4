/* idx.c — IDX reader (the MNIST family of files).
 *
 * Layout: two zero bytes, a type code, a rank byte, then rank big-endian uint32 dimensions, then
 * the elements, big-endian, in C order. Type codes: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C
 * int32, 0x0D float32, 0x0E float64. */
#include "loaders.h"

#include <stdlib.h>
#include <string.h>

loom_status loom_idx_parse(const void *buf, size_t len, const char *what, loom_ndarray *out, char *err,
                           size_t errlen) {
    if (!what) what = "<idx buffer>";
    if (!out) return loom_ld_fail(err, errlen, LOOM_ERR_ARGUMENT, "%s: output array is NULL", what);
    memset(out, 0, sizeof *out);
    if (!buf && len) return loom_ld_fail(err, errlen, LOOM_ERR_ARGUMENT, "%s: buffer is NULL", what);
    if (err && errlen) err[0] = '\0';
    const unsigned char *b = buf;
    if (len < 4) return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: too short for an IDX header", what);
    if (b[0] == 0x1f && b[1] == 0x8b)
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: gzip-compressed; decompress it first (gunzip)", what);
    if (b[0] != 0 || b[1] != 0)
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA,
                            "%s: not an IDX file (magic starts with %02x %02x, expected 00 00)", what, b[0], b[1]);
    loom_ld_type type;
    switch (b[2]) {
    case 0x08: type = LOOM_LD_U8; break;
    case 0x09: type = LOOM_LD_I8; break;
    case 0x0B: type = LOOM_LD_I16; break;
    case 0x0C: type = LOOM_LD_I32; break;
    case 0x0D: type = LOOM_LD_F32; break;
    case 0x0E: type = LOOM_LD_F64; break;
    default:
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: unknown IDX type code 0x%02X", what, b[2]);
    }
    int rank = b[3];
    if (rank < 1 || rank > LOOM_NDARRAY_MAX_RANK)
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: IDX rank %d is outside 1..%d", what, rank,
                            LOOM_NDARRAY_MAX_RANK);
    size_t header = 4 + 4 * (size_t)rank;
    if (len < header)
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: truncated IDX header: %zu bytes, %zu needed", what,
                            len, header);
    uint64_t dims[LOOM_NDARRAY_MAX_RANK], count = 1;
    int too_big = 0;
    for (int i = 0; i < rank; i++) {
        const unsigned char *p = b + 4 + 4 * i;
        dims[i] = (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3];
        if (!loom_ld_mul(count, dims[i], &count)) too_big = 1;
    }
    uint64_t expected;
    if (too_big || !loom_ld_mul(count, loom_ld_type_size(type), &expected))
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: IDX dimensions are too large (over %llu bytes)", what,
                            (unsigned long long)LOOM_LOAD_MAX_BYTES);
    size_t actual = len - header;
    if (expected != actual)
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: %s: the dimensions need %llu data bytes, the file has %zu",
                            what, actual < expected ? "truncated IDX data" : "trailing bytes after the IDX data",
                            (unsigned long long)expected, actual);
    loom_status s = loom_ld_ndarray_alloc(out, rank, dims, what, err, errlen);
    if (s) return s;
    loom_ld_convert(out->data, b + header, out->size, type, 1);
    return LOOM_OK;
}

loom_status loom_idx_load(const char *path, loom_ndarray *out, char *err, size_t errlen) {
    if (!out) return loom_ld_fail(err, errlen, LOOM_ERR_ARGUMENT, "output array is NULL");
    memset(out, 0, sizeof *out);
    unsigned char *buf;
    size_t len;
    loom_status s = loom_ld_read_file(path, LOOM_LOAD_MAX_BYTES, &buf, &len, err, errlen);
    if (s) return s;
    s = loom_idx_parse(buf, len, path, out, err, errlen);
    free(buf);
    return s;
}
