// Cases from liburing's send-zerocopy matrix that the other send tests do not cover, each checked
// byte for byte against the real kernel: IPv6 sockets (TCP over ::1, UDP) for every strategy and
// completion model; registered buffers sent from offsets 13 bytes inside their slab; 32 MiB TCP
// sends that the kernel takes in several parts; arena and borrowed buffers mixed in one stream.
#include "zcio/buffer_arena.hpp"
#include "zcio/error.hpp"
#include "zcio/send_engine.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <random>
#include <vector>

#include "net_fixtures.hpp"
#include "send_stream.hpp"

namespace {

using namespace std::chrono_literals;
using zcio::test::all_combinations;
using zcio::test::case_name;
using zcio::test::ModelKind;
using zcio::test::PieceSender;
using zcio::test::strategy_name;
using zcio::test::StrategyModel;
using zcio::test::StreamChecker;
using zcio::test::Tally;

std::string strategy_case(const ::testing::TestParamInfo<zcio::Strategy>& info) { return strategy_name(info.param); }

// What every stream test checks at the end: the bytes arrived exactly, every send was released
// once without error, every slab is home, and no CQE went astray.
void expect_exact_stream(const StreamChecker& checker, std::uint64_t total, const Tally& t,
                         const zcio::SendEngine& engine, const zcio::BufferArena& arena) {
    EXPECT_EQ(checker.bytes(), total);
    EXPECT_EQ(checker.first_mismatch(), UINT64_MAX) << "stream corrupted at offset " << checker.first_mismatch();
    const zcio::Counters c = engine.counters();
    EXPECT_EQ(t.releases, c.sends) << "each send released exactly once";
    EXPECT_EQ(t.bytes, total);
    EXPECT_EQ(t.errors, 0u);
    EXPECT_EQ(t.sent_before_release_violations, 0u);
    EXPECT_EQ(arena.available(), arena.slab_count()) << "every slab back in the arena";
    EXPECT_EQ(arena.stats().taken, arena.stats().returned);
    EXPECT_EQ(engine.ops_in_use(), 0u);
    EXPECT_EQ(c.stray_cqes, 0u);
}

// ---- IPv6: TCP over ::1 -----------------------------------------------------------------------------

class Ipv6Tcp : public ::testing::TestWithParam<StrategyModel> {};

TEST_P(Ipv6Tcp, StreamOverLoopbackArrivesExactly) {
    const auto [strategy, model] = GetParam();
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = 256 << 10, .slab_count = 32});
    zcio::SendEngine engine(ring);
    auto pair = zcio::test::tcp_loopback_pair(0, AF_INET6);
    StreamChecker checker(std::move(pair.receiver));
    const auto sock = engine.add_socket(pair.sender.get(), {.strategy = strategy});

    const std::uint64_t total = 6ull << 20;
    const Tally t = zcio::test::stream_through(engine, arena, sock, model, total, 256 << 10, 6);
    ::shutdown(pair.sender.get(), SHUT_WR);
    checker.join();
    expect_exact_stream(checker, total, t, engine, arena);
    if (zcio::is_zero_copy(strategy)) {
        EXPECT_EQ(t.zero_copy, 0u) << "::1 delivers locally: the receiver copies";
    }
}

INSTANTIATE_TEST_SUITE_P(AllStrategiesAndModels, Ipv6Tcp, ::testing::ValuesIn(all_combinations()),
                         [](const auto& info) { return case_name(info.param); });

// ---- IPv6: UDP over ::1 -----------------------------------------------------------------------------

// Reads the next datagram within 2 s; its size, or -errno.
ssize_t recv_datagram(int fd, std::vector<std::byte>& buf) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 2000) != 1) return -ETIMEDOUT;
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
    return n < 0 ? -errno : n;
}

class Ipv6Udp : public ::testing::TestWithParam<StrategyModel> {};

TEST_P(Ipv6Udp, EveryDatagramArrivesWholeAndInOrder) {
    const auto [strategy, model] = GetParam();
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = 16 << 10, .slab_count = 64});
    zcio::SendEngine engine(ring);
    auto pair = zcio::test::udp_loopback_pair(AF_INET6);
    const auto sock = engine.add_socket(pair.sender.get(), {.strategy = strategy});

    // Batches small enough for the receive buffer (rmem_max caps SO_RCVBUF), each read and checked
    // before the next: a datagram lost, cut, reordered or corrupted fails the test.
    PieceSender tx(engine, sock, model);
    std::mt19937 rng(16);
    std::uniform_int_distribution<std::size_t> pick(1, 12000);
    std::vector<std::byte> got(64 << 10);
    std::uint64_t offset = 0, datagrams = 0;
    for (int batch = 0; batch < 24; ++batch) {
        std::vector<std::pair<std::uint64_t, std::size_t>> sent;  // stream offset, size
        for (int i = 0; i < 8; ++i) {
            zcio::Buffer b = arena.take();
            ASSERT_TRUE(b) << "the arena holds every batch";
            b.resize(pick(rng));
            zcio::test::fill_pattern(b.span(), offset);
            sent.emplace_back(offset, b.size());
            offset += b.size();
            tx.send(std::move(b));
        }
        ASSERT_EQ(engine.drain(10s), 0);
        for (const auto& [at, size] : sent) {
            const ssize_t n = recv_datagram(pair.receiver.get(), got);
            ASSERT_EQ(n, static_cast<ssize_t>(size))
                << "datagram " << datagrams << ": " << zcio::errno_string(n < 0 ? static_cast<int>(n) : 0);
            for (std::size_t i = 0; i < size; ++i)
                ASSERT_EQ(std::to_integer<std::uint8_t>(got[i]), zcio::test::pattern_byte(at + i))
                    << "datagram " << datagrams << " byte " << i;
            ++datagrams;
        }
    }
    const Tally t = tx.finish();
    const zcio::Counters c = engine.counters();
    EXPECT_EQ(t.releases, c.sends);
    EXPECT_EQ(t.bytes, offset);
    EXPECT_EQ(t.errors, 0u);
    EXPECT_EQ(t.sent_before_release_violations, 0u);
    EXPECT_EQ(arena.stats().taken, arena.stats().returned);
    EXPECT_EQ(c.stray_cqes, 0u);
}

INSTANTIATE_TEST_SUITE_P(AllStrategiesAndModels, Ipv6Udp, ::testing::ValuesIn(all_combinations()),
                         [](const auto& info) { return case_name(info.param); });

// ---- registered buffers sent from unaligned offsets -------------------------------------------------

class UnalignedOffsets : public ::testing::TestWithParam<zcio::Strategy> {};

// Pieces start 13 bytes into their slab, or end 13 bytes before its end (liburing's +-13), so
// neither end of a send sits on a page; the registered sub-range must still go as a fixed buffer.
TEST_P(UnalignedOffsets, SubRangesOfRegisteredSlabsArriveExactly) {
    const zcio::Strategy strategy = GetParam();
    constexpr std::size_t slab = 64 << 10, skew = 13;
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = slab, .slab_count = 64});
    ASSERT_TRUE(arena.registered()) << arena.describe();
    zcio::SendEngine engine(ring);
    auto pair = zcio::test::tcp_loopback_pair();
    StreamChecker checker(std::move(pair.receiver));
    const auto sock = engine.add_socket(pair.sender.get(), {.strategy = strategy});

    std::uint64_t pieces = 0;
    auto source = [&](std::size_t n, std::uint64_t) {
        zcio::Buffer b = arena.take();
        if (!b) return b;
        // Even pieces start at +13; odd ones end at -13 (and so start wherever that puts them).
        b.trim_front(pieces++ % 2 == 0 ? skew : slab - skew - n);
        EXPECT_EQ(b.buf_index(), 0) << "a trimmed slab is still registered memory";
        return b;
    };
    const std::uint64_t total = 8ull << 20;
    const Tally t = zcio::test::stream_through(engine, source, sock, ModelKind::storage, total, slab - 2 * skew, 13);
    ::shutdown(pair.sender.get(), SHUT_WR);
    checker.join();
    expect_exact_stream(checker, total, t, engine, arena);
    const zcio::Counters c = engine.counters();
    if (strategy == zcio::Strategy::zc_fixed) {
        EXPECT_EQ(c.fallbacks, 0u) << "an unaligned registered sub-range must not fall back to plain zc";
        EXPECT_EQ(c.by_strategy[static_cast<int>(zcio::Strategy::zc_fixed)], c.requests);
    }
}

INSTANTIATE_TEST_SUITE_P(AllStrategies, UnalignedOffsets, ::testing::ValuesIn(zcio::all_strategies), strategy_case);

TEST(Buffer, TrimFrontKeepsOwnershipOfTheWholeSlab) {
    zcio::BufferArena arena({.slab_size = 4096, .slab_count = 2, .register_buffers = false});
    zcio::Buffer b = arena.take();
    std::byte* const start = b.data();
    b.trim_front(13);
    EXPECT_EQ(b.data(), start + 13);
    EXPECT_EQ(b.size(), 4096u - 13);
    EXPECT_EQ(b.capacity(), 4096u - 13);
    b.resize(100);
    b.trim_front(200);  // past the size: empty view, still the slab's owner
    EXPECT_EQ(b.size(), 0u);
    EXPECT_TRUE(b);
    b.trim_front(1 << 20);  // past the capacity: clamped
    EXPECT_EQ(b.capacity(), 0u);
    EXPECT_EQ(arena.available(), 1u);
    b.reset();
    EXPECT_EQ(arena.available(), 2u) << "the whole slab went home";
    EXPECT_EQ(arena.stats().returned, 1u);
}

// ---- 32 MiB sends that the kernel takes in parts ----------------------------------------------------

class LargeSends : public ::testing::TestWithParam<zcio::Strategy> {};

// A 32 MiB send is far more than the socket buffers hold, and the sender's socket is non-blocking:
// the kernel takes each send in parts. The syscall strategies get every part back from send(2) and
// must continue it (short_sends). io_uring sends carry MSG_WAITALL, so the kernel continues a
// partial send itself (io_uring/net.c, io_net_retry) and completes the request once all 32 MiB are
// queued: on 6.18 no short CQE reaches the engine, and any extra request must be a counted short.
TEST_P(LargeSends, ThirtyTwoMebibyteSendsAreContinuedAndArriveExactly) {
    const zcio::Strategy strategy = GetParam();
    constexpr std::size_t big = 32u << 20;
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = big, .slab_count = 2, .huge_pages = false});
    zcio::SendEngine engine(ring);
    auto pair = zcio::test::tcp_loopback_pair();
    const int sndbuf = 256 << 10;
    ASSERT_EQ(::setsockopt(pair.sender.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf), 0);
    ASSERT_EQ(::fcntl(pair.sender.get(), F_SETFL, ::fcntl(pair.sender.get(), F_GETFL) | O_NONBLOCK), 0);
    StreamChecker checker(std::move(pair.receiver));
    const auto sock = engine.add_socket(pair.sender.get(), {.strategy = strategy, .max_inflight_bytes = 2 * big});

    PieceSender tx(engine, sock, ModelKind::storage);
    std::uint64_t offset = 0;
    for (int i = 0; i < 3; ++i) {
        zcio::Buffer b = arena.take();
        while (!b) {
            engine.run(true, 100ms);
            b = arena.take();
        }
        zcio::test::fill_pattern(b.span(), offset);
        offset += b.size();
        tx.send(std::move(b));
    }
    const Tally t = tx.finish();
    ::shutdown(pair.sender.get(), SHUT_WR);
    checker.join();
    expect_exact_stream(checker, offset, t, engine, arena);
    const zcio::Counters c = engine.counters();
    if (strategy == zcio::Strategy::plain || strategy == zcio::Strategy::msg_zerocopy) {
        EXPECT_GT(c.short_sends, 0u) << "32 MiB into a 256 KiB socket buffer must go in parts";
    } else {
        EXPECT_EQ(c.requests, c.sends + c.short_sends) << "every request past one per send continues a short one";
    }
}

INSTANTIATE_TEST_SUITE_P(AllStrategies, LargeSends, ::testing::ValuesIn(zcio::all_strategies), strategy_case);

// ---- arena and borrowed buffers in one stream -------------------------------------------------------

class MixedMemory : public ::testing::TestWithParam<zcio::Strategy> {};

TEST_P(MixedMemory, ArenaAndBorrowedBuffersInterleaveInOneExactStream) {
    const zcio::Strategy strategy = GetParam();
    const std::uint64_t total = 8ull << 20;
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = 128 << 10, .slab_count = 32});
    zcio::SendEngine engine(ring);
    auto pair = zcio::test::tcp_loopback_pair();
    StreamChecker checker(std::move(pair.receiver));
    const auto sock = engine.add_socket(pair.sender.get(), {.strategy = strategy});

    // Borrowed pieces live at their own stream offset in `mine`, so none is reused while in flight.
    std::vector<std::byte> mine(total);
    std::uint64_t pieces = 0, borrowed = 0;
    auto source = [&](std::size_t n, std::uint64_t offset) {
        if (pieces++ % 3 == 0) return arena.take();
        ++borrowed;
        return zcio::Buffer::borrow(std::span<std::byte>(mine).subspan(offset, n));
    };
    const Tally t = zcio::test::stream_through(engine, source, sock, ModelKind::two_step, total, 128 << 10, 3);
    ::shutdown(pair.sender.get(), SHUT_WR);
    checker.join();
    expect_exact_stream(checker, total, t, engine, arena);
    ASSERT_GT(borrowed, 0u);
    ASSERT_GT(arena.stats().taken, 0u);
    if (strategy == zcio::Strategy::zc_fixed) {
        EXPECT_EQ(engine.counters().fallbacks, borrowed) << "each borrowed piece goes as plain zc, and says so";
    }
}

INSTANTIATE_TEST_SUITE_P(AllStrategies, MixedMemory, ::testing::ValuesIn(zcio::all_strategies), strategy_case);

}  // namespace
