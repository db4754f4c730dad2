#include "report.hpp"

#include "receive_fallback.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace zcperf {

using nlohmann::json;

const SideReport* TestRecord::sender_side() const noexcept {
    auto has_sender = [](const SideReport& s) {
        return std::any_of(s.streams.begin(), s.streams.end(), [](const StreamReport& x) { return x.sender; });
    };
    if (has_sender(local)) return &local;
    if (has_remote && has_sender(remote)) return &remote;
    return nullptr;
}

const SideReport* TestRecord::receiver_side() const noexcept {
    const SideReport* s = sender_side();
    if (s == &local) return has_remote ? &remote : nullptr;
    return &local;
}

std::vector<std::string> TestRecord::stream_errors() const {
    std::vector<std::string> out;
    auto collect = [&](const SideReport& side, const char* who) {
        for (const auto& s : side.streams)
            if (!s.error.empty()) out.push_back(fmt::format("stream {} ({}): {}", s.id, who, s.error));
    };
    collect(local, server ? "server" : "client");
    if (has_remote) collect(remote, server ? "client" : "server");
    return out;
}

std::string format_bytes(double b) {
    if (b >= 1e9 * 1.024 * 1.024 * 1.024) return fmt::format("{:.2f} GBytes", b / (1024.0 * 1024 * 1024));
    if (b >= 1024.0 * 1024) return fmt::format("{:.1f} MBytes", b / (1024.0 * 1024));
    if (b >= 1024.0) return fmt::format("{:.1f} KBytes", b / 1024.0);
    return fmt::format("{:.0f} Bytes", b);
}

std::string format_bitrate(double bps) {
    if (bps >= 1e9) return fmt::format("{:.2f} Gbits/sec", bps / 1e9);
    if (bps >= 1e6) return fmt::format("{:.1f} Mbits/sec", bps / 1e6);
    if (bps >= 1e3) return fmt::format("{:.1f} Kbits/sec", bps / 1e3);
    return fmt::format("{:.0f} bits/sec", bps);
}

namespace {

double rate(std::uint64_t bytes, double seconds) { return seconds > 0 ? 8.0 * static_cast<double>(bytes) / seconds : 0; }

json stream_json(const StreamReport& s) {
    return json{{"socket", s.id},       {"start", 0},
                {"end", s.seconds},     {"seconds", s.seconds},
                {"bytes", s.bytes},     {"bits_per_second", rate(s.bytes, s.seconds)},
                {"sender", s.sender}};
}

json sum_json(const SideReport* side, bool sender) {
    std::uint64_t bytes = side ? side->bytes() : 0;
    double secs = side ? side->seconds() : 0;
    return json{{"start", 0}, {"end", secs}, {"seconds", secs}, {"bytes", bytes}, {"bits_per_second", rate(bytes, secs)}, {"sender", sender}};
}

const StreamReport* find_stream(const SideReport* side, int id) {
    if (!side) return nullptr;
    for (const auto& s : side->streams)
        if (s.id == id) return &s;
    return nullptr;
}

json zcio_json(const StreamReport& s) {
    json z = s.counters ? counters_to_json(*s.counters) : json::object();
    z["strategy"] = s.strategy;
    z["completion"] = s.completion;
    z["thread_cpu_seconds"] = s.thread_cpu_seconds;
    if (s.counters) {
        const auto& c = *s.counters;
        const double releases = static_cast<double>(c.zero_copy + c.copied + c.not_reported);
        z["releases"] = c.zero_copy + c.copied + c.not_reported;
        z["zero_copy_share"] = releases > 0 ? static_cast<double>(c.zero_copy) / releases : 0.0;
        z["copied_share"] = releases > 0 ? static_cast<double>(c.copied) / releases : 0.0;
        z["notifications_per_send"] = c.sends ? static_cast<double>(c.notifications) / static_cast<double>(c.sends) : 0.0;
    }
    if (!s.error.empty()) z["error"] = s.error;
    return z;
}

}  // namespace

json to_json(const TestRecord& r) {
    const auto& p = r.params;
    json connected = json::array();
    for (const auto& c : r.connected)
        connected.push_back({{"socket", c.id}, {"local_host", c.local_host}, {"local_port", c.local_port},
                             {"remote_host", c.remote_host}, {"remote_port", c.remote_port}});
    json start{{"connected", connected},
               {"version", "zcperf 0.1.0 (zcio)"},
               {"timestamp", {{"timesecs", static_cast<std::int64_t>(r.timestamp)}}},
               {"cookie", r.cookie},
               {"test_start",
                {{"protocol", p.udp ? "UDP" : "TCP"}, {"num_streams", p.streams}, {"blksize", p.length}, {"omit", 0},
                 {"duration", p.duration}, {"bytes", 0}, {"blocks", 0}, {"reverse", p.reverse ? 1 : 0}}}};
    if (!r.server && !r.host.empty()) start["connecting_to"] = {{"host", r.host}, {"port", r.port}};

    json intervals = json::array();
    for (const auto& iv : r.intervals) {
        json streams = json::array();
        std::uint64_t sum = 0;
        for (std::size_t i = 0; i < iv.bytes.size(); ++i) {
            sum += iv.bytes[i];
            streams.push_back({{"socket", static_cast<int>(i) + 1}, {"start", iv.start}, {"end", iv.end}, {"seconds", iv.end - iv.start},
                               {"bytes", iv.bytes[i]}, {"bits_per_second", rate(iv.bytes[i], iv.end - iv.start)}, {"sender", iv.sender}});
        }
        intervals.push_back({{"streams", streams},
                             {"sum", {{"start", iv.start}, {"end", iv.end}, {"seconds", iv.end - iv.start}, {"bytes", sum},
                                      {"bits_per_second", rate(sum, iv.end - iv.start)}, {"sender", iv.sender}}}});
    }

    const SideReport* snd = r.sender_side();
    const SideReport* rcv = r.receiver_side();
    json streams = json::array();
    for (int id = 1; id <= p.streams; ++id) {
        json e = json::object();
        const StreamReport* s = find_stream(snd, id);
        const StreamReport* q = find_stream(rcv, id);
        if (s) {
            e["sender"] = stream_json(*s);
            if (p.udp) e["udp"] = stream_json(*s);  // iperf3 names a UDP stream's figures "udp"
            e["zcio"] = zcio_json(*s);
        }
        if (q) {
            e["receiver"] = stream_json(*q);
            e["receiver"]["packets"] = q->packets;
        }
        streams.push_back(std::move(e));
    }

    const SideReport& remote = r.remote;
    json end{{"streams", streams},
             {"sum_sent", sum_json(snd, true)},
             {"sum_received", sum_json(rcv, false)},
             {"cpu_utilization_percent",
              {{"host_total", r.local.cpu.total}, {"host_user", r.local.cpu.user}, {"host_system", r.local.cpu.system},
               {"remote_total", remote.cpu.total}, {"remote_user", remote.cpu.user}, {"remote_system", remote.cpu.system}}}};
    if (p.udp) {
        const std::uint64_t sent = snd ? snd->bytes() : 0, got = rcv ? rcv->bytes() : 0;
        std::uint64_t packets = 0;
        if (rcv)
            for (const auto& s : rcv->streams) packets += s.packets;
        json sum = sum_json(rcv ? rcv : snd, rcv == nullptr);
        sum["packets"] = packets;
        sum["lost_bytes"] = sent > got ? sent - got : 0;
        sum["lost_percent"] = sent > 0 && rcv ? 100.0 * static_cast<double>(sent > got ? sent - got : 0) / static_cast<double>(sent) : 0.0;
        end["sum"] = std::move(sum);
    }

    // One stream's zcio view summed over streams, for a quick look.
    zcio::Counters total{};
    double thread_cpu = 0;
    if (snd)
        for (const auto& s : snd->streams) {
            thread_cpu += s.thread_cpu_seconds;
            if (!s.counters) continue;
            const auto& c = *s.counters;
            total.sends += c.sends; total.bytes += c.bytes; total.requests += c.requests;
            total.short_sends += c.short_sends; total.notifications += c.notifications;
            total.zero_copy += c.zero_copy; total.copied += c.copied; total.not_reported += c.not_reported;
            total.errors += c.errors; total.fallbacks += c.fallbacks; total.waits += c.waits; total.stray_cqes += c.stray_cqes;
            total.auto_to_copy += c.auto_to_copy; total.auto_to_zc += c.auto_to_zc;
            total.auto_probes += c.auto_probes; total.auto_small += c.auto_small;
            for (int i = 0; i < 7; ++i) total.by_strategy[i] += c.by_strategy[i];
        }
    json z = counters_to_json(total);
    z["strategy"] = zcio::to_string(p.strategy);
    z["completion"] = to_string(p.completion);
    z["target"] = r.target;
    z["sending_thread_cpu_seconds"] = thread_cpu;
    if (snd && snd->threads) z["sending_threads"] = snd->threads;
    if (snd && snd->process_threads) z["sending_process_threads"] = snd->process_threads;
    if (p.udp_gso) z["udp_gso"] = p.udp_gso;
    end["sum_zcio"] = std::move(z);
    // The receiving side's zcio::Receiver: strategy, every receive syscall, CPU, buffers, fallbacks.
    if (rcv && rcv->receive) end["zcio_receive"] = recv_report_to_json(*rcv->receive);

    json out{{"start", start}, {"intervals", intervals}, {"end", end}};
    auto errors = r.stream_errors();
    if (!r.error.empty()) out["error"] = r.error;
    else if (!errors.empty()) out["error"] = errors.front();
    return out;
}

void print_text_summary(const TestRecord& r, std::FILE* out) {
    const SideReport* snd = r.sender_side();
    const SideReport* rcv = r.receiver_side();
    fmt::print(out, "- - - - - - - - - - - - - - - - - - - - - - - - -\n");
    fmt::print(out, "[ ID] Interval           Transfer     Bitrate\n");
    auto line = [&](const StreamReport& s, const char* role) {
        fmt::print(out, "[{:3}]   0.00-{:<6.2f} sec  {:>12}  {:>16}  {}\n", s.id, s.seconds, format_bytes(static_cast<double>(s.bytes)),
                   format_bitrate(rate(s.bytes, s.seconds)), role);
    };
    auto sum_line = [&](const SideReport& side, const char* role) {
        fmt::print(out, "[SUM]   0.00-{:<6.2f} sec  {:>12}  {:>16}  {}\n", side.seconds(), format_bytes(static_cast<double>(side.bytes())),
                   format_bitrate(rate(side.bytes(), side.seconds())), role);
    };
    for (int id = 1; id <= r.params.streams; ++id) {
        if (const StreamReport* s = find_stream(snd, id)) line(*s, "sender");
        if (const StreamReport* s = find_stream(rcv, id)) line(*s, "receiver");
    }
    if (r.params.streams > 1) {
        if (snd) sum_line(*snd, "sender");
        if (rcv) sum_line(*rcv, "receiver");
    }
    if (snd)
        for (const auto& s : snd->streams) {
            if (!s.counters) continue;
            const auto& c = *s.counters;
            const double rel = static_cast<double>(c.zero_copy + c.copied + c.not_reported);
            fmt::print(out,
                       "zcio [{:3}] {} ({}): {} sends, {} requests, {} notifications; releases {:.1f}% zero-copy, {:.1f}% copied; "
                       "{} short, {} errors, {} fallbacks",
                       s.id, s.strategy, s.completion, c.sends, c.requests, c.notifications,
                       rel > 0 ? 100.0 * static_cast<double>(c.zero_copy) / rel : 0.0,
                       rel > 0 ? 100.0 * static_cast<double>(c.copied) / rel : 0.0, c.short_sends, c.errors, c.fallbacks);
            if (s.strategy == "auto")
                fmt::print(out, "; auto: {} small, {} to copy, {} to zc, {} probes", c.auto_small, c.auto_to_copy, c.auto_to_zc, c.auto_probes);
            fmt::print(out, "; sending thread {:.2f} s CPU\n", s.thread_cpu_seconds);
        }
    if (rcv && rcv->receive) {
        const auto& rr = *rcv->receive;
        const auto& c = rr.counters;
        const double mb = static_cast<double>(c.bytes) / 1e6;
        fmt::print(out,
                   "zcio receive ({}): {}; {} syscalls ({} io_uring_enter, {} epoll_wait, {} recv; {:.1f} per MB), "
                   "receiving thread {:.2f} s CPU; {} buffers recycled, {} re-arms, {} ring exhaustions\n",
                   rcv == &r.local ? "local" : "remote", rr.description, c.syscalls(), c.io_uring_enters, c.epoll_waits, c.recv_calls,
                   mb > 0 ? static_cast<double>(c.syscalls()) / mb : 0.0, rr.thread_cpu_seconds, c.buffers_recycled, c.rearms, c.exhaustions);
        if (auto fell_back = fallback_line(rr); !fell_back.empty()) fmt::print(out, "{}\n", fell_back);
    }
    const bool local_sends = snd == &r.local;
    fmt::print(out, "CPU Utilization: local/{} {:.1f}% ({:.1f}%u/{:.1f}%s)", local_sends ? "sender" : "receiver", r.local.cpu.total,
               r.local.cpu.user, r.local.cpu.system);
    if (r.has_remote)
        fmt::print(out, ", remote/{} {:.1f}% ({:.1f}%u/{:.1f}%s)", local_sends ? "receiver" : "sender", r.remote.cpu.total,
                   r.remote.cpu.user, r.remote.cpu.system);
    fmt::print(out, "\n");
    for (const auto& e : r.stream_errors()) fmt::print(out, "zcperf: {}\n", e);
    if (!r.error.empty()) fmt::print(out, "zcperf: {}\n", r.error);
}

}  // namespace zcperf
