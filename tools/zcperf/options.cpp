#include "options.hpp"

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include "file_mode.hpp"
#include "file_transfer.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <zcio/file.hpp>

#include <cctype>
#include <cmath>
#include <filesystem>
#include <sstream>

namespace zcperf {

std::optional<std::size_t> parse_size(const std::string& text) {
    if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0]))) return std::nullopt;
    std::size_t pos = 0;
    unsigned long long v = 0;
    try {
        v = std::stoull(text, &pos);
    } catch (...) {
        return std::nullopt;
    }
    std::string suffix = text.substr(pos);
    unsigned long long mult = 1;
    if (suffix.empty()) mult = 1;
    else if (suffix == "K" || suffix == "k" || suffix == "KiB") mult = 1ull << 10;
    else if (suffix == "M" || suffix == "m" || suffix == "MiB") mult = 1ull << 20;
    else if (suffix == "G" || suffix == "g" || suffix == "GiB") mult = 1ull << 30;
    else return std::nullopt;
    if (v > (1ull << 40) / mult) return std::nullopt;
    return static_cast<std::size_t>(v * mult);
}

std::optional<std::uint64_t> parse_rate(const std::string& text) {
    const std::string body = text.substr(0, text.find('/'));  // iperf3's "/burst" is not used
    if (body.empty() || !std::isdigit(static_cast<unsigned char>(body[0]))) return std::nullopt;
    std::size_t pos = 0;
    double v = 0;
    try {
        v = std::stod(body, &pos);
    } catch (...) {
        return std::nullopt;
    }
    const std::string suffix = body.substr(pos);
    double mult = 1;
    if (suffix == "k" || suffix == "K") mult = 1e3;
    else if (suffix == "m" || suffix == "M") mult = 1e6;
    else if (suffix == "g" || suffix == "G") mult = 1e9;
    else if (suffix == "t" || suffix == "T") mult = 1e12;
    else if (!suffix.empty()) return std::nullopt;
    if (!std::isfinite(v) || v < 0 || v * mult > 1e15) return std::nullopt;
    return static_cast<std::uint64_t>(v * mult);
}

namespace {

// iperf3's options that zcperf had not: their values, checked after parsing.
struct Iperf3Flags {
    std::string bitrate, bytes, blocks, window, server_max_memory;
    bool zerocopy = false;
};

void add_iperf3_flags(CLI::App& app, Options& o, Iperf3Flags& f) {
    app.add_option("-b,--bitrate", f.bitrate,
                   "Target bitrate per stream, bits/s with K/M/G (default: TCP unlimited; UDP\n"
                   "unthrottled against zcperf, iperf3's 1 Mbit/s against a stock iperf3 server)")
        ->option_text("RATE");
    app.add_option("-n,--bytes", f.bytes, "Bytes to send (K/M/G), instead of -t")->option_text("BYTES");
    app.add_option("-k,--blockcount", f.blocks, "Sends (blocks) to make, instead of -t")->option_text("N");
    app.add_option("-O,--omit", o.omit, "Seconds at the start not counted (TCP slow start)")->option_text("SECONDS");
    app.add_flag("-N,--no-delay", o.nodelay, "TCP_NODELAY on the data connections");
    app.add_option("-w,--window", f.window, "Socket buffer size of the data connections (K/M)")->option_text("BYTES");
    app.add_flag("--bidir", o.bidir, "Both ends send at once");
    app.add_flag("-Z,--zerocopy", f.zerocopy,
                 "Accepted for iperf3 scripts: zcperf always sends through io_uring; --strategy auto (the default)\n"
                 "picks zero-copy where it pays, --strategy zc-fixed forces it");
    app.add_flag("--get-server-output", o.get_server_output, "Show the server's own report of the test");
    app.add_option("--logfile", o.logfile, "Write the output to FILE instead of the terminal")->option_text("FILE");
    app.add_flag("-V,--verbose", o.verbose, "Say more: versions, the peer, what each end applied");
    app.add_option("--rcv-timeout", o.rcv_timeout_ms,
                   "Milliseconds of silence from the peer that end the test (default 4000)")
        ->option_text("MS");
    app.add_option("--server-max-memory", f.server_max_memory,
                   "Server: the most memory one test may make it allocate (K/M/G; default 256M)")
        ->option_text("BYTES");
}

// Empty, or the usage error.
std::string apply_iperf3_flags(const CLI::App& app, Options& o, const Iperf3Flags& f) {
    if (!f.bitrate.empty()) {
        auto v = parse_rate(f.bitrate);
        if (!v) return fmt::format("-b {}: not a rate (bits/s, with an optional K, M or G)", f.bitrate);
        o.bitrate = *v;
        o.bitrate_given = true;
    }
    auto size = [](const std::string& text, const char* flag, auto& out) -> std::string {
        if (text.empty()) return {};
        auto v = parse_size(text);
        if (!v) return fmt::format("{} {}: not a size (with an optional K, M or G)", flag, text);
        out = *v;
        return {};
    };
    for (auto why : {size(f.bytes, "-n", o.bytes), size(f.blocks, "-k", o.blocks), size(f.window, "-w", o.window),
                     size(f.server_max_memory, "--server-max-memory", o.server_max_memory)})
        if (!why.empty()) return why;
    if (app.count("-n") && o.bytes == 0) return "-n must be at least 1 byte";
    if (app.count("-k") && o.blocks == 0) return "-k must be at least 1 block";
    return {};
}

// What the command line said as text, before it is checked and applied to Options.
struct CommandLine {
    bool server = false, v4 = false, v6 = false, sweep = false, features = false, no_progress = false;
    std::string client, length, strategy, completion = "storage", target, sizes, recv, working_set;
    Iperf3Flags iperf3;
};

// iperf3's own options: the test and its streams.
void add_test_options(CLI::App& app, Options& o, CommandLine& c) {
    app.add_flag("-s,--server", c.server, "Run as a server");
    app.add_option("-c,--client", c.client, "Run as a client, sending to HOST")->option_text("HOST");
    app.add_option("-p,--port", o.port, "Server port (default 5201; -s -p 0: any free port, printed)")
        ->option_text("PORT");
    app.add_option("-t,--time", o.duration, "Seconds to send (default 10; in a sweep: per cell, default 0.4)")
        ->option_text("SECONDS");
    app.add_option("-l,--length", c.length, "Bytes per send, K/M suffixes (default 128K TCP, 1460 UDP)")
        ->option_text("BYTES");
    app.add_flag("-u,--udp", o.udp, "UDP instead of TCP (unthrottled)");
    app.add_option("-P,--parallel", o.parallel,
                   "Parallel streams (1..256), multiplexed over at most one sending thread (ring + engine) per core")
        ->option_text("N");
    app.add_flag("-R,--reverse", o.reverse, "Reverse: the server sends, the client receives");
    app.add_option("-i,--interval", o.interval, "Seconds between interval reports (0: none)")->option_text("SECONDS");
    app.add_flag("-4,--version4", c.v4, "IPv4 only");
    app.add_flag("-6,--version6", c.v6, "IPv6 only");
    app.add_flag("-J,--json", o.json, "Output JSON (iperf3's layout plus a `zcio` object per stream)");
    app.add_flag("-1,--one-off", o.one_off, "Server: serve one test, then exit");
}

// zcperf's own: how zcio sends and receives, send-only runs and the sweep.
void add_zcio_options(CLI::App& app, Options& o, CommandLine& c) {
    app.add_option("--strategy", c.strategy,
                   "plain|copy|msg-zerocopy|zc|zc-fixed|sendmsg-zc|auto (default auto);\n"
                   "with --sweep a comma list or `all` (default all)")
        ->option_text("NAME");
    app.add_option("--recv", c.recv,
                   "plain|multishot|bundle|zcrx|auto: how the receiving end receives (zcio::Receiver;\n"
                   "default auto); with --sweep a comma list or `all`: the receive sweep")
        ->option_text("NAME");
    app.add_option("--completion", c.completion,
                   "two-step|storage|group: how the sender learns a buffer is free (default storage)")
        ->option_text("MODEL");
    app.add_flag("--verify", o.verify, "TCP: send a stream-offset pattern; the receiving end checks every byte");
    app.add_option("--gso", o.udp_gso, "UDP: segment each send into datagrams of this size (UDP_SEGMENT)")
        ->option_text("BYTES");
    app.add_flag("--send-only", o.send_only, "Client: send to HOST:PORT without a server or control connection");
    app.add_option("--fanout", o.fanout,
                   "UDP --send-only or the sink: one unconnected socket per stream sends round robin to N\n"
                   "destinations (ports PORT..PORT+N-1 of HOST; of the sink's test host), --gso given with\n"
                   "every send: how QUIC servers and media relays send (1..1024)")
        ->option_text("N");
    app.add_flag("--sweep", c.sweep, "Strategies x payload sizes, side by side: table, CSV, JSON, plot");
    app.add_option("--target", c.target, "Local target without setup: loopback | sink (root; UDP into a netns sink)")
        ->option_text("WHERE");
    app.add_option("--sizes", c.sizes, "Sweep payload sizes, comma-separated (default by target)")->option_text("LIST");
    app.add_option("--repeat", o.repeat, "Sweep repetitions, alternating strategies (default 3)")->option_text("N");
    app.add_option("--plot", o.plot, "Sweep: draw throughput vs size here (.svg or .png; `none`: no plot)")
        ->option_text("FILE");
    app.add_option("--out", o.out_dir, "Sweep: directory for zcperf-sweep.{csv,json,svg} (default .)")
        ->option_text("DIR");
    // Send buffers: payload_buffers.hpp says what each strategy's working set is.
    app.add_option("--working-set", c.working_set,
                   "Bytes of send buffers every strategy cycles through, in order (K/M/G suffixes); default 0:\n"
                   "warm: plain and copy resend one buffer, as a send() loop or iperf3 does; zero-copy\n"
                   "strategies and auto cycle through the buffers they keep in flight (up to 8 MiB a stream)")
        ->option_text("BYTES");
    app.add_flag("--features", c.features, "Print what this kernel supports (zcio's probe) and exit");
    app.add_flag("--no-progress", c.no_progress, "No live progress line on stderr");
}

// CLI11's parse: -1 to go on, else the exit code (--help: 0; a parse error: 2, said in one line).
int parse(CLI::App& app, int argc, char** argv) {
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::ostringstream out, err;
        app.exit(e, out, err);
        std::string msg = err.str();
        while (!msg.empty() && msg.back() == '\n') msg.pop_back();
        // CLI11 prints "Run with --help ..." after the error; keep it on one line each.
        fmt::print(stderr, "zcperf: {}\n", msg.empty() ? std::string(e.what()) : msg);
        return 2;
    }
    return -1;
}

// Comma lists: each item through `parse_item`, which returns the usage error or empty.
template <typename ParseItem>
std::string for_each_item(const std::string& list, ParseItem parse_item) {
    std::stringstream ss(list);
    std::string item;
    while (std::getline(ss, item, ','))
        if (auto why = parse_item(item); !why.empty()) return why;
    return {};
}

std::string apply_strategies(const std::string& text, Options& o) {
    if (text.empty()) return {};
    if (text == "all") {
        o.strategies.assign(std::begin(zcio::all_strategies), std::end(zcio::all_strategies));
        return o.mode == Mode::sweep ? std::string() : "--strategy all needs --sweep";
    }
    return for_each_item(text, [&](const std::string& item) -> std::string {
        auto s = zcio::parse_strategy(item);
        if (!s)
            return fmt::format(
                "--strategy {}: unknown; use plain, copy, msg-zerocopy, zc, zc-fixed, sendmsg-zc, auto or all", item);
        o.strategies.push_back(*s);
        return {};
    });
}

std::string apply_recv(const std::string& text, Options& o) {
    if (text.empty()) return {};
    std::vector<zcio::RecvStrategy> list;
    if (text == "all") {
        list = {zcio::RecvStrategy::plain, zcio::RecvStrategy::multishot, zcio::RecvStrategy::bundle,
                zcio::RecvStrategy::zcrx, zcio::RecvStrategy::automatic};
    } else {
        auto why = for_each_item(text, [&](const std::string& item) -> std::string {
            auto r = zcio::parse_recv_strategy(item);
            if (!r)
                return fmt::format(
                    "--recv {}: unknown; use plain, multishot, bundle, zcrx, auto (or all, with --sweep)", item);
            list.push_back(*r);
            return {};
        });
        if (!why.empty()) return why;
    }
    if (o.mode == Mode::sweep) {
        o.recv_sweep = std::move(list);
        return {};
    }
    if (list.size() != 1) return "several receive strategies need --sweep";
    o.recv = list.front();
    return {};
}

// -l, --sizes, --working-set and --target: sizes and names from their text.
std::string apply_sizes_and_target(const CommandLine& c, Options& o) {
    if (!c.length.empty()) {
        auto v = parse_size(c.length);
        if (!v) return fmt::format("-l {}: not a size (bytes, with an optional K, M or G)", c.length);
        if (*v == 0) return "-l must be at least 1 byte";
        o.length = *v;
    }
    if (!c.target.empty()) {
        if (c.target == "loopback") o.target = Target::loopback;
        else if (c.target == "sink") o.target = Target::sink;
        else return fmt::format("--target {}: use loopback or sink", c.target);
    }
    auto why = for_each_item(c.sizes, [&](const std::string& item) -> std::string {
        auto v = parse_size(item);
        if (!v || *v == 0) return fmt::format("--sizes: \"{}\" is not a size", item);
        o.sizes.push_back(*v);
        return {};
    });
    if (!why.empty()) return why;
    if (!c.working_set.empty()) {
        auto v = parse_size(c.working_set);
        if (!v || *v > (4ull << 30)) return fmt::format("--working-set {}: a size up to 4G", c.working_set);
        o.working_set = *v;
    }
    return {};
}

Mode mode_of(const CommandLine& c) {
    if (c.features) return Mode::features;
    if (c.server) return Mode::server;
    if (!c.client.empty() && !c.sweep) return Mode::client;
    return Mode::sweep;  // --sweep, --target, or nothing at all: the default sweep
}

// Everything given as text, in the order the usage errors are told. Empty, or the usage error.
std::string apply(const CLI::App& app, const CommandLine& c, Options& o) {
    if (c.server && !c.client.empty()) return "-s and -c exclude each other";
    o.mode = mode_of(c);
    o.host = c.client;
    if (auto why = apply_sizes_and_target(c, o); !why.empty()) return why;
    if (auto why = apply_strategies(c.strategy, o); !why.empty()) return why;
    if (auto why = apply_recv(c.recv, o); !why.empty()) return why;
    if (app.count("--fanout") && (o.fanout < 1 || o.fanout > 1024))
        return fmt::format("--fanout {}: 1..1024 destinations", o.fanout);
    auto completion = parse_completion(c.completion);
    if (!completion) return fmt::format("--completion {}: use two-step, storage or group", c.completion);
    o.completion = *completion;
    return apply_iperf3_flags(app, o, c.iperf3);
}

// -F and its options, one block: what they mean is in file_mode.hpp and file_transfer.hpp.
struct FileFlags {
    std::string strategy;
};

void add_file_flags(CLI::App& app, Options& o, FileFlags& f) {
    app.add_option("-F,--file", o.file,
                   "iperf3's -F: the sending end sends FILE's bytes instead of a pattern (alone: once, the test ends\n"
                   "at EOF; with -t or -n: started over at EOF until the end); the receiving end writes what\n"
                   "arrives to FILE. TCP, one stream. With --sweep: the file sweep (--target sink or loopback)")
        ->option_text("FILE");
    app.add_option("--file-strategy", f.strategy,
                   "How -F moves the file. Sending end:\n"
                   "  sendfile   sendfile(2): page-cache pages into the socket, no copy; pick it for a cached file\n"
                   "  splice     file -> pipe -> socket: the same pages through a pipe (sendfile's older twin)\n"
                   "  read-send  pread(2) + send(2) from one buffer: two copies; the classic baseline\n"
                   "  read-zc    READ_FIXED into registered memory linked to SEND_ZC: one copy (none with\n"
                   "             --direct), none to the device; pick it with --direct or to see the bytes\n"
                   "  auto       (default) sendfile for a cached file, read-zc with --direct; says why\n"
                   "Receiving end (sent to a zcperf peer):\n"
                   "  recv-write recv(2) + write(2); the baseline\n"
                   "  splice     socket -> pipe -> file, no copy to user memory\n"
                   "  recv-write-fixed (default) receive into registered buffers, WRITE_FIXED from them\n"
                   "One per side (splice alone: both); with --sweep a comma list or `all` (send strategies)")
        ->option_text("NAME");
    app.add_flag("--direct", o.direct,
                 "-F: the sending end reads FILE with O_DIRECT (no page cache: the disk's own rate; tmpfs refuses it)");
}

std::string apply_file_flags(Options& o, const FileFlags& f) {
    if (f.strategy.empty()) return {};
    FileStrategyNames names;
    if (auto why = parse_file_strategies(f.strategy, o.mode == Mode::sweep, names); !why.empty()) return why;
    o.file_send = std::move(names.send);
    o.file_recv = names.recv;
    return {};
}

}  // namespace

int parse_command_line(int argc, char** argv, Options& o) {
    CLI::App app{
        "zcperf: does zero-copy send pay on this host, by how much, and why?\n"
        "Measures every zcio send strategy side by side. With no arguments: a short sweep on the local\n"
        "targets (the namespace sink as root, else loopback), a table, zcperf-sweep.{csv,json,svg}.\n"
        "iperf3's options where the meaning is the same: zcperf -s   |   zcperf -c HOST",
        "zcperf"};
    app.get_formatter()->column_width(30);
    CommandLine c;
    add_test_options(app, o, c);
    add_zcio_options(app, o, c);
    add_iperf3_flags(app, o, c.iperf3);
    FileFlags file_flags;
    add_file_flags(app, o, file_flags);
    if (int rc = parse(app, argc, argv); rc >= 0) return rc;

    o.duration_given = app.count("-t") > 0;
    o.interval_given = app.count("-i") > 0;
    o.target_given = app.count("--target") > 0;
    o.progress = !c.no_progress;
    if (c.v4 && c.v6) {
        fmt::print(stderr, "zcperf: -4 and -6 exclude each other\n");
        return 2;
    }
    o.family = c.v4 ? AF_INET : c.v6 ? AF_INET6 : AF_UNSPEC;
    if (auto why = apply(app, c, o); !why.empty()) {
        fmt::print(stderr, "zcperf: {}\nRun with --help for more information.\n", why);
        return 2;
    }
    if (auto why = apply_file_flags(o, file_flags); !why.empty()) {
        fmt::print(stderr, "zcperf: {}\nRun with --help for more information.\n", why);
        return 2;
    }
    return -1;
}

namespace {

// --fanout: many destinations from one socket exist only where zcperf alone sends: UDP --send-only
// and the sink. A zcperf or iperf3 server takes one peer per stream.
std::string validate_fanout(const Options& o) {
    if (o.fanout == 0) return {};
    if (o.reverse) return "--fanout and -R exclude each other: the local end sends to the destinations";
    if (o.mode == Mode::sweep) {
        if (!o.host.empty() || (o.target_given && o.target != Target::sink) || !o.recv_sweep.empty())
            return "--fanout in a sweep needs the sink target (--target sink, root): a server takes one peer "
                   "per stream";
        return {};
    }
    if (o.mode != Mode::client || !o.send_only)
        return "--fanout applies to UDP --send-only (-c HOST -u --send-only) or the sink target: a zcperf or "
               "iperf3 server takes one peer per stream";
    if (!o.udp) return "--fanout needs -u: one unconnected socket sends datagrams to many destinations";
    if (o.port + o.fanout - 1 > 65535)
        return fmt::format("--fanout {}: ports {}..{} pass 65535", o.fanout, o.port, o.port + o.fanout - 1);
    return {};
}

std::string validate_iperf3_options(const Options& o) {
    if (o.end_by_count() && o.duration_given) return "-t, -n and -k exclude each other (one end condition, as iperf3)";
    if (o.bytes && o.blocks) return "-n and -k exclude each other (one end condition, as iperf3)";
    if (o.bidir && o.reverse) return "--bidir and -R exclude each other";
    if (o.bidir && (o.mode != Mode::client || o.send_only)) return "--bidir needs -c HOST (and a server)";
    if (!(o.omit >= 0) || o.omit > 600) return fmt::format("-O {}: omit 0..600 seconds", o.omit);
    if (o.window > (512u << 20)) return fmt::format("-w {}: a socket buffer of at most 512 MiB", o.window);
    if (o.rcv_timeout_ms < 100 || o.rcv_timeout_ms > 86400000) return "--rcv-timeout: 100 ms .. 86400000 ms";
    if (o.server_max_memory < (16u << 20)) return "--server-max-memory: at least 16M";
    if (o.udp && o.mode != Mode::sweep && o.effective_length() < 16)
        return "-l: a UDP datagram carries iperf3's 16-byte header: at least 16 bytes";
    return {};
}

}  // namespace

// -F against the other options, and the file itself: a bad one is named before anything connects.
std::string validate_file_options(const Options& o) {
    if (o.file.empty()) {
        if (!o.file_send.empty() || o.file_recv) return "--file-strategy applies to -F FILE";
        if (o.direct) return "--direct applies to -F FILE";
        return {};
    }
    if (o.mode == Mode::sweep) {
        if (o.file_recv) return "the file sweep measures the sending end: name send strategies (or all)";
        std::uint64_t size = 0;
        return check_file_to_send(o.file, o.direct, size);
    }
    if (o.udp)
        return "-F sends over TCP: iperf3's UDP header would overwrite the file's first bytes in every datagram "
               "(--sweep --target sink sends the file's datagrams as they are)";
    if (o.parallel != 1 || o.bidir) return "-F moves one file one way over one stream: not with -P or --bidir";
    if (o.blocks) return "-k counts sends of -l bytes: with -F end the test with -n BYTES or -t";
    if (o.bitrate_given) return "-b paces pattern sends: -F sends as fast as the file and the network go";
    if (!o.strategies.empty()) return "--strategy picks how a pattern is sent: with -F use --file-strategy";
    if (o.working_set) return "--working-set applies to pattern sends, not to -F";
    if (o.direct && o.mode == Mode::client && o.reverse)
        return "--direct applies to reading the file you send: with -R this end writes it (through the page cache)";
    if (o.direct && o.length && o.length < zcio::File::direct_alignment)
        return "-l: with --direct each read is whole 4096-byte blocks: -l 4K or more";
    if (std::error_code ec; std::filesystem::is_directory(o.file, ec))
        return "-F " + o.file + ": it is a directory: name a file";
    if (o.mode == Mode::server) return {};  // the direction is the client's to say: checked per test
    std::uint64_t size = 0;
    return o.reverse ? check_file_to_write(o.file) : check_file_to_send(o.file, o.direct, size);
}

std::string validate(Options& o) {
    if (o.mode == Mode::features) return {};
    if (auto why = validate_file_options(o); !why.empty()) return why;
    if (o.duration_given && (!(o.duration > 0) || o.duration > 86400 || !std::isfinite(o.duration)))
        return fmt::format("-t {}: the time must be > 0 and at most 86400 seconds", o.duration);
    if (o.parallel < 1 || o.parallel > 256) return fmt::format("-P {}: streams must be 1..256", o.parallel);
    if (o.interval_given && o.interval != 0 && (!(o.interval >= 0.1) || o.interval > 86400))
        return fmt::format("-i {}: the interval must be 0 or 0.1..86400 seconds", o.interval);
    if (o.repeat < 1 || o.repeat > 100) return fmt::format("--repeat {}: must be 1..100", o.repeat);
    if (o.one_off && o.mode != Mode::server) return "-1 applies to the server (-s)";
    if (o.send_only && o.mode != Mode::client) return "--send-only needs -c HOST";
    if (o.send_only && o.reverse) return "--send-only and -R exclude each other: there is no server to send";
    if (o.mode == Mode::server && (o.target_given || o.send_only))
        return "-s serves; --target and --send-only are client options";
    if (o.mode == Mode::client && o.target_given)
        return "-c HOST and --target exclude each other (--target runs its own server or sink)";
    if (o.mode == Mode::client && o.port == 0) return "-p 0: the client needs the server's port";
    if (o.mode != Mode::sweep && o.strategies.size() > 1) return "several strategies need --sweep";

    if (o.mode == Mode::sweep) {
        if (o.reverse) return "-R does not apply to a sweep";
        if (o.target == Target::sink) {
            if (o.target_given && !o.udp && o.length) {}  // the sink is UDP; -u is implied
            o.udp = true;
        }
        if (!o.duration_given) o.duration = 0.4;
        if (o.length) o.sizes.push_back(o.length);
    }
    if (o.udp_gso && !o.udp && !(o.mode == Mode::sweep && (o.target == Target::sink || !o.target_given)))
        return "--gso applies to UDP (-u)";
    if (o.working_set && o.mode == Mode::server) return "--working-set applies to the sending client or a sweep";
    if (o.working_set && o.reverse) return "--working-set applies to the local sender (not with -R)";
    if (o.working_set && o.completion == CompletionModel::group)
        return "--working-set needs --completion storage or two-step (a group gives its buffers back itself)";
    if (o.verify && (o.mode != Mode::client || o.send_only || o.udp))
        return "--verify applies to a TCP test against a zcperf server (-c HOST, not -u or --send-only)";
    if (o.udp_gso > 65507) return fmt::format("--gso {}: a UDP segment carries 1..65507 bytes", o.udp_gso);

    const std::size_t max_len = o.udp ? 65507u : (64u << 20);
    auto check_len = [&](std::size_t len) -> std::string {
        if (len >= 1 && len <= max_len) return {};
        return o.udp ? fmt::format("-l {}: a UDP send carries 1..65507 bytes", len)
                     : fmt::format("-l {}: a TCP send carries 1..67108864 bytes (64 MiB)", len);
    };
    if (o.mode == Mode::sweep) {
        for (auto s : o.sizes)
            if (auto why = check_len(s); !why.empty()) return why;
    } else if (o.length) {
        if (auto why = check_len(o.length); !why.empty()) return why;
    }
    if (o.udp_gso && o.effective_length() > static_cast<std::size_t>(o.udp_gso) * 64 && o.mode != Mode::sweep)
        return fmt::format("--gso {}: a send of {} bytes would need more than 64 segments", o.udp_gso,
                           o.effective_length());
    if (o.target == Target::sink && o.target_given && ::geteuid() != 0)
        return "--target sink needs root (it creates network namespaces); try --target loopback";
    if (o.json) o.progress = false;
    if (auto why = validate_fanout(o); !why.empty()) return why;
    if (auto why = validate_iperf3_options(o); !why.empty()) return why;
    if (!::isatty(STDERR_FILENO)) o.progress = false;
    return {};
}

}  // namespace zcperf
