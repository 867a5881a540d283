#include "xp/config/deck.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <toml++/toml.h>

#include "xp/core/error.hpp"

namespace xp {
namespace {

std::string location(const std::string& path, const toml::source_region& source) {
  return path + ":" + std::to_string(source.begin.line);
}

DeckValue to_deck_value(const toml::node& node, const std::string& where) {
  DeckValue value;
  value.where = where;
  if (auto integer = node.as_integer()) {
    value.kind = DeckValue::Kind::Integer;
    value.integer = integer->get();
    value.text = std::to_string(value.integer);
  } else if (auto real = node.as_floating_point()) {
    value.kind = DeckValue::Kind::Float;
    value.real = real->get();
    std::ostringstream text;
    text << value.real;
    value.text = text.str();
  } else if (auto text = node.as_string()) {
    value.kind = DeckValue::Kind::String;
    value.text = text->get();
  } else if (auto boolean = node.as_boolean()) {
    value.kind = DeckValue::Kind::Boolean;
    value.text = boolean->get() ? "true" : "false";
  } else {
    value.text = node.is_array() ? "an array" : node.is_table() ? "a table" : "a date or time";
  }
  return value;
}

const DeckKey* find_key(const std::string& name) {
  for (const DeckKey& key : deck_keys())
    if (key.name == name) return &key;
  return nullptr;
}

[[noreturn]] void unknown_key(const std::string& where, const std::string& name) {
  std::string message = where + ": unknown key '" + name + "'";
  const std::string near = closest_key(name);
  if (!near.empty()) message += " (did you mean '" + near + "'?)";
  message += "; xp_train --help lists every key";
  throw InputError(message);
}

using Settings = std::map<std::string, DeckValue>;

void add_setting(Settings& settings, const std::string& name, DeckValue value) {
  auto [it, inserted] = settings.emplace(name, value);
  if (!inserted) throw InputError(value.where + ": key '" + name + "' is also set at " + it->second.where);
}

void read_deck(const std::string& path, Settings& settings) {
  std::ifstream probe(path);
  if (!probe) throw InputError("cannot read input deck '" + path + "': " + std::strerror(errno));
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error))
    throw InputError("cannot read input deck '" + path + "': not a regular file");
  toml::table deck;
  try {
    deck = toml::parse_file(path);
  } catch (const toml::parse_error& error) {
    throw InputError(location(path, error.source()) + ": malformed TOML: " + std::string(error.description()));
  }
  for (const auto& [raw_name, node] : deck) {
    const std::string name(raw_name.str());
    const std::string where = location(path, node.source());
    if (const toml::table* table = node.as_table()) {
      for (const auto& [raw_leaf, leaf_node] : *table) {
        const std::string leaf(raw_leaf.str());
        const std::string leaf_where = location(path, leaf_node.source());
        const DeckKey* key = find_key(leaf);
        if (!key) unknown_key(leaf_where, leaf);
        if (key->section != name)
          throw InputError(leaf_where + ": key '" + leaf + "' belongs in table [" + key->section +
                           "] (or at the top level), not [" + name + "]");
        add_setting(settings, leaf, to_deck_value(leaf_node, leaf_where));
      }
      continue;
    }
    if (!find_key(name)) unknown_key(where, name);
    add_setting(settings, name, to_deck_value(node, where));
  }
}

// `key=value` or `table.key=value`; the value is read as TOML, and as a bare string when it is not
// valid TOML (so train_data=data/*.bin and tp_size=auto need no quotes).
void read_override(const std::string& argument, Settings& settings) {
  const std::string where = "command line '" + argument + "'";
  const auto equals = argument.find('=');
  if (equals == std::string::npos || equals == 0)
    throw InputError(where + ": expected key=value");
  std::string name = argument.substr(0, equals);
  const std::string text = argument.substr(equals + 1);
  std::string table;
  if (const auto dot = name.rfind('.'); dot != std::string::npos) {
    table = name.substr(0, dot);
    name = name.substr(dot + 1);
  }
  const DeckKey* key = find_key(name);
  if (!key) unknown_key(where, name);
  if (!table.empty() && table != key->section)
    throw InputError(where + ": key '" + name + "' belongs in table [" + key->section + "], not [" + table + "]");
  DeckValue value;
  try {
    toml::table parsed = toml::parse("value = " + text);
    value = to_deck_value(*parsed.get("value"), where);
  } catch (const toml::parse_error&) {
    value.kind = DeckValue::Kind::String;
    value.text = text;
    value.where = where;
  }
  settings[name] = value;  // the command line wins over the deck
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

std::string closest_key(const std::string& name) {
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(3, name.size() / 2) + 1;
  for (const DeckKey& key : deck_keys()) {
    const std::size_t distance = edit_distance(name, key.name);
    if (distance < best_distance) {
      best_distance = distance;
      best = key.name;
    }
  }
  return best;
}

Config load_config(const std::string& deck_path, const std::vector<std::string>& overrides) {
  Settings settings;
  if (!deck_path.empty()) read_deck(deck_path, settings);
  for (const std::string& argument : overrides) read_override(argument, settings);

  Config config;
  // The preset goes first so that explicit shape keys override it, whatever their order.
  if (auto preset = settings.find("model"); preset != settings.end()) find_key("model")->set(config, preset->second);
  for (const DeckKey& key : deck_keys()) {
    if (key.name == "model") continue;
    if (auto it = settings.find(key.name); it != settings.end()) key.set(config, it->second);
  }
  validate(config);
  return config;
}

void validate(const Config& config) {
  const ModelConfig& model = config.model;
  if (model.n_embd % model.n_head != 0) {
    std::string divisors;
    for (int d = 1; d <= model.n_embd && divisors.size() < 60; ++d)
      if (model.n_embd % d == 0) divisors += (divisors.empty() ? "" : ", ") + std::to_string(d);
    throw InputError("n_embd " + std::to_string(model.n_embd) + " is not divisible by n_head " +
                     std::to_string(model.n_head) + " (n_head may be one of: " + divisors + ")");
  }
  if (model.n_layer > max_layers)
    throw InputError("n_layer " + std::to_string(model.n_layer) + " exceeds " + std::to_string(max_layers) +
                     ", the deepest model this trainer plans for");
  if (config.parallel.world_size > max_world_size)
    throw InputError("world_size " + std::to_string(config.parallel.world_size) + " exceeds " +
                     std::to_string(max_world_size) + " ranks, the largest job this trainer plans for");
  if (model.vocab_size > 65536)
    throw InputError("vocab_size " + std::to_string(model.vocab_size) +
                     " exceeds 65536: token shards store uint16 tokens");
  if (config.data.synthetic_branching > model.vocab_size)
    throw InputError("synthetic_branching " + std::to_string(config.data.synthetic_branching) +
                     " exceeds vocab_size " + std::to_string(model.vocab_size));
  if (config.parallel.zero_stage > 1)
    throw InputError("zero_stage " + std::to_string(config.parallel.zero_stage) + " is not supported (allowed: 0, 1)");
  if (config.guard.on_bad_step == OnBadStep::Rollback && config.run.checkpoint_every == 0)
    throw InputError("on_bad_step = \"rollback\" needs checkpoint_every > 0: a rollback returns to the newest "
                     "checkpoint (or its copy in memory with rollback_keep_in_memory)");
  if (config.train.min_lr > config.train.lr)
    throw InputError("min_lr " + std::to_string(config.train.min_lr) + " exceeds lr " +
                     std::to_string(config.train.lr));
}

std::string config_to_toml(const Config& config) {
  std::string out = "# resolved xp_train configuration\n";
  std::string section;
  for (const DeckKey& key : deck_keys()) {
    if (key.section != section) {
      section = key.section;
      out += "\n[" + section + "]\n";
    }
    out += key.name + " = " + key.show(config) + "\n";
  }
  return out;
}

std::string describe_keys() {
  const Config defaults;
  std::string out;
  std::string section;
  for (const DeckKey& key : deck_keys()) {
    if (key.section != section) {
      section = key.section;
      out += "\n[" + section + "]\n";
    }
    char line[512];
    std::snprintf(line, sizeof line, "  %-20s %-36s default %-15s %s\n", key.name.c_str(), key.type.c_str(),
                  key.show(defaults).c_str(), key.help.c_str());
    out += line;
  }
  return out;
}

std::string config_summary(const std::string& toml_text) {
  const toml::table config = toml::parse(toml_text);
  const char* keys[][2] = {{"train", "steps"},          {"train", "batch_size"}, {"train", "grad_accum_steps"},
                           {"train", "lr"},             {"train", "min_lr"},     {"train", "warmup_steps"},
                           {"train", "weight_decay"},   {"data", "train_data"}};
  std::ostringstream summary;
  for (const auto& [section, key] : keys) {
    const auto value = config[section][key];
    if (!value) continue;
    summary << (summary.tellp() > 0 ? ", " : "") << key << " ";
    if (value.is_floating_point()) summary << *value.value<double>();  // 0.003, not 0.0030000000000000001
    else summary << value;
  }
  return summary.str();
}

}  // namespace xp
