// libFuzzer target: a token shard file (llm.c format) through read_shard_header and, when accepted, the
// training data source over it: construction (the batch must fit), alignment and reads across the
// wrap-around. Refusals are InputErrors; anything else is a finding.
#include <cstdint>
#include <vector>

#include "fuzz_support.hpp"
#include "xp/core/error.hpp"
#include "xp/io/shards.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = xp_fuzz::write_scratch("shard.bin", data, size);
  try {
    const xp::ShardInfo info = xp::read_shard_header(path);
    if (info.tokens < 0 || 1024 + 2 * info.tokens != static_cast<int64_t>(size)) __builtin_trap();
    // Every uint16 token is below vocab 65536, so the reads below must succeed (a token outside the
    // vocabulary is the trainer's documented fatal error, not the reader's).
    const int seq_len = 4, batch_sequences = 2;
    xp::ShardSource source(path, "train_data", seq_len, 65536, batch_sequences);
    std::vector<int32_t> tokens(batch_sequences * (seq_len + 1));
    for (int step = 0; step < 3; ++step) {
      source.align(batch_sequences);
      source.read(0, batch_sequences, tokens.data());
      source.advance(batch_sequences);
    }
  } catch (const xp::InputError&) {
  }
  return 0;
}
