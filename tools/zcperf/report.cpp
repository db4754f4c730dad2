#include "report.hpp"

#include "file_mode.hpp"
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

double rate(std::uint64_t bytes, double seconds) {
    return seconds > 0 ? 8.0 * static_cast<double>(bytes) / seconds : 0;
}

json stream_json(const StreamReport& s) {
    return json{{"socket", s.id},       {"start", 0},       {"end", s.seconds},
                {"seconds", s.seconds}, {"bytes", s.bytes}, {"bits_per_second", rate(s.bytes, s.seconds)},
                {"sender", s.sender}};
}

// One stream's two halves: its sender's report and its receiver's, from whichever end has them.
struct StreamPair {
    int id = 0;
    const StreamReport* sent = nullptr;
    const StreamReport* received = nullptr;
    bool forward = true;  // the client sends it
};

std::vector<StreamPair> stream_pairs(const TestRecord& r) {
    std::vector<StreamPair> pairs;
    auto add = [&](const SideReport& side, bool local) {
        for (const auto& s : side.streams) {
            auto it = std::find_if(pairs.begin(), pairs.end(), [&](const StreamPair& p) { return p.id == s.id; });
            if (it == pairs.end()) it = pairs.insert(pairs.end(), StreamPair{s.id});
            (s.sender ? it->sent : it->received) = &s;
            if (s.sender) it->forward = local != r.server;  // the client's sending stream
        }
    };
    add(r.local, true);
    if (r.has_remote) add(r.remote, false);
    for (auto& p : pairs)
        if (!p.sent && p.received) p.forward = (p.received == nullptr) || r.server;  // a receiving-only record
    std::sort(pairs.begin(), pairs.end(), [](const StreamPair& a, const StreamPair& b) { return a.id < b.id; });
    return pairs;
}

struct Sum {
    std::uint64_t bytes = 0, packets = 0, lost = 0, out_of_order = 0;
    double seconds = 0, jitter = 0;
    int jitter_count = 0;
};

// iperf3's sum_sent / sum_received over the streams of one direction.
void sum_direction(const std::vector<StreamPair>& pairs, bool forward, bool both_ways, Sum& sent, Sum& received) {
    for (const auto& p : pairs) {
        if (both_ways && p.forward != forward) continue;
        if (p.sent) {
            sent.bytes += p.sent->bytes;
            sent.packets += p.sent->packets;
            sent.seconds = std::max(sent.seconds, p.sent->seconds);
        }
        if (p.received) {
            received.bytes += p.received->bytes;
            received.packets += p.received->packets;
            received.lost += p.received->lost;
            received.out_of_order += p.received->out_of_order;
            received.jitter += p.received->jitter;
            ++received.jitter_count;
            received.seconds = std::max(received.seconds, p.received->seconds);
        }
    }
}

json sum_json(const Sum& s, bool sender, bool udp, std::uint64_t sent_packets) {
    json j{{"start", 0},
           {"end", s.seconds},
           {"seconds", s.seconds},
           {"bytes", s.bytes},
           {"bits_per_second", rate(s.bytes, s.seconds)},
           {"sender", sender}};
    if (udp) {
        const std::uint64_t packets = sent_packets ? sent_packets : s.packets;
        j["jitter_ms"] = s.jitter_count ? 1000.0 * s.jitter / s.jitter_count : 0.0;
        j["lost_packets"] = sender ? 0 : s.lost;
        j["packets"] = packets;
        j["lost_percent"] =
            !sender && packets ? 100.0 * static_cast<double>(s.lost) / static_cast<double>(packets) : 0.0;
        if (!sender) j["out_of_order"] = s.out_of_order;
    }
    return j;
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
        z["notifications_per_send"] =
            c.sends ? static_cast<double>(c.notifications) / static_cast<double>(c.sends) : 0.0;
    }
    if (!s.error.empty()) z["error"] = s.error;
    return z;
}

json start_json(const TestRecord& r) {
    const auto& p = r.params;
    json connected = json::array();
    for (const auto& c : r.connected)
        connected.push_back({{"socket", c.id},
                             {"local_host", c.local_host},
                             {"local_port", c.local_port},
                             {"remote_host", c.remote_host},
                             {"remote_port", c.remote_port}});
    json start{{"connected", connected},
               {"version", "zcperf 0.1.0 (zcio)"},
               {"timestamp", {{"timesecs", static_cast<std::int64_t>(r.timestamp)}}},
               {"cookie", r.cookie.substr(0, r.cookie.find('\0'))},
               {"test_start",
                {{"protocol", p.udp ? "UDP" : "TCP"},
                 {"num_streams", p.streams},
                 {"blksize", p.length},
                 {"omit", p.omit},
                 {"duration", p.duration},
                 {"bytes", p.bytes},
                 {"blocks", p.blocks},
                 {"reverse", p.reverse ? 1 : 0},
                 {"bidir", p.bidir ? 1 : 0},
                 {"target_bitrate", p.bitrate}}}};
    if (!r.server && !r.host.empty()) start["connecting_to"] = {{"host", r.host}, {"port", r.port}};
    if (p.fanout) start["test_start"]["fanout"] = p.fanout;  // destinations per sending socket
    return start;
}

json interval_json(double start, double end, std::uint64_t bytes, bool sender) {
    return {{"start", start},
            {"end", end},
            {"seconds", end - start},
            {"bytes", bytes},
            {"bits_per_second", rate(bytes, end - start)},
            {"sender", sender}};
}

json intervals_json(const TestRecord& r) {
    json intervals = json::array();
    for (const auto& iv : r.intervals) {
        json streams = json::array();
        std::uint64_t sum = 0;
        for (std::size_t i = 0; i < iv.bytes.size(); ++i) {
            sum += iv.bytes[i];
            json stream = interval_json(iv.start, iv.end, iv.bytes[i], iv.sender);
            stream["socket"] = static_cast<int>(i) + 1;
            streams.push_back(std::move(stream));
        }
        intervals.push_back({{"streams", streams}, {"sum", interval_json(iv.start, iv.end, sum, iv.sender)}});
    }
    return intervals;
}

// One stream's entry of end.streams: its sender's and receiver's figures, zcio's account, and
// for UDP iperf3's "udp" object.
json stream_pair_json(const StreamPair& sp, bool udp) {
    json e = json::object();
    if (sp.sent) {
        e["sender"] = stream_json(*sp.sent);
        if (udp) e["sender"]["packets"] = sp.sent->packets;
        e["zcio"] = zcio_json(*sp.sent);
    }
    if (sp.received) {
        e["receiver"] = stream_json(*sp.received);
        e["receiver"]["packets"] = sp.received->packets;
    }
    if (udp && sp.received) {
        const StreamReport& got = *sp.received;
        Sum sum;
        sum.lost = got.lost, sum.jitter = got.jitter, sum.jitter_count = 1, sum.out_of_order = got.out_of_order;
        sum.bytes = got.bytes, sum.seconds = got.seconds;
        e["udp"] = sum_json(sum, false, true, sp.sent ? sp.sent->packets : got.packets);
    }
    return e;
}

// One stream's zcio view summed over the sending streams, for a quick look.
json sum_zcio_json(const TestRecord& r) {
    const auto& p = r.params;
    const SideReport* snd = r.sender_side();
    zcio::Counters total{};
    double thread_cpu = 0;
    if (snd)
        for (const auto& s : snd->streams) {
            if (!s.sender) continue;
            thread_cpu += s.thread_cpu_seconds;
            if (s.counters) total += *s.counters;
        }
    json z = counters_to_json(total);
    z["strategy"] = zcio::to_string(p.strategy);
    z["completion"] = to_string(p.completion);
    z["target"] = r.target;
    z["sending_thread_cpu_seconds"] = thread_cpu;
    if (snd && snd->threads) z["sending_threads"] = snd->threads;
    if (snd && snd->process_threads) z["sending_process_threads"] = snd->process_threads;
    if (p.udp_gso) z["udp_gso"] = p.udp_gso;
    if (p.fanout) z["destinations"] = p.fanout;  // per stream, round robin; the GSO size with each send
    z["peer"] = r.peer_is_zcperf ? "zcperf" : "iperf3";
    if (!r.peer_version.empty()) z["peer_version"] = r.peer_version;
    z["local_only"] = !r.peer_is_zcperf && r.target != "send-only";
    if (json file = file_summary_json(r); !file.is_null()) z["file"] = std::move(file);
    return z;
}

json cpu_json(const TestRecord& r) {
    const CpuUsage& local = r.local.cpu;
    const CpuUsage& remote = r.remote.cpu;
    return {{"host_total", local.total},    {"host_user", local.user},    {"host_system", local.system},
            {"remote_total", remote.total}, {"remote_user", remote.user}, {"remote_system", remote.system}};
}

json end_json(const TestRecord& r) {
    const auto& p = r.params;
    const std::vector<StreamPair> pairs = stream_pairs(r);
    json streams = json::array();
    for (const auto& sp : pairs) streams.push_back(stream_pair_json(sp, p.udp));
    Sum sent, received;
    sum_direction(pairs, true, p.bidir, sent, received);
    json end{{"streams", streams},
             {"sum_sent", sum_json(sent, true, p.udp, 0)},
             {"sum_received", sum_json(received, false, p.udp, sent.packets)},
             {"cpu_utilization_percent", cpu_json(r)}};
    if (p.bidir) {
        Sum rsent, rreceived;
        sum_direction(pairs, false, true, rsent, rreceived);
        end["sum_sent_bidir_reverse"] = sum_json(rsent, true, p.udp, 0);
        end["sum_received_bidir_reverse"] = sum_json(rreceived, false, p.udp, rsent.packets);
    }
    if (p.udp) end["sum"] = sum_json(received, false, true, sent.packets);
    end["sum_zcio"] = sum_zcio_json(r);
    // The receiving side's zcio::Receiver: strategy, every receive syscall, CPU, buffers, fallbacks.
    const SideReport* rcv = r.receiver_side();
    if (rcv && rcv->receive) end["zcio_receive"] = recv_report_to_json(*rcv->receive);
    return end;
}

}  // namespace

json to_json(const TestRecord& r) {
    json out{{"start", start_json(r)}, {"intervals", intervals_json(r)}, {"end", end_json(r)}};
    if (!r.notes.empty()) out["notes"] = r.notes;
    if (r.server_output) {
        json o = r.server_output_is_json ? json::parse(*r.server_output, nullptr, false) : json();
        if (r.server_output_is_json && !o.is_discarded()) out["server_output_json"] = std::move(o);
        else out["server_output_text"] = *r.server_output;
    }
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
        fmt::print(out, "[{:3}]   0.00-{:<6.2f} sec  {:>12}  {:>16}", s.id, s.seconds,
                   format_bytes(static_cast<double>(s.bytes)), format_bitrate(rate(s.bytes, s.seconds)));
        if (r.params.udp && !s.sender)
            fmt::print(out, "  {:.3f} ms  {}/{} ({:.2g}%)", s.jitter * 1000, s.lost, s.packets,
                       s.packets ? 100.0 * static_cast<double>(s.lost) / static_cast<double>(s.packets) : 0.0);
        fmt::print(out, "  {}\n", role);
    };
    auto sum_line = [&](const Sum& sum, const char* role) {
        fmt::print(out, "[SUM]   0.00-{:<6.2f} sec  {:>12}  {:>16}  {}\n", sum.seconds,
                   format_bytes(static_cast<double>(sum.bytes)), format_bitrate(rate(sum.bytes, sum.seconds)), role);
    };
    const std::vector<StreamPair> pairs = stream_pairs(r);
    for (const auto& sp : pairs) {
        if (sp.sent) line(*sp.sent, "sender");
        if (sp.received) line(*sp.received, "receiver");
    }
    if (pairs.size() > 1)
        for (bool forward : {true, false}) {
            if (!forward && !r.params.bidir) break;
            Sum sent, received;
            sum_direction(pairs, forward, r.params.bidir, sent, received);
            sum_line(sent, "sender");
            sum_line(received, "receiver");
        }
    if (snd)
        for (const auto& s : snd->streams) {
            if (!s.counters) continue;
            const auto& c = *s.counters;
            const double rel = static_cast<double>(c.zero_copy + c.copied + c.not_reported);
            fmt::print(out,
                       "zcio [{:3}] {} ({}): {} sends, {} requests, {} notifications; releases {:.1f}% zero-copy, "
                       "{:.1f}% copied; "
                       "{} short, {} errors, {} fallbacks",
                       s.id, s.strategy, s.completion, c.sends, c.requests, c.notifications,
                       rel > 0 ? 100.0 * static_cast<double>(c.zero_copy) / rel : 0.0,
                       rel > 0 ? 100.0 * static_cast<double>(c.copied) / rel : 0.0, c.short_sends, c.errors,
                       c.fallbacks);
            if (s.strategy == "auto")
                fmt::print(out, "; auto: {} small, {} measured ({} kept zero-copy, {} to copy, {} back to zc)",
                           c.auto_small, c.auto_probes, c.auto_kept_zc, c.auto_to_copy, c.auto_to_zc);
            fmt::print(out, "; sending thread {:.2f} s CPU\n", s.thread_cpu_seconds);
        }
    if (r.params.fanout)
        fmt::print(out, "zcio: each stream sent round robin to {} destinations from one unconnected socket{}\n",
                   r.params.fanout,
                   r.params.udp_gso ? fmt::format(", GSO {} B given with every send", r.params.udp_gso) : "");
    if (rcv && rcv->receive) {
        const auto& rr = *rcv->receive;
        const auto& c = rr.counters;
        const double mb = static_cast<double>(c.bytes) / 1e6;
        fmt::print(out,
                   "zcio receive ({}): {}; {} syscalls ({} io_uring_enter, {} epoll_wait, {} recv; {:.1f} per MB), "
                   "receiving thread {:.2f} s CPU; {} buffers recycled, {} re-arms, {} ring exhaustions\n",
                   rcv == &r.local ? "local" : "remote", rr.description, c.syscalls(), c.io_uring_enters, c.epoll_waits,
                   c.recv_calls, mb > 0 ? static_cast<double>(c.syscalls()) / mb : 0.0, rr.thread_cpu_seconds,
                   c.buffers_recycled, c.rearms, c.exhaustions);
        if (auto fell_back = fallback_line(rr); !fell_back.empty()) fmt::print(out, "{}\n", fell_back);
    }
    print_file_summary(r, out);
    const bool local_sends = snd == &r.local;
    fmt::print(out, "CPU Utilization: local/{} {:.1f}% ({:.1f}%u/{:.1f}%s)", local_sends ? "sender" : "receiver",
               r.local.cpu.total, r.local.cpu.user, r.local.cpu.system);
    if (r.has_remote)
        fmt::print(out, ", remote/{} {:.1f}% ({:.1f}%u/{:.1f}%s)", local_sends ? "receiver" : "sender",
                   r.remote.cpu.total, r.remote.cpu.user, r.remote.cpu.system);
    fmt::print(out, "\n");
    for (const auto& e : r.stream_errors()) fmt::print(out, "zcperf: {}\n", e);
    if (!r.error.empty()) fmt::print(out, "zcperf: {}\n", r.error);
    for (const auto& n : r.notes) fmt::print(out, "zcperf: note: {}\n", n);
    if (r.server_output) fmt::print(out, "\nServer output:\n{}\n", *r.server_output);
}

}  // namespace zcperf
