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
    SinkTarget() : SweepTarget("sink", ""), sink_(make_options()) {
        set_description(fmt::format("UDP into the namespace sink {} -> {} (veth, MTU {}, pfifo limit 0)",
                                    sink_.address_string(zcio::SinkNamespace::tx),
                                    sink_.address_string(zcio::SinkNamespace::rx), sink_.options().mtu));
    }
    TestRecord run(const TestParams& p) override {
        std::vector<zcio::UniqueFd> fds;
        for (int i = 0; i < p.streams; ++i) fds.push_back(connected_socket());
        return run_send_only(fds, p, {}, "sink");
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
    zcio::UniqueFd connected_socket() {
        zcio::UniqueFd fd = sink_.socket(zcio::SinkNamespace::tx, SOCK_DGRAM);
        sockaddr_in to = sink_.address(zcio::SinkNamespace::rx, 9);
        if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) != 0)
            throw Error("connect into the sink: " + zcio::errno_string(errno));
        return fd;
    }
    zcio::SinkNamespace sink_;
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

std::unique_ptr<SweepTarget> make_sink() {
    if (auto why = sink_unavailable(); !why.empty()) throw Error("the sink target is unavailable: " + why);
#ifdef ZCPERF_HAVE_SINK
    return std::make_unique<SinkTarget>();
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
    case Target::sink: return make_sink();
    }
    return nullptr;
}

std::unique_ptr<SweepTarget> make_recv_target(const Options& o) {
    if (!o.host.empty()) return std::make_unique<RemoteTarget>(o, fmt::format("TCP to {} port {}", o.host, o.port));
    return std::make_unique<LoopbackTarget>(o.family, "TCP over loopback (in-process server)");
}

}  // namespace zcperf
