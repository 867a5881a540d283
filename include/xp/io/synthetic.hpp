#pragma once
// The built-in data: a Markov chain over the vocabulary in which every token has `branching` distinct
// successors, each equally likely. Every target is drawn from that uniform choice, so the entropy —
// the lowest loss any model can reach — is exactly ln(branching) nats per token.
#include <vector>

#include "xp/io/token_source.hpp"

namespace xp {

class SyntheticSource : public TokenSource {
 public:
  // `stream` separates training from validation sequences; the chain itself depends only on seed.
  SyntheticSource(uint64_t seed, uint64_t stream, int vocab_size, int branching, int seq_len);
  void align(int64_t) override {}
  void read(int64_t first, int count, int32_t* tokens) override;
  void advance(int64_t sequences) override { cursor.position += sequences; }
  std::string describe() const override;

  double entropy() const;  // nats per token: ln(branching)

 private:
  uint64_t seed_, stream_;
  int vocab_size_, branching_, seq_len_;
  std::vector<int32_t> successors_;  // (vocab_size, branching)
};

}  // namespace xp
