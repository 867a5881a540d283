/* Preloaded (LD_PRELOAD) in front of the real HDF5, it makes the library look like another release to
 * xp_train's start-up check, the way a mismatched libhdf5 on LD_LIBRARY_PATH would. */
int H5get_libversion(unsigned* major, unsigned* minor, unsigned* release) {
  *major = 1;
  *minor = 0;
  *release = 99;
  return 0;
}
