/* commands.h — the `loom` commands, one file each under tools/ (cmd_<name>.c). Each command's
 * table entry holds its options (opts.h), from which both its parser and its --help come; run
 * takes the command's own argc/argv (argv[0] is its name) and returns the exit status: 0
 * success, 1 run-time error (the message names the file, member, layer or output), 2 usage. */
#ifndef LOOM_TOOLS_COMMANDS_H
#define LOOM_TOOLS_COMMANDS_H

#include "opts.h"

#ifndef LOOM_DATA_DIR
#define LOOM_DATA_DIR "data"
#endif

extern const command cmd_fit, cmd_evaluate, cmd_predict, cmd_convert, cmd_summary, cmd_diagnose, cmd_plot,
    cmd_demo, cmd_fashion;

/* The demo's seed model (cmd_demo.c): in(64) -> A -> B -> {C: 10 classes, D: 64 pixels}. */
struct loom_model *demo_seed_model(unsigned long long seed);

/* "loom CMD: message" on stderr; returns 1 (the run-time error status). */
int tool_fail(const command *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif
