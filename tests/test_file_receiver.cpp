// Issue 11, socket -> file and socket -> socket: every FileReceiver strategy writes exactly what
// was sent (tmpfs and disk, at offsets past 4 GiB, with fsync), a full file system and a peer reset
// end with a clear error and the bytes written so far, and the Relay sends every received buffer on
// and puts each back in its receive ring exactly once.
#include "zcio/arena_recv_ring.hpp"
#include "zcio/buffer_arena.hpp"
#include "zcio/error.hpp"
#include "zcio/file.hpp"
#include "zcio/file_receiver.hpp"
#include "zcio/relay.hpp"
#include "zcio/ring.hpp"
#include "zcio/send_engine.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "file_fixtures.hpp"
#include "net_fixtures.hpp"

namespace {

using zcio::FileRecvStrategy;
using zcio::test::Fs;

std::string name_of(FileRecvStrategy s) {
    std::string n = zcio::to_string(s);
    for (auto& c : n)
        if (c == '-') c = '_';
    return n;
}

// Sends pattern bytes [0, size) in uneven pieces, then EOF; or resets the connection after
// `reset_after` bytes, closing `fd` (the caller must then release() its handle).
std::thread pattern_sender(int fd, std::uint64_t size, std::uint64_t reset_after = UINT64_MAX) {
    return std::thread([fd, size, reset_after] {
        std::uint64_t off = 0;
        std::size_t piece = 1000;
        while (off < size && off < reset_after) {
            const auto n = std::min<std::uint64_t>({piece, size - off, reset_after - off});
            const auto v = zcio::test::pattern(off, n);
            const ssize_t r = ::send(fd, v.data(), v.size(), MSG_NOSIGNAL);
            if (r <= 0) return;
            off += static_cast<std::uint64_t>(r);
            piece = piece * 3 % 200000 + 1;  // 1 B .. 200 KB
        }
        if (reset_after != UINT64_MAX) {  // RST: linger 0, then close (the caller releases its fd)
            const linger l{1, 0};
            ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
            ::close(fd);
        } else {
            ::shutdown(fd, SHUT_WR);
        }
    });
}

struct Rig {
    zcio::Ring ring;
    zcio::BufferArena arena{ring, {.slab_size = 64 << 10, .slab_count = 128}};
    bool all_home() const { return arena.available() == arena.slab_count(); }
};

struct RecvCase {
    FileRecvStrategy strategy;
    Fs fs;
};
class EveryRecvStrategy : public ::testing::TestWithParam<RecvCase> {};

TEST_P(EveryRecvStrategy, WritesExactlyWhatWasSentAtItsOffset) {
    const auto [strategy, fs] = GetParam();
    if (auto why = zcio::test::TestDir::unavailable(fs)) GTEST_SKIP() << *why;
    zcio::test::TestDir dir(fs);
    Rig rig;
    zcio::FileReceiver rx(rig.ring, rig.arena);
    const std::uint64_t size = (3u << 20) + 4321;
    for (std::uint64_t at : {std::uint64_t{0}, std::uint64_t{(5ull << 30) + 17}}) {  // and past 4 GiB, sparse below
        auto pair = zcio::test::tcp_loopback_pair();
        std::thread tx = pattern_sender(pair.sender.get(), size);
        const zcio::File out = zcio::File::open(dir.file("out"), {.write = true, .create = true, .truncate = true});
        const auto r = rx.receive(pair.receiver.get(), out, {.strategy = strategy, .offset = at, .fsync = true});
        tx.join();
        EXPECT_EQ(r.error, 0) << r.message;
        EXPECT_EQ(r.bytes_received, size);
        EXPECT_EQ(r.bytes_written, size);
        EXPECT_TRUE(r.synced);
        EXPECT_EQ(out.size(), static_cast<std::int64_t>(at + size));
        std::vector<unsigned char> got(size);
        ASSERT_EQ(::pread(out.fd(), got.data(), size, static_cast<off_t>(at)), static_cast<ssize_t>(size));
        EXPECT_EQ(zcio::test::hash(got), zcio::test::hash(zcio::test::pattern(0, size)))
            << zcio::to_string(strategy) << " at " << at;
        if (strategy == FileRecvStrategy::recv_write_fixed) {
            EXPECT_GE(r.write_requests, size / (64 << 10));  // a WRITE_FIXED per buffer, at most 64 KiB each
            EXPECT_GT(r.recv_completions, 0u);
        }
    }
    EXPECT_TRUE(rig.all_home());
}

std::vector<RecvCase> recv_cases() {
    std::vector<RecvCase> v;
    for (Fs fs : {Fs::tmpfs, Fs::disk})
        for (FileRecvStrategy s : zcio::all_file_recv_strategies) v.push_back({s, fs});
    return v;
}
INSTANTIATE_TEST_SUITE_P(Files, EveryRecvStrategy, ::testing::ValuesIn(recv_cases()), [](const auto& info) {
    return name_of(info.param.strategy) + "_" + zcio::test::to_string(info.param.fs);
});

TEST(FileReceiverFaults, AFullFileSystemEndsWithENOSPCAndTheBytesWrittenSoFar) {
    if (auto why = zcio::test::SmallTmpfs::unavailable()) GTEST_SKIP() << *why;
    zcio::test::SmallTmpfs small(1 << 20);
    Rig rig;
    zcio::FileReceiver rx(rig.ring, rig.arena);
    for (FileRecvStrategy s : zcio::all_file_recv_strategies) {
        auto pair = zcio::test::tcp_loopback_pair();
        std::thread tx = pattern_sender(pair.sender.get(), 4u << 20);
        const zcio::File out =
            zcio::File::open(small.path() + "/out", {.write = true, .create = true, .truncate = true});
        const auto r = rx.receive(pair.receiver.get(), out, {.strategy = s});
        pair.receiver.reset();  // unread data: the close resets, and the sender's next send fails
        tx.join();
        EXPECT_EQ(r.error, -ENOSPC) << zcio::to_string(s) << ": " << r.message;
        EXPECT_NE(r.message.find("full"), std::string::npos) << r.message;
        EXPECT_NE(r.message.find(std::to_string(r.bytes_written) + " bytes written so far"), std::string::npos)
            << r.message;
        EXPECT_GT(r.bytes_written, 0u);
        EXPECT_LE(r.bytes_written, 1u << 20);
        EXPECT_LE(out.size(), 1 << 20);
        EXPECT_TRUE(rig.all_home()) << zcio::to_string(s);
        ::unlink((small.path() + "/out").c_str());
    }
}

TEST(FileReceiverFaults, APeerResetEndsWithItsErrorAndNothingInFlight) {
    zcio::test::TestDir dir(Fs::tmpfs);
    Rig rig;
    zcio::FileReceiver rx(rig.ring, rig.arena);
    for (FileRecvStrategy s : zcio::all_file_recv_strategies) {
        auto pair = zcio::test::tcp_loopback_pair();
        std::thread tx = pattern_sender(pair.sender.get(), 8u << 20, 1u << 20);
        const zcio::File out = zcio::File::open(dir.file("out"), {.write = true, .create = true, .truncate = true});
        const auto r = rx.receive(pair.receiver.get(), out, {.strategy = s});
        tx.join();
        (void)pair.sender.release();  // closed by the sender thread
        EXPECT_EQ(r.error, -ECONNRESET) << zcio::to_string(s) << ": " << r.message;
        EXPECT_LE(r.bytes_written, 1u << 20);
        EXPECT_EQ(r.bytes_written, r.bytes_received) << zcio::to_string(s);
        const auto got = zcio::test::read_file(dir.file("out"));
        EXPECT_TRUE(std::equal(got.begin(), got.end(), zcio::test::pattern(0, got.size()).begin()));
        EXPECT_TRUE(rig.all_home()) << zcio::to_string(s);
    }
}

TEST(FileReceiverFaults, AnODirectFileIsRefusedWithTheReason) {
    if (auto why = zcio::test::TestDir::unavailable(Fs::disk)) GTEST_SKIP() << *why;
    zcio::test::TestDir dir(Fs::disk);
    zcio::File out;
    try {
        out = zcio::File::open(dir.file("out"), {.write = true, .create = true, .direct = true});
    } catch (const zcio::SetupError& e) {
        GTEST_SKIP() << e.what();
    }
    Rig rig;
    zcio::FileReceiver rx(rig.ring, rig.arena);
    auto pair = zcio::test::tcp_loopback_pair();
    const auto r = rx.receive(pair.receiver.get(), out);
    EXPECT_EQ(r.error, -EINVAL);
    EXPECT_NE(r.message.find("O_DIRECT"), std::string::npos) << r.message;
}

// ---- the relay --------------------------------------------------------------------------------------

TEST(Relay, EveryBufferIsSentOnByteExactAndBackInTheRingExactlyOnce) {
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = 16 << 10, .slab_count = 64});
    zcio::SendEngine engine(ring);
    auto in = zcio::test::tcp_loopback_pair();
    auto out = zcio::test::tcp_loopback_pair();
    const std::uint64_t size = 8u << 20;
    zcio::test::StreamChecker checker(std::move(out.receiver));
    checker.resume();
    std::thread tx = pattern_sender(in.sender.get(), size);
    zcio::RelayReport r;
    {
        zcio::Relay relay(engine, arena, in.receiver.get(), out.sender.get(), {.buffers = 32});
        r = relay.run();
        const zcio::ArenaRecvRing& ring_buffers = relay.buffers();
        EXPECT_EQ(ring_buffers.held(), 0u);
        EXPECT_EQ(ring_buffers.refused(), 0u);
        EXPECT_EQ(ring_buffers.taken(), r.buffers);
        EXPECT_GT(r.buffers, size / (16 << 10) - 1);  // many buffers, each reused many times
        for (std::uint32_t bid = 0; bid < ring_buffers.buffer_count(); ++bid) {
            EXPECT_EQ(ring_buffers.taken_by_id()[bid], ring_buffers.recycled_by_id()[bid]) << "buffer " << bid;
            EXPECT_GT(ring_buffers.taken_by_id()[bid], 1u) << "buffer " << bid;
        }
    }
    tx.join();
    ::shutdown(out.sender.get(), SHUT_WR);
    checker.join();
    EXPECT_EQ(r.error, 0) << r.message;
    EXPECT_EQ(r.bytes_received, size);
    EXPECT_EQ(r.bytes_sent, size);
    EXPECT_EQ(r.zero_copy + r.copied, r.buffers);  // every send's release said what the kernel did
    EXPECT_EQ(checker.bytes(), size);
    EXPECT_EQ(checker.first_mismatch(), UINT64_MAX);
    EXPECT_EQ(arena.available(), arena.slab_count());
    EXPECT_EQ(engine.ops_in_use(), 0u);
}

TEST(Relay, ADestinationResetEndsItWithTheErrorAndEveryBufferBackInTheRing) {
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = 16 << 10, .slab_count = 64});
    zcio::SendEngine engine(ring);
    auto in = zcio::test::tcp_loopback_pair();
    auto out = zcio::test::tcp_loopback_pair();
    zcio::test::StreamChecker checker(std::move(out.receiver));
    checker.reset_after(1 << 20);
    checker.resume();
    std::thread tx = pattern_sender(in.sender.get(), 16u << 20);
    zcio::RelayReport r;
    {
        zcio::Relay relay(engine, arena, in.receiver.get(), out.sender.get(), {.buffers = 32});
        r = relay.run();
        EXPECT_EQ(relay.buffers().held(), 0u);
        EXPECT_EQ(relay.buffers().taken(), relay.buffers().recycled());
    }
    in.receiver.reset();  // unread data: the close resets, and the source's sender stops
    tx.join();
    checker.join();
    EXPECT_TRUE(r.error == -ECONNRESET || r.error == -EPIPE) << r.message;
    EXPECT_EQ(arena.available(), arena.slab_count());
    EXPECT_EQ(engine.ops_in_use(), 0u);
}

}  // namespace
