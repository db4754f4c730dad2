// The control connection: one TCP connection per test, carrying one JSON object per line.
//
// Like iperf3's control channel, it agrees on the test, says when to start, and exchanges results,
// so each end can report both ends' figures. The conversation (client left, server right):
//
//   hello {params, cookie}   ->                    the test to run
//                            <-  ready {udp_ports} or error {message}
//   (data connections: TCP to the same port with the cookie first; UDP to udp_ports, one "hello"
//    datagram each, so the server can connect() back)
//                            <-  start             every stream is connected; clocks start
//   the sender side sends `done` {its report} when its streams have finished; the receiver side
//   answers `results` {its report} once it has seen the end of every stream.
//
// parse_control_message() takes one line from the network and never throws, whatever the bytes:
// it returns the message or why the line is not one (a fuzzer drives it directly).
#pragma once

#include "results.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace zcperf {

inline constexpr int protocol_version = 1;
inline constexpr std::size_t max_control_line = 1u << 20;  // longer lines are rejected
inline constexpr std::size_t cookie_length = 36;          // as iperf3's

// What both ends agree to run.
struct TestParams {
    bool udp = false;
    int streams = 1;
    double duration = 10;
    std::size_t length = 128 * 1024;
    bool reverse = false;             // the server sends
    zcio::Strategy strategy = zcio::Strategy::automatic;
    // How the receiving end receives; unset: its own choice (the server's --recv, default auto).
    std::optional<zcio::RecvStrategy> recv;
    CompletionModel completion = CompletionModel::storage;
    std::uint16_t udp_gso = 0;
    bool verify = false;              // TCP: the payload is a stream-offset pattern the receiver checks
    std::size_t working_set = 0;      // the local sender's payload working set (--working-set; not sent)
};

struct Hello {
    int version = protocol_version;
    std::string cookie;
    TestParams params;
};
struct Ready {
    std::vector<std::uint16_t> udp_ports;  // one per stream for UDP; empty for TCP
};
struct Start {};
struct Done {
    SideReport report;  // the sender side's figures
};
struct Results {
    SideReport report;  // the receiver side's figures
};
struct Failure {
    std::string message;
};

using ControlMessage = std::variant<Hello, Ready, Start, Done, Results, Failure>;

struct ParseResult {
    std::optional<ControlMessage> message;
    std::string error;  // why not, when message is empty
};

// One line (without or with its trailing '\n'). Never throws.
ParseResult parse_control_message(std::string_view line) noexcept;
// One line, '\n'-terminated.
std::string serialize(const ControlMessage& message);

// The limits a test must respect; the server re-checks what a client asks for.
// Returns empty when the parameters are acceptable, else what is wrong.
std::string check_params(const TestParams& p);

}  // namespace zcperf

#include <nlohmann/json_fwd.hpp>

namespace zcperf {
// The engine's counters as JSON (the `zcio` object of a stream), and back (missing keys stay 0).
nlohmann::json counters_to_json(const zcio::Counters& c);
// The receiving side's `zcio` receive object (strategy, bytes, syscalls, CPU, buffers, fallbacks).
nlohmann::json recv_report_to_json(const RecvReport& r);
}  // namespace zcperf
