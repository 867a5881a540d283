// The check that no tensor-parallel group spans two nodes, on rank maps given as the node of each rank.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "xp/parallel/node_map.hpp"

namespace {

// Ranks placed on nodes in blocks (Slurm's default): `ranks_per_node[n]` consecutive ranks on node n.
std::vector<int> blocks(const std::vector<int>& ranks_per_node) {
  std::vector<int> nodes;
  for (size_t n = 0; n < ranks_per_node.size(); ++n) nodes.insert(nodes.end(), ranks_per_node[n], int(n));
  return nodes;
}

bool mentions(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST(NodeMap, TensorParallelGroupsInsideNodesPass) {
  EXPECT_EQ(xp::tp_node_split_problem(blocks({8}), 8), "");
  EXPECT_EQ(xp::tp_node_split_problem(blocks({4}), 1), "");
  EXPECT_EQ(xp::tp_node_split_problem(blocks({8, 8}), 8), "");
  EXPECT_EQ(xp::tp_node_split_problem(blocks({8, 8, 8, 8}), 4), "");
  EXPECT_EQ(xp::tp_node_split_problem(blocks({8, 8, 8}), 2), "");
  EXPECT_EQ(xp::tp_node_split_problem(blocks({6, 6}), 3), "");
}

TEST(NodeMap, TensorParallelMustDivideRanksPerNode) {
  const std::string problem = xp::tp_node_split_problem(blocks({8, 8}), 16);
  EXPECT_TRUE(mentions(problem, "tp_size 16 does not divide the 8 ranks per node")) << problem;
  EXPECT_TRUE(mentions(xp::tp_node_split_problem(blocks({6, 6}), 4), "tp_size 4 does not divide the 6"));
}

TEST(NodeMap, NodesMustHoldEquallyManyRanks) {
  const std::string problem = xp::tp_node_split_problem(blocks({8, 4}), 4);
  EXPECT_TRUE(mentions(problem, "2 nodes with 8, 4 ranks")) << problem;
  EXPECT_TRUE(mentions(problem, "equally many ranks")) << problem;
}

TEST(NodeMap, RoundRobinPlacementSplitsGroups) {
  // Two nodes, ranks dealt alternately (srun --distribution=cyclic): every pair of adjacent ranks crosses.
  const std::vector<int> cyclic = {0, 1, 0, 1, 0, 1, 0, 1};
  const std::string problem = xp::tp_node_split_problem(cyclic, 2);
  EXPECT_TRUE(mentions(problem, "world ranks 0-1 spans two nodes")) << problem;
  EXPECT_EQ(xp::tp_node_split_problem(cyclic, 1), "");
}
