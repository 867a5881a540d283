// Gpt2Tokenizer::load: GPT-2's vocabulary from Hugging Face's / OpenAI's two files or a tiktoken ranks file.
#include <climits>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include <nlohmann/json.hpp>

#include "xp/core/error.hpp"
#include "xp/text/gpt2_tokenizer.hpp"

namespace xp {
namespace {

namespace fs = std::filesystem;

// GPT-2's reversible byte <-> character map: the vocabulary files spell every byte as a printable
// character (printable Latin-1 bytes as themselves, the rest as U+0100 onwards, in byte order).
std::vector<int> byte_to_code_point() {
  std::vector<int> map(256, -1);
  for (int b = 0; b < 256; ++b)
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) map[b] = b;
  int next = 256;
  for (int b = 0; b < 256; ++b)
    if (map[b] < 0) map[b] = next++;
  return map;
}

// A vocabulary entry back to its bytes; false for text outside the map (special tokens such as <|endoftext|>).
bool unmap_bytes(const std::string& text, const std::vector<int>& code_point_to_byte, std::string& bytes) {
  bytes.clear();
  for (size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    int code_point = lead, length = 1;
    if (lead >= 0xE0) code_point = lead & 0x0F, length = 3;
    else if (lead >= 0xC0) code_point = lead & 0x1F, length = 2;
    else if (lead >= 0x80) return false;
    if (i + length > text.size()) return false;
    for (int k = 1; k < length; ++k) code_point = (code_point << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    if (code_point >= static_cast<int>(code_point_to_byte.size()) || code_point_to_byte[code_point] < 0) return false;
    bytes += static_cast<char>(code_point_to_byte[code_point]);
    i += length;
  }
  return true;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot read vocabulary file '" + path.string() + "'");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool base64_decode(std::string_view text, std::string& out) {
  out.clear();
  unsigned bits = 0, value = 0;  // value keeps only the bits not yet written
  for (char c : text) {
    int digit;
    if (c >= 'A' && c <= 'Z') digit = c - 'A';
    else if (c >= 'a' && c <= 'z') digit = c - 'a' + 26;
    else if (c >= '0' && c <= '9') digit = c - '0' + 52;
    else if (c == '+') digit = 62;
    else if (c == '/') digit = 63;
    else if (c == '=') break;
    else return false;
    value = ((value << 6) | static_cast<unsigned>(digit)) & 0xFFFu;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((value >> bits) & 0xFF);
    }
  }
  return !out.empty();
}

}  // namespace

void Gpt2Tokenizer::add_merge(int32_t left, int32_t right, int32_t rank, int32_t token) {
  merges_.emplace(pair_key(left, right), Merge{rank, token});  // the first (lowest) rank of a pair wins
}

Gpt2Tokenizer Gpt2Tokenizer::load(const std::string& path) {
  Gpt2Tokenizer tokenizer;
  tokenizer.source_ = path;
  std::unordered_map<std::string, int32_t> ids;  // bytes -> id
  auto finish_bytes = [&](const std::string& where) {
    for (int b = 0; b < 256; ++b) {
      const auto found = ids.find(std::string(1, static_cast<char>(b)));
      if (found == ids.end()) throw InputError(where + " has no token for byte " + std::to_string(b));
      tokenizer.byte_token_[b] = found->second;
    }
  };
  const fs::path root(path);
  if (fs::is_directory(root)) {
    fs::path vocab = root / "vocab.json", merges = root / "merges.txt";
    if (!fs::exists(vocab) || !fs::exists(merges)) vocab = root / "encoder.json", merges = root / "vocab.bpe";
    if (!fs::exists(vocab) || !fs::exists(merges))
      throw InputError("vocabulary folder '" + path + "' holds neither vocab.json + merges.txt nor encoder.json + vocab.bpe");
    nlohmann::json entries;
    try {
      entries = nlohmann::json::parse(read_file(vocab));
    } catch (const nlohmann::json::exception& error) {
      throw InputError("vocabulary '" + vocab.string() + "' is not JSON: " + error.what());
    }
    if (!entries.is_object() || entries.empty()) throw InputError("vocabulary '" + vocab.string() + "' is not a JSON object");
    const std::vector<int> byte_map = byte_to_code_point();
    std::vector<int> code_point_to_byte(512, -1);
    for (int b = 0; b < 256; ++b) code_point_to_byte[byte_map[b]] = b;
    std::unordered_map<std::string, int32_t> by_name;
    for (const auto& [name, value] : entries.items()) {
      if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() >= INT32_MAX)
        throw InputError("vocabulary '" + vocab.string() + "': entry '" + name + "' has no non-negative integer id");
      const auto id = value.get<int32_t>();
      if (id >= static_cast<int32_t>(tokenizer.token_bytes_.size())) tokenizer.token_bytes_.resize(id + 1);
      std::string bytes;
      if (!unmap_bytes(name, code_point_to_byte, bytes)) bytes = name;  // a special token: its literal text
      else ids.emplace(bytes, id);
      tokenizer.token_bytes_[id] = bytes;
      by_name.emplace(name, id);
    }
    if (by_name.size() != tokenizer.token_bytes_.size())
      throw InputError("vocabulary '" + vocab.string() + "' has " + std::to_string(by_name.size()) + " entries but ids up to " +
                       std::to_string(tokenizer.token_bytes_.size() - 1) + " (ids must be 0..N-1, each once)");
    finish_bytes("vocabulary '" + vocab.string() + "'");
    const auto eot = by_name.find("<|endoftext|>");
    if (eot == by_name.end()) throw InputError("vocabulary '" + vocab.string() + "' has no <|endoftext|> token");
    tokenizer.eot_ = eot->second;
    std::istringstream lines(read_file(merges));
    std::string line;
    int32_t rank = 0;
    for (int number = 1; std::getline(lines, line); ++number) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty() || (number == 1 && line.rfind("#version", 0) == 0)) continue;
      const size_t space = line.find(' ');
      const std::string left = line.substr(0, space), right = space == std::string::npos ? "" : line.substr(space + 1);
      const auto a = by_name.find(left), b = by_name.find(right), ab = by_name.find(left + right);
      if (space == std::string::npos || right.find(' ') != std::string::npos || a == by_name.end() ||
          b == by_name.end() || ab == by_name.end())
        throw InputError("merges '" + merges.string() + "' line " + std::to_string(number) +
                         ": expected two vocabulary entries whose concatenation is one, got '" + line + "'");
      tokenizer.add_merge(a->second, b->second, rank++, ab->second);
    }
    if (rank == 0) throw InputError("merges '" + merges.string() + "' holds no merges");
    return tokenizer;
  }
  // A tiktoken ranks file: merging a pair is allowed when its concatenation is a token, at that token's rank.
  std::istringstream lines(read_file(root));
  std::string line, bytes;
  for (int number = 1; std::getline(lines, line); ++number) {
    if (line.empty()) continue;
    const size_t space = line.find(' ');
    char* end = nullptr;
    const long rank = space == std::string::npos ? -1 : std::strtol(line.c_str() + space + 1, &end, 10);
    if (rank < 0 || rank >= INT32_MAX || *end != '\0' || !base64_decode(std::string_view(line).substr(0, space), bytes) ||
        !ids.emplace(bytes, static_cast<int32_t>(rank)).second)
      throw InputError("tiktoken ranks file '" + path + "' line " + std::to_string(number) +
                       ": expected 'base64-bytes rank' with new bytes, got '" + line.substr(0, 80) + "'");
    if (rank >= static_cast<long>(tokenizer.token_bytes_.size())) tokenizer.token_bytes_.resize(rank + 1);
    tokenizer.token_bytes_[rank] = bytes;
  }
  if (ids.size() != tokenizer.token_bytes_.size() || ids.empty())
    throw InputError("tiktoken ranks file '" + path + "' has " + std::to_string(ids.size()) +
                     " entries but ranks up to " + std::to_string(int64_t(tokenizer.token_bytes_.size()) - 1) +
                     " (ranks must be 0..N-1, each once)");
  finish_bytes("tiktoken ranks file '" + path + "'");
  for (int32_t token = 0; token < static_cast<int32_t>(tokenizer.token_bytes_.size()); ++token) {
    const std::string& whole = tokenizer.token_bytes_[token];
    for (size_t split = 1; split < whole.size(); ++split) {
      const auto left = ids.find(whole.substr(0, split)), right = ids.find(whole.substr(split));
      if (left != ids.end() && right != ids.end()) tokenizer.add_merge(left->second, right->second, token, token);
    }
  }
  // GPT-2's one special token follows the ranks (50256 after 50256 ranks), as tiktoken's gpt2 encoding has it.
  tokenizer.eot_ = static_cast<int32_t>(tokenizer.token_bytes_.size());
  tokenizer.token_bytes_.push_back("<|endoftext|>");
  return tokenizer;
}

}  // namespace xp
