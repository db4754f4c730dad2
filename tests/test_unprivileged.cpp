// Users without root: a process without CAP_IPC_LOCK pays for the pages a zero-copy send pins out of
// RLIMIT_MEMLOCK, per send, for memory that is not registered. `auto` must then copy (and say why,
// with the fix), and an explicit zc / sendmsg-zc must be refused at add_socket, not fail mid-run.
// Each case runs as an ordinary user: CI runs as root, and the test drops privileges for them
// (a forked child for the engine, setpriv + prlimit for zcperf); without root they skip.
#include "zcio/error.hpp"
#include "zcio/send_engine.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <thread>
#include <vector>

#include "net_fixtures.hpp"
#include "pinned_memory.hpp"
#include "run_program.hpp"
#include "unprivileged.hpp"

#ifdef ZCPERF_BIN
#include <nlohmann/json.hpp>
#endif

namespace {

using namespace std::chrono_literals;
using zcio::test::StreamChecker;

#define SKIP_UNLESS_ROOT()              \
    if (!zcio::test::running_as_root()) \
    GTEST_SKIP() << "needs root to drop to an unprivileged uid (root is exempt from RLIMIT_MEMLOCK)"

// What a child's stream run found; the child turns it into its exit code and message.
struct ChildStream {
    std::uint64_t sent = 0, arrived = 0, mismatch = UINT64_MAX;
    std::uint64_t releases = 0, errors = 0, zero_copy_requests = 0;
    int first_error = 0;
    zcio::Counters counters;
    std::string fallback_reason;

    std::string describe() const {
        return "sent " + std::to_string(sent) + ", arrived " + std::to_string(arrived) + ", releases " +
               std::to_string(releases) + ", errors " + std::to_string(errors) + " (first " +
               zcio::errno_string(first_error) + "), fallbacks " + std::to_string(counters.fallbacks) +
               ", zero-copy requests " + std::to_string(zero_copy_requests) + " of " +
               std::to_string(counters.requests) + ", notifications " + std::to_string(counters.notifications) +
               ", stray " + std::to_string(counters.stray_cqes) + "; reason: " + fallback_reason;
    }
    bool exact() const {
        return arrived == sent && mismatch == UINT64_MAX && releases == counters.sends && errors == 0;
    }
};

// Sends `total` patterned bytes from plain (unregistered) memory, `piece` at a time, over loopback TCP.
ChildStream stream_from_plain_memory(zcio::Strategy strategy, std::size_t max_inflight, std::size_t total,
                                     std::size_t piece) {
    zcio::Ring ring;
    zcio::SendEngine engine(ring);
    auto pair = zcio::test::tcp_loopback_pair();
    StreamChecker checker(std::move(pair.receiver));
    const auto sock = engine.add_socket(pair.sender.get(), {.strategy = strategy, .max_inflight_bytes = max_inflight});
    std::vector<std::byte> mine(total);
    zcio::test::fill_pattern(mine, 0);
    ChildStream r;
    for (std::size_t off = 0; off < total; off += piece) {
        const std::size_t n = std::min(piece, total - off);
        engine.send(sock, zcio::Buffer::borrow(std::span<std::byte>(mine).subspan(off, n)),
                    zcio::Storage{[&r](zcio::Release&& rel) {
                        ++r.releases;
                        if (rel.error && !r.first_error) r.first_error = rel.error;
                        r.errors += rel.error != 0;
                    }});
        r.sent += n;
    }
    if (engine.drain(20s) != 0) r.errors += 1000;
    ::shutdown(pair.sender.get(), SHUT_WR);
    checker.join();
    r.arrived = checker.bytes();
    r.mismatch = checker.first_mismatch();
    r.counters = engine.counters();
    r.zero_copy_requests = r.counters.by_strategy[static_cast<int>(zcio::Strategy::zc)] +
                           r.counters.by_strategy[static_cast<int>(zcio::Strategy::sendmsg_zc)];
    r.fallback_reason = engine.fallback_reason();
    return r;
}

bool names_the_fix(const std::string& s) {
    return s.find("RLIMIT_MEMLOCK") != std::string::npos && s.find("CAP_IPC_LOCK") != std::string::npos &&
           s.find("ulimit -l") != std::string::npos;
}

// ---- the engine ---------------------------------------------------------------------------------------

class AutoUnderMemlock : public ::testing::TestWithParam<std::uint64_t> {};

// 64 KiB: not even the first 128 KiB send can be charged (the "sends 0 bytes"). 1 MiB: the
// first few go zero-copy, then the kernel refuses mid-chain, and the stream must stay in order.
TEST_P(AutoUnderMemlock, CopiesWhatTheKernelWillNotPinAndSaysWhyOnce) {
    SKIP_UNLESS_ROOT();
    const auto r = zcio::test::run_unprivileged(GetParam(), [](std::string& msg) {
        const ChildStream s = stream_from_plain_memory(zcio::Strategy::automatic, 8u << 20, 16u << 20, 128u << 10);
        msg = s.describe();
        if (!s.exact()) return 2;
        if (s.counters.fallbacks == 0) return 4;  // auto must have fallen back, and counted it
        return names_the_fix(s.fallback_reason) ? 0 : 5;
    });
    EXPECT_EQ(r.exit_code, 0) << r.message;
}

INSTANTIATE_TEST_SUITE_P(Limits, AutoUnderMemlock, ::testing::Values(64u << 10, 1u << 20),
                         [](const auto& info) { return std::to_string(info.param >> 10) + "KiB"; });

class ExplicitZeroCopyUnderMemlock : public ::testing::TestWithParam<zcio::Strategy> {};

TEST_P(ExplicitZeroCopyUnderMemlock, IsRefusedAtAddSocketWithTheFix) {
    SKIP_UNLESS_ROOT();
    const zcio::Strategy strategy = GetParam();
    const auto r = zcio::test::run_unprivileged(64u << 10, [strategy](std::string& msg) {
        zcio::Ring ring;
        zcio::SendEngine engine(ring);
        auto pair = zcio::test::tcp_loopback_pair();
        try {
            engine.add_socket(pair.sender.get(), {.strategy = strategy});
            msg = "add_socket accepted an 8 MiB in-flight bound under a 64 KiB RLIMIT_MEMLOCK";
            return 2;
        } catch (const zcio::SetupError& e) {
            msg = e.what();
            return names_the_fix(msg) ? 0 : 5;
        }
    });
    EXPECT_EQ(r.exit_code, 0) << r.message;
}

// The refusal is not a blanket one: a bound the limit can carry is accepted, and the sends go
// zero-copy (as requests) without a single ENOMEM.
TEST_P(ExplicitZeroCopyUnderMemlock, AnInFlightBoundThatFitsIsAcceptedAndSendsCleanly) {
    SKIP_UNLESS_ROOT();
    const zcio::Strategy strategy = GetParam();
    const auto r = zcio::test::run_unprivileged(4u << 20, [strategy](std::string& msg) {
        const ChildStream s = stream_from_plain_memory(strategy, 256u << 10, 8u << 20, 64u << 10);
        msg = s.describe();
        if (!s.exact()) return 2;
        return s.zero_copy_requests >= s.counters.sends && s.counters.fallbacks == 0 ? 0 : 4;
    });
    EXPECT_EQ(r.exit_code, 0) << r.message;
}

INSTANTIATE_TEST_SUITE_P(PinnedStrategies, ExplicitZeroCopyUnderMemlock,
                         ::testing::Values(zcio::Strategy::zc, zcio::Strategy::sendmsg_zc),
                         [](const auto& info) { return info.param == zcio::Strategy::zc ? "zc" : "sendmsg_zc"; });

TEST(PinnedCharge, TheKernelRefusesWhatTheLimitCannotCarryAndAcceptsWhatItCan) {
    SKIP_UNLESS_ROOT();
    EXPECT_EQ(zcio::try_pinned_charge(1u << 30), 0) << "root is exempt: nothing is charged";
    const auto r = zcio::test::run_unprivileged(1u << 20, [](std::string& msg) {
        const int small = zcio::try_pinned_charge(256u << 10), big = zcio::try_pinned_charge(2u << 20);
        msg = "256 KiB: " + zcio::errno_string(small) + ", 2 MiB: " + zcio::errno_string(big);
        return small == 0 && big == -ENOMEM ? 0 : 2;
    });
    EXPECT_EQ(r.exit_code, 0) << r.message;
}

// ---- zcperf, run by an ordinary user --------------------------------------------------------------

#ifdef ZCPERF_BIN

// A TCP sink on loopback for zcperf --send-only: accepts one connection and reads it to EOF.
class TcpSink {
public:
    TcpSink() : listener_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(listener_.get(), 4) != 0 ||
            ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
            throw std::runtime_error("TcpSink: bind/listen failed");
        port_ = ntohs(a.sin_port);
        thread_ = std::thread([this] {
            zcio::UniqueFd c(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
            std::vector<char> buf(1 << 20);
            while (c && ::recv(c.get(), buf.data(), buf.size(), 0) > 0) {}
        });
    }
    ~TcpSink() {
        ::shutdown(listener_.get(), SHUT_RDWR);  // ends an accept that never got a connection
        thread_.join();
    }
    std::string port() const { return std::to_string(port_); }

private:
    zcio::UniqueFd listener_;
    std::uint16_t port_ = 0;
    std::thread thread_;
};

zcio::test::ProgramResult zcperf_as_user(const char* strategy, const std::string& port) {
    const std::string uid = std::to_string(zcio::test::scratch_uid());
    return zcio::test::run_program({"setpriv", "--reuid=" + uid, "--regid=" + uid, "--clear-groups", "prlimit",
                                    "--memlock=65536:65536", ZCPERF_BIN, "-c", "127.0.0.1", "-p", port, "--send-only",
                                    "-t", "0.3", "-J", "--strategy", strategy});
}

TEST(ZcperfUnprivileged, AutoSendsUnderA64KiBMemlockLimit) {
    SKIP_UNLESS_ROOT();
    TcpSink sink;
    const auto r = zcperf_as_user("auto", sink.port());
    if (r.exit_code == -1 && r.err.find("cannot start") != std::string::npos) GTEST_SKIP() << r.err;
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_GT(j["end"]["sum_sent"]["bytes"].get<std::uint64_t>(), 0u) << r.out;
}

TEST(ZcperfUnprivileged, ExplicitZcFailsAtStartWithTheFix) {
    SKIP_UNLESS_ROOT();
    TcpSink sink;
    const auto r = zcperf_as_user("zc", sink.port());
    if (r.exit_code == -1 && r.err.find("cannot start") != std::string::npos) GTEST_SKIP() << r.err;
    EXPECT_NE(r.exit_code, 0) << r.out;
    EXPECT_TRUE(names_the_fix(r.err)) << r.err;
    EXPECT_NE(r.err.find("add_socket"), std::string::npos) << "refused at start, not mid-run: " << r.err;
}

#endif

}  // namespace
