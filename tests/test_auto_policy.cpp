// auto's decision, driven with a doctored CPU clock: it measures only once the kernel reports
// copies, keeps zero-copy when that is clearly cheaper for the sending thread and copies when it
// is not, measures again after reprobe_every sends (doubling while the decision holds), and
// moves back to zero-copy when a later measurement finds it cheaper.
#include "auto_policy.hpp"
#include "strategy_support.hpp"
#include "zcio/probe.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace {

using zcio::detail::AutoOutcome;
using zcio::detail::AutoPolicy;
using zcio::detail::AutoState;

// The fake thread clock: each send advances it by the cost of the mode it went in.
double g_now = 0;
double fake_clock() { return g_now; }

struct Harness {
    zcio::KernelFeatures kernel = [] {
        zcio::KernelFeatures k;
        k.op_send = k.send_zc = k.send_zc_fixed = true;
        return k;
    }();
    zcio::detail::StrategySupport support{kernel};
    AutoPolicy policy{
        {.threshold = 8192, .copied_streak = 4, .reprobe_every = 100, .window = 10, .cpu_seconds = &fake_clock},
        support};
    AutoState st;
    zcio::Counters c;
    std::vector<std::byte> memory = std::vector<std::byte>(16384);
    double zc_cost = 1, copy_cost = 2;  // seconds per byte, for the fake clock

    // One send: what auto picked; the clock advances by that mode's cost; the release (for a
    // zero-copy send) reports `copied`.
    bool send(bool copied = true) {
        const zcio::Strategy s = policy.choose(st, zcio::Buffer::borrow(memory), 1, c);
        const bool zc = zcio::is_zero_copy(s);
        g_now += (zc ? zc_cost : copy_cost) * static_cast<double>(memory.size());
        if (zc) policy.learn(st, AutoOutcome{.reported = true, .copied = copied}, c);
        return zc;
    }
    int zero_copy_sends(int n, bool copied = true) {
        int z = 0;
        for (int i = 0; i < n; ++i) z += send(copied);
        return z;
    }
};

TEST(AutoPolicy, ZeroCopyReportsNeverStartAMeasurement) {
    Harness h;
    EXPECT_EQ(h.zero_copy_sends(1000, /*copied=*/false), 1000);
    EXPECT_EQ(h.c.auto_probes, 0u);
}

TEST(AutoPolicy, CopiesReportedButZeroCopyCheaperForThisThreadKeepsZeroCopy) {
    Harness h;  // zero-copy costs half of copying (loopback: the copy moves to the receiver)
    EXPECT_EQ(h.zero_copy_sends(4), 4) << "until the streak of copied reports";
    EXPECT_EQ(h.c.auto_probes, 1u);
    EXPECT_EQ(h.zero_copy_sends(10), 0) << "the copy window";
    EXPECT_EQ(h.zero_copy_sends(10), 10) << "the zero-copy window";
    EXPECT_EQ(h.c.auto_kept_zc, 1u);
    EXPECT_EQ(h.c.auto_to_copy, 0u);
    EXPECT_EQ(h.zero_copy_sends(99), 99) << "and zero-copy from then on, without measuring";
    EXPECT_EQ(h.c.auto_probes, 1u);
}

TEST(AutoPolicy, CopiesReportedAndZeroCopyDearerSwitchesToCopy) {
    Harness h;
    h.zc_cost = 3;  // the copy happens on the sending side: zero-copy only adds pinning
    h.zero_copy_sends(4 + 10 + 10);
    EXPECT_EQ(h.c.auto_to_copy, 1u);
    EXPECT_EQ(h.zero_copy_sends(99), 0) << "copies until reprobe_every sends have gone";
    EXPECT_EQ(h.c.auto_probes, 1u);
}

TEST(AutoPolicy, ANearTieCopies) {
    Harness h;
    h.zc_cost = 1.98;  // 1 % cheaper: under the 5 % margin, not worth pinning pages
    h.zero_copy_sends(24);
    EXPECT_EQ(h.c.auto_to_copy, 1u);
}

TEST(AutoPolicy, ALaterMeasurementMovesBackAndAHoldingDecisionWaitsLonger) {
    Harness h;
    h.zc_cost = 3;
    h.zero_copy_sends(24);  // -> copy
    ASSERT_EQ(h.c.auto_to_copy, 1u);
    h.zero_copy_sends(100);  // reprobe_every: the next send starts a measurement
    EXPECT_EQ(h.c.auto_probes, 2u);
    h.zero_copy_sends(20);  // still dearer: copy holds, and the next measurement waits 200 sends
    EXPECT_EQ(h.c.auto_to_copy, 1u) << "not counted twice";
    h.zero_copy_sends(150);
    EXPECT_EQ(h.c.auto_probes, 2u);
    h.zc_cost = 1;  // the route changed: zero-copy pays now
    h.zero_copy_sends(51 + 20);
    EXPECT_EQ(h.c.auto_probes, 3u);
    EXPECT_EQ(h.c.auto_to_zc, 1u);
    EXPECT_EQ(h.zero_copy_sends(10, /*copied=*/false), 10);
}

TEST(AutoPolicy, SmallSendsCopyByChoice) {
    Harness h;
    h.memory.resize(4096);
    EXPECT_EQ(h.zero_copy_sends(10), 0);
    EXPECT_EQ(h.c.auto_small, 10u);
    EXPECT_EQ(h.c.auto_probes, 0u);
}

}  // namespace
