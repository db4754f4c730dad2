#include "options.hpp"

#include "file_mode.hpp"
#include "file_transfer.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

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
    app.add_option("-b,--bitrate", f.bitrate, "Target bitrate per stream, bits/s with K/M/G (default: TCP unlimited; UDP\n"
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
    app.add_option("--rcv-timeout", o.rcv_timeout_ms, "Milliseconds of silence from the peer that end the test (default 4000)")
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

    bool server = false;
    std::string client, length, strategy, completion = "storage", target, sizes, recv;
    bool v4 = false, v6 = false, sweep = false, features = false, no_progress = false;

    app.add_flag("-s,--server", server, "Run as a server");
    app.add_option("-c,--client", client, "Run as a client, sending to HOST")->option_text("HOST");
    app.add_option("-p,--port", o.port, "Server port (default 5201; -s -p 0: any free port, printed)")->option_text("PORT");
    app.add_option("-t,--time", o.duration, "Seconds to send (default 10; in a sweep: per cell, default 0.4)")->option_text("SECONDS");
    app.add_option("-l,--length", length, "Bytes per send, K/M suffixes (default 128K TCP, 1460 UDP)")->option_text("BYTES");
    app.add_flag("-u,--udp", o.udp, "UDP instead of TCP (unthrottled)");
    app.add_option("-P,--parallel", o.parallel, "Parallel streams (1..256), multiplexed over at most one sending thread (ring + engine) per core")->option_text("N");
    app.add_flag("-R,--reverse", o.reverse, "Reverse: the server sends, the client receives");
    app.add_option("-i,--interval", o.interval, "Seconds between interval reports (0: none)")->option_text("SECONDS");
    app.add_flag("-4,--version4", v4, "IPv4 only");
    app.add_flag("-6,--version6", v6, "IPv6 only");
    app.add_flag("-J,--json", o.json, "Output JSON (iperf3's layout plus a `zcio` object per stream)");
    app.add_flag("-1,--one-off", o.one_off, "Server: serve one test, then exit");
    app.add_option("--strategy", strategy,
                   "plain|copy|msg-zerocopy|zc|zc-fixed|sendmsg-zc|auto (default auto);\n"
                   "with --sweep a comma list or `all` (default all)")
        ->option_text("NAME");
    app.add_option("--recv", recv,
                   "plain|multishot|bundle|zcrx|auto: how the receiving end receives (zcio::Receiver;\n"
                   "default auto); with --sweep a comma list or `all`: the receive sweep")
        ->option_text("NAME");
    app.add_option("--completion", completion, "two-step|storage|group: how the sender learns a buffer is free (default storage)")
        ->option_text("MODEL");
    app.add_flag("--verify", o.verify, "TCP: send a stream-offset pattern; the receiving end checks every byte");
    app.add_option("--gso", o.udp_gso, "UDP: segment each send into datagrams of this size (UDP_SEGMENT)")->option_text("BYTES");
    app.add_flag("--send-only", o.send_only, "Client: send to HOST:PORT without a server or control connection");
    app.add_flag("--sweep", sweep, "Strategies x payload sizes, side by side: table, CSV, JSON, plot");
    app.add_option("--target", target, "Local target without setup: loopback | sink (root; UDP into a netns sink)")->option_text("WHERE");
    app.add_option("--sizes", sizes, "Sweep payload sizes, comma-separated (default by target)")->option_text("LIST");
    app.add_option("--repeat", o.repeat, "Sweep repetitions, alternating strategies (default 3)")->option_text("N");
    app.add_option("--plot", o.plot, "Sweep: draw throughput vs size here (.svg or .png; `none`: no plot)")->option_text("FILE");
    app.add_option("--out", o.out_dir, "Sweep: directory for zcperf-sweep.{csv,json,svg} (default .)")->option_text("DIR");
    // Send buffers: zcperf-shape's block (payload_buffers.hpp says what each strategy's working set is).
    std::string working_set;
    app.add_option("--working-set", working_set,
                   "Bytes of send buffers every strategy cycles through, in order (K/M/G suffixes); default 0:\n"
                   "warm: plain and copy resend one buffer, as a send() loop or iperf3 does; zero-copy\n"
                   "strategies and auto cycle through the buffers they keep in flight (up to 8 MiB a stream)")
        ->option_text("BYTES");
    app.add_flag("--features", features, "Print what this kernel supports (zcio's probe) and exit");
    app.add_flag("--no-progress", no_progress, "No live progress line on stderr");
    Iperf3Flags iperf3_flags;
    add_iperf3_flags(app, o, iperf3_flags);
    FileFlags file_flags;
    add_file_flags(app, o, file_flags);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::ostringstream out, err;
        int rc = app.exit(e, out, err);
        std::string msg = err.str();
        while (!msg.empty() && msg.back() == '\n') msg.pop_back();
        // CLI11 prints "Run with --help ..." after the error; keep it on one line each.
        fmt::print(stderr, "zcperf: {}\n", msg.empty() ? std::string(e.what()) : msg);
        return rc == 0 ? 2 : 2;
    }

    o.duration_given = app.count("-t") > 0;
    o.interval_given = app.count("-i") > 0;
    o.target_given = app.count("--target") > 0;
    o.progress = !no_progress;
    if (v4 && v6) {
        fmt::print(stderr, "zcperf: -4 and -6 exclude each other\n");
        return 2;
    }
    o.family = v4 ? AF_INET : v6 ? AF_INET6 : AF_UNSPEC;

    auto usage = [](const std::string& msg) {
        fmt::print(stderr, "zcperf: {}\nRun with --help for more information.\n", msg);
        return 2;
    };
    if (server && !client.empty()) return usage("-s and -c exclude each other");
    if (features) o.mode = Mode::features;
    else if (server) o.mode = Mode::server;
    else if (sweep) o.mode = Mode::sweep;
    else if (!client.empty()) o.mode = Mode::client;
    else if (o.target_given) o.mode = Mode::sweep;
    else o.mode = Mode::sweep;
    o.host = client;

    if (!length.empty()) {
        auto v = parse_size(length);
        if (!v) return usage(fmt::format("-l {}: not a size (bytes, with an optional K, M or G)", length));
        if (*v == 0) return usage("-l must be at least 1 byte");
        o.length = *v;
    }
    if (!target.empty()) {
        if (target == "loopback") o.target = Target::loopback;
        else if (target == "sink") o.target = Target::sink;
        else return usage(fmt::format("--target {}: use loopback or sink", target));
    }
    if (!sizes.empty()) {
        std::stringstream ss(sizes);
        std::string item;
        while (std::getline(ss, item, ',')) {
            auto v = parse_size(item);
            if (!v || *v == 0) return usage(fmt::format("--sizes: \"{}\" is not a size", item));
            o.sizes.push_back(*v);
        }
    }
    if (!strategy.empty()) {
        if (strategy == "all") {
            o.strategies.assign(std::begin(zcio::all_strategies), std::end(zcio::all_strategies));
            if (o.mode != Mode::sweep) return usage("--strategy all needs --sweep");
        } else {
            std::stringstream ss(strategy);
            std::string item;
            while (std::getline(ss, item, ',')) {
                auto s = zcio::parse_strategy(item);
                if (!s) return usage(fmt::format("--strategy {}: unknown; use plain, copy, msg-zerocopy, zc, zc-fixed, sendmsg-zc, auto or all", item));
                o.strategies.push_back(*s);
            }
        }
    }
    if (!recv.empty()) {
        std::vector<zcio::RecvStrategy> list;
        if (recv == "all") {
            list = {zcio::RecvStrategy::plain, zcio::RecvStrategy::multishot, zcio::RecvStrategy::bundle, zcio::RecvStrategy::zcrx,
                    zcio::RecvStrategy::automatic};
        } else {
            std::stringstream ss(recv);
            std::string item;
            while (std::getline(ss, item, ',')) {
                auto r = zcio::parse_recv_strategy(item);
                if (!r) return usage(fmt::format("--recv {}: unknown; use plain, multishot, bundle, zcrx, auto (or all, with --sweep)", item));
                list.push_back(*r);
            }
        }
        if (o.mode == Mode::sweep) {
            o.recv_sweep = std::move(list);
        } else {
            if (list.size() != 1) return usage("several receive strategies need --sweep");
            o.recv = list.front();
        }
    }
    if (!working_set.empty()) {
        auto v = parse_size(working_set);
        if (!v || *v > (4ull << 30)) return usage(fmt::format("--working-set {}: a size up to 4G", working_set));
        o.working_set = *v;
    }
    auto c = parse_completion(completion);
    if (!c) return usage(fmt::format("--completion {}: use two-step, storage or group", completion));
    o.completion = *c;
    if (auto why = apply_iperf3_flags(app, o, iperf3_flags); !why.empty()) return usage(why);
    if (auto why = apply_file_flags(o, file_flags); !why.empty()) return usage(why);
    return -1;
}

namespace {

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
    if (o.udp) return "-F sends over TCP: iperf3's UDP header would overwrite the file's first bytes in every datagram "
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
    if (std::error_code ec; std::filesystem::is_directory(o.file, ec)) return "-F " + o.file + ": it is a directory: name a file";
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
    if (o.mode == Mode::server && (o.target_given || o.send_only)) return "-s serves; --target and --send-only are client options";
    if (o.mode == Mode::client && o.target_given) return "-c HOST and --target exclude each other (--target runs its own server or sink)";
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
        return fmt::format("--gso {}: a send of {} bytes would need more than 64 segments", o.udp_gso, o.effective_length());
    if (o.target == Target::sink && o.target_given && ::geteuid() != 0)
        return "--target sink needs root (it creates network namespaces); try --target loopback";
    if (o.json) o.progress = false;
    if (auto why = validate_iperf3_options(o); !why.empty()) return why;
    if (!::isatty(STDERR_FILENO)) o.progress = false;
    return {};
}

}  // namespace zcperf
