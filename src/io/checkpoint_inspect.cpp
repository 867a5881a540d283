#include "xp/io/checkpoint_inspect.hpp"

#include <algorithm>
#include <filesystem>
#include <set>

#include "xp/core/error.hpp"
#include "xp/io/checkpoint.hpp"
#include "xp/model/layout.hpp"
#include "xp/model/partition.hpp"

namespace fs = std::filesystem;

namespace xp {
namespace {

// HDF5 prints its error stack on every failed call; these calls may fail and we say why ourselves.
class QuietHdf5 {
 public:
  QuietHdf5() {
    H5Eget_auto2(H5E_DEFAULT, &handler_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~QuietHdf5() { H5Eset_auto2(H5E_DEFAULT, handler_, data_); }

 private:
  H5E_auto2_t handler_ = nullptr;
  void* data_ = nullptr;
};

int64_t directory_bytes(const fs::path& dir) {
  int64_t bytes = 0;
  std::error_code error;
  for (const auto& entry : fs::recursive_directory_iterator(dir, error))
    if (entry.is_regular_file(error)) bytes += static_cast<int64_t>(entry.file_size(error));
  return bytes;
}

// "step_000012" → 12 and ".step_000012.partial" → 12 (partial); -1 for any other name.
int64_t parse_step(const std::string& name, bool& partial) {
  std::string digits;
  partial = name.rfind(".step_", 0) == 0 && name.size() > 14 && name.compare(name.size() - 8, 8, ".partial") == 0;
  if (partial) digits = name.substr(6, name.size() - 14);
  else if (name.rfind("step_", 0) == 0) digits = name.substr(5);
  if (digits.empty() || digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoll(digits);
}

hid_t open_attribute(hid_t object, const std::string& name, const std::string& where) {
  QuietHdf5 quiet;
  hid_t attribute = H5Aexists(object, name.c_str()) > 0 ? H5Aopen(object, name.c_str(), H5P_DEFAULT) : -1;
  if (attribute < 0) throw InputError("'" + where + "' lacks attribute '" + name + "'");
  return attribute;
}

std::string read_text(hid_t object, const std::string& name, const std::string& where) {
  hid_t attribute = open_attribute(object, name, where);
  hid_t type = H5Aget_type(attribute);
  std::string value(H5Tget_size(type), '\0');
  const bool ok = H5Tget_class(type) == H5T_STRING && H5Aread(attribute, type, value.data()) >= 0;
  H5Tclose(type);
  H5Aclose(attribute);
  if (!ok) throw InputError("attribute '" + name + "' of '" + where + "' is not text");
  return value.substr(0, value.find('\0'));
}

}  // namespace

std::vector<CheckpointEntry> list_checkpoints(const std::string& run_dir) {
  const fs::path root = fs::path(run_dir) / "ckpt";
  if (!fs::is_directory(root)) throw InputError("'" + run_dir + "' has no checkpoint folder ckpt/");
  std::vector<CheckpointEntry> found;
  for (const auto& entry : fs::directory_iterator(root)) {
    CheckpointEntry checkpoint;
    checkpoint.step = parse_step(entry.path().filename().string(), checkpoint.partial);
    if (checkpoint.step < 0 || !entry.is_directory()) continue;
    checkpoint.partial = checkpoint.partial || !fs::exists(entry.path() / "index.h5");
    checkpoint.dir = entry.path().string();
    checkpoint.bytes = directory_bytes(entry.path());
    found.push_back(checkpoint);
  }
  std::sort(found.begin(), found.end(), [](const CheckpointEntry& a, const CheckpointEntry& b) {
    return a.step != b.step ? a.step < b.step : a.partial < b.partial;
  });
  return found;
}

const char* moment_name(Moment moment) {
  switch (moment) {
    case Moment::Param: return "param";
    case Moment::ExpAvg: return "exp_avg";
    case Moment::ExpAvgSq: return "exp_avg_sq";
  }
  return "?";
}

CheckpointIndex::CheckpointIndex(const std::string& dir) : dir_(dir), path_((fs::path(dir) / "index.h5").string()) {
  if (!fs::is_directory(dir)) throw InputError("checkpoint '" + dir + "' is not a directory");
  if (!fs::exists(path_)) throw InputError("checkpoint '" + dir + "' has no index.h5: not a complete checkpoint");
  {
    QuietHdf5 quiet;
    file_ = H5Fopen(path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  }
  if (file_ < 0) throw InputError("checkpoint index '" + path_ + "' is not a readable HDF5 file");

  try {
    const int64_t version = attribute("format_version");
    if (version != checkpoint_format_version)
      throw InputError("checkpoint '" + dir + "' has format version " + std::to_string(version) +
                       ", this build reads version " + std::to_string(checkpoint_format_version));
    list_tensors();
  } catch (const InputError&) {
    H5Fclose(file_);
    throw;
  }
}

// The tensors the model shape implies, stage by stage as write_index() laid them out.
void CheckpointIndex::list_tensors() {
  const ModelConfig shape = model();
  const std::vector<StageRange> stages = partition_layers(shape, static_cast<int>(attribute("pp")));
  std::set<std::string> seen;
  for (size_t s = 0; s < stages.size(); ++s) {
    const ParameterLayout layout(shape, placement_of(stages[s], 1, 0));
    for (const TensorInfo& info : layout.tensors()) {
      if (!seen.insert(info.name).second) continue;
      IndexTensor tensor{info.name, static_cast<int>(s), {}, {}, 1};
      const std::string path = dataset_path(tensor, Moment::Param), where = path_ + ":" + path;
      hid_t dataset;
      {
        QuietHdf5 quiet;
        dataset = H5Dopen2(file_, path.c_str(), H5P_DEFAULT);
      }
      if (dataset < 0) throw InputError("checkpoint index '" + path_ + "' has no tensor '" + path + "'");
      hid_t space = H5Dget_space(dataset);
      std::vector<hsize_t> dims(std::max(0, H5Sget_simple_extent_ndims(space)));
      H5Sget_simple_extent_dims(space, dims.data(), nullptr);
      H5Sclose(space);
      tensor.shape.assign(dims.begin(), dims.end());
      try {
        tensor.split = read_text(dataset, "split", where);
        hid_t parts = open_attribute(dataset, "parts", where);
        H5Aread(parts, H5T_NATIVE_INT64, &tensor.parts);
        H5Aclose(parts);
      } catch (const InputError&) {
        H5Dclose(dataset);
        throw;
      }
      H5Dclose(dataset);
      if (tensor.shape != info.full_shape) throw InputError("'" + where + "' has the wrong shape for this model");
      tensors_.push_back(tensor);
    }
  }
}

CheckpointIndex::~CheckpointIndex() {
  if (file_ >= 0) H5Fclose(file_);
}

int64_t CheckpointIndex::attribute(const std::string& name) const {
  hid_t attribute = open_attribute(file_, name, path_);
  int64_t value = 0;
  const bool ok = H5Aread(attribute, H5T_NATIVE_INT64, &value) >= 0;
  H5Aclose(attribute);
  if (!ok) throw InputError("attribute '" + name + "' of '" + path_ + "' is not an integer");
  return value;
}

std::string CheckpointIndex::text_attribute(const std::string& name) const { return read_text(file_, name, path_); }

ModelConfig CheckpointIndex::model() const {
  ModelConfig model;
  model.n_layer = static_cast<int>(attribute("n_layer"));
  model.n_head = static_cast<int>(attribute("n_head"));
  model.n_embd = static_cast<int>(attribute("n_embd"));
  model.seq_len = static_cast<int>(attribute("seq_len"));
  model.vocab_size = static_cast<int>(attribute("vocab_size"));
  return model;
}

std::string CheckpointIndex::dataset_path(const IndexTensor& tensor, Moment moment) const {
  const std::string stage_path = "/stage_" + std::to_string(tensor.stage) + "/" + tensor.name;
  return moment == Moment::Param ? stage_path : std::string("/optimizer/") + moment_name(moment) + stage_path;
}

void CheckpointIndex::read_slice(const IndexTensor& tensor, Moment moment, const TensorInfo& slice, int tp_rank,
                                 int tp_size, float* out) const {
  const std::string path = dataset_path(tensor, moment);
  QuietHdf5 quiet;
  hid_t dataset = H5Dopen2(file_, path.c_str(), H5P_DEFAULT);
  if (dataset < 0) throw InputError("cannot open '" + path + "' in checkpoint index '" + path_ + "'");
  hid_t file_space = H5Dget_space(dataset);
  const int rank = static_cast<int>(tensor.shape.size());
  std::vector<hsize_t> start(rank, 0), count(tensor.shape.begin(), tensor.shape.end());
  bool ok = true;
  if (tp_size > 1 && slice.split == Split::Row) {
    count[1] = slice.shape[1];
    start[1] = hsize_t(tp_rank) * count[1];
    ok = H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr) >= 0;
  } else if (tp_size > 1 && slice.split != Split::Replicated) {
    // Rows in `parts` blocks, each split over tp: this rank's rows of every block, in order.
    const hsize_t part_rows = tensor.shape[0] / slice.parts, local_part_rows = slice.shape[0] / slice.parts;
    for (int p = 0; p < slice.parts && ok; ++p) {
      start[0] = p * part_rows + tp_rank * local_part_rows;
      count[0] = local_part_rows;
      ok = H5Sselect_hyperslab(file_space, p == 0 ? H5S_SELECT_SET : H5S_SELECT_OR, start.data(), nullptr,
                               count.data(), nullptr) >= 0;
    }
  }
  const hsize_t values = static_cast<hsize_t>(slice.size);
  hid_t memory_space = H5Screate_simple(1, &values, nullptr);
  ok = ok && H5Sget_select_npoints(file_space) == hssize_t(values) &&
       H5Dread(dataset, H5T_NATIVE_FLOAT, memory_space, file_space, H5P_DEFAULT, out) >= 0;
  H5Sclose(memory_space);
  H5Sclose(file_space);
  H5Dclose(dataset);
  if (!ok) throw InputError("cannot read this rank's slice of '" + path + "' through '" + path_ + "'");
}

const IndexTensor* CheckpointIndex::find(const std::string& name) const {
  for (const IndexTensor& tensor : tensors_)
    if (tensor.name == name) return &tensor;
  return nullptr;
}

bool CheckpointIndex::shard_record(const std::string& name, int64_t& crc32, int64_t& bytes) const {
  const std::string group = "/shards/" + name;
  QuietHdf5 quiet;
  if (H5Lexists(file_, "/shards", H5P_DEFAULT) <= 0 || H5Lexists(file_, group.c_str(), H5P_DEFAULT) <= 0) return false;
  hid_t entry = H5Gopen2(file_, group.c_str(), H5P_DEFAULT);
  if (entry < 0) return false;
  bool ok = true;
  for (auto [attribute_name, value] : {std::pair<const char*, int64_t*>{"crc32", &crc32}, {"bytes", &bytes}}) {
    hid_t attribute = H5Aexists(entry, attribute_name) > 0 ? H5Aopen(entry, attribute_name, H5P_DEFAULT) : -1;
    ok = ok && attribute >= 0 && H5Aread(attribute, H5T_NATIVE_INT64, value) >= 0;
    if (attribute >= 0) H5Aclose(attribute);
  }
  H5Gclose(entry);
  return ok;
}

std::vector<float> CheckpointIndex::read(const IndexTensor& tensor, Moment moment) const {
  int64_t count = 1;
  for (int64_t extent : tensor.shape) count *= extent;
  std::vector<float> values(count);
  const std::string path = dataset_path(tensor, moment);
  QuietHdf5 quiet;
  hid_t dataset = H5Dopen2(file_, path.c_str(), H5P_DEFAULT);
  const bool ok = dataset >= 0 && H5Dread(dataset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) >= 0;
  if (dataset >= 0) H5Dclose(dataset);
  if (!ok) throw InputError("cannot read '" + path + "' through checkpoint index '" + path_ + "'");
  return values;
}

}  // namespace xp
