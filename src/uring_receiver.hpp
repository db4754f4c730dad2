// UringReceiver: multishot receives on one io_uring, all connections drawing from one
// provided-buffer ring (multishot, bundle) or from a zcrx area (zcrx).
//
// Each connection is one armed multishot request whose completion record lives in a slot of a
// fixed table (no allocation after set-up). A multishot that ends without F_MORE is re-armed: at
// once if it ended with data, once buffers are back if it ended because the ring ran dry (ENOBUFS).
// The data that did not fit stays in the socket, so nothing is lost.
#pragma once

#include <memory>
#include <vector>

#include "zcio/buffer_ring.hpp"
#include "zcio/receiver.hpp"
#include "zcio/ring.hpp"
#include "zcio/zcrx.hpp"

namespace zcio {

class UringReceiver final : public Receiver {
public:
    explicit UringReceiver(const ReceiverOptions& options);
    ~UringReceiver() override;

    int add(int fd) override;
    int remove(ConnectionId conn) override;
    int poll(std::chrono::nanoseconds timeout) override;
    RecvCounters counters() const override;
    std::uint64_t buffers_held() const override;
    std::size_t connections() const override { return slots_.size() - free_ids_.size(); }
    std::string describe() const override;

    Ring& ring() noexcept { return ring_; }

private:
    enum class State : std::uint8_t { free, armed, starved, closing };
    struct Slot : Completion {
        UringReceiver* owner = nullptr;
        int fd = -1;
        ConnectionId id = 0;
        State state = State::free;
    };

    static void on_completion(Completion* c, const io_uring_cqe& cqe);
    void handle(Slot& s, const io_uring_cqe& cqe);
    void arm(Slot& s);
    void rearm_starved();
    void release_slot(Slot& s);
    int enter(unsigned wait_nr, std::chrono::nanoseconds timeout);

    Ring ring_;
    std::unique_ptr<ZcrxQueue> zcrx_;
    std::unique_ptr<ProvidedBufferRing> buffers_;
    bool bundle_ = false;
    std::vector<Slot> slots_;  // sized once: completion records must not move
    std::vector<ConnectionId> free_ids_;
    std::vector<ConnectionId> starved_;
    std::uint64_t zcrx_delivered_ = 0;
    std::uint32_t wait_batch_ = 1;
    std::chrono::nanoseconds batch_wait_{};
};

}  // namespace zcio
