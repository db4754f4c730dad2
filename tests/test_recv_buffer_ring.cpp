// ProvidedBufferRing bookkeeping, driven by crafted completions against a really registered ring.
#include <gtest/gtest.h>

#include <vector>

#include "uring_compat.hpp"
#include "zcio/buffer_ring.hpp"
#include "zcio/error.hpp"

namespace {

io_uring_cqe cqe_for(std::uint16_t bid, std::int32_t res, std::uint32_t extra_flags = 0) {
    io_uring_cqe c{};
    c.res = res;
    c.flags = IORING_CQE_F_BUFFER | IORING_CQE_F_MORE | extra_flags | (std::uint32_t{bid} << IORING_CQE_BUFFER_SHIFT);
    return c;
}

std::vector<zcio::RecvBuffer> take(zcio::ProvidedBufferRing& br, const io_uring_cqe& c, bool bundle = false) {
    std::vector<zcio::RecvBuffer> out;
    br.take(c, bundle, [&](zcio::RecvBuffer&& b) { out.push_back(std::move(b)); });
    return out;
}

TEST(ProvidedBufferRing, ADroppedViewGoesBackToTheRing) {
    zcio::Ring ring;
    zcio::ProvidedBufferRing br(ring, {.group_id = 1, .buffer_count = 4, .buffer_size = 4096});
    EXPECT_EQ(br.available(), 4U);
    auto views = take(br, cqe_for(0, 1000));
    ASSERT_EQ(views.size(), 1U);
    EXPECT_EQ(views[0].size(), 1000U);
    EXPECT_EQ(views[0].tag(), 0U);
    EXPECT_EQ(br.held(), 1U);
    EXPECT_EQ(br.available(), 3U);
    views.clear();
    EXPECT_EQ(br.held(), 0U);
    EXPECT_EQ(br.recycled(), 1U);
    // A completion without a buffer (EOF, error) takes nothing.
    io_uring_cqe eof{};
    EXPECT_TRUE(take(br, eof).empty());
    EXPECT_EQ(br.held(), 0U);
}

TEST(ProvidedBufferRing, BuffersReturnInRingOrderEvenWhenDroppedOutOfOrder) {
    zcio::Ring ring;
    zcio::ProvidedBufferRing br(ring, {.group_id = 1, .buffer_count = 4, .buffer_size = 4096});
    auto a = take(br, cqe_for(0, 10));
    auto b = take(br, cqe_for(1, 10));
    auto c = take(br, cqe_for(2, 10));
    c.clear();
    b.clear();
    EXPECT_EQ(br.recycled(), 0U) << "buffer 1 and 2 must wait for buffer 0's turn";
    EXPECT_EQ(br.held(), 3U);
    a.clear();
    EXPECT_EQ(br.recycled(), 3U);
    EXPECT_EQ(br.held(), 0U);
}

TEST(ProvidedBufferRing, BundleCompletionYieldsConsecutiveBuffersAcrossTheWrap) {
    zcio::Ring ring;
    zcio::ProvidedBufferRing br(ring, {.group_id = 2, .buffer_count = 4, .buffer_size = 4096});
    // Consume 0..2 first so the bundle starts at 3 and wraps to 0 and 1.
    for (std::uint16_t bid = 0; bid < 3; ++bid) take(br, cqe_for(bid, 4096));
    EXPECT_EQ(br.recycled(), 3U);
    auto views = take(br, cqe_for(3, 4096 * 2 + 100), /*bundle=*/true);
    ASSERT_EQ(views.size(), 3U);
    EXPECT_EQ(views[0].tag(), 3U);
    EXPECT_EQ(views[1].tag(), 0U);
    EXPECT_EQ(views[2].tag(), 1U);
    EXPECT_EQ(views[2].size(), 100U);
    // Buffers are laid out by id: buffer 0 sits three buffers before buffer 3.
    EXPECT_EQ(views[0].data() - views[1].data(), 3 * 4096);
    EXPECT_EQ(views[2].data() - views[1].data(), 4096);
    EXPECT_EQ(br.held(), 3U);
    views.clear();
    EXPECT_EQ(br.held(), 0U);
}

TEST(ProvidedBufferRing, IncrementalBufferIsFilledAtRisingOffsetsAndReturnedWhenTheKernelIsDone) {
    zcio::Ring ring;
    zcio::ProvidedBufferRing br(ring, {.group_id = 3, .buffer_count = 2, .buffer_size = 65536, .incremental = true});
    if (!br.incremental()) GTEST_SKIP() << br.fallback_reason();
    auto first = take(br, cqe_for(0, 100, IORING_CQE_F_BUF_MORE));
    auto second = take(br, cqe_for(0, 50, IORING_CQE_F_BUF_MORE));
    ASSERT_EQ(first.size(), 1U);
    ASSERT_EQ(second.size(), 1U);
    EXPECT_EQ(second[0].data() - first[0].data(), 100);
    first.clear();
    second.clear();
    EXPECT_EQ(br.recycled(), 0U) << "the kernel is still filling buffer 0 (BUF_MORE)";
    auto last = take(br, cqe_for(0, 10));
    ASSERT_EQ(last.size(), 1U);
    EXPECT_EQ(br.recycled(), 0U);
    const auto* base = last[0].data() - 150;
    last.clear();
    EXPECT_EQ(br.recycled(), 1U);
    // Back in the ring, the buffer starts from offset 0 again.
    take(br, cqe_for(1, 1));  // buffer 1's turn comes first
    auto again = take(br, cqe_for(0, 5, IORING_CQE_F_BUF_MORE));
    ASSERT_EQ(again.size(), 1U);
    EXPECT_EQ(again[0].data(), base);
}

TEST(ProvidedBufferRing, RejectsACountThatIsNotAPowerOfTwo) {
    zcio::Ring ring;
    try {
        zcio::ProvidedBufferRing br(ring, {.group_id = 1, .buffer_count = 3, .buffer_size = 4096});
        FAIL() << "accepted 3 buffers";
    } catch (const zcio::SetupError& e) {
        EXPECT_NE(std::string(e.what()).find("power of two"), std::string::npos) << e.what();
    }
}

TEST(ProvidedBufferRing, ATakenGroupIdIsRefusedWithAHint) {
    zcio::Ring ring;
    zcio::ProvidedBufferRing first(ring, {.group_id = 7, .buffer_count = 4, .buffer_size = 4096});
    try {
        zcio::ProvidedBufferRing second(ring, {.group_id = 7, .buffer_count = 4, .buffer_size = 4096});
        FAIL() << "registered group 7 twice";
    } catch (const zcio::SetupError& e) {
        EXPECT_EQ(e.error(), EEXIST) << e.what();
        EXPECT_NE(std::string(e.what()).find("group_id"), std::string::npos) << e.what();
    }
}

}  // namespace
