// One unconnected UDP socket sending to many destinations, each send with its own address and GSO
// size (QUIC servers, media relays), for every strategy, over IPv4 and IPv6: each receiver gets
// exactly its datagrams; GSO per send cuts exactly as asked; a bad destination fails its own send
// and nothing else; the caller's sockaddr may change the moment send() returns.
#include "zcio/buffer_arena.hpp"
#include "zcio/send_engine.hpp"
#include "zcio/sink_namespace.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstring>
#include <vector>

#include "net_fixtures.hpp"

namespace {

using namespace std::chrono_literals;

struct Peer {
    zcio::UniqueFd fd;
    sockaddr_storage addr{};
    socklen_t len = 0;
    const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&addr); }
};

// A UDP socket bound to the loopback address of `family`, on a port the kernel picks.
Peer loopback_peer(int family) {
    Peer p;
    p.fd.reset(::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (family == AF_INET) {
        auto& a = reinterpret_cast<sockaddr_in&>(p.addr);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        p.len = sizeof(sockaddr_in);
    } else {
        auto& a = reinterpret_cast<sockaddr_in6&>(p.addr);
        a.sin6_family = AF_INET6;
        a.sin6_addr = in6addr_loopback;
        p.len = sizeof(sockaddr_in6);
    }
    int big = 4 << 20;
    ::setsockopt(p.fd.get(), SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    EXPECT_EQ(::bind(p.fd.get(), p.sa(), p.len), 0) << std::strerror(errno);
    EXPECT_EQ(::getsockname(p.fd.get(), reinterpret_cast<sockaddr*>(&p.addr), &p.len), 0);
    return p;
}

// The datagrams on `fd`, as their sizes and first two bytes (destination, sequence): waits up to
// a second for `expected` of them (a release can come before loopback has queued the last one:
// the kernel lets go of zero-copy pages when it copies them, on the way to the socket), then a
// little longer for any extra that should not be there.
struct Got {
    std::vector<std::size_t> sizes;
    std::vector<std::pair<int, int>> tags;
};
Got receive_all(int fd, std::size_t expected) {
    Got g;
    std::vector<std::uint8_t> buf(65536);
    const auto deadline = std::chrono::steady_clock::now() + 1s;
    for (;;) {
        const ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
        if (n >= 0) {
            g.sizes.push_back(static_cast<std::size_t>(n));
            if (n >= 2) g.tags.emplace_back(buf[0], buf[1]);
            continue;
        }
        const bool short_of = g.sizes.size() < expected && std::chrono::steady_clock::now() < deadline;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, short_of ? 100 : 20) <= 0 && !short_of) break;
    }
    return g;
}

struct Sent {
    int releases = 0;
    int errors = 0;
    std::vector<int> error_codes;
};

class Destinations : public ::testing::TestWithParam<std::tuple<zcio::Strategy, int>> {
protected:
    zcio::Strategy strategy() const { return std::get<0>(GetParam()); }
    int family() const { return std::get<1>(GetParam()); }

    void SetUp() override {
        sender_.reset(::socket(family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
        ASSERT_TRUE(sender_);
        sock_ = engine_.add_socket(sender_.get(), {.strategy = strategy()});
    }

    // Sends `len` bytes tagged (dest, seq) to `to`, with `gso` per send; then scribbles over the
    // caller's copy of the address, which must not matter.
    void send_to(sockaddr_storage to, socklen_t to_len, int dest, int seq, std::size_t len, std::uint16_t gso = 0) {
        zcio::Buffer b = arena_.take();
        ASSERT_TRUE(b);
        b.resize(len);
        for (std::size_t i = 0; i < len; ++i) b.data()[i] = std::byte(static_cast<std::uint8_t>(i * 7 + 3));
        if (gso) {  // every segment carries the tag, so each received datagram can be checked
            for (std::size_t off = 0; off < len; off += gso) {
                b.data()[off] = std::byte(static_cast<std::uint8_t>(dest));
                b.data()[off + 1] = std::byte(static_cast<std::uint8_t>(seq));
            }
        } else {
            b.data()[0] = std::byte(static_cast<std::uint8_t>(dest));
            b.data()[1] = std::byte(static_cast<std::uint8_t>(seq));
        }
        auto* sent = &sent_;
        engine_.send(sock_, std::move(b), zcio::Storage{[sent](zcio::Release&& r) {
                         ++sent->releases;
                         if (r.error) {
                             ++sent->errors;
                             sent->error_codes.push_back(r.error);
                         }
                     }},
                     {.to = reinterpret_cast<const sockaddr*>(&to), .to_len = to_len, .gso_size = gso});
        std::memset(&to, 0xA5, sizeof to);  // the caller's storage goes bad at once
    }

    zcio::Ring ring_;
    // Small pages: a loopback receiver charges a zero-copy skb by the pages it points into, and a
    // huge page would fill its receive buffer after a few datagrams (drops, not a send error).
    zcio::BufferArena arena_{ring_, {.slab_size = 64 << 10, .slab_count = 128, .huge_pages = false}};
    zcio::SendEngine engine_{ring_};
    zcio::UniqueFd sender_;
    zcio::SocketId sock_ = 0;
    Sent sent_;
};

TEST_P(Destinations, EachReceiverGetsExactlyItsDatagrams) {
    constexpr int peers = 4, rounds = 12;
    std::vector<Peer> rx;
    for (int i = 0; i < peers; ++i) rx.push_back(loopback_peer(family()));
    for (int seq = 0; seq < rounds; ++seq)
        for (int d = 0; d < peers; ++d) send_to(rx[d].addr, rx[d].len, d, seq, 1200 + 1000 * d);
    ASSERT_EQ(engine_.drain(5s), 0);
    EXPECT_EQ(sent_.releases, peers * rounds);
    EXPECT_EQ(sent_.errors, 0);
    for (int d = 0; d < peers; ++d) {
        const Got g = receive_all(rx[d].fd.get(), rounds);
        std::string seen;
        for (const auto& t : g.tags) seen += std::to_string(t.first) + ":" + std::to_string(t.second) + " ";
        EXPECT_EQ(g.tags.size(), std::size_t{rounds}) << "receiver " << d << " got " << seen;
        if (g.tags.size() != std::size_t{rounds}) continue;
        for (int seq = 0; seq < rounds; ++seq) {
            EXPECT_EQ(g.tags[seq], std::make_pair(d, seq)) << "receiver " << d << " datagram " << seq;
            EXPECT_EQ(g.sizes[seq], std::size_t(1200 + 1000 * d));
        }
    }
    const auto c = engine_.counters();
    EXPECT_EQ(c.sends, std::uint64_t{peers * rounds});
    EXPECT_EQ(c.bytes, std::uint64_t{rounds * (4 * 1200 + 1000 * 6)});
}

TEST_P(Destinations, GsoPerSendCutsAsAsked) {
    std::vector<Peer> rx;
    for (int i = 0; i < 3; ++i) rx.push_back(loopback_peer(family()));
    send_to(rx[0].addr, rx[0].len, 0, 1, 3 * 1000, 1000);
    send_to(rx[1].addr, rx[1].len, 1, 2, 4 * 500 + 200, 500);  // the last segment may be shorter
    send_to(rx[2].addr, rx[2].len, 2, 3, 700);
    ASSERT_EQ(engine_.drain(5s), 0);
    EXPECT_EQ(sent_.errors, 0) << (sent_.error_codes.empty() ? 0 : sent_.error_codes[0]);
    const Got a = receive_all(rx[0].fd.get(), 3), b = receive_all(rx[1].fd.get(), 5),
              c = receive_all(rx[2].fd.get(), 1);
    EXPECT_EQ(a.sizes, (std::vector<std::size_t>{1000, 1000, 1000}));
    EXPECT_EQ(b.sizes, (std::vector<std::size_t>{500, 500, 500, 500, 200}));
    EXPECT_EQ(c.sizes, (std::vector<std::size_t>{700}));
    for (const auto& t : a.tags) EXPECT_EQ(t, std::make_pair(0, 1));
    for (const auto& t : b.tags) EXPECT_EQ(t, std::make_pair(1, 2));
}

TEST_P(Destinations, ABadDestinationFailsOnlyItsOwnSend) {
    Peer good = loopback_peer(family());
    // A family UDP cannot send to (an IPv6 socket sends to IPv4 addresses too: dual stack), a
    // port of 0, and a length too short to be an address.
    sockaddr_storage wrong = good.addr;
    wrong.ss_family = AF_UNIX;
    const socklen_t wrong_len = good.len;
    sockaddr_storage port0 = good.addr;
    reinterpret_cast<sockaddr_in&>(port0).sin_port = 0;  // sin_port and sin6_port sit alike
    send_to(good.addr, good.len, 0, 0, 1500);
    send_to(wrong, wrong_len, 1, 1, 1500);
    send_to(port0, good.len, 2, 2, 1500);
    send_to(good.addr, 1, 3, 3, 1500);
    send_to(good.addr, good.len, 4, 4, 1500);
    ASSERT_EQ(engine_.drain(5s), 0);
    EXPECT_EQ(sent_.releases, 5);
    EXPECT_EQ(sent_.errors, 3);
    for (int e : sent_.error_codes) EXPECT_LT(e, 0);
    const Got g = receive_all(good.fd.get(), 2);
    EXPECT_EQ(g.tags, (std::vector<std::pair<int, int>>{{0, 0}, {4, 4}})) << "the good sends went, in order";
    EXPECT_EQ(engine_.ops_in_use(), 0u);
}

INSTANTIATE_TEST_SUITE_P(AllStrategiesBothFamilies, Destinations,
                         ::testing::Combine(::testing::ValuesIn(zcio::all_strategies),
                                            ::testing::Values(AF_INET, AF_INET6)),
                         [](const auto& info) {
                             std::string n = zcio::to_string(std::get<0>(info.param));
                             for (char& ch : n)
                                 if (ch == '-') ch = '_';
                             return n + (std::get<1>(info.param) == AF_INET ? "_v4" : "_v6");
                         });

// A socket with its own GSO size: a send with that size needs no control message (SEND/SEND_ZC
// with the address), one with another size does; both cut as asked.
TEST(DestinationsSocketGso, TheSocketsOwnSizeAndAnotherBothCut) {
    for (zcio::Strategy s : {zcio::Strategy::copy, zcio::Strategy::zc_fixed, zcio::Strategy::plain}) {
        zcio::Ring ring;
        zcio::BufferArena arena(ring, {.slab_size = 16 << 10, .slab_count = 8, .huge_pages = false});
        zcio::SendEngine engine(ring);
        zcio::UniqueFd tx(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        const auto sock = engine.add_socket(tx.get(), {.strategy = s, .udp_gso_size = 500});
        Peer rx = loopback_peer(AF_INET);
        int errors = 0;
        for (std::uint16_t gso : {std::uint16_t{500}, std::uint16_t{300}}) {
            zcio::Buffer b = arena.take();
            b.resize(1500);
            engine.send(sock, std::move(b), zcio::Storage{[&](zcio::Release&& r) { errors += r.error != 0; }},
                        {.to = rx.sa(), .to_len = rx.len, .gso_size = gso});
        }
        ASSERT_EQ(engine.drain(5s), 0);
        EXPECT_EQ(errors, 0) << zcio::to_string(s);
        EXPECT_EQ(receive_all(rx.fd.get(), 8).sizes, (std::vector<std::size_t>{500, 500, 500, 300, 300, 300, 300, 300}))
            << zcio::to_string(s);
    }
}

TEST(DestinationsRefused, AStreamSocketTakesNoDestinationOrGso) {
    zcio::Ring ring;
    zcio::SendEngine engine(ring);
    auto pair = zcio::test::tcp_loopback_pair();
    const auto sock = engine.add_socket(pair.sender.get(), {.strategy = zcio::Strategy::copy});
    sockaddr_in to{};
    to.sin_family = AF_INET;
    std::vector<std::byte> data(100);
    std::vector<int> errors;
    auto handler = zcio::Storage{[&](zcio::Release&& r) { errors.push_back(r.error); }};
    engine.send(sock, zcio::Buffer::borrow(data), std::move(handler),
                {.to = reinterpret_cast<sockaddr*>(&to), .to_len = sizeof to});
    engine.send(sock, zcio::Buffer::borrow(data), zcio::Storage{[&](zcio::Release&& r) { errors.push_back(r.error); }},
                {.gso_size = 50});
    ASSERT_EQ(engine.drain(5s), 0);
    EXPECT_EQ(errors, (std::vector<int>{-EINVAL, -EINVAL}));
}

// A destination with no route fails with ENETUNREACH, alone. Only inside the sink's namespace,
// which has no default route: nothing can leave the machine.
TEST(DestinationsUnreachable, NoRouteFailsOnlyThatSend) {
    if (auto why = zcio::SinkNamespace::unavailable_reason()) GTEST_SKIP() << *why;
    zcio::SinkNamespace sink;
    for (zcio::Strategy s : zcio::all_strategies) {
        zcio::Ring ring;
        zcio::BufferArena arena(ring, {.slab_size = 4096, .slab_count = 8});
        zcio::SendEngine engine(ring);
        zcio::UniqueFd fd = sink.socket(zcio::SinkNamespace::tx, SOCK_DGRAM);
        const auto sock = engine.add_socket(fd.get(), {.strategy = s});
        sockaddr_in nowhere{};
        nowhere.sin_family = AF_INET;
        nowhere.sin_port = htons(9);
        ::inet_pton(AF_INET, "203.0.113.7", &nowhere.sin_addr);  // TEST-NET-3, and no route to it here
        sockaddr_in sinkhole = sink.address(zcio::SinkNamespace::rx, 9);
        std::vector<int> errors;
        for (const sockaddr_in* to : {&nowhere, &sinkhole}) {
            engine.send(sock, arena.take(), zcio::Storage{[&](zcio::Release&& r) { errors.push_back(r.error); }},
                        {.to = reinterpret_cast<const sockaddr*>(to), .to_len = sizeof *to});
        }
        ASSERT_EQ(engine.drain(5s), 0);
        EXPECT_EQ(errors, (std::vector<int>{-ENETUNREACH, 0})) << zcio::to_string(s);
        engine.remove_socket(sock);
    }
}

}  // namespace
