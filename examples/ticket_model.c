/* ticket_model.c — the "ticket" model of the Keras functional-API guide, with titles and bodies
 * of variable length (Input(shape=(None,))), in C with loom.
 *
 *   title (None,) -> Embedding(10000, 64, mask_zero) -> LSTM(128) \
 *   body  (None,) -> Embedding(10000, 64, mask_zero) -> LSTM(32)   -> Concatenate -> Dense(1)  "priority"
 *   tags  (12,)   -----------------------------------------------/               \ Dense(4)  "department"
 *
 * compiled as the guide does: RMSprop(1e-3), binary crossentropy (from logits) on "priority" with
 * weight 1.0, categorical crossentropy (from logits) on "department" with weight 0.2.
 *
 * The data is synthetic but learnable: titles of 3..10 words and bodies of 10..100 words, padded
 * with 0 (the Embedding masks it) to the longest of the data set and given with their lengths, so
 * each batch is trimmed to its own longest title and body. A ticket is urgent when its title
 * holds one of 20 "urgent" words or its first tag is set; its department is the one whose 10
 * words its body uses most. The program prints the losses per head and the total per
 * epoch, then predicts tickets longer than any seen in training.
 *
 *   example_ticket_model [epochs]      (default 3) */
#include <loom.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NUM_WORDS 10000
#define NUM_TAGS 12
#define NUM_DEPARTMENTS 4
#define N 1280
#define TITLE_MAX 10
#define BODY_MAX 100
#define URGENT_WORDS 20   /* words 1..20 in a title make a ticket urgent */
#define DEPT_WORDS_AT 21  /* then 10 words per department */
#define DEPT_WORDS 10

static float title[N * TITLE_MAX], body[N * BODY_MAX], tags[N * NUM_TAGS], priority[N], department[N * NUM_DEPARTMENTS];
static int title_len[N], body_len[N];

static int word(void) { return 1 + rand() % (NUM_WORDS - 1); } /* 0 is padding */

static void make_data(void) {
    srand(2024);
    for (int i = 0; i < N; i++) {
        int urgent = 0, uses[NUM_DEPARTMENTS] = {0};
        title_len[i] = 3 + rand() % (TITLE_MAX - 2);
        body_len[i] = 10 + rand() % (BODY_MAX - 9);
        for (int t = 0; t < title_len[i]; t++) {
            int w = rand() % 8 == 0 ? 1 + rand() % URGENT_WORDS : word();
            title[i * TITLE_MAX + t] = (float)w;
            urgent |= w <= URGENT_WORDS;
        }
        int lean = rand() % NUM_DEPARTMENTS; /* the body leans towards one department's words */
        for (int t = 0; t < body_len[i]; t++) {
            int w = word();
            if (rand() % 4 == 0) w = DEPT_WORDS_AT + lean * DEPT_WORDS + rand() % DEPT_WORDS;
            else if (rand() % 8 == 0) w = DEPT_WORDS_AT + rand() % (NUM_DEPARTMENTS * DEPT_WORDS); /* noise */
            body[i * BODY_MAX + t] = (float)w;
            if (w >= DEPT_WORDS_AT && w < DEPT_WORDS_AT + NUM_DEPARTMENTS * DEPT_WORDS) uses[(w - DEPT_WORDS_AT) / DEPT_WORDS]++;
        }
        for (int k = 0; k < NUM_TAGS; k++) tags[i * NUM_TAGS + k] = (float)(rand() % 4 == 0);
        urgent |= tags[i * NUM_TAGS] > 0;
        priority[i] = (float)urgent;
        int best = 0;
        for (int k = 1; k < NUM_DEPARTMENTS; k++)
            if (uses[k] > uses[best]) best = k;
        for (int k = 0; k < NUM_DEPARTMENTS; k++) department[i * NUM_DEPARTMENTS + k] = (float)(k == best);
    }
}

static loom_model *make_model(void) {
    loom_graph *g = loom_graph_new(42);
    loom_tensor *title_in = loom_input(g, "title", 1, (int[]){LOOM_DIM_VARIABLE});
    loom_tensor *body_in = loom_input(g, "body", 1, (int[]){LOOM_DIM_VARIABLE});
    loom_tensor *tags_in = loom_input(g, "tags", 1, (int[]){NUM_TAGS});
    loom_rnn_options ro = loom_rnn_defaults();
    loom_tensor *tf = loom_call(loom_lstm(g, "title_lstm", 128, &ro),
                                loom_call(loom_embedding(g, "title_embedding", NUM_WORDS, 64, 1), title_in));
    loom_tensor *bf = loom_call(loom_lstm(g, "body_lstm", 32, &ro),
                                loom_call(loom_embedding(g, "body_embedding", NUM_WORDS, 64, 1), body_in));
    loom_tensor *x = loom_call_n(loom_concatenate(g, "features", -1), 3, (loom_tensor *[]){tf, bf, tags_in});
    loom_tensor *prio = loom_call(loom_dense(g, "priority", 1, LOOM_LINEAR, NULL), x);
    loom_tensor *dept = loom_call(loom_dense(g, "department", NUM_DEPARTMENTS, LOOM_LINEAR, NULL), x);
    loom_model *m = loom_model_new(g, 3, (loom_tensor *[]){title_in, body_in, tags_in}, 2, (loom_tensor *[]){prio, dept});
    if (!m) {
        fprintf(stderr, "building the model: %s\n", loom_graph_error(g));
        loom_graph_free(g);
        return NULL;
    }
    const char *outs[] = {"priority", "department"};
    loom_loss losses[] = {{.name = "binary_crossentropy", .from_logits = 1},
                          {.name = "categorical_crossentropy", .from_logits = 1}};
    float weights[] = {1.0f, 0.2f};
    loom_metric_spec metrics[] = {{"priority", "binary_accuracy(threshold=0)"}, {"department", "accuracy"}};
    loom_compile_config cfg = {.n_losses = 2, .losses = losses, .loss_outputs = outs,
                               .n_loss_weights = 2, .loss_weights = weights, .loss_weight_outputs = outs,
                               .n_metrics = 2, .metrics = metrics, .optimizer = loom_rmsprop(1e-3f)};
    if (loom_compile(m, &cfg)) {
        fprintf(stderr, "compile: %s\n", loom_model_error(m));
        loom_model_free(m);
        return NULL;
    }
    return m;
}

int main(int argc, char **argv) {
    int epochs = argc > 1 ? atoi(argv[1]) : 3;
    if (epochs < 1) epochs = 1;
    make_data();
    loom_model *m = make_model();
    if (!m) return 1;
    /* padded to the longest of the data set, with each sample's length: batches are trimmed */
    loom_array x[] = {
        {.name = "title", .data = title, .n = N, .count = (size_t)N * TITLE_MAX, .lengths = title_len},
        {.name = "body", .data = body, .n = N, .count = (size_t)N * BODY_MAX, .lengths = body_len},
        {.name = "tags", .data = tags, .n = N, .count = (size_t)N * NUM_TAGS},
    };
    loom_array y[] = {
        {.name = "priority", .data = priority, .n = N, .count = N},
        {.name = "department", .data = department, .n = N, .count = (size_t)N * NUM_DEPARTMENTS},
    };
    loom_data data = {.n_x = 3, .x = x, .n_y = 2, .y = y};
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = 32;
    fo.epochs = epochs;
    fo.validation_split = 0.2f;
    loom_history *h = NULL;
    if (loom_fit(m, &data, &fo, &h)) {
        fprintf(stderr, "fit: %s\n", loom_model_error(m));
        loom_history_free(h);
        loom_model_free(m);
        return 1;
    }
    printf("epoch  priority_loss  department_loss  loss (1.0 x priority + 0.2 x department)  val_loss\n");
    for (int e = 0; e < epochs; e++)
        printf("%5d  %13.4f  %15.4f  %9.4f%33s%.4f\n", e + 1, loom_history_get(h, "priority_loss", e),
               loom_history_get(h, "department_loss", e), loom_history_get(h, "loss", e), "",
               loom_history_get(h, "val_loss", e));
    printf("last epoch: priority accuracy %.3f, department accuracy %.3f (validation %.3f, %.3f)\n",
           loom_history_get(h, "priority_binary_accuracy", epochs - 1), loom_history_get(h, "department_accuracy", epochs - 1),
           loom_history_get(h, "val_priority_binary_accuracy", epochs - 1),
           loom_history_get(h, "val_department_accuracy", epochs - 1));
    loom_history_free(h);

    /* tickets longer than any in training: a 16-word title and a 160-word body */
    enum { LT = 16, LB = 160, NP = 2 };
    static float pt[NP * LT], pb[NP * LB], ptags[NP * NUM_TAGS];
    srand(7);
    for (int i = 0; i < NP * LT; i++) pt[i] = (float)(i == 0 ? 7 : URGENT_WORDS + word() % (NUM_WORDS - URGENT_WORDS)); /* the first is urgent */
    for (int i = 0; i < NP * LB; i++) pb[i] = (float)word();
    loom_array px[] = {{.name = "title", .data = pt, .n = NP, .count = NP * LT},
                       {.name = "body", .data = pb, .n = NP, .count = NP * LB},
                       {.name = "tags", .data = ptags, .n = NP, .count = NP * NUM_TAGS}};
    float prio_logit[NP], dept_logits[NP * NUM_DEPARTMENTS];
    if (loom_predict(m, 3, px, NP, (float *[]){prio_logit, dept_logits})) {
        fprintf(stderr, "predict: %s\n", loom_model_error(m));
        loom_model_free(m);
        return 1;
    }
    for (int i = 0; i < NP; i++)
        printf("new ticket %d (%d-word title, %d-word body): priority logit %+.3f, department logits %+.2f %+.2f %+.2f %+.2f\n",
               i, LT, LB, prio_logit[i], dept_logits[i * 4], dept_logits[i * 4 + 1], dept_logits[i * 4 + 2],
               dept_logits[i * 4 + 3]);
    loom_model_free(m);
    return 0;
}
