// Loopback sockets and patterned data for the receive tests.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include "zcio/unique_fd.hpp"

namespace zcio::test {

// Byte `offset` of stream `seed`: a pattern that catches reordering, loss and duplication.
inline std::byte pattern(std::uint64_t seed, std::uint64_t offset) {
    const std::uint64_t x = (offset + seed * 0x9e3779b97f4a7c15ULL) * 0xff51afd7ed558ccdULL;
    return static_cast<std::byte>((x >> 29) ^ (offset >> 8));
}

inline void fill_pattern(std::uint64_t seed, std::uint64_t offset, std::span<std::byte> out) {
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = pattern(seed, offset + i);
}

// Index of the first byte that differs from the pattern, or out.size().
inline std::size_t check_pattern(std::uint64_t seed, std::uint64_t offset, std::span<const std::byte> in) {
    for (std::size_t i = 0; i < in.size(); ++i)
        if (in[i] != pattern(seed, offset + i)) return i;
    return in.size();
}

inline void check(bool ok, const char* what) {
    if (!ok) throw std::runtime_error(std::string(what) + ": " + std::strerror(errno));
}

// A listening TCP socket on 127.0.0.1, ephemeral port.
class TcpListener {
public:
    TcpListener() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        check(static_cast<bool>(fd_), "socket");
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        check(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0, "bind");
        check(::listen(fd_.get(), 1024) == 0, "listen");
        socklen_t len = sizeof a;
        check(::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&a), &len) == 0, "getsockname");
        port_ = ntohs(a.sin_port);
    }
    // Returns {client (sending) side, server (receiving) side}.
    std::pair<UniqueFd, UniqueFd> connect_pair(bool nodelay = false) {
        UniqueFd c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        check(static_cast<bool>(c), "socket");
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(port_);
        check(::connect(c.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0, "connect");
        UniqueFd s(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        check(static_cast<bool>(s), "accept");
        if (nodelay) {
            int one = 1;
            ::setsockopt(c.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        return {std::move(c), std::move(s)};
    }

private:
    UniqueFd fd_;
    std::uint16_t port_ = 0;
};

// A connected UDP pair on 127.0.0.1: {sender, receiver}.
inline std::pair<UniqueFd, UniqueFd> udp_pair() {
    UniqueFd r(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    check(r && s, "socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    check(::bind(r.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0, "bind");
    socklen_t len = sizeof a;
    check(::getsockname(r.get(), reinterpret_cast<sockaddr*>(&a), &len) == 0, "getsockname");
    check(::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0, "connect");
    int big = 8 << 20;
    ::setsockopt(r.get(), SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    return {std::move(s), std::move(r)};
}

// Writes all of `data`, retrying short writes. False on error.
inline bool send_all(int fd, std::span<const std::byte> data) {
    while (!data.empty()) {
        const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        data = data.subspan(static_cast<std::size_t>(n));
    }
    return true;
}

// A sender thread that cannot hang a failing test: if the test returns before join(), `abort`
// (typically shutdown() of the sending sockets) unblocks the sender before it is joined.
class SenderThread {
public:
    template <typename F>
    SenderThread(std::function<void()> abort, F&& body) : abort_(std::move(abort)), t_(std::forward<F>(body)) {}
    SenderThread(const SenderThread&) = delete;
    SenderThread& operator=(const SenderThread&) = delete;
    ~SenderThread() {
        if (t_.joinable()) {
            abort_();
            t_.join();
        }
    }
    void join() { t_.join(); }

private:
    std::function<void()> abort_;
    std::thread t_;
};

}  // namespace zcio::test
