// The client's side of iperf3's protocol (iperf_client_api.c): against a zcperf or a stock iperf3
// server. The client decides when the test ends; it says TEST_END once its data has arrived.
#include "session.hpp"

#include "file_transfer.hpp"
#include "peer_report.hpp"
#include "session_common.hpp"

#include <fmt/format.h>

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <thread>

namespace zcperf {

namespace {

using namespace std::chrono_literals;

constexpr Millis first_answer = 5000ms;  // connect + PARAM_EXCHANGE: a peer that is not iperf3 is named by then
constexpr Millis handshake_timeout = 10000ms;

[[noreturn]] void refused(ControlChannel& ctl, signed char s, std::string_view when) {
    if (s == state::access_denied) throw Error("the server is busy running a test; try again later");
    if (s == state::server_error) throw Error("the server refused the test: " + read_server_error(ctl));
    if (s == state::server_terminate) throw Error("the server has terminated");
    throw Error(fmt::format("protocol error: unexpected state {} {}", static_cast<int>(s), when));
}

// The first answer to the cookie: iperf3's PARAM_EXCHANGE, or a clear word about what answered.
void expect_param_exchange(ControlChannel& ctl, const ClientSetup& cs, Clock::time_point t0) {
    const auto left = std::max(Millis(200), std::chrono::duration_cast<Millis>(t0 + first_answer - Clock::now()));
    std::optional<signed char> s;
    try {
        s = ctl.read_state(left);
    } catch (const Error& e) {
        throw Error(fmt::format("{} port {} is not an iperf3 or zcperf server: {}", cs.host, cs.port, e.what()));
    }
    if (!s)
        throw Error(fmt::format("{} port {} is not an iperf3 or zcperf server: no answer within {:.0f} s", cs.host,
                                cs.port, std::chrono::duration<double>(first_answer).count()));
    if (*s == state::param_exchange) return;
    if (*s == state::access_denied || *s == state::server_error) refused(ctl, *s, "");
    std::string answer(1, static_cast<char>(*s));
    try {
        while (answer.size() < 40)
            if (auto more = ctl.read_state(50ms)) answer += static_cast<char>(*more);
            else break;
    } catch (const Error&) {}
    throw Error(fmt::format("{} port {} is not an iperf3 or zcperf server: it answered \"{}\"", cs.host, cs.port,
                            escape_peer_text(answer, 40)));
}

// After the parameters: ZCPERF_HELLO (a zcperf server), then CREATE_STREAMS. Returns the size of
// the file a zcperf server will send once (-R -F), or 0.
std::uint64_t expect_create_streams(ControlChannel& ctl, TestRecord& rec) {
    rec.peer_is_zcperf = false;
    std::uint64_t file_once_bytes = 0;
    for (;;) {
        const signed char s = ctl.expect_state(handshake_timeout, "the server's answer to the parameters");
        if (s == state::create_streams) return file_once_bytes;
        if (s != state::zcperf_hello) refused(ctl, s, "after the parameters");
        auto hello = parse_server_hello(ctl.read_frame(handshake_timeout, 4096, "the zcperf server's hello"));
        if (!hello) throw Error("protocol error: a malformed zcperf hello");
        rec.peer_is_zcperf = true;
        rec.peer_version = "zcperf " + hello->version;
        file_once_bytes = hello->file_once_bytes;
    }
}

zcio::UniqueFd open_udp_stream(const ClientSetup& cs, const TestParams& p) {
    zcio::UniqueFd fd = connect_udp(cs.host, cs.port, cs.family);
    int big = 8 << 20;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    apply_data_socket_options(fd.get(), p);
    const auto deadline = Clock::now() + handshake_timeout;
    for (;;) {
        const std::uint32_t hello = udp_connect_msg;
        if (::send(fd.get(), &hello, sizeof hello, 0) != sizeof hello)
            throw Error("cannot send the UDP connect datagram: " + std::string(std::strerror(errno)));
        // The reply; a datagram hello resent each second in case one was lost.
        const auto resend = Clock::now() + 1s;
        while (Clock::now() < resend) {
            pollfd pfd{fd.get(), POLLIN, 0};
            if (::poll(&pfd, 1, 100) <= 0) {
                if (stop_requested().load()) throw Error("interrupted");
                continue;
            }
            std::uint32_t reply = 0;
            const ssize_t n = ::recv(fd.get(), &reply, sizeof reply, MSG_DONTWAIT);
            if (n < 0 && errno == ECONNREFUSED) throw Error("the server's UDP port is closed (ECONNREFUSED)");
            if (n == sizeof reply && (reply == udp_connect_reply || reply == legacy_udp_connect_reply)) return fd;
        }
        if (Clock::now() > deadline) throw Error("the server did not answer the UDP connect datagram");
    }
}

std::vector<LocalStream> open_streams(const ClientSetup& cs, const TestParams& p, TestRecord& rec) {
    std::vector<LocalStream> streams;
    const std::vector<bool> roles = stream_roles(p, true);
    for (std::size_t k = 0; k < roles.size(); ++k) {
        LocalStream s;
        s.id = stream_id(k);
        s.sender = roles[k];
        if (p.udp) {
            s.fd = open_udp_stream(cs, p);
        } else {
            s.fd = connect_tcp(cs.host, cs.port, cs.family, handshake_timeout);
            write_all(s.fd.get(), rec.cookie);
            apply_data_socket_options(s.fd.get(), p);
        }
        rec.connected.push_back(describe_connection(s.id, s.fd.get()));
        streams.push_back(std::move(s));
    }
    return streams;
}

void expect_test_start(ControlChannel& ctl) {
    for (signed char want : {state::test_start, state::test_running}) {
        signed char s;
        do s = ctl.expect_state(handshake_timeout, "the server's start");
        while (s == state::zcperf_alive);
        if (s != want) refused(ctl, s, "while the streams connect");
    }
}

// The data phase until this end's criterion says the test is over: time, -n/-k, or every
// receiving stream at its end. Throws Error when the peer goes silent or says something else.
void run_until_end(DataPhase& data, ControlChannel& ctl, const TestParams& p, const ClientSetup& cs, bool zcperf_peer,
                   Clock::time_point start) {
    const auto deadline =
        start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(p.total_seconds()));
    Clock::time_point last_alive = start;
    for (;;) {
        if (auto why = data.tick()) throw Error(*why);
        const auto now = Clock::now();
        const bool timed_out = p.duration > 0 && now >= deadline;
        std::uint64_t received = 0;
        for (int k = 0; k < p.streams * (p.bidir ? 2 : 1); ++k)
            received += data.received(stream_id(static_cast<std::size_t>(k)));
        const bool counted = p.bytes && received >= p.bytes;
        const bool sent_all = data.has_senders() && data.senders_done();
        const bool got_all = data.has_receivers() && !p.udp && data.receivers_done();
        // Sending: the senders stop themselves (time, -n, -k); bidir also waits for its own time.
        if (data.has_senders() ? sent_all && (!data.has_receivers() || timed_out || got_all)
                               : timed_out || counted || got_all)
            break;
        if (stop_requested().load()) {
            try {
                ctl.write_state(state::client_terminate, 1000ms);
            } catch (const Error&) {}
            throw Error("interrupted");
        }
        if (auto s = ctl.read_state(data.wait_hint()); s && *s != state::zcperf_alive)
            refused(ctl, *s, "during the test");
        if (zcperf_peer && heartbeat(ctl, last_alive, cs.run))
            throw Error(fmt::format("the server went silent for {} ms (--rcv-timeout)", cs.run.rcv_timeout.count()));
    }
}

// After TEST_END: EXCHANGE_RESULTS; meanwhile the receivers take what is still on its way.
void await_exchange(DataPhase& data, ControlChannel& ctl, const RunSettings& rs) {
    const auto deadline = Clock::now() + rs.rcv_timeout + 10s;  // the server drains its senders first
    for (;;) {
        auto s = ctl.read_state(50ms);
        if (s && *s == state::exchange_results) break;
        if (s && *s != state::zcperf_alive) refused(ctl, *s, "after TEST_END");
        if (Clock::now() > deadline) throw Error("timed out waiting for the server to exchange results");
    }
    // TCP streams end at EOF (the server closed them at TEST_END); UDP: until nothing arrives.
    const auto limit = Clock::now() + 2s;
    while (data.has_receivers() && Clock::now() < limit && !data.receivers_done() && data.receive_silence() < 250ms)
        std::this_thread::sleep_for(5ms);
}

}  // namespace

TestRecord run_client_test(const ClientSetup& cs) {
    TestRecord rec;
    rec.params = cs.params;
    rec.host = cs.host;
    rec.port = cs.port;
    rec.target = cs.target;
    rec.cookie = make_cookie();
    if (auto why = check_params(cs.params); !why.empty()) throw Error(why);
    TestParams& p = rec.params;

    const auto t0 = Clock::now();
    zcio::UniqueFd ctrl = connect_tcp(cs.host, cs.port, cs.family, first_answer);
    ControlChannel ctl(ctrl.get());
    write_all(ctrl.get(), rec.cookie);
    expect_param_exchange(ctl, cs, t0);
    ctl.write_frame(serialize_params(p));
    const std::uint64_t file_once_bytes = expect_create_streams(ctl, rec);
    apply_server_hello_file(p, rec.peer_is_zcperf, file_once_bytes, rec.notes);
    if (p.bitrate_default) {
        p.bitrate = rec.peer_is_zcperf ? 0 : iperf3_udp_rate;
        if (!rec.peer_is_zcperf)
            rec.notes.push_back("the server is iperf3: UDP at iperf3's default 1 Mbit/s per stream (-b sets the rate)");
    }
    if (!rec.peer_is_zcperf)
        rec.notes.push_back(
            "the server is stock iperf3: zcio figures are this end's only (the server's receive strategy and syscalls "
            "cannot be known)");

    std::vector<LocalStream> streams = open_streams(cs, p, rec);
    expect_test_start(ctl);
    if (cs.run.on_connected) cs.run.on_connected(rec);
    rec.timestamp = static_cast<double>(std::time(nullptr));
    const auto start = Clock::now();
    DataPhase data(streams, p, cs.run, start, rec.intervals);
    run_until_end(data, ctl, p, cs, rec.peer_is_zcperf, start);
    data.stop_sending();
    data.wait_sent_acknowledged(std::min<Millis>(2000ms, cs.run.rcv_timeout));
    for (auto& s : streams)
        if (s.sender && !p.udp) ::shutdown(s.fd.get(), SHUT_WR);  // a zcperf receiver sees the end of the stream
    ctl.write_state(state::test_end);
    ctl.interruptible = false;
    await_exchange(data, ctl, cs.run);
    data.stop_receiving();
    rec.local = data.report();
    ctl.write_frame(serialize_results(PeerResults{rec.local, true, {}, false}));
    ResultsParse peer =
        parse_results(ctl.read_frame(cs.run.rcv_timeout + 10s, max_results_json, "the server's results"));
    if (!peer.results) throw Error("the server's results: " + peer.error);
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    if (auto why = match_peer_report(peer.results->report, rec.local, p, elapsed); !why.empty()) throw Error(why);
    rec.remote = std::move(peer.results->report);
    rec.server_output = std::move(peer.results->server_output);
    rec.server_output_is_json = peer.results->server_output_is_json;
    rec.has_remote = true;
    if (auto why = file_verify_mismatch(rec); !why.empty()) rec.error = why;
    signed char s;
    do s = ctl.expect_state(cs.run.rcv_timeout + 5s, "the server's DISPLAY_RESULTS");
    while (s == state::zcperf_alive);
    if (s != state::display_results) refused(ctl, s, "after the results");
    try {
        ctl.write_state(state::iperf_done, 1000ms);
    } catch (const Error&) {}
    return rec;
}

}  // namespace zcperf
