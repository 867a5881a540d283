// libFuzzer target: checkpoint indexes that HDF5 reads without trouble but whose contents are wrong.
// The fuzzer chooses a small model, then each root attribute, stage-map entry and tensor the writer
// would record is written as it should be, left out, of another type, of another value or of another
// shape; the file goes through CheckpointIndex and the reads the loader makes. fuzz_checkpoint_index
// mutates raw bytes instead, which mostly exercises HDF5's own decoder.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "fuzz_support.hpp"
#include "xp/core/error.hpp"
#include "xp/io/checkpoint_inspect.hpp"
#include "xp/model/partition.hpp"

namespace {

// What to get wrong: 0 (also when the input is used up) is nothing, so that most indexes are nearly right
// and the reads past the checks are reached too.
int fault(FuzzedDataProvider& in) { return std::max(0, in.ConsumeIntegralInRange(0, 31) - 26); }

// Writes attribute `name` as `plausible`, or absent, as text, as a float, as any integer or off by a little.
void attribute(FuzzedDataProvider& in, hid_t object, const char* name, int64_t plausible) {
  switch (fault(in)) {
    case 1: return;
    case 2: xp::write_attribute(object, name, std::string("7")); return;
    case 3: xp::write_attribute(object, name, 1.0); return;
    case 4: xp::write_attribute(object, name, in.ConsumeIntegral<int64_t>()); return;
    case 5: xp::write_attribute(object, name, plausible + in.ConsumeIntegralInRange<int64_t>(-2, 2)); return;
    default: xp::write_attribute(object, name, plausible);
  }
}

void write_index(FuzzedDataProvider& in, const std::string& path) {
  xp::ModelConfig model;
  model.n_layer = in.ConsumeIntegralInRange(1, 4);
  model.n_head = in.ConsumeIntegralInRange(1, 2);
  model.n_embd = model.n_head * in.ConsumeIntegralInRange(1, 4);
  model.seq_len = in.ConsumeIntegralInRange(1, 4);
  model.vocab_size = in.ConsumeIntegralInRange(2, 20);
  const int pp = in.ConsumeIntegralInRange(1, model.n_layer);
  const xp::Hdf5Id file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  attribute(in, file, "format_version", in.ConsumeIntegralInRange(1, 2));
  attribute(in, file, "pp", pp);
  attribute(in, file, "n_layer", model.n_layer);
  attribute(in, file, "n_head", model.n_head);
  attribute(in, file, "n_embd", model.n_embd);
  attribute(in, file, "seq_len", model.seq_len);
  attribute(in, file, "vocab_size", model.vocab_size);
  const std::vector<xp::StageRange> stages = xp::partition_layers(model, pp);
  for (size_t s = 0; s < stages.size(); ++s) {
    const xp::Hdf5Id group(
        H5Gcreate2(file, xp::stage_group_path(int(s)).c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    attribute(in, group, "first_layer", stages[s].first_layer);
    attribute(in, group, "last_layer", stages[s].last_layer);
    attribute(in, group, "has_embedding", stages[s].has_embedding);
    attribute(in, group, "has_head", stages[s].has_head);
    const xp::ParameterLayout layout(model, xp::placement_of(stages[s], 1, 0));
    for (const xp::TensorInfo& tensor : layout.tensors()) {
      const int choice = fault(in);
      if (choice == 1) continue;  // missing
      std::vector<hsize_t> dims(tensor.full_shape.begin(), tensor.full_shape.end());
      if (choice == 2) dims[0] += 1;                                  // wrong shape
      if (choice == 3) dims.push_back(1);                             // wrong rank
      const hid_t type = choice == 4 ? H5T_NATIVE_INT : H5T_NATIVE_FLOAT;  // another element type
      const xp::Hdf5Id space(H5Screate_simple(int(dims.size()), dims.data(), nullptr));
      const std::string name = xp::index_dataset_path(xp::Moment::Param, int(s), tensor.name);
      const xp::Hdf5Id dataset(H5Dcreate2(file, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
      if (choice == 5) xp::write_attribute(dataset, "split", in.ConsumeRandomLengthString(8));
      else if (choice != 1) xp::write_attribute(dataset, "split", std::string(xp::split_name(tensor.split)));
      attribute(in, dataset, "parts", tensor.parts);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const std::string dir = xp_fuzz::scratch_dir() + "/step_000001";
  std::filesystem::create_directories(dir);
  write_index(in, dir + "/index.h5");
  try {
    const xp::CheckpointIndex index(dir);
    index.model();
    for (const xp::IndexTensor& tensor : index.tensors()) index.read(tensor);
  } catch (const xp::InputError&) {
  }
  if (H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) != 0) __builtin_trap();
  return 0;
}
