// Issue 11, file -> socket: every FileSender strategy against real files (tmpfs and the disk)
// and real sockets: byte-exact against the source, ranges, EOF, sparse files past 4 GiB, O_DIRECT,
// hooks, a file truncated mid-send, files that cannot be opened, a peer that resets or stalls, and
// a transfer torn down by a hook that throws: a clear error each time, nothing left in flight,
// every buffer back in its arena.
#include "zcio/buffer_arena.hpp"
#include "zcio/error.hpp"
#include "zcio/file.hpp"
#include "zcio/file_sender.hpp"
#include "zcio/ring.hpp"
#include "zcio/send_engine.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>

#include "fault_support.hpp"
#include "file_fixtures.hpp"
#include "net_fixtures.hpp"

namespace {

using namespace std::chrono_literals;
using zcio::FileSendStrategy;
using zcio::test::Fs;

constexpr std::size_t slab = 64 << 10;

std::string name_of(FileSendStrategy s) {
    std::string n = zcio::to_string(s);
    for (auto& c : n)
        if (c == '-') c = '_';
    return n;
}

// One ring, arena and engine, as a program would have them.
struct Rig {
    zcio::Ring ring;
    zcio::BufferArena arena{ring, {.slab_size = slab, .slab_count = 64}};
    zcio::SendEngine engine{ring};
    bool all_home() const { return arena.available() == arena.slab_count(); }
};

zcio::FileSendReport send_tcp(Rig& rig, const zcio::File& f, zcio::FileRange range, zcio::FileSendOptions o,
                              std::vector<unsigned char>& got) {
    auto pair = zcio::test::tcp_loopback_pair();
    zcio::test::StreamCollector rx(std::move(pair.receiver));
    zcio::FileSendReport r;
    {
        zcio::FileSender tx(rig.engine, rig.arena, pair.sender.get());
        r = tx.send(f, range, o);
        EXPECT_EQ(tx.in_flight(), 0u);
    }
    ::shutdown(pair.sender.get(), SHUT_WR);
    got = rx.join();
    return r;
}

// ---- every strategy, byte-exact, on tmpfs and on the disk --------------------------------------

struct ExactCase {
    FileSendStrategy strategy;
    Fs fs;
};

class EveryStrategy : public ::testing::TestWithParam<ExactCase> {};

TEST_P(EveryStrategy, WholeFileAndARangeArriveByteExact) {
    const auto [strategy, fs] = GetParam();
    if (auto why = zcio::test::TestDir::unavailable(fs)) GTEST_SKIP() << *why;
    zcio::test::TestDir dir(fs);
    const std::uint64_t size = (3u << 20) + 12345;  // a tail shorter than a chunk
    zcio::test::write_pattern(dir.file("src"), 0, size);
    const zcio::File f = zcio::File::open(dir.file("src"));
    Rig rig;
    std::vector<unsigned char> got;

    auto r = send_tcp(rig, f, {}, {.strategy = strategy}, got);
    EXPECT_EQ(r.error, 0) << r.message;
    EXPECT_EQ(r.bytes_sent, size);
    ASSERT_EQ(got.size(), size);
    EXPECT_EQ(zcio::test::hash(got), zcio::test::hash(zcio::test::read_file(dir.file("src"))));
    if (strategy == FileSendStrategy::automatic) {
        EXPECT_EQ(r.used, FileSendStrategy::sendfile);
        EXPECT_FALSE(r.why.empty());
    }
    if (r.used == FileSendStrategy::read_zc) {
        EXPECT_GT(r.read_requests, size / slab);
        EXPECT_EQ(r.bytes_read, size);
    }

    // A range that starts and ends off any chunk or page boundary.
    const zcio::FileRange range{100001, 777777};
    r = send_tcp(rig, f, range, {.strategy = strategy, .chunk = 10000}, got);
    EXPECT_EQ(r.error, 0) << r.message;
    EXPECT_EQ(got, zcio::test::pattern(range.offset, range.length));
    EXPECT_TRUE(rig.all_home());
    EXPECT_EQ(rig.engine.ops_in_use(), 0u);
}

std::vector<ExactCase> exact_cases() {
    std::vector<ExactCase> v;
    for (Fs fs : {Fs::tmpfs, Fs::disk})
        for (FileSendStrategy s : zcio::all_file_send_strategies) v.push_back({s, fs});
    return v;
}
INSTANTIATE_TEST_SUITE_P(Files, EveryStrategy, ::testing::ValuesIn(exact_cases()), [](const auto& info) {
    return name_of(info.param.strategy) + "_" + zcio::test::to_string(info.param.fs);
});

// ---- EOF and ranges past it -----------------------------------------------------------------------

TEST(FileSenderRange, ARangePastTheEndFailsAtOnceAndAnEmptyRangeSendsNothing) {
    zcio::test::TestDir dir(Fs::tmpfs);
    zcio::test::write_pattern(dir.file("src"), 0, 100000);
    const zcio::File f = zcio::File::open(dir.file("src"));
    Rig rig;
    std::vector<unsigned char> got;
    for (FileSendStrategy s : zcio::all_file_send_strategies) {
        auto r = send_tcp(rig, f, {50000, 50001}, {.strategy = s}, got);
        EXPECT_EQ(r.error, -ENODATA) << zcio::to_string(s);
        EXPECT_NE(r.message.find("past the end"), std::string::npos) << r.message;
        EXPECT_EQ(r.bytes_sent, 0u);
        EXPECT_TRUE(got.empty());
        r = send_tcp(rig, f, {100000, zcio::FileRange::to_eof}, {.strategy = s}, got);  // at EOF: nothing
        EXPECT_EQ(r.error, 0) << r.message;
        EXPECT_TRUE(got.empty());
    }
    EXPECT_TRUE(rig.all_home());
}

// ---- UDP: one datagram per chunk ------------------------------------------------------------------

TEST(FileSenderUdp, EveryStrategySendsOneDatagramPerChunkInFileOrder) {
    zcio::test::TestDir dir(Fs::tmpfs);
    const std::uint64_t size = 40 * 8192 + 1000;
    zcio::test::write_pattern(dir.file("src"), 0, size);
    const zcio::File f = zcio::File::open(dir.file("src"));
    Rig rig;
    for (FileSendStrategy s : zcio::all_file_send_strategies) {
        auto pair = zcio::test::udp_loopback_pair();
        int big = 16 << 20;  // zero-copy datagrams' truesize is larger: room for all of them (root)
        ::setsockopt(pair.receiver.get(), SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
        zcio::FileSendReport r;
        {
            zcio::FileSender tx(rig.engine, rig.arena, pair.sender.get());
            r = tx.send(f, {}, {.strategy = s, .chunk = 8192, .depth = 8});
        }
        EXPECT_EQ(r.error, 0) << zcio::to_string(s) << ": " << r.message;
        // Each datagram is one whole chunk (read-zc's pairs may leave in any order: datagrams
        // have none); every chunk arrives exactly once.
        // (Loopback delivers from a softirq backlog: wait a little for the last ones.)
        const timeval wait{1, 0};
        ::setsockopt(pair.receiver.get(), SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
        std::vector<unsigned char> buf(65536);
        std::map<std::uint64_t, int> seen;
        int datagrams = 0;
        for (ssize_t n; datagrams < 41 && (n = ::recv(pair.receiver.get(), buf.data(), buf.size(), 0)) > 0;
             ++datagrams) {
            bool found = false;
            for (std::uint64_t off = 0; off < size && !found; off += 8192) {
                const auto len = std::min<std::uint64_t>(8192, size - off);
                found = static_cast<std::uint64_t>(n) == len &&
                        std::equal(buf.begin(), buf.begin() + n, zcio::test::pattern(off, len).begin());
                if (found) ++seen[off];
            }
            EXPECT_TRUE(found) << zcio::to_string(s) << ": datagram " << datagrams << " is no chunk of the file";
        }
        EXPECT_EQ(seen.size(), 41u) << zcio::to_string(s);
        for (const auto& [off, count] : seen) EXPECT_EQ(count, 1) << zcio::to_string(s) << " chunk at " << off;
        EXPECT_EQ(datagrams, 41) << zcio::to_string(s);
    }
    EXPECT_TRUE(rig.all_home());
}

// ---- sparse files past 4 GiB ----------------------------------------------------------------------

TEST(FileSenderSparse, BytesPastFourGiBArriveFromTheirOwnOffsets) {
    for (Fs fs : {Fs::tmpfs, Fs::disk}) {
        if (zcio::test::TestDir::unavailable(fs)) continue;
        zcio::test::TestDir dir(fs);
        const std::uint64_t at = (5ull << 30) + 4096 + 17;  // past 4 GiB, off page alignment
        zcio::test::write_pattern(dir.file("sparse"), at, 300000);
        const zcio::File f = zcio::File::open(dir.file("sparse"));
        Rig rig;
        for (FileSendStrategy s : zcio::all_file_send_strategies) {
            std::vector<unsigned char> got;
            const zcio::FileRange range{at - 5000, 305000};  // 5000 bytes of hole, then data
            auto r = send_tcp(rig, f, range, {.strategy = s}, got);
            EXPECT_EQ(r.error, 0) << r.message;
            ASSERT_EQ(got.size(), range.length) << zcio::to_string(s) << " on " << zcio::test::to_string(fs);
            EXPECT_EQ(std::count(got.begin(), got.begin() + 5000, 0), 5000);
            EXPECT_TRUE(std::equal(got.begin() + 5000, got.end(), zcio::test::pattern(at, 300000).begin()))
                << zcio::to_string(s) << " on " << zcio::test::to_string(fs);
        }
    }
}

// ---- the hook ---------------------------------------------------------------------------------------

TEST(FileSenderHook, SeesEveryBufferInFileOrderAndItsRewriteIsWhatArrives) {
    zcio::test::TestDir dir(Fs::tmpfs);
    const std::uint64_t size = (2u << 20) + 333;
    zcio::test::write_pattern(dir.file("src"), 0, size);
    const zcio::File f = zcio::File::open(dir.file("src"));
    Rig rig;
    for (FileSendStrategy s : {FileSendStrategy::read_zc, FileSendStrategy::read_send, FileSendStrategy::automatic}) {
        std::uint64_t expect_off = 0;
        bool in_order = true;
        zcio::FileSendOptions o{.strategy = s};
        o.hook = [&](std::span<std::byte> bytes, std::uint64_t off) {
            in_order = in_order && off == expect_off;
            expect_off = off + bytes.size();
            for (auto& b : bytes) b ^= std::byte{0x5a};  // every byte seen, and rewritten
            return 0;
        };
        std::vector<unsigned char> got;
        auto r = send_tcp(rig, f, {}, std::move(o), got);
        EXPECT_EQ(r.error, 0) << r.message;
        EXPECT_TRUE(in_order) << zcio::to_string(s);
        EXPECT_EQ(expect_off, size);
        auto want = zcio::test::pattern(0, size);
        for (auto& b : want) b ^= 0x5a;
        EXPECT_EQ(got, want) << zcio::to_string(s);
        if (s == FileSendStrategy::automatic) {
            EXPECT_EQ(r.used, FileSendStrategy::read_zc) << r.why;
        }
    }
    for (FileSendStrategy s : {FileSendStrategy::sendfile, FileSendStrategy::splice}) {
        zcio::FileSendOptions o{.strategy = s};
        o.hook = [](std::span<std::byte>, std::uint64_t) { return 0; };
        std::vector<unsigned char> got;
        auto r = send_tcp(rig, f, {}, std::move(o), got);
        EXPECT_EQ(r.error, -EINVAL);
        EXPECT_NE(r.message.find("hook"), std::string::npos) << r.message;
        EXPECT_TRUE(got.empty());
    }
    // A hook that says no stops the transfer with its error, after the bytes before it.
    zcio::FileSendOptions o{.strategy = FileSendStrategy::read_zc, .depth = 4};
    o.hook = [](std::span<std::byte>, std::uint64_t off) { return off >= (1u << 20) ? -EBADMSG : 0; };
    std::vector<unsigned char> got;
    auto r = send_tcp(rig, f, {}, std::move(o), got);
    EXPECT_EQ(r.error, -EBADMSG);
    EXPECT_EQ(got.size(), 1u << 20);
    EXPECT_TRUE(rig.all_home());
}

// ---- O_DIRECT ---------------------------------------------------------------------------------------

TEST(FileSenderDirect, ReadsBypassThePageCacheAndStillArriveByteExact) {
    if (auto why = zcio::test::TestDir::unavailable(Fs::disk)) GTEST_SKIP() << *why;
    zcio::test::TestDir dir(Fs::disk);
    const std::uint64_t size = (2u << 20) + 5000;  // not a whole number of blocks
    zcio::test::write_pattern(dir.file("src"), 0, size);
    zcio::File f;
    try {
        f = zcio::File::open(dir.file("src"), {.direct = true});
    } catch (const zcio::SetupError& e) {
        GTEST_SKIP() << "this file system refuses O_DIRECT: " << e.what();
    }
    Rig rig;
    for (FileSendStrategy s : {FileSendStrategy::read_zc, FileSendStrategy::read_send, FileSendStrategy::automatic}) {
        for (zcio::FileRange range : {zcio::FileRange{}, zcio::FileRange{8192, 100000}, zcio::FileRange{777, 300001}}) {
            std::vector<unsigned char> got;
            auto r = send_tcp(rig, f, range, {.strategy = s, .chunk = 60000}, got);
            EXPECT_EQ(r.error, 0) << r.message;
            EXPECT_TRUE(r.direct);
            EXPECT_EQ(r.chunk, 57344u);  // rounded down to whole blocks
            const std::uint64_t len = range.length == zcio::FileRange::to_eof ? size : range.length;
            EXPECT_EQ(got, zcio::test::pattern(range.offset, len)) << zcio::to_string(s) << " @" << range.offset;
            if (s == FileSendStrategy::automatic) {
                EXPECT_EQ(r.used, FileSendStrategy::read_zc) << r.why;
            }
        }
    }
    EXPECT_TRUE(rig.all_home());
}

// ---- a file that shrinks while it is sent -------------------------------------------------------------

TEST(FileSenderTruncation, AFileCutShortMidSendEndsWithENODATAAndAPrefix) {
    zcio::test::TestDir dir(Fs::tmpfs);
    const std::uint64_t size = 8u << 20;
    Rig rig;
    for (FileSendStrategy s : zcio::all_file_send_strategies) {
        zcio::test::write_pattern(dir.file("src"), 0, size);
        const zcio::File f = zcio::File::open(dir.file("src"));
        auto pair = zcio::test::tcp_loopback_pair(64 << 10);
        zcio::test::StreamCollector rx(std::move(pair.receiver), 1 << 20);  // reads 1 MB, then waits
        std::thread cutter([&] {
            while (rx.bytes() < (1u << 20)) ::usleep(1000);
            ::usleep(20000);
            ::truncate(dir.file("src").c_str(), 3 << 20);
            rx.resume();
        });
        zcio::FileSendReport r;
        {
            zcio::FileSender tx(rig.engine, rig.arena, pair.sender.get());
            r = tx.send(f, {}, {.strategy = s, .depth = 8});
        }
        cutter.join();
        ::shutdown(pair.sender.get(), SHUT_WR);
        const auto& got = rx.join();
        EXPECT_EQ(r.error, -ENODATA) << zcio::to_string(s) << ": " << r.message;
        EXPECT_NE(r.message.find("shrank"), std::string::npos) << r.message;
        EXPECT_EQ(r.bytes_sent, got.size()) << zcio::to_string(s);
        EXPECT_GE(got.size(), 1u << 20);
        EXPECT_LT(got.size(), size);
        EXPECT_TRUE(std::equal(got.begin(), got.end(), zcio::test::pattern(0, got.size()).begin()))
            << zcio::to_string(s) << ": not a prefix of the file";
        EXPECT_TRUE(rig.all_home()) << zcio::to_string(s);
    }
}

// ---- files that cannot be opened ---------------------------------------------------------------------

std::string open_error(const std::string& path, zcio::FileOpen how = {}) {
    try {
        zcio::File::open(path, how);
    } catch (const zcio::SetupError& e) {
        return e.what();
    }
    return "";
}

TEST(FileOpenErrors, MissingFileDirectoryAndDeviceSayWhatIsWrong) {
    zcio::test::TestDir dir(Fs::tmpfs);
    EXPECT_NE(open_error(dir.file("nope")).find("no such file"), std::string::npos) << open_error(dir.file("nope"));
    EXPECT_NE(open_error(dir.path()).find("is a directory"), std::string::npos) << open_error(dir.path());
    EXPECT_NE(open_error("/dev/null").find("not a regular file"), std::string::npos);
    zcio::test::write_pattern(dir.file("f"), 0, 10);
    const std::string direct = open_error(dir.file("f"), {.direct = true});
    if (!direct.empty()) {  // tmpfs may allow it
        EXPECT_NE(direct.find("O_DIRECT"), std::string::npos) << direct;
    }
}

TEST(FileOpenErrors, NoPermissionNamesTheModeAndTheUser) {
    if (!zcio::test::running_as_root()) GTEST_SKIP() << "needs root to drop to an unprivileged uid";
    zcio::test::TestDir dir(Fs::tmpfs);
    zcio::test::write_pattern(dir.file("secret"), 0, 100);
    ::chmod(dir.file("secret").c_str(), 0600);
    ::chmod(dir.path().c_str(), 0755);
    // In a child that gives up root (as tests/test_faults.cpp does for RLIMIT_MEMLOCK).
    int pipefd[2];
    ASSERT_EQ(::pipe(pipefd), 0);
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::close(pipefd[0]);
        if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(10);
        const std::string msg = open_error(dir.file("secret"));
        ::write(pipefd[1], msg.data(), msg.size());
        ::_exit(msg.empty() ? 2 : 0);
    }
    ::close(pipefd[1]);
    std::string msg;
    char buf[512];
    for (ssize_t n; (n = ::read(pipefd[0], buf, sizeof buf)) > 0;) msg.append(buf, static_cast<std::size_t>(n));
    ::close(pipefd[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0) << "the unprivileged child opened a 0600 root file";
    EXPECT_NE(msg.find("EACCES"), std::string::npos) << msg;
    EXPECT_NE(msg.find("mode 0600"), std::string::npos) << msg;
    EXPECT_NE(msg.find("uid 65534"), std::string::npos) << msg;
}

// ---- faults: peer reset, a stalled peer, a transfer torn down mid-way -----------------------------------

TEST(FileSenderFaults, PeerResetEndsTheTransferWithTheErrorAndEveryBufferHome) {
    zcio::test::TestDir dir(Fs::tmpfs);
    zcio::test::write_pattern(dir.file("src"), 0, 16u << 20);
    const zcio::File f = zcio::File::open(dir.file("src"));
    Rig rig;
    for (FileSendStrategy s : zcio::all_file_send_strategies) {
        auto pair = zcio::test::tcp_loopback_pair();
        zcio::test::StreamChecker checker(std::move(pair.receiver));
        checker.reset_after(1 << 20);
        checker.resume();
        zcio::FileSendReport r;
        {
            zcio::FileSender tx(rig.engine, rig.arena, pair.sender.get());
            r = tx.send(f, {}, {.strategy = s, .stall_timeout = 10s});
            EXPECT_EQ(tx.in_flight(), 0u);
        }
        checker.join();
        EXPECT_TRUE(r.error == -ECONNRESET || r.error == -EPIPE) << zcio::to_string(s) << ": " << r.message;
        EXPECT_LT(r.bytes_sent, 16u << 20);
        EXPECT_EQ(checker.first_mismatch(), UINT64_MAX);
        EXPECT_TRUE(rig.all_home()) << zcio::to_string(s);
        EXPECT_EQ(rig.engine.ops_in_use(), 0u);
    }
}

TEST(FileSenderFaults, AStalledPeerEndsWithETIMEDOUTNotAHang) {
    zcio::test::TestDir dir(Fs::tmpfs);
    zcio::test::write_pattern(dir.file("src"), 0, 16u << 20);
    const zcio::File f = zcio::File::open(dir.file("src"));
    Rig rig;
    for (FileSendStrategy s : {FileSendStrategy::read_zc, FileSendStrategy::sendfile}) {
        auto pair = zcio::test::tcp_loopback_pair(64 << 10);
        zcio::test::StreamCollector rx(std::move(pair.receiver), 0);  // never reads until the end
        zcio::FileSendReport r;
        {
            zcio::FileSender tx(rig.engine, rig.arena, pair.sender.get());
            const auto t0 = std::chrono::steady_clock::now();
            r = tx.send(f, {}, {.strategy = s, .stall_timeout = 300ms});
            EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
            EXPECT_EQ(r.error, -ETIMEDOUT) << zcio::to_string(s) << ": " << r.message;
            EXPECT_LT(r.bytes_sent, 16u << 20);
            // A second send on the same socket says the first is still out, rather than mixing.
            if (tx.in_flight() > 0) {
                EXPECT_EQ(tx.send(f, {}, {.strategy = s}).error, -EBUSY);
            }
            // Zero-copy pages queued in the socket stay the kernel's until the peer takes them
            // (a peer that never does: the engine's quarantine, tests/test_faults.cpp). This one
            // wakes up; then ~FileSender cancels the rest and every buffer comes home.
            rx.resume();
        }
        EXPECT_TRUE(rig.all_home()) << zcio::to_string(s);
        EXPECT_EQ(rig.engine.ops_in_use(), 0u);
    }
}

TEST(FileSenderFaults, AHookThatThrowsMidTransferLeavesNothingInFlightAtScopeExit) {
    zcio::test::TestDir dir(Fs::tmpfs);
    zcio::test::write_pattern(dir.file("src"), 0, 8u << 20);
    const zcio::File f = zcio::File::open(dir.file("src"));
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = slab, .slab_count = 64});
    auto pair = zcio::test::tcp_loopback_pair();
    zcio::test::StreamCollector rx(std::move(pair.receiver));
    bool thrown = false;
    try {
        zcio::SendEngine engine(ring);
        zcio::FileSender tx(engine, arena, pair.sender.get());
        zcio::FileSendOptions o{.strategy = FileSendStrategy::read_zc, .depth = 16};
        o.hook = [](std::span<std::byte>, std::uint64_t off) -> int {
            if (off >= (2u << 20)) throw std::runtime_error("checksum service went away");
            return 0;
        };
        tx.send(f, {}, o);
    } catch (const std::runtime_error& e) {
        thrown = std::string(e.what()) == "checksum service went away";
    }
    // Sender, then engine, destroyed mid-transfer by the unwinding: every buffer is home.
    EXPECT_TRUE(thrown);
    EXPECT_EQ(arena.available(), arena.slab_count());
    EXPECT_EQ(arena.stats().quarantined, 0u);
    ::shutdown(pair.sender.get(), SHUT_WR);
    const auto& got = rx.join();
    EXPECT_TRUE(std::equal(got.begin(), got.end(), zcio::test::pattern(0, got.size()).begin()));
}

}  // namespace
