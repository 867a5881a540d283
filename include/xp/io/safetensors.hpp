#pragma once
// safetensors, Hugging Face's weights format: an 8-byte little-endian header length N, N bytes of JSON
//   {"__metadata__": {"format": "pt"}, "<name>": {"dtype": "F32", "shape": [768, 2304],
//    "data_offsets": [begin, end]}, ...}
// padded with spaces so the data starts 8-byte aligned, then the data: each tensor's row-major bytes at
// [begin, end) of what follows the header, the tensors back to back without holes.
// The writer streams F32 tensors one by one; the reader checks the whole header against the file size
// before it reads any data. Errors throw InputError naming the file.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace xp {

struct SafetensorsTensor {
  std::string name;
  std::string dtype = "F32";   // BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, I64, U64, F64
  std::vector<int64_t> shape;
  int64_t begin = 0, end = 0;  // bytes, relative to the start of the data
};

// Bytes per element of a safetensors dtype; 0 for a name this code does not know.
int safetensors_dtype_bytes(const std::string& dtype);

// Writes `path`: the header for `tensors` (their names and shapes; dtype F32, offsets assigned in
// order) and `metadata`, then values(i) for each tensor i in order (its elements, row-major).
void write_safetensors(const std::string& path, const std::vector<SafetensorsTensor>& tensors,
                       const std::function<std::vector<float>(size_t)>& values,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// A parsed and checked header: every entry a known dtype whose shape matches its byte range, the
// ranges covering [0, data_bytes) back to back; tensors sorted by offset. `where` names the source in
// errors. Kept apart from the file so that a fuzzer can feed it bytes.
struct SafetensorsHeader {
  std::map<std::string, std::string> metadata;
  std::vector<SafetensorsTensor> tensors;
};
SafetensorsHeader parse_safetensors_header(const std::string& json, int64_t data_bytes, const std::string& where);

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // reads and checks the header

  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const std::vector<SafetensorsTensor>& tensors() const { return header_.tensors; }  // in data order
  const SafetensorsTensor* find(const std::string& name) const;                       // null when absent

  std::vector<unsigned char> read_bytes(const SafetensorsTensor& tensor) const;
  std::vector<float> read_f32(const SafetensorsTensor& tensor) const;  // throws unless its dtype is F32

 private:
  std::string path_;
  int64_t data_start_ = 0;  // 8 + header length
  SafetensorsHeader header_;
};

// Hugging Face's GPT-2 name of our tensor `ours` ("h.0.attn.qkv.weight" → "h.0.attn.c_attn.weight",
// without the "transformer." prefix); `transposed` says whether it is stored (in, out) there (Conv1D).
// Export and import (io/gpt2_import.hpp) share it.
std::string gpt2_hf_name(const std::string& ours, bool& transposed);

class CheckpointIndex;
// Writes the model weights of a checkpoint as Hugging Face GPT-2 (GPT2LMHeadModel names, Conv1D
// (in, out) layouts, wte cut to vocab_size rows, no lm_head: it is tied). Returns the tensor count.
int write_gpt2_safetensors(const CheckpointIndex& index, const std::string& path);

}  // namespace xp
