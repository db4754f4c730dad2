// bench_fanout: one UDP socket serving many peers (a QUIC server, a media relay) into the sink
// namespace: each send is a GSO train of 1200-byte datagrams (40 of them, 48000 B) to the next of
// D destinations (distinct ports of the sink's test host), round robin.
//
//   fanout/<strategy>/D    an unconnected socket, destination and GSO size per send (SendOptions)
//   dest/<strategy>/D      an unconnected socket, destination per send, GSO set on the socket
//   connected/<strategy>   a connected socket, GSO set on the socket: the same trains, one peer
//   fanout/raw-sendmsg/D   the minimal loop: sendmsg(2) with msg_name and a UDP_SEGMENT cmsg
//   dest/raw-sendto/D      the minimal loop: sendto(2), GSO set on the socket
//   connected/raw-send     the minimal loop: send(2) on a connected socket, GSO set on the socket
//
// fanout/zc-fixed against fanout/raw-sendmsg and fanout/plain is what zero-copy is worth to such a
// server; dest/X and fanout/X against connected/X are what a destination per send costs.
//
//   sudo build/bench/bench_fanout --table          # ~1 min, then a Markdown table of medians
// Defaults added unless given: --benchmark_repetitions=5 --benchmark_enable_random_interleaving=true
#include "bench_meter.hpp"
#include "zcio/buffer_arena.hpp"
#include "zcio/ring.hpp"
#include "zcio/send_engine.hpp"
#include "zcio/sink_namespace.hpp"

#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

namespace {

constexpr std::uint16_t segment = 1200;
constexpr std::size_t train = 40 * segment;  // one send: 40 datagrams
constexpr std::size_t slab_size = 64 << 10;
constexpr unsigned depth = 256;  // sends in flight (the ring's SQ)
constexpr std::uint16_t first_port = 10000;
constexpr int fanouts[] = {32, 64};
constexpr zcio::Strategy strategies[] = {zcio::Strategy::plain, zcio::Strategy::copy,     zcio::Strategy::msg_zerocopy,
                                         zcio::Strategy::zc,    zcio::Strategy::zc_fixed, zcio::Strategy::sendmsg_zc};

std::unique_ptr<zcio::SinkNamespace> g_sink;

std::vector<sockaddr_in> destinations(int n) {
    std::vector<sockaddr_in> to;
    for (int i = 0; i < n; ++i)
        to.push_back(g_sink->address(zcio::SinkNamespace::rx, static_cast<std::uint16_t>(first_port + i)));
    return to;
}

zcio::UniqueFd tx_socket(bool connected, bool socket_gso) {
    zcio::UniqueFd fd = g_sink->socket(zcio::SinkNamespace::tx, SOCK_DGRAM);
    if (connected) {
        const sockaddr_in to = g_sink->address(zcio::SinkNamespace::rx, first_port);
        if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) std::perror("connect");
    }
    if (socket_gso) {
        int gso = segment;
        ::setsockopt(fd.get(), SOL_UDP, UDP_SEGMENT, &gso, sizeof gso);
    }
    return fd;
}

enum class Mode { fanout, dest, connected };

// The engine, `depth` trains in flight from a registered arena, each to the next destination.
void bm_engine(benchmark::State& state, zcio::Strategy strategy, Mode mode, int fanout) {
    zcio::UniqueFd fd = tx_socket(mode == Mode::connected, mode != Mode::fanout);
    const std::vector<sockaddr_in> to = destinations(fanout);
    zcio::Ring ring;
    zcio::BufferArena arena(ring, {.slab_size = slab_size, .slab_count = depth});
    zcio::SendEngine engine(ring);
    const auto sock = engine.add_socket(fd.get(), {.strategy = strategy, .max_inflight_bytes = slab_size * depth});
    std::size_t next = 0;
    bench::Meter m;
    for (auto _ : state) {
        zcio::Buffer b = arena.take();
        while (!b) {
            engine.run(true);
            b = arena.take();
        }
        b.resize(train);
        zcio::SendOptions o;
        if (mode != Mode::connected) {
            o.to = reinterpret_cast<const sockaddr*>(&to[next]);
            o.to_len = sizeof(sockaddr_in);
            if (++next == to.size()) next = 0;
        }
        if (mode == Mode::fanout) o.gso_size = segment;
        engine.send(sock, std::move(b), zcio::Storage{[](zcio::Release&&) {}}, o);
    }
    const zcio::Counters c = engine.counters();
    m.finish(state, train, c.zero_copy, c.copied, c.zero_copy + c.copied + c.not_reported);
    if (engine.drain(std::chrono::seconds(10)) != 0) state.SkipWithError("drain timed out");
    if (const auto e = engine.counters().errors) state.SkipWithError(("errors: " + std::to_string(e)).c_str());
    state.counters["destinations"] = mode == Mode::connected ? 1 : fanout;
}

// The minimal loops, cycling the same amount of memory the engine's arena does: sendmsg(2) with
// the destination and UDP_SEGMENT (fanout), sendto(2) with GSO on the socket (dest), send(2) on a
// connected socket with GSO on it (connected).
void bm_raw(benchmark::State& state, Mode mode, int fanout) {
    zcio::UniqueFd fd = tx_socket(mode == Mode::connected, mode != Mode::fanout);
    const std::vector<sockaddr_in> to = destinations(fanout);
    const std::size_t bytes = slab_size * depth;
    void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ::madvise(mem, bytes, MADV_HUGEPAGE);
    std::memset(mem, 0, bytes);
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(std::uint16_t))] = {};
    std::uint64_t errors = 0;
    std::size_t next = 0;
    unsigned slot = 0;
    bench::Meter m;
    for (auto _ : state) {
        iovec iov{static_cast<char*>(mem) + std::size_t{slot} * slab_size, train};
        msghdr msg{};
        msg.msg_name = const_cast<sockaddr_in*>(&to[next]);
        msg.msg_namelen = sizeof(sockaddr_in);
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        if (mode == Mode::connected) {
            msg.msg_name = nullptr;
            msg.msg_namelen = 0;
        }
        if (mode == Mode::fanout) {
            msg.msg_control = control;
            msg.msg_controllen = sizeof control;
            cmsghdr* cm = CMSG_FIRSTHDR(&msg);
            cm->cmsg_level = SOL_UDP;
            cm->cmsg_type = UDP_SEGMENT;
            cm->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
            std::memcpy(CMSG_DATA(cm), &segment, sizeof segment);
        }
        if (::sendmsg(fd.get(), &msg, 0) < 0) ++errors;
        if (++next == to.size()) next = 0;
        if (++slot == depth) slot = 0;
    }
    ::munmap(mem, bytes);
    const auto n = static_cast<std::uint64_t>(state.iterations());
    m.finish(state, train, 0, n, n);
    state.counters["destinations"] = mode == Mode::connected ? 1 : fanout;
    if (errors) state.SkipWithError(("sendmsg failed " + std::to_string(errors) + " times").c_str());
}

void print_table(const bench::MedianReporter& r) {
    auto mibs = [&](const std::string& name) { return r.median(name, "bytes_per_second") / 1048576; };
    auto cpu = [&](const std::string& name) { return r.median(name, "cpu_ns_per_KiB"); };
    auto ratio = [](double a, double b) { return b > 0 ? a / b : 0; };
    std::printf(
        "\n### UDP GSO trains (40 x %u B) into the sink, one socket, D destinations round robin: "
        "median MiB/s (CPU ns/KiB)\n\n",
        segment);
    std::printf(
        "| strategy | connected | dest/32 | fanout/32 | fanout/64 | dest/32 vs connected | "
        "fanout/32 vs connected | fanout/32 vs raw sendmsg | fanout/32 vs plain |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|\n");
    const double raw = mibs("fanout/raw-sendmsg/32"), plain = mibs("fanout/plain/32");
    const double raw_conn = mibs("connected/raw-send"), raw_dest = mibs("dest/raw-sendto/32");
    std::printf(
        "| raw send/sendto/sendmsg | %.0f (%.1f) | %.0f (%.1f) | %.0f (%.1f) | %.0f (%.1f) | %.2f | %.2f "
        "| 1.00 | %.2f |\n",
        raw_conn, cpu("connected/raw-send"), raw_dest, cpu("dest/raw-sendto/32"), raw, cpu("fanout/raw-sendmsg/32"),
        mibs("fanout/raw-sendmsg/64"), cpu("fanout/raw-sendmsg/64"), ratio(raw_dest, raw_conn), ratio(raw, raw_conn),
        ratio(raw, plain));
    for (zcio::Strategy s : strategies) {
        const std::string n = zcio::to_string(s);
        const double conn = mibs("connected/" + n), dest = mibs("dest/" + n + "/32"), fan = mibs("fanout/" + n + "/32");
        std::printf("| %s | %.0f (%.1f) | %.0f (%.1f) | %.0f (%.1f) | %.0f (%.1f) | %.2f | %.2f | %.2f | %.2f |\n",
                    n.c_str(), conn, cpu("connected/" + n), dest, cpu("dest/" + n + "/32"), fan,
                    cpu("fanout/" + n + "/32"), mibs("fanout/" + n + "/64"), cpu("fanout/" + n + "/64"),
                    ratio(dest, conn), ratio(fan, conn), ratio(fan, raw), ratio(fan, plain));
    }
    std::fflush(stdout);
}

void register_cases() {
    for (int d : fanouts) {
        const std::string suffix = "/" + std::to_string(d);
        benchmark::RegisterBenchmark(("fanout/raw-sendmsg" + suffix).c_str(), bm_raw, Mode::fanout, d);
        if (d == fanouts[0]) benchmark::RegisterBenchmark(("dest/raw-sendto" + suffix).c_str(), bm_raw, Mode::dest, d);
        for (zcio::Strategy s : strategies) {
            const std::string n = zcio::to_string(s);
            benchmark::RegisterBenchmark(("fanout/" + n + suffix).c_str(), bm_engine, s, Mode::fanout, d);
            if (d == fanouts[0])
                benchmark::RegisterBenchmark(("dest/" + n + suffix).c_str(), bm_engine, s, Mode::dest, d);
        }
    }
    benchmark::RegisterBenchmark("connected/raw-send", bm_raw, Mode::connected, 1);
    for (zcio::Strategy s : strategies)
        benchmark::RegisterBenchmark((std::string("connected/") + zcio::to_string(s)).c_str(), bm_engine, s,
                                     Mode::connected, 1);
}

}  // namespace

int main(int argc, char** argv) {
    bool table = false;
    bench::Args args(
        argc, argv, [&](std::string_view a) { return a == "--table" && (table = true); },
        {"--benchmark_repetitions=5", "--benchmark_enable_random_interleaving=true", "--benchmark_min_time=0.2"});
    if (auto why = zcio::SinkNamespace::unavailable_reason()) {
        std::printf("bench_fanout: skipped, no sink namespace here: %s\n", why->c_str());
        return 0;
    }
    g_sink = std::make_unique<zcio::SinkNamespace>(zcio::SinkOptions{.mtu = 1500, .name_prefix = "fanout"});
    register_cases();
    if (!args.initialize()) return 1;
    bench::MedianReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    if (table) print_table(reporter);
    benchmark::Shutdown();
    g_sink.reset();
    return 0;
}
