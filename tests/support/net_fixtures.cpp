#include "net_fixtures.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <vector>

namespace zcio::test {

void fill_pattern(std::span<std::byte> out, std::uint64_t stream_offset) {
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = std::byte{pattern_byte(stream_offset + i)};
}

namespace {
void check(bool ok, const char* what) {
    if (!ok) throw std::runtime_error(std::string(what) + ": " + std::to_string(errno));
}
// The loopback address of `family`, port 0 (the kernel picks a free one at bind).
sockaddr_storage loopback(int family, socklen_t& len) {
    sockaddr_storage ss{};
    if (family == AF_INET6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    } else {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    }
    return ss;
}
sockaddr* as_sockaddr(sockaddr_storage& ss) { return reinterpret_cast<sockaddr*>(&ss); }
}  // namespace

SocketPair tcp_loopback_pair(int rcvbuf, int family) {
    UniqueFd listener(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    check(bool(listener), "socket");
    socklen_t len = 0;
    sockaddr_storage a = loopback(family, len);
    check(::bind(listener.get(), as_sockaddr(a), len) == 0, "bind");
    check(::listen(listener.get(), 1) == 0, "listen");
    check(::getsockname(listener.get(), as_sockaddr(a), &len) == 0, "getsockname");
    UniqueFd client(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    check(bool(client), "socket");
    check(::connect(client.get(), as_sockaddr(a), len) == 0, "connect");
    UniqueFd server(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    check(bool(server), "accept");
    if (rcvbuf > 0) ::setsockopt(server.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    return {std::move(client), std::move(server)};
}

SocketPair udp_loopback_pair(int family) {
    UniqueFd rx(::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    check(bool(rx), "socket");
    socklen_t len = 0;
    sockaddr_storage a = loopback(family, len);
    check(::bind(rx.get(), as_sockaddr(a), len) == 0, "bind");
    check(::getsockname(rx.get(), as_sockaddr(a), &len) == 0, "getsockname");
    int big = 8 << 20;
    ::setsockopt(rx.get(), SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    UniqueFd tx(::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    check(bool(tx), "socket");
    check(::connect(tx.get(), as_sockaddr(a), len) == 0, "connect");
    return {std::move(tx), std::move(rx)};
}

StreamChecker::StreamChecker(UniqueFd fd, std::uint64_t pause_after)
    : fd_(std::move(fd)), pause_after_(pause_after), thread_([this] { loop(); }) {}

StreamChecker::~StreamChecker() { join(); }

void StreamChecker::join() {
    if (thread_.joinable()) thread_.join();
}

void StreamChecker::loop() {
    std::vector<unsigned char> buf(256 << 10);
    for (;;) {
        const std::uint64_t have = bytes_.load();
        if (have >= pause_after_.load() && paused_.load()) {
            ::usleep(1000);
            continue;
        }
        if (have >= reset_after_.load()) {
            linger l{1, 0};  // close with RST: the sender sees ECONNRESET / EPIPE mid-stream
            ::setsockopt(fd_.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
            fd_.reset();
            return;
        }
        std::size_t want = buf.size();
        if (pause_after_.load() != UINT64_MAX && paused_.load())
            want = std::min<std::uint64_t>(want, pause_after_.load() - have);
        if (reset_after_.load() != UINT64_MAX) want = std::min<std::uint64_t>(want, reset_after_.load() - have);
        if (want == 0) continue;
        pollfd p{fd_.get(), POLLIN, 0};
        if (::poll(&p, 1, 50) == 0) continue;
        const ssize_t n = ::recv(fd_.get(), buf.data(), want, 0);
        if (n == 0) return;
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            error_.store(errno);
            return;
        }
        for (ssize_t i = 0; i < n; ++i)
            if (buf[static_cast<std::size_t>(i)] != pattern_byte(have + static_cast<std::uint64_t>(i))) {
                std::uint64_t expected = UINT64_MAX;
                mismatch_.compare_exchange_strong(expected, have + static_cast<std::uint64_t>(i));
                break;
            }
        bytes_.fetch_add(static_cast<std::uint64_t>(n));
    }
}

bool running_as_root() { return ::geteuid() == 0; }

}  // namespace zcio::test
