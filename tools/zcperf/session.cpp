#include "session.hpp"

#include "cpu.hpp"
#include "net.hpp"
#include "stream.hpp"

#include <fmt/format.h>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <sched.h>
#include <random>

namespace zcperf {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr Millis connect_timeout = 5s;
constexpr Millis handshake_timeout = 10s;
constexpr std::size_t data_hello_length = cookie_length + 4;  // cookie + stream id, 4 digits

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string make_cookie() {
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
    std::random_device rd;
    std::string c(cookie_length, 'a');
    for (auto& ch : c) ch = alphabet[rd() % 32];
    return c;
}

ControlMessage expect_message(LineReader& reader, Millis timeout, std::string_view what, bool until_stop) {
    std::string line = reader.expect_line(timeout, what, until_stop);
    ParseResult r = parse_control_message(line);
    if (!r.message) throw Error(fmt::format("bad control message from the peer: {}", r.error));
    if (auto* f = std::get_if<Failure>(&*r.message)) throw Error(fmt::format("the peer reports: {}", f->message));
    return std::move(*r.message);
}

template <class T>
T expect(LineReader& reader, Millis timeout, std::string_view what, bool until_stop = true) {
    ControlMessage m = expect_message(reader, timeout, what, until_stop);
    if (auto* t = std::get_if<T>(&m)) return std::move(*t);
    throw Error(fmt::format("protocol error: expected {}", what));
}

void set_send_timeout(int fd) {
    // A plain blocking send must not wait forever for a receiver that went away.
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

Connection describe_connection(int id, int fd) {
    return Connection{id, local_host(fd), peer_host(fd), local_port(fd), peer_port(fd)};
}

// Interval records and the live progress line, driven from the thread that waits for the streams.
class Monitor {
public:
    Monitor(const RunSettings& rs, std::vector<Live>& lives, bool sender, double duration, Clock::time_point start,
            std::vector<IntervalRecord>& out)
        : rs_(rs), lives_(lives), sender_(sender), duration_(duration), start_(start), out_(out), last_(lives.size(), 0) {
        progress_ = rs.progress && duration >= 3;
    }

    Millis wait_hint() const {
        double next = 0.2;
        if (rs_.interval > 0) next = std::min(next, std::max(0.0, (static_cast<double>(out_.size()) + 1) * rs_.interval - since(start_)));
        return Millis(static_cast<long>(next * 1000) + 1);
    }

    void tick() {
        const double now = since(start_);
        while (rs_.interval > 0 && now >= (static_cast<double>(out_.size()) + 1) * rs_.interval) record(static_cast<double>(out_.size()) * rs_.interval, (static_cast<double>(out_.size()) + 1) * rs_.interval);
        if (progress_ && now - last_progress_ >= 0.5) {
            last_progress_ = now;
            std::uint64_t total = 0;
            for (auto& l : lives_) total += l.bytes.load(std::memory_order_relaxed);
            fmt::print(stderr, "\r[{:6.1f}/{:.1f} s] {} {}, {}\033[K", now, duration_, sender_ ? "sent" : "received",
                       format_bytes(static_cast<double>(total)), format_bitrate(now > 0 ? 8.0 * static_cast<double>(total) / now : 0));
            std::fflush(stderr);
            drawn_ = true;
        }
    }

    void finish() {
        const double now = since(start_);
        const double from = static_cast<double>(out_.size()) * rs_.interval;
        if (rs_.interval > 0 && now - from > 0.5 * rs_.interval) record(from, now);  // not the drain's sliver
        if (drawn_) fmt::print(stderr, "\r\033[K");
    }

private:
    void record(double from, double to) {
        IntervalRecord iv{from, to, {}, sender_};
        for (std::size_t i = 0; i < lives_.size(); ++i) {
            std::uint64_t b = lives_[i].bytes.load(std::memory_order_relaxed);
            iv.bytes.push_back(b - last_[i]);
            last_[i] = b;
        }
        if (rs_.print_intervals) {
            if (drawn_) fmt::print(stderr, "\r\033[K");
            if (out_.empty()) fmt::print("[ ID] Interval           Transfer     Bitrate\n");
            std::uint64_t sum = 0;
            for (std::size_t i = 0; i < iv.bytes.size(); ++i) {
                sum += iv.bytes[i];
                fmt::print("[{:3}] {:6.2f}-{:<6.2f} sec  {:>12}  {:>16}\n", i + 1, from, to, format_bytes(static_cast<double>(iv.bytes[i])),
                           format_bitrate(8.0 * static_cast<double>(iv.bytes[i]) / (to - from)));
            }
            if (iv.bytes.size() > 1)
                fmt::print("[SUM] {:6.2f}-{:<6.2f} sec  {:>12}  {:>16}\n", from, to, format_bytes(static_cast<double>(sum)),
                           format_bitrate(8.0 * static_cast<double>(sum) / (to - from)));
            std::fflush(stdout);
        }
        out_.push_back(std::move(iv));
    }

    const RunSettings& rs_;
    std::vector<Live>& lives_;
    bool sender_;
    double duration_;
    Clock::time_point start_;
    std::vector<IntervalRecord>& out_;
    std::vector<std::uint64_t> last_;
    bool progress_ = false, drawn_ = false;
    double last_progress_ = 0;
};

bool all_finished(const std::vector<Live>& lives) {
    for (const auto& l : lives)
        if (!l.finished.load()) return false;
    return true;
}

// Threads of this process right now (/proc/self/task): what -P costs in threads.
int process_thread_count() {
    std::error_code ec;
    int n = 0;
    for (auto it = std::filesystem::directory_iterator("/proc/self/task", ec); !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) ++n;
    return n;
}

int usable_cores() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
    return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

// The sending half: at most one thread per core, each with its own ring and engine sending on its
// share of the streams (stream i on thread i mod threads); this thread reports as they run.
SideReport run_sender_half(std::vector<zcio::UniqueFd>& fds, const TestParams& p, const RunSettings& rs,
                           std::vector<IntervalRecord>& intervals, Clock::time_point start) {
    const SendSpec spec{p.strategy, p.completion, p.length, p.udp_gso, p.duration, p.verify, p.working_set};
    std::vector<Live> lives(fds.size());
    const std::size_t nthreads = std::min<std::size_t>(fds.size(), static_cast<std::size_t>(usable_cores()));
    std::vector<std::vector<StreamSocket>> shares(nthreads);
    for (std::size_t i = 0; i < fds.size(); ++i) shares[i % nthreads].push_back({fds[i].get(), static_cast<int>(i) + 1, &lives[i]});
    std::vector<std::vector<StreamReport>> results(nthreads);
    const CpuSnapshot cpu0 = process_cpu_now();
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < nthreads; ++t) threads.emplace_back([&, t] { results[t] = run_senders(shares[t], spec); });
    Monitor mon(rs, lives, true, p.duration, start, intervals);
    int peak_threads = process_thread_count();
    while (!all_finished(lives)) {
        std::this_thread::sleep_for(std::min(mon.wait_hint(), Millis(50)));
        peak_threads = std::max(peak_threads, process_thread_count());
        mon.tick();
    }
    for (auto& t : threads) t.join();
    mon.finish();
    SideReport side;
    side.cpu = cpu_between(cpu0, process_cpu_now());
    if (!p.udp)
        for (auto& fd : fds) ::shutdown(fd.get(), SHUT_WR);  // the receiver sees EOF: the end of the stream
    std::vector<StreamReport> reports(fds.size());
    for (auto& r : results)
        for (auto& s : r) reports[static_cast<std::size_t>(s.id - 1)] = std::move(s);
    side.streams = std::move(reports);
    side.threads = static_cast<int>(nthreads);
    side.process_threads = peak_threads;
    return side;
}

// The receiving half: one thread receives every stream through one zcio::Receiver. With a control
// connection, the sender's `done` (its report goes to *sender_report) marks the end; UDP receivers
// stop shortly after it, TCP ones at EOF.
SideReport run_receiver_half(std::vector<zcio::UniqueFd>& fds, const TestParams& p, const RunSettings& rs,
                             std::vector<IntervalRecord>& intervals, Clock::time_point start, LineReader& control,
                             SideReport& sender_report) {
    std::vector<Live> lives(fds.size());
    std::vector<StreamReport> reports;
    RecvReport receive;
    std::atomic<bool> stop_rx{false};
    const CpuSnapshot cpu0 = process_cpu_now();
    std::vector<StreamSocket> sockets;
    for (std::size_t i = 0; i < fds.size(); ++i) sockets.push_back({fds[i].get(), static_cast<int>(i) + 1, &lives[i]});
    const zcio::RecvStrategy strategy = p.recv.value_or(rs.recv);
    std::vector<std::thread> threads;
    struct JoinAll {
        std::atomic<bool>& stop;
        std::vector<std::thread>& threads;
        ~JoinAll() {
            stop = true;
            for (auto& t : threads)
                if (t.joinable()) t.join();
        }
    } join_all{stop_rx, threads};
    threads.emplace_back([&] { reports = run_receivers(sockets, p.udp, strategy, stop_rx, start, receive, p.verify); });
    Monitor mon(rs, lives, false, p.duration, start, intervals);
    const auto deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(p.duration + 30));
    bool got_done = false;
    Clock::time_point done_at{};
    for (;;) {
        mon.tick();
        if (!got_done) {
            if (auto line = control.read_line(mon.wait_hint())) {
                ParseResult r = parse_control_message(*line);
                if (!r.message) throw Error("bad control message from the sender: " + r.error);
                if (auto* f = std::get_if<Failure>(&*r.message)) throw Error("the sender reports: " + f->message);
                auto* d = std::get_if<Done>(&*r.message);
                if (!d) throw Error("protocol error: expected the sender's done");
                sender_report = std::move(d->report);
                got_done = true;
                done_at = Clock::now();
            }
        } else {
            std::this_thread::sleep_for(std::min(mon.wait_hint(), Millis(20)));
        }
        const auto now = Clock::now();
        if (got_done) {
            // UDP has no end-of-stream: what is still in flight arrives within a few ms. TCP ends at
            // EOF; a receiver still waiting 10 s after the sender finished gives up.
            if ((p.udp && now - done_at > 250ms) || now - done_at > 10s) stop_rx = true;
            if (all_finished(lives)) break;
        }
        if (stop_requested().load()) throw Error("interrupted");
        if (now > deadline) throw Error("the sender did not finish in time");
    }
    stop_rx = true;
    for (auto& t : threads) t.join();
    mon.finish();
    SideReport side;
    side.cpu = cpu_between(cpu0, process_cpu_now());
    side.streams = std::move(reports);
    side.receive = std::move(receive);
    return side;
}

// While a test runs, whoever else connects is told so at once (iperf3's "server is busy"),
// instead of waiting in the backlog until their handshake times out. A client that connects just
// as the test ends (the next test of a script or a sweep) is not refused: it is handed to `carry`,
// and the next serve_one() takes it as its control connection.
class BusyResponder {
public:
    BusyResponder(int listen_fd, zcio::UniqueFd& carry)
        : carry_(carry), thread_([this, listen_fd] {
              while (!stop_.load()) {
                  zcio::UniqueFd fd = accept_with_timeout(listen_fd, 100ms);
                  if (!fd) continue;
                  const auto grace = Clock::now() + 500ms;
                  while (!stop_.load() && Clock::now() < grace) std::this_thread::sleep_for(5ms);
                  if (stop_.load()) {
                      handover_ = std::move(fd);
                      break;
                  }
                  try {
                      write_all(fd.get(), serialize(Failure{"the server is busy running a test; try again later"}), 1s);
                  } catch (const Error&) {
                  }
              }
          }) {}
    ~BusyResponder() {
        stop_ = true;
        thread_.join();
        if (handover_) carry_ = std::move(handover_);
    }
    BusyResponder(const BusyResponder&) = delete;
    BusyResponder& operator=(const BusyResponder&) = delete;

private:
    zcio::UniqueFd& carry_;
    zcio::UniqueFd handover_;
    std::atomic<bool> stop_{false};
    std::thread thread_;  // last: starts after the members it uses exist
};

}  // namespace

TestRecord run_client_test(const ClientSetup& cs) {
    TestRecord rec;
    rec.params = cs.params;
    rec.host = cs.host;
    rec.port = cs.port;
    rec.target = cs.target;
    rec.cookie = make_cookie();
    if (auto why = check_params(cs.params); !why.empty()) throw Error(why);

    zcio::UniqueFd ctrl = connect_tcp(cs.host, cs.port, cs.family, connect_timeout);
    LineReader reader(ctrl.get());
    write_all(ctrl.get(), serialize(Hello{protocol_version, rec.cookie, cs.params}));
    Ready ready = expect<Ready>(reader, handshake_timeout, "the server's ready");

    const auto& p = cs.params;
    std::vector<zcio::UniqueFd> fds;
    for (int i = 1; i <= p.streams; ++i) {
        if (!p.udp) {
            zcio::UniqueFd fd = connect_tcp(cs.host, cs.port, cs.family, connect_timeout);
            write_all(fd.get(), fmt::format("{}{:04d}", rec.cookie, i));
            set_send_timeout(fd.get());
            fds.push_back(std::move(fd));
        } else {
            if (ready.udp_ports.size() != static_cast<std::size_t>(p.streams)) throw Error("protocol error: the server offered the wrong number of UDP ports");
            zcio::UniqueFd fd = connect_udp(cs.host, ready.udp_ports[static_cast<std::size_t>(i - 1)], cs.family);
            int big = 8 << 20;
            ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
            if (::send(fd.get(), "zcio", 4, 0) != 4) throw Error("cannot send the UDP hello: " + std::string(std::strerror(errno)));
            fds.push_back(std::move(fd));
        }
        rec.connected.push_back(describe_connection(i, fds.back().get()));
    }
    expect<Start>(reader, handshake_timeout, "the server's start");
    if (cs.run.on_connected) cs.run.on_connected(rec);
    rec.timestamp = static_cast<double>(std::time(nullptr));
    const auto start = Clock::now();
    if (!p.reverse) {
        rec.local = run_sender_half(fds, p, cs.run, rec.intervals, start);
        write_all(ctrl.get(), serialize(Done{rec.local}));
        rec.remote = expect<Results>(reader, 30s, "the server's results", false).report;
    } else {
        rec.local = run_receiver_half(fds, p, cs.run, rec.intervals, start, reader, rec.remote);
        write_all(ctrl.get(), serialize(Results{rec.local}));
    }
    rec.has_remote = true;
    return rec;
}

TestRecord run_send_only(std::vector<zcio::UniqueFd>& fds, const TestParams& params, const RunSettings& run, std::string target) {
    TestRecord rec;
    rec.params = params;
    rec.params.streams = static_cast<int>(fds.size());
    rec.target = std::move(target);
    for (std::size_t i = 0; i < fds.size(); ++i) rec.connected.push_back(describe_connection(static_cast<int>(i) + 1, fds[i].get()));
    rec.timestamp = static_cast<double>(std::time(nullptr));
    if (run.on_connected) run.on_connected(rec);
    rec.local = run_sender_half(fds, rec.params, run, rec.intervals, Clock::now());
    return rec;
}

std::optional<TestRecord> serve_one(int listen_fd, zcio::UniqueFd& carry, const RunSettings& run, const std::atomic<bool>& idle_stop) {
    zcio::UniqueFd ctrl = std::move(carry);
    while (!ctrl) {
        if (idle_stop.load() || stop_requested().load()) return std::nullopt;
        ctrl = accept_with_timeout(listen_fd, 200ms);
    }
    TestRecord rec;
    rec.server = true;
    rec.host = peer_host(ctrl.get());
    rec.port = peer_port(ctrl.get());
    LineReader reader(ctrl.get());
    try {
        ParseResult first = parse_control_message(reader.expect_line(handshake_timeout, "the client's hello"));
        if (!first.message) throw Error("bad hello from " + rec.host + ": " + first.error);
        auto* hello = std::get_if<Hello>(&*first.message);
        if (!hello) throw Error("protocol error: expected hello");
        if (hello->version != protocol_version)
            throw Error(fmt::format("the client speaks control protocol {}, this server {}", hello->version, protocol_version));
        rec.params = hello->params;
        rec.cookie = hello->cookie;
        const auto& p = rec.params;

        std::vector<zcio::UniqueFd> fds(static_cast<std::size_t>(p.streams));
        Ready ready;
        if (p.udp)
            for (auto& fd : fds) {
                fd = bound_udp(socket_family(ctrl.get()) == AF_INET6 ? AF_INET6 : AF_INET);
                ready.udp_ports.push_back(local_port(fd.get()));
            }
        write_all(ctrl.get(), serialize(ready));

        const auto deadline = Clock::now() + handshake_timeout;
        if (!p.udp) {
            int accepted = 0;
            while (accepted < p.streams) {
                if (Clock::now() > deadline) throw Error("the client did not open its data connections");
                zcio::UniqueFd fd = accept_with_timeout(listen_fd, 200ms);
                if (stop_requested().load()) throw Error("interrupted");
                if (!fd) continue;
                std::string hello_bytes;
                try {
                    hello_bytes = read_exact(fd.get(), data_hello_length, 5s);
                } catch (const Error&) {
                    continue;  // not one of ours
                }
                if (hello_bytes.compare(0, cookie_length, rec.cookie) != 0) continue;
                int id = std::atoi(hello_bytes.c_str() + cookie_length);
                if (id < 1 || id > p.streams || fds[static_cast<std::size_t>(id - 1)]) continue;
                set_send_timeout(fd.get());
                fds[static_cast<std::size_t>(id - 1)] = std::move(fd);
                ++accepted;
            }
        } else {
            // Each UDP stream starts with a hello datagram; connecting to its source lets a reverse
            // test send back, and keeps strangers' datagrams out of the count.
            for (auto& fd : fds) {
                pollfd pfd{fd.get(), POLLIN, 0};
                for (;;) {
                    if (Clock::now() > deadline) throw Error("the client's UDP hello did not arrive");
                    if (stop_requested().load()) throw Error("interrupted");
                    if (::poll(&pfd, 1, 100) > 0) break;
                }
                sockaddr_storage from{};
                socklen_t len = sizeof from;
                char b[16];
                if (::recvfrom(fd.get(), b, sizeof b, 0, reinterpret_cast<sockaddr*>(&from), &len) < 0 ||
                    ::connect(fd.get(), reinterpret_cast<sockaddr*>(&from), len) != 0)
                    throw Error("UDP hello: " + std::string(std::strerror(errno)));
                while (::recv(fd.get(), b, sizeof b, MSG_DONTWAIT) > 0) {
                }
            }
        }
        for (std::size_t i = 0; i < fds.size(); ++i) rec.connected.push_back(describe_connection(static_cast<int>(i) + 1, fds[i].get()));
        if (run.on_connected) run.on_connected(rec);
        BusyResponder busy(listen_fd, carry);
        write_all(ctrl.get(), serialize(Start{}));
        rec.timestamp = static_cast<double>(std::time(nullptr));
        const auto start = Clock::now();
        if (!p.reverse) {
            rec.local = run_receiver_half(fds, p, run, rec.intervals, start, reader, rec.remote);
            write_all(ctrl.get(), serialize(Results{rec.local}));
        } else {
            rec.local = run_sender_half(fds, p, run, rec.intervals, start);
            write_all(ctrl.get(), serialize(Done{rec.local}));
            rec.remote = expect<Results>(reader, 30s, "the client's results", false).report;
        }
        rec.has_remote = true;
    } catch (const Error& e) {
        try {
            write_all(ctrl.get(), serialize(Failure{e.what()}), 1s);
        } catch (const Error&) {
        }
        throw;
    }
    return rec;
}

int run_server(const Options& o) {
    zcio::UniqueFd listener;
    try {
        listener = listen_tcp(o.port, o.family);
    } catch (const Error& e) {
        fmt::print(stderr, "zcperf: {}\n", e.what());
        return 1;
    }
    const std::uint16_t port = local_port(listener.get());
    RunSettings run{o.interval, !o.json && o.interval > 0, o.progress, {}};
    run.recv = o.recv.value_or(zcio::RecvStrategy::automatic);
    if (!o.json)
        run.on_connected = [](const TestRecord& rec) {
            fmt::print("Accepted connection from {}, port {}\n", rec.host, rec.port);
            for (const auto& c : rec.connected)
                fmt::print("[{:3}] local {} port {} connected to {} port {}\n", c.id, c.local_host, c.local_port, c.remote_host, c.remote_port);
            std::fflush(stdout);
        };
    std::atomic<bool> never{false};
    zcio::UniqueFd carry;
    int rc = 0;
    for (;;) {
        if (!o.json) {
            fmt::print("-----------------------------------------------------------\nServer listening on {}\n"
                       "-----------------------------------------------------------\n",
                       port);
            std::fflush(stdout);
        }
        try {
            auto rec = serve_one(listener.get(), carry, run, never);
            if (!rec) break;  // Ctrl-C while idle
            if (o.json) {
                fmt::print("{}\n", to_json(*rec).dump(2));
            } else {
                print_text_summary(*rec, stdout);
            }
            std::fflush(stdout);
            rc = rec->stream_errors().empty() ? 0 : 1;
        } catch (const Error& e) {
            if (o.json) fmt::print("{}\n", nlohmann::json{{"error", e.what()}}.dump(2));
            fmt::print(stderr, "zcperf: test failed: {}\n", e.what());
            rc = 1;
        }
        if (o.one_off || stop_requested().load()) break;
    }
    return rc;
}

TestParams client_params(const Options& o) {
    TestParams p;
    p.udp = o.udp;
    p.streams = o.parallel;
    p.duration = o.duration;
    p.length = o.effective_length();
    p.reverse = o.reverse;
    p.strategy = o.strategies.empty() ? zcio::Strategy::automatic : o.strategies.front();
    p.completion = o.completion;
    p.udp_gso = o.udp_gso;
    p.verify = o.verify;
    p.working_set = o.working_set;
    p.recv = o.recv;  // whoever receives (the server; the client with -R) receives this way
    return p;
}

int run_client(const Options& o) {
    const TestParams p = client_params(o);
    RunSettings run{o.interval, !o.json && o.interval > 0, o.progress, {}};
    if (!o.json)
        run.on_connected = [](const TestRecord& rec) {
            for (const auto& c : rec.connected)
                fmt::print("[{:3}] local {} port {} connected to {} port {}\n", c.id, c.local_host, c.local_port, c.remote_host, c.remote_port);
            std::fflush(stdout);
        };
    TestRecord rec;
    try {
        if (o.send_only) {
            std::vector<zcio::UniqueFd> fds;
            for (int i = 0; i < p.streams; ++i) {
                fds.push_back(p.udp ? connect_udp(o.host, o.port, o.family) : connect_tcp(o.host, o.port, o.family, connect_timeout));
                if (!p.udp) set_send_timeout(fds.back().get());
            }
            if (!o.json) fmt::print("Sending to {}, port {} (send-only: sender figures only)\n", o.host, o.port);
            rec = run_send_only(fds, p, run, "send-only");
            rec.host = o.host;
            rec.port = o.port;
        } else {
            if (!o.json) fmt::print("Connecting to host {}, port {}\n", o.host, o.port);
            std::fflush(stdout);
            ClientSetup cs{o.host, o.port, o.family, p, run};
            rec = run_client_test(cs);
        }
    } catch (const Error& e) {
        if (o.json) fmt::print("{}\n", nlohmann::json{{"error", e.what()}}.dump(2));
        fmt::print(stderr, "zcperf: {}\n", e.what());
        return 1;
    }
    if (o.json) {
        fmt::print("{}\n", to_json(rec).dump(2));
    } else {
        print_text_summary(rec, stdout);
    }
    auto errors = rec.stream_errors();
    if (!errors.empty() && o.json)
        for (const auto& e : errors) fmt::print(stderr, "zcperf: {}\n", e);
    return errors.empty() ? 0 : 1;
}

LoopbackServer::LoopbackServer(int family) {
    host_ = family == AF_INET6 ? "::1" : "127.0.0.1";
    listen_ = listen_tcp(0, family == AF_INET6 ? AF_INET6 : AF_INET, host_);
    port_ = local_port(listen_.get());
    thread_ = std::thread([this] {
        RunSettings quiet;
        zcio::UniqueFd carry;
        while (!stop_.load() && !stop_requested().load()) {
            try {
                serve_one(listen_.get(), carry, quiet, stop_);
            } catch (const Error& e) {
                std::lock_guard lock(mutex_);
                last_error_ = e.what();
            }
        }
    });
}

LoopbackServer::~LoopbackServer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
}

std::string LoopbackServer::last_error() const {
    std::lock_guard lock(mutex_);
    return last_error_;
}

}  // namespace zcperf
