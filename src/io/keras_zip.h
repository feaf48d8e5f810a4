/* keras_zip.h — zip members for Keras 3's .keras container, over libzip (keras_zip.c; internal).
 * Without libzip (LOOM_USE_LIBZIP off or libzip-dev absent) every function fails with
 * "built without libzip". */
#ifndef LOOM_KERAS_ZIP_H
#define LOOM_KERAS_ZIP_H

#include "base/base.h"

bool loom_zip_signature(const void *data, size_t size); /* starts with PK\3\4 */

/* One member of a zip archive in memory, by exact name: its bytes (malloc'd, one NUL byte past
 * the end so text can be parsed in place) and size. The declared size is checked against `max`
 * before anything is allocated and against the bytes that decompress. 1 found, 0 absent (err
 * untouched), -1 error (err set). */
int loom_zip_member(const void *data, size_t size, const char *name, size_t max, unsigned char **out,
                    size_t *out_size, const char *what, loom_error *err);

/* Writes a zip archive of n members (deflated) to path, atomically (a temporary file in the same
 * folder renamed over path). */
loom_status loom_zip_write(const char *path, int n, const char *const *names, const unsigned char *const *data,
                           const size_t *sizes, loom_error *err);

#endif
