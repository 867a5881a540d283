#include "xp/train/fit_check.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "xp/core/device.hpp"
#include "xp/parallel/topology.hpp"

namespace xp {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

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

const StageMemory& largest(const std::vector<StageMemory>& stages) {
  return *std::max_element(stages.begin(), stages.end(),
                           [](const StageMemory& a, const StageMemory& b) { return a.total < b.total; });
}

// What a layout's what-if plan (dry run, tests) may use per rank.
double what_if_available(const Config& config, const Layout& layout, bool gpu) {
  if (config.parallel.device_memory > 0) return config.parallel.device_memory;
  // A dry run previews the run on this host: all the layout's ranks share its RAM.
  const int ranks_on_host = layout.tp * layout.pp * layout.dp;
  return gpu ? 0.0 : detect_device_memory(ranks_on_host);
}

// What a stage needs of the memory `available` counts: the device's, or on CPU builds the one RAM.
double stage_need(const StageMemory& s, const Precision& precision) {
  return precision.gpu ? s.total : s.ram_need();
}
double largest_need(const std::vector<StageMemory>& stages, const Precision& precision) {
  double need = 0;
  for (const StageMemory& s : stages) need = std::max(need, stage_need(s, precision));
  return need;
}
// Host memory of the ranks of one node: every stage's tp × dp ranks, the world spread evenly over nodes.
double host_per_node(const std::vector<StageMemory>& stages, const Layout& layout, int ranks_per_node) {
  double world_bytes = 0;
  for (const StageMemory& s : stages) world_bytes += s.host * layout.tp * layout.dp;
  const int world = layout.tp * layout.pp * layout.dp;
  return world_bytes * std::min(ranks_per_node, world) / world;
}

// Extra compute of recomputing activations, as a fraction of a step's (forward + backward ≈ 3 forwards):
// per token and layer a forward costs 2·12·C² in matmuls (qkv 3C², attention projection C², fc 4C²,
// its projection 4C²) and 4·T·C in attention scores and values, the LM head 2·C·Vp. What reruns is
// what model/buffers.hpp does not keep: selective the attention and the fc GEMM (+ LayerNorms, GELU:
// negligible), full the block's forward up to fc+GELU (all but the MLP's projection).
double recompute_cost(const ModelConfig& model, Recompute mode) {
  const double C = model.n_embd, T = model.seq_len, L = model.n_layer;
  const double attention = 4 * T * C, block = 24 * C * C + attention;
  const double step = 3 * (L * block + 2 * C * model.padded_vocab());
  if (mode == Recompute::Full) return L * (16 * C * C + attention) / step;
  if (mode == Recompute::Selective) return L * (8 * C * C + attention) / step;
  return 0;
}

std::string percent(double fraction) { return fixed(100 * fraction, fraction < 0.1 ? 1 : 0) + "%"; }

// The options the advisor may set besides the layout, one combination: ZeRO-1, a recompute mode, offload.
struct Options {
  bool zero = false;
  Recompute recompute = Recompute::None;
  bool offload = false;
  int cost = 0;  // the order to try them in: cheapest first
};

// Every combination that changes something the config does not already have, cheapest first: ZeRO-1
// (no extra work), selective recomputation (a few %), offload (PCIe traffic, AdamW on the host), full
// recomputation (one more forward).
std::vector<Options> option_sets(const Config& config) {
  std::vector<Options> sets;
  for (const bool zero : {false, true})
    for (const Recompute recompute : {Recompute::None, Recompute::Selective, Recompute::Full})
      for (const bool offload : {false, true}) {
        if (zero && config.parallel.zero_stage == 1) continue;
        if (recompute != Recompute::None && recompute <= config.parallel.recompute) continue;
        if (offload && config.parallel.optimizer_offload) continue;
        const int cost = (zero ? 1 : 0) + (recompute == Recompute::Selective ? 2 : recompute == Recompute::Full ? 8 : 0) +
                         (offload ? 4 : 0);
        if (cost > 0) sets.push_back({zero, recompute, offload, cost});
      }
  std::stable_sort(sets.begin(), sets.end(), [](const Options& a, const Options& b) { return a.cost < b.cost; });
  return sets;
}

Config with_options(const Config& config, const Options& options) {
  Config changed = config;
  if (options.zero) changed.parallel.zero_stage = 1;
  if (options.recompute != Recompute::None) changed.parallel.recompute = options.recompute;
  if (options.offload) changed.parallel.optimizer_offload = true;
  return changed;
}

// "set zero_stage = 1 and optimizer_offload = true" with what each costs.
std::string describe_options(const Config& changed, const Options& options, const RunPlan& plan, int ranks_per_node) {
  std::vector<std::string> knobs, costs;
  if (options.zero) knobs.push_back("zero_stage = 1");
  if (options.recompute != Recompute::None) {
    const bool full = options.recompute == Recompute::Full;
    knobs.push_back(std::string("recompute = \"") + (full ? "full" : "selective") + "\"");
    costs.push_back("~+" + percent(recompute_cost(changed.model, options.recompute)) + " compute (" +
                    (full ? "each block's forward" : "attention and fc+GELU forwards") + " again in backward)");
  }
  if (options.offload) {
    knobs.push_back("optimizer_offload = true");
    double host = 0, traffic = 0;
    for (const StageMemory& s : plan.memory) {
      host = std::max(host, s.host);
      traffic = std::max(traffic, s.offload_traffic);
    }
    costs.push_back("host memory " + gib(host) + " GiB per rank, " +
                    gib(host_per_node(plan.memory, plan.layout, ranks_per_node)) + " GiB per node; ~" +
                    fixed(traffic / 1e9, 1) + " GB per step per rank over PCIe (gradients down, weights up); "
                    "AdamW on the host cores");
  }
  std::string text = "set ";
  for (size_t i = 0; i < knobs.size(); ++i) text += (i == 0 ? "" : " and ") + knobs[i];
  if (!costs.empty()) {
    text += " [cost: ";
    for (size_t i = 0; i < costs.size(); ++i) text += (i == 0 ? "" : "; ") + costs[i];
    text += "]";
  }
  return text;
}

// The first single change, in order of preference, that makes every stage fit; then recomputation and
// offload, alone, together, and with another layout; else the shortfall and the smallest larger world
// (up to 64 ranks) where some layout would fit.
std::string advise(const Config& config, const RunPlan& plan, double available, double host_available,
                   int ranks_per_node) {
  const ModelConfig& model = config.model;
  const Layout& layout = plan.layout;
  const int world = plan.world_size();
  auto candidate_plan = [&](const Config& c, const Layout& l) { return make_run_plan(c, l, 0, plan.precision); };
  auto need = [&](const Config& c, const Layout& l) { return largest_need(candidate_plan(c, l).memory, plan.precision); };
  // Whether a candidate fits the device (or RAM) and, where host memory is known, the host.
  auto fits = [&](const RunPlan& p) {
    if (largest_need(p.memory, plan.precision) > available) return false;
    return host_available <= 0 || host_per_node(p.memory, p.layout, ranks_per_node) <= host_available;
  };
  auto result = [&](const Layout& l, double bytes) {
    return " (" + layout_factors(l) + ": largest stage " + gib(bytes) + " of " + gib(available) + " GiB)";
  };
  for (int pp = layout.pp + 1; layout.tp * pp <= world; ++pp) {
    const Layout candidate = Layout{world / (layout.tp * pp), layout.tp, pp};
    if (!runnable(candidate, model, world)) continue;
    const double bytes = need(config, candidate);
    if (bytes <= available) return "raise pp_stages to " + std::to_string(pp) + result(candidate, bytes);
  }
  for (int tp = layout.tp + 1; tp <= std::min(world, max_tensor_parallel); ++tp)
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

  // Recomputation, offload and ZeRO-1 on this layout, then with another tp × pp for this world.
  std::vector<Layout> layouts{layout};
  for (int tp = 1; tp <= std::min(world, max_tensor_parallel); ++tp)
    for (int pp = 1; tp * pp <= world; ++pp) {
      const Layout candidate{world / (tp * pp), tp, pp};
      if ((tp != layout.tp || pp != layout.pp) && runnable(candidate, model, world)) layouts.push_back(candidate);
    }
  for (const Layout& candidate : layouts)
    for (const Options& options : option_sets(config)) {
      if (options.zero && candidate.dp == 1) continue;
      const Config changed = with_options(config, options);
      const RunPlan p = candidate_plan(changed, candidate);
      if (!fits(p)) continue;
      const bool moved = candidate.tp != layout.tp || candidate.pp != layout.pp;
      return (moved ? "set tp_size to " + std::to_string(candidate.tp) + ", pp_stages to " + std::to_string(candidate.pp) +
                          " and " + describe_options(changed, options, p, ranks_per_node).substr(4)
                    : describe_options(changed, options, p, ranks_per_node)) +
             result(candidate, largest_need(p.memory, plan.precision));
    }

  const StageMemory& worst = largest(plan.memory);
  const double worst_need = stage_need(worst, plan.precision);
  std::string text = "no single change fits on " + std::to_string(world) + " ranks: stage " +
                     std::to_string(worst.stage) + " needs " + gib(worst_need) + " GiB per rank, " +
                     gib(worst_need - available) + " GiB more than the " + gib(available) + " GiB available";
  // Weights (+ compute copy), grads and AdamW state spread perfectly over the world: no layout goes below.
  const double bytes_per_parameter = 16.0 + (plan.precision.compute_copy() ? plan.precision.real_bytes : 0);
  const double state_bytes = double(plan.parameters) * bytes_per_parameter / world;
  if (state_bytes > available)
    text += " (weights, grads and AdamW state alone, spread evenly over " + std::to_string(world) + " ranks, need " +
            gib(state_bytes) + " GiB each)";
  // The smallest larger world where some layout fits, preferring most replicas, then the current tp.
  for (int bigger = world * 2; bigger <= 64; bigger *= 2)
    for (int product = 1; product <= bigger; ++product) {
      if (bigger % product != 0) continue;
      std::vector<int> tps;
      for (int tp = 1; tp <= std::min(product, max_tensor_parallel); ++tp)
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
        return text + "; " + std::to_string(bigger) + " ranks would fit with " + layout_factors(candidate) +
               (wider.parallel.zero_stage == 1 ? ", zero_stage 1" : "") + " (largest stage " + gib(bytes) + " GiB)";
      }
    }
  return text + "; use more ranks or devices with more memory";
}

}  // namespace

MemoryPlan check_fit(const Config& config, const RunPlan& plan, double available, int ranks_per_node, bool what_if) {
  MemoryPlan fit;
  fit.stages = plan.memory;
  fit.available = available;
  fit.precision = plan.precision;
  fit.ranks_per_node = ranks_per_node > 0 ? std::min(ranks_per_node, plan.world_size()) : plan.world_size();
  fit.host_per_node = host_per_node(plan.memory, plan.layout, fit.ranks_per_node);
  fit.host_available = host_memory_per_node(config, plan.precision, what_if);
  fit.device_fits = available <= 0 || largest_need(plan.memory, plan.precision) <= available;
  fit.host_fits = fit.host_available <= 0 || fit.host_per_node <= fit.host_available;
  fit.fits = fit.device_fits && fit.host_fits;
  if (!fit.fits) fit.advice = advise(config, plan, available, fit.host_available, fit.ranks_per_node);
  return fit;
}

double host_memory_per_node(const Config& config, const Precision& precision, bool what_if) {
  if (config.parallel.host_memory > 0) return config.parallel.host_memory;
  if (precision.gpu && (what_if || !device_build)) return 0.0;
  return detect_device_memory(1);
}

double available_memory(const Config& config, int ranks_on_host) {
  if (config.parallel.device_memory > 0) return config.parallel.device_memory;
  return device_build ? detect_gpu_memory(ranks_on_host) : detect_device_memory(ranks_on_host);
}

MemoryPlan estimate_memory(const Config& config, const Layout& layout, bool gpu) {
  const RunPlan plan = make_run_plan(config, layout, 0, gpu ? gpu_precision : cpu_precision);
  return check_fit(config, plan, what_if_available(config, layout, gpu), 0, true);
}

std::string format_memory_table(const MemoryPlan& plan, const Layout& layout) {
  std::ostringstream out;
  std::string precision = "CPU: fp32 throughout";
  // Offload (host memory planned) keeps the fp32 master in host memory: the device has the bf16 copy only.
  const bool offloaded =
      std::any_of(plan.stages.begin(), plan.stages.end(), [](const StageMemory& s) { return s.host > 0; });
  if (plan.precision.compute_copy())
    precision = std::string(plan.precision.gpu ? "GPU" : "CPU, emulated bf16") +
                (offloaded ? ": bf16 weights (fp32 master in host memory), bf16 activations"
                           : ": fp32 master + bf16 weights, bf16 activations");
  out << "memory per rank in GiB (" << layout_factors(layout) << "; " << precision << ")\n";
  char row[256];
  std::snprintf(row, sizeof row, "%5s  %-12s %11s %8s %8s %9s %11s %7s %8s %8s\n", "stage", "layers", "params/rank",
                "weights", "grads", "optimizer", "activations", "comm", "total", "host");
  out << row;
  for (const StageMemory& s : plan.stages) {
    const std::string layers = std::to_string(s.first_layer) + "-" + std::to_string(s.last_layer - 1) + " (" +
                               std::to_string(s.last_layer - s.first_layer) + ")";
    std::snprintf(row, sizeof row, "%5d  %-12s %11s %8s %8s %9s %11s %7s %8s %8s\n", s.stage, layers.c_str(),
                  count_text(s.parameters).c_str(), gib(s.weights).c_str(), gib(s.grads).c_str(),
                  gib(s.optimizer).c_str(), gib(s.activations).c_str(), gib(s.comm_buffers).c_str(),
                  gib(s.total).c_str(), gib(s.host).c_str());
    out << row;
  }
  double staging = 0;
  for (const StageMemory& s : plan.stages) staging = std::max(staging, s.checkpoint_staging);
  out << "checkpoint host staging during a save or resume: " << fixed(staging / (1 << 20), 1)
      << " MiB per rank (one chunk of one tensor; no whole-model copy)\n";
  double host = 0;
  bool grads_copy = false;  // offload_overlap (dp = 1): a host copy of all the rank's gradients
  for (const StageMemory& s : plan.stages) {
    host = std::max(host, s.host);
    grads_copy = grads_copy || s.host_gradient_copy;
  }
  const char* gradients = grads_copy ? "the gradients' host copy" : "one gradient chunk";
  out << "host       " << gib(host) << " GiB per rank, " << gib(plan.host_per_node) << " GiB per node ("
      << plan.ranks_per_node << " ranks): "
      << (host > 0 ? std::string("offloaded fp32 master weights, AdamW m and v, ") + gradients
                   : std::string("no optimizer offload"))
      << (host <= 0 ? "" : plan.precision.gpu ? " (pinned)" : "; CPU: the same RAM as the device columns, counted with them")
      << "\n";
  out << "host avail " << (plan.host_available > 0 ? gib(plan.host_available) + " GiB per node" : std::string("unknown"))
      << (plan.host_fits ? "" : ": too little for the offloaded state") << "\n";
  if (plan.available <= 0) {
    out << "available  unknown\nverdict    not checked: set device_memory (e.g. device_memory=80GB)\n";
    return out.str();
  }
  const double need = plan.stages.empty() ? 0.0 : largest_need(plan.stages, plan.precision);
  out << "available  " << gib(plan.available) << " GiB per rank (" << fixed(plan.available / 1e9, 2) << " GB)\n";
  if (plan.fits)
    out << "verdict    fits: largest stage " << gib(need) << " GiB, " << gib(plan.available - need) << " GiB ("
        << percent((plan.available - need) / plan.available) << ") to spare"
        << (plan.host_per_node > 0 ? "; host " + gib(plan.host_per_node) + " GiB per node" : std::string()) << "\n";
  else out << "verdict    does not fit: " << plan.advice << "\n";
  return out.str();
}

std::string dry_run_report(const Config& config, int world_size, bool gpu) {
  const ModelConfig& model = config.model;
  const ParallelConfig& parallel = config.parallel;
  const RunPlan plan = make_run_plan(config, world_size, 0, gpu ? gpu_precision : cpu_precision);
  const Layout& layout = plan.layout;
  const MemoryPlan fit = check_fit(config, plan, what_if_available(config, layout, gpu), 0, true);

  std::string automatic;
  for (const auto& [value, name] : {std::pair<int, const char*>{parallel.tp_size, "tp_size"},
                                    {parallel.pp_stages, "pp_stages"}, {parallel.dp_size, "dp_size"}})
    if (value == 0) automatic += (automatic.empty() ? "" : ", ") + std::string(name);
  std::ostringstream out;
  out << "xp_train dry run: " << world_size << " ranks, " << (gpu ? "GPU" : "CPU") << "; nothing is allocated\n";
  out << "model     " << model.model << ": n_layer " << model.n_layer << ", n_head " << model.n_head << ", n_embd "
      << model.n_embd << ", seq_len " << model.seq_len << ", vocab_size " << model.vocab_size << " (padded "
      << model.padded_vocab() << ")\n";
  out << "          " << fixed(plan.parameters / 1e9, 2) << " B parameters (" << plan.parameters << ")\n";
  out << "layout    tp_size " << layout.tp << " × pp_stages " << layout.pp << " × dp_size " << layout.dp << " = "
      << world_size << " ranks" << (automatic.empty() ? "" : " (auto: " + automatic + ")") << ", zero_stage "
      << parallel.zero_stage << "\n";
  const char* modes[] = {"none", "selective", "full"};
  out << "memory    recompute " << modes[static_cast<int>(parallel.recompute)] << ", optimizer_offload "
      << (parallel.optimizer_offload ? "true" : "false") << "\n";
  out << "batch     micro-batch " << config.train.batch_size << " × " << model.seq_len << " tokens, grad_accum_steps "
      << config.train.grad_accum_steps << ", global batch "
      << int64_t{layout.dp} * config.train.batch_size * config.train.grad_accum_steps << " sequences\n";
  std::istringstream map(rank_map(layout));
  std::string line;
  for (bool first = true; std::getline(map, line); first = false) out << (first ? "rank map  " : "          ") << line << "\n";
  for (size_t s = 0; s < plan.stages.size(); ++s) {
    const StageRange& range = plan.stages[s];
    out << (s == 0 ? "stages    " : "          ") << "stage " << s << ": layers " << range.first_layer << "-"
        << range.last_layer - 1 << " (" << range.layers() << ")";
    if (range.has_embedding) out << " + embedding";
    if (range.has_head) out << " + final LayerNorm, LM head (tied wte)";
    out << "\n";
  }
  out << format_memory_table(fit, layout);
  return out.str();
}

}  // namespace xp
