// train_tiny.cpp — a C++ program built against an installed loom (find_package); see ../README.md.
// The same model, data and steps as ../c_pkgconfig/train_tiny.c, written as C++ would.
#include <loom.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace {

struct model_deleter {
    void operator()(loom_model *m) const { loom_model_free(m); }
};
using model_ptr = std::unique_ptr<loom_model, model_deleter>;

constexpr int N = 32, STEPS = 20;

} // namespace

int main() {
    if (std::string(loom_version()) != LOOM_VERSION) {
        std::fprintf(stderr, "header %s, library %s\n", LOOM_VERSION, loom_version());
        return 1;
    }
    std::vector<float> xs(N * 4), ys(N), ks(N * 2);
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < 4; j++) xs[i * 4 + j] = static_cast<float>((i * 7 + j * 3) % 11) / 5.0f - 1.0f;
        ys[i] = 0.5f * xs[i * 4] - xs[i * 4 + 1] + 0.25f * xs[i * 4 + 2];
        ks[i * 2 + (xs[i * 4 + 3] > 0)] = 1.0f;
    }

    loom_graph *g = loom_graph_new(3);
    int shape[] = {4};
    loom_tensor *x = loom_input(g, "x", 1, shape);
    loom_tensor *h = loom_call(loom_dense(g, "h", 8, LOOM_TANH, nullptr), x);
    loom_tensor *outputs[] = {loom_call(loom_dense(g, "y", 1, LOOM_LINEAR, nullptr), h),
                              loom_call(loom_dense(g, "k", 2, LOOM_SOFTMAX, nullptr), h)};
    model_ptr m(loom_model_new(g, 1, &x, 2, outputs));
    if (!m) {
        std::fprintf(stderr, "%s\n", loom_graph_error(g));
        loom_graph_free(g);
        return 1;
    }
    loom_loss losses[2] = {};
    losses[0].name = "mse";
    losses[1].name = "categorical_crossentropy";
    float weights[] = {1.0f, 0.5f};
    loom_compile_config cfg = {};
    cfg.n_losses = 2;
    cfg.losses = losses;
    cfg.n_loss_weights = 2;
    cfg.loss_weights = weights;
    cfg.optimizer = loom_adam(0.02f);
    if (loom_compile(m.get(), &cfg)) {
        std::fprintf(stderr, "%s\n", loom_model_error(m.get()));
        return 1;
    }
    loom_array in = {"x", xs.data(), N, xs.size()};
    loom_array targets[] = {{"y", ys.data(), N, ys.size()}, {"k", ks.data(), N, ks.size()}};
    loom_data batch = {};
    batch.n_x = 1;
    batch.x = &in;
    batch.n_y = 2;
    batch.y = targets;
    float first = 0, logs[8];
    int n_logs = 0;
    for (int step = 0; step < STEPS; step++) {
        if (loom_train_on_batch(m.get(), &batch, logs, 8, &n_logs)) {
            std::fprintf(stderr, "%s\n", loom_model_error(m.get()));
            return 1;
        }
        if (step == 0) first = logs[0];
    }
    std::printf("loom %s: loss %.9g -> %.9g\n", loom_version(), first, logs[0]);
    return logs[0] < 0.8f * first ? 0 : 1;
}
