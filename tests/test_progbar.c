/* test_progbar.c — the Keras 3 progress bar text, written to a file and to a pseudo-terminal. */
#define _XOPEN_SOURCE 600 /* posix_openpt and friends, for the terminal case */

#include "check.h"
#include "train/progbar.h"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BAR20                                                                                  \
    "\xe2\x94\x81\xe2\x94\x81\xe2\x94\x81\xe2\x94\x81\xe2\x94\x81\xe2\x94\x81\xe2\x94\x81"      \
    "\xe2\x94\x81\xe2\x94\x81\xe2\x94\x81\xe2\x94\x81\xe2\x94\x81\xe2\x94\x81\xe2\x94\x81"      \
    "\xe2\x94\x81\xe2\x94\x81\xe2\x94\x81\xe2\x94\x81\xe2\x94\x81\xe2\x94\x81"

static const char *const keys2[] = {"loss", "a_loss"};
static const float vals2[] = {1.2673f, 4.767e-4f};
#define SUFFIX2 " - loss: 1.2673 - a_loss: 4.7670e-04\n"

/* Everything written to f so far. */
static char *slurp(FILE *f) {
    static char buf[8192];
    fflush(f);
    long len = ftell(f);
    rewind(f);
    size_t n = fread(buf, 1, len > 0 && len < (long)sizeof buf ? (size_t)len : sizeof buf - 1, f);
    buf[n] = '\0';
    return buf;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int count_of(const char *s, const char *what) {
    int c = 0;
    for (const char *q = strstr(s, what); q; q = strstr(q + 1, what)) c++;
    return c;
}

/* " 12s 34ms/step" at s: the elapsed seconds and a time per step in s, ms or us. Returns the rest. */
static const char *parse_times(const char *s, const char *sep) {
    char *end;
    if (*s++ != ' ') return NULL;
    strtol(s, &end, 10);
    if (end == s || *end != 's') return NULL;
    s = end + 1;
    if (strncmp(s, sep, strlen(sep)) != 0) return NULL;
    s += strlen(sep);
    strtol(s, &end, 10);
    if (end == s) return NULL;
    if (strncmp(end, "s/step", 6) == 0) return end + 6;
    if (strncmp(end, "ms/step", 7) == 0 || strncmp(end, "us/step", 7) == 0) return end + 7;
    return NULL;
}

static void test_verbose1_file(void) {
    FILE *f = tmpfile();
    loom_progbar p;
    loom_progbar_init(&p, f, 40, 1);
    CHECK(!p.tty);
    for (int step = 1; step < 40; step++) loom_progbar_update(&p, step, 2, keys2, vals2, false);
    CHECK(ftell(f) == 0); /* not a terminal: nothing until the final line */
    loom_progbar_update(&p, 40, 2, keys2, vals2, true);
    const char *s = slurp(f);
    CHECK(strncmp(s, "40/40 " BAR20, 6 + 60) == 0);
    CHECK(count_of(s, "\n") == 1);
    CHECK(strchr(s, '\r') == NULL);
    CHECK(strchr(s, '\x1b') == NULL);
    const char *rest = parse_times(s + 6 + 60, " ");
    CHECK(rest != NULL);
    CHECK(rest && strcmp(rest, SUFFIX2) == 0);
    CHECK(ends_with(s, SUFFIX2));
    fclose(f);
}

/* Into a file or pipe, verbose 1 also prints a line every pipe_interval seconds inside the epoch
 * (30 by default), so a long run's log shows life; never more often, never on verbose 2. */
static void test_pipe_interval(void) {
    FILE *f = tmpfile();
    loom_progbar p;
    loom_progbar_init(&p, f, 40, 1);
    CHECK(p.pipe_interval == 30.0);
    loom_progbar_update(&p, 1, 2, keys2, vals2, false);
    CHECK(ftell(f) == 0);              /* under 30 s: nothing */
    p.last_pipe_line -= 31.0;          /* 31 s later */
    loom_progbar_update(&p, 7, 2, keys2, vals2, false);
    const char *s = slurp(f);
    CHECK(strncmp(s, " 7/40 - ETA ", 12) == 0); /* the step, the ETA, the time per step, the values */
    CHECK(strstr(s, "\xe2\x94\x81") == NULL);    /* no bar: uncoloured, its halves look alike */
    CHECK(count_of(s, "\n") == 1 && strchr(s, '\r') == NULL && strchr(s, '\x1b') == NULL);
    CHECK(ends_with(s, SUFFIX2));
    loom_progbar_update(&p, 8, 2, keys2, vals2, false);
    CHECK(count_of(slurp(f), "\n") == 1); /* the next only after another interval */
    loom_progbar_update(&p, 40, 2, keys2, vals2, true);
    s = slurp(f);
    CHECK(count_of(s, "\n") == 2 && strstr(s, "\n40/40 ") != NULL);
    fclose(f);

    /* a short interval, measured on the clock */
    f = tmpfile();
    loom_progbar_init(&p, f, 40, 1);
    p.pipe_interval = 0.02;
    double t0 = loom_now();
    while (loom_now() - t0 < 0.03) {}
    loom_progbar_update(&p, 2, 2, keys2, vals2, false);
    CHECK(count_of(slurp(f), "\n") == 1);
    fclose(f);

    /* interval off, and verbose 2: one line per epoch only */
    for (int verbose = 1; verbose <= 2; verbose++) {
        f = tmpfile();
        loom_progbar_init(&p, f, 40, verbose);
        if (verbose == 1) p.pipe_interval = 0;
        p.last_pipe_line -= 100.0;
        loom_progbar_update(&p, 5, 2, keys2, vals2, false);
        CHECK(ftell(f) == 0);
        fclose(f);
    }
}

static void test_verbose2_file(void) {
    FILE *f = tmpfile();
    loom_progbar p;
    loom_progbar_init(&p, f, 40, 2);
    for (int step = 1; step < 40; step++) loom_progbar_update(&p, step, 2, keys2, vals2, false);
    CHECK(ftell(f) == 0);
    loom_progbar_update(&p, 40, 2, keys2, vals2, true);
    const char *s = slurp(f);
    CHECK(strncmp(s, "40/40 -", 7) == 0);
    const char *rest = parse_times(s + 7, " - ");
    CHECK(rest != NULL);
    CHECK(rest && strcmp(rest, SUFFIX2) == 0);
    CHECK(count_of(s, "\n") == 1);
    fclose(f);
}

/* The time part, with the start moved back so the times are known: Keras's s/ms/us choice. */
static void test_times(void) {
    FILE *f = tmpfile();
    loom_progbar p;

    loom_progbar_init(&p, f, 40, 1);
    p.start -= 2.0; /* 50 ms a step */
    loom_progbar_update(&p, 40, 0, NULL, NULL, true);
    CHECK(strcmp(slurp(f), "40/40 " BAR20 " 2s 50ms/step\n") == 0);

    rewind(f);
    loom_progbar_init(&p, f, 40, 2);
    p.start -= 80.0; /* 2 s a step */
    loom_progbar_update(&p, 40, 0, NULL, NULL, true);
    CHECK(strncmp(slurp(f), "40/40 - 80s - 2s/step\n", 22) == 0);

    rewind(f);
    loom_progbar_init(&p, f, 40, 2);
    p.start -= 0.0004; /* about 10 us a step */
    loom_progbar_update(&p, 40, 0, NULL, NULL, true);
    const char *s = slurp(f);
    CHECK(strncmp(s, "40/40 - 0s - ", 13) == 0);
    CHECK(strstr(s, "us/step\n") != NULL);

    /* the step count is padded to the target's digits; an unknown target becomes the steps seen */
    rewind(f);
    loom_progbar_init(&p, f, 0, 2);
    p.start -= 1.2;
    loom_progbar_update(&p, 12, 0, NULL, NULL, true);
    CHECK(strcmp(slurp(f), "12/12 - 1s - 100ms/step\n") == 0);
    fclose(f);
}

static void test_value_format(void) {
    const char *keys[] = {"a", "b", "c", "d", "e", "f", "g"};
    const float vals[] = {0.0011f, 0.0009f, -0.0009f, -0.5f, 0.0f, 12345.678f, NAN};
    FILE *f = tmpfile();
    loom_progbar p;

    loom_progbar_init(&p, f, 3, 1);
    loom_progbar_update(&p, 3, 7, keys, vals, true);
    CHECK(ends_with(slurp(f), " - a: 0.0011 - b: 9.0000e-04 - c: -9.0000e-04 - d: -0.5000"
                              " - e: 0.0000e+00 - f: 12345.6777 - g: nan\n"));

    /* verbose 2 tests v > 1e-3 without abs: -0.5 is written in e-notation */
    rewind(f);
    loom_progbar_init(&p, f, 3, 2);
    loom_progbar_update(&p, 3, 7, keys, vals, true);
    CHECK(ends_with(slurp(f), " - a: 0.0011 - b: 9.0000e-04 - c: -9.0000e-04 - d: -5.0000e-01"
                              " - e: 0.0000e+00 - f: 12345.6777 - g: nan\n"));
    fclose(f);
}

static void test_header_and_silence(void) {
    FILE *f = tmpfile();
    loom_progbar_epoch_header(f, 0, 3);
    loom_progbar_epoch_header(f, 2, 3);
    CHECK(strcmp(slurp(f), "Epoch 1/3\nEpoch 3/3\n") == 0);
    fclose(f);

    f = tmpfile();
    loom_progbar p;
    loom_progbar_init(&p, f, 40, 0);
    for (int step = 1; step <= 40; step++)
        loom_progbar_update(&p, step, 2, keys2, vals2, step == 40);
    CHECK(ftell(f) == 0);
    fclose(f);

    /* no stream: every call is a no-op */
    loom_progbar_init(&p, NULL, 40, 1);
    loom_progbar_update(&p, 40, 2, keys2, vals2, true);
    CHECK(p.verbose == 0);
}

/* On a terminal: Keras's colours, \r redraws at most every 50 ms, leftovers blanked. */
static void test_terminal(void) {
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) {
        printf("progbar: no pseudo-terminal, terminal case skipped\n");
        if (master >= 0) close(master);
        return;
    }
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
    FILE *tty = slave >= 0 ? fdopen(slave, "w") : NULL;
    if (!tty) {
        printf("progbar: no pseudo-terminal, terminal case skipped\n");
        close(master);
        return;
    }

    loom_progbar p;
    loom_progbar_init(&p, tty, 40, 1);
    CHECK(p.tty);
    loom_progbar_update(&p, 1, 2, keys2, vals2, false);  /* drawn: the first update */
    loom_progbar_update(&p, 2, 2, keys2, vals2, false);  /* within 50 ms: skipped */
    p.last_draw -= 1.0;
    loom_progbar_update(&p, 10, 2, keys2, vals2, false); /* drawn again */
    loom_progbar_update(&p, 40, 1, keys2, vals2, true);  /* final: always drawn, shorter */
    fclose(tty);

    static char buf[8192];
    size_t len = 0;
    struct pollfd pfd = {master, POLLIN, 0};
    while (len < sizeof buf - 1 && poll(&pfd, 1, 200) > 0) {
        ssize_t r = read(master, buf + len, sizeof buf - 1 - len);
        if (r <= 0) break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    close(master);

    CHECK(count_of(buf, "/40") == 3);
    CHECK(strstr(buf, " 2/40") == NULL);
    /* step 1: bold count, nothing done, all 20 in the remaining colour, a bold ETA */
    CHECK(strstr(buf, "\r\x1b[1m 1/40\x1b[0m \x1b[37m" BAR20 "\x1b[0m \x1b[1m") != NULL);
    /* step 10 of 40: 5 done in green, 15 remaining */
    CHECK(strstr(buf, "\r\x1b[1m10/40\x1b[0m \x1b[32m\xe2\x94\x81\xe2\x94\x81\xe2\x94\x81"
                      "\xe2\x94\x81\xe2\x94\x81\x1b[0m\x1b[37m") != NULL);
    /* final line: one key fewer than before, so blanked with the 21 columns of " - a_loss: ..." */
    const char *fin = strstr(buf, "\r\x1b[1m40/40\x1b[0m \x1b[32m" BAR20 "\x1b[0m\x1b[37m\x1b[0m");
    CHECK(fin != NULL);
    if (fin) {
        const char *loss = strstr(fin, " - loss: 1.2673");
        CHECK(loss != NULL);
        size_t spaces = loss ? strspn(loss + 15, " ") : 0;
        CHECK(spaces >= 19 && spaces <= 23); /* the time per step may differ by a digit or two */
        CHECK(loss && strncmp(loss + 15 + spaces, "\r\n", 2) == 0);
        CHECK(loss && strstr(loss, "a_loss") == NULL);
    }
}

int main(void) {
    test_verbose1_file();
    test_verbose2_file();
    test_pipe_interval();
    test_times();
    test_value_format();
    test_header_and_silence();
    test_terminal();
    return check_report("progbar");
}
