#include "xp/io/checkpoint.hpp"

#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <vector>

#include "xp/core/error.hpp"
#include "xp/io/checkpoint_inspect.hpp"
#include "xp/io/checkpoint_names.hpp"
#include "xp/io/hdf5_file.hpp"
#include "xp/model/partition.hpp"  // StageRange, placement_of: the stage map as the writers held it

namespace fs = std::filesystem;

namespace xp {
namespace {

int64_t staging_last = 0;  // checkpoint_staging_last_bytes

// The one staging buffer of a save or a load, recorded so tests can check its bound.
std::vector<float> staging_buffer(const ParameterLayout& layout, int64_t chunk_bytes) {
  const int64_t bytes = checkpoint_staging_bytes(layout, chunk_bytes);
  staging_last = bytes;
  return std::vector<float>(size_t(bytes) / sizeof(float));
}

// CRC-32 and size of a whole file; false when it cannot be read.
bool file_crc32(const std::string& path, uint32_t& crc, int64_t& bytes) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (!file) return false;
  std::vector<unsigned char> buffer(1 << 20);
  uLong value = crc32(0L, Z_NULL, 0);
  bytes = 0;
  for (size_t got; (got = std::fread(buffer.data(), 1, buffer.size(), file)) > 0; bytes += got)
    value = crc32(value, buffer.data(), static_cast<uInt>(got));
  const bool ok = !std::ferror(file);
  std::fclose(file);
  crc = static_cast<uint32_t>(value);
  return ok;
}

// Data and directory entries reach the disk before the rename that publishes them.
void sync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  XP_REQUIRE(fd >= 0, "cannot open '" + path + "' to sync it");
  XP_REQUIRE(::fsync(fd) == 0, "fsync of '" + path + "' failed");
  ::close(fd);
}

// The full tensor `full_name` in the index as a virtual dataset over every tp rank's slice of it.
void write_virtual_tensor(hid_t index, const std::string& full_name, const TensorInfo& tensor, int stage,
                          int tp_size, const std::string& source_dataset) {
  const int rank = static_cast<int>(tensor.full_shape.size());
  std::vector<hsize_t> full(tensor.full_shape.begin(), tensor.full_shape.end());
  std::vector<hsize_t> local(tensor.shape.begin(), tensor.shape.end());
  const Hdf5Id dcpl(XP_HDF5_CHECK(H5Pcreate(H5P_DATASET_CREATE)));
  const Hdf5Id virtual_space(XP_HDF5_CHECK(H5Screate_simple(rank, full.data(), nullptr)));
  const Hdf5Id source_space(XP_HDF5_CHECK(H5Screate_simple(rank, local.data(), nullptr)));
  // A replicated tensor is the same on every tp rank: rank 0's copy is the whole of it.
  const int writers = tensor.split == Split::Replicated ? 1 : tp_size;
  for (int r = 0; r < writers; ++r) {
    const std::string source_file = "./" + shard_file_name(stage, r);
    for (const SliceBlock& block : tensor.slice_blocks(r, tp_size)) {
      XP_REQUIRE(select_slice_block(virtual_space, block, true, H5S_SELECT_SET) &&
                     select_slice_block(source_space, block, false, H5S_SELECT_SET),
                 "cannot select a block of '" + source_dataset + "' for the index");
      XP_HDF5_CHECK(H5Pset_virtual(dcpl, virtual_space, source_file.c_str(), source_dataset.c_str(), source_space));
    }
  }
  XP_HDF5_CHECK(H5Sselect_all(virtual_space));
  const Hdf5Id links = intermediate_groups();
  const Hdf5Id dataset(H5Dcreate2(index, full_name.c_str(), H5T_NATIVE_FLOAT, virtual_space, links, dcpl, H5P_DEFAULT));
  XP_REQUIRE(dataset.valid(), "cannot create virtual dataset '" + full_name + "'");
  write_attribute(dataset, "split", std::string(split_name(tensor.split)));
  write_attribute(dataset, "parts", int64_t{tensor.parts});
}

// What each rank tells rank 0 for the index: its shard (when it wrote one) and its part of the model.
struct ShardRecord {
  int64_t writer = 0, stage = 0, tp_rank = 0, crc = 0, bytes = 0;
  int64_t first_layer = 0, last_layer = 0, has_embedding = 0, has_head = 0;

  // Sent as plain int64 values, field by field.
  static constexpr int fields = 9;
  std::array<int64_t, fields> pack() const {
    return {writer, stage, tp_rank, crc, bytes, first_layer, last_layer, has_embedding, has_head};
  }
  static ShardRecord unpack(const int64_t* v) { return {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8]}; }
};

void write_index(const std::string& path, const ModelConfig& model, const CheckpointState& state,
                 const std::vector<ShardRecord>& records) {
  Hdf5File index(path);
  const Layout& layout = state.layout;
  index.write_attribute("format_version", checkpoint_format_version);
  index.write_attribute("step", state.step);
  index.write_attribute("seed", static_cast<int64_t>(state.seed));
  index.write_attribute("dp", int64_t{layout.dp});
  index.write_attribute("tp", int64_t{layout.tp});
  index.write_attribute("pp", int64_t{layout.pp});
  index.write_attribute("zero_stage", int64_t{state.zero_stage});
  index.write_attribute("train_shard", state.train_cursor.shard);
  index.write_attribute("train_position", state.train_cursor.position);
  index.write_attribute("train_epoch", state.train_cursor.epoch);
  index.write_attribute("n_layer", int64_t{model.n_layer});
  index.write_attribute("n_head", int64_t{model.n_head});
  index.write_attribute("n_embd", int64_t{model.n_embd});
  index.write_attribute("seq_len", int64_t{model.seq_len});
  index.write_attribute("vocab_size", int64_t{model.vocab_size});
  index.write_attribute("config", state.config_toml);

  const Hdf5Id links = intermediate_groups();
  std::vector<const ShardRecord*> stages(layout.pp, nullptr);  // the tp rank 0 writer of each stage
  for (const ShardRecord& shard : records) {
    if (!shard.writer) continue;
    XP_REQUIRE(shard.stage >= 0 && shard.stage < layout.pp, "shard record of stage " + std::to_string(shard.stage));
    const std::string group = shard_record_path(shard_file_name(int(shard.stage), int(shard.tp_rank)));
    const Hdf5Id entry(XP_HDF5_CHECK(H5Gcreate2(index.id(), group.c_str(), links, H5P_DEFAULT, H5P_DEFAULT)));
    write_attribute(entry, "crc32", shard.crc);
    write_attribute(entry, "bytes", shard.bytes);
    if (shard.tp_rank == 0) stages[shard.stage] = &shard;
  }

  // The stage map as the writing ranks held it (format 2): loading reads it instead of recomputing a
  // partition that a later version may choose differently.
  for (int s = 0; s < layout.pp; ++s) {
    XP_REQUIRE(stages[s], "no rank wrote tensor-parallel rank 0 of stage " + std::to_string(s));
    const ShardRecord& stage = *stages[s];
    const Hdf5Id group(XP_HDF5_CHECK(
        H5Gcreate2(index.id(), stage_group_path(s).c_str(), links, H5P_DEFAULT, H5P_DEFAULT)));
    write_attribute(group, "first_layer", stage.first_layer);
    write_attribute(group, "last_layer", stage.last_layer);
    write_attribute(group, "has_embedding", stage.has_embedding);
    write_attribute(group, "has_head", stage.has_head);
    const StageRange range{int(stage.first_layer), int(stage.last_layer), stage.has_embedding != 0,
                           stage.has_head != 0};
    const ParameterLayout table(model, placement_of(range, layout.tp, 0));
    for (const TensorInfo& tensor : table.tensors())
      for (Moment moment : all_moments)
        write_virtual_tensor(index.id(), index_dataset_path(moment, s, tensor.name), tensor, s, layout.tp,
                             shard_dataset_path(moment, tensor.name));
  }
  index.close();
}

// Complete checkpoints under <run_dir>/ckpt, oldest first. A checkpoint being replaced by a new save
// of the same step (.step_NNNNNN.replaced) still counts while the new one is not in place.
std::vector<std::pair<int64_t, fs::path>> complete_checkpoints(const std::string& run_dir) {
  std::vector<std::pair<int64_t, fs::path>> found;
  std::error_code error;
  const fs::path root = fs::path(run_dir) / checkpoint_folder_name;
  for (const auto& entry : fs::directory_iterator(root, error)) {
    std::string suffix;
    const int64_t step = parse_step_dir(entry.path().filename().string(), suffix);
    if (step < 0 || !(suffix.empty() || suffix == replaced_suffix)) continue;
    if (suffix == replaced_suffix && fs::exists(root / step_dir_name(step))) continue;
    if (!fs::exists(entry.path() / index_file_name)) continue;
    found.emplace_back(step, entry.path());
  }
  std::sort(found.begin(), found.end());
  return found;
}

// Removes a directory so that a kill midway never leaves something that looks like a checkpoint.
void remove_checkpoint_dir(const fs::path& dir) {
  std::error_code error;
  const fs::path doomed = dir.parent_path() / ("." + dir.filename().string() + deleting_suffix);
  fs::rename(dir, doomed, error);
  fs::remove_all(error ? dir : doomed, error);
}

// Leftovers of saves or prunes that were killed: partial writes, half-deleted checkpoints, and a
// replaced checkpoint whose successor never arrived (renamed back).
void sweep(const fs::path& root) {
  std::error_code error;
  std::vector<fs::path> leftovers;
  for (const auto& entry : fs::directory_iterator(root, error)) {
    std::string suffix;
    const int64_t step = parse_step_dir(entry.path().filename().string(), suffix);
    if (step < 0 || suffix.empty()) continue;
    if (suffix == replaced_suffix && !fs::exists(root / step_dir_name(step)))
      fs::rename(entry.path(), root / step_dir_name(step), error);
    else
      leftovers.push_back(entry.path());
  }
  for (const fs::path& path : leftovers) fs::remove_all(path, error);
}

}  // namespace

std::vector<TensorChunk> checkpoint_chunks(const TensorInfo& tensor, int64_t chunk_bytes) {
  const int64_t rows = tensor.shape.empty() ? 1 : tensor.shape[0];
  const int64_t row_size = tensor.size / std::max<int64_t>(1, rows);
  const int64_t rows_per_chunk = std::max<int64_t>(1, chunk_bytes / int64_t(sizeof(float)) / std::max<int64_t>(1, row_size));
  std::vector<TensorChunk> chunks;
  for (int64_t first = 0; first < rows; first += rows_per_chunk) {
    const int64_t count = std::min(rows_per_chunk, rows - first);
    const int64_t begin = tensor.offset + first * row_size;
    chunks.push_back({first, count, begin, begin + count * row_size});
  }
  return chunks;
}

int64_t checkpoint_staging_bytes(const ParameterLayout& layout, int64_t chunk_bytes) {
  int64_t floats = 0;
  for (const TensorInfo& tensor : layout.tensors())
    for (const TensorChunk& chunk : checkpoint_chunks(tensor, chunk_bytes)) floats = std::max(floats, chunk.end - chunk.begin);
  return floats * int64_t(sizeof(float));
}

int64_t checkpoint_staging_last_bytes() { return staging_last; }

std::string save_checkpoint(const std::string& run_dir, const ParallelGrid& grid, const ModelConfig& model,
                            const ParameterLayout& layout, const ChunkSource& source, const CheckpointState& state,
                            int keep_last, int64_t chunk_bytes) {
  const fs::path root = fs::path(run_dir) / checkpoint_folder_name;
  const fs::path final_dir = root / step_dir_name(state.step);
  const fs::path temporary = root / hidden_step_dir_name(state.step, partial_suffix);
  if (grid.world_rank() == 0) {
    std::error_code error;
    fs::create_directories(root, error);
    sweep(root);
    fs::create_directories(temporary, error);
    XP_REQUIRE(!error, "cannot create checkpoint directory '" + temporary.string() + "': " + error.message());
  }
  XP_MPI_CHECK(MPI_Barrier(grid.world()));

  // One data-parallel replica writes; its tensors are this rank's slices of its stage. Every replica
  // walks the same chunks: the source may gather them over dp.
  const Placement& placement = layout.placement();
  ShardRecord record;
  record.stage = grid.pp_rank();
  record.tp_rank = grid.tp_rank();
  record.first_layer = placement.first_layer;
  record.last_layer = placement.last_layer;
  record.has_embedding = placement.has_embedding;
  record.has_head = placement.has_head;
  const bool writer = grid.dp_rank() == 0;
  const std::string path = (temporary / shard_file_name(grid.pp_rank(), grid.tp_rank())).string();
  {
    std::vector<float> staging = staging_buffer(layout, chunk_bytes);
    std::unique_ptr<Hdf5File> file = writer ? std::make_unique<Hdf5File>(path) : nullptr;
    for (const TensorInfo& tensor : layout.tensors())
      for (Moment moment : all_moments) {
        Hdf5Id dataset = file ? file->create_float_dataset(shard_dataset_path(moment, tensor.name), tensor.shape)
                              : Hdf5Id();
        for (const TensorChunk& chunk : checkpoint_chunks(tensor, chunk_bytes)) {
          source(moment, chunk.begin, chunk.end, staging.data());
          if (file) file->write_rows(dataset, chunk.first_row, chunk.rows, staging.data());
        }
      }
    if (file) file->close();
  }
  if (writer) {
    sync_path(path);
    uint32_t crc = 0;
    XP_REQUIRE(file_crc32(path, crc, record.bytes), "cannot read back checkpoint shard '" + path + "'");
    record.writer = 1;
    record.crc = crc;
  }
  const std::array<int64_t, ShardRecord::fields> packed = record.pack();
  std::vector<int64_t> gathered(size_t(grid.world_size()) * ShardRecord::fields);
  XP_MPI_CHECK(MPI_Gather(packed.data(), ShardRecord::fields, MPI_INT64_T, gathered.data(), ShardRecord::fields,
                          MPI_INT64_T, 0, grid.world()));

  // The index goes last, then the rename publishes the whole directory at once.
  if (grid.world_rank() == 0) {
    std::vector<ShardRecord> records;
    for (int r = 0; r < grid.world_size(); ++r)
      records.push_back(ShardRecord::unpack(&gathered[size_t(r) * ShardRecord::fields]));
    const std::string index = (temporary / index_file_name).string();
    write_index(index, model, state, records);
    sync_path(index);
    sync_path(temporary.string());
    std::error_code error;
    const fs::path replaced = root / hidden_step_dir_name(state.step, replaced_suffix);
    if (fs::exists(final_dir)) fs::rename(final_dir, replaced, error);  // still found by latest until swept
    fs::rename(temporary, final_dir, error);
    XP_REQUIRE(!error, "cannot publish checkpoint '" + final_dir.string() + "': " + error.message());
    sync_path(root.string());
    remove_checkpoint_dir(replaced);
    const auto complete = complete_checkpoints(run_dir);
    for (size_t i = 0; keep_last > 0 && i + keep_last < complete.size(); ++i) remove_checkpoint_dir(complete[i].second);
  }
  XP_MPI_CHECK(MPI_Barrier(grid.world()));
  return final_dir.string();
}

std::string latest_checkpoint(const std::string& run_dir) {
  const auto complete = complete_checkpoints(run_dir);
  return complete.empty() ? std::string() : complete.back().second.string();
}

CheckpointState read_checkpoint_state(const std::string& dir, const ModelConfig& model, bool verify_shards) {
  const CheckpointIndex index(dir);  // checks the format version and the tensors it must present
  CheckpointState state;
  state.step = index.attribute("step");
  state.seed = static_cast<uint64_t>(index.attribute("seed"));
  state.layout = {int(index.attribute("dp")), int(index.attribute("tp")), int(index.attribute("pp"))};
  state.zero_stage = int(index.attribute("zero_stage"));
  state.train_cursor = {index.attribute("train_shard"), index.attribute("train_position"), index.attribute("train_epoch")};
  state.config_toml = index.text_attribute("config");

  const ModelConfig saved = index.model();
  const std::pair<const char*, std::pair<int, int>> shape[] = {
      {"n_layer", {saved.n_layer, model.n_layer}},    {"n_head", {saved.n_head, model.n_head}},
      {"n_embd", {saved.n_embd, model.n_embd}},       {"seq_len", {saved.seq_len, model.seq_len}},
      {"vocab_size", {saved.vocab_size, model.vocab_size}}};
  for (const auto& [name, values] : shape)
    if (values.first != values.second)
      throw InputError("checkpoint '" + dir + "' holds a model with " + name + " " + std::to_string(values.first) +
                       ", this run has " + name + " " + std::to_string(values.second));

  // Every shard the index names must be there, whole and unchanged: reading through a virtual dataset
  // whose source is missing would silently give zeros.
  for (int s = 0; verify_shards && s < state.layout.pp; ++s)
    for (int r = 0; r < state.layout.tp; ++r) {
      const std::string name = shard_file_name(s, r), path = (fs::path(dir) / name).string();
      int64_t crc = 0, bytes = 0;
      if (!index.shard_record(name, crc, bytes)) throw InputError("checkpoint '" + dir + "' is damaged: index has no record of shard '" + path + "'");
      uint32_t actual_crc = 0;
      int64_t actual_bytes = 0;
      std::string problem;
      if (!fs::exists(path)) problem = "shard '" + path + "' is missing";
      else if (!file_crc32(path, actual_crc, actual_bytes)) problem = "shard '" + path + "' cannot be read";
      else if (actual_bytes != bytes)
        problem = "shard '" + path + "' is truncated or extended: " + std::to_string(actual_bytes) +
                  " bytes, the index recorded " + std::to_string(bytes);
      else if (actual_crc != static_cast<uint32_t>(crc))
        problem = "shard '" + path + "' is corrupted: CRC-32 differs from the one recorded in the index";
      if (!problem.empty()) throw InputError("checkpoint '" + dir + "' is damaged: " + problem);
    }
  return state;
}

void load_checkpoint_tensors(const std::string& dir, const ParameterLayout& layout, const ChunkSink& sink,
                             int64_t chunk_bytes, bool with_moments) {
  const CheckpointIndex index(dir);
  const Placement& placement = layout.placement();
  std::vector<float> staging = staging_buffer(layout, chunk_bytes);
  for (const TensorInfo& tensor : layout.tensors()) {
    const IndexTensor* saved = index.find(tensor.name);
    XP_REQUIRE(saved, "checkpoint '" + dir + "' has no tensor '" + tensor.name + "'");
    for (Moment moment : all_moments) {
      if (moment != Moment::Param && !with_moments) continue;
      for (const TensorChunk& chunk : checkpoint_chunks(tensor, chunk_bytes)) {
        index.read_slice(*saved, moment, tensor, placement.tp_rank, placement.tp_size, staging.data(), chunk.first_row,
                         chunk.rows);
        sink(moment, chunk.begin, chunk.end, staging.data());
      }
    }
  }
}

}  // namespace xp
