/* keras_h5.h — the few HDF5 operations Keras's files need, over HDF5's C API (keras_h5.c; internal).
 *
 * HDF5 itself is not hardened against hostile files (its own parser may misbehave on a crafted
 * file, whatever the caller checks). What loom does: files are opened read-only from a copy in
 * memory (no second file is ever opened through external links: the core driver has none), every
 * dataset's class, rank and dimensions are compared with what the architecture expects before a
 * byte is read, strings and string lists are bounded (LOOM_H5_MAX_STRING, LOOM_H5_MAX_LIST), and
 * HDF5's error printing is switched off (the library never prints). Without HDF5 (LOOM_USE_HDF5
 * off or libhdf5-dev absent) every function fails with "built without HDF5". */
#ifndef LOOM_KERAS_H5_H
#define LOOM_KERAS_H5_H

#include "base/base.h"

#define LOOM_H5_MAX_STRING ((size_t)64 << 20) /* a model_config attribute */
#define LOOM_H5_MAX_LIST 100000               /* names in a weight_names / layer_names list */

typedef struct loom_h5 loom_h5;

bool loom_h5_signature(const void *data, size_t size); /* starts with \x89HDF\r\n\x1a\n */

/* Reading: a file image in memory (copied). NULL with err set. */
loom_h5 *loom_h5_open_memory(const void *data, size_t size, const char *what, loom_error *err);
/* Writing: an empty file in memory; loom_h5_image gives its bytes (malloc'd) when done. */
loom_h5 *loom_h5_create_memory(const char *what, loom_error *err);
unsigned char *loom_h5_image(loom_h5 *h, size_t *size, loom_error *err);
void loom_h5_close(loom_h5 *h);

/* Does the object (group or dataset) at this '/'-separated path exist? */
bool loom_h5_exists(loom_h5 *h, const char *path);
/* Number of links in a group (-1 if it is not a group). */
int loom_h5_group_size(loom_h5 *h, const char *path);
/* A string attribute (fixed or variable length, scalar or the first of an array): malloc'd, or
 * NULL: absent (err untouched) or unreadable (err set). */
char *loom_h5_attr_string(loom_h5 *h, const char *obj, const char *attr, loom_error *err);
/* A list-of-strings attribute (Keras 2 weight_names, layer_names): the count (an absent or empty
 * attribute gives 0) with *out an array of malloc'd strings (free with loom_h5_free_strings), or
 * -1 with err set. */
int loom_h5_attr_strings(loom_h5 *h, const char *obj, const char *attr, char ***out, loom_error *err);
void loom_h5_free_strings(char **s, int n);
/* A dataset's shape: rank (0 for a scalar) and dims, -1 with err set if it is no numeric dataset. */
int loom_h5_dataset_shape(loom_h5 *h, const char *path, int max_rank, size_t *dims, loom_error *err);
/* Reads a float dataset whose shape must be exactly (rank, dims) into out (converted to float32;
 * Keras writes float32, read bit for bit). */
loom_status loom_h5_read_floats(loom_h5 *h, const char *path, int rank, const int *dims, float *out,
                                loom_error *err);

/* Writing (every group on the way is created). */
loom_status loom_h5_make_group(loom_h5 *h, const char *path, loom_error *err);
loom_status loom_h5_write_floats(loom_h5 *h, const char *path, int rank, const int *dims, const float *data,
                                 loom_error *err);
/* A variable-length UTF-8 string attribute on a group (as h5py writes Python str). */
loom_status loom_h5_set_attr_string(loom_h5 *h, const char *obj, const char *attr, const char *value,
                                    loom_error *err);

#endif
