// libFuzzer target: the bytes of a checkpoint's index.h5 through CheckpointIndex — the HDF5 open, format
// version, stage map (recorded, or read off the tensor names in format 1), the tensor table the model
// shape implies — then the model shape, a shard record, and every tensor small enough to read whole.
// Refusals are InputErrors; anything else (a crash here or inside HDF5, an abort) is a finding.
#include <filesystem>
#include <string>

#include "fuzz_support.hpp"
#include "xp/core/error.hpp"
#include "xp/io/checkpoint_inspect.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // the reader's messages are what count, not HDF5's stack
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string dir = xp_fuzz::scratch_dir() + "/step_000001";
  std::filesystem::create_directories(dir);
  xp_fuzz::write_scratch("step_000001/index.h5", data, size);
  try {
    const xp::CheckpointIndex index(dir);
    index.model();
    int64_t crc32 = 0, bytes = 0;
    index.shard_record("stage0_tp0.h5", crc32, bytes);
    for (const xp::IndexTensor& tensor : index.tensors()) {
      int64_t count = 1;
      for (int64_t extent : tensor.shape) count *= extent;
      if (count <= (1 << 16)) index.read(tensor);  // larger ones: a valid shape, but slow to fuzz
    }
  } catch (const xp::InputError&) {
  }
  // Every HDF5 handle the reader opened lives in an RAII wrapper: none may outlive the index.
  if (H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) != 0) __builtin_trap();
  return 0;
}
