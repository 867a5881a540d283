// xp_prep: UTF-8 text → llm.c token shards with a byte-level tokenizer (token = byte, vocab_size 256).
//   xp_prep INPUT.txt OUT_PREFIX [val_fraction=0.1] [shard_tokens=100000000]
// writes OUT_PREFIX_train_NNNNNN.bin and, when val_fraction > 0, OUT_PREFIX_val_NNNNNN.bin (the last
// val_fraction of the text).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "xp/io/shards.hpp"

namespace {

int usage() {
  std::fprintf(stderr, "usage: xp_prep INPUT.txt OUT_PREFIX [val_fraction=0.1] [shard_tokens=100000000]\n");
  return 2;
}

void write_shards(const std::string& prefix, const char* split, const std::vector<uint16_t>& tokens,
                  size_t shard_tokens) {
  for (size_t first = 0, index = 0; first < tokens.size(); first += shard_tokens, ++index) {
    const size_t last = std::min(tokens.size(), first + shard_tokens);
    char suffix[32];
    std::snprintf(suffix, sizeof suffix, "_%s_%06zu.bin", split, index);
    const std::string path = prefix + suffix;
    xp::write_shard(path, std::vector<uint16_t>(tokens.begin() + first, tokens.begin() + last));
    std::printf("xp_prep: wrote %s (%zu tokens)\n", path.c_str(), last - first);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  double val_fraction = 0.1;
  size_t shard_tokens = 100'000'000;
  for (int i = 3; i < argc; ++i) {
    const std::string argument = argv[i];
    if (argument.rfind("val_fraction=", 0) == 0) val_fraction = std::atof(argument.c_str() + 13);
    else if (argument.rfind("shard_tokens=", 0) == 0) shard_tokens = std::strtoull(argument.c_str() + 13, nullptr, 10);
    else return usage();
  }
  if (val_fraction < 0.0 || val_fraction >= 1.0 || shard_tokens == 0 || shard_tokens > 2'000'000'000) return usage();
  std::ifstream input(argv[1], std::ios::binary);
  if (!input) {
    std::fprintf(stderr, "xp_prep: cannot read '%s'\n", argv[1]);
    return 1;
  }
  const std::string text((std::istreambuf_iterator<char>(input)), std::istreambuf_iterator<char>());
  std::vector<uint16_t> tokens(text.begin(), text.end());
  for (size_t i = 0; i < text.size(); ++i) tokens[i] = static_cast<unsigned char>(text[i]);
  const std::filesystem::path parent = std::filesystem::path(argv[2]).parent_path();
  std::error_code error;
  if (!parent.empty()) std::filesystem::create_directories(parent, error);
  const size_t val_tokens = static_cast<size_t>(val_fraction * tokens.size());
  const std::vector<uint16_t> train(tokens.begin(), tokens.end() - val_tokens);
  const std::vector<uint16_t> val(tokens.end() - val_tokens, tokens.end());
  write_shards(argv[2], "train", train, shard_tokens);
  write_shards(argv[2], "val", val, shard_tokens);
  return 0;
}
