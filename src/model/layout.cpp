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

std::vector<int64_t> slice_shape(const std::vector<int64_t>& full_shape, Split split, int tp_size) {
  std::vector<int64_t> shape = full_shape;
  if (split == Split::Row) shape[1] /= tp_size;
  else if (split != Split::Replicated) shape[0] /= tp_size;
  return shape;
}

int slice_block_count(Split split, int parts, int tp_size) {
  return tp_size > 1 && (split == Split::Column || split == Split::Vocab) ? parts : 1;
}

SliceBlock slice_block(const std::vector<int64_t>& full_shape, Split split, int parts, int block, int tp_rank,
                       int tp_size) {
  const int64_t rows = full_shape[0], columns = full_shape.size() > 1 ? full_shape[1] : 1;
  if (tp_size == 1 || split == Split::Replicated) return {0, 0, 0, rows, columns};
  if (split == Split::Row) {
    const int64_t local_columns = columns / tp_size;
    return {0, tp_rank * local_columns, 0, rows, local_columns};
  }
  // Column and Vocab split the rows; a fused tensor's rows come in `parts` blocks split one by one.
  const int64_t part_rows = rows / parts, local_part_rows = part_rows / tp_size;
  return {block * part_rows + tp_rank * local_part_rows, 0, block * local_part_rows, local_part_rows, columns};
}

SliceIndex TensorInfo::slice_index(int tp_rank, int tp_size) const {
  const SliceBlock first = slice_block(full_shape, split, parts, 0, tp_rank, tp_size);
  SliceIndex index;
  index.full_columns = full_shape.size() > 1 ? full_shape[1] : 1;
  index.block_rows = first.rows;
  index.block_columns = first.columns;
  index.first_row = first.full_row;
  index.first_column = first.full_column;
  if (slice_block_count(split, parts, tp_size) > 1)
    index.block_stride = slice_block(full_shape, split, parts, 1, tp_rank, tp_size).full_row - first.full_row;
  return index;
}

std::vector<SliceBlock> TensorInfo::slice_blocks(int tp_rank, int tp_size) const {
  std::vector<SliceBlock> blocks;
  for (int b = 0; b < slice_block_count(split, parts, tp_size); ++b)
    blocks.push_back(slice_block(full_shape, split, parts, b, tp_rank, tp_size));
  return blocks;
}

int64_t ParameterLayout::add(const std::string& name, std::vector<int64_t> full_shape, Split split, int parts,
                             bool decay) {
  TensorInfo info;
  info.name = name;
  info.full_shape = full_shape;
  info.shape = slice_shape(full_shape, split, placement_.tp_size);
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
