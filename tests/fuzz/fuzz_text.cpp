// libFuzzer target: text through xp_prep's reader (plain or JSON Lines by the first byte, read in small
// blocks) and GPT-2's encoder on a small vocabulary. A refusal is an InputError that names the offset
// utf8_invalid_offset finds; accepted text is handed out byte for byte, and encoding its parts, cut where
// the reader cuts, gives the ids of the whole document, which decode back to it.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "xp/core/error.hpp"
#include "xp/text/corpus.hpp"
#include "xp/text/gpt2_tokenizer.hpp"
#include "xp/text/utf8.hpp"

namespace {

// Every byte, then merges that the fuzzer meets often (spaces, newlines, letters, a contraction).
const xp::Gpt2Tokenizer& tokenizer() {
  static const xp::Gpt2Tokenizer* loaded = [] {
    const char* digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    auto base64 = [&](const std::string& bytes) {
      std::string out;
      unsigned value = 0, bits = 0;  // only the low bits - 1 matter
      for (unsigned char c : bytes) {
        value = ((value << 8) | c) & 0xFFFFu, bits += 8;
        while (bits >= 6) out += digits[(value >> (bits -= 6)) & 63];
      }
      if (bits > 0) out += digits[(value << (6 - bits)) & 63];
      while (out.size() % 4) out += '=';
      return out;
    };
    std::string ranks;
    int rank = 0;
    for (int b = 0; b < 256; ++b) ranks += base64(std::string(1, static_cast<char>(b))) + " " + std::to_string(rank++) + "\n";
    for (const char* merged : {"  ", "    ", "\n\n", "ab", "abc", " a", " ab", "'s", "12", "123", "\r\n", " \n", "th", "the"})
      ranks += base64(merged) + " " + std::to_string(rank++) + "\n";
    const std::string path = xp_fuzz::write_scratch("ranks.tiktoken", reinterpret_cast<const uint8_t*>(ranks.data()),
                                                    ranks.size());
    return new xp::Gpt2Tokenizer(xp::Gpt2Tokenizer::load(path));
  }();
  return *loaded;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool jsonl = data[0] & 1;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::string path = xp_fuzz::write_scratch(jsonl ? "in.jsonl" : "in.txt", data + 1, size - 1);
  std::vector<xp::Segment> segments;
  try {
    xp::CorpusReader reader({path}, 1 + data[0] % 64);
    std::vector<xp::Segment> batch;
    while (reader.read_batch(40, batch))
      for (xp::Segment& segment : batch) segments.push_back(std::move(segment));
  } catch (const xp::InputError& error) {
    if (jsonl) return 0;  // bad JSON, or bad UTF-8 in a line
    const size_t bad = xp::utf8_invalid_offset(body);
    if (bad == xp::utf8_valid || std::string(error.what()).find("at byte " + std::to_string(bad)) == std::string::npos)
      __builtin_trap();
    return 0;
  }
  if (!jsonl) {
    std::string handed_out;
    for (const xp::Segment& segment : segments) handed_out.append(segment.text, 0, segment.end);
    if (handed_out != body || xp::utf8_invalid_offset(body) != xp::utf8_valid) __builtin_trap();
  }
  // Documents: the whole file (plain) or each line's text; the units of each, encoded, give its ids.
  xp::Gpt2Encoder encoder(tokenizer());
  const std::vector<xp::WorkUnit> units = xp::split_units(segments, 1 + data[0] % 16);
  std::vector<std::vector<int32_t>> ids(1);
  std::vector<std::string> documents(1);
  for (const xp::WorkUnit& unit : units) {
    const xp::Segment& segment = segments[unit.segment];
    if (jsonl && unit.begin == 0 && segment.starts_document) ids.emplace_back(), documents.emplace_back();
    encoder.encode_range(segment.text, unit.begin, unit.end, ids.back());
    documents.back().append(segment.text, unit.begin, unit.end - unit.begin);
  }
  for (size_t d = 0; d < documents.size(); ++d) {
    if (xp::utf8_invalid_offset(documents[d]) != xp::utf8_valid) __builtin_trap();
    if (ids[d] != tokenizer().encode_ordinary(documents[d]) || tokenizer().decode(ids[d]) != documents[d]) __builtin_trap();
  }
  return 0;
}
