#include "xp/text/utf8.hpp"

namespace xp {

size_t utf8_invalid_offset(std::string_view text, bool more_follows, size_t* incomplete_tail) {
  if (incomplete_tail) *incomplete_tail = text.size();
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  const size_t size = text.size();
  size_t i = 0;
  while (i < size) {
    const unsigned char lead = bytes[i];
    if (lead < 0x80) {
      ++i;
      continue;
    }
    int length = 0;
    unsigned char low = 0x80, high = 0xBF;  // bounds of the second byte (Unicode table 3-7)
    if (lead >= 0xC2 && lead <= 0xDF) length = 2;
    else if (lead == 0xE0) length = 3, low = 0xA0;
    else if (lead == 0xED) length = 3, high = 0x9F;  // no surrogates
    else if (lead >= 0xE1 && lead <= 0xEF) length = 3;
    else if (lead == 0xF0) length = 4, low = 0x90;
    else if (lead == 0xF4) length = 4, high = 0x8F;  // nothing above U+10FFFF
    else if (lead >= 0xF1 && lead <= 0xF3) length = 4;
    else return i;
    for (int k = 1; k < length; ++k) {
      if (i + k >= size) {
        if (!more_follows) return i;
        if (incomplete_tail) *incomplete_tail = i;
        return utf8_valid;
      }
      const unsigned char next = bytes[i + k];
      if (k == 1 ? (next < low || next > high) : (next < 0x80 || next > 0xBF)) return i;
    }
    i += length;
  }
  return utf8_valid;
}

}  // namespace xp
