// AdamW over a whole model's parameters, the way the trainer calls it (xp::AdamW::step: one multi-tensor
// launch over the decay segments of the real parameter table): the fused kernel (kernels/cuda/fused_adamw.cpp)
// against the Kokkos one. Bytes moved per parameter: params, m, v, grads read (16), params, m, v written (12),
// the bf16 compute copy written (2) = 30; floor at GPT-2 124M 0.87 ms (kernels/cuda/adamw_math.hpp).
#include <string>

#include "kernel_bench.hpp"
#include "xp/config/config.hpp"
#include "xp/kernels/kernel_path.hpp"
#include "xp/model/layout.hpp"
#include "xp/train/optimizer.hpp"

namespace xp::bench {
namespace {

void run_model(cudaStream_t stream, const char* name, int layers, int heads, int channels) {
  ModelConfig model;
  model.model = name;
  model.n_layer = layers;
  model.n_head = heads;
  model.n_embd = channels;
  model.seq_len = 1024;
  model.vocab_size = 50257;
  const ParameterLayout layout(model);
  const int64_t n = layout.total();
  TrainConfig train;
  train.weight_decay = 0.1;
  AdamW optimizer(layout, train, 0, n);
  auto* params = static_cast<float*>(device_random(4, n, false, 1.0f, 1));
  auto* grads = static_cast<float*>(device_random(4, n, false, 1.0f, 2));
  auto* compute = static_cast<Real*>(device_random(2, n, true, 1.0f, 3));
  const double bytes = 30.0 * n;
  const std::string shape = std::string(name) + " n=" + std::to_string(n);
  for (const KernelPath path : {KernelPath::Fused, KernelPath::Kokkos}) {
    set_kernel_path(path);
    // A tiny learning rate keeps the weights, and so the work, the same from call to call.
    const double us = median_us([&] { optimizer.step(params, grads, 1e-8, 1.0, compute); }, stream);
    report("adamw", shape, path == KernelPath::Fused ? "fused" : "kokkos", bytes, us);
  }
  set_kernel_path(KernelPath::Fused);
  device_free(params);
  device_free(grads);
  device_free(compute);
}

void run(cudaStream_t stream) {
  run_model(stream, "gpt2-124M", 12, 12, 768);
  run_model(stream, "gpt2-1.5B", 48, 25, 1600);
}

static Registration registration("adamw", run);

}  // namespace
}  // namespace xp::bench
