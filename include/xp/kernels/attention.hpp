#pragma once
namespace xp {

// Causal multi-head self-attention.
// qkv (B,T,3C): q, k, v each (B,T,C) side by side, head h at features h*hs..(h+1)*hs.
// out (B,T,C) heads concatenated; att (B,NH,T,T) softmax probabilities kept for backward.
void attention_fwd(float* out, float* att, const float* qkv, int B, int T, int C, int NH);

// dqkv (B,T,3C) overwritten from dout (B,T,C); scratch holds B*NH*T floats.
void attention_bwd(float* dqkv, float* scratch, const float* dout, const float* qkv, const float* att, int B,
                   int T, int C, int NH);

}  // namespace xp
