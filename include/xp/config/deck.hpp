#pragma once
// Input deck: a TOML file (flat keys, or keys inside the tables named in inputs/README.md) plus
// `key=value` command-line overrides. Unknown keys, wrong types and out-of-range values are
// InputErrors that quote the file and line (or the override) and what would be accepted.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "xp/config/config.hpp"

namespace xp {

// Far above any model or job this trainer is for, and low enough that the dry run's layout search stays
// quick: fuzzed decks with 10^5 layers or 2^31 - 1 ranks made it run for minutes (and overflow an int).
// The checkpoint reader holds an index to the same model bounds.
constexpr int max_layers = 4096;
constexpr int max_world_size = 1 << 20;

// One value as written by the user, before it is checked against its key.
struct DeckValue {
  enum class Kind { Integer, Float, String, Boolean, Other } kind = Kind::Other;
  int64_t integer = 0;
  double real = 0.0;
  std::string text;   // the string itself, or the value as written
  std::string where;  // "inputs/x.in:12" or "command line 'lr=1e-3'"
};

struct DeckKey {
  std::string name;
  std::string section;  // TOML table the key may also sit in
  std::string type;     // for --help: "integer >= 1", "float | none", ...
  std::string help;
  std::function<void(Config&, const DeckValue&)> set;  // throws InputError on a bad value
  std::function<std::string(const Config&)> show;      // current value as TOML
};

// Every key the deck accepts, in the order --help lists them.
const std::vector<DeckKey>& deck_keys();

// Reads the deck (empty path: defaults only), applies overrides, validates. Throws InputError.
Config load_config(const std::string& deck_path, const std::vector<std::string>& overrides);

// Cross-key checks (divisibility, presets); called by load_config.
void validate(const Config& config);

// Applies a preset's model shape; throws InputError for an unknown name.
void apply_model_preset(const std::string& name, ModelConfig& model, const std::string& where);

// The resolved configuration as a TOML deck (written to <run_dir>/config.toml).
std::string config_to_toml(const Config& config);

// The key table for --help: name, type, default, description.
std::string describe_keys();

// The known key nearest to `name` by edit distance ("" when none is close).
std::string closest_key(const std::string& name);

// The training settings worth seeing at a glance ("steps 200, batch_size 4, ..."), from a resolved
// configuration in TOML (config_to_toml); throws on text that does not parse.
std::string config_summary(const std::string& toml_text);

// The string `section.key` of a resolved configuration in TOML, or `fallback` when it has none (a
// checkpoint written before the key existed); throws on text that does not parse.
std::string config_string(const std::string& toml_text, const std::string& section, const std::string& key,
                          const std::string& fallback);

}  // namespace xp
