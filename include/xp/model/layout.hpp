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

// The split geometry, stated once for the model, the checkpoint writer and its reader. A tensor is seen
// as 2-D (rows, columns; a 1-D tensor is one column). Tensor-parallel rank r's slice of it is a list of
// blocks, each a rectangle of the whole tensor copied to whole rows of the slice:
//   Replicated (or tp 1) — one block, the whole tensor;
//   Row                  — one block: all rows, columns [r·C/tp, (r+1)·C/tp);
//   Column, Vocab        — `parts` blocks: rows [p·R/parts + r·R/(parts·tp), ...) of each part p.
// Blocks come in the slice's row order, which is also their order in the whole tensor.
struct SliceBlock {
  int64_t full_row = 0, full_column = 0;  // where the block starts in the whole tensor
  int64_t local_row = 0;                  // where it starts in the slice (at column 0)
  int64_t rows = 0, columns = 0;
};
// The shape of one rank's slice of a tensor of `full_shape`.
std::vector<int64_t> slice_shape(const std::vector<int64_t>& full_shape, Split split, int tp_size);
int slice_block_count(Split split, int parts, int tp_size);
// Block `block` (< slice_block_count) of tp rank `tp_rank`'s slice.
SliceBlock slice_block(const std::vector<int64_t>& full_shape, Split split, int parts, int block, int tp_rank,
                       int tp_size);
// The same geometry as one device-callable element index (the GPU build initialises its weights with it):
// a slice's blocks have equal extents and start `block_stride` rows apart in the whole tensor.
struct SliceIndex {
  int64_t full_columns = 1;                   // of the whole tensor
  int64_t block_rows = 1, block_columns = 1;  // extent of every block
  int64_t first_row = 0, first_column = 0;    // where block 0 starts in the whole tensor
  int64_t block_stride = 0;                   // rows from one block's start to the next one's

  // Row-major index in the whole tensor of element `local` of the slice.
  KOKKOS_INLINE_FUNCTION int64_t operator()(int64_t local) const {
    const int64_t local_row = local / block_columns, column = local % block_columns;
    const int64_t block = local_row / block_rows, row = local_row % block_rows;
    return (first_row + block * block_stride + row) * full_columns + first_column + column;
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
  // Every block of tp rank `tp_rank`'s slice (see SliceBlock).
  std::vector<SliceBlock> slice_blocks(int tp_rank, int tp_size) const;
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
