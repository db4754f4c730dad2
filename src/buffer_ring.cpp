#include "zcio/buffer_ring.hpp"

#include <cassert>
#include <cerrno>

#include "anonymous_mapping.hpp"
#include "uring_compat.hpp"
#include "zcio/error.hpp"

namespace zcio {

ProvidedBufferRing::ProvidedBufferRing(Ring& ring, const BufferRingOptions& options)
    : ring_(ring), group_id_(options.group_id), count_(options.buffer_count), size_(options.buffer_size) {
    if (count_ == 0 || count_ > 32768 || (count_ & (count_ - 1)) != 0)
        throw SetupError("bad buffer_count " + std::to_string(count_), EINVAL,
                         "buffer_count must be a power of two between 1 and 32768");
    if (size_ == 0) throw SetupError("bad buffer_size 0", EINVAL, "buffer_size must be > 0");

    memory_.reserve(2);
    memory_.emplace_back(count_ * sizeof(io_uring_buf));
    memory_.emplace_back(static_cast<std::size_t>(count_) * size_);
    br_ = static_cast<io_uring_buf_ring*>(memory_[0].data());
    buffers_ = memory_[1].bytes();
    refs_.assign(count_, 1);
    fill_.assign(count_, 0);
    ready_.assign(count_, 0);

    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uintptr_t>(br_);
    reg.ring_entries = count_;
    reg.bgid = group_id_;
    int err = -EINVAL;
    if (options.incremental) {
        reg.pad = abi::pbuf_ring_inc;  // `flags` in newer liburing
        err = io_uring_register_buf_ring(ring_.native(), &reg, 0);
        if (err == 0) {
            incremental_ = true;
        } else {
            fallback_reason_ =
                "IOU_PBUF_RING_INC refused: " + errno_string(err) + "; one buffer per completion instead";
            reg.pad = 0;
        }
    }
    if (!incremental_) err = io_uring_register_buf_ring(ring_.native(), &reg, 0);
    if (err != 0)
        throw SetupError("registering a provided buffer ring (group " + std::to_string(group_id_) + ", " +
                             std::to_string(count_) + " x " + std::to_string(size_) + " B)",
                         err,
                         err == -EEXIST   ? "that buffer group id is taken on this ring: pick another group_id"
                         : err == -EINVAL ? "the kernel lacks IORING_REGISTER_PBUF_RING (5.19+): use the plain strategy"
                                          : "lower buffer_count or raise `ulimit -l`");
    registered_ = true;

    io_uring_buf_ring_init(br_);
    const int mask = io_uring_buf_ring_mask(count_);
    for (std::uint32_t bid = 0; bid < count_; ++bid)
        io_uring_buf_ring_add(br_, buffers_ + static_cast<std::size_t>(bid) * size_, size_,
                              static_cast<std::uint16_t>(bid), mask, static_cast<int>(bid));
    tail_ = static_cast<std::uint16_t>(count_);
    io_uring_buf_ring_advance(br_, static_cast<int>(count_));
}

ProvidedBufferRing::~ProvidedBufferRing() {
    // Views must not outlive their ring: they point into memory_ and back at this object.
    assert(held() == 0 && "a RecvBuffer outlived its ProvidedBufferRing");
    if (registered_) io_uring_unregister_buf_ring(ring_.native(), group_id_);
}

RecvBuffer ProvidedBufferRing::view(std::uint16_t bid, std::uint32_t offset, std::uint32_t len) noexcept {
    ++refs_[bid];
    return RecvBuffer(buffers_ + static_cast<std::size_t>(bid) * size_ + offset, len, this,
                      &ProvidedBufferRing::release, bid);
}

void ProvidedBufferRing::kernel_done(std::uint16_t bid) noexcept {
    ++taken_;
    drop_ref(bid);
}

void ProvidedBufferRing::release(void* owner, std::uint32_t tag, const std::byte*, std::uint32_t) noexcept {
    static_cast<ProvidedBufferRing*>(owner)->drop_ref(static_cast<std::uint16_t>(tag));
}

void ProvidedBufferRing::drop_ref(std::uint16_t bid) noexcept {
    if (--refs_[bid] != 0) return;
    ready_[bid] = 1;
    // Ring position p holds buffer p mod count, so only the buffer whose turn it is may go back;
    // it may release a run of buffers that were dropped out of order behind it.
    const std::uint32_t mask = count_ - 1;
    std::uint16_t tail = tail_;
    while (ready_[tail & mask] != 0) {
        const std::uint16_t b = static_cast<std::uint16_t>(tail & mask);
        ready_[b] = 0;
        refs_[b] = 1;
        fill_[b] = 0;
        io_uring_buf* slot = &br_->bufs[tail & mask];
        slot->addr = reinterpret_cast<std::uintptr_t>(buffers_ + static_cast<std::size_t>(b) * size_);
        slot->len = size_;
        slot->bid = b;
        ++tail;
        ++returned_;
    }
    if (tail != tail_) {
        tail_ = tail;
        io_uring_smp_store_release(&br_->tail, tail_);
    }
}

}  // namespace zcio
