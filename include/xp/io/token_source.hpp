#pragma once
// Where training and validation tokens come from. A global batch is `sequences` rows of T+1 tokens
// (inputs and shifted targets) starting at the cursor; each data-parallel replica reads its own rows,
// so the batch — and the loss — does not depend on how many replicas share it.
#include <cstdint>
#include <memory>
#include <string>

#include "xp/config/config.hpp"

namespace xp {

struct DataCursor {
  int64_t shard = 0;     // index into the sorted shard list (0 for synthetic data)
  int64_t position = 0;  // token offset in the shard, or sequences consumed (synthetic)
  int64_t epoch = 0;     // passes over all shards
};

class TokenSource {
 public:
  virtual ~TokenSource() = default;
  // Moves the cursor to where the next global batch of `sequences` rows can be read whole.
  virtual void align(int64_t sequences) = 0;
  // Copies rows [first, first + count) of the batch at the cursor into tokens (count, T+1).
  virtual void read(int64_t first, int count, int32_t* tokens) = 0;
  // Steps the cursor past a batch of `sequences` rows.
  virtual void advance(int64_t sequences) = 0;
  virtual std::string describe() const = 0;

  DataCursor cursor;
};

// The training source (`validation` false) or the validation source; nullptr when shards are used for
// training and no val_data is given. `batch_sequences` is the global batch; every shard must hold one.
// Throws InputError for missing, malformed or too-short shards.
std::unique_ptr<TokenSource> make_token_source(const DataConfig& data, const ModelConfig& model, uint64_t seed,
                                               bool validation, int64_t batch_sequences);

}  // namespace xp
