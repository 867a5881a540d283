#include "xp/parallel/grid.hpp"

#include "xp/core/device.hpp"
#include "xp/core/error.hpp"
#if defined(XP_ENABLE_CUDA)
#include "xp/parallel/nccl_comm.hpp"
#endif

namespace xp {

ParallelGrid::ParallelGrid(MPI_Comm world, const Layout& layout) : layout_(layout), world_(world) {
  int size = 0;
  XP_MPI_CHECK(MPI_Comm_rank(world, &world_rank_));
  XP_MPI_CHECK(MPI_Comm_size(world, &size));
  XP_REQUIRE(size == world_size(), "layout " + describe() + " does not match " + std::to_string(size) + " ranks");
  const GridPosition position = grid_position(layout, world_rank_);
  tp_rank_ = position.tp;
  pp_rank_ = position.pp;
  dp_rank_ = position.dp;
  // Colour = the coordinates the group shares; key = position inside the group.
  XP_MPI_CHECK(MPI_Comm_split(world, dp_rank_ * layout.pp + pp_rank_, tp_rank_, &tp_comm_));
  XP_MPI_CHECK(MPI_Comm_split(world, dp_rank_ * layout.tp + tp_rank_, pp_rank_, &pp_comm_));
  XP_MPI_CHECK(MPI_Comm_split(world, pp_rank_ * layout.tp + tp_rank_, dp_rank_, &dp_comm_));
  const bool holds_embedding = layout.pp > 1 && (pp_rank_ == 0 || pp_rank_ == layout.pp - 1);
  XP_MPI_CHECK(MPI_Comm_split(world, holds_embedding ? dp_rank_ * layout.tp + tp_rank_ : MPI_UNDEFINED, pp_rank_,
                              &embedding_comm_));
  dp_host_ = make_mpi_communicator(dp_comm_);
  // Same creation order on every rank: NCCL communicator creation is collective. A group of one rank
  // gets neither an NCCL communicator nor host staging, only the trivial one.
  auto make = [this](MPI_Comm comm) {
    int size = 0;
    XP_MPI_CHECK(MPI_Comm_size(comm, &size));
    if (size == 1) return make_self_communicator();
#if defined(XP_ENABLE_CUDA)
    if (nccl_) return make_nccl_communicator(comm, static_cast<cudaStream_t>(device_stream()));
#endif
    return make_mpi_communicator(comm);
  };
#if defined(XP_ENABLE_CUDA)
  nccl_ = nccl_usable(world);
#endif
  dp_ = make(dp_comm_);
  if (holds_embedding) embedding_ = make(embedding_comm_);
  tp_ = make(tp_comm_);
  pp_ = make(pp_comm_);
}

ParallelGrid::~ParallelGrid() {
  dp_.reset();
  dp_host_.reset();
  tp_.reset();
  pp_.reset();
  embedding_.reset();
  for (MPI_Comm* comm : {&tp_comm_, &pp_comm_, &dp_comm_, &embedding_comm_})
    if (*comm != MPI_COMM_NULL) MPI_Comm_free(comm);
}

std::string ParallelGrid::describe() const {
  return "dp=" + std::to_string(layout_.dp) + " tp=" + std::to_string(layout_.tp) + " pp=" +
         std::to_string(layout_.pp) + (nccl_ && world_size() > 1 ? " (NCCL)" : "");
}

}  // namespace xp
