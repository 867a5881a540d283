#include "xp/core/thread_pool.hpp"

#include <algorithm>

namespace xp {

ThreadPool::ThreadPool(int threads) {
  for (int t = 1; t < threads; ++t) workers_.emplace_back(&ThreadPool::serve, this, t);
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  started_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

void ThreadPool::run(int parts, const std::function<void(int)>& work) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    work_ = &work;
    parts_ = parts;
    busy_ = static_cast<int>(workers_.size());
    ++generation_;
  }
  started_.notify_all();
  for (int part = 0; part < parts; part += size()) work(part);
  std::unique_lock<std::mutex> lock(mutex_);
  finished_.wait(lock, [&] { return busy_ == 0; });
  work_ = nullptr;
}

void ThreadPool::run_ranges(int64_t n, int64_t min_part, const std::function<void(int64_t, int64_t)>& work) {
  if (n <= 0) return;
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(size(), n / std::max<int64_t>(1, min_part)));
  const int64_t part = (n + parts - 1) / parts;
  if (parts == 1) return work(0, n);
  run(static_cast<int>(parts), [&](int p) { work(p * part, std::min(n, (p + 1) * part)); });
}

void ThreadPool::serve(int thread) {
  std::uint64_t seen = 0;
  for (;;) {
    const std::function<void(int)>* work = nullptr;
    int parts = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      started_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
      work = work_;
      parts = parts_;
    }
    for (int part = thread; part < parts; part += size()) (*work)(part);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      --busy_;
    }
    finished_.notify_one();
  }
}

}  // namespace xp
