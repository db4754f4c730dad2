// The server's side of iperf3's protocol (iperf_server_api.c), for zcperf and stock iperf3
// clients, made safe for a port anyone can reach: the front desk never blocks on one client, a
// test's memory is bounded before anything is allocated, UDP streams are taken only from the
// control connection's address, and sending stops the moment the control connection closes or
// the test's time is over.
#include "session.hpp"

#include "file_transfer.hpp"
#include "front_desk.hpp"
#include "peer_report.hpp"
#include "session_common.hpp"

#include <fmt/format.h>

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <thread>

namespace zcperf {

namespace {

using namespace std::chrono_literals;

std::string mib(std::size_t bytes) { return fmt::format("{:.0f} MiB", static_cast<double>(bytes) / (1 << 20)); }

// Parses and checks the client's parameters; refuses (iperf3's error path) what this server will
// not run. Returns the test to run.
TestParams admit(ControlChannel& ctl, const std::string& json, const ServerSettings& ss, TestRecord& rec) {
    ParamsResult pr = parse_params(json);
    if (!pr.params) {
        send_refusal(ctl, pr.error_number, "the server refused the parameters: " + pr.error,
                     json.find("\"zcperf\"") != std::string::npos);
        throw Error(fmt::format("refused a test from {}: {}", rec.host, pr.error));
    }
    TestParams p = std::move(*pr.params);
    rec.peer_is_zcperf = p.zcperf_peer;
    rec.peer_version = p.client_version;
    const std::size_t need = estimate_test_memory(p, true, ss.run.recv);
    if (need > ss.max_memory) {
        const std::string why = fmt::format(
            "this test would make the server allocate about {} (-P {}, -l {}), above its limit of {}: use fewer "
            "streams or "
            "a smaller -l, or raise the server's --server-max-memory",
            mib(need), p.streams, p.length, mib(ss.max_memory));
        send_refusal(ctl, p.length > (1u << 20) ? ie::block_size : ie::num_streams, why, p.zcperf_peer);
        throw Error(fmt::format("refused a test from {}: {}", rec.host, why));
    }
    if (p.bitrate_default && p.zcperf_peer) p.bitrate = 0;  // zcperf's UDP default: unthrottled
    if (auto why = apply_server_file(p, ss.file, rec.notes); !why.empty()) {
        send_refusal(ctl, ie::unimplemented, why, p.zcperf_peer);
        throw Error(fmt::format("refused a test from {}: {}", rec.host, why));
    }
    for (const auto& key : p.ignored)
        rec.notes.push_back(fmt::format("the client's iperf3 option \"{}\" is not applied", key));
    if (!p.zcperf_peer)
        rec.notes.push_back(
            "the client is stock iperf3: zcio figures are this end's only (the client's strategy and syscalls cannot "
            "be known)");
    if (p.zcperf_peer) {
        ctl.write_state(state::zcperf_hello);
        const std::uint64_t once = p.file.once && p.file.active() && p.reverse ? p.bytes : 0;
        ctl.write_frame(serialize_server_hello({zcperf_version, std::string(zcio::to_string(ss.run.recv)), once}));
    }
    return p;
}

std::vector<LocalStream> collect_tcp_streams(FrontDesk& desk, ControlChannel& ctl, const TestParams& p,
                                             const RunSettings& rs) {
    const std::vector<bool> roles = stream_roles(p, false);
    std::vector<DataConnection> got;
    const auto deadline = Clock::now() + rs.rcv_timeout + 1s;
    while (got.size() < roles.size()) {
        if (Clock::now() > deadline)
            throw Error(
                fmt::format("the client opened {} of its {} data connections in time", got.size(), roles.size()));
        if (stop_requested().load()) throw Error("interrupted");
        if (auto c = desk.next_stream(50ms)) got.push_back(std::move(*c));
        (void)ctl.read_state(0ms);  // throws when the client gives up and closes
    }
    std::sort(got.begin(), got.end(),
              [](const DataConnection& a, const DataConnection& b) { return a.order < b.order; });
    std::vector<LocalStream> streams;
    for (std::size_t k = 0; k < got.size(); ++k) {
        apply_data_socket_options(got[k].fd.get(), p);
        streams.push_back({std::move(got[k].fd), stream_id(k), roles[k]});
    }
    return streams;
}

// One UDP stream: the client's connect datagram on the server's port, from the control
// connection's address only (a forged source gets nothing back), answered from a socket connected
// to it; the next stream's datagram finds a fresh socket on the port.
zcio::UniqueFd accept_udp_stream(zcio::UniqueFd& listener, ControlChannel& ctl, int family, std::uint16_t port,
                                 const std::string& peer, Clock::time_point deadline, std::uint64_t& ignored) {
    for (;;) {
        if (Clock::now() > deadline) throw Error("the client's UDP connect datagram did not arrive");
        if (stop_requested().load()) throw Error("interrupted");
        (void)ctl.read_state(0ms);  // throws when the client gives up
        pollfd pfd{listener.get(), POLLIN, 0};
        if (::poll(&pfd, 1, 50) <= 0) continue;
        sockaddr_storage from{};
        socklen_t len = sizeof from;
        std::uint32_t hello = 0;
        const ssize_t n =
            ::recvfrom(listener.get(), &hello, sizeof hello, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &len);
        if (n != sizeof hello || (hello != udp_connect_msg && hello != 123456789u) || address_string(from) != peer) {
            ++ignored;
            continue;
        }
        if (::connect(listener.get(), reinterpret_cast<sockaddr*>(&from), len) != 0)
            throw Error("UDP connect: " + std::string(std::strerror(errno)));
        zcio::UniqueFd stream = std::move(listener);
        listener = bound_udp(family, port);
        const std::uint32_t reply = udp_connect_reply;
        if (::send(stream.get(), &reply, sizeof reply, 0) != sizeof reply)
            throw Error("UDP reply: " + std::string(std::strerror(errno)));
        return stream;
    }
}

// `listener` is bound before CREATE_STREAMS goes out: a client's connect datagram that came first
// would be lost (iperf3 sends it once).
std::vector<LocalStream> collect_udp_streams(zcio::UniqueFd listener, ControlChannel& ctl, const TestParams& p,
                                             const RunSettings& rs, int family, std::uint16_t port,
                                             const std::string& peer, TestRecord& rec) {
    const std::vector<bool> roles = stream_roles(p, false);
    std::vector<LocalStream> streams;
    std::uint64_t ignored = 0;
    const auto deadline = Clock::now() + rs.rcv_timeout + 1s;
    for (std::size_t k = 0; k < roles.size(); ++k) {
        zcio::UniqueFd fd = accept_udp_stream(listener, ctl, family, port, peer, deadline, ignored);
        apply_data_socket_options(fd.get(), p);
        streams.push_back({std::move(fd), stream_id(k), roles[k]});
    }
    if (ignored)
        rec.notes.push_back(
            fmt::format("ignored {} UDP datagrams from other addresses while the streams connected", ignored));
    return streams;
}

// A resent connect datagram that arrived after the reply must not count as data.
void drop_stray_hellos(const std::vector<LocalStream>& streams) {
    char b[8];
    for (const auto& s : streams)
        while (::recv(s.fd.get(), b, sizeof b, MSG_DONTWAIT) == 4) {}
}

// Until the client's TEST_END. Sending stops at the test's time (the senders' own deadline) and at
// once when the control connection closes (the exception unwinds through ~DataPhase).
void serve_until_test_end(DataPhase& data, ControlChannel& ctl, const TestParams& p, const RunSettings& rs,
                          bool zcperf_peer, Clock::time_point start) {
    const auto overdue = start +
                         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(p.total_seconds())) +
                         rs.rcv_timeout + 10s;
    Clock::time_point last_alive = start;
    for (;;) {
        if (auto why = data.tick()) throw Error(*why);
        if (auto s = ctl.read_state(data.wait_hint())) {
            if (*s == state::test_end) return;
            if (*s == state::client_terminate) throw Error("the client terminated the test");
            if (*s != state::zcperf_alive)
                throw Error(fmt::format("protocol error: state {} during the test", static_cast<int>(*s)));
        }
        if (zcperf_peer && heartbeat(ctl, last_alive, rs))
            throw Error(fmt::format("the client went silent for {} ms (--rcv-timeout)", rs.rcv_timeout.count()));
        if (p.duration > 0 && Clock::now() > overdue) throw Error("the client did not end the test in time");
        if (stop_requested().load()) {
            try {
                ctl.write_state(state::server_terminate, 1000ms);
            } catch (const Error&) {}
            throw Error("interrupted");
        }
    }
}

// The receivers take what the client sent before TEST_END: until they hold what the client
// reports sending (TCP; a zcperf client has also closed its streams: until each one's end), or
// nothing more arrives (UDP), at most 2 s.
void drain_to_client_counts(DataPhase& data, const SideReport& client, bool eof_expected) {
    const auto limit = Clock::now() + 2s;
    while (Clock::now() < limit && !data.receivers_done()) {
        bool all = true;
        for (const auto& s : client.streams)
            if (s.sender && data.received(s.id) < s.bytes) all = false;
        if ((all && !eof_expected) || data.receive_silence() > 250ms) break;
        std::this_thread::sleep_for(5ms);
    }
}

std::string server_output(const TestRecord& rec, bool json) {
    if (json) return to_json(rec).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    char* buf = nullptr;
    std::size_t len = 0;
    std::FILE* f = ::open_memstream(&buf, &len);
    if (!f) return {};
    print_text_summary(rec, f);
    std::fclose(f);
    std::string out(buf, len);
    std::free(buf);
    return out;
}

}  // namespace

Server::Server(int listen_fd, ServerSettings settings)
    : listen_fd_(listen_fd), settings_(std::move(settings)), desk_(std::make_unique<FrontDesk>(listen_fd)) {}

Server::~Server() = default;

std::optional<TestRecord> Server::serve_one(const std::atomic<bool>& idle_stop) {
    std::optional<Arrival> arrival = desk_->next_test(idle_stop);
    if (!arrival) return std::nullopt;
    struct BackToIdle {
        FrontDesk& desk;
        ~BackToIdle() { desk.idle(); }
    } back_to_idle{*desk_};
    RunSettings rs = settings_.run;
    TestRecord rec;
    rec.server = true;
    rec.host = peer_host(arrival->fd.get());
    rec.port = peer_port(arrival->fd.get());
    rec.cookie = arrival->cookie.substr(0, cookie_size - 1);
    ControlChannel ctl(arrival->fd.get());
    rec.params = admit(ctl, arrival->params, settings_, rec);
    const TestParams& p = rec.params;
    // 5 % of the time, 50..250 ms: a loopback queue drains in ~10 ms, ~40 ms when both ways are busy.
    if (!p.zcperf_peer && p.duration > 0)
        rs.stop_sending_early = std::chrono::milliseconds(std::clamp(static_cast<long>(p.duration * 50), 50L, 250L));

    std::vector<LocalStream> streams;
    if (p.udp) {
        const int family = socket_family(listen_fd_);
        const std::uint16_t port = local_port(listen_fd_);
        zcio::UniqueFd udp_listener = bound_udp(family, port);
        ctl.write_state(state::create_streams);
        streams = collect_udp_streams(std::move(udp_listener), ctl, p, rs, family, port, rec.host, rec);
    } else {
        desk_->expect_streams(arrival->cookie);
        ctl.write_state(state::create_streams);
        streams = collect_tcp_streams(*desk_, ctl, p, rs);
    }
    desk_->running();
    for (const auto& s : streams) rec.connected.push_back(describe_connection(s.id, s.fd.get()));
    if (p.udp) drop_stray_hellos(streams);
    if (rs.on_connected) rs.on_connected(rec);
    ctl.write_state(state::test_start);
    ctl.write_state(state::test_running);
    rec.timestamp = static_cast<double>(std::time(nullptr));
    const auto start = Clock::now();
    DataPhase data(streams, p, rs, start, rec.intervals);
    serve_until_test_end(data, ctl, p, rs, p.zcperf_peer, start);
    data.stop_sending();
    for (auto& s : streams)
        if (s.sender && !p.udp) ::shutdown(s.fd.get(), SHUT_WR);  // the client reads to the end of the stream
    ctl.interruptible = false;
    ctl.write_state(state::exchange_results);
    ResultsParse client = parse_results(ctl.read_frame(rs.rcv_timeout + 5s, max_results_json, "the client's results"));
    if (!client.results) throw Error("the client's results: " + client.error);
    for (auto& s : client.results->report.streams)  // its sending streams are this end's receiving ones
        for (const auto& mine : streams)
            if (mine.id == s.id) s.sender = !mine.sender;
    drain_to_client_counts(data, client.results->report, p.zcperf_peer && !p.udp);
    data.stop_receiving();
    rec.local = data.report();
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    if (auto why = match_peer_report(client.results->report, rec.local, p, elapsed); !why.empty())
        throw Error("the client's results do not fit the test: " + why);
    {
        TestRecord both = rec;  // --verify: both ends' hashes, before this end's results go out
        both.remote = client.results->report;
        both.has_remote = true;
        rec.error = file_verify_mismatch(both);
    }
    PeerResults mine{rec.local, true, {}, false};
    if (p.get_server_output) {
        mine.server_output = server_output(rec, settings_.json);
        mine.server_output_is_json = settings_.json;
    }
    ctl.write_frame(serialize_results(mine));
    desk_->idle();  // before DISPLAY_RESULTS: the client may connect again as soon as it has read it
    ctl.write_state(state::display_results);
    rec.remote = std::move(client.results->report);
    rec.has_remote = true;
    try {
        (void)ctl.read_state(1000ms);  // IPERF_DONE
    } catch (const Error&) {}
    return rec;
}

}  // namespace zcperf
