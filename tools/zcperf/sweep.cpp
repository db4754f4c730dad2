#include "sweep.hpp"

#include "net.hpp"
#include "session.hpp"

#include <zcio/error.hpp>
#if __has_include(<zcio/sink_namespace.hpp>)
#include <zcio/sink_namespace.hpp>
#define ZCPERF_HAVE_SINK 1
#endif

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

namespace zcperf {

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double mib_per_s(const SweepCell& c) { return c.seconds > 0 ? static_cast<double>(c.bytes) / c.seconds / (1024.0 * 1024) : 0; }

SweepCell cell_from(const TestRecord& rec, const std::string& strategy, std::size_t size, int rep) {
    SweepCell c;
    c.strategy = strategy;
    c.size = size;
    c.rep = rep;
    const SideReport* snd = rec.sender_side();
    if (snd)
        for (const auto& s : snd->streams) {
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
        }
    if (const SideReport* rcv = rec.receiver_side()) c.received = rcv->bytes();
    auto errors = rec.stream_errors();
    if (!errors.empty()) c.error = errors.front();
    return c;
}

// Where the cells run.
class SweepTarget {
public:
    virtual ~SweepTarget() = default;
    virtual std::string name() const = 0;
    virtual TestRecord run(const TestParams& p) = 0;
};

class LoopbackTarget final : public SweepTarget {
public:
    explicit LoopbackTarget(int family) : server_(family) {}
    std::string name() const override { return "loopback"; }
    TestRecord run(const TestParams& p) override {
        return run_client_test(ClientSetup{server_.host(), server_.port(), 0, p, {}, "loopback"});
    }

private:
    LoopbackServer server_;
};

class RemoteTarget final : public SweepTarget {
public:
    RemoteTarget(std::string host, std::uint16_t port, int family) : host_(std::move(host)), port_(port), family_(family) {}
    std::string name() const override { return "remote " + host_; }
    TestRecord run(const TestParams& p) override { return run_client_test(ClientSetup{host_, port_, family_, p, {}, "remote"}); }

private:
    std::string host_;
    std::uint16_t port_;
    int family_;
};

#ifdef ZCPERF_HAVE_SINK
// UDP into the namespace sink: every packet crosses the whole transmit path and is dropped at the
// tx veth's qdisc, so nothing downstream copies the pages. Only these namespaces see the traffic.
class SinkTarget final : public SweepTarget {
public:
    SinkTarget() : sink_(make_options()) {}
    std::string name() const override { return "sink"; }
    TestRecord run(const TestParams& p) override {
        std::vector<zcio::UniqueFd> fds;
        for (int i = 0; i < p.streams; ++i) {
            zcio::UniqueFd fd = sink_.socket(zcio::SinkNamespace::tx, SOCK_DGRAM);
            sockaddr_in to = sink_.address(zcio::SinkNamespace::rx, 9);
            if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) != 0)
                throw Error("connect into the sink: " + zcio::errno_string(errno));
            fds.push_back(std::move(fd));
        }
        return run_send_only(fds, p, {}, "sink");
    }
    std::string describe() const {
        return fmt::format("{} -> {} (veth, MTU {}, pfifo limit 0)", sink_.address_string(zcio::SinkNamespace::tx),
                           sink_.address_string(zcio::SinkNamespace::rx), sink_.options().mtu);
    }

private:
    static zcio::SinkOptions make_options() {
        zcio::SinkOptions so;
        so.mtu = 65535;  // a 60000-byte datagram leaves unfragmented
        so.name_prefix = "zcperf";
        return so;
    }
    zcio::SinkNamespace sink_;
};
#endif

std::string sink_unavailable() {
#ifdef ZCPERF_HAVE_SINK
    if (auto why = zcio::SinkNamespace::unavailable_reason()) return *why;
    return {};
#else
    return "this zcperf was built without zcio::SinkNamespace";
#endif
}

void write_file(const std::string& path, const std::string& text) {
    std::ofstream f(path);
    f << text;
    f.flush();
    if (!f) throw Error(fmt::format("cannot write {}: {} (choose another directory with --out)", path, std::strerror(errno)));
}

std::string csv(const std::vector<SweepCell>& cells, const std::string& target, const TestParams& p) {
    std::string out =
        "target,protocol,completion,strategy,size,rep,seconds,bytes,received,mib_per_s,sends,sends_per_s,thread_cpu_s,cpu_s_per_gb,"
        "notifications,zero_copy,copied,not_reported,errors,error\n";
    for (const auto& c : cells) {
        const double gb = static_cast<double>(c.bytes) / 1e9;
        std::string err = c.error;
        std::replace(err.begin(), err.end(), '"', '\'');
        out += fmt::format("{},{},{},{},{},{},{:.4f},{},{},{:.2f},{},{:.0f},{:.4f},{:.4f},{},{},{},{},{},\"{}\"\n", target,
                           p.udp ? "udp" : "tcp", to_string(p.completion), c.strategy, c.size, c.rep, c.seconds, c.bytes, c.received,
                           mib_per_s(c), c.sends, c.seconds > 0 ? static_cast<double>(c.sends) / c.seconds : 0, c.thread_cpu,
                           gb > 0 ? c.thread_cpu / gb : 0, c.notifications, c.zero_copy, c.copied, c.not_reported, c.errors, err);
    }
    return out;
}

std::string plot_script(const std::vector<SweepRow>& rows, const std::vector<std::string>& strategies, const std::string& file,
                        const std::string& title) {
    const bool png = file.size() >= 4 && file.compare(file.size() - 4, 4, ".png") == 0;
    std::string s = png ? "set terminal pngcairo size 1000,620 enhanced font 'sans,11'\n"
                        : "set terminal svg size 1000,620 dynamic enhanced font 'sans,11' background rgb 'white'\n";
    std::string quoted = file;
    std::replace(quoted.begin(), quoted.end(), '\'', '_');
    s += fmt::format("set output '{}'\n", quoted);
    s += fmt::format("set title \"zcperf: {}\" noenhanced\n", title);
    s += "set logscale x\nset xlabel 'payload per send (bytes, log scale)'\nset ylabel 'throughput (MiB/s)'\n"
         "set key left top\nset grid\nset yrange [0:*]\nset pointsize 1.2\n";
    std::string plot = "plot ";
    int n = 0;
    for (const auto& st : strategies) {
        std::string block = fmt::format("$S{}", n);
        s += block + " << EOD\n";
        for (const auto& r : rows)
            if (r.strategy == st && r.runs > 0) s += fmt::format("{} {:.2f}\n", r.size, r.mib_per_s);
        s += "EOD\n";
        plot += fmt::format("{}{} using 1:2 with linespoints lw 2 title '{}'", n ? ", " : "", block, st);
        ++n;
    }
    return s + plot + "\n";
}

}  // namespace

std::vector<SweepRow> summarize(const std::vector<SweepCell>& cells, const std::vector<std::string>& strategies,
                                const std::vector<std::size_t>& sizes) {
    std::vector<SweepRow> rows;
    for (auto size : sizes)
        for (const auto& st : strategies) {
            SweepRow row;
            row.strategy = st;
            row.size = size;
            std::vector<double> mib, sps, cpu, zc, cp, nps, ratio, ratio_copy;
            for (const auto& c : cells) {
                if (c.size != size || c.strategy != st) continue;
                if (!c.error.empty() && c.bytes == 0) {
                    row.error = c.error;
                    continue;
                }
                ++row.runs;
                mib.push_back(mib_per_s(c));
                sps.push_back(c.seconds > 0 ? static_cast<double>(c.sends) / c.seconds : 0);
                const double gb = static_cast<double>(c.bytes) / 1e9;
                cpu.push_back(gb > 0 ? c.thread_cpu / gb : 0);
                const double rel = static_cast<double>(c.zero_copy + c.copied + c.not_reported);
                zc.push_back(rel > 0 ? static_cast<double>(c.zero_copy) / rel : 0);
                cp.push_back(rel > 0 ? static_cast<double>(c.copied) / rel : 0);
                nps.push_back(c.sends ? static_cast<double>(c.notifications) / static_cast<double>(c.sends) : 0);
                // Against the same repetition's baseline: measured moments apart, so drift cancels.
                for (const auto& b : cells) {
                    if (b.size != size || b.rep != c.rep || mib_per_s(b) <= 0) continue;
                    if (b.strategy == "plain") ratio.push_back(mib_per_s(c) / mib_per_s(b));
                    if (b.strategy == "copy") ratio_copy.push_back(mib_per_s(c) / mib_per_s(b));
                }
            }
            row.mib_per_s = median(mib);
            row.sends_per_s = median(sps);
            row.cpu_s_per_gb = median(cpu);
            row.zero_copy_share = median(zc);
            row.copied_share = median(cp);
            row.notifications_per_send = median(nps);
            row.ratio_to_plain = median(ratio);
            row.ratio_to_copy = median(ratio_copy);
            rows.push_back(std::move(row));
        }
    return rows;
}

std::string format_table(const std::vector<SweepRow>& rows, const std::string& title) {
    std::string out = title + "\n";
    out += fmt::format("{:>8}  {:<13} {:>10} {:>11} {:>10} {:>7} {:>7} {:>8} {:>9} {:>7}\n", "size", "strategy", "MiB/s", "sends/s",
                       "CPU s/GB", "zc %", "copy %", "ntf/send", "x plain", "x copy");
    std::size_t last = 0;
    for (const auto& r : rows) {
        if (r.size != last && last != 0) out += "\n";
        last = r.size;
        if (r.runs == 0) {
            out += fmt::format("{:>8}  {:<13} {}\n", r.size, r.strategy, r.error.empty() ? "not measured" : "failed: " + r.error);
            continue;
        }
        auto ratio = [](double x) { return x > 0 ? fmt::format("{:.2f}", x) : std::string("-"); };
        out += fmt::format("{:>8}  {:<13} {:>10.0f} {:>11.0f} {:>10.3f} {:>7.1f} {:>7.1f} {:>8.2f} {:>9} {:>7}\n", r.size, r.strategy, r.mib_per_s,
                           r.sends_per_s, r.cpu_s_per_gb, 100 * r.zero_copy_share, 100 * r.copied_share, r.notifications_per_send,
                           ratio(r.ratio_to_plain), ratio(r.ratio_to_copy));
    }
    return out;
}

namespace {

// One cell of the receive sweep: what the receiving side's zcio::Receiver reported.
struct RecvCell {
    std::string recv;
    std::size_t size = 0;
    int rep = 0;
    double seconds = 0;
    std::uint64_t bytes = 0, sent = 0, syscalls = 0;
    double cpu = 0;  // receiving thread
    std::string ran, fallback, error;
    double mb_per_s() const { return seconds > 0 ? static_cast<double>(bytes) / seconds / 1e6 : 0; }
    double cpu_per_gb() const { return bytes ? cpu / (static_cast<double>(bytes) / 1e9) : 0; }
    double syscalls_per_mb() const { return bytes ? static_cast<double>(syscalls) / (static_cast<double>(bytes) / 1e6) : 0; }
};

// Receive strategies side by side: the same sender (TCP, -P streams) into each receive strategy,
// interleaved over repetitions; per cell the receiver's MB/s, CPU per GB and syscalls per MB, and
// per repetition their ratio to `plain` (medians over repetitions).
int run_recv_sweep(Options o) {
    if (o.udp || o.target == Target::sink) {
        fmt::print(stderr, "zcperf: the receive sweep runs over TCP to a receiver: --target loopback or -c HOST\n");
        return 2;
    }
    std::vector<std::string> recvs;
    for (auto r : o.recv_sweep) recvs.push_back(std::string(zcio::to_string(r)));
    if (std::find(recvs.begin(), recvs.end(), "plain") == recvs.end()) recvs.insert(recvs.begin(), "plain");
    std::vector<std::size_t> sizes = o.sizes;
    if (sizes.empty()) sizes = o.parallel > 2 ? std::vector<std::size_t>{512, 4096} : std::vector<std::size_t>{16384, 65536, 131072};
    std::sort(sizes.begin(), sizes.end());
    sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
    const zcio::Strategy sender = o.strategies.empty() ? zcio::Strategy::copy : o.strategies.front();

    std::unique_ptr<SweepTarget> where;
    std::string where_text;
    try {
        if (!o.host.empty()) {
            where = std::make_unique<RemoteTarget>(o.host, o.port, o.family);
            where_text = fmt::format("TCP to {} port {}", o.host, o.port);
        } else {
            where = std::make_unique<LoopbackTarget>(o.family);
            where_text = "TCP over loopback (in-process server)";
        }
    } catch (const std::exception& e) {
        fmt::print(stderr, "zcperf: {}\n", e.what());
        return 1;
    }
    if (!o.json)
        fmt::print("zcperf receive sweep: {}, {} stream(s), sender {} (one thread per core), TCP_NODELAY\n"
                   "{} receive strategies x {} sizes x {} repetitions x {:.1f} s, interleaved\n",
                   where_text, o.parallel, zcio::to_string(sender), recvs.size(), sizes.size(), o.repeat, o.duration);
    std::fflush(stdout);

    std::vector<RecvCell> cells;
    for (int rep = 0; rep < o.repeat && !stop_requested().load(); ++rep)
        for (auto size : sizes) {
            std::vector<std::string> order = recvs;
            std::rotate(order.begin(), order.begin() + static_cast<long>(static_cast<std::size_t>(rep) % order.size()), order.end());
            if (rep % 2) std::reverse(order.begin(), order.end());
            for (const auto& r : order) {
                if (stop_requested().load()) break;
                TestParams p;
                p.streams = o.parallel;
                p.duration = o.duration;
                p.length = size;
                p.strategy = sender;
                p.completion = o.completion;
                p.recv = zcio::parse_recv_strategy(r);
                RecvCell c;
                c.recv = r;
                c.size = size;
                c.rep = rep;
                try {
                    TestRecord rec = where->run(p);
                    const SideReport* rcv = rec.receiver_side();
                    const SideReport* snd = rec.sender_side();
                    if (snd) c.sent = snd->bytes();
                    if (rcv) {
                        c.seconds = rcv->seconds();
                        c.bytes = rcv->bytes();
                        if (rcv->receive) {
                            c.syscalls = rcv->receive->counters.syscalls();
                            c.cpu = rcv->receive->thread_cpu_seconds;
                            c.ran = rcv->receive->strategy;
                            c.fallback = rcv->receive->fallback_reason;
                        }
                    }
                    auto errors = rec.stream_errors();
                    if (!errors.empty()) c.error = errors.front();
                    else if (c.bytes != c.sent) c.error = fmt::format("received {} of {} bytes", c.bytes, c.sent);
                } catch (const std::exception& e) {
                    c.error = e.what();
                }
                if (stop_requested().load()) break;
                if (o.progress)
                    fmt::print(stderr, "\r[rep {}] {} {} B: {}\033[K", rep + 1, r, size,
                               c.error.empty() ? fmt::format("{:.0f} MB/s", c.mb_per_s()) : std::string("failed"));
                cells.push_back(std::move(c));
            }
        }
    if (o.progress) fmt::print(stderr, "\r\033[K");
    where.reset();

    nlohmann::json j;
    j["description"] = where_text;
    j["streams"] = o.parallel;
    j["sender"] = zcio::to_string(sender);
    j["cell_seconds"] = o.duration;
    j["repeat"] = o.repeat;
    j["summary"] = nlohmann::json::array();
    std::string table = fmt::format("zcperf receive sweep: {}, {} stream(s), sender {} ({} s/cell, {} reps, medians; "
                                    "ratios: median of per-repetition ratios to plain; CPU = receiving thread)\n",
                                    where_text, o.parallel, zcio::to_string(sender), o.duration, o.repeat);
    table += fmt::format("{:>8}  {:<10} {:>9} {:>7} {:>9} {:>7} {:>11} {:>7}  {}\n", "size", "recv", "MB/s", "x plain", "CPU s/GB",
                         "x plain", "syscalls/MB", "x plain", "ran as");
    for (auto size : sizes) {
        for (const auto& r : recvs) {
            std::vector<double> mbps, cpu, sys, rm, rc, rs;
            std::string ran, fallback, error;
            for (const auto& c : cells) {
                if (c.size != size || c.recv != r) continue;
                if (!c.error.empty()) {
                    error = c.error;
                    continue;
                }
                ran = c.ran;
                fallback = c.fallback;
                mbps.push_back(c.mb_per_s());
                cpu.push_back(c.cpu_per_gb());
                sys.push_back(c.syscalls_per_mb());
                for (const auto& b : cells)
                    if (b.size == size && b.rep == c.rep && b.recv == "plain" && b.error.empty() && b.mb_per_s() > 0) {
                        rm.push_back(c.mb_per_s() / b.mb_per_s());
                        if (b.cpu_per_gb() > 0) rc.push_back(c.cpu_per_gb() / b.cpu_per_gb());
                        if (b.syscalls_per_mb() > 0) rs.push_back(c.syscalls_per_mb() / b.syscalls_per_mb());
                    }
            }
            auto ratio = [](const std::vector<double>& v) { return v.empty() ? std::string("-") : fmt::format("{:.2f}", median(v)); };
            if (mbps.empty()) {
                table += fmt::format("{:>8}  {:<10} failed: {}\n", size, r, error);
            } else {
                table += fmt::format("{:>8}  {:<10} {:>9.0f} {:>7} {:>9.3f} {:>7} {:>11.1f} {:>7}  {}\n", size, r, median(mbps), ratio(rm),
                                     median(cpu), ratio(rc), median(sys), ratio(rs), ran + (fallback.empty() ? "" : " (fell back)"));
            }
            j["summary"].push_back({{"recv", r}, {"size", size}, {"runs", mbps.size()}, {"mb_per_s", median(mbps)},
                                    {"cpu_s_per_gb", median(cpu)}, {"syscalls_per_mb", median(sys)},
                                    {"ratio_mb_per_s", rm.empty() ? 0.0 : median(rm)}, {"ratio_cpu_per_gb", rc.empty() ? 0.0 : median(rc)},
                                    {"ratio_syscalls_per_mb", rs.empty() ? 0.0 : median(rs)}, {"ran_as", ran},
                                    {"fallback_reason", fallback}, {"error", error}});
        }
        table += "\n";
    }
    j["cells"] = nlohmann::json::array();
    std::string csv_text = "recv,size,rep,seconds,bytes,sent,mb_per_s,receiver_cpu_s,cpu_s_per_gb,syscalls,syscalls_per_mb,ran_as,error\n";
    for (const auto& c : cells) {
        j["cells"].push_back({{"recv", c.recv}, {"size", c.size}, {"rep", c.rep}, {"seconds", c.seconds}, {"bytes", c.bytes},
                              {"sent", c.sent}, {"receiver_cpu_seconds", c.cpu}, {"syscalls", c.syscalls}, {"ran_as", c.ran},
                              {"fallback_reason", c.fallback}, {"error", c.error}});
        std::string err = c.error;
        std::replace(err.begin(), err.end(), '"', '\'');
        csv_text += fmt::format("{},{},{},{:.4f},{},{},{:.1f},{:.4f},{:.4f},{},{:.2f},{},\"{}\"\n", c.recv, c.size, c.rep, c.seconds, c.bytes,
                                c.sent, c.mb_per_s(), c.cpu, c.cpu_per_gb(), c.syscalls, c.syscalls_per_mb(), c.ran, err);
    }
    if (o.json) fmt::print("{}\n", j.dump(2));
    else fmt::print("\n{}", table);
    try {
        std::error_code ec;
        std::filesystem::create_directories(o.out_dir, ec);
        write_file(o.out_dir + "/zcperf-recv-sweep.csv", csv_text);
        write_file(o.out_dir + "/zcperf-recv-sweep.json", j.dump(2) + "\n");
        if (!o.json) fmt::print("wrote {0}/zcperf-recv-sweep.csv, {0}/zcperf-recv-sweep.json\n", o.out_dir);
    } catch (const Error& e) {
        fmt::print(stderr, "zcperf: {}\n", e.what());
        return 1;
    }
    return stop_requested().load() ? 130 : 0;
}

}  // namespace

int run_sweep(Options o) {
    if (!o.recv_sweep.empty()) return run_recv_sweep(std::move(o));
    // Where: -c HOST, --target, or the best local target this machine allows.
    Target target = o.target;
    if (!o.host.empty()) target = Target::remote;
    else if (!o.target_given) {
        std::string why = ::geteuid() == 0 ? sink_unavailable() : std::string("not root");
        target = why.empty() ? Target::sink : Target::loopback;
        if (!why.empty() && !o.json) fmt::print("sink target unavailable ({}): sweeping TCP over loopback\n", why);
    }
    if (target == Target::sink) o.udp = true;

    std::vector<std::string> strategies;
    if (o.strategies.empty())
        for (auto s : zcio::all_strategies) strategies.push_back(zcio::to_string(s));
    else
        for (auto s : o.strategies) strategies.push_back(zcio::to_string(s));
    if (std::find(strategies.begin(), strategies.end(), "plain") == strategies.end()) strategies.insert(strategies.begin(), "plain");

    std::vector<std::size_t> sizes = o.sizes;
    if (sizes.empty())
        sizes = o.udp ? std::vector<std::size_t>{1400, 4000, 16000, 60000} : std::vector<std::size_t>{1400, 4096, 16384, 65536};
    std::sort(sizes.begin(), sizes.end());
    sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
    const std::size_t max_len = o.udp ? 65507u : (64u << 20);
    for (auto s : sizes)
        if (s > max_len) {
            fmt::print(stderr, "zcperf: size {} is too large for {}\n", s, o.udp ? "UDP (65507 at most)" : "TCP (64 MiB at most)");
            return 2;
        }

    std::unique_ptr<SweepTarget> where;
    std::string where_text;
    try {
        switch (target) {
            case Target::remote:
                where = std::make_unique<RemoteTarget>(o.host, o.port, o.family);
                where_text = fmt::format("{} over the network to {} port {}", o.udp ? "UDP" : "TCP", o.host, o.port);
                break;
            case Target::loopback:
                where = std::make_unique<LoopbackTarget>(o.family);
                where_text = fmt::format("{} over loopback (in-process server)", o.udp ? "UDP" : "TCP");
                break;
            case Target::sink: {
#ifdef ZCPERF_HAVE_SINK
                if (auto why = sink_unavailable(); !why.empty()) throw Error("the sink target is unavailable: " + why);
                auto sink = std::make_unique<SinkTarget>();
                where_text = "UDP into the namespace sink " + sink->describe();
                where = std::move(sink);
#else
                throw Error("the sink target is unavailable: " + sink_unavailable());
#endif
                break;
            }
        }
    } catch (const zcio::SetupError& e) {
        fmt::print(stderr, "zcperf: {}\n", e.what());
        return 1;
    } catch (const Error& e) {
        fmt::print(stderr, "zcperf: {}\n", e.what());
        return 1;
    }

    TestParams base;
    base.udp = o.udp;
    base.streams = o.parallel;
    base.duration = o.duration;
    base.completion = o.completion;
    base.udp_gso = o.udp_gso;

    const std::size_t total = strategies.size() * sizes.size() * static_cast<std::size_t>(o.repeat);
    const bool progress = o.progress;
    if (!o.json)
        fmt::print("zcperf sweep: {}\n{} strategies x {} sizes x {} repetitions x {:.1f} s (about {:.0f} s), completion {}\n", where_text,
                   strategies.size(), sizes.size(), o.repeat, o.duration, static_cast<double>(total) * (o.duration + 0.05),
                   to_string(o.completion));
    std::fflush(stdout);

    std::vector<SweepCell> cells;
    const auto t0 = Clock::now();
    std::size_t done = 0;
    for (int rep = 0; rep < o.repeat && !stop_requested().load(); ++rep) {
        for (auto size : sizes) {
            // Rotate (and on odd repetitions reverse) the order so no strategy always goes first.
            std::vector<std::string> order = strategies;
            std::rotate(order.begin(), order.begin() + static_cast<long>(static_cast<std::size_t>(rep) % order.size()), order.end());
            if (rep % 2) std::reverse(order.begin(), order.end());
            for (const auto& st : order) {
                if (stop_requested().load()) break;
                TestParams p = base;
                p.length = size;
                p.strategy = *zcio::parse_strategy(st);
                if (p.udp_gso && size <= p.udp_gso) p.udp_gso = 0;  // nothing to segment
                SweepCell cell;
                cell.strategy = st;
                cell.size = size;
                cell.rep = rep;
                try {
                    cell = cell_from(where->run(p), st, size, rep);
                } catch (const zcio::SetupError& e) {
                    cell.error = e.what();
                } catch (const Error& e) {
                    cell.error = e.what();
                }
                if (stop_requested().load()) break;  // an interrupted cell measured a fraction: drop it
                cells.push_back(cell);
                ++done;
                if (progress) {
                    const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
                    fmt::print(stderr, "\r[{}/{}, {:.0f} s left] {} {} B: {}\033[K", done, total,
                               elapsed / static_cast<double>(done) * static_cast<double>(total - done), st, size,
                               cell.error.empty() ? fmt::format("{:.0f} MiB/s", mib_per_s(cell)) : std::string("failed"));
                    std::fflush(stderr);
                }
            }
        }
    }
    if (progress) fmt::print(stderr, "\r\033[K");
    const bool interrupted = stop_requested().load();
    where.reset();  // the sink's namespaces go now, before the files are written

    auto rows = summarize(cells, strategies, sizes);
    const std::string title = fmt::format("zcperf sweep: {} ({} s/cell, {} reps, median; MiB/s = 2^20 B/s; CPU = sending thread)",
                                          where_text, o.duration, o.repeat);
    const std::string target_name = target == Target::sink ? "sink" : target == Target::loopback ? "loopback" : "remote";

    nlohmann::json j;
    j["target"] = target_name;
    j["description"] = where_text;
    j["protocol"] = o.udp ? "udp" : "tcp";
    j["completion"] = to_string(o.completion);
    j["cell_seconds"] = o.duration;
    j["repeat"] = o.repeat;
    j["streams"] = o.parallel;
    j["udp_gso"] = o.udp_gso;
    j["interrupted"] = interrupted;
    j["summary"] = nlohmann::json::array();
    for (const auto& r : rows)
        j["summary"].push_back({{"strategy", r.strategy}, {"size", r.size}, {"runs", r.runs}, {"mib_per_s", r.mib_per_s},
                                {"sends_per_s", r.sends_per_s}, {"cpu_s_per_gb", r.cpu_s_per_gb}, {"zero_copy_share", r.zero_copy_share},
                                {"copied_share", r.copied_share}, {"notifications_per_send", r.notifications_per_send},
                                {"ratio_to_plain", r.ratio_to_plain}, {"ratio_to_copy", r.ratio_to_copy}, {"error", r.error}});
    j["cells"] = nlohmann::json::array();
    for (const auto& c : cells)
        j["cells"].push_back({{"strategy", c.strategy}, {"size", c.size}, {"rep", c.rep}, {"seconds", c.seconds}, {"bytes", c.bytes},
                              {"received", c.received}, {"sends", c.sends}, {"notifications", c.notifications}, {"zero_copy", c.zero_copy},
                              {"copied", c.copied}, {"not_reported", c.not_reported}, {"errors", c.errors},
                              {"thread_cpu_seconds", c.thread_cpu}, {"error", c.error}});

    int rc = interrupted ? 130 : 0;
    if (!o.json) {
        fmt::print("\n{}\n", format_table(rows, title));
        if (interrupted) fmt::print("interrupted: the table shows what was measured before Ctrl-C\n");
        std::fflush(stdout);
    }
    try {
        std::error_code ec;
        std::filesystem::create_directories(o.out_dir, ec);
        if (ec) throw Error(fmt::format("cannot create {}: {} (choose another directory with --out)", o.out_dir, ec.message()));
        const std::string base_path = o.out_dir + "/zcperf-sweep";
        write_file(base_path + ".csv", csv(cells, target_name, base));
        write_file(base_path + ".json", j.dump(2) + "\n");
        std::string plot = o.plot.empty() ? base_path + ".svg" : o.plot;
        std::string plotted;
        if (plot != "none") {
            std::FILE* gp = ::popen("gnuplot 2>&1", "w");
            if (!gp) {
                fmt::print(stderr, "zcperf: cannot run gnuplot; the plot is skipped (the CSV has the data)\n");
            } else {
                std::string script = plot_script(rows, strategies, plot, where_text);
                std::fwrite(script.data(), 1, script.size(), gp);
                int st = ::pclose(gp);
                if (st != 0) fmt::print(stderr, "zcperf: gnuplot failed (is it installed?); the plot is skipped\n");
                else plotted = plot;
            }
        }
        if (o.json) {
            fmt::print("{}\n", j.dump(2));
        } else {
            fmt::print("wrote {0}.csv, {0}.json{1}\n", base_path, plotted.empty() ? "" : ", " + plotted);
        }
    } catch (const Error& e) {
        fmt::print(stderr, "zcperf: {}\n", e.what());
        rc = 1;
    }
    for (const auto& r : rows)
        if (r.runs == 0 && !r.error.empty() && !o.json) fmt::print(stderr, "zcperf: {} at {} bytes failed: {}\n", r.strategy, r.size, r.error);
    return rc;
}

}  // namespace zcperf
