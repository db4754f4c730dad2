// The results frame (iperf3's send_results / get_results layout) with zcperf's figures as extra
// keys, and the zcio objects it carries.
#include "control.hpp"

#include "json_fields.hpp"

namespace zcperf {

using nlohmann::json;

namespace {

constexpr double max_seconds = 1e7;
constexpr double max_percent = 1e6;
constexpr std::uint64_t max_bytes = 1ull << 62;

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
    f.u64("stray_notifications", c.stray_notifications);
    f.u64("inflight_underflows", c.inflight_underflows);
    if (const json* a = f.find("auto", false)) {
        if (!a->is_object()) return parent.fail("\"auto\" must be an object");
        Fields fa(*a);
        fa.u64("to_copy", c.auto_to_copy);
        fa.u64("to_zc", c.auto_to_zc);
        fa.u64("probes", c.auto_probes);
        fa.u64("kept_zc", c.auto_kept_zc);
        fa.u64("small", c.auto_small);
        if (!fa.ok()) return parent.fail(fa.error);
    }
    if (const json* by = f.find("requests_by_strategy", false)) {
        if (!by->is_object()) return parent.fail("\"requests_by_strategy\" must be an object");
        Fields fb(*by);
        for (auto s : zcio::all_strategies) fb.u64(zcio::to_string(s), c.by_strategy[zcio::index_of(s)]);
        if (!fb.ok()) return parent.fail(fb.error);
    }
    if (!f.ok()) parent.fail(f.error);
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
    if (!f.ok()) return parent.fail(f.error);
    for (std::string* s : {&r.strategy, &r.requested, &r.fallback_reason, &r.description}) *s = escape_peer_text(*s);
}

// zcperf's per-stream extras.
void stream_extras_from_json(const json& z, StreamReport& s, Fields& parent) {
    if (!z.is_object()) return parent.fail("a stream's \"zcperf\" must be an object");
    Fields f(z);
    f.boolean("sender", s.sender, false);
    f.u64("datagrams", s.datagrams);
    f.u64("out_of_order", s.out_of_order);
    f.number("seconds", s.seconds, 0, max_seconds, false);
    f.number("thread_cpu_seconds", s.thread_cpu_seconds, 0, max_seconds, false);
    f.string("strategy", s.strategy, 32, false);
    f.string("completion", s.completion, 32, false);
    f.string("error", s.error, 1024, false);
    if (const json* c = f.find("zcio", false)) {
        zcio::Counters counters;
        counters_from_json(*c, counters, f);
        s.counters = counters;
    }
    if (const json* fj = f.find("file", false)) {
        FileReport file;
        std::string why;
        if (!file_report_from_json(*fj, file, why)) f.fail(why);
        s.file = std::move(file);
    }
    if (!f.ok()) return parent.fail(f.error);
    for (std::string* t : {&s.strategy, &s.completion, &s.error}) *t = escape_peer_text(*t);
}

StreamReport stream_from_json(const json& js, Fields& parent) {
    StreamReport s;
    if (!js.is_object()) {
        parent.fail("a stream must be an object");
        return s;
    }
    Fields f(js);
    f.integer("id", s.id, 1, 2 * max_streams + 1);
    f.u64("bytes", s.bytes, true);
    if (s.bytes > max_bytes) f.fail("\"bytes\" out of range");
    f.number("jitter", s.jitter, 0, max_seconds, false);
    f.u64("errors", s.lost);
    f.u64("packets", s.packets);
    double start = 0, end = 0;
    f.number("start_time", start, 0, max_seconds, false);
    f.number("end_time", end, 0, max_seconds, false);
    s.seconds = end > start ? end - start : 0;
    if (const json* z = f.find("zcperf", false)) stream_extras_from_json(*z, s, f);
    if (!f.ok()) parent.fail(f.error);
    return s;
}

void side_extras_from_json(const json& z, SideReport& r, Fields& parent) {
    if (!z.is_object()) return parent.fail("\"zcperf\" must be an object");
    Fields f(z);
    if (const json* rx = f.find("receive", false)) {
        RecvReport rr;
        recv_report_from_json(*rx, rr, f);
        r.receive = std::move(rr);
    }
    f.integer("threads", r.threads, 0, 1 << 16, false);
    f.integer("process_threads", r.process_threads, 0, 1 << 20, false);
    if (!f.ok()) parent.fail(f.error);
}

ResultsParse results_from_json(const json& j) {
    if (!j.is_object()) return {std::nullopt, "the results are not a JSON object"};
    PeerResults out;
    Fields f(j);
    f.number("cpu_util_total", out.report.cpu.total, 0, max_percent);
    f.number("cpu_util_user", out.report.cpu.user, 0, max_percent);
    f.number("cpu_util_system", out.report.cpu.system, 0, max_percent);
    const json* streams = f.find("streams", true);
    if (!f.ok()) return {std::nullopt, f.error};
    if (!streams->is_array() || streams->size() > 2u * max_streams)
        return {std::nullopt, "\"streams\" must be an array of at most 512"};
    for (const json& js : *streams) {
        out.report.streams.push_back(stream_from_json(js, f));
        if (!f.ok()) return {std::nullopt, f.error};
    }
    if (const json* z = f.find("zcperf", false)) {
        side_extras_from_json(*z, out.report, f);
        out.zcperf = true;
    }
    if (const json* t = f.find("server_output_text", false); t && t->is_string()) {
        out.server_output = escape_peer_text(t->get_ref<const std::string&>(), max_results_json, true);
    } else if (const json* o = f.find("server_output_json", false); o && o->is_object()) {
        out.server_output = o->dump(-1, ' ', false, json::error_handler_t::replace);
        out.server_output_is_json = true;
    }
    if (!f.ok()) return {std::nullopt, f.error};
    return {std::move(out), {}};
}

json stream_to_json(const StreamReport& s) {
    json z{{"sender", s.sender}, {"seconds", s.seconds}, {"thread_cpu_seconds", s.thread_cpu_seconds}};
    if (s.datagrams) z["datagrams"] = s.datagrams;
    if (s.out_of_order) z["out_of_order"] = s.out_of_order;
    if (!s.strategy.empty()) z["strategy"] = s.strategy;
    if (!s.completion.empty()) z["completion"] = s.completion;
    if (s.counters) z["zcio"] = counters_to_json(*s.counters);
    if (s.file) z["file"] = file_report_to_json(*s.file, s.sender);
    if (!s.error.empty()) z["error"] = s.error;
    return json{{"id", s.id},         {"bytes", s.bytes},      {"retransmits", -1},
                {"jitter", s.jitter}, {"errors", s.lost},      {"packets", s.packets},
                {"start_time", 0.0},  {"end_time", s.seconds}, {"zcperf", std::move(z)}};
}

}  // namespace

json counters_to_json(const zcio::Counters& c) {
    json by = json::object();
    for (auto s : zcio::all_strategies) by[zcio::to_string(s)] = c.by_strategy[zcio::index_of(s)];
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
                {"stray_notifications", c.stray_notifications},
                {"inflight_underflows", c.inflight_underflows},
                {"auto",
                 {{"to_copy", c.auto_to_copy},
                  {"to_zc", c.auto_to_zc},
                  {"probes", c.auto_probes},
                  {"kept_zc", c.auto_kept_zc},
                  {"small", c.auto_small}}},
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
                {"syscalls",
                 {{"io_uring_enter", c.io_uring_enters},
                  {"epoll_wait", c.epoll_waits},
                  {"recv", c.recv_calls},
                  {"total", c.syscalls()}}},
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

ResultsParse parse_results(std::string_view text) noexcept {
    try {
        if (text.size() > max_results_json) return {std::nullopt, "the results are too long"};
        json j = parse_frame_json(text);
        if (j.is_discarded()) return {std::nullopt, "the results are not JSON"};
        return results_from_json(j);
    } catch (const std::exception& e) {  // bad_alloc, or a json corner the checks above missed
        return {std::nullopt, std::string("results rejected: ") + e.what()};
    } catch (...) {
        return {std::nullopt, "results rejected"};
    }
}

std::string serialize_results(const PeerResults& r) {
    const auto& rep = r.report;
    bool sends = false;
    json streams = json::array();
    for (const auto& s : rep.streams) {
        sends = sends || s.sender;
        streams.push_back(stream_to_json(s));
    }
    json j{{"cpu_util_total", rep.cpu.total},
           {"cpu_util_user", rep.cpu.user},
           {"cpu_util_system", rep.cpu.system},
           {"sender_has_retransmits", sends ? 0 : -1},
           {"streams", std::move(streams)}};
    json z = json::object();
    if (rep.receive) z["receive"] = recv_report_to_json(*rep.receive);
    if (rep.threads) z["threads"] = rep.threads;
    if (rep.process_threads) z["process_threads"] = rep.process_threads;
    j["zcperf"] = std::move(z);
    if (r.server_output) {
        json o = r.server_output_is_json ? parse_frame_json(*r.server_output) : json();
        if (r.server_output_is_json && o.is_object()) j["server_output_json"] = std::move(o);
        else j["server_output_text"] = *r.server_output;
    }
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace zcperf
