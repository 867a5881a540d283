#pragma once
// Text <-> token ids for prompts and samples (xp_generate, training-time samples). One interface so the
// tokenizer a run's data used can be plugged in: the byte-level one (token = byte, the default of
// xp_prep) lives here; a GPT-2 BPE codec implements the same two calls and is chosen in
// make_text_codec() by its name.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

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

// The codec named `tokenizer` for a model of `vocab_size` tokens ("byte": token = byte value). Throws
// InputError for an unknown name, listing the known ones.
std::unique_ptr<TextCodec> make_text_codec(const std::string& tokenizer, int vocab_size);

}  // namespace xp
