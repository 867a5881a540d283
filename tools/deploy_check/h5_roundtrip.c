/* Deployment check (tools/check_gpu_bundle.sh): built against the bundle's HDF5 headers and library, run in a
 * clean root. Writes a dataset of known doubles, reopens the file, reads it back and compares every value;
 * prints the library version, which the check compares with the headers'. Exit 0 only when all match. */
#include <hdf5.h>
#include <stdio.h>

enum { count = 1000 };

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: h5_roundtrip FILE.h5\n");
    return 2;
  }
  double written[count], read_back[count];
  for (int i = 0; i < count; ++i) written[i] = 0.5 * i - 7.25;
  hsize_t dims[1] = {count};
  hid_t file = H5Fcreate(argv[1], H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hid_t space = H5Screate_simple(1, dims, NULL);
  hid_t set = H5Dcreate2(file, "values", H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0 || space < 0 || set < 0 ||
      H5Dwrite(set, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, written) < 0) return 1;
  H5Dclose(set);
  H5Sclose(space);
  H5Fclose(file);

  file = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
  set = file < 0 ? -1 : H5Dopen2(file, "values", H5P_DEFAULT);
  if (set < 0 || H5Dread(set, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, read_back) < 0) return 1;
  H5Dclose(set);
  H5Fclose(file);
  int equal = 0;
  for (int i = 0; i < count; ++i) equal += read_back[i] == written[i];
  unsigned major = 0, minor = 0, release = 0;
  H5get_libversion(&major, &minor, &release);
  printf("read back %d of %d values; library %u.%u.%u, headers %d.%d.%d\n", equal, count, major, minor, release,
         H5_VERS_MAJOR, H5_VERS_MINOR, H5_VERS_RELEASE);
  return equal == count ? 0 : 1;
}
