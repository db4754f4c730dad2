// Usage truth through the talk's "dummy device": UDP into the sink namespace (veth, permanent
// neighbour, pfifo limit 0) stays zero-copy, and the release says so; delivered across a veth to a
// socket, the receiver copies, and the release says that.
#include "zcio/buffer_arena.hpp"
#include "zcio/send_engine.hpp"
#include "zcio/sink_namespace.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

namespace {

using namespace std::chrono_literals;

struct UsageTally {
    std::uint64_t releases = 0, zero_copy = 0, copied = 0, errors = 0;
};

UsageTally send_udp(zcio::Strategy strategy, const zcio::SinkNamespace& sink, std::size_t payload, int count,
                    std::uint64_t* drops = nullptr) {
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = 64 << 10, .slab_count = 64});
    zcio::SendEngine engine(ring);
    auto fd = sink.socket(zcio::SinkNamespace::tx, SOCK_DGRAM);
    const sockaddr_in to = sink.address(zcio::SinkNamespace::rx, 9000);
    EXPECT_EQ(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&to), sizeof to), 0);
    const auto sock = engine.add_socket(fd.get(), {.strategy = strategy});
    const std::uint64_t before = sink.qdisc_drops();
    UsageTally t;
    for (int i = 0; i < count; ++i) {
        zcio::Buffer b = arena.take();
        while (!b) {
            engine.run(true, 100ms);
            b = arena.take();
        }
        b.resize(payload);
        engine.send(sock, std::move(b), zcio::Storage{[&t](zcio::Release&& r) {
                        ++t.releases;
                        t.zero_copy += r.usage == zcio::Usage::zero_copy;
                        t.copied += r.usage == zcio::Usage::copied;
                        t.errors += r.error != 0;
                    }});
    }
    EXPECT_EQ(engine.drain(10s), 0);
    if (drops) *drops = sink.qdisc_drops() - before;
    return t;
}

class SinkUsage : public ::testing::TestWithParam<zcio::Strategy> {};

TEST_P(SinkUsage, UdpIntoTheSinkIsReportedZeroCopy) {
    if (auto why = zcio::SinkNamespace::unavailable_reason()) GTEST_SKIP() << *why;
    zcio::SinkNamespace sink({.mtu = 65535});  // no IP fragmentation: fragmenting copies
    std::uint64_t drops = 0;
    const UsageTally t = send_udp(GetParam(), sink, 60000, 200, &drops);
    EXPECT_EQ(t.releases, 200u);
    EXPECT_EQ(t.errors, 0u);
    EXPECT_EQ(t.zero_copy, 200u) << "the kernel reported " << t.copied << " copies into the sink";
    EXPECT_GE(drops, 200u) << "every datagram must reach the device and be dropped there";
}

INSTANTIATE_TEST_SUITE_P(ZeroCopyStrategies, SinkUsage,
                         ::testing::Values(zcio::Strategy::zc, zcio::Strategy::zc_fixed, zcio::Strategy::sendmsg_zc,
                                           zcio::Strategy::msg_zerocopy, zcio::Strategy::automatic),
                         [](const auto& info) {
                             std::string n = zcio::to_string(info.param);
                             for (auto& ch : n)
                                 if (ch == '-') ch = '_';
                             return n;
                         });

TEST(SinkUsage, GatheredDatagramsFromRegisteredBuffersAreZeroCopy) {
    if (auto why = zcio::SinkNamespace::unavailable_reason()) GTEST_SKIP() << *why;
    zcio::SinkNamespace sink({.mtu = 65535});
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = 16 << 10, .slab_count = 64});
    zcio::SendEngine engine(ring);
    auto fd = sink.socket(zcio::SinkNamespace::tx, SOCK_DGRAM);
    const sockaddr_in to = sink.address(zcio::SinkNamespace::rx, 9000);
    ASSERT_EQ(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&to), sizeof to), 0);
    const auto sock = engine.add_socket(fd.get(), {.strategy = zcio::Strategy::copy});
    const std::uint64_t before = sink.qdisc_drops();
    UsageTally t;
    for (int i = 0; i < 100; ++i) {
        zcio::BufferChain chain;  // a 4 x 15000-byte datagram, like a header + payload scatter list
        for (int k = 0; k < 4; ++k) {
            zcio::Buffer b = arena.take();
            while (!b) {
                engine.run(true, 100ms);
                b = arena.take();
            }
            b.resize(15000);
            chain.push_back(std::move(b));
        }
        engine.send(sock, std::move(chain), zcio::Storage{[&t](zcio::Release&& r) {
                        ++t.releases;
                        t.zero_copy += r.usage == zcio::Usage::zero_copy;
                        t.errors += r.error != 0;
                        EXPECT_EQ(r.bytes, 60000u);
                        EXPECT_EQ(r.more.size(), 3u);
                    }});
    }
    ASSERT_EQ(engine.drain(10s), 0);
    EXPECT_EQ(t.releases, 100u);
    EXPECT_EQ(t.errors, 0u);
    EXPECT_EQ(t.zero_copy, 100u);
    EXPECT_GE(sink.qdisc_drops() - before, 100u);
    EXPECT_EQ(arena.available(), arena.slab_count());
}

TEST(SinkUsage, DeliveryAcrossVethIsReportedCopied) {
    if (auto why = zcio::SinkNamespace::unavailable_reason()) GTEST_SKIP() << *why;
    zcio::SinkNamespace link({.drop = false, .mtu = 65535});
    auto rx = link.bound_socket(zcio::SinkNamespace::rx, SOCK_DGRAM, 9000);
    int big = 16 << 20;
    ::setsockopt(rx.get(), SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    const UsageTally t = send_udp(zcio::Strategy::zc_fixed, link, 30000, 50);
    EXPECT_EQ(t.releases, 50u);
    EXPECT_EQ(t.copied, 50u) << "the receiving socket copies the pages: the report must say so";
    EXPECT_EQ(t.zero_copy, 0u);
}

TEST(SinkUsage, CopyStrategiesAreReportedCopiedEvenIntoTheSink) {
    if (auto why = zcio::SinkNamespace::unavailable_reason()) GTEST_SKIP() << *why;
    zcio::SinkNamespace sink({.mtu = 65535});
    for (auto s : {zcio::Strategy::plain, zcio::Strategy::copy}) {
        const UsageTally t = send_udp(s, sink, 60000, 50);
        EXPECT_EQ(t.copied, 50u) << zcio::to_string(s);
        EXPECT_EQ(t.zero_copy, 0u) << zcio::to_string(s);
    }
}

}  // namespace
