#pragma once
// A fixed set of host threads, started once, that runs one parallel loop at a time (the offloaded AdamW's
// chunk updates: a thread started per chunk would cost a clone and a join every 64 MiB).
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace xp {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);  // threads >= 1, the caller's own thread included
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  // Calls work(part) for every part in [0, parts): part p on thread p % size() (the caller is thread 0),
  // and returns when all have returned. One run at a time; work must not throw.
  void run(int parts, const std::function<void(int part)>& work);
  // Calls work(lo, hi) on contiguous parts of [0, n), one per thread, each at least min_part long (so a
  // small n takes fewer threads: waking one costs more than a short part's work).
  void run_ranges(int64_t n, int64_t min_part, const std::function<void(int64_t lo, int64_t hi)>& work);

 private:
  void serve(int thread);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable started_, finished_;
  const std::function<void(int)>* work_ = nullptr;
  int parts_ = 0;
  int busy_ = 0;               // workers still in the current run
  std::uint64_t generation_ = 0;  // counts runs, so a worker takes each once
  bool stopping_ = false;
};

}  // namespace xp
