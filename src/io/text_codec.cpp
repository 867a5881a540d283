#include "xp/io/text_codec.hpp"

#include "xp/core/error.hpp"

namespace xp {
namespace {

// Token = byte (xp_prep's default tokenizer): any byte string, valid UTF-8 or not, round-trips.
class ByteCodec : public TextCodec {
 public:
  explicit ByteCodec(int vocab_size) : vocab_size_(vocab_size) {}
  std::string name() const override { return "byte"; }

  std::vector<int32_t> encode(const std::string& text) const override {
    std::vector<int32_t> ids;
    ids.reserve(text.size());
    for (const unsigned char byte : text) {
      if (byte >= vocab_size_)
        throw InputError("byte " + std::to_string(byte) + " of the prompt is not a token of this model (vocab_size " +
                         std::to_string(vocab_size_) + ")");
      ids.push_back(byte);
    }
    return ids;
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string text;
    for (const int32_t id : ids) {
      if (id >= 0 && id < 256) text += static_cast<char>(id);
      else text += "<|" + std::to_string(id) + "|>";  // a model wider than 256 tokens trained on bytes
    }
    return text;
  }

 private:
  int vocab_size_;
};

}  // namespace

std::unique_ptr<TextCodec> make_text_codec(const std::string& tokenizer, int vocab_size) {
  // A GPT-2 BPE codec joins here: `if (tokenizer == "gpt2") return make_gpt2_codec(...)`.
  if (tokenizer == "byte") return std::make_unique<ByteCodec>(vocab_size);
  throw InputError("unknown tokenizer '" + tokenizer + "' (allowed: byte)");
}

}  // namespace xp
