#pragma once
// The parameter table: one row per tensor this rank holds (name, local and full shape, offset into the
// flat buffer, how it is split across tensor-parallel ranks, whether AdamW decays it). It drives the
// model, the optimizer, the gradient reductions and weight export. A rank holds the tensors of its
// pipeline stage; tensors of one block are contiguous, blocks in order.
//
// Splits over tp ranks (PyTorch (out, in) shapes):
//   Column — output rows split: QKV (in 3 parts: each rank gets its heads' q, k and v rows) and
//            MLP up, with their biases;
//   Row    — input columns split: attention projection and MLP down (biases replicated);
//   Vocab  — rows of the token embedding / LM head;
//   Replicated — LayerNorms, position embedding, row-parallel biases.
#include <cstdint>
#include <string>
#include <vector>

#include <Kokkos_Macros.hpp>

#include "xp/config/config.hpp"

namespace xp {

enum class Split { Replicated, Column, Row, Vocab };
const char* split_name(Split split);

// Where one tp rank's slice of a tensor sits in the whole tensor, as plain numbers: callable in device
// kernels (TensorInfo::slice_index makes it; the GPU build initialises its weights with it).
struct SliceIndex {
  Split split = Split::Replicated;
  int tp_rank = 0, tp_size = 1;
  int64_t columns = 1;          // of the whole tensor (1 for a vector)
  int64_t part_rows = 1;        // Column/Vocab: rows of one part of the whole tensor
  int64_t local_part_rows = 1;  // Column/Vocab: this rank's rows of one part

  // Row-major index in the whole tensor of element `local` of the slice.
  KOKKOS_INLINE_FUNCTION int64_t operator()(int64_t local) const {
    if (split == Split::Replicated || tp_size == 1) return local;
    if (split == Split::Row) {
      const int64_t local_columns = columns / tp_size;
      const int64_t row = local / local_columns, column = local % local_columns;
      return row * columns + tp_rank * local_columns + column;
    }
    // Column and Vocab split the rows; a fused tensor's rows come in `parts` blocks split one by one.
    const int64_t local_row = local / columns, column = local % columns;
    const int64_t part = local_row / local_part_rows, row_in_part = local_row % local_part_rows;
    return (part * part_rows + tp_rank * local_part_rows + row_in_part) * columns + column;
  }
};

struct TensorInfo {
  std::string name;                 // Hugging Face-like: "h.3.attn.qkv.weight"
  std::vector<int64_t> shape;       // this rank's slice
  std::vector<int64_t> full_shape;  // the whole tensor
  int64_t offset = 0;               // into the flat buffer, in floats
  int64_t size = 0;                 // elements of the slice
  Split split = Split::Replicated;
  int parts = 1;                    // Column splits of fused tensors: each part is split separately
  bool decay = false;               // 2-D weights only

  // Row-major index in the whole tensor of element `local` of tp rank `tp_rank`'s slice.
  int64_t full_index(int64_t local, int tp_rank, int tp_size) const {
    return slice_index(tp_rank, tp_size)(local);
  }
  SliceIndex slice_index(int tp_rank, int tp_size) const;
};

// Which part of the model this rank holds.
struct Placement {
  int tp_size = 1, tp_rank = 0;
  int first_layer = 0, last_layer = -1;  // [first, last); last -1 = n_layer
  bool has_embedding = true;             // first pipeline stage: token + position embedding
  bool has_head = true;                  // last pipeline stage: final LayerNorm + tied LM head
};

// Offsets of one block's tensors.
struct BlockOffsets {
  int64_t ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b, ln2_w, ln2_b, fc_w, fc_b, fcproj_w, fcproj_b;
};

class ParameterLayout {
 public:
  explicit ParameterLayout(const ModelConfig& model, Placement placement = {});

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const Placement& placement() const { return placement_; }
  int64_t total() const { return total_; }
  const TensorInfo& find(const std::string& name) const;  // aborts for an unknown name

  int64_t wte() const { return wte_; }  // -1 when this stage has no embedding or head
  int64_t wpe() const { return wpe_; }  // -1 off the first stage
  int64_t lnf_w() const { return lnf_w_; }
  int64_t lnf_b() const { return lnf_b_; }
  const BlockOffsets& block(int layer) const { return blocks_[layer - placement_.first_layer]; }

 private:
  int64_t add(const std::string& name, std::vector<int64_t> full_shape, Split split, int parts, bool decay);
  Placement placement_;
  std::vector<TensorInfo> tensors_;
  std::vector<BlockOffsets> blocks_;
  int64_t total_ = 0;
  int64_t wte_ = -1, wpe_ = -1, lnf_w_ = -1, lnf_b_ = -1;
};

// Parameters of the whole model (the tied embedding once), without building the table.
int64_t count_parameters(const ModelConfig& model);

}  // namespace xp
