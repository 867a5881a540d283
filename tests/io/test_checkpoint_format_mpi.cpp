// Checkpoints of an older format still load. tests/io/data/format_v1 holds the deck (run.in) of a 4-step
// run, tp 2 x pp 2 on 4 ranks, and the metrics.jsonl of that run by xp_train at format 1 (commit 971cc86);
// the ctest fixture io_format_v1 (make_format_v1.py) writes that run's step-2 checkpoint into the build
// tree with its index as format 1 had it. Format 1 had no stage map in its index: it is read off the
// tensor names.
// Resumed in this world's layout, the checkpoint continues the run that wrote it; saved again (in the
// current format) it holds the same tensors bit for bit, and a resume from that copy repeats the losses.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support.hpp"
#include "xp/config/deck.hpp"
#include "xp/core/precision.hpp"
#include "xp/io/checkpoint.hpp"
#include "xp/io/checkpoint_inspect.hpp"
#include "xp/train/trainer.hpp"

namespace {

using xp::test::world_rank;
using xp::test::world_size;

const std::string fixture = std::string(XP_SOURCE_DIR) + "/tests/io/data/format_v1";
const std::string v1_checkpoint = XP_FORMAT_V1_CHECKPOINT;
constexpr int saved_step = 2, total_steps = 4;
// Another layout sums in another order (fp32 rounding; bf16 builds as two layouts of one bf16 run agree),
// and metrics.jsonl keeps 7 significant digits.
constexpr double tolerance = xp::real_is_float ? 1e-5 : xp::test::bf16_layout_tolerance;

// This world's layout, keeping the fixture's global batch of 8 sequences; empty when none fits.
std::vector<std::string> layout_overrides() {
  switch (world_size()) {
    case 1: return {"tp_size=1", "pp_stages=1", "dp_size=1"};
    case 2: return {"tp_size=1", "pp_stages=2", "dp_size=1"};
    case 4: return {"tp_size=2", "pp_stages=2", "dp_size=1"};  // the writer's
    case 8: return {"tp_size=2", "pp_stages=2", "dp_size=2", "grad_accum_steps=2", "zero_stage=1"};
  }
  return {};
}

xp::Config resume_config(const std::string& name, const std::string& resume) {
  std::vector<std::string> overrides = layout_overrides();
  overrides.push_back("run_dir=" + xp::test::temp_path("xp_format_np" + std::to_string(world_size()) + "_" + name));
  overrides.push_back("resume=" + resume);
  overrides.push_back("log_every=1000");
  return xp::load_config(fixture + "/run.in", overrides);
}

// The loss of every step of the deck as 971cc86 logged it.
std::vector<double> logged_losses() {
  std::ifstream metrics(fixture + "/metrics.jsonl");
  std::vector<double> losses;
  for (std::string line; std::getline(metrics, line);) {
    const size_t at = line.find("\"loss\": ");
    if (at != std::string::npos) losses.push_back(std::strtod(line.c_str() + at + 8, nullptr));
  }
  return losses;
}

// The fixture's checkpoint is there (ctest's io_format_v1 writes it; make_format_v1.py needs numpy and h5py).
::testing::AssertionResult fixture_written() {
  if (std::filesystem::is_directory(v1_checkpoint)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "no format-1 checkpoint at " << v1_checkpoint
                                       << ": the ctest fixture io_format_v1 (tests/io/make_format_v1.py) writes it";
}

TEST(CheckpointFormat, Version1IndexReadsWithItsStageMap) {
  ASSERT_TRUE(fixture_written());
  const xp::CheckpointIndex index(v1_checkpoint);
  EXPECT_EQ(index.format_version(), 1);
  const std::vector<xp::StageRange>& stages = index.stages();
  ASSERT_EQ(stages.size(), 2u);
  EXPECT_EQ(stages[0].first_layer, 0);
  EXPECT_EQ(stages[0].last_layer, 1);
  EXPECT_TRUE(stages[0].has_embedding && !stages[0].has_head);
  EXPECT_EQ(stages[1].first_layer, 1);
  EXPECT_EQ(stages[1].last_layer, 2);
  EXPECT_TRUE(!stages[1].has_embedding && stages[1].has_head);

  const xp::ModelConfig model = index.model();
  const xp::CheckpointState state = xp::read_checkpoint_state(v1_checkpoint, model);  // sizes and CRC-32 too
  EXPECT_EQ(state.step, saved_step);
  EXPECT_EQ(state.layout.tp, 2);
  EXPECT_EQ(state.layout.pp, 2);
  EXPECT_EQ(index.tensors().size(), xp::ParameterLayout(model).tensors().size());
}

TEST(CheckpointFormat, Version1ResumesTheRunThatWroteIt) {
  if (layout_overrides().empty()) GTEST_SKIP() << "no layout of the 2-layer, 2-head model fills " << world_size();
  ASSERT_TRUE(fixture_written());
  const std::vector<double> logged = logged_losses();
  ASSERT_EQ(logged.size(), size_t(total_steps));

  std::vector<double> from_v1;
  {
    xp::Trainer trainer(resume_config("from_v1", v1_checkpoint), MPI_COMM_WORLD);
    ASSERT_EQ(trainer.steps_done(), saved_step);
    from_v1 = trainer.run();
  }
  ASSERT_EQ(from_v1.size(), size_t(total_steps - saved_step));
  for (size_t i = 0; i < from_v1.size(); ++i)
    EXPECT_NEAR(from_v1[i], logged[saved_step + i], tolerance * logged[saved_step + i])
        << "step " << saved_step + i + 1;

  // Loaded and saved again at once: the current format, the same tensors.
  std::string again;
  {
    xp::Trainer trainer(resume_config("resaved", v1_checkpoint), MPI_COMM_WORLD);
    again = trainer.save();
  }
  if (world_rank() == 0) {
    const xp::CheckpointIndex before(v1_checkpoint), after(again);
    EXPECT_EQ(after.format_version(), xp::checkpoint_format_version);
    EXPECT_EQ(after.stages().size(), size_t(xp::read_checkpoint_state(again, after.model()).layout.pp));
    for (const xp::IndexTensor& tensor : before.tensors()) {
      const xp::IndexTensor* saved = after.find(tensor.name);
      ASSERT_NE(saved, nullptr) << tensor.name;
      for (xp::Moment moment : xp::all_moments)
        EXPECT_TRUE(before.read(tensor, moment) == after.read(*saved, moment))
            << moment_name(moment) << " of " << tensor.name << " changed through a load and a save";
    }
  }

  // Resumed from that copy, the same run again, bit for bit.
  xp::Trainer trainer(resume_config("from_resaved", again), MPI_COMM_WORLD);
  const std::vector<double> from_copy = trainer.run();
  ASSERT_EQ(from_copy.size(), from_v1.size());
  for (size_t i = 0; i < from_copy.size(); ++i) EXPECT_EQ(from_copy[i], from_v1[i]) << "step " << saved_step + i + 1;
}

}  // namespace
