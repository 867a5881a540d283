#include "xp/train/step_guard.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "xp/core/error.hpp"
#include "xp/core/host_copy.hpp"

namespace xp {
namespace {

const char* fault_form = "nan_grad@STEP, nan_grad@STEP:RANK, spike_loss@STEP or spike_loss@STEP:RANK "
                         "(STEP >= 1, several joined by commas)";

// A whole decimal number >= `min`, or -1.
int64_t parse_count(const std::string& text, int64_t min) {
  if (text.empty() || text.size() > 12 || text.find_first_not_of("0123456789") != std::string::npos) return -1;
  const int64_t value = std::stoll(text);
  return value >= min ? value : -1;
}

std::string show(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", value);
  return text;
}

}  // namespace

std::vector<Fault> parse_faults(const std::string& text) {
  std::vector<Fault> faults;
  if (text.empty()) return faults;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const auto refuse = [&] {
      throw InputError("XP_INJECT='" + text + "': '" + item + "' is not a fault; expected " + fault_form);
    };
    const size_t at = item.find('@');
    if (at == std::string::npos) refuse();
    Fault fault;
    const std::string kind = item.substr(0, at);
    if (kind == "nan_grad") fault.kind = FaultKind::NanGrad;
    else if (kind == "spike_loss") fault.kind = FaultKind::SpikeLoss;
    else refuse();
    const std::string rest = item.substr(at + 1);
    const size_t colon = rest.find(':');
    fault.step = parse_count(rest.substr(0, colon), 1);
    if (fault.step < 0) refuse();
    if (colon != std::string::npos) {
      const int64_t rank = parse_count(rest.substr(colon + 1), 0);
      if (rank < 0 || rank > std::numeric_limits<int>::max()) refuse();
      fault.rank = static_cast<int>(rank);
    }
    faults.push_back(fault);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return faults;
}

const std::vector<Fault>& faults_from_environment() {
  // Parsed once: a test facility must not change under a running job. A malformed value throws on
  // every call, so every rank refuses it at set-up.
  static const std::string text = [] {
    const char* value = std::getenv("XP_INJECT");
    return std::string(value ? value : "");
  }();
  static const std::vector<Fault> faults = parse_faults(text);
  return faults;
}

double inject_faults(std::vector<Fault>& pending, int64_t step, int rank, GPT2& model, double loss_sum) {
  for (const Fault& fault : pending) {
    if (fault.step != step || (fault.rank >= 0 && fault.rank != rank)) continue;
    exec_space().fence();
    if (fault.kind == FaultKind::NanGrad) {
      // Into a tensor split over tp where there is one: a value only this rank holds.
      int64_t offset = 0;
      for (const TensorInfo& tensor : model.layout().tensors())
        if (tensor.split != Split::Replicated && tensor.size > 0) {
          offset = tensor.offset;
          break;
        }
      const float nan = std::numeric_limits<float>::quiet_NaN();
      copy_from_host(&nan, offset, offset + 1, 0, model.grads);
    } else {
      const FloatBuffer grads = model.grads;
      const float scale = static_cast<float>(spike_injection_scale);
      Kokkos::parallel_for("xp::inject_spike", Range(0, model.layout().total()),
                           KOKKOS_LAMBDA(int64_t i) { grads(i) *= scale; });
      exec_space().fence();
      loss_sum *= spike_injection_scale;
    }
  }
  const auto fired = [step](const Fault& fault) { return fault.step == step; };
  pending.erase(std::remove_if(pending.begin(), pending.end(), fired), pending.end());
  return loss_sum;
}

void TrailingWindow::push(double value) {
  values_.push_back(value);
  if (static_cast<int64_t>(values_.size()) > size_) values_.pop_front();
}

double TrailingWindow::mean() const {
  double sum = 0.0;
  for (const double value : values_) sum += value;
  return values_.empty() ? 0.0 : sum / static_cast<double>(values_.size());
}

double TrailingWindow::stddev() const {
  if (values_.empty()) return 0.0;
  const double centre = mean();
  double sum = 0.0;
  for (const double value : values_) sum += (value - centre) * (value - centre);
  return std::sqrt(sum / static_cast<double>(values_.size()));
}

bool TrailingWindow::spike(double value, double zscore) const {
  if (!full() || zscore <= 0.0) return false;
  const double spread = stddev();
  return spread > 0.0 && value > mean() + zscore * spread;
}

StepGuard::StepGuard(const GuardConfig& config)
    : config_(config), losses_(config.spike_window), grad_norms_(config.spike_window) {}

Verdict StepGuard::check(double loss, double grad_norm, bool local_grads_finite, MPI_Comm world) {
  BadStep kind = BadStep::None;
  if (!local_grads_finite) kind = BadStep::NonFiniteGradient;
  else if (!std::isfinite(grad_norm)) kind = BadStep::NonFiniteGradNorm;
  else if (!std::isfinite(loss)) kind = BadStep::NonFiniteLoss;
  else if (grad_norms_.spike(grad_norm, config_.spike_zscore)) kind = BadStep::GradNormSpike;
  else if (losses_.spike(loss, config_.spike_zscore)) kind = BadStep::LossSpike;
  int rank = 0;
  XP_MPI_CHECK(MPI_Comm_rank(world, &rank));
  // The one collective of the guard: the worst verdict of any rank, and the lowest rank that had it.
  struct {
    int kind, rank;
  } mine{static_cast<int>(kind), rank}, worst{0, 0};
  XP_MPI_CHECK(MPI_Allreduce(&mine, &worst, 1, MPI_2INT, MPI_MAXLOC, world));

  Verdict verdict;
  verdict.kind = static_cast<BadStep>(worst.kind);
  verdict.rank = worst.rank;
  const auto spike_text = [&](const char* what, double value, const TrailingWindow& window) {
    const double spread = window.stddev();
    return std::string(what) + " spike: " + show(value) + " is " + show((value - window.mean()) / spread) +
           " std above the mean " + show(window.mean()) + " of the last " + std::to_string(config_.spike_window) +
           " good steps (spike_zscore " + show(config_.spike_zscore) + ")";
  };
  switch (verdict.kind) {
    case BadStep::None:
      losses_.push(loss);
      grad_norms_.push(grad_norm);
      break;
    case BadStep::NonFiniteGradient:
      verdict.reason = "non-finite gradient (first on rank " + std::to_string(verdict.rank) + ")";
      break;
    case BadStep::NonFiniteGradNorm: verdict.reason = "non-finite gradient norm (" + show(grad_norm) + ")"; break;
    case BadStep::NonFiniteLoss: verdict.reason = "non-finite loss (" + show(loss) + ")"; break;
    case BadStep::GradNormSpike: verdict.reason = spike_text("gradient norm", grad_norm, grad_norms_); break;
    case BadStep::LossSpike: verdict.reason = spike_text("loss", loss, losses_); break;
  }
  return verdict;
}

bool StepGuard::allow_rollback(int64_t steps_run) {
  while (!rollbacks_.empty() && rollbacks_.front() <= steps_run - config_.spike_window) rollbacks_.pop_front();
  if (static_cast<int64_t>(rollbacks_.size()) >= config_.max_rollbacks) return false;
  rollbacks_.push_back(steps_run);
  return true;
}

std::string StepGuard::rollback_history() const {
  std::string out;
  for (const int64_t step : rollbacks_) out += (out.empty() ? "" : ", ") + std::to_string(step);
  return out;
}

}  // namespace xp
