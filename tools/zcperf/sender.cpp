#include "sender.hpp"

#include "cpu.hpp"
#include "net.hpp"
#include "payload.hpp"
#include "udp_header.hpp"

#include <zcio/error.hpp>

#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <optional>

namespace zcperf {

namespace {

using Clock = Sender::Clock;

constexpr std::size_t inflight_target = 8u << 20;  // per socket, the engine's default bound
constexpr std::uint32_t group_size = 16;           // sends per NotifGroup before its flush
constexpr std::size_t group_count = 8;

bool is_stream_socket(int fd) {
    int type = 0;
    socklen_t len = sizeof type;
    ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len);
    return type == SOCK_STREAM;
}

// iperf3's header at the start of every datagram of a send (one per GSO segment).
void stamp_datagrams(std::span<std::byte> send, const SendSpec& spec, std::uint64_t& seq) {
    const std::size_t segment = spec.udp_gso ? spec.udp_gso : send.size();
    const double now = udp_clock_now();
    for (std::size_t at = 0; at < send.size(); at += segment)
        write_udp_header(send.subspan(at, std::min(segment, send.size() - at)), ++seq, spec.udp64, now);
}

// Threads sending at once in this process (to share the locked-memory budget).
std::atomic<int> sending_threads{0};

std::vector<StreamReport> blank_reports(const std::vector<StreamSocket>& sockets, const SendSpec& spec) {
    std::vector<StreamReport> reps(sockets.size());
    for (std::size_t i = 0; i < sockets.size(); ++i) {
        reps[i].id = sockets[i].id;
        reps[i].sender = true;
        reps[i].strategy = zcio::to_string(spec.strategy);
        reps[i].completion = to_string(spec.completion);
    }
    return reps;
}

}  // namespace

ArenaPlan plan_arena(std::size_t length, std::size_t sockets, std::size_t threads) {
    std::size_t budget = 32u << 20;
    rlimit rl{};
    if (::geteuid() != 0 && ::getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        budget = std::min<std::size_t>(budget, rl.rlim_cur / 2 / std::max<std::size_t>(threads, 1));  // room for rings
    ArenaPlan p;
    p.slab_size = length;
    const std::size_t streams = std::max<std::size_t>(sockets, 1);
    std::size_t want = std::max<std::size_t>((inflight_target / length + 2) * streams, 8);
    std::size_t fit = std::max<std::size_t>(budget / length, 2 * streams);
    p.slab_count = std::min<std::size_t>({want, fit, 4096});
    return p;
}

void Sender::Stream::on_error(int e) {
    if (e == 0) return;
    if (!first_error) first_error = e;
    if (is_tcp && !fatal && e != -ECANCELED) fatal = e;
}

void Sender::Stream::on_release(zcio::Release&& r) {
    ++releases;
    on_error(r.error);
    buffers->recycle(std::move(r.buffer));
}

Sender::Sender(const std::vector<StreamSocket>& sockets, const SendSpec& spec, int threads, Clock::time_point start)
    : sockets_(sockets),
      spec_(spec),
      n_(sockets.size()),
      groups_per_socket_(n_ > 1 ? 2 : group_count),
      streams_(n_),
      buffers_(ring_, spec, n_, static_cast<std::size_t>(threads)),
      // A test that ends early (peer gone) must not wait long for pages a dead peer never acks.
      engine_(ring_, zcio::EngineOptions{.shutdown_timeout = std::chrono::milliseconds(1000)}),
      start_(start),
      deadline_(start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(spec.duration))),
      last_publish_(start) {
    add_sockets();
    if (spec_.completion == CompletionModel::group) make_groups();
    batch_ = std::clamp<std::size_t>(buffers_.capacity() / 4, 1, std::max<std::size_t>(32, n_));
}

void Sender::add_sockets() {
    zcio::SocketOptions so;
    so.strategy = spec_.strategy;
    so.max_inflight_bytes = std::max<std::size_t>(inflight_target, 4 * spec_.length);
    for (std::size_t i = 0; i < n_; ++i) {
        const StreamSocket& socket = sockets_[i];
        Stream& stream = streams_[i];
        stream.is_tcp = is_stream_socket(socket.fd);
        stream.buffers = &buffers_;
        // A server's socket, many peers: the GSO size goes with each send, as a QUIC server's does.
        so.udp_gso_size = socket.to.empty() ? spec_.udp_gso : 0;
        for (const SocketAddress& to : socket.to)
            stream.routes.push_back({.to = to.get(), .to_len = to.len, .gso_size = spec_.udp_gso});
        if (stream.routes.empty()) stream.routes.emplace_back();
        socks_.push_back(engine_.add_socket(socket.fd, so));
    }
}

// Each socket has its own groups, so an error names its stream.
void Sender::make_groups() {
    for (auto& stream : streams_) {
        stream.group_busy.assign(groups_per_socket_, false);
        for (std::size_t g = 0; g < groups_per_socket_; ++g)
            groups_.push_back(std::make_unique<zcio::NotifGroup>([s = &stream, g](const zcio::GroupResult& r) {
                s->group_busy[g] = false;
                s->releases += r.sends;
                s->on_error(r.first_error);
            }));
    }
}

bool Sender::told_to_stop() const {
    return stop_requested().load(std::memory_order_relaxed) ||
           (spec_.stop && spec_.stop->load(std::memory_order_relaxed));
}

void Sender::send_until_done() {
    while (!told_to_stop() && !budget_done_) {
        const Batch batch = send_batch(std::chrono::duration<double>(Clock::now() - start_).count());
        if (batch.all_failed) break;
        wait_for_room(batch);
        const auto now = Clock::now();
        if (now - last_publish_ >= std::chrono::milliseconds(5)) {
            publish();
            last_publish_ = now;
        }
        if (now >= deadline_) break;
    }
    close_open_groups();
}

Sender::Batch Sender::send_batch(double elapsed) {
    Batch batch;
    bool any_alive = false;
    std::size_t skipped = 0, throttled = 0;  // sockets in a row that could take nothing
    for (std::size_t k = 0; k < batch_ && skipped < n_;) {
        const std::size_t i = next_;
        next_ = (next_ + 1) % n_;
        const Turn turn = turn_of(i, elapsed);
        if (turn != Turn::failed) any_alive = true;
        if (turn != Turn::send) {
            ++skipped;
            if (turn == Turn::throttled) ++throttled;
            continue;
        }
        zcio::Buffer b = buffers_.next();
        if (!b) {
            batch.starved = true;
            break;
        }
        if (spec_.budget && !spec_.budget->take(spec_.length)) {
            budget_done_ = true;  // the slab goes back to the arena with `b`
            break;
        }
        skipped = 0;
        throttled = 0;
        ++k;
        fill_payload(i, b.span());
        send(i, std::move(b));
    }
    batch.all_failed = !any_alive && skipped >= n_;
    if (skipped >= n_) batch.starved = true;  // every socket's groups are in flight (or -b holds them)
    batch.throttled = throttled >= n_;
    return batch;
}

Sender::Turn Sender::turn_of(std::size_t i, double elapsed) {
    const Stream& s = streams_[i];
    if (s.fatal) return Turn::failed;
    // -b: a stream sends while its average since the start is below the rate (iperf3's check).
    if (spec_.bitrate && static_cast<double>(s.queued) * 8 >= static_cast<double>(spec_.bitrate) * elapsed)
        return Turn::throttled;
    if (spec_.completion == CompletionModel::group && !streams_[i].group_open && !open_group(i)) return Turn::no_group;
    return Turn::send;
}

// Opens one of the socket's free groups for its next sends; false when all are in flight.
bool Sender::open_group(std::size_t i) {
    Stream& s = streams_[i];
    auto free = std::find(s.group_busy.begin(), s.group_busy.end(), false);
    if (free == s.group_busy.end()) return false;
    s.open_group = static_cast<std::size_t>(free - s.group_busy.begin());
    s.group_busy[s.open_group] = true;
    s.in_group = 0;
    s.group_open = true;
    return true;
}

// The payload of stream i's next send: the pattern (--verify; TCP sends are stream-exact, in
// order) and iperf3's UDP header, or the buffer as it is.
void Sender::fill_payload(std::size_t i, std::span<std::byte> payload) {
    Stream& s = streams_[i];
    if (spec_.udp_header) stamp_datagrams(payload, spec_, s.udp_seq);
    if (spec_.verify) fill_pattern(payload, s.queued);
    s.queued += payload.size();
}

void Sender::send(std::size_t i, zcio::Buffer&& b) {
    Stream* s = &streams_[i];
    const zcio::SendOptions& route = s->routes[s->route];
    if (++s->route == s->routes.size()) s->route = 0;
    switch (spec_.completion) {
    case CompletionModel::storage:
        engine_.send(socks_[i], std::move(b), zcio::Storage{[s](zcio::Release&& r) { s->on_release(std::move(r)); }},
                     route);
        break;
    case CompletionModel::two_step:
        engine_.send(socks_[i], std::move(b),
                     zcio::TwoStep{[s](const zcio::SendResult& r) { s->on_error(r.res < 0 ? r.res : 0); },
                                   [s](zcio::Release&& r) { s->on_release(std::move(r)); }},
                     route);
        break;
    case CompletionModel::group: {
        auto& g = *groups_[i * groups_per_socket_ + s->open_group];
        engine_.send(socks_[i], std::move(b), g, route);
        if (++s->in_group == group_size) {
            engine_.flush(g);
            s->group_open = false;
        }
        break;
    }
    }
}

// Waits only when nothing can be sent: every slab (or every group) is in flight, or -b holds
// every socket (then briefly: its next send is due soon).
void Sender::wait_for_room(const Batch& batch) {
    const auto wait = std::chrono::milliseconds(!batch.starved ? 0 : batch.throttled ? 1 : 10);
    const int rc = engine_.run(batch.starved, wait);
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN) fail_all(rc);
}

void Sender::fail_all(int error) {
    for (auto& s : streams_) {
        s.on_error(error);
        if (!s.fatal) s.fatal = error;
    }
}

void Sender::close_open_groups() {
    for (std::size_t i = 0; i < n_; ++i)
        if (streams_[i].group_open) engine_.flush(*groups_[i * groups_per_socket_ + streams_[i].open_group]);
}

void Sender::publish() {
    for (std::size_t i = 0; i < n_; ++i)
        sockets_[i].live->bytes.store(engine_.counters(socks_[i]).bytes, std::memory_order_relaxed);
}

// In slices: once told to stop (the peer ended the test and may read no more), what is still in
// flight gets a second, not ten.
void Sender::drain() {
    const auto drain_until = Clock::now() + std::chrono::seconds(10);
    std::optional<Clock::time_point> stop_seen;
    while (!drained_ && Clock::now() < drain_until) {
        drained_ = engine_.drain(std::chrono::milliseconds(100)) == 0;
        if (!stop_seen && spec_.stop && spec_.stop->load()) stop_seen = Clock::now();
        if (stop_seen && Clock::now() - *stop_seen > std::chrono::seconds(1)) break;
    }
    aborted_ = stop_seen.has_value();
}

void Sender::report(std::vector<StreamReport>& reports) {
    for (std::size_t i = 0; i < n_; ++i) {
        auto& rep = reports[i];
        const Stream& s = streams_[i];
        // Told to stop (the test ended, or the peer went): what the peer no longer reads is
        // cancelled, not an error; the bytes are what the kernel accepted.
        if (!drained_ && !aborted_) rep.error = "in-flight sends did not complete within 10 s";
        rep.counters = engine_.counters(socks_[i]);
        rep.bytes = rep.counters->bytes;
        rep.packets = s.udp_seq;
        if (s.fatal && rep.error.empty()) rep.error = "send failed: " + zcio::errno_string(s.fatal);
        else if (s.first_error && rep.error.empty() && rep.bytes == 0)
            rep.error = "every send failed: " + zcio::errno_string(s.first_error);
    }
    publish();
}

void Sender::remove_sockets() {
    for (auto sock : socks_) engine_.remove_socket(sock);
}

std::vector<StreamReport> run_senders(const std::vector<StreamSocket>& sockets, const SendSpec& spec) {
    std::vector<StreamReport> reps = blank_reports(sockets, spec);
    const double cpu0 = thread_cpu_seconds();
    const auto t0 = Clock::now();
    const int threads = ++sending_threads;
    try {
        Sender sender(sockets, spec, threads, t0);
        sender.send_until_done();
        sender.drain();
        sender.report(reps);
        sender.remove_sockets();
    } catch (const zcio::SetupError& e) {
        for (auto& r : reps) r.error = e.what();
    } catch (const std::exception& e) {
        for (auto& r : reps) r.error = std::string("sender: ") + e.what();
    }
    --sending_threads;
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    const double cpu = thread_cpu_seconds() - cpu0;
    for (std::size_t i = 0; i < sockets.size(); ++i) {
        reps[i].seconds = seconds;
        reps[i].thread_cpu_seconds = cpu / static_cast<double>(sockets.size());
        sockets[i].live->finished.store(true);
    }
    return reps;
}

}  // namespace zcperf
