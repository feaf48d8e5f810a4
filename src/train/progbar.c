/* progbar.c — the Keras 3 progress bar (keras/src/utils/progbar.py, callbacks/progbar_logger.py).
 *
 *   verbose 1, terminal:  redrawn in place with \r at most every 50 ms, Keras's colours:
 *                         " 7/40 ━━━━━━━━━━━━━━━━━━━━ 3s 12ms/step - loss: 1.2673"   (3s: ETA)
 *                         "40/40 ━━━━━━━━━━━━━━━━━━━━ 1s 12ms/step - loss: 1.2673"   (1s: elapsed)
 *   verbose 1, file/pipe: the final line, no colours and no \r (Keras would fill a log with
 *                         every redraw), and inside a long epoch one line every pipe_interval
 *                         seconds (30 by default), so that the log of a long run shows life:
 *                         " 7/40 - ETA 3s - 12ms/step - loss: 1.2673"
 *   verbose 2:            the final line only: "40/40 - 1s - 12ms/step - loss: 1.2673".
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime, fileno, isatty */
#endif

#include "train/progbar.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define BAR_WIDTH 20
#define REDRAW_INTERVAL 0.05 /* seconds, Keras Progbar(interval=0.05) */

/* Keras's ANSI styles: bold step count and time, green done part, white (light grey) rest. */
#define STYLE_BOLD "\x1b[1m"
#define STYLE_GREEN "\x1b[32m"
#define STYLE_WHITE "\x1b[37m"
#define STYLE_RESET "\x1b[0m"
#define BAR_CHAR "\xe2\x94\x81" /* U+2501 BOX DRAWINGS HEAVY HORIZONTAL */

double loom_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* epoch counts from 0, as everywhere in loom; Keras prints epoch + 1. */
void loom_progbar_epoch_header(FILE *out, int epoch, int epochs) {
    if (!out) return;
    fprintf(out, "Epoch %d/%d\n", epoch + 1, epochs);
    fflush(out);
}

void loom_progbar_init(loom_progbar *p, FILE *out, int target, int verbose) {
    p->out = out;
    p->target = target > 0 ? target : 0;
    p->verbose = out ? verbose : 0;
    p->tty = out && isatty(fileno(out));
    p->start = loom_now();
    p->last_draw = p->start - 1.0; /* so that the first update draws */
    p->last_len = 0;
    p->pipe_interval = LOOM_PROGBAR_PIPE_INTERVAL;
    p->last_pipe_line = p->start;
}

/* ---------------------------------------------------------------- writing a line */

/* The line goes straight to the stream; `width` counts the columns it takes on screen (escape
 * sequences take none) so that a shorter redraw can blank what the longer one left. */
typedef struct line {
    FILE *out;
    bool style;
    int width;
} line;

static void put(line *l, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void put(line *l, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vfprintf(l->out, fmt, ap);
    va_end(ap);
    if (n > 0) l->width += n;
}

static void style(line *l, const char *code) {
    if (l->style) fputs(code, l->out);
}

static void put_bar(line *l, int done) {
    if (done > 0) {
        style(l, STYLE_GREEN);
        for (int i = 0; i < done; i++) fputs(BAR_CHAR, l->out);
        style(l, STYLE_RESET);
    }
    style(l, STYLE_WHITE);
    for (int i = done; i < BAR_WIDTH; i++) fputs(BAR_CHAR, l->out);
    style(l, STYLE_RESET);
    l->width += BAR_WIDTH;
}

/* Keras Progbar._format_time: " 1s/step", " 12ms/step", " 85us/step" (0 shows as "0s"). */
static void put_time_per_step(line *l, double t) {
    if (t >= 1.0 || t == 0.0)
        put(l, " %.0fs/step", t);
    else if (t >= 1e-3)
        put(l, " %.0fms/step", t * 1e3);
    else
        put(l, " %.0fus/step", t * 1e6);
}

/* " - key: 1.2345", or 1.2345e-04 for small values. verbose 1 tests |v| > 1e-3; verbose 2 tests
 * v > 1e-3 (no abs, a Keras quirk kept so logs match). */
static void put_values(line *l, int n, const char *const *keys, const float *values,
                       bool use_abs) {
    for (int i = 0; i < n; i++) {
        double v = values[i];
        if (isnan(v))
            put(l, " - %s: nan", keys[i]); /* Python prints nan unsigned; glibc may print -nan */
        else if ((use_abs ? fabs(v) : v) > 1e-3)
            put(l, " - %s: %.4f", keys[i], v);
        else
            put(l, " - %s: %.4e", keys[i], v);
    }
}

/* Keras's ETA: "%ds" under a minute, "m:ss" under an hour, else "h:mm:ss" (all truncated). */
static void put_eta(line *l, double eta) {
    long e = (long)eta;
    if (eta > 3600)
        put(l, "%ld:%02ld:%02ld", e / 3600, (e % 3600) / 60, e % 60);
    else if (eta > 60)
        put(l, "%ld:%02ld", e / 60, e % 60);
    else
        put(l, "%lds", e);
}

static int digits(int x) {
    int d = 1;
    while (x >= 10) x /= 10, d++;
    return d;
}

/* ---------------------------------------------------------------- update */

void loom_progbar_update(loom_progbar *p, int step, int n, const char *const *keys,
                         const float *values, bool finalize) {
    if (p->verbose <= 0 || !p->out) return;
    double now = loom_now();
    /* Keras's ProgbarLogger sets an unknown target to the steps seen before the final update. */
    int target = p->target;
    if (finalize && target <= 0) target = step;
    double elapsed = now - p->start;
    /* Keras leaves the first step out of this estimate (it holds tracing and compilation); loom
     * has neither, and the struct keeps no time for it, so all steps count. */
    double per_step = step > 0 ? elapsed / step : 0.0;

    if (p->verbose == 2) {
        if (!finalize) return;
        line l = {p->out, false, 0};
        put(&l, "%*d/%d - %.0fs -", digits(target), step, target, elapsed);
        put_time_per_step(&l, per_step);
        put_values(&l, n, keys, values, false);
        fputc('\n', p->out);
        fflush(p->out);
        p->last_draw = now;
        return;
    }

    /* verbose 1 */
    bool pipe_line = !p->tty && !finalize && p->pipe_interval > 0 && now - p->last_pipe_line >= p->pipe_interval;
    if (!finalize && !pipe_line && (!p->tty || now - p->last_draw < REDRAW_INTERVAL)) return;
    if (pipe_line) {
        /* a log line: no bar (without colours its two halves look the same), the ETA named */
        p->last_pipe_line = now;
        line l = {p->out, false, 0};
        put(&l, "%*d/%d - ETA ", digits(target), step, target);
        put_eta(&l, per_step * (target - step));
        put(&l, " -");
        put_time_per_step(&l, per_step);
        put_values(&l, n, keys, values, true);
        fputc('\n', p->out);
        fflush(p->out);
        return;
    }
    line l = {p->out, p->tty, 0};
    if (p->tty) fputc('\r', p->out);
    if (target > 0) {
        style(&l, STYLE_BOLD);
        put(&l, "%*d/%d", digits(target), step, target);
        style(&l, STYLE_RESET);
        put(&l, " ");
        int done = (int)(BAR_WIDTH * ((double)step / target));
        put_bar(&l, done < 0 ? 0 : done > BAR_WIDTH ? BAR_WIDTH : done);
    } else {
        put(&l, "%7d/Unknown", step);
    }

    put(&l, " ");
    style(&l, STYLE_BOLD);
    if (target > 0 && !finalize)
        put_eta(&l, per_step * (target - step));
    else
        put(&l, "%.0fs", elapsed);
    style(&l, STYLE_RESET);
    put_time_per_step(&l, per_step);
    put_values(&l, n, keys, values, true);

    if (p->tty && p->last_len > l.width) fprintf(p->out, "%*s", p->last_len - l.width, "");
    p->last_len = l.width;
    if (finalize) {
        fputc('\n', p->out);
        p->last_len = 0;
    }
    fflush(p->out);
    p->last_draw = now;
}
