#include "xp/parallel/topology.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>

#include "xp/core/error.hpp"
#include "xp/model/layout.hpp"
#include "xp/model/partition.hpp"

namespace xp {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
constexpr int kMaxTensorParallel = 8;  // tp stays inside one host (DESIGN.md: up to 8 GPUs)

std::string fixed(double value, int digits) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", digits, value);
  return text;
}
std::string gib(double bytes) { return fixed(bytes / kGiB, 2); }
std::string count_text(double count) {
  if (count >= 1e9) return fixed(count / 1e9, 2) + " B";
  if (count >= 1e6) return fixed(count / 1e6, 2) + " M";
  return fixed(count, 0);
}
std::string factors(const Layout& layout) {
  return "tp_size " + std::to_string(layout.tp) + ", pp_stages " + std::to_string(layout.pp) + ", dp_size " +
         std::to_string(layout.dp);
}
// A layout the model can run on: whole heads and equal vocabulary slices per tp rank, a layer per stage.
bool runnable(const Layout& layout, const ModelConfig& model, int world) {
  return layout.tp * layout.pp * layout.dp == world && model.n_head % layout.tp == 0 &&
         model.padded_vocab() % layout.tp == 0 && layout.pp <= model.n_layer;
}

// The runnable layout of `world` ranks nearest to `wanted`: keeps its tp, then its pp, where it can.
Layout nearest_runnable(const Layout& wanted, const ModelConfig& model, int world) {
  Layout best = Layout{world, 1, 1};
  double best_score = std::numeric_limits<double>::infinity();
  for (int tp = 1; tp <= world; ++tp)
    for (int pp = 1; tp * pp <= world; ++pp) {
      const Layout candidate = Layout{world / (tp * pp), tp, pp};
      if (!runnable(candidate, model, world)) continue;
      const double score = 100.0 * (tp != wanted.tp) + 10.0 * (pp != wanted.pp) +
                           std::fabs(std::log2(double(tp) / std::max(1, wanted.tp))) +
                           std::fabs(std::log2(double(pp) / std::max(1, wanted.pp)));
      if (score < best_score) best = candidate, best_score = score;
    }
  return best;
}

// Parameters per rank of each stage, from the parameter table of that stage's tp rank 0.
std::vector<double> stage_parameters(const ModelConfig& model, const std::vector<StageRange>& ranges, int tp) {
  std::vector<double> counts;
  for (const StageRange& range : ranges)
    counts.push_back(static_cast<double>(ParameterLayout(model, placement_of(range, tp, 0)).total()));
  return counts;
}

std::vector<StageMemory> stage_memory(const Config& config, const Layout& layout, bool gpu) {
  const ModelConfig& model = config.model;
  const std::vector<StageRange> ranges = partition_layers(model, layout.pp);
  const std::vector<double> parameters = stage_parameters(model, ranges, layout.tp);
  const double B = config.train.batch_size, T = model.seq_len, C = model.n_embd, NH = model.n_head;
  const double Vp = model.padded_vocab(), tp = layout.tp, N = B * T, NC = N * C;
  const double activation_bytes = gpu ? 2.0 : 4.0;
  // fp32 statistics in activation units: two per float on GPU (bf16 activations), one on CPU.
  const double stat = gpu ? 2.0 : 1.0;
  // On GPU, head sizes 64 and 128 take the fused attention kernel (one fp32 log-sum-exp per query and
  // head, and an fp32 dq accumulator in backward); otherwise attention keeps its probabilities (NH·T
  // per token), and on GPU accumulates dqkv (3C per token) in fp32.
  const int hs = model.n_embd / model.n_head;
  const bool fused = gpu && (hs == 64 || hs == 128);
  const double attention_saved = stat * (fused ? B * NH * T : B * NH * T * T);
  const double attention_scratch = stat * (fused ? NC + B * NH * T : B * NH * T + (gpu ? 3 * NC : 0.0));
  // Saved for backward by GPT2::forward, per micro-batch: per block ln1, residual2, ln2, residual3
  // (C each) and four LayerNorm statistics, plus the tp-split qkv (3C), atty (C), fch (4C; its GELU is
  // recomputed) and what attention keeps; the stage input; on the last stage lnf, the logits (Vp/tp per
  // token) and four statistics (lnf's two, lse, losses).
  const double per_layer = 4 * NC + 4 * N * stat + (8 * NC + attention_saved) / tp;
  const double head = NC + 4 * N * stat + N * Vp / tp;
  // Once per stage: the forward scratch, dresidual and dC (C), d3C, d4C and the GELU output (tp-split),
  // attention scratch.
  const double working = 3 * NC + (11 * NC + attention_scratch) / tp;

  std::vector<StageMemory> stages;
  for (size_t s = 0; s < ranges.size(); ++s) {
    StageMemory memory;
    memory.stage = static_cast<int>(s);
    memory.first_layer = ranges[s].first_layer;
    memory.last_layer = ranges[s].last_layer;
    const double P = parameters[s];
    memory.parameters = P;
    memory.weights = P * (gpu ? 6.0 : 4.0);
    memory.grads = P * 4.0;
    memory.optimizer = P * 8.0 / (config.parallel.zero_stage == 1 ? layout.dp : 1);
    const double in_flight = std::min(layout.pp - int(s), config.train.grad_accum_steps);
    const double saved = NC + ranges[s].layers() * per_layer + (ranges[s].has_head ? head : 0.0);
    memory.activations = (in_flight * saved + working) * activation_bytes;
    if (layout.pp > 1) memory.comm_buffers += 2 * NC * activation_bytes;
    if (gpu && layout.dp > 1) memory.comm_buffers += std::min(25e6, P) * 4.0;
    memory.total = memory.weights + memory.grads + memory.optimizer + memory.activations + memory.comm_buffers;
    stages.push_back(memory);
  }
  return stages;
}

const StageMemory& largest(const std::vector<StageMemory>& stages) {
  return *std::max_element(stages.begin(), stages.end(),
                           [](const StageMemory& a, const StageMemory& b) { return a.total < b.total; });
}

// The first single change, in order of preference, that makes every stage fit; else the shortfall
// and the smallest larger world (up to 64 ranks) where some layout would fit.
std::string advise(const Config& config, const Layout& layout, bool gpu, const ParameterLayout& table,
                   double available) {
  const ModelConfig& model = config.model;
  const int world = layout.tp * layout.pp * layout.dp;
  auto need = [&](const Config& c, const Layout& l) { return largest(stage_memory(c, l, gpu)).total; };
  auto result = [&](const Layout& l, double bytes) {
    return " (" + factors(l) + ": largest stage " + gib(bytes) + " of " + gib(available) + " GiB)";
  };

  for (int pp = layout.pp + 1; layout.tp * pp <= world; ++pp) {
    const Layout candidate = Layout{world / (layout.tp * pp), layout.tp, pp};
    if (!runnable(candidate, model, world)) continue;
    const double bytes = need(config, candidate);
    if (bytes <= available) return "raise pp_stages to " + std::to_string(pp) + result(candidate, bytes);
  }
  for (int tp = layout.tp + 1; tp <= std::min(world, kMaxTensorParallel); ++tp)
    for (int pp = layout.pp; pp >= 1; --pp) {
      const Layout candidate = Layout{world / (tp * pp), tp, pp};
      if (!runnable(candidate, model, world)) continue;
      const double bytes = need(config, candidate);
      if (bytes <= available)
        return "raise tp_size to " + std::to_string(tp) +
               (pp != layout.pp ? " and set pp_stages to " + std::to_string(pp) : "") + result(candidate, bytes);
      break;  // the largest pp that fits the world is the one to try
    }
  if (config.parallel.zero_stage == 0 && layout.dp > 1) {
    Config sharded = config;
    sharded.parallel.zero_stage = 1;
    const double bytes = need(sharded, layout);
    if (bytes <= available) return "set zero_stage = 1" + result(layout, bytes);
  }
  for (int batch = config.train.batch_size - 1; batch >= 1; --batch) {
    const int64_t sequences = int64_t{config.train.batch_size} * config.train.grad_accum_steps;
    if (sequences % batch != 0) continue;  // keep the global batch exactly
    Config smaller = config;
    smaller.train.batch_size = batch;
    smaller.train.grad_accum_steps = static_cast<int>(sequences / batch);
    const double bytes = need(smaller, layout);
    if (bytes <= available)
      return "lower batch_size to " + std::to_string(batch) + " with grad_accum_steps = " +
             std::to_string(smaller.train.grad_accum_steps) + " for the same global batch" + result(layout, bytes);
  }

  const std::vector<StageMemory> stages = stage_memory(config, layout, gpu);
  const StageMemory& worst = largest(stages);
  std::string text = "no single change fits on " + std::to_string(world) + " ranks: stage " +
                     std::to_string(worst.stage) + " needs " + gib(worst.total) + " GiB per rank, " +
                     gib(worst.total - available) + " GiB more than the " + gib(available) + " GiB available";
  // Weights, grads and AdamW state spread perfectly over the world: no layout of it goes below this.
  const double state_bytes = double(table.total()) * (gpu ? 18.0 : 16.0) / world;
  if (state_bytes > available)
    text += " (weights, grads and AdamW state alone, spread evenly over " + std::to_string(world) + " ranks, need " +
            gib(state_bytes) + " GiB each)";
  // The smallest larger world where some layout fits, preferring most replicas, then the current tp.
  for (int bigger = world * 2; bigger <= 64; bigger *= 2)
    for (int product = 1; product <= bigger; ++product) {
      if (bigger % product != 0) continue;
      std::vector<int> tps;
      for (int tp = 1; tp <= std::min(product, kMaxTensorParallel); ++tp)
        if (product % tp == 0) tps.push_back(tp);
      std::stable_sort(tps.begin(), tps.end(), [&](int a, int b) {
        return std::fabs(std::log2(double(a) / layout.tp)) < std::fabs(std::log2(double(b) / layout.tp));
      });
      for (int tp : tps) {
        const Layout candidate = Layout{bigger / product, tp, product / tp};
        if (!runnable(candidate, model, bigger)) continue;
        Config wider = config;
        if (candidate.dp > 1) wider.parallel.zero_stage = 1;
        const double bytes = need(wider, candidate);
        if (bytes > available) continue;
        return text + "; " + std::to_string(bigger) + " ranks would fit with " + factors(candidate) +
               (wider.parallel.zero_stage == 1 ? ", zero_stage 1" : "") + " (largest stage " + gib(bytes) + " GiB)";
      }
    }
  return text + "; use more ranks or devices with more memory";
}

}  // namespace

Layout choose_layout(const ParallelConfig& parallel, const ModelConfig& model, int world_size) {
  const int world = world_size;
  if (world < 1) throw InputError("world_size " + std::to_string(world) + " < 1");
  const int64_t parameters = count_parameters(model);
  int seed_tp = 4, seed_pp = 2;
  if (parameters <= 2'000'000'000LL && model.seq_len <= 2048) seed_tp = seed_pp = 1;
  else if (parameters <= 7'000'000'000LL) seed_tp = 2, seed_pp = 1;

  // Auto degrees shrink until they divide what the fixed degrees leave of the world.
  auto room = [world](int fixed) { return world % fixed == 0 ? world / fixed : world; };
  const int fixed_dp = std::max(1, parallel.dp_size);
  Layout layout;
  layout.tp = parallel.tp_size;
  if (layout.tp == 0) {
    const int space = room(std::max(1, parallel.pp_stages) * fixed_dp);
    layout.tp = seed_tp;
    while (layout.tp > 1 && (space % layout.tp != 0 || model.n_head % layout.tp != 0 ||
                             model.padded_vocab() % layout.tp != 0))
      layout.tp /= 2;
  }
  layout.pp = parallel.pp_stages;
  if (layout.pp == 0) {
    const int space = room(layout.tp * fixed_dp);
    layout.pp = seed_pp;
    while (layout.pp > 1 && (space % layout.pp != 0 || layout.pp > model.n_layer)) --layout.pp;
  }
  layout.dp = parallel.dp_size > 0 ? parallel.dp_size : std::max(1, world / (layout.tp * layout.pp));

  const std::string ranks = std::to_string(world) + " ranks";
  const std::string proposal = "; with " + ranks + " try " + factors(nearest_runnable(layout, model, world));
  const int product = layout.tp * layout.pp * layout.dp;
  if (product != world)
    throw InputError("tp_size " + std::to_string(layout.tp) + " × pp_stages " + std::to_string(layout.pp) +
                     " × dp_size " + std::to_string(layout.dp) + " = " + std::to_string(product) + " ≠ " + ranks +
                     proposal);
  if (model.n_head % layout.tp != 0)
    throw InputError("n_head " + std::to_string(model.n_head) + " is not divisible by tp_size " +
                     std::to_string(layout.tp) + ": each tensor-parallel rank needs whole attention heads" + proposal);
  if (model.padded_vocab() % layout.tp != 0)
    throw InputError("padded vocabulary " + std::to_string(model.padded_vocab()) + " (vocab_size " +
                     std::to_string(model.vocab_size) + " rounded up to a multiple of 128) is not divisible by tp_size " +
                     std::to_string(layout.tp) + ": each tensor-parallel rank holds an equal vocabulary slice" +
                     proposal);
  if (layout.pp > model.n_layer)
    throw InputError("pp_stages " + std::to_string(layout.pp) + " > n_layer " + std::to_string(model.n_layer) +
                     ": every pipeline stage needs at least one layer (use pp_stages ≤ " +
                     std::to_string(model.n_layer) + ")" + proposal);
  return layout;
}

std::string rank_map(const Layout& layout) {
  const int world = layout.tp * layout.pp * layout.dp;
  if (world > 16)
    return "(shown for up to 16 ranks) world rank r is tp rank r % tp, stage (r / tp) % pp, replica r / (tp·pp)\n";
  auto rank = [&](int d, int p, int t) { return (d * layout.pp + p) * layout.tp + t; };
  auto line = [&](const char* title, int outer, int inner, int members, auto member_rank) {
    std::string text = std::string(title) + " groups:";
    for (int a = 0; a < outer; ++a)
      for (int b = 0; b < inner; ++b) {
        text += " [";
        for (int m = 0; m < members; ++m) text += (m ? "," : "") + std::to_string(member_rank(a, b, m));
        text += "]";
      }
    return text;
  };
  return line("tp", layout.dp, layout.pp, layout.tp, [&](int d, int p, int t) { return rank(d, p, t); }) + "\n" +
         line("pp", layout.dp, layout.tp, layout.pp, [&](int d, int t, int p) { return rank(d, p, t); }) +
         (layout.pp > 1 ? "   (stage 0 → stage " + std::to_string(layout.pp - 1) + ")\n" : "\n") +
         line("dp", layout.pp, layout.tp, layout.dp, [&](int p, int t, int d) { return rank(d, p, t); }) + "\n";
}

MemoryPlan estimate_memory(const Config& config, const Layout& layout, bool gpu) {
  const ParameterLayout table(config.model);
  MemoryPlan plan;
  plan.gpu = gpu;
  plan.stages = stage_memory(config, layout, gpu);
  const int world = layout.tp * layout.pp * layout.dp;
  plan.available = config.parallel.device_memory > 0 ? config.parallel.device_memory
                                                     : (gpu ? 0.0 : detect_device_memory(world));
  plan.fits = plan.available <= 0 || largest(plan.stages).total <= plan.available;
  if (!plan.fits) plan.advice = advise(config, layout, gpu, table, plan.available);
  return plan;
}

double detect_device_memory(int ranks_on_host) {
  std::ifstream meminfo("/proc/meminfo");
  std::string key, unit;
  double kib = 0;
  while (meminfo >> key >> kib) {
    std::getline(meminfo, unit);
    if (key == "MemAvailable:") return kib * 1024.0 / std::max(1, ranks_on_host);
  }
  return 0.0;
}

std::string format_memory_table(const MemoryPlan& plan, const Layout& layout) {
  std::ostringstream out;
  out << "memory per rank in GiB (" << factors(layout) << "; "
      << (plan.gpu ? "GPU: fp32 master + bf16 weights, bf16 activations" : "CPU: fp32 throughout") << ")\n";
  char row[256];
  std::snprintf(row, sizeof row, "%5s  %-12s %11s %8s %8s %9s %11s %7s %8s\n", "stage", "layers", "params/rank",
                "weights", "grads", "optimizer", "activations", "comm", "total");
  out << row;
  for (const StageMemory& s : plan.stages) {
    const std::string layers = std::to_string(s.first_layer) + "-" + std::to_string(s.last_layer - 1) + " (" +
                               std::to_string(s.last_layer - s.first_layer) + ")";
    std::snprintf(row, sizeof row, "%5d  %-12s %11s %8s %8s %9s %11s %7s %8s\n", s.stage, layers.c_str(),
                  count_text(s.parameters).c_str(), gib(s.weights).c_str(), gib(s.grads).c_str(),
                  gib(s.optimizer).c_str(), gib(s.activations).c_str(), gib(s.comm_buffers).c_str(),
                  gib(s.total).c_str());
    out << row;
  }
  if (plan.available <= 0) {
    out << "available  unknown\nverdict    not checked: set device_memory (e.g. device_memory=80GB)\n";
    return out.str();
  }
  const double need = plan.stages.empty() ? 0.0 : largest(plan.stages).total;
  out << "available  " << gib(plan.available) << " GiB per rank (" << fixed(plan.available / 1e9, 2) << " GB)\n";
  if (plan.fits) out << "verdict    fits: largest stage " << gib(need) << " GiB, " << gib(plan.available - need) << " GiB to spare\n";
  else out << "verdict    does not fit: " << plan.advice << "\n";
  return out.str();
}

std::string dry_run_report(const Config& config, int world_size, bool gpu) {
  const ModelConfig& model = config.model;
  const ParallelConfig& parallel = config.parallel;
  const Layout layout = choose_layout(parallel, model, world_size);
  const std::vector<StageRange> ranges = partition_layers(model, layout.pp);
  const MemoryPlan plan = estimate_memory(config, layout, gpu);
  const int64_t parameters = count_parameters(model);

  std::string automatic;
  for (const auto& [value, name] : {std::pair<int, const char*>{parallel.tp_size, "tp_size"},
                                    {parallel.pp_stages, "pp_stages"}, {parallel.dp_size, "dp_size"}})
    if (value == 0) automatic += (automatic.empty() ? "" : ", ") + std::string(name);
  std::ostringstream out;
  out << "xp_train dry run: " << world_size << " ranks, " << (gpu ? "GPU" : "CPU") << "; nothing is allocated\n";
  out << "model     " << model.model << ": n_layer " << model.n_layer << ", n_head " << model.n_head << ", n_embd "
      << model.n_embd << ", seq_len " << model.seq_len << ", vocab_size " << model.vocab_size << " (padded "
      << model.padded_vocab() << ")\n";
  out << "          " << fixed(parameters / 1e9, 2) << " B parameters (" << parameters << ")\n";
  out << "layout    tp_size " << layout.tp << " × pp_stages " << layout.pp << " × dp_size " << layout.dp << " = "
      << world_size << " ranks" << (automatic.empty() ? "" : " (auto: " + automatic + ")") << ", zero_stage "
      << parallel.zero_stage << "\n";
  out << "batch     micro-batch " << config.train.batch_size << " × " << model.seq_len << " tokens, grad_accum_steps "
      << config.train.grad_accum_steps << ", global batch "
      << int64_t{layout.dp} * config.train.batch_size * config.train.grad_accum_steps << " sequences\n";
  std::istringstream map(rank_map(layout));
  std::string line;
  for (bool first = true; std::getline(map, line); first = false) out << (first ? "rank map  " : "          ") << line << "\n";
  for (size_t s = 0; s < ranges.size(); ++s) {
    out << (s == 0 ? "stages    " : "          ") << "stage " << s << ": layers " << ranges[s].first_layer << "-"
        << ranges[s].last_layer - 1 << " (" << ranges[s].layers() << ")";
    if (ranges[s].has_embedding) out << " + embedding";
    if (ranges[s].has_head) out << " + final LayerNorm, LM head (tied wte)";
    out << "\n";
  }
  out << format_memory_table(plan, layout);
  return out.str();
}

}  // namespace xp
