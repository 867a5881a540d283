#pragma once
// The fused attention's backward workspace size, free of CUDA headers: the CUDA build allocates it and
// every build's memory plan counts it (`--dry-run --gpu` from a CPU build).
#include <cstddef>

namespace xp::cuda {

// Floats of fp32 workspace flash_attention_bwd needs: a dq accumulator (B,T,C) first, then D =
// rowsum(dout∘out) (B,NH,T); 4 spare floats let a 4-byte-aligned workspace be rounded up to 16 bytes.
inline std::size_t flash_attention_bwd_workspace(int B, int T, int C, int NH) {
  return std::size_t(B) * T * C + std::size_t(B) * NH * T + 4;
}

}  // namespace xp::cuda
