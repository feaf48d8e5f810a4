/* npy.c — NumPy .npy reader (format versions 1.0, 2.0 and 3.0).
 *
 * Layout: "\x93NUMPY", major, minor, header length (uint16 LE in 1.0, uint32 LE in 2.0/3.0), then
 * the header: a Python dict literal such as
 *     {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces and ended by '\n', then the raw elements in C order.
 *
 * The dict is parsed by a small strict grammar, not a Python evaluator: exactly the three keys,
 * each once, string / bool / tuple-of-ints values, and nothing else. Anything else is refused with
 * a message saying where the header stopped making sense. */
#include "io/loaders.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct hdr_parser {
    const char *s, *end;
    const char *what;
    char *err;
    size_t errlen;
} hdr_parser;

static loom_status hdr_fail(hdr_parser *p, const char *expected) {
    /* Show a few characters of where parsing stopped; header bytes may be anything, so only
     * printable ASCII is copied into the message. */
    char near[24];
    size_t k = 0;
    for (const char *c = p->s; c < p->end && k + 1 < sizeof near; c++)
        near[k++] = (*c >= 32 && *c < 127) ? *c : '?';
    near[k] = '\0';
    return loom_ld_fail(p->err, p->errlen, LOOM_ERR_DATA, "%s: malformed .npy header: expected %s at \"%s\"",
                        p->what, expected, k ? near : "<end of header>");
}

static void skip_ws(hdr_parser *p) {
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')) p->s++;
}

static int accept(hdr_parser *p, char c) {
    skip_ws(p);
    if (p->s < p->end && *p->s == c) {
        p->s++;
        return 1;
    }
    return 0;
}

/* A quoted string without escapes (npy never needs them) into out (cap bytes). */
static loom_status parse_string(hdr_parser *p, char *out, size_t cap) {
    skip_ws(p);
    if (p->s >= p->end || (*p->s != '\'' && *p->s != '"')) return hdr_fail(p, "a quoted string");
    char q = *p->s++;
    size_t n = 0;
    while (p->s < p->end && *p->s != q) {
        unsigned char c = (unsigned char)*p->s;
        if (c == '\\' || c < 32 || c >= 127) return hdr_fail(p, "a plain ASCII string without escapes");
        if (n + 1 >= cap) return hdr_fail(p, "a shorter string");
        out[n++] = (char)c;
        p->s++;
    }
    if (p->s >= p->end) return hdr_fail(p, "a closing quote");
    p->s++;
    out[n] = '\0';
    return LOOM_OK;
}

static loom_status parse_bool(hdr_parser *p, int *v) {
    skip_ws(p);
    size_t left = (size_t)(p->end - p->s);
    if (left >= 4 && memcmp(p->s, "True", 4) == 0) {
        p->s += 4;
        *v = 1;
        return LOOM_OK;
    }
    if (left >= 5 && memcmp(p->s, "False", 5) == 0) {
        p->s += 5;
        *v = 0;
        return LOOM_OK;
    }
    return hdr_fail(p, "True or False");
}

/* A non-negative decimal integer; Python 2 wrote a trailing 'L' on longs, which numpy accepts. */
static loom_status parse_uint(hdr_parser *p, uint64_t *v) {
    skip_ws(p);
    if (p->s >= p->end || *p->s < '0' || *p->s > '9') return hdr_fail(p, "a non-negative integer");
    uint64_t x = 0;
    while (p->s < p->end && *p->s >= '0' && *p->s <= '9') {
        unsigned d = (unsigned)(*p->s - '0');
        if (x > (UINT64_MAX - d) / 10) return hdr_fail(p, "an integer that fits in 64 bits");
        x = x * 10 + d;
        p->s++;
    }
    if (p->s < p->end && *p->s == 'L') p->s++;
    *v = x;
    return LOOM_OK;
}

/* "()", "(n,)", "(n, m)", "(n, m,)": a one-element tuple needs its comma, as in Python. */
static loom_status parse_shape(hdr_parser *p, int *rank, uint64_t *dims) {
    if (!accept(p, '(')) return hdr_fail(p, "'(' opening the shape tuple");
    *rank = 0;
    if (accept(p, ')')) return LOOM_OK;
    for (;;) {
        if (*rank == LOOM_NDARRAY_MAX_RANK)
            return loom_ld_fail(p->err, p->errlen, LOOM_ERR_DATA, "%s: shape has more than %d dimensions",
                                p->what, LOOM_NDARRAY_MAX_RANK);
        loom_status s = parse_uint(p, &dims[(*rank)++]);
        if (s) return s;
        if (accept(p, ')')) {
            if (*rank == 1) return hdr_fail(p, "',' after the only dimension (a 1-tuple)");
            return LOOM_OK;
        }
        if (!accept(p, ',')) return hdr_fail(p, "',' or ')' in the shape tuple");
        if (accept(p, ')')) return LOOM_OK;
    }
}

typedef struct npy_dtype {
    loom_ld_type type;
    int big_endian;
} npy_dtype;

static int host_big_endian(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 0;
}

static loom_status parse_descr(const char *d, const char *what, npy_dtype *out, char *err, size_t errlen) {
    char order = d[0];
    if (order != '<' && order != '>' && order != '|' && order != '=')
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: dtype '%s' has no byte-order character", what, d);
    char kind = d[1];
    if (kind == 'O')
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA,
                            "%s: dtype '%s' is an object array (pickled Python objects), which cannot be loaded",
                            what, d);
    if (kind == '\0' || d[2] < '1' || d[2] > '8' || d[3] != '\0')
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: unsupported dtype '%s'", what, d);
    int size = d[2] - '0';
    static const struct { char kind; int size; loom_ld_type type; } known[] = {
        {'f', 4, LOOM_LD_F32}, {'f', 8, LOOM_LD_F64}, {'i', 1, LOOM_LD_I8},  {'i', 2, LOOM_LD_I16},
        {'i', 4, LOOM_LD_I32}, {'i', 8, LOOM_LD_I64}, {'u', 1, LOOM_LD_U8},  {'u', 2, LOOM_LD_U16},
        {'u', 4, LOOM_LD_U32}, {'u', 8, LOOM_LD_U64}, {'b', 1, LOOM_LD_BOOL},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (known[i].kind != kind || known[i].size != size) continue;
        out->type = known[i].type;
        /* '|' (not applicable) and '=' (native) both mean host order for multi-byte types. */
        out->big_endian = order == '>' || ((order == '|' || order == '=') && host_big_endian());
        return LOOM_OK;
    }
    return loom_ld_fail(err, errlen, LOOM_ERR_DATA,
                        "%s: unsupported dtype '%s' (float32/64, int8-64, uint8-64 and bool are)", what, d);
}

loom_status loom_npy_parse(const void *buf, size_t len, const char *what, loom_ndarray *out, char *err,
                           size_t errlen) {
    return loom_npy_parse_member(buf, len, what, 0, out, err, errlen);
}

loom_status loom_npy_parse_member(const void *buf, size_t len, const char *what, uint64_t compressed, loom_ndarray *out,
                                  char *err, size_t errlen) {
    if (!what) what = "<npy buffer>";
    if (!out) return loom_ld_fail(err, errlen, LOOM_ERR_ARGUMENT, "%s: output array is NULL", what);
    memset(out, 0, sizeof *out);
    if (!buf && len) return loom_ld_fail(err, errlen, LOOM_ERR_ARGUMENT, "%s: buffer is NULL", what);
    if (err && errlen) err[0] = '\0';
    const unsigned char *b = buf;

    if (len < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: not a .npy file (no \\x93NUMPY magic)", what);
    int major = b[6], minor = b[7];
    size_t prefix, hlen;
    if (major == 1 && minor == 0) {
        prefix = 10;
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
    } else if ((major == 2 || major == 3) && minor == 0) {
        if (len < 12)
            return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: truncated .npy %d.0 preamble", what, major);
        prefix = 12;
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
    } else {
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: unsupported .npy format version %d.%d", what, major,
                            minor);
    }
    if (hlen > len - prefix)
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA,
                            "%s: truncated .npy header: %zu header bytes declared, %zu present", what, hlen,
                            len - prefix);

    /* Version 3.0 only differs by allowing UTF-8 in the header; the keys and values loom accepts
     * are all ASCII, so one parser serves every version and non-ASCII bytes fail it cleanly. */
    hdr_parser p = {(const char *)b + prefix, (const char *)b + prefix + hlen, what, err, errlen};
    char descr[32] = "";
    int fortran = 0, rank = 0;
    uint64_t dims[LOOM_NDARRAY_MAX_RANK] = {0};
    int seen_descr = 0, seen_fortran = 0, seen_shape = 0;
    loom_status s;
    if (!accept(&p, '{')) return hdr_fail(&p, "'{' opening the header dict");
    while (!accept(&p, '}')) {
        char key[32];
        if ((s = parse_string(&p, key, sizeof key))) return s;
        if (!accept(&p, ':')) return hdr_fail(&p, "':' after a key");
        int *seen;
        if (strcmp(key, "descr") == 0) {
            seen = &seen_descr;
            skip_ws(&p);
            if (p.s < p.end && *p.s == '[')
                return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: structured dtypes are not supported", what);
            s = parse_string(&p, descr, sizeof descr);
        } else if (strcmp(key, "fortran_order") == 0) {
            seen = &seen_fortran;
            s = parse_bool(&p, &fortran);
        } else if (strcmp(key, "shape") == 0) {
            seen = &seen_shape;
            s = parse_shape(&p, &rank, dims);
        } else {
            return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: unexpected key '%s' in the .npy header", what,
                                key);
        }
        if (s) return s;
        if (*seen)
            return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: key '%s' appears twice in the .npy header", what,
                                key);
        *seen = 1;
        if (accept(&p, '}')) break;
        if (!accept(&p, ',')) return hdr_fail(&p, "',' or '}' after a value");
    }
    skip_ws(&p);
    if (p.s != p.end) return hdr_fail(&p, "only padding after the header dict");
    if (!seen_descr || !seen_fortran || !seen_shape)
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: .npy header lacks the key '%s'", what,
                            !seen_descr ? "descr" : !seen_fortran ? "fortran_order" : "shape");

    npy_dtype dt = {0};
    if ((s = parse_descr(descr, what, &dt, err, errlen))) return s;
    if (fortran)
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA,
                            "%s: Fortran-order arrays are not supported (save with np.ascontiguousarray)", what);

    /* Check the data length before allocating: the shape alone must not be able to ask for
     * memory the file does not back. */
    uint64_t count = 1, expected;
    for (int i = 0; i < rank; i++)
        if (!loom_ld_mul(count, dims[i], &count)) count = UINT64_MAX;
    size_t itemsize = loom_ld_type_size(dt.type);
    size_t actual = len - prefix - hlen;
    if (count == UINT64_MAX || !loom_ld_mul(count, itemsize, &expected))
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: shape is too large (over %llu bytes)", what,
                            (unsigned long long)LOOM_LOAD_MAX_BYTES);
    if (expected != actual)
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA, "%s: %s data: the shape needs %llu bytes, the file has %zu",
                            what, actual < expected ? "truncated" : "trailing bytes after the", 
                            (unsigned long long)expected, actual);
    uint64_t bound;
    if (compressed && (!loom_ld_mul(compressed + 128, LOOM_LD_MAX_RATIO, &bound) || count > bound / sizeof(float)))
        return loom_ld_fail(err, errlen, LOOM_ERR_DATA,
                            "%s: %llu compressed bytes would become %llu bytes of float32, over the %ux bound on "
                            "decompression that keeps a small archive from taking gigabytes",
                            what, (unsigned long long)compressed, (unsigned long long)count * sizeof(float),
                            LOOM_LD_MAX_RATIO);
    if ((s = loom_ld_ndarray_alloc(out, rank, dims, what, err, errlen))) return s;
    loom_ld_convert(out->data, b + prefix + hlen, out->size, dt.type, dt.big_endian);
    return LOOM_OK;
}

static loom_status parse_file(const void *buf, size_t len, const char *what, const char *member, loom_ndarray *out,
                              char *err, size_t errlen) {
    (void)member;
    return loom_npy_parse(buf, len, what, out, err, errlen);
}

loom_status loom_npy_load(const char *path, loom_ndarray *out, char *err, size_t errlen) {
    return loom_ld_load(path, parse_file, NULL, out, err, errlen);
}
