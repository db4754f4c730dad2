#include "stream.hpp"

#include "cpu.hpp"
#include "net.hpp"
#include "payload.hpp"
#include "payload_buffers.hpp"
#include "receive_fallback.hpp"
#include "udp_header.hpp"

#include <zcio/buffer_arena.hpp>
#include <zcio/error.hpp>
#include <zcio/receiver.hpp>
#include <zcio/ring.hpp>
#include <zcio/send_engine.hpp>

#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fmt/format.h>
#include <memory>
#include <optional>
#include <vector>

namespace zcperf {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t inflight_target = 8u << 20;  // per socket, the engine's default bound
constexpr std::uint32_t group_size = 16;           // sends per NotifGroup before its flush
constexpr std::size_t group_count = 8;

bool is_stream_socket(int fd) {
    int type = 0;
    socklen_t len = sizeof type;
    ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len);
    return type == SOCK_STREAM;
}

// The sender's view of its releases. The handlers capture only a pointer to this.
struct SenderState {
    bool stream = false;
    int fatal = 0;                 // first error that ends a TCP stream
    int first_error = 0;           // first error of any kind (UDP goes on: ENOBUFS, ECONNREFUSED)
    std::uint64_t releases = 0;
    std::uint64_t queued = 0;      // stream offset of the next send (--verify, -b)
    std::uint64_t udp_seq = 0;     // UDP: the last datagram's sequence number (iperf3's header)
    std::vector<bool> group_busy = std::vector<bool>(group_count, false);
    PayloadBuffers* buffers = nullptr;  // where a released buffer goes next

    void on_error(int e) {
        if (e == 0) return;
        if (!first_error) first_error = e;
        if (stream && !fatal && e != -ECANCELED) fatal = e;
    }
    void on_release(zcio::Release&& r) {
        ++releases;
        on_error(r.error);
        buffers->recycle(std::move(r.buffer));
    }
};

// iperf3's header at the start of every datagram of a send (one per GSO segment).
void stamp_datagrams(std::span<std::byte> send, const SendSpec& spec, std::uint64_t& seq) {
    const std::size_t segment = spec.udp_gso ? spec.udp_gso : send.size();
    const double now = udp_clock_now();
    for (std::size_t at = 0; at < send.size(); at += segment)
        write_udp_header(send.subspan(at, std::min(segment, send.size() - at)), ++seq, spec.udp64, now);
}

// Threads sending at once in this process (to share the locked-memory budget).
std::atomic<int> sending_threads{0};

}  // namespace

ArenaPlan plan_arena(std::size_t length, std::size_t sockets, std::size_t threads) {
    std::size_t budget = 32u << 20;
    rlimit rl{};
    if (::geteuid() != 0 && ::getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        budget = std::min<std::size_t>(budget, rl.rlim_cur / 2 / std::max<std::size_t>(threads, 1));  // leave room for the rings
    ArenaPlan p;
    p.slab_size = length;
    std::size_t want = std::max<std::size_t>((inflight_target / length + 2) * std::max<std::size_t>(sockets, 1), 8);
    std::size_t fit = std::max<std::size_t>(budget / length, 2 * std::max<std::size_t>(sockets, 1));
    p.slab_count = std::min<std::size_t>({want, fit, 4096});
    return p;
}

std::vector<StreamReport> run_senders(const std::vector<StreamSocket>& sockets, const SendSpec& spec) {
    const std::size_t n = sockets.size();
    std::vector<StreamReport> reps(n);
    for (std::size_t i = 0; i < n; ++i) {
        reps[i].id = sockets[i].id;
        reps[i].sender = true;
        reps[i].strategy = zcio::to_string(spec.strategy);
        reps[i].completion = to_string(spec.completion);
    }
    const double cpu0 = thread_cpu_seconds();
    const auto t0 = Clock::now();
    const int threads = ++sending_threads;
    try {
        // Each socket's state lives at a fixed address: the handlers capture a pointer to it.
        std::vector<SenderState> st(n);
        zcio::Ring ring;
        PayloadBuffers buffers(ring, spec, n, static_cast<std::size_t>(threads));
        // A test that ends early (peer gone) must not wait long for pages a dead peer never acks.
        zcio::SendEngine engine(ring, zcio::EngineOptions{.shutdown_timeout = std::chrono::milliseconds(1000)});
        zcio::SocketOptions so;
        so.strategy = spec.strategy;
        so.max_inflight_bytes = std::max<std::size_t>(inflight_target, 4 * spec.length);
        so.udp_gso_size = spec.udp_gso;
        std::vector<zcio::SocketId> socks;
        for (std::size_t i = 0; i < n; ++i) {
            st[i].stream = is_stream_socket(sockets[i].fd);
            st[i].buffers = &buffers;
            socks.push_back(engine.add_socket(sockets[i].fd, so));
        }

        // Group model: each socket has its own groups, so an error names its stream.
        const std::size_t groups_per_socket = n > 1 ? 2 : group_count;
        std::vector<std::unique_ptr<zcio::NotifGroup>> groups;
        std::vector<std::size_t> open_group(n, 0);
        std::vector<std::uint32_t> in_group(n, 0);
        std::vector<bool> group_open(n, false);
        if (spec.completion == CompletionModel::group)
            for (std::size_t i = 0; i < n; ++i) {
                st[i].group_busy.assign(groups_per_socket, false);
                for (std::size_t g = 0; g < groups_per_socket; ++g)
                    groups.push_back(std::make_unique<zcio::NotifGroup>([s = &st[i], g](const zcio::GroupResult& r) {
                        s->group_busy[g] = false;
                        s->releases += r.sends;
                        s->on_error(r.first_error);
                    }));
            }

        const std::size_t batch =
            std::clamp<std::size_t>(buffers.capacity() / 4, 1, std::max<std::size_t>(32, n));
        const auto deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(spec.duration));
        auto& stop = stop_requested();
        auto publish = [&] {
            for (std::size_t i = 0; i < n; ++i)
                sockets[i].live->bytes.store(engine.counters(socks[i]).bytes, std::memory_order_relaxed);
        };
        std::size_t next = 0;
        auto last_publish = t0;

        auto told_to_stop = [&] { return stop.load(std::memory_order_relaxed) || (spec.stop && spec.stop->load(std::memory_order_relaxed)); };
        bool budget_done = false;
        while (!told_to_stop() && !budget_done) {
            bool starved = false, any_alive = false;
            std::size_t skipped = 0, throttled = 0;  // sockets in a row that could take nothing
            const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
            for (std::size_t k = 0; k < batch && skipped < n;) {
                const std::size_t i = next;
                next = (next + 1) % n;
                if (st[i].fatal) {
                    ++skipped;
                    continue;
                }
                any_alive = true;
                // -b: a stream sends while its average since the start is below the rate (iperf3's check).
                if (spec.bitrate && static_cast<double>(st[i].queued) * 8 >= static_cast<double>(spec.bitrate) * elapsed) {
                    ++skipped;
                    ++throttled;
                    continue;
                }
                if (spec.completion == CompletionModel::group && !group_open[i]) {
                    auto free = std::find(st[i].group_busy.begin(), st[i].group_busy.end(), false);
                    if (free == st[i].group_busy.end()) {
                        ++skipped;
                        continue;
                    }
                    open_group[i] = static_cast<std::size_t>(free - st[i].group_busy.begin());
                    st[i].group_busy[open_group[i]] = true;
                    in_group[i] = 0;
                    group_open[i] = true;
                }
                zcio::Buffer b = buffers.next();
                if (!b) {
                    starved = true;
                    break;
                }
                if (spec.budget && !spec.budget->take(spec.length)) {
                    budget_done = true;  // the slab goes back to the arena with `b`
                    break;
                }
                skipped = 0;
                throttled = 0;
                ++k;
                SenderState* s = &st[i];
                if (spec.udp_header) stamp_datagrams(b.span(), spec, s->udp_seq);
                if (spec.verify) fill_pattern(b.span(), s->queued);  // TCP sends are stream-exact, in order
                s->queued += b.size();
                switch (spec.completion) {
                    case CompletionModel::storage:
                        engine.send(socks[i], std::move(b),
                                    zcio::Storage{[s](zcio::Release&& r) { s->on_release(std::move(r)); }});
                        break;
                    case CompletionModel::two_step:
                        engine.send(socks[i], std::move(b),
                                    zcio::TwoStep{[s](const zcio::SendResult& r) { s->on_error(r.res < 0 ? r.res : 0); },
                                                  [s](zcio::Release&& r) { s->on_release(std::move(r)); }});
                        break;
                    case CompletionModel::group: {
                        auto& g = *groups[i * groups_per_socket + open_group[i]];
                        engine.send(socks[i], std::move(b), g);
                        if (++in_group[i] == group_size) {
                            engine.flush(g);
                            group_open[i] = false;
                        }
                        break;
                    }
                }
            }
            if (!any_alive && skipped >= n) break;  // every stream failed
            if (skipped >= n) starved = true;       // every socket's groups are in flight (or -b holds them)
            // Waits only when nothing can be sent: every slab (or every group) is in flight.
            const auto wait = std::chrono::milliseconds(!starved ? 0 : throttled >= n ? 1 : 10);
            int rc = engine.run(starved, wait);
            if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN)
                for (auto& x : st) {
                    x.on_error(rc);
                    if (!x.fatal) x.fatal = rc;
                }
            const auto now = Clock::now();
            if (now - last_publish >= std::chrono::milliseconds(5)) {
                publish();
                last_publish = now;
            }
            if (now >= deadline) break;
        }
        for (std::size_t i = 0; i < n; ++i)
            if (group_open[i]) engine.flush(*groups[i * groups_per_socket + open_group[i]]);
        // Drains in slices: once told to stop (the peer ended the test and may read no more), what
        // is still in flight gets a second, not ten.
        bool drained = false, aborted = false;
        const auto drain_until = Clock::now() + std::chrono::seconds(10);
        std::optional<Clock::time_point> stop_seen;
        while (!drained && Clock::now() < drain_until) {
            drained = engine.drain(std::chrono::milliseconds(100)) == 0;
            if (!stop_seen && spec.stop && spec.stop->load()) stop_seen = Clock::now();
            if (stop_seen && Clock::now() - *stop_seen > std::chrono::seconds(1)) break;
        }
        aborted = stop_seen.has_value();
        for (std::size_t i = 0; i < n; ++i) {
            auto& rep = reps[i];
            // Told to stop (the test ended, or the peer went): what the peer no longer reads is
            // cancelled, not an error; the bytes are what the kernel accepted.
            if (!drained && !aborted) rep.error = "in-flight sends did not complete within 10 s";
            rep.counters = engine.counters(socks[i]);
            rep.bytes = rep.counters->bytes;
            rep.packets = st[i].udp_seq;
            if (st[i].fatal && rep.error.empty()) rep.error = "send failed: " + zcio::errno_string(st[i].fatal);
            else if (st[i].first_error && rep.error.empty() && rep.bytes == 0)
                rep.error = "every send failed: " + zcio::errno_string(st[i].first_error);
        }
        publish();
        for (auto sock : socks) engine.remove_socket(sock);
    } catch (const zcio::SetupError& e) {
        for (auto& r : reps) r.error = e.what();
    } catch (const std::exception& e) {
        for (auto& r : reps) r.error = std::string("sender: ") + e.what();
    }
    --sending_threads;
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    const double cpu = thread_cpu_seconds() - cpu0;
    for (std::size_t i = 0; i < n; ++i) {
        reps[i].seconds = seconds;
        reps[i].thread_cpu_seconds = cpu / static_cast<double>(n);
        sockets[i].live->finished.store(true);
    }
    return reps;
}

zcio::ReceiverOptions receiver_options(zcio::RecvStrategy strategy, bool udp, std::size_t sockets, const std::string& interface) {
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
        o.buffer_count = 64;    // bulk: big buffers, few completions
        o.buffer_size = 64 << 10;
    } else {
        o.buffer_count = 1024;  // many connections: many buffers, each partly filled
        o.buffer_size = 16 << 10;
    }
    return o;
}

std::vector<StreamReport> run_receivers(const std::vector<StreamSocket>& sockets, bool udp, zcio::RecvStrategy strategy,
                                        const std::atomic<bool>& stop, Clock::time_point start, RecvReport& receive, bool verify,
                                        bool udp64) {
    const std::size_t n = sockets.size();
    std::vector<StreamReport> reps(n);
    std::vector<UdpAccount> udp_acct(udp ? n : 0);
    std::vector<Clock::time_point> last(n, start);
    for (std::size_t i = 0; i < n; ++i) reps[i].id = sockets[i].id;
    const double cpu0 = thread_cpu_seconds();
    receive.requested = zcio::to_string(strategy);
    receive.strategy = receive.requested;
    auto finish = [&](std::size_t i) {
        sockets[i].live->finished.store(true);
    };
    try {
        // zcrx needs the interface the data arrives on; on lo it falls back and says so.
        const std::string ifname = n ? interface_of(sockets[0].fd) : std::string();
        auto rx = zcio::make_receiver(receiver_options(strategy, udp, n, ifname));
        receive.strategy = zcio::to_string(rx->strategy());
        receive.fallback_reason = rx->fallback_reason();
        receive.description = rx->describe();
        if (n) advise_zcrx_setup(receive, sockets[0].fd, ifname);
        std::vector<int> stream_of(n, -1);  // connection id -> index in `sockets`
        std::size_t open = 0;
        for (std::size_t i = 0; i < n; ++i) {
            const int conn = rx->add(sockets[i].fd);
            if (conn < 0) throw zcio::SetupError("receiver add", -conn, "raise max_connections");
            if (static_cast<std::size_t>(conn) >= stream_of.size()) stream_of.resize(static_cast<std::size_t>(conn) + 1, -1);
            stream_of[static_cast<std::size_t>(conn)] = static_cast<int>(i);
            ++open;
        }
        // What the handler reads besides the streams, in one capture: its storage is 48 bytes.
        struct {
            Clock::time_point now;
            bool verify;
            bool udp64;
            std::vector<UdpAccount>* udp;  // empty for TCP
        } tick{Clock::now(), verify, udp64, &udp_acct};
        rx->on_event([&](zcio::RecvEvent&& ev) {
            const auto i = static_cast<std::size_t>(stream_of[ev.conn]);
            auto& rep = reps[i];
            if (ev.result > 0) {
                if (tick.verify && rep.error.empty())
                    if (auto at = first_mismatch(ev.data.bytes(), rep.bytes))
                        rep.error = fmt::format("payload differs from the sender's pattern at stream byte {}", *at);
                rep.bytes += static_cast<std::uint64_t>(ev.result);
                ++rep.packets;
                if (!tick.udp->empty()) (*tick.udp)[i].on_datagram(ev.data.bytes(), tick.udp64, udp_clock_now());
                last[i] = tick.now;
                return;  // the view goes back to its ring here
            }
            last[i] = tick.now;
            if (ev.result < 0) rep.error = "receive failed: " + zcio::errno_string(-ev.result);
            --open;
            finish(i);
        });
        auto& interrupted = stop_requested();
        while (open > 0) {
            const int r = rx->poll(std::chrono::milliseconds(10));
            tick.now = Clock::now();
            if (r < 0 && r != -EINTR) {
                for (auto& rep : reps)
                    if (rep.error.empty()) rep.error = "receive wait failed: " + zcio::errno_string(-r);
                break;
            }
            for (std::size_t i = 0; i < n; ++i) {
                Live& live = *sockets[i].live;
                if (live.bytes.load(std::memory_order_relaxed) != reps[i].bytes)
                    live.last_data_ns.store(tick.now.time_since_epoch().count(), std::memory_order_relaxed);
                live.bytes.store(reps[i].bytes, std::memory_order_relaxed);
            }
            if (stop.load() || interrupted.load()) break;
        }
        receive.counters = rx->counters();
        receive.description = rx->describe();
    } catch (const zcio::SetupError& e) {
        for (auto& r : reps) r.error = e.what();
    } catch (const std::exception& e) {
        for (auto& r : reps) r.error = std::string("receiver: ") + e.what();
    }
    receive.thread_cpu_seconds = thread_cpu_seconds() - cpu0;
    for (std::size_t i = 0; i < n; ++i) {
        reps[i].seconds = std::max(0.0, std::chrono::duration<double>(last[i] - start).count());
        reps[i].thread_cpu_seconds = receive.thread_cpu_seconds / static_cast<double>(n);
        if (udp) {
            const UdpAccount& a = udp_acct[i];
            reps[i].packets = a.highest;
            reps[i].datagrams = a.datagrams;
            reps[i].lost = a.lost;
            reps[i].out_of_order = a.out_of_order;
            reps[i].jitter = a.jitter;
        }
        sockets[i].live->bytes.store(reps[i].bytes, std::memory_order_relaxed);
        finish(i);
    }
    return reps;
}

}  // namespace zcperf
