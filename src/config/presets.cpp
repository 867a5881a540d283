#include <array>

#include "xp/config/deck.hpp"
#include "xp/core/error.hpp"

namespace xp {
namespace {

struct Preset {
  const char* name;
  int n_layer, n_head, n_embd;
};

// The published GPT-2 family: context 1024, vocabulary 50257.
constexpr std::array<Preset, 4> presets{{
    {"gpt2", 12, 12, 768},
    {"gpt2-medium", 24, 16, 1024},
    {"gpt2-large", 36, 20, 1280},
    {"gpt2-xl", 48, 25, 1600},
}};

}  // namespace

void apply_model_preset(const std::string& name, ModelConfig& model, const std::string& where) {
  if (name == "custom") {
    model.model = name;
    return;
  }
  for (const Preset& preset : presets) {
    if (name != preset.name) continue;
    model.model = name;
    model.n_layer = preset.n_layer;
    model.n_head = preset.n_head;
    model.n_embd = preset.n_embd;
    model.seq_len = 1024;
    model.vocab_size = 50257;
    return;
  }
  std::string allowed = "custom";
  for (const Preset& preset : presets) allowed += std::string(", ") + preset.name;
  throw InputError(where + ": unknown model '" + name + "' (allowed: " + allowed + ")");
}

}  // namespace xp
