#include "xp/io/checkpoint_inspect.hpp"

#include <algorithm>
#include <filesystem>
#include <set>

#include "xp/config/deck.hpp"
#include "xp/core/error.hpp"
#include "xp/io/checkpoint.hpp"

namespace fs = std::filesystem;

namespace xp {
namespace {

int64_t directory_bytes(const fs::path& dir) {
  int64_t bytes = 0;
  std::error_code error;
  for (const auto& entry : fs::recursive_directory_iterator(dir, error))
    if (entry.is_regular_file(error)) bytes += static_cast<int64_t>(entry.file_size(error));
  return bytes;
}

int64_t integer_attribute(hid_t object, const std::string& name, const std::string& where) {
  int64_t value = 0;
  if (read_attribute(object, name, value)) return value;
  if (!has_attribute(object, name)) throw InputError("'" + where + "' lacks attribute '" + name + "'");
  throw InputError("attribute '" + name + "' of '" + where + "' is not an integer");
}

std::string text_attribute_of(hid_t object, const std::string& name, const std::string& where) {
  std::string value;
  if (read_attribute(object, name, value)) return value;
  if (!has_attribute(object, name)) throw InputError("'" + where + "' lacks attribute '" + name + "'");
  throw InputError("attribute '" + name + "' of '" + where + "' is not text");
}

Hdf5Id open_object(hid_t file, const std::string& path) {
  QuietHdf5 quiet;
  return Hdf5Id(H5Lexists(file, path.c_str(), H5P_DEFAULT) > 0 ? H5Oopen(file, path.c_str(), H5P_DEFAULT) : -1);
}

}  // namespace

bool select_slice_block(hid_t space, const SliceBlock& block, bool in_full, H5S_seloper_t operation) {
  const int rank = H5Sget_simple_extent_ndims(space);
  if (rank != 1 && rank != 2) return false;
  const hsize_t start[2] = {hsize_t(in_full ? block.full_row : block.local_row),
                            hsize_t(in_full ? block.full_column : 0)};
  const hsize_t count[2] = {hsize_t(block.rows), hsize_t(block.columns)};
  return H5Sselect_hyperslab(space, operation, start, nullptr, count, nullptr) >= 0;
}

std::vector<CheckpointEntry> list_checkpoints(const std::string& run_dir) {
  const fs::path root = fs::path(run_dir) / checkpoint_folder_name;
  if (!fs::is_directory(root))
    throw InputError("'" + run_dir + "' has no checkpoint folder " + checkpoint_folder_name + "/");
  std::vector<CheckpointEntry> found;
  for (const auto& entry : fs::directory_iterator(root)) {
    CheckpointEntry checkpoint;
    std::string suffix;
    checkpoint.step = parse_step_dir(entry.path().filename().string(), suffix);
    if (checkpoint.step < 0 || !(suffix.empty() || suffix == partial_suffix) || !entry.is_directory()) continue;
    checkpoint.partial = !suffix.empty() || !fs::exists(entry.path() / index_file_name);
    checkpoint.dir = entry.path().string();
    checkpoint.bytes = directory_bytes(entry.path());
    found.push_back(checkpoint);
  }
  std::sort(found.begin(), found.end(), [](const CheckpointEntry& a, const CheckpointEntry& b) {
    return a.step != b.step ? a.step < b.step : a.partial < b.partial;
  });
  return found;
}

CheckpointIndex::CheckpointIndex(const std::string& dir)
    : dir_(dir), path_((fs::path(dir) / index_file_name).string()) {
  if (!fs::is_directory(dir)) throw InputError("checkpoint '" + dir + "' is not a directory");
  if (!fs::exists(path_)) throw InputError("checkpoint '" + dir + "' has no index.h5: not a complete checkpoint");
  {
    QuietHdf5 quiet;
    file_ = Hdf5Id(H5Fopen(path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  }
  if (!file_.valid()) throw InputError("checkpoint index '" + path_ + "' is not a readable HDF5 file");
  format_version_ = attribute("format_version");
  if (format_version_ < oldest_checkpoint_format_version || format_version_ > checkpoint_format_version)
    throw InputError("checkpoint '" + dir + "' has format version " + std::to_string(format_version_) +
                     ", this build reads versions " + std::to_string(oldest_checkpoint_format_version) + " to " +
                     std::to_string(checkpoint_format_version));
  read_stage_map();
  list_tensors();
}

// The layers and ends one stage group of a format-1 index holds, from the names of its tensors.
StageRange CheckpointIndex::stage_from_names(int stage) const {
  const std::string group_path = stage_group_path(stage);
  const Hdf5Id group = open_object(file_, group_path);
  H5G_info_t info{};
  if (!group.valid() || H5Gget_info(group, &info) < 0)
    throw InputError("checkpoint index '" + path_ + "' has no group '" + group_path + "'");
  StageRange range{-1, -1, false, false};
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    char name[256] = {};
    if (H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) < 0) continue;
    const std::string tensor = name;
    range.has_embedding = range.has_embedding || tensor == "wpe.weight";
    range.has_head = range.has_head || tensor == "ln_f.weight";
    if (tensor.rfind("h.", 0) != 0) continue;
    const size_t dot = tensor.find('.', 2);
    const std::string digits = tensor.substr(2, dot == std::string::npos ? std::string::npos : dot - 2);
    if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const int layer = std::stoi(digits);
    range.first_layer = range.first_layer < 0 ? layer : std::min(range.first_layer, layer);
    range.last_layer = std::max(range.last_layer, layer + 1);
  }
  return range;
}

void CheckpointIndex::read_stage_map() {
  const int64_t pp = attribute("pp"), n_layer = attribute("n_layer");
  if (pp < 1 || pp > n_layer)
    throw InputError("checkpoint index '" + path_ + "' records pp " + std::to_string(pp) + " for " +
                     std::to_string(n_layer) + " layers");
  for (int s = 0; s < pp; ++s) {
    StageRange range;
    if (format_version_ == 1) {
      range = stage_from_names(s);
    } else {
      const std::string where = path_ + ":" + stage_group_path(s);
      const Hdf5Id group = open_object(file_, stage_group_path(s));
      if (!group.valid()) throw InputError("checkpoint index '" + path_ + "' has no stage map entry for stage " +
                                           std::to_string(s));
      range.first_layer = static_cast<int>(integer_attribute(group, "first_layer", where));
      range.last_layer = static_cast<int>(integer_attribute(group, "last_layer", where));
      range.has_embedding = integer_attribute(group, "has_embedding", where) != 0;
      range.has_head = integer_attribute(group, "has_head", where) != 0;
    }
    // Contiguous non-empty layer ranges over the whole model, the embedding first and the head last:
    // the only maps a run can write, and the only ones the loader below understands.
    const int expected_first = s == 0 ? 0 : stages_.back().last_layer;
    if (range.first_layer != expected_first || range.last_layer <= range.first_layer ||
        range.last_layer > n_layer || (s == pp - 1 && range.last_layer != n_layer) ||
        range.has_embedding != (s == 0) || range.has_head != (s == pp - 1))
      throw InputError("checkpoint index '" + path_ + "' has a broken stage map at stage " + std::to_string(s) +
                       ": layers [" + std::to_string(range.first_layer) + ", " + std::to_string(range.last_layer) +
                       ")" + (range.has_embedding ? " + embedding" : "") + (range.has_head ? " + head" : "") +
                       " of " + std::to_string(n_layer));
    stages_.push_back(range);
  }
}

// The tensors the model shape and the stage map imply, stage by stage as the writer laid them out.
void CheckpointIndex::list_tensors() {
  const ModelConfig shape = model();
  std::set<std::string> seen;
  for (size_t s = 0; s < stages_.size(); ++s) {
    const ParameterLayout layout(shape, placement_of(stages_[s], 1, 0));
    for (const TensorInfo& info : layout.tensors()) {
      if (!seen.insert(info.name).second) continue;
      IndexTensor tensor{info.name, static_cast<int>(s), {}, {}, 1};
      const std::string path = index_dataset_path(Moment::Param, tensor.stage, tensor.name), where = path_ + ":" + path;
      const Hdf5Id dataset = open_object(file_, path);
      if (!dataset.valid() || H5Iget_type(dataset) != H5I_DATASET)
        throw InputError("checkpoint index '" + path_ + "' has no tensor '" + path + "'");
      const Hdf5Id space(H5Dget_space(dataset));
      std::vector<hsize_t> dims(std::max(0, H5Sget_simple_extent_ndims(space)));
      H5Sget_simple_extent_dims(space, dims.data(), nullptr);
      tensor.shape.assign(dims.begin(), dims.end());
      tensor.split = text_attribute_of(dataset, "split", where);
      tensor.parts = integer_attribute(dataset, "parts", where);
      if (tensor.shape != info.full_shape) throw InputError("'" + where + "' has the wrong shape for this model");
      tensors_.push_back(tensor);
    }
  }
}

int64_t CheckpointIndex::attribute(const std::string& name) const { return integer_attribute(file_, name, path_); }

std::string CheckpointIndex::text_attribute(const std::string& name) const {
  return text_attribute_of(file_, name, path_);
}

ModelConfig CheckpointIndex::model() const {
  // A shape beyond any model this trainer trains means a corrupt index; refused before it sizes a
  // parameter table, whose offsets it would overflow (found by fuzzing).
  const auto bounded = [&](const char* name, int64_t lowest, int64_t highest) {
    const int64_t value = attribute(name);
    if (value < lowest || value > highest)
      throw InputError("checkpoint index '" + path_ + "' records " + name + " " + std::to_string(value) +
                       ", outside [" + std::to_string(lowest) + ", " + std::to_string(highest) + "]");
    return static_cast<int>(value);
  };
  ModelConfig model;
  model.n_layer = bounded("n_layer", 1, max_layers);
  model.n_head = bounded("n_head", 1, 1 << 16);
  model.n_embd = bounded("n_embd", 1, 1 << 20);
  model.seq_len = bounded("seq_len", 1, 1 << 24);
  model.vocab_size = bounded("vocab_size", 2, 65536);
  if (model.n_embd % model.n_head != 0)
    throw InputError("checkpoint index '" + path_ + "' records n_embd " + std::to_string(model.n_embd) +
                     ", not divisible by n_head " + std::to_string(model.n_head));
  return model;
}

void CheckpointIndex::read_slice(const IndexTensor& tensor, Moment moment, const TensorInfo& slice, int tp_rank,
                                 int tp_size, float* out, int64_t first_row, int64_t rows) const {
  const std::string path = index_dataset_path(moment, tensor.stage, tensor.name);
  QuietHdf5 quiet;
  const Hdf5Id dataset(H5Dopen2(file_, path.c_str(), H5P_DEFAULT));
  if (!dataset.valid()) throw InputError("cannot open '" + path + "' in checkpoint index '" + path_ + "'");
  const Hdf5Id file_space(H5Dget_space(dataset));
  const int64_t slice_rows = slice.shape.empty() ? 1 : slice.shape[0];
  if (rows < 0) rows = slice_rows - first_row;
  const int64_t last_row = first_row + rows;
  // This rank's blocks lie in the whole tensor in the slice's row order, so reading their union (cut to
  // the rows asked for) in file order fills the rows in order.
  bool ok = file_space.valid() && first_row >= 0 && last_row <= slice_rows;
  bool first = true;
  for (SliceBlock block : slice.slice_blocks(tp_rank, tp_size)) {
    const int64_t from = std::max(first_row, block.local_row), to = std::min(last_row, block.local_row + block.rows);
    if (from >= to) continue;
    block.full_row += from - block.local_row;
    block.local_row = from;
    block.rows = to - from;
    ok = ok && select_slice_block(file_space, block, true, first ? H5S_SELECT_SET : H5S_SELECT_OR);
    first = false;
  }
  const hsize_t values = static_cast<hsize_t>(slice.size / std::max<int64_t>(1, slice_rows) * rows);
  const Hdf5Id memory_space(H5Screate_simple(1, &values, nullptr));
  ok = ok && !first && H5Sget_select_npoints(file_space) == hssize_t(values) &&
       H5Dread(dataset, H5T_NATIVE_FLOAT, memory_space, file_space, H5P_DEFAULT, out) >= 0;
  if (!ok) throw InputError("cannot read this rank's slice of '" + path + "' through '" + path_ + "'");
}

const IndexTensor* CheckpointIndex::find(const std::string& name) const {
  for (const IndexTensor& tensor : tensors_)
    if (tensor.name == name) return &tensor;
  return nullptr;
}

bool CheckpointIndex::shard_record(const std::string& name, int64_t& crc32, int64_t& bytes) const {
  const Hdf5Id entry = open_object(file_, shard_record_path(name));
  return entry.valid() && read_attribute(entry, "crc32", crc32) && read_attribute(entry, "bytes", bytes);
}

std::vector<float> CheckpointIndex::read(const IndexTensor& tensor, Moment moment) const {
  int64_t count = 1;
  for (int64_t extent : tensor.shape) count *= extent;
  std::vector<float> values(count);
  const std::string path = index_dataset_path(moment, tensor.stage, tensor.name);
  QuietHdf5 quiet;
  const Hdf5Id dataset(H5Dopen2(file_, path.c_str(), H5P_DEFAULT));
  const bool ok =
      dataset.valid() && H5Dread(dataset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) >= 0;
  if (!ok) throw InputError("cannot read '" + path + "' through checkpoint index '" + path_ + "'");
  return values;
}

}  // namespace xp
