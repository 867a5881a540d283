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

SliceIndex TensorInfo::slice_index(int tp_rank, int tp_size) const {
  SliceIndex index;
  index.split = split;
  index.tp_rank = tp_rank;
  index.tp_size = tp_size;
  index.columns = full_shape.size() > 1 ? full_shape[1] : 1;
  index.part_rows = full_shape[0] / parts;
  index.local_part_rows = index.part_rows / tp_size;
  return index;
}

int64_t ParameterLayout::add(const std::string& name, std::vector<int64_t> full_shape, Split split, int parts,
                             bool decay) {
  TensorInfo info;
  info.name = name;
  info.full_shape = full_shape;
  info.shape = full_shape;
  const int tp = placement_.tp_size;
  if (split == Split::Row) info.shape[1] /= tp;
  else if (split != Split::Replicated) info.shape[0] /= tp;
  info.split = split;
  info.parts = parts;
  info.offset = total_;
  info.size = 1;
  for (int64_t extent : info.shape) info.size *= extent;
  info.decay = decay;
  total_ += info.size;
  tensors_.push_back(info);
  return info.offset;
}

ParameterLayout::ParameterLayout(const ModelConfig& model, Placement placement) : placement_(placement) {
  if (placement_.last_layer < 0) placement_.last_layer = model.n_layer;
  const int64_t C = model.n_embd, Vp = model.padded_vocab(), T = model.seq_len;
  const Split R = Split::Replicated;
  if (placement_.has_embedding || placement_.has_head) wte_ = add("wte.weight", {Vp, C}, Split::Vocab, 1, true);
  if (placement_.has_embedding) wpe_ = add("wpe.weight", {T, C}, R, 1, true);
  for (int l = placement_.first_layer; l < placement_.last_layer; ++l) {
    const std::string p = "h." + std::to_string(l) + ".";
    BlockOffsets b;
    b.ln1_w = add(p + "ln_1.weight", {C}, R, 1, false);
    b.ln1_b = add(p + "ln_1.bias", {C}, R, 1, false);
    b.qkv_w = add(p + "attn.qkv.weight", {3 * C, C}, Split::Column, 3, true);
    b.qkv_b = add(p + "attn.qkv.bias", {3 * C}, Split::Column, 3, false);
    b.proj_w = add(p + "attn.proj.weight", {C, C}, Split::Row, 1, true);
    b.proj_b = add(p + "attn.proj.bias", {C}, R, 1, false);
    b.ln2_w = add(p + "ln_2.weight", {C}, R, 1, false);
    b.ln2_b = add(p + "ln_2.bias", {C}, R, 1, false);
    b.fc_w = add(p + "mlp.fc.weight", {4 * C, C}, Split::Column, 1, true);
    b.fc_b = add(p + "mlp.fc.bias", {4 * C}, Split::Column, 1, false);
    b.fcproj_w = add(p + "mlp.proj.weight", {C, 4 * C}, Split::Row, 1, true);
    b.fcproj_b = add(p + "mlp.proj.bias", {C}, R, 1, false);
    blocks_.push_back(b);
  }
  if (placement_.has_head) {
    lnf_w_ = add("ln_f.weight", {C}, R, 1, false);
    lnf_b_ = add("ln_f.bias", {C}, R, 1, false);
  }
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
