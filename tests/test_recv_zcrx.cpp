// zcrx registration on this machine's devices: the documented errors, with actionable messages.
#include <gtest/gtest.h>
#include <unistd.h>

#include "zcio/error.hpp"
#include "zcio/zcrx.hpp"

namespace {

bool contains(const std::string& s, const char* what) { return s.find(what) != std::string::npos; }

#define ZCIO_NEED_ROOT() \
    if (::geteuid() != 0) GTEST_SKIP() << "registering a zcrx queue needs CAP_NET_ADMIN (run as root)"

TEST(Zcrx, LoopbackRefusesRegistrationWithEopnotsuppAndSaysWhatIsMissing) {
    ZCIO_NEED_ROOT();
    zcio::Ring ring({.cqe32 = true});
    if (!ring.defer_taskrun()) GTEST_SKIP() << "no DEFER_TASKRUN: " << ring.describe();
    try {
        zcio::ZcrxQueue q(ring, {.interface = "lo", .rx_queue = 0, .area_size = 1 << 20});
        FAIL() << "zcrx registered on lo";
    } catch (const zcio::SetupError& e) {
        EXPECT_EQ(e.error(), EOPNOTSUPP) << e.what();
        EXPECT_TRUE(contains(e.what(), "virtual device")) << e.what();
        EXPECT_TRUE(contains(e.what(), "ethtool -G lo tcp-data-split on")) << e.what();
        EXPECT_TRUE(contains(e.what(), "ethtool -N lo flow-type")) << e.what();
    }
}

TEST(Zcrx, RingWithoutCqe32IsRefusedWithEinval) {
    ZCIO_NEED_ROOT();
    zcio::Ring ring;  // 16-byte CQEs
    try {
        zcio::ZcrxQueue q(ring, {.interface = "lo", .area_size = 1 << 20});
        FAIL() << "zcrx registered on a ring without CQE32";
    } catch (const zcio::SetupError& e) {
        EXPECT_EQ(e.error(), EINVAL) << e.what();
        EXPECT_TRUE(contains(e.what(), "CQE32")) << e.what();
    }
}

TEST(Zcrx, RingWithoutDeferTaskrunIsRefusedWithEinval) {
    ZCIO_NEED_ROOT();
    zcio::Ring ring({.single_issuer = false, .cqe32 = true});
    ASSERT_FALSE(ring.defer_taskrun());
    try {
        zcio::ZcrxQueue q(ring, {.interface = "lo", .area_size = 1 << 20});
        FAIL() << "zcrx registered on a ring without DEFER_TASKRUN";
    } catch (const zcio::SetupError& e) {
        EXPECT_EQ(e.error(), EINVAL) << e.what();
        EXPECT_TRUE(contains(e.what(), "DEFER_TASKRUN")) << e.what();
    }
}

TEST(Zcrx, UnknownInterfaceIsRefusedBeforeTheKernelIsAsked) {
    zcio::Ring ring({.cqe32 = true});
    try {
        zcio::ZcrxQueue q(ring, {.interface = "zcio-nope0"});
        FAIL();
    } catch (const zcio::SetupError& e) {
        EXPECT_EQ(e.error(), ENODEV) << e.what();
        EXPECT_TRUE(contains(e.what(), "ip -br link")) << e.what();
    }
}

TEST(Zcrx, NicPreflightNamesTheMissingPiece) {
    const auto lo = zcio::zcrx_nic_problems("lo", 0);
    ASSERT_EQ(lo.size(), 1U);
    EXPECT_TRUE(contains(lo[0], "virtual device")) << lo[0];
    const auto none = zcio::zcrx_nic_problems("zcio-nope0", 0);
    ASSERT_EQ(none.size(), 1U);
    EXPECT_TRUE(contains(none[0], "does not exist")) << none[0];
}

}  // namespace
