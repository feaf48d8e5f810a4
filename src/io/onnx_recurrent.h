/* onnx_recurrent.h — SimpleRNN, LSTM, GRU and Bidirectional as ONNX (onnx_recurrent.c; internal
 * to io/, only built with LOOM_HAVE_ONNX). */
#ifndef LOOM_ONNX_RECURRENT_H
#define LOOM_ONNX_RECURRENT_H

#include "io/onnx_emit.h"

/* A recurrent layer call / a Bidirectional one: ONNX's RNN / LSTM / GRU operator where it can
 * express the layer, else the steps unrolled. */
bool loom_onnx_recurrent(onnx_exporter *e, const onnx_call *c);
bool loom_onnx_bidirectional(onnx_exporter *e, const onnx_call *c);
/* RecurrentOutput: one of a return_state layer's outputs, sliced from its (batch, rows, units). */
bool loom_onnx_recurrent_output(onnx_exporter *e, const onnx_call *c);

#endif
