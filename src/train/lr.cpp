#include "xp/train/lr.hpp"

#include <algorithm>
#include <cmath>

namespace xp {

double learning_rate(const TrainConfig& train, int64_t step) {
  if (step < train.warmup_steps) return train.lr * static_cast<double>(step + 1) / train.warmup_steps;
  const int64_t decay_steps = train.steps - train.warmup_steps;
  if (decay_steps <= 1) return train.lr;
  const double progress = std::min(1.0, static_cast<double>(step - train.warmup_steps) / (decay_steps - 1));
  return train.min_lr + 0.5 * (train.lr - train.min_lr) * (1.0 + std::cos(3.141592653589793 * progress));
}

}  // namespace xp
