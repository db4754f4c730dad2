// The send path, top to bottom: accept() -> pump() -> prep() -> on_cqe() -> release().
// (What each step is for: src/send_core.hpp. Sockets and shutdown: src/send_engine_sockets.cpp.
// The syscall strategies: src/syscall_sender.cpp. auto: src/auto_policy.cpp.)
#include "send_core.hpp"

#include "invariant.hpp"
#include "uring_compat.hpp"
#include "zcio/error.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace zcio {

using detail::Model;
using detail::Op;
using detail::SendCore;
using detail::SendSocket;

// ---- the public interface --------------------------------------------------------------------------

void SendEngine::send(SocketId id, Buffer&& buffer, TwoStep h, const SendOptions& options) {
    core_->accept(id, std::move(buffer), Model::two_step, std::move(h.on_sent), std::move(h.on_release), nullptr,
                  options);
    core_->rethrow();
}
void SendEngine::send(SocketId id, Buffer&& buffer, Storage h, const SendOptions& options) {
    SentHandler none;
    core_->accept(id, std::move(buffer), Model::storage, std::move(none), std::move(h.on_complete), nullptr, options);
    core_->rethrow();
}
void SendEngine::send(SocketId id, Buffer&& buffer, NotifGroup& group, const SendOptions& options) {
    SentHandler no_sent;
    ReleaseHandler no_release;
    core_->accept(id, std::move(buffer), Model::group, std::move(no_sent), std::move(no_release), &group, options);
    core_->rethrow();
}
void SendEngine::send(SocketId id, BufferChain&& buffers, TwoStep h) {
    core_->accept_chain(id, std::move(buffers), Model::two_step, std::move(h.on_sent), std::move(h.on_release),
                        nullptr);
    core_->rethrow();
}
void SendEngine::send(SocketId id, BufferChain&& buffers, Storage h) {
    SentHandler none;
    core_->accept_chain(id, std::move(buffers), Model::storage, std::move(none), std::move(h.on_complete), nullptr);
    core_->rethrow();
}
void SendEngine::send(SocketId id, BufferChain&& buffers, NotifGroup& group) {
    SentHandler no_sent;
    ReleaseHandler no_release;
    core_->accept_chain(id, std::move(buffers), Model::group, std::move(no_sent), std::move(no_release), &group);
    core_->rethrow();
}
void SendEngine::flush(NotifGroup& group) { core_->flush(group); }

int SendEngine::run(bool wait, std::chrono::nanoseconds timeout) {
    const int r = core_->run(wait, timeout);
    core_->rethrow();
    return r;
}
int SendEngine::drain(std::chrono::nanoseconds timeout) {
    const int r = core_->drain(timeout);
    core_->rethrow();
    return r;
}

namespace detail {

// ---- send(): accept --------------------------------------------------------------------------------

void SendCore::accept(SocketId id, Buffer&& buffer, Model model, SentHandler&& on_sent, ReleaseHandler&& on_release,
                      NotifGroup* group, const SendOptions& options, BufferChain* more, const FileRead* read) {
    SendSocket& s = socket(id);  // throws for a bad id, before anything is taken
    if (group) group->bind();
    Op* op = ops_.take();
    if (!op) [[unlikely]] {
        int refused = 0;
        op = wait_for_op(s, refused);
        if (!op) {
            refuse(s, refused, std::move(buffer), on_sent, on_release, group, more);
            return;
        }
    }
    op->sock = &s;
    op->seq = s.next_seq++;
    op->model = model;
    if (on_sent) op->on_sent = std::move(on_sent);  // a free op's handlers are empty (release, put)
    if (on_release) op->on_release = std::move(on_release);
    op->group = group;
    op->done = 0;
    op->f = {};
    op->error = 0;
    op->used = more ? Strategy::sendmsg_zc : choose(s, buffer, options);
    op->buffer = std::move(buffer);
    op->total = op->buffer.size();
    if (more) {
        op->more = std::move(*more);
        op->total += op->more.bytes();
    }
    op->has_read = read != nullptr;
    if (read) [[unlikely]]
        attach_read(*op, *read);
    ++s.ops;
    ++s.counters.sends;
    const int bad_address = options.to || options.gso_size ? address(s, *op, options) : 0;

    if (!op->buffer || op->total == 0 || !support_.supported(op->used) || s.failed || bad_address) [[unlikely]] {
        // An empty handle is a caller bug; zero bytes is a no-op; an override this kernel lacks;
        // a stream that already broke; a destination or GSO size that cannot be.
        op->error = !op->buffer                     ? -EINVAL
                    : op->total == 0                ? 0
                    : !support_.supported(op->used) ? -EOPNOTSUPP
                    : bad_address                   ? bad_address
                                                    : s.failed;
        op->f.request_done = true;
        ready_.push_back(op);
        return;
    }
    if (!s.stream && s.queue.empty() && !is_syscall(op->used) && room_for(s, *op)) {
        // The common datagram case: nothing queued ahead and room in the bounds: straight to an
        // SQE, without the queue round trip (no order to keep between datagrams).
        count_inflight(s, *op);
        prep(s, *op, false);
        return;
    }
    s.queue.push_back(op);
    pump(s);
}

void SendCore::accept_chain(SocketId id, BufferChain&& chain, Model model, SentHandler&& on_sent,
                            ReleaseHandler&& on_release, NotifGroup* group) {
    Buffer head = chain.empty() ? Buffer{} : std::move(chain[0]);
    BufferChain rest;
    for (std::size_t i = 1; i < chain.size(); ++i) rest.push_back(std::move(chain[i]));
    chain.clear();
    accept(id, std::move(head), model, std::move(on_sent), std::move(on_release), group, SendOptions{}, &rest);
}

// read_and_send() (src/send_engine_file.cpp): accept() is inline here.
void SendCore::accept_read(SocketId id, Buffer&& buffer, const FileRead& read, ReleaseHandler&& on_release) {
    SentHandler none;
    accept(id, std::move(buffer), Model::storage, std::move(none), std::move(on_release), nullptr, SendOptions{},
           nullptr, &read);
}

void SendCore::flush(NotifGroup& group) {
    if (group.close()) due_groups_.push_back(&group);
}

// A per-send destination and GSO size, copied into the op: 0, or why the send cannot go.
int SendCore::address(const SendSocket& s, Op& op, const SendOptions& options) noexcept {
    if (s.stream) return -EINVAL;  // TCP has one peer and cuts its own segments
    op.to_len = 0;
    if (options.to) {
        if (options.to_len < sizeof(sa_family_t) || options.to_len > sizeof op.to) return -EINVAL;
        std::memcpy(&op.to, options.to, options.to_len);
        op.to_len = options.to_len;
    }
    // The socket's own GSO size needs no control message: SEND / SEND_ZC then carry the send.
    op.gso_size = options.gso_size == s.gso_size ? 0 : options.gso_size;
    op.f.addressed = true;
    return 0;
}

// Every slot is in use: drive the loop until a release frees one, but not from inside a
// completion handler (the CQEs being walked are ours) and not forever (a peer that never reads
// would hang us). Null: the send must be refused, for the reason left in `refused`.
Op* SendCore::wait_for_op(SendSocket& s, int& refused) {
    if (ring_.dispatching()) {
        refused = -ENOBUFS;
        return nullptr;
    }
    const auto deadline = std::chrono::steady_clock::now() + opt_.send_wait_timeout;
    for (;;) {
        ++s.counters.waits;
        dispatch_ready();
        if (ring_.run(1, std::chrono::milliseconds(100)) == -ETIME) {
            for (auto& sp : sockets_)
                if (sp && !sp->errq.waiting.empty()) syscalls_.drain_errqueue(*sp);
        }
        if (Op* op = ops_.take()) return op;
        if (std::chrono::steady_clock::now() >= deadline) {
            refused = -ETIMEDOUT;
            return nullptr;
        }
    }
}

// A send that got no slot: the buffer goes straight back, in the caller's hands, with the reason.
void SendCore::refuse(SendSocket& s, int err, Buffer&& buffer, SentHandler& on_sent, ReleaseHandler& on_release,
                      NotifGroup* group, BufferChain* more) {
    ++s.counters.errors;
    Release r{err, 0, Usage::not_reported, s.strategy, std::move(buffer), {}};
    if (more) r.more = std::move(*more);
    if (group) {
        r.buffer.reset();
        r.more.clear();
        if (group->settle(r)) due_groups_.push_back(group);
        return;
    }
    if (on_sent) call([&] { on_sent(SendResult{err}); });
    if (on_release) call([&] { on_release(std::move(r)); });
}

// ---- submission ------------------------------------------------------------------------------------

void SendCore::inflight_underflow(SendSocket& s, Op& op) noexcept {
    ZCIO_INVARIANT(false, s.counters.inflight_underflows, "in-flight bytes would go below zero at a release");
    s.inflight -= std::min(s.inflight, op.total);  // clamped, not wrapped: the bounds stay usable
    inflight_ -= std::min(inflight_, op.total);
}

void SendCore::pump(SendSocket& s) {
    if (s.failed) {
        fail_socket(s, s.failed);
        return;
    }
    if (s.stream && s.chain_inflight > 0) return;  // the next chain waits for this one: order
    // A chain must reach the kernel in one submission: ring.sqe() submits when the SQ fills, and
    // the part after that would run as a second, unordered chain. Reserve the room up front.
    std::uint32_t chain_room = opt_.max_chain;
    if (s.stream) {
        const auto queued = static_cast<unsigned>(std::min<std::size_t>(s.queue.size, opt_.max_chain));
        if (queued > 1) chain_room = ring_.reserve(queued * s.sqes_per_op) / s.sqes_per_op;
    }
    std::uint32_t chained = 0;
    while (!s.queue.empty() && room_for(s, *s.queue.head)) {
        Op* op = s.queue.head;
        if (is_syscall(op->used)) {
            if (s.chain_inflight > 0) break;  // io_uring sends ahead of it must finish first
            s.queue.pop_front();
            count_inflight(s, *op);
            if (syscalls_.send(s, *op) == SyscallSender::done) ready_.push_back(op);
            continue;
        }
        s.queue.pop_front();
        count_inflight(s, *op);
        const bool more = s.stream && !s.queue.empty() && chained + 1 < chain_room && !is_syscall(s.queue.head->used) &&
                          room_for(s, *s.queue.head);
        prep(s, *op, s.stream && more);
        ++chained;
        if (s.stream && !more) break;
    }
    if (!s.queue.empty()) held_back_ = true;
}

void SendCore::prep(SendSocket& s, Op& op, bool link) {
    if (op.has_read) [[unlikely]]
        prep_read(s, op);  // linked ahead of this send, if not done yet
    io_uring_sqe* sqe = ring_.sqe();
    const std::byte* data = op.buffer.data() + op.done;  // single-buffer strategies
    const std::size_t len = op.total - op.done;
    // MSG_WAITALL: on a stream socket the kernel keeps sending until all is queued, so a short
    // result means an error or a signal, and breaks the link chain behind it.
    const int flags = (s.stream ? MSG_WAITALL : 0) | MSG_NOSIGNAL;
    if (op.used == Strategy::sendmsg_zc || (op.f.addressed && needs_msghdr(op))) [[unlikely]] {
        prep_msghdr(s, op, sqe, flags);
    } else {
        switch (op.used) {
        case Strategy::copy: io_uring_prep_send(sqe, s.sqe_fd(), data, len, flags); break;
        case Strategy::zc: io_uring_prep_send_zc(sqe, s.sqe_fd(), data, len, flags, IORING_SEND_ZC_REPORT_USAGE); break;
        case Strategy::zc_fixed:
            io_uring_prep_send_zc_fixed(sqe, s.sqe_fd(), data, len, flags, IORING_SEND_ZC_REPORT_USAGE,
                                        static_cast<unsigned>(op.buffer.buf_index()));
            break;
        default: break;  // syscall strategies never get here
        }
        if (op.f.addressed && op.to_len)  // SEND / SEND_ZC take a destination themselves (addr2)
            io_uring_prep_send_set_addr(sqe, reinterpret_cast<const sockaddr*>(&op.to),
                                        static_cast<std::uint16_t>(op.to_len));
    }
    if (link) sqe->flags |= IOSQE_IO_LINK;
    if (s.file >= 0) sqe->flags |= IOSQE_FIXED_FILE;  // no fget/fput per request
    io_uring_sqe_set_data(sqe, &op);
    op.f.request_inflight = true;
    ++s.chain_inflight;
    ++s.counters.requests;
    ++s.counters.by_strategy[index_of(op.used)];
}

// A GSO size needs a control message, which only the msghdr forms carry; so does a destination
// on a copy when the kernel's SEND takes none.
bool SendCore::needs_msghdr(const Op& op) const noexcept {
    return op.gso_size != 0 || (op.used == Strategy::copy && op.to_len && !kernel_.send_to_address);
}

// The msghdr forms: SENDMSG for a copy, SENDMSG_ZC for the zero-copy strategies, with the buffer
// registered (no pinning per request) when every iovec lies in one registered buffer and the
// kernel takes registered buffers for SENDMSG_ZC.
void SendCore::prep_msghdr(SendSocket& s, Op& op, io_uring_sqe* sqe, int flags) {
    op.build_msghdr();
    if (op.used == Strategy::copy) {
        io_uring_prep_sendmsg(sqe, s.sqe_fd(), &op.msg, static_cast<unsigned>(flags));
        return;
    }
    bool fixed = kernel_.sendmsg_zc_fixed && op.used != Strategy::zc;
    const int index = op.buffer.buf_index();
    fixed = fixed && op.buffer.registered_with(ring_.id());
    for (const Buffer& b : op.more) fixed = fixed && b.registered_with(ring_.id()) && b.buf_index() == index;
    if (op.used == Strategy::zc_fixed && !fixed) {  // the kernel pins these pages: say so
        ++s.counters.fallbacks;
        op.used = Strategy::zc;
    }
    io_uring_prep_sendmsg_zc(sqe, s.sqe_fd(), &op.msg, static_cast<unsigned>(flags));
    sqe->ioprio |= IORING_SEND_ZC_REPORT_USAGE;
    if (fixed) {
        sqe->ioprio |= IORING_RECVSEND_FIXED_BUF;
        sqe->buf_index = static_cast<std::uint16_t>(index);
    }
}

// ---- completion ------------------------------------------------------------------------------------

void SendCore::on_cqe(Completion* c, const io_uring_cqe& cqe) {
    Op& op = *static_cast<Op*>(c);
    SendCore& core = *op.core;
    if (!op.sock) [[unlikely]] {  // a CQE for a free slot
        ZCIO_INVARIANT(false, core.counters_.stray_cqes, "a CQE for a send operation that is not in use");
        return;
    }
    if (cqe.flags & IORING_CQE_F_NOTIF) core.on_notification(op, cqe);
    else core.on_request(op, cqe);
}

void SendCore::on_request(Op& op, const io_uring_cqe& cqe) {
    SendSocket& s = *op.sock;
    if (!op.f.request_inflight || s.chain_inflight == 0) [[unlikely]] {
        ZCIO_INVARIANT(false, s.counters.stray_cqes, "a request CQE for an operation with no request in flight");
        return;
    }
    op.f.request_inflight = false;
    --s.chain_inflight;
    // F_MORE on a zero-copy request: a notification will follow (even for a failed send).
    const int res = cqe.res;
    if (cqe.flags & IORING_CQE_F_MORE) ++op.f.notifs_pending;
    // A zero-copy request cancelled because the link ahead of it failed completes with flags 0 on
    // 6.18, yet its notification still comes when the request is freed (the link-failure path
    // skips the hook that sets F_MORE). Wait for it, or the slot is reused under a live CQE. So does
    // a link member refused with ENOMEM at prep (RLIMIT_MEMLOCK): its notification was made first.
    else if ((res == -ECANCELED || res == -ENOMEM) && op.used != Strategy::copy) ++op.f.notifs_pending;
    if (res >= 0) {
        op.done += static_cast<std::size_t>(res);
        s.counters.bytes += static_cast<std::size_t>(res);
        if (op.done < op.total && s.stream && !s.failed) {
            // Short (a signal, or the peer's window for a non-blocking retry): continue it first.
            ++s.counters.short_sends;
            s.queue.insert_by_seq(&op);
        } else {
            op.f.request_done = true;
        }
    } else if (res == -ECANCELED && !s.failed && !op.error) {
        // The link chain broke ahead of us (a short send or read); we were never issued. Go again,
        // in order. (A linked read of ours decides first: src/send_engine_file.cpp.)
        if (op.has_read) [[unlikely]]
            send_cancelled_after_read(op);
        else s.queue.insert_by_seq(&op);
    } else if (res == -ENOMEM && s.strategy == Strategy::automatic && op.more.empty() && !op.has_read &&
               (op.used == Strategy::zc || op.used == Strategy::sendmsg_zc)) {
        // Nothing sent: the kernel would not charge the pinned pages to RLIMIT_MEMLOCK (no
        // CAP_IPC_LOCK). auto copies this send, and the socket's next ones until a re-probe.
        op.used = Strategy::copy;
        auto_.pinning_refused(s.auto_state, s.counters);
        pinning_refused_ = true;
        s.queue.insert_by_seq(&op);
    } else {
        if (!op.error) op.error = res == -ECANCELED && s.failed ? s.failed : res;
        op.f.request_done = true;
        if (s.stream && !s.failed) s.failed = op.error;
    }
    if (op.f.request_done) {
        fire_sent(op);
        maybe_release(op);
    }
    if (s.chain_inflight == 0) pump(s);
}

void SendCore::on_notification(Op& op, const io_uring_cqe& cqe) {
    SendSocket& s = *op.sock;
    ++s.counters.notifications;
    // F_MORE came first (or the link-failure rule above), so a notification is always expected.
    if (op.f.notifs_pending == 0) [[unlikely]] {
        ZCIO_INVARIANT(false, s.counters.stray_notifications, "a notification no request announced");
        return;
    }
    --op.f.notifs_pending;
    // With REPORT_USAGE the kernel sets the COPIED bit when it copied instead; res is otherwise 0.
    op.f.reported = true;
    if (static_cast<std::uint32_t>(cqe.res) & IORING_NOTIF_USAGE_ZC_COPIED) op.f.copied = true;
    else op.f.zero_copy = true;
    maybe_release(op);
}

// on_sent, in one place (fire_sent): TwoStep's first step, once, when no more requests will be
// issued. (Syscall strategies and refused sends have no separate "sent" event: it comes just
// before the release.)
void SendCore::fire_sent_now(Op& op) {
    SentHandler h = std::move(op.on_sent);
    const SendResult result{op.error ? op.error : static_cast<int>(op.done)};
    call([&] { h(result); });
}

void SendCore::fail_socket(SendSocket& s, int err) {
    if (!s.failed) s.failed = err;
    while (!s.queue.empty()) {
        Op* op = s.queue.pop_front();
        op->error = err;
        op->f.request_done = true;
        fire_sent(*op);
        maybe_release(*op);
    }
}

void SendCore::release(Op& op) {
    SendSocket& s = *op.sock;
    fire_sent(op);
    uncount_inflight(s, op);
    Usage usage = Usage::not_reported;
    if (op.used == Strategy::copy || op.used == Strategy::plain) usage = Usage::copied;
    else if (op.f.copied) usage = Usage::copied;  // any part copied counts as copied
    else if (op.f.zero_copy) usage = Usage::zero_copy;
    if (op.error) ++s.counters.errors;
    if (usage == Usage::zero_copy) ++s.counters.zero_copy;
    else if (usage == Usage::copied) ++s.counters.copied;
    else ++s.counters.not_reported;
    if (s.strategy == Strategy::automatic && is_zero_copy(op.used))
        auto_.learn(s.auto_state, {op.f.reported, op.f.copied, op.error != 0}, s.counters);

    Release r{op.error, op.done, usage, op.used, std::move(op.buffer), {}};
    if (op.used == Strategy::sendmsg_zc && !op.more.empty()) r.more = std::move(op.more);  // gathered
    --s.ops;
    if (op.model == Model::group) {
        NotifGroup* group = op.group;
        ops_.put(&op);
        r.buffer.reset();  // back to its arena now: the kernel is done with it
        r.more.clear();
        if (group->settle(r)) fire_group(*group);
    } else {
        // Called in place (moving an InplaceFunction is an indirect call); the slot is freed right
        // after. The handler may send again: it gets another slot.
        if (op.on_release) call([&] { op.on_release(std::move(r)); });
        ops_.put(&op);
    }
    if (s.can_pump()) pump(s);
    // The engine-wide bound may have held other sockets back.
    if (held_back_ && inflight_ < opt_.max_inflight_bytes) pump_held_back(s);
}

// Only when some pump() stopped at a bound: scanning every socket per release is O(sockets).
void SendCore::pump_held_back(const SendSocket& released) {
    held_back_ = false;                                  // each pump below sets it again if it is still held back
    for (std::size_t i = 0; i < sockets_.size(); ++i) {  // by index: a handler may add sockets
        SendSocket* o = sockets_[i].get();
        if (!o || o->queue.empty()) continue;
        if (o != &released && o->can_pump()) pump(*o);
        else held_back_ = true;  // a stream chain still out, or the socket just pumped
    }
}

void SendCore::fire_group(NotifGroup& g) {
    call([&] { g.fire(); });
}

// ---- the loop --------------------------------------------------------------------------------------

int SendCore::dispatch_ready() {
    int n = 0;
    while (!ready_.empty()) {
        release(*ready_.pop_front());
        ++n;
    }
    while (!due_groups_.empty()) {
        NotifGroup* g = due_groups_.back();
        due_groups_.pop_back();
        if (g->due()) fire_group(*g);
        ++n;
    }
    return n;
}

int SendCore::run(bool wait, std::chrono::nanoseconds timeout) {
    const int n = dispatch_ready();
    const int r = ring_.run(wait && n == 0 ? 1 : 0, timeout);
    if (r < 0) return n > 0 ? n : r;
    return n + r + dispatch_ready();
}

int SendCore::drain(std::chrono::nanoseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!idle()) {
        const auto left = deadline - std::chrono::steady_clock::now();
        if (left <= std::chrono::nanoseconds::zero()) return -ETIME;
        const int r = run(true, std::min<std::chrono::nanoseconds>(left, std::chrono::milliseconds(100)));
        if (r < 0 && r != -ETIME) return r;
    }
    return 0;
}

// ---- handlers that throw -----------------------------------------------------------------------------

void SendCore::defer(std::exception_ptr e) noexcept {
    if (!deferred_) {
        deferred_ = std::move(e);
        return;
    }
    report_unthrown(e, "another handler's exception was already waiting to be thrown");
}

// An exception that cannot reach a caller is at least not silent.
void SendCore::report_unthrown(const std::exception_ptr& e, const char* why) noexcept {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        std::fprintf(stderr, "zcio: a send handler threw (%s): %s\n", why, x.what());
    } catch (...) {
        std::fprintf(stderr, "zcio: a send handler threw a non-std exception (%s)\n", why);
    }
}

void SendCore::throw_deferred() {
    if (handler_depth_ > 0 || ring_.dispatching()) return;  // the outermost call throws it
    std::rethrow_exception(std::exchange(deferred_, nullptr));
}

}  // namespace detail
}  // namespace zcio
