// The host thread pool of the offloaded optimizer: every part runs exactly once per run, on the thread
// the documented split names, across many runs of one pool (no lost or doubled wake-ups).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "xp/core/thread_pool.hpp"

namespace xp {
namespace {

TEST(ThreadPool, EveryPartRunsOncePerRunOnItsThread) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int parts : {0, 1, 2, 5, 8, 31}) {
      for (int run = 0; run < 50; ++run) {
        std::vector<std::atomic<int>> count(parts);
        std::vector<std::thread::id> owner(parts);
        pool.run(parts, [&](int part) {
          count[part].fetch_add(1);
          owner[part] = std::this_thread::get_id();
        });
        for (int p = 0; p < parts; ++p) {
          ASSERT_EQ(count[p].load(), 1) << threads << " threads, part " << p << " of " << parts;
          // The caller is thread 0; parts p and p + size() share a thread.
          if (p % threads == 0) EXPECT_EQ(owner[p], std::this_thread::get_id());
          if (p + threads < parts) EXPECT_EQ(owner[p], owner[p + threads]);
        }
      }
    }
  }
}

TEST(ThreadPool, RangesCoverOnceInPartsOfAtLeastTheMinimum) {
  ThreadPool pool(4);
  for (int64_t n : {0, 1, 7, 99, 100, 101, 399, 400, 401, 100000}) {
    std::vector<std::atomic<int>> covered(n);
    std::atomic<int> parts{0};
    pool.run_ranges(n, 100, [&](int64_t lo, int64_t hi) {
      EXPECT_LT(lo, hi);
      if (n >= 100) EXPECT_GE(hi - lo, 100 - 3) << n;  // equal parts of ceil(n / parts), the last shorter
      for (int64_t i = lo; i < hi; ++i) covered[i].fetch_add(1);
      parts.fetch_add(1);
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(covered[i].load(), 1) << n << " at " << i;
    EXPECT_EQ(parts.load(), n == 0 ? 0 : std::max<int64_t>(1, std::min<int64_t>(4, n / 100))) << n;
  }
}

}  // namespace
}  // namespace xp
