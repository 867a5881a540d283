#include "xp/parallel/topology.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>

#include "xp/core/error.hpp"
#include "xp/model/layout.hpp"

namespace xp {

std::string layout_factors(const Layout& layout) {
  return "tp_size " + std::to_string(layout.tp) + ", pp_stages " + std::to_string(layout.pp) + ", dp_size " +
         std::to_string(layout.dp);
}

bool runnable(const Layout& layout, const ModelConfig& model, int world) {
  return layout.tp * layout.pp * layout.dp == world && model.n_head % layout.tp == 0 &&
         model.padded_vocab() % layout.tp == 0 && layout.pp <= model.n_layer;
}

namespace {

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
  const std::string proposal = "; with " + ranks + " try " + layout_factors(nearest_runnable(layout, model, world));
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

}  // namespace xp
