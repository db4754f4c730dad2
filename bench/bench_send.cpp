// bench_send: UDP into the sink namespace (veth, `pfifo limit 0`, MTU 65535), every SendEngine
// strategy against a raw send() loop and a minimal hand-written liburing SEND_ZC loop (the floor),
// twice: `liburing-floor` with the plain socket fd, `floor-ff` with the socket registered in the
// ring's file table as SendEngine does (zc-fixed / floor-ff isolates the abstraction's own cost).
//
// Every zero-copy case keeps `depth` sends in flight from a registered arena and refills as buffers
// come back; it never waits for one notification per send.
//
// Buffers: the copying cases (raw send(), plain, copy) send one buffer again and again, as a
// minimal send() loop or iperf3 does: the copy reads it from the cache. A zero-copy case cannot
// rewrite a buffer before its notification, so its working set is what it keeps in flight (depth
// x 64 KiB = 16 MiB). --cold makes the copying cases cycle through the same 16 MiB too (the table
// before this choice, and the case where an application's payload really is cold).
//
// Cases run for a fixed time each, the whole strategy x payload matrix repeated and randomly
// interleaved (Google Benchmark's --benchmark_enable_random_interleaving), so drifting machine
// noise hits every case alike.
//
//   sudo build/bench/bench_send --table                 # ~1.5 min: console output, then Markdown
//   sudo build/bench/bench_send --benchmark_filter='zc-fixed|floor' --benchmark_repetitions=5
//
// Flags of ours (everything else goes to Google Benchmark):
//   --table     after the run, print payload x strategy MiB/s (median over repetitions) as Markdown
//   --depth=N   sends in flight per case (default 256: arena slabs, and the floor's buffers)
//   --cold      raw send(), plain and copy cycle through depth slabs instead of resending one
// Defaults added unless given: --benchmark_repetitions=5 --benchmark_enable_random_interleaving=true
//
// Counters: bytes_per_second / items_per_second (wall clock), cpu_ns_per_KiB (CLOCK_THREAD_CPUTIME_ID
// of the sending thread per 1024 payload bytes; with DEFER_TASKRUN the kernel's send and completion
// work runs in this thread too), cpu_util (thread CPU / wall), zc_share / copied_share (releases the
// kernel reported zero-copy / copied, from SendEngine's Counters or the floor's own notifications).
#include "bench_meter.hpp"
#include "uring_compat.hpp"
#include "zcio/buffer_arena.hpp"
#include "zcio/error.hpp"
#include "zcio/ring.hpp"
#include "zcio/send_engine.hpp"
#include "zcio/sink_namespace.hpp"

#include <benchmark/benchmark.h>
#include <liburing.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::size_t payloads[] = {1400, 4000, 16000, 32000, 60000};
constexpr std::size_t slab_size = 64 << 10;
constexpr std::uint16_t sink_port = 9;

unsigned g_depth = 256;
bool g_cold = false;  // --cold: copying cases cycle through depth slabs, as the zero-copy ones must
std::unique_ptr<zcio::SinkNamespace> g_sink;

zcio::UniqueFd connected_udp() {
    zcio::UniqueFd fd = g_sink->socket(zcio::SinkNamespace::tx, SOCK_DGRAM);
    const sockaddr_in to = g_sink->address(zcio::SinkNamespace::rx, sink_port);
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {
        std::perror("bench_send: connect");
        std::exit(1);
    }
    return fd;
}

using bench::median;
using bench::Meter;

// ---- raw send(): what `plain` is, without the engine ---------------------------------------------

// One buffer resent, as a minimal loop does (warm in the cache); --cold: `depth` slabs of one
// mapping in turn, the working set the zero-copy cases keep in flight.
void bm_raw_send(benchmark::State& state, std::size_t payload) {
    zcio::UniqueFd fd = connected_udp();
    const std::size_t bytes = slab_size * g_depth;
    void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ::madvise(mem, bytes, MADV_HUGEPAGE);  // as the arena does; then fault it in, huge where THP allows
    auto* base = static_cast<char*>(mem);
    std::memset(base, 0, bytes);
    std::uint64_t errors = 0;
    unsigned slot = 0;
    Meter m;
    const unsigned slots = g_cold ? g_depth : 1;
    for (auto _ : state) {
        if (::send(fd.get(), base + std::size_t{slot} * slab_size, payload, 0) < 0) ++errors;
        if (++slot == slots) slot = 0;
    }
    ::munmap(mem, bytes);
    const auto n = static_cast<std::uint64_t>(state.iterations());
    m.finish(state, payload, 0, n, n);
    if (errors) state.SkipWithError(("send() failed " + std::to_string(errors) + " times").c_str());
}

// ---- zcio SendEngine ------------------------------------------------------------------------------

void bm_engine(benchmark::State& state, zcio::Strategy strategy, std::size_t payload) {
    zcio::UniqueFd fd = connected_udp();
    zcio::Ring ring;  // sq 256, cq 2048, SINGLE_ISSUER|DEFER_TASKRUN, registered ring fd
    zcio::BufferArena arena(ring, {.slab_size = slab_size, .slab_count = g_depth});
    zcio::SendEngine engine(ring);
    const zcio::SocketId sock =
        engine.add_socket(fd.get(), {.strategy = strategy, .max_inflight_bytes = slab_size * g_depth});
    // Copying strategies resend one slab (see the top): the bytes are constant, so a send still
    // queued or in flight reads the same bytes; the engine runs every depth sends, as when the
    // arena runs dry, so submission batches and releases come at the same rate as in --cold.
    const bool warm = !g_cold && (strategy == zcio::Strategy::plain || strategy == zcio::Strategy::copy);
    zcio::Buffer held = warm ? arena.take() : zcio::Buffer{};
    unsigned since_run = 0;
    Meter m;
    for (auto _ : state) {
        if (warm) {
            engine.send(sock, zcio::Buffer::borrow({held.data(), payload}), zcio::Storage{[](zcio::Release&&) {}});
            if (++since_run == g_depth) {
                since_run = 0;
                engine.run(false);
            }
            continue;
        }
        zcio::Buffer b = arena.take();
        while (!b) {  // every slab is out: submit, wait for releases, refill
            engine.run(true);
            b = arena.take();
        }
        b.resize(payload);
        // The release drops the buffer: back to the arena, ready for take().
        engine.send(sock, std::move(b), zcio::Storage{[](zcio::Release&&) {}});
    }
    zcio::Counters c = engine.counters();
    const std::uint64_t zc0 = c.zero_copy, cp0 = c.copied, rel0 = c.zero_copy + c.copied + c.not_reported;
    m.finish(state, payload, zc0, cp0, rel0);  // releases seen inside the timed loop
    if (engine.drain(std::chrono::seconds(10)) != 0) state.SkipWithError("drain timed out");
    c = engine.counters();
    if (c.errors) state.SkipWithError(("releases with an error: " + std::to_string(c.errors)).c_str());
    if (c.stray_cqes) state.SkipWithError("stray CQEs");
}

// ---- the floor: the least liburing code that keeps SEND_ZC + fixed buffers going ---------------

// fixed_file: the socket in the ring's file table too (IOSQE_FIXED_FILE), as SendEngine registers
// it: `floor-ff`, the same set-up as zcio, so zc-fixed / floor-ff is the code path's own cost.
void bm_liburing_floor(benchmark::State& state, std::size_t payload, bool fixed_file) {
    zcio::UniqueFd fd = connected_udp();
    // The same ring set-up zcio's Ring picks on this kernel, so the difference is the code path.
    io_uring ring;
    io_uring_params p{};
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    p.cq_entries = 2048;
    if (int r = io_uring_queue_init_params(256, &ring, &p); r < 0) {
        state.SkipWithError(("io_uring_queue_init_params: " + zcio::errno_string(r)).c_str());
        return;
    }
    io_uring_register_ring_fd(&ring);
    const std::size_t bytes = slab_size * g_depth;
    void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ::madvise(mem, bytes, MADV_HUGEPAGE);
    iovec iov{mem, bytes};
    if (int r = io_uring_register_buffers(&ring, &iov, 1); r < 0) {
        state.SkipWithError(("io_uring_register_buffers: " + zcio::errno_string(r)).c_str());
        return;
    }
    auto* base = static_cast<char*>(mem);
    int sfd = fd.get();
    if (fixed_file) {
        if (int r = io_uring_register_files(&ring, &sfd, 1); r < 0) {
            state.SkipWithError("register_files");
            return;
        }
        sfd = 0;
    }
    std::vector<unsigned> free_slots(g_depth);
    for (unsigned i = 0; i < g_depth; ++i) free_slots[i] = i;
    std::uint64_t zero_copy = 0, copied = 0, errors = 0;
    unsigned inflight = 0;

    auto reap = [&] {
        io_uring_cqe* cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            ++seen;
            const auto slot = static_cast<unsigned>(cqe->user_data);
            if (cqe->flags & IORING_CQE_F_NOTIF) {
                (static_cast<std::uint32_t>(cqe->res) & IORING_NOTIF_USAGE_ZC_COPIED ? copied : zero_copy)++;
            } else {
                if (cqe->res < 0) ++errors;
                if (cqe->flags & IORING_CQE_F_MORE) continue;  // the notification frees the slot
            }
            free_slots.push_back(slot);
            --inflight;
        }
        io_uring_cq_advance(&ring, seen);
    };

    Meter m;
    for (auto _ : state) {
        while (free_slots.empty()) {
            io_uring_submit_and_wait(&ring, 1);
            reap();
        }
        const unsigned slot = free_slots.back();
        free_slots.pop_back();
        io_uring_sqe* sqe = io_uring_get_sqe(&ring);  // never null: depth <= SQ size is checked
        io_uring_prep_send_zc_fixed(sqe, sfd, base + std::size_t{slot} * slab_size, payload, 0,
                                    IORING_SEND_ZC_REPORT_USAGE, 0);
        if (fixed_file) sqe->flags |= IOSQE_FIXED_FILE;
        sqe->user_data = slot;
        ++inflight;
    }
    m.finish(state, payload, zero_copy, copied, zero_copy + copied);
    while (inflight > 0) {
        io_uring_submit_and_wait(&ring, 1);
        reap();
    }
    io_uring_queue_exit(&ring);
    ::munmap(mem, bytes);
    if (errors) state.SkipWithError(("sends failed: " + std::to_string(errors)).c_str());
}

// ---- --table: median MiB/s per case, as Markdown ----------------------------------------------------

struct Cell {
    std::vector<double> bps, zc, cpu;  // per repetition
};

class TableReporter : public benchmark::ConsoleReporter {
public:
    // name "send/<strategy>/<payload>" -> repetitions
    std::map<std::string, Cell> cells;
    std::map<std::string, Cell> medians;  // the "median" aggregates, if that is all we are shown

    void ReportRuns(const std::vector<Run>& runs) override {
        for (const Run& r : runs) {
            if (r.error_occurred) continue;
            const std::string name = r.run_name.function_name;
            Cell& c = r.run_type == Run::RT_Aggregate ? medians[name] : cells[name];
            if (r.run_type == Run::RT_Aggregate && r.aggregate_name != "median") continue;
            auto get = [&](const char* k) {
                auto it = r.counters.find(k);
                return it == r.counters.end() ? 0.0 : it->second.value;
            };
            c.bps.push_back(get("bytes_per_second"));
            c.zc.push_back(get("zc_share"));
            c.cpu.push_back(get("cpu_ns_per_KiB"));
        }
        ConsoleReporter::ReportRuns(runs);
    }

    const Cell* find(const std::string& name) const {
        if (auto it = cells.find(name); it != cells.end() && !it->second.bps.empty()) return &it->second;
        if (auto it = medians.find(name); it != medians.end() && !it->second.bps.empty()) return &it->second;
        return nullptr;
    }

    void print_table(const std::vector<std::string>& columns, int repetitions) const {
        std::printf(
            "\n### UDP into the sink (MTU 65535), median MiB/s of %d interleaved repetitions, "
            "(ratio to plain), depth %u, copying cases %s\n\n",
            repetitions, g_depth, g_cold ? "cold (depth slabs in turn)" : "warm (one buffer resent)");
        std::printf("| payload |");
        for (const auto& col : columns) std::printf(" %s |", col.c_str());
        std::printf(" zc-fixed / floor | zc-fixed / floor-ff |\n|---|");
        for (std::size_t i = 0; i <= columns.size() + 1; ++i) std::printf("---|");
        std::printf("\n");
        for (std::size_t payload : payloads) {
            const std::string suffix = "/" + std::to_string(payload);
            const Cell* plain = find("send/plain" + suffix);
            const double base = plain ? median(plain->bps) : 0;
            std::printf("| %zu |", payload);
            for (const auto& col : columns) {
                const Cell* c = find("send/" + col + suffix);
                if (!c) {
                    std::printf(" - |");
                    continue;
                }
                const double v = median(c->bps);
                if (base > 0) std::printf(" %.0f (%.2f) |", v / 1048576, v / base);
                else std::printf(" %.0f |", v / 1048576);
            }
            const Cell* zf = find("send/zc-fixed" + suffix);
            for (const char* floor : {"send/liburing-floor", "send/floor-ff"}) {
                const Cell* fl = find(floor + suffix);
                if (zf && fl && median(fl->bps) > 0) std::printf(" %.3f |", median(zf->bps) / median(fl->bps));
                else std::printf(" - |");
            }
            std::printf("\n");
        }
        std::printf("\n### Sending thread CPU ns per KiB (median) / share of releases reported zero-copy\n\n");
        std::printf("| payload |");
        for (const auto& col : columns) std::printf(" %s |", col.c_str());
        std::printf(" zc-fixed CPU / floor CPU | zc-fixed CPU / floor-ff CPU |\n|---|");
        for (std::size_t i = 0; i <= columns.size() + 1; ++i) std::printf("---|");
        std::printf("\n");
        for (std::size_t payload : payloads) {
            const std::string suffix = "/" + std::to_string(payload);
            std::printf("| %zu |", payload);
            for (const auto& col : columns) {
                const Cell* c = find("send/" + col + suffix);
                if (!c) std::printf(" - |");
                else std::printf(" %.1f / %.0f%% |", median(c->cpu), 100 * median(c->zc));
            }
            // CPU per byte is steadier than wall-clock throughput on a noisy VM: the abstraction's cost.
            const Cell* zf = find("send/zc-fixed" + suffix);
            for (const char* floor : {"send/liburing-floor", "send/floor-ff"}) {
                const Cell* fl = find(floor + suffix);
                if (zf && fl && median(fl->cpu) > 0) std::printf(" %.3f |", median(zf->cpu) / median(fl->cpu));
                else std::printf(" - |");
            }
            std::printf("\n");
        }
        std::fflush(stdout);
    }
};

}  // namespace

int main(int argc, char** argv) {
    bool table = false;
    bench::Args args(argc, argv, [&](std::string_view a) {
        if (a == "--table") return table = true;
        if (a.rfind("--depth=", 0) == 0) return (g_depth = static_cast<unsigned>(std::atoi(a.data() + 8))), true;
        if (a == "--cold") return g_cold = true;
        return false;
    });
    if (g_depth == 0 || g_depth > 256) {
        std::fprintf(stderr, "bench_send: --depth must be 1..256 (the rings' SQ size)\n");
        return 2;
    }
    const int repetitions = args.number("--benchmark_repetitions=", 1);

    if (auto why = zcio::SinkNamespace::unavailable_reason()) {
        std::printf("bench_send: skipped, no sink namespace here: %s\n", why->c_str());
        return 0;
    }
    g_sink = std::make_unique<zcio::SinkNamespace>(zcio::SinkOptions{.mtu = 65535, .name_prefix = "bench"});

    std::vector<std::string> columns{"raw-send"};
    for (zcio::Strategy s : zcio::all_strategies) columns.emplace_back(zcio::to_string(s));
    columns.emplace_back("liburing-floor");
    columns.emplace_back("floor-ff");

    for (std::size_t payload : payloads) {
        const std::string suffix = "/" + std::to_string(payload);
        std::vector<benchmark::internal::Benchmark*> bms;
        bms.push_back(benchmark::RegisterBenchmark(("send/raw-send" + suffix).c_str(), bm_raw_send, payload));
        for (zcio::Strategy s : zcio::all_strategies)
            bms.push_back(benchmark::RegisterBenchmark((std::string("send/") + zcio::to_string(s) + suffix).c_str(),
                                                       bm_engine, s, payload));
        bms.push_back(
            benchmark::RegisterBenchmark(("send/liburing-floor" + suffix).c_str(), bm_liburing_floor, payload, false));
        bms.push_back(
            benchmark::RegisterBenchmark(("send/floor-ff" + suffix).c_str(), bm_liburing_floor, payload, true));
        for (auto* b : bms) b->UseRealTime()->MinTime(0.2)->Unit(benchmark::kMicrosecond);
    }

    if (!args.initialize()) return 1;

    TableReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    if (table) reporter.print_table(columns, repetitions);
    benchmark::Shutdown();
    g_sink.reset();
    return 0;
}
