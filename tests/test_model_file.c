/* test_model_file.c — loom's model files (loom_model_save / load / parse, loom_load_weights,
 * ModelCheckpoint) through the public API, plus the file layout documented in src/io/model_file.c
 * (magic, version, tagged sections with CRC-32) to forge hostile files.
 *
 *  1. round trip of a model using every saveable layer class, every initialiser, every optimizer
 *     kind and schedule kind: same architecture, bit-identical parameters, predictions, summary,
 *     compile settings, and the same next training step;
 *  2. exact resume: 3 epochs in one go == 2 epochs, save, load in a fresh process, 1 more epoch;
 *  3. crash safety: SIGKILL at random moments of repeated saves never leaves a broken file;
 *  4. hostile files: every truncation and byte flip, wrong version / magic / CRC, forged JSON;
 *  5. load_weights by name, all or nothing;
 *  6. ModelCheckpoint; 7. user C losses and uncompiled models.
 *
 * CRCs of forged files are computed with zlib's crc32 (same IEEE polynomial), independently of
 * loom's own implementation. */
#include "check.h"
#include "loom.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>


/* ---------------------------------------------------------------- helpers */

static char tmpdir[64];

static uint64_t rng_state = 0x2545F4914F6CDD1DULL;

/* A test-local generator: the data must not depend on loom's own RNG. */
static uint64_t next_u64(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static float frand(float lo, float hi) { return lo + (hi - lo) * (float)((next_u64() >> 40) * (1.0 / 16777216.0)); }

static void fill(float *p, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) p[i] = frand(lo, hi);
}

static bool has(const char *s, const char *sub) { return s && sub && strstr(s, sub) != NULL; }

static void path_in(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", tmpdir, name); }

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static unsigned char *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    unsigned char *p = malloc((size_t)len + 1);
    if (p && fread(p, 1, (size_t)len, f) != (size_t)len) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *size = p ? (size_t)len : 0;
    return p;
}

static bool write_all(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, size, f) == size;
    return fclose(f) == 0 && ok;
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(dir);
}

/* Files in tmpdir whose name starts with prefix. */
static int count_files(const char *prefix) {
    DIR *d = opendir(tmpdir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

static bool same_params(loom_model *a, loom_model *b) {
    size_t n = loom_param_count(a);
    return n == loom_param_count(b) && memcmp(loom_params(a), loom_params(b), n * sizeof(float)) == 0;
}

static bool same_history(const loom_history *a, const loom_history *b) {
    if (!a || !b) return false;
    int ne = loom_history_epochs(a), nk = loom_history_num_keys(a);
    if (ne != loom_history_epochs(b) || nk != loom_history_num_keys(b)) return false;
    for (int i = 0; i < nk; i++) {
        const char *k = loom_history_key(a, i);
        if (strcmp(k, loom_history_key(b, i)) != 0) return false;
        const float *va = loom_history_values(a, k), *vb = loom_history_values(b, k);
        if (ne && (!va || !vb || memcmp(va, vb, (size_t)ne * sizeof(float)) != 0)) return false;
    }
    return true;
}

/* Layer names and classes in order, inputs and outputs by name. */
static bool same_architecture(loom_model *a, loom_model *b) {
    if (loom_model_num_layers(a) != loom_model_num_layers(b) || loom_model_num_inputs(a) != loom_model_num_inputs(b) ||
        loom_model_num_outputs(a) != loom_model_num_outputs(b))
        return false;
    for (int i = 0; i < loom_model_num_layers(a); i++) {
        loom_layer *la = loom_model_layer(a, i), *lb = loom_model_layer(b, i);
        if (strcmp(loom_layer_name(la), loom_layer_name(lb)) || strcmp(loom_layer_class(la), loom_layer_class(lb)) ||
            loom_layer_num_weights(la) != loom_layer_num_weights(lb))
            return false;
        for (int w = 0; w < loom_layer_num_weights(la); w++) {
            int da[LOOM_MAX_RANK] = {0}, db[LOOM_MAX_RANK] = {0};
            if (loom_layer_weight_shape(la, w, da) != loom_layer_weight_shape(lb, w, db) || memcmp(da, db, sizeof da) ||
                loom_param_offset(a, loom_layer_name(la), w) != loom_param_offset(b, loom_layer_name(lb), w))
                return false;
        }
    }
    for (int i = 0; i < loom_model_num_inputs(a); i++)
        if (strcmp(loom_model_input_name(a, i), loom_model_input_name(b, i)) ||
            loom_model_input_size(a, i) != loom_model_input_size(b, i))
            return false;
    for (int k = 0; k < loom_model_num_outputs(a); k++)
        if (strcmp(loom_model_output_name(a, k), loom_model_output_name(b, k)) ||
            loom_model_output_size(a, k) != loom_model_output_size(b, k))
            return false;
    return true;
}

static char *summary_text(loom_model *m) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    loom_summary(m, f);
    fclose(f);
    return buf;
}

/* Sets every parameter to a random value in +-[0.05, 0.5]. */
static void randomize(loom_model *m) {
    float *p = loom_params(m);
    for (size_t i = 0; i < loom_param_count(m); i++) {
        float v = frand(-0.45f, 0.45f);
        p[i] = v + (v < 0 ? -0.05f : 0.05f);
    }
}

/* Predictions of every output, concatenated (malloc'ed). */
static float *predict_all(loom_model *m, int n_x, const loom_array *x, size_t n, size_t *total) {
    int no = loom_model_num_outputs(m);
    size_t sum = 0;
    for (int k = 0; k < no; k++) sum += n * loom_model_output_size(m, k);
    float *all = calloc(sum + 1, sizeof *all);
    float *outs[LOOM_MAX_OUTPUTS];
    size_t at = 0;
    for (int k = 0; k < no; k++) {
        outs[k] = all + at;
        at += n * loom_model_output_size(m, k);
    }
    if (loom_predict(m, n_x, x, 7, outs) != LOOM_OK) {
        fprintf(stderr, "predict: %s\n", loom_model_error(m));
        free(all);
        return NULL;
    }
    *total = sum;
    return all;
}

/* ---- the file layout, to forge files: magic(8) version(4) count(4), then per section
 * tag(4) length(8) payload CRC(4). */

typedef struct sect {
    char tag[5];
    size_t at; /* offset of the tag */
    size_t n;  /* payload length */
} sect;

static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static int list_sections(const unsigned char *d, size_t size, sect *s, int max) {
    if (size < 16) return -1;
    uint32_t count = rd32(d + 12);
    size_t at = 16;
    int n = 0;
    for (uint32_t i = 0; i < count && n < max; i++) {
        if (at + 12 > size) return -1;
        memcpy(s[n].tag, d + at, 4);
        s[n].tag[4] = '\0';
        s[n].at = at;
        s[n].n = (size_t)rd32(d + at + 4) | (size_t)rd32(d + at + 8) << 32;
        if (at + 16 + s[n].n > size) return -1;
        at += 16 + s[n].n;
        n++;
    }
    return n;
}

static const sect *find_sect(const sect *s, int n, const char *tag) {
    for (int i = 0; i < n; i++)
        if (strcmp(s[i].tag, tag) == 0) return &s[i];
    return NULL;
}

static uint32_t section_crc(const char *tag, const unsigned char *payload, size_t n) {
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32(c, (const Bytef *)tag, 4);
    c = crc32(c, payload, (uInt)n);
    return (uint32_t)c;
}

/* Recomputes the CRC of a section in place (after a payload edit of the same length). */
static void fix_crc(unsigned char *d, const sect *s) {
    wr32(d + s->at + 12 + s->n, section_crc(s->tag, d + s->at + 12, s->n));
}

/* A copy of the file with one section's payload replaced (length and CRC recomputed). */
static unsigned char *replace_section(const unsigned char *d, size_t size, const char *tag, const void *payload, size_t n,
                                      size_t *out_size) {
    sect s[8];
    int ns = list_sections(d, size, s, 8);
    const sect *t = find_sect(s, ns, tag);
    if (!t) return NULL;
    size_t after = t->at + 16 + t->n;
    *out_size = size - t->n + n;
    unsigned char *o = malloc(*out_size);
    memcpy(o, d, t->at + 4);
    wr32(o + t->at + 4, (uint32_t)n);
    wr32(o + t->at + 8, (uint32_t)((uint64_t)n >> 32));
    memcpy(o + t->at + 12, payload, n);
    wr32(o + t->at + 12 + n, section_crc(tag, payload, n));
    memcpy(o + t->at + 16 + n, d + after, size - after);
    return o;
}

static cJSON *section_json(const unsigned char *d, size_t size, const char *tag) {
    sect s[8];
    int ns = list_sections(d, size, s, 8);
    const sect *t = find_sect(s, ns, tag);
    return t ? cJSON_ParseWithLength((const char *)d + t->at + 12, t->n) : NULL;
}

static cJSON *arch_layer(cJSON *arch, const char *name) {
    cJSON *layers = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(arch, "config"), "layers");
    cJSON *l;
    cJSON_ArrayForEach(l, layers) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(l, "name");
        if (cJSON_IsString(nm) && strcmp(nm->valuestring, name) == 0) return l;
    }
    return NULL;
}

/* Parses bytes with one JSON section replaced (valid CRC); the message goes into err. */
static loom_model *parse_with_json(const unsigned char *d, size_t size, const char *tag, cJSON *json, char *err,
                                   size_t errlen) {
    char *text = cJSON_PrintUnformatted(json);
    size_t n2;
    unsigned char *forged = replace_section(d, size, tag, text, strlen(text), &n2);
    err[0] = '\0';
    loom_model *m = loom_model_parse(forged, n2, "forged.loom", err, errlen);
    free(forged);
    free(text);
    return m;
}

static loom_model *parse_with_arch(const unsigned char *d, size_t size, cJSON *arch, char *err, size_t errlen) {
    return parse_with_json(d, size, "ARCH", arch, err, errlen);
}

/* ---------------------------------------------------------------- the big model */

#define BIG_N 24

typedef struct big_data {
    float a[BIG_N * 4], b[BIG_N * 6];
    float reg[BIG_N * 2], cls[BIG_N * 3], bin[BIG_N];
    loom_array x[2], y[3];
    loom_data d;
} big_data;

static void big_data_init(big_data *bd) {
    fill(bd->a, BIG_N * 4, -1, 1);
    fill(bd->b, BIG_N * 6, -1, 1);
    fill(bd->reg, BIG_N * 2, -2, 2);
    for (int i = 0; i < BIG_N; i++) {
        for (int c = 0; c < 3; c++) bd->cls[i * 3 + c] = c == i % 3;
        bd->bin[i] = (float)(i % 2);
    }
    bd->x[0] = (loom_array){.name = "a", .data = bd->a, .n = BIG_N, .count = BIG_N * 4};
    bd->x[1] = (loom_array){.name = "b", .data = bd->b, .n = BIG_N, .count = BIG_N * 6};
    bd->y[0] = (loom_array){.name = "out_reg", .data = bd->reg, .n = BIG_N, .count = BIG_N * 2};
    bd->y[1] = (loom_array){.name = "out_cls", .data = bd->cls, .n = BIG_N, .count = BIG_N * 3};
    bd->y[2] = (loom_array){.name = "out_logit", .data = bd->bin, .n = BIG_N, .count = BIG_N};
    bd->d = (loom_data){2, bd->x, 3, bd->y, 0, NULL};
}

/* Two inputs, a shared Dense called twice, every merge, Concatenate, Dropout, Reshape with -1,
 * Flatten, Activation, four heads (three losses, one without); every initialiser name appears. */
static loom_model *build_big(uint64_t seed) {
    loom_graph *g = loom_graph_new(seed);
    loom_tensor *a = loom_input(g, "a", 1, (int[]){4});
    loom_tensor *b = loom_input(g, "b", 1, (int[]){6});
    loom_dense_options o = loom_dense_defaults();
    o.kernel_initializer = LOOM_INIT_GLOROT_NORMAL;
    o.bias_initializer = LOOM_INIT_ONES;
    o.bias_regularizer = (loom_regularizer){0.01f, 0};
    loom_tensor *pb = loom_call(loom_dense(g, "proj_b", 4, LOOM_TANH, &o), b);
    o = loom_dense_defaults();
    o.kernel_initializer = LOOM_INIT_HE_UNIFORM;
    o.kernel_regularizer = (loom_regularizer){0.001f, 0.02f};
    loom_layer *shared = loom_dense(g, "shared", 5, LOOM_RELU, &o);
    loom_tensor *s1 = loom_call(shared, a), *s2 = loom_call(shared, pb);
    loom_tensor *pair[2] = {s1, s2};
    loom_tensor *add = loom_call_n(loom_add(g, "add"), 2, pair);
    loom_tensor *sub = loom_call_n(loom_subtract(g, "sub"), 2, pair);
    loom_tensor *mul = loom_call_n(loom_multiply(g, "mul"), 2, pair);
    loom_tensor *three[3] = {add, sub, mul};
    loom_tensor *cat = loom_call_n(loom_concatenate(g, "cat", -1), 3, three);
    loom_tensor *drop = loom_call(loom_dropout(g, "drop", 0.25f), cat);
    loom_tensor *rs = loom_call(loom_reshape(g, "rs", 2, (int[]){3, -1}), drop);
    loom_tensor *fl = loom_call(loom_flatten(g, "fl"), rs);
    loom_tensor *act = loom_call(loom_activation_layer(g, "act", LOOM_GELU), fl);
    o = loom_dense_defaults();
    o.kernel_initializer = LOOM_INIT_HE_NORMAL;
    o.bias_initializer = LOOM_INIT_LECUN_NORMAL;
    loom_tensor *y1 = loom_call(loom_dense(g, "out_reg", 2, LOOM_LINEAR, &o), act);
    o = loom_dense_defaults();
    o.kernel_initializer = LOOM_INIT_LECUN_UNIFORM;
    o.bias_initializer = LOOM_INIT_GLOROT_UNIFORM;
    loom_tensor *y2 = loom_call(loom_dense(g, "out_cls", 3, LOOM_SOFTMAX, &o), act);
    o = loom_dense_defaults();
    o.kernel_initializer = LOOM_INIT_ZEROS;
    o.bias_initializer = LOOM_INIT_HE_UNIFORM;
    loom_tensor *y3 = loom_call(loom_dense(g, "out_logit", 1, LOOM_LINEAR, &o), act);
    o = (loom_dense_options){0}; /* use_bias 0, LOOM_INIT_DEFAULT */
    loom_tensor *y4 = loom_call(loom_dense(g, "out_aux", 2, LOOM_SIGMOID, &o), act);
    loom_model *m = loom_model_new(g, 2, (loom_tensor *[]){a, b}, 4, (loom_tensor *[]){y1, y2, y3, y4});
    if (!m) {
        fprintf(stderr, "build_big: %s\n", loom_graph_error(g));
        loom_graph_free(g);
    }
    return m;
}

static loom_optimizer big_optimizer(int kind) {
    loom_optimizer opt;
    switch (kind) {
    case 0:
        opt = loom_sgd(0.05f, 0.8f, 1);
        opt.schedule = loom_exponential_decay(0.05f, 2, 0.7f, 1);
        opt.clipnorm = 0.9f;
        break;
    case 1:
        opt = loom_adam(0.003f);
        opt.beta_1 = 0.85f;
        opt.beta_2 = 0.99f;
        opt.epsilon = 1e-6f;
        opt.amsgrad = 1;
        opt.schedule = loom_cosine_decay(0.003f, 10, 0.1f);
        opt.schedule.warmup_steps = 2;
        opt.schedule.warmup_target = 0.004f;
        opt.global_clipnorm = 1.5f;
        break;
    case 2:
        opt = loom_adamw(0.002f, 0.01f);
        opt.beta_1 = 0.8f;
        opt.schedule = loom_piecewise_constant(2, (long[]){1, 3}, (float[]){0.002f, 0.001f, 0.0005f});
        opt.clipvalue = 0.3f;
        break;
    case 3:
        opt = loom_rmsprop(0.002f);
        opt.rho = 0.8f;
        opt.momentum = 0.3f;
        opt.centered = 1;
        opt.clipnorm = 0.5f;
        break;
    default:
        opt = loom_adagrad(0.02f);
        opt.initial_accumulator_value = 0.2f;
        opt.epsilon = 1e-5f;
        opt.weight_decay = 0.001f;
        opt.clipnorm = 2.0f;
        break;
    }
    return opt;
}

static loom_status compile_big(loom_model *m, int opt_kind) {
    loom_loss losses[3] = {{.name = "huber", .delta = 2.0f},
                           {.name = "categorical_crossentropy", .label_smoothing = 0.1f},
                           {.name = "binary_crossentropy", .from_logits = 1}};
    const char *loss_outputs[3] = {"out_reg", "out_cls", "out_logit"};
    float weights[3] = {0.5f, 2.0f, 0.25f};
    const char *weight_outputs[3] = {"out_reg", "out_cls", "out_logit"};
    loom_metric_spec metrics[3] = {{"out_cls", "accuracy"}, {"out_reg", "mae"}, {"out_logit", "mse"}};
    loom_compile_config cfg = {.n_losses = 3, .losses = losses, .loss_outputs = loss_outputs, .n_loss_weights = 3,
                               .loss_weights = weights, .loss_weight_outputs = weight_outputs, .n_metrics = 3,
                               .metrics = metrics, .optimizer = big_optimizer(opt_kind)};
    loom_status s = loom_compile(m, &cfg);
    if (s) fprintf(stderr, "compile_big: %s\n", loom_model_error(m));
    return s;
}

/* ---------------------------------------------------------------- 1. round trip */

static void test_round_trip(void) {
    big_data bd;
    big_data_init(&bd);
    for (int kind = 0; kind < 5; kind++) {
        loom_model *m = build_big(100 + (uint64_t)kind);
        CHECK(m != NULL);
        if (!m) return;
        CHECK_STATUS(compile_big(m, kind), LOOM_OK);
        loom_fit_options fo = loom_fit_defaults();
        fo.batch_size = 8;
        fo.epochs = 2;
        fo.seed = 3;
        CHECK_STATUS(loom_fit(m, &bd.d, &fo, NULL), LOOM_OK);
        /* loss weights and the learning rate are state: changed after compile, they must persist */
        CHECK_STATUS(loom_set_loss_weight(m, "out_cls", 1.75f), LOOM_OK);
        if (kind == 3) CHECK_STATUS(loom_set_learning_rate(m, 0.00123f), LOOM_OK);

        char path[256], path2[256];
        path_in(path, sizeof path, "big.loom");
        path_in(path2, sizeof path2, "big2.loom");
        CHECK_STATUS(loom_model_save(m, path), LOOM_OK);
        if (kind == 0) {
            /* the file gets the permissions fopen would give it (0666 less the umask), not
             * mkstemp's 0600 for the temporary it was written as */
            mode_t mask = umask(022);
            umask(mask);
            struct stat st;
            CHECK(stat(path, &st) == 0);
            CHECK((st.st_mode & 0777) == (0666 & ~mask));
            if ((st.st_mode & 0777) != (0666 & ~mask))
                fprintf(stderr, "saved file mode %03o, expected %03o\n", (unsigned)(st.st_mode & 0777), (unsigned)(0666 & ~mask));
        }
        char err[512] = "";
        loom_model *r = loom_model_load(path, err, sizeof err);
        CHECK(r != NULL);
        if (!r) {
            fprintf(stderr, "load (optimizer %d): %s\n", kind, err);
            loom_model_free(m);
            continue;
        }
        CHECK(same_architecture(m, r));
        CHECK(same_params(m, r));
        CHECK(loom_model_num_layers(r) == 16); /* 2 inputs + 14 */
        const char *outs[4] = {"out_reg", "out_cls", "out_logit", "out_aux"};
        for (int k = 0; k < 4; k++) {
            CHECK(strcmp(loom_model_output_name(r, k), outs[k]) == 0);
            float wa = loom_get_loss_weight(m, outs[k]), wb = loom_get_loss_weight(r, outs[k]);
            CHECK(memcmp(&wa, &wb, sizeof wa) == 0);
        }
        CHECK(loom_get_loss_weight(r, "out_cls") == 1.75f);
        CHECK(loom_get_loss_weight(r, "out_aux") == 1.0f);
        float lra = loom_get_learning_rate(m), lrb = loom_get_learning_rate(r);
        CHECK(memcmp(&lra, &lrb, sizeof lra) == 0);
        if (kind == 3) CHECK(lrb == 0.00123f);
        CHECK(loom_iterations(r) == loom_iterations(m) && loom_iterations(r) == 6);
        CHECK(loom_model_epochs_done(r) == 2);
        CHECK(same_history(loom_model_history(m), loom_model_history(r)));

        size_t na = 0, nb = 0;
        float *pa = predict_all(m, 2, bd.x, BIG_N, &na), *pb = predict_all(r, 2, bd.x, BIG_N, &nb);
        CHECK(pa && pb && na == nb && memcmp(pa, pb, na * sizeof *pa) == 0);
        free(pa);
        free(pb);

        char *sa = summary_text(m), *sb = summary_text(r);
        CHECK(sa && sb && strcmp(sa, sb) == 0);
        CHECK(has(sb, "shared (Dense)") && has(sb, "rs (Reshape)") && has(sb, "cat (Concatenate)"));
        free(sa);
        free(sb);

        /* evaluation covers the losses' options (delta, smoothing, logits), the regularisers and metrics */
        loom_history *ea = NULL, *eb = NULL;
        CHECK_STATUS(loom_evaluate(m, &bd.d, 8, 0, &ea), LOOM_OK);
        CHECK_STATUS(loom_evaluate(r, &bd.d, 8, 0, &eb), LOOM_OK);
        CHECK(same_history(ea, eb));
        CHECK(loom_history_values(eb, "out_cls_accuracy") != NULL);
        loom_history_free(ea);
        loom_history_free(eb);

        /* everything saved comes back: saving the loaded model writes the same bytes */
        CHECK_STATUS(loom_model_save(r, path2), LOOM_OK);
        size_t s1 = 0, s2 = 0;
        unsigned char *f1 = read_all(path, &s1), *f2 = read_all(path2, &s2);
        CHECK(f1 && f2 && s1 == s2 && memcmp(f1, f2, s1) == 0);
        if (kind == 0 && f1) {
            /* initialisers are part of the architecture (Keras class names) */
            cJSON *arch = section_json(f1, s1, "ARCH");
            char *text = arch ? cJSON_PrintUnformatted(arch) : NULL;
            const char *names[] = {"GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal",
                                   "LecunUniform", "LecunNormal", "Zeros", "Ones"};
            for (int i = 0; i < 8; i++) CHECK(has(text, names[i]));
            CHECK(has(text, "\"target_shape\":[3,-1]") || has(text, "\"target_shape\":[3,5]"));
            free(text);
            cJSON_Delete(arch);
        }
        free(f1);
        free(f2);

        /* optimizer settings, slots and schedule position: the next epoch is the same bit for bit */
        fo.initial_epoch = 2;
        fo.epochs = 3;
        loom_history *ha = NULL, *hb = NULL;
        CHECK_STATUS(loom_fit(m, &bd.d, &fo, &ha), LOOM_OK);
        CHECK_STATUS(loom_fit(r, &bd.d, &fo, &hb), LOOM_OK);
        CHECK(same_params(m, r));
        CHECK(same_history(ha, hb));
        CHECK(same_history(loom_model_history(m), loom_model_history(r)));
        loom_history_free(ha);
        loom_history_free(hb);
        loom_model_free(m);
        loom_model_free(r);
    }
}

/* ---------------------------------------------------------------- 2. exact resume */

#define RES_N 30

typedef struct resume_case {
    const char *label;
    int kind; /* 0 SGD momentum, 1 Adam, 2 SGD with a schedule, 3 Adam with ReduceLROnPlateau */
} resume_case;

static float res_x[RES_N * 6], res_y[RES_N * 2], res_c[RES_N];

static loom_model *build_resume(const resume_case *rc) {
    loom_graph *g = loom_graph_new(77);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){6});
    loom_tensor *h = loom_call(loom_dense(g, "h", 8, LOOM_RELU, NULL), x);
    h = loom_call(loom_dropout(g, "drop", 0.3f), h);
    loom_tensor *y = loom_call(loom_dense(g, "y", 2, LOOM_LINEAR, NULL), h);
    loom_tensor *c = loom_call(loom_dense(g, "c", 1, LOOM_SIGMOID, NULL), h);
    loom_model *m = loom_model_new(g, 1, &x, 2, (loom_tensor *[]){y, c});
    if (!m) return NULL;
    loom_optimizer opt;
    if (rc->kind == 0) opt = loom_sgd(0.05f, 0.9f, 0);
    else if (rc->kind == 2) {
        opt = loom_sgd(0.1f, 0.5f, 1);
        opt.schedule = loom_exponential_decay(0.1f, 3, 0.5f, 0);
    } else opt = loom_adam(0.01f);
    loom_loss losses[2] = {{.name = "mse"}, {.name = "binary_crossentropy"}};
    loom_metric_spec ms[1] = {{"c", "accuracy"}};
    loom_compile_config cfg = {.n_losses = 2, .losses = losses, .n_loss_weights = 2, .loss_weights = (float[]){1.0f, 0.5f},
                               .n_metrics = 1, .metrics = ms, .optimizer = opt};
    if (loom_compile(m, &cfg)) {
        fprintf(stderr, "build_resume: %s\n", loom_model_error(m));
        loom_model_free(m);
        return NULL;
    }
    return m;
}

static loom_status fit_resume(loom_model *m, const resume_case *rc, int initial, int epochs) {
    loom_array x = {.name = "x", .data = res_x, .n = RES_N, .count = RES_N * 6};
    loom_array ys[2] = {{.name = "y", .data = res_y, .n = RES_N, .count = RES_N * 2}, {.name = "c", .data = res_c, .n = RES_N, .count = RES_N}};
    loom_data d = {1, &x, 2, ys, 0, NULL};
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = 4; /* 24 training samples after the split: 6 full steps per epoch */
    fo.epochs = epochs;
    fo.initial_epoch = initial;
    fo.seed = 12345;
    fo.shuffle = 1;
    fo.validation_split = 0.2f;
    /* ReduceLROnPlateau on "loss" with a huge min_delta: epoch 1 never improves on epoch 0, so
     * with patience 1 the rate is cut at the end of epoch 1 (before the save) */
    loom_callback *cb = rc->kind == 3 ? loom_reduce_lr_on_plateau("loss", 0.25f, 1, LOOM_MODE_MIN, 1e9f, 0, 0) : NULL;
    if (cb) {
        fo.n_callbacks = 1;
        fo.callbacks = &cb;
    }
    loom_status s = loom_fit(m, &d, &fo, NULL);
    if (s) fprintf(stderr, "fit_resume %s: %s\n", rc->label, loom_model_error(m));
    loom_callback_free(cb);
    return s;
}

static void test_exact_resume(void) {
    fill(res_x, RES_N * 6, -1, 1);
    fill(res_y, RES_N * 2, -1, 1);
    for (int i = 0; i < RES_N; i++) res_c[i] = res_x[i * 6] + res_x[i * 6 + 1] > 0;
    const resume_case cases[] = {{"sgd-momentum", 0}, {"adam", 1}, {"sgd-schedule", 2}, {"adam-reduce-lr", 3}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const resume_case *rc = &cases[ci];
        loom_model *ref = build_resume(rc), *part = build_resume(rc);
        CHECK(ref && part);
        if (!ref || !part) {
            loom_model_free(ref);
            loom_model_free(part);
            continue;
        }
        CHECK_STATUS(fit_resume(ref, rc, 0, 3), LOOM_OK);
        CHECK_STATUS(fit_resume(part, rc, 0, 2), LOOM_OK);
        float lr_before = loom_get_learning_rate(part);
        if (rc->kind == 3) CHECK(lr_before == 0.01f * 0.25f);
        char p1[256], p2[256];
        path_in(p1, sizeof p1, "resume_2.loom");
        path_in(p2, sizeof p2, "resume_3.loom");
        unlink(p2);
        CHECK_STATUS(loom_model_save(part, p1), LOOM_OK);
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            /* a fresh process: only the file carries the state */
            char err[512];
            loom_model *m = loom_model_load(p1, err, sizeof err);
            int code = 0;
            if (!m) code = 10;
            else if (loom_model_epochs_done(m) != 2) code = 11;
            else if (loom_get_learning_rate(m) != lr_before) code = 12;
            else if (fit_resume(m, rc, loom_model_epochs_done(m), 3)) code = 13;
            else if (loom_model_save(m, p2)) code = 14;
            if (!m) fprintf(stderr, "child load: %s\n", err);
            loom_model_free(m);
            _exit(code);
        }
        int status = -1;
        CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
            fprintf(stderr, "resume %s: child status %d\n", rc->label, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        char err[512] = "";
        loom_model *res = loom_model_load(p2, err, sizeof err);
        CHECK(res != NULL);
        if (res) {
            bool same = same_params(ref, res);
            CHECK(same);
            if (!same) fprintf(stderr, "resume %s: weights differ\n", rc->label);
            const loom_history *ha = loom_model_history(ref), *hb = loom_model_history(res);
            CHECK(loom_history_epochs(ha) == 3 && loom_history_num_keys(ha) >= 8);
            CHECK(loom_history_values(ha, "val_c_accuracy") != NULL);
            same = same_history(ha, hb);
            CHECK(same);
            if (!same) fprintf(stderr, "resume %s: histories differ\n", rc->label);
            CHECK(loom_model_epochs_done(res) == 3);
            CHECK(loom_iterations(res) == loom_iterations(ref) && loom_iterations(ref) == 18);
        } else {
            fprintf(stderr, "resume %s: %s\n", rc->label, err);
        }
        /* the same in one process, as a control (no fork) */
        loom_model *again = loom_model_load(p1, err, sizeof err);
        if (again) {
            CHECK_STATUS(fit_resume(again, rc, loom_model_epochs_done(again), 3), LOOM_OK);
            CHECK(same_params(ref, again));
        }
        loom_model_free(again);
        loom_model_free(res);
        loom_model_free(ref);
        loom_model_free(part);
    }
}

/* ---------------------------------------------------------------- 3. crash safety */

static void test_crash_safety(void) {
    loom_graph *g = loom_graph_new(5);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){64});
    loom_tensor *y = loom_call(loom_dense(g, "wide", 256, LOOM_RELU, NULL), x);
    y = loom_call(loom_dense(g, "out", 4, LOOM_LINEAR, NULL), y);
    loom_model *m = loom_model_new(g, 1, &x, 1, &y);
    CHECK(m != NULL);
    if (!m) return;
    CHECK_STATUS(loom_compile(m, &(loom_compile_config){1, &(loom_loss){.name = "mse"}, .optimizer = loom_adam(0.001f)}),
                 LOOM_OK);
    char path[256];
    path_in(path, sizeof path, "crash.loom");
    float *p = loom_params(m);
    size_t np = loom_param_count(m);
    int kills = 0, loads = 0, mid_write = 0;
    uint64_t prev_counter_max = 0;
    for (int round = 0; round < 50; round++) {
        int fds[2];
        if (pipe(fds)) break;
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            /* each save a different state: every parameter carries the save counter */
            for (uint32_t i = 0;; i++) {
                float v = (float)(round * 100000 + (int)i);
                for (size_t j = 0; j < np; j++) p[j] = v;
                if (loom_model_save(m, path) != LOOM_OK) _exit(3);
                if (i == 0) {
                    char c = 1;
                    if (write(fds[1], &c, 1) != 1) _exit(4);
                }
            }
        }
        close(fds[1]);
        char c = 0;
        bool first_ok = read(fds[0], &c, 1) == 1; /* the child's first save is the previous checkpoint */
        close(fds[0]);
        CHECK(first_ok);
        long delay_us = (long)(next_u64() % 30000);
        nanosleep(&(struct timespec){delay_us / 1000000, (delay_us % 1000000) * 1000}, NULL);
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        kills += WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
        if (WIFEXITED(status)) fprintf(stderr, "crash child exited with %d (save failed?)\n", WEXITSTATUS(status));
        char err[512] = "";
        loom_model *r = loom_model_load(path, err, sizeof err);
        CHECK(r != NULL);
        if (!r) {
            fprintf(stderr, "after kill %d: %s\n", round, err);
            continue;
        }
        loads++;
        /* a whole state of this round: every parameter equal, at least the first save's */
        const float *q = loom_params(r);
        bool uniform = true;
        for (size_t j = 1; j < np; j++) uniform &= q[j] == q[0];
        CHECK(uniform);
        CHECK(q[0] >= (float)(round * 100000) && q[0] < (float)((round + 1) * 100000));
        uint64_t counter = (uint64_t)(q[0] - (float)(round * 100000));
        if (counter > prev_counter_max) prev_counter_max = counter;
        loom_model_free(r);
    }
    mid_write = count_files("crash.loom.tmp");
    CHECK(kills == 50);
    CHECK(loads == 50);
    /* leftover temporaries do not stop the next save, nor change what loads */
    for (size_t j = 0; j < np; j++) p[j] = 0.5f;
    CHECK_STATUS(loom_model_save(m, path), LOOM_OK);
    char err[512] = "";
    loom_model *r = loom_model_load(path, err, sizeof err);
    CHECK(r && same_params(m, r));
    loom_model_free(r);
    printf("crash safety: %d kills, %d leftover temporary files, up to %llu saves per child\n", kills, mid_write,
           (unsigned long long)prev_counter_max + 1);
    loom_model_free(m);
}

/* ---------------------------------------------------------------- 4. hostile files */

static void test_hostile(void) {
    big_data bd;
    big_data_init(&bd);
    loom_model *m = build_big(9);
    CHECK(m != NULL);
    if (!m) return;
    CHECK_STATUS(compile_big(m, 1), LOOM_OK);
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = 12;
    CHECK_STATUS(loom_fit(m, &bd.d, &fo, NULL), LOOM_OK);
    char path[256];
    path_in(path, sizeof path, "hostile.loom");
    CHECK_STATUS(loom_model_save(m, path), LOOM_OK);
    size_t size = 0;
    unsigned char *file = read_all(path, &size);
    CHECK(file != NULL && size > 64);
    if (!file) {
        loom_model_free(m);
        return;
    }
    sect secs[8];
    int ns = list_sections(file, size, secs, 8);
    CHECK(ns == 5);
    const char *tags[5] = {"ARCH", "WGHT", "COMP", "OPTS", "HIST"};
    for (int i = 0; i < 5 && i < ns; i++) CHECK(strcmp(secs[i].tag, tags[i]) == 0);
    char err[512];
    loom_model *r = loom_model_parse(file, size, "good.loom", err, sizeof err);
    CHECK(r && same_params(m, r));
    loom_model_free(r);

    /* every truncation fails with a message: every byte of the first 4 KiB, then every 97th */
    unsigned char *buf = malloc(size);
    int trunc_bad = 0, trunc_tested = 0;
    for (size_t len = 0; len < size; len = len < 4096 ? len + 1 : len + 97) {
        memcpy(buf, file, len);
        err[0] = '\0';
        r = loom_model_parse(buf, len, "cut.loom", err, sizeof err);
        trunc_tested++;
        if (r || !err[0] || !has(err, "cut.loom")) {
            trunc_bad++;
            if (trunc_bad < 5) fprintf(stderr, "truncation at %zu: %s\n", len, r ? "loaded" : "no message");
        }
        loom_model_free(r);
    }
    CHECK(trunc_bad == 0);
    /* the same through a file on disk, for a few lengths */
    char cut[256];
    path_in(cut, sizeof cut, "cut.loom");
    size_t cuts[] = {0, 7, 16, 40, size / 2, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        CHECK(write_all(cut, file, cuts[i]));
        err[0] = '\0';
        r = loom_model_load(cut, err, sizeof err);
        CHECK(r == NULL && has(err, cut));
        loom_model_free(r);
    }

    /* every byte flipped (xor 0xFF), and single-bit flips at every 13th byte: CRC-32 detects any
     * error within 32 bits, so nothing may load unless it is equal to the original */
    int flip_loaded = 0, flip_bad = 0, flips = 0;
    for (size_t i = 0; i < size; i++) {
        for (int pass = 0; pass < 2; pass++) {
            unsigned char mask = pass == 0 ? 0xFF : (unsigned char)(1u << (i % 8));
            if (pass == 1 && i % 13) continue;
            memcpy(buf, file, size);
            buf[i] ^= mask;
            err[0] = '\0';
            r = loom_model_parse(buf, size, "flip.loom", err, sizeof err);
            flips++;
            if (r) {
                flip_loaded++;
                if (!same_params(m, r) || !same_architecture(m, r)) {
                    flip_bad++;
                    fprintf(stderr, "flip at %zu loaded a different model\n", i);
                }
            } else if (!err[0]) {
                flip_bad++;
                fprintf(stderr, "flip at %zu: no message\n", i);
            }
            loom_model_free(r);
        }
    }
    CHECK(flip_bad == 0);
    CHECK(flip_loaded == 0);

    /* wrong version, bad magic, CRC mismatch naming the section */
    memcpy(buf, file, size);
    wr32(buf + 8, 2);
    r = loom_model_parse(buf, size, "v2.loom", err, sizeof err);
    CHECK(r == NULL && has(err, "version"));
    loom_model_free(r);
    memcpy(buf, file, size);
    buf[1] = 'X';
    r = loom_model_parse(buf, size, "magic.loom", err, sizeof err);
    CHECK(r == NULL && has(err, "magic"));
    loom_model_free(r);
    for (int i = 0; i < ns; i++) {
        memcpy(buf, file, size);
        buf[secs[i].at + 12 + secs[i].n / 2] ^= 0x20;
        r = loom_model_parse(buf, size, "crc.loom", err, sizeof err);
        CHECK(r == NULL && has(err, secs[i].tag) && (has(err, "CRC") || has(err, "corrupt")));
        if (r || !has(err, secs[i].tag)) fprintf(stderr, "CRC in %s: %s\n", secs[i].tag, err);
        loom_model_free(r);
        /* and the stored CRC itself */
        memcpy(buf, file, size);
        buf[secs[i].at + 12 + secs[i].n] ^= 0x01;
        r = loom_model_parse(buf, size, "crc.loom", err, sizeof err);
        CHECK(r == NULL && has(err, secs[i].tag));
        loom_model_free(r);
    }
    /* trailing bytes, a duplicated section */
    unsigned char *longer = malloc(size + 3);
    memcpy(longer, file, size);
    memcpy(longer + size, "abc", 3);
    r = loom_model_parse(longer, size + 3, "long.loom", err, sizeof err);
    CHECK(r == NULL && has(err, "long.loom"));
    loom_model_free(r);
    free(longer);
    if (ns == 5) {
        /* HIST replaced by a second WGHT (count unchanged) */
        size_t hist_at = secs[4].at, w_len = 16 + secs[1].n;
        unsigned char *dup = malloc(hist_at + w_len);
        memcpy(dup, file, hist_at);
        memcpy(dup + hist_at, file + secs[1].at, w_len);
        r = loom_model_parse(dup, hist_at + w_len, "dup.loom", err, sizeof err);
        CHECK(r == NULL && has(err, "WGHT"));
        loom_model_free(r);
        free(dup);
    }

    /* forged JSON with valid CRCs */
    cJSON *arch = section_json(file, size, "ARCH");
    CHECK(arch != NULL);
    if (arch) {
        r = parse_with_arch(file, size, arch, err, sizeof err); /* unchanged: loads */
        CHECK(r && same_params(m, r));
        loom_model_free(r);

        cJSON *a2 = cJSON_Duplicate(arch, 1);
        cJSON *ws = cJSON_GetObjectItemCaseSensitive(arch_layer(a2, "out_reg"), "loom_weights");
        cJSON_DeleteItemFromArray(ws, 1); /* out_reg declares one weight instead of two */
        r = parse_with_arch(file, size, a2, err, sizeof err);
        CHECK(r == NULL && has(err, "out_reg"));
        loom_model_free(r);
        cJSON_Delete(a2);

        a2 = cJSON_Duplicate(arch, 1);
        cJSON *cfg = cJSON_GetObjectItemCaseSensitive(arch_layer(a2, "out_reg"), "config");
        cJSON_ReplaceItemInObjectCaseSensitive(cfg, "units", cJSON_CreateNumber(3)); /* weights say (15, 2) */
        r = parse_with_arch(file, size, a2, err, sizeof err);
        CHECK(r == NULL && has(err, "out_reg"));
        loom_model_free(r);
        cJSON_Delete(a2);

        a2 = cJSON_Duplicate(arch, 1);
        cJSON *lj = arch_layer(a2, "proj_b");
        cfg = cJSON_GetObjectItemCaseSensitive(lj, "config");
        cJSON_ReplaceItemInObjectCaseSensitive(cfg, "units", cJSON_CreateNumber(5));
        cJSON_DeleteItemFromObjectCaseSensitive(lj, "loom_weights"); /* as Keras writes it */
        r = parse_with_arch(file, size, a2, err, sizeof err);
        CHECK(r == NULL && err[0]); /* proj_b (6,5) no longer feeds shared (4,5), or WGHT is short */
        loom_model_free(r);
        cJSON_Delete(a2);

        a2 = cJSON_Duplicate(arch, 1);
        cJSON_ReplaceItemInObjectCaseSensitive(arch_layer(a2, "act"), "class_name", cJSON_CreateString("Frobnicate"));
        r = parse_with_arch(file, size, a2, err, sizeof err);
        CHECK(r == NULL && has(err, "act") && has(err, "Frobnicate"));
        loom_model_free(r);
        cJSON_Delete(a2);

        a2 = cJSON_Duplicate(arch, 1);
        cfg = cJSON_GetObjectItemCaseSensitive(arch_layer(a2, "out_cls"), "config");
        cJSON_ReplaceItemInObjectCaseSensitive(cfg, "activation", cJSON_CreateString("softmaxx"));
        r = parse_with_arch(file, size, a2, err, sizeof err);
        CHECK(r == NULL && has(err, "out_cls") && has(err, "softmaxx"));
        loom_model_free(r);
        cJSON_Delete(a2);

        a2 = cJSON_Duplicate(arch, 1);
        cfg = cJSON_GetObjectItemCaseSensitive(arch_layer(a2, "shared"), "config");
        cJSON_ReplaceItemInObjectCaseSensitive(cfg, "kernel_initializer", cJSON_CreateString("NotAnInitializer"));
        r = parse_with_arch(file, size, a2, err, sizeof err); /* a string, not an object: default */
        loom_model_free(r);
        cJSON_Delete(a2);

        a2 = cJSON_Duplicate(arch, 1);
        cfg = cJSON_GetObjectItemCaseSensitive(arch_layer(a2, "drop"), "config");
        cJSON_ReplaceItemInObjectCaseSensitive(cfg, "rate", cJSON_CreateNumber(1.5));
        r = parse_with_arch(file, size, a2, err, sizeof err);
        CHECK(r == NULL && has(err, "drop"));
        loom_model_free(r);
        cJSON_Delete(a2);

        /* a call on a tensor that never exists (the layer's own output: a cycle) */
        a2 = cJSON_Duplicate(arch, 1);
        cJSON *node = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(arch_layer(a2, "fl"), "inbound_nodes"), 0);
        cJSON *hist = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(node, "args"), 0), "config"),
            "keras_history");
        cJSON_ReplaceItemInArray(hist, 0, cJSON_CreateString("act"));
        r = parse_with_arch(file, size, a2, err, sizeof err);
        CHECK(r == NULL && err[0]);
        loom_model_free(r);
        cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(a2, "config"), "loom_node_order");
        r = parse_with_arch(file, size, a2, err, sizeof err);
        CHECK(r == NULL && err[0]);
        loom_model_free(r);
        cJSON_Delete(a2);

        /* without loom's node order (Keras-written JSON) the model still loads and predicts the same */
        a2 = cJSON_Duplicate(arch, 1);
        cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(a2, "config"), "loom_node_order");
        r = parse_with_arch(file, size, a2, err, sizeof err);
        CHECK(r != NULL);
        if (r) {
            size_t na = 0, nb = 0;
            float *pa = predict_all(m, 2, bd.x, BIG_N, &na), *pb = predict_all(r, 2, bd.x, BIG_N, &nb);
            CHECK(pa && pb && na == nb && memcmp(pa, pb, na * sizeof *pa) == 0);
            free(pa);
            free(pb);
        } else {
            fprintf(stderr, "without loom_node_order: %s\n", err);
        }
        loom_model_free(r);
        cJSON_Delete(a2);
        cJSON_Delete(arch);
    }

    /* Numbers out of range for the integers they become. Besides being refused, these must not
     * reach a float-to-integer conversion (undefined behaviour: seen with clang's
     * -fsanitize=float-cast-overflow, which gcc's -fsanitize=undefined does not include). */
    arch = section_json(file, size, "ARCH");
    if (arch) {
        cJSON *a2 = cJSON_Duplicate(arch, 1);
        cJSON *node = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(arch_layer(a2, "fl"), "inbound_nodes"), 0);
        cJSON *hist = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(node, "args"), 0), "config"),
            "keras_history");
        cJSON_ReplaceItemInArray(hist, 1, cJSON_CreateNumber(1e20)); /* node index */
        r = parse_with_arch(file, size, a2, err, sizeof err);
        CHECK(r == NULL && err[0]);
        loom_model_free(r);
        cJSON_Delete(a2);
        a2 = cJSON_Duplicate(arch, 1);
        cJSON *order = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(a2, "config"), "loom_node_order");
        cJSON_ReplaceItemInArray(cJSON_GetArrayItem(order, 0), 1, cJSON_CreateNumber(-1e20));
        r = parse_with_arch(file, size, a2, err, sizeof err);
        CHECK(r == NULL && err[0]);
        loom_model_free(r);
        cJSON_Delete(a2);
        cJSON_Delete(arch);
    }
    cJSON *comp = section_json(file, size, "COMP");
    CHECK(comp != NULL);
    if (comp) {
        static const char *const sched_keys[] = {"decay_steps", "warmup_steps", "boundaries"};
        for (int i = 0; i < 3; i++) {
            cJSON *c2 = cJSON_Duplicate(comp, 1);
            cJSON *sj = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c2, "optimizer"), "schedule");
            if (i < 2) {
                cJSON_ReplaceItemInObjectCaseSensitive(sj, sched_keys[i], cJSON_CreateNumber(i ? -1e300 : 1e300));
            } else { /* a piecewise schedule whose boundary is no step count */
                cJSON_ReplaceItemInObjectCaseSensitive(sj, "kind", cJSON_CreateNumber(LOOM_SCHEDULE_PIECEWISE_CONSTANT));
                cJSON_ReplaceItemInObjectCaseSensitive(sj, "boundaries", cJSON_CreateDoubleArray((double[]){1e300}, 1));
                cJSON_ReplaceItemInObjectCaseSensitive(sj, "values", cJSON_CreateDoubleArray((double[]){0.1, 0.2}, 2));
            }
            r = parse_with_json(file, size, "COMP", c2, err, sizeof err);
            CHECK(r == NULL && err[0]);
            if (r) fprintf(stderr, "schedule.%s = +-1e300 was accepted\n", sched_keys[i]);
            loom_model_free(r);
            cJSON_Delete(c2);
        }
        /* a learning-rate override the API itself refuses (loom_set_learning_rate: finite, >= 0) */
        const double bad_lr[2] = {-5.0, 1e300};
        for (int i = 0; i < 2; i++) {
            cJSON *c2 = cJSON_Duplicate(comp, 1);
            cJSON *progress = cJSON_GetObjectItemCaseSensitive(c2, "progress");
            cJSON_DeleteItemFromObjectCaseSensitive(progress, "learning_rate_override");
            cJSON_AddNumberToObject(progress, "learning_rate_override", bad_lr[i]);
            r = parse_with_json(file, size, "COMP", c2, err, sizeof err);
            CHECK(r == NULL && err[0]);
            if (r) fprintf(stderr, "learning_rate_override %g was accepted (rate %g)\n", bad_lr[i], (double)loom_get_learning_rate(r));
            loom_model_free(r);
            cJSON_Delete(c2);
        }
        cJSON_Delete(comp);
    }

    /* non-finite weights refuse to load */
    const sect *w = find_sect(secs, ns, "WGHT");
    if (w) {
        const float bad[3] = {NAN, INFINITY, -INFINITY};
        for (int i = 0; i < 3; i++) {
            memcpy(buf, file, size);
            memcpy(buf + w->at + 12 + 8 + 4 * 5, &bad[i], 4); /* host order: the test runs on little-endian */
            fix_crc(buf, w);
            r = loom_model_parse(buf, size, "nan.loom", err, sizeof err);
            CHECK(r == NULL && has(err, "finite"));
            loom_model_free(r);
        }
        /* nor does a non-finite optimizer state: resuming from it would make every weight NaN */
        const sect *o = find_sect(secs, ns, "OPTS");
        CHECK(o != NULL && o->n > 8 + 4 * 5);
        if (o && o->n > 8 + 4 * 5) {
            memcpy(buf, file, size);
            memcpy(buf + o->at + 12 + 8 + 4 * 5, &bad[0], 4);
            fix_crc(buf, o);
            r = loom_model_parse(buf, size, "nan_opts.loom", err, sizeof err);
            CHECK(r == NULL && err[0]);
            if (r) fprintf(stderr, "a NaN in the optimizer state (OPTS) was accepted\n");
            loom_model_free(r);
        }
        /* a count that disagrees with the architecture */
        memcpy(buf, file, size);
        wr32(buf + w->at + 12, rd32(file + w->at + 12) - 1);
        fix_crc(buf, w);
        r = loom_model_parse(buf, size, "count.loom", err, sizeof err);
        CHECK(r == NULL && has(err, "WGHT"));
        loom_model_free(r);
    }
    /* malformed compile settings and history */
    const char *comp_bad[] = {"{}", "[]", "{\"loss\":{\"out_reg\":{\"name\":\"nope\"}},\"optimizer\":{\"class_name\":\"sgd\"}}",
                              "{\"loss\":{},\"optimizer\":{\"class_name\":\"sgd\"}}",
                              "{\"loss\":{\"out_reg\":{\"name\":\"mse\"}},\"optimizer\":{\"class_name\":\"lion\"}}"};
    for (size_t i = 0; i < sizeof comp_bad / sizeof comp_bad[0]; i++) {
        size_t n2;
        unsigned char *forged = replace_section(file, size, "COMP", comp_bad[i], strlen(comp_bad[i]), &n2);
        r = loom_model_parse(forged, n2, "comp.loom", err, sizeof err);
        CHECK(r == NULL && has(err, "comp.loom"));
        loom_model_free(r);
        free(forged);
    }
    const char *hist_bad[] = {"[]", "{\"keys\":[\"loss\"],\"values\":[[1,2]]}", "{\"keys\":[1],\"values\":[]}", "nul"};
    for (size_t i = 0; i < sizeof hist_bad / sizeof hist_bad[0]; i++) {
        size_t n2;
        unsigned char *forged = replace_section(file, size, "HIST", hist_bad[i], strlen(hist_bad[i]), &n2);
        r = loom_model_parse(forged, n2, "hist.loom", err, sizeof err);
        CHECK(r == NULL && has(err, "hist.loom"));
        loom_model_free(r);
        free(forged);
    }
    r = loom_model_parse(NULL, 10, "null", err, sizeof err);
    CHECK(r == NULL && err[0]);
    r = loom_model_load("/nonexistent/dir/x.loom", err, sizeof err);
    CHECK(r == NULL && has(err, "/nonexistent/dir/x.loom"));
    printf("hostile: %d truncations, %d flips\n", trunc_tested, flips);
    free(buf);
    free(file);
    loom_model_free(m);
}

/* ---------------------------------------------------------------- 5. load_weights */

/* x(4) -> first(u1) -> second(u2) -> out(2); the names are the point. */
static loom_model *chain(uint64_t seed, const char *first, int u1, const char *second, int u2) {
    loom_graph *g = loom_graph_new(seed);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){4});
    loom_tensor *h = loom_call(loom_dense(g, first, u1, LOOM_RELU, NULL), x);
    h = loom_call(loom_dense(g, second, u2, LOOM_TANH, NULL), h);
    loom_tensor *y = loom_call(loom_dense(g, "out", 2, LOOM_LINEAR, NULL), h);
    return loom_model_new(g, 1, &x, 1, &y);
}

static void test_load_weights(void) {
    loom_model *src = chain(1, "h1", 6, "h2", 5);
    CHECK(src != NULL);
    if (!src) return;
    randomize(src);
    char path[256];
    path_in(path, sizeof path, "weights.loom");
    CHECK_STATUS(loom_model_save(src, path), LOOM_OK);

    loom_model *same = chain(2, "h1", 6, "h2", 5);
    CHECK(same && !same_params(src, same));
    CHECK_STATUS(loom_load_weights(same, path), LOOM_OK);
    CHECK(same_params(src, same));
    loom_model_free(same);

    /* h1 has 7 units (shape mismatch), h3 is not in the file; out (5, 2) would fit */
    loom_model *other = chain(3, "h1", 7, "h3", 5);
    CHECK(other != NULL);
    if (other) {
        size_t n = loom_param_count(other);
        float *before = malloc(n * sizeof *before);
        memcpy(before, loom_params(other), n * sizeof *before);
        CHECK_STATUS(loom_load_weights(other, path), LOOM_ERR_SHAPE);
        const char *msg = loom_model_error(other);
        CHECK(has(msg, "h1") && has(msg, "h3"));
        CHECK(memcmp(before, loom_params(other), n * sizeof *before) == 0);
        free(before);
    }
    loom_model_free(other);

    /* a model with fewer layers than the file takes the ones it has */
    loom_graph *g = loom_graph_new(4);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){4});
    loom_tensor *y = loom_call(loom_dense(g, "h1", 6, LOOM_RELU, NULL), x);
    loom_model *part = loom_model_new(g, 1, &x, 1, &y);
    CHECK(part != NULL);
    if (part) {
        CHECK_STATUS(loom_load_weights(part, path), LOOM_OK);
        size_t n = loom_layer_weight_size(loom_model_find_layer(part, "h1"), 0);
        float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
        CHECK_STATUS(loom_get_weights(part, "h1", 0, a, n), LOOM_OK);
        CHECK_STATUS(loom_get_weights(src, "h1", 0, b, n), LOOM_OK);
        CHECK(memcmp(a, b, n * sizeof *a) == 0);
        free(a);
        free(b);
        char missing[256];
        path_in(missing, sizeof missing, "missing.loom");
        CHECK_STATUS(loom_load_weights(part, missing), LOOM_ERR_IO);
        CHECK(has(loom_model_error(part), missing));
    }
    loom_model_free(part);
    loom_model_free(src);
}

/* ---------------------------------------------------------------- 6. ModelCheckpoint */

static loom_model *small_compiled(void) {
    loom_graph *g = loom_graph_new(21);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){3});
    loom_tensor *h = loom_call(loom_dense(g, "h", 4, LOOM_TANH, NULL), x);
    loom_tensor *y = loom_call(loom_dense(g, "y", 1, LOOM_LINEAR, NULL), h);
    loom_model *m = loom_model_new(g, 1, &x, 1, &y);
    if (m && loom_compile(m, &(loom_compile_config){1, &(loom_loss){.name = "mse"}, .optimizer = loom_sgd(0.05f, 0, 0)})) {
        loom_model_free(m);
        m = NULL;
    }
    return m;
}

static int history_len_of(const char *path) {
    char err[512];
    loom_model *m = loom_model_load(path, err, sizeof err);
    if (!m) return -1;
    int n = loom_history_epochs(loom_model_history(m));
    if (n != loom_model_epochs_done(m)) n = -2;
    loom_model_free(m);
    return n;
}

static void test_checkpoint(void) {
    enum { N = 20 };
    float xs[N * 3], ys[N];
    fill(xs, N * 3, -1, 1);
    for (int i = 0; i < N; i++) ys[i] = xs[i * 3] - 0.5f * xs[i * 3 + 2];
    loom_array x = {.name = "x", .data = xs, .n = N, .count = N * 3}, y = {.name = "y", .data = ys, .n = N, .count = N};
    loom_data d = {1, &x, 1, &y, 0, NULL};
    loom_fit_options fo = loom_fit_defaults();
    fo.batch_size = 4; /* 5 steps per epoch */
    fo.seed = 1;

    /* one file per epoch */
    char pattern[256], p[256];
    path_in(pattern, sizeof pattern, "ck_{epoch}.loom");
    loom_model *m = small_compiled();
    loom_callback *cb = loom_model_checkpoint(pattern, NULL, LOOM_MODE_AUTO, 0, 0);
    CHECK(m && cb);
    if (!m || !cb) return;
    fo.epochs = 3;
    fo.n_callbacks = 1;
    fo.callbacks = &cb;
    CHECK_STATUS(loom_fit(m, &d, &fo, NULL), LOOM_OK);
    for (int e = 1; e <= 4; e++) {
        snprintf(p, sizeof p, "%s/ck_%d.loom", tmpdir, e);
        CHECK(file_exists(p) == (e <= 3));
        if (e <= 3) CHECK(history_len_of(p) == e);
    }
    char err[512];
    snprintf(p, sizeof p, "%s/ck_3.loom", tmpdir);
    loom_model *last = loom_model_load(p, err, sizeof err);
    CHECK(last && same_params(m, last));
    loom_model_free(last);
    loom_callback_free(cb);
    loom_model_free(m);

    /* save_best_only: the file holds the state of the last epoch that improved */
    for (int mode = 0; mode < 2; mode++) {
        char best[256];
        path_in(best, sizeof best, mode ? "best_max.loom" : "best_min.loom");
        m = small_compiled();
        cb = loom_model_checkpoint(best, "loss", mode ? LOOM_MODE_MAX : LOOM_MODE_MIN, 1, 0);
        fo.epochs = 6;
        fo.callbacks = &cb;
        loom_history *h = NULL;
        CHECK_STATUS(loom_fit(m, &d, &fo, &h), LOOM_OK);
        const float *loss = loom_history_values(h, "loss");
        int expect = 0;
        float bestv = mode ? -INFINITY : INFINITY;
        for (int e = 0; loss && e < 6; e++)
            if (mode ? loss[e] > bestv : loss[e] < bestv) {
                bestv = loss[e];
                expect = e + 1;
            }
        CHECK(expect >= 1);
        CHECK(history_len_of(best) == expect);
        if (mode == 1) CHECK(expect < 6); /* a decreasing loss: max mode saves early only */
        loom_history_free(h);
        loom_callback_free(cb);
        loom_model_free(m);
    }
    /* a monitored key that never appears: never saved */
    char never[256];
    path_in(never, sizeof never, "never.loom");
    m = small_compiled();
    cb = loom_model_checkpoint(never, "val_loss", LOOM_MODE_AUTO, 1, 0);
    fo.epochs = 2;
    fo.callbacks = &cb;
    CHECK_STATUS(loom_fit(m, &d, &fo, NULL), LOOM_OK);
    CHECK(!file_exists(never));
    loom_callback_free(cb);
    loom_model_free(m);

    /* every 3 steps: iterations 3 (epoch 1), 6 and 9 (epoch 2) */
    path_in(pattern, sizeof pattern, "step_{epoch}.loom");
    m = small_compiled();
    cb = loom_model_checkpoint(pattern, NULL, LOOM_MODE_AUTO, 0, 3);
    fo.epochs = 2;
    fo.callbacks = &cb;
    CHECK_STATUS(loom_fit(m, &d, &fo, NULL), LOOM_OK);
    for (int e = 1; e <= 3; e++) {
        snprintf(p, sizeof p, "%s/step_%d.loom", tmpdir, e);
        loom_model *s = loom_model_load(p, err, sizeof err);
        if (e == 3) CHECK(s == NULL);
        else {
            CHECK(s != NULL);
            if (s) CHECK(loom_iterations(s) == (e == 1 ? 3 : 9));
        }
        loom_model_free(s);
    }
    loom_callback_free(cb);
    loom_model_free(m);

    /* a folder that does not exist: fit stops with LOOM_ERR_IO naming the path */
    char bad[256];
    path_in(bad, sizeof bad, "no_such_dir/ck.loom");
    m = small_compiled();
    cb = loom_model_checkpoint(bad, NULL, LOOM_MODE_AUTO, 0, 0);
    fo.epochs = 3;
    fo.callbacks = &cb;
    loom_history *h = NULL;
    CHECK_STATUS(loom_fit(m, &d, &fo, &h), LOOM_ERR_IO);
    CHECK(has(loom_model_error(m), bad));
    CHECK(loom_history_epochs(h) == 1);
    CHECK(loom_callback_stopped_epoch(cb) == 0);
    loom_history_free(h);
    loom_callback_free(cb);
    loom_model_free(m);
}

/* ---------------------------------------------------------------- 7. user losses, uncompiled models */

static int user_mse(const float *t, const float *p, size_t n_rows, int dim, float *values, float *grad, void *user) {
    (void)user;
    for (size_t r = 0; r < n_rows; r++) {
        float s = 0;
        for (int j = 0; j < dim; j++) {
            float e = p[r * dim + j] - t[r * dim + j];
            s += e * e;
            if (grad) grad[r * dim + j] = 2 * e / (float)dim;
        }
        values[r] = s / (float)dim;
    }
    return 0;
}

static void test_user_loss_and_uncompiled(void) {
    loom_graph *g = loom_graph_new(8);
    loom_tensor *x = loom_input(g, "x", 1, (int[]){3});
    loom_tensor *h = loom_call(loom_dense(g, "h", 4, LOOM_RELU, NULL), x);
    loom_tensor *a = loom_call(loom_dense(g, "plain_head", 2, LOOM_LINEAR, NULL), h);
    loom_tensor *b = loom_call(loom_dense(g, "custom_head", 1, LOOM_LINEAR, NULL), h);
    loom_model *m = loom_model_new(g, 1, &x, 2, (loom_tensor *[]){a, b});
    CHECK(m != NULL);
    if (!m) return;
    randomize(m);
    char path[256], err[512];
    path_in(path, sizeof path, "user.loom");

    /* uncompiled: architecture and weights only */
    CHECK_STATUS(loom_model_save(m, path), LOOM_OK);
    loom_model *r = loom_model_load(path, err, sizeof err);
    CHECK(r != NULL);
    if (r) {
        CHECK(same_architecture(m, r));
        CHECK(same_params(m, r));
        CHECK(isnan(loom_get_learning_rate(r)));
        CHECK(loom_iterations(r) == 0 && loom_model_epochs_done(r) == 0);
        float xs[6] = {0.1f, -0.2f, 0.3f, 0.5f, 0.0f, -1.0f};
        loom_array xa = {.name = "x", .data = xs, .n = 2, .count = 2 * 3};
        size_t na = 0, nb = 0;
        float *pa = predict_all(m, 1, &xa, 2, &na), *pb = predict_all(r, 1, &xa, 2, &nb);
        CHECK(pa && pb && na == nb && memcmp(pa, pb, na * sizeof *pa) == 0);
        free(pa);
        free(pb);
        float ys[2] = {0, 1}, y2[4] = {0};
        loom_array ya[2] = {{.name = "plain_head", .data = y2, .n = 2, .count = 2 * 2}, {.name = "custom_head", .data = ys, .n = 2, .count = 2}};
        loom_data d = {1, &xa, 2, ya, 0, NULL};
        CHECK_STATUS(loom_fit(r, &d, NULL, NULL), LOOM_ERR_STATE); /* not compiled */
    }
    loom_model_free(r);

    /* a user C loss cannot be saved; the old file stays as it was */
    size_t before_n = 0;
    unsigned char *before = read_all(path, &before_n);
    loom_loss losses[2] = {{.name = "mse"}, {.name = "mine", .fn = user_mse}};
    CHECK_STATUS(loom_compile(m, &(loom_compile_config){2, losses, .optimizer = loom_adam(0.01f)}), LOOM_OK);
    CHECK_STATUS(loom_model_save(m, path), LOOM_ERR_STATE);
    CHECK(has(loom_model_error(m), "custom_head"));
    size_t after_n = 0;
    unsigned char *after = read_all(path, &after_n);
    CHECK(before && after && before_n == after_n && memcmp(before, after, before_n) == 0);
    CHECK(count_files("user.loom.tmp") == 0);
    free(before);
    free(after);
    char fresh[256];
    path_in(fresh, sizeof fresh, "user_fresh.loom");
    CHECK_STATUS(loom_model_save(m, fresh), LOOM_ERR_STATE);
    CHECK(!file_exists(fresh));
    loom_model_free(m);

    /* a model without parameters */
    g = loom_graph_new(9);
    x = loom_input(g, "x", 2, (int[]){2, 3});
    loom_tensor *f = loom_call(loom_flatten(g, "fl"), x);
    f = loom_call(loom_activation_layer(g, "soft", LOOM_SOFTMAX), f);
    m = loom_model_new(g, 1, &x, 1, &f);
    CHECK(m != NULL && loom_param_count(m) == 0);
    if (m) {
        CHECK_STATUS(loom_model_save(m, fresh), LOOM_OK);
        r = loom_model_load(fresh, err, sizeof err);
        CHECK(r && same_architecture(m, r) && loom_param_count(r) == 0);
        loom_model_free(r);
    }
    loom_model_free(m);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/loom_model_file_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_exact_resume();
    test_crash_safety();
    test_hostile();
    test_load_weights();
    test_checkpoint();
    test_user_loss_and_uncompiled();
    remove_tree(tmpdir);
    return check_report("test_model_file");
}
