/* rnn.h — recurrent layers and the wrappers around them (internal; layer_rnn.c, layer_wrappers.c). */
#ifndef LOOM_RNN_H
#define LOOM_RNN_H

#include "graph/graph.h"

/* Op tables (model files: model_json.c's SELF_DESCRIBING list). */
extern const loom_op loom_op_simple_rnn, loom_op_lstm, loom_op_gru, loom_op_bidirectional,
    loom_op_time_distributed, loom_op_recurrent_output;

/* Keras's return_state, taken apart: output k of a return_state recurrent layer with S states
 * (k 0: the output, 1..S: the final h, c), seq: whether that layer returns sequences. Called on
 * the layer's output. No weights. */
loom_layer *loom_recurrent_output(loom_graph *g, const char *name, int k, int states, int seq);
/* How many states a recurrent layer carries (LSTM 2, else 1). */
int loom_rnn_state_count(const loom_layer *L);

/* Configuration of the recurrent layers: L->units, L->activation, and iarg slots. */
enum {
    RNN_SEQ = 0,    /* return_sequences */
    RNN_BACK = 1,   /* go_backwards */
    RNN_BIAS = 2,   /* use_bias */
    RNN_RACT = 3,   /* recurrent_activation (LSTM, GRU) */
    RNN_UFB = 4,    /* unit_forget_bias (LSTM) */
    RNN_RESET = 5,  /* reset_after (GRU) */
    RNN_ZERO = 6,   /* zero_output_for_mask: masked steps output 0 (Bidirectional forces it with
                       return_sequences, as Keras does) */
    RNN_OWNED = 7,  /* 1 once a wrapper owns the layer: it may no longer be called by itself */
    RNN_STATE = 8,  /* return_state: the output holds the final states after the output rows, one
                       row each: (steps + S, units) with return_sequences, else (1 + S, units);
                       S = 2 (h, c) for LSTM, 1 (h) otherwise. RecurrentOutput layers take them apart */
    RNN_STATEFUL = 9, /* stateful: the final states of a batch start the next (L->user holds them) */
    RNN_SBATCH = 10 /* stateful: the batch size the carried states are sized for */
};
/* recurrent_dropout's rate is farg[0]. */

/* Stateful layers: the largest batch they take (0: not stateful). */
static inline int loom_rnn_stateful_batch(const loom_layer *L) { return L->iarg[RNN_STATEFUL] ? L->iarg[RNN_SBATCH] : 0; }

/* SimpleRNN, LSTM or GRU? */
bool loom_is_rnn_op(const loom_op *op);

/* Builds a layer held by a wrapper: as op->build, but an RNN's "owned" guard does not apply. */
loom_status loom_wrapped_build(loom_layer *inner, int n_in, const loom_shape *in, loom_shape *out,
                               loom_error *err);

#endif
