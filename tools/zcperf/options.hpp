// zcperf's command line: iperf3's options where the meaning is the same, plus the sweep.
//
//   Options o;
//   if (int rc = parse_command_line(argc, argv, o); rc >= 0) return rc;   // --help, or a usage error
//   if (auto why = validate(o); !why.empty()) { fmt::print(stderr, "zcperf: {}\n", why); return 2; }
#pragma once

#include "results.hpp"

#include <zcio/file_strategy.hpp>
#include <zcio/send_engine.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace zcperf {

enum class Mode { server, client, sweep, features };
enum class Target { remote, loopback, sink };

struct Options {
    Mode mode = Mode::sweep;  // no -s/-c: the default sweep on local targets
    std::string host;         // -c
    std::uint16_t port = 5201;
    double duration = 10;  // -t; in a sweep: seconds per cell
    bool duration_given = false;
    std::size_t length = 0;  // -l; 0: 128 KiB for TCP, 1460 for UDP (iperf3's defaults)
    bool udp = false;
    int parallel = 1;
    bool reverse = false;
    double interval = 0;  // -i; 0: no interval reports
    bool interval_given = false;
    int family = 0;  // AF_UNSPEC / AF_INET (-4) / AF_INET6 (-6)
    bool json = false;
    bool one_off = false;  // -1
    bool send_only = false;
    std::vector<zcio::Strategy> strategies;  // empty: auto (or all, in a sweep)
    CompletionModel completion = CompletionModel::storage;
    std::optional<zcio::RecvStrategy> recv;      // --recv (server: its default; client: asks the receiver)
    std::vector<zcio::RecvStrategy> recv_sweep;  // --sweep --recv LIST|all: the receive sweep
    std::uint16_t udp_gso = 0;
    // --fanout N: UDP --send-only or the sink; each stream's one unconnected socket sends round
    // robin to N destinations, the GSO size with each send (QUIC servers, media relays). 0: off.
    int fanout = 0;
    bool verify = false;  // --verify
    Target target = Target::remote;
    bool target_given = false;
    std::vector<std::size_t> sizes;  // sweep payload sizes
    int repeat = 3;                  // sweep repetitions
    std::string plot;                // --plot FILE ("" : default in a sweep, "none": no plot)
    std::string out_dir = ".";
    bool progress = true;  // the live line on stderr (also off when not a tty / --json)
    // Send buffers (payload_buffers.hpp): 0, warm: copying strategies resend one buffer, the
    // others cycle through what they keep in flight; BYTES: every strategy cycles through that much.
    std::size_t working_set = 0;
    // iperf3's options (one block: the protocol and the server's limits)
    std::uint64_t bitrate = 0;  // -b, bits/s per stream (0: unthrottled)
    bool bitrate_given = false;
    std::uint64_t bytes = 0;                     // -n
    std::uint64_t blocks = 0;                    // -k
    double omit = 0;                             // -O
    bool nodelay = false;                        // -N
    std::size_t window = 0;                      // -w
    bool bidir = false;                          // --bidir
    bool get_server_output = false;              // --get-server-output
    std::string logfile;                         // --logfile
    bool verbose = false;                        // -V
    long rcv_timeout_ms = 4000;                  // --rcv-timeout
    std::size_t server_max_memory = 256u << 20;  // --server-max-memory
    // -F (one block: file_transfer.hpp)
    std::string file;                                 // -F FILE
    bool direct = false;                              // --direct: read FILE with O_DIRECT
    std::vector<zcio::FileSendStrategy> file_send;    // --file-strategy, sending end (several: --sweep)
    std::optional<zcio::FileRecvStrategy> file_recv;  // --file-strategy, receiving end

    bool end_by_count() const noexcept { return bytes != 0 || blocks != 0; }

    std::size_t effective_length() const noexcept { return length ? length : (udp ? 1460 : 128 * 1024); }
};

// Returns -1 to go on, or the exit code (0 after --help/--version, 2 after a usage error, with
// the message printed).
int parse_command_line(int argc, char** argv, Options& out);

// Checks what CLI11 cannot (ranges that depend on other options, combinations). Empty when fine.
std::string validate(Options& o);

// "64K" -> 65536, "1M" -> 1048576, "1400" -> 1400 (iperf3's suffixes, binary). nullopt if bad.
std::optional<std::size_t> parse_size(const std::string& text);
// iperf3's -b: "100M" -> 100000000 bits/s (decimal suffixes K, M, G, T). nullopt if bad.
std::optional<std::uint64_t> parse_rate(const std::string& text);

}  // namespace zcperf
