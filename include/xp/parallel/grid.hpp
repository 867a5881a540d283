#pragma once
// The parallel layout: world = dp × pp × tp, one object that owns the communicators. Passed
// explicitly, never global. Tensor-parallel ranks are adjacent, pipeline neighbours tp apart,
// data-parallel replicas tp·pp apart. Example, 8 ranks, tp = 2, pp = 2, dp = 2:
//
//     tp groups: [0,1] [2,3] [4,5] [6,7]
//     pp groups: [0,2] [1,3] [4,6] [5,7]      (stage 0 → stage 1)
//     dp groups: [0,4] [1,5] [2,6] [3,7]
#include <string>

#include <mpi.h>

#include "xp/config/config.hpp"
#include "xp/parallel/comm.hpp"

namespace xp {

struct Layout {
  int dp = 1;
  int tp = 1;
  int pp = 1;
};

// Where world rank `world_rank` sits in `layout`: tp rank world_rank % tp, stage (world_rank / tp) % pp,
// replica world_rank / (tp·pp).
struct GridPosition {
  int dp = 0, tp = 0, pp = 0;
};
inline GridPosition grid_position(const Layout& layout, int world_rank) {
  return {world_rank / (layout.tp * layout.pp), world_rank % layout.tp, (world_rank / layout.tp) % layout.pp};
}

class ParallelGrid {
 public:
  ParallelGrid(MPI_Comm world, const Layout& layout);
  ~ParallelGrid();
  ParallelGrid(const ParallelGrid&) = delete;
  ParallelGrid& operator=(const ParallelGrid&) = delete;

  const Layout& layout() const { return layout_; }
  int world_rank() const { return world_rank_; }
  int world_size() const { return layout_.dp * layout_.tp * layout_.pp; }
  int dp_rank() const { return dp_rank_; }
  int tp_rank() const { return tp_rank_; }
  int pp_rank() const { return pp_rank_; }
  MPI_Comm world() const { return world_; }
  MPI_Comm dp_comm() const { return dp_comm_; }  // host-side gathers of ZeRO-1 slices (checkpoints)
  MPI_Comm tp_comm() const { return tp_comm_; }
  MPI_Comm pp_comm() const { return pp_comm_; }
  // Device collectives for each group: NCCL in CUDA builds where every rank has its own GPU, else MPI
  // (host-staged on GPU builds).
  Communicator& dp() const { return *dp_; }
  Communicator& tp() const { return *tp_; }
  Communicator& pp() const { return *pp_; }
  // The dp group over MPI, for host buffers (checkpoint gathers), whichever backend dp() uses.
  Communicator& dp_host() const { return *dp_host_; }
  // First and last pipeline stage of one (dp, tp) position, which both hold the tied token embedding;
  // null on other stages and when pp = 1.
  Communicator* embedding() const { return embedding_.get(); }
  bool first_stage() const { return pp_rank_ == 0; }
  bool last_stage() const { return pp_rank_ == layout_.pp - 1; }
  std::string describe() const;  // "dp=2 tp=1 pp=1"

 private:
  Layout layout_;
  MPI_Comm world_;
  int world_rank_ = 0, dp_rank_ = 0, tp_rank_ = 0, pp_rank_ = 0;
  MPI_Comm dp_comm_ = MPI_COMM_NULL, tp_comm_ = MPI_COMM_NULL, pp_comm_ = MPI_COMM_NULL;
  MPI_Comm embedding_comm_ = MPI_COMM_NULL;
  bool nccl_ = false;  // device collectives over NCCL (CUDA builds, one GPU per rank)
  std::unique_ptr<Communicator> dp_, tp_, pp_, embedding_, dp_host_;
};

}  // namespace xp
