// A finished test as iperf3 shows it: text for people, JSON (iperf3's layout) for programs, each
// with zcio's account of every send (strategy, notifications, zero-copy vs copied, auto's choices).
#pragma once

#include "control.hpp"
#include "results.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace zcperf {

struct IntervalRecord {
    double start = 0, end = 0;
    std::vector<std::uint64_t> bytes;  // per stream
    bool sender = false;
};

struct Connection {
    int id = 0;
    std::string local_host, remote_host;
    std::uint16_t local_port = 0, remote_port = 0;
};

struct TestRecord {
    bool server = false;
    std::string target = "remote";  // remote, loopback, sink, send-only
    TestParams params;
    std::string cookie;
    std::string host;  // what the client connected to
    std::uint16_t port = 0;
    double timestamp = 0;  // unix seconds when the test started
    std::vector<Connection> connected;
    std::vector<IntervalRecord> intervals;
    SideReport local;   // this end
    SideReport remote;  // the other end (empty when there is none: --send-only)
    bool has_remote = false;
    std::string error;                         // why the test failed, if it did
    bool peer_is_zcperf = true;                // false: a stock iperf3 peer (its zcio figures cannot be known)
    std::string peer_version;                  // what the peer says it is (escaped)
    std::vector<std::string> notes;            // what the user should know about this run (said once, in both outputs)
    std::optional<std::string> server_output;  // --get-server-output: the server's text or JSON
    bool server_output_is_json = false;

    const SideReport* sender_side() const noexcept;
    const SideReport* receiver_side() const noexcept;
    // Every stream error from both ends, "stream 2 (server): ...".
    std::vector<std::string> stream_errors() const;
};

nlohmann::json to_json(const TestRecord& r);
void print_text_summary(const TestRecord& r, std::FILE* out);

// Formatting shared with the interval lines and the sweep: "1.10 GBytes", "9.42 Gbits/sec".
std::string format_bytes(double bytes);
std::string format_bitrate(double bits_per_second);

}  // namespace zcperf
