// SinkNamespace against the real kernel: real namespaces, veths, qdiscs and sockets. Every check
// asks the kernel (or iproute2, independently of the code under test) what really happened.
#include "zcio/sink_namespace.hpp"

#include <arpa/inet.h>
#include <liburing.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "run_program.hpp"
#include "uring_compat.hpp"
#include "zcio/error.hpp"

namespace {

using zcio::SinkNamespace;
using zcio::SinkOptions;
using zcio::UniqueFd;
using zcio::test::run_program;

#define SKIP_UNLESS_SINK_AVAILABLE()                                              \
    do {                                                                          \
        if (auto why = SinkNamespace::unavailable_reason()) GTEST_SKIP() << *why; \
    } while (0)

// The names `ip netns list` shows, one per line ("name (id: 3)" -> "name").
std::vector<std::string> listed_namespaces() {
    auto r = run_program({"ip", "netns", "list"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::string> names;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) names.push_back(line.substr(0, line.find(' ')));
    return names;
}

bool is_listed(const std::string& name) {
    for (const auto& n : listed_namespaces())
        if (n == name) return true;
    return false;
}

ino_t netns_inode(const char* path) {
    struct stat st {};
    EXPECT_EQ(::stat(path, &st), 0) << path << ": " << std::strerror(errno);
    return st.st_ino;
}

ssize_t send_to(int fd, const void* buf, std::size_t len, const sockaddr_in& to) {
    return ::sendto(fd, buf, len, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
}

void set_receive_timeout(int fd, int seconds) {
    timeval tv{.tv_sec = seconds, .tv_usec = 0};
    ASSERT_EQ(::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
}

ifreq interface_request(const std::string& name) {
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
    return ifr;
}

// ---- options: checked before anything is created, so these run without root too -------------

TEST(SinkNamespace, AbsurdOptionsThrowSetupErrorNamingTheOption) {
    for (unsigned mtu : {0u, 67u, 65536u, 1u << 30}) {
        try {
            SinkNamespace sink({.mtu = mtu});
            ADD_FAILURE() << "mtu " << mtu << " was accepted";
        } catch (const zcio::SetupError& e) {
            EXPECT_NE(std::string(e.what()).find("mtu " + std::to_string(mtu)), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find("68..65535"), std::string::npos) << e.what();
        }
    }
    for (const char* prefix : {"", "Bad", "a-b", "elevenchars", "x/../y"}) {
        try {
            SinkNamespace sink({.name_prefix = prefix});
            ADD_FAILURE() << "prefix \"" << prefix << "\" was accepted";
        } catch (const zcio::SetupError& e) {
            EXPECT_NE(std::string(e.what()).find("name_prefix"), std::string::npos) << e.what();
        }
    }
}

TEST(SinkNamespace, UnavailableReasonIsNulloptExactlyWhenItCanBeBuilt) {
    if (auto why = SinkNamespace::unavailable_reason()) {
        EXPECT_FALSE(why->empty());
        EXPECT_THROW(SinkNamespace{}, zcio::SetupError);  // and the constructor says so too
    } else {
        EXPECT_NO_THROW(SinkNamespace{});
    }
}

// ---- lifetime --------------------------------------------------------------------------------

TEST(SinkNamespace, CreatesBothNamespacesAndDestructionRemovesThemWithTheVeth) {
    SKIP_UNLESS_SINK_AVAILABLE();
    std::optional<SinkNamespace> sink(std::in_place);
    const std::string tx_ns = sink->netns_name(SinkNamespace::tx);
    const std::string rx_ns = sink->netns_name(SinkNamespace::rx);
    const std::string tx_if = sink->interface_name(SinkNamespace::tx);
    EXPECT_TRUE(is_listed(tx_ns)) << tx_ns;
    EXPECT_TRUE(is_listed(rx_ns)) << rx_ns;
    EXPECT_NE(tx_ns.find("-p" + std::to_string(::getpid()) + "-"), std::string::npos) << tx_ns;
    EXPECT_LE(tx_if.size(), 15u);

    // The veth ends exist inside their namespaces, with the reported ifindex, and not in ours.
    for (auto side : {SinkNamespace::tx, SinkNamespace::rx}) {
        const std::string& dev = sink->interface_name(side);
        unsigned index = sink->in_namespace(side, [&] { return ::if_nametoindex(dev.c_str()); });
        EXPECT_NE(index, 0u) << dev;
        EXPECT_EQ(static_cast<int>(index), sink->ifindex(side));
        EXPECT_EQ(::if_nametoindex(dev.c_str()), 0u) << dev << " leaked into the root namespace";
    }

    // Keep the tx namespace alive through an fd to watch its veth end vanish: deleting the rx
    // namespace destroys the rx end, and a veth pair dies as a whole.
    UniqueFd tx_handle(::open(sink->netns_path(SinkNamespace::tx).c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(tx_handle);
    sink.reset();
    EXPECT_FALSE(is_listed(tx_ns));
    EXPECT_FALSE(is_listed(rx_ns));
    EXPECT_NE(::access(("/run/netns/" + tx_ns).c_str(), F_OK), 0);

    UniqueFd root(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    ASSERT_EQ(::setns(tx_handle.get(), CLONE_NEWNET), 0) << std::strerror(errno);
    bool veth_gone = false;
    // Namespace teardown runs in a kernel worker, so the veth goes shortly after, not at once.
    for (int i = 0; i < 500 && !veth_gone; ++i) {
        veth_gone = ::if_nametoindex(tx_if.c_str()) == 0;
        if (!veth_gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_EQ(::setns(root.get(), CLONE_NEWNET), 0) << std::strerror(errno);
    EXPECT_TRUE(veth_gone) << tx_if << " still exists in the deleted tx namespace";
}

TEST(SinkNamespace, InNamespaceRunsOnThisThreadAndAlwaysComesBack) {
    SKIP_UNLESS_SINK_AVAILABLE();
    SinkNamespace sink;
    const ino_t home = netns_inode("/proc/thread-self/ns/net");
    const ino_t tx = netns_inode(sink.netns_path(SinkNamespace::tx).c_str());
    const ino_t rx = netns_inode(sink.netns_path(SinkNamespace::rx).c_str());
    EXPECT_NE(tx, home);
    EXPECT_NE(tx, rx);
    EXPECT_EQ(sink.in_namespace(SinkNamespace::tx, [] { return netns_inode("/proc/thread-self/ns/net"); }), tx);
    EXPECT_EQ(sink.in_namespace(SinkNamespace::rx, [] { return netns_inode("/proc/thread-self/ns/net"); }), rx);
    EXPECT_EQ(netns_inode("/proc/thread-self/ns/net"), home);
    EXPECT_THROW(sink.in_namespace(SinkNamespace::tx, []() -> int { throw std::runtime_error("boom"); }),
                 std::runtime_error);
    EXPECT_EQ(netns_inode("/proc/thread-self/ns/net"), home) << "an exception left the thread in tx";
}

// ---- the link as configured ------------------------------------------------------------------

TEST(SinkNamespace, LinkHasTheMtuAPermanentNeighbourAndNoDefaultRoute) {
    SKIP_UNLESS_SINK_AVAILABLE();
    SinkNamespace sink({.mtu = 9000});
    const std::string tx_ns = sink.netns_name(SinkNamespace::tx);
    const std::string tx_if = sink.interface_name(SinkNamespace::tx);

    for (auto side : {SinkNamespace::tx, SinkNamespace::rx}) {
        UniqueFd s = sink.socket(side, SOCK_DGRAM);
        ifreq ifr = interface_request(sink.interface_name(side));
        ASSERT_EQ(::ioctl(s.get(), SIOCGIFMTU, &ifr), 0) << std::strerror(errno);
        EXPECT_EQ(ifr.ifr_mtu, 9000);
        ASSERT_EQ(::ioctl(s.get(), SIOCGIFFLAGS, &ifr), 0);
        EXPECT_TRUE(ifr.ifr_flags & IFF_UP);
    }

    // The neighbour entry carries the rx end's real MAC, as the rx namespace reports it.
    UniqueFd rx_sock = sink.socket(SinkNamespace::rx, SOCK_DGRAM);
    ifreq ifr = interface_request(sink.interface_name(SinkNamespace::rx));
    ASSERT_EQ(::ioctl(rx_sock.get(), SIOCGIFHWADDR, &ifr), 0);
    char mac[18];
    const auto* b = reinterpret_cast<const unsigned char*>(ifr.ifr_hwaddr.sa_data);
    std::snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
    EXPECT_EQ(sink.mac_string(SinkNamespace::rx), mac);
    auto neigh = run_program({"ip", "-n", tx_ns, "neigh", "show", "dev", tx_if});
    ASSERT_EQ(neigh.exit_code, 0) << neigh.err;
    EXPECT_NE(neigh.out.find(sink.address_string(SinkNamespace::rx) + " lladdr " + mac + " PERMANENT"),
              std::string::npos)
        << neigh.out;

    auto routes = run_program({"ip", "-n", tx_ns, "route", "show", "table", "all"});
    ASSERT_EQ(routes.exit_code, 0) << routes.err;
    EXPECT_EQ(routes.out.find("default"), std::string::npos) << routes.out;
    auto qdisc = run_program({"tc", "-n", tx_ns, "qdisc", "show", "dev", tx_if});
    EXPECT_NE(qdisc.out.find("pfifo"), std::string::npos) << qdisc.out;
    EXPECT_NE(qdisc.out.find("limit 0p"), std::string::npos) << qdisc.out;

    EXPECT_EQ(sink.address_string(SinkNamespace::tx).rfind("198.1", 0), 0u);
    const in_addr_t tx_addr = ntohl(sink.address(SinkNamespace::tx).sin_addr.s_addr);
    EXPECT_EQ(tx_addr & 0xfffe0000u, 0xc6120000u) << "outside 198.18.0.0/15";
}

// ---- traffic ---------------------------------------------------------------------------------

TEST(SinkNamespace, EverySendReachesTheDeviceAndIsDroppedAtTheQdisc) {
    SKIP_UNLESS_SINK_AVAILABLE();
    SinkNamespace sink;
    UniqueFd s = sink.socket(SinkNamespace::tx, SOCK_DGRAM);
    const sockaddr_in to = sink.address(SinkNamespace::rx, 9);
    // IPv6 is off and the neighbour is fixed, so the link is silent: nothing else is counted.
    const std::uint64_t before = sink.qdisc_drops();
    EXPECT_EQ(before, 0u);
    constexpr int kSends = 100;
    std::vector<char> payload(1000, 'z');
    for (int i = 0; i < kSends; ++i)
        ASSERT_EQ(send_to(s.get(), payload.data(), payload.size(), to), 1000) << i << ": " << std::strerror(errno);
    EXPECT_EQ(sink.qdisc_drops() - before, static_cast<std::uint64_t>(kSends));
}

TEST(SinkNamespace, AQdiscDropIsEnobufsOnlyForSocketsThatAskWithIpRecverr) {
    SKIP_UNLESS_SINK_AVAILABLE();
    SinkNamespace sink;
    UniqueFd s = sink.socket(SinkNamespace::tx, SOCK_DGRAM);
    const sockaddr_in to = sink.address(SinkNamespace::rx, 9);
    char byte = 'x';
    EXPECT_EQ(send_to(s.get(), &byte, 1, to), 1);  // UDP hides the drop by default
    int on = 1;
    ASSERT_EQ(::setsockopt(s.get(), IPPROTO_IP, IP_RECVERR, &on, sizeof on), 0);
    EXPECT_EQ(send_to(s.get(), &byte, 1, to), -1);
    EXPECT_EQ(errno, ENOBUFS);
    EXPECT_EQ(sink.qdisc_drops(), 2u);
}

TEST(SinkNamespace, BigMtuCarriesA60KDatagramAsOnePacket) {
    SKIP_UNLESS_SINK_AVAILABLE();
    SinkNamespace sink({.mtu = 65535});
    UniqueFd s = sink.socket(SinkNamespace::tx, SOCK_DGRAM);
    std::vector<char> payload(60000, 'z');
    const sockaddr_in to = sink.address(SinkNamespace::rx, 9);
    for (int i = 0; i < 10; ++i) ASSERT_EQ(send_to(s.get(), payload.data(), payload.size(), to), 60000);
    EXPECT_EQ(sink.qdisc_drops(), 10u);  // one packet each: no IP fragments
}

TEST(SinkNamespace, WithoutDropADatagramIsDeliveredToTheRxNamespace) {
    SKIP_UNLESS_SINK_AVAILABLE();
    SinkNamespace sink({.drop = false});
    UniqueFd rx = sink.bound_socket(SinkNamespace::rx, SOCK_DGRAM, 0);
    set_receive_timeout(rx.get(), 5);
    sockaddr_in rx_addr{};
    socklen_t len = sizeof rx_addr;
    ASSERT_EQ(::getsockname(rx.get(), reinterpret_cast<sockaddr*>(&rx_addr), &len), 0);
    EXPECT_EQ(rx_addr.sin_addr.s_addr, sink.address(SinkNamespace::rx).sin_addr.s_addr);

    UniqueFd tx = sink.bound_socket(SinkNamespace::tx, SOCK_DGRAM, 0);
    const char msg[] = "across the veth";
    ASSERT_EQ(send_to(tx.get(), msg, sizeof msg, rx_addr), static_cast<ssize_t>(sizeof msg)) << std::strerror(errno);

    char got[64] = {};
    sockaddr_in from{};
    len = sizeof from;
    ssize_t n = ::recvfrom(rx.get(), got, sizeof got, 0, reinterpret_cast<sockaddr*>(&from), &len);
    ASSERT_EQ(n, static_cast<ssize_t>(sizeof msg)) << std::strerror(errno);
    EXPECT_STREQ(got, msg);
    EXPECT_EQ(from.sin_addr.s_addr, sink.address(SinkNamespace::tx).sin_addr.s_addr);
    EXPECT_EQ(sink.qdisc_drops(), 0u);
}

TEST(SinkNamespace, TxIsIsolatedFromTheRootNamespace) {
    SKIP_UNLESS_SINK_AVAILABLE();
    SinkNamespace sink;
    // A TCP listener on the root namespace's loopback: reachable from here (the control)...
    UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in lo{};
    lo.sin_family = AF_INET;
    lo.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&lo), sizeof lo), 0);
    ASSERT_EQ(::listen(listener.get(), 4), 0);
    socklen_t len = sizeof lo;
    ASSERT_EQ(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&lo), &len), 0);
    UniqueFd control(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_EQ(::connect(control.get(), reinterpret_cast<sockaddr*>(&lo), sizeof lo), 0) << std::strerror(errno);

    // ...but 127.0.0.1 seen from tx is tx's own loopback, where nobody listens.
    UniqueFd inside = sink.socket(SinkNamespace::tx, SOCK_STREAM);
    EXPECT_EQ(::connect(inside.get(), reinterpret_cast<sockaddr*>(&lo), sizeof lo), -1);
    EXPECT_EQ(errno, ECONNREFUSED);

    // And no route leads out: an address outside the sink's /24 (TEST-NET-3) is unreachable.
    UniqueFd udp = sink.socket(SinkNamespace::tx, SOCK_DGRAM);
    sockaddr_in outside{};
    outside.sin_family = AF_INET;
    outside.sin_port = htons(9);
    ASSERT_EQ(::inet_pton(AF_INET, "203.0.113.1", &outside.sin_addr), 1);
    EXPECT_EQ(::connect(udp.get(), reinterpret_cast<sockaddr*>(&outside), sizeof outside), -1);
    EXPECT_EQ(errno, ENETUNREACH);
}

TEST(SinkNamespace, TwoInstancesAreDistinctAndCountOnlyTheirOwnTraffic) {
    SKIP_UNLESS_SINK_AVAILABLE();
    SinkNamespace a;
    SinkNamespace b({.name_prefix = "second"});
    EXPECT_NE(a.slot(), b.slot());
    EXPECT_NE(a.netns_name(SinkNamespace::tx), b.netns_name(SinkNamespace::tx));
    EXPECT_NE(a.address_string(SinkNamespace::rx), b.address_string(SinkNamespace::rx));
    EXPECT_NE(a.interface_name(SinkNamespace::tx), b.interface_name(SinkNamespace::tx));
    EXPECT_EQ(b.netns_name(SinkNamespace::tx).rfind("zcio-second-", 0), 0u);

    UniqueFd sa = a.socket(SinkNamespace::tx, SOCK_DGRAM);
    UniqueFd sb = b.socket(SinkNamespace::tx, SOCK_DGRAM);
    char byte = 'x';
    for (int i = 0; i < 5; ++i) ASSERT_EQ(send_to(sa.get(), &byte, 1, a.address(SinkNamespace::rx, 9)), 1);
    for (int i = 0; i < 7; ++i) ASSERT_EQ(send_to(sb.get(), &byte, 1, b.address(SinkNamespace::rx, 9)), 1);
    EXPECT_EQ(a.qdisc_drops(), 5u);
    EXPECT_EQ(b.qdisc_drops(), 7u);
    // Each tx namespace knows only its own /24: a's socket cannot reach b's rx.
    EXPECT_EQ(send_to(sa.get(), &byte, 1, b.address(SinkNamespace::rx, 9)), -1);
    EXPECT_EQ(errno, ENETUNREACH);
}

TEST(SinkNamespace, SocketsKeepTheirNamespaceOnAnyThread) {
    SKIP_UNLESS_SINK_AVAILABLE();
    SinkNamespace sink;
    UniqueFd s = sink.socket(SinkNamespace::tx, SOCK_DGRAM);
    const sockaddr_in to = sink.address(SinkNamespace::rx, 9);
    std::thread([&] {
        char byte = 'x';
        for (int i = 0; i < 3; ++i) EXPECT_EQ(send_to(s.get(), &byte, 1, to), 1) << std::strerror(errno);
    }).join();
    EXPECT_EQ(sink.qdisc_drops(), 3u);
}

// ---- crash hygiene ---------------------------------------------------------------------------

TEST(SinkNamespace, RemoveStaleDeletesOnlyZcioNamespacesOfDeadOwners) {
    SKIP_UNLESS_SINK_AVAILABLE();
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) ::_exit(0);
    ASSERT_EQ(::waitpid(child, nullptr, 0), child);  // reaped: this pid now names nobody
    const std::string dead = std::to_string(child);
    const std::string live = std::to_string(::getpid());

    const std::string stale = "zcio-test-7-p" + dead + "-tx";
    const std::vector<std::string> keep = {
        "zcio-test-7-p" + live + "-rx",   // ours, owner alive
        "zciox-test-7-p" + dead + "-tx",  // not zcio's naming
        "zcio-test-7-p" + dead + "-txx",  // not zcio's naming
        "zcio-test-7-p" + dead,           // not zcio's naming
    };
    for (const auto& name : keep) ASSERT_EQ(run_program({"ip", "netns", "add", name}).exit_code, 0) << name;
    // Made (exit 0). Not re-listed here: another test process's remove_stale() may take it at once.
    ASSERT_EQ(run_program({"ip", "netns", "add", stale}).exit_code, 0);

    // Parallel test processes may collect the stale one first, so check the result, not the count.
    EXPECT_GE(SinkNamespace::remove_stale(), 0);
    EXPECT_FALSE(is_listed(stale));
    for (const auto& name : keep) {
        EXPECT_TRUE(is_listed(name)) << name << " was deleted";
        run_program({"ip", "netns", "del", name});
    }
}

// ---- the point of it all: zero-copy stays zero-copy in the sink ------------------------------

// One SEND_ZC with REPORT_USAGE; returns whether its notification says the kernel copied.
std::optional<bool> send_zc_copied(int fd, const std::vector<char>& payload) {
    io_uring ring;
    if (io_uring_queue_init(8, &ring, 0) != 0) return std::nullopt;
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    io_uring_prep_send_zc(sqe, fd, payload.data(), payload.size(), 0, 0);
    sqe->ioprio |= IORING_SEND_ZC_REPORT_USAGE;
    io_uring_submit(&ring);
    std::optional<bool> copied;
    bool more = true;
    while (more) {
        io_uring_cqe* cqe = nullptr;
        if (io_uring_wait_cqe(&ring, &cqe) != 0) break;
        if (cqe->flags & IORING_CQE_F_NOTIF) {
            copied = (static_cast<unsigned>(cqe->res) & IORING_NOTIF_USAGE_ZC_COPIED) != 0;
            more = false;
        } else {
            EXPECT_EQ(cqe->res, static_cast<int>(payload.size()));
            more = cqe->flags & IORING_CQE_F_MORE;
        }
        io_uring_cqe_seen(&ring, cqe);
    }
    io_uring_queue_exit(&ring);
    return copied;
}

TEST(SinkNamespace, SendZcIntoTheSinkIsZeroCopyButFragmentingOrDeliveringCopies) {
    SKIP_UNLESS_SINK_AVAILABLE();
    const std::vector<char> payload(60000, 'z');
    {
        SinkNamespace sink({.mtu = 65535});
        UniqueFd s = sink.socket(SinkNamespace::tx, SOCK_DGRAM);
        sockaddr_in to = sink.address(SinkNamespace::rx, 9);
        ASSERT_EQ(::connect(s.get(), reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
        auto copied = send_zc_copied(s.get(), payload);
        if (!copied) GTEST_SKIP() << "io_uring SEND_ZC with REPORT_USAGE unavailable";
        EXPECT_FALSE(*copied) << "the sink copied a zero-copy send";
        EXPECT_EQ(sink.qdisc_drops(), 1u);
    }
    {
        // Bigger than the MTU: IP fragmentation copies the payload, so the sink's MTU matters.
        SinkNamespace sink({.mtu = 1500});
        UniqueFd s = sink.socket(SinkNamespace::tx, SOCK_DGRAM);
        sockaddr_in to = sink.address(SinkNamespace::rx, 9);
        ASSERT_EQ(::connect(s.get(), reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
        auto copied = send_zc_copied(s.get(), payload);
        ASSERT_TRUE(copied.has_value());
        EXPECT_TRUE(*copied) << "a fragmented zero-copy send is expected to copy";
    }
    {
        SinkNamespace link({.drop = false, .mtu = 65535});
        UniqueFd rx = link.bound_socket(SinkNamespace::rx, SOCK_DGRAM, 0);
        sockaddr_in to{};
        socklen_t len = sizeof to;
        ASSERT_EQ(::getsockname(rx.get(), reinterpret_cast<sockaddr*>(&to), &len), 0);
        UniqueFd s = link.socket(SinkNamespace::tx, SOCK_DGRAM);
        ASSERT_EQ(::connect(s.get(), reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
        auto copied = send_zc_copied(s.get(), payload);
        ASSERT_TRUE(copied.has_value());
        EXPECT_TRUE(*copied) << "delivery to a socket across veth is expected to copy";
        std::vector<char> got(65536);
        set_receive_timeout(rx.get(), 5);
        EXPECT_EQ(::recv(rx.get(), got.data(), got.size(), 0), 60000);
    }
}

}  // namespace
