// zcperf -F FILE as a user runs it: real files (tmpfs and the disk), a zcperf client and server
// over loopback with every file strategy, the written file compared byte for byte with the source,
// -R, -t looping, --verify catching a source changed under it, bad inputs with clear errors, the
// file sweep; and against Debian's stock iperf3 both ways. Files of a few MB: the tests stay short.
#include <gtest/gtest.h>

#include "control.hpp"
#include "file_hash.hpp"
#include "file_mode.hpp"
#include "zcperf_process.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#ifndef ZCPERF_BIN
#error "ZCPERF_BIN must name the zcperf binary (tools/zcperf/CMakeLists.txt defines it)"
#endif

namespace {

using nlohmann::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using zcio::test::Process;

// A directory of this test's files, removed at the end: on tmpfs or on the disk (the build tree).
class Dir {
public:
    explicit Dir(const fs::path& under) {
        static int n = 0;
        path_ = under / ("zcperf-file-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
        fs::create_directories(path_);
    }
    ~Dir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    std::string operator/(const std::string& name) const { return (path_ / name).string(); }

private:
    fs::path path_;
};

std::string random_file(const std::string& path, std::size_t size, unsigned seed = 1) {
    std::mt19937_64 rng(seed);
    std::string bytes(size, '\0');
    for (auto& c : bytes) c = static_cast<char>(rng());
    std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return bytes;
}

std::string read_all(const std::string& path) { return zcio::test::slurp(path); }

struct Ran {
    int rc;
    std::string out, err;
};
Ran run(std::vector<std::string> args, std::chrono::milliseconds timeout = 30s) {
    args.insert(args.begin(), ZCPERF_BIN);
    Process p(args);
    const int rc = p.wait(timeout);
    return {rc, p.out(), p.err()};
}

// `zcperf -s -1 -p PORT -J` with `extra`, listening.
std::unique_ptr<Process> server(std::uint16_t port, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{ZCPERF_BIN, "-s", "-1", "-J", "-p", std::to_string(port)};
    args.insert(args.end(), extra.begin(), extra.end());
    auto p = std::make_unique<Process>(args);
    EXPECT_TRUE(zcio::test::wait_listening(port)) << p->err();
    return p;
}

std::vector<std::string> client(std::uint16_t port, std::vector<std::string> extra) {
    std::vector<std::string> args{"-c", "127.0.0.1", "-p", std::to_string(port), "-J"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
}

json parse(const std::string& text) {
    json j = json::parse(text, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "not JSON:\n" << text.substr(0, 2000);
    return j;
}

// sum_zcio.file's report of `role` ("sender" / "receiver").
json file_side(const json& j, const std::string& role) {
    for (const auto& s : j["end"]["sum_zcio"]["file"]["streams"])
        if (s["role"] == role) return s;
    ADD_FAILURE() << "no file " << role << " in " << j["end"]["sum_zcio"].dump();
    return json::object();
}

// ---- options and the control protocol ------------------------------------------------------------

TEST(ZcperfFileOptions, StrategyNamesGoToTheirSide) {
    zcperf::FileStrategyNames n;
    EXPECT_EQ(zcperf::parse_file_strategies("splice", false, n), "");
    ASSERT_EQ(n.send.size(), 1u);
    EXPECT_EQ(n.send[0], zcio::FileSendStrategy::splice);
    EXPECT_EQ(n.recv, zcio::FileRecvStrategy::splice);
    zcperf::FileStrategyNames m;
    EXPECT_EQ(zcperf::parse_file_strategies("read-zc,splice", false, m), "");
    EXPECT_EQ(m.send, std::vector<zcio::FileSendStrategy>{zcio::FileSendStrategy::read_zc});
    EXPECT_EQ(m.recv, zcio::FileRecvStrategy::splice);
    zcperf::FileStrategyNames all;
    EXPECT_EQ(zcperf::parse_file_strategies("all", true, all), "");
    EXPECT_EQ(all.send.size(), zcio::file_send_strategy_count);
    zcperf::FileStrategyNames bad;
    EXPECT_NE(zcperf::parse_file_strategies("all", false, bad), "");
    EXPECT_NE(zcperf::parse_file_strategies("sendfile,read-zc", false, bad), "");
    EXPECT_NE(zcperf::parse_file_strategies("mmap", true, bad).find("unknown"), std::string::npos);
}

TEST(ZcperfFileOptions, ExtrasSurviveTheParamsRoundTripAndTheHelloCarriesTheSize) {
    zcperf::TestParams p;
    p.file.path = "/never/sent";
    p.file.send = zcio::FileSendStrategy::read_zc;
    p.file.recv = zcio::FileRecvStrategy::recv_write;
    p.file.verify = true;
    p.file.once = true;
    const std::string text = zcperf::serialize_params(p);
    EXPECT_EQ(text.find("/never/sent"), std::string::npos) << "each end names its own file";
    auto r = zcperf::parse_params(text);
    ASSERT_TRUE(r.params) << r.error;
    EXPECT_EQ(r.params->file.send, zcio::FileSendStrategy::read_zc);
    EXPECT_EQ(r.params->file.recv, zcio::FileRecvStrategy::recv_write);
    EXPECT_TRUE(r.params->file.verify && r.params->file.once);
    EXPECT_FALSE(r.params->file.active());
    EXPECT_FALSE(zcperf::parse_params(R"({"tcp":true,"time":1,"zcperf":{"file_send":"mmap"}})").params);
    auto hello = zcperf::parse_server_hello(zcperf::serialize_server_hello({"0.2.0", "auto", 12345}));
    ASSERT_TRUE(hello);
    EXPECT_EQ(hello->file_once_bytes, 12345u);
}

TEST(ZcperfFileHash, Crc32cOfTheCheckValueAndOfARepeatedFile) {
    EXPECT_EQ(zcperf::crc32c(0, "123456789", 9), 0xe3069283u);  // the CRC-32C check value
    Dir d(fs::temp_directory_path());
    const std::string bytes = random_file(d / "f", 100000);
    const std::string twice = bytes + bytes.substr(0, 5000);
    const auto h = zcperf::hash_file_stream(d / "f", bytes.size(), twice.size());
    ASSERT_EQ(h.error, "");
    EXPECT_EQ(h.value, fmt::format("crc32c:{:08x}", zcperf::crc32c(0, twice.data(), twice.size())));
    EXPECT_NE(zcperf::hash_file_stream(d / "f", 0, 200000).error.find("shrank"), std::string::npos);
}

// ---- client -> server, every strategy, byte-exact --------------------------------------------------

struct Pair {
    std::string send, recv;
};

void PrintTo(const Pair& p, std::ostream* os) { *os << p.send << " -> " << p.recv; }

class ZcperfFileStrategies : public ::testing::TestWithParam<Pair> {};

TEST_P(ZcperfFileStrategies, TheServersFileIsTheClientsByteForByte) {
    Dir shm("/dev/shm");
    const std::string src = shm / "src", dst = shm / "dst";
    const std::string bytes = random_file(src, (3u << 20) + 12345);
    const std::uint16_t port = zcio::test::free_port();
    auto s = server(port, {"-F", dst});
    const Ran c =
        run(client(port, {"-F", src, "--file-strategy", GetParam().send + "," + GetParam().recv, "-l", "64K"}));
    ASSERT_EQ(c.rc, 0) << c.err << c.out.substr(0, 3000);
    ASSERT_EQ(s->wait(15s), 0) << s->err();
    EXPECT_TRUE(read_all(dst) == bytes) << "the written file differs from the source";
    const json j = parse(c.out);
    EXPECT_EQ(j["start"]["test_start"]["bytes"], bytes.size()) << "-F alone: the file once, as iperf3 -F";
    const json snd = file_side(j, "sender"), rcv = file_side(j, "receiver");
    EXPECT_EQ(snd["requested"], GetParam().send);
    if (GetParam().send != "auto") {
        EXPECT_EQ(snd["used"], GetParam().send);
    } else {
        EXPECT_FALSE(snd["why"].get<std::string>().empty());
    }
    EXPECT_EQ(snd["bytes"], bytes.size());
    EXPECT_EQ(snd["passes"], 1);
    EXPECT_EQ(rcv["used"], GetParam().recv);
    EXPECT_EQ(rcv["bytes"], bytes.size());
    const bool reads = GetParam().send == "read-send" || GetParam().send == "read-zc";
    EXPECT_EQ(snd["bytes_read"].get<std::uint64_t>(), reads ? bytes.size() : 0u);
    if (GetParam().send == "read-zc") {
        EXPECT_GT(snd["read_requests"].get<std::uint64_t>(), 0u);
    }
}

INSTANTIATE_TEST_SUITE_P(EveryStrategy, ZcperfFileStrategies,
                         ::testing::Values(Pair{"sendfile", "recv-write"}, Pair{"splice", "splice"},
                                           Pair{"read-send", "recv-write-fixed"}, Pair{"read-zc", "recv-write-fixed"},
                                           Pair{"auto", "recv-write"}),
                         [](const auto& info) {
                             std::string n = info.param.send + "_" + info.param.recv;
                             for (auto& ch : n)
                                 if (ch == '-') ch = '_';
                             return n;
                         });

TEST(ZcperfFile, ADiskFileReadWithODirectArrivesWhole) {
    Dir disk(fs::current_path());
    const std::string src = disk / "src", dst = disk / "dst";
    const std::string bytes = random_file(src, (2u << 20) + 777, 2);
    const std::uint16_t port = zcio::test::free_port();
    auto s = server(port, {"-F", dst});
    const Ran c = run(client(port, {"-F", src, "--direct", "--file-strategy", "read-zc", "--verify"}));
    ASSERT_EQ(c.rc, 0) << c.err << c.out.substr(0, 3000);
    ASSERT_EQ(s->wait(15s), 0) << s->err();
    EXPECT_TRUE(read_all(dst) == bytes);
    const json snd = file_side(parse(c.out), "sender");
    EXPECT_EQ(snd["direct"], true);
    EXPECT_EQ(snd["page_cache"], false);
    EXPECT_EQ(snd["used"], "read-zc");
}

TEST(ZcperfFile, ReverseSendsTheServersFileOnceAndVerifies) {
    Dir shm("/dev/shm");
    const std::string src = shm / "src", dst = shm / "dst";
    const std::string bytes = random_file(src, (3u << 20) + 1, 3);
    const std::uint16_t port = zcio::test::free_port();
    auto s = server(port, {"-F", src, "--file-strategy", "read-zc"});
    const Ran c = run(client(port, {"-R", "-F", dst, "--verify"}));
    ASSERT_EQ(c.rc, 0) << c.err << c.out.substr(0, 3000);
    ASSERT_EQ(s->wait(15s), 0) << s->err();
    EXPECT_TRUE(read_all(dst) == bytes);
    const json j = parse(c.out);
    const json snd = file_side(j, "sender"), rcv = file_side(j, "receiver");
    EXPECT_EQ(snd["end"], "remote");
    EXPECT_EQ(snd["used"], "read-zc");
    EXPECT_EQ(snd["verify"]["hash"], rcv["verify"]["hash"]);
    EXPECT_EQ(rcv["verify"]["bytes"], bytes.size());
}

TEST(ZcperfFile, WithBytesTheFileStartsOverAtEofAndTheCopyIsTheSourceRepeated) {
    Dir shm("/dev/shm");
    const std::string src = shm / "src", dst = shm / "dst";
    const std::string bytes = random_file(src, (1u << 20) + 4097, 4);
    const std::uint16_t port = zcio::test::free_port();
    auto s = server(port, {"-F", dst});
    const Ran c = run(client(port, {"-F", src, "-n", "5500K", "--verify", "--file-strategy", "sendfile"}));
    ASSERT_EQ(c.rc, 0) << c.err << c.out.substr(0, 3000);
    ASSERT_EQ(s->wait(15s), 0) << s->err();
    const json snd = file_side(parse(c.out), "sender");
    EXPECT_EQ(snd["passes"], 6);
    const std::string copy = read_all(dst);
    ASSERT_EQ(copy.size(), 5500u << 10);
    for (std::size_t at = 0; at < copy.size(); at += bytes.size())
        ASSERT_EQ(copy.compare(at, bytes.size(), bytes, 0, std::min(bytes.size(), copy.size() - at)), 0) << "at " << at;
}

TEST(ZcperfFile, WithTimeTheFileIsSentOverAndOverForThatTime) {
    Dir shm("/dev/shm");
    const std::string src = shm / "src";
    random_file(src, 1u << 20, 8);
    const std::uint16_t port = zcio::test::free_port();
    auto s = server(port);  // it counts: a second of loopback is too much to keep
    const Ran c = run(client(port, {"-F", src, "-t", "1"}));
    ASSERT_EQ(c.rc, 0) << c.err << c.out.substr(0, 3000);
    ASSERT_EQ(s->wait(15s), 0) << s->err();
    const json j = parse(c.out);
    const json snd = file_side(j, "sender");
    EXPECT_GT(snd["passes"].get<int>(), 2);
    EXPECT_EQ(j["end"]["sum_received"]["bytes"], snd["bytes"]);
    EXPECT_GT(j["end"]["sum_sent"]["seconds"].get<double>(), 0.8);
    EXPECT_LT(j["end"]["sum_sent"]["seconds"].get<double>(), 3.0);
}

TEST(ZcperfFile, VerifyFailsWhenTheSourceChangesWhileItIsSent) {
    Dir shm("/dev/shm");
    const std::string src = shm / "src", dst = shm / "dst";
    random_file(src, 1u << 20, 5);
    const std::uint16_t port = zcio::test::free_port();
    auto s = server(port, {"-F", dst});
    std::vector<std::string> args{ZCPERF_BIN};
    // Small sends: the copy the server keeps stays a few hundred MB.
    for (auto& a : client(port, {"-F", src, "-t", "2", "--verify", "--file-strategy", "read-send", "-l", "8K"}))
        args.push_back(a);
    Process c(args);
    std::this_thread::sleep_for(800ms);  // many passes went out with the old bytes
    const int fd = ::open(src.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, "CHANGED", 7, 1000), 7);
    ::close(fd);
    ASSERT_EQ(c.wait(30s), 1) << c.err() << c.out().substr(0, 3000);
    s->wait(15s);
    const json j = parse(c.out());
    ASSERT_TRUE(j.contains("error"));
    const std::string e = j["error"];
    EXPECT_NE(e.find("--verify failed"), std::string::npos) << e;
    EXPECT_NE(e.find("CRC32C"), std::string::npos) << e;
}

// ---- bad inputs: clear errors, never a crash -----------------------------------------------------

TEST(ZcperfFileErrors, BadFilesAndCombinationsAreNamedBeforeAnythingConnects) {
    Dir shm("/dev/shm");
    const std::string src = shm / "src";
    random_file(src, 4096);
    std::ofstream(shm / "empty");
    fs::create_directories(shm / "dir");
    const std::uint16_t port = zcio::test::free_port();  // nobody listens: a check that passes would try to connect
    const std::string p = std::to_string(port);
    const struct {
        std::vector<std::string> args;
        std::string says;
    } cases[] = {
        {{"-c", "127.0.0.1", "-p", p, "-F", shm / "missing"}, "No such file"},
        {{"-c", "127.0.0.1", "-p", p, "-F", shm / "dir"}, "is a directory"},
        {{"-c", "127.0.0.1", "-p", p, "-F", shm / "empty"}, "empty"},
        {{"-c", "127.0.0.1", "-p", p, "-F", src, "-u"}, "-F sends over TCP"},
        {{"-c", "127.0.0.1", "-p", p, "-F", src, "-P", "2"}, "one stream"},
        {{"-c", "127.0.0.1", "-p", p, "--file-strategy", "read-zc"}, "--file-strategy applies to -F"},
        {{"-c", "127.0.0.1", "-p", p, "--direct"}, "--direct applies to -F"},
        {{"-c", "127.0.0.1", "-p", p, "-F", src, "--file-strategy", "mmap"}, "unknown"},
        {{"-c", "127.0.0.1", "-p", p, "-F", src, "--file-strategy", "all"}, "needs --sweep"},
        {{"-c", "127.0.0.1", "-p", p, "-F", src, "-R", "--direct"}, "--direct applies to reading"},
        {{"-c", "127.0.0.1", "-p", p, "-F", src, "--strategy", "zc"}, "--file-strategy"},
        {{"-s", "-p", p, "-F", shm / "dir"}, "is a directory"},
        {{"--sweep", "--target", "loopback", "-F", src, "--file-strategy", "recv-write"}, "sending end"},
    };
    for (const auto& c : cases) {
        const Ran r = run(c.args, 10s);
        std::string line;
        for (const auto& a : c.args) line += a + " ";
        EXPECT_EQ(r.rc, 2) << line << r.err;
        EXPECT_NE(r.err.find(c.says), std::string::npos) << line << "\n" << r.err;
    }
}

TEST(ZcperfFileErrors, AFileThisUserMayNotReadIsRefusedWithWhy) {
    if (::geteuid() != 0 || !zcio::test::have_program("setpriv"))
        GTEST_SKIP() << "needs root and setpriv to drop to nobody";
    Dir shm("/dev/shm");
    const std::string src = shm / "src";
    random_file(src, 4096);
    fs::permissions(src, fs::perms::owner_read);
    fs::permissions(fs::path(src).parent_path(), fs::perms::all);
    Process p(
        {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ZCPERF_BIN, "-c", "127.0.0.1", "-F", src});
    EXPECT_EQ(p.wait(10s), 2);
    EXPECT_NE(p.err().find("EACCES"), std::string::npos) << p.err();
    EXPECT_NE(p.err().find("grant access"), std::string::npos) << p.err();
}

TEST(ZcperfFileErrors, TheServerRefusesWhatItsFileCannotDoAndTheClientSaysWhy) {
    Dir shm("/dev/shm");
    const std::string src = shm / "src";
    random_file(src, 8192);
    {  // -R from a server whose -F is missing
        const std::uint16_t port = zcio::test::free_port();
        auto s = server(port, {"-F", shm / "missing"});
        const Ran c = run(client(port, {"-R", "-F", shm / "dst"}));
        EXPECT_EQ(c.rc, 1);
        EXPECT_NE(c.err.find("the server's -F"), std::string::npos) << c.err;
        EXPECT_NE(c.err.find("No such file"), std::string::npos) << c.err;
        s->wait(10s);
    }
    {  // --verify to a server without -F
        const std::uint16_t port = zcio::test::free_port();
        auto s = server(port);
        const Ran c = run(client(port, {"-F", src, "--verify"}));
        EXPECT_EQ(c.rc, 1);
        EXPECT_NE(c.err.find("this server has no -F"), std::string::npos) << c.err;
        s->wait(10s);
    }
}

// ---- the file sweep ------------------------------------------------------------------------------

TEST(ZcperfFileSweep, EveryStrategyGetsARowOverLoopback) {
    Dir shm("/dev/shm");
    const std::string src = shm / "src";
    random_file(src, 2u << 20);
    const Ran r = run({"--sweep", "--target", "loopback", "-F", src, "--file-strategy", "read-zc,read-send", "--sizes",
                       "64K", "-t", "0.2", "--repeat", "1", "--out", shm / "out", "--plot", "none", "-J"},
                      60s);
    ASSERT_EQ(r.rc, 0) << r.err;
    const json j = parse(r.out);
    ASSERT_EQ(j["summary"].size(), 3u) << "sendfile is the baseline: " << j.dump().substr(0, 2000);
    for (const auto& row : j["summary"]) {
        EXPECT_EQ(row["runs"], 1) << row.dump();
        EXPECT_GT(row["mib_per_s"].get<double>(), 0) << row.dump();
        EXPECT_EQ(row["used"], row["strategy"]);
    }
    EXPECT_TRUE(fs::exists(shm / "out/zcperf-file-sweep.csv"));
}

TEST(ZcperfFileSweep, TheSinkTakesTheFilesDatagrams) {
    if (::geteuid() != 0) GTEST_SKIP() << "the sink needs root (network namespaces)";
    Dir shm("/dev/shm");
    const std::string src = shm / "src";
    random_file(src, 2u << 20);
    const Ran r = run({"--sweep", "--target", "sink", "-F", src, "--file-strategy", "all", "--sizes", "60K", "-t",
                       "0.2", "--repeat", "1", "--out", shm / "out", "--plot", "none", "-J"},
                      60s);
    if (r.rc == 1 && r.err.find("unavailable") != std::string::npos) GTEST_SKIP() << r.err;
    ASSERT_EQ(r.rc, 0) << r.err;
    const json j = parse(r.out);
    EXPECT_EQ(j["target"], "sink");
    ASSERT_EQ(j["summary"].size(), zcio::file_send_strategy_count);
    for (const auto& row : j["summary"]) EXPECT_EQ(row["runs"], 1) << row.dump();
}

// ---- against Debian's iperf3 ---------------------------------------------------------------------

TEST(ZcperfFileIperf3, ZcperfSendsItsFileToAStockServerWhichCountsIt) {
    if (!zcio::test::have_program("iperf3")) GTEST_SKIP() << "iperf3 is not installed (scripts/install-deps.sh)";
    Dir shm("/dev/shm");
    const std::string src = shm / "src";
    const std::string bytes = random_file(src, (2u << 20) + 99, 6);
    const std::uint16_t port = zcio::test::free_port();
    Process s({"iperf3", "-s", "-1", "-J", "-p", std::to_string(port)});
    ASSERT_TRUE(zcio::test::wait_listening(port));
    const Ran c = run(client(port, {"-F", src, "--file-strategy", "read-zc"}));
    ASSERT_EQ(c.rc, 0) << c.err << c.out.substr(0, 2000);
    ASSERT_EQ(s.wait(15s), 0) << s.err();
    const json sj = parse(s.out());
    EXPECT_EQ(sj["end"]["sum_received"]["bytes"], bytes.size()) << "iperf3 counts the file's bytes";
    EXPECT_EQ(sj["start"]["test_start"]["bytes"], bytes.size()) << "the test asks for the file's size, as iperf3 -F";
    const Ran verify = run(client(zcio::test::free_port(), {"-F", src, "-u"}));
    EXPECT_EQ(verify.rc, 2) << "-F with -u is refused before anything connects";
}

TEST(ZcperfFileIperf3, AStockClientsFileIsWrittenByAZcperfServer) {
    if (!zcio::test::have_program("iperf3")) GTEST_SKIP() << "iperf3 is not installed (scripts/install-deps.sh)";
    Dir shm("/dev/shm");
    const std::string src = shm / "src", dst = shm / "dst";
    const std::string bytes = random_file(src, (2u << 20) + 5, 7);
    const std::uint16_t port = zcio::test::free_port();
    auto s = server(port, {"-F", dst});
    Process c({"iperf3", "-c", "127.0.0.1", "-p", std::to_string(port), "-F", src});
    ASSERT_EQ(c.wait(30s), 0) << c.err() << c.out();
    ASSERT_EQ(s->wait(15s), 0) << s->err();
    EXPECT_TRUE(read_all(dst) == bytes) << "the server's copy differs from iperf3's file";
    EXPECT_EQ(file_side(parse(s->out()), "receiver")["bytes"], bytes.size());
}

}  // namespace
