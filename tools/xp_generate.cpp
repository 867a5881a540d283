// xp_generate: text from a checkpoint, with a KV cache (model/generator.hpp).
//   [mpirun -np N] xp_generate CKPT_DIR --prompt TEXT --tokens N [--temperature T] [--top_k K] [--seed S]
// N ranks form one tensor-parallel group (n_head and the padded vocabulary must divide by N); the
// checkpoint may come from any (dp, tp, pp) layout: each rank reads its tp slice of every tensor.
// Standard output gets the prompt and its continuation; diagnostics go to standard error.
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "xp/core/allocation.hpp"
#include "xp/core/error.hpp"
#include "xp/core/host_copy.hpp"
#include "xp/core/runtime.hpp"
#include "xp/io/checkpoint.hpp"
#include "xp/io/checkpoint_inspect.hpp"
#include "xp/io/hdf5_version.hpp"
#include "xp/io/text_codec.hpp"
#include "xp/kernels/elementwise.hpp"
#if !defined(XP_ENABLE_CUDA)
#include "xp/kernels/gemm.hpp"
#endif
#include "xp/model/generator.hpp"
#include "xp/train/trainer.hpp"  // host_threads

namespace {

const char* usage_text =
    "usage: [mpirun -np N] xp_generate CKPT_DIR --prompt TEXT --tokens N [--temperature T] [--top_k K] [--seed S]\n"
    "  --temperature T  softmax temperature, 0 = greedy (default 1)\n"
    "  --top_k K        sample among the K most likely tokens, 0 = all (default 0)\n"
    "  --seed S         seed of the draws (default 1337); the same seed gives the same text in any tp layout\n"
    "N ranks split the model tensor-parallel (N must divide n_head); pipeline stages are not used.\n";

struct Options {
  std::string checkpoint, prompt;
  bool has_prompt = false;
  int tokens = -1;
  xp::SamplingSettings sampling{1.0, 0, 1337};
};

// A whole-string number or an InputError naming the option.
double number(const std::string& option, const std::string& text, double min, double max) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !(value >= min && value <= max))
    throw xp::InputError("option " + option + " expects a number in [" + std::to_string(min) + ", " +
                         std::to_string(max) + "], got '" + text + "'");
  return value;
}

// A whole-string non-negative integer up to `max` (seeds use all 64 bits, which a double would round).
uint64_t integer(const std::string& option, const std::string& text, uint64_t min, uint64_t max) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long value = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || text[0] == '-' || *end != '\0' || errno == ERANGE || value < min || value > max)
    throw xp::InputError("option " + option + " expects an integer in [" + std::to_string(min) + ", " +
                         std::to_string(max) + "], got '" + text + "'");
  return value;
}

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string argument = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw xp::InputError("option " + argument + " needs a value");
      return argv[++i];
    };
    if (argument == "--prompt") {
      options.prompt = value();
      options.has_prompt = true;
    } else if (argument == "--tokens") options.tokens = static_cast<int>(integer(argument, value(), 1, 1 << 30));
    else if (argument == "--temperature") options.sampling.temperature = number(argument, value(), 0, 100);
    else if (argument == "--top_k") options.sampling.top_k = static_cast<int>(integer(argument, value(), 0, 1 << 30));
    else if (argument == "--seed") options.sampling.seed = integer(argument, value(), 0, UINT64_MAX);
    else if (argument.rfind("-", 0) == 0) throw xp::InputError("unknown option '" + argument + "'\n" + usage_text);
    else if (options.checkpoint.empty()) options.checkpoint = argument;
    else throw xp::InputError("more than one checkpoint: '" + options.checkpoint + "' and '" + argument + "'");
  }
  if (options.checkpoint.empty() || !options.has_prompt || options.tokens < 0)
    throw xp::InputError(std::string("a checkpoint, --prompt and --tokens are required\n") + usage_text);
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      std::fputs(usage_text, stdout);
      return 0;
    }
  xp::Runtime runtime(argc, argv);
  const int tp_size = runtime.size(), tp_rank = runtime.rank();
  try {
    Options options;
    xp::ModelConfig model;
    xp::CheckpointState state;
    std::unique_ptr<xp::TextCodec> codec;
    std::vector<int32_t> prompt;
    xp::agree_on_setup(MPI_COMM_WORLD, [&] {
      options = parse(argc, argv);
      xp::check_hdf5_version();
      model = xp::CheckpointIndex(options.checkpoint).model();
      // Rank 0 reads every shard to check its size and CRC-32; the verdict reaches every rank.
      state = xp::read_checkpoint_state(options.checkpoint, model, tp_rank == 0);
      if (model.n_head % tp_size != 0 || model.padded_vocab() % tp_size != 0)
        throw xp::InputError(std::to_string(tp_size) + " ranks cannot split this model tensor-parallel: n_head " +
                             std::to_string(model.n_head) + " and the padded vocabulary " +
                             std::to_string(model.padded_vocab()) + " must both divide by the rank count");
      codec = xp::make_text_codec("byte", model.vocab_size);  // the BPE codec plugs in here once runs record it
      prompt = codec->encode(options.prompt);
      if (prompt.empty()) throw xp::InputError("--prompt is empty: generation needs at least one prompt token");
      if (int64_t(prompt.size()) + options.tokens > model.seq_len)
        throw xp::InputError("the prompt (" + std::to_string(prompt.size()) + " tokens) + --tokens " +
                             std::to_string(options.tokens) + " exceed the model's context seq_len " +
                             std::to_string(model.seq_len));
    });
    runtime.start_device();
#if !defined(XP_ENABLE_CUDA)
    xp::set_gemm_threads(xp::host_threads(0, MPI_COMM_WORLD));
#endif
    std::unique_ptr<xp::Communicator> tp =
        tp_size > 1 ? xp::make_mpi_communicator(MPI_COMM_WORLD) : xp::make_self_communicator();
    xp::Placement placement;
    placement.tp_size = tp_size;
    placement.tp_rank = tp_rank;
    const xp::ParameterLayout layout(model, placement);
    {
      const auto start = std::chrono::steady_clock::now();
      xp::FloatBuffer params("xp::generate_params", layout.total());
      // Only the weights, this rank's slice of each tensor, chunk by chunk (no AdamW moments).
      xp::load_checkpoint_tensors(options.checkpoint, layout, [&](xp::Moment, int64_t begin, int64_t end,
                                                                  const float* staging) {
        xp::copy_from_host(staging, begin, end, 0, params);
      }, xp::checkpoint_chunk_bytes, false);
      xp::RealBuffer weights("xp::generate_weights", layout.total());
      xp::convert_to_real(weights.data(), params.data(), layout.total());
      params = xp::FloatBuffer();  // the compute copy is all generation reads
      xp::Generator generator(model, layout, weights.data(), *tp, static_cast<int>(prompt.size()) + options.tokens);
      const auto loaded = std::chrono::steady_clock::now();
      const std::vector<int32_t> tokens = generator.generate(prompt, options.tokens, options.sampling);
      const auto done = std::chrono::steady_clock::now();
      if (tp_rank == 0) {
        const std::string text = options.prompt + codec->decode(tokens);
        std::fwrite(text.data(), 1, text.size(), stdout);
        if (text.empty() || text.back() != '\n') std::fputc('\n', stdout);
        std::fflush(stdout);
        const double seconds = std::chrono::duration<double>(done - loaded).count();
        std::fprintf(stderr,
                     "xp_generate: %s (step %lld): n_layer %d n_head %d n_embd %d, tp=%d; %d tokens in %.3f s "
                     "(%.1f tokens/s), load %.3f s\n",
                     options.checkpoint.c_str(), static_cast<long long>(state.step), model.n_layer, model.n_head,
                     model.n_embd, tp_size, options.tokens, seconds, options.tokens / std::max(seconds, 1e-9),
                     std::chrono::duration<double>(loaded - start).count());
      }
    }
  } catch (const xp::InputError& error) {
    if (tp_rank == 0) std::fprintf(stderr, "xp_generate: error: %s\n", error.what());
    return 2;
  }
  return 0;
}
