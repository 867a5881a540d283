#pragma once
#include <cstdint>

#include "xp/core/precision.hpp"
#include "xp/core/thread_pool.hpp"

namespace xp {

struct AdamWHyper {
  float lr = 0.0f;
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f;
  float weight_decay = 0.0f;  // decoupled; applies to the tensors marked for decay
  float grad_scale = 1.0f;    // folds gradient clipping into the update pass
  int64_t step = 1;           // 1-based, for the bias corrections
};

// AdamW on n fp32 master weights, every one decayed by hyper.weight_decay: m, v (n) are the moments;
// grads (n) are read only. compute (n), when not null, receives the updated weights rounded to Real.
void adamw_update(float* params, float* m, float* v, const float* grads, int64_t n, const AdamWHyper& hyper,
                  Real* compute = nullptr);

// The same over many tensors in one launch (multi-tensor AdamW): segment s covers
// [segment_ends[s-1], segment_ends[s]) of the n values (segment_ends[-1] = 0, segment_ends[segments-1] = n)
// and is decayed when decay[s] != 0. segment_ends and decay are device arrays.
void adamw_update_segments(float* params, float* m, float* v, const float* grads, int64_t n,
                           const int64_t* segment_ends, const int8_t* decay, int segments, const AdamWHyper& hyper,
                           Real* compute = nullptr);

// The same on host memory for the elements [first, last) of the n = segment_ends[segments-1] values, with
// the host threads of `threads` (optimizer offload, one bounded chunk at a time): grads holds last - first values
// (grads[0] is element first's); params, m, v the whole n. Each thread takes one contiguous part and walks
// the segments it meets with a plain loop the compiler can vectorise. Every element's arithmetic is the
// kernels' own, so any split over threads or chunks, and either path, gives the same bits. segment_ends
// and decay are host arrays here.
void adamw_update_segments_host(float* params, float* m, float* v, const float* grads, int64_t first, int64_t last,
                                const int64_t* segment_ends, const int8_t* decay, int segments,
                                const AdamWHyper& hyper, ThreadPool& threads);

}  // namespace xp
