#include "sweep_output.hpp"

#include "net.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace zcperf {

namespace {

std::string ratio_text(double x) { return x > 0 ? fmt::format("{:.2f}", x) : std::string("-"); }

// A CSV field in double quotes: an error message may hold commas, never a double quote.
std::string quoted(std::string text) {
    std::replace(text.begin(), text.end(), '"', '\'');
    return "\"" + text + "\"";
}

}  // namespace

std::string send_table(const std::vector<SendRow>& rows, const std::string& title) {
    std::string out = title + "\n";
    out += fmt::format("{:>8}  {:<13} {:>10} {:>11} {:>10} {:>7} {:>7} {:>8} {:>9} {:>7}\n", "size", "strategy",
                       "MiB/s", "sends/s", "CPU s/GB", "zc %", "copy %", "ntf/send", "x plain", "x copy");
    std::size_t last = 0;
    for (const auto& r : rows) {
        if (r.size != last && last != 0) out += "\n";
        last = r.size;
        if (r.runs == 0) {
            out += fmt::format("{:>8}  {:<13} {}\n", r.size, r.strategy,
                               r.error.empty() ? "not measured" : "failed: " + r.error);
            continue;
        }
        out += fmt::format("{:>8}  {:<13} {:>10.0f} {:>11.0f} {:>10.3f} {:>7.1f} {:>7.1f} {:>8.2f} {:>9} {:>7}\n",
                           r.size, r.strategy, r.mib_per_s, r.sends_per_s, r.cpu_s_per_gb, 100 * r.zero_copy_share,
                           100 * r.copied_share, r.notifications_per_send, ratio_text(r.ratio_to_plain),
                           ratio_text(r.ratio_to_copy));
    }
    return out;
}

std::string send_csv(const std::vector<SendCell>& cells, const std::string& target, const TestParams& p) {
    std::string out =
        "target,protocol,completion,strategy,size,rep,seconds,bytes,received,mib_per_s,sends,"
        "sends_per_s,thread_cpu_s,cpu_s_per_gb,notifications,zero_copy,copied,not_reported,errors,"
        "error\n";
    for (const auto& c : cells)
        out += fmt::format("{},{},{},{},{},{},{:.4f},{},{},{:.2f},{},{:.0f},{:.4f},{:.4f},{},{},{},{},{},{}\n", target,
                           p.udp ? "udp" : "tcp", to_string(p.completion), c.name, c.size, c.rep, c.seconds, c.bytes,
                           c.received, c.mib_per_s(), c.sends, c.sends_per_s(), c.thread_cpu, c.cpu_s_per_gb(),
                           c.notifications, c.zero_copy, c.copied, c.not_reported, c.errors, quoted(c.error));
    return out;
}

nlohmann::json send_json(const std::string& target, const std::string& description, const TestParams& p,
                         const Options& o, const std::string& buffers, bool interrupted,
                         const std::vector<SendRow>& rows, const std::vector<SendCell>& cells) {
    nlohmann::json j{{"target", target},
                     {"description", description},
                     {"protocol", p.udp ? "udp" : "tcp"},
                     {"completion", to_string(p.completion)},
                     {"cell_seconds", o.duration},
                     {"repeat", o.repeat},
                     {"streams", o.parallel},
                     {"udp_gso", o.udp_gso},
                     {"fanout", o.fanout},
                     {"working_set", o.working_set},
                     {"buffers", buffers},
                     {"interrupted", interrupted}};
    j["summary"] = nlohmann::json::array();
    for (const auto& r : rows)
        j["summary"].push_back({{"strategy", r.strategy},
                                {"size", r.size},
                                {"runs", r.runs},
                                {"mib_per_s", r.mib_per_s},
                                {"sends_per_s", r.sends_per_s},
                                {"cpu_s_per_gb", r.cpu_s_per_gb},
                                {"zero_copy_share", r.zero_copy_share},
                                {"copied_share", r.copied_share},
                                {"notifications_per_send", r.notifications_per_send},
                                {"ratio_to_plain", r.ratio_to_plain},
                                {"ratio_to_copy", r.ratio_to_copy},
                                {"error", r.error}});
    j["cells"] = nlohmann::json::array();
    for (const auto& c : cells)
        j["cells"].push_back({{"strategy", c.name},
                              {"size", c.size},
                              {"rep", c.rep},
                              {"seconds", c.seconds},
                              {"bytes", c.bytes},
                              {"received", c.received},
                              {"sends", c.sends},
                              {"notifications", c.notifications},
                              {"zero_copy", c.zero_copy},
                              {"copied", c.copied},
                              {"not_reported", c.not_reported},
                              {"errors", c.errors},
                              {"thread_cpu_seconds", c.thread_cpu},
                              {"error", c.error}});
    return j;
}

std::string recv_table(const std::vector<RecvRow>& rows, const std::string& title) {
    std::string out = title + "\n";
    out += fmt::format("{:>8}  {:<10} {:>9} {:>7} {:>9} {:>7} {:>11} {:>7}  {}\n", "size", "recv", "MB/s", "x plain",
                       "CPU s/GB", "x plain", "syscalls/MB", "x plain", "ran as");
    std::size_t last = 0;
    for (const auto& r : rows) {
        if (r.size != last && last != 0) out += "\n";
        last = r.size;
        if (r.runs == 0) {
            out += fmt::format("{:>8}  {:<10} failed: {}\n", r.size, r.recv, r.error);
            continue;
        }
        out += fmt::format("{:>8}  {:<10} {:>9.0f} {:>7} {:>9.3f} {:>7} {:>11.1f} {:>7}  {}\n", r.size, r.recv,
                           r.mb_per_s, ratio_text(r.ratio_mb_per_s), r.cpu_s_per_gb, ratio_text(r.ratio_cpu_per_gb),
                           r.syscalls_per_mb, ratio_text(r.ratio_syscalls_per_mb),
                           r.ran_as + (r.fallback_reason.empty() ? "" : " (fell back)"));
    }
    return out + "\n";
}

std::string recv_csv(const std::vector<RecvCell>& cells) {
    std::string out =
        "recv,size,rep,seconds,bytes,sent,mb_per_s,receiver_cpu_s,cpu_s_per_gb,syscalls,"
        "syscalls_per_mb,ran_as,error\n";
    for (const auto& c : cells)
        out += fmt::format("{},{},{},{:.4f},{},{},{:.1f},{:.4f},{:.4f},{},{:.2f},{},{}\n", c.name, c.size, c.rep,
                           c.seconds, c.bytes, c.sent, c.mb_per_s(), c.cpu, c.cpu_per_gb(), c.syscalls,
                           c.syscalls_per_mb(), c.ran, quoted(c.error));
    return out;
}

nlohmann::json recv_json(const std::string& description, const Options& o, zcio::Strategy sender,
                         const std::vector<RecvRow>& rows, const std::vector<RecvCell>& cells) {
    nlohmann::json j{{"description", description},
                     {"streams", o.parallel},
                     {"sender", zcio::to_string(sender)},
                     {"cell_seconds", o.duration},
                     {"repeat", o.repeat}};
    j["summary"] = nlohmann::json::array();
    for (const auto& r : rows)
        j["summary"].push_back({{"recv", r.recv},
                                {"size", r.size},
                                {"runs", r.runs},
                                {"mb_per_s", r.mb_per_s},
                                {"cpu_s_per_gb", r.cpu_s_per_gb},
                                {"syscalls_per_mb", r.syscalls_per_mb},
                                {"ratio_mb_per_s", r.ratio_mb_per_s},
                                {"ratio_cpu_per_gb", r.ratio_cpu_per_gb},
                                {"ratio_syscalls_per_mb", r.ratio_syscalls_per_mb},
                                {"ran_as", r.ran_as},
                                {"fallback_reason", r.fallback_reason},
                                {"error", r.error}});
    j["cells"] = nlohmann::json::array();
    for (const auto& c : cells)
        j["cells"].push_back({{"recv", c.name},
                              {"size", c.size},
                              {"rep", c.rep},
                              {"seconds", c.seconds},
                              {"bytes", c.bytes},
                              {"sent", c.sent},
                              {"receiver_cpu_seconds", c.cpu},
                              {"syscalls", c.syscalls},
                              {"ran_as", c.ran},
                              {"fallback_reason", c.fallback},
                              {"error", c.error}});
    return j;
}

void write_sweep_files(const std::string& dir, const std::vector<std::pair<std::string, std::string>>& files) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) throw Error(fmt::format("cannot create {}: {} (choose another directory with --out)", dir, ec.message()));
    for (const auto& [path, text] : files) {
        std::ofstream f(path);
        f << text;
        f.flush();
        if (!f)
            throw Error(
                fmt::format("cannot write {}: {} (choose another directory with --out)", path, std::strerror(errno)));
    }
}

}  // namespace zcperf
