// xp_train: parses the command line and drives the xp_core library.
//   mpirun -np N xp_train [deck.in] [key=value ...]      xp_train --help
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "xp/config/deck.hpp"
#include "xp/core/device.hpp"
#include "xp/core/error.hpp"
#include "xp/core/runtime.hpp"
#include "xp/train/fit_check.hpp"
#include "xp/train/trainer.hpp"

namespace {

void print_help() {
  std::printf(
      "usage: mpirun -np N xp_train [DECK.in] [key=value ...]\n"
      "       xp_train DECK.in --dry-run [--gpu] [world_size=N device_memory=80GB ...]\n"
      "                (layout, rank map, stages and memory per rank; allocates nothing; --gpu: the GPU\n"
      "                build's memory (bf16 activations, fused attention) from any build)\n\n"
      "Trains a GPT-2-family model. DECK.in is a TOML input deck; key=value arguments override it.\n"
      "Keys may sit at the top level of the deck or in the table shown below. See inputs/README.md.\n%s",
      xp::describe_keys().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      print_help();
      return 0;
    }
  xp::Runtime runtime(argc, argv);
  std::string deck;
  std::vector<std::string> overrides;
  bool dry_run = false, gpu = xp::device_build;
  try {
    xp::agree_on_setup(MPI_COMM_WORLD, [&] {
      for (int i = 1; i < argc; ++i) {
        const std::string argument = argv[i];
        if (argument == "--dry-run") dry_run = true;
        else if (argument == "--gpu") gpu = true;
        else if (argument.find('=') != std::string::npos) overrides.push_back(argument);
        else if (argument.rfind("-", 0) == 0) throw xp::InputError("unknown option '" + argument + "' (try --help)");
        else if (deck.empty()) deck = argument;
        else throw xp::InputError("more than one input deck: '" + deck + "' and '" + argument + "'");
      }
    });
    xp::Config config;
    xp::agree_on_setup(MPI_COMM_WORLD, [&] { config = xp::load_config(deck, overrides); });
    if (dry_run) {
      const int world = config.parallel.world_size > 0 ? config.parallel.world_size : runtime.size();
      std::string report;
      xp::agree_on_setup(MPI_COMM_WORLD, [&] { report = xp::dry_run_report(config, world, gpu); });
      if (runtime.rank() == 0) std::fputs(report.c_str(), stdout);
      return 0;
    }
    runtime.start_device();
    xp::Trainer trainer(config, MPI_COMM_WORLD);
    trainer.run();
  } catch (const xp::InputError& error) {
    if (runtime.rank() == 0) std::fprintf(stderr, "xp_train: error: %s\n", error.what());
    return 2;
  } catch (const xp::RunStopped& stop) {  // a bad step (on_bad_step): every rank stops at the same step
    if (runtime.rank() == 0) std::fprintf(stderr, "xp_train: stopped: %s\n", stop.what());
    return 3;
  }
  return 0;
}
