#include "uring_receiver.hpp"

#include <algorithm>
#include <cerrno>

#include "uring_compat.hpp"
#include "zcio/error.hpp"

namespace zcio {

namespace {

bool wants_zcrx(const ReceiverOptions& o) {
    return o.strategy == RecvStrategy::zcrx || (o.strategy == RecvStrategy::automatic && !o.interface.empty());
}

RingOptions ring_options(const ReceiverOptions& o) {
    RingOptions r;
    r.sq_entries = o.ring_entries;
    r.cqe32 = wants_zcrx(o);  // RECV_ZC completions are 32 bytes
    return r;
}

// errno_string without the explanation: "EOPNOTSUPP".
std::string errno_name(int err) {
    std::string s = errno_string(err);
    return s.substr(0, s.find(' '));
}

// Why a zcrx registration was refused, in a few words: the fallback is one line, and the NIC
// set-up (zcrx_nic_problems, zcrx_setup_commands) is for whoever asked for zcrx by name.
std::string zcrx_refusal(int err, const std::string& interface) {
    switch (err) {
    case EOPNOTSUPP: return interface + " has no queue-management support for it";
    case EPERM: return "registering a zcrx queue needs CAP_NET_ADMIN";
    case ENODEV: return "no such interface";
    case EINVAL: return "the kernel refused the queue's set-up";
    default: return "the kernel refused the registration";
    }
}

// auto: connections from which a bundle (several buffers per completion) beats multishot.
constexpr std::uint32_t bundle_from_connections = 16;

}  // namespace

UringReceiver::UringReceiver(const ReceiverOptions& options)
    : Receiver(options.strategy), ring_(ring_options(options)) {
    if (options.strategy == RecvStrategy::plain)
        throw SetupError("UringReceiver cannot run the plain strategy", EINVAL, "use make_receiver()");
    const bool supports_bundle = (ring_.features() & IORING_FEAT_RECVSEND_BUNDLE) != 0;
    // Where zcrx is refused, what runs instead: multishot when zcrx was asked for by name (the same
    // one-buffer-per-completion model), the best buffer-ring mode when the choice was ours: for a
    // few bulk streams multishot (one 128 KiB TCP stream from iperf3 -c: 1.03-1.08x bundle's
    // throughput in 7 of 7 alternating rounds), for many connections bundles (up to 1.09x
    // multishot at 256 connections, README's receive table).
    const bool many = options.max_connections >= bundle_from_connections;
    RecvStrategy buffer_mode = options.strategy == RecvStrategy::multishot        ? RecvStrategy::multishot
                               : options.strategy == RecvStrategy::zcrx           ? RecvStrategy::multishot
                               : options.strategy == RecvStrategy::bundle || many ? RecvStrategy::bundle
                                                                                  : RecvStrategy::multishot;
    if (wants_zcrx(options)) {
        try {
            zcrx_ = std::make_unique<ZcrxQueue>(ring_, ZcrxConfig{.interface = options.interface,
                                                                  .rx_queue = options.rx_queue,
                                                                  .area_size = options.zcrx_area_size,
                                                                  .dmabuf_fd = options.dmabuf_fd});
            effective_ = RecvStrategy::zcrx;
        } catch (const SetupError& e) {
            if (options.require_zcrx) throw;
            note_fallback("zcrx unavailable on " + options.interface + ": " + errno_name(e.error()) + " (" +
                          zcrx_refusal(e.error(), options.interface) + "); using " +
                          (buffer_mode == RecvStrategy::bundle && supports_bundle ? "bundle" : "multishot") +
                          " buffer ring");
        }
    }
    if (!zcrx_) {
        if (buffer_mode == RecvStrategy::bundle && !supports_bundle) {
            if (options.strategy == RecvStrategy::bundle)
                note_fallback("kernel lacks IORING_FEAT_RECVSEND_BUNDLE (6.10+); using multishot");
            buffer_mode = RecvStrategy::multishot;
        }
        bundle_ = buffer_mode == RecvStrategy::bundle;
        effective_ = buffer_mode;
        buffers_ = std::make_unique<ProvidedBufferRing>(
            ring_, BufferRingOptions{.group_id = options.buffer_group,
                                     .buffer_count = options.buffer_count,
                                     .buffer_size = options.buffer_size,
                                     .incremental = options.incremental && !bundle_});
        if (!buffers_->fallback_reason().empty()) note_fallback(buffers_->fallback_reason());
    }
    wait_batch_ = options.wait_batch ? options.wait_batch : 1;
    batch_wait_ = options.batch_wait;
    slots_.resize(options.max_connections);
    free_ids_.reserve(options.max_connections);
    starved_.reserve(options.max_connections);
    for (std::uint32_t i = options.max_connections; i-- > 0;) {
        slots_[i].owner = this;
        slots_[i].id = i;
        slots_[i].fn = &UringReceiver::on_completion;
        free_ids_.push_back(i);
    }
}

// Members go in reverse order: the buffer ring is unregistered and the zcrx memory unmapped before
// the Ring's exit cancels what is still armed (the kernel holds its own pins meanwhile).
UringReceiver::~UringReceiver() = default;

int UringReceiver::add(int fd) {
    if (free_ids_.empty()) return -ENOSPC;
    Slot& s = slots_[free_ids_.back()];
    free_ids_.pop_back();
    s.fd = fd;
    arm(s);
    return static_cast<int>(s.id);
}

void UringReceiver::arm(Slot& s) {
    if (io_uring_sq_space_left(ring_.native()) == 0) ++counters_.io_uring_enters;  // sqe() submits
    io_uring_sqe* sqe = ring_.sqe();
    if (zcrx_) {
        io_uring_prep_rw(abi::op_recv_zc, sqe, s.fd, nullptr, 0, 0);  // len 0: no limit
        sqe->ioprio |= IORING_RECV_MULTISHOT;
        abi::set_zcrx_ifq_idx(sqe, zcrx_->id());
    } else {
        io_uring_prep_recv(sqe, s.fd, nullptr, 0, 0);
        sqe->ioprio |= IORING_RECV_MULTISHOT | (bundle_ ? IORING_RECVSEND_BUNDLE : 0U);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = buffers_->group_id();
    }
    io_uring_sqe_set_data(sqe, static_cast<Completion*>(&s));
    s.state = State::armed;
}

int UringReceiver::remove(ConnectionId conn) {
    if (conn >= slots_.size()) return -ENOENT;
    Slot& s = slots_[conn];
    if (s.state == State::free || s.state == State::closing) return -ENOENT;
    if (s.state == State::starved) {
        // Nothing in flight: forget it now (it stays in starved_ and is skipped there).
        release_slot(s);
        return 0;
    }
    if (io_uring_sq_space_left(ring_.native()) == 0) ++counters_.io_uring_enters;  // sqe() submits
    io_uring_sqe* sqe = ring_.sqe();
    io_uring_prep_cancel(sqe, static_cast<Completion*>(&s), 0);
    io_uring_sqe_set_data(sqe, nullptr);  // the cancel's own completion is of no interest
    s.state = State::closing;             // the slot is free once the multishot's last CQE arrives
    return 0;
}

void UringReceiver::release_slot(Slot& s) {
    s.state = State::free;
    s.fd = -1;
    free_ids_.push_back(s.id);
}

void UringReceiver::on_completion(Completion* c, const io_uring_cqe& cqe) {
    auto& s = static_cast<Slot&>(*c);
    s.owner->handle(s, cqe);
}

void UringReceiver::handle(Slot& s, const io_uring_cqe& cqe) {
    const bool more = (cqe.flags & IORING_CQE_F_MORE) != 0;
    const bool closing = s.state == State::closing;
    if (zcrx_) {
        if (cqe.res > 0) {
            ++zcrx_delivered_;
            RecvBuffer b = zcrx_->take(cqe);
            if (!closing) deliver({s.id, cqe.res, std::move(b)});
        }
    } else {
        buffers_->take(cqe, bundle_, [&](RecvBuffer&& b) {
            const int len = static_cast<int>(b.size());
            if (!closing) deliver({s.id, len, std::move(b)});
        });
    }
    if (more) return;
    if (closing) {
        release_slot(s);
        return;
    }
    if (cqe.res == -ENOBUFS || (zcrx_ && cqe.res == -ENOMEM)) {
        // The ring ran dry; the data waits in the socket. Re-arm once buffers come back.
        ++counters_.exhaustions;
        s.state = State::starved;
        starved_.push_back(s.id);
        return;
    }
    if (cqe.res > 0) {
        // Ended with data (CQ full, or the kernel chose to stop): keep receiving.
        ++counters_.rearms;
        arm(s);
        return;
    }
    const int result = cqe.res;  // 0: EOF; < 0: -errno
    release_slot(s);
    deliver({s.id, result, {}});
}

void UringReceiver::rearm_starved() {
    if (starved_.empty()) return;
    if (buffers_ && buffers_->available() == 0) return;
    for (ConnectionId id : starved_) {
        Slot& s = slots_[id];
        if (s.state != State::starved) continue;  // removed meanwhile
        ++counters_.rearms;
        arm(s);
    }
    starved_.clear();
}

// One Ring::run, counted as the io_uring_enter it makes. liburing makes none when nothing is queued
// and the completions waited for are already there (then the count is not raised).
int UringReceiver::enter(unsigned wait_nr, std::chrono::nanoseconds timeout) {
    io_uring* r = ring_.native();
    const bool ready =
        wait_nr > 0 && timeout.count() > 0 && io_uring_sq_ready(r) == 0 && io_uring_cq_ready(r) >= wait_nr;
    if (!ready) ++counters_.io_uring_enters;
    return ring_.run(wait_nr, timeout);
}

int UringReceiver::poll(std::chrono::nanoseconds timeout) {
    delivered_ = drain_backlog();
    if (zcrx_) zcrx_->flush();
    rearm_starved();
    // With DEFER_TASKRUN the kernel wakes a waiter once as many sockets have data pending as it
    // asked for (a multishot recv queues one work item per readable socket, however much arrives).
    // Asking for more than the connections armed can never be met that way: the wait would always
    // run to batch_wait while a sender sits on a full window (one bulk stream: the sending core
    // idled half the time). So never wait for more completions than there are connections.
    const auto batch =
        static_cast<unsigned>(std::min<std::size_t>(wait_batch_, std::max<std::size_t>(1, connections())));
    int r = 0;
    if (timeout.count() <= 0 || delivered_ > 0) {
        r = enter(0, {});
    } else if (batch > 1 && batch_wait_.count() > 0 && timeout > batch_wait_) {
        // Batch: wake after `batch` completions, or after batch_wait with what there is.
        // Nothing at all by then: wait for the first, as long as the caller allows.
        r = enter(batch, batch_wait_);
        if (r == -ETIME && delivered_ == 0) r = enter(1, timeout - batch_wait_);
    } else {
        r = enter(1, timeout);
    }
    if (r < 0 && r != -ETIME) return r;
    return delivered_;
}

RecvCounters UringReceiver::counters() const {
    RecvCounters c = counters_;
    c.buffers_recycled = buffers_ ? buffers_->recycled() : zcrx_ ? zcrx_->returned() : 0;
    return c;
}

std::uint64_t UringReceiver::buffers_held() const {
    if (buffers_) return buffers_->held();
    return zcrx_ ? zcrx_delivered_ - zcrx_->returned() : 0;
}

std::string UringReceiver::describe() const {
    std::string s(to_string(effective_));
    if (requested_ != effective_) s += " (requested " + std::string(to_string(requested_)) + ")";
    if (buffers_)
        s += ", " + std::to_string(buffers_->buffer_count()) + " x " + std::to_string(buffers_->buffer_size()) +
             " B ring buffers" + (buffers_->incremental() ? " (incremental)" : "");
    if (zcrx_) s += ", zcrx area " + std::to_string(zcrx_->area_size()) + " B";
    if (wait_batch_ > 1)
        s += ", waits for up to " + std::to_string(wait_batch_) + " completions (<= " +
             std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(batch_wait_).count()) + " us)";
    s += ", ring " + ring_.describe();
    return s;  // a fallback's reason is fallback_reason(), said once by whoever reports it
}

}  // namespace zcio
