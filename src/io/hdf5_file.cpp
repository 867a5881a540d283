#include "xp/io/hdf5_file.hpp"

#include "xp/core/error.hpp"

namespace xp {

Hdf5File::Hdf5File(const std::string& path, Mode mode) : path_(path) {
  file_ = mode == Mode::Create ? H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)
                               : H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  XP_REQUIRE(file_ >= 0, "cannot " + std::string(mode == Mode::Create ? "create" : "open") + " HDF5 file '" +
                             path + "'");
}

Hdf5File::~Hdf5File() {
  if (file_ >= 0) H5Fclose(file_);
}

void Hdf5File::close() {
  const herr_t status = H5Fclose(file_);
  file_ = -1;
  XP_REQUIRE(status >= 0, "cannot finish writing HDF5 file '" + path_ + "' (disk full?)");
}

void Hdf5File::write_raw(const std::string& name, hid_t type, const void* data, const std::vector<int64_t>& shape) {
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  hid_t links = XP_HDF5_CHECK(H5Pcreate(H5P_LINK_CREATE));
  XP_HDF5_CHECK(H5Pset_create_intermediate_group(links, 1));
  hid_t space = XP_HDF5_CHECK(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  hid_t dataset = H5Dcreate2(file_, name.c_str(), type, space, links, H5P_DEFAULT, H5P_DEFAULT);
  XP_REQUIRE(dataset >= 0, "cannot create dataset '" + name + "' in '" + path_ + "'");
  XP_REQUIRE(H5Dwrite(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0,
             "cannot write dataset '" + name + "' in '" + path_ + "'");
  H5Dclose(dataset);
  H5Sclose(space);
  H5Pclose(links);
}

void Hdf5File::write(const std::string& name, const float* data, const std::vector<int64_t>& shape) {
  write_raw(name, H5T_NATIVE_FLOAT, data, shape);
}
void Hdf5File::write(const std::string& name, const double* data, const std::vector<int64_t>& shape) {
  write_raw(name, H5T_NATIVE_DOUBLE, data, shape);
}
void Hdf5File::write(const std::string& name, const int32_t* data, const std::vector<int64_t>& shape) {
  write_raw(name, H5T_NATIVE_INT32, data, shape);
}

void Hdf5File::write_attribute(const std::string& name, double value) {
  hid_t space = XP_HDF5_CHECK(H5Screate(H5S_SCALAR));
  hid_t attribute = XP_HDF5_CHECK(H5Acreate2(file_, name.c_str(), H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT));
  XP_HDF5_CHECK(H5Awrite(attribute, H5T_NATIVE_DOUBLE, &value));
  H5Aclose(attribute);
  H5Sclose(space);
}

void Hdf5File::write_attribute(const std::string& name, int64_t value) {
  hid_t space = XP_HDF5_CHECK(H5Screate(H5S_SCALAR));
  hid_t attribute = XP_HDF5_CHECK(H5Acreate2(file_, name.c_str(), H5T_NATIVE_INT64, space, H5P_DEFAULT, H5P_DEFAULT));
  XP_HDF5_CHECK(H5Awrite(attribute, H5T_NATIVE_INT64, &value));
  H5Aclose(attribute);
  H5Sclose(space);
}

}  // namespace xp
