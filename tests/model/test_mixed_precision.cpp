// Mixed precision: fp32 master weights, and a compute copy in Real that the kernels read. After set-up,
// after every optimizer step (with and without ZeRO-1, which refresh the copy in different places) and
// after a resume, the compute copy must be exactly the master weights rounded to Real: a stale or partly
// written copy trains on old weights, which the loss alone hardly shows. fp32 builds compute with the
// master weights themselves. (How closely a bf16 run's loss curve follows the fp32 run's is compared
// across the two builds by tests/train/compare_loss_curves.py.)
#include <gtest/gtest.h>
#include <mpi.h>

#include <string>

#include "support.hpp"
#include "xp/train/trainer.hpp"

namespace xp::test {
namespace {

// Elements of the compute copy that differ from the master weights rounded to Real (0 when none do).
int64_t stale_compute_weights(GPT2& model) {
  Real* compute = model.compute_weights_copy();
  if (real_is_float) {
    EXPECT_EQ(compute, nullptr) << "fp32 builds compute with the master weights themselves";
    return 0;
  }
  const int64_t n = model.layout().total();
  Kokkos::View<Real*, Kokkos::MemoryTraits<Kokkos::Unmanaged>> copy(compute, n);
  auto copy_host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), copy);
  auto params_host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), model.params);
  int64_t stale = 0;
  for (int64_t i = 0; i < n; ++i) stale += to_float(copy_host(i)) != to_float(to_real(params_host(i)));
  return stale;
}

Config mixed_precision_config(const std::string& run_dir, int zero_stage) {
  Config config = tiny_config(run_dir);
  config.train.steps = 6;
  config.train.batch_size = 2;
  config.parallel.zero_stage = zero_stage;
  return config;
}

void expect_compute_weights_follow_master(int zero_stage) {
  ScratchDir dir("xp_mixed_precision_zero" + std::to_string(zero_stage));
  const Config config = mixed_precision_config(dir.path(), zero_stage);
  std::string saved;
  {
    Trainer trainer(config, MPI_COMM_SELF);
    EXPECT_EQ(stale_compute_weights(trainer.model()), 0) << "after initialisation";
    for (int step = 1; step <= 3; ++step) {
      trainer.step();
      EXPECT_EQ(stale_compute_weights(trainer.model()), 0) << "after step " << step;
    }
    saved = trainer.save();
  }
  Config resumed = config;
  resumed.run.resume = saved;
  Trainer trainer(resumed, MPI_COMM_SELF);
  EXPECT_EQ(stale_compute_weights(trainer.model()), 0) << "after resuming from " << saved;
  trainer.step();
  EXPECT_EQ(stale_compute_weights(trainer.model()), 0) << "after a step of the resumed run";
}

TEST(MixedPrecision, ComputeWeightsFollowMasterWeights) { expect_compute_weights_follow_master(0); }

TEST(MixedPrecision, ComputeWeightsFollowMasterWeightsWithZeroOne) { expect_compute_weights_follow_master(1); }

}  // namespace
}  // namespace xp::test
