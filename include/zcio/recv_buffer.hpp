// RecvBuffer: a move-only view of received bytes that *is* the ownership of the memory under it.
//
// Whatever strategy received the bytes (a provided-buffer ring, a zcrx area, a plain recv() pool),
// the caller gets the same handle. Dropping it hands the memory back to where it came from — a
// buffer ring entry, a zcrx refill entry, a pool slot — with a store to shared memory, never a
// syscall and never an allocation. The owner must outlive every RecvBuffer it handed out.
//
//   receiver.poll(timeout, [&](zcio::RecvEvent&& ev) {
//       if (ev.result > 0) consume(ev.data.bytes());   // ev.data goes back when ev is dropped
//   });
//   // or keep it: std::vector<zcio::RecvBuffer> held; held.push_back(std::move(ev.data));
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

namespace zcio {

class RecvBuffer {
public:
    // Called once when the view is dropped. `tag` is the owner's own id for the memory (a buffer id).
    using ReleaseFn = void (*)(void* owner, std::uint32_t tag, const std::byte* data, std::uint32_t len) noexcept;

    RecvBuffer() noexcept = default;
    RecvBuffer(const std::byte* data, std::uint32_t len, void* owner, ReleaseFn release, std::uint32_t tag) noexcept
        : data_(data), len_(len), tag_(tag), owner_(owner), release_(release) {}
    RecvBuffer(RecvBuffer&& o) noexcept
        : data_(std::exchange(o.data_, nullptr)),
          len_(std::exchange(o.len_, 0)),
          tag_(o.tag_),
          owner_(std::exchange(o.owner_, nullptr)),
          release_(std::exchange(o.release_, nullptr)) {}
    RecvBuffer& operator=(RecvBuffer&& o) noexcept {
        if (this != &o) {
            reset();
            data_ = std::exchange(o.data_, nullptr);
            len_ = std::exchange(o.len_, 0);
            tag_ = o.tag_;
            owner_ = std::exchange(o.owner_, nullptr);
            release_ = std::exchange(o.release_, nullptr);
        }
        return *this;
    }
    RecvBuffer(const RecvBuffer&) = delete;
    RecvBuffer& operator=(const RecvBuffer&) = delete;
    ~RecvBuffer() { reset(); }

    std::span<const std::byte> bytes() const noexcept { return {data_, len_}; }
    const std::byte* data() const noexcept { return data_; }
    std::uint32_t size() const noexcept { return len_; }
    bool empty() const noexcept { return len_ == 0; }
    // The owner's id for this memory (buffer id in a provided-buffer ring), for diagnostics.
    std::uint32_t tag() const noexcept { return tag_; }

    // Hands the memory back now (the destructor does the same).
    void reset() noexcept {
        if (release_ != nullptr) std::exchange(release_, nullptr)(owner_, tag_, data_, len_);
        data_ = nullptr;
        len_ = 0;
        owner_ = nullptr;
    }

private:
    const std::byte* data_ = nullptr;
    std::uint32_t len_ = 0;
    std::uint32_t tag_ = 0;
    void* owner_ = nullptr;
    ReleaseFn release_ = nullptr;
};

}  // namespace zcio
