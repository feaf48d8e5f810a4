/* data_bind.h — the arrays of a data file bound to a model's inputs and outputs by name:
 * .npz members (--map NAME=MEMBER for members named otherwise) or the columns of a CSV file with
 * a header (column NAME for one value, NAME_0 ... NAME_{n-1} for n; --map NAME=COL,COL,... or
 * --map NAME=FIRST:LAST for others). */
#ifndef LOOM_TOOLS_DATA_BIND_H
#define LOOM_TOOLS_DATA_BIND_H

#include "loom.h"
#include "opts.h"

typedef enum bind_targets {
    BIND_NO_TARGETS,       /* predict: inputs only */
    BIND_TARGETS_OPTIONAL, /* diagnose: outputs without a member are left out */
    BIND_TARGETS_REQUIRED  /* fit, evaluate: every output with a loss needs its targets */
} bind_targets;

typedef struct bound_data {
    int n_arrays;
    loom_ndarray arrays[2 * LOOM_MAX_OUTPUTS];
    loom_array x[LOOM_MAX_OUTPUTS], y[LOOM_MAX_OUTPUTS];
    int *lengths[LOOM_MAX_OUTPUTS]; /* per input: its member's NAME_lengths, or NULL */
    loom_data data;
    size_t n; /* samples */
} bound_data;

/* Checks that every NAME of the --map pairs is an input or output of m (message otherwise). */
int bind_check_maps(loom_model *m, const opt_list *maps, char *err, size_t errlen);

/* Reads the arrays for m's inputs (and targets) from path (.csv: columns, else .npz members).
 * An input with a variable time axis bound to .npz member M may hold padded sequences of any
 * whole number of steps; a member M_lengths of the same file (one whole number per sample, each in
 * 1..steps) then gives each sample's length, as loom_array.lengths, so that each batch is trimmed
 * to its longest sample (the padding within a batch is for the model's masks to cover).
 * 0, or -1 with a message naming the file, the member or column, and the input or output. */
int bind_data_file(loom_model *m, const char *path, const opt_list *maps, bind_targets targets, bound_data *b, char *err,
             size_t errlen);
void bind_free(bound_data *b);
/* Floats of one step of input `input` (its per-sample size when it has no variable time axis). */
size_t bind_step_size(const loom_model *m, int input);

#endif
