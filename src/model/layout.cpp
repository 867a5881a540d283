#include "xp/model/layout.hpp"

#include "xp/core/error.hpp"

namespace xp {

const char* split_name(Split split) {
  switch (split) {
    case Split::Replicated: return "replicated";
    case Split::Column: return "column";
    case Split::Row: return "row";
    case Split::Vocab: return "vocab";
  }
  return "?";
}

int64_t ParameterLayout::add(const std::string& name, std::vector<int64_t> shape, bool decay) {
  TensorInfo info;
  info.name = name;
  info.shape = std::move(shape);
  info.offset = total_;
  info.size = 1;
  for (int64_t extent : info.shape) info.size *= extent;
  info.decay = decay;
  total_ += info.size;
  tensors_.push_back(info);
  return info.offset;
}

ParameterLayout::ParameterLayout(const ModelConfig& model) {
  const int64_t C = model.n_embd, Vp = model.padded_vocab(), T = model.seq_len;
  wte_ = add("wte.weight", {Vp, C}, true);
  wpe_ = add("wpe.weight", {T, C}, true);
  for (int l = 0; l < model.n_layer; ++l) {
    const std::string p = "h." + std::to_string(l) + ".";
    BlockOffsets b;
    b.ln1_w = add(p + "ln_1.weight", {C}, false);
    b.ln1_b = add(p + "ln_1.bias", {C}, false);
    b.qkv_w = add(p + "attn.qkv.weight", {3 * C, C}, true);
    b.qkv_b = add(p + "attn.qkv.bias", {3 * C}, false);
    b.proj_w = add(p + "attn.proj.weight", {C, C}, true);
    b.proj_b = add(p + "attn.proj.bias", {C}, false);
    b.ln2_w = add(p + "ln_2.weight", {C}, false);
    b.ln2_b = add(p + "ln_2.bias", {C}, false);
    b.fc_w = add(p + "mlp.fc.weight", {4 * C, C}, true);
    b.fc_b = add(p + "mlp.fc.bias", {4 * C}, false);
    b.fcproj_w = add(p + "mlp.proj.weight", {C, 4 * C}, true);
    b.fcproj_b = add(p + "mlp.proj.bias", {C}, false);
    blocks_.push_back(b);
  }
  lnf_w_ = add("ln_f.weight", {C}, false);
  lnf_b_ = add("ln_f.bias", {C}, false);
}

const TensorInfo& ParameterLayout::find(const std::string& name) const {
  for (const TensorInfo& info : tensors_)
    if (info.name == name) return info;
  fatal(__FILE__, __LINE__, "no parameter named '" + name + "'");
}

int64_t count_parameters(const ModelConfig& model) {
  const int64_t C = model.n_embd;
  const int64_t per_block = 12 * C * C + 13 * C;
  return int64_t{model.padded_vocab()} * C + int64_t{model.seq_len} * C + model.n_layer * per_block + 2 * C;
}

}  // namespace xp
