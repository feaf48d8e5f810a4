/* keras_h5.c — HDF5 reading and writing for Keras's files (keras_h5.h). Files live in memory (the
 * core driver): read from a copy of the bytes, written into an image the caller stores. */
#include "io/keras_h5.h"

#include <stdlib.h>
#include <string.h>

static const unsigned char H5_MAGIC[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

bool loom_h5_signature(const void *data, size_t size) {
    return data && size >= 8 && memcmp(data, H5_MAGIC, 8) == 0;
}

#ifdef LOOM_HAVE_HDF5

#include <hdf5.h>

struct loom_h5 {
    hid_t file;
    char what[200];
};

/* HDF5 prints its error stack to stderr by default; the library never prints. */
static void quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

static loom_h5 *open_image(const void *data, size_t size, const char *what, bool create, loom_error *err) {
    quiet();
    loom_h5 *h = calloc(1, sizeof *h);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (!h || fapl < 0) {
        free(h);
        if (fapl >= 0) H5Pclose(fapl);
        loom_set_error(err, LOOM_ERR_MEMORY, "%s: out of memory", what);
        return NULL;
    }
    snprintf(h->what, sizeof h->what, "%s", what);
    /* in memory only: nothing is written to disk, and external files are never opened */
    H5Pset_fapl_core(fapl, 1 << 16, 0);
    if (!create) H5Pset_file_image(fapl, (void *)data, size);
    h->file = create ? H5Fcreate("loom-image.h5", H5F_ACC_TRUNC, H5P_DEFAULT, fapl)
                     : H5Fopen("loom-image.h5", H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (h->file < 0) {
        loom_set_error(err, LOOM_ERR_DATA, "%s: not a readable HDF5 file", what);
        free(h);
        return NULL;
    }
    return h;
}

loom_h5 *loom_h5_open_memory(const void *data, size_t size, const char *what, loom_error *err) {
    if (!loom_h5_signature(data, size)) {
        loom_set_error(err, LOOM_ERR_DATA, "%s: not an HDF5 file (no \\x89HDF signature)", what);
        return NULL;
    }
    return open_image(data, size, what, false, err);
}

loom_h5 *loom_h5_create_memory(const char *what, loom_error *err) { return open_image(NULL, 0, what, true, err); }

unsigned char *loom_h5_image(loom_h5 *h, size_t *size, loom_error *err) {
    H5Fflush(h->file, H5F_SCOPE_GLOBAL);
    ssize_t n = H5Fget_file_image(h->file, NULL, 0);
    unsigned char *buf = n > 0 ? malloc((size_t)n) : NULL;
    if (!buf || H5Fget_file_image(h->file, buf, (size_t)n) != n) {
        free(buf);
        loom_set_error(err, LOOM_ERR_IO, "%s: could not build the HDF5 file", h->what);
        return NULL;
    }
    *size = (size_t)n;
    return buf;
}

void loom_h5_close(loom_h5 *h) {
    if (!h) return;
    H5Fclose(h->file);
    free(h);
}

/* H5Lexists needs every parent to exist: walk the path. */
bool loom_h5_exists(loom_h5 *h, const char *path) {
    char buf[1024];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return false;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char c = buf[i];
        buf[i] = 0;
        htri_t e = H5Lexists(h->file, buf, H5P_DEFAULT);
        if (e <= 0) return false;
        /* only hard links: a soft or external link could point anywhere, even at another file */
        H5L_info_t li;
        if (H5Lget_info(h->file, buf, &li, H5P_DEFAULT) < 0 || li.type != H5L_TYPE_HARD) return false;
        if (H5Oexists_by_name(h->file, buf, H5P_DEFAULT) <= 0) return false;
        buf[i] = c;
    }
    return true;
}

int loom_h5_group_size(loom_h5 *h, const char *path) {
    if (!loom_h5_exists(h, path)) return -1;
    H5O_info_t info;
    if (H5Oget_info_by_name(h->file, path, &info, H5P_DEFAULT) < 0 || info.type != H5O_TYPE_GROUP) return -1;
    H5G_info_t g;
    if (H5Gget_info_by_name(h->file, path, &g, H5P_DEFAULT) < 0 || g.nlinks > (hsize_t)LOOM_H5_MAX_LIST) return -1;
    return (int)g.nlinks;
}

/* Opens attribute `attr` of object `obj`: >= 0, or -1 when absent, -2 on error. */
static hid_t open_attr(loom_h5 *h, const char *obj, const char *attr) {
    if (!loom_h5_exists(h, obj) && strcmp(obj, "/") != 0) return -1;
    htri_t e = H5Aexists_by_name(h->file, obj, attr, H5P_DEFAULT);
    if (e == 0) return -1;
    if (e < 0) return -2;
    hid_t a = H5Aopen_by_name(h->file, obj, attr, H5P_DEFAULT, H5P_DEFAULT);
    return a < 0 ? -2 : a;
}

/* Reads n strings of an opened attribute into malloc'd copies (each bounded). */
static int read_strings(hid_t a, char ***out, const char *what, const char *attr, loom_error *err) {
    *out = NULL;
    hid_t space = H5Aget_space(a), type = H5Aget_type(a);
    int count = -1;
    hssize_t np = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    if (np < 0 || np > LOOM_H5_MAX_LIST || type < 0) {
        loom_set_error(err, LOOM_ERR_DATA, "%s: attribute %s has a bad size", what, attr);
        goto done;
    }
    if (np == 0 || H5Tget_class(type) != H5T_STRING) {
        if (np == 0) count = 0; /* h5py writes an empty list as an empty float array */
        else loom_set_error(err, LOOM_ERR_DATA, "%s: attribute %s is not text", what, attr);
        goto done;
    }
    char **s = calloc((size_t)np, sizeof *s);
    if (!s) goto oom;
    bool ok = true;
    if (H5Tis_variable_str(type) > 0) {
        char **v = calloc((size_t)np, sizeof *v);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(type));
        if (!v || H5Aread(a, mt, v) < 0) ok = false;
        for (hssize_t i = 0; ok && i < np; i++) {
            size_t len = v[i] ? strnlen(v[i], LOOM_H5_MAX_STRING + 1) : 0;
            if (len > LOOM_H5_MAX_STRING || !(s[i] = malloc(len + 1))) ok = false;
            else {
                if (len) memcpy(s[i], v[i], len);
                s[i][len] = 0;
            }
        }
        if (v && ok) H5Dvlen_reclaim(mt, space, H5P_DEFAULT, v);
        H5Tclose(mt);
        free(v);
    } else {
        size_t w = H5Tget_size(type);
        if (w == 0 || w > LOOM_H5_MAX_STRING || (size_t)np > LOOM_H5_MAX_STRING / w) ok = false;
        char *raw = ok ? malloc((size_t)np * w) : NULL;
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, w);
        H5Tset_strpad(mt, H5T_STR_NULLPAD);
        if (!raw || H5Aread(a, mt, raw) < 0) ok = false;
        for (hssize_t i = 0; ok && i < np; i++) {
            const char *p = raw + (size_t)i * w;
            size_t len = strnlen(p, w);
            if (!(s[i] = malloc(len + 1))) ok = false;
            else {
                memcpy(s[i], p, len);
                s[i][len] = 0;
            }
        }
        H5Tclose(mt);
        free(raw);
    }
    if (!ok) {
        loom_h5_free_strings(s, (int)np);
        loom_set_error(err, LOOM_ERR_DATA, "%s: attribute %s cannot be read as text", what, attr);
        goto done;
    }
    *out = s;
    count = (int)np;
    goto done;
oom:
    loom_set_error(err, LOOM_ERR_MEMORY, "%s: out of memory", what);
done:
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    return count;
}

void loom_h5_free_strings(char **s, int n) {
    if (!s) return;
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
}

int loom_h5_attr_strings(loom_h5 *h, const char *obj, const char *attr, char ***out, loom_error *err) {
    *out = NULL;
    hid_t a = open_attr(h, obj, attr);
    if (a == -1) return 0;
    if (a < 0) {
        loom_set_error(err, LOOM_ERR_DATA, "%s: attribute %s of %s cannot be opened", h->what, attr, obj);
        return -1;
    }
    int n = read_strings(a, out, h->what, attr, err);
    H5Aclose(a);
    return n;
}

char *loom_h5_attr_string(loom_h5 *h, const char *obj, const char *attr, loom_error *err) {
    char **s = NULL;
    int n = loom_h5_attr_strings(h, obj, attr, &s, err);
    if (n <= 0) return NULL;
    char *r = s[0];
    s[0] = NULL;
    loom_h5_free_strings(s, n);
    return r;
}

int loom_h5_dataset_shape(loom_h5 *h, const char *path, int max_rank, size_t *dims, loom_error *err) {
    if (!loom_h5_exists(h, path)) {
        loom_set_error(err, LOOM_ERR_DATA, "%s: dataset %s is missing", h->what, path);
        return -1;
    }
    hid_t d = H5Dopen2(h->file, path, H5P_DEFAULT);
    if (d < 0) {
        loom_set_error(err, LOOM_ERR_DATA, "%s: %s is not a dataset", h->what, path);
        return -1;
    }
    hid_t space = H5Dget_space(d), type = H5Dget_type(d);
    int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    H5T_class_t cls = type >= 0 ? H5Tget_class(type) : H5T_NO_CLASS;
    if (rank < 0 || rank > max_rank || (cls != H5T_FLOAT && cls != H5T_INTEGER)) {
        loom_set_error(err, LOOM_ERR_DATA, "%s: dataset %s is not a numeric array of rank <= %d", h->what, path, max_rank);
        rank = -1;
    } else {
        hsize_t hd[32];
        H5Sget_simple_extent_dims(space, hd, NULL);
        for (int i = 0; i < rank; i++) dims[i] = (size_t)hd[i];
    }
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    H5Dclose(d);
    return rank;
}

loom_status loom_h5_read_floats(loom_h5 *h, const char *path, int rank, const int *dims, float *out,
                                loom_error *err) {
    size_t fd[8];
    int r = loom_h5_dataset_shape(h, path, 8, fd, err);
    if (r < 0) return err->code;
    bool same = r == rank;
    for (int i = 0; same && i < rank; i++) same = fd[i] == (size_t)dims[i];
    if (!same) {
        char a[160] = "(", b[160] = "(";
        for (int i = 0; i < r; i++) snprintf(a + strlen(a), sizeof a - strlen(a), "%s%zu", i ? ", " : "", fd[i]);
        for (int i = 0; i < rank; i++) snprintf(b + strlen(b), sizeof b - strlen(b), "%s%d", i ? ", " : "", dims[i]);
        return loom_set_error(err, LOOM_ERR_SHAPE, "%s: dataset %s has shape %s), the layer needs %s)", h->what, path, a, b);
    }
    hid_t d = H5Dopen2(h->file, path, H5P_DEFAULT);
    hid_t type = H5Dget_type(d);
    bool is_float = H5Tget_class(type) == H5T_FLOAT;
    H5Tclose(type);
    if (!is_float) {
        H5Dclose(d);
        return loom_set_error(err, LOOM_ERR_DATA, "%s: dataset %s holds integers, not floats", h->what, path);
    }
    herr_t rc = H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
    H5Dclose(d);
    if (rc < 0) return loom_set_error(err, LOOM_ERR_DATA, "%s: dataset %s cannot be read", h->what, path);
    return LOOM_OK;
}

loom_status loom_h5_make_group(loom_h5 *h, const char *path, loom_error *err) {
    if (loom_h5_exists(h, path)) return LOOM_OK;
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t g = H5Gcreate2(h->file, path, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Pclose(lcpl);
    if (g < 0) return loom_set_error(err, LOOM_ERR_IO, "%s: cannot create group %s", h->what, path);
    H5Gclose(g);
    return LOOM_OK;
}

loom_status loom_h5_write_floats(loom_h5 *h, const char *path, int rank, const int *dims, const float *data,
                                 loom_error *err) {
    hsize_t hd[8];
    for (int i = 0; i < rank && i < 8; i++) hd[i] = (hsize_t)dims[i];
    hid_t space = rank ? H5Screate_simple(rank, hd, NULL) : H5Screate(H5S_SCALAR);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = H5Dcreate2(h->file, path, H5T_IEEE_F32LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Pclose(lcpl);
    herr_t rc = d >= 0 ? H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : -1;
    if (d >= 0) H5Dclose(d);
    H5Sclose(space);
    if (rc < 0) return loom_set_error(err, LOOM_ERR_IO, "%s: cannot write dataset %s", h->what, path);
    return LOOM_OK;
}

loom_status loom_h5_set_attr_string(loom_h5 *h, const char *obj, const char *attr, const char *value,
                                    loom_error *err) {
    hid_t o = H5Oopen(h->file, obj, H5P_DEFAULT);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = o >= 0 ? H5Acreate2(o, attr, t, space, H5P_DEFAULT, H5P_DEFAULT) : -1;
    herr_t rc = a >= 0 ? H5Awrite(a, t, &value) : -1;
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    H5Tclose(t);
    if (o >= 0) H5Oclose(o);
    if (rc < 0) return loom_set_error(err, LOOM_ERR_IO, "%s: cannot write attribute %s of %s", h->what, attr, obj);
    return LOOM_OK;
}

#else /* built without HDF5: every entry point says so */

#define NO_HDF5(what) loom_set_error(err, LOOM_ERR_STATE, "%s: this loom was built without HDF5 (install libhdf5-dev and rebuild with LOOM_USE_HDF5=ON)", what)

loom_h5 *loom_h5_open_memory(const void *data, size_t size, const char *what, loom_error *err) {
    (void)data, (void)size;
    NO_HDF5(what);
    return NULL;
}
loom_h5 *loom_h5_create_memory(const char *what, loom_error *err) {
    NO_HDF5(what);
    return NULL;
}
unsigned char *loom_h5_image(loom_h5 *h, size_t *size, loom_error *err) {
    (void)h, (void)size;
    NO_HDF5("HDF5");
    return NULL;
}
void loom_h5_close(loom_h5 *h) { (void)h; }
bool loom_h5_exists(loom_h5 *h, const char *path) { (void)h, (void)path; return false; }
int loom_h5_group_size(loom_h5 *h, const char *path) { (void)h, (void)path; return -1; }
char *loom_h5_attr_string(loom_h5 *h, const char *obj, const char *attr, loom_error *err) {
    (void)h, (void)obj, (void)attr;
    NO_HDF5("HDF5");
    return NULL;
}
int loom_h5_attr_strings(loom_h5 *h, const char *obj, const char *attr, char ***out, loom_error *err) {
    (void)h, (void)obj, (void)attr;
    *out = NULL;
    NO_HDF5("HDF5");
    return -1;
}
void loom_h5_free_strings(char **s, int n) { (void)s, (void)n; }
int loom_h5_dataset_shape(loom_h5 *h, const char *path, int max_rank, size_t *dims, loom_error *err) {
    (void)h, (void)path, (void)max_rank, (void)dims;
    NO_HDF5("HDF5");
    return -1;
}
loom_status loom_h5_read_floats(loom_h5 *h, const char *path, int rank, const int *dims, float *out, loom_error *err) {
    (void)h, (void)path, (void)rank, (void)dims, (void)out;
    return NO_HDF5("HDF5");
}
loom_status loom_h5_make_group(loom_h5 *h, const char *path, loom_error *err) {
    (void)h, (void)path;
    return NO_HDF5("HDF5");
}
loom_status loom_h5_write_floats(loom_h5 *h, const char *path, int rank, const int *dims, const float *data, loom_error *err) {
    (void)h, (void)path, (void)rank, (void)dims, (void)data;
    return NO_HDF5("HDF5");
}
loom_status loom_h5_set_attr_string(loom_h5 *h, const char *obj, const char *attr, const char *value, loom_error *err) {
    (void)h, (void)obj, (void)attr, (void)value;
    return NO_HDF5("HDF5");
}

#endif
