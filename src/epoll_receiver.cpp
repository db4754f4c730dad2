#include "epoll_receiver.hpp"

#include <sys/socket.h>

#include <cerrno>

#include "zcio/error.hpp"

namespace zcio {

namespace {
constexpr int reads_per_wake = 4;  // fairness: one busy socket must not starve the others
}

EpollReceiver::EpollReceiver(const ReceiverOptions& options)
    : Receiver(options.strategy),
      epoll_(::epoll_create1(EPOLL_CLOEXEC)),
      buffer_count_(options.buffer_count),
      buffer_size_(options.buffer_size),
      memory_(static_cast<std::size_t>(options.buffer_count) * options.buffer_size) {
    effective_ = RecvStrategy::plain;
    if (!epoll_) throw SetupError("epoll_create1", errno, "raise the open-file limit (ulimit -n)");
    if (buffer_count_ == 0 || buffer_size_ == 0)
        throw SetupError("plain receiver needs buffers", EINVAL, "set buffer_count and buffer_size > 0");
    free_buffers_.reserve(buffer_count_);
    for (std::uint32_t i = buffer_count_; i-- > 0;) free_buffers_.push_back(i);
    fds_.assign(options.max_connections, -1);
    free_ids_.reserve(options.max_connections);
    for (std::uint32_t i = options.max_connections; i-- > 0;) free_ids_.push_back(i);
    events_.resize(std::min<std::uint32_t>(options.max_connections, 1024));
}

EpollReceiver::~EpollReceiver() = default;

int EpollReceiver::add(int fd) {
    if (free_ids_.empty()) return -ENOSPC;
    const ConnectionId id = free_ids_.back();
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = id;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return -errno;
    free_ids_.pop_back();
    fds_[id] = fd;
    return static_cast<int>(id);
}

void EpollReceiver::forget(ConnectionId id) {
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fds_[id], nullptr);
    fds_[id] = -1;
    free_ids_.push_back(id);
}

int EpollReceiver::remove(ConnectionId conn) {
    if (conn >= fds_.size() || fds_[conn] < 0) return -ENOENT;
    forget(conn);
    return 0;
}

void EpollReceiver::release(void* owner, std::uint32_t tag, const std::byte*, std::uint32_t) noexcept {
    auto* self = static_cast<EpollReceiver*>(owner);
    self->free_buffers_.push_back(tag);  // capacity reserved: never allocates
    ++self->counters_.buffers_recycled;
}

int EpollReceiver::poll(std::chrono::nanoseconds timeout) {
    delivered_ = drain_backlog();
    if (free_buffers_.empty()) return delivered_;  // the caller holds every buffer
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(timeout).count();
    ++counters_.epoll_waits;
    const int n = ::epoll_wait(epoll_.get(), events_.data(), static_cast<int>(events_.size()), static_cast<int>(ms));
    if (n < 0) return errno == EINTR ? delivered_ : -errno;
    for (int i = 0; i < n; ++i) {
        const ConnectionId id = events_[static_cast<std::size_t>(i)].data.u32;
        for (int k = 0; k < reads_per_wake && fds_[id] >= 0 && !free_buffers_.empty(); ++k) {
            const std::uint32_t bid = free_buffers_.back();
            std::byte* buf = memory_.bytes() + static_cast<std::size_t>(bid) * buffer_size_;
            ++counters_.recv_calls;
            const ssize_t r = ::recv(fds_[id], buf, buffer_size_, MSG_DONTWAIT);
            if (r > 0) {
                free_buffers_.pop_back();
                deliver({id, static_cast<int>(r),
                         RecvBuffer(buf, static_cast<std::uint32_t>(r), this, &EpollReceiver::release, bid)});
                if (static_cast<std::uint32_t>(r) < buffer_size_) break;  // most likely drained
                continue;
            }
            const int err = r == 0 ? 0 : errno;
            if (err == EAGAIN || err == EWOULDBLOCK) break;
            if (err == EINTR) continue;
            forget(id);
            deliver({id, -err, {}});
            break;
        }
    }
    return delivered_;
}

std::string EpollReceiver::describe() const {
    std::string s =
        "plain epoll + recv, " + std::to_string(buffer_count_) + " x " + std::to_string(buffer_size_) + " B buffers";
    if (requested_ != effective_) s += " (requested " + std::string(to_string(requested_)) + ")";
    if (!fallback_reason_.empty()) s += " (" + fallback_reason_ + ")";
    return s;
}

}  // namespace zcio
