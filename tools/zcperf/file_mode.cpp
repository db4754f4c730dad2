#include "file_mode.hpp"

#include "control.hpp"
#include "json_fields.hpp"
#include "report.hpp"

#include <fmt/format.h>

#include <sstream>

namespace zcperf {

using nlohmann::json;

json file_report_to_json(const FileReport& f, bool sender) {
    json j{{"path", f.path},   {"bytes", f.bytes},         {"syscalls", f.syscalls},
           {"chunk", f.chunk}, {"requested", f.requested}, {"used", f.used}};
    if (!f.why.empty()) j["why"] = f.why;
    if (sender) {
        j["page_cache"] = !f.direct;
        j["direct"] = f.direct;
        j["file_size"] = f.file_size;
        j["passes"] = f.passes;
        j["bytes_read"] = f.bytes_read;
        j["read_requests"] = f.read_requests;
        j["sends"] = f.sends;
        j["zero_copy"] = f.zero_copy;
        j["copied"] = f.copied;
    } else {
        j["write_requests"] = f.write_requests;
    }
    if (!f.hash.empty()) j["verify"] = {{"hash", f.hash}, {"bytes", f.hashed_bytes}};
    return j;
}

bool file_report_from_json(const json& j, FileReport& f, std::string& error) {
    if (!j.is_object()) {
        error = "a stream's \"file\" must be an object";
        return false;
    }
    Fields r(j);
    r.string("path", f.path, 4096, false);
    r.string("requested", f.requested, 32, false);
    r.string("used", f.used, 32, false);
    r.string("why", f.why, 1024, false);
    r.boolean("direct", f.direct, false);
    for (auto [key, out] : {std::pair{"bytes", &f.bytes},
                            {"file_size", &f.file_size},
                            {"passes", &f.passes},
                            {"bytes_read", &f.bytes_read},
                            {"read_requests", &f.read_requests},
                            {"write_requests", &f.write_requests},
                            {"syscalls", &f.syscalls},
                            {"sends", &f.sends},
                            {"zero_copy", &f.zero_copy},
                            {"copied", &f.copied},
                            {"chunk", &f.chunk}})
        r.u64(key, *out);
    if (const json* v = r.find("verify", false)) {
        if (!v->is_object()) r.fail("\"verify\" must be an object");
        else {
            Fields fv(*v);
            fv.string("hash", f.hash, 64);
            fv.u64("bytes", f.hashed_bytes, true);
            if (!fv.ok()) r.fail(fv.error);
        }
    }
    if (!r.ok()) {
        error = r.error;
        return false;
    }
    for (std::string* s : {&f.path, &f.requested, &f.used, &f.why, &f.hash}) *s = escape_peer_text(*s);
    return true;
}

std::string parse_file_strategies(const std::string& text, bool sweep, FileStrategyNames& out) {
    if (text == "all") {
        if (!sweep) return "--file-strategy all needs --sweep";
        out.send.assign(std::begin(zcio::all_file_send_strategies), std::end(zcio::all_file_send_strategies));
        return {};
    }
    std::stringstream ss(text);
    std::string item;
    bool splice = false;
    while (std::getline(ss, item, ',')) {
        if (item == "splice") {
            splice = true;
        } else if (auto s = zcio::parse_file_send_strategy(item)) {
            out.send.push_back(*s);
        } else if (auto r = zcio::parse_file_recv_strategy(item)) {
            if (out.recv) return fmt::format("--file-strategy {}: two receive strategies", text);
            out.recv = r;
        } else {
            return fmt::format(
                "--file-strategy {}: unknown; sending: sendfile, splice, read-send, read-zc, auto "
                "(or all, with --sweep); receiving: recv-write, splice, recv-write-fixed",
                item);
        }
    }
    // splice names both sides: the sending one unless another send strategy is named outside a
    // sweep (then it is the receiving end's), the receiving one unless another is named.
    if (splice && (sweep || out.send.empty())) out.send.push_back(zcio::FileSendStrategy::splice);
    if (splice && !out.recv) out.recv = zcio::FileRecvStrategy::splice;
    if (!sweep && out.send.size() > 1) return "several file send strategies need --sweep";
    return {};
}

namespace {

// Every stream's file reports, sender's and receiver's, from both ends.
template <typename Fn>
void for_each_file(const TestRecord& r, Fn fn) {
    for (const SideReport* side : {&r.local, r.has_remote ? &r.remote : nullptr})
        if (side)
            for (const auto& s : side->streams)
                if (s.file) fn(s, *s.file, side == &r.local);
}

}  // namespace

void print_file_summary(const TestRecord& r, std::FILE* out) {
    for_each_file(r, [&](const StreamReport& s, const FileReport& f, bool local) {
        const char* where = local ? "local" : "remote";
        if (s.sender)
            fmt::print(out,
                       "file [{:3}] {} sent {} ({} bytes, {} pass(es) over {} bytes): {} (asked {}{}{}); {}; {} bytes "
                       "read in {} read requests, {} syscalls\n",
                       s.id, where, f.path, f.bytes, f.passes, f.file_size, f.used, f.requested,
                       f.why.empty() ? "" : ": ", f.why, f.direct ? "O_DIRECT" : "page cache", f.bytes_read,
                       f.read_requests, f.syscalls);
        else
            fmt::print(out, "file [{:3}] {} wrote {} ({} bytes): {}; {} write requests, {} syscalls\n", s.id, where,
                       f.path, f.bytes, f.used, f.write_requests, f.syscalls);
        if (!f.hash.empty())
            fmt::print(out, "file [{:3}] {} {} over {} bytes\n", s.id, s.sender ? "sent" : "wrote", f.hash,
                       f.hashed_bytes);
    });
}

json file_summary_json(const TestRecord& r) {
    json streams = json::array();
    for_each_file(r, [&](const StreamReport& s, const FileReport& f, bool local) {
        json j = file_report_to_json(f, s.sender);
        j["id"] = s.id;
        j["role"] = s.sender ? "sender" : "receiver";
        j["end"] = local ? "local" : "remote";
        streams.push_back(std::move(j));
    });
    if (streams.empty()) return json();
    return json{{"streams", std::move(streams)}, {"verify", r.params.file.verify}};
}

}  // namespace zcperf
