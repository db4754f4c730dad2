// libFuzzer target: zcperf's command line, parse_command_line() then validate(), as main() runs
// them (neither exits the process). The input is the argument list, one argument per line.
//
// What must hold, not just "no crash":
// - parse_command_line returns -1 (go on), 0 (--help/--version) or 2 (usage error), and nothing
//   escapes it (CLI11 throws; every exception must be caught there);
// - options that validate() accepts are within every range the rest of zcperf relies on, and a
//   client's test parameters built from them (as run_client builds them) pass check_params(), the
//   server's own check: what the command line accepts, the server must not refuse;
// - parse_size() agrees with its own decimal rendering and respects its 1 TiB ceiling.
#include "control.hpp"
#include "options.hpp"
#include "session.hpp"

#include <sanitizer/common_interface_defs.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail) {
    // Through the sanitizer's report channel: scripts/fuzz.sh closes the target's own stderr.
    const std::string msg = std::string("fuzz_options: ") + what + ": " + detail;
    __sanitizer_report_error_summary(msg.c_str());
    std::abort();
}

std::string show(const std::vector<std::string>& args) {
    std::string s;
    for (const auto& a : args) s += "[" + a + "] ";
    return s;
}

void check_parse_size(const std::string& text) {
    const auto v = zcperf::parse_size(text);
    if (!v) return;
    if (*v > (std::size_t{1} << 40)) fail("parse_size above 1 TiB", text);
    const auto back = zcperf::parse_size(std::to_string(*v));
    if (!back || *back != *v) fail("parse_size disagrees with its decimal rendering", text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::vector<std::string> args{"zcperf"};
    std::string cur;
    for (std::size_t i = 0; i < size; ++i) {
        const char c = static_cast<char>(data[i]);
        if (c == '\n') {
            args.push_back(std::move(cur));
            cur.clear();
        } else if (c != '\0') {  // argv strings cannot hold a NUL
            cur += c;
        }
        if (args.size() > 48) return 0;
    }
    if (!cur.empty()) args.push_back(std::move(cur));
    for (std::size_t i = 1; i < args.size(); ++i) check_parse_size(args[i]);

    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    zcperf::Options o;
    const int rc = zcperf::parse_command_line(static_cast<int>(args.size()), argv.data(), o);
    if (rc != -1 && rc != 0 && rc != 2)
        fail("unexpected exit code from parse_command_line", std::to_string(rc) + " " + show(args));
    if (rc >= 0) return 0;
    if (!zcperf::validate(o).empty()) return 0;
    if (o.mode == zcperf::Mode::features) return 0;

    if (o.parallel < 1 || o.parallel > 256) fail("validate accepted -P out of 1..256", show(args));
    if (o.repeat < 1 || o.repeat > 100) fail("validate accepted --repeat out of 1..100", show(args));
    if (o.mode != zcperf::Mode::sweep && o.strategies.size() > 1)
        fail("several strategies outside a sweep", show(args));
    if (o.mode == zcperf::Mode::client && o.host.empty()) fail("client mode without a host", show(args));
    if (o.mode == zcperf::Mode::sweep) {
        if (!(o.duration > 0) || o.duration > 86400) fail("sweep cell time out of range", show(args));
        for (auto s : o.sizes)
            if (s < 1 || s > (o.udp ? 65507u : (64u << 20))) fail("sweep size out of range", show(args));
    }
    if (o.mode == zcperf::Mode::client) {
        if (auto why = zcperf::check_params(zcperf::client_params(o)); !why.empty())
            fail("the command line accepts a test the server refuses", why + " <- " + show(args));
    }
    return 0;
}
