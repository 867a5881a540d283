// HostAdamW (optimizer offload) against AdamW on the device: a layout of decayed and undecayed tensors,
// a range that starts and ends inside tensors (a ZeRO-1 slice), gradient chunks that cut segments and
// several host threads — after several steps the master weights, both moments and the weights copied
// back (the compute copy: bf16 rounded on the host on bf16 builds, against the device's conversion)
// equal the device optimizer's bit for bit (the same per-element arithmetic, other buffers) — on GPU
// builds too: kernels/cuda/adamw_math.hpp rounds every operation once on the device (the _rn intrinsics,
// no fused multiply-adds) as the host does.
#include "xp/train/host_optimizer.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "kernels/reference.hpp"
#include "xp/core/device.hpp"
#include "xp/core/host_copy.hpp"
#include "xp/kernels/elementwise.hpp"
#include "xp/train/optimizer.hpp"

namespace xp::test {
namespace {

std::vector<float> host_values(const FloatBuffer& buffer) {
  std::vector<float> values(buffer.size());
  copy_to_host(buffer, 0, 0, static_cast<int64_t>(values.size()), values.data());
  return values;
}

// The compute copy's elements as their bytes (Real has no comparison on bf16 builds).
std::vector<unsigned char> host_bytes(const RealBuffer& buffer) {
  auto mirror = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), buffer);
  std::vector<unsigned char> bytes(sizeof(Real) * buffer.size());
  if (!bytes.empty()) std::memcpy(bytes.data(), mirror.data(), bytes.size());
  return bytes;
}

void expect_same_bits(const std::vector<float>& got, const std::vector<float>& want, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int64_t differ = 0;
  for (size_t i = 0; i < got.size(); ++i) differ += got[i] != want[i];
  EXPECT_EQ(differ, 0) << what << ": " << differ << " of " << got.size() << " values differ";
}

TEST(HostAdamW, EqualsTheDeviceOptimizerAcrossChunksAndThreads) {
  ModelConfig model{"custom", 2, 4, 32, 16, 96};
  const ParameterLayout layout(model);
  TrainConfig train;
  train.weight_decay = 0.1;
  const int64_t total = layout.total(), begin = 1000, end = total - 777;  // inside tensors
  const int64_t size = end - begin;
  const Floats initial = random_floats(total, 5);

  FloatBuffer device_params = to_device(initial);
  AdamW device(layout, train, begin, end);
  RealBuffer device_compute("device_compute", total), offloaded_compute("offloaded_compute", total);
  convert_to_real(device_compute.data(), device_params.data(), total);
  convert_to_real(offloaded_compute.data(), device_params.data(), total);
  HostAdamW host(layout, train, begin, end, 3, 4099);  // chunks that end mid-segment
  exec_space().fence();
  host.load_weights(device_params.data() + begin);
  EXPECT_EQ(host.master.extent(0), static_cast<size_t>(size));

  for (int step = 1; step <= 4; ++step) {
    const Floats grads = random_floats(size, 100 + step);
    FloatBuffer device_grads = to_device(grads);
    const double lr = 1e-2 / step, scale = 0.5 + 0.1 * step;
    device.step(device_params.data(), device_grads.data(), lr, scale, device_compute.data());
    host.step(device_grads.data(), offloaded_compute.data() + begin, lr, scale);
    exec_space().fence();
  }
  // The whole copy: the range updated, the rest as it was on both.
  EXPECT_TRUE(host_bytes(offloaded_compute) == host_bytes(device_compute)) << "compute weights copied back";
  const std::vector<float> master(host.master.data(), host.master.data() + size);
  const std::vector<float> weights = host_values(device_params);
  expect_same_bits(master, std::vector<float>(weights.begin() + begin, weights.begin() + end), "master weights");
  expect_same_bits(std::vector<float>(host.m.data(), host.m.data() + size), host_values(device.m), "m");
  expect_same_bits(std::vector<float>(host.v.data(), host.v.data() + size), host_values(device.v), "v");
  // The update moved the range and only the range.
  EXPECT_NE(weights[begin], initial[begin]);
  EXPECT_EQ(weights[begin - 1], initial[begin - 1]);
  EXPECT_EQ(weights[end], initial[end]);
}

}  // namespace
}  // namespace xp::test
