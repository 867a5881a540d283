#pragma once
// One way to allocate the buffers the model and the optimizer keep: allocate() makes the View and adds
// its bytes, by kind, to this process's ledger. The run plan predicts the same numbers from the
// same size functions; tests/train/test_run_plan_mpi.cpp checks that prediction against the ledger.
#include <cstdint>
#include <string>
#include <vector>

namespace xp {

// Host: what a rank keeps in host memory besides the device's buffers (optimizer offload's master weights,
// moments and gradient staging; pinned on GPU builds). On CPU builds it is the same RAM as the rest.
enum class MemoryKind { Weights, Grads, Optimizer, Activations, Host };

// Bytes allocated through allocate() since the last reset (a count, never decremented: a test resets
// it, builds one run and reads it).
struct MemoryLedger {
  double weights = 0, grads = 0, optimizer = 0, activations = 0, host = 0;
  std::vector<std::string> labels;  // of every allocation counted

  void add(const std::string& label, double bytes, MemoryKind kind);
  void reset() { *this = MemoryLedger{}; }
};

// This process's ledger.
MemoryLedger& memory_ledger();

// A View of `count` elements labelled `label`, counted in the ledger as `kind`.
template <class View>
View allocate(const std::string& label, int64_t count, MemoryKind kind) {
  memory_ledger().add(label, static_cast<double>(count) * sizeof(typename View::value_type), kind);
  return View(label, count);
}

}  // namespace xp
