#include "xp/io/checkpoint_names.hpp"

#include <cinttypes>
#include <cstdio>

namespace xp {
namespace {

const std::string step_prefix = "step_";

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The step of "step_NNNNNN"; -1 otherwise (also past 18 digits, which would overflow).
int64_t parse_visible(const std::string& name) {
  if (name.rfind(step_prefix, 0) != 0) return -1;
  const std::string digits = name.substr(step_prefix.size());
  if (digits.empty() || digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoll(digits);
}

}  // namespace

std::string step_dir_name(int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "%s%06" PRId64, step_prefix.c_str(), step);
  return name;
}

std::string hidden_step_dir_name(int64_t step, const char* suffix) { return "." + step_dir_name(step) + suffix; }

int64_t parse_step_dir(const std::string& name, std::string& suffix) {
  suffix.clear();
  if (name.empty() || name[0] != '.') return parse_visible(name);
  for (const char* candidate : {partial_suffix, replaced_suffix, deleting_suffix}) {
    const std::string hidden = candidate;
    if (!ends_with(name, hidden) || name.size() < hidden.size() + 1) continue;
    const int64_t step = parse_visible(name.substr(1, name.size() - hidden.size() - 1));
    if (step >= 0) suffix = hidden;
    return step;
  }
  return -1;
}

std::string shard_file_name(int stage, int tp_rank) {
  char name[64];
  std::snprintf(name, sizeof name, "shard_pp%02d_tp%02d.h5", stage, tp_rank);
  return name;
}

const char* moment_name(Moment moment) {
  switch (moment) {
    case Moment::Param: return "param";
    case Moment::ExpAvg: return "exp_avg";
    case Moment::ExpAvgSq: return "exp_avg_sq";
  }
  return "?";
}

std::string shard_dataset_path(Moment moment, const std::string& tensor) {
  return std::string("/") + moment_name(moment) + "/" + tensor;
}

std::string stage_group_path(int stage) { return "/stage_" + std::to_string(stage); }

std::string index_dataset_path(Moment moment, int stage, const std::string& tensor) {
  const std::string stage_path = stage_group_path(stage) + "/" + tensor;
  return moment == Moment::Param ? stage_path : std::string("/optimizer/") + moment_name(moment) + stage_path;
}

std::string shard_record_path(const std::string& shard_file) { return "/shards/" + shard_file; }

}  // namespace xp
