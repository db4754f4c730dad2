// ArenaRecvRing: a provided-buffer ring (PBUF_RING) whose buffers are slabs of a registered
// BufferArena, so what the kernel receives into them can be written to a file with WRITE_FIXED or
// sent on with zc-fixed without a copy: one registered memory for storage and network.
//
// A receive names the ring's group (IOSQE_BUFFER_SELECT); its completion says which buffer it
// filled, and take() hands that buffer out as an ordinary zcio::Buffer: the holder owns it until
// recycle() puts it back in the kernel's ring (exactly once per take; a second recycle, or a buffer
// that is not the ring's, is refused and counted). A buffer dropped instead goes home to its arena.
//
//   zcio::ArenaRecvRing rx(ring, arena, {.group_id = 3, .buffer_count = 64});
//   // SQE: IORING_OP_RECV, IOSQE_BUFFER_SELECT, sqe->buf_group = rx.group_id()
//   zcio::Buffer b = rx.take(cqe);                  // b.size(): the bytes received
//   engine.send(sock, std::move(b), zcio::Storage{[&](zcio::Release r) { rx.recycle(std::move(r.buffer)); }});
#pragma once

#include "zcio/buffer.hpp"
#include "zcio/buffer_arena.hpp"
#include "zcio/ring.hpp"

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

struct io_uring_buf_ring;

namespace zcio {

class AnonymousMapping;

struct ArenaRecvRingOptions {
    std::uint16_t group_id = 1;
    std::uint32_t buffer_count = 64;  // power of two, at most the arena's free slabs
};

class ArenaRecvRing {
public:
    // Takes buffer_count slabs from `arena` (registered with `ring`, which must outlive this) and
    // registers the ring. Throws SetupError.
    ArenaRecvRing(Ring& ring, BufferArena& arena, const ArenaRecvRingOptions& options = {});
    ~ArenaRecvRing();  // unregisters; the slabs in it go home to the arena
    ArenaRecvRing(const ArenaRecvRing&) = delete;
    ArenaRecvRing& operator=(const ArenaRecvRing&) = delete;

    std::uint16_t group_id() const noexcept { return group_; }
    std::uint32_t buffer_count() const noexcept { return count_; }
    std::uint32_t buffer_size() const noexcept { return size_; }

    // The buffer a receive completion filled, sized to the bytes received; empty when the
    // completion carries none (an error, EOF).
    Buffer take(const io_uring_cqe& cqe) noexcept;
    // Back into the kernel's ring. False (and the buffer left with the caller) for a buffer that
    // is not out of this ring.
    bool recycle(Buffer&& b) noexcept;

    std::uint64_t taken() const noexcept { return taken_; }
    std::uint64_t recycled() const noexcept { return recycled_; }
    std::uint64_t refused() const noexcept { return refused_; }
    std::uint32_t held() const noexcept { return static_cast<std::uint32_t>(taken_ - recycled_); }
    // Per buffer id: times handed out by take() and put back by recycle() (equal when all are home).
    const std::vector<std::uint32_t>& taken_by_id() const noexcept { return taken_by_id_; }
    const std::vector<std::uint32_t>& recycled_by_id() const noexcept { return recycled_by_id_; }

private:
    void provide(std::uint16_t bid) noexcept;

    Ring& ring_;
    std::uint16_t group_;
    std::uint32_t count_;
    std::uint32_t size_;
    std::unique_ptr<AnonymousMapping> entries_;
    io_uring_buf_ring* br_ = nullptr;
    std::vector<Buffer> slabs_;                                           // by buffer id; empty while the holder has it
    std::vector<std::pair<const std::byte*, std::uint16_t>> by_address_;  // sorted: recycle's lookup
    std::vector<std::uint32_t> taken_by_id_, recycled_by_id_;
    std::uint64_t taken_ = 0, recycled_ = 0, refused_ = 0;
    bool registered_ = false;
};

}  // namespace zcio
