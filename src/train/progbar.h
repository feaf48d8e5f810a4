/* progbar.h — Keras-style progress display for fit / evaluate (internal). */
#ifndef LOOM_PROGBAR_H
#define LOOM_PROGBAR_H

#include <stdbool.h>
#include <stdio.h>

typedef struct loom_progbar {
    FILE *out;
    int target;       /* steps in the epoch (0 = unknown) */
    int verbose;      /* 1: bar (redrawn with \r on a terminal, one final line otherwise); 2: final line only */
    bool tty;         /* is `out` a terminal */
    double start;     /* seconds, monotonic clock */
    double last_draw; /* seconds */
    int last_len;     /* characters printed on the current line (to blank leftovers) */
    double pipe_interval; /* verbose 1 into a file or pipe: also a line every this many seconds
                             inside the epoch (<= 0: never); loom_progbar_init sets 30 */
    double last_pipe_line; /* seconds */
} loom_progbar;

/* Monotonic seconds. */
double loom_now(void);

/* "Epoch 3/10" header line, printed when verbose > 0 (Keras ProgbarLogger prints it). */
void loom_progbar_epoch_header(FILE *out, int epoch, int epochs);

#define LOOM_PROGBAR_PIPE_INTERVAL 30.0

/* Starts a bar for `target` steps. verbose 0 makes every call a no-op. */
void loom_progbar_init(loom_progbar *p, FILE *out, int target, int verbose);

/* Step `step` (1-based) is done; keys/values are the running values to show, in order.
 * finalize: the last update of this bar (prints the final line and a newline).
 * Formatting as Keras 3 Progbar: " - key: 1.2345" if |v| > 1e-3 else " - key: 1.2345e-04". */
void loom_progbar_update(loom_progbar *p, int step, int n, const char *const *keys,
                         const float *values, bool finalize);

#endif
