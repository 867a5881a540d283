#include "xp/train/tensorboard.hpp"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "tensorboard_event.pb.h"
#include "xp/core/error.hpp"

namespace xp {
namespace {

constexpr int32_t kDataTypeString = 7;  // TensorFlow's DataType DT_STRING

// Byte-at-a-time table for the reflected Castagnoli polynomial.
std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t byte = 0; byte < 256; ++byte) {
    uint32_t crc = byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (crc & 1u ? 0x82F63B78u : 0u);
    table[byte] = crc;
  }
  return table;
}

double seconds_since_epoch() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char name[256] = "";
  if (gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

}  // namespace

uint32_t crc32c(const void* data, std::size_t size) {
  static const std::array<uint32_t, 256> table = make_crc32c_table();
  const auto* bytes = static_cast<const unsigned char*>(data);
  uint32_t crc = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < size; ++i) crc = (crc >> 8) ^ table[(crc ^ bytes[i]) & 0xFFu];
  return crc ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(const void* data, std::size_t size) {
  const uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u;
}

TensorBoardWriter::TensorBoardWriter(const std::string& run_dir) {
  path_ = run_dir + "/events.out.tfevents." + std::to_string(static_cast<long long>(seconds_since_epoch())) + "." +
          host_name() + "." + std::to_string(getpid());
  file_ = std::fopen(path_.c_str(), "wb");
  XP_REQUIRE(file_, "cannot write the TensorBoard event file '" + path_ + "': " + std::strerror(errno));
  tensorboard::Event event;
  event.set_wall_time(seconds_since_epoch());
  event.set_file_version("brain.Event:2");
  write_record(event.SerializeAsString());
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_) std::fclose(file_);
}

void TensorBoardWriter::scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values) {
  tensorboard::Event event;
  event.set_wall_time(seconds_since_epoch());
  event.set_step(step);
  for (const auto& [tag, value] : values) {
    tensorboard::Summary::Value* entry = event.mutable_summary()->add_value();
    entry->set_tag(tag);
    entry->set_simple_value(static_cast<float>(value));
  }
  write_record(event.SerializeAsString());
}

void TensorBoardWriter::text(int64_t step, const std::string& tag, const std::string& markdown) {
  tensorboard::Event event;
  event.set_wall_time(seconds_since_epoch());
  event.set_step(step);
  tensorboard::Summary::Value* entry = event.mutable_summary()->add_value();
  entry->set_tag(tag);
  entry->mutable_metadata()->mutable_plugin_data()->set_plugin_name("text");
  tensorboard::TensorProto* tensor = entry->mutable_tensor();
  tensor->set_dtype(kDataTypeString);
  tensor->mutable_tensor_shape();  // present and without dims: a scalar string
  tensor->add_string_val(markdown);
  write_record(event.SerializeAsString());
}

void TensorBoardWriter::write_record(const std::string& data) {
  // TFRecord: uint64 length, masked CRC of those 8 bytes, data, masked CRC of the data (little-endian).
  unsigned char header[12];
  const uint64_t length = data.size();
  for (int i = 0; i < 8; ++i) header[i] = static_cast<unsigned char>(length >> (8 * i));
  const uint32_t length_crc = masked_crc32c(header, 8);
  const uint32_t data_crc = masked_crc32c(data.data(), data.size());
  unsigned char footer[4];
  for (int i = 0; i < 4; ++i) {
    header[8 + i] = static_cast<unsigned char>(length_crc >> (8 * i));
    footer[i] = static_cast<unsigned char>(data_crc >> (8 * i));
  }
  const bool ok = std::fwrite(header, 1, sizeof header, file_) == sizeof header &&
                  std::fwrite(data.data(), 1, data.size(), file_) == data.size() &&
                  std::fwrite(footer, 1, sizeof footer, file_) == sizeof footer && std::fflush(file_) == 0;
  XP_REQUIRE(ok, "cannot write the TensorBoard event file '" + path_ + "': " + std::strerror(errno));
}

}  // namespace xp
