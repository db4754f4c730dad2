// Coroutines over the callback core: a coroutine streams through co_await, in order, and each
// await resumes with its own release.
#include "zcio/buffer_arena.hpp"
#include "zcio/task.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <stdexcept>

#include "net_fixtures.hpp"

namespace {

using namespace std::chrono_literals;

zcio::Task stream(zcio::SendEngine& engine, zcio::SocketId sock, zcio::BufferArena& arena, int count,
                  std::uint64_t& bytes, int& copied) {
    for (int i = 0; i < count; ++i) {
        zcio::Buffer b = arena.take();
        zcio::test::fill_pattern(b.span(), bytes);
        const std::size_t n = b.size();
        zcio::Release r = co_await zcio::async_send(engine, sock, std::move(b));
        if (r.error) throw std::runtime_error("send failed");
        EXPECT_EQ(r.bytes, n);
        EXPECT_TRUE(r.buffer) << "the buffer comes back to the coroutine";
        bytes += r.bytes;
        copied += r.usage == zcio::Usage::copied;
    }
}

TEST(Task, CoroutineSendsResumeWithTheirReleases) {
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = 32 << 10, .slab_count = 4});
    zcio::SendEngine engine(ring);
    auto pair = zcio::test::tcp_loopback_pair();
    zcio::test::StreamChecker checker(std::move(pair.receiver));
    const auto sock = engine.add_socket(pair.sender.get(), {.strategy = zcio::Strategy::zc_fixed});
    std::uint64_t bytes = 0;
    int copied = 0;
    zcio::Task t = stream(engine, sock, arena, 100, bytes, copied);
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (!t.done() && std::chrono::steady_clock::now() < deadline) engine.run(true, 100ms);
    ASSERT_TRUE(t.done());
    t.check();
    ::shutdown(pair.sender.get(), SHUT_WR);
    checker.join();
    EXPECT_EQ(bytes, 100u * (32 << 10));
    EXPECT_EQ(checker.bytes(), bytes);
    EXPECT_EQ(checker.first_mismatch(), UINT64_MAX);
    EXPECT_EQ(copied, 100) << "loopback: each release says copied";
    EXPECT_EQ(arena.available(), arena.slab_count());
}

}  // namespace
