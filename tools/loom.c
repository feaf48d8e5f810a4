/* loom.c — the command-line program: `loom COMMAND [options]`, `loom help [COMMAND]`,
 * `loom --version`. The commands live in cmd_<name>.c; their options and help in their tables. */
#include "commands.h"
#include "loom.h"

#include <stdarg.h>
#include <string.h>

static const command *const COMMANDS[] = {&cmd_fit,     &cmd_evaluate, &cmd_predict, &cmd_convert, &cmd_summary,
                                          &cmd_diagnose, &cmd_plot,    &cmd_demo,    &cmd_fashion};
#define N_COMMANDS (int)(sizeof COMMANDS / sizeof *COMMANDS)

int tool_fail(const command *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loom %s: ", c->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

static void overview(FILE *f) {
    fprintf(f, "usage: loom COMMAND [options]      train, evaluate and draw Keras-style models\n"
               "       loom help [COMMAND]          what a command does, every option with its default\n"
               "       loom --version\n\nCommands:\n");
    for (int i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-10s %s\n", COMMANDS[i]->name, COMMANDS[i]->summary);
    fprintf(f, "\nModel files: .loom (everything needed to resume training exactly). Data: .npz archives whose\n"
               "members are named after the model's inputs and outputs (--map NAME=MEMBER for others); a\n"
               "variable-length input's member M may come with M_lengths, each sample's length.\n"
               "Exit status: 0 success, 1 run-time error, 2 usage error.\n"
               "Start with: loom demo --epochs 0 --save digits.loom && loom fit digits.loom --data " LOOM_DATA_DIR
               "/digits.npz --epochs 5\n");
}

static const command *find_command(const char *name) {
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(COMMANDS[i]->name, name) == 0) return COMMANDS[i];
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        overview(stderr);
        return 2;
    }
    const char *a = argv[1];
    if (strcmp(a, "--version") == 0 || strcmp(a, "version") == 0) {
        /* the header this program was compiled with, and the library it runs with */
        printf("loom %s (library %s)\n", LOOM_VERSION, loom_version());
        return 0;
    }
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0 || strcmp(a, "help") == 0) {
        if (strcmp(a, "help") == 0 && argc > 2) {
            const command *c = find_command(argv[2]);
            if (!c) {
                fprintf(stderr, "loom help: no command %s\n", argv[2]);
                overview(stderr);
                return 2;
            }
            opts_help(c, stdout);
            return 0;
        }
        overview(stdout);
        return 0;
    }
    const command *c = find_command(a);
    if (!c) {
        fprintf(stderr, "loom: unknown command %s\n", a);
        overview(stderr);
        return 2;
    }
    return c->run(argc - 1, argv + 1);
}
