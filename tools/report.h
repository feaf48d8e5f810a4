/* report.h — `loom fit --report run.html`: one self-contained HTML page (inline SVG charts drawn
 * here, no scripts, no network), rewritten after every epoch. */
#ifndef LOOM_TOOLS_REPORT_H
#define LOOM_TOOLS_REPORT_H

#include "loom.h"

#include <stdbool.h>

typedef struct report_settings {
    const char *path, *model_path, *data_path, *val_path;
    double val_split;
    int epochs, batch_size, threads;
    long seed;
    bool resume;
    bool finished; /* the last write: the page stops asking the browser to reload it */
} report_settings;

/* Writes the page for the model's history so far (atomically: a temporary file renamed over
 * path). 0, or -1 with a message naming the file. */
int report_write(const char *path, loom_model *m, const report_settings *s, char *err, size_t errlen);

#endif
