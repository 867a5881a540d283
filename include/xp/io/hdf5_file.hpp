#pragma once
// A small RAII layer over the serial HDF5 C API: create or open a file, write whole float, double and
// int32 datasets by path ("/params/wte.weight"), and scalar attributes on the root.
#include <cstdint>
#include <string>
#include <vector>

#include <hdf5.h>

namespace xp {

class Hdf5File {
 public:
  enum class Mode { Read, Create };
  Hdf5File(const std::string& path, Mode mode);  // aborts with the path on failure
  ~Hdf5File();
  Hdf5File(const Hdf5File&) = delete;
  Hdf5File& operator=(const Hdf5File&) = delete;

  // Intermediate groups are created as needed.
  void write(const std::string& name, const float* data, const std::vector<int64_t>& shape);
  void write(const std::string& name, const double* data, const std::vector<int64_t>& shape);
  void write(const std::string& name, const int32_t* data, const std::vector<int64_t>& shape);
  void write_attribute(const std::string& name, double value);
  void write_attribute(const std::string& name, int64_t value);

  // Closes the file now, reporting failure (a full disk often shows only here); the destructor does
  // the same silently for a file that was not closed.
  void close();

 private:
  void write_raw(const std::string& name, hid_t type, const void* data, const std::vector<int64_t>& shape);
  hid_t file_ = -1;
  std::string path_;
};

}  // namespace xp
