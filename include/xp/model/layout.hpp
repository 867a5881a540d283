#pragma once
// The parameter table: one row per tensor (name, shape, offset into the flat buffer, how it is split
// across tensor-parallel ranks, whether AdamW decays it). It drives the model, the optimizer, the
// gradient all-reduce and weight export. Tensors of one block are contiguous, blocks in order.
#include <cstdint>
#include <string>
#include <vector>

#include "xp/config/config.hpp"

namespace xp {

enum class Split { Replicated, Column, Row, Vocab };
const char* split_name(Split split);

struct TensorInfo {
  std::string name;            // Hugging Face-like: "h.3.attn.qkv.weight"
  std::vector<int64_t> shape;  // PyTorch Linear convention: (out, in)
  int64_t offset = 0;          // into the flat buffer, in floats
  int64_t size = 0;
  Split split = Split::Replicated;
  bool decay = false;          // 2-D weights only
};

// Offsets of one block's tensors.
struct BlockOffsets {
  int64_t ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b, ln2_w, ln2_b, fc_w, fc_b, fcproj_w, fcproj_b;
};

class ParameterLayout {
 public:
  explicit ParameterLayout(const ModelConfig& model);

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  int64_t total() const { return total_; }
  const TensorInfo& find(const std::string& name) const;  // aborts for an unknown name

  int64_t wte() const { return wte_; }
  int64_t wpe() const { return wpe_; }
  int64_t lnf_w() const { return lnf_w_; }
  int64_t lnf_b() const { return lnf_b_; }
  const BlockOffsets& block(int layer) const { return blocks_[layer]; }

 private:
  int64_t add(const std::string& name, std::vector<int64_t> shape, bool decay);
  std::vector<TensorInfo> tensors_;
  std::vector<BlockOffsets> blocks_;
  int64_t total_ = 0;
  int64_t wte_ = 0, wpe_ = 0, lnf_w_ = 0, lnf_b_ = 0;
};

// Parameters of a model shape without building the table (for the layout heuristic).
int64_t count_parameters(const ModelConfig& model);

}  // namespace xp
