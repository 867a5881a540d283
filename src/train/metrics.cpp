#include "xp/train/metrics.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "xp/config/deck.hpp"
#include "xp/core/error.hpp"

namespace xp {
namespace {

// A JSON string's content: quotes, backslashes and control characters escaped.
std::string json_escape(const std::string& text) {
  std::string out;
  for (const char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned char>(c));
      out += escaped;
    } else {
      out += c;
    }
  }
  return out;
}

// A number, or null where it is NaN or infinite (a bad step's loss or norm): JSON has no NaN.
std::string json_number(double value) {
  if (!std::isfinite(value)) return "null";
  char text[32];
  std::snprintf(text, sizeof text, "%.7g", value);
  return text;
}

}  // namespace

double training_flops_per_token(const ModelConfig& model) {
  const double C = model.n_embd, L = model.n_layer;
  const double matmul_weights = 12.0 * L * C * C + static_cast<double>(model.padded_vocab()) * C;
  return 6.0 * matmul_weights + 12.0 * L * model.seq_len * C;
}

double host_peak_flops(int threads) {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  double mhz = 0.0;
  bool avx512 = false, avx2 = false, fma = false;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("cpu MHz", 0) == 0) mhz = std::max(mhz, std::stod(line.substr(line.find(':') + 1)));
    if (line.rfind("flags", 0) == 0) {
      std::istringstream flags(line.substr(line.find(':') + 1));
      for (std::string flag; flags >> flag;) {
        avx512 |= flag == "avx512f";
        avx2 |= flag == "avx2";
        fma |= flag == "fma";
      }
    }
  }
  if (mhz <= 0.0) mhz = 3000.0;  // no clock reported: assume a high one, so MFU errs low
  const double flops_per_cycle = avx512 ? 64.0 : (avx2 && fma) ? 32.0 : 8.0;
  return threads * mhz * 1e6 * flops_per_cycle;
}

MetricsLog::MetricsLog(const Config& config, const Layout& layout, int64_t tokens_per_step,
                       double peak_flops_per_rank, bool writer, bool append)
    : config_(config), layout_(layout), tokens_per_step_(tokens_per_step),
      flops_per_token_(training_flops_per_token(config.model)), peak_flops_per_rank_(peak_flops_per_rank),
      writer_(writer) {
  if (!writer_) return;
  const std::string path = config.run.run_dir + "/metrics.jsonl";
  jsonl_ = std::fopen(path.c_str(), append ? "a" : "w");
  XP_REQUIRE(jsonl_, "cannot write '" + path + "': " + std::strerror(errno));
  if (config.run.tensorboard) {
    tensorboard_ = std::make_unique<TensorBoardWriter>(config.run.run_dir);
    tensorboard_->text(0, "config", "```toml\n" + config_to_toml(config) + "```\n");
  }
}

MetricsLog::~MetricsLog() {
  if (jsonl_) std::fclose(jsonl_);
}

void MetricsLog::message(const std::string& text) const {
  if (!writer_) return;
  std::printf("%s\n", text.c_str());
  std::fflush(stdout);
}

void MetricsLog::record(const StepRecord& r) {
  const int ranks = layout_.dp * layout_.tp * layout_.pp;
  const double seconds = r.ms / 1000.0;
  const double tokens_per_s = tokens_per_step_ / seconds;
  const double flops = flops_per_token_ * tokens_per_step_ / seconds;  // whole job
  const double mfu = flops / (peak_flops_per_rank_ * ranks);
  // The first step of a process pays one-off costs (page faults, BLAS start-up); the ETA leaves it out.
  if (++recorded_ > 1) {
    total_ms_ += r.ms;
    ++timed_steps_;
  }
  const double mean_ms = timed_steps_ > 0 ? total_ms_ / timed_steps_ : r.ms;
  const double eta_s = (config_.train.steps - r.step) * mean_ms / 1000.0;
  if (!writer_) return;

  const char* action = r.skipped ? "SKIPPED" : r.rolled_back ? "ROLLED BACK" : r.stopped ? "STOPPED" : nullptr;
  if (action || r.step % config_.run.log_every == 0 || r.step == config_.train.steps || r.val_loss >= 0.0) {
    char val[48] = "";
    if (r.val_loss >= 0.0) std::snprintf(val, sizeof val, " | val %.4f", r.val_loss);
    const std::string bad = action ? std::string(" | ") + action + ": " + r.reason : "";
    std::printf("step %6lld/%lld | loss %.4f%s | lr %.3e | norm %.3f | %.1f ms | %.0f tok/s | %.3f TFLOP/s | "
                "MFU %.1f%% | dp=%d tp=%d pp=%d | ETA %.0f s%s\n",
                static_cast<long long>(r.step), static_cast<long long>(config_.train.steps), r.loss, val, r.lr,
                r.grad_norm, r.ms, tokens_per_s, flops / 1e12, 100.0 * mfu, layout_.dp, layout_.tp, layout_.pp,
                eta_s, bad.c_str());
    std::fflush(stdout);
  }
  std::fprintf(jsonl_,
               "{\"step\": %lld, \"loss\": %s, \"lr\": %.7g, \"grad_norm\": %s, \"ms\": %.4f, "
               "\"tokens_per_s\": %.2f, \"tokens_per_s_per_rank\": %.2f, \"tflops\": %.6g, \"mfu\": %.6g, "
               "\"dp\": %d, \"tp\": %d, \"pp\": %d, \"eta_s\": %.1f",
               static_cast<long long>(r.step), json_number(r.loss).c_str(), r.lr, json_number(r.grad_norm).c_str(), r.ms,
               tokens_per_s, tokens_per_s / ranks,
               flops / 1e12, mfu, layout_.dp, layout_.tp, layout_.pp, eta_s);
  if (r.val_loss >= 0.0) std::fprintf(jsonl_, ", \"val_loss\": %.7g", r.val_loss);
  if (r.device_memory_gib >= 0.0) std::fprintf(jsonl_, ", \"peak_memory_gib\": %.4g", r.device_memory_gib);
  std::fprintf(jsonl_, ", \"skipped\": %s, \"rolled_back\": %s", r.skipped ? "true" : "false",
               r.rolled_back ? "true" : "false");
  if (r.stopped) std::fprintf(jsonl_, ", \"stopped\": true");
  if (!r.reason.empty()) std::fprintf(jsonl_, ", \"reason\": \"%s\"", json_escape(r.reason).c_str());
  std::fprintf(jsonl_, "}\n");
  std::fflush(jsonl_);
  if (!tensorboard_) return;
  // Tags are metrics.jsonl's keys, so the two files read alike.
  std::vector<std::pair<std::string, double>> scalars = {
      {"loss", r.loss},     {"lr", r.lr},   {"grad_norm", r.grad_norm},     {"ms", r.ms},
      {"tokens_per_s", tokens_per_s},       {"tokens_per_s_per_rank", tokens_per_s / ranks},
      {"tflops", flops / 1e12}, {"mfu", mfu}, {"eta_s", eta_s}};
  if (r.val_loss >= 0.0) scalars.emplace_back("val_loss", r.val_loss);
  if (r.device_memory_gib >= 0.0) scalars.emplace_back("peak_memory_gib", r.device_memory_gib);
  tensorboard_->scalars(r.step, scalars);
}

}  // namespace xp
