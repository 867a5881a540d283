#pragma once
// The size of every buffer one rank's GPT2 keeps, from one pure function of the model shape, the rank's
// parameter table, the micro-batch, the micro-batches kept at once and the build's precision. GPT2
// allocates from it and the run plan's memory estimate adds it up (for this build, or for the GPU build
// from a CPU build: `--dry-run --gpu`), so the estimate is the allocation.
#include <cstdint>

#include "xp/config/config.hpp"
#include "xp/core/precision.hpp"
#include "xp/model/layout.hpp"

namespace xp {

// Offsets (Real elements) of one micro-batch's activations kept for backward; per-block tensors are
// [layers][max_batch·T·width], tp-split widths this rank's (qkv 3C/tp, atty C/tp, fch 4C/tp, logits Vp/tp).
struct ActivationOffsets {
  int64_t encoded, ln1, qkv, atty, residual2, ln2, fch, residual3, lnf, logits, total;
};
// Offsets (floats) of one micro-batch's fp32 statistics: LayerNorm mean and rstd, what attention keeps,
// and on the last stage the cross-entropy's log-sum-exp, token losses and per-row partials (3 per token).
struct StatOffsets {
  int64_t ln1_mean, ln1_rstd, att, ln2_mean, ln2_rstd, lnf_mean, lnf_rstd, lse, losses, row_stats, total;
};
// Offsets (Real elements) of the backward's working buffers, shared by the micro-batches and reused by
// every block; doutput (the received output gradient) exists on stages before the last.
struct GradOffsets {
  int64_t dresidual, doutput, dC, d3C, d4C, gelu, scratch, total;
};

struct ModelBuffers {
  ActivationOffsets acts;         // per slot
  StatOffsets stats;              // per slot
  GradOffsets grad_acts;          // once
  int slots = 1;                  // micro-batches whose activations are kept at once
  int64_t params = 0;             // floats of params and of grads each: the parameters, padded to buffer_size
  int64_t compute_weights = 0;    // Real elements of the bf16 compute copy; 0 where params serve (fp32)
  int64_t attention_scratch = 0;  // floats
  int64_t tokens = 0;             // int32 of the inputs and of the targets each: slots · max_batch · T
  int real_bytes = 4;             // sizeof(Real) of the build planned for

  // Bytes by the kind allocate() counts them as.
  double weight_bytes() const;      // fp32 params + the compute copy
  double grad_bytes() const;        // fp32 grads
  double activation_bytes() const;  // activations, statistics, backward buffers, attention scratch, tokens
};

// The buffers of a GPT2 holding `layout`'s tensors (this rank's stage and tp slice) for micro-batches of
// up to `max_batch` sequences, `slots` kept at once, params and grads of max(buffer_size, layout.total())
// floats, in a build of `precision`.
ModelBuffers model_buffers(const ModelConfig& model, const ParameterLayout& layout, int max_batch, int slots,
                           int64_t buffer_size, const Precision& precision);

}  // namespace xp
