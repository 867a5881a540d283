#pragma once
// Stop requests by signal, and a watchdog so that no rank spins forever after one. SIGTERM or SIGUSR1
// (Slurm's warning before a time limit or preemption; Open MPI's launcher sends SIGTERM to the others
// when a rank dies) asks the run to stop after the current step; every rank agrees on it after the step.
// But when a rank of the job has died, the step never ends: its collectives wait for the dead rank. So
// while the watchdog is armed (during a step, not during set-up or a checkpoint write), a stop request
// not honoured within the grace period ends this rank with a message naming it, and the launcher ends
// the rest.
namespace xp {

// SIGTERM and SIGUSR1 request a stop; SIGALRM is the watchdog's. `world_rank` goes into its message.
void install_stop_handlers(int world_rank);
void restore_stop_handlers();  // the default actions again (the run is over)

int stop_requested();  // the signal that asked for a stop, 0 if none
void clear_stop_request();

// From now on a stop request must be honoured (disarm_stop_watchdog called) within `grace_seconds`,
// counted from the request or from now, whichever is later.
void arm_stop_watchdog(unsigned grace_seconds);
void disarm_stop_watchdog();

}  // namespace xp
