// EpollReceiver: the classic baseline — level-triggered epoll, recv(MSG_DONTWAIT) into a pool.
//
// Each wake reads a ready socket until a recv() comes back short (the socket is then most likely
// empty, so no extra recv() just to see EAGAIN), at most a few times for fairness between
// connections. Every epoll_wait and recv is counted.
#pragma once

#include <sys/epoll.h>

#include <vector>

#include "anonymous_mapping.hpp"
#include "zcio/receiver.hpp"
#include "zcio/unique_fd.hpp"

namespace zcio {

class EpollReceiver final : public Receiver {
public:
    explicit EpollReceiver(const ReceiverOptions& options);
    ~EpollReceiver() override;

    int add(int fd) override;
    int remove(ConnectionId conn) override;
    int poll(std::chrono::nanoseconds timeout) override;
    RecvCounters counters() const override { return counters_; }
    std::uint64_t buffers_held() const override { return buffer_count_ - free_buffers_.size(); }
    std::size_t connections() const override { return fds_.size() - free_ids_.size(); }
    std::string describe() const override;

    // make_receiver: this receiver stands in for one that could not be built.
    void fell_back(std::string reason) { note_fallback(std::move(reason)); }

private:
    static void release(void* owner, std::uint32_t tag, const std::byte*, std::uint32_t) noexcept;
    void forget(ConnectionId id);

    UniqueFd epoll_;
    std::uint32_t buffer_count_;
    std::uint32_t buffer_size_;
    AnonymousMapping memory_;
    std::vector<std::uint32_t> free_buffers_;  // stack of buffer ids
    std::vector<int> fds_;                     // by connection id; -1 = free
    std::vector<ConnectionId> free_ids_;
    std::vector<epoll_event> events_;
};

}  // namespace zcio
