// The fused multi-tensor AdamW kernel's decomposition (kernels/cuda/adamw_math.hpp), run on the host block by
// block and thread by thread, against adamw_update_segments / adamw_update (the Kokkos kernels here; on a GPU
// build whichever path the build runs): after several steps params, m, v and the bf16 compute copy agree bit
// for bit — at segment lengths 1 and 3, lengths and offsets that are not multiples of the 16-byte width,
// n = 1, a thousand segments, decay on and off mixed, a grid small enough that blocks stride, and pointers
// that rule the 16-byte path out.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "kernels/cuda/adamw_math.hpp"
#include "kernels/reference.hpp"
#include "xp/kernels/adamw.hpp"

namespace xp::test {
namespace {

struct Segments {
  std::vector<int64_t> ends;
  std::vector<int8_t> decay;
};

Segments from_lengths(const std::vector<int64_t>& lengths, const std::vector<int8_t>& decay) {
  Segments s;
  int64_t end = 0;
  for (size_t i = 0; i < lengths.size(); ++i) {
    end += lengths[i];
    s.ends.push_back(end);
    s.decay.push_back(decay[i % decay.size()]);
  }
  return s;
}

template <class T>
Kokkos::View<T*> device_copy(const std::vector<T>& host, const std::string& label) {
  Kokkos::View<T*> device(label, host.size());
  auto mirror = Kokkos::create_mirror_view(device);
  for (size_t i = 0; i < host.size(); ++i) mirror(i) = host[i];
  Kokkos::deep_copy(device, mirror);
  return device;
}

AdamWHyper hyper_at(int64_t step) {
  AdamWHyper hyper;
  hyper.lr = 1e-2f;
  hyper.weight_decay = 0.1f;
  hyper.grad_scale = 0.5f;
  hyper.step = step;
  return hyper;
}

adamw::Constants constants_of(const AdamWHyper& h) {
  return {h.beta1, h.beta2, h.eps, h.lr, h.grad_scale,
          static_cast<float>(1.0 / (1.0 - std::pow(double{h.beta1}, double(h.step)))),
          static_cast<float>(1.0 / (1.0 - std::pow(double{h.beta2}, double(h.step))))};
}

uint32_t bits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  return b;
}

// Counts the values whose bits differ (0 expected) and names the first.
int64_t differing(const Floats& got, const Floats& want, const char* what) {
  int64_t count = 0;
  for (size_t i = 0; i < want.size(); ++i)
    if (bits(got[i]) != bits(want[i]) && count++ == 0)
      ADD_FAILURE() << what << "[" << i << "]: emulated " << got[i] << ", kernel " << want[i];
  return count;
}

// `steps` updates of n values (segments null: adamw_update, one decayed tensor) through the emulation with
// (grid, threads) and through the library; `offset` shifts the emulation's params (and compute) off the
// 16-byte grid, which must select the one-element path and change nothing.
void expect_same_bits(int64_t n, const Segments* segments, int grid, int threads, int offset = 0,
                      bool expect_vector = true) {
  SCOPED_TRACE("n=" + std::to_string(n) + " grid=" + std::to_string(grid) + " threads=" +
               std::to_string(threads) + " offset=" + std::to_string(offset));
  const Floats initial = random_floats(n, 11), m0 = random_floats(n, 12, 0.0, 0.1),
               v0 = random_floats(n, 13, 0.0, 0.1);
  // Emulation: host arrays (std::vector's storage is 16-byte aligned), params and compute shifted by offset.
  Floats params_storage(n + offset), m = m0, v = v0;
  std::copy(initial.begin(), initial.end(), params_storage.begin() + offset);
  std::vector<simt::bf16> compute_storage(n + offset);
  float* params = params_storage.data() + offset;

  FloatBuffer params_ref = to_device(initial), m_ref = to_device(m0), v_ref = to_device(v0);
  RealBuffer compute_ref("test::compute", n);
  Kokkos::View<int64_t*> ends_device;
  Kokkos::View<int8_t*> decay_device;
  if (segments) {
    ends_device = device_copy(segments->ends, "test::ends");
    decay_device = device_copy(segments->decay, "test::decay");
  }
  for (int64_t step = 1; step <= 3; ++step) {
    const Floats grads = random_floats(n, 100 + uint32_t(step), -2.0, 2.0);
    const AdamWHyper hyper = hyper_at(step);
    adamw::Arguments a{params, m.data(), v.data(), grads.data(), compute_storage.data() + offset, n,
                       segments ? segments->ends.data() : nullptr, segments ? segments->decay.data() : nullptr,
                       segments ? int(segments->ends.size()) : 1, hyper.weight_decay, constants_of(hyper)};
    ASSERT_EQ(adamw::vector_aligned(a), expect_vector);
    adamw::update_emulated(a, grid, threads);

    const FloatBuffer grads_device = to_device(grads);
    if (segments)
      adamw_update_segments(params_ref.data(), m_ref.data(), v_ref.data(), grads_device.data(), n, ends_device.data(),
                            decay_device.data(), int(segments->ends.size()), hyper, compute_ref.data());
    else
      adamw_update(params_ref.data(), m_ref.data(), v_ref.data(), grads_device.data(), n, hyper, compute_ref.data());
  }
  const Floats want = to_host(params_ref);
  EXPECT_EQ(differing(Floats(params, params + n), want, "params"), 0);
  EXPECT_EQ(differing(m, to_host(m_ref), "m"), 0);
  EXPECT_EQ(differing(v, to_host(v_ref), "v"), 0);
  // The compute copy is the updated weight rounded to bf16 (where Real is bf16, the library's own copy too).
  const Floats compute_lib = to_host(compute_ref);
  int64_t compute_differ = 0;
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t emulated = adamw::bits_of(compute_storage[offset + i]);
    compute_differ += emulated != bf16_bits(want[i]);
    if (!real_is_float) compute_differ += bf16_value(emulated) != compute_lib[i];
  }
  EXPECT_EQ(compute_differ, 0);
}

TEST(FusedAdamW, AwkwardSegmentsGiveTheKernelsBits) {
  // Lengths 1 and 3, nothing a multiple of 4 until late, decay mixed: segment ends fall inside chunks.
  const Segments s = from_lengths({1, 3, 5, 1, 1, 7, 4, 13, 2, 64, 3, 1, 97, 6}, {1, 0, 0, 1, 1});
  const int64_t n = s.ends.back();
  expect_same_bits(n, &s, 1, 32);  // one block: its tiles stride over everything
  expect_same_bits(n, &s, 3, 32);  // several blocks, each taking every third tile
  expect_same_bits(n, &s, adamw::blocks_for(n, 4, 64, 1000), 64);  // one tile per block, the kernel's shape
}

TEST(FusedAdamW, TinyTensorsAndTheScalarTail) {
  for (const int64_t n : {1, 2, 3, 4, 5, 7, 9}) {
    const Segments one = from_lengths({n}, {0});
    expect_same_bits(n, &one, 1, 32);
    expect_same_bits(n, nullptr, 2, 32);  // adamw_update: no table, one decayed tensor
  }
}

TEST(FusedAdamW, AThousandSegments) {
  std::mt19937 rng(5);
  std::uniform_int_distribution<int64_t> length(1, 9);
  std::vector<int64_t> lengths(1000);
  std::vector<int8_t> decay(1000);
  for (size_t i = 0; i < lengths.size(); ++i) {
    lengths[i] = length(rng);
    decay[i] = int8_t(rng() & 1);
  }
  const Segments s = from_lengths(lengths, decay);
  const int64_t n = s.ends.back();
  expect_same_bits(n, &s, 7, 128);
  expect_same_bits(n, &s, adamw::blocks_for(n, 4, 512, 1 << 20), 512);
}

TEST(FusedAdamW, MisalignedPointersTakeTheOneElementPath) {
  const Segments s = from_lengths({5, 3, 600, 1, 41}, {1, 0});
  const int64_t n = s.ends.back();
  expect_same_bits(n, &s, 2, 64, 1, false);  // params 4 bytes off the 16-byte grid
  expect_same_bits(n, &s, adamw::blocks_for(n, 1, 64, 1000), 64, 3, false);
}

// A GPT-2-like table at a small width: large decayed matrices beside short undecayed vectors.
TEST(FusedAdamW, ModelShapedTable) {
  const int C = 24, V = 101, T = 16;
  std::vector<int64_t> lengths = {int64_t{V} * C, int64_t{T} * C};
  std::vector<int8_t> decay = {1, 1};
  for (int layer = 0; layer < 2; ++layer) {
    for (const int64_t length : {int64_t{2} * C, int64_t{3} * C * C, int64_t{3} * C, int64_t{C} * C, int64_t{C},
                                 int64_t{2} * C, int64_t{4} * C * C, int64_t{4} * C, int64_t{4} * C * C, int64_t{C}}) {
      lengths.push_back(length);
      decay.push_back(length >= int64_t{C} * C ? 1 : 0);
    }
  }
  lengths.push_back(2 * C);
  decay.push_back(0);
  const Segments s = from_lengths(lengths, decay);
  const int64_t n = s.ends.back();
  expect_same_bits(n, &s, adamw::blocks_for(n, 4, 256, 16), 256);
}

}  // namespace
}  // namespace xp::test
