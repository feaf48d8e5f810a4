/* plot.h — the model as a Graphviz graph, like Keras's plot_model and beyond it: layers coloured
 * by the losses that reach them, loss weights in the legend, shared layers with their call count. */
#ifndef LOOM_TOOLS_PLOT_H
#define LOOM_TOOLS_PLOT_H

#include "loom.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct plot_options {
    bool show_shapes, show_dtype, losses;
    const char *rankdir; /* TB, LR, BT, RL */
    double dpi;          /* PNG */
} plot_options;

/* The graph in the DOT language (malloc'd), or NULL when out of memory. */
char *plot_dot(loom_model *m, const plot_options *o);

/* Renders DOT text with Graphviz's library, in process: format "svg" or "png". *out is malloc'd
 * (free it). 0, or -1 with a message (also when this build has no Graphviz). */
int plot_render(const char *dot, const char *format, char **out, size_t *len, char *err, size_t errlen);

/* The colour of the i-th loss (in output order among outputs with a loss), shared with the report. */
const char *plot_loss_colour(int i);


#endif
