// Receive strategies side by side, in one run (the machine is noisy: compare within a run).
//
// (a) bulk: one loopback TCP stream, a sender thread on the other core writing 16-128 KiB at a
//     time; plain recv() into 128 KiB vs multishot vs bundle.
// (b) many connections: 64/256 loopback TCP connections (TCP_NODELAY) fed 512 B / 4 KiB messages
//     round-robin by an io_uring sender on the other core; one receiving thread.
// Reported per case: receive throughput, receiver CPU per GB, receive syscalls per MB, bytes per
// read (per recv() or per completion), how often the receiver slept and was preempted, and how busy
// each side's core was; a summary table of medians and ratios to plain is printed at the end.
//
// What decides the small-message cases (measured, see README "Receive"): every read that drains a
// socket makes TCP send an ACK, and on loopback sending and processing that ACK is most of the
// receiver's CPU. So CPU per GB follows bytes per read, for every strategy alike. A receiver that
// keeps up reads one message at a time; one that was delayed (another process on its core) finds
// several queued and reads them at once, for a third of the CPU per byte. The rx/tx busy and
// preempted columns show which regime a repetition ran in: compare strategies only within one.
//
// In the bulk cases the sender is the bottleneck (tx busy ~100 %): a repetition where it is not
// was held up by flow control (rcvbuf_KiB/sndbuf_KiB: the buffers autotuning left).
//
// Knobs: --wait_batch=N --batch_wait_us=N (the receiver's batched wait), --many_buffers=N
// --many_buffer_size=B --incremental=1 (the buffer ring of the many-connection cases),
// --many_iterations=N, --sockbuf_kib=N (fixed SO_SNDBUF/SO_RCVBUF for every strategy).
#include <benchmark/benchmark.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "bench_meter.hpp"

#include <arpa/inet.h>
#include <algorithm>
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

// The calling thread's CPU time, the times it went to sleep (voluntary context switches) and the
// times another task took its core (involuntary), and the wall clock.
struct ThreadClock {
    double cpu_s = 0, wall_s = 0;
    long sleeps = 0, preempted = 0;

    static ThreadClock now() {
        ThreadClock c;
        timespec ts{};
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        c.cpu_s = static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
        c.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
        rusage ru{};
        ::getrusage(RUSAGE_THREAD, &ru);
        c.sleeps = ru.ru_nvcsw;
        c.preempted = ru.ru_nivcsw;
        return c;
    }
    ThreadClock operator-(const ThreadClock& o) const {
        return {cpu_s - o.cpu_s, wall_s - o.wall_s, sleeps - o.sleeps, preempted - o.preempted};
    }
    double busy() const { return wall_s > 0 ? cpu_s / wall_s : 0; }
};

void die(const char* what) { throw std::runtime_error(std::string(what) + ": " + std::strerror(errno)); }

// Fixed socket buffers for every strategy (--sockbuf_kib=N; 0: the kernel autotunes).
int sockbuf_kib = 0;

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
        if (sockbuf_kib > 0) {
            const int bytes = sockbuf_kib << 10;
            ::setsockopt(c.get(), SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
            ::setsockopt(s.get(), SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
        }
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
// Buffer ring of the bulk cases (--bulk_buffers=N --bulk_buffer_size=B): reads as large as plain's
// 128 KiB recv(). With 64 KiB buffers a multishot read took half as much per recvmsg, so TCP acked
// twice as often and the receiver spent 4-29 % more CPU per GB than plain for the same bytes.
std::uint32_t bulk_buffers = 32;
std::uint32_t bulk_buffer_size = 128 << 10;
// Buffer ring of the many-connection cases (--many_buffers=N --many_buffer_size=B --incremental=1).
std::uint32_t many_buffers = 1024;
std::uint32_t many_buffer_size = 16 << 10;
bool incremental = false;
// Iterations (8 MB each) per repetition of a many-connection case (--many_iterations=N). Short
// repetitions (32 MB, ~0.2 s) each landed in one of the two regimes below at random, so a median
// of three compared luck; 96 MB per repetition gives steadier medians.
std::int64_t many_iterations = 12;

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
        o.buffer_count = bulk_buffers;
        o.buffer_size = bulk_buffer_size;
    } else {
        o.buffer_count = many_buffers;
        o.buffer_size = many_buffer_size;
        o.incremental = incremental;
    }
    return o;
}

struct Sample {
    double bytes_per_s, cpu_s_per_gb, syscalls_per_mb;
    double kib_per_read;  // bytes per recv() / per buffer delivered
    double rx_busy;       // receiving thread CPU / wall
    double tx_busy = 0;   // sending thread CPU / wall (set once the sender has stopped)
};
std::map<std::string, std::vector<Sample>> samples;  // by case name, one per repetition

// Receives `per_iter` bytes per benchmark iteration; the sender keeps the pipe full meanwhile.
// Returns the repetition's sample (the caller adds the sender's figures).
Sample& receive_loop(benchmark::State& state, zcio::Receiver& rx, std::uint64_t per_iter, const std::string& key) {
    std::uint64_t got = 0;
    bool broken = false;
    rx.on_event([&](zcio::RecvEvent&& ev) {
        if (ev.result > 0) got += static_cast<std::uint64_t>(ev.result);
        else broken = true;
    });
    const zcio::RecvCounters before = rx.counters();
    const ThreadClock t0 = ThreadClock::now();
    std::uint64_t target = 0;
    for (auto _ : state) {
        target += per_iter;
        while (got < target && !broken) rx.poll(100ms);
        if (broken) {
            state.SkipWithError("a connection ended early");
            break;
        }
    }
    const ThreadClock t = ThreadClock::now() - t0;
    const zcio::RecvCounters after = rx.counters();
    const double mb = static_cast<double>(got) / 1e6;
    const double syscalls = static_cast<double>(after.syscalls() - before.syscalls());
    const double reads = static_cast<double>(std::max<std::uint64_t>(1, after.buffers - before.buffers));
    Sample s{static_cast<double>(got) / t.wall_s, t.cpu_s / (mb / 1e3), syscalls / mb,
             static_cast<double>(got) / 1024.0 / reads, t.busy()};
    state.counters["MB/s"] = s.bytes_per_s / 1e6;
    state.counters["cpu_ms/GB"] = s.cpu_s_per_gb * 1e3;
    state.counters["syscalls/MB"] = s.syscalls_per_mb;
    state.counters["KiB/read"] = s.kib_per_read;
    state.counters["rx_busy"] = s.rx_busy;
    state.counters["rx_sleeps/MB"] = static_cast<double>(t.sleeps) / mb;
    state.counters["rx_preempted/MB"] = static_cast<double>(t.preempted) / mb;
    state.counters["rearms/MB"] = static_cast<double>(after.rearms - before.rearms) / mb;
    state.SetBytesProcessed(static_cast<std::int64_t>(got));
    state.SetLabel(std::string(zcio::to_string(rx.strategy())));
    samples[key].push_back(s);
    return samples[key].back();
}

// Socket buffer sizes the connection ended with (autotuning grows them with the reads it sees).
void report_socket_buffers(benchmark::State& state, int tx_fd, int rx_fd) {
    int v = 0;
    socklen_t len = sizeof v;
    ::getsockopt(rx_fd, SOL_SOCKET, SO_RCVBUF, &v, &len);
    state.counters["rcvbuf_KiB"] = v / 1024.0;
    len = sizeof v;
    ::getsockopt(tx_fd, SOL_SOCKET, SO_SNDBUF, &v, &len);
    state.counters["sndbuf_KiB"] = v / 1024.0;
}

// What the sending thread reports once it stops.
struct SenderClock {
    ThreadClock used;
    void start() { used = ThreadClock::now(); }
    void stop() { used = ThreadClock::now() - used; }
    void report(benchmark::State& state, Sample& s) const {
        s.tx_busy = used.busy();
        state.counters["tx_busy"] = s.tx_busy;
        state.counters["tx_preempted"] = static_cast<double>(used.preempted);
    }
};

// (a) one bulk stream.
void BM_Bulk(benchmark::State& state, RecvStrategy strategy) {
    const std::size_t write_size = static_cast<std::size_t>(state.range(0));
    pin_to_cpu(0);
    auto [tx, rxfd] = tcp_pairs(1, false);
    auto rx = zcio::make_receiver(options_for(strategy, true, 1));
    if (rx->add(rxfd[0].get()) < 0) return state.SkipWithError("add failed");
    std::atomic<bool> stop{false};
    SenderClock tx_clock;
    std::thread sender([&, fd = tx[0].get()] {
        pin_to_cpu(1);
        tx_clock.start();
        std::vector<char> buf(write_size, 'x');
        while (!stop.load(std::memory_order_relaxed))
            if (::send(fd, buf.data(), buf.size(), MSG_NOSIGNAL) < 0) break;
        tx_clock.stop();
    });
    Sample& sample =
        receive_loop(state, *rx, 32 << 20,
                     "bulk " + std::to_string(write_size >> 10) + "K " + std::string(zcio::to_string(strategy)));
    stop = true;
    ::shutdown(tx[0].get(), SHUT_RDWR);  // unblocks a sender stuck in send()
    sender.join();
    tx_clock.report(state, sample);
    report_socket_buffers(state, tx[0].get(), rxfd[0].get());
}

// (b) many connections, small messages, an io_uring sender so the sender is not the bottleneck.
void BM_ManyConnections(benchmark::State& state, RecvStrategy strategy) {
    const int conns = static_cast<int>(state.range(0));
    const std::size_t msg = static_cast<std::size_t>(state.range(1));
    pin_to_cpu(0);
    // Named, not a structured binding: the sender lambda below uses tx, and clang 14 cannot
    // capture a binding (C++20 allows it; clang follows from 16).
    auto pairs = tcp_pairs(conns, true);
    auto& tx = pairs.first;
    auto& rxfd = pairs.second;
    auto rx = zcio::make_receiver(options_for(strategy, false, conns));
    for (auto& fd : rxfd)
        if (rx->add(fd.get()) < 0) return state.SkipWithError("add failed");
    std::atomic<bool> stop{false};
    SenderClock tx_clock;
    std::thread sender([&] {
        pin_to_cpu(1);
        tx_clock.start();
        io_uring ring;
        if (io_uring_queue_init(static_cast<unsigned>(conns) * 2, &ring, 0) != 0) return;
        std::vector<char> buf(msg, 'y');
        while (!stop.load(std::memory_order_relaxed)) {
            // One message to every connection per round, one syscall per round.
            for (auto& fd : tx)
                io_uring_prep_send(io_uring_get_sqe(&ring), fd.get(), buf.data(), buf.size(), MSG_NOSIGNAL);
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
        tx_clock.stop();
    });
    Sample& sample = receive_loop(state, *rx, 8 << 20,
                                  "conns " + std::to_string(conns) + " msg " + std::to_string(msg) + " " +
                                      std::string(zcio::to_string(strategy)));
    stop = true;
    for (auto& fd : tx) ::shutdown(fd.get(), SHUT_RDWR);
    sender.join();
    tx_clock.report(state, sample);
    report_socket_buffers(state, tx[0].get(), rxfd[0].get());
}

void register_all() {
    const RecvStrategy strategies[] = {RecvStrategy::plain, RecvStrategy::multishot, RecvStrategy::bundle};
    for (auto s : strategies) {
        const std::string n(zcio::to_string(s));
        benchmark::RegisterBenchmark(("bulk/" + n).c_str(), BM_Bulk, s)
            ->Arg(16 << 10)
            ->Arg(64 << 10)
            ->Arg(128 << 10)
            ->Iterations(24)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
        benchmark::RegisterBenchmark(("many/" + n).c_str(), BM_ManyConnections, s)
            ->Args({64, 512})
            ->Args({64, 4096})
            ->Args({256, 512})
            ->Args({256, 4096})
            ->Iterations(many_iterations)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
    }
}

using bench::median;

void print_summary() {
    std::printf("\n%-26s %8s %7s %10s %7s %11s %7s %9s %7s %7s\n", "case (median of reps)", "MB/s", "x plain",
                "cpu ms/GB", "x plain", "syscalls/MB", "x plain", "KiB/read", "rx busy", "tx busy");
    for (const auto& entry : samples) {
        const std::string& key = entry.first;
        const std::vector<Sample>& v = entry.second;  // not a binding: ratio() captures it (clang 14)
        const std::string base_key = key.substr(0, key.rfind(' ')) + " plain";
        const auto base = samples.find(base_key);
        auto med = [](const std::vector<Sample>& of, double Sample::*field) {
            std::vector<double> x;
            for (const auto& s : of) x.push_back(s.*field);
            return median(std::move(x));
        };
        auto ratio = [&](double Sample::*field) -> double {
            const double b = base == samples.end() ? 0 : med(base->second, field);
            return b > 0 ? med(v, field) / b : 0;
        };
        std::printf("%-26s %8.0f %7.2f %10.1f %7.2f %11.1f %7.2f %9.2f %6.0f%% %6.0f%%\n", key.c_str(),
                    med(v, &Sample::bytes_per_s) / 1e6, ratio(&Sample::bytes_per_s),
                    med(v, &Sample::cpu_s_per_gb) * 1e3, ratio(&Sample::cpu_s_per_gb), med(v, &Sample::syscalls_per_mb),
                    ratio(&Sample::syscalls_per_mb), med(v, &Sample::kib_per_read), med(v, &Sample::rx_busy) * 100,
                    med(v, &Sample::tx_busy) * 100);
    }
}

}  // namespace

// "--name=N": sets `out` to N and returns true.
template <typename T>
bool numeric_flag(const std::string& arg, const std::string& name, T& out) {
    if (arg.rfind(name, 0) != 0) return false;
    out = static_cast<T>(std::stoll(arg.substr(name.size())));
    return true;
}

int main(int argc, char** argv) {
    int kept = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const bool ours =
            numeric_flag(a, "--wait_batch=", wait_batch) || numeric_flag(a, "--batch_wait_us=", batch_wait_us) ||
            numeric_flag(a, "--bulk_buffers=", bulk_buffers) ||
            numeric_flag(a, "--bulk_buffer_size=", bulk_buffer_size) ||
            numeric_flag(a, "--many_buffers=", many_buffers) ||
            numeric_flag(a, "--many_buffer_size=", many_buffer_size) ||
            numeric_flag(a, "--incremental=", incremental) || numeric_flag(a, "--many_iterations=", many_iterations) ||
            numeric_flag(a, "--sockbuf_kib=", sockbuf_kib);
        if (!ours) argv[kept++] = argv[i];
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
