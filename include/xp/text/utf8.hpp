#pragma once
// UTF-8 validation for text inputs: the GPT-2 pre-tokenizer works on code points, so bad bytes are refused
// with their offset instead of being split into arbitrary tokens.
#include <cstddef>
#include <string_view>

namespace xp {

constexpr size_t utf8_valid = static_cast<size_t>(-1);

// Offset of the first byte that does not start a well-formed UTF-8 sequence (overlong forms, surrogates
// and code points above U+10FFFF included), or utf8_valid. A sequence cut by the end of `text` is invalid
// unless `more_follows`, in which case its offset is returned through `incomplete_tail` (the caller
// carries those bytes over to the next block) and the text before it counts as valid.
size_t utf8_invalid_offset(std::string_view text, bool more_follows = false, size_t* incomplete_tail = nullptr);

}  // namespace xp
