#include "xp/parallel/node_map.hpp"

#include <map>

#include "xp/core/error.hpp"

namespace xp {

std::vector<int> node_of_ranks(MPI_Comm world) {
  int rank = 0, size = 1;
  XP_MPI_CHECK(MPI_Comm_rank(world, &rank));
  XP_MPI_CHECK(MPI_Comm_size(world, &size));
  MPI_Comm node = MPI_COMM_NULL;
  XP_MPI_CHECK(MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node));
  int leader = rank;  // the lowest world rank of the node: its node-local rank 0 (keyed by world rank)
  XP_MPI_CHECK(MPI_Bcast(&leader, 1, MPI_INT, 0, node));
  XP_MPI_CHECK(MPI_Comm_free(&node));
  std::vector<int> nodes(size);
  XP_MPI_CHECK(MPI_Allgather(&leader, 1, MPI_INT, nodes.data(), 1, MPI_INT, world));
  return nodes;
}

std::string tp_node_split_problem(const std::vector<int>& node_of_rank, int tp) {
  std::map<int, int> ranks_on;  // node label -> ranks
  for (int node : node_of_rank) ++ranks_on[node];
  if (ranks_on.size() <= 1) return {};
  std::string counts;
  bool equal = true;
  for (const auto& [node, ranks] : ranks_on) {
    counts += (counts.empty() ? "" : ", ") + std::to_string(ranks);
    equal = equal && ranks == ranks_on.begin()->second;
  }
  const std::string where = std::to_string(ranks_on.size()) + " nodes with " + counts + " ranks";
  const std::string fix = "; launch the same number of ranks on every node (srun --ntasks-per-node) with tp_size "
                          "dividing it";
  if (!equal) return "the run spans " + where + ": nodes must hold equally many ranks" + fix;
  const int per_node = ranks_on.begin()->second;
  if (per_node % tp != 0)
    return "tp_size " + std::to_string(tp) + " does not divide the " + std::to_string(per_node) +
           " ranks per node (" + where + "): a tensor-parallel group would span two nodes" + fix;
  for (size_t first = 0; first < node_of_rank.size(); first += tp)
    for (size_t r = first + 1; r < first + tp && r < node_of_rank.size(); ++r)
      if (node_of_rank[r] != node_of_rank[first])
        return "tensor-parallel group of world ranks " + std::to_string(first) + "-" + std::to_string(first + tp - 1) +
               " spans two nodes (" + where + "): ranks must be placed on nodes in blocks of consecutive ranks "
               "(srun --distribution=block, mpirun --map-by slot)";
  return {};
}

}  // namespace xp
