// The guard's single-process parts: XP_INJECT's grammar (every accepted form, and malformed values
// refused naming the item and the form), and the trailing window's spike test against mean and
// standard deviation worked by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "support.hpp"
#include "xp/train/step_guard.hpp"

namespace {

using xp::Fault;
using xp::FaultKind;

void expect_fault(const Fault& fault, FaultKind kind, int64_t step, int rank) {
  EXPECT_EQ(fault.kind, kind);
  EXPECT_EQ(fault.step, step);
  EXPECT_EQ(fault.rank, rank);
}

}  // namespace

TEST(FaultInjection, ParsesEveryForm) {
  EXPECT_TRUE(xp::parse_faults("").empty());
  const std::vector<Fault> faults = xp::parse_faults("nan_grad@7,nan_grad@7:3,spike_loss@12,spike_loss@1:0");
  ASSERT_EQ(faults.size(), 4u);
  expect_fault(faults[0], FaultKind::NanGrad, 7, -1);
  expect_fault(faults[1], FaultKind::NanGrad, 7, 3);
  expect_fault(faults[2], FaultKind::SpikeLoss, 12, -1);
  expect_fault(faults[3], FaultKind::SpikeLoss, 1, 0);
}

TEST(FaultInjection, RefusesMalformedValues) {
  for (const std::string bad : {"nan_grad", "nan_grad@", "nan_grad@0", "nan_grad@-1", "nan_grad@7:", "nan_grad@7:x",
                                "nan_grad@7:-1", "nan_grad@ 7", "nan_grad@7 ", "NAN_GRAD@7", "nan@7", "@7",
                                "spike_loss@12:3:4", "nan_grad@7,", ",nan_grad@7", "nan_grad@7,,spike_loss@3",
                                "nan_grad@1e3", "nan_grad@99999999999999"}) {
    const std::string message = xp::test::input_error([&] { xp::parse_faults(bad); });
    EXPECT_NE(message.find("XP_INJECT='" + bad + "'"), std::string::npos) << message;
    EXPECT_NE(message.find("expected nan_grad@STEP, nan_grad@STEP:RANK, spike_loss@STEP"), std::string::npos)
        << message;
  }
}

TEST(TrailingWindow, SpikeIsMeasuredAgainstTheFullWindow) {
  xp::TrailingWindow window(4);
  for (const double value : {10.0, 1.0, 2.0, 3.0}) {
    EXPECT_FALSE(window.spike(1e9, 2.0)) << "not full yet";
    window.push(value);
  }
  window.push(4.0);  // the oldest (10) leaves: {1, 2, 3, 4}, mean 2.5, population std sqrt(1.25)
  EXPECT_DOUBLE_EQ(window.mean(), 2.5);
  EXPECT_DOUBLE_EQ(window.stddev(), std::sqrt(1.25));
  const double threshold = 2.5 + 2.0 * std::sqrt(1.25);  // 4.736
  EXPECT_FALSE(window.spike(threshold - 1e-9, 2.0));
  EXPECT_TRUE(window.spike(threshold + 1e-9, 2.0));
  EXPECT_FALSE(window.spike(threshold + 1e-9, 0.0)) << "spike_zscore none";

  xp::TrailingWindow flat(2);
  flat.push(1.0);
  flat.push(1.0);
  EXPECT_FALSE(flat.spike(100.0, 6.0)) << "no spread: no z-score";
}
