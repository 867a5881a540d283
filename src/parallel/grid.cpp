#include "xp/parallel/grid.hpp"

#include "xp/core/error.hpp"

namespace xp {

Layout resolve_layout(const ParallelConfig& parallel, const ModelConfig& model, int world_size,
                      int64_t parameters) {
  // Seed heuristic (DESIGN.md): small models are pure data parallel, larger ones split.
  int auto_tp = 4, auto_pp = 2;
  if (parameters <= 2'000'000'000LL && model.seq_len <= 2048) auto_tp = auto_pp = 1;
  else if (parameters <= 7'000'000'000LL) auto_tp = 2, auto_pp = 1;

  Layout layout;
  layout.tp = parallel.tp_size > 0 ? parallel.tp_size : auto_tp;
  layout.pp = parallel.pp_stages > 0 ? parallel.pp_stages : auto_pp;
  // An auto degree that does not divide the world falls back to 1 rather than failing.
  if (parallel.tp_size == 0 && world_size % layout.tp != 0) layout.tp = 1;
  if (parallel.pp_stages == 0 && world_size % (layout.tp * layout.pp) != 0) layout.pp = 1;
  layout.dp = parallel.dp_size > 0 ? parallel.dp_size : world_size / (layout.tp * layout.pp);

  const int product = layout.tp * layout.pp * layout.dp;
  if (product != world_size || layout.dp < 1)
    throw InputError("tp_size " + std::to_string(layout.tp) + " × pp_stages " + std::to_string(layout.pp) +
                     " × dp_size " + std::to_string(layout.dp) + " = " + std::to_string(product) +
                     " ≠ " + std::to_string(world_size) + " ranks");
  if (layout.tp > 1)
    throw InputError("tp_size " + std::to_string(layout.tp) +
                     ": tensor parallelism is not implemented yet in this version (use tp_size=1)");
  if (layout.pp > 1)
    throw InputError("pp_stages " + std::to_string(layout.pp) +
                     ": pipeline parallelism is not implemented yet in this version (use pp_stages=1)");
  return layout;
}

ParallelGrid::ParallelGrid(MPI_Comm world, const Layout& layout) : layout_(layout), world_(world) {
  int size = 0;
  XP_MPI_CHECK(MPI_Comm_rank(world, &world_rank_));
  XP_MPI_CHECK(MPI_Comm_size(world, &size));
  XP_REQUIRE(size == world_size(), "layout " + describe() + " does not match " + std::to_string(size) + " ranks");
  tp_rank_ = world_rank_ % layout.tp;
  pp_rank_ = (world_rank_ / layout.tp) % layout.pp;
  dp_rank_ = world_rank_ / (layout.tp * layout.pp);
  // Colour = the coordinates the group shares; key = position inside the group.
  XP_MPI_CHECK(MPI_Comm_split(world, dp_rank_ * layout.pp + pp_rank_, tp_rank_, &tp_comm_));
  XP_MPI_CHECK(MPI_Comm_split(world, dp_rank_ * layout.tp + tp_rank_, pp_rank_, &pp_comm_));
  XP_MPI_CHECK(MPI_Comm_split(world, pp_rank_ * layout.tp + tp_rank_, dp_rank_, &dp_comm_));
  dp_ = make_mpi_communicator(dp_comm_);
  tp_ = make_mpi_communicator(tp_comm_);
  pp_ = make_mpi_communicator(pp_comm_);
}

ParallelGrid::~ParallelGrid() {
  dp_.reset();
  tp_.reset();
  pp_.reset();
  for (MPI_Comm* comm : {&tp_comm_, &pp_comm_, &dp_comm_})
    if (*comm != MPI_COMM_NULL) MPI_Comm_free(comm);
}

std::string ParallelGrid::describe() const {
  return "dp=" + std::to_string(layout_.dp) + " tp=" + std::to_string(layout_.tp) + " pp=" +
         std::to_string(layout_.pp);
}

}  // namespace xp
