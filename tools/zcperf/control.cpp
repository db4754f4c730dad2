// iperf3's parameters frame with zcperf's extras, the zcperf-only frames, and peer text escaping.
// The results frame is in control_results.cpp.
#include "control.hpp"

#include "json_fields.hpp"

#include <fmt/format.h>

#include <cmath>

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

std::string iperf_error_text(int e) {
    switch (e) {
    case ie::duration: return "test duration too long (maximum = 86400 seconds)";
    case ie::num_streams: return "number of parallel streams too large (maximum = 128)";
    case ie::block_size: return "block size too large (maximum = 1048576 bytes)";
    case ie::buf_size: return "socket buffer size too large (maximum = 536870912 bytes)";
    case ie::omit: return "bogus value for --omit";
    case ie::unimplemented: return "an option you are trying to set is not implemented yet";
    case ie::no_sctp: return "no SCTP support available";
    case ie::udp_block_size: return "block size invalid (minimum = 16 bytes, maximum = 65507 bytes)";
    case ie::recv_params: return "unable to receive parameters from client";
    case ie::access_denied: return "the server is busy running a test. try again later";
    case ie::auth: return "test authorization failed";
    case ie::no_msg: return "idle timeout for receiving data";
    case ie::stream_listen: return "unable to start stream listener";
    case ie::stream_accept: return "unable to accept stream connection";
    }
    return fmt::format("iperf3 error {}", e);
}

std::string check_params(const TestParams& p) {
    if (p.streams < 1 || p.streams > max_streams) return fmt::format("streams must be 1..{}", max_streams);
    if (!(p.duration >= 0) || p.duration > 86400) return "duration must be >= 0 and <= 86400 seconds";
    if (p.duration == 0 && p.bytes == 0 && p.blocks == 0)
        return "a test needs a duration, a byte count (-n) or a block count (-k)";
    if (!(p.omit >= 0) || p.omit > 86400) return "omit must be 0..86400 seconds";
    const std::size_t max_len = p.udp ? 65507u : (64u << 20);
    if (p.length < 1 || p.length > max_len)
        return p.udp ? "UDP length must be 1..65507 bytes" : "TCP length must be 1..67108864 bytes (64 MiB)";
    if (p.udp && p.length < 16) return "a UDP datagram carries iperf3's 16-byte header: -l must be at least 16";
    if (p.reverse && p.bidir) return "reverse and bidirectional exclude each other";
    if (p.window < 0 || p.window > (512 << 20)) return "socket buffer (-w) must be 0..512 MiB";
    if (p.bytes > (1ull << 50) || p.blocks > (1ull << 40)) return "byte or block count too large";
    if (p.udp_gso && !p.udp) return "UDP GSO applies to UDP only";
    if (p.verify && p.udp) return "payload verification (--verify) is for TCP streams";
    if (p.udp_gso && p.length > static_cast<std::size_t>(p.udp_gso) * 64)
        return "with UDP GSO a send carries at most 64 segments: raise --gso or lower -l";
    if (p.udp_gso && p.udp_gso < 16) return "GSO segment size must be 16..65507";
    return {};
}

std::string escape_peer_text(std::string_view s, std::size_t limit, bool keep_newlines) {
    std::string out;
    const std::size_t n = std::min(s.size(), limit);
    for (std::size_t i = 0; i < n; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        // A UTF-8 sequence passes whole when it is well formed; anything else is shown as bytes.
        std::size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        bool ok = len > 0 && i + len <= n;
        for (std::size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(s[i + k]) >> 6) == 2;
        if (len == 1) ok = (c >= 0x20 && c != 0x7f) || (keep_newlines && c == '\n');
        if (!ok) {
            out += fmt::format("\\x{:02x}", c);
            continue;
        }
        out.append(s.substr(i, len));
        i += len - 1;
    }
    if (s.size() > limit) out += "...";
    return out;
}

json parse_frame_json(std::string_view text) noexcept {
    try {
        // Deeply nested input would only cost stack and time; no frame nests more than a few levels.
        int depth = 0;
        bool in_string = false, escaped = false;
        for (char c : text) {
            if (in_string) {
                if (escaped) escaped = false;
                else if (c == '\\') escaped = true;
                else if (c == '"') in_string = false;
            } else if (c == '"') {
                in_string = true;
            } else if ((c == '{' || c == '[') && ++depth > 16) {
                return json(json::value_t::discarded);
            } else if (c == '}' || c == ']') {
                --depth;
            }
        }
        return json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    } catch (...) {  // bad_alloc
        return json(json::value_t::discarded);
    }
}

namespace {

// Options a stock iperf3 client may send that this end accepts without applying them.
constexpr const char* ignored_keys[] = {"MSS",    "TOS",        "flowlabel",         "congestion",
                                        "fqrate", "burst",      "dont_fragment",     "server_affinity",
                                        "title",  "extra_data", "repeating_payload", "pacing_timer"};

json params_to_json(const TestParams& p) {
    json j = json::object();
    j[p.udp ? "udp" : "tcp"] = true;
    j["omit"] = static_cast<std::int64_t>(std::ceil(p.omit));
    j["time"] = static_cast<std::int64_t>(std::ceil(p.duration));  // iperf3 reads an int
    j["num"] = p.bytes;
    j["blockcount"] = p.blocks;
    j["parallel"] = p.streams;
    if (p.reverse) j["reverse"] = true;
    if (p.bidir) j["bidirectional"] = true;
    if (p.nodelay) j["nodelay"] = true;
    if (p.window) j["window"] = p.window;
    j["len"] = p.length;
    if (p.bitrate) j["bandwidth"] = p.bitrate;
    if (p.get_server_output) j["get_server_output"] = 1;
    if (p.udp64) j["udp_counters_64bit"] = 1;
    j["client_version"] = std::string("zcperf ") + zcperf_version;
    json z{{"duration", p.duration},
           {"omit", p.omit},
           {"strategy", zcio::to_string(p.strategy)},
           {"completion", to_string(p.completion)},
           {"udp_gso", p.udp_gso}};
    if (p.recv) z["recv"] = zcio::to_string(*p.recv);
    if (p.verify) z["verify"] = true;
    if (p.bitrate_default) z["bitrate_default"] = true;
    if (p.file.send) z["file_send"] = zcio::to_string(*p.file.send);
    if (p.file.recv) z["file_recv"] = zcio::to_string(*p.file.recv);
    if (p.file.verify) z["file_verify"] = true;
    if (p.file.once) z["file_once"] = true;
    j["zcperf"] = std::move(z);
    return j;
}

// zcperf's extras: the names must be ones this build knows (they are printed and acted on).
void extras_from_json(const json& z, TestParams& p, Fields& parent) {
    if (!z.is_object()) return parent.fail("\"zcperf\" must be an object");
    Fields f(z);
    std::string strategy = "auto", completion = "storage", recv, file_send, file_recv;
    f.number("duration", p.duration, 0, 86400, false);
    f.number("omit", p.omit, 0, 86400, false);
    f.string("strategy", strategy, 32, false);
    f.string("completion", completion, 32, false);
    f.string("recv", recv, 32, false);
    f.integer("udp_gso", p.udp_gso, 0, 65507, false);
    f.boolean("verify", p.verify, false);
    f.boolean("bitrate_default", p.bitrate_default, false);
    f.string("file_send", file_send, 32, false);
    f.string("file_recv", file_recv, 32, false);
    f.boolean("file_verify", p.file.verify, false);
    f.boolean("file_once", p.file.once, false);
    if (!f.ok()) return parent.fail(f.error);
    if (!file_send.empty() && !(p.file.send = zcio::parse_file_send_strategy(file_send)))
        return parent.fail("unknown file send strategy \"" + escape_peer_text(file_send) + "\"");
    if (!file_recv.empty() && !(p.file.recv = zcio::parse_file_recv_strategy(file_recv)))
        return parent.fail("unknown file receive strategy \"" + escape_peer_text(file_recv) + "\"");
    auto s = zcio::parse_strategy(strategy);
    if (!s) return parent.fail("unknown strategy \"" + escape_peer_text(strategy) + "\"");
    p.strategy = *s;
    auto c = parse_completion(completion);
    if (!c) return parent.fail("unknown completion model \"" + escape_peer_text(completion) + "\"");
    p.completion = *c;
    if (!recv.empty()) {
        p.recv = zcio::parse_recv_strategy(recv);
        if (!p.recv) return parent.fail("unknown receive strategy \"" + escape_peer_text(recv) + "\"");
    }
    p.zcperf_peer = true;
}

ParamsResult params_from_json(const json& j) {
    ParamsResult r;
    if (!j.is_object()) return {std::nullopt, "the parameters are not a JSON object", ie::recv_params};
    if (j.contains("sctp")) return {std::nullopt, "SCTP is not supported", ie::no_sctp};
    if (j.contains("authtoken")) return {std::nullopt, "authentication is not supported", ie::auth};
    TestParams p;
    p.udp = j.contains("udp");
    if (!p.udp && !j.contains("tcp"))
        return {std::nullopt, "the parameters name no protocol (tcp or udp)", ie::recv_params};
    Fields f(j);
    std::int64_t time = 10, omit = 0;
    f.integer("time", time, 0, 86400, false);
    f.integer("omit", omit, 0, 86400, false);
    f.u64("num", p.bytes);
    f.u64("blockcount", p.blocks);
    f.integer("parallel", p.streams, 1, max_streams, false);
    f.integer("window", p.window, 0, 512 << 20, false);
    std::int64_t len = p.udp ? 1460 : 128 * 1024;
    f.integer("len", len, 1, 64 << 20, false);
    f.u64("bandwidth", p.bitrate);
    f.string("client_version", p.client_version, 64, false);
    if (!f.ok()) return {std::nullopt, f.error, ie::recv_params};
    p.duration = static_cast<double>(time);
    p.omit = static_cast<double>(omit);
    p.length = static_cast<std::size_t>(len);
    p.client_version = escape_peer_text(p.client_version, 64);
    // iperf3 tests presence only (get_parameters): "reverse": false means reverse too.
    p.reverse = j.contains("reverse");
    p.bidir = j.contains("bidirectional");
    p.nodelay = j.contains("nodelay");
    p.get_server_output = j.contains("get_server_output");
    p.udp64 = j.contains("udp_counters_64bit");
    for (const char* k : ignored_keys)
        if (j.contains(k)) p.ignored.push_back(k);
    if (const auto it = j.find("zcperf"); it != j.end()) extras_from_json(*it, p, f);
    if (!f.ok()) return {std::nullopt, f.error, ie::recv_params};
    if (auto why = check_params(p); !why.empty()) {
        const int e = p.streams > max_streams                     ? ie::num_streams
                      : p.length > (p.udp ? 65507u : (64u << 20)) ? ie::block_size
                      : p.udp && p.length < 16                    ? ie::udp_block_size
                                                                  : ie::unimplemented;
        return {std::nullopt, why, e};
    }
    r.params = std::move(p);
    return r;
}

}  // namespace

ParamsResult parse_params(std::string_view text) noexcept {
    try {
        if (text.size() > max_params_json) return {std::nullopt, "the parameters are too long", ie::recv_params};
        json j = parse_frame_json(text);
        if (j.is_discarded()) return {std::nullopt, "the parameters are not JSON", ie::recv_params};
        return params_from_json(j);
    } catch (const std::exception& e) {  // bad_alloc, or a json corner the checks above missed
        return {std::nullopt, std::string("parameters rejected: ") + e.what(), ie::recv_params};
    } catch (...) {
        return {std::nullopt, "parameters rejected", ie::recv_params};
    }
}

std::string serialize_params(const TestParams& p) {
    return params_to_json(p).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<ServerHello> parse_server_hello(std::string_view text) noexcept {
    try {
        json j = parse_frame_json(text);
        if (!j.is_object()) return std::nullopt;
        const auto it = j.find("zcperf");
        if (it == j.end() || !it->is_object()) return std::nullopt;
        Fields f(*it);
        ServerHello h;
        f.string("version", h.version, 64, false);
        f.string("recv", h.recv, 32, false);
        f.u64("file_once_bytes", h.file_once_bytes);
        if (!f.ok()) return std::nullopt;
        h.version = escape_peer_text(h.version, 64);
        h.recv = escape_peer_text(h.recv, 32);
        return h;
    } catch (...) {
        return std::nullopt;
    }
}

std::string serialize_server_hello(const ServerHello& h) {
    json z{{"version", h.version}, {"recv", h.recv}};
    if (h.file_once_bytes) z["file_once_bytes"] = h.file_once_bytes;
    return json{{"zcperf", std::move(z)}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string serialize_error(std::string_view message) {
    return json{{"error", std::string(message)}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<std::string> parse_error(std::string_view text) noexcept {
    try {
        json j = parse_frame_json(text);
        if (!j.is_object() || !j.contains("error") || !j["error"].is_string()) return std::nullopt;
        return escape_peer_text(j["error"].get_ref<const std::string&>(), 1024);
    } catch (...) {
        return std::nullopt;
    }
}

}  // namespace zcperf
