#include "session_common.hpp"

#include <fmt/format.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstring>
#include <random>

namespace zcperf {

std::string make_cookie() {
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
    std::random_device rd;
    std::string c(cookie_size, '\0');
    for (std::size_t i = 0; i + 1 < cookie_size; ++i) c[i] = alphabet[rd() % 32];
    return c;
}

void apply_data_socket_options(int fd, const TestParams& p) {
    if (p.window > 0) {
        ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &p.window, sizeof p.window);
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &p.window, sizeof p.window);
    }
    if (!p.udp) {
        int nodelay = p.nodelay ? 1 : 0;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, sizeof nodelay);
        timeval tv{10, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
}

Connection describe_connection(int id, int fd) {
    return Connection{id, local_host(fd), peer_host(fd), local_port(fd), peer_port(fd)};
}

std::string read_server_error(ControlChannel& ctl) {
    const std::string numbers = ctl.read_bytes(8, Millis(2000), "the server's error number");
    auto be32 = [&](std::size_t at) {
        std::uint32_t v = 0;
        for (std::size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(numbers[at + i]);
        return static_cast<std::int32_t>(v);
    };
    const int i_errno = be32(0), sys_errno = be32(4);
    try {  // a zcperf server says why in its own words
        if (auto msg = parse_error(ctl.read_frame(Millis(300), 8192, "the server's error message"))) return *msg;
    } catch (const Error&) {}
    std::string text = iperf_error_text(i_errno);
    if (sys_errno > 0 && sys_errno < 4096) text += fmt::format(": {}", std::strerror(sys_errno));
    return text;
}

void send_refusal(ControlChannel& ctl, int i_errno, const std::string& message, bool zcperf_peer) {
    try {
        std::string b(1, static_cast<char>(state::server_error));
        for (int shift : {24, 16, 8, 0}) b += static_cast<char>((static_cast<std::uint32_t>(i_errno) >> shift) & 0xff);
        b.append(4, '\0');
        write_all(ctl.fd(), b, Millis(1000));
        if (zcperf_peer) ctl.write_frame(serialize_error(message), Millis(1000));
    } catch (const Error&) {
        // the client is gone: nobody to tell
    }
}

bool heartbeat(ControlChannel& ctl, Clock::time_point& last_sent, const RunSettings& rs) {
    const auto now = Clock::now();
    if (now - last_sent >= std::chrono::seconds(1)) {
        ctl.write_state(state::zcperf_alive, Millis(1000));
        last_sent = now;
    }
    return now - ctl.last_heard() > rs.rcv_timeout;
}

std::vector<bool> stream_roles(const TestParams& p, bool client) {
    std::vector<bool> roles;
    const bool first = p.bidir ? true : !p.reverse;  // client's view: sends?
    for (int i = 0; i < p.streams; ++i) roles.push_back(first);
    if (p.bidir)
        for (int i = 0; i < p.streams; ++i) roles.push_back(false);
    if (!client) roles.flip();
    return roles;
}

}  // namespace zcperf
