// The hot path allocates nothing: once a SendEngine, its ring and an arena exist, sends and their
// completions (every completion model, TCP and UDP) make no heap allocation at all. This binary
// replaces the global operator new to count, so any std::function, vector growth or node
// allocation that creeps onto the path fails the test.
#include "net_fixtures.hpp"
#include "zcio/buffer_arena.hpp"
#include "zcio/ring.hpp"
#include "zcio/send_engine.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <new>
#include <thread>
#include <vector>

namespace {
std::atomic<bool> g_counting{false};
std::atomic<std::uint64_t> g_allocations{0};

void* counted_alloc(std::size_t n) {
    if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
}  // namespace

// Every replaceable form that the library or the standard library could reach.
void* operator new(std::size_t n) { return counted_alloc(n); }
void* operator new[](std::size_t n) { return counted_alloc(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    try {
        return counted_alloc(n);
    } catch (...) {
        return nullptr;
    }
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace {

using zcio::test::SocketPair;

// Counts allocations made on this thread's hot path (the drain thread of a TCP test allocates on
// its own: only the sending thread's work is counted, by switching the counter around it).
struct Counting {
    Counting() {
        g_allocations = 0;
        g_counting = true;
    }
    ~Counting() { g_counting = false; }
    std::uint64_t count() const { return g_allocations.load(); }
};

void run_every_model(zcio::SendEngine& engine, zcio::SocketId sock, zcio::BufferArena& arena, int rounds,
                     std::uint64_t& released) {
    zcio::NotifGroup group([&](const zcio::GroupResult& r) { released += r.sends; });
    for (int i = 0; i < rounds; ++i) {
        auto take = [&] {
            zcio::Buffer b = arena.take();
            while (!b) {
                engine.run(true, std::chrono::milliseconds(100));
                b = arena.take();
            }
            b.resize(1000 + static_cast<std::size_t>(i % 7) * 100);
            return b;
        };
        engine.send(sock, take(), zcio::Storage{[&](zcio::Release&&) { ++released; }});
        engine.send(sock, take(), zcio::TwoStep{[](const zcio::SendResult&) {}, [&](zcio::Release&&) { ++released; }});
        engine.send(sock, take(), group);
        if (i % 16 == 15) engine.flush(group);
    }
    engine.flush(group);
    ASSERT_EQ(engine.drain(std::chrono::seconds(20)), 0);
}

// The control: the counter does see allocations (else the tests below could not fail).
TEST(HotPathAllocation, CounterSeesAnAllocation) {
    Counting c;
    auto v = std::make_unique<std::vector<int>>(100);
    EXPECT_GE(c.count(), 2u);
    EXPECT_EQ(v->size(), 100u);
}

TEST(HotPathAllocation, UdpSendsOfEveryStrategyAndModelAllocateNothing) {
    SocketPair pair = zcio::test::udp_loopback_pair();
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = 4096, .slab_count = 64});
    zcio::SendEngine engine(ring);
    for (zcio::Strategy s : {zcio::Strategy::copy, zcio::Strategy::zc, zcio::Strategy::zc_fixed,
                             zcio::Strategy::sendmsg_zc, zcio::Strategy::automatic}) {
        SCOPED_TRACE(zcio::to_string(s));
        const zcio::SocketId sock = engine.add_socket(pair.sender.get(), {.strategy = s});
        std::uint64_t released = 0;
        run_every_model(engine, sock, arena, 8, released);  // warm-up: first-use set-up is allowed
        {
            Counting c;
            run_every_model(engine, sock, arena, 200, released);
            EXPECT_EQ(c.count(), 0u) << "heap allocations on the send/complete path";
        }
        EXPECT_EQ(released, 3u * 208);  // every send came back: the loop really ran
        engine.remove_socket(sock);
    }
}

TEST(HotPathAllocation, TcpStreamSendsAllocateNothing) {
    SocketPair pair = zcio::test::tcp_loopback_pair();
    std::atomic<bool> stop{false};
    std::thread reader([&] {  // keeps the stream flowing; its own allocations are not counted
        char buf[65536];
        while (!stop.load() && ::recv(pair.receiver.get(), buf, sizeof buf, 0) > 0) {}
    });
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = 4096, .slab_count = 64});
    zcio::SendEngine engine(ring);
    const zcio::SocketId sock = engine.add_socket(pair.sender.get(), {.strategy = zcio::Strategy::zc_fixed});
    std::uint64_t released = 0;
    run_every_model(engine, sock, arena, 8, released);
    {
        Counting c;
        run_every_model(engine, sock, arena, 200, released);
        EXPECT_EQ(c.count(), 0u) << "heap allocations on the send/complete path";
    }
    EXPECT_EQ(released, 3u * 208);
    engine.remove_socket(sock);
    stop = true;
    ::shutdown(pair.sender.get(), SHUT_RDWR);
    reader.join();
}

}  // namespace
