/* onnx_graph.h — a small builder of ONNX graphs over protobuf-c's generated onnx.proto structs
 * (onnx_graph.c; internal to io/, used by onnx_export.c). Only built with LOOM_HAVE_ONNX.
 *
 * Everything it allocates (strings, arrays, messages) belongs to the builder and is freed at once
 * by ox_free. An allocation failure sets `failed` and the calls go on harmlessly (they return a
 * placeholder name, a NULL node that the attribute setters ignore), so the exporter can write a
 * layer's nodes without a check after each and test `failed` at the end. */
#ifndef LOOM_ONNX_GRAPH_H
#define LOOM_ONNX_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "onnx.pb-c.h"

typedef struct ox {
    Onnx__GraphProto graph;
    size_t cap_node, cap_init, cap_in, cap_out;
    void **owned;     /* every allocation, freed by ox_free */
    size_t n_owned, cap_owned;
    bool failed;      /* out of memory */
} ox;

void ox_init(ox *x, const char *graph_name);
void ox_free(ox *x);

/* A string owned by the builder: printf-formatted. */
const char *ox_str(ox *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "<prefix>/<suffix>": the names of the intermediate values and constants of one layer call. */
const char *ox_tmp(ox *x, const char *prefix, const char *suffix);

/* A node of op_type with n_in inputs and n_out outputs (names copied). "" is an omitted optional
 * input or output, as ONNX spells it. NULL when out of memory. */
Onnx__NodeProto *ox_node(ox *x, const char *op_type, int n_in, const char *const *in, int n_out,
                         const char *const *out);
/* The usual single-output nodes: ox_op1(x, "Relu", out, a), ox_op2(x, "Add", out, a, b). */
Onnx__NodeProto *ox_op1(ox *x, const char *op_type, const char *out, const char *a);
Onnx__NodeProto *ox_op2(ox *x, const char *op_type, const char *out, const char *a, const char *b);

/* Attributes (n may be NULL, then nothing happens). */
void ox_attr_int(ox *x, Onnx__NodeProto *n, const char *name, int64_t v);
void ox_attr_float(ox *x, Onnx__NodeProto *n, const char *name, float v);
void ox_attr_ints(ox *x, Onnx__NodeProto *n, const char *name, int count, const int64_t *v);
void ox_attr_string(ox *x, Onnx__NodeProto *n, const char *name, const char *v);
void ox_attr_strings(ox *x, Onnx__NodeProto *n, const char *name, int count, const char *const *v);

/* Initializers: a float tensor (data copied, count = product of dims) and a 1-D int64 one.
 * Return the name. */
const char *ox_floats(ox *x, const char *name, int rank, const int64_t *dims, const float *data);
const char *ox_int64s(ox *x, const char *name, int count, const int64_t *v);
/* A float scalar (rank 0). */
const char *ox_scalar(ox *x, const char *name, float v);

/* Graph inputs and outputs: float32 tensors; dims[i] < 0 is the symbolic dim params[i]. */
void ox_input(ox *x, const char *name, int rank, const int64_t *dims, const char *const *params);
void ox_output(ox *x, const char *name, int rank, const int64_t *dims, const char *const *params);

#endif
