// Pure completion parsing and refill-ring logic: crafted completions and fake rings, no NIC.
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <vector>

#include "uring_compat.hpp"
#include "zcio/buffer_ring.hpp"
#include "zcio/receiver.hpp"
#include "zcio/zcrx.hpp"

namespace {

TEST(RecvParsing, BufferIdComesFromTheUpperSixteenBitsOnlyWithTheBufferFlag) {
    EXPECT_FALSE(zcio::cqe_buffer_id(IORING_CQE_F_MORE).has_value());
    EXPECT_FALSE(zcio::cqe_buffer_id(7U << IORING_CQE_BUFFER_SHIFT).has_value());
    const auto bid = zcio::cqe_buffer_id(IORING_CQE_F_BUFFER | IORING_CQE_F_MORE | (0xbeefU << 16));
    ASSERT_TRUE(bid.has_value());
    EXPECT_EQ(*bid, 0xbeef);
}

TEST(RecvParsing, BundleFillsEachBufferBeforeTheNextAndWrapsAroundTheRing) {
    std::vector<std::pair<unsigned, unsigned>> seen;
    // 3.5 buffers of 4096 starting at bid 6 of an 8-buffer ring: 6, 7, 0, 1.
    zcio::for_each_bundle_buffer(6, 4096 * 3 + 2048, 4096, 8,
                                 [&](std::uint16_t bid, std::uint32_t len) { seen.emplace_back(bid, len); });
    const std::vector<std::pair<unsigned, unsigned>> want{{6, 4096}, {7, 4096}, {0, 4096}, {1, 2048}};
    EXPECT_EQ(seen, want);
    EXPECT_EQ(zcio::bundle_buffer_count(4096, 4096), 1U);
    EXPECT_EQ(zcio::bundle_buffer_count(4097, 4096), 2U);
    // A completion that carries a buffer but no bytes still consumed that buffer.
    EXPECT_EQ(zcio::bundle_buffer_count(0, 4096), 1U);
}

// Found by fuzz/fuzz_completions: with buffers above 2 GiB, res + buffer_size - 1 overflowed u32,
// so a 128 MiB completion into a ~4 GiB buffer counted 0 buffers and ProvidedBufferRing::take
// (bundle) never gave that buffer back. Fixed; this is the regression test.
TEST(RecvParsing, BundleCountDoesNotOverflowAbove2GiBBuffers) {
    EXPECT_EQ(zcio::bundle_buffer_count(134243839, 4280489959U), 1U);
    unsigned calls = 0;
    zcio::for_each_bundle_buffer(0, 134243839, 4280489959U, 1, [&](std::uint16_t, std::uint32_t len) {
        ++calls;
        EXPECT_EQ(len, 134243839U);
    });
    EXPECT_EQ(calls, 1U);
}

// A 32-byte RECV_ZC completion as the kernel writes it.
io_uring_cqe* craft_zcrx_cqe(std::array<std::uint64_t, 4>& mem, std::int32_t res, std::uint64_t zoff) {
    auto* cqe = reinterpret_cast<io_uring_cqe*>(mem.data());
    cqe->user_data = 0x1234;
    cqe->res = res;
    cqe->flags = IORING_CQE_F_MORE;
    zcio::abi::zcrx_cqe z{zoff, 0};
    std::memcpy(&mem[2], &z, sizeof z);
    return cqe;
}

TEST(RecvParsing, ZcrxCompletionGivesAreaOffsetAndLength) {
    std::array<std::uint64_t, 4> mem{};
    const std::uint64_t off = (std::uint64_t{3} << 48) | 0x5000 | 0x123;
    const io_uring_cqe* cqe = craft_zcrx_cqe(mem, 1448, off);
    const zcio::ZcrxSlice s = zcio::zcrx_slice(*cqe);
    EXPECT_EQ(s.area, 3);
    EXPECT_EQ(s.offset, 0x5123U);
    EXPECT_EQ(s.len, 1448U);
    // An error or EOF completion carries no payload.
    EXPECT_EQ(zcio::zcrx_slice(*craft_zcrx_cqe(mem, -104, off)).len, 0U);
    EXPECT_EQ(zcio::zcrx_slice(*craft_zcrx_cqe(mem, 0, off)).len, 0U);
}

// A refill ring laid out like the kernel's: head and tail words, then the entries.
struct FakeRefillRing {
    static constexpr std::uint32_t entries = 8;
    static constexpr std::uint32_t head_off = 0, tail_off = 64, rqes_off = 128;
    alignas(64) std::array<std::byte, 128 + entries * sizeof(zcio::abi::zcrx_rqe)> mem{};
    std::uint32_t& head() { return *reinterpret_cast<std::uint32_t*>(mem.data() + head_off); }
    std::uint32_t tail() { return *reinterpret_cast<std::uint32_t*>(mem.data() + tail_off); }
    zcio::abi::zcrx_rqe rqe(std::uint32_t i) {
        zcio::abi::zcrx_rqe r;
        std::memcpy(&r, mem.data() + rqes_off + (i % entries) * sizeof r, sizeof r);
        return r;
    }
};

TEST(RecvParsing, RefillRingWritesTokenOffsetAndLengthThenPublishesTheTail) {
    FakeRefillRing fake;
    const std::uint64_t token = std::uint64_t{2} << 48;
    zcio::RefillRing ring(fake.mem.data(), fake.head_off, fake.tail_off, fake.rqes_off, fake.entries, token);
    EXPECT_EQ(ring.free_entries(), 8U);
    // An offset as it came from a completion, area bits and all: the area bits are replaced.
    ASSERT_TRUE(ring.push((std::uint64_t{5} << 48) | 0x3000, 4096));
    EXPECT_EQ(fake.tail(), 1U) << "tail not published";
    EXPECT_EQ(fake.rqe(0).off, token | 0x3000);
    EXPECT_EQ(fake.rqe(0).len, 4096U);
    EXPECT_EQ(fake.rqe(0).pad, 0U);
}

TEST(RecvParsing, RefillRingRefusesWhenFullAndWrapsOnceTheKernelConsumes) {
    FakeRefillRing fake;
    zcio::RefillRing ring(fake.mem.data(), fake.head_off, fake.tail_off, fake.rqes_off, fake.entries, 0);
    for (std::uint32_t i = 0; i < 8; ++i) ASSERT_TRUE(ring.push(i * 4096, 100 + i));
    EXPECT_EQ(ring.free_entries(), 0U);
    EXPECT_FALSE(ring.push(0x99000, 1)) << "overwrote an entry the kernel has not read";
    EXPECT_EQ(fake.tail(), 8U);
    EXPECT_EQ(fake.rqe(0).off, 0U);

    fake.head() = 5;  // the kernel consumed five
    EXPECT_EQ(ring.free_entries(), 5U);
    for (std::uint32_t i = 8; i < 13; ++i) ASSERT_TRUE(ring.push(i * 4096, 100 + i));
    EXPECT_FALSE(ring.push(0x99000, 1));
    EXPECT_EQ(fake.tail(), 13U);
    for (std::uint32_t i = 8; i < 13; ++i) {  // slots 0..4 reused
        EXPECT_EQ(fake.rqe(i).off, i * 4096U) << i;
        EXPECT_EQ(fake.rqe(i).len, 100 + i) << i;
    }
    EXPECT_EQ(fake.rqe(5).len, 105U) << "an unconsumed entry was overwritten";
}

TEST(RecvParsing, RefillRingTailSurvivesU32Wraparound) {
    FakeRefillRing fake;
    // The kernel's counters are free-running u32s: start just below the wrap.
    fake.head() = 0xfffffffeU;
    std::memcpy(fake.mem.data() + fake.tail_off, &fake.head(), 4);
    zcio::RefillRing ring(fake.mem.data(), fake.head_off, fake.tail_off, fake.rqes_off, fake.entries, 0);
    EXPECT_EQ(ring.free_entries(), 8U);
    for (std::uint32_t i = 0; i < 8; ++i) ASSERT_TRUE(ring.push(i, 1));
    EXPECT_EQ(fake.tail(), 6U);
    EXPECT_FALSE(ring.push(9, 1));
    EXPECT_EQ(fake.rqe(0xfffffffeU).off, 0U);
    EXPECT_EQ(fake.rqe(5).off, 7U);
}

TEST(RecvParsing, StrategyNamesRoundTrip) {
    for (auto s : {zcio::RecvStrategy::plain, zcio::RecvStrategy::multishot, zcio::RecvStrategy::bundle,
                   zcio::RecvStrategy::zcrx, zcio::RecvStrategy::automatic})
        EXPECT_EQ(zcio::parse_recv_strategy(zcio::to_string(s)), s);
    EXPECT_EQ(zcio::to_string(zcio::RecvStrategy::automatic), "auto");
    EXPECT_FALSE(zcio::parse_recv_strategy("fast").has_value());
}

}  // namespace
