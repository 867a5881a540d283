// libFuzzer target: the safetensors reader and writer. Each input is used three ways:
//   1. as a whole file through SafetensorsFile, reading every tensor it accepts;
//   2. as header JSON through parse_safetensors_header (what the file path reaches after its length);
//   3. as a recipe (FuzzedDataProvider) for tensors and metadata that write_safetensors writes and
//      SafetensorsFile must read back bit for bit.
// Refusals are InputErrors; anything else, or a round trip that differs, is a finding.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "xp/core/error.hpp"
#include "xp/io/safetensors.hpp"

namespace {

void read_file(const uint8_t* data, size_t size) {
  const std::string path = xp_fuzz::write_scratch("read.safetensors", data, size);
  try {
    const xp::SafetensorsFile file(path);
    for (const xp::SafetensorsTensor& tensor : file.tensors()) {
      if (file.read_bytes(tensor).size() != size_t(tensor.end - tensor.begin)) __builtin_trap();
      if (tensor.dtype == "F32") file.read_f32(tensor);
    }
  } catch (const xp::InputError&) {
  }
}

void parse_header(const uint8_t* data, size_t size) {
  const std::string json(reinterpret_cast<const char*>(data), size);
  try {
    xp::parse_safetensors_header(json, static_cast<int64_t>(size), "fuzz");
  } catch (const xp::InputError&) {
  }
}

// ASCII text (control characters and quotes included, so JSON escaping is exercised): the writer's
// names come from the model's parameter table, never from arbitrary bytes.
std::string ascii(FuzzedDataProvider& input, size_t max_length) {
  std::string text = input.ConsumeRandomLengthString(max_length);
  for (char& c : text) c = static_cast<char>(static_cast<unsigned char>(c) % 128);
  return text;
}

void round_trip(const uint8_t* data, size_t size) {
  FuzzedDataProvider input(data, size);
  std::map<std::string, std::string> metadata;
  for (int i = input.ConsumeIntegralInRange(0, 2); i > 0; --i) metadata[ascii(input, 12)] = ascii(input, 12);
  std::vector<xp::SafetensorsTensor> tensors;
  std::vector<std::vector<float>> values;
  for (int i = input.ConsumeIntegralInRange(0, 4); i > 0; --i) {
    xp::SafetensorsTensor tensor;
    tensor.name = ascii(input, 16);
    int64_t count = 1;
    for (int d = input.ConsumeIntegralInRange(0, 3); d > 0; --d) {
      tensor.shape.push_back(input.ConsumeIntegralInRange<int64_t>(0, 6));
      count *= tensor.shape.back();
    }
    std::vector<float> tensor_values(count);
    for (float& value : tensor_values) {
      const uint32_t bits = input.ConsumeIntegral<uint32_t>();
      std::memcpy(&value, &bits, sizeof value);
    }
    tensors.push_back(tensor);
    values.push_back(tensor_values);
  }
  const std::string path = xp_fuzz::scratch_dir() + "/round_trip.safetensors";
  try {
    xp::write_safetensors(path, tensors, [&](size_t i) { return values[i]; }, metadata);
  } catch (const xp::InputError&) {
    return;  // a name given twice or reserved: refused before anything is written
  }
  const xp::SafetensorsFile file = [&] {
    try {
      return xp::SafetensorsFile(path);
    } catch (const xp::InputError& error) {  // what the writer wrote must read back: a refusal is a finding
      std::fprintf(stderr, "round trip refused: %s\n", error.what());
      __builtin_trap();
    }
  }();
  if (file.metadata() != metadata || file.tensors().size() != tensors.size()) __builtin_trap();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const xp::SafetensorsTensor* found = file.find(tensors[i].name);
    if (!found || found->dtype != "F32" || found->shape != tensors[i].shape) __builtin_trap();
    const std::vector<float> back = file.read_f32(*found);
    if (back.size() != values[i].size() ||
        (!back.empty() && std::memcmp(back.data(), values[i].data(), back.size() * sizeof(float)) != 0))
      __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  read_file(data, size);
  parse_header(data, size);
  round_trip(data, size);
  return 0;
}
