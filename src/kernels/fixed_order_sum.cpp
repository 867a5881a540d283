#include "kernels/fixed_order_sum.hpp"

namespace xp {
namespace {

struct Scratch {
  Kokkos::View<double*> buffer;  // doubles: 8-byte alignment for every element type the reductions use
  bool release_hooked = false;
};

Scratch& scratch() {
  static Scratch instance;
  return instance;
}

}  // namespace

void* reduction_scratch(std::size_t bytes) {
  Scratch& s = scratch();
  if (!s.release_hooked) {
    // A View alive past Kokkos::finalize is an error: release the scratch there (and hook again after a
    // re-initialisation).
    Kokkos::push_finalize_hook([] {
      scratch().buffer = Kokkos::View<double*>();
      scratch().release_hooked = false;
    });
    s.release_hooked = true;
  }
  const std::size_t doubles = (bytes + sizeof(double) - 1) / sizeof(double);
  if (s.buffer.extent(0) < doubles) {
    s.buffer = Kokkos::View<double*>();  // free first: the peak is the new size, not both
    s.buffer = Kokkos::View<double*>(Kokkos::view_alloc(Kokkos::WithoutInitializing, "xp::reduction_scratch"), doubles);
  }
  return s.buffer.data();
}

}  // namespace xp
