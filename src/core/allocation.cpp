#include "xp/core/allocation.hpp"

namespace xp {

void MemoryLedger::add(const std::string& label, double bytes, MemoryKind kind) {
  switch (kind) {
    case MemoryKind::Weights: weights += bytes; break;
    case MemoryKind::Grads: grads += bytes; break;
    case MemoryKind::Optimizer: optimizer += bytes; break;
    case MemoryKind::Activations: activations += bytes; break;
    case MemoryKind::Host: host += bytes; break;
  }
  labels.push_back(label);
}

MemoryLedger& memory_ledger() {
  static MemoryLedger ledger;
  return ledger;
}

}  // namespace xp
