// Writes what tests/reference/gpt2_torch.py compares against PyTorch: a tiny GPT-2's initial weights,
// one batch, the loss and every gradient on it, and the losses of 10 optimizer steps on that same
// batch — all produced by the real Trainer (data loader, forward, backward, clipping, AdamW, LR
// schedule). A shard holding exactly one batch makes every step see the same tokens.
//   xp_reference_dump OUT_DIR     → OUT_DIR/ref.h5
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "xp/core/error.hpp"
#include "xp/core/random.hpp"
#include "xp/core/runtime.hpp"
#include "xp/io/hdf5_file.hpp"
#include "xp/io/shards.hpp"
#include "xp/train/trainer.hpp"

namespace {

std::vector<float> to_host(const xp::FloatBuffer& buffer) {
  auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), buffer);
  return std::vector<float>(host.data(), host.data() + host.size());
}

void write_tensors(xp::Hdf5File& file, const std::string& group, const xp::ParameterLayout& layout,
                   const std::vector<float>& flat) {
  for (const xp::TensorInfo& tensor : layout.tensors())
    file.write(group + "/" + tensor.name, flat.data() + tensor.offset, tensor.shape);
}

}  // namespace

int main(int argc, char** argv) {
  xp::Runtime runtime(argc, argv);
  if (argc != 2) {
    std::fprintf(stderr, "usage: xp_reference_dump OUT_DIR\n");
    return 2;
  }
  try {
    runtime.start_device();
  } catch (const xp::InputError& error) {
    if (runtime.rank() == 0) std::fprintf(stderr, "xp_reference_dump: %s\n", error.what());
    return 2;
  }
  const std::string out = argv[1];
  std::filesystem::create_directories(out);

  xp::Config config;
  config.model = {"custom", 2, 4, 32, 16, 100};  // vocab 100 pads to 128: padded logits must not count
  config.train.steps = 10;
  config.train.batch_size = 3;
  config.train.lr = 1e-2;
  config.train.min_lr = 1e-3;
  config.train.warmup_steps = 3;
  config.train.weight_decay = 0.1;
  config.train.grad_clip_norm = 1.0;
  config.train.seed = 20240520;
  config.train.init_std = 0.1;  // larger than GPT-2's 0.02 so every path carries visible signal
  config.parallel.threads = 1;
  config.data.train_data = out + "/one_batch.bin";
  config.run.run_dir = out + "/run";
  config.run.log_every = 1000;

  const int B = config.train.batch_size, T = config.model.seq_len;
  std::vector<uint16_t> tokens(int64_t{B} * T + 1);
  for (size_t i = 0; i < tokens.size(); ++i)
    tokens[i] = static_cast<uint16_t>(xp::random_bits(7, 7, i) % config.model.vocab_size);
  xp::write_shard(config.data.train_data, tokens);

  xp::Trainer trainer(config, MPI_COMM_WORLD);
  const xp::ParameterLayout& layout = trainer.model().layout();
  const std::vector<float> initial_params = to_host(trainer.model().params);
  std::vector<float> first_grads;
  std::vector<double> losses, learning_rates;
  for (int step = 0; step < config.train.steps; ++step) {
    const xp::StepResult result = trainer.step();
    if (step == 0) first_grads = to_host(trainer.model().grads);  // unclipped: clipping scales inside AdamW
    losses.push_back(result.loss);
    learning_rates.push_back(result.lr);
  }

  xp::Hdf5File file(out + "/ref.h5");
  file.write_attribute("n_layer", int64_t{config.model.n_layer});
  file.write_attribute("n_head", int64_t{config.model.n_head});
  file.write_attribute("n_embd", int64_t{config.model.n_embd});
  file.write_attribute("vocab_size", int64_t{config.model.vocab_size});
  file.write_attribute("padded_vocab", int64_t{config.model.padded_vocab()});
  file.write_attribute("B", int64_t{B});
  file.write_attribute("T", int64_t{T});
  file.write_attribute("weight_decay", config.train.weight_decay);
  file.write_attribute("beta1", config.train.beta1);
  file.write_attribute("beta2", config.train.beta2);
  file.write_attribute("eps", config.train.eps);
  file.write_attribute("grad_clip_norm", config.train.grad_clip_norm);
  write_tensors(file, "/params", layout, initial_params);
  write_tensors(file, "/grads", layout, first_grads);
  std::vector<int32_t> inputs(int64_t{B} * T), targets(int64_t{B} * T);
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      inputs[b * T + t] = tokens[b * T + t];
      targets[b * T + t] = tokens[b * T + t + 1];
    }
  file.write("/batch/inputs", inputs.data(), {B, T});
  file.write("/batch/targets", targets.data(), {B, T});
  file.write("/loss", losses.data(), {1});
  file.write("/train/losses", losses.data(), {config.train.steps});
  file.write("/train/lr", learning_rates.data(), {config.train.steps});
  std::printf("xp_reference_dump: wrote %s/ref.h5 (loss %.6f)\n", out.c_str(), losses[0]);
  return 0;
}
