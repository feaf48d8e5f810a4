/* keras_zip.c — zip members in and out through libzip (keras_zip.h). */
#include "io/keras_zip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool loom_zip_signature(const void *data, size_t size) {
    return data && size >= 4 && memcmp(data, "PK\3\4", 4) == 0;
}

#ifdef LOOM_HAVE_LIBZIP

#include <zip.h>

int loom_zip_member(const void *data, size_t size, const char *name, size_t max, unsigned char **out,
                    size_t *out_size, const char *what, loom_error *err) {
    *out = NULL;
    *out_size = 0;
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(data, size, 0, &ze);
    zip_t *z = src ? zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze) : NULL;
    if (!z) {
        if (src) zip_source_free(src);
        loom_set_error(err, LOOM_ERR_DATA, "%s: not a readable zip archive (%s)", what, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return -1;
    }
    zip_error_fini(&ze);
    int rc = -1;
    zip_stat_t st;
    zip_int64_t idx = zip_name_locate(z, name, 0);
    if (idx < 0) {
        rc = 0;
        goto done;
    }
    zip_stat_init(&st);
    if (zip_stat_index(z, (zip_uint64_t)idx, 0, &st) < 0 || !(st.valid & ZIP_STAT_SIZE)) {
        loom_set_error(err, LOOM_ERR_DATA, "%s: member %s has no size", what, name);
        goto done;
    }
    /* deflate expands at most about 1032 times: a larger claim is a lie (or a zip bomb), and a
     * stored member is as long as its data */
    bool stored = (st.valid & ZIP_STAT_COMP_METHOD) && st.comp_method == ZIP_CM_STORE;
    if ((st.valid & ZIP_STAT_COMP_SIZE) &&
        (stored ? st.size != st.comp_size : st.size / 1100 > st.comp_size)) {
        loom_set_error(err, LOOM_ERR_DATA, "%s: member %s declares %llu bytes from %llu compressed ones", what, name,
                       (unsigned long long)st.size, (unsigned long long)st.comp_size);
        goto done;
    }
    if (st.size > max) {
        loom_set_error(err, LOOM_ERR_DATA, "%s: member %s declares %llu bytes, more than the %zu allowed", what, name,
                       (unsigned long long)st.size, max);
        goto done;
    }
    unsigned char *buf = malloc((size_t)st.size + 1);
    zip_file_t *f = buf ? zip_fopen_index(z, (zip_uint64_t)idx, 0) : NULL;
    if (!f) {
        free(buf);
        loom_set_error(err, buf ? LOOM_ERR_DATA : LOOM_ERR_MEMORY, "%s: member %s cannot be opened", what, name);
        goto done;
    }
    zip_int64_t got = zip_fread(f, buf, st.size);
    /* one byte more must not come: the data must end where the header says */
    unsigned char extra;
    zip_int64_t more = got == (zip_int64_t)st.size ? zip_fread(f, &extra, 1) : 0;
    zip_fclose(f);
    if (got != (zip_int64_t)st.size || more != 0) {
        free(buf);
        loom_set_error(err, LOOM_ERR_DATA, "%s: member %s is damaged (its data does not match its header)", what, name);
        goto done;
    }
    buf[st.size] = 0;
    *out = buf;
    *out_size = (size_t)st.size;
    rc = 1;
done:
    zip_discard(z);
    return rc;
}

loom_status loom_zip_write(const char *path, int n, const char *const *names, const unsigned char *const *data,
                           const size_t *sizes, loom_error *err) {
    size_t len = strlen(path);
    char *tmp = malloc(len + 16);
    if (!tmp) return loom_set_error(err, LOOM_ERR_MEMORY, "%s: out of memory", path);
    snprintf(tmp, len + 16, "%s.tmp-loom", path);
    remove(tmp);
    int zerr = 0;
    zip_t *z = zip_open(tmp, ZIP_CREATE | ZIP_TRUNCATE, &zerr);
    if (!z) {
        free(tmp);
        return loom_set_error(err, LOOM_ERR_IO, "%s: cannot create the file", path);
    }
    for (int i = 0; i < n; i++) {
        zip_source_t *s = zip_source_buffer(z, data[i], sizes[i], 0);
        if (!s || zip_file_add(z, names[i], s, ZIP_FL_ENC_UTF_8 | ZIP_FL_OVERWRITE) < 0) {
            if (s) zip_source_free(s);
            zip_discard(z);
            remove(tmp);
            free(tmp);
            return loom_set_error(err, LOOM_ERR_IO, "%s: cannot add member %s", path, names[i]);
        }
    }
    if (zip_close(z) < 0) {
        zip_discard(z);
        remove(tmp);
        free(tmp);
        return loom_set_error(err, LOOM_ERR_IO, "%s: cannot write the archive", path);
    }
    if (rename(tmp, path) != 0) {
        remove(tmp);
        free(tmp);
        return loom_set_error(err, LOOM_ERR_IO, "%s: cannot replace the file", path);
    }
    free(tmp);
    return LOOM_OK;
}

#else

int loom_zip_member(const void *data, size_t size, const char *name, size_t max, unsigned char **out,
                    size_t *out_size, const char *what, loom_error *err) {
    (void)data, (void)size, (void)name, (void)max;
    *out = NULL;
    *out_size = 0;
    loom_set_error(err, LOOM_ERR_STATE, "%s: this loom was built without libzip, so it cannot read .keras archives "
                   "(install libzip-dev and rebuild with LOOM_USE_LIBZIP=ON)", what);
    return -1;
}
loom_status loom_zip_write(const char *path, int n, const char *const *names, const unsigned char *const *data,
                           const size_t *sizes, loom_error *err) {
    (void)n, (void)names, (void)data, (void)sizes;
    return loom_set_error(err, LOOM_ERR_STATE, "%s: this loom was built without libzip, so it cannot write .keras archives "
                          "(install libzip-dev and rebuild with LOOM_USE_LIBZIP=ON)", path);
}

#endif
