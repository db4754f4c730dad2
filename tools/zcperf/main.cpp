// zcperf: does zero-copy send pay on this host, by how much, and why? See `zcperf --help`.
#include "control.hpp"
#include "net.hpp"
#include "options.hpp"
#include "session.hpp"
#include "sweep.hpp"

#include <zcio/error.hpp>
#include <zcio/probe.hpp>

#include <fmt/format.h>

#include <unistd.h>

#include <cstdio>

int main(int argc, char** argv) {
    using namespace zcperf;
    install_signal_handlers();
    Options o;
    if (int rc = parse_command_line(argc, argv, o); rc >= 0) return rc;
    if (auto why = validate(o); !why.empty()) {
        fmt::print(stderr, "zcperf: {}\nRun with --help for more information.\n", why);
        return 2;
    }
    if (!o.logfile.empty()) {
        // iperf3's --logfile: everything the run prints goes to the file, appended.
        if (!std::freopen(o.logfile.c_str(), "a", stdout)) {
            fmt::print(stderr, "zcperf: --logfile {}: cannot open it for writing\n", o.logfile);
            return 2;
        }
        ::dup2(STDOUT_FILENO, STDERR_FILENO);
    }
    if (o.verbose && !o.json) fmt::print("zcperf {} (zcio), iperf3's protocol\n", zcperf::zcperf_version);
    try {
        switch (o.mode) {
        case Mode::features: fmt::print("{}", zcio::probe().report()); return 0;
        case Mode::server: return run_server(o);
        case Mode::client: return run_client(o);
        case Mode::sweep: return run_sweep(o);
        }
    } catch (const zcio::SetupError& e) {
        fmt::print(stderr, "zcperf: {}\n", e.what());
    } catch (const Error& e) {
        fmt::print(stderr, "zcperf: {}\n", e.what());
    } catch (const std::exception& e) {
        fmt::print(stderr, "zcperf: unexpected error: {}\n", e.what());
    }
    return 1;
}
