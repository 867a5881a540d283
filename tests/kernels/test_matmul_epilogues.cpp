// The GPU build's choice of cuBLASLt epilogues for the linear layer (src/kernels/matmul_epilogues.hpp), on the
// host: which vectors qualify for the bias/aux epilogues, and when matmul_bwd takes the bias gradient from the
// weight-gradient GEMM's BGRADB epilogue instead of column_sums_add.
#include "kernels/matmul_epilogues.hpp"

#include <gtest/gtest.h>

namespace xp::matmul_epilogues {
namespace {

TEST(MatmulEpilogues, VectorsMustBeSixteenByteAlignedWithLeadingDimensionsOfEight) {
  alignas(16) float storage[16] = {};
  EXPECT_TRUE(ready(storage, 768));
  EXPECT_TRUE(ready(storage + 4, 8));
  EXPECT_FALSE(ready(storage + 1, 768));  // 4 bytes off
  EXPECT_FALSE(ready(storage + 2, 768));  // 8 bytes off
  EXPECT_FALSE(ready(storage, 100));      // a tensor-split width such as 100 = 400 / 4
  EXPECT_FALSE(ready(storage, 3));
}

TEST(MatmulEpilogues, BiasGradientFromTheEpilogueOnlyOnTheFusedPath) {
  float dbias[8];
  EXPECT_EQ(bias_grad_path(dbias, true, 32768, 768), BiasGradPath::Epilogue);
  EXPECT_EQ(bias_grad_path(dbias, false, 32768, 768), BiasGradPath::ColumnSums);  // gpu_kernels = "kokkos"
  EXPECT_EQ(bias_grad_path(nullptr, true, 32768, 768), BiasGradPath::None);        // a layer without bias
  EXPECT_EQ(bias_grad_path(nullptr, false, 32768, 768), BiasGradPath::None);
}

TEST(MatmulEpilogues, BiasGradientEpilogueTakesAnyAlignmentAndWidth) {
  // The epilogue writes a 16-byte aligned scratch vector that is then added to dbias, so neither dbias's
  // address nor OC restricts it (cuBLASLt's own limits are asked at run time, gemm_supported).
  alignas(16) float dbias[16];
  EXPECT_EQ(bias_grad_path(dbias + 1, true, 7, 77), BiasGradPath::Epilogue);
  EXPECT_EQ(bias_grad_path(dbias, true, 1, 1), BiasGradPath::Epilogue);
  EXPECT_EQ(bias_grad_path(dbias, true, 0, 8), BiasGradPath::ColumnSums);  // no rows: no GEMM over k = 0
  EXPECT_EQ(bias_grad_path(dbias, true, 8, 0), BiasGradPath::None);
}

}  // namespace
}  // namespace xp::matmul_epilogues
