#include "xp/io/safetensors.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <set>

#include <nlohmann/json.hpp>

#include "xp/core/error.hpp"
#include "xp/io/checkpoint_inspect.hpp"

namespace xp {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian, as this host");

// safetensors' own limit: a longer header is refused before it is read.
constexpr uint64_t max_header_bytes = 100'000'000;

using File = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;

File open_file(const std::string& path, const char* mode) { return File(std::fopen(path.c_str(), mode), std::fclose); }

// Elements of `shape`; -1 when a dimension is negative or the product overflows.
int64_t element_count(const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (int64_t extent : shape) {
    if (extent < 0 || (extent > 0 && count > std::numeric_limits<int64_t>::max() / extent)) return -1;
    count *= extent;
  }
  return count;
}

// A non-negative JSON integer that fits int64, or -1.
int64_t offset_value(const nlohmann::json& value) {
  if (!value.is_number_unsigned()) return -1;
  const uint64_t number = value.get<uint64_t>();
  return number > uint64_t(std::numeric_limits<int64_t>::max()) ? -1 : static_cast<int64_t>(number);
}

SafetensorsTensor parse_entry(const std::string& name, const nlohmann::json& entry, const std::string& where) {
  const std::string what = where + ": tensor '" + name + "'";
  if (!entry.is_object()) throw InputError(what + " is not a JSON object");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!entry.contains(key)) throw InputError(what + " lacks '" + key + "'");
  SafetensorsTensor tensor;
  tensor.name = name;
  const nlohmann::json &dtype = entry["dtype"], &shape = entry["shape"], &offsets = entry["data_offsets"];
  if (!dtype.is_string() || safetensors_dtype_bytes(dtype.get<std::string>()) == 0)
    throw InputError(what + " has an unknown dtype " + dtype.dump());
  tensor.dtype = dtype.get<std::string>();
  if (!shape.is_array()) throw InputError(what + ": shape is not an array");
  for (const nlohmann::json& extent : shape) {
    if (offset_value(extent) < 0) throw InputError(what + ": shape holds " + extent.dump() + ", not a size");
    tensor.shape.push_back(offset_value(extent));
  }
  if (!offsets.is_array() || offsets.size() != 2 || offset_value(offsets[0]) < 0 || offset_value(offsets[1]) < 0)
    throw InputError(what + ": data_offsets " + offsets.dump() + " is not [begin, end]");
  tensor.begin = offset_value(offsets[0]);
  tensor.end = offset_value(offsets[1]);
  const int64_t elements = element_count(tensor.shape), size = safetensors_dtype_bytes(tensor.dtype);
  if (tensor.end < tensor.begin) throw InputError(what + " ends before it begins: " + offsets.dump());
  if (elements < 0 || elements > std::numeric_limits<int64_t>::max() / size ||
      elements * size != tensor.end - tensor.begin)
    throw InputError(what + ": shape " + shape.dump() + " of " + tensor.dtype + " does not fill bytes " +
                     offsets.dump());
  return tensor;
}

}  // namespace

int safetensors_dtype_bytes(const std::string& dtype) {
  static const std::map<std::string, int> sizes = {
      {"BOOL", 1}, {"U8", 1},   {"I8", 1},   {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
      {"BF16", 2}, {"I32", 4},  {"U32", 4},  {"F32", 4},     {"I64", 8},     {"U64", 8}, {"F64", 8}};
  const auto found = sizes.find(dtype);
  return found == sizes.end() ? 0 : found->second;
}

void write_safetensors(const std::string& path, const std::vector<SafetensorsTensor>& tensors,
                       const std::function<std::vector<float>(size_t)>& values,
                       const std::map<std::string, std::string>& metadata) {
  // Insertion order kept: metadata first, then the tensors in the order of their data.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();  // "{}", not "null", when empty
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<int64_t> counts;
  int64_t offset = 0;
  for (const SafetensorsTensor& tensor : tensors) {
    if (tensor.name == "__metadata__" || header.contains(tensor.name))
      throw InputError("'" + path + "': tensor name '" + tensor.name + "' is reserved or given twice");
    const int64_t count = element_count(tensor.shape);
    if (count < 0) throw InputError("'" + path + "': tensor '" + tensor.name + "' has an impossible shape");
    header[tensor.name] = {{"dtype", "F32"}, {"shape", tensor.shape}, {"data_offsets", {offset, offset + 4 * count}}};
    counts.push_back(count);
    offset += 4 * count;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');

  File file = open_file(path, "wb");
  if (!file) throw InputError("cannot create '" + path + "'");
  const uint64_t header_size = text.size();
  bool ok = std::fwrite(&header_size, 8, 1, file.get()) == 1 &&
            std::fwrite(text.data(), 1, text.size(), file.get()) == text.size();
  for (size_t i = 0; ok && i < tensors.size(); ++i) {
    const std::vector<float> data = values(i);
    XP_REQUIRE(int64_t(data.size()) == counts[i], "safetensors: " + std::to_string(data.size()) + " values for '" +
                                                      tensors[i].name + "' of " + std::to_string(counts[i]));
    ok = std::fwrite(data.data(), sizeof(float), data.size(), file.get()) == data.size();
  }
  ok = std::fclose(file.release()) == 0 && ok;
  if (!ok) throw InputError("cannot write '" + path + "'");
}

SafetensorsHeader parse_safetensors_header(const std::string& json, int64_t data_bytes, const std::string& where) {
  // A name given twice would silently keep one of the two: count top-level keys while parsing.
  std::set<std::string> keys;
  std::string repeated;
  const nlohmann::json::parser_callback_t note_keys = [&](int depth, nlohmann::json::parse_event_t event,
                                                          nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::key && depth == 1 && !keys.insert(parsed.get<std::string>()).second)
      repeated = parsed.get<std::string>();
    return true;
  };
  const nlohmann::json root = nlohmann::json::parse(json, note_keys, false);
  if (root.is_discarded()) throw InputError(where + ": the header is not valid JSON");
  if (!root.is_object()) throw InputError(where + ": the header is not a JSON object");
  if (!repeated.empty()) throw InputError(where + ": the header names '" + repeated + "' twice");

  SafetensorsHeader header;
  for (const auto& [name, entry] : root.items()) {
    if (name != "__metadata__") {
      header.tensors.push_back(parse_entry(name, entry, where));
      continue;
    }
    if (!entry.is_object()) throw InputError(where + ": __metadata__ is not a JSON object");
    for (const auto& [key, value] : entry.items()) {
      if (!value.is_string()) throw InputError(where + ": __metadata__ '" + key + "' is not text");
      header.metadata[key] = value.get<std::string>();
    }
  }
  std::sort(header.tensors.begin(), header.tensors.end(),
            [](const SafetensorsTensor& a, const SafetensorsTensor& b) {
              return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
            });
  int64_t covered = 0;
  for (const SafetensorsTensor& tensor : header.tensors) {
    if (tensor.begin != covered)
      throw InputError(where + ": tensor '" + tensor.name + "' starts at byte " + std::to_string(tensor.begin) +
                       " of the data, not at " + std::to_string(covered) + " (a hole or an overlap)");
    covered = tensor.end;
  }
  if (covered != data_bytes)
    throw InputError(where + ": the tensors cover " + std::to_string(covered) + " bytes of data, the file holds " +
                     std::to_string(data_bytes));
  return header;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  std::error_code error;
  const auto file_bytes = std::filesystem::file_size(path, error);
  File file = open_file(path, "rb");
  if (error || !file) throw InputError("cannot open safetensors file '" + path + "'");
  uint64_t length = 0;
  if (file_bytes < 8 || std::fread(&length, 8, 1, file.get()) != 1)
    throw InputError("'" + path + "' is too short for a safetensors file");
  if (length > max_header_bytes || length > file_bytes - 8)
    throw InputError("'" + path + "': header length " + std::to_string(length) + " does not fit the file of " +
                     std::to_string(file_bytes) + " bytes");
  std::string text(length, '\0');
  if (std::fread(text.data(), 1, length, file.get()) != length) throw InputError("cannot read '" + path + "'");
  data_start_ = static_cast<int64_t>(8 + length);
  header_ = parse_safetensors_header(text, static_cast<int64_t>(file_bytes) - data_start_, "'" + path + "'");
}

const SafetensorsTensor* SafetensorsFile::find(const std::string& name) const {
  for (const SafetensorsTensor& tensor : header_.tensors)
    if (tensor.name == name) return &tensor;
  return nullptr;
}

std::vector<unsigned char> SafetensorsFile::read_bytes(const SafetensorsTensor& tensor) const {
  std::vector<unsigned char> bytes(tensor.end - tensor.begin);
  File file = open_file(path_, "rb");
  const bool ok = file && fseeko(file.get(), off_t(data_start_ + tensor.begin), SEEK_SET) == 0 &&
                  std::fread(bytes.data(), 1, bytes.size(), file.get()) == bytes.size();
  if (!ok) throw InputError("cannot read tensor '" + tensor.name + "' of '" + path_ + "'");
  return bytes;
}

std::vector<float> SafetensorsFile::read_f32(const SafetensorsTensor& tensor) const {
  if (tensor.dtype != "F32")
    throw InputError("tensor '" + tensor.name + "' of '" + path_ + "' is " + tensor.dtype + ", not F32");
  const std::vector<unsigned char> bytes = read_bytes(tensor);
  std::vector<float> values(bytes.size() / sizeof(float));
  if (!bytes.empty()) std::memcpy(values.data(), bytes.data(), bytes.size());
  return values;
}

std::string gpt2_hf_name(const std::string& ours, bool& transposed) {
  // Our block tensor names → Hugging Face's, and whether the weight is stored transposed there
  // (GPT-2's Conv1D keeps (in, out); we keep PyTorch Linear's (out, in)).
  const struct {
    const char *ours, *theirs;
    bool transpose;
  } renames[] = {{"attn.qkv.weight", "attn.c_attn.weight", true}, {"attn.qkv.bias", "attn.c_attn.bias", false},
                 {"attn.proj.weight", "attn.c_proj.weight", true}, {"attn.proj.bias", "attn.c_proj.bias", false},
                 {"mlp.fc.weight", "mlp.c_fc.weight", true},       {"mlp.fc.bias", "mlp.c_fc.bias", false},
                 {"mlp.proj.weight", "mlp.c_proj.weight", true},   {"mlp.proj.bias", "mlp.c_proj.bias", false}};
  transposed = false;
  for (const auto& rename : renames) {
    const std::string suffix = rename.ours;
    if (ours.size() > suffix.size() && ours.compare(ours.size() - suffix.size(), suffix.size(), suffix) == 0) {
      transposed = rename.transpose;
      return ours.substr(0, ours.size() - suffix.size()) + rename.theirs;
    }
  }
  return ours;
}

int write_gpt2_safetensors(const CheckpointIndex& index, const std::string& path) {
  const int vocab_size = index.model().vocab_size;
  std::vector<SafetensorsTensor> outputs;
  std::vector<bool> transposed;
  for (const IndexTensor& tensor : index.tensors()) {
    SafetensorsTensor out;
    bool transpose = false;
    out.name = "transformer." + gpt2_hf_name(tensor.name, transpose);
    out.shape = tensor.shape;
    if (tensor.name == "wte.weight") out.shape[0] = vocab_size;  // drop the padding rows
    if (transpose) std::swap(out.shape[0], out.shape[1]);
    outputs.push_back(out);
    transposed.push_back(transpose);
  }
  write_safetensors(path, outputs, [&](size_t i) {
    std::vector<float> full = index.read(index.tensors()[i]);
    const std::vector<int64_t>& shape = outputs[i].shape;
    if (transposed[i]) {  // (rows, columns) → (columns, rows)
      const int64_t rows = shape[1], columns = shape[0];
      std::vector<float> data(full.size());
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < columns; ++c) data[c * rows + r] = full[r * columns + c];
      return data;
    }
    full.resize(element_count(shape));  // wte: its first vocab_size rows
    return full;
  });
  return static_cast<int>(outputs.size());
}

}  // namespace xp
