// libFuzzer target: the input deck through the path `xp_train DECK [key=value ...] --dry-run [--gpu]`
// takes — load_config (TOML parse, keys, overrides, validation), then for accepted decks the run plan
// and memory report, so that huge sizes and counts reach the plan's arithmetic.
// Input: the first line holds the command-line arguments, separated by spaces (`--gpu` plans for the
// GPU build); the rest is the deck. Refusals are InputErrors; anything else is a finding.
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "xp/config/deck.hpp"
#include "xp/core/error.hpp"
#include "xp/train/fit_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t newline = input.find('\n');
  const std::string arguments = input.substr(0, newline);
  const std::string deck = newline == std::string::npos ? std::string() : input.substr(newline + 1);

  std::vector<std::string> overrides;
  bool gpu = false;
  std::istringstream words(arguments);
  for (std::string word; words >> word;) {
    if (word == "--gpu") gpu = true;
    else if (word.find('=') != std::string::npos) overrides.push_back(word);
  }
  const std::string path =
      xp_fuzz::write_scratch("deck.in", reinterpret_cast<const uint8_t*>(deck.data()), deck.size());
  try {
    const xp::Config config = xp::load_config(path, overrides);
    const int world = config.parallel.world_size > 0 ? config.parallel.world_size : 1;
    const std::string report = xp::dry_run_report(config, world, gpu);
    if (report.empty()) __builtin_trap();  // an accepted deck always has a report
  } catch (const xp::InputError&) {
    // a refusal with a message: what bad input should get
  }
  return 0;
}
