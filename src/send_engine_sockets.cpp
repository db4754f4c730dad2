// The engine's set-up and tear-down: construction, sockets coming and going, and shutdown — the
// cold half of SendEngine (the hot path is src/send_engine.cpp).
#include "send_core.hpp"

#include "pinned_memory.hpp"
#include "zcio/error.hpp"

#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

namespace zcio {

namespace {

void check(const Ring& ring, const EngineOptions& options) {
    if (options.max_ops == 0 || options.max_ops > (1u << 20))
        throw SetupError("SendEngine: max_ops must be 1..1048576", 0);
    if (options.max_chain == 0) throw SetupError("SendEngine: max_chain must be > 0", 0);
    if (ring.cq_entries() < 2 * ring.sq_entries())
        throw SetupError("SendEngine: the ring's CQ (" + std::to_string(ring.cq_entries()) + ") is under twice its SQ",
                         0, "every zero-copy send posts two CQEs: set RingOptions::cq_entries >= 2 x sq_entries");
}

int enable_msg_zerocopy(int fd) {
    int one = 1;
    return ::setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof one) == 0 ? 0 : -errno;
}

}  // namespace

SendEngine::SendEngine(Ring& ring, const EngineOptions& options) {
    check(ring, options);
    core_ = std::make_unique<detail::SendCore>(ring, options);
}

SendEngine::~SendEngine() = default;  // ~SendCore shuts down

SocketId SendEngine::add_socket(int fd, const SocketOptions& options) { return core_->add_socket(fd, options); }
int SendEngine::remove_socket(SocketId id) {
    const int r = core_->remove_socket(id);
    core_->rethrow();
    return r;
}
int SendEngine::set_strategy(SocketId id, Strategy s) { return core_->set_strategy(id, s); }
Strategy SendEngine::strategy(SocketId id) const { return core_->socket(id).strategy; }

std::size_t SendEngine::inflight_bytes() const noexcept { return core_->inflight(); }
std::size_t SendEngine::inflight_bytes(SocketId id) const { return core_->socket(id).inflight; }
std::uint32_t SendEngine::ops_in_use() const noexcept { return core_->ops_in_use(); }
Counters SendEngine::counters() const noexcept { return core_->totals(); }
const Counters& SendEngine::counters(SocketId id) const { return core_->socket(id).counters; }
bool SendEngine::file_registered(SocketId id) const { return core_->socket(id).file >= 0; }
std::string SendEngine::fallback_reason() const { return core_->fallback_reason(); }
Ring& SendEngine::ring() noexcept { return core_->ring(); }

namespace detail {

SendCore::SendCore(Ring& ring, const EngineOptions& o)
    : ring_(ring),
      opt_(o),
      kernel_(o.features ? *o.features : probe()),
      support_(kernel_),
      auto_({.threshold = o.auto_threshold,
             .copied_streak = o.auto_copied_streak,
             .reprobe_every = o.auto_reprobe_every,
             .window = o.auto_window},
            support_),
      syscalls_(*this, ring),
      ops_(o.max_ops, &SendCore::on_cqe, this) {}

void SendCore::unknown_socket(SocketId id) {
    throw SetupError("SendEngine: unknown socket id " + std::to_string(id), 0,
                     "use the id add_socket() returned, before remove_socket()");
}

std::string SendCore::fallback_reason() const {
    if (!pinning_refused_) return {};
    return "auto copied sends the kernel refused to pin (ENOMEM): " + pinned_send_advice();
}

Counters SendCore::totals() const noexcept {
    // Kept per socket only (one increment on the hot path, not two) and summed here.
    Counters sum = counters_;
    for (const auto& sp : sockets_)
        if (sp) sum += sp->counters;
    return sum;
}

SocketId SendCore::add_socket(int fd, const SocketOptions& options) {
    int type = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0)
        throw SetupError("SendEngine::add_socket: fd " + std::to_string(fd) + " is not a socket", errno);
    if (type != SOCK_STREAM && type != SOCK_DGRAM)
        throw SetupError("SendEngine::add_socket: only SOCK_STREAM and SOCK_DGRAM sockets are supported", 0);
    if (options.max_inflight_bytes == 0) throw SetupError("SendEngine::add_socket: max_inflight_bytes must be > 0", 0);
    if (!support_.supported(options.strategy))
        throw SetupError("SendEngine::add_socket: " + support_.missing(options.strategy), 0,
                         "pick another --strategy, or `auto`, which adapts (see `zcperf --features`)");
    if (options.strategy == Strategy::zc || options.strategy == Strategy::sendmsg_zc) {
        // Fail now, not mid-run, when the kernel will not charge the pages this socket may pin.
        const std::size_t bound = std::min(options.max_inflight_bytes, opt_.max_inflight_bytes);
        if (try_pinned_charge(bound) == -ENOMEM)
            throw SetupError(std::string("SendEngine::add_socket: strategy ") + to_string(options.strategy) +
                                 " would pin up to " + memory_size_text(bound) +
                                 " in flight, which the kernel refuses to charge now (ENOMEM)",
                             0,
                             pinned_send_advice() +
                                 "; or use `auto` (copies what cannot be charged), or a smaller max_inflight_bytes");
    }
    auto sock = std::make_unique<SendSocket>();
    sock->core = this;
    sock->fd = fd;
    sock->stream = type == SOCK_STREAM;
    sock->strategy = options.strategy;
    sock->max_inflight = options.max_inflight_bytes;
    sock->errq.poll.fn = &SyscallSender::on_poll;
    sock->errq.poll.sock = sock.get();
    if (options.udp_gso_size) {
        if (sock->stream) throw SetupError("SendEngine::add_socket: udp_gso_size on a TCP socket", 0);
        int gso = options.udp_gso_size;
        if (::setsockopt(fd, SOL_UDP, UDP_SEGMENT, &gso, sizeof gso) != 0)
            throw SetupError("SendEngine::add_socket: setsockopt(UDP_SEGMENT) failed", errno,
                             "UDP GSO needs Linux 4.18+ and a UDP socket");
        sock->gso_size = options.udp_gso_size;
    }
    if (options.strategy == Strategy::msg_zerocopy) {
        if (const int r = enable_msg_zerocopy(fd); r < 0)
            throw SetupError("SendEngine::add_socket: setsockopt(SO_ZEROCOPY) failed", -r,
                             "MSG_ZEROCOPY needs Linux 4.14+ (TCP) / 5.0+ (UDP)");
        sock->errq.enabled = true;
    }
    // Last, when nothing above can throw: a registered file is released only by remove_socket().
    if (opt_.register_files) sock->file = ring_.register_file(fd);  // -errno: the plain fd serves
    for (SocketId id = 0; id < sockets_.size(); ++id)
        if (!sockets_[id]) {
            sockets_[id] = std::move(sock);
            return id;
        }
    sockets_.push_back(std::move(sock));
    return static_cast<SocketId>(sockets_.size() - 1);
}

int SendCore::remove_socket(SocketId id) {
    SendSocket& s = socket(id);
    if (ring_.dispatching())
        throw SetupError("SendEngine::remove_socket called from a completion handler", 0,
                         "it waits for the socket's releases, which only the loop can deliver: call it "
                         "from outside the handlers");
    fail_socket(s, -ECANCELED);
    if (s.chain_inflight > 0 || s.errq.poll.armed) cancel_all(s);
    const auto deadline = std::chrono::steady_clock::now() + opt_.shutdown_timeout;
    while (s.ops > 0 || s.errq.poll.armed) {
        if (std::chrono::steady_clock::now() >= deadline) return -ETIMEDOUT;  // still added, failed
        if (!s.errq.waiting.empty()) syscalls_.drain_errqueue(s);
        run(true, std::chrono::milliseconds(100));
    }
    ring_.unregister_file(s.file);  // the table's reference goes: close() ends the socket again
    counters_ += s.counters;        // its history stays in the engine's totals
    sockets_[id].reset();
    return 0;
}

Op& SendCore::test_inflight_op(SocketId id, std::size_t bytes) {
    SendSocket& s = socket(id);
    Op* op = ops_.take();
    if (!op) throw SetupError("SendCore::test_inflight_op: no free op", 0);
    op->sock = &s;
    op->f = {};
    op->error = 0;
    op->done = 0;
    op->used = Strategy::zc;
    op->model = Model::storage;
    op->total = bytes;
    op->seq = s.next_seq++;
    ++s.ops;
    count_inflight(s, *op);
    op->f.request_inflight = true;
    ++s.chain_inflight;
    return *op;
}

int SendCore::set_strategy(SocketId id, Strategy strategy) {
    SendSocket& s = socket(id);
    if (is_syscall(strategy) != is_syscall(s.strategy) && s.ops > 0) return -EBUSY;
    if (strategy == Strategy::msg_zerocopy && !s.errq.enabled) {
        if (const int r = enable_msg_zerocopy(s.fd); r < 0) return r;
        s.errq.enabled = true;
    }
    s.strategy = strategy;
    return 0;
}

// Cancels every request on the socket's file (by its table slot when it has one: that works even
// after the caller closed the fd).
void SendCore::cancel_all(const SendSocket& s) {
    io_uring_sqe* sqe = ring_.sqe();
    if (s.file >= 0) io_uring_prep_cancel_fd(sqe, s.file, IORING_ASYNC_CANCEL_ALL | IORING_ASYNC_CANCEL_FD_FIXED);
    else io_uring_prep_cancel_fd(sqe, s.fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data(sqe, nullptr);
}

// Fail what never reached the kernel, cancel what did, then wait for every CQE that can still
// point into our operations.
void SendCore::shutdown() noexcept {
    for (auto& sp : sockets_)
        if (sp) fail_socket(*sp, sp->failed ? sp->failed : -ECANCELED);
    for (auto& sp : sockets_)
        if (sp && (sp->chain_inflight > 0 || sp->ops > 0)) cancel_all(*sp);
    const auto deadline = std::chrono::steady_clock::now() + opt_.shutdown_timeout;
    while ((ops_.in_use() > 0 || !ready_.empty()) && std::chrono::steady_clock::now() < deadline) {
        dispatch_ready();
        for (auto& sp : sockets_)
            if (sp && !sp->errq.waiting.empty()) syscalls_.drain_errqueue(*sp);
        try {
            ring_.run(1, std::chrono::milliseconds(10));
        } catch (...) {
            defer(std::current_exception());  // another user of the ring threw: report it below
        }
    }
    if (!park_if_kernel_holds_ops())  // every request is done: the table's references go with us
        for (auto& sp : sockets_)
            if (sp) ring_.unregister_file(sp->file);
    if (deferred_) report_unthrown(std::exchange(deferred_, nullptr), "~SendEngine cannot throw it");
}

// The kernel still holds requests (a peer that never acknowledges keeps notifications back) and
// so still reads their pages. Nothing can tell when it stops, so those buffers never go home:
// they are quarantined (counted in the arena, never handed out again), and their handlers hear
// -ETIMEDOUT with no buffer. The CQEs still to come name our operations: keep that memory until
// the ring is gone, and make those CQEs harmless.
bool SendCore::park_if_kernel_holds_ops() noexcept {
    bool parked = ops_.in_use() > 0;
    for (auto& sp : sockets_) parked |= sp && sp->errq.poll.armed;
    if (!parked) return false;
    for (std::uint32_t i = 0; i < ops_.size(); ++i) {
        Op& op = ops_[i];
        op.fn = [](Completion*, const io_uring_cqe&) {};
        op.read.fn = op.fn;  // a linked file read still in the kernel lands here too
        if (!op.sock) continue;
        op.buffer.quarantine();
        for (Buffer& b : op.more) b.quarantine();
        op.more.clear();
        op.error = -ETIMEDOUT;
        op.f.request_done = true;
        op.f.request_inflight = false;
        op.f.notifs_pending = 0;
        op.f.reported = op.f.copied = op.f.zero_copy = false;
        release(op);  // handler (or group) told; the slot is not reused: the engine is going
    }
    for (auto& sp : sockets_)
        if (sp) sp->errq.poll.fn = [](Completion*, const io_uring_cqe&) {};
    ring_.keep_until_exit(ops_.memory());
    ring_.keep_until_exit(std::make_shared<std::vector<std::unique_ptr<SendSocket>>>(std::move(sockets_)));
    return true;
}

}  // namespace detail
}  // namespace zcio
