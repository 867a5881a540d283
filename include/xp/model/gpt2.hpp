#pragma once
// GPT-2 as published: learned position embeddings, pre-LayerNorm blocks, causal multi-head attention,
// tanh-GELU MLP of width 4C, final LayerNorm, LM head tied to the token embedding, vocabulary padded
// to Vp with padded logits excluded from the loss.
//
// One object is one rank's share: the layers of its pipeline stage (Placement), with the attention
// heads, MLP columns and vocabulary rows of its tensor-parallel rank (Megatron-style: column-parallel
// QKV and MLP-up, row-parallel projections followed by a tp all-reduce, vocab-parallel embedding and
// cross-entropy). Forward is one loop over blocks; backward the same steps in reverse. Activations of
// up to `slots` micro-batches are kept at once (pipeline micro-batches in flight).
//
// Activation recomputation (`recompute`; what each mode keeps: buffers.hpp): before a block's backward,
// the block's forward reruns the steps whose outputs were not kept, into one block's worth of working
// buffers. Same kernels, same inputs, same tp all-reduces: the tensors, statistics and so the gradients
// are bit-identical to keeping everything (none).
#include <cstdint>
#include <functional>
#include <vector>

#include "xp/config/config.hpp"
#include "xp/core/types.hpp"
#include "xp/model/buffers.hpp"
#include "xp/model/layout.hpp"
#include "xp/parallel/comm.hpp"

namespace xp {

class GPT2 {
 public:
  // `tp` is the tensor-parallel group (size 1 for none); it must outlive the model. params and grads
  // hold max(buffer_size, layout().total()) floats (ZeRO-1 pads them to a multiple of dp; padding is 0).
  // Every buffer is sized by model_buffers() (buffers.hpp), the function the run plan estimates with.
  // `master_on_host` (optimizer offload): the optimizer keeps the fp32 master weights in host memory; a
  // build with a compute copy (bf16: GPU, emulated) then allocates no params (empty) — see fp32_weights().
  GPT2(const ModelConfig& model, const Placement& placement, Communicator& tp, int max_batch, int slots = 1,
       Recompute recompute = Recompute::None, int64_t buffer_size = 0, bool master_on_host = false);

  const ParameterLayout& layout() const { return layout_; }
  int slots() const { return slots_; }  // micro-batches whose activations it keeps at once
  Recompute recompute() const { return recompute_; }

  // GPT-2's initial weights (model/init_weights.hpp): every layout starts from the same model. CPU
  // builds spread the work over `threads` host threads; GPU builds fill them on the device. They go to
  // fp32_weights() and the compute copy.
  void init_weights(uint64_t seed, double std, int threads = 1);

  // Where a stage after the first receives its input, the residual stream (B,T,C), before forward.
  Real* input(int slot) { return act(slot, a_.encoded); }
  // Forward of one micro-batch, kept in `slot`. sequences: host array (B, T+1) of token ids (inputs are
  // columns 0..T-1, targets 1..T). Returns the sum of the B·T token losses on the last stage, else 0; the
  // host waits for it.
  double forward(int slot, const int32_t* sequences, int B);
  // The same forward without that wait (a training step's micro-batches): the sum is added on the device
  // to a total that take_loss_total() returns.
  void forward_accumulate(int slot, const int32_t* sequences, int B);
  // forward_accumulate for training, where backward(slot, dloss) follows with the same dloss: on the last
  // stage with tp = 1 the classifier's pass also writes dloss · ∂loss/∂logits over the slot's logits
  // (cross_entropy_fwd_bwd: one read of the logits fewer), and that backward skips the cross-entropy
  // backward. The same bits as forward_accumulate then backward. Nothing may read the slot's logits in between
  // (evaluation, sampling and the generator use forward / forward_accumulate or buffers of their own).
  void forward_train(int slot, const int32_t* sequences, int B, float dloss);
  // Σ of forward_accumulate's (and forward_train's) sums since the last call, in call order (the bits of adding forward()'s
  // returns on the host), then zeroed: one wait for the device on the last stage; 0 elsewhere, no wait.
  double take_loss_total();
  // The residual stream (B,T,C) this stage passes on (not on the last stage).
  Real* output(int slot) { return block_input(slot, layout_.placement().last_layer); }

  // Where a stage before the last receives the gradient of output(slot) before backward. Apart from
  // input_grad(), so a stage may send one while receiving the other.
  Real* output_grad() { return grad_act(g_.doutput); }
  // Adds to grads the gradient of dloss · Σ losses of the micro-batch in `slot` (after forward_train, with
  // its dloss: a different one is an error). `written`, where given, is told each range [first, last) of
  // the flat gradient buffer as soon as this call has queued its last write to it (the head's tensors,
  // then each block from the last, then wte and wpe), in that order; the ranges are disjoint and cover
  // the buffer. On the stage's last micro-batch they are then final but for later reductions (the tied
  // wte over pp, dp): optimizer offload copies them to the host from there.
  using GradsWritten = std::function<void(int64_t first, int64_t last)>;
  void backward(int slot, float dloss, const GradsWritten& written = nullptr);
  // Gradient of input(slot) after backward (not on the first stage); valid until the next backward.
  Real* input_grad() { return grad_act(g_.dresidual); }

  void zero_grads();

  // bf16 builds (GPU, emulated) compute with a bf16 copy of the fp32 master weights: refresh it from
  // fp32_weights() after they change (the optimizer may write it itself: compute_weights_copy()). fp32
  // builds compute with params directly.
  void refresh_compute_weights();
  // The whole fp32 weights of this rank on the device (params' layout, buffer_size floats): params; or,
  // where no params are allocated (offload with a compute copy), the gradient buffer lent as their
  // device staging. A loan is valid only until the next zero_grads(): the fp32 values pass through it on
  // their way to the compute copy on a load (init, a resume, init_from, a rollback), and gradients
  // overwrite them. A step lends nothing: the offloaded optimizer writes the compute copy itself.
  FloatBuffer& fp32_weights() { return params.size() > 0 ? params : grads; }
  bool params_on_device() const { return params.size() > 0; }
  // The bf16 copy (same layout as params), or null where params themselves are used.
  Real* compute_weights_copy();

  FloatBuffer params;  // flat fp32 weights of this rank, laid out by layout() (then padding); may be empty
  FloatBuffer grads;   // same layout

 private:
  Real* act(int slot, int64_t offset) { return acts_.data() + slot * a_.total + offset; }
  float* stat(int slot, int64_t offset) { return stats_.data() + slot * s_.total + offset; }
  Real* grad_act(int64_t offset) { return grad_acts_.data() + offset; }
  const Real* weight(int64_t offset) const { return compute_.data() + offset; }
  float* grad(int64_t offset) { return grads.data() + offset; }
  Real* block_input(int slot, int layer);  // residual stream entering block `layer`

  // One block's tensors for the micro-batch in a slot: kept ones in the slot, the others in the
  // recompute buffers (the same for every block).
  struct BlockActivations {
    const Real* residual;
    Real *ln1, *qkv, *atty, *residual2, *ln2, *fch, *residual3;
    float *ln1_mean, *ln1_rstd, *att, *ln2_mean, *ln2_rstd;
  };
  BlockActivations block_acts(int slot, int layer);
  // Block w's forward on B sequences up to fc+GELU (backward needs nothing after it), its ln1 included
  // unless `ln1_ready` (the previous block's output step wrote it); with `recompute`, only the steps
  // whose outputs were not kept.
  void block_fwd(const BlockActivations& x, const BlockOffsets& w, int B, bool recompute, bool ln1_ready = false);
  // A LayerNorm's output, statistics and parameters; out == nullptr for none.
  struct Norm {
    Real* out = nullptr;
    float *mean = nullptr, *rstd = nullptr;
    const Real *weight = nullptr, *bias = nullptr;
  };
  // The LayerNorm of this stage that reads block `layer`'s output: the next block's ln1, lnf after the
  // model's last block, none where the output goes to the next pipeline stage.
  Norm next_norm(int slot, int layer);
  // The block's output, residual3 = residual2 + fcproj(GELU(fch)) + bias, with `next` of it in the same
  // pass (residual_layernorm_fwd: the bits of the two kernels one after the other).
  void block_output_fwd(const BlockActivations& x, const BlockOffsets& w, int B, const Norm& next);

  // The forward; the loss sum is returned, or with loss_total added to that device double (returns 0).
  // With a dloss (forward_train; tp = 1 only), the head writes the slot's dlogits too.
  double run_forward(int slot, const int32_t* sequences, int B, double* loss_total, const float* dloss = nullptr);
  double loss_fwd(int slot, int N, double* loss_total, const float* dloss);

  ModelConfig model_;
  ParameterLayout layout_;
  Communicator& tp_;
  int max_batch_, slots_;
  Recompute recompute_;
  int C_local_, heads_local_, vocab_local_, vocab_start_, vocab_valid_;
  std::vector<int> batch_;  // B of each slot's forward
  // Per slot: whether the forward left dlogits (not logits) in it, and for which dloss.
  std::vector<char> dlogits_ready_;
  std::vector<float> dlogits_dloss_;
  ActivationOffsets a_;
  StatOffsets s_;
  GradOffsets g_;
  RealBuffer acts_, grad_acts_, compute_;  // compute_ aliases params in fp32 builds
  FloatBuffer stats_, attention_scratch_;
  RealBuffer recompute_acts_;    // one block's tensors that are not kept (empty with none)
  FloatBuffer recompute_stats_;  // their statistics
  TokenBuffer inputs_, targets_;            // [slots][max_batch·T]
  HostTokenBuffer host_inputs_, host_targets_;
  Kokkos::View<double*> loss_total_;  // one double: forward_accumulate's running sum
};

}  // namespace xp
