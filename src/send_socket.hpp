// The engine's state for one socket: its strategy, its bounds, its queue of sends, its counters,
// and what the auto policy and MSG_ZEROCOPY keep per socket.
#pragma once

#include "auto_policy.hpp"
#include "send_op.hpp"
#include "zcio/ring.hpp"
#include "zcio/send_counters.hpp"

#include <cstddef>
#include <cstdint>

namespace zcio::detail {

class SendCore;

// MSG_ZEROCOPY's per-socket state: the kernel numbers each successful zero-copy sendmsg on the
// socket, and reports finished ranges of those numbers on the socket's error queue.
struct ErrQueueState {
    bool enabled = false;  // SO_ZEROCOPY set
    std::uint64_t next_id = 0;
    OpQueue waiting;            // sent, notice pending, in id order
    struct Poll : Completion {  // POLLERR on the socket: the error queue has notices
        SendSocket* sock = nullptr;
        bool armed = false;
    } poll;
};

struct SendSocket {
    SendCore* core = nullptr;
    int fd = -1;
    int file = -1;  // its slot in the ring's file table, or -1: the plain fd
    int sqe_fd() const noexcept { return file >= 0 ? file : fd; }
    bool stream = false;
    Strategy strategy = Strategy::automatic;
    std::size_t max_inflight = 0;
    std::uint16_t gso_size = 0;  // UDP_SEGMENT set on the socket (SocketOptions::udp_gso_size)
    std::size_t inflight = 0;
    std::uint64_t next_seq = 0;
    std::uint32_t chain_inflight = 0;  // stream: requests of the current chain still in the kernel
    std::uint32_t ops = 0;             // ops of this socket not yet released
    std::uint32_t sqes_per_op = 1;     // 2 once a send carried a linked file read (a chain's SQ room)
    int failed = 0;                    // stream: first fatal error; later sends fail with it
    OpQueue queue;                     // accepted, not yet submitted
    Counters counters;
    AutoState auto_state;
    ErrQueueState errq;

    // A stream socket's next chain waits for the current one: order.
    bool can_pump() const noexcept { return !queue.empty() && (!stream || chain_inflight == 0); }
};

}  // namespace zcio::detail
