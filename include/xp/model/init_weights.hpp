#pragma once
// GPT-2's initial weights: normal(0, std) matrices, the residual projections' std scaled by
// 1/sqrt(2·n_layer), zero biases, unit LayerNorm gains. Each element depends only on (seed, tensor name,
// index in the whole tensor), so every layout and every thread count starts from the same bits; the GPU
// build fills its weights on the device, equal up to the device's own rounding of log and cos.
#include <cstdint>
#include <vector>

#include <Kokkos_Macros.hpp>

#include "xp/core/random.hpp"
#include "xp/model/layout.hpp"

namespace xp {

// How one tensor of a rank's parameter table starts, as plain numbers a device kernel can take.
struct TensorInit {
  int64_t offset = 0, size = 0;  // into the flat parameter buffer, in floats
  bool random = false;           // normal(0, scale); else every element is `value`
  float value = 0.0f;
  double scale = 0.0;
  uint64_t stream = 0;           // stream_id(name)
  SliceIndex slice;              // this rank's slice within the whole tensor

  // Element `local` of the slice.
  KOKKOS_INLINE_FUNCTION float operator()(uint64_t seed, int64_t local) const {
    return random ? static_cast<float>(scale * random_normal(seed, stream, slice(local))) : value;
  }
};

// One entry per tensor of `layout`, in its order.
std::vector<TensorInit> plan_initial_weights(const ParameterLayout& layout, int n_layer, double std);

// Writes every tensor of `layout` into `params` (device memory on GPU builds, where a kernel fills it;
// on CPU builds `threads` host threads split the buffer). Padding after the table is left as it is.
void init_weights(float* params, const ParameterLayout& layout, int n_layer, uint64_t seed, double std,
                  int threads);

}  // namespace xp
