// SendEngine: every way Linux can send a buffer (zcio/strategy.hpp), behind one interface, with
// the truth about each.
//
// Completion models (the talk's): TwoStep and Storage (zcio/send_completion.hpp), NotifGroup
// (zcio/notif_group.hpp). Stream sockets keep their byte stream exact: sends go out in order as
// linked chains, a short send is continued, and a broken chain is re-issued. Bytes in flight are
// bounded per socket and per engine; sends beyond the bound queue, and send() drives the loop when
// no operation slot is free. Every buffer comes back exactly once, through its completion,
// whatever happened. What the engine did is in its Counters (zcio/send_counters.hpp).
//
//   zcio::SendEngine engine(ring);
//   auto sock = engine.add_socket(fd, {.strategy = zcio::Strategy::zc_fixed});
//   engine.send(sock, arena.take(), zcio::Storage{[](zcio::Release r) { /* r.usage, r.buffer */ }});
//   engine.drain();                            // run the loop until everything is released
#pragma once

#include "zcio/buffer.hpp"
#include "zcio/file_read.hpp"
#include "zcio/notif_group.hpp"
#include "zcio/probe.hpp"
#include "zcio/ring.hpp"
#include "zcio/send_completion.hpp"
#include "zcio/send_counters.hpp"
#include "zcio/strategy.hpp"

#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace zcio {

namespace detail {
class SendCore;  // src/send_core.hpp: what the engine holds; nothing outside src/ sees into it
}

struct SocketOptions {
    Strategy strategy = Strategy::automatic;
    std::size_t max_inflight_bytes = 8u << 20;  // submitted and not yet released
    std::uint16_t udp_gso_size = 0;             // UDP_SEGMENT: the kernel cuts each send into these
};

// Choices for one send; the defaults are the socket's.
//
// A datagram socket may send each buffer to its own destination with its own UDP GSO segment
// size — one unconnected socket serving many peers (QUIC servers, media relays):
//   engine.send(sock, std::move(b), handler, {.to = peer, .to_len = sizeof(sockaddr_in6), .gso_size = 1200});
// The address is copied into the operation (the caller's storage may go at once). A destination
// the kernel rejects (wrong family, port 0, unreachable) fails that send alone, with its errno.
// Without a GSO size, SEND / SEND_ZC carry the address themselves; with one, the send goes in its
// strategy's msghdr form (SENDMSG, SENDMSG_ZC with the registered buffer where the kernel allows
// it, sendmsg(2)) with a UDP_SEGMENT control message — unless it equals the socket's own
// (SocketOptions::udp_gso_size): then none is needed, and a server that sends every train with one
// size pays for the destination alone. Both fail with -EINVAL on a stream socket.
struct SendOptions {
    // Another io_uring strategy for this one send (one the kernel lacks fails that send with
    // -EOPNOTSUPP; a syscall strategy is ignored: it would break the stream's order).
    std::optional<Strategy> strategy = std::nullopt;
    const sockaddr* to = nullptr;  // IPv4 or IPv6 destination; null: the socket's peer
    socklen_t to_len = 0;
    std::uint16_t gso_size = 0;  // UDP_SEGMENT for this send; 0: the socket's (SocketOptions)
};

struct EngineOptions {
    std::size_t max_inflight_bytes = 256u << 20;
    std::uint32_t max_ops = 4096;  // operations in flight or queued, allocated once
    std::uint32_t max_chain = 32;  // linked sends per stream socket per submission
    // auto: copy below this payload (measured on this machine: zero-copy pays from ~8-16 KB).
    std::size_t auto_threshold = 8192;
    std::uint32_t auto_copied_streak = 4;     // copied reports in a row before auto measures
    std::uint32_t auto_reprobe_every = 4096;  // sends before a decision is measured again (x2 while it holds)
    std::uint32_t auto_window = 256;          // sends per measurement window (copy, then zero-copy)
    std::chrono::milliseconds shutdown_timeout{5000};
    // How long send() drives the loop waiting for a free operation slot before it refuses the
    // send (-ETIMEDOUT through its handlers, called right away): a stalled peer never hangs us.
    std::chrono::milliseconds send_wait_timeout{30000};
    // Register each socket in the ring's file table (Ring::register_file): requests then skip the
    // kernel's fget/fput, a few percent of a zero-copy send's cost. The table holds a reference
    // to the socket until remove_socket(): close() alone does not end it while it is added.
    // Falls back to the plain fd, silently and per socket, when the kernel or the table says no.
    bool register_files = true;
    // What the kernel supports; null: zcio::probe() of the running kernel. (Tests pass a doctored
    // copy to see how the engine treats a kernel without a feature.)
    const KernelFeatures* features = nullptr;
};

using SocketId = std::uint32_t;

class SendEngine {
public:
    // Throws SetupError when the ring or options cannot work.
    explicit SendEngine(Ring& ring, const EngineOptions& options = {});
    // Cancels what is in flight and waits (up to shutdown_timeout) for every release; each
    // buffer comes back through its handler with -ECANCELED or the real error. A buffer the
    // kernel still holds after that (a peer that never acknowledges) cannot safely be reused:
    // its handler gets -ETIMEDOUT and no buffer, and its arena quarantines it for good.
    ~SendEngine();
    SendEngine(const SendEngine&) = delete;
    SendEngine& operator=(const SendEngine&) = delete;

    // The socket stays the caller's (the engine never closes it; with register_files it holds a
    // reference to it until remove_socket(), so remove it before closing). Throws SetupError for a
    // non-socket, an unsupported type, or a strategy this kernel lacks (with the probe's why, and
    // the strategies that do work). `auto` never fails: without zero-copy send it only copies.
    // zc and sendmsg-zc pin the pages of each send, which a process without CAP_IPC_LOCK pays from
    // RLIMIT_MEMLOCK: they are refused here when the socket's in-flight bound cannot be charged now,
    // not with ENOMEM mid-run; `auto` copies instead (see fallback_reason()).
    SocketId add_socket(int fd, const SocketOptions& options = {});
    // Fails every queued send, waits (up to shutdown_timeout) for the in-flight ones; then the
    // id is invalid and 0 is returned. -ETIMEDOUT when the kernel still holds some of the
    // socket's buffers at the deadline (a peer that never acknowledges): the socket stays added,
    // failed (new sends fail with -ECANCELED); call again later, or let the destructor deal with
    // it. Throws SetupError from inside a completion handler (only the loop delivers releases).
    int remove_socket(SocketId id);
    // Changes a socket's strategy. -EBUSY when switching between a syscall strategy (plain,
    // msg_zerocopy) and an io_uring one while sends are in flight: the stream order would break.
    int set_strategy(SocketId id, Strategy s);
    Strategy strategy(SocketId id) const;

    // The hot path. The buffer is the engine's until its release; errors arrive in the release.
    // An id that add_socket() did not return (or that was removed) is a programming error: it
    // throws SetupError, before the buffer is taken.
    void send(SocketId id, Buffer&& buffer, TwoStep handlers, const SendOptions& options = {});
    void send(SocketId id, Buffer&& buffer, Storage handler, const SendOptions& options = {});
    void send(SocketId id, Buffer&& buffer, NotifGroup& group, const SendOptions& options = {});
    // Scatter-gather: the chain's buffers go as one message (IORING_OP_SENDMSG_ZC, registered
    // buffers where the kernel allows), whatever the socket's strategy; one release for all.
    void send(SocketId id, BufferChain&& buffers, TwoStep handlers);
    void send(SocketId id, BufferChain&& buffers, Storage handler);
    void send(SocketId id, BufferChain&& buffers, NotifGroup& group);
    // Reads `read` into the buffer, linked ahead of its send (zcio/file_read.hpp): one submission.
    // The buffer must hold read.length bytes; buffer.size() of them are sent.
    void read_and_send(SocketId id, Buffer&& buffer, const FileRead& read, Storage handler);
    // Closes the group: its handler runs once every send bound to it has released its buffer
    // (at once, from the next run(), if none is pending).
    void flush(NotifGroup& group);

    // Submits queued work and dispatches completions; waits for at least one event if `wait`.
    // Returns events handled, or -errno / -ETIME.
    int run(bool wait = false, std::chrono::nanoseconds timeout = std::chrono::nanoseconds::zero());
    // Runs until nothing is in flight or queued. Returns 0, or -ETIME after `timeout`.
    int drain(std::chrono::nanoseconds timeout = std::chrono::seconds(30));

    std::size_t inflight_bytes() const noexcept;
    std::size_t inflight_bytes(SocketId id) const;
    std::uint32_t ops_in_use() const noexcept;
    Counters counters() const noexcept;  // the engine's totals: every socket, removed ones too
    const Counters& counters(SocketId id) const;
    bool file_registered(SocketId id) const;  // its requests use the ring's file table
    // Why `auto` copied sends it meant to send zero-copy, with the fix; empty if it never had to
    // (today: the kernel refused to charge pinned pages to RLIMIT_MEMLOCK, see add_socket).
    std::string fallback_reason() const;
    Ring& ring() noexcept;

private:
    std::unique_ptr<detail::SendCore> core_;
};

}  // namespace zcio
