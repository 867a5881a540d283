#include "xp/io/checkpoint.hpp"

#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "xp/core/error.hpp"
#include "xp/io/checkpoint_inspect.hpp"
#include "xp/io/hdf5_file.hpp"
#include "xp/model/partition.hpp"

namespace fs = std::filesystem;

namespace xp {
namespace {

const char* const moment_names[] = {"exp_avg", "exp_avg_sq"};

std::string shard_file_name(int stage, int tp_rank) {
  char name[64];
  std::snprintf(name, sizeof name, "shard_pp%02d_tp%02d.h5", stage, tp_rank);
  return name;
}

std::string step_dir_name(int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "step_%06" PRId64, step);
  return name;
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


void write_attribute(hid_t object, const std::string& name, int64_t value) {
  hid_t space = XP_HDF5_CHECK(H5Screate(H5S_SCALAR));
  hid_t attribute = XP_HDF5_CHECK(H5Acreate2(object, name.c_str(), H5T_NATIVE_INT64, space, H5P_DEFAULT, H5P_DEFAULT));
  XP_HDF5_CHECK(H5Awrite(attribute, H5T_NATIVE_INT64, &value));
  H5Aclose(attribute);
  H5Sclose(space);
}

void write_attribute(hid_t object, const std::string& name, const std::string& value) {
  hid_t type = XP_HDF5_CHECK(H5Tcopy(H5T_C_S1));
  XP_HDF5_CHECK(H5Tset_size(type, std::max<size_t>(1, value.size())));
  hid_t space = XP_HDF5_CHECK(H5Screate(H5S_SCALAR));
  hid_t attribute = XP_HDF5_CHECK(H5Acreate2(object, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT));
  XP_HDF5_CHECK(H5Awrite(attribute, type, value.c_str()));
  H5Aclose(attribute);
  H5Sclose(space);
  H5Tclose(type);
}

// The full tensor `full_name` in the index as a virtual dataset over every tp rank's slice of it.
void write_virtual_tensor(hid_t index, const std::string& full_name, const TensorInfo& tensor, int stage,
                          int tp_size, const std::string& source_dataset) {
  const int rank = static_cast<int>(tensor.full_shape.size());
  std::vector<hsize_t> full(tensor.full_shape.begin(), tensor.full_shape.end());
  std::vector<hsize_t> local(tensor.shape.begin(), tensor.shape.end());
  hid_t dcpl = XP_HDF5_CHECK(H5Pcreate(H5P_DATASET_CREATE));
  hid_t virtual_space = XP_HDF5_CHECK(H5Screate_simple(rank, full.data(), nullptr));
  hid_t source_space = XP_HDF5_CHECK(H5Screate_simple(rank, local.data(), nullptr));
  const int writers = tensor.split == Split::Replicated ? 1 : tp_size;
  for (int r = 0; r < writers; ++r) {
    const std::string source_file = "./" + shard_file_name(stage, r);
    std::vector<hsize_t> start(rank, 0), count(full);
    if (tensor.split == Split::Replicated) {
      XP_HDF5_CHECK(H5Sselect_all(virtual_space));
      XP_HDF5_CHECK(H5Sselect_all(source_space));
      XP_HDF5_CHECK(H5Pset_virtual(dcpl, virtual_space, source_file.c_str(), source_dataset.c_str(), source_space));
    } else if (tensor.split == Split::Row) {
      start[1] = r * local[1];
      count[1] = local[1];
      XP_HDF5_CHECK(H5Sselect_hyperslab(virtual_space, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr));
      XP_HDF5_CHECK(H5Sselect_all(source_space));
      XP_HDF5_CHECK(H5Pset_virtual(dcpl, virtual_space, source_file.c_str(), source_dataset.c_str(), source_space));
    } else {  // Column or Vocab: rows, in `parts` blocks
      const hsize_t part_rows = full[0] / tensor.parts, local_part_rows = local[0] / tensor.parts;
      for (int p = 0; p < tensor.parts; ++p) {
        start[0] = p * part_rows + r * local_part_rows;
        count[0] = local_part_rows;
        XP_HDF5_CHECK(H5Sselect_hyperslab(virtual_space, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr));
        std::vector<hsize_t> source_start(rank, 0), source_count(local);
        source_start[0] = p * local_part_rows;
        source_count[0] = local_part_rows;
        XP_HDF5_CHECK(H5Sselect_hyperslab(source_space, H5S_SELECT_SET, source_start.data(), nullptr,
                                          source_count.data(), nullptr));
        XP_HDF5_CHECK(
            H5Pset_virtual(dcpl, virtual_space, source_file.c_str(), source_dataset.c_str(), source_space));
      }
    }
  }
  XP_HDF5_CHECK(H5Sselect_all(virtual_space));
  hid_t links = XP_HDF5_CHECK(H5Pcreate(H5P_LINK_CREATE));
  XP_HDF5_CHECK(H5Pset_create_intermediate_group(links, 1));
  hid_t dataset = H5Dcreate2(index, full_name.c_str(), H5T_NATIVE_FLOAT, virtual_space, links, dcpl, H5P_DEFAULT);
  XP_REQUIRE(dataset >= 0, "cannot create virtual dataset '" + full_name + "'");
  write_attribute(dataset, "split", std::string(split_name(tensor.split)));
  write_attribute(dataset, "parts", int64_t{tensor.parts});
  H5Dclose(dataset);
  H5Pclose(links);
  H5Sclose(source_space);
  H5Sclose(virtual_space);
  H5Pclose(dcpl);
}

struct ShardRecord {
  int64_t writer, stage, tp_rank, crc, bytes;
};

void write_index(const std::string& path, const ModelConfig& model, const CheckpointState& state,
                 const std::vector<ShardRecord>& shards) {
  hid_t index = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  XP_REQUIRE(index >= 0, "cannot create checkpoint index '" + path + "'");
  const Layout& layout = state.layout;
  write_attribute(index, "format_version", checkpoint_format_version);
  write_attribute(index, "step", state.step);
  write_attribute(index, "seed", static_cast<int64_t>(state.seed));
  write_attribute(index, "dp", int64_t{layout.dp});
  write_attribute(index, "tp", int64_t{layout.tp});
  write_attribute(index, "pp", int64_t{layout.pp});
  write_attribute(index, "zero_stage", int64_t{state.zero_stage});
  write_attribute(index, "train_shard", state.train_cursor.shard);
  write_attribute(index, "train_position", state.train_cursor.position);
  write_attribute(index, "train_epoch", state.train_cursor.epoch);
  write_attribute(index, "n_layer", int64_t{model.n_layer});
  write_attribute(index, "n_head", int64_t{model.n_head});
  write_attribute(index, "n_embd", int64_t{model.n_embd});
  write_attribute(index, "seq_len", int64_t{model.seq_len});
  write_attribute(index, "vocab_size", int64_t{model.vocab_size});
  write_attribute(index, "config", state.config_toml);

  hid_t group = XP_HDF5_CHECK(H5Gcreate2(index, "shards", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  for (const ShardRecord& shard : shards) {
    if (!shard.writer) continue;
    hid_t entry = XP_HDF5_CHECK(H5Gcreate2(group, shard_file_name(int(shard.stage), int(shard.tp_rank)).c_str(),
                                           H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    write_attribute(entry, "crc32", shard.crc);
    write_attribute(entry, "bytes", shard.bytes);
    H5Gclose(entry);
  }
  H5Gclose(group);

  const std::vector<StageRange> stages = partition_layers(model, layout.pp);
  for (int s = 0; s < layout.pp; ++s) {
    const ParameterLayout table(model, placement_of(stages[s], layout.tp, 0));
    for (const TensorInfo& tensor : table.tensors()) {
      const std::string stage_path = "stage_" + std::to_string(s) + "/" + tensor.name;
      write_virtual_tensor(index, "/" + stage_path, tensor, s, layout.tp, "/param/" + tensor.name);
      for (const char* moment : moment_names)
        write_virtual_tensor(index, std::string("/optimizer/") + moment + "/" + stage_path, tensor, s, layout.tp,
                             std::string("/") + moment + "/" + tensor.name);
    }
  }
  XP_REQUIRE(H5Fclose(index) >= 0, "cannot close checkpoint index '" + path + "'");
}

// The step of a directory named step_NNNNNN (or -1).
int64_t step_of(const std::string& name) {
  if (name.rfind("step_", 0) != 0 || name.size() == 5 || name.find_first_not_of("0123456789", 5) != std::string::npos)
    return -1;
  return std::stoll(name.substr(5));
}

// Complete checkpoints under <run_dir>/ckpt, oldest first. A checkpoint being replaced by a new save
// of the same step (.step_NNNNNN.replaced) still counts while the new one is not in place.
std::vector<std::pair<int64_t, fs::path>> complete_checkpoints(const std::string& run_dir) {
  std::vector<std::pair<int64_t, fs::path>> found;
  std::error_code error;
  const fs::path root = fs::path(run_dir) / "ckpt";
  for (const auto& entry : fs::directory_iterator(root, error)) {
    const std::string name = entry.path().filename().string();
    int64_t step = step_of(name);
    const std::string suffix = ".replaced";
    if (step < 0 && name.size() > suffix.size() + 1 && name[0] == '.' &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      step = step_of(name.substr(1, name.size() - suffix.size() - 1));
      if (step >= 0 && fs::exists(root / step_dir_name(step))) continue;
    }
    if (step < 0 || !fs::exists(entry.path() / "index.h5")) continue;
    found.emplace_back(step, entry.path());
  }
  std::sort(found.begin(), found.end());
  return found;
}

// Removes a directory so that a kill midway never leaves something that looks like a checkpoint.
void remove_checkpoint_dir(const fs::path& dir) {
  std::error_code error;
  const fs::path doomed = dir.parent_path() / ("." + dir.filename().string() + ".deleting");
  fs::rename(dir, doomed, error);
  fs::remove_all(error ? dir : doomed, error);
}

// Leftovers of saves or prunes that were killed: partial writes, half-deleted checkpoints, and a
// replaced checkpoint whose successor never arrived (renamed back).
void sweep(const fs::path& root) {
  std::error_code error;
  std::vector<fs::path> leftovers;
  for (const auto& entry : fs::directory_iterator(root, error)) {
    const std::string name = entry.path().filename().string();
    if (name[0] != '.') continue;
    const auto dot = name.rfind('.');
    const std::string kind = name.substr(dot), step_name = name.substr(1, dot - 1);
    if (kind == ".replaced" && step_of(step_name) >= 0 && !fs::exists(root / step_name))
      fs::rename(entry.path(), root / step_name, error);
    else if (kind == ".partial" || kind == ".deleting" || kind == ".replaced")
      leftovers.push_back(entry.path());
  }
  for (const fs::path& path : leftovers) fs::remove_all(path, error);
}

}  // namespace

std::string save_checkpoint(const std::string& run_dir, const ParallelGrid& grid, const ModelConfig& model,
                            const TensorBuffers& tensors, const CheckpointState& state, int keep_last) {
  const fs::path root = fs::path(run_dir) / "ckpt";
  const fs::path final_dir = root / step_dir_name(state.step);
  const fs::path temporary = root / ("." + step_dir_name(state.step) + ".partial");
  if (grid.world_rank() == 0) {
    std::error_code error;
    fs::create_directories(root, error);
    sweep(root);
    fs::create_directories(temporary, error);
    XP_REQUIRE(!error, "cannot create checkpoint directory '" + temporary.string() + "': " + error.message());
  }
  XP_MPI_CHECK(MPI_Barrier(grid.world()));

  // One data-parallel replica writes; its tensors are this rank's slices of its stage.
  ShardRecord record{0, grid.pp_rank(), grid.tp_rank(), 0, 0};
  if (grid.dp_rank() == 0) {
    const std::string path = (temporary / shard_file_name(grid.pp_rank(), grid.tp_rank())).string();
    {
      Hdf5File file(path, Hdf5File::Mode::Create);
      for (const TensorInfo& tensor : tensors.layout->tensors()) {
        file.write("/param/" + tensor.name, tensors.params + tensor.offset, tensor.shape);
        file.write("/exp_avg/" + tensor.name, tensors.exp_avg + tensor.offset, tensor.shape);
        file.write("/exp_avg_sq/" + tensor.name, tensors.exp_avg_sq + tensor.offset, tensor.shape);
      }
      file.close();
    }
    sync_path(path);
    uint32_t crc = 0;
    XP_REQUIRE(file_crc32(path, crc, record.bytes), "cannot read back checkpoint shard '" + path + "'");
    record.writer = 1;
    record.crc = crc;
  }
  std::vector<ShardRecord> records(grid.world_size());
  XP_MPI_CHECK(MPI_Gather(&record, 5, MPI_INT64_T, records.data(), 5, MPI_INT64_T, 0, grid.world()));

  // The index goes last, then the rename publishes the whole directory at once.
  if (grid.world_rank() == 0) {
    const std::string index = (temporary / "index.h5").string();
    write_index(index, model, state, records);
    sync_path(index);
    sync_path(temporary.string());
    std::error_code error;
    const fs::path replaced = root / ("." + step_dir_name(state.step) + ".replaced");
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

void load_checkpoint_tensors(const std::string& dir, const TensorBuffers& tensors) {
  const CheckpointIndex index(dir);
  const Placement& placement = tensors.layout->placement();
  for (const TensorInfo& tensor : tensors.layout->tensors()) {
    const IndexTensor* saved = index.find(tensor.name);
    XP_REQUIRE(saved, "checkpoint '" + dir + "' has no tensor '" + tensor.name + "'");
    const std::pair<Moment, float*> targets[] = {
        {Moment::Param, tensors.params}, {Moment::ExpAvg, tensors.exp_avg}, {Moment::ExpAvgSq, tensors.exp_avg_sq}};
    for (const auto& [moment, buffer] : targets)
      index.read_slice(*saved, moment, tensor, placement.tp_rank, placement.tp_size, buffer + tensor.offset);
  }
}

}  // namespace xp
