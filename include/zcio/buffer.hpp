// Buffer: a move-only handle to memory a send may hand to the kernel. Holding it is owning it.
//
// A zero-copy send lends the pages to the kernel until the notification arrives; touching them
// before then corrupts what goes on the wire. So the send takes the Buffer by rvalue (the caller's
// handle is empty afterwards), and gives it back only in the release, after the notification. A
// copy does not compile; passing an lvalue does not compile; the moved-from handle is empty.
//
//   zcio::Buffer buf = arena.take();          // registered memory from a BufferArena
//   std::memcpy(buf.data(), msg, n); buf.resize(n);
//   engine.send(sock, std::move(buf), zcio::Storage{[](zcio::Release r) { /* r.buffer: yours again */ }});
//   zcio::Buffer plain = zcio::Buffer::borrow(my_span);   // unregistered memory also works
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <span>
#include <utility>

namespace zcio {

class Buffer;

// Where a buffer goes back to when its handle is dropped (a BufferArena's pool). A function
// pointer, not a virtual: it is called once per buffer on the hot path.
struct BufferHome {
    void (*give_back)(BufferHome* home, std::uint32_t slot) noexcept = nullptr;
    // The kernel may still read the memory and nothing will say when it stops: never reuse it.
    void (*quarantine)(BufferHome* home, std::uint32_t slot) noexcept = nullptr;
    // Ring::id() of the ring whose fixed-buffer table holds this memory (0: none). An id, not a
    // pointer: a later ring may reuse a dead ring's address, never its id.
    std::uint64_t registered_with = 0;
};

class Buffer {
public:
    Buffer() noexcept = default;
    Buffer(Buffer&& o) noexcept { steal(o); }
    Buffer& operator=(Buffer&& o) noexcept {
        if (this != &o) {
            if (home_) home_->give_back(home_, slot_);  // steal() overwrites every field
            steal(o);
        }
        return *this;
    }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    ~Buffer() {
        if (home_) home_->give_back(home_, slot_);  // nothing else to clear: the handle is going
    }

    // Wraps memory the caller owns and keeps alive until the buffer comes back (unregistered: the
    // kernel pins its pages per send). Dropping the handle gives nothing back anywhere.
    static Buffer borrow(std::span<std::byte> memory) noexcept {
        Buffer b;
        b.data_ = memory.data();
        b.capacity_ = memory.size();
        b.size_ = memory.size();
        return b;
    }

    std::byte* data() noexcept { return data_; }
    const std::byte* data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }  // bytes to send
    std::size_t capacity() const noexcept { return capacity_; }
    void resize(std::size_t n) noexcept { size_ = n <= capacity_ ? n : capacity_; }
    // Drops the first `n` bytes (at most capacity()) from the view: the send starts there. The handle
    // still owns its whole slab, which goes home whole when dropped; registered memory stays
    // registered (a sub-range of a fixed buffer is sent as fixed). With resize() for the back, any
    // sub-range of a slab can be sent:  b.trim_front(13); b.resize(b.capacity() - 13);
    void trim_front(std::size_t n) noexcept {
        if (n > capacity_) n = capacity_;
        data_ += n;
        capacity_ -= n;
        size_ = size_ > n ? size_ - n : 0;
    }
    std::span<std::byte> span() noexcept { return {data_, size_}; }
    std::span<const std::byte> span() const noexcept { return {data_, size_}; }
    explicit operator bool() const noexcept { return data_ != nullptr; }

    // Registered memory: the index of its entry in the ring's fixed-buffer table, else -1.
    int buf_index() const noexcept { return buf_index_; }
    bool registered_with(std::uint64_t ring_id) const noexcept {
        return buf_index_ >= 0 && home_ != nullptr && home_->registered_with == ring_id;
    }

    // Drops the handle without giving the memory back: for memory the kernel may still read with
    // no notification left to say when it stops. Its home counts it and never hands it out again.
    void quarantine() noexcept {
        if (home_ && home_->quarantine) home_->quarantine(home_, slot_);
        home_ = nullptr;
        reset();
    }

    // Gives the memory back to its home now (same as dropping the handle).
    void reset() noexcept {
        if (home_) home_->give_back(home_, slot_);
        home_ = nullptr;
        data_ = nullptr;
        size_ = capacity_ = 0;
        buf_index_ = -1;
    }

private:
    friend class BufferArena;
    Buffer(BufferHome* home, std::uint32_t slot, std::byte* data, std::size_t capacity, int buf_index) noexcept
        : data_(data), size_(capacity), capacity_(capacity), home_(home), slot_(slot), buf_index_(buf_index) {}

    void steal(Buffer& o) noexcept {
        data_ = std::exchange(o.data_, nullptr);
        size_ = std::exchange(o.size_, 0);
        capacity_ = std::exchange(o.capacity_, 0);
        home_ = std::exchange(o.home_, nullptr);
        slot_ = o.slot_;
        buf_index_ = std::exchange(o.buf_index_, -1);
    }

    std::byte* data_ = nullptr;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
    BufferHome* home_ = nullptr;
    std::uint32_t slot_ = 0;
    int buf_index_ = -1;
};

// Up to eight buffers sent as one message (scatter-gather with SENDMSG_ZC): one request, one
// notification, and all of them back together in the release.
//
//   zcio::BufferChain chain;
//   chain.push_back(std::move(header)); chain.push_back(std::move(payload));
//   engine.send(sock, std::move(chain), zcio::Storage{[](zcio::Release r) { /* r.buffer, r.more */ }});
class BufferChain {
public:
    static constexpr std::size_t capacity = 8;

    // Slots are raw storage, constructed on push_back: an empty chain costs one word to make,
    // move and destroy (every Release carries one).
    BufferChain() noexcept {}
    BufferChain(BufferChain&& o) noexcept { take(o); }
    BufferChain& operator=(BufferChain&& o) noexcept {
        if (this != &o) {
            clear();
            take(o);
        }
        return *this;
    }
    BufferChain(const BufferChain&) = delete;
    BufferChain& operator=(const BufferChain&) = delete;
    ~BufferChain() { clear(); }

    // False (and `b` left with the caller) when the chain is full.
    bool push_back(Buffer&& b) noexcept {
        if (count_ == capacity) return false;
        ::new (static_cast<void*>(slot(count_))) Buffer(std::move(b));
        ++count_;
        return true;
    }
    std::size_t size() const noexcept { return count_; }
    bool empty() const noexcept { return count_ == 0; }
    Buffer& operator[](std::size_t i) noexcept { return *slot(i); }
    const Buffer& operator[](std::size_t i) const noexcept { return *slot(i); }
    Buffer* begin() noexcept { return slot(0); }
    Buffer* end() noexcept { return slot(count_); }
    std::size_t bytes() const noexcept {
        std::size_t n = 0;
        for (std::size_t i = 0; i < count_; ++i) n += slot(i)->size();
        return n;
    }
    // Gives every buffer back to its home.
    void clear() noexcept {
        for (std::size_t i = 0; i < count_; ++i) slot(i)->~Buffer();
        count_ = 0;
    }

private:
    Buffer* slot(std::size_t i) noexcept { return std::launder(reinterpret_cast<Buffer*>(storage_)) + i; }
    const Buffer* slot(std::size_t i) const noexcept {
        return std::launder(reinterpret_cast<const Buffer*>(storage_)) + i;
    }
    void take(BufferChain& o) noexcept {
        for (std::size_t i = 0; i < o.count_; ++i) {
            ::new (static_cast<void*>(slot(i))) Buffer(std::move(*o.slot(i)));
            o.slot(i)->~Buffer();
        }
        count_ = std::exchange(o.count_, 0);
    }

    std::size_t count_ = 0;
    alignas(Buffer) unsigned char storage_[capacity * sizeof(Buffer)];
};

}  // namespace zcio
