#pragma once
// Text <-> token ids for prompts and samples (xp_generate, training-time samples): the byte-level codec
// (token = byte, xp_prep's default) or GPT-2's BPE (text/gpt2_tokenizer.hpp), whichever the run's data
// used. The run resolves which at start-up (resolve_tokenizer) and records it in config.toml and in
// every checkpoint's config, from which xp_generate reads it back.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "xp/config/config.hpp"

namespace xp {

class TextCodec {
 public:
  virtual ~TextCodec() = default;
  virtual std::string name() const = 0;
  // Token ids of `text`; throws InputError for text this vocabulary cannot express.
  virtual std::vector<int32_t> encode(const std::string& text) const = 0;
  // The text of `ids`. Ids the tokenizer has no text for are shown as <|id|>.
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
};

// The codec named `tokenizer` for a model of `vocab_size` tokens: "byte" (token = byte value) or "gpt2"
// (GPT-2's BPE read from `vocab`: a folder or ranks file, Gpt2Tokenizer::load). Throws InputError for an
// unknown name (listing the known ones), a gpt2 codec without a loadable vocabulary, or a vocabulary
// larger than the model's.
std::unique_ptr<TextCodec> make_text_codec(const std::string& tokenizer, int vocab_size,
                                           const std::string& vocab = "");

// Settles config.data.tokenizer before the run records it: "auto" becomes the tokenizer the first
// train_data shard's header names ("byte" for synthetic data; shards without a record, as llm.c's own
// scripts write, are "gpt2" when `vocab` is set, else "byte"). For gpt2, a `vocab` that is set must load
// and fit vocab_size, and becomes an absolute path so that xp_generate finds it from anywhere; it is
// required only when samples are on (sample_every > 0). Throws InputError.
void resolve_tokenizer(Config& config);

// The codec of a run (resolving "auto" on a copy where the caller has not).
std::unique_ptr<TextCodec> make_run_text_codec(const Config& config);

}  // namespace xp
