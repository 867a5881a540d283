#pragma once
// The fused attention's backward workspace size, free of CUDA headers: the CUDA build allocates it and
// every build's memory plan counts it (`--dry-run --gpu` from a CPU build).
#include <cstddef>

namespace xp::cuda {

// How flash_attention_bwd computes dQ.
//   deterministic_dq (default): a separate dQ pass, one CTA per block of queries, accumulates dQ in
//     registers and writes it once; the dK/dV kernel computes no dQ. No float atomics: two runs give
//     bit-identical dqkv. Recomputes S and dP (7 GEMMs of the causal half instead of 5).
//   atomic_dq: the dK/dV kernel also adds dS·K into an fp32 dq accumulator with atomics (64-key blocks:
//     each dq element takes T/64 atomic adds in a varying order), then converts it to bf16.
enum class AttentionBwdPath { deterministic_dq, atomic_dq };

// Floats of fp32 workspace flash_attention_bwd needs for `path`: atomic_dq a dq accumulator (B,T,C) first,
// then (both paths) D = rowsum(dout∘out) (B,NH,T); 4 spare floats let a 4-byte-aligned workspace be rounded
// up to 16 bytes.
inline std::size_t flash_attention_bwd_workspace(int B, int T, int C, int NH,
                                                 AttentionBwdPath path = AttentionBwdPath::deterministic_dq) {
  const std::size_t dq_acc = path == AttentionBwdPath::atomic_dq ? std::size_t(B) * T * C : 0;
  return dq_acc + std::size_t(B) * NH * T + 4;
}

}  // namespace xp::cuda
