#include "control.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>

namespace zcperf {

using nlohmann::json;

const char* to_string(CompletionModel m) noexcept {
    switch (m) {
        case CompletionModel::two_step: return "two-step";
        case CompletionModel::storage: return "storage";
        case CompletionModel::group: return "group";
    }
    return "?";
}

std::optional<CompletionModel> parse_completion(std::string_view name) noexcept {
    if (name == "two-step" || name == "twostep") return CompletionModel::two_step;
    if (name == "storage") return CompletionModel::storage;
    if (name == "group") return CompletionModel::group;
    return std::nullopt;
}

std::string check_params(const TestParams& p) {
    if (p.streams < 1 || p.streams > 256) return "streams must be 1..256";
    if (!(p.duration > 0) || p.duration > 86400) return "duration must be > 0 and <= 86400 seconds";
    const std::size_t max_len = p.udp ? 65507u : (64u << 20);
    if (p.length < 1 || p.length > max_len)
        return p.udp ? "UDP length must be 1..65507 bytes" : "TCP length must be 1..67108864 bytes (64 MiB)";
    if (p.udp_gso && !p.udp) return "UDP GSO applies to UDP only";
    if (p.udp_gso && (p.udp_gso < 1 || p.udp_gso > 65507)) return "GSO segment size must be 1..65507";
    if (p.verify && p.udp) return "payload verification (--verify) is for TCP streams";
    if (p.udp_gso && p.length > static_cast<std::size_t>(p.udp_gso) * 64)
        return "with UDP GSO a send carries at most 64 segments: raise --gso or lower -l";
    return {};
}

namespace {

// Walks one JSON object, remembering the first problem; every accessor is total (never throws).
class Fields {
public:
    explicit Fields(const json& o) : o_(o) {}

    const json* find(const char* key, bool required) {
        auto it = o_.find(key);
        if (it == o_.end()) {
            if (required) fail(std::string("missing \"") + key + "\"");
            return nullptr;
        }
        return &*it;
    }
    template <class T>
    void integer(const char* key, T& out, std::int64_t lo, std::int64_t hi, bool required = true) {
        const json* v = find(key, required);
        if (!v) return;
        std::int64_t x = 0;
        if (v->is_number_unsigned()) {
            auto u = v->get<std::uint64_t>();
            if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return fail(std::string("\"") + key + "\" out of range");
            x = static_cast<std::int64_t>(u);
        } else if (v->is_number_integer()) {
            x = v->get<std::int64_t>();
        } else {
            return fail(std::string("\"") + key + "\" must be an integer");
        }
        if (x < lo || x > hi) return fail(std::string("\"") + key + "\" out of range");
        out = static_cast<T>(x);
    }
    void u64(const char* key, std::uint64_t& out, bool required = false) {
        const json* v = find(key, required);
        if (!v) return;
        if (!v->is_number_unsigned() && !(v->is_number_integer() && v->get<std::int64_t>() >= 0))
            return fail(std::string("\"") + key + "\" must be a non-negative integer");
        out = v->get<std::uint64_t>();
    }
    void number(const char* key, double& out, double lo, double hi, bool required = true) {
        const json* v = find(key, required);
        if (!v) return;
        if (!v->is_number()) return fail(std::string("\"") + key + "\" must be a number");
        double x = v->get<double>();
        if (!std::isfinite(x) || x < lo || x > hi) return fail(std::string("\"") + key + "\" out of range");
        out = x;
    }
    void boolean(const char* key, bool& out, bool required = true) {
        const json* v = find(key, required);
        if (!v) return;
        if (!v->is_boolean()) return fail(std::string("\"") + key + "\" must be true or false");
        out = v->get<bool>();
    }
    void string(const char* key, std::string& out, std::size_t max_len, bool required = true) {
        const json* v = find(key, required);
        if (!v) return;
        if (!v->is_string()) return fail(std::string("\"") + key + "\" must be a string");
        const auto& s = v->get_ref<const std::string&>();
        if (s.size() > max_len) return fail(std::string("\"") + key + "\" too long");
        out = s;
    }

    void fail(std::string why) {
        if (error.empty()) error = std::move(why);
    }
    bool ok() const noexcept { return error.empty(); }
    std::string error;

private:
    const json& o_;
};

constexpr double max_seconds = 1e7;
constexpr double max_percent = 1e6;

// Deeply nested input would only cost stack and time; no message nests more than a few levels.
bool nesting_within(std::string_view s, int limit) noexcept {
    int depth = 0;
    bool in_string = false, escaped = false;
    for (char c : s) {
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
            continue;
        }
        if (c == '"') in_string = true;
        else if (c == '{' || c == '[') {
            if (++depth > limit) return false;
        } else if (c == '}' || c == ']') --depth;
    }
    return true;
}

json params_to_json(const TestParams& p) {
    json j{{"protocol", p.udp ? "udp" : "tcp"},
                {"streams", p.streams},
                {"duration", p.duration},
                {"length", p.length},
                {"reverse", p.reverse},
                {"strategy", zcio::to_string(p.strategy)},
                {"completion", to_string(p.completion)},
                {"udp_gso", p.udp_gso}};
    if (p.recv) j["recv"] = zcio::to_string(*p.recv);
    if (p.verify) j["verify"] = true;
    return j;
}

void params_from_json(const json& j, TestParams& p, Fields& parent) {
    if (!j.is_object()) return parent.fail("\"params\" must be an object");
    Fields f(j);
    std::string protocol, strategy, completion, recv;
    f.string("protocol", protocol, 8);
    f.integer("streams", p.streams, 1, 256);
    f.number("duration", p.duration, 0, 86400);
    f.integer("length", p.length, 1, 64 << 20);
    f.boolean("reverse", p.reverse);
    f.string("strategy", strategy, 32);
    f.string("completion", completion, 32);
    f.integer("udp_gso", p.udp_gso, 0, 65535, false);
    f.boolean("verify", p.verify, false);
    f.string("recv", recv, 32, false);
    if (!f.ok()) return parent.fail(f.error);
    if (!recv.empty()) {
        p.recv = zcio::parse_recv_strategy(recv);
        if (!p.recv) return parent.fail("unknown receive strategy \"" + recv + "\"");
    }
    if (protocol == "udp") p.udp = true;
    else if (protocol == "tcp") p.udp = false;
    else return parent.fail("unknown protocol \"" + protocol + "\"");
    auto s = zcio::parse_strategy(strategy);
    if (!s) return parent.fail("unknown strategy \"" + strategy + "\"");
    p.strategy = *s;
    auto c = parse_completion(completion);
    if (!c) return parent.fail("unknown completion model \"" + completion + "\"");
    p.completion = *c;
    if (auto why = check_params(p); !why.empty()) parent.fail(why);
}

void counters_from_json(const json& j, zcio::Counters& c, Fields& parent) {
    if (!j.is_object()) return parent.fail("\"zcio\" must be an object");
    Fields f(j);
    f.u64("sends", c.sends);
    f.u64("bytes", c.bytes);
    f.u64("requests", c.requests);
    f.u64("short_sends", c.short_sends);
    f.u64("notifications", c.notifications);
    f.u64("zero_copy", c.zero_copy);
    f.u64("copied", c.copied);
    f.u64("not_reported", c.not_reported);
    f.u64("errors", c.errors);
    f.u64("fallbacks", c.fallbacks);
    f.u64("waits", c.waits);
    f.u64("stray_cqes", c.stray_cqes);
    if (const json* a = f.find("auto", false)) {
        if (!a->is_object()) return parent.fail("\"auto\" must be an object");
        Fields fa(*a);
        fa.u64("to_copy", c.auto_to_copy);
        fa.u64("to_zc", c.auto_to_zc);
        fa.u64("probes", c.auto_probes);
        fa.u64("small", c.auto_small);
        if (!fa.ok()) return parent.fail(fa.error);
    }
    if (const json* by = f.find("requests_by_strategy", false)) {
        if (!by->is_object()) return parent.fail("\"requests_by_strategy\" must be an object");
        Fields fb(*by);
        for (auto s : zcio::all_strategies) fb.u64(zcio::to_string(s), c.by_strategy[static_cast<int>(s)]);
        if (!fb.ok()) return parent.fail(fb.error);
    }
    if (!f.ok()) parent.fail(f.error);
}

json report_to_json(const SideReport& r) {
    json streams = json::array();
    for (const auto& s : r.streams) {
        json js{{"id", s.id},
                {"sender", s.sender},
                {"bytes", s.bytes},
                {"seconds", s.seconds},
                {"packets", s.packets},
                {"thread_cpu_seconds", s.thread_cpu_seconds}};
        if (!s.strategy.empty()) js["strategy"] = s.strategy;
        if (!s.completion.empty()) js["completion"] = s.completion;
        if (s.counters) js["zcio"] = counters_to_json(*s.counters);
        if (!s.error.empty()) js["error"] = s.error;
        streams.push_back(std::move(js));
    }
    json j{{"cpu", {{"total", r.cpu.total}, {"user", r.cpu.user}, {"system", r.cpu.system}}},
           {"streams", std::move(streams)}};
    if (r.receive) j["receive"] = recv_report_to_json(*r.receive);
    if (r.threads) j["threads"] = r.threads;
    if (r.process_threads) j["process_threads"] = r.process_threads;
    return j;
}

void recv_report_from_json(const json& j, RecvReport& r, Fields& parent) {
    if (!j.is_object()) return parent.fail("\"receive\" must be an object");
    Fields f(j);
    f.string("strategy", r.strategy, 32);
    f.string("requested", r.requested, 32, false);
    f.string("fallback_reason", r.fallback_reason, 1024, false);
    f.string("description", r.description, 1024, false);
    f.u64("bytes", r.counters.bytes, true);
    f.u64("buffers", r.counters.buffers);
    f.u64("buffers_recycled", r.counters.buffers_recycled);
    f.u64("rearms", r.counters.rearms);
    f.u64("exhaustions", r.counters.exhaustions);
    f.u64("fallbacks", r.counters.fallbacks);
    f.u64("eofs", r.counters.eofs);
    f.u64("errors", r.counters.errors);
    f.number("thread_cpu_seconds", r.thread_cpu_seconds, 0, max_seconds, false);
    if (const json* sc = f.find("syscalls", true)) {
        if (!sc->is_object()) return parent.fail("\"syscalls\" must be an object");
        Fields fs(*sc);
        fs.u64("io_uring_enter", r.counters.io_uring_enters);
        fs.u64("epoll_wait", r.counters.epoll_waits);
        fs.u64("recv", r.counters.recv_calls);
        if (!fs.ok()) return parent.fail(fs.error);
    }
    if (!f.ok()) parent.fail(f.error);
}

void report_from_json(const json& j, SideReport& r, Fields& parent) {
    if (!j.is_object()) return parent.fail("\"report\" must be an object");
    Fields f(j);
    if (const json* cpu = f.find("cpu", true)) {
        if (!cpu->is_object()) return parent.fail("\"cpu\" must be an object");
        Fields fc(*cpu);
        fc.number("total", r.cpu.total, 0, max_percent);
        fc.number("user", r.cpu.user, 0, max_percent);
        fc.number("system", r.cpu.system, 0, max_percent);
        if (!fc.ok()) return parent.fail(fc.error);
    }
    const json* streams = f.find("streams", true);
    if (!f.ok()) return parent.fail(f.error);
    if (!streams->is_array() || streams->size() > 256) return parent.fail("\"streams\" must be an array of at most 256");
    for (const json& js : *streams) {
        if (!js.is_object()) return parent.fail("a stream must be an object");
        Fields fs(js);
        StreamReport s;
        fs.integer("id", s.id, 1, 256);
        fs.boolean("sender", s.sender);
        fs.u64("bytes", s.bytes, true);
        fs.number("seconds", s.seconds, 0, max_seconds);
        fs.u64("packets", s.packets);
        fs.number("thread_cpu_seconds", s.thread_cpu_seconds, 0, max_seconds, false);
        fs.string("strategy", s.strategy, 32, false);
        fs.string("completion", s.completion, 32, false);
        fs.string("error", s.error, 1024, false);
        if (const json* z = fs.find("zcio", false)) {
            zcio::Counters c;
            counters_from_json(*z, c, fs);
            s.counters = c;
        }
        if (!fs.ok()) return parent.fail(fs.error);
        r.streams.push_back(std::move(s));
    }
    if (const json* rx = f.find("receive", false)) {
        RecvReport rr;
        recv_report_from_json(*rx, rr, parent);
        r.receive = std::move(rr);
    }
    f.integer("threads", r.threads, 0, 1 << 16, false);
    f.integer("process_threads", r.process_threads, 0, 1 << 20, false);
    if (!f.ok()) parent.fail(f.error);
}

ParseResult parse_impl(std::string_view line) {
    if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    if (line.size() > max_control_line) return {std::nullopt, "control line too long"};
    if (!nesting_within(line, 16)) return {std::nullopt, "control message nested too deeply"};
    json j = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return {std::nullopt, "control message is not JSON"};
    if (!j.is_object()) return {std::nullopt, "control message is not a JSON object"};
    Fields f(j);
    std::string type;
    f.string("type", type, 16);
    if (!f.ok()) return {std::nullopt, f.error};

    ControlMessage msg;
    if (type == "hello") {
        Hello h;
        f.integer("version", h.version, 0, 1 << 20);
        f.string("cookie", h.cookie, cookie_length);
        if (f.ok() && h.cookie.size() != cookie_length) f.fail("cookie must be 36 characters");
        if (const json* p = f.find("params", true)) params_from_json(*p, h.params, f);
        msg = std::move(h);
    } else if (type == "ready") {
        Ready r;
        if (const json* ports = f.find("udp_ports", false)) {
            if (!ports->is_array() || ports->size() > 256) f.fail("\"udp_ports\" must be an array of at most 256");
            else
                for (const json& p : *ports) {
                    if (!p.is_number_unsigned() || p.get<std::uint64_t>() == 0 || p.get<std::uint64_t>() > 65535) {
                        f.fail("a UDP port must be 1..65535");
                        break;
                    }
                    r.udp_ports.push_back(static_cast<std::uint16_t>(p.get<std::uint64_t>()));
                }
        }
        msg = std::move(r);
    } else if (type == "start") {
        msg = Start{};
    } else if (type == "done" || type == "results") {
        SideReport rep;
        if (const json* r = f.find("report", true)) report_from_json(*r, rep, f);
        if (type == "done") msg = Done{std::move(rep)};
        else msg = Results{std::move(rep)};
    } else if (type == "error") {
        Failure e;
        f.string("message", e.message, 4096);
        msg = std::move(e);
    } else {
        return {std::nullopt, "unknown control message type \"" + type.substr(0, 16) + "\""};
    }
    if (!f.ok()) return {std::nullopt, type + ": " + f.error};
    return {std::move(msg), {}};
}

}  // namespace

json counters_to_json(const zcio::Counters& c) {
    json by = json::object();
    for (auto s : zcio::all_strategies) by[zcio::to_string(s)] = c.by_strategy[static_cast<int>(s)];
    return json{{"sends", c.sends},
                {"bytes", c.bytes},
                {"requests", c.requests},
                {"short_sends", c.short_sends},
                {"notifications", c.notifications},
                {"zero_copy", c.zero_copy},
                {"copied", c.copied},
                {"not_reported", c.not_reported},
                {"errors", c.errors},
                {"fallbacks", c.fallbacks},
                {"waits", c.waits},
                {"stray_cqes", c.stray_cqes},
                {"auto", {{"to_copy", c.auto_to_copy}, {"to_zc", c.auto_to_zc}, {"probes", c.auto_probes}, {"small", c.auto_small}}},
                {"requests_by_strategy", std::move(by)}};
}

json recv_report_to_json(const RecvReport& r) {
    const auto& c = r.counters;
    const double mb = static_cast<double>(c.bytes) / 1e6;
    return json{{"strategy", r.strategy},
                {"requested", r.requested},
                {"fallback_reason", r.fallback_reason},
                {"description", r.description},
                {"bytes", c.bytes},
                {"buffers", c.buffers},
                {"syscalls", {{"io_uring_enter", c.io_uring_enters}, {"epoll_wait", c.epoll_waits}, {"recv", c.recv_calls}, {"total", c.syscalls()}}},
                {"thread_cpu_seconds", r.thread_cpu_seconds},
                {"buffers_recycled", c.buffers_recycled},
                {"rearms", c.rearms},
                {"exhaustions", c.exhaustions},
                {"fallbacks", c.fallbacks},
                {"eofs", c.eofs},
                {"errors", c.errors},
                {"syscalls_per_mb", mb > 0 ? static_cast<double>(c.syscalls()) / mb : 0.0},
                {"cpu_seconds_per_gb", mb > 0 ? r.thread_cpu_seconds / (mb / 1e3) : 0.0}};
}

ParseResult parse_control_message(std::string_view line) noexcept {
    try {
        return parse_impl(line);
    } catch (const std::exception& e) {  // bad_alloc, or a json corner the checks above missed
        return {std::nullopt, std::string("control message rejected: ") + e.what()};
    } catch (...) {
        return {std::nullopt, "control message rejected"};
    }
}

std::string serialize(const ControlMessage& message) {
    json j = std::visit(
        [](const auto& m) -> json {
            using T = std::decay_t<decltype(m)>;
            if constexpr (std::is_same_v<T, Hello>)
                return {{"type", "hello"}, {"version", m.version}, {"cookie", m.cookie}, {"params", params_to_json(m.params)}};
            else if constexpr (std::is_same_v<T, Ready>)
                return {{"type", "ready"}, {"udp_ports", m.udp_ports}};
            else if constexpr (std::is_same_v<T, Start>)
                return {{"type", "start"}};
            else if constexpr (std::is_same_v<T, Done>)
                return {{"type", "done"}, {"report", report_to_json(m.report)}};
            else if constexpr (std::is_same_v<T, Results>)
                return {{"type", "results"}, {"report", report_to_json(m.report)}};
            else
                return {{"type", "error"}, {"message", m.message}};
        },
        message);
    return j.dump(-1, ' ', false, json::error_handler_t::replace) + '\n';
}

}  // namespace zcperf
