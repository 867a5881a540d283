// What must stay identical across ranks after training: replicated tensors on the ranks of one
// tensor-parallel group (each updates its own copy from identical gradients), and the tied token
// embedding on the first and last pipeline stage. Bitwise: any drift grows with every step.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstring>
#include <string>
#include <vector>

#include "support.hpp"
#include "xp/model/layout.hpp"
#include "xp/train/trainer.hpp"

namespace {

constexpr int steps = 15;

using xp::test::world_size;

// The shared tiny run for `steps` steps in layout tp × pp × (the rest as dp).
xp::Config layout_config(const std::string& run_name, int tp, int pp) {
  xp::Config config = xp::test::tiny_config(
      xp::test::temp_path("xp_replicated_" + run_name + "_world" + std::to_string(world_size())));
  config.train.steps = steps;
  config.train.batch_size = 2;
  config.parallel.tp_size = tp;
  config.parallel.pp_stages = pp;
  config.parallel.dp_size = world_size() / (tp * pp);
  return config;
}

std::vector<float> host_values(xp::GPT2& model, const xp::TensorInfo& tensor) {
  auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), model.params);
  return std::vector<float>(host.data() + tensor.offset, host.data() + tensor.offset + tensor.size);
}

// Every rank's values of one tensor over `comm` (size 2), in rank order.
std::vector<std::vector<float>> gather_pair(const std::vector<float>& mine, MPI_Comm comm) {
  int size = 0;
  MPI_Comm_size(comm, &size);
  std::vector<float> all(mine.size() * size);
  MPI_Allgather(mine.data(), static_cast<int>(mine.size()), MPI_FLOAT, all.data(), static_cast<int>(mine.size()),
                MPI_FLOAT, comm);
  std::vector<std::vector<float>> per_rank;
  for (int r = 0; r < size; ++r)
    per_rank.emplace_back(all.begin() + r * mine.size(), all.begin() + (r + 1) * mine.size());
  return per_rank;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST(Replicated, ReplicatedTensorsStayIdenticalOverTensorParallelRanks) {
  const int ranks = world_size();
  if (ranks < 2 || ranks % 2 != 0) GTEST_SKIP() << "tp_size 2 needs an even world, not " << ranks << " ranks";
  xp::Trainer trainer(layout_config("tp2", 2, 1), MPI_COMM_WORLD);
  const std::vector<double> losses = trainer.run();
  ASSERT_EQ(static_cast<int>(losses.size()), steps);
  const xp::ParallelGrid& grid = trainer.grid();
  ASSERT_EQ(grid.layout().tp, 2);

  int replicated = 0;
  for (const xp::TensorInfo& tensor : trainer.model().layout().tensors()) {
    if (tensor.split != xp::Split::Replicated) continue;
    const auto values = gather_pair(host_values(trainer.model(), tensor), grid.tp_comm());
    EXPECT_TRUE(bitwise_equal(values[0], values[1])) << tensor.name << " differs between the tp ranks of world rank "
                                                      << grid.world_rank() << "'s group";
    ++replicated;
  }
  EXPECT_GT(replicated, 0);
  // Sanity: split tensors hold different slices, so the comparison above can see a difference.
  const xp::TensorInfo& fc = trainer.model().layout().find("h.0.mlp.fc.weight");
  const auto slices = gather_pair(host_values(trainer.model(), fc), grid.tp_comm());
  EXPECT_FALSE(bitwise_equal(slices[0], slices[1])) << "h.0.mlp.fc.weight slices are equal on both tp ranks";
}

TEST(Replicated, TiedEmbeddingStaysIdenticalOnFirstAndLastStage) {
  const int ranks = world_size();
  if (ranks < 2 || ranks % 2 != 0) GTEST_SKIP() << "pp_stages 2 needs an even world, not " << ranks << " ranks";
  const int tp = ranks % 4 == 0 ? 2 : 1;  // with tp, each vocabulary slice is tied to its own
  xp::Trainer trainer(layout_config("pp2", tp, 2), MPI_COMM_WORLD);
  xp::GPT2& model = trainer.model();
  const xp::TensorInfo& wte = model.layout().find("wte.weight");
  const std::vector<float> initial = host_values(model, wte);
  const std::vector<double> losses = trainer.run();
  ASSERT_EQ(static_cast<int>(losses.size()), steps);
  const xp::ParallelGrid& grid = trainer.grid();
  ASSERT_EQ(grid.layout().pp, 2);

  const std::vector<float> trained = host_values(model, wte);
  EXPECT_FALSE(bitwise_equal(initial, trained)) << "wte did not change in " << steps << " steps";
  const auto stages = gather_pair(trained, grid.pp_comm());
  ASSERT_EQ(stages.size(), 2u);
  EXPECT_TRUE(bitwise_equal(stages[0], stages[1])) << "wte differs between pipeline stages 0 and 1 at tp rank "
                                                    << grid.tp_rank() << ", dp rank " << grid.dp_rank();
}
