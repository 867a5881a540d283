#pragma once
// Helpers shared by the test files: the message of an expected InputError, a scratch directory per
// test, this process's place in MPI_COMM_WORLD, and the tiny model that the multi-rank training
// tests train (each test states what it changes) and their layouts.
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "xp/config/config.hpp"
#include "xp/core/error.hpp"

namespace xp::test {

// The message of the InputError that `action` throws ("" and a failure when it throws none).
inline std::string input_error(const std::function<void()>& action) {
  try {
    action();
  } catch (const InputError& error) {
    return error.what();
  }
  ADD_FAILURE() << "expected an InputError";
  return "";
}

// A fresh directory per instance, removed afterwards: <temp>/<prefix>_<pid>_<serial>, so unique per
// process and per instance.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& prefix) {
    static int serial = 0;
    path_ = std::filesystem::temp_directory_path() /
            (prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(serial++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() { std::filesystem::remove_all(path_); }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  std::string path() const { return path_.string(); }
  // The path of file `name` in the directory.
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  // Writes `text` to file `name` in the directory and returns its path.
  std::string write(const std::string& name, const std::string& text) const {
    const std::string path = file(name);
    std::ofstream(path) << text;
    return path;
  }

 private:
  std::filesystem::path path_;
};

// Loss sequences of one run in two layouts (tensor parallelism among them), where Real is bf16: a changed
// summation order flips some bf16 roundings of activations, and 20 steps at lr 1e-2 grow that to ~1e-2 of
// the loss (measured: tp 4 vs one process 1.2e-2, the same as bf16 vs fp32 on this run). fp32 builds keep
// each test's own bound.
constexpr double bf16_layout_tolerance = 3e-2;

// <GoogleTest's temp dir>/<name>: the same path on every rank.
inline std::string temp_path(const std::string& name) { return std::string(::testing::TempDir()) + "/" + name; }

inline int world_rank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

inline int world_size() {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

// The multi-rank training tests' model and run: 4 layers, 4 heads, C = 32, T = 16, vocabulary 100 (padded
// to 128, so the padding is split across tp too); 20 steps at lr 1e-2 after 2 warmup steps, clipped at
// global norm 0.5 (small enough to clip, so the global norm must be right); one BLAS thread per rank,
// no console lines. Batch size, accumulation and layout are left to each test.
inline Config tiny_config(const std::string& run_dir) {
  Config config;
  config.model = {"custom", 4, 4, 32, 16, 100};
  config.train.steps = 20;
  config.train.lr = 1e-2;
  config.train.warmup_steps = 2;
  config.train.grad_clip_norm = 0.5;
  config.parallel.threads = 1;
  config.run.run_dir = run_dir;
  config.run.log_every = 1000;
  return config;
}

// A layout of the multi-rank training tests: data-, tensor- and pipeline-parallel degrees and the ZeRO stage.
struct TestLayout {
  int dp = 1, tp = 1, pp = 1, zero_stage = 0;
};

// `config` in that layout, with micro-batches of 2 sequences, 2 of them per step on each dp rank.
inline void set_layout(Config& config, const TestLayout& layout) {
  config.train.batch_size = 2;
  config.train.grad_accum_steps = 2;
  config.parallel.dp_size = layout.dp;
  config.parallel.tp_size = layout.tp;
  config.parallel.pp_stages = layout.pp;
  config.parallel.zero_stage = layout.zero_stage;
}

}  // namespace xp::test
