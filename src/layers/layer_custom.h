/* layer_custom.h — what model files need to know about loom_custom layers (layer_custom.c).
 *
 * A custom layer gets its own op table, allocated with the copy of the user's definition in
 * L->user (one block: free(L->user) releases both), so summaries, messages and model files show
 * the user's class name and loom_call checks the user's input counts. Its saved config holds a
 * "loom_custom" object (class name, weight names and shapes, output shape); its C callbacks cannot
 * be saved, so such a file is loaded in two steps: the model rebuilt in code, then
 * loom_load_weights. */
#ifndef LOOM_LAYER_CUSTOM_H
#define LOOM_LAYER_CUSTOM_H

#include "graph/graph.h"

/* The key a custom layer's config carries; its presence marks the layer as custom whatever its
 * class name (a user may have named the class "Dense"). */
#define LOOM_CUSTOM_CONFIG_KEY "loom_custom"

/* The template of every custom layer's op table ("CustomLayer"); its load_config refuses with a
 * message saying how to load such a model. */
extern const loom_op loom_op_custom;

/* Is this layer a loom_custom one? */
bool loom_layer_is_custom(const loom_layer *L);

/* From a saved config (a cJSON object holding LOOM_CUSTOM_CONFIG_KEY):
 *   weights_only false: NULL, with g's error saying the model must be rebuilt in code and loaded
 *                       with loom_load_weights (this is loom_op_custom.load_config);
 *   weights_only true:  a stand-in layer holding the saved weight shapes and output shape, whose
 *                       forward writes zeros: enough for loom_load_weights to read the file's
 *                       weights, never to be run. */
loom_layer *loom_custom_from_config(loom_graph *g, const char *name, const void *cjson_config, bool weights_only);

#endif
