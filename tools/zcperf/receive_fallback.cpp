#include "receive_fallback.hpp"

#include <zcio/zcrx.hpp>

#include <fmt/format.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdio>

namespace zcperf {

namespace {

struct Flow {
    std::string type;  // tcp4, tcp6, udp4, udp6
    std::uint16_t port = 0;
};

// The flow as a NIC's steering rule sees it: an IPv4 peer on a dual-stack socket is tcp4.
Flow flow_of(int fd) {
    Flow f;
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int type = SOCK_STREAM;
    socklen_t tlen = sizeof type;
    ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen);
    const std::string proto = type == SOCK_STREAM ? "tcp" : "udp";
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {proto + "4", 0};
    if (ss.ss_family == AF_INET6) {
        const auto& a = reinterpret_cast<const sockaddr_in6&>(ss);
        f.type = proto + (IN6_IS_ADDR_V4MAPPED(&a.sin6_addr) ? "4" : "6");
        f.port = ntohs(a.sin6_port);
    } else {
        f.type = proto + "4";
        f.port = ntohs(reinterpret_cast<const sockaddr_in&>(ss).sin_port);
    }
    return f;
}

}  // namespace

std::string fallback_line(const RecvReport& r) {
    if (r.fallback_reason.empty()) return {};
    return fmt::format("zcio receive fell back: {} (more: zcperf --features)", r.fallback_reason);
}

void advise_zcrx_setup(const RecvReport& r, int fd, const std::string& interface) {
    static std::atomic<bool> said{false};
    if (r.requested != "zcrx" || r.strategy == "zcrx" || said.exchange(true)) return;
    const Flow flow = flow_of(fd);
    std::string text = fmt::format("zcperf: zcrx was asked for and fell back: {}\n", r.fallback_reason);
    for (const auto& p : zcio::zcrx_nic_problems(interface, 0, flow.type, flow.port))
        text += fmt::format("zcperf: {}\n", p);
    text += fmt::format("zcperf: on a NIC that can, zcrx needs, for this test's flow ({} to port {}):\n{}", flow.type,
                        flow.port, zcio::zcrx_setup_commands(interface, 0, flow.type, flow.port));
    std::fputs(text.c_str(), stderr);
}

}  // namespace zcperf
