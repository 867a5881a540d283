#include "xp/train/stop_signal.hpp"

#include <unistd.h>

#include <csignal>
#include <cstdio>

namespace xp {
namespace {

volatile std::sig_atomic_t stop_signal = 0;
volatile std::sig_atomic_t watchdog_armed = 0;
volatile std::sig_atomic_t grace = 0;
// Formatted before any signal can need it: a handler may only write(2) and _exit.
char overdue_message[256];
int overdue_length = 0;

extern "C" void request_stop(int signal) {
  stop_signal = signal;
  if (watchdog_armed) alarm(static_cast<unsigned>(grace));
}

extern "C" void stop_overdue(int) {
  if (write(STDERR_FILENO, overdue_message, static_cast<size_t>(overdue_length)) < 0) _exit(1);
  _exit(1);
}

}  // namespace

void install_stop_handlers(int world_rank) {
  overdue_length = std::snprintf(overdue_message, sizeof overdue_message,
                                 "xp_train: rank %d: a stop signal came, but the step in progress has not ended "
                                 "within its grace period: another rank of this job has died or hangs; exiting\n",
                                 world_rank);
  std::signal(SIGALRM, stop_overdue);
  std::signal(SIGTERM, request_stop);
  std::signal(SIGUSR1, request_stop);
}

void restore_stop_handlers() {
  disarm_stop_watchdog();
  std::signal(SIGTERM, SIG_DFL);
  std::signal(SIGUSR1, SIG_DFL);
  std::signal(SIGALRM, SIG_DFL);
}

int stop_requested() { return stop_signal; }

void clear_stop_request() { stop_signal = 0; }

void arm_stop_watchdog(unsigned grace_seconds) {
  grace = static_cast<std::sig_atomic_t>(grace_seconds);
  watchdog_armed = 1;
  if (stop_signal) alarm(grace_seconds);  // a request that came while disarmed counts from now
}

void disarm_stop_watchdog() {
  watchdog_armed = 0;
  alarm(0);
}

}  // namespace xp
