// safetensors: what the writer writes the reader reads back bit for bit, and every kind of broken
// header (length, JSON, dtype, shape against bytes, holes, overlaps, names twice, data past the end)
// is refused with an InputError naming the file and the problem.
#include "xp/io/safetensors.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include "support.hpp"
#include "xp/core/random.hpp"

namespace xp::test {
namespace {

// Writes the safetensors file `name` with header `json` (its length first, as the format wants) and
// `data_bytes` bytes of data.
std::string raw_file(const ScratchDir& dir, const std::string& name, const std::string& json, size_t data_bytes) {
  const std::string path = dir.file(name);
  std::ofstream out(path, std::ios::binary);
  const uint64_t length = json.size();
  out.write(reinterpret_cast<const char*>(&length), 8);
  out << json << std::string(data_bytes, '\0');
  return path;
}

std::string refusal(const std::string& path) {
  return input_error([&] { SafetensorsFile file(path); });
}

TEST(Safetensors, WhatIsWrittenReadsBackBitwise) {
  ScratchDir dir("xp_safetensors");
  std::vector<SafetensorsTensor> tensors(4);
  tensors[0].name = "h.0.weight", tensors[0].shape = {3, 5};
  tensors[1].name = "bias", tensors[1].shape = {7};
  tensors[2].name = "empty", tensors[2].shape = {0, 4};
  tensors[3].name = "cube", tensors[3].shape = {2, 3, 4};
  // Random bit patterns, and the values a text round trip would lose: -0, a denormal, inf, a NaN payload.
  std::vector<std::vector<float>> values;
  for (size_t t = 0; t < tensors.size(); ++t) {
    int64_t count = 1;
    for (int64_t extent : tensors[t].shape) count *= extent;
    std::vector<float> v(count);
    for (int64_t i = 0; i < count; ++i) {
      const uint32_t bits = static_cast<uint32_t>(random_bits(7, t, i));
      std::memcpy(&v[i], &bits, 4);
    }
    values.push_back(v);
  }
  const uint32_t nan_payload = 0x7fc01234u;
  std::memcpy(&values[1][0], &nan_payload, 4);
  values[1][1] = -0.0f;
  values[1][2] = std::numeric_limits<float>::denorm_min();
  values[1][3] = -std::numeric_limits<float>::infinity();

  const std::string path = dir.file("round.safetensors");
  write_safetensors(path, tensors, [&](size_t i) { return values[i]; }, {{"format", "pt"}, {"note", "x\"y"}});
  const SafetensorsFile file(path);
  EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"note", "x\"y"}}));
  ASSERT_EQ(file.tensors().size(), tensors.size());
  for (size_t t = 0; t < tensors.size(); ++t) {
    const SafetensorsTensor* read = file.find(tensors[t].name);
    ASSERT_NE(read, nullptr) << tensors[t].name;
    EXPECT_EQ(read->dtype, "F32");
    EXPECT_EQ(read->shape, tensors[t].shape);
    EXPECT_EQ(read->end - read->begin, int64_t(values[t].size() * 4));
    const std::vector<float> back = file.read_f32(*read);
    ASSERT_EQ(back.size(), values[t].size());
    EXPECT_EQ(std::memcmp(back.data(), values[t].data(), back.size() * 4), 0) << tensors[t].name << " changed";
  }
  EXPECT_EQ(file.find("absent"), nullptr);
  // The data starts 8-byte aligned, right after the header, and the tensors fill it in order.
  EXPECT_EQ(file.tensors().front().begin, 0);
  std::ifstream in(path, std::ios::binary);
  uint64_t length = 0;
  in.read(reinterpret_cast<char*>(&length), 8);
  EXPECT_EQ(length % 8, 0u);
  EXPECT_EQ(8 + length + file.tensors().back().end, std::filesystem::file_size(path));
}

TEST(Safetensors, OtherDtypesAreListedButNotReadAsFloats) {
  ScratchDir dir("xp_safetensors");
  const std::string path = raw_file(
      dir, "bf16.safetensors",
      R"({"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},)"
      R"("b":{"dtype":"I64","shape":[1],"data_offsets":[12,20]}})",
      20);
  const SafetensorsFile file(path);
  ASSERT_EQ(file.tensors().size(), 2u);
  EXPECT_EQ(file.tensors()[0].dtype, "BF16");
  EXPECT_EQ(file.read_bytes(file.tensors()[1]).size(), 8u);
  EXPECT_NE(input_error([&] { file.read_f32(file.tensors()[0]); }).find("is BF16, not F32"), std::string::npos);
}

TEST(Safetensors, BrokenHeadersAreRefused) {
  ScratchDir dir("xp_safetensors");
  const std::string f32 = R"("dtype":"F32","shape":[2])";
  const struct {
    const char* name;
    std::string json;
    size_t data_bytes;
    const char* message;
  } cases[] = {
      {"not_json", "{\"a\":", 8, "is not valid JSON"},
      {"array", "[1,2]", 0, "is not a JSON object"},
      {"dtype", R"({"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", 8, "unknown dtype \"F33\""},
      {"no_shape", R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", 8, "lacks 'shape'"},
      {"negative", R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8, "not a size"},
      {"mismatch", "{\"a\":{" + f32 + ",\"data_offsets\":[0,12]}}", 12, "does not fill bytes [0,12]"},
      {"backwards", "{\"a\":{" + f32 + ",\"data_offsets\":[8,0]}}", 8, "ends before it begins"},
      {"overflow", R"({"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8,
       "does not fill bytes"},
      {"hole", "{\"a\":{" + f32 + ",\"data_offsets\":[0,8]},\"b\":{" + f32 + ",\"data_offsets\":[12,20]}}", 20,
       "starts at byte 12 of the data, not at 8"},
      {"overlap", "{\"a\":{" + f32 + ",\"data_offsets\":[0,8]},\"b\":{" + f32 + ",\"data_offsets\":[4,12]}}", 12,
       "starts at byte 4 of the data, not at 8"},
      {"past_end", "{\"a\":{" + f32 + ",\"data_offsets\":[0,8]}}", 4, "cover 8 bytes of data, the file holds 4"},
      {"extra_data", "{\"a\":{" + f32 + ",\"data_offsets\":[0,8]}}", 16, "cover 8 bytes of data, the file holds 16"},
      {"twice", "{\"a\":{" + f32 + ",\"data_offsets\":[0,8]},\"a\":{" + f32 + ",\"data_offsets\":[8,16]}}", 16,
       "names 'a' twice"},
      {"metadata", R"({"__metadata__":{"format":1}})", 0, "__metadata__ 'format' is not text"},
  };
  for (const auto& bad : cases) {
    const std::string path = raw_file(dir, std::string(bad.name) + ".safetensors", bad.json, bad.data_bytes);
    const std::string message = refusal(path);
    EXPECT_NE(message.find(path), std::string::npos) << bad.name << ": " << message;
    EXPECT_NE(message.find(bad.message), std::string::npos) << bad.name << ": " << message;
  }

  // The length itself: too short a file, and a header longer than the file.
  const std::string short_file = dir.write("short.safetensors", "1234");
  EXPECT_NE(refusal(short_file).find("too short"), std::string::npos);
  const std::string long_header = dir.file("long.safetensors");
  {
    std::ofstream out(long_header, std::ios::binary);
    const uint64_t length = 1000;
    out.write(reinterpret_cast<const char*>(&length), 8);
    out << "{}";
  }
  EXPECT_NE(refusal(long_header).find("header length 1000 does not fit the file of 10 bytes"), std::string::npos);
}

}  // namespace
}  // namespace xp::test
