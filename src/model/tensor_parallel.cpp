#include "xp/model/tensor_parallel.hpp"

#include "xp/kernels/cross_entropy.hpp"
#include "xp/kernels/embedding.hpp"
#include "xp/kernels/matmul.hpp"

namespace xp {

void column_parallel_fwd(Real* out, const Real* inp, const Real* weight, const Real* bias, int N, int C, int OCl) {
  matmul_fwd(out, inp, weight, bias, N, C, OCl);
}

void column_parallel_gelu_fwd(Real* out, Real* pre, const Real* inp, const Real* weight, const Real* bias, int N,
                              int C, int OCl) {
  matmul_gelu_fwd(out, pre, inp, weight, bias, N, C, OCl);
}

void column_parallel_bwd(Real* dinp, float* dweight, float* dbias, const Real* dout, const Real* inp,
                         const Real* weight, int N, int C, int OCl, Communicator& tp) {
  matmul_bwd(dinp, dweight, dbias, dout, inp, weight, N, C, OCl);
  if (tp.size() > 1) tp.all_reduce_sum(dinp, static_cast<size_t>(N) * C);
}

void row_parallel_fwd(Real* out, const Real* inp, const Real* weight, int N, int Cl, int OC, Communicator& tp) {
  matmul_fwd(out, inp, weight, nullptr, N, Cl, OC);
  if (tp.size() > 1) tp.all_reduce_sum(out, static_cast<size_t>(N) * OC);
}

void row_parallel_bwd(Real* dinp, float* dweight, float* dbias, const Real* dout, const Real* inp, const Real* weight,
                      int N, int Cl, int OC, const Real* gelu_pre) {
  matmul_bwd(dinp, dweight, dbias, dout, inp, weight, N, Cl, OC, gelu_pre);
}

void vocab_parallel_embedding_fwd(Real* out, const int32_t* tokens, const Real* wte, const Real* wpe, int B, int T,
                                  int C, int vocab_start, int Vl, Communicator& tp) {
  embedding_fwd(out, tokens, wte, tp.rank() == 0 ? wpe : nullptr, B, T, C, vocab_start, Vl);
  if (tp.size() > 1) tp.all_reduce_sum(out, static_cast<size_t>(B) * T * C);
}

double vocab_parallel_cross_entropy_fwd(float* losses, float* lse, float* stats, const Real* logits,
                                        const int32_t* targets, int N, int valid, int Vl, int vocab_start,
                                        Communicator& tp, double* loss_total) {
  if (tp.size() == 1) return cross_entropy_fwd(losses, lse, logits, targets, N, valid, Vl, loss_total);
  float* row_max = stats;
  float* sum_exp = stats + N;
  float* target_logit = stats + 2 * N;  // adjacent to sum_exp: one reduction for both
  cross_entropy_row_max(row_max, logits, N, valid, Vl);
  if (tp.size() > 1) tp.all_reduce_max(row_max, N);
  cross_entropy_sum_exp(sum_exp, logits, row_max, N, valid, Vl);
  cross_entropy_target_logit(target_logit, logits, targets, N, Vl, vocab_start);
  if (tp.size() > 1) tp.all_reduce_sum(sum_exp, 2 * static_cast<size_t>(N));
  return cross_entropy_finish(losses, lse, row_max, sum_exp, target_logit, N, loss_total);
}

}  // namespace xp
