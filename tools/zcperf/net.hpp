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
// A UDP socket bound to port 0 of the given family.
zcio::UniqueFd bound_udp(int family);

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

// Reads '\n'-terminated lines from a stream socket.
class LineReader {
public:
    explicit LineReader(int fd) : fd_(fd) {}
    // The next line without its '\n'. Throws Error on EOF, error, an over-long line or timeout;
    // returns nullopt if `stop_requested()` was set or `poll_for` passed without a full line.
    // `until_stop` false: keep reading after Ctrl-C (the results exchange that ends a stopped test).
    std::optional<std::string> read_line(Millis poll_for, bool until_stop = true);
    // Like read_line, but keeps waiting until `timeout`, then throws "timed out waiting for <what>".
    std::string expect_line(Millis timeout, std::string_view what, bool until_stop = true);

private:
    int fd_;
    std::string buf_;
};

}  // namespace zcperf
