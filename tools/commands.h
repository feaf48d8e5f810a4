/* commands.h — `loom` sub-commands that live in their own files under tools/.
 * Each takes the sub-command's own argc/argv (argv[0] is the sub-command's name) and returns the
 * process exit status: 0 success, 1 failure, 2 bad usage. */
#ifndef LOOM_TOOLS_COMMANDS_H
#define LOOM_TOOLS_COMMANDS_H

/* loom fashion [--epochs N] [--train N] [--seed N] [--batch N] [--data DIR] [--quiet]
 * A convolutional trunk with three heads on Fashion-MNIST, against the same trunk with one head
 * (tools/fashion.c, docs/fashion.md). */
int loom_cmd_fashion(int argc, char **argv);

#endif
