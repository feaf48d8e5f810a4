/* onnx_graph.c — the ONNX graph builder (onnx_graph.h): protobuf-c messages made field by field,
 * every allocation recorded so that ox_free releases the whole graph at once. */
#ifdef LOOM_HAVE_ONNX /* otherwise onnx_export.c only returns its "built without ONNX" error */
#include "io/onnx_graph.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- ownership */

static void *own(ox *x, void *p) {
    if (!p) {
        x->failed = true;
        return NULL;
    }
    if (x->n_owned == x->cap_owned) {
        size_t cap = x->cap_owned ? 2 * x->cap_owned : 256;
        void **grown = realloc(x->owned, cap * sizeof *grown);
        if (!grown) {
            free(p);
            x->failed = true;
            return NULL;
        }
        x->owned = grown;
        x->cap_owned = cap;
    }
    x->owned[x->n_owned++] = p;
    return p;
}

static void *ox_calloc(ox *x, size_t n, size_t size) { return own(x, calloc(n ? n : 1, size)); }

/* Appends p to a growable array of pointers held in the graph (its storage is owned separately
 * because it moves when it grows). */
static bool push(ox *x, void ***arr, size_t *n, size_t *cap, void *p) {
    if (!p) return false;
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 16;
        void **grown = realloc(*arr, c * sizeof *grown);
        if (!grown) {
            x->failed = true;
            return false;
        }
        *arr = grown;
        *cap = c;
    }
    (*arr)[(*n)++] = p;
    return true;
}

void ox_init(ox *x, const char *graph_name) {
    memset(x, 0, sizeof *x);
    Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
    x->graph = g;
    x->graph.name = (char *)ox_str(x, "%s", graph_name);
}

void ox_free(ox *x) {
    for (size_t i = 0; i < x->n_owned; i++) free(x->owned[i]);
    free(x->owned);
    free(x->graph.node);
    free(x->graph.initializer);
    free(x->graph.input);
    free(x->graph.output);
    memset(x, 0, sizeof *x);
}

/* ---------------------------------------------------------------- names */

const char *ox_str(ox *x, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (len < 0) {
        x->failed = true;
        return "";
    }
    char *s = ox_calloc(x, (size_t)len + 1, 1);
    if (!s) return "";
    va_start(ap, fmt);
    vsnprintf(s, (size_t)len + 1, fmt, ap);
    va_end(ap);
    return s;
}

const char *ox_tmp(ox *x, const char *prefix, const char *suffix) { return ox_str(x, "%s/%s", prefix, suffix); }

/* ---------------------------------------------------------------- nodes and attributes */

static char **copy_names(ox *x, int n, const char *const *names) {
    char **v = ox_calloc(x, (size_t)n, sizeof *v);
    if (!v) return NULL;
    for (int i = 0; i < n; i++) v[i] = (char *)ox_str(x, "%s", names[i]);
    return v;
}

Onnx__NodeProto *ox_node(ox *x, const char *op_type, int n_in, const char *const *in, int n_out,
                         const char *const *out) {
    Onnx__NodeProto *n = ox_calloc(x, 1, sizeof *n);
    if (!n) return NULL;
    Onnx__NodeProto init = ONNX__NODE_PROTO__INIT;
    *n = init;
    n->op_type = (char *)ox_str(x, "%s", op_type);
    n->input = copy_names(x, n_in, in);
    n->output = copy_names(x, n_out, out);
    if (!n->input || !n->output) return NULL;
    n->n_input = (size_t)n_in;
    n->n_output = (size_t)n_out;
    /* node names are optional in ONNX; naming each after its first output makes the graph readable */
    n->name = (char *)ox_str(x, "%s:%s", op_type, n_out > 0 ? out[0] : "");
    if (!push(x, (void ***)&x->graph.node, &x->graph.n_node, &x->cap_node, n)) return NULL;
    return n;
}

Onnx__NodeProto *ox_op1(ox *x, const char *op_type, const char *out, const char *a) {
    return ox_node(x, op_type, 1, (const char *[]){a}, 1, (const char *[]){out});
}

Onnx__NodeProto *ox_op2(ox *x, const char *op_type, const char *out, const char *a, const char *b) {
    return ox_node(x, op_type, 2, (const char *[]){a, b}, 1, (const char *[]){out});
}

static Onnx__AttributeProto *new_attr(ox *x, Onnx__NodeProto *n, const char *name,
                                      Onnx__AttributeProto__AttributeType type) {
    if (!n) return NULL;
    Onnx__AttributeProto *a = ox_calloc(x, 1, sizeof *a);
    if (!a) return NULL;
    Onnx__AttributeProto init = ONNX__ATTRIBUTE_PROTO__INIT;
    *a = init;
    a->name = (char *)ox_str(x, "%s", name);
    a->has_type = 1;
    a->type = type;
    Onnx__AttributeProto **grown = ox_calloc(x, n->n_attribute + 1, sizeof *grown);
    if (!grown) return NULL;
    if (n->n_attribute) memcpy(grown, n->attribute, n->n_attribute * sizeof *grown);
    grown[n->n_attribute++] = a;
    n->attribute = grown; /* the old array stays owned until ox_free: nodes have few attributes */
    return a;
}

void ox_attr_int(ox *x, Onnx__NodeProto *n, const char *name, int64_t v) {
    Onnx__AttributeProto *a = new_attr(x, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) a->has_i = 1, a->i = v;
}

void ox_attr_float(ox *x, Onnx__NodeProto *n, const char *name, float v) {
    Onnx__AttributeProto *a = new_attr(x, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) a->has_f = 1, a->f = v;
}

void ox_attr_ints(ox *x, Onnx__NodeProto *n, const char *name, int count, const int64_t *v) {
    Onnx__AttributeProto *a = new_attr(x, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    if (!a) return;
    a->ints = ox_calloc(x, (size_t)count, sizeof *a->ints);
    if (!a->ints) return;
    memcpy(a->ints, v, (size_t)count * sizeof *v);
    a->n_ints = (size_t)count;
}

void ox_attr_floats(ox *x, Onnx__NodeProto *n, const char *name, int count, const float *v) {
    Onnx__AttributeProto *a = new_attr(x, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS);
    if (!a) return;
    a->floats = ox_calloc(x, (size_t)count, sizeof *a->floats);
    if (!a->floats) return;
    memcpy(a->floats, v, (size_t)count * sizeof *v);
    a->n_floats = (size_t)count;
}

static ProtobufCBinaryData bytes_of(ox *x, const char *s) {
    ProtobufCBinaryData b = {strlen(s), (uint8_t *)ox_str(x, "%s", s)};
    return b;
}

void ox_attr_string(ox *x, Onnx__NodeProto *n, const char *name, const char *v) {
    Onnx__AttributeProto *a = new_attr(x, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    if (a) a->has_s = 1, a->s = bytes_of(x, v);
}

void ox_attr_strings(ox *x, Onnx__NodeProto *n, const char *name, int count, const char *const *v) {
    Onnx__AttributeProto *a = new_attr(x, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS);
    if (!a) return;
    a->strings = ox_calloc(x, (size_t)count, sizeof *a->strings);
    if (!a->strings) return;
    for (int i = 0; i < count; i++) a->strings[i] = bytes_of(x, v[i]);
    a->n_strings = (size_t)count;
}

/* ---------------------------------------------------------------- initializers */

static Onnx__TensorProto *new_tensor(ox *x, const char *name, int rank, const int64_t *dims, int32_t type) {
    Onnx__TensorProto *t = ox_calloc(x, 1, sizeof *t);
    if (!t) return NULL;
    Onnx__TensorProto init = ONNX__TENSOR_PROTO__INIT;
    *t = init;
    t->name = (char *)ox_str(x, "%s", name);
    t->has_data_type = 1;
    t->data_type = type;
    t->dims = ox_calloc(x, (size_t)rank, sizeof *t->dims);
    if (!t->dims) return NULL;
    if (rank) memcpy(t->dims, dims, (size_t)rank * sizeof *dims);
    t->n_dims = (size_t)rank;
    return t;
}

const char *ox_weight(ox *x, const char *name, int rank, const int64_t *dims, const float *data) {
    for (size_t i = 0; i < x->graph.n_initializer; i++) /* made already (a layer called again) */
        if (strcmp(x->graph.initializer[i]->name, name) == 0) return x->graph.initializer[i]->name;
    return ox_floats(x, name, rank, dims, data);
}

const char *ox_floats(ox *x, const char *name, int rank, const int64_t *dims, const float *data) {
    size_t count = 1;
    for (int i = 0; i < rank; i++) count *= (size_t)dims[i];
    Onnx__TensorProto *t = new_tensor(x, name, rank, dims, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
    if (!t) return name;
    /* float_data is packed by protobuf-c in little-endian order whatever the host's */
    t->float_data = ox_calloc(x, count, sizeof *t->float_data);
    if (!t->float_data) return name;
    memcpy(t->float_data, data, count * sizeof *data);
    t->n_float_data = count;
    push(x, (void ***)&x->graph.initializer, &x->graph.n_initializer, &x->cap_init, t);
    return t->name;
}

const char *ox_int64s(ox *x, const char *name, int count, const int64_t *v) {
    int64_t dims[1] = {count};
    Onnx__TensorProto *t = new_tensor(x, name, 1, dims, ONNX__TENSOR_PROTO__DATA_TYPE__INT64);
    if (!t) return name;
    t->int64_data = ox_calloc(x, (size_t)count, sizeof *t->int64_data);
    if (!t->int64_data) return name;
    memcpy(t->int64_data, v, (size_t)count * sizeof *v);
    t->n_int64_data = (size_t)count;
    push(x, (void ***)&x->graph.initializer, &x->graph.n_initializer, &x->cap_init, t);
    return t->name;
}

const char *ox_int64_scalar(ox *x, const char *name, int64_t v) {
    Onnx__TensorProto *t = new_tensor(x, name, 0, NULL, ONNX__TENSOR_PROTO__DATA_TYPE__INT64);
    if (!t) return name;
    t->int64_data = ox_calloc(x, 1, sizeof *t->int64_data);
    if (!t->int64_data) return name;
    t->int64_data[0] = v;
    t->n_int64_data = 1;
    push(x, (void ***)&x->graph.initializer, &x->graph.n_initializer, &x->cap_init, t);
    return t->name;
}

const char *ox_scalar(ox *x, const char *name, float v) { return ox_floats(x, name, 0, NULL, &v); }

/* ---------------------------------------------------------------- graph inputs and outputs */

static Onnx__ValueInfoProto *value_info(ox *x, const char *name, int rank, const int64_t *dims,
                                        const char *const *params) {
    Onnx__ValueInfoProto *v = ox_calloc(x, 1, sizeof *v);
    Onnx__TypeProto *tp = ox_calloc(x, 1, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = ox_calloc(x, 1, sizeof *tt);
    Onnx__TensorShapeProto *sh = ox_calloc(x, 1, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dv = ox_calloc(x, (size_t)rank, sizeof *dv);
    if (!v || !tp || !tt || !sh || !dv) return NULL;
    Onnx__ValueInfoProto vi = ONNX__VALUE_INFO_PROTO__INIT;
    Onnx__TypeProto tpi = ONNX__TYPE_PROTO__INIT;
    Onnx__TypeProto__Tensor tti = ONNX__TYPE_PROTO__TENSOR__INIT;
    Onnx__TensorShapeProto shi = ONNX__TENSOR_SHAPE_PROTO__INIT;
    *v = vi, *tp = tpi, *tt = tti, *sh = shi;
    for (int i = 0; i < rank; i++) {
        Onnx__TensorShapeProto__Dimension *d = ox_calloc(x, 1, sizeof *d);
        if (!d) return NULL;
        Onnx__TensorShapeProto__Dimension di = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
        *d = di;
        if (dims[i] < 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = (char *)ox_str(x, "%s", params[i]);
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        }
        dv[i] = d;
    }
    sh->dim = dv;
    sh->n_dim = (size_t)rank;
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    v->name = (char *)ox_str(x, "%s", name);
    v->type = tp;
    return v;
}

void ox_input(ox *x, const char *name, int rank, const int64_t *dims, const char *const *params) {
    push(x, (void ***)&x->graph.input, &x->graph.n_input, &x->cap_in, value_info(x, name, rank, dims, params));
}

void ox_output(ox *x, const char *name, int rank, const int64_t *dims, const char *const *params) {
    push(x, (void ***)&x->graph.output, &x->graph.n_output, &x->cap_out, value_info(x, name, rank, dims, params));
}

#else
typedef int loom_onnx_graph_unused; /* ISO C wants a translation unit to declare something */
#endif
