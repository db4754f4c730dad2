// The send engine against the real kernel: loopback TCP streams checked byte for byte, for every
// strategy and completion model; usage truth; auto; groups; backpressure; faults; shutdown.
#include "zcio/buffer_arena.hpp"
#include "zcio/error.hpp"
#include "zcio/send_engine.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <random>
#include <thread>
#include <vector>

#include "net_fixtures.hpp"
#include "send_stream.hpp"

namespace {

using namespace std::chrono_literals;
using zcio::test::all_combinations;
using zcio::test::case_name;
using zcio::test::ModelKind;
using zcio::test::StrategyModel;
using zcio::test::stream_through;
using zcio::test::StreamChecker;
using zcio::test::Tally;

class StreamIntegrity : public ::testing::TestWithParam<StrategyModel> {};

TEST_P(StreamIntegrity, TcpLoopbackStreamArrivesExactlyWithEveryBufferBackOnce) {
    const auto [strategy, model] = GetParam();
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = 1 << 20, .slab_count = 48});
    zcio::SendEngine engine(ring);
    auto pair = zcio::test::tcp_loopback_pair();
    StreamChecker checker(std::move(pair.receiver));
    const auto sock = engine.add_socket(pair.sender.get(), {.strategy = strategy});

    const std::uint64_t total = 48ull << 20;
    Tally t = stream_through(engine, arena, sock, model, total, 1 << 20, 42);
    ::shutdown(pair.sender.get(), SHUT_WR);
    checker.join();

    EXPECT_EQ(checker.bytes(), total);
    EXPECT_EQ(checker.first_mismatch(), UINT64_MAX) << "stream corrupted at offset " << checker.first_mismatch();
    const auto& c = engine.counters();
    EXPECT_EQ(t.releases, c.sends) << "each send released exactly once";
    EXPECT_EQ(t.bytes, total);
    EXPECT_EQ(t.errors, 0u);
    EXPECT_EQ(arena.available(), arena.slab_count()) << "every buffer back in the arena";
    EXPECT_EQ(arena.stats().taken, arena.stats().returned);
    EXPECT_EQ(engine.ops_in_use(), 0u);
    EXPECT_EQ(c.stray_cqes, 0u);
    if (model == ModelKind::two_step) {
        EXPECT_EQ(t.sent_before_release_violations, 0u);
    }
    // Truth: over loopback the receiver copies, so every zero-copy release must say "copied".
    if (zcio::is_zero_copy(strategy)) {
        EXPECT_EQ(t.zero_copy, 0u);
        EXPECT_EQ(t.copied, t.releases);
        if (strategy != zcio::Strategy::msg_zerocopy) {
            EXPECT_GE(c.notifications, c.sends);
        }
    }
}

INSTANTIATE_TEST_SUITE_P(AllStrategiesAndModels, StreamIntegrity, ::testing::ValuesIn(all_combinations()),
                         [](const auto& info) { return case_name(info.param); });

TEST(SendEngine, PlainMemoryIsSendableToo) {
    zcio::Ring ring;
    zcio::SendEngine engine(ring);
    auto pair = zcio::test::tcp_loopback_pair();
    StreamChecker checker(std::move(pair.receiver));
    const auto sock = engine.add_socket(pair.sender.get(), {.strategy = zcio::Strategy::zc_fixed});
    std::vector<std::byte> mine(300000);
    zcio::test::fill_pattern(mine, 0);
    zcio::Release got;
    bool released = false;
    engine.send(sock, zcio::Buffer::borrow(mine), zcio::Storage{[&](zcio::Release&& r) {
                    got = std::move(r);
                    released = true;
                }});
    ASSERT_EQ(engine.drain(10s), 0);
    ::shutdown(pair.sender.get(), SHUT_WR);
    checker.join();
    ASSERT_TRUE(released);
    EXPECT_EQ(got.error, 0);
    EXPECT_EQ(got.bytes, mine.size());
    EXPECT_EQ(got.buffer.data(), mine.data()) << "the same memory comes back";
    // zc-fixed needs registered memory: unregistered memory went as plain zc, and it says so.
    EXPECT_EQ(got.used, zcio::Strategy::zc);
    EXPECT_EQ(engine.counters().fallbacks, 1u);
    EXPECT_EQ(checker.bytes(), mine.size());
    EXPECT_EQ(checker.first_mismatch(), UINT64_MAX);
}

// Over loopback TCP every zero-copy release is reported COPIED: auto measures a copy window
// against a zero-copy window and keeps the cheaper for this thread. Which one wins is the
// machine's (tests/test_auto_policy.cpp drives both outcomes with a doctored clock); here: the
// measurement runs once the copies are seen, every send after it goes the decided way, and the
// stream stays exact through the switches.
TEST(SendEngine, AutoMeasuresALoopbackTcpSocketAndKeepsTheCheaper) {
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = 64 << 10, .slab_count = 64});
    zcio::SendEngine engine(ring, {.auto_window = 32});
    auto pair = zcio::test::tcp_loopback_pair();
    StreamChecker checker(std::move(pair.receiver));
    const auto sock = engine.add_socket(pair.sender.get(), {.strategy = zcio::Strategy::automatic});
    std::vector<bool> zero_copy;  // per send, in send order (releases come in order on one stream)
    std::uint64_t offset = 0;
    for (int i = 0; i < 600; ++i) {
        zcio::Buffer b = arena.take();
        while (!b) {
            engine.run(true, 100ms);
            b = arena.take();
        }
        zcio::test::fill_pattern(b.span(), offset);
        offset += b.size();
        engine.send(sock, std::move(b),
                    zcio::Storage{[&](zcio::Release&& r) { zero_copy.push_back(zcio::is_zero_copy(r.used)); }});
    }
    ASSERT_EQ(engine.drain(10s), 0);
    ::shutdown(pair.sender.get(), SHUT_WR);
    checker.join();
    EXPECT_EQ(checker.bytes(), offset);
    EXPECT_EQ(checker.first_mismatch(), UINT64_MAX);
    const auto& c = engine.counters(sock);
    EXPECT_EQ(c.auto_probes, 1u) << "one measurement once the copies are seen (the next after 4096 sends)";
    EXPECT_EQ(c.auto_to_copy + c.auto_kept_zc, 1u) << "and one decision";
    ASSERT_EQ(zero_copy.size(), 600u);
    // The copy window, then the zero-copy window, then the decision for the rest.
    const bool kept = c.auto_kept_zc == 1;
    std::size_t last_copy = 0;
    for (std::size_t i = 0; i < zero_copy.size(); ++i)
        if (!zero_copy[i]) last_copy = i;
    if (kept) EXPECT_LT(last_copy, 300u) << "no copies after the decision to keep zero-copy";
    else EXPECT_TRUE(!zero_copy.back() && !zero_copy[500]) << "copies after the decision to copy";
}

TEST(SendEngine, AutoCopiesSmallSendsByChoice) {
    zcio::Ring ring;
    zcio::SendEngine engine(ring, {.auto_threshold = 4096});
    auto pair = zcio::test::udp_loopback_pair();
    const auto sock = engine.add_socket(pair.sender.get());
    std::vector<std::byte> small(100);
    zcio::Strategy used = zcio::Strategy::zc;
    engine.send(sock, zcio::Buffer::borrow(small), zcio::Storage{[&](zcio::Release&& r) { used = r.used; }});
    ASSERT_EQ(engine.drain(5s), 0);
    EXPECT_EQ(used, zcio::Strategy::copy);
    EXPECT_EQ(engine.counters().auto_small, 1u);
}

TEST(SendEngine, GroupGivesOneEventAfterEveryNotification) {
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = 64 << 10, .slab_count = 32});
    zcio::SendEngine engine(ring);
    auto pair = zcio::test::tcp_loopback_pair();
    StreamChecker checker(std::move(pair.receiver));
    const auto sock = engine.add_socket(pair.sender.get(), {.strategy = zcio::Strategy::zc_fixed});
    int events = 0;
    zcio::GroupResult seen;
    std::size_t free_at_event = 0;
    std::uint64_t notifications_at_event = 0;
    zcio::NotifGroup group([&](const zcio::GroupResult& g) {
        ++events;
        seen = g;
        free_at_event = arena.available();
        notifications_at_event = engine.counters().notifications;
    });
    constexpr int n = 32;
    for (int i = 0; i < n; ++i) {
        zcio::Buffer b = arena.take();
        ASSERT_TRUE(b);
        zcio::test::fill_pattern(b.span(), std::uint64_t{b.size()} * i);
        engine.send(sock, std::move(b), group);
    }
    EXPECT_EQ(group.pending(), static_cast<std::uint32_t>(n));
    engine.run();
    EXPECT_EQ(events, 0) << "no event before flush";
    engine.flush(group);
    ASSERT_EQ(engine.drain(10s), 0);
    EXPECT_EQ(events, 1);
    EXPECT_EQ(seen.sends, static_cast<std::uint32_t>(n));
    EXPECT_EQ(seen.bytes, std::uint64_t{n} * (64 << 10));
    EXPECT_EQ(seen.errors, 0u);
    EXPECT_EQ(seen.copied, static_cast<std::uint32_t>(n)) << "loopback: every one reported copied";
    EXPECT_EQ(free_at_event, arena.slab_count()) << "all buffers were free when the group event ran";
    EXPECT_GE(notifications_at_event, static_cast<std::uint64_t>(n)) << "the event came after all N notifications";
    // Flushing an empty group still gives its one event.
    engine.flush(group);
    engine.run();
    EXPECT_EQ(events, 2);
    ::shutdown(pair.sender.get(), SHUT_WR);
    checker.join();
    EXPECT_EQ(checker.first_mismatch(), UINT64_MAX);
}

// A send bound after flush() but before the event joins that event; flushing twice gives one event;
// after the event, the group starts a new round. No send is lost or counted twice.
TEST(SendEngine, GroupRoundsNeitherLoseNorDoubleCountSends) {
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = 4096, .slab_count = 16});
    zcio::SendEngine engine(ring);
    auto pair = zcio::test::udp_loopback_pair();
    const auto sock = engine.add_socket(pair.sender.get(), {.strategy = zcio::Strategy::zc_fixed});
    std::vector<std::uint32_t> events;  // sends per event
    zcio::NotifGroup group([&](const zcio::GroupResult& g) { events.push_back(g.sends); });
    auto send_one = [&] {
        zcio::Buffer b = arena.take();
        ASSERT_TRUE(b);
        b.resize(1000);
        engine.send(sock, std::move(b), group);
    };
    for (int i = 0; i < 3; ++i) send_one();
    engine.flush(group);
    engine.flush(group);                     // a second flush of the same round: still one event
    for (int i = 0; i < 2; ++i) send_one();  // before the event: they join this round
    EXPECT_EQ(group.pending(), 5u);
    ASSERT_EQ(engine.drain(5s), 0);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0], 5u);

    send_one();  // after the event: a new round, which waits for its own flush
    ASSERT_EQ(engine.drain(5s), 0);
    EXPECT_EQ(events.size(), 1u) << "no event for an unflushed round";
    engine.flush(group);
    engine.flush(group);
    ASSERT_EQ(engine.drain(5s), 0);
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[1], 1u);

    engine.flush(group);  // a round with no sends at all: its event says so, once
    engine.flush(group);
    ASSERT_EQ(engine.drain(5s), 0);
    ASSERT_EQ(events.size(), 3u);
    EXPECT_EQ(events[2], 0u);
    EXPECT_EQ(arena.available(), arena.slab_count());
}

TEST(SendEngine, BackpressureBoundsBytesInFlightWhenThePeerStopsReading) {
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = 64 << 10, .slab_count = 256});
    zcio::SendEngine engine(ring);
    auto pair = zcio::test::tcp_loopback_pair(64 << 10);
    StreamChecker checker(std::move(pair.receiver), /*pause_after=*/1 << 20);
    constexpr std::size_t bound = 1 << 20;
    const auto sock =
        engine.add_socket(pair.sender.get(), {.strategy = zcio::Strategy::zc_fixed, .max_inflight_bytes = bound});
    std::uint64_t released = 0, offset = 0;
    std::size_t peak = 0;
    for (int i = 0; i < 200; ++i) {
        zcio::Buffer b = arena.take();
        ASSERT_TRUE(b);
        zcio::test::fill_pattern(b.span(), offset);
        offset += b.size();
        engine.send(sock, std::move(b), zcio::Storage{[&](zcio::Release&&) { ++released; }});
        engine.run();
        peak = std::max(peak, engine.inflight_bytes(sock));
    }
    for (int i = 0; i < 20; ++i) {
        engine.run(true, 10ms);
        peak = std::max(peak, engine.inflight_bytes(sock));
    }
    EXPECT_LE(peak, bound) << "bytes in flight exceeded the socket's bound";
    EXPECT_GE(peak, bound / 2) << "the bound should be used, not starved";
    EXPECT_LT(released, 200u) << "the peer is not reading: most sends must still be held";
    checker.resume();
    ASSERT_EQ(engine.drain(20s), 0);
    EXPECT_EQ(released, 200u);
    ::shutdown(pair.sender.get(), SHUT_WR);
    checker.join();
    EXPECT_EQ(checker.bytes(), offset);
    EXPECT_EQ(checker.first_mismatch(), UINT64_MAX);
}

class PeerReset : public ::testing::TestWithParam<zcio::Strategy> {};

TEST_P(PeerReset, EveryBufferComesBackOnceAndTheErrorReachesTheCaller) {
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = 256 << 10, .slab_count = 64});
    zcio::SendEngine engine(ring);
    auto pair = zcio::test::tcp_loopback_pair();
    StreamChecker checker(std::move(pair.receiver));
    checker.reset_after(2 << 20);
    const auto sock = engine.add_socket(pair.sender.get(), {.strategy = GetParam()});
    std::uint64_t releases = 0, errors = 0, sends = 0;
    int last_error = 0;
    for (int i = 0; i < 400; ++i) {
        zcio::Buffer b = arena.take();
        while (!b) {
            if (engine.run(true, 100ms) == -ETIME) break;
            b = arena.take();
        }
        if (!b) break;
        engine.send(sock, std::move(b), zcio::Storage{[&](zcio::Release&& r) {
                        ++releases;
                        if (r.error) {
                            ++errors;
                            last_error = r.error;
                        }
                    }});
        ++sends;
    }
    ASSERT_EQ(engine.drain(20s), 0);
    checker.join();
    EXPECT_EQ(releases, sends) << "each buffer released exactly once";
    EXPECT_GT(errors, 0u) << "the reset must reach the caller";
    EXPECT_TRUE(last_error == -ECONNRESET || last_error == -EPIPE) << zcio::errno_string(last_error);
    EXPECT_EQ(arena.available(), arena.slab_count());
    EXPECT_EQ(arena.stats().taken, arena.stats().returned);
    EXPECT_EQ(engine.counters().stray_cqes, 0u);
}

INSTANTIATE_TEST_SUITE_P(Strategies, PeerReset,
                         ::testing::Values(zcio::Strategy::plain, zcio::Strategy::copy, zcio::Strategy::msg_zerocopy,
                                           zcio::Strategy::zc, zcio::Strategy::zc_fixed, zcio::Strategy::sendmsg_zc),
                         [](const auto& info) {
                             std::string n = zcio::to_string(info.param);
                             for (auto& ch : n)
                                 if (ch == '-') ch = '_';
                             return n;
                         });

TEST(SendEngine, ShutdownWithSendsInFlightReleasesEveryBuffer) {
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = 64 << 10, .slab_count = 128});
    std::uint64_t releases = 0, cancelled = 0;
    auto pair = zcio::test::tcp_loopback_pair(64 << 10);
    StreamChecker checker(std::move(pair.receiver), /*pause_after=*/0);  // never reads
    {
        zcio::SendEngine engine(ring, {.shutdown_timeout = 2s});
        const auto sock = engine.add_socket(pair.sender.get(), {.strategy = zcio::Strategy::zc_fixed});
        for (int i = 0; i < 128; ++i) {
            engine.send(sock, arena.take(), zcio::Storage{[&](zcio::Release&& r) {
                            ++releases;
                            cancelled += r.error == -ECANCELED;
                        }});
        }
        engine.run();
        // The peer holds the data unacknowledged: closing our end lets the kernel drop it, so the
        // notifications can come during the engine's shutdown.
        ::shutdown(pair.sender.get(), SHUT_RDWR);
    }
    EXPECT_EQ(releases, 128u) << "every handler ran, once";

    EXPECT_GT(cancelled, 0u) << "queued sends come back cancelled";
    EXPECT_EQ(arena.available(), arena.slab_count());
    checker.resume();
}

TEST(SendEngine, RemoveSocketCancelsALinkedChainAndWaitsForEveryNotification) {
    // The chain blocked behind a full socket is cancelled; requests cancelled by the broken link
    // still get notifications (with no F_MORE on 6.18): none may land on a recycled slot.
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = 64 << 10, .slab_count = 128});
    zcio::SendEngine engine(ring);
    auto pair = zcio::test::tcp_loopback_pair(64 << 10);
    StreamChecker checker(std::move(pair.receiver), /*pause_after=*/0);
    const auto sock = engine.add_socket(pair.sender.get(), {.strategy = zcio::Strategy::zc_fixed});
    std::uint64_t releases = 0, cancelled = 0;
    for (int i = 0; i < 128; ++i)
        engine.send(sock, arena.take(), zcio::Storage{[&](zcio::Release&& r) {
                        ++releases;
                        cancelled += r.error == -ECANCELED;
                    }});
    engine.run();
    std::thread reader([&] {
        std::this_thread::sleep_for(200ms);
        checker.resume();  // lets the acknowledgements, and so the notifications, come
    });
    engine.remove_socket(sock);
    reader.join();
    ::shutdown(pair.sender.get(), SHUT_RDWR);
    EXPECT_EQ(releases, 128u);
    EXPECT_GT(cancelled, 0u);
    EXPECT_EQ(engine.counters().stray_cqes, 0u);
    EXPECT_EQ(engine.ops_in_use(), 0u);
    EXPECT_EQ(arena.available(), arena.slab_count());
    // Slots are reused safely afterwards: a new socket streams correctly.
    auto pair2 = zcio::test::tcp_loopback_pair();
    StreamChecker checker2(std::move(pair2.receiver));
    const auto sock2 = engine.add_socket(pair2.sender.get(), {.strategy = zcio::Strategy::zc_fixed});
    for (int i = 0; i < 64; ++i) {
        zcio::Buffer b = arena.take();
        zcio::test::fill_pattern(b.span(), std::uint64_t{64 << 10} * i);
        engine.send(sock2, std::move(b), zcio::Storage{[](zcio::Release&& r) { EXPECT_EQ(r.error, 0); }});
    }
    ASSERT_EQ(engine.drain(10s), 0);
    ::shutdown(pair2.sender.get(), SHUT_WR);
    checker2.join();
    EXPECT_EQ(checker2.bytes(), std::uint64_t{64} << 16);
    EXPECT_EQ(checker2.first_mismatch(), UINT64_MAX);
    EXPECT_EQ(engine.counters().stray_cqes, 0u);
}

TEST(SendEngine, GatheredSendsKeepTheStreamExactAndReturnEveryBuffer) {
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = 32 << 10, .slab_count = 256});
    zcio::SendEngine engine(ring);
    auto pair = zcio::test::tcp_loopback_pair();
    StreamChecker checker(std::move(pair.receiver));
    const auto sock = engine.add_socket(pair.sender.get(), {.strategy = zcio::Strategy::copy});
    std::mt19937 rng(7);
    // Unregistered memory mixed in (the message then goes unfixed); one block per use: memory lent
    // to a zero-copy send must not be rewritten before its release.
    std::vector<std::vector<std::byte>> plain(30, std::vector<std::byte>(10000));
    std::uint64_t offset = 0, releases = 0, buffers_back = 0, bytes = 0, zc_used = 0;
    for (int i = 0; i < 300; ++i) {
        zcio::BufferChain chain;
        const std::size_t n = 1 + rng() % zcio::BufferChain::capacity;
        for (std::size_t k = 0; k < n; ++k) {
            zcio::Buffer b = (i % 10 == 0 && k == 1) ? zcio::Buffer::borrow(plain[i / 10]) : arena.take();
            while (!b) {
                engine.run(true, 100ms);
                b = arena.take();
            }
            b.resize(1 + rng() % b.capacity());
            zcio::test::fill_pattern(b.span(), offset);
            offset += b.size();
            ASSERT_TRUE(chain.push_back(std::move(b)));
        }
        zcio::Buffer extra = arena.take();
        if (n == zcio::BufferChain::capacity && extra) {
            EXPECT_FALSE(chain.push_back(std::move(extra))) << "a full chain refuses";
            EXPECT_TRUE(extra) << "and leaves the buffer with the caller";
        }
        engine.send(sock, std::move(chain), zcio::Storage{[&](zcio::Release&& r) {
                        ++releases;
                        buffers_back += (r.buffer ? 1 : 0) + r.more.size();
                        bytes += r.bytes;
                        zc_used += r.used == zcio::Strategy::sendmsg_zc;
                        EXPECT_EQ(r.error, 0);
                    }});
    }
    ASSERT_EQ(engine.drain(20s), 0);
    ::shutdown(pair.sender.get(), SHUT_WR);
    checker.join();
    EXPECT_EQ(releases, 300u) << "one release per message";
    EXPECT_EQ(zc_used, 300u) << "a chain always goes as SENDMSG_ZC, whatever the socket's strategy";
    EXPECT_EQ(bytes, offset);
    EXPECT_EQ(checker.bytes(), offset);
    EXPECT_EQ(checker.first_mismatch(), UINT64_MAX) << "gathered stream corrupted at " << checker.first_mismatch();
    EXPECT_EQ(arena.available(), arena.slab_count());
    EXPECT_GT(buffers_back, 300u);
    EXPECT_EQ(engine.counters().stray_cqes, 0u);
}

TEST(SendEngine, UdpGsoCutsOneSendIntoSegments) {
    zcio::Ring ring;
    zcio::SendEngine engine(ring);
    auto pair = zcio::test::udp_loopback_pair();
    const auto sock = engine.add_socket(pair.sender.get(), {.strategy = zcio::Strategy::zc, .udp_gso_size = 1000});
    std::vector<std::byte> data(10000);
    zcio::test::fill_pattern(data, 0);
    int err = 1;
    engine.send(sock, zcio::Buffer::borrow(data), zcio::Storage{[&](zcio::Release&& r) { err = r.error; }});
    ASSERT_EQ(engine.drain(5s), 0);
    ASSERT_EQ(err, 0);
    int datagrams = 0;
    std::vector<unsigned char> in(65536);
    std::uint64_t off = 0;
    for (;;) {
        const ssize_t n = ::recv(pair.receiver.get(), in.data(), in.size(), MSG_DONTWAIT);
        if (n < 0) break;
        EXPECT_EQ(n, 1000);
        for (ssize_t i = 0; i < n; ++i)
            ASSERT_EQ(in[static_cast<std::size_t>(i)], zcio::test::pattern_byte(off + static_cast<std::uint64_t>(i)));
        off += static_cast<std::uint64_t>(n);
        ++datagrams;
    }
    EXPECT_EQ(datagrams, 10);
}

TEST(SendEngine, UdpDatagramsArriveWhole) {
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = 16 << 10, .slab_count = 16});
    zcio::SendEngine engine(ring);
    auto pair = zcio::test::udp_loopback_pair();
    const auto sock = engine.add_socket(pair.sender.get(), {.strategy = zcio::Strategy::zc_fixed});
    for (int i = 0; i < 16; ++i) {
        zcio::Buffer b = arena.take();
        b.resize(1000 + static_cast<std::size_t>(i) * 500);
        zcio::test::fill_pattern(b.span(), static_cast<std::uint64_t>(i) << 20);
        engine.send(sock, std::move(b), zcio::Storage{[](zcio::Release&& r) { EXPECT_EQ(r.error, 0); }});
    }
    ASSERT_EQ(engine.drain(5s), 0);
    std::vector<unsigned char> in(65536);
    for (int i = 0; i < 16; ++i) {
        const ssize_t n = ::recv(pair.receiver.get(), in.data(), in.size(), MSG_DONTWAIT);
        ASSERT_EQ(n, 1000 + i * 500);
        EXPECT_EQ(in[7], zcio::test::pattern_byte((static_cast<std::uint64_t>(i) << 20) + 7));
    }
}

TEST(SendEngine, EmptyHandleIsRefusedThroughItsRelease) {
    zcio::Ring ring;
    zcio::SendEngine engine(ring);
    auto pair = zcio::test::udp_loopback_pair();
    const auto sock = engine.add_socket(pair.sender.get());
    int err = 0, calls = 0;
    engine.send(sock, zcio::Buffer{}, zcio::Storage{[&](zcio::Release&& r) {
                    err = r.error;
                    ++calls;
                }});
    ASSERT_EQ(engine.drain(5s), 0);
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(err, -EINVAL);
}

TEST(SendEngine, AStrategyTheKernelLacksIsRefusedWithWhyAndAutoAdapts) {
    // A kernel without SEND_ZC (5.x before 6.0), described by a doctored copy of the real probe.
    zcio::KernelFeatures old = zcio::probe();
    old.send_zc = old.send_zc_fixed = old.sendmsg_zc = old.sendmsg_zc_fixed = false;
    old.reasons["send_zc"] = "opcode 47 not in the probe (test)";
    zcio::Ring ring;
    zcio::SendEngine engine(ring, {.features = &old});
    auto pair = zcio::test::udp_loopback_pair();
    try {
        engine.add_socket(pair.sender.get(), {.strategy = zcio::Strategy::zc});
        FAIL() << "zc was accepted on a kernel without SEND_ZC";
    } catch (const zcio::SetupError& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("strategy zc needs send_zc"), std::string::npos) << what;
        EXPECT_NE(what.find("opcode 47 not in the probe (test)"), std::string::npos) << what;
        EXPECT_NE(what.find("this kernel can run: plain, copy, msg-zerocopy, auto"), std::string::npos) << what;
    }
    // auto only copies there, and a zero-copy override fails that one send, through its release.
    const auto sock = engine.add_socket(pair.sender.get(), {.strategy = zcio::Strategy::automatic});
    std::vector<std::byte> big(60000);
    zcio::Release a, b;
    engine.send(sock, zcio::Buffer::borrow(big), zcio::Storage{[&](zcio::Release&& r) { a = std::move(r); }});
    engine.send(sock, zcio::Buffer::borrow(big), zcio::Storage{[&](zcio::Release&& r) { b = std::move(r); }},
                {.strategy = zcio::Strategy::zc_fixed});
    ASSERT_EQ(engine.drain(5s), 0);
    EXPECT_EQ(a.error, 0);
    EXPECT_EQ(a.used, zcio::Strategy::copy);
    EXPECT_EQ(a.bytes, big.size());
    EXPECT_EQ(b.error, -EOPNOTSUPP);
    EXPECT_TRUE(b.buffer) << "a refused buffer still comes back";
}

TEST(SendEngine, SendDoesNotWaitForeverForASlotWhenThePeerNeverReads) {
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = 64 << 10, .slab_count = 64});
    int timed_out = 0, released = 0;  // before the engine: its destructor still calls handlers
    zcio::SendEngine engine(ring, {.max_ops = 16, .shutdown_timeout = 200ms, .send_wait_timeout = 300ms});
    auto pair = zcio::test::tcp_loopback_pair(64 << 10);
    StreamChecker checker(std::move(pair.receiver), /*pause_after=*/0);  // never reads
    const auto sock = engine.add_socket(pair.sender.get(), {.strategy = zcio::Strategy::zc_fixed});
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 40; ++i) {
        engine.send(sock, arena.take(), zcio::Storage{[&](zcio::Release&& r) {
                        ++released;
                        if (r.error == -ETIMEDOUT) {
                            ++timed_out;
                            EXPECT_TRUE(r.buffer) << "a refused buffer comes back to the caller";
                        }
                    }});
        if (timed_out) break;
    }
    const auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_EQ(timed_out, 1) << "once every slot is held by the stalled peer, send() gives up";
    EXPECT_LT(took, 5s);
    ::shutdown(pair.sender.get(), SHUT_RDWR);
    checker.resume();
}

TEST(SendEngine, BadSetupSaysWhy) {
    zcio::Ring ring;
    zcio::SendEngine engine(ring);
    try {
        engine.add_socket(0 + 1000);  // not an open fd
        FAIL() << "a bad fd was accepted";
    } catch (const zcio::SetupError& e) {
        EXPECT_NE(std::string(e.what()).find("not a socket"), std::string::npos) << e.what();
    }
    auto tcp = zcio::test::tcp_loopback_pair();
    EXPECT_THROW(engine.add_socket(tcp.sender.get(), {.udp_gso_size = 1400}), zcio::SetupError);
    zcio::Ring small({.sq_entries = 64, .cq_entries = 64});
    EXPECT_THROW(zcio::SendEngine bad(small), zcio::SetupError);
    EXPECT_THROW(engine.strategy(12345), zcio::SetupError);
}

}  // namespace
