#include "xp/io/token_source.hpp"

#include "xp/core/random.hpp"
#include "xp/io/shards.hpp"
#include "xp/io/synthetic.hpp"

namespace xp {

std::unique_ptr<TokenSource> make_token_source(const DataConfig& data, const ModelConfig& model, uint64_t seed,
                                               bool validation, int64_t batch_sequences) {
  const std::string& pattern = validation ? data.val_data : data.train_data;
  const std::string key = validation ? "val_data" : "train_data";
  if (!pattern.empty())
    return std::make_unique<ShardSource>(pattern, key, model.seq_len, model.vocab_size, batch_sequences);
  if (validation && !data.train_data.empty()) return nullptr;  // real training data, no validation set
  return std::make_unique<SyntheticSource>(seed, stream_id(validation ? "synthetic.val" : "synthetic.train"),
                                           model.vocab_size, data.synthetic_branching, model.seq_len);
}

}  // namespace xp
