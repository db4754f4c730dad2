// The command-line front-ends of the client and the server, send-only runs and the in-process
// loopback server. The protocol's two sides are in client.cpp and server.cpp.
#include "session.hpp"

#include "file_transfer.hpp"
#include "net.hpp"
#include "session_common.hpp"

#include <fmt/format.h>

#include <malloc.h>
#include <sys/socket.h>

#include <cstdio>
#include <ctime>

namespace zcperf {

namespace {

using namespace std::chrono_literals;

void print_connected(const TestRecord& rec) {
    if (rec.server) fmt::print("Accepted connection from {}, port {}\n", rec.host, rec.port);
    for (const auto& c : rec.connected)
        fmt::print("[{:3}] local {} port {} connected to {} port {}\n", c.id, c.local_host, c.local_port, c.remote_host,
                   c.remote_port);
    std::fflush(stdout);
}

// This end's -F: its file and the strategies it asks for (a server's: its defaults).
FileParams file_params(const Options& o) {
    FileParams f;
    f.path = o.file;
    f.direct = o.direct;
    if (!o.file_send.empty()) f.send = o.file_send.front();
    f.recv = o.file_recv;
    f.verify = o.verify && !o.file.empty();
    return f;
}

// -F alone sends the file once: iperf3's client asks for its size in bytes (-n), and so does this
// one; with -R the size is the server's to say (its hello), so the test asks for `once`.
void apply_file_options(const Options& o, TestParams& p) {
    p.file = file_params(o);
    if (!p.file.active()) return;
    p.verify = false;  // --verify with -F: the hashes, not the pattern
    if (o.mode != Mode::client || o.duration_given || o.end_by_count()) return;
    if (o.reverse) {
        p.file.once = true;
        return;
    }
    std::uint64_t size = 0;
    if (check_file_to_send(o.file, o.direct, size).empty()) {
        p.bytes = size;
        p.duration = 0;
    }
}

RunSettings run_settings(const Options& o) {
    RunSettings run{o.interval, !o.json && o.interval > 0, o.progress, {}};
    run.recv = o.recv.value_or(zcio::RecvStrategy::automatic);
    run.rcv_timeout = Millis(o.rcv_timeout_ms);
    run.verbose = o.verbose;
    if (!o.json) run.on_connected = print_connected;
    return run;
}

}  // namespace

TestRecord run_send_only(std::vector<zcio::UniqueFd>& fds, const TestParams& params, const RunSettings& run,
                         std::string target, std::span<const SocketAddress> to) {
    TestRecord rec;
    rec.params = params;
    rec.params.streams = static_cast<int>(fds.size());
    // No peer: nothing to be polite to (iperf3's 1 Mbit/s UDP default is for a stock server). The
    // sink's sweep comes here straight from client_params, without send_only().
    if (rec.params.bitrate_default) rec.params.bitrate = 0;
    rec.params.fanout = static_cast<int>(to.size());
    rec.target = std::move(target);
    std::vector<LocalStream> streams;
    for (std::size_t i = 0; i < fds.size(); ++i) {
        streams.push_back({std::move(fds[i]), stream_id(i), true, to});
        Connection c = describe_connection(streams.back().id, streams.back().fd.get());
        if (!to.empty()) {  // unconnected: its first destination
            c.remote_host = address_string(to.front().storage);
            c.remote_port = address_port(to.front().storage);
        }
        rec.connected.push_back(std::move(c));
    }
    rec.timestamp = static_cast<double>(std::time(nullptr));
    if (run.on_connected) run.on_connected(rec);
    {
        DataPhase data(streams, rec.params, run, Clock::now(), rec.intervals);
        while (!data.senders_done()) {
            if (auto why = data.tick()) {
                rec.error = *why;
                break;
            }
            std::this_thread::sleep_for(std::min(data.wait_hint(), Millis(50)));
        }
        data.stop_sending();
        rec.local = data.report();
    }
    if (!rec.params.udp)
        for (auto& s : streams) ::shutdown(s.fd.get(), SHUT_WR);
    for (std::size_t i = 0; i < fds.size(); ++i) fds[i] = std::move(streams[i].fd);
    return rec;
}

int run_server(const Options& o) {
    // A server runs test after test, each on its own threads. glibc raises its mmap threshold
    // each time a large block is freed, after which blocks that size come from the freeing
    // thread's arena and stay resident there, up to one such block per arena (idle after 50
    // tests: 9.6 MB with the moving threshold, 5.6 MB with this one). A fixed threshold keeps
    // large blocks mmapped, so a finished test's memory goes back to the system.
    ::mallopt(M_MMAP_THRESHOLD, 256 << 10);
    zcio::UniqueFd listener;
    try {
        listener = listen_tcp(o.port, o.family);
    } catch (const Error& e) {
        fmt::print(stderr, "zcperf: {}\n", e.what());
        return 1;
    }
    const std::uint16_t port = local_port(listener.get());
    ServerSettings ss{run_settings(o), o.server_max_memory, o.json, file_params(o)};
    Server server(listener.get(), ss);
    std::atomic<bool> never{false};
    int rc = 0;
    for (;;) {
        if (!o.json) {
            fmt::print(
                "-----------------------------------------------------------\nServer listening on {}\n"
                "-----------------------------------------------------------\n",
                port);
            std::fflush(stdout);
        }
        try {
            auto rec = server.serve_one(never);
            if (!rec) break;  // Ctrl-C while idle
            if (o.json) fmt::print("{}\n", to_json(*rec).dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
            else print_text_summary(*rec, stdout);
            std::fflush(stdout);
            rc = rec->stream_errors().empty() ? 0 : 1;
        } catch (const Error& e) {
            if (o.json)
                fmt::print("{}\n", nlohmann::json{{"error", e.what()}}.dump(2, ' ', false,
                                                                            nlohmann::json::error_handler_t::replace));
            fmt::print(stderr, "zcperf: test failed: {}\n", escape_peer_text(e.what(), 2048));
            std::fflush(stdout);
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
    p.duration = o.end_by_count() && !o.duration_given ? 0 : o.duration;
    p.length = o.effective_length();
    p.reverse = o.reverse;
    p.bidir = o.bidir;
    p.bitrate = o.bitrate;
    p.bitrate_default = o.udp && o.bitrate == 0 && !o.bitrate_given;
    if (p.bitrate_default) p.bitrate = iperf3_udp_rate;  // what a stock iperf3 server is asked for
    p.bytes = o.bytes;
    p.blocks = o.blocks;
    p.omit = o.omit;
    p.nodelay = o.nodelay;
    p.window = static_cast<int>(o.window);
    p.get_server_output = o.get_server_output;
    p.strategy = o.strategies.empty() ? zcio::Strategy::automatic : o.strategies.front();
    p.completion = o.completion;
    p.udp_gso = o.udp_gso;
    p.verify = o.verify;
    p.working_set = o.working_set;
    p.fanout = o.fanout;
    p.recv = o.recv;  // whoever receives (the server; the client with -R) receives this way
    apply_file_options(o, p);
    return p;
}

namespace {

TestRecord send_only(const Options& o, const TestParams& p, const RunSettings& run) {
    std::vector<zcio::UniqueFd> fds;
    // --fanout: one unconnected socket per stream, HOST's ports PORT .. PORT + N - 1 in turn.
    const std::vector<SocketAddress> to =
        p.fanout ? udp_destinations(o.host, o.port, p.fanout, o.family) : std::vector<SocketAddress>{};
    for (int i = 0; i < p.streams; ++i) {
        if (!to.empty()) fds.push_back(unconnected_udp(to.front().storage.ss_family));
        else if (p.udp) fds.push_back(connect_udp(o.host, o.port, o.family));
        else fds.push_back(connect_tcp(o.host, o.port, o.family, 5000ms));
        apply_data_socket_options(fds.back().get(), p);
    }
    if (!o.json && to.empty()) {
        fmt::print("Sending to {}, port {} (send-only: sender figures only)\n", o.host, o.port);
    } else if (!o.json) {
        fmt::print(
            "Sending to {}, ports {}..{}, round robin from one unconnected socket per stream "
            "(send-only, --fanout {}: sender figures only)\n",
            o.host, o.port, o.port + p.fanout - 1, p.fanout);
    }
    TestRecord rec = run_send_only(fds, p, run, "send-only", to);
    rec.host = o.host;
    rec.port = o.port;
    return rec;
}

}  // namespace

int run_client(const Options& o) {
    const TestParams p = client_params(o);
    const RunSettings run = run_settings(o);
    TestRecord rec;
    try {
        if (o.send_only) {
            rec = send_only(o, p, run);
        } else {
            if (!o.json) fmt::print("Connecting to host {}, port {}\n", o.host, o.port);
            std::fflush(stdout);
            rec = run_client_test(ClientSetup{o.host, o.port, o.family, p, run});
        }
    } catch (const Error& e) {
        if (o.json)
            fmt::print("{}\n", nlohmann::json{{"error", e.what()}}.dump(2, ' ', false,
                                                                        nlohmann::json::error_handler_t::replace));
        fmt::print(stderr, "zcperf: {}\n", e.what());
        return 1;
    }
    if (o.json) fmt::print("{}\n", to_json(rec).dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    else print_text_summary(rec, stdout);
    auto errors = rec.stream_errors();
    if (!errors.empty() && o.json)
        for (const auto& e : errors) fmt::print(stderr, "zcperf: {}\n", e);
    return errors.empty() && rec.error.empty() ? 0 : 1;
}

LoopbackServer::LoopbackServer(int family) {
    host_ = family == AF_INET6 ? "::1" : "127.0.0.1";
    listen_ = listen_tcp(0, family == AF_INET6 ? AF_INET6 : AF_INET, host_);
    port_ = local_port(listen_.get());
    thread_ = std::thread([this] {
        ServerSettings ss;
        ss.max_memory = SIZE_MAX;  // this process's own tests: no stranger to bound
        Server server(listen_.get(), ss);
        while (!stop_.load() && !stop_requested().load()) {
            try {
                server.serve_one(stop_);
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
