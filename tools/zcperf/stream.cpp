#include "stream.hpp"

#include "cpu.hpp"
#include "net.hpp"
#include "payload.hpp"
#include "receive_fallback.hpp"
#include "udp_header.hpp"

#include <zcio/error.hpp>
#include <zcio/receiver.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <vector>

namespace zcperf {

using Clock = std::chrono::steady_clock;

zcio::ReceiverOptions receiver_options(zcio::RecvStrategy strategy, bool udp, std::size_t sockets,
                                       const std::string& interface) {
    zcio::ReceiverOptions o;
    o.strategy = strategy;
    o.max_connections = static_cast<std::uint32_t>(std::max<std::size_t>(sockets, 1));
    o.interface = interface;
    if (strategy == zcio::RecvStrategy::plain) {
        o.buffer_count = 16;
        o.buffer_size = udp ? 65536 : 128 << 10;  // iperf3's recv() into 128 KiB
    } else if (udp) {
        o.buffer_count = 256;
        o.buffer_size = 65536;  // a whole datagram per buffer: a multishot recv truncates
    } else if (sockets <= 2) {
        o.buffer_count = 64;  // bulk: big buffers, few completions
        o.buffer_size = 64 << 10;
    } else {
        o.buffer_count = 1024;  // many connections: many buffers, each partly filled
        o.buffer_size = 16 << 10;
    }
    return o;
}

namespace {

// The receiving thread of a test: one zcio::Receiver takes every stream's data; per stream its
// report, its UDP account and when its last data came.
class ReceivingThread {
public:
    ReceivingThread(const std::vector<StreamSocket>& sockets, bool udp, bool verify, bool udp64,
                    Clock::time_point start)
        : sockets_(sockets),
          reps_(sockets.size()),
          udp_(udp ? sockets.size() : 0),
          last_(sockets.size(), start),
          verify_(verify),
          udp64_(udp64) {
        for (std::size_t i = 0; i < sockets.size(); ++i) reps_[i].id = sockets[i].id;
    }

    // Until every stream ended, `stop` or Ctrl-C. Throws zcio::SetupError when it cannot start.
    void run(zcio::RecvStrategy strategy, const std::atomic<bool>& stop, RecvReport& receive) {
        auto rx = open_receiver(strategy, receive);
        rx->on_event([this](zcio::RecvEvent&& ev) { on_event(std::move(ev)); });
        now_ = Clock::now();
        auto& interrupted = stop_requested();
        while (open_ > 0) {
            const int r = rx->poll(std::chrono::milliseconds(10));
            now_ = Clock::now();
            if (r < 0 && r != -EINTR) {
                for (auto& rep : reps_)
                    if (rep.error.empty()) rep.error = "receive wait failed: " + zcio::errno_string(-r);
                break;
            }
            publish();
            if (stop.load() || interrupted.load()) break;
        }
        receive.counters = rx->counters();
        receive.description = rx->describe();
    }

    void fail_all(const std::string& why) {
        for (auto& r : reps_) r.error = why;
    }

    // The streams' reports, each with its share of the thread's CPU; every stream finished.
    std::vector<StreamReport> reports(Clock::time_point start, double thread_cpu_seconds) {
        const std::size_t n = sockets_.size();
        for (std::size_t i = 0; i < n; ++i) {
            StreamReport& rep = reps_[i];
            rep.seconds = std::max(0.0, std::chrono::duration<double>(last_[i] - start).count());
            rep.thread_cpu_seconds = thread_cpu_seconds / static_cast<double>(n);
            if (!udp_.empty()) {
                const UdpAccount& a = udp_[i];
                rep.packets = a.highest;
                rep.datagrams = a.datagrams;
                rep.lost = a.lost;
                rep.out_of_order = a.out_of_order;
                rep.jitter = a.jitter;
            }
            sockets_[i].live->bytes.store(rep.bytes, std::memory_order_relaxed);
            sockets_[i].live->finished.store(true);
        }
        return std::move(reps_);
    }

private:
    std::unique_ptr<zcio::Receiver> open_receiver(zcio::RecvStrategy strategy, RecvReport& receive) {
        const std::size_t n = sockets_.size();
        // zcrx needs the interface the data arrives on; on lo it falls back and says so.
        const std::string ifname = n ? interface_of(sockets_[0].fd) : std::string();
        auto rx = zcio::make_receiver(receiver_options(strategy, !udp_.empty(), n, ifname));
        receive.strategy = zcio::to_string(rx->strategy());
        receive.fallback_reason = rx->fallback_reason();
        receive.description = rx->describe();
        if (n) advise_zcrx_setup(receive, sockets_[0].fd, ifname);
        stream_of_.assign(n, -1);  // connection id -> index in `sockets`
        for (std::size_t i = 0; i < n; ++i) {
            const int conn = rx->add(sockets_[i].fd);
            if (conn < 0) throw zcio::SetupError("receiver add", -conn, "raise max_connections");
            const auto at = static_cast<std::size_t>(conn);
            if (at >= stream_of_.size()) stream_of_.resize(at + 1, -1);
            stream_of_[at] = static_cast<int>(i);
            ++open_;
        }
        return rx;
    }

    void on_event(zcio::RecvEvent&& ev) {
        const auto i = static_cast<std::size_t>(stream_of_[ev.conn]);
        auto& rep = reps_[i];
        last_[i] = now_;
        if (ev.result > 0) {
            if (verify_ && rep.error.empty())
                if (auto at = first_mismatch(ev.data.bytes(), rep.bytes))
                    rep.error = fmt::format("payload differs from the sender's pattern at stream byte {}", *at);
            rep.bytes += static_cast<std::uint64_t>(ev.result);
            ++rep.packets;
            if (!udp_.empty()) udp_[i].on_datagram(ev.data.bytes(), udp64_, udp_clock_now());
            return;  // the view goes back to its ring here
        }
        if (ev.result < 0) rep.error = "receive failed: " + zcio::errno_string(-ev.result);
        --open_;
        sockets_[i].live->finished.store(true);
    }

    // What another thread may read: bytes so far, and when data last arrived.
    void publish() {
        for (std::size_t i = 0; i < sockets_.size(); ++i) {
            Live& live = *sockets_[i].live;
            if (live.bytes.load(std::memory_order_relaxed) != reps_[i].bytes)
                live.last_data_ns.store(now_.time_since_epoch().count(), std::memory_order_relaxed);
            live.bytes.store(reps_[i].bytes, std::memory_order_relaxed);
        }
    }

    const std::vector<StreamSocket>& sockets_;
    std::vector<StreamReport> reps_;
    std::vector<UdpAccount> udp_;  // empty for TCP
    std::vector<Clock::time_point> last_;
    std::vector<int> stream_of_;
    std::size_t open_ = 0;   // streams not yet at their end
    Clock::time_point now_;  // when the last poll returned: the events' time
    bool verify_, udp64_;
};

}  // namespace

std::vector<StreamReport> run_receivers(const std::vector<StreamSocket>& sockets, bool udp, zcio::RecvStrategy strategy,
                                        const std::atomic<bool>& stop, Clock::time_point start, RecvReport& receive,
                                        bool verify, bool udp64) {
    ReceivingThread thread(sockets, udp, verify, udp64, start);
    const double cpu0 = thread_cpu_seconds();
    receive.requested = zcio::to_string(strategy);
    receive.strategy = receive.requested;
    try {
        thread.run(strategy, stop, receive);
    } catch (const zcio::SetupError& e) {
        thread.fail_all(e.what());
    } catch (const std::exception& e) {
        thread.fail_all(std::string("receiver: ") + e.what());
    }
    receive.thread_cpu_seconds = thread_cpu_seconds() - cpu0;
    return thread.reports(start, receive.thread_cpu_seconds);
}

}  // namespace zcperf
