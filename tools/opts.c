/* opts.c — the shared option parser (opts.h). */
#include "opts.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static void usage_line(const command *c, FILE *f) {
    fprintf(f, "usage: loom %s %s\n", c->name, c->synopsis);
}

static int usage_error_v(const command *c, const char *fmt, va_list ap) {
    fprintf(stderr, "loom %s: ", c->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    usage_line(c, stderr);
    fprintf(stderr, "(loom %s --help lists every option)\n", c->name);
    return 2;
}

int opts_usage_error(const command *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = usage_error_v(c, fmt, ap);
    va_end(ap);
    return rc;
}

bool opts_parse_number(const char *s, double *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v)) return false;
    *out = v;
    return true;
}

bool opts_split_pair(const char *s, char *name, size_t cap, const char **value) {
    const char *eq = strchr(s, '=');
    if (!eq || eq == s || !eq[1] || (size_t)(eq - s) >= cap) return false;
    memcpy(name, s, (size_t)(eq - s));
    name[eq - s] = '\0';
    *value = eq + 1;
    return true;
}

static const opt_spec *find(const command *c, const char *arg, size_t len) {
    for (int i = 0; i < c->n_opts; i++) {
        const opt_spec *o = &c->opts[i];
        if (strlen(o->name) == len && strncmp(o->name, arg, len) == 0) return o;
        if (o->short_name && strlen(o->short_name) == len && strncmp(o->short_name, arg, len) == 0) return o;
    }
    return NULL;
}

static int store(const command *c, const opt_spec *o, const char *value) {
    switch (o->kind) {
    case OPT_FLAG:
        *(bool *)o->dest = true;
        return 0;
    case OPT_STRING:
        if (!*value) return opts_usage_error(c, "%s: the value is empty", o->name);
        *(const char **)o->dest = value;
        return 0;
    case OPT_LIST: {
        opt_list *l = o->dest;
        if (!*value) return opts_usage_error(c, "%s: the value is empty", o->name);
        if (l->n == OPT_LIST_MAX) return opts_usage_error(c, "%s: given more than %d times", o->name, OPT_LIST_MAX);
        l->v[l->n++] = value;
        return 0;
    }
    case OPT_INT: {
        char *end;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (end == value || *end != '\0' || errno == ERANGE)
            return opts_usage_error(c, "%s: '%s' is not a number (a whole number is needed)", o->name, value);
        if (v < o->min || v > o->max)
            return opts_usage_error(c, "%s: %ld is out of range (%.0f to %.0f)", o->name, v, o->min, o->max);
        *(long *)o->dest = v;
        return 0;
    }
    case OPT_NUMBER: {
        double v;
        if (!opts_parse_number(value, &v)) return opts_usage_error(c, "%s: '%s' is not a number", o->name, value);
        if (v < o->min || v > o->max)
            return opts_usage_error(c, "%s: %g is out of range (%g to %g)", o->name, v, o->min, o->max);
        *(double *)o->dest = v;
        return 0;
    }
    }
    return 2;
}

int opts_parse(const command *c, int argc, char **argv, const char **args, int *n_args) {
    *n_args = 0;
    bool only_args = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_args && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
            opts_help(c, stdout);
            return -1;
        }
        if (!only_args && strcmp(a, "--") == 0) {
            only_args = true;
            continue;
        }
        if (!only_args && a[0] == '-' && a[1] != '\0') {
            const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
            size_t len = eq ? (size_t)(eq - a) : strlen(a);
            const opt_spec *o = find(c, a, len);
            if (!o) return opts_usage_error(c, "unknown option %.*s", (int)len, a);
            if (o->kind == OPT_FLAG) {
                if (eq) return opts_usage_error(c, "%s takes no value", o->name);
                store(c, o, NULL);
                continue;
            }
            const char *value = eq ? eq + 1 : NULL;
            if (!value) {
                if (i + 1 >= argc) return opts_usage_error(c, "%s needs a value (%s)", o->name, o->metavar);
                value = argv[++i];
            }
            int rc = store(c, o, value);
            if (rc) return rc;
            continue;
        }
        if (*n_args >= c->max_args)
            return opts_usage_error(c, "unexpected argument '%s'", a);
        args[(*n_args)++] = a;
    }
    if (*n_args < c->min_args)
        return opts_usage_error(c, "%s", c->min_args - *n_args == 1 && *n_args == 0 ? "an argument is missing"
                                                                              : "arguments are missing");
    return 0;
}

void opts_help(const command *c, FILE *f) {
    usage_line(c, f);
    fprintf(f, "\n%s\n", c->summary);
    if (c->description) fprintf(f, "\n%s\n", c->description);
    if (c->n_opts == 0) return;
    fprintf(f, "\nOptions:\n");
    for (int i = 0; i < c->n_opts; i++) {
        const opt_spec *o = &c->opts[i];
        char head[96];
        snprintf(head, sizeof head, "%s%s%s%s%s", o->short_name ? o->short_name : "", o->short_name ? ", " : "", o->name,
                 o->metavar ? " " : "", o->metavar ? o->metavar : "");
        fprintf(f, "  %-28s %s", head, o->help);
        if (o->kind == OPT_LIST) fprintf(f, " (may repeat)");
        if (o->def) fprintf(f, " [default: %s]", o->def);
        fputc('\n', f);
    }
    fprintf(f, "  %-28s %s\n", "-h, --help", "this help");
}
