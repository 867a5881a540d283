#pragma once
// GPT-2 weights in Hugging Face's layout (the model.safetensors of GPT2LMHeadModel or GPT2Model) read
// as this project's parameters, and written as a checkpoint (io/checkpoint.hpp) that `init_from` loads.
//
// What differs from our layout (the export, write_gpt2_safetensors, does the reverse):
//   names      "transformer.h.0.attn.c_attn.weight" or "h.0.attn.c_attn.weight" (io/safetensors.hpp)
//   Conv1D     c_attn, c_proj, c_fc weights are stored (in, out); ours are (out, in)
//   wte        vocab_size rows (50257); ours has padded_vocab() rows, the padding zero
//   buffers    attn.bias / attn.masked_bias (the causal mask) are not weights: ignored
//   lm_head    tied to wte: absent, or equal to wte (an untied head is refused)
// F32, F16 and BF16 tensors are read (converted to fp32 exactly). The model shape comes from the
// tensors — n_layer (h.N), n_embd and vocab_size (wte), seq_len (wpe) — except n_head, which no weight
// records. Errors throw InputError naming the file and the tensor.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "xp/config/config.hpp"
#include "xp/io/safetensors.hpp"
#include "xp/model/layout.hpp"

namespace xp {

class Gpt2Safetensors {
 public:
  // n_head > 0: that; 0: config.json beside the file ("n_head"), else GPT-2's n_embd / 64.
  Gpt2Safetensors(const std::string& path, int n_head = 0);

  const ModelConfig& model() const { return model_; }
  const std::string& n_head_source() const { return n_head_source_; }  // where n_head came from, in words
  const std::string& path() const { return file_.path(); }

  // The whole of our tensor `tensor` (a TensorInfo of ParameterLayout(model())), in our layout.
  std::vector<float> read(const TensorInfo& tensor) const;

 private:
  const SafetensorsTensor& source(const std::string& ours, bool& transposed) const;
  std::vector<float> values(const SafetensorsTensor& tensor) const;  // as fp32
  void check_tied_head() const;

  SafetensorsFile file_;
  std::map<std::string, const SafetensorsTensor*> by_name_;  // Hugging Face names without "transformer."
  const SafetensorsTensor* lm_head_ = nullptr;
  ModelConfig model_;
  std::optional<ParameterLayout> layout_;  // of model_, once it is known
  std::string n_head_source_;
};

// Writes the weights of `weights` as the step-0 checkpoint directory `out_dir` (which must not exist):
// one shard (dp = tp = pp = 1), AdamW moments zero. Starts and ends its own 1-rank grid on
// MPI_COMM_SELF, so MPI must be initialised. Returns the number of tensors written.
int write_gpt2_checkpoint(const Gpt2Safetensors& weights, const std::string& out_dir);

}  // namespace xp
