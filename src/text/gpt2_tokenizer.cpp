// GPT-2 BPE: PCRE2 splits text into pieces with GPT-2's pattern, each piece's bytes are merged by rank.
// A build without PCRE2 (XP_HAVE_PCRE2 unset) still loads vocabularies and decodes; its encoder refuses.
#include "xp/text/gpt2_tokenizer.hpp"

#ifdef XP_HAVE_PCRE2
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#endif

#include <algorithm>
#include <climits>

#include "xp/core/error.hpp"

namespace xp {
#ifdef XP_HAVE_PCRE2
namespace {

// Unicode White_Space, which is what `\s` means in tiktoken's (Rust) regex. PCRE2 10.42's `\s` under UCP
// also takes U+180E (a separator before Unicode 6.3), so the class is spelled out; checked over every code
// point. Otherwise this is GPT-2's pattern as tiktoken has it.
#define XP_WS "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
constexpr const char* gpt2_pattern_text =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" XP_WS "\\p{L}\\p{N}]+|[" XP_WS "]+(?![^" XP_WS "])|[" XP_WS "]+";
#undef XP_WS

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof buffer);
  return reinterpret_cast<const char*>(buffer);
}

// Compiled (and JIT-compiled) once; a compiled pattern may be matched from many threads at once.
const pcre2_code* gpt2_pattern() {
  static const pcre2_code* code = [] {
    int error = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code* compiled = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(gpt2_pattern_text), PCRE2_ZERO_TERMINATED,
                                         PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
    XP_REQUIRE(compiled, "PCRE2 cannot compile GPT-2's pattern: " + pcre2_message(error));
    pcre2_jit_compile(compiled, PCRE2_JIT_COMPLETE);  // without JIT support the interpreter gives the same pieces
    return compiled;
  }();
  return code;
}

}  // namespace

struct Gpt2Encoder::Matcher {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* stack = nullptr;
  ~Matcher() {
    pcre2_match_data_free(data);
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(stack);
  }
};
#else
struct Gpt2Encoder::Matcher {};
#endif

std::string Gpt2Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string text;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size())
      throw InputError("token id " + std::to_string(id) + " is outside GPT-2's vocabulary (0.." +
                       std::to_string(vocab_size() - 1) + ")");
    text += token_bytes_[id];
  }
  return text;
}

std::vector<int32_t> Gpt2Tokenizer::encode_ordinary(std::string_view text) const {
  Gpt2Encoder encoder(*this);
  std::vector<int32_t> ids;
  encoder.encode_ordinary(text, ids);
  return ids;
}

void Gpt2Tokenizer::encode_piece(std::string_view piece, std::vector<int32_t>& ids) const {
  // parts[i] is a token; ranks[i] the merge of parts[i] and parts[i + 1] (INT_MAX: none). The lowest rank
  // merges first, the leftmost among equals, as tiktoken does (OpenAI's encoder gives the same ids).
  std::vector<int32_t> parts(piece.size());
  for (size_t i = 0; i < piece.size(); ++i) parts[i] = byte_token_[static_cast<unsigned char>(piece[i])];
  std::vector<Merge> ranks(parts.empty() ? 0 : parts.size() - 1);
  auto merge_of = [&](size_t i) {
    const auto found = merges_.find(pair_key(parts[i], parts[i + 1]));
    return found == merges_.end() ? Merge{INT_MAX, -1} : found->second;
  };
  for (size_t i = 0; i < ranks.size(); ++i) ranks[i] = merge_of(i);
  while (!ranks.empty()) {
    size_t best = 0;
    for (size_t i = 1; i < ranks.size(); ++i)
      if (ranks[i].rank < ranks[best].rank) best = i;
    if (ranks[best].rank == INT_MAX) break;
    parts[best] = ranks[best].token;
    parts.erase(parts.begin() + best + 1);
    ranks.erase(ranks.begin() + best);
    if (best > 0) ranks[best - 1] = merge_of(best - 1);
    if (best < ranks.size()) ranks[best] = merge_of(best);
  }
  ids.insert(ids.end(), parts.begin(), parts.end());
}

Gpt2Encoder::Gpt2Encoder(const Gpt2Tokenizer& tokenizer) : tokenizer_(&tokenizer), matcher_(new Matcher) {
#ifndef XP_HAVE_PCRE2
  throw InputError("this build has no PCRE2 (install libpcre2-dev and rebuild): GPT-2 text can be decoded, not encoded");
#else
  const pcre2_code* code = gpt2_pattern();
  matcher_->data = pcre2_match_data_create_from_pattern(code, nullptr);
  matcher_->context = pcre2_match_context_create(nullptr);
  // Long whitespace runs backtrack through `\s+(?!\S)`: room for those beyond JIT's 32 KiB default.
  matcher_->stack = pcre2_jit_stack_create(32 * 1024, 64 * 1024 * 1024, nullptr);
  XP_REQUIRE(matcher_->data && matcher_->context && matcher_->stack, "out of memory for PCRE2's match state");
  pcre2_jit_stack_assign(matcher_->context, nullptr, matcher_->stack);
#endif
}

Gpt2Encoder::~Gpt2Encoder() = default;
Gpt2Encoder::Gpt2Encoder(Gpt2Encoder&&) noexcept = default;

void Gpt2Encoder::encode_range(std::string_view text, size_t begin, size_t end, std::vector<int32_t>& ids) {
#ifdef XP_HAVE_PCRE2
  const pcre2_code* code = gpt2_pattern();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  constexpr size_t cache_limit = size_t{1} << 18, cached_length = 32;
  for (size_t offset = begin; offset < end;) {
    const int rc = pcre2_match(code, subject, text.size(), offset, PCRE2_NO_UTF_CHECK, matcher_->data, matcher_->context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) throw InputError("PCRE2 failed on the text at byte " + std::to_string(offset) + ": " + pcre2_message(rc));
    const PCRE2_SIZE* span = pcre2_get_ovector_pointer(matcher_->data);
    if (span[0] >= end) break;
    const std::string_view piece = text.substr(span[0], span[1] - span[0]);
    offset = span[1];
    if (piece.size() == 1 || piece.size() > cached_length) {  // one byte, or long and seldom repeated
      tokenizer_->encode_piece(piece, ids);
      continue;
    }
    std::string key(piece);
    auto found = cache_.find(key);
    if (found == cache_.end()) {
      if (cache_.size() >= cache_limit) cache_.clear();
      std::vector<int32_t> piece_ids;
      tokenizer_->encode_piece(piece, piece_ids);
      found = cache_.emplace(std::move(key), std::move(piece_ids)).first;
    }
    ids.insert(ids.end(), found->second.begin(), found->second.end());
  }
#else
  (void)text, (void)begin, (void)end, (void)ids;  // no encoder is ever constructed
#endif
}

}  // namespace xp
