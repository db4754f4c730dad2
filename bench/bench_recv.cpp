// Receive strategies side by side, in one run (the machine is noisy: compare within a run).
//
// (a) bulk: one loopback TCP stream, a sender thread on the other core writing 16-128 KiB at a
//     time; plain recv() into 128 KiB vs multishot vs bundle.
// (b) many connections: 64/256 loopback TCP connections (TCP_NODELAY) fed 512 B / 4 KiB messages
//     round-robin by an io_uring sender on the other core; one receiving thread.
// Reported per case: receive throughput, receiver CPU per GB, receive syscalls per MB; a summary
// table of medians and ratios to plain is printed at the end.
#include <benchmark/benchmark.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "zcio/receiver.hpp"
#include "zcio/unique_fd.hpp"

namespace {

using namespace std::chrono_literals;
using zcio::RecvStrategy;

void pin_to_cpu(int cpu) {
    const unsigned n = std::thread::hardware_concurrency();
    if (n < 2) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(static_cast<unsigned>(cpu) % n, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

double thread_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

void die(const char* what) { throw std::runtime_error(std::string(what) + ": " + std::strerror(errno)); }

// n connected loopback TCP pairs: {senders, receivers}.
std::pair<std::vector<zcio::UniqueFd>, std::vector<zcio::UniqueFd>> tcp_pairs(int n, bool nodelay) {
    zcio::UniqueFd l(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(l.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(l.get(), 1024) != 0) die("listen");
    socklen_t len = sizeof a;
    ::getsockname(l.get(), reinterpret_cast<sockaddr*>(&a), &len);
    std::vector<zcio::UniqueFd> tx, rx;
    for (int i = 0; i < n; ++i) {
        zcio::UniqueFd c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (::connect(c.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("connect");
        zcio::UniqueFd s(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!s) die("accept");
        if (nodelay) {
            int one = 1;
            ::setsockopt(c.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        tx.push_back(std::move(c));
        rx.push_back(std::move(s));
    }
    return {std::move(tx), std::move(rx)};
}

// Batching knobs under test (--wait_batch=N, --batch_wait_us=N; defaults: the library's).
std::uint32_t wait_batch = zcio::ReceiverOptions{}.wait_batch;
long batch_wait_us = zcio::ReceiverOptions{}.batch_wait.count();

zcio::ReceiverOptions options_for(RecvStrategy s, bool bulk, int conns) {
    zcio::ReceiverOptions o;
    o.strategy = s;
    o.wait_batch = wait_batch;
    o.batch_wait = std::chrono::microseconds(batch_wait_us);
    o.max_connections = static_cast<std::uint32_t>(std::max(conns, 1));
    if (s == RecvStrategy::plain) {
        o.buffer_count = 16;
        o.buffer_size = 128 << 10;  // the classic recv() into 128 KiB
    } else if (bulk) {
        o.buffer_count = 64;
        o.buffer_size = 64 << 10;
    } else {
        o.buffer_count = 1024;
        o.buffer_size = 16 << 10;
    }
    return o;
}

struct Sample {
    double bytes_per_s, cpu_s_per_gb, syscalls_per_mb;
};
std::map<std::string, std::vector<Sample>> samples;  // by case name, one per repetition

// Receives `per_iter` bytes per benchmark iteration; the sender keeps the pipe full meanwhile.
void receive_loop(benchmark::State& state, zcio::Receiver& rx, std::uint64_t per_iter, const std::string& key) {
    std::uint64_t got = 0;
    bool broken = false;
    rx.on_event([&](zcio::RecvEvent&& ev) {
        if (ev.result > 0) got += static_cast<std::uint64_t>(ev.result);
        else broken = true;
    });
    const zcio::RecvCounters before = rx.counters();
    const double cpu0 = thread_cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    std::uint64_t target = 0;
    for (auto _ : state) {
        target += per_iter;
        while (got < target && !broken) rx.poll(100ms);
        if (broken) {
            state.SkipWithError("a connection ended early");
            break;
        }
    }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu = thread_cpu_seconds() - cpu0;
    const zcio::RecvCounters after = rx.counters();
    const double mb = static_cast<double>(got) / 1e6;
    const double syscalls = static_cast<double>(after.syscalls() - before.syscalls());
    Sample s{static_cast<double>(got) / wall, cpu / (mb / 1e3), syscalls / mb};
    state.counters["MB/s"] = s.bytes_per_s / 1e6;
    state.counters["cpu_ms/GB"] = s.cpu_s_per_gb * 1e3;
    state.counters["syscalls/MB"] = s.syscalls_per_mb;
    state.counters["rearms/MB"] = static_cast<double>(after.rearms - before.rearms) / mb;
    state.counters["KiB/buffer"] =
        static_cast<double>(got) / 1024.0 / static_cast<double>(std::max<std::uint64_t>(1, after.buffers - before.buffers));
    state.SetBytesProcessed(static_cast<std::int64_t>(got));
    state.SetLabel(std::string(zcio::to_string(rx.strategy())));
    samples[key].push_back(s);
}

// (a) one bulk stream.
void BM_Bulk(benchmark::State& state, RecvStrategy strategy) {
    const std::size_t write_size = static_cast<std::size_t>(state.range(0));
    pin_to_cpu(0);
    auto [tx, rxfd] = tcp_pairs(1, false);
    auto rx = zcio::make_receiver(options_for(strategy, true, 1));
    if (rx->add(rxfd[0].get()) < 0) return state.SkipWithError("add failed");
    std::atomic<bool> stop{false};
    std::thread sender([&, fd = tx[0].get()] {
        pin_to_cpu(1);
        std::vector<char> buf(write_size, 'x');
        while (!stop.load(std::memory_order_relaxed))
            if (::send(fd, buf.data(), buf.size(), MSG_NOSIGNAL) < 0) break;
    });
    receive_loop(state, *rx, 32 << 20, "bulk " + std::to_string(write_size >> 10) + "K " +
                                           std::string(zcio::to_string(strategy)));
    stop = true;
    ::shutdown(tx[0].get(), SHUT_RDWR);  // unblocks a sender stuck in send()
    sender.join();
}

// (b) many connections, small messages, an io_uring sender so the sender is not the bottleneck.
void BM_ManyConnections(benchmark::State& state, RecvStrategy strategy) {
    const int conns = static_cast<int>(state.range(0));
    const std::size_t msg = static_cast<std::size_t>(state.range(1));
    pin_to_cpu(0);
    auto [tx, rxfd] = tcp_pairs(conns, true);
    auto rx = zcio::make_receiver(options_for(strategy, false, conns));
    for (auto& fd : rxfd)
        if (rx->add(fd.get()) < 0) return state.SkipWithError("add failed");
    std::atomic<bool> stop{false};
    std::thread sender([&] {
        pin_to_cpu(1);
        io_uring ring;
        if (io_uring_queue_init(static_cast<unsigned>(conns) * 2, &ring, 0) != 0) return;
        std::vector<char> buf(msg, 'y');
        while (!stop.load(std::memory_order_relaxed)) {
            // One message to every connection per round, one syscall per round.
            for (auto& fd : tx) io_uring_prep_send(io_uring_get_sqe(&ring), fd.get(), buf.data(), buf.size(), MSG_NOSIGNAL);
            if (io_uring_submit_and_wait(&ring, static_cast<unsigned>(conns)) < 0) break;
            io_uring_cqe* cqe;
            unsigned head, seen = 0;
            bool failed = false;
            io_uring_for_each_cqe(&ring, head, cqe) {
                failed |= cqe->res < 0;
                ++seen;
            }
            io_uring_cq_advance(&ring, seen);
            if (failed) break;
        }
        io_uring_queue_exit(&ring);
    });
    receive_loop(state, *rx, 8 << 20, "conns " + std::to_string(conns) + " msg " + std::to_string(msg) + " " +
                                          std::string(zcio::to_string(strategy)));
    stop = true;
    for (auto& fd : tx) ::shutdown(fd.get(), SHUT_RDWR);
    sender.join();
}

void register_all() {
    const RecvStrategy strategies[] = {RecvStrategy::plain, RecvStrategy::multishot, RecvStrategy::bundle};
    for (auto s : strategies) {
        const std::string n(zcio::to_string(s));
        benchmark::RegisterBenchmark(("bulk/" + n).c_str(), BM_Bulk, s)
            ->Arg(16 << 10)->Arg(64 << 10)->Arg(128 << 10)
            ->Iterations(24)->Unit(benchmark::kMillisecond)->UseRealTime();
        benchmark::RegisterBenchmark(("many/" + n).c_str(), BM_ManyConnections, s)
            ->Args({64, 512})->Args({64, 4096})->Args({256, 512})->Args({256, 4096})
            ->Iterations(4)->Unit(benchmark::kMillisecond)->UseRealTime();
    }
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

void print_summary() {
    std::printf("\n%-26s %10s %8s %11s %8s %12s %8s\n", "case (median of reps)", "MB/s", "x plain",
                "cpu ms/GB", "x plain", "syscalls/MB", "x plain");
    for (const auto& [key, v] : samples) {
        std::vector<double> bps, cpu, sys;
        for (const auto& s : v) {
            bps.push_back(s.bytes_per_s);
            cpu.push_back(s.cpu_s_per_gb);
            sys.push_back(s.syscalls_per_mb);
        }
        const std::string base_key = key.substr(0, key.rfind(' ')) + " plain";
        const auto base = samples.find(base_key);
        auto ratio = [&](double x, auto field) -> double {
            if (base == samples.end()) return 0;
            std::vector<double> b;
            for (const auto& s : base->second) b.push_back(s.*field);
            const double m = median(b);
            return m > 0 ? x / m : 0;
        };
        const double mbps = median(bps), c = median(cpu), sc = median(sys);
        std::printf("%-26s %10.0f %8.2f %11.1f %8.2f %12.1f %8.2f\n", key.c_str(), mbps / 1e6,
                    ratio(mbps, &Sample::bytes_per_s), c * 1e3, ratio(c, &Sample::cpu_s_per_gb), sc,
                    ratio(sc, &Sample::syscalls_per_mb));
    }
}

}  // namespace

int main(int argc, char** argv) {
    int kept = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a.rfind("--wait_batch=", 0) == 0) wait_batch = static_cast<std::uint32_t>(std::stoul(a.substr(13)));
        else if (a.rfind("--batch_wait_us=", 0) == 0) batch_wait_us = std::stol(a.substr(16));
        else argv[kept++] = argv[i];
    }
    argc = kept;
    std::printf("receiver batching: wait_batch %u, batch_wait %ld us\n", wait_batch, batch_wait_us);
    register_all();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    print_summary();
    return 0;
}
