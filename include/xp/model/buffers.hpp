#pragma once
// The size of every buffer one rank's GPT2 keeps, from one pure function of the model shape, the rank's
// parameter table, the micro-batch, the micro-batches kept at once, the recompute mode and the build's
// precision. GPT2 allocates from it and the run plan's memory estimate adds it up (for this build, or for
// the GPU build from a CPU build: `--dry-run --gpu`), so the estimate is the allocation.
//
// What each recompute mode keeps per block and micro-batch in flight (tp-split widths this rank's):
//   none       residual C, ln1 C, qkv 3C, atty C, residual2 C, ln2 C, fch 4C, and their statistics
//              (LayerNorm mean/rstd, attention's probabilities (NH,T,T) or log-sum-exp on the fused path)
//   selective  residual C, qkv 3C, residual2 C: the block inputs and the one GEMM output that is
//              cheap to keep; ln1, attention (atty and its statistics), ln2 and fc+GELU are recomputed in
//              backward (two LayerNorms, attention and the fc GEMM: ~1/3 of a block's forward GEMMs)
//   full       residual C only: the block's forward up to fc+GELU reruns in backward (all but fcproj)
// A tensor that is not kept lives in one block's worth of working buffers, shared by all blocks and
// micro-batches: forward writes it there as it goes, backward refills it before the block's backward.
#include <cstdint>

#include "xp/config/config.hpp"
#include "xp/core/precision.hpp"
#include "xp/model/layout.hpp"

namespace xp {

// Where one per-block tensor lives: kept, at offset + layer·stride of each slot's buffer (layer local to
// the stage), or recomputed, at offset of the working buffer (stride 0, the same for every layer).
struct BlockTensor {
  int64_t offset = 0, stride = 0;
  bool kept = true;
};

// Offsets (Real elements) of one micro-batch's activations. residual3 ([layers][max_batch·T·C], each
// block's output = the next block's input) is always kept, and so are the head's lnf and logits.
struct ActivationOffsets {
  int64_t encoded = 0, residual3 = 0, lnf = 0, logits = 0, total = 0;
  BlockTensor ln1, qkv, atty, residual2, ln2, fch;
};
// Offsets (floats) of one micro-batch's fp32 statistics: LayerNorm mean and rstd and what attention
// keeps (they go with ln1, atty and ln2: kept or recomputed with them), and on the last stage the
// cross-entropy's log-sum-exp, token losses and per-row partials (3 per token).
struct StatOffsets {
  int64_t lnf_mean = 0, lnf_rstd = 0, lse = 0, losses = 0, row_stats = 0, total = 0;
  BlockTensor ln1_mean, ln1_rstd, att, ln2_mean, ln2_rstd;
};
// Offsets (Real elements) of the backward's working buffers, shared by the micro-batches and reused by
// every block; doutput (the received output gradient) exists on stages before the last.
struct GradOffsets {
  int64_t dresidual, doutput, dC, d3C, d4C, gelu, scratch, total;
};

struct ModelBuffers {
  ActivationOffsets acts;         // per slot (kept tensors)
  StatOffsets stats;              // per slot (kept statistics)
  GradOffsets grad_acts;          // once
  int64_t recompute_acts = 0;     // Real elements, once: one block's tensors that are not kept
  int64_t recompute_stats = 0;    // floats, once: their statistics
  int slots = 1;                  // micro-batches whose activations are kept at once
  int64_t params = 0;             // floats of the fp32 weights on the device (padded to buffer_size); 0 where
                                  // the master weights live in host memory and a compute copy serves (offload)
  int64_t grads = 0;              // floats of the fp32 gradients: the parameters, padded to buffer_size
  int64_t compute_weights = 0;    // Real elements of the bf16 compute copy; 0 where params serve (fp32);
                                  // padded to buffer_size where the master lives on the host (offload)
  int64_t attention_scratch = 0;  // floats
  int64_t tokens = 0;             // int32 of the inputs and of the targets each: slots · max_batch · T
  int real_bytes = 4;             // sizeof(Real) of the build planned for

  // Bytes by the kind allocate() counts them as.
  double weight_bytes() const;      // fp32 params (where on the device) + the compute copy
  double grad_bytes() const;        // fp32 grads
  double activation_bytes() const;  // activations, statistics, recompute and backward buffers, attention
                                    // scratch, tokens
};

// The buffers of a GPT2 holding `layout`'s tensors (this rank's stage and tp slice) for micro-batches of
// up to `max_batch` sequences, `slots` kept at once, keeping what `recompute` keeps, params and grads of
// max(buffer_size, layout.total()) floats, in a build of `precision`. `master_on_host` (optimizer offload):
// the fp32 master weights live in the optimizer's host memory, so a build with a compute copy keeps no
// fp32 params on the device (params = 0); an fp32 build computes with params, which stay.
ModelBuffers model_buffers(const ModelConfig& model, const ParameterLayout& layout, int max_batch, int slots,
                           Recompute recompute, int64_t buffer_size, const Precision& precision,
                           bool master_on_host = false);

// Whether a GPT2 in a build of `precision` keeps fp32 params on the device: everywhere but with the master
// weights in host memory (offload) where a compute copy serves the kernels.
inline bool params_on_device(const Precision& precision, bool master_on_host) {
  return !(master_on_host && precision.compute_copy());
}

}  // namespace xp
