#include "xp/io/gpt2_import.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "xp/config/deck.hpp"
#include "xp/core/error.hpp"
#include "xp/io/checkpoint.hpp"
#include "xp/parallel/grid.hpp"

namespace fs = std::filesystem;

namespace xp {
namespace {

constexpr const char* hf_prefix = "transformer.";

float bits_to_float(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// IEEE half → float, exactly (every half is a float).
float half_to_float(uint16_t half) {
  const uint32_t sign = uint32_t(half & 0x8000u) << 16, exponent = (half >> 10) & 0x1fu, mantissa = half & 0x3ffu;
  if (exponent == 0x1f) return bits_to_float(sign | 0x7f800000u | (mantissa << 13));  // inf, NaN
  if (exponent != 0) return bits_to_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
  const float subnormal = std::ldexp(float(mantissa), -24);  // 0 included
  return sign ? -subnormal : subnormal;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

// The layer of "h.N.<rest>", or -1.
int layer_of(const std::string& name) {
  if (name.rfind("h.", 0) != 0) return -1;
  const size_t dot = name.find('.', 2);
  const std::string digits = name.substr(2, dot == std::string::npos ? std::string::npos : dot - 2);
  if (dot == std::string::npos || digits.empty() || digits.size() > 6 ||
      digits.find_first_not_of("0123456789") != std::string::npos)
    return -1;
  return std::stoi(digits);
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

Gpt2Safetensors::Gpt2Safetensors(const std::string& path, int n_head) : file_(path) {
  const std::string where = "'" + path + "'";
  for (const SafetensorsTensor& tensor : file_.tensors()) {
    std::string name = tensor.name;
    if (name.rfind(hf_prefix, 0) == 0) name = name.substr(std::strlen(hf_prefix));
    // The causal mask GPT2Attention registers as a buffer: not a weight.
    if (ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias")) continue;
    if (name == "lm_head.weight") {
      lm_head_ = &tensor;
      continue;
    }
    if (!by_name_.emplace(name, &tensor).second)
      throw InputError(where + " holds '" + name + "' twice (with and without the '" + hf_prefix + "' prefix)");
  }
  const auto shape_of = [&](const char* name) {
    const auto found = by_name_.find(name);
    if (found == by_name_.end()) throw InputError(where + " has no tensor '" + name + "': not GPT-2 weights");
    if (found->second->shape.size() != 2)
      throw InputError(where + ": '" + found->second->name + "' has shape " + shape_text(found->second->shape) +
                       ", not (rows, n_embd)");
    return found->second->shape;
  };
  const std::vector<int64_t> wte = shape_of("wte.weight"), wpe = shape_of("wpe.weight");
  int layers = 0;
  for (const auto& entry : by_name_) layers = std::max(layers, layer_of(entry.first) + 1);
  if (wte[0] < 2 || wte[0] > 65536 || wte[1] < 1 || wte[1] > (1 << 20) || wpe[0] < 1 || wpe[0] > (1 << 24) ||
      layers < 1 || layers > max_layers)
    throw InputError(where + ": wte " + shape_text(wte) + ", wpe " + shape_text(wpe) + " and " +
                     std::to_string(layers) + " layers are beyond the models xp_train trains");
  model_.n_layer = layers;
  model_.n_embd = static_cast<int>(wte[1]);
  model_.vocab_size = static_cast<int>(wte[0]);
  model_.seq_len = static_cast<int>(wpe[0]);

  // n_head: no weight records it. config.json beside the file is Hugging Face's record of the shape.
  const fs::path config_path = fs::path(path).parent_path() / "config.json";
  nlohmann::json config;
  if (fs::exists(config_path)) {
    std::ifstream in(config_path);
    config = nlohmann::json::parse(in, nullptr, false);
    if (config.is_discarded() || !config.is_object())
      throw InputError("'" + config_path.string() + "' is not a JSON object");
    const std::pair<const char*, int> inferred[] = {{"n_layer", model_.n_layer}, {"n_embd", model_.n_embd},
                                                   {"vocab_size", model_.vocab_size}, {"n_positions", model_.seq_len}};
    for (const auto& [key, value] : inferred)
      if (config.contains(key) && !(config[key].is_number_integer() && config[key].get<int64_t>() == value))
        throw InputError("'" + config_path.string() + "' says " + key + " " + config[key].dump() +
                         ", the tensors of " + where + " have " + std::to_string(value));
  }
  if (n_head > 0) {
    model_.n_head = n_head;
    n_head_source_ = "given";
  } else if (config.contains("n_head")) {
    if (!config["n_head"].is_number_integer() || config["n_head"].get<int64_t>() < 1)
      throw InputError("'" + config_path.string() + "': n_head " + config["n_head"].dump() + " is not a count");
    model_.n_head = config["n_head"].get<int>();
    n_head_source_ = "from " + config_path.string();
  } else {
    if (model_.n_embd % 64 != 0)
      throw InputError(where + ": n_embd " + std::to_string(model_.n_embd) +
                       " is not a multiple of GPT-2's head size 64 and no config.json is beside it: give --n_head");
    model_.n_head = model_.n_embd / 64;
    n_head_source_ = "GPT-2's n_embd/64: no config.json beside the file; --n_head sets it";
  }
  if (model_.n_embd % model_.n_head != 0)
    throw InputError(where + ": n_embd " + std::to_string(model_.n_embd) + " is not divisible by n_head " +
                     std::to_string(model_.n_head));

  // Every tensor the model needs, with its shape, and nothing else.
  std::map<std::string, bool> used;
  for (const auto& entry : by_name_) used[entry.first] = false;
  layout_.emplace(model_);
  for (const TensorInfo& tensor : layout_->tensors()) {
    bool transposed = false;
    used[gpt2_hf_name(tensor.name, transposed)] = true;
    source(tensor.name, transposed);
  }
  for (const auto& [name, needed] : used)
    if (!needed) throw InputError(where + ": tensor '" + name + "' is not part of a GPT-2 of " +
                                  std::to_string(model_.n_layer) + " layers");
  check_tied_head();
}

const SafetensorsTensor& Gpt2Safetensors::source(const std::string& ours, bool& transposed) const {
  const std::string theirs = gpt2_hf_name(ours, transposed);
  const auto found = by_name_.find(theirs);
  if (found == by_name_.end())
    throw InputError("'" + path() + "' has no tensor '" + theirs + "' (nor '" + hf_prefix + theirs + "')");
  const TensorInfo& info = layout_->find(ours);
  std::vector<int64_t> expected = info.full_shape;
  if (ours == "wte.weight") expected[0] = model_.vocab_size;  // stored without our padding rows
  if (transposed) std::swap(expected[0], expected[1]);
  const SafetensorsTensor& tensor = *found->second;
  if (tensor.shape != expected)
    throw InputError("'" + path() + "': '" + tensor.name + "' has shape " + shape_text(tensor.shape) + ", a GPT-2 of " +
                     "n_embd " + std::to_string(model_.n_embd) + " needs " + shape_text(expected));
  if (tensor.dtype != "F32" && tensor.dtype != "F16" && tensor.dtype != "BF16")
    throw InputError("'" + path() + "': '" + tensor.name + "' is " + tensor.dtype + " (F32, F16 or BF16 are read)");
  return tensor;
}

std::vector<float> Gpt2Safetensors::values(const SafetensorsTensor& tensor) const {
  if (tensor.dtype == "F32") return file_.read_f32(tensor);
  const std::vector<unsigned char> bytes = file_.read_bytes(tensor);
  std::vector<float> out(bytes.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    uint16_t half;
    std::memcpy(&half, &bytes[2 * i], 2);
    out[i] = tensor.dtype == "BF16" ? bits_to_float(uint32_t(half) << 16) : half_to_float(half);
  }
  return out;
}

std::vector<float> Gpt2Safetensors::read(const TensorInfo& tensor) const {
  bool transposed = false;
  const SafetensorsTensor& stored = source(tensor.name, transposed);
  std::vector<float> data = values(stored);
  if (transposed) {  // (in, out) → (out, in)
    const int64_t rows = stored.shape[0], columns = stored.shape[1];
    std::vector<float> ours(data.size());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < columns; ++c) ours[c * rows + r] = data[r * columns + c];
    return ours;
  }
  data.resize(tensor.size, 0.0f);  // wte: zero rows up to padded_vocab()
  return data;
}

void Gpt2Safetensors::check_tied_head() const {
  if (!lm_head_) return;
  bool transposed = false;
  const SafetensorsTensor& wte = source("wte.weight", transposed);
  if (lm_head_->shape != wte.shape)
    throw InputError("'" + path() + "': lm_head.weight has shape " + shape_text(lm_head_->shape) + ", wte " +
                     shape_text(wte.shape) + "; xp_train ties the head to wte");
  const std::vector<float> head = values(*lm_head_), embedding = values(wte);
  if (std::memcmp(head.data(), embedding.data(), head.size() * sizeof(float)) != 0)
    throw InputError("'" + path() + "': lm_head.weight differs from wte.weight; xp_train ties the head to wte, "
                     "so an untied head cannot be imported");
}

int write_gpt2_checkpoint(const Gpt2Safetensors& weights, const std::string& out_dir) {
  const fs::path target = fs::absolute(out_dir).lexically_normal();
  const fs::path name = target.filename().empty() ? target.parent_path() : target;
  if (fs::exists(name)) throw InputError("'" + out_dir + "' exists: import writes a new checkpoint directory");
  // save_checkpoint writes <run_dir>/ckpt/step_000000 atomically; that directory is then moved into place.
  const fs::path run_dir = name.parent_path() / ("." + name.filename().string() + ".import");
  std::error_code error;
  fs::remove_all(run_dir, error);

  const ModelConfig& model = weights.model();
  const ParameterLayout layout(model);
  const ParallelGrid grid(MPI_COMM_SELF, Layout{1, 1, 1});
  Config config;
  config.model = model;
  CheckpointState state;
  state.layout = grid.layout();
  state.config_toml = config_to_toml(config);
  // The save walks each tensor's parameter chunks in order, then its moments: one tensor is read at a time.
  size_t current = layout.tensors().size();
  std::vector<float> full;
  const ChunkSource source = [&](Moment moment, int64_t begin, int64_t end, float* staging) {
    if (moment != Moment::Param) {  // a fresh optimizer
      std::fill(staging, staging + (end - begin), 0.0f);
      return;
    }
    size_t i = 0;
    while (i < layout.tensors().size() &&
           !(begin >= layout.tensors()[i].offset && end <= layout.tensors()[i].offset + layout.tensors()[i].size))
      ++i;
    XP_REQUIRE(i < layout.tensors().size(), "import: chunk [" + std::to_string(begin) + ", " + std::to_string(end) +
                                                ") lies in no tensor");
    if (i != current) full = weights.read(layout.tensors()[i]), current = i;
    const int64_t offset = layout.tensors()[i].offset;
    std::copy(full.begin() + (begin - offset), full.begin() + (end - offset), staging);
  };
  const std::string written = save_checkpoint(run_dir.string(), grid, model, layout, source, state, 0);
  fs::rename(written, name, error);
  if (error) throw InputError("cannot move the checkpoint to '" + out_dir + "': " + error.message());
  fs::remove_all(run_dir, error);
  return static_cast<int>(layout.tensors().size());
}

}  // namespace xp
