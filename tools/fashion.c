/* fashion.c — `loom fashion`: the Fashion-MNIST multi-task example (examples/fashion_multitask.c,
 * one program for both), a convolutional trunk with three heads against the same trunk with one
 * (docs/fashion.md). */
#include "commands.h"

#define FASHION_NO_MAIN
#include "../examples/fashion_multitask.c"

int loom_cmd_fashion(int argc, char **argv) { return fashion_main(argc, argv); }
