/* model_io.h — the one place where the loom program reads and writes model files, so that every
 * command accepts the same formats. */
#ifndef LOOM_TOOLS_MODEL_IO_H
#define LOOM_TOOLS_MODEL_IO_H

#include "loom.h"

#include <stdbool.h>

/* Any model file loom reads (the format from the content). NULL with a message naming the file. */
loom_model *tool_model_load(const char *path, char *err, size_t errlen);

/* Writes the model in the format of the path's extension; the message (naming the file) is put
 * in err on failure. */
loom_status tool_model_save(loom_model *m, const char *path, char *err, size_t errlen);

/* Can this build write (or read) the format of this path's extension? For checking flags such
 * as --save before a long training run. */
bool tool_model_can_save(const char *path);

#endif
