#include "net.hpp"

#include <zcio/error.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <optional>

namespace zcperf {

std::atomic<bool>& stop_requested() noexcept {
    static std::atomic<bool> flag{false};
    return flag;
}

namespace {
void on_signal(int) {
    stop_requested().store(true);
    // A second Ctrl-C means now: default action (the namespaces zcio made are removed as stale by
    // the next run).
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
}

std::string err(int e) { return zcio::errno_string(e); }

struct AddrInfo {
    addrinfo* ai = nullptr;
    ~AddrInfo() {
        if (ai) ::freeaddrinfo(ai);
    }
};

AddrInfo resolve(const std::string& host, std::uint16_t port, int family, int socktype, bool passive) {
    addrinfo hints{};
    hints.ai_family = family;
    hints.ai_socktype = socktype;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    AddrInfo res;
    const std::string service = std::to_string(port);
    int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res.ai);
    if (rc != 0)
        throw Error(fmt::format("cannot resolve \"{}\": {}", host.empty() ? "(any)" : host, ::gai_strerror(rc)));
    return res;
}

std::string describe(const sockaddr* sa) {
    sockaddr_storage ss{};
    std::memcpy(&ss, sa, sa->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
    auto host = address_string(ss);
    return sa->sa_family == AF_INET6 ? fmt::format("[{}]:{}", host, address_port(ss))
                                     : fmt::format("{}:{}", host, address_port(ss));
}

// Polls one fd for `events` up to `timeout`, waking every 100 ms to look at the stop flag.
// Returns true when ready, false on stop or timeout.
bool wait_for(int fd, short events, Millis timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (stop_requested().load()) return false;
        auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
        if (timeout.count() > 0 && left.count() <= 0) return false;
        int slice = timeout.count() > 0 ? static_cast<int>(std::min<long long>(left.count(), 100)) : 100;
        pollfd p{fd, events, 0};
        int rc = ::poll(&p, 1, slice);
        if (rc > 0) return true;
        if (rc < 0 && errno != EINTR) throw Error("poll: " + err(errno));
    }
}

}  // namespace

void install_signal_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: blocking calls return EINTR and look at the flag
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
    ::signal(SIGPIPE, SIG_IGN);  // a peer going away is an EPIPE on the send, not a death
}

zcio::UniqueFd listen_tcp(std::uint16_t port, int family, const std::string& bind_host) {
    // Any address: prefer a dual-stack IPv6 socket unless -4 was given.
    if (family == AF_UNSPEC && bind_host.empty()) {
        zcio::UniqueFd fd(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!fd) family = AF_INET;  // no IPv6 on this host
        else fd.reset();
        if (family == AF_UNSPEC) family = AF_INET6;
    }
    AddrInfo res = resolve(bind_host, port, family, SOCK_STREAM, true);
    std::string last;
    for (addrinfo* a = res.ai; a; a = a->ai_next) {
        zcio::UniqueFd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
        if (!fd) {
            last = "socket: " + err(errno);
            continue;
        }
        int one = 1, zero = 0;
        ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (a->ai_family == AF_INET6 && bind_host.empty())
            ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) != 0) {
            int e = errno;
            if (e == EADDRINUSE)
                throw Error(
                    fmt::format("port {} is in use: another server is listening there (pick another with -p)", port));
            if (e == EACCES)
                throw Error(fmt::format("no permission to listen on port {}: use a port above 1023", port));
            last = fmt::format("bind {}: {}", describe(a->ai_addr), err(e));
            continue;
        }
        // Deep enough that a burst of connections waits for the front desk instead of being dropped.
        if (::listen(fd.get(), 1024) != 0) {
            last = "listen: " + err(errno);
            continue;
        }
        return fd;
    }
    throw Error(fmt::format("cannot listen on port {}: {}", port, last));
}

zcio::UniqueFd connect_tcp(const std::string& host, std::uint16_t port, int family, Millis timeout) {
    AddrInfo res = resolve(host, port, family, SOCK_STREAM, false);
    std::string last;
    for (addrinfo* a = res.ai; a; a = a->ai_next) {
        zcio::UniqueFd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol));
        if (!fd) {
            last = "socket: " + err(errno);
            continue;
        }
        int rc = ::connect(fd.get(), a->ai_addr, a->ai_addrlen);
        if (rc != 0 && errno != EINPROGRESS) {
            last = fmt::format("{}: {}", describe(a->ai_addr), err(errno));
            continue;
        }
        if (rc != 0) {
            if (!wait_for(fd.get(), POLLOUT, timeout)) {
                if (stop_requested().load()) throw Error("interrupted");
                last = fmt::format("{}: no answer within {} ms", describe(a->ai_addr), timeout.count());
                continue;
            }
            int so_error = 0;
            socklen_t len = sizeof so_error;
            ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &so_error, &len);
            if (so_error != 0) {
                last = fmt::format("{}: {}", describe(a->ai_addr), err(so_error));
                continue;
            }
        }
        int flags = ::fcntl(fd.get(), F_GETFL);
        ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
        int one = 1;
        ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        return fd;
    }
    throw Error(fmt::format("unable to connect to {} port {}: {}", host, port, last));
}

zcio::UniqueFd connect_udp(const std::string& host, std::uint16_t port, int family) {
    AddrInfo res = resolve(host, port, family, SOCK_DGRAM, false);
    std::string last;
    for (addrinfo* a = res.ai; a; a = a->ai_next) {
        zcio::UniqueFd fd(::socket(a->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        if (!fd) {
            last = "socket: " + err(errno);
            continue;
        }
        if (::connect(fd.get(), a->ai_addr, a->ai_addrlen) != 0) {
            last = fmt::format("{}: {}", describe(a->ai_addr), err(errno));
            continue;
        }
        return fd;
    }
    throw Error(fmt::format("cannot open UDP to {} port {}: {}", host, port, last));
}

zcio::UniqueFd bound_udp(int family, std::uint16_t port) {
    zcio::UniqueFd fd(::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd) throw Error("UDP socket: " + err(errno));
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_storage ss{};
    socklen_t len;
    if (family == AF_INET6) {
        auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
        s6->sin6_family = AF_INET6;
        s6->sin6_addr = in6addr_any;
        s6->sin6_port = htons(port);
        len = sizeof *s6;
        int zero = 0;
        ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    } else {
        auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
        s4->sin_family = AF_INET;
        s4->sin_addr.s_addr = htonl(INADDR_ANY);
        s4->sin_port = htons(port);
        len = sizeof *s4;
    }
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0)
        throw Error(fmt::format("UDP bind to port {}: {}", port, err(errno)));
    int big = 8 << 20;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    return fd;
}

std::vector<SocketAddress> udp_destinations(const std::string& host, std::uint16_t port, int count, int family) {
    AddrInfo res = resolve(host, port, family, SOCK_DGRAM, false);
    SocketAddress first;
    std::memcpy(&first.storage, res.ai->ai_addr, res.ai->ai_addrlen);
    first.len = res.ai->ai_addrlen;
    return udp_destinations(first, count);
}

std::vector<SocketAddress> udp_destinations(const SocketAddress& first, int count) {
    std::vector<SocketAddress> to(static_cast<std::size_t>(std::max(count, 0)), first);
    const std::uint16_t port = address_port(first.storage);
    for (std::size_t k = 0; k < to.size(); ++k) {
        const auto at = htons(static_cast<std::uint16_t>(port + k));
        if (first.storage.ss_family == AF_INET6) reinterpret_cast<sockaddr_in6*>(&to[k].storage)->sin6_port = at;
        else reinterpret_cast<sockaddr_in*>(&to[k].storage)->sin_port = at;
    }
    return to;
}

zcio::UniqueFd unconnected_udp(int family) {
    zcio::UniqueFd fd(::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd) throw Error("UDP socket: " + err(errno));
    return fd;
}

zcio::UniqueFd accept_with_timeout(int listen_fd, Millis timeout) {
    if (!wait_for(listen_fd, POLLIN, timeout)) return {};
    zcio::UniqueFd fd(::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd) {
        if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN) return {};
        throw Error("accept: " + err(errno));
    }
    int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

std::string address_string(const sockaddr_storage& ss) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET6) {
        const auto* s6 = reinterpret_cast<const sockaddr_in6*>(&ss);
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            ::inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], buf, sizeof buf);
        } else {
            ::inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof buf);
        }
    } else if (ss.ss_family == AF_INET) {
        ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, buf, sizeof buf);
    }
    return buf;
}

std::uint16_t address_port(const sockaddr_storage& ss) {
    if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port);
    if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
    return 0;
}

namespace {
sockaddr_storage sockname(int fd, bool peer) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int rc = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
                  : ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    if (rc != 0) ss.ss_family = AF_UNSPEC;
    return ss;
}
}  // namespace

std::uint16_t local_port(int fd) { return address_port(sockname(fd, false)); }
int socket_family(int fd) { return sockname(fd, false).ss_family; }
std::string local_host(int fd) { return address_string(sockname(fd, false)); }
std::string peer_host(int fd) { return address_string(sockname(fd, true)); }
std::uint16_t peer_port(int fd) { return address_port(sockname(fd, true)); }

void write_all(int fd, std::string_view data, Millis timeout) {
    while (!data.empty()) {
        ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            data.remove_prefix(static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!wait_for(fd, POLLOUT, timeout))
                throw Error(stop_requested().load() ? "interrupted" : "timed out writing to the peer");
            continue;
        }
        throw Error("the peer went away: " + err(errno));
    }
}

std::string read_exact(int fd, std::size_t n, Millis timeout) {
    std::string out(n, '\0');
    std::size_t got = 0;
    while (got < n) {
        if (!wait_for(fd, POLLIN, timeout))
            throw Error(stop_requested().load() ? "interrupted" : "timed out reading from the peer");
        ssize_t r = ::recv(fd, out.data() + got, n - got, MSG_DONTWAIT);
        if (r > 0) got += static_cast<std::size_t>(r);
        else if (r == 0) throw Error("the peer closed the connection");
        else if (errno != EAGAIN && errno != EINTR) throw Error("read: " + err(errno));
    }
    return out;
}

bool ControlChannel::fill(std::size_t n, std::chrono::steady_clock::time_point deadline) {
    while (buf_.size() < n) {
        auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        if (interruptible && stop_requested().load()) throw Error("interrupted");
        pollfd p{fd_, POLLIN, 0};
        int rc = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 100)));
        if (rc < 0 && errno != EINTR) throw Error("poll: " + err(errno));
        if (rc <= 0) continue;
        char chunk[4096];
        ssize_t got = ::recv(fd_, chunk, std::min(sizeof chunk, n - buf_.size()), MSG_DONTWAIT);
        if (got > 0) {
            buf_.append(chunk, static_cast<std::size_t>(got));
            last_heard_ = std::chrono::steady_clock::now();
        } else if (got == 0) {
            throw Error("the peer closed the control connection");
        } else if (errno != EAGAIN && errno != EINTR) {
            throw Error("control connection: " + err(errno));
        }
    }
    return true;
}

std::optional<signed char> ControlChannel::read_state(Millis wait) {
    if (!fill(1, std::chrono::steady_clock::now() + wait)) return std::nullopt;
    const auto s = static_cast<signed char>(buf_[0]);
    buf_.erase(0, 1);
    return s;
}

signed char ControlChannel::expect_state(Millis timeout, std::string_view what) {
    auto s = read_state(timeout);
    if (!s) throw Error(fmt::format("timed out waiting for {} ({} ms without a word)", what, timeout.count()));
    return *s;
}

std::string ControlChannel::read_bytes(std::size_t n, Millis timeout, std::string_view what) {
    if (!fill(n, std::chrono::steady_clock::now() + timeout))
        throw Error(
            fmt::format("timed out waiting for {} ({} of {} bytes in {} ms)", what, buf_.size(), n, timeout.count()));
    std::string out = buf_.substr(0, n);
    buf_.erase(0, n);
    return out;
}

std::string ControlChannel::read_frame(Millis timeout, std::size_t max, std::string_view what) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const std::string len = read_bytes(4, timeout, what);
    const std::uint32_t n = (static_cast<std::uint32_t>(static_cast<unsigned char>(len[0])) << 24) |
                            (static_cast<std::uint32_t>(static_cast<unsigned char>(len[1])) << 16) |
                            (static_cast<std::uint32_t>(static_cast<unsigned char>(len[2])) << 8) |
                            static_cast<std::uint32_t>(static_cast<unsigned char>(len[3]));
    if (n == 0 || n > max) throw Error(fmt::format("{}: a frame of {} bytes (at most {} allowed)", what, n, max));
    const auto left =
        std::max(Millis(1), std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now()));
    return read_bytes(n, left, what);
}

void ControlChannel::write_state(signed char s, Millis timeout) {
    write_all(fd_, std::string_view(reinterpret_cast<const char*>(&s), 1), timeout);
}

void ControlChannel::write_frame(std::string_view json, Millis timeout) {
    const auto n = static_cast<std::uint32_t>(json.size());
    std::string frame{static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
                      static_cast<char>(n)};
    frame.append(json);
    write_all(fd_, frame, timeout);
}

std::string interface_of(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
    const std::string local = address_string(ss);
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) != 0) return {};
    std::string name;
    for (ifaddrs* a = list; a && name.empty(); a = a->ifa_next) {
        if (!a->ifa_addr || a->ifa_addr->sa_family != ss.ss_family) continue;
        sockaddr_storage cand{};
        std::memcpy(&cand, a->ifa_addr, ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
        if (address_string(cand) == local) name = a->ifa_name;
    }
    ::freeifaddrs(list);
    // 127.0.0.0/8 and ::ffff:127.x other than the address lo carries still arrive on lo.
    if (name.empty() && (local.rfind("127.", 0) == 0 || local.rfind("::ffff:127.", 0) == 0)) name = "lo";
    return name;
}

}  // namespace zcperf
