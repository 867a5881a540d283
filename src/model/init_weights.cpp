#include "xp/model/init_weights.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <thread>

#include "xp/core/types.hpp"

namespace xp {
namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

#if !defined(XP_ENABLE_CUDA)
// Elements [begin, end) of the flat buffer, tensor by tensor.
void fill_range(float* params, const std::vector<TensorInit>& plan, uint64_t seed, int64_t begin, int64_t end) {
  for (const TensorInit& tensor : plan) {
    const int64_t first = std::max(begin, tensor.offset), last = std::min(end, tensor.offset + tensor.size);
    for (int64_t i = first; i < last; ++i) params[i] = tensor(seed, i - tensor.offset);
  }
}
#endif

}  // namespace

std::vector<TensorInit> plan_initial_weights(const ParameterLayout& layout, int n_layer, double std) {
  const Placement& place = layout.placement();
  const double projection_std = std / std::sqrt(2.0 * n_layer);
  std::vector<TensorInit> plan;
  for (const TensorInfo& tensor : layout.tensors()) {
    TensorInit init;
    init.offset = tensor.offset;
    init.size = tensor.size;
    init.slice = tensor.slice_index(place.tp_rank, place.tp_size);
    if (ends_with(tensor.name, ".bias") || tensor.shape.size() == 1) {
      init.value = ends_with(tensor.name, ".weight") ? 1.0f : 0.0f;  // LayerNorm gain or a bias
    } else {
      const bool projection =
          ends_with(tensor.name, "attn.proj.weight") || ends_with(tensor.name, "mlp.proj.weight");
      init.random = true;
      init.scale = projection ? projection_std : std;
      init.stream = stream_id(tensor.name);
    }
    plan.push_back(init);
  }
  return plan;
}

void init_weights(float* params, const ParameterLayout& layout, int n_layer, uint64_t seed, double std,
                  int threads) {
  const std::vector<TensorInit> plan = plan_initial_weights(layout, n_layer, std);
#if defined(XP_ENABLE_CUDA)
  (void)threads;
  for (const TensorInit& tensor : plan) {
    float* data = params + tensor.offset;
    const TensorInit init = tensor;
    Kokkos::parallel_for("xp::init_weights", Range(0, init.size),
                         KOKKOS_LAMBDA(const int64_t i) { data[i] = init(seed, i); });
  }
  exec_space().fence();
#else
  // Every element is a pure function of its index: any split over threads gives the same bits.
  const int64_t total = layout.total();
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(threads, total / 65536 + 1));
  const int64_t chunk = (total + workers - 1) / workers;
  std::vector<std::thread> pool;
  for (int64_t w = 1; w < workers; ++w)
    pool.emplace_back(fill_range, params, std::cref(plan), seed, w * chunk, std::min(total, (w + 1) * chunk));
  fill_range(params, plan, seed, 0, std::min(total, chunk));
  for (std::thread& thread : pool) thread.join();
#endif
}

}  // namespace xp
