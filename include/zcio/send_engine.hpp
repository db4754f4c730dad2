// SendEngine: every way Linux can send a buffer, behind one interface, with the truth about each.
//
// Strategies (per socket, or per send among the io_uring ones):
//   plain        blocking send(2)                              the baseline everyone has
//   copy         IORING_OP_SEND                                io_uring, kernel copies
//   msg_zerocopy send(2) + MSG_ZEROCOPY, error-queue notices   the classic zero-copy
//   zc           IORING_OP_SEND_ZC                             pages pinned per request
//   zc_fixed     SEND_ZC + IORING_RECVSEND_FIXED_BUF           registered arena: no pinning
//   sendmsg_zc   IORING_OP_SENDMSG_ZC (+ fixed where allowed)  the msghdr form
//   automatic    copy below a size threshold, zero-copy above; a socket whose sends the kernel
//                reports as copied (loopback) switches to copy and re-probes now and then.
//
// Completion models (the talk's): TwoStep (on_sent when the data is queued, on_release when the
// buffer is free again, with the usage report), Storage (one completion when the buffer is free),
// and NotifGroup (bind many sends to a group, flush it, one event when every buffer is free).
//
// Stream sockets keep their byte stream exact: sends go out in order as linked chains, a short send
// is continued, and a broken chain is re-issued. Bytes in flight are bounded per socket and per
// engine; sends beyond the bound queue, and send() drives the loop when no operation slot is free.
// Every buffer comes back exactly once, through its completion, whatever happened.
//
//   zcio::SendEngine engine(ring);
//   auto sock = engine.add_socket(fd, {.strategy = zcio::Strategy::zc_fixed});
//   engine.send(sock, arena.take(), zcio::Storage{[](zcio::Release r) { /* r.usage, r.buffer */ }});
//   engine.drain();                            // run the loop until everything is released
#pragma once

#include "zcio/buffer.hpp"
#include "zcio/inplace_function.hpp"
#include "zcio/probe.hpp"
#include "zcio/ring.hpp"

#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace zcio {

enum class Strategy : std::uint8_t { plain, copy, msg_zerocopy, zc, zc_fixed, sendmsg_zc, automatic };
inline constexpr Strategy all_strategies[] = {Strategy::plain, Strategy::copy,       Strategy::msg_zerocopy,
                                              Strategy::zc,    Strategy::zc_fixed,   Strategy::sendmsg_zc,
                                              Strategy::automatic};
const char* to_string(Strategy s) noexcept;                 // "zc-fixed", "auto", ...
std::optional<Strategy> parse_strategy(std::string_view name) noexcept;
bool is_zero_copy(Strategy s) noexcept;                     // msg_zerocopy, zc, zc_fixed, sendmsg_zc

// What the kernel really did with the pages of one send.
enum class Usage : std::uint8_t {
    zero_copy,     // the notification said the pages went out as they were
    copied,        // a copy strategy, or the notification said the kernel copied (loopback, veth...)
    not_reported,  // zero-copy without a usage report (old kernel), or the send failed before
};
const char* to_string(Usage u) noexcept;

// First step of TwoStep: the data is in the socket (or failed). res: bytes, or -errno.
struct SendResult {
    int res = 0;
};

// The buffer is free again. Exactly one per send, whatever happened.
struct Release {
    int error = 0;              // 0, or -errno (ECONNRESET, EPIPE, ECANCELED on shutdown, ...)
    std::size_t bytes = 0;      // bytes of the buffer the kernel accepted
    Usage usage = Usage::not_reported;
    Strategy used = Strategy::copy;  // what really carried it (after auto's choice and fallbacks)
    Buffer buffer;              // yours again
    BufferChain more;           // a gathered send's other buffers (empty for a single buffer)
};

using SentHandler = InplaceFunction<void(const SendResult&), 48>;
using ReleaseHandler = InplaceFunction<void(Release&&), 48>;

struct TwoStep {
    SentHandler on_sent;
    ReleaseHandler on_release;
};
struct Storage {
    ReleaseHandler on_complete;
};

struct GroupResult {
    std::uint32_t sends = 0;
    std::uint64_t bytes = 0;
    std::uint32_t zero_copy = 0;   // releases reported zero-copy
    std::uint32_t copied = 0;      // releases reported copied
    std::uint32_t errors = 0;
    int first_error = 0;
};

// The talk's "slots + flush": sends bound to a group release their buffers back to their homes
// (arena) silently; after flush(), the group's handler runs once, when the last of them is free.
// A send bound after flush() but before that event joins it (nothing is lost or counted twice;
// flushing again meanwhile changes nothing); the first send or flush after the event starts a
// new round. The group must outlive its sends.
class NotifGroup {
public:
    using Handler = InplaceFunction<void(const GroupResult&), 48>;
    explicit NotifGroup(Handler on_flushed) : on_flushed_(std::move(on_flushed)) {}
    NotifGroup(const NotifGroup&) = delete;
    NotifGroup& operator=(const NotifGroup&) = delete;
    std::uint32_t pending() const noexcept { return pending_; }
    bool flushed() const noexcept { return flushed_; }

private:
    friend class SendEngine;
    Handler on_flushed_;
    GroupResult result_{};
    std::uint32_t pending_ = 0;
    bool flushed_ = false;
    bool fired_ = false;  // this round's event ran
};

struct Counters {
    std::uint64_t sends = 0;           // send() calls accepted
    std::uint64_t bytes = 0;           // bytes the kernel accepted
    std::uint64_t requests = 0;        // SQEs / syscalls issued (continuations included)
    std::uint64_t short_sends = 0;     // partial sends that were continued
    std::uint64_t notifications = 0;   // notification CQEs / error-queue notices
    std::uint64_t zero_copy = 0;       // releases the kernel reported as zero-copy
    std::uint64_t copied = 0;          // releases that were copied (reported, or a copy strategy)
    std::uint64_t not_reported = 0;
    std::uint64_t errors = 0;          // releases with an error
    std::uint64_t fallbacks = 0;       // a strategy replaced by another (e.g. ENOBUFS -> copy)
    std::uint64_t auto_to_copy = 0;    // auto: socket switched to copy after copied reports
    std::uint64_t auto_to_zc = 0;      // auto: a re-probe found zero-copy working again
    std::uint64_t auto_probes = 0;     // auto: zero-copy sends tried on a copy-switched socket
    std::uint64_t auto_small = 0;      // auto: sends below the threshold, copied by choice
    std::uint64_t waits = 0;           // send() had to drive the loop for a free slot
    std::uint64_t stray_cqes = 0;      // CQEs for no live operation: must stay 0 (a bug detector)
    std::uint64_t by_strategy[7] = {}; // requests per Strategy actually used

    Counters& operator+=(const Counters& o) noexcept;
};

struct SocketOptions {
    Strategy strategy = Strategy::automatic;
    std::size_t max_inflight_bytes = 8u << 20;  // submitted and not yet released
    std::uint16_t udp_gso_size = 0;             // UDP_SEGMENT: the kernel cuts each send into these
};

struct EngineOptions {
    std::size_t max_inflight_bytes = 256u << 20;
    std::uint32_t max_ops = 4096;               // operations in flight or queued, allocated once
    std::uint32_t max_chain = 32;               // linked sends per stream socket per submission
    // auto: copy below this payload (measured on this machine: zero-copy pays from ~8-16 KB).
    std::size_t auto_threshold = 8192;
    std::uint32_t auto_copied_streak = 4;       // copied reports in a row before switching to copy
    std::uint32_t auto_reprobe_every = 4096;    // sends on a copy-switched socket per re-probe
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
    // Fails every queued send, waits for the in-flight ones; afterwards the id is invalid.
    void remove_socket(SocketId id);
    // Changes a socket's strategy. -EBUSY when switching between a syscall strategy (plain,
    // msg_zerocopy) and an io_uring one while sends are in flight: the stream order would break.
    int set_strategy(SocketId id, Strategy s);
    Strategy strategy(SocketId id) const;

    // The hot path. The buffer is the engine's until its release. Errors arrive in the release.
    // `override` picks another io_uring strategy for this one send (one the kernel lacks fails
    // that send with -EOPNOTSUPP).
    void send(SocketId id, Buffer&& buffer, TwoStep handlers, std::optional<Strategy> override = {});
    void send(SocketId id, Buffer&& buffer, Storage handler, std::optional<Strategy> override = {});
    void send(SocketId id, Buffer&& buffer, NotifGroup& group, std::optional<Strategy> override = {});
    // Scatter-gather: the chain's buffers go as one message (IORING_OP_SENDMSG_ZC, registered
    // buffers where the kernel allows), whatever the socket's strategy; one release for all.
    void send(SocketId id, BufferChain&& buffers, TwoStep handlers);
    void send(SocketId id, BufferChain&& buffers, Storage handler);
    void send(SocketId id, BufferChain&& buffers, NotifGroup& group);
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
    Counters counters() const noexcept;      // the engine's totals: every socket, removed ones too
    const Counters& counters(SocketId id) const;
    bool file_registered(SocketId id) const;  // its requests use the ring's file table
    // Why `auto` copied sends it meant to send zero-copy, once, with the fix; empty if it never had to
    // (today: the kernel refused to charge pinned pages to RLIMIT_MEMLOCK, see add_socket).
    std::string fallback_reason() const;
    Ring& ring() noexcept;

    struct State;  // implementation detail, public only so the .cpp's helpers can name it

private:
    std::unique_ptr<State> s_;
};

}  // namespace zcio
