// Receiver: many connections, one thread, one interface over every way Linux can receive.
//
// Strategies: `plain` (non-blocking sockets, epoll_wait, recv() into a pool — the loop every
// server already has), `multishot` (one armed io_uring recv per connection drawing from a shared
// provided-buffer ring), `bundle` (the same, several buffers per completion), `zcrx` (NIC writes
// into our memory; falls back to multishot where the device cannot) and `automatic` (the best the
// kernel and device allow). What was asked for, what runs, and why it differs are readable, as are
// counters of every receive syscall the program makes.
//
//   auto rx = zcio::make_receiver({.strategy = zcio::RecvStrategy::bundle});
//   rx->on_event([&](zcio::RecvEvent&& ev) {          // once per buffer, then once at the end
//       if (ev.result > 0) parse(ev.conn, ev.data.bytes()); else close_conn(ev.conn, ev.result);
//   });
//   for (int fd : accepted) rx->add(fd);
//   while (running) rx->poll(std::chrono::milliseconds(10));
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "zcio/inplace_function.hpp"
#include "zcio/recv_buffer.hpp"

namespace zcio {

enum class RecvStrategy : std::uint8_t { plain, multishot, bundle, zcrx, automatic };

std::string_view to_string(RecvStrategy s) noexcept;
// "plain", "multishot", "bundle", "zcrx", "auto".
std::optional<RecvStrategy> parse_recv_strategy(std::string_view name) noexcept;

struct RecvCounters {
    std::uint64_t bytes = 0;
    std::uint64_t buffers = 0;          // views delivered
    std::uint64_t io_uring_enters = 0;  // io_uring_enter calls made by poll()
    std::uint64_t epoll_waits = 0;
    std::uint64_t recv_calls = 0;        // recv(2) calls, including those answering EAGAIN
    std::uint64_t buffers_recycled = 0;  // buffers handed back to the kernel / pool
    std::uint64_t rearms = 0;            // multishot receives re-armed after they ended (ENOBUFS, no F_MORE)
    std::uint64_t exhaustions = 0;       // completions saying the buffer ring was empty (ENOBUFS)
    std::uint64_t fallbacks = 0;         // strategies or options refused and replaced at set-up
    std::uint64_t eofs = 0;
    std::uint64_t errors = 0;
    std::uint64_t syscalls() const noexcept { return io_uring_enters + epoll_waits + recv_calls; }
};

using ConnectionId = std::uint32_t;

struct RecvEvent {
    ConnectionId conn = 0;
    // > 0: `data` holds that many bytes. 0: the peer closed (EOF). < 0: -errno. A result <= 0 is
    // the connection's last event; the receiver has forgotten it and the caller may close the fd.
    int result = 0;
    RecvBuffer data;
};

using RecvHandler = InplaceFunction<void(RecvEvent&&), 48>;

struct ReceiverOptions {
    RecvStrategy strategy = RecvStrategy::automatic;
    std::uint32_t max_connections = 1024;
    // Multishot/bundle: provided-buffer ring of buffer_count (power of two) x buffer_size, shared by
    // every connection. Plain: a pool of as many recv() buffers.
    std::uint32_t buffer_count = 256;
    std::uint32_t buffer_size = 16 << 10;
    bool incremental = false;          // multishot: IOU_PBUF_RING_INC where the kernel has it
    std::uint32_t ring_entries = 256;  // io_uring SQ size (CQ is 8x)
    // io_uring strategies: a waiting poll() asks the kernel for up to `wait_batch` completions per
    // io_uring_enter (never more than the connections it receives on: one stream's data is taken
    // as soon as it arrives), but waits for more than one at most `batch_wait`; then it takes what
    // has arrived, or goes on waiting for the first. Fewer wake-ups and syscalls, bigger batches,
    // at most `batch_wait` of added latency. 1: wake on the first completion.
    std::uint32_t wait_batch = 8;
    std::chrono::microseconds batch_wait{50};
    std::uint16_t buffer_group = 0;
    // zcrx (strategy zcrx, or automatic when `interface` is set)
    std::string interface {};
    std::uint32_t rx_queue = 0;
    std::size_t zcrx_area_size = 16 << 20;
    int dmabuf_fd = -1;
    bool require_zcrx = false;  // throw SetupError instead of falling back
};

class Receiver {
public:
    virtual ~Receiver() = default;
    Receiver(const Receiver&) = delete;
    Receiver& operator=(const Receiver&) = delete;

    // Starts receiving on a connected TCP socket or a bound UDP socket. The caller keeps owning
    // the fd. Returns the connection id, or -errno (-ENOSPC: max_connections reached).
    virtual int add(int fd) = 0;
    // Stops receiving on `conn`: no event for it follows; its id may be reused later.
    virtual int remove(ConnectionId conn) = 0;

    // The callback every event goes to (set it before the first poll).
    void on_event(RecvHandler handler) noexcept { handler_ = std::move(handler); }
    // Waits up to `timeout` (zero: not at all) for data, delivering every event to the handler.
    // Returns events delivered (0 on timeout), or -errno of the wait.
    virtual int poll(std::chrono::nanoseconds timeout) = 0;
    // Pull style: the same, appending events to `out` instead of calling the handler.
    int poll(std::chrono::nanoseconds timeout, std::vector<RecvEvent>& out);

    virtual RecvCounters counters() const = 0;
    // Buffers delivered whose views are still alive (0 when every view has been dropped).
    virtual std::uint64_t buffers_held() const = 0;
    virtual std::size_t connections() const = 0;

    RecvStrategy requested() const noexcept { return requested_; }
    RecvStrategy strategy() const noexcept { return effective_; }
    // Why strategy() differs from requested() or an option was dropped, e.g. "zcrx unavailable on
    // lo: EOPNOTSUPP (Operation not supported); using multishot buffer ring". Empty if nothing fell back.
    const std::string& fallback_reason() const noexcept { return fallback_reason_; }
    // "bundle (requested auto), ring SINGLE_ISSUER|..., 256 x 16384 B buffers"
    virtual std::string describe() const = 0;

protected:
    explicit Receiver(RecvStrategy requested) noexcept : requested_(requested), effective_(requested) {}
    void deliver(RecvEvent&& ev);
    int drain_backlog();
    void note_fallback(std::string reason);

    RecvStrategy requested_;
    RecvStrategy effective_;
    std::string fallback_reason_;
    RecvCounters counters_;
    int delivered_ = 0;

private:
    RecvHandler handler_;
    std::vector<RecvEvent> backlog_;  // events that arrived with no handler set
};

// Builds the receiver for options.strategy, falling back as documented. Throws SetupError.
std::unique_ptr<Receiver> make_receiver(const ReceiverOptions& options);

}  // namespace zcio
