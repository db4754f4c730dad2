// Relay: socket -> socket through registered memory, without a copy in user space. A multishot
// receive fills slabs of a registered arena (an ArenaRecvRing); each buffer is sent on as it is
// with zc-fixed through the SendEngine, and goes back to the receive ring on its release, after
// the kernel's notification: each buffer back exactly once (the ring counts it per buffer id).
//
//   zcio::Relay relay(engine, arena, from_fd, to_fd);     // arena registered with engine.ring()
//   zcio::RelayReport r = relay.run();                     // until from_fd's EOF
//   ::shutdown(to_fd, SHUT_WR);                            // the caller decides what EOF means
#pragma once

#include "zcio/arena_recv_ring.hpp"
#include "zcio/buffer_arena.hpp"
#include "zcio/send_engine.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace zcio {

namespace detail {
class MultishotRecv;
}

struct RelayOptions {
    std::uint32_t buffers = 64;                      // receive ring buffers (power of two; arena slabs)
    std::uint16_t buffer_group = 12;                 // a buffer group id free on the engine's ring
    std::chrono::milliseconds stall_timeout{30000};  // nothing moved for this long: -ETIMEDOUT
};

struct RelayReport {
    int error = 0;  // 0, or -errno from either side
    std::string message;
    std::uint64_t bytes_received = 0;
    std::uint64_t bytes_sent = 0;
    std::uint64_t buffers = 0;                // buffers relayed
    std::uint64_t zero_copy = 0, copied = 0;  // what the kernel reported for their sends
    double seconds = 0;
};

class Relay {
public:
    // Adds `to_fd` to the engine (zc-fixed where the kernel can) and sets up the receive ring on
    // the engine's ring. The caller keeps both fds. Throws SetupError.
    Relay(SendEngine& engine, BufferArena& arena, int from_fd, int to_fd, const RelayOptions& options = {});
    ~Relay();  // removes the destination socket from the engine (waits for its releases)
    Relay(const Relay&) = delete;
    Relay& operator=(const Relay&) = delete;

    // Relays until from_fd's EOF or an error on either side, and every buffer is back.
    RelayReport run();
    const ArenaRecvRing& buffers() const noexcept { return rx_; }

private:
    void forward(Buffer&& b, RelayReport& rep);

    SendEngine& engine_;
    RelayOptions opt_;
    ArenaRecvRing rx_;
    std::unique_ptr<detail::MultishotRecv> recv_;
    SocketId to_;
    std::uint32_t inflight_ = 0;
    RelayReport* rep_ = nullptr;
};

}  // namespace zcio
