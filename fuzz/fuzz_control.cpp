// libFuzzer target: zcperf's control-protocol parsers (iperf3's frames), parse_params() and
// parse_results(), on any bytes. The first byte picks the parser; the rest is the frame's JSON.
//
// What must hold for every input, not just "no crash":
// - they never throw (they are noexcept: an escaping exception would terminate) and never fall
//   into their catch-all: every rejection has a reason from the checks;
// - what they accept satisfies the protocol's limits (parameters pass check_params; at most 512
//   streams, ids in range; peer strings contain no control characters);
// - what they accept survives serialization: serialize(parse(serialize(m))) == serialize(m).
#include "control.hpp"

#include <sanitizer/common_interface_defs.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

[[noreturn]] void fail(const char* what, std::string_view detail) {
    // Through the sanitizer's report channel: scripts/fuzz.sh closes the target's own stderr.
    const std::string msg = std::string("fuzz_control: ") + what + ": " + std::string(detail.substr(0, 2000));
    __sanitizer_report_error_summary(msg.c_str());
    std::abort();
}

bool printable(std::string_view s) {
    for (char c : s)
        if ((static_cast<unsigned char>(c) < 0x20) || c == 0x7f) return false;
    return true;
}

// The catch-all's reasons start "parameters rejected" / "results rejected"; a field check's
// reason may quote the peer's text, which may contain that word anywhere (a strategy named
// "zcrejected-fixed"), so only the prefix tells the two apart.
void check_rejection(const std::string& error, std::string_view input) {
    if (error.empty()) fail("rejected without a reason", input);
    const bool catch_all = error.rfind("parameters rejected", 0) == 0 || error.rfind("results rejected", 0) == 0;
    if (catch_all && error.find("bad_alloc") == std::string::npos) fail("an exception escaped the field checks", error);
}

void fuzz_params(std::string_view text) {
    const zcperf::ParamsResult r = zcperf::parse_params(text);
    if (!r.params) return check_rejection(r.error, text);
    if (auto why = zcperf::check_params(*r.params); !why.empty()) fail("accepted parameters check_params refuses", why);
    if (!printable(r.params->client_version)) fail("a peer string kept a control character", r.params->client_version);
    const std::string once = zcperf::serialize_params(*r.params);
    const zcperf::ParamsResult again = zcperf::parse_params(once);
    if (!again.params) fail("its own serialization does not parse", again.error + " <- " + once);
    if (zcperf::serialize_params(*again.params) != once) fail("serialize(parse(serialize(p))) != serialize(p)", once);
}

void fuzz_results(std::string_view text) {
    const zcperf::ResultsParse r = zcperf::parse_results(text);
    if (!r.results) return check_rejection(r.error, text);
    if (r.results->report.streams.size() > 2u * zcperf::max_streams) fail("accepted more than 512 streams", "");
    for (const auto& s : r.results->report.streams) {
        if (s.id < 1 || s.id > 2 * zcperf::max_streams + 1)
            fail("accepted a stream id out of range", std::to_string(s.id));
        if (!printable(s.error) || !printable(s.strategy)) fail("a peer string kept a control character", s.error);
    }
    const std::string once = zcperf::serialize_results(*r.results);
    const zcperf::ResultsParse again = zcperf::parse_results(once);
    if (!again.results) fail("its own serialization does not parse", again.error + " <- " + once);
    if (zcperf::serialize_results(*again.results) != once) fail("serialize(parse(serialize(r))) != serialize(r)", once);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
    if (data[0] & 1) fuzz_results(text);
    else fuzz_params(text);
    return 0;
}
