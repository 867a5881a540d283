// The split geometry (model/layout.hpp) that the model, the checkpoint writer and its reader share:
// the tp ranks' blocks tile every tensor exactly once, each block has the slice's shape, full_index
// agrees with the blocks, and a fused QKV's rows go part by part (q of every rank, then k, then v).
#include "xp/model/layout.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace xp {
namespace {

const ModelConfig model{"custom", 2, 4, 32, 16, 100};  // vocabulary padded to 128

TEST(SliceGeometry, RanksTileEveryTensorOnce) {
  for (int tp : {1, 2, 4}) {
    Placement placement;
    placement.tp_size = tp;
    const ParameterLayout layout(model, placement);
    for (const TensorInfo& tensor : layout.tensors()) {
      int64_t full_size = 1;
      for (int64_t extent : tensor.full_shape) full_size *= extent;
      const int64_t columns = tensor.full_shape.size() > 1 ? tensor.full_shape[1] : 1;
      std::vector<int> owners(full_size, 0);
      const int holders = tensor.split == Split::Replicated ? 1 : tp;  // a replicated tensor: rank 0's copy
      for (int r = 0; r < holders; ++r) {
        int64_t local_rows = 0;
        for (const SliceBlock& block : tensor.slice_blocks(r, tp)) {
          EXPECT_EQ(block.local_row, local_rows) << tensor.name << ": blocks follow the slice's rows";
          EXPECT_EQ(block.columns, tensor.shape.size() > 1 ? tensor.shape[1] : 1) << tensor.name;
          local_rows += block.rows;
          for (int64_t i = 0; i < block.rows; ++i)
            for (int64_t j = 0; j < block.columns; ++j) {
              const int64_t full = (block.full_row + i) * columns + block.full_column + j;
              ++owners[full];
              const int64_t local = (block.local_row + i) * block.columns + j;
              EXPECT_EQ(tensor.full_index(local, r, tp), full) << tensor.name << " tp " << tp << " rank " << r;
            }
        }
        EXPECT_EQ(local_rows, tensor.shape[0]) << tensor.name;
      }
      for (int64_t i = 0; i < full_size; ++i)
        ASSERT_EQ(owners[i], 1) << tensor.name << " tp " << tp << " element " << i;
    }
  }
}

TEST(SliceGeometry, FusedQkvRowsGoPartByPart) {
  Placement placement;
  placement.tp_size = 2;
  const ParameterLayout layout(model, placement);
  const TensorInfo& qkv = layout.find("h.0.attn.qkv.weight");  // (96, 32), 3 parts
  const std::vector<SliceBlock> blocks = qkv.slice_blocks(1, 2);
  ASSERT_EQ(blocks.size(), 3u);
  for (int p = 0; p < 3; ++p) {  // rank 1 holds rows [32p + 16, 32p + 32) of the whole, as its rows [16p, 16p + 16)
    EXPECT_EQ(blocks[p].full_row, 32 * p + 16);
    EXPECT_EQ(blocks[p].local_row, 16 * p);
    EXPECT_EQ(blocks[p].rows, 16);
    EXPECT_EQ(blocks[p].columns, 32);
  }
  const TensorInfo& proj = layout.find("h.0.attn.proj.weight");  // row split
  const SliceBlock columns = proj.slice_blocks(1, 2).at(0);
  EXPECT_EQ(columns.full_column, 16);
  EXPECT_EQ(columns.columns, 16);
  EXPECT_EQ(columns.rows, 32);
  EXPECT_EQ(slice_shape({128, 32}, Split::Vocab, 4), (std::vector<int64_t>{32, 32}));
}

}  // namespace
}  // namespace xp
