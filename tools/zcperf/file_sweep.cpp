#include "file_sweep.hpp"

#include "session.hpp"
#include "sweep_output.hpp"
#include "sweep_plot.hpp"
#include "sweep_targets.hpp"

#include <zcio/error.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>

namespace zcperf {

namespace {

constexpr double mib = 1024.0 * 1024;
constexpr const char* baseline = "sendfile";

FileCell run_cell(SweepTarget& where, const TestParams& base, const CellPlace& at) {
    FileCell c;
    static_cast<CellPlace&>(c) = at;
    TestParams p = base;
    p.length = at.size;
    p.file.send = zcio::parse_file_send_strategy(at.name);
    try {
        const TestRecord rec = where.run(p);
        if (const SideReport* rcv = rec.receiver_side()) c.received = rcv->bytes();
        const SideReport* snd = rec.sender_side();
        for (const StreamReport& s : snd ? snd->streams : std::vector<StreamReport>{}) {
            if (!s.sender || !s.file) continue;
            const FileReport& f = *s.file;
            c.seconds = s.seconds;
            c.thread_cpu = s.thread_cpu_seconds;
            c.bytes = s.bytes;
            c.bytes_read = f.bytes_read;
            c.read_requests = f.read_requests;
            c.syscalls = f.syscalls;
            c.sends = f.sends;
            c.zero_copy = f.zero_copy;
            c.copied = f.copied;
            c.direct = f.direct;
            c.used = f.used;
            c.why = f.why;
        }
        const auto errors = rec.stream_errors();
        if (!errors.empty()) c.error = errors.front();
        else if (c.bytes == 0) c.error = "nothing was sent";
    } catch (const std::exception& e) {  // Error, zcio::SetupError
        c.error = e.what();
    }
    return c;
}

SweepGrid file_grid(const Options& o) {
    SweepGrid g;
    if (o.file_send.empty())
        for (auto s : zcio::all_file_send_strategies) g.names.emplace_back(zcio::to_string(s));
    else
        for (auto s : o.file_send) g.names.emplace_back(zcio::to_string(s));
    ensure_baseline(g.names, baseline);
    g.sizes = o.sizes;
    // The sink: one datagram per chunk (61440 = 15 pages, below UDP's 65507); TCP: iperf3's 128 KiB.
    if (g.sizes.empty())
        g.sizes = o.udp ? std::vector<std::size_t>{16384, 61440} : std::vector<std::size_t>{65536, 131072};
    g.sizes = sorted_sizes(std::move(g.sizes));
    g.repeat = o.repeat;
    g.cell_seconds = o.duration;
    return g;
}

std::string ratio_text(double x) { return x > 0 ? fmt::format("{:.2f}", x) : std::string("-"); }

std::string file_csv(const std::vector<FileCell>& cells, const std::string& target) {
    std::string out =
        "target,strategy,size,rep,seconds,bytes,received,mib_per_s,thread_cpu_s,cpu_s_per_gb,syscalls,"
        "ops_per_mb,bytes_read,read_requests,zero_copy,copied,direct,used,error\n";
    for (const auto& c : cells) {
        std::string error = c.error;
        std::replace(error.begin(), error.end(), '"', '\'');
        out += fmt::format("{},{},{},{},{:.4f},{},{},{:.2f},{:.4f},{:.4f},{},{:.2f},{},{},{},{},{},{},\"{}\"\n", target,
                           c.name, c.size, c.rep, c.seconds, c.bytes, c.received, c.mib_per_s(), c.thread_cpu,
                           c.cpu_s_per_gb(), c.syscalls, c.ops_per_mb(), c.bytes_read, c.read_requests, c.zero_copy,
                           c.copied, c.direct ? 1 : 0, c.used, error);
    }
    return out;
}

nlohmann::json file_json(const Options& o, const std::pair<std::string, std::string>& where, bool interrupted,
                         const std::vector<FileRow>& rows, const std::vector<FileCell>& cells) {
    nlohmann::json j{{"target", where.first},     {"description", where.second}, {"file", o.file},
                     {"direct", o.direct},        {"cell_seconds", o.duration},  {"repeat", o.repeat},
                     {"interrupted", interrupted}};
    j["summary"] = nlohmann::json::array();
    for (const auto& r : rows)
        j["summary"].push_back({{"strategy", r.strategy},
                                {"size", r.size},
                                {"runs", r.runs},
                                {"mib_per_s", r.mib_per_s},
                                {"cpu_s_per_gb", r.cpu_s_per_gb},
                                {"ops_per_mb", r.ops_per_mb},
                                {"read_per_byte", r.read_per_byte},
                                {"zero_copy_share", r.zero_copy_share},
                                {"ratio_to_sendfile", r.ratio_to_sendfile},
                                {"ratio_to_read_send", r.ratio_to_read_send},
                                {"used", r.used},
                                {"why", r.why},
                                {"error", r.error}});
    j["cells"] = nlohmann::json::array();
    for (const auto& c : cells)
        j["cells"].push_back({{"strategy", c.name},
                              {"size", c.size},
                              {"rep", c.rep},
                              {"seconds", c.seconds},
                              {"bytes", c.bytes},
                              {"received", c.received},
                              {"thread_cpu_seconds", c.thread_cpu},
                              {"syscalls", c.syscalls},
                              {"bytes_read", c.bytes_read},
                              {"read_requests", c.read_requests},
                              {"zero_copy", c.zero_copy},
                              {"copied", c.copied},
                              {"used", c.used},
                              {"error", c.error}});
    return j;
}

// The send sweep's plot of MiB/s against size, one line per file strategy.
std::string plot(const Options& o, const std::string& base_path, const std::vector<FileRow>& rows,
                 const SweepGrid& grid, const std::string& title) {
    std::vector<SendRow> lines;
    for (const auto& r : rows) {
        SendRow s;
        s.strategy = r.strategy;
        s.size = r.size;
        s.runs = static_cast<int>(r.runs);
        s.mib_per_s = r.mib_per_s;
        lines.push_back(std::move(s));
    }
    return draw_plot(o.plot.empty() ? base_path + ".svg" : o.plot, lines, grid.names, title);
}

int write_outputs(const Options& o, const std::pair<std::string, std::string>& where, const SweepGrid& grid,
                  const std::vector<FileCell>& cells, bool interrupted) {
    const auto rows = summarize(cells, grid);
    const std::string title = fmt::format(
        "zcperf file sweep: {} from {}{} ({} s/cell, {} reps, median; MiB/s = 2^20 B/s; CPU = sending thread; "
        "ops/MB: syscalls + io_uring requests per MB; read/B: bytes read into memory per byte sent)",
        where.second, o.file, o.direct ? " (O_DIRECT)" : " (page cache)", o.duration, o.repeat);
    const nlohmann::json j = file_json(o, where, interrupted, rows, cells);
    if (!o.json) {
        fmt::print("\n{}", file_table(rows, title));
        if (interrupted) fmt::print("interrupted: the table shows what was measured before Ctrl-C\n");
        std::fflush(stdout);
    }
    try {
        const std::string base_path = o.out_dir + "/zcperf-file-sweep";
        write_sweep_files(
            o.out_dir, {{base_path + ".csv", file_csv(cells, where.first)}, {base_path + ".json", j.dump(2) + "\n"}});
        const std::string plotted = plot(o, base_path, rows, grid, "file -> " + where.second);
        if (o.json) fmt::print("{}\n", j.dump(2));
        else fmt::print("wrote {0}.csv, {0}.json{1}\n", base_path, plotted.empty() ? "" : ", " + plotted);
    } catch (const Error& e) {
        fmt::print(stderr, "zcperf: {}\n", e.what());
        return 1;
    }
    return interrupted ? 130 : 0;
}

}  // namespace

double FileCell::mib_per_s() const noexcept { return seconds > 0 ? static_cast<double>(bytes) / seconds / mib : 0; }
double FileCell::cpu_s_per_gb() const noexcept { return bytes ? thread_cpu / (static_cast<double>(bytes) / 1e9) : 0; }
double FileCell::ops_per_mb() const noexcept {
    const auto ops = static_cast<double>(syscalls + read_requests + sends);
    return bytes ? ops / (static_cast<double>(bytes) / 1e6) : 0;
}
double FileCell::read_per_byte() const noexcept {
    return bytes ? static_cast<double>(bytes_read) / static_cast<double>(bytes) : 0;
}
std::string FileCell::progress_text() const {
    return error.empty() ? fmt::format("{:.0f} MiB/s", mib_per_s()) : std::string("failed");
}

std::vector<FileRow> summarize(const std::vector<FileCell>& cells, const SweepGrid& grid) {
    auto rate = [](const FileCell& c) { return c.mib_per_s(); };
    return rows_of<FileRow>(grid, [&](const std::string& st, std::size_t size) {
        const auto t = tally(cells, st, size);
        FileRow row;
        row.strategy = st;
        row.size = size;
        row.runs = t.runs;
        row.error = t.error;
        if (t.last) row.used = t.last->used, row.why = t.last->why;
        row.mib_per_s = median_of(cells, st, size, rate);
        row.cpu_s_per_gb = median_of(cells, st, size, [](const FileCell& c) { return c.cpu_s_per_gb(); });
        row.ops_per_mb = median_of(cells, st, size, [](const FileCell& c) { return c.ops_per_mb(); });
        row.read_per_byte = median_of(cells, st, size, [](const FileCell& c) { return c.read_per_byte(); });
        row.zero_copy_share = median_of(cells, st, size, [](const FileCell& c) {
            const double rel = static_cast<double>(c.zero_copy + c.copied);
            return rel > 0 ? static_cast<double>(c.zero_copy) / rel : 0;
        });
        row.ratio_to_sendfile = median_ratio(cells, st, size, baseline, rate);
        row.ratio_to_read_send = median_ratio(cells, st, size, "read-send", rate);
        return row;
    });
}

std::string file_table(const std::vector<FileRow>& rows, const std::string& title) {
    std::string out = title + "\n";
    out += fmt::format("{:>8}  {:<10} {:>9} {:>9} {:>11} {:>7} {:>6} {:>10} {:>11}  {}\n", "size", "strategy", "MiB/s",
                       "CPU s/GB", "ops/MB", "read/B", "zc %", "x sendfile", "x read-send", "ran as");
    std::size_t last = 0;
    for (const auto& r : rows) {
        if (r.size != last && last != 0) out += "\n";
        last = r.size;
        if (r.runs == 0) {
            out += fmt::format("{:>8}  {:<10} failed: {}\n", r.size, r.strategy, r.error);
            continue;
        }
        out +=
            fmt::format("{:>8}  {:<10} {:>9.0f} {:>9.3f} {:>11.1f} {:>7.2f} {:>6.1f} {:>10} {:>11}  {}\n", r.size,
                        r.strategy, r.mib_per_s, r.cpu_s_per_gb, r.ops_per_mb, r.read_per_byte, 100 * r.zero_copy_share,
                        ratio_text(r.ratio_to_sendfile), ratio_text(r.ratio_to_read_send), r.used);
    }
    for (const auto& r : rows)  // auto's choice, once
        if (r.strategy == "auto" && !r.why.empty()) return out + fmt::format("auto: {}\n", r.why);
    return out;
}

int run_file_sweep(Options o) {
    std::unique_ptr<SweepTarget> where;
    try {
        where = make_send_target(o);  // sets o.udp for the sink
    } catch (const std::exception& e) {
        fmt::print(stderr, "zcperf: {}\n", e.what());
        return 1;
    }
    const SweepGrid grid = file_grid(o);
    for (auto s : grid.sizes)
        if (o.udp && s > 65507) {
            fmt::print(stderr,
                       "zcperf: size {}: the sink sends one UDP datagram per chunk, 65507 bytes at most (60K fits)\n",
                       s);
            return 2;
        }
    if (!o.json)
        fmt::print(
            "zcperf file sweep: {} from {}\n{} file strategies x {} sizes x {} repetitions x {:.1f} s, "
            "interleaved\n",
            where->description(), o.file, grid.names.size(), grid.sizes.size(), o.repeat, o.duration);
    std::fflush(stdout);
    const TestParams base = client_params(o);
    const auto cells =
        run_interleaved<FileCell>(grid, o.progress, [&](const CellPlace& at) { return run_cell(*where, base, at); });
    const bool interrupted = stop_requested().load();
    const std::pair<std::string, std::string> named{where->name(), where->description()};
    where.reset();
    return write_outputs(o, named, grid, cells, interrupted);
}

}  // namespace zcperf
