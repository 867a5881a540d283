// xp_ckpt: look into xp_train checkpoints (io/checkpoint.hpp) without MPI.
//   xp_ckpt list RUN_DIR                      every checkpoint: step, size, dp/tp/pp/zero; partial ones marked
//   xp_ckpt info CKPT_DIR                     model, topology, stage map, step, data cursor, every tensor and its split
//   xp_ckpt verify CKPT_DIR                   every shard present with its size and CRC-32, tensors finite
//   xp_ckpt diff CKPT_A CKPT_B                max abs / rel difference of params and AdamW moments
//   xp_ckpt export CKPT_DIR --to safetensors [-o OUT]   Hugging Face GPT-2 weights
//   xp_ckpt import MODEL.safetensors -o DIR [--n_head N]  Hugging Face GPT-2 weights → a step-0 checkpoint
//                                                         that a deck's init_from = DIR fine-tunes
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>


#include "xp/core/error.hpp"
#include "xp/core/runtime.hpp"
#include "xp/io/checkpoint.hpp"
#include "xp/config/deck.hpp"
#include "xp/io/checkpoint_inspect.hpp"
#include "xp/io/gpt2_import.hpp"
#include "xp/io/safetensors.hpp"
#include "xp/io/hdf5_version.hpp"
#include "xp/model/layout.hpp"

namespace fs = std::filesystem;
using xp::CheckpointIndex;
using xp::config_summary;
using xp::IndexTensor;
using xp::InputError;
using xp::all_moments;
using xp::Moment;

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: xp_ckpt list RUN_DIR\n"
               "       xp_ckpt info CKPT_DIR\n"
               "       xp_ckpt verify CKPT_DIR\n"
               "       xp_ckpt diff CKPT_A CKPT_B\n"
               "       xp_ckpt export CKPT_DIR --to safetensors [-o OUT.safetensors]\n"
               "       xp_ckpt import MODEL.safetensors -o DIR [--n_head N]\n");
  return 2;
}

std::string human_bytes(int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  for (; value >= 1024 && unit < 4; ++unit) value /= 1024;
  char text[32];
  std::snprintf(text, sizeof text, unit ? "%.1f %s" : "%.0f %s", value, units[unit]);
  return text;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text;
  for (int64_t extent : shape) text += (text.empty() ? "" : " x ") + std::to_string(extent);
  return text;
}

std::string layout_text(const CheckpointIndex& index) {
  return "dp " + std::to_string(index.attribute("dp")) + " x tp " + std::to_string(index.attribute("tp")) + " x pp " +
         std::to_string(index.attribute("pp")) + ", zero_stage " + std::to_string(index.attribute("zero_stage"));
}

// "0: layers 0-1 + embedding; 1: layer 2 + head"
std::string stages_text(const CheckpointIndex& index) {
  std::string text;
  for (size_t s = 0; s < index.stages().size(); ++s) {
    const xp::StageRange& stage = index.stages()[s];
    const std::string first = std::to_string(stage.first_layer), last = std::to_string(stage.last_layer - 1);
    text += (s ? "; " : "") + std::to_string(s) + ": " +
            (stage.layers() == 1 ? "layer " + first : "layers " + first + "-" + last) +
            (stage.has_embedding ? " + embedding" : "") + (stage.has_head ? " + head" : "");
  }
  return text;
}

// Checks sizes and CRC-32 of every shard (the library's own check, as resuming does).
xp::CheckpointState verified_state(const CheckpointIndex& index) {
  return xp::read_checkpoint_state(index.dir(), index.model());
}

int list(const std::string& run_dir) {
  const std::vector<xp::CheckpointEntry> entries = xp::list_checkpoints(run_dir);
  if (entries.empty()) std::printf("no checkpoints in %s/ckpt\n", run_dir.c_str());
  else std::printf("%8s %11s  %-4s %-4s %-4s %-4s  %s\n", "step", "size", "dp", "tp", "pp", "zero", "directory");
  for (const xp::CheckpointEntry& entry : entries) {
    std::string layout = "-    -    -    -   ", note = entry.partial ? "  partial (ignored)" : "";
    if (!entry.partial) {
      try {
        CheckpointIndex index(entry.dir);
        char text[64];
        std::snprintf(text, sizeof text, "%-4lld %-4lld %-4lld %-4lld", (long long)index.attribute("dp"),
                      (long long)index.attribute("tp"), (long long)index.attribute("pp"),
                      (long long)index.attribute("zero_stage"));
        layout = text;
      } catch (const InputError& error) {
        note = std::string("  unreadable index: ") + error.what();
      }
    }
    std::printf("%8lld %11s  %s  %s%s\n", (long long)entry.step, human_bytes(entry.bytes).c_str(), layout.c_str(),
                entry.dir.c_str(), note.c_str());
  }
  return 0;
}

int info(const std::string& dir) {
  CheckpointIndex index(dir);
  const xp::ModelConfig model = index.model();
  std::printf("checkpoint   %s\n", dir.c_str());
  std::printf("step         %lld (format version %lld, seed %lld)\n", (long long)index.attribute("step"),
              (long long)index.attribute("format_version"), (long long)index.attribute("seed"));
  std::printf("model        n_layer %d, n_head %d, n_embd %d, seq_len %d, vocab_size %d (padded %d); %lld parameters\n",
              model.n_layer, model.n_head, model.n_embd, model.seq_len, model.vocab_size, model.padded_vocab(),
              (long long)xp::count_parameters(model));
  std::printf("layout       %s\n", layout_text(index).c_str());
  std::printf("stages       %s%s\n", stages_text(index).c_str(),
              index.format_version() < 2 ? " (format 1: read off the tensor names)" : "");
  std::printf("data cursor  shard %lld, position %lld, epoch %lld\n", (long long)index.attribute("train_shard"),
              (long long)index.attribute("train_position"), (long long)index.attribute("train_epoch"));
  try {
    std::printf("config       %s\n", config_summary(index.text_attribute("config")).c_str());
  } catch (const std::exception& error) {
    std::printf("config       unreadable (%s)\n", error.what());
  }
  std::printf("tensors      full shapes; split over the writing run's tp ranks; each also under\n"
              "             /optimizer/exp_avg/ and /optimizer/exp_avg_sq/\n");
  std::printf("  %-6s %-28s %-14s %s\n", "stage", "name", "shape", "split");
  for (const IndexTensor& tensor : index.tensors()) {
    const std::string parts = tensor.parts > 1 ? " (" + std::to_string(tensor.parts) + " parts)" : "";
    std::printf("  %-6d %-28s %-14s %s%s\n", tensor.stage, tensor.name.c_str(), shape_text(tensor.shape).c_str(),
                tensor.split.c_str(), parts.c_str());
  }
  return 0;
}

int verify(const std::string& dir) {
  CheckpointIndex index(dir);
  const xp::CheckpointState state = verified_state(index);
  for (const IndexTensor& tensor : index.tensors())
    for (Moment moment : all_moments)
      for (float value : index.read(tensor, moment))
        if (!std::isfinite(value))
          throw InputError("checkpoint '" + dir + "': " + moment_name(moment) + " of '" + tensor.name +
                           "' holds non-finite values");
  std::printf("OK: %s: step %lld, %d shard(s) match their sizes and CRC-32, %zu tensors finite\n", dir.c_str(),
              (long long)state.step, state.layout.tp * state.layout.pp, index.tensors().size());
  return 0;
}

// Largest |a - b|, and that relative to the larger of the two tensors' largest magnitudes.
struct Difference {
  double abs = 0, rel = 0;
};

Difference compare(const std::vector<float>& a, const std::vector<float>& b) {
  double largest = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double difference = std::fabs(double(a[i]) - double(b[i]));
    if (!(difference <= largest)) largest = difference;  // NaN propagates
    scale = std::max({scale, std::fabs(double(a[i])), std::fabs(double(b[i]))});
  }
  return {largest, scale > 0 ? largest / scale : largest};
}

int diff(const std::string& dir_a, const std::string& dir_b) {
  CheckpointIndex a(dir_a), b(dir_b);
  verified_state(a);
  verified_state(b);
  std::printf("a: %s (step %lld, %s)\nb: %s (step %lld, %s)\n", dir_a.c_str(), (long long)a.attribute("step"),
              layout_text(a).c_str(), dir_b.c_str(), (long long)b.attribute("step"), layout_text(b).c_str());
  std::printf("%-28s %22s %22s %22s\n", "tensor (max difference)", "param: abs, rel", "exp_avg: abs, rel",
              "exp_avg_sq: abs, rel");
  Difference worst;
  std::string worst_abs = "-", worst_rel = "-";
  int compared = 0;
  for (const IndexTensor& tensor : a.tensors()) {
    const IndexTensor* other = nullptr;
    for (const IndexTensor& candidate : b.tensors())
      if (candidate.name == tensor.name) other = &candidate;
    if (!other || other->shape != tensor.shape) {
      std::printf("%-28s %s\n", tensor.name.c_str(),
                  other ? ("shapes differ: " + shape_text(tensor.shape) + " vs " + shape_text(other->shape)).c_str()
                        : "only in a");
      continue;
    }
    std::printf("%-28s", tensor.name.c_str());
    for (Moment moment : all_moments) {
      const Difference d = compare(a.read(tensor, moment), b.read(*other, moment));
      std::printf("   %9.3e, %9.3e", d.abs, d.rel);
      const std::string where = tensor.name + " " + moment_name(moment);
      if (!(d.abs <= worst.abs)) worst.abs = d.abs, worst_abs = where;
      if (!(d.rel <= worst.rel)) worst.rel = d.rel, worst_rel = where;
    }
    std::printf("\n");
    ++compared;
  }
  for (const IndexTensor& tensor : b.tensors()) {
    bool in_a = false;
    for (const IndexTensor& candidate : a.tensors()) in_a = in_a || candidate.name == tensor.name;
    if (!in_a) std::printf("%-28s only in b\n", tensor.name.c_str());
  }
  std::printf("max over %d tensors: abs %.3e (%s), rel %.3e (%s)\n", compared, worst.abs, worst_abs.c_str(), worst.rel,
              worst_rel.c_str());
  return 0;
}

int export_weights(const std::vector<std::string>& args) {
  std::string dir, format, out;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--to" && i + 1 < args.size()) format = args[++i];
    else if (args[i] == "-o" && i + 1 < args.size()) out = args[++i];
    else if (dir.empty() && args[i][0] != '-') dir = args[i];
    else return usage();
  }
  if (dir.empty() || format.empty()) return usage();
  if (format != "safetensors") throw InputError("unknown export format '" + format + "' (allowed: safetensors)");
  fs::path name = fs::path(dir);
  if (name.filename().empty()) name = name.parent_path();
  if (out.empty()) out = name.filename().string() + ".safetensors";
  CheckpointIndex index(dir);
  verified_state(index);
  const int tensors = xp::write_gpt2_safetensors(index, out);
  const xp::ModelConfig m = index.model();
  std::printf("wrote %s: %d tensors, %s; load into transformers.GPT2LMHeadModel(GPT2Config(n_layer=%d, n_head=%d, "
              "n_embd=%d, n_positions=%d, vocab_size=%d))\n",
              out.c_str(), tensors, human_bytes(fs::file_size(out)).c_str(), m.n_layer, m.n_head, m.n_embd,
              m.seq_len, m.vocab_size);
  return 0;
}

int import_weights(const std::vector<std::string>& args) {
  std::string file, out;
  int n_head = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "-o" && i + 1 < args.size()) out = args[++i];
    else if (args[i] == "--n_head" && i + 1 < args.size()) {
      const std::string& value = args[++i];
      if (value.empty() || value.size() > 6 || value.find_first_not_of("0123456789") != std::string::npos ||
          std::stoi(value) < 1)
        throw InputError("--n_head " + value + " is not a positive count");
      n_head = std::stoi(value);
    } else if (file.empty() && args[i][0] != '-') file = args[i];
    else return usage();
  }
  if (file.empty() || out.empty()) return usage();
  const xp::Gpt2Safetensors weights(file, n_head);
  const xp::ModelConfig& m = weights.model();
  std::printf("%s: GPT-2 with n_layer %d, n_embd %d, seq_len %d, vocab_size %d (padded to %d); n_head %d (%s)\n",
              file.c_str(), m.n_layer, m.n_embd, m.seq_len, m.vocab_size, m.padded_vocab(), m.n_head,
              weights.n_head_source().c_str());
  const int tensors = xp::write_gpt2_checkpoint(weights, out);
  std::printf("wrote %s: %d tensors, %lld parameters, step 0, AdamW moments zero; fine-tune from it with "
              "init_from = \"%s\"\n"
              "  and [model] n_layer = %d, n_head = %d, n_embd = %d, seq_len = %d, vocab_size = %d in the deck\n",
              out.c_str(), tensors, (long long)xp::count_parameters(m), out.c_str(), m.n_layer, m.n_head, m.n_embd,
              m.seq_len, m.vocab_size);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  const std::string command = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  // Only import writes a checkpoint, which goes through MPI (a 1-rank grid): the other commands stay MPI-free.
  std::unique_ptr<xp::Runtime> runtime;
  if (command == "import") runtime = std::make_unique<xp::Runtime>(argc, argv);
  try {
    if (runtime && runtime->size() > 1)  // every rank would write the same directory
      throw InputError("import runs as one process; start it without mpirun (" + std::to_string(runtime->size()) +
                       " ranks here)");
    xp::check_hdf5_version();  // HDF5 itself would abort on a mismatch, without saying which versions
    if (command == "list" && args.size() == 1) return list(args[0]);
    if (command == "info" && args.size() == 1) return info(args[0]);
    if (command == "verify" && args.size() == 1) return verify(args[0]);
    if (command == "diff" && args.size() == 2) return diff(args[0], args[1]);
    if (command == "export") return export_weights(args);
    if (command == "import") return import_weights(args);
  } catch (const std::exception& error) {  // InputError, and filesystem errors
    std::fprintf(stderr, "xp_ckpt: %s\n", error.what());
    return 1;
  }
  return usage();
}
