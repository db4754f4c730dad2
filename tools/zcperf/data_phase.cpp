#include "data_phase.hpp"

#include "file_transfer.hpp"
#include "net.hpp"

#include <fmt/format.h>

#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

namespace zcperf {

namespace {

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

int usable_cores() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
    return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace

int process_thread_count() {
    std::error_code ec;
    int n = 0;
    for (auto it = std::filesystem::directory_iterator("/proc/self/task", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
        ++n;
    return n;
}

DataPhase::DataPhase(std::vector<LocalStream>& streams, const TestParams& p, const RunSettings& rs,
                     Clock::time_point start, std::vector<IntervalRecord>& intervals)
    : p_(p),
      rs_(rs),
      start_(start),
      intervals_(intervals),
      streams_(streams),
      lives_(streams.size()),
      last_interval_bytes_(streams.size(), 0),
      omitted_(streams.size(), 0),
      cpu0_(process_cpu_now()) {
    for (std::size_t i = 0; i < streams.size(); ++i) (streams[i].sender ? send_ : recv_).push_back(i);
    if (p.bytes) budget_.bytes = static_cast<std::int64_t>(p.bytes);
    if (p.blocks) budget_.blocks = static_cast<std::int64_t>(p.blocks);
    progress_ = rs.progress && p.total_seconds() >= 3;
    last_send_progress_ = start;
    peak_threads_ = process_thread_count();
    start_receiver(p, rs);
    start_senders(p);
}

DataPhase::~DataPhase() {
    stop_sending();
    stop_receiving();
    if (drawn_) fmt::print(stderr, "\r\033[K");
}

void DataPhase::start_senders(const TestParams& p) {
    if (send_.empty()) return;
    const double early = std::chrono::duration<double>(rs_.stop_sending_early).count();
    const double seconds = p.duration > 0 ? std::max(p.total_seconds() * 0.5, p.total_seconds() - early) : 1e9;
    if (p.file.active()) return start_file_senders(seconds);
    SendSpec spec{p.strategy, p.completion, p.length, p.udp_gso, seconds, p.verify};
    spec.working_set = p.working_set;
    spec.bitrate = p.bitrate;
    spec.budget = &budget_;
    spec.stop = &stop_send_;
    spec.udp_header = p.udp && p.udp_header;
    spec.udp64 = p.udp64;
    send_thread_count_ = std::min<std::size_t>(send_.size(), static_cast<std::size_t>(usable_cores()));
    shares_.resize(send_thread_count_);
    for (std::size_t k = 0; k < send_.size(); ++k) {
        const std::size_t i = send_[k];
        shares_[k % send_thread_count_].push_back({streams_[i].fd.get(), streams_[i].id, &lives_[i], streams_[i].to});
    }
    send_results_.resize(send_thread_count_);
    for (std::size_t t = 0; t < send_thread_count_; ++t)
        send_threads_.emplace_back([this, t, spec] { send_results_[t] = run_senders(shares_[t], spec); });
}

// -F: each sending stream sends the file (one stream: file_test_unsupported()), on its own thread.
void DataPhase::start_file_senders(double seconds) {
    send_thread_count_ = send_.size();
    shares_.resize(send_thread_count_);
    send_results_.resize(send_thread_count_);
    for (std::size_t t = 0; t < send_.size(); ++t) {
        const std::size_t i = send_[t];
        shares_[t].push_back({streams_[i].fd.get(), streams_[i].id, &lives_[i]});
        send_threads_.emplace_back([this, t, seconds] {
            send_results_[t] = {run_file_sender(shares_[t].front(), p_, seconds, stop_send_, rs_.rcv_timeout)};
        });
    }
}

void DataPhase::start_receiver(const TestParams& p, const RunSettings& rs) {
    if (recv_.empty()) return;
    for (std::size_t i : recv_) recv_sockets_.push_back({streams_[i].fd.get(), streams_[i].id, &lives_[i]});
    if (p.file.active() && !p.udp) {  // -F: the stream is written to the file
        recv_thread_ = std::thread([this] {
            for (const StreamSocket& s : recv_sockets_) recv_results_.push_back(run_file_receiver(s, p_, start_));
        });
        return;
    }
    const zcio::RecvStrategy strategy = p.recv.value_or(rs.recv);
    recv_thread_ = std::thread([this, strategy, udp = p.udp, verify = p.verify, udp64 = p.udp64] {
        recv_results_ = run_receivers(recv_sockets_, udp, strategy, stop_recv_, start_, receive_, verify, udp64);
    });
}

bool DataPhase::senders_done() const {
    return std::all_of(send_.begin(), send_.end(), [&](std::size_t i) { return lives_[i].finished.load(); });
}

bool DataPhase::receivers_done() const {
    return std::all_of(recv_.begin(), recv_.end(), [&](std::size_t i) { return lives_[i].finished.load(); });
}

std::uint64_t DataPhase::received(int id) const {
    for (std::size_t i : recv_)
        if (streams_[i].id == id) return lives_[i].bytes.load(std::memory_order_relaxed);
    return 0;
}

Clock::duration DataPhase::receive_silence() const {
    std::int64_t last = start_.time_since_epoch().count();
    for (std::size_t i : recv_) last = std::max(last, lives_[i].last_data_ns.load(std::memory_order_relaxed));
    return Clock::now() - Clock::time_point(Clock::duration(last));
}

std::chrono::milliseconds DataPhase::wait_hint() const {
    double next = 0.05;
    if (rs_.interval > 0)
        next =
            std::min(next, std::max(0.0, (static_cast<double>(intervals_.size()) + 1) * rs_.interval - since(start_)));
    return std::chrono::milliseconds(static_cast<long>(next * 1000) + 1);
}

std::optional<std::string> DataPhase::tick() {
    const double now = since(start_);
    if (p_.omit > 0 && !omit_taken_ && now >= p_.omit) {
        for (std::size_t i = 0; i < lives_.size(); ++i) omitted_[i] = lives_[i].bytes.load(std::memory_order_relaxed);
        omit_taken_ = true;
    }
    while (rs_.interval > 0 && now >= (static_cast<double>(intervals_.size()) + 1) * rs_.interval)
        record_interval(static_cast<double>(intervals_.size()) * rs_.interval,
                        (static_cast<double>(intervals_.size()) + 1) * rs_.interval);
    if (progress_ && now - last_progress_ >= 0.5) {
        last_progress_ = now;
        std::uint64_t total = 0;
        for (auto& l : lives_) total += l.bytes.load(std::memory_order_relaxed);
        fmt::print(stderr, "\r[{:6.1f}/{:.1f} s] {} {}, {}\033[K", now, p_.total_seconds(),
                   send_.empty() ? "received" : "sent", format_bytes(static_cast<double>(total)),
                   format_bitrate(now > 0 ? 8.0 * static_cast<double>(total) / now : 0));
        std::fflush(stderr);
        drawn_ = true;
    }
    peak_threads_ = std::max(peak_threads_, process_thread_count());
    const auto limit = rs_.rcv_timeout;
    if (!recv_.empty() && !receivers_done() && receive_silence() > limit)
        return fmt::format("no data from the peer for {:.1f} s (--rcv-timeout {} ms): the peer or the network stopped",
                           std::chrono::duration<double>(receive_silence()).count(), limit.count());
    if (!send_.empty() && !p_.udp && !senders_done()) {
        std::uint64_t total = 0;
        for (std::size_t i : send_) total += lives_[i].bytes.load(std::memory_order_relaxed);
        if (total != last_sent_total_) {
            last_sent_total_ = total;
            last_send_progress_ = Clock::now();
        } else if (Clock::now() - last_send_progress_ > limit) {
            return fmt::format("the peer has taken no data for {} ms (--rcv-timeout): the peer or the network stopped",
                               limit.count());
        }
    }
    return std::nullopt;
}

void DataPhase::record_interval(double from, double to) {
    IntervalRecord iv{from, to, {}, !send_.empty()};
    for (std::size_t i = 0; i < lives_.size(); ++i) {
        std::uint64_t b = lives_[i].bytes.load(std::memory_order_relaxed);
        iv.bytes.push_back(b - last_interval_bytes_[i]);
        last_interval_bytes_[i] = b;
    }
    if (rs_.print_intervals) {
        if (drawn_) fmt::print(stderr, "\r\033[K");
        if (intervals_.empty()) fmt::print("[ ID] Interval           Transfer     Bitrate\n");
        std::uint64_t sum = 0;
        for (std::size_t i = 0; i < iv.bytes.size(); ++i) {
            sum += iv.bytes[i];
            fmt::print("[{:3}] {:6.2f}-{:<6.2f} sec  {:>12}  {:>16}{}\n", streams_[i].id, from, to,
                       format_bytes(static_cast<double>(iv.bytes[i])),
                       format_bitrate(8.0 * static_cast<double>(iv.bytes[i]) / (to - from)),
                       to <= p_.omit ? "  (omitted)" : "");
        }
        if (iv.bytes.size() > 1)
            fmt::print("[SUM] {:6.2f}-{:<6.2f} sec  {:>12}  {:>16}\n", from, to, format_bytes(static_cast<double>(sum)),
                       format_bitrate(8.0 * static_cast<double>(sum) / (to - from)));
        std::fflush(stdout);
    }
    intervals_.push_back(std::move(iv));
}

void DataPhase::wait_sent_acknowledged(std::chrono::milliseconds limit) const {
    if (p_.udp) return;
    const auto deadline = Clock::now() + limit;
    for (std::size_t i : send_) {
        int queued = 0;
        while (::ioctl(streams_[i].fd.get(), SIOCOUTQ, &queued) == 0 && queued > 0 && Clock::now() < deadline &&
               !stop_requested().load())
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    // Acknowledged is only in the peer's receive queue (up to tcp_rmem's 32 MiB here). Its reader
    // has taken it when the window it advertises stops opening: each read it makes opens it.
    std::vector<std::uint32_t> window(send_.size(), 0);
    auto last_change = Clock::now();
    while (Clock::now() < deadline && Clock::now() - last_change < std::chrono::milliseconds(50) &&
           !stop_requested().load()) {
        for (std::size_t k = 0; k < send_.size(); ++k) {
            tcp_info info{};
            socklen_t len = sizeof info;
            if (::getsockopt(streams_[send_[k]].fd.get(), IPPROTO_TCP, TCP_INFO, &info, &len) != 0) continue;
            if (info.tcpi_snd_wnd != window[k]) {
                window[k] = info.tcpi_snd_wnd;
                last_change = Clock::now();
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
}

void DataPhase::stop_sending() {
    stop_send_ = true;
    for (auto& t : send_threads_)
        if (t.joinable()) t.join();
}

void DataPhase::stop_receiving() {
    stop_recv_ = true;
    if (p_.file.active() && !p_.udp)  // a FileReceiver runs to the stream's end: this is its end
        for (const StreamSocket& s : recv_sockets_) ::shutdown(s.fd, SHUT_RD);
    if (recv_thread_.joinable()) recv_thread_.join();
}

SideReport DataPhase::report() {
    const double now = since(start_);
    if (rs_.interval > 0) {
        const double from = static_cast<double>(intervals_.size()) * rs_.interval;
        if (now - from > 0.5 * rs_.interval && !send_.empty()) record_interval(from, now);  // not the drain's sliver
    }
    if (drawn_) {
        fmt::print(stderr, "\r\033[K");
        drawn_ = false;
    }
    SideReport side;
    side.cpu = cpu_between(cpu0_, process_cpu_now());
    std::vector<StreamReport> all;
    for (auto& r : send_results_)
        for (auto& s : r) all.push_back(std::move(s));
    for (auto& s : recv_results_) all.push_back(std::move(s));
    for (auto& s : all) {
        for (std::size_t i = 0; i < streams_.size(); ++i)
            if (streams_[i].id == s.id) {
                s.sender = streams_[i].sender;
                s.bytes -= std::min(s.bytes, omitted_[i]);
            }
        s.seconds = std::max(0.0, s.seconds - (omit_taken_ ? p_.omit : 0.0));
    }
    std::sort(all.begin(), all.end(), [](const StreamReport& a, const StreamReport& b) { return a.id < b.id; });
    side.streams = std::move(all);
    if (!recv_.empty() && !(p_.file.active() && !p_.udp)) side.receive = receive_;  // -F: the file's report says it
    side.threads = static_cast<int>(send_thread_count_);
    side.process_threads = send_.empty() ? 0 : peak_threads_;
    return side;
}

}  // namespace zcperf
