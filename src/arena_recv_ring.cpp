#include "zcio/arena_recv_ring.hpp"

#include "anonymous_mapping.hpp"
#include "uring_compat.hpp"
#include "zcio/error.hpp"

#include <algorithm>
#include <cerrno>

namespace zcio {

ArenaRecvRing::ArenaRecvRing(Ring& ring, BufferArena& arena, const ArenaRecvRingOptions& o)
    : ring_(ring), group_(o.group_id), count_(o.buffer_count), size_(static_cast<std::uint32_t>(arena.slab_size())) {
    if (count_ == 0 || count_ > 32768 || (count_ & (count_ - 1)) != 0)
        throw SetupError("ArenaRecvRing: buffer_count " + std::to_string(count_), EINVAL,
                         "use a power of two between 1 and 32768");
    if (arena.available() < count_)
        throw SetupError("ArenaRecvRing: the arena has " + std::to_string(arena.available()) + " free slabs, " +
                             std::to_string(count_) + " asked for",
                         ENOBUFS, "give the arena more slabs or the ring fewer buffers");
    if (arena.slab_size() > (1u << 31))
        throw SetupError("ArenaRecvRing: slabs over 2 GiB", EINVAL, "use smaller slabs");
    entries_ = std::make_unique<AnonymousMapping>(count_ * sizeof(io_uring_buf));
    br_ = static_cast<io_uring_buf_ring*>(entries_->data());
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uintptr_t>(br_);
    reg.ring_entries = count_;
    reg.bgid = group_;
    if (const int err = io_uring_register_buf_ring(ring_.native(), &reg, 0); err != 0)
        throw SetupError("ArenaRecvRing: registering buffer group " + std::to_string(group_), err,
                         err == -EEXIST ? "that group id is taken on this ring: pick another group_id"
                                        : "the kernel needs IORING_REGISTER_PBUF_RING (5.19+)");
    registered_ = true;
    io_uring_buf_ring_init(br_);
    slabs_.resize(count_);
    taken_by_id_.assign(count_, 0);
    recycled_by_id_.assign(count_, 0);
    for (std::uint32_t bid = 0; bid < count_; ++bid) {
        slabs_[bid] = arena.take();
        by_address_.emplace_back(slabs_[bid].data(), static_cast<std::uint16_t>(bid));
        provide(static_cast<std::uint16_t>(bid));
    }
    std::sort(by_address_.begin(), by_address_.end());
}

ArenaRecvRing::~ArenaRecvRing() {
    if (registered_) io_uring_unregister_buf_ring(ring_.native(), group_);
}

// Ring entries are filled in the order buffers come back (any order: no bundles here).
void ArenaRecvRing::provide(std::uint16_t bid) noexcept {
    Buffer& b = slabs_[bid];
    b.resize(b.capacity());
    io_uring_buf_ring_add(br_, b.data(), static_cast<unsigned>(b.capacity()), bid, io_uring_buf_ring_mask(count_), 0);
    io_uring_buf_ring_advance(br_, 1);
}

Buffer ArenaRecvRing::take(const io_uring_cqe& cqe) noexcept {
    if ((cqe.flags & IORING_CQE_F_BUFFER) == 0) return {};
    const auto bid = static_cast<std::uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
    if (bid >= count_ || !slabs_[bid]) return {};  // not ours to give: the kernel never does this
    Buffer b = std::move(slabs_[bid]);
    b.resize(cqe.res > 0 ? static_cast<std::size_t>(cqe.res) : 0);
    ++taken_;
    ++taken_by_id_[bid];
    return b;
}

bool ArenaRecvRing::recycle(Buffer&& b) noexcept {
    const auto it = std::lower_bound(by_address_.begin(), by_address_.end(),
                                     std::pair<const std::byte*, std::uint16_t>{b.data(), 0});
    if (!b || it == by_address_.end() || it->first != b.data() || slabs_[it->second]) {
        ++refused_;
        return false;
    }
    slabs_[it->second] = std::move(b);
    ++recycled_;
    ++recycled_by_id_[it->second];
    provide(it->second);
    return true;
}

}  // namespace zcio
