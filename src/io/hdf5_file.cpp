#include "xp/io/hdf5_file.hpp"

#include <algorithm>

#include "xp/core/error.hpp"

namespace xp {

Hdf5Id& Hdf5Id::operator=(Hdf5Id&& other) noexcept {
  if (this != &other) {
    close();
    id_ = other.release();
  }
  return *this;
}

herr_t Hdf5Id::close() {
  if (id_ < 0) return 0;
  const hid_t id = release();
  switch (H5Iget_type(id)) {
    case H5I_FILE: return H5Fclose(id);
    case H5I_GROUP: return H5Gclose(id);
    case H5I_DATASET: return H5Dclose(id);
    case H5I_DATASPACE: return H5Sclose(id);
    case H5I_DATATYPE: return H5Tclose(id);
    case H5I_ATTR: return H5Aclose(id);
    case H5I_GENPROP_LST: return H5Pclose(id);
    default: return H5Idec_ref(id) < 0 ? -1 : 0;
  }
}

QuietHdf5::QuietHdf5() {
  H5Eget_auto2(H5E_DEFAULT, &handler_, &data_);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

QuietHdf5::~QuietHdf5() { H5Eset_auto2(H5E_DEFAULT, handler_, data_); }

namespace {

void write_scalar(hid_t object, const std::string& name, hid_t type, const void* value) {
  const Hdf5Id space(XP_HDF5_CHECK(H5Screate(H5S_SCALAR)));
  const Hdf5Id attribute(XP_HDF5_CHECK(H5Acreate2(object, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT)));
  XP_HDF5_CHECK(H5Awrite(attribute, type, value));
}

Hdf5Id open_attribute(hid_t object, const std::string& name) {
  QuietHdf5 quiet;
  return Hdf5Id(H5Aexists(object, name.c_str()) > 0 ? H5Aopen(object, name.c_str(), H5P_DEFAULT) : -1);
}

}  // namespace

void write_attribute(hid_t object, const std::string& name, int64_t value) {
  write_scalar(object, name, H5T_NATIVE_INT64, &value);
}

void write_attribute(hid_t object, const std::string& name, double value) {
  write_scalar(object, name, H5T_NATIVE_DOUBLE, &value);
}

void write_attribute(hid_t object, const std::string& name, const std::string& value) {
  const Hdf5Id type(XP_HDF5_CHECK(H5Tcopy(H5T_C_S1)));
  XP_HDF5_CHECK(H5Tset_size(type, std::max<size_t>(1, value.size())));
  write_scalar(object, name, type, value.c_str());
}

bool has_attribute(hid_t object, const std::string& name) {
  QuietHdf5 quiet;
  return H5Aexists(object, name.c_str()) > 0;
}

bool read_attribute(hid_t object, const std::string& name, int64_t& value) {
  const Hdf5Id attribute = open_attribute(object, name);
  if (!attribute.valid()) return false;
  QuietHdf5 quiet;
  const Hdf5Id type(H5Aget_type(attribute));
  return type.valid() && H5Tget_class(type) == H5T_INTEGER && H5Aread(attribute, H5T_NATIVE_INT64, &value) >= 0;
}

bool read_attribute(hid_t object, const std::string& name, std::string& value) {
  const Hdf5Id attribute = open_attribute(object, name);
  if (!attribute.valid()) return false;
  QuietHdf5 quiet;
  const Hdf5Id type(H5Aget_type(attribute));
  if (!type.valid() || H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) != 0) return false;
  std::string text(H5Tget_size(type), '\0');
  if (H5Aread(attribute, type, text.data()) < 0) return false;
  value = text.substr(0, text.find('\0'));
  return true;
}

Hdf5Id intermediate_groups() {
  Hdf5Id links(XP_HDF5_CHECK(H5Pcreate(H5P_LINK_CREATE)));
  XP_HDF5_CHECK(H5Pset_create_intermediate_group(links, 1));
  return links;
}

Hdf5File::Hdf5File(const std::string& path)
    : file_(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)), path_(path) {
  XP_REQUIRE(file_.valid(), "cannot create HDF5 file '" + path + "'");
}

void Hdf5File::close() {
  XP_REQUIRE(file_.close() >= 0, "cannot finish writing HDF5 file '" + path_ + "' (disk full?)");
}

void Hdf5File::write_raw(const std::string& name, hid_t type, const void* data, const std::vector<int64_t>& shape) {
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  const Hdf5Id links = intermediate_groups();
  const Hdf5Id space(XP_HDF5_CHECK(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr)));
  const Hdf5Id dataset(H5Dcreate2(file_, name.c_str(), type, space, links, H5P_DEFAULT, H5P_DEFAULT));
  XP_REQUIRE(dataset.valid(), "cannot create dataset '" + name + "' in '" + path_ + "'");
  XP_REQUIRE(H5Dwrite(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0,
             "cannot write dataset '" + name + "' in '" + path_ + "'");
}

Hdf5Id Hdf5File::create_float_dataset(const std::string& name, const std::vector<int64_t>& shape) {
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  const Hdf5Id links = intermediate_groups();
  const Hdf5Id space(XP_HDF5_CHECK(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr)));
  Hdf5Id dataset(H5Dcreate2(file_, name.c_str(), H5T_NATIVE_FLOAT, space, links, H5P_DEFAULT, H5P_DEFAULT));
  XP_REQUIRE(dataset.valid(), "cannot create dataset '" + name + "' in '" + path_ + "'");
  return dataset;
}

void Hdf5File::write_rows(hid_t dataset, int64_t first_row, int64_t rows, const float* data) {
  const Hdf5Id file_space(XP_HDF5_CHECK(H5Dget_space(dataset)));
  const int rank = H5Sget_simple_extent_ndims(file_space);
  hsize_t dims[2] = {1, 1};
  XP_REQUIRE(rank == 1 || rank == 2, "dataset of rank " + std::to_string(rank) + " in '" + path_ + "'");
  H5Sget_simple_extent_dims(file_space, dims, nullptr);
  const hsize_t start[2] = {hsize_t(first_row), 0}, count[2] = {hsize_t(rows), dims[1]};
  XP_HDF5_CHECK(H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start, nullptr, count, nullptr));
  const hsize_t values = count[0] * (rank == 2 ? count[1] : 1);
  const Hdf5Id memory_space(XP_HDF5_CHECK(H5Screate_simple(1, &values, nullptr)));
  XP_REQUIRE(H5Dwrite(dataset, H5T_NATIVE_FLOAT, memory_space, file_space, H5P_DEFAULT, data) >= 0,
             "cannot write rows of a dataset in '" + path_ + "'");
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

}  // namespace xp
