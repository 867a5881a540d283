// CRC-32C of the TensorBoard writer's TFRecord frames against published check values: the
// "123456789" check of the CRC catalogue and the 32-byte vectors of RFC 3720 (iSCSI) appendix B.4.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "xp/train/tensorboard.hpp"

TEST(Crc32c, PublishedCheckValues) {
  const std::string digits = "123456789";
  EXPECT_EQ(xp::crc32c(digits.data(), digits.size()), 0xE3069283u);
  const std::vector<unsigned char> zeros(32, 0x00), ones(32, 0xFF);
  EXPECT_EQ(xp::crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(xp::crc32c(ones.data(), ones.size()), 0x62A8AB43u);
  std::vector<unsigned char> ascending(32);
  for (int i = 0; i < 32; ++i) ascending[i] = static_cast<unsigned char>(i);
  EXPECT_EQ(xp::crc32c(ascending.data(), ascending.size()), 0x46DD794Eu);
  EXPECT_EQ(xp::crc32c(nullptr, 0), 0u);
}

TEST(Crc32c, MaskRotatesAndOffsets) {
  // TFRecord's mask: rotate right by 15, add 0xa282ead8 (mod 2^32).
  const std::string digits = "123456789";
  const uint32_t crc = 0xE3069283u;
  EXPECT_EQ(xp::masked_crc32c(digits.data(), digits.size()), ((crc >> 15) | (crc << 17)) + 0xA282EAD8u);
}
