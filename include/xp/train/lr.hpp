#pragma once
#include <cstdint>

#include "xp/config/config.hpp"

namespace xp {

// Learning rate of optimizer step `step` (0-based): linear warmup from lr/warmup_steps to lr, then a
// cosine decay to min_lr at the last step (a single step after warmup keeps the peak).
double learning_rate(const TrainConfig& train, int64_t step);

}  // namespace xp
