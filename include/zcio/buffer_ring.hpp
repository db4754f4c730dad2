// ProvidedBufferRing: a ring of equal-sized receive buffers the kernel picks from (PBUF_RING).
//
// Multishot receives do not name a buffer: the kernel takes the next one from this ring when data
// arrives and says which in the completion (bid in cqe.flags >> 16). One ring serves every
// connection of a thread. Buffers come back to the ring in ring order — buffer id b always sits at
// ring position b mod count — so a bundle completion (several buffers) is a run of consecutive ids
// and needs no bookkeeping, at the price that a view held for long delays the return of those
// behind it. Returning a buffer is a store to shared memory, no syscall.
//
//   zcio::ProvidedBufferRing pool(ring, {.group_id = 0, .buffer_count = 256, .buffer_size = 16384});
//   // SQE: IOSQE_BUFFER_SELECT, sqe->buf_group = pool.group_id(), ioprio |= IORING_RECV_MULTISHOT
//   pool.take(cqe, /*bundle=*/false, [&](zcio::RecvBuffer&& b) { use(b.bytes()); });
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "zcio/recv_buffer.hpp"
#include "zcio/ring.hpp"

struct io_uring_buf_ring;

namespace zcio {

class AnonymousMapping;

// ---- pure completion parsing (no kernel needed) --------------------------------------------------

// The buffer id a completion carries, if it carries one (IORING_CQE_F_BUFFER).
constexpr std::optional<std::uint16_t> cqe_buffer_id(std::uint32_t cqe_flags) noexcept {
    if ((cqe_flags & 1U) == 0) return std::nullopt;  // IORING_CQE_F_BUFFER
    return static_cast<std::uint16_t>(cqe_flags >> 16);
}

// How many buffers of `buffer_size` a completion of `res` bytes filled (a bundle fills each buffer
// before taking the next). A completion that carries a buffer consumed at least that one.
constexpr std::uint32_t bundle_buffer_count(std::int32_t res, std::uint32_t buffer_size) noexcept {
    if (res <= 0) return 1;
    const auto bytes = static_cast<std::uint32_t>(res);  // no `res + size - 1`: it wraps above 2 GiB
    return bytes / buffer_size + (bytes % buffer_size != 0);
}

// Calls f(bid, len) for each buffer of a bundle completion, in order: ids run on from `first_bid`
// modulo `buffer_count` (a power of two), every buffer full but the last.
template <typename F>
constexpr void for_each_bundle_buffer(std::uint16_t first_bid, std::int32_t res, std::uint32_t buffer_size,
                                      std::uint32_t buffer_count, F&& f) {
    std::uint32_t left = res > 0 ? static_cast<std::uint32_t>(res) : 0;
    const std::uint32_t n = bundle_buffer_count(res, buffer_size);
    for (std::uint32_t i = 0; i < n; ++i) {
        const std::uint32_t len = left < buffer_size ? left : buffer_size;
        f(static_cast<std::uint16_t>((first_bid + i) & (buffer_count - 1)), len);
        left -= len;
    }
}

// ---- the ring ------------------------------------------------------------------------------------

struct BufferRingOptions {
    std::uint16_t group_id = 0;
    std::uint32_t buffer_count = 256;  // power of two, at most 32768
    std::uint32_t buffer_size = 16 << 10;
    // IOU_PBUF_RING_INC: the kernel fills one buffer across several completions (BUF_MORE) instead
    // of wasting the tail of a buffer per small message. Falls back (reported) where refused.
    bool incremental = false;
};

class ProvidedBufferRing {
public:
    // Registers the ring with `ring`, which must outlive this object. Throws SetupError.
    ProvidedBufferRing(Ring& ring, const BufferRingOptions& options);
    ~ProvidedBufferRing();
    ProvidedBufferRing(const ProvidedBufferRing&) = delete;
    ProvidedBufferRing& operator=(const ProvidedBufferRing&) = delete;

    std::uint16_t group_id() const noexcept { return group_id_; }
    std::uint32_t buffer_count() const noexcept { return count_; }
    std::uint32_t buffer_size() const noexcept { return size_; }
    bool incremental() const noexcept { return incremental_; }
    // Why an option was not honoured ("IOU_PBUF_RING_INC refused: EINVAL ..."), or empty.
    const std::string& fallback_reason() const noexcept { return fallback_reason_; }

    // Turns the buffer(s) a completion consumed into views, handing each to sink(RecvBuffer&&).
    // `bundle`: the completion may span several buffers. Returns how many buffers the kernel
    // finished with (0 if the completion carries no buffer).
    template <typename Sink>
    std::uint32_t take(const io_uring_cqe& cqe, bool bundle, Sink&& sink) {
        const auto bid = cqe_buffer_id(cqe.flags);
        if (!bid) return 0;
        if (incremental_) {
            // Same bid across completions while BUF_MORE is set; data appended at rising offsets.
            const std::uint32_t off = fill_[*bid];
            if (cqe.res > 0) {
                fill_[*bid] = off + static_cast<std::uint32_t>(cqe.res);
                sink(view(*bid, off, static_cast<std::uint32_t>(cqe.res)));
            }
            if ((cqe.flags & (1U << 4)) != 0) return 0;  // IORING_CQE_F_BUF_MORE: kernel keeps it
            kernel_done(*bid);
            return 1;
        }
        if (!bundle) {
            if (cqe.res > 0) sink(view(*bid, 0, static_cast<std::uint32_t>(cqe.res)));
            kernel_done(*bid);
            return 1;
        }
        std::uint32_t n = 0;
        for_each_bundle_buffer(*bid, cqe.res, size_, count_, [&](std::uint16_t b, std::uint32_t len) {
            if (len > 0) sink(view(b, 0, len));
            kernel_done(b);
            ++n;
        });
        return n;
    }

    // Buffers the kernel has filled and handed out that have not come back to the ring yet.
    std::uint64_t held() const noexcept { return taken_ - returned_; }
    // Buffers the kernel may still pick (an estimate: completions not yet reaped are not counted).
    std::uint64_t available() const noexcept { return count_ - held(); }
    std::uint64_t recycled() const noexcept { return returned_; }

private:
    RecvBuffer view(std::uint16_t bid, std::uint32_t offset, std::uint32_t len) noexcept;
    void kernel_done(std::uint16_t bid) noexcept;
    void drop_ref(std::uint16_t bid) noexcept;
    static void release(void* owner, std::uint32_t tag, const std::byte*, std::uint32_t) noexcept;

    Ring& ring_;
    std::uint16_t group_id_;
    std::uint32_t count_;
    std::uint32_t size_;
    bool incremental_ = false;
    bool registered_ = false;
    std::string fallback_reason_;
    std::vector<AnonymousMapping> memory_;  // [0] ring entries, [1] buffers
    io_uring_buf_ring* br_ = nullptr;
    std::byte* buffers_ = nullptr;
    std::vector<std::uint32_t> refs_;  // per bid: 1 for the kernel while it may fill it, +1 per view
    std::vector<std::uint32_t> fill_;  // per bid, incremental mode: bytes the kernel wrote so far
    std::vector<std::uint8_t> ready_;  // per bid: nobody holds it, waiting for its turn in the ring
    std::uint16_t tail_ = 0;           // our copy of the ring tail (u16, wraps like the kernel's)
    std::uint64_t taken_ = 0;
    std::uint64_t returned_ = 0;
};

}  // namespace zcio
