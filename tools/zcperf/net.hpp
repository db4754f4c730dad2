// Sockets for zcperf's control and data connections: resolve, listen, connect with a deadline,
// and read control lines with a deadline. Every failure throws zcperf::Error with a message a user
// can act on ("connection refused", "port 5201 in use"); nothing here blocks without a timeout.
#pragma once

#include <zcio/unique_fd.hpp>

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace zcperf {

// A run-time failure with a message for the user; main() prints it and exits non-zero.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Set by SIGINT/SIGTERM; every loop in zcperf polls it.
std::atomic<bool>& stop_requested() noexcept;
void install_signal_handlers();

using Millis = std::chrono::milliseconds;

// family: AF_UNSPEC, AF_INET or AF_INET6. bind_host empty: any address.
zcio::UniqueFd listen_tcp(std::uint16_t port, int family, const std::string& bind_host = {});
zcio::UniqueFd connect_tcp(const std::string& host, std::uint16_t port, int family, Millis timeout);
// A UDP socket connected to host:port (no packet is sent).
zcio::UniqueFd connect_udp(const std::string& host, std::uint16_t port, int family);
// A UDP socket bound to `port` (0: any free one) of the given family (AF_INET6: dual-stack), with
// SO_REUSEADDR so several sockets can share the port: iperf3's UDP streams all arrive on the
// server's port, each on a socket connected to its client.
zcio::UniqueFd bound_udp(int family, std::uint16_t port = 0);

// An IPv4 or IPv6 address and port, as the kernel takes it (a destination per send: --fanout).
struct SocketAddress {
    sockaddr_storage storage{};
    socklen_t len = 0;
    const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&storage); }
};
// `count` destinations for one unconnected UDP socket: host's first address (of `family`, if not
// AF_UNSPEC) at ports port .. port + count - 1. Throws Error when host does not resolve.
std::vector<SocketAddress> udp_destinations(const std::string& host, std::uint16_t port, int count, int family);
// The same ports of an address already known.
std::vector<SocketAddress> udp_destinations(const SocketAddress& first, int count);
// An unbound, unconnected UDP socket of `family` (the kernel binds it at its first send).
zcio::UniqueFd unconnected_udp(int family);

// Waits for a connection (or stop / timeout: returns an empty fd). timeout zero: no limit.
zcio::UniqueFd accept_with_timeout(int listen_fd, Millis timeout);

std::uint16_t local_port(int fd);
int socket_family(int fd);
std::string address_string(const sockaddr_storage& ss);  // "127.0.0.1" / "::1"
std::uint16_t address_port(const sockaddr_storage& ss);
std::string local_host(int fd);
std::string peer_host(int fd);
std::uint16_t peer_port(int fd);
// The interface holding the socket's local address ("lo" for 127.0.0.1), or "" if none does.
std::string interface_of(int fd);

// Writes all of `data` (blocking, but bounded by `timeout`).
void write_all(int fd, std::string_view data, Millis timeout = Millis(10000));
// Reads exactly n bytes or throws.
std::string read_exact(int fd, std::size_t n, Millis timeout);

// The control connection: iperf3's state bytes and length-prefixed JSON frames, every read and
// write bounded by a deadline. Reads give up with "interrupted" after Ctrl-C unless
// `interruptible` is off (the results exchange that ends a stopped test).
//
//   ControlChannel ctl(fd.get());
//   ctl.write_state(state::param_exchange);
//   TestParams p = ...parse_params(ctl.read_frame(5s, max_params_json, "the client's parameters"));
class ControlChannel {
public:
    explicit ControlChannel(int fd) : fd_(fd), last_heard_(std::chrono::steady_clock::now()) {}
    int fd() const noexcept { return fd_; }
    bool interruptible = true;

    // One state byte, or nullopt when `wait` passed without one. Throws Error on EOF or error.
    std::optional<signed char> read_state(Millis wait);
    // One state byte within `timeout`, else Error "timed out waiting for <what>".
    signed char expect_state(Millis timeout, std::string_view what);
    // A 4-byte big-endian length and that many bytes (at most `max`), within `timeout`.
    std::string read_frame(Millis timeout, std::size_t max, std::string_view what);
    // Exactly n bytes within `timeout`.
    std::string read_bytes(std::size_t n, Millis timeout, std::string_view what);
    void write_state(signed char s, Millis timeout = Millis(5000));
    void write_frame(std::string_view json, Millis timeout = Millis(5000));
    // When the peer last sent anything.
    std::chrono::steady_clock::time_point last_heard() const noexcept { return last_heard_; }
    // Bytes already read but not yet consumed.
    std::size_t buffered() const noexcept { return buf_.size(); }

private:
    // Reads what is there into buf_ until it holds n bytes or the deadline passes; false on timeout.
    bool fill(std::size_t n, std::chrono::steady_clock::time_point deadline);
    int fd_;
    std::string buf_;
    std::chrono::steady_clock::time_point last_heard_;
};

}  // namespace zcperf
