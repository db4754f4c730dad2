// libFuzzer target: zcperf's control-protocol parser, parse_control_message(), on any bytes.
//
// What must hold for every input, not just "no crash":
// - it never throws (it is noexcept: an escaping exception would terminate) and never falls into
//   its catch-all: every rejection has a reason from the checks, not "control message rejected";
// - what it accepts satisfies the protocol's limits (a hello's parameters pass check_params, its
//   cookie is 36 bytes; UDP ports are 1..65535; at most 256 streams);
// - what it accepts survives serialize(): the serialized line is one '\n'-terminated line, parses
//   again, and serializes to the same bytes (serialize . parse is a fixed point).
#include "control.hpp"

#include <sanitizer/common_interface_defs.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

namespace {

[[noreturn]] void fail(const char* what, std::string_view detail) {
    // Through the sanitizer's report channel: scripts/fuzz.sh closes the target's own stderr.
    const std::string msg = std::string("fuzz_control: ") + what + ": " + std::string(detail.substr(0, 2000));
    __sanitizer_report_error_summary(msg.c_str());
    std::abort();
}

void check_limits(const zcperf::ControlMessage& m) {
    if (const auto* h = std::get_if<zcperf::Hello>(&m)) {
        if (h->cookie.size() != zcperf::cookie_length) fail("accepted a hello whose cookie is not 36 bytes", h->cookie);
        if (auto why = zcperf::check_params(h->params); !why.empty()) fail("accepted a hello check_params refuses", why);
    } else if (const auto* r = std::get_if<zcperf::Ready>(&m)) {
        if (r->udp_ports.size() > 256) fail("accepted more than 256 UDP ports", "");
        for (auto p : r->udp_ports)
            if (p == 0) fail("accepted UDP port 0", "");
    } else if (const auto* d = std::get_if<zcperf::Done>(&m)) {
        if (d->report.streams.size() > 256) fail("accepted more than 256 streams", "");
    } else if (const auto* s = std::get_if<zcperf::Results>(&m)) {
        if (s->report.streams.size() > 256) fail("accepted more than 256 streams", "");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view line(reinterpret_cast<const char*>(data), size);
    const zcperf::ParseResult r = zcperf::parse_control_message(line);
    if (!r.message) {
        if (r.error.empty()) fail("rejected without a reason", line);
        // The catch-all in parse_control_message is for bad_alloc; anything else reaching it is a
        // JSON corner the field checks missed.
        if (r.error.rfind("control message rejected", 0) == 0 && r.error.find("bad_alloc") == std::string::npos)
            fail("an exception escaped the field checks", r.error);
        return 0;
    }
    check_limits(*r.message);

    const std::string once = zcperf::serialize(*r.message);
    if (once.empty() || once.back() != '\n' || once.find('\n') != once.size() - 1)
        fail("serialize() did not give one '\\n'-terminated line", once);
    const zcperf::ParseResult again = zcperf::parse_control_message(once);
    if (!again.message) fail("its own serialization does not parse", again.error + " <- " + once);
    if (again.message->index() != r.message->index()) fail("the message type changed in a round trip", once);
    const std::string twice = zcperf::serialize(*again.message);
    if (twice != once) fail("serialize(parse(serialize(m))) != serialize(m)", once + twice);
    return 0;
}
