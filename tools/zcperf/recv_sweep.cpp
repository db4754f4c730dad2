#include "recv_sweep.hpp"

#include "session.hpp"
#include "sweep_output.hpp"
#include "sweep_targets.hpp"

#include <fmt/format.h>

#include <cstdio>

namespace zcperf {

namespace {

RecvCell run_cell(SweepTarget& where, const TestParams& base, const CellPlace& at) {
    RecvCell c;
    static_cast<CellPlace&>(c) = at;
    TestParams p = base;
    p.length = at.size;
    p.recv = zcio::parse_recv_strategy(at.name);
    try {
        const TestRecord rec = where.run(p);
        if (const SideReport* snd = rec.sender_side()) c.sent = snd->bytes();
        if (const SideReport* rcv = rec.receiver_side()) {
            c.seconds = rcv->seconds();
            c.bytes = rcv->bytes();
            if (rcv->receive) {
                c.syscalls = rcv->receive->counters.syscalls();
                c.cpu = rcv->receive->thread_cpu_seconds;
                c.ran = rcv->receive->strategy;
                c.fallback = rcv->receive->fallback_reason;
            }
        }
        const auto errors = rec.stream_errors();
        if (!errors.empty()) c.error = errors.front();
        else if (c.bytes != c.sent) c.error = fmt::format("received {} of {} bytes", c.bytes, c.sent);
    } catch (const std::exception& e) {
        c.error = e.what();
    }
    return c;
}

SweepGrid recv_grid(const Options& o) {
    SweepGrid g;
    for (auto r : o.recv_sweep) g.names.emplace_back(zcio::to_string(r));
    ensure_baseline(g.names, "plain");
    g.sizes = o.sizes;
    if (g.sizes.empty())
        g.sizes = o.parallel > 2 ? std::vector<std::size_t>{512, 4096} : std::vector<std::size_t>{16384, 65536, 131072};
    g.sizes = sorted_sizes(std::move(g.sizes));
    g.repeat = o.repeat;
    g.cell_seconds = o.duration;
    return g;
}

int write_outputs(const Options& o, const std::string& where, zcio::Strategy sender, const SweepGrid& grid,
                  const std::vector<RecvCell>& cells) {
    const auto rows = summarize(cells, grid);
    const std::string title = fmt::format(
        "zcperf receive sweep: {}, {} stream(s), sender {} ({} s/cell, {} reps, "
        "medians; ratios: median of per-repetition ratios to plain; "
        "CPU = receiving thread)",
        where, o.parallel, zcio::to_string(sender), o.duration, o.repeat);
    const nlohmann::json j = recv_json(where, o, sender, rows, cells);
    if (o.json) fmt::print("{}\n", j.dump(2));
    else fmt::print("\n{}", recv_table(rows, title));
    try {
        write_sweep_files(o.out_dir, {{o.out_dir + "/zcperf-recv-sweep.csv", recv_csv(cells)},
                                      {o.out_dir + "/zcperf-recv-sweep.json", j.dump(2) + "\n"}});
        if (!o.json) fmt::print("wrote {0}/zcperf-recv-sweep.csv, {0}/zcperf-recv-sweep.json\n", o.out_dir);
    } catch (const Error& e) {
        fmt::print(stderr, "zcperf: {}\n", e.what());
        return 1;
    }
    return stop_requested().load() ? 130 : 0;
}

}  // namespace

double RecvCell::mb_per_s() const noexcept { return seconds > 0 ? static_cast<double>(bytes) / seconds / 1e6 : 0; }
double RecvCell::cpu_per_gb() const noexcept { return bytes ? cpu / (static_cast<double>(bytes) / 1e9) : 0; }
double RecvCell::syscalls_per_mb() const noexcept {
    return bytes ? static_cast<double>(syscalls) / (static_cast<double>(bytes) / 1e6) : 0;
}
std::string RecvCell::progress_text() const {
    return error.empty() ? fmt::format("{:.0f} MB/s", mb_per_s()) : std::string("failed");
}

std::vector<RecvRow> summarize(const std::vector<RecvCell>& cells, const SweepGrid& grid) {
    auto rate = [](const RecvCell& c) { return c.mb_per_s(); };
    auto cpu = [](const RecvCell& c) { return c.cpu_per_gb(); };
    auto sys = [](const RecvCell& c) { return c.syscalls_per_mb(); };
    return rows_of<RecvRow>(grid, [&](const std::string& r, std::size_t size) {
        const auto t = tally(cells, r, size);
        RecvRow row;
        row.recv = r;
        row.size = size;
        row.runs = t.runs;
        row.error = t.error;
        if (t.last) {
            row.ran_as = t.last->ran;
            row.fallback_reason = t.last->fallback;
        }
        row.mb_per_s = median_of(cells, r, size, rate);
        row.cpu_s_per_gb = median_of(cells, r, size, cpu);
        row.syscalls_per_mb = median_of(cells, r, size, sys);
        row.ratio_mb_per_s = median_ratio(cells, r, size, "plain", rate);
        row.ratio_cpu_per_gb = median_ratio(cells, r, size, "plain", cpu);
        row.ratio_syscalls_per_mb = median_ratio(cells, r, size, "plain", sys);
        return row;
    });
}

int run_recv_sweep(const Options& o) {
    if (o.udp || o.target == Target::sink) {
        fmt::print(stderr, "zcperf: the receive sweep runs over TCP to a receiver: --target loopback or -c HOST\n");
        return 2;
    }
    const SweepGrid grid = recv_grid(o);
    const zcio::Strategy sender = o.strategies.empty() ? zcio::Strategy::copy : o.strategies.front();
    std::unique_ptr<SweepTarget> where;
    try {
        where = make_recv_target(o);
    } catch (const std::exception& e) {
        fmt::print(stderr, "zcperf: {}\n", e.what());
        return 1;
    }
    if (!o.json)
        fmt::print(
            "zcperf receive sweep: {}, {} stream(s), sender {} (one thread per core), TCP_NODELAY\n"
            "{} receive strategies x {} sizes x {} repetitions x {:.1f} s, interleaved\n",
            where->description(), o.parallel, zcio::to_string(sender), grid.names.size(), grid.sizes.size(), o.repeat,
            o.duration);
    std::fflush(stdout);
    TestParams base = client_params(o);
    base.strategy = sender;
    const auto cells =
        run_interleaved<RecvCell>(grid, o.progress, [&](const CellPlace& at) { return run_cell(*where, base, at); });
    const std::string description = where->description();
    where.reset();
    return write_outputs(o, description, sender, grid, cells);
}

}  // namespace zcperf
