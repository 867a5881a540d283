// Checkpoints: exact resume, resume into another layout (dp, tp, pp, zero_stage) with the data cursor
// carried over, every tensor surviving a save → load → save round trip bitwise, and damaged
// checkpoints refused with the file and the problem named.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support.hpp"
#include "xp/core/error.hpp"
#include "xp/core/random.hpp"
#include "xp/io/checkpoint.hpp"
#include "xp/io/shards.hpp"
#include "xp/model/partition.hpp"
#include "xp/train/trainer.hpp"

namespace fs = std::filesystem;

namespace {

constexpr int global_batch = 8, micro_batch = 2, total_steps = 20, saved_at = 10;
// A resume in another layout continues the same run: to fp32 rounding, or as closely as two layouts of
// one bf16 run agree. (A resume in the same layout stays bit-identical in every build.)
constexpr double layout_tolerance = xp::real_is_float ? 1e-5 : xp::test::bf16_layout_tolerance;

using xp::test::world_rank;
using xp::test::world_size;

// The same directory name on every rank (rank 0's temp dir may differ only by rank-specific parts).
std::string test_dir(const std::string& name) {
  return xp::test::temp_path("xp_ckpt_np" + std::to_string(world_size()) + "_" + name);
}

// Token shards shared by all runs of a test: three shards of random tokens, written by rank 0.
std::string make_shards(const std::string& dir) {
  if (world_rank() == 0) {
    fs::create_directories(dir);
    for (int s = 0; s < 3; ++s) {
      std::vector<uint16_t> tokens(3000);
      for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = uint16_t(xp::random_bits(99, s, i) % 100);
      xp::write_shard(dir + "/train_" + std::to_string(s) + ".bin", tokens);
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);
  return dir + "/train_*.bin";
}

struct Layout3 {
  int dp, tp, pp, zero;
};

xp::Config config_for(const Layout3& layout, const std::string& run_dir, const std::string& data) {
  xp::Config config = xp::test::tiny_config(run_dir);
  config.train.steps = total_steps;
  config.train.batch_size = std::min(micro_batch, global_batch / layout.dp);
  config.train.grad_accum_steps = global_batch / (config.train.batch_size * layout.dp);
  config.data.train_data = data;
  config.parallel = {layout.tp, layout.pp, layout.dp, 1, layout.zero, 0, 0.0};
  config.run.keep_last = 0;
  return config;
}

// The first layout of this list that fills the world: the one a test saves with.
Layout3 world_layout() {
  for (const Layout3& layout : {Layout3{2, 2, 2, 1}, Layout3{1, 2, 2, 0}, Layout3{1, 2, 1, 0}, Layout3{1, 1, 1, 0}})
    if (layout.dp * layout.tp * layout.pp == world_size()) return layout;
  return {world_size(), 1, 1, world_size() > 1 ? 1 : 0};
}

void expect_same_cursor(const xp::DataCursor& a, const xp::DataCursor& b) {
  EXPECT_EQ(a.shard, b.shard);
  EXPECT_EQ(a.position, b.position);
  EXPECT_EQ(a.epoch, b.epoch);
}

}  // namespace

TEST(Checkpoint, ResumeIsBitIdentical) {
  const std::string data = make_shards(test_dir("exact_data"));
  const Layout3 layout = world_layout();
  xp::Trainer straight(config_for(layout, test_dir("exact_straight"), data), MPI_COMM_WORLD);
  const std::vector<double> expected = straight.run();

  std::string saved;
  {
    xp::Trainer first(config_for(layout, test_dir("exact_first"), data), MPI_COMM_WORLD);
    for (int step = 0; step < saved_at; ++step) first.step();
    saved = first.save();
  }
  xp::Config config = config_for(layout, test_dir("exact_second"), data);
  config.run.resume = saved;
  xp::Trainer second(config, MPI_COMM_WORLD);
  EXPECT_EQ(second.steps_done(), saved_at);
  const std::vector<double> resumed = second.run();
  ASSERT_EQ(resumed.size(), size_t(total_steps - saved_at));
  for (size_t i = 0; i < resumed.size(); ++i) EXPECT_EQ(resumed[i], expected[saved_at + i]) << "step " << saved_at + i + 1;
  expect_same_cursor(second.data_cursor(), straight.data_cursor());
}

TEST(Checkpoint, ResumeInAnotherLayoutContinuesTheSameRun) {
  const std::string data = make_shards(test_dir("reshard_data"));
  const std::string rank = "_rank" + std::to_string(world_rank());
  // The uninterrupted run, on each rank alone.
  xp::Trainer straight(config_for({1, 1, 1, 0}, test_dir("reshard_straight" + rank), data), MPI_COMM_SELF);
  const std::vector<double> expected = straight.run();

  // Saved by the whole world in its layout, resumed by each rank alone (dp, tp, pp all change)...
  std::string saved;
  {
    xp::Trainer first(config_for(world_layout(), test_dir("reshard_world"), data), MPI_COMM_WORLD);
    for (int step = 0; step < saved_at; ++step) first.step();
    saved = first.save();
  }
  xp::Config alone = config_for({1, 1, 1, 0}, test_dir("reshard_alone" + rank), data);
  alone.run.resume = saved;
  xp::Trainer resumed_alone(alone, MPI_COMM_SELF);
  const std::vector<double> losses = resumed_alone.run();
  ASSERT_EQ(losses.size(), size_t(total_steps - saved_at));
  for (size_t i = 0; i < losses.size(); ++i)
    EXPECT_NEAR(losses[i], expected[saved_at + i], layout_tolerance * expected[saved_at + i])
        << "step " << saved_at + i + 1;
  // The same global token position: no sample skipped or read twice.
  expect_same_cursor(resumed_alone.data_cursor(), straight.data_cursor());

  // ...and saved by one rank alone, resumed by the world in its layout.
  std::string single;
  if (world_rank() == 0) {
    xp::Trainer first(config_for({1, 1, 1, 0}, test_dir("reshard_single"), data), MPI_COMM_SELF);
    for (int step = 0; step < saved_at; ++step) first.step();
    single = first.save();
  }
  // Every rank needs the directory rank 0's save() returned.
  int length = static_cast<int>(single.size());
  MPI_Bcast(&length, 1, MPI_INT, 0, MPI_COMM_WORLD);
  single.resize(length);
  MPI_Bcast(single.data(), length, MPI_CHAR, 0, MPI_COMM_WORLD);
  xp::Config world = config_for(world_layout(), test_dir("reshard_world_resumed"), data);
  world.run.resume = single;
  xp::Trainer resumed_world(world, MPI_COMM_WORLD);
  const std::vector<double> world_losses = resumed_world.run();
  for (size_t i = 0; i < world_losses.size(); ++i)
    EXPECT_NEAR(world_losses[i], expected[saved_at + i], layout_tolerance * expected[saved_at + i])
        << "step " << saved_at + i + 1;
  expect_same_cursor(resumed_world.data_cursor(), straight.data_cursor());
}

namespace {

// Every dataset of the index, found by name in whichever stage group holds it, read in full.
std::vector<float> read_full(const std::string& dir, const std::string& prefix, const std::string& name) {
  hid_t index = H5Fopen((dir + "/index.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  std::vector<float> values;
  for (int s = 0; s < 8 && values.empty(); ++s) {
    const std::string group = prefix + "stage_" + std::to_string(s), path = group + "/" + name;
    if (H5Lexists(index, group.c_str(), H5P_DEFAULT) <= 0 || H5Lexists(index, path.c_str(), H5P_DEFAULT) <= 0) continue;
    hid_t dataset = H5Dopen2(index, path.c_str(), H5P_DEFAULT);
    hid_t space = H5Dget_space(dataset);
    values.resize(H5Sget_simple_extent_npoints(space));
    H5Dread(dataset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
    H5Sclose(space);
    H5Dclose(dataset);
  }
  H5Fclose(index);
  return values;
}

}  // namespace

TEST(Checkpoint, EveryTensorSurvivesARoundTripThroughAnyLayout) {
  const std::string data = make_shards(test_dir("roundtrip_data"));
  std::string saved;
  {
    xp::Trainer first(config_for(world_layout(), test_dir("roundtrip_first"), data), MPI_COMM_WORLD);
    for (int step = 0; step < 3; ++step) first.step();
    saved = first.save();
  }
  // Load into every other layout of this world size (and one rank alone), save again, compare.
  std::vector<Layout3> others;
  for (const Layout3& layout : {Layout3{1, 1, 1, 0}, Layout3{2, 2, 2, 0}, Layout3{1, 4, 2, 1}, Layout3{8, 1, 1, 1},
                                Layout3{2, 1, 4, 1}, Layout3{2, 1, 1, 1}, Layout3{1, 2, 1, 0}, Layout3{1, 1, 2, 0},
                                Layout3{1, 2, 2, 0}, Layout3{4, 1, 1, 0}})
    if (layout.dp * layout.tp * layout.pp == world_size()) others.push_back(layout);
  const xp::ParameterLayout full_table(config_for({1, 1, 1, 0}, "", data).model);
  for (const Layout3& layout : others) {
    const std::string name = "roundtrip_" + std::to_string(layout.dp) + std::to_string(layout.tp) +
                             std::to_string(layout.pp) + std::to_string(layout.zero);
    xp::Config config = config_for(layout, test_dir(name), data);
    config.run.resume = saved;
    std::string again;
    {
      xp::Trainer loaded(config, MPI_COMM_WORLD);
      again = loaded.save();
    }
    if (world_rank() != 0) continue;
    for (const xp::TensorInfo& tensor : full_table.tensors())
      for (const std::string prefix : {"/", "/optimizer/exp_avg/", "/optimizer/exp_avg_sq/"}) {
        const std::vector<float> before = read_full(saved, prefix, tensor.name);
        const std::vector<float> after = read_full(again, prefix, tensor.name);
        ASSERT_EQ(before.size(), size_t(tensor.size)) << prefix << tensor.name;
        EXPECT_TRUE(before == after) << prefix << tensor.name << " changed through layout " << name;
      }
  }
}

// Small chunks stage a tensor in pieces (with ZeRO-1 each piece gathered over dp from the slices it
// crosses, or taken from them on a resume) and still move every value: a resume and a save through
// 256-byte chunks rewrite the checkpoint bit for bit, and no staging buffer is larger than a chunk (or
// one row, where a row is larger).
TEST(Checkpoint, ChunkedStagingIsBoundedAndExact) {
  const std::string data = make_shards(test_dir("chunked_data"));
  constexpr int64_t chunk = 256;
  std::string saved, again;
  {
    xp::Trainer first(config_for(world_layout(), test_dir("chunked_first"), data), MPI_COMM_WORLD);
    for (int step = 0; step < 3; ++step) first.step();
    saved = first.save();
  }
  {
    xp::Trainer loaded(config_for(world_layout(), test_dir("chunked_again"), data), MPI_COMM_WORLD);
    int64_t largest_tensor = 0, largest_row = 0;
    for (const xp::TensorInfo& tensor : loaded.model().layout().tensors()) {
      largest_tensor = std::max<int64_t>(largest_tensor, tensor.size * 4);
      largest_row = std::max<int64_t>(largest_row, tensor.size / tensor.shape[0] * 4);
    }
    const int64_t bound = std::max(chunk, largest_row);
    ASSERT_LT(bound, largest_tensor) << "the test model is too small to need chunks";
    loaded.set_checkpoint_chunk_bytes(chunk);
    loaded.resume_from(saved);
    EXPECT_EQ(loaded.steps_done(), 3);
    EXPECT_GT(xp::checkpoint_staging_last_bytes(), 0);
    EXPECT_LE(xp::checkpoint_staging_last_bytes(), bound) << "resume";
    again = loaded.save();
    EXPECT_GT(xp::checkpoint_staging_last_bytes(), 0);
    EXPECT_LE(xp::checkpoint_staging_last_bytes(), bound) << "save";
  }
  if (world_rank() != 0) return;
  const xp::ParameterLayout full_table(config_for({1, 1, 1, 0}, "", data).model);
  for (const xp::TensorInfo& tensor : full_table.tensors())
    for (const std::string prefix : {"/", "/optimizer/exp_avg/", "/optimizer/exp_avg_sq/"})
      EXPECT_TRUE(read_full(saved, prefix, tensor.name) == read_full(again, prefix, tensor.name)) << prefix << tensor.name;
}

TEST(Checkpoint, DamagedCheckpointsAreRefused) {
  const std::string data = make_shards(test_dir("damage_data"));  // collective: before any rank skips
  if (world_rank() != 0) GTEST_SKIP() << "file damage is tested on one rank";
  xp::Config config = config_for({1, 1, 1, 0}, test_dir("damage_run"), data);
  std::string saved;
  {
    xp::Trainer trainer(config, MPI_COMM_SELF);
    trainer.step();
    saved = trainer.save();
  }
  auto refusal = [&](const std::string& dir, const xp::ModelConfig& model) {
    try {
      xp::read_checkpoint_state(dir, model);
    } catch (const xp::InputError& error) {
      return std::string(error.what());
    }
    return std::string("accepted");
  };
  auto damaged_copy = [&](const std::string& name) {
    const std::string copy = test_dir("damage_" + name);
    fs::remove_all(copy);
    fs::copy(saved, copy);
    return copy;
  };
  const std::string shard = "/shard_pp00_tp00.h5";
  EXPECT_EQ(refusal(saved, config.model), "accepted");

  const std::string flipped = damaged_copy("flipped");
  {
    std::fstream file(flipped + shard, std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(5000);
    char byte = 0;
    file.read(&byte, 1);
    byte ^= 0x40;
    file.seekp(5000);
    file.write(&byte, 1);
  }
  EXPECT_NE(refusal(flipped, config.model).find(flipped + shard + "' is corrupted"), std::string::npos);

  const std::string truncated = damaged_copy("truncated");
  fs::resize_file(truncated + shard, fs::file_size(truncated + shard) / 2);
  EXPECT_NE(refusal(truncated, config.model).find("is truncated"), std::string::npos);

  const std::string missing = damaged_copy("missing");
  fs::remove(missing + shard);
  EXPECT_NE(refusal(missing, config.model).find(missing + shard + "' is missing"), std::string::npos);

  const std::string no_index = damaged_copy("no_index");
  fs::remove(no_index + "/index.h5");
  EXPECT_NE(refusal(no_index, config.model).find("has no index.h5"), std::string::npos);

  xp::ModelConfig other = config.model;
  other.n_layer += 1;
  EXPECT_NE(refusal(saved, other).find("holds a model with n_layer 4, this run has n_layer 5"), std::string::npos);
}
