// Checkpoint names: step directories and their hidden in-transition names parse back to their step
// (and nothing else does), and the file and dataset names are the ones the format documents
// (io/checkpoint.hpp), which h5py users and older checkpoints rely on.
#include "xp/io/checkpoint_names.hpp"

#include <gtest/gtest.h>

namespace xp {
namespace {

TEST(CheckpointNames, StepDirectoriesParseBackToTheirStep) {
  std::string suffix = "unset";
  for (int64_t step : {int64_t{0}, int64_t{12}, int64_t{999999}, int64_t{1234567}}) {
    EXPECT_EQ(parse_step_dir(step_dir_name(step), suffix), step);
    EXPECT_EQ(suffix, "");
    for (const char* hidden : {partial_suffix, replaced_suffix, deleting_suffix}) {
      EXPECT_EQ(parse_step_dir(hidden_step_dir_name(step, hidden), suffix), step) << hidden;
      EXPECT_EQ(suffix, hidden);
    }
  }
  EXPECT_EQ(step_dir_name(12), "step_000012");
  EXPECT_EQ(hidden_step_dir_name(12, partial_suffix), ".step_000012.partial");
}

TEST(CheckpointNames, OtherNamesAreNoStep) {
  std::string suffix;
  for (const char* name : {"step_", "step_12a", "Step_000012", "step_-1", ".step_000012", ".step_000012.other",
                           "step_000012.partial", ".step_.partial", "step_1234567890123456789", "", "."})
    EXPECT_EQ(parse_step_dir(name, suffix), -1) << name;
}

TEST(CheckpointNames, FilesAndDatasets) {
  EXPECT_EQ(shard_file_name(1, 3), "shard_pp01_tp03.h5");
  EXPECT_STREQ(index_file_name, "index.h5");
  EXPECT_EQ(shard_dataset_path(Moment::Param, "wte.weight"), "/param/wte.weight");
  EXPECT_EQ(shard_dataset_path(Moment::ExpAvgSq, "h.0.ln_1.bias"), "/exp_avg_sq/h.0.ln_1.bias");
  EXPECT_EQ(index_dataset_path(Moment::Param, 1, "ln_f.weight"), "/stage_1/ln_f.weight");
  EXPECT_EQ(index_dataset_path(Moment::ExpAvg, 0, "wte.weight"), "/optimizer/exp_avg/stage_0/wte.weight");
  EXPECT_EQ(stage_group_path(2), "/stage_2");
  EXPECT_EQ(shard_record_path("shard_pp00_tp00.h5"), "/shards/shard_pp00_tp00.h5");
}

}  // namespace
}  // namespace xp
