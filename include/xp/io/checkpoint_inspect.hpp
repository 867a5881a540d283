#pragma once
// Read-only access to checkpoints (io/checkpoint.hpp) for the loader, xp_ckpt and tests: every
// checkpoint directory of a run, partial ones included; a checkpoint's index with its attributes, its
// stage map and full tensors by name. Errors throw InputError.
#include <cstdint>
#include <string>
#include <vector>

#include <hdf5.h>

#include "xp/config/config.hpp"
#include "xp/io/checkpoint_names.hpp"
#include "xp/io/hdf5_file.hpp"
#include "xp/model/layout.hpp"
#include "xp/model/partition.hpp"

namespace xp {

struct CheckpointEntry {
  int64_t step = 0;
  std::string dir;
  bool partial = false;  // .step_NNNNNN.partial, or no index.h5: a write that never finished
  int64_t bytes = 0;     // all files in the directory
};

// Checkpoint directories under <run_dir>/ckpt by step; throws InputError when there is no such folder.
std::vector<CheckpointEntry> list_checkpoints(const std::string& run_dir);

// One full tensor of the index: parameter `name` as the pipeline stage `stage` of the writing run saw it.
struct IndexTensor {
  std::string name;            // "h.0.attn.qkv.weight"
  int stage = 0;
  std::vector<int64_t> shape;  // the whole tensor
  std::string split;           // how the writing run split it over tp ranks: column, row, vocab, replicated
  int64_t parts = 1;
};

// index.h5 of a checkpoint directory, opened read-only.
class CheckpointIndex {
 public:
  // Throws when index.h5 is missing, not HDF5, of a format version this build cannot read, or lacks
  // its stage map or a tensor.
  explicit CheckpointIndex(const std::string& dir);

  const std::string& dir() const { return dir_; }
  int64_t attribute(const std::string& name) const;  // integer root attribute; throws when absent
  std::string text_attribute(const std::string& name) const;
  ModelConfig model() const;  // n_layer, n_head, n_embd, seq_len, vocab_size
  int64_t format_version() const { return format_version_; }

  // Which layers and ends of the model each pipeline stage of the writing run held: recorded in the
  // index since format 2, read off the tensor names each stage group holds in format 1.
  const std::vector<StageRange>& stages() const { return stages_; }

  // Every parameter once, in model order (the tied wte from the first stage that holds it), with the
  // shape and split the index records; throws when the index lacks one the model shape implies.
  const std::vector<IndexTensor>& tensors() const { return tensors_; }
  // The whole tensor, row-major, read through the index's virtual dataset.
  std::vector<float> read(const IndexTensor& tensor, Moment moment = Moment::Param) const;
  // Only the slice that tensor-parallel rank `tp_rank` of a run split as `slice` describes holds
  // (slice.size values in slice's row-major order), read as a hyperslab of the virtual dataset; or only
  // its rows [first_row, first_row + rows) (rows < 0: all of them).
  void read_slice(const IndexTensor& tensor, Moment moment, const TensorInfo& slice, int tp_rank, int tp_size,
                  float* out, int64_t first_row = 0, int64_t rows = -1) const;
  const IndexTensor* find(const std::string& name) const;  // null when absent
  // The size and CRC-32 the index recorded for shard file `name`; false when it has no record.
  bool shard_record(const std::string& name, int64_t& crc32, int64_t& bytes) const;

 private:
  void read_stage_map();
  StageRange stage_from_names(int stage) const;  // format 1
  void list_tensors();
  std::string dir_, path_;
  Hdf5Id file_;
  int64_t format_version_ = 0;
  std::vector<StageRange> stages_;
  std::vector<IndexTensor> tensors_;
};

// Selects `block` (model/layout.hpp) in the dataspace of a tensor, (rows) or (rows, columns): at its place
// in the whole tensor (`in_full`) or in the slice. False when HDF5 refuses the selection.
bool select_slice_block(hid_t space, const SliceBlock& block, bool in_full, H5S_seloper_t operation);

}  // namespace xp
