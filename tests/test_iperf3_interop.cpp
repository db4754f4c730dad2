// zcperf against Debian's stock iperf3 (3.12), both ways, as users run them: real processes on
// loopback, -J on both ends, each end's own byte count checked against the other's. Skips with a
// reason when iperf3 is not installed (scripts/install-deps.sh installs it; CI has it).
// Also: zcperf against peers that are not iperf3 at all gives a clear error within 5 s.
#include <gtest/gtest.h>

#include "sanitizer.hpp"
#include "zcperf_process.hpp"

#include <nlohmann/json.hpp>

#include <poll.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#ifndef ZCPERF_BIN
#error "ZCPERF_BIN must name the zcperf binary (tools/zcperf/CMakeLists.txt defines it)"
#endif

namespace {

using zcio::test::under_tsan;

using nlohmann::json;
using namespace std::chrono_literals;
using zcio::test::Process;

json parse(const std::string& text) {
    json j = json::parse(text, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "not JSON:\n" << text.substr(0, 2000);
    return j;
}

std::uint64_t bytes_at(const json& end, const std::string& key) {
    if (!end.contains(key) || !end[key].contains("bytes")) return 0;
    return end[key]["bytes"].get<std::uint64_t>();
}

struct Case {
    std::string name;
    std::vector<std::string> args;  // the client's test options (both implementations accept them)
    std::uint64_t block;            // bytes per send: the agreement tolerance
};

// Which program serves and which one is the client.
enum class Pair { zcperf_client_iperf3_server, iperf3_client_zcperf_server };

class Iperf3Interop : public ::testing::TestWithParam<std::tuple<Pair, Case>> {};

TEST_P(Iperf3Interop, BothEndsAgreeAndExitZero) {
    if (!zcio::test::have_program("iperf3"))
        GTEST_SKIP() << "iperf3 is not installed (scripts/install-deps.sh installs it)";
    const Pair pair = std::get<0>(GetParam());  // not a structured binding: clang 14 cannot capture one
    const Case& c = std::get<1>(GetParam());
    const bool zcperf_client = pair == Pair::zcperf_client_iperf3_server;
    const std::uint16_t port = zcio::test::free_port();
    const std::string port_text = std::to_string(port);
    std::vector<std::string> server_argv =
        zcperf_client ? std::vector<std::string>{"iperf3", "-s", "-1", "-J", "-p", port_text}
                      : std::vector<std::string>{ZCPERF_BIN, "-s", "-1", "-J", "-p", port_text};
    Process server(server_argv);
    ASSERT_TRUE(zcio::test::wait_listening(port)) << server.err();
    std::vector<std::string> client_argv{
        zcperf_client ? ZCPERF_BIN : "iperf3", "-c", "127.0.0.1", "-p", port_text, "-J"};
    client_argv.insert(client_argv.end(), c.args.begin(), c.args.end());
    Process client(client_argv);
    const int client_rc = client.wait(30s);
    const int server_rc = server.wait(15s);
    ASSERT_EQ(client_rc, 0) << client.err() << client.out().substr(0, 3000);
    ASSERT_EQ(server_rc, 0) << server.err() << server.out().substr(0, 3000);
    const json cj = parse(client.out()), sj = parse(server.out());
    ASSERT_FALSE(cj.contains("error")) << cj["error"];
    ASSERT_FALSE(sj.contains("error")) << sj["error"];
    const json &ce = cj["end"], &se = sj["end"];

    // Each end's own count: the sender's against the receiver's, per direction.
    const bool reverse = std::find(c.args.begin(), c.args.end(), "-R") != c.args.end();
    const bool bidir = std::find(c.args.begin(), c.args.end(), "--bidir") != c.args.end();
    const bool udp = std::find(c.args.begin(), c.args.end(), "-u") != c.args.end();
    // Both ways at once, a stock iperf3 end, busy sending, may not have read everything when its
    // own timer stops its count (a loaded host: up to ~10 % seen in the parallel suite; alone,
    // 0.5 % at most). There: never more than was sent, and at least 85 % of it.
    // Under ThreadSanitizer zcperf runs 5-15x slower than the stock end it races: its last
    // seconds of sending land after iperf3's timer (seen: 20 % short), so the bound is wider there.
    const auto tolerance = [&](std::uint64_t sent) {
        return bidir ? std::max<std::uint64_t>(c.block, sent * (under_tsan ? 40 : 15) / 100) : c.block;
    };
    int directions = 0;
    if (!reverse) {
        const auto sent = bytes_at(ce, "sum_sent"), got = bytes_at(se, "sum_received");
        EXPECT_GT(sent, 0u);
        EXPECT_LE(sent - std::min(sent, got) + (got > sent ? got - sent : 0), tolerance(sent))
            << "client -> server: " << sent << " vs " << got;
        ++directions;
    }
    if (reverse || bidir) {
        const std::string suffix = bidir ? "_bidir_reverse" : "";
        const auto sent = bytes_at(se, "sum_sent" + suffix), got = bytes_at(ce, "sum_received" + suffix);
        EXPECT_GT(sent, 0u);
        EXPECT_LE(sent - std::min(sent, got) + (got > sent ? got - sent : 0), tolerance(sent))
            << "server -> client: " << sent << " vs " << got;
        ++directions;
    }
    EXPECT_GE(directions, 1);
    if (udp) {
        for (const json* e : {&ce, &se}) {
            if (e->contains("sum")) {
                EXPECT_EQ((*e)["sum"]["lost_packets"], 0) << e->dump().substr(0, 1500);
            }
        }
    }
    // zcperf says which of its figures are its own only.
    const json& z = zcperf_client ? ce : se;
    ASSERT_TRUE(z.contains("sum_zcio"));
    EXPECT_EQ(z["sum_zcio"]["peer"], "iperf3");
    EXPECT_EQ(z["sum_zcio"]["local_only"], true);
}

const Case cases[] = {
    {"tcp_P4", {"-t", "1", "-P", "4"}, 128 * 1024},
    {"tcp_reverse", {"-t", "1", "-R"}, 128 * 1024},
    {"tcp_bidir", {"-t", "1", "--bidir"}, 128 * 1024},
    {"tcp_bytes", {"-n", "20M", "-l", "64K"}, 64 * 1024},
    {"udp", {"-t", "1", "-u", "-b", "5M", "-l", "1400"}, 1400},
    {"udp_reverse", {"-t", "1", "-u", "-b", "5M", "-l", "1400", "-R"}, 1400},
    {"udp_bidir_P2", {"-t", "1", "-u", "-b", "3M", "-l", "1400", "--bidir", "-P", "2"}, 2 * 1400},
};

INSTANTIATE_TEST_SUITE_P(BothWays, Iperf3Interop,
                         ::testing::Combine(::testing::Values(Pair::zcperf_client_iperf3_server,
                                                              Pair::iperf3_client_zcperf_server),
                                            ::testing::ValuesIn(cases)),
                         [](const auto& info) {
                             return std::string(std::get<0>(info.param) == Pair::zcperf_client_iperf3_server
                                                    ? "zcperf_to_iperf3_"
                                                    : "iperf3_to_zcperf_") +
                                    std::get<1>(info.param).name;
                         });

TEST(Iperf3Interop, UdpAgainstIperf3DefaultsToItsOneMegabitAndSaysSo) {
    if (!zcio::test::have_program("iperf3")) GTEST_SKIP() << "iperf3 is not installed";
    const std::uint16_t port = zcio::test::free_port();
    Process server({"iperf3", "-s", "-1", "-p", std::to_string(port)});
    ASSERT_TRUE(zcio::test::wait_listening(port));
    Process client(
        {ZCPERF_BIN, "-c", "127.0.0.1", "-p", std::to_string(port), "-u", "-t", "1", "-J", "--get-server-output"});
    ASSERT_EQ(client.wait(30s), 0) << client.err();
    EXPECT_EQ(server.wait(15s), 0);
    const json j = parse(client.out());
    const double bps = j["end"]["sum_sent"]["bits_per_second"].get<double>();
    EXPECT_GT(bps, 0.5e6);
    EXPECT_LT(bps, 2e6) << "iperf3's UDP default is 1 Mbit/s";
    ASSERT_TRUE(j.contains("notes"));
    EXPECT_NE(j["notes"].dump().find("1 Mbit/s"), std::string::npos) << j["notes"];
    ASSERT_TRUE(j.contains("server_output_text")) << "--get-server-output";
    EXPECT_NE(j["server_output_text"].get<std::string>().find("Accepted connection"), std::string::npos);
}

TEST(Iperf3Interop, StockClientsUnsupportedRequestIsRefusedTheIperf3Way) {
    if (!zcio::test::have_program("iperf3")) GTEST_SKIP() << "iperf3 is not installed";
    const std::uint16_t port = zcio::test::free_port();
    Process server({ZCPERF_BIN, "-s", "-p", std::to_string(port)});
    ASSERT_TRUE(zcio::test::wait_listening(port));
    Process sctp({"iperf3", "-c", "127.0.0.1", "-p", std::to_string(port), "--sctp", "-t", "1"});
    EXPECT_EQ(sctp.wait(15s), 1);
    EXPECT_NE((sctp.out() + sctp.err()).find("SCTP"), std::string::npos) << sctp.out() << sctp.err();
    // The server carries on: the next test runs.
    Process tcp({"iperf3", "-c", "127.0.0.1", "-p", std::to_string(port), "-t", "1"});
    EXPECT_EQ(tcp.wait(20s), 0) << tcp.out() << tcp.err();
    EXPECT_TRUE(server.running());
    server.signal(SIGINT);
    EXPECT_GE(server.wait(10s), 0);
}

// ---------------------------------------------------------------------------------------------
// Peers that are not iperf3: a clear error within 5 s, never a hang.

// A TCP listener on loopback that answers each connection with `reply` (or stays silent).
class FakePeer {
public:
    explicit FakePeer(std::string reply) : reply_(std::move(reply)) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
        ::listen(fd_, 8);
        socklen_t len = sizeof a;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        thread_ = std::thread([this] {
            std::vector<int> held;
            while (!stop_) {
                pollfd p{fd_, POLLIN, 0};
                if (::poll(&p, 1, 50) <= 0) continue;
                int c = ::accept(fd_, nullptr, nullptr);
                if (c < 0) continue;
                if (!reply_.empty()) (void)::send(c, reply_.data(), reply_.size(), MSG_NOSIGNAL);
                held.push_back(c);  // open and silent afterwards, as a web server waiting for a request
            }
            for (int c : held) ::close(c);
        });
    }
    ~FakePeer() {
        stop_ = true;
        thread_.join();
        ::close(fd_);
    }
    std::uint16_t port() const { return port_; }

private:
    std::string reply_;
    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

void expect_quick_clear_error(std::uint16_t port, const std::string& words) {
    const auto t0 = std::chrono::steady_clock::now();
    Process client({ZCPERF_BIN, "-c", "127.0.0.1", "-p", std::to_string(port), "-t", "1"});
    const int rc = client.wait(20s);
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(rc, 1) << client.err();
    EXPECT_LT(took, 6.0) << "a clear error within 5 s (plus process start)";
    EXPECT_NE(client.err().find(words), std::string::npos) << client.err();
}

TEST(NotIperf3, AWebServerIsNamedForWhatItSaid) {
    FakePeer web("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    expect_quick_clear_error(web.port(),
                             "is not an iperf3 or zcperf server: it answered \"HTTP/1.1 400 Bad Request\\x0d\\x0a");
}

TEST(NotIperf3, ASilentPeerTimesOutWithinFiveSeconds) {
    FakePeer silent("");
    expect_quick_clear_error(silent.port(), "no answer within 5 s");
}

TEST(NotIperf3, AClosedPortIsRefusedAtOnce) { expect_quick_clear_error(zcio::test::free_port(), "unable to connect"); }

}  // namespace
