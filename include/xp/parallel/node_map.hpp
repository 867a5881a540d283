#pragma once
// Which node each rank runs on, and the check that the rank map never splits a tensor-parallel group
// across nodes. tp groups are adjacent world ranks (ParallelGrid) and all-reduce activations in every
// layer, so they must stay on one node's GPU links; dp and pp groups may cross nodes.
#include <string>
#include <vector>

#include <mpi.h>

namespace xp {

// The node of every world rank, labelled by the lowest world rank on it (MPI's shared-memory split).
// Collective over `world`.
std::vector<int> node_of_ranks(MPI_Comm world);

// Empty when every tp group [k·tp, (k+1)·tp) of world ranks lies on one node; otherwise why not, naming
// the ranks per node and tp (the text of an InputError). Nodes must hold equally many ranks, tp must
// divide that count, and each node's ranks must be consecutive (Slurm's and mpirun's block mapping).
std::string tp_node_split_problem(const std::vector<int>& node_of_rank, int tp);

}  // namespace xp
