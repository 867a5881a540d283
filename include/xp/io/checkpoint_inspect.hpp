#pragma once
// Read-only access to checkpoints (io/checkpoint.hpp) for the loader, xp_ckpt and tests: every
// checkpoint directory of a run, partial ones included; a checkpoint's index with its attributes and
// full tensors by name. Errors throw InputError.
#include <cstdint>
#include <string>
#include <vector>

#include <hdf5.h>

#include "xp/config/config.hpp"
#include "xp/model/layout.hpp"

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

// AdamW state stored next to each parameter.
enum class Moment { Param, ExpAvg, ExpAvgSq };
const char* moment_name(Moment moment);  // "param", "exp_avg", "exp_avg_sq"

// index.h5 of a checkpoint directory, opened read-only.
class CheckpointIndex {
 public:
  // Throws when index.h5 is missing, not HDF5, of another format version, or lacks a tensor.
  explicit CheckpointIndex(const std::string& dir);
  ~CheckpointIndex();
  CheckpointIndex(const CheckpointIndex&) = delete;
  CheckpointIndex& operator=(const CheckpointIndex&) = delete;

  const std::string& dir() const { return dir_; }
  int64_t attribute(const std::string& name) const;  // integer root attribute; throws when absent
  std::string text_attribute(const std::string& name) const;
  ModelConfig model() const;  // n_layer, n_head, n_embd, seq_len, vocab_size

  // Every parameter once, in model order (the tied wte from the first stage that holds it), with the
  // shape and split the index records; throws when the index lacks one the model shape implies.
  const std::vector<IndexTensor>& tensors() const { return tensors_; }
  // The whole tensor, row-major, read through the index's virtual dataset.
  std::vector<float> read(const IndexTensor& tensor, Moment moment = Moment::Param) const;
  // Only the slice that tensor-parallel rank `tp_rank` of a run split as `slice` describes holds
  // (slice.size values in slice's row-major order), read as a hyperslab of the virtual dataset.
  void read_slice(const IndexTensor& tensor, Moment moment, const TensorInfo& slice, int tp_rank, int tp_size,
                  float* out) const;
  const IndexTensor* find(const std::string& name) const;  // null when absent
  // The size and CRC-32 the index recorded for shard file `name`; false when it has no record.
  bool shard_record(const std::string& name, int64_t& crc32, int64_t& bytes) const;

 private:
  void list_tensors();
  std::string dataset_path(const IndexTensor& tensor, Moment moment) const;
  std::string dir_, path_;
  hid_t file_ = -1;
  std::vector<IndexTensor> tensors_;
};

}  // namespace xp
