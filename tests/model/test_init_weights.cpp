// The initial weights: the parallel fill (host threads on CPU builds, a device kernel on GPU builds)
// must give every element that a plain serial loop over the parameter table gives — bit for bit on
// CPU builds, where bit-identical resume and the layout-equivalence tests depend on it — at tp = 1 and
// on a tp rank's slices, which must also be the matching elements of the whole (tp = 1) tensors.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "xp/core/device.hpp"
#include "xp/core/random.hpp"
#include "xp/core/types.hpp"
#include "xp/model/init_weights.hpp"

namespace xp::test {
namespace {

constexpr uint64_t seed = 20240520;
constexpr double init_std = 0.02;

// Big enough that 3 and 8 threads each get several tensors' worth, split mid-tensor.
ModelConfig init_model() { return {"custom", 2, 4, 128, 32, 300}; }

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The serial loop xp_train had before the fill went parallel, element by element.
std::vector<float> serial_reference(const ParameterLayout& layout, int n_layer) {
  const Placement& place = layout.placement();
  std::vector<float> out(layout.total());
  for (const TensorInfo& tensor : layout.tensors()) {
    float* data = out.data() + tensor.offset;
    if (ends_with(tensor.name, ".bias") || tensor.shape.size() == 1) {
      for (int64_t i = 0; i < tensor.size; ++i) data[i] = ends_with(tensor.name, ".weight") ? 1.0f : 0.0f;
      continue;
    }
    const bool projection = ends_with(tensor.name, "attn.proj.weight") || ends_with(tensor.name, "mlp.proj.weight");
    const double scale = projection ? init_std / std::sqrt(2.0 * n_layer) : init_std;
    for (int64_t i = 0; i < tensor.size; ++i)
      data[i] = static_cast<float>(
          scale * random_normal(seed, stream_id(tensor.name), tensor.full_index(i, place.tp_rank, place.tp_size)));
  }
  return out;
}

std::vector<float> parallel_fill(const ParameterLayout& layout, int n_layer, int threads) {
  FloatBuffer params("params", layout.total());
  init_weights(params.data(), layout, n_layer, seed, init_std, threads);
  auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), params);
  return std::vector<float>(host.data(), host.data() + host.size());
}

// Elements that differ: none on CPU builds; GPU builds round log and cos their own way (within an ulp
// of float here).
void expect_same_weights(const std::vector<float>& actual, const std::vector<float>& expected,
                         const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  int64_t differing = 0, first = -1;
  for (size_t i = 0; i < actual.size(); ++i) {
    const bool same = device_build ? std::fabs(actual[i] - expected[i]) <= 1e-6f * std::fabs(expected[i])
                                   : actual[i] == expected[i];
    if (!same && differing++ == 0) first = static_cast<int64_t>(i);
  }
  EXPECT_EQ(differing, 0) << what << ": first at " << first << ": " << actual[first] << " vs " << expected[first];
}

TEST(InitWeights, ParallelFillEqualsSerialLoopAtTp1) {
  const ModelConfig model = init_model();
  const ParameterLayout layout(model);
  const std::vector<float> expected = serial_reference(layout, model.n_layer);
  for (int threads : {1, 3, 8})
    expect_same_weights(parallel_fill(layout, model.n_layer, threads), expected,
                        std::to_string(threads) + " thread(s)");
}

TEST(InitWeights, TpSlicesEqualSerialLoopAndTheWholeTensors) {
  const ModelConfig model = init_model();
  const ParameterLayout whole(model);
  const std::vector<float> whole_values = parallel_fill(whole, model.n_layer, 3);
  for (int tp_rank : {0, 1}) {
    Placement place;
    place.tp_size = 2;
    place.tp_rank = tp_rank;
    const ParameterLayout layout(model, place);
    const std::vector<float> values = parallel_fill(layout, model.n_layer, 3);
    expect_same_weights(values, serial_reference(layout, model.n_layer), "tp rank " + std::to_string(tp_rank));
    // Every split kind (QKV in 3 parts, MLP up, the projections, the vocabulary) from the whole tensor.
    std::vector<float> from_whole(values.size());
    for (const TensorInfo& tensor : layout.tensors()) {
      const int64_t whole_offset = whole.find(tensor.name).offset;
      for (int64_t i = 0; i < tensor.size; ++i)
        from_whole[tensor.offset + i] = whole_values[whole_offset + tensor.full_index(i, tp_rank, 2)];
    }
    expect_same_weights(values, from_whole, "tp rank " + std::to_string(tp_rank) + " vs the tp=1 tensors");
  }
}

// The fill writes the table and nothing after it (ZeRO-1's padding stays zero).
TEST(InitWeights, LeavesPaddingAlone) {
  const ModelConfig model = init_model();
  const ParameterLayout layout(model);
  FloatBuffer params("params", layout.total() + 5);
  init_weights(params.data(), layout, model.n_layer, seed, init_std, 4);
  auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), params);
  for (int64_t i = layout.total(); i < layout.total() + 5; ++i) EXPECT_EQ(host(i), 0.0f) << i;
}

}  // namespace
}  // namespace xp::test
