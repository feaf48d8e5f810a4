/* opts.h — the option parser every `loom` command shares: a table of options with their
 * metavariables, help text and defaults, from which both parsing and `--help` come, so the help
 * can never forget an option. Exit statuses: 0 success, 1 run-time error, 2 usage error. */
#ifndef LOOM_TOOLS_OPTS_H
#define LOOM_TOOLS_OPTS_H

#include <stdbool.h>
#include <stdio.h>

#define OPT_LIST_MAX 64

typedef enum opt_kind {
    OPT_FLAG,   /* bool: present or not */
    OPT_INT,    /* long, in [min, max] */
    OPT_NUMBER, /* double, in [min, max], finite */
    OPT_STRING, /* const char * */
    OPT_LIST    /* opt_list: the option may repeat */
} opt_kind;

typedef struct opt_list {
    int n;
    const char *v[OPT_LIST_MAX];
} opt_list;

typedef struct opt_spec {
    const char *name;    /* "--epochs" */
    const char *short_name; /* "-o" or NULL */
    const char *metavar; /* "N" (NULL for flags) */
    opt_kind kind;
    void *dest;          /* bool *, long *, double *, const char **, opt_list * */
    const char *def;     /* the default as the help shows it; NULL: none */
    double min, max;     /* numbers */
    const char *help;
} opt_spec;

typedef struct command {
    const char *name;        /* "fit" */
    const char *synopsis;    /* "MODEL --data TRAIN.npz [options]" */
    const char *summary;     /* one line for `loom help` */
    const char *description; /* paragraphs for `loom help fit`, may be NULL */
    int min_args, max_args;  /* positional arguments */
    const opt_spec *opts;
    int n_opts;
    int (*run)(int argc, char **argv);
} command;

/* Parses argv[1..] (argv[0] is the command's name). Positional arguments go to args (at most
 * max_args of them, counted in *n_args). Returns 0 to go on, 2 after printing a usage error
 * (what is wrong, the usage line, where the help is) to stderr, and -1 after printing the help
 * to stdout for --help / -h (the command then exits 0). */
int opts_parse(const command *c, int argc, char **argv, const char **args, int *n_args);

/* The full help: usage, description, every option with its metavariable, help and default. */
void opts_help(const command *c, FILE *f);

/* A usage error found after parsing (e.g. two options that exclude each other): prints
 * "loom CMD: <message>", the usage line and the pointer to the help; returns 2. */
int opts_usage_error(const command *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Splits "NAME=VALUE" at the first '='; false when there is none or either side is empty. The
 * name is copied into name (cap bytes). */
bool opts_split_pair(const char *s, char *name, size_t cap, const char **value);

/* Strict number parsing for values inside pairs ("C=0.5"). */
bool opts_parse_number(const char *s, double *out);

#endif
