#pragma once
#include <cstdint>

namespace xp {

struct AdamWHyper {
  float lr = 0.0f;
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f;
  float weight_decay = 0.0f;  // decoupled; 0 for tensors that are not decayed
  float grad_scale = 1.0f;    // folds gradient clipping into the update pass
  int64_t step = 1;           // 1-based, for the bias corrections
};

// AdamW on n fp32 master weights: m, v (n) are the moments; grads (n) are read only.
void adamw_update(float* params, float* m, float* v, const float* grads, int64_t n, const AdamWHyper& hyper);

}  // namespace xp
