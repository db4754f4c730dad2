#include "sweep_targets.hpp"

#include "net.hpp"
#include "send_loop.hpp"
#include "session.hpp"

#include <zcio/error.hpp>
#if __has_include(<zcio/sink_namespace.hpp>)
#include <zcio/sink_namespace.hpp>
#define ZCPERF_HAVE_SINK 1
#endif

#include <fmt/format.h>

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace zcperf {

namespace {

class LoopbackTarget final : public SweepTarget {
public:
    LoopbackTarget(int family, std::string description)
        : SweepTarget("loopback", std::move(description)), server_(family) {}
    TestRecord run(const TestParams& p) override {
        return run_client_test(ClientSetup{server_.host(), server_.port(), 0, p, {}, "loopback"});
    }

private:
    LoopbackServer server_;
};

class RemoteTarget final : public SweepTarget {
public:
    RemoteTarget(const Options& o, std::string description)
        : SweepTarget("remote", std::move(description)), host_(o.host), port_(o.port), family_(o.family) {}
    TestRecord run(const TestParams& p) override {
        return run_client_test(ClientSetup{host_, port_, family_, p, {}, "remote"});
    }

private:
    std::string host_;
    std::uint16_t port_;
    int family_;
};

#ifdef ZCPERF_HAVE_SINK
// UDP into the namespace sink. Only these namespaces see the traffic.
class SinkTarget final : public SweepTarget {
public:
    // fanout: each stream's one unconnected socket sends to that many ports of the rx test host
    // in turn (a QUIC server's or a media relay's shape); 0: a connected socket per stream.
    explicit SinkTarget(int fanout) : SweepTarget("sink", ""), sink_(make_options()) {
        SocketAddress first;
        const sockaddr_in rx = sink_.address(zcio::SinkNamespace::rx, fanout_port);
        std::memcpy(&first.storage, &rx, sizeof rx);
        first.len = sizeof rx;
        to_ = udp_destinations(first, fanout);
        const std::string fan =
            fanout ? fmt::format(", --fanout {}: ports {}..{} round robin from one unconnected socket per stream",
                                 fanout, fanout_port, fanout_port + fanout - 1)
                   : std::string();
        set_description(fmt::format("UDP into the namespace sink {} -> {} (veth, MTU {}, pfifo limit 0{})",
                                    sink_.address_string(zcio::SinkNamespace::tx),
                                    sink_.address_string(zcio::SinkNamespace::rx), sink_.options().mtu, fan));
    }
    TestRecord run(const TestParams& p) override {
        std::vector<zcio::UniqueFd> fds;
        for (int i = 0; i < p.streams; ++i)
            fds.push_back(to_.empty() ? connected_socket() : sink_.socket(zcio::SinkNamespace::tx, SOCK_DGRAM));
        // Nothing reads the datagrams: no header to stamp, as the send() loop stamps none. (A
        // stamped payload changes each send, and io_uring's copy could not resend one warm buffer.)
        TestParams q = p;
        q.udp_header = false;
        return run_send_only(fds, q, {}, "sink", to_);
    }
    bool has_send_loop() const noexcept override { return true; }
    std::optional<StreamReport> run_send_loop(const TestParams& p) override {
        zcio::UniqueFd fd = connected_socket();
        StreamReport r;
        std::thread t([&] {
            r = zcperf::run_send_loop(fd.get(),
                                      {.length = p.length, .duration = p.duration, .working_set = p.working_set});
        });
        t.join();
        return r;
    }

private:
    static zcio::SinkOptions make_options() {
        zcio::SinkOptions so;
        so.mtu = 65535;  // a 60000-byte datagram leaves unfragmented
        so.name_prefix = "zcperf";
        return so;
    }
    static constexpr std::uint16_t fanout_port = 10000;  // the first destination port (bench_fanout's)
    zcio::UniqueFd connected_socket() {
        zcio::UniqueFd fd = sink_.socket(zcio::SinkNamespace::tx, SOCK_DGRAM);
        sockaddr_in to = sink_.address(zcio::SinkNamespace::rx, 9);
        if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) != 0)
            throw Error("connect into the sink: " + zcio::errno_string(errno));
        return fd;
    }
    zcio::SinkNamespace sink_;
    std::vector<SocketAddress> to_;  // --fanout's destinations; empty: connected sockets
};
#endif

std::string sink_unavailable() {
#ifdef ZCPERF_HAVE_SINK
    if (auto why = zcio::SinkNamespace::unavailable_reason()) return *why;
    return {};
#else
    return "this zcperf was built without zcio::SinkNamespace";
#endif
}

std::unique_ptr<SweepTarget> make_sink(int fanout) {
    if (auto why = sink_unavailable(); !why.empty()) throw Error("the sink target is unavailable: " + why);
#ifdef ZCPERF_HAVE_SINK
    return std::make_unique<SinkTarget>(fanout);
#else
    return nullptr;
#endif
}

}  // namespace

std::unique_ptr<SweepTarget> make_send_target(Options& o) {
    Target target = o.target;
    if (!o.host.empty()) {
        target = Target::remote;
    } else if (!o.target_given) {
        const std::string why = ::geteuid() == 0 ? sink_unavailable() : std::string("not root");
        target = why.empty() ? Target::sink : Target::loopback;
        if (!why.empty() && o.fanout) throw Error("--fanout needs the sink target, which is unavailable: " + why);
        if (!why.empty() && !o.json) fmt::print("sink target unavailable ({}): sweeping TCP over loopback\n", why);
    }
    if (target == Target::sink) o.udp = true;
    const char* proto = o.udp ? "UDP" : "TCP";
    switch (target) {
    case Target::remote:
        return std::make_unique<RemoteTarget>(o,
                                              fmt::format("{} over the network to {} port {}", proto, o.host, o.port));
    case Target::loopback:
        return std::make_unique<LoopbackTarget>(o.family, fmt::format("{} over loopback (in-process server)", proto));
    case Target::sink: return make_sink(o.fanout);
    }
    return nullptr;
}

std::unique_ptr<SweepTarget> make_recv_target(const Options& o) {
    if (!o.host.empty()) return std::make_unique<RemoteTarget>(o, fmt::format("TCP to {} port {}", o.host, o.port));
    return std::make_unique<LoopbackTarget>(o.family, "TCP over loopback (in-process server)");
}

}  // namespace zcperf
