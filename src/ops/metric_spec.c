/* metric_spec.c — the text of a metric spec, "name" or "name(key=value, ...)" with Keras's
 * constructor arguments. A spec is text so that a saved model keeps a configured metric as it
 * keeps a plain name. */
#include "ops/metric_spec.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *skip_space(const char *s) {
    while (*s && isspace((unsigned char)*s)) s++;
    return s;
}

/* Copies [a, b) without surrounding spaces into out (len bytes); false when it does not fit. */
static bool copy_trimmed(const char *a, const char *b, char *out, size_t len) {
    while (a < b && isspace((unsigned char)*a)) a++;
    while (b > a && isspace((unsigned char)b[-1])) b--;
    if ((size_t)(b - a) >= len) return false;
    memcpy(out, a, (size_t)(b - a));
    out[b - a] = '\0';
    return true;
}

/* A whole-string number (finite), as JSON or Python would write it. */
static bool parse_number(const char *text, double *v) {
    if (!text[0]) return false;
    char *end;
    errno = 0;
    *v = strtod(text, &end);
    return *end == '\0' && errno == 0 && isfinite(*v);
}

/* One value starting at *p: a [list], a quoted word, or text up to the next top-level ',' or ')'. */
static loom_status parse_value(const char *spec, const char **p, loom_metric_arg *a, loom_error *err) {
    const char *s = skip_space(*p);
    a->n_numbers = -1;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (!close) return loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%s': argument %s: the list has no ']'", spec, a->key);
        a->n_numbers = 0;
        if (!copy_trimmed(s, close + 1, a->text, sizeof a->text)) a->text[0] = '\0';
        const char *q = s + 1;
        while (*skip_space(q) != ']') {
            const char *e = q;
            while (e < close && *e != ',') e++;
            char item[64];
            double v;
            if (!copy_trimmed(q, e, item, sizeof item) || !parse_number(item, &v))
                return loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%s': argument %s: '%.40s' in the list is not a number",
                                      spec, a->key, item);
            if (a->n_numbers >= LOOM_METRIC_MAX_THRESHOLDS)
                return loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%s': argument %s: more than %d numbers", spec,
                                      a->key, LOOM_METRIC_MAX_THRESHOLDS);
            a->numbers[a->n_numbers++] = v;
            q = e < close ? e + 1 : close;
        }
        *p = close + 1;
        return LOOM_OK;
    }
    if (*s == '\'' || *s == '"') {
        const char *close = strchr(s + 1, *s);
        if (!close) return loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%s': argument %s: unclosed quote", spec, a->key);
        if (!copy_trimmed(s + 1, close, a->text, sizeof a->text))
            return loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%s': argument %s: value too long", spec, a->key);
        *p = close + 1;
        return LOOM_OK;
    }
    const char *e = s;
    while (*e && *e != ',' && *e != ')') e++;
    if (!copy_trimmed(s, e, a->text, sizeof a->text) || !a->text[0])
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%s': argument %s has %s value", spec, a->key,
                              a->text[0] ? "a too long" : "no");
    double v;
    if (parse_number(a->text, &v)) {
        a->n_numbers = 1;
        a->numbers[0] = v;
    }
    *p = e;
    return LOOM_OK;
}

loom_status loom_metric_parse(const char *spec, loom_metric_call *call, loom_error *err) {
    memset(call, 0, sizeof *call);
    if (strlen(spec) >= LOOM_METRIC_SPEC_MAX)
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%.60s...': the spec is longer than %d characters", spec,
                              LOOM_METRIC_SPEC_MAX - 1);
    const char *open = strchr(spec, '(');
    const char *base_end = open ? open : spec + strlen(spec);
    if (!copy_trimmed(spec, base_end, call->base, sizeof call->base) || !call->base[0])
        return loom_set_error(err, LOOM_ERR_NAME, "metric '%s': no name before the arguments, or a name too long", spec);
    if (!open) return LOOM_OK;
    call->has_parens = true;
    const char *p = skip_space(open + 1);
    if (*p == ')') return *skip_space(p + 1) ? loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%s': text after ')'", spec)
                                             : LOOM_OK;
    for (;;) {
        const char *eq = p;
        while (*eq && *eq != '=' && *eq != ',' && *eq != ')') eq++;
        if (*eq != '=')
            return loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%s': arguments are key=value pairs", spec);
        if (call->n_args >= LOOM_METRIC_MAX_ARGS)
            return loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%s': more than %d arguments", spec, LOOM_METRIC_MAX_ARGS);
        loom_metric_arg *a = &call->args[call->n_args];
        if (!copy_trimmed(p, eq, a->key, sizeof a->key) || !a->key[0])
            return loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%s': an argument has no key, or a key too long", spec);
        for (int i = 0; i < call->n_args; i++)
            if (strcmp(call->args[i].key, a->key) == 0)
                return loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%s': argument %s given twice", spec, a->key);
        p = eq + 1;
        loom_status s = parse_value(spec, &p, a, err);
        if (s) return s;
        call->n_args++;
        p = skip_space(p);
        if (*p == ',') {
            p = skip_space(p + 1);
            continue;
        }
        if (*p == ')' && !*skip_space(p + 1)) return LOOM_OK;
        return loom_set_error(err, LOOM_ERR_ARGUMENT, "metric '%s': expected ',' or a final ')' after argument %s", spec,
                              a->key);
    }
}

loom_metric_arg *loom_metric_arg_get(loom_metric_call *call, const char *key) {
    for (int i = 0; i < call->n_args; i++)
        if (strcmp(call->args[i].key, key) == 0) {
            call->args[i].used = true;
            /* Python's None: the argument's default */
            if (strcmp(call->args[i].text, "None") == 0 || strcmp(call->args[i].text, "null") == 0) return NULL;
            return &call->args[i];
        }
    return NULL;
}
