// The MPI communicator backend at every rank count: typed reductions (fp32, and bf16 reduced in fp32
// through the type-erased entry point GPU builds use), byte transfers and the fp32 collectives, each
// against the values every rank can compute for itself.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "xp/core/precision.hpp"
#include "xp/parallel/comm.hpp"

namespace xp::test {
namespace {

std::uint16_t bf16_bits(float value) {  // exact for the values used here (few significant bits)
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return static_cast<std::uint16_t>(bits >> 16);
}

float bf16_value(std::uint16_t bits) {
  const std::uint32_t wide = std::uint32_t{bits} << 16;
  float value;
  std::memcpy(&value, &wide, sizeof value);
  return value;
}

TEST(MpiCommunicator, Fp32SumAndMax) {
  auto comm = make_mpi_communicator(MPI_COMM_WORLD);
  const int rank = comm->rank(), size = comm->size();
  std::vector<float> sum = {1.0f * rank, 2.0f, -0.5f * rank}, max = {float(rank), float(-rank)};
  comm->all_reduce_sum(sum.data(), sum.size());
  comm->all_reduce_max(max.data(), max.size());
  const float ranks_sum = size * (size - 1) / 2.0f;
  EXPECT_EQ(sum, (std::vector<float>{ranks_sum, 2.0f * size, -0.5f * ranks_sum}));
  EXPECT_EQ(max, (std::vector<float>{float(size - 1), 0.0f}));
}

// bf16 values whose sum needs more mantissa than bf16 has at each partial step: reduced in fp32 and
// rounded once, the result is the correctly rounded total.
TEST(MpiCommunicator, Bf16SumIsReducedInFp32) {
  auto comm = make_mpi_communicator(MPI_COMM_WORLD);
  const int rank = comm->rank(), size = comm->size();
  std::vector<std::uint16_t> data = {bf16_bits(256.0f), bf16_bits(rank == 0 ? 1.0f : 0.5f), bf16_bits(-3.0f * rank)};
  comm->all_reduce(data.data(), data.size(), DataType::BFloat16, ReduceOp::Sum);
  const float exact[3] = {256.0f * size, 1.0f + 0.5f * (size - 1), -3.0f * size * (size - 1) / 2.0f};
  for (int i = 0; i < 3; ++i) {
    // Round the exact fp32 total to bf16 (nearest even) the way a reference would.
    std::uint32_t bits;
    std::memcpy(&bits, &exact[i], sizeof bits);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    EXPECT_EQ(bf16_value(data[i]), bf16_value(static_cast<std::uint16_t>(bits >> 16))) << "element " << i;
  }
}

// Real activations go through the typed front as their own DataType (fp32, or bf16 where Real is bf16);
// the values are exact in bf16, so every build expects the same sums.
TEST(MpiCommunicator, RealSumThroughTheTypedFront) {
  auto comm = make_mpi_communicator(MPI_COMM_WORLD);
  const int rank = comm->rank(), size = comm->size();
  std::vector<Real> data = {to_real(256.0f), to_real(rank == 0 ? 1.0f : 0.5f), to_real(-3.0f * rank)};
  comm->all_reduce_sum(data.data(), data.size());
  const float exact[3] = {256.0f * size, 1.0f + 0.5f * (size - 1), -3.0f * size * (size - 1) / 2.0f};
  for (int i = 0; i < 3; ++i) EXPECT_EQ(to_float(data[i]), exact[i]) << "element " << i;
}

TEST(MpiCommunicator, SendRecvBytesRingShift) {
  auto comm = make_mpi_communicator(MPI_COMM_WORLD);
  const int rank = comm->rank(), size = comm->size();
  if (size == 1) GTEST_SKIP() << "needs two ranks";
  std::vector<std::uint16_t> out(5, static_cast<std::uint16_t>(rank + 1)), in(5, 0);
  comm->send_recv(out.data(), out.size(), (rank + 1) % size, in.data(), in.size(), (rank + size - 1) % size);
  EXPECT_EQ(in, std::vector<std::uint16_t>(5, static_cast<std::uint16_t>((rank + size - 1) % size + 1)));
}

TEST(MpiCommunicator, ReduceScatterThenAllGatherInPlace) {
  auto comm = make_mpi_communicator(MPI_COMM_WORLD);
  const int rank = comm->rank(), size = comm->size();
  const int slice = 3;
  std::vector<float> send(size * slice), mine(slice);
  for (int i = 0; i < size * slice; ++i) send[i] = float(i + rank);
  comm->reduce_scatter_sum(send.data(), mine.data(), slice);
  const float ranks_sum = size * (size - 1) / 2.0f;
  for (int j = 0; j < slice; ++j) EXPECT_EQ(mine[j], size * float(rank * slice + j) + ranks_sum);
  std::vector<float> all(size * slice, -1.0f);
  std::copy(mine.begin(), mine.end(), all.begin() + rank * slice);
  comm->all_gather(all.data() + rank * slice, all.data(), slice);
  for (int i = 0; i < size * slice; ++i) EXPECT_EQ(all[i], size * float(i) + ranks_sum);
}

}  // namespace
}  // namespace xp::test
