#include "xp/io/text_codec.hpp"

#include <filesystem>

#include "xp/core/error.hpp"
#include "xp/io/shards.hpp"
#include "xp/text/gpt2_tokenizer.hpp"

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

// GPT-2's byte-level BPE. Prompts are ordinary text (a literal "<|endoftext|>" is characters, as in
// xp_prep); ids past the vocabulary (the padded rows a model may still emit) show as <|id|>.
class Gpt2Codec : public TextCodec {
 public:
  explicit Gpt2Codec(Gpt2Tokenizer tokenizer) : tokenizer_(std::move(tokenizer)) {}
  std::string name() const override { return "gpt2"; }

  std::vector<int32_t> encode(const std::string& text) const override { return tokenizer_.encode_ordinary(text); }

  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string text;
    std::vector<int32_t> run;  // consecutive known ids decode together (a character may span tokens)
    for (const int32_t id : ids) {
      if (id >= 0 && id < tokenizer_.vocab_size()) {
        run.push_back(id);
        continue;
      }
      text += tokenizer_.decode(run) + "<|" + std::to_string(id) + "|>";
      run.clear();
    }
    return text + tokenizer_.decode(run);
  }

 private:
  Gpt2Tokenizer tokenizer_;
};

}  // namespace

std::unique_ptr<TextCodec> make_text_codec(const std::string& tokenizer, int vocab_size, const std::string& vocab) {
  if (tokenizer == "byte") return std::make_unique<ByteCodec>(vocab_size);
  if (tokenizer == "gpt2") {
    if (vocab.empty())
      throw InputError("the gpt2 tokenizer needs its vocabulary to turn tokens into text: set vocab = DIR (a folder "
                       "with vocab.json + merges.txt or encoder.json + vocab.bpe, or a tiktoken ranks file)");
    Gpt2Tokenizer loaded = [&] {
      try {
        return Gpt2Tokenizer::load(vocab);
      } catch (const InputError& error) {
        throw InputError("vocab = '" + vocab + "': " + error.what());
      }
    }();
    if (loaded.vocab_size() > vocab_size)
      throw InputError("vocab '" + vocab + "' has " + std::to_string(loaded.vocab_size()) +
                       " tokens, more than the model's vocab_size " + std::to_string(vocab_size) +
                       "; set vocab_size = " + std::to_string(loaded.vocab_size()));
    return std::make_unique<Gpt2Codec>(std::move(loaded));
  }
  throw InputError("unknown tokenizer '" + tokenizer + "' (allowed: byte, gpt2)");
}

void resolve_tokenizer(Config& config) {
  DataConfig& data = config.data;
  if (data.tokenizer == "auto") {
    if (data.train_data.empty()) {
      data.tokenizer = "byte";  // the synthetic source's tokens have no text; bytes show them
    } else {
      const ShardInfo first = read_shard_header(expand_glob(data.train_data, "train_data").front());
      if (first.tokenizer == shard_tokenizer_byte) data.tokenizer = "byte";
      else if (first.tokenizer == shard_tokenizer_gpt2) data.tokenizer = "gpt2";
      else data.tokenizer = data.vocab.empty() ? "byte" : "gpt2";
    }
  }
  if (data.tokenizer != "gpt2") return;
  // Training needs no text; only samples do. Without a vocabulary the run records gpt2 and no path, and
  // xp_generate asks for --vocab.
  if (data.vocab.empty() && config.sample.sample_every == 0) return;
  if (data.vocab.empty())
    throw InputError("sample_every needs the gpt2 tokenizer's vocabulary to print text: set vocab = DIR (the "
                     "vocabulary the data was made with: vocab.json + merges.txt or encoder.json + vocab.bpe, or a "
                     "tiktoken ranks file), or sample_every = 0");
  make_text_codec(data.tokenizer, config.model.vocab_size, data.vocab);  // loads it once: a bad path ends the start
  std::error_code error;
  const std::filesystem::path absolute = std::filesystem::absolute(data.vocab, error);
  if (!error) data.vocab = absolute.lexically_normal().string();
}

std::unique_ptr<TextCodec> make_run_text_codec(const Config& config) {
  Config resolved = config;
  resolve_tokenizer(resolved);
  return make_text_codec(resolved.data.tokenizer, config.model.vocab_size, resolved.data.vocab);
}

}  // namespace xp
