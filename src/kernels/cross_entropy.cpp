#include "xp/kernels/cross_entropy.hpp"

#include "xp/core/math.hpp"
#include "xp/core/types.hpp"
#include "kernels/fixed_order_sum.hpp"
#if defined(XP_ENABLE_CUDA)
#include "kernels/cuda/classifier.hpp"
#include "xp/core/device.hpp"
#include "xp/kernels/kernel_path.hpp"
#endif

namespace xp {
namespace {

// The team's row reductions over the first `valid` logits: the largest, and Σ exp(logit - max).
KOKKOS_INLINE_FUNCTION float team_row_max(const RowMember& team, const Real* row, int valid) {
  return team_max(team, valid, [&](int v) { return to_float(row[v]); });
}

KOKKOS_INLINE_FUNCTION float team_row_sum_exp(const RowMember& team, const Real* row, int valid, float max_logit) {
  return team_sum(team, valid, [&](int v) { return math::exp(to_float(row[v]) - max_logit); });
}

#if defined(XP_ENABLE_CUDA)
// The fused kernels (kernels/cuda/classifier.cu) run on the program's one stream.
cudaStream_t fused_stream() { return static_cast<cudaStream_t>(device_stream()); }
#endif

}  // namespace

void cross_entropy_row_max(float* row_max, const Real* logits, int N, int valid, int Vl) {
#if defined(XP_ENABLE_CUDA)
  if (use_fused_kernels()) {
    cuda::classifier_row_max(row_max, logits, N, valid, Vl, fused_stream());
    return;
  }
#endif
  Kokkos::parallel_for("xp::cross_entropy_row_max", row_policy(N), KOKKOS_LAMBDA(const RowMember& team) {
    const int64_t n = team.league_rank();
    const float max_logit = team_row_max(team, logits + n * Vl, valid);
    Kokkos::single(Kokkos::PerTeam(team), [&]() { row_max[n] = max_logit; });
  });
}

void cross_entropy_sum_exp(float* sum_exp, const Real* logits, const float* row_max, int N, int valid, int Vl) {
#if defined(XP_ENABLE_CUDA)
  if (use_fused_kernels()) {
    cuda::classifier_sum_exp(sum_exp, logits, row_max, N, valid, Vl, fused_stream());
    return;
  }
#endif
  Kokkos::parallel_for("xp::cross_entropy_sum_exp", row_policy(N), KOKKOS_LAMBDA(const RowMember& team) {
    const int64_t n = team.league_rank();
    const float sum = team_row_sum_exp(team, logits + n * Vl, valid, row_max[n]);
    Kokkos::single(Kokkos::PerTeam(team), [&]() { sum_exp[n] = sum; });
  });
}

void cross_entropy_target_logit(float* target_logit, const Real* logits, const int32_t* targets, int N, int Vl,
                                int vocab_start) {
  Kokkos::parallel_for("xp::cross_entropy_target_logit", Range(0, N), KOKKOS_LAMBDA(int64_t n) {
    const int local = targets[n] - vocab_start;
    target_logit[n] = local >= 0 && local < Vl ? to_float(logits[n * Vl + local]) : 0.0f;
  });
}

namespace {

// Σ losses in double, in fixed groups of rows: the same total at any thread count (a parallel_reduce's
// order follows the threads). With loss_total it is added to that device double instead, in the same order
// (and with this file's compile flags, as the returned sum), and the host does not wait.
double sum_losses(const float* losses, int N, double* loss_total) {
  const auto loss = KOKKOS_LAMBDA(int64_t n) { return double(losses[n]); };
  if (!loss_total) return fixed_order_sum("xp::cross_entropy_sum", N, 256, loss);
  fixed_order_sum_into("xp::cross_entropy_sum", N, 256, loss, loss_total);
  return 0.0;
}

}  // namespace

double cross_entropy_finish(float* losses, float* lse, const float* row_max, const float* sum_exp,
                            const float* target_logit, int N, double* loss_total) {
  Kokkos::parallel_for("xp::cross_entropy_finish", Range(0, N), KOKKOS_LAMBDA(int64_t n) {
    const float log_sum = row_max[n] + math::log(sum_exp[n]);
    lse[n] = log_sum;
    losses[n] = log_sum - target_logit[n];
  });
  return sum_losses(losses, N, loss_total);
}

double cross_entropy_fwd(float* losses, float* lse, const Real* logits, const int32_t* targets, int N, int V,
                         int Vp, double* loss_total) {
#if defined(XP_ENABLE_CUDA)
  if (use_fused_kernels()) {  // one pass per row (online max and Σ exp), then the same fixed-order sum
    cuda::classifier_fwd(losses, lse, logits, targets, N, V, Vp, fused_stream());
    return sum_losses(losses, N, loss_total);
  }
#endif
  // One kernel, one team per row: the max pass reads the row from memory, the Σ exp pass again (from the
  // cache on a GPU), then the loss; the host waits once, for the sum.
  Kokkos::parallel_for("xp::cross_entropy_fwd", row_policy(N), KOKKOS_LAMBDA(const RowMember& team) {
    const int64_t n = team.league_rank();
    const Real* row = logits + n * Vp;
    const float max_logit = team_row_max(team, row, V);
    const float sum_exp = team_row_sum_exp(team, row, V, max_logit);
    Kokkos::single(Kokkos::PerTeam(team), [&]() {
      const float log_sum = max_logit + math::log(sum_exp);
      lse[n] = log_sum;
      losses[n] = log_sum - to_float(row[targets[n]]);
    });
  });
  return sum_losses(losses, N, loss_total);
}

void cross_entropy_bwd(Real* dlogits, const Real* logits, const float* lse, const int32_t* targets, float dloss,
                       int N, int valid, int Vl, int vocab_start) {
#if defined(XP_ENABLE_CUDA)
  if (use_fused_kernels()) {
    cuda::classifier_bwd(dlogits, logits, lse, targets, dloss, N, valid, Vl, vocab_start, fused_stream());
    return;
  }
#endif
  Kokkos::parallel_for("xp::cross_entropy_bwd", row_policy(N), KOKKOS_LAMBDA(const RowMember& team) {
    const int64_t n = team.league_rank();
    const Real* row = logits + n * Vl;
    Real* drow = dlogits + n * Vl;
    const float log_sum = lse[n];
    const int target = targets[n] - vocab_start;
    team_for(team, Vl, [&](int v) {
      const float softmax = v < valid ? math::exp(to_float(row[v]) - log_sum) : 0.0f;
      drow[v] = to_real(dloss * (softmax - (v == target ? 1.0f : 0.0f)));
    });
  });
}

double cross_entropy_fwd_bwd(float* losses, float* lse, Real* dlogits, const Real* logits, const int32_t* targets,
                             float dloss, int N, int V, int Vp, double* loss_total) {
#if defined(XP_ENABLE_CUDA)
  if (use_fused_kernels()) {  // the online pass, then dlogits from the row again (in L2), in one kernel
    cuda::classifier_fwd_bwd(losses, lse, dlogits, logits, targets, dloss, N, V, Vp, fused_stream());
    return sum_losses(losses, N, loss_total);
  }
#endif
  // cross_entropy_fwd's kernel, then cross_entropy_bwd's loop over the row in the same team, with the same
  // expressions (so the same bits): the row is read from memory once on a CPU (it stays in cache).
  Kokkos::parallel_for("xp::cross_entropy_fwd_bwd", row_policy(N), KOKKOS_LAMBDA(const RowMember& team) {
    const int64_t n = team.league_rank();
    const Real* row = logits + n * Vp;
    Real* drow = dlogits + n * Vp;
    const float max_logit = team_row_max(team, row, V);
    const float sum_exp = team_row_sum_exp(team, row, V, max_logit);
    const int target = targets[n];
    const float log_sum = max_logit + math::log(sum_exp);
    const float target_logit = to_float(row[target]);
    team.team_barrier();  // every thread has read what it needs of the row before dlogits overwrite it
    Kokkos::single(Kokkos::PerTeam(team), [&]() {
      lse[n] = log_sum;
      losses[n] = log_sum - target_logit;
    });
    team_for(team, Vp, [&](int v) {
      const float softmax = v < V ? math::exp(to_float(row[v]) - log_sum) : 0.0f;
      drow[v] = to_real(dloss * (softmax - (v == target ? 1.0f : 0.0f)));
    });
  });
  return sum_losses(losses, N, loss_total);
}

}  // namespace xp
