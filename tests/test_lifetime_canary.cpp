// The lifetime canary, and the proof that the integrity tests can fail.
//
// (1) ArenaOptions::poison fills a slab when it comes home and checks the fill when it is handed
//     out again: a write after release is caught; the engine's own path never trips it.
// (2) A negative control: a deliberately wrong program that reuses each buffer at its FIRST
//     completion (two-step on_sent, before the notification) while the kernel still holds the pages.
//     The StreamChecker must see the corruption; the same program reusing at on_release must not.
#include "zcio/buffer_arena.hpp"
#include "zcio/send_engine.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <random>
#include <thread>
#include <vector>

#include "fault_support.hpp"
#include "net_fixtures.hpp"

namespace {

using namespace std::chrono_literals;
using zcio::test::join_within;
using zcio::test::StreamChecker;

TEST(PoisonCanary, AWriteAfterReleaseIsCaughtWhenTheSlabIsTakenAgain) {
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = 64 << 10, .slab_count = 8, .poison = true});
    zcio::SendEngine engine(ring);
    auto pair = zcio::test::udp_loopback_pair();
    const auto sock = engine.add_socket(pair.sender.get(), {.strategy = zcio::Strategy::zc_fixed});
    zcio::Buffer b = arena.take();
    ASSERT_TRUE(b);
    std::byte* kept = b.data();  // the bug: a raw pointer kept past the send
    b.resize(1000);
    zcio::test::fill_pattern(b.span(), 0);
    bool released = false;
    engine.send(sock, std::move(b), zcio::Storage{[&](zcio::Release&& r) {
                    released = true;
                    EXPECT_EQ(r.error, 0);
                }});
    ASSERT_EQ(engine.drain(5s), 0);
    ASSERT_TRUE(released);
    EXPECT_EQ(arena.stats().poison_violations, 0u) << "nothing wrote after release yet";
    kept[500] = std::byte{0x42};  // write after release
    std::vector<zcio::Buffer> all;
    while (zcio::Buffer t = arena.take()) all.push_back(std::move(t));
    EXPECT_EQ(all.size(), arena.slab_count());
    EXPECT_EQ(arena.stats().poison_violations, 1u) << "the canary must catch the write after release";
}

class PoisonCleanStream : public ::testing::TestWithParam<std::tuple<zcio::Strategy, bool>> {};

TEST_P(PoisonCleanStream, TheEnginesOwnPathNeverWritesAfterRelease) {
    const auto [strategy, two_step] = GetParam();
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = 256 << 10, .slab_count = 32, .poison = true});
    zcio::SendEngine engine(ring);
    auto pair = zcio::test::tcp_loopback_pair();
    StreamChecker checker(std::move(pair.receiver));
    const auto sock = engine.add_socket(pair.sender.get(), {.strategy = strategy});
    std::mt19937 rng(7);
    std::uniform_int_distribution<std::size_t> pick(1, 256 << 10);
    const std::uint64_t total = 12u << 20;
    std::uint64_t offset = 0, releases = 0, sends = 0, errors = 0;
    const zcio::test::Deadline until(20s);
    while (offset < total && !until.passed()) {
        zcio::Buffer b = arena.take();
        while (!b && !until.passed()) {
            engine.run(true, 20ms);
            b = arena.take();
        }
        ASSERT_TRUE(b);
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(pick(rng), total - offset));
        b.resize(n);
        zcio::test::fill_pattern(b.span(), offset);
        offset += n;
        ++sends;
        if (two_step) {
            engine.send(sock, std::move(b),
                        zcio::TwoStep{[](const zcio::SendResult&) {},
                                      [&](zcio::Release&& r) {
                                          ++releases;
                                          errors += r.error != 0;
                                      }});
        } else {
            engine.send(sock, std::move(b), zcio::Storage{[&](zcio::Release&& r) {
                            ++releases;
                            errors += r.error != 0;
                        }});
        }
    }
    ASSERT_EQ(engine.drain(20s), 0);
    ::shutdown(pair.sender.get(), SHUT_WR);
    ASSERT_TRUE(join_within(checker, pair.sender.get(), 10s));
    // Every slab once more through the canary's check.
    std::vector<zcio::Buffer> all;
    while (zcio::Buffer t = arena.take()) all.push_back(std::move(t));
    EXPECT_EQ(arena.stats().poison_violations, 0u);
    EXPECT_EQ(checker.bytes(), total);
    EXPECT_EQ(checker.first_mismatch(), UINT64_MAX);
    EXPECT_EQ(releases, sends);
    EXPECT_EQ(errors, 0u);
    all.clear();
    EXPECT_EQ(arena.stats().taken, arena.stats().returned);
}

INSTANTIATE_TEST_SUITE_P(Strategies, PoisonCleanStream,
                         ::testing::Combine(::testing::Values(zcio::Strategy::zc_fixed, zcio::Strategy::zc,
                                                              zcio::Strategy::sendmsg_zc, zcio::Strategy::msg_zerocopy),
                                            ::testing::Bool()),
                         [](const auto& info) {
                             std::string n = zcio::to_string(std::get<0>(info.param));
                             for (auto& ch : n)
                                 if (ch == '-') ch = '_';
                             return n + (std::get<1>(info.param) ? "_two_step" : "_storage");
                         });

// ---- the negative control --------------------------------------------------------------------------

// Overwrites [p, p+n) with bytes that differ from the pattern at every offset.
void scribble(std::byte* p, std::size_t n, std::uint64_t stream_offset) {
    for (std::size_t i = 0; i < n; ++i)
        p[i] = std::byte{static_cast<std::uint8_t>(~zcio::test::pattern_byte(stream_offset + i))};
}

struct ControlResult {
    std::uint64_t first_mismatch = UINT64_MAX, bytes = 0, total = 0, scribbled = 0;
};

// Sends 64 x 64 KiB zc-fixed to a paused reader (64 KiB receive buffer), so most of the data sits
// unsent in the socket referencing our pages when the requests complete; the program then reuses
// each buffer at on_sent (wrong) or at on_release (right), and the reader is let go.
ControlResult reuse_program(bool reuse_at_sent) {
    ControlResult out;
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = 64 << 10, .slab_count = 64});
    zcio::SendEngine engine(ring);
    auto pair = zcio::test::tcp_loopback_pair(64 << 10);
    StreamChecker checker(std::move(pair.receiver), /*pause_after=*/0);
    const auto sock = engine.add_socket(pair.sender.get(), {.strategy = zcio::Strategy::zc_fixed});
    std::uint64_t offset = 0;
    std::uint64_t* scribbled = &out.scribbled;
    for (int i = 0; i < 64; ++i) {
        zcio::Buffer b = arena.take();
        EXPECT_TRUE(b);
        if (!b) break;
        zcio::test::fill_pattern(b.span(), offset);
        std::byte* raw = b.data();  // the wrong program keeps this past the send
        const std::size_t n = b.size();
        const std::uint64_t off = offset;
        offset += n;
        engine.send(sock, std::move(b),
                    zcio::TwoStep{[=](const zcio::SendResult& r) {
                                      if (reuse_at_sent && r.res > 0) {
                                          scribble(raw, n, off);  // WRONG: the kernel may still read it
                                          ++*scribbled;
                                      }
                                  },
                                  [=](zcio::Release&& r) {
                                      if (!reuse_at_sent && r.buffer) {
                                          scribble(r.buffer.data(), n, off);  // right: it is ours again
                                          ++*scribbled;
                                      }
                                  }});
    }
    out.total = offset;
    // Let requests complete (on_sent) while the reader is still paused.
    const zcio::test::Deadline settle(300ms);
    while (!settle.passed()) engine.run(true, 20ms);
    checker.resume();
    EXPECT_EQ(engine.drain(10s), 0);
    ::shutdown(pair.sender.get(), SHUT_WR);
    EXPECT_TRUE(join_within(checker, pair.sender.get(), 10s));
    out.first_mismatch = checker.first_mismatch();
    out.bytes = checker.bytes();
    EXPECT_EQ(arena.stats().taken, arena.stats().returned);
    return out;
}

TEST(NegativeControl, ReusingABufferAtOnSentCorruptsTheStreamAndTheCheckerSeesIt) {
    const ControlResult r = reuse_program(/*reuse_at_sent=*/true);
    EXPECT_GT(r.scribbled, 0u) << "on_sent never fired while the reader was paused";
    EXPECT_EQ(r.bytes, r.total);
    EXPECT_NE(r.first_mismatch, UINT64_MAX)
        << "overwriting buffers the kernel still held went unnoticed: the integrity tests could not fail";
}

TEST(NegativeControl, ReusingABufferAtOnReleaseLeavesTheStreamIntact) {
    const ControlResult r = reuse_program(/*reuse_at_sent=*/false);
    EXPECT_EQ(r.scribbled, 64u);
    EXPECT_EQ(r.bytes, r.total);
    EXPECT_EQ(r.first_mismatch, UINT64_MAX) << "stream corrupted at " << r.first_mismatch;
}

}  // namespace
