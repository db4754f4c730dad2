#include "front_desk.hpp"

#include "control.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <vector>

namespace zcperf {

using Clock = std::chrono::steady_clock;

struct FrontDesk::Pending {
    zcio::UniqueFd fd;
    Clock::time_point deadline;
    std::uint64_t order = 0;
    std::string buf;
    std::size_t need = cookie_size;  // bytes this stage waits for
    int stage = 0;                   // 0: cookie, 1: params length, 2: params
    std::string cookie;
};

FrontDesk::FrontDesk(int listen_fd, Millis handshake, std::size_t max_pending)
    : listen_fd_(listen_fd), handshake_(handshake), max_pending_(max_pending), thread_([this] {
          // accept_all() takes every waiting connection and must not block after the last one.
          ::fcntl(listen_fd_, F_SETFL, ::fcntl(listen_fd_, F_GETFL) | O_NONBLOCK);
          loop();
      }) {}

FrontDesk::~FrontDesk() {
    stop_ = true;
    cv_.notify_all();
    thread_.join();
}

std::optional<Arrival> FrontDesk::next_test(const std::atomic<bool>& stop) {
    std::unique_lock lock(mutex_);
    phase_ = Phase::idle;
    while (!arrival_) {
        if (stop.load() || stop_requested().load()) return std::nullopt;
        cv_.wait_for(lock, std::chrono::milliseconds(100));
    }
    std::optional<Arrival> a = std::move(arrival_);
    arrival_.reset();
    return a;
}

void FrontDesk::expect_streams(const std::string& cookie) {
    std::lock_guard lock(mutex_);
    cookie_ = cookie;
    streams_.clear();
    phase_ = Phase::creating;
}

std::optional<DataConnection> FrontDesk::next_stream(Millis wait) {
    std::unique_lock lock(mutex_);
    if (streams_.empty()) cv_.wait_for(lock, wait);
    if (streams_.empty()) return std::nullopt;
    DataConnection c = std::move(streams_.front());
    streams_.pop_front();
    return c;
}

void FrontDesk::running() {
    std::lock_guard lock(mutex_);
    phase_ = Phase::running;
    streams_.clear();  // latecomers bearing the cookie: closed
}

void FrontDesk::idle() {
    std::lock_guard lock(mutex_);
    phase_ = Phase::idle;
    cookie_.clear();
    streams_.clear();
}

void FrontDesk::deny(zcio::UniqueFd fd) {
    // One byte into an empty socket buffer: never blocks. The client reads "busy".
    const signed char busy = state::access_denied;
    (void)::send(fd.get(), &busy, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    ++refused_;
}

void FrontDesk::accept_all(std::deque<Pending>& pending) {
    for (int i = 0; i < 256; ++i) {
        zcio::UniqueFd fd(::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (!fd) return;  // EAGAIN: none left (or a transient error: next round)
        int one = 1;
        ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        bool busy;
        {
            std::lock_guard lock(mutex_);
            busy = phase_ == Phase::running;
        }
        if (busy) {
            deny(std::move(fd));  // iperf3 does not read from it either: the answer comes at once
            continue;
        }
        if (pending.size() >= max_pending_) {
            pending.pop_front();  // the oldest waiter goes: a flood of idle connections cannot lock others out
            ++dropped_;
        }
        Pending c;
        c.fd = std::move(fd);
        c.deadline = Clock::now() + handshake_;
        c.order = next_order_++;
        pending.push_back(std::move(c));
    }
}

bool FrontDesk::advance(Pending& c) {
    char chunk[512];
    while (c.buf.size() < c.need) {
        ssize_t n = ::recv(c.fd.get(), chunk, std::min(sizeof chunk, c.need - c.buf.size()), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            ++dropped_;
            return false;
        }
        if (n < 0) return true;  // more later
        c.buf.append(chunk, static_cast<std::size_t>(n));
    }
    std::unique_lock lock(mutex_);
    if (c.stage == 0) {
        c.cookie = std::move(c.buf);
        c.buf.clear();
        if (phase_ == Phase::creating && c.cookie == cookie_) {
            streams_.push_back({std::move(c.fd), c.order});
            cv_.notify_all();
            return false;
        }
        if (phase_ != Phase::idle) {
            lock.unlock();
            deny(std::move(c.fd));
            return false;
        }
        const signed char go = state::param_exchange;
        if (::send(c.fd.get(), &go, 1, MSG_DONTWAIT | MSG_NOSIGNAL) != 1) return false;
        c.stage = 1;
        c.need = 4;
        return true;
    }
    if (c.stage == 1) {
        std::uint32_t n = 0;
        for (char b : c.buf) n = (n << 8) | static_cast<unsigned char>(b);
        c.buf.clear();
        if (n == 0 || n > max_params_json) {
            // iperf3's own refusal: SERVER_ERROR, "unable to receive parameters", errno 0.
            const char refusal[9] = {
                static_cast<char>(state::server_error), 0, 0, 0, static_cast<char>(ie::recv_params), 0, 0, 0, 0};
            (void)::send(c.fd.get(), refusal, sizeof refusal, MSG_DONTWAIT | MSG_NOSIGNAL);
            ++dropped_;
            return false;
        }
        c.stage = 2;
        c.need = n;
        return true;
    }
    if (phase_ != Phase::idle || arrival_) {
        lock.unlock();
        deny(std::move(c.fd));
        return false;
    }
    arrival_ = Arrival{std::move(c.fd), std::move(c.cookie), std::move(c.buf)};
    phase_ = Phase::claimed;
    cv_.notify_all();
    return false;
}

void FrontDesk::loop() {
    std::deque<Pending> pending;
    std::vector<pollfd> pfds;
    while (!stop_.load()) {
        pfds.assign(1, pollfd{listen_fd_, POLLIN, 0});
        for (const auto& c : pending) pfds.push_back({c.fd.get(), POLLIN, 0});
        if (::poll(pfds.data(), pfds.size(), 100) < 0 && errno != EINTR) break;
        const auto now = Clock::now();
        std::deque<Pending> kept;
        for (std::size_t i = 0; i < pending.size(); ++i) {
            Pending& c = pending[i];
            const bool ready = pfds[i + 1].revents != 0;
            if (ready && !advance(c)) continue;
            if (now > c.deadline) {
                ++dropped_;  // too slow: a byte a second does not hold a place for long
                continue;
            }
            kept.push_back(std::move(c));
        }
        pending = std::move(kept);
        if (pfds[0].revents & POLLIN) accept_all(pending);
    }
}

}  // namespace zcperf
