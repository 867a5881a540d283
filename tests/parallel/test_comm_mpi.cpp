// The MPI communicator backend at every rank count: typed reductions (fp32, and bf16 reduced in fp32
// through the type-erased entry point GPU builds use), byte transfers and the fp32 collectives, each
// against the values every rank can compute for itself. And groups of one rank: the trivial
// communicator (no NCCL, no host staging) returns its input, in buffers of the build's memory space.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdint>
#include <typeinfo>
#include <vector>

#include "xp/core/precision.hpp"
#include "xp/core/types.hpp"
#include "xp/parallel/comm.hpp"
#include "xp/parallel/grid.hpp"

namespace xp::test {
namespace {

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

// 256 on rank 0 and 1 on the others: bf16 (8 significant bits) cannot hold 257, so summing in bf16 would
// stay at 256 while the fp32 sum, rounded once, is 258 at 3 ranks, 260 at 4, 264 at 8. The other
// elements are exact in bf16.
TEST(MpiCommunicator, Bf16SumIsReducedInFp32) {
  auto comm = make_mpi_communicator(MPI_COMM_WORLD);
  const int rank = comm->rank(), size = comm->size();
  std::vector<std::uint16_t> data = {bf16_bits(rank == 0 ? 256.0f : 1.0f), bf16_bits(rank == 0 ? 1.0f : 0.5f),
                                     bf16_bits(-3.0f * rank)};
  comm->all_reduce(data.data(), data.size(), DataType::BFloat16, ReduceOp::Sum);
  const float exact[3] = {256.0f + (size - 1), 1.0f + 0.5f * (size - 1), -3.0f * size * (size - 1) / 2.0f};
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(bf16_value(data[i]), bf16_value(bf16_bits(exact[i]))) << "element " << i;
  if (size >= 3) EXPECT_GT(bf16_value(data[0]), 256.0f);  // more than a bf16 running sum could give
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

// The compute copy's all-gather under optimizer offload: Real elements (bf16 where Real is bf16) as raw
// bytes, in place as ZeRO-1 does it and from a separate buffer, at an odd element count (5 bf16: 10 bytes,
// not a multiple of 4). Every element's bits arrive unchanged, including ones no float sum would keep.
TEST(MpiCommunicator, AllGatherElementsKeepsTheBits) {
  auto comm = make_mpi_communicator(MPI_COMM_WORLD);
  const int rank = comm->rank(), size = comm->size();
  const int slice = 5;
  auto value = [](int i) { return to_real(1.0f + 0.0078125f * float(i) - 3.0f * float(i % 3)); };
  std::vector<Real> all(size * slice, to_real(-1.0f));
  for (int j = 0; j < slice; ++j) all[rank * slice + j] = value(rank * slice + j);
  comm->all_gather_elements(all.data() + rank * slice, all.data(), slice);
  for (int i = 0; i < size * slice; ++i) EXPECT_EQ(to_float(all[i]), to_float(value(i))) << "element " << i;
  std::vector<Real> mine(slice), gathered(size * slice, to_real(-1.0f));
  for (int j = 0; j < slice; ++j) mine[j] = value(rank * slice + j);
  comm->all_gather_elements(mine.data(), gathered.data(), slice);
  for (int i = 0; i < size * slice; ++i) EXPECT_EQ(to_float(gathered[i]), to_float(value(i))) << "element " << i;
}

// A buffer in the default memory space (device memory on GPU builds) holding `values`, and its contents.
FloatBuffer buffer_of(const std::vector<float>& values) {
  FloatBuffer buffer("values", values.size());
  auto host = Kokkos::create_mirror_view(buffer);
  for (size_t i = 0; i < values.size(); ++i) host(i) = values[i];
  Kokkos::deep_copy(buffer, host);
  return buffer;
}

std::vector<float> contents(const FloatBuffer& buffer) {
  auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), buffer);
  return std::vector<float>(host.data(), host.data() + host.size());
}

// The trivial communicator's class (it has no name outside comm.cpp).
bool is_trivial(const Communicator& comm) {
  const std::unique_ptr<Communicator> self = make_self_communicator();
  return typeid(comm) == typeid(*self);
}

// Both ways to get a group of one rank: directly, and from the MPI backend over a communicator of one.
void expect_collectives_of_one_rank_return_the_input(Communicator& comm) {
  EXPECT_EQ(comm.rank(), 0);
  EXPECT_EQ(comm.size(), 1);
  const std::vector<float> input = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f};
  FloatBuffer data = buffer_of(input);
  comm.all_reduce_sum(data.data(), input.size());
  comm.all_reduce_max(data.data(), input.size());
  EXPECT_EQ(contents(data), input) << "reductions of one rank change nothing";
  std::vector<std::uint16_t> halves = {bf16_bits(256.0f), bf16_bits(-0.5f)};
  const std::vector<std::uint16_t> halves_before = halves;
  comm.all_reduce(halves.data(), halves.size(), DataType::BFloat16, ReduceOp::Sum);
  EXPECT_EQ(halves, halves_before);

  FloatBuffer scattered("scattered", input.size()), gathered("gathered", input.size());
  comm.reduce_scatter_sum(data.data(), scattered.data(), input.size());
  EXPECT_EQ(contents(scattered), input) << "reduce-scatter of one rank is a copy";
  comm.all_gather(scattered.data(), gathered.data(), input.size());
  EXPECT_EQ(contents(gathered), input) << "all-gather of one rank is a copy";
  comm.reduce_scatter_sum(gathered.data(), gathered.data(), input.size());  // in place, as ZeRO-1 at dp = 1
  comm.all_gather(gathered.data(), gathered.data(), input.size());
  EXPECT_EQ(contents(gathered), input) << "in place";
  FloatBuffer bytes("bytes", input.size());
  comm.all_gather_elements(data.data(), bytes.data(), input.size());
  EXPECT_EQ(contents(bytes), input) << "all-gather of elements of one rank is a copy";
}

TEST(SelfCommunicator, CollectivesOfOneRankReturnTheInput) {
  expect_collectives_of_one_rank_return_the_input(*make_self_communicator());
  const std::unique_ptr<Communicator> of_one = make_mpi_communicator(MPI_COMM_SELF);
  expect_collectives_of_one_rank_return_the_input(*of_one);
  EXPECT_TRUE(is_trivial(*of_one)) << "the MPI backend hands a group of one rank the trivial communicator";
}

// In a grid, every group of one rank gets the trivial communicator (GPU builds: never an NCCL one).
TEST(SelfCommunicator, GridGroupsOfOneRankAreTrivial) {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  ParallelGrid grid(MPI_COMM_WORLD, Layout{size, 1, 1});
  EXPECT_TRUE(is_trivial(grid.tp()));
  EXPECT_TRUE(is_trivial(grid.pp()));
  EXPECT_EQ(is_trivial(grid.dp()), size == 1);
  EXPECT_EQ(grid.dp().size(), size);
}

}  // namespace
}  // namespace xp::test
