#include "stream.hpp"

#include "cpu.hpp"
#include "net.hpp"

#include <zcio/buffer_arena.hpp>
#include <zcio/error.hpp>
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
    std::vector<bool> group_busy = std::vector<bool>(group_count, false);

    void on_error(int e) {
        if (e == 0) return;
        if (!first_error) first_error = e;
        if (stream && !fatal && e != -ECANCELED) fatal = e;
    }
    void on_release(const zcio::Release& r) {
        ++releases;
        on_error(r.error);
    }
};

std::unique_ptr<zcio::BufferArena> make_arena(zcio::Ring& ring, const SendSpec& spec) {
    ArenaPlan plan = plan_arena(spec.length);
    zcio::ArenaOptions ao{.slab_size = plan.slab_size, .slab_count = plan.slab_count};
    try {
        return std::make_unique<zcio::BufferArena>(ring, ao);
    } catch (const zcio::SetupError&) {
        // Registration can fail for lack of locked memory (non-root, RLIMIT_MEMLOCK). Only
        // zc-fixed needs registered memory; the others run from plain pages, as most programs do.
        if (spec.strategy == zcio::Strategy::zc_fixed) throw;
        ao.register_buffers = false;
        return std::make_unique<zcio::BufferArena>(ao);
    }
}

}  // namespace

ArenaPlan plan_arena(std::size_t length) {
    std::size_t budget = 32u << 20;
    rlimit rl{};
    if (::geteuid() != 0 && ::getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        budget = std::min<std::size_t>(budget, rl.rlim_cur / 2);  // leave room for the rings
    ArenaPlan p;
    p.slab_size = length;
    std::size_t want = std::max<std::size_t>(inflight_target / length + 2, 8);
    std::size_t fit = std::max<std::size_t>(budget / length, 2);
    p.slab_count = std::min<std::size_t>({want, fit, 2048});
    return p;
}

StreamReport run_sender(int fd, int id, const SendSpec& spec, Live& live) {
    StreamReport rep;
    rep.id = id;
    rep.sender = true;
    rep.strategy = zcio::to_string(spec.strategy);
    rep.completion = to_string(spec.completion);
    const double cpu0 = thread_cpu_seconds();
    const auto t0 = Clock::now();
    try {
        SenderState st;
        st.stream = is_stream_socket(fd);
        zcio::Ring ring;
        auto arena = make_arena(ring, spec);
        zcio::SendEngine engine(ring);
        zcio::SocketOptions so;
        so.strategy = spec.strategy;
        so.max_inflight_bytes = std::max<std::size_t>(inflight_target, 4 * spec.length);
        so.udp_gso_size = spec.udp_gso;
        const zcio::SocketId sock = engine.add_socket(fd, so);

        std::vector<std::unique_ptr<zcio::NotifGroup>> groups;
        if (spec.completion == CompletionModel::group)
            for (std::size_t i = 0; i < group_count; ++i)
                groups.push_back(std::make_unique<zcio::NotifGroup>([s = &st, i](const zcio::GroupResult& g) {
                    s->group_busy[i] = false;
                    s->releases += g.sends;
                    s->on_error(g.first_error);
                }));
        std::size_t group = 0;
        std::uint32_t in_group = 0;
        bool group_open = false;

        const std::size_t batch = std::clamp<std::size_t>(arena->slab_count() / 4, 1, 32);
        const auto deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(spec.duration));
        const auto& counters = engine.counters(sock);
        auto& stop = stop_requested();

        while (!stop.load(std::memory_order_relaxed) && !st.fatal) {
            bool starved = false;
            for (std::size_t k = 0; k < batch; ++k) {
                if (spec.completion == CompletionModel::group && !group_open) {
                    auto free = std::find(st.group_busy.begin(), st.group_busy.end(), false);
                    if (free == st.group_busy.end()) {
                        starved = true;
                        break;
                    }
                    group = static_cast<std::size_t>(free - st.group_busy.begin());
                    st.group_busy[group] = true;
                    in_group = 0;
                    group_open = true;
                }
                zcio::Buffer b = arena->take();
                if (!b) {
                    starved = true;
                    break;
                }
                b.resize(spec.length);
                switch (spec.completion) {
                    case CompletionModel::storage:
                        engine.send(sock, std::move(b), zcio::Storage{[s = &st](zcio::Release&& r) { s->on_release(r); }});
                        break;
                    case CompletionModel::two_step:
                        engine.send(sock, std::move(b),
                                    zcio::TwoStep{[s = &st](const zcio::SendResult& r) { s->on_error(r.res < 0 ? r.res : 0); },
                                                  [s = &st](zcio::Release&& r) { s->on_release(r); }});
                        break;
                    case CompletionModel::group:
                        engine.send(sock, std::move(b), *groups[group]);
                        if (++in_group == group_size) {
                            engine.flush(*groups[group]);
                            group_open = false;
                        }
                        break;
                }
            }
            // Waits only when nothing can be sent: every slab (or every group) is in flight.
            int rc = engine.run(starved, std::chrono::milliseconds(starved ? 10 : 0));
            if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN) {
                st.on_error(rc);
                if (!st.fatal) st.fatal = rc;
            }
            live.bytes.store(counters.bytes, std::memory_order_relaxed);
            if (Clock::now() >= deadline) break;
        }
        if (group_open) engine.flush(*groups[group]);
        if (engine.drain(std::chrono::seconds(10)) != 0) rep.error = "in-flight sends did not complete within 10 s";
        rep.counters = engine.counters(sock);
        rep.bytes = rep.counters->bytes;
        live.bytes.store(rep.bytes, std::memory_order_relaxed);
        if (st.fatal && rep.error.empty()) rep.error = "send failed: " + zcio::errno_string(st.fatal);
        else if (st.first_error && rep.error.empty() && rep.bytes == 0) rep.error = "every send failed: " + zcio::errno_string(st.first_error);
        engine.remove_socket(sock);
    } catch (const zcio::SetupError& e) {
        rep.error = e.what();
    } catch (const std::exception& e) {
        rep.error = std::string("sender: ") + e.what();
    }
    rep.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    rep.thread_cpu_seconds = thread_cpu_seconds() - cpu0;
    live.finished.store(true);
    return rep;
}

StreamReport run_receiver(int fd, int id, bool udp, const std::atomic<bool>& stop, Live& live, Clock::time_point start) {
    StreamReport rep;
    rep.id = id;
    rep.sender = false;
    const double cpu0 = thread_cpu_seconds();
    // Blocking receives that wake every 100 ms to look at the stop flags.
    timeval tv{0, 100000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::vector<char> buf(udp ? 65536 : 256 * 1024);
    auto last = Clock::now();
    auto& interrupted = stop_requested();
    for (;;) {
        ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
        if (n > 0) {
            rep.bytes += static_cast<std::uint64_t>(n);
            ++rep.packets;
            live.bytes.store(rep.bytes, std::memory_order_relaxed);
            last = Clock::now();
            continue;
        }
        if (n == 0 && !udp) {
            last = Clock::now();
            break;  // EOF: the sender is done
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && !(udp && errno == ECONNREFUSED)) {
            rep.error = "receive failed: " + zcio::errno_string(errno);
            break;
        }
        if (stop.load() || interrupted.load()) break;
    }
    rep.seconds = std::chrono::duration<double>(last - start).count();
    if (rep.seconds < 0) rep.seconds = 0;
    rep.thread_cpu_seconds = thread_cpu_seconds() - cpu0;
    live.finished.store(true);
    return rep;
}

}  // namespace zcperf
