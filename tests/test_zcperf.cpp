// zcperf, tested as a user runs it: real processes, real sockets, real namespaces, JSON parsed.
// Also the control-protocol parser directly (it takes bytes from the network: it must be total).
#include <gtest/gtest.h>

#include "control.hpp"
#include "payload.hpp"
#include "payload_buffers.hpp"
#include "options.hpp"

#include <zcio/error.hpp>
#include <zcio/ring.hpp>

#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#ifndef ZCPERF_BIN
#error "ZCPERF_BIN must name the zcperf binary (tools/zcperf/CMakeLists.txt defines it)"
#endif

extern char** environ;

namespace {

using nlohmann::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string slurp(const fs::path& p) {
    std::ifstream f(p);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// A zcperf process with its stdout and stderr in files.
class Process {
public:
    explicit Process(std::vector<std::string> args) {
        static int counter = 0;
        dir_ = fs::temp_directory_path() / ("zcperf-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        fs::create_directories(dir_);
        std::vector<std::string> argv{ZCPERF_BIN};
        argv.insert(argv.end(), args.begin(), args.end());
        std::vector<char*> cargv;
        for (auto& a : argv) cargv.push_back(a.data());
        cargv.push_back(nullptr);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 1, (dir_ / "out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        posix_spawn_file_actions_addopen(&fa, 2, (dir_ / "err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        posix_spawn_file_actions_addchdir_np(&fa, dir_.c_str());
        int rc = posix_spawn(&pid_, ZCPERF_BIN, &fa, nullptr, cargv.data(), environ);
        posix_spawn_file_actions_destroy(&fa);
        if (rc != 0) pid_ = -1;
    }
    ~Process() {
        if (pid_ > 0 && !exited_) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    // Exit code, or -1 if it had to be killed after `timeout` (a hang is a failure).
    int wait(std::chrono::milliseconds timeout = 30s) {
        if (pid_ <= 0) return -2;
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            int status = 0;
            pid_t r = ::waitpid(pid_, &status, WNOHANG);
            if (r == pid_) {
                exited_ = true;
                return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            }
            if (std::chrono::steady_clock::now() > deadline) {
                ::kill(pid_, SIGKILL);
                ::waitpid(pid_, nullptr, 0);
                exited_ = true;
                return -1;
            }
            std::this_thread::sleep_for(10ms);
        }
    }
    void signal(int sig) { ::kill(pid_, sig); }
    std::string out() const { return slurp(dir_ / "out"); }
    std::string err() const { return slurp(dir_ / "err"); }
    const fs::path& dir() const { return dir_; }

private:
    fs::path dir_;
    pid_t pid_ = -1;
    bool exited_ = false;
};

struct Ran {
    int rc;
    std::string out, err;
};
Ran run(std::vector<std::string> args, std::chrono::milliseconds timeout = 30s) {
    Process p(std::move(args));
    int rc = p.wait(timeout);
    return {rc, p.out(), p.err()};
}

std::uint16_t free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

// Whether something listens on TCP `port` (looked up in /proc, so the server sees no connection).
bool listening(std::uint16_t port) {
    char hex[8];
    std::snprintf(hex, sizeof hex, ":%04X", port);
    for (const char* file : {"/proc/net/tcp", "/proc/net/tcp6"}) {
        std::ifstream f(file);
        std::string line;
        while (std::getline(f, line)) {
            std::istringstream ls(line);
            std::string sl, local, remote, state;
            ls >> sl >> local >> remote >> state;
            if (state == "0A" && local.size() > 5 && local.compare(local.size() - 5, 5, hex) == 0) return true;
        }
    }
    return false;
}

// `zcperf -s -1 -p PORT -J` in the background, up and listening.
std::unique_ptr<Process> start_server(std::uint16_t port, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"-s", "-1", "-p", std::to_string(port), "-J"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto p = std::make_unique<Process>(args);
    for (int i = 0; i < 300 && !listening(port); ++i) std::this_thread::sleep_for(10ms);
    return p;
}

json parse_json(const std::string& text) {
    json j = json::parse(text, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "not JSON:\n" << text.substr(0, 2000);
    return j;
}

void expect_iperf3_layout(const json& j) {
    ASSERT_TRUE(j.is_object());
    for (const char* k : {"start", "intervals", "end"}) EXPECT_TRUE(j.contains(k)) << k;
    ASSERT_TRUE(j.contains("end"));
    const json& end = j["end"];
    for (const char* sum : {"sum_sent", "sum_received"})
        for (const char* k : {"bytes", "seconds", "bits_per_second"}) EXPECT_TRUE(end[sum].contains(k)) << sum << "." << k;
    for (const char* k : {"host_total", "host_user", "host_system", "remote_total", "remote_user", "remote_system"})
        EXPECT_TRUE(end["cpu_utilization_percent"].contains(k)) << k;
    EXPECT_TRUE(j["start"].contains("connected"));
    EXPECT_TRUE(j["start"].contains("test_start"));
}

// The zcio report of one sending stream must add up: every send released once, as zero-copy,
// copied or not reported; bytes agree with iperf3's figures.
void expect_consistent_zcio(const json& stream, const std::string& strategy) {
    ASSERT_TRUE(stream.contains("zcio")) << stream.dump();
    const json& z = stream["zcio"];
    EXPECT_EQ(z["strategy"], strategy);
    for (const char* k : {"sends", "notifications", "zero_copy", "copied", "not_reported", "short_sends", "errors", "auto"})
        EXPECT_TRUE(z.contains(k)) << k;
    const auto sends = z["sends"].get<std::uint64_t>();
    EXPECT_GT(sends, 0u);
    EXPECT_EQ(z["zero_copy"].get<std::uint64_t>() + z["copied"].get<std::uint64_t>() + z["not_reported"].get<std::uint64_t>(), sends)
        << z.dump();
    EXPECT_EQ(z["errors"].get<std::uint64_t>(), 0u) << z.dump();
    EXPECT_EQ(z["stray_cqes"].get<std::uint64_t>(), 0u) << z.dump();
    EXPECT_EQ(z["bytes"], stream["sender"]["bytes"]);
}

// ---------------------------------------------------------------------------------------------
// Control protocol parser

TEST(ZcperfControl, EveryMessageSurvivesARoundTrip) {
    zcperf::TestParams p;
    p.udp = true;
    p.streams = 3;
    p.duration = 2.5;
    p.length = 60000;
    p.reverse = true;
    p.strategy = zcio::Strategy::zc_fixed;
    p.completion = zcperf::CompletionModel::group;
    p.udp_gso = 1472;
    zcperf::Hello h{1, std::string(36, 'k'), p};
    auto r = zcperf::parse_control_message(zcperf::serialize(h));
    ASSERT_TRUE(r.message) << r.error;
    auto* back = std::get_if<zcperf::Hello>(&*r.message);
    ASSERT_NE(back, nullptr);
    EXPECT_EQ(back->cookie, h.cookie);
    EXPECT_TRUE(back->params.udp);
    EXPECT_EQ(back->params.streams, 3);
    EXPECT_EQ(back->params.length, 60000u);
    EXPECT_EQ(back->params.strategy, zcio::Strategy::zc_fixed);
    EXPECT_EQ(back->params.completion, zcperf::CompletionModel::group);
    EXPECT_EQ(back->params.udp_gso, 1472);

    zcperf::SideReport rep;
    rep.cpu = {50, 10, 40};
    zcperf::StreamReport s;
    s.id = 2;
    s.sender = true;
    s.bytes = 1ull << 40;
    s.seconds = 1.5;
    s.strategy = "zc";
    zcio::Counters c;
    c.sends = 7;
    c.zero_copy = 5;
    c.auto_to_copy = 3;
    c.by_strategy[4] = 9;
    s.counters = c;
    rep.streams.push_back(s);
    auto d = zcperf::parse_control_message(zcperf::serialize(zcperf::Done{rep}));
    ASSERT_TRUE(d.message) << d.error;
    const auto& got = std::get<zcperf::Done>(*d.message).report;
    ASSERT_EQ(got.streams.size(), 1u);
    EXPECT_EQ(got.streams[0].bytes, 1ull << 40);
    ASSERT_TRUE(got.streams[0].counters);
    EXPECT_EQ(got.streams[0].counters->zero_copy, 5u);
    EXPECT_EQ(got.streams[0].counters->auto_to_copy, 3u);
    EXPECT_EQ(got.streams[0].counters->by_strategy[4], 9u);
    EXPECT_DOUBLE_EQ(got.cpu.total, 50);

    for (const zcperf::ControlMessage& m : {zcperf::ControlMessage{zcperf::Ready{{5000, 5001}}}, zcperf::ControlMessage{zcperf::Start{}},
                                            zcperf::ControlMessage{zcperf::Failure{"no"}}, zcperf::ControlMessage{zcperf::Results{rep}}}) {
        auto x = zcperf::parse_control_message(zcperf::serialize(m));
        ASSERT_TRUE(x.message) << x.error;
        EXPECT_EQ(x.message->index(), m.index());
    }
}

TEST(ZcperfControl, RejectsMalformedLinesWithAReason) {
    const std::string cookie(36, 'a');
    const std::string params = R"("params":{"protocol":"tcp","streams":1,"duration":1,"length":1000,"reverse":false,"strategy":"zc","completion":"storage"})";
    const std::vector<std::string> bad = {
        "", "{", "[]", "42", "null", R"({"type":1})", R"({"type":"nope"})", R"({"type":"hello"})",
        R"({"type":"hello","version":1,"cookie":"short",)" + params + "}",
        R"({"type":"hello","version":1,"cookie":")" + cookie + R"(","params":{"protocol":"sctp"}})",
        R"({"type":"hello","version":1,"cookie":")" + cookie + R"(","params":{"protocol":"tcp","streams":0,"duration":1,"length":1000,"reverse":false,"strategy":"zc","completion":"storage"}})",
        R"({"type":"hello","version":1,"cookie":")" + cookie + R"(","params":{"protocol":"tcp","streams":1,"duration":1e300,"length":1000,"reverse":false,"strategy":"zc","completion":"storage"}})",
        R"({"type":"hello","version":1,"cookie":")" + cookie + R"(","params":{"protocol":"udp","streams":1,"duration":1,"length":70000,"reverse":false,"strategy":"zc","completion":"storage"}})",
        R"({"type":"hello","version":1,"cookie":")" + cookie + R"(","params":{"protocol":"tcp","streams":1,"duration":1,"length":1000,"reverse":"yes","strategy":"zc","completion":"storage"}})",
        R"({"type":"hello","version":1,"cookie":")" + cookie + R"(","params":{"protocol":"tcp","streams":1,"duration":1,"length":1000,"reverse":false,"strategy":"warp","completion":"storage"}})",
        R"({"type":"ready","udp_ports":[0]})", R"({"type":"ready","udp_ports":[70000]})", R"({"type":"ready","udp_ports":"x"})",
        R"({"type":"done"})", R"({"type":"done","report":{"cpu":{"total":1,"user":1,"system":1},"streams":[{"id":1}]}})",
        R"({"type":"done","report":{"cpu":{"total":-1,"user":1,"system":1},"streams":[]}})",
        R"({"type":"results","report":{"cpu":{"total":1,"user":1,"system":1},"streams":[{"id":1,"sender":true,"bytes":-5,"seconds":1}]}})",
        R"({"type":"error","message":17})",
        std::string(100, '[') + std::string(100, ']'),
        std::string(zcperf::max_control_line + 10, ' '),
        "{\"type\":\"error\",\"message\":\"\xff\xfe\"}",
    };
    for (const auto& line : bad) {
        auto r = zcperf::parse_control_message(line);
        EXPECT_FALSE(r.message) << line.substr(0, 200);
        EXPECT_FALSE(r.error.empty()) << line.substr(0, 200);
    }
}

TEST(ZcperfControl, RandomBytesNeverThrow) {
    // A short in-test fuzz; the real fuzzer drives the same function.
    std::mt19937 rng(12345);
    const std::string seed = zcperf::serialize(zcperf::Hello{1, std::string(36, 'c'), {}});
    for (int i = 0; i < 20000; ++i) {
        std::string s = seed;
        const int edits = 1 + static_cast<int>(rng() % 8);
        for (int e = 0; e < edits; ++e) {
            std::size_t at = rng() % s.size();
            switch (rng() % 3) {
                case 0: s[at] = static_cast<char>(rng()); break;
                case 1: s.erase(at, 1 + rng() % 4); break;
                default: s.insert(at, 1, "{}[]\",:0-e"[rng() % 10]); break;
            }
            if (s.empty()) s = "x";
        }
        EXPECT_NO_THROW((void)zcperf::parse_control_message(s));
    }
}

// ---------------------------------------------------------------------------------------------
// Client and server, one real process each

class ZcperfStrategy : public ::testing::TestWithParam<zcio::Strategy> {};

TEST_P(ZcperfStrategy, TcpClientAndServerAgreeOnEveryByte) {
    const std::string strategy = zcio::to_string(GetParam());
    const std::uint16_t port = free_port();
    auto server = start_server(port);
    Ran client = run({"-c", "127.0.0.1", "-p", std::to_string(port), "-t", "1", "-J", "--strategy", strategy}, 30s);
    const int server_rc = server->wait(15s);
    ASSERT_EQ(client.rc, 0) << client.err << client.out.substr(0, 2000);
    ASSERT_EQ(server_rc, 0) << server->err();

    json j = parse_json(client.out);
    expect_iperf3_layout(j);
    const json& end = j["end"];
    const auto sent = end["sum_sent"]["bytes"].get<std::uint64_t>();
    EXPECT_GT(sent, 0u);
    EXPECT_EQ(end["sum_received"]["bytes"].get<std::uint64_t>(), sent) << "TCP: the receiver must see every byte";
    ASSERT_EQ(end["streams"].size(), 1u);
    expect_consistent_zcio(end["streams"][0], strategy);
    if (zcio::is_zero_copy(GetParam())) {
        // Loopback: the receiver copies, and the kernel says so in the notifications.
        EXPECT_GT(end["streams"][0]["zcio"]["notifications"].get<std::uint64_t>(), 0u);
    }

    json s = parse_json(server->out());
    expect_iperf3_layout(s);
    EXPECT_EQ(s["end"]["sum_received"]["bytes"].get<std::uint64_t>(), sent);
    EXPECT_EQ(s["end"]["sum_sent"]["bytes"].get<std::uint64_t>(), sent);
}

INSTANTIATE_TEST_SUITE_P(AllStrategies, ZcperfStrategy, ::testing::ValuesIn(zcio::all_strategies),
                         [](const auto& info) {
                             std::string n = zcio::to_string(info.param);
                             for (auto& ch : n)
                                 if (ch == '-') ch = '_';
                             return n;
                         });

// --verify: the receiving end checks every byte against the stream-offset pattern, both ways, over
// several streams, odd sizes (a pattern word straddles sends) and the bundle receiver.
TEST(Zcperf, VerifiedStreamsArriveIntactBothWays) {
    for (const bool reverse : {false, true}) {
        const std::uint16_t port = free_port();
        auto server = start_server(port);
        std::vector<std::string> args{"-c", "127.0.0.1", "-p", std::to_string(port), "-t", "0.5", "-J", "--verify", "-P", "3",
                                      "-l", "12345", "--strategy", "zc-fixed", "--recv", "bundle"};
        if (reverse) args.push_back("-R");
        Ran client = run(args, 30s);
        const int server_rc = server->wait(15s);
        ASSERT_EQ(client.rc, 0) << client.err << client.out.substr(0, 2000);
        ASSERT_EQ(server_rc, 0) << server->err();
        json j = parse_json(client.out);
        EXPECT_FALSE(j.contains("error")) << j["error"];
        EXPECT_GT(j["end"]["sum_received"]["bytes"].get<std::uint64_t>(), 0u);
        EXPECT_EQ(j["end"]["sum_received"]["bytes"], j["end"]["sum_sent"]["bytes"]);
    }
    // The pattern really is position-dependent: one byte off is found at its offset.
    std::vector<std::byte> b(1000);
    zcperf::fill_pattern(b, 77);
    EXPECT_FALSE(zcperf::first_mismatch(b, 77).has_value());
    EXPECT_EQ(zcperf::first_mismatch(b, 78), 78u);
    b[500] ^= std::byte{1};
    EXPECT_EQ(zcperf::first_mismatch(b, 77), 577u);
    EXPECT_GT(run({"-c", "127.0.0.1", "-u", "--verify"}, 10s).rc, 0) << "--verify is for TCP";
}

TEST(Zcperf, ParallelStreamsAndTwoStepCompletions) {
    const std::uint16_t port = free_port();
    auto server = start_server(port);
    Ran client = run({"-c", "127.0.0.1", "-p", std::to_string(port), "-t", "1", "-P", "2", "-J", "--strategy", "zc-fixed",
                      "--completion", "two-step", "-l", "64K", "-i", "0.5"});
    ASSERT_EQ(client.rc, 0) << client.err;
    ASSERT_EQ(server->wait(15s), 0) << server->err();
    json j = parse_json(client.out);
    expect_iperf3_layout(j);
    ASSERT_EQ(j["end"]["streams"].size(), 2u);
    for (const auto& s : j["end"]["streams"]) {
        expect_consistent_zcio(s, "zc-fixed");
        EXPECT_EQ(s["zcio"]["completion"], "two-step");
        EXPECT_EQ(s["sender"]["bytes"], s["receiver"]["bytes"]);
    }
    EXPECT_GE(j["intervals"].size(), 1u);
}

TEST(Zcperf, GroupCompletionsReleaseEveryBuffer) {
    const std::uint16_t port = free_port();
    auto server = start_server(port);
    Ran client = run({"-c", "127.0.0.1", "-p", std::to_string(port), "-t", "1", "-J", "--strategy", "zc", "--completion", "group"});
    ASSERT_EQ(client.rc, 0) << client.err;
    ASSERT_EQ(server->wait(15s), 0) << server->err();
    json j = parse_json(client.out);
    EXPECT_EQ(j["end"]["sum_received"]["bytes"], j["end"]["sum_sent"]["bytes"]);
    EXPECT_GT(j["end"]["streams"][0]["zcio"]["sends"].get<std::uint64_t>(), 0u);
}

TEST(Zcperf, ReverseTcpServerSends) {
    const std::uint16_t port = free_port();
    auto server = start_server(port);
    Ran client = run({"-c", "127.0.0.1", "-p", std::to_string(port), "-t", "1", "-R", "-J", "--strategy", "copy"});
    ASSERT_EQ(client.rc, 0) << client.err;
    ASSERT_EQ(server->wait(15s), 0) << server->err();
    json j = parse_json(client.out);
    expect_iperf3_layout(j);
    EXPECT_GT(j["end"]["sum_received"]["bytes"].get<std::uint64_t>(), 0u);
    EXPECT_EQ(j["end"]["sum_received"]["bytes"], j["end"]["sum_sent"]["bytes"]);
    expect_consistent_zcio(j["end"]["streams"][0], "copy");
}

TEST(Zcperf, UdpCountsWhatArrives) {
    const std::uint16_t port = free_port();
    auto server = start_server(port);
    Ran client = run({"-c", "127.0.0.1", "-p", std::to_string(port), "-t", "1", "-u", "-l", "8000", "-J", "--strategy", "zc"});
    ASSERT_EQ(client.rc, 0) << client.err;
    ASSERT_EQ(server->wait(15s), 0) << server->err();
    json j = parse_json(client.out);
    expect_iperf3_layout(j);
    const auto sent = j["end"]["sum_sent"]["bytes"].get<std::uint64_t>();
    const auto got = j["end"]["sum_received"]["bytes"].get<std::uint64_t>();
    EXPECT_GT(sent, 0u);
    EXPECT_GT(got, 0u);
    EXPECT_LE(got, sent);  // unthrottled UDP may lose, never gain
    EXPECT_TRUE(j["end"].contains("sum"));
    expect_consistent_zcio(j["end"]["streams"][0], "zc");
}

TEST(Zcperf, SendOnlyNeedsNoServer) {
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    Ran client = run({"-c", "127.0.0.1", "-p", std::to_string(ntohs(a.sin_port)), "-u", "--send-only", "-t", "0.5", "-J", "--strategy", "copy"});
    ::close(fd);
    ASSERT_EQ(client.rc, 0) << client.err;
    json j = parse_json(client.out);
    EXPECT_GT(j["end"]["sum_sent"]["bytes"].get<std::uint64_t>(), 0u);
    EXPECT_EQ(j["end"]["sum_received"]["bytes"].get<std::uint64_t>(), 0u);
}

// ---------------------------------------------------------------------------------------------
// Local targets

TEST(Zcperf, SinkTargetReportsZeroCopyReleases) {
    if (::geteuid() != 0) GTEST_SKIP() << "the sink target creates network namespaces: needs root";
    const fs::path out = fs::temp_directory_path() / ("zcperf-sink-" + std::to_string(::getpid()));
    Ran r = run({"--target", "sink", "--strategy", "zc-fixed", "--sizes", "60000", "-t", "0.3", "--repeat", "1", "-J", "--plot", "none",
                 "--out", out.string()},
                60s);
    if (r.rc != 0 && r.err.find("unavailable") != std::string::npos) GTEST_SKIP() << r.err;
    ASSERT_EQ(r.rc, 0) << r.err;
    json j = parse_json(r.out);
    ASSERT_TRUE(j.contains("cells"));
    bool saw = false;
    for (const auto& c : j["cells"]) {
        if (c["strategy"] != "zc-fixed") continue;
        saw = true;
        EXPECT_GT(c["zero_copy"].get<std::uint64_t>(), 0u) << c.dump();
        EXPECT_EQ(c["error"], "");
    }
    EXPECT_TRUE(saw);
    EXPECT_TRUE(fs::exists(out / "zcperf-sweep.csv"));
    EXPECT_TRUE(fs::exists(out / "zcperf-sweep.json"));
    std::error_code ec;
    fs::remove_all(out, ec);
    // Nothing left behind: the namespaces zcperf made are gone.
    EXPECT_EQ(slurp("/proc/self/mounts").find("zcio-zcperf-"), std::string::npos);
}

TEST(Zcperf, LoopbackSweepWritesTableCsvJsonAndPlot) {
    const fs::path out = fs::temp_directory_path() / ("zcperf-loop-" + std::to_string(::getpid()));
    Ran r = run({"--target", "loopback", "--strategy", "copy,auto", "--sizes", "4096,65536", "-t", "0.2", "--repeat", "1", "--out",
                 out.string()},
                60s);
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.out.find("x plain"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("auto"), std::string::npos);
    EXPECT_TRUE(fs::exists(out / "zcperf-sweep.csv"));
    json j = parse_json(slurp(out / "zcperf-sweep.json"));
    EXPECT_EQ(j["summary"].size(), 6u);  // plain is always measured, for the ratio
    if (::system("command -v gnuplot >/dev/null 2>&1") == 0) {
        EXPECT_TRUE(fs::exists(out / "zcperf-sweep.svg"));
    }
    std::error_code ec;
    fs::remove_all(out, ec);
}

// ---------------------------------------------------------------------------------------------
// The receive side: the server receives through zcio::Receiver and reports it

// The server's own `zcio_receive` object must add up: the strategy that ran, its bytes equal to
// what iperf3's figures say was received, syscalls counted by kind, the receiving thread's CPU.
void expect_sane_receive(const json& end, const std::string& ran) {
    ASSERT_TRUE(end.contains("zcio_receive")) << end.dump().substr(0, 2000);
    const json& z = end["zcio_receive"];
    EXPECT_EQ(z["strategy"], ran) << z.dump();
    for (const char* k : {"requested", "fallback_reason", "description", "buffers", "buffers_recycled", "rearms", "exhaustions",
                          "fallbacks", "thread_cpu_seconds", "syscalls_per_mb", "cpu_seconds_per_gb"})
        EXPECT_TRUE(z.contains(k)) << k;
    EXPECT_EQ(z["bytes"], end["sum_received"]["bytes"]);
    const json& sc = z["syscalls"];
    const auto total = sc["total"].get<std::uint64_t>();
    EXPECT_GT(total, 0u);
    EXPECT_EQ(sc["io_uring_enter"].get<std::uint64_t>() + sc["epoll_wait"].get<std::uint64_t>() + sc["recv"].get<std::uint64_t>(), total);
    if (ran == "plain") {
        EXPECT_EQ(sc["io_uring_enter"].get<std::uint64_t>(), 0u);
        EXPECT_GT(sc["recv"].get<std::uint64_t>(), 0u);
    } else {
        EXPECT_GT(sc["io_uring_enter"].get<std::uint64_t>(), 0u);
        EXPECT_EQ(sc["recv"].get<std::uint64_t>(), 0u);
    }
    EXPECT_GT(z["thread_cpu_seconds"].get<double>(), 0.0);
    EXPECT_LE(z["thread_cpu_seconds"].get<double>(), 30.0);
    // Every buffer delivered went back once the view was dropped.
    EXPECT_EQ(z["buffers_recycled"], z["buffers"]);
    EXPECT_GT(z["buffers"].get<std::uint64_t>(), 0u);
}

class ZcperfRecv : public ::testing::TestWithParam<std::string> {};

TEST_P(ZcperfRecv, ServerReceivesEveryByteAndReportsHow) {
    const std::string recv = GetParam();
    const std::uint16_t port = free_port();
    auto server = start_server(port, {"--recv", recv});
    Ran client = run({"-c", "127.0.0.1", "-p", std::to_string(port), "-t", "1", "-P", "4", "-l", "16K", "-J", "--strategy", "copy"}, 30s);
    const int server_rc = server->wait(15s);
    ASSERT_EQ(client.rc, 0) << client.err << client.out.substr(0, 2000);
    ASSERT_EQ(server_rc, 0) << server->err();
    json c = parse_json(client.out);
    const auto sent = c["end"]["sum_sent"]["bytes"].get<std::uint64_t>();
    EXPECT_GT(sent, 0u);

    json s = parse_json(server->out());
    expect_iperf3_layout(s);
    const json& end = s["end"];
    EXPECT_EQ(end["sum_received"]["bytes"].get<std::uint64_t>(), sent) << "TCP: the receiver must see every byte";
    for (const auto& st : end["streams"]) EXPECT_EQ(st["sender"]["bytes"], st["receiver"]["bytes"]);
    // zcrx needs a NIC queue; lo has none: the receiver falls back and says why.
    const std::string ran = recv == "zcrx" ? "multishot" : recv == "auto" ? end["zcio_receive"].value("strategy", "") : recv;
    expect_sane_receive(end, ran);
    EXPECT_EQ(end["zcio_receive"]["requested"], recv);
    if (recv == "zcrx") {
        EXPECT_NE(end["zcio_receive"]["fallback_reason"].get<std::string>().find("EOPNOTSUPP"), std::string::npos)
            << end["zcio_receive"].dump();
        EXPECT_GE(end["zcio_receive"]["fallbacks"].get<std::uint64_t>(), 1u);
    }
    if (recv == "multishot" || recv == "bundle" || recv == "plain") {
        EXPECT_EQ(end["zcio_receive"]["fallback_reason"], "");
        EXPECT_EQ(end["zcio_receive"]["fallbacks"], 0u);
    }
    // The client sees the same object (it travels in the results).
    EXPECT_EQ(c["end"]["zcio_receive"]["bytes"], end["zcio_receive"]["bytes"]);
}

INSTANTIATE_TEST_SUITE_P(EveryReceiveStrategy, ZcperfRecv, ::testing::Values("plain", "multishot", "bundle", "zcrx", "auto"));

TEST(Zcperf, SixtyFourStreamsUseAtMostOneSendingThreadPerCore) {
    const std::uint16_t port = free_port();
    auto server = start_server(port, {"--recv", "multishot"});
    Ran client = run({"-c", "127.0.0.1", "-p", std::to_string(port), "-t", "1", "-P", "64", "-l", "4K", "-J", "--strategy", "copy"}, 60s);
    ASSERT_EQ(client.rc, 0) << client.err << client.out.substr(0, 2000);
    ASSERT_EQ(server->wait(20s), 0) << server->err();
    json c = parse_json(client.out);
    const int cores = static_cast<int>(std::thread::hardware_concurrency());
    const json& z = c["end"]["sum_zcio"];
    ASSERT_TRUE(z.contains("sending_threads")) << z.dump();
    EXPECT_GE(z["sending_threads"].get<int>(), 1);
    EXPECT_LE(z["sending_threads"].get<int>(), cores);
    // /proc/self/task while sending: the main thread, the senders, and io_uring's own workers at most.
    EXPECT_LE(z["sending_process_threads"].get<int>(), 1 + cores + 2 * cores) << z.dump();
    ASSERT_EQ(c["end"]["streams"].size(), 64u);
    std::uint64_t sent = 0;
    for (const auto& st : c["end"]["streams"]) {
        EXPECT_GT(st["sender"]["bytes"].get<std::uint64_t>(), 0u) << "every stream sends";
        EXPECT_EQ(st["sender"]["bytes"], st["receiver"]["bytes"]);
        sent += st["sender"]["bytes"].get<std::uint64_t>();
    }
    EXPECT_EQ(c["end"]["sum_received"]["bytes"].get<std::uint64_t>(), sent);
    json s = parse_json(server->out());
    expect_sane_receive(s["end"], "multishot");
    EXPECT_EQ(s["end"]["zcio_receive"]["eofs"], 64u);
}

TEST(Zcperf, ReverseClientReceivesThroughTheReceiverItAskedFor) {
    const std::uint16_t port = free_port();
    auto server = start_server(port);
    Ran client = run({"-c", "127.0.0.1", "-p", std::to_string(port), "-t", "1", "-R", "-J", "--recv", "bundle", "--strategy", "copy"});
    ASSERT_EQ(client.rc, 0) << client.err;
    ASSERT_EQ(server->wait(15s), 0) << server->err();
    json j = parse_json(client.out);
    EXPECT_EQ(j["end"]["sum_received"]["bytes"], j["end"]["sum_sent"]["bytes"]);
    expect_sane_receive(j["end"], "bundle");
}

TEST(Zcperf, ReceiveSweepPutsStrategiesSideBySide) {
    const fs::path out = fs::temp_directory_path() / ("zcperf-rsweep-" + std::to_string(::getpid()));
    Ran r = run({"--sweep", "--target", "loopback", "--recv", "multishot,bundle", "--sizes", "64K", "-t", "0.2", "--repeat", "2",
                 "--out", out.string()},
                90s);
    ASSERT_EQ(r.rc, 0) << r.err << r.out;
    EXPECT_NE(r.out.find("syscalls/MB"), std::string::npos) << r.out;
    json j = parse_json(slurp(out / "zcperf-recv-sweep.json"));
    ASSERT_EQ(j["summary"].size(), 3u);  // plain is always measured, for the ratio
    for (const auto& row : j["summary"]) {
        EXPECT_EQ(row["runs"], 2u) << row.dump();
        EXPECT_GT(row["mb_per_s"].get<double>(), 0.0);
        EXPECT_GT(row["syscalls_per_mb"].get<double>(), 0.0);
        EXPECT_GT(row["cpu_s_per_gb"].get<double>(), 0.0);
        if (row["recv"] != "plain") {
            EXPECT_LT(row["ratio_syscalls_per_mb"].get<double>(), 1.0) << row.dump();
        }
    }
    std::error_code ec;
    fs::remove_all(out, ec);
}

// ---------------------------------------------------------------------------------------------
// Errors: a message and a non-zero exit, never a crash or a hang

TEST(Zcperf, BadArgumentsGiveAMessageAndNonZeroExit) {
    const std::vector<std::vector<std::string>> cases = {
        {"-c", "127.0.0.1", "-l", "0"},
        {"-s", "--recv", "bogus"},
        {"-s", "--recv", "plain,bundle"},
        {"-c", "127.0.0.1", "-u", "-l", "70000"},
        {"-c", "127.0.0.1", "-l", "65M"},
        {"-c", "127.0.0.1", "-t", "0"},
        {"-c", "127.0.0.1", "-t", "86401"},
        {"-c", "127.0.0.1", "-t", "-3"},
        {"-c", "127.0.0.1", "-P", "0"},
        {"-c", "127.0.0.1", "-P", "257"},
        {"-c", "127.0.0.1", "--strategy", "warp"},
        {"-c", "127.0.0.1", "--strategy", "all"},
        {"-c", "127.0.0.1", "--completion", "telepathy"},
        {"-s", "-c", "127.0.0.1"},
        {"-c", "127.0.0.1", "-R", "--send-only"},
        {"--target", "moon"},
        {"-t", "soon"},
        {"--no-such-option"},
        {"-4", "-6", "-c", "127.0.0.1"},
    };
    for (const auto& args : cases) {
        Ran r = run(args, 10s);
        std::string cmd;
        for (const auto& a : args) cmd += a + " ";
        EXPECT_GT(r.rc, 0) << cmd;
        EXPECT_NE(r.err.find("zcperf: "), std::string::npos) << cmd << "\n" << r.err;
    }
}

TEST(Zcperf, UnreachableServerIsACleanError) {
    const std::uint16_t port = free_port();  // nobody listens there
    Ran r = run({"-c", "127.0.0.1", "-p", std::to_string(port), "-t", "1"}, 20s);
    EXPECT_EQ(r.rc, 1) << r.err;
    EXPECT_NE(r.err.find("unable to connect"), std::string::npos) << r.err;
}

TEST(Zcperf, PortInUseIsACleanError) {
    const std::uint16_t port = free_port();
    auto first = start_server(port);
    Ran second = run({"-s", "-1", "-p", std::to_string(port)}, 10s);
    EXPECT_EQ(second.rc, 1);
    EXPECT_NE(second.err.find("in use"), std::string::npos) << second.err;
    first->signal(SIGINT);
    EXPECT_GE(first->wait(10s), 0) << "the idle server must stop on Ctrl-C";
}

TEST(Zcperf, ASecondClientIsToldTheServerIsBusy) {
    const std::uint16_t port = free_port();
    auto server = start_server(port);
    Process first({"-c", "127.0.0.1", "-p", std::to_string(port), "-t", "2", "-J", "--strategy", "copy"});
    std::this_thread::sleep_for(700ms);
    Ran second = run({"-c", "127.0.0.1", "-p", std::to_string(port), "-t", "1"}, 15s);
    EXPECT_EQ(second.rc, 1);
    EXPECT_NE(second.err.find("busy"), std::string::npos) << second.err;
    EXPECT_EQ(first.wait(20s), 0) << first.err();
    EXPECT_EQ(server->wait(15s), 0) << server->err();
}

TEST(Zcperf, FeaturesPrintsTheKernelReport) {
    Ran r = run({"--features"}, 30s);
    EXPECT_EQ(r.rc, 0) << r.err;
    EXPECT_GT(r.out.size(), 20u) << r.out;
}

TEST(Zcperf, HelpShowsIperf3Options) {
    Ran r = run({"--help"}, 10s);
    EXPECT_EQ(r.rc, 0);
    for (const char* opt : {"--server", "--client", "--json", "--parallel", "--reverse", "--strategy", "--sweep", "--target", "--send-only"})
        EXPECT_NE(r.out.find(opt), std::string::npos) << opt;
}

// ---------------------------------------------------------------------------------------------
// Receive fallbacks: one line by default; the NIC set-up only when zcrx was asked for by name,
// once per run, for the test's flow type. lo cannot do zcrx (EOPNOTSUPP; EPERM without root).

std::vector<std::string> lines_with(const std::string& text, const std::string& what) {
    std::vector<std::string> found;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (line.find(what) != std::string::npos) found.push_back(line);
    return found;
}

// A text-mode server (no -J) for one test, up and listening.
std::unique_ptr<Process> start_text_server(std::uint16_t port) {
    auto p = std::make_unique<Process>(std::vector<std::string>{"-s", "-1", "-p", std::to_string(port)});
    for (int i = 0; i < 300 && !listening(port); ++i) std::this_thread::sleep_for(10ms);
    return p;
}

// The receive report names what ran ("multishot (requested zcrx), ..."); why, in one line of its own.
void expect_one_fallback_line(const std::string& out) {
    EXPECT_EQ(lines_with(out, "fell back").size(), 1u) << out;
    const auto zcrx = lines_with(out, "zcrx unavailable");
    ASSERT_EQ(zcrx.size(), 1u) << out;
    EXPECT_EQ(zcrx[0].rfind("zcio receive fell back: zcrx unavailable on lo: ", 0), 0u) << zcrx[0];
    EXPECT_TRUE(zcrx[0].find("; using bundle buffer ring") != std::string::npos ||
                zcrx[0].find("; using multishot buffer ring") != std::string::npos)
        << zcrx[0];
    EXPECT_NE(zcrx[0].find("zcperf --features"), std::string::npos) << zcrx[0];
}

TEST(ZcperfFallback, AutoFallingBackFromZcrxSaysSoInOneLine) {
    const std::uint16_t port = free_port();
    auto server = start_text_server(port);
    Ran client = run({"-c", "127.0.0.1", "-p", std::to_string(port), "-t", "0.5", "--strategy", "copy", "--recv", "auto"});
    ASSERT_EQ(client.rc, 0) << client.err;
    ASSERT_EQ(server->wait(15s), 0) << server->err();
    expect_one_fallback_line(client.out);     // the server's receive, reported to the client
    expect_one_fallback_line(server->out());  // and by the server itself
    for (const std::string& text : {client.out, client.err, server->out(), server->err()})
        EXPECT_EQ(text.find("ethtool"), std::string::npos) << "no NIC recipe unless zcrx was asked for:\n" << text;
}

TEST(ZcperfFallback, ZcrxByNameGivesTheNicSetUpOnceForTheTestsFlow) {
    const std::uint16_t port = free_port();
    auto server = start_text_server(port);
    Ran client = run({"-c", "127.0.0.1", "-p", std::to_string(port), "-t", "0.5", "-P", "2", "--strategy", "copy",
                      "--recv", "zcrx"});
    ASSERT_EQ(client.rc, 0) << client.err;
    ASSERT_EQ(server->wait(15s), 0) << server->err();
    expect_one_fallback_line(client.out);
    expect_one_fallback_line(server->out());
    // The receiving end (where ethtool must run) says how to set a NIC up, once, for IPv4 to its port.
    const std::string err = server->err();
    const auto steer = lines_with(err, "ethtool -N");
    ASSERT_EQ(steer.size(), 1u) << err;
    EXPECT_NE(steer[0].find("flow-type tcp4 dst-port " + std::to_string(port) + " "), std::string::npos) << steer[0];
    EXPECT_EQ(lines_with(err, "tcp-data-split on").size(), 1u) << err;
    EXPECT_EQ(err.find("tcp6"), std::string::npos) << err;
    EXPECT_EQ(client.out.find("ethtool"), std::string::npos) << client.out;
}

// A receive sweep runs many cells in one process (an in-process server): the set-up still comes once.
TEST(ZcperfFallback, ReceiveSweepGivesTheNicSetUpOncePerRunInTheRightFamily) {
    for (const char* family : {"-4", "-6"}) {
        const fs::path out = fs::temp_directory_path() / ("zcperf-fb-" + std::to_string(::getpid()));
        Ran r = run({"--sweep", "--target", "loopback", family, "--recv", "zcrx,auto", "--sizes", "16K", "-t", "0.2",
                     "--repeat", "2", "--no-progress", "--out", out.string()},
                    90s);
        std::error_code ec;
        fs::remove_all(out, ec);
        if (std::string(family) == "-6" && r.rc != 0 && r.err.find("::1") != std::string::npos)
            GTEST_SKIP() << "no IPv6 loopback here: " << r.err;
        ASSERT_EQ(r.rc, 0) << family << ": " << r.err << r.out;
        const auto steer = lines_with(r.err, "ethtool -N");
        ASSERT_EQ(steer.size(), 1u) << family << ": " << r.err;
        const std::string want = std::string("flow-type ") + (family == std::string("-4") ? "tcp4" : "tcp6");
        EXPECT_NE(steer[0].find(want), std::string::npos) << steer[0];
    }
}

// ---------------------------------------------------------------------------------------------
// Send buffers: warm by default, a FIFO over the whole working set with --working-set

zcperf::SendSpec spec_for(zcio::Strategy s, std::size_t length, std::size_t working_set = 0) {
    zcperf::SendSpec spec;
    spec.strategy = s;
    spec.length = length;
    spec.working_set = working_set;
    return spec;
}

TEST(ZcperfBuffers, CopyingStrategiesResendOneWarmBuffer) {
    zcio::Ring ring;
    for (auto s : {zcio::Strategy::plain, zcio::Strategy::copy}) {
        zcperf::PayloadBuffers buffers(ring, spec_for(s, 60000), 1, 1);
        EXPECT_TRUE(buffers.reuses_one());
        zcio::Buffer a = buffers.next();
        zcio::Buffer b = buffers.next();  // a is still "in flight": the bytes are the same, so it may be
        ASSERT_TRUE(a && b);
        EXPECT_EQ(a.data(), b.data());
        EXPECT_EQ(b.size(), 60000u);
    }
    // --verify writes each send's stream offset into its buffer: never one buffer for two sends.
    zcperf::SendSpec verified = spec_for(zcio::Strategy::plain, 60000);
    verified.verify = true;
    zcperf::PayloadBuffers buffers(ring, verified, 1, 1);
    EXPECT_FALSE(buffers.reuses_one());
    zcio::Buffer a = buffers.next();
    EXPECT_NE(a.data(), buffers.next().data());
}

// The arena's free list is LIFO: a zero-copy strategy gets back the slab released last, so its
// working set is what it has in flight.
TEST(ZcperfBuffers, ZeroCopyTakesBackTheSlabReleasedLast) {
    zcio::Ring ring;
    zcperf::PayloadBuffers buffers(ring, spec_for(zcio::Strategy::zc_fixed, 60000), 1, 1);
    EXPECT_FALSE(buffers.reuses_one());
    zcio::Buffer a = buffers.next();
    const std::byte* where = a.data();
    zcio::Buffer b = buffers.next();
    EXPECT_NE(b.data(), where);
    buffers.recycle(std::move(a));  // a release: home to the arena
    EXPECT_EQ(buffers.next().data(), where);
}

// --working-set: every buffer goes round the whole line before it is used again.
TEST(ZcperfBuffers, WorkingSetCyclesThroughEveryBufferInOrder) {
    zcio::Ring ring;
    for (auto s : {zcio::Strategy::plain, zcio::Strategy::zc_fixed}) {
        const std::size_t n = zcperf::working_set_buffers(16u << 20, 60000);
        std::unique_ptr<zcperf::PayloadBuffers> made;
        try {
            made = std::make_unique<zcperf::PayloadBuffers>(ring, spec_for(s, 60000, 16u << 20), 1, 1);
        } catch (const zcio::SetupError& e) {
            GTEST_SKIP() << "16 MiB of registered memory: " << e.what();
        }
        zcperf::PayloadBuffers& buffers = *made;
        ASSERT_GE(buffers.capacity(), n);
        std::vector<const std::byte*> order;
        for (std::size_t i = 0; i < buffers.capacity(); ++i) {
            zcio::Buffer b = buffers.next();
            ASSERT_TRUE(b) << i;
            order.push_back(b.data());
            buffers.recycle(std::move(b));  // released at once: still goes to the back of the line
        }
        std::vector<const std::byte*> distinct = order;
        std::sort(distinct.begin(), distinct.end());
        EXPECT_EQ(std::unique(distinct.begin(), distinct.end()) - distinct.begin(),
                  static_cast<std::ptrdiff_t>(buffers.capacity()));
        EXPECT_EQ(buffers.next().data(), order.front());  // then round again, in the same order
    }
}

// The sweep's header and JSON say which buffers ran: warm by default, else the working set.
TEST(ZcperfBuffers, SweepSaysWhichBuffersRan) {
    const fs::path out = fs::temp_directory_path() / ("zcperf-ws-" + std::to_string(::getpid()));
    for (const char* ws : {"", "8M"}) {
        std::vector<std::string> args{"--target", "loopback", "--strategy", "plain", "--sizes", "4K", "-t", "0.1",
                                      "--repeat", "1", "--plot", "none", "--no-progress", "--out", out.string()};
        if (*ws) args.insert(args.end(), {"--working-set", ws});
        Ran r = run(args, 60s);
        ASSERT_EQ(r.rc, 0) << r.err;
        const auto line = lines_with(r.out, "buffers: ");
        ASSERT_FALSE(line.empty()) << r.out;
        json j = parse_json(slurp(out / "zcperf-sweep.json"));
        if (*ws) {
            EXPECT_NE(line[0].find("a 8.0 MiB working set, every strategy alike"), std::string::npos) << line[0];
            EXPECT_EQ(j["working_set"], 8u << 20);
        } else {
            EXPECT_NE(line[0].find("warm"), std::string::npos) << line[0];
            EXPECT_NE(line[0].find("one 4096 B buffer, reused at once"), std::string::npos) << line[0];
            EXPECT_EQ(j["working_set"], 0u);
        }
        EXPECT_EQ(j["buffers"], line[0]);
    }
    std::error_code ec;
    fs::remove_all(out, ec);
}

// On the sink a minimal send() loop runs beside the strategies, and plain is held against it.
TEST(ZcperfBuffers, SinkSweepHoldsPlainAgainstASendLoop) {
    if (::geteuid() != 0) GTEST_SKIP() << "the sink target creates network namespaces: needs root";
    const fs::path out = fs::temp_directory_path() / ("zcperf-loop-" + std::to_string(::getpid()));
    Ran r = run({"--target", "sink", "--strategy", "plain", "--sizes", "1400", "-t", "0.2", "--repeat", "2", "-J",
                 "--plot", "none", "--out", out.string()},
                60s);
    std::error_code ec;
    fs::remove_all(out, ec);
    if (r.rc != 0 && r.err.find("unavailable") != std::string::npos) GTEST_SKIP() << r.err;
    ASSERT_EQ(r.rc, 0) << r.err;
    json j = parse_json(r.out);
    int loops = 0;
    for (const auto& c : j["cells"])
        if (c["strategy"] == "send-loop") {
            ++loops;
            EXPECT_GT(c["bytes"].get<std::uint64_t>(), 0u) << c.dump();
            EXPECT_EQ(c["sends"].get<std::uint64_t>() * 1400, c["bytes"].get<std::uint64_t>()) << c.dump();
            EXPECT_EQ(c["error"], "");
        }
    EXPECT_EQ(loops, 2);
    ASSERT_EQ(j["plain_vs_send_loop"].size(), 1u) << j.dump().substr(0, 2000);
    EXPECT_GT(j["plain_vs_send_loop"][0]["ratio_mib_per_s"].get<double>(), 0.0);
}

}  // namespace
