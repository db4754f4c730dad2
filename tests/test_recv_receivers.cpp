// Every receiver over real loopback sockets: bytes arrive complete and in order, endings are
// reported, buffers all come back, and the counters say what happened.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <thread>
#include <vector>

#include "recv_test_support.hpp"
#include "zcio/error.hpp"
#include "zcio/receiver.hpp"

namespace {

using namespace std::chrono_literals;
using zcio::RecvStrategy;
namespace t = zcio::test;

struct Config {
    const char* name;
    zcio::ReceiverOptions options;
};

void PrintTo(const Config& c, std::ostream* os) { *os << c.name; }

std::vector<Config> configs() {
    return {
        {"plain", {.strategy = RecvStrategy::plain, .buffer_count = 64, .buffer_size = 128 << 10}},
        {"multishot", {.strategy = RecvStrategy::multishot, .buffer_count = 64, .buffer_size = 16 << 10}},
        {"multishot_incremental",
         {.strategy = RecvStrategy::multishot, .buffer_count = 8, .buffer_size = 256 << 10, .incremental = true}},
        {"bundle", {.strategy = RecvStrategy::bundle, .buffer_count = 64, .buffer_size = 16 << 10}},
        {"zcrx_on_lo_falls_back", {.strategy = RecvStrategy::zcrx, .interface = "lo"}},
        {"automatic", {.strategy = RecvStrategy::automatic}},
    };
}

// Per-connection stream check: every byte against the pattern, in order.
struct Streams {
    struct State {
        std::uint64_t seed = 0;
        std::uint64_t received = 0;
        bool ended = false;
        int end_result = 1;
        std::string failure;
    };
    std::map<zcio::ConnectionId, State> by_conn;
    std::size_t ended = 0;

    void on_event(zcio::RecvEvent&& ev) {
        State& st = by_conn.at(ev.conn);
        if (st.ended && st.failure.empty()) st.failure = "event after the connection ended";
        if (ev.result > 0) {
            if (static_cast<std::uint32_t>(ev.result) != ev.data.size() && st.failure.empty())
                st.failure = "result " + std::to_string(ev.result) + " != view size " + std::to_string(ev.data.size());
            const std::size_t bad = t::check_pattern(st.seed, st.received, ev.data.bytes());
            if (bad != ev.data.size() && st.failure.empty())
                st.failure = "byte " + std::to_string(st.received + bad) + " differs";
            st.received += ev.data.size();
        } else {
            st.ended = true;
            st.end_result = ev.result;
            ++ended;
        }
    }
};

// Polls until `done()` or the deadline; use as ASSERT_TRUE(pump(...)).
template <typename Done>
::testing::AssertionResult pump(zcio::Receiver& rx, Done done, std::chrono::seconds limit = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
        const int r = rx.poll(50ms);
        if (r < 0) return ::testing::AssertionFailure() << "poll: " << zcio::errno_string(r);
    }
    if (done()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "timed out; " << rx.describe() << "; buffers held " << rx.buffers_held();
}

class EachReceiver : public ::testing::TestWithParam<Config> {};

TEST_P(EachReceiver, TcpStreamArrivesCompleteAndInOrderThenEof) {
    auto rx = zcio::make_receiver(GetParam().options);
    t::TcpListener listener;
    auto [client, server] = listener.connect_pair();
    Streams streams;
    rx->on_event([&](zcio::RecvEvent&& ev) { streams.on_event(std::move(ev)); });
    const int id = rx->add(server.get());
    ASSERT_GE(id, 0) << zcio::errno_string(id);
    streams.by_conn[static_cast<zcio::ConnectionId>(id)].seed = 42;

    constexpr std::uint64_t total = 24 << 20;
    t::SenderThread sender([fd = client.get()] { ::shutdown(fd, SHUT_RDWR); },
                           [fd = client.get()] {
                               std::vector<std::byte> chunk(200000);
                               std::uint64_t off = 0;
                               std::size_t step = 1;
                               while (off < total) {
                                   // Odd sizes so buffer boundaries never line up with writes.
                                   const std::size_t n =
                                       std::min<std::uint64_t>(total - off, 1 + (step * 7919) % chunk.size());
                                   t::fill_pattern(42, off, {chunk.data(), n});
                                   if (!t::send_all(fd, {chunk.data(), n})) return;
                                   off += n;
                                   ++step;
                               }
                               ::shutdown(fd, SHUT_WR);
                           });
    ASSERT_TRUE(pump(*rx, [&] { return streams.ended == 1; }));
    sender.join();

    const auto& st = streams.by_conn.begin()->second;
    EXPECT_EQ(st.failure, "");
    EXPECT_EQ(st.received, total);
    EXPECT_EQ(st.end_result, 0) << "EOF expected";
    const zcio::RecvCounters c = rx->counters();
    EXPECT_EQ(c.bytes, total);
    EXPECT_EQ(c.eofs, 1U);
    EXPECT_EQ(c.errors, 0U);
    EXPECT_GT(c.syscalls(), 0U);
    EXPECT_EQ(rx->buffers_held(), 0U) << "views were dropped: every buffer must be back";
    EXPECT_GE(c.buffers_recycled, c.buffers > 0 ? 1U : 0U);
    EXPECT_EQ(rx->connections(), 0U);
    std::printf("[ %s ] %s: %llu syscalls, %llu buffers, %llu re-arms\n", GetParam().name, rx->describe().c_str(),
                static_cast<unsigned long long>(c.syscalls()), static_cast<unsigned long long>(c.buffers),
                static_cast<unsigned long long>(c.rearms));
}

TEST_P(EachReceiver, UdpDatagramsArriveWhole) {
    auto rx = zcio::make_receiver(GetParam().options);
    auto [tx, rxsock] = t::udp_pair();
    std::vector<std::uint32_t> sizes;
    std::vector<std::byte> got;
    int id = rx->add(rxsock.get());
    ASSERT_GE(id, 0);
    rx->on_event([&](zcio::RecvEvent&& ev) {
        ASSERT_GT(ev.result, 0);
        sizes.push_back(ev.data.size());
        got.insert(got.end(), ev.data.bytes().begin(), ev.data.bytes().end());
    });
    constexpr int count = 200;
    std::vector<std::byte> dgram(1200);
    std::uint64_t off = 0;
    for (int i = 0; i < count; ++i) {
        t::fill_pattern(7, off, dgram);
        ASSERT_EQ(::send(tx.get(), dgram.data(), dgram.size(), 0), 1200);
        off += dgram.size();
    }
    ASSERT_TRUE(pump(*rx, [&] { return sizes.size() >= count; }));
    // Loopback neither drops (8 MiB rcvbuf) nor reorders; each datagram is its own buffer.
    EXPECT_EQ(sizes, std::vector<std::uint32_t>(count, 1200));
    EXPECT_EQ(t::check_pattern(7, 0, got), got.size());
    EXPECT_EQ(rx->remove(static_cast<zcio::ConnectionId>(id)), 0);
    ASSERT_TRUE(pump(*rx, [&] { return rx->connections() == 0; }));
}

TEST_P(EachReceiver, PeerResetIsReportedAndEveryBufferComesBack) {
    auto rx = zcio::make_receiver(GetParam().options);
    t::TcpListener listener;
    auto [client, server] = listener.connect_pair();
    Streams streams;
    std::vector<zcio::RecvBuffer> held;  // keep a few views across the reset
    rx->on_event([&](zcio::RecvEvent&& ev) {
        if (ev.result > 0 && held.size() < 2) {
            const std::size_t bad = t::check_pattern(9, streams.by_conn.begin()->second.received, ev.data.bytes());
            EXPECT_EQ(bad, ev.data.size());
            streams.by_conn.begin()->second.received += ev.data.size();
            held.push_back(std::move(ev.data));
            return;
        }
        streams.on_event(std::move(ev));
    });
    const int id = rx->add(server.get());
    ASSERT_GE(id, 0);
    streams.by_conn[static_cast<zcio::ConnectionId>(id)].seed = 9;
    std::vector<std::byte> data(256 << 10);
    t::fill_pattern(9, 0, data);
    ASSERT_TRUE(t::send_all(client.get(), data));
    ASSERT_TRUE(pump(*rx, [&] { return streams.by_conn.begin()->second.received > 0; }));
    // Abortive close: SO_LINGER 0 sends RST.
    linger lg{1, 0};
    ASSERT_EQ(::setsockopt(client.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    client.reset();
    ASSERT_TRUE(pump(*rx, [&] { return streams.ended == 1; }));
    const auto& st = streams.by_conn.begin()->second;
    EXPECT_EQ(st.failure, "");
    // Data still queued when the RST lands may be reported first or dropped; the end is an error.
    EXPECT_LE(st.received, data.size());
    EXPECT_LT(st.end_result, 0) << "a reset must end in an error, not EOF";
    EXPECT_EQ(st.end_result, -ECONNRESET) << zcio::errno_string(st.end_result);
    EXPECT_EQ(rx->counters().errors, 1U);
    EXPECT_GT(rx->buffers_held(), 0U);
    held.clear();
    EXPECT_EQ(rx->buffers_held(), 0U) << "dropping the views must return their buffers";
}

INSTANTIATE_TEST_SUITE_P(Recv, EachReceiver, ::testing::ValuesIn(configs()),
                         [](const auto& p) { return std::string(p.param.name); });

// ---- buffer-ring behaviour ---------------------------------------------------------------------

class RingReceiver : public ::testing::TestWithParam<RecvStrategy> {};

TEST_P(RingReceiver, TinyRingUnderAFastSenderLosesNothingAndReArms) {
    auto rx = zcio::make_receiver({.strategy = GetParam(), .buffer_count = 4, .buffer_size = 4096});
    ASSERT_EQ(rx->strategy(), GetParam()) << rx->describe();
    t::TcpListener listener;
    auto [client, server] = listener.connect_pair();
    Streams streams;
    rx->on_event([&](zcio::RecvEvent&& ev) { streams.on_event(std::move(ev)); });
    const int id = rx->add(server.get());
    ASSERT_GE(id, 0);
    streams.by_conn[static_cast<zcio::ConnectionId>(id)].seed = 3;
    constexpr std::size_t total = 8 << 20;
    t::SenderThread sender([fd = client.get()] { ::shutdown(fd, SHUT_RDWR); },
                           [fd = client.get()] {
                               std::vector<std::byte> data(total);
                               t::fill_pattern(3, 0, data);
                               t::send_all(fd, data);
                               ::shutdown(fd, SHUT_WR);
                           });
    ASSERT_TRUE(pump(*rx, [&] { return streams.ended == 1; }));
    sender.join();
    const auto& st = streams.by_conn.begin()->second;
    EXPECT_EQ(st.failure, "");
    EXPECT_EQ(st.received, total);
    EXPECT_EQ(st.end_result, 0);
    const auto c = rx->counters();
    // The ring runs dry: a multishot recv ends with ENOBUFS; a bundle recv may instead end with the
    // data it got and no F_MORE. Either way the receive was re-armed and nothing was lost.
    EXPECT_GT(c.rearms, 0U);
    if (GetParam() == RecvStrategy::multishot) {
        EXPECT_GT(c.exhaustions, 0U) << "4 buffers against 8 MiB in flight should run dry";
    }
    EXPECT_EQ(rx->buffers_held(), 0U);
    std::printf("exhaustions %llu, re-arms %llu, buffers %llu\n", static_cast<unsigned long long>(c.exhaustions),
                static_cast<unsigned long long>(c.rearms), static_cast<unsigned long long>(c.buffers));
}

TEST_P(RingReceiver, ViewsHeldByTheCallerStallTheRingWithoutLosingData) {
    // Pull style, the caller keeps every view for a while: the ring runs dry, receives stop, and
    // resume once the views are dropped.
    auto rx = zcio::make_receiver({.strategy = GetParam(), .buffer_count = 8, .buffer_size = 4096});
    t::TcpListener listener;
    auto [client, server] = listener.connect_pair();
    ASSERT_GE(rx->add(server.get()), 0);
    std::vector<std::byte> data(1 << 20);
    t::fill_pattern(5, 0, data);
    t::SenderThread sender([fd = client.get()] { ::shutdown(fd, SHUT_RDWR); },
                           [&, fd = client.get()] {
                               t::send_all(fd, data);
                               ::shutdown(fd, SHUT_WR);
                           });
    std::vector<zcio::RecvEvent> events;
    std::vector<std::byte> got;
    bool eof = false;
    std::uint64_t max_held = 0;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!eof && std::chrono::steady_clock::now() < deadline) {
        for (int i = 0; i < 3; ++i) ASSERT_GE(rx->poll(5ms, events), 0);
        max_held = std::max(max_held, rx->buffers_held());
        for (auto& ev : events) {
            if (ev.result <= 0) {
                eof = ev.result == 0;
                ASSERT_EQ(ev.result, 0);
            }
            got.insert(got.end(), ev.data.bytes().begin(), ev.data.bytes().end());
        }
        events.clear();  // drop the views: the buffers go back
    }
    sender.join();
    ASSERT_TRUE(eof);
    EXPECT_EQ(got.size(), data.size());
    EXPECT_EQ(t::check_pattern(5, 0, got), got.size());
    EXPECT_EQ(max_held, 8U) << "the caller held the whole ring at some point";
    EXPECT_GT(rx->counters().rearms, 0U);
}

TEST_P(RingReceiver, TwoHundredFiftySixConnectionsShareOneRingOnOneThread) {
    constexpr int conns = 256;
    auto rx = zcio::make_receiver(
        {.strategy = GetParam(), .max_connections = conns, .buffer_count = 512, .buffer_size = 4096});
    t::TcpListener listener;
    std::vector<zcio::UniqueFd> clients, servers;
    Streams streams;
    rx->on_event([&](zcio::RecvEvent&& ev) { streams.on_event(std::move(ev)); });
    for (int i = 0; i < conns; ++i) {
        auto [c, s] = listener.connect_pair(true);
        const int id = rx->add(s.get());
        ASSERT_GE(id, 0) << i;
        streams.by_conn[static_cast<zcio::ConnectionId>(id)].seed = static_cast<std::uint64_t>(i) + 100;
        clients.push_back(std::move(c));
        servers.push_back(std::move(s));
    }
    ASSERT_EQ(rx->connections(), static_cast<std::size_t>(conns));
    constexpr std::size_t per_conn = 64 << 10;
    t::SenderThread sender(
        [&] {
            for (auto& c : clients) ::shutdown(c.get(), SHUT_RDWR);
        },
        [&] {
            // Round-robin messages of 512 B .. 4 KiB across every connection.
            std::vector<std::uint64_t> off(conns, 0);
            std::vector<std::byte> msg(4096);
            for (std::size_t round = 0;; ++round) {
                bool any = false;
                for (int i = 0; i < conns; ++i) {
                    if (off[i] >= per_conn) continue;
                    any = true;
                    const std::size_t n = std::min<std::size_t>(per_conn - off[i], 512 + (round * 37 + i) % 3585);
                    t::fill_pattern(static_cast<std::uint64_t>(i) + 100, off[i], {msg.data(), n});
                    t::send_all(clients[i].get(), {msg.data(), n});
                    off[i] += n;
                }
                if (!any) break;
            }
            for (auto& c : clients) ::shutdown(c.get(), SHUT_WR);
        });
    ASSERT_TRUE(pump(*rx, [&] { return streams.ended == conns; }));
    sender.join();
    for (const auto& [id, st] : streams.by_conn) {
        EXPECT_EQ(st.failure, "") << id;
        EXPECT_EQ(st.received, per_conn) << id;
        EXPECT_EQ(st.end_result, 0) << id;
    }
    const auto c = rx->counters();
    EXPECT_EQ(c.bytes, per_conn * conns);
    EXPECT_EQ(c.eofs, static_cast<std::uint64_t>(conns));
    EXPECT_EQ(rx->buffers_held(), 0U);
    EXPECT_EQ(rx->connections(), 0U);
}

TEST_P(RingReceiver, RemovedConnectionGetsNoMoreEvents) {
    auto rx = zcio::make_receiver({.strategy = GetParam()});
    t::TcpListener listener;
    auto [c1, s1] = listener.connect_pair();
    auto [c2, s2] = listener.connect_pair();
    std::map<zcio::ConnectionId, std::uint64_t> bytes;
    rx->on_event([&](zcio::RecvEvent&& ev) { bytes[ev.conn] += ev.data.size(); });
    const auto a = static_cast<zcio::ConnectionId>(rx->add(s1.get()));
    const auto b = static_cast<zcio::ConnectionId>(rx->add(s2.get()));
    ASSERT_EQ(rx->remove(a), 0);
    std::vector<std::byte> data(10000);
    ASSERT_TRUE(t::send_all(c1.get(), data));
    ASSERT_TRUE(t::send_all(c2.get(), data));
    ASSERT_TRUE(pump(*rx, [&] { return bytes[b] == data.size() && rx->connections() == 1; }));
    EXPECT_EQ(bytes.count(a), 0U) << "removed connection still delivered data";
    EXPECT_EQ(rx->remove(a), -ENOENT);
}

TEST_P(RingReceiver, OneConnectionIsNotHeldForTheBatchWait) {
    // A waiting poll asks for up to wait_batch completions, but never more than the connections it
    // receives on: the kernel wakes a waiter per readable socket, so with one connection a batch
    // of 8 could only end at batch_wait, while the data (and a sender facing a full window) waits.
    auto rx = zcio::make_receiver({.strategy = GetParam(), .wait_batch = 8, .batch_wait = 400ms});
    t::TcpListener listener;
    auto [client, server] = listener.connect_pair();
    std::uint64_t got = 0;
    rx->on_event([&](zcio::RecvEvent&& ev) { got += ev.data.size(); });
    ASSERT_GE(rx->add(server.get()), 0);
    ASSERT_EQ(rx->poll(0ms), 0);  // the receive is armed before anything is sent
    std::vector<std::byte> data(512);
    t::SenderThread sender([] {},
                           [&, fd = client.get()] {
                               std::this_thread::sleep_for(20ms);  // the receiver is asleep in its wait by then
                               t::send_all(fd, data);
                           });
    const auto t0 = std::chrono::steady_clock::now();
    while (got < data.size() && std::chrono::steady_clock::now() - t0 < 5s) ASSERT_GE(rx->poll(2s), 0);
    const auto waited = std::chrono::steady_clock::now() - t0;
    sender.join();
    EXPECT_EQ(got, data.size());
    EXPECT_LT(waited, 200ms) << "the wait ran towards batch_wait (400 ms) for completions one connection cannot make";
}

INSTANTIATE_TEST_SUITE_P(Recv, RingReceiver, ::testing::Values(RecvStrategy::multishot, RecvStrategy::bundle),
                         [](const auto& p) { return std::string(zcio::to_string(p.param)); });

TEST(RecvFallback, ZcrxOnLoopbackFallsBackAndSaysWhy) {
    auto rx = zcio::make_receiver({.strategy = RecvStrategy::zcrx, .interface = "lo"});
    EXPECT_EQ(rx->requested(), RecvStrategy::zcrx);
    EXPECT_EQ(rx->strategy(), RecvStrategy::multishot);
    EXPECT_EQ(rx->counters().fallbacks, 1U);
    const std::string& why = rx->fallback_reason();
    EXPECT_NE(why.find("zcrx unavailable on lo: "), std::string::npos) << why;
    EXPECT_NE(why.find("using multishot buffer ring"), std::string::npos) << why;
    if (::geteuid() != 0) GTEST_SKIP() << "not root: registration is refused with EPERM first: " << why;
    EXPECT_NE(why.find("EOPNOTSUPP"), std::string::npos) << why;
}

TEST(RecvFallback, RequireZcrxTurnsTheFallbackIntoAnError) {
    try {
        auto rx = zcio::make_receiver({.strategy = RecvStrategy::zcrx, .interface = "lo", .require_zcrx = true});
        FAIL() << "zcrx on lo cannot succeed, yet: " << rx->describe();
    } catch (const zcio::SetupError& e) {
        EXPECT_NE(std::string(e.what()).find("tcp-data-split"), std::string::npos) << e.what();
    }
}

// auto: bundles for many connections (where the kernel has them), multishot for a few bulk streams
// (measured: one 128 KiB TCP stream receives faster with one buffer per completion).
TEST(RecvFallback, AutomaticPicksBundlesForManyConnectionsAndMultishotForAFew) {
    auto many = zcio::make_receiver({.max_connections = 64});
    EXPECT_TRUE(many->strategy() == RecvStrategy::bundle || many->strategy() == RecvStrategy::multishot)
        << many->describe();
    if (many->strategy() == RecvStrategy::multishot) {
        EXPECT_FALSE(many->fallback_reason().empty());
    }
    auto few = zcio::make_receiver({.max_connections = 2});
    EXPECT_EQ(few->strategy(), RecvStrategy::multishot) << few->describe();
    EXPECT_TRUE(few->fallback_reason().empty()) << "a choice, not a fallback";
}

}  // namespace
