#pragma once
// Device-callable math that compiles against Kokkos 3.4 (functions in Kokkos::Experimental) and
// Kokkos 4.x (functions in Kokkos::).
#include <Kokkos_Core.hpp>

namespace xp::math {
#if KOKKOS_VERSION >= 30700
using Kokkos::cos;
using Kokkos::exp;
using Kokkos::log;
using Kokkos::sqrt;
using Kokkos::tanh;
#else
using Kokkos::Experimental::cos;
using Kokkos::Experimental::exp;
using Kokkos::Experimental::log;
using Kokkos::Experimental::sqrt;
using Kokkos::Experimental::tanh;
#endif
}  // namespace xp::math
