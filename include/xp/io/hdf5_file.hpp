#pragma once
// A small RAII layer over the serial HDF5 C API, the only way this code holds HDF5 identifiers:
// Hdf5Id owns one identifier of any kind (file, group, dataset, dataspace, datatype, attribute,
// property list) and closes it; Hdf5File creates a file and writes whole float, double and int32
// datasets by path ("/params/wte.weight") and scalar attributes; free functions write and read scalar
// attributes of any object.
#include <cstdint>
#include <string>
#include <vector>

#include <hdf5.h>

namespace xp {

class Hdf5Id {
 public:
  Hdf5Id() = default;
  explicit Hdf5Id(hid_t id) : id_(id) {}
  ~Hdf5Id() { close(); }
  Hdf5Id(Hdf5Id&& other) noexcept : id_(other.release()) {}
  Hdf5Id& operator=(Hdf5Id&& other) noexcept;
  Hdf5Id(const Hdf5Id&) = delete;
  Hdf5Id& operator=(const Hdf5Id&) = delete;

  operator hid_t() const { return id_; }  // passes straight into the C API
  bool valid() const { return id_ >= 0; }
  // Closes now with the call the identifier's kind needs; that call's status (0 when none was open).
  herr_t close();

 private:
  hid_t release() {
    const hid_t id = id_;
    id_ = -1;
    return id;
  }
  hid_t id_ = -1;
};

// HDF5 prints its error stack on every failed call; while one of these lives, calls that may fail
// (the reader's, whose callers say what went wrong themselves) print nothing.
class QuietHdf5 {
 public:
  QuietHdf5();
  ~QuietHdf5();
  QuietHdf5(const QuietHdf5&) = delete;
  QuietHdf5& operator=(const QuietHdf5&) = delete;

 private:
  H5E_auto2_t handler_ = nullptr;
  void* data_ = nullptr;
};

// Scalar attributes of a file, group or dataset; writing aborts on failure.
void write_attribute(hid_t object, const std::string& name, int64_t value);
void write_attribute(hid_t object, const std::string& name, double value);
void write_attribute(hid_t object, const std::string& name, const std::string& value);
bool has_attribute(hid_t object, const std::string& name);
// False (and nothing printed) when the attribute is absent or of another kind.
bool read_attribute(hid_t object, const std::string& name, int64_t& value);
bool read_attribute(hid_t object, const std::string& name, std::string& value);

class Hdf5File {
 public:
  explicit Hdf5File(const std::string& path);  // creates (or truncates) the file; aborts with the path on failure

  // Intermediate groups are created as needed.
  void write(const std::string& name, const float* data, const std::vector<int64_t>& shape);
  void write(const std::string& name, const double* data, const std::vector<int64_t>& shape);
  void write(const std::string& name, const int32_t* data, const std::vector<int64_t>& shape);
  // A float dataset of `shape` filled block by block (write_rows): whole rows of its first dimension,
  // so a writer never needs the whole tensor in memory at once.
  Hdf5Id create_float_dataset(const std::string& name, const std::vector<int64_t>& shape);
  void write_rows(hid_t dataset, int64_t first_row, int64_t rows, const float* data);
  void write_attribute(const std::string& name, double value) { xp::write_attribute(file_, name, value); }
  void write_attribute(const std::string& name, int64_t value) { xp::write_attribute(file_, name, value); }
  void write_attribute(const std::string& name, const std::string& value) { xp::write_attribute(file_, name, value); }

  hid_t id() const { return file_; }  // for what this class does not wrap (groups, virtual datasets)
  const std::string& path() const { return path_; }

  // Closes the file now, reporting failure (a full disk often shows only here); the destructor does
  // the same silently for a file that was not closed.
  void close();

 private:
  void write_raw(const std::string& name, hid_t type, const void* data, const std::vector<int64_t>& shape);
  Hdf5Id file_;
  std::string path_;
};

// A link-creation property list that creates missing intermediate groups.
Hdf5Id intermediate_groups();

}  // namespace xp
