// The control protocol: iperf3's (esnet/iperf), so zcperf talks to stock iperf3 clients and servers
// both ways, with zcperf's own figures as extra JSON keys that iperf3 ignores.
//
// The conversation on the control connection (client left, server right; iperf_client_api.c and
// iperf_server_api.c define it):
//
//   cookie (36 characters + NUL)  ->
//                                 <-  PARAM_EXCHANGE
//   params (4-byte length + JSON) ->
//                                 <-  [ZCPERF_HELLO + JSON: only to a zcperf client]
//                                 <-  CREATE_STREAMS
//   data streams: TCP to the same port, each opening with the cookie; UDP to the same port, one
//   4-byte connect datagram each, answered with the reply datagram
//                                 <-  TEST_START, TEST_RUNNING
//   ... data; the client decides when the test ends ...
//   TEST_END                      ->
//                                 <-  EXCHANGE_RESULTS
//   client results (JSON)         ->
//                                 <-  server results (JSON)
//                                 <-  DISPLAY_RESULTS
//   IPERF_DONE                    ->
//
// A refusal is ACCESS_DENIED (busy) or SERVER_ERROR followed by iperf3's error number and an errno
// (two big-endian int32); a zcperf server adds a JSON {"error": "..."} frame after them for a zcperf
// client. Between two zcperf ends, ZCPERF_ALIVE bytes go both ways once a second while the test
// runs, so either end notices a silent peer.
//
// parse_params() and parse_results() take bytes from the network and never throw, whatever the
// bytes: they return the message or why it is not one (a fuzzer drives them directly).
#pragma once

#include "results.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zcperf {

// iperf3's state bytes (iperf_api.h), and zcperf's two additions, which only zcperf peers see.
namespace state {
inline constexpr signed char test_start = 1, test_running = 2, test_end = 4, param_exchange = 9, create_streams = 10,
                             server_terminate = 11, client_terminate = 12, exchange_results = 13, display_results = 14,
                             iperf_done = 16, access_denied = -1, server_error = -2;
inline constexpr signed char zcperf_hello = 90;  // server -> zcperf client, before CREATE_STREAMS
inline constexpr signed char zcperf_alive = 91;  // zcperf <-> zcperf while the test runs
}  // namespace state

inline constexpr const char* zcperf_version = "0.2.0";
inline constexpr std::size_t cookie_size = 37;                // 36 characters and a NUL, as iperf3's
inline constexpr std::uint32_t udp_connect_msg = 0x36373839;  // host byte order, as iperf3 writes it
inline constexpr std::uint32_t udp_connect_reply = 0x39383736;
inline constexpr std::uint32_t legacy_udp_connect_reply = 987654321;
inline constexpr std::size_t max_params_json = 8 * 1024;  // iperf3 (master) limits it the same way
inline constexpr std::size_t max_results_json = 1u << 20;
inline constexpr int max_streams = 256;                        // per direction
inline constexpr std::uint64_t iperf3_udp_rate = 1024 * 1024;  // iperf3's UDP default, bits/s

// The iperf3 error numbers (i_errno) zcperf sends in a SERVER_ERROR, or may read in one.
namespace ie {
inline constexpr int duration = 5, num_streams = 6, block_size = 7, buf_size = 8, omit = 12, unimplemented = 13,
                     no_sctp = 18, udp_block_size = 20, recv_params = 114, access_denied = 121, auth = 142,
                     no_msg = 144, stream_listen = 202, stream_accept = 204;
}
// iperf3's text for an error number (iperf_error.c), for a refusal from a stock server.
std::string iperf_error_text(int i_errno);

// What both ends agree to run: iperf3's parameters and zcperf's extras.
struct TestParams {
    bool udp = false;
    int streams = 1;       // per direction
    double duration = 10;  // seconds; 0: until `bytes` or `blocks`
    std::size_t length = 128 * 1024;
    bool reverse = false;          // the server sends
    bool bidir = false;            // both send (iperf3 --bidir)
    std::uint64_t bitrate = 0;     // bits/s per stream; 0: unthrottled
    bool bitrate_default = false;  // no -b given: a zcperf peer runs UDP unthrottled, iperf3 at 1 Mbit/s
    std::uint64_t bytes = 0;       // -n: end after this many bytes (0: by time)
    std::uint64_t blocks = 0;      // -k: end after this many sends
    double omit = 0;               // -O: seconds not counted at the start
    bool nodelay = false;          // -N
    int window = 0;                // -w: SO_SNDBUF and SO_RCVBUF of the data sockets (0: kernel's)
    bool get_server_output = false;
    bool udp64 = false;  // 64-bit UDP sequence numbers
    // zcperf's extras (a stock iperf3 peer neither sends nor reads them)
    zcio::Strategy strategy = zcio::Strategy::automatic;
    // How the receiving end receives; unset: its own choice (the server's --recv, default auto).
    std::optional<zcio::RecvStrategy> recv;
    CompletionModel completion = CompletionModel::storage;
    std::uint16_t udp_gso = 0;
    bool verify = false;          // TCP: the payload is a stream-offset pattern the receiver checks
    std::size_t working_set = 0;  // the local sender's payload working set (--working-set; not sent)
    bool udp_header = true;       // UDP: iperf3's header in every datagram (the sink: no reader; not sent)
    int fanout = 0;               // --fanout: destinations per sending socket (send-only, sink; not sent)
    FileParams file;              // -F: the path is this end's; the strategies, verify and once are sent
    // Set by parse_params(): the params carried zcperf's extras (the client is zcperf).
    bool zcperf_peer = false;
    std::string client_version;        // what the client says it is (escaped)
    std::vector<std::string> ignored;  // iperf3 options this end does not apply (said in its output)

    double total_seconds() const noexcept { return duration + omit; }
};

// The limits a test must respect; the server re-checks what a client asks for.
// Returns empty when the parameters are acceptable, else what is wrong.
std::string check_params(const TestParams& p);

struct ParamsResult {
    std::optional<TestParams> params;
    std::string error;                   // why not, when params is empty
    int error_number = ie::recv_params;  // the iperf3 error number to refuse with
};
// The JSON of a params frame (without its length). Never throws.
ParamsResult parse_params(std::string_view json) noexcept;
std::string serialize_params(const TestParams& p);

// A results frame: one end's figures. From a stock iperf3 peer, `report.streams` lack the sender
// flag (the reader knows it from its own streams) and zcperf's figures.
struct PeerResults {
    SideReport report;
    bool zcperf = false;                       // the peer is zcperf: its zcio figures are in the report
    std::optional<std::string> server_output;  // --get-server-output: the server's text or JSON
    bool server_output_is_json = false;
};
struct ResultsParse {
    std::optional<PeerResults> results;
    std::string error;
};
ResultsParse parse_results(std::string_view json) noexcept;
std::string serialize_results(const PeerResults& r);

// zcperf's server hello (ZCPERF_HELLO): what a zcperf server tells a zcperf client.
struct ServerHello {
    std::string version;
    std::string recv;                   // the receive strategy it uses when the test does not say
    std::uint64_t file_once_bytes = 0;  // -R -F once: the server sends its file of this size, then ends
};
std::optional<ServerHello> parse_server_hello(std::string_view json) noexcept;
std::string serialize_server_hello(const ServerHello& h);

// The JSON error frame a zcperf server sends after SERVER_ERROR to a zcperf client.
std::string serialize_error(std::string_view message);
std::optional<std::string> parse_error(std::string_view json) noexcept;

// A string that came from the peer, safe to print: control characters, DEL and bytes that are not
// UTF-8 become \xNN; at most `limit` bytes of it. `keep_newlines`: multi-line text (server output).
std::string escape_peer_text(std::string_view s, std::size_t limit = 1024, bool keep_newlines = false);

// iperf3's stream numbering: 1, then 3, 4, 5, ... (iperf_add_stream), the same on both ends.
constexpr int stream_id(std::size_t index) noexcept { return index == 0 ? 1 : static_cast<int>(index) + 2; }

}  // namespace zcperf

#include <nlohmann/json_fwd.hpp>

namespace zcperf {
// The engine's counters as JSON (the `zcio` object of a stream), and back (missing keys stay 0).
nlohmann::json counters_to_json(const zcio::Counters& c);
// The receiving side's `zcio` receive object (strategy, bytes, syscalls, CPU, buffers, fallbacks).
nlohmann::json recv_report_to_json(const RecvReport& r);
}  // namespace zcperf
