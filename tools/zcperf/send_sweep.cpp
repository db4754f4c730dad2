#include "send_sweep.hpp"

#include "payload_buffers.hpp"
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

SendCell cell_from(CellPlace at, const std::vector<StreamReport>& sent) {
    SendCell c;
    static_cast<CellPlace&>(c) = std::move(at);
    for (const auto& s : sent) {
        c.seconds = std::max(c.seconds, s.seconds);
        c.bytes += s.bytes;
        c.thread_cpu += s.thread_cpu_seconds;
        if (s.counters) {
            c.sends += s.counters->sends;
            c.notifications += s.counters->notifications;
            c.zero_copy += s.counters->zero_copy;
            c.copied += s.counters->copied;
            c.not_reported += s.counters->not_reported;
            c.errors += s.counters->errors;
        }
        if (c.error.empty()) c.error = s.error;
    }
    return c;
}

SendCell run_cell(SweepTarget& where, const TestParams& base, const CellPlace& at) {
    TestParams p = base;
    p.length = at.size;
    if (p.udp_gso && at.size <= p.udp_gso) p.udp_gso = 0;  // nothing to segment
    try {
        if (at.name == send_loop_name) {
            if (auto r = where.run_send_loop(p)) return cell_from(at, {*r});
            throw Error("this target has no send() loop");
        }
        p.strategy = *zcio::parse_strategy(at.name);
        const TestRecord rec = where.run(p);
        const SideReport* snd = rec.sender_side();
        SendCell c = cell_from(at, snd ? snd->streams : std::vector<StreamReport>{});
        if (const SideReport* rcv = rec.receiver_side()) c.received = rcv->bytes();
        const auto errors = rec.stream_errors();
        c.error = errors.empty() ? std::string() : errors.front();
        return c;
    } catch (const zcio::SetupError& e) {
        SendCell c;
        static_cast<CellPlace&>(c) = at;
        c.error = e.what();
        return c;
    } catch (const Error& e) {
        SendCell c;
        static_cast<CellPlace&>(c) = at;
        c.error = e.what();
        return c;
    }
}

// The grid: the strategies asked for (all by default) with plain first for the ratios, and the
// send() loop where the target has one and the comparison is like for like (one stream, one
// peer, no GSO).
SweepGrid send_grid(const Options& o, bool with_loop) {
    SweepGrid g;
    if (o.strategies.empty())
        for (auto s : zcio::all_strategies) g.names.emplace_back(zcio::to_string(s));
    else
        for (auto s : o.strategies) g.names.emplace_back(zcio::to_string(s));
    ensure_baseline(g.names, "plain");
    if (with_loop && o.parallel == 1 && o.udp_gso == 0 && o.fanout == 0)
        g.names.insert(g.names.begin(), send_loop_name);
    g.sizes = o.sizes;
    if (g.sizes.empty())
        g.sizes = o.udp ? std::vector<std::size_t>{1400, 4000, 16000, 60000}
                        : std::vector<std::size_t>{1400, 4096, 16384, 65536};
    g.sizes = sorted_sizes(std::move(g.sizes));
    g.repeat = o.repeat;
    g.cell_seconds = o.duration;
    return g;
}

// "buffers: warm (...); at 60000 B, plain, copy and the send() loop: one 60000 B buffer, ...", or
// the working set every strategy cycles through: which mode ran, in the header and the title.
std::string buffers_line(const Options& o, std::size_t size, bool with_loop) {
    SendSpec spec;
    spec.length = size;
    spec.working_set = o.working_set;
    if (o.working_set > 0)
        return fmt::format("buffers: a {:.1f} MiB working set, every strategy alike; at {} B: {}",
                           static_cast<double>(o.working_set) / mib, size,
                           describe_working_set(zcio::Strategy::plain, spec));
    return fmt::format(
        "buffers: warm (no --working-set); at {} B, plain, copy{}: {}; zero-copy strategies and auto: {}", size,
        with_loop ? " and the send() loop" : "", describe_working_set(zcio::Strategy::plain, spec),
        describe_working_set(zcio::Strategy::zc_fixed, spec));
}

bool has_loop(const SweepGrid& grid) {
    return std::find(grid.names.begin(), grid.names.end(), send_loop_name) != grid.names.end();
}

// plain against the minimal send() loop, where the grid has it: "plain / send-loop: 1400 B 0.97x
// MiB/s, 1.02x CPU per GB; ..." (medians of per-repetition ratios).
std::string plain_vs_loop(const std::vector<SendCell>& cells, const SweepGrid& grid, nlohmann::json& j) {
    if (!has_loop(grid)) return {};
    std::string text = "plain / send-loop (medians of per-repetition ratios):";
    j["plain_vs_send_loop"] = nlohmann::json::array();
    for (std::size_t size : grid.sizes) {
        const double rate =
            median_ratio(cells, "plain", size, send_loop_name, [](const SendCell& c) { return c.mib_per_s(); });
        const double cpu =
            median_ratio(cells, "plain", size, send_loop_name, [](const SendCell& c) { return c.cpu_s_per_gb(); });
        text += fmt::format("{} {} B {:.2f}x MiB/s, {:.2f}x CPU per GB", size == grid.sizes.front() ? "" : ";", size,
                            rate, cpu);
        j["plain_vs_send_loop"].push_back({{"size", size}, {"ratio_mib_per_s", rate}, {"ratio_cpu_s_per_gb", cpu}});
    }
    return text + "\n";
}

// `where`: the target's name and description (the target itself is gone by now).
int write_outputs(const Options& o, const std::pair<std::string, std::string>& where, const SweepGrid& grid,
                  const std::vector<SendCell>& cells, bool interrupted) {
    const auto& [target, description] = where;
    const auto rows = summarize(cells, grid);
    const std::string buffers = buffers_line(o, grid.sizes.back(), has_loop(grid));
    const std::string title =
        fmt::format("zcperf sweep: {} ({} s/cell, {} reps, median; MiB/s = 2^20 B/s; CPU = sending thread)\n{}",
                    description, o.duration, o.repeat, buffers);
    const TestParams base = client_params(o);
    nlohmann::json j = send_json(target, description, base, o, buffers, interrupted, rows, cells);
    const std::string floor = plain_vs_loop(cells, grid, j);
    if (!o.json) {
        fmt::print("\n{}\n{}", send_table(rows, title), floor);
        if (interrupted) fmt::print("interrupted: the table shows what was measured before Ctrl-C\n");
        std::fflush(stdout);
    }
    int rc = interrupted ? 130 : 0;
    try {
        const std::string base_path = o.out_dir + "/zcperf-sweep";
        write_sweep_files(
            o.out_dir, {{base_path + ".csv", send_csv(cells, target, base)}, {base_path + ".json", j.dump(2) + "\n"}});
        const std::string plotted =
            draw_plot(o.plot.empty() ? base_path + ".svg" : o.plot, rows, grid.names, description);
        if (o.json) fmt::print("{}\n", j.dump(2));
        else fmt::print("wrote {0}.csv, {0}.json{1}\n", base_path, plotted.empty() ? "" : ", " + plotted);
    } catch (const Error& e) {
        fmt::print(stderr, "zcperf: {}\n", e.what());
        rc = 1;
    }
    for (const auto& r : rows)
        if (r.runs == 0 && !r.error.empty() && !o.json)
            fmt::print(stderr, "zcperf: {} at {} bytes failed: {}\n", r.strategy, r.size, r.error);
    return rc;
}

}  // namespace

double SendCell::mib_per_s() const noexcept { return seconds > 0 ? static_cast<double>(bytes) / seconds / mib : 0; }
double SendCell::sends_per_s() const noexcept { return seconds > 0 ? static_cast<double>(sends) / seconds : 0; }
double SendCell::cpu_s_per_gb() const noexcept {
    const double gb = static_cast<double>(bytes) / 1e9;
    return gb > 0 ? thread_cpu / gb : 0;
}
std::string SendCell::progress_text() const {
    return error.empty() ? fmt::format("{:.0f} MiB/s", mib_per_s()) : std::string("failed");
}

std::vector<SendRow> summarize(const std::vector<SendCell>& cells, const SweepGrid& grid) {
    auto share = [](std::uint64_t part, const SendCell& c) {
        const double rel = static_cast<double>(c.zero_copy + c.copied + c.not_reported);
        return rel > 0 ? static_cast<double>(part) / rel : 0;
    };
    auto rate = [](const SendCell& c) { return c.mib_per_s(); };
    return rows_of<SendRow>(grid, [&](const std::string& st, std::size_t size) {
        const auto t = tally(cells, st, size);
        SendRow row;
        row.strategy = st;
        row.size = size;
        row.runs = static_cast<int>(t.runs);
        row.error = t.error;
        row.mib_per_s = median_of(cells, st, size, rate);
        row.sends_per_s = median_of(cells, st, size, [](const SendCell& c) { return c.sends_per_s(); });
        row.cpu_s_per_gb = median_of(cells, st, size, [](const SendCell& c) { return c.cpu_s_per_gb(); });
        row.zero_copy_share = median_of(cells, st, size, [&](const SendCell& c) { return share(c.zero_copy, c); });
        row.copied_share = median_of(cells, st, size, [&](const SendCell& c) { return share(c.copied, c); });
        row.notifications_per_send = median_of(cells, st, size, [](const SendCell& c) {
            return c.sends ? static_cast<double>(c.notifications) / static_cast<double>(c.sends) : 0;
        });
        row.ratio_to_plain = median_ratio(cells, st, size, "plain", rate);
        row.ratio_to_copy = median_ratio(cells, st, size, "copy", rate);
        return row;
    });
}

int run_send_sweep(Options o) {
    std::unique_ptr<SweepTarget> where;
    try {
        where = make_send_target(o);     // sets o.udp for the sink
    } catch (const std::exception& e) {  // Error or zcio::SetupError: one line, no sweep
        fmt::print(stderr, "zcperf: {}\n", e.what());
        return 1;
    }
    const SweepGrid grid = send_grid(o, where->has_send_loop());
    const std::size_t max_len = o.udp ? 65507u : (64u << 20);
    for (auto s : grid.sizes)
        if (s > max_len) {
            fmt::print(stderr, "zcperf: size {} is too large for {}\n", s,
                       o.udp ? "UDP (65507 at most)" : "TCP (64 MiB at most)");
            return 2;
        }
    const std::size_t total = grid.names.size() * grid.sizes.size() * static_cast<std::size_t>(o.repeat);
    if (!o.json)
        fmt::print(
            "zcperf sweep: {}\n{} strategies x {} sizes x {} repetitions x {:.1f} s (about {:.0f} s), "
            "completion {}\n{}\n",
            where->description(), grid.names.size(), grid.sizes.size(), o.repeat, o.duration,
            static_cast<double>(total) * (o.duration + 0.05), to_string(o.completion),
            buffers_line(o, grid.sizes.back(), has_loop(grid)));
    std::fflush(stdout);
    const TestParams base = client_params(o);
    const auto cells =
        run_interleaved<SendCell>(grid, o.progress, [&](const CellPlace& at) { return run_cell(*where, base, at); });
    const bool interrupted = stop_requested().load();
    const std::pair<std::string, std::string> named{where->name(), where->description()};
    where.reset();  // the sink's namespaces go now, before the files are written
    return write_outputs(o, named, grid, cells, interrupted);
}

}  // namespace zcperf
